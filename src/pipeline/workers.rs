//! `scan --workers N`: N engines, each on its own thread, sharded by the symmetric flow hash
//! of [`super::shard`] as the live sensor shards them.
//!
//! Every worker sees every input, in order, and keeps only its share:
//! - a classic pcap or pcapng file is cut into chunks that the workers claim in order to read
//!   (in place, where the page cache maps the file cheaply and `--no-mmap` is not given) and
//!   walk, each handing every worker the places of its packets (see [`Split`]), so every record
//!   is read once; where the chunks stop (a pcapng block they do not take, a record that does
//!   not fit), every worker reads the rest of the file; every worker walks other mapped capture
//!   files in place; a compressed capture or standard input is read once, on the calling
//!   thread, into batches that every worker shares;
//! - a flow log is parsed by every worker, each keeping the records of its address pairs;
//! - a packet a worker does not own but which carries a DNS answer is still read, only to
//!   learn what flagged names resolved to (over TCP, every segment of the connection), so
//!   `dns.resolved` holds whichever worker the later connection lands on, at the same point in
//!   the traffic as with one engine; so is a fragment of a datagram that may be a tunnel's or a
//!   DNS answer, which every worker reassembles and the owner of the connection inside
//!   inspects (see [`super::shard`]).
//!
//! Alerts go through one writer under a lock (they are few), so their order across
//! connections is not the packets' order; within a connection it is.

use std::borrow::Cow;
use std::io::Read;
use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

use super::engine::{Engine, Options, Sink};
use super::shard::record_worker;
use super::{note_read_error, parse_text_reporting, Backend, Bytes};
use crate::matcher::Matcher;
use crate::report::evidence::Span;
use crate::report::summary::Stats;
use crate::report::{Alert, FlowEvent, Writer};
use crate::source::capture::{self, Packet, Records, Take};
use crate::source::flowlog;
use crate::source::pread::{read_at_most, PageBuf};

/// Jobs queued per worker before the reader waits.
const QUEUE: usize = 16;
/// A batch of streamed frames is handed out at this size.
const BATCH_BYTES: usize = 1 << 20;

/// The run's writer, shared by the workers.
pub struct SharedWriter<'w> {
    writer: Mutex<&'w mut Writer>,
    error: Mutex<Option<std::io::Error>>,
}

impl<'w> SharedWriter<'w> {
    pub fn new(writer: &'w mut Writer) -> Self {
        SharedWriter { writer: Mutex::new(writer), error: Mutex::new(None) }
    }

    /// The first write error, if any.
    pub fn error(&self) -> Result<(), std::io::Error> {
        match self.error.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn with(&self, f: impl FnOnce(&mut Writer) -> std::io::Result<()>) {
        let res = match self.writer.lock() {
            Ok(mut w) => f(&mut w),
            Err(_) => Err(std::io::Error::other("a worker panicked while writing")),
        };
        if let Err(e) = res {
            super::write_failed(&e);
            if let Ok(mut slot) = self.error.lock() {
                slot.get_or_insert(e);
            }
        }
    }
}

struct WorkerSink<'a, 'w>(&'a SharedWriter<'w>);

impl Sink for WorkerSink<'_, '_> {
    fn flush(&mut self) {
        self.0.with(|w| w.flush());
    }
    fn alert(&mut self, a: Alert) {
        self.0.with(|w| w.alert(&a));
    }
    fn flow(&mut self, f: FlowEvent) {
        self.0.with(|w| w.flow(&f));
    }
}

/// Frames of a capture stream, copied out of the reader's buffer once for all workers.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// (offset, length, wire length, link type, timestamp µs, packet number)
    frames: Vec<(u32, u32, u32, u32, i64, u64)>,
}

#[derive(Clone)]
enum Job {
    LearnDns(flowlog::Format, Arc<Bytes>),
    Begin(Arc<str>),
    Text(flowlog::Format, Arc<Bytes>, Arc<str>),
    Mapped(Arc<capture::SharedMap>, Arc<str>),
    Split(Arc<Split>, Arc<str>),
    Frames(Arc<Batch>),
}

/// Bytes of the file each chunk of a [`Split`] covers (tests and the fuzz harness use smaller
/// ones, to cross many chunk boundaries in a small file).
const CHUNK: usize = 256 << 10;
/// Chunks a worker splits ahead of the one it inspects, per worker: enough that none waits
/// for another's split, few enough that the buffers in flight stay in the shared cache.
const SPLIT_AHEAD: usize = 2;
/// Chunks split ahead of the slowest worker, at most: the bound on buffers in flight when one
/// worker runs ahead of another (and splits for both).
const SPLIT_LAG: usize = 16;
/// Packets of its share a worker starts loading ahead of the one it inspects.
const PREFETCH_AHEAD: usize = 8;
/// Mapped bytes handed back at a time, behind the slowest worker (a power of two).
const RELEASE: usize = 16 << 20;
/// Bytes of a file read through buffers that its first packet must start within, for the
/// chunks to split it (a pcapng may declare many interfaces first).
const HEAD: usize = 1 << 20;

/// A classic pcap or pcapng shared out by chunks. Chunk `c` (the records that start in bytes
/// `c * CHUNK..(c + 1) * CHUNK`) is read by the worker that claims it, walked once, and split:
/// each worker is handed the places of its packets in the chunk's bytes, and of the DNS answers
/// every worker learns from. Each worker then inspects its shares of the chunks in file order.
/// So every record is read and walked once, by one worker; when every worker walked the whole
/// mapped file, each paid for the others' packets too, and two workers were only 1.45 times as
/// fast as one.
///
/// Chunks are claimed in order by whichever worker reaches them first, a few ahead of the one
/// it inspects: a worker running ahead (its shares were lighter, or the other was descheduled)
/// splits for both rather than wait for the other to come round to its turn.
///
/// Where a chunk's first record starts is known only when the chunk before it has been walked
/// (a record may run on into the next chunk; its owner reads those bytes too). That walk is a
/// hop over the record headers of the chunk, which splits its packets as it goes: about 17 µs
/// per chunk on W1 against 45 µs for a worker to inspect its share, so the chain of chunk starts
/// runs well ahead of the inspection.
///
/// A chunk is read in place, from the file's mapping, where the kernel maps the file's pages
/// cheaply, and copied into a buffer of the worker's elsewhere, chosen per window of the file
/// as one engine chooses (see `capture::windows`). Reading in place saves the copy's system
/// time (W1 at `-j 2`: 0.17-0.22 s, against 0.03-0.07 s in place).
pub struct Split {
    file: std::fs::File,
    /// The same file mapped, for the chunks read in place and the records after the chunks stop
    /// (see `SplitState::end`); none with `--no-mmap`, when every chunk is copied.
    map: Option<memmap2::Mmap>,
    /// The longest record the chunks take ([`capture::Layout::max_record`]): a chunk's bytes
    /// run on this far past its end.
    max_record: usize,
    len: usize,
    n: usize,
    /// Bytes per chunk ([`CHUNK`]).
    chunk: usize,
    state: Mutex<SplitState>,
    changed: Condvar,
    /// A worker left before the end (stopped, or failed): the others stop waiting for it.
    abandoned: AtomicBool,
    /// The next chunk to claim.
    claimed: AtomicUsize,
    /// The chunk each worker inspects: none is claimed [`SPLIT_LAG`] past the lowest.
    inspecting: Vec<AtomicUsize>,
    /// Each worker's chunk buffers, handed back by the last worker done with them and reused
    /// last in, first out: the most recently used is the likeliest still in cache.
    pools: Vec<Arc<Mutex<Vec<PageBuf>>>>,
    /// Bytes of the file each choice between reading in place and copying covers (a multiple
    /// of the chunk: [`capture::WINDOW`], rounded).
    window: usize,
    /// How each window's chunks are read, once it has been probed: [`MAPPED`], [`PROBED`] (its
    /// first [`capture::PROBES`]th mapped, the rest copied), or copied.
    modes: Vec<std::sync::atomic::AtomicU8>,
    /// The choice for each window, made in order, a window ahead of the chunks claimed.
    chooser: Mutex<capture::Chooser>,
    /// Times mapping the start of a window ([`capture::probe`]; the tests choose).
    probe: Prober,
    /// The mapped bytes before this have been handed back.
    released: AtomicUsize,
    /// The file was seen shorter than mapped: no chunk is read in place any more.
    shrank: AtomicBool,
    /// Packets in the chunk hopped last, to size the next one's shares.
    typical: AtomicUsize,
}

