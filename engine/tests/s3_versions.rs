//! Versioned and object-locked buckets, and copies across buckets (issue 14 items 3-4), run
//! by the real `chopsticks` binary against the real RadosGW.
//!
//! Scenarios use `sequence: true` with one user and `-i 1`, so the exact number of requests,
//! versions and delete markers follows from the scenario alone; the tests count them with
//! ListObjectVersions through the library's aws-sdk driver.

mod common;

use chopsticks::control::RunState;
use chopsticks::load::driver::{AwsDriver, BucketFeatures, Driver, ObjectVersion};
use chopsticks::s3_config::DriverKind;
use common::{cli, run_scenario, workload_config, TestBucket};

/// Every version and delete marker under `prefix` (all pages).
async fn versions_under<D: Driver>(
    driver: &D,
    prefix: &str,
) -> (Vec<ObjectVersion>, Vec<ObjectVersion>) {
    let (mut versions, mut markers) = (Vec::new(), Vec::new());
    let mut from = None;
    for _ in 0..1000 {
        let page = driver
            .list_versions(prefix, 1000, from)
            .await
            .unwrap_or_else(|e| panic!("listing versions under '{prefix}': {e}"));
        versions.extend(page.versions);
        markers.extend(page.delete_markers);
        match page.next {
            Some(m) => from = Some(m),
            None => return (versions, markers),
        }
    }
    panic!("listing versions under '{prefix}' did not end after 1000 pages");
}

/// One pass of one user: 5 PUTs, a GET of one version (verified), 2 deletes of a version
/// (for good), 1 plain delete (a delete marker), 1 ListObjectVersions page. Left: exactly
/// 5 - 2 = 3 versions and 1 delete marker.
const VERSIONED: &str = r#"
name: versions
versioning: true
verify: true
users:
  - name: v
    sequence: true
    tasks:
      - {op: put, name: put, weight: 5, size: 2KiB}
      - {op: get, name: get_version, version: true}
      - {op: delete, name: delete_version, weight: 2, version: true}
      - {op: delete, name: delete}
      - {op: list_versions, name: list_versions, key: own, max_keys: 100}
"#;

