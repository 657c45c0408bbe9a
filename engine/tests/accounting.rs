//! What the numbers mean, checked with the real binary against the real RadosGW: failed
//! requests are not latency, a user that dies is reported and fails the run, and every second
//! of the history holds exactly the requests that completed in it.
//!
//! Server faults go through a TCP proxy in front of the shared RadosGW (`proxy/`), never to
//! the RadosGW itself.

mod common;
mod proxy;

use chopsticks::control::RunState;
use chopsticks::results::summary::Summary;
use common::TestBucket;
use proxy::{Mode, Proxy};
use std::path::Path;
use std::time::Duration;

/// The run's summary.json as it is now (it is rewritten every 2 s while the run goes).
fn summary_now(run_dir: &Path) -> Result<Summary, String> {
    let text = std::fs::read_to_string(run_dir.join("summary.json"))
        .map_err(|e| format!("no summary.json yet ({e})"))?;
    serde_json::from_str(&text).map_err(|e| format!("summary.json: {e}"))
}

/// During an outage, refused connections take a fraction of a millisecond. They used to be
/// latency samples and pulled the p50 down to them; now they are counted apart.
#[tokio::test]
async fn failed_requests_are_not_latency() {
    let bucket = TestBucket::new("failed-requests-are-not-latency");
    let dir = common::workdir();
    // Every response waits 20 ms in the proxy, so every successful request takes at least
    // 20 ms; a refusal is a reset at accept, far below that.
    const DELAY_MS: f64 = 20.0;
    let proxy = Proxy::start(&bucket.rgw.endpoint, Duration::from_millis(DELAY_MS as u64)).await;
    let (child, run_dir) = common::spawn_run_through(
        &bucket,
        &proxy.endpoint,
        dir.path(),
        "name: outage\nusers:\n  - name: writer\n    tasks:\n      - {op: put, name: put, size: 1KiB}\n",
        &["-u", "2", "-r", "100", "-t", "12s"],
        &[],
    );
    common::wait_for(
        "20 successful requests",
        Duration::from_secs(60),
        async || {
            let s = summary_now(&run_dir)?;
            let ok = s.total.requests - s.total.failures;
            (ok >= 20).then_some(()).ok_or(format!("{ok} successes"))
        },
    )
    .await;
    proxy.set(Mode::Refuse);
    // More failures than successes, so a p50 over both would be a refusal's time.
    common::wait_for(
        "more failures than successes",
        Duration::from_secs(30),
        async || {
            let s = summary_now(&run_dir)?;
            let ok = s.total.requests - s.total.failures;
            (s.total.failures > 2 * ok + 100)
                .then_some(())
                .ok_or(format!("{} failures, {ok} successes", s.total.failures))
        },
    )
    .await;
    proxy.set(Mode::Forward);
    let run = child.finish().await;
    run.expect_code(0);
    let summary = common::read_summary(&run_dir);
    assert_eq!(summary.state, RunState::Completed);

    for t in [&summary.tasks[0], &summary.total] {
        let failed = t
            .failure_latency_ms
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no failure_latency_ms", t.name));
        let ok = t.requests - t.failures;
        // The histograms split the requests exactly: successes in latency, failures apart.
        assert_eq!(t.latency_ms.count, ok, "{}", t.name);
        assert_eq!(failed.count, t.failures, "{}", t.name);
        assert!(t.failures > 2 * ok, "{}: {} vs {ok}", t.name, t.failures);
        // Every success waited out the proxy's delay: even the fastest is above it.
        assert!(
            t.latency_ms.min >= DELAY_MS,
            "{}: {:?}",
            t.name,
            t.latency_ms
        );
        assert!(t.latency_ms.p50 >= DELAY_MS, "{}", t.name);
        // The failures' own median is a refusal's time, below the delay.
        assert!(failed.p50 < DELAY_MS, "{}: {failed:?}", t.name);
    }
    let by_kind: u64 = summary.failures.iter().map(|f| f.occurrences).sum();
    assert_eq!(by_kind, summary.total.failures);
    assert!(summary.failures.iter().any(|f| f.error == "connection"));

    // stats.csv keeps Locust's columns; its median is the successes' median.
    let csv = std::fs::read_to_string(run_dir.join("stats.csv")).expect("stats.csv");
    let put = csv.lines().nth(1).expect("put row");
    let median = put.split(',').nth(4).expect("median column");
    assert_eq!(median, format!("{:.3}", summary.tasks[0].latency_ms.p50));
}

