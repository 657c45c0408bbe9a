//! One run's state: its spec and record, the workers taking part, the exact merge of their
//! deltas into totals and per-second history, and the verdict at the end. No sockets and no
//! timers: the actor feeds it what workers sent and what time it is; the unit tests below feed
//! it synthetic deltas and check the totals and percentiles exactly.

use super::run_files::{RunFiles, SecondRow};
use super::seconds::{Placement, SecondAssembler};
use super::start_spec::StartSpec;
use crate::cluster::protocol::{unix_us, RunSpec, SecondDelta, UserDeath};
use crate::control::ControlError;
use crate::load::audit::ChecksReport;
use crate::load::scenario::OpKind;
use crate::load::stats::StatsDelta;
use crate::results::artifacts::{self, RunParameters, RunRecord, WorkerRecord};
use crate::results::series::SeriesPoint;
use crate::results::summary::Summary;
use crate::results::RunState;
use crate::s3_config::TargetInfo;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// A worker's part in the run.
pub(super) struct Participant {
    /// What run.json records of it: name, fate, join/leave times, its own totals, deaths.
    pub record: WorkerRecord,
    /// Users it reported running in its last message; 0 once it is missing, lost or finished.
    pub users: u32,
    /// It said (in `Stats`) that all its users ran their iterations: nothing left to do, but
    /// its last stats may still be on the way.
    pub done: bool,
    /// It sent `Finished`: its last stats have arrived and it is out of the run.
    pub finished: bool,
    /// Users per class the plan gave it last; empty while it is missing.
    pub assigned: Vec<u32>,
    /// Its share of the arrivals the plan gave it last (open-model runs); `None` while it is
    /// missing.
    pub assigned_arrival: Option<crate::load::arrivals::ArrivalShare>,
}

/// The active run.
pub(super) struct Run {
    /// What every worker runs; sent when a worker is enlisted. Its clock origin is set when
    /// load begins, before any worker gets it.
    pub spec: Arc<RunSpec>,
    /// What run.json says; written at each transition and every few seconds while running.
    pub record: RunRecord,
    /// The run directory's files.
    pub files: RunFiles,
    /// The scenario's statistics names and kinds, in report order.
    pub tasks: Vec<(String, OpKind)>,
    /// Where the run is now.
    pub state: RunState,
    /// What the run ends as once it has wound down (`completed` unless stopped, failed or
    /// interrupted on the way).
    pub outcome: RunState,
    /// A stop came while preparing: no load starts once preparation ends.
    pub stop_requested: bool,
    /// When load began (second 0 of the run, on this machine's monotonic clock).
    pub load_started: Option<Instant>,
    /// When load ended (cleanup began); the run's load time is the span between the two.
    pub load_ended: Option<Instant>,
    /// When the duration is reached; set when load begins.
    pub deadline: Option<Instant>,
    /// How long load runs, as asked; `None` = until stopped or iterations are done.
    pub duration: Option<Duration>,
    /// Grace for in-flight requests after a stop, as asked.
    pub stop_timeout: Duration,
    /// When the run began stopping, to give up on workers that never report their end.
    pub stopping_since: Option<Instant>,
    /// Cleanup has begun: no more seconds are written and nothing restarts the load.
    pub cleaning: bool,
    /// Users asked for across all workers (now: with stages, the stage in force).
    pub users_target: u32,
    /// Closed-model users stage by stage from the clock origin; empty = `users_target`
    /// throughout.
    pub user_stages: Vec<crate::load::scenario::UserStage>,
    /// The users stage in force (an index into `user_stages`).
    pub stage: usize,
    /// The weight of each user class, to split users by class.
    pub class_weights: Vec<i64>,
    /// Users started per second across all workers.
    pub spawn_rate: f64,
    /// Open-model load: arrivals split across the workers instead of users.
    pub arrival: Option<crate::load::scenario::ArrivalPlan>,
    /// Everything every worker sent, merged: the numbers of summary.json.
    pub totals: StatsDelta,
    /// The seconds of the run not yet written to the history, as workers' deltas arrive.
    pub seconds: SecondAssembler,
    /// Requests that arrived after their second was written (in the totals, not the history).
    pub late_requests: u64,
    /// Rates of the last written second (requests/s, failures/s, MB/s), for status.
    pub rates: (f64, f64, f64),
    /// Workers enlisted in the run, by id, including those lost or finished.
    pub participants: BTreeMap<u32, Participant>,
    /// Ticks (seconds) since the run was created, to pace the summary refresh.
    pub ticks: u64,
    /// One point per written second, for the live charts.
    pub series: Vec<SeriesPoint>,
    /// Wall-clock time of the run's clock origin (second 0 begins; `load_started` on the
    /// monotonic clock).
    pub origin_wall: SystemTime,
    /// A saturation sweep: fed every written second, it says when to change the rate and
    /// when the sweep is over.
    pub sweep: Option<crate::load::sweep::SweepController>,
    /// `--autoterm`: fed every written second, it says when the rate has been stable.
    pub autoterm: Option<crate::load::stability::Autoterm>,
    /// Why autoterm stopped the run (summary.json says it).
    pub autoterm_stop: Option<crate::load::stability::AutotermStop>,
    /// What the sweep or autoterm asked for at the last written second, for the actor to do
    /// (change the workers' rate, or stop the run); taken by it.
    pub steer: Option<Steering>,
    /// The post-run checks while they run (between the end of the load and cleanup).
    pub checks: Option<ChecksPhase>,
    /// The post-run checks' merged result once every part reported (or gave up): summary.json's
    /// `checks`, and a failure when anything did not match.
    pub checks_report: Option<ChecksReport>,
}

