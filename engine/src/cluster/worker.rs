//! The worker: runs the users the coordinator assigns and reports what they did.
//!
//! [`serve`] is one coordinator session over a [`Link`] — in-process channels in a standalone
//! run, a WebSocket for a worker daemon: the same code either way. It is a single task that
//! owns the run's users: it spawns them at the assigned rate, retires extras when the plan
//! shrinks, sends the stats of each second of the run just after it ends (seconds counted
//! from the run's clock origin, the same on every worker), and on `Stop` lets in-flight
//! requests finish (up to the run's stop timeout) before reporting the final delta and `Finished`. If the
//! link closes, the coordinator is gone: users are cut off and `serve` returns.

use crate::cluster::protocol::{FromWorker, RunSpec, SecondDelta, ToWorker, UserDeath};
use crate::load::audit::ChecksReport;
use crate::load::driver::Driver;
use crate::load::driver::{FailureKind, OpError};
use crate::load::stats::{Outcome, Recorder, StatsDelta};
use crate::load::user::{panic_message, Program, Progress, RunContext, User, UserEnd};
use futures::FutureExt as _;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// One end of a coordinator↔worker connection, as the worker sees it.
pub struct Link {
    pub tx: mpsc::Sender<FromWorker>,
    pub rx: mpsc::Receiver<ToWorker>,
}

/// Settings of a worker that do not come from the coordinator.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Where to write each run's local totals (`<run-id>.worker-<id>.json`), so what this worker
    /// executed can be compared with what the coordinator merged.
    pub totals_dir: Option<PathBuf>,
    /// This worker's name, kept with a run it is cut from (see [`crate::cluster::cut_run`]).
    pub name: Option<String>,
    /// The runtime users, the open-model scheduler, their requests and audits run on, apart
    /// from this loop's bookkeeping (stats messages, the coordinator, progress files): on one
    /// core, milliseconds of bookkeeping on the same runtime thread delayed every arrival due
    /// meanwhile, while the OS preempts a thread of its own (docs/benchmarks.md, "Session
    /// 24"). `None`: the runtime `serve` runs on.
    pub load_runtime: Option<tokio::runtime::Handle>,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The coordinator closed the link or stopped answering.
    CoordinatorLost,
    /// The worker was asked to shut down.
    Shutdown,
}

/// Totals a worker writes for each run it took part in.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkerTotals {
    pub run_id: String,
    pub worker_id: u32,
    pub last_seq: u64,
    pub stats: StatsDelta,
}

/// Time without any message after which the coordinator is considered gone.
const COORDINATOR_SILENCE: Duration = Duration::from_secs(10);

