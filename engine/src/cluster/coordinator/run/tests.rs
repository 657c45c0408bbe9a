//! `Run` driven with synthetic deltas: no sockets, no coordinator task, no S3. Each test knows
//! exactly what it sent, so totals, per-worker records, history rows and percentiles are
//! asserted exactly.

use super::*;
use crate::control::StartRequest;
use crate::load::driver::{FailureKind, OpError};
use crate::load::stats::{Outcome, Recorder};
use crate::s3_config::{DriverConfig, DriverKind};

fn target() -> TargetInfo {
    TargetInfo {
        endpoint: "http://127.0.0.1:9".into(),
        bucket: "unit".into(),
        region: "us-east-1".into(),
        driver: DriverKind::default(),
        driver_config: DriverConfig::default(),
        embedded: true,
        spread: Default::default(),
    }
}

fn start(users: u32, thresholds: Option<&str>) -> StartSpec {
    let mut yaml = crate::load::scenario::builtin("s3_small_objects")
        .unwrap()
        .to_string();
    if let Some(t) = thresholds {
        yaml.push_str(t);
    }
    StartSpec::from_request(&StartRequest {
        scenario: "unit test".into(),
        scenario_yaml: Some(yaml),
        users,
        spawn_rate: 10.0,
        duration: None,
        iterations: None,
        expected_workers: Some(2),
        wait_workers_s: None,
        run_id: None,
        seed: Some(7),
        stop_timeout_s: None,
        rate: None,
        sweeping: Default::default(),
    })
    .unwrap()
}

/// A run with workers 1 and 2 enlisted, load begun at `origin`.
fn loading_run(dir: &Path, thresholds: Option<&str>) -> (Run, Instant) {
    let mut run = Run::create(
        &start(4, thresholds),
        "unit-run".into(),
        &dir.join("unit-run"),
        &target(),
    )
    .unwrap();
    let origin = Instant::now();
    run.begin_load(origin, SystemTime::now());
    run.enlist(1, "w1");
    run.enlist(2, "w2");
    (run, origin)
}

fn ok(ms: u64, bytes: u64) -> Outcome {
    Outcome::Done {
        latency: Duration::from_millis(ms),
        ttfb: None,
        bytes,
        error: None,
        waited: None,
    }
}

fn failed(ms: u64) -> Outcome {
    Outcome::Done {
        latency: Duration::from_millis(ms),
        ttfb: None,
        bytes: 0,
        error: Some(OpError::new(
            FailureKind::Http {
                status: 503,
                code: "SlowDown".into(),
            },
            "slow down",
        )),
        waited: None,
    }
}

/// One second of `download` outcomes as a worker would send it.
fn second(second: u64, outcomes: &[Outcome]) -> SecondDelta {
    let recorder = Recorder::new(vec!["download".into()]);
    for (user, o) in outcomes.iter().enumerate() {
        recorder.record_at(second, user as u64, 0, o);
    }
    let mut taken = recorder.take_before(u64::MAX);
    assert_eq!(taken.len(), 1);
    let (s, delta) = taken.remove(0);
    SecondDelta { second: s, delta }
}

fn set(ids: &[u32]) -> BTreeSet<u32> {
    ids.iter().copied().collect()
}

#[test]
fn deltas_merge_into_exact_totals_per_worker_and_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, origin) = loading_run(dir.path(), None);
    // Worker 1: 100 successes of 1..=100 ms in second 0; worker 2: 100 of 101..=200 ms and
    // 10 failures in second 0, then 5 successes in second 1.
    let w1: Vec<Outcome> = (1..=100).map(|ms| ok(ms, 1000)).collect();
    let mut w2: Vec<Outcome> = (101..=200).map(|ms| ok(ms, 2000)).collect();
    w2.extend((0..10).map(|_| failed(5)));
    let merged = run.merge_stats(1, 1, 2, false, &[second(0, &w1)], 1, vec![]);
    assert_eq!(merged, Merged::Yes);
    let later: Vec<Outcome> = (0..5).map(|_| ok(10, 10)).collect();
    let merged = run.merge_stats(
        2,
        1,
        2,
        false,
        &[second(0, &w2), second(1, &later)],
        2,
        vec![],
    );
    assert_eq!(merged, Merged::Yes);
    // The same message again is not counted twice; a stranger's is not counted at all.
    assert_eq!(
        run.merge_stats(2, 1, 2, false, &[second(0, &w2)], 2, vec![]),
        Merged::Repeated
    );
    assert_eq!(
        run.merge_stats(9, 1, 2, false, &[second(0, &w2)], 2, vec![]),
        Merged::NotEnlisted
    );

    assert_eq!(run.totals.requests(), 215);
    assert_eq!(run.totals.failures(), 10);
    assert_eq!(run.totals.bytes(), 100 * 1000 + 100 * 2000 + 5 * 10);
    assert_eq!(
        (
            run.participants[&1].record.requests,
            run.participants[&2].record.requests
        ),
        (100, 115)
    );
    assert_eq!(run.participants[&2].record.failures, 10);

    // Worker 1 has sent all of second 0, worker 2 everything through second 1: second 0 is
    // ready at once; second 1 waits for worker 1 until the grace has passed.
    run.close_ready(
        &set(&[1, 2]),
        &set(&[1, 2]),
        origin + Duration::from_millis(1500),
        Duration::from_secs(3),
    );
    assert_eq!(run.series.len(), 1);
    assert_eq!(run.rates.0, 210.0);
    assert_eq!(run.rates.1, 10.0);
    run.close_ready(
        &set(&[1, 2]),
        &set(&[1, 2]),
        origin + Duration::from_secs(5),
        Duration::from_secs(3),
    );
    assert_eq!(run.series.len(), 2);
    assert_eq!(run.rates.0, 5.0);

    // Percentiles of the 205 successes in second 0 and 1: 1..=200 ms and five of 10 ms.
    run.load_ended = Some(origin + Duration::from_secs(2));
    let summary = run.summary();
    let download = summary.tasks.iter().find(|t| t.name == "download").unwrap();
    assert_eq!(download.requests, 215);
    assert_eq!(download.failures, 10);
    assert_eq!(download.latency_ms.count, 205);
    assert_eq!(download.latency_ms.min, 1.0);
    // HDR keeps 3 significant digits: 200 ms is reported within its bucket's width.
    let max = download.latency_ms.max;
    assert!((200.0..200.2).contains(&max), "max {max}");
    // Sorted, the 103rd of the 205 is 98 ms (1..=9, six 10s, then 11 up): within its bucket.
    let p50 = download.latency_ms.p50;
    assert!((98.0..98.1).contains(&p50), "p50 {p50}");
    let failure = download.failure_latency_ms.as_ref().unwrap();
    assert_eq!(failure.count, 10);
    assert!((5.0..5.01).contains(&failure.max), "{}", failure.max);
    assert_eq!(summary.total.requests, 215);
    assert_eq!(download.requests_per_s, 107.5);

    // run.json gets what was merged, per worker and in all.
    run.sync_record();
    assert_eq!(run.record.requests, 215);
    assert_eq!(run.record.workers.len(), 2);
    assert_eq!(
        run.record.workers.iter().map(|w| w.requests).sum::<u64>(),
        215
    );
}

