//! Flow logs and NetFlow/IPFIX exports from public projects (`../shared/corpus/flows`, present
//! on the developers' machines and CI, not in a user's clone): every file is read without a
//! panic, broken ones are reported by file and line, and the NetFlow/IPFIX records agree with
//! tshark's decoding of the same export packets (`oracle/flows/*/flow_records.tsv`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    p.join("flows").is_dir().then_some(p)
}

fn everything(dir: &Path) -> PathBuf {
    let f = dir.join("all.csv");
    std::fs::write(&f, "indicator,type\n0.0.0.0/0,cidr\n::/0,cidr\n").unwrap();
    f
}

type Tuple = (String, String, String, u16, u16);

fn scan(inds: &Path, files: &[PathBuf]) -> (Option<i32>, Vec<serde_json::Value>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iocmatch"));
    cmd.args(["scan", "--no-default-set", "--indicators"]).arg(inds);
    cmd.args(files);
    let out = cmd.output().unwrap();
    let alerts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event_type"] == "alert")
        .collect();
    (out.status.code(), alerts, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn text_flow_logs_read_cleanly_and_broken_ones_say_where() {
    let Some(c) = corpus() else {
        println!("skipped: corpus not present");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let inds = everything(tmp.path());
    let mut accounted = 0;
    for sub in ["zeek", "eve", "aws_vpc"] {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(c.join("flows").join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            let (code, alerts, err) = scan(&inds, std::slice::from_ref(&f));
            assert_ne!(code, Some(101), "{name} panicked: {err}");
            let broken = name.contains("broken") || name.contains("bad");
            // Zeek's test baselines mask their timestamps (XXXXXXXXXX.XXXXXX): each line is
            // reported as unreadable, by line number, and nothing else happens.
            let masked = name.starts_with("zeek-btest__");
            // A transit-gateway log in a custom format without its header line cannot be read.
            let headerless = name == "beats__custom-transit-gateway.log";
            // Only NODATA/SKIPDATA records: nothing to flag, nothing wrong.
            let empty = name == "beats__no-data-skip-data.log" || name == "beats__tcp-flag-sequence-skip-data.log";
            // Every line is accounted for: a record, a bad line (skipped, located), a line
            // without a connection (other event types, NODATA), or a header.
            if let Some(line) = err.lines().find(|l| l.trim_start().starts_with("records")) {
                let nums: Vec<u64> = line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter(|t| !t.is_empty())
                    .map(|t| t.parse().unwrap())
                    .collect();
                let [records, skipped, lines, ignored] = nums[..] else { panic!("{name}: summary line {line:?}") };
                let text = std::fs::read_to_string(&f).unwrap();
                let nonempty = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
                // Zeek's comment lines and AWS header lines (which name `srcaddr` or `interface-id`).
                let aws_header = |l: &str| l.split_whitespace().any(|t| t == "srcaddr" || t == "interface-id");
                let headers = text.lines().filter(|l| l.starts_with('#') || aws_header(l)).count() as u64;
                assert_eq!(lines, nonempty, "{name}: lines read");
                assert_eq!(
                    lines,
                    records + skipped + ignored + headers,
                    "{name}: {records} records + {skipped} skipped + {ignored} without a connection + {headers} \
                     headers do not add up to {lines} lines"
                );
                accounted += lines;
            } else {
                assert_eq!(code, Some(2), "{name}: no record accounting and no fatal error: {err}");
            }
            if broken || headerless {
                assert!(code == Some(2) || err.contains(&format!("{name}:")), "{name}: no located error: {err}");
            } else if empty {
                assert!(alerts.is_empty() && !err.contains("error"), "{name}: {err}");
            } else if masked {
                assert!(err.contains("invalid ts") || err.contains(&format!("{name}:")), "{name}: {err}");
            } else {
                assert!(!alerts.is_empty(), "{name}: no record flagged with 0.0.0.0/0: {err}");
                assert!(!err.contains("error"), "{name}: {err}");
            }
        }
    }
    assert!(accounted > 300, "only {accounted} lines accounted for");
    println!("text flow-log lines accounted for: {accounted}");
}

#[test]
fn netflow_and_ipfix_records_agree_with_tshark() {
    let Some(c) = corpus() else {
        println!("skipped: corpus not present");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let inds = everything(tmp.path());
    let oracle = c.join("oracle/flows");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&oracle).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    // Captures the corpus marks malformed on purpose: read without a panic, not compared.
    let manifest = std::fs::read_to_string(c.join("MANIFEST.tsv")).unwrap_or_default();
    let malformed = |name: &str| {
        manifest.lines().any(|l| l.starts_with(&format!("flows/netflow/{name}\t")) && l.contains("malformed"))
    };
    let (mut agree, mut total) = (0, 0);
    for d in dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        let Ok(tsv) = std::fs::read_to_string(d.join("flow_records.tsv")) else { continue };
        let want: BTreeSet<Tuple> = tsv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let (src, dst) = (f.get(5)?, f.get(6)?);
                if src.is_empty() || dst.is_empty() {
                    return None;
                }
                let p = match *f.get(7)? {
                    "6" => "TCP",
                    "17" => "UDP",
                    _ => return None, // ICMP and others: ports are type/code, compared elsewhere
                };
                Some((
                    p.to_string(),
                    src.to_string(),
                    dst.to_string(),
                    f.get(8)?.parse().ok()?,
                    f.get(9)?.parse().ok()?,
                ))
            })
            .collect();
        if want.is_empty() {
            continue;
        }
        let mut files = Vec::new();
        // Data-only captures were decoded by tshark with their sibling's templates first.
        if let Ok(note) = std::fs::read_to_string(d.join("NOTE.txt")) {
            if let Some(t) = note.split_whitespace().find(|w| w.ends_with(".pcap")) {
                files.push(c.join("flows/netflow").join(t));
            }
        }
        files.push(c.join("flows/netflow").join(&name));
        let (code, alerts, err) = scan(&inds, &files);
        assert_ne!(code, Some(101), "{name} panicked: {err}");
        if malformed(&name) {
            continue;
        }
        let got: BTreeSet<Tuple> = alerts
            .iter()
            .filter(|a| a["match"]["field"] == "flow.src")
            .map(|a| {
                (
                    a["proto"].as_str().unwrap_or("").to_string(),
                    a["src_ip"].as_str().unwrap_or("").to_string(),
                    a["dest_ip"].as_str().unwrap_or("").to_string(),
                    a["src_port"].as_u64().unwrap_or(0) as u16,
                    a["dest_port"].as_u64().unwrap_or(0) as u16,
                )
            })
            .collect();
        // A connection seen in both directions is reported once, oriented by its first record.
        // Ports are left out of the key: some exporters put them in IEs tshark does not show as
        // ports (Cisco NBAR's udp ports come out 0 there), and ICMP carries type/code instead.
        let norm = |t: &Tuple| {
            let (a, b) = (t.1.clone(), t.2.clone());
            if a <= b {
                (t.0.clone(), a, b)
            } else {
                (t.0.clone(), b, a)
            }
        };
        let want_n: BTreeSet<_> = want.iter().map(norm).collect();
        let got_n: BTreeSet<_> = got.iter().map(norm).collect();
        let missing: Vec<_> = want_n.difference(&got_n).collect();
        total += want_n.len();
        agree += want_n.len() - missing.len();
        assert!(
            missing.is_empty(),
            "{name}: {} of {} records not seen, e.g. {:?}\n{err}",
            missing.len(),
            want_n.len(),
            missing.first()
        );
    }
    println!("netflow/ipfix: {agree}/{total} connections agree with tshark");
    assert!(total > 100, "only {total} records compared");
}
