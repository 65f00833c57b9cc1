//! Open-addressing hash tables in one flat array, so they can be written into a compiled set
//! and probed in place from the mapping.
//!
//! Linear probing at a load factor of at most 3/4, with one tag byte per slot in an array of
//! its own (as in hashbrown): 7 bits of the hash, or 0 for a free slot. A miss, which is nearly
//! every lookup, reads only tags: a million slots take 1 MB of tags, which stay in cache, where
//! the slots themselves (8 MB and more) would cost a trip to memory per packet. Tags are read
//! eight at a time and compared in one word (the first eight are repeated after the last, so a
//! group never wraps), which keeps a miss free of per-slot branches. A slot's value is
//! an indicator id (the head of its chain, see `Matcher`); [`EMPTY`] marks a free slot, so ids
//! stay below `2^31 - 1` (the top bit is the matcher's `SINGLE` flag).

use bytemuck::{Pod, Zeroable};

use super::slab::Slab;

/// Value of a free slot.
pub const EMPTY: u32 = u32::MAX;

/// A slot type: a key and a `u32` value, with no padding (so it can be stored as bytes).
pub trait Slot: Pod {
    type Key: Copy + Eq;
    fn new(key: Self::Key, val: u32) -> Self;
    fn key(&self) -> Self::Key;
    fn val(&self) -> u32;
    fn set_val(&mut self, v: u32);
    fn hash(key: Self::Key) -> u64;
}

/// A folded multiply (as in foldhash): one multiplication that spreads every key bit over the
/// whole word, so integer keys (addresses of a /24 listed one by one) spread evenly.
#[inline]
fn mix(x: u64) -> u64 {
    let p = (x ^ 0x243f_6a88_85a3_08d3) as u128 * 0x9e37_79b9_7f4a_7c15u128;
    (p as u64) ^ (p >> 64) as u64
}

/// IPv4 address → id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct V4Slot {
    key: u32,
    val: u32,
}

impl Slot for V4Slot {
    type Key = u32;
    fn new(key: u32, val: u32) -> Self {
        V4Slot { key, val }
    }
    #[inline]
    fn key(&self) -> u32 {
        self.key
    }
    #[inline]
    fn val(&self) -> u32 {
        self.val
    }
    fn set_val(&mut self, v: u32) {
        self.val = v
    }
    #[inline]
    fn hash(key: u32) -> u64 {
        mix(key as u64)
    }
}

/// A 64-bit hash of a string (domains, fingerprints) → id. The key is already a hash.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct HashSlot {
    key: u64,
    val: u32,
    pad: u32,
}

impl Slot for HashSlot {
    type Key = u64;
    fn new(key: u64, val: u32) -> Self {
        HashSlot { key, val, pad: 0 }
    }
    #[inline]
    fn key(&self) -> u64 {
        self.key
    }
    #[inline]
    fn val(&self) -> u32 {
        self.val
    }
    fn set_val(&mut self, v: u32) {
        self.val = v
    }
    #[inline]
    fn hash(key: u64) -> u64 {
        key
    }
}

/// IPv6 address → id (the key as two halves, so the slot needs only 8-byte alignment).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct V6Slot {
    key: [u64; 2],
    val: u32,
    pad: u32,
}

impl Slot for V6Slot {
    type Key = u128;
    fn new(key: u128, val: u32) -> Self {
        V6Slot { key: [key as u64, (key >> 64) as u64], val, pad: 0 }
    }
    #[inline]
    fn key(&self) -> u128 {
        (self.key[1] as u128) << 64 | self.key[0] as u128
    }
    #[inline]
    fn val(&self) -> u32 {
        self.val
    }
    fn set_val(&mut self, v: u32) {
        self.val = v
    }
    #[inline]
    fn hash(key: u128) -> u64 {
        mix(key as u64 ^ mix((key >> 64) as u64))
    }
}

/// Tags read at once.
const GROUP: usize = 8;
const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The tag of an occupied slot: the top 7 bits of the hash, and the top bit set.
#[inline]
fn tag(h: u64) -> u8 {
    0x80 | (h >> 57) as u8
}

/// An immutable table of `S` slots (a power of two of them, at least one free, or none).
pub struct FlatMap<S: Slot> {
    slots: Slab<S>,
    /// Per slot: [`tag`] of its key's hash, or 0 when free.
    tags: Slab<u8>,
    len: usize,
    /// A lookup returns a value only if, without the bits of `flag`, it is below `limit`. A
    /// built table holds no other; a compiled set's are checked here, as each is read, rather
    /// than all of them at start-up (a pass over every slot cost a third of a scan's start-up
    /// with a million indicators).
    limit: u32,
    flag: u32,
}

