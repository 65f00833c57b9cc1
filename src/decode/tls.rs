//! TLS handshake inspection: the ClientHello (SNI, JA3 inputs, ALPN) and, for TLS <= 1.2, the
//! server's certificate chain.
//!
//! Why only these: they are the parts of a TLS connection that are in the clear and name the
//! other end. SNI is matched against domain indicators, JA3 against client fingerprints, and the
//! certificate SHA-1/SHA-256 against certificate indicators. TLS 1.3 encrypts the certificate,
//! so for it the server side reports `tls13` and nothing else.
//!
//! The caller passes every byte it has so far of one direction of the stream, contiguous and in
//! order, and calls again with more when told [`TlsError::Incomplete`]. Records and handshake
//! messages may be split anywhere, so the parsers only ever answer from complete records and
//! complete handshake messages: a prefix never yields a wrong answer. Every length field is
//! checked against the protocol maximum before it is waited for, so buffering is bounded
//! (16 KiB for the ClientHello, 64 KiB for the server flight).

use sha1::{Digest, Sha1};
use sha2::Sha256;

/// Why the bytes did not yield an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// The first bytes cannot start a TLS stream of this kind: stop looking at this direction.
    NotTls,
    /// Everything so far is consistent but the message is not complete: buffer more bytes.
    Incomplete,
    /// TLS-looking but broken (lying length, wrong message order, over the buffering cap).
    Malformed,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsError::NotTls => "not TLS",
            TlsError::Incomplete => "incomplete TLS handshake",
            TlsError::Malformed => "malformed TLS handshake",
        })
    }
}

impl std::error::Error for TlsError {}

const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

const HS_HELLO_REQUEST: u8 = 0;
const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;
const HS_SERVER_HELLO_DONE: u8 = 14;

const EXT_SERVER_NAME: u16 = 0;
const EXT_SUPPORTED_GROUPS: u16 = 10;
const EXT_EC_POINT_FORMATS: u16 = 11;
const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// RFC 8446 5.1: a plaintext record fragment is at most 2^14 bytes.
const MAX_PLAINTEXT: usize = 1 << 14;
/// RFC 5246 6.2.3: a protected record may carry up to 2^14 + 2048 bytes.
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 2048;
/// Cap on the ClientHello body we are willing to buffer. Real ones are under 2 KiB even with
/// post-quantum key shares; anything bigger is not worth holding per connection.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;
/// Cap on the server handshake bytes buffered while waiting for the Certificate message.
pub const MAX_SERVER_FLIGHT: usize = 64 * 1024;

/// What a ClientHello says that is useful for matching.
///
/// Only the server names are copied out: the lists that fingerprints use are kept as the hello
/// holds them, checked, and read when asked for. A copy of each (seven vectors) cost more than
/// the parse itself, and most runs never ask (no JA3 indicator loaded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello<'a> {
    /// legacy_version (0x0303 for TLS 1.2 and 1.3 clients); JA3's first field.
    pub version: u16,
    /// server_name host names, lowercased, trailing dot removed, empty names skipped. Owned
    /// because lowercasing may have to change them; allocated once per connection.
    pub sni: Vec<String>,
    /// Cipher suites in the order offered, GREASE included (JA3 strips it).
    pub ciphers: U16List<'a>,
    /// The extensions in the order sent, GREASE included.
    pub extensions: Extensions<'a>,
    /// supported_groups (a.k.a. elliptic curves).
    pub groups: U16List<'a>,
    pub ec_point_formats: &'a [u8],
    /// ALPN protocol names as sent (e.g. b"h2", b"http/1.1").
    pub alpn: Alpn<'a>,
    /// supported_versions (TLS 1.3 clients), kept for JA4-style fingerprints.
    pub supported_versions: U16List<'a>,
    /// signature_algorithms, kept for JA4-style fingerprints.
    pub signature_algorithms: U16List<'a>,
}

/// A list of 16-bit values where the hello holds it (big-endian; its length was checked to be
/// even).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct U16List<'a>(&'a [u8]);

impl<'a> U16List<'a> {
    fn new(b: &'a [u8]) -> Result<Self, TlsError> {
        if !b.len().is_multiple_of(2) {
            return Err(TlsError::Malformed);
        }
        Ok(U16List(b))
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + 'a {
        self.0.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    pub fn to_vec(&self) -> Vec<u16> {
        self.iter().collect()
    }
}

/// The extensions block of a hello, every extension in it checked to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions<'a>(&'a [u8]);

impl<'a> Extensions<'a> {
    /// The extension types in the order sent.
    pub fn types(&self) -> impl Iterator<Item = u16> + 'a {
        let mut r = Reader { b: self.0 };
        std::iter::from_fn(move || {
            let ty = r.u16().ok()?;
            r.vec16().ok()?;
            Some(ty)
        })
    }
}

/// An ALPN protocol name list, every name in it checked to fit and be non-empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Alpn<'a>(&'a [u8]);

impl<'a> Alpn<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut r = Reader { b: self.0 };
        std::iter::from_fn(move || r.vec8().ok().filter(|p| !p.is_empty()))
    }
}

