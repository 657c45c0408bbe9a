//! Runs a lost coordinator left behind, learnt from its workers (see [`crate::cluster::cut_run`]).
//!
//! When a leader unit is lost mid-run, the new leader's coordinator has no record of the run,
//! but each worker reports the run it was cut from right after `Welcome`. The first report
//! creates the run directory with state `interrupted` and starts the cleanup of its key
//! prefix (objects and unfinished multipart uploads); each further report adds that worker's
//! totals. A run this coordinator itself knows (live or finished) is left as it is.

use super::{key_prefix, prepare::cleanup_earlier_run, Actor};
use crate::cluster::protocol::{CutRun, ToWorker};
use crate::control::RunState;
use crate::load::driver::Driver;
use crate::results::artifacts::{self, RunDir, RunParameters, RunRecord, WorkerRecord};
use std::sync::Arc;

/// What recording one worker's report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// A new `interrupted` run was created from it (and its cleanup started).
    Created,
    /// The worker's totals were added to a run recovered from an earlier report.
    Added,
    /// The run is known already (live, finished, or this worker was counted): nothing changed.
    Known,
    /// The report cannot name a run directory (bad run id) or it could not be written.
    Rejected,
}

/// A run id a worker may name: what a start request allows, nothing that walks paths.
fn valid_run_id(id: &str) -> bool {
    key_prefix(id).is_ok()
}

/// Cleanup deletes everything under the key prefix: it must be exactly the prefix a
/// coordinator gives its runs, never a shorter one a confused worker could send.
fn valid_prefix(cut: &CutRun) -> bool {
    cut.spec.key_prefix == format!("chopsticks/{}/", cut.spec.run_id)
}

/// The record of a run known only from worker `cut`.
fn record_from(cut: &CutRun, target: crate::s3_config::TargetInfo) -> RunRecord {
    RunRecord {
        run_id: cut.spec.run_id.clone(),
        engine_version: crate::VERSION.to_string(),
        state: RunState::Interrupted,
        reason: Some(
            "the coordinator was lost mid-run (leader unit lost); recovered from the workers' \
             reports: totals are what they had recorded when cut, parameters other than the \
             scenario are unknown"
                .into(),
        ),
        created_at: artifacts::now_rfc3339(),
        started_at: None,
        ended_at: Some(cut.cut_at.clone()),
        parameters: RunParameters {
            scenario_source: format!("{} (as sent to the workers)", cut.spec.scenario.name),
            users: 0,
            spawn_rate: 0.0,
            duration_s: None,
            iterations: cut.spec.iterations,
            expected_workers: None,
            stop_timeout_s: cut.spec.stop_timeout_s,
            arrival: None,
        },
        scenario: cut.spec.scenario.clone(),
        scenario_text: None,
        seed: cut.spec.seed,
        key_prefix: cut.spec.key_prefix.clone(),
        target,
        prepare: None,
        cleanup: None,
        workers: Vec::new(),
        requests: 0,
        failures: 0,
        bytes: 0,
        // Cut workers report totals, not their per-bucket split.
        buckets: Default::default(),
    }
}

/// Adds worker `cut`'s part to `record` (users add up to what the workers were running).
fn add_worker(record: &mut RunRecord, cut: &CutRun, id: u32) {
    record.requests += cut.totals.requests();
    record.failures += cut.totals.failures();
    record.bytes += cut.totals.bytes();
    record.parameters.users += cut.users;
    record.workers.push(WorkerRecord {
        id,
        name: cut.worker.clone(),
        requests: cut.totals.requests(),
        failures: cut.totals.failures(),
        bytes: cut.totals.bytes(),
        stats_messages: cut.sent_stats,
        joined_at: String::new(),
        left_at: Some(cut.cut_at.clone()),
        fate: "cut".into(),
        missing_events: 0,
        // Deaths are reported with stats deltas; a cut worker's report does not carry them.
        died_users: Vec::new(),
    });
}

