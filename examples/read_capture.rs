//! The reading part of a scan alone, and the reader the baseline names:
//!
//! - by default, maps a capture and walks its records with the reader `scan` uses
//!   (`capture::read_slice`), touching each packet's first byte;
//! - with `--pcap-parser`, counts its packets with pcap-parser's streaming reader over a 1 MiB
//!   buffer, as `../shared/reference/crates.md` measured "reading the file alone" (the speed
//!   issue 6's "40 % of the pure reading speed" refers to).
//!
//! Either prints the time. `benches/e2e.sh` shows both beside `cat`.
//!
//!   cargo run --release --example read_capture -- [--pcap-parser] FILE

use std::time::Instant;

use pcap_parser::{Block, PcapBlockOwned, PcapError};

fn main() {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let by_parser = args.first().is_some_and(|a| a == "--pcap-parser");
    if by_parser {
        args.remove(0);
    }
    let path = args.pop().expect("usage: read_capture [--pcap-parser] FILE");
    let start = Instant::now();
    let file = std::fs::File::open(&path).expect("open");
    let len = file.metadata().expect("stat").len();
    let (mut packets, mut bytes, mut first) = (0u64, 0u64, 0u64);
    let mut count = |data: &[u8]| {
        packets += 1;
        bytes += data.len() as u64;
        first += u64::from(data.first().copied().unwrap_or(0));
    };
    if by_parser {
        let mut reader = pcap_parser::create_reader(1 << 20, file).expect("not a capture");
        loop {
            match reader.next() {
                Ok((used, block)) => {
                    match block {
                        PcapBlockOwned::Legacy(b) => count(b.data),
                        PcapBlockOwned::NG(Block::EnhancedPacket(b)) => count(b.data),
                        PcapBlockOwned::NG(Block::SimplePacket(b)) => count(b.data),
                        _ => {}
                    }
                    reader.consume(used);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => reader.refill().expect("refill"),
                Err(e) => {
                    eprintln!("read_capture: {e:?}");
                    break;
                }
            }
        }
    } else {
        // SAFETY: read only; the file is not changed during the measurement.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
        if let Err(e) = iocmatch::source::capture::read_slice(&map, |p| count(p.data)) {
            eprintln!("read_capture: {e}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{packets} packets, {bytes} bytes in {secs:.3} s ({:.0} MB/s of file) [{first}]", len as f64 / secs / 1e6);
}
