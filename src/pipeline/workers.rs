//! `scan --workers N`: N engines, each on its own thread, sharded by the symmetric flow hash
//! of [`super::shard`] as the live sensor shards them.
//!
//! Every worker sees every input, in order, and keeps only its share:
//! - a classic pcap or pcapng file is cut into chunks that the workers claim in order to read
//!   and walk, each handing every worker the places of its packets (see [`Split`]), so every
//!   record is read once; where the chunks stop (a pcapng block they do not take, a record that
//!   does not fit), and in other capture files, every worker walks the mapped file in place; a
//!   compressed capture or standard input is read once, on the calling thread, into batches
//!   that every worker shares;
//! - a flow log is parsed by every worker, each keeping the records of its address pairs;
//! - a packet a worker does not own but which carries a DNS answer is still read, only to
//!   learn what flagged names resolved to, so `dns.resolved` holds whichever worker the later
//!   connection lands on, at the same point in the traffic as with one engine.
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
#[cfg(unix)]
use crate::source::pread::read_at_most;
use crate::source::pread::PageBuf;

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

/// A classic pcap or pcapng shared out by chunks. Chunk `c` (the records that start in bytes
/// `c * CHUNK..(c + 1) * CHUNK`) is read by the worker that claims it into its own buffer,
/// walked once, and split: each worker is handed the places of its packets in that buffer, and
/// of the DNS answers every worker learns from. Each worker then inspects its shares of the
/// chunks in file order. So every record is read and walked once, by one worker; when every
/// worker walked the whole mapped file, each paid for the others' packets too, and two workers
/// were only 1.45 times as fast as one.
///
/// Chunks are claimed in order by whichever worker reaches them first, a few ahead of the one
/// it inspects: a worker running ahead (its shares were lighter, or the other was descheduled)
/// splits for both rather than wait for the other to come round to its turn.
///
/// Where a chunk's first record starts is known only when the chunk before it has been walked
/// (a record may run on into the next chunk; its owner reads those bytes too). That walk is a
/// hop over the record headers of a buffer just read, a few microseconds per chunk, so the
/// chain of chunk starts runs well ahead of the inspection.
pub struct Split {
    file: std::fs::File,
    /// The same file mapped, for the records after the chunks stop (see `SplitState::end`).
    map: memmap2::Mmap,
    /// The longest record the chunks take ([`capture::Layout::max_record`]): a chunk's buffer
    /// holds one past the chunk's end.
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
}

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

/// A record handed to a worker: its offset in the chunk's buffer, its packet number, and whether
/// the worker only learns from it (a DNS answer on another worker's connection).
type Place = (u32, u64, bool);

/// One worker's share of one chunk.
struct Share {
    chunk: Arc<ChunkBuf>,
    places: Vec<Place>,
    /// The chunk's last packet time, which the worker's clock moves to after its share.
    last_ts: Option<i64>,
    /// The layout at the chunk's end, which reads every packet in it (a pcapng's interfaces
    /// are only ever added to within a section).
    layout: capture::Layout,
}

/// A chunk's bytes as its owner read them: from the chunk's first byte on, through the end of
/// the last record that starts in it.
struct ChunkBuf {
    data: PageBuf,
    pool: Arc<Mutex<Vec<PageBuf>>>,
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(std::mem::take(&mut self.data));
        }
    }
}

/// A chunk read by its owner, waiting for the chain to say where its first record starts.
struct Pending {
    chunk: usize,
    buf: PageBuf,
    filled: usize,
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
        let max_record = layout.max_record();
        let state = SplitState { starts: vec![(first, 0, layout)], ..Default::default() };
        Ok(Split {
            file,
            map,
            max_record,
            len,
            n,
            chunk: chunk.max(1),
            state: Mutex::new(state),
            changed: Condvar::new(),
            abandoned: AtomicBool::new(false),
            claimed: AtomicUsize::new(0),
            inspecting: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            pools: (0..n).map(|_| Default::default()).collect(),
        })
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

