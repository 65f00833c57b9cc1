//! The project's own CSV format: one file per source document plus a small JSON manifest.
//!
//! ```text
//! indicator,type,first_seen,last_seen,role,confidence
//! w8510.com,domain,,,root domain of botnet C2 subdomains,high
//! ```
//! Only `indicator` and `type` are required; optional columns are `first_seen`, `last_seen`,
//! `valid_from`, `valid_until`, `role`, `confidence`, `tags` (`;`-separated) and `match`
//! (`exact` for a domain that must not match its subdomains; type `domain-exact` says the same).
//! Columns are found by header name, in any order. The manifest `NAME.manifest.json` next to
//! `NAME.csv` carries the document's provenance ([`Manifest`]).

use std::sync::Arc;

use serde::Deserialize;

use super::{IndicatorSet, Kind, Provenance, RowMeta};

/// Provenance of one document, as written in `NAME.manifest.json`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub set: Option<String>,
    pub title: Option<String>,
    pub publisher: Option<String>,
    pub date: Option<String>,
    pub url: Option<String>,
    pub actor: Option<String>,
    pub entity: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text for humans (what the rows are, caveats); not carried into alerts.
    pub notes: Option<String>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        serde_json::from_str(text).map_err(|e| format!("bad manifest: {e}"))
    }

    pub fn provenance(&self, default_set: &str, file: &str) -> Provenance {
        Provenance {
            set: self.set.clone().unwrap_or_else(|| default_set.to_string()),
            title: self.title.clone().unwrap_or_default(),
            publisher: self.publisher.clone().unwrap_or_default(),
            date: self.date.clone(),
            url: self.url.clone(),
            actor: self.actor.clone(),
            entity: self.entity.clone(),
            tags: self.tags.clone(),
            file: file.to_string(),
            format: "csv",
        }
    }
}

/// True when the first line is a header of this format.
pub fn looks_like(first_line: &str) -> bool {
    let cols: Vec<String> = first_line.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect();
    cols.iter().any(|c| c == "indicator") && cols.iter().any(|c| c == "type")
}

