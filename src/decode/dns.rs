//! DNS message parsing (RFC 1035 wire format), bounded and allocation-free.
//!
//! Why this shape: DNS is where most indicator hits first show up (the query for the C2 name,
//! the answer that reveals its current addresses and the CNAME chain in between). Payloads come
//! straight off the wire from untrusted hosts, so the parser follows the style of Suricata's and
//! smoltcp's wire parsers: every read goes through a checked accessor, no length or count field is
//! trusted, compression pointers are bounded, and nothing is allocated. Names are decoded into a
//! caller-provided [`NameBuf`] so a long-lived decoder reuses the same two 256-byte arrays for
//! every packet.
//!
//! Only the question and answer sections are walked: authority/additional records rarely name
//! the thing a client actually asked for and would double the work per packet.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest name on the wire, in octets, length bytes and the root label included (RFC 1035
/// 2.3.4). The dotted text form is at most 253 characters, so a 256-byte buffer always fits.
pub const MAX_NAME: usize = 255;

/// How many compression pointers one name may follow. Real names use one, rarely two; the cap
/// bounds the work an adversarial message can cause even though the backward-only rule and
/// [`MAX_NAME`] already guarantee termination.
pub const MAX_POINTERS: usize = 64;

/// Size of the DNS header.
pub const HEADER_LEN: usize = 12;

/// The smallest possible question (root name + QTYPE + QCLASS) and resource record (root name +
/// TYPE + CLASS + TTL + RDLENGTH). Used to reject counts that could not fit in any message.
const MIN_QUESTION: usize = 5;
const MIN_RECORD: usize = 11;

/// Record types this module decodes.
pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_DNAME: u16 = 39;
/// Class IN: A/AAAA RDATA only means an address in this class (CHAOS "A" records differ).
pub const CLASS_IN: u16 = 1;

/// Why a message (or the rest of it) could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// The message ends before a field it announces (short header, name, record or RDATA).
    Truncated,
    /// The header is not one a DNS speaker would send (unassigned opcode).
    BadHeader,
    /// A name is malformed: label over 63 octets, reserved label type, name over
    /// [`MAX_NAME`] octets, a compression pointer that does not point strictly backwards (which
    /// covers self-pointers, forward pointers and out-of-bounds pointers), or more than
    /// [`MAX_POINTERS`] pointers (loops).
    BadName,
    /// The header counts could not possibly fit in a DNS message (at most 65535 bytes): garbage.
    TooManyRecords,
    /// A record's RDATA does not match its type (A not 4 bytes, AAAA not 16, a name-typed RDATA
    /// whose name does not end exactly at the end of RDATA).
    BadRecord,
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            DnsError::Truncated => "truncated DNS message",
            DnsError::BadHeader => "bad DNS header",
            DnsError::BadName => "malformed DNS name",
            DnsError::TooManyRecords => "implausible DNS record counts",
            DnsError::BadRecord => "malformed DNS record data",
        };
        f.write_str(s)
    }
}

impl std::error::Error for DnsError {}

/// Two reusable name buffers: one for a record's owner name, one for a name inside its RDATA
/// (CNAME target etc.), since both are handed to the callback at once.
#[derive(Clone)]
pub struct NameBuf {
    owner: [u8; 256],
    target: [u8; 256],
}

impl NameBuf {
    pub const fn new() -> Self {
        NameBuf { owner: [0; 256], target: [0; 256] }
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameBuf")
    }
}

/// A decoded domain name: labels joined with '.', ASCII uppercase lowered, no trailing dot; the
/// root name is the empty string.
///
/// Bytes are kept as they were on the wire apart from case folding, because an attacker-chosen
/// name is evidence and must not be silently "repaired". `odd` flags names that cannot be read
/// back unambiguously as hostnames: a '.' inside a label, or any byte outside 0x21..=0x7e. Such a
/// name may still be matched, but should be reported with care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name<'n> {
    bytes: &'n [u8],
    /// A label holds '.' or a byte outside printable ASCII (0x21..=0x7e).
    pub odd: bool,
}

