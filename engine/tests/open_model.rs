//! Open-model load (arrivals at a rate) and latency free of coordinated omission (issue 13),
//! with the real binary against the real RadosGW. Server stalls go through a TCP proxy in
//! front of the shared RadosGW (`proxy/`), never to the RadosGW itself.

mod cluster;
mod common;
mod proxy;

use base64::Engine as _;
use chopsticks::control::RunState;
use chopsticks::results::summary::{Summary, TaskSummary};
use common::{CliChild, TestBucket};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use proxy::{Mode, Proxy};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PUT_ONLY: &str =
    "name: open\nusers:\n  - name: writer\n    tasks:\n      - {op: put, name: put, size: 1KiB}\n";

/// Starts `chopsticks run` on `bucket` through `endpoint` with `scenario_yaml`.
fn spawn_run(
    bucket: &TestBucket,
    endpoint: &str,
    dir: &Path,
    scenario_yaml: &str,
    args: &[&str],
) -> (CliChild, PathBuf) {
    common::spawn_run_through(bucket, endpoint, dir, scenario_yaml, args, &[])
}

fn summary_now(run_dir: &Path) -> Result<Summary, String> {
    let text = std::fs::read_to_string(run_dir.join("summary.json"))
        .map_err(|e| format!("no summary.json yet ({e})"))?;
    serde_json::from_str(&text).map_err(|e| format!("summary.json: {e}"))
}

/// Every histogram of `tag` in the run's histograms.hlog, added up.
fn hlog_histogram(run_dir: &Path, tag: &str) -> Histogram<u64> {
    let bytes = std::fs::read(run_dir.join("histograms.hlog")).expect("histograms.hlog");
    let mut total = Histogram::<u64>::new(3).expect("histogram");
    for entry in IntervalLogIterator::new(&bytes) {
        let Ok(LogEntry::Interval(h)) = entry else {
            continue;
        };
        if h.tag().map(|t| t.as_str()) != Some(tag) {
            continue;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.encoded_histogram())
            .expect("base64 histogram");
        let one: Histogram<u64> = Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(raw))
            .expect("histogram");
        total.add(&one).expect("add");
    }
    total
}

/// Samples of at least `ms` milliseconds.
fn at_least(h: &Histogram<u64>, ms: u64) -> u64 {
    if h.is_empty() {
        return 0;
    }
    h.count_between(ms * 1000, h.max().max(ms * 1000))
}

/// The exact accounting every open-model task and total keeps.
fn assert_arrivals_add_up(t: &TaskSummary) {
    assert_eq!(t.issued, t.requests + t.aborted, "{}", t.name);
    assert_eq!(
        t.arrivals,
        t.issued + t.dropped + t.skipped,
        "{}: arrivals = issued + dropped (+ skipped)",
        t.name
    );
}

/// Stalls the proxy for `secs` once the run has done `after` requests; returns how many
/// connections the client opened during the stall.
async fn stall_after(proxy: &Proxy, run_dir: &Path, after: u64, secs: u64) -> usize {
    common::wait_for(
        &format!("{after} requests before the stall"),
        Duration::from_secs(60),
        async || {
            let s = summary_now(run_dir)?;
            (s.total.requests >= after)
                .then_some(())
                .ok_or(format!("{} requests", s.total.requests))
        },
    )
    .await;
    proxy.set(Mode::Stall);
    let before = proxy.accepted();
    // The fault's length is the point of the test, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let opened = proxy.accepted() - before;
    proxy.set(Mode::Forward);
    opened
}

/// An open-model run of `load` (the lines of a `load:` block) on PUT_ONLY for `run_for`,
/// through a proxy that stalls for `secs` once the run has done `after` requests.
struct StalledRun {
    summary: Summary,
    run_dir: PathBuf,
    /// Connections the client opened during the stall.
    opened: usize,
    /// Holds the run's directory.
    _dir: tempfile::TempDir,
}

