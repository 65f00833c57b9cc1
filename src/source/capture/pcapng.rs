//! The record loop of pcapng: the counterpart of `stream_legacy` for a stream (in our own
//! buffer) and of `SliceReader::fast_legacy` for a mapped file.
//!
//! Through `pcap-parser`'s reader a pcapng capture took 40 % longer than the same packets in a
//! classic pcap (W1: 0.79 s against 0.56 s): each Enhanced Packet Block went through its
//! generic block parser (options into a vector included), and the reader could not show the
//! engine the packets ahead, so the connection table's look-ahead was lost.
//!
//! Here an Enhanced Packet Block, the block that carries nearly every packet, is read in place,
//! with the frames [`LOOK_AHEAD`] blocks further on handed out as a classic pcap's are. Its
//! options are passed over: dumpcap, Wireshark and tcpdump write none per packet, but some
//! converters put a direction flag on every one (Microsoft's etl2pcapng), and nothing in them
//! changes a packet. [`packet_block`] takes exactly the blocks `pcap-parser` reads, and reads
//! them as it does. Every other block, and any such block whose fields `pcap-parser` would
//! refuse, is read by `pcap-parser`'s own block parser, one block at a time, so that what each
//! block means is decided in one place. At the first block the loop cannot take (an error, an
//! interface it has not seen, a block longer than the buffer, the end of the input inside a
//! block) it stops, and `walk` goes on from there, knowing the section (a stream's header and
//! interfaces are read to it again; a mapped file's are passed in `Start`), so it reports
//! exactly what it reports on its own.

use std::io::Read;

use pcap_parser::pcapng::{parse_block_be, parse_block_le};
use pcap_parser::Block;

use super::{put_uint, u32_at, u32_in, FileStats, Iface, Packet, Records, Start, Take, LOOK_AHEAD, MAX_FRAME};

const SHB: u32 = 0x0a0d_0d0a;
const EPB: u32 = 6;
/// Bytes of an Enhanced Packet Block before its frame: type, length, interface, timestamp (two
/// words), captured and original lengths.
const EPB_HEAD: usize = 28;
/// The section header and interfaces kept to hand to `walk`: past this, the loop hands over at
/// once rather than hold more.
const MAX_SECTION: usize = 16 << 20;

/// True if `head` (the first bytes of an input) starts a pcapng stream.
pub(super) fn is_pcapng(head: &[u8]) -> bool {
    head.get(..4) == Some(&SHB.to_le_bytes()[..])
}

/// What the loop knows of the current section.
struct Section {
    big_endian: bool,
    ifaces: Vec<Iface>,
    /// The section header and interface blocks as read, for `walk` to read again.
    blocks: Vec<u8>,
}

/// An Enhanced Packet Block, as [`packet_block`] read it.
#[derive(Clone, Copy)]
struct Epb {
    at: usize,
    len: usize,
    iface: usize,
    ts: u64,
    caplen: usize,
    wire: u32,
}

impl Epb {
    fn frame<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.at + EPB_HEAD..self.at + EPB_HEAD + self.caplen]
    }
}

/// An Enhanced Packet Block at `at` of `buf[..end]`, whole, on one of the section's `ifaces`
/// interfaces, with a frame no longer than [`MAX_FRAME`]. `pcap-parser` reads such a block as
/// this does: it takes one whose frame (padded to 4 bytes) fits before the trailing length,
/// which matches the leading one, and reads the rest as options until one does not fit, which
/// never fails.
#[inline]
fn packet_block(buf: &[u8], at: usize, end: usize, big_endian: bool, ifaces: usize) -> Option<Epb> {
    if big_endian {
        packet_block_in::<true>(buf, at, end, ifaces)
    } else {
        packet_block_in::<false>(buf, at, end, ifaces)
    }
}

/// [`packet_block`] in a byte order chosen at compile time.
#[inline(always)]
fn packet_block_in<const BE: bool>(buf: &[u8], at: usize, end: usize, ifaces: usize) -> Option<Epb> {
    let h = buf.get(at..at + EPB_HEAD).filter(|_| at + EPB_HEAD <= end)?;
    if u32_in::<BE>(h, 0) != EPB {
        return None;
    }
    let len = u32_in::<BE>(h, 4) as usize;
    let caplen = u32_in::<BE>(h, 20) as usize;
    // The header, the frame padded to 4 bytes, any options, and the trailing length.
    if caplen > MAX_FRAME || len < EPB_HEAD + caplen.next_multiple_of(4) + 4 || at + len > end {
        return None;
    }
    if u32_in::<BE>(buf, at + len - 4) as usize != len {
        return None;
    }
    let iface = u32_in::<BE>(h, 8) as usize;
    if iface >= ifaces {
        return None;
    }
    let ts = u64::from(u32_in::<BE>(h, 12)) << 32 | u64::from(u32_in::<BE>(h, 16));
    Some(Epb { at, len, iface, ts, caplen, wire: u32_in::<BE>(h, 24) })
}