impl<S: Slot> Default for FlatMap<S> {
    fn default() -> Self {
        FlatMap { slots: Slab::default(), tags: Slab::default(), len: 0, limit: EMPTY, flag: 0 }
    }
}

impl<S: Slot> FlatMap<S> {
    /// Adopts `slots` (from a compiled set) after checking what a probe relies on: a
    /// power-of-two size, tags mirrored at the end, and a free tag (so a miss ends). Values are
    /// not read here: a lookup returns one only if it is an id below `limit` (with `flag`
    /// allowed on top), so a hostile file's stray value is a miss, never an index out of bounds.
    pub fn from_slab(slots: Slab<S>, tags: Slab<u8>, limit: u32, flag: u32) -> Result<FlatMap<S>, String> {
        let n = slots.len();
        let sized = n == 0 && tags.is_empty() || n >= GROUP && n.is_power_of_two() && tags.len() == n + GROUP;
        if !sized || tags[n..] != tags[..tags.len() - n] {
            return Err("hash table size is not a power of two".into());
        }
        // A probe stops at a tag without its top bit.
        let len = tags[..n].iter().filter(|&&t| t & 0x80 != 0).count();
        if n != 0 && len == n {
            return Err("hash table has no free slot".into());
        }
        Ok(FlatMap { slots, tags, len, limit, flag })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn slots(&self) -> &[S] {
        &self.slots
    }

    pub fn tags(&self) -> &[u8] {
        &self.tags
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.heap_bytes() + self.tags.heap_bytes()
    }

    /// The keys stored, in slot order.
    pub fn keys(&self) -> impl Iterator<Item = S::Key> + '_ {
        self.slots.iter().zip(self.tags.iter()).filter(|(_, &t)| t != 0).map(|(s, _)| s.key())
    }

    /// The value stored for `key`.
    #[inline]
    pub fn get(&self, key: S::Key) -> Option<u32> {
        let (slots, tags): (&[S], &[u8]) = (&self.slots, &self.tags);
        if slots.is_empty() || tags.len() != slots.len() + GROUP {
            return None;
        }
        let h = S::hash(key);
        let mask = slots.len() - 1;
        let t = tag(h);
        let want = LOW * t as u64;
        let mut i = h as usize & mask;
        loop {
            let group = u64::from_le_bytes(tags[i..i + GROUP].try_into().unwrap_or_default());
            // Bytes equal to the tag (a zero byte of `x`; the borrow can also mark a byte above
            // a true match, hence the second look at the tag, before the key).
            let x = group ^ want;
            let mut hits = x.wrapping_sub(LOW) & !x & HIGH;
            while hits != 0 {
                let j = (hits.trailing_zeros() / 8) as usize;
                let at = (i + j) & mask;
                if tags[i + j] == t && slots[at].key() == key {
                    let v = slots[at].val();
                    return (v & !self.flag < self.limit).then_some(v);
                }
                hits &= hits - 1;
            }
            // A free slot in the group: the key would have been placed there or before.
            if !group & HIGH != 0 {
                return None;
            }
            i = (i + GROUP) & mask;
        }
    }

    /// Starts loading the first slot `key` would probe, so that a later [`FlatMap::get`] finds
    /// it in cache (for callers that know several keys ahead).
    #[inline]
    pub fn prefetch(&self, key: S::Key) {
        let tags: &[u8] = &self.tags;
        if tags.is_empty() {
            return;
        }
        let i = S::hash(key) as usize & (self.slots.len().max(1) - 1);
        crate::prefetch::prefetch(tags.as_ptr().wrapping_add(i));
    }
}

/// Builds a [`FlatMap`], chaining ids that share a key through `next`.
pub struct Builder<S: Slot> {
    slots: Vec<S>,
    tags: Vec<u8>,
    len: usize,
}

impl<S: Slot> Builder<S> {
    /// Room for `n` keys at a load factor of at most 3/4.
    pub fn with_capacity(n: usize) -> Builder<S> {
        let cap = if n == 0 { 0 } else { (n + n / 3 + 1).next_power_of_two().max(8) };
        let mut free = S::zeroed();
        free.set_val(EMPTY);
        Builder { slots: vec![free; cap], tags: vec![0; cap], len: 0 }
    }

