//! Presenting: the HTML [`report`], the [`webui`], Prometheus [`metrics`], run comparison
//! ([`compare`]) and the terminal [`progress`] line.

pub mod compare;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod webui;
