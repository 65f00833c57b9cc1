//! Hostile inputs through the whole tool: captures and indicator files built to lie, loop,
//! nest and exhaust. Each test names what it proves. (Parser-level cases, such as DNS pointer
//! loops or TLS length fields, are unit tests next to the parsers.)

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use iocmatch::synth::{self, addr, Capture, PcapWriter};
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iocmatch")).args(args).output().expect("run iocmatch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn alerts(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .collect()
}

/// The number just before `what` on the summary line that contains it.
fn count_before(summary: &str, what: &str) -> u64 {
    let line = summary.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no {what:?} in {summary}"));
    let before = &line[..line.find(what).unwrap()];
    before.split_whitespace().last().and_then(|w| w.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_string_lossy().into_owned()
}

fn scan_with(dir: &Path, indicators: &str, capture: &str, extra: &[&str]) -> Output {
    let list = write(dir, "mine.txt", indicators.as_bytes());
    let mut args = vec!["scan", "--no-default-set", "--indicators", &list];
    args.extend_from_slice(extra);
    args.push(capture);
    run(&args)
}

const CLIENT: (&str, u16) = ("10.0.0.2", 40000);
const SERVER: (&str, u16) = ("203.0.113.9", 443);

fn seg(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    synth::ip(addr(CLIENT.0), addr(SERVER.0), 6, synth::tcp(CLIENT.1, SERVER.1, seq, 1, flags, payload), Some(16))
}

#[test]
fn client_hello_in_one_byte_tcp_segments_still_raises_the_sni_alert() {
    let dir = tempfile::tempdir().unwrap();
    let hello = synth::tls_client_hello(Some("acqv.w8510.com"));
    let mut c = Capture::new(Vec::new(), 1_700_000_000_000_000).unwrap();
    c.ip_packet(&seg(999, synth::SYN, &[])).unwrap();
    for (i, b) in hello.iter().enumerate() {
        c.ip_packet(&seg(1000 + i as u32, synth::ACK | synth::PSH, std::slice::from_ref(b))).unwrap();
    }
    let pcap = write(dir.path(), "split.pcap", &c.w.into_inner());
    let out = scan_with(dir.path(), "w8510.com\n", &pcap, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let a = alerts(&out);
    assert!(
        a.iter().any(|x| x["match"]["field"] == "tls.sni" && x["match"]["value"] == "acqv.w8510.com"),
        "{a:#?}\n{}",
        stderr(&out)
    );
    assert_eq!(count_before(&stderr(&out), "TLS ClientHellos"), 1);
}

/// `depth` IPv4 headers, each carrying the next (IP-in-IP), around a UDP datagram.
fn nested(depth: usize) -> Vec<u8> {
    let mut p = synth::ip(addr("10.9.9.9"), addr("198.51.100.77"), 17, synth::udp(5000, 6000, b"x"), Some(6));
    for i in 1..depth {
        p = synth::ip(addr(&format!("192.0.2.{i}")), addr(&format!("192.0.2.{}", 100 + i)), 4, p, None);
    }
    p
}

#[test]
fn tunnels_nested_beyond_the_depth_limit_are_counted_as_too_deep() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Capture::new(Vec::new(), 1_700_000_000_000_000).unwrap();
    c.ip_packet(&nested(3)).unwrap();
    for _ in 0..3 {
        c.ip_packet(&nested(iocmatch::decode::packet::MAX_DEPTH + 3)).unwrap();
    }
    let pcap = write(dir.path(), "deep.pcap", &c.w.into_inner());
    let out = scan_with(dir.path(), "192.0.2.1\n", &pcap, &[]);
    let err = stderr(&out);
    assert_eq!(count_before(&err, "packets nested past the tunnel depth limit"), 3, "{err}");
    assert_eq!(count_before(&err, "packets; skipped"), 4, "every packet is still decoded: {err}");
    // The outermost layer is still matched.
    assert_eq!(out.status.code(), Some(1), "{err}");
}

fn pcap_header(snaplen: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&snaplen.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v
}

fn pcap_record(v: &mut Vec<u8>, caplen: u32, data: &[u8]) {
    v.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&caplen.to_le_bytes());
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
}

