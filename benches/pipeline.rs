//! The stages of the hot path, each on its own: the capture readers (streaming, in place and
//! by windows of a mapped file),
//! the packet decoder, the engine (connection table, application parsers, matching) and the
//! flow-log parsers.
//!
//! `cargo bench --bench pipeline`: divan prints bytes/s or items/s per stage. Inputs are built
//! in memory by the project's own generators: the sample captures' frames repeated to 300k
//! packets (also as pcapng, with and without a direction flag on every packet), a 200k-SYN flood of new connections, and 200k generated flows rendered as a Zeek
//! conn.log, AWS VPC lines and EVE flow events.

use std::sync::{Arc, OnceLock};

use divan::counter::{BytesCount, ItemsCount};
use iocmatch::decode::packet::{self, Decoded};
use iocmatch::indicators::{csv, IndicatorSet, Provenance};
use iocmatch::matcher::Matcher;
use iocmatch::pipeline::engine::{Engine, Options, Sink};
use iocmatch::report::{Alert, FlowEvent};
use iocmatch::source::{capture, flowlog};
use iocmatch::synth::{self, flows, PcapWriter};

struct Fixture {
    /// The samples' frames, repeated (Ethernet).
    mixed: Vec<u8>,
    /// The same packets as pcapng, without options and with a direction flag on every packet.
    mixed_ng: Vec<u8>,
    mixed_ng_flags: Vec<u8>,
    mixed_packets: usize,
    flood: Vec<u8>,
    frames: Vec<Vec<u8>>,
    matcher: Matcher,
    logs: Vec<(&'static str, flowlog::Format, String)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut frames = Vec::new();
        for (_, pcap) in synth::samples::all().expect("samples") {
            capture::read(&pcap[..], |p| {
                if p.linktype == packet::LINKTYPE_ETHERNET {
                    frames.push(p.data.to_vec())
                }
            })
            .expect("sample");
        }
        let mut w = PcapWriter::new(Vec::new(), packet::LINKTYPE_ETHERNET).expect("pcap");
        let mut n = 0;
        let mut ts = 1_700_000_000_000_000i64;
        while n < 300_000 {
            for f in &frames {
                w.frame(ts, f).expect("frame");
                ts += 10;
                n += 1;
            }
        }
        let mixed = w.into_inner();
        let (mixed_ng, mixed_ng_flags) = (pcapng(&mixed, false), pcapng(&mixed, true));
        let flood = synth::syn_flood(Vec::new(), 200_000, 1).expect("flood");
        let mut set = IndicatorSet::new();
        let csv_text =
            "indicator,type\n203.0.113.10,ipv4\n198.51.100.0/24,cidr\nw8510.com,domain\nexample.com,domain\n";
        csv::load(csv_text, &Arc::from("bench.csv"), Provenance::default(), &mut set);
        let s = flows::generate(200_000, 1);
        let all: Vec<usize> = (0..s.flows.len()).collect();
        let logs = vec![
            ("zeek_conn", flowlog::Format::ZeekTsv, flows::zeek_conn_tsv(&s, &all).data),
            ("aws_vpc", flowlog::Format::AwsVpc, flows::aws_v2(&s, &all).data),
            ("eve_flow", flowlog::Format::EveJson, flows::eve(&s, &all, flows::EveKind::Flow, false).data),
        ];
        Fixture { mixed, mixed_ng, mixed_ng_flags, mixed_packets: n, flood, frames, matcher: Matcher::new(set), logs }
    })
}

