//! The compiled, immutable indicator set: built once, shared by every thread, swapped whole on
//! reload.
//!
//! Structures, chosen by measurement (`benches/matcher.rs`, `../shared/reference/crates.md`),
//! all of them flat arrays of plain integers so that a compiled set carries them as they are and
//! a scan uses them in place from the mapped file ([`image`]):
//! - exact addresses: open-addressing tables keyed by the integer address ([`flat`]);
//! - networks: [`ip::RangeTable`], every covering prefix reported;
//! - domains: one hash map probed once per label boundary (`a.b.evil.example`, `b.evil.example`,
//!   `evil.example`, `example`): no allocation, no reversal, and a near miss such as
//!   `xevil.example` never matches because only whole labels are tried;
//! - certificate fingerprints and JA3/JA4: the same string map;
//! - URLs: by host, then by path prefix.
//!
//! Indicators with the same key (one address listed by two advisories, or twice with different
//! roles) are chained through `next`, so a map holds one `u32` per key and every row is reported.
//!
//! A matcher is a list of [`Part`]s: one per compiled set used in place, and one built at load
//! for everything else (the built-in sets, text files). A lookup asks each part in turn; ids run
//! on from one part to the next.

pub mod flat;
pub mod image;
pub mod ip;
mod slab;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::indicators::compiled::{Record, View};
use crate::indicators::{Indicator, IndicatorSet, Kind, Provenance, RowMeta};
use flat::{FlatMap, HashSlot, V4Slot, V6Slot};
use ip::RangeTable;
use slab::Slab;

/// Index of an indicator in the matcher (see [`Matcher::indicator`]).
pub type Id = u32;
const END: u32 = u32::MAX;
/// Set on a table value whose chain is one indicator that needs no check on a hit (an address
/// without a port, a domain that matches subdomains too): a hit then needs no further memory
/// access (the common case, and a cache miss saved per hit).
const SINGLE: u32 = 1 << 31;
/// Ids stay below this (the top bit is the `SINGLE` flag, and `u32::MAX` marks a free table slot).
pub const MAX_INDICATORS: usize = (SINGLE - 1) as usize;

const SEED: u64 = 0x243F_6A88_85A3_08D3;

fn str_key(kind: Kind, s: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(SEED ^ kind as u64).hash_one(s)
}

/// The compiled set: one part per compiled file used in place, and one built here for
/// everything else (the built-in sets, text files).
pub struct Matcher {
    parts: Vec<Part>,
    len: usize,
    /// Fewest labels of any domain indicator: shorter suffixes are never probed.
    min_labels: usize,
    allow: Option<Box<Matcher>>,
    /// Whether [`Matcher::prefetch_ip`] is worth its cost (see [`PREFETCH_ABOVE`]).
    prefetch: bool,
}

/// Address tables (their one-byte tags, which every probe reads) above this size are warmed by
/// [`Matcher::prefetch_ip`]; smaller ones answer from the core's own cache sooner than the
/// prefetch costs. Measured on Zeek conn.log, one core: tags of 1.1 MB (1 M indicators), the
/// prefetch cost 3-5 %; tags of 8.5 MB (10 M indicators), it saved 11 %.
const PREFETCH_ABOVE: usize = 4 << 20;

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher").field("indicators", &self.len).field("parts", &self.parts.len()).finish()
    }
}

/// A block of indicators and their lookup tables; its ids are `base..base + len` in the matcher.
pub struct Part {
    base: Id,
    store: Store,
    t: Tables,
    /// Which /24s hold an IPv4 indicator (built on load, also for a compiled set).
    v4_filter: ip::V4Prefilter,
    /// URL indicators as `host/path` patterns (port dropped), searched with Aho-Corasick so
    /// one pass over a request URL finds every indicator, including on subdomains.
    urls: Option<UrlTable>,
}

/// Where a part's indicators live.
enum Store {
    Owned(IndicatorSet),
    Mapped(Mapped),
}

/// The indicators of a compiled set, read in place.
struct Mapped {
    recs: Slab<Record>,
    arena: Slab<u8>,
    sources: Vec<Arc<Provenance>>,
    metas: Vec<Arc<RowMeta>>,
}

