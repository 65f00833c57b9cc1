//! iocmatch: flag network connections that reach the infrastructure named by a threat advisory.
//!
//! Data flows one way: `source` (bytes in) -> `decode` (what they say) -> `track`
//! (per connection) -> `matcher` (against the compiled indicator sets) -> `report` (alerts out).
//! The indicator model and its loaders live in `indicators`.

pub mod cli;
pub mod decode;
#[doc(hidden)]
pub mod fuzzing;
pub mod indicators;
pub mod matcher;
pub mod pipeline;
pub(crate) mod prefetch;
pub mod report;
pub mod source;
pub mod synth;
pub mod time;
pub mod track;
pub mod watch;
