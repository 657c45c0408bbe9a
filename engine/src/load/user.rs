//! Virtual users: tokio tasks that pick tasks by weight, issue them through the driver,
//! record the outcome and wait, until told to stop or out of iterations.
//!
//! A user remembers the objects it wrote (key sequence number, content seed, size: 24 bytes
//! each) so later reads can pick and verify them; the prefilled pool is computed, not stored.
//! Each request future is boxed (`Box::pin`: pinned on the heap, not held inline in the
//! user's task), so an idle user costs only its own small state, not the SDK's large
//! in-flight request state.

use crate::load::content::{ContentSeed, Verifier};
use crate::load::driver::{
    ByteRange, ChunkSink, Discard, Driver, FailureKind, OpError, MAX_BATCH_KEYS,
};
use crate::load::run_spec::RunSpec;
use crate::load::scenario::{KeyChoice, OpKind, Scenario, SizeSampler, Wait};
use crate::load::stats::{Outcome, Recorder};
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A scenario prepared for execution: statistics indexes, samplers, weight tables.
pub struct Program {
    pub task_names: Vec<String>,
    pub classes: Vec<ClassProgram>,
    /// Each class's weight, as written: the open-model scheduler picks a class per arrival.
    pub class_weights: Vec<i64>,
    shared: Option<SharedPool>,
}

/// One user class, ready to run.
pub struct ClassProgram {
    wait: Wait,
    tasks: Vec<TaskProgram>,
    /// Random mode: weighted choice over `tasks`.
    chooser: Option<WeightedIndex<u64>>,
    /// Sequence mode: task indexes in order, each repeated `weight` times.
    order: Vec<usize>,
}

struct TaskProgram {
    stat: usize,
    op: OpKind,
    key: KeyChoice,
    size: Option<SizeSampler>,
    range: Option<u64>,
    max_keys: u32,
    part_size: u64,
    parts_in_flight: u32,
    /// Keys per DeleteObjects request (delete_batch).
    batch_keys: u32,
    /// Listing delimiter (list).
    delimiter: Option<String>,
    /// The tag set put_tagging writes.
    tags: Vec<(String, String)>,
    /// Address the picked object by its version id (get, delete with `version: true`).
    version: bool,
    /// Copy into the next bucket of the run's set (copy with `to: other`).
    to_other: bool,
}

impl ClassProgram {
    /// The statistics index of the class's first task.
    pub fn first_stat(&self) -> Option<usize> {
        self.tasks.first().map(|t| t.stat)
    }

    /// What one open-model arrival of this class runs, as task indexes: one task picked by
    /// weight, or a sequence class's whole pass.
    pub fn arrival_tasks(&self, rng: &mut SmallRng) -> Vec<usize> {
        match &self.chooser {
            Some(chooser) => vec![chooser.sample(rng)],
            None => self.order.clone(),
        }
    }

    /// The statistics index of task `task` (0 for an index out of range).
    pub fn stat_of(&self, task: usize) -> usize {
        self.tasks.get(task).map(|t| t.stat).unwrap_or(0)
    }
}

/// The prefilled objects: key, content and size all follow from the index and run seed.
struct SharedPool {
    objects: u64,
    sizes: SizeSampler,
}

