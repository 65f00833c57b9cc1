//! One engine reading a classic pcap or pcapng file window by window: each window in place
//! from the file's mapping when the kernel maps its pages cheaply, else copied through a buffer.
//!
//! Why both: how fast a mapping is depends on how the page cache holds the file, which the
//! reader cannot be told.
//! - A file read from disk sits mostly in large folios (up to 2 MiB). The kernel maps a whole
//!   folio at a time, and this CPU caches the translation of contiguous pages as one. Read in
//!   place, with the next bytes prefetched, W1 takes 0.45-0.47 s on one core against 0.52-0.54 s
//!   through a buffer: the copy (0.10-0.14 s of system time) is gone.
//! - A file just written in small pieces sits in 4 KiB pages. Every page is then mapped and
//!   translated on its own, and the mapping is the slower one: 0.61 s against 0.56 s.
//!
//! A file can hold both (the start of a cold read is often in small folios), so the choice is
//! made again for every [`WINDOW`]: mapping its first eighth (2 MiB) ahead of time
//! (`MADV_POPULATE_READ`) takes 2-20 µs in large folios (by machine; up to 30 µs while another
//! thread of the scan maps its own) and 100-200 µs in small ones. A wrong guess costs about one
//! window's copy. Pages behind the reader are handed back, so the file does not stay resident.
//!
//! Records are read by the same loops as the stream's ([`super::legacy_loop`], pcapng's
//! `blocks`); from the first record they cannot take (too long for a frame, cut short by the end
//! of the file, a pcapng block they leave to `pcap-parser`'s reader), the rest of the file is
//! read as [`super::read_mapped_from`] reads it, so errors read as [`super::read`] reports them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pcapng::{self, Windowed};
use super::{legacy_loop, read_mapped_from, shrunk, FileStats, Layout, Legacy, Packet, ReadError, MAX_FRAME};
use crate::source::pread::{read_at_most, PageBuf};

/// Bytes of the file each choice between mapping and copying covers (a power of two).
pub const WINDOW: usize = 16 << 20;
/// The share of a window mapped ahead to time it (2 MiB).
pub const PROBES: usize = 8;
/// Mapping 2 MiB any slower than this means small pages (or pages not yet read from
/// disk, which the buffer's reads bring in as well as faults would).
const SLOW_PROBE: Duration = Duration::from_micros(50);
/// Windows copied without a probe after slow probes in a row, at most.
const MAX_BACKOFF: usize = 8;
/// Bytes read through the buffer at a time.
const BUFFER: usize = 1 << 20;
const PAGE: usize = PageBuf::PAGE;

/// How many windows were read in place and how many through the buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Windows {
    pub mapped: usize,
    pub copied: usize,
}

/// The record loop a file's windows are read with.
enum Format {
    Legacy(Legacy),
    Ng(Windowed),
}

impl Format {
    fn of(data: &[u8]) -> Option<Format> {
        match Legacy::of(data) {
            Some(layout) => Some(Format::Legacy(layout)),
            None => pcapng::is_pcapng(data).then(|| Format::Ng(Windowed::default())),
        }
    }

    /// Where the first record starts.
    fn first(&self) -> usize {
        match self {
            Format::Legacy(_) => Legacy::HEADER,
            Format::Ng(_) => 0,
        }
    }

