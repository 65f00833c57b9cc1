//! Compiled sets: `iocmatch indicators compile FEEDS... -o feeds.iocset`.
//!
//! Parsing a million-row CSV (refanging, normalising, interning) takes about half a second;
//! a sensor that restarts or reloads should not pay it. A compiled set is the loaded,
//! normalised set in a flat binary form: reading it is a bounds-checked walk over one buffer,
//! then the matcher is built as from any other set.
//!
//! The file carries a version and a checksum of its body (a damaged or foreign file is refused
//! with a clear error), and the path, size and modification time of every source it was built
//! from: when a source changed since, the sources are loaded instead and the compiled file is
//! rewritten. The built-in sets are never part of it (they are in the binary already).

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use super::{Indicator, IndicatorSet, Kind, Provenance, RowMeta};

/// First bytes of a compiled set.
pub const MAGIC: &[u8; 8] = b"IOCSET\0\x01";
const VERSION: u32 = 1;

fn checksum(body: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x0010_C5E7).hash_one(body)
}

/// A source file as it was when the set was compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStamp {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: u128,
}

impl SourceStamp {
    pub fn of(path: &Path) -> std::io::Result<SourceStamp> {
        let m = std::fs::metadata(path)?;
        let mtime_ns = m.modified()?.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        Ok(SourceStamp { path: std::fs::canonicalize(path)?, size: m.len(), mtime_ns })
    }

    /// True when the file is gone or differs from when it was compiled.
    pub fn changed(&self) -> bool {
        SourceStamp::of(&self.path).map(|now| now != *self).unwrap_or(true)
    }
}

/// Every file under the given paths (folders recursively), as `load` reads them.
pub fn stamps(paths: &[PathBuf]) -> std::io::Result<Vec<SourceStamp>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            for f in crate::source::files_under(p)? {
                out.push(SourceStamp::of(&f)?);
            }
        } else {
            out.push(SourceStamp::of(p)?);
        }
    }
    Ok(out)
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v)
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes())
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.u8(1);
                self.str(s)
            }
            None => self.u8(0),
        }
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(v) => {
                self.u8(1);
                self.u64(v as u64)
            }
            None => self.u8(0),
        }
    }
}

/// Serialises `set` (built from `sources`) into the compiled form.
pub fn to_bytes(set: &IndicatorSet, sources: &[SourceStamp]) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(set.indicators.len() * 24 + 4096));
    w.u32(sources.len() as u32);
    for s in sources {
        w.str(&s.path.to_string_lossy());
        w.u64(s.size);
        w.u64(s.mtime_ns as u64);
        w.u64((s.mtime_ns >> 64) as u64);
    }
    w.u32(set.sources.len() as u32);
    for p in &set.sources {
        w.str(&p.set);
        w.str(&p.title);
        w.str(&p.publisher);
        w.opt_str(p.date.as_deref());
        w.opt_str(p.url.as_deref());
        w.opt_str(p.actor.as_deref());
        w.opt_str(p.entity.as_deref());
        w.u32(p.tags.len() as u32);
        p.tags.iter().for_each(|t| w.str(t));
        w.str(&p.file);
        w.str(p.format);
    }
    w.u32(set.metas.len() as u32);
    for m in &set.metas {
        for d in [m.first_seen, m.last_seen, m.valid_from, m.valid_until] {
            w.opt_i64(d);
        }
        w.opt_str(m.role.as_deref());
        w.opt_str(m.confidence.as_deref());
        w.u32(m.tags.len() as u32);
        m.tags.iter().for_each(|t| w.str(t));
        w.u32(m.extra.len() as u32);
        for (k, v) in &m.extra {
            w.str(k);
            w.str(v);
        }
    }
    w.u32(set.indicators.len() as u32);
    for i in &set.indicators {
        w.u8(i.kind as u8);
        w.u8(u8::from(i.exact) | (u8::from(i.port.is_some()) << 1));
        w.0.extend_from_slice(&i.port.unwrap_or(0).to_le_bytes());
        w.u32(i.source);
        w.u32(i.meta);
        w.u32(i.line);
        w.str(&i.value);
    }
    let body = w.0;
    let mut out = Vec::with_capacity(body.len() + 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len()).ok_or("truncated compiled set")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap_or_default()))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }
    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| "invalid text in compiled set".to_string())
    }
    fn opt_str(&mut self) -> Result<Option<&'a str>, String> {
        Ok(if self.u8()? == 1 { Some(self.str()?) } else { None })
    }
    fn opt_i64(&mut self) -> Result<Option<i64>, String> {
        Ok(if self.u8()? == 1 { Some(self.u64()? as i64) } else { None })
    }
    /// A count, bounded by the bytes left (every element takes at least one byte).
    fn count(&mut self) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n > self.b.len() - self.at {
            return Err("corrupt count in compiled set".into());
        }
        Ok(n)
    }
}

/// A compiled set read back: the indicators and the sources they were built from.
#[derive(Debug)]
pub struct Compiled {
    pub set: IndicatorSet,
    pub sources: Vec<SourceStamp>,
}

/// Reads a compiled set into a new set.
pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Compiled, String> {
    let mut set = IndicatorSet::new();
    let sources = append(bytes, file, &mut set, |_| true)?;
    Ok(Compiled { set, sources })
}

