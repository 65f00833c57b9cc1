//! The per-packet path: decode, find the connection, match what is new, raise alerts.
//!
//! The hot path per packet is: slice the frame (no copy), one hash probe for the connection,
//! and counters. Addresses are matched only when a connection is new; application bytes are
//! parsed only until each direction has given what we look for (DNS is parsed on every
//! message, since each carries new names).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::shard;
use crate::decode::defrag::Defrag;
use crate::decode::packet::{self, Decoded, TunnelKind};
use crate::decode::peek::{self, PlainTcp};
use crate::decode::{dns, http, tls};
use crate::indicators::{Activity, Kind, Provenance, RowMeta};
use crate::matcher::{Id, Matcher};
use crate::report::alert::{proto_name, Alert, EveAlert, Field, FlowCounters, FlowEvent, Match, Origin, Tunnel};
use crate::report::summary::Stats;
use crate::source::capture::Packet;
use crate::track::conn::{Conn, ConnKey, End, Limits};
use crate::track::dnscache::{DnsCache, Resolved};
use crate::track::table::ConnTable;

/// Which IP layers of a tunnelled packet are matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tunnels {
    /// Only the innermost connection.
    Inner,
    /// Only the outer (carrier) addresses.
    Outer,
    /// Both.
    All,
}

/// Where alerts go.
pub trait Sink {
    fn alert(&mut self, a: Alert);
    fn flow(&mut self, f: FlowEvent);
    /// Pushes buffered output out (live modes).
    fn flush(&mut self) {}
    /// A DNS answer resolved a flagged name to `ip` (for engines that share what they learn).
    fn resolved(&mut self, _ip: IpAddr, _r: &Resolved) {}
}

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Options {
    pub tunnels: Tunnels,
    pub active_only: bool,
    pub limits: Limits,
    /// Bytes kept per TCP direction for application parsing.
    pub stream_cap: usize,
    pub dns_cache_cap: usize,
    /// Honour DNS answer TTLs for derived indicators (live mode).
    pub honour_ttl: bool,
    /// Keep the key and time span of every flagged connection (for `--evidence`).
    pub keep_flagged: bool,
    /// Send every frame through the full decoder, also segments of known TCP connections
    /// (the engine fuzz target compares both ways).
    #[doc(hidden)]
    pub decode_every_frame: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tunnels: Tunnels::All,
            active_only: false,
            limits: Limits::default(),
            stream_cap: 16 * 1024,
            dns_cache_cap: 1_000_000,
            honour_ttl: false,
            keep_flagged: false,
            decode_every_frame: false,
        }
    }
}

/// A match found while inspecting a packet: indicator, field, value seen, layer, resolved-from.
type Hit = (Id, Field, String, Option<&'static str>, Option<Arc<str>>);

/// The engine's matcher: borrowed (`scan`), or shared and replaceable (`watch` reloads).
#[derive(Clone)]
pub(crate) enum MatcherRef<'m> {
    Borrowed(&'m Matcher),
    Shared(Arc<Matcher>),
}

impl std::ops::Deref for MatcherRef<'_> {
    type Target = Matcher;
    fn deref(&self) -> &Matcher {
        match self {
            MatcherRef::Borrowed(m) => m,
            MatcherRef::Shared(m) => m,
        }
    }
}

/// State shared by every connection: the matcher, the DNS cache, counters, output.
struct Core<'m, S: Sink> {
    m: MatcherRef<'m>,
    opts: Options,
    dns: DnsCache,
    sink: S,
    stats: Stats,
    files: Vec<Arc<str>>,
    file: u32,
    packet: u64,
    ts: i64,
    has_certs: bool,
    has_ja3: bool,
    /// Where the current packet or record came from.
    pos: Pos,
    /// Reading DNS answers only to learn resolved addresses (another worker owns the packet).
    learn_only: bool,
    namebuf: dns::NameBuf,
    /// What [`Core::dns`] read of the last message (kept for its buffers).
    dns_read: DnsRead,
    scratch: Vec<u8>,
    hits: Vec<Hit>,
    flagged: Vec<crate::report::evidence::Span>,
    /// Indicators that open connections alerted on and that a reload removed.
    retired: Vec<String>,
    /// See [`Core::alert_text`].
    texts: HashMap<(Id, Field), Arc<AlertText>, foldhash::fast::RandomState>,
}

/// The names, addresses and CNAME (or DNAME) targets of one DNS message.
#[derive(Default)]
struct DnsRead {
    names: Names,
    /// Addresses answered, with their TTLs.
    addrs: Vec<(IpAddr, u32)>,
    /// Which of `names` are CNAME or DNAME targets.
    cnames: Vec<usize>,
}

impl DnsRead {
    fn clear(&mut self) {
        self.names.clear();
        self.addrs.clear();
        self.cnames.clear();
    }
}

/// Names, each with the field it was read from, in one string.
#[derive(Default)]
struct Names {
    text: String,
    /// Where each name ends in `text` (it starts where the one before ends).
    ends: Vec<(usize, Field)>,
}

impl Names {
    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn push(&mut self, name: &str, field: Field) {
        self.text.push_str(name);
        self.ends.push((self.text.len(), field));
    }

    fn get(&self, i: usize) -> (&str, Field) {
        let start = if i == 0 { 0 } else { self.ends[i - 1].0 };
        let (end, field) = self.ends[i];
        (&self.text[start..end], field)
    }

    fn iter(&self) -> impl Iterator<Item = (&str, Field)> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// What every alert on one indicator in one field says the same way.
struct AlertText {
    indicator: Arc<str>,
    signature: Arc<str>,
    category: Arc<str>,
    kind: Kind,
    sid: u32,
}

/// Most alert texts kept (see [`Core::alert_text`]).
const MAX_ALERT_TEXTS: usize = 1 << 16;

/// Ids from here on in `Conn::alerted` name [`Core::retired`] entries, not the matcher's.
const RETIRED: Id = 1 << 31;

/// One inspection engine (one per worker thread).
pub struct Engine<'m, S: Sink> {
    conns: ConnTable,
    /// Template caches for NetFlow/IPFIX export packets seen in captures.
    netflow: Option<NetflowDecoder>,
    defrag: Defrag,
    core: Core<'m, S>,
    next_sweep: i64,
    /// Packets and records since the last sweep.
    since_sweep: usize,
    /// What [`Engine::hint`] read of the frames it was shown, for when they come: which frame
    /// (packet number, and where its bytes are) and, for a plain TCP segment, what
    /// [`Engine::established`] needs of it.
    ahead: [Option<(Seen, Option<Segment>)>; AHEAD_SLOTS],
    /// Which of how many engines sharing the traffic this one is ([`Engine::set_share`]): a
    /// datagram reassembled from fragments is inspected by the engine that owns its connection.
    share: (usize, usize),
    /// DNS over TCP that other engines own, followed only to learn from the answers (see
    /// [`Engine::learn_tcp`]); at most [`LEARNING_CAP`] connections.
    learning: ConnTable,
}

/// Connections of DNS over TCP an engine follows for others (see [`Engine::learn_tcp`]). Past
/// this many, those closed or idle past their timeout are dropped, then all of them: a flood of
/// port-53 connections costs every engine a bounded table, and only some answers.
const LEARNING_CAP: usize = 4096;

/// What the fast path needs of a plain TCP segment: its connection's key and hash in the
/// table, which side of the key sent it, its flags and whether it carries data. Kept small:
/// it is written and read for every such segment.
#[derive(Clone, Copy, Debug)]
struct Segment {
    key: ConnKey,
    hash: u64,
    src_hi: bool,
    flags: u8,
    payload: bool,
}

/// Segments read ahead and kept for [`Engine::packet`], in slot `number % AHEAD_SLOTS`. Far more
/// than the readers' look-ahead: a worker of `-j` sees packet numbers with gaps (the others'
/// packets), and with 4 slots a hint often overwrote the one for the packet inspected next.
const AHEAD_SLOTS: usize = 16;

/// A frame as the hint saw it. The packet number alone would do for a reader that passes the
/// right one; its bytes' place and length make a wrong one harmless.
type Seen = (u64, usize, usize);