/// Maps the start of a window ahead of time and says whether that was cheap (see
/// [`capture::probe`]).
type Prober = fn(&memmap2::Mmap, usize, usize) -> capture::Probe;

/// A window's chunks are read in place (see [`Split::in_place`]).
const MAPPED: u8 = 1;
/// Those in the part of a window its probe mapped are read in place, the rest copied.
const PROBED: u8 = 2;

/// How many chunks a [`Split`] file has, and where its records stopped (the end of the file, or
/// a record that does not fit), with the packets before that.
type ChunksEnd = (usize, usize, u64);

#[derive(Default)]
struct SplitState {
    /// Where each chunk's first record starts, the packets before it, and the layout there (a
    /// pcapng's interfaces grow along the chain), for the chunks whose start is known.
    starts: Vec<(usize, u64, capture::Layout)>,
    /// Set once the records end.
    end: Option<ChunksEnd>,
    /// The layout where they end, for the walk that goes on from there.
    end_layout: Option<capture::Layout>,
    shares: std::collections::HashMap<(usize, usize), Share>,
    /// Workers waiting on `changed`. A split wakes them only when there are any: a wake-up is a
    /// system call, and two per chunk cost 2 % of a run.
    waiting: usize,
}

/// A packet handed to a worker, as the split read its record: where its frame is in the chunk's
/// bytes and what the record's header said, so that the worker reads no record header again
/// (it read each one twice, for the look-ahead and for the packet: 2.5 % of the instructions
/// of a `-j 2` run).
#[derive(Clone, Copy, Debug)]
struct Place {
    /// The frame's offset in the chunk's bytes; the top bit set when the frame is another
    /// worker's, which every worker reads ([`Engine::learn_packet`]): DNS (a UDP answer, or over
    /// TCP), a fragment.
    at: u32,
    len: u32,
    wire_len: u32,
    linktype: u32,
    ts_micros: i64,
    number: u64,
}

impl Place {
    const LEARN: u32 = 1 << 31;

    /// The place of packet `p`, whose frame starts `at` bytes into its chunk's bytes.
    #[inline(always)]
    fn of(p: &capture::Packet<'_>, at: usize) -> Place {
        // A chunk's bytes run to its length and one record past it: far below the flag's bit.
        debug_assert!(at < Self::LEARN as usize && p.data.len() <= u32::MAX as usize);
        Place {
            at: at as u32,
            len: p.data.len() as u32,
            wire_len: p.wire_len,
            linktype: p.linktype,
            ts_micros: p.ts_micros,
            number: p.number,
        }
    }

    /// Whether the worker only learns from the packet.
    #[inline(always)]
    fn learn(&self) -> bool {
        self.at & Self::LEARN != 0
    }

    /// The frame's offset in the chunk's bytes.
    #[inline(always)]
    fn offset(&self) -> usize {
        (self.at & !Self::LEARN) as usize
    }

    /// The packet, `data` being the chunk's bytes it was placed in.
    #[inline(always)]
    fn packet<'a>(&self, data: &'a [u8]) -> capture::Packet<'a> {
        let at = self.offset();
        capture::Packet {
            linktype: self.linktype,
            ts_micros: self.ts_micros,
            data: &data[at..at + self.len as usize],
            wire_len: self.wire_len,
            number: self.number,
        }
    }
}

/// One worker's share of one chunk.
struct Share {
    chunk: Arc<ChunkBuf>,
    places: Vec<Place>,
    /// The chunk's last packet time, which the worker's clock moves to after its share.
    last_ts: Option<i64>,
}

/// A chunk's bytes as its owner read them: from the chunk's first byte on, through the end of
/// the last record that starts in it.
struct ChunkBuf {
    data: ChunkData,
    pool: Arc<Mutex<Vec<PageBuf>>>,
}

/// Where a chunk's bytes are.
enum ChunkData {
    /// Copied into a buffer of the worker that read it.
    Copied(PageBuf),
    /// In place, in the file's mapping: these bytes of it.
    Mapped(std::ops::Range<usize>),
}

impl ChunkBuf {
    /// The chunk's bytes, `map` being the split file's mapping.
    fn bytes<'a>(&'a self, map: &'a [u8]) -> &'a [u8] {
        match &self.data {
            ChunkData::Copied(buf) => buf.bytes(),
            ChunkData::Mapped(range) => &map[range.clone()],
        }
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        if let ChunkData::Copied(buf) = &mut self.data {
            if let Ok(mut pool) = self.pool.lock() {
                pool.push(std::mem::take(buf));
            }
        }
    }
}

/// What a hop over a chunk passed: where it stopped (and whether early, see [`Split::hop`]),
/// how many packets, each worker's places, and the last packet's time.
struct Hopped {
    at: usize,
    count: u64,
    stopped: bool,
    shares: Vec<Vec<Place>>,
    last_ts: Option<i64>,
}

/// A chunk claimed by a worker, waiting for the chain to say where its first record starts.
struct Pending {
    chunk: usize,
    src: Src,
}

/// How a chunk is read.
enum Src {
    /// Into a buffer, `filled` bytes of it so far.
    Copied { buf: PageBuf, filled: usize },
    /// In place: its pages were mapped ahead of time.
    Mapped,
}

enum Step {
    Done,
    Wait,
    End,
}

impl Split {
    /// A split of the classic pcap or pcapng at `path` (mapped as `map`) among `n` workers; the
    /// map back for a capture the chunks cannot start in (see [`capture::Layout::of`]), which
    /// each worker walks whole.
    fn new(map: memmap2::Mmap, path: &std::path::Path, n: usize, chunk: usize) -> Result<Split, memmap2::Mmap> {
        let Some((layout, first)) = capture::Layout::of(&map) else { return Err(map) };
        let Ok(file) = std::fs::File::open(path) else { return Err(map) };
        let len = map.len();
        Ok(Split::with(file, Some(map), len, (layout, first), n, chunk))
    }

    /// A split of the classic pcap or pcapng at `path` that reads it only through buffers
    /// (`--no-mmap`): every chunk is copied, and the records after the chunks stop are read on
    /// through a buffer too. `None` for anything but a regular file, and for a capture the chunks
    /// cannot start in (or whose first packet is past the first [`HEAD`] bytes): it is streamed.
    fn unmapped(path: &std::path::Path, n: usize, chunk: usize) -> Option<Split> {
        // Not opened again unless it is a regular file: a named pipe's second opening would wait
        // for a writer that may be gone.
        if !crate::source::rereadable(path) {
            return None;
        }
        let file = std::fs::File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let len = usize::try_from(meta.len()).ok()?;
        let mut head = vec![0; len.min(HEAD)];
        let got = read_at_most(&file, &mut head, 0).ok()?;
        let start = capture::Layout::of(&head[..got])?;
        Some(Split::with(file, None, len, start, n, chunk))
    }

