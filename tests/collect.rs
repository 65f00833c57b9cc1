//! `iocmatch collect` end to end on loopback: NetFlow v5, v9 and IPFIX datagrams sent from a
//! UDP socket to a child collector, whose alerts and summary are then checked.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use iocmatch::synth::flows::{self, tuple_key, Caps, Item, TupleKey};
use serde_json::Value;

#[test]
fn collect_flags_v5_v9_and_ipfix_records_on_loopback() {
    let s = flows::generate(600, 77);
    let all: Vec<usize> = (0..s.flows.len()).collect();
    let v4: Vec<usize> = all.iter().copied().filter(|&i| s.flows[i].src.is_ipv4()).collect();
    let v6: Vec<usize> = all.iter().copied().filter(|&i| s.flows[i].src.is_ipv6()).collect();
    // v5 carries the IPv4 flows, v9 and IPFIX the IPv6 ones (two exporters on one collector).
    let v5 = flows::netflow_v5(&s, &v4);
    let v9 = flows::netflow_v9(&s, &v6[..v6.len() / 2]);
    let ipfix = flows::ipfix(&s, &v6[v6.len() / 2..]);

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iocs.csv");
    std::fs::write(&csv, &s.indicators_csv).unwrap();
    // A free port: bind, read it, release (the collector binds it right after).
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["collect", "--listen", &listen, "--no-default-set", "--idle-exit", "2", "--indicators"])
        .arg(&csv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iocmatch collect");
    let deadline = Instant::now() + Duration::from_secs(20);
    // Kill the child if anything below panics or hangs.
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut stdout = child.stdout.take().unwrap();
    let mut guard = Guard(child);
    let watchdog_pid = guard.0.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    std::thread::spawn(move || {
        while Instant::now() < deadline {
            if finished.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Past 20 s and still running: end the child by its id (the test then fails).
        let _ = Command::new("kill").arg(watchdog_pid.to_string()).status();
    });

    let mut line = String::new();
    loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "collect exited before listening");
        if line.contains("listening") {
            break;
        }
    }
    assert!(line.contains(&listen), "{line}");

    let v5_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let v9_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent = |sock: &UdpSocket, datagrams: &[Vec<u8>]| {
        for d in datagrams {
            sock.send_to(d, &listen).unwrap();
            // Loopback drops nothing at this pace; keep the receive buffer comfortable anyway.
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    sent(&v5_sock, &v5.datagrams);
    sent(&v9_sock, &v9.datagrams); // template first, then data
    sent(&v9_sock, &ipfix.datagrams); // template first, then data

    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = guard.0.wait().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(Instant::now() < deadline, "collect did not exit on its own within 20 s");
    assert_eq!(status.code(), Some(1), "exit 1 when something is flagged\n{rest}");

    let alerts: Vec<Value> =
        out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|v| v["event_type"] == "alert").collect();
    let key_of = |a: &Value| -> TupleKey {
        let ip = |k: &str| a[k].as_str().unwrap().parse().unwrap();
        let port = |k: &str| a[k].as_u64().unwrap() as u16;
        let proto = if a["proto"] == "TCP" { 6 } else { 17 };
        tuple_key(proto, (ip("src_ip"), port("src_port")), (ip("dest_ip"), port("dest_port")))
    };
    let got: BTreeSet<TupleKey> = alerts.iter().map(key_of).collect();
    let caps_v5 = Caps { ipv6: false, pkt_dst: false, dns: false };
    let caps_tpl = Caps { ipv6: true, pkt_dst: true, dns: false };
    let mut want = s.expected(&v4, caps_v5);
    want.extend(s.expected(&v6, caps_tpl));
    let want_keys: BTreeSet<TupleKey> = want.iter().map(|e| e.key).collect();
    assert_eq!(got, want_keys, "flagged 5-tuples (recall and precision 1.0)\n{rest}");
    assert!(want.len() > 20);

    for e in &want {
        let Item::Flow(i) = e.item else { unreachable!("no DNS in export data") };
        let a = alerts.iter().find(|a| key_of(a) == e.key).unwrap();
        assert_eq!(a["match"]["field"], e.reason.field(), "{a}");
        assert_eq!(a["match"]["indicator"], e.indicator.as_str());
        let (sock, export) = if v4.contains(&i) {
            (&v5_sock, &v5)
        } else if v9.flow_at.contains_key(&i) {
            (&v9_sock, &v9)
        } else {
            (&v9_sock, &ipfix)
        };
        assert_eq!(a["capture"]["exporter"], sock.local_addr().unwrap().to_string(), "{a}");
        assert_eq!(a["capture"]["sequence"], export.flow_at[&i].1, "{a}");
        assert_eq!(a["capture"]["file"], format!("udp:{listen}"));
    }
    let datagrams = v5.datagrams.len() + v9.datagrams.len() + ipfix.datagrams.len();
    assert!(rest.contains(&format!("{datagrams} packets")), "{rest}");
    assert!(rest.contains(&format!("{} flow-log records, 0 skipped", all.len())), "{rest}");
}

/// sFlow datagrams on the same socket as NetFlow: each sampled packet is matched, and its alert
/// says it was sampled (1 in 1024) and by which exporter.
#[test]
fn collect_reads_sflow_samples_too() {
    use iocmatch::synth::{addr, ethernet, ip, sflow_datagram, tcp};
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("iocs.csv");
    std::fs::write(&csv, "indicator,type\n198.51.100.0/24,cidr\n").unwrap();
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_iocmatch"))
        .args(["collect", "--listen", &listen, "--no-default-set", "--idle-exit", "1", "--indicators"])
        .arg(&csv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iocmatch collect");
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut guard = Guard(child);
    let mut stderr = BufReader::new(guard.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "collect exited before listening");
    }
    let syn = |dst: &str| {
        ethernet(None, 0x0800, &ip(addr("10.0.0.9"), addr(dst), 6, tcp(40000, 443, 1, 0, 0x02, &[]), Some(16)))
    };
    let (clean, flagged) = (syn("192.0.2.7"), syn("198.51.100.7"));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&sflow_datagram([127, 0, 0, 1], 41, 1024, &[&clean, &flagged], 128), &listen).unwrap();
    // Bounded: the collector leaves after 1 s without a datagram; the guard kills it otherwise.
    let t = Instant::now();
    while guard.0.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(20), "collect did not exit on its own");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    guard.0.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let alerts: Vec<Value> =
        out.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|v| v["event_type"] == "alert").collect();
    assert_eq!(alerts.len(), 1, "{out}\n{rest}");
    let (a, c) = (&alerts[0], &alerts[0]["capture"]);
    assert_eq!((a["dest_ip"].as_str(), a["match"]["field"].as_str()), (Some("198.51.100.7"), Some("flow.dst")));
    assert_eq!(c["sampling_rate"], 1024);
    assert_eq!(c["sequence"], 41);
    assert_eq!(c["exporter"], sock.local_addr().unwrap().to_string());
    assert!(rest.contains("2 flow-log records, 0 skipped"), "{rest}");
}
