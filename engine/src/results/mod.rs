//! Aggregating: merged per-second points ([`series`]), the numbers every view shows
//! ([`summary`]), HDR histogram logs ([`hlog`]) and the files of a run directory
//! ([`artifacts`]), and the [`verdict`] of a scenario's thresholds on a run. A run's
//! [`RunState`] is defined here: every record of a run carries it.

pub mod artifacts;
pub mod hlog;
pub(crate) mod series;
pub mod summary;
pub(crate) mod verdict;

mod run_state;
pub use run_state::RunState;
