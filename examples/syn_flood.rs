//! Writes a SYN-flood capture for load tests (`iocmatch::synth::syn_flood`):
//!
//! ```sh
//! cargo run --release --example syn_flood -- 5000000 /tmp/flood.pcap [SEED]
//! /usr/bin/time -v target/release/iocmatch scan --max-connections 100000 /tmp/flood.pcap
//! ```

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).expect("usage: syn_flood N OUT.pcap [SEED]");
    let out = args.next().expect("usage: syn_flood N OUT.pcap [SEED]");
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let f = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    iocmatch::synth::syn_flood(f, n, seed)?.flush()
}
