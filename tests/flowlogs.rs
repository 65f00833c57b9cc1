//! Flow logs end to end: the same generated flows rendered as every format `scan` reads, scanned
//! by the binary, and the flagged connections compared with the truth (recall and precision
//! 1.0), plus the alerts' fields and what happens to malformed, compressed and template-less
//! input.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use iocmatch::synth::flows::{self, tuple_key, Caps, Expect, Export, Item, Scenario, Text, TupleKey};
use serde_json::Value;

const N: usize = 3000;
const SEED: u64 = 0x10c_0a7c;
const EXPORTER: &str = "10.99.0.1:50000";
const COLLECTOR: &str = "10.99.0.2:2055";

struct Fixture {
    s: Scenario,
    dir: tempfile::TempDir,
    csv: PathBuf,
}

fn fixture() -> Fixture {
    let s = flows::generate(N, SEED);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iocs.csv");
    std::fs::write(&csv, &s.indicators_csv).unwrap();
    Fixture { s, dir, csv }
}

impl Fixture {
    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }
}

struct Scan {
    alerts: Vec<Value>,
    stderr: String,
    code: Option<i32>,
}

fn scan(f: &Fixture, files: &[&Path]) -> Scan {
    let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["scan", "--no-default-set", "--indicators"])
        .arg(&f.csv)
        .args(files)
        .output()
        .expect("run iocmatch");
    let alerts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .filter(|v| v["event_type"] == "alert")
        .collect();
    Scan { alerts, stderr: String::from_utf8_lossy(&out.stderr).into_owned(), code: out.status.code() }
}

fn key_of(a: &Value) -> TupleKey {
    let ip = |k: &str| a[k].as_str().unwrap().parse::<IpAddr>().unwrap();
    let port = |k: &str| a[k].as_u64().unwrap() as u16;
    let proto = match a["proto"].as_str().unwrap() {
        "TCP" => 6,
        "UDP" => 17,
        p => panic!("unexpected proto {p}"),
    };
    tuple_key(proto, (ip("src_ip"), port("src_port")), (ip("dest_ip"), port("dest_port")))
}

/// Where the records of one item were rendered: (file name, line map).
struct Source<'a> {
    file: &'a Path,
    text: &'a Text,
}

/// Checks recall and precision over 5-tuples, each expected reason's field and indicator, and
/// (for text logs) that `capture.file`/`capture.line` point at the record.
fn check(name: &str, s: &Scenario, flows: &[usize], caps: Caps, run: &Scan, sources: &[Source<'_>]) -> Vec<Expect> {
    let want = s.expected(flows, caps);
    assert!(want.len() > 50, "{name}: too few planted flows ({})", want.len());
    let want_keys: BTreeSet<TupleKey> = want.iter().map(|e| e.key).collect();
    let got_keys: BTreeSet<TupleKey> = run.alerts.iter().map(key_of).collect();
    let missed: Vec<_> = want.iter().filter(|e| !got_keys.contains(&e.key)).take(5).collect();
    let extra: Vec<_> = got_keys.difference(&want_keys).take(5).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "{name}: recall {}/{}, {} false positives\nmissed: {missed:#?}\nextra: {extra:#?}\nstderr:\n{}",
        want_keys.intersection(&got_keys).count(),
        want_keys.len(),
        got_keys.difference(&want_keys).count(),
        run.stderr
    );
    assert_eq!(run.code, Some(1), "{name}: exit 1 when something is flagged");
    let mut by_key: BTreeMap<TupleKey, Vec<&Value>> = BTreeMap::new();
    for a in &run.alerts {
        by_key.entry(key_of(a)).or_default().push(a);
    }
    for e in &want {
        let alerts = &by_key[&e.key];
        let a = alerts
            .iter()
            .find(|a| a["match"]["field"] == e.reason.field())
            .unwrap_or_else(|| panic!("{name}: no {} alert for {e:?}: {alerts:#?}", e.reason.field()));
        assert_eq!(a["match"]["indicator"], e.indicator.as_str(), "{name}: {e:?}");
        if e.reason == flows::Reason::Resolved {
            assert!(a["match"]["resolved_from"].as_str().unwrap().ends_with(&e.indicator), "{name}: {a}");
        }
        if sources.is_empty() {
            continue;
        }
        let at = sources.iter().find_map(|src| {
            let line = match e.item {
                Item::Flow(i) => src.text.flow_lines.get(&i),
                Item::Dns(i) => src.text.dns_lines.get(&i),
            }?;
            Some((src.file, *line))
        });
        let (file, line) = at.unwrap_or_else(|| panic!("{name}: {e:?} was not rendered"));
        assert_eq!(a["capture"]["file"], file.display().to_string(), "{name}: {e:?}");
        assert_eq!(a["capture"]["line"], line, "{name}: {e:?} {a}");
    }
    want
}

