//! AWS VPC Flow Logs (and Transit Gateway flow logs): space-separated fields named by a header
//! line (default or custom format, any order, v2-v5 fields), `-` for unset. Without a header,
//! three layouts are recognised: the default v2 format (14 fields, version 2), all v2-v5 fields
//! in their documented order (29 fields) and the Transit Gateway default format (36 fields).

use std::net::IpAddr;

use super::{for_each_line, parse_ip, parse_u64, Out, Record};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    LogStatus,
    PktSrc,
    PktDst,
    Skip,
}

fn role(name: &str) -> Role {
    let name = name.trim_start_matches("${").trim_end_matches('}');
    let mut buf = [0u8; 24];
    if name.len() > buf.len() {
        return Role::Skip;
    }
    for (d, c) in buf.iter_mut().zip(name.bytes()) {
        *d = if c == b'_' { b'-' } else { c.to_ascii_lowercase() };
    }
    match &buf[..name.len()] {
        b"srcaddr" => Role::SrcAddr,
        b"dstaddr" => Role::DstAddr,
        b"srcport" => Role::SrcPort,
        b"dstport" => Role::DstPort,
        b"protocol" => Role::Protocol,
        b"packets" => Role::Packets,
        b"bytes" => Role::Bytes,
        b"start" => Role::Start,
        b"end" => Role::End,
        b"log-status" => Role::LogStatus,
        b"pkt-srcaddr" => Role::PktSrc,
        b"pkt-dstaddr" => Role::PktDst,
        _ => Role::Skip,
    }
}

const V2: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end \
                  action log-status";
const V5_ALL: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start \
                      end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region \
                      az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction \
                      traffic-path";
const TGW: &str = "version resource-type account-id tgw-id tgw-attachment-id tgw-src-vpc-account-id \
                   tgw-dst-vpc-account-id tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id tgw-dst-subnet-id \
                   tgw-src-eni tgw-dst-eni tgw-src-az-id tgw-dst-az-id tgw-pair-attachment-id srcaddr dstaddr srcport \
                   dstport protocol packets bytes start end log-status type packets-lost-no-route \
                   packets-lost-blackhole packets-lost-mtu-exceeded packets-lost-ttl-expired tcp-flags region \
                   flow-direction pkt-src-aws-service pkt-dst-aws-service";

/// A header line: field names only, naming at least one address field.
pub(super) fn is_header(line: &str) -> bool {
    // Data lines of the default layouts start with the version number.
    if line.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let mut any_addr = false;
    for t in line.split_ascii_whitespace() {
        let t = t.trim_start_matches("${").trim_end_matches('}');
        if t.is_empty() || !t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
            return false;
        }
        if !t.bytes().any(|c| c.is_ascii_alphabetic()) {
            return false;
        }
        any_addr |= matches!(role(t), Role::SrcAddr | Role::DstAddr | Role::PktSrc | Role::PktDst);
    }
    any_addr
}

/// The field list of a headerless line in one of the known default layouts.
pub(super) fn headerless_layout(line: &str) -> Option<&'static str> {
    let mut it = line.split_ascii_whitespace();
    let version = it.next()?;
    let v = parse_u64(version)?;
    let fourth = it.clone().nth(2);
    let n = 1 + it.count();
    match (v, n) {
        (2, 14) => Some(V2),
        (2..=9, 29) => Some(V5_ALL),
        (2..=9, 36) if fourth.is_some_and(|t| t.starts_with("tgw-")) => Some(TGW),
        _ => None,
    }
}

fn roles_of(header: &str) -> Vec<Role> {
    header.split_ascii_whitespace().map(role).collect()
}

pub(super) fn parse(data: &[u8], out: &mut Out<'_>) {
    let mut roles: Option<Vec<Role>> = None;
    for_each_line(data, out, |n, line, out| {
        if line.starts_with('#') {
            return true;
        }
        if is_header(line) {
            roles = Some(roles_of(line));
            return true;
        }
        if roles.is_none() {
            match headerless_layout(line) {
                Some(h) => roles = Some(roles_of(h)),
                None => {
                    out.error(n, "no header line naming the fields, and not a known default layout");
                    return true;
                }
            }
        }
        let roles = roles.as_deref().unwrap_or(&[]);
        match parse_line(roles, line, n, out.on_addr) {
            Ok(Some(r)) => out.record(r),
            Ok(None) => out.skip(),
            Err(e) => out.error(n, e),
        }
        true
    });
}

fn parse_line(roles: &[Role], line: &str, n: u64, on_addr: &mut dyn FnMut(IpAddr)) -> Result<Option<Record>, String> {
    let mut r = Record { line: n, ..Default::default() };
    let mut status_nodata = false;
    let mut count = 0usize;
    for (i, v) in line.split_ascii_whitespace().enumerate() {
        count = i + 1;
        let Some(&role) = roles.get(i) else { continue };
        if role == Role::Skip || v == "-" {
            continue;
        }
        let bad = |what: &str| format!("invalid {what}: {v:?}");
        let ip = |what: &str| -> Result<IpAddr, String> { parse_ip(v).ok_or_else(|| bad(what)) };
        let num = |what: &str| parse_u64(v).ok_or_else(|| bad(what));
        match role {
            Role::SrcAddr | Role::DstAddr => {
                let a = ip(if role == Role::SrcAddr { "srcaddr" } else { "dstaddr" })?;
                on_addr(a);
                *if role == Role::SrcAddr { &mut r.src } else { &mut r.dst } = Some(a);
            }
            Role::PktSrc => r.pkt_src = Some(ip("pkt-srcaddr")?),
            Role::PktDst => r.pkt_dst = Some(ip("pkt-dstaddr")?),
            Role::SrcPort => r.sport = u16::try_from(num("srcport")?).map_err(|_| bad("srcport"))?,
            Role::DstPort => r.dport = u16::try_from(num("dstport")?).map_err(|_| bad("dstport"))?,
            Role::Protocol => r.proto = u8::try_from(num("protocol")?).map_err(|_| bad("protocol"))?,
            Role::Packets => r.pkts[0] = num("packets")?,
            Role::Bytes => r.bytes[0] = num("bytes")?,
            Role::Start => {
                r.ts_micros = i64::try_from(num("start")?)
                    .ok()
                    .and_then(|s| s.checked_mul(1_000_000))
                    .ok_or_else(|| bad("start"))?
            }
            Role::End => {
                r.end_micros = Some(
                    i64::try_from(num("end")?).ok().and_then(|s| s.checked_mul(1_000_000)).ok_or_else(|| bad("end"))?,
                )
            }
            Role::LogStatus => status_nodata = v == "NODATA" || v == "SKIPDATA",
            Role::Skip => {}
        }
    }
    if count != roles.len() {
        return Err(format!("{count} fields, the header names {}", roles.len()));
    }
    if r.src.is_none() && r.dst.is_none() && r.pkt_src.is_none() && r.pkt_dst.is_none() {
        return if status_nodata { Ok(None) } else { Err("no address in the record".into()) };
    }
    Ok(Some(r))
}
