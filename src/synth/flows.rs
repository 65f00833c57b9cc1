//! Synthetic flows rendered as every flow-log format iocmatch reads, with the truth of which
//! flows must be flagged and why. Deterministic: the same seed gives the same bytes.
//!
//! [`generate`] plants flows whose destination (or source) is an indicator address, inside an
//! indicator network, or an address a planted DNS answer for an indicator domain resolved to;
//! NAT flows whose translated destination (AWS `pkt-dstaddr`, NetFlow/IPFIX IE 226) is the
//! indicator; and near misses that must stay quiet: the address just below an indicator network,
//! a name `x<indicator-domain>` and what it resolved to. [`Scenario::expected`] says what a
//! format that carries (or lacks) IPv6, NAT addresses and DNS must flag.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One connection as a sensor would log it.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    pub ts_micros: i64,
    pub duration_micros: i64,
    pub src: IpAddr,
    pub sport: u16,
    /// For NAT flows, the NAT address (AWS `dstaddr`); the real destination is `pkt_dst`.
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: u8,
    /// `[src->dst, dst->src]`.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub pkt_dst: Option<IpAddr>,
}

/// One DNS exchange: a query and its answers.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsTx {
    pub ts_micros: i64,
    pub client: (IpAddr, u16),
    pub resolver: (IpAddr, u16),
    pub query: String,
    pub answers: Vec<IpAddr>,
}

/// Why a flow must be flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Destination is a listed address or inside a listed network (`flow.dst`).
    Dst,
    /// Source is listed (an inbound connection from the indicator; `flow.src`).
    Src,
    /// The NAT'd destination is listed (`flow.pkt_dst`).
    PktDst,
    /// Destination is an address a flagged name resolved to (`dns.resolved`).
    Resolved,
    /// A DNS query for a listed domain (`dns.query`).
    DnsQuery,
}

impl Reason {
    /// The alert's `match.field`.
    pub fn field(self) -> &'static str {
        match self {
            Reason::Dst => "flow.dst",
            Reason::Src => "flow.src",
            Reason::PktDst => "flow.pkt_dst",
            Reason::Resolved => "dns.resolved",
            Reason::DnsQuery => "dns.query",
        }
    }
}

/// Which record an expectation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    Flow(usize),
    Dns(usize),
}

/// A flagged connection that must be reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub item: Item,
    pub key: TupleKey,
    pub reason: Reason,
    /// The indicator as alerts display it.
    pub indicator: String,
}

/// A 5-tuple with its two ends in a fixed order (either direction gives the same key).
pub type TupleKey = (u8, (IpAddr, u16), (IpAddr, u16));

/// The direction-independent key of a 5-tuple.
pub fn tuple_key(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> TupleKey {
    if a <= b {
        (proto, a, b)
    } else {
        (proto, b, a)
    }
}

/// What a format can carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    pub ipv6: bool,
    /// NAT / packet addresses (AWS `pkt-dstaddr`, IPFIX/v9 post-NAT IEs).
    pub pkt_dst: bool,
    /// The DNS exchanges are given to the scan too.
    pub dns: bool,
}

/// Generated flows, DNS exchanges, the indicator set and the truth.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub flows: Vec<Flow>,
    pub dns: Vec<DnsTx>,
    /// The indicator set in the project's CSV (`indicator,type`).
    pub indicators_csv: String,
    /// Why each flow must be flagged (None = must not be), given every capability.
    pub flow_reasons: Vec<Option<(Reason, String)>>,
    /// Why each DNS exchange must be flagged (its query names a listed domain).
    pub dns_reasons: Vec<Option<(Reason, String)>>,
}

/// Listed single addresses.
pub const IPV4_LISTED: [&str; 4] = ["203.0.113.10", "203.0.113.11", "203.0.113.77", "203.0.113.200"];
pub const IPV6_LISTED: [&str; 2] = ["2001:db8:66::1", "2001:db8:66::beef"];
/// Listed networks and, for each, the address just below it (a near miss).
pub const CIDRS: [(&str, &str); 2] =
    [("192.0.2.64/26", "192.0.2.63"), ("2001:db8:bad::/48", "2001:db8:bac:ffff:ffff:ffff:ffff:ffff")];
