//! Load stages (issue 13 item 2): closed-model users and arrival rates stage by stage, with
//! the real binary against the real RadosGW, on one machine and over two worker daemons; and
//! the rate from every front end (`run --rate`, `ctl start --rate`).

mod cluster;
mod common;

use chopsticks::control::RunState;
use chopsticks::results::summary::TaskSummary;
use std::path::Path;
use std::time::Duration;

/// Light closed-model users: one small PUT every 50 ms each.
const USERS_STAGED: &str = "name: staged-users
users:
  - name: writer
    wait: {constant: 0.05}
    tasks:
      - {op: put, name: put, size: 1KiB}
load:
  users: {stages: [{users: 2, for: 2s}, {users: 6, for: 2s}, {users: 0, for: 2s}]}
";

/// 50 arrivals/s for 2 s, then 150/s for 2 s (step and hold): 400 arrivals.
const RATE_STAGED: &str = "name: staged-rate
users:
  - name: writer
    tasks:
      - {op: put, name: put, size: 1KiB}
load:
  arrival: {stages: [{rate: 50/s, for: 2s}, {rate: 150/s, for: 2s}]}
  max_in_flight: 400
";

const PUT_ONLY: &str =
    "name: plain\nusers:\n  - name: writer\n    tasks:\n      - {op: put, name: put, size: 1KiB}\n";

/// One `Aggregated` row of stats_history.csv.
#[derive(Debug)]
struct Second {
    users: u32,
    users_target: u32,
    arrivals: u64,
}

fn history(run_dir: &Path) -> Vec<Second> {
    let mut reader = csv::Reader::from_path(run_dir.join("stats_history.csv"))
        .expect("stats_history.csv exists");
    let headers = reader.headers().expect("header").clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {headers:?}"))
    };
    let (name, users, target, arrivals) = (
        col("Name"),
        col("User Count"),
        col("Users Target"),
        col("Arrivals/s"),
    );
    reader
        .records()
        .map(|r| r.expect("a CSV row"))
        .filter(|r| &r[name] == "Aggregated")
        .map(|r| Second {
            users: r[users].parse().expect("users"),
            users_target: r[target].parse().expect("target"),
            arrivals: r[arrivals].parse().expect("arrivals"),
        })
        .collect()
}

/// Requests issued = completed + failed + aborted, none aborted, none failed.
fn assert_no_request_cut(t: &TaskSummary) {
    assert_eq!(
        t.issued,
        t.requests + t.aborted,
        "issued = requests + aborted"
    );
    assert_eq!(t.aborted, 0, "no request was aborted by a stage change");
    assert_eq!(t.failures, 0, "no request failed");
}

/// The users stages 2 → 6 → 0 as stats_history.csv records them.
fn assert_users_follow_the_stages(rows: &[Second]) {
    let targets: Vec<u32> = rows.iter().map(|r| r.users_target).collect();
    assert!(
        targets.len() >= 6 && targets[..6] == [2, 2, 6, 6, 0, 0],
        "Users Target per second: {targets:?}"
    );
    assert!(targets[6..].iter().all(|t| *t == 0), "{targets:?}");
    let users: Vec<u32> = rows.iter().map(|r| r.users).collect();
    // Running users are sampled when each second is written (just after it ends): they follow
    // the targets, never above the highest stage.
    assert!(users.iter().all(|u| *u <= 6), "User Count: {users:?}");
    assert!(users.contains(&6), "the 6-user stage ran: {users:?}");
    assert!(users.contains(&2), "the 2-user stage ran: {users:?}");
    assert_eq!(
        users.last(),
        Some(&0),
        "the last stage has no users: {users:?}"
    );
}

/// The rate stages 50/s → 150/s as stats_history.csv and summary.json record them.
fn assert_arrivals_follow_the_stages(rows: &[Second], total: &TaskSummary) {
    // The integral of the stages: 50 × 2 + 150 × 2 (whole per worker, so exact).
    assert_eq!(total.arrivals, 400, "{total:?}");
    assert_eq!(total.arrivals, total.issued + total.dropped + total.skipped);
    assert_eq!(total.dropped, 0);
    let per_second: Vec<u64> = rows.iter().map(|r| r.arrivals).collect();
    assert!(per_second.len() >= 4, "{per_second:?}");
    // Each arrival counts in the second it was sent; one sent a moment after a boundary
    // (a busy machine) moves to the next second, so a second may differ by a few; the
    // step from 50 to 150 stands out whatever.
    for (second, want) in [(0, 50), (1, 50), (2, 150), (3, 150)] {
        let got = per_second[second];
        assert!(
            got.abs_diff(want) <= 10,
            "second {second}: {got} arrivals, the stage says {want}: {per_second:?}"
        );
    }
    assert!(per_second.iter().sum::<u64>() <= 400, "{per_second:?}");
}

