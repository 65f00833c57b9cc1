//! Zeek logs: TSV (`#separator`, `#fields`... headers) and JSON (one object per line, dotted
//! keys). conn, dns, ssl and http logs; the `#path` header (or `_path` key) says which, and
//! without it the fields do.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;

use super::{
    for_each_line, for_each_line_bytes, json_err, norm_name, parse_epoch_micros, parse_ip, parse_ip_bytes, parse_u64,
    proto_from_name, swar, Out, Record, Scalar, NOT_UTF8,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Conn,
    Dns,
    Ssl,
    Http,
    /// A log of another type (`#path files`...): lines are skipped.
    Other,
}

fn kind_from_path(path: &str) -> Kind {
    let p = path.trim();
    if p.starts_with("conn") {
        Kind::Conn
    } else if p.starts_with("dns") {
        Kind::Dns
    } else if p.starts_with("ssl") || p.starts_with("tls") {
        Kind::Ssl
    } else if p.starts_with("http") {
        Kind::Http
    } else {
        Kind::Other
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Ts,
    OrigH,
    OrigP,
    RespH,
    RespP,
    Proto,
    IpProto,
    Duration,
    OrigPkts,
    RespPkts,
    OrigIpBytes,
    OrigBytes,
    RespIpBytes,
    RespBytes,
    Query,
    Answers,
    ServerName,
    Host,
    Uri,
    Skip,
}

fn role(name: &str) -> Role {
    match name {
        "ts" => Role::Ts,
        "id.orig_h" => Role::OrigH,
        "id.orig_p" => Role::OrigP,
        "id.resp_h" => Role::RespH,
        "id.resp_p" => Role::RespP,
        "proto" => Role::Proto,
        "ip_proto" => Role::IpProto,
        "duration" => Role::Duration,
        "orig_pkts" => Role::OrigPkts,
        "resp_pkts" => Role::RespPkts,
        "orig_ip_bytes" => Role::OrigIpBytes,
        "orig_bytes" => Role::OrigBytes,
        "resp_ip_bytes" => Role::RespIpBytes,
        "resp_bytes" => Role::RespBytes,
        "query" => Role::Query,
        "answers" => Role::Answers,
        "server_name" => Role::ServerName,
        "host" => Role::Host,
        "uri" => Role::Uri,
        _ => Role::Skip,
    }
}

/// What one Zeek line says, whatever its encoding.
#[derive(Default)]
struct Fields<'a> {
    ts: Option<i64>,
    orig_h: Option<IpAddr>,
    resp_h: Option<IpAddr>,
    orig_p: Option<u16>,
    resp_p: Option<u16>,
    proto: Option<u8>,
    proto_icmp: bool,
    ip_proto: Option<u8>,
    duration: Option<i64>,
    orig_pkts: Option<u64>,
    resp_pkts: Option<u64>,
    orig_ip_bytes: Option<u64>,
    orig_bytes: Option<u64>,
    resp_ip_bytes: Option<u64>,
    resp_bytes: Option<u64>,
    query: Option<Cow<'a, str>>,
    answers: Vec<Cow<'a, str>>,
    server_name: Option<Cow<'a, str>>,
    host: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
}

fn infer_kind(has_query: bool, has_answers: bool, has_sni: bool, has_host: bool, has_uri: bool) -> Kind {
    if has_query || has_answers {
        Kind::Dns
    } else if has_sni {
        Kind::Ssl
    } else if has_host || has_uri {
        Kind::Http
    } else {
        Kind::Conn
    }
}

#[inline(always)]
fn build(kind: Kind, f: Fields<'_>, line: u64) -> Result<Option<Record>, String> {
    let ts = f.ts.ok_or("missing or invalid ts")?;
    let mut r = Record { ts_micros: ts, line, src: f.orig_h, dst: f.resp_h, ..Default::default() };
    r.sport = f.orig_p.unwrap_or(0);
    r.dport = f.resp_p.unwrap_or(0);
    r.proto = match (f.ip_proto, f.proto) {
        (Some(p), _) => p,
        (None, Some(_)) if f.proto_icmp && matches!(r.src.or(r.dst), Some(IpAddr::V6(_))) => 58,
        (None, Some(p)) => p,
        (None, None) => 0,
    };
    match kind {
        Kind::Conn => {
            if r.src.is_none() && r.dst.is_none() {
                return Err("missing id.orig_h and id.resp_h".into());
            }
            r.end_micros = f.duration.map(|d| ts.saturating_add(d));
            r.pkts = [f.orig_pkts.unwrap_or(0), f.resp_pkts.unwrap_or(0)];
            r.bytes = [f.orig_ip_bytes.or(f.orig_bytes).unwrap_or(0), f.resp_ip_bytes.or(f.resp_bytes).unwrap_or(0)];
        }
        Kind::Dns => {
            let n = r.names_mut();
            n.dns_query = f.query.as_deref().and_then(norm_name);
            for a in &f.answers {
                let a = a.trim();
                if a.is_empty() {
                    continue;
                }
                if let Some(ip) = parse_ip(a) {
                    n.dns_answers.push(ip);
                } else if !a.contains(char::is_whitespace) {
                    if let Some(c) = norm_name(a) {
                        n.dns_cnames.push(c);
                    }
                }
            }
            if n.dns_query.is_none() && n.dns_answers.is_empty() && n.dns_cnames.is_empty() {
                return Ok(None);
            }
        }
        Kind::Ssl => r.names_mut().tls_sni = f.server_name.as_deref().and_then(norm_name),
        Kind::Http => {
            let n = r.names_mut();
            n.http_host = f.host.as_deref().and_then(super::non_empty);
            n.http_uri = f.uri.as_deref().and_then(super::non_empty);
        }
        Kind::Other => return Ok(None),
    }
    Ok(Some(r))
}

