//! `iocmatch watch` on real packets: a network namespace for the sensor and one for the peer,
//! joined by a veth pair. The peer sends crafted DNS queries, UDP datagrams and the frames of
//! a shipped capture; the sensor must alert on them, drop nothing, and pick up a changed
//! indicator file without restarting. Runs as root with `--features live`; skips (and says so)
//! where network namespaces cannot be created. All traffic stays on the veth pair.
#![cfg(feature = "live")]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_iocmatch");

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Two namespaces and a veth pair between them; removed on drop, even after a failed assertion.
struct Lab {
    sensor_ns: String,
    peer_ns: String,
    sensor_if: String,
    peer_if: String,
    sensor_ip: Ipv4Addr,
    peer_ip: Ipv4Addr,
}

impl Lab {
    fn new(tag: u8) -> Option<Lab> {
        let pid = std::process::id() % 1_000_000;
        let lab = Lab {
            sensor_ns: format!("iocw-{pid}-{tag}-s"),
            peer_ns: format!("iocw-{pid}-{tag}-p"),
            sensor_if: format!("iw{pid}{tag}s"),
            peer_if: format!("iw{pid}{tag}p"),
            sensor_ip: Ipv4Addr::new(198, 18, tag, 1),
            peer_ip: Ipv4Addr::new(198, 18, tag, 2),
        };
        if let Err(e) = ip(&["netns", "add", &lab.sensor_ns]) {
            eprintln!("skipped: cannot create network namespaces ({e})");
            return None;
        }
        let peer_if = lab.peer_if.clone();
        let (s, p) = (lab.sensor_ns.as_str(), lab.peer_ns.as_str());
        let (sa, pa) = (format!("{}/24", lab.sensor_ip), format!("{}/24", lab.peer_ip));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", p],
            vec!["link", "add", &lab.sensor_if, "netns", s, "type", "veth", "peer", "name", &peer_if, "netns", p],
            vec!["-n", s, "addr", "add", &sa, "dev", &lab.sensor_if],
            vec!["-n", p, "addr", "add", &pa, "dev", &peer_if],
            vec!["-n", s, "link", "set", &lab.sensor_if, "up"],
            vec!["-n", p, "link", "set", &peer_if, "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
            vec!["-n", p, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = ip(&step) {
                drop(lab);
                panic!("setting up the namespaces: {e}");
            }
        }
        Some(lab)
    }

    /// Runs `f` on a thread that has joined the peer namespace.
    fn in_peer<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        in_ns(&self.peer_ns, f).join().expect("peer thread")
    }
}

/// Runs `f` on a new thread that has joined network namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("opening the namespace");
        // SAFETY: setns on this thread only; the fd is valid for the call.
        let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace removes the veth end in it, and with it the pair.
        let _ = ip(&["netns", "del", &self.peer_ns]);
        let _ = ip(&["netns", "del", &self.sensor_ns]);
    }
}

/// A running `watch`, its standard error collected line by line.
struct Watch {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    out: PathBuf,
}

impl Watch {
    fn start(lab: &Lab, out: &Path, extra: &[&str]) -> Watch {
        Watch::start_on(lab, &["-i", &lab.sensor_if], out, extra)
    }