fn seen(data: &[u8], number: u64) -> Seen {
    (number, data.as_ptr() as usize, data.len())
}

fn tunnel_name(k: TunnelKind) -> &'static str {
    match k {
        TunnelKind::Gre => "gre",
        TunnelKind::Erspan => "erspan",
        TunnelKind::Vxlan => "vxlan",
        TunnelKind::GtpU => "gtp-u",
        TunnelKind::IpInIp => "ip-in-ip",
        TunnelKind::Teredo => "teredo",
        TunnelKind::Geneve => "geneve",
        TunnelKind::MplsUdp => "mpls-udp",
        TunnelKind::Ayiya => "ayiya",
    }
}

/// Idle connections are looked for at most once a second of packet time, and only after at
/// least the table's size in packets or records since the last look: walking
/// the table then costs a bounded amount per packet, however long the capture and however
/// many connections are open. A connection is also ended when its next packet finds it idle
/// past its timeout, so the cadence changes when flow events are written, never what they say.
const SWEEP_EVERY_US: i64 = 1_000_000;
/// Hosts counted for the summary's "hosts involved" (the first ones seen).
const MAX_HOSTS: usize = 10_000;

impl<'m, S: Sink> Engine<'m, S> {
    pub fn new(m: &'m Matcher, opts: Options, sink: S) -> Self {
        Self::build(MatcherRef::Borrowed(m), opts, sink)
    }

    /// An engine whose matcher can later be replaced with [`Engine::set_matcher`].
    pub fn shared(m: Arc<Matcher>, opts: Options, sink: S) -> Self {
        Self::build(MatcherRef::Shared(m), opts, sink)
    }

    fn build(m: MatcherRef<'m>, opts: Options, sink: S) -> Self {
        let core = Core {
            dns: DnsCache::new(opts.dns_cache_cap),
            has_certs: m.has_kind(Kind::Sha1Cert) || m.has_kind(Kind::Sha256Cert),
            has_ja3: m.has_kind(Kind::Ja3),
            m,
            opts,
            sink,
            stats: Stats::default(),
            files: Vec::new(),
            file: 0,
            packet: 0,
            pos: Pos::Packet(0),
            learn_only: false,
            ts: 0,
            namebuf: dns::NameBuf::default(),
            dns_read: DnsRead::default(),
            scratch: Vec::new(),
            hits: Vec::new(),
            flagged: Vec::new(),
            retired: Vec::new(),
            texts: HashMap::default(),
        };
        Engine {
            conns: ConnTable::default(),
            netflow: None,
            defrag: Defrag::new(4096, 64 << 20, 30.0),
            core,
            next_sweep: i64::MIN,
            since_sweep: 0,
            ahead: [None; AHEAD_SLOTS],
            share: (0, 1),
            learning: ConnTable::default(),
        }
    }

    /// Makes this engine worker `index` of `n` that share traffic by [`shard::owner`]: it is
    /// given its own frames ([`Self::packet`]) and those every worker reads
    /// ([`Self::learn_packet`]), and inspects a reassembled datagram only when it owns the
    /// connection inside ([`shard::pair_owner`]); otherwise it learns from it. Alone, an engine
    /// owns everything.
    ///
    /// [`shard::owner`]: super::shard::owner
    /// [`shard::pair_owner`]: super::shard::pair_owner
    pub fn set_share(&mut self, index: usize, n: usize) {
        self.share = (index, n.max(1));
    }

    /// Replaces the indicator set between two packets. Nothing is re-checked retroactively:
    /// DNS-derived addresses (which hold the old set's ids) are forgotten, and the indicators
    /// that open connections already alerted on are carried over to the new set's ids (those
    /// it no longer holds keep their name for the flow event, but never match again).
    pub fn set_matcher(&mut self, m: Arc<Matcher>) {
        let key = |m: &Matcher, id: Id| {
            let ind = m.indicator(id);
            (m.provenance(id).set.clone(), ind.kind, ind.value.clone(), ind.port, ind.exact)
        };
        let new: std::collections::HashMap<_, Id> = {
            let mut wanted = std::collections::HashSet::new();
            for c in self.conns.values() {
                for &(id, _, _) in c.alerted.iter() {
                    if id < RETIRED {
                        wanted.insert(key(&self.core.m, id));
                    }
                }
            }
            (0..m.len() as Id).map(|id| (key(&m, id), id)).filter(|(k, _)| wanted.contains(k)).collect()
        };
        for c in self.conns.values_mut() {
            for (id, _, _) in c.alerted.iter_mut() {
                if *id >= RETIRED {
                    continue;
                }
                let k = key(&self.core.m, *id);
                *id = match new.get(&k) {
                    Some(&n) => n,
                    None => {
                        let shown = crate::indicators::export::display_value(&self.core.m.indicator(*id));
                        self.core.retired.push(shown);
                        RETIRED + (self.core.retired.len() - 1) as Id
                    }
                };
            }
        }
        if self.conns.values().all(|c| c.alerted.iter().all(|a| a.0 < RETIRED)) {
            self.core.retired.clear();
        }
        self.core.has_certs = m.has_kind(Kind::Sha1Cert) || m.has_kind(Kind::Sha256Cert);
        self.core.has_ja3 = m.has_kind(Kind::Ja3);
        self.core.dns = DnsCache::new(self.core.opts.dns_cache_cap);
        self.core.texts.clear();
        self.core.m = MatcherRef::Shared(m);
    }

    /// Learns an address that another engine's DNS traffic resolved for a flagged name (the
    /// `ids` must come from this engine's current matcher).
    pub fn learn_resolved(&mut self, ip: IpAddr, r: Resolved) {
        self.core.dns.insert_addr(ip, r);
    }

    /// Starts a new input file (for the `capture` field of alerts).
    pub fn begin_file(&mut self, name: Arc<str>) {
        // Packet numbers start again: what was read ahead in the last file is not this one's.
        self.ahead = [None; AHEAD_SLOTS];
        self.core.files.push(name);
        self.core.file = (self.core.files.len() - 1) as u32;
        self.core.stats.files += 1;
    }

    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// Pushes buffered alerts to the output.
    pub fn flush_sink(&mut self) {
        self.core.sink.flush();
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.core.stats
    }

    /// Ends every connection (end of input) and returns the counters, the sink, and (with
    /// `keep_flagged`) the flagged connections. One already idle past its timeout at the last
    /// packet's time ends as timed out, as a sweep then would have ended it: so the reason
    /// never depends on when the last sweep happened to run.
    pub fn finish(mut self) -> (Stats, S, Vec<crate::report::evidence::Span>) {
        let (limits, now) = (self.core.opts.limits, self.core.ts);
        // Only a flagged connection has anything to report when it ends (`Core::end`), and
        // few are: looking each of the others up again only to drop it took 5 % of a run. One
        // pass over the table keeps the flagged ones and drops the rest.
        // In the order they began: the table's order changes from run to run.
        let mut flagged: Vec<(i64, ConnKey, Conn)> = std::mem::take(&mut self.conns)
            .into_entries()
            .filter(|(_, c)| c.flagged())
            .map(|(k, c)| (c.first_us, k, c))
            .collect();
        flagged.sort_unstable_by_key(|&(first, key, _)| (first, key));
        for (_, _, c) in flagged {
            let why = match limits.expired(&c, now) {
                Some(why) => why,
                None if c.closed_at.is_some() => End::Closed,
                None => End::EndOfInput,
            };
            self.core.end(c, why);
        }
        (self.core.stats, self.core.sink, self.core.flagged)
    }