async fn run_with_stall(
    bucket_name: &str,
    load: &str,
    run_for: &str,
    after: u64,
    secs: u64,
) -> StalledRun {
    let bucket = TestBucket::new(bucket_name);
    let dir = common::workdir();
    let proxy = Proxy::start(&bucket.rgw.endpoint, Duration::ZERO).await;
    let scenario = format!("{PUT_ONLY}load:\n{load}");
    let (child, run_dir) = spawn_run(
        &bucket,
        &proxy.endpoint,
        dir.path(),
        &scenario,
        &["-t", run_for],
    );
    let opened = stall_after(&proxy, &run_dir, after, secs).await;
    child.finish().await.expect_code(0);
    StalledRun {
        summary: common::read_summary(&run_dir),
        run_dir,
        opened,
        _dir: dir,
    }
}

/// Constant arrivals at 100/s for 10 s, RadosGW stalled for 3 s in the middle: the arrivals
/// keep coming on schedule, and every request the stall held shows its wait in `latency_ms`.
#[tokio::test]
async fn a_stall_shows_in_the_latency_of_every_arrival_it_held() {
    let stalled = run_with_stall(
        "open-model-stall",
        "  arrival: {rate: 100/s}\n  max_in_flight: 2000\n",
        "10s",
        200,
        3,
    )
    .await;
    let (summary, run_dir, opened) = (&stalled.summary, &stalled.run_dir, stalled.opened);
    // Without max_connections, every request that finds no idle connection opens one: the
    // ~300 arrivals the stall held opened about as many.
    eprintln!("{opened} connections opened during the stall");
    assert!(
        opened >= 100,
        "{opened} connections opened during the stall"
    );
    assert_eq!(summary.state, RunState::Completed);
    let put = &summary.tasks[0];
    eprintln!(
        "arrivals {} issued {} dropped {} late {} requests {} latency max {} ms service max {:?}",
        put.arrivals,
        put.issued,
        put.dropped,
        put.late,
        put.requests,
        put.latency_ms.max,
        put.service_ms.as_ref().map(|s| s.max)
    );
    for t in [put, &summary.total] {
        assert_arrivals_add_up(t);
        assert_eq!(t.latency_from, "intended_start");
    }
    // 10 s at 100/s: exactly 1000 arrivals, at 0 s, 0.01 s, … 9.99 s of the run's clock
    // (none at 10 s, however late the stop reaches the scheduler).
    assert_eq!(put.arrivals, 1000);
    assert_eq!(
        put.dropped, 0,
        "2000 in flight is far more than a 3 s stall holds"
    );
    assert_eq!(put.failures, 0);
    assert!(put.latency_ms.max >= 2900.0, "{:?}", put.latency_ms);
    let latency = hlog_histogram(run_dir, "put");
    let service = hlog_histogram(run_dir, "service:put");
    assert_eq!(latency.len(), put.requests - put.failures);
    assert_eq!(service.len(), latency.len());
    let slow = at_least(&latency, 1000);
    assert!(slow >= 200, "{slow} requests waited 1 s or more");
    // Requests were sent on schedule (the open model has headroom): what they waited, they
    // waited in the server, so the service time tells the same story here; it is smaller
    // only by the scheduling delay.
    let service_ms = put.service_ms.as_ref().expect("service_ms");
    assert!(service_ms.max <= put.latency_ms.max);
    assert_eq!(service_ms.count, put.latency_ms.count);
}

