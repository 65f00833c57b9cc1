//! NetFlow v5, NetFlow v9 and IPFIX export packets (the UDP payload), decoded by hand.
//!
//! Nothing in a packet is trusted: every length is checked against what is left, templates are
//! bounded in number (oldest evicted first), and a malformed packet is an `Err` for that packet
//! only; records decoded before the fault have already been delivered. Nothing here panics.
//!
//! v9 and IPFIX data sets are decoded with the template of the same (exporter, source id /
//! observation domain, template id). Data that arrives before its template is counted and
//! reported once per key; it is not buffered. Options templates are parsed (so their data sets
//! are recognised) and their data is skipped.
//!
//! Information elements read: addresses 8/12 (IPv4) and 27/28 (IPv6), ports 7/11, protocol 4,
//! octets 1/85/23 and 231/232 (initiator/responder), packets 2/86/24 and 298/299, times 21/22
//! (system uptime ms; for IPFIX relative to systemInitTimeMilliseconds 160 when the record has
//! it), 150/151 (s), 152/153 (ms), 154/155 (NTP µs), post-NAT addresses 225/226 (IPv4) and
//! 281/282 (IPv6) into `pkt_src`/`pkt_dst`. Enterprise-specific fields are skipped. Counters and
//! ports may be 1-8 bytes long (reduced-size encoding).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::Record;

/// Counts kept by a [`NetflowDecoder`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetflowStats {
    /// Export packets given to [`NetflowDecoder::decode`].
    pub packets: u64,
    /// Flow records delivered.
    pub records: u64,
    /// Data sets dropped because their template had not arrived (each holds one or more records
    /// whose number cannot be known without the template).
    pub missing_template_records: u64,
    /// Templates currently cached.
    pub templates: u64,
    /// Templates dropped to keep the cache within its bound.
    pub template_evictions: u64,
    /// Packets rejected as malformed (`decode` returned `Err`).
    pub malformed: u64,
    /// Options data records skipped (exporter metadata, not flows).
    pub options_records: u64,
    /// Flow records without any address (nothing to match), skipped.
    pub records_without_address: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    exporter: SocketAddr,
    domain: u32,
    id: u16,
    ipfix: bool,
}

/// What a template field means to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ie {
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    SrcPort,
    DstPort,
    Proto,
    OctetDelta,
    OctetTotal,
    PostOctet,
    InitOctets,
    RespOctets,
    PacketDelta,
    PacketTotal,
    PostPacket,
    InitPackets,
    RespPackets,
    LastUptime,
    FirstUptime,
    StartSec,
    EndSec,
    StartMs,
    EndMs,
    StartNtp,
    EndNtp,
    SysInitMs,
    NatSrc,
    NatDst,
    Skip,
}

fn ie(id: u16) -> Ie {
    match id {
        8 => Ie::SrcV4,
        12 => Ie::DstV4,
        27 => Ie::SrcV6,
        28 => Ie::DstV6,
        7 => Ie::SrcPort,
        11 => Ie::DstPort,
        4 => Ie::Proto,
        1 => Ie::OctetDelta,
        85 => Ie::OctetTotal,
        23 => Ie::PostOctet,
        231 => Ie::InitOctets,
        232 => Ie::RespOctets,
        2 => Ie::PacketDelta,
        86 => Ie::PacketTotal,
        24 => Ie::PostPacket,
        298 => Ie::InitPackets,
        299 => Ie::RespPackets,
        21 => Ie::LastUptime,
        22 => Ie::FirstUptime,
        150 => Ie::StartSec,
        151 => Ie::EndSec,
        152 => Ie::StartMs,
        153 => Ie::EndMs,
        154 => Ie::StartNtp,
        155 => Ie::EndNtp,
        160 => Ie::SysInitMs,
        225 | 281 => Ie::NatSrc,
        226 | 282 => Ie::NatDst,
        _ => Ie::Skip,
    }
}

/// Field length meaning "variable" (IPFIX).
const VARLEN: u16 = 0xFFFF;

#[derive(Clone, Copy, Debug)]
struct Field {
    ie: Ie,
    len: u16,
}

#[derive(Debug)]
struct Template {
    fields: Box<[Field]>,
    /// Smallest possible record (variable-length fields count 1 byte).
    min_len: usize,
    options: bool,
    generation: u64,
}

/// At most this many (exporter, domain, template) keys are remembered for "warned once".
const MAX_WARNED: usize = 4096;

