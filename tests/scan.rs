//! Runs the `iocmatch` binary on the shipped sample captures and checks what an analyst sees.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iocmatch"))
}

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run iocmatch")
}

fn alerts(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .filter(|v| v["event_type"] == "alert")
        .collect()
}

fn find<'a>(alerts: &'a [Value], field: &str, indicator: &str) -> &'a Value {
    alerts
        .iter()
        .find(|a| a["match"]["field"] == field && a["match"]["indicator"] == indicator)
        .unwrap_or_else(|| panic!("no {field} alert for {indicator}: {alerts:#?}"))
}

#[test]
fn committed_samples_are_what_the_code_writes() {
    for (name, bytes) in iocmatch::synth::samples::all().unwrap() {
        let on_disk = std::fs::read(root(&format!("pcaps/{name}"))).unwrap();
        assert!(on_disk == bytes, "pcaps/{name} differs from the generator: run `cargo run --example make_pcaps`");
    }
}

#[test]
fn raptor_train_sample_flags_names_answers_and_resolved_addresses() {
    let out = run(&["scan", "-q", &root("pcaps/raptor-train-c2.pcap")]);
    assert_eq!(out.status.code(), Some(1), "exit 1 when something is flagged");
    let a = alerts(&out);

    let q = find(&a, "dns.query", "hy92.com");
    assert_eq!(q["src_ip"], "10.20.30.40");
    assert_eq!(q["dest_ip"], "10.20.0.53");
    assert_eq!(q["dest_port"], 53);
    assert_eq!(q["proto"], "UDP");
    assert_eq!(q["match"]["value"], "c2.hy92.com");
    assert_eq!(q["match"]["type"], "domain");
    assert_eq!(q["match"]["activity"], "active");
    assert_eq!(q["match"]["source"]["set"], "raptor-train-lumen-2024-09-18");
    assert_eq!(q["match"]["source"]["publisher"], "Lumen Technologies, Black Lotus Labs");
    assert_eq!(q["match"]["source"]["date"], "2024-09-18");
    assert_eq!(q["match"]["source"]["actor"], "Flax Typhoon");
    assert_eq!(q["match"]["confidence"], "high");
    assert_eq!(q["match"]["first_seen"], "2024-09-04");
    assert!(q["timestamp"].as_str().unwrap().starts_with("2024-09-04T12:00:00."));
    assert!(q["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(q["capture"]["file"].as_str().unwrap().ends_with("raptor-train-c2.pcap"));
    assert!(q["capture"]["packet"].as_u64().unwrap() > 0);

    // The address nobody listed, flagged because a flagged name resolved to it.
    let r = find(&a, "dns.resolved", "hy92.com");
    assert_eq!(r["dest_ip"], "198.51.100.23");
    assert_eq!(r["dest_port"], 443);
    assert_eq!(r["match"]["value"], "198.51.100.23");
    assert_eq!(r["match"]["resolved_from"], "c2.hy92.com");
    let sni = find(&a, "tls.sni", "hy92.com");
    assert_eq!(sni["dest_ip"], "198.51.100.23");

    // Listed address, but past its last_seen: still flagged, and says so.
    let ip = find(&a, "ip.dst", "208.85.16.100");
    assert_eq!(ip["match"]["activity"], "after_last_seen");
    assert_eq!(ip["match"]["last_seen"], "2024-08-29");
    assert_eq!(ip["match"]["active"], false);
    find(&a, "dns.answer", "208.85.16.100");

    // One alert per connection, indicator and field; the near miss xhy92.com never matches.
    let mut keys: Vec<String> = a
        .iter()
        .map(|x| format!("{}{}{}{}", x["src_port"], x["dest_ip"], x["match"]["indicator"], x["match"]["field"]))
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n, "repeated alerts");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("xhy92.com"));
}

#[test]
fn active_only_drops_alerts_outside_the_indicator_window() {
    let out = run(&["scan", "-q", "--active-only", &root("pcaps/raptor-train-c2.pcap")]);
    let a = alerts(&out);
    assert!(a.iter().all(|x| x["match"]["active"] == true), "{a:#?}");
    assert!(a.iter().all(|x| x["match"]["indicator"] != "208.85.16.100"));
    find(&a, "dns.resolved", "hy92.com");
}

#[test]
fn softether_sample_and_flow_summary() {
    let out = run(&["scan", "-q", &root("pcaps/flax-typhoon-softether.pcap")]);
    assert_eq!(out.status.code(), Some(1));
    let a = alerts(&out);
    let ips: Vec<&Value> = a.iter().filter(|x| x["match"]["indicator"] == "139.180.158.51").collect();
    assert_eq!(ips.len(), 2, "listed by Microsoft and by AA26-281A: one alert per indicator row's set");
    let ip = ips.iter().find(|x| x["match"]["source"]["set"] == "flax-typhoon-microsoft-2023-08-24").unwrap();
    assert_eq!(ip["src_ip"], "10.1.1.20");
    assert_eq!(ip["match"]["activity"], "active", "2023-07-20 is inside 2022-08-30..2023-07-26");
    let sni = find(&a, "tls.sni", "vpn472462384.softether.net");
    assert_eq!(sni["match"]["source"]["publisher"], "Microsoft Threat Intelligence");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("www.softether.net"),
        "the parent service is not an indicator"
    );
    let flows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "flow")
        .collect();
    assert_eq!(flows.len(), 1, "one flow event, for the one flagged connection");
    let f = &flows[0]["flow"];
    assert_eq!(f["pkts_toserver"], 6);
    assert_eq!(f["pkts_toclient"], 7);
    assert_eq!(f["reason"], "closed");
}

