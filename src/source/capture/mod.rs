//! Capture files: classic pcap (µs and ns, either byte order), pcapng (several interfaces with
//! their own link types and time resolutions, Enhanced and Simple Packet Blocks), gzip and zstd,
//! standard input. Pure Rust, so no system library is needed: the common records (a classic
//! pcap's, a pcapng's Enhanced Packet Blocks, see [`pcapng`]) are read by our
//! own record loops, and everything else by `pcap-parser`'s streaming reader.
//!
//! Packets are handed to a callback as borrowed slices of the read buffer: nothing is copied.
//! A corrupt or truncated file stops with an error that names the packet number and byte
//! offset; everything before it has been delivered.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use pcap_parser::nom;
use pcap_parser::pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header};
use pcap_parser::pcapng::{parse_block_be, parse_block_le, parse_sectionheaderblock};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{Block, LegacyPcapBlock, PcapBlockOwned, PcapError, PcapHeader};

mod pcapng;
mod windows;

#[doc(hidden)]
pub use windows::check_windows;
pub use windows::{probe, read_windows, release, Chooser, Probe, Windows, PROBES, WINDOW};

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// `LINKTYPE_*` of the interface it was captured on.
    pub linktype: u32,
    /// Capture time, microseconds since the Unix epoch.
    pub ts_micros: i64,
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub wire_len: u32,
    /// 1-based number of the packet in its file (what Wireshark shows).
    pub number: u64,
}

/// Why a file stopped early. Packets before it were delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// Number of the last packet delivered (0: none).
    pub after_packet: u64,
    pub offset: u64,
    pub reason: String,
    /// The file is not a capture at all (nothing was read).
    pub not_a_capture: bool,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.not_a_capture {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "after packet {} (byte offset {}): {}", self.after_packet, self.offset, self.reason)
        }
    }
}

/// Counts of what a file held.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileStats {
    pub packets: u64,
    pub bytes: u64,
}

impl FileStats {
    /// Counts a frame and makes it the file's next packet: what every record loop hands out.
    #[inline]
    fn packet<'a>(&mut self, linktype: u32, ts_micros: i64, data: &'a [u8], wire_len: u32) -> Packet<'a> {
        self.packets += 1;
        self.bytes += data.len() as u64;
        Packet { linktype, ts_micros, data, wire_len, number: self.packets }
    }
}

/// Opens a path (`-` = standard input), undoing gzip or zstd compression found by magic bytes.
pub fn open(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    open_ahead(path, false)
}

/// [`open`], decompressing on a thread of its own if `ahead` ([`crate::source::readahead`]):
/// for a reader that inspects what it reads on this thread and has another core to spare.
/// (Where the two threads share one core, the hand-over makes the scan 8-15 % slower; with
/// `-j` the thread that reads already does nothing else.)
pub fn open_ahead(path: &Path, ahead: bool) -> std::io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> =
        if path.as_os_str() == "-" { Box::new(std::io::stdin()) } else { Box::new(std::fs::File::open(path)?) };
    Ok(match decompressor(raw)? {
        (r, true) if ahead => Box::new(crate::source::readahead::ReadAhead::new(r)?),
        (r, _) => r,
    })
}

/// Wraps a reader in the decompressor its first bytes call for.
pub fn decompress(raw: Box<dyn Read + Send>) -> std::io::Result<Box<dyn Read + Send>> {
    decompressor(raw).map(|(r, _)| r)
}

/// [`decompress`], and whether the input was compressed.
fn decompressor(raw: Box<dyn Read + Send>) -> std::io::Result<(Box<dyn Read + Send>, bool)> {
    let mut buf = BufReader::with_capacity(1 << 16, raw);
    let head = buf.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        (Box::new(flate2::read::MultiGzDecoder::new(buf)), true)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        (Box::new(zstd::stream::read::Decoder::with_buffer(buf)?), true)
    } else {
        (Box::new(buf), false)
    })
}

/// A pcapng interface: what its packets' link type and timestamps mean.
#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: u32,
    /// Timestamp units per second.
    units: u64,
    offset_secs: i64,
}

impl Iface {
    /// Link type 0 (BSD loopback), µs since the epoch: what a packet on an interface that does
    /// not exist is read as, where a check that it exists came before.
    const UNKNOWN: Iface = Iface { linktype: 0, units: 1_000_000, offset_secs: 0 };

    fn of(idb: &pcap_parser::InterfaceDescriptionBlock<'_>) -> Iface {
        Iface {
            linktype: idb.linktype.0 as u32,
            units: idb.ts_resolution().unwrap_or(1_000_000).max(1),
            offset_secs: idb.if_tsoffset,
        }
    }

    /// A packet's timestamp (`ts` units since the interface's offset) in µs since the epoch.
    #[inline]
    fn micros(&self, ts: u64) -> i64 {
        let secs = ((ts / self.units) as i64).wrapping_add(self.offset_secs);
        let frac = ts % self.units;
        // Microseconds, the default resolution, need no 128-bit division.
        let micros =
            if self.units == 1_000_000 { frac as i64 } else { (frac as u128 * 1_000_000 / self.units as u128) as i64 };
        secs.saturating_mul(1_000_000).saturating_add(micros)
    }
}

const BUFFER: usize = 1 << 20;
/// Largest frame we accept: a record claiming more is a corrupt length.
pub const MAX_FRAME: usize = 256 * 1024;
/// What a record claiming more than [`MAX_FRAME`] is reported as. The streaming reader finds it
/// too long for its buffer and the in-place one too long for the file; both say the same, so a
/// scan with workers reports it as one without does.
const TOO_LONG: &str = "corrupt record length (a record claims more than the largest frame, 256 KiB)";

/// Turns the first read error into an end of file, keeping the error for the caller: a
/// compressed stream cut short fails in the decompressor, and the packets decoded before the
/// cut must still be delivered (the parser would drop a whole buffer on an I/O error).
struct KeepError<R> {
    inner: R,
    error: Arc<Mutex<Option<std::io::Error>>>,
}

impl<R: Read> Read for KeepError<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Ok(mut slot) = self.error.lock() {
                        slot.get_or_insert(e);
                    }
                    return Ok(0);
                }
                ok => return ok,
            }
        }
    }
}

