//! Command-line interface: argument parsing and exit codes only; the work is in the library.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::indicators::{check, export, load, IndicatorSet, Severity};
use crate::matcher::Matcher;
use crate::pipeline::{self, engine};
use crate::report;

/// Exit status: 0 = ran and found nothing, 1 = ran and flagged something, 2 = error.
pub const FOUND: u8 = 1;
pub const ERROR: u8 = 2;
/// Exit status of a scan stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
pub const INTERRUPTED: u8 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "iocmatch",
    version,
    about = "Flag network connections that reach the infrastructure named by a threat advisory",
    long_about = "Flag network connections that reach the infrastructure named by a threat advisory.\n\n\
        iocmatch reads captures, checks every connection (addresses, DNS names and answers, TLS SNI and\n\
        certificates, HTTP Host and URL) against indicator sets, and writes EVE-compatible alerts that carry\n\
        the indicator's full provenance. The public indicators tied to Flax Typhoon and Integrity Technology\n\
        Group are built in; add your own with --indicators.\n\n\
        Exit status: 0 = nothing flagged, 1 = something flagged, 2 = error.",
    after_help = "Examples:\n  iocmatch scan pcaps/raptor-train-c2.pcap\n  iocmatch scan -o alerts.json captures/\n  tcpdump -w - -i eth0 | iocmatch scan -\n  iocmatch indicators check my-feed.csv\n  iocmatch indicators export --to zeek > advisory.intel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Replay captures and flag connections that touch the indicator sets.
    #[command(after_help = "Examples:\n  \
        iocmatch scan pcaps/raptor-train-c2.pcap\n  \
        iocmatch scan --indicators feed.stix.json --no-default-set -o alerts.json /data/pcaps/\n  \
        iocmatch scan --format zeek -o intel.log capture.pcapng.zst\n  \
        tcpdump -w - -i eth0 | iocmatch scan -\n\n\
        Inputs: pcap (µs/ns, either byte order), pcapng (any mix of link types), gzip or zstd compressed,\n\
        folders (recursive, name order), '-' for standard input.\n\
        Exit status: 0 = nothing flagged, 1 = something flagged, 2 = error, 130 = stopped by SIGINT/SIGTERM
        (the alerts found until then are written; a second signal ends it at once).")]
    Scan(ScanArgs),
    /// Receive NetFlow v5/v9, IPFIX and sFlow v5 on UDP and flag records as they arrive.
    #[command(after_help = "Examples:\n  \
        iocmatch collect --listen 0.0.0.0:2055 -o /var/log/iocmatch/alerts.json\n  \
        iocmatch collect --listen 0.0.0.0:6343 -o /var/log/iocmatch/sflow-alerts.json\n  \
        iocmatch collect --listen 127.0.0.1:4739 --indicators feed.csv --idle-exit 60\n\n\
        Templates are cached per exporter (bounded); malformed datagrams are counted, never fatal.\n\
        SIGINT/SIGTERM flush the alerts and print the summary. Exit status: 0 = nothing flagged, 1 = flagged, 2 = error.")]
    Collect(CollectArgs),
    /// Captures live traffic (or takes it inline) and flags connections as they happen (a sensor, run as a service).
    #[command(after_help = "Examples:\n  \
        iocmatch watch -i eth0 -o /var/log/iocmatch/alerts.json\n  \
        iocmatch watch -i eth0 -i eth1 --indicators /etc/iocmatch/feeds/ --metrics 127.0.0.1:9775 --user iocmatch\n  \
        iocmatch watch --nfqueue 0:1 --block -o alerts.json   # inline (README: the NFQUEUE rule)\n\n\
        SIGHUP reloads the indicator sets and reopens the alert file; SIGINT/SIGTERM flush and exit 0.\n\
        Needs a build with `--features live` (libpcap).")]
    Watch(crate::watch::WatchArgs),
    /// Check, describe and export indicator sets.
    #[command(subcommand)]
    Indicators(IndicatorsCommand),
}

#[derive(Args, Debug, Clone)]
pub struct SetArgs {
    /// Adds an indicator set: a file or folder in any supported format (our CSV, plain list,
    /// Zeek intel, STIX 2.1, MISP JSON or CSV; gzip/zstd accepted). Repeatable.
    #[arg(long = "indicators", short = 'I', value_name = "PATH")]
    pub indicators: Vec<PathBuf>,
    /// Leaves out the sets built into the binary (the shipped advisory sets).
    #[arg(long)]
    pub no_default_set: bool,
    /// Treats any bad indicator record as fatal instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Addresses, networks or domains never to alert on (same formats). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub allow: Vec<PathBuf>,
}

