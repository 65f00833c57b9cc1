//! nfdump CSV output, one flow per line after a header line that names the columns:
//! - 1.6 and Debian's 1.7.1 `-o csv`: `ts,te,td,sa,da,sp,dp,pr,...`, then a `Summary` block
//!   (read and counted as lines without a connection);
//! - later 1.7 `-o csv`: `firstSeen,duration,proto,srcAddr,srcPort,dstAddr,dstPort,packets,
//!   bytes,flows`, and `-o csv-fast`: `cnt,af,firstSeen,lastSeen,proto,srcAddr,...`, with times
//!   as text or as epoch numbers.
//!
//! Columns are found by name, in any order. Times are taken as UTC.

use std::net::IpAddr;

use super::{
    for_each_line, parse_epoch_micros, parse_ip_bytes, parse_iso_micros, parse_u64, proto_from_name, swar, Out, Record,
};

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
    /// Seconds (1.7 `duration`), giving the end time when there is no `lastSeen`.
    Duration,
    Skip,
}

fn role(name: &str) -> Role {
    match name.trim() {
        "ts" | "firstSeen" => Role::Ts,
        "te" | "lastSeen" => Role::Te,
        "sa" | "srcAddr" => Role::Sa,
        "da" | "dstAddr" => Role::Da,
        "sp" | "srcPort" => Role::Sp,
        "dp" | "dstPort" => Role::Dp,
        "pr" | "proto" => Role::Pr,
        "ipkt" | "packets" => Role::Ipkt,
        "ibyt" | "bytes" => Role::Ibyt,
        "duration" => Role::Duration,
        "opkt" => Role::Opkt,
        "obyt" => Role::Obyt,
        _ => Role::Skip,
    }
}

/// The columns of the header line: how many, and the ones read, by position.
struct Columns {
    count: usize,
    wanted: Vec<(usize, Role)>,
}

pub(super) fn parse(data: &[u8], out: &mut Out<'_>) {
    let mut roles: Option<Columns> = None;
    let mut summary = false;
    for_each_line(data, out, |n, line, out| {
        if is_header(line) {
            let all: Vec<Role> = line.split(',').map(role).collect();
            let wanted = all.iter().copied().enumerate().filter(|&(_, r)| r != Role::Skip).collect();
            roles = Some(Columns { count: all.len(), wanted });
            return true;
        }
        // nfdump's closing statistics: read, counted as lines without a connection.
        if summary || line.starts_with("Summary") {
            summary = true;
            out.skip();
            return true;
        }
        let Some(roles) = roles.as_ref() else {
            out.error(n, "data line before the header line (ts,te,... or firstSeen,...)");
            return true;
        };
        match parse_line(roles, line, n, out.on_addr) {
            Ok(r) => out.record(r),
            Err(e) => out.error(n, e),
        }
        true
    });
}

/// A header line of any nfdump CSV flavour.
pub(super) fn is_header(line: &str) -> bool {
    // Data lines start with a time or a count; only a line naming `firstSeen` is split to look.
    line.starts_with("ts,te,td,sa,da,sp,dp,pr")
        || super::contains(line.as_bytes(), b"firstSeen") && {
            let names: Vec<&str> = line.split(',').map(str::trim).collect();
            names.contains(&"firstSeen") && names.contains(&"srcAddr") && names.contains(&"dstAddr")
        }
}

/// A time: nfdump's text (`2024-09-04 12:00:00.000`) or epoch seconds, or milliseconds when the
/// number is too large to be seconds.
fn time(v: &[u8]) -> Option<i64> {
    if let Some(t) = std::str::from_utf8(v).ok().and_then(parse_iso_micros) {
        return Some(t);
    }
    let t = parse_epoch_micros(v)?;
    Some(if t > 100_000_000_000_000_000 { t / 1000 } else { t })
}

/// A port; ICMP type.code (`8.0`) is read as 0.
fn port(v: &[u8]) -> Option<u16> {
    if v.is_empty() {
        return Some(0);
    }
    if let Some(dot) = v.iter().position(|&c| c == b'.') {
        return (parse_u64(&v[..dot]).is_some() && parse_u64(&v[dot + 1..]).is_some()).then_some(0);
    }
    parse_u64(v).and_then(|p| u16::try_from(p).ok())
}

