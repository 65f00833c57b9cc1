//! Bounded IPv4/IPv6 fragment reassembly.
//!
//! Fragments are rare in normal traffic but are a classic way to hide a transport header (and
//! so a port) from a monitor, which is why we reassemble at all. They are also a classic way to
//! exhaust a monitor's memory, so everything here is capped, in the spirit of Suricata's
//! `defrag` and the Linux `ipfrag_*` limits:
//!
//! * at most `max_datagrams` datagrams in flight and `max_total_bytes` buffered in all; when a
//!   cap is hit the oldest datagram is evicted (counted in `evicted`);
//! * a datagram whose fragments reach past 65535 bytes of payload is dropped (`oversize`) and
//!   its later fragments are swallowed until it times out;
//! * a datagram is expired `timeout` seconds (packet time) after its first fragment (`expired`);
//! * overlapping fragments follow a first-wins policy (the bytes received first are kept, as
//!   BSD-style stacks do) and are counted (`overlaps`): overlaps are an evasion signal.
//!
//! Allocation is fine here (one buffer per datagram): this is off the hot path.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::packet::Fragment;

/// Largest reassembled IP payload accepted (no jumbograms).
pub const MAX_DATAGRAM_PAYLOAD: usize = 65535;

/// Counters of the reassembler, for the run report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Datagrams completed and returned.
    pub reassembled: u64,
    /// Datagrams dropped incomplete after the timeout.
    pub expired: u64,
    /// Datagrams dropped incomplete to respect the datagram or byte caps.
    pub evicted: u64,
    /// Fragments that overlapped data already received (or contradicted the known end).
    pub overlaps: u64,
    /// Datagrams dropped because they would exceed 65535 bytes.
    pub oversize: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

#[derive(Debug)]
struct Datagram {
    /// Generation, to recognise stale entries in the age queue.
    gen: u64,
    first_ts: f64,
    buf: Vec<u8>,
    /// Received byte ranges `[start, end)`, sorted, disjoint and not adjacent.
    have: Vec<(usize, usize)>,
    /// Payload length, once the last fragment (more = false) has been seen.
    total: Option<usize>,
    /// Dropped as oversize: swallow its remaining fragments until it times out.
    dead: bool,
}

/// Bounded reassembly of IP fragments. Key: (src, dst, proto, id). Caps: max datagrams in
/// flight, max bytes per datagram (65535), total byte cap; expiry after `timeout` seconds of
/// packet time.
#[derive(Debug)]
pub struct Defrag {
    map: HashMap<Key, Datagram>,
    /// Datagrams in creation order, for eviction and expiry; may hold stale entries (removed
    /// datagrams), recognised by their generation and skipped.
    order: VecDeque<(Key, u64)>,
    next_gen: u64,
    max_datagrams: usize,
    max_total_bytes: usize,
    timeout: f64,
    total_bytes: usize,
    stats: DefragStats,
}

impl Defrag {
    /// `max_datagrams` (at least 1) datagrams in flight, `max_total_bytes` buffered in all,
    /// incomplete datagrams expire `timeout_secs` after their first fragment.
    pub fn new(max_datagrams: usize, max_total_bytes: usize, timeout_secs: f64) -> Self {
        Defrag {
            map: HashMap::new(),
            order: VecDeque::new(),
            next_gen: 0,
            max_datagrams: max_datagrams.max(1),
            max_total_bytes,
            timeout: timeout_secs,
            total_bytes: 0,
            stats: DefragStats::default(),
        }
    }

