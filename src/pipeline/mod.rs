//! Wires a source to the rest: inputs are read, packets go through the [`engine`], alerts to
//! the writer, counters to the summary. `scan` (files, standard input) uses it today; `watch`
//! and `collect` feed the same engine.

pub mod engine;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::matcher::Matcher;
use crate::report::summary::Stats;
use crate::report::{Alert, FlowEvent, Writer};
use crate::source::capture;
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

impl Sink for WriterSink<'_> {
    fn alert(&mut self, a: Alert) {
        if let Err(e) = self.writer.alert(&a) {
            self.error.get_or_insert(e);
        }
    }
    fn flow(&mut self, f: FlowEvent) {
        if let Err(e) = self.writer.flow(&f) {
            self.error.get_or_insert(e);
        }
    }
}

/// Expands folders (recursively, in name order) into files; keeps `-`.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if e.file_type()?.is_dir() {
                walk(&e.path(), out)?;
            } else {
                out.push(e.path());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(p.clone());
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut out).map_err(|e| format!("{}: {e}", p.display()))?,
            Ok(_) => out.push(p.clone()),
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    Ok(out)
}

/// Scans capture files with one engine, writing alerts as they come.
pub fn scan(
    m: &Matcher,
    inputs: &[PathBuf],
    opts: Options,
    writer: &mut Writer,
    mut progress: impl FnMut(u64),
) -> Result<ScanResult, std::io::Error> {
    let start = Instant::now();
    let mut sink = WriterSink { writer, error: None };
    let mut fatal = 0;
    let mut input_errors = Vec::new();
    let mut failed = 0;
    let (mut stats, _, flagged) = {
        let mut engine = Engine::new(m, opts, &mut sink);
        for path in inputs {
            let name: Arc<str> =
                Arc::from(if path.as_os_str() == "-" { "<stdin>".to_string() } else { path.display().to_string() });
            engine.begin_file(name.clone());
            let reader = match capture::open(path) {
                Ok(r) => r,
                Err(e) => {
                    input_errors.push(format!("{name}: cannot open: {e}"));
                    fatal += 1;
                    failed += 1;
                    continue;
                }
            };
            let mut n = 0u64;
            let res = capture::read(reader, |p| {
                engine.packet(&p);
                n += p.data.len() as u64 + 16;
                if p.number % 65536 == 0 {
                    progress(n);
                    n = 0;
                }
            });
            progress(n);
            if let Err(e) = res {
                if e.not_a_capture {
                    fatal += 1;
                }
                failed += 1;
                input_errors.push(format!("{name}: {e}"));
            }
        }
        engine.finish()
    };
    stats.input_errors.extend(input_errors);
    stats.files_failed += failed;
    if let Some(e) = sink.error {
        return Err(e);
    }
    Ok(ScanResult { stats, elapsed: start.elapsed().as_secs_f64(), fatal_inputs: fatal, flagged })
}

impl<S: Sink + ?Sized> Sink for &mut S {
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