impl<'n> Name<'n> {
    /// The raw (lowercased) bytes.
    pub fn as_bytes(&self) -> &'n [u8] {
        self.bytes
    }

    /// The name as text. Always `Some` when `odd` is false; `None` only when the labels hold
    /// bytes that are not valid UTF-8 (which cannot be a hostname indicator anyway).
    pub fn as_str(&self) -> Option<&'n str> {
        std::str::from_utf8(self.bytes).ok()
    }

    /// True for the root name (".", empty text).
    pub fn is_root(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// One entry of the question section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question<'n> {
    pub name: Name<'n>,
    pub qtype: u16,
    pub qclass: u16,
}

/// The decoded RDATA of an answer. Names in RDATA are decoded because CNAME/DNAME chains are
/// how a benign-looking query ends up at a listed host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rdata<'n> {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name<'n>),
    Dname(Name<'n>),
    Ns(Name<'n>),
    Ptr(Name<'n>),
    /// Any other type (or A/AAAA outside class IN), by its TYPE value; RDATA not decoded.
    Other(u16),
}

/// One record of the answer section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'n> {
    pub name: Name<'n>,
    pub rtype: u16,
    pub class: u16,
    /// As sent (RFC 2181 says to read a TTL with the top bit set as 0; left to the caller).
    pub ttl: u32,
    pub data: Rdata<'n>,
}

/// A DNS message whose header has been checked. Borrowing the bytes, so walking it later costs
/// nothing extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub authoritative: bool,
    pub truncated: bool,
    pub recursion_desired: bool,
    pub recursion_available: bool,
    pub rcode: u8,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    bytes: &'a [u8],
}

/// Reads the header and checks it is plausible; does not look at the sections (see
/// [`Message::walk`]), so it is cheap enough to call on every UDP/53 payload.
///
/// A message shorter than its counts imply is *not* rejected here: a capture cut by the snap
/// length still yields its first records through `walk`, which stops with `Truncated` where the
/// bytes end.
pub fn parse(msg: &[u8]) -> Result<Message<'_>, DnsError> {
    let h = msg.get(..HEADER_LEN).ok_or(DnsError::Truncated)?;
    let be = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let flags = be(2);
    let opcode = ((flags >> 11) & 0xf) as u8;
    // 0 QUERY, 1 IQUERY (obsolete), 2 STATUS, 4 NOTIFY, 5 UPDATE, 6 DSO; others unassigned.
    if matches!(opcode, 3 | 7..=15) {
        return Err(DnsError::BadHeader);
    }
    let m = Message {
        id: be(0),
        is_response: flags & 0x8000 != 0,
        opcode,
        authoritative: flags & 0x0400 != 0,
        truncated: flags & 0x0200 != 0,
        recursion_desired: flags & 0x0100 != 0,
        recursion_available: flags & 0x0080 != 0,
        rcode: (flags & 0xf) as u8,
        qdcount: be(4),
        ancount: be(6),
        nscount: be(8),
        arcount: be(10),
        bytes: msg,
    };
    let records = m.ancount as usize + m.nscount as usize + m.arcount as usize;
    let min_len = HEADER_LEN + m.qdcount as usize * MIN_QUESTION + records * MIN_RECORD;
    if min_len > u16::MAX as usize {
        return Err(DnsError::TooManyRecords);
    }
    Ok(m)
}

