//! Writes large flow logs for the throughput bench (`benches/flows.sh`): the project's flow
//! generator rendered as a Zeek conn.log, EVE flow events, AWS VPC Flow Logs, nfdump CSV and a
//! capture of NetFlow v5 export packets, plus the generator's indicator set.
//!
//!     cargo run --release --example make_flowlogs -- OUT_DIR [FLOWS] [SEED]

use iocmatch::synth::flows::{self, EveKind};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "flowlogs".into()));
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    std::fs::create_dir_all(&dir).expect("create the output folder");
    let s = flows::generate(n, seed);
    let all: Vec<usize> = (0..s.flows.len()).collect();
    let write = |name: &str, data: &[u8]| {
        std::fs::write(dir.join(name), data).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{} ({} bytes)", dir.join(name).display(), data.len());
    };
    write("indicators.csv", s.indicators_csv.as_bytes());
    write("conn.log", flows::zeek_conn_tsv(&s, &all).data.as_bytes());
    write("eve.json", flows::eve(&s, &all, EveKind::Flow, false).data.as_bytes());
    write("vpc.log", flows::aws_v2(&s, &all).data.as_bytes());
    write("nfdump.csv", flows::nfdump_csv(&s, &all).data.as_bytes());
    let e = flows::netflow_v5(&s, &all);
    let (ex, co) = ("192.0.2.1:2055".parse().expect("addr"), "192.0.2.2:2055".parse().expect("addr"));
    write("nf5.pcap", &flows::export_pcap(&e.datagrams, ex, co));
}
