//! STIX 2.1 bundles (stub).
use std::sync::Arc;

use super::IndicatorSet;

pub fn load(_text: &str, file: &Arc<str>, _stem: &str, set: &mut IndicatorSet) {
    set.error(file, None, "STIX bundles are not supported yet".into());
}
