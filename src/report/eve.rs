//! EVE JSON lines, written straight into the output buffer.
//!
//! The derived `Serialize` impls of [`Alert`] and [`FlowEvent`] define the schema; this module
//! writes the same bytes without going through serde. Going through serde cost about 9,000
//! instructions per event (every key escaped, addresses through `fmt`, the flattened metadata
//! through a map serialiser), and a flow log with many hits writes two events per flagged
//! connection: on a NetFlow v5 capture that was a tenth of the run. A test renders thousands of
//! varied events both ways and requires identical output, so the two cannot drift apart.
//!
//! What is the same for every alert of an indicator (the `alert` object, the row metadata, the
//! source document) is rendered once, by serde, and copied from a cache (see
//! `alert::cached_json`).

use std::net::{IpAddr, Ipv4Addr};

use super::alert::{Alert, FlowEvent, Origin, Tunnel};
use crate::indicators::{Provenance, RowMeta};

/// Appends `a` as one JSON object (no newline).
pub fn alert(out: &mut Vec<u8>, a: &Alert) {
    head(out, &a.timestamp, a.event_type, a);
    out.extend_from_slice(b",\"alert\":");
    let e = &a.alert;
    match super::alert::eve_alert_cached(e) {
        Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
        // Not reached (the object always serialises); rendered by serde if it were.
        None => {
            let _ = serde_json::to_writer(&mut *out, e);
        }
    }
    let m = &a.matched;
    out.extend_from_slice(b",\"match\":{\"indicator\":");
    string(out, &m.indicator);
    out.extend_from_slice(b",\"type\":");
    string(out, m.kind.as_str());
    out.extend_from_slice(b",\"value\":");
    string(out, &m.value);
    out.extend_from_slice(b",\"field\":");
    string(out, m.field.as_str());
    if let Some(layer) = m.layer {
        out.extend_from_slice(b",\"layer\":");
        string(out, layer);
    }
    if let Some(from) = &m.resolved_from {
        out.extend_from_slice(b",\"resolved_from\":");
        string(out, from);
    }
    out.extend_from_slice(b",\"activity\":");
    string(out, m.activity.as_str());
    out.extend_from_slice(if m.active { b",\"active\":true" } else { b",\"active\":false" });
    meta(out, &m.meta);
    out.extend_from_slice(b",\"source\":");
    source(out, &m.source);
    out.push(b'}');
    origin(out, &a.capture);
    out.push(b'}');
}

/// Appends `f` as one JSON object (no newline).
pub fn flow(out: &mut Vec<u8>, f: &FlowEvent) {
    head(out, &f.timestamp, f.event_type, f);
    let c = &f.flow;
    out.extend_from_slice(b",\"flow\":{\"pkts_toserver\":");
    int(out, c.pkts_toserver);
    out.extend_from_slice(b",\"pkts_toclient\":");
    int(out, c.pkts_toclient);
    out.extend_from_slice(b",\"bytes_toserver\":");
    int(out, c.bytes_toserver);
    out.extend_from_slice(b",\"bytes_toclient\":");
    int(out, c.bytes_toclient);
    out.extend_from_slice(b",\"start\":");
    string(out, &c.start);
    out.extend_from_slice(b",\"end\":");
    string(out, &c.end);
    out.extend_from_slice(b",\"reason\":");
    string(out, c.reason);
    out.extend_from_slice(if c.alerted { b",\"alerted\":true}" } else { b",\"alerted\":false}" });
    out.extend_from_slice(b",\"indicators\":");
    array(out, &f.indicators, |out, v| string(out, v));
    origin(out, &f.capture);
    out.push(b'}');
}