/// Users 2 → 6 → 0 (2 s each, spawned at 100/s): stats_history.csv follows the stages, the
/// run lasts their sum, and no request is cut by a stage change.
#[tokio::test]
async fn users_follow_their_stages_and_removed_users_finish_their_request() {
    let bucket = common::TestBucket::new("stages-users");
    let dir = common::workdir();
    let run = common::run_scenario(&bucket, dir.path(), USERS_STAGED, &["--headless"]).await;
    run.cli.expect_code(0);
    // Without --run-time the run lasts its stages, and says so.
    run.cli.expect_stderr(&["until the stages end"]);
    assert_eq!(run.summary.state, RunState::Completed);
    assert_eq!(
        run.record.parameters.duration_s,
        Some(6.0),
        "the stages' sum"
    );
    assert_eq!(run.record.parameters.users, 2, "the first stage's users");
    assert_eq!(run.summary.users, 6, "the most users a stage asked for");
    assert_no_request_cut(&run.summary.total);
    assert!(run.summary.total.requests > 0);
    assert_users_follow_the_stages(&history(&run.run_dir));
    let events = std::fs::read_to_string(run.run_dir.join("events.log")).expect("events.log");
    for line in [
        "users stages (step and hold): 2 users for 2s, 6 users for 2s, 0 users for 2s",
        "users stage 1: 6 users for 2s",
        "users stage 2: 0 users for 2s",
    ] {
        assert!(events.contains(line), "{line}\n{events}");
    }
}

/// Arrivals at 50/s for 2 s, then 150/s for 2 s: exactly 400, second by second.
#[tokio::test]
async fn arrivals_follow_their_rate_stages_to_the_integral() {
    let bucket = common::TestBucket::new("stages-rate");
    let dir = common::workdir();
    let run = common::run_scenario(&bucket, dir.path(), RATE_STAGED, &["--headless"]).await;
    run.cli.expect_code(0);
    run.cli.expect_stderr(&["until the stages end"]);
    assert_eq!(run.summary.state, RunState::Completed);
    assert_eq!(run.record.parameters.duration_s, Some(4.0));
    let arrival = run.record.parameters.arrival.clone().expect("arrival");
    assert_eq!(arrival.stages.len(), 2);
    assert_no_request_cut(&run.summary.total);
    assert_arrivals_follow_the_stages(&history(&run.run_dir), &run.summary.total);
}

/// Over two worker daemons: the rate stages' arrivals are split exactly (400 in all), the
/// users stages' target over time is the same as on one machine, and `ctl start --rate` runs
/// an open-model run on a scenario without a load block.
#[tokio::test]
async fn stages_and_ctl_rate_over_two_workers() {
    use cluster::{Cluster, Options};
    let cluster = Cluster::start(
        "stages-two",
        Options {
            workers: 2,
            ..Options::default()
        },
    )
    .await;
    let rate = cluster.scenario("rate.yaml", RATE_STAGED);
    let users = cluster.scenario("users.yaml", USERS_STAGED);
    let plain = cluster.scenario("plain.yaml", PUT_ONLY);
    let two = ["--expected-workers", "2"];

    // Rate stages: each worker takes 25/s then 75/s; 200 arrivals each, 400 in all.
    let started = cluster
        .start_run(&[&["-f", &rate, "-u", "1", "-r", "1"][..], &two[..]].concat())
        .await;
    let end = cluster
        .wait_ended(&started.run_id, Duration::from_secs(60))
        .await;
    assert_eq!(end.state, RunState::Completed, "{:?}", end.reason);
    let summary = cluster.summary(&started.run_id);
    assert_no_request_cut(&summary.total);
    let rows = history(&cluster.run_dir(&started.run_id));
    assert_arrivals_follow_the_stages(&rows, &summary.total);
    for w in ["w1", "w2"] {
        let own = cluster.worker_totals(w, &started.run_id).await;
        assert_eq!(own.stats.total().arrivals, 200, "worker {w}");
    }

    // Users stages: 1 + 1, then 3 + 3, then none.
    let started = cluster
        .start_run(&[&["-f", &users, "-u", "1", "-r", "100"][..], &two[..]].concat())
        .await;
    let end = cluster
        .wait_ended(&started.run_id, Duration::from_secs(60))
        .await;
    assert_eq!(end.state, RunState::Completed, "{:?}", end.reason);
    let summary = cluster.summary(&started.run_id);
    assert_no_request_cut(&summary.total);
    assert_users_follow_the_stages(&history(&cluster.run_dir(&started.run_id)));
    let assigned = cluster
        .events(&started.run_id)
        .into_iter()
        .filter(|e| e.text.starts_with("assigned 3 users to worker"))
        .count();
    assert_eq!(assigned, 2, "the 6-user stage split 3 + 3");

    // ctl start --rate: arrivals at 100/s on a scenario with no load block, 50/s per worker.
    let started = cluster
        .start_run(&[&["-f", &plain, "--rate", "100/s", "-t", "2s"][..], &two[..]].concat())
        .await;
    let end = cluster
        .wait_ended(&started.run_id, Duration::from_secs(60))
        .await;
    assert_eq!(end.state, RunState::Completed, "{:?}", end.reason);
    let record = cluster.record(&started.run_id);
    let arrival = record
        .parameters
        .arrival
        .expect("run.json records the rate");
    assert_eq!((arrival.rate, record.parameters.users), (100.0, 0));
    let total = cluster.summary(&started.run_id).total;
    assert_no_request_cut(&total);
    // 2 s at 100/s: 200 due before the end, and the ones due in the moment the stop takes to
    // reach each worker.
    assert!((200..=220).contains(&total.arrivals), "{total:?}");
    assert!(cluster
        .events(&started.run_id)
        .iter()
        .any(|e| e.text.contains("assigned 50.000000 arrivals/s")));
    // --rate with a users-stages scenario is refused by the coordinator: exit 2, named.
    let refused = cluster
        .ctl(&["start", "-f", &users, "--rate", "10/s"])
        .await;
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("load.users.stages") && refused.stderr.contains("drop rate"),
        "{}",
        refused.stderr
    );
}

