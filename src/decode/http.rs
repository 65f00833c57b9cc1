//! HTTP/1.x request-head parsing for indicator matching: method, request-target, Host and
//! User-Agent of the first request a client sends, plus the host/URL normalisation the matcher
//! compares against.
//!
//! Why so little: plain-HTTP indicators are host names, URLs and the occasional User-Agent, and
//! they are all in the first request head. The parsing itself is `httparse` (zero-copy, no
//! allocation, a fixed header array); this module adds the cheap "is this HTTP at all" gate that
//! keeps TLS and binary protocols from ever reaching it, and a bound on how much a caller buffers
//! while waiting for the end of the head.

/// How much of a client stream to buffer before giving up on finding the end of the request
/// head. Real heads are well under 8 KiB (common server limits are 8-16 KiB).
pub const MAX_HEAD: usize = 16 * 1024;
/// Headers read per request; more is `Malformed` (servers reject such requests too).
pub const MAX_HEADERS: usize = 64;
/// Longest method token accepted by the pre-check (the longest registered one is 17 chars).
const MAX_METHOD: usize = 20;

/// The first request head of a client stream; all fields borrow the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request-target exactly as sent (origin-form "/p?q", absolute-form "http://h/p",
    /// authority-form "h:443" for CONNECT, or "*").
    pub target: &'a str,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// First Host header value as sent (surrounding whitespace trimmed), `None` if absent or
    /// not UTF-8.
    pub host: Option<&'a str>,
    /// First User-Agent header value, same rules as `host`.
    pub user_agent: Option<&'a str>,
    /// Length of the request head (request line + headers + blank line): where the body or the
    /// next pipelined request starts.
    pub head_len: usize,
}

/// Why no request was returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The stream does not start like an HTTP/1.x request: stop looking at it.
    NotHttp,
    /// Looks like a request but the head has not ended yet: buffer more (up to [`MAX_HEAD`]).
    Incomplete,
    /// Starts like HTTP but is not a valid request head, has over [`MAX_HEADERS`] headers, or
    /// did not end within [`MAX_HEAD`] bytes.
    Malformed,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpError::NotHttp => "not HTTP/1.x",
            HttpError::Incomplete => "incomplete HTTP request head",
            HttpError::Malformed => "malformed HTTP request head",
        })
    }
}

impl std::error::Error for HttpError {}

/// The pre-check: a method token (uppercase letters, '-' or '_', at most [`MAX_METHOD`])
/// followed by a space. Registered methods all fit (GET, M-SEARCH, BASELINE-CONTROL...), while
/// TLS (0x16), SSH ("SSH-2.0"), and other binary or text protocols fail within a few bytes.
/// Returns `Ok(true)` when the token and space are there, `Ok(false)` when the bytes so far are
/// a valid token prefix.
fn method_precheck(b: &[u8]) -> Result<bool, HttpError> {
    for (i, &c) in b.iter().take(MAX_METHOD + 1).enumerate() {
        match c {
            b'A'..=b'Z' => {}
            b'-' | b'_' if i > 0 => {}
            b' ' if i > 0 => return Ok(true),
            _ => return Err(HttpError::NotHttp),
        }
    }
    if b.len() > MAX_METHOD {
        return Err(HttpError::NotHttp);
    }
    Ok(false)
}

/// Parses the first request head of an HTTP/1.x client stream.
///
/// Only the first [`MAX_HEAD`] bytes are looked at, so the cost per call is bounded however
/// much the caller has buffered. HTTP/2 prior-knowledge ("PRI * HTTP/2.0") is `NotHttp`: its
/// requests are binary frames this parser cannot read.
pub fn parse_request(client_bytes: &[u8]) -> Result<Request<'_>, HttpError> {
    if !method_precheck(client_bytes)? {
        return Err(HttpError::Incomplete);
    }
    if client_bytes.starts_with(b"PRI * HTTP/2") {
        return Err(HttpError::NotHttp);
    }
    let buf = client_bytes.get(..MAX_HEAD).unwrap_or(client_bytes);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Err(HttpError::Incomplete),
        Ok(httparse::Status::Partial) | Err(_) => return Err(HttpError::Malformed),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Malformed);
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim_matches([' ', '\t']))
    };
    Ok(Request { method, target, version, host: header("host"), user_agent: header("user-agent"), head_len })
}

