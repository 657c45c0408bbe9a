//! The coordinator: owns runs, the worker hub, the plan, the stats merge and the artifacts.
//!
//! It is an actor: one task owns all state and handles events (control requests, worker
//! messages, a one-second tick, results of preparation and cleanup) one at a time, so there
//! are no locks and every transition is in one place. [`Coordinator`] is the cheap, cloneable
//! handle the standalone CLI, the control API and the worker transport talk to.

mod prepare;
mod recovery;
mod seconds;

pub use prepare::{
    cleanup, cleanup_earlier_run, explain, incomplete_message, key_prefix, prepare,
    shown as prepare_shown, PrepareError, RunIdError,
};

use crate::cluster::plan;
use crate::cluster::protocol::{FromWorker, RunSpec, ToWorker};
use crate::cluster::worker::Link;
use crate::control::{
    ControlError, RunListing, RunStarted, RunState, StartRequest, Status, StopReply, WorkerStatus,
};
use crate::duration;
use crate::load::driver::Driver;
use crate::load::scenario::OpKind;
use crate::load::stats::StatsDelta;
use crate::results::artifacts::{
    self, CleanupReport, PrepareReport, RunDir, RunParameters, RunRecord, WorkerRecord,
};
use crate::results::hlog::HistogramLog;
use crate::results::series::SeriesPoint;
use crate::results::summary::Summary;
use crate::s3_config::TargetInfo;
use seconds::{Placement, SecondAssembler};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{interval, Instant, MissedTickBehavior};

/// A worker silent this long is missing: its users go to the others.
pub const MISSING_AFTER: Duration = Duration::from_secs(3);
/// A worker missing this long is dropped from the hub.
pub const DROP_AFTER: Duration = Duration::from_secs(60);
/// Extra time, beyond the run's stop timeout, to wait for workers to report their last stats.
const FINISH_GRACE: Duration = Duration::from_secs(15);
/// How long after a second of the run ends the coordinator waits for a worker that has not
/// sent all of it before writing it without: as long as silence takes to mark a worker missing.
const SECOND_GRACE: Duration = MISSING_AFTER;
/// How often `summary.json` is refreshed while a run is going.
const SUMMARY_EVERY: u64 = 2;

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

enum Event {
    Series(usize, oneshot::Sender<SeriesReply>),
    Metrics(oneshot::Sender<MetricsSnapshot>),
    Start(
        StartRequest,
        oneshot::Sender<Result<RunStarted, ControlError>>,
    ),
    Stop(bool, oneshot::Sender<Result<StopReply, ControlError>>),
    Status(oneshot::Sender<Status>),
    Attach(String, oneshot::Sender<(u32, Link)>),
    Worker(u32, FromWorker),
    WorkerGone(u32),
    Prepared(String, Result<PrepareReport, prepare::PrepareError>),
    CleanedUp(String, CleanupReport),
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
        let (last, _interrupted) = recover_interrupted(&config.state_dir);
        let (tx, control_rx) = mpsc::channel(64);
        let (events_tx, rx) = mpsc::channel(1024);
        let (status_tx, status) = watch::channel(idle_status(last.as_ref()));
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
        self.ask(|tx| Event::Start(request, tx))
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
        list_runs(&self.state_dir)
    }

    /// A run's `summary.json`.
    pub fn summary(&self, run_id: &str) -> Result<Summary, ControlError> {
        read_summary(&self.state_dir, run_id)
    }

    /// Finishes the active run (as `interrupted`) and ends the coordinator.
    pub async fn shutdown(&self) {
        let _ = self.ask(Event::Shutdown).await;
    }
}

/// A connected worker.
struct Slot {
    name: String,
    tx: mpsc::Sender<ToWorker>,
    last_seen: Instant,
    missing_since: Option<Instant>,
    users: u32,
}

/// A start waiting for workers.
struct PendingStart {
    request: StartRequest,
    deadline: Instant,
    reply: oneshot::Sender<Result<RunStarted, ControlError>>,
}

/// A worker's part in the active run.
struct Participant {
    record: WorkerRecord,
    users: u32,
    done: bool,
    finished: bool,
    assigned: Vec<u32>,
}

/// The active run.
struct Run {
    spec: Arc<RunSpec>,
    record: RunRecord,
    dir: RunDir,
    tasks: Vec<(String, OpKind)>,
    state: RunState,
    /// What the run ends as once it has wound down.
    outcome: RunState,
    stop_requested: bool,
    load_started: Option<Instant>,
    load_ended: Option<Instant>,
    deadline: Option<Instant>,
    stopping_since: Option<Instant>,
    cleaning: bool,
    users_target: u32,
    class_weights: Vec<i64>,
    spawn_rate: f64,
    totals: StatsDelta,
    /// The seconds of the run not yet written to the history, as workers' deltas arrive.
    seconds: SecondAssembler,
    /// Requests that arrived after their second was written (in the totals, not the history).
    late_requests: u64,
    /// Rates of the last closed second (requests/s, failures/s, MB/s), for status.
    rates: (f64, f64, f64),
    participants: BTreeMap<u32, Participant>,
    ticks: u64,
    series: Vec<SeriesPoint>,
    hlog: Option<HistogramLog>,
    /// Wall-clock time of the run's clock origin (second 0 begins; `load_started` on the
    /// monotonic clock).
    origin_wall: std::time::SystemTime,
}

/// The last run that ended, for status when idle.
#[derive(Debug, Clone)]
struct LastRun {
    totals: StatsDelta,
    tasks: Vec<(String, OpKind)>,
    series: Vec<SeriesPoint>,
    run_id: String,
    scenario: String,
    state: RunState,
    reason: Option<String>,
    elapsed_s: f64,
    users: u32,
    requests: u64,
    failures: u64,
    bytes: u64,
    run_dir: String,
}

struct Actor<D> {
    driver: Arc<D>,
    config: CoordinatorConfig,
    events: mpsc::Sender<Event>,
    status: watch::Sender<Status>,
    workers: BTreeMap<u32, Slot>,
    next_worker_id: u32,
    run: Option<Run>,
    last: Option<LastRun>,
    pending: Option<PendingStart>,
}