#[test]
fn clean_capture_exits_zero() {
    let out = run(&["scan", &root("pcaps/clean.pcap")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alerts    0"), "{err}");
    assert!(err.contains("skipped 0"), "{err}");
}

#[test]
fn tunnels_report_their_layer_and_outer_addresses() {
    let out = run(&["scan", "-q", &root("pcaps/tunnelled.pcap")]);
    let a = alerts(&out);
    let gre = find(&a, "ip.dst", "45.77.231.209");
    assert_eq!(gre["match"]["layer"], "inner");
    assert_eq!(gre["tunnel"]["type"], "gre");
    assert_eq!(gre["tunnel"]["src_ip"], "192.0.2.1");
    assert_eq!((gre["tunnel"]["proto"].as_str(), gre["tunnel"].get("src_port")), (Some("GRE"), None));
    let vx = find(&a, "dns.query", "dns.studiocloud.xyz");
    assert_eq!(vx["tunnel"]["type"], "vxlan");
    // Geneve from a cloud load balancer, and MPLS in UDP: read through to the application layer.
    let gv = find(&a, "tls.sni", "acqv.w8510.com");
    assert_eq!((gv["tunnel"]["type"].as_str(), gv["tunnel"]["src_ip"].as_str()), (Some("geneve"), Some("192.0.2.10")));
    assert_eq!((gv["src_ip"].as_str(), gv["dest_port"].as_u64()), (Some("10.9.9.11"), Some(443)));
    // The outer ports and protocol, as in EVE's tunnel object.
    let t = &gv["tunnel"];
    assert_eq!(
        (t["proto"].as_str(), t["src_port"].as_u64(), t["dest_port"].as_u64()),
        (Some("UDP"), Some(50901), Some(6081))
    );
    let mu = find(&a, "dns.query", "zdacxzd.w8510.com");
    assert_eq!(mu["tunnel"]["type"], "mpls-udp");
    // AYIYA, IPv6 inside IPv4.
    let ay = find(&a, "dns.query", "natcloudservice.com");
    assert_eq!((ay["tunnel"]["type"].as_str(), ay["src_ip"].as_str()), (Some("ayiya"), Some("2001:db8::9")));
    // Only the outer layer: the inner addresses are not checked.
    let outer = alerts(&run(&["scan", "-q", "--tunnels", "outer", &root("pcaps/tunnelled.pcap")]));
    assert!(outer.iter().all(|x| x["match"]["field"] != "ip.dst"), "{outer:#?}");
}

#[test]
fn formats_stdin_output_file_and_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("alerts.json");
    let out = run(&["scan", "-q", "-o", out_file.to_str().unwrap(), &root("pcaps")]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));
    for file in ["raptor-train-c2.pcap", "flax-typhoon-softether.pcap", "tunnelled.pcap"] {
        assert!(text.contains(file), "folder scan missed {file}");
    }

    let zeek = run(&["scan", "-q", "--format", "zeek", &root("pcaps/raptor-train-c2.pcap")]);
    let z = String::from_utf8_lossy(&zeek.stdout);
    assert!(z.starts_with("#separator \\x09\n"));
    assert!(z.contains("\tc2.hy92.com\tIntel::DOMAIN\tDNS::IN_REQUEST\t"), "{z}");

    let csv = run(&["scan", "-q", "--format", "csv", &root("pcaps/raptor-train-c2.pcap")]);
    let c = String::from_utf8_lossy(&csv.stdout);
    assert!(c.starts_with("timestamp,src_ip,src_port,dest_ip,dest_port,proto,field,value,indicator,type,set,"));
    assert!(c.contains(",dns.resolved,198.51.100.23,hy92.com,domain,raptor-train-lumen-2024-09-18,"));

    let bytes = std::fs::read(root("pcaps/raptor-train-c2.pcap")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    let mut child = bin()
        .args(["scan", "-q", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &gz.finish().unwrap()).unwrap();
    let piped = child.wait_with_output().unwrap();
    assert_eq!(piped.status.code(), Some(1));
    assert!(alerts(&piped).iter().any(|a| a["match"]["field"] == "dns.resolved"));
}

#[test]
fn bad_inputs_say_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("notes.txt");
    std::fs::write(&garbage, "this is not a capture\n").unwrap();
    let out = run(&["scan", "-q", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notes.txt") && err.contains("not a pcap or pcapng capture"), "{err}");

    // Truncated: alerts from before the cut are kept, the error names the packet.
    let mut bytes = std::fs::read(root("pcaps/raptor-train-c2.pcap")).unwrap();
    bytes.truncate(bytes.len() - 30);
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes).unwrap();
    let out = run(&["scan", &cut.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.pcap: after packet") && err.contains("truncated"), "{err}");
    assert!(alerts(&out).iter().any(|a| a["match"]["field"] == "dns.resolved"));
    assert_eq!(out.status.code(), Some(1));

    let missing = run(&["scan", "/nonexistent/x.pcap"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn user_sets_and_no_default_set() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("mine.txt");
    std::fs::write(&list, "www[.]example[.]com\n").unwrap();
    let out = run(&[
        "scan",
        "-q",
        "--no-default-set",
        "--indicators",
        list.to_str().unwrap(),
        &root("pcaps/raptor-train-c2.pcap"),
    ]);
    let a = alerts(&out);
    assert!(!a.is_empty());
    assert!(a.iter().all(|x| x["match"]["indicator"] == "www.example.com"), "{a:#?}");
    find(&a, "http.host", "www.example.com");
    find(&a, "tls.sni", "www.example.com");
    let allow = dir.path().join("allow.txt");
    std::fs::write(&allow, "www.example.com\n").unwrap();
    let out = run(&[
        "scan",
        "-q",
        "--no-default-set",
        "--indicators",
        list.to_str().unwrap(),
        "--allow",
        allow.to_str().unwrap(),
        &root("pcaps/raptor-train-c2.pcap"),
    ]);
    assert_eq!(out.status.code(), Some(0), "the allowlist removes every match");
    assert!(Path::new(&root("pcaps")).is_dir());
}

/// A URL indicator flags the HTTP requests for that URL (the sample's `GET /` to
/// www.example.com), and one for another path on the same host flags nothing.
#[test]
fn a_url_indicator_flags_the_request_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("urls.txt");
    std::fs::write(&list, "hxxp://www[.]example[.]com/\nhttp://www.example.com/gate.php\n").unwrap();
    let out = run(&[
        "scan",
        "-q",
        "--no-default-set",
        "--indicators",
        list.to_str().unwrap(),
        &root("pcaps/raptor-train-c2.pcap"),
    ]);
    assert_eq!(out.status.code(), Some(1), "exit 1 when something is flagged");
    let a = alerts(&out);
    let u = find(&a, "http.url", "www.example.com/");
    assert_eq!(u["match"]["value"], "www.example.com/");
    assert_eq!(u["match"]["type"], "url");
    assert_eq!(u["dest_port"], 80);
    // Two hosts of the sample fetch it; nothing asks for the other path.
    assert_eq!(a.len(), 2, "{a:#?}");
    assert!(a.iter().all(|x| x["match"]["indicator"] == "www.example.com/"), "{a:#?}");
}

#[test]
fn evidence_holds_every_packet_of_flagged_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("evidence.pcapng");
    let out = run(&["scan", "-q", "--evidence", ev.to_str().unwrap(), &root("pcaps/raptor-train-c2.pcap")]);
    let flows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "flow")
        .collect();
    let expected: u64 = flows
        .iter()
        .map(|f| f["flow"]["pkts_toserver"].as_u64().unwrap() + f["flow"]["pkts_toclient"].as_u64().unwrap())
        .sum();
    assert_eq!(flows.len(), 4);
    // Scanning the evidence finds the same connections, from their first packet (the SYN).
    let again = run(&["scan", ev.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains(&format!("{expected} packets")), "{err}");
    assert!(err.contains("4 connections, 4 flagged"), "{err}");
    let syn_flows: Vec<Value> = String::from_utf8_lossy(&again.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event_type"] == "flow" && v["proto"] == "TCP")
        .collect();
    assert!(syn_flows.iter().all(|f| f["flow"]["reason"] == "closed"), "handshake and close are in the evidence");
}

/// Sorted output lines and the summary's input line of a run.
fn sorted_run(args: &[&str]) -> (Vec<String>, String) {
    sorted(&bin().args(args).output().expect("run iocmatch"))
}

/// A run's output lines, sorted, and its summary's input counts.
fn sorted(out: &Output) -> (Vec<String>, String) {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    let err = String::from_utf8_lossy(&out.stderr);
    // The rate and time differ from run to run; the counts must not.
    (lines, input_line(&err).split(" in ").next().unwrap_or_default().to_string())
}

/// The summary's "input" line.
fn input_line(err: &str) -> &str {
    err.lines().find(|l| l.trim_start().starts_with("input")).unwrap_or_default()
}

/// The packets the summary says were read.
fn packets_read(err: &str) -> u64 {
    input_line(err)
        .split("file(s),")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count: {err}"))
}

/// An indicator file that flags every IPv4 address, and a capture of 40,000 SYNs: alerts without
/// end, for the tests that stop a scan half way.
fn flood(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let ind = dir.join("all.csv");
    std::fs::write(&ind, "indicator,type\n0.0.0.0/0,cidr\n").unwrap();
    (ind, iocmatch::synth::syn_flood(Vec::new(), 40_000, 9).unwrap())
}

#[test]
fn workers_find_exactly_what_one_engine_finds() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("raptor.pcap.gz");
    let raw = std::fs::read(root("pcaps/raptor-train-c2.pcap")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &raw).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    // The same packets as pcapng, which the workers also share out in chunks.
    let ng = dir.path().join("raptor.pcapng");
    let mut w = iocmatch::report::evidence::PcapngWriter::new(Vec::new()).unwrap();
    iocmatch::source::capture::read_slice(&raw, |p| w.packet(p.linktype, p.ts_micros, p.data, p.wire_len).unwrap())
        .unwrap();
    std::fs::write(&ng, w.finish().unwrap()).unwrap();
    let (pcaps, gz, flows) = (root("pcaps"), gz.display().to_string(), root("tests/data/flowlogs"));
    let ng = ng.display().to_string();
    // A compressed capture or a flow log alone gets one engine (see the next test): next to an
    // uncompressed capture, the workers read it too.
    for inputs in [
        vec![pcaps.as_str()],
        vec![gz.as_str()],
        vec![ng.as_str()],
        vec![flows.as_str()],
        vec![pcaps.as_str(), flows.as_str()],
        vec![ng.as_str(), gz.as_str()],
    ] {
        let one = sorted_run(&[&["scan", "-j", "1"][..], &inputs].concat());
        assert!(one.0.iter().any(|l| l.contains("\"alert\"")), "{inputs:?}: no alerts to compare");
        assert!(one.1.contains("packets") || one.1.contains("records"), "{inputs:?}: no summary: {}", one.1);
        // One engine maps a classic pcap or a pcapng and reads it by windows; `--no-mmap` streams it.
        for extra in [&["-j", "2"][..], &["-j", "3"], &["-j", "3", "--no-mmap"], &["-j", "1", "--no-mmap"]] {
            let many = sorted_run(&[&["scan"][..], extra, &inputs].concat());
            assert_eq!(one.1, many.1, "{inputs:?} {extra:?}: the summary counts differ");
            assert!(one.0 == many.0, "{inputs:?} {extra:?}: the alerts differ:\n{:#?}\n{:#?}", one.0, many.0);
        }
    }
}

/// `-j` runs workers only where they pay: for uncompressed capture files. For a compressed
/// capture or a flow log alone one engine is as fast or faster, and the user is told so.
#[test]
fn workers_run_only_for_uncompressed_captures() {
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read(root("pcaps/raptor-train-c2.pcap")).unwrap();
    let gz = dir.path().join("raptor.pcap.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &raw).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let plain = root("pcaps/raptor-train-c2.pcap");
    let flows = root("tests/data/flowlogs");
    let gz = gz.display().to_string();
    let note = |args: &[&str]| {
        let out = bin().args(["scan", "-o", "/dev/null"]).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("packets") || err.contains("records"), "{args:?}: no summary: {err}");
        err.contains("one engine, not")
    };
    assert!(note(&["-j", "2", &gz]), "a compressed capture alone");
    assert!(note(&["-j", "3", &flows]), "flow logs alone");
    assert!(!note(&["-j", "2", &plain]), "an uncompressed capture");
    assert!(!note(&["-j", "2", &gz, &plain]), "an uncompressed capture among others");
    // Chosen, not asked for: nothing to say.
    assert!(!note(&["-j", "0", &gz]));
    let quiet = bin().args(["scan", "-q", "-o", "/dev/null", "-j", "2", &gz]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "", "-q says nothing");
}

/// Runs `cmd` for at most a minute: one that waits on a pipe forever is killed, and fails.
#[cfg(unix)]
fn bounded(mut cmd: Command) -> Output {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        if wait.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
            // SIGKILL: the scan takes SIGTERM as a request to stop reading, which a blocked open
            // does not see.
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    guard.join().unwrap();
    assert!(out.status.code().is_some(), "killed: it waited on a pipe");
    out
}

/// A named pipe at `path` that `data` is written into, once, by a child to end after use.
#[cfg(unix)]
fn fifo_with(path: &Path, data: &Path) -> std::process::Child {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
    Command::new("sh").arg("-c").arg(format!("cat {} > {}", data.display(), path.display())).spawn().unwrap()
}

/// An indicator feed read from a pipe (`--indicators <(curl ...)`) loads whole (looking for a
/// compiled set's magic took its first bytes, and its first line was lost), and compiles (its
/// file stamp failed: "No such file or directory", naming nothing).
#[cfg(unix)]
#[test]
fn an_indicator_feed_from_a_pipe_loads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.csv");
    std::fs::write(&feed, "indicator,type\nacqv.w8510.com,domain\n").unwrap();
    let capture = root("pcaps/raptor-train-c2.pcap");
    let fifo = dir.path().join("feed.fifo");
    let mut writer = fifo_with(&fifo, &feed);
    let mut cmd = bin();
    cmd.args(["scan", "--no-default-set", "--indicators"]).arg(&fifo).arg(&capture);
    let out = bounded(cmd);
    let _ = writer.kill();
    writer.wait().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 indicators loaded") && !err.contains("record(s) skipped"), "{err}");
    let found = alerts(&out).len();
    assert!(found > 0, "{err}");

    let fifo = dir.path().join("compile.fifo");
    let set = dir.path().join("feed.iocset");
    let mut writer = fifo_with(&fifo, &feed);
    let mut cmd = bin();
    cmd.args(["indicators", "compile"]).arg(&fifo).arg("-o").arg(&set);
    let out = bounded(cmd);
    let _ = writer.kill();
    writer.wait().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["scan", "--no-default-set", "--indicators", set.to_str().unwrap(), &capture]);
    assert_eq!(alerts(&out).len(), found, "{}", String::from_utf8_lossy(&out.stderr));
}

/// A folder is walked through links (to captures and to folders, a loop ending where it began),
/// and what it holds that is no file is named and left out: a named pipe in it hung the scan
/// (nothing writes to it), and a linked folder was "cannot open: Is a directory".
#[cfg(unix)]
#[test]
fn a_folder_walk_follows_links_and_leaves_out_pipes() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let (top, real) = (dir.path().join("top"), dir.path().join("real"));
    std::fs::create_dir_all(&top).unwrap();
    std::fs::create_dir_all(&real).unwrap();
    std::fs::copy(root("pcaps/raptor-train-c2.pcap"), real.join("c2.pcap")).unwrap();
    symlink(&real, top.join("linked")).unwrap();
    symlink(&top, real.join("up")).unwrap();
    symlink(dir.path().join("nowhere"), top.join("broken")).unwrap();
    assert!(Command::new("mkfifo").arg(top.join("pipe")).status().unwrap().success());
    let mut cmd = bin();
    cmd.arg("scan").arg(&top);
    let out = bounded(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 file(s), 73 packets"), "{err}");
    assert!(!alerts(&out).is_empty(), "{err}");
    assert!(err.contains("pipe: not a regular file (a named pipe, socket or device): skipped"), "{err}");
    assert!(err.contains("broken: cannot follow"), "{err}");
    // An indicator folder likewise: the pipe is a warning, the feed next to it loads.
    let feeds = dir.path().join("feeds");
    std::fs::create_dir_all(&feeds).unwrap();
    std::fs::write(feeds.join("feed.txt"), "acqv.w8510.com\n").unwrap();
    assert!(Command::new("mkfifo").arg(feeds.join("pipe")).status().unwrap().success());
    let mut cmd = bin();
    cmd.args(["scan", "--no-default-set", "--indicators"]).arg(&feeds).arg(real.join("c2.pcap"));
    let out = bounded(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 indicators loaded") && err.contains("not a regular file"), "{err}");
    assert!(!alerts(&out).is_empty(), "{err}");
}

/// A named pipe (as a shell's process substitution, `<(zcat a.pcap.gz)`, gives) can be read
/// once: no look ahead of the scan (choosing the engines, learning DNS from flow logs first) may
/// take its bytes, and `--evidence`, which reads the inputs again, keeps a copy. It used to be
/// read as 0 packets, or to hang.
#[cfg(unix)]
#[test]
fn a_named_pipe_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let plain = root("pcaps/raptor-train-c2.pcap");
    let flows = root("tests/data/flowlogs");
    let expected = sorted_run(&["scan", "-j", "1", &plain, &flows, &plain]);
    let evidence = |path: &Path| std::fs::read(path).unwrap_or_default();
    let want_evidence = dir.path().join("want.pcapng");
    sorted_run(&["scan", "--evidence", want_evidence.to_str().unwrap(), &plain]);
    assert!(evidence(&want_evidence).len() > 100);
    for (k, args) in [&["-j", "1"][..], &["-j", "2"], &["-j", "1", "--evidence"]].into_iter().enumerate() {
        let fifo = dir.path().join(format!("feed-{k}.pcap"));
        let mut writer = fifo_with(&fifo, Path::new(&plain));
        let got_evidence = dir.path().join(format!("got-{k}.pcapng"));
        let mut cmd = bin();
        cmd.arg("scan").args(args);
        if args.contains(&"--evidence") {
            cmd.arg(&got_evidence).arg(&fifo);
        } else {
            cmd.args([&plain, &flows]).arg(&fifo);
        }
        let out = bounded(cmd);
        let _ = writer.kill();
        writer.wait().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if args.contains(&"--evidence") {
            assert!(err.contains("73 packets"), "{args:?}: {err}");
            assert!(evidence(&got_evidence) == evidence(&want_evidence), "{args:?}: the evidence differs");
            continue;
        }
        // Alerts name their input: the pipe's name stands where the file's second reading's did.
        let (lines, counts) = sorted(&out);
        let mut lines: Vec<String> = lines.iter().map(|l| l.replace(fifo.to_str().unwrap(), &plain)).collect();
        lines.sort();
        assert_eq!(counts, expected.1, "{args:?}: the counts differ: {err}");
        assert!(lines == expected.0, "{args:?}: the alerts differ");
    }
}

/// `iocmatch scan x | head`: once the reader of the alerts has gone, the scan stops reading (it
/// used to read on to the end, then fail with "writing alerts: Broken pipe", status 2), and the
/// summary says why, with no error.
#[test]
fn a_closed_alert_output_stops_the_scan_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (ind, bytes) = flood(dir.path());
    let flood = dir.path().join("flood.pcap");
    std::fs::write(&flood, bytes).unwrap();
    for j in ["1", "2"] {
        let mut child = bin()
            .args(["scan", "-j", j, "--no-default-set", "--indicators"])
            .arg(&ind)
            .arg(&flood)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1000];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The reader ends here, as `head -c 1000` would.
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "alerts were found: {err}");
        assert!(err.contains("stopped   the alert output was closed by its reader"), "{err}");
        assert!(!err.contains("error"), "{err}");
        let packets = packets_read(&err);
        assert!(packets < 40_000, "-j {j}: {packets} packets read after the output closed: {err}");
    }
}