impl Store {
    fn len(&self) -> usize {
        match self {
            Store::Owned(s) => s.indicators.len(),
            Store::Mapped(m) => m.recs.len(),
        }
    }
    #[inline]
    fn port(&self, i: u32) -> Option<u16> {
        match self {
            Store::Owned(s) => s.indicators[i as usize].port,
            Store::Mapped(m) => m.recs[i as usize].port(),
        }
    }
    /// Kind, value and exactness (for checks on hits that share a table key).
    fn key_of(&self, i: u32) -> (Kind, &str, bool) {
        match self {
            Store::Owned(s) => {
                let ind = &s.indicators[i as usize];
                (ind.kind, &ind.value, ind.exact)
            }
            Store::Mapped(m) => {
                let r = &m.recs[i as usize];
                (r.kind(), View::value(&m.arena, r), r.exact())
            }
        }
    }
    fn indicator(&self, i: u32) -> Cow<'_, Indicator> {
        match self {
            Store::Owned(s) => Cow::Borrowed(&s.indicators[i as usize]),
            Store::Mapped(m) => {
                let r = &m.recs[i as usize];
                Cow::Owned(Indicator {
                    value: View::value(&m.arena, r).into(),
                    kind: r.kind(),
                    exact: r.exact(),
                    port: r.port(),
                    source: r.source,
                    meta: r.meta,
                    line: r.line,
                })
            }
        }
    }
    fn sources(&self) -> &[Arc<Provenance>] {
        match self {
            Store::Owned(s) => &s.sources,
            Store::Mapped(m) => &m.sources,
        }
    }
    fn metas(&self) -> &[Arc<RowMeta>] {
        match self {
            Store::Owned(s) => &s.metas,
            Store::Mapped(m) => &m.metas,
        }
    }
    fn source_of(&self, i: u32) -> u32 {
        match self {
            Store::Owned(s) => s.indicators[i as usize].source,
            Store::Mapped(m) => m.recs[i as usize].source,
        }
    }
    fn meta_of(&self, i: u32) -> u32 {
        match self {
            Store::Owned(s) => s.indicators[i as usize].meta,
            Store::Mapped(m) => m.recs[i as usize].meta,
        }
    }
}

/// The lookup tables of a part (written into compiled sets as they are, see [`image`]).
pub struct Tables {
    /// Chains of ids sharing a key: `next[id]` is an older id (always smaller) or `END`.
    next: Slab<u32>,
    v4: FlatMap<V4Slot>,
    v6: FlatMap<V6Slot>,
    /// Domains and hashes, keyed by [`str_key`].
    strings: FlatMap<HashSlot>,
    cidr4: RangeTable<u32>,
    cidr6: RangeTable<u128>,
    /// Fewest labels of any domain indicator (`u32::MAX`: none).
    min_labels: u32,
    /// Bit `k` set when some indicator is of kind `Kind::ALL[k]`.
    kinds: u32,
    /// The URL indicators, in id order (their table is rebuilt on load).
    url_ids: Slab<u32>,
}