/// Where alerts go, and in which format: the same flags for `scan`, `collect` and `watch`.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "eve")]
    pub format: report::Format,
    /// Writes alerts to FILE instead of standard output: `scan` and `collect` create it anew,
    /// `watch` appends to it and reopens it on SIGHUP (logrotate).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Sends alerts to syslog instead: HOST:PORT over UDP, tcp://HOST:PORT (octet-counted, made
    /// again when it fails), or a socket path such as /dev/log. One RFC 5424 message per event
    /// (facility local5), the event as the output format has it.
    #[arg(long, value_name = "DEST", conflicts_with = "output")]
    pub syslog: Option<String>,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Capture files or folders; '-' reads standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Which layers of tunnelled traffic are matched.
    #[arg(long, value_enum, default_value = "all")]
    pub tunnels: engine::Tunnels,
    /// Drops alerts for indicators that were not active at the packet's time (outside their
    /// first/last-seen window or past valid_until). Undated indicators are kept.
    #[arg(long)]
    pub active_only: bool,
    /// Input format; by default each input is recognised by its content (captures, Zeek logs,
    /// Suricata EVE, AWS/GCP/Azure flow logs, nfdump CSV; NetFlow/IPFIX and sFlow inside captures).
    #[arg(long, value_enum, default_value = "auto")]
    pub input_format: pipeline::InputFormat,
    /// Writes every packet of every flagged connection (from its first packet) to FILE, a
    /// pcapng to open in Wireshark.
    #[arg(long, value_name = "FILE")]
    pub evidence: Option<PathBuf>,
    /// Most connections tracked at once; past it the idlest are evicted (counted).
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_connections: usize,
    /// Engines on their own threads, sharded by a symmetric hash of each connection's address
    /// pair, inside tunnels too (0: one per core). With more than one, alerts of different connections may come out
    /// in a different order from run to run.
    #[arg(short = 'j', long, default_value_t = 1, value_name = "N")]
    pub workers: usize,
    /// Reads every input through a buffer instead of mapping uncompressed captures and flow
    /// logs into memory: for files another process may truncate while they are scanned.
    #[arg(long)]
    pub no_mmap: bool,
    /// Prints no summary on standard error.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct CollectArgs {
    /// UDP address to listen on (NetFlow usually 2055, IPFIX 4739, sFlow 6343).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub set: SetArgs,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Exits after SECS without a datagram.
    #[arg(long, value_name = "SECS")]
    pub idle_exit: Option<f64>,
    /// Exits after N datagrams.
    #[arg(long, value_name = "N")]
    pub max_datagrams: Option<u64>,
    /// Prints no summary on standard error.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum IndicatorsCommand {
    /// Reports errors, duplicates and indicators that would flood analysts with false positives.
    #[command(
        after_help = "Examples:\n  iocmatch indicators check indicators/\n  iocmatch indicators check --no-default-set feed.csv --allow allow.txt\n\n\
        One line per finding, 'error:' or 'warning:' then FILE:LINE. Exit status: 0 = clean, 1 = findings, 2 = could not read."
    )]
    Check {
        /// Indicator files or folders to check (added to the default set unless --no-default-set).
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Counts by set and type, and each set's provenance.
    #[command(
        after_help = "Examples:\n  iocmatch indicators stats\n  iocmatch indicators stats --no-default-set feed.json"
    )]
    Stats {
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Compiles indicator files, with the matcher's lookup tables, into one file that scan and
    /// watch map and use in place (a million indicators are ready in about 10 ms).
    #[command(
        after_help = "Examples:\n  iocmatch indicators compile feeds/ -o feeds.iocset\n  iocmatch scan --indicators feeds.iocset capture.pcap\n\n\
        The built-in sets are not included (they are in the binary). A compiled set whose sources changed\n\
        since is rebuilt from them when loaded. The file is replaced by renaming a new one over it, so a\n\
        running scan or sensor keeps the set it mapped until it reloads."
    )]
    Compile {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// The compiled file to write.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
        /// Treats any bad indicator record as fatal instead of skipping it.
        #[arg(long)]
        strict: bool,
    },
    /// Writes the sets for other sensors (CSV, Zeek intel, Suricata, STIX 2.1).
    #[command(
        after_help = "Examples:\n  iocmatch indicators export --to csv > advisory.csv\n  iocmatch indicators export --to zeek > advisory.intel\n  \
        iocmatch indicators export --to suricata -o /etc/suricata/iocmatch/\n  iocmatch indicators export --to stix feed.csv > feed.stix.json"
    )]
    Export {
        /// Target format.
        #[arg(long, value_enum)]
        to: ExportFormat,
        /// Output file (a folder for suricata); standard output if absent.
        #[arg(short = 'o', long, value_name = "PATH")]
        output: Option<PathBuf>,
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        set: SetArgs,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Zeek,
    Suricata,
    Stix,
}

