//! Synthetic traffic: a small pcap writer and frame builders with correct checksums.
//!
//! The sample captures in `pcaps/` are written by this code (`cargo run --example make_pcaps`),
//! so anyone can regenerate them byte for byte; integration tests and benchmarks use it too.

use std::io::{self, Write};
use std::net::IpAddr;

pub mod flows;

/// Marsaglia's xorshift64 (13, 7, 17): the small deterministic generator the project's
/// randomised tests and benchmarks draw their inputs from. Not for anything but test inputs.
#[derive(Clone, Debug)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next state (never 0 from a non-zero seed).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next state modulo `n` (`n` > 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A copy of `frame` with one to three of its first `within` bytes set to 0, 0xff or a
    /// random value, and one time in four cut short: damaged input for the tests that hold a
    /// reader's short cut to its general reading. `frame` must not be empty.
    pub fn damage(&mut self, frame: &[u8], within: usize) -> Vec<u8> {
        let mut g = frame.to_vec();
        for _ in 0..=self.below(3) {
            let at = self.below(g.len().min(within) as u64) as usize;
            g[at] = match self.below(4) {
                0 => 0,
                1 => 0xff,
                _ => self.next_u64() as u8,
            };
        }
        if self.below(4) == 0 {
            g.truncate(self.below(g.len() as u64) as usize);
        }
        g
    }
}

