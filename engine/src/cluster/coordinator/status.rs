//! What the coordinator says about itself: the status of the active run (or the last one)
//! and its workers, published to watchers at every transition and every second.

use super::actor::Actor;
use crate::control::{RunState, Status, WorkerStatus};
use crate::load::driver::Driver;
use crate::load::scenario::OpKind;
use crate::load::stats::StatsDelta;
use crate::results::series::SeriesPoint;
use std::collections::{BTreeMap, BTreeSet};

/// The last run that ended, for status, series and metrics when idle.
#[derive(Debug, Clone)]
pub(super) struct LastRun {
    /// Its merged totals (empty for a run found on disk at start: only summary numbers are).
    pub totals: StatsDelta,
    /// Its statistics names and kinds.
    pub tasks: Vec<(String, OpKind)>,
    /// Its live-chart points (empty for a run found on disk).
    pub series: Vec<SeriesPoint>,
    pub run_id: String,
    /// Its scenario's name.
    pub scenario: String,
    /// How it ended.
    pub state: RunState,
    pub reason: Option<String>,
    /// Seconds of load.
    pub elapsed_s: f64,
    /// Users asked for.
    pub users: u32,
    pub requests: u64,
    pub failures: u64,
    pub bytes: u64,
    pub run_dir: String,
}

/// Status when no run is active: the last run's numbers, or idle.
pub(super) fn idle_status(last: Option<&LastRun>) -> Status {
    Status {
        state: last.map(|l| l.state).unwrap_or(RunState::Idle),
        run_id: last.map(|l| l.run_id.clone()),
        scenario: last.map(|l| l.scenario.clone()),
        elapsed_s: last.map(|l| l.elapsed_s).unwrap_or(0.0),
        duration_s: None,
        users_target: last.map(|l| l.users).unwrap_or(0),
        users_running: 0,
        users_per_worker: BTreeMap::new(),
        workers: Vec::new(),
        workers_connected: 0,
        workers_missing: 0,
        current_rps: 0.0,
        current_failures_per_s: 0.0,
        current_mb_per_s: 0.0,
        requests: last.map(|l| l.requests).unwrap_or(0),
        failures: last.map(|l| l.failures).unwrap_or(0),
        bytes: last.map(|l| l.bytes).unwrap_or(0),
        reason: last.and_then(|l| l.reason.clone()),
        run_dir: last.map(|l| l.run_dir.clone()),
    }
}

impl<D: Driver> Actor<D> {
    pub(super) fn current_status(&self) -> Status {
        let workers: Vec<WorkerStatus> = self
            .workers
            .iter()
            .map(|(id, s)| WorkerStatus {
                id: *id,
                name: s.name.clone(),
                state: if s.missing_since.is_some() {
                    "missing".into()
                } else {
                    "connected".into()
                },
                users: s.users,
                last_seen_s: s.last_seen.elapsed().as_secs_f64(),
            })
            .collect();
        let mut per_worker = BTreeMap::new();
        for w in &workers {
            let key = if per_worker.contains_key(&w.name) {
                format!("{}#{}", w.name, w.id)
            } else {
                w.name.clone()
            };
            per_worker.insert(key, w.users);
        }
        let connected = workers.iter().filter(|w| w.state == "connected").count() as u32;
        let missing = workers.len() as u32 - connected;
        let mut status = idle_status(self.last.as_ref());
        status.workers = workers;
        status.workers_connected = connected;
        status.workers_missing = missing;
        status.users_per_worker = per_worker;
        if let Some(run) = &self.run {
            let attached: BTreeSet<u32> = self.workers.keys().copied().collect();
            status.state = run.state;
            status.run_id = Some(run.spec.run_id.clone());
            status.scenario = Some(run.spec.scenario.name.clone());
            status.elapsed_s = run
                .load_started
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            status.duration_s = run.record.parameters.duration_s;
            status.users_target = run.users_target;
            status.users_running = run.users_on(&attached);
            (
                status.current_rps,
                status.current_failures_per_s,
                status.current_mb_per_s,
            ) = run.rates;
            status.requests = run.totals.requests();
            status.failures = run.totals.failures();
            status.bytes = run.totals.bytes();
            status.reason = run.record.reason.clone();
            status.run_dir = Some(run.files.path().display().to_string());
        }
        status
    }

    /// Sends the status to watchers if it changed.
    pub(super) fn publish(&self) {
        let status = self.current_status();
        self.status.send_if_modified(|old| {
            if *old != status {
                *old = status;
                true
            } else {
                false
            }
        });
    }
}
