//! Flow logs: connection and application-event logs written by other sensors, read as text, plus
//! NetFlow v5/v9/IPFIX export packets (see [`netflow`]).
//!
//! Every parser here is a pure function over bytes already read and decompressed: it calls
//! `on_record` once per connection (or per direction, or per application event) and `on_error`
//! once per line it cannot use. A bad line is counted and skipped; it never stops the file.
//!
//! Text formats ([`Format`]):
//!
//! - Zeek TSV (`conn`, `dns`, `ssl`, `http` logs; columns found through `#fields`) and Zeek JSON;
//! - Suricata EVE JSON (`flow`, `netflow`, `dns` v1/v2/v3, `tls`, `http` events);
//! - AWS VPC Flow Logs (default v2 and custom formats with a header line, headerless v2, the
//!   all-fields v5 order and the Transit Gateway default);
//! - GCP VPC flow logs as exported JSON log entries (JSON lines or one array);
//! - Azure NSG flow logs v1/v2 (`records[].properties.flows[].flows[].flowTuples[]`);
//! - nfdump `-o csv` output.
//!
//! Columns are always found by name, never by position (except the documented headerless AWS
//! layouts). Lines may end in CRLF. A line that is not UTF-8, or longer than [`MAX_LINE`], is
//! an error for that line only (Zeek TSV checks only the fields it reads: bytes that are not
//! UTF-8 in a column it ignores do not cost the record).

use std::borrow::Cow;
use std::net::IpAddr;

use addr::{parse_ip, parse_ip_bytes};

mod addr;
mod aws;
mod cloud;
mod eve;
mod eve_fast;
pub mod netflow;
mod nfdump;
pub mod sflow;
mod swar;
pub(crate) mod zeek;

/// One connection (or one direction of it) or one application event read from a flow log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// Start time, µs since the Unix epoch.
    pub ts_micros: i64,
    pub end_micros: Option<i64>,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub sport: u16,
    pub dport: u16,
    /// IANA protocol number (6, 17, 1, 58...); 0 when unknown.
    pub proto: u8,
    /// `[src->dst, dst->src]`; 0 when unknown.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    /// AWS `pkt-srcaddr`/`pkt-dstaddr`; NetFlow/IPFIX post-NAT addresses.
    pub pkt_src: Option<IpAddr>,
    pub pkt_dst: Option<IpAddr>,
    /// The names of a DNS, TLS or HTTP event; flow records have none. Boxed, so the records
    /// that carry only addresses and counters (nearly all) stay small: one is built and
    /// handed over per line.
    pub names: Option<Box<Names>>,
    /// 1-based line number; for Azure NSG the 1-based number of the flow tuple in the file, for
    /// a GCP JSON array the 1-based entry number, for NetFlow the decoder's packet number.
    pub line: u64,
    /// NetFlow/IPFIX exporter and export-packet sequence number.
    pub exporter: Option<std::net::SocketAddr>,
    pub sequence: Option<u32>,
    /// 1 in how many packets the record stands for (an sFlow sample); none when not sampled.
    pub sampling_rate: Option<u32>,
}

/// The names an application event carries (see [`Record::names`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Names {
    /// Lowercase, no trailing dot.
    pub dns_query: Option<String>,
    pub dns_answers: Vec<IpAddr>,
    /// Names found in answers (CNAME targets and the like), lowercase, no trailing dot.
    pub dns_cnames: Vec<String>,
    /// Lowercase, no trailing dot.
    pub tls_sni: Option<String>,
    /// As logged (trimmed); may carry a port.
    pub http_host: Option<String>,
    pub http_uri: Option<String>,
}

static NO_NAMES: Names = Names {
    dns_query: None,
    dns_answers: Vec::new(),
    dns_cnames: Vec::new(),
    tls_sni: None,
    http_host: None,
    http_uri: None,
};

impl Record {
    /// The record's names (empty for a flow record).
    pub fn names(&self) -> &Names {
        self.names.as_deref().unwrap_or(&NO_NAMES)
    }

    /// The record's names, to fill in.
    pub fn names_mut(&mut self) -> &mut Names {
        self.names.get_or_insert_with(Default::default)
    }
}

/// A text flow-log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    ZeekTsv,
    ZeekJson,
    EveJson,
    AwsVpc,
    GcpVpcJson,
    AzureNsgJson,
    NfdumpCsv,
}

/// Lines longer than this are skipped with an error.
pub const MAX_LINE: usize = 1 << 20;

/// What a text log held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextStats {
    /// Non-empty lines seen (including headers and comments).
    pub lines: u64,
    pub records: u64,
    pub errors: u64,
    /// Lines that are valid but carry no connection: AWS NODATA/SKIPDATA, events of other types,
    /// DNS events without a name.
    pub skipped: u64,
}

