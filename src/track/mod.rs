//! Per-connection state: the connection table, the first bytes of each TCP direction, and the
//! DNS correlation cache.

pub mod conn;
pub mod dnscache;
pub mod stream;
pub mod table;
