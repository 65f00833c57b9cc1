//! Decompressing ahead, on a thread of its own.
//!
//! A compressed capture spends most of its time in the decompressor: on W1's first 300 MB
//! written as `.pcap.gz`, inflating took about two thirds of a one-engine scan, and the scan
//! waited for it packet after packet. With the decompressor on its own thread, a block is
//! inflated while the one before it is inspected, so a scan takes about as long as the slower
//! of the two rather than both added up (and with `-j`, the thread that hands the packets out
//! no longer inflates them too).

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Bytes a block holds at most.
const BLOCK: usize = 1 << 20;
/// A block is handed over once it holds this much (or the input ends): a decompressor may
/// return little per call, and a channel send per call would cost more than the copy.
const HAND_OVER: usize = BLOCK / 4;
/// Blocks decompressed ahead of the reader, at most.
const AHEAD: usize = 4;

/// A reader whose input is read ahead, a block at a time, by a thread of its own. It gives
/// the same bytes as the input, then the input's error where it had one (after every byte
/// read before it), then the end.
pub struct ReadAhead {
    blocks: Receiver<io::Result<(Vec<u8>, usize)>>,
    /// Blocks read out, back to the thread to fill again (fresh memory for every block was
    /// a page fault per 4 KiB).
    spent: SyncSender<Vec<u8>>,
    block: Vec<u8>,
    /// `block[at..len]` is still to be read.
    at: usize,
    len: usize,
}

impl ReadAhead {
    /// Starts reading `input` ahead. The thread ends at the input's end or error, or when the
    /// reader is dropped (at its next block).
    pub fn new(input: Box<dyn Read + Send>) -> io::Result<ReadAhead> {
        let (full, blocks) = sync_channel(AHEAD);
        let (spent, empty) = sync_channel(AHEAD + 2);
        std::thread::Builder::new().name("decompress".into()).spawn(move || fill(input, &full, &empty))?;
        Ok(ReadAhead { blocks, spent, block: Vec::new(), at: 0, len: 0 })
    }
}

/// The thread's loop: fills blocks from `input` and sends them, then the error, if any.
fn fill(mut input: Box<dyn Read + Send>, full: &SyncSender<io::Result<(Vec<u8>, usize)>>, empty: &Receiver<Vec<u8>>) {
    // A decompressor that panics must not look like the end of the file.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
        let mut block = empty.try_recv().unwrap_or_else(|_| vec![0; BLOCK]);
        let mut len = 0;
        let failed = loop {
            match input.read(&mut block[len..]) {
                Ok(0) => break None,
                Ok(n) => {
                    len += n;
                    if len >= HAND_OVER {
                        break None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        let ended = failed.is_some() || len < HAND_OVER;
        if len > 0 && full.send(Ok((block, len))).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = full.send(Err(e));
        }
        if ended {
            return;
        }
    }));
    if run.is_err() {
        let _ =
            full.send(Err(io::Error::other("the decompressor failed (a bug in it): the rest of the file is not read")));
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.len || out.is_empty() {
                let n = out.len().min(self.len - self.at);
                out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if !self.block.is_empty() {
                // The thread may have ended: then the block is dropped.
                let _ = self.spent.try_send(std::mem::take(&mut self.block));
            }
            (self.at, self.len) = (0, 0);
            match self.blocks.recv() {
                Ok(Ok((block, len))) => (self.block, self.len) = (block, len),
                Ok(Err(e)) => return Err(e),
                // The thread is done: the input ended, or its error was read already.
                Err(_) => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `data` in pieces of at most `piece` bytes, then fails if `fail` says so.
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        piece: usize,
        fail: bool,
    }

    impl Read for Pieces {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return if self.fail { Err(io::Error::other("broken")) } else { Ok(0) };
            }
            let n = out.len().min(self.piece).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn gives_every_byte_in_order_then_the_error() {
        let data: Vec<u8> = (0..3 * BLOCK + 12_345).map(|i| (i * 7 + i / 1000) as u8).collect();
        for piece in [1 << 20, 70_000, 4096] {
            for fail in [false, true] {
                let input = Pieces { data: data.clone(), at: 0, piece, fail };
                let mut r = ReadAhead::new(Box::new(input)).unwrap();
                let mut got = Vec::new();
                let mut buf = vec![0; 100_000];
                let end = loop {
                    match r.read(&mut buf) {
                        Ok(0) => break None,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) => break Some(e),
                    }
                };
                assert!(got == data, "pieces of {piece}, fail {fail}: {} bytes of {}", got.len(), data.len());
                assert_eq!(end.map(|e| e.to_string()), fail.then(|| "broken".to_string()), "pieces of {piece}");
                // After the error, the end.
                assert_eq!(r.read(&mut buf).unwrap(), 0);
            }
        }
    }

    /// An input that says when it is dropped (by the thread, as it ends).
    struct Told(Pieces, std::sync::mpsc::Sender<()>);

    impl Read for Told {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.0.read(out)
        }
    }

    impl Drop for Told {
        fn drop(&mut self) {
            let _ = self.1.send(());
        }
    }

    #[test]
    fn a_reader_dropped_early_stops_the_thread() {
        let (told, dropped) = std::sync::mpsc::channel();
        let input = Told(Pieces { data: vec![7u8; 40 * BLOCK], at: 0, piece: BLOCK, fail: false }, told);
        let mut r = ReadAhead::new(Box::new(input)).unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(r.read(&mut buf).unwrap(), 10);
        // The thread is blocked on a full channel, far from the input's end.
        assert!(dropped.recv_timeout(std::time::Duration::from_millis(200)).is_err());
        drop(r);
        dropped.recv_timeout(std::time::Duration::from_secs(10)).expect("the thread ends once the reader is gone");
    }
}