/// pcap-parser 0.17 asks for more bytes forever on a pcapng block with an empty body (total
/// length 12, which the format allows for a type it does not know; an empty block of a type
/// it decodes, such as a Process Information Block, is malformed but harmless). When it stalls
/// there, this says whether the buffered bytes start with such a block, so it can be skipped:
/// there is nothing in it to lose. Section headers, interfaces and packets are never skipped.
fn empty_unknown_block(data: &[u8], big_endian: bool) -> bool {
    let Some(h) = data.get(..12) else { return false };
    let word = |i: usize| u32_at(h, i, big_endian);
    // SHB, IDB, PB, SPB, EPB.
    const STRUCTURE: [u32; 5] = [0x0a0d_0d0a, 1, 2, 3, 6];
    word(4) == 12 && word(8) == 12 && !STRUCTURE.contains(&word(0))
}

/// True if the buffered bytes start with a pcapng block (not a section header, whose byte
/// order is its own, nor a classic pcap's file header) claiming fewer than 12 bytes. pcap-parser 0.17 subtracts 12 from such a
/// length unchecked (a panic with overflow checks, a wrapped length without); it never sees one.
fn short_block(data: &[u8], big_endian: bool) -> bool {
    let Some(h) = data.get(..8) else { return false };
    // A section header, or a classic pcap's file header (its version where a length would be).
    let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    if matches!(magic, 0x0a0d_0d0a | 0xa1b2_c3d4 | 0xa1b2_3c4d | 0xa1b2_cd34 | 0xd4c3_b2a1 | 0x4d3c_b2a1 | 0x34cd_b2a1)
    {
        return false;
    }
    u32_at(h, 4, big_endian) < 12
}

