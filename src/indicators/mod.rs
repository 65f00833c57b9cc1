//! The indicator model and everything that reads or writes indicator sets.
//!
//! An [`IndicatorSet`] is what the loaders produce: a flat list of [`Indicator`]s, each a
//! normalised value with a type, pointing by index at a shared [`Provenance`] (one per source
//! document) and a shared [`RowMeta`] (dates, role, confidence: interned, because thousands of
//! rows of one advisory carry the same role). Nothing is copied per indicator but the value.
//!
//! The set is compiled once into a [`crate::matcher::Matcher`] for lookups.

pub mod check;
pub mod compiled;
pub mod csv;
pub mod embedded;
pub mod export;
pub mod load;
pub mod misp;
pub mod normalize;
pub mod plain;
pub mod stix;
pub mod zeek;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::time::Epoch;

/// What an indicator value is.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Ipv4,
    Ipv6,
    Cidr,
    Domain,
    Url,
    Sha1Cert,
    Sha256Cert,
    Ja3,
    Ja4,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Cidr,
        Kind::Domain,
        Kind::Url,
        Kind::Sha1Cert,
        Kind::Sha256Cert,
        Kind::Ja3,
        Kind::Ja4,
    ];

    /// The name used in the project's CSV format and in alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Cidr => "cidr",
            Kind::Domain => "domain",
            Kind::Url => "url",
            Kind::Sha1Cert => "sha1-cert",
            Kind::Sha256Cert => "sha256-cert",
            Kind::Ja3 => "ja3",
            Kind::Ja4 => "ja4",
        }
    }

    /// Parses a type name of the project's CSV format (a few common synonyms accepted).
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "ipv4" | "ip" | "ipv4-addr" | "ip4" | "addr" => Kind::Ipv4,
            "ipv6" | "ipv6-addr" | "ip6" => Kind::Ipv6,
            "cidr" | "subnet" | "net" | "network" => Kind::Cidr,
            "domain" | "hostname" | "fqdn" | "domain-name" | "domain-exact" => Kind::Domain,
            "url" | "uri" => Kind::Url,
            "sha1-cert" | "cert-sha1" | "x509-sha1" => Kind::Sha1Cert,
            "sha256-cert" | "cert-sha256" | "x509-sha256" => Kind::Sha256Cert,
            "ja3" | "ja3-md5" => Kind::Ja3,
            "ja4" => Kind::Ja4,
            _ => return None,
        })
    }

    /// True for the kinds matched against IP addresses.
    pub fn is_address(self) -> bool {
        matches!(self, Kind::Ipv4 | Kind::Ipv6 | Kind::Cidr)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where indicators came from: one per source document (or per MISP event, STIX bundle, file).
/// Shared by every indicator of that document and carried whole into every alert.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// The set's short name (the shipped sets use the CSV file's stem).
    pub set: String,
    /// The document's title.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub publisher: String,
    /// Publication date as written (`YYYY-MM-DD`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Threat actor the document attributes the activity to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Organisation (e.g. sanctioned company) the document ties to the activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The file it was read from (`embedded:` for the shipped sets).
    pub file: String,
    /// The format it was read as.
    pub format: &'static str,
}

/// Per-row facts: dates, role and confidence. Interned: rows that share them share one copy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct RowMeta {
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_date")]
    pub first_seen: Option<Epoch>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_date")]
    pub last_seen: Option<Epoch>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_date")]
    pub valid_from: Option<Epoch>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_date")]
    pub valid_until: Option<Epoch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Arc<str>>,
    /// As the source gives it (`high`, `medium`, `low`, or a number 0-100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Arc<str>>,
    /// Anything else the source carried (Zeek `meta.*` columns, STIX names, MISP comments).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(Arc<str>, Arc<str>)>,
}

fn ser_date<S: serde::Serializer>(v: &Option<Epoch>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(t) => s.serialize_str(&crate::time::format_compact(*t)),
        None => s.serialize_none(),
    }
}

/// Whether an indicator was known to be in use at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Inside its first-seen/last-seen (or valid-from/valid-until) window.
    Active,
    /// Before the source first saw it in use.
    BeforeFirstSeen,
    /// After the source last saw it in use (the address may have been reassigned since).
    AfterLastSeen,
    /// After its `valid_until`.
    Expired,
    /// The source gives no dates.
    Undated,
}

impl Activity {
    /// The name used in alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Active => "active",
            Activity::BeforeFirstSeen => "before_first_seen",
            Activity::AfterLastSeen => "after_last_seen",
            Activity::Expired => "expired",
            Activity::Undated => "undated",
        }
    }
}