    fn with(
        file: std::fs::File,
        map: Option<memmap2::Mmap>,
        len: usize,
        (layout, first): (capture::Layout, usize),
        n: usize,
        chunk: usize,
    ) -> Split {
        let max_record = layout.max_record();
        let state = SplitState { starts: vec![(first, 0, layout)], ..Default::default() };
        let chunk = chunk.max(1);
        let window = capture::WINDOW.div_ceil(chunk) * chunk;
        let run = Split {
            file,
            map,
            max_record,
            len,
            n,
            chunk,
            state: Mutex::new(state),
            changed: Condvar::new(),
            abandoned: AtomicBool::new(false),
            claimed: AtomicUsize::new(0),
            inspecting: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            pools: (0..n).map(|_| Default::default()).collect(),
            window,
            modes: (0..len.div_ceil(window)).map(|_| Default::default()).collect(),
            chooser: Default::default(),
            probe: capture::probe,
            released: AtomicUsize::new(0),
            shrank: AtomicBool::new(false),
            typical: AtomicUsize::new(chunk / 256),
        };
        run.choose(0);
        run
    }

    /// The mapped file; nothing when it is not mapped (no chunk is read in place then).
    fn mapped(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    /// `self` with windows of `window` bytes (rounded up to a chunk), probed by `probe`: for
    /// the tests and the fuzz harness, which cross many windows in a small file and choose
    /// what the probes say.
    fn probed_by(mut self, window: usize, probe: Prober) -> Split {
        self.window = window.max(1).div_ceil(self.chunk) * self.chunk;
        self.modes = (0..self.len.div_ceil(self.window)).map(|_| Default::default()).collect();
        self.chooser = Default::default();
        self.probe = probe;
        self.choose(0);
        self
    }

    /// Chooses how window `w`'s chunks are read: mapping its first [`capture::PROBES`]th ahead
    /// of time tells whether mapping is cheap there, as one engine chooses for its windows
    /// (see `capture::windows`). Made in order, before any of its chunks is claimed but the
    /// smallest tests' (a chunk whose window is not chosen yet is copied).
    fn choose(&self, w: usize) {
        let (Some(mode), Some(map)) = (self.modes.get(w), &self.map) else { return };
        let at = w * self.window;
        let Ok(mut chooser) = self.chooser.lock() else { return };
        if capture::shrunk(&self.file, self.len, at, 0).is_some() {
            self.shrank.store(true, Relaxed);
            return;
        }
        let probe = chooser.choose(|| (self.probe)(map, at, self.window / capture::PROBES));
        if probe == capture::Probe::Fast {
            // The rest of the window is mapped ahead of time too: the split's walk, a tight loop,
            // runs ahead of its faults and prefetches only over mapped pages (W1 at -j 2: 0.36
            // s with the rest faulted in, 0.32 s mapped ahead).
            let from = (at + self.window / capture::PROBES).min(self.len);
            let len = (self.window - self.window / capture::PROBES).min(self.len - from);
            #[cfg(target_os = "linux")]
            let _ = map.advise_range(memmap2::Advice::PopulateRead, from, len);
            #[cfg(not(target_os = "linux"))]
            let _ = len;
        }
        mode.store(
            match probe {
                capture::Probe::Fast => MAPPED,
                capture::Probe::Slow => PROBED,
                capture::Probe::Skipped => 0,
            },
            Release,
        );
    }

    /// Whether the chunk at `base` is read in place (else copied), as its window was chosen.
    fn in_place(&self, base: usize) -> bool {
        if self.shrank.load(Relaxed) {
            return false;
        }
        let w = base / self.window;
        let mapped = match self.modes.get(w).map(|m| m.load(Acquire)) {
            Some(MAPPED) => true,
            // What the probe mapped is read in place: it is paid for.
            Some(PROBED) => base + self.chunk <= w * self.window + self.window / capture::PROBES,
            _ => false,
        };
        // The file's length is looked at again as a window's first chunk is claimed, as one
        // engine looks before each window: reading the mapping of a file cut short would be a
        // SIGBUS. From then on every chunk is copied, and the chunks end where its reads end.
        if mapped && base % self.window < self.chunk && capture::shrunk(&self.file, self.len, base, 0).is_some() {
            self.shrank.store(true, Relaxed);
            return false;
        }
        mapped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SplitState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state under the lock, then wakes the workers waiting on it, if any.
    fn publish(&self, change: impl FnOnce(&mut SplitState)) {
        let wake = {
            let mut st = self.lock();
            change(&mut st);
            st.waiting > 0
        };
        if wake {
            self.changed.notify_all();
        }
    }

    /// Reads `buf[filled..to]` from the file (clamped to its end); the new fill.
    /// A read that fails ends the chunks there, and the mapped walk that follows them reports
    /// what it finds.
    #[cfg(unix)]
    fn fill(&self, base: usize, buf: &mut [u8], filled: usize, to: usize) -> usize {
        let to = to.min(self.len - base).min(buf.len());
        if filled >= to {
            return filled;
        }
        filled + read_at_most(&self.file, &mut buf[filled..to], (base + filled) as u64).unwrap_or(0)
    }

    /// Elsewhere the chunks end at once, and every worker walks the mapped file.
    #[cfg(not(unix))]
    fn fill(&self, _: usize, _: &mut [u8], filled: usize, _: usize) -> usize {
        filled
    }

    /// Bytes `off..off + len` of the chunk at `base`, read in first when it is copied; `None`
    /// past the end of the file or of the chunk's room (one record past its end). `MAPPED`
    /// says how `src` reads, known at compile time so the hop does not ask for every record;
    /// `map` is the file's mapping ([`Self::mapped`], looked up once per chunk, not per record).
    #[inline(always)]
    fn bytes<'s, const MAPPED: bool>(
        &'s self,
        map: &'s [u8],
        src: &'s mut Src,
        base: usize,
        off: usize,
        len: usize,
    ) -> Option<&'s [u8]> {
        let end = off + len;
        if MAPPED {
            return if end <= self.chunk + self.max_record { map.get(base + off..base + end) } else { None };
        }
        match src {
            Src::Mapped => None,
            Src::Copied { buf, filled } => {
                if end > *filled {
                    *filled = self.fill(base, buf.bytes_mut(), *filled, end);
                }
                buf.bytes().get(off..end).filter(|_| end <= *filled)
            }
        }
    }

    /// The hop over chunk `base`'s bytes: the whole records that start in the chunk, from `start`
    /// on (the first of their packets is packet `before + 1`), reading on past its end for the
    /// last one. It stops early at a record that does not fit (or the end of the file), and at a
    /// pcapng block the chunks do not take.
    ///
    /// It splits the packets as it passes them: each goes to the worker of its connection, and
    /// DNS answers to every worker. The walk waits on memory, each record header's load after
    /// the last; the split's work (the owner's hash, the places) runs in those waits. As a second
    /// pass over the chunk, it made `-j 2` about 5 % slower on W1.
    #[inline]
    fn hop<R: Records + Clone>(
        &self,
        records: &mut Cow<'_, R>,
        base: usize,
        src: &mut Src,
        start: usize,
        before: u64,
    ) -> Hopped {
        // One loop for each way of reading: left to the optimiser, the choice was made again
        // for every record in some builds (8 M more instructions on w1-300 at -j 2).
        match src {
            Src::Mapped => self.hop_in::<R, true>(records, base, src, start, before),
            Src::Copied { .. } => self.hop_in::<R, false>(records, base, src, start, before),
        }
    }