/// [`u32_at`] in a byte order chosen at compile time.
#[inline(always)]
fn u32_in<const BE: bool>(b: &[u8], at: usize) -> u32 {
    let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if BE {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

/// Appends the low `bytes` bytes of `v` in the given byte order (the stand-in headers of
/// [`read_file_from`]: [`Legacy::header`], `pcapng::ChunkSection::stand_in`).
fn put_uint(out: &mut Vec<u8>, v: u64, bytes: usize, big_endian: bool) {
    if big_endian {
        out.extend_from_slice(&v.to_be_bytes()[8 - bytes..]);
    } else {
        out.extend_from_slice(&v.to_le_bytes()[..bytes]);
    }
}

/// The 32-bit field at `at` (the caller has checked the length), in the file's byte order.
#[inline]
fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    if big_endian {
        u32_in::<true>(b, at)
    } else {
        u32_in::<false>(b, at)
    }
}

/// Reads every packet of a capture stream and hands it to `sink`.
pub fn read(input: impl Read + Send, mut sink: impl FnMut(Packet<'_>)) -> Result<FileStats, ReadError> {
    read_buffered_ahead(input, BUFFER, |p, _| sink(p))
}

/// [`read`], handing `sink` with each packet the frame [`LOOK_AHEAD`] records further on when
/// the reader knows it (a classic pcap; a pcapng's Enhanced Packet Blocks) and it has the
/// packet's link type (a pcapng's interfaces can differ): a consumer can start loading what
/// that frame will need while it works on this one.
pub fn read_ahead(
    input: impl Read + Send,
    sink: impl FnMut(Packet<'_>, Option<&[u8]>),
) -> Result<FileStats, ReadError> {
    read_buffered_ahead(input, BUFFER, sink)
}

/// [`read`] with a chosen buffer size. The fuzz harnesses use a small one: a fresh 1 MiB buffer
/// per input costs more page faults than the parsing they are there to exercise. In a pcapng
/// stream a block larger than the buffer is reported as cut short; a classic pcap's record loop
/// always holds the largest frame it takes (256 KiB).
pub fn read_buffered(
    input: impl Read + Send,
    buffer: usize,
    mut sink: impl FnMut(Packet<'_>),
) -> Result<FileStats, ReadError> {
    read_buffered_ahead(input, buffer, |p, _| sink(p))
}

/// [`read_ahead`] with a chosen buffer size (see [`read_buffered`]).
pub fn read_buffered_ahead(
    input: impl Read + Send,
    buffer: usize,
    mut sink: impl FnMut(Packet<'_>, Option<&[u8]>),
) -> Result<FileStats, ReadError> {
    let io_error = Arc::new(Mutex::new(None));
    let mut input = KeepError { inner: input, error: io_error.clone() };
    let take_io_error = || io_error.lock().ok().and_then(|mut e| e.take());
    // A classic pcap or a pcapng goes through our own record loop; whatever it leaves (the whole
    // input if it is something else, or from the first record it cannot take) goes to
    // pcap-parser.
    let (mut head, mut start) = stream_legacy(&mut input, buffer, &mut sink);
    if pcapng::is_pcapng(&head) {
        (head, start) = pcapng::stream(&mut input, buffer, head, &mut sink);
    }
    let input = Prefixed { head, at: 0, inner: input };
    let reader = match pcap_parser::create_reader(buffer, input) {
        Ok(r) => r,
        Err(e) => {
            let reason = match (take_io_error(), e) {
                (Some(io), _) => format!("read error: {io}"),
                (None, PcapError::Eof) => "empty file".into(),
                (None, e) => format!("not a pcap or pcapng capture ({e:?})"),
            };
            return Err(ReadError { after_packet: 0, offset: 0, reason, not_a_capture: true });
        }
    };
    walk(reader, &io_error, || false, |p| sink(p, None), start)
}

/// Bytes already read from the input, then the input: a reader that gives as much as the
/// caller asks in one call, as the input alone would (pcap-parser looks at its first read only
/// to tell the format).
struct Prefixed<R> {
    head: Vec<u8>,
    at: usize,
    inner: R,
}

impl<R: Read> Read for Prefixed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let from_head = (self.head.len() - self.at).min(buf.len());
        buf[..from_head].copy_from_slice(&self.head[self.at..self.at + from_head]);
        self.at += from_head;
        if from_head == buf.len() {
            return Ok(from_head);
        }
        match self.inner.read(&mut buf[from_head..]) {
            Ok(n) => Ok(from_head + n),
            Err(_) if from_head > 0 => Ok(from_head),
            Err(e) => Err(e),
        }
    }
}

/// Reads `buf.len()` bytes unless the input ends first; returns how many it read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

/// The record loop of a classic pcap stream, in our own buffer: the stream counterpart of
/// [`SliceReader::fast_legacy`]. It takes the records it can; it returns the bytes for
/// pcap-parser to go on with (with the file header in front, so the parser knows the format
/// again) and where that leaves off. Anything but a classic pcap is returned whole, untouched;
/// so are a record too long to be a frame and one cut short, which the parser then reports.
fn stream_legacy(
    input: &mut impl Read,
    buffer: usize,
    sink: &mut impl FnMut(Packet<'_>, Option<&[u8]>),
) -> (Vec<u8>, Start) {
    let mut header = [0u8; Legacy::HEADER];
    let got = read_full(input, &mut header);
    let Some(file) = Legacy::of(&header[..got]) else {
        return (header[..got].to_vec(), Start::default());
    };
    let mut stats = FileStats::default();
    let mut buf = vec![0u8; buffer.max(MAX_FRAME + 16)];
    // Bytes of the file before `buf[0]`; the unread records are `buf[start..end]`.
    let (mut base, mut start, mut end) = (24u64, 0, 0);
    let done = loop {
        start = legacy_loop::<false>(&file, &buf[..end], start, usize::MAX, &mut stats, sink);
        // A record too long for any frame: the parser says so.
        if end - start >= 16 && file.record_len(&buf[start..start + 16]).is_none() {
            break false;
        }
        buf.copy_within(start..end, 0);
        base += start as u64;
        end -= start;
        start = 0;
        // One read, not a loop until the buffer is full: a pipe delivers what it has.
        let n = input.read(&mut buf[end..]).unwrap_or(0);
        if n == 0 {
            break end == 0;
        }
        end += n;
    };
    // The file header, then what the loop left, for the parser to go on with.
    let mut rest = header.to_vec();
    if !done {
        rest.extend_from_slice(&buf[start..end]);
    }
    (rest, Start { stats, offset: base + start as u64 - 24, ..Default::default() })
}

/// The record loop of the classic pcap readers that show their consumer what comes next (the
/// stream's, and [`windows`]' in place or through its buffer): hands `sink` each whole record
/// of `buf` from `start` on that starts before `limit`, with the frame [`LOOK_AHEAD`] records
/// further on when `buf` holds it. Returns where it stopped: at `limit`, at the end of `buf`,
/// or at a record that is cut short there or too long to be a frame.
///
/// `MAPPED`: `buf` is mapped, not freshly copied, so its bytes are pulled into the cache
/// ahead of the reader ([`PREFETCH`] bytes on).
#[inline(always)]
fn legacy_loop<const MAPPED: bool>(
    file: &Legacy,
    buf: &[u8],
    start: usize,
    limit: usize,
    stats: &mut FileStats,
    sink: &mut impl FnMut(Packet<'_>, Option<&[u8]>),
) -> usize {
    if file.big_endian {
        legacy_records::<MAPPED, true>(file, buf, start, limit, stats, sink)
    } else {
        legacy_records::<MAPPED, false>(file, buf, start, limit, stats, sink)
    }
}

/// [`legacy_loop`] in the file's byte order (`BE`), known at compile time.
#[inline(always)]
fn legacy_records<const MAPPED: bool, const BE: bool>(
    file: &Legacy,
    buf: &[u8],
    mut start: usize,
    limit: usize,
    stats: &mut FileStats,
    sink: &mut impl FnMut(Packet<'_>, Option<&[u8]>),
) -> usize {
    // The length of the record at `at`, if it is whole in `buf` and could be a frame.
    let record = |at: usize| -> Option<usize> {
        let len = file.record_len_in::<BE>(buf.get(at..at + 16)?)?;
        (at + len <= buf.len()).then_some(len)
    };
    let mut ahead = start;
    for _ in 0..LOOK_AHEAD {
        match record(ahead) {
            Some(len) => ahead += len,
            None => break,
        }
    }
    while start < limit {
        let Some(len) = record(start) else { break };
        if MAPPED {
            prefetch(buf, start + PREFETCH, start + len + PREFETCH);
        }
        let next = record(ahead);
        let later = next.map(|n| &buf[ahead + 16..ahead + n]);
        sink(file.read_in::<BE>(&buf[start..start + 16], &buf[start + 16..start + len], stats), later);
        start += len;
        if let Some(n) = next {
            ahead += n;
        }
    }
    start
}

/// Reads every packet of a capture held in memory (a memory-mapped file), handing out slices
/// of it: nothing is copied, which is what lets several workers walk one file side by side.
/// Errors are the same as [`read`]'s.
pub fn read_slice(data: &[u8], mut sink: impl FnMut(Packet<'_>)) -> Result<FileStats, ReadError> {
    let mut reader = match SliceReader::new(data) {
        Ok(r) => r,
        Err(reason) => return Err(ReadError { after_packet: 0, offset: 0, reason, not_a_capture: true }),
    };
    let start = reader.fast(&|| false, &mut sink);
    walk(Box::new(reader), &Mutex::new(None), || false, sink, start)
}

/// [`read_slice`] with every block read by `pcap-parser` (no record loop of our own): the
/// reference the fuzzer and the tests hold our loops to.
pub fn read_slice_by_parser(data: &[u8], sink: impl FnMut(Packet<'_>)) -> Result<FileStats, ReadError> {
    let reader = match SliceReader::new(data) {
        Ok(r) => r,
        Err(reason) => return Err(ReadError { after_packet: 0, offset: 0, reason, not_a_capture: true }),
    };
    walk(Box::new(reader), &Mutex::new(None), || false, sink, Start::default())
}

/// A memory-mapped capture file and the positions of the readers walking it (one per worker
/// of a parallel scan): pages are mapped ahead of the leading reader and handed back behind
/// the last one (`MADV_DONTNEED`). They stay in the page cache but no longer count in the
/// process's resident memory, which would otherwise grow to the size of the file; and no
/// reader finds the pages it is about to read taken away by a faster one.
pub struct SharedMap {
    map: memmap2::Mmap,
    positions: Vec<std::sync::atomic::AtomicUsize>,
    released: std::sync::atomic::AtomicUsize,
    populated: std::sync::atomic::AtomicUsize,
}

impl SharedMap {
    pub fn new(map: memmap2::Mmap, readers: usize) -> SharedMap {
        SharedMap {
            map,
            positions: (0..readers.max(1)).map(|_| Default::default()).collect(),
            released: Default::default(),
            populated: Default::default(),
        }
    }

    /// Reader `index` is at `pos` (`usize::MAX`: done).
    fn progress(&self, index: usize, pos: usize) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
        if let Some(p) = self.positions.get(index) {
            p.store(pos, Relaxed);
        }
        let len = self.map.len();
        // Map the stretch after the next one in one call rather than a page fault at a time;
        // the first reader to get there does it.
        let ahead = (pos.min(len) & !(RELEASE - 1)).saturating_add(RELEASE);
        if ahead + RELEASE <= len && self.populated.fetch_max(ahead + RELEASE, AcqRel) < ahead + RELEASE {
            #[cfg(target_os = "linux")]
            let _ = self.map.advise_range(memmap2::Advice::PopulateRead, ahead, RELEASE);
        }
        let slowest = self.slowest() & !0xfff_usize;
        let from = self.released.load(Acquire);
        if slowest >= from + RELEASE && self.released.compare_exchange(from, slowest, AcqRel, Relaxed).is_ok() {
            // SAFETY: the mapping is read-only and backed by the file, so dropped pages come
            // back from the page cache if read again; every reader is past them, and nothing
            // borrowed from them outlives the packet handed out before its reader moved on.
            #[cfg(unix)]
            let _ =
                unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, slowest - from) };
        }
        // A reader far ahead of the slowest waits for it: the pages between them stay mapped,
        // and they would otherwise grow to the whole file. The slowest never waits, so this
        // ends (a reader that finishes or stops counts as past the end).
        if self.positions.len() > 1 && pos < len {
            let mut waited = 0;
            while pos.saturating_sub(self.slowest()) > MAX_AHEAD && waited < 10_000_000 {
                std::thread::yield_now();
                waited += 1;
            }
        }
    }

    /// Where the slowest reader is (the end of the file when all are done).
    fn slowest(&self) -> usize {
        let min = self.positions.iter().map(|p| p.load(std::sync::atomic::Ordering::Relaxed)).min().unwrap_or(0);
        min.min(self.map.len())
    }
}

/// How far (bytes) a reader of a shared map may run ahead of the slowest one.
const MAX_AHEAD: usize = 2 * RELEASE;

/// [`read_slice`] over a mapped file, as reader `index` of those sharing it (see [`SharedMap`]).
/// `stop` is asked before each record: when it says so, the file ends there (without error).
pub fn read_mapped(
    shared: &SharedMap,
    index: usize,
    stop: impl Fn() -> bool,
    sink: impl FnMut(Packet<'_>),
) -> Result<FileStats, ReadError> {
    /// Marks the reader done however it leaves, so it never holds the others' pages.
    struct Done<'a>(&'a SharedMap, usize);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.progress(self.1, usize::MAX);
        }
    }
    let _done = Done(shared, index);
    let mut reader = match SliceReader::new(&shared.map) {
        Ok(r) => r,
        Err(reason) => return Err(ReadError { after_packet: 0, offset: 0, reason, not_a_capture: true }),
    };
    reader.shared = Some((shared, index));
    let mut sink = sink;
    let start = reader.fast(&stop, &mut sink);
    walk(Box::new(reader), &Mutex::new(None), stop, sink, start)
}

/// The record layout of a classic pcap (not the "modified" variant): how every record loop
/// that walks such a file itself (the stream's, the mapped file's, and the chunks the workers
/// of a parallel scan share, see `pipeline::workers`) tells a record's length and reads it.
#[derive(Clone, Copy, Debug)]
pub struct Legacy {
    linktype: u32,
    nanos: bool,
    big_endian: bool,
}

impl Legacy {
    /// Bytes of the file header, before the first record.
    pub const HEADER: usize = 24;

    /// The layout of a file that starts with `head` (its first 24 bytes or more).
    pub fn of(head: &[u8]) -> Option<Legacy> {
        let magic = u32::from_le_bytes(head.get(..4)?.try_into().ok()?);
        let (big_endian, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        let head = head.get(..Self::HEADER)?;
        Some(Legacy { linktype: u32_at(head, 20, big_endian), nanos, big_endian })
    }

    /// A file header of this layout (version 2.4, the longest frame taken as the snapshot
    /// length): the stand-in [`read_file_from`] reads before records from the middle of a file.
    pub fn header(&self) -> [u8; Self::HEADER] {
        let magic = if self.nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        // Magic, version 2.4, time zone, accuracy, snapshot length, link type.
        let fields = [(magic, 4), (2, 2), (4, 2), (0, 4), (0, 4), (MAX_FRAME as u64, 4), (self.linktype as u64, 4)];
        let mut h = Vec::with_capacity(Self::HEADER);
        for (v, bytes) in fields {
            put_uint(&mut h, v, bytes, self.big_endian);
        }
        h.try_into().expect("24 bytes")
    }

    /// The length of the record whose first 16 bytes are `head` (header and frame), if it could
    /// hold a frame; a longer one is a corrupt length.
    #[inline]
    pub fn record_len(&self, head: &[u8]) -> Option<usize> {
        if self.big_endian {
            self.record_len_in::<true>(head)
        } else {
            self.record_len_in::<false>(head)
        }
    }

    /// [`Self::record_len`] in a byte order chosen at compile time (`BE`: big-endian, which
    /// must be the file's), for the loops that choose it once per file rather than per field.
    #[inline(always)]
    fn record_len_in<const BE: bool>(&self, head: &[u8]) -> Option<usize> {
        let caplen = u32_in::<BE>(head, 8) as usize;
        (caplen <= MAX_FRAME).then_some(16 + caplen)
    }

    /// The packet a whole record holds, as packet `number` of its file.
    #[inline]
    pub fn packet<'a>(&self, record: &'a [u8], number: u64) -> Packet<'a> {
        let mut stats = FileStats { packets: number - 1, bytes: 0 };
        self.read(&record[..16], &record[16..], &mut stats)
    }

    /// The packet of a record (its 16-byte `head`, then `frame`), counted in `stats`: what the
    /// record loops hand out.
    #[inline]
    fn read<'a>(&self, head: &[u8], frame: &'a [u8], stats: &mut FileStats) -> Packet<'a> {
        if self.big_endian {
            self.read_in::<true>(head, frame, stats)
        } else {
            self.read_in::<false>(head, frame, stats)
        }
    }

    /// [`Self::read`] in a byte order chosen at compile time (see [`Self::record_len_in`]).
    #[inline(always)]
    fn read_in<'a, const BE: bool>(&self, head: &[u8], frame: &'a [u8], stats: &mut FileStats) -> Packet<'a> {
        let (secs, frac) = (u32_in::<BE>(head, 0) as i64, u32_in::<BE>(head, 4) as i64);
        let ts_micros = secs * 1_000_000 + if self.nanos { frac / 1000 } else { frac };
        stats.packet(self.linktype, ts_micros, frame, u32_in::<BE>(head, 12))
    }
}

