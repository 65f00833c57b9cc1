//! Wire formats, no policy: pure functions from bytes to views.

pub mod defrag;
pub mod packet;