impl RowMeta {
    /// Judges the indicator's activity at time `t` (seconds). `last_seen` and `valid_until`
    /// given as dates cover the whole of that day.
    pub fn activity_at(&self, t: Epoch) -> Activity {
        let start = self.first_seen.or(self.valid_from);
        if self.valid_until.is_some_and(|u| t > u + day_end(u)) {
            return Activity::Expired;
        }
        if start.is_some_and(|s| t < s) {
            return Activity::BeforeFirstSeen;
        }
        if self.last_seen.is_some_and(|l| t > l + day_end(l)) {
            return Activity::AfterLastSeen;
        }
        if start.is_none() && self.last_seen.is_none() && self.valid_until.is_none() {
            return Activity::Undated;
        }
        Activity::Active
    }
}

/// A date without a time stands for the whole day.
fn day_end(t: Epoch) -> Epoch {
    if t.rem_euclid(86400) == 0 {
        86399
    } else {
        0
    }
}

/// One indicator: a normalised value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indicator {
    /// Canonical text: `1.2.3.4`, `2001:db8::1`, `10.0.0.0/8`, `evil.example` (lowercase,
    /// punycode), `evil.example/path?q` (URL without scheme), lowercase hex for hashes.
    pub value: Box<str>,
    pub kind: Kind,
    /// Domains: match only the name itself, not its subdomains.
    pub exact: bool,
    /// Addresses given with a port (`1.2.3.4:443`) match only connections to or from that port.
    pub port: Option<u16>,
    /// Index into [`IndicatorSet::sources`].
    pub source: u32,
    /// Index into [`IndicatorSet::metas`].
    pub meta: u32,
    /// Line (or object number) in the source file, for messages.
    pub line: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Information only (not a finding).
    Note,
    Warning,
    Error,
}

/// A finding about an input file: a bad line that was skipped, or a risky indicator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: Arc<str>,
    /// Line number, or object id for JSON formats.
    pub location: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match &self.location {
            Some(loc) => write!(f, "{sev}: {}:{loc}: {}", self.file, self.message),
            None => write!(f, "{sev}: {}: {}", self.file, self.message),
        }
    }
}

/// Indicators as loaded, before compilation.
#[derive(Debug, Default)]
pub struct IndicatorSet {
    pub indicators: Vec<Indicator>,
    pub sources: Vec<Arc<Provenance>>,
    pub metas: Vec<Arc<RowMeta>>,
    meta_index: HashMap<Arc<RowMeta>, u32>,
    /// Errors (skipped records) and warnings, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// Records skipped because they could not be read.
    pub skipped: u64,
    /// Records read but deliberately left out (e.g. MISP `to_ids: false`, revoked STIX).
    pub ignored: u64,
    /// Hashes of the texts loaded, so the same document given twice (say, `indicators/` on
    /// top of the built-in sets) is loaded once.
    texts: std::collections::HashSet<u64>,
    /// Compiled sets left to be used in place (see [`load::Options::map_compiled`]).
    pub to_map: Vec<std::path::PathBuf>,
}

/// How much of a rejected value a diagnostic quotes.
const QUOTED: usize = 200;

/// `raw`, cut to [`QUOTED`] bytes (on a character boundary) with the full length noted: a
/// diagnostic must not repeat a 200 MB line.
fn clip(raw: &str) -> Cow<'_, str> {
    if raw.len() <= QUOTED {
        return Cow::Borrowed(raw);
    }
    let mut end = QUOTED;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}... ({} bytes)", &raw[..end], raw.len()))
}