fn all(s: &Scenario) -> Vec<usize> {
    (0..s.flows.len()).collect()
}

const FULL: Caps = Caps { ipv6: true, pkt_dst: false, dns: false };

#[test]
fn zeek_conn_tsv_and_json_flag_addresses_and_networks() {
    let f = fixture();
    let a = all(&f.s);
    for (name, text) in [("conn.log", flows::zeek_conn_tsv(&f.s, &a)), ("conn.json", flows::zeek_conn_json(&f.s, &a))] {
        let p = f.write(name, text.data.as_bytes());
        let run = scan(&f, &[&p]);
        let want = check(name, &f.s, &a, FULL, &run, &[Source { file: &p, text: &text }]);
        // Without DNS, the flows to resolved addresses stay quiet; inbound flows are flow.src.
        assert!(want.iter().any(|e| e.reason == flows::Reason::Src));
        assert!(run.stderr.contains(&format!("{N} flow-log records, 0 skipped")), "{name}: {}", run.stderr);
    }
}

#[test]
fn zeek_dns_log_flags_resolved_addresses_before_or_after_the_conn_log() {
    let f = fixture();
    let a = all(&f.s);
    let conn = flows::zeek_conn_tsv(&f.s, &a);
    let dns = flows::zeek_dns_tsv(&f.s, true);
    let cp = f.write("conn.log", conn.data.as_bytes());
    let dp = f.write("dns.log", dns.data.as_bytes());
    let caps = Caps { dns: true, ..FULL };
    let sources = [Source { file: &cp, text: &conn }, Source { file: &dp, text: &dns }];
    for order in [[&dp, &cp], [&cp, &dp]] {
        let run = scan(&f, &[order[0].as_path(), order[1].as_path()]);
        let want = check("zeek conn+dns", &f.s, &a, caps, &run, &sources);
        assert!(want.iter().any(|e| e.reason == flows::Reason::Resolved));
        assert!(want.iter().any(|e| e.reason == flows::Reason::DnsQuery));
    }
    // Zeek JSON conn.log with the TSV dns.log after it.
    let json = flows::zeek_conn_json(&f.s, &a);
    let jp = f.write("conn.json", json.data.as_bytes());
    let run = scan(&f, &[&jp, &dp]);
    check(
        "zeek json+dns",
        &f.s,
        &a,
        caps,
        &run,
        &[Source { file: &jp, text: &json }, Source { file: &dp, text: &dns }],
    );
}

