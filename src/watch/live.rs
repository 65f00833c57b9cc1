//! The live sensor's threads: readers (libpcap), workers (engines; inline, each on a netfilter
//! queue of its own), the alert writer, and the main thread's control loop (signals, reloads,
//! statistics).

use std::cell::Cell;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::metrics::{Metrics, Snapshot};
use super::{sys, WatchArgs};
use crate::cli::SetArgs;
use crate::indicators::{load, IndicatorSet, Severity};
use crate::matcher::Matcher;
use crate::pipeline::engine::{Engine, Options, Sink};
use crate::pipeline::shard::owner;
use crate::report::summary::Stats;
use crate::report::{Alert, FlowEvent, Format, Writer};
use crate::source::capture::Packet;
use crate::track::dnscache::Resolved;

macro_rules! log {
    ($($t:tt)*) => { eprintln!("iocmatch: {}", format_args!($($t)*)) };
}

/// Frames a reader hands to a worker in one message.
const BATCH: usize = 64;
/// A partial batch waits at most this long in the reader.
const BATCH_WAIT: Duration = Duration::from_millis(20);
/// libpcap read timeout: how often a quiet reader looks at the stop flag.
const READ_TIMEOUT_MS: i32 = 100;

/// Frames copied out of libpcap's buffer.
struct Batch {
    linktype: u32,
    data: Vec<u8>,
    /// (offset, length, wire length, timestamp µs, packet number, learn only)
    frames: Vec<(u32, u32, u32, i64, u64, bool)>,
}

impl Batch {
    fn new(linktype: u32) -> Batch {
        Batch { linktype, data: Vec::with_capacity(BATCH * 256), frames: Vec::with_capacity(BATCH) }
    }
}

enum ToWorker {
    Frames(Batch),
    /// An address another worker's DNS traffic resolved for a flagged name, with the set
    /// generation its indicator ids belong to.
    Resolved(u64, IpAddr, Resolved),
}

enum ToWriter {
    Alert(Box<Alert>),
    Flow(Box<FlowEvent>),
    Reopen,
}

