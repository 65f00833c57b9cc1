//! `iocmatch watch`: the line-mode sensor. Live capture through libpcap (cargo feature `live`),
//! workers sharded by a symmetric flow hash, alerts to a file or standard output, indicator
//! sets reloaded without stopping capture, statistics on standard error and over HTTP. Or
//! inline: packets read from netfilter queues, each given its verdict once inspected.
//!
//! Threads: one reader per interface (never blocks: a full worker queue counts a drop), one
//! engine per worker, one writer for alerts, the main thread for signals, reloads and stats.
//! Inline, each worker reads its own queue, and there are no readers.

use clap::Args;

use crate::cli::{OutputArgs, SetArgs};
use crate::pipeline::engine;

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
    #[arg(short = 'i', long = "interface", value_name = "IFACE", required_unless_present = "nfqueue")]
    pub interfaces: Vec<String>,
    /// Inline: reads packets from netfilter queue N (or each of N to M, one worker each) instead
    /// of capturing, and gives each its verdict once inspected. Queue them with a rule such as
    /// `iptables -A FORWARD -j NFQUEUE --queue-num 0 --queue-bypass` (`--queue-balance 0:3` for
    /// several). Every packet is accepted unless `--block` is given.
    #[arg(long, value_name = "N[:M]", conflicts_with_all = ["interfaces", "filter", "workers"], value_parser = parse_queues)]
    pub nfqueue: Option<(u16, u16)>,
    /// With --nfqueue: drops the packets of connections that raised an alert, from the packet
    /// that raised it on (a SYN to a flagged address, a DNS query for a flagged name).
    #[arg(long)]
    pub block: bool,
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub out: OutputArgs,
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

/// `N` or `N:M` (M >= N, at most 64 queues).
fn parse_queues(s: &str) -> Result<(u16, u16), String> {
    let num = |t: &str| t.trim().parse::<u16>().map_err(|_| format!("{t:?} is not a queue number (0-65535)"));
    let (a, b) = match s.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if b < a || b - a >= 64 {
        return Err(format!("{s}: give N or N:M with N <= M and at most 64 queues"));
    }
    Ok((a, b))
}

/// Runs `watch`; returns the exit status (0 after SIGINT/SIGTERM).
pub fn run(a: WatchArgs) -> Result<u8, String> {
    if a.block && a.nfqueue.is_none() {
        return Err("--block needs --nfqueue: a capture (-i) sees copies of packets, which it cannot drop".into());
    }
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
