//! Plain lists: one indicator a line, type inferred, `#` and `;` comments, blank lines ignored.
//! A trailing comment after the value (`1.2.3.4  # C2`) becomes the row's role.

use std::sync::Arc;

use super::{IndicatorSet, Provenance, RowMeta};

/// Longest line read: a value (at most `normalize::MAX_VALUE`) and a comment.
pub const MAX_LINE: usize = 64 * 1024;

pub fn load(text: &str, file: &Arc<str>, prov: Provenance, set: &mut IndicatorSet) {
    let source = set.add_source(prov);
    let plain_meta = set.intern_meta(RowMeta::default());
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with("//") {
            continue;
        }
        if line.len() > MAX_LINE {
            // Not worth searching for comments: no indicator is this long.
            let msg = format!("line is {} bytes long, over the {MAX_LINE}-byte limit", line.len());
            set.error(file, Some((n + 1).to_string()), msg);
            continue;
        }
        let (value, comment) = match line.find(" #").or_else(|| line.find("\t#")) {
            Some(i) => (line[..i].trim(), Some(line[i + 2..].trim())),
            None => (line, None),
        };
        // Tolerate `value,comment` and `value<TAB>comment` too.
        let (value, comment) = match value.split_once([',', '\t']) {
            Some((v, c)) if !c.trim().is_empty() => (v.trim(), comment.or(Some(c.trim()))),
            Some((v, _)) => (v.trim(), comment),
            None => (value, comment),
        };
        let meta = match comment.filter(|c| !c.is_empty()) {
            Some(c) => set.intern_meta(RowMeta { role: Some(Arc::from(c)), ..RowMeta::default() }),
            None => plain_meta,
        };
        set.add(value, None, false, source, meta, file, n as u32 + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::Kind;

    #[test]
    fn infers_and_reports() {
        let mut set = IndicatorSet::new();
        let text = "# list\n1.2.3.4\n\nevil[.]example # C2\n10.0.0.0/8\nhxxp://x.example/a\n???\n";
        load(text, &Arc::from("l.txt"), Provenance::default(), &mut set);
        let kinds: Vec<Kind> = set.indicators.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [Kind::Ipv4, Kind::Domain, Kind::Cidr, Kind::Url]);
        assert_eq!(set.meta(&set.indicators[1]).role.as_deref(), Some("C2"));
        assert_eq!(set.skipped, 1);
        assert!(set.diagnostics[0].to_string().starts_with("error: l.txt:7:"));
    }

    #[test]
    fn an_endless_line_is_one_short_error_and_the_next_lines_load() {
        let mut set = IndicatorSet::new();
        let text = format!("1.2.3.4\n{} # c\nevil.example\n", "a".repeat(MAX_LINE));
        load(&text, &Arc::from("l.txt"), Provenance::default(), &mut set);
        assert_eq!(set.indicators.len(), 2);
        assert_eq!(set.skipped, 1);
        let d = set.diagnostics[0].to_string();
        assert_eq!(d, format!("error: l.txt:2: line is {} bytes long, over the 65536-byte limit", MAX_LINE + 4));
    }
}
