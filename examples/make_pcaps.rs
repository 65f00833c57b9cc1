//! Writes the sample captures of `pcaps/` (byte for byte what the repository holds):
//! `cargo run --example make_pcaps [DIR]`.

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps").to_string());
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in iocmatch::synth::samples::all()? {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, bytes)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
