//! Capture files: classic pcap (µs and ns, either byte order), pcapng (several interfaces with
//! their own link types and time resolutions, Enhanced and Simple Packet Blocks), gzip and zstd,
//! standard input. Pure Rust (`pcap-parser`'s streaming reader), so no system library is needed.
//!
//! Packets are handed to a callback as borrowed slices of the read buffer: nothing is copied.
//! A corrupt or truncated file stops with an error that names the packet number and byte
//! offset; everything before it has been delivered.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use pcap_parser::{Block, PcapBlockOwned, PcapError};

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// `LINKTYPE_*` of the interface it was captured on.
    pub linktype: u32,
    /// Capture time, microseconds since the Unix epoch.
    pub ts_micros: i64,
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub wire_len: u32,
    /// 1-based number of the packet in its file (what Wireshark shows).
    pub number: u64,
}

/// Why a file stopped early. Packets before it were delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// Number of the last packet delivered (0: none).
    pub after_packet: u64,
    pub offset: u64,
    pub reason: String,
    /// The file is not a capture at all (nothing was read).
    pub not_a_capture: bool,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.not_a_capture {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "after packet {} (byte offset {}): {}", self.after_packet, self.offset, self.reason)
        }
    }
}

/// Counts of what a file held.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileStats {
    pub packets: u64,
    pub bytes: u64,
}

/// Opens a path (`-` = standard input), undoing gzip or zstd compression found by magic bytes.
pub fn open(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> =
        if path.as_os_str() == "-" { Box::new(std::io::stdin()) } else { Box::new(std::fs::File::open(path)?) };
    decompress(raw)
}

/// Wraps a reader in the decompressor its first bytes call for.
pub fn decompress(raw: Box<dyn Read + Send>) -> std::io::Result<Box<dyn Read + Send>> {
    let mut buf = BufReader::with_capacity(1 << 16, raw);
    let head = buf.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf)?)
    } else {
        Box::new(buf)
    })
}

struct Iface {
    linktype: u32,
    /// Timestamp units per second.
    units: u64,
    offset_secs: i64,
}

const BUFFER: usize = 1 << 20;
/// Largest frame we accept: a record claiming more is a corrupt length.
const MAX_FRAME: usize = 256 * 1024;

