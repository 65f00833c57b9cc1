//! The reading part of a scan alone: maps a capture and walks its records with the reader
//! `scan` uses (`capture::read_slice`), touching each packet's first byte, and prints the
//! time. `benches/e2e.sh` shows it beside `cat` as the speed of reading the file.
//!
//!   cargo run --release --example read_capture -- FILE.pcap

use std::time::Instant;

fn main() {
    let path = std::env::args_os().nth(1).expect("usage: read_capture FILE");
    let start = Instant::now();
    let file = std::fs::File::open(&path).expect("open");
    // SAFETY: read only; the file is not changed during the measurement.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
    let (mut packets, mut bytes, mut first) = (0u64, 0u64, 0u64);
    let res = iocmatch::source::capture::read_slice(&map, |p| {
        packets += 1;
        bytes += p.data.len() as u64;
        first += u64::from(p.data.first().copied().unwrap_or(0));
    });
    let secs = start.elapsed().as_secs_f64();
    if let Err(e) = res {
        eprintln!("read_capture: {e}");
    }
    println!(
        "{packets} packets, {bytes} bytes in {secs:.3} s ({:.0} MB/s of file) [{first}]",
        map.len() as f64 / secs / 1e6
    );
}
