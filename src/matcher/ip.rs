//! Address lookups: exact addresses in a hash map, networks in a flattened range table.
//!
//! CIDRs form a laminar family (two prefixes are either nested or disjoint), so the whole
//! address space splits into at most `2n+1` segments, each covered by a fixed stack of
//! prefixes. We store the segment starts in one sorted array and, per segment, the list of
//! *every* covering prefix (an analyst wants to see both the /16 of a hosting provider and the
//! /24 an advisory named). A lookup is a bucket probe on the top 16 bits and a short binary
//! search: about the cost of one cache miss, with no pointer chasing as in a trie.
//! The table is immutable; a reload builds a new one.

use std::collections::HashMap;

use super::slab::Slab;

/// Integer keys for the range table (u32 for IPv4, u128 for IPv6).
pub trait Key: Copy + Ord + Eq + std::hash::Hash + std::fmt::Debug + bytemuck::Pod {
    const MIN: Self;
    const MAX: Self;
    fn succ(self) -> Self;
    /// The top 16 bits, for the bucket index.
    fn top16(self) -> usize;
    fn from_top16(b: usize) -> Self;
}

impl Key for u32 {
    const MIN: Self = 0;
    const MAX: Self = u32::MAX;
    fn succ(self) -> Self {
        self + 1
    }
    fn top16(self) -> usize {
        (self >> 16) as usize
    }
    fn from_top16(b: usize) -> Self {
        (b as u32) << 16
    }
}

impl Key for u128 {
    const MIN: Self = 0;
    const MAX: Self = u128::MAX;
    fn succ(self) -> Self {
        self + 1
    }
    fn top16(self) -> usize {
        (self >> 112) as usize
    }
    fn from_top16(b: usize) -> Self {
        (b as u128) << 112
    }
}

const NO_LIST: u32 = u32::MAX;

/// Covering-prefix lookup over an immutable set of networks.
#[derive(Debug)]
pub struct RangeTable<K: Key> {
    /// Segment starts, sorted; `starts[0] == K::MIN`.
    starts: Slab<K>,
    /// Per segment: index into `spans`, or `NO_LIST`.
    lists: Slab<u32>,
    /// `[offset, len]` into `pool`.
    spans: Slab<[u32; 2]>,
    /// Values (chain heads) of the covering networks, outermost first.
    pool: Slab<u32>,
    /// `bucket[b]` = number of starts below `b << shift`, for b in 0..=65536 (not stored in a
    /// compiled set: rebuilding it is also the check that `starts` is sorted).
    bucket: Vec<u32>,
}

/// Starts, lists, spans and pool of a [`RangeTable`], borrowed.
pub type ArraySlices<'a, K> = (&'a [K], &'a [u32], &'a [[u32; 2]], &'a [u32]);

/// The arrays of a [`RangeTable`], for writing into a compiled set and reading back.
pub struct Arrays<K: Key> {
    pub starts: Slab<K>,
    pub lists: Slab<u32>,
    pub spans: Slab<[u32; 2]>,
    pub pool: Slab<u32>,
}

impl<K: Key> RangeTable<K> {
    /// Builds from `(first, last, value)` networks (inclusive bounds). Networks must be
    /// distinct and laminar (true of CIDRs).
    pub fn build(mut nets: Vec<(K, K, u32)>) -> Self {
        nets.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        struct T<K> {
            starts: Vec<K>,
            lists: Vec<u32>,
            spans: Vec<[u32; 2]>,
            pool: Vec<u32>,
        }
        let mut t = T { starts: vec![K::MIN], lists: vec![NO_LIST], spans: Vec::new(), pool: Vec::new() };
        let mut interned: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut stack: Vec<(K, u32)> = Vec::new(); // (last, value)
        let mut emit = |t: &mut T<K>, at: K, stack: &[(K, u32)]| {
            let list = if stack.is_empty() {
                NO_LIST
            } else {
                let vals: Vec<u32> = stack.iter().map(|s| s.1).collect();
                *interned.entry(vals).or_insert_with_key(|vals| {
                    t.spans.push([t.pool.len() as u32, vals.len() as u32]);
                    t.pool.extend_from_slice(vals);
                    (t.spans.len() - 1) as u32
                })
            };
            if *t.starts.last().unwrap() == at {
                *t.lists.last_mut().unwrap() = list;
            } else if *t.lists.last().unwrap() != list {
                t.starts.push(at);
                t.lists.push(list);
            }
        };
        for (first, last, value) in nets {
            while let Some(&(top_last, _)) = stack.last() {
                if top_last >= first {
                    break;
                }
                stack.pop();
                emit(&mut t, top_last.succ(), &stack);
            }
            stack.push((last, value));
            emit(&mut t, first, &stack);
        }
        while let Some((top_last, _)) = stack.pop() {
            if top_last == K::MAX {
                continue;
            }
            emit(&mut t, top_last.succ(), &stack);
        }
        RangeTable {
            bucket: buckets(&t.starts),
            starts: Slab::owned(t.starts),
            lists: Slab::owned(t.lists),
            spans: Slab::owned(t.spans),
            pool: Slab::owned(t.pool),
        }
    }

