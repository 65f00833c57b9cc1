//! Turning indicator text as advisories write it into one canonical value per thing.
//!
//! Advisories defang (`hxxp://evil[.]example`, `1.2.3[.]4`), mix case, add trailing dots and
//! write IDNs in Unicode. Matching compares canonical forms only, so every loader sends its
//! values through [`parse_value`] and the hot path never normalises an indicator again.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::Kind;

/// A value after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub kind: Kind,
    pub value: String,
    pub port: Option<u16>,
}

/// Undoes the usual defanging: `hxxp`, `[.]`, `(.)`, `{.}`, `[dot]`, `[:]`, `[://]`, `[@]`.
pub fn refang(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    // Compared as bytes: slicing the str at 4 panics when a multi-byte character spans it.
    let hxxp = |s: &str| s.as_bytes().get(..4).is_some_and(|b| b.eq_ignore_ascii_case(b"hxxp"));
    let needs = t.contains(['[', '(', '{']) || hxxp(t);
    if !needs {
        return Cow::Borrowed(t);
    }
    let mut out = t.to_string();
    for (from, to) in [
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("(dot)", "."),
        ("[DOT]", "."),
        ("[://]", "://"),
        ("[:]", ":"),
        ("[@]", "@"),
        ("[/]", "/"),
    ] {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    if hxxp(&out) {
        out.replace_range(..4, "http");
    }
    if out.starts_with("fxp://") {
        out.replace_range(..3, "ftp");
    }
    Cow::Owned(out)
}

/// Normalises a domain name: lowercase, trailing dot removed, Unicode labels to punycode.
/// Underscores are allowed (they occur in real hostnames); anything else outside
/// letters, digits and `-` is an error.
pub fn normalize_domain(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('.');
    let s = s.strip_prefix("*.").unwrap_or(s);
    if s.is_empty() {
        return Err("empty domain name".into());
    }
    let ascii = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(s).map_err(|_| "domain name is not valid IDN".to_string())?
    };
    if ascii.len() > 253 {
        return Err("domain name longer than 253 bytes".into());
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err("domain name has an empty label".into());
        }
        if label.len() > 63 {
            return Err("domain label longer than 63 bytes".into());
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err("domain name has characters other than letters, digits, '-' and '_'".into());
        }
    }
    if ascii.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("looks like a malformed IP address, not a domain".into());
    }
    Ok(ascii)
}

/// Normalises a hex digest: colons and spaces removed, lowercase, length checked.
fn normalize_hex(s: &str, len: usize, what: &str) -> Result<String, String> {
    let h: String = s.chars().filter(|c| *c != ':' && *c != ' ' && *c != '-').collect::<String>().to_ascii_lowercase();
    if h.len() != len || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("not a {what} ({len} hex digits)"));
    }
    Ok(h)
}

/// Normalises a URL to `host[:port]/path?query` without scheme, host lowercase and
/// punycode, default port removed. A URL without a path gets `/`.
pub fn normalize_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let rest = ["http://", "https://", "ftp://", "tcp://", "udp://", "//"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| &s[p.len()..])
        .unwrap_or(s);
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = split_host_port(authority)?;
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => normalize_domain(host)?,
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    let path = if path.is_empty() { "/".to_string() } else { path };
    Ok(match port {
        Some(p) if p != 80 && p != 443 => format!("{host}:{p}{path}"),
        _ => format!("{host}{path}"),
    })
}

fn split_host_port(a: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(rest) = a.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '[' in address")?;
        let host = &rest[..end];
        let port = match rest[end + 1..].strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| "bad port")?),
            None => None,
        };
        return Ok((host, port));
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((h, Some(p.parse().map_err(|_| "bad port")?))),
        _ => Ok((a, None)),
    }
}

/// `a.b.c.d` with each part 0-255 and no leading zeros: exactly how `Ipv4Addr` prints.
fn is_canonical_v4(s: &str) -> bool {
    let mut parts = 0;
    for p in s.split('.') {
        parts += 1;
        let ok = match p.as_bytes() {
            [b'0'] => true,
            [b'1'..=b'9', rest @ ..] if rest.len() <= 2 && rest.iter().all(u8::is_ascii_digit) => {
                p.parse::<u16>().is_ok_and(|v| v <= 255)
            }
            _ => false,
        };
        if !ok || parts > 4 {
            return false;
        }
    }
    parts == 4
}

