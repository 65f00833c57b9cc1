//! Replays the fuzz corpus through the harness functions the fuzz targets call
//! (`iocmatch::fuzzing`), so the targets cannot rot without a fuzzer and every input that
//! once crashed a parser stays fixed: `fuzz/seeds/<target>/*` (committed seeds),
//! `fuzz/found/<target>/*` (the minimized corpus of the long fuzz runs) and
//! `fuzz/regressions/<target>/*` (crash and timeout inputs, kept once fixed).

use std::path::Path;
use std::time::Instant;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

#[test]
fn every_seed_and_regression_input_runs_through_its_target_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let start = Instant::now();
    let mut total = 0;
    for (name, harness) in iocmatch::fuzzing::TARGETS {
        let mut inputs = files(&root.join("seeds").join(name));
        assert!(!inputs.is_empty(), "no seeds for fuzz target {name}");
        inputs.extend(files(&root.join("found").join(name)));
        inputs.extend(files(&root.join("regressions").join(name)));
        for p in inputs {
            let data = std::fs::read(&p).unwrap();
            let r = std::panic::catch_unwind(|| harness(&data));
            assert!(r.is_ok(), "fuzz target {name} panicked on {}", p.display());
            total += 1;
        }
    }
    eprintln!("{total} fuzz inputs replayed in {:.2?}", start.elapsed());
}

#[test]
fn every_fuzz_target_has_a_binary_and_a_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    for (name, _) in iocmatch::fuzzing::TARGETS {
        assert!(root.join("fuzz_targets").join(format!("{name}.rs")).is_file(), "fuzz/fuzz_targets/{name}.rs");
        assert!(manifest.contains(&format!("name = \"{name}\"")), "[[bin]] {name} in fuzz/Cargo.toml");
    }
}

/// The compiled-set seeds are bodies of the current format: a layout change that left them
/// behind would have the fuzzer start from inputs refused at once, and this replay test
/// cover nothing past the refusal (`cargo run --example fuzz_seeds` writes them again).
#[test]
fn the_compiled_set_seeds_are_of_the_current_format() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/compiled");
    let seeds = files(&dir);
    assert!(!seeds.is_empty());
    for p in seeds {
        let body = std::fs::read(&p).unwrap();
        let sealed = iocmatch::indicators::compiled::seal(&body);
        let m = iocmatch::matcher::image::from_bytes(&sealed);
        assert!(m.is_ok_and(|m| !m.is_empty()), "{}: not a compiled set this iocmatch reads", p.display());
    }
}
