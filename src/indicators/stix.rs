//! STIX 2.1 bundles (and 2.0 `observed-data`): `indicator` objects with STIX patterns, and
//! bare cyber-observable objects (`ipv4-addr`, `ipv6-addr`, `domain-name`, `url`,
//! `x509-certificate`).
//!
//! Accepted documents: a bundle, a bare array of objects, or a single object. Every object is
//! read on its own, so one bad object is reported (by its id) and skipped.
//!
//! Patterns are parsed in full (see [`parse_pattern`]) and then reduced to atomic values: an OR
//! of `=`, `IN (...)` and `ISSUBSET` comparisons on the object paths we match, across or inside
//! brackets, plus the one AND form `[network-traffic:dst_ref.type = ... AND
//! network-traffic:dst_ref.value = ... AND network-traffic:dst_port = N]` (an address with a
//! port). A pattern with `FOLLOWEDBY`, qualifiers, `NOT`, `LIKE`, `MATCHES`, AND between
//! observations or other paths on network objects gets a warning and is not loaded; patterns
//! only about things we do not match (file hashes, e-mail) are just counted as ignored.
//!
//! Provenance: one per bundle; indicators referenced by a `report` get the report's own
//! (name, published date, first external reference URL, author, threat actor).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{normalize, Indicator, IndicatorSet, Kind, Provenance, RowMeta};

/// Patterns longer than this are refused (a pattern is one indicator, not a feed).
const MAX_PATTERN: usize = 1 << 20;
/// Nesting depth of parentheses allowed in a pattern.
const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------------------------------------
// Pattern tokenizer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LBrack,
    RBrack,
    LParen,
    RParen,
    Comma,
    Op(&'static str),
    /// A keyword or bare word (`AND`, `true`, ...).
    Word(String),
    /// An object path, normalised: lowercase, quotes removed (`x509-certificate:hashes.sha-1`).
    Path(String),
    Str(String),
    Num(String),
    /// `t'...'`, `b'...'`, `h'...'`.
    Typed(char, String),
}

fn read_string(chars: &[char], i: &mut usize) -> Result<String, String> {
    // chars[*i] is the opening quote.
    let start = *i;
    *i += 1;
    let mut s = String::new();
    while *i < chars.len() {
        match chars[*i] {
            '\'' => {
                *i += 1;
                return Ok(s);
            }
            '\\' => match chars.get(*i + 1) {
                Some(c @ ('\'' | '\\')) => {
                    s.push(*c);
                    *i += 2;
                }
                other => {
                    return Err(format!(
                        "invalid escape \\{} in string at {}",
                        other.map(|c| c.to_string()).unwrap_or_default(),
                        *i
                    ))
                }
            },
            c => {
                s.push(c);
                *i += 1;
            }
        }
    }
    Err(format!("unterminated string starting at {start}"))
}

fn tokenize(p: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '[' => (toks.push(Tok::LBrack), i += 1).1,
            ']' => (toks.push(Tok::RBrack), i += 1).1,
            '(' => (toks.push(Tok::LParen), i += 1).1,
            ')' => (toks.push(Tok::RParen), i += 1).1,
            ',' => (toks.push(Tok::Comma), i += 1).1,
            '=' => {
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                toks.push(Tok::Op("="));
            }
            '!' | '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    _ => return Err(format!("unexpected '!' at {i}")),
                };
                i += if eq { 2 } else { 1 };
                toks.push(Tok::Op(op));
            }
            '\'' => toks.push(Tok::Str(read_string(&chars, &mut i)?)),
            c if c.is_ascii_digit() || (c == '-' || c == '+') && chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'\'') && matches!(word.as_str(), "t" | "b" | "h") {
                    toks.push(Tok::Typed(word.chars().next().unwrap_or('t'), read_string(&chars, &mut i)?));
                } else if chars.get(i) == Some(&':') {
                    i += 1;
                    let mut path = word.to_ascii_lowercase();
                    path.push(':');
                    let steps_start = path.len();
                    loop {
                        match chars.get(i) {
                            Some(&c) if ident(c) || c == '.' => {
                                path.push(c.to_ascii_lowercase());
                                i += 1;
                            }
                            Some('\'') => path.push_str(&read_string(&chars, &mut i)?.to_ascii_lowercase()),
                            Some('[') if chars.get(i + 1).is_some_and(|c| *c == '*' || c.is_ascii_digit()) => {
                                let end = chars[i..]
                                    .iter()
                                    .position(|c| *c == ']')
                                    .ok_or_else(|| format!("unclosed index in object path at {i}"))?;
                                path.extend(&chars[i..i + end + 1]);
                                i += end + 1;
                            }
                            _ => break,
                        }
                    }
                    if path.len() == steps_start {
                        return Err(format!("object path {word}: without a property at {start}"));
                    }
                    toks.push(Tok::Path(path));
                } else {
                    toks.push(Tok::Word(word));
                }
            }
            c => return Err(format!("unexpected character {c:?} at {i}")),
        }
    }
    Ok(toks)
}

// ---------------------------------------------------------------------------------------------
// Pattern parser