/// Undoes Zeek's `\xNN` escaping of string values.
pub(crate) fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains("\\x") {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Parses a `#separator` value such as `\x09` or a literal character.
fn parse_separator(v: &str) -> Option<String> {
    let u = unescape(v);
    (!u.is_empty()).then(|| u.into_owned())
}

struct TsvState {
    sep: String,
    set_sep: String,
    unset: String,
    empty: String,
    path: Option<Kind>,
    roles: Vec<Role>,
    /// The fields read, by position: the others are only counted.
    wanted: Vec<(usize, Role)>,
    kind: Kind,
    have_fields: bool,
}

pub(super) fn parse_tsv(data: &[u8], out: &mut Out<'_>) {
    let mut st = TsvState {
        sep: "\t".into(),
        set_sep: ",".into(),
        unset: "-".into(),
        empty: "(empty)".into(),
        path: None,
        roles: Vec::new(),
        wanted: Vec::new(),
        kind: Kind::Conn,
        have_fields: false,
    };
    for_each_line_bytes(data, out, |n, line, out| {
        if line.starts_with(b"#") {
            match std::str::from_utf8(line) {
                Ok(line) => header(&mut st, line),
                Err(_) => out.error(n, NOT_UTF8),
            }
            return true;
        }
        if !st.have_fields {
            out.error(n, "data line before the #fields header");
            return true;
        }
        if st.kind == Kind::Other {
            out.skip();
            return true;
        }
        match tsv_line(&st, line, n, out.on_addr) {
            Ok(Some(r)) => out.record(r),
            Ok(None) => out.skip(),
            // A line that is not UTF-8 is reported as such, whichever field failed on it.
            Err(_) if std::str::from_utf8(line).is_err() => out.error(n, NOT_UTF8),
            Err(e) => out.error(n, e),
        }
        true
    });
}

fn header(st: &mut TsvState, line: &str) {
    // `#separator` is separated from its value by a space; the others by the separator.
    if let Some(v) = line.strip_prefix("#separator") {
        if let Some(s) = parse_separator(v.trim_start_matches([' ', '\t'])) {
            st.sep = s;
        }
        return;
    }
    let (key, rest) = line.split_once(st.sep.as_str()).unwrap_or((line, ""));
    match key {
        "#set_separator" => {
            if let Some(s) = parse_separator(rest) {
                st.set_sep = s;
            }
        }
        "#unset_field" => st.unset = rest.to_owned(),
        "#empty_field" => st.empty = rest.to_owned(),
        "#path" => {
            st.path = Some(kind_from_path(rest));
            if st.have_fields {
                st.kind = st.path.unwrap_or(Kind::Conn);
            }
        }
        "#fields" => {
            st.roles = rest.split(st.sep.as_str()).map(role).collect();
            st.wanted = st.roles.iter().copied().enumerate().filter(|&(_, r)| r != Role::Skip).collect();
            st.have_fields = true;
            let has = |r: Role| st.roles.contains(&r);
            st.kind = match st.path {
                Some(k) => k,
                None => infer_kind(
                    has(Role::Query),
                    has(Role::Answers),
                    has(Role::ServerName),
                    has(Role::Host),
                    has(Role::Uri),
                ),
            };
        }
        "#close" => {
            // A new log may follow in the same stream with its own headers.
            st.path = None;
        }
        _ => {}
    }
}

fn tsv_line<'a>(
    st: &TsvState,
    line: &'a [u8],
    n: u64,
    on_addr: &mut dyn FnMut(IpAddr),
) -> Result<Option<Record>, String> {
    let mut f = Fields::default();
    // Values arrive as bytes split at ASCII separators of a line not checked as UTF-8: numbers
    // and addresses are read as bytes, and only the values used as text are checked.
    let mut handle = |role: Role, v: &'a [u8]| -> Result<(), String> {
        if role == Role::Skip || v.is_empty() || v == st.unset.as_bytes() {
            return Ok(());
        }
        let text = || std::str::from_utf8(v).map_err(|_| NOT_UTF8.to_string());
        let bad = |what: &str| format!("invalid {what}: {:?}", String::from_utf8_lossy(v));
        let num = || parse_u64(v);
        let name =
            || -> Result<_, String> { Ok(if v == st.empty.as_bytes() { None } else { Some(unescape(text()?)) }) };
        match role {
            Role::Ts => f.ts = Some(parse_epoch_micros(v).ok_or_else(|| bad("ts"))?),
            Role::OrigH | Role::RespH => {
                let what = if role == Role::OrigH { "id.orig_h" } else { "id.resp_h" };
                let ip = parse_ip_bytes(v).ok_or_else(|| bad(what))?;
                on_addr(ip);
                *if role == Role::OrigH { &mut f.orig_h } else { &mut f.resp_h } = Some(ip);
            }
            Role::OrigP => f.orig_p = Some(num().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| bad("id.orig_p"))?),
            Role::RespP => f.resp_p = Some(num().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| bad("id.resp_p"))?),
            Role::Proto => {
                f.proto_icmp = v.eq_ignore_ascii_case(b"icmp");
                f.proto = proto_from_name(text()?);
            }
            Role::IpProto => {
                f.ip_proto = Some(num().and_then(|p| u8::try_from(p).ok()).ok_or_else(|| bad("ip_proto"))?)
            }
            Role::Duration => f.duration = Some(parse_epoch_micros(v).ok_or_else(|| bad("duration"))?),
            Role::OrigPkts => f.orig_pkts = Some(num().ok_or_else(|| bad("orig_pkts"))?),
            Role::RespPkts => f.resp_pkts = Some(num().ok_or_else(|| bad("resp_pkts"))?),
            Role::OrigIpBytes => f.orig_ip_bytes = Some(num().ok_or_else(|| bad("orig_ip_bytes"))?),
            Role::OrigBytes => f.orig_bytes = Some(num().ok_or_else(|| bad("orig_bytes"))?),
            Role::RespIpBytes => f.resp_ip_bytes = Some(num().ok_or_else(|| bad("resp_ip_bytes"))?),
            Role::RespBytes => f.resp_bytes = Some(num().ok_or_else(|| bad("resp_bytes"))?),
            Role::Query => f.query = name()?,
            Role::Answers => {
                if v != st.empty.as_bytes() {
                    f.answers = text()?.split(st.set_sep.as_str()).map(unescape).collect();
                }
            }
            Role::ServerName => f.server_name = name()?,
            Role::Host => f.host = name()?,
            Role::Uri => f.uri = name()?,
            Role::Skip => {}
        }
        Ok(())
    };
    let count = match st.sep.as_bytes() {
        // Only the fields read are sliced, in order, so the first bad one is reported.
        &[sep] if sep.is_ascii() => swar::split_wanted(line, sep, &st.wanted, &mut handle)?,
        _ => {
            let line = std::str::from_utf8(line).map_err(|_| NOT_UTF8.to_string())?;
            let mut count = 0;
            for (i, v) in line.split(st.sep.as_str()).enumerate() {
                handle(st.roles.get(i).copied().unwrap_or(Role::Skip), v.as_bytes())?;
                count = i + 1;
            }
            count
        }
    };
    if count != st.roles.len() {
        return Err(format!("{count} fields, the #fields header names {}", st.roles.len()));
    }
    build(st.kind, f, n)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IdJson<'a> {
    #[serde(borrow)]
    orig_h: Option<Cow<'a, str>>,
    #[serde(borrow)]
    orig_p: Scalar<'a>,
    #[serde(borrow)]
    resp_h: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resp_p: Scalar<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ZeekJson<'a> {
    #[serde(borrow)]
    ts: Scalar<'a>,
    #[serde(borrow, rename = "_path")]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "id.orig_h")]
    orig_h: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "id.orig_p")]
    orig_p: Scalar<'a>,
    #[serde(borrow, rename = "id.resp_h")]
    resp_h: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "id.resp_p")]
    resp_p: Scalar<'a>,
    #[serde(borrow)]
    id: Option<IdJson<'a>>,
    #[serde(borrow)]
    proto: Scalar<'a>,
    #[serde(borrow)]
    ip_proto: Scalar<'a>,
    #[serde(borrow)]
    duration: Scalar<'a>,
    #[serde(borrow)]
    orig_pkts: Scalar<'a>,
    #[serde(borrow)]
    resp_pkts: Scalar<'a>,
    #[serde(borrow)]
    orig_ip_bytes: Scalar<'a>,
    #[serde(borrow)]
    orig_bytes: Scalar<'a>,
    #[serde(borrow)]
    resp_ip_bytes: Scalar<'a>,
    #[serde(borrow)]
    resp_bytes: Scalar<'a>,
    #[serde(borrow)]
    query: Option<Cow<'a, str>>,
    #[serde(borrow)]
    answers: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    server_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
}

