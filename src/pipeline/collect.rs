//! `iocmatch collect`: a NetFlow v5/v9/IPFIX and sFlow v5 collector on UDP that matches records
//! as they arrive and writes alerts like `scan`.
//!
//! One engine, one socket: export traffic is modest (a 30-record v5 datagram per few thousand
//! flows), so a single thread keeps up; templates are cached per exporter, bounded.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::engine::{Engine, Options};
use super::{ScanResult, WriterSink};
use crate::matcher::Matcher;
use crate::report::Writer;

/// When to stop (besides SIGINT/SIGTERM).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stop {
    /// Exit after this long without a datagram.
    pub idle: Option<Duration>,
    /// Exit after this many datagrams.
    pub max_datagrams: Option<u64>,
}

/// Receives export datagrams on `listen` until stopped; returns the run's counters.
pub fn collect(
    m: &Matcher,
    listen: SocketAddr,
    opts: Options,
    writer: &mut Writer,
    stop: Stop,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<ScanResult> {
    let sock = UdpSocket::bind(listen)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let local = sock.local_addr()?;
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, quit.clone())?;
    }
    on_ready(local);
    let start = Instant::now();
    let mut sink = WriterSink { writer, error: None };
    let (stats, _, flagged) = {
        let mut engine = Engine::new(m, opts, &mut sink);
        engine.begin_file(Arc::from(format!("udp:{local}")));
        let mut buf = vec![0u8; 65536];
        let mut last = Instant::now();
        let mut n = 0u64;
        while !quit.load(Ordering::Relaxed) {
            match sock.recv_from(&mut buf) {
                Ok((len, from)) => {
                    last = Instant::now();
                    n += 1;
                    let now = crate::time::now_micros();
                    let before = engine.stats().alerts;
                    engine.export_datagram(from, &buf[..len], now);
                    engine.stats_mut().packets += 1;
                    engine.stats_mut().bytes += len as u64;
                    if engine.stats().alerts != before {
                        // Alerts of a live collector are wanted now, not at the next 64 KB.
                        engine.flush_sink();
                    }
                    if stop.max_datagrams.is_some_and(|max| n >= max) {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if stop.idle.is_some_and(|idle| last.elapsed() >= idle) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        engine.finish()
    };
    if let Some(e) = sink.error {
        return Err(e);
    }
    Ok(ScanResult { stats, elapsed: start.elapsed().as_secs_f64(), fatal_inputs: 0, flagged })
}