/// Reads a compiled set (checking magic, version, length and checksum) and appends its
/// indicators to `set`, unless `use_it` (shown the sources it was built from) says no.
/// Returns those sources.
pub fn append(
    bytes: &[u8],
    file: &str,
    set: &mut IndicatorSet,
    use_it: impl FnOnce(&[SourceStamp]) -> bool,
) -> Result<Vec<SourceStamp>, String> {
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err("not a compiled indicator set".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(format!("compiled with format version {version}, this iocmatch reads {VERSION}: compile it again"));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default()) as usize;
    let body = bytes.get(20..20usize.saturating_add(len)).ok_or("compiled set is truncated")?;
    let sum = bytes.get(20 + len..28 + len).ok_or("compiled set is truncated")?;
    if checksum(body) != u64::from_le_bytes(sum.try_into().unwrap_or_default()) {
        return Err("compiled set is damaged (checksum mismatch): compile it again".into());
    }
    let mut r = R { b: body, at: 0 };
    let mut sources = Vec::new();
    for _ in 0..r.count()? {
        let path = PathBuf::from(r.str()?);
        let size = r.u64()?;
        let lo = r.u64()? as u128;
        let hi = r.u64()? as u128;
        sources.push(SourceStamp { path, size, mtime_ns: hi << 64 | lo });
    }
    if !use_it(&sources) {
        return Ok(sources);
    }
    let src_base = set.sources.len() as u32;
    for _ in 0..r.count()? {
        let (s, title, publisher) = (r.str()?, r.str()?, r.str()?);
        let (date, url, actor, entity) = (r.opt_str()?, r.opt_str()?, r.opt_str()?, r.opt_str()?);
        let tags = (0..r.count()?).map(|_| r.str().map(String::from)).collect::<Result<Vec<_>, _>>()?;
        let orig_file = r.str()?;
        let format = match r.str()? {
            "csv" => "csv",
            "plain" => "plain",
            "zeek-intel" => "zeek-intel",
            "stix" => "stix",
            "misp-json" => "misp-json",
            "misp-csv" => "misp-csv",
            _ => "compiled",
        };
        set.add_source(Provenance {
            set: s.into(),
            title: title.into(),
            publisher: publisher.into(),
            date: date.map(String::from),
            url: url.map(String::from),
            actor: actor.map(String::from),
            entity: entity.map(String::from),
            tags,
            file: if orig_file.is_empty() { file.to_string() } else { orig_file.to_string() },
            format,
        });
    }
    let n_metas = r.count()?;
    let fresh = set.metas.is_empty();
    let mut remap: Vec<u32> = Vec::with_capacity(n_metas);
    for _ in 0..n_metas {
        let mut m = RowMeta {
            first_seen: r.opt_i64()?,
            last_seen: r.opt_i64()?,
            valid_from: r.opt_i64()?,
            valid_until: r.opt_i64()?,
            role: r.opt_str()?.map(Arc::from),
            confidence: r.opt_str()?.map(Arc::from),
            ..RowMeta::default()
        };
        for _ in 0..r.count()? {
            m.tags.push(Arc::from(r.str()?));
        }
        for _ in 0..r.count()? {
            m.extra.push((Arc::from(r.str()?), Arc::from(r.str()?)));
        }
        remap.push(if fresh { set.push_meta(m) } else { set.intern_meta(m) });
    }
    let n = r.count()?;
    set.indicators.reserve_exact(n);
    for _ in 0..n {
        let kind = *Kind::ALL.get(r.u8()? as usize).ok_or("unknown indicator kind in compiled set")?;
        let flags = r.u8()?;
        let port = r.u16()?;
        let (source, meta, line) = (r.u32()?, r.u32()?, r.u32()?);
        let source = source.checked_add(src_base).filter(|s| (*s as usize) < set.sources.len());
        let (Some(source), Some(&meta)) = (source, remap.get(meta as usize)) else {
            return Err("corrupt reference in compiled set".into());
        };
        let value = r.str()?;
        set.indicators.push(Indicator {
            value: value.into(),
            kind,
            exact: flags & 1 != 0,
            port: (flags & 2 != 0).then_some(port),
            source,
            meta,
            line,
        });
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{csv, embedded};

    #[test]
    fn round_trip_keeps_everything_and_damage_is_refused() {
        let mut set = IndicatorSet::new();
        embedded::load_into(&mut set);
        csv::load(
            "indicator,type,match,tags\n1.2.3.4:443,ipv4,,a;b\nexact.example,domain,exact,\n",
            &Arc::from("x.csv"),
            Provenance::default(),
            &mut set,
        );
        let bytes = to_bytes(&set, &[]);
        let back = from_bytes(&bytes, "f.iocset").unwrap().set;
        assert_eq!(back.indicators, set.indicators);
        assert_eq!(back.metas, set.metas);
        assert_eq!(back.sources.len(), set.sources.len());
        assert_eq!(back.sources[0].title, set.sources[0].title);
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert!(from_bytes(&bad, "f").unwrap_err().contains("damaged"));
        assert!(from_bytes(&bytes[..bytes.len() - 3], "f").unwrap_err().contains("truncated"));
        assert!(from_bytes(b"hello", "f").is_err());
    }
}
