//! Wires a source to the rest: inputs are read, packets go through the [`engine`], alerts to
//! the writer, counters to the summary. `scan` (files, standard input) uses it today; `watch`
//! and `collect` feed the same engine.

pub mod collect;
pub mod engine;
#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod packet_tests;
pub(crate) mod sampled;
pub mod shard;
pub mod workers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::matcher::Matcher;
use crate::report::summary::Stats;
use crate::report::{Alert, FlowEvent, Writer};
use std::io::Read;

use crate::source::{capture, flowlog};
use engine::{Engine, Options, Sink};

/// What a scan produced.
pub struct ScanResult {
    pub stats: Stats,
    pub elapsed: f64,
    /// An input could not be read at all (not a capture, missing file).
    pub fatal_inputs: usize,
    /// Flagged connections (with `Options::keep_flagged`).
    pub flagged: Vec<crate::report::evidence::Span>,
}

/// The sink of a single-threaded scan: straight to the writer.
pub struct WriterSink<'w> {
    pub writer: &'w mut Writer,
    pub error: Option<std::io::Error>,
}

impl WriterSink<'_> {
    fn note(&mut self, res: std::io::Result<()>) {
        if let Err(e) = res {
            write_failed(&e);
            self.error.get_or_insert(e);
        }
    }
}

impl Sink for WriterSink<'_> {
    fn flush(&mut self) {
        let res = self.writer.flush();
        self.note(res);
    }
    fn alert(&mut self, a: Alert) {
        let res = self.writer.alert(&a);
        self.note(res);
    }
    fn flow(&mut self, f: FlowEvent) {
        let res = self.writer.flow(&f);
        self.note(res);
    }
}

/// Expands folders (recursively, in name order) into files; keeps `-`. Also returns what the
/// folders held that is not read (see [`crate::source::Listing`]), as lines for the summary.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let (mut out, mut left_out) = (Vec::new(), Vec::new());
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(p.clone());
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                let listing = crate::source::files_under(p).map_err(|e| format!("{}: {e}", p.display()))?;
                out.extend(listing.files);
                left_out
                    .extend(listing.left_out.into_iter().map(|(f, why)| format!("{}: {why}: skipped", f.display())));
            }
            Ok(_) => out.push(p.clone()),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    Ok((out, left_out))
}

/// What kind of input a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    Capture,
    FlowLog(flowlog::Format),
}

/// Forcing the input format (`--input-format`); `Auto` recognises it by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputFormat {
    #[default]
    Auto,
    Pcap,
    ZeekTsv,
    ZeekJson,
    Eve,
    AwsVpc,
    GcpVpc,
    AzureNsg,
    NfdumpCsv,
}

impl InputFormat {
    fn forced(self) -> Option<InputKind> {
        use flowlog::Format as F;
        Some(match self {
            InputFormat::Auto => return None,
            InputFormat::Pcap => InputKind::Capture,
            InputFormat::ZeekTsv => InputKind::FlowLog(F::ZeekTsv),
            InputFormat::ZeekJson => InputKind::FlowLog(F::ZeekJson),
            InputFormat::Eve => InputKind::FlowLog(F::EveJson),
            InputFormat::AwsVpc => InputKind::FlowLog(F::AwsVpc),
            InputFormat::GcpVpc => InputKind::FlowLog(F::GcpVpcJson),
            InputFormat::AzureNsg => InputKind::FlowLog(F::AzureNsgJson),
            InputFormat::NfdumpCsv => InputKind::FlowLog(F::NfdumpCsv),
        })
    }
}

const CAPTURE_MAGICS: [[u8; 4]; 7] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x34, 0xcd, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xcd, 0x34],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

/// A reader whose only read is an error: a broken stream's error, kept for after its bytes.
struct FailOnce(Option<std::io::Error>);

