//! Real runs of the real `chopsticks` binary against the real RadosGW: every operation,
//! multipart, prefill with verified shared reads, cleanup and `keep`, and a graceful stop.
//!
//! Scenarios use `sequence: true` and `--iterations`, so the exact number of requests of each
//! task, the bytes moved and the objects left behind follow from the scenario alone.

mod common;

use chopsticks::control::RunState;
use chopsticks::load::driver::Driver;
use common::{run_scenario, Finished, TestBucket};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The run completed, exited 0, and no request failed, was skipped or was cut off.
fn assert_clean_completion(run: &Finished) {
    run.cli.expect_code(0);
    assert_eq!(
        run.record.state,
        RunState::Completed,
        "{:?}",
        run.record.reason
    );
    assert_eq!(run.summary.state, RunState::Completed);
    assert_eq!(
        run.summary.total.failures, 0,
        "failures: {:?}",
        run.summary.failures
    );
    assert!(run.summary.failures.is_empty());
    for t in &run.summary.tasks {
        assert_eq!(t.skipped, 0, "task {} skipped requests", t.name);
        assert_eq!(t.aborted, 0, "task {} had requests cut off", t.name);
    }
}

/// Cleanup deleted exactly `deleted` objects and left the whole bucket empty.
async fn assert_cleaned_up(bucket: &TestBucket, run: &Finished, deleted: u64) {
    let cleanup = run.record.cleanup.as_ref().expect("run.json has cleanup");
    assert!(cleanup.performed);
    assert!(cleanup.errors.is_empty(), "{:?}", cleanup.errors);
    assert_eq!(cleanup.remaining_objects, Some(0));
    assert!(cleanup.complete, "{cleanup:?}");
    assert_eq!(cleanup.deleted_objects, deleted);
    assert_eq!(cleanup.aborted_uploads, 0);
    assert_eq!(
        bucket.keys().await,
        Vec::<String>::new(),
        "bucket not empty"
    );
    assert!(bucket
        .driver
        .pending_uploads("")
        .await
        .expect("list uploads")
        .is_empty());
}

/// (Total Request Count, Total Failure Count) of the last `Aggregated` row of
/// `stats_history.csv`, if there is a complete one.
fn history_totals(run_dir: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(run_dir.join("stats_history.csv")).ok()?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().ok()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (name, requests, failures) = (
        col("Name")?,
        col("Total Request Count")?,
        col("Total Failure Count")?,
    );
    let mut last = None;
    for row in reader.records().flatten() {
        if row.get(name) == Some("Aggregated") && row.len() == headers.len() {
            last = Some((
                row.get(requests)?.parse().ok()?,
                row.get(failures)?.parse().ok()?,
            ));
        }
    }
    last
}