/// Detects a text flow-log format from the first few KB (None if not a flow log).
pub fn detect(head: &[u8]) -> Option<Format> {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let lines =
        head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.trim_ascii().is_empty());
    let first_line = lines.clone().next()?.trim_ascii_start();
    // Zeek TSV: its headers, possibly after other comment lines.
    if lines.clone().take(16).any(|l| l.starts_with(b"#fields") || l.starts_with(b"#separator")) {
        return Some(Format::ZeekTsv);
    }
    let json_like = lines.clone().take(8).any(|l| matches!(l.trim_ascii_start().first(), Some(b'{' | b'[')));
    if json_like {
        let has = |s: &[u8]| contains(head, s);
        if has(b"\"event_type\"") {
            return Some(Format::EveJson);
        }
        if has(b"\"id.orig_h\"") || has(b"\"id.resp_h\"") {
            return Some(Format::ZeekJson);
        }
        if has(b"\"flowTuples\"") || has(b"NetworkSecurityGroupFlowEvent") {
            return Some(Format::AzureNsgJson);
        }
        if has(b"\"jsonPayload\"") && (has(b"\"connection\"") || has(b"vpc_flows")) {
            return Some(Format::GcpVpcJson);
        }
        return None;
    }
    let line = std::str::from_utf8(first_line).ok()?;
    if nfdump::is_header(line) {
        return Some(Format::NfdumpCsv);
    }
    if aws::is_header(line) || aws::headerless_layout(line).is_some() {
        return Some(Format::AwsVpc);
    }
    None
}

/// Parses a whole text log (already decompressed), calling `on_record` per record and
/// `on_error(line, reason)` per bad line (counted, skipped; never stops the file).
pub fn parse_text(format: Format, data: &[u8], on_record: impl FnMut(&Record), on_error: impl FnMut(u64, String)) {
    parse_text_stats(format, data, on_record, on_error);
}

/// [`parse_text`], also returning counts (records, errors, and lines skipped on purpose such as
/// AWS NODATA/SKIPDATA).
pub fn parse_text_stats(
    format: Format,
    data: &[u8],
    on_record: impl FnMut(&Record),
    on_error: impl FnMut(u64, String),
) -> TextStats {
    parse_text_hinted(format, data, |_| {}, on_record, on_error)
}

/// [`parse_text_stats`], also telling `on_addr` each record's addresses as soon as they are read,
/// before the rest of its line: the caller can start loading what it will look them up in,
/// and the rest of the parse hides the wait. (Zeek TSV, AWS VPC, EVE flow events and nfdump
/// CSV; the other formats hand over records only.)
pub fn parse_text_hinted(
    format: Format,
    data: &[u8],
    mut on_addr: impl FnMut(IpAddr),
    mut on_record: impl FnMut(&Record),
    mut on_error: impl FnMut(u64, String),
) -> TextStats {
    let mut st = TextStats::default();
    let mut rec = |r: &Record| on_record(r);
    let mut err = |n: u64, e: String| on_error(n, e);
    let mut addr = |ip: IpAddr| on_addr(ip);
    let mut out = Out { on_record: &mut rec, on_error: &mut err, on_addr: &mut addr, stats: &mut st };
    match format {
        Format::ZeekTsv => zeek::parse_tsv(data, &mut out),
        Format::ZeekJson => zeek::parse_json(data, &mut out),
        Format::EveJson => eve::parse(data, &mut out),
        Format::AwsVpc => aws::parse(data, &mut out),
        Format::GcpVpcJson => cloud::parse_gcp(data, &mut out),
        Format::AzureNsgJson => cloud::parse_azure(data, &mut out),
        Format::NfdumpCsv => nfdump::parse(data, &mut out),
    }
    st
}

/// Where the parsers deliver results.
pub(crate) struct Out<'a> {
    on_record: &'a mut dyn FnMut(&Record),
    on_error: &'a mut dyn FnMut(u64, String),
    /// Addresses of the record being read, ahead of it (see [`parse_text_hinted`]).
    on_addr: &'a mut dyn FnMut(IpAddr),
    stats: &'a mut TextStats,
}

