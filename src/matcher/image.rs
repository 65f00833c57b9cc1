//! The matcher's tables inside a compiled set, and their use in place.
//!
//! `indicators compile` writes, after the set's records, every array of [`Tables`] as it is in
//! memory, and the IPv4 prefilter. A scan maps the file and points the tables at those bytes:
//! with a million indicators start-up is the file's checksum and checks of the tables' shapes
//! and chains, instead of a rebuild of the hash tables. A damaged file fails the checksum; a
//! hostile one with a good checksum is still never followed out of bounds, since the hash
//! tables check each id as a lookup reads it. Pages are shared by every process that maps the
//! same file.
//!
//! A hash function that changed between the build that compiled the file and this one would
//! make every lookup miss; the file carries a fingerprint of the hashes, and a mismatch falls
//! back to building the tables from the records (with a warning to compile again).

use std::path::PathBuf;
use std::sync::Arc;

use super::flat::{FlatMap, HashSlot, Slot, V4Slot, V6Slot};
use super::ip::{Arrays, RangeTable, V4Prefilter};
use super::slab::{Backing, Slab};
use super::{str_key, Mapped, Part, Store, Tables, END, SINGLE};
use crate::indicators::compiled::{self, SourceStamp, View};
use crate::indicators::load::{self, LoadError};
use crate::indicators::{IndicatorSet, Kind};

/// Sections of the tables, in file order.
const SECTIONS: usize = 18;
/// The last, the IPv4 prefilter: a set of format 2 has every section before it.
const PREFILTER: usize = SECTIONS - 1;

/// Changes when any hash the tables depend on changes.
fn fingerprint() -> u64 {
    let parts = [
        str_key(Kind::Domain, "fingerprint.iocmatch.example"),
        str_key(Kind::Ja3, "0123456789abcdef0123456789abcdef"),
        V4Slot::hash(0xC000_0201),
        V6Slot::hash(0x2001_0db8 << 96 | 1),
        HashSlot::hash(0x0123_4567_89ab_cdef),
    ];
    parts.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, p| (h ^ p).wrapping_mul(0x0000_0100_0000_01b3))
}

fn bytes<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// The tables as byte sections for [`compiled::to_bytes`].
fn sections(t: &Tables, n: usize) -> Vec<Vec<u8>> {
    let fp = fingerprint();
    let scalars: [u32; 8] = [n as u32, t.min_labels, t.kinds, fp as u32, (fp >> 32) as u32, 0, 0, 0];
    let (s4, l4, p4, o4) = t.cidr4.arrays();
    let (s6, l6, p6, o6) = t.cidr6.arrays();
    vec![
        bytes(&scalars),
        bytes(&t.next),
        bytes(t.v4.slots()),
        bytes(t.v6.slots()),
        bytes(t.strings.slots()),
        bytes(s4),
        bytes(l4),
        bytes(p4),
        bytes(o4),
        bytes(s6),
        bytes(l6),
        bytes(p6),
        bytes(o6),
        bytes(&t.url_ids),
        bytes(t.v4.tags()),
        bytes(t.v6.tags()),
        bytes(t.strings.tags()),
        bytes(stored_filter(t).words()),
    ]
}

/// IPv4 addresses and ranges from which a compiled set carries its prefilter (2 MiB) rather
/// than have every scan build it: below this the build takes well under a millisecond.
const STORED_FILTER: usize = 1 << 16;

/// The prefilter a compiled set carries: none (empty) for a small set.
fn stored_filter(t: &Tables) -> V4Prefilter {
    if t.v4.len() + t.cidr4.arrays().0.len() >= STORED_FILTER {
        V4Prefilter::build(t.v4.keys(), &t.cidr4)
    } else {
        V4Prefilter::default()
    }
}

/// The compiled form of `set`, built from `sources`: records and tables.
pub fn compile(set: &IndicatorSet, sources: &[SourceStamp]) -> Result<Vec<u8>, String> {
    if set.indicators.len() > super::MAX_INDICATORS {
        return Err(format!("more than {} indicators: split the set", super::MAX_INDICATORS));
    }
    compiled::to_bytes(set, sources, &sections(&Tables::build(set), set.indicators.len()))
}