impl Tables {
    /// Builds the tables of `set`. Values were normalised by the loaders, so they parse here.
    pub fn build(set: &IndicatorSet) -> Tables {
        let n = set.indicators.len();
        let mut next = vec![END; n];
        let counts = set.counts_by_kind();
        let count = |k: Kind| counts.iter().find(|c| c.0 == k).map(|c| c.1).unwrap_or(0);
        let mut v4 = flat::Builder::<V4Slot>::with_capacity(count(Kind::Ipv4));
        let mut v6 = flat::Builder::<V6Slot>::with_capacity(count(Kind::Ipv6));
        let mut strings = flat::Builder::<HashSlot>::with_capacity(
            count(Kind::Domain) + count(Kind::Sha1Cert) + count(Kind::Sha256Cert) + count(Kind::Ja3) + count(Kind::Ja4),
        );
        let mut url_ids: Vec<Id> = Vec::new();
        // Networks listed more than once are chained like addresses.
        let mut nets4: HashMap<(u32, u8), Id> = HashMap::new();
        let mut nets6: HashMap<(u128, u8), Id> = HashMap::new();
        let mut min_labels = u32::MAX;
        let mut kinds = 0u32;
        for (i, ind) in set.indicators.iter().enumerate() {
            let id = i as Id;
            kinds |= 1 << ind.kind as u32;
            match ind.kind {
                Kind::Ipv4 | Kind::Ipv6 => match ind.value.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => v4.insert(u32::from(a), id, &mut next),
                    Ok(IpAddr::V6(a)) => v6.insert(u128::from(a), id, &mut next),
                    Err(_) => debug_assert!(false, "unnormalised address {}", ind.value),
                },
                Kind::Cidr => match ind.value.parse::<ipnet::IpNet>() {
                    Ok(ipnet::IpNet::V4(n)) => {
                        if let Some(old) = nets4.insert((u32::from(n.network()), n.prefix_len()), id) {
                            next[i] = old;
                        }
                    }
                    Ok(ipnet::IpNet::V6(n)) => {
                        if let Some(old) = nets6.insert((u128::from(n.network()), n.prefix_len()), id) {
                            next[i] = old;
                        }
                    }
                    Err(_) => debug_assert!(false, "unnormalised network {}", ind.value),
                },
                Kind::Url => url_ids.push(id),
                k => {
                    if k == Kind::Domain {
                        min_labels = min_labels.min(ind.value.split('.').count() as u32);
                    }
                    strings.insert(str_key(k, &ind.value), id, &mut next)
                }
            }
        }
        // URL ids sharing a pattern are chained when the URL table is built.
        UrlTable::chain(&url_ids, |id| set.indicators[id as usize].value.as_ref(), &mut next);
        let inds = &set.indicators;
        v4.map_values(|h| if next[h as usize] == END && inds[h as usize].port.is_none() { h | SINGLE } else { h });
        v6.map_values(|h| if next[h as usize] == END && inds[h as usize].port.is_none() { h | SINGLE } else { h });
        // A domain key with one indicator that matches subdomains too needs no check of the
        // indicator on a hit: the 64-bit key is trusted (a false match needs a collision of
        // foldhash over the domain names, about n / 2^64 per probe).
        strings.map_values(|h| {
            let ind = &inds[h as usize];
            if next[h as usize] == END && ind.kind == Kind::Domain && !ind.exact {
                h | SINGLE
            } else {
                h
            }
        });
        let cidr4 = RangeTable::build(
            nets4
                .into_iter()
                .map(|((a, l), id)| {
                    let (f, t) = ip::v4_bounds(a, l);
                    (f, t, id)
                })
                .collect(),
        );
        let cidr6 = RangeTable::build(
            nets6
                .into_iter()
                .map(|((a, l), id)| {
                    let (f, t) = ip::v6_bounds(a, l);
                    (f, t, id)
                })
                .collect(),
        );
        Tables {
            next: Slab::owned(next),
            v4: v4.finish(),
            v6: v6.finish(),
            strings: strings.finish(),
            cidr4,
            cidr6,
            min_labels,
            kinds,
            url_ids: Slab::owned(url_ids),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.next.heap_bytes()
            + self.v4.heap_bytes()
            + self.v6.heap_bytes()
            + self.strings.heap_bytes()
            + self.cidr4.heap_bytes()
            + self.cidr6.heap_bytes()
            + self.url_ids.heap_bytes()
    }
}

impl Part {
    /// A part built from a loaded set.
    pub fn owned(set: IndicatorSet) -> Part {
        let t = Tables::build(&set);
        let store = Store::Owned(set);
        Part::assemble(store, t)
    }

    fn assemble(store: Store, t: Tables) -> Part {
        let v4_filter = ip::V4Prefilter::build(t.v4.keys(), &t.cidr4);
        Part::assemble_with(store, t, v4_filter)
    }

    /// A part from its tables and their prefilter (built, or read from a compiled set).
    fn assemble_with(store: Store, t: Tables, v4_filter: ip::V4Prefilter) -> Part {
        let urls = UrlTable::build(&t.url_ids, |id| store.key_of(id).1.to_string(), &t.next);
        Part { base: 0, store, t, urls, v4_filter }
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.len() == 0
    }

