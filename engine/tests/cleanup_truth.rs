//! Cleanup tells the truth: when the target goes away at the end of a run, cleanup retries
//! for its bounded time, then run.json says the cleanup is incomplete with an unknown (null)
//! count, `chopsticks run` exits 1 naming the prefix and the command that removes it, and
//! that command (or a coordinator started later) removes everything.
//!
//! The shared RadosGW is never stopped: the run talks to it through a TCP proxy of the
//! test's own, which the test cuts while the run goes and restores afterwards.

mod common;

use chopsticks::cluster::coordinator::{Coordinator, CoordinatorConfig};
use chopsticks::load::driver::{AnyDriver, Driver};
use chopsticks::s3_config::WorkloadConfig;
use common::{cli, read_record, spawn_cli, wait_for, workdir, write_scenario, TestBucket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const SCENARIO: &str = "name: cleanup-truth\nusers:\n  - name: writer\n    wait: {constant: 0.01}\n    tasks:\n      - {op: put, size: 1KiB}\n";

/// A TCP proxy in front of RadosGW that the test can cut: the listener closes and every
/// connection through it is dropped, so the engine sees "connection refused".
struct Proxy {
    port: u16,
    cut: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on `port` (0: any free port) and forwards to `upstream` (HOST:PORT).
    async fn start(port: u16, upstream: String) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let cut = CancellationToken::new();
        let stop = cut.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        let upstream = upstream.clone();
                        connections.spawn(async move {
                            if let Ok(mut server) = TcpStream::connect(&upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                }
            }
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        });
        Proxy { port, cut, task }
    }

    /// Closes the listener and drops every connection; returns the port, to restore later.
    async fn cut(self) -> u16 {
        self.cut.cancel();
        let _ = self.task.await;
        self.port
    }
}