/// An observation expression.
#[derive(Debug)]
enum Obs {
    Or(Vec<Obs>),
    And(Vec<Obs>),
    FollowedBy(Vec<Obs>),
    /// With a `WITHIN`, `REPEATS` or `START`/`STOP` qualifier (the keyword kept).
    Qualified(Box<Obs>, &'static str),
    Bracket(Comp),
}

/// A comparison expression (inside brackets).
#[derive(Debug)]
enum Comp {
    Or(Vec<Comp>),
    And(Vec<Comp>),
    Test { path: String, negated: bool, op: String, values: Vec<Tok> },
    Exists(String),
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            Some(x) => Err(format!("expected {what}, found {}", show(&x))),
            None => Err(format!("expected {what}, found the end of the pattern")),
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    /// Parses `left (KEYWORD left)*` into a list.
    fn list<T>(&mut self, kw: &str, f: fn(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        let mut items = vec![f(self)?];
        while self.is_word(kw) {
            self.pos += 1;
            items.push(f(self)?);
        }
        Ok(items)
    }

    fn obs_followed(&mut self) -> Result<Obs, String> {
        let mut v = self.list("FOLLOWEDBY", Self::obs_or)?;
        Ok(if v.len() == 1 { v.pop().unwrap_or(Obs::Or(Vec::new())) } else { Obs::FollowedBy(v) })
    }

    fn obs_or(&mut self) -> Result<Obs, String> {
        let mut v = self.list("OR", Self::obs_and)?;
        Ok(if v.len() == 1 { v.pop().unwrap_or(Obs::Or(Vec::new())) } else { Obs::Or(v) })
    }

    fn obs_and(&mut self) -> Result<Obs, String> {
        let mut v = self.list("AND", Self::obs_qualified)?;
        Ok(if v.len() == 1 { v.pop().unwrap_or(Obs::Or(Vec::new())) } else { Obs::And(v) })
    }

    fn obs_qualified(&mut self) -> Result<Obs, String> {
        let mut o = match self.next() {
            Some(Tok::LBrack) => {
                let c = self.comp_or()?;
                self.expect(Tok::RBrack, "']'")?;
                Obs::Bracket(c)
            }
            Some(Tok::LParen) => {
                self.enter()?;
                let o = self.obs_followed()?;
                self.expect(Tok::RParen, "')'")?;
                self.depth -= 1;
                o
            }
            Some(t) => return Err(format!("expected '[' or '(', found {}", show(&t))),
            None => return Err("expected '[', found the end of the pattern".into()),
        };
        let depth = self.depth;
        loop {
            let q = if self.is_word("WITHIN") {
                self.pos += 1;
                self.number()?;
                self.keyword("SECONDS")?;
                "WITHIN"
            } else if self.is_word("REPEATS") {
                self.pos += 1;
                self.number()?;
                self.keyword("TIMES")?;
                "REPEATS"
            } else if self.is_word("START") {
                self.pos += 1;
                self.timestamp()?;
                self.keyword("STOP")?;
                self.timestamp()?;
                "START/STOP"
            } else {
                self.depth = depth;
                return Ok(o);
            };
            // Each qualifier wraps the observation once more: bound them like parentheses.
            self.enter()?;
            o = Obs::Qualified(Box::new(o), q);
        }
    }

    fn number(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Tok::Num(_)) => Ok(()),
            t => Err(format!("expected a number, found {}", t.as_ref().map(show).unwrap_or_else(|| "the end".into()))),
        }
    }

    fn timestamp(&mut self) -> Result<(), String> {
        match self.next() {
            Some(Tok::Typed('t', _)) => Ok(()),
            t => Err(format!(
                "expected a timestamp t'...', found {}",
                t.as_ref().map(show).unwrap_or_else(|| "the end".into())
            )),
        }
    }

    fn keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.is_word(kw) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {kw}, found {}", self.peek().map(show).unwrap_or_else(|| "the end".into())))
        }
    }

    fn comp_or(&mut self) -> Result<Comp, String> {
        let mut v = self.list("OR", Self::comp_and)?;
        Ok(if v.len() == 1 { v.pop().unwrap_or(Comp::Or(Vec::new())) } else { Comp::Or(v) })
    }

    fn comp_and(&mut self) -> Result<Comp, String> {
        let mut v = self.list("AND", Self::comp_test)?;
        Ok(if v.len() == 1 { v.pop().unwrap_or(Comp::Or(Vec::new())) } else { Comp::And(v) })
    }

    fn comp_test(&mut self) -> Result<Comp, String> {
        let path = match self.next() {
            Some(Tok::LParen) => {
                self.enter()?;
                let c = self.comp_or()?;
                self.expect(Tok::RParen, "')'")?;
                self.depth -= 1;
                return Ok(c);
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("EXISTS") => match self.next() {
                Some(Tok::Path(p)) => return Ok(Comp::Exists(p)),
                t => {
                    return Err(format!(
                        "expected an object path after EXISTS, found {}",
                        t.as_ref().map(show).unwrap_or_else(|| "the end".into())
                    ))
                }
            },
            Some(Tok::Path(p)) => p,
            Some(t) => return Err(format!("expected an object path (type:property), found {}", show(&t))),
            None => return Err("expected a comparison, found the end of the pattern".into()),
        };
        let negated = self.is_word("NOT");
        if negated {
            self.pos += 1;
        }
        let op = match self.next() {
            Some(Tok::Op(o)) => o.to_string(),
            Some(Tok::Word(w))
                if ["IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"].iter().any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                w.to_ascii_uppercase()
            }
            t => {
                return Err(format!(
                    "expected a comparison operator after {path}, found {}",
                    t.as_ref().map(show).unwrap_or_else(|| "the end".into())
                ))
            }
        };
        let values = if op == "IN" {
            self.expect(Tok::LParen, "'(' after IN")?;
            let mut v = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                v.push(self.literal()?);
            }
            self.expect(Tok::RParen, "')' closing the IN list")?;
            v
        } else {
            vec![self.literal()?]
        };
        Ok(Comp::Test { path, negated, op, values })
    }

    fn literal(&mut self) -> Result<Tok, String> {
        match self.next() {
            Some(t @ (Tok::Str(_) | Tok::Num(_) | Tok::Typed(..))) => Ok(t),
            Some(Tok::Word(w)) if w == "true" || w == "false" => Ok(Tok::Word(w)),
            t => Err(format!("expected a value, found {}", t.as_ref().map(show).unwrap_or_else(|| "the end".into()))),
        }
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::LBrack => "'['".into(),
        Tok::RBrack => "']'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Op(o) => format!("'{o}'"),
        Tok::Word(w) => w.clone(),
        Tok::Path(p) => p.clone(),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n) => n.clone(),
        Tok::Typed(c, s) => format!("{c}'{s}'"),
    }
}

