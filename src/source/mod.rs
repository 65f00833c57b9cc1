//! Where bytes come from: capture files and standard input (later: live interfaces, flow logs).

pub mod capture;
pub mod flowlog;
pub(crate) mod pread;

use std::path::{Path, PathBuf};

/// Every file under `dir`, recursively, in name order; hidden files and folders left out.
/// The one folder walk behind captures, flow logs, indicator sets and compiled-set stamps.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if e.file_type()?.is_dir() {
                walk(&e.path(), out)?;
            } else {
                out.push(e.path());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    Ok(out)
}

/// Maps an uncompressed input file into memory (for [`capture::read_mapped`] and the flow-log
/// parsers): the kernel's page cache is read in place instead of being copied into a buffer. `None` for standard input, for
/// anything but a regular file, and for compressed files (they are streamed).
///
/// As with any tool that maps files (ripgrep does too), a file truncated by another process
/// while it is being scanned can end the run with SIGBUS; `--no-mmap` avoids it.
pub fn map(path: &Path) -> std::io::Result<Option<memmap2::Mmap>> {
    if path.as_os_str() == "-" {
        return Ok(None);
    }
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the map is only read; the caveat above (a file truncated underneath) is the one
    // every reader of mapped files accepts.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    if map.starts_with(&[0x1f, 0x8b]) || map.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(None);
    }
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Some(map))
}
