//! Numbers past their bounds, validation gaps and oversized inputs, through the real binary
//! and the real control API: each is refused at once (exit 2, or HTTP 400) with a message
//! that names the field, the bound and the fix. None of these inputs reaches a run: the
//! connection file points at a closed port, so an input wrongly accepted would fail the run
//! (exit 1) instead.

mod common;

use chopsticks::control::StartRequest;
use chopsticks::coordinator::{Coordinator, CoordinatorConfig};
use chopsticks::driver::AnyDriver;
use chopsticks::workload::{DriverConfig, DriverKind, Secret, WorkloadConfig};
use common::{cli, workdir, write_scenario, CliRun};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TASKS: &str = "    tasks:\n      - {op: put, size: 1KiB}\n";

/// A connection file for a closed port, with `extra` lines appended.
fn connection(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("s3_config.yaml");
    std::fs::write(
        &path,
        format!(
            "endpoint: http://127.0.0.1:1\naccess_key: AK\nsecret_key: SK\nbucket: unused\n{extra}"
        ),
    )
    .expect("write connection file");
    path
}

/// `chopsticks run` with a scenario (a name or a path), a connection file and `extra` flags.
async fn run_with(dir: &Path, connection_file: &Path, scenario: &str, extra: &[&str]) -> CliRun {
    let mut args = vec![
        "run",
        "--headless",
        "--workload-config",
        connection_file.to_str().expect("utf-8"),
        "-f",
        scenario,
        "-i",
        "1",
    ];
    args.extend_from_slice(extra);
    cli(dir, &args).await
}

/// Runs the built-in scenario with `flags`.
async fn run_flags(flags: &[&str]) -> CliRun {
    let dir = workdir();
    let wl = connection(dir.path(), "");
    run_with(dir.path(), &wl, "s3_small_objects", flags).await
}

/// Runs scenario text `yaml`.
async fn run_yaml(yaml: &str) -> CliRun {
    let dir = workdir();
    let wl = connection(dir.path(), "");
    let path = write_scenario(dir.path(), "scenario.yaml", yaml);
    run_with(dir.path(), &wl, path.to_str().expect("utf-8"), &[]).await
}

/// Runs the built-in scenario with connection file lines `extra`.
async fn run_connection(extra: &str) -> CliRun {
    let dir = workdir();
    let wl = connection(dir.path(), extra);
    run_with(dir.path(), &wl, "s3_small_objects", &[]).await
}

fn class(wait: &str) -> String {
    format!("name: x\nusers:\n  - name: a\n    wait: {wait}\n{TASKS}")
}

// ------------------------------------------------------------ item 2: overflow-safe numbers

#[tokio::test]
async fn huge_stop_timeout_is_refused_with_the_bound() {
    run_flags(&["--stop-timeout", "1e20"])
        .await
        .expect_code(2)
        .expect_stderr(&["stop timeout 1e20 is above the limit of 1 h (3600s)"]);
}

#[tokio::test]
async fn huge_run_times_are_refused_with_the_bound() {
    for t in ["1e20", "10000000000000000000", "99999999999999999999999h"] {
        run_flags(&["-t", t])
            .await
            .expect_code(2)
            .expect_stderr(&["above the limit of 30 days (2592000s)", "run time"]);
    }
}

#[tokio::test]
async fn huge_driver_timeouts_are_refused_with_the_bound() {
    for (line, field, bound) in [
        (
            "request_timeout: 1e20",
            "driver_config.request_timeout 1e20",
            "1 h (3600s)",
        ),
        (
            "connect_timeout: 1e20",
            "driver_config.connect_timeout 1e20",
            "1 h (3600s)",
        ),
        (
            "timeout_per_mib: 1e300",
            "driver_config.timeout_per_mib 1e300",
            "60s",
        ),
    ] {
        for driver in ["lean", "aws-sdk"] {
            run_connection(&format!("driver: {driver}\ndriver_config: {{{line}}}\n"))
                .await
                .expect_code(2)
                .expect_stderr(&[field, &format!("above the limit of {bound}")]);
        }
    }
}

