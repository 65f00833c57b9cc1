//! Cloud flow logs in JSON: GCP VPC flow logs as exported log entries (JSON lines, or one JSON
//! array as `gcloud logging read --format=json` writes it) and Azure NSG flow logs v1/v2 (one
//! `{"records": [...]}` document, or one record or document per line).

use std::borrow::Cow;

use serde::Deserialize;

use super::{for_each_line, json_err, parse_any_time, parse_ip, parse_u64, Out, Record, Scalar};

#[derive(Deserialize, Default)]
#[serde(default)]
struct GcpEntry<'a> {
    #[serde(borrow, rename = "jsonPayload")]
    json_payload: Option<GcpPayload<'a>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GcpPayload<'a> {
    #[serde(borrow)]
    connection: Option<GcpConn<'a>>,
    #[serde(borrow)]
    start_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    bytes_sent: Scalar<'a>,
    #[serde(borrow)]
    packets_sent: Scalar<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GcpConn<'a> {
    #[serde(borrow)]
    src_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dest_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    src_port: Scalar<'a>,
    #[serde(borrow)]
    dest_port: Scalar<'a>,
    #[serde(borrow)]
    protocol: Scalar<'a>,
}

fn gcp_entry(e: GcpEntry<'_>, n: u64) -> Result<Option<Record>, String> {
    let Some(p) = e.json_payload else { return Ok(None) };
    let Some(c) = p.connection else { return Ok(None) };
    let ip = |s: Option<&str>, what: &str| -> Result<_, String> {
        match s {
            None | Some("") => Ok(None),
            Some(v) => parse_ip(v).map(Some).ok_or_else(|| format!("invalid {what}: {v:?}")),
        }
    };
    let num = |s: &Scalar<'_>, what: &str| -> Result<u64, String> {
        if s.is_null() {
            return Ok(0);
        }
        s.as_u64().ok_or_else(|| format!("invalid {what}: {s:?}"))
    };
    let port = |s: &Scalar<'_>, what: &str| -> Result<u16, String> {
        u16::try_from(num(s, what)?).map_err(|_| format!("invalid {what}: {s:?}"))
    };
    let time = |s: Option<&str>, what: &str| -> Result<Option<i64>, String> {
        s.map(|t| parse_any_time(t).ok_or_else(|| format!("invalid {what}: {t:?}"))).transpose()
    };
    let mut r = Record {
        line: n,
        src: ip(c.src_ip.as_deref(), "connection.src_ip")?,
        dst: ip(c.dest_ip.as_deref(), "connection.dest_ip")?,
        sport: port(&c.src_port, "connection.src_port")?,
        dport: port(&c.dest_port, "connection.dest_port")?,
        proto: if c.protocol.is_null() {
            0
        } else {
            c.protocol.as_proto().ok_or_else(|| format!("invalid connection.protocol: {:?}", c.protocol))?
        },
        ..Default::default()
    };
    if r.src.is_none() && r.dst.is_none() {
        return Err("connection without src_ip and dest_ip".into());
    }
    let start = time(p.start_time.as_deref(), "start_time")?;
    r.ts_micros = start.or(time(e.timestamp.as_deref(), "timestamp")?).ok_or("missing start_time")?;
    r.end_micros = time(p.end_time.as_deref(), "end_time")?;
    r.pkts[0] = num(&p.packets_sent, "packets_sent")?;
    r.bytes[0] = num(&p.bytes_sent, "bytes_sent")?;
    Ok(Some(r))
}

fn deliver(res: Result<Option<Record>, String>, n: u64, out: &mut Out<'_>) {
    match res {
        Ok(Some(r)) => out.record(r),
        Ok(None) => out.skip(),
        Err(e) => out.error(n, e),
    }
}

fn is_array(data: &[u8]) -> bool {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

pub(super) fn parse_gcp(data: &[u8], out: &mut Out<'_>) {
    if is_array(data) {
        out.stats.lines += 1;
        match serde_json::from_slice::<Vec<GcpEntry<'_>>>(data) {
            Ok(entries) => {
                for (i, e) in entries.into_iter().enumerate() {
                    let n = i as u64 + 1;
                    deliver(gcp_entry(e, n), n, out);
                }
            }
            Err(e) => out.error(e.line() as u64, json_err(&e)),
        }
        return;
    }
    for_each_line(data, out, |n, line, out| {
        let res = serde_json::from_str::<GcpEntry<'_>>(line).map_err(|e| json_err(&e)).and_then(|e| gcp_entry(e, n));
        deliver(res, n, out);
        true
    });
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AzDoc<'a> {
    #[serde(borrow)]
    records: Option<Vec<AzRecord<'a>>>,
    // A bare record on its own line.
    #[serde(borrow)]
    properties: Option<AzProps<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AzRecord<'a> {
    #[serde(borrow)]
    properties: Option<AzProps<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AzProps<'a> {
    #[serde(borrow, alias = "Version")]
    version: Scalar<'a>,
    #[serde(borrow)]
    flows: Vec<AzRuleFlows<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AzRuleFlows<'a> {
    #[serde(borrow)]
    flows: Vec<AzMacFlows<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AzMacFlows<'a> {
    #[serde(borrow, rename = "flowTuples")]
    flow_tuples: Vec<Cow<'a, str>>,
}