    /// Reads a frame another worker owns but every worker reads ([`shard::owner`]), counting
    /// nothing: the reader gives it to every worker in order with the rest of its traffic.
    /// - A DNS answer (or sFlow datagram) is read only to learn the addresses flagged names
    ///   resolved to, so a connection to a resolved address is flagged on any worker.
    /// - A fragment is reassembled, and the whole datagram inspected if this engine owns the
    ///   connection inside (a tunnel's), or else learned from (a long DNS answer).
    ///
    /// [`shard::owner`]: super::shard::owner
    pub fn learn_packet(&mut self, p: &Packet<'_>) {
        let mut d = Decoded::default();
        if packet::decode(p.linktype, p.data, true, &mut d).is_err() {
            return;
        }
        self.core.packet = p.number;
        self.core.pos = Pos::Packet(p.number);
        self.core.ts = p.ts_micros;
        if let Some(frag) = d.fragment {
            self.fragment(d, frag, p.data.len());
            return;
        }
        self.learn(&d, p.data.len());
    }

    /// A segment of DNS over TCP that another engine owns: its connection is followed in a
    /// table of its own, as [`Self::inspect`] follows one (a new SYN after the close, or idle
    /// past the timeout, starts it again; streams from the SYN), and the server's answers are
    /// read to learn from, with nothing counted or reported. So an answer that came over TCP
    /// (a resolver's retry after a truncated one) flags later connections on every engine.
    fn learn_tcp(&mut self, d: &Decoded<'_>, wire: usize) {
        let Some(inner) = d.innermost().copied() else { return };
        let (src, dst) = ((inner.src, d.sport), (inner.dst, d.dport));
        let (key, src_hi) = ConnKey::new(inner.proto, src, dst);
        let (now, limits) = (self.core.ts, self.core.opts.limits);
        let tcp = d.tcp;
        if self.learning.len() >= LEARNING_CAP && !self.learning.contains_key(&key) {
            self.learning.retain(|_, c| !c.closed_at.is_some() && limits.expired(c, now).is_none());
            if self.learning.len() >= LEARNING_CAP {
                self.learning = ConnTable::default();
            }
        }
        let reply = tcp.is_some_and(|t| t.flags & 0x12 == 0x12);
        let client = if reply { dst } else { src };
        let blank = || Conn { first_us: now, last_us: now, app_done: [false; 2], ..Conn::blank() };
        let (conn, is_new) = self.learning.get_or_insert_with(key, client, blank);
        if !is_new && restart(conn, tcp, &limits, now).is_some() {
            self.learning.remove(&key);
            return self.learn_tcp(d, wire);
        }
        let dir = conn.dir_of_side(src_hi);
        conn.count(dir, wire, now, tcp.map(|t| t.flags));
        if let Some(t) = tcp.filter(|t| t.flags & 0x02 != 0) {
            conn.syn(dir, t.seq);
        }
        if !d.payload.is_empty() && !conn.app_done[dir] {
            let st = &self.core.stats;
            let (messages, errors) = (st.dns_messages, st.dns_errors);
            self.core.learn_only = true;
            self.core.app(conn, dir, d);
            self.core.learn_only = false;
            (self.core.stats.dns_messages, self.core.stats.dns_errors) = (messages, errors);
        }
    }

    /// Learns from a whole datagram another engine inspects: the DNS answers in it, if it is one
    /// every worker reads (see [`shard::owner`]), with nothing counted: a UDP answer or sFlow
    /// datagram at once, DNS over TCP by following its connection ([`Self::learn_tcp`]).
    ///
    /// [`shard::owner`]: super::shard::owner
    fn learn(&mut self, d: &Decoded<'_>, wire: usize) {
        let Some(inner) = d.innermost().copied() else { return };
        if inner.proto == 6 {
            // Only DNS over TCP holds answers; any other connection is its owner's alone (one
            // inside a tunnel whose datagram came in fragments ends here too).
            if d.tcp.is_some() && [d.sport, d.dport].iter().any(|p| shard::DNS_PORTS.contains(p)) {
                self.learn_tcp(d, wire);
            }
            return;
        }
        if inner.proto != 17 || d.payload.is_empty() {
            return;
        }
        if sflow::is_export(d.dport, d.payload) {
            // The DNS answers among its samples, learned as the worker that owns it learns them
            // (and counted there, not here).
            let exporter = std::net::SocketAddr::new(inner.src, d.sport);
            let derived = self.core.stats.resolved_derived;
            let _ = super::sampled::records(d.payload, exporter, self.core.ts, |r| {
                if let Some(r) = r {
                    self.learn_dns(&r);
                }
            });
            self.core.stats.resolved_derived = derived;
            return;
        }
        if !shard::DNS_PORTS.contains(&d.sport) {
            return;
        }
        self.core.learn_only = true;
        let mut scratch = Conn::blank();
        let (messages, errors) = (self.core.stats.dns_messages, self.core.stats.dns_errors);
        self.core.dns(&mut scratch, d.payload);
        (self.core.stats.dns_messages, self.core.stats.dns_errors) = (messages, errors);
        self.core.learn_only = false;
    }

    /// Moves the engine's clock to a packet another worker owns, sweeping idle connections
    /// when it is time, so they end when they would with one engine, and as they would at the
    /// end of the input (timed out, if idle past their timeout at the last packet's time).
    #[inline]
    pub fn advance(&mut self, ts_micros: i64) {
        self.core.ts = ts_micros;
        self.tick(ts_micros);
    }

    /// Counts a packet or record at `now`, and sweeps when one is due.
    #[inline]
    fn tick(&mut self, now: i64) {
        self.since_sweep += 1;
        // A sweep walks the whole table: waiting for as many events as it holds connections
        // (at least 4096) keeps its cost near one connection per event. (Not its capacity:
        // that depends on where the random hash put deleted entries, and when sweeps happen
        // decides whether a connection idle at the end of the input ends as timed out.)
        if now >= self.next_sweep && self.since_sweep >= self.conns.len().max(4096) {
            self.sweep_due(now);
        }
    }

    #[cold]
    #[inline(never)]
    fn sweep_due(&mut self, now: i64) {
        self.sweep(now);
        self.since_sweep = 0;
        self.next_sweep = now.saturating_add(SWEEP_EVERY_US);
    }

    /// Says that the frame `data`, packet `number` of the current file, will be inspected
    /// soon (a reader's look-ahead): the connection it belongs to starts loading into the
    /// cache. Only plain packets are recognised; for a tunnelled one the hint is wasted, never
    /// wrong. A plain TCP segment's reading is kept for when it comes, so it is read once.
    #[inline]
    pub fn hint(&mut self, linktype: u32, data: &[u8], number: u64) {
        if let Some(t) = peek::plain_tcp(linktype, data) {
            if t.flags & 0x12 == 0x02 {
                // A SYN: likely a new connection, whose addresses will be looked up.
                self.core.m.prefetch_start(t.src.0);
                self.core.m.prefetch_start(t.dst.0);
            }
            let (key, src_hi) = ConnKey::of_ints(6, t.src, t.dst);
            let hash = self.conns.hint(&key);
            let s = Segment { key, hash, src_hi, flags: t.flags, payload: t.payload };
            self.ahead[number as usize % AHEAD_SLOTS] = Some((seen(data, number), Some(s)));
        } else {
            // Not a plain segment: the decoder reads it when it comes, without a second look.
            self.ahead[number as usize % AHEAD_SLOTS] = Some((seen(data, number), None));
            if let Some((proto, a, b)) = peek::endpoints(linktype, data) {
                let (ai, bi) = ((peek::ip_int(a.0), a.1), (peek::ip_int(b.0), b.1));
                self.conns.hint(&ConnKey::of_ints(proto, ai, bi).0);
                // Not a TCP segment: each datagram may start a flow (a DNS query from a new port).
                if proto != 6 {
                    self.core.m.prefetch_start(ai.0);
                    self.core.m.prefetch_start(bi.0);
                }
            }
        }
    }

    /// The plain TCP segment packet `p` is (`None` if it is none): as the hint read it, or
    /// read now.
    #[inline]
    fn plain_tcp(&mut self, p: &Packet<'_>) -> Option<Segment> {
        let slot = &mut self.ahead[p.number as usize % AHEAD_SLOTS];
        if let Some((frame, s)) = *slot {
            if frame == seen(p.data, p.number) {
                *slot = None;
                return s;
            }
        }
        let t: PlainTcp = peek::plain_tcp(p.linktype, p.data)?;
        let (key, src_hi) = ConnKey::of_ints(6, t.src, t.dst);
        Some(Segment { key, hash: self.conns.hash(&key), src_hi, flags: t.flags, payload: t.payload })
    }

