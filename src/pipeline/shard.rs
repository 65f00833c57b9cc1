//! The symmetric flow hash that shards packets (and flow records) over workers, for the live
//! sensor and for `scan --workers`.
//!
//! A packet goes where the engine files its connection: the address pair of its innermost IP
//! layer, ordered, so both directions of a connection land on the same worker, and so do the
//! fragments of a datagram (which carry no ports after the first). Only the pair is hashed,
//! not the ports. Most frames (TCP, ICMP) are not tunnels: their outer header is read directly.
//! The rest are decoded as the engine decodes them, so the connections inside one tunnel (a
//! VXLAN mirror, a Geneve load balancer, which send everything between two addresses) spread
//! over the workers, and a connection that reaches the sensor through several tunnels (both
//! ends mirrored, a Teredo relay) meets in one engine. So are frames whose IP header is not
//! where a look finds it (under MPLS labels, PPPoE). Frames without IP hash to 0.
//!
//! Some frames are read by every worker, not only by the one that owns them:
//! - a DNS answer (and an sFlow datagram, whose samples may hold some), so a connection to an
//!   address a flagged name resolved to is flagged whichever worker owns it; over TCP, every
//!   segment of the connection, which each worker follows to read the answers;
//! - every IP fragment. Only the whole datagram says whose it is: a tunnel's datagram holds a
//!   connection that is filed by its inner pair, and a DNS answer too long for one packet is one
//!   every worker learns from. So every worker reassembles it, the one that owns its innermost
//!   pair inspects it, and the others learn from it. Each worker's reassembly sees every
//!   fragment, so it goes as one engine's goes (which datagrams complete depends on all of them:
//!   their times, the caps). The fragment's own pair picks the worker that counts its packets.

use std::hash::BuildHasher;

use crate::decode::packet::{self, Decoded};
use crate::decode::peek::ip_header;
use crate::source::flowlog::sflow;

const SEED: u64 = 0x1f0c_5a7e_d00d_feed;

/// Ports of DNS (53, mDNS 5353, LLMNR 5355): every worker reads a UDP answer from one, and DNS
/// over TCP to or from one, to learn what flagged names resolved to.
pub const DNS_PORTS: [u16; 3] = [53, 5353, 5355];

/// True for a frame every worker reads (see the module doc): a UDP datagram from a DNS port (53,
/// mDNS 5353, LLMNR 5355), a TCP segment from or to one, or an sFlow datagram, in a tunnel or
/// not, and every IP fragment. (The readers ask [`owner`], which tells this with the worker;
/// the tests ask each half on its own.)
#[cfg(test)]
pub fn read_by_all(linktype: u32, data: &[u8]) -> bool {
    owner(linktype, data, 1).1
}

/// Whether a datagram or segment of protocol `proto` between ports `sport` and `dport` is DNS
/// that every worker reads: an answer over UDP (from a DNS port), and DNS over TCP either way
/// (each worker follows the connection to read its answers: see `Engine::learn_packet`).
#[inline]
fn dns_read_by_all(proto: u8, sport: u16, dport: u16) -> bool {
    match proto {
        17 => DNS_PORTS.contains(&sport),
        6 => DNS_PORTS.contains(&sport) || DNS_PORTS.contains(&dport),
        _ => false,
    }
}

/// What the outermost IP header `ip` tells without the decoder: `None` when it carries more IP
/// layers (a tunnel), or may; else the frame is filed by this header's pair, and the answer is
/// whether every worker reads it. TCP, ICMP, a fragment and UDP that is no tunnel are filed by
/// this pair. A UDP datagram is decoded if its ports or first bytes say it may be a tunnel
/// ([`packet::udp_may_tunnel`]); other protocols (GRE, IP in IP, or an IPv6 extension header
/// that hides what follows) are decoded. One look at the header for both answers: this runs
/// for every frame.
#[inline(always)]
fn plain(ip: &[u8]) -> Option<bool> {
    let (proto, l4) = match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                // A fragment: filed by this pair, reassembled by all (see the module doc).
                return Some(true);
            }
            (ip[9], ip.get(usize::from(ip[0] & 0x0f) * 4..))
        }
        Some(6) if ip.len() >= 40 => (ip[6], ip.get(40..)),
        _ => return Some(false),
    };
    let be = |a: u8, b: u8| u16::from_be_bytes([a, b]);
    match (proto, l4) {
        (1 | 58, _) => Some(false),
        (6, Some([a, b, c, d, ..])) => Some(dns_read_by_all(6, be(*a, *b), be(*c, *d))),
        (6, _) => Some(false),
        (17, Some([a, b, c, d, _, _, _, _, payload @ ..])) => {
            let (sport, dport) = (be(*a, *b), be(*c, *d));
            if packet::udp_may_tunnel(sport, dport, payload) {
                None
            } else {
                Some(dns_read_by_all(17, sport, dport))
            }
        }
        (17, Some([a, b, ..])) => Some(dns_read_by_all(17, be(*a, *b), 0)),
        (17, _) => Some(false),
        _ => None,
    }
}

