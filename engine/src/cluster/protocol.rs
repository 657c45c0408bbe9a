//! Messages between the coordinator and its workers, defined once.
//!
//! In a standalone run they travel over in-process channels; between processes each is one
//! JSON text frame on the worker's WebSocket. The worker speaks first (`Hello`); the
//! coordinator answers `Welcome` or `Refused`. Either side sends something at least every
//! second, so silence means trouble.

use crate::load::stats::StatsDelta;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change to these messages. 2: task stats keep failed requests'
/// times apart (`failure_latency`); the run spec carries the run's clock origin and stats come
/// per second of the run; deaths of users are reported. 3: histograms travel as varint-coded
/// (value, count) pairs (`stats::wire`) instead of HdrHistogram V2+deflate. 4: post-run
/// checks (`Audit` / `Checked`).
pub const PROTOCOL_VERSION: u32 = 4;

pub use crate::load::run_spec::RunSpec;
pub use crate::load::user::UserDeath;

/// Unix time in microseconds (0 before the epoch, saturated far after it).
pub fn unix_us(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What completed in one second of the run on one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondDelta {
    /// The second of the run (0 = the first, from the clock origin).
    pub second: u64,
    pub delta: StatsDelta,
}

/// A run a worker was cut from because its coordinator went away (a leader lost mid-run):
/// what the worker knows of it, kept until a coordinator has recorded it, so a new
/// coordinator can record the run as `interrupted`, count what was done and clean it up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutRun {
    /// The run's spec as the lost coordinator sent it: id, scenario, seed, key prefix.
    pub spec: RunSpec,
    /// The worker's name (`--name`).
    pub worker: String,
    /// Users it was running when it was cut.
    pub users: u32,
    /// Stats messages it had sent (the coordinator merged at most these).
    pub sent_stats: u64,
    /// Everything it recorded in the run, sent or not.
    pub totals: StatsDelta,
    /// RFC 3339 time it noticed the coordinator was gone.
    pub cut_at: String,
}

/// Coordinator → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    Welcome {
        worker_id: u32,
        coordinator_version: String,
    },
    Refused {
        reason: String,
    },
    /// Prepare to run; users come with `Assign`.
    Start {
        spec: RunSpec,
    },
    /// Run this many users of each user class (by index), spawning at `spawn_rate` per second.
    Assign {
        run_id: String,
        users: Vec<u32>,
        spawn_rate: f64,
        /// An open-model run: this worker's share of the arrivals (its `users` are all 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        arrival: Option<crate::load::arrivals::ArrivalShare>,
    },
    /// Stop every user; `abort` cuts in-flight requests at once instead of letting them finish.
    Stop {
        run_id: String,
        abort: bool,
    },
    Heartbeat,
    /// The cut run the worker reported is recorded: it may forget it.
    CutRunRecorded {
        run_id: String,
    },
    /// Run the scenario's post-run checks on the objects this worker's users wrote in run
    /// `run_id` (which it has `Finished`); the answer is `Checked`.
    Audit {
        run_id: String,
    },
}

/// Worker → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    Hello {
        protocol: u32,
        name: String,
        engine_version: String,
    },
    /// What completed since the previous `Stats` of this run, per second of the run (sent
    /// just after each whole second of the run ends). A sample recorded after its second was
    /// sent comes in a later message, still under its own second.
    Stats {
        run_id: String,
        seq: u64,
        users: u32,
        /// Every assigned user was spawned and has finished its iterations.
        done: bool,
        /// Seconds with samples, ascending.
        seconds: Vec<SecondDelta>,
        /// Every sample of the seconds before this one has now been sent.
        complete_through: u64,
        /// Users that died since the previous `Stats` (each also counted in `delta` as an
        /// `internal` failure of the task it was on).
        died: Vec<UserDeath>,
    },
    /// All users of the run have ended; the last `Stats` (seq `last_seq`) was the final one.
    Finished {
        run_id: String,
        last_seq: u64,
    },
    Heartbeat {
        users: u32,
    },
    /// Sent right after `Welcome` when the worker holds a run it was cut from.
    CutRun {
        run: Box<CutRun>,
    },
    /// The post-run checks of this worker's part of run `run_id` (the answer to `Audit`).
    Checked {
        run_id: String,
        report: Box<crate::load::audit::ChecksReport>,
    },
}
