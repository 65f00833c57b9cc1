//! A glance at a frame's headers without decoding it: where its IP header starts, and the
//! address and port pair of a plain (untunnelled) packet. For the readers' routing and
//! look-ahead, which run on every frame and only need to be right for the common case; the
//! full decoder in [`super::packet`] remains the authority.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IP header of a frame of link type `linktype`, if it carries IPv4 or IPv6.
pub fn ip_header(linktype: u32, data: &[u8]) -> Option<&[u8]> {
    let ethertype = |d: &[u8], at: usize| d.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let by_ethertype = |d: &'_ [u8], mut at: usize| -> Option<usize> {
        let mut t = ethertype(d, at)?;
        // 802.1Q, 802.1ad and the old QinQ tag: skip up to three tags.
        for _ in 0..3 {
            if !matches!(t, 0x8100 | 0x88a8 | 0x9100) {
                break;
            }
            at += 4;
            t = ethertype(d, at)?;
        }
        matches!(t, 0x0800 | 0x86dd).then_some(at + 2)
    };
    let start = match linktype {
        1 => by_ethertype(data, 12)?,                                         // Ethernet
        113 => by_ethertype(data, 14)?,                                       // Linux cooked (SLL)
        276 => matches!(ethertype(data, 0)?, 0x0800 | 0x86dd).then_some(20)?, // SLL2
        0 | 108 => 4,                                                         // BSD loopback / OpenBSD loop
        12 | 14 | 101 | 228 | 229 => 0,                                       // raw IP
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