/// The same stall with `max_connections: 4`: the client opens no connection beyond the 4,
/// the held arrivals queue for them instead of being dropped, and the wait shows in
/// `latency_ms` (from the intended start) while `service_ms` (from the send) holds at most the
/// 4 requests the stall caught on the wire.
#[tokio::test]
async fn max_connections_bounds_the_connections_and_queues_the_rest() {
    let stalled = run_with_stall(
        "open-model-connections",
        "  arrival: {rate: 100/s}\n  max_in_flight: 2000\n  max_connections: 4\n",
        "8s",
        150,
        2,
    )
    .await;
    let (summary, run_dir, opened) = (&stalled.summary, &stalled.run_dir, stalled.opened);
    let put = &summary.tasks[0];
    eprintln!(
        "{opened} connections opened during the stall; arrivals {} issued {} dropped {} latency max {} ms",
        put.arrivals, put.issued, put.dropped, put.latency_ms.max
    );
    for t in [put, &summary.total] {
        assert_arrivals_add_up(t);
    }
    assert!(opened <= 4, "{opened} connections opened during the stall");
    assert_eq!(put.dropped, 0, "queued for a connection, not dropped");
    assert_eq!(put.failures, 0);
    assert!(put.latency_ms.max >= 1900.0, "{:?}", put.latency_ms);
    let latency = hlog_histogram(run_dir, "put");
    let service = hlog_histogram(run_dir, "service:put");
    assert!(
        at_least(&latency, 1000) >= 100,
        "{} requests waited 1 s or more",
        at_least(&latency, 1000)
    );
    assert!(
        at_least(&service, 1000) <= 4,
        "{} requests were in service 1 s or more: only those on the 4 connections can be",
        at_least(&service, 1000)
    );
}

/// The same stall with at most 20 requests in flight: the arrivals that find 20 outstanding
/// are dropped, counted, and the books still balance exactly.
#[tokio::test]
async fn arrivals_beyond_max_in_flight_are_dropped_and_counted() {
    let StalledRun { summary, _dir, .. } = run_with_stall(
        "open-model-dropped",
        "  arrival: {rate: 100/s, poisson: true}\n  max_in_flight: 20\n",
        "8s",
        100,
        2,
    )
    .await;
    let put = &summary.tasks[0];
    eprintln!(
        "arrivals {} issued {} dropped {} late {}",
        put.arrivals, put.issued, put.dropped, put.late
    );
    for t in [put, &summary.total] {
        assert_arrivals_add_up(t);
    }
    // A 2 s stall at 100/s brings ~200 arrivals; 20 fit in flight, the rest are dropped.
    assert!(put.dropped >= 100, "{} dropped", put.dropped);
    assert!(put.issued >= 300, "{} issued", put.issued);
}

/// `pacing` users (10 of them, one task every 0.1 s: 100/s intended) under the same 3 s
/// stall: each request is timed from its intended start, so the requests the stall delayed
/// show their wait in `latency_ms`, while `service_ms` holds only the few that were in flight.
#[tokio::test]
async fn pacing_users_are_timed_from_their_intended_start() {
    let bucket = TestBucket::new("pacing-stall");
    let dir = common::workdir();
    let proxy = Proxy::start(&bucket.rgw.endpoint, Duration::ZERO).await;
    let scenario = "name: paced\nusers:\n  - name: writer\n    wait: {pacing: 0.1}\n    tasks:\n      - {op: put, name: put, size: 1KiB}\n";
    let (child, run_dir) = spawn_run(
        &bucket,
        &proxy.endpoint,
        dir.path(),
        scenario,
        &["-u", "10", "-r", "100", "-t", "10s"],
    );
    stall_after(&proxy, &run_dir, 200, 3).await;
    let run = child.finish().await;
    run.expect_code(0);
    let summary = common::read_summary(&run_dir);
    let put = &summary.tasks[0];
    assert_eq!(put.latency_from, "intended_start");
    assert_eq!(put.arrivals, 0, "closed users have no arrivals");
    assert!(put.latency_ms.max >= 2900.0, "{:?}", put.latency_ms);
    let latency = hlog_histogram(&run_dir, "put");
    let service = hlog_histogram(&run_dir, "service:put");
    let (slow, slow_service) = (at_least(&latency, 1000), at_least(&service, 1000));
    eprintln!("latency >= 1 s: {slow}; service >= 1 s: {slow_service}");
    // ~20 intended starts per user fell 1 s or more before the stall's end.
    assert!(slow >= 150, "{slow} requests with latency >= 1 s");
    // Only the request each user had in flight waited in the server.
    assert!(slow_service <= 20, "{slow_service} with service >= 1 s");
    assert!(service.len() == latency.len());
}