impl<'a> Message<'a> {
    /// The whole message.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Walks the question then the answer section, handing each entry to the callbacks; stops
    /// at the first error and returns it. Entries delivered before the error stay delivered, so
    /// a truncated response still yields its first answers.
    ///
    /// Work is bounded by the message size: every entry consumes at least 5 bytes and every
    /// name at most [`MAX_NAME`] label octets and [`MAX_POINTERS`] jumps.
    pub fn walk(
        &self,
        scratch: &mut NameBuf,
        on_question: impl FnMut(&Question<'_>),
        on_answer: impl FnMut(&Answer<'_>),
    ) -> Result<(), DnsError> {
        self.walk_names::<true>(scratch, on_question, on_answer)
    }

    /// [`Self::walk`], reusing an owner name decoded just before (`REUSE`, see [`owner_name`])
    /// or not (the tests' reference).
    #[inline]
    fn walk_names<const REUSE: bool>(
        &self,
        scratch: &mut NameBuf,
        mut on_question: impl FnMut(&Question<'_>),
        mut on_answer: impl FnMut(&Answer<'_>),
    ) -> Result<(), DnsError> {
        let msg = self.bytes;
        let mut pos = HEADER_LEN;
        let mut last = None;
        let owner_name = |msg: &[u8], pos: usize, out: &mut [u8; 256], last: &mut Option<Decoded>| match REUSE {
            true => owner_name(msg, pos, out, last),
            false => read_name(msg, pos, out).map(|(len, odd, end, _)| (len, odd, end)),
        };
        for _ in 0..self.qdcount {
            let (len, odd, end) = owner_name(msg, pos, &mut scratch.owner, &mut last)?;
            let fixed = msg.get(end..end + 4).ok_or(DnsError::Truncated)?;
            let q = Question {
                name: Name { bytes: scratch.owner.get(..len).unwrap_or_default(), odd },
                qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
                qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
            };
            on_question(&q);
            pos = end + 4;
        }
        for _ in 0..self.ancount {
            let (len, odd, end) = owner_name(msg, pos, &mut scratch.owner, &mut last)?;
            let fixed = msg.get(end..end + 10).ok_or(DnsError::Truncated)?;
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let class = u16::from_be_bytes([fixed[2], fixed[3]]);
            let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
            let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
            let rd_start = end + 10;
            let rd_end = rd_start + rdlen;
            let rdata = msg.get(rd_start..rd_end).ok_or(DnsError::Truncated)?;
            let data = match (rtype, class) {
                (TYPE_A, CLASS_IN) => {
                    let b: [u8; 4] = rdata.try_into().map_err(|_| DnsError::BadRecord)?;
                    Rdata::A(Ipv4Addr::from(b))
                }
                (TYPE_AAAA, CLASS_IN) => {
                    let b: [u8; 16] = rdata.try_into().map_err(|_| DnsError::BadRecord)?;
                    Rdata::Aaaa(Ipv6Addr::from(b))
                }
                (TYPE_CNAME, _) => Rdata::Cname(rdata_name(msg, rd_start, rd_end, &mut scratch.target)?),
                (TYPE_DNAME, _) => Rdata::Dname(rdata_name(msg, rd_start, rd_end, &mut scratch.target)?),
                (TYPE_NS, _) => Rdata::Ns(rdata_name(msg, rd_start, rd_end, &mut scratch.target)?),
                (TYPE_PTR, _) => Rdata::Ptr(rdata_name(msg, rd_start, rd_end, &mut scratch.target)?),
                (t, _) => Rdata::Other(t),
            };
            let a = Answer {
                name: Name { bytes: scratch.owner.get(..len).unwrap_or_default(), odd },
                rtype,
                class,
                ttl,
                data,
            };
            on_answer(&a);
            pos = rd_end;
        }
        Ok(())
    }
}

/// A name decoded into a buffer: where it started in the message, and what [`read_name`] said
/// of it (its text length, whether it is odd, and the pointers it followed).
#[derive(Clone, Copy)]
struct Decoded {
    start: usize,
    len: usize,
    odd: bool,
    jumps: usize,
}

/// [`read_name`] for an entry's owner name into `out`, which holds the name `last` says was
/// decoded into it before. An answer's owner is nearly always a pointer to the question's name
/// (`0xc00c`): that decodes to exactly the text already in `out`, so it is not decoded again,
/// a byte at a time, for every answer. The pointer obeys every rule [`read_name`] checks:
/// strictly backwards, and one jump more than that name took within the cap.
#[inline]
fn owner_name(
    msg: &[u8],
    pos: usize,
    out: &mut [u8; 256],
    last: &mut Option<Decoded>,
) -> Result<(usize, bool, usize), DnsError> {
    // Where the name points, if it is a pointer.
    let target = match msg.get(pos..pos + 2) {
        Some(&[hi, lo]) if hi & 0xc0 == 0xc0 => Some((usize::from(hi & 0x3f) << 8) | usize::from(lo)),
        _ => None,
    };
    if let (Some(target), Some(d)) = (target, *last) {
        if target == d.start && target < pos && d.jumps < MAX_POINTERS {
            return Ok((d.len, d.odd, pos + 2));
        }
    }
    let (len, odd, end, jumps) = read_name(msg, pos, out)?;
    // A name that is one pointer decodes as the name it points to, with one jump less.
    *last = Some(match target {
        Some(start) => Decoded { start, len, odd, jumps: jumps - 1 },
        None => Decoded { start: pos, len, odd, jumps },
    });
    Ok((len, odd, end))
}

/// Decodes a name that must fill a record's RDATA exactly (CNAME, NS, PTR, DNAME).
fn rdata_name<'n>(msg: &[u8], rd_start: usize, rd_end: usize, target: &'n mut [u8; 256]) -> Result<Name<'n>, DnsError> {
    let (len, odd, end, _) = read_name(msg, rd_start, target)?;
    if end != rd_end {
        return Err(DnsError::BadRecord);
    }
    Ok(Name { bytes: target.get(..len).unwrap_or_default(), odd })
}

/// [`parse`] then [`Message::walk`], for callers that do not need the header.
pub fn walk(
    msg: &[u8],
    scratch: &mut NameBuf,
    on_question: impl FnMut(&Question<'_>),
    on_answer: impl FnMut(&Answer<'_>),
) -> Result<(), DnsError> {
    parse(msg)?.walk(scratch, on_question, on_answer)
}

/// Decodes the name starting at `start` into `out`. Returns (text length, odd, position just
/// past the name in the original byte stream, i.e. after the first pointer if any, pointers
/// followed).
///
/// A pointer must target an offset strictly before the pointer itself: RFC 1035 compression only
/// ever refers to names already written, and the rule makes self-pointers, forward pointers and
/// out-of-bounds pointers (all beyond the pointer, since it is inside the message) errors at
/// once. A loop then has to contain labels, which the 255-octet name limit catches; the pointer
/// cap bounds the rest.
fn read_name(msg: &[u8], start: usize, out: &mut [u8; 256]) -> Result<(usize, bool, usize, usize), DnsError> {
    let mut pos = start;
    let mut end: Option<usize> = None;
    let mut wire = 0usize; // octets of the uncompressed wire form so far
    let mut len = 0usize; // bytes written to `out`
    let mut odd = false;
    let mut jumps = 0usize;
    loop {
        let b = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match b & 0xc0 {
            0x00 if b == 0 => {
                wire += 1;
                if wire > MAX_NAME {
                    return Err(DnsError::BadName);
                }
                let end = end.unwrap_or(pos + 1);
                return Ok((len, odd, end, jumps));
            }
            0x00 => {
                let l = b as usize;
                // Room for this label and the terminating root octet.
                wire += 1 + l;
                if wire + 1 > MAX_NAME {
                    return Err(DnsError::BadName);
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(DnsError::Truncated)?;
                if len > 0 {
                    *out.get_mut(len).ok_or(DnsError::BadName)? = b'.';
                    len += 1;
                }
                let dst = out.get_mut(len..len + l).ok_or(DnsError::BadName)?;
                for (d, &c) in dst.iter_mut().zip(label) {
                    if c == b'.' || !(0x21..=0x7e).contains(&c) {
                        odd = true;
                    }
                    *d = c.to_ascii_lowercase();
                }
                len += l;
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = (usize::from(b & 0x3f) << 8) | usize::from(lo);
                if target >= pos {
                    return Err(DnsError::BadName);
                }
                jumps += 1;
                if jumps > MAX_POINTERS {
                    return Err(DnsError::BadName);
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            // 0x40 (extended label types, RFC 6891 deprecated them) and 0x80 (reserved).
            _ => return Err(DnsError::BadName),
        }
    }
}

/// Splits a DNS-over-TCP byte stream (RFC 1035 4.2.2: each message prefixed with its 2-byte
/// length) into messages. Stops at the first incomplete one; [`TcpMessages::consumed`] tells the
/// caller how many bytes were used so it can keep the rest buffered.
pub fn tcp_messages(stream: &[u8]) -> TcpMessages<'_> {
    TcpMessages { stream, pos: 0 }
}

/// Iterator returned by [`tcp_messages`].
#[derive(Debug, Clone)]
pub struct TcpMessages<'a> {
    stream: &'a [u8],
    pos: usize,
}

impl<'a> TcpMessages<'a> {
    /// Bytes taken by the messages yielded so far (length prefixes included).
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// What is left after the messages yielded so far (an incomplete message, or nothing).
    pub fn rest(&self) -> &'a [u8] {
        self.stream.get(self.pos..).unwrap_or_default()
    }
}

impl<'a> Iterator for TcpMessages<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let p = self.stream.get(self.pos..self.pos + 2)?;
        let len = usize::from(u16::from_be_bytes([p[0], p[1]]));
        let start = self.pos + 2;
        let m = self.stream.get(start..start + len)?;
        self.pos = start + len;
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a dotted name as uncompressed labels.
    fn enc_name(out: &mut Vec<u8>, name: &str) {
        for l in name.split('.').filter(|l| !l.is_empty()) {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
    }

    fn header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [id, flags, qd, an, 0, 0] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Q(String, u16, bool),
        A(String, u16, u32, String),
    }

    fn rd_str(d: &Rdata<'_>) -> String {
        match d {
            Rdata::A(a) => a.to_string(),
            Rdata::Aaaa(a) => a.to_string(),
            Rdata::Cname(n) => format!("cname:{}", n.as_str().unwrap()),
            Rdata::Dname(n) => format!("dname:{}", n.as_str().unwrap()),
            Rdata::Ns(n) => format!("ns:{}", n.as_str().unwrap()),
            Rdata::Ptr(n) => format!("ptr:{}", n.as_str().unwrap()),
            Rdata::Other(t) => format!("type{t}"),
        }
    }

    fn collect(msg: &[u8]) -> (Vec<Seen>, Result<(), DnsError>) {
        let mut seen = Vec::new();
        let mut seen2 = Vec::new();
        let mut nb = NameBuf::new();
        let r = walk(
            msg,
            &mut nb,
            |q| seen.push(Seen::Q(String::from_utf8_lossy(q.name.as_bytes()).into_owned(), q.qtype, q.name.odd)),
            |a| seen2.push(Seen::A(a.name.as_str().unwrap().to_string(), a.rtype, a.ttl, rd_str(&a.data))),
        );
        seen.extend(seen2);
        (seen, r)
    }

    fn query(name: &str) -> Vec<u8> {
        let mut m = header(0x1234, 0x0100, 1, 0);
        enc_name(&mut m, name);
        m.extend_from_slice(&[0, 1, 0, 1]);
        m
    }

    /// Response: www.Example.com CNAME edge.cdn.net (compressed), edge.cdn.net CNAME
    /// e1.cdn.net (suffix compressed), e1.cdn.net A 192.0.2.7, e1.cdn.net AAAA 2001:db8::7.
    fn cname_response() -> Vec<u8> {
        let mut m = header(0x1234, 0x8180, 1, 4);
        let q = m.len();
        enc_name(&mut m, "www.Example.com");
        m.extend_from_slice(&[0, 1, 0, 1]);
        // answer 1: owner = pointer to question name
        m.extend_from_slice(&[0xc0, q as u8, 0, 5, 0, 1, 0, 0, 0x0e, 0x10]);
        let rdlen_at = m.len();
        m.extend_from_slice(&[0, 0]);
        let edge = m.len();
        enc_name(&mut m, "edge.cdn.net");
        let rdlen = (m.len() - edge) as u16;
        m[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        // answer 2: owner = pointer to edge, target = "e1" + pointer to "cdn.net"
        m.extend_from_slice(&[0xc0, edge as u8, 0, 5, 0, 1, 0, 0, 0, 60, 0, 5]);
        let cdn = edge + 5;
        let e1 = m.len();
        m.extend_from_slice(&[2, b'e', b'1', 0xc0, cdn as u8]);
        // answer 3: A
        m.extend_from_slice(&[0xc0, e1 as u8, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 7]);
        // answer 4: AAAA
        m.extend_from_slice(&[0xc0, e1 as u8, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16]);
        m.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        m
    }

    #[test]
    fn normal_query() {
        let m = query("www.example.com");
        let h = parse(&m).unwrap();
        assert_eq!(h.id, 0x1234);
        assert!(!h.is_response);
        assert!(h.recursion_desired);
        assert_eq!((h.qdcount, h.ancount, h.rcode), (1, 0, 0));
        let (seen, r) = collect(&m);
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![Seen::Q("www.example.com".into(), 1, false)]);
    }

    #[test]
    fn cname_chain_a_aaaa_with_compression() {
        let m = cname_response();
        let h = parse(&m).unwrap();
        assert!(h.is_response);
        let (seen, r) = collect(&m);
        assert_eq!(r, Ok(()));
        assert_eq!(
            seen,
            vec![
                Seen::Q("www.example.com".into(), 1, false),
                Seen::A("www.example.com".into(), 5, 3600, "cname:edge.cdn.net".into()),
                Seen::A("edge.cdn.net".into(), 5, 60, "cname:e1.cdn.net".into()),
                Seen::A("e1.cdn.net".into(), 1, 30, "192.0.2.7".into()),
                Seen::A("e1.cdn.net".into(), 28, 30, "2001:db8::7".into()),
            ]
        );
    }

    #[test]
    fn uppercase_is_lowered_and_root_is_empty() {
        let (seen, r) = collect(&query("WwW.ExAmPlE.CoM."));
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![Seen::Q("www.example.com".into(), 1, false)]);
        let (seen, r) = collect(&query(""));
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![Seen::Q("".into(), 1, false)]);
    }

    #[test]
    fn odd_names_are_flagged_not_dropped() {
        let mut m = header(1, 0x0100, 1, 0);
        m.extend_from_slice(&[3, b'a', b'.', b'B', 2, b'x', 0x01, 0, 0, 1, 0, 1]);
        let (seen, r) = collect(&m);
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![Seen::Q("a.b.x\u{1}".into(), 1, true)]);
        // Non-UTF-8 bytes: as_str is None but bytes are delivered.
        let mut m = header(1, 0x0100, 1, 0);
        m.extend_from_slice(&[2, 0xff, b'Q', 0, 0, 1, 0, 1]);
        let mut got = Vec::new();
        walk(
            &m,
            &mut NameBuf::new(),
            |q| got.push((q.name.as_bytes().to_vec(), q.name.as_str().is_none(), q.name.odd)),
            |_| {},
        )
        .unwrap();
        assert_eq!(got, vec![(vec![0xff, b'q'], true, true)]);
    }