/// What alerts and flow events share: the connection.
trait Endpoints {
    fn endpoints(&self) -> (IpAddr, u16, IpAddr, u16, &'static str, &[u16], Option<&Tunnel>);
}

impl Endpoints for Alert {
    fn endpoints(&self) -> (IpAddr, u16, IpAddr, u16, &'static str, &[u16], Option<&Tunnel>) {
        (self.src_ip, self.src_port, self.dest_ip, self.dest_port, self.proto, &self.vlan, self.tunnel.as_ref())
    }
}

impl Endpoints for FlowEvent {
    fn endpoints(&self) -> (IpAddr, u16, IpAddr, u16, &'static str, &[u16], Option<&Tunnel>) {
        (self.src_ip, self.src_port, self.dest_ip, self.dest_port, self.proto, &self.vlan, self.tunnel.as_ref())
    }
}

/// `{"timestamp":…` up to and including the tunnel, without the closing brace.
fn head(out: &mut Vec<u8>, timestamp: &str, event_type: &str, e: &impl Endpoints) {
    let (src, sport, dst, dport, proto, vlan, tunnel) = e.endpoints();
    out.extend_from_slice(b"{\"timestamp\":");
    string(out, timestamp);
    out.extend_from_slice(b",\"event_type\":");
    string(out, event_type);
    out.extend_from_slice(b",\"src_ip\":");
    ip(out, src);
    out.extend_from_slice(b",\"src_port\":");
    int(out, sport);
    out.extend_from_slice(b",\"dest_ip\":");
    ip(out, dst);
    out.extend_from_slice(b",\"dest_port\":");
    int(out, dport);
    out.extend_from_slice(b",\"proto\":");
    string(out, proto);
    if !vlan.is_empty() {
        out.extend_from_slice(b",\"vlan\":");
        array(out, vlan, |out, &v| int(out, v));
    }
    if let Some(t) = tunnel {
        out.extend_from_slice(b",\"tunnel\":{\"src_ip\":");
        ip(out, t.src_ip);
        out.extend_from_slice(b",\"dest_ip\":");
        ip(out, t.dest_ip);
        if let Some(p) = t.src_port {
            out.extend_from_slice(b",\"src_port\":");
            int(out, p);
        }
        if let Some(p) = t.dest_port {
            out.extend_from_slice(b",\"dest_port\":");
            int(out, p);
        }
        out.extend_from_slice(b",\"proto\":");
        string(out, t.proto);
        out.extend_from_slice(b",\"type\":");
        string(out, t.kind);
        out.extend_from_slice(b",\"depth\":");
        int(out, t.depth);
        out.push(b'}');
    }
}

/// `,"capture":{…}`.
fn origin(out: &mut Vec<u8>, o: &Origin) {
    out.extend_from_slice(b",\"capture\":{\"file\":");
    string(out, &o.file);
    if let Some(n) = o.packet {
        out.extend_from_slice(b",\"packet\":");
        int(out, n);
    }
    if let Some(n) = o.line {
        out.extend_from_slice(b",\"line\":");
        int(out, n);
    }
    if let Some(e) = o.exporter {
        use std::io::Write;
        out.extend_from_slice(b",\"exporter\":\"");
        let _ = write!(out, "{e}");
        out.push(b'"');
    }
    if let Some(n) = o.sequence {
        out.extend_from_slice(b",\"sequence\":");
        int(out, n);
    }
    if let Some(n) = o.sampling_rate {
        out.extend_from_slice(b",\"sampling_rate\":");
        int(out, n);
    }
    out.push(b'}');
}

/// The row metadata's fields, flattened into the enclosing object (each with a leading comma).
fn meta(out: &mut Vec<u8>, m: &std::sync::Arc<RowMeta>) {
    let Some(raw) = super::alert::meta_cached(m) else {
        // Not reached (the metadata always serialises); rendered by serde if it were.
        if let Ok(v) = serde_json::to_vec(&**m) {
            flatten_into(out, &v);
        }
        return;
    };
    flatten_into(out, raw.get().as_bytes());
}

/// Appends the members of a JSON object (`{…}`), each after a comma.
fn flatten_into(out: &mut Vec<u8>, object: &[u8]) {
    if let Some(inner) = object.strip_prefix(b"{").and_then(|o| o.strip_suffix(b"}")).filter(|i| !i.is_empty()) {
        out.push(b',');
        out.extend_from_slice(inner);
    }
}

fn source(out: &mut Vec<u8>, p: &std::sync::Arc<Provenance>) {
    match super::alert::source_cached(p) {
        Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
        None => {
            let _ = serde_json::to_writer(&mut *out, &**p);
        }
    }
}

/// A JSON array of `items`, each written by `item`.
fn array<T>(out: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, x);
    }
    out.push(b']');
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn ip(out: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => {
            out.push(b'"');
            ipv4(out, a);
            out.push(b'"');
        }
        IpAddr::V6(a) => {
            use std::io::Write;
            out.push(b'"');
            let _ = write!(out, "{a}");
            out.push(b'"');
        }
    }
}