pub const DOMAINS: [&str; 3] = ["raptor-c2.net", "flaxnode.com", "tunnelhub.org"];
/// The resolver every DNS exchange goes to.
pub const RESOLVER: &str = "10.0.0.53";
pub const RESOLVER6: &str = "fd00::53";

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Start of the generated traffic: 2024-09-04T12:00:00Z.
pub const START_MICROS: i64 = 1_725_451_200_000_000;

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Generates `n` flows (about one in eight planted or decoy) and the DNS exchanges behind them.
pub fn generate(n: usize, seed: u64) -> Scenario {
    let mut rng = Rng(seed | 1);
    let mut s = Scenario {
        flows: Vec::with_capacity(n),
        dns: Vec::new(),
        indicators_csv: String::from("indicator,type\n"),
        flow_reasons: Vec::with_capacity(n),
        dns_reasons: Vec::new(),
    };
    for a in IPV4_LISTED {
        let _ = writeln!(s.indicators_csv, "{a},ipv4");
    }
    for a in IPV6_LISTED {
        let _ = writeln!(s.indicators_csv, "{a},ipv6");
    }
    for (c, _) in CIDRS {
        let _ = writeln!(s.indicators_csv, "{c},cidr");
    }
    for d in DOMAINS {
        let _ = writeln!(s.indicators_csv, "{d},domain");
    }
    let resolver4 = v4(RESOLVER);
    let resolver6 = v4(RESOLVER6);
    let mut dns_port = 30000u16;
    for i in 0..n {
        let ts = START_MICROS + i as i64 * 10_000;
        let v6 = rng.below(5) == 0;
        let client: IpAddr = if v6 {
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0x20, 0, 0, (i >> 8) as u16, (i & 0xff) as u16 + 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 20, (i % 16) as u8, (i / 16 % 250) as u8 + 1))
        };
        let sport = 10_000 + (i % 50_000) as u16;
        let (proto, dport) = match rng.below(10) {
            0 => (17, 123),
            1 => (17, 443),
            2 => (6, 22),
            3 | 4 => (6, 80),
            _ => (6, 443),
        };
        let benign: IpAddr = if v6 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, rng.below(65536) as u16, rng.below(65535) as u16 + 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(198, 18, rng.below(256) as u8, rng.below(254) as u8 + 1))
        };
        let mut f = Flow {
            ts_micros: ts,
            duration_micros: rng.below(30_000_000) as i64 + 1000,
            src: client,
            sport,
            dst: benign,
            dport,
            proto,
            pkts: [rng.below(50) + 1, rng.below(50) + 1],
            bytes: [0, 0],
            pkt_dst: None,
        };
        f.bytes = [f.pkts[0] * 80 + rng.below(1000), f.pkts[1] * 200 + rng.below(5000)];
        let mut reason = None;
        let kind = if i % 8 == 7 { rng.below(9) } else { 99 };
        let mut dns = |s: &mut Scenario, name: String, answer: IpAddr, listed: Option<&str>| {
            dns_port = dns_port.wrapping_add(1).max(30000);
            let resolver = if client.is_ipv6() { resolver6 } else { resolver4 };
            s.dns.push(DnsTx {
                ts_micros: ts - 5_000,
                client: (client, dns_port),
                resolver: (resolver, 53),
                query: name,
                answers: vec![answer],
            });
            s.dns_reasons.push(listed.map(|d| (Reason::DnsQuery, d.to_string())));
        };
        match kind {
            0 => {
                let a = if v6 { IPV6_LISTED[rng.below(2) as usize] } else { IPV4_LISTED[rng.below(4) as usize] };
                f.dst = v4(a);
                reason = Some((Reason::Dst, a.to_string()));
            }
            1 => {
                // Inside a listed network.
                let (net, _) = CIDRS[v6 as usize];
                f.dst = if v6 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xbad, rng.below(65536) as u16, 0, 0, 0, 7))
                } else {
                    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 64 + rng.below(64) as u8))
                };
                reason = Some((Reason::Dst, net.to_string()));
            }
            2 => {
                // Inbound from a listed address to one of ours.
                let a = IPV4_LISTED[rng.below(4) as usize];
                if !v6 {
                    f.src = v4(a);
                    f.sport = 40_000 + (i % 20_000) as u16;
                    f.dst = client;
                    f.dport = 22;
                    f.proto = 6;
                    reason = Some((Reason::Src, a.to_string()));
                }
            }
            3 | 4 => {
                // A flagged name resolved to an unlisted address; the flow goes there.
                let d = DOMAINS[rng.below(3) as usize];
                let name = if kind == 3 { format!("n{i}.{d}") } else { d.to_string() };
                let answer = if v6 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, i as u16))
                } else {
                    IpAddr::V4(Ipv4Addr::from(0x6446_0000 + i as u32)) // 100.70.0.0 + i
                };
                dns(&mut s, name, answer, Some(d));
                f.dst = answer;
                reason = Some((Reason::Resolved, d.to_string()));
            }
            5 => {
                // Near miss: `x<domain>` is not a subdomain.
                let d = DOMAINS[rng.below(3) as usize];
                let answer = if v6 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x52, 0, 0, 0, 0, i as u16))
                } else {
                    IpAddr::V4(Ipv4Addr::from(0x6447_0000 + i as u32)) // 100.71.0.0 + i
                };
                dns(&mut s, format!("x{d}"), answer, None);
                f.dst = answer;
            }
            6 => {
                // Near miss: the address just below a listed network.
                f.dst = v4(CIDRS[v6 as usize].1);
            }
            7 if !v6 => {
                // NAT: the flow log shows the NAT address, the packet address is listed.
                let a = IPV4_LISTED[rng.below(4) as usize];
                f.dst = IpAddr::V4(Ipv4Addr::new(100, 64, (i >> 8) as u8, (i & 0xff) as u8));
                f.pkt_dst = Some(v4(a));
                reason = Some((Reason::PktDst, a.to_string()));
            }
            8 => {
                // A benign DNS exchange and flow.
                let answer = if v6 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x53, 0, 0, 0, 0, i as u16))
                } else {
                    IpAddr::V4(Ipv4Addr::from(0x6448_0000 + i as u32)) // 100.72.0.0 + i
                };
                dns(&mut s, format!("www{}.example.com", i % 7), answer, None);
                f.dst = answer;
            }
            _ => {}
        }
        s.flows.push(f);
        s.flow_reasons.push(reason);
    }
    s
}

impl Scenario {
    /// Flows a format can render (NetFlow v5 drops IPv6 flows).
    pub fn flows_for(&self, caps: Caps) -> Vec<usize> {
        (0..self.flows.len()).filter(|&i| caps.ipv6 || self.flows[i].src.is_ipv4()).collect()
    }

