//! Connections: a canonical bidirectional key, per-direction counters, the verdict cache, and
//! a bounded table with expiry.
//!
//! Addresses are matched once, when a connection is first seen, and the alerts already raised
//! are remembered, so a long download costs one hash probe per packet and never repeats an alert.

use std::net::IpAddr;

use super::stream::Stream;
use crate::decode::peek::{ip_int, IntEndpoint};
use crate::report::alert::{Field, Tunnel};

/// Both directions of a connection map to the same key. Addresses are stored as integers
/// (IPv4 mapped into IPv6) so hashing the key is a few multiplications: this probe runs for
/// every packet. Aligned to 8 bytes, not `u128`'s 16, so that it takes 40 bytes, not 48, in
/// every entry of the connection table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C, packed(8))]
pub struct ConnKey {
    lo: u128,
    hi: u128,
    ports: u32,
    pub proto: u8,
}

impl ConnKey {
    /// The key of a packet from `a` to `b`, and whether `a` is the higher endpoint.
    #[inline]
    pub fn new(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> (ConnKey, bool) {
        Self::of_ints(proto, (ip_int(a.0), a.1), (ip_int(b.0), b.1))
    }

    /// Whether `end` is the higher endpoint of the key, as [`ConnKey::new`] says of a packet
    /// from it (so not when both endpoints are the same).
    #[inline]
    pub fn is_hi(&self, end: (IpAddr, u16)) -> bool {
        let hi = self.end_int(true);
        (ip_int(end.0), end.1) == hi && self.end_int(false) != hi
    }

    /// The lower endpoint of the key, or the higher one. An IPv4 address comes back as one,
    /// and so does an IPv4 address mapped into IPv6 (the key does not tell them apart, nor does
    /// the matcher).
    #[inline]
    pub fn end(&self, hi: bool) -> (IpAddr, u16) {
        let (ip, port) = self.end_int(hi);
        let v6 = std::net::Ipv6Addr::from(ip);
        (v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4), port)
    }

    /// The lower endpoint of the key, or the higher one, as integers ([`ip_int`]).
    #[inline]
    fn end_int(&self, hi: bool) -> IntEndpoint {
        if hi {
            (self.hi, self.ports as u16)
        } else {
            (self.lo, (self.ports >> 16) as u16)
        }
    }

    /// [`ConnKey::new`] of addresses already integers ([`ip_int`]).
    #[inline]
    pub fn of_ints(proto: u8, ai: IntEndpoint, bi: IntEndpoint) -> (ConnKey, bool) {
        if ai <= bi {
            (ConnKey { lo: ai.0, hi: bi.0, ports: (ai.1 as u32) << 16 | bi.1 as u32, proto }, false)
        } else {
            (ConnKey { lo: bi.0, hi: ai.0, ports: (bi.1 as u32) << 16 | ai.1 as u32, proto }, true)
        }
    }
}

/// The alerts a connection raised: (indicator, field, on the outer layer). One word, not a
/// `Vec`'s three: nearly every connection raises none, and the table's entries are read for
/// every packet (see [`super::table`]).
#[derive(Clone, Debug, Default)]
// The second allocation is the point: it is made only for a flagged connection.
#[allow(clippy::box_collection)]
pub struct Alerted(Option<Box<Vec<(u32, Field, bool)>>>);

impl Alerted {
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|v| v.is_empty())
    }
    pub fn iter(&self) -> std::slice::Iter<'_, (u32, Field, bool)> {
        self.0.as_deref().map_or(&[][..], |v| v.as_slice()).iter()
    }
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, (u32, Field, bool)> {
        match &mut self.0 {
            Some(v) => v.iter_mut(),
            None => [].iter_mut(),
        }
    }
    pub fn push(&mut self, a: (u32, Field, bool)) {
        self.0.get_or_insert_with(Default::default).push(a);
    }
}

/// When a connection was closed (an RST, or FINs from both sides), if it was: one word, where
/// an `Option<i64>` takes two.
#[derive(Clone, Copy, Debug)]
pub struct Closed(i64);

impl Default for Closed {
    fn default() -> Self {
        Closed(i64::MIN)
    }
}