/// `stats.csv` rows by name: column name → value.
fn stats_csv(run_dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(run_dir.join("stats.csv")).expect("stats.csv");
    let headers = reader.headers().expect("stats.csv header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("stats.csv row");
            let row: BTreeMap<String, String> = headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect();
            (row["Name"].clone(), row)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_runs_exactly_as_often_as_asked() {
    every_operation(TestBucket::new("every_operation")).await;
}

/// The same exact counts through the stock SDK driver (the default is the lean one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_runs_exactly_as_often_as_asked_with_the_aws_sdk_driver() {
    let mut bucket = TestBucket::new("every_operation_sdk");
    bucket.config.driver = chopsticks::s3_config::DriverKind::AwsSdk;
    every_operation(bucket).await;
}

async fn every_operation(bucket: TestBucket) {
    let dir = common::workdir();
    const SIZE: u64 = 10 * KIB;
    const RANGE: u64 = KIB;
    let run = run_scenario(
        &bucket,
        dir.path(),
        r#"
name: every_operation
users:
  - name: all_ops
    sequence: true
    tasks:
      - {op: put, name: put, size: 10KiB}
      - {op: get, name: get, key: own}
      - {op: get, name: range_get, key: own, range: 1KiB}
      - {op: head, name: head, key: own}
      - {op: copy, name: copy, key: own}
      - {op: list, name: list, key: own, max_keys: 100}
      - {op: delete, name: delete, key: own}
verify: true
"#,
        &["-u", "3", "-i", "4"],
    )
    .await;
    assert_clean_completion(&run);

    // 3 users x 4 passes through the sequence.
    let expected_bytes = [
        ("put", 12 * SIZE),
        ("get", 12 * SIZE),
        ("range_get", 12 * RANGE),
        ("head", 0),
        // A server-side copy counts its source's size.
        ("copy", 12 * SIZE),
        ("list", 0),
        ("delete", 0),
    ];
    let names: Vec<&str> = run.summary.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        expected_bytes.iter().map(|(n, _)| *n).collect::<Vec<_>>()
    );
    for (name, bytes) in expected_bytes {
        let t = run.task(name);
        assert_eq!(t.requests, 12, "{name} requests");
        assert_eq!(t.failures, 0, "{name} failures");
        assert_eq!(t.bytes, bytes, "{name} bytes");
        // Time to first byte is measured for reads only.
        assert_eq!(t.ttfb_ms.is_some(), name.contains("get"), "{name} ttfb");
    }
    let total_bytes: u64 = expected_bytes.iter().map(|(_, b)| b).sum();
    assert_eq!(run.summary.total.requests, 84);
    assert_eq!(run.summary.total.bytes, total_bytes);
    assert_eq!(run.summary.users, 3);

    // run.json agrees with summary.json and records what was asked.
    assert_eq!(run.record.requests, 84);
    assert_eq!(run.record.failures, 0);
    assert_eq!(run.record.bytes, total_bytes);
    assert_eq!(run.record.parameters.users, 3);
    assert_eq!(run.record.parameters.iterations, Some(4));
    assert_eq!(run.record.scenario.name, "every_operation");
    assert!(run
        .record
        .key_prefix
        .starts_with(&format!("chopsticks/{}/", run.record.run_id)));
    let prepare = run.record.prepare.as_ref().expect("run.json has prepare");
    assert_eq!(prepare.bucket, "created");
    assert_eq!(prepare.prefilled_objects, 0);
    assert_eq!(run.record.workers.len(), 1);
    assert_eq!(run.record.workers[0].requests, 84);
    assert_eq!(run.record.workers[0].fate, "finished");

    // Each pass writes two objects (put, copy) and deletes one: 12 are left for cleanup.
    assert_cleaned_up(&bucket, &run, 12).await;

    // The CSV artifacts carry Locust's columns and the same numbers.
    let stats = stats_csv(&run.run_dir);
    let put = &stats["put"];
    assert_eq!(put["Type"], "PUT");
    assert_eq!(put["Request Count"], "12");
    assert_eq!(put["Failure Count"], "0");
    assert_eq!(put["Average Content Size"], "10240.00");
    assert_eq!(put["TTFB 50%"], "");
    assert!(!stats["get"]["TTFB 50%"].is_empty());
    assert!(stats["get"].contains_key("MB/s") && stats["get"].contains_key("99%"));
    assert_eq!(stats["Aggregated"]["Request Count"], "84");
    let failures = std::fs::read_to_string(run.run_dir.join("failures.csv")).expect("failures");
    assert_eq!(failures, "Method,Name,Error,Occurrences\n");
    assert_eq!(history_totals(&run.run_dir), Some((84, 0)));
    let events = std::fs::read_to_string(run.run_dir.join("events.log")).expect("events.log");
    assert!(events.contains("state completed"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_are_complete_and_read_back_verified() {
    let bucket = TestBucket::new("multipart");
    let dir = common::workdir();
    const SIZE: u64 = 11 * MIB;
    // 11 MiB in 5 MiB parts: 5 + 5 + 1, two in flight.
    let run = run_scenario(
        &bucket,
        dir.path(),
        r#"
name: multipart
users:
  - name: uploader
    sequence: true
    tasks:
      - {op: multipart_put, name: multipart, size: 11MiB, part_size: 5MiB, parts_in_flight: 2}
      - {op: get, name: read_back, key: own}
verify: true
"#,
        &["-u", "2", "-i", "2"],
    )
    .await;
    assert_clean_completion(&run);
    let mp = run.task("multipart");
    assert_eq!((mp.requests, mp.failures, mp.bytes), (4, 0, 4 * SIZE));
    assert_eq!(mp.method, "PUT");
    let get = run.task("read_back");
    assert_eq!((get.requests, get.failures, get.bytes), (4, 0, 4 * SIZE));
    assert_eq!(run.summary.total.requests, 8);
    // Four objects, no upload left unfinished.
    assert_cleaned_up(&bucket, &run, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefilled_objects_are_shared_and_verified() {
    let bucket = TestBucket::new("prefill_shared");
    let dir = common::workdir();
    const OBJECTS: u64 = 20;
    const SIZE: u64 = 8 * KIB;
    let run = run_scenario(
        &bucket,
        dir.path(),
        r#"
name: shared_reads
users:
  - name: reader
    sequence: true
    tasks:
      - {op: get, name: read, key: shared}
      - {op: get, name: range_read, key: shared, range: 1KiB}
      - {op: head, name: stat, key: shared}
prefill: {objects: 20, size: 8KiB}
verify: true
"#,
        &["-u", "2", "-i", "5"],
    )
    .await;
    assert_clean_completion(&run);
    let prepare = run.record.prepare.as_ref().expect("run.json has prepare");
    assert_eq!(prepare.prefilled_objects, OBJECTS);
    assert_eq!(prepare.prefilled_bytes, OBJECTS * SIZE);
    for (name, bytes) in [("read", 10 * SIZE), ("range_read", 10 * KIB), ("stat", 0)] {
        let t = run.task(name);
        assert_eq!(
            (t.requests, t.failures, t.bytes),
            (10, 0, bytes),
            "task {name}"
        );
    }
    // Only the prefilled pool was written; cleanup removes all of it.
    assert_cleaned_up(&bucket, &run, OBJECTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_exactly_the_objects_the_run_wrote() {
    let bucket = TestBucket::new("keep");
    let dir = common::workdir();
    let run = run_scenario(
        &bucket,
        dir.path(),
        r#"
name: kept
users:
  - name: writer
    sequence: true
    tasks:
      - {op: put, name: put, weight: 2, size: 2KiB}
      - {op: delete, name: delete, key: own}
prefill: {objects: 3, size: 1KiB}
keep: true
"#,
        &["-u", "2", "-i", "3"],
    )
    .await;
    assert_clean_completion(&run);
    assert_eq!(run.task("put").requests, 12);
    assert_eq!(run.task("delete").requests, 6);
    let cleanup = run.record.cleanup.as_ref().expect("run.json has cleanup");
    assert!(!cleanup.performed);
    assert_eq!(cleanup.deleted_objects, 0);

    // Each pass writes two objects and deletes one: 2 users x 3 passes, plus the prefill.
    let prefix = &run.record.key_prefix;
    let keys = bucket.keys().await;
    assert_eq!(keys.len(), 9, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with(prefix.as_str())),
        "{keys:?}"
    );
    let shared = bucket.keys_under(&format!("{prefix}shared/")).await;
    assert_eq!(shared.len(), 3, "{shared:?}");

    let deleted = bucket.driver.delete_many(&keys).await.expect("delete kept");
    assert_eq!(deleted, 9);
    assert!(bucket.keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_gracefully_and_cleans_up() {
    let bucket = TestBucket::new("graceful_stop");
    let dir = common::workdir();
    let scenario = common::write_scenario(
        dir.path(),
        "scenario.yaml",
        r#"
name: until_stopped
users:
  - name: writer
    wait: {constant: 0.02}
    tasks:
      - {op: put, name: put, weight: 2, size: 4KiB}
      - {op: get, name: get, key: own}
      - {op: delete, name: delete, key: own}
verify: true
"#,
    );
    let workload = bucket.write_workload(dir.path());
    let run_dir = dir.path().join("runs").join("run");
    let child = common::spawn_cli(
        dir.path(),
        &[
            "run",
            "--workload-config",
            workload.to_str().expect("utf-8"),
            "-f",
            scenario.to_str().expect("utf-8"),
            "--run-dir",
            run_dir.to_str().expect("utf-8"),
            "-u",
            "2",
            "-r",
            "100",
        ],
    );
    // No duration and no iterations: it runs until signalled. Wait for load to be recorded.
    common::wait_until(
        "stats_history.csv shows requests",
        Duration::from_secs(60),
        || history_totals(&run_dir).is_some_and(|(requests, _)| requests > 0),
    )
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
    let cli = child.finish().await;
    cli.expect_code(0);

    let record = common::read_record(&run_dir);
    let summary = common::read_summary(&run_dir);
    assert_eq!(record.state, RunState::Stopped, "{:?}", record.reason);
    assert_eq!(summary.state, RunState::Stopped);
    assert!(summary.total.requests > 0);
    assert_eq!(summary.total.failures, 0, "{:?}", summary.failures);
    assert_eq!(record.requests, summary.total.requests);
    // In-flight requests were allowed to finish, not cut off.
    assert!(summary.tasks.iter().all(|t| t.aborted == 0));

    // Cleanup deleted exactly what the users wrote and did not delete themselves.
    let put = summary.tasks.iter().find(|t| t.name == "put").expect("put");
    let delete = summary
        .tasks
        .iter()
        .find(|t| t.name == "delete")
        .expect("delete");
    let cleanup = record.cleanup.as_ref().expect("run.json has cleanup");
    assert!(
        cleanup.performed && cleanup.errors.is_empty(),
        "{cleanup:?}"
    );
    assert_eq!(cleanup.remaining_objects, Some(0));
    assert!(cleanup.complete, "{cleanup:?}");
    assert_eq!(cleanup.deleted_objects, put.requests - delete.requests);
    assert!(bucket.keys().await.is_empty(), "bucket not empty");
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    assert!(events.contains("stop requested"), "{events}");
}
