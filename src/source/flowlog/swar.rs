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

#[cfg(test)]
mod tests {
    #[test]
    fn zero_bytes_is_exact() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Bytes near zero, 0x80 and 0xff, where carries and borrows would show.
            let w = u64::from_le_bytes(x.to_le_bytes().map(|b| [0, 1, 0x80, 0x81, 0x7f, 0xff, b][usize::from(b % 7)]));
            let want = u64::from_le_bytes(w.to_le_bytes().map(|b| if b == 0 { 0x80 } else { 0 }));
            assert_eq!(super::zero_bytes(w), want, "{w:#018x}");
        }
    }
}