impl Closed {
    pub fn get(self) -> Option<i64> {
        (self.0 != i64::MIN).then_some(self.0)
    }
    pub fn is_some(self) -> bool {
        self.0 != i64::MIN
    }
    /// Notes the first closing (a later one does not move it). A time of `i64::MIN` is taken
    /// as the one after it.
    pub fn set_once(&mut self, now: i64) {
        if !self.is_some() {
            self.0 = now.max(i64::MIN + 1);
        }
    }
}

/// Application-layer state, allocated only for TCP connections whose first payload did not
/// parse in one segment.
#[derive(Debug, Default)]
pub struct App {
    pub streams: [Stream; 2],
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Closed,
    Timeout,
    Evicted,
    EndOfInput,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Timeout => "timeout",
            End::Evicted => "evicted",
            End::EndOfInput => "end-of-input",
        }
    }
}

/// `repr(C)`, with the fields every packet of an established connection reads or writes first
/// ([`Conn::HOT`] bytes: the key, the counters, the times and flags that say whether it is
/// still open): the table's hint loads only those lines, and the rest (read when a connection
/// starts, carries a payload still to parse, or ends) stays out of the cache.
#[derive(Debug)]
#[repr(C)]
pub struct Conn {
    /// The connection's key, which holds its protocol and its endpoints ([`Conn::client`] and
    /// [`Conn::server`] say which is which). The table files it
    /// ([`super::table::ConnTable::get_or_insert_with`]).
    pub key: ConnKey,
    pub last_us: i64,
    /// Index 0: client to server.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub closed_at: Closed,
    /// FIN seen from each side.
    pub fin: [bool; 2],
    /// Application inspection finished for each direction.
    pub app_done: [bool; 2],
    /// Whether the client (the side that spoke first, or sent the SYN) is the higher endpoint
    /// of the connection's key. The table sets it when it files the connection.
    pub client_hi: bool,
    /// Carries NetFlow/IPFIX or sFlow export packets.
    pub netflow: bool,
    pub vlan_count: u8,
    /// Always [`Live::Yes`]. Its 255 other values are the largest niche in a connection, so a
    /// table slot (an `Option<Conn>`) says whether it is full in this byte, in the hot part,
    /// and a lookup reads no other line. (With an `Option<u32>`'s tag as that niche, in the
    /// cold part, every lookup missed the cache on it.)
    pub live: Live,
    // The fields above are the hot part ([`Conn::HOT`]); those below are read rarely.
    pub first_us: i64,
    pub vlans: [u16; 2],
    /// File the connection was first seen in (index into the run's file list).
    pub file: u32,
    /// Boxed: rare, and the table's entries stay small (48 bytes less each).
    pub tunnel: Option<Box<Tunnel>>,
    /// Alerts raised: (indicator, field, on the outer layer).
    pub alerted: Alerted,
    pub app: Option<Box<App>>,
    /// The initial sequence number each direction's SYN gave, kept here until [`Conn::app`]
    /// is made: most connections never need one (their first messages parse in one segment),
    /// and making one at the SYN cost every TCP connection an allocation.
    pub isn: Isns,
}

/// A full table slot's mark (see [`Conn::live`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Live {
    #[default]
    Yes = 1,
}

/// The initial sequence number each direction's first SYN gave. Not `[Option<u32>; 2]`: an
/// `Option<u32>`'s tag would be the largest niche in a connection (see [`Conn::live`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Isns {
    seq: [u32; 2],
    seen: [bool; 2],
}

impl Isns {
    /// Direction `dir`'s, if its SYN was seen.
    pub fn get(&self, dir: usize) -> Option<u32> {
        self.seen[dir].then_some(self.seq[dir])
    }

    /// Keeps `isn` for direction `dir`, unless it has one.
    pub fn set_once(&mut self, dir: usize, isn: u32) {
        if !self.seen[dir] {
            (self.seen[dir], self.seq[dir]) = (true, isn);
        }
    }
}

// The hot part is at most two cache lines' worth.
const _: () = assert!(Conn::HOT <= 96, "the hot part of a connection grew");

impl Conn {
    /// Bytes at the start of a connection that every packet of it reads (see [`Conn`]).
    pub const HOT: usize = std::mem::offset_of!(Conn, first_us);