    /// Inspects one captured frame.
    pub fn packet(&mut self, p: &Packet<'_>) {
        let st = &mut self.core.stats;
        st.packets += 1;
        st.bytes += p.data.len() as u64;
        self.core.packet = p.number;
        self.core.pos = Pos::Packet(p.number);
        self.core.ts = p.ts_micros;
        // Always decapsulate: even `--tunnels outer` needs the inner connection as the key.
        let decap = true;
        // Most frames are segments of a TCP connection already known: those need no decoder.
        let plain = if self.core.opts.decode_every_frame { None } else { self.plain_tcp(p) };
        if let Some(seg) = plain {
            let st = &mut self.core.stats;
            st.decoded += 1;
            self.tick(p.ts_micros);
            if !self.established(&seg, p.data.len()) {
                let mut d = Decoded::default();
                let decoded = packet::decode(p.linktype, p.data, decap, &mut d);
                debug_assert!(decoded.is_ok() && d.depth == 1 && d.fragment.is_none() && d.tcp.is_some());
                self.inspect(&d, p.data.len());
            }
            return;
        }
        let st = &mut self.core.stats;
        let mut d = Decoded::default();
        if let Err(skip) = packet::decode(p.linktype, p.data, decap, &mut d) {
            if skip == packet::Skip::UnsupportedLinkType {
                *st.unknown_linktypes.entry(p.linktype).or_default() += 1;
            }
            st.skip(skip.as_str());
            return;
        }
        st.decoded += 1;
        if d.depth_exceeded {
            st.too_deep += 1;
        }
        self.tick(p.ts_micros);
        if let Some(frag) = d.fragment {
            self.core.stats.fragments += 1;
            if self.fragment(d, frag, p.data.len()) {
                self.core.stats.reassembled += 1;
            }
            return;
        }
        self.inspect(&d, p.data.len());
    }

    /// Pushes fragment `d` for reassembly (true when it completed its datagram), and inspects
    /// what is known of the connection: the whole datagram once reassembled, and the first
    /// fragment at once, since it carries the ports (but a tunnel's is left for reassembly,
    /// which yields the connection inside). Of engines sharing traffic, only the one that owns
    /// that connection inspects it; the others learn from it (see [`Self::set_share`]).
    fn fragment(&mut self, d: Decoded<'_>, frag: packet::Fragment, wire: usize) -> bool {
        let Some(inner) = d.innermost().copied() else { return false };
        let ts = self.core.ts as f64 / 1e6;
        let Some((proto, payload)) = self.defrag.push(ts, inner.src, inner.dst, inner.proto, frag, d.ip_payload) else {
            if frag.offset == 0 && d.sport != 0 && !is_tunnel_carrier(inner.proto, d.sport, d.dport) {
                self.inspect_owned(&d, wire);
            }
            return false;
        };
        let mut whole: Decoded<'_> = d;
        whole.fragment = None;
        packet::decode_transport(proto, &payload, true, &mut whole);
        self.inspect_owned(&whole, wire);
        true
    }

    /// Inspects `d` if this engine owns its connection (see [`Self::set_share`]), else learns
    /// from it.
    fn inspect_owned(&mut self, d: &Decoded<'_>, wire: usize) {
        let (index, n) = self.share;
        let owned = n <= 1 || d.innermost().is_some_and(|l| shard::pair_owner(l.src, l.dst, n) == index);
        if owned {
            self.inspect(d, wire);
        } else {
            self.learn(d, wire);
        }
    }

    /// Whether the connection of packet `p` (inspected just before) has raised an alert: what
    /// an inline sensor drops with `--block`. Read again here rather than remembered by
    /// [`Self::packet`], which runs for every packet of every scan.
    pub fn flagged(&self, p: &Packet<'_>) -> bool {
        let mut d = Decoded::default();
        if packet::decode(p.linktype, p.data, true, &mut d).is_err() {
            return false;
        }
        let Some(inner) = d.innermost() else { return false };
        let (key, _) = ConnKey::new(inner.proto, (inner.src, d.sport), (inner.dst, d.dport));
        self.conns.get(&key).is_some_and(|c| c.flagged())
    }

    /// A segment of a known TCP connection that changes nothing but its counters and closing
    /// flags, counted as [`Self::inspect`] would; false (and nothing changed) for anything else:
    /// a new connection, an old one to end or restart, a SYN, or data still to be read.
    #[inline]
    fn established(&mut self, t: &Segment, wire: usize) -> bool {
        let now = self.core.ts;
        let limits = self.core.opts.limits;
        let Some(conn) = self.conns.get_mut_hashed(&t.key, t.hash) else { return false };
        if t.flags & 0x02 != 0 || conn.closed_at.is_some() || limits.expired(conn, now).is_some() {
            return false;
        }
        let dir = conn.dir_of_side(t.src_hi);
        if t.payload && !conn.app_done[dir] {
            return false;
        }
        conn.count(dir, wire, now, Some(t.flags));
        true
    }

    fn inspect(&mut self, d: &Decoded<'_>, wire: usize) {
        let Some(inner) = d.innermost().copied() else { return };
        let (src, dst) = ((inner.src, d.sport), (inner.dst, d.dport));
        let (key, src_hi) = ConnKey::new(inner.proto, src, dst);
        let now = self.core.ts;
        let tcp = d.tcp;
        if self.conns.len() >= self.core.opts.limits.max_conns && !self.conns.contains_key(&key) {
            self.make_room(now);
        }
        // A SYN-ACK seen first means we missed the SYN: the receiver is the client.
        let reply = tcp.is_some_and(|t| t.flags & 0x12 == 0x12);
        let client = if reply { dst } else { src };
        let (conn, is_new) = self.conns.get_or_insert_with(key, client, || {
            let outer = d.outermost().copied();
            let tunnel = match (d.depth > 1, outer) {
                (true, Some(o)) => Some(Box::new(Tunnel {
                    src_ip: o.src,
                    dest_ip: o.dst,
                    src_port: (o.proto == 17).then_some(o.sport),
                    dest_port: (o.proto == 17).then_some(o.dport),
                    proto: proto_name(o.proto),
                    kind: o.tunnel.map(tunnel_name).unwrap_or("ip"),
                    depth: d.depth - 1,
                })),
                _ => None,
            };
            Conn {
                first_us: now,
                last_us: now,
                vlans: d.vlans,
                vlan_count: d.vlan_count,
                tunnel,
                file: self.core.file,
                // Its first payloads are still to be read.
                app_done: [false; 2],
                ..Conn::blank()
            }
        });
        // A new SYN on a connection that closed: port reuse, a new connection. So is a packet
        // on one idle past its timeout that no sweep has ended yet.
        if !is_new {
            if let Some(why) = restart(conn, tcp, &self.core.opts.limits, now) {
                let old = self.conns.remove(&key).expect("present");
                self.core.end(old, why);
                return self.inspect(d, wire);
            }
        }
        let dir = conn.dir_of_side(src_hi);
        conn.count(dir, wire, now, tcp.map(|t| t.flags));
        if is_new {
            self.core.stats.conns += 1;
            self.core.check_addresses(conn, d);
        }
        if let Some(t) = tcp.filter(|t| t.flags & 0x02 != 0) {
            // SYN: fix where the stream starts.
            conn.syn(dir, t.seq);
        }
        // NetFlow/IPFIX export packets (any UDP port, recognised by content).
        let mut export = false;
        if inner.proto == 17 && dir == 0 && !d.payload.is_empty() {
            if conn.netflow {
                export = true;
            } else if !conn.app_done[0]
                && ![53, 5353, 5355].contains(&d.dport)
                && (NetflowDecoder::looks_like(d.payload) || sflow::is_export(d.dport, d.payload))
            {
                conn.netflow = true;
                conn.app_done[0] = true;
                export = true;
            }
        }
        if !d.payload.is_empty() && !conn.app_done[dir] {
            self.core.app(conn, dir, d);
        }
        if export {
            self.export_packet(std::net::SocketAddr::new(src.0, src.1), d.payload);
        }
    }