fn load_sets(set: &SetArgs, extra: &[PathBuf]) -> Result<(IndicatorSet, Option<IndicatorSet>), String> {
    let opts = load::Options { no_default_set: set.no_default_set, strict: set.strict, ..Default::default() };
    let mut paths = set.indicators.clone();
    paths.extend_from_slice(extra);
    let loaded = load::load_all(&paths, &opts).map_err(|e| e.to_string())?;
    let allow = if set.allow.is_empty() {
        None
    } else {
        let opts = load::Options { no_default_set: true, strict: set.strict, ..Default::default() };
        Some(load::load_all(&set.allow, &opts).map_err(|e| e.to_string())?)
    };
    Ok((loaded, allow))
}

/// Prints load errors on standard error: the first 20, then a count; and the warnings about
/// whole files (compiled sets rebuilt, unreadable bytes).
fn report_load_problems(set: &IndicatorSet) {
    for d in set.diagnostics.iter().filter(|d| d.severity == Severity::Warning && d.location.is_none()) {
        eprintln!("{d}");
    }
    let errs: Vec<_> = set.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
    for d in errs.iter().take(20) {
        eprintln!("{d}");
    }
    if errs.len() > 20 {
        eprintln!("... and {} more bad indicator records (run `iocmatch indicators check` for all)", errs.len() - 20);
    }
    if set.skipped > 0 {
        eprintln!("iocmatch: {} indicator record(s) skipped; the rest loaded", set.skipped);
    }
}

pub fn run(cli: Cli) -> Result<u8, String> {
    match cli.command {
        Command::Scan(a) => scan(a),
        Command::Collect(a) => collect(a),
        Command::Watch(a) => crate::watch::run(a),
        Command::Indicators(c) => indicators(c),
    }
}