impl Read for FailOnce {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// Recognises a (decompressed) input by its first bytes.
pub fn sniff(head: &[u8]) -> Option<InputKind> {
    if head.len() >= 4 && CAPTURE_MAGICS.iter().any(|m| head[..4] == *m) {
        return Some(InputKind::Capture);
    }
    flowlog::detect(head).map(InputKind::FlowLog)
}

/// Opens an input and reads its first bytes for recognition; the returned reader still yields
/// the whole stream (decompressed on a thread of its own if `ahead`, see [`capture::open_ahead`]).
fn open_sniffed(path: &Path, ahead: bool) -> std::io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    let mut r = capture::open_ahead(path, ahead)?;
    let mut head = vec![0u8; 64 * 1024];
    let mut n = 0;
    let mut failed = None;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A stream that breaks early (a gzip file cut in half) still yields what came
            // before; the reader reports the error after it.
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    head.truncate(n);
    let rest: Box<dyn Read + Send> = match failed {
        Some(e) => Box::new(FailOnce(Some(e))),
        None => r,
    };
    let again: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head.clone()).chain(rest));
    Ok((head, again))
}

/// A whole flow log in memory: read (compressed, standard input), or mapped.
pub enum Bytes {
    Read(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Read(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

/// Set by SIGINT or SIGTERM once [`stop_on_signals`] is armed: the scan stops reading, and
/// reports (and writes out) what it read before. A plain static: every packet reads it.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once the scan has been asked to stop.
#[inline]
pub fn stopped() -> bool {
    STOP.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set once the alert output was closed by its reader (`iocmatch scan x | head`): the scan
/// stops reading, as on a signal, and ends without an error.
static OUTPUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once the alert output has been closed by its reader.
pub fn output_closed() -> bool {
    OUTPUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Looks at a failed write of alerts: one to an output its reader closed (EPIPE) stops the
/// scan, since nothing more can be written; others stay errors.
pub fn write_failed(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        OUTPUT_CLOSED.store(true, std::sync::atomic::Ordering::SeqCst);
        STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A write error worth reporting: any but the output closed by its reader.
fn reportable(e: Option<std::io::Error>) -> Result<(), std::io::Error> {
    match e {
        Some(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// Makes SIGINT and SIGTERM stop the scan cleanly: the inputs stop being read, the alerts
/// found so far are written and the summary says where it stopped. A second signal ends the
/// process at once (status 130).
pub fn stop_on_signals() -> std::io::Result<()> {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // SAFETY: the handler only swaps an atomic and may call `_exit`, both async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, || {
                if STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    signal_hook::low_level::exit(130);
                }
            })?;
        }
    }
    Ok(())
}

/// A reader that ends (reads nothing more) once the scan is stopped.
struct Stoppable(Box<dyn Read + Send>);

impl Read for Stoppable {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if stopped() {
            return Ok(0);
        }
        self.0.read(buf)
    }
}

/// How `scan` spreads its work.
#[derive(Clone, Copy, Debug)]
pub struct Parallel {
    /// Engines, each on its own thread, sharded by the flow hash (1: everything on this thread).
    pub workers: usize,
    /// Maps uncompressed inputs into memory: flow logs always, captures with several workers
    /// (which then walk one copy). Off: everything is read through buffers.
    pub mmap: bool,
}

impl Default for Parallel {
    fn default() -> Self {
        Parallel { workers: 1, mmap: true }
    }
}

/// How many engines to scan `inputs` with, `asked` being `--workers`: that many only if one of
/// the inputs is an uncompressed capture file, the one kind the workers share out (see
/// [`workers::Split`]). Anything else one engine reads as fast as workers do, or faster:
/// - a compressed capture is decompressed on one thread, which sets the pace; workers add the
///   copy of every frame into the batches they share (W1 as `.pcap.zst`: 0.93-1.01 s at `-j 2`,
///   0.57 s for one engine with its decompressing thread; as `.pcap.gz`, 1.19-1.30 s against
///   1.10 s);
/// - standard input is read on one thread too;
/// - every worker parses each flow log whole, keeping its own connections (500 k flows as a
///   Zeek conn.log: 0.20 s either way, with twice the CPU time at `-j 2`).
pub fn engines_for(inputs: &[PathBuf], format: InputFormat, asked: usize) -> usize {
    if asked <= 1 || matches!(format.forced(), Some(InputKind::FlowLog(_))) {
        return 1;
    }
    let plain_capture = |path: &PathBuf| {
        let mut head = [0u8; 4];
        crate::source::rereadable(path)
            && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
            && CAPTURE_MAGICS.contains(&head)
    };
    if inputs.iter().any(plain_capture) {
        asked
    } else {
        1
    }
}

/// Where the scan loop sends its inputs: one engine on this thread ([`Single`]), or a pool of
/// workers ([`workers::Pool`]). The loop itself (opening, recognising, reporting) is shared.
trait Backend {
    /// A DNS-bearing flow log, read before everything else.
    fn learn_dns(&mut self, format: flowlog::Format, data: Bytes);
    fn begin_file(&mut self, name: Arc<str>);
    /// A whole flow log.
    fn text(&mut self, format: flowlog::Format, data: Bytes, name: &Arc<str>);
    /// An uncompressed capture file, memory-mapped.
    fn mapped(&mut self, map: memmap2::Mmap, path: &Path, name: &Arc<str>, progress: &mut dyn FnMut(u64));
    /// An uncompressed capture file for one engine, memory-mapped: read window by window
    /// ([`capture::read_windows`]); `None` if it is neither a classic pcap nor a pcapng (it is
    /// streamed then).
    fn windows(
        &mut self,
        _map: &memmap2::Mmap,
        _path: &Path,
        _progress: &mut dyn FnMut(u64),
    ) -> Option<Result<(), capture::ReadError>> {
        None
    }
    /// An uncompressed capture file not to be mapped (`--no-mmap`), `reader` reading it from
    /// the start: streamed, unless the backend reads the file itself.
    fn unmapped(
        &mut self,
        _path: &Path,
        reader: Box<dyn Read + Send>,
        name: &Arc<str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), capture::ReadError> {
        self.stream(reader, name, progress)
    }
    /// A capture stream (compressed, standard input, `--no-mmap`, or not a classic pcap).
    fn stream(
        &mut self,
        reader: Box<dyn Read + Send>,
        name: &Arc<str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), capture::ReadError>;
    /// Ends the run: merged counters, the flagged connections, and how many inputs turned out
    /// not to be captures at all.
    fn finish(self, progress: &mut dyn FnMut(u64)) -> (Stats, Vec<crate::report::evidence::Span>, usize);
}

/// True if a flow log of this format may hold DNS answers worth learning first.
fn has_dns(f: flowlog::Format, data: &[u8]) -> bool {
    use flowlog::Format as F;
    match f {
        // Only headers say what a TSV log holds: one pass over the line starts with a `#`.
        // (A `#` is rare in data lines: finding each one and looking back is the cheap search.)
        F::ZeekTsv => memchr::memchr_iter(b'#', data)
            .filter(|&at| at == 0 || data[at - 1] == b'\n')
            .map(|at| {
                let rest = &data[at..];
                &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())]
            })
            .any(|h| {
                h.starts_with(b"#path\tdns")
                    || (h.starts_with(b"#fields\t") && h.split(|&c| c == b'\t').any(|f| f == b"query"))
            }),
        F::ZeekJson => memchr::memmem::find(data, b"\"query\"").is_some(),
        F::EveJson => memchr::memmem::find(data, b"\"dns\"").is_some(),
        _ => false,
    }
}

/// Runs a flow log through `on_record`, counting and locating bad lines in `engine`'s summary
/// (the first 20 shown, the rest counted).
fn parse_text_reporting<S: Sink>(
    engine: &mut Engine<'_, S>,
    f: flowlog::Format,
    data: &[u8],
    name: &str,
    mut on_record: impl FnMut(&mut Engine<'_, S>, &flowlog::Record),
) {
    let mut bad = 0u64;
    let mut shown = Vec::new();
    let m = engine.matcher();
    let text = flowlog::parse_text_hinted(
        f,
        data,
        |ip| m.prefetch_ip(ip),
        |r| {
            if !stopped() {
                on_record(engine, r)
            }
        },
        |line, why| {
            bad += 1;
            if shown.len() < 20 {
                shown.push(format!("{name}:{line}: {why}"));
            }
        },
    );
    if bad > shown.len() as u64 {
        shown.push(format!("{name}: ... {} more bad lines", bad - shown.len() as u64));
    }
    let st = engine.stats_mut();
    st.records_skipped += bad;
    st.lines += text.lines;
    st.records_ignored += text.skipped;
    st.bytes += data.len() as u64;
    st.input_errors.extend(shown);
}

/// Counts a capture's read error in `engine`'s summary; true if the input was no capture at all.
fn note_read_error<S: Sink>(engine: &mut Engine<'_, S>, name: &str, e: &capture::ReadError) -> bool {
    let st = engine.stats_mut();
    st.files_failed += 1;
    st.input_errors.push(format!("{name}: {e}"));
    e.not_a_capture
}

/// Reads a capture stream into `engine`, reporting progress every 64k packets.
fn read_stream<S: Sink>(
    engine: &mut Engine<'_, S>,
    reader: Box<dyn Read + Send>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), capture::ReadError> {
    let mut n = 0u64;
    let res = capture::read_ahead(Stoppable(reader), |p, ahead| inspect_ahead(engine, p, ahead, &mut n, progress));
    progress(n);
    res.map(|_| ())
}

/// The per-packet step of the readers that show what comes next: the connection table starts
/// loading the entry of the frame `ahead` (the packet [`capture::LOOK_AHEAD`] on), then the
/// packet is inspected and counted ([`inspect_counting`]). Nothing once the scan is stopped.
#[inline(always)]
fn inspect_ahead<S: Sink>(
    engine: &mut Engine<'_, S>,
    p: capture::Packet<'_>,
    ahead: Option<&[u8]>,
    n: &mut u64,
    progress: &mut dyn FnMut(u64),
) {
    if !stopped() {
        if let Some(frame) = ahead {
            engine.hint(p.linktype, frame, p.number + capture::LOOK_AHEAD as u64);
        }
        inspect_counting(engine, &p, n, progress);
    }
}

/// Inspects a packet, counting its bytes (with its record header) into `n` and reporting them
/// every 64k packets.
#[inline]
fn inspect_counting<S: Sink>(
    engine: &mut Engine<'_, S>,
    p: &capture::Packet<'_>,
    n: &mut u64,
    progress: &mut dyn FnMut(u64),
) {
    engine.packet(p);
    *n += p.data.len() as u64 + 16;
    if p.number.is_multiple_of(65536) {
        progress(std::mem::take(n));
    }
}

/// One engine on the calling thread.
struct Single<'m, S: Sink> {
    engine: Engine<'m, S>,
    fatal: usize,
}

impl<S: Sink> Backend for Single<'_, S> {
    fn learn_dns(&mut self, f: flowlog::Format, data: Bytes) {
        flowlog::parse_text(f, &data, |r| self.engine.learn_dns(r), |_, _| {});
    }
    fn begin_file(&mut self, name: Arc<str>) {
        self.engine.begin_file(name);
    }
    fn text(&mut self, f: flowlog::Format, data: Bytes, name: &Arc<str>) {
        parse_text_reporting(&mut self.engine, f, &data, name, |e, r| e.record(r));
    }
    fn windows(
        &mut self,
        map: &memmap2::Mmap,
        path: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Option<Result<(), capture::ReadError>> {
        let file = std::fs::File::open(path).ok()?;
        let (engine, mut n) = (&mut self.engine, 0u64);
        let (res, _) =
            capture::read_windows(&file, map, stopped, |p, ahead| inspect_ahead(engine, p, ahead, &mut n, progress))?;
        progress(n);
        Some(res.map(|_| ()))
    }
    // `drive` maps captures for one engine only to read them by windows (see there why); this
    // stays correct for a caller that maps one anyway.
    fn mapped(&mut self, map: memmap2::Mmap, _: &Path, name: &Arc<str>, progress: &mut dyn FnMut(u64)) {
        let shared = capture::SharedMap::new(map, 1);
        let (engine, mut n) = (&mut self.engine, 0u64);
        let res = capture::read_mapped(&shared, 0, stopped, |p| inspect_counting(engine, &p, &mut n, progress));
        progress(n);
        if let Err(e) = res {
            self.fatal += usize::from(note_read_error(&mut self.engine, name, &e));
        }
    }
    fn stream(
        &mut self,
        reader: Box<dyn Read + Send>,
        _: &Arc<str>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), capture::ReadError> {
        read_stream(&mut self.engine, reader, progress)
    }
    fn finish(self, _: &mut dyn FnMut(u64)) -> (Stats, Vec<crate::report::evidence::Span>, usize) {
        let (stats, _, flagged) = self.engine.finish();
        (stats, flagged, self.fatal)
    }
}

/// Scans captures and flow logs, writing alerts as they come: on this thread, or with
/// `par.workers` engines sharded by the flow hash.
pub fn scan(
    m: &Matcher,
    inputs: &[PathBuf],
    opts: Options,
    format: InputFormat,
    par: Parallel,
    writer: &mut Writer,
    mut progress: impl FnMut(u64),
) -> Result<ScanResult, std::io::Error> {
    let start = Instant::now();
    if par.workers > 1 {
        let shared = workers::SharedWriter::new(writer);
        let (stats, flagged, fatal) = std::thread::scope(|s| {
            let pool = workers::Pool::start(s, m, opts, par.workers, &shared);
            drive(pool, inputs, format, par, &mut progress)
        });
        reportable(shared.error().err())?;
        return Ok(ScanResult { stats, elapsed: start.elapsed().as_secs_f64(), fatal_inputs: fatal, flagged });
    }
    let mut sink = WriterSink { writer, error: None };
    let single = Single { engine: Engine::new(m, opts, &mut sink), fatal: 0 };
    let (stats, flagged, fatal) = drive(single, inputs, format, par, &mut progress);
    reportable(sink.error)?;
    Ok(ScanResult { stats, elapsed: start.elapsed().as_secs_f64(), fatal_inputs: fatal, flagged })
}

/// A whole flow log: mapped when it is an uncompressed file (and `mmap`), else read. A read
/// that fails part way returns what came before the error with it.
fn whole(path: &Path, reader: Box<dyn Read + Send>, mmap: bool) -> Result<Bytes, (std::io::Error, Bytes)> {
    if mmap {
        if let Ok(Some(map)) = crate::source::map(path) {
            return Ok(Bytes::Mapped(map));
        }
    }
    let mut data = Vec::with_capacity(std::fs::metadata(path).map_or(0, |m| m.len() as usize).min(1 << 30));
    match std::io::BufReader::new(reader).read_to_end(&mut data) {
        Ok(_) => Ok(Bytes::Read(data)),
        Err(e) => Err((e, Bytes::Read(data))),
    }
}

/// The scan loop: recognises each input and hands it to the backend.
fn drive(
    mut backend: impl Backend,
    inputs: &[PathBuf],
    format: InputFormat,
    par: Parallel,
    progress: &mut dyn FnMut(u64),
) -> (Stats, Vec<crate::report::evidence::Span>, usize) {
    let mut fatal = 0;
    let mut input_errors = Vec::new();
    let mut failed = 0;
    // Flow logs may put DNS in another file, before or after the connections: learn the
    // addresses flagged names resolved to from every DNS-bearing log first. (Not from a pipe:
    // its bytes are for the pass below; its DNS is learned there, in order.)
    for path in inputs.iter().filter(|p| crate::source::rereadable(p)) {
        let Ok((head, reader)) = open_sniffed(path, false) else { continue };
        if let Some(InputKind::FlowLog(
            f @ (flowlog::Format::ZeekTsv | flowlog::Format::ZeekJson | flowlog::Format::EveJson),
        )) = format.forced().or_else(|| sniff(&head))
        {
            if let Ok(data) = whole(path, reader, par.mmap) {
                if has_dns(f, &data) {
                    backend.learn_dns(f, data);
                }
            }
        }
    }
    let mut not_read = 0;
    // One engine inspects on this thread: a compressed input is decompressed on another, when
    // the run may use another core (`taskset` to one core says it may not).
    let ahead = par.workers == 1 && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    for path in inputs {
        if stopped() {
            not_read += 1;
            continue;
        }
        let name: Arc<str> =
            Arc::from(if path.as_os_str() == "-" { "<stdin>".to_string() } else { path.display().to_string() });
        backend.begin_file(name.clone());
        let (head, reader) = match open_sniffed(path, ahead) {
            Ok(r) => r,
            Err(e) => {
                input_errors.push(format!("{name}: cannot open: {e}"));
                fatal += 1;
                failed += 1;
                continue;
            }
        };
        match format.forced().or_else(|| sniff(&head)) {
            Some(InputKind::FlowLog(f)) => {
                let data = match whole(path, reader, par.mmap) {
                    Ok(data) => data,
                    Err((e, data)) => {
                        input_errors.push(format!("{name}: read error: {e} (records before it were inspected)"));
                        failed += 1;
                        data
                    }
                };
                progress(data.len() as u64);
                backend.text(f, data, &name);
            }
            Some(InputKind::Capture) => {
                // Workers get the file mapped: they split a classic pcap or a pcapng into chunks
                // each reads once, in place or copied (the map also serves what follows a record
                // the chunks do not take); with `--no-mmap` they split it all the same, copying
                // every chunk. One engine reads a classic pcap or a pcapng window by window, in
                // place where the kernel maps the pages cheaply and through a buffer where it
                // does not (see `capture::read_windows`); anything else goes through the buffer.
                let map = if par.mmap { crate::source::map(path).ok().flatten() } else { None };
                let res = match map {
                    Some(map) if par.workers > 1 => {
                        drop(reader);
                        backend.mapped(map, path, &name, progress);
                        Ok(())
                    }
                    Some(map) => match backend.windows(&map, path, progress) {
                        Some(res) => res,
                        None => backend.stream(reader, &name, progress),
                    },
                    None if !par.mmap && path.as_os_str() != "-" => backend.unmapped(path, reader, &name, progress),
                    None => backend.stream(reader, &name, progress),
                };
                if let Err(e) = res {
                    // A stream cut short by the stop is not a broken file.
                    if stopped() {
                        continue;
                    }
                    if e.not_a_capture {
                        fatal += 1;
                    }
                    failed += 1;
                    input_errors.push(format!("{name}: {e}"));
                }
            }
            None => {
                fatal += 1;
                failed += 1;
                let what = if head.is_empty() {
                    "empty file".to_string()
                } else {
                    "not a pcap or pcapng capture, nor a flow log iocmatch reads (use --input-format to force one)"
                        .to_string()
                };
                input_errors.push(format!("{name}: {what}"));
            }
        }
    }
    let (mut stats, flagged, late_fatal) = backend.finish(progress);
    if stopped() {
        stats.interrupted = Some(not_read);
        stats.output_closed = output_closed();
    }
    stats.input_errors.extend(input_errors);
    stats.files_failed += failed;
    (stats, flagged, fatal + late_fatal)
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn flush(&mut self) {
        (**self).flush()
    }
    fn alert(&mut self, a: Alert) {
        (**self).alert(a)
    }
    fn flow(&mut self, f: FlowEvent) {
        (**self).flow(f)
    }
    fn resolved(&mut self, ip: std::net::IpAddr, r: &crate::track::dnscache::Resolved) {
        (**self).resolved(ip, r)
    }
}
