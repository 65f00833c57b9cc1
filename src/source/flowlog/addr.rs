//! Addresses as flow logs write them: dotted quads, IPv6 in any of its forms (Suricata pads
//! every group to four digits), sometimes in brackets. Every record has two, so both parsers
//! are single forward passes, exact against `std`'s (their tests compare them on millions of
//! inputs) but several times faster: `std`'s IPv6 parser tries an embedded IPv4 address at
//! every group and backs up when it fails.

use std::net::{IpAddr, Ipv6Addr};

/// Parses an IP address, also accepting Suricata's zero-padded IPv6 notation and brackets.
pub(super) fn parse_ip(s: &str) -> Option<IpAddr> {
    // Trimming is for the odd value: most have nothing to trim, and `trim` walks characters.
    let odd_end = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_whitespace() || !c.is_ascii());
    let s = if odd_end(s.as_bytes().first()) || odd_end(s.as_bytes().last()) { s.trim() } else { s };
    if let Some(a) = parse_ipv4(s.as_bytes()) {
        return Some(IpAddr::V4(a));
    }
    let s = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
    parse_ipv6(s.as_bytes()).map(IpAddr::V6)
}

/// [`parse_ip`] of text already split at ASCII bytes out of a valid line.
#[inline]
pub(super) fn parse_ip_bytes(b: &[u8]) -> Option<IpAddr> {
    let plain = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b':');
    if !(plain(b.first()) && plain(b.last())) {
        // Brackets, spaces, anything unusual: the general reader.
        return parse_ip(std::str::from_utf8(b).ok()?);
    }
    match parse_ipv4(b) {
        Some(a) => Some(IpAddr::V4(a)),
        None => parse_ipv6(b).map(IpAddr::V6),
    }
}

/// A dotted-quad IPv4 address, as `Ipv4Addr::from_str` reads it (four decimal octets, no
/// leading zeros) but in one pass: every record of a flow log has two.
#[inline]
pub(super) fn parse_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    if b.len() < 7 || b.len() > 15 {
        return None;
    }
    parse_ipv4_to_end(b).map(std::net::Ipv4Addr::from)
}