    #[inline(always)]
    fn hop_in<R: Records + Clone, const MAPPED: bool>(
        &self,
        records: &mut Cow<'_, R>,
        base: usize,
        src: &mut Src,
        start: usize,
        before: u64,
    ) -> Hopped {
        // Sized for an even split of as many packets as the last chunk held, with room to
        // spare: growing them cost 3 % of a run.
        let typical = self.typical.load(Relaxed);
        let room = typical / self.n + typical / 8 + 8;
        let mut hopped = Hopped {
            at: start,
            count: 0,
            stopped: false,
            shares: (0..self.n).map(|_| Vec::with_capacity(room)).collect(),
            last_ts: None,
        };
        let (head, map) = (records.head(), self.mapped());
        while hopped.at < base + self.chunk {
            let off = hopped.at - base;
            let Some(len) = self.bytes::<MAPPED>(map, src, base, off, head).and_then(|h| records.len(h)) else {
                hopped.stopped = true;
                break;
            };
            let Some(record) = self.bytes::<MAPPED>(map, src, base, off, len) else {
                hopped.stopped = true;
                break;
            };
            if MAPPED {
                // As the in-place reader does: the copy would have brought these bytes into the
                // cache, for this walk and the owner's.
                capture::prefetch(map, hopped.at + capture::PREFETCH, hopped.at + len + capture::PREFETCH);
            }
            match records.take(record) {
                Some(Take::Packet) => {
                    hopped.count += 1;
                    let p = records.packet(record, before + hopped.count);
                    let (w, shared) = super::shard::owner(p.linktype, p.data, self.n);
                    let place = Place::of(&p, off + (p.data.as_ptr() as usize - record.as_ptr() as usize));
                    hopped.shares[w].push(place);
                    if shared {
                        let learn = Place { at: place.at | Place::LEARN, ..place };
                        for (j, s) in hopped.shares.iter_mut().enumerate() {
                            if j != w {
                                s.push(learn);
                            }
                        }
                    }
                    hopped.last_ts = Some(p.ts_micros);
                }
                Some(Take::Other) => {}
                Some(Take::Grows) => records.to_mut().grow(record),
                None => {
                    hopped.stopped = true;
                    break;
                }
            }
            hopped.at += len;
        }
        self.typical.store(hopped.count as usize, Relaxed);
        hopped
    }

    /// Worker `index` moves on to chunk `c`: the mapped pages before the chunk the slowest
    /// worker inspects are handed back, a window at a time, so the file does not stay resident.
    fn release_behind(&self, index: usize, c: usize) {
        self.inspecting[index].store(c, Relaxed);
        let slowest = self.inspecting.iter().map(|a| a.load(Relaxed)).min().unwrap_or(c);
        let to = (slowest * self.chunk).min(self.len) & !(RELEASE - 1);
        let from = self.released.load(Relaxed);
        // No worker reads before the slowest one's chunk.
        if let Some(map) = &self.map {
            if to > from && self.released.compare_exchange(from, to, Relaxed, Relaxed).is_ok() {
                capture::release(map, from, to);
            }
        }
    }

    /// Reads what follows the chunks, once they have ended: the records after the one they
    /// stopped at, as every worker reads a mapped file (nothing, when they reached the end).
    fn read_rest(
        &self,
        stop: impl Fn() -> bool,
        sink: impl FnMut(capture::Packet<'_>),
    ) -> Result<capture::FileStats, capture::ReadError> {
        let (end, layout) = {
            let st = self.lock();
            (st.end, st.end_layout.clone())
        };
        let (Some((_, offset, packets)), Some(layout)) = (end, layout) else { return Ok(Default::default()) };
        let Some(map) = &self.map else {
            // Read on through a buffer: a file cut short, or grown, reads as a stream would.
            return capture::read_file_from(&self.file, &layout, offset, packets, stop, sink);
        };
        if offset >= self.len {
            return Ok(capture::FileStats { packets, bytes: 0 });
        }
        // The chunks stop where a file cut short under them ends: walking its mapping on
        // would be a SIGBUS.
        if let Some(e) = capture::shrunk(&self.file, self.len, offset, packets) {
            return Err(e);
        }
        capture::read_mapped_from(map, &layout, offset, packets, stop, sink)
    }

    /// The next chunk for worker `index` (inspecting chunk `c`) to read and split, claimed; or
    /// none while it is far enough ahead.
    fn claim(&self, index: usize, c: usize) -> Option<usize> {
        self.inspecting[index].store(c, Relaxed);
        let slowest = self.inspecting.iter().map(|a| a.load(Relaxed)).min().unwrap_or(c);
        let limit = (c + SPLIT_AHEAD * self.n).min(slowest + SPLIT_LAG);
        let mut next = self.claimed.load(Relaxed);
        while next <= limit {
            match self.claimed.compare_exchange_weak(next, next + 1, Relaxed, Relaxed) {
                Ok(_) => return Some(next),
                Err(now) => next = now,
            }
        }
        None
    }

    /// Reads, walks and splits chunk `c` (claimed by worker `index`), as far as the chain
    /// allows: `Wait` while the chunk before it has not been walked (the chunk stays read in
    /// `pending`).
    fn try_split(&self, c: usize, index: usize, pending: &mut Option<Pending>, walked: &AtomicU64) -> Step {
        let base = c * self.chunk;
        let pool = &self.pools[index];
        if pending.as_ref().is_none_or(|p| p.chunk != c) {
            // Claimed halfway through a window, the chunk has the next one chosen.
            let per_window = self.window / self.chunk;
            if c % per_window == per_window / 2 {
                self.choose(c / per_window + 1);
            }
            let src = if base < self.len && self.in_place(base) {
                Src::Mapped
            } else {
                let buf = pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
                let mut buf = buf.with_len(self.chunk + self.max_record);
                let filled = if base < self.len { self.fill(base, buf.bytes_mut(), 0, self.chunk) } else { 0 };
                Src::Copied { buf, filled }
            };
            *pending = Some(Pending { chunk: c, src });
        }
        let (start, before, mut layout) = {
            let st = self.lock();
            if st.end.is_some_and(|(chunks, ..)| c >= chunks) {
                return Step::End;
            }
            match st.starts.get(c) {
                Some(s) => s.clone(),
                None => return Step::Wait,
            }
        };
        let Some(Pending { mut src, .. }) = pending.take() else { return Step::Wait };
        // The section is copied only if the chunk adds to it.
        let hopped = match &layout {
            capture::Layout::Legacy(l) => self.hop(&mut Cow::Borrowed(l), base, &mut src, start, before),
            capture::Layout::Ng(p) => {
                let mut section = Cow::Borrowed(&**p);
                let hopped = self.hop(&mut section, base, &mut src, start, before);
                if let Cow::Owned(grown) = section {
                    layout = capture::Layout::Ng(Arc::new(grown));
                }
                hopped
            }
        };
        let Hopped { at, count, stopped, shares, last_ts } = hopped;
        // No record may start in a chunk (one longer than the chunk runs across it): its shares
        // are empty, and the chain goes on.
        let ended = stopped || at >= self.len;
        let empty = at == start;
        let chunk = (!(empty && ended)).then(|| {
            let data = match std::mem::replace(&mut src, Src::Mapped) {
                Src::Copied { buf, .. } => ChunkData::Copied(buf),
                Src::Mapped => ChunkData::Mapped(base..(base + self.chunk + self.max_record).min(self.len)),
            };
            Arc::new(ChunkBuf { data, pool: pool.clone() })
        });
        walked.fetch_add((at - start) as u64, Relaxed);
        self.publish(|st| {
            if empty && ended {
                st.end = Some((c, at, before));
            } else {
                st.starts.push((at, before + count, layout.clone()));
                if ended {
                    st.end = Some((c + 1, at, before + count));
                }
            }
            if ended {
                st.end_layout = Some(layout.clone());
            }
            if let Some(chunk) = &chunk {
                for (j, places) in shares.into_iter().enumerate() {
                    st.shares.insert((c, j), Share { chunk: chunk.clone(), places, last_ts });
                }
            }
        });
        match chunk {
            Some(_) => Step::Done,
            None => {
                if let Src::Copied { buf, .. } = src {
                    pool.lock().map(|mut p| p.push(buf)).ok();
                }
                Step::End
            }
        }
    }
}

/// Worker `index`'s part of a [`Split`] file: it reads and splits its chunks a little ahead,
/// and inspects its share of every chunk in order; then reads what follows the chunks (the
/// records after one that does not fit), if anything, as every worker reads a mapped file.
fn split_file<S: Sink>(
    engine: &mut Engine<'_, S>,
    run: &Split,
    index: usize,
    walked: &AtomicU64,
) -> Result<capture::FileStats, capture::ReadError> {
    /// Tells the others when a worker leaves early (stopped, or failed), so none waits for it.
    struct Leave<'a>(&'a Split, bool);
    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            if !self.1 {
                self.0.abandoned.store(true, Release);
                let _guard = self.0.lock();
                self.0.changed.notify_all();
            }
        }
    }
    let mut leave = Leave(run, false);
    let n = run.n;
    let (mut done, mut pending): (bool, Option<Pending>) = (false, None);
    let split_ahead = |c: usize, done: &mut bool, pending: &mut Option<Pending>| {
        while !*done {
            let Some(k) = pending.as_ref().map(|p| p.chunk).or_else(|| run.claim(index, c)) else { break };
            match run.try_split(k, index, pending, walked) {
                Step::Done => {}
                Step::Wait => break,
                Step::End => *done = true,
            }
        }
    };
    let mut c = 0;
    loop {
        split_ahead(c, &mut done, &mut pending);
        let share = {
            let mut st = run.lock();
            loop {
                if let Some(s) = st.shares.remove(&(c, index)) {
                    break Some(s);
                }
                if st.end.is_some_and(|(chunks, ..)| c >= chunks) {
                    break None;
                }
                if run.abandoned.load(Acquire) || super::stopped() {
                    return Ok(Default::default());
                }
                // The chunk may wait on a split of ours that the chain held back.
                drop(st);
                split_ahead(c, &mut done, &mut pending);
                st = run.lock();
                if st.shares.contains_key(&(c, index)) {
                    continue;
                }
                st.waiting += 1;
                st = run.changed.wait_timeout(st, Duration::from_millis(1)).unwrap_or_else(|e| e.into_inner()).0;
                st.waiting -= 1;
            }
        };
        let Some(share) = share else { break };
        let data = share.chunk.bytes(run.mapped());
        if !inspect_share(engine, data, &share.places) {
            return Ok(Default::default());
        }
        if let Some(ts) = share.last_ts {
            engine.advance(ts);
        }
        drop(share);
        c += 1;
        run.release_behind(index, c);
    }
    leave.1 = true;
    run.read_rest(super::stopped, |p| route(engine, &p, index, n))
}

