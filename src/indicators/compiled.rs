//! Compiled sets: `iocmatch indicators compile FEEDS... -o feeds.iocset`.
//!
//! Parsing a million-row CSV (refanging, normalising, interning) takes about half a second,
//! and building the matcher's hash tables for it another quarter; a sensor that restarts or
//! reloads should not pay either. A compiled set is the loaded, normalised set as flat arrays
//! (fixed-size records and one arena of values) followed by the matcher's own lookup tables
//! (`matcher::image`), every array aligned, so a scan maps the file and uses it in place: the
//! cost of start-up is the checksum and a bounds check of every record and table.
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
/// 2: records and value arena as flat arrays, plus the matcher's tables (used in place).
/// 3: the IPv4 prefilter too, so that a scan need not build it. Format 2 is still read (its
/// prefilter is built at load): a set compiled before this change keeps working.
const VERSION: u32 = 3;
const OLDEST: u32 = 2;
/// Written in native order: a file from a machine of the other byte order is refused.
const ORDER: u32 = 0x0102_0304;
const HEADER: usize = 24;
/// Alignment of every array section, from the start of the file (a mapping starts on a page).
const ALIGN: usize = 16;

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

/// Every file under the given paths (folders recursively), as `load` reads them. A source read
/// from a pipe (`<(curl ...)`) leaves no file to look at again: the set keeps what it read then.
/// An error names the path.
pub fn stamps(paths: &[PathBuf]) -> std::io::Result<Vec<SourceStamp>> {
    fn named(p: &Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
        move |e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            for f in crate::source::files_under(p).map_err(named(p))?.files {
                out.push(SourceStamp::of(&f).map_err(named(&f))?);
            }
        } else if std::fs::metadata(p).is_err() || crate::source::rereadable(p) {
            out.push(SourceStamp::of(p).map_err(named(p))?);
        }
    }
    Ok(out)
}

/// One indicator as stored: its value is `arena[off..off + len]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Record {
    pub off: u32,
    pub len: u32,
    pub source: u32,
    pub meta: u32,
    pub line: u32,
    pub kind: u8,
    /// Bit 0: exact (domains); bit 1: `port` is set.
    pub flags: u8,
    pub port: u16,
}

impl Record {
    pub fn kind(&self) -> Kind {
        Kind::ALL.get(self.kind as usize).copied().unwrap_or(Kind::Domain)
    }
    pub fn exact(&self) -> bool {
        self.flags & 1 != 0
    }
    pub fn port(&self) -> Option<u16> {
        (self.flags & 2 != 0).then_some(self.port)
    }
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
    /// An array section: its length in bytes, padding to [`ALIGN`] (counted from the start of
    /// the file), then the bytes.
    fn section(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        while !(HEADER + self.0.len()).is_multiple_of(ALIGN) {
            self.0.push(0);
        }
        self.0.extend_from_slice(bytes);
    }
}

/// Serialises `set` (built from `sources`) into the compiled form, with `tables`: the
/// matcher's lookup arrays for it (opaque here, see `matcher::image`).
pub fn to_bytes(set: &IndicatorSet, sources: &[SourceStamp], tables: &[Vec<u8>]) -> Result<Vec<u8>, String> {
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
    let mut records = Vec::with_capacity(set.indicators.len());
    let mut arena = Vec::new();
    for i in &set.indicators {
        let off = u32::try_from(arena.len()).map_err(|_| "indicator values exceed 4 GiB: split the set")?;
        arena.extend_from_slice(i.value.as_bytes());
        records.push(Record {
            off,
            len: i.value.len() as u32,
            source: i.source,
            meta: i.meta,
            line: i.line,
            kind: i.kind as u8,
            flags: u8::from(i.exact) | (u8::from(i.port.is_some()) << 1),
            port: i.port.unwrap_or(0),
        });
    }
    w.u32(records.len() as u32);
    w.section(bytemuck::cast_slice(&records));
    w.section(&arena);
    w.u32(tables.len() as u32);
    tables.iter().for_each(|t| w.section(t));
    Ok(seal(&w.0))
}

/// A compiled set's file around `body`: header, body, checksum. (The fuzz harness seals
/// arbitrary bodies with it, so that mutations reach the checks behind the checksum.)
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + HEADER + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&ORDER.to_ne_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&checksum(body).to_le_bytes());
    out
}

/// Writes a compiled set next to `path` and renames it over `path`: a scan that has the old
/// file mapped keeps reading the old file, never a half-written one.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    // A temporary file is private; a compiled set is as readable as any file written here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode()).unwrap_or(0o644);
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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
    fn section(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.u64()?).map_err(|_| "corrupt section length in compiled set")?;
        while !(HEADER + self.at).is_multiple_of(ALIGN) {
            self.take(1)?;
        }
        self.take(n)
    }
}

/// A compiled set opened in place: what it was built from, its sources and per-row facts
/// (decoded, they are few), and its arrays as byte slices of the file.
#[derive(Debug)]
pub struct View<'a> {
    pub stamps: Vec<SourceStamp>,
    pub sources: Vec<Arc<Provenance>>,
    pub metas: Vec<Arc<RowMeta>>,
    /// `[Record]`, aligned.
    pub records: &'a [u8],
    pub arena: &'a [u8],
    /// The matcher's tables (see `matcher::image`), aligned.
    pub tables: Vec<&'a [u8]>,
}

