//! Post-run checks (`checks: [readback, listing]`, issue 14 item 5) with the real binary
//! against the real RadosGW:
//!
//! - an object deleted and one overwritten behind the engine's back while the run goes are
//!   reported as missing and mismatched (by key), and the run exits 1;
//! - a clean run (puts and deletes, a prefilled pool) reports exact counts, 0/0, and exits 0;
//! - the same run over two worker daemons gives the same sums;
//! - `checks: [nope]` exits 2 naming the field and the fix.

mod cluster;
mod common;

use chopsticks::control::RunState;
use chopsticks::load::audit::{ChecksReport, ListingReport, ReadbackReport};
use chopsticks::load::content::ContentSeed;
use chopsticks::load::driver::Driver;
use common::{wait_for, TestBucket};
use std::time::Duration;

const SIZE: u64 = 4096;

/// Writes until stopped, a prefilled pool of 3.
const WRITER: &str = "\
name: checks_writer
users:
  - name: writer
    sequence: true
    wait: {constant: 0.05}
    tasks:
      - {op: put, name: put, size: 4KiB}
prefill: {objects: 3, size: 4KiB}
checks: [readback, listing]
";

/// Each pass writes two objects and deletes one of the user's own: half of what is written
/// stays. Plus a prefilled pool of 3.
const KEEP_HALF: &str = "\
name: checks_keep_half
users:
  - name: writer
    sequence: true
    tasks:
      - {op: put, name: put, size: 4KiB, weight: 2}
      - {op: delete, name: delete, key: own}
      - {op: get, name: get, key: shared}
prefill: {objects: 3, size: 4KiB}
verify: true
checks: [readback, listing]
";

fn checks_of(summary: &chopsticks::results::summary::Summary) -> &ChecksReport {
    summary
        .checks
        .as_ref()
        .expect("summary.json has `checks` (the scenario asked for them)")
}

/// The counts of a report, without the named keys and the time.
fn counts(c: &ChecksReport) -> (ReadbackReport, ListingReport, Vec<String>) {
    let r = c.readback.clone().expect("readback ran");
    let l = c.listing.clone().expect("listing ran");
    (
        ReadbackReport {
            first_errors: Vec::new(),
            ..r
        },
        ListingReport {
            first_errors: Vec::new(),
            ..l
        },
        c.incomplete.clone(),
    )
}

#[tokio::test]
async fn an_object_deleted_and_one_overwritten_mid_run_are_missing_and_mismatched() {
    let bucket = TestBucket::new("checks-tamper");
    let dir = common::workdir();
    let run_id = "checks-tamper";
    let (child, run_dir) = common::spawn_run_through(
        &bucket,
        &bucket.config.endpoint,
        dir.path(),
        WRITER,
        &["-u", "1", "-r", "100", "--run-id", run_id, "-t", "120s"],
        &[],
    );
    // The user's first two objects, once both are there.
    let prefix = format!("chopsticks/{run_id}/");
    let (deleted, overwritten) = wait_for(
        "the run's first two objects",
        Duration::from_secs(60),
        async || {
            // The run creates the bucket while preparing: until then the listing fails.
            let keys = bucket
                .driver
                .list(&prefix, 1000, None)
                .await
                .map_err(|e| format!("listing: {e}"))?
                .keys;
            let find = |suffix: &str| {
                keys.iter()
                    .find(|k| !k.contains("/shared/") && k.ends_with(suffix))
                    .cloned()
            };
            match (find("/u0/0"), find("/u0/1")) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(format!("{} keys: {keys:?}", keys.len())),
            }
        },
    )
    .await;
    bucket
        .driver
        .delete(&deleted)
        .await
        .expect("delete behind the engine's back");
    bucket
        .driver
        .put(&overwritten, ContentSeed(0xbad), SIZE)
        .await
        .expect("overwrite behind the engine's back");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.pid()),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("send SIGINT (stop)");
    let cli = child.finish().await;
    cli.expect_code(1)
        .expect_stderr(&["post-run checks failed", &deleted, &overwritten]);

    let summary = common::read_summary(&run_dir);
    let record = common::read_record(&run_dir);
    assert_eq!(record.state, RunState::Failed, "{:?}", record.reason);
    let put = summary
        .tasks
        .iter()
        .find(|t| t.name == "put")
        .expect("put row");
    assert_eq!(put.failures, 0, "{:?}", summary.failures);
    // Every object written and kept: the user's puts and the prefilled pool.
    let kept = put.requests + 3;
    let c = checks_of(&summary);
    let r = c.readback.as_ref().expect("readback ran");
    assert_eq!(
        (r.objects, r.mismatched, r.missing, r.errors),
        (kept, 1, 1, 0),
        "{c:?}"
    );
    // The overwrite has the same length: every kept object's bytes came back but the deleted one's.
    assert_eq!(r.bytes, (kept - 1) * SIZE);
    assert_eq!(r.first_missing, vec![deleted.clone()]);
    assert_eq!(r.first_mismatched, vec![overwritten.clone()]);
    let l = c.listing.as_ref().expect("listing ran");
    assert_eq!(
        (l.expected, l.listed, l.missing, l.unexpected, l.errors),
        (kept, kept - 1, 1, 0, 0),
        "{c:?}"
    );
    assert_eq!(l.first_missing, vec![deleted.clone()]);
    assert!(c.incomplete.is_empty(), "{c:?}");
    let reason = record.reason.unwrap_or_default();
    assert!(
        reason.contains(&deleted) && reason.contains(&overwritten),
        "run.json's reason names the keys: {reason}"
    );
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    assert!(events.contains("post-run checks failed"), "{events}");
    // The run's objects were cleaned up after the checks.
    assert!(bucket.keys_under(&prefix).await.is_empty());
}

