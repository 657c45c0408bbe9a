//! The coordinator's control surface: requests, replies and errors, defined once.
//!
//! A standalone run calls the coordinator through these types in-process; the control API
//! carries them as JSON; the charm's actions read them back. Field names are the API. The
//! HTTP side is [`server`], the `chopsticks ctl` side [`client`], and both authenticate with
//! [`token`].

pub mod client;
pub mod server;
pub mod token;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::results::RunState;

/// Start a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// A built-in scenario name, a path on the coordinator's machine, or a seed path; when
    /// `scenario_yaml` is given, only the label of where that text came from.
    pub scenario: String,
    /// The scenario's YAML text, read by the caller: the coordinator compiles it and opens no
    /// path (the charm reads operator files as root from its scenario directory only).
    #[serde(default)]
    pub scenario_yaml: Option<String>,
    pub users: u32,
    /// Users started per second, across all workers.
    pub spawn_rate: f64,
    /// `90s`, `10m`, `1h30m`; none = until stopped (or iterations are done).
    #[serde(default)]
    pub duration: Option<String>,
    /// Tasks (or sequence passes) per user; none = unlimited.
    #[serde(default)]
    pub iterations: Option<u64>,
    /// Wait until this many workers are connected before starting.
    #[serde(default)]
    pub expected_workers: Option<u32>,
    /// How long to wait for `expected_workers` (default 60 s).
    #[serde(default)]
    pub wait_workers_s: Option<f64>,
    #[serde(default)]
    pub run_id: Option<String>,
    /// Seeds contents and random choices; random when absent.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Grace for in-flight requests at the end (default 30 s).
    #[serde(default)]
    pub stop_timeout_s: Option<f64>,
    /// Arrivals per second across all workers (open-model load), in place of the scenario's
    /// `load.arrival.rate`; with it the run has arrivals instead of closed-model users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// The saturation sweep and `--autoterm` (their keys are top-level in the request:
    /// `sweep`, `sweep_config`, `autoterm`).
    #[serde(flatten, default)]
    pub sweeping: SweepOptions,
}

/// A start request's sweep and autoterm settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepOptions {
    /// Run the scenario's `sweep:` block (with `sweep_config` over it) instead of one rate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sweep: bool,
    /// Sweep fields in place of the scenario's (what `chopsticks sweep`'s flags say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_config: Option<crate::load::sweep::SweepBlock>,
    /// Stop the run once its completed rate has been stable over a window:
    /// `{window: 10s, cv: 5%}` (both optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoterm: Option<crate::load::sweep::StableBlock>,
}

/// The largest `scenario_yaml` the coordinator accepts: the bound of a scenario file it reads.
pub const MAX_SCENARIO_YAML: usize = crate::limits::input::MAX_FILE_BYTES as usize;

impl StartRequest {
    /// Checks what can be checked before resolving anything: every number against its bound in
    /// `crate::limits`, the same checks the CLI makes. The coordinator's `StartSpec` runs this,
    /// then resolves the scenario once.
    pub fn check(&self) -> Result<(), ControlError> {
        let r = self;
        let limit = |e: crate::limits::LimitError| ControlError::BadRequest(e.to_string());
        crate::limits::USERS
            .check("users", r.users as u64)
            .map_err(limit)?;
        crate::limits::SPAWN_RATE
            .check("spawn_rate", r.spawn_rate)
            .map_err(limit)?;
        if let Some(d) = &r.duration {
            crate::duration::parse(d).map_err(|e| ControlError::BadRequest(e.to_string()))?;
        }
        if let Some(i) = r.iterations {
            crate::limits::ITERATIONS
                .check("iterations", i)
                .map_err(limit)?;
        }
        if let Some(w) = r.expected_workers {
            crate::limits::EXPECTED_WORKERS
                .check("expected_workers", w as u64)
                .map_err(limit)?;
        }
        if let Some(s) = r.wait_workers_s {
            crate::limits::WAIT_WORKERS
                .secs("wait_workers_s", s)
                .map_err(limit)?;
        }
        if let Some(t) = r.stop_timeout_s {
            crate::limits::STOP_TIMEOUT
                .secs("stop_timeout_s", t)
                .map_err(limit)?;
        }
        if let Some(rate) = r.rate {
            crate::limits::ARRIVAL_RATE
                .check("rate", rate)
                .map_err(limit)?;
        }
        if let Some(id) = &r.run_id {
            crate::cluster::coordinator::key_prefix(id)
                .map_err(|e| ControlError::BadRequest(e.to_string()))?;
        }
        if r.scenario_yaml.as_ref().map_or(0, String::len) > MAX_SCENARIO_YAML {
            return Err(ControlError::BadRequest(format!(
                "the scenario text is larger than {MAX_SCENARIO_YAML} bytes; a scenario is a short YAML file"
            )));
        }
        Ok(())
    }
}

/// The answer to a successful start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    pub run_id: String,
    pub state: RunState,
    pub run_dir: String,
    pub workers: u32,
    pub scenario: String,
}

/// The answer to a stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopReply {
    pub run_id: String,
    pub state: RunState,
}

/// A worker as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub id: u32,
    pub name: String,
    /// `connected` or `missing`.
    pub state: String,
    pub users: u32,
    pub last_seen_s: f64,
}

/// What is happening now (or what happened last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub state: RunState,
    pub run_id: Option<String>,
    pub scenario: Option<String>,
    pub elapsed_s: f64,
    pub duration_s: Option<f64>,
    pub users_target: u32,
    pub users_running: u32,
    /// Users per worker name.
    pub users_per_worker: BTreeMap<String, u32>,
    pub workers: Vec<WorkerStatus>,
    pub workers_connected: u32,
    pub workers_missing: u32,
    /// Rates over the last second.
    pub current_rps: f64,
    pub current_failures_per_s: f64,
    pub current_mb_per_s: f64,
    pub requests: u64,
    pub failures: u64,
    pub bytes: u64,
    pub reason: Option<String>,
    pub run_dir: Option<String>,
}

/// One line of the run list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunListing {
    pub run_id: String,
    pub state: RunState,
    pub scenario: String,
    pub created_at: String,
    pub ended_at: Option<String>,
    pub requests: u64,
    pub failures: u64,
}

/// Why the coordinator refused a control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", content = "message", rename_all = "snake_case")]
pub enum ControlError {
    /// The request itself is wrong; the message says what to fix.
    #[error("{0}")]
    BadRequest(String),
    /// A run is already active.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    NotFound(String),
    /// Not enough workers, or the coordinator is shutting down.
    #[error("{0}")]
    Unavailable(String),
}

impl ControlError {
    pub fn http_status(&self) -> u16 {
        match self {
            ControlError::BadRequest(_) => 400,
            ControlError::Busy(_) => 409,
            ControlError::NotFound(_) => 404,
            ControlError::Unavailable(_) => 503,
        }
    }
}
