//! A corrupted object is counted as an `integrity` failure — shown with the real library
//! pieces and no mocks: the aws-sdk driver, `coordinator::prepare`, one real worker session
//! (`worker::serve`) over in-process channels, and `coordinator::cleanup`, all against the
//! real RadosGW. The test plays the coordinator's part of the protocol itself.

mod common;

use chopsticks::cluster::coordinator;
use chopsticks::cluster::protocol::{FromWorker, RunSpec, ToWorker};
use chopsticks::cluster::worker::{self, Link, SessionEnd, WorkerOptions};
use chopsticks::load::content::ContentSeed;
use chopsticks::load::driver::{AnyDriver, Driver};
use chopsticks::load::scenario::{Scenario, Source};
use chopsticks::load::stats::StatsDelta;
use chopsticks::s3_config::DriverKind;
use common::TestBucket;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const OBJECT_SIZE: u64 = 64 * 1024;
const USERS: u32 = 2;
const ITERATIONS: u64 = 5;

/// What to do to the one prefilled object between prepare and the load.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    Nothing,
    /// Same size, other bytes.
    OtherContent,
    /// The right bytes, but only half of them.
    Truncated,
}

fn spec(run_id: &str) -> RunSpec {
    let scenario = Scenario::from_yaml(
        r#"
name: verify_shared
users:
  - name: reader
    sequence: true
    tasks:
      - {op: get, key: shared}
prefill: {objects: 1, size: 64KiB}
verify: true
"#,
        Source("integrity test".into()),
    )
    .expect("valid scenario");
    RunSpec {
        run_id: run_id.to_string(),
        scenario,
        seed: 0x5eed,
        key_prefix: format!("chopsticks/{run_id}/"),
        iterations: Some(ITERATIONS),
        stop_timeout_s: 5.0,
        clock_origin_unix_us: chopsticks::cluster::protocol::unix_us(std::time::SystemTime::now()),
    }
}

