//! MISP events: the event JSON (feeds, exports, REST API responses) and the CSV export.
//!
//! JSON: `{"Event": {...}}`, `{"response": [{"Event": {...}}, ...]}`, or an array of either.
//! Attributes are read from `Event.Attribute` and `Event.Object[].Attribute`. Each event
//! becomes one [`Provenance`] (title `info`, date `date`, publisher `Orgc.name`, tags from the
//! event tags, actor from a `misp-galaxy:threat-actor="..."` tag).
//!
//! CSV: the export with a header (`uuid,event_id,category,type,value,comment,to_ids,date,...`),
//! columns by name; with the `includeContext` columns (`event_info`, `event_date`,
//! `event_tag`, ...) there is one provenance per `event_id`, otherwise one for the file.
//! The CSV `date` column is the attribute's modification timestamp, not a sighting date, and is
//! not used.
//!
//! Only attributes marked `to_ids` are loaded (an attribute without the flag at all is loaded);
//! deleted attributes, `to_ids` false and types we do not match (file hashes, e-mail, `uri`,
//! ...) are counted as ignored.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{normalize, Indicator, IndicatorSet, Kind, Provenance, RowMeta};

// ---------------------------------------------------------------------------------------------
// Shared: attribute types

/// The kind an address value is, from its shape (the normaliser checks it).
fn addr_kind(s: &str) -> Kind {
    if s.contains('/') {
        Kind::Cidr
    } else if s.contains(':') {
        Kind::Ipv6
    } else {
        Kind::Ipv4
    }
}

/// `ip` and `port` as the normaliser reads an address with a port (`1.2.3.4:443`,
/// `[2001:db8::1]:443`). A network with a port keeps only the network.
fn with_port(ip: &str, port: &str) -> Result<String, String> {
    let ip = ip.trim();
    let port: u16 = port.trim().parse().map_err(|_| format!("bad port {:?}", port.trim()))?;
    Ok(if ip.contains('/') {
        ip.to_string()
    } else if ip.contains(':') {
        format!("[{}]:{port}", ip.trim_start_matches('[').trim_end_matches(']'))
    } else {
        format!("{ip}:{port}")
    })
}

/// The values an attribute of type `ty` stands for: `Ok(None)` for a type we do not match.
fn targets(ty: &str, value: &str) -> Result<Option<Vec<(String, Kind)>>, String> {
    let split = || value.split_once('|').ok_or_else(|| format!("{ty} value without '|'"));
    let one = |k| Ok(Some(vec![(value.to_string(), k)]));
    match ty {
        "ip-dst" | "ip-src" => one(addr_kind(value)),
        "ip-dst|port" | "ip-src|port" => {
            let (ip, port) = split()?;
            Ok(Some(vec![(with_port(ip, port)?, addr_kind(ip))]))
        }
        "domain" | "hostname" => one(Kind::Domain),
        "domain|ip" => {
            let (d, ip) = split()?;
            Ok(Some(vec![(d.to_string(), Kind::Domain), (ip.to_string(), addr_kind(ip))]))
        }
        "hostname|port" => Ok(Some(vec![(split()?.0.to_string(), Kind::Domain)])),
        "url" => one(Kind::Url),
        "x509-fingerprint-sha1" => one(Kind::Sha1Cert),
        "x509-fingerprint-sha256" => one(Kind::Sha256Cert),
        "ja3-fingerprint-md5" => one(Kind::Ja3),
        _ => Ok(None),
    }
}

/// Reads MISP's flags: a bool, `1`/`0`, or `"1"`/`"0"`/`"true"`/`"false"` in any case.
fn parse_flag(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" => Some(true),
        "0" | "false" | "f" | "no" => Some(false),
        _ => None,
    }
}

/// The actor named by a `misp-galaxy:threat-actor="X"` tag.
fn actor_from_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<String> {
    tags.into_iter()
        .find_map(|t| t.strip_prefix("misp-galaxy:threat-actor=").map(|a| a.trim_matches('"').to_string()))
        .filter(|a| !a.is_empty())
}

