//! Reading indicator files: folders, compression, and recognising the format by content.
//!
//! Detection looks at the content first (a `#fields` header is Zeek intel whatever the file is
//! called) and uses the extension only to break ties, so renamed exports still load.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{compiled, csv, embedded, misp, plain, stix, zeek, IndicatorSet, Provenance};

/// Formats we read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Plain,
    ZeekIntel,
    Stix,
    MispJson,
    MispCsv,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Plain => "plain",
            Format::ZeekIntel => "zeek-intel",
            Format::Stix => "stix",
            Format::MispJson => "misp-json",
            Format::MispCsv => "misp-csv",
        }
    }
}

/// How to load.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Leave out the sets compiled into the binary.
    pub no_default_set: bool,
    /// Stop at the first bad record instead of skipping it.
    pub strict: bool,
    /// Leave uncompressed compiled sets out of the set, listed in [`IndicatorSet::to_map`],
    /// for the matcher to use in place (`matcher::image::resolve`) rather than copy.
    pub map_compiled: bool,
}

/// A failure that stops loading (an unreadable file, or any bad record under `--strict`).
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// Loads the default sets (unless `opts.no_default_set`) and every file under `paths`.
pub fn load_all(paths: &[PathBuf], opts: &Options) -> Result<IndicatorSet, LoadError> {
    let mut set = IndicatorSet::new();
    if !opts.no_default_set {
        embedded::load_into(&mut set);
    }
    for p in paths {
        load_path(p, &mut set, opts)?;
    }
    Ok(set)
}

/// Loads a file, or every file under a folder (recursively, in name order; hidden files and
/// `*.manifest.json` skipped, the latter being read with their CSV).
pub fn load_path(path: &Path, set: &mut IndicatorSet, opts: &Options) -> Result<(), LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
    if meta.is_dir() {
        let listing = crate::source::files_under(path).map_err(|e| LoadError(format!("{}: {e}", path.display())))?;
        for (f, why) in &listing.left_out {
            let shown: Arc<str> = Arc::from(f.display().to_string());
            set.warn(&shown, None, format!("{why}: skipped"));
        }
        let mut files = listing.files;
        // Manifests are read with their CSV; notes are for people.
        files.retain(|f| {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            !name.ends_with(".manifest.json") && !name.ends_with(".md")
        });
        if files.is_empty() {
            return Err(LoadError(format!("{}: no indicator files in this folder", path.display())));
        }
        for f in files {
            load_file(&f, set, opts)?;
        }
        Ok(())
    } else {
        load_file(path, set, opts)
    }
}

/// Reads a whole file, undoing gzip or zstd compression (recognised by magic bytes).
pub fn read_maybe_compressed(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    decompress(raw)
}

fn decompress(raw: Vec<u8>) -> std::io::Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        Ok(out)
    } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::decode_all(&raw[..])
    } else {
        Ok(raw)
    }
}

/// How much of the first line format detection looks at.
const DETECT_LINE: usize = 4096;

/// The first `max` bytes of `s`, cut on a character boundary.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Recognises the format of an indicator file from its content (and name as a tie-breaker).
pub fn detect(name: &str, text: &str) -> Format {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        let head: String = t.chars().take(4096).collect();
        if head.contains("\"Event\"") || head.contains("\"response\"") || head.contains("\"Attribute\"") {
            return Format::MispJson;
        }
        if head.contains("\"bundle\"")
            || head.contains("\"spec_version\"")
            || head.contains("\"pattern\"")
            || head.contains("\"objects\"")
        {
            return Format::Stix;
        }
        return if name.contains("misp") { Format::MispJson } else { Format::Stix };
    }
    // Only the head of the first line says anything about the format; a file that is one
    // endless line must not be scanned, lowercased and split whole just to be recognised.
    let first = t.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let first = head(first, DETECT_LINE);
    if t.starts_with("#fields") || t.starts_with("#separator") || first.contains("Intel::") {
        return Format::ZeekIntel;
    }
    let lower = first.to_ascii_lowercase();
    if lower.contains("event_id") && lower.contains("category") && lower.contains("value") {
        return Format::MispCsv;
    }
    if csv::looks_like(first) {
        return Format::Csv;
    }
    Format::Plain
}

/// True when the file starts with a compiled set's magic (so is not compressed). Only a regular
/// file is looked into: the bytes read from a pipe (`--indicators <(curl ...)`) would be gone
/// from the read that loads it.
pub fn is_compiled(path: &Path) -> bool {
    let mut head = [0u8; 8];
    crate::source::rereadable(path)
        && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
        && &head == compiled::MAGIC
}