/// Parses a STIX 2.1 pattern (the whole grammar, so garbage is told from the unsupported).
fn parse_pattern(p: &str) -> Result<Obs, String> {
    if p.len() > MAX_PATTERN {
        return Err(format!("pattern longer than {MAX_PATTERN} bytes"));
    }
    let toks = tokenize(p)?;
    if toks.is_empty() {
        return Err("empty pattern".into());
    }
    let mut parser = Parser { toks, pos: 0, depth: 0 };
    let o = parser.obs_followed()?;
    if let Some(t) = parser.peek() {
        return Err(format!("unexpected {} after the end of the pattern", show(t)));
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// Pattern -> atomic values

/// One value a pattern matches: the text for [`normalize::parse_value`] and the kind hint.
#[derive(Debug, PartialEq)]
struct Atom {
    value: String,
    kind: Option<Kind>,
}

/// What a pattern has that we cannot load.
#[derive(Default, Debug)]
struct Issues {
    /// Parts about objects we never match (files, e-mail...).
    unmatched: usize,
    /// Parts a user would expect to match but that are not atomic (FOLLOWEDBY, LIKE...).
    not_atomic: Vec<String>,
}

const NETWORK_TYPES: [&str; 6] =
    ["ipv4-addr", "ipv6-addr", "domain-name", "url", "x509-certificate", "network-traffic"];

fn object_type(path: &str) -> &str {
    path.split(':').next().unwrap_or("")
}

fn is_network(path: &str) -> bool {
    NETWORK_TYPES.contains(&object_type(path))
}

/// True when some comparison in `o` is about an object type we match.
fn obs_is_network(o: &Obs) -> bool {
    match o {
        Obs::Or(v) | Obs::And(v) | Obs::FollowedBy(v) => v.iter().any(obs_is_network),
        Obs::Qualified(o, _) => obs_is_network(o),
        Obs::Bracket(c) => {
            let mut paths = Vec::new();
            comp_paths(c, &mut paths);
            paths.iter().any(|p| is_network(p))
        }
    }
}

fn obs_atoms(o: &Obs, out: &mut Vec<Atom>, issues: &mut Issues) {
    let reason = match o {
        Obs::Or(v) => return v.iter().for_each(|o| obs_atoms(o, out, issues)),
        Obs::Bracket(c) => return comp_atoms(c, out, issues),
        Obs::And(_) => "AND between observations",
        Obs::FollowedBy(_) => "FOLLOWEDBY",
        Obs::Qualified(_, q) => q,
    };
    if obs_is_network(o) {
        issues.not_atomic.push(reason.into());
    } else {
        issues.unmatched += 1;
    }
}

fn comp_paths<'a>(c: &'a Comp, out: &mut Vec<&'a str>) {
    match c {
        Comp::Or(v) | Comp::And(v) => v.iter().for_each(|c| comp_paths(c, out)),
        Comp::Test { path, .. } | Comp::Exists(path) => out.push(path),
    }
}

fn comp_atoms(c: &Comp, out: &mut Vec<Atom>, issues: &mut Issues) {
    match c {
        Comp::Or(v) => v.iter().for_each(|c| comp_atoms(c, out, issues)),
        Comp::And(v) => {
            let mut paths = Vec::new();
            comp_paths(c, &mut paths);
            if !paths.iter().any(|p| is_network(p)) {
                issues.unmatched += 1;
            } else if let Err(e) = traffic_atoms(v, out) {
                issues.not_atomic.push(e);
            }
        }
        Comp::Exists(p) if !is_network(p) => issues.unmatched += 1,
        Comp::Exists(_) => issues.not_atomic.push("EXISTS".into()),
        Comp::Test { path, negated, op, values } => {
            if !is_network(path) {
                issues.unmatched += 1;
                return;
            }
            if *negated {
                issues.not_atomic.push("NOT".into());
                return;
            }
            let kind = match path.as_str() {
                "ipv4-addr:value" => Some(Kind::Ipv4),
                "ipv6-addr:value" => Some(Kind::Ipv6),
                "domain-name:value" => Some(Kind::Domain),
                "url:value" => Some(Kind::Url),
                "x509-certificate:hashes.sha-1" | "x509-certificate:hashes.sha1" => Some(Kind::Sha1Cert),
                "x509-certificate:hashes.sha-256" | "x509-certificate:hashes.sha256" => Some(Kind::Sha256Cert),
                "network-traffic:dst_ref.value" | "network-traffic:src_ref.value" => None,
                _ => {
                    issues.not_atomic.push(format!("path {path}"));
                    return;
                }
            };
            let address = matches!(kind, Some(Kind::Ipv4 | Kind::Ipv6) | None);
            match op.as_str() {
                "=" | "IN" => {}
                "ISSUBSET" if address => {}
                other => {
                    issues.not_atomic.push(format!("{other} on {path}"));
                    return;
                }
            }
            let strings: Vec<&str> =
                values.iter().filter_map(|v| if let Tok::Str(s) = v { Some(s.as_str()) } else { None }).collect();
            if strings.len() != values.len() {
                issues.not_atomic.push(format!("non-string value for {path}"));
                return;
            }
            out.extend(strings.into_iter().map(|s| Atom { value: s.to_string(), kind }));
        }
    }
}

/// The AND form we load: `network-traffic:dst_ref.value` (`=` or `IN`), optionally with
/// `dst_ref.type = '...'` and `dst_port = N`. Anything else is not atomic.
fn traffic_atoms(v: &[Comp], out: &mut Vec<Atom>) -> Result<(), String> {
    let not = || "AND of comparisons other than network-traffic dst_ref/dst_port".to_string();
    let mut values: Option<Vec<String>> = None;
    let mut ty: Option<String> = None;
    let mut port: Option<u16> = None;
    for c in v {
        let Comp::Test { path, negated: false, op, values: vals } = c else { return Err(not()) };
        match (path.as_str(), op.as_str(), vals.as_slice()) {
            ("network-traffic:dst_ref.value", "=" | "IN", _) if values.is_none() => {
                let s: Vec<String> =
                    vals.iter().filter_map(|v| if let Tok::Str(s) = v { Some(s.clone()) } else { None }).collect();
                if s.len() != vals.len() {
                    return Err(not());
                }
                values = Some(s);
            }
            ("network-traffic:dst_ref.type", "=", [Tok::Str(t)]) if ty.is_none() => ty = Some(t.clone()),
            ("network-traffic:dst_port", "=", [Tok::Num(n)]) if port.is_none() => {
                port = Some(n.parse().map_err(|_| format!("bad dst_port {n}"))?)
            }
            _ => return Err(not()),
        }
    }
    let Some(values) = values else { return Err(not()) };
    let kind = match ty.as_deref() {
        None => None,
        Some("ipv4-addr") => Some(Kind::Ipv4),
        Some("ipv6-addr") => Some(Kind::Ipv6),
        Some("domain-name") => Some(Kind::Domain),
        Some(other) => return Err(format!("dst_ref.type {other:?}")),
    };
    for v in values {
        let value = match port {
            Some(p) if kind != Some(Kind::Domain) && !v.contains('/') => {
                if v.contains(':') {
                    format!("[{v}]:{p}")
                } else {
                    format!("{v}:{p}")
                }
            }
            _ => v,
        };
        out.push(Atom { value, kind });
    }
    Ok(())
}

/// Parses `pattern` and reduces it to atomic values.
fn pattern_atoms(pattern: &str) -> Result<(Vec<Atom>, Issues), String> {
    let ast = parse_pattern(pattern)?;
    let mut atoms = Vec::new();
    let mut issues = Issues::default();
    obs_atoms(&ast, &mut atoms, &mut issues);
    Ok((atoms, issues))
}

// ---------------------------------------------------------------------------------------------
// Objects

/// A string, or a number where a producer wrote one (confidence, timestamps).
fn de_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Null) | None => None,
        Some(other) => return Err(serde::de::Error::custom(format!("expected a string or number, found {other}"))),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Head {
    #[serde(rename = "type")]
    ty: String,
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StixIndicator {
    name: Option<String>,
    description: Option<String>,
    pattern: Option<String>,
    pattern_type: Option<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
    revoked: bool,
    #[serde(deserialize_with = "de_text")]
    confidence: Option<String>,
    labels: Vec<String>,
    indicator_types: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExternalReference {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Report {
    name: Option<String>,
    published: Option<String>,
    object_refs: Vec<String>,
    external_references: Vec<ExternalReference>,
    created_by_ref: Option<String>,
    labels: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Sco {
    #[serde(rename = "type")]
    ty: String,
    value: Option<String>,
    hashes: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ObservedData {
    first_observed: Option<String>,
    last_observed: Option<String>,
    /// STIX 2.0: the observed objects inline, keyed by a local reference.
    objects: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
struct BundleHead {
    #[serde(rename = "type", default)]
    ty: Option<String>,
    #[serde(default)]
    objects: Value,
}

/// Observable types we do not match (counted as ignored when met as objects).
const OTHER_SCOS: [&str; 13] = [
    "artifact",
    "autonomous-system",
    "directory",
    "email-addr",
    "email-message",
    "file",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "user-account",
    "windows-registry-key",
];

/// The objects of a document: a bundle's, an array's, or the single object.
fn document_objects(text: &str, file: &Arc<str>, set: &mut IndicatorSet) -> Option<Vec<Value>> {
    let json_error = |set: &mut IndicatorSet, e: serde_json::Error| {
        set.error(file, Some(e.line().to_string()), format!("not valid JSON: {e}"));
        None
    };
    if text.trim_start().starts_with('[') {
        return match serde_json::from_str::<Vec<Value>>(text) {
            Ok(v) => Some(v),
            Err(e) => json_error(set, e),
        };
    }
    if let Ok(b) = serde_json::from_str::<BundleHead>(text) {
        if b.ty.as_deref() == Some("bundle") {
            return match b.objects {
                Value::Array(v) => Some(v),
                Value::Null => Some(Vec::new()),
                _ => {
                    set.error(file, None, "the bundle's `objects` is not a list".into());
                    None
                }
            };
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Some(vec![v]),
        Err(e) => json_error(set, e),
    }
}

/// Sources are made when first needed, so a bundle of reports makes no empty bundle source.
struct Sources<'a> {
    stem: &'a str,
    file: &'a Arc<str>,
    bundle: Option<u32>,
    publisher: String,
    reports: Vec<(Report, Option<u32>)>,
    report_of: HashMap<String, usize>,
    names: HashMap<String, (String, String)>,
}

impl Sources<'_> {
    fn for_object(&mut self, id: Option<&str>, set: &mut IndicatorSet) -> u32 {
        if let Some(r) = id.and_then(|id| self.report_of.get(id)).copied() {
            if let Some(s) = self.reports[r].1 {
                return s;
            }
            let rep = &self.reports[r].0;
            let name_of = |id: &str, types: &[&str]| {
                self.names.get(id).filter(|(t, _)| types.contains(&t.as_str())).map(|(_, n)| n.clone())
            };
            let date = rep
                .published
                .as_deref()
                .map(|p| crate::time::parse(p).map(crate::time::format_date).unwrap_or_else(|| p.to_string()));
            let prov = Provenance {
                set: self.stem.to_string(),
                title: rep.name.clone().unwrap_or_default(),
                publisher: rep
                    .created_by_ref
                    .as_deref()
                    .and_then(|id| name_of(id, &["identity"]))
                    .unwrap_or_else(|| self.publisher.clone()),
                date,
                url: rep.external_references.iter().find_map(|e| e.url.clone()),
                actor: rep.object_refs.iter().find_map(|id| name_of(id, &["threat-actor", "intrusion-set"])),
                entity: None,
                tags: rep.labels.clone(),
                file: self.file.to_string(),
                format: "stix",
            };
            let s = set.add_source(prov);
            self.reports[r].1 = Some(s);
            return s;
        }
        if let Some(s) = self.bundle {
            return s;
        }
        let s = set.add_source(Provenance {
            set: self.stem.to_string(),
            publisher: self.publisher.clone(),
            file: self.file.to_string(),
            format: "stix",
            ..Provenance::default()
        });
        self.bundle = Some(s);
        s
    }
}

/// Parses one value and adds it, reporting failures at `loc` (the object id).
#[allow(clippy::too_many_arguments)]
fn add_at(
    set: &mut IndicatorSet,
    raw: &str,
    kind: Option<Kind>,
    source: u32,
    meta: u32,
    file: &Arc<str>,
    loc: &str,
    line: u32,
) {
    match normalize::parse_value(raw, kind) {
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

pub fn load(text: &str, file: &Arc<str>, stem: &str, set: &mut IndicatorSet) {
    let Some(objects) = document_objects(text, file, set) else { return };
    let heads: Vec<Result<Head, String>> = objects
        .iter()
        .map(|v| match v {
            Value::Object(_) => Head::deserialize(v).map_err(|e| e.to_string()),
            _ => Err("not a JSON object".into()),
        })
        .collect();
    let mut src = Sources {
        stem,
        file,
        bundle: None,
        publisher: String::new(),
        reports: Vec::new(),
        report_of: HashMap::new(),
        names: HashMap::new(),
    };
    // First pass: reports and the names of things they point at.
    let mut identities = 0;
    for (v, h) in objects.iter().zip(&heads) {
        let Ok(h) = h else { continue };
        match h.ty.as_str() {
            "report" => {
                if let Ok(r) = Report::deserialize(v) {
                    for id in &r.object_refs {
                        src.report_of.entry(id.clone()).or_insert(src.reports.len());
                    }
                    src.reports.push((r, None));
                }
            }
            "identity" | "threat-actor" | "intrusion-set" | "campaign" => {
                if let (Some(id), Ok(Named { name: Some(n) })) = (&h.id, Named::deserialize(v)) {
                    if h.ty == "identity" {
                        identities += 1;
                        src.publisher = n.clone();
                    }
                    src.names.insert(id.clone(), (h.ty.clone(), n));
                }
            }
            _ => {}
        }
    }
    if identities != 1 {
        src.publisher.clear();
    }
    let plain_meta = set.intern_meta(RowMeta::default());
    for (i, (v, h)) in objects.into_iter().zip(heads).enumerate() {
        let line = i as u32 + 1;
        let head = match h {
            Ok(h) => h,
            Err(e) => {
                set.error(file, Some(format!("objects[{i}]")), format!("unreadable STIX object: {e}"));
                continue;
            }
        };
        let loc = head.id.clone().unwrap_or_else(|| format!("objects[{i}]"));
        match head.ty.as_str() {
            "indicator" => load_indicator(v, &loc, head.id.as_deref(), line, &mut src, set),
            "ipv4-addr" | "ipv6-addr" | "domain-name" | "url" | "x509-certificate" => {
                let source = src.for_object(head.id.as_deref(), set);
                load_sco(&v, &loc, source, plain_meta, line, file, set);
            }
            "observed-data" => {
                let od = match ObservedData::deserialize(v) {
                    Ok(o) => o,
                    Err(e) => {
                        set.error(file, Some(loc), format!("unreadable observed-data: {e}"));
                        continue;
                    }
                };
                let meta = set.intern_meta(RowMeta {
                    first_seen: od.first_observed.as_deref().and_then(crate::time::parse),
                    last_seen: od.last_observed.as_deref().and_then(crate::time::parse),
                    ..RowMeta::default()
                });
                for (key, o) in &od.objects {
                    let oloc = format!("{loc}/objects/{key}");
                    let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
                    if ["ipv4-addr", "ipv6-addr", "domain-name", "url", "x509-certificate"].contains(&ty) {
                        let source = src.for_object(head.id.as_deref(), set);
                        load_sco(o, &oloc, source, meta, line, file, set);
                    } else {
                        set.ignored += 1;
                    }
                }
            }
            t if OTHER_SCOS.contains(&t) => set.ignored += 1,
            "" => set.error(file, Some(loc), "STIX object without a type".into()),
            _ => {}
        }
    }
}

fn load_sco(v: &Value, loc: &str, source: u32, meta: u32, line: u32, file: &Arc<str>, set: &mut IndicatorSet) {
    let sco = match Sco::deserialize(v) {
        Ok(s) => s,
        Err(e) => {
            set.error(
                file,
                Some(loc.to_string()),
                format!("unreadable {} object: {e}", v.get("type").and_then(Value::as_str).unwrap_or("STIX")),
            );
            return;
        }
    };
    if sco.ty == "x509-certificate" {
        let mut any = false;
        for (alg, h) in &sco.hashes {
            let kind = match alg.to_ascii_uppercase().replace('-', "").as_str() {
                "SHA1" => Kind::Sha1Cert,
                "SHA256" => Kind::Sha256Cert,
                _ => continue,
            };
            any = true;
            add_at(set, h, Some(kind), source, meta, file, loc, line);
        }
        if !any {
            set.ignored += 1;
        }
        return;
    }
    let kind = match sco.ty.as_str() {
        "ipv4-addr" => Kind::Ipv4,
        "ipv6-addr" => Kind::Ipv6,
        "domain-name" => Kind::Domain,
        _ => Kind::Url,
    };
    match sco.value.as_deref() {
        Some(val) => add_at(set, val, Some(kind), source, meta, file, loc, line),
        None => set.error(file, Some(loc.to_string()), format!("{} object without a value", sco.ty)),
    }
}

fn load_indicator(v: Value, loc: &str, id: Option<&str>, line: u32, src: &mut Sources<'_>, set: &mut IndicatorSet) {
    let file = src.file;
    let ind = match StixIndicator::deserialize(v) {
        Ok(i) => i,
        Err(e) => {
            set.error(file, Some(loc.to_string()), format!("unreadable indicator: {e}"));
            return;
        }
    };
    if ind.revoked {
        set.ignored += 1;
        return;
    }
    let pattern_type = ind.pattern_type.as_deref().unwrap_or("stix");
    if !pattern_type.eq_ignore_ascii_case("stix") {
        set.ignored += 1;
        set.warn(file, Some(loc.to_string()), format!("pattern_type {pattern_type:?} is not matchable, not loaded"));
        return;
    }
    let Some(pattern) = ind.pattern.as_deref() else {
        set.error(file, Some(loc.to_string()), "indicator without a pattern".into());
        return;
    };
    let (atoms, issues) = match pattern_atoms(pattern) {
        Ok(r) => r,
        Err(e) => {
            set.error(file, Some(loc.to_string()), format!("bad STIX pattern: {e}"));
            return;
        }
    };
    let mut reasons = issues.not_atomic;
    reasons.dedup();
    if atoms.is_empty() {
        set.ignored += 1;
        if !reasons.is_empty() {
            set.warn(
                file,
                Some(loc.to_string()),
                format!("pattern is not atomically matchable ({}), not loaded", reasons.join(", ")),
            );
        }
        return;
    }
    if !reasons.is_empty() {
        set.warn(
            file,
            Some(loc.to_string()),
            format!(
                "part of the pattern is not atomically matchable ({}), not loaded; its other {} value(s) are",
                reasons.join(", "),
                atoms.len()
            ),
        );
    }
    let mut meta = RowMeta::default();
    for (slot, v, what) in [
        (&mut meta.valid_from, &ind.valid_from, "valid_from"),
        (&mut meta.valid_until, &ind.valid_until, "valid_until"),
    ] {
        if let Some(v) = v.as_deref() {
            match crate::time::parse(v) {
                Some(t) => *slot = Some(t),
                None => {
                    set.error(file, Some(loc.to_string()), format!("unreadable {what} {v:?}"));
                    return;
                }
            }
        }
    }
    meta.role = ind.name.or(ind.description).filter(|r| !r.trim().is_empty()).map(|r| Arc::from(r.trim()));
    meta.confidence = ind.confidence.map(|c| Arc::from(c.as_str()));
    meta.tags = ind.labels.iter().chain(&ind.indicator_types).map(|t| Arc::from(t.as_str())).collect();
    let meta = set.intern_meta(meta);
    let source = src.for_object(id, set);
    for a in atoms {
        add_at(set, &a.value, a.kind, source, meta, file, loc, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/tests/data/indicators/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn load_str(text: &str) -> IndicatorSet {
        let mut set = IndicatorSet::new();
        load(text, &Arc::from("bundle.json"), "bundle", &mut set);
        set
    }

    fn atoms(p: &str) -> Vec<(String, Option<Kind>)> {
        let (a, i) = pattern_atoms(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(i.not_atomic.is_empty() && i.unmatched == 0, "{p}: {i:?}");
        a.into_iter().map(|a| (a.value, a.kind)).collect()
    }

    fn not_atomic(p: &str) -> Vec<String> {
        let (a, i) = pattern_atoms(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(a.is_empty(), "{p}: {a:?}");
        i.not_atomic
    }

    fn one(v: &str, k: Option<Kind>) -> (String, Option<Kind>) {
        (v.to_string(), k)
    }

    #[test]
    fn pattern_single_or_in_issubset() {
        assert_eq!(atoms("[ipv4-addr:value = '192.0.2.1']"), [one("192.0.2.1", Some(Kind::Ipv4))]);
        assert_eq!(
            atoms("[domain-name:value = 'a.example'] OR [url:value = 'http://b.example/x'] OR ([ipv6-addr:value = '2001:db8::1'])"),
            [one("a.example", Some(Kind::Domain)), one("http://b.example/x", Some(Kind::Url)), one("2001:db8::1", Some(Kind::Ipv6))]
        );
        assert_eq!(
            atoms("[ipv4-addr:value IN ('192.0.2.1', '192.0.2.2') OR ipv4-addr:value = '192.0.2.3']"),
            [
                one("192.0.2.1", Some(Kind::Ipv4)),
                one("192.0.2.2", Some(Kind::Ipv4)),
                one("192.0.2.3", Some(Kind::Ipv4))
            ]
        );
        assert_eq!(atoms("[ipv4-addr:value ISSUBSET '198.51.100.0/24']"), [one("198.51.100.0/24", Some(Kind::Ipv4))]);
        assert_eq!(
            atoms("[x509-certificate:hashes.'SHA-1' = 'aa'] OR [x509-certificate:hashes.'SHA-256' = 'bb']"),
            [one("aa", Some(Kind::Sha1Cert)), one("bb", Some(Kind::Sha256Cert))]
        );
    }

    #[test]
    fn pattern_escapes() {
        assert_eq!(
            atoms(r"[url:value = 'http://x.example/it\'s\\here']"),
            [one(r"http://x.example/it's\here", Some(Kind::Url))]
        );
        assert!(pattern_atoms(r"[url:value = 'bad \n escape']").unwrap_err().contains("escape"));
        assert!(pattern_atoms("[url:value = 'unterminated]").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn pattern_network_traffic_with_port() {
        let p = "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.5' AND network-traffic:dst_port = 443]";
        assert_eq!(atoms(p), [one("203.0.113.5:443", Some(Kind::Ipv4))]);
        let p = "[network-traffic:dst_ref.value = '2001:db8::5' AND network-traffic:dst_port = 8443]";
        assert_eq!(atoms(p), [one("[2001:db8::5]:8443", None)]);
        assert_eq!(atoms("[network-traffic:dst_ref.value = '192.0.2.9']"), [one("192.0.2.9", None)]);
        let r = normalize::parse_value("[2001:db8::5]:8443", None).unwrap();
        assert_eq!((r.kind, r.port), (Kind::Ipv6, Some(8443)));
    }

    #[test]
    fn pattern_unsupported_is_not_atomic() {
        assert_eq!(
            not_atomic("[ipv4-addr:value = '192.0.2.1'] FOLLOWEDBY [domain-name:value = 'a.example']"),
            ["FOLLOWEDBY"]
        );
        assert_eq!(not_atomic("[ipv4-addr:value = '192.0.2.1'] WITHIN 300 SECONDS"), ["WITHIN"]);
        assert_eq!(not_atomic("[ipv4-addr:value = '192.0.2.1'] REPEATS 5 TIMES"), ["REPEATS"]);
        assert_eq!(
            not_atomic("[ipv4-addr:value = '192.0.2.1'] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'"),
            ["START/STOP"]
        );
        assert_eq!(not_atomic("[ipv4-addr:value NOT = '192.0.2.1']"), ["NOT"]);
        assert_eq!(not_atomic("[domain-name:value LIKE '%.example']"), ["LIKE on domain-name:value"]);
        assert_eq!(not_atomic("[url:value MATCHES '^http']"), ["MATCHES on url:value"]);
        assert_eq!(
            not_atomic("[ipv4-addr:value = '192.0.2.1'] AND [domain-name:value = 'a.example']"),
            ["AND between observations"]
        );
        assert_eq!(not_atomic("[network-traffic:protocols[*] = 'tcp' AND network-traffic:dst_port = 22]").len(), 1);
        // Not network at all: ignored quietly.
        let (a, i) = pattern_atoms("[file:hashes.'SHA-256' = 'abc' AND file:name = 'x.exe']").unwrap();
        assert!(a.is_empty() && i.not_atomic.is_empty() && i.unmatched == 1);
        let (a, i) = pattern_atoms("[file:name = 'a.exe'] FOLLOWEDBY [file:name = 'b.exe']").unwrap();
        assert!(a.is_empty() && i.not_atomic.is_empty() && i.unmatched == 1);
        // Mixed OR: the matchable half loads.
        let (a, i) = pattern_atoms("[file:name = 'x.exe'] OR [ipv4-addr:value = '192.0.2.1']").unwrap();
        assert_eq!((a.len(), i.unmatched), (1, 1));
    }

    #[test]
    fn pattern_garbage_and_unbalanced() {
        for p in [
            "",
            "ipv4-addr:value = '1'",
            "[ipv4-addr:value = '192.0.2.1'",
            "[ipv4-addr:value = '192.0.2.1']]",
            "[ipv4-addr:value '192.0.2.1']",
            "[ipv4-addr:value = ]",
            "[= '1']",
            "([ipv4-addr:value = '1']",
            "[a:b = '1'] OR",
            "[a:b IN ('1',)]",
            "[a:b = '1'] WITHIN SECONDS",
            "[a: = '1']",
            "[a:b = '1'] ; drop",
        ] {
            assert!(pattern_atoms(p).is_err(), "{p:?} should be an error");
        }
    }

    #[test]
    fn long_and_deep_patterns_do_not_blow_the_stack() {
        let many: Vec<String> = (0..20_000)
            .map(|i| format!("[ipv4-addr:value = '10.{}.{}.{}']", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        let (a, _) = pattern_atoms(&many.join(" OR ")).unwrap();
        assert_eq!(a.len(), 20_000);
        let deep = format!("{}[ipv4-addr:value = '192.0.2.1']{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(pattern_atoms(&deep).unwrap_err().contains("nested"));
        let deep = format!("[{}ipv4-addr:value = '192.0.2.1'{}]", "(".repeat(100_000), ")".repeat(100_000));
        assert!(pattern_atoms(&deep).unwrap_err().contains("nested"));
        assert!(pattern_atoms(&"[".repeat(100_000)).is_err());
        let quals = format!("[ipv4-addr:value = '192.0.2.1']{}", " WITHIN 1 SECONDS".repeat(40_000));
        assert!(pattern_atoms(&quals).unwrap_err().contains("nested"));
        assert_eq!(not_atomic("([ipv4-addr:value = '192.0.2.1'] WITHIN 1 SECONDS) REPEATS 2 TIMES"), ["REPEATS"]);
        assert!(pattern_atoms(&"x".repeat(MAX_PATTERN + 1)).unwrap_err().contains("longer"));
    }

    #[test]
    fn bundle_fixture() {
        let s = load_str(&fixture("stix-bundle.json"));
        assert_eq!(s.errors(), 0, "{:?}", s.diagnostics);
        let got: Vec<(Kind, &str, Option<u16>)> = s.indicators.iter().map(|i| (i.kind, &*i.value, i.port)).collect();
        assert_eq!(
            got,
            [
                (Kind::Ipv4, "192.0.2.10", None),
                (Kind::Ipv4, "192.0.2.11", None),
                (Kind::Ipv4, "192.0.2.12", None),
                (Kind::Domain, "c2.evil.example", None),
                (Kind::Cidr, "198.51.100.0/24", None),
                (Kind::Ipv4, "203.0.113.5", Some(443)),
                (Kind::Url, "evil.example/gate.php", None),
                (Kind::Sha1Cert, "da39a3ee5e6b4b0d3255bfef95601890afd80709", None),
                (Kind::Ipv6, "2001:db8::66", None),
                (Kind::Domain, "sco.evil.example", None),
            ]
        );
        // Revoked, yara, FOLLOWEDBY, file hash, and the email-addr SCO.
        assert_eq!(s.ignored, 5);
        let warns: Vec<(&str, &str)> =
            s.diagnostics.iter().map(|d| (d.location.as_deref().unwrap_or(""), d.message.as_str())).collect();
        assert_eq!(warns.len(), 2, "{warns:?}");
        assert_eq!(warns[0].0, "indicator--00000000-0000-4000-8000-000000000008");
        assert!(warns[0].1.contains("pattern_type \"yara\""), "{warns:?}");
        assert_eq!(warns[1].0, "indicator--00000000-0000-4000-8000-000000000009");
        assert!(warns[1].1.contains("not atomically matchable (FOLLOWEDBY), not loaded"), "{warns:?}");
        // Three ORed values share one meta.
        assert_eq!(s.indicators[0].meta, s.indicators[2].meta);
        let m = s.meta(&s.indicators[0]);
        assert_eq!(m.role.as_deref(), Some("Example Panda C2 servers"));
        assert_eq!(m.confidence.as_deref(), Some("85"));
        assert_eq!(m.valid_from, crate::time::parse("2024-05-01T00:00:00Z"));
        assert_eq!(m.valid_until, crate::time::parse("2024-11-01T00:00:00Z"));
        assert_eq!(m.tags.iter().map(|t| &**t).collect::<Vec<_>>(), ["apt", "malicious-activity"]);
        // Report provenance for the indicators the report lists, bundle provenance for the rest.
        let p = s.provenance(&s.indicators[0]);
        assert_eq!(p.title, "Example Panda infrastructure");
        assert_eq!(p.date.as_deref(), Some("2024-05-02"));
        assert_eq!(p.url.as_deref(), Some("https://cert.example/advisories/2024-001"));
        assert_eq!(p.publisher, "CERT-EXAMPLE");
        assert_eq!(p.actor.as_deref(), Some("Example Panda"));
        assert_eq!((p.format, p.set.as_str()), ("stix", "bundle"));
        let b = s.provenance(&s.indicators[6]);
        assert_eq!((b.title.as_str(), b.publisher.as_str()), ("", "CERT-EXAMPLE"));
        assert_eq!(s.sources.len(), 2);
    }

    #[test]
    fn malformed_objects_are_reported_by_id() {
        let s = load_str(&fixture("stix-malformed.json"));
        let d: Vec<(&str, &str)> =
            s.diagnostics.iter().map(|d| (d.location.as_deref().unwrap_or(""), d.message.as_str())).collect();
        let locs: Vec<&str> = d.iter().map(|x| x.0).collect();
        assert_eq!(
            locs,
            [
                "indicator--00000000-0000-4000-8000-0000000000b1",
                "indicator--00000000-0000-4000-8000-0000000000b2",
                "indicator--00000000-0000-4000-8000-0000000000b3",
                "indicator--00000000-0000-4000-8000-0000000000b4",
                "objects[5]",
                "indicator--00000000-0000-4000-8000-0000000000b6",
                "ipv4-addr--00000000-0000-4000-8000-0000000000b7",
            ],
            "{d:?}"
        );
        assert!(d[0].1.contains("bad STIX pattern"), "{d:?}");
        assert!(d[1].1.contains("bad STIX pattern"), "{d:?}");
        assert!(d[3].1.contains("IPv4"), "{d:?}");
        assert_eq!(s.errors(), 7);
        assert_eq!(s.indicators.iter().map(|i| &*i.value).collect::<Vec<_>>(), ["192.0.2.1", "192.0.2.2"]);
    }

    #[test]
    fn fixtures_are_detected_as_their_formats() {
        use crate::indicators::load::{detect, Format};
        for (name, format) in [
            ("stix-bundle.json", Format::Stix),
            ("stix-malformed.json", Format::Stix),
            ("misp-event.json", Format::MispJson),
            ("misp-event-malformed.json", Format::MispJson),
            ("misp-export.csv", Format::MispCsv),
            ("misp-export-malformed.csv", Format::MispCsv),
            ("zeek-intel.dat", Format::ZeekIntel),
            ("zeek-intel-malformed.dat", Format::ZeekIntel),
        ] {
            assert_eq!(detect(name.split('.').next().unwrap(), &fixture(name)), format, "{name}");
        }
    }

    #[test]
    fn single_object_array_and_observed_data() {
        let s = load_str(
            r#"{"type": "indicator", "id": "indicator--1", "pattern": "[domain-name:value = 'one.example']", "valid_from": "2024-01-01T00:00:00Z"}"#,
        );
        assert_eq!((s.indicators.len(), s.errors()), (1, 0), "{:?}", s.diagnostics);
        let s = load_str(
            r#"[{"type": "observed-data", "id": "observed-data--1", "first_observed": "2024-01-01T00:00:00Z", "last_observed": "2024-01-02T00:00:00Z", "number_observed": 1,
                 "objects": {"0": {"type": "ipv4-addr", "value": "192.0.2.77"}, "1": {"type": "file", "name": "x.exe"}}}]"#,
        );
        assert_eq!(s.errors(), 0, "{:?}", s.diagnostics);
        assert_eq!(&*s.indicators[0].value, "192.0.2.77");
        assert_eq!(s.meta(&s.indicators[0]).last_seen, crate::time::parse("2024-01-02"));
        assert_eq!(s.ignored, 1);
        let s = load_str("{\"type\": \"bundle\", \"objects\": [");
        assert_eq!(s.errors(), 1);
    }
}
