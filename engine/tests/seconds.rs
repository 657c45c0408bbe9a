//! Seconds that are seconds: with real daemons (a coordinator and two workers) against the
//! real RadosGW, every row of `stats_history.csv` holds exactly the requests that completed in
//! its second of the run, so a steady load gives steady rows and a server stall shows exactly
//! in the seconds it covered.
//!
//! The load is paced (`wait: {pacing: P}`: each user starts one request every P seconds
//! whatever it took, and after a stall sends the ones it missed back to back), so the true rate is known: U users complete U/P requests a second. In any
//! one-second window each user completes 1/P requests, give or take one (where its completions
//! fall against the window's edges), so a correctly attributed second deviates from the median
//! by at most U requests. The bug this guards against showed 0 and then double the rate in
//! alternate seconds: far outside that bound.
//!
//! The stall is made by a TCP proxy in front of the shared RadosGW (`proxy/`) that holds every
//! byte for 2 s; the shared RadosGW itself is never stalled.

mod cluster;
mod common;
mod proxy;

use chopsticks::control::RunState;
use cluster::{Cluster, Options};
use common::wait_for;
use proxy::{Mode, Proxy};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest a whole run may take, from start to a terminal state.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// One second of the history: its timestamp, and the requests that completed in it.
#[derive(Debug, Clone, Copy)]
struct Row {
    t: i64,
    requests: f64,
}

/// The `Aggregated` rows of `stats_history.csv`, in file order.
fn aggregate_rows(run_dir: &Path) -> Vec<Row> {
    let mut reader = csv::Reader::from_path(run_dir.join("stats_history.csv")).expect("history");
    let headers = reader.headers().expect("header").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (t, name, rps) = (col("Timestamp"), col("Name"), col("Requests/s"));
    reader
        .records()
        .map(|r| r.expect("history row"))
        .filter(|r| &r[name] == "Aggregated")
        .map(|r| Row {
            t: r[t].parse().expect("timestamp"),
            requests: r[rps].parse().expect("requests/s"),
        })
        .collect()
}