fn scan(a: ScanArgs) -> Result<u8, String> {
    let matcher = compile(&a.set)?;
    let n = matcher.len();
    let (mut inputs, left_out) = pipeline::expand_inputs(&a.paths)?;
    // The evidence is written in a second pass: standard input and pipes, which can be read only
    // once, are kept in temporary files.
    let spool = |input: &Path| -> std::io::Result<tempfile::NamedTempFile> {
        let mut tmp = tempfile::NamedTempFile::new()?;
        if input.as_os_str() == "-" {
            std::io::copy(&mut std::io::stdin().lock(), &mut tmp)?;
        } else {
            std::io::copy(&mut std::fs::File::open(input)?, &mut tmp)?;
        }
        Ok(tmp)
    };
    let mut _spooled = Vec::new();
    for input in inputs.iter_mut().filter(|p| a.evidence.is_some() && !crate::source::rereadable(p)) {
        let tmp = spool(input).map_err(|e| {
            let name =
                if input.as_os_str() == "-" { "standard input".to_string() } else { input.display().to_string() };
            format!("spooling {name} for --evidence: {e}")
        })?;
        *input = tmp.path().to_path_buf();
        _spooled.push(tmp);
    }
    let mut writer = report::Writer::new(a.out.format, output(&a.out)?);
    let opts = engine::Options {
        tunnels: a.tunnels,
        active_only: a.active_only,
        limits: crate::track::conn::Limits { max_conns: a.max_connections.max(16), ..Default::default() },
        keep_flagged: a.evidence.is_some(),
        ..Default::default()
    };
    let total: u64 = inputs.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let bar = if !a.quiet && std::io::stderr().is_terminal() && total > 200_000_000 {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    pipeline::stop_on_signals().map_err(|e| format!("cannot handle signals: {e}"))?;
    let asked = match a.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let workers = pipeline::engines_for(&inputs, a.input_format, asked);
    if workers < asked && a.workers != 0 && !a.quiet {
        eprintln!(
            "iocmatch: one engine, not {asked} workers: workers share out uncompressed capture files only, \
             and one engine reads compressed captures, standard input and flow logs as fast or faster"
        );
    }
    let par = pipeline::Parallel { workers, mmap: !a.no_mmap };
    let mut res = pipeline::scan(&matcher, &inputs, opts, a.input_format, par, &mut writer, |n| {
        if let Some(b) = &bar {
            b.inc(n)
        }
    })
    .map_err(|e| format!("writing alerts: {e}"))?;
    res.stats.input_errors.extend(left_out);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match writer.finish() {
        // Its reader has what it wanted (`| head`): the summary says where the scan stopped.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => pipeline::write_failed(&e),
        res => res.map_err(|e| format!("writing alerts: {e}"))?,
    }
    // Set by the scan's writes and by the last flush above alike.
    if pipeline::output_closed() {
        res.stats.interrupted.get_or_insert(0);
        res.stats.output_closed = true;
    }
    if let Some(path) = &a.evidence {
        let n = report::evidence::write(path, &inputs, &res.flagged).map_err(|e| format!("{}: {e}", path.display()))?;
        if !a.quiet {
            eprintln!(
                "iocmatch: {n} packets of {} flagged connections written to {}",
                res.flagged.len(),
                path.display()
            );
        }
    }
    if !a.quiet {
        eprint!("{}", res.stats.render(res.elapsed, n));
    } else {
        for e in &res.stats.input_errors {
            eprintln!("iocmatch: error: {e}");
        }
    }
    if res.stats.interrupted.is_some() && !res.stats.output_closed {
        if a.quiet {
            eprintln!("iocmatch: interrupted by a signal; alerts found until then are written");
        }
        return Ok(INTERRUPTED);
    }
    Ok(if res.fatal_inputs > 0 {
        ERROR
    } else if res.stats.alerts > 0 {
        FOUND
    } else {
        0
    })
}

/// The matcher for `scan` and `collect`: compiled sets are used in place.
fn compile(set: &SetArgs) -> Result<Matcher, String> {
    let opts = load::Options { no_default_set: set.no_default_set, strict: set.strict, ..Default::default() };
    let (loaded, parts) = crate::matcher::image::load(&set.indicators, &opts).map_err(|e| e.to_string())?;
    report_load_problems(&loaded);
    let m = Matcher::from_loaded(loaded, parts);
    if m.is_empty() {
        return Err("no indicators loaded: give --indicators, or drop --no-default-set".into());
    }
    let allow = if set.allow.is_empty() {
        None
    } else {
        let opts = load::Options { no_default_set: true, strict: set.strict, ..Default::default() };
        Some(load::load_all(&set.allow, &opts).map_err(|e| e.to_string())?)
    };
    Ok(match allow {
        Some(a) => m.with_allowlist(a),
        None => m,
    })
}

/// The alert output of `scan` and `collect`: a new file, syslog, or standard output.
fn output(o: &OutputArgs) -> Result<Box<dyn Write + Send>, String> {
    if let Some(dest) = &o.syslog {
        return Ok(Box::new(report::syslog::Syslog::open(dest)?));
    }
    Ok(match &o.output {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| format!("{}: cannot create: {e}", p.display()))?),
        None => Box::new(std::io::stdout()),
    })
}

fn collect(a: CollectArgs) -> Result<u8, String> {
    let matcher = compile(&a.set)?;
    let mut writer = report::Writer::new(a.out.format, output(&a.out)?);
    let stop = pipeline::collect::Stop {
        idle: a.idle_exit.map(std::time::Duration::from_secs_f64),
        max_datagrams: a.max_datagrams,
    };
    let quiet = a.quiet;
    let res = pipeline::collect::collect(&matcher, a.listen, engine::Options::default(), &mut writer, stop, |addr| {
        if !quiet {
            eprintln!("iocmatch: listening for NetFlow/IPFIX/sFlow on udp {addr}");
        }
    })
    .map_err(|e| format!("udp {}: {e}", a.listen))?;
    writer.finish().map_err(|e| format!("writing alerts: {e}"))?;
    if !a.quiet {
        eprint!("{}", res.stats.render(res.elapsed, matcher.len()));
    }
    Ok(if res.stats.alerts > 0 { FOUND } else { 0 })
}

