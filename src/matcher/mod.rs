//! The compiled, immutable indicator set: built once, shared by every thread, swapped whole on
//! reload.
//!
//! Structures, chosen by measurement (`benches/matcher.rs`, `../shared/reference/crates.md`):
//! - exact addresses: hash maps keyed by the integer address;
//! - networks: [`ip::RangeTable`], every covering prefix reported;
//! - domains: one hash map probed once per label boundary (`a.b.evil.example`, `b.evil.example`,
//!   `evil.example`, `example`): no allocation, no reversal, and a near miss such as
//!   `xevil.example` never matches because only whole labels are tried;
//! - certificate fingerprints and JA3/JA4: the same string map;
//! - URLs: by host, then by path prefix.
//!
//! Indicators with the same key (one address listed by two advisories, or twice with different
//! roles) are chained through `next`, so a map holds one `u32` per key and every row is reported.

pub mod ip;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::indicators::{Indicator, IndicatorSet, Kind};
use ip::RangeTable;

/// Index of an indicator in [`Matcher::set`].
pub type Id = u32;
const END: u32 = u32::MAX;
/// Set on an address-map value whose chain is one indicator without a port: a hit then
/// needs no further memory access (the common case, and a cache miss saved per hit).
const SINGLE: u32 = 1 << 31;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// A hasher for keys that are already hashes.
#[derive(Clone, Copy, Default)]
struct PreHashed;
#[derive(Default)]
struct PreHasher(u64);
impl std::hash::Hasher for PreHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("PreHashed maps take u64 keys only")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}
impl BuildHasher for PreHashed {
    type Hasher = PreHasher;
    fn build_hasher(&self) -> PreHasher {
        PreHasher(0)
    }
}

const SEED: u64 = 0x243F_6A88_85A3_08D3;

fn str_key(kind: Kind, s: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(SEED ^ kind as u64).hash_one(s)
}

/// The compiled set.
pub struct Matcher {
    set: IndicatorSet,
    next: Vec<Id>,
    v4: FastMap<u32, Id>,
    v6: FastMap<u128, Id>,
    cidr4: RangeTable<u32>,
    cidr6: RangeTable<u128>,
    /// Domains and hashes, keyed by [`str_key`].
    strings: HashMap<u64, Id, PreHashed>,
    /// Fewest labels of any domain indicator: shorter suffixes are never probed.
    min_labels: usize,
    /// URL indicators as `host/path` patterns (port dropped), searched with Aho-Corasick so
    /// one pass over a request URL finds every indicator, including on subdomains.
    urls: Option<UrlTable>,
    allow: Option<Box<Matcher>>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher").field("indicators", &self.set.indicators.len()).finish()
    }
}

fn parse_net(v: &str) -> Option<ipnet::IpNet> {
    v.parse().ok()
}

