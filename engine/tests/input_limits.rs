//! Numbers past their bounds, validation gaps and oversized inputs, through the real binary
//! and the real control API: each is refused at once (exit 2, or HTTP 400) with a message
//! that names the field, the bound and the fix. None of these inputs reaches a run: the
//! connection file points at a closed port, so an input wrongly accepted would fail the run
//! (exit 1) instead.

mod common;

use chopsticks::cluster::coordinator::{Coordinator, CoordinatorConfig};
use chopsticks::control::StartRequest;
use chopsticks::load::driver::AnyDriver;
use chopsticks::s3_config::{DriverConfig, DriverKind, Secret, WorkloadConfig};
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
        spread: Default::default(),
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
    let router = chopsticks::control::server::router(coordinator, None);
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
        scenario_yaml: None,
        users: 1,
        spawn_rate: 1.0,
        duration: None,
        iterations: Some(1),
        expected_workers: None,
        wait_workers_s: None,
        run_id: None,
        seed: None,
        stop_timeout_s: None,
        rate: None,
        sweeping: Default::default(),
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

// ------------------------------------------------------------ item 6: validation gaps

#[tokio::test]
async fn single_puts_and_parts_above_5gib_are_refused() {
    run_yaml("name: x\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 6GiB}\n")
        .await
        .expect_code(2)
        .expect_stderr(&[
            "users[0].tasks[0].size: 6GiB is above the limit of 5GiB",
            "use op: multipart_put",
        ]);
    run_yaml("name: x\nusers:\n  - name: a\n    tasks:\n      - {op: multipart_put, size: 20GiB, part_size: 6GiB}\n")
        .await
        .expect_code(2)
        .expect_stderr(&["users[0].tasks[0].part_size: 6GiB is above S3's 5GiB maximum part size"]);
    run_yaml("name: x\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\nprefill: {objects: 1, size: 6GiB}\n")
        .await
        .expect_code(2)
        .expect_stderr(&["prefill.size: 6GiB is above the limit of 5GiB"]);
}

#[tokio::test]
async fn a_zero_range_is_refused() {
    run_yaml("name: x\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n      - {op: get, range: 0}\n")
        .await
        .expect_code(2)
        .expect_stderr(&["users[0].tasks[1].range: a range of 0 bytes reads nothing"]);
}

#[tokio::test]
async fn a_connection_file_without_endpoint_is_an_error() {
    let dir = workdir();
    let wl = dir.path().join("no-endpoint.yaml");
    std::fs::write(&wl, "access_key: AK\nsecret_key: SK\nbucket: unused\n").expect("write");
    let out = run_with(dir.path(), &wl, "s3_small_objects", &[]).await;
    out.expect_code(2)
        .expect_stderr(&["no endpoint", "endpoint: http://HOST:PORT"]);
    assert!(!out.stderr.contains("DEMO"), "{}", out.stderr);
    // An empty file too: it exists, so it must name an endpoint.
    std::fs::write(&wl, "").expect("write");
    run_with(dir.path(), &wl, "s3_small_objects", &[])
        .await
        .expect_code(2)
        .expect_stderr(&["no endpoint"]);
}

#[tokio::test]
async fn an_endpoint_with_a_path_is_bad_input() {
    let dir = workdir();
    let wl = dir.path().join("path.yaml");
    std::fs::write(
        &wl,
        "endpoint: http://127.0.0.1:1/path\naccess_key: AK\nsecret_key: SK\nbucket: unused\n",
    )
    .expect("write");
    run_with(dir.path(), &wl, "s3_small_objects", &[])
        .await
        .expect_code(2)
        .expect_stderr(&[
            "has a path, query or fragment",
            "give only http://HOST:PORT",
        ]);
}

#[tokio::test]
async fn too_many_users_are_refused_with_the_bound() {
    run_flags(&["-u", "4294967295"])
        .await
        .expect_code(2)
        .expect_stderr(&["users 4294967295 is above the limit of 1000000"]);
    run_flags(&["-u", "99999999999999999999999"])
        .await
        .expect_code(2)
        .expect_stderr(&["is above the limit of 1000000"]);
}

#[tokio::test]
async fn a_scenario_that_is_a_directory_or_a_device_is_named_as_such() {
    let dir = workdir();
    let wl = connection(dir.path(), "");
    let sub = dir.path().join("scenarios");
    std::fs::create_dir(&sub).expect("mkdir");
    run_with(dir.path(), &wl, sub.to_str().expect("utf-8"), &[])
        .await
        .expect_code(2)
        .expect_stderr(&["is a directory, not a file"]);
    run_with(dir.path(), &wl, "/dev/zero", &[])
        .await
        .expect_code(2)
        .expect_stderr(&["/dev/zero is not a regular file"]);
}

