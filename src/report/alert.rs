//! The one alert type every source produces and every writer consumes.
//!
//! Field names follow Suricata's EVE (`timestamp`, `event_type`, `src_ip`, `src_port`,
//! `dest_ip`, `dest_port`, `proto`, `vlan`, `tunnel`) so SIEM pipelines built for EVE take our
//! alerts unchanged; what EVE lacks (why it matched, and the whole provenance) is in `match`.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::indicators::{Activity, Kind, Provenance, RowMeta};

/// Where in the traffic a value was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Field {
    #[serde(rename = "ip.src")]
    IpSrc,
    #[serde(rename = "ip.dst")]
    IpDst,
    #[serde(rename = "dns.query")]
    DnsQuery,
    #[serde(rename = "dns.answer")]
    DnsAnswer,
    #[serde(rename = "dns.resolved")]
    DnsResolved,
    #[serde(rename = "tls.sni")]
    TlsSni,
    #[serde(rename = "tls.cert")]
    TlsCert,
    #[serde(rename = "tls.ja3")]
    TlsJa3,
    #[serde(rename = "http.host")]
    HttpHost,
    #[serde(rename = "http.url")]
    HttpUrl,
    #[serde(rename = "flow.src")]
    FlowSrc,
    #[serde(rename = "flow.dst")]
    FlowDst,
    /// AWS VPC `pkt-srcaddr`: the original source behind a NAT gateway or load balancer.
    #[serde(rename = "flow.pkt_src")]
    FlowPktSrc,
    #[serde(rename = "flow.pkt_dst")]
    FlowPktDst,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::IpSrc => "ip.src",
            Field::IpDst => "ip.dst",
            Field::DnsQuery => "dns.query",
            Field::DnsAnswer => "dns.answer",
            Field::DnsResolved => "dns.resolved",
            Field::TlsSni => "tls.sni",
            Field::TlsCert => "tls.cert",
            Field::TlsJa3 => "tls.ja3",
            Field::HttpHost => "http.host",
            Field::HttpUrl => "http.url",
            Field::FlowSrc => "flow.src",
            Field::FlowDst => "flow.dst",
            Field::FlowPktSrc => "flow.pkt_src",
            Field::FlowPktDst => "flow.pkt_dst",
        }
    }

    /// Zeek's `seen.where` for the intel.log writer.
    pub fn zeek_where(self) -> &'static str {
        match self {
            Field::IpSrc | Field::FlowSrc | Field::FlowPktSrc => "Conn::IN_ORIG",
            Field::IpDst | Field::FlowDst | Field::FlowPktDst | Field::DnsResolved => "Conn::IN_RESP",
            Field::DnsQuery => "DNS::IN_REQUEST",
            Field::DnsAnswer => "DNS::IN_RESPONSE",
            Field::TlsSni => "SSL::IN_SERVER_NAME",
            Field::TlsCert => "X509::IN_CERT",
            Field::TlsJa3 => "SSL::IN_JA3",
            Field::HttpHost => "HTTP::IN_HOST_HEADER",
            Field::HttpUrl => "HTTP::IN_URL",
        }
    }
}

/// The outermost layer of a tunnelled connection, as EVE's `tunnel` object has it (plus `type`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tunnel {
    pub src_ip: IpAddr,
    pub dest_ip: IpAddr,
    /// The outer UDP ports of a tunnel in UDP (VXLAN, Geneve, GTP-U, Teredo, MPLS in UDP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    /// The protocol the outer IP header carries: `UDP`, `GRE`, `IPv4`, `IPv6`.
    pub proto: &'static str,
    /// `gre`, `erspan`, `vxlan`, `geneve`, `gtp-u`, `ip-in-ip`, `teredo`, `mpls-udp`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Number of encapsulations around the connection.
    pub depth: u8,
}