impl IndicatorSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// True the first time a document with this exact text is offered.
    pub fn first_time(&mut self, text: &str) -> bool {
        use std::hash::BuildHasher;
        self.texts.insert(foldhash::fast::FixedState::with_seed(11).hash_one(text))
    }

    /// Registers a source document; returns its index for [`Indicator::source`].
    pub fn add_source(&mut self, p: Provenance) -> u32 {
        self.sources.push(Arc::new(p));
        (self.sources.len() - 1) as u32
    }

    /// Interns per-row facts; returns the index for [`Indicator::meta`].
    pub fn intern_meta(&mut self, m: RowMeta) -> u32 {
        // Consecutive rows usually share their facts: compare with the last one before hashing.
        if let Some(last) = self.metas.last() {
            if **last == m {
                return (self.metas.len() - 1) as u32;
            }
        }
        if let Some(&i) = self.meta_index.get(&m) {
            return i;
        }
        let m = Arc::new(m);
        let i = self.metas.len() as u32;
        self.metas.push(m.clone());
        self.meta_index.insert(m, i);
        i
    }

    /// Appends row facts known to be distinct (compiled sets); returns the index.
    pub fn push_meta(&mut self, m: RowMeta) -> u32 {
        let m = Arc::new(m);
        let i = self.metas.len() as u32;
        self.metas.push(m.clone());
        self.meta_index.insert(m, i);
        i
    }

    /// Normalises `raw` (refanged, typed by `hint` or inferred) and adds it. On failure the
    /// reason is recorded as an error at `file:line` and the record counted as skipped.
    #[allow(clippy::too_many_arguments)] // each argument is one fact of the row; a struct would only rename them
    pub fn add(
        &mut self,
        raw: &str,
        hint: Option<Kind>,
        exact: bool,
        source: u32,
        meta: u32,
        file: &Arc<str>,
        line: u32,
    ) -> bool {
        match normalize::parse_value(raw, hint) {
            Ok(p) => {
                self.indicators.push(Indicator {
                    value: p.value.into_boxed_str(),
                    kind: p.kind,
                    exact: exact && p.kind == Kind::Domain,
                    port: p.port,
                    source,
                    meta,
                    line,
                });
                true
            }
            Err(e) => {
                self.error(file, Some(line.to_string()), format!("{e}: {:?}", clip(raw)));
                false
            }
        }
    }

    /// Records a skipped record.
    pub fn error(&mut self, file: &Arc<str>, location: Option<String>, message: String) {
        self.skipped += 1;
        self.diagnostics.push(Diagnostic { severity: Severity::Error, file: file.clone(), location, message });
    }

    /// Records a warning (nothing skipped).
    pub fn warn(&mut self, file: &Arc<str>, location: Option<String>, message: String) {
        self.diagnostics.push(Diagnostic { severity: Severity::Warning, file: file.clone(), location, message });
    }

    pub fn provenance(&self, i: &Indicator) -> &Arc<Provenance> {
        &self.sources[i.source as usize]
    }

    pub fn meta(&self, i: &Indicator) -> &Arc<RowMeta> {
        &self.metas[i.meta as usize]
    }

    /// Records an informational note.
    pub fn note(&mut self, file: &Arc<str>, message: String) {
        self.diagnostics.push(Diagnostic { severity: Severity::Note, file: file.clone(), location: None, message });
    }

    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// Appends another set (used to merge files loaded separately).
    pub fn extend(&mut self, other: IndicatorSet) {
        if self.indicators.is_empty() && self.sources.is_empty() && self.metas.is_empty() {
            // Nothing to renumber: take the other set whole (no copy of a million rows).
            let texts = std::mem::take(&mut self.texts);
            let diagnostics = std::mem::take(&mut self.diagnostics);
            let (skipped, ignored) = (self.skipped, self.ignored);
            let to_map = std::mem::take(&mut self.to_map);
            *self = other;
            self.to_map.splice(0..0, to_map);
            self.texts.extend(texts);
            let mut d = diagnostics;
            d.append(&mut self.diagnostics);
            self.diagnostics = d;
            self.skipped += skipped;
            self.ignored += ignored;
            return;
        }
        let src_base = self.sources.len() as u32;
        self.sources.extend(other.sources);
        let mut remap = Vec::with_capacity(other.metas.len());
        for m in other.metas {
            remap.push(self.intern_meta((*m).clone()));
        }
        for mut i in other.indicators {
            i.source += src_base;
            i.meta = remap[i.meta as usize];
            self.indicators.push(i);
        }
        self.diagnostics.extend(other.diagnostics);
        self.to_map.extend(other.to_map);
        self.skipped += other.skipped;
        self.ignored += other.ignored;
    }

    /// Counts by kind, in [`Kind::ALL`] order.
    pub fn counts_by_kind(&self) -> Vec<(Kind, usize)> {
        let mut c = [0usize; 9];
        for i in &self.indicators {
            c[i.kind as usize] += 1;
        }
        Kind::ALL.iter().map(|k| (*k, c[*k as usize])).filter(|(_, n)| *n > 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_value_is_quoted_clipped_in_its_diagnostic() {
        let mut set = IndicatorSet::new();
        let file: Arc<str> = Arc::from("long.txt");
        let raw = format!("{}é{}", "a".repeat(QUOTED - 1), "b".repeat(1 << 20));
        assert!(!set.add(&raw, None, false, 0, 0, &file, 1));
        let d = set.diagnostics[0].to_string();
        assert!(d.len() < 400, "{} bytes", d.len());
        assert!(d.contains(&format!("... ({} bytes)", raw.len())), "{d}");
        assert!(!set.add("not a value at all", None, false, 0, 0, &file, 2));
        assert!(set.diagnostics[1].to_string().ends_with("\"not a value at all\""));
    }
}