impl Program {
    /// Compiles a validated scenario.
    pub fn new(scenario: &Scenario) -> Program {
        let names: Vec<String> = scenario.task_names().into_iter().map(|(n, _)| n).collect();
        // Task name -> statistics index, so compiling stays linear in the number of tasks.
        let index: std::collections::HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let classes = scenario
            .users
            .iter()
            .map(|class| {
                let tasks: Vec<TaskProgram> = class
                    .tasks
                    .iter()
                    .map(|t| TaskProgram {
                        stat: index.get(t.stats_name().as_str()).copied().unwrap_or(0),
                        op: t.op,
                        key: t.key_choice(),
                        size: t.size.as_ref().map(|s| s.sampler()),
                        range: t.range.map(|r| r.0),
                        max_keys: t.max_keys(),
                        part_size: t.part_size(),
                        parts_in_flight: t.parts_in_flight(),
                        batch_keys: t.batch_keys(),
                        delimiter: t.delimiter.clone(),
                        tags: t
                            .tags
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        version: t.version == Some(true),
                        to_other: t.to == Some(crate::load::scenario::CopyTo::Other),
                    })
                    .collect();
                let weights: Vec<u64> =
                    class.tasks.iter().map(|t| t.weight.max(1) as u64).collect();
                let order = if class.sequence {
                    weights
                        .iter()
                        .enumerate()
                        .flat_map(|(i, w)| std::iter::repeat_n(i, *w as usize))
                        .collect()
                } else {
                    Vec::new()
                };
                ClassProgram {
                    wait: class.wait,
                    chooser: if class.sequence {
                        None
                    } else {
                        WeightedIndex::new(&weights).ok()
                    },
                    tasks,
                    order,
                }
            })
            .collect();
        Program {
            task_names: names,
            classes,
            class_weights: scenario.users.iter().map(|c| c.weight).collect(),
            shared: scenario.prefill.as_ref().map(|p| SharedPool {
                objects: p.objects,
                sizes: p.size.sampler(),
            }),
        }
    }

    /// Number of prefilled objects.
    pub fn shared_objects(&self) -> u64 {
        self.shared.as_ref().map(|s| s.objects).unwrap_or(0)
    }

    /// Key, content seed and size of prefilled object `index`.
    pub fn shared_object(&self, spec: &RunSpec, index: u64) -> (String, ContentSeed, u64) {
        let key = spec.shared_key(index);
        let seed = ContentSeed::for_key(spec.seed, &key);
        let size = match &self.shared {
            Some(pool) => {
                let mut rng = SmallRng::seed_from_u64(seed.0);
                pool.sizes.sample(&mut rng)
            }
            None => 0,
        };
        (key, seed, size)
    }
}

/// What every user of a run on one worker shares.
pub struct RunContext<D> {
    pub driver: Arc<D>,
    pub spec: Arc<RunSpec>,
    pub program: Arc<Program>,
    pub recorder: Arc<Recorder>,
    pub worker_id: u32,
    /// Test-only fault injection (see [`TEST_PANIC_ENV`]): user 0 panics after recording
    /// this many outcomes. `None` in every real run.
    pub test_panic_after: Option<u64>,
    /// Where users leave what they wrote when they end, for the post-run checks; `None` when
    /// the scenario asks for none (users then keep no record of their deletes).
    pub ledgers: Option<std::sync::Mutex<Vec<UserLedger>>>,
}

/// What one user leaves for the post-run checks when it ends: the objects it wrote and did
/// not delete, the deletes the gateway confirmed, and how many keys it numbered. Every other
/// key it numbered is uncertain (a write or delete that failed or was cut off).
#[derive(Debug, Default)]
pub struct UserLedger {
    user: u64,
    next_seq: u64,
    live: Vec<Owned>,
    deleted: Vec<u64>,
}

/// The part of the run worker `worker` audits: what its users' ledgers say is there.
pub fn worker_audit_set(
    spec: &RunSpec,
    worker: u32,
    ledgers: &[UserLedger],
) -> crate::load::audit::AuditSet {
    let mut set = crate::load::audit::AuditSet {
        prefix: spec.worker_prefix(worker),
        ..Default::default()
    };
    for l in ledgers {
        let mut known: std::collections::HashSet<u64> = l.deleted.iter().copied().collect();
        for o in &l.live {
            known.insert(o.seq);
            set.objects.push(crate::load::audit::Expected {
                key: spec.user_key(worker, l.user, o.seq),
                seed: o.seed,
                size: o.size,
            });
        }
        for seq in (0..l.next_seq).filter(|s| !known.contains(s)) {
            set.uncertain.insert(spec.user_key(worker, l.user, seq));
        }
    }
    set
}