fn slab<T: bytemuck::Pod>(map: &Backing, b: &[u8]) -> Result<Slab<T>, String> {
    Slab::mapped(map, b).ok_or_else(|| "misaligned section in compiled set".to_string())
}

/// A range table from its four sections (starts, lists, spans, pool).
fn ranges<K: super::ip::Key>(map: &Backing, s: &[&[u8]], limit: u32) -> Result<RangeTable<K>, String> {
    let arrays =
        Arrays { starts: slab(map, s[0])?, lists: slab(map, s[1])?, spans: slab(map, s[2])?, pool: slab(map, s[3])? };
    RangeTable::from_arrays(arrays, limit)
}

impl Part {
    /// The part of a compiled set opened in place from `map` (which `view` was read from).
    pub fn mapped(map: &Backing, view: &View<'_>) -> Result<Part, String> {
        let recs = slab(map, view.records)?;
        let n = recs.len();
        if view.tables.len() != SECTIONS && view.tables.len() != PREFILTER {
            return Err("compiled set has no matcher tables".into());
        }
        let s = &view.tables;
        let scalars: Slab<u32> = slab(map, s[0])?;
        let &[count, min_labels, kinds, fp_lo, fp_hi, ..] = &scalars[..] else {
            return Err("corrupt matcher tables in compiled set".into());
        };
        if count as usize != n {
            return Err("corrupt matcher tables in compiled set (count)".into());
        }
        if (fp_hi as u64) << 32 | fp_lo as u64 != fingerprint() {
            return Err("compiled by an iocmatch that hashes differently".into());
        }
        let limit = n as u32;
        let next: Slab<u32> = slab(map, s[1])?;
        // Every chain link points to an older (smaller) id: chains end, and never loop.
        if next.len() != n || next.iter().enumerate().any(|(i, &x)| x != END && x as usize >= i) {
            return Err("corrupt chains in compiled set".into());
        }
        let t = Tables {
            next,
            v4: FlatMap::from_slab(slab(map, s[2])?, slab(map, s[14])?, limit, SINGLE)?,
            v6: FlatMap::from_slab(slab(map, s[3])?, slab(map, s[15])?, limit, SINGLE)?,
            strings: FlatMap::from_slab(slab(map, s[4])?, slab(map, s[16])?, limit, SINGLE)?,
            cidr4: ranges(map, &s[5..9], limit)?,
            cidr6: ranges(map, &s[9..13], limit)?,
            min_labels,
            kinds,
            url_ids: slab(map, s[13])?,
        };
        if t.url_ids.iter().any(|&id| id >= limit) {
            return Err("corrupt URL list in compiled set".into());
        }
        let store = Store::Mapped(Mapped {
            recs,
            arena: slab(map, view.arena)?,
            sources: view.sources.clone(),
            metas: view.metas.clone(),
        });
        let stored = match s.get(PREFILTER) {
            Some(b) => slab(map, b)?,
            None => Slab::default(),
        };
        let v4_filter =
            if stored.is_empty() { V4Prefilter::build(t.v4.keys(), &t.cidr4) } else { V4Prefilter::from_slab(stored)? };
        Ok(Part::assemble_with(store, t, v4_filter))
    }
}

/// A buffer aligned for every table (the sections are aligned from the start of the file).
struct Aligned(Vec<u128>, usize);

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.0)[..self.1]
    }
}

/// The matcher of a compiled set held in memory (copied into an aligned buffer and used in
/// place there, as a mapped file would be): for tests and the fuzz harness.
pub fn from_bytes(bytes: &[u8]) -> Result<super::Matcher, String> {
    let mut words = vec![0u128; bytes.len().div_ceil(16)];
    bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    let backing: Backing = Arc::new(Aligned(words, bytes.len()));
    let view = compiled::open((*backing).as_ref(), "memory")?;
    Ok(super::Matcher::from_parts(vec![Part::mapped(&backing, &view)?]))
}