/// SIGINT stops a scan cleanly: the alerts found so far are written whole, the summary says it
/// was interrupted and covers what was read, and the exit status is 130.
#[test]
fn sigint_stops_the_scan_and_keeps_what_it_found() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (ind, flood) = flood(dir.path());
    let out_path = dir.path().join("alerts.json");
    let mut child = bin()
        .args(["scan", "--no-default-set", "--indicators"])
        .arg(&ind)
        .arg("-o")
        .arg(&out_path)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&flood[..flood.len() / 2]).unwrap();
    stdin.flush().unwrap();
    // Let it read and match some of it, then interrupt.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    // The reader notices at its next read; what follows is not inspected.
    let _ = stdin.write_all(&flood[flood.len() / 2..]);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by a signal"), "{err}");
    let packets = packets_read(&err);
    assert!(packets > 0 && packets < 40_000, "{packets} packets read: {err}");
    let text = std::fs::read_to_string(&out_path).unwrap();
    let alerts = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("whole JSON lines"))
        .filter(|v| v["event_type"] == "alert")
        .count();
    assert!(alerts > 0, "the alerts found before the signal were not written: {err}");
    let counted: usize = err
        .lines()
        .find(|l| l.trim_start().starts_with("alerts"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no alert count: {err}"));
    assert_eq!(alerts, counted, "every alert the summary counts is in the file");
}

/// Traffic mirrored to the sensor in VXLAN all travels between two addresses. The workers
/// share it out by the connections inside: a DNS answer in the tunnel reaches every worker, so
/// the connections to the address it gave are flagged wherever they land, tunnelled or not; and
/// a connection mirrored from both its ends (two tunnels) is one connection, as with one engine.
#[test]
fn workers_share_out_a_tunnel_by_the_connections_inside() {
    let dir = tempfile::tempdir().unwrap();
    let ind = dir.path().join("ind.csv");
    std::fs::write(&ind, "indicator,type\nflagged.example,domain\n198.51.100.0/24,cidr\n").unwrap();
    let capture = dir.path().join("mirror.pcap");
    std::fs::write(&capture, iocmatch::synth::vxlan_mirror().unwrap()).unwrap();
    let args = ["scan", "--no-default-set", "--indicators", ind.to_str().unwrap(), capture.to_str().unwrap()];
    let one = sorted_run(&[&args[..], &["-j", "1"]].concat());
    let count = |lines: &[String], what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!(count(&one.0, "dns.resolved"), 80, "{:#?}", one.0);
    assert_eq!(count(&one.0, "\"dest_ip\":\"198.51.100.9\""), 2, "one alert and one flow: {:#?}", one.0);
    for j in ["2", "3"] {
        let many = sorted_run(&[&args[..], &["-j", j]].concat());
        assert_eq!(one.1, many.1, "-j {j}: the summary counts differ");
        assert!(one.0 == many.0, "-j {j}: the alerts differ:\n{:#?}\n{:#?}", one.0, many.0);
    }
}

/// Datagrams that arrive in IP fragments say whose connection they hold only once whole: a DNS
/// answer too long for one packet (the flagged address in its last fragment), and segments of
/// connections mirrored in VXLAN whose tunnel datagrams were fragmented. Every worker
/// reassembles them, so each count, alert and flow is what one engine finds: the connections to
/// the answer's address are flagged wherever they land, and each mirrored connection is one
/// connection, in the engine that owns it.
#[test]
fn workers_reassemble_fragments_and_inspect_them_where_they_belong() {
    let dir = tempfile::tempdir().unwrap();
    let ind = dir.path().join("ind.csv");
    std::fs::write(&ind, "indicator,type\nflagged.example,domain\n198.51.100.0/24,cidr\n").unwrap();
    let capture = dir.path().join("fragments.pcap");
    std::fs::write(&capture, iocmatch::synth::fragmented_mirror().unwrap()).unwrap();
    let args = ["scan", "--no-default-set", "--indicators", ind.to_str().unwrap(), capture.to_str().unwrap()];
    let run = |j: &str| {
        let out = bin().args([&args[..], &["-j", j]].concat()).output().expect("run iocmatch");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        // Every count of the summary (the input line's rate and time differ from run to run).
        let counts: Vec<String> = err.lines().filter(|l| !l.contains(" MB/s")).map(|l| l.trim().to_string()).collect();
        let (lines, input) = sorted(&out);
        (lines, input, counts)
    };
    let one = run("1");
    let count = |lines: &[String], what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!(count(&one.0, "dns.resolved"), 40, "{:#?}", one.0);
    assert_eq!(count(&one.0, "\"dest_ip\":\"198.51.100.9\""), 16, "an alert and a flow each: {:#?}", one.0);
    let summary = one.2.join("\n");
    assert!(summary.contains("fragments 19 seen, 9 datagrams reassembled"), "{summary}");
    assert!(summary.contains(" 8 HTTP requests"), "each request read once: {summary}");
    for j in ["2", "3", "4"] {
        let many = run(j);
        assert_eq!((&one.1, &one.2), (&many.1, &many.2), "-j {j}: the summary counts differ");
        assert!(one.0 == many.0, "-j {j}: the alerts differ:\n{:#?}\n{:#?}", one.0, many.0);
    }
}

/// Connections idle past their timeout when the input ends end as timed out, as with one
/// engine, also on a worker that saw none of the last packets (its clock follows the others').
#[test]
fn workers_end_idle_connections_as_one_engine_does() {
    use iocmatch::synth::{addr, ethernet, ip, tcp, PcapWriter, SYN};
    let dir = tempfile::tempdir().unwrap();
    let ind = dir.path().join("ind.csv");
    std::fs::write(&ind, "indicator,type\n198.51.100.0/24,cidr\n").unwrap();
    let mut w = PcapWriter::new(Vec::new(), 1).unwrap();
    let t0 = 1_700_000_000_000_000i64;
    for i in 0..8u8 {
        let syn = ip(addr(&format!("10.6.6.{i}")), addr("198.51.100.9"), 6, tcp(50_000, 443, 1, 0, SYN, &[]), Some(16));
        w.frame(t0 + i64::from(i), &ethernet(None, 0x0800, &syn)).unwrap();
    }
    // Two hours later, one clean pair's packets only: a single worker sees them.
    for i in 0..4 {
        let late = ip(addr("10.0.0.1"), addr("192.0.2.1"), 6, tcp(40_000, 80, 1, 0, SYN, &[]), Some(16));
        w.frame(t0 + 7_200_000_000 + i, &ethernet(None, 0x0800, &late)).unwrap();
    }
    let capture = dir.path().join("idle.pcap");
    std::fs::write(&capture, w.into_inner()).unwrap();
    let args = ["scan", "--no-default-set", "--indicators", ind.to_str().unwrap(), capture.to_str().unwrap()];
    let one = sorted_run(&[&args[..], &["-j", "1"]].concat());
    let reasons =
        |lines: &[String], r: &str| lines.iter().filter(|l| l.contains(&format!("\"reason\":\"{r}\""))).count();
    assert_eq!(reasons(&one.0, "timeout"), 8, "{:#?}", one.0);
    for j in ["2", "3"] {
        let many = sorted_run(&[&args[..], &["-j", j]].concat());
        assert!(one.0 == many.0, "-j {j}: the events differ:\n{:#?}\n{:#?}", one.0, many.0);
    }
}

/// A DNS answer over TCP (a resolver's retry after a truncated answer) reaches every worker:
/// the connections to the address it gave are flagged wherever they land.
#[test]
fn workers_learn_dns_answers_over_tcp() {
    use iocmatch::synth::{addr, dns_query, dns_response, ethernet, ip, tcp, PcapWriter, Rr, ACK, PSH, SYN};
    let dir = tempfile::tempdir().unwrap();
    let ind = dir.path().join("ind.csv");
    std::fs::write(&ind, "indicator,type\nflagged.example,domain\n").unwrap();
    let mut w = PcapWriter::new(Vec::new(), 1).unwrap();
    let mut t = 1_700_000_000_000_000i64;
    let mut put = |p: Vec<u8>| {
        t += 1;
        w.frame(t, &ethernet(None, 0x0800, &p)).unwrap();
    };
    let (client, resolver) = (addr("10.0.0.9"), addr("10.0.0.53"));
    let framed = |m: Vec<u8>| [&(m.len() as u16).to_be_bytes()[..], &m].concat();
    let query = framed(dns_query(7, "flagged.example", 1));
    let answer = framed(dns_response(7, "flagged.example", 1, &[Rr::Addr("flagged.example", addr("203.0.113.80"))]));
    let up = |seq, ack, flags, data: &[u8]| ip(client, resolver, 6, tcp(40000, 53, seq, ack, flags, data), Some(16));
    let down = |seq, ack, flags, data: &[u8]| ip(resolver, client, 6, tcp(53, 40000, seq, ack, flags, data), Some(16));
    put(up(100, 0, SYN, &[]));
    put(down(500, 101, SYN | ACK, &[]));
    put(up(101, 501, ACK, &[]));
    put(up(101, 501, PSH | ACK, &query));
    put(down(501, 101 + query.len() as u32, PSH | ACK, &answer));
    for i in 0..40u8 {
        put(ip(addr(&format!("10.9.9.{i}")), addr("203.0.113.80"), 6, tcp(50_000, 443, 1, 0, SYN, &[]), Some(16)));
    }
    let capture = dir.path().join("dns-tcp.pcap");
    std::fs::write(&capture, w.into_inner()).unwrap();
    let args = ["scan", "--no-default-set", "--indicators", ind.to_str().unwrap(), capture.to_str().unwrap()];
    let one = sorted_run(&[&args[..], &["-j", "1"]].concat());
    assert_eq!(one.0.iter().filter(|l| l.contains("dns.resolved")).count(), 40, "{:#?}", one.0);
    for j in ["2", "3"] {
        let many = sorted_run(&[&args[..], &["-j", j]].concat());
        assert_eq!(one.1, many.1, "-j {j}: the summary counts differ");
        assert!(one.0 == many.0, "-j {j}: the events differ:\n{:#?}\n{:#?}", one.0, many.0);
    }
}

/// A capture of several megabytes, so that `-j` splits it into many chunks with records across
/// every boundary: random-sized frames to flagged and clean networks, a DNS answer for a
/// flagged name early and connections to its address late (whichever worker they land on), a
/// long frame now and then. Any worker count finds exactly what one engine finds, and where a
/// damaged record stops the chunks, the rest of the file reads as one engine reads it.
#[test]
fn workers_split_a_large_capture_exactly_as_one_engine_reads_it() {
    use iocmatch::synth::{addr, dns_response, ethernet, ip, tcp, udp, PcapWriter, Rr, XorShift};
    let dir = tempfile::tempdir().unwrap();
    let ind = dir.path().join("ind.csv");
    std::fs::write(&ind, "indicator,type\nflagged.example,domain\n198.51.100.0/24,cidr\n").unwrap();
    let mut w = PcapWriter::new(Vec::new(), 1).unwrap();
    let t0 = 1_700_000_000_000_000i64;
    let answer = dns_response(7, "flagged.example", 1, &[Rr::Addr("flagged.example", addr("203.0.113.80"))]);
    let dns = ip(addr("10.0.0.53"), addr("10.0.0.9"), 17, udp(53, 40000, &answer), Some(6));
    w.frame(t0, &ethernet(None, 0x0800, &dns)).unwrap();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for i in 0..30_000u32 {
        let x = rng.next_u64();
        let dst = if x.is_multiple_of(7) { format!("198.51.100.{}", x % 250) } else { format!("192.0.2.{}", x % 250) };
        let src = format!("10.{}.{}.{}", (i >> 16) % 256, (i >> 8) % 256, i % 256);
        let len = if x.is_multiple_of(97) { 9000 } else { (x >> 8) as usize % 400 };
        let p = ip(addr(&src), addr(&dst), 6, tcp(1024 + (i % 50_000) as u16, 443, i, 0, 0x18, &vec![0x41; len]), None);
        w.frame(t0 + 1 + i64::from(i), &ethernet(None, 0x0800, &p)).unwrap();
    }
    for i in 0..40u8 {
        let p = ip(addr(&format!("10.9.9.{i}")), addr("203.0.113.80"), 6, tcp(50_000, 443, 1, 0, 0x02, &[]), None);
        w.frame(t0 + 40_000 + i64::from(i), &ethernet(None, 0x0800, &p)).unwrap();
    }
    let whole = w.into_inner();
    assert!(whole.len() > 3 << 20, "{} bytes: too few chunks to split", whole.len());
    // A copy whose record near the end claims more than any frame: the chunks stop there.
    let mut damaged = whole.clone();
    let mut at = 24;
    while at < damaged.len() * 9 / 10 {
        at += 16 + u32::from_le_bytes(damaged[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    damaged[at + 8..at + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    // The same packets as pcapng, with a block of name resolution half way, and again with a
    // comment on the packet half way (the chunks read on past both); and with a new section half
    // way (the chunks stop at it, and every worker walks the rest).
    let mut ng = iocmatch::report::evidence::PcapngWriter::new(Vec::new()).unwrap();
    iocmatch::source::capture::read_slice(&whole, |p| ng.packet(p.linktype, p.ts_micros, p.data, p.wire_len).unwrap())
        .unwrap();
    let ng = ng.finish().unwrap();
    let mut half = 0;
    while half < ng.len() / 2 {
        half += u32::from_le_bytes(ng[half + 4..half + 8].try_into().unwrap()) as usize;
    }
    let word = |x: usize| (x as u32).to_le_bytes();
    let names = [&word(4)[..], &word(16), &[0; 4], &word(16)].concat();
    let named = [&ng[..half], &names, &ng[half..]].concat();
    let len = u32::from_le_bytes(ng[half + 4..half + 8].try_into().unwrap()) as usize;
    let comment = [&b"\x01\x00\x09\x00a comment\x00\x00\x00"[..], &[0; 4]].concat();
    let body = &ng[half + 8..half + len - 4];
    let commented = [
        &ng[..half],
        &word(6),
        &word(len + comment.len()),
        body,
        &comment,
        &word(len + comment.len()),
        &ng[half + len..],
    ]
    .concat();
    let section = [&ng[..28], &ng[28..48]].concat(); // the section header and the interface
    let resectioned = [&ng[..half], &section, &ng[half..]].concat();
    for (name, bytes) in [
        ("whole.pcap", &whole),
        ("damaged.pcap", &damaged),
        ("named.pcapng", &named),
        ("commented.pcapng", &commented),
        ("resectioned.pcapng", &resectioned),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let args = ["scan", "--no-default-set", "--indicators", ind.to_str().unwrap(), path.to_str().unwrap()];
        let one = sorted_run(&[&args[..], &["-j", "1"]].concat());
        let resolved = one.0.iter().filter(|l| l.contains("dns.resolved")).count();
        assert_eq!(resolved, if name == "damaged.pcap" { 0 } else { 40 }, "{name}");
        assert!(one.0.iter().filter(|l| l.contains("\"alert\"")).count() > 3000, "{name}");
        let where_stopped = |j: &str| {
            let out = bin().args([&args[..], &["-j", j, "-o", "/dev/null"]].concat()).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            // Where, and why: the same words whether a worker or the one engine found it.
            err.lines().find(|l| l.contains("error")).map(String::from)
        };
        let stopped = where_stopped("1");
        assert_eq!(stopped.is_some(), name == "damaged.pcap", "{name}: {stopped:?}");
        for j in ["2", "3"] {
            let many = sorted_run(&[&args[..], &["-j", j]].concat());
            assert_eq!(one.1, many.1, "{name} -j {j}: the summary counts differ");
            assert!(one.0 == many.0, "{name} -j {j}: the alerts differ");
            assert_eq!(stopped, where_stopped(j), "{name} -j {j}: the error differs");
        }
    }
}

/// `--syslog HOST:PORT`: every event is one RFC 5424 message over UDP, the EVE event as its
/// message, so a SIEM's syslog input takes them as Suricata's.
#[test]
fn alerts_go_to_syslog_one_message_per_event() {
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let dest = rx.local_addr().unwrap().to_string();
    let out = run(&["scan", "--syslog", &dest, &root("pcaps/raptor-train-c2.pcap")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "the alerts went to syslog, not standard output");
    let on_stdout = alerts(&run(&["scan", "-q", &root("pcaps/raptor-train-c2.pcap")]));
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    rx.set_read_timeout(Some(std::time::Duration::from_millis(500))).unwrap();
    while let Ok(n) = rx.recv(&mut buf) {
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(m.starts_with("<172>1 "), "{m}");
        let event = m.splitn(8, ' ').nth(7).unwrap().to_string();
        got.push(serde_json::from_str::<Value>(&event).unwrap());
    }
    let sent: Vec<&Value> = got.iter().filter(|e| e["event_type"] == "alert").collect();
    assert_eq!(sent.len(), on_stdout.len(), "every alert, once");
    assert!(got.iter().any(|e| e["event_type"] == "flow"), "flow events too");
    let both = run(&["scan", "--syslog", &dest, "-o", "/dev/null", &root("pcaps/clean.pcap")]);
    assert_eq!(both.status.code(), Some(2), "--syslog and -o together are refused");

    // Over TCP, each message octet-counted (RFC 6587): the same events.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = format!("tcp://{}", l.local_addr().unwrap());
    let reader = std::thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        let mut r = std::io::BufReader::new(c);
        let mut events = Vec::new();
        loop {
            let mut len = Vec::new();
            if std::io::BufRead::read_until(&mut r, b' ', &mut len).unwrap() == 0 {
                break events;
            }
            let n: usize = String::from_utf8_lossy(&len).trim().parse().unwrap();
            let mut m = vec![0; n];
            std::io::Read::read_exact(&mut r, &mut m).unwrap();
            let m = String::from_utf8(m).unwrap();
            events.push(serde_json::from_str::<Value>(m.splitn(8, ' ').nth(7).unwrap()).unwrap());
        }
    });
    let out = run(&["scan", "--syslog", &dest, &root("pcaps/raptor-train-c2.pcap")]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(reader.join().unwrap(), got, "the same events over TCP as over UDP");
}