/// What a written second asks the actor to do.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Steering {
    /// The arrival rate changed (`arrival` holds it): send the workers their new shares.
    Rebalance,
    /// Stop the run, for this reason.
    Stop(String),
}

/// The post-run checks in progress: the parts still to report and what the others reported.
pub(super) struct ChecksPhase {
    /// Workers asked to audit their objects that have not answered yet.
    pub waiting: BTreeSet<u32>,
    /// The coordinator's own audit of the prefilled pool has not ended yet.
    pub shared_pending: bool,
    /// The parts' reports merged so far.
    pub report: ChecksReport,
    /// When the checks began: their time is reported apart from the load's.
    pub started: Instant,
}

/// What became of a worker's stats message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Merged {
    /// Merged into the totals and the seconds.
    Yes,
    /// A sequence number seen before: ignored, so nothing is counted twice.
    Repeated,
    /// The worker is not enlisted in this run.
    NotEnlisted,
}

impl Run {
    /// Creates the run's directory at `path`, writes its first run.json and returns the run,
    /// preparing. `spec` was checked when the request arrived; nothing here re-reads it.
    pub fn create(
        start: &StartSpec,
        run_id: String,
        path: &Path,
        target: &TargetInfo,
    ) -> Result<Run, ControlError> {
        let key_prefix =
            super::key_prefix(&run_id).map_err(|e| ControlError::BadRequest(e.to_string()))?;
        if path.join(artifacts::RUN_JSON).exists() {
            return Err(ControlError::BadRequest(format!(
                "{} already holds a run; choose another run id or directory",
                path.display()
            )));
        }
        let scenario = &start.scenario.scenario;
        let seed = start.seed.unwrap_or_else(rand::random);
        let spec = RunSpec {
            run_id: run_id.clone(),
            scenario: scenario.clone(),
            seed,
            key_prefix,
            iterations: start.iterations,
            stop_timeout_s: start.stop_timeout.as_secs_f64(),
            // Set when load begins (`begin_load`), before any worker gets the spec.
            clock_origin_unix_us: 0,
        };
        let record = RunRecord {
            run_id: run_id.clone(),
            engine_version: crate::VERSION.to_string(),
            state: RunState::Preparing,
            reason: None,
            created_at: artifacts::now_rfc3339(),
            started_at: None,
            ended_at: None,
            parameters: RunParameters {
                scenario_source: start.scenario_source.clone(),
                users: start.users,
                spawn_rate: start.spawn_rate,
                duration_s: start.duration.map(|d| d.as_secs_f64()),
                iterations: start.iterations,
                expected_workers: start
                    .expected_workers_asked
                    .then_some(start.expected_workers),
                stop_timeout_s: spec.stop_timeout_s,
                arrival: start.arrival.clone(),
            },
            scenario: scenario.clone(),
            scenario_text: Some(start.scenario.text.clone()),
            seed,
            key_prefix: spec.key_prefix.clone(),
            target: target.clone(),
            prepare: None,
            cleanup: None,
            workers: Vec::new(),
            requests: 0,
            failures: 0,
            bytes: 0,
            buckets: Default::default(),
        };
        let mut files = RunFiles::create(path, &record)
            .map_err(|e| ControlError::Unavailable(e.to_string()))?;
        files.event(&format!(
            "run {run_id} created: scenario {} ({}, sha256 {}), {} users at {}/s, duration {}",
            scenario.name,
            start.scenario.text.origin,
            start.scenario.text.sha256,
            start.users,
            start.spawn_rate,
            start
                .duration
                .map(crate::duration::format)
                .unwrap_or_else(|| "unlimited".into())
        ));
        if !start.user_stages.is_empty() {
            files.event(&format!(
                "users stages (step and hold): {}; the request's users are not used",
                start
                    .user_stages
                    .iter()
                    .map(|s| format!(
                        "{} users for {}",
                        s.users,
                        crate::duration::format(Duration::from_micros(s.for_us))
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(a) = &start.arrival {
            // Said, not silently dropped: a start request always carries users and a spawn
            // rate (ctl and the API require them), which an open-model run does not use.
            files.event(&format!(
                "open model: arrivals at {}/s{}, at most {} in flight{}; the request's users and spawn rate are not used",
                a.rate,
                if a.poisson { " (Poisson)" } else { "" },
                a.max_in_flight,
                super::workers::connections_said(a.max_connections)
            ));
        }
        if let Some(s) = &start.sweep {
            files.event(&format!(
                "sweep: {} steps from {}/s to {}/s, each held until stable ({}s window, cv below {}%) or for {}s, the first {}s of each not measured",
                s.rates.len(),
                s.rates[0],
                s.rates[s.rates.len() - 1],
                s.stable.window_s,
                s.stable.cv * 100.0,
                s.step_time_s,
                s.warmup_s
            ));
        }
        if let Some(a) = &start.autoterm {
            files.event(&format!(
                "autoterm: the run stops once its completed rate has been stable ({}s window, cv below {}%)",
                a.window_s,
                a.cv * 100.0
            ));
        }
        files.event("state preparing");
        Ok(Run {
            tasks: scenario.task_names(),
            class_weights: scenario.users.iter().map(|c| c.weight).collect(),
            spec: Arc::new(spec),
            record,
            files,
            state: RunState::Preparing,
            outcome: RunState::Completed,
            stop_requested: false,
            load_started: None,
            load_ended: None,
            deadline: None,
            duration: start.duration,
            stop_timeout: start.stop_timeout,
            stopping_since: None,
            cleaning: false,
            users_target: start.users,
            user_stages: start.user_stages.clone(),
            stage: 0,
            spawn_rate: start.spawn_rate,
            arrival: start.arrival.clone(),
            totals: StatsDelta::default(),
            seconds: SecondAssembler::new(),
            late_requests: 0,
            rates: (0.0, 0.0, 0.0),
            participants: BTreeMap::new(),
            ticks: 0,
            series: Vec::new(),
            origin_wall: SystemTime::now(),
            checks: None,
            checks_report: None,
            sweep: start
                .sweep
                .clone()
                .map(crate::load::sweep::SweepController::new),
            autoterm: start.autoterm.map(crate::load::stability::Autoterm::new),
            autoterm_stop: None,
            steer: None,
        })
    }

    pub fn run_id(&self) -> &str {
        &self.spec.run_id
    }

    /// Whether users are being started or running (the states a worker can join in).
    pub fn is_loading(&self) -> bool {
        matches!(self.state, RunState::Spawning | RunState::Running)
    }

    /// Load begins: second 0 of the run starts at `now` (`wall` on the wall clock), the
    /// duration counts from here, and the spec workers get carries the clock origin.
    pub fn begin_load(&mut self, now: Instant, wall: SystemTime) {
        self.state = RunState::Spawning;
        self.load_started = Some(now);
        self.origin_wall = wall;
        let mut spec = (*self.spec).clone();
        spec.clock_origin_unix_us = unix_us(wall);
        self.spec = Arc::new(spec);
        self.files.begin_histograms(wall);
        self.deadline = self.duration.and_then(|d| now.checked_add(d));
        self.record.started_at = Some(artifacts::now_rfc3339());
        self.record.state = RunState::Spawning;
        let origin: chrono::DateTime<chrono::Utc> = wall.into();
        self.files.event(&format!(
            "state spawning; second 0 of the run begins at {}",
            origin.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ));
        self.files.write_record(&self.record);
    }

    /// When the next users stage begins, while load runs; `None` without users stages or
    /// after the last.
    pub fn next_stage_at(&self) -> Option<Instant> {
        if !self.is_loading() || self.stage + 1 >= self.user_stages.len() {
            return None;
        }
        let ends: u64 = self.user_stages[..=self.stage]
            .iter()
            .map(|s| s.for_us)
            .sum();
        self.load_started?.checked_add(Duration::from_micros(ends))
    }

    /// The next users stage begins: its users become the target (the caller rebalances).
    pub fn enter_next_stage(&mut self) {
        let Some(next) = self.user_stages.get(self.stage + 1) else {
            return;
        };
        self.stage += 1;
        self.users_target = next.users;
        let text = format!(
            "users stage {}: {} users for {}",
            self.stage,
            next.users,
            crate::duration::format(Duration::from_micros(next.for_us))
        );
        log::info!("run {}: {text}", self.spec.run_id);
        self.files.event(&text);
    }

    /// The users target in force during second `second` of the run (its start).
    pub fn users_target_in(&self, second: u64) -> u32 {
        if self.user_stages.is_empty() {
            return self.users_target;
        }
        match crate::load::scenario::user_stage_at(&self.user_stages, Duration::from_secs(second)) {
            Some((i, _)) => self.user_stages[i].users,
            None => self.user_stages.last().map_or(0, |s| s.users),
        }
    }

    /// Records worker `id` (called `name`) as taking part.
    pub fn enlist(&mut self, id: u32, name: &str) {
        self.participants.entry(id).or_insert_with(|| Participant {
            record: WorkerRecord {
                id,
                name: name.to_string(),
                joined_at: artifacts::now_rfc3339(),
                fate: "active".into(),
                ..WorkerRecord::default()
            },
            users: 0,
            done: false,
            finished: false,
            assigned: Vec::new(),
            assigned_arrival: None,
        });
    }

    /// Merges one `Stats` message of worker `id`: its seconds go into the totals, the
    /// worker's own record and the seconds being assembled; deaths are recorded.
    #[allow(clippy::too_many_arguments)]
    pub fn merge_stats(
        &mut self,
        id: u32,
        seq: u64,
        users: u32,
        done: bool,
        seconds: &[SecondDelta],
        complete_through: u64,
        died: Vec<UserDeath>,
    ) -> Merged {
        let Some(p) = self.participants.get_mut(&id) else {
            return Merged::NotEnlisted;
        };
        if seq <= p.record.stats_messages {
            return Merged::Repeated;
        }
        p.record.stats_messages = seq;
        for s in seconds {
            p.record.requests += s.delta.requests();
            p.record.failures += s.delta.failures();
            p.record.bytes += s.delta.bytes();
        }
        p.users = users;
        p.done = done;
        for death in died {
            let text = format!(
                "user {} of worker {} (#{id}) died{}: {}; its results so far are kept, it is not replaced and the run will fail",
                death.user,
                p.record.name,
                death
                    .task
                    .as_ref()
                    .map(|t| format!(" during task {t}"))
                    .unwrap_or_default(),
                death.message
            );
            log::error!("run {}: {text}", self.spec.run_id);
            self.files.event(&text);
            p.record.died_users.push(death);
        }
        for s in seconds {
            self.totals.merge(&s.delta);
            if self.seconds.add(s.second, &s.delta) == Placement::Late {
                let late = s.delta.requests();
                self.late_requests += late;
                self.files.event(&format!(
                    "{late} requests of second {} from worker #{id} arrived after that second was written: they are in the totals, not in its history row",
                    s.second
                ));
            }
        }
        self.seconds.complete_through(id, complete_through);
        Merged::Yes
    }

    /// Worker `id` sent `Finished` after `last_seq` stats messages.
    pub fn finished(&mut self, id: u32, last_seq: u64) {
        if let Some(p) = self.participants.get_mut(&id) {
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
    }

    /// Worker `id` is gone for good.
    pub fn lost(&mut self, id: u32) {
        if let Some(p) = self.participants.get_mut(&id) {
            if !p.finished {
                p.record.fate = "lost".into();
                p.record.left_at = Some(artifacts::now_rfc3339());
                p.users = 0;
            }
        }
    }

    /// Users running on the workers in `connected`.
    pub fn users_on(&self, connected: &BTreeSet<u32>) -> u32 {
        self.participants
            .iter()
            .filter(|(id, _)| connected.contains(id))
            .map(|(_, p)| p.users)
            .sum()
    }

    /// Writes every second that is ready: each participant in `active` (connected, not
    /// missing) that has not finished has sent all of it, or `grace` has passed since it ended.
    pub fn close_ready(
        &mut self,
        active: &BTreeSet<u32>,
        connected: &BTreeSet<u32>,
        now: Instant,
        grace: Duration,
    ) {
        let Some(start) = self.load_started else {
            return;
        };
        // Once load ended (post-run checks, cleanup) every second has been written.
        if self.cleaning || self.load_ended.is_some() {
            return;
        }
        // Taken lazily: this runs on every stats message (see `SecondAssembler::close_ready`).
        let waiting_for = self
            .participants
            .iter()
            .filter(|(id, p)| !p.finished && active.contains(id))
            .map(|(id, _)| id);
        let elapsed = now.saturating_duration_since(start);
        for (second, delta) in self.seconds.close_ready(waiting_for, elapsed, grace) {
            self.write_second(connected, second, &delta);
        }
    }

    /// Load has ended at `now`: every second up to its end is written, ready or not.
    pub fn close_all(&mut self, connected: &BTreeSet<u32>, now: Instant) {
        if self.load_started.is_some() && self.load_ended.is_none() {
            self.load_ended = Some(now);
        }
        let (Some(start), Some(end)) = (self.load_started, self.load_ended) else {
            return;
        };
        // The second the load ended in; when it is cut short and holds nothing, it is no
        // second of the run worth a row.
        let mut last = end.duration_since(start).as_secs();
        if last > 0 && self.seconds.last_pending().is_none_or(|p| p < last) {
            last -= 1;
        }
        let last = self.seconds.last_pending().map_or(last, |p| p.max(last));
        for (second, delta) in self.seconds.close_through(last) {
            self.write_second(connected, second, &delta);
        }
        if self.late_requests > 0 {
            self.files.event(&format!(
                "{} requests in all arrived after their second was written: stats_history.csv is short of them, the totals are not",
                self.late_requests
            ));
        }
    }

    /// Writes second `second` of the run: its history rows, its histograms, its point of the
    /// live series, and the rates shown in status. Its timestamp is the Unix second in which
    /// it ends, so consecutive seconds have consecutive timestamps. Its rates are what
    /// completed in it: a run's last second, cut short by the run's end, is not stretched into
    /// a rate over the fraction of it that ran (a few requests in 10 ms are not 300/s).
    fn write_second(&mut self, connected: &BTreeSet<u32>, second: u64, delta: &StatsDelta) {
        let begins = self.origin_wall + Duration::from_secs(second);
        let nominal_end = begins + Duration::from_secs(1);
        // The interval the histograms cover: the last second may be cut short by the end.
        let span = match (self.load_started, self.load_ended) {
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
        self.rates = (
            delta.requests() as f64,
            delta.failures() as f64,
            delta.bytes() as f64 / 1e6,
        );
        let users = self.users_on(connected);
        let users_target = self.users_target_in(second);
        self.files.append_second(&SecondRow {
            unix_end,
            begins,
            span,
            users,
            users_target,
            delta,
            totals: &self.totals,
            tasks: &self.tasks,
        });
        self.series
            .push(SeriesPoint::new(unix_end, users, delta, 1.0));
        if self.is_loading() && !self.cleaning {
            self.steer_by(second, delta);
        }
    }

    /// Feeds a written second to the sweep or autoterm and notes what they ask for.
    fn steer_by(&mut self, second: u64, delta: &StatsDelta) {
        let elapsed = self.load_started.map(|s| s.elapsed()).unwrap_or_default();
        if let Some(sweep) = self.sweep.as_mut() {
            match sweep.on_second(second, delta, elapsed) {
                crate::load::sweep::Steer::Hold => {}
                crate::load::sweep::Steer::Rate(rate) => {
                    let (step, steps) = sweep.progress();
                    let result = sweep.result();
                    if let Some(last) = result.steps.last() {
                        self.files.event(&format!(
                            "sweep step {step} of {steps} ({}/s) {}: achieved {:.1}/s over {}s; next step {}/s",
                            last.offered_rate, last.verdict, last.achieved_rate, last.seconds, rate
                        ));
                    }
                    self.files.write_sweep(&result);
                    if let Some(a) = self.arrival.as_mut() {
                        a.rate = rate;
                    }
                    self.steer = Some(Steering::Rebalance);
                }
                crate::load::sweep::Steer::Done => {
                    let result = sweep.result();
                    self.files.write_sweep(&result);
                    self.steer = Some(Steering::Stop(format!("sweep over: {}", result.ended)));
                }
            }
        }
        if let Some(autoterm) = self.autoterm.as_mut() {
            if let Some(stop) = autoterm.on_second(delta.requests()) {
                let why = format!(
                    "autoterm: the completed rate ({:.1}/s) was stable over {}s (cv {:.2}% < {}%) after {}s",
                    stop.rate, stop.window_s, stop.cv_percent, stop.cv_bound_percent, stop.after_s
                );
                self.autoterm_stop = Some(stop);
                self.steer = Some(Steering::Stop(why));
            }
        }
    }

    /// Seconds of load so far (or in all, once it ended).
    pub fn load_seconds(&self) -> f64 {
        match (self.load_started, self.load_ended) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            (Some(a), None) => a.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }

    /// The numbers every view shows, from the merged totals.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::new(
            &self.spec.run_id,
            self.state,
            &self.spec.scenario.name,
            // With users stages, the most users any stage asked for (the stage in force ends
            // at the last one's, often 0).
            self.user_stages
                .iter()
                .map(|s| s.users)
                .max()
                .unwrap_or(self.users_target),
            self.load_seconds(),
            &self.totals,
            &self.tasks,
        );
        summary.autoterm = self.autoterm_stop.clone();
        summary.checks = self.checks_report.clone();
        summary
    }

    /// Copies the live per-worker records and totals into what run.json records.
    pub fn sync_record(&mut self) {
        self.record.workers = self
            .participants
            .values()
            .map(|p| p.record.clone())
            .collect();
        self.record.requests = self.totals.requests();
        self.record.failures = self.totals.failures();
        self.record.bytes = self.totals.bytes();
        self.record.buckets = self
            .totals
            .buckets
            .iter()
            .map(|(name, t)| {
                let counts = crate::results::artifacts::BucketCounts {
                    requests: t.requests,
                    failures: t.failures,
                    bytes: t.bytes,
                };
                (name.clone(), counts)
            })
            .collect();
    }

    /// Refreshes summary.json and run.json while the run goes, so a run cut by a crash keeps
    /// its numbers.
    pub fn write_progress(&mut self) {
        self.files.write_summary(&self.summary());
        self.sync_record();
        self.files.write_record(&self.record);
    }

    /// The state a run that wound down as `state` ends in, with the reason recorded: a run
    /// that crossed a threshold, or lost users to an engine fault, fails.
    pub fn verdict(&mut self, state: RunState) -> RunState {
        // Thresholds judge runs that ran their course (or were stopped), not broken ones.
        let crossed: Vec<String> = if matches!(state, RunState::Completed | RunState::Stopped) {
            let summary = self.summary();
            self.spec
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
            self.record.reason = Some(format!("thresholds crossed: {}", crossed.join("; ")));
            RunState::Failed
        };
        // What the cluster kept is not what the run wrote: the run fails, naming the keys.
        let checks_failed = self.checks_report.as_ref().and_then(|c| c.failure());
        let state = match checks_failed {
            Some(why) => {
                self.record.reason = Some(match self.record.reason.take() {
                    Some(other) => format!("{why}; {other}"),
                    None => why,
                });
                if matches!(state, RunState::Completed | RunState::Stopped) {
                    RunState::Failed
                } else {
                    state
                }
            }
            None => state,
        };
        // A run that lost users did not run the load that was asked: it fails, whatever else.
        let deaths: Vec<String> =
            self.participants
                .values()
                .flat_map(|p| {
                    p.record.died_users.iter().map(|d| {
                        format!("user {} of worker {}: {}", d.user, p.record.name, d.message)
                    })
                })
                .collect();
        let Some(first) = deaths.first() else {
            return state;
        };
        let died = format!(
            "{} virtual user{} died (an engine fault, counted as `internal` failures; see events.log), first {first}",
            deaths.len(),
            if deaths.len() == 1 { "" } else { "s" }
        );
        self.record.reason = Some(match self.record.reason.take() {
            Some(other) => format!("{died}; {other}"),
            None => died,
        });
        if matches!(state, RunState::Completed | RunState::Stopped) {
            RunState::Failed
        } else {
            state
        }
    }

    /// Ends the run as `state` (after the verdict): the final summary, run.json, the last
    /// event line, and the report (rendered last, so it shows all of them).
    pub fn finish(&mut self, state: RunState) {
        self.state = state;
        self.record.state = state;
        self.record.ended_at = Some(artifacts::now_rfc3339());
        self.sync_record();
        let reason = self
            .record
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        self.files.event(&format!("state {state}{reason}"));
        let summary = self.summary();
        if let Some(sweep) = &self.sweep {
            // Before the report, which draws it.
            self.files.write_sweep(&sweep.result());
        }
        self.files.finish(&summary, &self.record);
    }
}

#[cfg(test)]
mod tests;