/// The hash of the innermost address pair of a frame the decoder reads (see the module doc),
/// and whether every worker reads it; `ip` is its outer IP header, where one was found without
/// the decoder (frames under MPLS labels or PPPoE have none: the decoder finds their IP layers).
#[cold]
#[inline(never)]
fn decoded(linktype: u32, data: &[u8], ip: Option<&[u8]>) -> (u64, bool) {
    // A frame the decoder refuses stays with its outer pair (it is skipped there, and nobody
    // else could read it either).
    let outer = || (ip.map_or(0, flow_hash_ip), false);
    let mut d = Decoded::default();
    if packet::decode(linktype, data, true, &mut d).is_err() {
        return outer();
    }
    let Some(inner) = d.innermost() else { return outer() };
    let hash = addr_pair_hash(inner.src, inner.dst);
    if d.fragment.is_some() {
        return (hash, true);
    }
    // sFlow samples may hold DNS answers (learned as records are): every worker reads them too.
    let sflow = inner.proto == 17 && sflow::is_export(d.dport, d.payload);
    (hash, sflow || dns_read_by_all(inner.proto, d.sport, d.dport))
}

/// The hash of a frame's pair (see the module doc) and whether every worker reads it.
#[inline(always)]
fn hash_of(linktype: u32, data: &[u8]) -> (u64, bool) {
    match ip_header(linktype, data) {
        Some(ip) => match plain(ip) {
            Some(shared) => (flow_hash_ip(ip), shared),
            None => decoded(linktype, data, Some(ip)),
        },
        None => decoded(linktype, data, None),
    }
}

/// The hash of two addresses (of one family; 0 for a mixed pair), as a packet's pair is hashed.
fn addr_pair_hash(a: std::net::IpAddr, b: std::net::IpAddr) -> u64 {
    use std::net::IpAddr;
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => pair_hash(u32::from(a), u32::from(b)),
        (IpAddr::V6(a), IpAddr::V6(b)) => pair_hash(u128::from(a), u128::from(b)),
        _ => 0,
    }
}

/// The worker (of `n`) that owns the connections between `a` and `b`: where a datagram
/// reassembled from fragments every worker read is inspected.
#[inline]
pub fn pair_owner(a: std::net::IpAddr, b: std::net::IpAddr, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    of(addr_pair_hash(a, b), n)
}

