#![no_main]
//! See `iocmatch::fuzzing::compiled`: the harness body lives in the library so that
//! `tests/fuzz_replay.rs` runs it over the corpus under `cargo test`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    iocmatch::fuzzing::compiled(data);
});