#[test]
fn eve_flow_and_netflow_events_with_dns_events() {
    let f = fixture();
    let a = all(&f.s);
    for kind in [flows::EveKind::Flow, flows::EveKind::Netflow] {
        // Connections alone.
        let t = flows::eve(&f.s, &a, kind, false);
        let p = f.write("eve-flows.json", t.data.as_bytes());
        check(&format!("eve {kind:?}"), &f.s, &a, FULL, &scan(&f, &[&p]), &[Source { file: &p, text: &t }]);
        // DNS events in the same file.
        let t = flows::eve(&f.s, &a, kind, true);
        let p = f.write("eve.json", t.data.as_bytes());
        let caps = Caps { dns: true, ..FULL };
        check(&format!("eve {kind:?}+dns"), &f.s, &a, caps, &scan(&f, &[&p]), &[Source { file: &p, text: &t }]);
        // DNS events in another file given after the connections.
        let conns = flows::eve(&f.s, &a, kind, false);
        let dns = flows::eve(&f.s, &[], kind, true);
        let cp = f.write("eve-conns.json", conns.data.as_bytes());
        let dp = f.write("eve-dns.json", dns.data.as_bytes());
        let run = scan(&f, &[&cp, &dp]);
        let sources = [Source { file: &cp, text: &conns }, Source { file: &dp, text: &dns }];
        check(&format!("eve {kind:?} then dns"), &f.s, &a, caps, &run, &sources);
    }
}

#[test]
fn cloud_and_nfdump_logs() {
    let f = fixture();
    let a = all(&f.s);
    let cases: [(&str, Text, Caps); 5] = [
        // The default format has no packet addresses: NAT flows show only the NAT address.
        ("vpc-v2.log", flows::aws_v2(&f.s, &a), FULL),
        ("vpc-v5.log", flows::aws_v5_custom(&f.s, &a), Caps { pkt_dst: true, ..FULL }),
        ("gcp.json", flows::gcp_json(&f.s, &a), FULL),
        ("nsg.json", flows::azure_nsg_v2(&f.s, &a), FULL),
        ("nfdump.csv", flows::nfdump_csv(&f.s, &a), FULL),
    ];
    for (name, text, caps) in cases {
        let p = f.write(name, text.data.as_bytes());
        let run = scan(&f, &[&p]);
        let want = check(name, &f.s, &a, caps, &run, &[Source { file: &p, text: &text }]);
        if caps.pkt_dst {
            let e = want.iter().find(|e| e.reason == flows::Reason::PktDst).expect("NAT flows planted");
            let Item::Flow(i) = e.item else { unreachable!() };
            let alert = run.alerts.iter().find(|x| key_of(x) == e.key).unwrap();
            // The connection is the logged one (NAT address); the match is the packet address.
            assert_eq!(alert["dest_ip"], f.s.flows[i].dst.to_string());
            assert_eq!(alert["match"]["value"], f.s.flows[i].pkt_dst.unwrap().to_string());
        }
    }
}

fn check_export(name: &str, f: &Fixture, flows_: &[usize], caps: Caps, e: &Export, run: &Scan) {
    let want = check(name, &f.s, flows_, caps, run, &[]);
    let exporter: SocketAddr = EXPORTER.parse().unwrap();
    for x in &want {
        let Item::Flow(i) = x.item else { continue };
        let (datagram, seq) = e.flow_at[&i];
        let a = run.alerts.iter().find(|a| key_of(a) == x.key).unwrap();
        assert_eq!(a["capture"]["exporter"], exporter.to_string(), "{name}: {a}");
        assert_eq!(a["capture"]["sequence"], seq, "{name}: {a}");
        assert_eq!(a["capture"]["packet"], datagram as u64 + 1, "{name}: {a}");
    }
}

#[test]
fn netflow_v5_v9_and_ipfix_in_captures() {
    let f = fixture();
    let a = all(&f.s);
    let (ex, co) = (EXPORTER.parse().unwrap(), COLLECTOR.parse().unwrap());
    let v4: Vec<usize> = a.iter().copied().filter(|&i| f.s.flows[i].src.is_ipv4()).collect();
    let cases = [
        ("v5.pcap", flows::netflow_v5(&f.s, &a), v4.clone(), Caps { ipv6: false, pkt_dst: false, dns: false }),
        ("v9.pcap", flows::netflow_v9(&f.s, &a), a.clone(), Caps { pkt_dst: true, ..FULL }),
        ("ipfix.pcap", flows::ipfix(&f.s, &a), a.clone(), Caps { pkt_dst: true, ..FULL }),
    ];
    for (name, e, rendered, caps) in cases {
        let p = f.write(name, &flows::export_pcap(&e.datagrams, ex, co));
        let run = scan(&f, &[&p]);
        check_export(name, &f, &rendered, caps, &e, &run);
        assert!(run.stderr.contains(&format!("{} flow-log records", rendered.len())), "{name}: {}", run.stderr);
    }
}

