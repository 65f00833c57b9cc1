//! The connection table: an open-addressed index of hash tags over a slab of entries, so that
//! a caller who knows which connections come next can start loading them early.
//!
//! Why not `HashMap`: on a capture with 166 k open connections (W1) the table is about 35 MB,
//! far past the caches, and the probe for each packet waited on two cache misses (the control
//! bytes, then the entry): a fifth of the run. A reader walking a mapped capture knows the
//! packets that follow the current one, but a `HashMap` cannot say where a key lives. Here the
//! index is a flat array of 8-byte words, so [`ConnTable::hint`] can prefetch a key's index
//! line now and, a few packets later when that line has arrived, the entry it points to.
//!
//! The index uses linear probing at a load of at most one half, and backward-shift deletion
//! (no tombstones), so a probe never walks far. Each index word holds the low 32 bits of the
//! key's hash (its home position and a tag that rejects nearly every other key without
//! touching its entry) and the entry's slab position. Entries never move: removal frees the
//! slot for the next insertion.

use std::hash::BuildHasher;

use std::net::IpAddr;

use super::conn::{Conn, ConnKey};
use crate::prefetch::prefetch;

/// An unused index word. Used words hold `slot + 1` in the low half, so never 0.
const EMPTY: u64 = 0;

/// A connection holds its key ([`Conn::key`]).
type Entry = Conn;

// An entry is read for every packet, and the hint loads its hot part ([`Conn::HOT`]) ahead of
// its packet; on W1 (166 k connections) the slab is past the caches, and a one-core scan took 3-5 %
// longer with 224-byte entries than with these 152-byte ones, and 1-2 % longer when the hint
// loaded the whole entry (3.25 cache lines on average, as the slots fall across lines) rather
// than its hot part (2.4).
const _: () = assert!(std::mem::size_of::<Option<Entry>>() <= 152, "a connection-table entry grew");
// The hint loads an entry's hot part from where the slot starts: an `Option` of it must keep the
// connection at the slot's start, and tell an empty slot by `Conn::live`, in the hot part. The
// byte read here is defined only if it is the one that says `None`: else this does not compile.
const _: () = {
    assert!(std::mem::size_of::<Option<Entry>>() == std::mem::size_of::<Entry>());
    let empty = std::mem::ManuallyDrop::new(None::<Entry>);
    let p = &empty as *const std::mem::ManuallyDrop<Option<Entry>> as *const u8;
    // SAFETY: inside the value; const evaluation rejects the read if the byte is not initialised.
    let tag = unsafe { *p.add(std::mem::offset_of!(Conn, live)) };
    assert!(tag != super::conn::Live::Yes as u8 && std::mem::offset_of!(Conn, live) < Conn::HOT);
};

pub struct ConnTable {
    /// `(hash as u32) << 32 | (slot + 1)`; the length is a power of two, at least twice `len`.
    index: Box<[u64]>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    len: usize,
    hasher: foldhash::fast::RandomState,
    /// The hash of the key hinted last, for the second stage (0: none).
    pending: u64,
}

impl Default for ConnTable {
    fn default() -> Self {
        ConnTable {
            index: vec![EMPTY; 16].into_boxed_slice(),
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            hasher: Default::default(),
            pending: 0,
        }
    }
}

/// Writes a word on every page of a zeroed `index`, so the kernel maps each page once, for
/// writing. A large zeroed allocation is fresh memory: each page's first read (a probe) would
/// map the shared zero page, and the first write after it fault again and flush the page from
/// every CPU the process runs on, an interrupt to each other worker's core (W1 at `-j 2`:
/// 1,186 TLB flushes, 244 with each page written first).
fn written(index: &mut [u64]) {
    for word in index.iter_mut().step_by(4096 / std::mem::size_of::<u64>()) {
        // SAFETY: `word` is a valid, aligned, exclusive reference; volatile, so the write that
        // changes nothing is not left out.
        unsafe { std::ptr::write_volatile(word, EMPTY) };
    }
}

