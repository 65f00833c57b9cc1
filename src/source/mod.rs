//! Where bytes come from: capture files and standard input (later: live interfaces, flow logs).

pub mod capture;
pub mod flowlog;
pub(crate) mod pread;
pub(crate) mod readahead;

use std::path::{Path, PathBuf};

/// What a walk of a folder found: the files, and what it left out.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<PathBuf>,
    /// Entries that are neither files nor folders (a named pipe, a socket, a device, a link to
    /// nothing), each with the reason: opening a named pipe waits for a writer, for ever if none
    /// comes. Named on their own, outside a folder, they are read.
    pub left_out: Vec<(PathBuf, String)>,
}

/// Every file under `dir`, recursively, in name order; hidden files and folders left out. Links
/// are followed, to files and to folders (each folder walked once, so a link to a folder above
/// it ends there). The one folder walk behind captures, flow logs, indicator sets and
/// compiled-set stamps.
pub fn files_under(dir: &Path) -> std::io::Result<Listing> {
    fn walk(dir: &Path, seen: &mut std::collections::HashSet<PathBuf>, out: &mut Listing) -> std::io::Result<()> {
        if !seen.insert(std::fs::canonicalize(dir)?) {
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = e.path();
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => walk(&path, seen, out)?,
                Ok(m) if m.is_file() => out.files.push(path),
                Ok(_) => out.left_out.push((path, "not a regular file (a named pipe, socket or device)".into())),
                Err(e) => out.left_out.push((path, format!("cannot follow: {e}"))),
            }
        }
        Ok(())
    }
    let mut out = Listing::default();
    walk(dir, &mut Default::default(), &mut out)?;
    Ok(out)
}

/// Makes a bus error explain itself. A mapped file (a capture, a flow log, a compiled set) cut
/// shorter by another process raises SIGBUS where the reader touches a page past its new end;
/// the readers look at the size before they read on (see `capture::shrunk`), but a cut between
/// two looks still slips through. Instead of the shell's "Bus error", the run then ends with a
/// message that says what happened and what to do, and exit status 2. (The alerts still in the
/// writer's buffer are lost: nothing but `write(2)` and `_exit(2)` is safe in a signal handler.)
#[cfg(unix)]
pub fn explain_bus_errors() -> std::io::Result<()> {
    const MSG: &[u8] = b"iocmatch: error: a file read in place was cut short by another process while it \
        was read (SIGBUS): the run stopped there, and alerts not yet written are lost. Run it again \
        once nothing writes to the file, or with --no-mmap (captures and flow logs are then read \
        through buffers).\n";
    // SAFETY: the handler calls only write(2) and _exit(2), both async-signal-safe, and never
    // returns (returning would run the faulting read again).
    unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGBUS, || {
            let _ = libc::write(2, MSG.as_ptr().cast(), MSG.len());
            signal_hook::low_level::exit(2);
        })?;
    }
    Ok(())
}

/// Whether `path` can be read more than once: a regular file. Standard input, a named pipe or a
/// process substitution (`<(zcat a.pcap.gz)`, a pipe under `/dev/fd`) yield their bytes once, to
/// the one pass that reads them; a second look would take them from it.
pub fn rereadable(path: &Path) -> bool {
    path.as_os_str() != "-" && std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Whether `path` is standard input or a pipe (anything there but a file or a folder): what
/// [`rereadable`] turns down, less a path that is missing (an error of its own) or a folder.
pub fn is_pipe(path: &Path) -> bool {
    path.as_os_str() == "-" || std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Maps an uncompressed input file into memory (for [`capture::read_mapped`] and the flow-log
/// parsers): the kernel's page cache is read in place instead of being copied into a buffer. `None` for standard input, for
/// anything but a regular file, and for compressed files (they are streamed).
///
/// As with any tool that maps files (ripgrep does too), a file truncated by another process
/// while it is being scanned can end the run with SIGBUS; `--no-mmap` avoids it.
pub fn map(path: &Path) -> std::io::Result<Option<memmap2::Mmap>> {
    // Looked at before it is opened: opening a named pipe a second time waits for a writer,
    // which may have written everything already and gone.
    if !rereadable(path) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_folders_pipes_and_missing_paths_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.pcap");
        std::fs::write(&file, b"x").unwrap();
        let missing = dir.path().join("gone.pcap");
        assert!(rereadable(&file) && !is_pipe(&file));
        // A folder is walked, a missing path reported: neither is read as a pipe.
        assert!(!rereadable(dir.path()) && !is_pipe(dir.path()));
        assert!(!rereadable(&missing) && !is_pipe(&missing));
        assert!(!rereadable(Path::new("-")) && is_pipe(Path::new("-")));
        #[cfg(unix)]
        {
            let fifo = dir.path().join("p");
            assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
            assert!(!rereadable(&fifo) && is_pipe(&fifo));
        }
    }
}