/// Maps a compiled set whole, every page read in at once (the checksum reads them all anyway).
///
/// Compiled sets are replaced by renaming a new file over them ([`compiled::write`]), so a
/// running scan keeps its old file; a compiled set truncated in place while mapped would end
/// the run with SIGBUS, as with any mapped file.
fn map_file(path: &std::path::Path) -> std::io::Result<memmap2::Mmap> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the map is only read; see above for a file truncated underneath.
    unsafe { memmap2::MmapOptions::new().populate().map(&file) }
}

/// Maps the compiled sets that loading left in `set.to_map` and returns them as parts. A set
/// whose sources changed is loaded from them into `set` and rewritten; one whose tables
/// cannot be used (an older build's hashing) is copied into `set`, with a warning.
pub fn resolve(set: &mut IndicatorSet, opts: &load::Options) -> Result<Vec<Part>, LoadError> {
    let mut parts = Vec::new();
    for path in std::mem::take(&mut set.to_map) {
        let shown = path.display().to_string();
        let file: Arc<str> = Arc::from(shown.as_str());
        let map: Backing = Arc::new(map_file(&path).map_err(|e| LoadError(format!("{shown}: cannot read: {e}")))?);
        let view = compiled::open((*map).as_ref(), &shown).map_err(|e| LoadError(format!("{shown}: {e}")))?;
        if let Some(changed) = view.stamps.iter().find(|s| s.changed()) {
            let changed: PathBuf = changed.path.clone();
            let (fresh, sources) = load::load_sources(&file, &changed, &view.stamps, set, opts)?;
            drop(view);
            match compiled::stamps(&sources)
                .map_err(|e| e.to_string())
                .and_then(|st| compile(&fresh, &st))
                .and_then(|b| compiled::write(&path, &b).map_err(|e| e.to_string()))
            {
                Ok(()) => set.note(&file, "compiled set rebuilt from its sources".into()),
                Err(e) => set.warn(&file, None, format!("could not rewrite the compiled set: {e}")),
            }
            set.extend(fresh);
            continue;
        }
        match Part::mapped(&map, &view) {
            Ok(p) => parts.push(p),
            Err(e) => {
                set.warn(&file, None, format!("{e}: building its tables now (compile it again to skip this)"));
                compiled::append((*map).as_ref(), &shown, set, |_| true)
                    .map_err(|e| LoadError(format!("{shown}: {e}")))?;
            }
        }
    }
    Ok(parts)
}

/// Loads `paths` (and the built-in sets unless told not to) for matching: compiled sets are
/// used in place. Problems are in the returned set's diagnostics; its indicators are the ones
/// not from a compiled set.
pub fn load(paths: &[PathBuf], opts: &load::Options) -> Result<(IndicatorSet, Vec<Part>), LoadError> {
    let opts = load::Options { map_compiled: true, ..opts.clone() };
    let mut set = load::load_all(paths, &opts)?;
    let parts = resolve(&mut set, &opts)?;
    Ok((set, parts))
}