fn syn_frame() -> Vec<u8> {
    let p = seg(1, synth::SYN, &[]);
    synth::ethernet(None, 0x0800, &p)
}

#[test]
fn pcap_record_longer_than_the_snap_length_is_read_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = pcap_header(64);
    let mut big = syn_frame();
    big.resize(1500, 0xab);
    pcap_record(&mut v, 1500, &big);
    pcap_record(&mut v, 54, &syn_frame());
    let pcap = write(dir.path(), "snap.pcap", &v);
    let out = scan_with(dir.path(), "203.0.113.9\n", &pcap, &[]);
    let err = stderr(&out);
    assert_eq!(count_before(&err, "packets,"), 2, "{err}");
    assert!(!err.contains("error"), "{err}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn pcap_record_claiming_more_than_the_file_holds_is_a_truncation_after_the_good_packets() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = pcap_header(65535);
    pcap_record(&mut v, 54, &syn_frame());
    // caplen 4000, but only 100 bytes follow.
    let mut short = syn_frame();
    short.resize(100, 0);
    pcap_record(&mut v, 4000, &short);
    let pcap = write(dir.path(), "short.pcap", &v);
    let out = scan_with(dir.path(), "203.0.113.9\n", &pcap, &[]);
    let err = stderr(&out);
    assert!(err.contains("short.pcap: after packet 1") && err.contains("truncated"), "{err}");
    assert_eq!(alerts(&out).len(), 1, "the packet before the bad record was matched");
    // And a caplen far past any frame size is called a corrupt length, not a huge read.
    let mut v = pcap_header(65535);
    pcap_record(&mut v, 54, &syn_frame());
    pcap_record(&mut v, 0x7fff_ffff, &short);
    let pcap = write(dir.path(), "huge.pcap", &v);
    let out = scan_with(dir.path(), "203.0.113.9\n", &pcap, &[]);
    let err = stderr(&out);
    assert!(err.contains("huge.pcap: after packet 1") && err.contains("corrupt"), "{err}");
}

fn ng_block(ty: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len().div_ceil(4) * 4) as u32;
    let mut v = ty.to_le_bytes().to_vec();
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(body);
    v.resize(len as usize - 4, 0);
    v.extend_from_slice(&len.to_le_bytes());
    v
}

fn pcapng_head() -> Vec<u8> {
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    let mut v = ng_block(0x0a0d0d0a, &shb);
    let mut idb = 1u16.to_le_bytes().to_vec(); // Ethernet
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&65535u32.to_le_bytes());
    v.extend(ng_block(1, &idb));
    v
}