#[tokio::test]
async fn huge_waits_are_refused_with_the_bound() {
    for (wait, value) in [
        ("{constant: 1e20}", "1e20"),
        ("{between: [0, 1e300]}", "1e300"),
        ("{pacing: 1e20}", "1e20"),
    ] {
        run_yaml(&class(wait)).await.expect_code(2).expect_stderr(&[
            "users[0].wait",
            &format!("{value} is above the limit of 1 day (86400s)"),
        ]);
    }
}

/// A coordinator in this process behind the real control API on a free port; its target is
/// a closed port (nothing here may reach S3).
async fn control_api(dir: &Path) -> (String, tokio::task::JoinHandle<()>) {
    let config = WorkloadConfig {
        endpoint: "http://127.0.0.1:1".into(),
        access_key: "AK".into(),
        secret_key: Secret::new("SK"),
        bucket: "unused".into(),
        region: "us-east-1".into(),
        driver: DriverKind::Lean,
        driver_config: DriverConfig::default(),
    };
    let driver = Arc::new(AnyDriver::new(&config).expect("driver"));
    let coordinator = Coordinator::spawn(
        driver,
        CoordinatorConfig {
            state_dir: dir.to_path_buf(),
            target: config.info(false),
            run_dir_override: None,
            cleanup_timeout: std::time::Duration::ZERO,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = chopsticks::api::router(coordinator, None);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), server)
}

#[tokio::test]
async fn the_control_api_refuses_the_same_numbers() {
    let dir = workdir();
    let (url, server) = control_api(dir.path()).await;
    let base = StartRequest {
        scenario: "s3_small_objects".into(),
        users: 1,
        spawn_rate: 1.0,
        duration: None,
        iterations: Some(1),
        expected_workers: None,
        wait_workers_s: None,
        run_id: None,
        seed: None,
        stop_timeout_s: None,
    };
    let cases: Vec<(StartRequest, &str)> = vec![
        (
            StartRequest {
                stop_timeout_s: Some(1e20),
                ..base.clone()
            },
            "stop_timeout_s 1e20 is above the limit of 1 h (3600s)",
        ),
        (
            StartRequest {
                duration: Some("1e20".into()),
                ..base.clone()
            },
            "above the limit of 30 days",
        ),
        (
            StartRequest {
                duration: Some("10000000000000000000".into()),
                ..base.clone()
            },
            "above the limit of 30 days",
        ),
        (
            StartRequest {
                users: u32::MAX,
                ..base.clone()
            },
            "users 4294967295 is above the limit of 1000000",
        ),
        (
            StartRequest {
                spawn_rate: 1e300,
                ..base.clone()
            },
            "spawn_rate 1e300 is above the limit of 100000",
        ),
        (
            StartRequest {
                wait_workers_s: Some(1e300),
                ..base.clone()
            },
            "wait_workers_s 1e300 is above the limit of 1 h",
        ),
    ];
    let http = reqwest::Client::new();
    for (request, message) in cases {
        let answer = http
            .post(format!("{url}/api/runs"))
            .json(&request)
            .send()
            .await
            .expect("POST /api/runs");
        assert_eq!(answer.status().as_u16(), 400, "{request:?}");
        let body: serde_json::Value = answer.json().await.expect("error body");
        let text = body["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{request:?}: {body}");
    }
    // Numbers JSON cannot hold in the field's type are refused as a bad request too.
    let answer = http
        .post(format!("{url}/api/runs"))
        .header("content-type", "application/json")
        .body(r#"{"scenario":"s3_small_objects","users":10000000000000000000,"spawn_rate":1}"#)
        .send()
        .await
        .expect("POST /api/runs");
    assert_eq!(answer.status().as_u16(), 400);
    server.abort();
}
