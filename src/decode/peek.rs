//! A glance at a frame's headers without decoding it: where its IP header starts, and the
//! address and port pair of a plain (untunnelled) packet. For the readers' routing and
//! look-ahead, which run on every frame and only need to be right for the common case; the
//! full decoder in [`super::packet`] remains the authority.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The EtherType at `at` of `d` and where what it announces starts, past at most `tags`
/// VLAN tags (802.1Q, 802.1ad and the old QinQ tag, which the decoder reads alike).
fn past_tags(d: &[u8], mut at: usize, tags: usize) -> Option<(u16, usize)> {
    let ethertype = |at: usize| d.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut t = ethertype(at)?;
    for _ in 0..tags {
        if !matches!(t, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        at += 4;
        t = ethertype(at)?;
    }
    Some((t, at + 2))
}

/// The IP header of a frame of link type `linktype`, if it carries IPv4 or IPv6.
#[inline(always)]
pub fn ip_header(linktype: u32, data: &[u8]) -> Option<&[u8]> {
    // Most frames are untagged IPv4 over Ethernet: no walk over link types and tags for them
    // (a parallel scan asks this of every packet, to find its worker).
    if linktype == 1 && data.get(12..14) == Some(&[0x08, 0x00]) {
        return data.get(14..);
    }
    any_ip_header(linktype, data)
}

/// [`ip_header`] of any frame.
fn any_ip_header(linktype: u32, data: &[u8]) -> Option<&[u8]> {
    let ip_after = |at: usize| past_tags(data, at, 3).filter(|(t, _)| matches!(t, 0x0800 | 0x86dd)).map(|(_, s)| s);
    let start = match linktype {
        1 => ip_after(12)?,                                                        // Ethernet
        113 => ip_after(14)?,                                                      // Linux cooked (SLL)
        276 => matches!(past_tags(data, 0, 0)?.0, 0x0800 | 0x86dd).then_some(20)?, // SLL2
        0 | 108 => 4,                                                              // BSD loopback / OpenBSD loop
        12 | 14 | 101 | 228 | 229 => 0,                                            // raw IP
        _ => return None,
    };
    data.get(start..)
}

/// An address and a port.
pub type Endpoint = (IpAddr, u16);

/// Protocol, source and destination (address, port) of the outermost IP layer. Ports are 0
/// for protocols without them, for fragments and for IPv6 with extension headers. A tunnel's
/// carrier is returned as it is: the decoder would give the inner connection.
#[inline]
pub fn endpoints(linktype: u32, data: &[u8]) -> Option<(u8, Endpoint, Endpoint)> {
    let ip = ip_header(linktype, data)?;
    let ports = |l4: Option<&[u8]>| match l4 {
        Some([a, b, c, d, ..]) => (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])),
        _ => (0, 0),
    };
    match ip.first()? >> 4 {
        4 if ip.len() >= 20 => {
            let proto = ip[9];
            let first = ip[6] & 0x1f == 0 && ip[7] == 0;
            let l4 =
                (first && matches!(proto, 6 | 17 | 132)).then(|| ip.get(usize::from(ip[0] & 0x0f) * 4..)).flatten();
            let (sp, dp) = ports(l4);
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(&ip[12..16]).ok()?);
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&ip[16..20]).ok()?);
            Some((proto, (src.into(), sp), (dst.into(), dp)))
        }
        6 if ip.len() >= 40 => {
            let proto = ip[6];
            let (sp, dp) = ports(matches!(proto, 6 | 17 | 132).then(|| &ip[40..]));
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?);
            Some((proto, (src.into(), sp), (dst.into(), dp)))
        }
        _ => None,
    }
}

/// An address as one integer: an IPv6 address as it is, an IPv4 address mapped into IPv6
/// (`::ffff:a.b.c.d`). The connection table keys connections by such integers, and
/// [`plain_tcp`] reads them straight from the header.
#[inline]
pub fn ip_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An address (as [`ip_int`] gives it) and a port.
pub type IntEndpoint = (u128, u16);