    /// A connection with nothing in it (a placeholder, or a start to fill in).
    pub fn blank() -> Conn {
        Conn {
            key: ConnKey::default(),
            first_us: 0,
            last_us: 0,
            pkts: [0; 2],
            bytes: [0; 2],
            vlans: [0; 2],
            vlan_count: 0,
            tunnel: None,
            file: 0,
            alerted: Alerted::default(),
            fin: [false; 2],
            closed_at: Closed::default(),
            app_done: [true; 2],
            app: None,
            isn: Isns::default(),
            netflow: false,
            client_hi: false,
            live: Live::Yes,
        }
    }

    /// A SYN from side `dir` with sequence number `isn`: where that direction's bytes start.
    pub fn syn(&mut self, dir: usize, isn: u32) {
        match self.app.as_mut() {
            Some(app) => app.streams[dir].syn(isn),
            // The first SYN counts, as `Stream::syn` counts it.
            None => {
                self.isn.set_once(dir, isn);
            }
        }
    }

    /// The connection's reassembly state, made (with the SYNs seen so far) if there is none.
    pub fn app_mut(&mut self) -> &mut App {
        let isn = self.isn;
        self.app.get_or_insert_with(|| {
            let mut app = Box::<App>::default();
            for (dir, stream) in app.streams.iter_mut().enumerate() {
                if let Some(isn) = isn.get(dir) {
                    stream.syn(isn);
                }
            }
            app
        })
    }

    pub fn flagged(&self) -> bool {
        !self.alerted.is_empty()
    }

    /// The protocol (the key's).
    #[inline]
    pub fn proto(&self) -> u8 {
        self.key.proto
    }

    /// The side that spoke first (or sent the SYN).
    #[inline]
    pub fn client(&self) -> (IpAddr, u16) {
        self.key.end(self.client_hi)
    }

    /// The other side.
    #[inline]
    pub fn server(&self) -> (IpAddr, u16) {
        self.key.end(!self.client_hi)
    }

    /// Direction index of a packet from `src`: 0 = from the client. Endpoints compare as the
    /// key does (as integers, [`ip_int`]), so this agrees with [`Conn::dir_of_side`].
    #[inline]
    pub fn dir(&self, src: (IpAddr, u16)) -> usize {
        usize::from((ip_int(src.0), src.1) != self.key.end_int(self.client_hi))
    }

    /// Direction index of a packet whose source is the higher endpoint of the key or not (the
    /// second half of [`ConnKey::new`]'s answer): [`Conn::dir`] without the addresses.
    #[inline]
    pub fn dir_of_side(&self, src_hi: bool) -> usize {
        usize::from(src_hi != self.client_hi)
    }

    /// Counts a packet of `wire` bytes from side `dir` at `now`, and, for TCP (`flags`), the
    /// closing it says: an RST closes, so do FINs from both sides.
    #[inline]
    pub fn count(&mut self, dir: usize, wire: usize, now: i64, flags: Option<u8>) {
        self.pkts[dir] += 1;
        self.bytes[dir] += wire as u64;
        self.last_us = now;
        match flags {
            Some(f) if f & 0x04 != 0 => {
                self.closed_at.set_once(now);
            }
            Some(f) if f & 0x01 != 0 => {
                self.fin[dir] = true;
                if self.fin[0] && self.fin[1] {
                    self.closed_at.set_once(now);
                }
            }
            _ => {}
        }
    }
}

/// Timeouts (µs of packet time) and the cap.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_conns: usize,
    pub tcp_idle_us: i64,
    pub udp_idle_us: i64,
    pub other_idle_us: i64,
    /// How long a closed TCP connection lingers to absorb its last ACKs.
    pub closed_linger_us: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 1_000_000,
            tcp_idle_us: 3_600_000_000,
            udp_idle_us: 120_000_000,
            other_idle_us: 60_000_000,
            closed_linger_us: 5_000_000,
        }
    }
}