fn parse_line(cols: &Columns, line: &str, n: u64, on_addr: &mut dyn FnMut(IpAddr)) -> Result<Record, String> {
    let mut r = Record { line: n, ..Default::default() };
    let mut have_ts = false;
    let mut duration = None;
    // Only the columns read are sliced, in order, so the first bad one is reported.
    let count = swar::split_wanted(line.as_bytes(), b',', &cols.wanted, |role, v| {
        // Values are read as bytes (split at an ASCII comma out of a valid line).
        let v = v.trim_ascii();
        let bad = |what: &str| format!("invalid {what}: {:?}", String::from_utf8_lossy(v));
        let num = |what: &str| if v.is_empty() { Ok(0) } else { parse_u64(v).ok_or_else(|| bad(what)) };
        match role {
            Role::Ts => {
                r.ts_micros = time(v).ok_or_else(|| bad("ts"))?;
                have_ts = true;
            }
            Role::Te => r.end_micros = Some(time(v).ok_or_else(|| bad("te"))?),
            Role::Duration => duration = Some(parse_epoch_micros(v).ok_or_else(|| bad("duration"))?),
            Role::Sa | Role::Da => {
                let ip = parse_ip_bytes(v).ok_or_else(|| bad(if role == Role::Sa { "sa" } else { "da" }))?;
                // Known before the rest of the line is read: its lookup can start now.
                on_addr(ip);
                *if role == Role::Sa { &mut r.src } else { &mut r.dst } = Some(ip);
            }
            Role::Sp => r.sport = port(v).ok_or_else(|| bad("sp"))?,
            Role::Dp => r.dport = port(v).ok_or_else(|| bad("dp"))?,
            Role::Pr => r.proto = std::str::from_utf8(v).ok().and_then(proto_from_name).unwrap_or(0),
            Role::Ipkt => r.pkts[0] = num("ipkt")?,
            Role::Ibyt => r.bytes[0] = num("ibyt")?,
            Role::Opkt => r.pkts[1] = num("opkt")?,
            Role::Obyt => r.bytes[1] = num("obyt")?,
            Role::Skip => {}
        }
        Ok(())
    })?;
    if count != cols.count {
        return Err(format!("{count} fields, the header names {}", cols.count));
    }
    if !have_ts {
        return Err("missing ts".into());
    }
    if r.end_micros.is_none() {
        r.end_micros = duration.map(|d| r.ts_micros.saturating_add(d));
    }
    if r.src.is_none() && r.dst.is_none() {
        return Err("missing sa and da".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::super::{detect, parse_text_stats, Format};

    fn read(text: &str) -> (Vec<super::Record>, Vec<(u64, String)>, super::super::TextStats) {
        let (mut recs, mut errs) = (Vec::new(), Vec::new());
        let st =
            parse_text_stats(Format::NfdumpCsv, text.as_bytes(), |r| recs.push(r.clone()), |n, e| errs.push((n, e)));
        (recs, errs, st)
    }

    #[test]
    fn every_csv_flavour_of_nfdump_is_recognised_and_read() {
        let legacy = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt\n\
            2024-09-04 12:00:00,2024-09-04 12:00:05,5.080,10.20.2.1,198.18.151.214,10002,443,TCP,...AP.SF,0,0,13,1696,0,0\n\
            Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n1,1696,13,2713,2,130\n";
        let v17 = "firstSeen,duration,proto,srcAddr,srcPort,dstAddr,dstPort,packets,bytes,flows\n\
            2024-09-04 12:00:00.000,5.080,6,10.20.2.1,10002,198.18.151.214,443,13,1696,1\n";
        let fast = "cnt,af,firstSeen,lastSeen,proto,srcAddr,srcPort,dstAddr,dstPort,srcAS,dstAS,input,output,flags,srcTos,packets,bytes\n\
            1,2,1725451200000,1725451205080,6,10.20.2.1,10002,198.18.151.214,443,0,0,1,2,0,0,13,1696\n";
        for (name, text, lines, ignored) in [("legacy", legacy, 5, 3), ("1.7 csv", v17, 2, 0), ("csv-fast", fast, 2, 0)]
        {
            assert_eq!(detect(text.as_bytes()), Some(Format::NfdumpCsv), "{name}");
            let (recs, errs, st) = read(text);
            assert!(errs.is_empty(), "{name}: {errs:?}");
            assert_eq!(recs.len(), 1, "{name}");
            let r = &recs[0];
            assert_eq!(r.src, Some("10.20.2.1".parse().unwrap()), "{name}");
            assert_eq!(r.dst, Some("198.18.151.214".parse().unwrap()), "{name}");
            assert_eq!((r.sport, r.dport, r.proto, r.pkts[0], r.bytes[0]), (10002, 443, 6, 13, 1696), "{name}");
            assert_eq!(r.ts_micros, 1_725_451_200_000_000, "{name}");
            assert_eq!(r.end_micros, Some(1_725_451_205_000_000 + if name == "legacy" { 0 } else { 80_000 }), "{name}");
            assert_eq!((st.lines, st.skipped), (lines, ignored), "{name}");
        }
    }
}