/// A TCP segment read at a glance (see [`plain_tcp`]). Its addresses are integers, as
/// [`ip_int`] gives them, which is all the connection table needs of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainTcp {
    pub src: IntEndpoint,
    pub dst: IntEndpoint,
    pub flags: u8,
    /// Whether the segment carries data.
    pub payload: bool,
}

/// The commonest frame, read without the full decoder: a TCP segment that is not a fragment,
/// in one IPv4 header or one IPv6 header without extension headers, in Ethernet (with up to
/// two VLAN tags) or raw IP. Most packets of a capture are such segments of a connection
/// already known, and all the engine needs of them is the key and the flags.
///
/// `Some` only where [`super::packet::decode`] succeeds with exactly one IP layer, no fragment
/// and a complete TCP header, giving these addresses, ports, flags and payload: a frame it would
/// read any other way (or refuse) is `None`, and goes to the full decoder. A test and the engine
/// fuzz target hold the two to that.
#[inline]
pub fn plain_tcp(linktype: u32, data: &[u8]) -> Option<PlainTcp> {
    common_tcp(linktype, data).or_else(|| any_tcp(linktype, data))
}

/// [`plain_tcp`] of the commonest frame of all, read with the fewest checks: Ethernet without a
/// tag, IPv4 without options, a whole TCP header. `None` for any other frame, and for any such
/// frame that [`any_tcp`] would read otherwise: it reads the rest.
#[inline(always)]
fn common_tcp(linktype: u32, data: &[u8]) -> Option<PlainTcp> {
    use super::packet::LINKTYPE_ETHERNET;
    // Ethernet header, IPv4 header of 20 bytes, TCP header of 20 or more.
    let f: &[u8; 54] = data.get(..54)?.try_into().ok()?;
    if linktype != LINKTYPE_ETHERNET || f[12..15] != [0x08, 0x00, 0x45] || f[23] != 6 {
        return None;
    }
    let ip_len = data.len() - 14;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    // Not a fragment; a total of 0 (segmentation offload) or past the frame: what is there.
    if f[20] & 0x3f != 0 || f[21] != 0 || (total != 0 && total < 20) {
        return None;
    }
    let end = if total == 0 || total > ip_len { ip_len } else { total };
    let doff = usize::from(f[46] >> 4) * 4;
    if end < 40 || doff < 20 || doff > end - 20 {
        return None;
    }
    let v4 = |at: usize| 0xffff << 32 | u128::from(u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]]));
    Some(PlainTcp {
        src: (v4(26), u16::from_be_bytes([f[34], f[35]])),
        dst: (v4(30), u16::from_be_bytes([f[36], f[37]])),
        flags: f[47],
        payload: end - 20 > doff,
    })
}

