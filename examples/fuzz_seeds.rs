//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`) from captures and
//! indicator files, so they can be rebuilt and extended:
//!
//! ```sh
//! cargo run --example fuzz_seeds -- fuzz/seeds pcaps/*.pcap ../shared/corpus/pcaps/*.pcap* \
//!     -- tests/data/indicators/* indicators/*.csv
//! ```
//!
//! Captures up to 16 KiB become `capture` and `engine` seeds whole (larger ones: their first
//! 8 KiB, a truncated file being a good seed too); their first frames become a `packet` seed;
//! UDP DNS messages and the first 16 KiB of every TCP direction become `dns`, `tls_client`,
//! `tls_server` and `http` seeds by what they start with. Files after `--` become `indicators`
//! seeds. Synthetic cases from `iocmatch::synth` are added. Names keep the source file's name.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use iocmatch::decode::packet::{self, Decoded};
use iocmatch::fuzzing::{join_frames, LINKTYPES};
use iocmatch::source::capture;
use iocmatch::synth;

const WHOLE: usize = 16 * 1024;
const HEAD: usize = 8 * 1024;
const STREAM: usize = 16 * 1024;
const PER_FILE: usize = 6;

struct Out {
    root: PathBuf,
    seen: HashSet<Vec<u8>>,
    bytes: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, data: &[u8]) {
        if data.is_empty() || !self.seen.insert([target.as_bytes(), data].concat()) {
            return;
        }
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.+".contains(c) { c } else { '_' }).collect();
        std::fs::write(dir.join(safe), data).unwrap();
        self.bytes += data.len();
    }
}

fn stem(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().to_string()
}

fn from_capture(out: &mut Out, path: &Path) {
    let data = std::fs::read(path).unwrap();
    let name = stem(path);
    if data.len() <= WHOLE {
        out.put("capture", &name, &data);
        out.put("engine", &name, &data);
    } else {
        out.put("capture", &format!("{name}.head"), &data[..HEAD]);
        out.put("engine", &format!("{name}.head"), &data[..HEAD]);
    }
    let mut frames: Vec<(u32, Vec<u8>)> = Vec::new();
    let _ = capture::read(&data[..], |p| frames.push((p.linktype, p.data.to_vec())));

    // `packet`: the first frames of the first link type, up to 4 KiB.
    if let Some(&(lt, _)) = frames.first() {
        if let Some(sel) = LINKTYPES.iter().position(|&l| l == lt) {
            let mut picked: Vec<&[u8]> = Vec::new();
            let mut size = 0;
            for (_, f) in frames.iter().filter(|(l, _)| *l == lt) {
                if size + f.len() > 4096 && !picked.is_empty() {
                    break;
                }
                size += f.len();
                picked.push(f);
            }
            out.put("packet", &name, &join_frames(sel as u8, &picked));
        }
    }

    // Application payloads.
    let mut streams: HashMap<(String, String, u16, u16), Vec<u8>> = HashMap::new();
    let mut order = Vec::new();
    let mut dns_n = 0;
    for (lt, f) in &frames {
        let mut d = Decoded::default();
        if packet::decode(*lt, f, true, &mut d).is_err() || d.payload.is_empty() || d.fragment.is_some() {
            continue;
        }
        let Some(inner) = d.innermost() else { continue };
        let dns_port = [53, 5353, 5355].iter().any(|&p| d.sport == p || d.dport == p);
        if inner.proto == 17 && dns_port && dns_n < PER_FILE {
            dns_n += 1;
            out.put("dns", &format!("{name}.{dns_n}"), d.payload);
        }
        if inner.proto == 6 {
            let key = (inner.src.to_string(), inner.dst.to_string(), d.sport, d.dport);
            let s = streams.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                Vec::new()
            });
            if s.len() < STREAM {
                s.extend_from_slice(&d.payload[..d.payload.len().min(STREAM - s.len())]);
            }
        }
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for key in &order {
        let s = &streams[key];
        let target = match s.as_slice() {
            [0x16, 3, _, _, _, 1, ..] => "tls_client",
            [0x16, 3, _, _, _, 2, ..] => "tls_server",
            [b'A'..=b'Z', ..] if s.windows(5).take(24).any(|w| w == b" HTTP" || w == b"HTTP/") => "http",
            [_, _, ..] if key.2 == 53 || key.3 == 53 => {
                for (i, m) in iocmatch::decode::dns::tcp_messages(s).take(PER_FILE).enumerate() {
                    out.put("dns", &format!("{name}.tcp{i}"), m);
                }
                continue;
            }
            _ => continue,
        };
        let n = counts.entry(target).or_default();
        if *n < PER_FILE {
            *n += 1;
            out.put(target, &format!("{name}.{n}"), s);
        }
    }
}