    /// Reads the records of `buf` from `start` on that start before `limit`; returns where it
    /// stopped: `limit` or past it, or at a record not whole in `buf` or that the loop does not
    /// take.
    #[inline(always)]
    fn records<const MAPPED: bool>(
        &mut self,
        buf: &[u8],
        start: usize,
        limit: usize,
        stats: &mut FileStats,
        sink: &mut impl FnMut(Packet<'_>, Option<&[u8]>),
    ) -> usize {
        match self {
            Format::Legacy(layout) => legacy_loop::<MAPPED>(layout, buf, start, limit, stats, sink),
            Format::Ng(ng) => ng.records::<MAPPED>(buf, start, limit, stats, sink),
        }
    }

    /// Reads the rest of `data` from the record at `at` (which the loop did not take), as the
    /// in-place reader does.
    fn rest(
        &self,
        data: &[u8],
        at: usize,
        packets: u64,
        stop: &impl Fn() -> bool,
        mut sink: impl FnMut(Packet<'_>, Option<&[u8]>),
    ) -> Result<FileStats, ReadError> {
        let layout = match self {
            Format::Legacy(layout) => Layout::Legacy(*layout),
            Format::Ng(ng) => match ng.section() {
                Some(section) => Layout::Ng(Arc::new(section)),
                // The first block is no section header: no packet was handed out, and the
                // in-place reader says what is wrong from the start.
                None => return super::read_slice(data, |p| sink(p, None)),
            },
        };
        read_mapped_from(data, &layout, at, packets, stop, |p| sink(p, None))
    }
}

/// Reads the classic pcap or pcapng `file` (mapped as `map`) as [`super::read_ahead`] would,
/// handing `sink` each packet with the frame [`super::LOOK_AHEAD`] records on when it is known
/// and of the packet's link type.
/// `None` if `map` is neither (the caller streams it instead). `stop` is asked at every
/// window: when it says so, the file ends there, without error.
pub fn read_windows(
    file: &std::fs::File,
    map: &memmap2::Mmap,
    stop: impl Fn() -> bool,
    sink: impl FnMut(Packet<'_>, Option<&[u8]>),
) -> Option<(Result<FileStats, ReadError>, Windows)> {
    read_by(file, map, WINDOW, probe, stop, sink)
}

/// [`read_windows`] with windows of `window` bytes, each judged by `probe` (the tests choose
/// both).
#[inline]
fn read_by(
    file: &std::fs::File,
    map: &memmap2::Mmap,
    window: usize,
    mut probe: impl FnMut(&memmap2::Mmap, usize, usize) -> Probe,
    stop: impl Fn() -> bool,
    mut sink: impl FnMut(Packet<'_>, Option<&[u8]>),
) -> Option<(Result<FileStats, ReadError>, Windows)> {
    let data: &[u8] = map;
    let mut format = Format::of(data)?;
    let len = data.len();
    let mut stats = FileStats::default();
    let mut windows = Windows::default();
    // The copying path's buffer, made at the first window copied: large enough for the longest
    // record after a partial page.
    let mut buf: Option<PageBuf> = None;
    let cap = BUFFER.max(PAGE + 16 + MAX_FRAME);
    let (mut at, mut released) = (format.first(), 0);
    // Whether the loop stopped at a record it cannot take.
    let mut stuck = false;
    let mut chooser = Chooser::default();
    while at < len && !stuck && !stop() {
        let window_end = ((at / window + 1) * window).min(len);
        let probe = chooser.choose(|| probe(map, at, window / PROBES));
        if let Some(e) = shrunk(file, len, at, stats.packets) {
            release(map, released, len);
            return Some((Err(e), windows));
        }
        if probe == Probe::Fast {
            windows.mapped += 1;
            let next = format.records::<true>(data, at, window_end, &mut stats, &mut sink);
            stuck = next < window_end;
            at = next;
        } else {
            windows.copied += 1;
            if probe == Probe::Slow {
                // What the probe mapped is read in place: it is paid for.
                let probed = ((at & !(PAGE - 1)) + window / PROBES).min(window_end);
                at = format.records::<true>(data, at, probed, &mut stats, &mut sink);
            }
            while at < window_end {
                // The buffer starts at the same offset in its page as the file position: the
                // kernel's copy is several times slower between different offsets.
                let from = at & !(PAGE - 1);
                let page = buf.get_or_insert_with(|| PageBuf::default().with_len(cap));
                let bytes = match read_at_most(file, &mut page.bytes_mut()[..cap], from as u64) {
                    Ok(got) => &page.bytes()[..got],
                    // Not from the mapping, where the same error would be a SIGBUS.
                    Err(e) => {
                        let reason = format!("read error: {e}");
                        let e =
                            ReadError { after_packet: stats.packets, offset: at as u64, reason, not_a_capture: false };
                        release(map, released, len);
                        return Some((Err(e), windows));
                    }
                };
                let offset = at - from;
                let next = format.records::<false>(bytes, offset, window_end - from, &mut stats, &mut sink);
                if next == offset {
                    break;
                }
                at = from + next;
            }
            stuck = at < window_end;
        }
        released = release(map, released, at);
    }
    if stop() || at >= len {
        return Some((Ok(stats), windows));
    }
    // A record too long or cut short: the in-place reader goes on from it, and says which.
    if let Some(e) = shrunk(file, len, at, stats.packets) {
        release(map, released, len);
        return Some((Err(e), windows));
    }
    let packets = stats.packets;
    let rest = format.rest(data, at, packets, &stop, sink);
    let _ = release(map, released, len);
    Some((rest, windows))
}

/// How a window is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The window maps cheaply: it is read in place.
    Fast,
    /// It does not: what the probe mapped is read in place, the rest copied.
    Slow,
    /// Not probed (after a slow probe): copied.
    Skipped,
}

/// The choice, window after window, between mapping and copying: a window is probed unless
/// slow probes came just before it. A file in small pages is usually small throughout, and
/// each slow probe costs a tenth of a window's copy, so after one the next window is copied
/// without a probe, after two in a row the next two, and so on up to [`MAX_BACKOFF`].
#[derive(Debug)]
pub struct Chooser {
    /// Windows to copy without a probe.
    skip: usize,
    /// How many the next slow probe skips.
    backoff: usize,
}

impl Default for Chooser {
    fn default() -> Self {
        Chooser { skip: 0, backoff: 1 }
    }
}

impl Chooser {
    /// How the next window is read: `probe`'s answer, or [`Probe::Skipped`].
    pub fn choose(&mut self, probe: impl FnOnce() -> Probe) -> Probe {
        if self.skip > 0 {
            self.skip -= 1;
            return Probe::Skipped;
        }
        let probe = probe();
        match probe {
            Probe::Fast => self.backoff = 1,
            Probe::Slow => (self.skip, self.backoff) = (self.backoff, (self.backoff * 2).min(MAX_BACKOFF)),
            Probe::Skipped => {}
        }
        probe
    }
}

/// Times mapping `len` bytes of the window at `at`, from there. Without `MADV_POPULATE_READ`
/// (Linux before 5.14, other systems), or past the end of a file that shrank, it is slow.
pub fn probe(map: &memmap2::Mmap, at: usize, len: usize) -> Probe {
    #[cfg(target_os = "linux")]
    {
        let from = at & !(PAGE - 1);
        let len = len.min(map.len().saturating_sub(from));
        let t = Instant::now();
        if map.advise_range(memmap2::Advice::PopulateRead, from, len).is_ok() && t.elapsed() <= SLOW_PROBE {
            return Probe::Fast;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (map, at, len, Instant::now(), SLOW_PROBE);
    Probe::Slow
}

/// Hands back the mapped pages from `released` to the page before `at`; returns the new mark.
/// The caller's readers (one engine, or every worker of `-j`) must be past them.
pub fn release(map: &memmap2::Mmap, released: usize, at: usize) -> usize {
    let to = at.min(map.len()) & !(PAGE - 1);
    if to <= released {
        return released;
    }
    #[cfg(unix)]
    // SAFETY: the mapping is read-only and backed by the file, so dropped pages come back from
    // the page cache if read again; the readers are past them, and no packet handed out from
    // them outlives its call to the sink.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, released, to - released) };
    to
}

/// Number, time, wire length and bytes of each packet.
type Seen = Vec<(u64, i64, u32, Vec<u8>)>;

/// Reads `data` from a file by windows of `window` bytes, each probe answered by `script` in
/// turn; checks every look-ahead frame against the packet it announces (bytes and link type). `None` if `data` is
/// not a classic pcap, or no file could be made.
fn read_scripted(data: &[u8], window: usize, script: &[Probe]) -> Option<(Seen, Result<u64, ReadError>, Windows)> {
    use std::io::Write;
    let mut file = tempfile::tempfile().ok()?;
    file.write_all(data).ok()?;
    // SAFETY: a file of our own, not changed while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let mut next = script.iter().cycle();
    let (mut seen, mut linktypes) = (Seen::new(), Vec::new());
    let mut ahead: Vec<(u64, u32, Vec<u8>)> = Vec::new();
    let (r, w) = read_by(
        &file,
        &map,
        window.max(1),
        |_, _, _| *next.next().unwrap_or(&Probe::Slow),
        || false,
        |p, later| {
            if let Some(l) = later {
                ahead.push((p.number + super::LOOK_AHEAD as u64, p.linktype, l.to_vec()));
            }
            seen.push((p.number, p.ts_micros, p.wire_len, p.data.to_vec()));
            linktypes.push(p.linktype);
        },
    )?;
    for (n, linktype, frame) in ahead {
        assert_eq!(seen.get(n as usize - 1).map(|s| &s.3), Some(&frame), "look-ahead to packet {n}");
        // The consumer reads the frame as the packet it came with.
        assert_eq!(linktypes[n as usize - 1], linktype, "look-ahead to packet {n} of another link type");
    }
    Some((seen, r.map(|s| s.packets), w))
}

/// Panics unless reading `data` by windows of `window` bytes, mapped or copied as `script`'s
/// bits say, gives what [`super::read_slice`] gives: the same packets, each with the right
/// look-ahead, and the same end (count, or the error and where). For the capture fuzz target.
#[doc(hidden)]
pub fn check_windows(data: &[u8], window: usize, script: u8) {
    let script: Vec<Probe> = (0..8).map(|b| if script >> b & 1 == 1 { Probe::Fast } else { Probe::Slow }).collect();
    let Some((got, r, _)) = read_scripted(data, window, &script) else { return };
    let mut want = Seen::new();
    let w = super::read_slice(data, |p| want.push((p.number, p.ts_micros, p.wire_len, p.data.to_vec())));
    assert_eq!(r, w.map(|s| s.packets), "reading by windows ends differently");
    assert!(got == want, "reading by windows gives other packets");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::evidence::PcapngWriter;
    use crate::synth::{PcapWriter, XorShift};

    /// Captures of `n` frames, mostly small, some of tens of KiB, so that records straddle
    /// windows, probes and the buffer's refills: as a classic pcap and as a pcapng, with the
    /// offset of each record.
    fn captures(n: u32, rng: &mut XorShift) -> [(Vec<u8>, Vec<usize>); 2] {
        let mut w = PcapWriter::new(Vec::new(), 1).unwrap();
        let mut ng = PcapngWriter::new(Vec::new()).unwrap();
        for i in 0..n {
            let len = if rng.below(40) == 0 { 14 + rng.below(80_000) } else { 14 + rng.below(1500) } as usize;
            let frame: Vec<u8> = (0..len).map(|b| (b as u32 ^ i.wrapping_mul(7)) as u8).collect();
            w.frame(i64::from(i) * 1000, &frame).unwrap();
            ng.packet(1, i64::from(i) * 1000, &frame, len as u32).unwrap();
        }
        let (data, ng) = (w.into_inner(), ng.finish().unwrap());
        // Where each record starts.
        let (mut at, mut at_ng) = (Vec::new(), Vec::new());
        let mut p = Legacy::HEADER;
        while p + 16 <= data.len() {
            at.push(p);
            p += 16 + u32::from_le_bytes(data[p + 8..p + 12].try_into().unwrap()) as usize;
        }
        let mut p = 0;
        while p + 8 <= ng.len() {
            let kind = u32::from_le_bytes(ng[p..p + 4].try_into().unwrap());
            if kind == 6 {
                at_ng.push(p);
            }
            p += u32::from_le_bytes(ng[p + 4..p + 8].try_into().unwrap()) as usize;
        }
        [(data, at), (ng, at_ng)]
    }

    fn by_slice(data: &[u8]) -> (Seen, Result<u64, ReadError>) {
        let mut seen = Seen::new();
        let r = super::super::read_slice(data, |p| seen.push((p.number, p.ts_micros, p.wire_len, p.data.to_vec())));
        (seen, r.map(|s| s.packets))
    }

    fn by_windows(data: &[u8], window: usize, script: &[Probe]) -> (Seen, Result<u64, ReadError>, Windows) {
        read_scripted(data, window, script).expect("a classic pcap or pcapng")
    }

    const SCRIPTS: [&[Probe]; 3] = [
        &[Probe::Fast],
        &[Probe::Slow],
        &[Probe::Fast, Probe::Slow, Probe::Fast, Probe::Fast, Probe::Slow, Probe::Slow],
    ];

    /// Windows smaller than a record, and larger than the buffer; mapped, copied and mixed: the
    /// packets are the in-place reader's, each with the right look-ahead, in either format.
    #[test]
    fn windows_read_what_the_in_place_reader_reads() {
        for (data, _) in captures(6_000, &mut XorShift(0x51de)) {
            assert!(data.len() > 4 << 20, "{} bytes", data.len());
            let (want, outcome) = by_slice(&data);
            assert_eq!(outcome, Ok(6_000));
            for window in [4096, 100_000, 3 << 20] {
                for script in SCRIPTS {
                    let (got, r, w) = by_windows(&data, window, script);
                    assert_eq!(r, Ok(6_000), "window {window}, {script:?}");
                    assert!(got == want, "window {window}, {script:?}: {} packets", got.len());
                    // A window a record runs across whole is not visited.
                    assert!(w.mapped + w.copied <= data.len().div_ceil(window), "{w:?}");
                    match script {
                        [Probe::Fast] => assert!(w.mapped > 0 && w.copied == 0, "{w:?}"),
                        [Probe::Slow] => assert!(w.mapped == 0 && w.copied > 0, "{w:?}"),
                        _ => assert!(w.mapped > 0 && w.copied > 0, "{w:?}"),
                    }
                }
            }
        }
    }

    /// A pcapng whose interfaces have different link types (Ethernet and raw IP, in runs of
    /// 1 to 4): a look-ahead frame comes only with a packet of its own link type, which the
    /// consumer reads it as. Read by windows, mapped and copied, and as a stream.
    #[test]
    fn the_look_ahead_keeps_to_the_packets_link_type() {
        let mut rng = XorShift(0x11);
        let mut ng = PcapngWriter::new(Vec::new()).unwrap();
        let (mut i, mut same, mut linktype) = (0, 0, 1);
        while i < 3_000 {
            for _ in 0..=rng.below(4) {
                let frame: Vec<u8> = (0..14 + rng.below(200)).map(|b| (b as u32 ^ i) as u8).collect();
                ng.packet(linktype, i64::from(i), &frame, frame.len() as u32).unwrap();
                i += 1;
            }
            linktype = if linktype == 1 { 101 } else { 1 };
        }
        let data = ng.finish().unwrap();
        for script in SCRIPTS {
            let (got, r, _) = by_windows(&data, 4096, script);
            assert_eq!((got.len(), r), (i as usize, Ok(u64::from(i))));
        }
        let mut linktypes = Vec::new();
        let mut ahead = Vec::new();
        super::super::read_ahead(&data[..], |p, later| {
            linktypes.push(p.linktype);
            if later.is_some() {
                ahead.push((p.number, p.linktype));
            }
        })
        .unwrap();
        for (n, linktype) in ahead {
            assert_eq!(linktypes[(n as usize) + super::super::LOOK_AHEAD - 1], linktype, "stream, packet {n}");
            same += 1;
        }
        assert!(same > 1_000, "the look-ahead should still come within a run: {same}");
    }

    /// A file cut short, or with a record too long to be a frame (a block longer than the file),
    /// anywhere: the same packets before it and the same error as the in-place reader, however
    /// the windows went, in either format.
    #[test]
    fn windows_stop_where_the_in_place_reader_stops() {
        let mut rng = XorShift(0xda3a6e);
        for (data, starts) in captures(3_000, &mut rng.clone()) {
            // The byte that makes a record's length absurd: a classic record's frame length, a
            // block's total length.
            let length_byte = if Legacy::of(&data).is_some() { 10 } else { 6 };
            for _ in 0..25 {
                let k = rng.below(starts.len() as u64) as usize;
                let cut = data[..starts[k] + 1 + rng.below(40) as usize].to_vec();
                let mut broken = data.clone();
                broken[starts[k] + length_byte] = 0x7f;
                for damaged in [cut, broken] {
                    let (want, outcome) = by_slice(&damaged);
                    assert_eq!(outcome.as_ref().map_err(|e| e.after_packet), Err(k as u64));
                    for window in [4096, 100_000] {
                        for script in SCRIPTS {
                            let (got, r, _) = by_windows(&damaged, window, script);
                            assert_eq!(r, outcome, "record {}, window {window}, {script:?}", k + 1);
                            assert!(got == want, "record {}, window {window}, {script:?}", k + 1);
                        }
                    }
                }
            }
        }
    }

    /// A file truncated while it is read (here at the third window, in place or copied) ends
    /// with an error that says so, after the packets read until then, not with SIGBUS.
    #[test]
    fn a_file_that_shrinks_while_read_ends_with_an_error() {
        use std::io::Write;
        for (data, _) in captures(2_000, &mut XorShift(0x5b)) {
            let (want, _) = by_slice(&data);
            for script in [Probe::Fast, Probe::Slow] {
                let mut file = tempfile::tempfile().unwrap();
                file.write_all(&data).unwrap();
                // SAFETY: a file of this test's own, which it truncates only where the reader
                // looks for that.
                let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
                let mut probes = 0;
                let mut got = Seen::new();
                let (r, _) = read_by(
                    &file,
                    &map,
                    100_000,
                    |_, _, _| {
                        probes += 1;
                        if probes == 3 {
                            file.set_len(data.len() as u64 / 2).unwrap();
                        }
                        script
                    },
                    || false,
                    |p, _| got.push((p.number, p.ts_micros, p.wire_len, p.data.to_vec())),
                )
                .unwrap();
                let e = r.expect_err("the file shrank");
                assert!(
                    e.reason.starts_with(&format!("the file shrank from {} to {} bytes", data.len(), data.len() / 2)),
                    "{e:?}"
                );
                assert_eq!(e.after_packet, got.len() as u64, "{script:?}");
                assert!(got.len() > 10 && want.starts_with(&got), "{script:?}: {} packets", got.len());
            }
        }
    }

    /// What is not a capture is left to the caller; an empty capture reads as one, and a
    /// pcapng cut short in its first block fails as the in-place reader says.
    #[test]
    fn only_a_capture_is_read_by_windows() {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"ts,src_ip,dest_ip\n").unwrap();
        let file = f.reopen().unwrap();
        // SAFETY: a file of this test's own, not changed while mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        assert!(read_windows(&file, &map, || false, |_, _| {}).is_none());
        for (empty, _) in captures(0, &mut XorShift(1)) {
            let (got, r, _) = by_windows(&empty, 4096, &[Probe::Fast]);
            assert_eq!((got.len(), r), (0, Ok(0)));
        }
        let head = [0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a];
        let (got, r, _) = by_windows(&head, 4096, &[Probe::Fast]);
        assert!(got.is_empty() && r.is_err(), "{r:?}");
        assert_eq!(r, by_slice(&head).1);
    }
}
