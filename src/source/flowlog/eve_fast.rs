//! A one-pass reader for EVE `flow` and `netflow` events, the bulk of a flow-oriented EVE
//! file, in front of the serde reader in [`super::eve`].
//!
//! It reads only what a flow record needs (addresses, ports, protocol, counters, times) and
//! skips everything else by bracket counting. Whenever a line holds anything it does not
//! handle exactly as the serde reader would (an escape in a string it needs, a number that is
//! not a plain unsigned integer, a value of an unexpected type, a key given twice, a value that
//! does not parse), it gives up and the serde reader reads the line, errors included. So it
//! changes speed, never results; `same_as_serde` checks that, and the `flowlog` fuzz target
//! runs it on every input.

use super::{parse_ip, parse_iso_micros, proto_from_name, swar, Record};

struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// A JSON value the scanner keeps: a string without escapes, a plain unsigned integer, or null.
#[derive(Clone, Copy, PartialEq)]
enum V<'a> {
    Null,
    Str(&'a str),
    Uint(u64),
}

impl<'a> Scan<'a> {
    #[inline]
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// The position of the first quote, backslash or control character at or after `i`.
    #[inline]
    fn special(&self, mut i: usize) -> Option<usize> {
        let b = self.b;
        while let Some(w) = swar::word(b, i) {
            let m = swar::zero_bytes(w ^ swar::splat(b'"'))
                | swar::zero_bytes(w ^ swar::splat(b'\\'))
                | swar::zero_bytes(w & swar::splat(0xe0));
            if m != 0 {
                return Some(i + swar::first(m));
            }
            i += 8;
        }
        while !matches!(*b.get(i)?, b'"' | b'\\' | 0..=0x1f) {
            i += 1;
        }
        Some(i)
    }

    /// A string without escapes or control characters (the opening quote is next).
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let i = self.special(start)?;
        if self.b[i] != b'"' {
            return None;
        }
        self.i = i + 1;
        // Quotes are ASCII: the slice falls on character boundaries of the (valid) line.
        self.s.get(start..i)
    }

    /// A string, a plain unsigned integer (JSON's grammar: no leading zeros) or null.
    fn value(&mut self) -> Option<V<'a>> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => self.string().map(V::Str),
            b'n' => self.literal(b"null").map(|_| V::Null),
            b'0'..=b'9' => {
                let start = self.i;
                let mut v: u64 = 0;
                while let Some(d) = self.b.get(self.i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9) {
                    v = v.checked_mul(10)?.checked_add(u64::from(d))?;
                    self.i += 1;
                }
                // A fraction or exponent: not a plain integer.
                if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E'))
                    || (self.b[start] == b'0' && self.i - start > 1)
                {
                    return None;
                }
                Some(V::Uint(v))
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..].starts_with(word).then(|| self.i += word.len())
    }

    /// Skips one value, checking it against JSON's grammar as serde does: strings (simple
    /// escapes only; `\u` gives up), numbers, literals, objects and arrays nested up to a depth.
    fn skip(&mut self, depth: usize) -> Option<()> {
        if depth > 64 {
            return None;
        }
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => {
                self.i += 1;
                loop {
                    self.i = self.special(self.i)?;
                    let c = self.b[self.i];
                    self.i += 1;
                    match c {
                        b'"' => return Some(()),
                        b'\\' => {
                            let e = *self.b.get(self.i)?;
                            if !matches!(e, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                                return None;
                            }
                            self.i += 1;
                        }
                        0..=0x1f => return None,
                        _ => {}
                    }
                }
            }
            // Keys with escapes make `object` give up, and serde then reads the line: slower, same.
            b'{' => self.object(|s, _| s.skip(depth + 1)),
            b'[' => {
                self.i += 1;
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    self.ws();
                    match *self.b.get(self.i)? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => {
                // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
                let b = self.b;
                let mut i = self.i;
                if b[i] == b'-' {
                    i += 1;
                }
                let digits = |i: &mut usize| {
                    let s = *i;
                    while *i < b.len() && b[*i].is_ascii_digit() {
                        *i += 1;
                    }
                    *i - s
                };
                let start = i;
                let n = digits(&mut i);
                if n == 0 || (b[start] == b'0' && n > 1) {
                    return None;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    if digits(&mut i) == 0 {
                        return None;
                    }
                }
                if matches!(b.get(i), Some(b'e' | b'E')) {
                    i += 1;
                    if matches!(b.get(i), Some(b'+' | b'-')) {
                        i += 1;
                    }
                    if digits(&mut i) == 0 {
                        return None;
                    }
                }
                self.i = i;
                Some(())
            }
            _ => None,
        }
    }

    /// The members of an object, each key handed to `f`, which reads or skips its value.
    fn object(&mut self, mut f: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            f(self, key)?;
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// Sets a slot once: a key given twice makes serde's reader fail, so the line goes to it.
#[inline]
fn set<'a>(slot: &mut Option<V<'a>>, v: V<'a>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v);
    Some(())
}