async fn versioned_operations_leave_exact_versions(driver: DriverKind) {
    let mut bucket = TestBucket::new(&format!("versions_{driver}"));
    bucket.config.driver = driver;
    let dir = common::workdir();
    let kept = format!("{VERSIONED}keep: true\n");
    let run = run_scenario(&bucket, dir.path(), &kept, &["-u", "1", "-i", "1"]).await;
    run.cli.expect_code(0);
    assert_eq!(run.record.state, RunState::Completed);
    for (task, requests) in [
        ("put", 5),
        ("get_version", 1),
        ("delete_version", 2),
        ("delete", 1),
        ("list_versions", 1),
    ] {
        let t = run.task(task);
        assert_eq!(
            (t.requests, t.failures, t.skipped),
            (requests, 0, 0),
            "{task}: failures {:?}",
            run.summary.failures
        );
    }
    // The run created the bucket versioned, without object lock.
    assert_eq!(
        bucket
            .driver
            .bucket_features()
            .await
            .expect("bucket features"),
        BucketFeatures {
            versioning: true,
            object_lock: false
        }
    );
    let prefix = &run.record.key_prefix;
    let (versions, markers) = versions_under(&bucket.driver, prefix).await;
    assert_eq!(
        (versions.len(), markers.len()),
        (3, 1),
        "versions {versions:?}, delete markers {markers:?}"
    );
    // The delete marker hides one of the three: a plain listing shows two keys.
    assert_eq!(bucket.keys_under(prefix).await.len(), 2);

    // The same pass without keep: cleanup removes every version and marker, and says so
    // from a listing of versions.
    let dir = common::workdir();
    let run = run_scenario(&bucket, dir.path(), VERSIONED, &["-u", "1", "-i", "1"]).await;
    run.cli.expect_code(0);
    let cleanup = run.record.cleanup.as_ref().expect("run.json has cleanup");
    assert!(cleanup.complete, "{cleanup:?}");
    assert_eq!(
        cleanup.deleted_objects, 4,
        "3 versions + 1 marker: {cleanup:?}"
    );
    assert_eq!(cleanup.remaining_objects, Some(0));
    let (versions, markers) = versions_under(&bucket.driver, &run.record.key_prefix).await;
    assert!(
        versions.is_empty() && markers.is_empty(),
        "{versions:?} {markers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_operations_leave_exact_versions_lean() {
    versioned_operations_leave_exact_versions(DriverKind::Lean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_operations_leave_exact_versions_aws_sdk() {
    versioned_operations_leave_exact_versions(DriverKind::AwsSdk).await;
}

/// An object-locked bucket (GOVERNANCE, 1 day): a user's delete of a locked version is
/// refused by the gateway, and cleanup removes every version by bypassing governance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_locked_bucket_is_created_and_cleaned_past_governance() {
    let bucket = TestBucket::new("versions_lock");
    let dir = common::workdir();
    let scenario = r#"
name: locked
versioning: true
object_lock: {mode: GOVERNANCE, days: 1}
users:
  - name: v
    sequence: true
    tasks:
      - {op: put, name: put, weight: 3, size: 1KiB}
      - {op: delete, name: delete_version, version: true}
"#;
    let run = run_scenario(&bucket, dir.path(), scenario, &["-u", "1", "-i", "1"]).await;
    let put = run.task("put");
    assert_eq!((put.requests, put.failures), (3, 0));
    let refused = run.task("delete_version");
    assert_eq!(
        (refused.requests, refused.failures),
        (1, 1),
        "a locked version cannot be deleted without bypass: {:?}",
        run.summary.failures
    );
    assert!(
        run.summary
            .failures
            .iter()
            .any(|f| f.name == "delete_version" && f.error.contains("AccessDenied")),
        "{:?}",
        run.summary.failures
    );
    assert_eq!(
        bucket
            .driver
            .bucket_features()
            .await
            .expect("bucket features"),
        BucketFeatures {
            versioning: true,
            object_lock: true
        }
    );
    let cleanup = run.record.cleanup.as_ref().expect("run.json has cleanup");
    assert!(cleanup.complete, "{cleanup:?}");
    assert_eq!(cleanup.deleted_objects, 3, "{cleanup:?}");
    assert_eq!(cleanup.remaining_objects, Some(0));
    let (versions, markers) = versions_under(&bucket.driver, &run.record.key_prefix).await;
    assert!(
        versions.is_empty() && markers.is_empty(),
        "{versions:?} {markers:?}"
    );
}

/// A bucket that exists without the feature the scenario asks for is a preparing failure
/// naming the bucket, the feature and the fix; the bucket is not changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_bucket_without_the_feature_fails_preparing() {
    let bucket = TestBucket::new("versions_existing");
    bucket
        .driver
        .ensure_bucket()
        .await
        .expect("create plain bucket");
    let dir = common::workdir();
    let scenario = "name: v\nversioning: true\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n";
    let run = run_scenario(&bucket, dir.path(), scenario, &["-u", "1", "-i", "1"]).await;
    run.cli.expect_code(1);
    assert_eq!(run.record.state, RunState::Failed);
    let reason = run.record.reason.clone().expect("a reason");
    for words in [
        bucket.name.as_str(),
        "without versioning enabled",
        "put-bucket-versioning",
        "never changes an existing bucket",
    ] {
        assert!(reason.contains(words), "{words}: {reason}");
    }
    assert_eq!(
        bucket.driver.bucket_features().await.expect("features"),
        BucketFeatures::default(),
        "the run must not change an existing bucket"
    );

    // Versioned but without object lock: object_lock cannot be added to it.
    let versioned = TestBucket::new("versions_nolock");
    let dir = common::workdir();
    let plain = "name: v\nversioning: true\nkeep: true\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n";
    run_scenario(&versioned, dir.path(), plain, &["-u", "1", "-i", "1"])
        .await
        .cli
        .expect_code(0);
    let dir = common::workdir();
    let locked = format!("{plain}object_lock: {{mode: GOVERNANCE, days: 1}}\n");
    let run = run_scenario(&versioned, dir.path(), &locked, &["-u", "1", "-i", "1"]).await;
    run.cli.expect_code(1);
    let reason = run.record.reason.clone().expect("a reason");
    assert!(
        reason.contains(&format!(
            "bucket {} exists without object lock",
            versioned.name
        )) && reason.contains("only be enabled when a bucket is created"),
        "{reason}"
    );
}

/// `copy` with `to: other` over two versioned buckets: both are created versioned, the copy
/// lands in the other bucket, and `chopsticks cleanup` (by prefix, in every bucket) removes
/// every version in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_other_lands_in_the_next_bucket() {
    let rgw = common::rgw();
    let prefix = format!("{}-", common::bucket_name("copy-other"));
    let configs: Vec<_> = (1..=2)
        .map(|i| workload_config(&rgw, &format!("{prefix}{i}")))
        .collect();
    let _cleanup: Vec<_> = configs.iter().map(Remover).collect();
    let keys = TestBucket::new("copy-other-keys");
    let dir = common::workdir();
    let c = &keys.config;
    let connection = dir.path().join("connection.yaml");
    std::fs::write(
        &connection,
        format!(
            "endpoint: {}\naccess_key: {}\nsecret_key: {}\nregion: {}\nbuckets: {{count: 2, prefix: {prefix}}}\n",
            rgw.endpoint,
            c.access_key,
            c.secret_key.expose(),
            c.region
        ),
    )
    .expect("write the connection file");
    let scenario = common::write_scenario(
        dir.path(),
        "scenario.yaml",
        r#"
name: copy_other
keep: true
versioning: true
users:
  - name: c
    sequence: true
    tasks:
      - {op: put, name: put, size: 3KiB}
      - {op: copy, name: copy_other, to: other}
"#,
    );
    let run_dir = dir.path().join("runs").join("run");
    cli(
        dir.path(),
        &[
            "run",
            "--workload-config",
            connection.to_str().unwrap(),
            "-f",
            scenario.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "-u",
            "1",
            "-i",
            "1",
        ],
    )
    .await
    .expect_code(0);
    let summary = common::read_summary(&run_dir);
    let copy = summary
        .tasks
        .iter()
        .find(|t| t.name == "copy_other")
        .expect("copy_other");
    assert_eq!(
        (copy.requests, copy.failures),
        (1, 0),
        "{:?}",
        summary.failures
    );
    let record = common::read_record(&run_dir);
    // User slot 0 works in bucket 1; its copy went to bucket 2 under the next key.
    let first = AwsDriver::new(&configs[0]).expect("driver");
    let second = AwsDriver::new(&configs[1]).expect("driver");
    let in_first = common::list_all(&first, &record.key_prefix).await;
    let in_second = common::list_all(&second, &record.key_prefix).await;
    assert_eq!(in_first.len(), 1, "{in_first:?}");
    assert_eq!(in_second.len(), 1, "{in_second:?}");
    assert_ne!(in_first, in_second);
    for d in [&first, &second] {
        assert_eq!(
            d.bucket_features().await.expect("features"),
            BucketFeatures {
                versioning: true,
                object_lock: false
            },
            "every bucket of the set is prepared versioned"
        );
    }
    let mut sink = Vec::new();
    struct Collect<'a>(&'a mut Vec<u8>);
    impl chopsticks::load::driver::ChunkSink for Collect<'_> {
        fn chunk(&mut self, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }
    let mut a = Collect(&mut sink);
    first
        .get(&in_first[0], None, 3072, &mut a)
        .await
        .expect("source");
    let mut copied = Vec::new();
    let mut b = Collect(&mut copied);
    second
        .get(&in_second[0], None, 3072, &mut b)
        .await
        .expect("copy");
    assert_eq!((sink.len(), sink == copied), (3072, true));

    // `chopsticks cleanup` removes the run's objects in both buckets.
    cli(
        dir.path(),
        &[
            "cleanup",
            "--workload-config",
            connection.to_str().unwrap(),
            "--run-id",
            &record.run_id,
        ],
    )
    .await
    .expect_code(0);
    for d in [&first, &second] {
        let (versions, markers) = versions_under(d, &record.key_prefix).await;
        assert!(
            versions.is_empty() && markers.is_empty(),
            "{versions:?} {markers:?}"
        );
    }
}