/// Why it matched, and everything the sources say about the indicator.
#[derive(Clone, Debug, Serialize)]
pub struct Match {
    /// The indicator as listed (`1.2.3.0/24`, `w8510.com`, `1.2.3.4:443`).
    pub indicator: Arc<str>,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// What was seen in the traffic (`1.2.3.77`, `acqv.w8510.com`).
    pub value: String,
    pub field: Field,
    /// `inner` or `outer` for tunnelled connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<&'static str>,
    /// For `dns.resolved`: the flagged name whose DNS answer returned this address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_from: Option<Arc<str>>,
    /// Whether the indicator was known to be in use at the packet's time.
    pub activity: Activity,
    /// True when `activity` is `active` (or the source gives no dates).
    pub active: bool,
    #[serde(flatten)]
    pub meta: Arc<RowMeta>,
    #[serde(serialize_with = "source_json")]
    pub source: Arc<Provenance>,
}

/// A cache of values serialised once, as raw JSON, keyed by the address of what they were made
/// from; each entry keeps a `Weak` to that allocation, so an address is never mistaken for a
/// later one allocated at the same place.
type RawCache<K, W> = std::cell::RefCell<foldhash::HashMap<K, (W, Rc<RawValue>)>>;

/// `value` as `cache` holds it for `key`, or serialised now and kept (with `keep()`, the weak
/// references that pin the key's allocations); the cache starts again past `cap` entries.
/// `None` only if `value` cannot be serialised.
pub(super) fn cached_json<T, K, W>(
    cache: &'static std::thread::LocalKey<RawCache<K, W>>,
    key: K,
    keep: impl FnOnce() -> W,
    cap: usize,
    value: &T,
) -> Option<Rc<RawValue>>
where
    T: Serialize + ?Sized,
    K: Eq + std::hash::Hash,
{
    cache.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((_, json)) = c.get(&key) {
            return Some(json.clone());
        }
        let json: Rc<RawValue> = serde_json::value::to_raw_value(value).ok()?.into();
        if c.len() >= cap {
            c.clear();
        }
        c.insert(key, (keep(), json.clone()));
        Some(json)
    })
}

/// Serialises through [`cached_json`], or directly if it fails.
fn serialize_cached<T: Serialize + ?Sized, S: serde::Serializer>(
    cached: Option<Rc<RawValue>>,
    value: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    match cached {
        Some(json) => json.serialize(s),
        None => value.serialize(s),
    }
}

/// An alert's `alert` object, rendered once per signature: every field of it is fixed by the
/// indicator and field that matched (the engine shares one signature text among their alerts),
/// so it is keyed by that text's address, the category's, the severity and the id.
pub(super) fn eve_alert_cached(a: &EveAlert) -> Option<Rc<RawValue>> {
    type Key = (usize, usize, u8, u32);
    thread_local! {
        static CACHE: RawCache<Key, (std::sync::Weak<str>, std::sync::Weak<str>)> = Default::default();
    }
    let key = (
        Arc::as_ptr(&a.signature) as *const u8 as usize,
        Arc::as_ptr(&a.category) as *const u8 as usize,
        a.severity,
        a.signature_id,
    );
    cached_json(&CACHE, key, || (Arc::downgrade(&a.signature), Arc::downgrade(&a.category)), 65_536, a)
}

fn eve_alert_json<S: serde::Serializer>(a: &EveAlert, s: S) -> Result<S::Ok, S::Error> {
    serialize_cached(eve_alert_cached(a), a, s)
}

/// A provenance, rendered once per source document, not once per alert: it is most of an
/// alert's text (title, publisher, URL, tags), and escaping it was the largest part of writing
/// alerts.
pub(super) fn source_cached(p: &Arc<Provenance>) -> Option<Rc<RawValue>> {
    thread_local! {
        static CACHE: RawCache<usize, std::sync::Weak<Provenance>> = Default::default();
    }
    // Sources of sets long reloaded away are dropped past 4096.
    cached_json(&CACHE, Arc::as_ptr(p) as usize, || Arc::downgrade(p), 4096, &**p)
}

fn source_json<S: serde::Serializer>(p: &Arc<Provenance>, s: S) -> Result<S::Ok, S::Error> {
    serialize_cached(source_cached(p), &**p, s)
}

/// The per-row metadata (dates, role, confidence, tags), rendered once per interned row.
pub(super) fn meta_cached(m: &Arc<RowMeta>) -> Option<Rc<RawValue>> {
    thread_local! {
        static CACHE: RawCache<usize, std::sync::Weak<RowMeta>> = Default::default();
    }
    cached_json(&CACHE, Arc::as_ptr(m) as usize, || Arc::downgrade(m), 65_536, &**m)
}