/// Acts as the coordinator for one worker session: start, assign, collect stats deltas until
/// the worker is done, stop, and wait for `Finished`. Returns the merged deltas.
async fn coordinate_one_worker(driver: Arc<AnyDriver>, spec: &RunSpec) -> StatsDelta {
    let (to_worker, worker_rx) = mpsc::channel(64);
    let (worker_tx, mut from_worker) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let session = tokio::spawn(worker::serve(
        driver,
        1,
        Link {
            tx: worker_tx,
            rx: worker_rx,
        },
        WorkerOptions::default(),
        shutdown.clone(),
    ));
    let send = |msg: ToWorker| {
        let to_worker = to_worker.clone();
        async move { to_worker.send(msg).await.expect("worker is listening") }
    };
    send(ToWorker::Start { spec: spec.clone() }).await;
    send(ToWorker::Assign {
        run_id: spec.run_id.clone(),
        users: vec![USERS],
        spawn_rate: 100.0,
        arrival: None,
    })
    .await;

    let mut merged = StatsDelta::default();
    let mut last_seq = 0;
    let mut stop_sent = false;
    let collect = async {
        loop {
            match from_worker.recv().await {
                Some(FromWorker::Stats {
                    run_id,
                    seq,
                    done,
                    seconds,
                    ..
                }) => {
                    assert_eq!(run_id, spec.run_id);
                    assert_eq!(seq, last_seq + 1, "stats messages arrive in order");
                    last_seq = seq;
                    for s in &seconds {
                        merged.merge(&s.delta);
                    }
                    if done && !stop_sent {
                        stop_sent = true;
                        send(ToWorker::Stop {
                            run_id: spec.run_id.clone(),
                            abort: false,
                        })
                        .await;
                    } else {
                        send(ToWorker::Heartbeat).await;
                    }
                }
                Some(FromWorker::Finished {
                    run_id,
                    last_seq: n,
                }) => {
                    assert_eq!(run_id, spec.run_id);
                    assert!(stop_sent, "the worker finished before it was stopped");
                    assert_eq!(n, last_seq, "every stats message arrived");
                    return;
                }
                Some(FromWorker::Heartbeat { .. }) | Some(FromWorker::Hello { .. }) => {}
                Some(FromWorker::CutRun { .. }) => panic!("this worker was cut from no run"),
                Some(FromWorker::Checked { .. }) => panic!("no run asked this worker for checks"),
                None => panic!("the worker ended the session before it finished the run"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .expect("the worker finished its run within 60s");
    shutdown.cancel();
    let end = session.await.expect("worker session task");
    assert_eq!(end, SessionEnd::Shutdown);
    merged
}

/// Prepares, tampers with the shared object, runs the load, cleans up; returns the stats.
async fn run(test: &str, tamper: Tamper, kind: DriverKind) -> StatsDelta {
    let bucket = TestBucket::new(test);
    let mut config = bucket.config.clone();
    config.driver = kind;
    let driver = Arc::new(AnyDriver::new(&config).expect("driver"));
    let spec = spec(&format!("integrity-{}-{}", test, std::process::id()));
    let target = bucket.config.info(false);

    let prepared = coordinator::prepare(&*driver, &spec, &target)
        .await
        .expect("prepare");
    assert_eq!(prepared.prefilled_objects, 1);
    assert_eq!(prepared.prefilled_bytes, OBJECT_SIZE);

    let key = spec.shared_key(0);
    let seed = ContentSeed::for_key(spec.seed, &key);
    match tamper {
        Tamper::Nothing => {}
        Tamper::OtherContent => driver
            .put(&key, ContentSeed(seed.0 ^ 1), OBJECT_SIZE)
            .await
            .expect("overwrite the shared object"),
        Tamper::Truncated => driver
            .put(&key, seed, OBJECT_SIZE / 2)
            .await
            .expect("truncate the shared object"),
    }

    let stats = coordinate_one_worker(Arc::clone(&driver), &spec).await;

    let cleanup = coordinator::cleanup(&*driver, &spec.key_prefix, std::time::Duration::ZERO).await;
    assert!(cleanup.errors.is_empty(), "{:?}", cleanup.errors);
    assert_eq!(cleanup.deleted_objects, 1);
    assert_eq!(cleanup.remaining_objects, Some(0));
    assert!(cleanup.complete, "{cleanup:?}");
    assert!(bucket.keys_under(&spec.key_prefix).await.is_empty());
    assert!(bucket.keys().await.is_empty(), "bucket not empty");
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_object_is_an_integrity_failure() {
    let stats = run(
        "integrity_corrupted",
        Tamper::OtherContent,
        DriverKind::Lean,
    )
    .await;
    assert_every_read_failed_integrity(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_object_is_an_integrity_failure_with_the_aws_sdk_driver() {
    let stats = run(
        "integrity_corrupted_sdk",
        Tamper::OtherContent,
        DriverKind::AwsSdk,
    )
    .await;
    assert_every_read_failed_integrity(&stats);
}

fn assert_every_read_failed_integrity(stats: &StatsDelta) {
    let get = &stats.tasks["get"];
    let reads = u64::from(USERS) * ITERATIONS;
    assert_eq!(get.requests, reads);
    assert_eq!(get.failures, reads);
    // Failed reads move no counted bytes.
    assert_eq!(get.bytes, 0);
    let kinds: Vec<&str> = get.failures_by_kind.keys().map(String::as_str).collect();
    assert_eq!(kinds, ["integrity"]);
    let integrity = &get.failures_by_kind["integrity"];
    assert_eq!(integrity.count, reads);
    assert!(
        integrity.sample.contains("content differs"),
        "{}",
        integrity.sample
    );
    assert_eq!(stats.requests(), reads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_object_is_an_integrity_failure() {
    let stats = run("integrity_truncated", Tamper::Truncated, DriverKind::Lean).await;
    let get = &stats.tasks["get"];
    let reads = u64::from(USERS) * ITERATIONS;
    assert_eq!((get.requests, get.failures), (reads, reads));
    let integrity = &get.failures_by_kind["integrity"];
    assert_eq!(integrity.count, reads);
    assert!(
        integrity
            .sample
            .contains("expected 65536 bytes, received 32768"),
        "{}",
        integrity.sample
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untouched_object_verifies() {
    let stats = run("integrity_control", Tamper::Nothing, DriverKind::Lean).await;
    let get = &stats.tasks["get"];
    let reads = u64::from(USERS) * ITERATIONS;
    assert_eq!(get.requests, reads);
    assert_eq!(get.failures, 0, "{:?}", get.failures_by_kind);
    assert!(get.failures_by_kind.is_empty());
    assert_eq!(get.bytes, reads * OBJECT_SIZE);
    assert_eq!(get.ttfb.count(), reads);
}