    /// Ends connections idle past their timeout.
    fn sweep(&mut self, now: i64) {
        let limits = self.core.opts.limits;
        let mut ended = Vec::new();
        self.conns.retain(|k, c| match limits.expired(c, now) {
            Some(why) => {
                ended.push((c.first_us, *k, std::mem::replace(c, Conn::blank()), why));
                false
            }
            None => true,
        });
        // Reported in the order they began, not in the table's (which changes between runs).
        ended.sort_unstable_by_key(|e| (e.0, e.1));
        for (_, _, c, why) in ended {
            self.core.end(c, why);
        }
    }

    /// At the cap: ends the idlest tenth, in one pass over the table. Those idle past their
    /// timeout end as timed out (a sweep would have ended them); the others are evicted, and
    /// counted as such.
    fn make_room(&mut self, now: i64) {
        let limits = self.core.opts.limits;
        let mut ages: Vec<(i64, ConnKey)> = self.conns.iter().map(|(k, c)| (c.last_us, *k)).collect();
        let n = (ages.len() / 10).max(1);
        ages.select_nth_unstable(n - 1);
        ages.truncate(n);
        ages.sort_unstable();
        for (_, k) in ages {
            if let Some(c) = self.conns.remove(&k) {
                let why = limits.expired(&c, now).unwrap_or(End::Evicted);
                if why == End::Evicted {
                    self.core.stats.conns_evicted += 1;
                }
                self.core.end(c, why);
            }
        }
    }
}

/// Transports that carry tunnels we decapsulate.
/// Why a known connection's entry ends before packet `tcp` (its TCP header, if any) at `now`
/// starts a new one: a SYN after it closed (port reuse), or an idle past its timeout that no
/// sweep has ended yet. One rule for the connections an engine inspects and those it follows for
/// others ([`Engine::learn_tcp`]), which must end alike.
fn restart(conn: &Conn, tcp: Option<packet::Tcp>, limits: &Limits, now: i64) -> Option<End> {
    if conn.closed_at.is_some() && tcp.is_some_and(|t| t.flags & 0x12 == 0x02) {
        Some(End::Closed)
    } else {
        limits.expired(conn, now)
    }
}

fn is_tunnel_carrier(proto: u8, sport: u16, dport: u16) -> bool {
    const PORTS: [u16; 5] =
        [packet::VXLAN_PORT, packet::GTPU_PORT, packet::TEREDO_PORT, packet::GENEVE_PORT, packet::MPLS_UDP_PORT];
    matches!(proto, 4 | 41 | 47) || proto == 17 && (PORTS.contains(&sport) || PORTS.contains(&dport))
}

fn micros_to_rfc3339(us: i64) -> String {
    let mut s = String::with_capacity(27);
    crate::time::format_micros(us.div_euclid(1_000_000), us.rem_euclid(1_000_000) as u32, &mut s);
    s
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(a) => {
            (a.segments()[0] & 0xfe00) == 0xfc00 || (a.segments()[0] & 0xffc0) == 0xfe80 || a.is_loopback()
        }
    }
}