/// How the records of a capture that a parallel scan shares out in chunks are laid out (see
/// `pipeline::workers`): a classic pcap's, or a pcapng section's (see `pcapng::ChunkSection`). It
/// tells where each record ends and reads its packet, as the in-place record loops do, so that
/// the chunks hand out exactly what [`read_slice`] reads, up to where they stop.
#[derive(Clone, Debug)]
pub enum Layout {
    Legacy(Legacy),
    Ng(Arc<pcapng::ChunkSection>),
}

impl Layout {
    /// The layout of a whole capture, and where its first record starts; `None` for one the
    /// chunks cannot start in (a "modified" pcap, a pcapng whose first packet block has options).
    pub fn of(data: &[u8]) -> Option<(Layout, usize)> {
        if let Some(legacy) = Legacy::of(data) {
            return Some((Layout::Legacy(legacy), Legacy::HEADER));
        }
        let (at, section) = pcapng::chunk_start(data)?;
        Some((Layout::Ng(Arc::new(section)), at))
    }

    /// The longest record the chunks take.
    pub fn max_record(&self) -> usize {
        match self {
            Layout::Legacy(_) => 16 + MAX_FRAME,
            Layout::Ng(_) => pcapng::ChunkSection::MAX_BLOCK,
        }
    }
}

