//! The coordinator: owns runs, the worker hub, the plan, the stats merge and the artifacts.
//!
//! It is an actor (`actor.rs`): one task owns all state and handles events (control requests,
//! worker messages, a one-second tick, results of preparation and cleanup) one at a time, so
//! there are no locks and every transition is in one place. [`Coordinator`] is the cheap,
//! cloneable handle the standalone CLI, the control API and the worker transport talk to.
//!
//! Cut along its data: a start request is parsed once into a [`StartSpec`] (`start_spec.rs`);
//! the one-second clock is `clock.rs`; one run's state, merge and verdict are `run.rs`, its files `run_files.rs`; workers attach
//! and leave in `workers.rs`; status in `status.rs`; preparation and cleanup in `prepare.rs`;
//! runs on disk in `past_runs.rs`; runs a lost coordinator left behind in `recovery.rs`.

mod actor;
mod clock;
mod past_runs;
mod prepare;
mod recovery;
mod run;
mod run_files;
mod seconds;
mod start_spec;
mod status;
mod workers;

pub use past_runs::SummaryError;
pub use prepare::{
    cleanup, cleanup_earlier_run, explain, incomplete_message, key_prefix, prepare,
    shown as prepare_shown, PrepareError, RunIdError,
};
pub use start_spec::StartSpec;

use crate::cluster::protocol::FromWorker;
use crate::cluster::worker::Link;
use crate::control::{ControlError, RunListing, RunStarted, StartRequest, Status, StopReply};
use crate::load::driver::Driver;
use crate::load::scenario::OpKind;
use crate::load::stats::StatsDelta;
use crate::results::artifacts::{CleanupReport, PrepareReport};
use crate::results::series::SeriesPoint;
use crate::results::summary::Summary;
use crate::s3_config::TargetInfo;
use actor::Actor;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A worker silent this long is missing: its users go to the others.
pub const MISSING_AFTER: Duration = Duration::from_secs(3);
/// A worker missing this long is dropped from the hub.
pub const DROP_AFTER: Duration = Duration::from_secs(60);
/// Extra time, beyond the run's stop timeout, to wait for workers to report their last stats.
pub(super) const FINISH_GRACE: Duration = Duration::from_secs(15);
/// How long after a second of the run ends the coordinator waits for a worker that has not
/// sent all of it before writing it without: as long as silence takes to mark a worker missing.
pub(super) const SECOND_GRACE: Duration = MISSING_AFTER;
/// How often `summary.json` is refreshed while a run is going.
pub(super) const SUMMARY_EVERY: u64 = 2;

/// How the coordinator is set up.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Runs go in `<state_dir>/<run-id>/`.
    pub state_dir: PathBuf,
    pub target: TargetInfo,
    /// For a standalone `--run-dir`: the next run's artifacts go exactly here.
    pub run_dir_override: Option<PathBuf>,
    /// How long cleanup retries (with backoff) before it records the run's prefix as not
    /// cleaned up. Bounded by `limits::CLEANUP_TIMEOUT`.
    pub cleanup_timeout: Duration,
}

/// Points of the current run's time series from some index on.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesReply {
    pub run_id: Option<String>,
    /// Index of the first point returned.
    pub from: usize,
    pub points: Vec<SeriesPoint>,
}

/// What `/metrics` exposes: status plus the active (or last) run's merged totals.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    pub status: Status,
    pub totals: StatsDelta,
    pub tasks: Vec<(String, OpKind)>,
}