#[test]
fn bad_lines_are_reported_with_their_line_and_the_rest_is_read() {
    let f = fixture();
    let a = all(&f.s);
    let text = flows::zeek_conn_tsv(&f.s, &a);
    // Corrupt three records: a bad address, a bad port, and invalid UTF-8.
    let mut lines: Vec<Vec<u8>> = text.data.lines().map(|l| l.as_bytes().to_vec()).collect();
    let victims: Vec<usize> =
        a.iter().copied().filter(|i| f.s.flow_reasons[*i].is_none()).skip(10).step_by(97).take(3).collect();
    let line_no: Vec<u64> = victims.iter().map(|i| text.flow_lines[i]).collect();
    let l0 = &mut lines[line_no[0] as usize - 1];
    *l0 = String::from_utf8(l0.clone()).unwrap().replacen("\t10.20.", "\t10.20.999.", 1).into_bytes();
    let l1 = &mut lines[line_no[1] as usize - 1];
    *l1 = String::from_utf8(l1.clone())
        .unwrap()
        .replacen(&format!("\t{}\t", f.s.flows[victims[1]].sport), "\t7x\t", 1)
        .into_bytes();
    lines[line_no[2] as usize - 1].extend_from_slice(b"\xff\xfe");
    let data = lines.join(&b'\n');
    let p = f.write("bad-conn.log", &data);
    let run = scan(&f, &[&p]);
    check("bad lines", &f.s, &a, FULL, &run, &[Source { file: &p, text: &text }]);
    for n in &line_no {
        assert!(run.stderr.contains(&format!("{}:{n}: ", p.display())), "line {n} reported:\n{}", run.stderr);
    }
    assert!(run.stderr.contains(&format!("{} flow-log records, 3 skipped", N - 3)), "{}", run.stderr);
}

#[test]
fn ipfix_data_without_its_template_is_reported_once_and_counted() {
    let f = fixture();
    let a = all(&f.s);
    let e = flows::ipfix(&f.s, &a);
    let (ex, co) = (EXPORTER.parse().unwrap(), COLLECTOR.parse().unwrap());
    // The template message never arrived.
    let p = f.write("no-template.pcap", &flows::export_pcap(&e.datagrams[1..], ex, co));
    let run = scan(&f, &[&p]);
    assert_eq!(run.alerts.len(), 0, "nothing decodable, nothing flagged");
    assert_eq!(run.code, Some(0));
    for id in [256, 257] {
        let needle = format!("IPFIX data set for template {id} (observation domain 42) arrived before its template");
        assert_eq!(run.stderr.matches(&needle).count(), 1, "reported once:\n{}", run.stderr);
    }
    let sets: usize = e.datagrams[1..].iter().map(|d| count_data_sets(d)).sum();
    assert!(
        run.stderr.contains(&format!("0 flow-log records, {sets} skipped")),
        "counted ({sets} sets):\n{}",
        run.stderr
    );
}

fn count_data_sets(msg: &[u8]) -> usize {
    let mut off = 16;
    let mut n = 0;
    while off + 4 <= msg.len() {
        let id = u16::from_be_bytes([msg[off], msg[off + 1]]);
        let len = u16::from_be_bytes([msg[off + 2], msg[off + 3]]) as usize;
        n += usize::from(id >= 256);
        off += len.max(4);
    }
    n
}