    /// The packet `number` whose record starts at `at` of a chunk's bytes, one the hop has
    /// taken as a packet (so its length was checked), read by the layout at the chunk's end.
    #[inline(always)]
    fn packet<'a, R: Records>(records: &R, data: &'a [u8], at: usize, number: u64) -> capture::Packet<'a> {
        let (len, _) = records.taken(&data[at..at + records.head()]);
        records.packet(&data[at..at + len], number)
    }

    /// The hop over chunk `base`'s buffer: the whole records that start in the chunk, from `start`
    /// on, reading on past its end for the last one. It stops early at a record that does not
    /// fit (or the end of the file), and at a pcapng block the chunks do not take. Returns
    /// where it stopped, the packets it passed, and whether it stopped early.
    #[inline]
    fn hop<R: Records + Clone>(
        &self,
        records: &mut Cow<'_, R>,
        base: usize,
        buf: &mut [u8],
        start: usize,
        filled: &mut usize,
    ) -> (usize, u64, bool) {
        let (mut at, mut count) = (start, 0u64);
        let head = records.head();
        while at < base + self.chunk {
            let off = at - base;
            if off + head > *filled {
                *filled = self.fill(base, buf, *filled, off + head);
            }
            let Some(len) = buf.get(off..off + head).filter(|_| off + head <= *filled).and_then(|h| records.len(h))
            else {
                return (at, count, true);
            };
            if off + len > *filled {
                *filled = self.fill(base, buf, *filled, off + len);
                if off + len > *filled {
                    return (at, count, true);
                }
            }
            let record = &buf[off..off + len];
            match records.take(record) {
                Some(Take::Packet) => count += 1,
                Some(Take::Other) => {}
                Some(Take::Grows) => records.to_mut().grow(record),
                None => return (at, count, true),
            }
            at += len;
        }
        (at, count, false)
    }

    /// The split of the `count` packets the hop passed in `buf[within]` (the first of them
    /// packet `before + 1`): each goes to the worker of its connection, and DNS answers to every
    /// worker. Returns each worker's places, and the last packet's time.
    #[inline]
    fn owners<R: Records>(
        &self,
        records: &R,
        buf: &[u8],
        within: std::ops::Range<usize>,
        before: u64,
        count: u64,
    ) -> (Vec<Vec<Place>>, Option<i64>) {
        // Sized for an even split with room to spare: growing them cost 3 % of a run.
        let room = count as usize / self.n + count as usize / 8 + 8;
        let mut shares: Vec<Vec<Place>> = (0..self.n).map(|_| Vec::with_capacity(room)).collect();
        let (mut off, mut number, mut last_ts) = (within.start, before, None);
        let head = records.head();
        while off < within.end {
            let (len, packet) = records.taken(&buf[off..off + head]);
            if packet {
                number += 1;
                let p = records.packet(&buf[off..off + len], number);
                let (w, dns) = super::shard::owner(p.linktype, p.data, self.n);
                shares[w].push((off as u32, number, false));
                if dns {
                    for (j, s) in shares.iter_mut().enumerate() {
                        if j != w {
                            s.push((off as u32, number, true));
                        }
                    }
                }
                last_ts = Some(p.ts_micros);
            }
            off += len;
        }
        (shares, last_ts)
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
        if offset >= self.len {
            return Ok(capture::FileStats { packets, bytes: 0 });
        }
        // The chunks stop where a file cut short under them ends: walking its mapping on
        // would be a SIGBUS.
        if let Some(e) = capture::shrunk(&self.file, self.len, offset, packets) {
            return Err(e);
        }
        capture::read_mapped_from(&self.map, &layout, offset, packets, stop, sink)
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
            let buf = pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
            let mut buf = buf.with_len(self.chunk + self.max_record);
            let filled = if base < self.len { self.fill(base, buf.bytes_mut(), 0, self.chunk) } else { 0 };
            *pending = Some(Pending { chunk: c, buf, filled });
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
        let Some(Pending { buf: mut page, mut filled, .. }) = pending.take() else { return Step::Wait };
        let buf = page.bytes_mut();
        // The section is copied only if the chunk adds to it.
        let (at, count, stopped) = match &layout {
            capture::Layout::Legacy(l) => self.hop(&mut Cow::Borrowed(l), base, buf, start, &mut filled),
            capture::Layout::Ng(p) => {
                let mut section = Cow::Borrowed(&**p);
                let hop = self.hop(&mut section, base, buf, start, &mut filled);
                if let Cow::Owned(grown) = section {
                    layout = capture::Layout::Ng(Arc::new(grown));
                }
                hop
            }
        };
        // No record may start in a chunk (one longer than the chunk runs across it): its shares
        // are empty, and the chain goes on.
        let ended = stopped || at >= self.len;
        let empty = at == start;
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
        });
        if empty && ended {
            pool.lock().map(|mut p| p.push(page)).ok();
            return Step::End;
        }
        // The split: a second pass over the records, on bytes just read: the chain was
        // published first, so the owner of the next chunk need not wait for this one's split.
        let (shares, last_ts) = match &layout {
            capture::Layout::Legacy(l) => self.owners(l, buf, start - base..at - base, before, count),
            capture::Layout::Ng(p) => self.owners(&**p, buf, start - base..at - base, before, count),
        };
        walked.fetch_add((at - start) as u64, Relaxed);
        let chunk = Arc::new(ChunkBuf { data: page, pool: pool.clone() });
        self.publish(|st| {
            for (j, places) in shares.into_iter().enumerate() {
                st.shares.insert((c, j), Share { chunk: chunk.clone(), places, last_ts, layout: layout.clone() });
            }
        });
        Step::Done
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
    let mut split_ahead = |c: usize, done: &mut bool| {
        while !*done {
            let Some(k) = pending.as_ref().map(|p| p.chunk).or_else(|| run.claim(index, c)) else { break };
            match run.try_split(k, index, &mut pending, walked) {
                Step::Done => {}
                Step::Wait => break,
                Step::End => *done = true,
            }
        }
    };
    let mut c = 0;
    loop {
        split_ahead(c, &mut done);
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
                split_ahead(c, &mut done);
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
        let data = share.chunk.data.bytes();
        let done = match &share.layout {
            capture::Layout::Legacy(l) => inspect_share(engine, l, data, &share.places),
            capture::Layout::Ng(p) => inspect_share(engine, &**p, data, &share.places),
        };
        if !done {
            return Ok(Default::default());
        }
        if let Some(ts) = share.last_ts {
            engine.advance(ts);
        }
        c += 1;
    }
    leave.1 = true;
    run.read_rest(super::stopped, |p| route(engine, &p, index, n))
}