#[tokio::test]
async fn an_infinite_stop_timeout_must_be_finite() {
    run_flags(&["--stop-timeout", "inf"])
        .await
        .expect_code(2)
        .expect_stderr(&["stop timeout inf is not a finite number", "must be finite"]);
}

/// A "billion laughs" of `n` levels of `n` aliases, inside a task's size (an untagged field,
/// where the YAML reader's own refusal used to surface as "not a size").
fn alias_bomb(n: usize) -> String {
    let mut parts = vec![format!("&a0 [{}]", vec!["lol"; n].join(", "))];
    for i in 1..n {
        parts.push(format!(
            "&a{i} [{}]",
            vec![format!("*a{}", i - 1); n].join(", ")
        ));
    }
    format!(
        "name: x\nusers:\n  - name: a\n    tasks:\n      - {{op: put, size: [{}]}}\n",
        parts.join(", ")
    )
}

#[tokio::test]
async fn a_yaml_alias_bomb_is_refused_for_what_it_is() {
    // 81 aliases: refused before parsing.
    let out = run_yaml(&alias_bomb(9)).await;
    out.expect_code(2)
        .expect_stderr(&["the YAML uses more than 50 aliases"]);
    assert!(!out.stderr.contains("not a size"), "{}", out.stderr);
    // 49 aliases: the YAML reader's repetition limit, named as such.
    let out = run_yaml(&alias_bomb(7)).await;
    out.expect_code(2)
        .expect_stderr(&["repetition limit exceeded"]);
    assert!(!out.stderr.contains("not a size"), "{}", out.stderr);
}

// ------------------------------------------------------------ item 7: input limits

#[tokio::test]
async fn a_scenario_file_above_the_size_limit_is_refused() {
    let mut yaml = String::from("name: x\ndescription: big\nusers:\n  - name: a\n    tasks:\n");
    while yaml.len() <= 5 << 20 {
        yaml.push_str("      - {op: put, size: 1KiB}\n");
    }
    run_yaml(&yaml)
        .await
        .expect_code(2)
        .expect_stderr(&["above the limit of 4194304 bytes"]);
}

#[tokio::test]
async fn deep_yaml_nesting_is_refused_at_once() {
    let deep = format!("name: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    run_yaml(&deep)
        .await
        .expect_code(2)
        .expect_stderr(&["nests deeper than 64 levels"]);
    let dashes = format!("name: x\nusers:\n{}\n", "- ".repeat(100_000));
    run_yaml(&dashes)
        .await
        .expect_code(2)
        .expect_stderr(&["nests deeper than 64 levels"]);
}

fn tasks(classes: usize, per_class: usize) -> String {
    let mut yaml = String::from("name: many\nusers:\n");
    for c in 0..classes {
        yaml.push_str(&format!("  - name: c{c}\n    tasks:\n"));
        for t in 0..per_class {
            let op = if t % 2 == 0 { "put, size: 1KiB" } else { "get" };
            yaml.push_str(&format!("      - {{op: {op}, name: t{c}-{t}}}\n"));
        }
    }
    yaml
}

#[tokio::test]
async fn too_many_tasks_in_a_class_are_refused() {
    run_yaml(&tasks(1, 10_001))
        .await
        .expect_code(2)
        .expect_stderr(&["users[0].tasks: 10001 tasks, above the limit of 10000 per user class"]);
}

#[tokio::test]
async fn a_long_description_is_refused() {
    let yaml = format!(
        "name: x\ndescription: {}\nusers:\n  - name: a\n{TASKS}",
        "d".repeat(5000)
    );
    run_yaml(&yaml)
        .await
        .expect_code(2)
        .expect_stderr(&["description: is 5000 characters, above the limit of 4096"]);
}

#[tokio::test]
async fn forty_thousand_tasks_validate() {
    // Four classes of 10,000 uniquely named tasks: within every limit, and validation is
    // linear (a quadratic name check took seconds here; benchmarks, not this test, time it).
    let dir = workdir();
    let path = write_scenario(dir.path(), "many.yaml", &tasks(4, 10_000));
    let out = cli(dir.path(), &["scenarios", path.to_str().expect("utf-8")]).await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("valid"),
        "{}",
        &out.stdout[..200.min(out.stdout.len())]
    );
    assert!(out.stdout.contains("t3-9999"));
}

#[tokio::test]
async fn a_sequence_pass_above_the_limit_is_refused() {
    let mut yaml = String::from("name: x\nusers:\n  - name: a\n    sequence: true\n    tasks:\n");
    for _ in 0..3 {
        yaml.push_str("      - {op: put, size: 1KiB, weight: 1000000}\n");
    }
    run_yaml(&yaml).await.expect_code(2).expect_stderr(&[
        "users[0].tasks: a sequence pass of 3000000 tasks (the sum of the weights), above the limit of 1000000",
    ]);
}