    /// `watch` reading from `source` (`-i IFACE`, or `--nfqueue N`).
    fn start_on(lab: &Lab, source: &[&str], out: &Path, extra: &[&str]) -> Watch {
        let mut args = vec!["netns", "exec", &lab.sensor_ns, BIN, "watch", "--stats-interval", "1"];
        args.extend_from_slice(source);
        args.extend_from_slice(&["-o", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting iocmatch watch");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (l, err) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("  watch| {line}");
                l.lock().unwrap().push(line);
            }
        });
        let w = Watch { child, log, out: out.to_path_buf() };
        w.wait_log("watching ", Duration::from_secs(20));
        // libpcap is live once the log line is out; give the kernel a moment to attach.
        std::thread::sleep(Duration::from_millis(300));
        w
    }

    fn log_has(&self, s: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(s))
    }

    fn wait_log(&self, s: &str, limit: Duration) {
        let t = Instant::now();
        while !self.log_has(s) {
            assert!(t.elapsed() < limit, "no {s:?} in watch's log within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alerts(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event_type"] == "alert")
            .collect()
    }

    /// Waits until an alert on `indicator` in `field` is written.
    fn wait_alert(&self, indicator: &str, field: &str, limit: Duration) -> serde_json::Value {
        let t = Instant::now();
        loop {
            if let Some(a) =
                self.alerts().into_iter().find(|a| a["match"]["indicator"] == indicator && a["match"]["field"] == field)
            {
                return a;
            }
            assert!(t.elapsed() < limit, "no {field} alert for {indicator} within {limit:?}: {:#?}", self.alerts());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status and the whole log.
    fn stop(mut self) -> (i32, Vec<String>) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("watch did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        (st.code().unwrap_or(-1), self.log.lock().unwrap().clone())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DNS query for `name` (type A), as a resolver would receive it.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

fn send_queries(lab: &Lab, names: &[&str]) {
    let to = SocketAddrV4::new(lab.sensor_ip, 53);
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    lab.in_peer(move || {
        for (i, n) in names.iter().enumerate() {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(&dns_query(0x4000 + i as u16, n), to).unwrap();
        }
    });
}

/// Writes the Ethernet frames of a capture file onto the peer's end of the veth pair.
fn replay(lab: &Lab, pcap: &Path) -> usize {
    let mut frames = Vec::new();
    let reader = iocmatch::source::capture::open(pcap).unwrap();
    iocmatch::source::capture::read(reader, |p| {
        assert_eq!(p.linktype, 1, "Ethernet frames only");
        frames.push(p.data.to_vec());
    })
    .unwrap();
    let n = frames.len();
    let ifname = lab.peer_if.clone();
    lab.in_peer(move || {
        // SAFETY: plain socket calls on a socket we own; sockaddr_ll is zero-initialised.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            let c = std::ffi::CString::new(ifname).unwrap();
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(c.as_ptr()) as i32;
            assert!(sll.sll_ifindex > 0);
            let r = libc::bind(
                fd,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            for f in &frames {
                let r = libc::send(fd, f.as_ptr() as *const libc::c_void, f.len(), 0);
                assert_eq!(r as usize, f.len(), "send: {}", std::io::Error::last_os_error());
            }
            libc::close(fd);
        }
    });
    n
}

fn stat_line(log: &[String]) -> String {
    log.iter().rev().find(|l| l.contains("stats: ")).cloned().expect("a stats line at exit")
}

fn count_in(line: &str, before: &str) -> u64 {
    let i = line.find(before).unwrap_or_else(|| panic!("{before:?} in {line:?}"));
    line[..i].split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn live_alerts_and_no_drops() {
    let Some(lab) = Lab::new(11) else { return };
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.txt");
    std::fs::write(&feed, format!("{}\nc2.watch-test.example\n", lab.sensor_ip)).unwrap();
    let out = dir.path().join("alerts.json");
    // Two workers: the replay sends the DNS answer and the connection it names microseconds
    // apart, and they may land on different workers; every worker learns from every DNS
    // answer in order, so the resolved address is still flagged.
    let w = Watch::start(&lab, &out, &["--indicators", feed.to_str().unwrap(), "--workers", "2"]);

    send_queries(&lab, &["c2.watch-test.example", "harmless.example"]);
    let a = w.wait_alert("c2.watch-test.example", "dns.query", Duration::from_secs(10));
    assert_eq!(a["src_ip"], lab.peer_ip.to_string());
    assert_eq!(a["dest_port"], 53);
    assert!(a["capture"]["file"].as_str().unwrap().starts_with("live:"), "{a}");
    w.wait_alert(&lab.sensor_ip.to_string(), "ip.dst", Duration::from_secs(10));

    // A shipped capture, frame by frame: its DNS answer for c2.hy92.com (a built-in
    // indicator) must flag the connection to the address it gave.
    let replayed = replay(&lab, Path::new("pcaps/raptor-train-c2.pcap"));
    let a = w.wait_alert("hy92.com", "dns.resolved", Duration::from_secs(10));
    assert_eq!(a["dest_ip"], "198.51.100.23");
    assert_eq!(a["match"]["resolved_from"], "c2.hy92.com");

    // A bounded burst of datagrams: every one must be inspected.
    const BURST: usize = 5000;
    let to = SocketAddrV4::new(lab.sensor_ip, 9);
    lab.in_peer(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..BURST {
            s.send_to(&(i as u32).to_be_bytes(), to).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(1500));

    let (code, log) = w.stop();
    assert_eq!(code, 0, "exit status after SIGTERM");
    let stats = stat_line(&log);
    assert!(stats.contains("drops: libpcap 0 (buffer) + 0 (interface), ours 0 (queue full)"), "{stats}");
    let inspected = count_in(&stats, "packets (");
    assert!(inspected >= (BURST + replayed + 2) as u64, "{inspected} packets inspected: {stats}");
    // The alert file ends with the flow events written at exit, all whole lines.
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    assert!(text.contains("\"event_type\":\"flow\""), "flow events at exit");
}

/// Traffic mirrored in VXLAN comes between two addresses only; the reader shares it out by the
/// connections inside, and hands every worker the DNS answer inside the tunnel, so the 80
/// connections to the address it gave are all flagged, on whichever worker they land; and the
/// connection mirrored from both its ends is flagged once, as one connection.
#[test]
fn a_mirror_tunnel_is_shared_out_by_the_connections_inside() {
    let Some(lab) = Lab::new(16) else { return };
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.csv");
    std::fs::write(&feed, "indicator,type\nflagged.example,domain\n198.51.100.0/24,cidr\n").unwrap();
    let capture = dir.path().join("mirror.pcap");
    std::fs::write(&capture, iocmatch::synth::vxlan_mirror().unwrap()).unwrap();
    let out = dir.path().join("alerts.json");
    let w = Watch::start(&lab, &out, &["--no-default-set", "--indicators", feed.to_str().unwrap(), "--workers", "3"]);
    replay(&lab, &capture);
    let resolved = |w: &Watch| w.alerts().iter().filter(|a| a["match"]["field"] == "dns.resolved").count();
    let t = Instant::now();
    while resolved(&w) < 80 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    w.wait_alert("198.51.100.0/24", "ip.dst", Duration::from_secs(10));
    let (code, _) = w.stop();
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let all: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let alerts: Vec<_> = all.iter().filter(|a| a["event_type"] == "alert").collect();
    assert_eq!(alerts.iter().filter(|a| a["match"]["field"] == "dns.resolved").count(), 80, "{alerts:#?}");
    let mirrored: Vec<_> = all.iter().filter(|a| a["dest_ip"] == "198.51.100.9").collect();
    assert_eq!(mirrored.len(), 2, "one alert and one flow event: {mirrored:#?}");
}

/// Datagrams that arrive in IP fragments say whose connection they hold only once whole; the
/// reader hands such fragments to every worker, which reassembles them: the 40 connections to
/// the address in the last fragment of a long DNS answer are all flagged, on whichever worker
/// they land, and each of the 8 connections mirrored in VXLAN, some of whose tunnel datagrams
/// were fragmented, is one connection (one alert, one flow event).
#[test]
fn fragments_are_reassembled_by_every_worker_and_inspected_by_the_owner() {
    let Some(lab) = Lab::new(18) else { return };
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.csv");
    std::fs::write(&feed, "indicator,type\nflagged.example,domain\n198.51.100.0/24,cidr\n").unwrap();
    let capture = dir.path().join("fragments.pcap");
    std::fs::write(&capture, iocmatch::synth::fragmented_mirror().unwrap()).unwrap();
    let out = dir.path().join("alerts.json");
    let w = Watch::start(&lab, &out, &["--no-default-set", "--indicators", feed.to_str().unwrap(), "--workers", "3"]);
    replay(&lab, &capture);
    let count = |w: &Watch, f: &dyn Fn(&serde_json::Value) -> bool| w.alerts().iter().filter(|a| f(a)).count();
    let resolved = |a: &serde_json::Value| a["match"]["field"] == "dns.resolved";
    let mirrored = |a: &serde_json::Value| a["dest_ip"] == "198.51.100.9";
    let t = Instant::now();
    while (count(&w, &resolved) < 40 || count(&w, &mirrored) < 8) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _) = w.stop();
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let all: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let alerts: Vec<_> = all.iter().filter(|a| a["event_type"] == "alert").collect();
    assert_eq!(alerts.iter().filter(|a| resolved(a)).count(), 40, "{alerts:#?}");
    let mirrored: Vec<_> = all.iter().filter(|a| mirrored(a)).collect();
    assert_eq!(mirrored.len(), 16, "one alert and one flow event each: {mirrored:#?}");
}

/// Inline on a netfilter queue: every packet the rule queues waits for its verdict. Monitoring
/// (no `--block`), a flagged connection goes through and is alerted on; with `--block` the SYN to
/// a flagged address and the DNS query for a flagged name are dropped, while the rest of the
/// traffic on the same queue goes through. Skips where `iptables-legacy` is missing.
#[test]
fn inline_on_nfqueue_blocks_flagged_connections_only_when_asked() {
    if Command::new("iptables-legacy").arg("-V").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("skipped: no iptables-legacy (apt-get install iptables)");
        return;
    }
    let Some(lab) = Lab::new(17) else { return };
    let flagged_ip = Ipv4Addr::new(198, 18, 17, 3);
    ip(&["-n", &lab.sensor_ns, "addr", "add", "198.18.17.3/24", "dev", &lab.sensor_if]).unwrap();
    for proto in ["udp", "tcp"] {
        let port = if proto == "udp" { "53" } else { "8080" };
        let rule = ["-A", "INPUT", "-p", proto, "--dport", port, "-j", "NFQUEUE", "--queue-num", "7", "--queue-bypass"];
        let st = Command::new("ip").args(["netns", "exec", &lab.sensor_ns, "iptables-legacy"]).args(rule).status();
        assert!(st.unwrap().success(), "iptables-legacy in the sensor namespace");
    }
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.csv");
    std::fs::write(&feed, format!("indicator,type\nflagged.example,domain\n{flagged_ip},ipv4\n")).unwrap();
    let (sensor_ip, lab_ns) = (lab.sensor_ip, lab.sensor_ns.clone());
    // The sensor's services: a DNS port that lists what reaches it, and two TCP listeners.
    let serve = move || {
        in_ns(&lab_ns, move || {
            let dns = UdpSocket::bind(SocketAddrV4::new(sensor_ip, 53)).unwrap();
            dns.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
            let l1 = std::net::TcpListener::bind(SocketAddrV4::new(sensor_ip, 8080)).unwrap();
            let l3 = std::net::TcpListener::bind(SocketAddrV4::new(flagged_ip, 8080)).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok((n, _)) = dns.recv_from(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            drop((l1, l3));
            got
        })
    };
    let connect = |to: Ipv4Addr| {
        std::net::TcpStream::connect_timeout(&SocketAddrV4::new(to, 8080).into(), Duration::from_millis(700)).is_ok()
    };
    for block in [false, true] {
        let server = serve();
        std::thread::sleep(Duration::from_millis(200));
        let out = dir.path().join(format!("alerts-{block}.json"));
        let mut extra = vec!["--no-default-set", "--indicators", feed.to_str().unwrap()];
        if block {
            extra.push("--block");
        }
        let w = Watch::start_on(&lab, &["--nfqueue", "7"], &out, &extra);
        send_queries(&lab, &["c2.flagged.example", "harmless.example"]);
        let reached = lab.in_peer(move || (connect(sensor_ip), connect(flagged_ip)));
        let received = server.join().unwrap();
        let names = |q: &[u8]| String::from_utf8_lossy(q).to_string();
        w.wait_alert("flagged.example", "dns.query", Duration::from_secs(10));
        w.wait_alert(&flagged_ip.to_string(), "ip.dst", Duration::from_secs(10));
        let (code, log) = w.stop();
        assert_eq!(code, 0);
        assert!(reached.0, "block={block}: the clean connection must go through");
        assert_eq!(reached.1, !block, "block={block}: the connection to the flagged address");
        let flagged_seen = received.iter().any(|q| names(q).contains("flagged"));
        assert_eq!(flagged_seen, !block, "block={block}: the flagged query reached the server");
        assert!(received.iter().any(|q| names(q).contains("harmless")), "block={block}: the harmless query");
        let stats = stat_line(&log);
        assert_eq!(stats.contains("packets blocked"), block, "{stats}");
    }
    let _ = Command::new("ip").args(["netns", "exec", &lab.sensor_ns, "iptables-legacy", "-F"]).status();
}

/// An indicator feed given as a pipe (`--indicators <(curl ...)`) is read once: SIGHUP (which
/// logrotate sends) reopens the alert file and leaves the set as it is, instead of waiting on the
/// pipe forever with the thread that handles signals, so the sensor still stops on SIGTERM.
#[test]
fn a_feed_from_a_pipe_is_read_once_and_sighup_does_not_hang() {
    let Some(lab) = Lab::new(15) else { return };
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.txt");
    std::fs::write(&feed, "piped.watch-test.example\n").unwrap();
    let fifo = dir.path().join("feed.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut writer =
        Command::new("sh").arg("-c").arg(format!("cat {} > {}", feed.display(), fifo.display())).spawn().unwrap();
    let out = dir.path().join("alerts.json");
    let w = Watch::start(&lab, &out, &["--no-default-set", "--indicators", fifo.to_str().unwrap()]);
    writer.wait().unwrap();
    assert!(w.log_has("a pipe, read once"));
    send_queries(&lab, &["piped.watch-test.example"]);
    w.wait_alert("piped.watch-test.example", "dns.query", Duration::from_secs(10));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(w.child.id() as i32, libc::SIGHUP) };
    w.wait_log("reload skipped, keeping the set", Duration::from_secs(10));
    send_queries(&lab, &["piped.watch-test.example"]);
    std::thread::sleep(Duration::from_millis(500));
    let (code, _) = w.stop();
    assert_eq!(code, 0);
    assert_eq!(
        w_alerts(&out).iter().filter(|a| a["match"]["indicator"] == "piped.watch-test.example").count(),
        2,
        "the set stays in force"
    );
}

#[test]
fn reload_on_file_change_without_restart() {
    let Some(lab) = Lab::new(12) else { return };
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.txt");
    std::fs::write(&feed, "old.watch-test.example\n").unwrap();
    let out = dir.path().join("alerts.json");
    // Two workers: the reload reaches each of them.
    let w = Watch::start(&lab, &out, &["--no-default-set", "--workers", "2", "--indicators", feed.to_str().unwrap()]);

    send_queries(&lab, &["old.watch-test.example", "new.watch-test.example"]);
    w.wait_alert("old.watch-test.example", "dns.query", Duration::from_secs(10));

    // Replace the file as feed updaters do: write aside, rename over.
    let tmp = dir.path().join(".feed.txt.tmp");
    std::fs::write(&tmp, "new.watch-test.example\n").unwrap();
    std::fs::rename(&tmp, &feed).unwrap();
    w.wait_log("reloaded: 1 indicators", Duration::from_secs(10));

    send_queries(&lab, &["old.watch-test.example", "new.watch-test.example"]);
    w.wait_alert("new.watch-test.example", "dns.query", Duration::from_secs(10));
    // A file that no longer loads keeps the set in force.
    std::fs::remove_file(&feed).unwrap();
    w.wait_log("reload failed, keeping the previous set", Duration::from_secs(10));
    send_queries(&lab, &["new.watch-test.example"]);
    std::thread::sleep(Duration::from_millis(500));

    let (code, log) = w.stop();
    assert_eq!(code, 0);
    let alerts = w_alerts(&out);
    let count = |name: &str| alerts.iter().filter(|a| a["match"]["indicator"] == name).count();
    assert_eq!(count("old.watch-test.example"), 1, "the removed indicator alerted again: {alerts:#?}");
    assert_eq!(count("new.watch-test.example"), 2, "{alerts:#?}");
    let stats = stat_line(&log);
    assert!(stats.contains("1 reloads (1 failed)"), "{stats}");
    assert!(stats.contains("ours 0 (queue full)"), "{stats}");
}

fn w_alerts(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .collect()
}

#[test]
fn sighup_reopens_the_alert_file_for_logrotate() {
    let Some(lab) = Lab::new(13) else { return };
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.txt");
    std::fs::write(&feed, "first.watch-test.example\nsecond.watch-test.example\n").unwrap();
    let out = dir.path().join("alerts.json");
    let w = Watch::start(&lab, &out, &["--no-default-set", "--indicators", feed.to_str().unwrap()]);
    send_queries(&lab, &["first.watch-test.example"]);
    w.wait_alert("first.watch-test.example", "dns.query", Duration::from_secs(10));
    // logrotate: move the file away, then SIGHUP.
    let rotated = dir.path().join("alerts.json.1");
    std::fs::rename(&out, &rotated).unwrap();
    let pid = w.child.id() as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    w.wait_log("SIGHUP", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    send_queries(&lab, &["second.watch-test.example"]);
    w.wait_alert("second.watch-test.example", "dns.query", Duration::from_secs(10));
    let (code, _) = w.stop();
    assert_eq!(code, 0);
    let old = w_alerts(&rotated);
    let new = w_alerts(&out);
    assert!(old.iter().all(|a| a["match"]["indicator"] == "first.watch-test.example"), "{old:#?}");
    assert!(!old.is_empty());
    assert!(new.iter().all(|a| a["match"]["indicator"] == "second.watch-test.example"), "{new:#?}");
    assert!(!new.is_empty(), "alerts after SIGHUP go to the reopened file");
}

#[test]
fn sigterm_on_a_silent_link_stops_the_sensor() {
    // libpcap's read timeout does not fire while no packet arrives; the sensor must still stop.
    let Some(lab) = Lab::new(14) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.json");
    let w = Watch::start(&lab, &out, &["--workers", "2"]);
    std::thread::sleep(Duration::from_secs(2));
    let (code, log) = w.stop();
    assert_eq!(code, 0, "{log:#?}");
    assert!(log.iter().any(|l| l.contains("stopping (signal)")), "{log:#?}");
}
