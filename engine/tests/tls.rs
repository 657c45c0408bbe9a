//! TLS with a private CA, against the project's RadosGW, which also serves S3 over TLS
//! (`tests/rgw/up.sh`: beast `ssl_endpoint`, a certificate for 127.0.0.1 from a CA the setup
//! generates, exported as `S3_TLS_ENDPOINT` and `CHOPSTICKS_TEST_CA_FILE`).
//!
//! Each test's bucket is made and removed over plain HTTP by [`TestBucket`]; the runs under
//! test reach the same bucket through the TLS endpoint, with both drivers.

mod common;

use chopsticks::control::RunState;
use common::{cli, read_record, read_summary, workdir, write_scenario, CliRun, TestBucket};
use std::path::{Path, PathBuf};

/// Two users, three passes of put/get/delete: 6 requests per task, all verified.
const SCENARIO: &str = r#"
name: tls
users:
  - name: u
    sequence: true
    tasks:
      - {op: put, name: put, size: 4KiB}
      - {op: get, name: get, key: own}
      - {op: delete, name: delete, key: own}
verify: true
"#;

const DRIVERS: [&str; 2] = ["lean", "aws-sdk"];

/// The TLS endpoint and the test CA's PEM file; fails the test (never skips it) when the
/// environment does not have them.
fn tls_env() -> (String, PathBuf) {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{name} is not set: this test needs the project's RadosGW with its TLS endpoint; \
                     run it through tests/run.sh, or export what tests/rgw/up.sh prints"
                )
            })
    };
    (
        var("S3_TLS_ENDPOINT"),
        PathBuf::from(var("CHOPSTICKS_TEST_CA_FILE")),
    )
}

/// A connection file for `bucket` over TLS with `driver` and the extra `driver_config` YAML
/// (a flow mapping's inside, e.g. `ca_file: /x`).
fn write_connection(dir: &Path, bucket: &TestBucket, driver: &str, tls: &str) -> PathBuf {
    let (endpoint, _) = tls_env();
    let text = format!(
        "endpoint: {endpoint}\naccess_key: {}\nsecret_key: {}\nbucket: {}\nregion: {}\ndriver: {driver}\ndriver_config: {{{tls}}}\n",
        bucket.config.access_key,
        bucket.config.secret_key.expose(),
        bucket.name,
        bucket.config.region,
    );
    let path = dir.join(format!("s3-{driver}.yaml"));
    std::fs::write(&path, text).expect("write connection file");
    path
}

/// Runs [`SCENARIO`] with `connection`; the run directory is `dir/runs/NAME`.
async fn run(dir: &Path, connection: &Path, name: &str) -> (CliRun, PathBuf) {
    let scenario = write_scenario(dir, "scenario.yaml", SCENARIO);
    let run_dir = dir.join("runs").join(name);
    let out = cli(
        dir,
        &[
            "run",
            "--workload-config",
            connection.to_str().expect("utf-8"),
            "-f",
            scenario.to_str().expect("utf-8"),
            "--run-dir",
            run_dir.to_str().expect("utf-8"),
            "-u",
            "2",
            "-i",
            "3",
        ],
    )
    .await;
    (out, run_dir)
}

/// The run completed with exactly 6 requests per task and no failure.
fn assert_clean(out: &CliRun, run_dir: &Path) {
    out.expect_code(0);
    let summary = read_summary(run_dir);
    assert_eq!(summary.state, RunState::Completed);
    assert_eq!(summary.total.failures, 0, "{:?}", summary.failures);
    for task in ["put", "get", "delete"] {
        let t = summary.tasks.iter().find(|t| t.name == task).expect(task);
        assert_eq!(t.requests, 6, "task {task}");
        assert_eq!(t.failures, 0, "task {task}");
    }
}

/// run.json's `target` as written.
fn target_json(run_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run_dir.join("run.json")).expect("run.json");
    let record: serde_json::Value = serde_json::from_str(&text).expect("run.json is JSON");
    record["target"].clone()
}