fn synthetic(out: &mut Out) {
    use synth::Rr;
    let a = synth::addr("198.51.100.23");
    out.put("dns", "synth-query", &synth::dns_query(7, "c2.hy92.com", 1));
    out.put("dns", "synth-response", &synth::dns_response(7, "c2.hy92.com", 1, &[Rr::Addr("c2.hy92.com", a)]));
    out.put(
        "dns",
        "synth-cname",
        &synth::dns_response(
            8,
            "www.example.com",
            1,
            &[Rr::Cname("www.example.com", "acqv.w8510.com"), Rr::Addr("acqv.w8510.com", a)],
        ),
    );
    let ch = synth::tls_client_hello(Some("acqv.w8510.com"));
    out.put("tls_client", "synth-sni", &ch);
    out.put("tls_client", "synth-no-sni", &synth::tls_client_hello(None));
    out.put("http", "synth-get", &synth::http_get("evil.example", "/a?b=c"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let raptor = synth::samples::raptor_train_c2().unwrap();
    gz.write_all(&raptor).unwrap();
    let gz = gz.finish().unwrap();
    out.put("capture", "synth-raptor-train-c2.pcap.gz", &gz);
    out.put("engine", "synth-raptor-train-c2.pcap.gz", &gz);
    let z = zstd::stream::encode_all(&synth::samples::tunnelled().unwrap()[..], 3).unwrap();
    out.put("capture", "synth-tunnelled.pcap.zst", &z);
    out.put("engine", "synth-tunnelled.pcap.zst", &z);
    // The ClientHello split into one-byte segments, through the engine.
    let mut c = synth::Capture::new(Vec::new(), 1_700_000_000_000_000).unwrap();
    let (cl, sv) = ((synth::addr("10.0.0.2"), 40000), (synth::addr("203.0.113.9"), 443));
    let seg = |seq: u32, fl: u8, pl: &[u8]| synth::ip(cl.0, sv.0, 6, synth::tcp(cl.1, sv.1, seq, 1, fl, pl), Some(16));
    c.ip_packet(&seg(999, synth::SYN, &[])).unwrap();
    for (i, b) in ch.iter().take(40).enumerate() {
        c.ip_packet(&seg(1000 + i as u32, synth::ACK | synth::PSH, std::slice::from_ref(b))).unwrap();
    }
    c.ip_packet(&seg(1040, synth::ACK | synth::PSH, &ch[40..])).unwrap();
    out.put("engine", "synth-split-client-hello.pcap", &c.w.into_inner());
    // Compiled sets: the body only (the harness writes header and checksum around it).
    for (name, text) in [
        ("compiled-mixed", COMPILED_MIXED),
        ("compiled-addresses", "indicator,type\n1.2.3.4,ipv4\n1.2.3.5,ipv4\n203.0.113.10,ipv4\n"),
    ] {
        let mut set = iocmatch::indicators::IndicatorSet::new();
        let prov = iocmatch::indicators::Provenance::default();
        iocmatch::indicators::csv::load(text, &std::sync::Arc::from("seed.csv"), prov, &mut set);
        let file = iocmatch::matcher::image::compile(&set, &[]).unwrap();
        out.put("compiled", name, &file[24..file.len() - 8]);
    }
}

/// Every kind of indicator, duplicates, a port, exact and subdomain domains.
const COMPILED_MIXED: &str = "indicator,type,match,role,confidence,tags\n\
    1.2.3.4:443,ipv4,,c2,high,a;b\n1.2.3.4,ipv4,,,,\n1.2.3.4,ipv4,,dup,,\n10.0.0.0/8,cidr,,,,\n\
    10.1.0.0/16,cidr,,,,\n10.1.0.0/16,cidr,,again,,\n2001:db8::/32,cidr,,,,\n2001:db8::5,ipv6,,,,\n\
    exact.example,domain,exact,,,\nw8510.com,domain,,,,\nw8510.com,domain,,dup,,\n\
    http://evil.example/gate.php,url,,,,\nhttp://evil.example/gate.php,url,,dup,,\n\
    da39a3ee5e6b4b0d3255bfef95601890afd80709,sha1cert,,,,\n";

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let root = args.next().expect("usage: fuzz_seeds OUT_DIR CAPTURE... -- INDICATOR_FILE...");
    let mut out = Out { root, seen: HashSet::new(), bytes: 0 };
    let mut indicators = false;
    for p in args {
        if p.as_os_str() == "--" {
            indicators = true;
        } else if indicators {
            let data = std::fs::read(&p).unwrap();
            let name = stem(&p);
            // Byte 0: bit 0 names the file "misp-..." for `detect`, the rest picks a type hint.
            let sel = u8::from(name.contains("misp"));
            out.put("indicators", &name, &[&[sel][..], &data[..data.len().min(WHOLE)]].concat());
        } else {
            from_capture(&mut out, &p);
        }
    }
    for (name, text) in [
        ("plain-defanged", "hxxp://evil[.]example/x\n1.2.3[.]4\n# comment\n\n2001:db8::/32  # net\n"),
        ("plain-bom-crlf", "\u{feff}1.2.3.4\r\n\r\nexample.com\r\n0.0.0.0/0\r\n"),
        ("csv-minimal", "indicator,type,first_seen,last_seen,role,confidence\nw8510.com,domain,,,c2,high\n"),
        ("zeek-minimal", "#fields\tindicator\tindicator_type\tmeta.source\n1.2.3.4\tIntel::ADDR\tx\n"),
        (
            "stix-minimal",
            r#"{"type":"bundle","id":"bundle--1","objects":[{"type":"indicator","spec_version":"2.1","id":"indicator--1","pattern":"[ipv4-addr:value = '1.2.3.4'] OR [domain-name:value = 'a.example']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}]}"#,
        ),
    ] {
        out.put("indicators", name, &[&[0u8][..], text.as_bytes()].concat());
    }
    synthetic(&mut out);
    eprintln!("{} bytes of seeds in {} files", out.bytes, out.seen.len());
}