    /// What a scan of the rendered `flows` (indexes into `self.flows`), plus the DNS exchanges
    /// when `caps.dns`, must flag.
    pub fn expected(&self, flows: &[usize], caps: Caps) -> Vec<Expect> {
        let mut out = Vec::new();
        for &i in flows {
            let f = &self.flows[i];
            let Some((reason, ind)) = &self.flow_reasons[i] else { continue };
            let ok = match reason {
                Reason::PktDst => caps.pkt_dst,
                Reason::Resolved => caps.dns,
                _ => true,
            };
            if ok {
                out.push(Expect {
                    item: Item::Flow(i),
                    key: tuple_key(f.proto, (f.src, f.sport), (f.dst, f.dport)),
                    reason: *reason,
                    indicator: ind.clone(),
                });
            }
        }
        if caps.dns {
            for (i, (d, why)) in self.dns.iter().zip(&self.dns_reasons).enumerate() {
                if let Some((reason, ind)) = why {
                    if caps.ipv6 || d.client.0.is_ipv4() {
                        out.push(Expect {
                            item: Item::Dns(i),
                            key: tuple_key(17, d.client, d.resolver),
                            reason: *reason,
                            indicator: ind.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// A rendered text log: its bytes and, per rendered flow and DNS exchange, the 1-based line
/// (for Azure, the flow-tuple number) of its first record.
#[derive(Clone, Debug, Default)]
pub struct Text {
    pub data: String,
    pub flow_lines: BTreeMap<usize, u64>,
    pub dns_lines: BTreeMap<usize, u64>,
}

/// Keeps a running line count without rescanning.
struct Lines {
    t: Text,
    n: u64,
}

impl Lines {
    fn new() -> Self {
        Lines { t: Text::default(), n: 0 }
    }
    fn push(&mut self, s: &str) -> u64 {
        self.t.data.push_str(s);
        self.t.data.push('\n');
        self.n += 1;
        self.n
    }
}

fn secs(us: i64) -> String {
    format!("{}.{:06}", us.div_euclid(1_000_000), us.rem_euclid(1_000_000))
}

fn iso(us: i64) -> String {
    let mut s = String::new();
    crate::time::format_micros(us.div_euclid(1_000_000), us.rem_euclid(1_000_000) as u32, &mut s);
    s
}

/// EVE writes timestamps with a numeric offset.
fn iso_eve(us: i64) -> String {
    iso(us).replace('Z', "+0000")
}

/// Suricata writes IPv6 addresses in full, zero-padded.
fn eve_ip(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a.segments().iter().map(|s| format!("{s:04x}")).collect::<Vec<_>>().join(":"),
    }
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        1 => "icmp",
        _ => "unknown_transport",
    }
}

fn service(f: &Flow) -> &'static str {
    match (f.proto, f.dport) {
        (6, 443) => "ssl",
        (6, 80) => "http",
        (6, 22) => "ssh",
        (17, 123) => "ntp",
        _ => "-",
    }
}

const ZEEK_CONN_FIELDS: &str = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\t\
orig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\t\
resp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto";
const ZEEK_CONN_TYPES: &str = "time\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\t\
bool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tcount";

fn zeek_header(l: &mut Lines, path: &str, fields: &str, types: &str) {
    l.push("#separator \\x09");
    l.push("#set_separator\t,");
    l.push("#empty_field\t(empty)");
    l.push("#unset_field\t-");
    l.push(&format!("#path\t{path}"));
    l.push("#open\t2024-09-04-12-00-00");
    l.push(&format!("#fields\t{fields}"));
    l.push(&format!("#types\t{types}"));
}

fn uid(i: usize, salt: char) -> String {
    format!("C{salt}{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Zeek conn.log, TSV with the standard header (`#fields`, `#types`, `#close`).
pub fn zeek_conn_tsv(s: &Scenario, flows: &[usize]) -> Text {
    let mut l = Lines::new();
    zeek_header(&mut l, "conn", ZEEK_CONN_FIELDS, ZEEK_CONN_TYPES);
    for &i in flows {
        let f = &s.flows[i];
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\tSF\tT\tF\t0\tShADadFf\t{}\t{}\t{}\t{}\t(empty)\t{}",
            secs(f.ts_micros),
            uid(i, 'a'),
            f.src,
            f.sport,
            f.dst,
            f.dport,
            proto_name(f.proto),
            service(f),
            secs(f.duration_micros),
            f.bytes[0],
            f.bytes[1],
            f.pkts[0],
            f.bytes[0] + 40 * f.pkts[0],
            f.pkts[1],
            f.bytes[1] + 40 * f.pkts[1],
            f.proto,
        );
        let n = l.push(&line);
        l.t.flow_lines.insert(i, n);
    }
    l.push("#close\t2024-09-04-13-00-00");
    l.t
}

/// Zeek conn.log as JSON lines (`LogAscii::use_json=T`, epoch `ts`).
pub fn zeek_conn_json(s: &Scenario, flows: &[usize]) -> Text {
    let mut l = Lines::new();
    for &i in flows {
        let f = &s.flows[i];
        let mut v = serde_json::json!({
            "ts": f.ts_micros as f64 / 1e6,
            "uid": uid(i, 'a'),
            "id.orig_h": f.src.to_string(),
            "id.orig_p": f.sport,
            "id.resp_h": f.dst.to_string(),
            "id.resp_p": f.dport,
            "proto": proto_name(f.proto),
            "duration": f.duration_micros as f64 / 1e6,
            "orig_bytes": f.bytes[0],
            "resp_bytes": f.bytes[1],
            "conn_state": "SF",
            "local_orig": true,
            "local_resp": false,
            "missed_bytes": 0,
            "history": "ShADadFf",
            "orig_pkts": f.pkts[0],
            "orig_ip_bytes": f.bytes[0] + 40 * f.pkts[0],
            "resp_pkts": f.pkts[1],
            "resp_ip_bytes": f.bytes[1] + 40 * f.pkts[1],
            "tunnel_parents": [],
        });
        if service(f) != "-" {
            v["service"] = service(f).into();
        }
        let n = l.push(&v.to_string());
        l.t.flow_lines.insert(i, n);
    }
    l.t
}

/// Zeek dns.log, TSV (answers as a `,`-separated vector).
pub fn zeek_dns_tsv(s: &Scenario, ipv6: bool) -> Text {
    let mut l = Lines::new();
    zeek_header(
        &mut l,
        "dns",
        "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqclass_name\t\
         qtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected",
        "time\tstring\taddr\tport\taddr\tport\tenum\tcount\tinterval\tstring\tcount\tstring\tcount\tstring\tcount\t\
         string\tbool\tbool\tbool\tbool\tcount\tvector[string]\tvector[interval]\tbool",
    );
    for (i, d) in s.dns.iter().enumerate() {
        if !ipv6 && d.client.0.is_ipv6() {
            continue;
        }
        let v6 = d.answers.iter().any(|a| a.is_ipv6());
        let answers: Vec<String> = d.answers.iter().map(|a| a.to_string()).collect();
        let ttls: Vec<&str> = d.answers.iter().map(|_| "300.000000").collect();
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}\tudp\t{}\t0.012000\t{}\t1\tC_INTERNET\t{}\t{}\t0\tNOERROR\tF\tF\tT\tT\t0\t{}\t{}\tF",
            secs(d.ts_micros),
            uid(i, 'd'),
            d.client.0,
            d.client.1,
            d.resolver.0,
            d.resolver.1,
            i % 65536,
            d.query,
            if v6 { 28 } else { 1 },
            if v6 { "AAAA" } else { "A" },
            answers.join(","),
            ttls.join(","),
        );
        let n = l.push(&line);
        l.t.dns_lines.insert(i, n);
    }
    l.push("#close\t2024-09-04-13-00-00");
    l.t
}

/// How EVE reports connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EveKind {
    /// One bidirectional `flow` event per connection.
    Flow,
    /// Two `netflow` events per connection, one per direction.
    Netflow,
}

/// Suricata EVE JSON: flow or netflow events, and (with `with_dns`) dns events in time order:
/// even exchanges in the v2 format (`answers`), odd ones in v1 (one event per answer).
pub fn eve(s: &Scenario, flows: &[usize], kind: EveKind, with_dns: bool) -> Text {
    let mut l = Lines::new();
    // Interleave by time: DNS exchanges come just before the flows they precede.
    let mut events: Vec<(i64, Item)> = flows.iter().map(|&i| (s.flows[i].ts_micros, Item::Flow(i))).collect();
    if with_dns {
        events.extend(s.dns.iter().enumerate().map(|(i, d)| (d.ts_micros, Item::Dns(i))));
    }
    events.sort();
    let flow_id = |i: usize, salt: u64| (i as u64 + 1).wrapping_mul(2_654_435_761).wrapping_add(salt) % (1 << 50);
    for (_, item) in events {
        match item {
            Item::Flow(i) => {
                let f = &s.flows[i];
                let proto = f.proto_upper();
                let (start, end) = (iso_eve(f.ts_micros), iso_eve(f.ts_micros + f.duration_micros));
                let head = |src: IpAddr, sp: u16, dst: IpAddr, dp: u16, et: &str, ts: &str| {
                    format!(
                        "{{\"timestamp\":\"{ts}\",\"flow_id\":{},\"in_iface\":\"eth0\",\"event_type\":\"{et}\",\
                         \"src_ip\":\"{}\",\"src_port\":{sp},\"dest_ip\":\"{}\",\"dest_port\":{dp},\"proto\":\"{proto}\"",
                        flow_id(i, 0),
                        eve_ip(src),
                        eve_ip(dst)
                    )
                };
                match kind {
                    EveKind::Flow => {
                        let line = format!(
                            "{},\"flow\":{{\"pkts_toserver\":{},\"pkts_toclient\":{},\"bytes_toserver\":{},\
                             \"bytes_toclient\":{},\"start\":\"{start}\",\"end\":\"{end}\",\"age\":{},\
                             \"state\":\"closed\",\"reason\":\"timeout\",\"alerted\":false}}}}",
                            head(f.src, f.sport, f.dst, f.dport, "flow", &end),
                            f.pkts[0],
                            f.pkts[1],
                            f.bytes[0],
                            f.bytes[1],
                            f.duration_micros / 1_000_000
                        );
                        let n = l.push(&line);
                        l.t.flow_lines.insert(i, n);
                    }
                    EveKind::Netflow => {
                        for dir in 0..2 {
                            let (a, ap, b, bp) = if dir == 0 {
                                (f.src, f.sport, f.dst, f.dport)
                            } else {
                                (f.dst, f.dport, f.src, f.sport)
                            };
                            let line = format!(
                                "{},\"netflow\":{{\"pkts\":{},\"bytes\":{},\"start\":\"{start}\",\"end\":\"{end}\",\
                                 \"age\":{},\"min_ttl\":64,\"max_ttl\":64}}}}",
                                head(a, ap, b, bp, "netflow", &end),
                                f.pkts[dir],
                                f.bytes[dir],
                                f.duration_micros / 1_000_000
                            );
                            let n = l.push(&line);
                            if dir == 0 {
                                l.t.flow_lines.insert(i, n);
                            }
                        }
                    }
                }
            }
            Item::Dns(i) => {
                let d = &s.dns[i];
                let rrtype = if d.answers.iter().any(|a| a.is_ipv6()) { "AAAA" } else { "A" };
                let ts = iso_eve(d.ts_micros);
                let q = format!(
                    "{{\"timestamp\":\"{ts}\",\"flow_id\":{},\"event_type\":\"dns\",\"src_ip\":\"{}\",\
                     \"src_port\":{},\"dest_ip\":\"{}\",\"dest_port\":53,\"proto\":\"UDP\",\"dns\":{{\
                     \"type\":\"query\",\"id\":{},\"rrname\":\"{}\",\"rrtype\":\"{rrtype}\",\"tx_id\":0}}}}",
                    flow_id(i, 7),
                    eve_ip(d.client.0),
                    d.client.1,
                    eve_ip(d.resolver.0),
                    i % 65536,
                    d.query
                );
                let n = l.push(&q);
                l.t.dns_lines.insert(i, n);
                let head = format!(
                    "{{\"timestamp\":\"{}\",\"flow_id\":{},\"event_type\":\"dns\",\"src_ip\":\"{}\",\
                     \"src_port\":53,\"dest_ip\":\"{}\",\"dest_port\":{},\"proto\":\"UDP\"",
                    iso_eve(d.ts_micros + 12_000),
                    flow_id(i, 7),
                    eve_ip(d.resolver.0),
                    eve_ip(d.client.0),
                    d.client.1
                );
                if i % 2 == 0 {
                    let answers: Vec<String> = d
                        .answers
                        .iter()
                        .map(|a| {
                            format!(
                                "{{\"rrname\":\"{}\",\"rrtype\":\"{rrtype}\",\"ttl\":300,\"rdata\":\"{a}\"}}",
                                d.query
                            )
                        })
                        .collect();
                    let grouped: Vec<String> = d.answers.iter().map(|a| format!("\"{a}\"")).collect();
                    l.push(&format!(
                        "{head},\"dns\":{{\"version\":2,\"type\":\"answer\",\"id\":{},\"flags\":\"8180\",\"qr\":true,\
                         \"rd\":true,\"ra\":true,\"rcode\":\"NOERROR\",\"rrname\":\"{}\",\"rrtype\":\"{rrtype}\",\
                         \"answers\":[{}],\"grouped\":{{\"{rrtype}\":[{}]}}}}}}",
                        i % 65536,
                        d.query,
                        answers.join(","),
                        grouped.join(",")
                    ));
                } else {
                    for a in &d.answers {
                        l.push(&format!(
                            "{head},\"dns\":{{\"type\":\"answer\",\"id\":{},\"rcode\":\"NOERROR\",\"rrname\":\"{}\",\
                             \"rrtype\":\"{rrtype}\",\"ttl\":300,\"rdata\":\"{a}\"}}}}",
                            i % 65536,
                            d.query
                        ));
                    }
                }
            }
        }
    }
    l.t
}

impl Flow {
    fn proto_upper(&self) -> &'static str {
        match self.proto {
            6 => "TCP",
            17 => "UDP",
            1 => "ICMP",
            _ => "UNKNOWN",
        }
    }
}

/// AWS VPC flow logs, default (v2) format with its header line, one record per flow.
pub fn aws_v2(s: &Scenario, flows: &[usize]) -> Text {
    let mut l = Lines::new();
    l.push("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status");
    for &i in flows {
        let f = &s.flows[i];
        let n = l.push(&format!(
            "2 123456789010 eni-1235b8ca123456789 {} {} {} {} {} {} {} {} {} ACCEPT OK",
            f.src,
            f.dst,
            f.sport,
            f.dport,
            f.proto,
            f.pkts[0],
            f.bytes[0],
            f.ts_micros / 1_000_000,
            (f.ts_micros + f.duration_micros) / 1_000_000 + 1
        ));
        l.t.flow_lines.insert(i, n);
    }
    l.t
}

/// AWS VPC flow logs in a custom v5 format whose header puts the fields in another order, with
/// `pkt-srcaddr`/`pkt-dstaddr`: for NAT flows `dstaddr` is the NAT address and `pkt-dstaddr`
/// the real destination. A NODATA record is mixed in every 500 flows.
pub fn aws_v5_custom(s: &Scenario, flows: &[usize]) -> Text {
    let mut l = Lines::new();
    l.push(
        "version interface-id account-id vpc-id subnet-id instance-id type flow-direction pkt-srcaddr srcaddr \
         dstaddr pkt-dstaddr srcport dstport protocol packets bytes start end action log-status tcp-flags \
         traffic-path pkt-src-aws-service pkt-dst-aws-service",
    );
    for (k, &i) in flows.iter().enumerate() {
        let f = &s.flows[i];
        let (start, end) = (f.ts_micros / 1_000_000, (f.ts_micros + f.duration_micros) / 1_000_000 + 1);
        if k % 500 == 0 {
            l.push(&format!(
                "5 eni-0f0e0d0c0b0a09080 123456789010 vpc-0a1b2c3d subnet-0a1b2c3d i-0123456789abcdef0 - - - - - - - - - \
                 - - {start} {end} - NODATA - - - -"
            ));
        }
        let ty = if f.src.is_ipv6() { "IPv6" } else { "IPv4" };
        let n = l.push(&format!(
            "5 eni-0f0e0d0c0b0a09080 123456789010 vpc-0a1b2c3d subnet-0a1b2c3d i-0123456789abcdef0 {ty} egress {} {} {} {} \
             {} {} {} {} {} {start} {end} ACCEPT OK {} 8 - -",
            f.src,
            f.src,
            f.dst,
            f.pkt_dst.unwrap_or(f.dst),
            f.sport,
            f.dport,
            f.proto,
            f.pkts[0],
            f.bytes[0],
            if f.proto == 6 { 19 } else { 0 },
        ));
        l.t.flow_lines.insert(i, n);
    }
    l.t
}

/// GCP VPC flow logs, exported log entries as JSON lines.
pub fn gcp_json(s: &Scenario, flows: &[usize]) -> Text {
    let mut l = Lines::new();
    for &i in flows {
        let f = &s.flows[i];
        let v = serde_json::json!({
            "insertId": format!("{:x}", i * 7919 + 1),
            "jsonPayload": {
                "bytes_sent": f.bytes[0].to_string(),
                "connection": {
                    "dest_ip": f.dst.to_string(),
                    "dest_port": f.dport,
                    "protocol": f.proto,
                    "src_ip": f.src.to_string(),
                    "src_port": f.sport,
                },
                "end_time": iso(f.ts_micros + f.duration_micros),
                "packets_sent": f.pkts[0].to_string(),
                "reporter": "SRC",
                "rtt_msec": "12",
                "src_instance": {"project_id": "my-project", "region": "us-central1", "vm_name": "vm-1", "zone": "us-central1-a"},
                "start_time": iso(f.ts_micros),
            },
            "logName": "projects/my-project/logs/compute.googleapis.com%2Fvpc_flows",
            "receiveTimestamp": iso(f.ts_micros + f.duration_micros + 5_000_000),
            "resource": {"labels": {"location": "us-central1-a", "project_id": "my-project", "subnetwork_id": "123", "subnetwork_name": "default"}, "type": "gce_subnetwork"},
            "timestamp": iso(f.ts_micros + f.duration_micros + 1_000_000),
        });
        let n = l.push(&v.to_string());
        l.t.flow_lines.insert(i, n);
    }
    l.t
}

/// Azure NSG flow logs v2: one `{"records":[...]}` document, a record per minute of traffic,
/// tuples `ts,src,dst,sport,dport,T|U,O,A,E,pkts,bytes,pkts,bytes`. The "line" of a flow is its
/// 1-based tuple number in the file.
pub fn azure_nsg_v2(s: &Scenario, flows: &[usize]) -> Text {
    let mut t = Text::default();
    let mut records: Vec<serde_json::Value> = Vec::new();
    let mut tuples: Vec<String> = Vec::new();
    let mut minute = None;
    let flush = |records: &mut Vec<serde_json::Value>, tuples: &mut Vec<String>, minute: i64| {
        if tuples.is_empty() {
            return;
        }
        records.push(serde_json::json!({
            "time": iso(minute * 60_000_000),
            "systemId": "66aa66aa-6666-4444-8888-222222222222",
            "macAddress": "000D3AF87856",
            "category": "NetworkSecurityGroupFlowEvent",
            "resourceId": "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG",
            "operationName": "NetworkSecurityGroupFlowEvents",
            "properties": {"Version": 2, "flows": [{"rule": "DefaultRule_AllowInternetOutBound", "flows": [{"mac": "000D3AF87856", "flowTuples": std::mem::take(tuples)}]}]},
        }));
    };
    let mut n = 0u64;
    for &i in flows {
        let f = &s.flows[i];
        let m = f.ts_micros.div_euclid(60_000_000);
        if minute != Some(m) {
            if let Some(old) = minute {
                flush(&mut records, &mut tuples, old);
            }
            minute = Some(m);
        }
        let p = if f.proto == 6 { "T" } else { "U" };
        tuples.push(format!(
            "{},{},{},{},{},{p},O,A,E,{},{},{},{}",
            f.ts_micros / 1_000_000,
            f.src,
            f.dst,
            f.sport,
            f.dport,
            f.pkts[0],
            f.bytes[0],
            f.pkts[1],
            f.bytes[1]
        ));
        n += 1;
        t.flow_lines.insert(i, n);
    }
    if let Some(m) = minute {
        flush(&mut records, &mut tuples, m);
    }
    t.data = serde_json::json!({ "records": records }).to_string();
    t
}

/// nfdump `-o csv` (1.6 layout): the `ts,te,td,sa,da,...` header, one flow per line, then the
/// `Summary` block.
pub fn nfdump_csv(s: &Scenario, flows: &[usize]) -> Text {
    let mut l = Lines::new();
    l.push(
        "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,svln,\
         dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr",
    );
    let t = |us: i64| {
        let s = iso(us);
        format!("{} {}", &s[..10], &s[11..23])
    };
    let (mut pk, mut by) = (0u64, 0u64);
    for &i in flows {
        let f = &s.flows[i];
        pk += f.pkts[0];
        by += f.bytes[0];
        let n = l.push(&format!(
            "{},{},{:.3},{},{},{},{},{},.AP.SF,0,0,{},{},0,0,1,2,0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,\
             00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,\
             0-0-0,0-0-0,0.000,0.000,0.000,10.99.0.1,0/0,1,{}",
            t(f.ts_micros),
            t(f.ts_micros + f.duration_micros),
            f.duration_micros as f64 / 1e6,
            f.src,
            f.dst,
            f.sport,
            f.dport,
            f.proto_upper(),
            f.pkts[0],
            f.bytes[0],
            t(f.ts_micros + f.duration_micros),
        ));
        l.t.flow_lines.insert(i, n);
    }
    l.push("Summary");
    l.push("flows,bytes,packets,avg_bps,avg_pps,avg_bpp");
    l.push(&format!("{},{by},{pk},0,0,0", flows.len()));
    l.t
}

/// Export datagrams and where each flow went.
#[derive(Clone, Debug, Default)]
pub struct Export {
    pub datagrams: Vec<Vec<u8>>,
    /// Per rendered flow: (datagram index, header sequence number).
    pub flow_at: BTreeMap<usize, (usize, u32)>,
}

/// Boot time of the simulated exporter (one day before the traffic).
const BOOT_MS: i64 = START_MICROS / 1000 - 86_400_000;

fn push16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn push32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn push_ip(v: &mut Vec<u8>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
    }
}

/// NetFlow v5 datagrams, 30 records each (IPv4 flows only; others are left out).
pub fn netflow_v5(s: &Scenario, flows: &[usize]) -> Export {
    let mut e = Export::default();
    let v4: Vec<usize> =
        flows.iter().copied().filter(|&i| s.flows[i].src.is_ipv4() && s.flows[i].dst.is_ipv4()).collect();
    let mut seq = 0u32;
    for chunk in v4.chunks(30) {
        let last_end = chunk.iter().map(|&i| s.flows[i].ts_micros + s.flows[i].duration_micros).max().unwrap_or(0);
        let export_ms = last_end / 1000 + 1000;
        let mut p = Vec::with_capacity(24 + 48 * chunk.len());
        push16(&mut p, 5);
        push16(&mut p, chunk.len() as u16);
        push32(&mut p, (export_ms - BOOT_MS) as u32);
        push32(&mut p, (export_ms / 1000) as u32);
        push32(&mut p, ((export_ms % 1000) * 1_000_000) as u32);
        push32(&mut p, seq);
        p.extend_from_slice(&[0, 1, 0, 0]);
        for &i in chunk {
            let f = &s.flows[i];
            push_ip(&mut p, f.src);
            push_ip(&mut p, f.dst);
            p.extend_from_slice(&[0; 4]); // next hop
            push16(&mut p, 1);
            push16(&mut p, 2);
            push32(&mut p, f.pkts[0] as u32);
            push32(&mut p, f.bytes[0] as u32);
            push32(&mut p, (f.ts_micros / 1000 - BOOT_MS) as u32);
            push32(&mut p, ((f.ts_micros + f.duration_micros) / 1000 - BOOT_MS) as u32);
            push16(&mut p, f.sport);
            push16(&mut p, f.dport);
            p.extend_from_slice(&[0, if f.proto == 6 { 0x1b } else { 0 }, f.proto, 0]);
            p.extend_from_slice(&[0; 8]); // AS numbers, masks, padding
            e.flow_at.insert(i, (e.datagrams.len(), seq));
        }
        seq = seq.wrapping_add(chunk.len() as u32);
        e.datagrams.push(p);
    }
    e
}

type Fields = &'static [(u16, u16)];

/// Template fields: (IE, length). IPv4 template 256 carries post-NAT addresses (225/226).
const T4_V9: [(u16, u16); 11] =
    [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4), (22, 4), (21, 4), (225, 4), (226, 4)];
