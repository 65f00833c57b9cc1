//! Live counters: written by the readers and workers, read by the periodic log line, the exit
//! summary and the Prometheus text endpoint (`--metrics ADDR`, a tiny HTTP/1.0 responder).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters of one capture interface.
#[derive(Default, Debug)]
pub struct Iface {
    pub name: String,
    /// Frames the reader took from libpcap.
    pub packets: AtomicU64,
    /// libpcap's own counters (`pcap_stats`): received, dropped for want of buffer space, and
    /// dropped by the interface or driver.
    pub pcap_received: AtomicU64,
    pub pcap_dropped: AtomicU64,
    pub pcap_ifdropped: AtomicU64,
    /// Frames we dropped because a worker's queue was full.
    pub queue_dropped: AtomicU64,
}

/// Counters of one worker (copied from its engine after every batch).
#[derive(Default, Debug)]
pub struct Worker {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub conns: AtomicU64,
    pub conns_evicted: AtomicU64,
    pub alerts: AtomicU64,
    pub dns_derived: AtomicU64,
    /// Packets of flagged connections dropped inline (`--nfqueue --block`).
    pub blocked: AtomicU64,
    /// DNS-derived addresses not shared with other workers (their queue was full).
    pub shared_dropped: AtomicU64,
}

#[derive(Debug)]
pub struct Metrics {
    pub started: Instant,
    pub ifaces: Vec<Iface>,
    pub workers: Vec<Worker>,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub indicators: AtomicU64,
    pub alerts_written: AtomicU64,
    pub output_errors: AtomicU64,
}

/// Totals at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub captured: u64,
    pub packets: u64,
    pub bytes: u64,
    pub pcap_dropped: u64,
    pub pcap_ifdropped: u64,
    pub queue_dropped: u64,
    pub conns: u64,
    pub conns_evicted: u64,
    pub alerts: u64,
    pub blocked: u64,
    pub reloads: u64,
    pub reload_failures: u64,
}