impl<S: Sink> Core<'_, S> {
    /// Matches the addresses of a new connection (and of its tunnel), and the DNS-derived ones.
    fn check_addresses(&mut self, conn: &mut Conn, d: &Decoded<'_>) {
        let m = &*self.m;
        let depth = d.depth as usize;
        let tunnelled = depth > 1;
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        for (i, layer) in d.ip_layers().enumerate() {
            let innermost = i + 1 == depth;
            let wanted = match self.opts.tunnels {
                Tunnels::All => true,
                Tunnels::Inner => innermost,
                Tunnels::Outer => !innermost || !tunnelled,
            };
            if !wanted {
                continue;
            }
            let label = if !tunnelled {
                None
            } else if innermost {
                Some("inner")
            } else {
                Some("outer")
            };
            // Orient by the connection: ip.src is the client side. Compared as the key compares
            // (an IPv4 address mapped into IPv6 is the IPv4 address `conn.client()` gives).
            let from_client = if innermost { conn.dir((layer.src, d.sport)) == 0 } else { true };
            let (sp, dp) = if innermost { (d.sport, d.dport) } else { (layer.sport, layer.dport) };
            let (cs, cp, ss, spt) =
                if from_client { (layer.src, sp, layer.dst, dp) } else { (layer.dst, dp, layer.src, sp) };
            m.lookup_ip(cs, cp, &mut |id| hits.push((id, Field::IpSrc, cs.to_string(), label, None)));
            m.lookup_ip(ss, spt, &mut |id| hits.push((id, Field::IpDst, ss.to_string(), label, None)));
            if innermost {
                for ip in [ss, cs] {
                    if let Some(r) = self.dns.addr(&ip, self.ts) {
                        for &id in r.ids.iter() {
                            hits.push((id, Field::DnsResolved, ip.to_string(), label, Some(r.name.clone())));
                        }
                    }
                }
            }
        }
        for (id, field, value, layer, via) in hits.drain(..) {
            self.emit(conn, id, field, value, layer, via);
        }
        self.hits = hits;
    }

    /// Application bytes of one direction.
    fn app(&mut self, conn: &mut Conn, dir: usize, d: &Decoded<'_>) {
        let (sport, dport) = (d.sport, d.dport);
        // DNS, multicast DNS and LLMNR share the message format.
        let dns_port = [53, 5353, 5355].iter().any(|&p| sport == p || dport == p);
        match conn.proto() {
            17 if dns_port => {
                self.dns(conn, d.payload);
            }
            6 => self.tcp_app(conn, dir, d, dns_port),
            _ => conn.app_done[dir] = true,
        }
    }

    fn tcp_app(&mut self, conn: &mut Conn, dir: usize, d: &Decoded<'_>, dns_port: bool) {
        let seq = d.tcp.map(|t| t.seq).unwrap_or(0);
        // Fast path: the whole first message in the first segment, no copy.
        let fresh = conn.app.as_ref().is_none_or(|a| a.streams[dir].is_empty());
        if fresh {
            match self.tcp_message(conn, dir, d.payload, dns_port) {
                Progress::Done => {
                    conn.app_done[dir] = true;
                    if let Some(a) = conn.app.as_mut() {
                        a.streams[dir].release();
                    }
                    return;
                }
                Progress::More => {}
            }
        }
        let cap = if dir == 1 { 64 * 1024 } else { self.opts.stream_cap };
        let app = conn.app_mut();
        if !app.streams[dir].add(seq, d.payload, cap) && !fresh {
            return;
        }
        if fresh {
            // already tried on this very payload
            return;
        }
        let mut buf = std::mem::take(&mut app.streams[dir]);
        let done = matches!(self.tcp_message(conn, dir, buf.data(), dns_port), Progress::Done) || buf.overflow;
        if done {
            buf.release();
            conn.app_done[dir] = true;
        }
        if let Some(app) = conn.app.as_mut() {
            app.streams[dir] = buf;
        }
    }

    /// Tries to read what we look for from the bytes a direction sent so far.
    fn tcp_message(&mut self, conn: &mut Conn, dir: usize, data: &[u8], dns_port: bool) -> Progress {
        if dns_port {
            let mut it = dns::tcp_messages(data);
            let mut n = 0;
            for msg in it.by_ref() {
                self.dns(conn, msg);
                n += 1;
            }
            // DNS over TCP carries many messages; keep reading until the buffer fills.
            let _ = n;
            return if data.len() >= self.opts.stream_cap { Progress::Done } else { Progress::More };
        }
        if dir == 0 {
            match data.first() {
                Some(0x16) => {
                    let mut scratch = std::mem::take(&mut self.scratch);
                    let r = match tls::parse_client_hello(data, &mut scratch) {
                        Ok(ch) => {
                            self.stats.tls_client_hellos += 1;
                            let mut hits = std::mem::take(&mut self.hits);
                            for name in &ch.sni {
                                self.m.lookup_domain(name, &mut |id| {
                                    hits.push((id, Field::TlsSni, name.clone(), None, None))
                                });
                            }
                            if self.has_ja3 {
                                let (_, md5) = tls::ja3(&ch);
                                self.m.lookup_hash(Kind::Ja3, &md5, &mut |id| {
                                    hits.push((id, Field::TlsJa3, md5.clone(), None, None))
                                });
                            }
                            for (id, f, v, l, via) in hits.drain(..) {
                                self.emit(conn, id, f, v, l, via);
                            }
                            self.hits = hits;
                            Progress::Done
                        }
                        Err(tls::TlsError::Incomplete) => Progress::More,
                        Err(_) => {
                            self.stats.tls_errors += 1;
                            Progress::Done
                        }
                    };
                    scratch.clear();
                    self.scratch = scratch;
                    r
                }
                Some(b'A'..=b'Z') => match http::parse_request(data) {
                    Ok(req) => {
                        self.stats.http_requests += 1;
                        let mut hits = std::mem::take(&mut self.hits);
                        if let Some(raw) = req.host {
                            let mut host = String::new();
                            http::normalize_host(raw, &mut host);
                            match host.parse::<IpAddr>() {
                                Ok(ip) => self.m.lookup_ip(ip, conn.server().1, &mut |id| {
                                    hits.push((id, Field::HttpHost, host.clone(), None, None))
                                }),
                                Err(_) => self.m.lookup_domain(&host, &mut |id| {
                                    hits.push((id, Field::HttpHost, host.clone(), None, None))
                                }),
                            }
                        }
                        if self.m.has_urls() {
                            let mut url = String::new();
                            http::url_of(&req, &mut url);
                            self.m.lookup_url(&url, &mut |id| hits.push((id, Field::HttpUrl, url.clone(), None, None)));
                        }
                        for (id, f, v, l, via) in hits.drain(..) {
                            self.emit(conn, id, f, v, l, via);
                        }
                        self.hits = hits;
                        Progress::Done
                    }
                    Err(http::HttpError::Incomplete) => Progress::More,
                    Err(_) => Progress::Done,
                },
                _ => Progress::Done,
            }
        } else {
            if !self.has_certs || data.first() != Some(&0x16) {
                return Progress::Done;
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let mut fps = Vec::new();
            let r = tls::server_certificates(data, &mut scratch, |der| fps.push(tls::cert_fingerprints(der)));
            scratch.clear();
            self.scratch = scratch;
            let mut hits = std::mem::take(&mut self.hits);
            for (sha1, sha256) in fps {
                self.stats.certs_seen += 1;
                self.m.lookup_hash(Kind::Sha1Cert, &sha1, &mut |id| {
                    hits.push((id, Field::TlsCert, sha1.clone(), None, None))
                });
                self.m.lookup_hash(Kind::Sha256Cert, &sha256, &mut |id| {
                    hits.push((id, Field::TlsCert, sha256.clone(), None, None))
                });
            }
            for (id, f, v, l, via) in hits.drain(..) {
                self.emit(conn, id, f, v, l, via);
            }
            self.hits = hits;
            match r {
                Err(tls::TlsError::Incomplete) => Progress::More,
                _ => Progress::Done,
            }
        }
    }

    /// One DNS message: names against domain indicators, answer addresses against address
    /// indicators, and the correlation of flagged names with the addresses they resolve to.
    fn dns(&mut self, conn: &mut Conn, msg: &[u8]) {
        let Ok(parsed) = dns::parse(msg) else {
            self.stats.dns_errors += 1;
            return;
        };
        self.stats.dns_messages += 1;
        // Buffers kept from message to message: most messages hold a name or two, and nothing
        // read here outlives the message unless it matches.
        let mut read = std::mem::take(&mut self.dns_read);
        read.clear();
        let DnsRead { names, addrs, cnames } = &mut read;
        let names = std::cell::RefCell::new(names);
        let mut namebuf = std::mem::take(&mut self.namebuf);
        let r = parsed.walk(
            &mut namebuf,
            |q| {
                if let Some(n) = q.name.as_str() {
                    names.borrow_mut().push(n, Field::DnsQuery);
                }
            },
            |a| {
                let mut names = names.borrow_mut();
                if let Some(n) = a.name.as_str() {
                    if !names.iter().any(|(x, _)| x == n) {
                        names.push(n, Field::DnsAnswer);
                    }
                }
                match &a.data {
                    dns::Rdata::A(ip) => addrs.push((IpAddr::V4(*ip), a.ttl)),
                    dns::Rdata::Aaaa(ip) => addrs.push((IpAddr::V6(*ip), a.ttl)),
                    dns::Rdata::Cname(t) | dns::Rdata::Dname(t) => {
                        if let Some(t) = t.as_str() {
                            cnames.push(names.len());
                            names.push(t, Field::DnsAnswer);
                        }
                    }
                    _ => {}
                }
            },
        );
        self.namebuf = namebuf;
        if r.is_err() {
            self.stats.dns_errors += 1;
        }
        let mut hits = std::mem::take(&mut self.hits);
        let mut flagged_ids: Vec<Id> = Vec::new();
        let mut origin: Option<Arc<str>> = None;
        for (name, field) in read.names.iter() {
            if name.is_empty() {
                continue;
            }
            let before = hits.len();
            self.m.lookup_domain(name, &mut |id| hits.push((id, field, name.to_string(), None, None)));
            if hits.len() > before {
                flagged_ids.extend(hits[before..].iter().map(|h| h.0));
                origin.get_or_insert_with(|| Arc::from(name));
            } else if let Some(r) = self.dns.name(name, self.ts) {
                // A CNAME target of a flagged name, queried on its own.
                flagged_ids.extend(r.ids.iter().copied());
                origin.get_or_insert_with(|| r.name.clone());
            }
        }
        // An answer's addresses flag the DNS connection itself, which a worker only learning
        // from the message does not report on.
        if !self.learn_only {
            for (ip, _) in &read.addrs {
                self.m.lookup_ip(*ip, 0, &mut |id| hits.push((id, Field::DnsAnswer, ip.to_string(), None, None)));
            }
        }
        for (id, f, v, l, via) in hits.drain(..) {
            self.emit(conn, id, f, v, l, via);
        }
        self.hits = hits;
        if parsed.is_response && !flagged_ids.is_empty() {
            flagged_ids.sort_unstable();
            flagged_ids.dedup();
            let ids: Arc<[Id]> = Arc::from(flagged_ids);
            let name = origin.unwrap_or_else(|| Arc::from(""));
            for &(ip, ttl) in &read.addrs {
                let until = if self.opts.honour_ttl {
                    self.ts.saturating_add(ttl.clamp(60, 86_400) as i64 * 1_000_000)
                } else {
                    i64::MAX
                };
                let r = Resolved { ids: ids.clone(), name: name.clone(), until };
                if !self.learn_only {
                    self.stats.resolved_derived += 1;
                    self.sink.resolved(ip, &r);
                }
                self.dns.insert_addr(ip, r);
            }
            for &c in &read.cnames {
                let target = read.names.get(c).0;
                self.dns.insert_name(target, Resolved { ids: ids.clone(), name: name.clone(), until: i64::MAX });
            }
        }
        self.dns_read = read;
    }

    /// Raises one alert, unless this connection already raised it for that indicator and field.
    fn emit(
        &mut self,
        conn: &mut Conn,
        id: Id,
        field: Field,
        value: String,
        layer: Option<&'static str>,
        via: Option<Arc<str>>,
    ) {
        // Application fields of a tunnelled connection come from the inner layer.
        let layer = layer.or(conn.tunnel.as_ref().map(|_| "inner"));
        let outer = layer == Some("outer");
        if self.learn_only || conn.alerted.iter().any(|&(i, f, o)| i == id && f == field && o == outer) {
            return;
        }
        let meta = self.m.meta(id).clone();
        let activity = meta.activity_at(self.ts.div_euclid(1_000_000));
        if self.opts.active_only && !matches!(activity, Activity::Active | Activity::Undated) {
            self.stats.alerts_inactive_dropped += 1;
            return;
        }
        let (client, server) = (conn.client(), conn.server());
        if conn.alerted.is_empty() {
            self.stats.conns_flagged += 1;
            let host = if is_internal(server.0) && !is_internal(client.0) { server.0 } else { client.0 };
            // Bounded: a flood of flagged spoofed sources must not grow the summary without end.
            if self.stats.hosts.len() < MAX_HOSTS || self.stats.hosts.contains_key(&host) {
                *self.stats.hosts.entry(host).or_default() += 1;
            }
        }
        conn.alerted.push((id, field, outer));
        let prov = self.m.provenance(id).clone();
        let text = self.alert_text(id, field, &prov, &meta);
        self.stats.alerts += 1;
        match self.stats.alerts_by_set.get_mut(&prov.set) {
            Some(n) => *n += 1,
            None => {
                self.stats.alerts_by_set.insert(prov.set.clone(), 1);
            }
        }
        let per = match self.stats.alerts_by_indicator.get_mut(&prov.set) {
            Some(per) => per,
            None => self.stats.alerts_by_indicator.entry(prov.set.clone()).or_default(),
        };
        match per.get_mut(&*text.indicator) {
            Some(n) => *n += 1,
            None => {
                per.insert(text.indicator.to_string(), 1);
            }
        }
        let severity = match meta.confidence.as_deref() {
            Some("high") => 1,
            Some("medium") => 2,
            _ => 3,
        };
        let alert = Alert {
            timestamp: micros_to_rfc3339(self.ts),
            ts_micros: self.ts,
            event_type: "alert",
            src_ip: client.0,
            src_port: client.1,
            dest_ip: server.0,
            dest_port: server.1,
            proto: proto_name(conn.proto()),
            vlan: conn.vlans[..conn.vlan_count.min(2) as usize].to_vec(),
            tunnel: conn.tunnel.as_deref().cloned(),
            alert: EveAlert {
                action: "allowed",
                gid: 1,
                signature_id: text.sid,
                rev: 1,
                signature: text.signature.clone(),
                category: text.category.clone(),
                severity,
            },
            matched: Match {
                indicator: text.indicator.clone(),
                kind: text.kind,
                value,
                field,
                layer,
                resolved_from: via,
                active: matches!(activity, Activity::Active | Activity::Undated),
                activity,
                meta,
                source: prov,
            },
            capture: self.origin(),
        };
        self.sink.alert(alert);
    }

    /// The texts an alert on `id` in `field` repeats every time (the indicator as shown, the
    /// signature and its id, the category), made once: a few indicators usually raise most
    /// alerts. The cache is emptied when the set is replaced (ids change) or when it is full.
    fn alert_text(&mut self, id: Id, field: Field, prov: &Provenance, meta: &RowMeta) -> Arc<AlertText> {
        if let Some(t) = self.texts.get(&(id, field)) {
            return t.clone();
        }
        let ind = self.m.indicator(id);
        let indicator = crate::indicators::export::display_value(&ind);
        let sid = {
            use std::hash::BuildHasher;
            900_000_000
                + (foldhash::fast::FixedState::with_seed(3).hash_one((&prov.set, &indicator)) % 99_999_999) as u32
        };
        let t = Arc::new(AlertText {
            signature: format!("iocmatch {} {} in {}", field.as_str(), indicator, prov.set).into(),
            indicator: indicator.into(),
            category: meta.role.as_deref().unwrap_or("Advisory infrastructure").into(),
            kind: ind.kind,
            sid,
        });
        if self.texts.len() >= MAX_ALERT_TEXTS {
            self.texts.clear();
        }
        self.texts.insert((id, field), t.clone());
        t
    }

    fn origin(&self) -> Origin {
        let file = self.files.get(self.file as usize).cloned().unwrap_or_else(|| Arc::from(""));
        let (packet, line, exporter, sequence, sampling_rate) = match self.pos {
            Pos::Packet(n) => (Some(n), None, None, None, None),
            Pos::Line(n) => (None, Some(n), None, None, None),
            Pos::Export(e, s, rate) => (Some(self.packet).filter(|n| *n > 0), None, e, s, rate),
        };
        Origin { file, packet, line, exporter, sequence, sampling_rate }
    }

    /// A connection ended: the flow summary of a flagged one.
    fn end(&mut self, c: Conn, why: End) {
        if !c.flagged() {
            return;
        }
        if self.opts.keep_flagged {
            self.flagged.push((c.key, c.first_us, c.last_us));
        }
        let m = &self.m;
        // Shown as in the alerts: from their texts while these are kept.
        let mut indicators: Vec<Arc<str>> = c
            .alerted
            .iter()
            .map(|&(id, field, _)| match id.checked_sub(RETIRED) {
                Some(r) => Arc::from(self.retired[r as usize].as_str()),
                None => match self.texts.get(&(id, field)) {
                    Some(t) => t.indicator.clone(),
                    None => crate::indicators::export::display_value(&m.indicator(id)).into(),
                },
            })
            .collect();
        indicators.dedup();
        let (client, server) = (c.client(), c.server());
        let ev = FlowEvent {
            timestamp: micros_to_rfc3339(c.last_us),
            event_type: "flow",
            src_ip: client.0,
            src_port: client.1,
            dest_ip: server.0,
            dest_port: server.1,
            proto: proto_name(c.proto()),
            vlan: c.vlans[..c.vlan_count.min(2) as usize].to_vec(),
            tunnel: c.tunnel.as_deref().cloned(),
            flow: FlowCounters {
                pkts_toserver: c.pkts[0],
                pkts_toclient: c.pkts[1],
                bytes_toserver: c.bytes[0],
                bytes_toclient: c.bytes[1],
                start: micros_to_rfc3339(c.first_us),
                end: micros_to_rfc3339(c.last_us),
                reason: why.as_str(),
                alerted: true,
            },
            indicators,
            capture: Origin {
                file: self.files.get(c.file as usize).cloned().unwrap_or_else(|| Arc::from("")),
                packet: None,
                line: None,
                exporter: None,
                sequence: None,
                sampling_rate: None,
            },
        };
        self.sink.flow(ev);
    }
}