impl Limits {
    /// Whether `c` has ended by time `now`.
    pub fn expired(&self, c: &Conn, now: i64) -> Option<End> {
        if let Some(at) = c.closed_at.get() {
            return (now.saturating_sub(at) > self.closed_linger_us).then_some(End::Closed);
        }
        let idle = match c.proto() {
            6 => self.tcp_idle_us,
            17 => self.udp_idle_us,
            _ => self.other_idle_us,
        };
        (now.saturating_sub(c.last_us) > idle).then_some(End::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_syn_of_each_side_says_where_its_bytes_start() {
        let mut c = Conn::blank();
        assert_eq!((c.isn.get(0), c.isn.get(1)), (None, None));
        c.syn(0, 100);
        c.syn(0, 200);
        // Zero is a sequence number like any other, not a mark for "none".
        c.syn(1, 0);
        assert_eq!((c.isn.get(0), c.isn.get(1)), (Some(100), Some(0)));
        let app = c.app_mut();
        assert!(app.streams[0].add(101, b"GET", 1 << 16), "the client's bytes follow its first SYN");
        assert!(app.streams[1].add(1, b"HTTP", 1 << 16), "the server's follow its SYN");
    }

    #[test]
    fn the_first_closing_is_kept() {
        let mut c = Conn::blank();
        let flags = |f: u8| Some(f);
        assert_eq!(c.closed_at.get(), None);
        c.count(0, 60, 10, flags(0x01));
        assert_eq!(c.closed_at.get(), None, "one FIN does not close");
        c.count(1, 60, 20, flags(0x11));
        assert_eq!(c.closed_at.get(), Some(20));
        c.count(0, 60, 30, flags(0x04));
        assert_eq!(c.closed_at.get(), Some(20), "a later RST does not move it");
        let mut c = Conn::blank();
        c.count(0, 60, i64::MIN, flags(0x04));
        assert!(c.closed_at.is_some(), "closed at the earliest time there is");
        let limits = Limits::default();
        assert_eq!(limits.expired(&c, i64::MIN + 1 + limits.closed_linger_us + 1), Some(End::Closed));
    }

    #[test]
    fn alerts_are_kept_in_order() {
        let mut a = Alerted::default();
        assert!(a.is_empty() && a.iter().next().is_none());
        a.push((7, Field::IpDst, false));
        a.push((9, Field::TlsSni, true));
        for x in a.iter_mut() {
            x.0 += 1;
        }
        assert!(!a.is_empty());
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), vec![(8, Field::IpDst, false), (10, Field::TlsSni, true)]);
    }

    #[test]
    fn key_is_the_same_both_ways() {
        let a = ("10.0.0.1".parse().unwrap(), 40000);
        let b = ("192.0.2.1".parse().unwrap(), 443);
        let (k1, r1) = ConnKey::new(6, a, b);
        let (k2, r2) = ConnKey::new(6, b, a);
        assert_eq!(k1, k2);
        assert_ne!(r1, r2);
    }

    /// The endpoints come back from the key as they went in, each with its port, in either
    /// order; an IPv4 address mapped into IPv6 comes back as the IPv4 address it is (the key,
    /// like the matcher, does not tell the two apart).
    #[test]
    fn the_key_gives_its_endpoints_back() {
        let ep = |s: &str, port: u16| (s.parse::<IpAddr>().unwrap(), port);
        for (a, b) in [
            (ep("10.0.0.1", 40000), ep("192.0.2.1", 443)),
            (ep("2001:db8::2", 5353), ep("2001:db8::1", 53)),
            (ep("::", 0), ep("255.255.255.255", 65535)),
        ] {
            for (x, y) in [(a, b), (b, a)] {
                let (k, x_hi) = ConnKey::new(17, x, y);
                assert_eq!((k.end(x_hi), k.end(!x_hi)), (x, y));
                let mut c = Conn { key: k, client_hi: x_hi, ..Conn::blank() };
                assert_eq!((c.client(), c.server(), c.proto()), (x, y, 17));
                c.client_hi = !x_hi;
                assert_eq!((c.client(), c.server()), (y, x));
            }
        }
        let (k, hi) = ConnKey::new(6, ep("::ffff:198.51.100.7", 443), ep("2001:db8::9", 50000));
        assert_eq!(k.end(hi), ep("198.51.100.7", 443));
    }
}