fn epb(frame: &[u8]) -> Vec<u8> {
    let mut b = 0u32.to_le_bytes().to_vec();
    b.extend_from_slice(&0x0006_0000u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    b.extend_from_slice(frame);
    ng_block(6, &b)
}

#[test]
fn pcapng_unknown_block_types_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = pcapng_head();
    v.extend(epb(&syn_frame()));
    v.extend(ng_block(0x0bad_0bad, b"some vendor's block"));
    v.extend(ng_block(0x8000_0001, &[])); // a local-use type, empty
    v.extend(epb(&syn_frame()));
    let pcap = write(dir.path(), "unknown.pcapng", &v);
    let out = scan_with(dir.path(), "203.0.113.9\n", &pcap, &[]);
    let err = stderr(&out);
    assert_eq!(count_before(&err, "packets,"), 2, "{err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn pcapng_block_with_a_bad_length_stops_the_file_with_an_error_after_the_good_packets() {
    let dir = tempfile::tempdir().unwrap();
    for (name, patch) in [
        // Total length smaller than a block header can be.
        ("tiny.pcapng", 8u32),
        // Not a multiple of 4.
        ("odd.pcapng", 30),
        // Claims far more than the file holds.
        ("huge.pcapng", 0x4000_0000),
    ] {
        let mut v = pcapng_head();
        v.extend(epb(&syn_frame()));
        let at = v.len();
        v.extend(epb(&syn_frame()));
        v[at + 4..at + 8].copy_from_slice(&patch.to_le_bytes());
        let pcap = write(dir.path(), name, &v);
        let start = Instant::now();
        let out = scan_with(dir.path(), "203.0.113.9\n", &pcap, &[]);
        let err = stderr(&out);
        assert!(start.elapsed() < Duration::from_secs(10), "{name} took {:?}", start.elapsed());
        assert!(err.contains(&format!("{name}: after packet 1")), "{name}: {err}");
        assert_eq!(alerts(&out).len(), 1, "{name}: the packet before the bad block was matched\n{err}");
    }
    // Trailing length that disagrees with the leading one.
    let mut v = pcapng_head();
    v.extend(epb(&syn_frame()));
    let mut bad = epb(&syn_frame());
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&12u32.to_le_bytes());
    v.extend(bad);
    let pcap = write(dir.path(), "trailer.pcapng", &v);
    let out = scan_with(dir.path(), "203.0.113.9\n", &pcap, &[]);
    let err = stderr(&out);
    assert!(out.status.code().is_some(), "{err}");
    assert!(!alerts(&out).is_empty(), "{err}");
}

#[test]
fn gzip_stream_cut_in_half_names_the_file_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let raw = synth::samples::raptor_train_c2().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let mut gz = gz.finish().unwrap();
    gz.truncate(gz.len() / 2);
    let path = write(dir.path(), "half.pcap.gz", &gz);
    let out = run(&["scan", &path]);
    let err = stderr(&out);
    assert!(err.contains("half.pcap.gz:"), "{err}");
    assert!(count_before(&err, "packets,") > 0, "{err}");
    assert_eq!(out.status.code(), Some(1), "alerts from before the cut: {err}");
    assert!(!alerts(&out).is_empty());
    // One engine decompresses on a thread of its own (where it has two cores), workers on the
    // thread that hands the packets out: the same packets, the same error where the stream breaks.
    // (Workers run only when an uncompressed capture comes with it: alone, it gets one engine.)
    let whole = write(dir.path(), "whole.pcap", &raw);
    let one = run(&["scan", "-j", "1", &whole, &path]);
    let two = run(&["scan", "-j", "2", &whole, &path]);
    let (err1, err2) = (stderr(&one), stderr(&two));
    assert!(count_before(&err1, "packets,") > count_before(&err, "packets,"), "{err1}");
    assert_eq!(count_before(&err1, "packets,"), count_before(&err2, "packets,"), "{err1}\n{err2}");
    let line = |e: &str| e.lines().find(|l| l.contains("half.pcap.gz:")).map(str::to_string);
    assert_eq!(line(&err), line(&err1));
    assert_eq!(line(&err1), line(&err2));
    assert_eq!(alerts(&one).len(), alerts(&two).len());
}