/// TEST ONLY, never set in production: `CHOPSTICKS_TEST_USER_PANIC_AFTER=N` makes user 0 of
/// each worker panic right after recording its N-th outcome, so tests can check with the real
/// binary that a user that dies is reported and fails the run, without relying on a real bug.
pub const TEST_PANIC_ENV: &str = "CHOPSTICKS_TEST_USER_PANIC_AFTER";

/// Reads [`TEST_PANIC_ENV`]; anything but a whole number leaves it off.
pub fn test_panic_after_from_env() -> Option<u64> {
    let n = std::env::var(TEST_PANIC_ENV).ok()?.trim().parse().ok()?;
    log::warn!("{TEST_PANIC_ENV}={n} is set: user 0 will panic on purpose (a test hook)");
    Some(n)
}

/// What a user is doing, kept outside the user so it can still be read after the user's task
/// panicked: the statistics index of its current task and when that task began.
#[derive(Debug, Default)]
pub struct Progress(std::sync::Mutex<Option<(usize, Instant)>>);

impl Progress {
    fn begin(&self, stat: usize) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((stat, Instant::now()));
    }

    /// The current (or last) task's statistics index and how long ago it began.
    pub fn current(&self) -> Option<(usize, Duration)> {
        let at = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        at.map(|(stat, started)| (stat, started.elapsed()))
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// An object a user wrote.
#[derive(Debug, Clone, Copy)]
struct Owned {
    seq: u64,
    seed: ContentSeed,
    size: u64,
}

/// The object a task acts on.
struct Target {
    key: String,
    seed: ContentSeed,
    size: u64,
    own_index: Option<usize>,
}

/// Why a user ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEnd {
    /// Told to stop.
    Stopped,
    /// Ran its iterations.
    Done,
}

/// One virtual user.
pub struct User<D> {
    id: u64,
    class: usize,
    ctx: Arc<RunContext<D>>,
    rng: SmallRng,
    own: Vec<Owned>,
    next_seq: u64,
    /// The gateway and bucket the current (or last) request went to, set when it is routed,
    /// so its outcome is counted under them too; `None`s with a single gateway and bucket.
    via: crate::load::stats::Via,
    /// Sequence numbers of its objects whose DELETE succeeded; kept only when the run has
    /// post-run checks (so a listed deleted key is told from an uncertain one).
    deleted: Vec<u64>,
    /// The version id each of `own` got from its PUT (same index; `None` when the reply
    /// named none). Kept only when the scenario is versioned, so other runs pay nothing.
    versions: Vec<Option<Box<str>>>,
}

impl<D> Drop for User<D> {
    /// Leaves the user's ledger for the post-run checks, however the user ended (stopped,
    /// done, cut off or panicked).
    fn drop(&mut self) {
        if let Some(ledgers) = &self.ctx.ledgers {
            let ledger = UserLedger {
                user: self.id,
                next_seq: self.next_seq,
                live: std::mem::take(&mut self.own),
                deleted: std::mem::take(&mut self.deleted),
            };
            ledgers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ledger);
        }
    }
}

impl<D: Driver> User<D> {
    pub fn new(ctx: Arc<RunContext<D>>, id: u64, class: usize) -> User<D> {
        let seed = ctx.spec.seed
            ^ (u64::from(ctx.worker_id) << 48)
            ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        User {
            id,
            class,
            ctx,
            rng: SmallRng::seed_from_u64(seed),
            own: Vec::new(),
            next_seq: 0,
            via: Default::default(),
            deleted: Vec::new(),
            versions: Vec::new(),
        }
    }

    /// Remembers an object the user wrote (and, in a versioned run, its version id).
    fn remember(&mut self, object: Owned, version: Option<String>) {
        self.own.push(object);
        if self.ctx.spec.scenario.versioning {
            self.versions.push(version.map(String::into_boxed_str));
        }
    }