/// The longest input that std can possibly accept: six full hex groups, their
/// colons and a maximal dotted quad, as in
/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`.
///
/// Every hex group has at most 4 digits, so nothing longer can be valid.
/// Checking this up front bounds the work done on garbage.
const MAX_LEN: usize = 45;

/// The length of a fully expanded address, e.g.,
/// `2001:0db8:0001:0000:0000:0000:1f57:230e`.
const EXPANDED_LEN: usize = 39;

/// Maps a byte to its hex digit value, or to a value above `0xF` if it isn't
/// a hex digit.
const HEX: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Parses an IPv6 address from its textual form.
///
/// This is exactly equivalent to
/// `std::str::from_utf8(b).ok().and_then(|s| s.parse::<Ipv6Addr>().ok())`:
/// it accepts the same inputs, including std's quirks (for example,
/// `1:2:3:4:5:6:7::` is valid because `::` may stand for a single group, but
/// `1:2:3:4:5:6::1.2.3.4` is not), and returns the same address. It never
/// panics and never allocates. Zone ids (`%eth0`), brackets, ports and
/// surrounding whitespace are all rejected, just like std.
///
/// # Why this exists
///
/// Flow logs carry two addresses per line, so address parsing sits directly
/// on the hot path of a scan. std's parser is a general combinator parser
/// that tries to read an embedded IPv4 address at every group before falling
/// back to hex, restoring its position each time it fails, and that makes it
/// a measurable share of a scan. This parser instead makes one forward pass
/// that only switches to IPv4 when it actually sees a `.`, and has a
/// branch-free (and auto-vectorized) path for the fully expanded form that
/// many exporters emit. It takes `&[u8]` because that is what a scanner
/// has in hand; std's byte-based `Ipv6Addr::parse_ascii` is unstable.
///
#[inline]
pub(super) fn parse_ipv6(b: &[u8]) -> Option<Ipv6Addr> {
    // Other 39 byte inputs can be valid too, e.g., `::ffff:` followed by a
    // long dotted quad, so a miss falls through to the general parser.
    if b.len() == EXPANDED_LEN {
        if let Some(addr) = parse_expanded(b) {
            return Some(addr);
        }
    }
    parse_general(b)
}

/// Parses exactly `xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx`.
///
/// Returns `None` for anything else, which is not necessarily invalid. Since
/// the shape is fixed, every digit is decoded unconditionally and validity
/// is checked once at the end. Written as straight-line byte arithmetic over
/// fixed-size arrays, LLVM turns the decoding into a handful of SSE2
/// instructions.
#[inline]
fn parse_expanded(b: &[u8]) -> Option<Ipv6Addr> {
    let b: &[u8; EXPANDED_LEN] = b.try_into().ok()?;
    // Gather the 32 digits, two groups (8 digits) per chunk.
    let mut chunks = [[0u8; 8]; 4];
    let mut colons = true;
    for (k, chunk) in chunks.iter_mut().enumerate() {
        let at = 10 * k;
        chunk[..4].copy_from_slice(&b[at..at + 4]);
        chunk[4..].copy_from_slice(&b[at + 5..at + 9]);
        colons &= b[at + 4] == b':';
        if k < 3 {
            colons &= b[at + 9] == b':';
        }
    }
    let mut invalid = false;
    for c in chunks.as_flattened_mut() {
        let digit = c.wrapping_sub(b'0');
        let letter = (*c | 0x20).wrapping_sub(b'a');
        invalid |= digit > 9 && letter > 5;
        *c = if digit <= 9 { digit } else { letter.wrapping_add(10) };
    }
    if !colons || invalid {
        return None;
    }
    // Squeeze each chunk's 8 nibbles (one per byte, most significant first)
    // into 32 bits.
    let mut addr = 0u128;
    for chunk in chunks {
        let mut x = u64::from_be_bytes(chunk);
        x = (x | x >> 4) & 0x00FF_00FF_00FF_00FF;
        x = (x | x >> 8) & 0x0000_FFFF_0000_FFFF;
        x = (x | x >> 16) & 0x0000_0000_FFFF_FFFF;
        addr = addr << 32 | u128::from(x);
    }
    Some(Ipv6Addr::from(addr))
}

/// Parses any address std accepts, in a single forward pass.
///
/// The grammar that std's parser implements boils down to:
///
/// * groups of 1-4 hex digits separated by single colons;
/// * at most one `::`, standing for at least one zero group, so at most 7
///   explicit groups may accompany it (and exactly 8 are needed without it);
/// * optionally, a dotted quad in place of the final two groups. It must end
///   the input and counts as two groups towards the limits above. Its octets
///   are 1-3 decimal digits, at most 255, with no leading zeros.
///
/// std finds this by trying an IPv4 address at every group and backtracking.
/// Here, a group is scanned as hex and only when it is followed by a `.` is
/// it re-scanned (at most 3 bytes) as the first octet of a dotted quad.
///
/// Branchy code wins here: a branch-free group scanner was tried and was
/// slower, since it puts every group on one long dependency chain that
/// branch prediction otherwise hides.
#[inline]
fn parse_general(b: &[u8]) -> Option<Ipv6Addr> {
    if b.len() > MAX_LEN {
        return None;
    }
    // Groups are shifted in from the right. At a `::`, what we have so far
    // is set aside as the head, so that at the end each half only needs one
    // shift to get into place (instead of moving groups around an array).
    let mut head = 0u128;
    let mut groups = 0u128;
    // The number of groups parsed so far, a dotted quad counting as two.
    let mut n = 0;
    // The value of `n` at which `::` appeared, if it did.
    let mut gap = None;
    let mut i = 0;

    // A leading `::` is the only way an address can start with a colon, so
    // deal with it here and keep the loop below uniform.
    if b.first() == Some(&b':') {
        if b.get(1) != Some(&b':') {
            return None;
        }
        if b.len() == 2 {
            return Some(Ipv6Addr::UNSPECIFIED);
        }
        gap = Some(0);
        i = 2;
    }
    loop {
        let start = i;
        let mut group = 0u16;
        while let Some(&c) = b.get(i) {
            let d = HEX[usize::from(c)];
            if d > 0xF {
                break;
            }
            // A fifth digit can't be part of a hex group, and it can't be
            // part of a dotted quad either (octets have at most 3 digits), so
            // std rejects the whole input.
            if i - start == 4 {
                return None;
            }
            group = group << 4 | u16::from(d);
            i += 1;
        }
        // This catches empty groups (`:::`, a trailing single `:`, etc.)
        // and bails early on a ninth group.
        if i == start || n == 8 {
            return None;
        }
        match b.get(i) {
            None => {
                groups = groups << 16 | u128::from(group);
                n += 1;
                break;
            }
            Some(b':') => {
                groups = groups << 16 | u128::from(group);
                n += 1;
                i += 1;
            }
            Some(b'.') => {
                // Whether there is room for these two groups (next to a `::`
                // or not) is checked below, along with the hex groups.
                let v4 = parse_ipv4_to_end(b.get(start..)?)?;
                groups = groups << 32 | u128::from(u32::from_be_bytes(v4));
                n += 2;
                break;
            }
            Some(_) => return None,
        }
        // We just consumed a `:`. A second one makes a `::`.
        if b.get(i) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(n);
            head = groups;
            groups = 0;
            i += 1;
            if i == b.len() {
                break;
            }
        }
    }
    match gap {
        None if n == 8 => Some(Ipv6Addr::from(groups)),
        // `::` must stand for at least one group, so `n < 8`. The `g` head
        // groups go to the top. Shifting in two steps keeps each shift below
        // 128 bits when `g == 0`.
        Some(g) if n < 8 => Some(Ipv6Addr::from((head << (16 * (7 - g)) << 16) | groups)),
        _ => None,
    }
}

/// Parses a dotted quad that must span all of `b`, with std's rules for
/// `Ipv4Addr`: four octets of 1-3 decimal digits, each at most 255, and no
/// leading zeros (which std rejects to avoid octal ambiguity, RFC 6943).
#[inline(always)]
fn parse_ipv4_to_end(b: &[u8]) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut bytes = b.iter().copied();
    for (k, octet) in octets.iter_mut().enumerate() {
        let first = bytes.next()?.wrapping_sub(b'0');
        if first > 9 {
            return None;
        }
        let (mut value, mut digits) = (u16::from(first), 1);
        // Each byte after the first digit either ends the octet (a dot, or the end after the
        // fourth) or is one more digit of an octet that did not start with 0.
        loop {
            match bytes.next() {
                None if k == 3 => break,
                Some(b'.') if k < 3 => break,
                Some(c) if c.wrapping_sub(b'0') <= 9 && first != 0 && digits < 3 => {
                    value = value * 10 + u16::from(c - b'0');
                    digits += 1;
                }
                _ => return None,
            }
        }
        *octet = u8::try_from(value).ok()?;
    }
    Some(octets)
}

#[cfg(test)]
mod ipv6_tests {
    use super::*;
    use std::fmt::Write;

    /// The oracle: what `parse_ipv6` must agree with on every input.
    fn std_parse(b: &[u8]) -> Option<Ipv6Addr> {
        std::str::from_utf8(b).ok().and_then(|s| s.parse().ok())
    }

    #[track_caller]
    fn check(b: &[u8]) -> Option<Ipv6Addr> {
        let got = parse_ipv6(b);
        let want = std_parse(b);
        assert_eq!(got, want, "mismatch on {:?}", String::from_utf8_lossy(b));
        got
    }

    /// Hand-picked cases, from std's own tests and from reading its parser.
    /// `None` means std rejects the input.
    #[test]
    fn table() {
        const C: &[(&str, Option<[u16; 8]>)] = &[
            // Common flow log forms.
            ("2001:0db8:0001:0000:0000:0000:1f57:230e", Some([0x2001, 0xdb8, 1, 0, 0, 0, 0x1f57, 0x230e])),
            ("2001:DB8:1:0:0:0:1F57:230E", Some([0x2001, 0xdb8, 1, 0, 0, 0, 0x1f57, 0x230e])),
            ("2001:db8:1::1f57:230e", Some([0x2001, 0xdb8, 1, 0, 0, 0, 0x1f57, 0x230e])),
            ("fd00:0:0:20::1", Some([0xfd00, 0, 0, 0x20, 0, 0, 0, 1])),
            ("::ffff:10.1.2.3", Some([0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203])),
            // From std's tests.
            ("0:0:0:0:0:0:0:0", Some([0; 8])),
            ("0:0:0:0:0:0:0:1", Some([0, 0, 0, 0, 0, 0, 0, 1])),
            ("::1", Some([0, 0, 0, 0, 0, 0, 0, 1])),
            ("::", Some([0; 8])),
            ("2a02:6b8::11:11", Some([0x2a02, 0x6b8, 0, 0, 0, 0, 0x11, 0x11])),
            ("2001:db8:0:0:0:0:c0a8:1", Some([0x2001, 0xdb8, 0, 0, 0, 0, 0xc0a8, 1])),
            ("2001:db8::c0a8:1", Some([0x2001, 0xdb8, 0, 0, 0, 0, 0xc0a8, 1])),
            ("2001:db8::192.168.0.1", Some([0x2001, 0xdb8, 0, 0, 0, 0, 0xc0a8, 1])),
            ("1::", Some([1, 0, 0, 0, 0, 0, 0, 0])),
            ("1:1::", Some([1, 1, 0, 0, 0, 0, 0, 0])),
            ("::1:1", Some([0, 0, 0, 0, 0, 0, 1, 1])),
            ("::192.168.0.1", Some([0, 0, 0, 0, 0, 0, 0xc0a8, 1])),
            ("::1:192.168.0.1", Some([0, 0, 0, 0, 0, 1, 0xc0a8, 1])),
            ("1:1:1:1:1:1:192.168.0.1", Some([1, 1, 1, 1, 1, 1, 0xc0a8, 1])),
            ("::192.0.2.33", Some([0, 0, 0, 0, 0, 0, 0xc000, 0x221])),
            ("::FFFF:192.0.2.33", Some([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x221])),
            ("64:ff9b::192.0.2.33", Some([0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x221])),
            ("2001:db8:122:c000:2:2100:192.0.2.33", Some([0x2001, 0xdb8, 0x122, 0xc000, 2, 0x2100, 0xc000, 0x221])),
            ("::00000", None),
            ("1:2:3:4:5:6:7", None),
            ("1:2:3:4:5:6:7:8:9", None),
            ("1:2:::6:7:8", None),
            ("1:2::6::8", None),
            ("1:2:3:4::5:6:7:8", None),
            ("1:1:1:1::1:1:1:1", None),
            ("1:192.168.0.1::", None),
            ("::127.0.0.1:", None),
            ("1.2.3.4.5:127.0.0.1", None),
            ("1.2.3.4.5:6:7:127.0.0.1", None),
            ("2001:db8::0127.0.0.1", None),
            ("2001:db8::0x10.0.0.1", None),
            ("192.168.0.1", None),
            ("192.168.0.1:8080", None),
            ("[2001:db8::c0a8:1]:8080", None),
            ("1:1:1:1:1:1:1:1:8080", None),
            // `::` may stand for a single group, at either end.
            ("1:2:3:4:5:6:7::", Some([1, 2, 3, 4, 5, 6, 7, 0])),
            ("::2:3:4:5:6:7:8", Some([0, 2, 3, 4, 5, 6, 7, 8])),
            ("1:2:3::5:6:7:8", Some([1, 2, 3, 0, 5, 6, 7, 8])),
            ("1:2:3:4:5:6:7:8::", None),
            ("::1:2:3:4:5:6:7:8", None),
            // Colons.
            (":::", None),
            ("::::", None),
            (":", None),
            ("", None),
            (":1::", None),
            ("1::1:", None),
            (":1:2:3:4:5:6:7:8", None),
            ("1:2:3:4:5:6:7:8:", None),
            ("1:::2", None),
            ("1::2::", None),
            ("::1::", None),
            // Group lengths and digits.
            ("ffff:FFFF:fFfF:0:0:0:0:0", Some([0xffff, 0xffff, 0xffff, 0, 0, 0, 0, 0])),
            ("0000::", Some([0; 8])),
            ("00000::", None),
            ("::12345", None),
            ("1:2:3:4:5:6:7:g", None),
            ("1:2:3:4:5:6:7:-1", None),
            ("1:2:3:4:5:6:7:+1", None),
            ("0x1::", None),
            // Embedded IPv4: position, room and std's IPv4 rules.
            (
                "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
                Some([0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff]),
            ),
            ("::0.0.0.0", Some([0; 8])),
            ("1:2:3:4:5::1.2.3.4", Some([1, 2, 3, 4, 5, 0, 0x102, 0x304])),
            ("1:2:3:4:5:6::1.2.3.4", None),
            ("1:2:3:4:5:1.2.3.4", None),
            ("1:2:3:4:5:6:7:1.2.3.4", None),
            ("1:2:3:4:5:6:7::1.2.3.4", None),
            ("1.2.3.4", None),
            ("1.2.3.4::", None),
            ("::1.2.3.4::", None),
            ("::1.2.3.4:5", None),
            ("::1.2.3.4.5", None),
            ("::1.2.3", None),
            ("::1.2.3.", None),
            ("::1..2.3", None),
            ("::.1.2.3", None),
            ("::1.2.3.256", None),
            ("::1.2.3.1000", None),
            ("::01.2.3.4", None),
            ("::1.2.3.00", None),
            ("::1.2.3.0", Some([0, 0, 0, 0, 0, 0, 0x102, 0x300])),
            // 39 bytes, but not the fully expanded form.
            (
                "ffff:ffff:ffff:ffff:ffff::1.255.255.255",
                Some([0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0, 0x1ff, 0xffff]),
            ),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff::fff", None),
            ("ffff:ffff:ffff:ffff:ffff:ffff:fff::ffff", None),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff.ffff", None),
            ("ffff:ffff.ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffg", None),
            ("gfff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff!", None),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ", None),
            ("::a.2.3.4", None),
            ("::1a.2.3.4", None),
            ("::1.2.3.4a", None),
            ("::1.2.3.4 ", None),
            ("::1.2.3.4%eth0", None),
            ("::ffff:1.2.3.4/64", None),
            // No zone ids, brackets, whitespace or other decoration.
            ("fe80::1%eth0", None),
            ("fe80::1%1", None),
            ("[::1]", None),
            (" ::1", None),
            ("::1 ", None),
            ("::1\n", None),
            ("::1\0", None),
            ("fe80::1/64", None),
            ("::\u{ff11}", None),
            ("é::1", None),
        ];
        for &(input, want) in C {
            let got = check(input.as_bytes());
            assert_eq!(got, want.map(Ipv6Addr::from), "table entry {input:?}");
        }
        // Invalid UTF-8 and other non-ASCII bytes.
        for b in [&b"::\xff"[..], b"\xff::", b"1::\x80", b"\xc3\xa9::1"] {
            assert_eq!(check(b), None);
        }
    }

    /// Every string of up to 6 bytes over an alphabet that exercises all
    /// the separators and digit classes.
    #[test]
    fn exhaustive_short() {
        const ALPHABET: &[u8] = b":.01fF9g";
        let mut buf = Vec::new();
        let mut count = 0;
        for len in 0..=6u32 {
            for mut code in 0..ALPHABET.len().pow(len) {
                buf.clear();
                for _ in 0..len {
                    buf.push(ALPHABET[code % ALPHABET.len()]);
                    code /= ALPHABET.len();
                }
                check(&buf);
                count += 1;
            }
        }
        assert_eq!(count, 299_593);
    }

    /// The expanded fast path only ever sees 39 byte inputs, which random
    /// generation rarely produces. So try every byte at every position of a
    /// few such inputs.
    #[test]
    fn expanded_substitutions() {
        let bases = [
            "2001:0db8:0001:0000:0000:0000:1f57:230e",
            "FFFF:abcd:ABCD:0000:9999:f0F0:0a0A:1234",
            "0000:0000:0000:0000:0000:ffff:0a01:0203",
        ];
        let mut count = 0;
        for base in bases {
            let mut buf = base.as_bytes().to_vec();
            assert_eq!(buf.len(), EXPANDED_LEN);
            for at in 0..buf.len() {
                for byte in 0..=255 {
                    buf[at] = byte;
                    check(&buf);
                    count += 1;
                }
                buf[at] = base.as_bytes()[at];
            }
        }
        assert_eq!(count, 3 * 39 * 256);
    }

    /// xorshift64*, plenty for generating test inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// True with probability 1/n.
        fn one_in(&mut self, n: usize) -> bool {
            self.below(n) == 0
        }

        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len())]
        }
    }

    /// Bytes that are interesting next to (or instead of) address bytes.
    fn random_byte(rng: &mut Rng) -> u8 {
        const INTERESTING: &[u8] = b"0123456789abcdefABCDEFgGxX:::...%[] /-+\0\n";
        if rng.one_in(8) {
            // Non-ASCII, possibly creating invalid UTF-8.
            0x80 | rng.below(0x80) as u8
        } else {
            *rng.pick(INTERESTING)
        }
    }

    fn push_hex_group(rng: &mut Rng, buf: &mut Vec<u8>) {
        const HEX_DIGITS: &[u8] = b"0123456789abcdefABCDEF";
        // Mostly 1-4 digits, sometimes empty or too long.
        let len = match rng.below(10) {
            0 => 0,
            1 => 5,
            _ => 1 + rng.below(4),
        };
        for _ in 0..len {
            // Bias towards zeros, which is where leading-zero bugs hide.
            let d = if rng.one_in(3) { b'0' } else { *rng.pick(HEX_DIGITS) };
            buf.push(d);
        }
    }

    fn push_ipv4_octet(rng: &mut Rng, buf: &mut Vec<u8>) {
        match rng.below(8) {
            // Empty, or 1-4 random digits (leading zeros, > 255, too long).
            0 => {}
            1 => {
                for _ in 0..1 + rng.below(4) {
                    buf.push(b'0' + rng.below(10) as u8);
                }
            }
            // Values around the 255 boundary.
            2 => {
                write!(Bytes(buf), "{}", 250 + rng.below(10)).unwrap();
            }
            _ => {
                write!(Bytes(buf), "{}", rng.below(256)).unwrap();
            }
        }
    }

    fn push_ipv4(rng: &mut Rng, buf: &mut Vec<u8>) {
        let octets = match rng.below(10) {
            0 => 3,
            1 => 5,
            _ => 4,
        };
        for k in 0..octets {
            if k > 0 {
                buf.push(b'.');
            }
            push_ipv4_octet(rng, buf);
        }
    }

    fn push_separator(rng: &mut Rng, buf: &mut Vec<u8>) {
        let sep: &[u8] = match rng.below(12) {
            0 => b":::",
            1 => b".",
            2 | 3 => b"::",
            _ => b":",
        };
        buf.extend_from_slice(sep);
    }

    /// Generates something address-shaped: groups, at most a few `::`, maybe
    /// a dotted quad, then a few random byte edits.
    fn random_input(rng: &mut Rng, buf: &mut Vec<u8>) {
        buf.clear();
        match rng.below(10) {
            // Plausible addresses: ~0-9 groups, a `::` somewhere or not,
            // and an optional trailing dotted quad.
            0..=5 => {
                let groups = rng.below(10);
                let gap = if rng.one_in(4) { None } else { Some(rng.below(groups + 1)) };
                let v4 = rng.one_in(3);
                if gap == Some(0) {
                    buf.extend_from_slice(b"::");
                }
                for k in 0..groups {
                    if k > 0 {
                        if gap == Some(k) {
                            buf.extend_from_slice(b"::");
                        } else if rng.one_in(20) {
                            push_separator(rng, buf);
                        } else {
                            buf.push(b':');
                        }
                    }
                    push_hex_group(rng, buf);
                }
                if groups > 0 && gap == Some(groups) {
                    buf.extend_from_slice(b"::");
                }
                if v4 {
                    if !buf.is_empty() && !buf.ends_with(b"::") {
                        buf.push(b':');
                    }
                    push_ipv4(rng, buf);
                }
            }
            // Token soup: random pieces up to a random length.
            6..=8 => {
                let target = rng.below(61);
                while buf.len() < target {
                    match rng.below(5) {
                        0 | 1 => push_hex_group(rng, buf),
                        2 => push_separator(rng, buf),
                        3 => push_ipv4(rng, buf),
                        _ => buf.push(random_byte(rng)),
                    }
                }
            }
            // Random bytes.
            _ => {
                for _ in 0..rng.below(61) {
                    buf.push(random_byte(rng));
                }
            }
        }
        // Single byte edits.
        for _ in 0..rng.below(4).saturating_sub(1) {
            let at = rng.below(buf.len() + 1);
            match rng.below(3) {
                0 => buf.insert(at, random_byte(rng)),
                1 if at < buf.len() => {
                    buf.remove(at);
                }
                _ if at < buf.len() => buf[at] = random_byte(rng),
                _ => {}
            }
        }
        if rng.one_in(10) {
            buf.truncate(rng.below(61));
        }
    }

    /// Lets `write!` append to a `Vec<u8>` without going through `String`.
    struct Bytes<'a>(&'a mut Vec<u8>);

    impl Write for Bytes<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }

    /// Appends `addr` with all 8 groups written as 4 hex digits.
    fn push_expanded(buf: &mut Vec<u8>, addr: Ipv6Addr, upper: bool) {
        for (k, g) in addr.segments().into_iter().enumerate() {
            if k > 0 {
                buf.push(b':');
            }
            if upper {
                write!(Bytes(buf), "{g:04X}").unwrap();
            } else {
                write!(Bytes(buf), "{g:04x}").unwrap();
            }
        }
    }

    const FUZZ_ITERS: usize = if cfg!(debug_assertions) { 200_000 } else { 5_000_000 };

    #[test]
    fn differential_random() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut buf = Vec::with_capacity(128);
        let mut valid = 0;
        for _ in 0..FUZZ_ITERS {
            random_input(&mut rng, &mut buf);
            if check(&buf).is_some() {
                valid += 1;
            }
        }
        eprintln!("differential_random: {FUZZ_ITERS} inputs, {valid} valid");
        // Make sure the generator actually explores the valid side too.
        assert!(valid > FUZZ_ITERS / 20, "only {valid} valid inputs");
    }

    /// An address whose groups are biased towards zeros (so that `::`
    /// compression kicks in at all positions), sometimes IPv4-mapped (which
    /// std prints with a dotted quad) or IPv4-compatible.
    fn random_addr(rng: &mut Rng) -> Ipv6Addr {
        let mut groups = [0u16; 8];
        for g in &mut groups {
            *g = match rng.below(5) {
                0 | 1 => 0,
                2 => rng.below(0x100) as u16,
                _ => rng.next() as u16,
            };
        }
        match rng.below(10) {
            0 => groups[..6].copy_from_slice(&[0, 0, 0, 0, 0, 0xffff]),
            1 => groups[..6].fill(0),
            _ => {}
        }
        Ipv6Addr::from(groups)
    }

    #[test]
    fn differential_round_trip() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut buf = Vec::with_capacity(64);
        for _ in 0..FUZZ_ITERS / 5 {
            let addr = random_addr(&mut rng);

            // std's canonical form.
            buf.clear();
            write!(Bytes(&mut buf), "{addr}").unwrap();
            assert_eq!(check(&buf), Some(addr));

            // Fully expanded, in either case.
            buf.clear();
            push_expanded(&mut buf, addr, rng.one_in(2));
            assert_eq!(check(&buf), Some(addr));

            // ... and with one byte replaced, which is usually invalid.
            let at = rng.below(buf.len());
            buf[at] = random_byte(&mut rng);
            check(&buf);

            // Uncompressed, unpadded, with the last 32 bits as a dotted quad.
            buf.clear();
            for g in &addr.segments()[..6] {
                write!(Bytes(&mut buf), "{g:x}:").unwrap();
            }
            let [.., o1, o2, o3, o4] = addr.octets();
            write!(Bytes(&mut buf), "{o1}.{o2}.{o3}.{o4}").unwrap();
            assert_eq!(check(&buf), Some(addr));
        }
    }
}

#[cfg(test)]
mod ipv4_tests {
    #[test]
    fn fast_ipv4_parser_agrees_with_std() {
        let cases = [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "10.20.30.40",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.4 ",
            "a.b.c.d",
            "1.2.3.-4",
            "999.0.0.1",
            "1.2.3.4x",
            "1234.1.1.1",
            "0.0.0.00",
        ];
        for c in cases {
            assert_eq!(super::parse_ipv4(c.as_bytes()), c.parse().ok(), "{c:?}");
        }
        let mut rng = crate::synth::XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let x = rng.next_u64();
            let a = std::net::Ipv4Addr::from((x >> 16) as u32).to_string();
            assert_eq!(super::parse_ipv4(a.as_bytes()), a.parse().ok(), "{a}");
            let junk: String = (0..(x % 16)).map(|i| b"0123456789.."[((x >> (i * 4)) % 12) as usize] as char).collect();
            assert_eq!(super::parse_ipv4(junk.as_bytes()), junk.parse().ok(), "{junk:?}");
        }
    }
}

#[cfg(test)]
mod bytes_tests {
    /// The byte reader takes its shortcut only where the text reader would read the same.
    #[test]
    fn parse_ip_bytes_agrees_with_parse_ip() {
        let mut rng = crate::synth::XorShift(0x1234_5678_9abc_def1);
        for _ in 0..200_000 {
            let x = rng.next_u64();
            let len = (x % 20) as usize;
            let s: String = (0..len)
                .map(|i| {
                    ['1', '0', '.', ':', 'a', 'F', ' ', '[', ']', 'é', '\u{a0}', '2', '5']
                        [((x >> (i * 3)) % 13) as usize]
                })
                .collect();
            assert_eq!(super::parse_ip_bytes(s.as_bytes()), super::parse_ip(&s), "{s:?}");
        }
        for s in ["10.0.0.1", " 10.0.0.1", "[2001:db8::1]", "::", "::1", "fd00::", "2001:db8::1 ", "\u{a0}::1"] {
            assert_eq!(super::parse_ip_bytes(s.as_bytes()), super::parse_ip(s), "{s:?}");
        }
    }
}