impl ConnTable {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hash the table files `key` under (for [`ConnTable::get_mut_hashed`]).
    #[inline]
    pub fn hash(&self, key: &ConnKey) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    /// The index position holding `key`, and its slot; or the empty position where it would go.
    #[inline]
    fn find(&self, key: &ConnKey, hash: u64) -> Result<(usize, usize), usize> {
        let (mask, tag) = (self.mask(), hash as u32);
        let mut i = tag as usize & mask;
        loop {
            let word = self.index[i];
            if word == EMPTY {
                return Err(i);
            }
            if (word >> 32) as u32 == tag {
                let slot = (word as u32 - 1) as usize;
                if self.slots[slot].as_ref().is_some_and(|c| c.key == *key) {
                    return Ok((i, slot));
                }
            }
            i = (i + 1) & mask;
        }
    }

    pub fn get(&self, key: &ConnKey) -> Option<&Conn> {
        let (_, slot) = self.find(key, self.hash(key)).ok()?;
        self.slots[slot].as_ref()
    }

    /// The connection under `key`, whose [`ConnTable::hash`] is `hash`.
    #[inline]
    pub fn get_mut_hashed(&mut self, key: &ConnKey, hash: u64) -> Option<&mut Conn> {
        let (_, slot) = self.find(key, hash).ok()?;
        self.slots[slot].as_mut()
    }

    pub fn contains_key(&self, key: &ConnKey) -> bool {
        self.find(key, self.hash(key)).is_ok()
    }

    /// The connection under `key`, made by `make` if there is none, with `client` as its
    /// client (one of the key's endpoints); and whether it is new.
    #[inline]
    pub fn get_or_insert_with(
        &mut self,
        key: ConnKey,
        client: (IpAddr, u16),
        make: impl FnOnce() -> Conn,
    ) -> (&mut Conn, bool) {
        let hash = self.hash(&key);
        let (slot, new) = match self.find(&key, hash) {
            Ok((_, slot)) => (slot, false),
            Err(mut at) => {
                if (self.len + 1) * 2 > self.index.len() {
                    self.grow();
                    at = self.find(&key, hash).expect_err("not present");
                }
                let mut conn = make();
                conn.key = key;
                conn.client_hi = key.is_hi(client);
                let entry = Some(conn);
                let slot = match self.free.pop() {
                    Some(s) => {
                        // `take` emptied the slot, long ago as caches go: an assignment would
                        // read its old bytes to drop them (a cache miss, 2 % of a run's time).
                        let place = &mut self.slots[s as usize];
                        debug_assert!(place.is_none());
                        // SAFETY: `place` is a valid, exclusive reference; what it held (None)
                        // owns nothing, so not dropping it leaks nothing.
                        unsafe { std::ptr::write(place, entry) };
                        s as usize
                    }
                    None => {
                        self.slots.push(entry);
                        self.slots.len() - 1
                    }
                };
                self.index[at] = u64::from(hash as u32) << 32 | (slot as u64 + 1);
                self.len += 1;
                (slot, true)
            }
        };
        (self.slots[slot].as_mut().expect("a used slot"), new)
    }

    pub fn remove(&mut self, key: &ConnKey) -> Option<Conn> {
        let (at, slot) = self.find(key, self.hash(key)).ok()?;
        Some(self.take(at, slot))
    }

