//! sFlow version 5 datagrams (sflow.org, "sFlow Version 5", 2004): what switches and routers
//! send to a collector on UDP 6343 instead of (or beside) NetFlow.
//!
//! An sFlow agent samples 1 packet in N and sends the first bytes of each (usually 128), with
//! the sampling rate; some send the packet's addresses and ports decoded instead. So a hit
//! proves contact; a miss proves nothing. This module reads the wire format only (XDR: big-endian
//! 32-bit words, opaque data padded to a multiple of 4): each flow sample's raw packet headers
//! and sampled IPv4/IPv6 records, handed to the caller, which decodes a header as it decodes a
//! captured frame. Counter samples and the other record types are skipped, by their lengths.
//!
//! Every length is checked against the bytes there before it is used: a datagram cut short or
//! lying about a length yields what came before the fault, then the error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IANA port of sFlow.
pub const PORT: u16 = 6343;

/// Samples one datagram may declare, at most (a 1,500-byte datagram holds a few dozen).
const MAX_SAMPLES: u32 = 4096;
/// Records one flow sample may declare, at most.
const MAX_RECORDS: u32 = 64;

/// What a flow sample says about the packet it sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampled<'a> {
    /// The packet's first bytes (`header`), as `linktype` (a pcap link type) frames them, and
    /// the packet's length on the wire.
    Header { linktype: u32, frame_length: u32, header: &'a [u8] },
    /// The packet's addresses and ports, decoded by the agent (sampled IPv4 or IPv6 data).
    Tuple { src: IpAddr, dst: IpAddr, sport: u16, dport: u16, proto: u8, length: u32 },
    /// The packet's first bytes, framed by a protocol the packet decoder does not read (token
    /// ring, FDDI, 802.11...): a sample that cannot be matched, to count.
    Unread { header_protocol: u32 },
}

/// One sampled packet, with the sample's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample<'a> {
    /// The sample's sequence number (per data source).
    pub sequence: u32,
    /// 1 in how many packets was sampled.
    pub sampling_rate: u32,
    pub packet: Sampled<'a>,
}

/// The datagram's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The agent that sampled (not always the address the datagram came from).
    pub agent: Option<IpAddr>,
    pub sequence: u32,
}

/// Why a datagram could not be read (past what was read before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SflowError {
    NotVersion5(u32),
    Truncated(&'static str),
    TooMany(&'static str, u32),
    BadAddressType(u32),
}

impl std::fmt::Display for SflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SflowError::NotVersion5(v) => write!(f, "sFlow version {v}, not 5"),
            SflowError::Truncated(what) => write!(f, "sFlow datagram cut short in {what}"),
            SflowError::TooMany(what, n) => write!(f, "sFlow datagram declares {n} {what}: too many"),
            SflowError::BadAddressType(t) => write!(f, "sFlow address of unknown type {t}"),
        }
    }
}

/// Whether `payload` starts as an sFlow version 5 datagram does (version 5, an IPv4 or IPv6
/// agent address).
pub fn looks_like(payload: &[u8]) -> bool {
    matches!(payload, [0, 0, 0, 5, 0, 0, 0, 1 | 2, ..])
}

/// Whether a UDP datagram to `dport` carrying `payload`, seen in captured traffic, is sFlow
/// export traffic: sent to the sFlow port, and starting as a version 5 datagram does.
pub fn is_export(dport: u16, payload: &[u8]) -> bool {
    dport == PORT && looks_like(payload)
}