/// Normalises a Host header value or URL authority for matching against host indicators:
/// lowercase ASCII, userinfo ("user@") dropped, port dropped, trailing dots dropped. An IPv6
/// literal comes out without its brackets ("[2001:DB8::1]:8080" -> "2001:db8::1") so it parses
/// as an address; a bare IPv6 address (several ':' and no brackets, not valid in a Host header
/// but seen) is kept whole rather than losing its last group as a "port". `out` is cleared first
/// and can be reused across calls to avoid allocating.
pub fn normalize_host(raw: &str, out: &mut String) {
    out.clear();
    push_host(raw, out);
}

/// The host part of `raw` (see [`normalize_host`]), without port or brackets, not yet lowercased.
fn host_part(raw: &str) -> &str {
    let s = raw.trim_matches([' ', '\t']);
    let s = s.rsplit_once('@').map_or(s, |(_, h)| h);
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match s.split_once(':') {
        Some((h, port)) if !port.contains(':') => h,
        _ => s,
    }
}

/// Appends the normalised host of `raw` to `out`.
fn push_host(raw: &str, out: &mut String) {
    let start = out.len();
    out.push_str(host_part(raw).trim_end_matches('.'));
    if let Some(new) = out.get_mut(start..) {
        new.make_ascii_lowercase();
    }
}

/// Strips an ASCII-case-insensitive prefix.
fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| s.get(prefix.len()..)).flatten()
}