/// Writes a classic pcap (microseconds, little-endian).
pub struct PcapWriter<W: Write> {
    out: W,
    linktype: u32,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        out.write_all(&0xa1b2c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&[0; 8])?;
        out.write_all(&65535u32.to_le_bytes())?;
        out.write_all(&linktype.to_le_bytes())?;
        Ok(PcapWriter { out, linktype })
    }

    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Writes one frame captured at `ts_micros`.
    pub fn frame(&mut self, ts_micros: i64, data: &[u8]) -> io::Result<()> {
        self.out.write_all(&((ts_micros / 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&((ts_micros % 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&(data.len() as u32).to_le_bytes())?;
        self.out.write_all(&(data.len() as u32).to_le_bytes())?;
        self.out.write_all(data)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn csum(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [b] = chunks.remainder() {
        acc += (*b as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Ethernet II frame, with an 802.1Q tag when `vlan` is given.
pub fn ethernet(vlan: Option<u16>, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    if let Some(v) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IP packet (v4 or v6 by the addresses) around a transport segment whose checksum
/// field sits at `ck_at` (None for protocols without a pseudo-header checksum).
pub fn ip(src: IpAddr, dst: IpAddr, proto: u8, mut l4: Vec<u8>, ck_at: Option<usize>) -> Vec<u8> {
    if let Some(at) = ck_at {
        let mut acc = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = Vec::with_capacity(12);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&[0, proto]);
                p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                csum(&p, 0)
            }
            _ => {
                let (s, d) = (v6(src), v6(dst));
                let mut p = Vec::with_capacity(40);
                p.extend_from_slice(&s);
                p.extend_from_slice(&d);
                p.extend_from_slice(&(l4.len() as u32).to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, proto]);
                csum(&p, 0)
            }
        };
        acc = csum(&l4, acc);
        let mut ck = fold(acc);
        if proto == 17 && ck == 0 {
            ck = 0xffff;
        }
        l4[at..at + 2].copy_from_slice(&ck.to_be_bytes());
    }
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            h.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let ck = fold(csum(&h, 0));
            h[10..12].copy_from_slice(&ck.to_be_bytes());
            h.extend_from_slice(&l4);
            h
        }
        _ => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(&v6(src));
            h.extend_from_slice(&v6(dst));
            h.extend_from_slice(&l4);
            h
        }
    }
}

fn v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// Ethertype for an IP packet built by [`ip`].
pub fn ethertype_of(packet: &[u8]) -> u16 {
    if packet.first().is_some_and(|b| b >> 4 == 6) {
        0x86dd
    } else {
        0x0800
    }
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

pub fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(payload);
    s
}

/// A DNS name in wire format.
pub fn dns_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// A DNS query for `name` (type A = 1, AAAA = 28).
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&dns_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// A DNS answer record.
pub enum Rr<'a> {
    Cname(&'a str, &'a str),
    Addr(&'a str, IpAddr),
}

/// A DNS response to a query for `name` with the given answers.
pub fn dns_response(id: u16, name: &str, qtype: u16, answers: &[Rr<'_>]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80, 0, 1]);
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&dns_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    for rr in answers {
        let (owner, ty, data) = match rr {
            Rr::Cname(o, t) => (*o, 5u16, dns_name(t)),
            Rr::Addr(o, IpAddr::V4(a)) => (*o, 1, a.octets().to_vec()),
            Rr::Addr(o, IpAddr::V6(a)) => (*o, 28, a.octets().to_vec()),
        };
        m.extend_from_slice(&dns_name(owner));
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(&data);
    }
    m
}

/// A TLS 1.2-style ClientHello record with the given SNI (none if `None`).
pub fn tls_client_hello(sni: Option<&str>) -> Vec<u8> {
    let mut ext = Vec::new();
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    if let Some(name) = sni {
        let n = name.as_bytes();
        let entry_len = 3 + n.len();
        ext.extend_from_slice(&[0x00, 0x00]);
        ext.extend_from_slice(&((entry_len + 2) as u16).to_be_bytes());
        ext.extend_from_slice(&(entry_len as u16).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&(n.len() as u16).to_be_bytes());
        ext.extend_from_slice(n);
    }
    let mut hello = vec![0x03, 0x03];
    hello.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    hello.push(0);
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f, 0x01, 0x00]);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&hello);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// An HTTP/1.1 GET request.
pub fn http_get(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n").into_bytes()
}

/// Writes whole conversations into a pcap, advancing time a little per packet.
pub struct Capture<W: Write> {
    pub w: PcapWriter<W>,
    pub ts: i64,
    pub vlan: Option<u16>,
}

impl<W: Write> Capture<W> {
    pub fn new(out: W, start_micros: i64) -> io::Result<Self> {
        Ok(Capture { w: PcapWriter::new(out, 1)?, ts: start_micros, vlan: None })
    }

    /// Writes an IP packet in an Ethernet frame.
    pub fn ip_packet(&mut self, packet: &[u8]) -> io::Result<()> {
        self.ts += 1_250;
        let f = ethernet(self.vlan, ethertype_of(packet), packet);
        self.w.frame(self.ts, &f)
    }

    pub fn udp(&mut self, src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8]) -> io::Result<()> {
        let p = ip(src.0, dst.0, 17, udp(src.1, dst.1, payload), Some(6));
        self.ip_packet(&p)
    }

    /// A DNS exchange: query and response.
    pub fn dns(&mut self, client: (IpAddr, u16), resolver: IpAddr, name: &str, answers: &[Rr<'_>]) -> io::Result<()> {
        let qtype = if answers.iter().any(|a| matches!(a, Rr::Addr(_, IpAddr::V6(_)))) { 28 } else { 1 };
        let id = (client.1 ^ 0x5a5a).rotate_left(3);
        self.udp(client, (resolver, 53), &dns_query(id, name, qtype))?;
        self.udp((resolver, 53), client, &dns_response(id, name, qtype, answers))
    }

    /// A whole TCP connection: handshake, the client's request, the server's reply in
    /// `reply_segments` segments, and the close.
    pub fn tcp_session(
        &mut self,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
        request: &[u8],
        reply: &[u8],
        reply_segments: usize,
    ) -> io::Result<()> {
        let (c, s) = (client, server);
        let (mut cs, mut ss) = (0x1000_0000u32, 0x7000_0000u32);
        let seg = |a: (IpAddr, u16), b: (IpAddr, u16), seq, ack, fl, pl: &[u8]| {
            ip(a.0, b.0, 6, tcp(a.1, b.1, seq, ack, fl, pl), Some(16))
        };
        self.ip_packet(&seg(c, s, cs, 0, SYN, &[]))?;
        cs += 1;
        self.ip_packet(&seg(s, c, ss, cs, SYN | ACK, &[]))?;
        ss += 1;
        self.ip_packet(&seg(c, s, cs, ss, ACK, &[]))?;
        if !request.is_empty() {
            self.ip_packet(&seg(c, s, cs, ss, PSH | ACK, request))?;
            cs += request.len() as u32;
        }
        if !reply.is_empty() {
            let n = reply_segments.max(1);
            let size = reply.len().div_ceil(n);
            for part in reply.chunks(size) {
                self.ip_packet(&seg(s, c, ss, cs, ACK, part))?;
                ss += part.len() as u32;
            }
            self.ip_packet(&seg(c, s, cs, ss, ACK, &[]))?;
        }
        self.ip_packet(&seg(c, s, cs, ss, FIN | ACK, &[]))?;
        cs += 1;
        self.ip_packet(&seg(s, c, ss, cs, FIN | ACK, &[]))?;
        ss += 1;
        self.ip_packet(&seg(c, s, cs, ss, ACK, &[]))
    }

    /// ICMP echo request and reply (IPv4).
    pub fn ping(&mut self, src: IpAddr, dst: IpAddr) -> io::Result<()> {
        for (a, b, ty) in [(src, dst, 8u8), (dst, src, 0u8)] {
            let mut icmp = vec![ty, 0, 0, 0, 0x12, 0x34, 0, 1];
            icmp.extend_from_slice(&[0x61; 32]);
            let ck = fold(csum(&icmp, 0));
            icmp[2..4].copy_from_slice(&ck.to_be_bytes());
            self.ip_packet(&ip(a, b, 1, icmp, None))?;
        }
        Ok(())
    }
}

/// Parses an address literal; for the samples' fixed addresses.
pub fn addr(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::packet::{decode, Decoded};

    #[test]
    fn frames_decode_with_the_project_decoder() {
        let p = ip(addr("10.0.0.1"), addr("192.0.2.9"), 6, tcp(40000, 443, 1, 0, SYN, &[]), Some(16));
        let f = ethernet(Some(7), ethertype_of(&p), &p);
        let mut d = Decoded::default();
        decode(1, &f, true, &mut d).unwrap();
        assert_eq!((d.sport, d.dport, d.vlans[0]), (40000, 443, 7));
        let p6 = ip(addr("2001:db8::1"), addr("2001:db8::2"), 17, udp(5353, 53, b"x"), Some(6));
        let f6 = ethernet(None, ethertype_of(&p6), &p6);
        let mut d6 = Decoded::default();
        decode(1, &f6, true, &mut d6).unwrap();
        assert_eq!(d6.payload, b"x");
    }
}

/// The sample captures shipped in `pcaps/`: `(file name, what it shows, bytes)`.
pub mod samples {
    use super::*;

    fn cap(start: &str) -> Capture<Vec<u8>> {
        let t = crate::time::parse(start).unwrap_or(0) * 1_000_000;
        Capture::new(Vec::new(), t).expect("writing to memory")
    }

    fn ordinary(c: &mut Capture<Vec<u8>>, host: &str, port: u16) -> io::Result<()> {
        let client = (addr(host), port);
        let resolver = addr("10.20.0.53");
        c.dns(client, resolver, "www.example.com", &[Rr::Addr("www.example.com", addr("93.184.216.34"))])?;
        c.tcp_session(
            (addr(host), port + 1),
            (addr("93.184.216.34"), 443),
            &tls_client_hello(Some("www.example.com")),
            &[0x17; 3000],
            3,
        )?;
        c.tcp_session(
            (addr(host), port + 2),
            (addr("93.184.216.34"), 80),
            &http_get("www.example.com", "/"),
            b"HTTP/1.1 200 OK\r\n\r\n",
            1,
        )?;
        c.ping(addr(host), addr("1.1.1.1"))
    }

    /// An internal host resolving Raptor Train C2 names and opening TLS to them.
    pub fn raptor_train_c2() -> io::Result<Vec<u8>> {
        let mut c = cap("2024-09-04T12:00:00Z");
        let h = addr("10.20.30.40");
        ordinary(&mut c, "10.20.30.41", 50100)?;
        // acqv.w8510.com (joint advisory) resolves to a listed address.
        c.dns((h, 51000), addr("10.20.0.53"), "acqv.w8510.com", &[Rr::Addr("acqv.w8510.com", addr("208.85.16.100"))])?;
        c.tcp_session(
            (h, 51001),
            (addr("208.85.16.100"), 443),
            &tls_client_hello(Some("acqv.w8510.com")),
            &[0x17; 2000],
            2,
        )?;
        // c2.hy92.com (Lumen) resolves through a CNAME to an address nobody listed.
        c.dns(
            (h, 51002),
            addr("10.20.0.53"),
            "c2.hy92.com",
            &[Rr::Cname("c2.hy92.com", "node7.hy92.com"), Rr::Addr("node7.hy92.com", addr("198.51.100.23"))],
        )?;
        c.tcp_session(
            (h, 51003),
            (addr("198.51.100.23"), 443),
            &tls_client_hello(Some("c2.hy92.com")),
            &[0x17; 1200],
            1,
        )?;
        // A near miss that must not match: xhy92.com is not a subdomain of hy92.com.
        c.dns((h, 51004), addr("10.20.0.53"), "xhy92.com", &[Rr::Addr("xhy92.com", addr("203.0.113.99"))])?;
        ordinary(&mut c, "10.20.30.42", 50200)?;
        Ok(c.w.into_inner())
    }

    /// A SoftEther VPN session to an address and certificate name from Microsoft's 2023 report.
    pub fn flax_typhoon_softether() -> io::Result<Vec<u8>> {
        let mut c = cap("2023-07-20T08:30:00Z");
        let h = addr("10.1.1.20");
        ordinary(&mut c, "10.1.1.21", 40100)?;
        c.tcp_session(
            (h, 49822),
            (addr("139.180.158.51"), 443),
            &tls_client_hello(Some("vpn472462384.softether.net")),
            &[0x17; 6000],
            5,
        )?;
        // The parent dynamic-DNS service is not an indicator.
        c.tcp_session(
            (h, 49823),
            (addr("93.184.216.34"), 443),
            &tls_client_hello(Some("www.softether.net")),
            &[0x17; 500],
            1,
        )?;
        Ok(c.w.into_inner())
    }

    /// Ordinary traffic only: a scan of it flags nothing (exit status 0).
    pub fn clean() -> io::Result<Vec<u8>> {
        let mut c = cap("2025-01-10T09:00:00Z");
        ordinary(&mut c, "10.0.0.5", 30100)?;
        ordinary(&mut c, "10.0.0.6", 30200)?;
        Ok(c.w.into_inner())
    }

    /// Advisory traffic inside GRE, VXLAN, Geneve and MPLS-in-UDP tunnels.
    pub fn tunnelled() -> io::Result<Vec<u8>> {
        let mut c = cap("2026-10-20T10:00:00Z");
        let inner = ip(addr("10.9.9.9"), addr("45.77.231.209"), 6, tcp(41000, 443, 1, 0, SYN, &[]), Some(16));
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend_from_slice(&inner);
        c.ip_packet(&ip(addr("192.0.2.1"), addr("192.0.2.2"), 47, gre, None))?;
        let q = dns_query(7, "dns.studiocloud.xyz", 1);
        let inner = ip(addr("10.9.9.10"), addr("10.9.0.53"), 17, udp(53000, 53, &q), Some(6));
        let mut vx = vec![0x08, 0, 0, 0, 0, 0x12, 0x34, 0];
        vx.extend_from_slice(&ethernet(None, 0x0800, &inner));
        c.ip_packet(&ip(addr("192.0.2.1"), addr("192.0.2.3"), 17, udp(49152, 4789, &vx), Some(6)))?;
        // Geneve as AWS Gateway Load Balancer sends it to an appliance: the IP packet, after a
        // 12-byte option (class 0x0108) holding the flow cookie.
        let hello = tls_client_hello(Some("acqv.w8510.com"));
        let inner = ip(addr("10.9.9.11"), addr("203.0.113.80"), 6, tcp(41100, 443, 1, 1, PSH | ACK, &hello), Some(16));
        let mut gv = vec![3, 0, 0x08, 0x00, 0, 0, 0x56, 0, 0x01, 0x08, 0x03, 0x02, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        gv.extend_from_slice(&inner);
        c.ip_packet(&ip(addr("192.0.2.10"), addr("192.0.2.20"), 17, udp(50901, 6081, &gv), Some(6)))?;
        // MPLS in UDP (RFC 7510): one label, then the IP packet.
        let q = dns_query(8, "zdacxzd.w8510.com", 1);
        let inner = ip(addr("10.9.9.12"), addr("10.9.0.53"), 17, udp(53100, 53, &q), Some(6));
        let mut mu = vec![0, 0x01, 0x21, 64];
        mu.extend_from_slice(&inner);
        c.ip_packet(&ip(addr("192.0.2.30"), addr("192.0.2.40"), 17, udp(51348, 6635, &mu), Some(6)))?;
        // AYIYA, as a SixXS client forwarded its IPv6 to the tunnel broker: the header, the
        // client's address as its identity, a SHA-1 signature, then the IPv6 packet.
        let q = dns_query(9, "natcloudservice.com", 28);
        let inner = ip(addr("2001:db8::9"), addr("2001:db8::53"), 17, udp(53200, 53, &q), Some(6));
        let mut ay = vec![0x41, 0x52, 0x11, 41, 0x6a, 0x15, 0x5c, 0x20];
        ay.extend_from_slice(&v6(addr("2001:db8::9")));
        ay.extend_from_slice(&[0x5a; 20]);
        ay.extend_from_slice(&inner);
        c.ip_packet(&ip(addr("192.0.2.50"), addr("192.0.2.60"), 17, udp(5072, 5072, &ay), Some(6)))?;
        Ok(c.w.into_inner())
    }

    /// Every sample, by file name.
    pub fn all() -> io::Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![
            ("raptor-train-c2.pcap", raptor_train_c2()?),
            ("flax-typhoon-softether.pcap", flax_typhoon_softether()?),
            ("clean.pcap", clean()?),
            ("tunnelled.pcap", tunnelled()?),
        ])
    }
}