/// Parses one value and adds it, reporting failures at `loc` (an attribute uuid or path).
#[allow(clippy::too_many_arguments)]
fn add_at(
    set: &mut IndicatorSet,
    raw: &str,
    kind: Kind,
    source: u32,
    meta: u32,
    file: &Arc<str>,
    loc: &str,
    line: u32,
) {
    match normalize::parse_value(raw, Some(kind)) {
        Ok(p) => set.indicators.push(Indicator {
            value: p.value.into_boxed_str(),
            kind: p.kind,
            exact: false,
            port: p.port,
            source,
            meta,
            line,
        }),
        Err(e) => set.error(file, Some(loc.to_string()), format!("{e}: {raw:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

/// A string, or a number or bool where MISP (or a converter) wrote one instead of a string.
fn de_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(Value::Null) | None => None,
        Some(other) => return Err(serde::de::Error::custom(format!("expected a string, found {other}"))),
    })
}

/// A flag as MISP writes it: bool, number, or string (see [`parse_flag`]).
fn de_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::Number(n)) => Some(n.as_f64() != Some(0.0)),
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            parse_flag(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("expected a flag (true/false, 1/0), found {s:?}")))?,
        ),
        Some(Value::Null) | None => None,
        Some(other) => return Err(serde::de::Error::custom(format!("expected a flag, found {other}"))),
    })
}

/// A list that may be written as `null`.
fn de_list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tag {
    #[serde(deserialize_with = "de_text")]
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Org {
    #[serde(deserialize_with = "de_text")]
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Event {
    #[serde(deserialize_with = "de_text")]
    uuid: Option<String>,
    #[serde(deserialize_with = "de_text")]
    info: Option<String>,
    #[serde(deserialize_with = "de_text")]
    date: Option<String>,
    #[serde(rename = "Orgc")]
    orgc: Option<Org>,
    #[serde(rename = "Tag", deserialize_with = "de_list")]
    tags: Vec<Tag>,
    #[serde(rename = "Attribute", deserialize_with = "de_list")]
    attributes: Vec<Value>,
    #[serde(rename = "Object", deserialize_with = "de_list")]
    objects: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Object {
    #[serde(deserialize_with = "de_text")]
    name: Option<String>,
    #[serde(deserialize_with = "de_flag")]
    deleted: Option<bool>,
    #[serde(rename = "Attribute", deserialize_with = "de_list")]
    attributes: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Attribute {
    #[serde(deserialize_with = "de_text")]
    uuid: Option<String>,
    #[serde(rename = "type", deserialize_with = "de_text")]
    ty: Option<String>,
    #[serde(deserialize_with = "de_text")]
    category: Option<String>,
    #[serde(deserialize_with = "de_text")]
    value: Option<String>,
    #[serde(deserialize_with = "de_flag")]
    to_ids: Option<bool>,
    #[serde(deserialize_with = "de_flag")]
    deleted: Option<bool>,
    #[serde(deserialize_with = "de_text")]
    comment: Option<String>,
    #[serde(deserialize_with = "de_text")]
    first_seen: Option<String>,
    #[serde(deserialize_with = "de_text")]
    last_seen: Option<String>,
    #[serde(rename = "Tag", deserialize_with = "de_list")]
    tags: Vec<Tag>,
}

/// Finds the events in a document: `{"Event": ...}`, `{"response": ...}`, arrays of these,
/// or a bare event object.
fn collect_events(v: Value, path: String, out: &mut Vec<(String, Value)>, bad: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                collect_events(item, format!("{path}[{i}]"), out, bad);
            }
        }
        Value::Object(mut m) => {
            if let Some(e) = m.remove("Event") {
                out.push((path, e));
            } else if let Some(r) = m.remove("response") {
                collect_events(r, format!("{path}response"), out, bad);
            } else if m.contains_key("Attribute") || m.contains_key("Object") || m.contains_key("info") {
                out.push((path, Value::Object(m)));
            } else {
                bad.push(path);
            }
        }
        _ => bad.push(path),
    }
}

pub fn load_json(text: &str, file: &Arc<str>, stem: &str, set: &mut IndicatorSet) {
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            set.error(file, Some(e.line().to_string()), format!("not valid JSON: {e}"));
            return;
        }
    };
    let mut events = Vec::new();
    let mut bad = Vec::new();
    collect_events(doc, String::new(), &mut events, &mut bad);
    for path in bad {
        let loc = if path.is_empty() { None } else { Some(path) };
        set.error(file, loc, "not a MISP event (expected an object with \"Event\")".into());
    }
    let mut line = 0u32;
    for (n, (path, ev)) in events.into_iter().enumerate() {
        let uuid = ev.get("uuid").and_then(Value::as_str).map(str::to_string);
        let ev_loc = uuid.clone().unwrap_or_else(|| if path.is_empty() { format!("Event[{n}]") } else { path.clone() });
        let ev: Event = match Event::deserialize(ev) {
            Ok(e) => e,
            Err(e) => {
                set.error(file, Some(ev_loc), format!("unreadable MISP event: {e}"));
                continue;
            }
        };
        let tags: Vec<String> = ev.tags.iter().filter_map(|t| t.name.clone()).collect();
        let source = set.add_source(Provenance {
            set: stem.to_string(),
            title: ev.info.clone().unwrap_or_default(),
            publisher: ev.orgc.as_ref().and_then(|o| o.name.clone()).unwrap_or_default(),
            date: ev.date.clone().filter(|d| !d.is_empty()),
            url: None,
            actor: actor_from_tags(tags.iter().map(String::as_str)),
            entity: None,
            tags,
            file: file.to_string(),
            format: "misp-json",
        });
        let prefix = ev.uuid.as_deref().map(|u| format!("event {u} ")).unwrap_or_else(|| format!("{ev_loc} "));
        for (i, a) in ev.attributes.into_iter().enumerate() {
            line += 1;
            load_attribute(a, &format!("{prefix}Attribute[{i}]"), None, source, line, file, set);
        }
        for (j, o) in ev.objects.into_iter().enumerate() {
            let oloc = format!("{prefix}Object[{j}]");
            let obj_loc = o.get("uuid").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| oloc.clone());
            let obj = match Object::deserialize(o) {
                Ok(o) => o,
                Err(e) => {
                    set.error(file, Some(obj_loc), format!("unreadable MISP object: {e}"));
                    continue;
                }
            };
            if obj.deleted == Some(true) {
                set.ignored += obj.attributes.len() as u64;
                line += obj.attributes.len() as u32;
                continue;
            }
            for (i, a) in obj.attributes.into_iter().enumerate() {
                line += 1;
                load_attribute(a, &format!("{oloc}.Attribute[{i}]"), obj.name.as_deref(), source, line, file, set);
            }
        }
    }
}