    /// Empties index position `at` and its `slot`.
    fn take(&mut self, at: usize, slot: usize) -> Conn {
        // Backward shift: later words of the same run move up into the hole when their home
        // position allows, so that every probe still ends at the first empty word.
        let mask = self.mask();
        let (mut hole, mut j) = (at, at);
        loop {
            j = (j + 1) & mask;
            let word = self.index[j];
            if word == EMPTY {
                break;
            }
            let home = (word >> 32) as usize & mask;
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.index[hole] = word;
                hole = j;
            }
        }
        self.index[hole] = EMPTY;
        self.len -= 1;
        self.free.push(slot as u32);
        self.slots[slot].take().expect("a used slot")
    }

    /// Doubles the index (the tags carry the home positions: no key is hashed again).
    #[cold]
    fn grow(&mut self) {
        let mut bigger = vec![EMPTY; self.index.len() * 2].into_boxed_slice();
        written(&mut bigger);
        let old = std::mem::replace(&mut self.index, bigger);
        let mask = self.mask();
        for word in old.iter().copied().filter(|&w| w != EMPTY) {
            let mut i = (word >> 32) as usize & mask;
            while self.index[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.index[i] = word;
        }
    }

    /// Keeps only the connections for which `keep` says true.
    pub fn retain(&mut self, mut keep: impl FnMut(&ConnKey, &mut Conn) -> bool) {
        for slot in 0..self.slots.len() {
            let Some(conn) = self.slots[slot].as_mut() else { continue };
            let key = conn.key;
            if !keep(&key, conn) {
                // Found by its slot, not its key: `keep` may have moved the connection out.
                let at = self.position(self.hash(&key), slot);
                self.take(at, slot);
            }
        }
    }

    /// The index position of the entry in `slot`, whose key hashes to `hash`.
    fn position(&self, hash: u64, slot: usize) -> usize {
        let mask = self.mask();
        let mut i = hash as u32 as usize & mask;
        let word = u64::from(hash as u32) << 32 | (slot as u64 + 1);
        while self.index[i] != word {
            assert_ne!(self.index[i], EMPTY, "an entry is in the index");
            i = (i + 1) & mask;
        }
        i
    }

    /// Every entry, in slab order, the table consumed.
    pub fn into_entries(self) -> impl Iterator<Item = (ConnKey, Conn)> {
        self.slots.into_iter().flatten().map(|c| (c.key, c))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ConnKey, &Conn)> {
        self.slots.iter().filter_map(|e| e.as_ref().map(|c| (&c.key, c)))
    }

    pub fn values(&self) -> impl Iterator<Item = &Conn> {
        self.iter().map(|(_, c)| c)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Conn> {
        self.slots.iter_mut().filter_map(|e| e.as_mut())
    }

    /// Says that `key` will be looked up soon, after the key hinted before it. Its index line
    /// starts loading now; at the next hint, when that line is likely in cache, so does the
    /// entry it names. (W1 spends about 135 ns per packet on one core; the reader hints two packets
    /// ahead, which leaves each stage about one packet's time to arrive from memory: the entry's
    /// first read still waits on it in a seventh of `packet`'s samples. Hinting four ahead with the
    /// entry loaded two hints later measured within noise.) A wrong or stale
    /// hint costs a little time, never a wrong answer.
    /// Returns the key's hash.
    #[inline]
    pub fn hint(&mut self, key: &ConnKey) -> u64 {
        let hash = self.hash(key);
        prefetch(&self.index[hash as u32 as usize & self.mask()]);
        let before = std::mem::replace(&mut self.pending, hash);
        if before != 0 {
            self.prefetch_entry(before);
        }
        hash
    }

    /// The second stage: starts loading the entry whose tag matches `hash`, if any.
    #[inline]
    fn prefetch_entry(&self, hash: u64) {
        let (mask, tag) = (self.mask(), hash as u32);
        let mut i = tag as usize & mask;
        loop {
            let word = self.index[i];
            if word == EMPTY {
                return;
            }
            if (word >> 32) as u32 == tag {
                let slot = (word as u32 - 1) as usize;
                if let Some(e) = self.slots.get(slot) {
                    // Only the part a packet of an established connection reads: the rest
                    // is read when it starts or ends, or has a payload still to parse.
                    let p = e as *const Option<Entry> as *const u8;
                    let mut off = 0;
                    while off < Conn::HOT {
                        prefetch(p.wrapping_add(off));
                        off += 64;
                    }
                    prefetch(p.wrapping_add(Conn::HOT - 1));
                }
                return;
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::IpAddr;

    fn key(n: u32) -> ConnKey {
        let a: IpAddr = std::net::Ipv4Addr::from(0x0a00_0000 | (n >> 8)).into();
        let b: IpAddr = std::net::Ipv4Addr::from(0xc000_0200 | (n & 0xff)).into();
        ConnKey::new(6, (a, (n % 50_000) as u16), (b, 443)).0
    }

    fn conn(n: u32) -> Conn {
        let mut c = Conn::blank();
        c.first_us = i64::from(n);
        c
    }

    /// Random inserts, lookups, removals and sweeps, checked step by step against `HashMap`.
    #[test]
    fn behaves_like_a_hash_map() {
        let mut t = ConnTable::default();
        let mut m: HashMap<ConnKey, i64> = HashMap::new();
        let mut rng = crate::synth::XorShift(0x9e37_79b9_7f4a_7c15);
        for step in 0..200_000u32 {
            let x = rng.next_u64();
            // A small key space, so that lookups hit and runs in the index collide often.
            let n = (x >> 40) as u32 % 5_000;
            let k = key(n);
            match x % 8 {
                0..=3 => {
                    let (c, new) = t.get_or_insert_with(k, k.end(false), || conn(n));
                    assert_eq!(new, !m.contains_key(&k));
                    m.entry(k).or_insert(i64::from(n));
                    assert_eq!(c.first_us, m[&k]);
                    c.last_us += 1;
                }
                4 | 5 => assert_eq!(t.remove(&k).map(|c| c.first_us), m.remove(&k)),
                6 => assert_eq!(t.get(&k).map(|c| c.first_us), m.get(&k).copied()),
                _ => {
                    t.hint(&k);
                    assert_eq!(t.contains_key(&k), m.contains_key(&k));
                }
            }
            if step % 50_000 == 49_999 {
                // As the engine's sweep does, a connection dropped is moved out first.
                let mut out = Vec::new();
                t.retain(|k, c| {
                    assert_eq!(*k, c.key);
                    let keep = c.first_us % 3 != 0;
                    if !keep {
                        out.push(std::mem::replace(c, Conn::blank()));
                    }
                    keep
                });
                assert!(out.iter().all(|c| c.first_us % 3 == 0 && m.contains_key(&c.key)));
                m.retain(|_, v| *v % 3 != 0);
            }
            assert_eq!(t.len(), m.len());
        }
        let mut seen: Vec<_> = t.iter().map(|(k, c)| (*k, c.first_us)).collect();
        let mut want: Vec<_> = m.into_iter().collect();
        seen.sort_unstable();
        want.sort_unstable();
        assert_eq!(seen, want);
    }

    #[test]
    fn grows_past_its_first_size_and_keeps_every_entry() {
        let mut t = ConnTable::default();
        for n in 0..100_000 {
            assert!(t.get_or_insert_with(key(n), key(n).end(false), || conn(n)).1);
        }
        assert!(t.index.len() >= 200_000);
        for n in 0..100_000 {
            assert_eq!(t.get(&key(n)).map(|c| c.first_us), Some(i64::from(n)));
        }
        // Freed slots are used again rather than growing the slab.
        for n in 0..50_000 {
            t.remove(&key(n));
        }
        for n in 100_000..150_000 {
            t.get_or_insert_with(key(n), key(n).end(false), || conn(n));
        }
        assert_eq!(t.slots.len(), 100_000);
        assert_eq!(t.len(), 100_000);
    }

    /// The fast path knows only which side of the key a segment came from; the table files
    /// each connection with its client's side, so that both ways of telling a packet's
    /// direction agree, for either order of the endpoints, equal endpoints, and an IPv4
    /// address met again mapped into IPv6.
    #[test]
    fn a_packets_side_of_the_key_tells_its_direction_as_its_source_does() {
        let ep = |s: &str, port: u16| (s.parse::<IpAddr>().unwrap(), port);
        let ends = [ep("10.0.0.1", 40000), ep("192.0.2.9", 443), ep("2001:db8::1", 443), ep("10.0.0.1", 443)];
        let mapped = ep("::ffff:10.0.0.1", 40000);
        for client in ends {
            for server in ends {
                let mut t = ConnTable::default();
                let (key, _) = ConnKey::new(6, client, server);
                let c = t.get_or_insert_with(key, client, Conn::blank).0;
                assert_eq!((c.client(), c.server()), (client, server));
                for (src, dst) in [(client, server), (server, client)] {
                    let (k, src_hi) = ConnKey::new(6, src, dst);
                    assert_eq!(k, key);
                    assert_eq!(c.dir_of_side(src_hi), c.dir(src), "{client:?} -> {server:?}, from {src:?}");
                }
                let want = usize::from(client != ends[0]);
                if server != client && (client == ends[0] || server == ends[0]) {
                    let (_, hi) = ConnKey::new(6, mapped, if client == ends[0] { server } else { client });
                    assert_eq!(c.dir_of_side(hi), want, "{client:?} -> {server:?}, from {mapped:?}");
                    assert_eq!(c.dir(mapped), want);
                }
            }
        }
    }
}
