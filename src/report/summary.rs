//! Counters of a run and the human summary printed on standard error at the end.
//!
//! Every packet is accounted for: decoded, or skipped with a reason. The summary says so in
//! numbers an analyst can check ("packets = decoded + skipped").

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

/// Counters of one run.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub files: u64,
    pub files_failed: u64,
    pub packets: u64,
    pub bytes: u64,
    pub decoded: u64,
    /// Packets not decoded far enough to match, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Link types we do not decode, with their packet counts.
    pub unknown_linktypes: BTreeMap<u32, u64>,
    pub fragments: u64,
    pub reassembled: u64,
    pub too_deep: u64,
    pub conns: u64,
    pub conns_flagged: u64,
    pub conns_evicted: u64,
    pub dns_messages: u64,
    pub dns_errors: u64,
    pub tls_client_hellos: u64,
    pub tls_errors: u64,
    pub http_requests: u64,
    pub certs_seen: u64,
    pub resolved_derived: u64,
    pub alerts: u64,
    pub alerts_inactive_dropped: u64,
    /// Packets of flagged connections an inline sensor dropped (`watch --nfqueue --block`).
    pub blocked: u64,
    pub alerts_by_set: BTreeMap<String, u64>,
    /// Set, then indicator.
    pub alerts_by_indicator: HashMap<String, HashMap<String, u64>>,
    /// Internal side of flagged connections.
    pub hosts: HashMap<IpAddr, u64>,
    /// Problems with input files, one line each.
    pub input_errors: Vec<String>,
    /// Records in flow logs.
    pub records: u64,
    pub records_skipped: u64,
    /// Non-empty lines of text flow logs (headers and comments included).
    pub lines: u64,
    /// Valid lines that carry no connection: events of other types, NODATA/SKIPDATA.
    pub records_ignored: u64,
    /// Stopped by a signal, with the number of inputs not read at all.
    pub interrupted: Option<usize>,
    /// ... not by a signal but because the alert output was closed by its reader.
    pub output_closed: bool,
}

impl Stats {
    pub fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// Merges another worker's counters.
    pub fn merge(&mut self, o: Stats) {
        self.files += o.files;
        self.files_failed += o.files_failed;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.decoded += o.decoded;
        for (k, v) in o.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
        for (k, v) in o.unknown_linktypes {
            *self.unknown_linktypes.entry(k).or_default() += v;
        }
        self.fragments += o.fragments;
        self.reassembled += o.reassembled;
        self.too_deep += o.too_deep;
        self.conns += o.conns;
        self.conns_flagged += o.conns_flagged;
        self.conns_evicted += o.conns_evicted;
        self.dns_messages += o.dns_messages;
        self.dns_errors += o.dns_errors;
        self.tls_client_hellos += o.tls_client_hellos;
        self.tls_errors += o.tls_errors;
        self.http_requests += o.http_requests;
        self.certs_seen += o.certs_seen;
        self.resolved_derived += o.resolved_derived;
        self.alerts += o.alerts;
        self.alerts_inactive_dropped += o.alerts_inactive_dropped;
        self.blocked += o.blocked;
        for (k, v) in o.alerts_by_set {
            *self.alerts_by_set.entry(k).or_default() += v;
        }
        for (set, per) in o.alerts_by_indicator {
            let mine = self.alerts_by_indicator.entry(set).or_default();
            for (k, v) in per {
                *mine.entry(k).or_default() += v;
            }
        }
        for (k, v) in o.hosts {
            *self.hosts.entry(k).or_default() += v;
        }
        self.input_errors.extend(o.input_errors);
        self.records += o.records;
        self.records_skipped += o.records_skipped;
        self.lines += o.lines;
        self.records_ignored += o.records_ignored;
        self.interrupted = self.interrupted.max(o.interrupted);
        self.output_closed |= o.output_closed;
    }

    /// The human summary.
    pub fn render(&self, secs: f64, indicators: usize) -> String {
        let mut s = String::new();
        let mb = self.bytes as f64 / 1e6;
        let secs = secs.max(1e-9);
        let _ = writeln!(s, "iocmatch: {} indicators loaded", indicators);
        let _ = writeln!(
            s,
            "  input     {} file(s), {} packets, {:.1} MB in {:.2} s ({:.0} MB/s, {:.2} Mpkt/s)",
            self.files,
            self.packets,
            mb,
            secs,
            mb / secs,
            self.packets as f64 / secs / 1e6
        );
        if self.records > 0 || self.records_skipped > 0 || self.lines > 0 {
            let _ = write!(s, "  records   {} flow-log records, {} skipped", self.records, self.records_skipped);
            if self.lines > 0 {
                let _ = write!(
                    s,
                    "; {} text lines, {} of them without a connection (other event types, NODATA/SKIPDATA)",
                    self.lines, self.records_ignored
                );
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "  decoded   {} packets; skipped {}{}",
            self.decoded,
            self.skipped_total(),
            if self.skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.skipped.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))
            }
        );
        for (lt, n) in &self.unknown_linktypes {
            let _ = writeln!(s, "            link type {lt} is not decoded: {n} packets skipped");
        }
        if self.fragments > 0 || self.too_deep > 0 {
            let _ = writeln!(
                s,
                "  fragments {} seen, {} datagrams reassembled; {} packets nested past the tunnel depth limit",
                self.fragments, self.reassembled, self.too_deep
            );
        }
        let _ = writeln!(
            s,
            "  conns     {} connections, {} flagged, {} evicted at the cap",
            self.conns, self.conns_flagged, self.conns_evicted
        );
        let _ = writeln!(
            s,
            "  app       {} DNS messages ({} unreadable), {} TLS ClientHellos ({} unreadable), {} server certificates, {} HTTP requests, {} DNS-derived addresses",
            self.dns_messages, self.dns_errors, self.tls_client_hellos, self.tls_errors, self.certs_seen, self.http_requests, self.resolved_derived
        );
        if self.blocked > 0 {
            let _ = writeln!(s, "  blocked   {} packets of flagged connections dropped", self.blocked);
        }
        let _ = writeln!(s, "  alerts    {}", self.alerts);
        if self.alerts_inactive_dropped > 0 {
            let _ = writeln!(
                s,
                "            {} more dropped by --active-only (indicator not active then)",
                self.alerts_inactive_dropped
            );
        }
        for (set, n) in &self.alerts_by_set {
            let _ = writeln!(s, "    set {set}: {n}");
        }
        let mut top: Vec<_> = self
            .alerts_by_indicator
            .iter()
            .flat_map(|(set, per)| per.iter().map(move |(ind, n)| ((set, ind), n)))
            .collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(&b.0)));
        for ((set, ind), n) in top.iter().take(10) {
            let _ = writeln!(s, "    indicator {ind} ({set}): {n}");
        }
        let mut hosts: Vec<_> = self.hosts.iter().collect();
        hosts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !hosts.is_empty() {
            let list: Vec<String> = hosts.iter().take(10).map(|(h, n)| format!("{h} ({n})")).collect();
            let _ = writeln!(s, "  hosts     {}", list.join(", "));
        }
        for e in &self.input_errors {
            let _ = writeln!(s, "  error     {e}");
        }
        if let Some(not_read) = self.interrupted {
            let why = if self.output_closed {
                "the alert output was closed by its reader: the counts cover what was read until then"
            } else {
                "interrupted by a signal: the counts and alerts cover what was read before it"
            };
            let _ = writeln!(
                s,
                "  stopped   {why}{}",
                if not_read > 0 { format!("; {not_read} input(s) not read") } else { String::new() }
            );
        }
        s
    }
}
