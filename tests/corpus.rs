//! Checks what `iocmatch scan` sees on the real captures of the shared test corpus against the
//! tshark oracle that ships with it (`../shared/corpus`, see its README.md).
//!
//! For each capture an indicator file is generated from the oracle itself: every DNS query name
//! and CNAME target, every TLS SNI and every HTTP Host as `domain-exact`, plus `0.0.0.0/0` and
//! `::/0`, so that every connection raises `ip.src`/`ip.dst` alerts. Then:
//!
//! * every capture is read without error, except those the MANIFEST marks `malformed-file`,
//!   which must stop with one clear error line naming the file (and never panic);
//! * every name tshark saw in DNS must come back in a `dns.query`/`dns.answer` alert, every SNI
//!   in a `tls.sni` alert, every HTTP Host in an `http.host` alert;
//! * the connections (proto + the two endpoints, direction ignored) must be the conversations
//!   tshark lists, both ways;
//! * three workers (`-j 3`) write the same events and counts as one engine.
//!
//! Known, justified differences are listed in [`KNOWN`]; anything else fails the test. The test
//! is skipped (and passes) when the corpus is not there.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

/// A known difference: (capture, check, value, why). `check` is `dns`, `sni`, `http`,
/// `conv-missing` (tshark lists it, we do not) or `conv-extra` (we see it, tshark does not).
/// Conversation values are `proto endpoint endpoint` with the endpoints sorted.
const KNOWN: &[(&str, &str, &str, &str)] = &[
    // LLMNR (udp/5355) is DNS-formatted and tshark decodes it; the engine only reads UDP 53
    // and 5353 as DNS (src/pipeline/engine.rs, `Core::app`). The query rides in GTP-U.
    // The CNAME here is in the ADDITIONAL section (tshark's `cname` column takes every
    // section). iocmatch walks only the question and answer sections, by design (see the
    // module doc of src/decode/dns.rs): additional records are what a resolver did not ask for.
    (
        "suricata-verify__pcaps-20250224-dns-additionals-with-cname.pcap",
        "dns",
        "internal-service.example.net",
        "CNAME in the additional section, which is not walked (by design)",
    ),
    // Malformed on purpose: an IPv6 packet cut inside its fragment header. We keep the
    // addresses with the last next-header we could read (44); tshark calls it a fragment.
    (
        "tcpdump__ip6_frag_asan.pcap",
        "conv-extra",
        "ipproto=44 2243:80:1400:100:19:ffff:ffff:fffb:0 452:22:19:0:41a:e4ff:10ff:484d:0",
        "IPv6 cut inside the fragment header: addresses kept, proto is the fragment header",
    ),
    // Malformed on purpose: the innermost IPv4 of MPLS>6in6>6in6>4in6 is cut short. We roll
    // back to the last complete layer (the 4in6 carrier); tshark has no addresses at all.
    (
        "zeek__trunc-mpls-6in6-6in6-4in6-trunc.pcap",
        "conv-extra",
        "ipproto=4 ff00:0:6929::6904:ff:3bbf:0 ffff:0:69:2900:0:69:400:ff3b:0",
        "truncated innermost header: the last complete layer is the connection (by design)",
    ),
    // Damaged file: tshark shows frame 1 as undissected data, we decode the IPv4/TCP header it
    // holds before the damaged record stops the file.
    (
        "suricata-verify__bug-6875-01__fuzz.pcap",
        "conv-extra",
        "tcp 0.0.16.64:0 192.168.0.0:256",
        "damaged file: frame 1 is decoded as the IPv4/TCP it holds, tshark leaves it as data",
    ),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// A TSV file with a header line, as rows of column -> value.
fn tsv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| header.iter().zip(l.split('\t')).map(|(h, v)| (h.to_string(), v.to_string())).collect())
        .collect()
}

fn col<'a>(row: &'a HashMap<String, String>, name: &str) -> &'a str {
    row.get(name).map(String::as_str).unwrap_or("")
}

fn norm_name(n: &str) -> String {
    n.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Host header -> what iocmatch matches: lowercase, no port, no IPv6 brackets, no trailing dot.
fn norm_host(h: &str) -> String {
    let h = h.trim().to_ascii_lowercase();
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default().to_string()
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or_default().to_string()
    } else {
        h
    };
    h.trim_end_matches('.').to_string()
}

/// Names the indicator loader accepts as a domain (tshark may print anything it decoded).
fn is_hostname(n: &str) -> bool {
    !n.is_empty()
        && n.split('.').all(|l| !l.is_empty())
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && n.parse::<IpAddr>().is_err()
}