/// Loads one CSV document with the provenance `prov`.
pub fn load(text: &str, file: &Arc<str>, prov: Provenance, set: &mut IndicatorSet) {
    let source = set.add_source(prov);
    let mut rdr = ::csv::ReaderBuilder::new().flexible(true).comment(Some(b'#')).from_reader(text.as_bytes());
    let headers = match rdr.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_ascii_lowercase()).collect::<Vec<_>>(),
        Err(e) => {
            set.error(file, Some("1".into()), format!("cannot read the CSV header: {e}"));
            return;
        }
    };
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(ci), Some(ct)) = (col("indicator"), col("type")) else {
        set.error(file, Some("1".into()), "the CSV header needs the columns `indicator` and `type`".into());
        return;
    };
    let cols = [
        col("first_seen"),
        col("last_seen"),
        col("valid_from"),
        col("valid_until"),
        col("role"),
        col("confidence"),
        col("tags"),
        col("match"),
    ];
    let known = [
        "indicator",
        "type",
        "first_seen",
        "last_seen",
        "valid_from",
        "valid_until",
        "role",
        "confidence",
        "tags",
        "match",
    ];
    let extra_cols: Vec<(usize, Arc<str>)> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| !known.contains(&h.as_str()) && !h.is_empty())
        .map(|(i, h)| (i, Arc::from(h.as_str())))
        .collect();
    let mut record = ::csv::StringRecord::new();
    loop {
        let line = rdr.position().line() as u32;
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line() as u32).unwrap_or(line);
                set.error(file, Some(line.to_string()), format!("unreadable CSV record: {e}"));
                if e.is_io_error() || matches!(e.kind(), ::csv::ErrorKind::Utf8 { .. }) {
                    continue;
                }
                break;
            }
        }
        let line = record.position().map(|p| p.line() as u32).unwrap_or(line);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        // Fields are trimmed here rather than by the reader, which would copy every record.
        let get = |i: Option<usize>| i.and_then(|i| record.get(i)).map(str::trim).filter(|v| !v.is_empty());
        let value = get(Some(ci)).unwrap_or("");
        let ty = get(Some(ct)).unwrap_or("");
        let Some(kind) = Kind::parse(ty) else {
            set.error(file, Some(line.to_string()), format!("unknown indicator type {ty:?} (expected one of ipv4 ipv6 cidr domain url sha1-cert sha256-cert ja3 ja4)"));
            continue;
        };
        let mut meta = RowMeta::default();
        let mut bad_date = None;
        for (slot, idx) in [
            (&mut meta.first_seen, cols[0]),
            (&mut meta.last_seen, cols[1]),
            (&mut meta.valid_from, cols[2]),
            (&mut meta.valid_until, cols[3]),
        ] {
            if let Some(v) = get(idx) {
                match crate::time::parse(v) {
                    Some(t) => *slot = Some(t),
                    None => bad_date = Some(v.to_string()),
                }
            }
        }
        if let Some(d) = bad_date {
            set.error(file, Some(line.to_string()), format!("unreadable date {d:?} (expected YYYY-MM-DD or RFC 3339)"));
            continue;
        }
        meta.role = get(cols[4]).map(Arc::from);
        meta.confidence = get(cols[5]).map(|c| Arc::from(c.to_ascii_lowercase().as_str()));
        meta.tags = get(cols[6])
            .map(|t| t.split(';').map(str::trim).filter(|t| !t.is_empty()).map(Arc::from).collect())
            .unwrap_or_default();
        meta.extra = extra_cols
            .iter()
            .filter_map(|(i, h)| {
                record.get(*i).map(str::trim).filter(|v| !v.is_empty()).map(|v| (h.clone(), Arc::from(v)))
            })
            .collect();
        let exact =
            ty.eq_ignore_ascii_case("domain-exact") || get(cols[7]).is_some_and(|m| m.eq_ignore_ascii_case("exact"));
        let meta = set.intern_meta(meta);
        set.add(value, Some(kind), exact, source, meta, file, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> IndicatorSet {
        let mut set = IndicatorSet::new();
        load(text, &Arc::from("t.csv"), Provenance::default(), &mut set);
        set
    }

    #[test]
    fn reads_full_and_minimal_headers() {
        let s = load_str("indicator,type,first_seen,last_seen,role,confidence\nw8510.com,domain,,2024-08-29,C2,High\n1.2.3.4,ipv4,2023-01-01,,,\n");
        assert_eq!(s.indicators.len(), 2);
        assert_eq!(s.errors(), 0);
        let m = s.meta(&s.indicators[0]);
        assert_eq!(m.role.as_deref(), Some("C2"));
        assert_eq!(m.confidence.as_deref(), Some("high"));
        assert_eq!(m.last_seen, crate::time::parse("2024-08-29"));
        let s = load_str("type,indicator\nipv6,2001:DB8::1\n");
        assert_eq!(&*s.indicators[0].value, "2001:db8::1");
    }

    #[test]
    fn bad_rows_are_reported_with_line_and_skipped() {
        let s = load_str("indicator,type\n1.2.3.4,ipv4\nnot-an-ip,ipv4\nx.example,banana\n5.6.7.8,ipv4,extra\n\n9.9.9.9,ipv4,2020-99-99\n");
        assert_eq!(s.indicators.len(), 3);
        assert_eq!(s.skipped, 2);
        let msgs: Vec<String> = s.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(msgs[0].starts_with("error: t.csv:3: not a valid IPv4 address"), "{msgs:?}");
        assert!(msgs[1].starts_with("error: t.csv:4: unknown indicator type \"banana\""), "{msgs:?}");
    }

    #[test]
    fn exact_domains_and_crlf_and_bom() {
        let s = load_str("\u{feff}indicator,type,match\r\nevil.example,domain,exact\r\nx.example,domain-exact,\r\ny.example,domain,\r\n");
        assert_eq!(s.errors(), 0, "{:?}", s.diagnostics);
        assert!(s.indicators[0].exact && s.indicators[1].exact && !s.indicators[2].exact);
    }

    #[test]
    fn manifest_rejects_unknown_keys() {
        assert!(Manifest::parse(r#"{"title":"x","colour":"red"}"#).is_err());
        let m = Manifest::parse(r#"{"title":"T","publisher":"P","date":"2024-01-01"}"#).unwrap();
        assert_eq!(m.provenance("s", "f").set, "s");
    }
}
