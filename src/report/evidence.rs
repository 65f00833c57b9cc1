//! `--evidence FILE`: every packet of every flagged connection, from its first packet, as a
//! pcapng an analyst opens in Wireshark.
//!
//! A connection is flagged only once its SNI or DNS answer is seen, after the packets that
//! opened it; so the evidence is written in a second pass over the inputs, once the flagged
//! connections (key and time span) are known. Standard input is spooled to a temporary file
//! for that. Several link types go to one file (pcapng: one interface per link type).

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::decode::packet::{self, Decoded};
use crate::source::capture;
use crate::track::conn::ConnKey;

/// A flagged connection: its key and the time span it covered (µs).
pub type Span = (ConnKey, i64, i64);

/// Writes pcapng blocks.
pub struct PcapngWriter<W: Write> {
    out: W,
    ifaces: Vec<u32>,
}

impl<W: Write> PcapngWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut shb = Vec::with_capacity(28);
        shb.extend_from_slice(&0x0A0D0D0Au32.to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        shb.extend_from_slice(&0x1A2B3C4Du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb.extend_from_slice(&28u32.to_le_bytes());
        out.write_all(&shb)?;
        Ok(PcapngWriter { out, ifaces: Vec::new() })
    }

    fn iface(&mut self, linktype: u32) -> io::Result<u32> {
        if let Some(i) = self.ifaces.iter().position(|&l| l == linktype) {
            return Ok(i as u32);
        }
        let mut idb = Vec::with_capacity(20);
        idb.extend_from_slice(&1u32.to_le_bytes());
        idb.extend_from_slice(&20u32.to_le_bytes());
        idb.extend_from_slice(&(linktype as u16).to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&262144u32.to_le_bytes());
        idb.extend_from_slice(&20u32.to_le_bytes());
        self.out.write_all(&idb)?;
        self.ifaces.push(linktype);
        Ok((self.ifaces.len() - 1) as u32)
    }

    /// Writes one packet (timestamp in µs).
    pub fn packet(&mut self, linktype: u32, ts_micros: i64, data: &[u8], wire_len: u32) -> io::Result<()> {
        let if_id = self.iface(linktype)?;
        let pad = (4 - data.len() % 4) % 4;
        let len = (32 + data.len() + pad) as u32;
        let ts = ts_micros.max(0) as u64;
        let mut h = Vec::with_capacity(28);
        h.extend_from_slice(&6u32.to_le_bytes());
        h.extend_from_slice(&len.to_le_bytes());
        h.extend_from_slice(&if_id.to_le_bytes());
        h.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        h.extend_from_slice(&(ts as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&wire_len.max(data.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)?;
        self.out.write_all(&[0u8; 3][..pad])?;
        self.out.write_all(&len.to_le_bytes())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Re-reads `inputs` and writes the packets of the flagged connections to `path`.
/// Returns the number of packets written.
pub fn write(path: &Path, inputs: &[PathBuf], flagged: &[Span]) -> io::Result<u64> {
    let mut spans: HashMap<ConnKey, Vec<(i64, i64)>> = HashMap::new();
    for (k, a, b) in flagged {
        spans.entry(*k).or_default().push((*a, *b));
    }
    let file = std::fs::File::create(path)?;
    let mut w = PcapngWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let mut written = 0u64;
    let mut err = None;
    for input in inputs {
        let Ok(reader) = capture::open(input) else { continue };
        let _ = capture::read(reader, |p| {
            let mut d = Decoded::default();
            if packet::decode(p.linktype, p.data, true, &mut d).is_err() {
                return;
            }
            let Some(inner) = d.innermost() else { return };
            if d.fragment.is_some_and(|f| f.offset != 0) {
                return;
            }
            let (key, _) = ConnKey::new(inner.proto, (inner.src, d.sport), (inner.dst, d.dport));
            let hit = spans.get(&key).is_some_and(|v| v.iter().any(|&(a, b)| p.ts_micros >= a && p.ts_micros <= b));
            if hit {
                if let Err(e) = w.packet(p.linktype, p.ts_micros, p.data, p.wire_len) {
                    err.get_or_insert(e);
                }
                written += 1;
            }
        });
    }
    if let Some(e) = err {
        return Err(e);
    }
    w.finish()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_output_reads_back() {
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        w.packet(1, 1_700_000_000_123_456, &[1, 2, 3, 4, 5], 5).unwrap();
        w.packet(113, 1_700_000_001_000_000, &[9; 16], 60).unwrap();
        let bytes = w.finish().unwrap();
        let mut got = Vec::new();
        capture::read(&bytes[..], |p| got.push((p.linktype, p.ts_micros, p.data.to_vec(), p.wire_len))).unwrap();
        assert_eq!(
            got,
            [(1, 1_700_000_000_123_456, vec![1, 2, 3, 4, 5], 5), (113, 1_700_000_001_000_000, vec![9; 16], 60)]
        );
    }
}