#[derive(Default)]
struct Counters<'a> {
    a: Option<V<'a>>,
    b: Option<V<'a>>,
    c: Option<V<'a>>,
    d: Option<V<'a>>,
    start: Option<V<'a>>,
    end: Option<V<'a>>,
}

/// What the one-pass reader made of a line.
pub(super) enum Fast<'a> {
    /// The record of a `flow` or `netflow` event.
    Record(Record),
    /// An event of another type, read from the line's own `event_type` key, where the reader
    /// stopped: the rest of the line is not looked at.
    Other(&'a str),
    /// The serde reader must decide (see the module documentation).
    Unsure,
}

/// The record of a `flow` or `netflow` event at line `n`, or `None` when the serde reader must
/// decide (see the module documentation).
pub(super) fn flow(line: &str, n: u64) -> Option<Record> {
    match read(line, n, &mut |_| {}) {
        Fast::Record(r) => Some(r),
        _ => None,
    }
}

/// Reads a line, telling `hint` each address as soon as it is read (see `parse_text_hinted`).
pub(super) fn read<'a>(line: &'a str, n: u64, hint: &mut dyn FnMut(std::net::IpAddr)) -> Fast<'a> {
    let mut et = None;
    match flow_hinted(line, n, hint, &mut et) {
        Some(r) => Fast::Record(r),
        None => match et {
            Some(V::Str(t)) if t != "flow" && t != "netflow" => Fast::Other(t),
            _ => Fast::Unsure,
        },
    }
}

