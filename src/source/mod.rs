//! Where bytes come from: capture files and standard input (later: live interfaces, flow logs).

pub mod capture;
pub mod flowlog;

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
