//! Byte searches eight bytes at a time in plain integer arithmetic ("SIMD within a register"),
//! for the short spans of text formats: a field of a few bytes between tabs, a JSON string of
//! a dozen. A byte loop mispredicts its exit at nearly every such span, and a vector search
//! costs more to set up than the span takes to walk. Portable, and exact: no false positives.

/// `b` in every byte.
#[inline]
pub(super) const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The top bit of each byte of the result is set exactly where `x` has a zero byte (the sums
/// stay within their byte, so nothing carries into a neighbour).
#[inline]
pub(super) const fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = splat(0x7f);
    !((((x & LOW7) + LOW7) | x) | LOW7)
}

/// The eight bytes at `i` as a little-endian word (so the lowest set bit of a mask from
/// [`zero_bytes`] is the first match), or `None` within eight bytes of the end.
#[inline]
pub(super) fn word(b: &[u8], i: usize) -> Option<u64> {
    let c: [u8; 8] = b.get(i..i.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(c))
}

/// The byte offset of the first match in a non-zero mask from [`zero_bytes`].
#[inline]
pub(super) fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// The value of eight ASCII digits loaded by [`word`] (the first digit in the lowest byte), or
/// `None` if any byte is not a digit: three multiplies where a digit loop takes eight dependent
/// steps (flow logs carry two ten-digit times per line).
#[inline]
pub(super) fn eight_digits(w: u64) -> Option<u64> {
    let d = w.wrapping_sub(splat(b'0'));
    // A digit leaves 0..=9, with no high nibble even after adding 6. Anything else (below '0'
    // it borrows, above '9' it reaches 10 or more) shows a high nibble in its own byte.
    if (d | d.wrapping_add(splat(6))) & splat(0xf0) != 0 {
        return None;
    }
    let d = (d.wrapping_mul(10 << 8 | 1) >> 8) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(100 << 16 | 1) >> 16) & 0x0000_ffff_0000_ffff;
    Some(d.wrapping_mul(10_000 << 32 | 1) >> 32)
}

/// Hands `f` the fields of `b` at the `wanted` positions (ascending), in order, and returns how
/// many fields `b` has. Separators are found eight bytes at a time: a conn.log line has some
/// twenty fields of a few bytes each, so a byte loop mispredicts its branch at nearly every
/// field, and a vector search costs more to set up per field than the field takes to walk.
/// Past the last wanted field, separators are only counted.
pub(super) fn split_wanted<'a, R: Copy>(
    b: &'a [u8],
    sep: u8,
    wanted: &[(usize, R)],
    mut f: impl FnMut(R, &'a [u8]) -> Result<(), String>,
) -> Result<usize, String> {
    let rep = splat(sep);
    let mut want = wanted.iter().copied();
    let mut next = want.next();
    let (mut field, mut start, mut i) = (0usize, 0usize, 0usize);
    while let Some(w) = word(b, i) {
        let mut m = zero_bytes(w ^ rep);
        if next.is_none() {
            field += m.count_ones() as usize;
        } else {
            while m != 0 {
                let end = i + first(m);
                if let Some((at, role)) = next.filter(|&(at, _)| at == field) {
                    f(role, b.get(start..end).unwrap_or_default())?;
                    next = want.next();
                    debug_assert!(next.is_none_or(|(n, _)| n > at), "wanted positions ascend");
                }
                field += 1;
                start = end + 1;
                m &= m - 1;
            }
        }
        i += 8;
    }
    for (j, &c) in b.iter().enumerate().skip(i) {
        if c == sep {
            if let Some((_, role)) = next.filter(|&(at, _)| at == field) {
                f(role, b.get(start..j).unwrap_or_default())?;
                next = want.next();
            }
            field += 1;
            start = j + 1;
        }
    }
    if let Some((_, role)) = next.filter(|&(at, _)| at == field) {
        f(role, b.get(start..).unwrap_or_default())?;
    }
    Ok(field + 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn eight_digits_reads_exactly_eight_digits() {
        let mut rng = crate::synth::XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..200_000 {
            let x = rng.next_u64();
            let mut b = format!("{:08}", x % 100_000_000).into_bytes();
            if x.is_multiple_of(3) {
                b[(x >> 40) as usize % 8] = (x >> 48) as u8;
            }
            let want = std::str::from_utf8(&b)
                .ok()
                .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
                .map(|s| s.parse::<u64>().unwrap());
            assert_eq!(super::eight_digits(super::word(&b, 0).unwrap()), want, "{b:?}");
        }
    }

    #[test]
    fn zero_bytes_is_exact() {
        let mut rng = crate::synth::XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..100_000 {
            let x = rng.next_u64();
            // Bytes near zero, 0x80 and 0xff, where carries and borrows would show.
            let w = u64::from_le_bytes(x.to_le_bytes().map(|b| [0, 1, 0x80, 0x81, 0x7f, 0xff, b][usize::from(b % 7)]));
            let want = u64::from_le_bytes(w.to_le_bytes().map(|b| if b == 0 { 0x80 } else { 0 }));
            assert_eq!(super::zero_bytes(w), want, "{w:#018x}");
        }
    }
}