impl<D: Driver> Actor<D> {
    /// Records the run worker `from` (or, with `None`, this unit's own worker) was cut from,
    /// and tells the worker it may forget it.
    pub(super) fn record_cut_run(&mut self, from: Option<u32>, mut cut: CutRun) -> Recorded {
        let run_id = cut.spec.run_id.clone();
        if let Some(name) = from
            .and_then(|id| self.workers.get(&id))
            .map(|s| s.name.clone())
        {
            cut.worker = name;
        }
        let outcome = self.record_cut(from.unwrap_or(0), &cut);
        if outcome != Recorded::Rejected {
            if let Some(slot) = from.and_then(|id| self.workers.get(&id)) {
                let _ = slot.tx.try_send(ToWorker::CutRunRecorded {
                    run_id: run_id.clone(),
                });
            }
        }
        log::info!(
            "run {run_id}: worker {} reported it was cut from it ({} requests): {outcome:?}",
            cut.worker,
            cut.totals.requests()
        );
        outcome
    }

    fn record_cut(&mut self, id: u32, cut: &CutRun) -> Recorded {
        let run_id = &cut.spec.run_id;
        if !valid_run_id(run_id) || !valid_prefix(cut) {
            log::warn!(
                "ignoring a cut run with the bad id {run_id:?} or key prefix {:?}",
                cut.spec.key_prefix
            );
            return Recorded::Rejected;
        }
        if self.run.as_ref().is_some_and(|r| &r.spec.run_id == run_id) {
            return Recorded::Known;
        }
        let dir = self.config.state_dir.join(run_id);
        // A cleanup task of this run may write run.json at the same time.
        let update = artifacts::record_update();
        let existing = artifacts::read_record(&dir).ok();
        let (mut record, created) = match existing {
            None => (record_from(cut, self.config.target.clone()), true),
            Some(r) if r.state == RunState::Interrupted && r.prepare.is_none() => (r, false),
            Some(_) => return Recorded::Known,
        };
        if !created && record.workers.iter().any(|w| w.name == cut.worker) {
            return Recorded::Known;
        }
        add_worker(&mut record, cut, id);
        let mut rd = match RunDir::create(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                log::error!("cannot record the cut run {run_id}: {e}");
                return Recorded::Rejected;
            }
        };
        rd.event(&format!(
            "worker {} reported the run cut at {}: {} requests, {} failures, {} bytes, {} users",
            cut.worker,
            cut.cut_at,
            cut.totals.requests(),
            cut.totals.failures(),
            cut.totals.bytes(),
            cut.users
        ));
        if created {
            rd.event(
                "state interrupted (recovered from the workers after the coordinator was lost)",
            );
        }
        if let Err(e) = rd.write_json(artifacts::RUN_JSON, &record) {
            log::error!("cannot record the cut run {run_id}: {e}");
            return Recorded::Rejected;
        }
        drop(update);
        if created {
            log::warn!(
                "run {run_id}: recorded as interrupted from a worker's report; cleaning up {}",
                record.key_prefix
            );
            if cut.spec.scenario.keep {
                rd.event("the scenario keeps its objects (keep: true): no cleanup");
            } else {
                tokio::spawn(cleanup_earlier_run(
                    Arc::clone(&self.driver),
                    dir,
                    self.config.cleanup_timeout,
                ));
            }
            Recorded::Created
        } else {
            Recorded::Added
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(run_id: &str, prefix: &str) -> CutRun {
        let (scenario, _) = crate::load::scenario::Scenario::resolve("s3_small_objects").unwrap();
        CutRun {
            spec: crate::cluster::protocol::RunSpec {
                run_id: run_id.into(),
                scenario,
                seed: 1,
                key_prefix: prefix.into(),
                iterations: None,
                stop_timeout_s: 30.0,
                clock_origin_unix_us: 0,
            },
            worker: "w1".into(),
            users: 3,
            sent_stats: 7,
            totals: Default::default(),
            cut_at: "t".into(),
        }
    }

    #[test]
    fn only_the_runs_own_prefix_is_cleaned() {
        assert!(valid_prefix(&cut("r1", "chopsticks/r1/")));
        for bad in [
            "",
            "chopsticks/",
            "chopsticks/r2/",
            "other/r1/",
            "chopsticks/r1",
        ] {
            assert!(!valid_prefix(&cut("r1", bad)), "{bad:?}");
        }
    }

    #[test]
    fn a_recovered_record_adds_up_the_workers() {
        let target = crate::s3_config::TargetInfo {
            endpoint: "http://x".into(),
            bucket: "b".into(),
            region: "r".into(),
            driver: crate::s3_config::DriverKind::AwsSdk,
            driver_config: Default::default(),
            embedded: false,
            spread: Default::default(),
        };
        let a = cut("r1", "chopsticks/r1/");
        let mut record = record_from(&a, target);
        add_worker(&mut record, &a, 1);
        let mut b = cut("r1", "chopsticks/r1/");
        b.worker = "w2".into();
        add_worker(&mut record, &b, 2);
        assert_eq!(record.state, RunState::Interrupted);
        assert_eq!(record.parameters.users, 6);
        assert_eq!(record.workers.len(), 2);
        assert_eq!(record.workers[1].fate, "cut");
        assert_eq!(record.key_prefix, "chopsticks/r1/");
    }

    /// A worker's report that arrives while the recovered run's cleanup runs is kept: the
    /// cleanup's write adds its result to the record as it is then, not as it was.
    #[tokio::test]
    async fn a_cleanup_keeps_the_workers_added_while_it_ran() {
        let target = crate::s3_config::TargetInfo {
            endpoint: "http://x".into(),
            bucket: "b".into(),
            region: "r".into(),
            driver: crate::s3_config::DriverKind::AwsSdk,
            driver_config: Default::default(),
            embedded: false,
            spread: Default::default(),
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r1");
        let a = cut("r1", "chopsticks/r1/");
        let mut record = record_from(&a, target);
        add_worker(&mut record, &a, 1);
        let rd = RunDir::create(&dir).unwrap();
        rd.write_json(artifacts::RUN_JSON, &record).unwrap();

        // Both listings of the first pass fail, so the cleanup waits out a backoff.
        let flaky = crate::cluster::coordinator::prepare::tests::Stuck {
            objects: 0,
            failing_lists: std::sync::atomic::AtomicU32::new(2),
            deletes_fail: false,
        };
        let cleaning = tokio::spawn(cleanup_earlier_run(
            Arc::new(flaky),
            dir.clone(),
            std::time::Duration::from_secs(30),
        ));
        tokio::task::yield_now().await;
        {
            let _update = artifacts::record_update();
            let mut now = artifacts::read_record(&dir).unwrap();
            assert!(now.cleanup.is_none(), "the cleanup has not finished yet");
            let mut b = cut("r1", "chopsticks/r1/");
            b.worker = "w2".into();
            add_worker(&mut now, &b, 2);
            rd.write_json(artifacts::RUN_JSON, &now).unwrap();
        }
        cleaning.await.unwrap();
        let done = artifacts::read_record(&dir).unwrap();
        assert!(
            done.cleanup.as_ref().is_some_and(|c| c.complete),
            "{done:?}"
        );
        let names: Vec<&str> = done.workers.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["w1", "w2"]);
        assert_eq!(done.parameters.users, 6);
    }

    #[test]
    fn run_ids_from_workers_cannot_walk_paths() {
        assert!(valid_run_id("20261122T101500Z-3f9c2a"));
        for bad in ["", "..", "../etc", "a/b", ".hidden", "a b"] {
            assert!(!valid_run_id(bad), "{bad}");
        }
    }
}
