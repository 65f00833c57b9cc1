//! The symmetric flow hash that shards packets (and flow records) over workers, for the live
//! sensor and for `scan --workers`.
//!
//! Only the outermost IP address pair is hashed, ordered, so both directions of a connection
//! land on the same worker, and so do every fragment of a datagram (which carry no ports after
//! the first) and every connection inside one tunnel. Frames without IP hash to 0.

use std::hash::BuildHasher;

use crate::decode::peek::ip_header;

const SEED: u64 = 0x1f0c_5a7e_d00d_feed;

/// True for a UDP datagram from a DNS port (53, mDNS 5353, LLMNR 5355): a DNS answer that
/// every worker must learn from.
pub fn is_dns_response(linktype: u32, data: &[u8]) -> bool {
    ip_header(linktype, data).is_some_and(dns_response_ip)
}

fn dns_response_ip(ip: &[u8]) -> bool {
    let udp = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 && ip[9] == 17 => ip.get(((ip[0] & 0x0f) as usize) * 4..),
        Some(6) if ip.len() >= 40 && ip[6] == 17 => ip.get(40..),
        _ => None,
    };
    udp.and_then(|u| u.get(0..2)).is_some_and(|p| matches!(u16::from_be_bytes([p[0], p[1]]), 53 | 5353 | 5355))
}

/// Hash of the frame's outermost address pair, the same in both directions.
pub fn flow_hash(linktype: u32, data: &[u8]) -> u64 {
    ip_header(linktype, data).map_or(0, flow_hash_ip)
}

/// The hash of an address pair, the same in either order.
#[inline]
fn pair_hash<T: Ord + Copy + std::hash::Hash>(a: T, b: T) -> u64 {
    foldhash::fast::FixedState::with_seed(SEED).hash_one((a.min(b), a.max(b)))
}

fn flow_hash_ip(ip: &[u8]) -> u64 {
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => pair_hash(
            u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]),
            u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]),
        ),
        Some(6) if ip.len() >= 40 => pair_hash(
            u128::from_be_bytes(ip[8..24].try_into().expect("16 bytes")),
            u128::from_be_bytes(ip[24..40].try_into().expect("16 bytes")),
        ),
        _ => 0,
    }
}

/// The worker (of `n`) a frame goes to.
pub fn worker_of(linktype: u32, data: &[u8], n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    of(flow_hash(linktype, data), n)
}

/// The high half of the hash, scaled to `0..n` by a multiply rather than a division (this runs
/// for every packet in every worker).
#[inline]
fn of(hash: u64, n: usize) -> usize {
    (((hash >> 32) * n as u64) >> 32) as usize
}

/// The worker (of `n`) that owns a frame, and whether the frame is a DNS answer (which every
/// worker learns from), from one look at the headers.
#[inline]
pub fn owner(linktype: u32, data: &[u8], n: usize) -> (usize, bool) {
    match ip_header(linktype, data) {
        Some(ip) => (of(flow_hash_ip(ip), n), dns_response_ip(ip)),
        None => (of(0, n), false),
    }
}

/// [`owner`] as worker `mine` of a file every worker walks asks it: whether the frame is its
/// own, and whether it is another's DNS answer to learn from.
#[inline]
pub fn route(linktype: u32, data: &[u8], n: usize, mine: usize) -> (bool, bool) {
    let (w, dns) = owner(linktype, data, n);
    (w == mine, w != mine && dns)
}

/// The worker (of `n`) a flow record goes to: its address pair, hashed exactly as a packet's
/// (so the records and the packets of one connection, given together, meet in one engine).
pub fn record_worker(r: &crate::source::flowlog::Record, n: usize) -> usize {
    use std::net::IpAddr;
    if n <= 1 {
        return 0;
    }
    let h = match (r.src, r.dst) {
        (Some(IpAddr::V4(a)), Some(IpAddr::V4(b))) => pair_hash(u32::from(a), u32::from(b)),
        (Some(IpAddr::V6(a)), Some(IpAddr::V6(b))) => pair_hash(u128::from(a), u128::from(b)),
        _ => 0,
    };
    of(h, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&sport.to_be_bytes());
        ip.extend_from_slice(&dport.to_be_bytes());
        ip.extend_from_slice(&[0, 8, 0, 0]);
        f.extend(ip);
        f
    }

    #[test]
    fn both_directions_hash_alike() {
        for vlan in [false, true] {
            let a = eth_v4([10, 0, 0, 1], [203, 0, 113, 9], 5353, 53, vlan);
            let b = eth_v4([203, 0, 113, 9], [10, 0, 0, 1], 53, 5353, vlan);
            assert_ne!(flow_hash(1, &a), 0);
            assert_eq!(flow_hash(1, &a), flow_hash(1, &b));
            for n in 1..8 {
                assert_eq!(worker_of(1, &a, n), worker_of(1, &b, n));
                for mine in 0..n {
                    let (own, dns) = route(1, &a, n, mine);
                    assert_eq!(own, worker_of(1, &a, n) == mine);
                    assert_eq!(dns, !own && is_dns_response(1, &a));
                }
            }
        }
        let mut v6a = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6a.extend([1u8; 16]);
        v6a.extend([2u8; 16]);
        let mut v6b = v6a[..8].to_vec();
        v6b.extend([2u8; 16]);
        v6b.extend([1u8; 16]);
        assert_eq!(flow_hash(101, &v6a), flow_hash(101, &v6b));
    }

    #[test]
    fn a_record_goes_where_the_packets_of_its_connection_go() {
        let f = eth_v4([10, 20, 30, 40], [198, 51, 100, 23], 51003, 443, false);
        let r = crate::source::flowlog::Record {
            src: Some("198.51.100.23".parse().unwrap()),
            dst: Some("10.20.30.40".parse().unwrap()),
            ..Default::default()
        };
        for n in 2..9 {
            assert_eq!(record_worker(&r, n), worker_of(1, &f, n), "{n} workers");
        }
    }

    #[test]
    fn pairs_spread_and_junk_is_safe() {
        let mut seen = [0usize; 4];
        for i in 0..400u32 {
            let f = eth_v4([10, 0, (i >> 8) as u8, i as u8], [198, 51, 100, 7], 40000, 443, false);
            seen[worker_of(1, &f, 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        // Untagged IPv4 takes a short cut to its header; cut anywhere, it still lands where the
        // general walk would send it.
        let dns = eth_v4([192, 0, 2, 53], [10, 0, 0, 9], 53, 40000, false);
        for len in 0..=dns.len() {
            let f = &dns[..len];
            assert_eq!(owner(1, f, 4), (worker_of(1, f, 4), is_dns_response(1, f)), "cut at {len}");
        }
        assert!(owner(1, &dns, 4).1);
        assert_eq!(flow_hash(1, &[0u8; 5]), 0);
        assert_eq!(flow_hash(999, &[0x45; 60]), 0);
    }
}