fn load_file(path: &Path, set: &mut IndicatorSet, opts: &Options) -> Result<(), LoadError> {
    let shown = path.display().to_string();
    if opts.map_compiled && is_compiled(path) {
        set.to_map.push(path.to_path_buf());
        return Ok(());
    }
    let bytes = read_maybe_compressed(path).map_err(|e| LoadError(format!("{shown}: cannot read: {e}")))?;
    let file: Arc<str> = Arc::from(shown.as_str());
    if bytes.starts_with(compiled::MAGIC) {
        return load_compiled(path, &bytes, &file, set, opts);
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            // Keep what can be read; every line with invalid UTF-8 becomes U+FFFD and fails to parse.
            set.warn(&file, None, "file is not valid UTF-8; invalid bytes replaced".into());
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    if text.as_bytes().contains(&0) {
        return Err(LoadError(format!("{shown}: binary data, not an indicator file")));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let stem = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or("").to_string();
    if !set.first_time(text) {
        set.note(&file, "same content as a set already loaded (for instance the built-in one): loaded once".into());
        return Ok(());
    }
    let before = set.errors();
    let format = detect(&stem, text);
    let prov = |format: Format| Provenance {
        set: stem.clone(),
        file: shown.clone(),
        format: format.as_str(),
        ..Provenance::default()
    };
    match format {
        Format::Csv => {
            let manifest_path = manifest_for(path);
            let prov = match std::fs::read_to_string(&manifest_path) {
                Ok(m) => match csv::Manifest::parse(&m) {
                    Ok(m) => m.provenance(&stem, &shown),
                    Err(e) => return Err(LoadError(format!("{}: {e}", manifest_path.display()))),
                },
                Err(_) => prov(Format::Csv),
            };
            csv::load(text, &file, prov, set)
        }
        Format::Plain => plain::load(text, &file, prov(Format::Plain), set),
        Format::ZeekIntel => zeek::load(text, &file, &stem, set),
        Format::Stix => stix::load(text, &file, &stem, set),
        Format::MispJson => misp::load_json(text, &file, &stem, set),
        Format::MispCsv => misp::load_csv(text, &file, &stem, set),
    }
    if opts.strict && set.errors() > before {
        let first = set
            .diagnostics
            .iter()
            .filter(|d| d.severity == super::Severity::Error)
            .nth(before)
            .map(|d| d.to_string())
            .unwrap_or_default();
        return Err(LoadError(format!("{first} (--strict: stopping at the first bad record)")));
    }
    Ok(())
}

/// A compiled set: used as is, unless a source changed since it was compiled; then the
/// sources are loaded instead (a scan, which builds the matcher's tables, also rewrites it).
fn load_compiled(
    _path: &Path,
    bytes: &[u8],
    file: &Arc<str>,
    set: &mut IndicatorSet,
    opts: &Options,
) -> Result<(), LoadError> {
    let mut changed: Option<PathBuf> = None;
    let stamps = compiled::append(bytes, file, set, |st| {
        changed = st.iter().find(|s| s.changed()).map(|s| s.path.clone());
        changed.is_none()
    })
    .map_err(|e| LoadError(format!("{file}: {e}")))?;
    let Some(changed) = changed else { return Ok(()) };
    let (fresh, _) = load_sources(file, &changed, &stamps, set, opts)?;
    set.extend(fresh);
    Ok(())
}

/// The sources of a compiled set in which `changed` changed: warns on `set`, and returns the
/// sources loaded into a new set, with the paths that still exist.
pub fn load_sources(
    file: &Arc<str>,
    changed: &Path,
    stamps: &[compiled::SourceStamp],
    set: &mut IndicatorSet,
    opts: &Options,
) -> Result<(IndicatorSet, Vec<PathBuf>), LoadError> {
    let sources: Vec<PathBuf> = stamps.iter().map(|s| s.path.clone()).filter(|p| p.exists()).collect();
    set.warn(
        file,
        None,
        format!("{} changed since this set was compiled: loading the sources instead", changed.display()),
    );
    let mut fresh = IndicatorSet::new();
    let opts = Options { map_compiled: false, ..opts.clone() };
    for p in &sources {
        load_path(p, &mut fresh, &opts)?;
    }
    Ok((fresh, sources))
}

/// `NAME.csv` -> `NAME.manifest.json`.
pub fn manifest_for(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let stem = name.strip_suffix(".gz").or_else(|| name.strip_suffix(".zst")).unwrap_or(&name);
    let stem = stem.strip_suffix(".csv").unwrap_or(stem);
    path.with_file_name(format!("{stem}.manifest.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content() {
        assert_eq!(detect("x", "indicator,type\n1.2.3.4,ipv4\n"), Format::Csv);
        assert_eq!(detect("x", "#fields\tindicator\tindicator_type\tmeta.source\n"), Format::ZeekIntel);
        assert_eq!(detect("x", "{\"type\": \"bundle\", \"objects\": []}"), Format::Stix);
        assert_eq!(detect("x", "{\"Event\": {\"info\": \"x\"}}"), Format::MispJson);
        assert_eq!(detect("x", "uuid,event_id,category,type,value,comment,to_ids,date\n"), Format::MispCsv);
        assert_eq!(detect("x", "1.2.3.4\nevil.example\n"), Format::Plain);
    }

    #[test]
    fn detection_reads_only_the_head_of_an_endless_first_line() {
        let long = format!("indicator,type{}\n1.2.3.4,ipv4\n", ",x".repeat(DETECT_LINE));
        assert_eq!(detect("x", &long), Format::Csv);
        let long = format!("{}é{}", "a".repeat(DETECT_LINE - 1), "b".repeat(1 << 20));
        assert_eq!(detect("x", &long), Format::Plain);
        assert_eq!(head("aé", 2), "a");
    }

    #[test]
    fn gzip_and_zstd_are_undone() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"1.2.3.4\n").unwrap();
        assert_eq!(decompress(gz.finish().unwrap()).unwrap(), b"1.2.3.4\n");
        let z = zstd::stream::encode_all(&b"1.2.3.4\n"[..], 1).unwrap();
        assert_eq!(decompress(z).unwrap(), b"1.2.3.4\n");
    }
}