#[test]
fn gzip_and_zstd_compressed_logs() {
    let f = fixture();
    let a = all(&f.s);
    let conn = flows::zeek_conn_tsv(&f.s, &a);
    let dns = flows::zeek_dns_tsv(&f.s, true);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(conn.data.as_bytes()).unwrap();
    let cp = f.write("conn.log.gz", &gz.finish().unwrap());
    let dp = f.write("dns.log.zst", &zstd::encode_all(dns.data.as_bytes(), 3).unwrap());
    let run = scan(&f, &[&cp, &dp]);
    let caps = Caps { dns: true, ..FULL };
    check("compressed", &f.s, &a, caps, &run, &[Source { file: &cp, text: &conn }, Source { file: &dp, text: &dns }]);
}

/// Two runs over the same input write the same bytes, flow events included: connections that
/// end together (in a sweep, or at the end of the input) are reported in the order they began,
/// not in the hash table's order, which changes from run to run.
#[test]
fn the_same_input_gives_the_same_output_twice() {
    let s = flows::generate(12_000, SEED);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iocs.csv");
    std::fs::write(&csv, &s.indicators_csv).unwrap();
    let conn = dir.path().join("conn.log");
    std::fs::write(&conn, flows::zeek_conn_tsv(&s, &(0..s.flows.len()).collect::<Vec<_>>()).data).unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
            .args(["scan", "--no-default-set", "--indicators"])
            .arg(&csv)
            .arg(&conn)
            .output()
            .expect("run iocmatch");
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    let flow_events = first.lines().filter(|l| l.contains(r#""event_type":"flow""#)).count();
    assert!(flow_events > 100, "only {flow_events} flow events");
    for _ in 0..3 {
        assert!(run() == first, "a second run wrote different output");
    }
}

/// sFlow: a switch samples 1 packet in N and sends its first bytes to a collector. A capture of
/// that export traffic (UDP 6343) is read as a flow log whose records are the sampled packets:
/// their addresses, a whole DNS message and the DNS correlation it feeds, a ClientHello where
/// the sample is long enough to hold it; each alert says the packet was sampled, and how.
#[test]
fn sflow_samples_in_a_capture_are_matched_with_their_sampling_rate() {
    use iocmatch::synth::{addr, dns_response, ethernet, ip, sflow_datagram, tcp, tls_client_hello, udp, Rr};
    let dir = tempfile::tempdir().unwrap();
    let ind = dir.path().join("ind.csv");
    std::fs::write(&ind, "indicator,type\nflagged.example,domain\n198.51.100.0/24,cidr\n").unwrap();
    let frame = |p: Vec<u8>| ethernet(None, 0x0800, &p);
    let answer = dns_response(7, "c2.flagged.example", 1, &[Rr::Addr("c2.flagged.example", addr("203.0.113.80"))]);
    let dns = frame(ip(addr("10.0.0.53"), addr("10.0.0.9"), 17, udp(53, 40000, &answer), Some(6)));
    let syn = |dst: &str, sport| frame(ip(addr("10.0.0.9"), addr(dst), 6, tcp(sport, 443, 1, 0, 0x02, &[]), Some(16)));
    let hello = tls_client_hello(Some("www.flagged.example"));
    let tls = frame(ip(addr("10.0.0.9"), addr("192.0.2.80"), 6, tcp(40003, 443, 2, 1, 0x18, &hello), Some(16)));
    let arp = ethernet(None, 0x0806, &[0; 28]);
    let (flagged, resolved) = (syn("198.51.100.7", 40001), syn("203.0.113.80", 40002));
    let datagrams = vec![
        // The default 128 bytes: the DNS answer whole, the ClientHello cut short.
        sflow_datagram([192, 0, 2, 1], 1, 512, &[&dns, &flagged, &tls, &arp], 128),
        sflow_datagram([192, 0, 2, 1], 2, 512, &[&resolved, &tls], 1024),
    ];
    let capture = dir.path().join("sflow.pcap");
    let (ex, co) = ("10.99.0.1:50000".parse().unwrap(), "10.99.0.2:6343".parse().unwrap());
    std::fs::write(&capture, flows::export_pcap(&datagrams, ex, co)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["scan", "--no-default-set", "--indicators"])
        .args([&ind, &capture])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .collect();
    let field = |f: &str| -> Vec<&Value> { alerts.iter().filter(|a| a["match"]["field"] == f).collect() };
    let fields: BTreeSet<&str> = alerts.iter().map(|a| a["match"]["field"].as_str().unwrap()).collect();
    assert_eq!(fields, BTreeSet::from(["dns.query", "flow.dst", "dns.resolved", "tls.sni"]), "{alerts:#?}");
    assert_eq!(field("dns.query")[0]["match"]["value"], "c2.flagged.example");
    assert_eq!(field("flow.dst")[0]["dest_ip"], "198.51.100.7");
    let r = field("dns.resolved")[0];
    assert_eq!(
        (r["dest_ip"].as_str(), r["match"]["resolved_from"].as_str()),
        (Some("203.0.113.80"), Some("c2.flagged.example"))
    );
    let sni = field("tls.sni");
    assert_eq!(sni.len(), 1, "only the long sample holds the whole ClientHello: {sni:#?}");
    assert_eq!(sni[0]["capture"]["sequence"], 2);
    for a in &alerts {
        let c = &a["capture"];
        assert_eq!((c["sampling_rate"].as_u64(), c["exporter"].as_str()), (Some(512), Some("10.99.0.1:50000")), "{a}");
    }
    // Six samples: the ARP frame holds no IP packet, and is counted, not lost.
    assert!(err.contains("5 flow-log records, 1 skipped"), "{err}");
}

/// A capture holding sFlow export traffic next to the traffic it samples, split over workers:
/// the DNS answer in a sample reaches every worker, so the connections to the address it gave
/// are flagged wherever they land, as one engine flags them.
#[test]
fn sflow_answers_reach_every_worker() {
    use iocmatch::synth::{addr, dns_response, ethernet, ip, sflow_datagram, tcp, udp, Capture, Rr};
    let dir = tempfile::tempdir().unwrap();
    let ind = dir.path().join("ind.csv");
    std::fs::write(&ind, "indicator,type\nflagged.example,domain\n").unwrap();
    let answer = dns_response(7, "c2.flagged.example", 1, &[Rr::Addr("c2.flagged.example", addr("203.0.113.80"))]);
    let dns = ethernet(None, 0x0800, &ip(addr("10.0.0.53"), addr("10.0.0.9"), 17, udp(53, 40000, &answer), Some(6)));
    let mut c = Capture::new(Vec::new(), 1_700_000_000_000_000).unwrap();
    let datagram = sflow_datagram([192, 0, 2, 1], 1, 256, &[&dns], 128);
    c.udp((addr("10.99.0.1"), 50000), (addr("10.99.0.2"), 6343), &datagram).unwrap();
    for i in 0..40u8 {
        let syn = ip(addr(&format!("10.9.{i}.{i}")), addr("203.0.113.80"), 6, tcp(50_000, 443, 1, 0, 0x02, &[]), None);
        c.ip_packet(&syn).unwrap();
    }
    let capture = dir.path().join("mixed.pcap");
    std::fs::write(&capture, c.w.into_inner()).unwrap();
    let run = |j: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
            .args(["scan", "--no-default-set", "-j", j, "--indicators"])
            .args([&ind, &capture])
            .output()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
        lines.sort();
        lines
    };
    let one = run("1");
    assert_eq!(one.iter().filter(|l| l.contains("dns.resolved")).count(), 40, "{one:#?}");
    for j in ["2", "3"] {
        assert!(run(j) == one, "-j {j} finds what one engine finds");
    }
}