/// `host:port` of an `http://host:port` endpoint.
fn authority(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// The connection file for the test's bucket, through the proxy on `port`.
fn proxied_connection(bucket: &TestBucket, dir: &Path, port: u16) -> (PathBuf, WorkloadConfig) {
    let mut config = bucket.config.clone();
    config.endpoint = format!("http://127.0.0.1:{port}");
    let path = dir.join("proxied.yaml");
    std::fs::write(&path, common::workload_yaml(&config)).expect("write connection file");
    (path, config)
}

/// A run whose proxy is cut while users write: returns the proxy's port, the connection
/// file, the run id and the run's directory, after checking what the run reported.
async fn run_with_cut_proxy(
    bucket: &TestBucket,
    dir: &Path,
    run_id: &str,
) -> (u16, PathBuf, PathBuf) {
    let proxy = Proxy::start(0, authority(&bucket.rgw.endpoint)).await;
    let (wl, _) = proxied_connection(bucket, dir, proxy.port);
    let scenario = write_scenario(dir, "scenario.yaml", SCENARIO);
    let run_dir = dir.join("runs").join(run_id);
    let child = spawn_cli(
        dir,
        &[
            "run",
            "--headless",
            "--workload-config",
            wl.to_str().expect("utf-8"),
            "-f",
            scenario.to_str().expect("utf-8"),
            "-u",
            "2",
            "-r",
            "10",
            "-t",
            "6s",
            "--run-id",
            run_id,
            "--run-dir",
            run_dir.to_str().expect("utf-8"),
            "--cleanup-timeout",
            "3s",
        ],
    );
    // Cut the target away once objects are being written: the rest of the run, and its
    // cleanup, cannot reach it.
    let summary_path = run_dir.join(chopsticks::results::artifacts::SUMMARY_JSON);
    wait_for(
        "20 requests through the proxy",
        Duration::from_secs(60),
        async || {
            let summary: chopsticks::results::summary::Summary =
                std::fs::read_to_string(&summary_path)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .ok_or_else(|| "no summary yet".to_string())?;
            if summary.total.requests >= 20 {
                Ok(())
            } else {
                Err(format!("{} requests", summary.total.requests))
            }
        },
    )
    .await;
    let port = proxy.cut().await;
    let out = child.finish().await;

    let prefix = format!("chopsticks/{run_id}/");
    out.expect_code(1).expect_stderr(&[
        "cleanup incomplete",
        &prefix,
        &format!(
            "chopsticks cleanup --workload-config {} --run-id {run_id}",
            wl.display()
        ),
    ]);
    let record = read_record(&run_dir);
    let cleanup = record.cleanup.expect("run.json records the cleanup");
    assert!(cleanup.performed && !cleanup.complete, "{cleanup:?}");
    assert!(cleanup.incomplete());
    // Every listing failed, so nothing was verified: the count is unknown, not 0.
    assert_eq!(cleanup.remaining_objects, None, "{cleanup:?}");
    assert!(
        cleanup.attempts >= 2,
        "cleanup was not retried: {cleanup:?}"
    );
    assert!(!cleanup.errors.is_empty(), "{cleanup:?}");
    let reason = record.reason.unwrap_or_default();
    assert!(
        reason.contains("cleanup incomplete") && reason.contains(&prefix),
        "{reason}"
    );
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    assert!(events.contains("an unknown number of objects"), "{events}");
    assert!(!events.contains(" 0 left"), "{events}");
    // The objects really are still there.
    let left = bucket.keys_under(&prefix).await;
    assert!(!left.is_empty(), "the run wrote no object before the cut");
    (port, wl, run_dir)
}

/// Nothing of the run is left: no object and no unfinished upload under its prefix.
async fn assert_prefix_empty(bucket: &TestBucket, prefix: &str) {
    assert_eq!(bucket.keys_under(prefix).await, Vec::<String>::new());
    let uploads = bucket
        .driver
        .pending_uploads(prefix)
        .await
        .expect("list uploads");
    assert!(uploads.is_empty(), "{uploads:?}");
}

#[tokio::test]
async fn a_cut_target_leaves_cleanup_incomplete_and_the_cleanup_command_finishes_it() {
    let bucket = TestBucket::new("cleanup-truth-command");
    let dir = workdir();
    let run_id = "cleanup-truth-command";
    let (port, wl, run_dir) = run_with_cut_proxy(&bucket, dir.path(), run_id).await;

    // The target is back (same address): the printed command removes everything.
    let proxy = Proxy::start(port, authority(&bucket.rgw.endpoint)).await;
    let out = cli(
        dir.path(),
        &[
            "cleanup",
            "--workload-config",
            wl.to_str().expect("utf-8"),
            "--run-id",
            run_id,
            "--runs-dir",
            run_dir.parent().and_then(|p| p.to_str()).expect("utf-8"),
        ],
    )
    .await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("0 objects and 0 uploads left"),
        "{}",
        out.stdout
    );
    let prefix = format!("chopsticks/{run_id}/");
    assert_prefix_empty(&bucket, &prefix).await;
    let cleanup = read_record(&run_dir).cleanup.expect("cleanup recorded");
    assert!(cleanup.complete, "{cleanup:?}");
    assert_eq!(cleanup.remaining_objects, Some(0));
    assert_eq!(cleanup.remaining_uploads, Some(0));
    proxy.cut().await;
}