/// A SYN flood for load tests: `n` SYNs (Ethernet, IPv4) from random spoofed sources and
/// ports to random destinations and ports, 1 µs apart, every one a new connection. The same
/// `seed` writes the same bytes. Returns the writer.
pub fn syn_flood<W: Write>(out: W, n: u64, seed: u64) -> io::Result<W> {
    let mut w = PcapWriter::new(out, 1)?;
    // SplitMix64: small, fast and good enough to make every 4-tuple distinct.
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let start = 1_700_000_000_000_000i64;
    for i in 0..n {
        let (a, b) = (next(), next());
        let src = IpAddr::from(((a >> 32) as u32).to_be_bytes());
        let dst = IpAddr::from((a as u32).to_be_bytes());
        let (sport, dport) = ((b >> 48) as u16 | 1024, (b >> 32) as u16);
        let p = ip(src, dst, 6, tcp(sport, dport, b as u32, 0, SYN, &[]), Some(16));
        w.frame(start + i as i64, &ethernet(None, 0x0800, &p))?;
    }
    Ok(w.into_inner())
}

/// Traffic as a sensor receives it from a VXLAN mirror (AWS Traffic Mirroring sends this): every
/// frame between the mirror's address and the sensor's (172.16.0.1 or .2 to 172.16.0.100), the
/// mirrored packets inside. In it: a DNS answer that `flagged.example` is 203.0.113.80; 40 SYNs to
/// that address untunnelled (from 10.9.9.x) and 40 through the mirror (from 10.8.8.x); then a
/// connection from 10.7.7.7 to 198.51.100.9 mirrored from both its ends, each packet twice, in
/// two tunnels. Ethernet frames; the same bytes every time.
pub fn vxlan_mirror() -> io::Result<Vec<u8>> {
    let vxlan = |from: &str, inner: &[u8]| {
        let mut vx = vec![0x08, 0, 0, 0, 0, 0x12, 0x34, 0];
        vx.extend_from_slice(&ethernet(None, 0x0800, inner));
        ethernet(None, 0x0800, &ip(addr(from), addr("172.16.0.100"), 17, udp(49152, 4789, &vx), Some(6)))
    };
    let mut w = PcapWriter::new(Vec::new(), 1)?;
    let mut t = 1_700_000_000_000_000i64;
    let mut put = |frame: Vec<u8>| {
        t += 1;
        w.frame(t, &frame)
    };
    let answer = dns_response(7, "flagged.example", 1, &[Rr::Addr("flagged.example", addr("203.0.113.80"))]);
    put(vxlan("172.16.0.1", &ip(addr("10.0.0.53"), addr("10.0.0.9"), 17, udp(53, 40000, &answer), Some(6))))?;
    for i in 0..40u8 {
        let syn = |src: String| ip(addr(&src), addr("203.0.113.80"), 6, tcp(50_000, 443, 1, 0, SYN, &[]), Some(16));
        put(ethernet(None, 0x0800, &syn(format!("10.9.9.{i}"))))?;
        put(vxlan("172.16.0.1", &syn(format!("10.8.8.{i}"))))?;
    }
    let (client, server) = (addr("10.7.7.7"), addr("198.51.100.9"));
    let syn = ip(client, server, 6, tcp(50_000, 443, 1, 0, SYN, &[]), Some(16));
    let syn_ack = ip(server, client, 6, tcp(443, 50_000, 9, 2, SYN | ACK, &[]), Some(16));
    for p in [&syn, &syn_ack] {
        put(vxlan("172.16.0.1", p))?;
        put(vxlan("172.16.0.2", p))?;
    }
    Ok(w.into_inner())
}