/// Where in the input the alert came from.
#[derive(Clone, Debug, Serialize)]
pub struct Origin {
    pub file: Arc<str>,
    /// Packet number in a capture (1-based), or line/record number in a log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packet: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// NetFlow/IPFIX/sFlow exporter and sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exporter: Option<std::net::SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u32>,
    /// The packet was sampled, 1 in this many (sFlow): a hit proves contact, a miss proves
    /// nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling_rate: Option<u32>,
}

/// EVE's own `alert` object, so dashboards built on it show ours.
#[derive(Clone, Debug, Serialize)]
pub struct EveAlert {
    pub action: &'static str,
    pub gid: u32,
    pub signature_id: u32,
    pub rev: u32,
    pub signature: Arc<str>,
    pub category: Arc<str>,
    pub severity: u8,
}

/// One alert: a connection touched an indicator.
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// Packet time, RFC 3339 with microseconds, UTC.
    pub timestamp: String,
    #[serde(skip)]
    pub ts_micros: i64,
    pub event_type: &'static str,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dest_ip: IpAddr,
    pub dest_port: u16,
    pub proto: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vlan: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    #[serde(serialize_with = "eve_alert_json")]
    pub alert: EveAlert,
    #[serde(rename = "match")]
    pub matched: Match,
    pub capture: Origin,
}

/// Per-direction counters of a flagged connection, written when it ends.
#[derive(Clone, Debug, Serialize)]
pub struct FlowCounters {
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    pub start: String,
    pub end: String,
    /// `closed` (FIN/RST seen), `timeout`, `evicted` or `end-of-input`.
    pub reason: &'static str,
    pub alerted: bool,
}

/// EVE `flow` event for a connection that raised alerts.
#[derive(Clone, Debug, Serialize)]
pub struct FlowEvent {
    pub timestamp: String,
    pub event_type: &'static str,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dest_ip: IpAddr,
    pub dest_port: u16,
    pub proto: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vlan: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    pub flow: FlowCounters,
    /// Indicators this connection matched (values).
    pub indicators: Vec<Arc<str>>,
    pub capture: Origin,
}

/// IANA protocol number to EVE's name.
pub fn proto_name(p: u8) -> &'static str {
    match p {
        1 => "ICMP",
        2 => "IGMP",
        6 => "TCP",
        17 => "UDP",
        41 => "IPv6",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "IPv6-ICMP",
        132 => "SCTP",
        _ => PROTO_NUMBERS[p as usize],
    }
}

/// Other protocols print as their number, like Suricata does.
static PROTO_NUMBERS: [&str; 256] = {
    [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19",
        "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37",
        "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49", "50", "51", "52", "53", "54", "55",
        "56", "57", "58", "59", "60", "61", "62", "63", "64", "65", "66", "67", "68", "69", "70", "71", "72", "73",
        "74", "75", "76", "77", "78", "79", "80", "81", "82", "83", "84", "85", "86", "87", "88", "89", "90", "91",
        "92", "93", "94", "95", "96", "97", "98", "99", "100", "101", "102", "103", "104", "105", "106", "107", "108",
        "109", "110", "111", "112", "113", "114", "115", "116", "117", "118", "119", "120", "121", "122", "123", "124",
        "125", "126", "127", "128", "129", "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "140",
        "141", "142", "143", "144", "145", "146", "147", "148", "149", "150", "151", "152", "153", "154", "155", "156",
        "157", "158", "159", "160", "161", "162", "163", "164", "165", "166", "167", "168", "169", "170", "171", "172",
        "173", "174", "175", "176", "177", "178", "179", "180", "181", "182", "183", "184", "185", "186", "187", "188",
        "189", "190", "191", "192", "193", "194", "195", "196", "197", "198", "199", "200", "201", "202", "203", "204",
        "205", "206", "207", "208", "209", "210", "211", "212", "213", "214", "215", "216", "217", "218", "219", "220",
        "221", "222", "223", "224", "225", "226", "227", "228", "229", "230", "231", "232", "233", "234", "235", "236",
        "237", "238", "239", "240", "241", "242", "243", "244", "245", "246", "247", "248", "249", "250", "251", "252",
        "253", "254", "255",
    ]
};
