//! The first bytes of one TCP direction, in order, bounded.
//!
//! Application fields (SNI, Host, certificates) sit in the first few kilobytes of a
//! connection, but a ClientHello may span segments that arrive retransmitted or out of order.
//! This buffer keeps at most `cap` bytes and a few early segments, trims retransmitted bytes,
//! and never grows past its cap: a connection that sends more simply stops being inspected.

/// Most out-of-order segments held per direction.
const MAX_PENDING: usize = 8;

#[derive(Debug, Default)]
pub struct Stream {
    /// Sequence number of `buf[0]`.
    base: Option<u32>,
    buf: Vec<u8>,
    pending: Vec<(u32, Vec<u8>)>,
    /// Set once bytes had to be dropped for the cap.
    pub overflow: bool,
}

impl Stream {
    /// Sets the first sequence number from a SYN (data starts at ISN + 1).
    pub fn syn(&mut self, isn: u32) {
        if self.base.is_none() {
            self.base = Some(isn.wrapping_add(1));
        }
    }

    /// Adds a segment. Returns true when new in-order bytes became available.
    pub fn add(&mut self, seq: u32, data: &[u8], cap: usize) -> bool {
        if data.is_empty() {
            return false;
        }
        let base = *self.base.get_or_insert(seq);
        let grew = self.place(base, seq, data, cap);
        if grew && !self.pending.is_empty() {
            // Drain what the new bytes made contiguous.
            loop {
                let end = base.wrapping_add(self.buf.len() as u32);
                let Some(i) = self.pending.iter().position(|(s, d)| {
                    let off = s.wrapping_sub(end) as i32;
                    off <= 0 && (off + d.len() as i32) > 0
                }) else {
                    break;
                };
                let (s, d) = self.pending.swap_remove(i);
                self.place(base, s, &d, cap);
            }
            let end = base.wrapping_add(self.buf.len() as u32);
            self.pending.retain(|(s, d)| (s.wrapping_sub(end) as i32) + d.len() as i32 > 0);
        }
        grew
    }

    fn place(&mut self, base: u32, seq: u32, data: &[u8], cap: usize) -> bool {
        let off = seq.wrapping_sub(base) as i32 as i64;
        let len = self.buf.len() as i64;
        if off > len {
            // A gap: hold the segment for later, within bounds.
            let held: usize = self.pending.iter().map(|p| p.1.len()).sum();
            if off < cap as i64 && self.pending.len() < MAX_PENDING && held + data.len() <= cap {
                self.pending.push((seq, data.to_vec()));
            } else {
                self.overflow = true;
            }
            return false;
        }
        let skip = (len - off) as usize; // bytes we already have (retransmission)
        if skip >= data.len() {
            return false;
        }
        let room = cap.saturating_sub(self.buf.len());
        let take = (data.len() - skip).min(room);
        if take < data.len() - skip {
            self.overflow = true;
        }
        self.buf.extend_from_slice(&data[skip..skip + take]);
        take > 0
    }

    /// The contiguous bytes from the start of the direction.
    pub fn data(&self) -> &[u8] {
        &self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Frees the buffers once the direction is no longer inspected.
    pub fn release(&mut self) {
        self.buf = Vec::new();
        self.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_retransmitted_and_out_of_order() {
        let mut s = Stream::default();
        s.syn(999);
        assert!(s.add(1000, b"hello ", 64));
        assert!(!s.add(1000, b"hel", 64), "retransmission adds nothing");
        assert!(!s.add(1011, b"!", 64), "gap: held");
        assert!(s.add(1003, b"lo world", 64), "overlap trimmed, then the held byte joins");
        assert_eq!(s.data(), b"hello world!");
    }

    #[test]
    fn one_byte_segments_in_reverse() {
        let msg = b"a ClientHello split byte by byte";
        let mut s = Stream::default();
        s.syn(0);
        for i in (1..msg.len()).rev().take(7) {
            s.add(1 + i as u32, &msg[i..i + 1], 4096);
        }
        for i in 0..msg.len() {
            s.add(1 + i as u32, &msg[i..i + 1], 4096);
        }
        assert_eq!(s.data(), msg);
    }

    #[test]
    fn bounded_by_cap_and_wraps_sequence_numbers() {
        let mut s = Stream::default();
        s.add(u32::MAX - 2, b"abcdef", 4);
        assert_eq!(s.data(), b"abcd");
        assert!(s.overflow);
        let mut s = Stream::default();
        s.add(10, b"x", 16);
        assert!(!s.add(10 + 1_000_000, b"far", 16));
        assert!(s.overflow);
    }
}
