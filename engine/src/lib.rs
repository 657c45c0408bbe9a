//! Chopsticks: a distributed S3 load engine with exact metrics.
//!
//! The folders are the layers of DESIGN.md, each importing only from the ones above it in this
//! list (`tests/layers.rs` checks it):
//!
//! - the foundation: [`limits`] (every bound on input), [`duration`], [`size`], the S3
//!   connection file ([`s3_config`]) and [`logging`];
//! - [`load`] — measuring: scenarios, virtual users, drivers, generated content, and the
//!   recorder each user writes its outcomes into;
//! - [`results`] — aggregating: per-second series, the summary every view shows, HDR logs, and
//!   the run directory's files;
//! - [`cluster`] — distributing: the coordinator, workers, the hub and link between them, and
//!   their wire protocol;
//! - [`present`] — presenting: the HTML report, the web UI, Prometheus metrics, run comparison
//!   and the terminal progress line;
//! - [`control`] — the control API (server and client) and its token;
//! - [`cli`] — the `chopsticks` command, and [`embedded_s3`], the in-process target it starts
//!   when no endpoint is configured.

pub mod cli;
pub mod cluster;
pub mod control;
pub mod duration;
// Public for engine/examples/embedded_target.rs (the scheduling benchmark's server).
pub mod embedded_s3;
pub mod limits;
pub mod load;
pub(crate) mod logging;
pub mod present;
pub mod results;
pub mod s3_config;
pub mod size;

/// The engine version recorded in every run.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