/// Position of the input being inspected, for the alert's `capture` field.
#[derive(Clone, Copy, Debug)]
enum Pos {
    Packet(u64),
    Line(u64),
    /// Exporter, sequence number, sampling rate.
    Export(Option<std::net::SocketAddr>, Option<u32>, Option<u32>),
}

enum Progress {
    Done,
    More,
}

use crate::source::flowlog::netflow::NetflowDecoder;
use crate::source::flowlog::sflow;
use crate::source::flowlog::Record;

impl<'m, S: Sink> Engine<'m, S> {
    /// Learns, without alerting, the addresses that flagged names resolved to in a flow log's
    /// DNS records: flow logs come in several files in any order, so DNS is read first.
    pub fn learn_dns(&mut self, r: &Record) {
        let Some(q) = r.names().dns_query.as_deref() else { return };
        let mut ids = Vec::new();
        self.core.m.lookup_domain(q, &mut |id| ids.push(id));
        for c in &r.names().dns_cnames {
            self.core.m.lookup_domain(c, &mut |id| ids.push(id));
        }
        if ids.is_empty() {
            return;
        }
        ids.sort_unstable();
        ids.dedup();
        let ids: Arc<[Id]> = Arc::from(ids);
        let name: Arc<str> = Arc::from(q);
        for ip in &r.names().dns_answers {
            self.core.stats.resolved_derived += 1;
            self.core.dns.insert_addr(*ip, Resolved { ids: ids.clone(), name: name.clone(), until: i64::MAX });
        }
    }