#[tokio::test]
async fn a_clean_run_checks_out_with_exact_counts() {
    let bucket = TestBucket::new("checks-clean");
    let dir = common::workdir();
    let run = common::run_scenario(
        &bucket,
        dir.path(),
        KEEP_HALF,
        &["-u", "2", "-i", "5", "--headless"],
    )
    .await;
    run.cli.expect_code(0);
    assert_eq!(
        run.record.state,
        RunState::Completed,
        "{:?}",
        run.record.reason
    );
    for (task, n) in [("put", 20), ("delete", 10), ("get", 10)] {
        let t = run.task(task);
        assert_eq!(
            (t.requests, t.failures),
            (n, 0),
            "{task}: {:?}",
            run.summary.failures
        );
    }
    // 2 users × 5 passes × (2 puts − 1 delete) = 10 kept, + 3 prefilled.
    let (r, l, incomplete) = counts(checks_of(&run.summary));
    assert_eq!(
        r,
        ReadbackReport {
            objects: 13,
            bytes: 13 * SIZE,
            ..ReadbackReport::default()
        }
    );
    assert_eq!(
        l,
        ListingReport {
            expected: 13,
            listed: 13,
            ..ListingReport::default()
        }
    );
    assert!(incomplete.is_empty());
    assert!(run.cli.stdout.contains("checks ("), "{}", run.cli.stdout);
    // The checks' GETs are not in the load's statistics.
    assert_eq!(run.summary.total.requests, 40);
}

#[tokio::test]
async fn two_workers_audit_their_own_objects_and_the_sums_are_the_same() {
    let mut cluster = cluster::Cluster::start(
        "checks-two",
        cluster::Options {
            workers: 2,
            ..cluster::Options::default()
        },
    )
    .await;
    let scenario = cluster.scenario("keep_half.yaml", KEEP_HALF);
    let started = cluster
        .start_run(&[
            "-f",
            &scenario,
            "-u",
            "2",
            "-r",
            "100",
            "-i",
            "5",
            "--expected-workers",
            "2",
        ])
        .await;
    let end = cluster
        .wait_ended(&started.run_id, Duration::from_secs(60))
        .await;
    assert_eq!(end.state, RunState::Completed, "{:?}", end.reason);
    let summary = cluster.summary(&started.run_id);
    let record = cluster.record(&started.run_id);
    assert_eq!(record.workers.len(), 2, "{:?}", record.workers);
    let (r, l, incomplete) = counts(checks_of(&summary));
    assert_eq!(
        (r.objects, r.bytes, r.mismatched, r.missing, r.errors),
        (13, 13 * SIZE, 0, 0, 0)
    );
    assert_eq!(
        (l.expected, l.listed, l.missing, l.unexpected, l.errors),
        (13, 13, 0, 0, 0)
    );
    assert!(incomplete.is_empty());
    // Each worker audited its own part: both logged their checks.
    for name in ["w1", "w2"] {
        let log = cluster.worker(name).log();
        assert!(log.contains("checks ("), "worker {name} log:\n{log}");
    }
}

#[tokio::test]
async fn an_unknown_check_exits_2_naming_the_field_and_the_fix() {
    let dir = common::workdir();
    let scenario = common::write_scenario(
        dir.path(),
        "nope.yaml",
        "name: nope\nusers:\n  - name: u\n    tasks:\n      - {op: put, size: 1KiB}\nchecks: [nope]\n",
    );
    common::cli(
        dir.path(),
        &[
            "run",
            "-f",
            scenario.to_str().unwrap(),
            "--headless",
            "-i",
            "1",
        ],
    )
    .await
    .expect_code(2)
    .expect_stderr(&["checks", "the checks are readback and listing"]);
}
