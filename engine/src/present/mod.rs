//! Presenting: the HTML [`report`], the [`webui`], Prometheus [`metrics`], run comparison
//! ([`compare`]) and the terminal [`progress`] line.

pub(crate) mod compare;
pub(crate) mod metrics;
pub(crate) mod progress;
pub mod report;
pub(crate) mod webui;
