//! Suricata EVE JSON: `flow`, `netflow` (one record per direction), `dns` (v1 per-answer events,
//! v2 `answers`/`grouped`, v3 `queries`), `tls` and `http` events. Other event types are
//! skipped without being parsed.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::{for_each_line, json_err, norm_name, parse_ip, parse_iso_micros, Out, Record, Scalar};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Eve<'a> {
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    src_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dest_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    src_port: Scalar<'a>,
    #[serde(borrow)]
    dest_port: Scalar<'a>,
    #[serde(borrow)]
    proto: Scalar<'a>,
    #[serde(borrow)]
    flow: Option<Flow<'a>>,
    #[serde(borrow)]
    netflow: Option<Netflow<'a>>,
    #[serde(borrow)]
    dns: Option<Box<Dns<'a>>>,
    #[serde(borrow)]
    tls: Option<Tls<'a>>,
    #[serde(borrow)]
    http: Option<Http<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Flow<'a> {
    #[serde(borrow)]
    pkts_toserver: Scalar<'a>,
    #[serde(borrow)]
    pkts_toclient: Scalar<'a>,
    #[serde(borrow)]
    bytes_toserver: Scalar<'a>,
    #[serde(borrow)]
    bytes_toclient: Scalar<'a>,
    #[serde(borrow)]
    start: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Netflow<'a> {
    #[serde(borrow)]
    pkts: Scalar<'a>,
    #[serde(borrow)]
    bytes: Scalar<'a>,
    #[serde(borrow)]
    start: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Dns<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rrname: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rrtype: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rdata: Scalar<'a>,
    #[serde(borrow)]
    queries: Option<Vec<Query<'a>>>,
    #[serde(borrow)]
    answers: Option<Vec<Answer<'a>>>,
    #[serde(borrow)]
    grouped: Option<BTreeMap<Cow<'a, str>, Vec<Scalar<'a>>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Query<'a> {
    #[serde(borrow)]
    rrname: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Answer<'a> {
    #[serde(borrow)]
    rrtype: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rdata: Scalar<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Tls<'a> {
    #[serde(borrow)]
    sni: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Http<'a> {
    #[serde(borrow)]
    hostname: Option<Cow<'a, str>>,
    #[serde(borrow)]
    url: Option<Cow<'a, str>>,
}

const HANDLED: [&str; 5] = ["flow", "netflow", "dns", "tls", "http"];

/// The event type read straight from the text when it is a plain string.
fn quick_event_type(line: &str) -> Option<&str> {
    const KEY: &[u8] = b"\"event_type\"";
    let at = memchr::memmem::find(line.as_bytes(), KEY)? + KEY.len();
    let rest = line.get(at..)?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    let v = &rest[..end];
    (!v.contains('\\')).then_some(v)
}

pub(super) fn parse(data: &[u8], out: &mut Out<'_>) {
    for_each_line(data, out, |n, line, out| {
        use super::eve_fast::{read, Fast};
        let et = match read(line, n, out.on_addr) {
            Fast::Record(r) => {
                out.record(r);
                return true;
            }
            Fast::Other(et) => Some(et),
            Fast::Unsure => quick_event_type(line),
        };
        if et.is_some_and(|et| !HANDLED.contains(&et)) {
            out.skip();
            return true;
        }
        if let Err(e) = event(line, n, out) {
            out.error(n, e);
        }
        true
    });
}

fn time(s: Option<&str>, what: &str) -> Result<Option<i64>, String> {
    match s {
        None => Ok(None),
        Some(t) => parse_iso_micros(t).map(Some).ok_or_else(|| format!("invalid {what}: {t:?}")),
    }
}

fn counter(s: &Scalar<'_>, what: &str) -> Result<u64, String> {
    if s.is_null() {
        return Ok(0);
    }
    s.as_u64().ok_or_else(|| format!("invalid {what}: {s:?}"))
}