    /// Forgets own object `i` (as `swap_remove`), returning it and its version id.
    fn forget(&mut self, i: usize) -> (Owned, Option<Box<str>>) {
        let object = self.own.swap_remove(i);
        // `versions` is as long as `own` in a versioned run, and empty otherwise.
        let version = if i < self.versions.len() {
            self.versions.swap_remove(i)
        } else {
            None
        };
        (object, version)
    }

    /// The user's id on its worker (open-model users are numbered apart from closed ones).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs until `stop` (finish the current request first) or `abort` (cut it off). Notes its
    /// current task in `progress`, so a supervisor can tell what it was doing if it panics.
    pub async fn run(
        mut self,
        stop: CancellationToken,
        abort: CancellationToken,
        progress: &Progress,
    ) -> UserEnd {
        let ctx = Arc::clone(&self.ctx);
        let class = &ctx.program.classes[self.class];
        let iterations = ctx.spec.iterations;
        let mut done_iterations = 0u64;
        let mut step = 0usize;
        let mut recorded = 0u64;
        // A `pacing` user's tasks are meant to start every `pacing` seconds from its first:
        // each request is timed from that intended start too, and a user held up (a server
        // stall) sends its next tasks back to back until it is on schedule again, as a
        // client with a schedule would. Waits were checked against limits::WAIT.
        let mut intended: Option<Instant> =
            matches!(class.wait, Wait::Pacing(_)).then(Instant::now);
        loop {
            if stop.is_cancelled() {
                return UserEnd::Stopped;
            }
            if iterations.is_some_and(|n| done_iterations >= n) {
                return UserEnd::Done;
            }
            let task_index = match &class.chooser {
                Some(chooser) => chooser.sample(&mut self.rng),
                None => class.order[step % class.order.len().max(1)],
            };
            let task = &class.tasks[task_index];
            progress.begin(task.stat);
            let started = Instant::now();
            let outcome = {
                // Boxed, never pinned on the stack: a future held across an await is part of
                // this task's state machine in every state, so inline it would make each idle
                // user as large as the largest in-flight request (~29 KiB with the SDK's
                // futures, issue 17). One allocation per request costs far less than the
                // request; `tests::an_idle_users_task_future_stays_small` guards this.
                let request = Box::pin(self.execute(task));
                tokio::select! {
                    biased;
                    outcome = request => with_intended(outcome, intended, started),
                    _ = abort.cancelled() => Outcome::Aborted,
                }
            };
            let aborted = matches!(outcome, Outcome::Aborted);
            ctx.recorder
                .record_via(self.id, task.stat, self.via, &outcome);
            recorded += 1;
            if self.id == 0 && ctx.test_panic_after == Some(recorded) {
                panic!("{TEST_PANIC_ENV}: user 0 panics after {recorded} outcomes, as asked");
            }
            if aborted {
                return UserEnd::Stopped;
            }
            step += 1;
            if class.chooser.is_some() || step.is_multiple_of(class.order.len().max(1)) {
                done_iterations += 1;
            }
            // Waits were checked against limits::WAIT when the scenario was validated.
            let wait = crate::limits::WAIT;
            let pause = match class.wait {
                Wait::Constant(s) => wait.within(s),
                Wait::Between([a, b]) => wait.within(if b > a {
                    self.rng.random_range(a..=b)
                } else {
                    a
                }),
                Wait::Pacing(p) => match intended.as_mut() {
                    Some(at) => {
                        let pace = wait.within(p);
                        *at = at.checked_add(pace).unwrap_or(*at);
                        at.saturating_duration_since(Instant::now())
                    }
                    None => wait.within(p).saturating_sub(started.elapsed()),
                },
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return UserEnd::Stopped,
                }
            } else {
                // Let other users and the runtime's timers run between back-to-back tasks.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Runs one open-model arrival scheduled at `scheduled`: `tasks` (from
    /// [`ClassProgram::arrival_tasks`]) in order. The first request is timed from the scheduled
    /// time, each later one of a sequence pass from the end of the one before it (its
    /// intended start). Returns false when a stop's grace ran out and the request was cut off.
    pub async fn arrive(
        &mut self,
        tasks: &[usize],
        scheduled: Instant,
        abort: &CancellationToken,
    ) -> bool {
        let ctx = Arc::clone(&self.ctx);
        let class = &ctx.program.classes[self.class];
        let mut intended = scheduled;
        let mut cut_off = false;
        for &index in tasks {
            let Some(task) = class.tasks.get(index) else {
                continue;
            };
            if cut_off || abort.is_cancelled() {
                // Counted as arrivals when the pass arrived: the rest of a cut pass (or all
                // of one cut off before it was sent) is aborted.
                cut_off = true;
                ctx.recorder.record(self.id, task.stat, &Outcome::Aborted);
                continue;
            }
            let sent = Instant::now();
            let outcome = {
                // Boxed for the same reason as in `run`.
                let request = Box::pin(self.execute(task));
                tokio::select! {
                    biased;
                    outcome = request => with_intended(outcome, Some(intended), sent),
                    _ = abort.cancelled() => Outcome::Aborted,
                }
            };
            ctx.recorder
                .record_via(self.id, task.stat, self.via, &outcome);
            cut_off = matches!(outcome, Outcome::Aborted);
            intended = Instant::now();
        }
        !cut_off
    }

    fn own_key(&self, seq: u64) -> String {
        self.ctx.spec.user_key(self.ctx.worker_id, self.id, seq)
    }

    fn new_object(&mut self) -> (u64, String, ContentSeed) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.own_key(seq);
        let seed = ContentSeed::for_key(self.ctx.spec.seed, &key);
        (seq, key, seed)
    }

    fn pick(&mut self, choice: KeyChoice) -> Option<Target> {
        let shared = self.ctx.program.shared_objects();
        let own = self.own.len() as u64;
        let use_own = match choice {
            KeyChoice::Own => own > 0,
            KeyChoice::Shared => false,
            KeyChoice::Any => own + shared > 0 && self.rng.random_range(0..own + shared) < own,
        };
        if use_own {
            let i = self.rng.random_range(0..self.own.len());
            let o = self.own[i];
            return Some(Target {
                key: self.own_key(o.seq),
                seed: o.seed,
                size: o.size,
                own_index: Some(i),
            });
        }
        if choice == KeyChoice::Own || shared == 0 {
            return None;
        }
        let index = self.rng.random_range(0..shared);
        let (key, seed, size) = self.ctx.program.shared_object(&self.ctx.spec, index);
        Some(Target {
            key,
            seed,
            size,
            own_index: None,
        })
    }

    /// The user's place in the round-robin over gateways and buckets: its id, offset by its
    /// worker's id so workers' remainders do not all land on the first gateway.
    fn slot(&self) -> u64 {
        self.id.wrapping_add(u64::from(self.ctx.worker_id))
    }

    async fn execute(&mut self, task: &TaskProgram) -> Outcome {
        let ctx = Arc::clone(&self.ctx);
        let route = ctx.driver.route(self.slot());
        self.via = route.via();
        let driver = route.driver;
        let verify = self.ctx.spec.scenario.verify;
        match task.op {
            OpKind::Put | OpKind::MultipartPut => {
                let size = task
                    .size
                    .as_ref()
                    .map(|s| s.sample(&mut self.rng))
                    .unwrap_or(0);
                let (seq, key, seed) = self.new_object();
                let started = Instant::now();
                let result = if task.op != OpKind::Put {
                    driver
                        .multipart_put(&key, seed, size, task.part_size, task.parts_in_flight)
                        .await
                        .map(|()| None)
                } else if self.ctx.spec.scenario.versioning {
                    driver.put_versioned(&key, seed, size).await
                } else {
                    driver.put(&key, seed, size).await.map(|()| None)
                };
                let latency = started.elapsed();
                let error = match result {
                    Ok(version) => {
                        self.remember(Owned { seq, seed, size }, version);
                        None
                    }
                    Err(e) => Some(e),
                };
                done(latency, None, size, error)
            }
            OpKind::Get => {
                let Some(target) = self.pick(task.key) else {
                    return Outcome::Skipped;
                };
                // `version: true` reads the version the PUT made (validation made it key: own).
                let version = match (task.version, target.own_index) {
                    (false, _) => None,
                    (true, Some(i)) => match self.versions.get(i).cloned().flatten() {
                        Some(v) => Some(v),
                        None => return Outcome::Skipped,
                    },
                    (true, None) => return Outcome::Skipped,
                };
                let range = match task.range {
                    Some(len) if target.size > 0 => {
                        let len = len.min(target.size);
                        let start = self.rng.random_range(0..=target.size - len);
                        Some(ByteRange { start, len })
                    }
                    _ => None,
                };
                let (start, len) = range.map(|r| (r.start, r.len)).unwrap_or((0, target.size));
                let mut verifier = Verifier::new(target.seed, start, len);
                let mut discard = Discard;
                let sink: &mut dyn ChunkSink = if verify { &mut verifier } else { &mut discard };
                let started = Instant::now();
                let result = match &version {
                    Some(v) => driver.get_version(&target.key, v, len, sink).await,
                    None => driver.get(&target.key, range, len, sink).await,
                };
                let latency = started.elapsed();
                match result {
                    Ok(reply) => {
                        let error = if verify {
                            verifier.finish().err().map(|m| {
                                OpError::new(FailureKind::Integrity, format!("{}: {m}", target.key))
                            })
                        } else {
                            None
                        };
                        done(latency, Some(reply.ttfb), reply.bytes, error)
                    }
                    Err(e) => done(latency, None, 0, Some(e)),
                }
            }
            OpKind::Head => {
                let Some(target) = self.pick(task.key) else {
                    return Outcome::Skipped;
                };
                let started = Instant::now();
                let result = driver.head(&target.key).await;
                let latency = started.elapsed();
                let error = match result {
                    Ok(size) if verify && size != target.size => Some(OpError::new(
                        FailureKind::Integrity,
                        format!(
                            "{}: HEAD reports {size} bytes, {} were written",
                            target.key, target.size
                        ),
                    )),
                    Ok(_) => None,
                    Err(e) => Some(e),
                };
                done(latency, None, 0, error)
            }
            OpKind::Delete => {
                let Some(target) = self.pick(KeyChoice::Own) else {
                    return Outcome::Skipped;
                };
                let (seq, version) = match target.own_index.map(|i| self.forget(i)) {
                    Some((o, v)) => (Some(o.seq), v),
                    None => (None, None),
                };
                let started = Instant::now();
                let result = match (task.version, &version) {
                    (true, Some(v)) => driver.delete_version(&target.key, v).await,
                    (true, None) => Err(OpError::new(
                        FailureKind::Other,
                        format!(
                            "{}: the PUT named no version id to delete (was it written by a multipart upload or a copy?)",
                            target.key
                        ),
                    )),
                    (false, _) => driver.delete(&target.key).await,
                };
                if let (Ok(()), Some(seq), Some(_)) = (&result, seq, &self.ctx.ledgers) {
                    self.deleted.push(seq);
                }
                done(started.elapsed(), None, 0, result.err())
            }
            OpKind::PutTagging | OpKind::GetTagging => {
                let Some(target) = self.pick(task.key) else {
                    return Outcome::Skipped;
                };
                let started = Instant::now();
                let error = if task.op == OpKind::PutTagging {
                    driver.put_tagging(&target.key, &task.tags).await.err()
                } else {
                    driver.get_tagging(&target.key).await.err()
                };
                done(started.elapsed(), None, 0, error)
            }
            OpKind::DeleteBatch => {
                if self.own.is_empty() {
                    return Outcome::Skipped;
                }
                // Random objects of the user's own, forgotten before the request as `delete`
                // does: a key the reply says was not deleted is counted, and cleanup removes it.
                let n = (task.batch_keys as usize).clamp(1, MAX_BATCH_KEYS);
                let seqs: Vec<u64> = (0..n.min(self.own.len()))
                    .map(|_| {
                        let i = self.rng.random_range(0..self.own.len());
                        self.forget(i).0.seq
                    })
                    .collect();
                let keys: Vec<String> = seqs.iter().map(|&s| self.own_key(s)).collect();
                let started = Instant::now();
                let result = driver.delete_batch(&keys).await;
                let error = match result {
                    Ok(reply) => {
                        // The checks tell a key the reply confirmed deleted from an uncertain one.
                        if self.ctx.ledgers.is_some() {
                            let failed: std::collections::HashSet<&str> =
                                reply.errors.iter().map(|e| e.key.as_str()).collect();
                            self.deleted.extend(
                                seqs.iter()
                                    .zip(&keys)
                                    .filter(|(_, k)| !failed.contains(k.as_str()))
                                    .map(|(&s, _)| s),
                            );
                        }
                        reply.failure()
                    }
                    Err(e) => Some(e),
                };
                done(started.elapsed(), None, 0, error)
            }
            OpKind::List => {
                let prefix = match task.key {
                    KeyChoice::Own => self.ctx.spec.user_prefix(self.ctx.worker_id, self.id),
                    KeyChoice::Shared => self.ctx.spec.shared_prefix(),
                    KeyChoice::Any => self.ctx.spec.key_prefix.clone(),
                };
                let started = Instant::now();
                let error = match &task.delimiter {
                    Some(d) => driver.list_delimited(&prefix, d, task.max_keys).await.err(),
                    None => driver.list(&prefix, task.max_keys, None).await.err(),
                };
                done(started.elapsed(), None, 0, error)
            }
            OpKind::ListVersions => {
                let prefix = match task.key {
                    KeyChoice::Own => self.ctx.spec.user_prefix(self.ctx.worker_id, self.id),
                    KeyChoice::Shared => self.ctx.spec.shared_prefix(),
                    KeyChoice::Any => self.ctx.spec.key_prefix.clone(),
                };
                let started = Instant::now();
                let result = driver.list_versions(&prefix, task.max_keys, None).await;
                if let Ok(page) = &result {
                    log::trace!(
                        "list_versions {prefix}: {} versions, {} delete markers",
                        page.versions.len(),
                        page.delete_markers.len()
                    );
                }
                done(started.elapsed(), None, 0, result.err())
            }
            OpKind::Copy => {
                let Some(source) = self.pick(task.key) else {
                    return Outcome::Skipped;
                };
                let (seq, key, _) = self.new_object();
                if task.to_other {
                    // The next bucket of the set: the route of the next user slot. The copy
                    // is not remembered (its bucket is not the user's): cleanup removes it by
                    // prefix in every bucket, and the post-run checks count its key as uncertain.
                    let other = ctx.driver.route(self.slot().wrapping_add(1));
                    let started = Instant::now();
                    let result = other
                        .driver
                        .copy_from(driver.bucket(), &source.key, &key, source.size)
                        .await;
                    return done(started.elapsed(), None, source.size, result.err());
                }
                let started = Instant::now();
                let result = driver.copy(&source.key, &key, source.size).await;
                let latency = started.elapsed();
                if result.is_ok() {
                    // A copy carries its source's content.
                    self.remember(
                        Owned {
                            seq,
                            seed: source.seed,
                            size: source.size,
                        },
                        None,
                    );
                }
                done(latency, None, source.size, result.err())
            }
        }
    }
}

fn done(latency: Duration, ttfb: Option<Duration>, bytes: u64, error: Option<OpError>) -> Outcome {
    Outcome::Done {
        latency,
        ttfb,
        bytes,
        error,
        waited: None,
    }
}

/// `outcome` of a request that was meant to start at `intended`, sent at `sent`.
fn with_intended(mut outcome: Outcome, intended: Option<Instant>, sent: Instant) -> Outcome {
    if let (Outcome::Done { waited, .. }, Some(at)) = (&mut outcome, intended) {
        *waited = Some(sent.saturating_duration_since(at));
    }
    outcome
}

/// A virtual user whose task panicked: it is gone, and the run cannot be what was asked.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserDeath {
    /// The user's id on its worker.
    pub user: u64,
    /// Index of its user class in the scenario.
    pub class: usize,
    /// The task it was on (its statistics name), if it had begun one.
    pub task: Option<String>,
    /// The panic's message.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::driver::AnyDriver;
    use crate::s3_config::DriverKind;