/// [`plain_tcp`] of any frame.
fn any_tcp(linktype: u32, data: &[u8]) -> Option<PlainTcp> {
    use super::packet::{LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_RAW};
    // The IP version the link layer announces (the decoder refuses any other); 0: either.
    let (ip, version) = match linktype {
        // At most two tags (the decoder takes more, and others).
        LINKTYPE_ETHERNET => match past_tags(data, 12, 2)? {
            (0x0800, at) => (data.get(at..)?, 4),
            (0x86dd, at) => (data.get(at..)?, 6),
            _ => return None,
        },
        LINKTYPE_RAW => (data, 0),
        LINKTYPE_IPV4 => (data, 4),
        LINKTYPE_IPV6 => (data, 6),
        _ => return None,
    };
    let (src, dst, l4): (u128, u128, &[u8]) = match *ip.first()? >> 4 {
        4 if version != 6 => {
            let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
            // Options are fine; a header longer than the frame or than its own total is not.
            if h[9] != 6 || ihl < 20 || ihl > ip.len() || (total != 0 && total < ihl) {
                return None;
            }
            // More fragments, or an offset: a fragment.
            if h[6] & 0x3f != 0 || h[7] != 0 {
                return None;
            }
            // A total of 0 (segmentation offload) or past the frame: what is there.
            let end = if total == 0 || total > ip.len() { ip.len() } else { total };
            // As `ip_int` maps them.
            let v4 = |b: &[u8]| 0xffff << 32 | u128::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            (v4(&h[12..16]), v4(&h[16..20]), &ip[ihl..end])
        }
        6 if version != 4 => {
            let h: &[u8; 40] = ip.get(..40)?.try_into().ok()?;
            if h[6] != 6 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let end = if plen == 0 || 40 + plen > ip.len() { ip.len() } else { 40 + plen };
            let src = u128::from_be_bytes(h[8..24].try_into().ok()?);
            let dst = u128::from_be_bytes(h[24..40].try_into().ok()?);
            (src, dst, &ip[40..end])
        }
        _ => return None,
    };
    let t: &[u8; 20] = l4.get(..20)?.try_into().ok()?;
    let doff = usize::from(t[12] >> 4) * 4;
    if doff < 20 || doff > l4.len() {
        return None;
    }
    Some(PlainTcp {
        src: (src, u16::from_be_bytes([t[0], t[1]])),
        dst: (dst, u16::from_be_bytes([t[2], t[3]])),
        flags: t[13],
        payload: l4.len() > doff,
    })
}