impl super::Matcher {
    /// The matcher over what [`load`] returned: the compiled sets' parts first, then the rest.
    pub fn from_loaded(set: IndicatorSet, mut parts: Vec<Part>) -> super::Matcher {
        if !set.indicators.is_empty() {
            parts.push(Part::owned(set));
        }
        super::Matcher::from_parts(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{csv, embedded, Provenance};
    use crate::matcher::Matcher;

    fn set() -> IndicatorSet {
        let mut set = IndicatorSet::new();
        embedded::load_into(&mut set);
        csv::load(
            "indicator,type,match\n1.2.3.4:443,ipv4,\n1.2.3.4,ipv4,\n10.0.0.0/8,cidr,\n10.1.0.0/16,cidr,\n\
             2001:db8::/32,cidr,\n2001:db8::5,ipv6,\nexact.example,domain,exact\nw8510.com,domain,\n\
             http://evil.example/gate.php,url,\nda39a3ee5e6b4b0d3255bfef95601890afd80709,sha1cert,\n",
            &Arc::from("x.csv"),
            Provenance::default(),
            &mut set,
        );
        set
    }

    fn mapped(bytes: &[u8]) -> Result<Matcher, String> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        let map: Backing = Arc::new(map_file(f.path()).unwrap());
        let view = compiled::open((*map).as_ref(), "t.iocset")?;
        Ok(Matcher::from_parts(vec![Part::mapped(&map, &view)?]))
    }

    /// Every lookup a scan makes, as text, for comparing two matchers.
    fn answers(m: &Matcher) -> Vec<String> {
        let mut out = Vec::new();
        let mut show = |what: &str, ids: Vec<u32>| {
            let v: Vec<String> =
                ids.iter().map(|&id| crate::indicators::export::display_value(&m.indicator(id))).collect();
            out.push(format!(
                "{what}: {v:?} {:?}",
                ids.iter().map(|&id| m.provenance(id).set.clone()).collect::<Vec<_>>()
            ));
        };
        for (ip, port) in [("1.2.3.4", 443), ("1.2.3.4", 80), ("10.1.2.3", 1), ("2001:db8::5", 1), ("9.9.9.9", 1)] {
            let mut ids = Vec::new();
            m.lookup_ip(ip.parse().unwrap(), port, &mut |id| ids.push(id));
            show(ip, ids);
        }
        for name in ["exact.example", "a.exact.example", "x.w8510.com", "evil.example", "com"] {
            let mut ids = Vec::new();
            m.lookup_domain(name, &mut |id| ids.push(id));
            show(name, ids);
        }
        let mut ids = Vec::new();
        m.lookup_url("www.evil.example/gate.php?x", &mut |id| ids.push(id));
        show("url", ids);
        let mut ids = Vec::new();
        m.lookup_hash(Kind::Sha1Cert, "da39a3ee5e6b4b0d3255bfef95601890afd80709", &mut |id| ids.push(id));
        show("hash", ids);
        out
    }

    #[test]
    fn a_mapped_compiled_set_answers_as_the_built_one() {
        let built = Matcher::new(set());
        let bytes = compile(&set(), &[]).unwrap();
        let m = mapped(&bytes).unwrap();
        assert!(m.parts()[0].is_mapped());
        assert_eq!(m.len(), built.len());
        let a = answers(&m);
        assert_eq!(a, answers(&built));
        assert!(a[0].contains("1.2.3.4:443") && a[2].contains("10.1.0.0/16"), "{a:?}");
        assert!(m.has_kind(Kind::Url) && !m.has_kind(Kind::Ja4));
        // Split in two parts (a compiled set plus the built-in sets), the answers stay.
        let mut text = IndicatorSet::new();
        embedded::load_into(&mut text);
        let extra = mapped(&bytes).unwrap().parts;
        let both = Matcher::from_loaded(text, extra);
        assert_eq!(both.parts().len(), 2);
        let (mut ids, mut alone) = (Vec::new(), Vec::new());
        both.lookup_domain("x.w8510.com", &mut |id| ids.push(id));
        m.lookup_domain("x.w8510.com", &mut |id| alone.push(id));
        assert_eq!(ids.len(), alone.len() + 1, "the compiled copies and the built-in row all report");
        assert!(ids.iter().any(|&id| both.provenance(id).file.contains("embedded") || id >= alone.len() as u32));
    }

    #[test]
    fn a_large_set_carries_its_ipv4_prefilter() {
        // 70 k addresses, each in a /24 of its own, and a network.
        let mut text = String::from("indicator,type\n192.0.2.0/24,cidr\n");
        for i in 0..70_000u32 {
            text.push_str(&format!("{},ipv4\n", std::net::Ipv4Addr::from(0x0a00_0001 + (i << 8))));
        }
        let mut big = IndicatorSet::new();
        csv::load(&text, &Arc::from("big.csv"), Provenance::default(), &mut big);
        let m = mapped(&compile(&big, &[]).unwrap()).unwrap();
        let built = Matcher::from_parts(vec![Part::owned(big)]);
        let (filter, want) = (&m.parts[0].v4_filter, &built.parts[0].v4_filter);
        assert_eq!(filter.heap_bytes(), 0, "the prefilter is read from the file, not built");
        assert!(filter.words() == want.words(), "and is the one a build gives");
        let probes = [("10.0.0.1", 1), ("10.3.232.1", 1), ("11.17.111.1", 1), ("11.17.111.2", 0), ("11.17.112.1", 0)];
        for (ip, hits) in probes.into_iter().chain([("192.0.2.77", 1), ("12.0.0.1", 0)]) {
            let mut ids = Vec::new();
            m.lookup_ip(ip.parse().unwrap(), 1, &mut |id| ids.push(id));
            assert_eq!(ids.len(), hits, "{ip}");
        }
        // A small set's is built at load: the file carries none.
        let small = mapped(&compile(&set(), &[]).unwrap()).unwrap();
        assert!(small.parts[0].v4_filter.heap_bytes() > 0);
    }

    #[test]
    fn a_set_compiled_in_format_2_is_still_read() {
        // Format 2: the same sections without the prefilter, and 2 in the header.
        let set = set();
        let mut v2 =
            compiled::to_bytes(&set, &[], &sections(&Tables::build(&set), set.indicators.len())[..PREFILTER]).unwrap();
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        let old = from_bytes(&v2).unwrap();
        assert_eq!(answers(&old), answers(&Matcher::from_parts(vec![Part::owned(set)])));
        v2[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert!(from_bytes(&v2).unwrap_err().contains("format version 1"));
    }

    #[test]
    fn records_pointing_nowhere_are_read_as_empty_not_followed() {
        // Every record of a sealed file (a good checksum) names a source, facts and text the
        // file does not hold, and a kind that does not exist.
        let bytes = compile(&set(), &[]).unwrap();
        let view = compiled::open(&bytes, "t").unwrap();
        let at = view.records.as_ptr() as usize - bytes.as_ptr() as usize;
        let mut recs: Vec<compiled::Record> = bytemuck::pod_collect_to_vec(view.records);
        for r in &mut recs {
            (r.off, r.source, r.meta, r.kind) = (u32::MAX - 3, 9_999, 9_999, 200);
        }
        let mut hostile = bytes.clone();
        hostile[at..at + view.records.len()].copy_from_slice(bytemuck::cast_slice(&recs));
        let hostile = compiled::seal(&hostile[24..hostile.len() - 8]);
        // A scan reads them in place and gets empty values, sources and facts.
        let m = from_bytes(&hostile).unwrap();
        let mut ids = Vec::new();
        m.lookup_ip("10.1.2.3".parse().unwrap(), 1, &mut |id| ids.push(id));
        assert!(!ids.is_empty(), "the tables still find the network");
        for id in ids {
            assert_eq!(&*m.indicator(id).value, "");
            assert_eq!((m.provenance(id).title.as_str(), m.meta(id).tags.len()), ("", 0));
        }
        answers(&m);
        // Copying them into a set (`compiled::append`) checks them all, and refuses the file.
        assert!(compiled::from_bytes(&hostile, "t").unwrap_err().contains("corrupt record"));
    }

    #[test]
    fn damaged_tables_are_refused_not_followed() {
        let bytes = compile(&set(), &[]).unwrap();
        // Flip bits all over the body, fixing the checksum each time: what passes the
        // checks must still answer without panicking.
        let body = &bytes[24..bytes.len() - 8];
        for at in (0..body.len()).step_by(7) {
            let mut b = body.to_vec();
            b[at] ^= 0x81;
            if let Ok(m) = from_bytes(&compiled::seal(&b)) {
                answers(&m);
            }
        }
        assert!(from_bytes(&compiled::seal(body)).is_ok());
    }
}
