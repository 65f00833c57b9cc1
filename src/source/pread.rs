//! Reading a file at an offset into memory that starts on a page boundary: how `-j` reads its
//! chunks and one engine the windows of a capture it copies.

/// Memory whose bytes start on a page boundary, as a chunk or window starts on one in the file.
///
/// The kernel copies what `read` returns with `rep movsb`, which on AMD Zen runs 2 to 6 times
/// slower when the destination's place in a 4 KiB page is 1 to 31 bytes past the source's.
/// A buffer this large is a mapping of its own whose first 16 bytes hold the allocator's
/// header, so every chunk landed 16 bytes off its place in the file: the copies of `--workers
/// 2` cost 0.28 s of CPU on a 1.7 GB capture where one engine's `read` costs 0.10 s.
#[derive(Default)]
pub struct PageBuf {
    mem: Vec<u8>,
    at: usize,
}

impl PageBuf {
    pub const PAGE: usize = 4096;

    /// This memory (reused when it is large enough) with at least `len` bytes from a page
    /// boundary on.
    pub fn with_len(mut self, len: usize) -> PageBuf {
        if self.mem.is_empty() {
            // Zeroed by the allocator (fresh pages), not written over.
            self.mem = vec![0; len + Self::PAGE];
        } else {
            self.mem.resize(len + Self::PAGE, 0);
        }
        // `align_offset` may answer `usize::MAX` (it is allowed to give up); then the bytes are
        // merely off their page, and slower to fill.
        self.at = self.mem.as_ptr().align_offset(Self::PAGE).min(Self::PAGE);
        self
    }

    pub fn bytes(&self) -> &[u8] {
        &self.mem[self.at..]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.at..]
    }
}

/// Reads `file` from `offset` into `buf`, until it is full or the file ends; returns how many
/// bytes it read. An error after some bytes ends the read there; one before any is returned.
pub fn read_at_most(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match read_at(file, &mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(got)
}

#[cfg(unix)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(not(any(unix, windows)))]
fn read_at(_: &std::fs::File, _: &mut [u8], _: u64) -> std::io::Result<usize> {
    Err(std::io::ErrorKind::Unsupported.into())
}