    /// The matcher in force (a handle that does not borrow the engine).
    pub(crate) fn matcher(&self) -> MatcherRef<'m> {
        self.core.m.clone()
    }

    /// Inspects one flow-log record: its addresses (and AWS packet addresses), names from DNS,
    /// TLS and HTTP logs, and the DNS correlation.
    pub fn record(&mut self, r: &Record) {
        let core = &mut self.core;
        core.stats.records += 1;
        core.ts = r.ts_micros;
        core.pos =
            if r.exporter.is_some() { Pos::Export(r.exporter, r.sequence, r.sampling_rate) } else { Pos::Line(r.line) };
        let (Some(src), Some(dst)) = (r.src, r.dst) else {
            // Name-only records (rare): no connection to attach them to.
            core.stats.records_skipped += 1;
            return;
        };
        let now = r.ts_micros;
        self.tick(now);
        let (key, _) = ConnKey::new(r.proto, (src, r.sport), (dst, r.dport));
        // One that idled past its timeout ends here, as a sweep would have ended it. A record
        // is a connection's summary already: only connections that matched are kept (to add
        // up their records and raise each alert once), so nearly all records find none.
        let mut known = false;
        if !self.conns.is_empty() {
            match self.conns.get(&key).map(|c| self.core.opts.limits.expired(c, now)) {
                Some(Some(why)) => {
                    if let Some(old) = self.conns.remove(&key) {
                        self.core.end(old, why);
                    }
                }
                Some(None) => known = true,
                None => {}
            }
        }
        let core = &mut self.core;
        let m = &*core.m;
        let mut hits = std::mem::take(&mut core.hits);
        let (cs, ss) = ((src, r.sport), (dst, r.dport));
        if !known {
            m.lookup_ip(cs.0, cs.1, &mut |id| hits.push((id, Field::FlowSrc, cs.0.to_string(), None, None)));
            m.lookup_ip(ss.0, ss.1, &mut |id| hits.push((id, Field::FlowDst, ss.0.to_string(), None, None)));
            for ip in [ss.0, cs.0] {
                if let Some(res) = core.dns.addr(&ip, now) {
                    for &id in res.ids.iter() {
                        hits.push((id, Field::DnsResolved, ip.to_string(), None, Some(res.name.clone())));
                    }
                }
            }
        }
        for (ip, field, port) in [(r.pkt_src, Field::FlowPktSrc, r.sport), (r.pkt_dst, Field::FlowPktDst, r.dport)] {
            if let Some(ip) = ip.filter(|ip| *ip != src && *ip != dst) {
                m.lookup_ip(ip, port, &mut |id| hits.push((id, field, ip.to_string(), None, None)));
            }
        }
        // Names come only with DNS, TLS and HTTP events: flow records skip this at one test.
        if let Some(names) = r.names.as_deref() {
            if let Some(sni) = names.tls_sni.as_deref() {
                m.lookup_domain(sni, &mut |id| hits.push((id, Field::TlsSni, sni.to_string(), None, None)));
            }
            if let Some(host) = names.http_host.as_deref() {
                let mut h = String::new();
                http::normalize_host(host, &mut h);
                match h.parse::<IpAddr>() {
                    Ok(ip) => {
                        m.lookup_ip(ip, r.dport, &mut |id| hits.push((id, Field::HttpHost, h.clone(), None, None)))
                    }
                    Err(_) => m.lookup_domain(&h, &mut |id| hits.push((id, Field::HttpHost, h.clone(), None, None))),
                }
                if let Some(uri) = names.http_uri.as_deref() {
                    let url = if uri.starts_with('/') { format!("{h}{uri}") } else { format!("{h}/{uri}") };
                    m.lookup_url(&url, &mut |id| hits.push((id, Field::HttpUrl, url.clone(), None, None)));
                }
            }
            if let Some(q) = names.dns_query.as_deref() {
                m.lookup_domain(q, &mut |id| hits.push((id, Field::DnsQuery, q.to_string(), None, None)));
                for c in &names.dns_cnames {
                    m.lookup_domain(c, &mut |id| hits.push((id, Field::DnsAnswer, c.clone(), None, None)));
                }
                for ip in &names.dns_answers {
                    m.lookup_ip(*ip, 0, &mut |id| hits.push((id, Field::DnsAnswer, ip.to_string(), None, None)));
                }
            }
        }
        if !known && hits.is_empty() {
            core.stats.conns += 1;
            core.hits = hits;
        } else {
            if !known && self.conns.len() >= self.core.opts.limits.max_conns {
                self.make_room(now);
            }
            let file = self.core.file;
            let (conn, _) = self.conns.get_or_insert_with(key, cs, || {
                let mut c = Conn::blank();
                c.first_us = now;
                c.file = file;
                c.app_done = [true; 2];
                c
            });
            let dir = conn.dir(cs);
            conn.pkts[dir] += r.pkts[0];
            conn.pkts[1 - dir] += r.pkts[1];
            conn.bytes[dir] += r.bytes[0];
            conn.bytes[1 - dir] += r.bytes[1];
            conn.last_us = conn.last_us.max(r.end_micros.unwrap_or(now)).max(now);
            let core = &mut self.core;
            if !known {
                core.stats.conns += 1;
            }
            for (id, f, v, l, via) in hits.drain(..) {
                core.emit(conn, id, f, v, l, via);
            }
            core.hits = hits;
        }
        if r.names().dns_query.is_some() {
            // Live collectors see DNS in time order: learn as we go too.
            self.learn_dns(r);
        }
    }

    /// NetFlow/IPFIX export packets inside a capture: their records are inspected like a
    /// flow log's.
    fn export_packet(&mut self, exporter: std::net::SocketAddr, payload: &[u8]) {
        let ts = self.core.ts;
        self.export_datagram(exporter, payload, ts);
    }

    /// One sFlow v5, NetFlow v5/v9 or IPFIX datagram from `exporter` (the collector, or a
    /// capture of export traffic). Malformed datagrams are counted, never fatal.
    pub fn export_datagram(&mut self, exporter: std::net::SocketAddr, payload: &[u8], ts_micros: i64) {
        if sflow::looks_like(payload) {
            return self.sflow_datagram(exporter, payload, ts_micros);
        }
        let packet = self.core.packet;
        self.core.ts = ts_micros;
        let mut warnings = Vec::new();
        // The decoder is taken out while it runs, so each record is matched as it is decoded
        // (no copy into a list first).
        let mut nf = self.netflow.take().unwrap_or_else(|| NetflowDecoder::new(4096));
        let missing = nf.stats().missing_template_records;
        let res = nf.decode(exporter, payload, ts_micros, |r| self.record(&r), |w| warnings.push(w));
        // Data sets dropped for want of their template are reported once per template; count each.
        self.core.stats.records_skipped += nf.stats().missing_template_records - missing;
        self.netflow = Some(nf);
        if let Err(e) = res {
            self.core.stats.records_skipped += 1;
            if self.core.stats.input_errors.len() < 100 {
                let f = self.core.files.get(self.core.file as usize).cloned().unwrap_or_else(|| Arc::from(""));
                self.core.stats.input_errors.push(format!("{f}: packet {packet}: NetFlow/IPFIX: {e}"));
            }
        }
        for w in warnings {
            if self.core.stats.input_errors.len() < 100 {
                self.core.stats.input_errors.push(w);
            }
        }
        // Back to the capture's own position, and the datagram's time (each record set its own).
        self.core.packet = packet;
        self.core.ts = ts_micros;
        self.core.pos = Pos::Packet(packet);
    }

    /// One sFlow v5 datagram: each sampled packet is matched as a flow record (see
    /// [`super::sampled`]). A sample that holds no IP packet is counted as a skipped record.
    fn sflow_datagram(&mut self, exporter: std::net::SocketAddr, payload: &[u8], ts_micros: i64) {
        let packet = self.core.packet;
        let mut skipped = 0;
        let res = super::sampled::records(payload, exporter, ts_micros, |r| match r {
            Some(r) => self.record(&r),
            None => skipped += 1,
        });
        self.core.stats.records_skipped += skipped;
        if let Err(e) = res {
            self.core.stats.records_skipped += 1;
            if self.core.stats.input_errors.len() < 100 {
                let f = self.core.files.get(self.core.file as usize).cloned().unwrap_or_else(|| Arc::from(""));
                self.core.stats.input_errors.push(format!("{f}: packet {packet}: {e}"));
            }
        }
        self.core.packet = packet;
        self.core.ts = ts_micros;
        self.core.pos = Pos::Packet(packet);
    }
}