/// Hash of the frame's address pair (see the module doc), the same in both directions.
#[cfg(test)]
pub fn flow_hash(linktype: u32, data: &[u8]) -> u64 {
    hash_of(linktype, data).0
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
#[cfg(test)]
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

/// The worker (of `n`) that owns a frame, and whether every worker reads it too (a DNS answer,
/// sFlow, a fragment: see the module doc), from one look at the headers.
#[inline]
pub fn owner(linktype: u32, data: &[u8], n: usize) -> (usize, bool) {
    let (hash, dns) = hash_of(linktype, data);
    (of(hash, n), dns)
}

/// [`owner`] as worker `mine` of a file every worker walks asks it: whether the frame is its
/// own, and whether it is another's that it reads too (see [`Engine::learn_packet`]).
///
/// [`Engine::learn_packet`]: super::engine::Engine::learn_packet
#[inline]
pub fn route(linktype: u32, data: &[u8], n: usize, mine: usize) -> (bool, bool) {
    let (w, dns) = owner(linktype, data, n);
    (w == mine, w != mine && dns)
}

/// The worker (of `n`) a flow record goes to: its address pair, hashed exactly as a packet's
/// (so the records and the packets of one connection, given together, meet in one engine).
pub fn record_worker(r: &crate::source::flowlog::Record, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    match (r.src, r.dst) {
        (Some(a), Some(b)) => of(addr_pair_hash(a, b), n),
        _ => of(0, n),
    }
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
                    assert_eq!(dns, !own && read_by_all(1, &a));
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

    /// `payload` (an IPv4 packet) in VXLAN between `outer` addresses, over Ethernet.
    fn in_vxlan(outer: ([u8; 4], [u8; 4]), payload: &[u8]) -> Vec<u8> {
        use crate::decode::packet::tests::{eth, ipv4, udp, vxlan};
        eth(0x0800, &ipv4(outer.0, outer.1, 17, &udp(49152, 4789, &vxlan(&eth(0x0800, payload)))))
    }

    #[test]
    fn a_tunnel_is_shared_out_by_the_connections_inside() {
        use crate::decode::packet::tests::{eth, ipv4, ipv4_frag, tcp, udp};
        let mirror = ([172, 16, 0, 1], [172, 16, 0, 100]);
        let mut seen = [0usize; 4];
        for i in 0..400u32 {
            let inner = ipv4([10, 0, (i >> 8) as u8, i as u8], [198, 51, 100, 7], 6, &tcp(40000, 443, b""));
            let f = in_vxlan(mirror, &inner);
            let w = worker_of(1, &f, 4);
            seen[w] += 1;
            // Where the same connection goes untunnelled, or through another tunnel.
            assert_eq!(w, worker_of(1, &eth(0x0800, &inner), 4));
            assert_eq!(w, worker_of(1, &in_vxlan(([172, 16, 0, 2], [172, 16, 0, 100]), &inner), 4));
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        // A DNS answer inside a tunnel is one every worker learns from; a query is not.
        let answer = ipv4([10, 0, 0, 53], [10, 0, 0, 9], 17, &udp(53, 40000, b"answer"));
        let query = ipv4([10, 0, 0, 9], [10, 0, 0, 53], 17, &udp(40000, 53, b"query"));
        assert!(read_by_all(1, &in_vxlan(mirror, &answer)));
        assert!(!read_by_all(1, &in_vxlan(mirror, &query)));
        // Under MPLS labels: spread by the pair inside too, and a DNS answer is seen.
        let mpls = |ip: &[u8]| eth(0x8847, &[&[0, 0x10, 0x01, 64][..], ip].concat());
        let mut labelled = [0usize; 4];
        for i in 0..400u32 {
            let inner = ipv4([10, 0, (i >> 8) as u8, i as u8], [198, 51, 100, 7], 6, &tcp(40000, 443, b""));
            let w = worker_of(1, &mpls(&inner), 4);
            labelled[w] += 1;
            assert_eq!(w, worker_of(1, &eth(0x0800, &inner), 4));
        }
        assert!(labelled.iter().all(|&n| n > 50), "{labelled:?}");
        assert!(read_by_all(1, &mpls(&answer)));
        // A fragment of a tunnel's datagram goes by the tunnel's pair, and every worker reads it:
        // only the reassembled datagram says whose connection it holds.
        let carrier = ipv4_frag(mirror.0, mirror.1, 17, 7, 0, true, &udp(49152, 4789, &[0; 64]));
        assert_eq!(flow_hash(101, &carrier), flow_hash_ip(&ipv4(mirror.0, mirror.1, 17, &[])));
        assert!(read_by_all(101, &carrier));
        // So does every UDP fragment (a DNS answer too long for one packet), first or later, and
        // a later one is not taken for a DNS answer by the bytes where its ports would be.
        let later = ipv4_frag([10, 0, 0, 9], [10, 0, 0, 53], 17, 7, 64, false, &[0, 53, 0, 53, 0, 0, 0, 0]);
        assert!(read_by_all(101, &later));
        assert_eq!(flow_hash(101, &later), flow_hash_ip(&ipv4([10, 0, 0, 9], [10, 0, 0, 53], 17, &[])));
        // So does a fragment of TCP or ICMP: every worker's reassembly sees every fragment.
        for proto in [6, 1] {
            assert!(read_by_all(101, &ipv4_frag(mirror.0, mirror.1, proto, 7, 0, true, &[0; 64])));
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
            assert_eq!(owner(1, f, 4), (worker_of(1, f, 4), read_by_all(1, f)), "cut at {len}");
        }
        assert!(owner(1, &dns, 4).1);
        // DNS over TCP, either way, is read by all (each follows the connection for its
        // answers); other TCP is not.
        use crate::decode::packet::tests::{eth, ipv4, tcp};
        let seg = |sport, dport| eth(0x0800, &ipv4([10, 0, 0, 9], [10, 0, 0, 53], 6, &tcp(sport, dport, b"")));
        assert!(read_by_all(1, &seg(40000, 53)) && read_by_all(1, &seg(53, 40000)));
        assert!(!read_by_all(1, &seg(40000, 443)));
        assert_eq!(flow_hash(1, &[0u8; 5]), 0);
        assert_eq!(flow_hash(999, &[0x45; 60]), 0);
    }
}