/// When second 0 of the run began (from `events.log`), as Unix seconds.
fn clock_origin(run_dir: &Path) -> f64 {
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    let marker = "second 0 of the run begins at ";
    let at = events
        .lines()
        .find_map(|l| l.split_once(marker).map(|(_, t)| t.trim().to_string()))
        .unwrap_or_else(|| panic!("no '{marker}' in events.log:\n{events}"));
    let t = chrono::DateTime::parse_from_rfc3339(&at).expect("rfc3339 origin");
    t.timestamp_micros() as f64 / 1e6
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no seconds to take a median of");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Timestamps are consecutive Unix seconds: strictly increasing, none repeated or skipped.
fn assert_consecutive(rows: &[Row]) {
    for w in rows.windows(2) {
        assert_eq!(w[1].t, w[0].t + 1, "timestamps {} then {}", w[0].t, w[1].t);
    }
}

fn paced_scenario(pacing: f64) -> String {
    format!(
        "name: paced\nusers:\n  - name: writer\n    wait: {{pacing: {pacing}}}\n    tasks:\n      - {{op: put, name: put, size: 1KiB}}\n"
    )
}

#[tokio::test]
async fn a_steady_load_gives_steady_seconds_with_consecutive_timestamps() {
    const USERS: u32 = 16;
    const PACING: f64 = 0.2;
    let cluster = Cluster::start(
        "steady-seconds",
        Options {
            workers: 2,
            ..Options::default()
        },
    )
    .await;
    let scenario = cluster.scenario("paced.yaml", &paced_scenario(PACING));
    let started = cluster
        .start_run(&[
            "-f",
            &scenario,
            "-u",
            &USERS.to_string(),
            "-r",
            "100",
            "-t",
            "30s",
            "--expected-workers",
            "2",
        ])
        .await;
    let end = cluster.wait_ended(&started.run_id, RUN_LIMIT).await;
    assert_eq!(end.state, RunState::Completed, "{:?}", end.reason);
    let run_dir = cluster.run_dir(&started.run_id);
    let rows = aggregate_rows(&run_dir);
    eprintln!("steady seconds: {rows:?}");
    // 30 s of load: 30 full seconds and at most a short last one.
    assert!(
        (30..=32).contains(&rows.len()),
        "{} rows: {rows:?}",
        rows.len()
    );
    assert_consecutive(&rows);
    // Interior seconds: not the first (users still spawning) nor the last two (stopping).
    let interior = &rows[1..rows.len() - 2];
    let m = median(interior.iter().map(|r| r.requests).collect());
    let expected = f64::from(USERS) / PACING;
    // The median is the paced rate (a sanity check of the setup: RGW kept up with it).
    assert!(
        (m - expected).abs() <= f64::from(USERS),
        "median {m}/s, paced rate {expected}/s: {rows:?}"
    );
    for r in interior {
        assert!(
            (r.requests - m).abs() <= f64::from(USERS),
            "second ending {} has {} requests, median {m}, bound ±{USERS}: {rows:?}",
            r.t,
            r.requests
        );
    }
    // Every request is in exactly one second: the rows add up to the run's total (no sample
    // arrived after its second was written: events.log would say so).
    let summary = cluster.summary(&started.run_id);
    let in_rows: f64 = rows.iter().map(|r| r.requests).sum();
    assert_eq!(in_rows, summary.total.requests as f64, "{rows:?}");
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    assert!(
        !events.contains("arrived after that second was written"),
        "{events}"
    );
}

#[tokio::test]
async fn a_two_second_server_stall_shows_in_exactly_the_seconds_it_covered() {
    const USERS: u32 = 8;
    const PACING: f64 = 0.1;
    let mut cluster = Cluster::start(
        "stall-seconds",
        Options {
            workers: 0,
            ..Options::default()
        },
    )
    .await;
    // The workers reach RadosGW through the proxy; the coordinator (prepare, cleanup) does not.
    let proxy = Proxy::start(&cluster.config.endpoint, Duration::ZERO).await;
    let mut through_proxy = cluster.config.clone();
    through_proxy.endpoint = proxy.endpoint.clone();
    std::fs::write(
        &cluster.workload_file,
        common::workload_yaml(&through_proxy),
    )
    .expect("write workload");
    cluster.start_worker("w1");
    cluster.start_worker("w2");
    cluster.wait_workers(&["w1", "w2"]).await;

    let scenario = cluster.scenario("paced.yaml", &paced_scenario(PACING));
    let started = cluster
        .start_run(&[
            "-f",
            &scenario,
            "-u",
            &USERS.to_string(),
            "-r",
            "100",
            "-t",
            "14s",
            "--expected-workers",
            "2",
        ])
        .await;
    // Stall once the load has run steadily for a few seconds.
    wait_for("5 s of load", RUN_LIMIT, async || {
        let s = cluster.client.status().await.map_err(|e| e.to_string())?;
        (s.state == RunState::Running && s.elapsed_s >= 5.0)
            .then_some(())
            .ok_or(format!("{} for {:.1}s", s.state, s.elapsed_s))
    })
    .await;
    let stall_from = unix_now();
    proxy.set(Mode::Stall);
    // The fault itself lasts 2 s: this sleep is its duration, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set(Mode::Forward);
    let stall_to = unix_now();
    let end = cluster.wait_ended(&started.run_id, RUN_LIMIT).await;
    assert_eq!(end.state, RunState::Completed, "{:?}", end.reason);

    let run_dir = cluster.run_dir(&started.run_id);
    let rows = aggregate_rows(&run_dir);
    assert_consecutive(&rows);
    let origin = clock_origin(&run_dir);
    eprintln!("origin {origin:.3}, stall {stall_from:.3}..{stall_to:.3}, seconds: {rows:?}");
    // Row t covers [origin + n, origin + n + 1) with t = floor(origin) + n + 1.
    let span_of = |r: &Row| {
        let n = (r.t - origin.floor() as i64 - 1) as f64;
        (origin + n, origin + n + 1.0)
    };
    // A response already through the proxy when the stall began may still be read just
    // after: allow 0.1 s for that.
    let inside = |r: &Row| {
        let (a, b) = span_of(r);
        a >= stall_from + 0.1 && b <= stall_to
    };
    let overlaps = |r: &Row| {
        let (a, b) = span_of(r);
        a < stall_to && b > stall_from
    };
    // Paced users keep their schedule (issue 13): after the stall each sends the tasks it
    // missed back to back, so the second the stall ends in and the one after hold that
    // catch-up (USERS × stall / PACING requests at most) on top of the steady rate.
    let catching_up = |r: &Row| {
        let (a, _) = span_of(r);
        !overlaps(r) && a < stall_to + 1.0
    };
    let catch_up = f64::from(USERS) * (stall_to - stall_from) / PACING;
    // Interior: not the first second (spawning) nor the last two (stopping).
    let interior = &rows[1..rows.len() - 2];
    let steady: Vec<f64> = interior
        .iter()
        .filter(|r| !overlaps(r) && !catching_up(r))
        .map(|r| r.requests)
        .collect();
    let m = median(steady);
    let bound = f64::from(USERS);
    let low: Vec<i64> = interior
        .iter()
        .filter(|r| r.requests < m - bound)
        .map(|r| r.t)
        .collect();
    let stalled: Vec<i64> = interior.iter().filter(|r| inside(r)).map(|r| r.t).collect();
    // A 2 s stall wholly covers at least one second.
    assert!(!stalled.is_empty(), "no second inside the stall: {rows:?}");
    for r in interior.iter().filter(|r| inside(r)) {
        assert_eq!(
            r.requests, 0.0,
            "second ending {} was stalled: {rows:?}",
            r.t
        );
    }
    // Exactly the stalled seconds are low: each second wholly inside the stall is, and any
    // low second overlaps it. Every other second is steady.
    assert!(stalled.iter().all(|t| low.contains(t)));
    for r in interior.iter().filter(|r| low.contains(&r.t)) {
        assert!(
            overlaps(r),
            "second ending {} is low, away from the stall: {rows:?}",
            r.t
        );
    }
    for r in interior.iter().filter(|r| !overlaps(r) && !catching_up(r)) {
        assert!(
            (r.requests - m).abs() <= bound,
            "second ending {} has {} requests, median {m}, bound ±{bound}: {rows:?}",
            r.t,
            r.requests
        );
    }
    // No second holds more than the steady rate, the held requests (one per user) and the
    // paced users' catch-up.
    for r in interior {
        assert!(r.requests <= m + 2.0 * bound + catch_up, "{rows:?}");
    }
}