/// Removes a bucket the run created when the test ends.
struct Remover<'a>(&'a chopsticks::s3_config::WorkloadConfig);

impl Drop for Remover<'_> {
    fn drop(&mut self) {
        common::remove_bucket_on_drop(self.0);
    }
}

/// Bad input: each exits 2 naming the field and the fix, before any request.
#[tokio::test]
async fn bad_versioning_input_exits_2_naming_the_field() {
    let base = "users:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n";
    let with_task = |task: &str| {
        format!(
            "users:\n  - name: a\n    tasks:\n      - {{op: put, size: 1KiB}}\n      - {task}\n"
        )
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("name: x\nobject_lock: {{mode: GOVERNANCE, days: 1}}\n{base}"),
            vec![
                "object_lock: object lock needs versioning",
                "add versioning: true",
            ],
        ),
        (
            format!("name: x\nversioning: true\nobject_lock: {{mode: FOREVER, days: 1}}\n{base}"),
            vec![
                "object_lock.mode: unknown mode",
                "GOVERNANCE and COMPLIANCE",
            ],
        ),
        (
            format!(
                "name: x\nversioning: true\nobject_lock: {{mode: GOVERNANCE, days: 0}}\n{base}"
            ),
            vec![
                "object_lock.days: 0 is below the minimum of 1",
                "1 to 36500",
            ],
        ),
        (
            format!(
                "name: x\nversioning: true\nobject_lock: {{mode: GOVERNANCE, days: 36501}}\n{base}"
            ),
            vec!["object_lock.days: 36501 is above the limit of 36500"],
        ),
        (
            format!(
                "name: x\nversioning: true\nobject_lock: {{mode: COMPLIANCE, days: 1}}\n{base}"
            ),
            vec![
                "object_lock.mode: COMPLIANCE retention forbids deleting",
                "cleanup could not delete",
                "add keep: true",
            ],
        ),
        (
            format!("name: x\n{}", with_task("{op: get, version: true}")),
            vec![
                "tasks[1].version: version: true addresses an object version",
                "add versioning: true",
            ],
        ),
        (
            format!("name: x\n{}", with_task("{op: list_versions}")),
            vec![
                "tasks[1].op: list_versions lists object versions",
                "add versioning: true",
            ],
        ),
        (
            format!(
                "name: x\nversioning: true\n{}",
                with_task("{op: head, version: true}")
            ),
            vec!["tasks[1].version: does not apply to op head"],
        ),
        (
            format!("name: x\n{}", with_task("{op: get, to: other}")),
            vec!["tasks[1].to: does not apply to op get"],
        ),
    ];
    for (yaml, words) in cases {
        let dir = common::workdir();
        let path = common::write_scenario(dir.path(), "bad.yaml", &yaml);
        let wl = dir.path().join("s3_config.yaml");
        std::fs::write(
            &wl,
            "endpoint: http://127.0.0.1:1\naccess_key: AK\nsecret_key: SK\nbucket: unused\nregion: us-east-1\n",
        )
        .expect("write workload config");
        let out = cli(
            dir.path(),
            &[
                "run",
                "--workload-config",
                wl.to_str().unwrap(),
                "-f",
                path.to_str().unwrap(),
                "-i",
                "1",
            ],
        )
        .await;
        out.expect_code(2).expect_stderr(&words);
    }
}