fn indicators(c: IndicatorsCommand) -> Result<u8, String> {
    match c {
        IndicatorsCommand::Check { paths, set } => {
            let (mut loaded, allow) = load_sets(&set, &paths)?;
            let allow = allow.map(Matcher::new);
            check::check(&mut loaded, allow.as_ref());
            let mut out = std::io::stdout().lock();
            for d in &loaded.diagnostics {
                let _ = writeln!(out, "{d}");
            }
            let errors = loaded.errors();
            let warnings = loaded.diagnostics.iter().filter(|d| d.severity == Severity::Warning).count();
            let counts: Vec<String> = loaded.counts_by_kind().iter().map(|(k, n)| format!("{n} {k}")).collect();
            let _ = writeln!(
                out,
                "checked {} indicators in {} source(s) ({}): {errors} error(s), {warnings} warning(s)",
                loaded.indicators.len(),
                loaded.sources.len(),
                counts.join(", ")
            );
            Ok(if errors + warnings == 0 { 0 } else { FOUND })
        }
        IndicatorsCommand::Compile { paths, output, strict } => {
            let opts = load::Options { no_default_set: true, strict, ..Default::default() };
            let loaded = load::load_all(&paths, &opts).map_err(|e| e.to_string())?;
            report_load_problems(&loaded);
            let stamps = crate::indicators::compiled::stamps(&paths).map_err(|e| e.to_string())?;
            let bytes = crate::matcher::image::compile(&loaded, &stamps)?;
            crate::indicators::compiled::write(&output, &bytes).map_err(|e| format!("{}: {e}", output.display()))?;
            eprintln!(
                "iocmatch: compiled {} indicators from {} source(s) into {} ({:.1} MB)",
                loaded.indicators.len(),
                loaded.sources.len(),
                output.display(),
                bytes.len() as f64 / 1e6
            );
            Ok(0)
        }
        IndicatorsCommand::Stats { paths, set } => {
            let (loaded, _) = load_sets(&set, &paths)?;
            report_load_problems(&loaded);
            print!("{}", stats_text(&loaded));
            Ok(0)
        }
        IndicatorsCommand::Export { to, output, paths, set } => {
            let (loaded, _) = load_sets(&set, &paths)?;
            report_load_problems(&loaded);
            if let ExportFormat::Suricata = to {
                let dir = output.ok_or("--to suricata writes several files: give a folder with -o")?;
                let files = export::to_suricata(&loaded, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                for f in files {
                    eprintln!("wrote {f}");
                }
                return Ok(0);
            }
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).map_err(|e| format!("{}: cannot create: {e}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let r = match to {
                ExportFormat::Csv => export::to_csv(&loaded, &mut out),
                ExportFormat::Zeek => export::to_zeek(&loaded, &mut out).map(|left| {
                    if left > 0 {
                        eprintln!("iocmatch: {left} indicator(s) have no Zeek intel type (JA3/JA4, SHA-256 certificates) and were left out");
                    }
                }),
                ExportFormat::Stix => export::to_stix(&loaded, &mut out),
                ExportFormat::Suricata => Ok(()),
            };
            r.and_then(|_| out.flush()).map_err(|e| format!("writing export: {e}"))?;
            Ok(0)
        }
    }
}

/// `indicators stats`: counts and provenance per source.
pub fn stats_text(set: &IndicatorSet) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let counts: Vec<String> = set.counts_by_kind().iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ =
        writeln!(s, "{} indicators in {} source(s): {}", set.indicators.len(), set.sources.len(), counts.join(", "));
    for (i, p) in set.sources.iter().enumerate() {
        let mine: Vec<_> = set.indicators.iter().filter(|ind| ind.source as usize == i).collect();
        let mut by = std::collections::BTreeMap::new();
        for ind in &mine {
            *by.entry(ind.kind.as_str()).or_insert(0usize) += 1;
        }
        let by: Vec<String> = by.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(s, "\n{} ({} indicators: {})", p.set, mine.len(), by.join(", "));
        for (label, v) in [
            ("title", Some(p.title.as_str())),
            ("publisher", Some(p.publisher.as_str())),
            ("date", p.date.as_deref()),
            ("url", p.url.as_deref()),
            ("actor", p.actor.as_deref()),
            ("entity", p.entity.as_deref()),
            ("file", Some(p.file.as_str())),
        ] {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                let _ = writeln!(s, "  {label:<10}{v}");
            }
        }
        if !p.tags.is_empty() {
            let _ = writeln!(s, "  {:<10}{}", "tags", p.tags.join(", "));
        }
    }
    s
}

/// Runs the CLI and maps the outcome to the exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Without it, a mapped file cut short under the reader ends the run as a bare "Bus error".
    #[cfg(unix)]
    let _ = crate::source::explain_bus_errors();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("iocmatch: error: {e}");
            ExitCode::from(ERROR)
        }
    }
}