/// Bad stages and clashing flags stop before anything runs: exit 2, the field and the fix.
#[tokio::test]
async fn bad_stages_exit_2_naming_the_field_and_the_fix() {
    let dir = common::workdir();
    let many = format!(
        "{{users: {{stages: [{}]}}}}",
        vec!["{users: 1, for: 1s}"; 1001].join(", ")
    );
    for (load, needles) in [
        (
            "{users: {stages: [{users: 2}]}}",
            &["load.users.stages[0].for", "missing", "for: 30s"][..],
        ),
        (
            "{users: {stages: []}}",
            &["load.users.stages", "no stages", "e.g."][..],
        ),
        (
            "{users: {stages: [{users: -2, for: 1s}]}}",
            &["load.users.stages[0].users", "below the minimum of 0"][..],
        ),
        (
            "{users: {stages: [{users: 2, for: 0s}]}}",
            &["load.users.stages[0].for", "e.g."][..],
        ),
        (
            "{users: {stages: [{users: 0, for: 1s}]}}",
            &["load.users.stages", "no load"][..],
        ),
        (
            many.as_str(),
            &["load.users.stages", "1001 stages", "at most 1000"][..],
        ),
        (
            "{arrival: {stages: [{rate: -5/s, for: 1s}]}}",
            &["load.arrival.stages[0].rate", "below the minimum of 0"][..],
        ),
        (
            "{arrival: {stages: [{rate: 5/s}]}}",
            &["load.arrival.stages[0].for", "missing"][..],
        ),
        (
            "{arrival: {stages: [{rate: 0/s, for: 1s}]}}",
            &["load.arrival.stages", "no load"][..],
        ),
        (
            "{arrival: {rate: 5/s, stages: [{rate: 5/s, for: 1s}]}}",
            &["load.arrival.stages", "a rate or stages, not both"][..],
        ),
        (
            "{arrival: {rate: 0/s}}",
            &["load.arrival.rate", "below the minimum"][..],
        ),
    ] {
        let scenario =
            common::write_scenario(dir.path(), "bad.yaml", &format!("{PUT_ONLY}load: {load}\n"));
        common::cli(
            dir.path(),
            &["run", "-f", scenario.to_str().unwrap(), "--headless"],
        )
        .await
        .expect_code(2)
        .expect_stderr(needles);
    }
    let staged = common::write_scenario(dir.path(), "users.yaml", USERS_STAGED);
    let staged = staged.to_str().unwrap();
    let rated = common::write_scenario(dir.path(), "rate.yaml", RATE_STAGED);
    let rated = rated.to_str().unwrap();
    for (args, needles) in [
        (
            vec!["run", "-f", staged, "-u", "5", "--headless"],
            &["--users/-u", "load.users.stages", "drop --users/-u"][..],
        ),
        (
            vec!["run", "-f", staged, "-t", "10s", "--headless"],
            &["duration 10s differs from the 6s", "leave the duration out"][..],
        ),
        (
            vec!["run", "-f", rated, "-t", "3s", "--headless"],
            &["duration 3s differs from the 4s"][..],
        ),
        (
            vec!["run", "-f", staged, "--rate", "10/s", "--headless"],
            &["rate", "load.users.stages"][..],
        ),
        (
            vec!["ctl", "start", "--rate", "fast"],
            &["rate", "'fast' is not a rate", "500/s"][..],
        ),
        (
            vec!["ctl", "start", "--rate", "10/s", "-u", "3"],
            &["--rate", "--users"][..],
        ),
        (vec!["ctl", "start"], &["--users", "--spawn-rate"][..]),
    ] {
        common::cli(dir.path(), &args)
            .await
            .expect_code(2)
            .expect_stderr(needles);
    }
}