    /// Feed one fragment (the innermost layer of a decoded frame, whose `fragment` is Some;
    /// `data` is its `ip_payload`). `ts` is packet time in seconds. When the datagram is
    /// complete, returns the protocol and the reassembled IP *payload* (transport header +
    /// data); parse it with `packet::parse_transport` (or `packet::decode_transport`).
    pub fn push(
        &mut self,
        ts: f64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        frag: Fragment,
        data: &[u8],
    ) -> Option<(u8, Vec<u8>)> {
        self.expire(ts);
        let key = Key { src, dst, proto, id: frag.id };
        let start = usize::from(frag.offset);
        let end = start.saturating_add(data.len());

        if end > MAX_DATAGRAM_PAYLOAD {
            self.stats.oversize += 1;
            self.kill(key, ts);
            return None;
        }

        // Make room for the bytes this fragment may add (the buffer grows to `end`).
        let cur = self.map.get(&key).map_or(0, |d| d.buf.len());
        let growth = end.saturating_sub(cur);
        while self.total_bytes.saturating_add(growth) > self.max_total_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
        if self.total_bytes.saturating_add(growth) > self.max_total_bytes {
            // Even alone it does not fit the byte cap.
            self.stats.evicted += 1;
            return None;
        }

        let dg = self.entry(key, ts);
        if dg.dead {
            return None;
        }
        let (overlap, grew) = insert(dg, start, end, frag.more, data);
        let complete = matches!(dg.total, Some(t) if dg.have.as_slice() == [(0, t)]);
        self.total_bytes += grew;
        if overlap {
            self.stats.overlaps += 1;
        }
        if !complete {
            return None;
        }
        let dg = self.map.remove(&key)?;
        self.total_bytes = self.total_bytes.saturating_sub(dg.buf.len());
        self.stats.reassembled += 1;
        let mut buf = dg.buf;
        buf.truncate(dg.total.unwrap_or(0));
        Some((proto, buf))
    }

    /// Drops the datagrams whose first fragment is more than `timeout` seconds older than
    /// `now` (called by `push` too).
    pub fn expire(&mut self, now: f64) {
        while let Some(&(key, gen)) = self.order.front() {
            match self.map.get(&key) {
                Some(d) if d.gen == gen => {
                    if now - d.first_ts <= self.timeout {
                        break;
                    }
                    let dead = d.dead;
                    self.remove(&key);
                    if !dead {
                        self.stats.expired += 1;
                    }
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> DefragStats {
        self.stats
    }

    /// Datagrams currently buffered.
    pub fn in_flight(&self) -> usize {
        self.map.len()
    }

    /// Payload bytes currently buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.total_bytes
    }

    fn remove(&mut self, key: &Key) {
        if let Some(d) = self.map.remove(key) {
            self.total_bytes = self.total_bytes.saturating_sub(d.buf.len());
        }
    }

    /// Evicts the oldest live datagram; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((key, gen)) = self.order.pop_front() {
            if let Some(d) = self.map.get(&key) {
                if d.gen == gen {
                    let dead = d.dead;
                    self.remove(&key);
                    if !dead {
                        self.stats.evicted += 1;
                    }
                    return true;
                }
            }
        }
        false
    }

    /// The datagram for `key`, created (evicting the oldest if at the cap) if absent.
    fn entry(&mut self, key: Key, ts: f64) -> &mut Datagram {
        let mut gen = u64::MAX; // unused when the datagram exists
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.max_datagrams && self.evict_oldest() {}
            if self.order.len() > 2 * self.max_datagrams + 16 {
                // drop the stale entries left by completed datagrams
                let map = &self.map;
                self.order.retain(|(k, g)| map.get(k).is_some_and(|d| d.gen == *g));
            }
            gen = self.next_gen;
            self.next_gen += 1;
            self.order.push_back((key, gen));
        }
        self.map.entry(key).or_insert_with(|| Datagram {
            gen,
            first_ts: ts,
            buf: Vec::new(),
            have: Vec::new(),
            total: None,
            dead: false,
        })
    }

    /// Marks the datagram as dropped (freeing its bytes), keeping a tombstone so its remaining
    /// fragments are not buffered again.
    fn kill(&mut self, key: Key, ts: f64) {
        let dg = self.entry(key, ts);
        let freed = dg.buf.len();
        dg.dead = true;
        dg.buf = Vec::new();
        dg.have = Vec::new();
        self.total_bytes = self.total_bytes.saturating_sub(freed);
    }
}

