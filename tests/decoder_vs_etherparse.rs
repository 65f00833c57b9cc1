//! Differential check of our hand-written packet decoder against etherparse.
//!
//! The hot path uses its own bounded decoder (it follows tunnels, SLL2 and MPLS, which
//! etherparse does not, and costs a fraction of `SlicedPacket`), so etherparse, the
//! well-kept parser of this field, serves as the oracle: on frames it builds and on mutated
//! frames it parses strictly, both must agree on addresses, ports and payload.

use std::net::IpAddr;

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use iocmatch::decode::packet::{decode, Decoded};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn build(r: &mut Rng) -> Vec<u8> {
    let payload: Vec<u8> = (0..(r.next() % 300) as usize).map(|_| r.next() as u8).collect();
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let (sp, dp) = (r.next() as u16, r.next() as u16);
    let mut out = Vec::new();
    let v6 = r.next().is_multiple_of(3);
    let tcp = r.next().is_multiple_of(2);
    let vlan = r.next().is_multiple_of(4);
    macro_rules! finish {
        ($ip:expr) => {{
            if tcp {
                let b = $ip.tcp(sp, dp, r.next() as u32, 1024);
                b.write(&mut out, &payload).unwrap();
            } else {
                let b = $ip.udp(sp, dp);
                b.write(&mut out, &payload).unwrap();
            }
        }};
    }
    let src4 = (r.next() as u32).to_be_bytes();
    let dst4 = (r.next() as u32).to_be_bytes();
    let src6 = (r.next() as u128 | (r.next() as u128) << 64).to_be_bytes();
    let dst6 = (r.next() as u128 | (r.next() as u128) << 64).to_be_bytes();
    match (vlan, v6) {
        (false, false) => finish!(eth.ipv4(src4, dst4, 64)),
        (false, true) => finish!(eth.ipv6(src6, dst6, 64)),
        (true, false) => finish!(eth.single_vlan(etherparse::VlanId::try_new(100).unwrap()).ipv4(src4, dst4, 64)),
        (true, true) => finish!(eth.single_vlan(etherparse::VlanId::try_new(100).unwrap()).ipv6(src6, dst6, 64)),
    }
    out
}

/// What etherparse sees, when it parses the frame strictly down to TCP or UDP.
fn oracle(frame: &[u8]) -> Option<(IpAddr, IpAddr, u16, u16, Vec<u8>)> {
    let s = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst) = match s.net? {
        etherparse::NetSlice::Ipv4(v4) => {
            if v4.is_payload_fragmented() {
                return None;
            }
            (IpAddr::from(v4.header().source_addr()), IpAddr::from(v4.header().destination_addr()))
        }
        etherparse::NetSlice::Ipv6(v6) => {
            if v6.is_payload_fragmented() {
                return None;
            }
            (IpAddr::from(v6.header().source_addr()), IpAddr::from(v6.header().destination_addr()))
        }
        _ => return None,
    };
    match s.transport? {
        TransportSlice::Tcp(t) => Some((src, dst, t.source_port(), t.destination_port(), t.payload().to_vec())),
        TransportSlice::Udp(u) => Some((src, dst, u.source_port(), u.destination_port(), u.payload().to_vec())),
        _ => None,
    }
}

fn ours(frame: &[u8]) -> Option<(IpAddr, IpAddr, u16, u16, Vec<u8>)> {
    let mut d = Decoded::default();
    decode(1, frame, false, &mut d).ok()?;
    let l = d.innermost()?;
    Some((l.src, l.dst, d.sport, d.dport, d.payload.to_vec()))
}

#[test]
fn agrees_with_etherparse_on_built_frames() {
    let mut r = Rng(0x1234_5678_9abc_def1);
    for i in 0..5000 {
        let f = build(&mut r);
        let want = oracle(&f).expect("etherparse parses what it built");
        assert_eq!(ours(&f), Some(want), "frame {i}: {f:02x?}");
    }
}

#[test]
fn agrees_with_etherparse_on_mutated_frames() {
    let mut r = Rng(0x0fed_cba9_8765_4321);
    let mut compared = 0;
    for _ in 0..20000 {
        let mut f = build(&mut r);
        for _ in 0..1 + r.next() % 3 {
            let i = (r.next() as usize) % f.len();
            f[i] = r.next() as u8;
        }
        if r.next().is_multiple_of(4) {
            let n = (r.next() as usize) % f.len();
            f.truncate(n);
        }
        // Our decoder must never panic; where etherparse accepts the frame strictly, the two
        // must agree. (Ours is laxer on purpose: a truncated frame still yields its addresses.)
        let got = ours(&f);
        if let Some(want) = oracle(&f) {
            // Extension headers etherparse skips that we do not, or vice versa, show up as a
            // different protocol: compare only frames where both reached TCP/UDP.
            if let Some(got) = got {
                assert_eq!(got.0, want.0);
                assert_eq!(got.1, want.1);
                assert_eq!((got.2, got.3), (want.2, want.3), "{f:02x?}");
                compared += 1;
            }
        }
    }
    assert!(compared > 5000, "only {compared} frames compared");
}