#[test]
fn indicator_file_with_bom_crlf_empty_lines_and_the_whole_address_space() {
    let dir = tempfile::tempdir().unwrap();
    let list =
        write(dir.path(), "feed.txt", "\u{feff}# feed\r\n\r\n\r\nacqv.w8510.com\r\n\r\n0.0.0.0/0\r\n\r\n".as_bytes());
    let out = run(&["indicators", "check", "--no-default-set", &list]);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
    assert!(text.contains("0.0.0.0/0 is a very broad network"), "{text}");
    assert!(text.contains("checked 2 indicators"), "{text}");
    assert!(!text.contains("error:"), "BOM and CRLF are not errors: {text}");

    // Scanning with it: every connection is flagged by 0.0.0.0/0, nothing breaks.
    let mut c = Capture::new(Vec::new(), 1_700_000_000_000_000).unwrap();
    c.ping(addr("10.0.0.1"), addr("192.0.2.200")).unwrap();
    let pcap = write(dir.path(), "ping.pcap", &c.w.into_inner());
    let out = run(&["scan", "--no-default-set", "--indicators", &list, &pcap]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(alerts(&out).iter().all(|a| a["match"]["indicator"] == "0.0.0.0/0"));
}

#[test]
fn indicator_file_that_is_one_200_mb_line_is_one_short_error_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("endless.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..200 {
            f.write_all(&chunk).unwrap();
        }
        f.write_all(b".example\nevil.example\n").unwrap();
    }
    let start = Instant::now();
    let out = run(&["indicators", "check", "--no-default-set", path.to_str().unwrap()]);
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(text.len() < 4096, "the diagnostic must not repeat the line ({} bytes of output)", text.len());
    assert!(text.contains("endless.txt:1: line is 209715208 bytes long"), "{text}");
    assert!(text.contains("checked 1 indicators"), "the next line still loads: {text}");
}