impl Matcher {
    /// Compiles `set`. Values were normalised by the loaders, so they parse here.
    pub fn new(set: IndicatorSet) -> Matcher {
        let n = set.indicators.len();
        let mut m = Matcher {
            next: vec![END; n],
            v4: FastMap::default(),
            v6: FastMap::default(),
            cidr4: RangeTable::build(Vec::new()),
            cidr6: RangeTable::build(Vec::new()),
            strings: HashMap::with_hasher(PreHashed),
            urls: None,
            allow: None,
            min_labels: usize::MAX,
            set: IndicatorSet::new(),
        };
        let counts = set.counts_by_kind();
        let count = |k: Kind| counts.iter().find(|c| c.0 == k).map(|c| c.1).unwrap_or(0);
        m.v4.reserve(count(Kind::Ipv4));
        m.strings.reserve(
            count(Kind::Domain) + count(Kind::Sha1Cert) + count(Kind::Sha256Cert) + count(Kind::Ja3) + count(Kind::Ja4),
        );
        let mut url_heads: Vec<Id> = Vec::new();
        let mut nets4: FastMap<(u32, u8), Id> = FastMap::default();
        let mut nets6: FastMap<(u128, u8), Id> = FastMap::default();
        fn chain<K: std::hash::Hash + Eq, S: BuildHasher>(
            map: &mut HashMap<K, Id, S>,
            next: &mut [Id],
            key: K,
            id: Id,
        ) {
            match map.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    next[id as usize] = *e.get();
                    e.insert(id);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(id);
                }
            }
        }
        for (i, ind) in set.indicators.iter().enumerate() {
            let id = i as Id;
            match ind.kind {
                Kind::Ipv4 | Kind::Ipv6 => match ind.value.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => chain(&mut m.v4, &mut m.next, u32::from(a), id),
                    Ok(IpAddr::V6(a)) => chain(&mut m.v6, &mut m.next, u128::from(a), id),
                    Err(_) => debug_assert!(false, "unnormalised address {}", ind.value),
                },
                Kind::Cidr => match parse_net(&ind.value) {
                    Some(ipnet::IpNet::V4(n)) => {
                        chain(&mut nets4, &mut m.next, (u32::from(n.network()), n.prefix_len()), id)
                    }
                    Some(ipnet::IpNet::V6(n)) => {
                        chain(&mut nets6, &mut m.next, (u128::from(n.network()), n.prefix_len()), id)
                    }
                    None => debug_assert!(false, "unnormalised network {}", ind.value),
                },
                Kind::Url => url_heads.push(id),
                k => {
                    if k == Kind::Domain {
                        m.min_labels = m.min_labels.min(ind.value.split('.').count());
                    }
                    chain(&mut m.strings, &mut m.next, str_key(k, &ind.value), id)
                }
            }
        }
        let single = |head: &mut Id, next: &[Id], inds: &[Indicator]| {
            if next[*head as usize] == END && inds[*head as usize].port.is_none() {
                *head |= SINGLE;
            }
        };
        m.urls = UrlTable::build(&url_heads, &set.indicators, &mut m.next);
        m.v4.values_mut().for_each(|h| single(h, &m.next, &set.indicators));
        m.v6.values_mut().for_each(|h| single(h, &m.next, &set.indicators));
        // A domain key with one indicator that matches subdomains too needs no check of the
        // indicator on a hit: the 64-bit key is trusted (a false match needs a collision of
        // foldhash over the domain names, about n / 2^64 per probe).
        m.strings.values_mut().for_each(|h| {
            let ind = &set.indicators[*h as usize];
            if m.next[*h as usize] == END && ind.kind == Kind::Domain && !ind.exact {
                *h |= SINGLE;
            }
        });
        m.cidr4 = RangeTable::build(
            nets4
                .into_iter()
                .map(|((a, l), id)| {
                    let (f, t) = ip::v4_bounds(a, l);
                    (f, t, id)
                })
                .collect(),
        );
        m.cidr6 = RangeTable::build(
            nets6
                .into_iter()
                .map(|((a, l), id)| {
                    let (f, t) = ip::v6_bounds(a, l);
                    (f, t, id)
                })
                .collect(),
        );
        m.set = set;
        m
    }

    /// Adds an allowlist: observed values it covers never match.
    pub fn with_allowlist(mut self, allow: IndicatorSet) -> Matcher {
        if !allow.indicators.is_empty() {
            self.allow = Some(Box::new(Matcher::new(allow)));
        }
        self
    }

    pub fn set(&self) -> &IndicatorSet {
        &self.set
    }

    pub fn indicator(&self, id: Id) -> &Indicator {
        &self.set.indicators[id as usize]
    }

    pub fn len(&self) -> usize {
        self.set.indicators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.indicators.is_empty()
    }

    /// True when some indicator could match a name (domains), so callers can skip parsing.
    pub fn has_names(&self) -> bool {
        !self.strings.is_empty() || self.urls.is_some()
    }

    #[inline]
    fn walk(&self, head: Id, f: &mut impl FnMut(Id)) {
        let mut id = head;
        while id != END {
            f(id);
            id = self.next[id as usize];
        }
    }

    /// Every indicator matching address `ip` seen with port `port`: the exact address, then
    /// every covering network. Address-with-port indicators need the port to agree.
    #[inline]
    pub fn lookup_ip(&self, ip: IpAddr, port: u16, f: &mut impl FnMut(Id)) {
        match ip {
            IpAddr::V4(a) => self.lookup_v4(a, port, f),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.lookup_v4(v4, port, f),
                None => self.lookup_v6(a, port, f),
            },
        }
    }

    fn port_ok(&self, id: Id, port: u16) -> bool {
        self.set.indicators[id as usize].port.is_none_or(|p| p == port)
    }

    fn lookup_v4(&self, a: Ipv4Addr, port: u16, f: &mut impl FnMut(Id)) {
        let k = u32::from(a);
        let exact = self.v4.get(&k).copied();
        let nets = if self.cidr4.is_empty() { &[][..] } else { self.cidr4.lookup(k) };
        if exact.is_none() && nets.is_empty() {
            return;
        }
        if self.allow.as_ref().is_some_and(|al| al.any_ip(IpAddr::V4(a))) {
            return;
        }
        self.exact_hits(exact, port, f);
        for &h in nets.iter().rev() {
            self.walk(h, f);
        }
    }

    fn lookup_v6(&self, a: Ipv6Addr, port: u16, f: &mut impl FnMut(Id)) {
        let k = u128::from(a);
        let exact = self.v6.get(&k).copied();
        let nets = if self.cidr6.is_empty() { &[][..] } else { self.cidr6.lookup(k) };
        if exact.is_none() && nets.is_empty() {
            return;
        }
        if self.allow.as_ref().is_some_and(|al| al.any_ip(IpAddr::V6(a))) {
            return;
        }
        self.exact_hits(exact, port, f);
        for &h in nets.iter().rev() {
            self.walk(h, f);
        }
    }

    #[inline]
    fn exact_hits(&self, exact: Option<Id>, port: u16, f: &mut impl FnMut(Id)) {
        match exact {
            Some(h) if h & SINGLE != 0 => f(h & !SINGLE),
            Some(h) => self.walk(h, &mut |id| {
                if self.port_ok(id, port) {
                    f(id)
                }
            }),
            None => {}
        }
    }

    fn any_ip(&self, ip: IpAddr) -> bool {
        let mut hit = false;
        match ip {
            IpAddr::V4(a) => self.lookup_v4(a, 0, &mut |_| hit = true),
            IpAddr::V6(a) => self.lookup_v6(a, 0, &mut |_| hit = true),
        }
        // Address-with-port allow entries allow the address whatever the port.
        hit || match ip {
            IpAddr::V4(a) => self.v4.contains_key(&u32::from(a)),
            IpAddr::V6(a) => self.v6.contains_key(&u128::from(a)),
        }
    }

    /// Every domain indicator matching `name` (already lowercase, no trailing dot): the name
    /// itself and each parent domain, most specific first; exact-only indicators match only
    /// the name itself.
    #[inline]
    pub fn lookup_domain(&self, name: &str, f: &mut impl FnMut(Id)) {
        if self.strings.is_empty() || name.is_empty() {
            return;
        }
        let mut first = true;
        let mut hits = false;
        let mut rest = name;
        let mut labels = name.bytes().filter(|&b| b == b'.').count() + 1;
        while labels >= self.min_labels {
            if let Some(&h) = self.strings.get(&str_key(Kind::Domain, rest)) {
                if !hits {
                    if self.allow.as_ref().is_some_and(|al| al.any_domain(name)) {
                        return;
                    }
                    hits = true;
                }
                let whole = first;
                if h & SINGLE != 0 {
                    f(h & !SINGLE);
                } else {
                    self.walk(h, &mut |id| {
                        let ind = &self.set.indicators[id as usize];
                        if ind.kind == Kind::Domain && *ind.value == *rest && (whole || !ind.exact) {
                            f(id)
                        }
                    });
                }
            }
            match rest.find('.') {
                Some(i) => rest = &rest[i + 1..],
                None => break,
            }
            labels -= 1;
            first = false;
        }
    }

    fn any_domain(&self, name: &str) -> bool {
        let mut hit = false;
        self.lookup_domain(name, &mut |_| hit = true);
        hit
    }

    /// Certificate fingerprints and JA3/JA4 hashes (lowercase hex).
    pub fn lookup_hash(&self, kind: Kind, value: &str, f: &mut impl FnMut(Id)) {
        if let Some(&h) = self.strings.get(&str_key(kind, value)) {
            self.walk(h & !SINGLE, &mut |id| {
                let ind = &self.set.indicators[id as usize];
                if ind.kind == kind && *ind.value == *value {
                    f(id)
                }
            });
        }
    }

    /// URL indicators matching a request URL written as `host/path?query` (host lowercase,
    /// without port): same host and the indicator's path is a prefix of the request's.
    pub fn lookup_url(&self, url: &str, f: &mut impl FnMut(Id)) {
        let Some(t) = &self.urls else { return };
        let host_end = url.find(['/', '?']).unwrap_or(url.len());
        let mut allowed: Option<bool> = None;
        for hit in t.ac.find_overlapping_iter(url) {
            let (start, p) = (hit.start(), hit.pattern().as_usize());
            // The pattern's host must be the URL's host or a parent domain of it.
            let aligned = start + t.host_len[p] == host_end && (start == 0 || url.as_bytes()[start - 1] == b'.');
            if !aligned {
                continue;
            }
            let ok = *allowed.get_or_insert_with(|| {
                let host = &url[..host_end];
                !self
                    .allow
                    .as_ref()
                    .is_some_and(|al| al.any_domain(host) || host.parse::<IpAddr>().is_ok_and(|ip| al.any_ip(ip)))
            });
            if !ok {
                return;
            }
            self.walk(t.heads[p], f);
        }
    }

    /// Approximate heap bytes of the lookup structures and the indicators.
    pub fn heap_bytes(&self) -> usize {
        let ind: usize = self.set.indicators.iter().map(|i| i.value.len()).sum::<usize>()
            + self.set.indicators.capacity() * std::mem::size_of::<Indicator>();
        let map = |cap: usize, entry: usize| cap * (entry + 1) * 8 / 7;
        ind + self.next.capacity() * 4
            + map(self.v4.capacity(), 8)
            + map(self.v6.capacity(), 20)
            + map(self.strings.capacity(), 12)
            + self.cidr4.heap_bytes()
            + self.cidr6.heap_bytes()
    }
}