    /// Adopts arrays from a compiled set after checking everything a lookup relies on: starts
    /// strictly increasing from `K::MIN`, one list per segment, spans inside the pool, and
    /// values below `limit`.
    pub fn from_arrays(a: Arrays<K>, limit: u32) -> Result<Self, String> {
        let bad = |what: &str| Err(format!("corrupt network table in compiled set ({what})"));
        if a.starts.first() != Some(&K::MIN) || a.starts.windows(2).any(|w| w[0] >= w[1]) {
            return bad("segments out of order");
        }
        if a.lists.len() != a.starts.len() || a.lists.iter().any(|&l| l != NO_LIST && l as usize >= a.spans.len()) {
            return bad("segment lists");
        }
        if a.spans.iter().any(|&[o, n]| o as usize + n as usize > a.pool.len()) {
            return bad("spans");
        }
        if a.pool.iter().any(|&v| v >= limit) {
            return bad("ids");
        }
        Ok(RangeTable { bucket: buckets(&a.starts), starts: a.starts, lists: a.lists, spans: a.spans, pool: a.pool })
    }

    pub fn arrays(&self) -> ArraySlices<'_, K> {
        (&self.starts, &self.lists, &self.spans, &self.pool)
    }

    /// Values of every network that covers `x`, outermost first.
    #[inline]
    pub fn lookup(&self, x: K) -> &[u32] {
        let b = x.top16();
        let lo = (self.bucket[b] as usize).saturating_sub(1);
        let hi = self.bucket[b + 1] as usize;
        let slice = &self.starts[lo..hi.max(lo + 1)];
        let idx = lo + slice.partition_point(|s| *s <= x) - 1;
        match self.lists[idx] {
            NO_LIST => &[],
            l => {
                let [o, n] = self.spans[l as usize];
                &self.pool[o as usize..o as usize + n as usize]
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Heap bytes used.
    pub fn heap_bytes(&self) -> usize {
        self.starts.heap_bytes()
            + self.lists.heap_bytes()
            + self.spans.heap_bytes()
            + self.pool.heap_bytes()
            + self.bucket.capacity() * 4
    }
}

/// One bit per /24 of the IPv4 space, set where some address or network of a table lies.
///
/// Most addresses a capture shows are clients, and servers no indicator names; they fall in
/// /24s that hold nothing. One probe of this 2 MiB map answers for those, where the exact table
/// and the network table cost a cache miss or more each (W1: 166 k connections, four lookups
/// each, were 9 % of a one-core run). A set bit only sends the address on to both tables.
#[derive(Default)]
pub struct V4Prefilter {
    /// Empty when the table holds no IPv4 address or network: then nothing passes.
    bits: Slab<u64>,
}

impl V4Prefilter {
    /// Words of a filter that is not empty: a bit per /24.
    const WORDS: usize = (1 << 24) / 64;

    /// A filter as a compiled set stores it ([`V4Prefilter::words`]): building it took a
    /// quarter of a scan's start-up with a million indicators. Any bits are safe to use: a
    /// wrong one only sends an address on to the tables, or keeps it from them.
    pub fn from_slab(bits: Slab<u64>) -> Result<V4Prefilter, String> {
        match bits.len() {
            Self::WORDS => Ok(V4Prefilter { bits }),
            _ => Err("corrupt IPv4 prefilter in compiled set".into()),
        }
    }

    pub fn words(&self) -> &[u64] {
        &self.bits
    }

    /// The filter of these exact addresses and the networks of `nets`.
    pub fn build(addrs: impl IntoIterator<Item = u32>, nets: &RangeTable<u32>) -> V4Prefilter {
        let mut addrs = addrs.into_iter().peekable();
        if addrs.peek().is_none() && nets.is_empty() {
            return V4Prefilter::default();
        }
        let mut bits = vec![0u64; Self::WORDS];
        let (starts, lists, _, _) = nets.arrays();
        for a in addrs {
            let b = (a >> 8) as usize;
            bits[b >> 6] |= 1 << (b & 63);
        }
        for (i, (&first, &list)) in starts.iter().zip(lists).enumerate() {
            if list == NO_LIST {
                continue;
            }
            let last = starts.get(i + 1).map_or(u32::MAX, |&next| next - 1);
            // Bits lo..=hi: whole words at once (a /16 is four of them).
            let (lo, hi) = ((first >> 8) as usize, (last >> 8) as usize);
            let (wlo, whi) = (lo >> 6, hi >> 6);
            let from = !0u64 << (lo & 63);
            let to = !0u64 >> (63 - (hi & 63));
            if wlo == whi {
                bits[wlo] |= from & to;
            } else {
                bits[wlo] |= from;
                bits[wlo + 1..whi].fill(!0);
                bits[whi] |= to;
            }
        }
        V4Prefilter { bits: Slab::owned(bits) }
    }

    /// Starts loading the word [`Self::may_hold`] reads for `a`.
    #[inline]
    pub fn prefetch(&self, a: u32) {
        let b = (a >> 8) as usize;
        if let Some(w) = self.bits.get(b >> 6) {
            crate::prefetch::prefetch(w);
        }
    }

    /// False when no address or network of the table lies in the /24 of `a`.
    #[inline]
    pub fn may_hold(&self, a: u32) -> bool {
        let b = (a >> 8) as usize;
        self.bits.get(b >> 6).is_some_and(|w| w >> (b & 63) & 1 != 0)
    }

    pub fn heap_bytes(&self) -> usize {
        self.bits.heap_bytes()
    }
}

/// `bucket[b]` = number of starts below `b << shift`, for b in 0..=65536.
fn buckets<K: Key>(starts: &[K]) -> Vec<u32> {
    (0..=65536usize)
        .map(
            |b| if b == 65536 { starts.len() as u32 } else { starts.partition_point(|s| *s < K::from_top16(b)) as u32 },
        )
        .collect()
}

/// First and last address of a prefix.
pub fn v4_bounds(addr: u32, len: u8) -> (u32, u32) {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (addr & mask, (addr & mask) | !mask)
}

pub fn v6_bounds(addr: u128, len: u8) -> (u128, u128) {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    (addr & mask, (addr & mask) | !mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, v: u32) -> (u32, u32, u32) {
        let n: ipnet::Ipv4Net = s.parse().unwrap();
        let (a, b) = v4_bounds(u32::from(n.network()), n.prefix_len());
        (a, b, v)
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn reports_every_covering_prefix() {
        let t = RangeTable::build(vec![
            net("10.0.0.0/8", 1),
            net("10.1.0.0/16", 2),
            net("10.1.2.0/24", 3),
            net("10.2.0.0/16", 4),
            net("192.0.2.0/24", 5),
        ]);
        assert_eq!(t.lookup(ip("10.1.2.3")), &[1, 2, 3]);
        assert_eq!(t.lookup(ip("10.1.3.3")), &[1, 2]);
        assert_eq!(t.lookup(ip("10.3.0.0")), &[1]);
        assert_eq!(t.lookup(ip("10.2.255.255")), &[1, 4]);
        assert!(t.lookup(ip("11.0.0.0")).is_empty());
        assert!(t.lookup(ip("9.255.255.255")).is_empty());
        assert_eq!(t.lookup(ip("192.0.2.255")), &[5]);
        assert!(t.lookup(ip("192.0.3.0")).is_empty());
        assert!(t.lookup(ip("192.0.1.255")).is_empty());
    }

    #[test]
    fn edges_of_the_space() {
        let t = RangeTable::build(vec![net("0.0.0.0/0", 1), net("255.255.255.0/24", 2), net("0.0.0.0/24", 3)]);
        assert_eq!(t.lookup(0), &[1, 3]);
        assert_eq!(t.lookup(u32::MAX), &[1, 2]);
        assert_eq!(t.lookup(ip("128.0.0.0")), &[1]);
        let empty = RangeTable::<u32>::build(vec![]);
        assert!(empty.lookup(12345).is_empty());
    }

    #[test]
    fn the_prefilter_passes_every_address_a_lookup_finds() {
        let nets = vec![net("10.0.0.0/8", 1), net("192.0.2.128/25", 2), net("255.255.255.0/24", 3)];
        let t = RangeTable::build(nets);
        let f = V4Prefilter::build([ip("198.51.100.7"), 0], &t);
        for a in ["10.0.0.0", "10.255.255.255", "192.0.2.200", "255.255.255.255", "198.51.100.7", "0.0.0.0"] {
            assert!(f.may_hold(ip(a)), "{a}");
        }
        // The /24 is the unit: a neighbour of a listed address passes, to be refused exactly.
        assert!(f.may_hold(ip("198.51.100.8")));
        for a in ["11.0.0.0", "9.255.255.255", "192.0.3.0", "198.51.101.7", "255.255.254.255", "0.0.1.0"] {
            assert!(!f.may_hold(ip(a)), "{a}");
        }
        let none = V4Prefilter::build([], &RangeTable::build(vec![]));
        assert!(!none.may_hold(0) && none.heap_bytes() == 0, "an empty table allocates nothing");
        let all = V4Prefilter::build([], &RangeTable::build(vec![net("0.0.0.0/0", 1)]));
        assert!(all.may_hold(0) && all.may_hold(u32::MAX) && all.may_hold(ip("127.0.0.1")));
        // Networks of every length at random: a /24 passes exactly when one of them reaches it.
        let mut rng = crate::synth::XorShift(0x51_7e);
        let mut nets = std::collections::HashSet::new();
        for _ in 0..300 {
            let len = (rng.below(33)) as u8;
            nets.insert(v4_bounds(rng.next_u64() as u32, len.max(1)));
        }
        let t = RangeTable::build(nets.iter().enumerate().map(|(i, &(a, b))| (a, b, i as u32)).collect());
        let f = V4Prefilter::build([], &t);
        for _ in 0..200_000 {
            let q = rng.next_u64() as u32;
            let reached = nets.iter().any(|&(a, b)| a >> 8 <= q >> 8 && q >> 8 <= b >> 8);
            assert_eq!(f.may_hold(q), reached, "{q:#x}");
        }
    }

    #[test]
    fn agrees_with_brute_force() {
        // Pseudo-random nested prefixes, checked against a linear scan.
        let mut rng = crate::synth::XorShift(0x9E3779B97F4A7C15);
        let mut rnd = || rng.next_u64();
        let mut nets = std::collections::HashSet::new();
        for _ in 0..400 {
            let len = [8u8, 12, 16, 20, 24, 28, 30][(rnd() % 7) as usize];
            let a = (rnd() as u32) & 0x0fff_ffff; // crowd them so they nest
            nets.insert(v4_bounds(a, len));
        }
        let nets: Vec<(u32, u32, u32)> = nets.into_iter().enumerate().map(|(i, (a, b))| (a, b, i as u32)).collect();
        let t = RangeTable::build(nets.clone());
        for _ in 0..20000 {
            let q = (rnd() as u32) & 0x0fff_ffff;
            let mut want: Vec<u32> = nets.iter().filter(|n| n.0 <= q && q <= n.1).map(|n| n.2).collect();
            let mut got = t.lookup(q).to_vec();
            want.sort();
            got.sort();
            assert_eq!(got, want, "query {q:#x}");
        }
    }
}