    /// Bytes a user's task future may take (measured: 608 on x86_64). Every spawned user
    /// holds one for its whole life, idle or not: at 100,000 users each 1 KiB here is ~100 MiB.
    const USER_TASK_MAX: usize = 1024;
    /// Bytes the request future a user boxes may take (what each request in flight
    /// allocates; the SDK's futures inside it are boxed by the drivers).
    const REQUEST_MAX: usize = 4096;

    /// A run context on a driver that is built but never used: constructing a future sends
    /// nothing, and these tests never poll one.
    fn context(driver: DriverKind) -> Arc<RunContext<AnyDriver>> {
        let config = crate::load::driver::tests::unused_target(driver);
        let (scenario, _) = Scenario::resolve("s3_mixed_workload").unwrap();
        let program = Program::new(&scenario);
        let recorder = Recorder::new(program.task_names.clone());
        Arc::new(RunContext {
            driver: Arc::new(AnyDriver::new(&config).unwrap()),
            spec: Arc::new(RunSpec {
                run_id: "size-guard".into(),
                scenario,
                seed: 1,
                key_prefix: "chopsticks/size-guard/".into(),
                iterations: None,
                stop_timeout_s: 1.0,
                clock_origin_unix_us: 0,
            }),
            program: Arc::new(program),
            recorder: Arc::new(recorder),
            worker_id: 0,
            test_panic_after: None,
            ledgers: None,
        })
    }