impl Metrics {
    pub fn new(ifaces: &[String], workers: usize) -> Metrics {
        Metrics {
            started: Instant::now(),
            ifaces: ifaces.iter().map(|n| Iface { name: n.clone(), ..Default::default() }).collect(),
            workers: (0..workers).map(|_| Worker::default()).collect(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            indicators: AtomicU64::new(0),
            alerts_written: AtomicU64::new(0),
            output_errors: AtomicU64::new(0),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let i = |f: fn(&Iface) -> &AtomicU64| self.ifaces.iter().map(|x| f(x).load(Relaxed)).sum::<u64>();
        let w = |f: fn(&Worker) -> &AtomicU64| self.workers.iter().map(|x| f(x).load(Relaxed)).sum::<u64>();
        Snapshot {
            captured: i(|x| &x.packets),
            packets: w(|x| &x.packets),
            bytes: w(|x| &x.bytes),
            pcap_dropped: i(|x| &x.pcap_dropped),
            pcap_ifdropped: i(|x| &x.pcap_ifdropped),
            queue_dropped: i(|x| &x.queue_dropped),
            conns: w(|x| &x.conns),
            conns_evicted: w(|x| &x.conns_evicted),
            alerts: w(|x| &x.alerts),
            blocked: w(|x| &x.blocked),
            reloads: self.reloads.load(Relaxed),
            reload_failures: self.reload_failures.load(Relaxed),
        }
    }

    /// The log line: totals, and rates since `prev` taken `secs` ago.
    pub fn log_line(&self, prev: Option<(Snapshot, f64)>) -> String {
        let s = self.snapshot();
        // Inline there is no capture to drop packets: a full netfilter queue passes them on
        // uninspected, which the kernel does not count (compare the rule's counter).
        let drops = if self.ifaces.is_empty() {
            String::new()
        } else {
            format!(
                " drops: libpcap {} (buffer) + {} (interface), ours {} (queue full);",
                s.pcap_dropped, s.pcap_ifdropped, s.queue_dropped
            )
        };
        let mut line = format!(
            "stats: {} packets ({:.1} MB) inspected;{drops} {} connections, {} evicted; {} alerts; {} reloads ({} failed)",
            s.packets,
            s.bytes as f64 / 1e6,
            s.conns,
            s.conns_evicted,
            s.alerts,
            s.reloads,
            s.reload_failures
        );
        if s.blocked > 0 {
            let _ = write!(line, "; {} packets blocked", s.blocked);
        }
        if let Some((p, secs)) = prev.filter(|p| p.1 > 0.0) {
            let _ = write!(
                line,
                "; last {:.0} s: {:.0} pkt/s, {:.1} Mbit/s",
                secs,
                (s.packets - p.packets) as f64 / secs,
                (s.bytes - p.bytes) as f64 * 8.0 / secs / 1e6
            );
        }
        if s.queue_dropped > 0 {
            line.push_str(" (queue drops: the workers cannot keep up; add --workers or a --filter)");
        }
        line
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(&self) -> String {
        let mut o = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, u64)]| {
            let _ = writeln!(o, "# HELP iocmatch_{name} {help}\n# TYPE iocmatch_{name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(o, "iocmatch_{name}{labels} {v}");
            }
        };
        let per_iface = |f: fn(&Iface) -> &AtomicU64| -> Vec<(String, u64)> {
            self.ifaces.iter().map(|x| (format!("{{interface=\"{}\"}}", esc(&x.name)), f(x).load(Relaxed))).collect()
        };
        let s = self.snapshot();
        let one = |v: u64| vec![(String::new(), v)];
        metric("captured_packets_total", "counter", "Frames read from libpcap.", &per_iface(|x| &x.packets));
        metric("pcap_received_total", "counter", "Frames libpcap reports received.", &per_iface(|x| &x.pcap_received));
        let mut drops = Vec::new();
        for x in &self.ifaces {
            let n = esc(&x.name);
            drops.push((format!("{{interface=\"{n}\",where=\"kernel\"}}"), x.pcap_dropped.load(Relaxed)));
            drops.push((format!("{{interface=\"{n}\",where=\"interface\"}}"), x.pcap_ifdropped.load(Relaxed)));
            drops.push((format!("{{interface=\"{n}\",where=\"queue\"}}"), x.queue_dropped.load(Relaxed)));
        }
        metric(
            "dropped_packets_total",
            "counter",
            "Frames lost: by the kernel buffer, the interface, or a full worker queue.",
            &drops,
        );
        metric("packets_total", "counter", "Frames inspected by the workers.", &one(s.packets));
        metric("bytes_total", "counter", "Bytes inspected by the workers.", &one(s.bytes));
        metric("connections_total", "counter", "Connections seen.", &one(s.conns));
        metric(
            "connections_evicted_total",
            "counter",
            "Connections evicted at --max-connections.",
            &one(s.conns_evicted),
        );
        metric("alerts_total", "counter", "Alerts raised.", &one(s.alerts));
        metric(
            "blocked_packets_total",
            "counter",
            "Packets of flagged connections dropped inline (--nfqueue --block).",
            &one(s.blocked),
        );
        metric(
            "alerts_written_total",
            "counter",
            "Alerts written to the output.",
            &one(self.alerts_written.load(Relaxed)),
        );
        metric(
            "output_errors_total",
            "counter",
            "Failed writes to the alert output.",
            &one(self.output_errors.load(Relaxed)),
        );
        metric(
            "reloads_total",
            "counter",
            "Indicator set reloads, by result.",
            &[("{result=\"ok\"}".into(), s.reloads), ("{result=\"failed\"}".into(), s.reload_failures)],
        );
        metric("indicators", "gauge", "Indicators in the active set.", &one(self.indicators.load(Relaxed)));
        metric("uptime_seconds", "gauge", "Seconds since start.", &one(self.started.elapsed().as_secs()));
        o
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Serves `GET /metrics` (and `/`) from `m` on an already bound listener, one request at a
/// time, in a thread of its own.
pub fn serve(listener: TcpListener, m: Arc<Metrics>) {
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                let mut req = [0u8; 2048];
                let mut n = 0;
                while n < req.len() {
                    match s.read(&mut req[n..]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if req[..n].windows(4).any(|w| w == b"\r\n\r\n") || req[..n].windows(2).any(|w| w == b"\n\n") {
                        break;
                    }
                }
                let line = String::from_utf8_lossy(&req[..n]);
                let path = line.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if line.starts_with("GET ") && matches!(path, "/metrics" | "/") {
                    ("200 OK", m.prometheus())
                } else {
                    ("404 Not Found", "not found: try /metrics\n".to_string())
                };
                let _ = write!(
                    s,
                    "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        })
        .expect("spawning the metrics thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_and_http() {
        let m = Arc::new(Metrics::new(&["eth0".into()], 2));
        m.ifaces[0].queue_dropped.store(3, Relaxed);
        m.workers[1].packets.store(10, Relaxed);
        m.workers[0].packets.store(5, Relaxed);
        let text = m.prometheus();
        assert!(text.contains("iocmatch_packets_total 15\n"), "{text}");
        assert!(text.contains("iocmatch_dropped_packets_total{interface=\"eth0\",where=\"queue\"} 3\n"));
        assert!(m.log_line(None).contains("ours 3 (queue full)"));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        serve(l, m);
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.0 200 OK"), "{resp}");
        assert!(resp.contains("iocmatch_packets_total 15"));
    }
}
