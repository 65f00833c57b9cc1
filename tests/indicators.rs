//! `iocmatch indicators ...` as scripts and analysts use it.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iocmatch")).args(args).output().expect("run iocmatch")
}

fn root(p: &str) -> String {
    format!("{}/{p}", env!("CARGO_MANIFEST_DIR"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn shipped_sets_check_clean_with_every_row() {
    let out = run(&["indicators", "check", "--no-default-set", &root("indicators")]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("checked 258 indicators in 5 source(s)"), "212+16+5+19+6 rows: {}", stdout(&out));
    // The same folder on top of the built-in sets is loaded once, with a note.
    let out = run(&["indicators", "check", &root("indicators")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("checked 258 indicators"));
    assert!(stdout(&out).contains("note: "));
}

#[test]
fn check_reports_locations_and_false_positive_magnets() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("feed.csv");
    std::fs::write(
        &f,
        "indicator,type\n8.8.8.8,ipv4\nsoftether.net,domain\n10.0.0.0/8,cidr\nnot-an-ip,ipv4\nok.example,domain\n",
    )
    .unwrap();
    let out = run(&["indicators", "check", "--no-default-set", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("warning:") || l.starts_with("error:")).collect();
    assert!(
        lines.iter().any(
            |l| l.starts_with("warning: ") && l.contains("feed.csv:2: 8.8.8.8 is a well-known public DNS resolver")
        ),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains("feed.csv:3: softether.net is a shared platform")), "{text}");
    assert!(lines.iter().any(|l| l.contains("feed.csv:4: 10.0.0.0/8") && l.contains("broad")), "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("error: ") && l.contains("feed.csv:5: not a valid IPv4 address")),
        "{text}"
    );
    assert!(text.contains("1 error(s)"));
    // --strict makes the bad row fatal.
    let strict = run(&["indicators", "check", "--strict", "--no-default-set", f.to_str().unwrap()]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&strict.stderr).contains("feed.csv:5"));
}

#[test]
fn stats_show_provenance() {
    let out = run(&["indicators", "stats"]);
    assert_eq!(out.status.code(), Some(0));
    let t = stdout(&out);
    assert!(t.starts_with("258 indicators in 5 source(s)"), "{t}");
    assert!(t.contains("raptor-train-lumen-2024-09-18 (212 indicators"), "{t}");
    assert!(t.contains("Lumen Technologies, Black Lotus Labs"));
    assert!(t.contains("https://www.ic3.gov/CSA/2024/240918.pdf"));
}

fn values(csv_text: &str) -> Vec<String> {
    let mut v: Vec<String> =
        csv_text.lines().skip(1).map(|l| l.split(',').take(2).collect::<Vec<_>>().join(",")).collect();
    v.sort();
    v
}

#[test]
fn exports_load_back_as_the_same_set() {
    let dir = tempfile::tempdir().unwrap();
    let csv = stdout(&run(&["indicators", "export", "--to", "csv"]));
    assert!(csv.starts_with("indicator,type,"));
    assert_eq!(csv.lines().count(), 259);
    for (to, name, lossy) in [("csv", "x.csv", 0usize), ("zeek", "x.intel", 3), ("stix", "x.json", 0)] {
        let out = run(&["indicators", "export", "--to", to]);
        assert_eq!(out.status.code(), Some(0), "{to}");
        let p = dir.path().join(name);
        std::fs::write(&p, &out.stdout).unwrap();
        let back = stdout(&run(&["indicators", "export", "--to", "csv", "--no-default-set", p.to_str().unwrap()]));
        let want = values(&csv);
        let got = values(&back);
        assert_eq!(got.len() + lossy, want.len(), "{to}: rows");
        if lossy == 0 {
            assert_eq!(got, want, "{to} round trip");
        }
    }
    let s = dir.path().join("suricata");
    let out = run(&["indicators", "export", "--to", "suricata", "-o", s.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let rules = std::fs::read_to_string(s.join("iocmatch.rules")).unwrap();
    assert!(rules.contains("iprep:dst,iocmatch"));
    assert!(std::fs::read_to_string(s.join("iocmatch.iprep")).unwrap().lines().count() >= 100);
}

#[test]
fn compiled_sets_load_the_same_and_rebuild_when_a_source_changes() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.csv");
    std::fs::write(&feed, "indicator,type,role\nc2.hy92.com,domain,test C2\n198.51.100.23,ipv4,test\n").unwrap();
    let set = dir.path().join("feed.iocset");
    let out = run(&["indicators", "compile", feed.to_str().unwrap(), "-o", set.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let scan = |ind: &str| {
        let o = run(&["scan", "-q", "--no-default-set", "--indicators", ind, &root("pcaps/raptor-train-c2.pcap")]);
        let mut v: Vec<String> = stdout(&o)
            .lines()
            .filter(|l| l.contains("\"event_type\":\"alert\""))
            .map(|l| {
                let a: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {} {}", a["match"]["field"], a["match"]["value"], a["match"]["role"])
            })
            .collect();
        v.sort();
        (v, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (from_csv, _) = scan(feed.to_str().unwrap());
    let (from_set, _) = scan(set.to_str().unwrap());
    assert!(!from_csv.is_empty());
    assert_eq!(from_csv, from_set, "a compiled set matches exactly what its sources match");

    // A damaged compiled set is refused with a reason.
    let mut bytes = std::fs::read(&set).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let broken = dir.path().join("broken.iocset");
    std::fs::write(&broken, &bytes).unwrap();
    let o =
        run(&["scan", "-q", "--no-default-set", "--indicators", broken.to_str().unwrap(), &root("pcaps/clean.pcap")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("damaged"));

    // The source changes: the set is rebuilt from it, and the new row matches.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&feed, "indicator,type,role\nacqv.w8510.com,domain,added later\n").unwrap();
    let (after, err) = scan(set.to_str().unwrap());
    assert!(err.contains("changed since this set was compiled"), "{err}");
    assert!(after.iter().all(|a| !a.contains("hy92")), "{after:?}");
    assert!(after.iter().any(|a| a.contains("added later")), "{after:?}");
    let (again, err) = scan(set.to_str().unwrap());
    assert!(!err.contains("changed since"), "rewritten: {err}");
    assert_eq!(again, after);
}
