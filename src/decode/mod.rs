//! Wire formats, no policy: pure functions from bytes to views.

pub mod defrag;
pub mod dns;
pub mod http;
pub mod packet;
pub mod peek;
pub mod tls;