/// Inspects a worker's share of a chunk (the packets at `places` of `data`), in order; false if
/// the scan was stopped.
#[inline]
fn inspect_share<S: Sink>(engine: &mut Engine<'_, S>, data: &[u8], places: &[Place]) -> bool {
    for (i, place) in places.iter().enumerate() {
        if super::stopped() {
            return false;
        }
        // The share says which frames come next: start loading them, and the connections of
        // the nearer ones, while this one is inspected.
        if let Some(ahead) = places.get(i + PREFETCH_AHEAD) {
            capture::prefetch_frame(data, ahead.offset());
        }
        if let Some(ahead) = places.get(i + capture::LOOK_AHEAD).filter(|a| !a.learn()) {
            let p = ahead.packet(data);
            engine.hint(p.linktype, p.data, p.number);
        }
        let p = place.packet(data);
        if place.learn() {
            engine.advance(p.ts_micros);
            engine.learn_packet(&p);
        } else {
            engine.packet(&p);
        }
    }
    true
}

type Outcome = (Stats, Vec<Span>, usize);

/// The workers of one scan.
pub struct Pool<'scope> {
    senders: Vec<SyncSender<Job>>,
    handles: Vec<ScopedJoinHandle<'scope, Outcome>>,
    /// Bytes of mapped captures the first worker has walked, for the progress bar.
    walked: Arc<AtomicU64>,
    /// Disconnected once every worker has returned.
    done: Receiver<()>,
}

impl<'scope> Pool<'scope> {
    pub fn start<'env>(
        scope: &'scope Scope<'scope, 'env>,
        m: &'env Matcher,
        mut opts: Options,
        n: usize,
        out: &'env SharedWriter<'_>,
    ) -> Pool<'scope> {
        // The connection cap is the run's, shared out.
        opts.limits.max_conns = (opts.limits.max_conns / n).max(16);
        let walked = Arc::new(AtomicU64::new(0));
        let mut senders = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        // Nothing is sent: each worker holds a sender until it returns (or unwinds).
        let (done_tx, done) = std::sync::mpsc::channel();
        for index in 0..n {
            let (tx, rx) = sync_channel(QUEUE);
            senders.push(tx);
            let walked = walked.clone();
            let opts = opts.clone();
            let done_tx: Sender<()> = done_tx.clone();
            handles.push(scope.spawn(move || {
                let _held = done_tx;
                work(index, n, m, opts, rx, WorkerSink(out), &walked)
            }));
        }
        Pool { senders, handles, walked, done }
    }

    fn broadcast(&self, job: Job) {
        for tx in &self.senders {
            // A worker that is gone panicked; joining it reports that.
            let _ = tx.send(job.clone());
        }
    }
}

