//! Where bytes come from: capture files and standard input (later: live interfaces, flow logs).

pub mod capture;
pub mod flowlog;