/// Builds "host/path?query" (no scheme, no port) for matching against URL indicators: the host
/// normalised as by [`normalize_host`] (an IPv6 literal keeps its brackets here, so the path
/// stays separable), the path and query exactly as sent (indicator paths are case-sensitive),
/// any "#fragment" dropped.
///
/// The host comes from the absolute-form target's own authority when there is one (proxy
/// requests; RFC 9112 3.2.2 says it overrides Host), else from the Host header; without either
/// the result is just the path. CONNECT and other authority-form targets give the host alone,
/// and "*" gives the host alone. `out` is cleared first.
pub fn url_of(req: &Request<'_>, out: &mut String) {
    out.clear();
    let t = req.target;
    let (authority, path, absolute) =
        if let Some(rest) = strip_prefix_ci(t, "http://").or_else(|| strip_prefix_ci(t, "https://")) {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (a, p) = rest.split_at(end);
            (a, p, true)
        } else if req.method.eq_ignore_ascii_case("CONNECT") || !(t.starts_with('/') || t == "*") {
            // authority-form
            (t, "", false)
        } else {
            (req.host.unwrap_or(""), t, false)
        };
    let host = host_part(authority).trim_end_matches('.');
    let bracket = host.contains(':');
    if bracket {
        out.push('[');
    }
    push_host(authority, out);
    if bracket {
        out.push(']');
    }
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    let path = if path == "*" { "" } else { path };
    if absolute && !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(bytes: &[u8]) -> String {
        let r = parse_request(bytes).unwrap();
        let mut s = String::new();
        url_of(&r, &mut s);
        s
    }

    fn norm(raw: &str) -> String {
        let mut s = String::from("junk");
        normalize_host(raw, &mut s);
        s
    }

    #[test]
    fn get_with_host() {
        let b = b"GET /gate.php?id=1 HTTP/1.1\r\nHost: Evil.Example.com\r\nUser-Agent: Mozilla/5.0 (X)\r\nAccept: */*\r\n\r\nBODY";
        let r = parse_request(b).unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/gate.php?id=1");
        assert_eq!(r.version, 1);
        assert_eq!(r.host, Some("Evil.Example.com"));
        assert_eq!(r.user_agent, Some("Mozilla/5.0 (X)"));
        assert_eq!(&b[r.head_len..], b"BODY");
        assert_eq!(url(b), "evil.example.com/gate.php?id=1");
    }

    #[test]
    fn absolute_form_uses_its_authority() {
        let b = b"GET http://Proxy.Target.Example:8080/a/B.exe#frag HTTP/1.1\r\nHost: other.example\r\n\r\n";
        assert_eq!(url(b), "proxy.target.example/a/B.exe");
        let b = b"GET HTTPS://u:p@h.example HTTP/1.1\r\n\r\n";
        assert_eq!(url(b), "h.example/");
        let b = b"GET http://h.example?x=1 HTTP/1.1\r\n\r\n";
        assert_eq!(url(b), "h.example/?x=1");
    }

    #[test]
    fn connect_and_options_star() {
        let b = b"CONNECT C2.Example.net:443 HTTP/1.1\r\nHost: c2.example.net:443\r\n\r\n";
        let r = parse_request(b).unwrap();
        assert_eq!(r.method, "CONNECT");
        assert_eq!(r.target, "C2.Example.net:443");
        assert_eq!(url(b), "c2.example.net");
        let b = b"CONNECT [2001:db8::5]:443 HTTP/1.1\r\n\r\n";
        assert_eq!(url(b), "[2001:db8::5]");
        let b = b"OPTIONS * HTTP/1.1\r\nHost: h.example\r\n\r\n";
        assert_eq!(url(b), "h.example");
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(norm("Example.COM:8080"), "example.com");
        assert_eq!(norm("example.com."), "example.com");
        assert_eq!(norm("example.com.:80"), "example.com");
        assert_eq!(norm("[2001:DB8::1]:8080"), "2001:db8::1");
        assert_eq!(norm("[2001:db8::1]"), "2001:db8::1");
        assert_eq!(norm("2001:db8::1"), "2001:db8::1");
        assert_eq!(norm("192.0.2.1:81"), "192.0.2.1");
        assert_eq!(norm("  h.example  "), "h.example");
        assert_eq!(norm(""), "");
        assert_eq!(norm("[::1"), "::1");
        assert_eq!(norm("ÄB.example"), "Äb.example");
        let b = b"GET /x HTTP/1.1\r\nHost: [2001:DB8::2]:8443\r\n\r\n";
        assert_eq!(url(b), "[2001:db8::2]/x");
        let b = b"GET /X HTTP/1.1\r\nHost: UPPER.Example.:81\r\n\r\n";
        assert_eq!(url(b), "upper.example/X");
    }

    #[test]
    fn http10_without_host() {
        let b = b"GET /index.html HTTP/1.0\r\n\r\n";
        let r = parse_request(b).unwrap();
        assert_eq!(r.version, 0);
        assert_eq!(r.host, None);
        assert_eq!(r.user_agent, None);
        assert_eq!(url(b), "/index.html");
    }

    #[test]
    fn incomplete_and_cap() {
        let full = b"POST /upload HTTP/1.1\r\nHost: h.example\r\nContent-Length: 3\r\n\r\n";
        for n in 0..full.len() {
            assert_eq!(parse_request(&full[..n]), Err(HttpError::Incomplete), "prefix {n}");
        }
        assert!(parse_request(full).is_ok());
        // A head that never ends: Incomplete below the cap, Malformed at it.
        let mut b = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        b.resize(MAX_HEAD - 1, b'a');
        assert_eq!(parse_request(&b), Err(HttpError::Incomplete));
        b.resize(MAX_HEAD + 100, b'a');
        assert_eq!(parse_request(&b), Err(HttpError::Malformed));
        // Too many headers.
        let mut b = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            b.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        b.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&b), Err(HttpError::Malformed));
        // Bad request line.
        assert_eq!(parse_request(b"GET / HTTP/9\r\n\r\n"), Err(HttpError::Malformed));
    }

    #[test]
    fn not_http() {
        for b in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            b"SSH-2.0-OpenSSH_9.6 Ubuntu\r\n",
            b"\x00\x00\x00\x00",
            b"get / HTTP/1.1\r\n\r\n",
            b" GET / HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n\r\n",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        ] {
            assert_eq!(parse_request(b), Err(HttpError::NotHttp), "{b:?}");
        }
        assert_eq!(parse_request(b"M-SEARCH * HTTP/1.1\r\n\r\n").unwrap().method, "M-SEARCH");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::synth::XorShift(0x853c49e6748fea9b);
        let mut next = || rng.next_u64();
        let base = b"GET http://a.example:80/p?q HTTP/1.1\r\nHost: [::1]:8\r\nUser-Agent: z\r\n\r\n";
        let mut s = String::new();
        for i in 0..4000 {
            let buf: Vec<u8> = if i % 2 == 0 {
                let len = (next() % 200) as usize;
                let mut v: Vec<u8> = b"GET ".to_vec();
                v.extend((0..len).map(|_| next() as u8));
                v
            } else {
                let mut v = base.to_vec();
                for _ in 0..(1 + next() % 4) {
                    let p = next() as usize % v.len();
                    v[p] = next() as u8;
                }
                v
            };
            if let Ok(r) = parse_request(&buf) {
                url_of(&r, &mut s);
                if let Some(h) = r.host {
                    normalize_host(h, &mut s);
                }
            }
            if let Ok(t) = std::str::from_utf8(&buf) {
                normalize_host(t, &mut s);
            }
        }
    }
}