impl Backend for Pool<'_> {
    fn learn_dns(&mut self, format: flowlog::Format, data: Bytes) {
        self.broadcast(Job::LearnDns(format, Arc::new(data)));
    }
    fn begin_file(&mut self, name: Arc<str>) {
        self.broadcast(Job::Begin(name));
    }
    fn text(&mut self, format: flowlog::Format, data: Bytes, name: &Arc<str>) {
        self.broadcast(Job::Text(format, Arc::new(data), name.clone()));
    }
    fn mapped(&mut self, map: memmap2::Mmap, path: &std::path::Path, name: &Arc<str>, _: &mut dyn FnMut(u64)) {
        let readers = self.senders.len();
        match Split::new(map, path, readers, CHUNK) {
            Ok(run) => self.broadcast(Job::Split(Arc::new(run), name.clone())),
            Err(map) => self.broadcast(Job::Mapped(Arc::new(capture::SharedMap::new(map, readers)), name.clone())),
        }
    }
    fn unmapped(
        &mut self,
        path: &std::path::Path,
        reader: Box<dyn Read + Send>,
        name: &Arc<str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), capture::ReadError> {
        match Split::unmapped(path, self.senders.len(), CHUNK) {
            Some(run) => {
                drop(reader);
                self.broadcast(Job::Split(Arc::new(run), name.clone()));
                Ok(())
            }
            None => self.stream(reader, name, progress),
        }
    }
    fn stream(
        &mut self,
        reader: Box<dyn Read + Send>,
        _: &Arc<str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), capture::ReadError> {
        let mut batch = Batch::default();
        let flush = |batch: &mut Batch, progress: &mut dyn FnMut(u64)| {
            if !batch.frames.is_empty() {
                progress((batch.data.len() + 16 * batch.frames.len()) as u64);
                self.broadcast(Job::Frames(Arc::new(std::mem::take(batch))));
            }
        };
        let res = capture::read(super::Stoppable(reader), |p| {
            let off = batch.data.len() as u32;
            batch.data.extend_from_slice(p.data);
            batch.frames.push((off, p.data.len() as u32, p.wire_len, p.linktype, p.ts_micros, p.number));
            if batch.data.len() >= BATCH_BYTES {
                flush(&mut batch, progress);
            }
        });
        flush(&mut batch, progress);
        res.map(|_| ())
    }
    fn finish(self, progress: &mut dyn FnMut(u64)) -> Outcome {
        drop(self.senders);
        let mut shown = 0;
        // Woken when the last worker is done (a sleep between checks cost up to its length at
        // the end of every run), and every 10 ms before that to show the progress.
        while let Err(RecvTimeoutError::Timeout) = self.done.recv_timeout(Duration::from_millis(10)) {
            let now = self.walked.load(Relaxed);
            progress(now - shown);
            shown = now;
        }
        progress(self.walked.load(Relaxed) - shown);
        let mut total: Option<Outcome> = None;
        for h in self.handles {
            let (stats, flagged, fatal) = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            match &mut total {
                None => total = Some((stats, flagged, fatal)),
                Some(t) => {
                    t.0.merge(stats);
                    t.1.extend(flagged);
                    t.2 += fatal;
                }
            }
        }
        total.unwrap_or_default()
    }
}

/// Inspects a frame if this worker owns it; otherwise only keeps time by it, and reads it too if
/// every worker does ([`Engine::learn_packet`]). The fuzz harness routes its engines with it.
#[inline]
pub(crate) fn route<S: Sink>(engine: &mut Engine<'_, S>, p: &Packet<'_>, index: usize, n: usize) {
    if super::stopped() {
        return;
    }
    match super::shard::route(p.linktype, p.data, n, index) {
        (true, _) => engine.packet(p),
        (false, shared) => {
            engine.advance(p.ts_micros);
            if shared {
                engine.learn_packet(p);
            }
        }
    }
}

/// One worker: its engine over every job, keeping its share. The first worker also reports
/// what concerns a whole input (bad lines, read errors, bytes), so each is counted once.
fn work(
    index: usize,
    n: usize,
    m: &Matcher,
    opts: Options,
    jobs: Receiver<Job>,
    sink: WorkerSink<'_, '_>,
    walked: &AtomicU64,
) -> Outcome {
    let mut engine = Engine::new(m, opts, sink);
    engine.set_share(index, n);
    let mut fatal = 0;
    for job in jobs {
        match job {
            Job::LearnDns(f, data) => flowlog::parse_text(f, &data, |r| engine.learn_dns(r), |_, _| {}),
            Job::Begin(name) => engine.begin_file(name),
            Job::Text(f, data, name) if index == 0 => {
                parse_text_reporting(&mut engine, f, &data, &name, |e, r| {
                    if record_worker(r, n) == 0 {
                        e.record(r)
                    }
                });
            }
            Job::Text(f, data, _) => flowlog::parse_text(
                f,
                &data,
                |r| {
                    if record_worker(r, n) == index && !super::stopped() {
                        engine.record(r)
                    }
                },
                |_, _| {},
            ),
            Job::Mapped(map, name) => {
                let mut k = 0u64;
                let res = capture::read_mapped(&map, index, super::stopped, |p| {
                    route(&mut engine, &p, index, n);
                    if index == 0 {
                        k += p.data.len() as u64 + 16;
                        if p.number % 65536 == 0 {
                            walked.fetch_add(std::mem::take(&mut k), Relaxed);
                        }
                    }
                });
                walked.fetch_add(k, Relaxed);
                if let (0, Err(e)) = (index, res) {
                    fatal += usize::from(note_read_error(&mut engine, &name, &e));
                }
            }
            Job::Split(run, name) => {
                let res = split_file(&mut engine, &run, index, walked);
                if let (0, Err(e)) = (index, res) {
                    fatal += usize::from(note_read_error(&mut engine, &name, &e));
                }
            }
            Job::Frames(b) => {
                for &(off, len, wire_len, linktype, ts_micros, number) in &b.frames {
                    let data = &b.data[off as usize..(off + len) as usize];
                    route(&mut engine, &Packet { linktype, ts_micros, data, wire_len, number }, index, n);
                }
            }
        }
    }
    let (mut stats, _, flagged) = engine.finish();
    if index != 0 {
        // Inputs are counted once, by the first worker.
        stats.files = 0;
    }
    (stats, flagged, fatal)
}

/// Splits a file whole in one thread, chunk by chunk in order as their owners would: every
/// worker's share of every chunk, and where the chunks ended.
fn split_whole(run: &Split) -> (Vec<Vec<Share>>, Option<ChunksEnd>) {
    let walked = AtomicU64::new(0);
    let mut pending: Vec<Option<Pending>> = (0..run.n).map(|_| None).collect();
    let mut chunks = Vec::new();
    for c in 0.. {
        match run.try_split(c, c % run.n, &mut pending[c % run.n], &walked) {
            Step::Done => {}
            Step::Wait => panic!("chunk {c} waits though the one before it was split"),
            Step::End => break,
        }
        let mut st = run.lock();
        chunks.push((0..run.n).map(|j| st.shares.remove(&(c, j)).expect("a share for every worker")).collect());
    }
    let end = run.lock().end;
    (chunks, end)
}