const T6_V9: [(u16, u16); 9] = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (22, 4), (21, 4)];
const T4_IPFIX: [(u16, u16); 11] =
    [(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8), (225, 4), (226, 4)];
const T6_IPFIX: [(u16, u16); 9] = [(27, 16), (28, 16), (7, 2), (11, 2), (4, 1), (2, 8), (1, 8), (152, 8), (153, 8)];

fn template_set(set_id: u16, templates: &[(u16, &[(u16, u16)])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (id, fields) in templates {
        push16(&mut b, *id);
        push16(&mut b, fields.len() as u16);
        for (ie, len) in fields.iter() {
            push16(&mut b, *ie);
            push16(&mut b, *len);
        }
    }
    let mut set = Vec::new();
    push16(&mut set, set_id);
    push16(&mut set, (4 + b.len()) as u16);
    set.extend_from_slice(&b);
    set
}

fn data_record(f: &Flow, ipfix: bool, v6: bool) -> Vec<u8> {
    let mut r = Vec::new();
    push_ip(&mut r, f.src);
    push_ip(&mut r, f.dst);
    push16(&mut r, f.sport);
    push16(&mut r, f.dport);
    r.push(f.proto);
    if ipfix || v6 {
        r.extend_from_slice(&f.pkts[0].to_be_bytes());
        r.extend_from_slice(&f.bytes[0].to_be_bytes());
    } else {
        push32(&mut r, f.pkts[0] as u32);
        push32(&mut r, f.bytes[0] as u32);
    }
    if ipfix {
        r.extend_from_slice(&((f.ts_micros / 1000) as u64).to_be_bytes());
        r.extend_from_slice(&(((f.ts_micros + f.duration_micros) / 1000) as u64).to_be_bytes());
    } else {
        push32(&mut r, (f.ts_micros / 1000 - BOOT_MS) as u32);
        push32(&mut r, ((f.ts_micros + f.duration_micros) / 1000 - BOOT_MS) as u32);
    }
    if !v6 {
        // Post-NAT source (unchanged) and destination.
        push_ip(&mut r, f.src);
        push_ip(&mut r, f.pkt_dst.unwrap_or(f.dst));
    }
    r
}

fn data_set(id: u16, records: &[Vec<u8>]) -> Vec<u8> {
    let body: usize = records.iter().map(Vec::len).sum();
    let pad = (4 - (4 + body) % 4) % 4;
    let mut set = Vec::with_capacity(4 + body + pad);
    push16(&mut set, id);
    push16(&mut set, (4 + body + pad) as u16);
    for r in records {
        set.extend_from_slice(r);
    }
    set.extend(std::iter::repeat_n(0u8, pad));
    set
}

/// NetFlow v9 (`ipfix` false) or IPFIX datagrams: a template packet first (templates 256 for
/// IPv4 and 257 for IPv6), then data packets of up to 20 records, each holding one data set per
/// address family present.
fn template_export(s: &Scenario, flows: &[usize], ipfix: bool, domain: u32) -> Export {
    let mut e = Export::default();
    let (t4, t6): (Fields, Fields) = if ipfix { (&T4_IPFIX, &T6_IPFIX) } else { (&T4_V9, &T6_V9) };
    let header = |count_or_len: u16, export_ms: i64, seq: u32| {
        let mut h = Vec::new();
        if ipfix {
            push16(&mut h, 10);
            push16(&mut h, count_or_len);
            push32(&mut h, (export_ms / 1000) as u32);
            push32(&mut h, seq);
            push32(&mut h, domain);
        } else {
            push16(&mut h, 9);
            push16(&mut h, count_or_len);
            push32(&mut h, (export_ms - BOOT_MS) as u32);
            push32(&mut h, (export_ms / 1000) as u32);
            push32(&mut h, seq);
            push32(&mut h, domain);
        }
        h
    };
    let finish = |mut h: Vec<u8>, body: Vec<u8>| {
        h.extend_from_slice(&body);
        if ipfix {
            let len = h.len() as u16;
            h[2..4].copy_from_slice(&len.to_be_bytes());
        }
        h
    };
    let mut seq = 0u32;
    let first_ms = START_MICROS / 1000;
    let tset = template_set(if ipfix { 2 } else { 0 }, &[(256, t4), (257, t6)]);
    e.datagrams.push(finish(header(2, first_ms, seq), tset));
    if !ipfix {
        seq += 1; // v9 counts packets; IPFIX counts data records
    }
    for chunk in flows.chunks(20) {
        let last_end = chunk.iter().map(|&i| s.flows[i].ts_micros + s.flows[i].duration_micros).max().unwrap_or(0);
        // Whole seconds: the v9 header's clock has no milliseconds, so uptime-relative times
        // are exact only when the export happens on a second boundary.
        let export_ms = (last_end / 1_000_000 + 2) * 1000;
        let (mut r4, mut r6) = (Vec::new(), Vec::new());
        for &i in chunk {
            let f = &s.flows[i];
            if f.src.is_ipv4() && f.dst.is_ipv4() {
                r4.push(data_record(f, ipfix, false));
            } else {
                r6.push(data_record(f, ipfix, true));
            }
            e.flow_at.insert(i, (e.datagrams.len(), seq));
        }
        let mut body = Vec::new();
        if !r4.is_empty() {
            body.extend_from_slice(&data_set(256, &r4));
        }
        if !r6.is_empty() {
            body.extend_from_slice(&data_set(257, &r6));
        }
        e.datagrams.push(finish(header(chunk.len() as u16, export_ms, seq), body));
        seq = seq.wrapping_add(if ipfix { chunk.len() as u32 } else { 1 });
    }
    e
}

/// NetFlow v9: a template packet, then data packets.
pub fn netflow_v9(s: &Scenario, flows: &[usize]) -> Export {
    template_export(s, flows, false, 7)
}

/// IPFIX: a template message, then data messages (IPv4 and IPv6).
pub fn ipfix(s: &Scenario, flows: &[usize]) -> Export {
    template_export(s, flows, true, 42)
}

/// Wraps export datagrams in a pcap (Ethernet/IPv4/UDP from `exporter` to `collector`), one
/// frame per datagram, 1 ms apart from the traffic's start.
pub fn export_pcap(datagrams: &[Vec<u8>], exporter: SocketAddr, collector: SocketAddr) -> Vec<u8> {
    let mut c = super::Capture::new(Vec::new(), START_MICROS).expect("writing to memory");
    for d in datagrams {
        c.udp((exporter.ip(), exporter.port()), (collector.ip(), collector.port()), d).expect("writing to memory");
    }
    c.w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::flowlog::{self, netflow::NetflowDecoder, Format, Record};

    fn parse(format: Format, t: &Text) -> (Vec<Record>, u64) {
        let mut recs = Vec::new();
        let mut errs = 0;
        flowlog::parse_text(format, t.data.as_bytes(), |r| recs.push(r.clone()), |_, _| errs += 1);
        (recs, errs)
    }

    #[test]
    fn generation_is_deterministic_and_plants_every_kind() {
        let a = generate(2000, 9);
        let b = generate(2000, 9);
        assert_eq!(a.flows, b.flows);
        assert_eq!(a.indicators_csv, b.indicators_csv);
        for r in [Reason::Dst, Reason::Src, Reason::PktDst, Reason::Resolved] {
            assert!(a.flow_reasons.iter().flatten().any(|(x, _)| *x == r), "{r:?} planted");
        }
        assert!(a.dns.iter().any(|d| d.query.starts_with('x')), "near-miss names planted");
        let keys: std::collections::HashSet<_> =
            a.flows.iter().map(|f| tuple_key(f.proto, (f.src, f.sport), (f.dst, f.dport))).collect();
        assert_eq!(keys.len(), a.flows.len(), "5-tuples are unique");
        let answers: std::collections::HashSet<_> = a.dns.iter().flat_map(|d| d.answers.clone()).collect();
        assert_eq!(answers.len(), a.dns.len(), "every DNS answer is its own address");
        assert!(a.flows.iter().all(|f| f.src.is_ipv4() == f.dst.is_ipv4()), "one address family per flow");
    }

    #[test]
    fn every_text_renderer_is_detected_and_parses_without_errors() {
        let s = generate(600, 3);
        let all: Vec<usize> = (0..s.flows.len()).collect();
        let cases: Vec<(Format, Text, usize)> = vec![
            (Format::ZeekTsv, zeek_conn_tsv(&s, &all), all.len()),
            (Format::ZeekJson, zeek_conn_json(&s, &all), all.len()),
            (Format::ZeekTsv, zeek_dns_tsv(&s, true), s.dns.len()),
            (Format::EveJson, eve(&s, &all, EveKind::Flow, false), all.len()),
            (Format::EveJson, eve(&s, &all, EveKind::Netflow, false), 2 * all.len()),
            (Format::AwsVpc, aws_v2(&s, &all), all.len()),
            (Format::AwsVpc, aws_v5_custom(&s, &all), all.len()),
            (Format::GcpVpcJson, gcp_json(&s, &all), all.len()),
            (Format::AzureNsgJson, azure_nsg_v2(&s, &all), all.len()),
            (Format::NfdumpCsv, nfdump_csv(&s, &all), all.len()),
        ];
        for (i, (format, text, n)) in cases.iter().enumerate() {
            assert_eq!(flowlog::detect(text.data.as_bytes()), Some(*format), "case {i}");
            let (recs, errs) = parse(*format, text);
            assert_eq!((recs.len(), errs), (*n, 0), "case {i} ({format:?})");
        }
        // Times, counters and NAT addresses survive the round trip.
        let (recs, _) = parse(Format::AwsVpc, &aws_v5_custom(&s, &all));
        let nat = s.flows.iter().position(|f| f.pkt_dst.is_some()).unwrap();
        assert_eq!(recs[nat].pkt_dst, s.flows[nat].pkt_dst);
        assert_eq!(recs[nat].dst, Some(s.flows[nat].dst));
        let (recs, _) = parse(Format::ZeekTsv, &zeek_conn_tsv(&s, &all));
        assert_eq!(recs[5].ts_micros, s.flows[5].ts_micros);
        assert_eq!(recs[5].pkts, s.flows[5].pkts);
    }

    #[test]
    fn export_renderers_decode_to_the_same_flows() {
        let s = generate(400, 5);
        let all: Vec<usize> = (0..s.flows.len()).collect();
        let ex: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        for (name, e, v4_only) in
            [("v5", netflow_v5(&s, &all), true), ("v9", netflow_v9(&s, &all), false), ("ipfix", ipfix(&s, &all), false)]
        {
            let mut d = NetflowDecoder::new(16);
            let mut recs = Vec::new();
            for p in &e.datagrams {
                assert!(NetflowDecoder::looks_like(p), "{name}");
                d.decode(ex, p, 0, |r| recs.push(r.clone()), |w| panic!("{name}: {w}")).unwrap();
            }
            let want: Vec<&Flow> = all.iter().map(|&i| &s.flows[i]).filter(|f| !v4_only || f.src.is_ipv4()).collect();
            assert_eq!(recs.len(), e.flow_at.len(), "{name}");
            let got: std::collections::HashSet<_> =
                recs.iter().map(|r| tuple_key(r.proto, (r.src.unwrap(), r.sport), (r.dst.unwrap(), r.dport))).collect();
            for f in want {
                assert!(got.contains(&tuple_key(f.proto, (f.src, f.sport), (f.dst, f.dport))), "{name}: {f:?}");
            }
            let r0 = recs.iter().find(|r| r.src == Some(s.flows[0].src)).unwrap();
            assert_eq!(r0.ts_micros / 1000, s.flows[0].ts_micros / 1000, "{name}: start time");
        }
    }
}