/// Checks magic, version, byte order, length and checksum; returns the body.
fn body(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err("not a compiled indicator set".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if !(OLDEST..=VERSION).contains(&version) {
        return Err(format!(
            "compiled with format version {version}, this iocmatch reads {OLDEST} to {VERSION}: compile it again"
        ));
    }
    if u32::from_ne_bytes(bytes[12..16].try_into().unwrap_or_default()) != ORDER {
        return Err("compiled on a machine of the other byte order: compile it again here".into());
    }
    let len = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or_default()) as usize;
    let body = bytes.get(HEADER..HEADER.saturating_add(len)).ok_or("compiled set is truncated")?;
    let sum = bytes.get(HEADER + len..HEADER + 8 + len).ok_or("compiled set is truncated")?;
    if checksum(body) != u64::from_le_bytes(sum.try_into().unwrap_or_default()) {
        return Err("compiled set is damaged (checksum mismatch): compile it again".into());
    }
    Ok(body)
}

/// Opens a compiled set, checking magic, version, byte order, length and checksum (each
/// record is checked where it is read). The array sections are aligned when `bytes` starts on
/// a 16-byte boundary (a mapping does); `file` names the set in provenance that has no file of
/// its own.
pub fn open<'a>(bytes: &'a [u8], file: &str) -> Result<View<'a>, String> {
    let mut r = R { b: body(bytes)?, at: 0 };
    let mut stamps = Vec::new();
    for _ in 0..r.count()? {
        let path = PathBuf::from(r.str()?);
        let size = r.u64()?;
        let lo = r.u64()? as u128;
        let hi = r.u64()? as u128;
        stamps.push(SourceStamp { path, size, mtime_ns: hi << 64 | lo });
    }
    let mut sources = Vec::new();
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
        sources.push(Arc::new(Provenance {
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
        }));
    }
    let mut metas = Vec::new();
    for _ in 0..r.count()? {
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
        metas.push(Arc::new(m));
    }
    let n = r.u32()? as usize;
    let records = r.section()?;
    if records.len() != n * std::mem::size_of::<Record>() {
        return Err("corrupt record table in compiled set".into());
    }
    let arena = r.section()?;
    let mut tables = Vec::new();
    for _ in 0..r.count()? {
        tables.push(r.section()?);
    }
    // The records are not checked here: a scan reads them in place, and every read of one is
    // checked (`View::value`, `Record::kind`, `Matcher::provenance`). A pass over them all, the
    // arena's text included, took 4 of the 10 ms a scan with a million indicators spent
    // starting. `append`, which copies them all, checks them first.
    Ok(View { stamps, sources, metas, records, arena, tables })
}

impl View<'_> {
    /// The records, when the bytes are aligned for them (a mapping is).
    pub fn records(&self) -> Option<&[Record]> {
        bytemuck::try_cast_slice(self.records).ok()
    }

    /// Every record points into the arena at whole UTF-8 text, and at a source and facts that
    /// exist: after this, reading a record cannot fail.
    fn check_records(&self) -> Result<(), String> {
        let copy;
        let recs: &[Record] = match self.records() {
            Some(r) => r,
            None => {
                copy = bytemuck::pod_collect_to_vec::<u8, Record>(self.records);
                &copy
            }
        };
        let arena = std::str::from_utf8(self.arena).map_err(|_| "invalid text in compiled set")?;
        for r in recs {
            let end = r.off as usize + r.len as usize;
            let ok = end <= arena.len()
                && arena.is_char_boundary(r.off as usize)
                && arena.is_char_boundary(end)
                && (r.source as usize) < self.sources.len()
                && (r.meta as usize) < self.metas.len()
                && (r.kind as usize) < Kind::ALL.len();
            if !ok {
                return Err("corrupt record in compiled set".into());
            }
        }
        Ok(())
    }

    /// The value of a record: empty if it is not whole text inside the arena (only a hostile
    /// file's can be).
    pub fn value<'b>(arena: &'b [u8], r: &Record) -> &'b str {
        arena
            .get(r.off as usize..r.off as usize + r.len as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
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
/// Returns those sources. This copies every indicator; a scan uses the file in place instead
/// (`matcher::image`).
pub fn append(
    bytes: &[u8],
    file: &str,
    set: &mut IndicatorSet,
    use_it: impl FnOnce(&[SourceStamp]) -> bool,
) -> Result<Vec<SourceStamp>, String> {
    let view = open(bytes, file)?;
    if !use_it(&view.stamps) {
        return Ok(view.stamps);
    }
    view.check_records()?;
    let src_base = set.sources.len() as u32;
    for p in &view.sources {
        set.add_source(Provenance::clone(p));
    }
    let fresh = set.metas.is_empty();
    let remap: Vec<u32> = view
        .metas
        .iter()
        .map(|m| if fresh { set.push_meta(RowMeta::clone(m)) } else { set.intern_meta(RowMeta::clone(m)) })
        .collect();
    let recs = bytemuck::pod_collect_to_vec::<u8, Record>(view.records);
    set.indicators.reserve_exact(recs.len());
    for r in &recs {
        set.indicators.push(Indicator {
            value: View::value(view.arena, r).into(),
            kind: r.kind(),
            exact: r.exact(),
            port: r.port(),
            source: r.source + src_base,
            meta: remap[r.meta as usize],
            line: r.line,
        });
    }
    Ok(view.stamps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{csv, embedded};

    #[test]
    fn a_missing_source_is_named() {
        let e = stamps(&[PathBuf::from("/nonexistent/feed.csv")]).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/feed.csv: "), "{e}");
    }

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
        let bytes = to_bytes(&set, &[], &[]).unwrap();
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