impl<D: Driver> Actor<D> {
    async fn run(mut self, mut control: mpsc::Receiver<Event>, mut rx: mpsc::Receiver<Event>) {
        let mut tick = interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            // Worker chatter and queries change nothing watchers need at once; the tick
            // publishes their effect every second.
            let mut routine = false;
            let deadline = self
                .run
                .as_ref()
                .filter(|r| matches!(r.state, RunState::Spawning | RunState::Running))
                .and_then(|r| r.deadline);
            enum Step {
                Deadline,
                Tick,
                Event(Event),
            }
            let step = tokio::select! {
                // Control first, then time, then worker traffic: a flood of stats can delay
                // merging but never a stop, a status or the clock.
                biased;
                event = control.recv() => match event {
                    Some(e) => Step::Event(e),
                    None => break,
                },
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => Step::Deadline,
                _ = tick.tick() => Step::Tick,
                event = rx.recv() => match event {
                    Some(e) => Step::Event(e),
                    None => break,
                },
            };
            match step {
                Step::Deadline => self.begin_stop(RunState::Completed, false, "duration reached"),
                Step::Tick => self.tick(),
                Step::Event(Event::Shutdown(reply)) => {
                    if self.run.is_none() {
                        let _ = reply.send(());
                        break;
                    }
                    log::info!("shutting down: winding down the active run first");
                    self.begin_stop(
                        RunState::Interrupted,
                        true,
                        "the coordinator is shutting down",
                    );
                    shutdown = Some(reply);
                }
                Step::Event(event) => {
                    routine = matches!(
                        event,
                        Event::Worker(_, FromWorker::Stats { .. } | FromWorker::Heartbeat { .. })
                            | Event::Status(_)
                            | Event::Series(..)
                            | Event::Metrics(_)
                    );
                    self.handle(event);
                }
            }
            if shutdown.is_some() && self.run.is_none() {
                if let Some(reply) = shutdown.take() {
                    let _ = reply.send(());
                }
                break;
            }
            if !routine {
                self.publish();
            }
        }
        for slot in self.workers.values() {
            let _ = slot.tx.try_send(ToWorker::Heartbeat);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Start(request, reply) => self.start(request, reply),
            Event::Stop(abort, reply) => {
                let _ = reply.send(self.stop(abort));
            }
            Event::Status(reply) => {
                let _ = reply.send(self.current_status());
            }
            Event::Series(since, reply) => {
                let empty = Vec::new();
                let (run_id, series) = match (&self.run, &self.last) {
                    (Some(r), _) => (Some(r.spec.run_id.clone()), &r.series),
                    (None, Some(l)) => (Some(l.run_id.clone()), &l.series),
                    (None, None) => (None, &empty),
                };
                let from = since.min(series.len());
                let _ = reply.send(SeriesReply {
                    run_id,
                    from,
                    points: series[from..].to_vec(),
                });
            }
            Event::Metrics(reply) => {
                let (totals, tasks) = match (&self.run, &self.last) {
                    (Some(r), _) => (r.totals.clone(), r.tasks.clone()),
                    (None, Some(l)) => (l.totals.clone(), l.tasks.clone()),
                    (None, None) => (StatsDelta::default(), Vec::new()),
                };
                let _ = reply.send(MetricsSnapshot {
                    status: self.current_status(),
                    totals,
                    tasks,
                });
            }
            Event::Attach(name, reply) => {
                let _ = reply.send(self.attach(name));
            }
            Event::Worker(id, msg) => self.worker_message(id, msg),
            Event::WorkerGone(id) => self.worker_gone(id),
            Event::Prepared(run_id, result) => self.prepared(&run_id, result),
            Event::CleanedUp(run_id, report) => self.cleaned_up(&run_id, report),
            Event::Shutdown(_) => {}
        }
    }

    // ---------------------------------------------------------------- workers

    fn attach(&mut self, name: String) -> (u32, Link) {
        let id = self.next_worker_id;
        self.next_worker_id += 1;
        // A worker that reconnects under the same name replaces its stale slot.
        let stale: Vec<u32> = self
            .workers
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(id, _)| *id)
            .collect();
        for old in stale {
            self.remove_worker(old, &format!("worker {name} reconnected as #{id}"));
        }
        let (to_worker, worker_rx) = mpsc::channel(256);
        // Short: a coordinator that falls behind pushes back on the worker's socket instead of
        // queueing its deltas (each decoded delta can hold many histograms).
        let (worker_tx, mut from_worker) = mpsc::channel::<FromWorker>(16);
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(msg) = from_worker.recv().await {
                if events.send(Event::Worker(id, msg)).await.is_err() {
                    return;
                }
            }
            let _ = events.send(Event::WorkerGone(id)).await;
        });
        log::info!("worker {name} connected as #{id}");
        self.workers.insert(
            id,
            Slot {
                name: name.clone(),
                tx: to_worker,
                last_seen: Instant::now(),
                missing_since: None,
                users: 0,
            },
        );
        if let Some(run) = self.run.as_mut() {
            run.dir.event(&format!("worker {name} (#{id}) connected"));
            if matches!(run.state, RunState::Spawning | RunState::Running) {
                self.enlist(id);
                self.rebalance();
            }
        }
        self.check_pending();
        (
            id,
            Link {
                tx: worker_tx,
                rx: worker_rx,
            },
        )
    }

    /// Sends the active run to worker `id` and records it as a participant.
    fn enlist(&mut self, id: u32) {
        let (Some(run), Some(slot)) = (self.run.as_mut(), self.workers.get(&id)) else {
            return;
        };
        if run.participants.contains_key(&id) {
            return;
        }
        let _ = slot.tx.try_send(ToWorker::Start {
            spec: (*run.spec).clone(),
        });
        run.participants.insert(
            id,
            Participant {
                record: WorkerRecord {
                    id,
                    name: slot.name.clone(),
                    joined_at: artifacts::now_rfc3339(),
                    fate: "active".into(),
                    ..WorkerRecord::default()
                },
                users: 0,
                done: false,
                finished: false,
                assigned: Vec::new(),
            },
        );
    }

    fn worker_message(&mut self, id: u32, msg: FromWorker) {
        let Some(slot) = self.workers.get_mut(&id) else {
            return;
        };
        slot.last_seen = Instant::now();
        if slot.missing_since.take().is_some() {
            let name = slot.name.clone();
            log::info!("worker {name} (#{id}) is back");
            if let Some(run) = self.run.as_mut() {
                run.dir.event(&format!("worker {name} (#{id}) is back"));
            }
            if self
                .run
                .as_ref()
                .is_some_and(|r| matches!(r.state, RunState::Spawning | RunState::Running))
            {
                self.enlist(id);
                self.rebalance();
            }
        }
        match msg {
            FromWorker::Heartbeat { users } => {
                if let Some(slot) = self.workers.get_mut(&id) {
                    slot.users = users;
                }
            }
            FromWorker::Stats {
                run_id,
                seq,
                users,
                done,
                seconds,
                complete_through,
                died,
            } => {
                if let Some(slot) = self.workers.get_mut(&id) {
                    slot.users = users;
                }
                let Some(run) = self.run.as_mut().filter(|r| r.spec.run_id == run_id) else {
                    return;
                };
                let Some(p) = run.participants.get_mut(&id) else {
                    return;
                };
                if seq <= p.record.stats_messages {
                    log::warn!("worker #{id} repeated stats message {seq}; ignored");
                    return;
                }
                p.record.stats_messages = seq;
                for s in &seconds {
                    p.record.requests += s.delta.requests();
                    p.record.failures += s.delta.failures();
                    p.record.bytes += s.delta.bytes();
                }
                p.users = users;
                p.done = done;
                for death in died {
                    let name = self
                        .workers
                        .get(&id)
                        .map(|s| s.name.as_str())
                        .unwrap_or("?");
                    let text = format!(
                        "user {} of worker {name} (#{id}) died{}: {}; its results so far are kept, it is not replaced and the run will fail",
                        death.user,
                        death
                            .task
                            .as_ref()
                            .map(|t| format!(" during task {t}"))
                            .unwrap_or_default(),
                        death.message
                    );
                    log::error!("run {}: {text}", run.spec.run_id);
                    run.dir.event(&text);
                    p.record.died_users.push(death);
                }
                for s in &seconds {
                    run.totals.merge(&s.delta);
                    if run.seconds.add(s.second, &s.delta) == Placement::Late {
                        let late = s.delta.requests();
                        run.late_requests += late;
                        run.dir.event(&format!(
                            "{late} requests of second {} from worker #{id} arrived after that second was written: they are in the totals, not in its history row",
                            s.second
                        ));
                    }
                }
                run.seconds.complete_through(id, complete_through);
                self.close_seconds();
            }
            FromWorker::Finished { run_id, last_seq } => {
                let Some(run) = self.run.as_mut().filter(|r| r.spec.run_id == run_id) else {
                    return;
                };
                if let Some(p) = run.participants.get_mut(&id) {
                    p.finished = true;
                    p.users = 0;
                    p.record.fate = "finished".into();
                    p.record.left_at = Some(artifacts::now_rfc3339());
                    if p.record.stats_messages != last_seq {
                        log::warn!(
                            "worker #{id} sent {last_seq} stats messages, {} arrived",
                            p.record.stats_messages
                        );
                    }
                }
                self.maybe_cleanup();
            }
            FromWorker::Hello { .. } => {}
            FromWorker::CutRun { run } => {
                self.record_cut_run(Some(id), *run);
            }
        }
    }

    fn worker_gone(&mut self, id: u32) {
        if self.workers.contains_key(&id) {
            let name = self.workers[&id].name.clone();
            self.remove_worker(id, &format!("worker {name} (#{id}) disconnected"));
            self.rebalance();
            self.maybe_cleanup();
        }
    }

    fn remove_worker(&mut self, id: u32, why: &str) {
        if self.workers.remove(&id).is_none() {
            return;
        }
        if self.run.is_some() {
            log::warn!("{why}");
        } else {
            log::info!("{why}");
        }
        if let Some(run) = self.run.as_mut() {
            run.dir.event(why);
            if let Some(p) = run.participants.get_mut(&id) {
                if !p.finished {
                    p.record.fate = "lost".into();
                    p.record.left_at = Some(artifacts::now_rfc3339());
                    p.users = 0;
                }
            }
        }
    }

    /// Workers that can take users: connected and not missing.
    fn active_workers(&self) -> Vec<u32> {
        self.workers
            .iter()
            .filter(|(_, s)| s.missing_since.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Recomputes the plan over the active workers and sends changed assignments.
    fn rebalance(&mut self) {
        let active = self.active_workers();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if !matches!(run.state, RunState::Spawning | RunState::Running) {
            return;
        }
        let enlisted: Vec<u32> = active
            .into_iter()
            .filter(|id| run.participants.contains_key(id))
            .collect();
        let per_class = plan::users_per_class(&run.class_weights, run.users_target);
        let shares = plan::split(&per_class, enlisted.len());
        let rate = plan::split_rate(run.spawn_rate, enlisted.len());
        for (id, share) in enlisted.iter().zip(shares) {
            let Some(p) = run.participants.get_mut(id) else {
                continue;
            };
            if p.assigned == share {
                continue;
            }
            p.assigned = share.clone();
            if let Some(slot) = self.workers.get(id) {
                let _ = slot.tx.try_send(ToWorker::Assign {
                    run_id: run.spec.run_id.clone(),
                    users: share.clone(),
                    spawn_rate: rate,
                });
            }
            run.dir.event(&format!(
                "assigned {} users to worker {} (#{id})",
                share.iter().sum::<u32>(),
                self.workers.get(id).map(|s| s.name.as_str()).unwrap_or("?")
            ));
        }
        // Missing workers keep no share; they get a fresh one if they come back.
        for (id, p) in run.participants.iter_mut() {
            if !enlisted.contains(id) {
                p.assigned.clear();
            }
        }
    }

    // ---------------------------------------------------------------- runs

    /// Objects of runs cut by an earlier process, or whose cleanup failed, may still be in
    /// the bucket: clean them up in the background (at start and before each run).
    fn retry_owed_cleanups(&self) {
        for dir in prepare::owed_cleanups(&self.config.state_dir, &self.config.target) {
            log::info!("cleaning up after earlier run {}", dir.display());
            tokio::spawn(prepare::cleanup_earlier_run(
                Arc::clone(&self.driver),
                dir,
                self.config.cleanup_timeout,
            ));
        }
    }

    fn start(
        &mut self,
        request: StartRequest,
        reply: oneshot::Sender<Result<RunStarted, ControlError>>,
    ) {
        if let Some(run) = &self.run {
            let _ = reply.send(Err(ControlError::Busy(format!(
                "run {} is {}; stop it first (stop-test) or wait for it to end",
                run.spec.run_id, run.state
            ))));
            return;
        }
        if self.pending.is_some() {
            let _ = reply.send(Err(ControlError::Busy(
                "another start is waiting for workers; wait for it or retry later".into(),
            )));
            return;
        }
        if let Err(e) = request.check() {
            let _ = reply.send(Err(e));
            return;
        }
        // Checked by StartRequest::check.
        let wait = crate::limits::WAIT_WORKERS
            .secs("wait_workers_s", request.wait_workers_s.unwrap_or(60.0))
            .unwrap_or(crate::limits::WAIT_WORKERS.max);
        self.pending = Some(PendingStart {
            request,
            deadline: Instant::now() + wait,
            reply,
        });
        self.check_pending();
    }

    /// Starts the pending run once enough workers are connected, or fails it at its deadline.
    fn check_pending(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let have = self.active_workers().len() as u32;
        let want = pending.request.expected_workers.unwrap_or(1).max(1);
        if have >= want {
            let result = self.begin_run(pending.request);
            let _ = pending.reply.send(result);
        } else if Instant::now() >= pending.deadline {
            let _ = pending.reply.send(Err(ControlError::Unavailable(format!(
                "expected {want} workers but {have} connected within {:.0}s; check that the worker units are \
                 running and can reach the coordinator, or start with fewer expected workers",
                pending.request.wait_workers_s.unwrap_or(60.0)
            ))));
        } else {
            self.pending = Some(pending);
        }
    }

    fn begin_run(&mut self, request: StartRequest) -> Result<RunStarted, ControlError> {
        let scenario = request
            .resolve_scenario()
            .map_err(|e| ControlError::BadRequest(e.to_string()))?;
        let duration = match &request.duration {
            Some(d) => {
                Some(duration::parse(d).map_err(|e| ControlError::BadRequest(e.to_string()))?)
            }
            None => None,
        };
        let run_id = match &request.run_id {
            Some(id) => id.clone(),
            None => new_run_id(),
        };
        let key_prefix =
            prepare::key_prefix(&run_id).map_err(|e| ControlError::BadRequest(e.to_string()))?;
        self.retry_owed_cleanups();
        let path = match self.config.run_dir_override.take() {
            Some(p) => p,
            None => self.config.state_dir.join(&run_id),
        };
        if path.join(artifacts::RUN_JSON).exists() {
            return Err(ControlError::BadRequest(format!(
                "{} already holds a run; choose another run id or directory",
                path.display()
            )));
        }
        let mut dir =
            RunDir::create(&path).map_err(|e| ControlError::Unavailable(e.to_string()))?;
        let seed = request.seed.unwrap_or_else(rand::random);
        let stop_timeout_s = request.stop_timeout_s.unwrap_or(30.0);
        let spec = Arc::new(RunSpec {
            run_id: run_id.clone(),
            scenario: scenario.clone(),
            seed,
            key_prefix,
            iterations: request.iterations,
            stop_timeout_s,
            // Set when load begins (see `prepared`), before any worker gets the spec.
            clock_origin_unix_us: 0,
        });
        let record = RunRecord {
            run_id: run_id.clone(),
            engine_version: crate::VERSION.to_string(),
            state: RunState::Preparing,
            reason: None,
            created_at: artifacts::now_rfc3339(),
            started_at: None,
            ended_at: None,
            parameters: RunParameters {
                scenario_source: request.scenario.clone(),
                users: request.users,
                spawn_rate: request.spawn_rate,
                duration_s: duration.map(|d| d.as_secs_f64()),
                iterations: request.iterations,
                expected_workers: request.expected_workers,
                stop_timeout_s,
            },
            scenario: scenario.clone(),
            seed,
            key_prefix: spec.key_prefix.clone(),
            target: self.config.target.clone(),
            prepare: None,
            cleanup: None,
            workers: Vec::new(),
            requests: 0,
            failures: 0,
            bytes: 0,
        };
        dir.write_json(artifacts::RUN_JSON, &record)
            .map_err(|e| ControlError::Unavailable(e.to_string()))?;
        dir.mark_latest();
        dir.event(&format!(
            "run {run_id} created: scenario {}, {} users at {}/s, duration {}",
            scenario.name,
            request.users,
            request.spawn_rate,
            duration
                .map(duration::format)
                .unwrap_or_else(|| "unlimited".into())
        ));
        dir.event("state preparing");
        log::info!(
            "run {run_id}: preparing (bucket {}, scenario {})",
            self.config.target.bucket,
            scenario.name
        );
        let run = Run {
            tasks: scenario.task_names(),
            class_weights: scenario.users.iter().map(|c| c.weight).collect(),
            spec: Arc::clone(&spec),
            record,
            dir,
            state: RunState::Preparing,
            outcome: RunState::Completed,
            stop_requested: false,
            load_started: None,
            load_ended: None,
            deadline: duration.map(|d| Instant::now() + d),
            stopping_since: None,
            cleaning: false,
            users_target: request.users,
            spawn_rate: request.spawn_rate,
            totals: StatsDelta::default(),
            seconds: SecondAssembler::new(),
            late_requests: 0,
            rates: (0.0, 0.0, 0.0),
            participants: BTreeMap::new(),
            ticks: 0,
            series: Vec::new(),
            hlog: None,
            origin_wall: std::time::SystemTime::now(),
        };
        let started = RunStarted {
            run_id: run_id.clone(),
            state: RunState::Preparing,
            run_dir: path.display().to_string(),
            workers: self.active_workers().len() as u32,
            scenario: scenario.name.clone(),
        };
        self.run = Some(run);
        let driver = Arc::clone(&self.driver);
        let events = self.events.clone();
        let target = self.config.target.clone();
        tokio::spawn(async move {
            let result = prepare::prepare(&*driver, &spec, &target).await;
            let _ = events
                .send(Event::Prepared(spec.run_id.clone(), result))
                .await;
        });
        Ok(started)
    }

    fn prepared(&mut self, run_id: &str, result: Result<PrepareReport, prepare::PrepareError>) {
        let Some(run) = self.run.as_mut().filter(|r| r.spec.run_id == run_id) else {
            return;
        };
        match result {
            Err(failure) => {
                let reason = failure.reason;
                log::error!("run {run_id} failed while preparing: {reason}");
                run.dir.event(&format!("preparing failed: {reason}"));
                run.outcome = RunState::Failed;
                run.record.reason = Some(reason);
                if failure.may_have_written {
                    // Prefill may have written some objects: clean up as usual.
                    self.start_cleanup();
                } else {
                    // Nothing was written, so nothing is owed: not cleaning up is the truth,
                    // and a target that refused the bucket check would refuse cleanup too.
                    run.dir
                        .event("nothing was written before the failure: no cleanup needed");
                    let report = CleanupReport {
                        performed: false,
                        complete: true,
                        ..CleanupReport::default()
                    };
                    self.cleaned_up(run_id, report);
                }
            }
            Ok(report) => {
                run.dir.event(&format!(
                    "prepared: bucket {}, {} objects prefilled in {:.1}s",
                    report.bucket, report.prefilled_objects, report.seconds
                ));
                run.record.prepare = Some(report);
                if run.stop_requested {
                    self.start_cleanup();
                    return;
                }
                run.state = RunState::Spawning;
                run.load_started = Some(Instant::now());
                // The run's clock origin: second 0 begins now, on every worker alike.
                run.origin_wall = std::time::SystemTime::now();
                let mut spec = (*run.spec).clone();
                spec.clock_origin_unix_us = crate::cluster::protocol::unix_us(run.origin_wall);
                run.spec = Arc::new(spec);
                run.hlog = Some(HistogramLog::new(run.dir.path(), run.origin_wall));
                // The duration counts from the first user, not from preparation.
                if let Some(d) = run.record.parameters.duration_s {
                    // Checked when the run was started: at most limits::RUN_TIME.
                    let d = crate::limits::RUN_TIME
                        .secs("duration", d)
                        .unwrap_or(crate::limits::RUN_TIME.max);
                    run.deadline = Some(Instant::now() + d);
                }
                run.record.started_at = Some(artifacts::now_rfc3339());
                run.record.state = RunState::Spawning;
                let origin: chrono::DateTime<chrono::Utc> = run.origin_wall.into();
                run.dir.event(&format!(
                    "state spawning; second 0 of the run begins at {}",
                    origin.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                ));
                let _ = run.dir.write_json(artifacts::RUN_JSON, &run.record);
                log::info!("run {run_id}: spawning {} users", run.users_target);
                for id in self.active_workers() {
                    self.enlist(id);
                }
                self.rebalance();
            }
        }
    }

    fn stop(&mut self, abort: bool) -> Result<StopReply, ControlError> {
        if let Some(pending) = self.pending.take() {
            let _ = pending.reply.send(Err(ControlError::Unavailable(
                "the start was cancelled by a stop".into(),
            )));
        }
        let Some(run) = self.run.as_mut() else {
            let last = self
                .last
                .as_ref()
                .map(|l| format!("; the last run {} ended {}", l.run_id, l.state))
                .unwrap_or_default();
            return Err(ControlError::NotFound(format!("no test is running{last}")));
        };
        let run_id = run.spec.run_id.clone();
        match run.state {
            RunState::Preparing => {
                run.stop_requested = true;
                run.outcome = RunState::Stopped;
                run.dir.event("stop requested while preparing");
            }
            RunState::Spawning | RunState::Running => {
                self.begin_stop(RunState::Stopped, abort, "stop requested");
            }
            _ => {
                if abort {
                    let outcome = run.outcome;
                    self.begin_stop(outcome, true, "abort requested");
                }
            }
        }
        let state = self
            .run
            .as_ref()
            .map(|r| r.state)
            .unwrap_or(RunState::Stopping);
        Ok(StopReply { run_id, state })
    }

    /// Tells every participant to stop; cleanup follows once they have all finished.
    fn begin_stop(&mut self, outcome: RunState, abort: bool, why: &str) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        match run.state {
            RunState::Preparing => {
                run.stop_requested = true;
                run.outcome = outcome;
                return;
            }
            RunState::Stopping if !abort => return,
            RunState::Stopping => {}
            _ => {
                run.outcome = outcome;
                if outcome == RunState::Interrupted {
                    run.record.reason = Some(why.to_string());
                }
                run.state = RunState::Stopping;
                run.stopping_since = Some(Instant::now());
                run.record.state = RunState::Stopping;
                run.dir.event(&format!("state stopping ({why})"));
                let _ = run.dir.write_json(artifacts::RUN_JSON, &run.record);
                log::info!("run {}: stopping ({why})", run.spec.run_id);
            }
        }
        for (id, p) in run.participants.iter() {
            if p.finished {
                continue;
            }
            if let Some(slot) = self.workers.get(id) {
                let _ = slot.tx.try_send(ToWorker::Stop {
                    run_id: run.spec.run_id.clone(),
                    abort,
                });
            }
        }
        self.maybe_cleanup();
    }

    /// Starts cleanup once every participant still connected has finished.
    fn maybe_cleanup(&mut self) {
        let Some(run) = self.run.as_ref() else {
            return;
        };
        if run.state != RunState::Stopping || run.cleaning {
            return;
        }
        let waiting: Vec<u32> = run
            .participants
            .iter()
            .filter(|(id, p)| !p.finished && self.workers.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        // Checked when the run was started: at most limits::STOP_TIMEOUT.
        let grace = crate::limits::STOP_TIMEOUT
            .secs("stop_timeout_s", run.spec.stop_timeout_s)
            .unwrap_or(crate::limits::STOP_TIMEOUT.max)
            + FINISH_GRACE;
        let overdue = run.stopping_since.is_some_and(|t| t.elapsed() > grace);
        if waiting.is_empty() || overdue {
            if overdue && !waiting.is_empty() {
                if let Some(run) = self.run.as_mut() {
                    run.dir.event(&format!(
                        "workers {waiting:?} did not report their last stats within {:.0}s; their final second is missing",
                        grace.as_secs_f64()
                    ));
                }
            }
            self.start_cleanup();
        }
    }

    fn start_cleanup(&mut self) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if run.cleaning {
            return;
        }
        run.cleaning = true;
        run.state = RunState::Stopping;
        if run.load_started.is_some() && run.load_ended.is_none() {
            run.load_ended = Some(Instant::now());
        }
        // Every second up to the end of the load belongs in the history, ready or not.
        if let (Some(start), Some(end)) = (run.load_started, run.load_ended) {
            // The second the load ended in; when it is cut short and holds nothing, it is no
            // second of the run worth a row.
            let mut last = end.duration_since(start).as_secs();
            if last > 0 && run.seconds.last_pending().is_none_or(|p| p < last) {
                last -= 1;
            }
            let last = run.seconds.last_pending().map_or(last, |p| p.max(last));
            for (second, delta) in run.seconds.close_through(last) {
                Self::write_second(run, &self.workers, second, &delta);
            }
            if run.late_requests > 0 {
                run.dir.event(&format!(
                    "{} requests in all arrived after their second was written: stats_history.csv is short of them, the totals are not",
                    run.late_requests
                ));
            }
        }
        let spec = Arc::clone(&run.spec);
        let events = self.events.clone();
        if spec.scenario.keep {
            run.dir.event("keeping the run's objects (keep: true)");
            // Not counted: remaining_objects stays unknown (null).
            let report = CleanupReport {
                complete: true,
                ..CleanupReport::default()
            };
            tokio::spawn(async move {
                let _ = events
                    .send(Event::CleanedUp(spec.run_id.clone(), report))
                    .await;
            });
            return;
        }
        run.dir.event("cleaning up the run's objects");
        let driver = Arc::clone(&self.driver);
        let budget = self.config.cleanup_timeout;
        tokio::spawn(async move {
            let report = prepare::cleanup(&*driver, &spec.key_prefix, budget).await;
            let _ = events
                .send(Event::CleanedUp(spec.run_id.clone(), report))
                .await;
        });
    }

    fn cleaned_up(&mut self, run_id: &str, report: CleanupReport) {
        let Some(mut run) = self.run.take_if(|r| r.spec.run_id == run_id) else {
            return;
        };
        if report.performed {
            run.dir.event(&format!(
                "cleanup: {} objects deleted, {} uploads aborted, {} objects and {} uploads left, {} errors, {} passes",
                report.deleted_objects,
                report.aborted_uploads,
                prepare::shown(report.remaining_objects),
                prepare::shown(report.remaining_uploads),
                report.errors.len(),
                report.attempts
            ));
            for e in &report.errors {
                run.dir.event(&format!("cleanup error: {e}"));
            }
            if report.incomplete() {
                let message = prepare::incomplete_message(
                    run_id,
                    &run.spec.key_prefix,
                    &self.config.target.bucket,
                    &report,
                    None,
                );
                log::error!("run {run_id}: {message}");
                run.dir.event(&message);
                if run.record.reason.is_none() {
                    run.record.reason = Some(message);
                }
            }
        }
        run.record.cleanup = Some(report);
        let state = run.outcome;
        self.finalize(run, state);
    }

    /// Writes the final artifacts and makes the run the last one.
    fn finalize(&mut self, mut run: Run, state: RunState) {
        let seconds = load_seconds(&run);
        // Thresholds judge runs that ran their course (or were stopped), not broken ones.
        let crossed: Vec<String> = if matches!(state, RunState::Completed | RunState::Stopped) {
            let summary = run_summary(&run, seconds);
            run.spec
                .scenario
                .thresholds
                .iter()
                .flat_map(|t| crate::results::verdict::crossed(t, &summary))
                .collect()
        } else {
            Vec::new()
        };
        let state = if crossed.is_empty() {
            state
        } else {
            run.record.reason = Some(format!("thresholds crossed: {}", crossed.join("; ")));
            RunState::Failed
        };
        // A run that lost users did not run the load that was asked: it fails, whatever else.
        let deaths: Vec<String> =
            run.participants
                .values()
                .flat_map(|p| {
                    p.record.died_users.iter().map(|d| {
                        format!("user {} of worker {}: {}", d.user, p.record.name, d.message)
                    })
                })
                .collect();
        let state = if deaths.is_empty() {
            state
        } else {
            let first = deaths.first().cloned().unwrap_or_default();
            let died = format!(
                "{} virtual user{} died (an engine fault, counted as `internal` failures; see events.log), first {first}",
                deaths.len(),
                if deaths.len() == 1 { "" } else { "s" }
            );
            run.record.reason = Some(match run.record.reason.take() {
                Some(other) => format!("{died}; {other}"),
                None => died,
            });
            if matches!(state, RunState::Completed | RunState::Stopped) {
                RunState::Failed
            } else {
                state
            }
        };
        run.state = state;
        run.record.state = state;
        run.record.ended_at = Some(artifacts::now_rfc3339());
        let summary = run_summary(&run, seconds);
        sync_record(&mut run);
        if let Err(e) = run.dir.write_summary(&summary) {
            log::error!("{e}");
        }
        if let Err(e) = run.dir.write_json(artifacts::RUN_JSON, &run.record) {
            log::error!("{e}");
        }
        let reason = run
            .record
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        run.dir.event(&format!("state {state}{reason}"));
        crate::present::report::write_logged(run.dir.path());
        log::info!(
            "run {}: {state}, {} requests, {} failures{reason}",
            run.spec.run_id,
            run.record.requests,
            run.record.failures
        );
        self.last = Some(LastRun {
            totals: run.totals.clone(),
            tasks: run.tasks.clone(),
            series: std::mem::take(&mut run.series),
            run_id: run.spec.run_id.clone(),
            scenario: run.spec.scenario.name.clone(),
            state,
            reason: run.record.reason.clone(),
            elapsed_s: seconds,
            users: run.users_target,
            requests: run.record.requests,
            failures: run.record.failures,
            bytes: run.record.bytes,
            run_dir: run.dir.path().display().to_string(),
        });
    }

    // ---------------------------------------------------------------- time

    fn tick(&mut self) {
        let now = Instant::now();
        // Liveness.
        let mut changed = false;
        let ids: Vec<u32> = self.workers.keys().copied().collect();
        for id in ids {
            let Some(slot) = self.workers.get_mut(&id) else {
                continue;
            };
            let _ = slot.tx.try_send(ToWorker::Heartbeat);
            match slot.missing_since {
                None if now.duration_since(slot.last_seen) > MISSING_AFTER => {
                    slot.missing_since = Some(now);
                    let why = format!(
                        "worker {} (#{id}) missing: silent for {}s",
                        slot.name,
                        MISSING_AFTER.as_secs()
                    );
                    log::warn!("{why}");
                    if let Some(run) = self.run.as_mut() {
                        run.dir.event(&why);
                        if let Some(p) = run.participants.get_mut(&id) {
                            p.record.missing_events += 1;
                            p.users = 0;
                        }
                    }
                    changed = true;
                }
                Some(since) if now.duration_since(since) > DROP_AFTER => {
                    let name = slot.name.clone();
                    self.remove_worker(
                        id,
                        &format!(
                            "worker {name} (#{id}) dropped: missing for {}s",
                            DROP_AFTER.as_secs()
                        ),
                    );
                    changed = true;
                }
                _ => {}
            }
        }
        if changed {
            self.rebalance();
        }
        self.check_pending();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        run.ticks += 1;
        if run.load_started.is_some() && !run.cleaning {
            self.close_seconds();
        }
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if run.load_started.is_some() && !run.cleaning && run.ticks % SUMMARY_EVERY == 0 {
            let summary = run_summary(run, load_seconds(run));
            if let Err(e) = run.dir.write_summary(&summary) {
                log::warn!("{e}");
            }
            // Keep run.json's per-worker totals current, so a run cut by a crash keeps them.
            sync_record(run);
            if let Err(e) = run.dir.write_json(artifacts::RUN_JSON, &run.record) {
                log::warn!("{e}");
            }
        }
        let running_users: u32 = run.participants.values().map(|p| p.users).sum();
        let active_participants: Vec<&Participant> = run
            .participants
            .iter()
            .filter(|(id, _)| {
                self.workers
                    .get(id)
                    .is_some_and(|s| s.missing_since.is_none())
            })
            .map(|(_, p)| p)
            .collect();
        let all_done = run.spec.iterations.is_some()
            && !active_participants.is_empty()
            && active_participants.iter().all(|p| p.done);
        match run.state {
            RunState::Spawning if running_users >= run.users_target || all_done => {
                run.state = RunState::Running;
                run.record.state = RunState::Running;
                run.dir
                    .event(&format!("state running: {running_users} users"));
                let _ = run.dir.write_json(artifacts::RUN_JSON, &run.record);
            }
            _ => {}
        }
        let expired = run.deadline.is_some_and(|d| now >= d);
        if matches!(run.state, RunState::Spawning | RunState::Running) {
            if expired {
                self.begin_stop(RunState::Completed, false, "duration reached");
            } else if all_done {
                self.begin_stop(RunState::Completed, false, "all users ran their iterations");
            }
        } else if run.state == RunState::Stopping {
            self.maybe_cleanup();
        }
    }

    /// Writes every second of the run that is ready: each live participant has sent all of
    /// it, or the grace period after its end has passed.
    fn close_seconds(&mut self) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let Some(start) = run.load_started else {
            return;
        };
        if run.cleaning {
            return;
        }
        let waiting_for = run
            .participants
            .iter()
            .filter(|(id, p)| {
                !p.finished
                    && self
                        .workers
                        .get(id)
                        .is_some_and(|s| s.missing_since.is_none())
            })
            .map(|(id, _)| id);
        for (second, delta) in run
            .seconds
            .close_ready(waiting_for, start.elapsed(), SECOND_GRACE)
        {
            Self::write_second(run, &self.workers, second, &delta);
        }
    }

    /// Writes second `second` of the run: its history rows, its histograms, its point of the
    /// live series, and the rates shown in status. Its timestamp is the Unix second in which
    /// it ends, so consecutive seconds have consecutive timestamps. Its rates are what
    /// completed in it: a run's last second, cut short by the run's end, is not stretched into
    /// a rate over the fraction of it that ran (a few requests in 10 ms are not 300/s).
    fn write_second(run: &mut Run, workers: &BTreeMap<u32, Slot>, second: u64, delta: &StatsDelta) {
        let begins = run.origin_wall + Duration::from_secs(second);
        let nominal_end = begins + Duration::from_secs(1);
        // The interval the histograms cover: the last second may be cut short by the end.
        let span = match (run.load_started, run.load_ended) {
            (Some(a), Some(b)) => b
                .duration_since(a)
                .saturating_sub(Duration::from_secs(second))
                .min(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        };
        let unix_end = nominal_end
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        run.rates = (
            delta.requests() as f64,
            delta.failures() as f64,
            delta.bytes() as f64 / 1e6,
        );
        let users: u32 = run
            .participants
            .iter()
            .filter(|(id, _)| workers.contains_key(id))
            .map(|(_, p)| p.users)
            .sum();
        if let Err(e) = run
            .dir
            .append_history(unix_end, users, delta, &run.totals, &run.tasks)
        {
            log::warn!("{e}");
        }
        if let Some(hlog) = run.hlog.as_mut() {
            if let Err(e) = hlog.append(delta, begins, span) {
                log::warn!("cannot append to {}: {e}", crate::results::hlog::HLOG);
            }
        }
        run.series
            .push(SeriesPoint::new(unix_end, users, delta, 1.0));
    }

    // ---------------------------------------------------------------- status

    fn current_status(&self) -> Status {
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
        if let Some(run) = &self.run {
            status.state = run.state;
            status.run_id = Some(run.spec.run_id.clone());
            status.scenario = Some(run.spec.scenario.name.clone());
            status.elapsed_s = run
                .load_started
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            status.duration_s = run.record.parameters.duration_s;
            status.users_target = run.users_target;
            status.users_running = run
                .participants
                .iter()
                .filter(|(id, _)| self.workers.contains_key(id))
                .map(|(_, p)| p.users)
                .sum();
            status.users_per_worker = per_worker;
            (
                status.current_rps,
                status.current_failures_per_s,
                status.current_mb_per_s,
            ) = run.rates;
            status.requests = run.totals.requests();
            status.failures = run.totals.failures();
            status.bytes = run.totals.bytes();
            status.reason = run.record.reason.clone();
            status.run_dir = Some(run.dir.path().display().to_string());
        } else {
            status.users_per_worker = per_worker;
        }
        status
    }

    fn publish(&self) {
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

/// Copies the run's live per-worker records and totals into what run.json records.
fn sync_record(run: &mut Run) {
    run.record.workers = run
        .participants
        .values()
        .map(|p| p.record.clone())
        .collect();
    run.record.requests = run.totals.requests();
    run.record.failures = run.totals.failures();
    run.record.bytes = run.totals.bytes();
}

fn load_seconds(run: &Run) -> f64 {
    match (run.load_started, run.load_ended) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        (Some(a), None) => a.elapsed().as_secs_f64(),
        _ => 0.0,
    }
}

fn run_summary(run: &Run, seconds: f64) -> Summary {
    Summary::new(
        &run.spec.run_id,
        run.state,
        &run.spec.scenario.name,
        run.users_target,
        seconds,
        &run.totals,
        &run.tasks,
    )
}

fn idle_status(last: Option<&LastRun>) -> Status {
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

/// A time-sortable run id: `20261122T101500Z-3f9c2a`.
pub fn new_run_id() -> String {
    format!(
        "{}-{:06x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// Marks runs a previous coordinator left active as `interrupted`; returns the newest run and
/// the directories of the runs it marked.
fn recover_interrupted(state_dir: &Path) -> (Option<LastRun>, Vec<PathBuf>) {
    let mut newest: Option<LastRun> = None;
    let mut interrupted = Vec::new();
    for dir in run_dirs(state_dir) {
        let Ok(mut record) = artifacts::read_record(&dir) else {
            continue;
        };
        if record.state.is_active() {
            let was = record.state;
            record.state = RunState::Interrupted;
            record.reason = Some(format!(
                "the coordinator stopped while the run was {was}; results up to then are kept"
            ));
            record.ended_at = Some(artifacts::now_rfc3339());
            if let Ok(summary) = read_summary_at(&dir) {
                record.requests = summary.total.requests;
                record.failures = summary.total.failures;
                record.bytes = summary.total.bytes;
            }
            if let Ok(mut rd) = RunDir::create(&dir) {
                rd.event(&format!(
                    "state interrupted (coordinator restarted while {was})"
                ));
                let _ = rd.write_json(artifacts::RUN_JSON, &record);
                if let Ok(mut summary) = read_summary_at(&dir) {
                    summary.state = RunState::Interrupted;
                    let _ = rd.write_summary(&summary);
                }
                crate::present::report::write_logged(&dir);
            }
            log::warn!(
                "run {} was cut by a coordinator restart: marked interrupted",
                record.run_id
            );
            interrupted.push(dir.clone());
        }
        let summary = read_summary_at(&dir).ok();
        let candidate = LastRun {
            totals: StatsDelta::default(),
            tasks: record.scenario.task_names(),
            series: Vec::new(),
            run_id: record.run_id.clone(),
            scenario: record.scenario.name.clone(),
            state: record.state,
            reason: record.reason.clone(),
            elapsed_s: summary.as_ref().map(|s| s.duration_s).unwrap_or(0.0),
            users: record.parameters.users,
            requests: summary
                .as_ref()
                .map(|s| s.total.requests)
                .unwrap_or(record.requests),
            failures: summary
                .as_ref()
                .map(|s| s.total.failures)
                .unwrap_or(record.failures),
            bytes: summary
                .as_ref()
                .map(|s| s.total.bytes)
                .unwrap_or(record.bytes),
            run_dir: dir.display().to_string(),
        };
        if newest.as_ref().is_none_or(|n| candidate.run_id > n.run_id) {
            newest = Some(candidate);
        }
    }
    (newest, interrupted)
}

fn run_dirs(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| p.join(artifacts::RUN_JSON).is_file())
        .collect()
}

fn list_runs(state_dir: &Path) -> Vec<RunListing> {
    let mut out: Vec<RunListing> = run_dirs(state_dir)
        .into_iter()
        .filter_map(|dir| artifacts::read_record(&dir).ok())
        .map(|r| RunListing {
            run_id: r.run_id,
            state: r.state,
            scenario: r.scenario.name,
            created_at: r.created_at,
            ended_at: r.ended_at,
            requests: r.requests,
            failures: r.failures,
        })
        .collect();
    out.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    out
}

fn read_summary_at(dir: &Path) -> Result<Summary, String> {
    let p = dir.join(artifacts::SUMMARY_JSON);
    let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

fn read_summary(state_dir: &Path, run_id: &str) -> Result<Summary, ControlError> {
    if run_id.contains('/') || run_id.starts_with('.') {
        return Err(ControlError::BadRequest(format!(
            "'{run_id}' is not a run id"
        )));
    }
    let dir = state_dir.join(run_id);
    if !dir.join(artifacts::RUN_JSON).is_file() {
        return Err(ControlError::NotFound(format!(
            "no run '{run_id}' in {}; list runs to see the ids",
            state_dir.display()
        )));
    }
    read_summary_at(&dir).map_err(|e| {
        ControlError::NotFound(format!(
            "run '{run_id}' has no summary yet ({e}); it may still be preparing"
        ))
    })
}