#[test]
fn stix_bundle_whose_patterns_cannot_be_matched_loads_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let ind = |id: u32, pattern: &str| {
        serde_json::json!({"type": "indicator", "spec_version": "2.1", "id": format!("indicator--{id:08}-0000-4000-8000-000000000000"),
            "created": "2024-01-01T00:00:00Z", "modified": "2024-01-01T00:00:00Z",
            "pattern": pattern, "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"})
    };
    let bundle = serde_json::json!({"type": "bundle", "id": "bundle--1", "objects": [
        ind(1, "[file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']"),
        ind(2, "[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'a.example']"),
        ind(3, "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '5.6.7.8'] WITHIN 10 SECONDS"),
        ind(4, "[process:name = 'evil.exe']"),
        ind(5, "[domain-name:value MATCHES '^evil']"),
        ind(6, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["),
    ]});
    let path = write(dir.path(), "unmatchable.json", bundle.to_string().as_bytes());
    let out = run(&["indicators", "check", "--no-default-set", &path]);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &stderr(&out);
    assert!(text.contains("checked 0 indicators"), "{text}");
    // Network patterns that cannot be matched are named; file hashes and process names are
    // outside what iocmatch matches and only counted as ignored.
    for id in [2, 3, 5, 6] {
        assert!(text.contains(&format!("indicator--{id:08}")), "indicator {id} is named in a diagnostic: {text}");
    }
    // A scan with it has nothing to match and says so or runs clean; it never crashes.
    let mut c = Capture::new(Vec::new(), 1_700_000_000_000_000).unwrap();
    c.ping(addr("1.2.3.4"), addr("5.6.7.8")).unwrap();
    let pcap = write(dir.path(), "ping.pcap", &c.w.into_inner());
    let out = run(&["scan", "--no-default-set", "--indicators", &path, &pcap]);
    assert!(matches!(out.status.code(), Some(0) | Some(2)), "{}", stderr(&out));
    assert!(alerts(&out).is_empty());
}

#[test]
fn syn_flood_of_200k_spoofed_sources_is_bounded_by_max_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.pcap");
    let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    synth::syn_flood(f, 200_000, 42).unwrap().flush().unwrap();
    let out = scan_with(dir.path(), "evil.example\n", path.to_str().unwrap(), &["--max-connections", "10000"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(count_before(&err, "packets,"), 200_000, "{err}");
    assert_eq!(count_before(&err, "connections,"), 200_000, "{err}");
    let evicted = count_before(&err, "evicted at the cap");
    assert!((190_000..=200_000).contains(&evicted), "{evicted} evicted: {err}");
}

#[test]
fn syn_flood_is_deterministic_and_every_syn_is_a_new_connection() {
    let a = synth::syn_flood(Vec::new(), 1000, 7).unwrap();
    assert_eq!(a, synth::syn_flood(Vec::new(), 1000, 7).unwrap());
    assert_ne!(a, synth::syn_flood(Vec::new(), 1000, 8).unwrap());
    let mut tuples = std::collections::HashSet::new();
    iocmatch::source::capture::read(&a[..], |p| {
        let mut d = iocmatch::decode::packet::Decoded::default();
        iocmatch::decode::packet::decode(p.linktype, p.data, true, &mut d).unwrap();
        let l = d.innermost().unwrap();
        assert_eq!(d.tcp.unwrap().flags, synth::SYN);
        tuples.insert((l.src, l.dst, d.sport, d.dport));
    })
    .unwrap();
    assert_eq!(tuples.len(), 1000);
    let _: Option<IpAddr> = None;
    let _ = PcapWriter::new(Vec::new(), 1).unwrap().linktype();
}

/// A scan killed outright (SIGKILL, no chance to flush) in the middle of writing alerts leaves
/// an output file whose lines are all whole JSON but possibly the last one: the writer hands
/// whole lines to the file, and only the one write the kill lands in can be cut. (Linux stops
/// a `write` to a regular file at a page boundary when a fatal signal arrives, so no writer can
/// promise the last line; a scan stopped by SIGINT or SIGTERM ends cleanly, see `tests/scan.rs`.)
#[test]
fn a_killed_scan_leaves_whole_alert_lines_but_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let ind = write(dir.path(), "all.csv", b"indicator,type\n0.0.0.0/0,cidr\n");
    let out_path = dir.path().join("alerts.json");
    // Every SYN of the flood is a flagged connection: alerts flow for as long as input does.
    let flood = synth::syn_flood(Vec::new(), 60_000, 3).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["scan", "-q", "--no-default-set", "--indicators", &ind, "-o"])
        .arg(&out_path)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Feed half the flood, wait until alerts have reached the file, then kill.
    stdin.write_all(&flood[..flood.len() / 2]).unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&out_path).map_or(0, |m| m.len()) < 100_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let bytes = std::fs::read(&out_path).unwrap();
    assert!(bytes.len() >= 100_000, "too few alerts written before the kill: {} bytes", bytes.len());
    // The whole lines: everything up to the last newline. What follows it, if anything, is the
    // one line the kill cut (it may end inside a UTF-8 sequence), and it must be the beginning
    // of a line, not a mix of two.
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let (whole, cut) = bytes.split_at(end);
    assert!(
        cut.is_empty() || cut[0] == b'{',
        "the cut tail is not the start of a line: {:?}",
        String::from_utf8_lossy(cut)
    );
    assert!(cut.len() < 4096, "more than one line after the last newline: {} bytes", cut.len());
    let whole = std::str::from_utf8(whole).expect("whole lines are UTF-8");
    let mut n = 0;
    for line in whole.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("cut line {line:?}: {e}"));
        assert!(v["event_type"] == "alert" || v["event_type"] == "flow");
        n += 1;
    }
    assert!(n > 100, "{n} lines");
}

/// A bus error (what reading a mapped file that another process cut short raises) ends the run
/// with a message that says what happened and what to do, and exit status 2, not with the
/// shell's bare "Bus error". (The signal is sent here: a real cut lands between two size checks
/// only by chance.)
#[cfg(unix)]
#[test]
fn a_bus_error_ends_the_run_with_a_message_that_explains_it() {
    let flood = synth::syn_flood(Vec::new(), 4_000, 5).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["scan", "-q", "-o", "/dev/null", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Half the capture (140 KB, more than a pipe holds, so the scan has begun reading, and so
    // set up its handlers, when this returns); stdin stays open.
    assert!(flood.len() / 2 > 128 << 10);
    stdin.write_all(&flood[..flood.len() / 2]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill").args(["-BUS", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cut short") && err.contains("--no-mmap"), "{err}");
}