/// Reads every packet of a capture stream and hands it to `sink`.
pub fn read(input: impl Read + Send, mut sink: impl FnMut(Packet<'_>)) -> Result<FileStats, ReadError> {
    let mut stats = FileStats::default();
    let mut reader = match pcap_parser::create_reader(BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(ReadError { after_packet: 0, offset: 0, reason: "empty file".into(), not_a_capture: true })
        }
        Err(e) => {
            return Err(ReadError {
                after_packet: 0,
                offset: 0,
                reason: format!("not a pcap or pcapng capture ({e:?})"),
                not_a_capture: true,
            })
        }
    };
    let mut legacy: Option<(u32, bool)> = None;
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut offset: u64 = 0;
    let mut stalled = false;
    let err = |stats: &FileStats, offset: u64, reason: String| ReadError {
        after_packet: stats.packets,
        offset,
        reason,
        not_a_capture: false,
    };
    loop {
        match reader.next() {
            Ok((len, block)) => {
                stalled = false;
                let mut deliver = |linktype: u32, ts_micros: i64, data: &[u8], wire_len: u32| {
                    stats.packets += 1;
                    stats.bytes += data.len() as u64;
                    sink(Packet { linktype, ts_micros, data, wire_len, number: stats.packets });
                };
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network.0 as u32, h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, nanos) = legacy.unwrap_or((1, false));
                        let frac = if nanos { b.ts_usec as i64 / 1000 } else { b.ts_usec as i64 };
                        let data = &b.data[..(b.caplen as usize).min(b.data.len())];
                        deliver(linktype, b.ts_sec as i64 * 1_000_000 + frac, data, b.origlen);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => ifaces.push(Iface {
                        linktype: idb.linktype.0 as u32,
                        units: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                        offset_secs: idb.if_tsoffset,
                    }),
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some(ifc) = ifaces.get(epb.if_id as usize) else {
                            let reason = format!("packet on undeclared interface {}", epb.if_id);
                            return Err(err(&stats, offset, reason));
                        };
                        let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let secs = (ts / ifc.units) as i64 + ifc.offset_secs;
                        let micros = ((ts % ifc.units) as u128 * 1_000_000 / ifc.units as u128) as i64;
                        let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                        deliver(ifc.linktype, secs.saturating_mul(1_000_000).saturating_add(micros), data, epb.origlen);
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let Some(ifc) = ifaces.first() else {
                            return Err(err(&stats, offset, "simple packet block before any interface".into()));
                        };
                        let data = &spb.data[..(spb.origlen as usize).min(spb.data.len())];
                        deliver(ifc.linktype, 0, data, spb.origlen);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                offset += len as u64;
                // No shift per block: `refill` moves only the partial record left at the end,
                // where `consume` would move half the buffer each time it passes the middle.
                reader.consume_noshift(len);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(needed)) => {
                if stalled || needed > MAX_FRAME {
                    let reason = if needed > MAX_FRAME {
                        format!("corrupt record length (a record claims {needed} more bytes)")
                    } else {
                        "file is truncated: the last record is cut short".into()
                    };
                    return Err(err(&stats, offset, reason));
                }
                if reader.reader_exhausted() {
                    stalled = true;
                }
                if let Err(e) = reader.refill() {
                    return Err(err(&stats, offset, format!("read error: {e:?}")));
                }
            }
            Err(PcapError::UnexpectedEof) => {
                return Err(err(&stats, offset, "file is truncated: the last record is cut short".into()));
            }
            Err(PcapError::BufferTooSmall) => {
                return Err(err(&stats, offset, "corrupt record length (larger than any frame)".into()));
            }
            Err(e) => {
                let reason = match e {
                    PcapError::NomError(_, k) => format!("corrupt block ({k:?})"),
                    PcapError::OwnedNomError(_, k) => format!("corrupt block ({k:?})"),
                    PcapError::ReadError => "read error".into(),
                    other => format!("{other:?}"),
                };
                return Err(err(&stats, offset, reason));
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap(nanos: bool, big_endian: bool, frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        let magic: u32 = if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 };
        let w32 = |v: &mut Vec<u8>, x: u32| v.extend(if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
        let w16 = |v: &mut Vec<u8>, x: u16| v.extend(if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
        w32(&mut v, magic);
        w16(&mut v, 2);
        w16(&mut v, 4);
        w32(&mut v, 0);
        w32(&mut v, 0);
        w32(&mut v, 65535);
        w32(&mut v, 1);
        for (s, f, d) in frames {
            w32(&mut v, *s);
            w32(&mut v, *f);
            w32(&mut v, d.len() as u32);
            w32(&mut v, d.len() as u32);
            v.extend_from_slice(d);
        }
        v
    }

    type Got = Vec<(u64, i64, usize)>;

    fn collect(data: Vec<u8>) -> (Got, Result<FileStats, ReadError>) {
        let mut got = Vec::new();
        let r = read(&data[..], |p| got.push((p.number, p.ts_micros, p.data.len())));
        (got, r)
    }

    #[test]
    fn reads_micro_and_nano_both_orders() {
        for (nanos, be) in [(false, false), (true, false), (false, true), (true, true)] {
            let frac = if nanos { 5_000 } else { 5 };
            let (got, r) = collect(pcap(nanos, be, &[(10, frac, &[0u8; 60]), (11, 0, &[1u8; 42])]));
            assert_eq!(r.unwrap().packets, 2);
            assert_eq!(got, [(1, 10_000_005, 60), (2, 11_000_000, 42)], "nanos={nanos} be={be}");
        }
    }

    #[test]
    fn truncated_file_keeps_what_was_read() {
        let mut data = pcap(false, false, &[(1, 0, &[0u8; 60]), (2, 0, &[0u8; 60])]);
        data.truncate(data.len() - 10);
        let (got, r) = collect(data);
        assert_eq!(got.len(), 1);
        let e = r.unwrap_err();
        assert_eq!(e.after_packet, 1);
        assert!(e.reason.contains("truncated"), "{e}");
    }

    #[test]
    fn garbage_is_not_a_capture() {
        let (_, r) = collect(b"hello, this is not a capture file at all".to_vec());
        assert!(r.unwrap_err().not_a_capture);
        let (_, r) = collect(Vec::new());
        assert!(r.unwrap_err().not_a_capture);
    }

    #[test]
    fn corrupt_length_is_reported() {
        let mut data = pcap(false, false, &[(1, 0, &[0u8; 60])]);
        // a second record claiming 100 MB
        data.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        data.extend_from_slice(&100_000_000u32.to_le_bytes());
        data.extend_from_slice(&100_000_000u32.to_le_bytes());
        data.extend_from_slice(&[0u8; 64]);
        let (got, r) = collect(data);
        assert_eq!(got.len(), 1);
        let e = r.unwrap_err();
        assert!(e.reason.contains("corrupt") || e.reason.contains("truncated"), "{e}");
    }
}