/// A classic pcap's packets as pcapng (one interface, µs), each in an Enhanced Packet Block,
/// with `flags` a direction flag on each (as Microsoft's etl2pcapng writes them).
fn pcapng(pcap: &[u8], flags: bool) -> Vec<u8> {
    fn block(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
        let len = (12 + body.len().next_multiple_of(4)) as u32;
        out.extend(ty.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend(body);
        out.resize(out.len() + body.len().next_multiple_of(4) - body.len(), 0);
        out.extend(len.to_le_bytes());
    }
    let mut out = Vec::new();
    block(&mut out, 0x0a0d_0d0a, &[&0x1a2b_3c4du32.to_le_bytes()[..], &[1, 0, 0, 0], &[0xff; 8]].concat());
    block(&mut out, 1, &[&(packet::LINKTYPE_ETHERNET as u16).to_le_bytes()[..], &[0, 0], &[0, 0, 4, 0]].concat());
    capture::read_slice(pcap, |p| {
        let ts = p.ts_micros as u64;
        let mut body = Vec::with_capacity(32 + p.data.len());
        for w in [0, (ts >> 32) as u32, ts as u32, p.data.len() as u32, p.wire_len] {
            body.extend(w.to_le_bytes());
        }
        body.extend(p.data);
        if flags {
            body.resize(body.len().next_multiple_of(4), 0);
            body.extend([2, 0, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        }
        block(&mut out, 6, &body);
    })
    .expect("pcap");
    out
}

fn main() {
    fixture();
    divan::main();
}

struct Drop;

impl Sink for Drop {
    fn alert(&mut self, a: Alert) {
        divan::black_box(a);
    }
    fn flow(&mut self, f: FlowEvent) {
        divan::black_box(f);
    }
}

/// pcap-parser's streaming reader, through a buffer.
#[divan::bench(sample_count = 10)]
fn reader_streaming(b: divan::Bencher) {
    let f = fixture();
    b.counter(BytesCount::new(f.mixed.len())).bench(|| {
        capture::read(&f.mixed[..], |p| {
            divan::black_box(p.data.len());
        })
    });
}

/// The streaming reader over the same packets as pcapng, without options and with a flag on
/// every packet.
#[divan::bench(sample_count = 10, args = ["plain", "flags"])]
fn reader_streaming_pcapng(b: divan::Bencher, form: &str) {
    let f = fixture();
    let data = if form == "flags" { &f.mixed_ng_flags } else { &f.mixed_ng };
    b.counter(BytesCount::new(data.len())).bench(|| {
        let mut n = 0usize;
        capture::read(&data[..], |p| n += p.data.len()).expect("pcapng");
        divan::black_box(n)
    });
}

/// The in-place reader (what a memory-mapped file goes through).
#[divan::bench(sample_count = 10)]
fn reader_in_place(b: divan::Bencher) {
    let f = fixture();
    b.counter(BytesCount::new(f.mixed.len())).bench(|| {
        capture::read_slice(&f.mixed, |p| {
            divan::black_box(p.data.len());
        })
    });
}

/// One engine's reader of a capture file: by windows of its mapping, in place where the pages
/// map cheaply (a file just written here sits in the page cache as the kernel wrote it), as a
/// classic pcap and as pcapng, without options and with a flag on every packet.
#[divan::bench(sample_count = 10, args = ["pcap", "pcapng", "pcapng_flags"])]
fn reader_windows(b: divan::Bencher, form: &str) {
    use std::io::Write;
    let f = fixture();
    let data = match form {
        "pcap" => &f.mixed,
        "pcapng" => &f.mixed_ng,
        _ => &f.mixed_ng_flags,
    };
    let mut file = tempfile::tempfile().expect("a temporary file");
    file.write_all(data).expect("written");
    // SAFETY: a file of the bench's own, not changed while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("mapped");
    b.counter(BytesCount::new(data.len())).bench(|| {
        let mut n = 0usize;
        let (r, _) = capture::read_windows(&file, &map, || false, |p, _| n += p.data.len()).expect("a capture");
        r.expect("read whole");
        divan::black_box(n)
    });
}

/// Link layer to application payload, with decapsulation, over the samples' frames.
#[divan::bench(sample_count = 30)]
fn decoder(b: divan::Bencher) {
    let f = fixture();
    b.counter(ItemsCount::new(f.frames.len())).bench(|| {
        for fr in &f.frames {
            let mut d = Decoded::default();
            divan::black_box(packet::decode(packet::LINKTYPE_ETHERNET, fr, true, &mut d).is_ok());
        }
    });
}

/// The whole engine on mixed traffic: connections, DNS/TLS/HTTP parsing, matching, alerts.
#[divan::bench(sample_count = 10)]
fn engine_mixed(b: divan::Bencher) {
    let f = fixture();
    b.counter(ItemsCount::new(f.mixed_packets)).bench(|| {
        let mut e = Engine::new(&f.matcher, Options::default(), Drop);
        e.begin_file(Arc::from("bench"));
        capture::read_slice(&f.mixed, |p| e.packet(&p)).expect("read");
        divan::black_box(e.finish().0.packets)
    });
}

/// The connection table under new connections only (a SYN flood), capped at 100k.
#[divan::bench(sample_count = 10)]
fn engine_conn_table_flood(b: divan::Bencher) {
    let f = fixture();
    let opts = Options {
        limits: iocmatch::track::conn::Limits { max_conns: 100_000, ..Default::default() },
        ..Options::default()
    };
    b.counter(ItemsCount::new(200_000usize)).bench(|| {
        let mut e = Engine::new(&f.matcher, opts.clone(), Drop);
        e.begin_file(Arc::from("bench"));
        capture::read_slice(&f.flood, |p| e.packet(&p)).expect("read");
        divan::black_box(e.finish().0.conns)
    });
}

/// 200k open connections, probed 1M times in a random order, as packets of interleaved
/// connections probe them: our table without and with a two-ahead hint, and std's `HashMap`
/// (what the engine used before), for scale.
mod conn_table {
    use super::*;
    use iocmatch::track::conn::{Conn, ConnKey};
    use iocmatch::track::table::ConnTable;
    use std::collections::HashMap;

    const OPEN: u32 = 200_000;
    const PROBES: usize = 1_000_000;

    fn keys() -> (Vec<ConnKey>, Vec<usize>) {
        let key = |n: u32| {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 | n).into();
            let b = std::net::Ipv4Addr::from(0xc633_6400 | (n * 7919 % 256)).into();
            ConnKey::new(6, (a, 40_000 + (n % 20_000) as u16), (b, 443)).0
        };
        let mut rng = synth::XorShift(0x2545_f491_4f6c_dd1d);
        let order = (0..PROBES).map(|_| rng.below(u64::from(OPEN)) as usize).collect();
        ((0..OPEN).map(key).collect(), order)
    }

    #[divan::bench(args = [false, true], sample_count = 10)]
    fn ours(b: divan::Bencher, hinted: bool) {
        let (keys, order) = keys();
        let mut t = ConnTable::default();
        for k in &keys {
            t.get_or_insert_with(*k, k.end(false), Conn::blank);
        }
        b.counter(ItemsCount::new(PROBES)).bench_local(|| {
            for (i, &at) in order.iter().enumerate() {
                if hinted {
                    if let Some(&ahead) = order.get(i + 2) {
                        t.hint(&keys[ahead]);
                    }
                }
                let (c, _) = t.get_or_insert_with(keys[at], keys[at].end(false), Conn::blank);
                c.pkts[0] += 1;
            }
        });
    }

    #[divan::bench(sample_count = 10)]
    fn std_hash_map(b: divan::Bencher) {
        let (keys, order) = keys();
        let mut t: HashMap<ConnKey, Conn, foldhash::fast::RandomState> = HashMap::default();
        for k in &keys {
            t.insert(*k, Conn::blank());
        }
        b.counter(ItemsCount::new(PROBES)).bench_local(|| {
            for &at in &order {
                t.entry(keys[at]).or_insert_with(Conn::blank).pkts[0] += 1;
            }
        });
    }
}

/// The flow-log parsers alone (records built, nothing matched).
#[divan::bench(args = ["zeek_conn", "aws_vpc", "eve_flow"], sample_count = 10)]
fn flowlog_parser(b: divan::Bencher, name: &str) {
    let f = fixture();
    let (_, format, text) = f.logs.iter().find(|l| l.0 == name).expect("log");
    b.counter(ItemsCount::new(text.lines().count())).bench(|| {
        let mut n = 0u64;
        flowlog::parse_text(*format, text.as_bytes(), |r| n += u64::from(r.dport), |_, _| {});
        divan::black_box(n)
    });
}