/// What the server's clear-text handshake said.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerInfo {
    /// Negotiated version: supported_versions' selection when present, else the ServerHello's
    /// legacy version. 0 when no ServerHello was seen (e.g. the server answered with an alert).
    pub version: u16,
    /// The server chose TLS 1.3: its certificates are encrypted, there is nothing to see.
    pub tls13: bool,
    /// Cipher suite chosen (JA3S input).
    pub cipher: u16,
    /// ServerHello extension types in order (JA3S input).
    pub extensions: Vec<u16>,
    /// How many certificates were handed to `on_cert`.
    pub certs: usize,
}

/// A checked cursor over a byte slice; every read is bounds-checked and a short read is
/// `Malformed`, because it is only used on complete handshake messages.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TlsError> {
        if n > self.b.len() {
            return Err(TlsError::Malformed);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, TlsError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, TlsError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u24(&mut self) -> Result<usize, TlsError> {
        let s = self.take(3)?;
        Ok(usize::from(s[0]) << 16 | usize::from(s[1]) << 8 | usize::from(s[2]))
    }
    fn vec8(&mut self) -> Result<&'a [u8], TlsError> {
        let n = self.u8()?;
        self.take(n.into())
    }
    fn vec16(&mut self) -> Result<&'a [u8], TlsError> {
        let n = self.u16()?;
        self.take(n.into())
    }
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

/// One record found at a position of the stream.
struct Record<'a> {
    ty: u8,
    body: &'a [u8],
    next: usize,
}

/// Reads the record at `pos`. `Ok(None)` when it is not complete yet. Header fields are checked
/// as soon as they are present, so a stream that stopped being TLS fails without waiting for
/// more bytes, and a length over the protocol maximum fails rather than buffering forever.
fn record_at(b: &[u8], pos: usize) -> Result<Option<Record<'_>>, TlsError> {
    let h = b.get(pos..).unwrap_or_default();
    let h = h.get(..5).unwrap_or(h);
    if let Some(&ty) = h.first() {
        if !(CT_CHANGE_CIPHER_SPEC..=CT_HEARTBEAT).contains(&ty) {
            return Err(TlsError::Malformed);
        }
    }
    if let Some(&major) = h.get(1) {
        if major != 3 {
            return Err(TlsError::Malformed);
        }
    }
    if let Some(&minor) = h.get(2) {
        if minor > 4 {
            return Err(TlsError::Malformed);
        }
    }
    let [ty, _, _, l0, l1] = *h else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    // Every type gets the ciphertext maximum: handshake records are encrypted too once keys
    // are in use (Finished), and the handshake-message caps bound what is buffered anyway.
    // RFC 8446 5.1: zero-length handshake/alert fragments are forbidden.
    if len > MAX_CIPHERTEXT || (len == 0 && (ty == CT_HANDSHAKE || ty == CT_ALERT)) {
        return Err(TlsError::Malformed);
    }
    let start = pos + 5;
    Ok(b.get(start..start + len).map(|body| Record { ty, body, next: start + len }))
}

/// Cheap test on the first bytes of a stream: record type, then major version 3, then minor
/// version <= 4. Lets HTTP or other binary protocols fail on the first byte.
fn looks_like_tls(b: &[u8], first_types: &[u8]) -> bool {
    match b {
        [] => true,
        [t] => first_types.contains(t),
        [t, 3] => first_types.contains(t),
        [t, 3, minor, ..] => first_types.contains(t) && *minor <= 4,
        _ => false,
    }
}

/// Finds a complete ClientHello body at the start of `buf` (a handshake stream).
fn client_hello_len(buf: &[u8]) -> Result<Option<usize>, TlsError> {
    let Some(&[ty, a, b, c]) = buf.get(..4) else {
        if buf.first().is_some_and(|&t| t != HS_CLIENT_HELLO) {
            return Err(TlsError::Malformed);
        }
        return Ok(None);
    };
    if ty != HS_CLIENT_HELLO {
        return Err(TlsError::Malformed);
    }
    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    if len > MAX_CLIENT_HELLO {
        return Err(TlsError::Malformed);
    }
    Ok((buf.len() >= 4 + len).then_some(len))
}