/// Our protocol names (alert `proto`) in the oracle's terms.
fn oracle_proto(ours: &str) -> String {
    match ours {
        "TCP" => "tcp".into(),
        "UDP" => "udp".into(),
        "SCTP" => "sctp".into(),
        "ICMP" => "icmp".into(),
        "IPv6-ICMP" => "icmpv6".into(),
        "IGMP" => "ipproto=2".into(),
        "GRE" => "ipproto=47".into(),
        "ESP" => "ipproto=50".into(),
        "AH" => "ipproto=51".into(),
        "IPv6" => "ipproto=41".into(),
        // IPv6 "no next header": the oracle names the last layer instead.
        "59" => "ipv6-other:ipv6".into(),
        n => format!("ipproto={n}"),
    }
}

fn conv_key(proto: &str, a: (IpAddr, u64), b: (IpAddr, u64)) -> String {
    let mut e = [format!("{}:{}", a.0, a.1), format!("{}:{}", b.0, b.1)];
    e.sort();
    format!("{proto} {} {}", e[0], e[1])
}

#[derive(Default)]
struct Tally {
    expected: usize,
    agree: usize,
    known: usize,
}

#[derive(Default)]
struct Report {
    failures: Vec<String>,
    tallies: HashMap<&'static str, Tally>,
    used_known: BTreeSet<(String, String, String)>,
    notes: Vec<String>,
    /// Packets whose fate the summaries account for.
    accounted: u64,
    /// Captures whose events and counts three workers matched.
    sharded: usize,
}

impl Report {
    /// Records one expected value: found, a known difference, or a failure.
    fn check(&mut self, cap: &str, check: &'static str, value: &str, found: bool) {
        let t = self.tallies.entry(check).or_default();
        t.expected += 1;
        if found {
            t.agree += 1;
            return;
        }
        if KNOWN.iter().any(|k| k.0 == cap && k.1 == check && k.2 == value) {
            t.known += 1;
            self.used_known.insert((cap.into(), check.into(), value.into()));
        } else {
            self.failures.push(format!("{cap}: {check}: {value}"));
        }
    }
}

struct Capture {
    name: String,
    malformed_file: bool,
    /// Frames tshark counts in it.
    frames: Option<u64>,
}