/// The length of the block at the start of `b` (at least 12 bytes), in the byte order of its
/// section; a section header's own byte order decides its length. `None` for a section header
/// whose byte-order mark is neither.
fn block_len(b: &[u8], big_endian: bool) -> Option<usize> {
    if u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != SHB {
        return Some(u32_at(b, 4, big_endian) as usize);
    }
    match u32::from_le_bytes([b[8], b[9], b[10], b[11]]) {
        0x1a2b_3c4d => Some(u32_at(b, 4, false) as usize),
        0x4d3c_2b1a => Some(u32_at(b, 4, true) as usize),
        _ => None,
    }
}

/// Why [`blocks`] stopped.
enum Stopped {
    /// The block at `start` is not whole in the buffer (or there is none).
    NeedMore,
    /// The block at `start` is `walk`'s to read, or the caller asked to stop.
    HandOver,
    /// The block at `start` starts at or past the limit.
    Limit,
}

/// Reads the blocks of `buf[*start..end]`, handing out their packets (with the look-ahead) and
/// keeping the section's state, until one is not whole or is one to hand over, or the next
/// starts at or past `limit`. `at_block` is told where each block ends.
///
/// `MAPPED`: `buf` is mapped, not freshly copied, so each block's bytes are pulled into the
/// cache ahead of the reader, as the classic pcap's loop does.
fn blocks<const MAPPED: bool>(
    buf: &[u8],
    start: &mut usize,
    (end, limit): (usize, usize),
    (section, stats): (&mut Option<Section>, &mut FileStats),
    stop: &impl Fn() -> bool,
    sink: &mut impl FnMut(Packet<'_>, Option<&[u8]>),
    at_block: &mut impl FnMut(usize),
) -> Stopped {
    loop {
        if stop() {
            return Stopped::HandOver;
        }
        if *start >= limit {
            return Stopped::Limit;
        }
        if let Some(s) = section.as_ref() {
            let ends = (end, limit);
            let run = if s.big_endian {
                packets::<MAPPED, true>(buf, start, ends, (s, stats), stop, sink, at_block)
            } else {
                packets::<MAPPED, false>(buf, start, ends, (s, stats), stop, sink, at_block)
            };
            if let Some(stopped) = run {
                return stopped;
            }
        }
        // Any other block, or one not yet whole in the buffer.
        let avail = &buf[*start..end];
        if avail.len() < 12 {
            return Stopped::NeedMore;
        }
        let big_endian = section.as_ref().is_some_and(|s| s.big_endian);
        let Some(len) = block_len(avail, big_endian) else { return Stopped::HandOver };
        // Blocks of 12 bytes or fewer are `walk`'s to judge (it works around how pcap-parser
        // treats them); so is one longer than the buffer.
        if len <= 12 || len > buf.len() {
            return Stopped::HandOver;
        }
        if len > avail.len() {
            return Stopped::NeedMore;
        }
        let block = &avail[..len];
        let parse = if big_endian { parse_block_be } else { parse_block_le };
        let Ok((rest, b)) = parse(block) else { return Stopped::HandOver };
        if !rest.is_empty() {
            return Stopped::HandOver;
        }
        match b {
            Block::SectionHeader(shb) => {
                *section = Some(Section { big_endian: shb.big_endian(), ifaces: Vec::new(), blocks: block.to_vec() })
            }
            Block::InterfaceDescription(idb) => {
                let Some(s) = section.as_mut().filter(|s| s.blocks.len() + len <= MAX_SECTION) else {
                    return Stopped::HandOver;
                };
                s.ifaces.push(Iface::of(&idb));
                s.blocks.extend_from_slice(block);
            }
            Block::EnhancedPacket(epb) => {
                // One `packet_block` leaves to the parser (a frame longer than any it takes):
                // delivered as `walk` delivers it, without a look-ahead.
                let Some(ifc) = section.as_ref().and_then(|s| s.ifaces.get(epb.if_id as usize)) else {
                    return Stopped::HandOver;
                };
                let ts = u64::from(epb.ts_high) << 32 | u64::from(epb.ts_low);
                let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                sink(stats.packet(ifc.linktype, ifc.micros(ts), data, epb.origlen), None);
            }
            // Simple Packet Blocks (rare) are left to `walk`, with what follows them.
            Block::SimplePacket(_) => return Stopped::HandOver,
            _ => {}
        }
        *start += len;
        at_block(*start);
    }
}

/// The run of Enhanced Packet Blocks at `*start` in section `s` (of byte order `BE`), each read
/// once, handed out with the look-ahead: `None` at the first other block (or one not whole in
/// `buf[..end]`), for [`blocks`] to read; else why [`blocks`] is to stop.
#[inline]
fn packets<const MAPPED: bool, const BE: bool>(
    buf: &[u8],
    start: &mut usize,
    (end, limit): (usize, usize),
    (s, stats): (&Section, &mut FileStats),
    stop: &impl Fn() -> bool,
    sink: &mut impl FnMut(Packet<'_>, Option<&[u8]>),
    at_block: &mut impl FnMut(usize),
) -> Option<Stopped> {
    // The blocks from `start` on, each read once: the one handed out next, then up to
    // `LOOK_AHEAD` more, within what is buffered.
    let mut read: [Option<Epb>; LOOK_AHEAD + 1] = [None; LOOK_AHEAD + 1];
    let (mut at, mut more) = (*start, true);
    for slot in read.iter_mut() {
        *slot = packet_block_in::<BE>(buf, at, end, s.ifaces.len());
        match slot {
            Some(e) => at += e.len,
            None => {
                more = false;
                break;
            }
        }
    }
    let mut k = 0;
    while let Some(e) = read[k % read.len()].take() {
        if more {
            let next = packet_block_in::<BE>(buf, at, end, s.ifaces.len());
            match next {
                Some(n) => at += n.len,
                None => more = false,
            }
            read[k % read.len()] = next;
        }
        k += 1;
        if MAPPED {
            super::prefetch(buf, e.at + super::PREFETCH, e.at + e.len + super::PREFETCH);
        }
        let ifc = &s.ifaces[e.iface];
        // Only a frame of the same link type: the consumer reads it as this packet's.
        let later = read[(k + LOOK_AHEAD - 1) % read.len()]
            .filter(|n| n.iface == e.iface || s.ifaces[n.iface].linktype == ifc.linktype)
            .map(|n| n.frame(buf));
        sink(stats.packet(ifc.linktype, ifc.micros(e.ts), e.frame(buf), e.wire), later);
        *start += e.len;
        at_block(*start);
        if stop() {
            return Some(Stopped::HandOver);
        }
        if *start >= limit {
            return Some(Stopped::Limit);
        }
    }
    None
}

/// Reads the records of the pcapng stream whose first bytes, `head`, have been read already;
/// returns the bytes for `walk` to go on with (the section's header and interfaces, read again,
/// then what the loop left), and where that leaves off.
pub(super) fn stream(
    input: &mut impl Read,
    buffer: usize,
    head: Vec<u8>,
    sink: &mut impl FnMut(Packet<'_>, Option<&[u8]>),
) -> (Vec<u8>, Start) {
    let mut stats = FileStats::default();
    let mut buf = vec![0u8; buffer.max(MAX_FRAME + 64).max(head.len())];
    buf[..head.len()].copy_from_slice(&head);
    // Bytes of the input before `buf[0]`; the unread blocks are `buf[start..end]`.
    let (mut base, mut start, mut end) = (0u64, 0, head.len());
    let mut section: Option<Section> = None;
    let mut ended = false;
    loop {
        match blocks::<false>(
            &buf,
            &mut start,
            (end, usize::MAX),
            (&mut section, &mut stats),
            &|| false,
            sink,
            &mut |_| {},
        ) {
            Stopped::NeedMore if !ended => {}
            // Handed over, or the input ended (at a block's end, or inside one, for `walk` to
            // report).
            _ => break,
        }
        buf.copy_within(start..end, 0);
        base += start as u64;
        end -= start;
        start = 0;
        // One read, not a loop until the buffer is full: a pipe delivers what it has.
        match input.read(&mut buf[end..]) {
            Ok(0) | Err(_) => ended = true,
            Ok(n) => end += n,
        }
    }
    // The section's header and interfaces, then what the loop left, for `walk` to go on with.
    let mut rest = section.map(|s| s.blocks).unwrap_or_default();
    let again = rest.len() as u64;
    rest.extend_from_slice(&buf[start..end]);
    (rest, Start { stats, offset: (base + start as u64).wrapping_sub(again), ..Default::default() })
}

/// The same loop over a whole capture in memory (a mapped file): it reads from `*pos` on and
/// leaves `*pos` where `walk` is to go on, with the section's byte order and interfaces in the
/// `Start` it returns. `within` is the section `*pos` is in, and the packets before it, when
/// that is not the start of the file. `at_block` is told where each block ends.
pub(super) fn in_place(
    data: &[u8],
    pos: &mut usize,
    within: Option<(&ChunkSection, u64)>,
    stop: &impl Fn() -> bool,
    sink: &mut impl FnMut(Packet<'_>),
    at_block: &mut impl FnMut(usize),
) -> Start {
    let mut stats = FileStats { packets: within.map_or(0, |w| w.1), bytes: 0 };
    let mut section =
        within.map(|(p, _)| Section { big_endian: p.big_endian, ifaces: p.ifaces.clone(), blocks: Vec::new() });
    let ends = (data.len(), usize::MAX);
    blocks::<false>(data, pos, ends, (&mut section, &mut stats), stop, &mut |p, _| sink(p), at_block);
    Start {
        stats,
        offset: *pos as u64,
        legacy: None,
        section: section.map(|s| (s.big_endian, s.ifaces)),
        resumed: false,
    }
}

/// The same loop as one engine's windows drive it (see `windows`): over a window of the
/// mapping in place, or over a copy of part of it, keeping the section between calls.
#[derive(Default)]
pub(super) struct Windowed {
    section: Option<Section>,
}

impl Windowed {
    /// Reads the blocks of `buf` from `start`, up to the first that starts at or past `limit`
    /// or that the loop hands over or that is not whole in `buf`; returns where it stopped.
    #[inline(always)]
    pub(super) fn records<const MAPPED: bool>(
        &mut self,
        buf: &[u8],
        start: usize,
        limit: usize,
        stats: &mut FileStats,
        sink: &mut impl FnMut(Packet<'_>, Option<&[u8]>),
    ) -> usize {
        let mut at = start;
        blocks::<MAPPED>(buf, &mut at, (buf.len(), limit), (&mut self.section, stats), &|| false, sink, &mut |_| {});
        at
    }

    /// The section the loop is in, for the in-place reader to go on in; `None` before the
    /// first section header.
    pub(super) fn section(&self) -> Option<ChunkSection> {
        let s = self.section.as_ref()?;
        Some(ChunkSection { big_endian: s.big_endian, ifaces: s.ifaces.clone() })
    }
}

/// A pcapng section as the chunks of a parallel scan read it (see `pipeline::workers`): its
/// byte order and the interfaces declared so far. The chunks take the blocks the in-place loop
/// reads the same way whatever surrounds them: Enhanced Packet Blocks, and the blocks that carry
/// no packet and start no section, of which interface descriptions extend this. At anything
/// else (a new section, a Simple Packet Block, one `pcap-parser` refuses, one longer than
/// [`ChunkSection::MAX_BLOCK`]) they stop, and the mapped walk goes on from there.
#[derive(Clone, Debug)]
pub struct ChunkSection {
    big_endian: bool,
    ifaces: Vec<Iface>,
}

impl ChunkSection {
    /// The longest block the chunks take: an Enhanced Packet Block of the longest frame, without
    /// options.
    pub(super) const MAX_BLOCK: usize = EPB_HEAD + MAX_FRAME + 4;

    /// A section header block in this section's byte order (no options, the section's length
    /// unknown), and the byte order and interfaces a read that starts with it keeps: what
    /// [`super::read_file_from`] reads before blocks from the middle of this section.
    pub(super) fn stand_in(&self) -> ([u8; 28], (bool, Vec<Iface>)) {
        // Type, length, byte-order magic, version 1.0, section length (-1: unknown), length.
        let fields = [(SHB as u64, 4), (28, 4), (0x1a2b_3c4d, 4), (1, 2), (0, 2), (u64::MAX, 8), (28, 4)];
        let mut shb = Vec::with_capacity(28);
        for (v, bytes) in fields {
            put_uint(&mut shb, v, bytes, self.big_endian);
        }
        (shb.try_into().expect("28 bytes"), (self.big_endian, self.ifaces.clone()))
    }

    /// A whole block, read by `pcap-parser`; `None` if it refuses it or it holds more.
    fn parse<'a>(&self, block: &'a [u8]) -> Option<Block<'a>> {
        let parse = if self.big_endian { parse_block_be } else { parse_block_le };
        let (rest, b) = parse(block).ok()?;
        rest.is_empty().then_some(b)
    }
}

impl Records for ChunkSection {
    /// Bytes of a block to read its length from.
    #[inline(always)]
    fn head(&self) -> usize {
        12
    }

    /// The length of the block whose first [`Self::head`] bytes are `head`, if the chunks
    /// could take it: not a section header, longer than an empty block, and no longer than
    /// [`Self::MAX_BLOCK`].
    #[inline]
    fn len(&self, head: &[u8]) -> Option<usize> {
        if u32_at(head, 0, self.big_endian) == SHB {
            return None;
        }
        let len = u32_at(head, 4, self.big_endian) as usize;
        (len > 12 && len <= Self::MAX_BLOCK).then_some(len)
    }

    /// Whether the chunks take a whole `block` (of the length [`Self::len`] gave), and as what:
    /// a packet to hand out, a block without packets, or an interface description that adds to
    /// the section; `None` where they stop. Packet blocks are read here, as the in-place loop
    /// reads them; any other block goes through `pcap-parser`, as there.
    fn take(&self, block: &[u8]) -> Option<Take> {
        if packet_block(block, 0, block.len(), self.big_endian, self.ifaces.len()).is_some() {
            return Some(Take::Packet);
        }
        match self.parse(block)? {
            Block::InterfaceDescription(_) => Some(Take::Grows),
            // A packet block `packet_block` did not take (a frame longer than any, an interface
            // not declared) is the mapped walk's to judge.
            Block::SectionHeader(_) | Block::EnhancedPacket(_) | Block::SimplePacket(_) => None,
            _ => Some(Take::Other),
        }
    }

    fn grow(&mut self, block: &[u8]) {
        if let Some(Block::InterfaceDescription(idb)) = self.parse(block) {
            self.ifaces.push(Iface::of(&idb));
        }
    }

    /// The packet of a whole Enhanced Packet Block that [`Self::take`] took as one (its options,
    /// if any, after the frame), as packet `number` of its file.
    #[inline]
    fn packet<'a>(&self, block: &'a [u8], number: u64) -> Packet<'a> {
        let big_endian = self.big_endian;
        let caplen = (u32_at(block, 20, big_endian) as usize).min(block.len().saturating_sub(EPB_HEAD));
        // Always one of the section's: the chunk's interfaces are those declared by its end.
        let ifc = self.ifaces.get(u32_at(block, 8, big_endian) as usize).copied().unwrap_or(Iface::UNKNOWN);
        let ts = u64::from(u32_at(block, 12, big_endian)) << 32 | u64::from(u32_at(block, 16, big_endian));
        let data = &block[EPB_HEAD..EPB_HEAD + caplen];
        Packet {
            linktype: ifc.linktype,
            ts_micros: ifc.micros(ts),
            data,
            wire_len: u32_at(block, 24, big_endian),
            number,
        }
    }
}

/// Where the chunks of a pcapng file can start: its first packet block, if that is an Enhanced
/// Packet Block and only a section header and blocks without packets come before it (within the
/// first [`MAX_SECTION`] bytes); with the section there.
pub(super) fn chunk_start(data: &[u8]) -> Option<(usize, ChunkSection)> {
    if !is_pcapng(data) {
        return None;
    }
    let len = block_len(data.get(..12)?, false)?;
    // As `blocks` reads a file's first block: the section header tells its own byte order.
    let Ok((rest, Block::SectionHeader(shb))) = parse_block_le(data.get(..len)?) else { return None };
    if !rest.is_empty() || len <= 12 {
        return None;
    }
    let mut section = ChunkSection { big_endian: shb.big_endian(), ifaces: Vec::new() };
    let mut at = len;
    while at <= MAX_SECTION {
        let len = section.len(data.get(at..at + section.head())?)?;
        let block = data.get(at..at + len)?;
        match section.take(block)? {
            Take::Packet => return Some((at, section)),
            Take::Grows => section.grow(block),
            Take::Other => {}
        }
        at += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{read_buffered_ahead, read_slice, read_slice_by_parser, ReadError};
    use super::*;

    /// Builds blocks in one byte order.
    struct Ng {
        be: bool,
    }

    impl Ng {
        fn w32(&self, v: &mut Vec<u8>, x: u32) {
            v.extend(if self.be { x.to_be_bytes() } else { x.to_le_bytes() });
        }
        fn w16(&self, v: &mut Vec<u8>, x: u16) {
            v.extend(if self.be { x.to_be_bytes() } else { x.to_le_bytes() });
        }
        fn block(&self, ty: u32, body: &[u8]) -> Vec<u8> {
            let len = (12 + body.len().next_multiple_of(4)) as u32;
            let mut v = Vec::new();
            self.w32(&mut v, ty);
            self.w32(&mut v, len);
            v.extend_from_slice(body);
            v.resize(len as usize - 4, 0);
            self.w32(&mut v, len);
            v
        }
        fn options(&self, opts: &[(u16, &[u8])]) -> Vec<u8> {
            let mut v = Vec::new();
            for (code, val) in opts {
                self.w16(&mut v, *code);
                self.w16(&mut v, val.len() as u16);
                v.extend_from_slice(val);
                v.resize(v.len().next_multiple_of(4), 0);
            }
            if !opts.is_empty() {
                v.extend([0, 0, 0, 0]);
            }
            v
        }
        fn shb(&self) -> Vec<u8> {
            let mut b = Vec::new();
            self.w32(&mut b, 0x1a2b_3c4d);
            self.w16(&mut b, 1);
            self.w16(&mut b, 0);
            b.extend((-1i64).to_le_bytes());
            self.block(SHB, &b)
        }
        fn idb(&self, linktype: u16, opts: &[(u16, &[u8])]) -> Vec<u8> {
            let mut b = Vec::new();
            self.w16(&mut b, linktype);
            self.w16(&mut b, 0);
            self.w32(&mut b, 65535);
            b.extend(self.options(opts));
            self.block(1, &b)
        }
        fn epb(&self, iface: u32, ts: u64, frame: &[u8], opts: &[(u16, &[u8])]) -> Vec<u8> {
            let mut b = Vec::new();
            self.w32(&mut b, iface);
            self.w32(&mut b, (ts >> 32) as u32);
            self.w32(&mut b, ts as u32);
            self.w32(&mut b, frame.len() as u32);
            self.w32(&mut b, frame.len() as u32 + 7);
            b.extend_from_slice(frame);
            b.resize(b.len().next_multiple_of(4), 0);
            b.extend(self.options(opts));
            self.block(EPB, &b)
        }
        fn spb(&self, frame: &[u8]) -> Vec<u8> {
            let mut b = Vec::new();
            self.w32(&mut b, frame.len() as u32);
            b.extend_from_slice(frame);
            self.block(3, &b)
        }
    }

    fn frame(n: usize) -> Vec<u8> {
        (0..14 + n % 97).map(|i| (i * 7 + n) as u8).collect()
    }

    /// A stream that hands out at most `step` bytes per read, as a pipe may.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    type Seen = Vec<(u64, u32, i64, u32, Vec<u8>)>;

    fn outcome(r: Result<FileStats, ReadError>) -> Result<u64, (u64, u64, String)> {
        r.map(|s| s.packets).map_err(|e| (e.after_packet, e.offset, e.reason))
    }

    /// What the loop reads, in place and from a stream through reads of every size from 1 byte
    /// up, must be what pcap-parser reads from the same bytes: the same packets, the same error
    /// at the same place. Each packet's look-ahead, when there is one, is the frame two on.
    fn same_as_the_parser(data: &[u8]) -> Seen {
        let mut want: Seen = Vec::new();
        let b = outcome(read_slice_by_parser(data, |p| {
            want.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec()))
        }));
        let mut got: Seen = Vec::new();
        let a =
            outcome(read_slice(data, |p| got.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec()))));
        assert_eq!(a, b, "in place");
        assert_eq!(got, want, "in place");
        // So must the chunks a parallel scan splits it into, with the walk after them.
        for (n, chunk) in [(2, 64), (3, 300), (2, 4096)] {
            crate::pipeline::workers::check_split(data, n, chunk);
        }
        for step in [1, 3, 7, 64, 1000, usize::MAX] {
            let (mut got, mut later): (Seen, Vec<(u64, Vec<u8>)>) = (Vec::new(), Vec::new());
            let a = outcome(read_buffered_ahead(Trickle(data, step), 64 << 10, |p, ahead| {
                if let Some(f) = ahead {
                    later.push((p.number + LOOK_AHEAD as u64, f.to_vec()));
                }
                got.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec()));
            }));
            assert_eq!(a, b, "step {step}");
            assert_eq!(got, want, "step {step}");
            for (n, f) in later {
                assert_eq!(want[n as usize - 1].4, f, "step {step}: the look-ahead for packet {n}");
            }
        }
        want
    }

    #[test]
    fn reads_every_block_as_pcap_parser_does() {
        for be in [false, true] {
            let ng = Ng { be };
            let mut v = ng.shb();
            v.extend(ng.idb(1, &[]));
            // Nanosecond resolution and a 100 s offset.
            v.extend(ng.idb(101, &[(9, &[9]), (14, &100u64.to_le_bytes()[..])]));
            for n in 0..40u64 {
                v.extend(ng.epb((n % 2) as u32, 1_700_000_000_123_456 + n, &frame(n as usize), &[]));
            }
            // Options on a packet (a comment), blocks that carry none, and an interface
            // declared after packets.
            v.extend(ng.epb(0, 5, &frame(3), &[(1, b"a comment")]));
            // Bytes after the frame that are no options: one that runs past the block, and a
            // stray word. pcap-parser reads options until one does not fit, and takes the block.
            for tail in [&[1u8, 0, 0, 1, 0, 0, 0, 0][..], &[0xff; 4][..]] {
                let mut body = Vec::new();
                for w in [0u32, 0, 6, 13, 13] {
                    ng.w32(&mut body, w);
                }
                body.extend_from_slice(&frame(0)[..13]);
                body.resize(body.len().next_multiple_of(4), 0);
                body.extend_from_slice(tail);
                v.extend(ng.block(EPB, &body));
            }
            v.extend(ng.block(4, &[0, 0, 0, 0])); // name resolution, empty
            v.extend(ng.block(5, &[0; 12])); // interface statistics
            v.extend(ng.block(0x0000_0bad, b"custom"));
            v.extend(ng.idb(1, &[]));
            for n in 0..5u64 {
                v.extend(ng.epb(2, n, &frame(n as usize + 7), &[]));
            }
            // A second section, in the other byte order.
            let second = v.len();
            let other = Ng { be: !be };
            v.extend(other.shb());
            v.extend(other.idb(1, &[]));
            for n in 0..5u64 {
                v.extend(other.epb(0, n * 1_000_000, &frame(n as usize + 11), &[]));
            }
            let got = same_as_the_parser(&v);
            // A parallel scan shares out the packets of the first section.
            assert_eq!(crate::pipeline::workers::check_split(&v, 2, 256), Some(second), "be = {be}");
            assert_eq!(got.len(), 53, "be = {be}");
            assert_eq!(got[0].2, 1_700_000_000_123_456, "be = {be}: microseconds");
            assert_eq!(got[1].2, 1_700_100_000_123, "be = {be}: 1_700_000.000_123_457 s, 100 s on");
        }
    }

    #[test]
    fn a_parallel_scan_splits_a_section_with_interfaces_and_blocks_between_its_packets() {
        for be in [false, true] {
            let ng = Ng { be };
            let mut v = [ng.shb(), ng.block(0x0000_0bad, b"custom"), ng.idb(1, &[])].concat();
            for n in 0..300u64 {
                // Now and then a packet with options: a comment, direction flags.
                let opts: &[(u16, &[u8])] = match n % 7 {
                    0 => &[(1, b"a comment")],
                    3 => &[(2, &[1, 0, 0, 0])],
                    _ => &[],
                };
                v.extend(ng.epb((n / 100) as u32 % 3, n * 1_000, &frame(n as usize), opts));
                match n {
                    // Interfaces declared between packets, one in nanoseconds.
                    99 => v.extend(ng.idb(101, &[(9, &[9])])),
                    199 => v.extend(ng.idb(113, &[])),
                    // Blocks without packets: name resolution, interface statistics.
                    150 => v.extend(ng.block(4, &[0, 0, 0, 0])),
                    250 => v.extend(ng.block(5, &[0; 12])),
                    _ => {}
                }
            }
            same_as_the_parser(&v);
            for (n, chunk) in [(2, 16), (3, 100), (2, 1 << 20)] {
                let end = crate::pipeline::workers::check_split(&v, n, chunk);
                assert_eq!(end, Some(v.len()), "be = {be}, {n} workers, chunks of {chunk}: the chunks stopped early");
            }
            // A Simple Packet Block first: the file is walked whole by every worker instead.
            let first = [ng.shb(), ng.idb(1, &[]), ng.spb(&frame(0))].concat();
            assert_eq!(
                crate::pipeline::workers::check_split(&[first, v[ng.shb().len()..].to_vec()].concat(), 2, 64),
                None
            );
        }
    }

    /// Where the chunks stop in the middle of a file, the workers read on from there: through
    /// the mapping, or (`--no-mmap`) through a buffer that resumes the section with the
    /// interfaces its chunks declared (`check_split` checks both against the whole file's reader).
    #[test]
    fn a_parallel_scan_reads_on_after_a_block_the_chunks_do_not_take() {
        for be in [false, true] {
            let ng = Ng { be };
            let mut v = [ng.shb(), ng.idb(1, &[])].concat();
            for n in 0..200u64 {
                match n {
                    // Declared along the chain: one in nanoseconds, one of another link type.
                    50 => v.extend(ng.idb(1, &[(9, &[9])])),
                    100 => v.extend(ng.idb(113, &[])),
                    _ => {}
                }
                v.extend(ng.epb((n / 50).min(2) as u32, n * 1_000, &frame(n as usize), &[]));
            }
            // Packets on the interfaces declared last, to read after the stop.
            let tail: Vec<u8> = (0..40u64).flat_map(|n| ng.epb(1 + n as u32 % 2, n, &frame(n as usize), &[])).collect();
            let other = Ng { be: !be };
            let cases: Vec<(&str, Vec<u8>)> = vec![
                ("simple packet block", [ng.spb(&frame(3)), tail.clone()].concat()),
                ("new section", [other.shb(), other.idb(1, &[]), other.epb(0, 7, &frame(5), &[])].concat()),
                ("undeclared interface", [ng.epb(9, 0, &frame(2), &[]), tail.clone()].concat()),
                ("cut short", ng.epb(2, 0, &frame(2), &[])[..30].to_vec()),
            ];
            for (name, stop) in cases {
                let data = [&v[..], &stop, &tail].concat();
                for (n, chunk) in [(2, 64), (3, 1000), (2, 1 << 20)] {
                    let end = crate::pipeline::workers::check_split(&data, n, chunk);
                    assert_eq!(end, Some(v.len()), "{name} (be = {be}), {n} workers, chunks of {chunk}");
                }
            }
        }
    }

    #[test]
    fn hands_over_at_what_it_does_not_take_and_reports_as_the_parser_does() {
        for be in [false, true] {
            hands_over(be);
        }
    }

    fn hands_over(be: bool) {
        let ng = Ng { be };
        let word = |x: u32| if be { x.to_be_bytes() } else { x.to_le_bytes() };
        // A section in the other byte order first, so the one that hands over is not the first.
        let other = Ng { be: !be };
        let head = [other.shb(), other.idb(1, &[]), other.epb(0, 1, &frame(1), &[]), ng.shb(), ng.idb(1, &[])].concat();
        let good: Vec<u8> = (0..6).flat_map(|n| ng.epb(0, n, &frame(n as usize), &[])).collect();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("simple packet block, then more", [ng.spb(&frame(1)), good.clone()].concat()),
            ("undeclared interface", ng.epb(1, 0, &frame(2), &[])),
            ("cut short", ng.epb(0, 0, &frame(2), &[])[..30].to_vec()),
            ("trailing length differs", {
                let mut b = ng.epb(0, 0, &frame(2), &[]);
                let n = b.len();
                b[n - 4..].copy_from_slice(&word(n as u32 + 4));
                b
            }),
            ("empty block", ng.block(0x42, &[])),
            ("block of 8 bytes", [word(0x42), word(8)].concat()),
            ("captured length past the block", {
                let mut b = ng.epb(0, 0, &frame(2), &[]);
                b[20..24].copy_from_slice(&word(4000));
                b
            }),
        ];
        for (name, bad) in cases {
            let data = [&head[..], &good, &bad, &good].concat();
            let got = same_as_the_parser(&data);
            assert!(got.len() >= 7, "{name} (be = {be}): {} packets", got.len());
        }
        // A block longer than the stream's buffer stops the stream where it stopped before
        // (the in-place reader, with no buffer, reads on).
        let data = [&head[..], &good, &ng.block(0x0000_0bad, &vec![0; 2 << 20]), &good].concat();
        let mut n = 0;
        let e = read_buffered_ahead(&data[..], 1 << 20, |_, _| n += 1).unwrap_err();
        assert_eq!((n, e.after_packet, e.offset), (7, 7, (head.len() + good.len()) as u64), "{e}");
        assert!(e.reason.contains("corrupt"), "{e}");
    }
}