/// Parses the ClientHello at the start of what a client sent.
///
/// The common case (the whole ClientHello in the first record) borrows `client_bytes` and does
/// not copy; a ClientHello spread over several handshake records is reassembled into `scratch`
/// (cleared first, at most [`MAX_CLIENT_HELLO`] + 4 bytes kept). SSLv2-compatible hellos are
/// reported as `NotTls`: no current client sends them.
pub fn parse_client_hello<'a>(client_bytes: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<ClientHello<'a>, TlsError> {
    if !looks_like_tls(client_bytes, &[CT_HANDSHAKE]) {
        return Err(TlsError::NotTls);
    }
    let mut pos = 0;
    let mut need = None;
    scratch.clear();
    while need.is_none() {
        let Some(rec) = record_at(client_bytes, pos)? else {
            return Err(TlsError::Incomplete);
        };
        if rec.ty != CT_HANDSHAKE {
            return Err(TlsError::Malformed);
        }
        if pos == 0 {
            if let Some(len) = client_hello_len(rec.body)? {
                return parse_client_hello_body(rec.body.get(4..4 + len).unwrap_or_default());
            }
        }
        // Keep only what the message still needs: the cap then bounds scratch.
        let want = match client_hello_len(scratch)? {
            Some(_) => 0,
            None if scratch.len() < 4 => rec.body.len(),
            None => {
                let total = 4 + client_hello_len_field(scratch);
                total.saturating_sub(scratch.len())
            }
        };
        scratch.extend_from_slice(rec.body.get(..want).unwrap_or(rec.body));
        need = client_hello_len(scratch)?;
        pos = rec.next;
    }
    let len = need.unwrap_or_default();
    let s: &'a Vec<u8> = scratch;
    parse_client_hello_body(s.get(4..4 + len).unwrap_or_default())
}

fn client_hello_len_field(buf: &[u8]) -> usize {
    match buf {
        [_, a, b, c, ..] => usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c),
        _ => 0,
    }
}

/// Parses a complete ClientHello body (RFC 8446 4.1.2 / RFC 5246 7.4.1.2). Every inner length
/// must fit its container; a lying one is `Malformed`, never a partial answer.
fn parse_client_hello_body(body: &[u8]) -> Result<ClientHello<'_>, TlsError> {
    let mut r = Reader { b: body };
    let mut ch = ClientHello { version: r.u16()?, ..ClientHello::default() };
    r.take(32)?; // random
    let sid = r.vec8()?;
    if sid.len() > 32 {
        return Err(TlsError::Malformed);
    }
    let ciphers = r.vec16()?;
    if ciphers.is_empty() {
        return Err(TlsError::Malformed);
    }
    ch.ciphers = U16List::new(ciphers)?;
    if r.vec8()?.is_empty() {
        return Err(TlsError::Malformed); // compression_methods must hold at least null
    }
    if r.is_empty() {
        return Ok(ch); // no extensions: old clients
    }
    let block = r.vec16()?;
    let mut exts = Reader { b: block };
    // Bytes after the extensions block are ignored: they cannot change what was read.
    while !exts.is_empty() {
        let ty = exts.u16()?;
        let mut data = Reader { b: exts.vec16()? };
        match ty {
            EXT_SERVER_NAME if !data.is_empty() => {
                let mut list = Reader { b: data.vec16()? };
                if !data.is_empty() {
                    return Err(TlsError::Malformed);
                }
                while !list.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec16()?;
                    if name_type != 0 {
                        continue;
                    }
                    let mut s = String::from_utf8_lossy(name).into_owned();
                    s.make_ascii_lowercase();
                    while s.ends_with('.') {
                        s.pop();
                    }
                    if !s.is_empty() {
                        ch.sni.push(s);
                    }
                }
            }
            EXT_SUPPORTED_GROUPS => ch.groups = U16List::new(data.vec16()?)?,
            EXT_EC_POINT_FORMATS => ch.ec_point_formats = data.vec8()?,
            EXT_SIGNATURE_ALGORITHMS => ch.signature_algorithms = U16List::new(data.vec16()?)?,
            EXT_SUPPORTED_VERSIONS => ch.supported_versions = U16List::new(data.vec8()?)?,
            EXT_ALPN => {
                let names = data.vec16()?;
                let mut list = Reader { b: names };
                while !list.is_empty() {
                    if list.vec8()?.is_empty() {
                        return Err(TlsError::Malformed);
                    }
                }
                ch.alpn = Alpn(names);
            }
            _ => {}
        }
    }
    ch.extensions = Extensions(block);
    Ok(ch)
}

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa. JA3 ignores them because clients
/// pick them at random per connection.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// JA3 fingerprint: the string
/// `SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats` (decimal values
/// joined by '-', GREASE removed) and its MD5 as lowercase hex.
pub fn ja3(ch: &ClientHello<'_>) -> (String, String) {
    use std::fmt::Write;
    fn list<T: Into<u32>>(out: &mut String, xs: impl Iterator<Item = T>, skip_grease: bool) {
        let mut first = true;
        for x in xs {
            let v: u32 = x.into();
            if skip_grease && u16::try_from(v).is_ok_and(is_grease) {
                continue;
            }
            if !first {
                out.push('-');
            }
            first = false;
            let _ = write!(out, "{v}");
        }
    }
    let mut s = String::with_capacity(256);
    let _ = write!(s, "{},", ch.version);
    list(&mut s, ch.ciphers.iter(), true);
    s.push(',');
    list(&mut s, ch.extensions.types(), true);
    s.push(',');
    list(&mut s, ch.groups.iter(), true);
    s.push(',');
    list(&mut s, ch.ec_point_formats.iter().copied(), false);
    let hash = hex(&md5(s.as_bytes()));
    (s, hash)
}

/// What the handshake-message walk concluded for the server direction.
enum Step {
    Continue,
    Done,
}