#[tokio::test]
async fn a_run_with_the_ca_file_passes_with_both_drivers() {
    let bucket = TestBucket::new("tls-ca-file");
    let dir = workdir();
    let (endpoint, ca) = tls_env();
    for driver in DRIVERS {
        let conn = write_connection(
            dir.path(),
            &bucket,
            driver,
            &format!("ca_file: {}", ca.display()),
        );
        let (out, run_dir) = run(dir.path(), &conn, driver).await;
        assert_clean(&out, &run_dir);
        let target = target_json(&run_dir);
        assert_eq!(target["endpoint"], endpoint.as_str());
        assert_eq!(target["driver_config"]["ca_file"], ca.to_str().unwrap());
        assert_eq!(target["driver_config"]["insecure"], false);
        assert!(!out.stderr.contains("NOT verified"), "{}", out.stderr);
    }
}

#[tokio::test]
async fn without_the_ca_the_run_fails_in_preparing_naming_the_ca_and_the_fix() {
    let bucket = TestBucket::new("tls-no-ca");
    let dir = workdir();
    for driver in DRIVERS {
        let conn = write_connection(dir.path(), &bucket, driver, "");
        let (out, run_dir) = run(dir.path(), &conn, driver).await;
        out.expect_code(1).expect_stderr(&[
            "unknown CA",
            "driver_config.ca_file",
            "insecure: true",
        ]);
        let record = read_record(&run_dir);
        assert_eq!(record.state, RunState::Failed, "{driver}");
        let reason = record.reason.unwrap_or_default();
        assert!(reason.contains("unknown CA"), "{driver}: {reason}");
        assert!(
            reason.contains("driver_config.ca_file"),
            "{driver}: {reason}"
        );
    }
}

#[tokio::test]
async fn insecure_passes_warns_loudly_and_run_json_says_so() {
    let bucket = TestBucket::new("tls-insecure");
    let dir = workdir();
    for driver in DRIVERS {
        let conn = write_connection(dir.path(), &bucket, driver, "insecure: true");
        let (out, run_dir) = run(dir.path(), &conn, driver).await;
        assert_clean(&out, &run_dir);
        out.expect_stderr(&["driver_config.insecure is true", "NOT verified"]);
        let target = target_json(&run_dir);
        assert_eq!(target["driver_config"]["insecure"], true, "{target}");
    }
}

#[tokio::test]
async fn an_inline_ca_pem_works_and_is_not_recorded() {
    let bucket = TestBucket::new("tls-ca-pem");
    let dir = workdir();
    let (_, ca) = tls_env();
    let pem = std::fs::read_to_string(&ca).expect("read the test CA");
    for driver in DRIVERS {
        let conn = write_connection(
            dir.path(),
            &bucket,
            driver,
            &format!("ca_pem: {}", serde_json::to_string(&pem).unwrap()),
        );
        let (out, run_dir) = run(dir.path(), &conn, driver).await;
        assert_clean(&out, &run_dir);
        let record = std::fs::read_to_string(run_dir.join("run.json")).unwrap();
        assert!(!record.contains("BEGIN CERTIFICATE"), "{record}");
        let target = target_json(&run_dir);
        assert_eq!(
            target["driver_config"]["ca_pem"],
            "given inline: 1 certificate(s), not recorded"
        );
    }
}

#[tokio::test]
async fn bad_tls_settings_exit_2_naming_the_field_and_the_fix() {
    let bucket = TestBucket::new("tls-bad-input");
    let dir = workdir();
    let (_, ca) = tls_env();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let not_pem = write("not.pem", "this is not PEM\n");
    let no_cert = write(
        "key.pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    let bad_cert = write(
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let cases = [
        (
            "ca_file: /nonexistent/ca.pem".to_string(),
            vec!["driver_config.ca_file", "/nonexistent/ca.pem"],
        ),
        (
            format!("ca_file: {not_pem}"),
            vec![
                "driver_config.ca_file",
                "no PEM certificate",
                "BEGIN CERTIFICATE",
            ],
        ),
        (
            format!("ca_file: {no_cert}"),
            vec!["driver_config.ca_file", "no PEM certificate"],
        ),
        (
            format!("ca_file: {bad_cert}"),
            vec!["driver_config.ca_file", "not a usable X.509 certificate"],
        ),
        (
            "ca_pem: 'not a certificate'".to_string(),
            vec!["driver_config.ca_pem", "no PEM certificate"],
        ),
        (
            format!("ca_file: {}, insecure: true", ca.display()),
            vec!["driver_config.insecure", "remove"],
        ),
    ];
    for (tls, needles) in cases {
        let conn = write_connection(dir.path(), &bucket, "lean", &tls);
        let (out, _) = run(dir.path(), &conn, "bad").await;
        out.expect_code(2).expect_stderr(&needles);
    }
}
