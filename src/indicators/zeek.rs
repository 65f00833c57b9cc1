//! Zeek intel files: the TAB-separated input of Zeek's intel framework.
//!
//! ```text
//! (TAB-separated; shown with spaces)
//! #fields  indicator  indicator_type  meta.source  meta.desc  meta.url
//! 192.0.2.7  Intel::ADDR  feed-a  C2 server  https://feed-a.example/192.0.2.7
//! ```
//! Columns are found by name from the `#fields` header; `-` is an unset field and `(empty)`
//! an empty set. Other `#` lines are ignored. Each distinct `meta.source` becomes one
//! [`Provenance`]; `meta.desc` is the row's role, `meta.cif_confidence` its confidence,
//! `meta.cif_firstseen`/`meta.cif_lastseen` its dates, `meta.cif_tags` its tags, and every
//! other `meta.*` column is kept as an extra (key without the `meta.` prefix).
//! Indicator types we do not match (file hashes, e-mail addresses, software...) are counted
//! as ignored.

use std::collections::HashMap;
use std::sync::Arc;

use super::{IndicatorSet, Kind, Provenance, RowMeta};

/// What a column is used for.
#[derive(Clone, Debug, PartialEq)]
enum Col {
    Indicator,
    Type,
    Source,
    Desc,
    Confidence,
    FirstSeen,
    LastSeen,
    Tags,
    /// Kept as an extra under this key.
    Extra(Arc<str>),
}

fn column(name: &str) -> Col {
    match name {
        "indicator" => Col::Indicator,
        "indicator_type" => Col::Type,
        "meta.source" => Col::Source,
        "meta.desc" => Col::Desc,
        "meta.cif_confidence" => Col::Confidence,
        "meta.cif_firstseen" => Col::FirstSeen,
        "meta.cif_lastseen" => Col::LastSeen,
        "meta.cif_tags" => Col::Tags,
        other => Col::Extra(Arc::from(other.strip_prefix("meta.").unwrap_or(other))),
    }
}

/// Reads the `#fields` header line (`None` if the line is not one).
fn parse_fields(line: &str) -> Option<Vec<Col>> {
    let rest = line.strip_prefix("#fields")?;
    // Zeek writes a TAB after `#fields`; very old MISP exports wrote a space.
    let rest = rest.strip_prefix('\t').or_else(|| rest.strip_prefix(' '))?;
    Some(rest.split('\t').map(|c| column(c.trim())).collect())
}

/// Zeek's `\xHH` escaping, undone where Zeek's conn/dns logs are read.
use crate::source::flowlog::zeek::unescape;

/// Maps an `Intel::` type to our kind: `Ok(None)` for types we deliberately do not match.
fn kind_for(ty: &str, value: &str) -> Result<Option<Kind>, String> {
    // Very old exports wrote `Intel:ADDR`.
    let name = ty
        .strip_prefix("Intel::")
        .or_else(|| ty.strip_prefix("Intel:"))
        .ok_or_else(|| format!("unknown indicator type {ty:?} (expected Intel::...)"))?;
    Ok(match name {
        "ADDR" => Some(if value.contains(':') { Kind::Ipv6 } else { Kind::Ipv4 }),
        "SUBNET" => Some(Kind::Cidr),
        "DOMAIN" => Some(Kind::Domain),
        "URL" => Some(Kind::Url),
        "CERT_HASH" => Some(Kind::Sha1Cert),
        "SOFTWARE" | "EMAIL" | "USER_NAME" | "PUBKEY_HASH" | "FILE_HASH" | "FILE_NAME" => None,
        _ => return Err(format!("unknown indicator type {ty:?}")),
    })
}