/// Server-side state carried across records.
struct ServerWalk {
    info: ServerInfo,
    seen_hello: bool,
}

impl ServerWalk {
    /// Handles the complete handshake messages at the start of `buf`; returns how many bytes
    /// they took and whether the walk is over.
    fn messages(&mut self, buf: &[u8], on_cert: &mut impl FnMut(&[u8])) -> Result<(usize, Step), TlsError> {
        let mut used = 0;
        while let Some(&[ty, a, b, c]) = buf.get(used..used + 4) {
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if len > MAX_SERVER_FLIGHT {
                return Err(TlsError::Malformed);
            }
            let Some(body) = buf.get(used + 4..used + 4 + len) else {
                break;
            };
            used += 4 + len;
            match ty {
                HS_HELLO_REQUEST => {}
                HS_SERVER_HELLO => {
                    if self.seen_hello {
                        return Err(TlsError::Malformed);
                    }
                    self.seen_hello = true;
                    self.server_hello(body)?;
                    if self.info.tls13 {
                        return Ok((used, Step::Done));
                    }
                }
                _ if !self.seen_hello => return Err(TlsError::Malformed),
                HS_CERTIFICATE => {
                    self.info.certs = certificates(body, on_cert)?;
                    return Ok((used, Step::Done));
                }
                // Anonymous / PSK suites: no certificate is coming.
                HS_SERVER_HELLO_DONE => return Ok((used, Step::Done)),
                _ => {}
            }
        }
        Ok((used, Step::Continue))
    }

    fn server_hello(&mut self, body: &[u8]) -> Result<(), TlsError> {
        let mut r = Reader { b: body };
        self.info.version = r.u16()?;
        r.take(32)?;
        if r.vec8()?.len() > 32 {
            return Err(TlsError::Malformed);
        }
        self.info.cipher = r.u16()?;
        r.u8()?;
        if r.is_empty() {
            return Ok(());
        }
        let mut exts = Reader { b: r.vec16()? };
        while !exts.is_empty() {
            let ty = exts.u16()?;
            let mut data = Reader { b: exts.vec16()? };
            self.info.extensions.push(ty);
            if ty == EXT_SUPPORTED_VERSIONS {
                self.info.version = data.u16()?;
            }
        }
        // 0x7fxx: TLS 1.3 drafts, same encrypted-certificate situation.
        self.info.tls13 = self.info.version == 0x0304 || self.info.version >> 8 == 0x7f;
        Ok(())
    }
}

/// Checks the whole Certificate message first, then delivers: a lying inner length must not
/// leave the caller with half a chain it believes complete.
fn certificates(body: &[u8], on_cert: &mut impl FnMut(&[u8])) -> Result<usize, TlsError> {
    let mut r = Reader { b: body };
    let list_len = r.u24()?;
    if list_len != r.b.len() {
        return Err(TlsError::Malformed);
    }
    let list = r.b;
    let mut check = Reader { b: list };
    let mut n = 0;
    while !check.is_empty() {
        let l = check.u24()?;
        if l == 0 {
            return Err(TlsError::Malformed);
        }
        check.take(l)?;
        n += 1;
    }
    let mut deliver = Reader { b: list };
    while !deliver.is_empty() {
        let l = deliver.u24()?;
        on_cert(deliver.take(l)?);
    }
    Ok(n)
}

/// Reads the server's first flight: ServerHello, then (TLS <= 1.2) the Certificate message,
/// calling `on_cert(der)` for each certificate, leaf first.
///
/// Returns `Ok` once the Certificate message was delivered, or as soon as it is known that none
/// will be visible: the server chose TLS 1.3, sent ServerHelloDone without a certificate, or a
/// ChangeCipherSpec / ApplicationData / Alert record came first (resumption, or a refusal).
/// `Incomplete` until then; `Malformed` if the handshake bytes buffered would exceed
/// [`MAX_SERVER_FLIGHT`]. Handshake messages inside one record are read in place; only a message
/// split across records is copied into `scratch`.
pub fn server_certificates(
    server_bytes: &[u8],
    scratch: &mut Vec<u8>,
    mut on_cert: impl FnMut(&[u8]),
) -> Result<ServerInfo, TlsError> {
    if !looks_like_tls(server_bytes, &[CT_HANDSHAKE, CT_ALERT]) {
        return Err(TlsError::NotTls);
    }
    let mut walk = ServerWalk { info: ServerInfo::default(), seen_hello: false };
    scratch.clear();
    let mut pos = 0;
    loop {
        let Some(rec) = record_at(server_bytes, pos)? else {
            return Err(TlsError::Incomplete);
        };
        pos = rec.next;
        match rec.ty {
            CT_HANDSHAKE => {}
            CT_HEARTBEAT => continue,
            // Nothing more will be in the clear after these (resumption, refusal, TLS 1.3).
            CT_CHANGE_CIPHER_SPEC | CT_ALERT | CT_APPLICATION_DATA => return Ok(walk.info),
            _ => return Err(TlsError::Malformed),
        }
        let step = if scratch.is_empty() {
            let (used, step) = walk.messages(rec.body, &mut on_cert)?;
            scratch.extend_from_slice(rec.body.get(used..).unwrap_or_default());
            step
        } else {
            if scratch.len() + rec.body.len() > MAX_SERVER_FLIGHT {
                return Err(TlsError::Malformed);
            }
            scratch.extend_from_slice(rec.body);
            let (used, step) = walk.messages(scratch, &mut on_cert)?;
            scratch.drain(..used.min(scratch.len()));
            step
        };
        if let Step::Done = step {
            return Ok(walk.info);
        }
    }
}