/// Closed users without pacing: latency and service are one histogram, recorded once.
#[tokio::test]
async fn closed_users_without_pacing_record_latency_once() {
    let bucket = TestBucket::new("closed-latency-once");
    let dir = common::workdir();
    let (child, run_dir) = spawn_run(
        &bucket,
        &bucket.rgw.endpoint,
        dir.path(),
        PUT_ONLY,
        &["-u", "2", "-r", "10", "-i", "20"],
    );
    child.finish().await.expect_code(0);
    let summary = common::read_summary(&run_dir);
    let put = &summary.tasks[0];
    assert_eq!(put.requests, 40);
    assert_eq!(put.latency_from, "sent");
    assert_eq!(put.service_ms, None);
    assert_eq!((put.arrivals, put.dropped, put.late), (0, 0, 0));
    assert!(hlog_histogram(&run_dir, "service:put").is_empty());
}

/// Bad arrival input stops before anything runs, naming the field and the fix.
#[tokio::test]
async fn bad_arrival_input_exits_2_naming_the_field_and_the_fix() {
    let dir = common::workdir();
    let base = PUT_ONLY;
    for (load, needles) in [
        (
            "{arrival: {rate: 0/s}}",
            &["load.arrival.rate", "below the minimum", "e.g. 500/s"][..],
        ),
        (
            "{arrival: {rate: -5/s}}",
            &["load.arrival.rate", "below the minimum"][..],
        ),
        (
            "{arrival: {rate: fast}}",
            &["load.arrival.rate", "'fast' is not a rate", "500/s"][..],
        ),
        (
            "{arrival: {rate: 5/s}, max_in_flight: 0}",
            &[
                "load.max_in_flight",
                "below the minimum of 1",
                "max_in_flight: 1000",
            ][..],
        ),
    ] {
        let scenario =
            common::write_scenario(dir.path(), "bad.yaml", &format!("{base}load: {load}\n"));
        common::cli(
            dir.path(),
            &[
                "run",
                "-f",
                scenario.to_str().unwrap(),
                "--headless",
                "-t",
                "1s",
            ],
        )
        .await
        .expect_code(2)
        .expect_stderr(needles);
    }
    let good = common::write_scenario(
        dir.path(),
        "good.yaml",
        &format!("{base}load: {{arrival: {{rate: 5/s}}}}\n"),
    );
    let good = good.to_str().unwrap();
    let plain = common::write_scenario(dir.path(), "plain.yaml", base);
    let plain = plain.to_str().unwrap();
    for (args, needles) in [
        (
            vec!["run", "-f", good, "-u", "5", "--headless", "-t", "1s"],
            &["--users/-u", "load.arrival", "drop --users/-u"][..],
        ),
        (
            vec![
                "run",
                "-f",
                plain,
                "--rate",
                "10/s",
                "-u",
                "3",
                "--headless",
                "-t",
                "1s",
            ],
            &["--users/-u", "--rate"][..],
        ),
        (
            vec![
                "run",
                "-f",
                plain,
                "--rate",
                "0/s",
                "--headless",
                "-t",
                "1s",
            ],
            &["rate 0 is below the minimum", "500/s"][..],
        ),
        (
            vec![
                "run",
                "-f",
                plain,
                "--rate",
                "fast",
                "--headless",
                "-t",
                "1s",
            ],
            &["'fast' is not a rate", "500/s"][..],
        ),
        (
            vec!["run", "-f", plain, "--rate=-3/s", "--headless", "-t", "1s"],
            &["rate -3 is below the minimum"][..],
        ),
        // Written apart, a negative rate still reaches the rate's own check.
        (
            vec![
                "run",
                "-f",
                plain,
                "--rate",
                "-5/s",
                "--headless",
                "-t",
                "1s",
            ],
            &["rate -5 is below the minimum of 1/h"][..],
        ),
    ] {
        common::cli(dir.path(), &args)
            .await
            .expect_code(2)
            .expect_stderr(needles);
    }
}