fn event(line: &str, n: u64, out: &mut Out<'_>) -> Result<(), String> {
    let e: Eve<'_> = match serde_json::from_str(line) {
        Ok(e) => e,
        Err(err) => {
            // An event of a type we do not read is not an error, even if its body surprises us.
            #[derive(Deserialize)]
            struct Head<'a> {
                #[serde(borrow)]
                event_type: Option<Cow<'a, str>>,
            }
            if let Ok(Head { event_type: Some(t) }) = serde_json::from_str::<Head<'_>>(line) {
                if !HANDLED.contains(&t.as_ref()) {
                    out.skip();
                    return Ok(());
                }
            }
            return Err(json_err(&err));
        }
    };
    let et = e.event_type.as_deref().unwrap_or("");
    if !HANDLED.contains(&et) {
        out.skip();
        return Ok(());
    }
    let ts = || time(e.timestamp.as_deref(), "timestamp");
    let ip = |s: Option<&str>, what: &str| -> Result<_, String> {
        match s {
            None | Some("") => Ok(None),
            Some(v) => parse_ip(v).map(Some).ok_or_else(|| format!("invalid {what}: {v:?}")),
        }
    };
    let port = |s: &Scalar<'_>, what: &str| -> Result<u16, String> {
        if s.is_null() {
            return Ok(0);
        }
        s.as_port().ok_or_else(|| format!("invalid {what}: {s:?}"))
    };
    let mut r = Record {
        line: n,
        src: ip(e.src_ip.as_deref(), "src_ip")?,
        dst: ip(e.dest_ip.as_deref(), "dest_ip")?,
        sport: port(&e.src_port, "src_port")?,
        dport: port(&e.dest_port, "dest_port")?,
        proto: e.proto.as_proto().unwrap_or(0),
        ..Default::default()
    };
    match et {
        "flow" => {
            let f = e.flow.unwrap_or_default();
            let start = time(f.start.as_deref(), "flow.start")?;
            r.ts_micros = match start {
                Some(t) => t,
                None => ts()?.ok_or("missing timestamp")?,
            };
            r.end_micros = time(f.end.as_deref(), "flow.end")?;
            r.pkts = [counter(&f.pkts_toserver, "pkts_toserver")?, counter(&f.pkts_toclient, "pkts_toclient")?];
            r.bytes = [counter(&f.bytes_toserver, "bytes_toserver")?, counter(&f.bytes_toclient, "bytes_toclient")?];
            if r.src.is_none() && r.dst.is_none() {
                return Err("flow event without src_ip and dest_ip".into());
            }
        }
        "netflow" => {
            let f = e.netflow.unwrap_or_default();
            let start = time(f.start.as_deref(), "netflow.start")?;
            r.ts_micros = match start {
                Some(t) => t,
                None => ts()?.ok_or("missing timestamp")?,
            };
            r.end_micros = time(f.end.as_deref(), "netflow.end")?;
            r.pkts[0] = counter(&f.pkts, "netflow.pkts")?;
            r.bytes[0] = counter(&f.bytes, "netflow.bytes")?;
            if r.src.is_none() && r.dst.is_none() {
                return Err("netflow event without src_ip and dest_ip".into());
            }
        }
        "dns" => {
            r.ts_micros = ts()?.ok_or("missing timestamp")?;
            let Some(d) = e.dns else {
                out.skip();
                return Ok(());
            };
            let first_query =
                d.queries.as_ref().and_then(|q| q.iter().find_map(|q| q.rrname.as_deref().and_then(norm_name)));
            let n = r.names_mut();
            n.dns_query = d.rrname.as_deref().and_then(norm_name).or(first_query);
            let mut add = |rrtype: Option<&str>, rdata: &Scalar<'_>| {
                let Some(v) = rdata.as_str() else { return };
                match rrtype.unwrap_or("") {
                    "CNAME" => {
                        if let Some(c) = norm_name(v) {
                            n.dns_cnames.push(c)
                        }
                    }
                    _ => {
                        if let Some(a) = parse_ip(v) {
                            n.dns_answers.push(a)
                        }
                    }
                }
            };
            if d.kind.as_deref() == Some("answer") && d.answers.is_none() {
                add(d.rrtype.as_deref(), &d.rdata);
            }
            for a in d.answers.iter().flatten() {
                add(a.rrtype.as_deref(), &a.rdata);
            }
            for (t, vals) in d.grouped.iter().flatten() {
                for v in vals {
                    add(Some(t), v);
                }
            }
            if n.dns_query.is_none() && n.dns_answers.is_empty() && n.dns_cnames.is_empty() {
                out.skip();
                return Ok(());
            }
        }
        "tls" => {
            r.ts_micros = ts()?.ok_or("missing timestamp")?;
            r.names_mut().tls_sni = e.tls.and_then(|t| t.sni).as_deref().and_then(norm_name);
        }
        "http" => {
            r.ts_micros = ts()?.ok_or("missing timestamp")?;
            if let Some(h) = e.http {
                let n = r.names_mut();
                n.http_host = h.hostname.as_deref().and_then(super::non_empty);
                n.http_uri = h.url.as_deref().and_then(super::non_empty);
            }
        }
        _ => {
            out.skip();
            return Ok(());
        }
    }
    out.record(r);
    Ok(())
}

/// The record the serde reader makes of one line: `Ok(None)` when it skips the line.
pub(super) fn slow(line: &str, n: u64) -> Result<Option<Record>, String> {
    let mut got = None;
    let mut rec = |r: &Record| got = Some(r.clone());
    let mut err = |_: u64, _: String| {};
    let mut st = super::TextStats::default();
    let mut out = Out { on_record: &mut rec, on_error: &mut err, on_addr: &mut |_| {}, stats: &mut st };
    event(line, n, &mut out)?;
    Ok(got)
}