/// The IPv4 packet `packet` (with a 20-byte header, as [`ip`] makes it) cut into fragments of
/// at most `room` bytes of payload each (rounded down to a multiple of 8), with identification
/// `id`, in order.
pub fn fragments_v4(packet: &[u8], id: u16, room: usize) -> Vec<Vec<u8>> {
    let (head, body) = packet.split_at(20);
    let room = (room / 8).max(1) * 8;
    let mut out = Vec::new();
    for (i, part) in body.chunks(room).enumerate() {
        let offset = i * room;
        let more = offset + part.len() < body.len();
        let mut h = head.to_vec();
        h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6..8].copy_from_slice(&((offset / 8) as u16 | if more { 0x2000 } else { 0 }).to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let ck = fold(csum(&h, 0));
        h[10..12].copy_from_slice(&ck.to_be_bytes());
        h.extend_from_slice(part);
        out.push(h);
    }
    out
}

/// Traffic in which some datagrams arrive in IP fragments, so that only the reassembled
/// datagram says which connection it belongs to:
/// - a DNS answer too long for one packet, giving `flagged.example` 120 addresses
///   (203.0.113.1-120), in two fragments, then 40 SYNs to the last address (from 10.9.9.x),
///   which only the second fragment holds;
/// - 8 connections from 10.8.8.x to 198.51.100.9:80 mirrored in VXLAN (from 172.16.0.1 to
///   172.16.0.100): each a SYN, an HTTP request head of 2,000 bytes whose VXLAN datagram is
///   fragmented on its way to the sensor, and an ACK.
///
/// Ethernet frames; the same bytes every time.
pub fn fragmented_mirror() -> io::Result<Vec<u8>> {
    let mut w = PcapWriter::new(Vec::new(), 1)?;
    let mut t = 1_700_000_000_000_000i64;
    let mut put = |packet: &[u8]| {
        t += 1;
        w.frame(t, &ethernet(None, 0x0800, packet))
    };
    let addrs: Vec<IpAddr> = (1..=120).map(|i| addr(&format!("203.0.113.{i}"))).collect();
    let answers: Vec<Rr<'_>> = addrs.iter().map(|&a| Rr::Addr("flagged.example", a)).collect();
    let answer = dns_response(7, "flagged.example", 1, &answers);
    let dns = ip(addr("10.0.0.53"), addr("10.0.0.9"), 17, udp(53, 40000, &answer), Some(6));
    for f in fragments_v4(&dns, 7, 1400) {
        put(&f)?;
    }
    for i in 0..40u8 {
        put(&ip(addr(&format!("10.9.9.{i}")), addr("203.0.113.120"), 6, tcp(50_000, 443, 1, 0, SYN, &[]), Some(16)))?;
    }
    let vxlan = |inner: &[u8]| {
        let mut vx = vec![0x08, 0, 0, 0, 0, 0x12, 0x34, 0];
        vx.extend_from_slice(&ethernet(None, 0x0800, inner));
        ip(addr("172.16.0.1"), addr("172.16.0.100"), 17, udp(49152, 4789, &vx), Some(6))
    };
    let server = addr("198.51.100.9");
    for i in 0..8u16 {
        let client = addr(&format!("10.8.8.{i}"));
        let seg =
            |seq, flags, payload: &[u8]| ip(client, server, 6, tcp(50_000 + i, 80, seq, 1, flags, payload), Some(16));
        put(&vxlan(&seg(1, SYN, &[])))?;
        let mut request = b"GET /sync HTTP/1.1\r\nHost: files.example\r\nX-Pad: ".to_vec();
        request.resize(1996, b'x');
        request.extend_from_slice(b"\r\n\r\n");
        for f in fragments_v4(&vxlan(&seg(2, PSH | ACK, &request)), 100 + i, 1400) {
            put(&f)?;
        }
        put(&vxlan(&seg(2002, ACK, &[])))?;
    }
    Ok(w.into_inner())
}

