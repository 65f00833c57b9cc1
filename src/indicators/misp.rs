//! MISP event JSON and CSV export (stub).
use std::sync::Arc;

use super::IndicatorSet;

pub fn load_json(_text: &str, file: &Arc<str>, _stem: &str, set: &mut IndicatorSet) {
    set.error(file, None, "MISP JSON is not supported yet".into());
}

pub fn load_csv(_text: &str, file: &Arc<str>, _stem: &str, set: &mut IndicatorSet) {
    set.error(file, None, "MISP CSV is not supported yet".into());
}