/// URL patterns for [`Matcher::lookup_url`].
struct UrlTable {
    ac: aho_corasick::AhoCorasick,
    /// Per pattern: the chain of indicators with that pattern, and the length of its host.
    heads: Vec<Id>,
    host_len: Vec<usize>,
}

impl UrlTable {
    fn build(ids: &[Id], inds: &[Indicator], next: &mut [Id]) -> Option<UrlTable> {
        let mut index: HashMap<String, usize> = HashMap::new();
        let (mut pats, mut heads, mut host_len) = (Vec::new(), Vec::new(), Vec::new());
        for &id in ids {
            let v = &inds[id as usize].value;
            let host = url_host(v);
            let path = &v[v.find(['/', '?']).unwrap_or(v.len())..];
            let pat = format!("{host}{path}");
            match index.get(&pat) {
                Some(&p) => {
                    next[id as usize] = heads[p];
                    heads[p] = id;
                }
                None => {
                    index.insert(pat.clone(), pats.len());
                    host_len.push(host.len());
                    heads.push(id);
                    pats.push(pat);
                }
            }
        }
        if pats.is_empty() {
            return None;
        }
        let ac = aho_corasick::AhoCorasick::new(&pats).ok()?;
        Some(UrlTable { ac, heads, host_len })
    }
}