fn ipv4(out: &mut Vec<u8>, a: Ipv4Addr) {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        int(out, o);
    }
}

/// A JSON string, escaped as serde_json escapes: `"`, `\` and the control characters below
/// 0x20, the common ones by their short forms; everything else (UTF-8 included) as it is.
/// Eight bytes are checked at a time, and runs without any of these are copied whole.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let b = s.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        if let Some(w) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(w.try_into().unwrap_or_default());
            if !needs_escape(w) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        if c >= 0x20 && c != b'"' && c != b'\\' {
            i += 1;
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(c >> 4)]);
                out.push(HEX[usize::from(c & 0xf)]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `w` is below 0x20, `"` or `\` (exact as a yes/no: the
/// borrows that can mark a byte after a true one never mark a word that has none).
#[inline]
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    below(w, 0x20) || below(w ^ (ONES * u64::from(b'"')), 1) || below(w ^ (ONES * u64::from(b'\\')), 1)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddr};
    use std::sync::Arc;

    use super::*;
    use crate::indicators::{Activity, Kind};
    use crate::report::alert::{EveAlert, Field, FlowCounters, Match};
    use crate::synth::XorShift;

    const FIELDS: [Field; 14] = [
        Field::IpSrc,
        Field::IpDst,
        Field::DnsQuery,
        Field::DnsAnswer,
        Field::DnsResolved,
        Field::TlsSni,
        Field::TlsCert,
        Field::TlsJa3,
        Field::HttpHost,
        Field::HttpUrl,
        Field::FlowSrc,
        Field::FlowDst,
        Field::FlowPktSrc,
        Field::FlowPktDst,
    ];
    const ACTIVITY: [Activity; 5] =
        [Activity::Active, Activity::BeforeFirstSeen, Activity::AfterLastSeen, Activity::Expired, Activity::Undated];

    /// Text with what escaping must get right: quotes, backslashes, every control character,
    /// DEL, multi-byte UTF-8, at every position relative to an eight-byte word.
    fn text(r: &mut XorShift) -> String {
        const PIECES: [&str; 12] = [
            "",
            "a",
            "evil.example",
            "\"",
            "\\",
            "\n\r\t",
            "\u{8}\u{c}",
            "ünï©ødé ✓",
            "\u{7f}",
            "/",
            "0123456789",
            " ",
        ];
        let mut s = String::new();
        for _ in 0..r.below(6) {
            if r.below(5) == 0 {
                s.push(char::from(r.below(0x20) as u8));
            } else {
                s.push_str(PIECES[r.below(PIECES.len() as u64) as usize]);
            }
        }
        s
    }

    fn arc(r: &mut XorShift) -> Arc<str> {
        Arc::from(text(r))
    }

    fn maybe<T>(r: &mut XorShift, f: impl FnOnce(&mut XorShift) -> T) -> Option<T> {
        (r.below(2) == 0).then(|| f(r))
    }

    fn ip(r: &mut XorShift) -> IpAddr {
        let x = r.next_u64();
        match r.below(5) {
            0 | 1 => IpAddr::V4(Ipv4Addr::from(x as u32)),
            2 => IpAddr::V6(Ipv6Addr::from(u128::from(x) << 64 | u128::from(r.next_u64()))),
            3 => IpAddr::V6(Ipv4Addr::from(x as u32).to_ipv6_mapped()),
            _ => IpAddr::V6(Ipv6Addr::from(u128::from(x & 0xffff) << (16 * r.below(8)))),
        }
    }

    fn head(r: &mut XorShift) -> (IpAddr, u16, IpAddr, u16, Vec<u16>, Option<Tunnel>, Origin) {
        let vlan = (0..r.below(3)).map(|_| r.below(4096) as u16).collect();
        let tunnel = maybe(r, |r| Tunnel {
            src_ip: ip(r),
            dest_ip: ip(r),
            src_port: maybe(r, |r| r.below(65536) as u16),
            dest_port: maybe(r, |r| r.below(65536) as u16),
            proto: ["UDP", "GRE", "IPv4"][r.below(3) as usize],
            kind: ["gre", "vxlan", "gtp-u"][r.below(3) as usize],
            depth: r.below(256) as u8,
        });
        let capture = Origin {
            file: arc(r),
            packet: maybe(r, |r| r.next_u64()),
            line: maybe(r, |r| r.below(1 << 40)),
            exporter: maybe(r, |r| SocketAddr::new(ip(r), r.below(65536) as u16)),
            sequence: maybe(r, |r| r.next_u64() as u32),
            sampling_rate: maybe(r, |r| r.next_u64() as u32),
        };
        (ip(r), r.below(65536) as u16, ip(r), r.below(65536) as u16, vlan, tunnel, capture)
    }

    fn alert(r: &mut XorShift) -> Alert {
        let (src_ip, src_port, dest_ip, dest_port, vlan, tunnel, capture) = head(r);
        let date = |r: &mut XorShift| r.below(4_000_000_000) as i64 - 1_000_000_000;
        let meta = RowMeta {
            first_seen: maybe(r, date),
            last_seen: maybe(r, date),
            valid_from: maybe(r, date),
            valid_until: maybe(r, date),
            role: maybe(r, arc),
            confidence: maybe(r, arc),
            tags: (0..r.below(3)).map(|_| arc(r)).collect(),
            extra: (0..r.below(3)).map(|_| (arc(r), arc(r))).collect(),
        };
        let source = Provenance {
            set: text(r),
            title: text(r),
            publisher: text(r),
            date: maybe(r, text),
            url: maybe(r, text),
            actor: maybe(r, text),
            entity: maybe(r, text),
            tags: (0..r.below(3)).map(|_| text(r)).collect(),
            file: text(r),
            format: ["csv", "stix", "misp"][r.below(3) as usize],
        };
        Alert {
            timestamp: text(r),
            ts_micros: 0,
            event_type: "alert",
            src_ip,
            src_port,
            dest_ip,
            dest_port,
            proto: ["TCP", "UDP", "ICMP", "47"][r.below(4) as usize],
            vlan,
            tunnel,
            alert: EveAlert {
                action: "allowed",
                gid: 1,
                signature_id: r.next_u64() as u32,
                rev: 1,
                signature: arc(r),
                category: arc(r),
                severity: r.below(4) as u8,
            },
            matched: Match {
                indicator: arc(r),
                kind: Kind::ALL[r.below(Kind::ALL.len() as u64) as usize],
                value: text(r),
                field: FIELDS[r.below(FIELDS.len() as u64) as usize],
                layer: maybe(r, |r| ["inner", "outer"][r.below(2) as usize]),
                resolved_from: maybe(r, arc),
                activity: ACTIVITY[r.below(5) as usize],
                active: r.below(2) == 0,
                meta: Arc::new(meta),
                source: Arc::new(source),
            },
            capture,
        }
    }

    fn flow_event(r: &mut XorShift) -> FlowEvent {
        let (src_ip, src_port, dest_ip, dest_port, vlan, tunnel, capture) = head(r);
        FlowEvent {
            timestamp: text(r),
            event_type: "flow",
            src_ip,
            src_port,
            dest_ip,
            dest_port,
            proto: "UDP",
            vlan,
            tunnel,
            flow: FlowCounters {
                pkts_toserver: r.next_u64(),
                pkts_toclient: r.below(10),
                bytes_toserver: r.next_u64() >> r.below(64),
                bytes_toclient: 0,
                start: text(r),
                end: text(r),
                reason: ["closed", "timeout", "evicted", "end-of-input"][r.below(4) as usize],
                alerted: r.below(2) == 0,
            },
            indicators: (0..r.below(4)).map(|_| arc(r)).collect(),
            capture,
        }
    }

    #[test]
    fn writes_exactly_what_serde_writes() {
        let mut r = XorShift(0x853c_49e6_748f_ea9b);
        for _ in 0..5_000 {
            let a = alert(&mut r);
            let mut ours = Vec::new();
            super::alert(&mut ours, &a);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&a).unwrap());
            let f = flow_event(&mut r);
            let mut ours = Vec::new();
            super::flow(&mut ours, &f);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&f).unwrap());
        }
    }

    #[test]
    fn escapes_every_byte_below_0x20_and_quotes_wherever_they_fall() {
        for len in 0..20 {
            for at in 0..len {
                for c in (0u8..0x20).chain([b'"', b'\\', 0x7f, b'a']) {
                    let mut s = vec![b'x'; len];
                    s[at] = c;
                    let s = String::from_utf8(s).unwrap();
                    let mut ours = Vec::new();
                    string(&mut ours, &s);
                    assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&s).unwrap(), "{s:?}");
                }
            }
        }
    }
}