/// Decodes NetFlow v5, v9 and IPFIX export packets (the UDP payload) with a bounded
/// per-exporter template cache.
#[derive(Debug)]
pub struct NetflowDecoder {
    max_templates: usize,
    templates: HashMap<Key, Template, foldhash::fast::RandomState>,
    /// Insertion order for eviction: (key, generation); stale entries are skipped.
    order: VecDeque<(Key, u64)>,
    generation: u64,
    warned: HashSet<Key, foldhash::fast::RandomState>,
    stats: NetflowStats,
}

/// Times and identity shared by the records of one packet.
#[derive(Clone, Copy)]
struct Ctx {
    exporter: SocketAddr,
    sequence: u32,
    /// Export time, ms since the epoch.
    now_ms: i64,
    /// v9 system uptime at export, ms (None for IPFIX).
    uptime_ms: Option<u32>,
    packet_no: u64,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// An unsigned integer of 1-8 bytes (reduced-size encoding); None otherwise.
fn uint(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 8 {
        return None;
    }
    Some(v.iter().fold(0u64, |a, &b| (a << 8) | b as u64))
}

fn addr(v: &[u8]) -> Option<IpAddr> {
    match v.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]))),
        16 => {
            let a: [u8; 16] = v.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

/// µs since the epoch of an NTP 64-bit timestamp (seconds since 1900, binary fraction).
/// `t` units of `per` microseconds each; none past what an `i64` of microseconds holds (a
/// field of 8 bytes may say anything).
fn micros(t: u64, per: i64) -> Option<i64> {
    i64::try_from(t).ok()?.checked_mul(per)
}

fn ntp_micros(v: u64) -> i64 {
    let secs = (v >> 32) as i64 - 2_208_988_800;
    let frac = ((v & 0xFFFF_FFFF) * 1_000_000) >> 32;
    secs * 1_000_000 + frac as i64
}

impl NetflowDecoder {
    /// A decoder caching at most `max_templates` templates (at least 1) over all exporters.
    pub fn new(max_templates: usize) -> Self {
        NetflowDecoder {
            max_templates: max_templates.max(1),
            templates: HashMap::default(),
            order: VecDeque::new(),
            generation: 0,
            warned: HashSet::default(),
            stats: NetflowStats::default(),
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> NetflowStats {
        NetflowStats { templates: self.templates.len() as u64, ..self.stats }
    }

    /// True if the payload looks like a NetFlow v5/v9/IPFIX export packet (version field plus
    /// length/count sanity).
    pub fn looks_like(payload: &[u8]) -> bool {
        let (Some(version), Some(count)) = (be16(payload, 0), be16(payload, 2)) else { return false };
        match version {
            5 => (1..=30).contains(&count) && payload.len() >= 24 + 48 * count as usize,
            9 => {
                let (Some(id), Some(len)) = (be16(payload, 20), be16(payload, 22)) else { return false };
                (id <= 1 || id >= 256) && len >= 4 && 20 + len as usize <= payload.len()
            }
            10 => {
                let msg_len = count as usize;
                let (Some(id), Some(len)) = (be16(payload, 16), be16(payload, 18)) else { return false };
                msg_len >= 20
                    && msg_len <= payload.len()
                    && (id == 2 || id == 3 || id >= 256)
                    && len >= 4
                    && 16 + len as usize <= msg_len
            }
            _ => false,
        }
    }

    /// Decodes one export packet. Returns Err(reason) for a malformed packet (counted, never
    /// fatal; records before the fault were delivered). Data sets whose template never arrived
    /// are counted (see [`NetflowStats`]) and reported once per (exporter, domain/source id,
    /// template id) through `on_warning`. `ts_micros` (the capture time) stands in for the export
    /// time when the header carries none.
    pub fn decode(
        &mut self,
        exporter: SocketAddr,
        payload: &[u8],
        ts_micros: i64,
        mut on_record: impl FnMut(Record),
        mut on_warning: impl FnMut(String),
    ) -> Result<(), String> {
        self.stats.packets += 1;
        let res = match be16(payload, 0) {
            None => Err("packet shorter than a version field".to_string()),
            Some(5) => self.v5(exporter, payload, ts_micros, &mut on_record),
            Some(9) => self.v9(exporter, payload, ts_micros, &mut on_record, &mut on_warning),
            Some(10) => self.ipfix(exporter, payload, ts_micros, &mut on_record, &mut on_warning),
            Some(v) => Err(format!("unknown NetFlow version {v}")),
        };
        if res.is_err() {
            self.stats.malformed += 1;
        }
        res
    }

    fn v5(
        &mut self,
        exporter: SocketAddr,
        p: &[u8],
        ts_micros: i64,
        on_record: &mut dyn FnMut(Record),
    ) -> Result<(), String> {
        if p.len() < 24 {
            return Err(format!("NetFlow v5 header truncated ({} bytes)", p.len()));
        }
        let count = be16(p, 2).unwrap_or(0) as usize;
        if 24 + 48 * count > p.len() {
            return Err(format!("NetFlow v5 packet holds {} bytes, its header announces {count} records", p.len()));
        }
        let uptime = be32(p, 4).unwrap_or(0);
        let secs = be32(p, 8).unwrap_or(0) as i64;
        let nsecs = be32(p, 12).unwrap_or(0) as i64;
        let sequence = be32(p, 16).unwrap_or(0);
        let now_ms =
            if secs == 0 { ts_micros.div_euclid(1000) } else { secs * 1000 + (nsecs % 1_000_000_000) / 1_000_000 };
        let at = |t: u32| (now_ms - uptime.wrapping_sub(t) as i32 as i64) * 1000;
        let packet_no = self.stats.packets;
        for rec in p[24..24 + 48 * count].chunks_exact(48) {
            let u32at = |o: usize| u32::from_be_bytes([rec[o], rec[o + 1], rec[o + 2], rec[o + 3]]);
            let u16at = |o: usize| u16::from_be_bytes([rec[o], rec[o + 1]]);
            let r = Record {
                ts_micros: at(u32at(24)),
                end_micros: Some(at(u32at(28))),
                src: Some(IpAddr::V4(Ipv4Addr::new(rec[0], rec[1], rec[2], rec[3]))),
                dst: Some(IpAddr::V4(Ipv4Addr::new(rec[4], rec[5], rec[6], rec[7]))),
                sport: u16at(32),
                dport: u16at(34),
                proto: rec[38],
                pkts: [u32at(16) as u64, 0],
                bytes: [u32at(20) as u64, 0],
                line: packet_no,
                exporter: Some(exporter),
                sequence: Some(sequence),
                ..Default::default()
            };
            self.stats.records += 1;
            on_record(r);
        }
        Ok(())
    }

    fn v9(
        &mut self,
        exporter: SocketAddr,
        p: &[u8],
        ts_micros: i64,
        on_record: &mut dyn FnMut(Record),
        on_warning: &mut dyn FnMut(String),
    ) -> Result<(), String> {
        if p.len() < 20 {
            return Err(format!("NetFlow v9 header truncated ({} bytes)", p.len()));
        }
        let uptime = be32(p, 4).unwrap_or(0);
        let secs = be32(p, 8).unwrap_or(0) as i64;
        let sequence = be32(p, 12).unwrap_or(0);
        let domain = be32(p, 16).unwrap_or(0);
        let now_ms = if secs == 0 { ts_micros.div_euclid(1000) } else { secs * 1000 };
        let ctx = Ctx { exporter, sequence, now_ms, uptime_ms: Some(uptime), packet_no: self.stats.packets };
        let mut off = 20;
        while off + 4 <= p.len() {
            let id = be16(p, off).unwrap_or(0);
            let len = be16(p, off + 2).unwrap_or(0) as usize;
            if len < 4 {
                if p[off..].iter().all(|&b| b == 0) {
                    break; // zero padding to the end of the packet
                }
                return Err(format!("NetFlow v9 flowset at byte {off} has length {len}"));
            }
            if off + len > p.len() {
                return Err(format!(
                    "NetFlow v9 flowset at byte {off} has length {len}, only {} bytes left",
                    p.len() - off
                ));
            }
            let body = &p[off + 4..off + len];
            let key = |id| Key { exporter, domain, id, ipfix: false };
            match id {
                0 => self.v9_templates(body, &key)?,
                1 => self.v9_options_templates(body, &key)?,
                2..=255 => {}
                _ => self.data_set(key(id), body, &ctx, on_record, on_warning)?,
            }
            off += len;
        }
        Ok(())
    }

    fn v9_templates(&mut self, mut b: &[u8], key: &dyn Fn(u16) -> Key) -> Result<(), String> {
        while b.len() >= 4 {
            let id = be16(b, 0).unwrap_or(0);
            let n = be16(b, 2).unwrap_or(0) as usize;
            if id < 256 {
                break; // padding
            }
            let need = 4 + 4 * n;
            if b.len() < need {
                return Err(format!("NetFlow v9 template {id} announces {n} fields, truncated"));
            }
            let fields = b[4..need]
                .chunks_exact(4)
                .map(|c| Field { ie: ie(u16::from_be_bytes([c[0], c[1]])), len: u16::from_be_bytes([c[2], c[3]]) })
                .collect();
            self.insert(key(id), fields, false);
            b = &b[need..];
        }
        Ok(())
    }

    fn v9_options_templates(&mut self, mut b: &[u8], key: &dyn Fn(u16) -> Key) -> Result<(), String> {
        while b.len() >= 6 {
            let id = be16(b, 0).unwrap_or(0);
            let scope = be16(b, 2).unwrap_or(0) as usize;
            let opts = be16(b, 4).unwrap_or(0) as usize;
            if id < 256 {
                break;
            }
            let need = 6 + scope + opts;
            if b.len() < need || !scope.is_multiple_of(4) || !opts.is_multiple_of(4) {
                return Err(format!(
                    "NetFlow v9 options template {id} malformed (scope {scope}, options {opts} bytes)"
                ));
            }
            let fields = b[6..need]
                .chunks_exact(4)
                .map(|c| Field { ie: Ie::Skip, len: u16::from_be_bytes([c[2], c[3]]) })
                .collect();
            self.insert(key(id), fields, true);
            b = &b[need..];
        }
        Ok(())
    }

    fn ipfix(
        &mut self,
        exporter: SocketAddr,
        p: &[u8],
        ts_micros: i64,
        on_record: &mut dyn FnMut(Record),
        on_warning: &mut dyn FnMut(String),
    ) -> Result<(), String> {
        if p.len() < 16 {
            return Err(format!("IPFIX header truncated ({} bytes)", p.len()));
        }
        let msg_len = be16(p, 2).unwrap_or(0) as usize;
        if msg_len < 16 {
            return Err(format!("IPFIX message length {msg_len} < 16"));
        }
        if msg_len > p.len() {
            return Err(format!("IPFIX message length {msg_len}, packet holds {} bytes", p.len()));
        }
        let p = &p[..msg_len];
        let secs = be32(p, 4).unwrap_or(0) as i64;
        let sequence = be32(p, 8).unwrap_or(0);
        let domain = be32(p, 12).unwrap_or(0);
        let now_ms = if secs == 0 { ts_micros.div_euclid(1000) } else { secs * 1000 };
        let ctx = Ctx { exporter, sequence, now_ms, uptime_ms: None, packet_no: self.stats.packets };
        let mut off = 16;
        while off + 4 <= p.len() {
            let id = be16(p, off).unwrap_or(0);
            let len = be16(p, off + 2).unwrap_or(0) as usize;
            if len < 4 {
                return Err(format!("IPFIX set at byte {off} has length {len}"));
            }
            if off + len > p.len() {
                return Err(format!("IPFIX set at byte {off} has length {len}, only {} bytes left", p.len() - off));
            }
            let body = &p[off + 4..off + len];
            match id {
                2 | 3 => self.ipfix_templates(exporter, domain, body, id == 3)?,
                0..=255 => {}
                _ => {
                    let key = Key { exporter, domain, id, ipfix: true };
                    self.data_set(key, body, &ctx, on_record, on_warning)?
                }
            }
            off += len;
        }
        Ok(())
    }

    fn ipfix_templates(
        &mut self,
        exporter: SocketAddr,
        domain: u32,
        mut b: &[u8],
        options: bool,
    ) -> Result<(), String> {
        let what = if options { "options template" } else { "template" };
        while b.len() >= 4 {
            let id = be16(b, 0).unwrap_or(0);
            let n = be16(b, 2).unwrap_or(0) as usize;
            if n == 0 {
                // Withdrawal: of one template, or of all (id = set id 2 or 3).
                if id == 2 || id == 3 {
                    self.templates.retain(|k, _| !(k.exporter == exporter && k.domain == domain && k.ipfix));
                } else if id >= 256 {
                    self.templates.remove(&Key { exporter, domain, id, ipfix: true });
                } else {
                    break; // padding
                }
                b = &b[4..];
                continue;
            }
            if id < 256 {
                return Err(format!("IPFIX {what} with reserved id {id}"));
            }
            let mut at = 4;
            if options {
                let scope = be16(b, 4).ok_or_else(|| format!("IPFIX {what} {id} truncated"))? as usize;
                at = 6;
                if scope > n {
                    return Err(format!("IPFIX {what} {id}: scope field count {scope} > field count {n}"));
                }
            }
            let mut fields = Vec::with_capacity(n.min(256));
            for _ in 0..n {
                let (Some(t), Some(len)) = (be16(b, at), be16(b, at + 2)) else {
                    return Err(format!("IPFIX {what} {id} announces {n} fields, truncated"));
                };
                at += 4;
                let enterprise = t & 0x8000 != 0;
                if enterprise {
                    if b.len() < at + 4 {
                        return Err(format!("IPFIX {what} {id}: enterprise number truncated"));
                    }
                    at += 4;
                }
                let ie = if enterprise || options { Ie::Skip } else { ie(t) };
                fields.push(Field { ie, len });
            }
            self.insert(Key { exporter, domain, id, ipfix: true }, fields, options);
            b = &b[at..];
        }
        Ok(())
    }

    fn insert(&mut self, key: Key, fields: Vec<Field>, options: bool) {
        let min_len = fields.iter().map(|f| if f.len == VARLEN { 1 } else { f.len as usize }).sum();
        let fields = fields.into_boxed_slice();
        if let Some(t) = self.templates.get_mut(&key) {
            t.fields = fields;
            t.min_len = min_len;
            t.options = options;
            return;
        }
        while self.templates.len() >= self.max_templates {
            let Some((k, g)) = self.order.pop_front() else { break };
            if self.templates.get(&k).is_some_and(|t| t.generation == g) {
                self.templates.remove(&k);
                self.stats.template_evictions += 1;
            }
        }
        self.generation += 1;
        self.templates.insert(key, Template { fields, min_len, options, generation: self.generation });
        self.order.push_back((key, self.generation));
        if self.order.len() > 2 * self.max_templates + 16 {
            let templates = &self.templates;
            self.order.retain(|(k, g)| templates.get(k).is_some_and(|t| t.generation == *g));
        }
    }

    fn data_set(
        &mut self,
        key: Key,
        mut b: &[u8],
        ctx: &Ctx,
        on_record: &mut dyn FnMut(Record),
        on_warning: &mut dyn FnMut(String),
    ) -> Result<(), String> {
        let Some(t) = self.templates.get(&key) else {
            self.stats.missing_template_records += 1;
            if self.warned.len() < MAX_WARNED && self.warned.insert(key) {
                on_warning(format!(
                    "{}: {} data set for template {} ({} {}) arrived before its template; dropped until the \
                     template arrives",
                    key.exporter,
                    if key.ipfix { "IPFIX" } else { "NetFlow v9" },
                    key.id,
                    if key.ipfix { "observation domain" } else { "source id" },
                    key.domain,
                ));
            }
            return Ok(());
        };
        if t.min_len == 0 {
            return Ok(()); // nothing but zero-length fields: no record can be told from padding
        }
        while b.len() >= t.min_len {
            let (r, used) = match decode_record(t, b, ctx) {
                Some(x) => x,
                None => {
                    if b.iter().all(|&x| x == 0) {
                        break;
                    }
                    return Err(format!("data record for template {} truncated", key.id));
                }
            };
            b = &b[used..];
            if t.options {
                self.stats.options_records += 1;
                continue;
            }
            match r {
                Some(r) => {
                    self.stats.records += 1;
                    on_record(r);
                }
                None => self.stats.records_without_address += 1,
            }
        }
        Ok(())
    }
}

/// Decodes one data record; returns the record (None without any address) and its length, or
/// None when the bytes run out.
fn decode_record(t: &Template, b: &[u8], ctx: &Ctx) -> Option<(Option<Record>, usize)> {
    let mut at = 0usize;
    let mut r = Record {
        line: ctx.packet_no,
        exporter: Some(ctx.exporter),
        sequence: Some(ctx.sequence),
        ..Default::default()
    };
    let (mut oct, mut pkt) = ([None::<u64>; 4], [None::<u64>; 4]);
    let (mut resp_oct, mut resp_pkt) = (None, None);
    let (mut first_up, mut last_up, mut sys_init) = (None, None, None);
    let (mut start, mut end) = (None::<i64>, None::<i64>);
    let (mut start_rank, mut end_rank) = (0u8, 0u8);
    for f in t.fields.iter() {
        let len = if f.len == VARLEN {
            let l = *b.get(at)? as usize;
            at += 1;
            if l == 255 {
                let l = be16(b, at)? as usize;
                at += 2;
                l
            } else {
                l
            }
        } else {
            f.len as usize
        };
        let v = b.get(at..at.checked_add(len)?)?;
        at += len;
        if f.ie == Ie::Skip || t.options {
            continue;
        }
        let set_time = |slot: &mut Option<i64>, rank: &mut u8, new_rank: u8, micros: Option<i64>| {
            if let Some(m) = micros {
                if new_rank > *rank {
                    *slot = Some(m);
                    *rank = new_rank;
                }
            }
        };
        match f.ie {
            // Templates that carry both IPv4 and IPv6 fields fill the unused family with zeros:
            // an unspecified address never replaces a real one.
            Ie::SrcV4 | Ie::SrcV6 => r.src = real(addr(v), r.src),
            Ie::DstV4 | Ie::DstV6 => r.dst = real(addr(v), r.dst),
            Ie::NatSrc => r.pkt_src = addr(v).or(r.pkt_src),
            Ie::NatDst => r.pkt_dst = addr(v).or(r.pkt_dst),
            Ie::SrcPort => r.sport = uint(v).map_or(r.sport, |p| p as u16),
            Ie::DstPort => r.dport = uint(v).map_or(r.dport, |p| p as u16),
            Ie::Proto => r.proto = uint(v).map_or(r.proto, |p| p as u8),
            Ie::OctetDelta => oct[0] = uint(v),
            Ie::OctetTotal => oct[1] = uint(v),
            Ie::InitOctets => oct[2] = uint(v),
            Ie::PostOctet => oct[3] = uint(v),
            Ie::RespOctets => resp_oct = uint(v),
            Ie::PacketDelta => pkt[0] = uint(v),
            Ie::PacketTotal => pkt[1] = uint(v),
            Ie::InitPackets => pkt[2] = uint(v),
            Ie::PostPacket => pkt[3] = uint(v),
            Ie::RespPackets => resp_pkt = uint(v),
            Ie::FirstUptime => first_up = uint(v),
            Ie::LastUptime => last_up = uint(v),
            Ie::SysInitMs => sys_init = uint(v),
            Ie::StartSec => set_time(&mut start, &mut start_rank, 2, uint(v).and_then(|s| micros(s, 1_000_000))),
            Ie::EndSec => set_time(&mut end, &mut end_rank, 2, uint(v).and_then(|s| micros(s, 1_000_000))),
            Ie::StartMs => set_time(&mut start, &mut start_rank, 4, uint(v).and_then(|s| micros(s, 1000))),
            Ie::EndMs => set_time(&mut end, &mut end_rank, 4, uint(v).and_then(|s| micros(s, 1000))),
            Ie::StartNtp if v.len() == 8 => set_time(&mut start, &mut start_rank, 3, uint(v).map(ntp_micros)),
            Ie::EndNtp if v.len() == 8 => set_time(&mut end, &mut end_rank, 3, uint(v).map(ntp_micros)),
            _ => {}
        }
    }
    if r.src.is_none() && r.dst.is_none() {
        return Some((None, at));
    }
    r.bytes = [oct.iter().find_map(|x| *x).unwrap_or(0), resp_oct.unwrap_or(0)];
    r.pkts = [pkt.iter().find_map(|x| *x).unwrap_or(0), resp_pkt.unwrap_or(0)];
    // System-uptime times: relative to boot (v9 header) or to systemInitTimeMilliseconds.
    let uptime_abs = |t: u64| -> Option<i64> {
        let t = t as u32;
        match (ctx.uptime_ms, sys_init) {
            (_, Some(init)) => init.checked_add(u64::from(t)).and_then(|ms| micros(ms, 1000)),
            (Some(up), None) => Some((ctx.now_ms - up.wrapping_sub(t) as i32 as i64) * 1000),
            (None, None) => None,
        }
    };
    if start.is_none() {
        start = first_up.and_then(uptime_abs);
    }
    if end.is_none() {
        end = last_up.and_then(uptime_abs);
    }
    r.ts_micros = start.unwrap_or(ctx.now_ms * 1000);
    r.end_micros = end;
    Some((Some(r), at))
}

/// The new address unless it is unspecified and an address is already known.
fn real(new: Option<IpAddr>, old: Option<IpAddr>) -> Option<IpAddr> {
    match (new, old) {
        (Some(n), Some(_)) if n.is_unspecified() => old,
        (Some(n), _) => Some(n),
        (None, o) => o,
    }
}