/// The compiled set in force, and its generation (bumped on every swap).
struct Sets {
    current: ArcSwap<Matcher>,
    generation: AtomicU64,
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Loads the sets. At start a file that fails is skipped (logged) unless every file failed; on
/// reload any failure keeps the old set.
fn load_sets(a: &SetArgs, startup: bool) -> Result<Matcher, String> {
    let opts = load::Options { no_default_set: a.no_default_set, strict: a.strict, map_compiled: true };
    let mut set = load::load_all(&[], &opts).map_err(|e| e.to_string())?;
    let mut failed = Vec::new();
    for p in &a.indicators {
        if let Err(e) = load::load_path(p, &mut set, &opts) {
            failed.push(e.to_string());
        }
    }
    if !failed.is_empty() && (!startup || failed.len() == a.indicators.len()) {
        let all = if failed.len() == a.indicators.len() { "every indicator file failed to load: " } else { "" };
        return Err(format!("{all}{}", failed.join("; ")));
    }
    for f in &failed {
        log!("warning: skipped: {f}");
    }
    let parts = crate::matcher::image::resolve(&mut set, &opts).map_err(|e| e.to_string())?;
    report_problems(&set);
    let mut m = Matcher::from_loaded(set, parts);
    if m.is_empty() {
        return Err("no indicators loaded: give --indicators, or drop --no-default-set".into());
    }
    if !a.allow.is_empty() {
        let opts = load::Options { no_default_set: true, strict: a.strict, ..Default::default() };
        let allow = load::load_all(&a.allow, &opts).map_err(|e| format!("--allow: {e}"))?;
        m = m.with_allowlist(allow);
    }
    Ok(m)
}

fn report_problems(set: &IndicatorSet) {
    let errs: Vec<_> = set.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
    for d in errs.iter().take(20) {
        log!("{d}");
    }
    if errs.len() > 20 {
        log!("... and {} more bad indicator records", errs.len() - 20);
    }
    if set.skipped > 0 {
        log!("{} indicator record(s) skipped; the rest loaded", set.skipped);
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// Counts what reaches the file, for size rotation.
struct Counted {
    inner: Box<dyn Write + Send>,
    n: Arc<AtomicU64>,
}

impl Write for Counted {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(b)?;
        self.n.fetch_add(k as u64, Relaxed);
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn open_output(path: Option<&Path>, syslog: Option<&str>, n: &Arc<AtomicU64>) -> Result<Box<dyn Write + Send>, String> {
    if let Some(dest) = syslog {
        return Ok(Box::new(crate::report::syslog::Syslog::open(dest)?));
    }
    Ok(match path {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .map_err(|e| format!("{}: cannot open: {e}", p.display()))?;
            n.store(f.metadata().map(|m| m.len()).unwrap_or(0), Relaxed);
            Box::new(Counted { inner: Box::new(f), n: n.clone() })
        }
        None => Box::new(std::io::stdout()),
    })
}

/// FILE -> FILE.1 -> FILE.2 ... (the oldest past `keep` is removed).
fn rotate(path: &Path, keep: u32) {
    let numbered = |i: u32| PathBuf::from(format!("{}.{i}", path.display()));
    let _ = std::fs::remove_file(numbered(keep.max(1)));
    for i in (1..keep.max(1)).rev() {
        let _ = std::fs::rename(numbered(i), numbered(i + 1));
    }
    if let Err(e) = std::fs::rename(path, numbered(1)) {
        log!("rotating {}: {e}", path.display());
    }
}

struct WriterCfg {
    format: Format,
    path: Option<PathBuf>,
    syslog: Option<String>,
    rotate_size: u64,
    rotate_keep: u32,
}

fn writer_thread(
    cfg: WriterCfg,
    first: Box<dyn Write + Send>,
    rx: Receiver<ToWriter>,
    m: Arc<Metrics>,
    size: Arc<AtomicU64>,
) {
    let mut w = Writer::new(cfg.format, first);
    let fail = |e: std::io::Error| {
        if m.output_errors.fetch_add(1, Relaxed) == 0 {
            log!("writing alerts: {e}");
        }
    };
    let reopen = |w: &mut Writer, why: &str| {
        if let Err(e) = w.finish() {
            fail(e);
        }
        if why == "rotate" {
            if let Some(p) = &cfg.path {
                rotate(p, cfg.rotate_keep);
            }
        }
        match open_output(cfg.path.as_deref(), cfg.syslog.as_deref(), &size) {
            Ok(out) => *w = Writer::new(cfg.format, out),
            Err(e) => log!("{why}: {e}; still writing to the old file"),
        }
    };
    loop {
        let msg = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut next = msg;
        while let Some(msg) = next {
            let r = match msg {
                ToWriter::Alert(a) => {
                    m.alerts_written.fetch_add(1, Relaxed);
                    w.alert(&a)
                }
                ToWriter::Flow(f) => w.flow(&f),
                ToWriter::Reopen => {
                    reopen(&mut w, "reopening the alert file");
                    Ok(())
                }
            };
            if let Err(e) = r {
                fail(e);
            }
            next = rx.try_recv().ok();
        }
        // The queue ran dry: make what we have visible.
        if let Err(e) = w.flush() {
            fail(e);
        }
        if cfg.rotate_size > 0 && cfg.path.is_some() && size.load(Relaxed) >= cfg.rotate_size {
            reopen(&mut w, "rotate");
        }
    }
    if let Err(e) = w.finish() {
        fail(e);
    }
}

// ---------------------------------------------------------------------------------------------
// Workers

struct WorkerSink {
    out: SyncSender<ToWriter>,
    /// Other workers, to share DNS-derived addresses with (the own slot is `None`).
    peers: Vec<Option<SyncSender<ToWorker>>>,
    generation: Rc<Cell<u64>>,
    shared_dropped: u64,
}

impl Sink for WorkerSink {
    fn alert(&mut self, a: Alert) {
        // Blocks when the writer is behind: the worker's queue then fills and the reader counts
        // drops; the reader itself never waits.
        let _ = self.out.send(ToWriter::Alert(Box::new(a)));
    }
    fn flow(&mut self, f: FlowEvent) {
        let _ = self.out.send(ToWriter::Flow(Box::new(f)));
    }
    fn resolved(&mut self, ip: IpAddr, r: &Resolved) {
        for p in self.peers.iter().flatten() {
            if p.try_send(ToWorker::Resolved(self.generation.get(), ip, r.clone())).is_err() {
                self.shared_dropped += 1;
            }
        }
    }
}

struct WorkerCtx {
    index: usize,
    rx: Receiver<ToWorker>,
    peers: Vec<Option<SyncSender<ToWorker>>>,
    out: SyncSender<ToWriter>,
    sets: Arc<Sets>,
    metrics: Arc<Metrics>,
    opts: Options,
    label: Arc<str>,
    /// Set once every reader has stopped: the worker ends when its queue is empty (workers
    /// hold each other's senders, so the channel alone never says so).
    readers_done: Arc<AtomicBool>,
}

/// A worker's engine, and the generation of the set it matches against.
struct Running {
    engine: Engine<'static, WorkerSink>,
    generation: Rc<Cell<u64>>,
}

impl Running {
    fn start(c: &WorkerCtx) -> Running {
        let generation = Rc::new(Cell::new(c.sets.generation.load(SeqCst)));
        let sink = WorkerSink {
            out: c.out.clone(),
            peers: c.peers.clone(),
            generation: generation.clone(),
            shared_dropped: 0,
        };
        let mut engine = Engine::shared(c.sets.current.load_full(), c.opts.clone(), sink);
        engine.begin_file(c.label.clone());
        Running { engine, generation }
    }

    /// Takes a reloaded set, if there is one: between packets, never within one.
    fn reload(&mut self, sets: &Sets) {
        let g = sets.generation.load(SeqCst);
        if g != self.generation.get() {
            self.engine.set_matcher(sets.current.load_full());
            self.generation.set(g);
        }
    }

    /// An address another worker learned from a DNS answer, unless the set changed since.
    fn learn(&mut self, g: u64, ip: IpAddr, r: Resolved) {
        if g == self.generation.get() {
            self.engine.learn_resolved(ip, r);
        }
    }

    fn publish(&self, w: &super::metrics::Worker) {
        publish(w, self.engine.stats());
    }

    fn finish(self, w: &super::metrics::Worker) -> Stats {
        let (stats, sink, _) = self.engine.finish();
        publish(w, &stats);
        w.shared_dropped.store(sink.shared_dropped, Relaxed);
        stats
    }
}

fn publish(w: &super::metrics::Worker, s: &Stats) {
    w.packets.store(s.packets, Relaxed);
    w.bytes.store(s.bytes, Relaxed);
    w.conns.store(s.conns, Relaxed);
    w.conns_evicted.store(s.conns_evicted, Relaxed);
    w.alerts.store(s.alerts, Relaxed);
    w.dns_derived.store(s.resolved_derived, Relaxed);
    w.blocked.store(s.blocked, Relaxed);
}

fn worker(c: WorkerCtx) -> Stats {
    let mut run = Running::start(&c);
    // Capture workers are given their frames by `shard::owner`, which also gives each worker
    // the fragments of datagrams that may hold another's connection; inline workers each own
    // what their queue holds.
    run.engine.set_share(c.index, c.peers.len());
    let mine = &c.metrics.workers[c.index];
    loop {
        let msg = c.rx.recv_timeout(Duration::from_millis(200));
        // After the wait, so that a frame read after a reload is matched against the new set.
        run.reload(&c.sets);
        match msg {
            Ok(ToWorker::Frames(b)) => {
                for &(off, len, wire, ts, number, learn) in &b.frames {
                    let data = &b.data[off as usize..(off + len) as usize];
                    let p = Packet { linktype: b.linktype, ts_micros: ts, data, wire_len: wire, number };
                    if learn {
                        run.engine.learn_packet(&p);
                    } else {
                        run.engine.packet(&p);
                    }
                }
                run.publish(mine);
            }
            Ok(ToWorker::Resolved(g, ip, r)) => run.learn(g, ip, r),
            Err(RecvTimeoutError::Timeout) if c.readers_done.load(SeqCst) => break,
            Err(RecvTimeoutError::Timeout) => run.publish(mine),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    run.finish(mine)
}

/// An inline worker: reads its netfilter queue, inspects each packet as a captured frame, and
/// gives it its verdict: accepted, or dropped with `block` when its connection has raised an
/// alert. Between packets it learns what the other workers share and takes a reloaded set.
///
/// The queue is read without blocking, so that the stop flag is seen on a quiet link: after a
/// run of empty reads the worker sleeps 200 µs between them, which is the most a packet waits
/// after a quiet spell. The kernel accepts packets itself when the queue is full (fail-open),
/// and the rule's `--queue-bypass` does when no worker is bound: a sensor that falls behind or
/// stops never cuts the network.
fn inline_worker(c: WorkerCtx, mut q: nfq::Queue, num: u16, block: bool, stop: Arc<AtomicBool>) -> Stats {
    let mut run = Running::start(&c);
    let mine = &c.metrics.workers[c.index];
    let (mut number, mut empty) = (0u64, 0u32);
    while !stop.load(Relaxed) {
        while let Ok(msg) = c.rx.try_recv() {
            if let ToWorker::Resolved(g, ip, r) = msg {
                run.learn(g, ip, r);
            }
        }
        run.reload(&c.sets);
        let msg = match q.recv() {
            Ok(msg) => msg,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if empty == 0 {
                    run.publish(mine);
                }
                empty = empty.saturating_add(1);
                if empty > 64 {
                    std::thread::sleep(Duration::from_micros(200));
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log!("nfqueue {num}: {e}; this worker stops (the rule's --queue-bypass lets packets through)");
                break;
            }
        };
        empty = 0;
        number += 1;
        judge(&mut run, &mut q, msg, number, block, num);
        if number % 256 == 0 {
            run.publish(mine);
        }
    }
    // What is queued but not read yet would be dropped by the kernel with the queue: judge it
    // (as much as the queue holds, so that traffic that keeps coming cannot hold the stop).
    for _ in 0..QUEUE_MAX {
        let Ok(msg) = q.recv() else { break };
        number += 1;
        judge(&mut run, &mut q, msg, number, block, num);
    }
    let _ = q.unbind(num);
    run.finish(mine)
}

/// Packets a netfilter queue holds before the kernel lets more through uninspected.
const QUEUE_MAX: u32 = 8192;

/// Inspects a queued packet (packet `number` of queue `num`) and gives it its verdict.
fn judge(run: &mut Running, q: &mut nfq::Queue, mut msg: nfq::Message, number: u64, block: bool, num: u16) {
    let ts = msg
        .get_timestamp()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(crate::time::now_micros, |d| d.as_micros() as i64);
    let data = msg.get_payload();
    let wire = u32::try_from(msg.get_original_len()).unwrap_or(u32::MAX).max(data.len() as u32);
    let p = Packet { linktype: crate::decode::packet::LINKTYPE_RAW, ts_micros: ts, data, wire_len: wire, number };
    run.engine.packet(&p);
    let drop = block && run.engine.flagged(&p);
    if drop {
        run.engine.stats_mut().blocked += 1;
    }
    msg.set_verdict(if drop { nfq::Verdict::Drop } else { nfq::Verdict::Accept });
    if let Err(e) = q.verdict(msg) {
        log!("nfqueue {num}: verdict: {e}");
    }
}

/// Opens and binds netfilter queue `num`, failing open (see [`inline_worker`]).
fn open_queue(num: u16) -> Result<nfq::Queue, String> {
    let why = |e: std::io::Error| {
        format!(
            "nfqueue {num}: {e} (needs root or CAP_NET_ADMIN, a kernel with NFQUEUE, and no other reader bound to it)"
        )
    };
    let mut q = nfq::Queue::open().map_err(why)?;
    q.bind(num).map_err(why)?;
    q.set_fail_open(num, true).map_err(why)?;
    q.set_queue_max_len(num, QUEUE_MAX).map_err(why)?;
    q.set_nonblocking(true);
    Ok(q)
}

// ---------------------------------------------------------------------------------------------
// Readers

fn reader(
    index: usize,
    mut cap: pcap::Capture<pcap::Active>,
    to: Vec<SyncSender<ToWorker>>,
    stop: Arc<AtomicBool>,
    m: Arc<Metrics>,
) -> Result<(), String> {
    let me = &m.ifaces[index];
    let linktype = cap.get_datalink().0 as u32;
    let n = to.len();
    let mut batches: Vec<Batch> = (0..n).map(|_| Batch::new(linktype)).collect();
    let mut oldest = Instant::now();
    let mut last_stats = Instant::now();
    let mut number = 0u64;
    let send = |w: usize, batches: &mut Vec<Batch>| {
        let b = std::mem::replace(&mut batches[w], Batch::new(linktype));
        let k = b.frames.len() as u64;
        match to[w].try_send(ToWorker::Frames(b)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if me.queue_dropped.fetch_add(k, Relaxed) == 0 {
                    log!("{}: a worker's queue is full: dropping packets (counted in the stats)", me.name);
                }
            }
        }
    };
    let flush_all = |batches: &mut Vec<Batch>| {
        for w in 0..n {
            if !batches[w].frames.is_empty() {
                send(w, batches);
            }
        }
    };
    let result = loop {
        if stop.load(Relaxed) {
            break Ok(());
        }
        match cap.next_packet() {
            Ok(p) => {
                number += 1;
                me.packets.fetch_add(1, Relaxed);
                let (w, shared) = owner(linktype, p.data, n);
                if batches.iter().all(|b| b.frames.is_empty()) {
                    oldest = Instant::now();
                }
                let b = &mut batches[w];
                // time_t and suseconds_t are narrower than i64 on some targets.
                #[allow(clippy::useless_conversion)]
                let ts = i64::from(p.header.ts.tv_sec) * 1_000_000 + i64::from(p.header.ts.tv_usec);
                b.frames.push((b.data.len() as u32, p.data.len() as u32, p.header.len, ts, number, false));
                b.data.extend_from_slice(p.data);
                if b.frames.len() >= BATCH {
                    send(w, &mut batches);
                }
                // Every other worker reads DNS (a UDP answer, or over TCP) and a fragment that
                // may hold another's connection, queued before anything that follows it, so a
                // connection to the address an answer gave is flagged wherever it lands.
                if n > 1 && shared {
                    for v in (0..n).filter(|&v| v != w) {
                        let b = &mut batches[v];
                        b.frames.push((b.data.len() as u32, p.data.len() as u32, p.header.len, ts, number, true));
                        b.data.extend_from_slice(p.data);
                        if b.frames.len() >= BATCH {
                            send(v, &mut batches);
                        }
                    }
                }
                if oldest.elapsed() >= BATCH_WAIT {
                    flush_all(&mut batches);
                }
            }
            Err(pcap::Error::TimeoutExpired) => flush_all(&mut batches),
            // pcap_breakloop at shutdown ends the read with an error: that is the stop.
            Err(_) if stop.load(Relaxed) => break Ok(()),
            Err(e) => break Err(format!("{}: capture stopped: {e}", me.name)),
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            pcap_stats(&mut cap, me);
        }
    };
    flush_all(&mut batches);
    pcap_stats(&mut cap, me);
    result
}

fn pcap_stats(cap: &mut pcap::Capture<pcap::Active>, me: &super::metrics::Iface) {
    if let Ok(s) = cap.stats() {
        me.pcap_received.store(s.received as u64, Relaxed);
        me.pcap_dropped.store(s.dropped as u64, Relaxed);
        me.pcap_ifdropped.store(s.if_dropped as u64, Relaxed);
    }
}

fn open_capture(a: &WatchArgs, iface: &str) -> Result<pcap::Capture<pcap::Active>, String> {
    let err = |e: pcap::Error| format!("{iface}: cannot capture: {e}");
    let mut cap = pcap::Capture::from_device(iface)
        .map_err(err)?
        .promisc(!a.no_promisc)
        .snaplen(a.snaplen)
        .buffer_size(a.buffer_size.saturating_mul(1 << 20))
        .immediate_mode(a.immediate)
        .timeout(READ_TIMEOUT_MS)
        .open()
        .map_err(err)?;
    if let Some(f) = &a.filter {
        cap.filter(f, true).map_err(|e| format!("--filter {f:?}: {e}"))?;
    }
    Ok(cap)
}

// ---------------------------------------------------------------------------------------------
// Watching indicator files

/// Watches the folders holding the indicator files (so a file replaced by rename is seen) and
/// sends a unit when one of them changes.
fn watch_files(paths: &[PathBuf], tx: mpsc::Sender<()>) -> Result<notify::RecommendedWatcher, String> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let abs: Vec<PathBuf> = paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())).collect();
    let targets = abs.clone();
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        if ev.paths.iter().any(|p| targets.iter().any(|t| p.starts_with(t))) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("watching indicator files: {e}"))?;
    for p in &abs {
        let (dir, mode) = if p.is_dir() {
            (p.clone(), RecursiveMode::Recursive)
        } else {
            (p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")), RecursiveMode::NonRecursive)
        };
        w.watch(&dir, mode).map_err(|e| format!("watching {}: {e}", dir.display()))?;
    }
    Ok(w)
}

// ---------------------------------------------------------------------------------------------
// Main

pub fn run(a: WatchArgs) -> Result<u8, String> {
    let matcher = load_sets(&a.set, true)?;
    if let Some(p) = piped(&a.set) {
        log!("{}: a pipe, read once: SIGHUP and file changes do not reload the indicators", p.display());
    }
    let n_ind = matcher.len();
    sys::install_handlers()?;
    // Inline, each queue has a worker of its own.
    let queues: Vec<u16> = a.nfqueue.map(|(first, last)| (first..=last).collect()).unwrap_or_default();
    let inline = !queues.is_empty();
    let workers = if inline {
        queues.len()
    } else {
        a.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).saturating_sub(1))
            .max(1)
    };
    let metrics = Arc::new(Metrics::new(&a.interfaces, workers));
    metrics.indicators.store(n_ind as u64, Relaxed);

    // Everything that needs privileges first: captures, the metrics port, the alert file.
    let mut caps = Vec::new();
    for iface in &a.interfaces {
        caps.push(open_capture(&a, iface)?);
    }
    let mut nfqs = Vec::new();
    for &num in &queues {
        nfqs.push((open_queue(num)?, num));
    }
    let listener = match a.metrics {
        Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| format!("--metrics {addr}: {e}"))?),
        None => None,
    };
    let size = Arc::new(AtomicU64::new(0));
    let first_out = open_output(a.out.output.as_deref(), a.out.syslog.as_deref(), &size)?;
    if let Some(user) = &a.user {
        sys::drop_privileges(user)?;
        log!("running as {user}");
    }
    if let Some(l) = listener {
        log!("metrics on http://{}/metrics", l.local_addr().map(|a| a.to_string()).unwrap_or_default());
        super::metrics::serve(l, metrics.clone());
    }

    let sets = Arc::new(Sets { current: ArcSwap::from_pointee(matcher), generation: AtomicU64::new(0) });
    let (file_tx, file_rx) = mpsc::channel();
    let _watcher = if a.no_watch_files || a.set.indicators.is_empty() {
        None
    } else {
        match watch_files(&a.set.indicators, file_tx) {
            Ok(w) => Some(w),
            Err(e) => {
                log!("warning: {e}; reload with SIGHUP");
                None
            }
        }
    };

    // Writer.
    let (out_tx, out_rx) = mpsc::sync_channel::<ToWriter>(16 * 1024);
    let writer = {
        let cfg = WriterCfg {
            format: a.out.format,
            path: a.out.output.clone(),
            syslog: a.out.syslog.clone(),
            rotate_size: a.rotate_size,
            rotate_keep: a.rotate_keep,
        };
        let (m, size) = (metrics.clone(), size.clone());
        std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || writer_thread(cfg, first_out, out_rx, m, size))
            .map_err(|e| e.to_string())?
    };

    // Workers.
    let opts = Options {
        tunnels: a.tunnels,
        active_only: a.active_only,
        limits: crate::track::conn::Limits { max_conns: a.max_connections.max(16), ..Default::default() },
        honour_ttl: true,
        ..Default::default()
    };
    let label: Arc<str> = match a.nfqueue {
        Some((first, last)) if first == last => Arc::from(format!("nfqueue:{first}")),
        Some((first, last)) => Arc::from(format!("nfqueue:{first}-{last}")),
        None => Arc::from(format!("live:{}", a.interfaces.join(","))),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut nfqs = nfqs.into_iter();
    let chans: Vec<_> = (0..workers).map(|_| mpsc::sync_channel::<ToWorker>(a.queue.max(4))).collect();
    let senders: Vec<SyncSender<ToWorker>> = chans.iter().map(|c| c.0.clone()).collect();
    let readers_done = Arc::new(AtomicBool::new(false));
    let mut worker_handles: Vec<JoinHandle<Stats>> = Vec::new();
    for (i, (_, rx)) in chans.into_iter().enumerate() {
        let ctx = WorkerCtx {
            index: i,
            rx,
            // Workers hold each other's senders only weakly in effect: they are dropped when the
            // worker ends. With one worker there is nobody to share with.
            peers: senders.iter().enumerate().map(|(j, s)| (j != i).then(|| s.clone())).collect(),
            out: out_tx.clone(),
            sets: sets.clone(),
            metrics: metrics.clone(),
            opts: opts.clone(),
            label: label.clone(),
            readers_done: readers_done.clone(),
        };
        let spawn = std::thread::Builder::new().name(format!("worker-{i}"));
        let handle = match nfqs.next() {
            Some((q, num)) => {
                let (block, stop) = (a.block, stop.clone());
                spawn.spawn(move || inline_worker(ctx, q, num, block, stop))
            }
            None => spawn.spawn(move || worker(ctx)),
        };
        worker_handles.push(handle.map_err(|e| e.to_string())?);
    }
    let ctl_tx = out_tx;

    // Readers.
    let mut readers = Vec::new();
    // libpcap's read timeout does not fire on a quiet link (pcap(3PCAP)): on stop, the readers
    // are woken with pcap_breakloop, or a silent interface would hold the sensor forever.
    let mut breakers = Vec::new();
    for (i, mut cap) in caps.into_iter().enumerate() {
        breakers.push(cap.breakloop_handle());
        let (to, stop, m) = (senders.clone(), stop.clone(), metrics.clone());
        readers.push(
            std::thread::Builder::new()
                .name(format!("reader-{}", a.interfaces[i]))
                .spawn(move || reader(i, cap, to, stop, m))
                .map_err(|e| e.to_string())?,
        );
    }
    drop(senders);
    log!(
        "watching {} with {} indicators, {} worker(s){}",
        match a.nfqueue {
            Some(_) if a.block => format!("{label} inline, dropping the packets of flagged connections"),
            Some(_) => format!("{label} inline, accepting every packet"),
            None => a.interfaces.join(", "),
        },
        n_ind,
        workers,
        match (&a.out.output, &a.out.syslog) {
            (Some(p), _) => format!(", alerts to {}", p.display()),
            (None, Some(dest)) => format!(", alerts to syslog {dest}"),
            (None, None) => String::new(),
        }
    );

    // Control loop.
    let start = Instant::now();
    let mut last_log = Instant::now();
    let mut prev: Snapshot = metrics.snapshot();
    let mut pending_change: Option<Instant> = None;
    let mut exit = 0u8;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if sys::stopping() {
            log!("stopping (signal)");
            break;
        }
        if !inline && readers.iter().all(|r| r.is_finished()) {
            log!("every capture has stopped");
            exit = crate::cli::ERROR;
            break;
        }
        if inline && worker_handles.iter().all(|w| w.is_finished()) {
            log!("every queue has stopped");
            exit = crate::cli::ERROR;
            break;
        }
        let mut hup = sys::take_hup();
        if hup {
            log!("SIGHUP: reloading indicators and reopening the alert file");
            let _ = ctl_tx.send(ToWriter::Reopen);
        }
        while file_rx.try_recv().is_ok() {
            pending_change = Some(Instant::now());
        }
        // Editors and feed updaters write in several steps: wait until the files are quiet.
        if pending_change.is_some_and(|t| t.elapsed() >= Duration::from_millis(300)) {
            pending_change = None;
            log!("indicator files changed: reloading");
            hup = true;
        }
        if hup {
            reload(&a.set, &sets, &metrics);
        }
        if a.stats_interval > 0 && last_log.elapsed() >= Duration::from_secs(a.stats_interval) {
            let secs = last_log.elapsed().as_secs_f64();
            log!("{}", metrics.log_line(Some((prev, secs))));
            prev = metrics.snapshot();
            last_log = Instant::now();
        }
    }

    // Stop: readers flush their batches and drop their senders; workers drain their queues and
    // end every connection; the writer writes what is left.
    stop.store(true, SeqCst);
    for b in &breakers {
        b.breakloop();
    }
    for (i, r) in readers.into_iter().enumerate() {
        match r.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log!("{e}"),
            Err(_) => log!("reader {} panicked", a.interfaces[i]),
        }
    }
    readers_done.store(true, SeqCst);
    let mut total = Stats::default();
    for w in worker_handles {
        match w.join() {
            Ok(s) => total.merge(s),
            Err(_) => {
                log!("a worker panicked");
                exit = crate::cli::ERROR;
            }
        }
    }
    drop(ctl_tx);
    let _ = writer.join();
    let secs = start.elapsed().as_secs_f64();
    eprint!("{}", total.render(secs, sets.current.load().len()));
    log!("{}", metrics.log_line(None));
    Ok(exit)
}

/// The indicator sources that are pipes (`--indicators <(curl ...)`): read once, at start.
fn piped(set: &SetArgs) -> Option<&PathBuf> {
    set.indicators.iter().chain(&set.allow).find(|p| crate::source::is_pipe(p))
}

fn reload(set: &SetArgs, sets: &Sets, metrics: &Metrics) {
    // Opening a pipe again would wait for a writer long gone, and hold this thread (signals,
    // statistics) with it: the sensor could not even be stopped.
    if let Some(p) = piped(set) {
        metrics.reload_failures.fetch_add(1, Relaxed);
        log!(
            "reload skipped, keeping the set: {} is a pipe, read once at start (restart to read it again)",
            p.display()
        );
        return;
    }
    let t = Instant::now();
    match load_sets(set, false) {
        Ok(m) => {
            let n = m.len();
            sets.current.store(Arc::new(m));
            sets.generation.fetch_add(1, SeqCst);
            metrics.reloads.fetch_add(1, Relaxed);
            metrics.indicators.store(n as u64, Relaxed);
            log!("reloaded: {n} indicators in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
        }
        Err(e) => {
            metrics.reload_failures.fetch_add(1, Relaxed);
            log!("reload failed, keeping the previous set: {e}");
        }
    }
}
