//! The two capture readers must agree: `read` (streaming, for pipes and compressed files) and
//! `read_slice` (in place, for memory-mapped files and the parallel scan). Every capture the
//! project holds goes through both: the samples, the fuzz seeds and regressions (many of them
//! corrupt), and the shared corpus where it is present.

use std::io::Read;
use std::path::{Path, PathBuf};

use iocmatch::source::capture;

type Seen = Vec<(u64, u32, i64, u32, Vec<u8>)>;
/// Packets delivered, and the packet count or the packet an error came after.
type Run = (Seen, Result<u64, u64>);

fn both(data: &[u8]) -> (Run, Run) {
    let run = |slice: bool| {
        let mut seen = Seen::new();
        let sink = |p: capture::Packet<'_>| seen.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec()));
        let r = if slice { capture::read_slice(data, sink) } else { capture::read(data, sink) };
        (seen, r.map(|s| s.packets).map_err(|e| e.after_packet))
    };
    (run(false), run(true))
}

/// What one engine reads of an uncompressed classic pcap or pcapng file: by windows of its mapping
/// (`None` for any other file).
fn by_windows(path: &Path) -> Option<Run> {
    let map = iocmatch::source::map(path).ok()??;
    let file = std::fs::File::open(path).ok()?;
    let mut seen = Seen::new();
    let sink = |p: capture::Packet<'_>, _: Option<&[u8]>| {
        seen.push((p.number, p.linktype, p.ts_micros, p.wire_len, p.data.to_vec()))
    };
    let (r, _) = capture::read_windows(&file, &map, || false, sink)?;
    Some((seen, r.map(|s| s.packets).map_err(|e| e.after_packet)))
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn streaming_and_in_place_readers_agree_on_every_capture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for d in ["pcaps", "fuzz/seeds/capture", "fuzz/seeds/engine", "fuzz/regressions", "../shared/corpus/pcaps"] {
        files(&root.join(d), &mut paths);
    }
    // More folders (a fuzzer's corpus, say), separated by ':'.
    for d in std::env::var("IOCMATCH_EXTRA_CAPTURES").unwrap_or_default().split(':').filter(|d| !d.is_empty()) {
        files(Path::new(d), &mut paths);
    }
    let mut compared = 0;
    let mut windowed = 0;
    let mut split = 0;
    let mut packets = 0;
    for p in &paths {
        let Ok(raw) = capture::open(p) else { continue };
        let mut data = Vec::new();
        if raw.take(64 << 20).read_to_end(&mut data).is_err() {
            continue;
        }
        let ((a, ra), (b, rb)) = both(&data);
        assert_eq!(ra, rb, "{}: outcome differs (streaming {ra:?}, in place {rb:?})", p.display());
        assert!(a == b, "{}: packets differ ({} streaming, {} in place)", p.display(), a.len(), b.len());
        if let Some((c, rc)) = by_windows(p) {
            assert_eq!(rc, rb, "{}: outcome differs (by windows {rc:?}, in place {rb:?})", p.display());
            assert!(c == b, "{}: packets differ ({} by windows, {} in place)", p.display(), c.len(), b.len());
            windowed += 1;
        }
        // The chunks `-j` shares a file out in, mapped and through buffers, hand out what the
        // readers read (small chunks, so that records cross their boundaries).
        for (n, chunk) in [(2, 4096), (3, 64 << 10)] {
            let check = std::panic::catch_unwind(|| iocmatch::pipeline::workers::check_split(&data, n, chunk));
            if check.as_ref().is_ok_and(|end| end.is_some()) && n == 2 {
                split += 1;
            }
            assert!(check.is_ok(), "{}: the chunks of {chunk} bytes for {n} workers disagree (see above)", p.display());
        }
        compared += 1;
        packets += a.len();
    }
    assert!(compared >= 10, "only {compared} captures found under {}", root.display());
    assert!(windowed >= 5, "only {windowed} classic pcap or pcapng files read by windows");
    assert!(split >= 5, "only {split} captures split in chunks");
    assert!(packets > 100, "only {packets} packets compared");
    eprintln!(
        "{compared} captures ({windowed} also by windows, {split} in chunks), {packets} packets: the readers agree"
    );
}

/// A capture several times the streaming reader's buffer, so that records straddle its
/// refills; then the same capture cut short at many points, and with a record length broken at
/// many points. Both readers must deliver the same packets and stop at the same one.
#[test]
fn readers_agree_across_buffer_refills_and_on_damage_anywhere() {
    let mut w = iocmatch::synth::PcapWriter::new(Vec::new(), 1).unwrap();
    let mut rng = iocmatch::synth::XorShift(0x9e37_79b9);
    for i in 0..12_000u32 {
        let len = 14 + rng.below(1500) as usize;
        let frame: Vec<u8> = (0..len).map(|b| (b as u32 ^ i) as u8).collect();
        w.frame(i64::from(i) * 1000, &frame).unwrap();
    }
    let data = w.into_inner();
    assert!(data.len() > 8 << 20, "{} bytes", data.len());
    let ((a, ra), (b, rb)) = both(&data);
    assert_eq!(ra, Ok(12_000));
    assert_eq!((&a, ra), (&b, rb));
    // Record boundaries, to break a length field.
    let mut starts = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        starts.push(at);
        at += 16 + u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
    }
    for k in (0..40).map(|k| k * 300 + 7) {
        let cut = &data[..starts[k] + 9];
        let ((a, ra), (b, rb)) = both(cut);
        assert_eq!(ra, Err(k as u64), "cut in record {}", k + 1);
        assert!(ra == rb && a == b, "cut in record {}: {ra:?} / {rb:?}", k + 1);
        let mut broken = data.clone();
        broken[starts[k] + 10] = 0x7f;
        let ((a, ra), (b, rb)) = both(&broken);
        assert_eq!(ra, Err(k as u64), "length broken in record {}", k + 1);
        assert!(ra == rb && a == b, "length broken in record {}: {ra:?} / {rb:?}", k + 1);
    }
}