/// One `stats_history.csv` aggregate row: (timestamp, users, requests/s).
fn history_aggregates(run_dir: &Path) -> Vec<(i64, u32, f64)> {
    let mut reader = csv::Reader::from_path(run_dir.join("stats_history.csv")).expect("history");
    let headers = reader.headers().expect("header").clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (ts, users, name, rps) = (
        col("Timestamp"),
        col("User Count"),
        col("Name"),
        col("Requests/s"),
    );
    reader
        .records()
        .map(|r| r.expect("history row"))
        .filter(|r| &r[name] == "Aggregated")
        .map(|r| {
            (
                r[ts].parse().expect("timestamp"),
                r[users].parse().expect("users"),
                r[rps].parse().expect("rps"),
            )
        })
        .collect()
}

/// A user whose task panics (made to, by the test-only hook) is reported everywhere, the
/// results it had recorded are kept, the users gauge drops, and the run fails.
#[tokio::test]
async fn a_user_that_panics_is_reported_and_fails_the_run() {
    let bucket = TestBucket::new("a-user-that-panics");
    let dir = common::workdir();
    // 3 users, 30 passes each, 0.1 s apart (about 3 s); user 0 panics after its 15th request
    // (about 1.5 s in, so the first second of the history still has it).
    let (child, run_dir) = common::spawn_run_through(
        &bucket,
        &bucket.rgw.endpoint.clone(),
        dir.path(),
        "name: panics\nusers:\n  - name: writer\n    wait: {constant: 0.1}\n    tasks:\n      - {op: put, name: put, size: 1KiB}\n",
        &["-u", "3", "-r", "100", "-i", "30"],
        &[("CHOPSTICKS_TEST_USER_PANIC_AFTER", "15")],
    );
    let run = child.finish().await;
    run.expect_code(1);
    let summary = common::read_summary(&run_dir);
    let record = common::read_record(&run_dir);
    assert_eq!(record.state, RunState::Failed);
    assert_eq!(summary.state, RunState::Failed);
    let reason = record.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("1 virtual user died") && reason.contains("user 0"),
        "{reason}"
    );
    // Users 1 and 2 ran their 30 passes; user 0 recorded 15 before it died (kept), and its
    // death is one `internal` failure of the task it was on.
    let put = &summary.tasks[0];
    assert_eq!((put.requests, put.failures), (2 * 30 + 15 + 1, 1));
    assert_eq!(put.latency_ms.count, 75);
    assert_eq!(summary.failures.len(), 1, "{:?}", summary.failures);
    assert_eq!(summary.failures[0].error, "internal");
    assert_eq!(summary.failures[0].occurrences, 1);
    assert!(summary.failures[0].sample.contains("user 0 died"));
    // run.json names the dead user.
    let died: Vec<_> = record.workers.iter().flat_map(|w| &w.died_users).collect();
    assert_eq!(died.len(), 1);
    assert_eq!(died[0].user, 0);
    assert_eq!(died[0].task.as_deref(), Some("put"));
    assert_eq!(record.failures, 1);
    assert_eq!(record.requests, 76);
    // events.log says so; the report carries the reason.
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    assert!(
        events.contains("user 0 of worker") && events.contains("died during task put"),
        "{events}"
    );
    assert!(
        events.contains("state failed: 1 virtual user died"),
        "{events}"
    );
    let report = std::fs::read_to_string(run_dir.join("report.html")).expect("report.html");
    assert!(report.contains("1 virtual user died"));
    // The users gauge counts live users only: 3 at first, 2 once user 0 died.
    let history = history_aggregates(&run_dir);
    let users: Vec<u32> = history.iter().map(|(_, u, _)| *u).collect();
    let three = users.iter().position(|u| *u == 3);
    let two = users.iter().position(|u| *u == 2);
    assert!(
        three.is_some() && two.is_some() && three < two,
        "3 users, then 2: {users:?}"
    );
    // Never back to 3: the dead user is not counted, nor replaced.
    assert!(
        users[two.unwrap_or(0)..].iter().all(|u| *u <= 2),
        "{users:?}"
    );
}