#[test]
fn a_second_arriving_after_it_was_written_counts_in_the_totals_not_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, origin) = loading_run(dir.path(), None);
    let three: Vec<Outcome> = (0..3).map(|_| ok(1, 1)).collect();
    run.merge_stats(1, 1, 1, false, &[second(0, &three)], 1, vec![]);
    // Worker 2 is silent past the grace (second 0 ends at 1 s, plus 3 s): second 0 is
    // written without it.
    run.close_ready(
        &set(&[1, 2]),
        &set(&[1, 2]),
        origin + Duration::from_millis(4500),
        Duration::from_secs(3),
    );
    assert_eq!(run.series.len(), 1);
    run.merge_stats(2, 1, 1, false, &[second(0, &three)], 1, vec![]);
    assert_eq!(run.late_requests, 3);
    assert_eq!(run.totals.requests(), 6);
    let history: f64 = run.series.iter().map(|p| p.rps).sum();
    assert_eq!(history, 3.0);
}

#[test]
fn crossed_thresholds_and_dead_users_fail_the_run_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, origin) = loading_run(
        dir.path(),
        Some("thresholds:\n  - {task: download, max_p99: 50ms}\n"),
    );
    let slow: Vec<Outcome> = (0..10).map(|_| ok(100, 1)).collect();
    run.merge_stats(1, 1, 1, false, &[second(0, &slow)], 1, vec![]);
    run.close_all(&set(&[1, 2]), origin + Duration::from_secs(1));
    assert_eq!(run.verdict(RunState::Completed), RunState::Failed);
    let reason = run.record.reason.clone().unwrap();
    assert!(
        reason.starts_with("thresholds crossed: p99 of download is"),
        "{reason}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (mut run, _) = loading_run(dir.path(), None);
    let death = UserDeath {
        user: 3,
        class: 0,
        task: Some("download".into()),
        message: "boom".into(),
    };
    run.merge_stats(2, 1, 1, false, &[], 0, vec![death]);
    assert_eq!(run.verdict(RunState::Stopped), RunState::Failed);
    assert_eq!(
        run.record.reason.as_deref(),
        Some("1 virtual user died (an engine fault, counted as `internal` failures; see events.log), first user 3 of worker w2: boom")
    );
    // An interrupted run stays interrupted: the deaths are in its reason.
    assert_eq!(run.verdict(RunState::Interrupted), RunState::Interrupted);
}

#[test]
fn the_run_directory_records_the_resolved_scenario_and_the_final_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut run, origin) = loading_run(dir.path(), None);
    let two: Vec<Outcome> = (0..2).map(|_| ok(3, 7)).collect();
    run.merge_stats(1, 1, 1, false, &[second(0, &two)], 1, vec![]);
    run.finished(1, 1);
    run.lost(2);
    run.close_all(&set(&[1]), origin + Duration::from_secs(1));
    let state = run.verdict(RunState::Completed);
    run.finish(state);
    let record = artifacts::read_record(run.files.path()).unwrap();
    assert_eq!(record.state, RunState::Completed);
    assert_eq!((record.requests, record.bytes), (2, 14));
    let text = record.scenario_text.unwrap();
    assert_eq!(text.origin, "unit test");
    assert_eq!(
        text.yaml,
        crate::load::scenario::builtin("s3_small_objects").unwrap()
    );
    assert_eq!(text.sha256.len(), 64);
    let fates: Vec<&str> = record.workers.iter().map(|w| w.fate.as_str()).collect();
    assert_eq!(fates, ["finished", "lost"]);
    let summary: Summary = serde_json::from_str(
        &std::fs::read_to_string(run.files.path().join(artifacts::SUMMARY_JSON)).unwrap(),
    )
    .unwrap();
    assert_eq!(summary.total.requests, 2);
    let history = std::fs::read_to_string(run.files.path().join(artifacts::HISTORY_CSV)).unwrap();
    assert_eq!(
        history.lines().count(),
        1 + 2,
        "header, download row, aggregate row"
    );
    assert!(run.files.path().join("report.html").is_file());
    // The last event is the final state, written before the report so the report shows it.
    let events = std::fs::read_to_string(run.files.path().join(artifacts::EVENTS_LOG)).unwrap();
    assert!(events.trim_end().ends_with("state completed"), "{events}");
}