    fn one_question_raw(name: &[u8]) -> Vec<u8> {
        let mut m = header(1, 0x0100, 1, 0);
        m.extend_from_slice(name);
        m.extend_from_slice(&[0, 1, 0, 1]);
        m
    }

    /// What walking `msg` delivers, reusing owner names (`REUSE`) or decoding every one.
    fn collect_with<const REUSE: bool>(msg: &[u8]) -> Option<(Vec<Seen>, Result<(), DnsError>)> {
        let (mut seen, mut answers) = (Vec::new(), Vec::new());
        let r = parse(msg).ok()?.walk_names::<REUSE>(
            &mut NameBuf::new(),
            |q| seen.push(Seen::Q(String::from_utf8_lossy(q.name.as_bytes()).into_owned(), q.qtype, q.name.odd)),
            |a| {
                let name = format!("{}{}", String::from_utf8_lossy(a.name.as_bytes()), a.name.odd);
                let data = match &a.data {
                    Rdata::Cname(n) | Rdata::Dname(n) | Rdata::Ns(n) | Rdata::Ptr(n) => {
                        String::from_utf8_lossy(n.as_bytes()).into_owned()
                    }
                    d => rd_str(d),
                };
                answers.push(Seen::A(name, a.rtype, a.ttl, data))
            },
        );
        seen.extend(answers);
        Some((seen, r))
    }

