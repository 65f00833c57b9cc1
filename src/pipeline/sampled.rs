//! A packet an sFlow agent sampled, as a flow record: its addresses and ports, and the names
//! its first bytes hold (a whole DNS message; a TLS ClientHello or an HTTP request head when
//! the sample is long enough for them), read by the same decoders as a captured frame.
//!
//! A sample is one packet in N: it is matched as a flow log's record is (`flow.src`,
//! `flow.dst`, DNS names, SNI, Host), never tracked as a connection of its own, and its alerts
//! carry the sampling rate.

use std::net::SocketAddr;

use crate::decode::{dns, http, packet, tls};
use crate::source::flowlog::sflow::{self, Sample, Sampled, SflowError};
use crate::source::flowlog::{Names, Record};

/// The UDP ports whose payloads are read as DNS (as the engine reads a captured datagram's).
const DNS_PORTS: [u16; 3] = [53, 5353, 5355];

/// The samples of the sFlow datagram `payload` (from `exporter`, at `ts_micros`) as records, in
/// order: `each` is given the record of every sampled packet, and none for a sample that holds no
/// IP packet or one whose header the decoders do not read. The error is what ended the datagram
/// early, after the samples before it.
pub fn records(
    payload: &[u8],
    exporter: SocketAddr,
    ts_micros: i64,
    mut each: impl FnMut(Option<Record>),
) -> Result<(), SflowError> {
    sflow::read(payload, |d, s| each(record(&s, exporter, d.sequence, ts_micros))).map(drop)
}

/// The record of `sample`, which came from `exporter` in its datagram `sequence` at `ts_micros`;
/// none for a header that holds no IP packet.
fn record(s: &Sample<'_>, exporter: SocketAddr, sequence: u32, ts_micros: i64) -> Option<Record> {
    let mut r = Record {
        ts_micros,
        pkts: [1, 0],
        exporter: Some(exporter),
        sequence: Some(sequence),
        sampling_rate: Some(s.sampling_rate),
        ..Default::default()
    };
    match s.packet {
        Sampled::Tuple { src, dst, sport, dport, proto, length } => {
            (r.src, r.dst, r.sport, r.dport, r.proto) = (Some(src), Some(dst), sport, dport, proto);
            r.bytes = [u64::from(length), 0];
        }
        Sampled::Unread { .. } => return None,
        Sampled::Header { linktype, frame_length, header } => {
            let mut d = packet::Decoded::default();
            packet::decode(linktype, header, true, &mut d).ok()?;
            let inner = *d.innermost()?;
            (r.src, r.dst, r.sport, r.dport, r.proto) =
                (Some(inner.src), Some(inner.dst), d.sport, d.dport, inner.proto);
            r.bytes = [u64::from(frame_length), 0];
            if d.fragment.is_none_or(|f| f.offset == 0) && !d.payload.is_empty() {
                r.names = names(inner.proto, &d).map(Box::new);
            }
        }
    }
    Some(r)
}

/// The names in a sampled packet's payload, if it holds any whole.
fn names(proto: u8, d: &packet::Decoded<'_>) -> Option<Names> {
    let mut n = Names::default();
    match proto {
        17 if DNS_PORTS.contains(&d.sport) || DNS_PORTS.contains(&d.dport) => {
            let msg = dns::parse(d.payload).ok()?;
            let mut buf = dns::NameBuf::new();
            // A message cut by the sample's length still gives what came before the cut.
            let _ = msg.walk(
                &mut buf,
                |q| {
                    if n.dns_query.is_none() {
                        n.dns_query = q.name.as_str().map(String::from);
                    }
                },
                |a| match &a.data {
                    dns::Rdata::A(ip) => n.dns_answers.push((*ip).into()),
                    dns::Rdata::Aaaa(ip) => n.dns_answers.push((*ip).into()),
                    dns::Rdata::Cname(t) | dns::Rdata::Dname(t) => n.dns_cnames.extend(t.as_str().map(String::from)),
                    _ => {}
                },
            );
            n.dns_query.as_ref()?;
        }
        6 => {
            let mut scratch = Vec::new();
            if let Ok(hello) = tls::parse_client_hello(d.payload, &mut scratch) {
                n.tls_sni = hello.sni.into_iter().next();
            } else if let Ok(req) = http::parse_request(d.payload) {
                n.http_host = req.host.map(String::from);
                n.http_uri = Some(req.target.to_string());
            }
            if n.tls_sni.is_none() && n.http_host.is_none() {
                return None;
            }
        }
        _ => return None,
    }
    Some(n)
}