    /// True when the indicators are read in place from a compiled set.
    pub fn is_mapped(&self) -> bool {
        matches!(self.store, Store::Mapped(_))
    }

    #[inline]
    fn walk(&self, head: Id, f: &mut impl FnMut(Id)) {
        let mut id = head;
        while id != END {
            f(self.base + id);
            id = self.t.next[id as usize];
        }
    }

    #[inline]
    fn exact_hits(&self, exact: Option<Id>, port: u16, f: &mut impl FnMut(Id)) {
        match exact {
            Some(h) if h & SINGLE != 0 => f(self.base + (h & !SINGLE)),
            Some(h) => {
                let mut id = h;
                while id != END {
                    if self.store.port(id).is_none_or(|p| p == port) {
                        f(self.base + id);
                    }
                    id = self.t.next[id as usize];
                }
            }
            None => {}
        }
    }
}

impl Matcher {
    /// Compiles `set`.
    pub fn new(set: IndicatorSet) -> Matcher {
        Matcher::from_parts(vec![Part::owned(set)])
    }

    /// A matcher over several parts (ids follow the order given).
    pub fn from_parts(mut parts: Vec<Part>) -> Matcher {
        parts.retain(|p| !p.is_empty());
        let mut base = 0usize;
        for p in &mut parts {
            p.base = base as Id;
            base += p.len();
        }
        let min_labels = parts.iter().map(|p| p.t.min_labels as usize).min().unwrap_or(usize::MAX);
        let tags: usize = parts.iter().map(|p| p.t.v4.tags().len() + p.t.v6.tags().len()).sum();
        Matcher { parts, len: base, min_labels, allow: None, prefetch: tags > PREFETCH_ABOVE }
    }

    /// Adds an allowlist: observed values it covers never match.
    pub fn with_allowlist(mut self, allow: IndicatorSet) -> Matcher {
        if !allow.indicators.is_empty() {
            self.allow = Some(Box::new(Matcher::new(allow)));
        }
        self
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    #[inline]
    fn part(&self, id: Id) -> (&Part, u32) {
        let p = self.parts.iter().rev().find(|p| id >= p.base).unwrap_or(&self.parts[0]);
        (p, id - p.base)
    }

    /// The indicator with this id (copied out of a compiled set, borrowed otherwise).
    pub fn indicator(&self, id: Id) -> Cow<'_, Indicator> {
        let (p, i) = self.part(id);
        p.store.indicator(i)
    }

    /// The document the indicator comes from. (A compiled set's records are not checked at
    /// start-up: one naming a source the file does not hold, which only a hostile file can,
    /// gets an empty one.)
    pub fn provenance(&self, id: Id) -> &Arc<Provenance> {
        static NONE: std::sync::LazyLock<Arc<Provenance>> = std::sync::LazyLock::new(Default::default);
        let (p, i) = self.part(id);
        p.store.sources().get(p.store.source_of(i) as usize).unwrap_or(&NONE)
    }

    /// The per-row facts (dates, role, tags) of the indicator (empty ones for a record that
    /// names none the file holds, as for [`Matcher::provenance`]).
    pub fn meta(&self, id: Id) -> &Arc<RowMeta> {
        static NONE: std::sync::LazyLock<Arc<RowMeta>> = std::sync::LazyLock::new(Default::default);
        let (p, i) = self.part(id);
        p.store.metas().get(p.store.meta_of(i) as usize).unwrap_or(&NONE)
    }

    /// Every source document, part by part.
    pub fn sources(&self) -> impl Iterator<Item = &Arc<Provenance>> {
        self.parts.iter().flat_map(|p| p.store.sources())
    }