/// The fuzz harness's check of [`Split`] (see `crate::fuzzing::capture`): a classic pcap or a
/// pcapng split among `n` workers in chunks of `chunk` bytes hands out, each once to the worker
/// that owns it, the packets the in-place reader reads up to where the chunks stop; and the walk
/// that goes on from there reads the rest, and ends (or fails) where that reader does. The same
/// file read only through buffers (`--no-mmap`) is split alike, and ends where the streaming
/// reader ends. Returns the byte where the chunks stopped; `None` for a file a parallel scan does
/// not split.
#[doc(hidden)]
pub fn check_split(data: &[u8], n: usize, chunk: usize) -> Option<usize> {
    let mut f = tempfile::NamedTempFile::new().ok()?;
    if std::io::Write::write_all(&mut f, data).is_err() || data.is_empty() {
        return None;
    }
    // SAFETY: a temporary file of this function's own, not changed while mapped.
    let map = unsafe { memmap2::Mmap::map(f.as_file()) }.ok()?;
    // Windows of three to five chunks, read in place or copied as the page cache could mix
    // them (mapping the file's pages ahead of time only where the kernel makes that cheap).
    let run =
        Split::new(map, f.path(), n, chunk).ok()?.probed_by(chunk * (3 + data.len() % 3), |_, at, _| match at % 3 {
            0 => capture::Probe::Fast,
            1 => capture::Probe::Slow,
            _ => capture::Probe::Skipped,
        });
    let slice = |sink: &mut dyn FnMut(capture::Packet<'_>)| capture::read_slice(data, sink);
    let stopped_at = check_run(&run, slice);
    let unmapped = Split::unmapped(f.path(), n, chunk).expect("a file split mapped is split unmapped");
    let stream = |sink: &mut dyn FnMut(capture::Packet<'_>)| capture::read(data, sink);
    assert_eq!(check_run(&unmapped, stream), stopped_at, "the chunks stop elsewhere unmapped");
    Some(stopped_at)
}

/// Packets as a check compares them: number, link type, time, length on the wire, frame.
type Seen = (u64, u32, i64, u32, Vec<u8>);

/// [`check_split`] for one split: what it hands out and what the walk after it reads are what
/// `reader` reads of the whole file, and end as it ends; the byte where the chunks stopped.
fn check_run(
    run: &Split,
    reader: impl FnOnce(&mut dyn FnMut(capture::Packet<'_>)) -> Result<capture::FileStats, capture::ReadError>,
) -> usize {
    let n = run.n;
    let seen = |p: &capture::Packet<'_>| -> Seen { (p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec()) };
    let (chunks, end) = split_whole(run);
    let mut handed = Vec::new();
    for (c, shares) in chunks.iter().enumerate() {
        let mut mine = Vec::new();
        for (j, share) in shares.iter().enumerate() {
            for place in &share.places {
                let (number, learn) = (place.number, place.learn());
                let p = place.packet(share.chunk.bytes(run.mapped()));
                let (owner, shared) = super::shard::owner(p.linktype, p.data, n);
                assert_eq!(learn, owner != j, "chunk {c}: packet {number} handed to worker {j}, owned by {owner}");
                assert!(!learn || shared, "chunk {c}: packet {number} handed to learn from is not read by all");
                if !learn {
                    mine.push(seen(&p));
                }
            }
        }
        mine.sort_by_key(|m| m.0);
        handed.extend(mine);
    }
    let (_, stopped_at, before) = end.expect("the chunks end");
    assert_eq!(handed.len() as u64, before, "the chunks count what they handed out");
    let rest = run.read_rest(|| false, |p| handed.push(seen(&p)));
    let mut read = Vec::new();
    let res = reader(&mut |p| read.push(seen(&p)));
    assert!(handed == read, "the chunks and the walk after them disagree with the whole file's reader");
    let outcome = |r: Result<capture::FileStats, capture::ReadError>| {
        r.map(|s| s.packets).map_err(|e| (e.after_packet, e.offset, e.reason))
    };
    assert_eq!(outcome(rest), outcome(res), "the chunks and the walk after them end differently");
    stopped_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{addr, ethernet, ip, udp, PcapWriter, XorShift};

    /// A capture of `n` frames of random sizes (now and then far longer than the rest), every
    /// tenth a DNS answer; its bytes and the offset of each record.
    fn capture(n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut w = PcapWriter::new(Vec::new(), 1).unwrap();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut offsets = Vec::new();
        let mut at = capture::Legacy::HEADER;
        for i in 0..n {
            let x = rng.next_u64();
            let len = match x % 50 {
                0 => 60_000,
                1..=3 => 9_000,
                _ => (x >> 8) as usize % 600,
            };
            let sport = if i % 10 == 0 { 53 } else { 1024 + (x >> 32) as u16 % 1000 };
            let p = ip(
                addr("10.0.0.1"),
                addr(&format!("10.0.{}.{}", (x >> 40) as u8, (x >> 48) as u8)),
                17,
                udp(sport, 9, &vec![0; len]),
                None,
            );
            let frame = ethernet(None, 0x0800, &p);
            offsets.push(at);
            at += 16 + frame.len();
            w.frame(i as i64, &frame).unwrap();
        }
        (w.into_inner(), offsets)
    }

    /// A split of `bytes` written to a temporary file (returned too: the split maps it), with
    /// windows of `window` bytes probed by `probe`.
    fn split_of(bytes: &[u8], n: usize, window: usize, probe: Prober) -> (tempfile::NamedTempFile, Split) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        // SAFETY: the test's own temporary file, changed while mapped only where a test looks
        // for that.
        let map = unsafe { memmap2::Mmap::map(f.as_file()).unwrap() };
        let Ok(run) = Split::new(map, f.path(), n, CHUNK) else { panic!("not split") };
        (f, run.probed_by(window, probe))
    }

    /// Every window read in place.
    fn fast(_: &memmap2::Mmap, _: usize, _: usize) -> capture::Probe {
        capture::Probe::Fast
    }

    /// Windows read in place, in place in part (after a slow probe), and copied, in turn.
    fn mixed(_: &memmap2::Mmap, at: usize, _: usize) -> capture::Probe {
        [capture::Probe::Fast, capture::Probe::Slow, capture::Probe::Skipped][at / (2 * CHUNK) % 3]
    }

    /// Every window copied.
    fn copied(_: &memmap2::Mmap, _: usize, _: usize) -> capture::Probe {
        capture::Probe::Skipped
    }

    /// Splits the file whole, chunk by chunk as its owners would, in windows of two chunks
    /// read in place or copied (see [`mixed`]); every share, and the end.
    fn split_all(bytes: &[u8], n: usize) -> (Vec<Vec<Share>>, Option<ChunksEnd>) {
        split_whole(&split_of(bytes, n, 2 * CHUNK, mixed).1)
    }

    /// A file cut to half its length after it was mapped: the chunks stop at the record cut
    /// short, and the mapped walk after them ends with an error saying so, not with SIGBUS,
    /// though every window would be read in place.
    #[test]
    fn a_file_that_shrinks_under_the_chunks_ends_with_an_error() {
        let (bytes, offsets) = capture(6_000);
        let (f, run) = split_of(&bytes, 2, 2 * CHUNK, fast);
        f.as_file().set_len(bytes.len() as u64 / 2).unwrap();
        let (_, end) = split_whole(&run);
        let (_, stopped_at, packets) = end.expect("the chunks end");
        let whole = offsets.iter().filter(|&&o| o < bytes.len() / 2).count() as u64 - 1;
        assert!(stopped_at < bytes.len() / 2 && packets >= whole, "{end:?}");
        let e = run.read_rest(|| false, |_| panic!("no packet past the cut")).expect_err("the file shrank");
        assert!(e.reason.starts_with("the file shrank from"), "{e:?}");
        assert_eq!(e.after_packet, packets);
        // Read through buffers (`--no-mmap`), it is a file cut short: every whole record before
        // the cut is handed out, and the one the cut runs through is reported.
        std::fs::write(f.path(), &bytes).unwrap();
        let run = Split::unmapped(f.path(), 2, CHUNK).expect("split");
        f.as_file().set_len(bytes.len() as u64 / 2).unwrap();
        let (chunks, end) = split_whole(&run);
        let (_, stopped_at, packets) = end.expect("the chunks end");
        let handed: u64 = chunks.iter().flatten().map(|s| s.places.iter().filter(|p| !p.learn()).count() as u64).sum();
        assert_eq!((handed, packets), (whole, whole), "{end:?}");
        assert_eq!(stopped_at, offsets[whole as usize], "{end:?}");
        let e = run.read_rest(|| false, |_| panic!("no packet past the cut")).expect_err("the file was cut");
        assert!(e.reason.contains("truncated"), "{e:?}");
        assert_eq!((e.after_packet, e.offset), (whole, stopped_at as u64));
    }

    #[test]
    fn every_record_is_handed_out_once_in_order_with_dns_answers_to_all() {
        let (bytes, offsets) = capture(12_000);
        assert!(bytes.len() > 8 * CHUNK, "{} bytes: too few chunks", bytes.len());
        let probes: [(&str, Prober); 3] = [("in place", fast), ("mixed", mixed), ("copied", copied)];
        for ((n, (how, probe)), window) in
            [2, 3].into_iter().flat_map(|n| probes.map(|p| (n, p))).zip([CHUNK, 2 * CHUNK].into_iter().cycle())
        {
            let (_f, run) = split_of(&bytes, n, window, probe);
            let (chunks, end) = split_whole(&run);
            assert_eq!(end, Some((chunks.len(), bytes.len(), offsets.len() as u64)), "n = {n}, {how}");
            let (mut seen, mut in_place) = (Vec::new(), 0);
            for (c, shares) in chunks.iter().enumerate() {
                let mut mine: Vec<(u64, usize)> = Vec::new();
                for (j, s) in shares.iter().enumerate() {
                    let data = s.chunk.bytes(run.mapped());
                    match &s.chunk.data {
                        // Where the kernel's copy runs at full speed (see `PageBuf`).
                        ChunkData::Copied(_) => {
                            assert_eq!(data.as_ptr() as usize % PageBuf::PAGE, 0, "chunk {c} is off its page")
                        }
                        ChunkData::Mapped(range) => {
                            assert_eq!(range.start, c * CHUNK, "chunk {c} in place elsewhere");
                            in_place += usize::from(j == 0);
                        }
                    }
                    for place in &s.places {
                        let (at, number, learn) = (place.offset(), place.number, place.learn());
                        // The frame after its record's header, as that header reads.
                        let record = &data[at - 16..at + place.len as usize];
                        let packet = run_packet(record, number);
                        assert_eq!(packet.data, place.packet(data).data, "chunk {c}: packet {number}");
                        assert_eq!(packet.wire_len, place.wire_len, "chunk {c}: packet {number}");
                        assert_eq!(packet.ts_micros, place.ts_micros, "chunk {c}: packet {number}");
                        assert_eq!(packet.ts_micros, number as i64 - 1, "chunk {c}: packet {number} is another's");
                        assert_eq!(c * CHUNK + at - 16, offsets[number as usize - 1], "chunk {c}: packet {number}");
                        let (owner, shared) = crate::pipeline::shard::owner(1, packet.data, n);
                        assert_eq!(learn, owner != j, "chunk {c}: packet {number} handed to {j}");
                        assert!(!learn || shared, "chunk {c}: packet {number} is not read by all");
                        if !learn {
                            mine.push((number, offsets[number as usize - 1]));
                        }
                    }
                    assert!(s.places.windows(2).all(|w| w[0].number < w[1].number), "out of order");
                }
                mine.sort();
                // The chunk's records are those that start in its bytes.
                assert!(mine.iter().all(|&(_, at)| at / CHUNK == c), "chunk {c}");
                seen.extend(mine.into_iter().map(|(k, _)| k));
            }
            assert_eq!(seen, (1..=offsets.len() as u64).collect::<Vec<_>>(), "n = {n}, {how}");
            // Chunks are read in place where their windows map cheaply.
            match how {
                "in place" => assert_eq!(in_place, chunks.len(), "n = {n}: chunks in place"),
                "mixed" => assert!(in_place > 2 && in_place < chunks.len() - 2, "n = {n}: {in_place} chunks in place"),
                _ => assert_eq!(in_place, 0, "n = {n}: chunks in place"),
            }
        }
        // Chunks far smaller than the longest records, which run across several of them (those
        // chunks hold no record start, and the chain must go on past them).
        let (small, _) = capture(1_500);
        for (n, chunk) in [(2, 4000), (3, 70_000)] {
            assert_eq!(check_split(&small, n, chunk), Some(small.len()), "n = {n}, chunk = {chunk}");
        }
    }

    #[test]
    fn a_worker_ahead_claims_for_both_within_the_lag() {
        let (bytes, _) = capture(300);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        // SAFETY: the test's own temporary file, not changed while mapped.
        let map = unsafe { memmap2::Mmap::map(f.as_file()).unwrap() };
        let Ok(run) = Split::new(map, f.path(), 2, CHUNK) else { panic!("not split") };
        let run = run.probed_by(8 * CHUNK, copied);
        let claims = |index, c| std::iter::from_fn(|| run.claim(index, c)).collect::<Vec<_>>();
        // In step: each worker claims up to SPLIT_AHEAD chunks per worker past its own, in
        // order, whoever gets there first.
        assert_eq!(claims(0, 0), (0..=SPLIT_AHEAD * 2).collect::<Vec<_>>());
        assert_eq!(claims(1, 0), Vec::<usize>::new());
        assert_eq!(claims(1, 1), vec![SPLIT_AHEAD * 2 + 1]);
        // Far ahead of worker 1 (at chunk 1), worker 0 claims for both, up to the lag.
        assert_eq!(claims(0, 40), (SPLIT_AHEAD * 2 + 2..=1 + SPLIT_LAG).collect::<Vec<_>>());
        // Worker 1 moves on to chunk 5, still behind what is claimed; worker 0 claims on.
        assert_eq!(claims(1, 5), Vec::<usize>::new());
        assert_eq!(claims(0, 40), (2 + SPLIT_LAG..=5 + SPLIT_LAG).collect::<Vec<_>>());
    }

    fn run_packet(record: &[u8], number: u64) -> capture::Packet<'_> {
        capture::Legacy::of(&capture_header()).unwrap().packet(record, number)
    }

    fn capture_header() -> Vec<u8> {
        PcapWriter::new(Vec::new(), 1).unwrap().into_inner()
    }

    #[test]
    fn the_chunks_stop_at_a_record_that_does_not_fit() {
        let (bytes, offsets) = capture(3_000);
        // Records at random, and those that start nearest each chunk boundary (including the
        // first record of the file and the one across its first boundary).
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut picks: Vec<usize> = (0..4).map(|_| rng.below(offsets.len() as u64) as usize).collect();
        for b in (0..bytes.len()).step_by(CHUNK).take(4) {
            let k = offsets.partition_point(|&at| at < b);
            picks.extend([k.saturating_sub(1), k.min(offsets.len() - 1)]);
        }
        for k in picks {
            let at = offsets[k];
            let mut bad = bytes.clone();
            bad[at + 8..at + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
            let (chunks, end) = split_all(&bad, 2);
            assert_eq!(end, Some((chunks.len(), at, k as u64)), "record {k} claims too much");
            let handed: usize = chunks.iter().flatten().map(|s| s.places.iter().filter(|p| !p.learn()).count()).sum();
            assert_eq!(handed, k, "record {k} claims too much");
            // Mapped or not, the walk after the chunks reports it as the whole file's reader does.
            assert_eq!(check_split(&bad, 2, CHUNK), Some(at), "record {k} claims too much");
            // Cut short in the middle of the record's header, and of its frame.
            for cut in [at + 9, at + 20] {
                let (chunks, end) = split_all(&bytes[..cut.min(bytes.len())], 2);
                assert_eq!(end, Some((chunks.len(), at, k as u64)), "cut at {cut}, in record {k}");
                assert_eq!(check_split(&bytes[..cut.min(bytes.len())], 3, CHUNK), Some(at), "cut at {cut}");
            }
        }
    }
}