/// Parses `ts,src,dst,sport,dport,T|U,I|O,A|D[,state,pkts_sd,bytes_sd,pkts_ds,bytes_ds]`.
fn az_tuple(t: &str, n: u64) -> Result<Record, String> {
    let mut f = [""; 13];
    let mut k = 0;
    for (i, v) in t.split(',').enumerate() {
        if i >= f.len() {
            return Err(format!("flow tuple with more than 13 fields: {t:?}"));
        }
        f[i] = v.trim();
        k = i + 1;
    }
    if k < 8 {
        return Err(format!("flow tuple with {k} fields, want 8 (v1) or 13 (v2): {t:?}"));
    }
    let bad = |what: &str, v: &str| format!("invalid {what} in flow tuple: {v:?}");
    let num = |v: &str| if v.is_empty() { Some(0) } else { parse_u64(v) };
    let ts =
        parse_u64(f[0]).and_then(|s| i64::try_from(s).ok()?.checked_mul(1_000_000)).ok_or_else(|| bad("time", f[0]))?;
    let mut r = Record {
        ts_micros: ts,
        line: n,
        src: Some(parse_ip(f[1]).ok_or_else(|| bad("source address", f[1]))?),
        dst: Some(parse_ip(f[2]).ok_or_else(|| bad("destination address", f[2]))?),
        sport: num(f[3]).and_then(|p| u16::try_from(p).ok()).ok_or_else(|| bad("source port", f[3]))?,
        dport: num(f[4]).and_then(|p| u16::try_from(p).ok()).ok_or_else(|| bad("destination port", f[4]))?,
        proto: match f[5] {
            "T" | "t" => 6,
            "U" | "u" => 17,
            p => super::proto_from_name(p).ok_or_else(|| bad("protocol", p))?,
        },
        ..Default::default()
    };
    if k >= 13 {
        let c = |i: usize, what: &str| num(f[i]).ok_or_else(|| bad(what, f[i]));
        r.pkts = [c(9, "packets src->dst")?, c(11, "packets dst->src")?];
        r.bytes = [c(10, "bytes src->dst")?, c(12, "bytes dst->src")?];
    }
    Ok(r)
}

fn az_props(p: AzProps<'_>, tuple_no: &mut u64, out: &mut Out<'_>) {
    let _ = &p.version;
    for rule in p.flows {
        for mac in rule.flows {
            for t in mac.flow_tuples {
                *tuple_no += 1;
                match az_tuple(&t, *tuple_no) {
                    Ok(r) => out.record(r),
                    Err(e) => out.error(*tuple_no, e),
                }
            }
        }
    }
}

fn az_doc(d: AzDoc<'_>, tuple_no: &mut u64, out: &mut Out<'_>) {
    for rec in d.records.into_iter().flatten() {
        if let Some(p) = rec.properties {
            az_props(p, tuple_no, out);
        }
    }
    if let Some(p) = d.properties {
        az_props(p, tuple_no, out);
    }
}

pub(super) fn parse_azure(data: &[u8], out: &mut Out<'_>) {
    let mut tuple_no = 0u64;
    match serde_json::from_slice::<AzDoc<'_>>(data) {
        Ok(d) => {
            out.stats.lines += 1;
            az_doc(d, &mut tuple_no, out);
        }
        Err(whole) => {
            // One document or record per line (appended blobs, shipper output).
            let lines_are_objects = data
                .split(|&b| b == b'\n')
                .map(|l| l.trim_ascii())
                .filter(|l| !l.is_empty())
                .all(|l| l.first() == Some(&b'{') && l.last() == Some(&b'}'));
            if !lines_are_objects || whole.is_eof() && !data.contains(&b'\n') {
                out.stats.lines += 1;
                out.error(whole.line() as u64, json_err(&whole));
                return;
            }
            for_each_line(data, out, |n, line, out| {
                match serde_json::from_str::<AzDoc<'_>>(line) {
                    Ok(d) => az_doc(d, &mut tuple_no, out),
                    Err(e) => out.error(n, json_err(&e)),
                }
                true
            });
        }
    }
}
