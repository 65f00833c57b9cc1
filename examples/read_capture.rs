//! The reading part of a scan alone, and the reader the baseline names:
//!
//! - by default, maps a capture and walks its records with the reader `scan` uses
//!   (`capture::read_slice`), touching each packet's first byte;
//! - with `--pcap-parser`, counts its packets with pcap-parser's streaming reader over a 1 MiB
//!   buffer, as `../shared/reference/crates.md` measured "reading the file alone" (the speed
//!   issue 6's "40 % of the pure reading speed" refers to).
//!
//! - with `--copy N`, only copies the file as `scan -j N` reads a classic pcap: N threads
//!   `pread` alternate 256 KiB chunks into page-aligned buffers. How fast two threads copy at
//!   once depends on the host (on the development VM, 0.065 s for W1 at one time and 0.19 s
//!   minutes later), and `-j 2` moves with it.
//!
//! Each prints the time. `benches/e2e.sh` shows them beside `cat`.
//!
//!   cargo run --release --example read_capture -- [--pcap-parser | --copy N] FILE

use std::time::Instant;

use pcap_parser::{Block, PcapBlockOwned, PcapError};

fn main() {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let path = args.pop().expect("usage: read_capture [--pcap-parser | --copy N] FILE");
    let by_parser = args.first().is_some_and(|a| a == "--pcap-parser");
    let copiers = match (args.first(), args.get(1)) {
        (Some(a), Some(n)) if a == "--copy" => n.to_str().and_then(|n| n.parse::<u64>().ok()).filter(|&n| n > 0),
        _ => None,
    };
    let start = Instant::now();
    let file = std::fs::File::open(&path).expect("open");
    let len = file.metadata().expect("stat").len();
    if let Some(n) = copiers {
        copy(&file, len, n);
        let secs = start.elapsed().as_secs_f64();
        println!("{len} bytes copied by {n} thread(s) in {secs:.3} s ({:.0} MB/s)", len as f64 / secs / 1e6);
        return;
    }
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

/// `n` threads read the file in turns of 256 KiB chunks, each into a page-aligned buffer of its
/// own (as `scan -j N` splits a classic pcap).
fn copy(file: &std::fs::File, len: u64, n: u64) {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 256 << 10;
    std::thread::scope(|s| {
        for i in 0..n {
            s.spawn(move || {
                let mut mem = vec![0u8; CHUNK as usize + 4096];
                let at = mem.as_ptr().align_offset(4096);
                let buf = &mut mem[at..at + CHUNK as usize];
                let mut base = i * CHUNK;
                while base < len {
                    if file.read_at(buf, base).unwrap_or(0) == 0 {
                        break;
                    }
                    base += n * CHUNK;
                }
            });
        }
    });
}