/// A cursor over XDR words.
struct Xdr<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Xdr<'a> {
    fn u32(&mut self, what: &'static str) -> Result<u32, SflowError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SflowError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(SflowError::Truncated(what))?;
        let b = &self.data[self.at..end];
        self.at = end;
        Ok(b)
    }

    /// Opaque data of `n` bytes, padded to a multiple of 4.
    fn opaque(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SflowError> {
        let b = self.bytes(n, what)?;
        self.bytes((4 - n % 4) % 4, what)?;
        Ok(b)
    }

    fn address(&mut self, what: &'static str) -> Result<Option<IpAddr>, SflowError> {
        match self.u32(what)? {
            0 => Ok(None),
            1 => Ok(Some(IpAddr::V4(self.ipv4(what)?))),
            2 => Ok(Some(IpAddr::V6(self.ipv6(what)?))),
            t => Err(SflowError::BadAddressType(t)),
        }
    }

    fn ipv4(&mut self, what: &'static str) -> Result<Ipv4Addr, SflowError> {
        let b = self.bytes(4, what)?;
        Ok(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }

    fn ipv6(&mut self, what: &'static str) -> Result<Ipv6Addr, SflowError> {
        let b: [u8; 16] = self.bytes(16, what)?.try_into().expect("16 bytes");
        Ok(Ipv6Addr::from(b))
    }

    /// The next `len` bytes as a cursor of their own.
    fn sub(&mut self, len: u32, what: &'static str) -> Result<Xdr<'a>, SflowError> {
        Ok(Xdr { data: self.bytes(len as usize, what)?, at: 0 })
    }
}

/// The pcap link type of an sFlow header protocol, for those the packet decoder reads.
fn linktype(header_protocol: u32) -> Option<u32> {
    match header_protocol {
        1 => Some(crate::decode::packet::LINKTYPE_ETHERNET), // ETHERNET-ISO88023
        11 | 12 => Some(crate::decode::packet::LINKTYPE_RAW), // IPv4, IPv6
        _ => None,
    }
}

/// Reads one datagram: calls `sample` for every sampled packet in it, in order; returns the
/// header, or the error that stopped it (after the samples before it).
pub fn read<'a>(payload: &'a [u8], mut sample: impl FnMut(&Datagram, Sample<'a>)) -> Result<Datagram, SflowError> {
    let mut x = Xdr { data: payload, at: 0 };
    let version = x.u32("the header")?;
    if version != 5 {
        return Err(SflowError::NotVersion5(version));
    }
    let agent = x.address("the agent address")?;
    let _sub_agent = x.u32("the header")?;
    let sequence = x.u32("the header")?;
    let _uptime = x.u32("the header")?;
    let d = Datagram { agent, sequence };
    let samples = x.u32("the header")?;
    if samples > MAX_SAMPLES {
        return Err(SflowError::TooMany("samples", samples));
    }
    for _ in 0..samples {
        let format = x.u32("a sample")?;
        let len = x.u32("a sample")?;
        let mut s = x.sub(len, "a sample")?;
        // Enterprise 0: format 1 (flow sample) and 3 (expanded flow sample).
        let expanded = match format {
            1 => false,
            3 => true,
            _ => continue, // counter samples, vendors' own
        };
        let seq = s.u32("a flow sample")?;
        if expanded {
            s.bytes(8, "a flow sample")?; // source id type and index
        } else {
            s.u32("a flow sample")?; // source id
        }
        let sampling_rate = s.u32("a flow sample")?;
        // Sample pool, drops, and the input and output interfaces (a word each, two expanded).
        s.bytes(if expanded { 24 } else { 16 }, "a flow sample")?;
        let records = s.u32("a flow sample")?;
        if records > MAX_RECORDS {
            return Err(SflowError::TooMany("records in a flow sample", records));
        }
        for _ in 0..records {
            let rformat = s.u32("a flow record")?;
            let rlen = s.u32("a flow record")?;
            let mut r = s.sub(rlen, "a flow record")?;
            let packet = match rformat {
                1 => {
                    let proto = r.u32("a raw packet header")?;
                    let frame_length = r.u32("a raw packet header")?;
                    let _stripped = r.u32("a raw packet header")?;
                    let hlen = r.u32("a raw packet header")?;
                    let header = r.opaque(hlen as usize, "a raw packet header")?;
                    match linktype(proto) {
                        Some(linktype) => Sampled::Header { linktype, frame_length, header },
                        None => Sampled::Unread { header_protocol: proto },
                    }
                }
                3 | 4 => {
                    let length = r.u32("sampled IP data")?;
                    let proto = r.u32("sampled IP data")?;
                    let (src, dst) = if rformat == 3 {
                        (IpAddr::V4(r.ipv4("sampled IPv4 data")?), IpAddr::V4(r.ipv4("sampled IPv4 data")?))
                    } else {
                        (IpAddr::V6(r.ipv6("sampled IPv6 data")?), IpAddr::V6(r.ipv6("sampled IPv6 data")?))
                    };
                    let sport = r.u32("sampled IP data")?;
                    let dport = r.u32("sampled IP data")?;
                    Sampled::Tuple { src, dst, sport: sport as u16, dport: dport as u16, proto: proto as u8, length }
                }
                _ => continue, // switch, router, user data...: nothing about the packet's ends
            };
            sample(&d, Sample { sequence: seq, sampling_rate, packet });
        }
    }
    Ok(d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn words(out: &mut Vec<u8>, w: &[u32]) {
        for v in w {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// An sFlow v5 datagram from agent 192.0.2.1 (sequence 9) with one flow sample (1 in
    /// `rate`) holding `records` (already encoded: format, length, body).
    pub fn datagram(rate: u32, records: &[Vec<u8>], expanded: bool) -> Vec<u8> {
        let mut body = Vec::new();
        words(&mut body, &[77]); // sample sequence
        if expanded {
            words(&mut body, &[0, 3]);
        } else {
            words(&mut body, &[3]);
        }
        words(&mut body, &[rate, 1000, 0]);
        if expanded {
            words(&mut body, &[0, 3, 0, 4]);
        } else {
            words(&mut body, &[3, 4]);
        }
        words(&mut body, &[records.len() as u32]);
        for r in records {
            body.extend_from_slice(r);
        }
        let mut d = Vec::new();
        words(&mut d, &[5, 1]);
        d.extend_from_slice(&[192, 0, 2, 1]);
        words(&mut d, &[0, 9, 123_456, 2]);
        // A counter sample first, which is skipped.
        words(&mut d, &[2, 8, 1, 2]);
        words(&mut d, &[if expanded { 3 } else { 1 }, body.len() as u32]);
        d.extend_from_slice(&body);
        d
    }

    /// A raw packet header record of `header`, as `proto` (1 Ethernet, 11 IPv4).
    pub fn header_record(proto: u32, header: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        words(&mut body, &[proto, header.len() as u32 + 400, 4, header.len() as u32]);
        body.extend_from_slice(header);
        body.resize(body.len().div_ceil(4) * 4, 0);
        let mut r = Vec::new();
        words(&mut r, &[1, body.len() as u32]);
        r.extend_from_slice(&body);
        r
    }

    fn ipv4_record() -> Vec<u8> {
        let mut r = Vec::new();
        words(&mut r, &[3, 32, 1500, 6]);
        r.extend_from_slice(&[10, 0, 0, 1, 198, 51, 100, 7]);
        words(&mut r, &[40000, 443, 0x18, 0]);
        r
    }

    fn all(d: &[u8]) -> (Result<Datagram, SflowError>, Vec<Sample<'_>>, usize) {
        let mut got = Vec::new();
        let r = read(d, |_, s| got.push(s));
        let unread = got.iter().filter(|s| matches!(s.packet, Sampled::Unread { .. })).count();
        got.retain(|s| !matches!(s.packet, Sampled::Unread { .. }));
        (r, got, unread)
    }

    #[test]
    fn headers_and_tuples_come_out_in_order() {
        for expanded in [false, true] {
            let d = datagram(512, &[header_record(1, &[0xaa; 13]), ipv4_record(), header_record(99, &[1])], expanded);
            assert!(looks_like(&d));
            let (r, got, skipped) = all(&d);
            let h = r.unwrap();
            assert_eq!((h.agent, h.sequence), (Some(IpAddr::from([192, 0, 2, 1])), 9));
            assert_eq!(skipped, 1, "an unknown header protocol is counted");
            assert_eq!(got.len(), 2);
            assert_eq!((got[0].sequence, got[0].sampling_rate), (77, 512));
            assert_eq!(got[0].packet, Sampled::Header { linktype: 1, frame_length: 413, header: &[0xaa; 13] });
            assert_eq!(
                got[1].packet,
                Sampled::Tuple {
                    src: IpAddr::from([10, 0, 0, 1]),
                    dst: IpAddr::from([198, 51, 100, 7]),
                    sport: 40000,
                    dport: 443,
                    proto: 6,
                    length: 1500
                }
            );
        }
    }

    #[test]
    fn a_cut_or_lying_datagram_yields_what_came_before() {
        let d = datagram(1, &[header_record(11, &[0x45; 20]), ipv4_record()], false);
        for cut in 0..d.len() {
            let (r, got, _) = all(&d[..cut]);
            assert!(r.is_err(), "cut at {cut}");
            assert!(got.len() <= 1);
        }
        let mut lying = d.clone();
        // The flow sample's length claims more than there is.
        let at = 4 * 7 + 16 + 4;
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(all(&lying).0, Err(SflowError::Truncated("a sample")));
        let mut many = d;
        many[4 * 6..4 * 7].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(all(&many).0, Err(SflowError::TooMany("samples", u32::MAX)));
        assert_eq!(all(&[0, 0, 0, 4]).0, Err(SflowError::NotVersion5(4)));
        assert!(!looks_like(&[0, 5, 0, 1]), "NetFlow v5");
    }
}