/// Copies the parts of `[start, end)` not yet received into the buffer (first wins) and
/// records the range. Returns (overlap seen, bytes the buffer grew by).
fn insert(dg: &mut Datagram, start: usize, end: usize, more: bool, data: &[u8]) -> (bool, usize) {
    let mut overlap = false;
    let mut end = end;
    if let Some(t) = dg.total {
        if end > t {
            overlap = true;
            end = t;
        }
        if !more && end != t {
            overlap = true;
        }
    } else if !more {
        if dg.have.last().is_some_and(|r| r.1 > end) {
            // data already beyond the claimed end: keep what came first, never complete
            overlap = true;
        } else {
            dg.total = Some(end);
        }
    }
    if start >= end {
        return (overlap, 0);
    }
    let grew = end.saturating_sub(dg.buf.len());
    if grew > 0 {
        dg.buf.resize(end, 0);
    }
    let mut copy = |a: usize, b: usize| {
        if let (Some(dst), Some(src)) =
            (dg.buf.get_mut(a..b), data.get(a.saturating_sub(start)..b.saturating_sub(start)))
        {
            dst.copy_from_slice(src);
        }
    };
    let mut pos = start;
    for &(s, e) in &dg.have {
        if e <= pos {
            continue;
        }
        if s >= end {
            break;
        }
        if s > pos {
            copy(pos, s);
        }
        overlap = true;
        pos = e;
        if pos >= end {
            break;
        }
    }
    if pos < end {
        copy(pos, end);
    }
    // record [start, end) and merge
    let idx = dg.have.partition_point(|r| r.0 < start);
    dg.have.insert(idx, (start, end));
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(dg.have.len());
    for &(s, e) in &dg.have {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    dg.have = merged;
    (overlap, grew)
}

#[cfg(test)]
mod tests {
    use super::super::packet::tests::{ipv4_frag, ipv6, udp, A4, A6, B4, B6};
    use super::super::packet::{decode, parse_transport, Decoded, LINKTYPE_RAW};
    use super::*;

    /// A 108-byte UDP datagram cut into fragments of (offset, len).
    fn frames(cuts: &[(usize, usize)], id: u16) -> (Vec<u8>, Vec<Vec<u8>>) {
        let payload: Vec<u8> = (0..100u8).collect();
        let l4 = udp(5000, 53, &payload);
        let fr = cuts
            .iter()
            .map(|&(o, n)| {
                let more = o + n < l4.len();
                ipv4_frag(A4, B4, 17, id, o as u16, more, &l4[o..o + n])
            })
            .collect();
        (l4, fr)
    }

    fn feed(df: &mut Defrag, ts: f64, frame: &[u8]) -> Option<(u8, Vec<u8>)> {
        let mut d = Decoded::default();
        decode(LINKTYPE_RAW, frame, true, &mut d).unwrap();
        let l = *d.innermost().unwrap();
        df.push(ts, l.src, l.dst, l.proto, d.fragment.unwrap(), d.ip_payload)
    }

    fn check(proto: u8, buf: &[u8]) {
        let mut d = Decoded::default();
        parse_transport(proto, buf, &mut d);
        assert_eq!((d.sport, d.dport, d.payload.len()), (5000, 53, 100));
        assert_eq!(d.payload[99], 99);
        assert!(!d.truncated);
    }

    #[test]
    fn in_order() {
        let (l4, fr) = frames(&[(0, 48), (48, 48), (96, 12)], 1);
        let mut df = Defrag::new(16, 1 << 20, 30.0);
        assert!(feed(&mut df, 1.0, &fr[0]).is_none());
        assert!(feed(&mut df, 1.0, &fr[1]).is_none());
        let (proto, buf) = feed(&mut df, 1.0, &fr[2]).unwrap();
        assert_eq!((proto, &buf), (17, &l4));
        check(proto, &buf);
        assert_eq!(df.stats().reassembled, 1);
        assert_eq!((df.in_flight(), df.buffered_bytes()), (0, 0));
    }

    #[test]
    fn out_of_order() {
        let (l4, fr) = frames(&[(0, 48), (48, 48), (96, 12)], 2);
        let mut df = Defrag::new(16, 1 << 20, 30.0);
        assert!(feed(&mut df, 1.0, &fr[2]).is_none());
        assert!(feed(&mut df, 1.0, &fr[0]).is_none());
        let (proto, buf) = feed(&mut df, 1.0, &fr[1]).unwrap();
        assert_eq!(buf, l4);
        check(proto, &buf);
        assert_eq!(df.stats().overlaps, 0);
    }

    #[test]
    fn ipv6_fragments() {
        let l4 = udp(5000, 53, &(0..100u8).collect::<Vec<_>>());
        let mk = |off: usize, n: usize, more: bool| {
            let mut p = vec![17, 0];
            p.extend_from_slice(&((off as u16) | u16::from(more)).to_be_bytes());
            p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
            p.extend_from_slice(&l4[off..off + n]);
            ipv6(A6, B6, 44, &p)
        };
        let mut df = Defrag::new(16, 1 << 20, 30.0);
        assert!(feed(&mut df, 0.0, &mk(56, 52, false)).is_none());
        let (proto, buf) = feed(&mut df, 0.0, &mk(0, 56, true)).unwrap();
        assert_eq!(buf, l4);
        check(proto, &buf);
    }

    #[test]
    fn overlap_first_wins() {
        let (l4, fr) = frames(&[(0, 48), (48, 60)], 3);
        let mut df = Defrag::new(16, 1 << 20, 30.0);
        assert!(feed(&mut df, 1.0, &fr[0]).is_none());
        // a forged fragment rewriting bytes 40..56 with 0xff
        let forged = ipv4_frag(A4, B4, 17, 3, 40, true, &[0xff; 16]);
        assert!(feed(&mut df, 1.0, &forged).is_none());
        let (_, buf) = feed(&mut df, 1.0, &fr[1]).unwrap();
        assert_eq!(&buf[..48], &l4[..48], "first bytes win");
        assert_eq!(&buf[48..56], &[0xff; 8], "forged bytes filled a gap");
        assert_eq!(df.stats().overlaps, 2);
    }

    #[test]
    fn oversize_dropped() {
        let mut df = Defrag::new(16, 1 << 20, 30.0);
        assert!(feed(&mut df, 0.0, &ipv4_frag(A4, B4, 17, 9, 0, true, &[0; 64])).is_none());
        let big = ipv4_frag(A4, B4, 17, 9, 65528, false, &[0; 64]);
        assert!(feed(&mut df, 0.0, &big).is_none());
        assert_eq!(df.stats().oversize, 1);
        assert_eq!(df.buffered_bytes(), 0);
        // later fragments of the dropped datagram are swallowed, and it expires silently
        assert!(feed(&mut df, 0.0, &ipv4_frag(A4, B4, 17, 9, 64, false, &[0; 8])).is_none());
        df.expire(100.0);
        assert_eq!((df.stats().expired, df.in_flight()), (0, 0));
    }

    #[test]
    fn expiry_and_caps() {
        let (_, fr) = frames(&[(0, 48), (48, 60)], 4);
        let mut df = Defrag::new(2, 1 << 20, 30.0);
        assert!(feed(&mut df, 0.0, &fr[0]).is_none());
        df.expire(29.0);
        assert_eq!(df.in_flight(), 1);
        df.expire(31.0);
        assert_eq!((df.stats().expired, df.in_flight(), df.buffered_bytes()), (1, 0, 0));
        // the second half alone no longer completes anything
        assert!(feed(&mut df, 32.0, &fr[1]).is_none());

        // datagram cap: the third datagram evicts the oldest
        let mut df = Defrag::new(2, 1 << 20, 30.0);
        for id in 10..13 {
            let (_, fr) = frames(&[(0, 48), (48, 60)], id);
            assert!(feed(&mut df, 0.0, &fr[0]).is_none());
        }
        assert_eq!((df.stats().evicted, df.in_flight()), (1, 2));
        let (_, fr) = frames(&[(0, 48), (48, 60)], 12);
        assert!(feed(&mut df, 0.0, &fr[1]).is_some());

        // byte cap
        let mut df = Defrag::new(100, 100, 30.0);
        for id in 20..23 {
            let (_, fr) = frames(&[(0, 48), (48, 60)], id);
            assert!(feed(&mut df, 0.0, &fr[0]).is_none());
        }
        assert!(df.buffered_bytes() <= 100);
        assert_eq!(df.stats().evicted, 1);
    }

    #[test]
    fn many_datagrams_stay_bounded() {
        let mut df = Defrag::new(8, 4096, 5.0);
        for i in 0..10_000u32 {
            let frag = Fragment { id: i, offset: ((i * 8) % 512) as u16, more: i % 3 != 0 };
            let _ = df.push(f64::from(i) * 0.01, A4.into(), B4.into(), 17, frag, &[1; 40]);
            assert!(df.in_flight() <= 8 && df.buffered_bytes() <= 4096);
            assert!(df.order.len() <= 2 * 8 + 17);
        }
    }
}
