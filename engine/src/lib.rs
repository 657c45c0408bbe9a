//! Chopsticks: a distributed S3 load engine with exact metrics.
//!
//! Measure, aggregate, present are separate layers: virtual users ([`user`]) issue requests
//! through a [`driver`] and record into [`stats`]; a [`worker`] ships one stats delta a second
//! to the [`coordinator`], which merges them exactly and writes [`artifacts`]; [`summary`]
//! turns merged data into the numbers every view shows.

pub mod api;
pub mod artifacts;
pub mod cli;
pub mod compare;
pub mod connector;
pub mod content;
pub mod control;
pub mod coordinator;
pub mod ctl;
pub mod driver;
pub mod duration;
pub mod hlog;
pub mod hub;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod protocol;
pub mod recovery;
pub mod report;
pub mod scenario;
pub mod series;
pub mod size;
pub mod stats;
pub mod summary;
pub mod target;
pub mod token;
pub mod user;
pub mod webui;
pub mod worker;
pub mod workload;

/// The engine version recorded in every run.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