/// Input that only the scenario and the connection file together make bad: `to: other` with
/// one bucket, a versioned scenario with driver s5cmd. Exit 2 before any request.
#[tokio::test]
async fn scenario_and_target_mismatches_exit_2() {
    let copy = "name: x\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n      - {op: copy, to: other}\n";
    let versioned = "name: x\nversioning: true\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n";
    let checked = "name: x\nchecks: [readback]\nusers:\n  - name: a\n    tasks:\n      - {op: put, size: 1KiB}\n";
    for (scenario, extra, words) in [
        (
            copy,
            "bucket: unused\n",
            vec![
                "users[0].tasks[1].to: to: other copies into another bucket",
                "buckets: {count: 2}",
            ],
        ),
        (
            checked,
            "buckets: {count: 2, prefix: unused-}\n",
            vec![
                "checks: the post-run checks audit one bucket",
                "spreads the run over 2",
            ],
        ),
        (
            versioned,
            "bucket: unused\ndriver: s5cmd\ndriver_config:\n  s5cmd_path: /bin/true\n",
            vec![
                "driver s5cmd cannot run a versioned scenario",
                "version-id addressing",
            ],
        ),
    ] {
        let dir = common::workdir();
        let path = common::write_scenario(dir.path(), "s.yaml", scenario);
        let wl = dir.path().join("s3_config.yaml");
        std::fs::write(
            &wl,
            format!("endpoint: http://127.0.0.1:1\naccess_key: AK\nsecret_key: SK\nregion: us-east-1\n{extra}"),
        )
        .expect("write workload config");
        let out = cli(
            dir.path(),
            &[
                "run",
                "--workload-config",
                wl.to_str().unwrap(),
                "-f",
                path.to_str().unwrap(),
                "-i",
                "1",
                "--headless",
            ],
        )
        .await;
        out.expect_code(2).expect_stderr(&words);
    }
}