    #[test]
    fn an_idle_users_task_future_stays_small() {
        for kind in [DriverKind::Lean, DriverKind::AwsSdk] {
            let ctx = context(kind);
            let user = User::new(Arc::clone(&ctx), 7, 0);
            let progress = Progress::default();
            let task = user.run(
                CancellationToken::new(),
                CancellationToken::new(),
                &progress,
            );
            let task_size = std::mem::size_of_val(&task);
            // What the task boxes per request instead of holding inline.
            let mut user = User::new(Arc::clone(&ctx), 8, 0);
            let op = &ctx.program.classes[0].tasks[0];
            let request_size = std::mem::size_of_val(&user.execute(op));
            assert!(
                request_size <= REQUEST_MAX,
                "{kind:?}: a user's request future is {request_size} bytes, over the \
                 {REQUEST_MAX} allowed; each request in flight allocates one (a driver future \
                 of the SDK held inline instead of boxed makes it ~29 KiB)"
            );
            assert!(
                task_size <= USER_TASK_MAX,
                "{kind:?}: a user's task future is {task_size} bytes, over the {USER_TASK_MAX} \
                 allowed (its boxed request future is {request_size} bytes); every idle user \
                 holds one, so a request future held inline across an await would be paid by \
                 all of them (issue 17)"
            );
            eprintln!(
                "{kind:?}: user task future {task_size} bytes, request future {request_size} bytes"
            );
        }
    }
}