fn captures(dir: &Path) -> Vec<Capture> {
    let manifest = tsv(&dir.join("MANIFEST.tsv"));
    let summary = tsv(&dir.join("oracle/SUMMARY.tsv"));
    let mut v: Vec<Capture> = manifest
        .iter()
        .filter(|r| col(r, "kind") == "pcap")
        .map(|r| {
            let name = col(r, "file").trim_start_matches("pcaps/").to_string();
            // tshark lists pcapng custom blocks as frames; capinfos (and iocmatch) count no packet.
            let no_packets = col(r, "features").contains("no-packets");
            let frames = summary
                .iter()
                .find(|s| col(s, "file") == name && !no_packets)
                .and_then(|s| col(s, "frames").parse().ok());
            Capture { malformed_file: col(r, "features").contains("malformed-file"), frames, name }
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn run_one(dir: &Path, work: &Path, cap: &Capture, rep: &Mutex<Report>) {
    let odir = dir.join("oracle/pcaps").join(&cap.name);
    let pcap = dir.join("pcaps").join(&cap.name);

    // What the oracle says.
    let mut names = BTreeSet::new();
    for r in tsv(&odir.join("dns.tsv")) {
        // DNS quoted inside an ICMP error is not a connection of its own: not inspected.
        if col(&r, "note") == "inside-icmp-error" {
            continue;
        }
        for n in col(&r, "qry_name").split(';').chain(col(&r, "cname").split(';')) {
            let n = norm_name(n);
            if !n.is_empty() {
                names.insert(n);
            }
        }
    }
    let snis: BTreeSet<String> =
        tsv(&odir.join("tls.tsv")).iter().map(|r| norm_name(col(r, "sni"))).filter(|s| !s.is_empty()).collect();
    // HTTP over UDP is SSDP/HTTPU (README): iocmatch reads HTTP on TCP only.
    let hosts: BTreeSet<String> = tsv(&odir.join("http.tsv"))
        .iter()
        .filter(|r| col(r, "proto") == "tcp")
        .map(|r| norm_host(col(r, "host")))
        .filter(|h| !h.is_empty())
        .collect();
    let mut convs = BTreeSet::new();
    for r in tsv(&odir.join("conversations.tsv")) {
        let proto = col(&r, "proto");
        // Non-final fragments are listed on their own (the reassembled datagram has its row),
        // non-IP frames and headers too short to hold addresses have nothing to compare.
        if proto == "frag" || proto.starts_with("non-ip") || proto == "ipproto=?" {
            continue;
        }
        let (Ok(src), Ok(dst)) = (col(&r, "src").parse::<IpAddr>(), col(&r, "dst").parse::<IpAddr>()) else {
            continue;
        };
        let port = |c: &str| col(&r, c).parse::<u64>().unwrap_or(0);
        convs.insert(conv_key(proto, (src, port("sport")), (dst, port("dport"))));
    }

    // The indicator set made from it.
    let mut csv = String::from("indicator,type\n0.0.0.0/0,cidr\n::/0,cidr\n");
    let domains: BTreeSet<&String> = names.iter().chain(&snis).chain(&hosts).filter(|n| is_hostname(n)).collect();
    for d in &domains {
        csv.push_str(&format!("{d},domain-exact\n"));
    }
    let ind = work.join(format!("{}.csv", cap.name));
    std::fs::write(&ind, csv).expect("write indicators");

    let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["scan", "--no-default-set", "--indicators"])
        .arg(&ind)
        .arg(&pcap)
        .output()
        .expect("run iocmatch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Three workers must find what one engine finds (README): the same events and counts.
    let sharded = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["scan", "--no-default-set", "-j", "3", "--indicators"])
        .arg(&ind)
        .arg(&pcap)
        .output()
        .expect("run iocmatch -j 3");
    let mut r = rep.lock().unwrap();
    let code = out.status.code();
    if code == Some(101) || stderr.contains("panicked") {
        r.failures.push(format!("{}: panicked (exit {code:?}): {stderr}", cap.name));
        return;
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    // Every frame is accounted for: the summary's packets are tshark's frames (all of them
    // when the file is whole), and each one was decoded or skipped with a reason.
    let number = |line: &str, after: &str| -> Option<u64> {
        let rest = &line[line.find(after)? + after.len()..];
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let input = stderr.lines().find(|l| l.trim_start().starts_with("input"));
    let decoded = stderr.lines().find(|l| l.trim_start().starts_with("decoded"));
    let packets = input.and_then(|l| number(l, "file(s),"));
    let (dec, skipped) = (decoded.and_then(|l| number(l, "decoded")), decoded.and_then(|l| number(l, "skipped")));
    match (packets, dec, skipped) {
        (Some(p), Some(d), Some(k)) => {
            if p != d + k {
                r.failures.push(format!("{}: {p} packets but {d} decoded + {k} skipped: {stderr}", cap.name));
            }
            if !cap.malformed_file && cap.frames.is_some_and(|f| f != p) {
                r.failures.push(format!("{}: {p} packets, tshark counts {:?} frames", cap.name, cap.frames));
            }
            r.accounted += p;
        }
        _ => r.failures.push(format!("{}: no packet accounting in the summary: {stderr}", cap.name)),
    }
    if cap.malformed_file {
        let named = errors.iter().filter(|l| l.contains(&cap.name)).count();
        if errors.len() != 1 || named != 1 || code.is_none() {
            r.failures.push(format!(
                "{}: a damaged file must give exactly one error line naming it, got exit {code:?}: {stderr}",
                cap.name
            ));
        }
    } else if !errors.is_empty() || !matches!(code, Some(0 | 1)) {
        r.failures.push(format!("{}: read failed (exit {code:?}): {stderr}", cap.name));
        return;
    } else if stderr.lines().any(|l| l.trim_start().starts_with("records")) {
        // Flow exports: the one input workers may read differently (README).
        r.notes.push(format!("{}: flow exports, not compared with -j 3", cap.name));
    } else {
        let sorted = |o: &[u8]| {
            let mut v: Vec<String> = String::from_utf8_lossy(o).lines().map(String::from).collect();
            v.sort();
            v
        };
        let counts =
            |e: &str| e.lines().filter(|l| !l.trim_start().starts_with("input")).map(String::from).collect::<Vec<_>>();
        if sorted(&out.stdout) != sorted(&sharded.stdout) {
            r.failures.push(format!("{}: -j 3 writes other events than one engine", cap.name));
        }
        if counts(&stderr) != counts(&String::from_utf8_lossy(&sharded.stderr)) {
            r.failures.push(format!("{}: -j 3 counts otherwise: {stderr}", cap.name));
        }
        r.sharded += 1;
    }
    for n in names.iter().chain(&snis).chain(&hosts) {
        if !is_hostname(n) && n.parse::<IpAddr>().is_err() {
            r.notes.push(format!("{}: {n:?} is not a host name, not checked", cap.name));
        }
    }

    // What iocmatch saw.
    let mut seen: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut ours = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let a: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                r.failures.push(format!("{}: bad JSON line {line:?}: {e}", cap.name));
                continue;
            }
        };
        if a["event_type"] != "alert" {
            continue;
        }
        let field = a["match"]["field"].as_str().unwrap_or_default().to_string();
        let value = a["match"]["value"].as_str().unwrap_or_default().to_string();
        if field == "ip.src" || field == "ip.dst" {
            let ep = |ip: &str, port: &str| -> Option<(IpAddr, u64)> {
                Some((a[ip].as_str()?.parse().ok()?, a[port].as_u64().unwrap_or(0)))
            };
            if let (Some(s), Some(d)) = (ep("src_ip", "src_port"), ep("dest_ip", "dest_port")) {
                ours.insert(conv_key(&oracle_proto(a["proto"].as_str().unwrap_or_default()), s, d));
            }
        }
        seen.entry(field).or_default().insert(value);
    }
    let empty = BTreeSet::new();
    let got = |f: &str| seen.get(f).unwrap_or(&empty);
    for n in names.iter().filter(|n| is_hostname(n)) {
        let found = got("dns.query").contains(n) || got("dns.answer").contains(n);
        r.check(&cap.name, "dns", n, found);
    }
    for s in snis.iter().filter(|n| is_hostname(n)) {
        r.check(&cap.name, "sni", s, got("tls.sni").contains(s));
    }
    for h in &hosts {
        // An address in Host is matched as an address (by the /0 networks here).
        let ip_literal = h.parse::<IpAddr>().map(|ip| ip.to_string());
        let found = got("http.host").contains(h) || ip_literal.is_ok_and(|ip| got("http.host").contains(&ip));
        if is_hostname(h) || h.parse::<IpAddr>().is_ok() {
            r.check(&cap.name, "http", h, found);
        }
    }
    for c in &convs {
        r.check(&cap.name, "conv-missing", c, ours.contains(c));
    }
    for c in &ours {
        // Tallied separately: the "expected" side of this check is what we saw.
        r.check(&cap.name, "conv-extra", c, convs.contains(c));
    }
}

#[test]
fn corpus_agrees_with_tshark_oracle() {
    let dir = corpus_dir();
    if !dir.join("MANIFEST.tsv").exists() {
        println!("skipped: corpus not present ({})", dir.display());
        return;
    }
    let caps = captures(&dir);
    assert!(!caps.is_empty(), "no pcap in MANIFEST.tsv");
    let work = tempfile::tempdir().expect("temp dir");
    let rep = Mutex::new(Report::default());
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(4, |n| n.get()).min(8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(cap) = caps.get(i) else { break };
                run_one(&dir, work.path(), cap, &rep);
            });
        }
    });
    let rep = rep.into_inner().unwrap();

    println!("corpus: {} captures ({} damaged files)", caps.len(), caps.iter().filter(|c| c.malformed_file).count());
    println!("packets accounted for (decoded + skipped = read = tshark's frames): {}", rep.accounted);
    println!("captures where -j 3 finds exactly what one engine finds: {}", rep.sharded);
    for (check, label) in [
        ("dns", "DNS names"),
        ("sni", "TLS SNIs"),
        ("http", "HTTP hosts"),
        ("conv-missing", "tshark conversations seen by iocmatch"),
        ("conv-extra", "iocmatch connections listed by tshark"),
    ] {
        let t = rep.tallies.get(check).map_or((0, 0, 0), |t| (t.expected, t.agree, t.known));
        println!("{label}: {}/{} agree, {} known differences", t.1, t.0, t.2);
    }
    for n in &rep.notes {
        println!("note: {n}");
    }
    for k in KNOWN {
        if !rep.used_known.contains(&(k.0.to_string(), k.1.to_string(), k.2.to_string())) {
            println!("note: known difference no longer occurs, remove it from KNOWN: {} {} {}", k.0, k.1, k.2);
        }
    }
    assert!(
        rep.failures.is_empty(),
        "{} differences with the oracle:\n{}",
        rep.failures.len(),
        rep.failures.join("\n")
    );
}