/// The record, if the line is a flow or netflow event this reader reads exactly; `et` is left
/// holding the event type when that is read.
fn flow_hinted<'a>(
    line: &'a str,
    n: u64,
    hint: &mut dyn FnMut(std::net::IpAddr),
    et: &mut Option<V<'a>>,
) -> Option<Record> {
    let mut s = Scan { s: line, b: line.as_bytes(), i: 0 };
    // Addresses parsed where they are read, so their lookups can be prefetched early.
    let (mut src_ip, mut dst_ip) = (None, None);
    let mut early = |parsed: &mut Option<std::net::IpAddr>, v: V<'_>| {
        if let V::Str(t) = v {
            *parsed = parse_ip(t);
            parsed.inspect(|a| hint(*a));
        }
    };
    let (mut ts, mut src, mut dst, mut sp, mut dp, mut proto) = (None, None, None, None, None, None);
    let mut c = Counters::default();
    let (mut seen_flow, mut seen_netflow) = (false, false);
    let mut nested = None::<&str>;
    s.object(|s, key| match key {
        "timestamp" => set(&mut ts, s.value()?),
        "event_type" => {
            let v = s.value()?;
            set(et, v)?;
            // Another type of event: no need to read further.
            match v {
                V::Str("flow" | "netflow") => Some(()),
                _ => None,
            }
        }
        "src_ip" => {
            let v = s.value()?;
            set(&mut src, v)?;
            early(&mut src_ip, v);
            Some(())
        }
        "dest_ip" => {
            let v = s.value()?;
            set(&mut dst, v)?;
            early(&mut dst_ip, v);
            Some(())
        }
        "src_port" => set(&mut sp, s.value()?),
        "dest_port" => set(&mut dp, s.value()?),
        "proto" => set(&mut proto, s.value()?),
        // The serde reader reads these into structs and fails where they do not fit.
        "dns" | "tls" | "http" => None,
        "flow" | "netflow" => {
            let seen = if key == "flow" { &mut seen_flow } else { &mut seen_netflow };
            if std::mem::replace(seen, true) {
                return None;
            }
            s.ws();
            if s.b[s.i..].starts_with(b"null") {
                return s.literal(b"null");
            }
            // Both objects given: the serde reader checks the one it ignores too.
            if nested.replace(key).is_some() {
                return None;
            }
            let is_flow = key == "flow";
            s.object(|s, k| match (is_flow, k) {
                (true, "pkts_toserver") | (false, "pkts") => set(&mut c.a, s.value()?),
                (true, "pkts_toclient") => set(&mut c.b, s.value()?),
                (true, "bytes_toserver") | (false, "bytes") => set(&mut c.c, s.value()?),
                (true, "bytes_toclient") => set(&mut c.d, s.value()?),
                (_, "start") => set(&mut c.start, s.value()?),
                (_, "end") => set(&mut c.end, s.value()?),
                _ => s.skip(0),
            })
        }
        _ => s.skip(0),
    })?;
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    let kind = match (*et)? {
        V::Str(k @ ("flow" | "netflow")) => k,
        _ => return None,
    };
    // An object of the other kind read into the counters: the serde reader would ignore it.
    if nested.is_some_and(|k| k != kind) {
        return None;
    }
    fn text<'a>(v: Option<V<'a>>) -> Option<Option<&'a str>> {
        match v {
            None | Some(V::Null) => Some(None),
            Some(V::Str(t)) => Some(Some(t)),
            Some(V::Uint(_)) => None,
        }
    }
    let ip = |v: Option<V<'_>>| -> Option<Option<std::net::IpAddr>> {
        match text(v)? {
            None | Some("") => Some(None),
            Some(t) => parse_ip(t).map(Some),
        }
    };
    let uint = |v: Option<V<'_>>| -> Option<u64> {
        match v {
            None | Some(V::Null) => Some(0),
            Some(V::Uint(x)) => Some(x),
            Some(V::Str(_)) => None,
        }
    };
    let time = |v: Option<V<'_>>| -> Option<Option<i64>> {
        match text(v)? {
            None => Some(None),
            Some(t) => parse_iso_micros(t).map(Some),
        }
    };
    // The timestamp is read only without a start time, but it must be a string (or null) in
    // any case: the serde reader fails on anything else.
    let timestamp = text(ts)?;
    let mut r = Record {
        line: n,
        src: match src_ip {
            Some(a) => Some(a),
            None => ip(src)?,
        },
        dst: match dst_ip {
            Some(a) => Some(a),
            None => ip(dst)?,
        },
        sport: u16::try_from(uint(sp)?).ok()?,
        dport: u16::try_from(uint(dp)?).ok()?,
        proto: match proto {
            None | Some(V::Null) => 0,
            Some(V::Str(p)) => proto_from_name(p).unwrap_or(0),
            Some(V::Uint(p)) => u8::try_from(p).unwrap_or(0),
        },
        ..Default::default()
    };
    r.ts_micros = match time(c.start)? {
        Some(t) => t,
        None => parse_iso_micros(timestamp?)?,
    };
    r.end_micros = time(c.end)?;
    if kind == "flow" {
        r.pkts = [uint(c.a)?, uint(c.b)?];
        r.bytes = [uint(c.c)?, uint(c.d)?];
    } else {
        // The serde reader reads a netflow object's fields only; others there must be valid.
        r.pkts[0] = uint(c.a)?;
        r.bytes[0] = uint(c.c)?;
        if c.b.is_some() || c.d.is_some() {
            return None;
        }
    }
    if r.src.is_none() && r.dst.is_none() {
        return None;
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use crate::synth::flows::{self, EveKind};

    /// Lines to check: generated flow and netflow events (with DNS events between), the shared
    /// corpus's EVE files where present, and mutations of each.
    fn lines() -> Vec<String> {
        let s = flows::generate(400, 5);
        let all: Vec<usize> = (0..s.flows.len()).collect();
        let mut v: Vec<String> = Vec::new();
        for kind in [EveKind::Flow, EveKind::Netflow] {
            v.extend(flows::eve(&s, &all, kind, true).data.lines().map(String::from));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/flows/eve");
        for f in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if let Ok(t) = std::fs::read_to_string(f.path()) {
                v.extend(t.lines().map(String::from));
            }
        }
        v
    }

    #[test]
    fn fast_path_reads_what_serde_reads_and_gives_up_otherwise() {
        let base = lines();
        let mut fast = 0;
        let mut rng = crate::synth::XorShift(0x2545_f491_4f6c_dd1d);
        let mut next = |n: usize| rng.below(n.max(1) as u64) as usize;
        let edits: [&str; 14] =
            ["\"", "\\", "\\u0041", "0", "-1", "1.5", "1e3", "null", "{", "}", ",", " ", "\"flow\":{}", "\t"];
        for line in &base {
            if super::flow(line, 1).is_some() {
                fast += 1;
            }
            super::super::check_eve_fast_path(line);
            for _ in 0..40 {
                let mut m = line.clone();
                let at = next(m.len());
                if !m.is_char_boundary(at) {
                    continue;
                }
                match next(3) {
                    0 => m.insert_str(at, edits[next(edits.len())]),
                    1 => {
                        let end = (at + 1 + next(6)).min(m.len());
                        if m.is_char_boundary(end) {
                            m.replace_range(at..end, "");
                        }
                    }
                    _ => {
                        // Swap a digit for another, or a letter for a quote.
                        let Some(&b) = m.as_bytes().get(at) else { continue };
                        let r = if b.is_ascii_digit() { ((b - b'0' + 1) % 10 + b'0') as char } else { '"' };
                        if b.is_ascii() {
                            m.replace_range(at..at + 1, &r.to_string());
                        }
                    }
                }
                super::super::check_eve_fast_path(&m);
            }
        }
        let flows = base.iter().filter(|l| l.contains("\"event_type\":\"flow\"") || l.contains("\"netflow\"")).count();
        assert!(fast * 10 >= flows * 9, "the fast path read only {fast} of {flows} flow lines");
    }

    #[test]
    fn duplicate_keys_and_odd_values_go_to_serde() {
        let ok = r#"{"timestamp":"2024-09-04T12:00:03.005928+0000","event_type":"flow","src_ip":"10.0.0.1","src_port":1,"dest_ip":"10.0.0.2","dest_port":2,"proto":"TCP","flow":{"pkts_toserver":3,"pkts_toclient":4,"bytes_toserver":5,"bytes_toclient":6,"start":"2024-09-04T12:00:00.000000+0000","age":3,"alerted":false,"x":[1,{"y":-2.5e3}]}}"#;
        let r = super::flow(ok, 7).expect("a plain flow event is read");
        assert_eq!((r.sport, r.dport, r.proto, r.pkts, r.bytes, r.line), (1, 2, 6, [3, 4], [5, 6], 7));
        for bad in [
            ok.replace("\"src_port\":1,", "\"src_port\":1,\"src_port\":1,"),
            ok.replace("\"age\":3", "\"age\":03"),
            ok.replace("\"age\":3", "\"age\":tru"),
            ok.replace("\"src_ip\":\"10.0.0.1\"", "\"src_ip\":\"10.0.0.\\u0031\""),
            ok.replace("\"timestamp\":\"2024-09-04T12:00:03.005928+0000\"", "\"timestamp\":5"),
            ok.replace("\"flow\":{", "\"dns\":5,\"flow\":{"),
            ok.replace("\"flow\":{", "\"flow\":null,\"flow\":{"),
            format!("{ok} x"),
        ] {
            assert!(super::flow(&bad, 1).is_none(), "{bad}");
            super::super::check_eve_fast_path(&bad);
        }
    }
}
