//! The coordinator's actor: one task owns all state and handles events one at a time, so there
//! are no locks and every transition is in one place. This file routes events and drives a
//! run through its states (preparing → spawning → running → stopping → ended); the worker hub
//! is in `workers.rs`, the one-second clock in `clock.rs`, status in `status.rs`, one run's
//! data in `run.rs`.

use super::prepare;
use super::run::Run;
use super::start_spec::StartSpec;
use super::status::LastRun;
use super::{new_run_id, CoordinatorConfig, Event, MetricsSnapshot, SeriesReply, FINISH_GRACE};
use crate::cluster::protocol::{FromWorker, ToWorker};
use crate::control::{ControlError, RunStarted, RunState, Status, StopReply};
use crate::load::driver::Driver;
use crate::load::stats::StatsDelta;
use crate::results::artifacts::{CleanupReport, PrepareReport};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{interval, Instant, MissedTickBehavior};

/// A connected worker.
pub(super) struct Slot {
    /// The name it gave in `Hello` (its unit name); a reconnect under it replaces the slot.
    pub name: String,
    /// Messages to it.
    pub tx: mpsc::Sender<ToWorker>,
    /// When it last sent anything.
    pub last_seen: Instant,
    /// Since when it has been silent longer than `MISSING_AFTER` (its users go to others).
    pub missing_since: Option<Instant>,
    /// Users it reported running in its last message.
    pub users: u32,
}

/// A start waiting for workers, already checked and resolved.
pub(super) struct PendingStart {
    /// The request as parsed once; the run is made from this, not from the request's text.
    pub spec: StartSpec,
    /// When it gives up waiting.
    pub deadline: Instant,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<RunStarted, ControlError>>,
}

pub(super) struct Actor<D> {
    /// Prepares the bucket, prefills and cleans up.
    pub driver: Arc<D>,
    pub config: CoordinatorConfig,
    /// For tasks it spawns (preparation, cleanup, worker links) to report back.
    pub events: mpsc::Sender<Event>,
    /// Where status is published.
    pub status: watch::Sender<Status>,
    /// Workers attached to the hub, by id.
    pub workers: BTreeMap<u32, Slot>,
    /// The id the next worker to attach gets (ids are never reused).
    pub next_worker_id: u32,
    /// The active run, from start until its artifacts are final.
    pub run: Option<Run>,
    /// The last run that ended (or the newest found on disk).
    pub last: Option<LastRun>,
    /// A start waiting for enough workers.
    pub pending: Option<PendingStart>,
}

