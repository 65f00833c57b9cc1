//! Findings about indicator sets (false-positive guards).