    /// Adds `id` under `key`; an id already there is chained behind it (`next[id]`).
    pub fn insert(&mut self, key: S::Key, id: u32, next: &mut [u32]) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = S::hash(key) as usize & mask;
        loop {
            let s = &mut self.slots[i];
            if s.val() == EMPTY {
                *s = S::new(key, id);
                self.tags[i] = tag(S::hash(key));
                self.len += 1;
                return;
            }
            if s.key() == key {
                next[id as usize] = s.val();
                s.set_val(id);
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let mut b = Builder::<S>::with_capacity((self.len + 1) * 2);
        for s in old.into_iter().filter(|s| s.val() != EMPTY) {
            let mask = b.slots.len() - 1;
            let mut i = S::hash(s.key()) as usize & mask;
            while b.slots[i].val() != EMPTY {
                i = (i + 1) & mask;
            }
            b.slots[i] = s;
            b.tags[i] = tag(S::hash(s.key()));
        }
        self.slots = b.slots;
        self.tags = b.tags;
    }

    /// Rewrites every stored value (to flag heads, say).
    pub fn map_values(&mut self, mut f: impl FnMut(u32) -> u32) {
        for s in self.slots.iter_mut().filter(|s| s.val() != EMPTY) {
            let v = f(s.val());
            s.set_val(v);
        }
    }

    pub fn finish(mut self) -> FlatMap<S> {
        if !self.slots.is_empty() {
            let head: Vec<u8> = self.tags[..GROUP].to_vec();
            self.tags.extend_from_slice(&head);
        }
        FlatMap { len: self.len, slots: Slab::owned(self.slots), tags: Slab::owned(self.tags), limit: EMPTY, flag: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_put_and_chains_duplicates() {
        let mut next = vec![EMPTY; 3000];
        let mut b = Builder::<V4Slot>::with_capacity(10); // grows
        for id in 0..2000u32 {
            b.insert(id.wrapping_mul(2_654_435_761) & 0xffff_ff00, id, &mut next);
        }
        b.insert(0, 2500, &mut next); // key of id 0
        let m = b.finish();
        assert_eq!(m.len(), 2000);
        for id in 1..2000u32 {
            assert_eq!(m.get(id.wrapping_mul(2_654_435_761) & 0xffff_ff00), Some(id));
        }
        assert_eq!(m.get(0), Some(2500));
        assert_eq!(next[2500], 0);
        assert_eq!(m.get(0x0102_0304), None);
        assert!(m.slots().len().is_power_of_two() && m.len() * 4 <= m.slots().len() * 3);
        assert_eq!(FlatMap::<V6Slot>::default().get(5), None);
    }

    #[test]
    fn adopting_checks_what_lookups_rely_on() {
        // Eight slots, the first `used` of them holding `val`, tags with their mirror.
        let table = |used: usize, val: u32, tag: u8| {
            let mut slots = vec![V4Slot::new(0, EMPTY); 8];
            let mut tags = vec![0u8; 8];
            for i in 0..used {
                slots[i] = V4Slot::new(i as u32 + 1, val);
                tags[i] = tag;
            }
            tags.extend_from_within(..8);
            (Slab::owned(slots), Slab::owned(tags))
        };
        let (s, t) = table(8, 0, 0x80);
        assert!(FlatMap::from_slab(s, t, 10, 0).is_err(), "no free slot: a miss would never end");
        // Eight tags without their top bit stop a probe as free ones do.
        let (s, t) = table(8, 0, 0x01);
        let m = FlatMap::from_slab(s, t, 10, 0).unwrap();
        assert_eq!((m.len(), m.get(1)), (0, None));
        // A value out of range, or a free one under a tag, is adopted but never returned: a
        // lookup that finds its key misses.
        for bad in [10, 11, EMPTY, 9 | 1 << 30] {
            let (s, t) = table(2, bad, 0x80 | (V4Slot::hash(1) >> 57) as u8);
            let m = FlatMap::from_slab(s, t, 10, 1 << 31).unwrap();
            assert_eq!(m.get(1), None, "{bad:#x}");
        }
        let (s, t) = table(2, 9 | 1 << 31, 0x80 | (V4Slot::hash(1) >> 57) as u8);
        let m = FlatMap::from_slab(s, t, 10, 1 << 31).unwrap();
        assert_eq!(m.get(1), Some(9 | 1 << 31), "an id in range, with the flag, is returned");
        let (s, mut t) = table(1, 9, 0x80);
        let mut bad = t.to_vec();
        bad[9] = 0x81;
        t = Slab::owned(bad);
        assert!(FlatMap::from_slab(s, t, 10, 0).is_err(), "mirror differs");
        let (s, t) = table(3, 9 | 1 << 31, 0x80);
        assert_eq!(FlatMap::from_slab(s, t, 10, 1 << 31).unwrap().len(), 3);
        let odd = vec![V4Slot::new(0, EMPTY); 12];
        assert!(FlatMap::from_slab(Slab::owned(odd), Slab::owned(vec![0; 20]), 10, 0).is_err());
    }
}