impl<D: Driver> Actor<D> {
    pub(super) async fn run(
        mut self,
        mut control: mpsc::Receiver<Event>,
        mut rx: mpsc::Receiver<Event>,
    ) {
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
                .filter(|r| r.is_loading())
                .and_then(|r| r.deadline);
            let next_stage = self.run.as_ref().and_then(|r| r.next_stage_at());
            enum Step {
                Deadline,
                Stage,
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
                _ = async { tokio::time::sleep_until(next_stage.unwrap_or_else(Instant::now)).await }, if next_stage.is_some() => Step::Stage,
                _ = tick.tick() => Step::Tick,
                event = rx.recv() => match event {
                    Some(e) => Step::Event(e),
                    None => break,
                },
            };
            match step {
                Step::Deadline => self.begin_stop(RunState::Completed, false, "duration reached"),
                Step::Stage => {
                    if let Some(run) = self.run.as_mut() {
                        run.enter_next_stage();
                    }
                    self.rebalance();
                }
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
            Event::Start(request, reply) => match StartSpec::from_request(&request) {
                Ok(spec) => self.start(spec, reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
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
            Event::SharedChecked(run_id, report) => self.part_checked(&run_id, None, &report),
            Event::Shutdown(_) => {}
        }
    }

    // ---------------------------------------------------------------- starting

    /// Objects of runs cut by an earlier process, or whose cleanup failed, may still be in
    /// the bucket: clean them up in the background (at start and before each run).
    pub(super) fn retry_owed_cleanups(&self) {
        for dir in prepare::owed_cleanups(&self.config.state_dir, &self.config.target) {
            log::info!("cleaning up after earlier run {}", dir.display());
            tokio::spawn(prepare::cleanup_earlier_run(
                Arc::clone(&self.driver),
                dir,
                self.config.cleanup_timeout,
            ));
        }
    }

    /// Queues a checked start until its workers are there.
    fn start(&mut self, spec: StartSpec, reply: oneshot::Sender<Result<RunStarted, ControlError>>) {
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
        if let Some(problem) = prepare::target_problem(&spec.scenario.scenario, &self.config.target)
        {
            let _ = reply.send(Err(ControlError::BadRequest(problem)));
            return;
        }
        self.pending = Some(PendingStart {
            deadline: Instant::now() + spec.wait_workers,
            spec,
            reply,
        });
        self.check_pending();
    }

    /// Starts the pending run once enough workers are connected, or fails it at its deadline.
    pub(super) fn check_pending(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let have = self.active_workers().len() as u32;
        let want = pending.spec.expected_workers;
        if have >= want {
            let result = self.begin_run(pending.spec);
            let _ = pending.reply.send(result);
        } else if Instant::now() >= pending.deadline {
            let _ = pending.reply.send(Err(ControlError::Unavailable(format!(
                "expected {want} workers but {have} connected within {:.0}s; check that the worker units are \
                 running and can reach the coordinator, or start with fewer expected workers",
                pending.spec.wait_workers.as_secs_f64()
            ))));
        } else {
            self.pending = Some(pending);
        }
    }

    fn begin_run(&mut self, start: StartSpec) -> Result<RunStarted, ControlError> {
        let run_id = start.run_id.clone().unwrap_or_else(new_run_id);
        self.retry_owed_cleanups();
        let path = match self.config.run_dir_override.take() {
            Some(p) => p,
            None => self.config.state_dir.join(&run_id),
        };
        let run = Run::create(&start, run_id.clone(), &path, &self.config.target)?;
        log::info!(
            "run {run_id}: preparing (bucket {}, scenario {})",
            self.config.target.bucket,
            run.spec.scenario.name
        );
        let started = RunStarted {
            run_id,
            state: RunState::Preparing,
            run_dir: path.display().to_string(),
            workers: self.active_workers().len() as u32,
            scenario: run.spec.scenario.name.clone(),
        };
        let spec = Arc::clone(&run.spec);
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
        let Some(run) = self.run.as_mut().filter(|r| r.run_id() == run_id) else {
            return;
        };
        match result {
            Err(failure) => {
                let reason = failure.reason;
                log::error!("run {run_id} failed while preparing: {reason}");
                run.files.event(&format!("preparing failed: {reason}"));
                run.outcome = RunState::Failed;
                run.record.reason = Some(reason);
                if failure.may_have_written {
                    // Prefill may have written some objects: clean up as usual.
                    self.start_cleanup();
                } else {
                    // Nothing was written, so nothing is owed: not cleaning up is the truth,
                    // and a target that refused the bucket check would refuse cleanup too.
                    run.files
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
                run.files.event(&format!(
                    "prepared: bucket {}, {} objects prefilled in {:.1}s",
                    report.bucket, report.prefilled_objects, report.seconds
                ));
                run.record.prepare = Some(report);
                if run.stop_requested {
                    self.start_cleanup();
                    return;
                }
                // The run's clock origin: second 0 begins now, on every worker alike.
                run.begin_load(Instant::now(), std::time::SystemTime::now());
                log::info!("run {run_id}: spawning {} users", run.users_target);
                for id in self.active_workers() {
                    self.enlist(id);
                }
                self.rebalance();
            }
        }
    }

    // ---------------------------------------------------------------- stopping

    pub(super) fn stop(&mut self, abort: bool) -> Result<StopReply, ControlError> {
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
                run.files.event("stop requested while preparing");
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
    pub(super) fn begin_stop(&mut self, outcome: RunState, abort: bool, why: &str) {
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
                run.files.event(&format!("state stopping ({why})"));
                run.files.write_record(&run.record);
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
    pub(super) fn maybe_cleanup(&mut self) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if run.state != RunState::Stopping || run.cleaning {
            return;
        }
        if run.checks.is_some() {
            self.finish_checks_when_done();
            return;
        }
        let waiting: Vec<u32> = run
            .participants
            .iter()
            .filter(|(id, p)| !p.finished && self.workers.contains_key(id))
            .map(|(id, _)| *id)
            .collect();
        let grace = run.stop_timeout + FINISH_GRACE;
        let overdue = run.stopping_since.is_some_and(|t| t.elapsed() > grace);
        if waiting.is_empty() || overdue {
            if overdue && !waiting.is_empty() {
                run.files.event(&format!(
                    "workers {waiting:?} did not report their last stats within {:.0}s; their final second is missing",
                    grace.as_secs_f64()
                ));
            }
            self.after_load();
        }
    }

    // ---------------------------------------------------------------- post-run checks

    /// Load is over: the post-run checks when the scenario asks for them and load ran (not
    /// when the coordinator is shutting down), then cleanup.
    fn after_load(&mut self) {
        let attached = self.attached_workers();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let wanted = !run.spec.scenario.checks.is_empty()
            && run.load_started.is_some()
            && run.outcome != RunState::Interrupted
            && run.checks_report.is_none();
        if !wanted {
            self.start_cleanup();
            return;
        }
        if run.checks.is_some() {
            self.finish_checks_when_done();
            return;
        }
        // The load's time and seconds end here; the checks' time is reported apart.
        run.close_all(&attached, Instant::now());
        let checks = run.spec.scenario.checks.clone();
        let mut phase = super::run::ChecksPhase {
            waiting: Default::default(),
            shared_pending: true,
            report: crate::load::audit::ChecksReport::empty(&checks),
            started: Instant::now(),
        };
        for (id, p) in &run.participants {
            match self.workers.get(id) {
                Some(slot) if p.finished => {
                    let _ = slot.tx.try_send(ToWorker::Audit {
                        run_id: run.spec.run_id.clone(),
                    });
                    phase.waiting.insert(*id);
                }
                _ => phase.report.incomplete.push(format!(
                    "worker {} (#{id}): {} before its audit",
                    p.record.name,
                    if p.finished {
                        "disconnected"
                    } else {
                        "did not finish its load"
                    }
                )),
            }
        }
        run.files.event(&format!(
            "post-run checks ({}) of {} workers' objects and the prefilled pool",
            checks
                .iter()
                .map(|c| format!("{c:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(", "),
            phase.waiting.len()
        ));
        log::info!("run {}: post-run checks", run.spec.run_id);
        run.checks = Some(phase);
        let spec = Arc::clone(&run.spec);
        let driver = Arc::clone(&self.driver);
        let events = self.events.clone();
        tokio::spawn(async move {
            let program = crate::load::user::Program::new(&spec.scenario);
            let set = crate::load::audit::AuditSet {
                prefix: spec.shared_prefix(),
                objects: (0..program.shared_objects())
                    .map(|i| {
                        let (key, seed, size) = program.shared_object(&spec, i);
                        crate::load::audit::Expected { key, seed, size }
                    })
                    .collect(),
                uncertain: Default::default(),
            };
            let report = crate::load::audit::audit(&*driver, &spec.scenario.checks, &set).await;
            let _ = events
                .send(Event::SharedChecked(spec.run_id.clone(), Box::new(report)))
                .await;
        });
    }

    /// One part of the run's audit reported: a worker's (`Some(id)`) or the prefilled pool's.
    pub(super) fn part_checked(
        &mut self,
        run_id: &str,
        worker: Option<u32>,
        report: &crate::load::audit::ChecksReport,
    ) {
        let Some(run) = self.run.as_mut().filter(|r| r.run_id() == run_id) else {
            return;
        };
        let Some(phase) = run.checks.as_mut() else {
            return;
        };
        let expected = match worker {
            Some(id) => phase.waiting.remove(&id),
            None => std::mem::replace(&mut phase.shared_pending, false),
        };
        if expected {
            phase.report.merge(report);
        }
        self.finish_checks_when_done();
    }

    /// Ends the checks once every part reported, a worker asked is gone, or they ran out of
    /// time (the cleanup budget): the parts that never reported are named as not audited.
    fn finish_checks_when_done(&mut self) {
        let budget = self.config.cleanup_timeout;
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let Some(phase) = run.checks.as_mut() else {
            return;
        };
        let gone: Vec<u32> = phase
            .waiting
            .iter()
            .copied()
            .filter(|id| !self.workers.contains_key(id))
            .collect();
        for id in gone {
            phase.waiting.remove(&id);
            phase.report.incomplete.push(format!(
                "worker #{id}: disconnected before reporting its audit"
            ));
        }
        if phase.started.elapsed() > budget {
            for id in std::mem::take(&mut phase.waiting) {
                phase.report.incomplete.push(format!(
                    "worker #{id}: no audit within {:.0}s",
                    budget.as_secs_f64()
                ));
            }
            if std::mem::replace(&mut phase.shared_pending, false) {
                phase.report.incomplete.push(format!(
                    "the prefilled pool: no audit within {:.0}s",
                    budget.as_secs_f64()
                ));
            }
        }
        if !phase.waiting.is_empty() || phase.shared_pending {
            return;
        }
        let Some(mut phase) = run.checks.take() else {
            return;
        };
        phase.report.seconds = phase.started.elapsed().as_secs_f64();
        let line = phase.report.line();
        log::info!("run {}: {line}", run.spec.run_id);
        run.files.event(&line);
        if let Some(why) = phase.report.failure() {
            log::error!("run {}: {why}", run.spec.run_id);
            run.files.event(&why);
        }
        run.checks_report = Some(phase.report);
        self.start_cleanup();
    }

    fn start_cleanup(&mut self) {
        let attached = self.attached_workers();
        let Some(run) = self.run.as_mut() else {
            return;
        };
        if run.cleaning {
            return;
        }
        run.cleaning = true;
        run.state = RunState::Stopping;
        run.close_all(&attached, Instant::now());
        let spec = Arc::clone(&run.spec);
        let events = self.events.clone();
        if spec.scenario.keep {
            run.files.event("keeping the run's objects (keep: true)");
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
        run.files.event("cleaning up the run's objects");
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
        let Some(mut run) = self.run.take_if(|r| r.run_id() == run_id) else {
            return;
        };
        if report.performed {
            run.files.event(&format!(
                "cleanup: {} objects deleted, {} uploads aborted, {} objects and {} uploads left, {} errors, {} passes",
                report.deleted_objects,
                report.aborted_uploads,
                prepare::shown(report.remaining_objects),
                prepare::shown(report.remaining_uploads),
                report.errors.len(),
                report.attempts
            ));
            for e in &report.errors {
                run.files.event(&format!("cleanup error: {e}"));
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
                run.files.event(&message);
                if run.record.reason.is_none() {
                    run.record.reason = Some(message);
                }
            }
        }
        run.record.cleanup = Some(report);
        let outcome = run.outcome;
        self.finalize(run, outcome);
    }

    /// Judges the run, writes its final artifacts and makes it the last one.
    fn finalize(&mut self, mut run: Run, outcome: RunState) {
        let state = run.verdict(outcome);
        run.finish(state);
        let reason = run
            .record
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        log::info!(
            "run {}: {state}, {} requests, {} failures{reason}",
            run.spec.run_id,
            run.record.requests,
            run.record.failures
        );
        self.last = Some(LastRun {
            elapsed_s: run.load_seconds(),
            totals: run.totals,
            tasks: run.tasks,
            series: run.series,
            run_id: run.spec.run_id.clone(),
            scenario: run.spec.scenario.name.clone(),
            state,
            reason: run.record.reason,
            users: run.users_target,
            requests: run.record.requests,
            failures: run.record.failures,
            bytes: run.record.bytes,
            run_dir: run.files.path().display().to_string(),
        });
    }
}
