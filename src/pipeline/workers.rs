//! `scan --workers N`: N engines, each on its own thread, sharded by the symmetric flow hash
//! of [`super::shard`] as the live sensor shards them.
//!
//! Every worker sees every input, in order, and keeps only its share:
//! - a memory-mapped capture is walked by every worker in place (nothing is copied, and no
//!   thread stands between the file and the engines); a compressed capture or standard input
//!   is read once, on the calling thread, into batches that every worker shares;
//! - a flow log is parsed by every worker, each keeping the records of its address pairs;
//! - a packet a worker does not own but which carries a DNS answer is still read, only to
//!   learn what flagged names resolved to, so `dns.resolved` holds whichever worker the later
//!   connection lands on, at the same point in the traffic as with one engine.
//!
//! Alerts go through one writer under a lock (they are few), so their order across
//! connections is not the packets' order; within a connection it is.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

use super::engine::{Engine, Options, Sink};
use super::shard::record_worker;
use super::{note_read_error, parse_text_reporting, Backend, Bytes};
use crate::matcher::Matcher;
use crate::report::evidence::Span;
use crate::report::summary::Stats;
use crate::report::{Alert, FlowEvent, Writer};
use crate::source::capture::{self, Packet};
use crate::source::flowlog;

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
    Frames(Arc<Batch>),
}

type Outcome = (Stats, Vec<Span>, usize);

/// The workers of one scan.
pub struct Pool<'scope> {
    senders: Vec<SyncSender<Job>>,
    handles: Vec<ScopedJoinHandle<'scope, Outcome>>,
    /// Bytes of mapped captures the first worker has walked, for the progress bar.
    walked: Arc<AtomicU64>,
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
        for index in 0..n {
            let (tx, rx) = sync_channel(QUEUE);
            senders.push(tx);
            let walked = walked.clone();
            let opts = opts.clone();
            handles.push(scope.spawn(move || work(index, n, m, opts, rx, WorkerSink(out), &walked)));
        }
        Pool { senders, handles, walked }
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
    fn mapped(&mut self, map: memmap2::Mmap, name: &Arc<str>, _: &mut dyn FnMut(u64)) {
        let readers = self.senders.len();
        self.broadcast(Job::Mapped(Arc::new(capture::SharedMap::new(map, readers)), name.clone()));
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
        while !self.handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
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