/// Certificate fingerprints as indicator feeds publish them: lowercase hex SHA-1 (40 chars) and
/// SHA-256 (64 chars) of the DER bytes.
pub fn cert_fingerprints(der: &[u8]) -> (String, String) {
    (hex(&Sha1::digest(der)), hex(&Sha256::digest(der)))
}

fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(D[usize::from(x >> 4)]));
        s.push(char::from(D[usize::from(x & 0xf)]));
    }
    s
}

/// MD5 (RFC 1321), only for JA3: the fingerprint format fixes the hash, and the few lines here
/// spare the crate a dependency. Not for any security purpose.
fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501, 0x698098d8,
        0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
        0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87,
        0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
        0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039,
        0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
        0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
    let mut st: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut tail = Vec::with_capacity(128);
    let full = data.len() - data.len() % 64;
    tail.extend_from_slice(data.get(full..).unwrap_or_default());
    tail.push(0x80);
    while tail.len() % 64 != 56 {
        tail.push(0);
    }
    tail.extend_from_slice(&bit_len.to_le_bytes());
    let blocks = data.get(..full).unwrap_or_default().chunks_exact(64);
    for block in blocks.chain(tail.chunks_exact(64)) {
        let mut m = [0u32; 16];
        for (w, c) in m.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        let [mut a, mut b, mut c, mut d] = st;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(K[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        st[0] = st[0].wrapping_add(a);
        st[1] = st[1].wrapping_add(b);
        st[2] = st[2].wrapping_add(c);
        st[3] = st[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(st) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = ty.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn sni_ext(names: &[&str]) -> Vec<u8> {
        let mut list = Vec::new();
        for n in names {
            list.push(0);
            list.extend_from_slice(&(n.len() as u16).to_be_bytes());
            list.extend_from_slice(n.as_bytes());
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&list);
        ext(0, &d)
    }

    fn u16_list_ext(ty: u16, xs: &[u16]) -> Vec<u8> {
        let mut d = ((xs.len() * 2) as u16).to_be_bytes().to_vec();
        for x in xs {
            d.extend_from_slice(&x.to_be_bytes());
        }
        ext(ty, &d)
    }

    fn alpn_ext(ps: &[&str]) -> Vec<u8> {
        let mut list = Vec::new();
        for p in ps {
            list.push(p.len() as u8);
            list.extend_from_slice(p.as_bytes());
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend_from_slice(&list);
        ext(16, &d)
    }

    /// A handshake message of type `ty`.
    fn hs(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![ty];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(body);
        v
    }

    fn record(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![ty, 3, 1];
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn client_hello_body(ciphers: &[u16], exts: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[0x11; 32]);
        b.push(32);
        b.extend_from_slice(&[0x22; 32]);
        b.extend_from_slice(&((ciphers.len() * 2) as u16).to_be_bytes());
        for c in ciphers {
            b.extend_from_slice(&c.to_be_bytes());
        }
        b.extend_from_slice(&[1, 0]);
        let all: Vec<u8> = exts.concat();
        b.extend_from_slice(&(all.len() as u16).to_be_bytes());
        b.extend_from_slice(&all);
        b
    }

    const CIPHERS: [u16; 4] = [0x0a0a, 0xc02b, 0xc02f, 0x009c];

    fn typical_exts(names: &[&str]) -> Vec<Vec<u8>> {
        vec![
            ext(0x1a1a, &[]), // GREASE
            u16_list_ext(10, &[0x2a2a, 29, 23, 24]),
            ext(11, &[1, 0]),
            sni_ext(names),
            alpn_ext(&["h2", "http/1.1"]),
            ext(23, &[]),
        ]
    }

    fn typical_hello(names: &[&str]) -> Vec<u8> {
        record(22, &hs(1, &client_hello_body(&CIPHERS, &typical_exts(names))))
    }

    #[test]
    fn client_hello_fields() {
        let bytes = typical_hello(&["WWW.Example.COM."]);
        let mut scratch = Vec::new();
        let ch = parse_client_hello(&bytes, &mut scratch).unwrap();
        assert_eq!(ch.version, 0x0303);
        assert_eq!(ch.sni, vec!["www.example.com".to_string()]);
        assert_eq!(ch.ciphers.to_vec(), CIPHERS);
        assert_eq!(ch.extensions.types().collect::<Vec<_>>(), vec![0x1a1a, 10, 11, 0, 16, 23]);
        assert_eq!(ch.groups.to_vec(), vec![0x2a2a, 29, 23, 24]);
        assert_eq!(ch.ec_point_formats, [0]);
        assert_eq!(ch.alpn.iter().collect::<Vec<_>>(), vec![&b"h2"[..], &b"http/1.1"[..]]);
        assert!(scratch.is_empty(), "single record must not copy");
    }

    /// The lists kept where the hello holds them read back as sent, and a lying one is refused
    /// at parse time, not when it is read.
    #[test]
    fn client_hello_lists_for_fingerprints() {
        let mut scratch = Vec::new();
        let versions = ext(43, &[4, 0x03, 0x04, 0x03, 0x03]);
        let sigalgs = u16_list_ext(13, &[0x0403, 0x0804]);
        let b = record(22, &hs(1, &client_hello_body(&CIPHERS, &[versions, sigalgs.clone()])));
        let ch = parse_client_hello(&b, &mut scratch).unwrap();
        assert_eq!(ch.supported_versions.to_vec(), vec![0x0304, 0x0303]);
        assert_eq!(ch.signature_algorithms.to_vec(), vec![0x0403, 0x0804]);
        assert_eq!(ch.extensions.types().collect::<Vec<_>>(), vec![43, 13]);
        assert_eq!(ch.alpn.iter().count(), 0);
        // An odd byte count where 16-bit values are listed.
        let odd = ext(43, &[3, 0x03, 0x04, 0x03]);
        let b = record(22, &hs(1, &client_hello_body(&CIPHERS, &[odd])));
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
        // An empty protocol name in ALPN, after a good one.
        let alpn = ext(16, &[0, 4, 2, b'h', b'2', 0]);
        let b = record(22, &hs(1, &client_hello_body(&CIPHERS, &[alpn])));
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
    }

    #[test]
    fn ja3_known_value() {
        let bytes = typical_hello(&["example.com"]);
        let mut scratch = Vec::new();
        let ch = parse_client_hello(&bytes, &mut scratch).unwrap();
        let (s, h) = ja3(&ch);
        // By hand: 0x0303=771; ciphers 0xc02b=49195, 0xc02f=49199, 0x009c=156 (0x0a0a GREASE);
        // extensions 10,11,0,16,23 (0x1a1a GREASE); groups 29,23,24 (0x2a2a GREASE); formats 0.
        assert_eq!(s, "771,49195-49199-156,10-11-0-16-23,29-23-24,0");
        assert_eq!(h, md5_hex_of("771,49195-49199-156,10-11-0-16-23,29-23-24,0"));
        assert_eq!(h, "9cafc124958a0c63bc9a831ec5f34fa0");
    }

    fn md5_hex_of(s: &str) -> String {
        hex(&md5(s.as_bytes()))
    }

    #[test]
    fn md5_rfc1321_vectors() {
        assert_eq!(md5_hex_of(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex_of("abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(md5_hex_of("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
        assert_eq!(md5_hex_of("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
        assert_eq!(md5_hex_of(&"1234567890".repeat(8)), "57edf4a22be3c955ac49da2e2107b67a");
        assert_eq!(md5_hex_of(&"a".repeat(56)), "3b0c8ac703f828b04c6c197006d17218");
        assert_eq!(md5_hex_of(&"a".repeat(64)), "014842d480b571495a4a0363793f7367");
    }

    #[test]
    fn sni_variants() {
        let mut scratch = Vec::new();
        // SNI not first: already covered by typical_exts (after groups). Zero SNI:
        let b = record(22, &hs(1, &client_hello_body(&[0x1301], &[ext(23, &[])])));
        let ch = parse_client_hello(&b, &mut scratch).unwrap();
        assert!(ch.sni.is_empty());
        // Two names.
        let b = typical_hello(&["a.example", "B.example"]);
        let ch = parse_client_hello(&b, &mut scratch).unwrap();
        assert_eq!(ch.sni, vec!["a.example", "b.example"]);
        // No extensions at all.
        let mut body = client_hello_body(&[0x002f], &[]);
        body.truncate(body.len() - 2);
        let b = record(22, &hs(1, &body));
        assert_eq!(parse_client_hello(&b, &mut scratch).unwrap().ciphers.to_vec(), vec![0x002f]);
    }

    #[test]
    fn sni_length_lying() {
        let mut scratch = Vec::new();
        // Inner name length bigger than the list.
        let mut bad = sni_ext(&["example.com"]);
        bad[8] = 0x40; // name length high byte
        let b = record(22, &hs(1, &client_hello_body(&[0x1301], &[bad])));
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
        // List length bigger than the extension.
        let mut bad = sni_ext(&["example.com"]);
        bad[5] += 5;
        let b = record(22, &hs(1, &client_hello_body(&[0x1301], &[bad])));
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
        // Extension length bigger than the extensions block.
        let mut bad = sni_ext(&["example.com"]);
        bad[3] += 5;
        let b = record(22, &hs(1, &client_hello_body(&[0x1301], &[bad])));
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let b = typical_hello(&["example.com"]);
        let mut scratch = Vec::new();
        let mut scratch2 = Vec::new();
        let full = parse_client_hello(&b, &mut scratch2).unwrap();
        for n in 0..b.len() {
            assert_eq!(parse_client_hello(&b[..n], &mut scratch), Err(TlsError::Incomplete), "prefix {n}");
        }
        assert_eq!(parse_client_hello(&b, &mut scratch).unwrap(), full);
    }

    /// Splits one handshake message over records at `cuts` (fragment boundaries).
    fn split_records(msg: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut last = 0;
        for &c in cuts.iter().chain(std::iter::once(&msg.len())) {
            out.extend(record(22, &msg[last..c]));
            last = c;
        }
        out
    }

    #[test]
    fn handshake_split_across_records() {
        let msg = hs(1, &client_hello_body(&CIPHERS, &typical_exts(&["split.example"])));
        let want = parse_client_hello(&record(22, &msg), &mut Vec::new()).unwrap().sni;
        // Every two-record split, including inside the 4-byte handshake header.
        for cut in 1..msg.len() {
            let b = split_records(&msg, &[cut]);
            let mut scratch = Vec::new();
            let ch = parse_client_hello(&b, &mut scratch).unwrap();
            assert_eq!(ch.sni, want, "cut {cut}");
            // And every prefix of the split form is Incomplete.
            if cut % 17 == 0 {
                for n in 0..b.len() {
                    assert_eq!(parse_client_hello(&b[..n], &mut Vec::new()), Err(TlsError::Incomplete));
                }
            }
        }
        // Three records, one byte of header each time.
        let b = split_records(&msg, &[1, 2, 3]);
        assert_eq!(parse_client_hello(&b, &mut Vec::new()).unwrap().sni, want);
    }

    #[test]
    fn record_length_lying() {
        let good = typical_hello(&["example.com"]);
        let mut scratch = Vec::new();
        // Too big but plausible: wait for more bytes.
        let mut b = good.clone();
        b[3..5].copy_from_slice(&5000u16.to_be_bytes());
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Incomplete));
        // Past the protocol maximum: give up at once.
        b[3..5].copy_from_slice(&((MAX_CIPHERTEXT + 1) as u16).to_be_bytes());
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
        // Handshake length over the ClientHello cap.
        let mut b = good.clone();
        b[6..9].copy_from_slice(&[0x01, 0x00, 0x00]);
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
        // Too small: the rest of the message is read as a record header.
        let mut b = good.clone();
        b[3..5].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
        // Zero-length handshake record.
        assert_eq!(parse_client_hello(&[22, 3, 1, 0, 0], &mut scratch), Err(TlsError::Malformed));
        // Non-handshake record in the middle of a split hello.
        let msg = hs(1, &client_hello_body(&CIPHERS, &typical_exts(&["x"])));
        let mut b = record(22, &msg[..10]);
        b.extend(record(21, &[1, 0]));
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
        // First handshake message not a ClientHello.
        let b = record(22, &hs(2, &[0; 40]));
        assert_eq!(parse_client_hello(&b, &mut scratch), Err(TlsError::Malformed));
    }

    #[test]
    fn not_tls() {
        let mut scratch = Vec::new();
        for b in [&b"GET / HTTP/1.1\r\n"[..], b"\x16\x01", b"\x16\x03\x09", b"SSH-2.0"] {
            assert_eq!(parse_client_hello(b, &mut scratch), Err(TlsError::NotTls));
            assert_eq!(server_certificates(b, &mut scratch, |_| {}), Err(TlsError::NotTls));
        }
        assert_eq!(parse_client_hello(b"", &mut scratch), Err(TlsError::Incomplete));
    }

    fn server_hello_body(version_ext: Option<u16>) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[0x33; 32]);
        b.push(0);
        b.extend_from_slice(&[0xc0, 0x2f, 0]);
        let mut exts = ext(0xff01, &[0]);
        if let Some(v) = version_ext {
            exts.extend(ext(43, &v.to_be_bytes()));
        }
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(&exts);
        b
    }

    fn certificate_body(certs: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for c in certs {
            list.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
            list.extend_from_slice(c);
        }
        let mut b = (list.len() as u32).to_be_bytes()[1..].to_vec();
        b.extend(list);
        b
    }

    fn fake_der(seed: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0x30, 0x82];
        v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        v
    }

    fn server_flight(leaf: &[u8], ca: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut stream = hs(2, &server_hello_body(None));
        stream.extend(hs(11, &certificate_body(&[leaf, ca])));
        stream.extend(hs(14, &[]));
        split_records(&stream, cuts)
    }

    fn run_server(b: &[u8]) -> (Result<ServerInfo, TlsError>, Vec<Vec<u8>>) {
        let mut got = Vec::new();
        let mut scratch = Vec::new();
        let r = server_certificates(b, &mut scratch, |c| got.push(c.to_vec()));
        (r, got)
    }

    #[test]
    fn server_certificates_across_records() {
        let leaf = fake_der(1, 900);
        let ca = fake_der(2, 1300);
        for cuts in [vec![], vec![60], vec![60, 500, 1500], vec![3, 90, 91, 2200]] {
            let b = server_flight(&leaf, &ca, &cuts);
            let (r, got) = run_server(&b);
            let info = r.unwrap();
            assert_eq!(info.certs, 2);
            assert!(!info.tls13);
            assert_eq!(info.version, 0x0303);
            assert_eq!(info.cipher, 0xc02f);
            assert_eq!(got, vec![leaf.clone(), ca.clone()]);
            // Every prefix: Incomplete and nothing delivered (the SHD is not needed, so stop
            // at the end of the Certificate message).
            for n in (0..b.len() - 9).step_by(7) {
                let (r, got) = run_server(&b[..n]);
                assert_eq!(r, Err(TlsError::Incomplete), "prefix {n} cuts {cuts:?}");
                assert!(got.is_empty());
            }
        }
        let (sha1, sha256) = cert_fingerprints(&leaf);
        assert_eq!(sha1, hex(&Sha1::digest(&leaf)));
        assert_eq!(sha256, hex(&Sha256::digest(&leaf)));
        assert_eq!(sha1.len(), 40);
        assert_eq!(sha256.len(), 64);
        let (sha1, sha256) = cert_fingerprints(b"abc");
        assert_eq!(sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn server_tls13_and_early_stops() {
        let mut b = record(22, &hs(2, &server_hello_body(Some(0x0304))));
        b.extend(record(20, &[1]));
        b.extend(record(23, &[0; 100]));
        let (r, got) = run_server(&b);
        let info = r.unwrap();
        assert!(info.tls13);
        assert_eq!(info.version, 0x0304);
        assert!(got.is_empty());
        // Only the ServerHello record present is enough.
        let b = record(22, &hs(2, &server_hello_body(Some(0x0304))));
        assert!(run_server(&b).0.unwrap().tls13);
        // Resumption: ServerHello then CCS.
        let mut b = record(22, &hs(2, &server_hello_body(None)));
        b.extend(record(20, &[1]));
        assert_eq!(run_server(&b).0.unwrap().certs, 0);
        // Alert first.
        assert_eq!(run_server(&record(21, &[2, 40])).0.unwrap().version, 0);
        // Anonymous: SH, SHD.
        let mut s = hs(2, &server_hello_body(None));
        s.extend(hs(14, &[]));
        assert_eq!(run_server(&record(22, &s)).0.unwrap().certs, 0);
        // Certificate before ServerHello.
        let b = record(22, &hs(11, &certificate_body(&[b"x"])));
        assert_eq!(run_server(&b).0, Err(TlsError::Malformed));
    }

    #[test]
    fn server_bad_certificate_lengths() {
        let mut cert = certificate_body(&[&fake_der(1, 50), &fake_der(2, 50)]);
        cert[3 + 3 + 52] = 0xff; // second cert length (u24 high byte) lies
        let mut s = hs(2, &server_hello_body(None));
        s.extend(hs(11, &cert));
        let (r, got) = run_server(&record(22, &s));
        assert_eq!(r, Err(TlsError::Malformed));
        assert!(got.is_empty(), "nothing delivered from a broken chain");
        // Handshake message bigger than the cap.
        let mut s = hs(2, &server_hello_body(None));
        s.extend_from_slice(&[11, 0x02, 0, 0]);
        assert_eq!(run_server(&record(22, &s)).0, Err(TlsError::Malformed));
        // Flight over the cap, built of records that each hold a slice of a huge-ish message.
        let mut s = hs(2, &server_hello_body(None));
        s.extend_from_slice(&[11, 0x00, 0xff, 0xff]);
        s.extend(vec![0u8; 70_000]);
        let b = split_records(&s, &(1..5).map(|i| i * 16000).collect::<Vec<_>>());
        assert_eq!(run_server(&b).0, Err(TlsError::Malformed));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::synth::XorShift(0x2545f4914f6cdd1d);
        let mut next = || rng.next_u64();
        let base_c = split_records(&hs(1, &client_hello_body(&CIPHERS, &typical_exts(&["r.example"]))), &[50]);
        let base_s = server_flight(&fake_der(1, 100), &fake_der(2, 100), &[70]);
        let mut scratch = Vec::new();
        for i in 0..4000 {
            let buf: Vec<u8> = match i % 3 {
                0 => {
                    let len = (next() % 400) as usize;
                    let mut v: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    if v.len() > 3 {
                        v[0] = 22;
                        v[1] = 3;
                        v[2] = 1;
                    }
                    v
                }
                1 => {
                    let mut v = base_c.clone();
                    for _ in 0..(1 + next() % 3) {
                        let p = next() as usize % v.len();
                        v[p] = next() as u8;
                    }
                    v
                }
                _ => {
                    let mut v = base_s.clone();
                    for _ in 0..(1 + next() % 3) {
                        let p = next() as usize % v.len();
                        v[p] = next() as u8;
                    }
                    v
                }
            };
            if let Ok(ch) = parse_client_hello(&buf, &mut scratch) {
                let _ = ja3(&ch);
            }
            let _ = server_certificates(&buf, &mut scratch, |_| {});
        }
    }
}
