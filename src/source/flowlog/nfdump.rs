//! nfdump `-o csv` output: a header line starting `ts,te,td,sa,da,sp,dp,pr,...`, one flow per
//! line, then a `Summary` block that is ignored. Times are taken as UTC.

use super::{for_each_line, parse_ip, parse_iso_micros, parse_u64, proto_from_name, Out, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Ts,
    Te,
    Sa,
    Da,
    Sp,
    Dp,
    Pr,
    Ipkt,
    Ibyt,
    Opkt,
    Obyt,
    Skip,
}

fn role(name: &str) -> Role {
    match name.trim() {
        "ts" => Role::Ts,
        "te" => Role::Te,
        "sa" => Role::Sa,
        "da" => Role::Da,
        "sp" => Role::Sp,
        "dp" => Role::Dp,
        "pr" => Role::Pr,
        "ipkt" => Role::Ipkt,
        "ibyt" => Role::Ibyt,
        "opkt" => Role::Opkt,
        "obyt" => Role::Obyt,
        _ => Role::Skip,
    }
}

pub(super) fn parse(data: &[u8], out: &mut Out<'_>) {
    let mut roles: Option<Vec<Role>> = None;
    for_each_line(data, out, |n, line, out| {
        if line.starts_with("ts,te,") {
            roles = Some(line.split(',').map(role).collect());
            return true;
        }
        if line.trim() == "Summary" || line.starts_with("Summary") {
            return false;
        }
        let Some(roles) = roles.as_deref() else {
            out.error(n, "data line before the ts,te,... header");
            return true;
        };
        match parse_line(roles, line, n) {
            Ok(r) => out.record(r),
            Err(e) => out.error(n, e),
        }
        true
    });
}

/// A port; ICMP type.code (`8.0`) is read as 0.
fn port(v: &str) -> Option<u16> {
    if v.is_empty() {
        return Some(0);
    }
    if let Some((a, b)) = v.split_once('.') {
        return (parse_u64(a).is_some() && parse_u64(b).is_some()).then_some(0);
    }
    parse_u64(v).and_then(|p| u16::try_from(p).ok())
}

fn parse_line(roles: &[Role], line: &str, n: u64) -> Result<Record, String> {
    let mut r = Record { line: n, ..Default::default() };
    let mut count = 0;
    let mut have_ts = false;
    for (i, v) in line.split(',').enumerate() {
        count = i + 1;
        let Some(&role) = roles.get(i) else { continue };
        let v = v.trim();
        let bad = |what: &str| format!("invalid {what}: {v:?}");
        let num = |what: &str| if v.is_empty() { Ok(0) } else { parse_u64(v).ok_or_else(|| bad(what)) };
        match role {
            Role::Ts => {
                r.ts_micros = parse_iso_micros(v).ok_or_else(|| bad("ts"))?;
                have_ts = true;
            }
            Role::Te => r.end_micros = Some(parse_iso_micros(v).ok_or_else(|| bad("te"))?),
            Role::Sa => r.src = Some(parse_ip(v).ok_or_else(|| bad("sa"))?),
            Role::Da => r.dst = Some(parse_ip(v).ok_or_else(|| bad("da"))?),
            Role::Sp => r.sport = port(v).ok_or_else(|| bad("sp"))?,
            Role::Dp => r.dport = port(v).ok_or_else(|| bad("dp"))?,
            Role::Pr => r.proto = proto_from_name(v).unwrap_or(0),
            Role::Ipkt => r.pkts[0] = num("ipkt")?,
            Role::Ibyt => r.bytes[0] = num("ibyt")?,
            Role::Opkt => r.pkts[1] = num("opkt")?,
            Role::Obyt => r.bytes[1] = num("obyt")?,
            Role::Skip => {}
        }
    }
    if count != roles.len() {
        return Err(format!("{count} fields, the header names {}", roles.len()));
    }
    if !have_ts {
        return Err("missing ts".into());
    }
    if r.src.is_none() && r.dst.is_none() {
        return Err("missing sa and da".into());
    }
    Ok(r)
}