/// What a record the chunks take is (see [`Records::take`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// A packet.
    Packet,
    /// A pcapng block without a packet, which changes nothing.
    Other,
    /// A pcapng interface description: it adds to the section ([`Records::grow`]). Only
    /// then is a section copied, so the chunks of a section that declares its interfaces up
    /// front all share it.
    Grows,
}

/// The records of one [`Layout`], for the loops that walk chunks of them: generic, so that each
/// layout's loop is compiled for it, with no choice between layouts per record.
pub trait Records {
    /// Bytes of a record to read its length from.
    fn head(&self) -> usize;

    /// The length of the record whose first [`Self::head`] bytes are `head`, if the chunks could
    /// take it.
    fn len(&self, head: &[u8]) -> Option<usize>;

    /// Whether the chunks take the whole `record` (of the length [`Self::len`] gave), and as
    /// what; `None` where the chunks stop.
    fn take(&self, record: &[u8]) -> Option<Take>;

    /// Adds what a record [`Self::take`] called [`Take::Grows`] declares.
    fn grow(&mut self, record: &[u8]);

    /// The packet of a whole record that [`Self::take`] took as one (by these records, or by
    /// those they grew into), as packet `number` of its file.
    fn packet<'a>(&self, record: &'a [u8], number: u64) -> Packet<'a>;
}

impl Records for Legacy {
    #[inline(always)]
    fn head(&self) -> usize {
        16
    }
    #[inline(always)]
    fn len(&self, head: &[u8]) -> Option<usize> {
        self.record_len(head)
    }
    #[inline(always)]
    fn take(&self, _: &[u8]) -> Option<Take> {
        Some(Take::Packet)
    }
    fn grow(&mut self, _: &[u8]) {}
    #[inline(always)]
    fn packet<'a>(&self, record: &'a [u8], number: u64) -> Packet<'a> {
        Legacy::packet(self, record, number)
    }
}

