//! `iocmatch watch`: the line-mode sensor. Live capture through libpcap (cargo feature `live`),
//! workers sharded by a symmetric flow hash, alerts to a file or standard output, indicator
//! sets reloaded without stopping capture, statistics on standard error and over HTTP.
//!
//! Threads: one reader per interface (never blocks: a full worker queue counts a drop), one
//! engine per worker, one writer for alerts, the main thread for signals, reloads and stats.

use std::path::PathBuf;

use clap::Args;

use crate::cli::SetArgs;
use crate::pipeline::engine;
use crate::report;

pub mod metrics;

#[cfg(feature = "live")]
mod live;
#[cfg(feature = "live")]
mod sys;

/// What a build without the `live` feature says when asked to watch.
pub const NOT_BUILT: &str = "this iocmatch was built without live capture. To get `watch`, install libpcap \
    (`apt-get install libpcap-dev`) and build with `cargo build --release --features live`";

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Interface to capture on (e.g. eth0). Repeatable.
    #[arg(short = 'i', long = "interface", value_name = "IFACE", required = true)]
    pub interfaces: Vec<String>,
    #[command(flatten)]
    pub set: SetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "eve")]
    pub format: report::Format,
    /// Appends alerts to FILE instead of standard output; reopened on SIGHUP (logrotate).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Rotates the alert file past this many bytes (FILE.1, FILE.2, ...); 0 = never.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    pub rotate_size: u64,
    /// How many rotated alert files to keep.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub rotate_keep: u32,
    /// Which layers of tunnelled traffic are matched.
    #[arg(long, value_enum, default_value = "all")]
    pub tunnels: engine::Tunnels,
    /// Drops alerts for indicators that are not active now (outside their dates).
    #[arg(long)]
    pub active_only: bool,
    /// Most connections tracked at once (per worker); past it the idlest are evicted (counted).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_connections: usize,
    /// Worker threads (default: cores - 1, at least 1).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Packet batches queued per worker before the reader drops (and counts) packets.
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub queue: usize,
    /// Captures only frames addressed to this host (default: promiscuous).
    #[arg(long)]
    pub no_promisc: bool,
    /// Bytes kept of each frame.
    #[arg(long, default_value_t = 65535, value_name = "BYTES")]
    pub snaplen: i32,
    /// Kernel capture buffer, in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub buffer_size: i32,
    /// Delivers packets as they arrive instead of in kernel batches (lower latency, more CPU).
    #[arg(long)]
    pub immediate: bool,
    /// BPF pre-filter applied in the kernel, e.g. "not port 22".
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Logs statistics every SECS seconds (0: only at exit).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub stats_interval: u64,
    /// Serves Prometheus metrics over HTTP on ADDR (e.g. 127.0.0.1:9775).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Switches to this user (and its group) once the captures are open.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Does not watch the indicator files for changes (SIGHUP still reloads).
    #[arg(long)]
    pub no_watch_files: bool,
}

/// Runs `watch`; returns the exit status (0 after SIGINT/SIGTERM).
pub fn run(a: WatchArgs) -> Result<u8, String> {
    #[cfg(feature = "live")]
    {
        live::run(a)
    }
    #[cfg(not(feature = "live"))]
    {
        let _ = a;
        Err(NOT_BUILT.to_string())
    }
}