/// Serves one session with worker id `worker_id` until the link closes or `shutdown` fires.
pub async fn serve<D: Driver>(
    driver: Arc<D>,
    worker_id: u32,
    mut link: Link,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> SessionEnd {
    let mut run: Option<ActiveRun<D>> = None;
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    // The last finished run whose scenario has post-run checks, kept until the coordinator
    // asks for its audit (or the next run starts): its users' ledgers are in the context.
    let mut audit_of: Option<Arc<RunContext<D>>> = None;
    // The audit in progress: the run id and the task checking the objects.
    let mut auditing: Option<(String, tokio::task::JoinHandle<ChecksReport>)> = None;

    let end = loop {
        let report_at = run.as_ref().map(|r| r.next_report());
        let spawn_at = run.as_ref().and_then(|r| r.crew.next_spawn_at());
        let has_users = run.as_ref().is_some_and(|r| !r.crew.set.is_empty());
        let abort_at = run.as_ref().and_then(|r| r.abort_at);
        tokio::select! {
            _ = shutdown.cancelled() => break SessionEnd::Shutdown,
            msg = link.rx.recv() => {
                last_heard = Instant::now();
                match msg {
                    None => break SessionEnd::CoordinatorLost,
                    Some(ToWorker::Start { spec }) => {
                        if let Some(old) = run.take() {
                            log::warn!("run {} replaced by {} before it finished", old.spec.run_id, spec.run_id);
                            old.crew.cut_off().await;
                        }
                        log::info!("run {}: starting ({})", spec.run_id, spec.scenario.name);
                        audit_of = None;
                        run = Some(ActiveRun::new(
                            Arc::clone(&driver),
                            worker_id,
                            spec,
                            options.load_runtime.clone(),
                        ));
                    }
                    Some(ToWorker::Assign { run_id, users, spawn_rate, arrival }) => {
                        match run.as_mut() {
                            Some(r) if r.spec.run_id == run_id && r.abort_at.is_none() => {
                                log::info!("run {run_id}: assigned users {users:?} at {spawn_rate:.2}/s");
                                r.crew.assign(users, spawn_rate);
                                if let Some(share) = arrival {
                                    log::info!(
                                        "run {run_id}: assigned {:.3} arrivals/s, at most {} in flight",
                                        share.rate(),
                                        share.max_in_flight
                                    );
                                    r.crew.assign_arrivals(share, r.origin);
                                }
                            }
                            _ => log::debug!("ignoring assignment for run {run_id}"),
                        }
                    }
                    Some(ToWorker::Stop { run_id, abort }) => {
                        if let Some(r) = run.as_mut().filter(|r| r.spec.run_id == run_id) {
                            r.begin_stop(abort);
                        }
                    }
                    Some(ToWorker::Heartbeat) | Some(ToWorker::Welcome { .. }) => {}
                    Some(ToWorker::CutRunRecorded { run_id }) => {
                        if let Some(dir) = &options.totals_dir {
                            crate::cluster::cut_run::clear(dir, &run_id);
                        }
                    }
                    Some(ToWorker::Audit { run_id }) => {
                        match audit_of.take().filter(|ctx| ctx.spec.run_id == run_id) {
                            Some(ctx) => {
                                log::info!("run {run_id}: post-run checks of this worker's objects");
                                let audit = match &options.load_runtime {
                                    Some(load) => load.spawn(audit_part(ctx)),
                                    None => tokio::spawn(audit_part(ctx)),
                                };
                                auditing = Some((run_id, audit));
                            }
                            None => {
                                let report = ChecksReport {
                                    incomplete: vec![format!(
                                        "worker {worker_id}: it holds no record of run {run_id}"
                                    )],
                                    ..ChecksReport::default()
                                };
                                let msg = FromWorker::Checked { run_id, report: Box::new(report) };
                                if link.tx.send(msg).await.is_err() {
                                    break SessionEnd::CoordinatorLost;
                                }
                            }
                        }
                    }
                    Some(ToWorker::Refused { reason }) => {
                        log::error!("coordinator refused this worker: {reason}");
                        break SessionEnd::CoordinatorLost;
                    }
                }
            }
            _ = tick.tick() => {
                if last_heard.elapsed() > COORDINATOR_SILENCE {
                    log::warn!("no word from the coordinator for {}s", COORDINATOR_SILENCE.as_secs());
                    break SessionEnd::CoordinatorLost;
                }
                // During a run, the stats sent each second of the run say we are alive.
                if run.is_none() && link.tx.send(FromWorker::Heartbeat { users: 0 }).await.is_err() {
                    break SessionEnd::CoordinatorLost;
                }
            }
            _ = async { sleep_until(report_at.unwrap_or_else(Instant::now)).await }, if report_at.is_some() => {
                let Some(r) = run.as_mut() else { continue };
                let msg = r.stats_message(false);
                if link.tx.send(msg).await.is_err() {
                    break SessionEnd::CoordinatorLost;
                }
            }
            _ = async { sleep_until(spawn_at.unwrap_or_else(Instant::now)).await }, if spawn_at.is_some() => {
                if let Some(r) = run.as_mut() {
                    r.crew.spawn_due();
                }
            }
            Some(joined) = async { run.as_mut()?.crew.set.join_next().await }, if has_users => {
                if let Some(r) = run.as_mut() {
                    r.crew.reap(joined);
                }
            }
            report = async { (&mut auditing.as_mut()?.1).await.ok() }, if auditing.is_some() => {
                let Some((run_id, _)) = auditing.take() else { continue };
                let report = report.unwrap_or_else(|| ChecksReport {
                    incomplete: vec![format!("worker {worker_id}: its audit task failed")],
                    ..ChecksReport::default()
                });
                log::info!("run {run_id}: {}", report.line());
                let msg = FromWorker::Checked { run_id, report: Box::new(report) };
                if link.tx.send(msg).await.is_err() {
                    break SessionEnd::CoordinatorLost;
                }
            }
            _ = async { sleep_until(abort_at.unwrap_or_else(Instant::now)).await }, if abort_at.is_some() => {
                if let Some(r) = run.as_mut() {
                    r.crew.abort.cancel();
                }
            }
        }
        // A stopping run whose users have all ended reports its last delta and is done.
        if run
            .as_ref()
            .is_some_and(|r| r.abort_at.is_some() && r.crew.set.is_empty())
        {
            if let Some(mut r) = run.take() {
                let last = r.stats_message(true);
                let last_seq = r.seq;
                let finished = FromWorker::Finished {
                    run_id: r.spec.run_id.clone(),
                    last_seq,
                };
                r.write_totals(&options, worker_id);
                if r.crew.ctx.ledgers.is_some() {
                    audit_of = Some(Arc::clone(&r.crew.ctx));
                }
                log::info!(
                    "run {}: finished, {} requests",
                    r.spec.run_id,
                    r.totals.requests()
                );
                if link.tx.send(last).await.is_err() || link.tx.send(finished).await.is_err() {
                    break SessionEnd::CoordinatorLost;
                }
            }
        }
    };
    if let Some((_, task)) = auditing.take() {
        task.abort();
    }
    if let Some(r) = run.take() {
        log::warn!("run {}: cutting off users ({end:?})", r.spec.run_id);
        let users = r.crew.running();
        let ActiveRun {
            spec,
            crew,
            recorder,
            seq,
            totals,
            ..
        } = r;
        crew.cut_off().await;
        if end == SessionEnd::CoordinatorLost {
            keep_cut_run(&spec, &recorder, seq, totals, users, &options);
        }
    }
    end
}

/// Audits what the users of a finished run on this worker wrote (their ledgers are complete:
/// every user has ended).
async fn audit_part<D: Driver>(ctx: Arc<RunContext<D>>) -> ChecksReport {
    let ledgers = match &ctx.ledgers {
        Some(l) => std::mem::take(&mut *l.lock().unwrap_or_else(|p| p.into_inner())),
        None => Vec::new(),
    };
    let set = crate::load::user::worker_audit_set(&ctx.spec, ctx.worker_id, &ledgers);
    drop(ledgers);
    crate::load::audit::audit(&*ctx.driver, &ctx.spec.scenario.checks, &set).await
}

/// How long after a second of the run ends its stats are taken: outcomes are recorded the
/// moment their request completes, this only lets a user that just completed one get it in.
/// One recorded later still reaches the coordinator, under its own second, a second later.
const REPORT_LAG: Duration = Duration::from_millis(100);

/// Keeps what this worker knows of a run its coordinator was lost in, for the next one.
fn keep_cut_run(
    spec: &RunSpec,
    recorder: &Recorder,
    sent_stats: u64,
    mut totals: StatsDelta,
    users: u32,
    options: &WorkerOptions,
) {
    let Some(dir) = &options.totals_dir else {
        return;
    };
    totals.merge(&recorder.take());
    let cut = crate::cluster::protocol::CutRun {
        spec: spec.clone(),
        worker: options.name.clone().unwrap_or_default(),
        users,
        sent_stats,
        totals,
        cut_at: crate::results::artifacts::now_rfc3339(),
    };
    crate::cluster::cut_run::save(dir, &cut);
}

/// A run as one worker sees it.
struct ActiveRun<D> {
    spec: Arc<RunSpec>,
    crew: Crew<D>,
    recorder: Arc<Recorder>,
    /// The run's clock origin on this machine's monotonic clock.
    origin: Instant,
    /// Every second before this one has been reported.
    reported_through: u64,
    seq: u64,
    totals: StatsDelta,
    /// Set when stopping: when in-flight requests are cut off.
    abort_at: Option<Instant>,
}

impl<D: Driver> ActiveRun<D> {
    fn new(
        driver: Arc<D>,
        worker_id: u32,
        spec: RunSpec,
        load_runtime: Option<tokio::runtime::Handle>,
    ) -> ActiveRun<D> {
        let program = Arc::new(Program::new(&spec.scenario));
        let origin = Instant::from_std(
            spec.clock_origin_instant(std::time::Instant::now(), std::time::SystemTime::now()),
        );
        let recorder = Arc::new(
            Recorder::with_origin(program.task_names.clone(), origin.into_std())
                .with_endpoints(driver.endpoint_names())
                .with_buckets(driver.bucket_names()),
        );
        // A worker that joins mid-run has nothing to say about the seconds before it came.
        let reported_through = recorder.second_of(std::time::Instant::now());
        let spec = Arc::new(spec);
        let ctx = Arc::new(RunContext {
            driver,
            spec: Arc::clone(&spec),
            program: Arc::clone(&program),
            recorder: Arc::clone(&recorder),
            worker_id,
            test_panic_after: crate::load::user::test_panic_after_from_env(),
            ledgers: (!spec.scenario.checks.is_empty()).then(Default::default),
        });
        ActiveRun {
            crew: Crew::new(ctx, load_runtime),
            spec,
            recorder,
            origin,
            reported_through,
            seq: 0,
            totals: StatsDelta::default(),
            abort_at: None,
        }
    }

    /// When the next stats are due: just after the current second of the run ends.
    fn next_report(&self) -> Instant {
        self.origin
            .checked_add(Duration::from_secs(self.reported_through.saturating_add(1)) + REPORT_LAG)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
    }

    fn begin_stop(&mut self, abort: bool) {
        if self.abort_at.is_some() && !abort {
            return;
        }
        let grace = if abort {
            Duration::ZERO
        } else {
            // Checked against limits::STOP_TIMEOUT by the coordinator that sent the spec.
            crate::limits::STOP_TIMEOUT.within(self.spec.stop_timeout_s)
        };
        log::info!(
            "run {}: stopping {} users (in-flight requests get {:.1}s)",
            self.spec.run_id,
            self.crew.set.len(),
            grace.as_secs_f64()
        );
        self.crew.stop_all();
        self.abort_at = Some(Instant::now() + grace);
        if abort {
            self.crew.abort.cancel();
        }
    }

    /// The seconds that have ended (all of them when `last`: users are gone), per second.
    fn stats_message(&mut self, last: bool) -> FromWorker {
        let now = std::time::Instant::now();
        let through = if last {
            self.recorder.second_of(now) + 1
        } else {
            // The seconds that ended at least REPORT_LAG ago.
            self.recorder
                .second_of(now.checked_sub(REPORT_LAG).unwrap_or(now))
        }
        .max(self.reported_through);
        let seconds: Vec<SecondDelta> = self
            .recorder
            .take_before(if last { u64::MAX } else { through })
            .into_iter()
            .map(|(second, delta)| SecondDelta { second, delta })
            .collect();
        for s in &seconds {
            self.totals.merge(&s.delta);
        }
        self.reported_through = through;
        self.seq += 1;
        FromWorker::Stats {
            run_id: self.spec.run_id.clone(),
            seq: self.seq,
            users: self.crew.running(),
            done: self.crew.done(),
            seconds,
            complete_through: through,
            died: std::mem::take(&mut self.crew.died),
        }
    }

    fn write_totals(&self, options: &WorkerOptions, worker_id: u32) {
        let Some(dir) = &options.totals_dir else {
            return;
        };
        let totals = WorkerTotals {
            run_id: self.spec.run_id.clone(),
            worker_id,
            last_seq: self.seq,
            stats: self.totals.clone(),
        };
        let path = dir.join(format!("{}.worker-{worker_id}.json", self.spec.run_id));
        let written = std::fs::create_dir_all(dir).and_then(|_| {
            serde_json::to_vec_pretty(&totals)
                .map_err(std::io::Error::other)
                .and_then(|bytes| std::fs::write(&path, bytes))
        });
        if let Err(e) = written {
            log::warn!("could not write worker totals {}: {e}", path.display());
        }
    }
}

/// The message of the panic that killed a user's task (an engine fault, reported as such).
struct Panicked(String);

/// The id the open-model scheduler's task is reaped under (never a user's).
const ARRIVALS_ID: u64 = u64::MAX;

/// How a user's task ended: user id, class, its end or the panic that killed it, and what it
/// was doing.
type Ended = (u64, usize, Result<UserEnd, Panicked>, Arc<Progress>);

/// The users of one run on this worker.
struct Crew<D> {
    ctx: Arc<RunContext<D>>,
    /// Users wanted per class.
    targets: Vec<u32>,
    rate: f64,
    /// Live users per class, oldest first: (id, stop token).
    live: Vec<Vec<(u64, CancellationToken)>>,
    /// Users per class that ran all their iterations (they count towards the target).
    done: Vec<u32>,
    /// Users per class that died (panicked). They count towards the target: a dead user is
    /// not replaced, the run fails instead, so what it measured is not passed off as asked.
    dead: Vec<u32>,
    /// Deaths not yet reported to the coordinator.
    died: Vec<UserDeath>,
    /// Each user's end: how it ended, or the message of the panic that killed it.
    set: JoinSet<Ended>,
    /// An open-model run: where this worker's share of the arrivals goes (the scheduler runs
    /// in `set` as one more task, so a stop waits for its requests like for users').
    arrivals: Option<tokio::sync::watch::Sender<crate::load::arrivals::ArrivalShare>>,
    next_id: u64,
    /// Users earned at the spawn rate and not yet spawned, as of `last_credit` (a fraction is
    /// part of the next user), so each user starts when its turn comes: one every 1/rate s,
    /// not in batches that would keep pacing users in step.
    credit: f64,
    /// When `credit` was last brought up to date.
    last_credit: Instant,
    stop: CancellationToken,
    abort: CancellationToken,
    /// Where users and the scheduler run ([`WorkerOptions::load_runtime`]); `None`: here.
    load_runtime: Option<tokio::runtime::Handle>,
}

impl<D: Driver> Crew<D> {
    fn new(ctx: Arc<RunContext<D>>, load_runtime: Option<tokio::runtime::Handle>) -> Crew<D> {
        let classes = ctx.program.classes.len();
        Crew {
            load_runtime,
            ctx,
            targets: vec![0; classes],
            rate: 0.0,
            live: vec![Vec::new(); classes],
            done: vec![0; classes],
            dead: vec![0; classes],
            died: Vec::new(),
            set: JoinSet::new(),
            arrivals: None,
            next_id: 0,
            credit: 0.0,
            last_credit: Instant::now(),
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
        }
    }

    /// Spawns a user's (or the scheduler's) task into `set`, on the load runtime if any.
    fn spawn(&mut self, task: impl std::future::Future<Output = Ended> + Send + 'static) {
        match &self.load_runtime {
            Some(load) => self.set.spawn_on(task, load),
            None => self.set.spawn(task),
        };
    }

    fn running(&self) -> u32 {
        self.live.iter().map(|l| l.len() as u32).sum()
    }

    fn deficit(&self, class: usize) -> u32 {
        let have = self.live[class].len() as u32 + self.done[class] + self.dead[class];
        self.targets[class].saturating_sub(have)
    }

    fn wants_spawn(&self) -> bool {
        !self.stop.is_cancelled() && (0..self.targets.len()).any(|c| self.deficit(c) > 0)
    }

    /// Every assigned user was spawned and ran its iterations.
    fn done(&self) -> bool {
        self.ctx.spec.iterations.is_some()
            && self.targets.iter().sum::<u32>() > 0
            && !self.wants_spawn()
            && self.set.is_empty()
    }

    fn assign(&mut self, targets: Vec<u32>, rate: f64) {
        if targets.len() != self.targets.len() {
            log::warn!(
                "assignment names {} user classes, the scenario has {}; ignored",
                targets.len(),
                self.targets.len()
            );
            return;
        }
        let was_spawning = self.wants_spawn();
        self.targets = targets;
        self.rate = rate.max(0.0);
        // Retire the newest users of classes that now have too many.
        for class in 0..self.targets.len() {
            let want =
                self.targets[class].saturating_sub(self.done[class] + self.dead[class]) as usize;
            while self.live[class].len() > want {
                if let Some((_, token)) = self.live[class].pop() {
                    token.cancel();
                }
            }
        }
        if !was_spawning && self.wants_spawn() {
            // Start spawning now: one user at once, the rest at the rate.
            self.credit = 1.0;
            self.last_credit = Instant::now();
        }
    }

    /// Starts the open-model scheduler with `share`, or hands it a new share (a re-split).
    fn assign_arrivals(&mut self, share: crate::load::arrivals::ArrivalShare, origin: Instant) {
        if self.stop.is_cancelled() {
            return;
        }
        if let Some(tx) = &self.arrivals {
            tx.send_replace(share);
            return;
        }
        let (tx, rx) = tokio::sync::watch::channel(share);
        self.arrivals = Some(tx);
        let ctx = Arc::clone(&self.ctx);
        let (stop, abort) = (self.stop.child_token(), self.abort.clone());
        let progress = Arc::new(Progress::default());
        // Supervised like a user: a panic is caught and reported, and fails the run.
        self.spawn(async move {
            let ended = AssertUnwindSafe(crate::load::arrivals::run(ctx, rx, origin, stop, abort))
                .catch_unwind()
                .await
                .map_err(|payload| Panicked(panic_message(&*payload)));
            (ARRIVALS_ID, 0, ended, progress)
        });
    }

    /// When the next user is due at the spawn rate (`None`: none is wanted, or the rate is 0
    /// and the first user was spawned).
    fn next_spawn_at(&self) -> Option<Instant> {
        if !self.wants_spawn() {
            return None;
        }
        spawn_due_at(self.credit, self.last_credit, self.rate)
    }

    /// Spawns the users that are due at the spawn rate.
    fn spawn_due(&mut self) {
        let now = Instant::now();
        self.credit += now.duration_since(self.last_credit).as_secs_f64() * self.rate;
        self.last_credit = now;
        while self.credit >= 1.0 {
            // The class furthest below its share goes first, so classes ramp up together.
            let next = (0..self.targets.len())
                .filter(|&c| self.deficit(c) > 0)
                .max_by(|&a, &b| {
                    let fa = self.deficit(a) as f64 / self.targets[a].max(1) as f64;
                    let fb = self.deficit(b) as f64 / self.targets[b].max(1) as f64;
                    fa.partial_cmp(&fb).unwrap_or(std::cmp::Ordering::Equal)
                });
            let Some(class) = next else {
                self.credit = 0.0;
                return;
            };
            self.credit -= 1.0;
            let id = self.next_id;
            self.next_id += 1;
            let token = self.stop.child_token();
            let user = User::new(Arc::clone(&self.ctx), id, class);
            let abort = self.abort.clone();
            let user_stop = token.clone();
            let progress = Arc::new(Progress::default());
            // Supervised: a panic ends this user only, and is caught here to be reported.
            self.spawn(async move {
                let ended = AssertUnwindSafe(user.run(user_stop, abort, &progress))
                    .catch_unwind()
                    .await
                    .map_err(|payload| Panicked(panic_message(&*payload)));
                (id, class, ended, progress)
            });
            self.live[class].push((id, token));
        }
    }

    fn reap(&mut self, joined: Result<Ended, tokio::task::JoinError>) {
        match joined {
            Ok((id, class, end, progress)) => {
                let before = self.live[class].len();
                self.live[class].retain(|(uid, _)| *uid != id);
                let was_live = self.live[class].len() < before;
                match end {
                    Ok(UserEnd::Done) if was_live => self.done[class] += 1,
                    Ok(_) => {}
                    Err(Panicked(message)) => self.bury(id, class, message, &progress, was_live),
                }
            }
            // Users' panics are caught inside their task; this is a cancelled task.
            Err(e) => log::error!("a virtual user task ended abnormally: {e}"),
        }
    }

    /// Records user `id`'s death: an `internal` failure of the task it was on (timed from that
    /// task's start), a death to report, and a place that will not be refilled.
    fn bury(
        &mut self,
        id: u64,
        class: usize,
        message: String,
        progress: &Progress,
        was_live: bool,
    ) {
        let program = &self.ctx.program;
        let current = progress.current();
        let stat = current
            .map(|(stat, _)| stat)
            .or_else(|| program.classes[class].first_stat());
        let task = stat.and_then(|s| program.task_names.get(s).cloned());
        log::error!(
            "run {}: user {id} died{}: {message}",
            self.ctx.spec.run_id,
            task.as_ref()
                .map(|t| format!(" during task {t}"))
                .unwrap_or_default()
        );
        if let Some(stat) = stat {
            let outcome = Outcome::Done {
                latency: current.map(|(_, d)| d).unwrap_or_default(),
                ttfb: None,
                bytes: 0,
                error: Some(OpError::new(
                    FailureKind::Internal,
                    format!("user {id} died: {message}"),
                )),
                waited: None,
            };
            self.ctx.recorder.record(id, stat, &outcome);
        }
        if was_live {
            self.dead[class] += 1;
        }
        self.died.push(UserDeath {
            user: id,
            class,
            task,
            message,
        });
    }

    fn stop_all(&mut self) {
        self.stop.cancel();
        for l in &mut self.live {
            l.clear();
        }
        self.targets.iter_mut().for_each(|t| *t = 0);
    }

    /// Ends every user now, without waiting for in-flight requests.
    async fn cut_off(mut self) {
        self.stop.cancel();
        self.abort.cancel();
        while self.set.join_next().await.is_some() {}
    }
}

/// When the next user is due, `credit` users having been earned by `last_credit` at `rate`
/// users a second: at once when a whole user is earned, else when the rest of one is.
/// `None` when none ever will be (rate 0).
fn spawn_due_at(credit: f64, last_credit: Instant, rate: f64) -> Option<Instant> {
    if credit >= 1.0 {
        return Some(last_credit);
    }
    if rate.is_nan() || rate <= 0.0 {
        return None;
    }
    // At most a second ahead: a slower rate is looked at again then (the credit is brought
    // up to date on each look), and a delay too large for a Duration never arises.
    let wait = Duration::try_from_secs_f64((1.0 - credit) / rate).unwrap_or(Duration::MAX);
    Some(last_credit + wait.min(Duration::from_secs(1)))
}

#[cfg(test)]
mod spawn_tests {
    use super::*;

    #[test]
    fn users_are_due_one_every_one_over_the_rate() {
        let t = Instant::now();
        assert_eq!(
            spawn_due_at(1.0, t, 0.0),
            Some(t),
            "a whole user earned: now"
        );
        assert_eq!(spawn_due_at(2.5, t, 10.0), Some(t));
        assert_eq!(
            spawn_due_at(0.5, t, 1000.0),
            Some(t + std::time::Duration::from_micros(500))
        );
        assert_eq!(
            spawn_due_at(0.0, t, 100.0),
            Some(t + std::time::Duration::from_millis(10))
        );
        assert_eq!(spawn_due_at(0.0, t, 0.0), None, "rate 0: no more users");
        // A slow rate is re-checked within a second.
        assert_eq!(
            spawn_due_at(0.0, t, 0.01),
            Some(t + std::time::Duration::from_secs(1))
        );
    }
}