/// Inspects a worker's share of a chunk (the records at `places` of `data`), in order; false if
/// the scan was stopped.
#[inline]
fn inspect_share<S: Sink, R: Records>(engine: &mut Engine<'_, S>, records: &R, data: &[u8], places: &[Place]) -> bool {
    for (i, &(at, number, learn)) in places.iter().enumerate() {
        if super::stopped() {
            return false;
        }
        // The share says which records come next: start loading them, and the connections of
        // the nearer ones, while this one is inspected.
        if let Some(&(ahead, _, _)) = places.get(i + PREFETCH_AHEAD) {
            capture::prefetch_record(data, ahead as usize);
        }
        if let Some(&(ahead, number, false)) = places.get(i + capture::LOOK_AHEAD) {
            let p = Split::packet(records, data, ahead as usize, number);
            engine.hint(p.linktype, p.data, number);
        }
        let p = Split::packet(records, data, at as usize, number);
        if learn {
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

/// Inspects a frame if this worker owns it; otherwise only keeps time by it, and learns from
/// it if it is a DNS answer.
#[inline]
fn route<S: Sink>(engine: &mut Engine<'_, S>, p: &Packet<'_>, index: usize, n: usize) {
    if super::stopped() {
        return;
    }
    match super::shard::route(p.linktype, p.data, n, index) {
        (true, _) => engine.packet(p),
        (false, dns) => {
            engine.advance(p.ts_micros);
            if dns {
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
/// that goes on from there reads the rest, and ends (or fails) where that reader does. Returns
/// the byte where the chunks stopped; `None` for a file a parallel scan does not split.
#[doc(hidden)]
pub fn check_split(data: &[u8], n: usize, chunk: usize) -> Option<usize> {
    let mut f = tempfile::NamedTempFile::new().ok()?;
    if std::io::Write::write_all(&mut f, data).is_err() || data.is_empty() {
        return None;
    }
    // SAFETY: a temporary file of this function's own, not changed while mapped.
    let map = unsafe { memmap2::Mmap::map(f.as_file()) }.ok()?;
    let run = Split::new(map, f.path(), n, chunk).ok()?;
    let (chunks, end) = split_whole(&run);
    let mut handed = Vec::new();
    for (c, shares) in chunks.iter().enumerate() {
        let mut mine = Vec::new();
        for (j, share) in shares.iter().enumerate() {
            for &(at, number, learn) in &share.places {
                let p = match &share.layout {
                    capture::Layout::Legacy(l) => Split::packet(l, share.chunk.data.bytes(), at as usize, number),
                    capture::Layout::Ng(r) => Split::packet(&**r, share.chunk.data.bytes(), at as usize, number),
                };
                let (owner, dns) = super::shard::owner(p.linktype, p.data, n);
                assert_eq!(learn, owner != j, "chunk {c}: packet {number} handed to worker {j}, owned by {owner}");
                assert!(!learn || dns, "chunk {c}: packet {number} handed to learn from is no DNS answer");
                if !learn {
                    mine.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec()));
                }
            }
        }
        mine.sort_by_key(|m| m.0);
        handed.extend(mine);
    }
    let (_, stopped_at, before) = end.expect("the chunks end");
    assert_eq!(handed.len() as u64, before, "the chunks count what they handed out");
    let rest =
        run.read_rest(|| false, |p| handed.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec())));
    let mut read = Vec::new();
    let res =
        capture::read_slice(data, |p| read.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec())));
    assert!(handed == read, "the chunks and the walk after them disagree with the in-place reader");
    let outcome = |r: Result<capture::FileStats, capture::ReadError>| {
        r.map(|s| s.packets).map_err(|e| (e.after_packet, e.offset, e.reason))
    };
    assert_eq!(outcome(rest), outcome(res), "the chunks and the walk after them end differently");
    Some(stopped_at)
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

    /// A split of `bytes` written to a temporary file (returned too: the split maps it).
    fn split_of(bytes: &[u8], n: usize) -> (tempfile::NamedTempFile, Split) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        // SAFETY: the test's own temporary file, changed while mapped only where a test looks
        // for that.
        let map = unsafe { memmap2::Mmap::map(f.as_file()).unwrap() };
        let Ok(run) = Split::new(map, f.path(), n, CHUNK) else { panic!("not split") };
        (f, run)
    }

    /// Splits the file whole, chunk by chunk as its owners would; every share, and the end.
    fn split_all(bytes: &[u8], n: usize) -> (Vec<Vec<Share>>, Option<ChunksEnd>) {
        split_whole(&split_of(bytes, n).1)
    }

    /// A file cut to half its length after it was mapped: the chunks stop at the record cut
    /// short, and the mapped walk after them ends with an error saying so, not with SIGBUS.
    #[test]
    fn a_file_that_shrinks_under_the_chunks_ends_with_an_error() {
        let (bytes, offsets) = capture(6_000);
        let (f, run) = split_of(&bytes, 2);
        f.as_file().set_len(bytes.len() as u64 / 2).unwrap();
        let (_, end) = split_whole(&run);
        let (_, stopped_at, packets) = end.expect("the chunks end");
        let whole = offsets.iter().filter(|&&o| o < bytes.len() / 2).count() as u64 - 1;
        assert!(stopped_at < bytes.len() / 2 && packets >= whole, "{end:?}");
        let e = run.read_rest(|| false, |_| panic!("no packet past the cut")).expect_err("the file shrank");
        assert!(e.reason.starts_with("the file shrank from"), "{e:?}");
        assert_eq!(e.after_packet, packets);
    }

    #[test]
    fn every_record_is_handed_out_once_in_order_with_dns_answers_to_all() {
        let (bytes, offsets) = capture(12_000);
        assert!(bytes.len() > 8 * CHUNK, "{} bytes: too few chunks", bytes.len());
        for n in [2, 3] {
            let (chunks, end) = split_all(&bytes, n);
            assert_eq!(end, Some((chunks.len(), bytes.len(), offsets.len() as u64)), "n = {n}");
            let mut seen = Vec::new();
            for (c, shares) in chunks.iter().enumerate() {
                let mut mine: Vec<(u64, usize)> = Vec::new();
                for (j, s) in shares.iter().enumerate() {
                    // Where the kernel's copy runs at full speed (see `PageBuf`).
                    assert_eq!(s.chunk.data.bytes().as_ptr() as usize % PageBuf::PAGE, 0, "chunk {c} is off its page");
                    for &(at, number, learn) in &s.places {
                        let p = s.chunk.data.bytes().get(at as usize..).unwrap();
                        let record = &p[..16 + u32::from_le_bytes(p[8..12].try_into().unwrap()) as usize];
                        let packet = run_packet(record, number);
                        assert_eq!(packet.ts_micros, number as i64 - 1, "chunk {c}: packet {number} is another's");
                        let (owner, dns) = crate::pipeline::shard::owner(1, packet.data, n);
                        assert_eq!(learn, owner != j, "chunk {c}: packet {number} handed to {j}");
                        assert!(!learn || dns, "chunk {c}: packet {number} is no DNS answer");
                        if !learn {
                            mine.push((number, offsets[number as usize - 1]));
                        }
                    }
                    assert!(s.places.windows(2).all(|w| w[0].1 < w[1].1), "out of order");
                }
                mine.sort();
                // The chunk's records are those that start in its bytes.
                assert!(mine.iter().all(|&(_, at)| at / CHUNK == c), "chunk {c}");
                seen.extend(mine.into_iter().map(|(k, _)| k));
            }
            assert_eq!(seen, (1..=offsets.len() as u64).collect::<Vec<_>>(), "n = {n}");
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
            let handed: usize = chunks.iter().flatten().map(|s| s.places.iter().filter(|p| !p.2).count()).sum();
            assert_eq!(handed, k, "record {k} claims too much");
            // Cut short in the middle of the record's header, and of its frame.
            for cut in [at + 9, at + 20] {
                let (chunks, end) = split_all(&bytes[..cut.min(bytes.len())], 2);
                assert_eq!(end, Some((chunks.len(), at, k as u64)), "cut at {cut}, in record {k}");
            }
        }
    }
}