/// The host part (without port) of `host[:port]/path`.
fn url_host(v: &str) -> &str {
    let end = v.find(['/', '?']).unwrap_or(v.len());
    let hp = &v[..end];
    if hp.starts_with('[') {
        return hp.find(']').map(|i| &hp[1..i]).unwrap_or(hp);
    }
    match hp.rfind(':') {
        Some(i) if hp[..i].find(':').is_none() => &hp[..i],
        _ => hp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{plain, Provenance};
    use std::sync::Arc;

    fn matcher(lines: &str) -> Matcher {
        let mut set = IndicatorSet::new();
        plain::load(lines, &Arc::from("t"), Provenance::default(), &mut set);
        assert_eq!(set.errors(), 0, "{:?}", set.diagnostics);
        Matcher::new(set)
    }

    fn ips(m: &Matcher, ip: &str, port: u16) -> Vec<String> {
        let mut v = Vec::new();
        m.lookup_ip(ip.parse().unwrap(), port, &mut |id| v.push(m.indicator(id).value.to_string()));
        v
    }

    fn doms(m: &Matcher, name: &str) -> Vec<String> {
        let mut v = Vec::new();
        m.lookup_domain(name, &mut |id| v.push(m.indicator(id).value.to_string()));
        v
    }

    #[test]
    fn addresses_networks_and_ports() {
        let m = matcher("1.2.3.4\n10.0.0.0/8\n10.1.0.0/16\n2001:db8::1\n2001:db8::/32\n5.6.7.8:443\n");
        assert_eq!(ips(&m, "1.2.3.4", 1), ["1.2.3.4"]);
        assert_eq!(ips(&m, "10.1.2.3", 1), ["10.1.0.0/16", "10.0.0.0/8"]);
        assert!(ips(&m, "11.0.0.1", 1).is_empty());
        assert_eq!(ips(&m, "2001:db8::1", 1), ["2001:db8::1", "2001:db8::/32"]);
        assert_eq!(ips(&m, "::ffff:1.2.3.4", 1), ["1.2.3.4"]);
        assert_eq!(ips(&m, "5.6.7.8", 443), ["5.6.7.8"]);
        assert!(ips(&m, "5.6.7.8", 80).is_empty());
    }

    #[test]
    fn domains_match_subdomains_on_label_boundaries_only() {
        let mut set = IndicatorSet::new();
        plain::load("w8510.com\n", &Arc::from("t"), Provenance::default(), &mut set);
        crate::indicators::csv::load(
            "indicator,type\nexact.example,domain-exact\n",
            &Arc::from("c"),
            Provenance::default(),
            &mut set,
        );
        let m = Matcher::new(set);
        assert_eq!(doms(&m, "w8510.com"), ["w8510.com"]);
        assert_eq!(doms(&m, "acqv.w8510.com"), ["w8510.com"]);
        assert!(doms(&m, "xw8510.com").is_empty());
        assert!(doms(&m, "w8510.com.cn").is_empty());
        assert!(doms(&m, "com").is_empty());
        assert_eq!(doms(&m, "exact.example"), ["exact.example"]);
        assert!(doms(&m, "www.exact.example").is_empty());
    }

    #[test]
    fn duplicates_are_all_reported() {
        let m = matcher("1.2.3.4 # first\n1.2.3.4 # second\nevil.example\nEVIL.example # again\n");
        assert_eq!(ips(&m, "1.2.3.4", 0).len(), 2);
        assert_eq!(doms(&m, "a.evil.example").len(), 2);
    }

    #[test]
    fn urls_and_hashes() {
        let m = matcher(
            "http://evil.example/gate.php\nhttp://evil.example:8080/x\nda39a3ee5e6b4b0d3255bfef95601890afd80709\n",
        );
        let mut v = Vec::new();
        m.lookup_url("evil.example/gate.php?id=1", &mut |id| v.push(id));
        m.lookup_url("evil.example/x/y", &mut |id| v.push(id));
        m.lookup_url("evil.example/other", &mut |id| v.push(id));
        assert_eq!(v, [0, 1]);
        let mut w = Vec::new();
        m.lookup_url("www.evil.example/gate.php", &mut |id| w.push(id));
        m.lookup_url("xevil.example/gate.php", &mut |id| w.push(id));
        m.lookup_url("other.example/evil.example/gate.php", &mut |id| w.push(id));
        assert_eq!(w, [0], "subdomains match; near misses and paths that merely contain it do not");
        let mut h = Vec::new();
        m.lookup_hash(Kind::Sha1Cert, "da39a3ee5e6b4b0d3255bfef95601890afd80709", &mut |id| h.push(id));
        m.lookup_hash(Kind::Sha256Cert, "da39a3ee5e6b4b0d3255bfef95601890afd80709", &mut |id| h.push(id));
        assert_eq!(h, [2]);
    }

    #[test]
    fn allowlist_suppresses() {
        let mut allow = IndicatorSet::new();
        plain::load("10.1.2.3\ngood.evil.example\n", &Arc::from("a"), Provenance::default(), &mut allow);
        let m = matcher("10.0.0.0/8\nevil.example\n").with_allowlist(allow);
        assert!(ips(&m, "10.1.2.3", 0).is_empty());
        assert_eq!(ips(&m, "10.1.2.4", 0).len(), 1);
        assert!(doms(&m, "x.good.evil.example").is_empty());
        assert_eq!(doms(&m, "bad.evil.example").len(), 1);
    }
}