    /// True when some indicator is of kind `k`.
    pub fn has_kind(&self, k: Kind) -> bool {
        self.parts.iter().any(|p| p.t.kinds & (1 << k as u32) != 0)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when some indicator could match a name (domains), so callers can skip parsing.
    pub fn has_names(&self) -> bool {
        self.parts.iter().any(|p| !p.t.strings.is_empty() || p.urls.is_some())
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

    /// Starts loading what a lookup of `ip` reads first (for callers that know the next
    /// addresses while handling the current ones: the probe then finds them in cache). Does
    /// nothing when the tables are small enough to stay in cache anyway.
    #[inline]
    pub fn prefetch_ip(&self, ip: IpAddr) {
        if !self.prefetch {
            return;
        }
        for p in &self.parts {
            match ip {
                IpAddr::V4(a) => p.t.v4.prefetch(u32::from(a)),
                IpAddr::V6(a) => match a.to_ipv4_mapped() {
                    Some(a) => p.t.v4.prefetch(u32::from(a)),
                    None => p.t.v6.prefetch(u128::from(a)),
                },
            }
        }
    }

    /// Starts loading the one line nearly every lookup of a new connection's IPv4 address ends
    /// at: the filter's word for it (see [`ip::V4Prefilter`]), past the caches with a large set
    /// (2 MiB). For callers that see a connection start (a SYN) a few packets ahead of handling
    /// it. `ip` is an address as [`crate::decode::peek::ip_int`] gives it.
    #[inline]
    pub fn prefetch_start(&self, ip: u128) {
        if ip >> 32 == 0xffff {
            for p in &self.parts {
                p.v4_filter.prefetch(ip as u32);
            }
        }
    }

    fn lookup_v4(&self, a: Ipv4Addr, port: u16, f: &mut impl FnMut(Id)) {
        self.lookup_addr(IpAddr::V4(a), port, f, |p| {
            let k = u32::from(a);
            if !p.v4_filter.may_hold(k) {
                return (None, &[][..]);
            }
            (p.t.v4.get(k), if p.t.cidr4.is_empty() { &[][..] } else { p.t.cidr4.lookup(k) })
        })
    }

    fn lookup_v6(&self, a: Ipv6Addr, port: u16, f: &mut impl FnMut(Id)) {
        self.lookup_addr(IpAddr::V6(a), port, f, |p| {
            let k = u128::from(a);
            (p.t.v6.get(k), if p.t.cidr6.is_empty() { &[][..] } else { p.t.cidr6.lookup(k) })
        })
    }

    /// The hits of `ip` in every part, given how to probe a part (exact table, networks): the
    /// allowlist is asked once, at the first part with a hit.
    #[inline]
    fn lookup_addr<'p>(
        &'p self,
        ip: IpAddr,
        port: u16,
        f: &mut impl FnMut(Id),
        probe: impl Fn(&'p Part) -> (Option<Id>, &'p [Id]),
    ) {
        let mut allowed = None;
        for p in &self.parts {
            let (exact, nets) = probe(p);
            if exact.is_none() && nets.is_empty() {
                continue;
            }
            if *allowed.get_or_insert_with(|| self.allow.as_ref().is_some_and(|al| al.any_ip(ip))) {
                return;
            }
            p.exact_hits(exact, port, f);
            for &h in nets.iter().rev() {
                p.walk(h, f);
            }
        }
    }

    fn any_ip(&self, ip: IpAddr) -> bool {
        let mut hit = false;
        match ip {
            IpAddr::V4(a) => self.lookup_v4(a, 0, &mut |_| hit = true),
            IpAddr::V6(a) => self.lookup_v6(a, 0, &mut |_| hit = true),
        }
        // Address-with-port allow entries allow the address whatever the port.
        hit || self.parts.iter().any(|p| match ip {
            IpAddr::V4(a) => p.t.v4.get(u32::from(a)).is_some(),
            IpAddr::V6(a) => p.t.v6.get(u128::from(a)).is_some(),
        })
    }

    /// Every domain indicator matching `name` (already lowercase, no trailing dot): the name
    /// itself and each parent domain, most specific first; exact-only indicators match only
    /// the name itself.
    #[inline]
    pub fn lookup_domain(&self, name: &str, f: &mut impl FnMut(Id)) {
        if self.min_labels == usize::MAX || name.is_empty() {
            return;
        }
        let mut first = true;
        let mut hits = false;
        let mut rest = name;
        let mut labels = name.bytes().filter(|&b| b == b'.').count() + 1;
        while labels >= self.min_labels {
            let key = str_key(Kind::Domain, rest);
            for p in &self.parts {
                if labels < p.t.min_labels as usize {
                    continue;
                }
                let Some(h) = p.t.strings.get(key) else { continue };
                if !hits {
                    if self.allow.as_ref().is_some_and(|al| al.any_domain(name)) {
                        return;
                    }
                    hits = true;
                }
                let whole = first;
                if h & SINGLE != 0 {
                    f(p.base + (h & !SINGLE));
                } else {
                    p.walk(h, &mut |id| {
                        let (kind, value, exact) = p.store.key_of(id - p.base);
                        if kind == Kind::Domain && value == rest && (whole || !exact) {
                            f(id)
                        }
                    });
                }
            }
            // A label is a few bytes: a plain loop finds its end sooner than `str::find`'s
            // search, which was 1.5 % of a scan's instructions.
            match rest.bytes().position(|b| b == b'.') {
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
        let key = str_key(kind, value);
        for p in &self.parts {
            if let Some(h) = p.t.strings.get(key) {
                p.walk(h & !SINGLE, &mut |id| {
                    let (k, v, _) = p.store.key_of(id - p.base);
                    if k == kind && v == value {
                        f(id)
                    }
                });
            }
        }
    }

    /// Whether any set holds URL indicators: without any, a request's URL need not be built.
    pub fn has_urls(&self) -> bool {
        self.parts.iter().any(|p| p.urls.is_some())
    }

    /// URL indicators matching a request URL written as `host/path?query` (host lowercase,
    /// without port): same host and the indicator's path is a prefix of the request's.
    pub fn lookup_url(&self, url: &str, f: &mut impl FnMut(Id)) {
        let host_end = url.find(['/', '?']).unwrap_or(url.len());
        let mut allowed: Option<bool> = None;
        for part in &self.parts {
            let Some(t) = &part.urls else { continue };
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
                part.walk(t.heads[p], f);
            }
        }
    }

    /// Approximate heap bytes of the lookup structures and the indicators (a compiled set's
    /// mapped pages are the page cache's, not counted).
    pub fn heap_bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|p| {
                let ind = match &p.store {
                    Store::Owned(s) => {
                        s.indicators.iter().map(|i| i.value.len()).sum::<usize>()
                            + s.indicators.capacity() * std::mem::size_of::<Indicator>()
                    }
                    Store::Mapped(_) => 0,
                };
                ind + p.t.heap_bytes() + p.v4_filter.heap_bytes()
            })
            .sum()
    }
}