pub fn load(text: &str, file: &Arc<str>, stem: &str, set: &mut IndicatorSet) {
    let mut cols: Option<Vec<Col>> = None;
    let mut sources: HashMap<String, u32> = HashMap::new();
    let mut missing_header_reported = false;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n as u32 + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if let Some(c) = parse_fields(line) {
                if !c.contains(&Col::Indicator) || !c.contains(&Col::Type) {
                    set.error(
                        file,
                        Some(line_no.to_string()),
                        "the #fields header needs the columns `indicator` and `indicator_type`".into(),
                    );
                    return;
                }
                cols = Some(c);
            }
            continue;
        }
        let Some(cols) = cols.as_ref() else {
            if !missing_header_reported {
                missing_header_reported = true;
                set.error(file, Some(line_no.to_string()), "no #fields header before the first data line: not a Zeek intel file, nothing loaded until a header".into());
            }
            continue;
        };
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != cols.len() {
            set.error(
                file,
                Some(line_no.to_string()),
                format!("{} fields, the #fields header has {}", fields.len(), cols.len()),
            );
            continue;
        }
        let mut value = None;
        let mut ty = None;
        let mut source = String::new();
        let mut meta = RowMeta::default();
        let mut bad_date = None;
        for (col, field) in cols.iter().zip(&fields) {
            if *field == "-" || *field == "(empty)" || field.is_empty() {
                continue;
            }
            let v = unescape(field);
            match col {
                Col::Indicator => value = Some(v),
                Col::Type => ty = Some(v),
                Col::Source => source = v.into_owned(),
                Col::Desc => meta.role = Some(Arc::from(v.as_ref())),
                Col::Confidence => meta.confidence = Some(Arc::from(v.as_ref())),
                Col::FirstSeen | Col::LastSeen => match crate::time::parse(&v) {
                    Some(t) if *col == Col::FirstSeen => meta.first_seen = Some(t),
                    Some(t) => meta.last_seen = Some(t),
                    None => bad_date = Some(v.into_owned()),
                },
                Col::Tags => meta.tags = v.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Arc::from).collect(),
                Col::Extra(k) => meta.extra.push((k.clone(), Arc::from(v.as_ref()))),
            }
        }
        let (Some(value), Some(ty)) = (value, ty) else {
            set.error(file, Some(line_no.to_string()), "the indicator or its type is unset".into());
            continue;
        };
        let kind = match kind_for(&ty, &value) {
            Ok(Some(k)) => k,
            Ok(None) => {
                set.ignored += 1;
                continue;
            }
            Err(e) => {
                set.error(file, Some(line_no.to_string()), e);
                continue;
            }
        };
        if let Some(d) = bad_date {
            set.error(
                file,
                Some(line_no.to_string()),
                format!("unreadable date {d:?} (expected YYYY-MM-DD, RFC 3339 or epoch seconds)"),
            );
            continue;
        }
        let src = match sources.get(&source) {
            Some(&s) => s,
            None => {
                let s = set.add_source(Provenance {
                    set: stem.to_string(),
                    title: source.clone(),
                    file: file.to_string(),
                    format: "zeek-intel",
                    ..Provenance::default()
                });
                sources.insert(source, s);
                s
            }
        };
        let meta = set.intern_meta(meta);
        set.add(&value, Some(kind), false, src, meta, file, line_no);
    }
    if cols.is_none() && !missing_header_reported {
        set.error(file, None, "no #fields header: not a Zeek intel file".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> IndicatorSet {
        let mut set = IndicatorSet::new();
        load(text, &Arc::from("intel.dat"), "intel", &mut set);
        set
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/data/indicators/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn loads_the_fixture_with_kinds_provenance_and_meta() {
        let s = load_str(&fixture("zeek-intel.dat"));
        assert_eq!(s.errors(), 0, "{:?}", s.diagnostics);
        let got: Vec<(Kind, &str)> = s.indicators.iter().map(|i| (i.kind, &*i.value)).collect();
        assert_eq!(
            got,
            [
                (Kind::Ipv4, "192.0.2.10"),
                (Kind::Ipv6, "2001:db8::53"),
                (Kind::Cidr, "198.51.100.0/24"),
                (Kind::Domain, "c2.evil.example"),
                (Kind::Url, "files.evil.example/payload.bin"),
                (Kind::Sha1Cert, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
                (Kind::Ipv4, "203.0.113.5"),
            ]
        );
        // FILE_HASH and EMAIL rows.
        assert_eq!(s.ignored, 2);
        // One provenance per meta.source.
        assert_eq!(s.sources.len(), 2);
        let p = s.provenance(&s.indicators[0]);
        assert_eq!((p.title.as_str(), p.set.as_str(), p.format), ("feed-a", "intel", "zeek-intel"));
        assert_eq!(s.provenance(&s.indicators[6]).title, "cif-feed");
        let m = s.meta(&s.indicators[0]);
        assert_eq!(m.role.as_deref(), Some("C2 server"));
        let extra: Vec<(&str, &str)> = m.extra.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(extra, [("url", "https://feed-a.example/reports/1"), ("do_notice", "T")]);
        let m = s.meta(&s.indicators[1]);
        assert!(m.role.is_none() && m.extra.iter().all(|(k, _)| &**k != "url"));
        let m = s.meta(&s.indicators[6]);
        assert_eq!(m.confidence.as_deref(), Some("85"));
        assert_eq!(m.first_seen, crate::time::parse("2024-03-01"));
        assert_eq!(m.last_seen, crate::time::parse("2024-04-15T12:00:00Z"));
        assert_eq!(m.tags.iter().map(|t| &**t).collect::<Vec<_>>(), ["botnet", "c2"]);
    }

    #[test]
    fn malformed_lines_are_reported_and_the_rest_loads() {
        let s = load_str(&fixture("zeek-intel-malformed.dat"));
        let locs: Vec<(Option<&str>, &str)> =
            s.diagnostics.iter().map(|d| (d.location.as_deref(), d.message.as_str())).collect();
        assert_eq!(s.indicators.len(), 3, "{locs:?}");
        let lines: Vec<&str> = locs.iter().map(|(l, _)| l.unwrap_or("-")).collect();
        assert_eq!(lines, ["4", "5", "6", "7", "8"], "{locs:?}");
        assert!(locs[0].1.contains("fields"), "{locs:?}");
        assert!(locs[2].1.contains("unknown indicator type"), "{locs:?}");
        assert_eq!(s.skipped, 5);
        assert_eq!(s.ignored, 1);
    }

    #[test]
    fn missing_header_is_one_error() {
        let s = load_str("192.0.2.1\tIntel::ADDR\tsrc\n192.0.2.2\tIntel::ADDR\tsrc\n");
        assert_eq!(s.errors(), 1);
        assert!(s.indicators.is_empty());
        let s = load_str("");
        assert_eq!(s.errors(), 1);
        assert!(s.diagnostics[0].message.contains("#fields"));
    }

    #[test]
    fn header_variants_and_escapes() {
        // Old MISP exports: space after #fields and `Intel:` with one colon; CRLF endings.
        let s = load_str("#fields indicator\tindicator_type\tmeta.source\r\nevil.example\tIntel:DOMAIN\tmisp\r\n");
        assert_eq!(s.errors(), 0, "{:?}", s.diagnostics);
        assert_eq!(&*s.indicators[0].value, "evil.example");
        let s = load_str(
            "#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\nx.example\tIntel::DOMAIN\t-\ta\\x09b\n",
        );
        assert_eq!(s.meta(&s.indicators[0]).role.as_deref(), Some("a\tb"));
        assert_eq!(s.provenance(&s.indicators[0]).title, "");
        let s = load_str("#fields\tindicator\tmeta.source\n192.0.2.1\tx\n");
        assert_eq!((s.errors(), s.diagnostics[0].location.as_deref()), (1, Some("1")));
        assert!(s.diagnostics[0].message.contains("indicator_type"));
    }
}