/// An sFlow v5 datagram as a switch sends it to a collector: from agent `agent`, datagram
/// `sequence`, one flow sample per frame of `frames` (Ethernet), each sampled 1 in `rate` and
/// cut to its first `snap` bytes (agents keep 128 by default), with a counter sample first.
pub fn sflow_datagram(agent: [u8; 4], sequence: u32, rate: u32, frames: &[&[u8]], snap: usize) -> Vec<u8> {
    fn words(out: &mut Vec<u8>, w: &[u32]) {
        for v in w {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    let mut d = Vec::new();
    words(&mut d, &[5, 1]);
    d.extend_from_slice(&agent);
    words(&mut d, &[0, sequence, 3_600_000, frames.len() as u32 + 1]);
    words(&mut d, &[2, 8, 1, 0]); // a counter sample: skipped by collectors that want flows
    for (i, frame) in frames.iter().enumerate() {
        let header = &frame[..frame.len().min(snap)];
        let padded = header.len().div_ceil(4) * 4;
        let mut record = Vec::new();
        words(&mut record, &[1, 16 + padded as u32, 1, frame.len() as u32 + 4, 4, header.len() as u32]);
        record.extend_from_slice(header);
        record.resize(8 + 16 + padded, 0);
        let mut sample = Vec::new();
        words(&mut sample, &[sequence.wrapping_mul(64) + i as u32, 7, rate, rate * (i as u32 + 1), 0, 7, 9, 1]);
        sample.extend_from_slice(&record);
        words(&mut d, &[1, sample.len() as u32]);
        d.extend_from_slice(&sample);
    }
    d
}