/// URL patterns for [`Matcher::lookup_url`].
struct UrlTable {
    ac: aho_corasick::AhoCorasick,
    /// Per pattern: the chain of indicators with that pattern (local ids), and the length of
    /// its host.
    heads: Vec<Id>,
    host_len: Vec<usize>,
}

/// `host/path` of a URL indicator (port dropped): what the table searches for.
fn url_pattern(v: &str) -> String {
    let host = url_host(v);
    let path = &v[v.find(['/', '?']).unwrap_or(v.len())..];
    format!("{host}{path}")
}

impl UrlTable {
    /// Chains URL indicators with the same pattern through `next` (at build time).
    fn chain<'a>(ids: &[Id], value: impl Fn(Id) -> &'a str, next: &mut [Id]) {
        let mut head: HashMap<String, Id> = HashMap::new();
        for &id in ids {
            if let Some(old) = head.insert(url_pattern(value(id)), id) {
                next[id as usize] = old;
            }
        }
    }

    /// The table over chained URL indicators: one pattern per chain head (the newest id).
    fn build(ids: &[Id], value: impl Fn(Id) -> String, next: &[Id]) -> Option<UrlTable> {
        let in_chain: std::collections::HashSet<Id> =
            ids.iter().map(|&id| next.get(id as usize).copied().unwrap_or(END)).collect();
        let (mut pats, mut heads, mut host_len) = (Vec::new(), Vec::new(), Vec::new());
        for &id in ids.iter().filter(|id| !in_chain.contains(id)) {
            let v = value(id);
            host_len.push(url_host(&v).len());
            heads.push(id);
            pats.push(url_pattern(&v));
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