fn load_attribute(
    v: Value,
    path: &str,
    object: Option<&str>,
    source: u32,
    line: u32,
    file: &Arc<str>,
    set: &mut IndicatorSet,
) {
    let uuid = v.get("uuid").and_then(Value::as_str).map(str::to_string);
    let loc = uuid.unwrap_or_else(|| path.to_string());
    let a = match Attribute::deserialize(v) {
        Ok(a) => a,
        Err(e) => {
            set.error(file, Some(loc), format!("unreadable MISP attribute: {e}"));
            return;
        }
    };
    if a.deleted == Some(true) || a.to_ids == Some(false) {
        set.ignored += 1;
        return;
    }
    let ty = a.ty.as_deref().unwrap_or("");
    let value = a.value.as_deref().unwrap_or("");
    let values = match targets(ty, value) {
        Ok(Some(v)) => v,
        Ok(None) => {
            if ty.is_empty() {
                set.error(file, Some(loc), "attribute without a type".into());
            } else {
                set.ignored += 1;
            }
            return;
        }
        Err(e) => {
            set.error(file, Some(loc), format!("{e}: {value:?}"));
            return;
        }
    };
    let mut meta = RowMeta::default();
    for (slot, v, what) in
        [(&mut meta.first_seen, &a.first_seen, "first_seen"), (&mut meta.last_seen, &a.last_seen, "last_seen")]
    {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            match crate::time::parse(v) {
                Some(t) => *slot = Some(t),
                None => {
                    set.error(file, Some(loc), format!("unreadable {what} {v:?}"));
                    return;
                }
            }
        }
    }
    meta.role = a.comment.as_deref().filter(|c| !c.trim().is_empty()).map(|c| Arc::from(c.trim()));
    meta.tags = a.tags.iter().filter_map(|t| t.name.as_deref()).map(Arc::from).collect();
    if let Some(c) = a.category.as_deref().filter(|c| !c.is_empty()) {
        meta.extra.push((Arc::from("category"), Arc::from(c)));
    }
    if let Some(o) = object.filter(|o| !o.is_empty()) {
        meta.extra.push((Arc::from("object"), Arc::from(o)));
    }
    let meta = set.intern_meta(meta);
    for (v, kind) in values {
        add_at(set, &v, kind, source, meta, file, &loc, line);
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

pub fn load_csv(text: &str, file: &Arc<str>, stem: &str, set: &mut IndicatorSet) {
    let mut rdr = ::csv::ReaderBuilder::new().flexible(true).trim(::csv::Trim::All).from_reader(text.as_bytes());
    let headers = match rdr.headers() {
        Ok(h) => h.iter().map(|h| h.to_ascii_lowercase().replace('-', "_")).collect::<Vec<_>>(),
        Err(e) => {
            set.error(file, Some("1".into()), format!("cannot read the CSV header: {e}"));
            return;
        }
    };
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(c_value), Some(c_type)) = (col("value"), col("type")) else {
        set.error(file, Some("1".into()), "the MISP CSV header needs the columns `type` and `value`".into());
        return;
    };
    let c_event = col("event_id");
    let (c_category, c_comment, c_to_ids, c_tags, c_object) =
        (col("category"), col("comment"), col("to_ids"), col("attribute_tag"), col("object_name"));
    let (c_first, c_last) = (col("first_seen"), col("last_seen"));
    let (c_info, c_date, c_etag, c_org) =
        (col("event_info"), col("event_date"), col("event_tag"), col("event_source_org"));
    let per_event = c_info.is_some() || c_date.is_some() || c_etag.is_some();
    let mut sources: HashMap<String, u32> = HashMap::new();
    let file_source = if per_event {
        None
    } else {
        Some(set.add_source(Provenance {
            set: stem.to_string(),
            file: file.to_string(),
            format: "misp-csv",
            ..Provenance::default()
        }))
    };
    let mut record = ::csv::StringRecord::new();
    loop {
        let line = rdr.position().line() as u32;
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line() as u32).unwrap_or(line);
                set.error(file, Some(line.to_string()), format!("unreadable CSV record: {e}"));
                if matches!(e.kind(), ::csv::ErrorKind::Utf8 { .. }) {
                    continue;
                }
                break;
            }
        }
        let line = record.position().map(|p| p.line() as u32).unwrap_or(line);
        if record.iter().all(str::is_empty) {
            continue;
        }
        let get = |i: Option<usize>| i.and_then(|i| record.get(i)).filter(|v| !v.is_empty());
        let loc = Some(line.to_string());
        if record.len() < headers.len().min(c_value.max(c_type) + 1) {
            set.error(file, loc, format!("{} fields, the header has {}", record.len(), headers.len()));
            continue;
        }
        let to_ids = match get(c_to_ids) {
            None => None,
            Some(f) => match parse_flag(f) {
                Some(b) => Some(b),
                None => {
                    set.error(file, loc, format!("to_ids is not a flag: {f:?}"));
                    continue;
                }
            },
        };
        if to_ids == Some(false) {
            set.ignored += 1;
            continue;
        }
        let ty = get(Some(c_type)).unwrap_or("");
        let value = get(Some(c_value)).unwrap_or("");
        let values = match targets(ty, value) {
            Ok(Some(v)) => v,
            Ok(None) if ty.is_empty() => {
                set.error(file, loc, "attribute without a type".into());
                continue;
            }
            Ok(None) => {
                set.ignored += 1;
                continue;
            }
            Err(e) => {
                set.error(file, loc, format!("{e}: {value:?}"));
                continue;
            }
        };
        let mut meta = RowMeta::default();
        let mut bad_date = None;
        for (slot, idx) in [(&mut meta.first_seen, c_first), (&mut meta.last_seen, c_last)] {
            if let Some(v) = get(idx) {
                match crate::time::parse(v) {
                    Some(t) => *slot = Some(t),
                    None => bad_date = Some(v.to_string()),
                }
            }
        }
        if let Some(d) = bad_date {
            set.error(file, loc, format!("unreadable date {d:?}"));
            continue;
        }
        meta.role = get(c_comment).map(Arc::from);
        meta.tags = get(c_tags)
            .map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).map(Arc::from).collect())
            .unwrap_or_default();
        if let Some(c) = get(c_category) {
            meta.extra.push((Arc::from("category"), Arc::from(c)));
        }
        if let Some(o) = get(c_object) {
            meta.extra.push((Arc::from("object"), Arc::from(o)));
        }
        let source = match file_source {
            Some(s) => s,
            None => {
                let event = get(c_event).unwrap_or("").to_string();
                match sources.get(&event) {
                    Some(&s) => s,
                    None => {
                        let tags: Vec<String> = get(c_etag)
                            .map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect())
                            .unwrap_or_default();
                        let s = set.add_source(Provenance {
                            set: stem.to_string(),
                            title: get(c_info).unwrap_or("").to_string(),
                            publisher: get(c_org).unwrap_or("").to_string(),
                            date: get(c_date).map(String::from),
                            actor: actor_from_tags(tags.iter().map(String::as_str)),
                            tags,
                            file: file.to_string(),
                            format: "misp-csv",
                            ..Provenance::default()
                        });
                        sources.insert(event, s);
                        s
                    }
                }
            }
        };
        let meta = set.intern_meta(meta);
        for (v, kind) in values {
            set.add(&v, Some(kind), false, source, meta, file, line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/data/indicators/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn json(text: &str) -> IndicatorSet {
        let mut set = IndicatorSet::new();
        load_json(text, &Arc::from("event.json"), "event", &mut set);
        set
    }

    fn csv(text: &str) -> IndicatorSet {
        let mut set = IndicatorSet::new();
        load_csv(text, &Arc::from("export.csv"), "export", &mut set);
        set
    }

    fn values(s: &IndicatorSet) -> Vec<(Kind, String, Option<u16>)> {
        s.indicators.iter().map(|i| (i.kind, i.value.to_string(), i.port)).collect()
    }

    fn locations(s: &IndicatorSet) -> Vec<String> {
        s.diagnostics.iter().map(|d| d.location.clone().unwrap_or_default()).collect()
    }

    #[test]
    fn event_json_fixture() {
        let s = json(&fixture("misp-event.json"));
        assert_eq!(s.errors(), 0, "{:?}", s.diagnostics);
        let v = values(&s);
        let want: Vec<(Kind, String, Option<u16>)> = [
            (Kind::Ipv4, "192.0.2.10", None),
            (Kind::Cidr, "198.51.100.0/24", None),
            (Kind::Ipv4, "203.0.113.7", Some(8443)),
            (Kind::Ipv6, "2001:db8::7", Some(443)),
            (Kind::Domain, "c2.evil.example", None),
            (Kind::Domain, "relay.evil.example", None),
            (Kind::Ipv4, "192.0.2.20", None),
            (Kind::Domain, "beacon.evil.example", None),
            (Kind::Url, "evil.example/gate.php", None),
            (Kind::Sha1Cert, "da39a3ee5e6b4b0d3255bfef95601890afd80709", None),
            (Kind::Sha256Cert, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", None),
            (Kind::Ja3, "e7d705a3286e19ea42f587b344ee6865", None),
            (Kind::Ipv4, "203.0.113.50", None),
            (Kind::Domain, "obj.evil.example", None),
        ]
        .into_iter()
        .map(|(k, v, p)| (k, v.to_string(), p))
        .collect();
        assert_eq!(v, want);
        // to_ids false (x2), deleted, uri, sha256 file hash, email, an object's port, and a
        // deleted object's attribute.
        assert_eq!(s.ignored, 8);
        assert_eq!(s.sources.len(), 1);
        let p = &s.sources[0];
        assert_eq!(p.title, "Operation Example: C2 infrastructure");
        assert_eq!(p.date.as_deref(), Some("2024-05-02"));
        assert_eq!(p.publisher, "CERT-EXAMPLE");
        assert_eq!(p.actor.as_deref(), Some("Example Panda"));
        assert_eq!(p.tags, ["tlp:clear", "misp-galaxy:threat-actor=\"Example Panda\""]);
        assert_eq!((p.format, p.set.as_str(), p.url.as_deref()), ("misp-json", "event", None));
        let m = s.meta(&s.indicators[0]);
        assert_eq!(m.role.as_deref(), Some("Primary C2"));
        assert_eq!(m.first_seen, crate::time::parse("2024-04-01T00:00:00.000000+00:00"));
        assert_eq!(m.last_seen, crate::time::parse("2024-04-30T12:00:00.000000+00:00"));
        assert_eq!(m.tags.iter().map(|t| &**t).collect::<Vec<_>>(), ["kill-chain:command-and-control"]);
        assert_eq!(&*m.extra[0].0, "category");
        assert_eq!(&*m.extra[0].1, "Network activity");
        // domain|ip: both halves share the row's meta.
        assert_eq!(s.indicators[5].meta, s.indicators[6].meta);
        let obj = s.meta(&s.indicators[12]);
        assert!(obj.extra.iter().any(|(k, v)| &**k == "object" && &**v == "ip-port"));
    }

    #[test]
    fn malformed_event_json_reports_and_continues() {
        let s = json(&fixture("misp-event-malformed.json"));
        assert_eq!(
            values(&s).iter().map(|v| v.1.as_str()).collect::<Vec<_>>(),
            ["192.0.2.1", "ok.evil.example", "192.0.2.99"]
        );
        let locs = locations(&s);
        assert_eq!(
            locs,
            [
                "[2]",
                "a0000000-0000-4000-8000-000000000002",
                "a0000000-0000-4000-8000-000000000003",
                "a0000000-0000-4000-8000-000000000004",
                "a0000000-0000-4000-8000-000000000005",
                "event e0000000-0000-4000-8000-000000000001 Attribute[6]",
                "e0000000-0000-4000-8000-00000000000b",
            ],
            "{:?}",
            s.diagnostics
        );
        assert_eq!(s.skipped, 7);
        assert_eq!(s.ignored, 1);
        assert!(s.diagnostics[1].message.contains("IPv4"), "{:?}", s.diagnostics);
        assert!(s.diagnostics[2].message.contains("flag"), "{:?}", s.diagnostics);
    }

    #[test]
    fn response_wrapper_arrays_and_numbers_for_strings() {
        let text = r#"{"response": [
            {"Event": {"info": "one", "date": "2024-01-01", "Attribute": [{"type": "ip-dst", "value": "192.0.2.1", "to_ids": "1", "timestamp": 1714000000}]}},
            {"Event": {"info": "two", "Attribute": [{"type": "domain", "value": "two.example", "to_ids": 1, "id": 42},
                                                    {"type": "domain", "value": "off.example", "to_ids": "False"}]}}
        ]}"#;
        let s = json(text);
        assert_eq!(s.errors(), 0, "{:?}", s.diagnostics);
        assert_eq!(s.sources.len(), 2);
        assert_eq!(s.provenance(&s.indicators[1]).title, "two");
        assert_eq!(s.ignored, 1);
        let s = json(
            r#"[{"Event": {"info": "a", "Attribute": [{"type": "url", "value": "hxxp://x.example/a", "to_ids": true}]}}]"#,
        );
        assert_eq!(&*s.indicators[0].value, "x.example/a");
        let s = json("{not json");
        assert_eq!(s.errors(), 1);
    }

    #[test]
    fn csv_export_fixture_with_context() {
        let s = csv(&fixture("misp-export.csv"));
        assert_eq!(s.errors(), 0, "{:?}", s.diagnostics);
        let got: Vec<(Kind, &str)> = s.indicators.iter().map(|i| (i.kind, &*i.value)).collect();
        assert_eq!(
            got,
            [
                (Kind::Ipv4, "192.0.2.10"),
                (Kind::Domain, "c2.evil.example"),
                (Kind::Ipv4, "203.0.113.7"),
                (Kind::Url, "evil.example/gate.php"),
                (Kind::Domain, "other.evil.example"),
                (Kind::Ipv4, "198.51.100.9"),
            ]
        );
        assert_eq!(s.indicators[2].port, Some(443));
        assert_eq!(s.ignored, 3);
        assert_eq!(s.sources.len(), 2);
        let p = s.provenance(&s.indicators[0]);
        assert_eq!(
            (p.title.as_str(), p.date.as_deref(), p.format),
            ("Operation Example", Some("2024-05-02"), "misp-csv")
        );
        assert_eq!(p.actor.as_deref(), Some("Example Panda"));
        assert_eq!(p.publisher, "CERT-EXAMPLE");
        assert_eq!(s.provenance(&s.indicators[4]).title, "Second event");
        let m = s.meta(&s.indicators[0]);
        assert_eq!(m.role.as_deref(), Some("Primary C2"));
        assert_eq!(m.first_seen, None, "the date column is a modification timestamp");
        assert_eq!(m.tags.iter().map(|t| &**t).collect::<Vec<_>>(), ["tlp:clear", "c2"]);
        assert_eq!(&*m.extra[0].1, "Network activity");
    }

    #[test]
    fn csv_malformed_rows_and_plain_header() {
        let s = csv(&fixture("misp-export-malformed.csv"));
        let locs = locations(&s);
        assert_eq!(locs, ["3", "4", "5", "6"], "{:?}", s.diagnostics);
        assert_eq!(s.indicators.len(), 2);
        assert_eq!(s.sources.len(), 1, "no context columns: one provenance for the file");
        assert_eq!(s.ignored, 1);
        let s = csv("uuid,event_id,category\n");
        assert_eq!(s.errors(), 1);
    }
}