pub(super) enum Event {
    Series(usize, oneshot::Sender<SeriesReply>),
    Metrics(oneshot::Sender<MetricsSnapshot>),
    /// Boxed: a start request is far larger than the other events and rare.
    Start(
        Box<StartRequest>,
        oneshot::Sender<Result<RunStarted, ControlError>>,
    ),
    Stop(bool, oneshot::Sender<Result<StopReply, ControlError>>),
    Status(oneshot::Sender<Status>),
    Attach(String, oneshot::Sender<(u32, Link)>),
    Worker(u32, FromWorker),
    WorkerGone(u32),
    Prepared(String, Result<PrepareReport, PrepareError>),
    CleanedUp(String, CleanupReport),
    /// The coordinator's audit of the prefilled pool ended (post-run checks).
    SharedChecked(String, Box<crate::load::audit::ChecksReport>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle to a running coordinator.
#[derive(Clone)]
pub struct Coordinator {
    /// Control requests: a channel of their own, served before worker traffic, so stop and
    /// status answer even when the coordinator is busy merging.
    tx: mpsc::Sender<Event>,
    status: watch::Receiver<Status>,
    state_dir: PathBuf,
}

impl Coordinator {
    /// Starts the coordinator task. Runs left active by a previous process are marked
    /// `interrupted` first; their objects, and those of runs whose cleanup was incomplete,
    /// are cleaned up (again) in the background.
    pub fn spawn<D: Driver>(driver: Arc<D>, config: CoordinatorConfig) -> Coordinator {
        let (last, _interrupted) = past_runs::recover_interrupted(&config.state_dir);
        let (tx, control_rx) = mpsc::channel(64);
        let (events_tx, rx) = mpsc::channel(1024);
        let (status_tx, status) = watch::channel(status::idle_status(last.as_ref()));
        let state_dir = config.state_dir.clone();
        let mut actor = Actor {
            driver,
            config,
            events: events_tx,
            status: status_tx,
            workers: BTreeMap::new(),
            next_worker_id: 1,
            run: None,
            last,
            pending: None,
        };
        actor.retry_owed_cleanups();
        // This unit's own worker may have been cut from a run whose leader was lost.
        if let Some(cut) = crate::cluster::cut_run::load(&state_dir) {
            let run_id = cut.spec.run_id.clone();
            if actor.record_cut_run(None, cut) != recovery::Recorded::Rejected {
                crate::cluster::cut_run::clear(&state_dir, &run_id);
            }
        }
        tokio::spawn(actor.run(control_rx, rx));
        Coordinator {
            tx,
            status,
            state_dir,
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Event) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    fn gone() -> ControlError {
        ControlError::Unavailable("the coordinator is shutting down".into())
    }

    pub async fn start(&self, request: StartRequest) -> Result<RunStarted, ControlError> {
        self.ask(|tx| Event::Start(Box::new(request), tx))
            .await
            .unwrap_or_else(|| Err(Self::gone()))
    }

    /// Stops the active run; `abort` cuts in-flight requests off instead of letting them finish.
    pub async fn stop(&self, abort: bool) -> Result<StopReply, ControlError> {
        self.ask(|tx| Event::Stop(abort, tx))
            .await
            .unwrap_or_else(|| Err(Self::gone()))
    }

    pub async fn status(&self) -> Status {
        match self.ask(Event::Status).await {
            Some(s) => s,
            None => self.status.borrow().clone(),
        }
    }

    /// Status updates, published at every transition and every second.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// The current run's per-second points from index `since` on.
    pub async fn series(&self, since: usize) -> SeriesReply {
        self.ask(|tx| Event::Series(since, tx))
            .await
            .unwrap_or_default()
    }

    /// Everything `/metrics` shows.
    pub async fn metrics(&self) -> Option<MetricsSnapshot> {
        self.ask(Event::Metrics).await
    }

    /// Connects a worker called `name`; returns its id and the worker's end of the link.
    pub async fn attach(&self, name: String) -> Option<(u32, Link)> {
        self.ask(|tx| Event::Attach(name, tx)).await
    }

    /// Past and current runs, newest first.
    pub fn runs(&self) -> Vec<RunListing> {
        past_runs::list_runs(&self.state_dir)
    }

    /// A run's `summary.json`.
    pub fn summary(&self, run_id: &str) -> Result<Summary, ControlError> {
        past_runs::read_summary(&self.state_dir, run_id)
    }

    /// Finishes the active run (as `interrupted`) and ends the coordinator.
    pub async fn shutdown(&self) {
        let _ = self.ask(Event::Shutdown).await;
    }
}

/// A time-sortable run id: `20261122T101500Z-3f9c2a`.
pub fn new_run_id() -> String {
    format!(
        "{}-{:06x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>() & 0xff_ffff
    )
}