/// Panics unless [`plain_tcp`] keeps its promise on this frame: where it reads a segment, the
/// full decoder reads the same one. For the packet fuzz target and the tests.
#[doc(hidden)]
pub fn check_plain_tcp(linktype: u32, frame: &[u8]) {
    let Some(t) = plain_tcp(linktype, frame) else { return };
    let mut d = super::packet::Decoded::default();
    let decoded = super::packet::decode(linktype, frame, true, &mut d);
    let inner = d.innermost().copied();
    let full = inner.filter(|_| decoded.is_ok() && d.depth == 1 && d.fragment.is_none()).map(|l| PlainTcp {
        src: (ip_int(l.src), d.sport),
        dst: (ip_int(l.dst), d.dport),
        flags: d.tcp.map_or(!0, |t| t.flags),
        payload: !d.payload.is_empty(),
    });
    assert!(
        full == Some(t) && inner.is_some_and(|l| l.proto == 6) && d.tcp.is_some(),
        "plain_tcp read {t:?} where the decoder read {decoded:?}, {d:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{addr, ethernet, ip, tcp, udp, XorShift};

    /// Frames plain_tcp reads, and ones it must leave to the decoder, then thousands of damaged
    /// copies of each: wherever it reads one, the decoder reads the same.
    #[test]
    fn plain_tcp_reads_what_the_decoder_reads_or_nothing() {
        let (a4, b4, a6, b6) = (addr("10.0.0.1"), addr("192.0.2.9"), addr("2001:db8::1"), addr("2001:db8::2"));
        let seg = |p: &[u8]| tcp(40000, 443, 7, 9, 0x18, p);
        let v4 = ip(a4, b4, 6, seg(b"hello"), Some(16));
        let v6 = ip(a6, b6, 6, seg(b""), Some(16));
        let mut frames = vec![
            (1, ethernet(None, 0x0800, &v4)),
            (1, ethernet(Some(7), 0x0800, &v4)),
            (1, ethernet(None, 0x86dd, &v6)),
            (101, v4.clone()),
            (228, v4.clone()),
            (229, v6.clone()),
            // Left to the decoder: UDP, a v4 header behind the v6 EtherType, a fragment.
            (1, ethernet(None, 0x0800, &ip(a4, b4, 17, udp(53, 53, b"x"), Some(6)))),
            (1, ethernet(None, 0x86dd, &v4)),
            (229, v4.clone()),
        ];
        let mut frag = v4.clone();
        frag[6] = 0x20;
        frames.push((1, ethernet(None, 0x0800, &frag)));
        // QinQ: two tags are read, three are left to the decoder.
        let mut qinq = ethernet(Some(7), 0x0800, &v4);
        qinq.splice(12..12, [0x88, 0xa8, 0x00, 0x05]);
        frames.push((1, qinq.clone()));
        qinq.splice(12..12, [0x81, 0x00, 0x00, 0x03]);
        frames.push((1, qinq));

        let want = |src, dst, payload| {
            Some(PlainTcp { src: (ip_int(src), 40000), dst: (ip_int(dst), 443), flags: 0x18, payload })
        };
        assert_eq!(plain_tcp(1, &frames[0].1), want(a4, b4, true));
        assert_eq!(plain_tcp(1, &frames[1].1), want(a4, b4, true));
        assert_eq!(plain_tcp(1, &frames[2].1), want(a6, b6, false));
        assert_eq!(plain_tcp(228, &frames[4].1), want(a4, b4, true));
        for (lt, f) in &frames[6..10] {
            assert_eq!(plain_tcp(*lt, f), None, "{f:?}");
        }
        assert!(plain_tcp(1, &frames[10].1).is_some());
        assert_eq!(plain_tcp(1, &frames[11].1), None);
        // Ethernet pads a bare ACK to 60 bytes: the padding is not data. A total length of 0
        // (segmentation offload) means what is there.
        let mut padded = ethernet(None, 0x0800, &ip(a4, b4, 6, seg(b""), Some(16)));
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(plain_tcp(1, &padded), want(a4, b4, false));
        let mut offload = frames[0].1.clone();
        offload[16..18].copy_from_slice(&[0, 0]);
        assert_eq!(plain_tcp(1, &offload), want(a4, b4, true));
        frames.extend([(1, padded), (1, offload)]);

        let mut rng = XorShift(0x5eed);
        let (mut read, mut common) = (0, 0);
        for (lt, f) in &frames {
            for _ in 0..4000 {
                let g = rng.damage(f, usize::MAX);
                check_plain_tcp(*lt, &g);
                read += usize::from(plain_tcp(*lt, &g).is_some());
                // The shortcut for the commonest frame reads what the whole reading does.
                if let Some(c) = common_tcp(*lt, &g) {
                    assert_eq!(Some(c), any_tcp(*lt, &g), "{g:02x?}");
                    common += 1;
                }
            }
        }
        assert!(read > 10_000, "the damaged copies should often still be plain segments: {read}");
        assert!(common > 5_000, "the damaged copies should often still be common segments: {common}");
    }

    #[test]
    fn endpoints_of_a_plain_packet_and_none_for_junk() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 0, 2, 9]);
        f.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
        let (a, b) = (("10.0.0.1".parse().unwrap(), 40000), ("192.0.2.9".parse().unwrap(), 443));
        assert_eq!(endpoints(1, &f), Some((6, a, b)));
        // A later fragment carries no ports.
        f[18 + 6] = 0x00;
        f[18 + 7] = 0x10;
        assert_eq!(endpoints(1, &f), Some((6, (a.0, 0), (b.0, 0))));
        for cut in 0..38 {
            assert_eq!(endpoints(1, &f[..cut]), None, "cut at {cut}");
        }
        assert_eq!(endpoints(999, &f), None);
    }

    #[test]
    fn untagged_ipv4_finds_the_header_the_general_walk_finds() {
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x08, 0x00, 0x45, 0, 0, 20]);
        let mut untagged = tagged.clone();
        untagged.drain(12..16);
        for f in [&untagged, &tagged] {
            for cut in 0..=f.len() {
                assert_eq!(ip_header(1, &f[..cut]), any_ip_header(1, &f[..cut]), "cut at {cut}");
            }
        }
        assert_eq!(ip_header(1, &untagged), Some(&untagged[14..]));
    }
}