/// 300 arrivals/s over 3 worker daemons: 100/s each; one SIGKILLed mid-run, and within 5 s the
/// two others run 150/s each, so the run keeps its rate.
#[tokio::test]
async fn a_lost_workers_arrivals_move_to_the_others_within_5s() {
    use cluster::{Cluster, Options};
    let mut cluster = Cluster::start(
        "open-model-lost",
        Options {
            workers: 3,
            ..Options::default()
        },
    )
    .await;
    let scenario = cluster.scenario(
        "open.yaml",
        &format!("{PUT_ONLY}load:\n  arrival: {{rate: 300/s}}\n  max_in_flight: 3000\n"),
    );
    // ctl start asks for users; an open-model run has none (run.json records the arrival).
    let started = cluster
        .start_run(&[
            "-f",
            &scenario,
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "12s",
            "--expected-workers",
            "3",
        ])
        .await;
    let run_id = started.run_id;
    let events_with = |cluster: &Cluster, text: &str| {
        cluster
            .events(&run_id)
            .into_iter()
            .filter(|e| e.text.contains(text))
            .collect::<Vec<_>>()
    };
    common::wait_for(
        "three shares of 100 arrivals/s",
        Duration::from_secs(30),
        async || {
            let n = events_with(
                &cluster,
                "assigned 100.000000 arrivals/s (at most 1000 in flight)",
            )
            .len();
            (n == 3).then_some(()).ok_or(format!("{n} shares"))
        },
    )
    .await;
    common::wait_for(
        "600 requests before the kill",
        Duration::from_secs(30),
        async || {
            let s = cluster.status().await;
            (s.requests >= 600)
                .then_some(())
                .ok_or(format!("{} requests", s.requests))
        },
    )
    .await;
    cluster.worker("w2").sigkill();
    let end = cluster.wait_ended(&run_id, Duration::from_secs(60)).await;
    assert_eq!(end.state, RunState::Completed, "{:?}", end.reason);
    let events = cluster.events(&run_id);
    let lost_at = events
        .iter()
        .find(|e| e.text.starts_with("worker w2 ") && e.text.contains("disconnected"))
        .unwrap_or_else(|| panic!("no loss of w2 in events.log: {events:#?}"))
        .at;
    let moved: Vec<_> = events
        .iter()
        .filter(|e| {
            e.at >= lost_at
                && e.text
                    .contains("assigned 150.000000 arrivals/s (at most 1500 in flight)")
        })
        .collect();
    assert_eq!(moved.len(), 2, "{events:#?}");
    for e in &moved {
        let after = (e.at - lost_at).to_std().expect("after the loss");
        assert!(
            after <= Duration::from_secs(5),
            "{}: {after:?} after the loss",
            e.text
        );
    }
    // What the survivors did adds up exactly, each by its own count.
    for w in ["w1", "w3"] {
        let own = cluster.worker_totals(w, &run_id).await;
        let t = own.stats.total();
        assert_eq!(t.arrivals, t.issued() + t.dropped + t.skipped, "worker {w}");
        // Its share was 100/s, then 150/s: over 12 s, more than 100/s on average.
        assert!(t.arrivals > 1250, "worker {w}: {} arrivals", t.arrivals);
    }
    let record = cluster.record(&run_id);
    let arrival = record
        .parameters
        .arrival
        .expect("run.json records the arrival");
    assert_eq!((arrival.rate, arrival.max_in_flight), (300.0, 3000));
}
