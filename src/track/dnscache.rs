//! DNS correlation: addresses (and CNAME targets) that an answer gave for a flagged name.
//!
//! When `c2.evil.example` is an indicator and a resolver answers `203.0.113.7`, a later
//! connection to `203.0.113.7` reached the actor even though no advisory lists that address:
//! it is flagged `dns.resolved` with the name it came from. Bounded: past `cap` entries the
//! oldest half is dropped (counted).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use crate::matcher::Id;

/// What a resolved address or name came from.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The domain indicators the name matched.
    pub ids: Arc<[Id]>,
    /// The name that was resolved.
    pub name: Arc<str>,
    /// Expiry (µs since epoch); `i64::MAX` when TTLs are not honoured (offline replay).
    pub until: i64,
}

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct DnsCache {
    addrs: Map<IpAddr, Resolved>,
    names: Map<Box<str>, Resolved>,
    order: VecDeque<Key>,
    cap: usize,
    pub evicted: u64,
    pub inserted: u64,
}

#[derive(Debug)]
enum Key {
    Addr(IpAddr),
    Name(Box<str>),
}

impl DnsCache {
    pub fn new(cap: usize) -> Self {
        DnsCache { cap: cap.max(2), ..Default::default() }
    }

    pub fn insert_addr(&mut self, ip: IpAddr, r: Resolved) {
        self.inserted += 1;
        if self.addrs.insert(ip, r).is_none() {
            self.order.push_back(Key::Addr(ip));
            self.bound();
        }
    }

    pub fn insert_name(&mut self, name: &str, r: Resolved) {
        self.inserted += 1;
        if self.names.insert(name.into(), r).is_none() {
            self.order.push_back(Key::Name(name.into()));
            self.bound();
        }
    }

    fn bound(&mut self) {
        while self.addrs.len() + self.names.len() > self.cap {
            match self.order.pop_front() {
                Some(Key::Addr(a)) => {
                    self.addrs.remove(&a);
                }
                Some(Key::Name(n)) => {
                    self.names.remove(&n);
                }
                None => break,
            }
            self.evicted += 1;
        }
    }

    /// The flagged name an address was resolved from, if still valid at `now`.
    #[inline]
    pub fn addr(&self, ip: &IpAddr, now: i64) -> Option<&Resolved> {
        if self.addrs.is_empty() {
            return None;
        }
        self.addrs.get(ip).filter(|r| r.until >= now)
    }

    /// The flagged name a CNAME target came from.
    pub fn name(&self, name: &str, now: i64) -> Option<&Resolved> {
        if self.names.is_empty() {
            return None;
        }
        self.names.get(name).filter(|r| r.until >= now)
    }

    pub fn len(&self) -> usize {
        self.addrs.len() + self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let mut c = DnsCache::new(4);
        let r = |until| Resolved { ids: Arc::from(vec![1]), name: Arc::from("x.example"), until };
        for i in 0..10u8 {
            c.insert_addr(IpAddr::from([10, 0, 0, i]), r(100));
        }
        assert_eq!(c.len(), 4);
        assert_eq!(c.evicted, 6);
        assert!(c.addr(&IpAddr::from([10, 0, 0, 9]), 50).is_some());
        assert!(c.addr(&IpAddr::from([10, 0, 0, 9]), 101).is_none(), "expired");
        assert!(c.addr(&IpAddr::from([10, 0, 0, 0]), 50).is_none(), "evicted");
    }
}