    /// A response whose names run through a chain of 63 pointers: the owner names right at the
    /// cap of [`MAX_POINTERS`] jumps, reused and not, and one past it.
    fn pointer_chain_response() -> Vec<u8> {
        let mut m = header(7, 0x8180, 1, 5);
        enc_name(&mut m, "a.example");
        m.extend_from_slice(&[0, 1, 0, 1]);
        let ptr = |to: usize| [0xc0 | (to >> 8) as u8, to as u8];
        // Answer 1 (type 99) carries the chain in its data: c0 -> the question, ck -> c(k-1).
        m.extend_from_slice(&ptr(12));
        m.extend_from_slice(&[0, 99, 0, 1, 0, 0, 0, 9, 0, 126]);
        let mut prev = 12;
        for _ in 0..63 {
            let at = m.len();
            m.extend_from_slice(&ptr(prev));
            prev = at;
        }
        let a = |m: &mut Vec<u8>| m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 192, 0, 2, 1]);
        // Answer 2: a pointer to c62 (64 jumps, the cap); answer 3: the same again, reused.
        for _ in 0..2 {
            m.extend_from_slice(&ptr(prev));
            a(&mut m);
        }
        // Answer 4: a label, then c62 (64 jumps); answer 5: a pointer to it (65: refused).
        let four = m.len();
        m.extend_from_slice(&[1, b'b']);
        m.extend_from_slice(&ptr(prev));
        a(&mut m);
        m.extend_from_slice(&ptr(four));
        a(&mut m);
        m
    }

    #[test]
    fn reused_owner_names_read_exactly_as_names_decoded_afresh() {
        let mut three_a = header(9, 0x8180, 1, 3);
        enc_name(&mut three_a, "Cdn.Example.NET");
        three_a.extend_from_slice(&[0, 1, 0, 1]);
        for last in 1..4 {
            three_a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 192, 0, 2, last]);
        }
        let chain = pointer_chain_response();
        let (seen, r) = collect_with::<true>(&chain).unwrap();
        assert_eq!(r, Err(DnsError::BadName), "answer 5 is one jump past the cap");
        assert_eq!(seen.len(), 5, "the question and answers 1 to 4: {seen:?}");
        let (seen, r) = collect_with::<true>(&three_a).unwrap();
        assert_eq!((seen.len(), r), (4, Ok(())));
        assert_eq!(seen[3], Seen::A("cdn.example.netfalse".into(), 1, 9, "192.0.2.3".into()));
        // The crafted messages, and thousands of copies with a few bytes changed at random.
        let mut rng = crate::synth::XorShift(0x9e37_79b9_7f4a_7c15);
        for base in [cname_response(), three_a, chain] {
            assert_eq!(collect_with::<true>(&base), collect_with::<false>(&base));
            for _ in 0..5000 {
                let mut m = base.clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(m.len() as u64) as usize;
                    m[at] = rng.next_u64() as u8;
                }
                assert_eq!(collect_with::<true>(&m), collect_with::<false>(&m), "{m:02x?}");
            }
        }
    }

    #[test]
    fn pointer_loops_and_bad_pointers() {
        // Self-pointer at offset 12.
        assert_eq!(collect(&one_question_raw(&[0xc0, 12])).1, Err(DnsError::BadName));
        // Forward pointer.
        assert_eq!(collect(&one_question_raw(&[0xc0, 14, 0])).1, Err(DnsError::BadName));
        // Out of bounds.
        assert_eq!(collect(&one_question_raw(&[0xff, 0xff])).1, Err(DnsError::BadName));
        // Pointer inside the question name jumping forward (past itself).
        let mut m = header(1, 0x8100, 1, 1);
        m.extend_from_slice(&[1, b'a', 0xc0, 18]); // offset 12: "a" then pointer to 18
        m.extend_from_slice(&[0, 1, 0, 1]); // qtype/qclass (offsets 16..20)
        let (_, r) = collect(&m);
        assert_eq!(r, Err(DnsError::BadName));
        // Loop through labels that only points backwards: offset 12 "a", 14 pointer->12 is
        // backward, so the name grows until the 255 limit / pointer cap.
        let mut m = header(1, 0x0100, 1, 0);
        m.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(collect(&m).1, Err(DnsError::BadName));
        // A -> B -> A: 12: "x" -> ptr 16 ; 16: "y" -> ptr 12. Whichever is entered first,
        // the second jump is not backwards from its own position.
        let mut m = header(1, 0x0100, 1, 0);
        m.extend_from_slice(&[1, b'x', 0xc0, 16, 1, b'y', 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(collect(&m).1, Err(DnsError::BadName));
        // Reserved label types.
        assert_eq!(collect(&one_question_raw(&[0x41, 0])).1, Err(DnsError::BadName));
        assert_eq!(collect(&one_question_raw(&[0x80, 0])).1, Err(DnsError::BadName));
    }

    #[test]
    fn label_and_name_limits() {
        let l63 = "a".repeat(63);
        let l64 = "a".repeat(64);
        assert_eq!(collect(&query(&format!("{l63}.com"))).1, Ok(()));
        let mut raw = vec![64];
        raw.extend_from_slice(l64.as_bytes());
        raw.push(0);
        assert_eq!(collect(&one_question_raw(&raw)).1, Err(DnsError::BadName));
        // 63+63+63+61 labels: wire length exactly 255, text 253.
        let max = format!("{l63}.{l63}.{l63}.{}", "b".repeat(61));
        let (seen, r) = collect(&query(&max));
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![Seen::Q(max.clone(), 1, false)]);
        // One more octet: 256.
        let over = format!("{l63}.{l63}.{l63}.{}", "b".repeat(62));
        assert_eq!(collect(&query(&over)).1, Err(DnsError::BadName));
        let over = format!("{l63}.{l63}.{l63}.{l63}");
        assert_eq!(collect(&query(&over)).1, Err(DnsError::BadName));
    }

    #[test]
    fn bad_rdata() {
        let mut m = header(1, 0x8100, 0, 1);
        m.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3]);
        assert_eq!(collect(&m).1, Err(DnsError::BadRecord));
        // CNAME whose name is shorter than RDLENGTH.
        let mut m = header(1, 0x8100, 0, 1);
        m.extend_from_slice(&[0, 0, 5, 0, 1, 0, 0, 0, 1, 0, 4, 1, b'a', 0, 0]);
        assert_eq!(collect(&m).1, Err(DnsError::BadRecord));
        // A in class CH is not an IPv4 address.
        let mut m = header(1, 0x8100, 0, 1);
        m.extend_from_slice(&[0, 0, 1, 0, 3, 0, 0, 0, 1, 0, 2, 1, 2]);
        let (seen, r) = collect(&m);
        assert_eq!(r, Ok(()));
        assert_eq!(seen, vec![Seen::A("".into(), 1, 1, "type1".into())]);
    }

    #[test]
    fn header_checks() {
        assert_eq!(parse(&[0; 11]).unwrap_err(), DnsError::Truncated);
        let mut m = query("a.b");
        m[2] = 0x18; // opcode 3
        assert_eq!(parse(&m).unwrap_err(), DnsError::BadHeader);
        let m = header(1, 0, 0xffff, 0xffff);
        assert_eq!(parse(&m).unwrap_err(), DnsError::TooManyRecords);
        // Counts larger than the bytes: header parses, walk says Truncated after what it had.
        let mut m = query("a.b");
        m[7] = 3; // ancount 3
        let (seen, r) = collect(&m);
        assert_eq!(r, Err(DnsError::Truncated));
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn every_prefix_is_safe_and_partial_results_are_a_prefix() {
        let m = cname_response();
        let (full, _) = collect(&m);
        for n in 0..m.len() {
            let (seen, r) = collect(&m[..n]);
            assert!(r.is_err(), "prefix {n} accepted");
            assert!(seen.len() <= full.len());
            assert_eq!(&full[..seen.len()], &seen[..]);
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::synth::XorShift(0x9e3779b97f4a7c15);
        let mut next = || rng.next_u64();
        let base = cname_response();
        let mut nb = NameBuf::new();
        for i in 0..5000 {
            let len = (next() % 300) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if i % 2 == 0 {
                // Mutate a valid message instead: reaches deeper code paths.
                buf = base.clone();
                for _ in 0..(1 + next() % 4) {
                    let p = (next() as usize) % buf.len();
                    buf[p] = next() as u8;
                }
            } else if buf.len() >= 12 {
                buf[4] = 0;
                buf[6] = 0;
            }
            let _ = walk(&buf, &mut nb, |_| {}, |_| {});
            for m in tcp_messages(&buf) {
                let _ = walk(m, &mut nb, |_| {}, |_| {});
            }
        }
    }

    #[test]
    fn tcp_framing() {
        let a = query("a.example");
        let b = cname_response();
        let mut s = Vec::new();
        for m in [&a, &b] {
            s.extend_from_slice(&(m.len() as u16).to_be_bytes());
            s.extend_from_slice(m);
        }
        let full = s.len();
        s.extend_from_slice(&[0, 40, 1, 2, 3]);
        let mut it = tcp_messages(&s);
        assert_eq!(it.next(), Some(&a[..]));
        assert_eq!(it.next(), Some(&b[..]));
        assert_eq!(it.next(), None);
        assert_eq!(it.consumed(), full);
        assert_eq!(it.rest(), &[0, 40, 1, 2, 3]);
        assert_eq!(tcp_messages(&[0]).count(), 0);
        assert_eq!(tcp_messages(&[0, 0]).collect::<Vec<_>>(), vec![&[][..] as &[u8]]);
    }
}