/// [`read_mapped`] from record `offset` of a capture laid out as `layout` there, whose records
/// before it hold `packets` packets: what a parallel scan reads after the records its workers
/// shared out stop, so that what follows is read, and any error reported, as [`read`] would.
pub fn read_mapped_from(
    map: &[u8],
    layout: &Layout,
    offset: usize,
    packets: u64,
    stop: impl Fn() -> bool,
    mut sink: impl FnMut(Packet<'_>),
) -> Result<FileStats, ReadError> {
    let mut reader = match SliceReader::new(map) {
        Ok(r) => r,
        Err(reason) => return Err(ReadError { after_packet: 0, offset: 0, reason, not_a_capture: true }),
    };
    reader.pos = offset;
    let start = match (layout, reader.legacy.as_ref()) {
        (Layout::Legacy(_), Some((h, _))) => {
            let legacy = Some((h.network.0 as u32, h.is_nanosecond_precision()));
            reader.header_sent = true;
            Start { stats: FileStats { packets, bytes: 0 }, offset: offset as u64, legacy, ..Default::default() }
        }
        (Layout::Ng(section), None) => {
            // The pcapng record loop goes on in the section, as far as it reads.
            let (data, mut pos, mut last) = (reader.data, offset, offset);
            let start = pcapng::in_place(data, &mut pos, Some((section, packets)), &stop, &mut sink, &mut |at| {
                reader.consume_noshift(at - last);
                last = at;
            });
            if let Some((big_endian, _)) = &start.section {
                reader.big_endian = *big_endian;
            }
            start
        }
        _ => {
            let reason = "not laid out as the chunks read it".into();
            return Err(ReadError { after_packet: 0, offset: 0, reason, not_a_capture: true });
        }
    };
    walk(Box::new(reader), &Mutex::new(None), stop, sink, start)
}

/// [`read_mapped_from`] for a file read through buffers (`--no-mmap`): the records of `file` from
/// `offset` on, laid out as `layout` there, after `packets` packets. They go through `pcap-parser`,
/// as what [`read`]'s own loops leave does, behind a stand-in file header (a classic pcap's, or a
/// section header that keeps the layout's interfaces), so what follows is read, and any error
/// reported, as [`read`] would. Read with positioned reads, so that every worker of a parallel
/// scan reads on from where it is in one open file.
pub fn read_file_from(
    file: &std::fs::File,
    layout: &Layout,
    offset: usize,
    packets: u64,
    stop: impl Fn() -> bool,
    sink: impl FnMut(Packet<'_>),
) -> Result<FileStats, ReadError> {
    let (head, section) = match layout {
        Layout::Legacy(legacy) => (legacy.header().to_vec(), None),
        Layout::Ng(section) => {
            let (shb, resumed) = section.stand_in();
            (shb.to_vec(), Some(resumed))
        }
    };
    // Where the stand-in would start, for the offsets of what follows it.
    let before = offset.saturating_sub(head.len()) as u64;
    let io_error = Arc::new(Mutex::new(None));
    let inner = KeepError { inner: FileAt { file, pos: offset as u64 }, error: io_error.clone() };
    let reader = match pcap_parser::create_reader(BUFFER, Prefixed { head, at: 0, inner }) {
        Ok(r) => r,
        Err(e) => {
            let reason = format!("cannot read on from byte {offset}: {e:?}");
            return Err(ReadError { after_packet: packets, offset: offset as u64, reason, not_a_capture: false });
        }
    };
    let start = Start {
        stats: FileStats { packets, bytes: 0 },
        offset: before,
        legacy: None,
        resumed: section.is_some(),
        section,
    };
    walk(reader, &io_error, stop, sink, start)
}

/// A file read on from `pos` by positioned reads (see [`read_file_from`]).
struct FileAt<'f> {
    file: &'f std::fs::File,
    pos: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = crate::source::pread::read_at_most(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The error that ends a file which is now shorter than the `len` bytes mapped, at `at` after
/// `packets` packets: reading on through the mapping would end the run with SIGBUS at the first
/// page past its new end (with `--no-mmap` it is read as a file cut short). The windows look
/// once a window and before the rest of the file is read in place, which leaves only a
/// truncation in the middle of a window unseen; `-j` looks before its mapped walk.
pub fn shrunk(file: &std::fs::File, len: usize, at: usize, packets: u64) -> Option<ReadError> {
    let now = file.metadata().ok()?.len();
    (now < len as u64).then(|| ReadError {
        after_packet: packets,
        offset: at as u64,
        reason: format!(
            "the file shrank from {len} to {now} bytes while it was read; scan it again once its writer \
             is done, or with --no-mmap"
        ),
        not_a_capture: false,
    })
}

/// How many records ahead [`read_ahead`] shows its consumer.
pub const LOOK_AHEAD: usize = 2;

/// Where the record loop starts: at the beginning, or after [`SliceReader::fast_legacy`].
#[derive(Default)]
struct Start {
    stats: FileStats,
    offset: u64,
    /// Link type and nanosecond timestamps of a classic pcap whose header was read.
    legacy: Option<(u32, bool)>,
    /// The byte order and interfaces of the pcapng section the reader is in.
    section: Option<(bool, Vec<Iface>)>,
    /// The input starts with a stand-in section header (see [`read_file_from`]): reading it
    /// keeps the interfaces of `section`, where a section header starts a section afresh.
    resumed: bool,
}

/// The record loop shared by [`read`] and [`read_slice`]. `io_error` holds the stream's first
/// read error, if any.
fn walk<'r>(
    mut reader: Box<dyn PcapReaderIterator + Send + 'r>,
    io_error: &Mutex<Option<std::io::Error>>,
    stop: impl Fn() -> bool,
    mut sink: impl FnMut(Packet<'_>),
    start: Start,
) -> Result<FileStats, ReadError> {
    let mut stats = start.stats;
    let take_io_error = || io_error.lock().ok().and_then(|mut e| e.take());
    let mut resumed = start.resumed;
    let (mut big_endian, mut ifaces) = start.section.unwrap_or_default();
    let mut peek = false;
    let mut legacy: Option<(u32, bool)> = start.legacy;
    let mut offset: u64 = start.offset;
    let mut stalled = false;
    let err = |stats: &FileStats, offset: u64, reason: String| ReadError {
        after_packet: stats.packets,
        offset,
        reason,
        not_a_capture: false,
    };
    loop {
        if stop() {
            break;
        }
        if peek && empty_unknown_block(reader.data(), big_endian) {
            offset += 12;
            reader.consume(12);
            stalled = false;
            peek = false;
            continue;
        }
        if legacy.is_none() && short_block(reader.data(), big_endian) {
            return Err(err(&stats, offset, "corrupt block (its length is under the 12 bytes of any block)".into()));
        }
        match reader.next() {
            Ok((len, block)) => {
                stalled = false;
                peek = false;
                let mut deliver = |linktype: u32, ts_micros: i64, data: &[u8], wire_len: u32| {
                    sink(stats.packet(linktype, ts_micros, data, wire_len))
                };
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network.0 as u32, h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, nanos) = legacy.unwrap_or((1, false));
                        let frac = if nanos { b.ts_usec as i64 / 1000 } else { b.ts_usec as i64 };
                        let data = &b.data[..(b.caplen as usize).min(b.data.len())];
                        deliver(linktype, b.ts_sec as i64 * 1_000_000 + frac, data, b.origlen);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        big_endian = shb.big_endian();
                        if !std::mem::take(&mut resumed) {
                            ifaces.clear();
                        }
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => ifaces.push(Iface::of(&idb)),
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some(ifc) = ifaces.get(epb.if_id as usize) else {
                            let reason = format!("packet on undeclared interface {}", epb.if_id);
                            return Err(err(&stats, offset, reason));
                        };
                        let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                        deliver(ifc.linktype, ifc.micros(ts), data, epb.origlen);
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let Some(ifc) = ifaces.first() else {
                            return Err(err(&stats, offset, "simple packet block before any interface".into()));
                        };
                        let data = &spb.data[..(spb.origlen as usize).min(spb.data.len())];
                        deliver(ifc.linktype, 0, data, spb.origlen);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                offset += len as u64;
                // No shift per block: `refill` moves only the partial record left at the end,
                // where `consume` would move half the buffer each time it passes the middle.
                reader.consume_noshift(len);
            }
            Err(PcapError::Eof) => break,
            // Look at the buffered bytes once (the parser's error borrows them) before treating
            // this as a short read.
            Err(PcapError::Incomplete(_) | PcapError::UnexpectedEof) if legacy.is_none() && !peek => peek = true,
            Err(_) if io_error.lock().is_ok_and(|e| e.is_some()) => {
                // The stream failed (a compressed file cut short): what came before it has been
                // delivered; say why it stopped rather than what the parser made of the rest.
                let io = take_io_error().map(|e| e.to_string()).unwrap_or_default();
                return Err(err(&stats, offset, format!("read error: {io}")));
            }
            Err(PcapError::Incomplete(needed)) => {
                if stalled || needed > MAX_FRAME {
                    let reason = if needed > MAX_FRAME {
                        TOO_LONG.into()
                    } else {
                        "file is truncated: the last record is cut short".into()
                    };
                    return Err(err(&stats, offset, reason));
                }
                if reader.reader_exhausted() {
                    stalled = true;
                }
                if let Err(e) = reader.refill() {
                    return Err(err(&stats, offset, format!("read error: {e:?}")));
                }
            }
            Err(PcapError::UnexpectedEof) => {
                return Err(err(&stats, offset, "file is truncated: the last record is cut short".into()));
            }
            Err(PcapError::BufferTooSmall) => {
                return Err(err(&stats, offset, TOO_LONG.into()));
            }
            Err(e) => {
                let reason = match e {
                    PcapError::NomError(_, k) => format!("corrupt block ({k:?})"),
                    PcapError::OwnedNomError(_, k) => format!("corrupt block ({k:?})"),
                    PcapError::ReadError => "read error".into(),
                    other => format!("{other:?}"),
                };
                return Err(err(&stats, offset, reason));
            }
        }
    }
    if let Some(io) = take_io_error() {
        return Err(err(&stats, offset, format!("read error: {io}")));
    }
    Ok(stats)
}

/// The captured length a classic pcap record header claims.
fn frame_len(head: &[u8], big_endian: bool) -> usize {
    u32_at(head, 8, big_endian) as usize
}

type FrameParser = fn(&[u8]) -> nom::IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>;

/// `pcap-parser`'s reader interface over a slice that holds the whole file: blocks are parsed
/// where they lie. It behaves as its streaming readers do on a stream that has ended.
struct SliceReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Classic pcap: its header (handed out first, as the streaming reader does) and the frame
    /// parser its magic calls for.
    legacy: Option<(PcapHeader, FrameParser)>,
    header_sent: bool,
    big_endian: bool,
    /// The mapping `data` is, and this reader's index among those walking it.
    shared: Option<(&'a SharedMap, usize)>,
    /// Position at the last report to `shared`.
    reported: usize,
}

/// How far ahead of the reader mapped bytes are pulled into the CPU cache. Read through a
/// buffer, a packet is in the cache when it is decoded (the copy put it there); mapped, each
/// would be a miss to memory, and the hardware prefetcher does not cross pages.
pub const PREFETCH: usize = 4096;

/// Asks the CPU to cache `data[from..to]`, one line at a time.
#[inline]
pub fn prefetch(data: &[u8], from: usize, to: usize) {
    let to = to.min(data.len());
    let mut at = from & !63;
    while at < to {
        crate::prefetch::prefetch(data.as_ptr().wrapping_add(at));
        at += 64;
    }
}

/// Starts loading the headers of the frame at `at` of `data` (its first 128 bytes), for a reader
/// that knows which frames it will read next.
#[inline]
pub fn prefetch_frame(data: &[u8], at: usize) {
    prefetch(data, at, at + 128);
}

/// Mapped bytes mapped ahead and handed back at a time (a power of two).
const RELEASE: usize = 16 << 20;

impl<'a> SliceReader<'a> {
    fn new(data: &'a [u8]) -> Result<SliceReader<'a>, String> {
        let mut r = SliceReader {
            data,
            pos: 0,
            legacy: None,
            header_sent: false,
            big_endian: false,
            shared: None,
            reported: 0,
        };
        if data.is_empty() {
            return Err("empty file".into());
        }
        if data.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
            let (_, shb) =
                parse_sectionheaderblock(data).map_err(|e| format!("not a pcap or pcapng capture ({e:?})"))?;
            r.big_endian = shb.big_endian();
            return Ok(r);
        }
        let (_, h) = parse_pcap_header(data).map_err(|e| format!("not a pcap or pcapng capture ({e:?})"))?;
        let parse: FrameParser = if h.is_modified_format() {
            parse_pcap_frame_modified
        } else if h.is_bigendian() {
            parse_pcap_frame_be
        } else {
            parse_pcap_frame
        };
        r.legacy = Some((h, parse));
        Ok(r)
    }
}

impl SliceReader<'_> {
    /// Reads what our own record loops take (see [`Self::fast_legacy`] and [`pcapng`]); the
    /// general loop goes on from where they stop.
    fn fast(&mut self, stop: &impl Fn() -> bool, sink: &mut impl FnMut(Packet<'_>)) -> Start {
        if self.legacy.is_some() {
            return self.fast_legacy(stop, sink);
        }
        let (data, mut pos) = (self.data, self.pos);
        let mut last = pos;
        let start = pcapng::in_place(data, &mut pos, None, stop, sink, &mut |at| {
            self.consume_noshift(at - last);
            last = at;
        });
        if let Some((big_endian, _)) = &start.section {
            self.big_endian = *big_endian;
        }
        start
    }

    /// The records of a classic pcap (not the "modified" variant), read straight off the slice
    /// without the parser's generic block interface: what every packet of most captures costs.
    /// It stops at the first record that does not fit in the file, at `stop`, or at the end;
    /// the general loop then goes on from there, so errors are reported exactly as
    /// [`read`] reports them.
    fn fast_legacy(&mut self, stop: &impl Fn() -> bool, sink: &mut impl FnMut(Packet<'_>)) -> Start {
        let Some((h, _)) = self.legacy.as_ref().filter(|(h, _)| !h.is_modified_format()) else {
            return Start::default();
        };
        let file =
            Legacy { linktype: h.network.0 as u32, nanos: h.is_nanosecond_precision(), big_endian: h.is_bigendian() };
        let mut stats = FileStats::default();
        self.header_sent = true;
        self.pos = h.size();
        let data = self.data;
        let record = |at: usize| -> Option<(&[u8], &[u8])> {
            let head = data.get(at..at + 16)?;
            Some((head, data.get(at + 16..at + file.record_len(head)?)?))
        };
        while !stop() {
            let Some((head, frame)) = record(self.pos) else { break };
            sink(file.read(head, frame, &mut stats));
            self.consume_noshift(16 + frame.len());
        }
        Start { stats, offset: self.pos as u64, legacy: Some((file.linktype, file.nanos)), ..Default::default() }
    }
}

impl PcapReaderIterator for SliceReader<'_> {
    fn next(&mut self) -> Result<(usize, PcapBlockOwned<'_>), PcapError<&[u8]>> {
        if let Some((h, _)) = &self.legacy {
            if !self.header_sent {
                self.header_sent = true;
                return Ok((h.size(), PcapBlockOwned::from(h.clone())));
            }
        }
        let data = &self.data[self.pos.min(self.data.len())..];
        if data.is_empty() {
            return Err(PcapError::Eof);
        }
        let parsed = match &self.legacy {
            // A record longer than any frame is corrupt, as the streaming reader finds, even
            // when the file happens to hold that many bytes after it.
            Some((h, _)) if data.len() >= 16 && frame_len(data, h.is_bigendian()) > MAX_FRAME => {
                return Err(PcapError::Incomplete(frame_len(data, h.is_bigendian())));
            }
            Some((_, parse)) => parse(data).map(|(rem, b)| (rem, PcapBlockOwned::from(b))),
            None => {
                let parse = if self.big_endian { parse_block_be } else { parse_block_le };
                parse(data).map(|(rem, b)| {
                    if let Block::SectionHeader(shb) = &b {
                        self.big_endian = shb.big_endian();
                    }
                    (rem, PcapBlockOwned::from(b))
                })
            }
        };
        match parsed {
            Ok((rem, b)) => Ok((data.len() - rem.len(), b)),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
            // As the streaming reader says before it knows the stream has ended, so that the
            // record loop tells a corrupt length from a file cut short the same way.
            Err(nom::Err::Incomplete(nom::Needed::Size(n))) => Err(PcapError::Incomplete(n.get())),
            Err(nom::Err::Incomplete(nom::Needed::Unknown)) => Err(PcapError::Incomplete(0)),
        }
    }
    fn consume(&mut self, offset: usize) {
        self.consume_noshift(offset)
    }
    fn consume_noshift(&mut self, offset: usize) {
        let from = self.pos;
        self.pos += offset;
        prefetch(self.data, from + PREFETCH, self.pos + PREFETCH);
        if self.pos - self.reported >= RELEASE / 4 {
            if let Some((shared, index)) = self.shared {
                shared.progress(index, self.pos);
            }
            self.reported = self.pos;
        }
    }
    fn consumed(&self) -> usize {
        self.pos
    }
    fn refill(&mut self) -> Result<(), PcapError<&[u8]>> {
        Ok(())
    }
    fn position(&self) -> usize {
        self.pos
    }
    fn grow(&mut self, _: usize) -> bool {
        false
    }
    fn data(&self) -> &[u8] {
        &self.data[self.pos.min(self.data.len())..]
    }
    fn reader_exhausted(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(nanos: bool, big_endian: bool, frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        let magic: u32 = if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 };
        let w32 = |v: &mut Vec<u8>, x: u32| v.extend(if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
        let w16 = |v: &mut Vec<u8>, x: u16| v.extend(if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
        w32(&mut v, magic);
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, 1);
        for (s, f, d) in frames {
            w32(&mut v, *s);
            w32(&mut v, *f);
            w32(&mut v, d.len() as u32);
            w32(&mut v, d.len() as u32);
            v.extend_from_slice(d);
        }
        v
    }

    type Got = Vec<(u64, i64, usize)>;

    fn collect(data: Vec<u8>) -> (Got, Result<FileStats, ReadError>) {
        let mut got = Vec::new();
        let r = read(&data[..], |p| got.push((p.number, p.ts_micros, p.data.len())));
        (got, r)
    }

    #[test]
    fn reads_micro_and_nano_both_orders() {
        for (nanos, be) in [(false, false), (true, false), (false, true), (true, true)] {
            let frac = if nanos { 5_000 } else { 5 };
            let (got, r) = collect(pcap(nanos, be, &[(10, frac, &[0u8; 60]), (11, 0, &[1u8; 42])]));
            assert_eq!(r.unwrap().packets, 2);
            assert_eq!(got, [(1, 10_000_005, 60), (2, 11_000_000, 42)], "nanos={nanos} be={be}");
            // Read on from the second record through a buffer, behind a stand-in header.
            let data = pcap(nanos, be, &[(10, frac, &[0u8; 60]), (11, frac, &[1u8; 42])]);
            let mut f = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut f, &data).unwrap();
            let layout = Layout::Legacy(Legacy::of(&data).unwrap());
            let mut got = Vec::new();
            let r = read_file_from(&f, &layout, 24 + 16 + 60, 1, || false, |p| got.push((p.number, p.ts_micros)));
            assert_eq!(r.unwrap().packets, 2, "nanos={nanos} be={be}");
            assert_eq!(got, [(2, 11_000_005)], "nanos={nanos} be={be}");
        }
    }

    #[test]
    fn truncated_file_keeps_what_was_read() {
        let mut data = pcap(false, false, &[(1, 0, &[0u8; 60]), (2, 0, &[0u8; 60])]);
        data.truncate(data.len() - 10);
        let (got, r) = collect(data);
        assert_eq!(got.len(), 1);
        let e = r.unwrap_err();
        assert_eq!(e.after_packet, 1);
        assert!(e.reason.contains("truncated"), "{e}");
    }

    #[test]
    fn garbage_is_not_a_capture() {
        let (_, r) = collect(b"hello, this is not a capture file at all".to_vec());
        assert!(r.unwrap_err().not_a_capture);
        let (_, r) = collect(Vec::new());
        assert!(r.unwrap_err().not_a_capture);
    }

    #[test]
    fn compressed_stream_cut_short_keeps_the_packets_before_the_cut() {
        use std::io::Write;
        let frames: Vec<(u32, u32, &[u8])> = (0..200).map(|i| (i, 0, &[7u8; 100][..])).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&pcap(false, false, &frames)).unwrap();
        let mut gz = gz.finish().unwrap();
        gz.truncate(gz.len() / 2);
        let mut n = 0;
        let r = read(decompress(Box::new(std::io::Cursor::new(gz))).unwrap(), |_| n += 1);
        let e = r.unwrap_err();
        assert!(n > 0, "packets before the cut are delivered");
        assert_eq!(e.after_packet, n);
        assert!(!e.not_a_capture);
        assert!(e.reason.starts_with("read error"), "{e}");
    }

    fn ng_block(ty: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()) as u32;
        [&ty.to_le_bytes()[..], &len.to_le_bytes(), body, &len.to_le_bytes()].concat()
    }

    #[test]
    fn pcapng_empty_block_of_unknown_type_is_skipped() {
        let shb = [&0x1a2b3c4du32.to_le_bytes()[..], &[1, 0, 0, 0], &(-1i64).to_le_bytes()].concat();
        let idb = [&1u16.to_le_bytes()[..], &[0, 0], &65535u32.to_le_bytes()].concat();
        let epb = [&[0u8; 12][..], &60u32.to_le_bytes(), &60u32.to_le_bytes(), &[0u8; 60]].concat();
        let mut data = [ng_block(0x0a0d0d0a, &shb), ng_block(1, &idb), ng_block(6, &epb)].concat();
        data.extend(ng_block(0x0000_0042, &[]));
        data.extend(ng_block(6, &epb));
        data.extend(ng_block(0x0000_0043, &[]));
        let (got, r) = collect(data);
        assert_eq!(got.len(), 2, "{r:?}");
        assert_eq!(r.unwrap().packets, 2);
        assert!(!empty_unknown_block(&ng_block(6, &[]), false));
        let be = [&0x4200_0000u32.to_be_bytes()[..], &12u32.to_be_bytes(), &12u32.to_be_bytes()].concat();
        assert!(empty_unknown_block(&be, true));
        assert!(!empty_unknown_block(&be, false));
        // An empty Process Information Block (which pcap-parser decodes) is skipped too.
        assert!(empty_unknown_block(&ng_block(0x8000_0001, &[]), false));
    }

    #[test]
    fn corrupt_length_is_reported() {
        let mut data = pcap(false, false, &[(1, 0, &[0u8; 60])]);
        // a second record claiming 100 MB
        data.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        data.extend_from_slice(&100_000_000u32.to_le_bytes());
        data.extend_from_slice(&100_000_000u32.to_le_bytes());
        data.extend_from_slice(&[0u8; 64]);
        let (got, r) = collect(data);
        assert_eq!(got.len(), 1);
        let e = r.unwrap_err();
        assert!(e.reason.contains("corrupt") || e.reason.contains("truncated"), "{e}");
    }
}