/// Guesses the type of an untyped value (plain lists).
pub fn infer(s: &str) -> Option<Kind> {
    let s = s.trim();
    if s.parse::<IpAddr>().is_ok() || s.parse::<SocketAddr>().is_ok() {
        return Some(if s.contains('.') && !s.contains("::") && s.matches(':').count() <= 1 {
            Kind::Ipv4
        } else {
            Kind::Ipv6
        });
    }
    if s.parse::<IpNet>().is_ok() {
        return Some(Kind::Cidr);
    }
    if s.contains("://") || s.contains('/') {
        return Some(Kind::Url);
    }
    let hex = s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    if hex && !s.contains('.') {
        let digits = s.bytes().filter(u8::is_ascii_hexdigit).count();
        return match digits {
            32 => Some(Kind::Ja3),
            40 => Some(Kind::Sha1Cert),
            64 => Some(Kind::Sha256Cert),
            _ => None,
        };
    }
    if s.len() == 36
        && s.as_bytes()[10] == b'_'
        && s.as_bytes()[23] == b'_'
        && (s.starts_with('t') || s.starts_with('q'))
    {
        return Some(Kind::Ja4);
    }
    if s.contains('.') {
        return Some(Kind::Domain);
    }
    None
}

/// Longest value accepted, in bytes. The longest real indicators are URLs with a query string,
/// well under this.
pub const MAX_VALUE: usize = 8 * 1024;

/// Normalises one value; `hint` is the declared type, if any. The declared type wins, except
/// that an address declared as `ipv4`/`ipv6`/`cidr` is checked against what it is.
pub fn parse_value(raw: &str, hint: Option<Kind>) -> Result<Parsed, String> {
    // Checked before any copy: a multi-megabyte "value" (a file that is one endless line) is
    // not an indicator, and lowercasing or refanging it would only cost time and memory.
    let len = raw.trim().len();
    if len > MAX_VALUE {
        return Err(format!("value is {len} bytes long, over the {MAX_VALUE}-byte limit"));
    }
    let s = refang(raw);
    let s = s.as_ref();
    if s.is_empty() {
        return Err("empty value".into());
    }
    let kind = match hint {
        Some(k) => k,
        None => infer(s).ok_or("cannot tell what kind of indicator this is")?,
    };
    let simple = |kind, value| Ok(Parsed { kind, value, port: None });
    match kind {
        Kind::Ipv4 | Kind::Ipv6 | Kind::Cidr => parse_address(s, kind),
        Kind::Domain => simple(Kind::Domain, normalize_domain(s)?),
        Kind::Url => simple(Kind::Url, normalize_url(s)?),
        Kind::Sha1Cert => simple(kind, normalize_hex(s, 40, "SHA-1 fingerprint")?),
        Kind::Sha256Cert => simple(kind, normalize_hex(s, 64, "SHA-256 fingerprint")?),
        Kind::Ja3 => simple(kind, normalize_hex(s, 32, "JA3 hash")?),
        Kind::Ja4 => {
            let v = s.to_ascii_lowercase();
            let parts: Vec<&str> = v.split('_').collect();
            if parts.len() != 3 || parts[0].len() != 10 || parts[1].len() != 12 || parts[2].len() != 12 {
                return Err("not a JA4 fingerprint (a_b_c, 10+12+12 characters)".into());
            }
            simple(kind, v)
        }
    }
}