#[tokio::test]
async fn a_coordinator_retries_unfinished_cleanups_of_earlier_runs_at_start() {
    let bucket = TestBucket::new("cleanup-truth-daemon");
    let dir = workdir();
    let run_id = "cleanup-truth-daemon";
    let (port, _wl, run_dir) = run_with_cut_proxy(&bucket, dir.path(), run_id).await;

    // A coordinator for the same target and state directory, started once the target is
    // back, cleans up what the earlier run left.
    let proxy = Proxy::start(port, authority(&bucket.rgw.endpoint)).await;
    let mut config = bucket.config.clone();
    config.endpoint = format!("http://127.0.0.1:{port}");
    let driver = Arc::new(AnyDriver::new(&config).expect("driver"));
    let coordinator = Coordinator::spawn(
        driver,
        CoordinatorConfig {
            state_dir: run_dir.parent().expect("state dir").to_path_buf(),
            target: config.info(false),
            run_dir_override: None,
            cleanup_timeout: Duration::from_secs(30),
        },
    );
    wait_for(
        "the earlier run's cleanup to complete",
        Duration::from_secs(60),
        async || match read_record(&run_dir).cleanup {
            Some(c) if c.complete => Ok(c),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let prefix = format!("chopsticks/{run_id}/");
    assert_prefix_empty(&bucket, &prefix).await;
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    assert!(events.contains("cleanup of an earlier run"), "{events}");
    coordinator.shutdown().await;
    proxy.cut().await;
}

#[tokio::test]
async fn a_coordinator_retries_unfinished_cleanups_before_each_run() {
    let bucket = TestBucket::new("cleanup-truth-next-run");
    let dir = workdir();
    let run_id = "cleanup-truth-next-run";
    let (port, _wl, run_dir) = run_with_cut_proxy(&bucket, dir.path(), run_id).await;
    let prefix = format!("chopsticks/{run_id}/");

    // A coordinator started while the target is still away: its retry at start fails and
    // says so (one pass, nothing verified).
    let mut config = bucket.config.clone();
    config.endpoint = format!("http://127.0.0.1:{port}");
    let driver = Arc::new(AnyDriver::new(&config).expect("driver"));
    let coordinator = Coordinator::spawn(
        Arc::clone(&driver),
        CoordinatorConfig {
            state_dir: run_dir.parent().expect("state dir").to_path_buf(),
            target: config.info(false),
            run_dir_override: None,
            cleanup_timeout: Duration::ZERO,
        },
    );
    wait_for(
        "the retry at start to be recorded",
        Duration::from_secs(60),
        async || {
            let events = std::fs::read_to_string(run_dir.join("events.log")).unwrap_or_default();
            if events.contains("cleanup of an earlier run") {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    let cleanup = read_record(&run_dir).cleanup.expect("cleanup");
    assert!(
        !cleanup.complete && cleanup.remaining_objects.is_none(),
        "{cleanup:?}"
    );
    assert!(!bucket.keys_under(&prefix).await.is_empty());

    // The target is back; the next run's start cleans up what the earlier run left.
    let proxy = Proxy::start(port, authority(&bucket.rgw.endpoint)).await;
    let stop = CancellationToken::new();
    let (id, link) = coordinator.attach("test".into()).await.expect("attach");
    let worker = tokio::spawn(chopsticks::cluster::worker::serve(
        Arc::clone(&driver),
        id,
        link,
        chopsticks::cluster::worker::WorkerOptions::default(),
        stop.clone(),
    ));
    let scenario = write_scenario(dir.path(), "next.yaml", SCENARIO);
    coordinator
        .start(chopsticks::control::StartRequest {
            scenario: scenario.to_str().expect("utf-8").into(),
            scenario_yaml: None,
            users: 1,
            spawn_rate: 1.0,
            duration: None,
            iterations: Some(1),
            expected_workers: Some(1),
            wait_workers_s: Some(10.0),
            run_id: Some("cleanup-truth-next-run-2".into()),
            seed: None,
            stop_timeout_s: None,
            rate: None,
            sweeping: Default::default(),
        })
        .await
        .expect("start the next run");
    wait_for(
        "the earlier run's cleanup to complete",
        Duration::from_secs(60),
        async || match read_record(&run_dir).cleanup {
            Some(c) if c.complete => Ok(c),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert_prefix_empty(&bucket, &prefix).await;
    wait_for("the next run to end", Duration::from_secs(60), async || {
        let s = coordinator.status().await;
        if s.state.is_terminal() {
            Ok(())
        } else {
            Err(format!("{:?}", s.state))
        }
    })
    .await;
    stop.cancel();
    let _ = worker.await;
    coordinator.shutdown().await;
    proxy.cut().await;
}