impl Out<'_> {
    #[inline(always)]
    fn record(&mut self, r: Record) {
        self.stats.records += 1;
        (self.on_record)(&r);
    }
    fn error(&mut self, line: u64, reason: impl Into<String>) {
        self.stats.errors += 1;
        (self.on_error)(line, reason.into());
    }
    fn skip(&mut self) {
        self.stats.skipped += 1;
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Splits on `\n`.
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(b'\n', r) {
            Some(p) => {
                rest = Some(&r[p + 1..]);
                Some(&r[..p])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Calls `f(line_number, line)` for every non-empty line that is UTF-8 and not too long; reports
/// the others as errors. Strips a trailing CR and a leading byte-order mark. `f` returns false to
/// stop (used for trailers such as nfdump's summary).
fn for_each_line(data: &[u8], out: &mut Out<'_>, mut f: impl FnMut(u64, &str, &mut Out<'_>) -> bool) {
    for_each_line_bytes(data, out, |n, raw, out| match std::str::from_utf8(raw) {
        Ok(line) => f(n, line, out),
        Err(_) => {
            out.error(n, NOT_UTF8);
            true
        }
    })
}

const NOT_UTF8: &str = "line is not valid UTF-8";

/// [`for_each_line`] without the UTF-8 check, for readers that check only the bytes they use.
fn for_each_line_bytes(data: &[u8], out: &mut Out<'_>, mut f: impl FnMut(u64, &[u8], &mut Out<'_>) -> bool) {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let mut n = 0u64;
    for raw in split_lines(data) {
        n += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        // Blank lines are not counted (the accounting is of lines that say something).
        if raw.trim_ascii().is_empty() {
            continue;
        }
        out.stats.lines += 1;
        if raw.len() > MAX_LINE {
            out.error(n, format!("line longer than {MAX_LINE} bytes ({} bytes), skipped", raw.len()));
            continue;
        }
        if !f(n, raw, out) {
            break;
        }
    }
}

/// Parses a decimal unsigned integer (ASCII digits only, no sign, no spaces).
fn parse_u64(s: impl AsRef<[u8]>) -> Option<u64> {
    let b = s.as_ref();
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// Parses epoch seconds with an optional fraction (`1546981792.481978`, `-1.5`, `.5`, `5.`;
/// `1e9` is not accepted) into microseconds, without going through a float, in one pass: Zeek
/// logs have two per line. Digits past the sixth of the fraction are read and dropped.
fn parse_epoch_micros(s: impl AsRef<[u8]>) -> Option<i64> {
    let b = s.as_ref();
    let (neg, b) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let (mut i, mut secs) = match swar::word(b, 0).and_then(swar::eight_digits) {
        Some(v) => (8, v),
        None => (0, 0),
    };
    while let Some(d) = b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
        secs = secs.checked_mul(10)?.checked_add(u64::from(d))?;
        i += 1;
    }
    let int_digits = i;
    let mut micros: i64 = 0;
    match b.get(i) {
        None if int_digits > 0 => {}
        Some(b'.') if int_digits > 0 || i + 1 < b.len() => {
            let frac = &b[i + 1..];
            if let Ok(six) = <[u8; 6]>::try_from(frac) {
                // Microseconds, as Zeek writes them: one word, padded with two zeros.
                let mut w = [b'0'; 8];
                w[..6].copy_from_slice(&six);
                micros = (swar::eight_digits(u64::from_le_bytes(w))? / 100) as i64;
            } else {
                const SCALE: [i64; 6] = [100_000, 10_000, 1_000, 100, 10, 1];
                for (k, &c) in frac.iter().enumerate() {
                    let d = c.wrapping_sub(b'0');
                    if d > 9 {
                        return None;
                    }
                    micros += i64::from(d) * SCALE.get(k).copied().unwrap_or(0);
                }
            }
        }
        _ => return None,
    }
    if int_digits > 20 {
        return None;
    }
    let secs = i64::try_from(secs).ok()?;
    let v = secs.checked_mul(1_000_000)?.checked_add(micros)?;
    Some(if neg { -v } else { v })
}

/// Parses an RFC 3339 / ISO 8601 timestamp (`2018-07-05T15:07:19.659593-0400`,
/// `2021-03-01T10:00:00Z`, `2019-05-07 13:57:02.123`; no zone = UTC) into µs since the epoch.
fn parse_iso_micros(s: &str) -> Option<i64> {
    crate::time::parse_fixed_micros(s.as_bytes()).or_else(|| parse_iso_micros_any(s))
}

/// [`parse_iso_micros`] for every shape it takes.
fn parse_iso_micros_any(s: &str) -> Option<i64> {
    let s = s.trim();
    let secs = crate::time::parse(s)?;
    if s.len() < 11 || !s.as_bytes()[4].eq(&b'-') {
        return None;
    }
    let mut micros = 0i64;
    if let Some(dot) = s[10..].find('.').map(|p| p + 10) {
        let mut scale = 100_000;
        for c in s[dot + 1..].bytes() {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            micros += d as i64 * scale;
            scale /= 10;
        }
    }
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// A timestamp given as epoch seconds (number or numeric string) or as an ISO string.
fn parse_any_time(s: &str) -> Option<i64> {
    let t = s.trim();
    if t.as_bytes().get(4) == Some(&b'-') || t.contains(':') {
        parse_iso_micros(t)
    } else {
        parse_epoch_micros(t)
    }
}

/// IANA protocol number from a name (`TCP`, `udp`, `ICMP`, `IPv6-ICMP`...) or a decimal number.
fn proto_from_name(s: &str) -> Option<u8> {
    // The names nearly every record carries, as logs write them.
    match s.as_bytes() {
        b"tcp" | b"TCP" | b"6" => return Some(6),
        b"udp" | b"UDP" | b"17" => return Some(17),
        b"icmp" | b"ICMP" | b"1" => return Some(1),
        _ => {}
    }
    let s = s.trim();
    if let Some(n) = parse_u64(s) {
        return u8::try_from(n).ok();
    }
    let mut buf = [0u8; 16];
    if s.len() > buf.len() {
        return None;
    }
    for (d, c) in buf.iter_mut().zip(s.bytes()) {
        *d = c.to_ascii_lowercase();
    }
    Some(match &buf[..s.len()] {
        b"tcp" => 6,
        b"udp" => 17,
        b"icmp" => 1,
        b"ipv6-icmp" | b"icmpv6" | b"icmp6" | b"ipv6_icmp" => 58,
        b"sctp" => 132,
        b"gre" => 47,
        b"esp" => 50,
        b"ah" => 51,
        b"igmp" => 2,
        b"ipip" | b"ipv4" => 4,
        b"ipv6" => 41,
        b"ospf" => 89,
        b"pim" => 103,
        b"vrrp" => 112,
        b"udplite" | b"udp-lite" => 136,
        _ => return None,
    })
}

/// A DNS or TLS name as the matcher wants it: trimmed, lowercase, without the trailing dot.
fn norm_name(s: &str) -> Option<String> {
    let s = s.trim().trim_end_matches('.');
    if s.is_empty() {
        return None;
    }
    Some(if s.bytes().any(|b| b.is_ascii_uppercase()) { s.to_ascii_lowercase() } else { s.to_owned() })
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A JSON scalar of any type, borrowed where possible; arrays and objects are skipped.
#[derive(Debug, Default, Clone)]
enum Scalar<'a> {
    #[default]
    Null,
    U(u64),
    I(i64),
    F(f64),
    S(Cow<'a, str>),
    Bool,
    Other,
}

impl Scalar<'_> {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Scalar::U(v) => Some(*v),
            Scalar::I(v) => u64::try_from(*v).ok(),
            Scalar::F(v) if *v >= 0.0 && *v < 1.8e19 => Some(*v as u64),
            Scalar::S(s) => parse_u64(s.trim()),
            _ => None,
        }
    }
    fn as_port(&self) -> Option<u16> {
        self.as_u64().and_then(|v| u16::try_from(v).ok())
    }
    fn as_proto(&self) -> Option<u8> {
        match self {
            Scalar::S(s) => proto_from_name(s),
            other => other.as_u64().and_then(|v| u8::try_from(v).ok()),
        }
    }
    /// A time given as epoch seconds (number or string) or ISO string.
    fn as_time(&self) -> Option<i64> {
        match self {
            Scalar::U(v) => i64::try_from(*v).ok()?.checked_mul(1_000_000),
            Scalar::I(v) => v.checked_mul(1_000_000),
            Scalar::F(v) if v.is_finite() && v.abs() < 9.2e12 => Some((v * 1e6).round() as i64),
            Scalar::S(s) => parse_any_time(s),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::S(s) => Some(s.as_ref()),
            _ => None,
        }
    }
    fn is_null(&self) -> bool {
        matches!(self, Scalar::Null)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                let _ = v;
                Ok(Scalar::Bool)
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::U(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::I(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::F(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::S(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::S(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::S(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                serde::Deserialize::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Short description of a JSON error for `on_error`.
fn json_err(e: &serde_json::Error) -> String {
    format!("invalid JSON: {e}")
}

#[cfg(test)]
mod tests;

/// Checks that the one-pass EVE flow reader agrees with the serde reader on `line`: where it
/// reads a record, the serde reader reads the same one. Panics otherwise (for the fuzzer).
pub fn check_eve_fast_path(line: &str) {
    if let Some(fast) = eve_fast::flow(line, 1) {
        match eve::slow(line, 1) {
            Ok(Some(slow)) if slow == fast => {}
            other => panic!("EVE fast path disagrees on {line:?}: fast {fast:?}, serde {other:?}"),
        }
    }
}