pub(super) fn parse_json(data: &[u8], out: &mut Out<'_>) {
    for_each_line(data, out, |n, line, out| {
        let t = line.trim_start();
        if t.starts_with('#') {
            return true;
        }
        match json_line(line, n) {
            Ok(Some(r)) => out.record(r),
            Ok(None) => out.skip(),
            Err(e) => out.error(n, e),
        }
        true
    });
}

fn opt_num(s: &Scalar<'_>, what: &str) -> Result<Option<u64>, String> {
    if s.is_null() {
        return Ok(None);
    }
    if let Some(v) = s.as_str() {
        if v == "-" || v.is_empty() {
            return Ok(None);
        }
    }
    s.as_u64().map(Some).ok_or_else(|| format!("invalid {what}: {s:?}"))
}

fn opt_ip(s: Option<&str>, what: &str) -> Result<Option<IpAddr>, String> {
    match s {
        None | Some("-") | Some("") => Ok(None),
        Some(v) => parse_ip(v).map(Some).ok_or_else(|| format!("invalid {what}: {v:?}")),
    }
}

fn json_line(line: &str, n: u64) -> Result<Option<Record>, String> {
    let z: ZeekJson<'_> = serde_json::from_str(line).map_err(|e| json_err(&e))?;
    let kind = match z.path.as_deref() {
        Some(p) => kind_from_path(p),
        None => infer_kind(
            z.query.is_some(),
            z.answers.is_some(),
            z.server_name.is_some(),
            z.host.is_some(),
            z.uri.is_some(),
        ),
    };
    if kind == Kind::Other {
        return Ok(None);
    }
    let (mut orig_h, mut orig_p, mut resp_h, mut resp_p) = (z.orig_h, z.orig_p, z.resp_h, z.resp_p);
    if let Some(id) = z.id {
        orig_h = orig_h.or(id.orig_h);
        resp_h = resp_h.or(id.resp_h);
        if orig_p.is_null() {
            orig_p = id.orig_p;
        }
        if resp_p.is_null() {
            resp_p = id.resp_p;
        }
    }
    let port = |s: &Scalar<'_>, what: &str| -> Result<Option<u16>, String> {
        opt_num(s, what)?.map(|p| u16::try_from(p).map_err(|_| format!("invalid {what}: {p}"))).transpose()
    };
    let ts = if z.ts.is_null() { None } else { Some(z.ts.as_time().ok_or_else(|| format!("invalid ts: {:?}", z.ts))?) };
    let duration = match &z.duration {
        Scalar::Null => None,
        d => Some(d.as_time().ok_or_else(|| format!("invalid duration: {d:?}"))?),
    };
    let f = Fields {
        ts,
        orig_h: opt_ip(orig_h.as_deref(), "id.orig_h")?,
        resp_h: opt_ip(resp_h.as_deref(), "id.resp_h")?,
        orig_p: port(&orig_p, "id.orig_p")?,
        resp_p: port(&resp_p, "id.resp_p")?,
        proto_icmp: z.proto.as_str().is_some_and(|p| p.eq_ignore_ascii_case("icmp")),
        proto: z.proto.as_proto(),
        ip_proto: z.ip_proto.as_u64().and_then(|p| u8::try_from(p).ok()),
        duration,
        orig_pkts: opt_num(&z.orig_pkts, "orig_pkts")?,
        resp_pkts: opt_num(&z.resp_pkts, "resp_pkts")?,
        orig_ip_bytes: opt_num(&z.orig_ip_bytes, "orig_ip_bytes")?,
        orig_bytes: opt_num(&z.orig_bytes, "orig_bytes")?,
        resp_ip_bytes: opt_num(&z.resp_ip_bytes, "resp_ip_bytes")?,
        resp_bytes: opt_num(&z.resp_bytes, "resp_bytes")?,
        query: z.query,
        answers: z.answers.unwrap_or_default(),
        server_name: z.server_name,
        host: z.host,
        uri: z.uri,
    };
    build(kind, f, n)
}
