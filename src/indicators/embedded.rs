//! The shipped sets (`indicators/` at the top of the repository), compiled into the binary so a
//! scan needs no file to know the advisories' infrastructure.

use std::sync::Arc;

use super::{csv, IndicatorSet};

macro_rules! shipped {
    ($($name:literal),* $(,)?) => {
        /// `(set name, CSV text, manifest text)` for every shipped set.
        pub const SETS: &[(&str, &str, &str)] = &[
            $(($name,
               include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/indicators/", $name, ".csv")),
               include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/indicators/", $name, ".manifest.json"))),)*
        ];
    };
}

shipped!(
    "raptor-train-lumen-2024-09-18",
    "flax-typhoon-microsoft-2023-08-24",
    "prc-botnet-csa-2024-09-18",
    "integrity-tech-aa26-281a-2026-10-08",
    "microscan-seizure-doj-2026-10-08",
);

/// Adds every shipped set to `set`.
pub fn load_into(set: &mut IndicatorSet) {
    for (name, text, manifest) in SETS {
        let file: Arc<str> = Arc::from(format!("embedded:{name}.csv").as_str());
        set.first_time(text);
        // The manifests are checked by the test below; a broken one cannot ship.
        let prov = csv::Manifest::parse(manifest).map(|m| m.provenance(name, &file)).unwrap_or_default();
        csv::load(text, &file, prov, set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_file_is_embedded_and_loads_cleanly() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/indicators");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".csv").map(String::from))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SETS.iter().map(|s| s.0.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "indicators/ and the embedded list differ");
        for (name, _, manifest) in SETS {
            let m = csv::Manifest::parse(manifest).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                m.title.is_some() && m.publisher.is_some() && m.date.is_some(),
                "{name}: manifest lacks provenance"
            );
        }
        let mut set = IndicatorSet::new();
        load_into(&mut set);
        assert_eq!(set.errors(), 0, "{:?}", set.diagnostics);
        assert_eq!(set.indicators.len(), 212 + 16 + 5 + 19 + 6);
    }
}