fn parse_address(s: &str, declared: Kind) -> Result<Parsed, String> {
    if s.contains('/') {
        let net: IpNet = s.parse().map_err(|_| "not a valid CIDR".to_string())?;
        let trunc = net.trunc();
        // A full-length prefix is just an address.
        if trunc.prefix_len() == trunc.max_prefix_len() {
            let ip = trunc.addr();
            return Ok(Parsed {
                kind: if ip.is_ipv4() { Kind::Ipv4 } else { Kind::Ipv6 },
                value: ip.to_string(),
                port: None,
            });
        }
        return Ok(Parsed { kind: Kind::Cidr, value: trunc.to_string(), port: None });
    }
    // Most lists hold plain dotted quads already in canonical form: keep the text as given.
    if declared != Kind::Ipv6 && is_canonical_v4(s) {
        return Ok(Parsed { kind: Kind::Ipv4, value: s.to_string(), port: None });
    }
    let (ip, port) = if let Ok(ip) = s.parse::<IpAddr>() {
        (ip, None)
    } else if let Ok(sa) = s.parse::<SocketAddr>() {
        (sa.ip(), Some(sa.port()))
    } else if let Some((range_lo, range_hi)) =
        s.split_once('-').filter(|(a, b)| a.trim().parse::<IpAddr>().is_ok() && b.trim().parse::<IpAddr>().is_ok())
    {
        return Err(format!(
            "address ranges ({}-{}) are not supported: write them as CIDRs",
            range_lo.trim(),
            range_hi.trim()
        ));
    } else {
        return Err(match declared {
            Kind::Ipv4 => "not a valid IPv4 address".into(),
            Kind::Ipv6 => "not a valid IPv6 address".into(),
            _ => "not a valid CIDR".into(),
        });
    };
    // IPv4-mapped IPv6 addresses are IPv4 addresses on the wire.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let kind = if ip.is_ipv4() { Kind::Ipv4 } else { Kind::Ipv6 };
    if declared == Kind::Ipv4 && kind == Kind::Ipv6 {
        return Err("declared ipv4 but is an IPv6 address".into());
    }
    Ok(Parsed { kind, value: ip.to_string(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Parsed {
        parse_value(s, None).unwrap()
    }

    #[test]
    fn refangs_the_usual_forms() {
        assert_eq!(p("hxxp://evil[.]example/a").value, "evil.example/a");
        assert_eq!(p("1.2.3[.]4").value, "1.2.3.4");
        assert_eq!(p("evil(.)example").value, "evil.example");
        assert_eq!(p("2001:db8[:]:1").value, "2001:db8::1");
        assert_eq!(p("hXXps[://]evil{.}example").kind, Kind::Url);
    }

    #[test]
    fn infers_types() {
        assert_eq!(p("8.8.8.8").kind, Kind::Ipv4);
        assert_eq!(p("2001:db8::1").kind, Kind::Ipv6);
        assert_eq!(p("10.0.0.0/8").kind, Kind::Cidr);
        assert_eq!(p("10.1.2.3/8").value, "10.0.0.0/8");
        assert_eq!(p("10.1.2.3/32").kind, Kind::Ipv4);
        assert_eq!(p("W8510.COM.").value, "w8510.com");
        assert_eq!(p("http://x.example").value, "x.example/");
        assert_eq!(p("da39a3ee5e6b4b0d3255bfef95601890afd80709").kind, Kind::Sha1Cert);
        assert_eq!(p("e7d705a3286e19ea42f587b344ee6865").kind, Kind::Ja3);
        assert_eq!(p("t13d1516h2_8daaf6152771_02713d6af862").kind, Kind::Ja4);
        let ap = p("1.2.3.4:443");
        assert_eq!((ap.kind, ap.value.as_str(), ap.port), (Kind::Ipv4, "1.2.3.4", Some(443)));
        let ap6 = p("[2001:db8::1]:8443");
        assert_eq!((ap6.kind, ap6.port), (Kind::Ipv6, Some(8443)));
    }

    #[test]
    fn idn_goes_to_punycode() {
        assert_eq!(p("bücher.example").value, "xn--bcher-kva.example");
    }

    #[test]
    fn multibyte_character_across_byte_four_does_not_panic() {
        // Found by the `indicators` fuzz target: "ind\u{fffd}..." sliced at byte 4.
        assert_eq!(refang("ind\u{fffd}\u{fffd}icator"), "ind\u{fffd}\u{fffd}icator");
        assert_eq!(refang("hxx\u{e9}[.]x"), "hxx\u{e9}.x");
        assert!(parse_value("ind\u{fffd}", None).is_err());
    }

    #[test]
    fn overlong_values_are_rejected_before_any_copy() {
        let long = format!("{}.example", "a".repeat(MAX_VALUE));
        let e = parse_value(&long, None).unwrap_err();
        assert!(e.contains("over the 8192-byte limit"), "{e}");
        let e = parse_value(&format!("hxxp://{long}"), Some(Kind::Url)).unwrap_err();
        assert!(e.contains("limit"), "{e}");
        // At the limit is fine (as far as length goes).
        let url = format!("http://a.example/{}", "x".repeat(MAX_VALUE - 17));
        assert_eq!(url.len(), MAX_VALUE);
        assert!(parse_value(&url, None).is_ok());
    }

    #[test]
    fn rejects_garbage_with_reasons() {
        assert!(parse_value("999.1.1.1", Some(Kind::Ipv4)).unwrap_err().contains("IPv4"));
        assert!(parse_value("1.2.3.4-1.2.3.9", Some(Kind::Ipv4)).unwrap_err().contains("ranges"));
        assert!(parse_value("bad domain", Some(Kind::Domain)).is_err());
        assert!(parse_value(&"a".repeat(64), Some(Kind::Domain)).unwrap_err().contains("63"));
        assert!(parse_value("abc", Some(Kind::Sha1Cert)).is_err());
        assert!(parse_value("", None).is_err());
        assert!(parse_value("1.2.3", Some(Kind::Domain)).is_err());
    }

    #[test]
    fn urls_are_canonical() {
        assert_eq!(normalize_url("HTTPS://Evil.Example:443/Gate.php?x=1#frag").unwrap(), "evil.example/Gate.php?x=1");
        assert_eq!(normalize_url("http://evil.example:8080").unwrap(), "evil.example:8080/");
        assert_eq!(normalize_url("evil.example/x").unwrap(), "evil.example/x");
    }
}
