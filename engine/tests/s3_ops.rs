//! The S3 operations beyond put/get/head/delete/list/copy, run by the real `chopsticks`
//! binary against the real RadosGW with both drivers: `delete_batch` (DeleteObjects), and
//! cleanup through DeleteObjects batches.
//!
//! Scenarios use `sequence: true` and `--iterations`, so the exact number of requests, and
//! the objects left for cleanup, follow from the scenario alone.

mod common;

use chopsticks::control::RunState;
use chopsticks::s3_config::DriverKind;
use common::{run_scenario, TestBucket};

/// Two users, two passes: each pass writes 5 objects and deletes 3 of the user's own in one
/// DeleteObjects request. 20 written, 12 deleted by the batches, 8 left for cleanup.
const BATCH_SCENARIO: &str = r#"
name: delete_batch
users:
  - name: batcher
    sequence: true
    tasks:
      - {op: put, name: put, weight: 5, size: 1KiB}
      - {op: delete_batch, name: batch, keys: 3}
"#;

async fn delete_batch_deletes_exactly_what_it_names(driver: DriverKind) {
    let mut bucket = TestBucket::new(&format!("delete_batch_{driver}"));
    bucket.config.driver = driver;
    let dir = common::workdir();
    let run = run_scenario(&bucket, dir.path(), BATCH_SCENARIO, &["-u", "2", "-i", "2"]).await;
    run.cli.expect_code(0);
    assert_eq!(run.record.state, RunState::Completed);
    let put = run.task("put");
    assert_eq!((put.requests, put.failures), (20, 0));
    let batch = run.task("batch");
    assert_eq!(
        (batch.requests, batch.failures, batch.skipped),
        (4, 0, 0),
        "failures: {:?}",
        run.summary.failures
    );
    let stats = std::fs::read_to_string(run.run_dir.join("stats.csv")).expect("stats.csv");
    assert!(stats.contains("POST,batch,4,0,"), "{stats}");
    // The batches removed 12 objects on the server: cleanup found exactly the other 8.
    let cleanup = run.record.cleanup.as_ref().expect("run.json has cleanup");
    assert!(cleanup.complete, "{cleanup:?}");
    assert_eq!(cleanup.deleted_objects, 8, "{cleanup:?}");
    assert_eq!(cleanup.remaining_objects, Some(0));
    assert_eq!(bucket.keys().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_batch_deletes_exactly_what_it_names_lean() {
    delete_batch_deletes_exactly_what_it_names(DriverKind::Lean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_batch_deletes_exactly_what_it_names_aws_sdk() {
    delete_batch_deletes_exactly_what_it_names(DriverKind::AwsSdk).await;
}

/// An SDK client for bucket settings the engine does not make (a bucket policy).
fn sdk_client(bucket: &TestBucket) -> aws_sdk_s3::Client {
    let c = &bucket.config;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&c.endpoint)
            .region(aws_sdk_s3::config::Region::new(c.region.clone()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key.clone(),
                c.secret_key.expose().to_string(),
                None,
                None,
                "chopsticks-tests",
            ))
            .force_path_style(true)
            .build(),
    )
}

/// Keys a DeleteObjects reply names as not deleted are failures with their S3 code: a bucket
/// policy denies s3:DeleteObject, so every key of every batch comes back AccessDenied while the
/// request itself is answered 200.
async fn partial_errors_in_the_reply_are_failures_with_their_codes(driver: DriverKind) {
    let mut bucket = TestBucket::new(&format!("delete_batch_denied_{driver}"));
    bucket.config.driver = driver;
    let dir = common::workdir();
    let sdk = sdk_client(&bucket);
    sdk.create_bucket()
        .bucket(&bucket.name)
        .send()
        .await
        .expect("create bucket");
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::{}/*"}}]}}"#,
        bucket.name
    );
    sdk.put_bucket_policy()
        .bucket(&bucket.name)
        .policy(policy)
        .send()
        .await
        .expect("put bucket policy");
    let scenario = format!("{BATCH_SCENARIO}keep: true\n");
    let run = run_scenario(&bucket, dir.path(), &scenario, &["-u", "1", "-i", "1"]).await;
    // Let the bucket be emptied when the test ends.
    sdk.delete_bucket_policy()
        .bucket(&bucket.name)
        .send()
        .await
        .expect("delete bucket policy");
    let batch = run.task("batch");
    assert_eq!((batch.requests, batch.failures), (1, 1));
    let failures = std::fs::read_to_string(run.run_dir.join("failures.csv")).expect("failures");
    assert!(
        failures.contains("POST,batch,\"HTTP 200 AccessDenied") && failures.contains(",1\n"),
        "{failures}"
    );
    // Nothing was deleted: the 5 objects are all there.
    assert_eq!(bucket.keys().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_errors_in_the_reply_are_failures_with_their_codes_lean() {
    partial_errors_in_the_reply_are_failures_with_their_codes(DriverKind::Lean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_errors_in_the_reply_are_failures_with_their_codes_aws_sdk() {
    partial_errors_in_the_reply_are_failures_with_their_codes(DriverKind::AwsSdk).await;
}

/// Cleanup lists while DeleteObjects batches run: 2,500 objects (three listing pages) are all
/// deleted, counted exactly, and verified gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_every_page_in_batches() {
    let bucket = TestBucket::new("cleanup_batches");
    let dir = common::workdir();
    let run = run_scenario(
        &bucket,
        dir.path(),
        r#"
name: cleanup_batches
users:
  - name: reader
    tasks:
      - {op: head, key: shared}
prefill: {objects: 2500, size: 1KiB}
"#,
        &["-u", "1", "-i", "1"],
    )
    .await;
    run.cli.expect_code(0);
    let cleanup = run.record.cleanup.as_ref().expect("run.json has cleanup");
    assert!(cleanup.complete && cleanup.errors.is_empty(), "{cleanup:?}");
    assert_eq!(cleanup.deleted_objects, 2500);
    assert_eq!(cleanup.remaining_objects, Some(0));
    assert_eq!(bucket.keys().await, Vec::<String>::new());
}

/// `list` with a delimiter and the tagging operations, through the binary: every request
/// succeeds, and the tags the run wrote are on the objects it kept.
async fn tagging_and_delimited_listing(driver: DriverKind) {
    let mut bucket = TestBucket::new(&format!("tagging_{driver}"));
    bucket.config.driver = driver;
    let dir = common::workdir();
    let run = run_scenario(
        &bucket,
        dir.path(),
        r#"
name: tagging
users:
  - name: tagger
    sequence: true
    tasks:
      - {op: put, name: put, size: 1KiB}
      - {op: put_tagging, name: tag, tags: {team: storage, tier: "1"}}
      - {op: get_tagging, name: read_tags}
      - {op: list, name: list_dirs, key: any, delimiter: /}
keep: true
"#,
        &["-u", "2", "-i", "2"],
    )
    .await;
    run.cli.expect_code(0);
    for (name, method) in [
        ("put", "PUT"),
        ("tag", "PUT"),
        ("read_tags", "GET"),
        ("list_dirs", "GET"),
    ] {
        let t = run.task(name);
        assert_eq!(
            (t.requests, t.failures, t.skipped),
            (4, 0, 0),
            "{name}: {:?}",
            run.summary.failures
        );
        let stats = std::fs::read_to_string(run.run_dir.join("stats.csv")).expect("stats.csv");
        assert!(stats.contains(&format!("{method},{name},4,0,")), "{stats}");
    }
    // Each user tagged one of its own objects per pass: every kept object that was tagged
    // carries exactly the scenario's tags, and at least one per user was.
    let keys = bucket.keys().await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    let sdk = sdk_client(&bucket);
    let mut tagged = 0;
    for key in &keys {
        let out = sdk
            .get_object_tagging()
            .bucket(&bucket.name)
            .key(key)
            .send()
            .await
            .expect("get tagging");
        let mut tags: Vec<(String, String)> = out
            .tag_set()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        tags.sort();
        if !tags.is_empty() {
            tagged += 1;
            assert_eq!(
                tags,
                vec![
                    ("team".into(), "storage".into()),
                    ("tier".into(), "1".into())
                ]
            );
        }
    }
    assert!(tagged >= 2, "{tagged} of {keys:?} tagged");
    // The delimiter groups the run's keys by the next `/`: no key directly under the run's
    // prefix, only its users' prefixes.
    use chopsticks::load::driver::Driver;
    let prefix = &run.record.key_prefix;
    let page = bucket
        .driver
        .list_delimited(prefix, "/", 1000)
        .await
        .expect("delimited listing");
    assert!(page.keys.is_empty(), "{page:?}");
    assert!(!page.common_prefixes.is_empty(), "{page:?}");
    assert!(
        page.common_prefixes
            .iter()
            .all(|p| p.starts_with(prefix.as_str()) && p.ends_with('/')),
        "{page:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagging_and_delimited_listing_lean() {
    tagging_and_delimited_listing(DriverKind::Lean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagging_and_delimited_listing_aws_sdk() {
    tagging_and_delimited_listing(DriverKind::AwsSdk).await;
}

/// `addressing: virtual` against RadosGW (`rgw dns name = localhost` in tests/rgw/up.sh):
/// requests go to `BUCKET.localhost`, a name no DNS here knows, reached through
/// `driver_config.resolve`. The objects land under the run's prefix (a path-style request
/// to a virtual host would have put the bucket's name in front of every key).
async fn virtual_hosted_addressing(driver: DriverKind) {
    let bucket = TestBucket::new(&format!("virtual_{driver}"));
    let dir = common::workdir();
    let port = bucket
        .rgw
        .endpoint
        .rsplit(':')
        .next()
        .expect("endpoint has a port");
    let host = format!("{}.localhost", bucket.name);
    let c = &bucket.config;
    let workload = dir.path().join("virtual.yaml");
    std::fs::write(
        &workload,
        format!(
            "endpoint: http://localhost:{port}\naccess_key: {}\nsecret_key: {}\nbucket: {}\n\
             region: {}\ndriver: {driver}\naddressing: virtual\n\
             driver_config: {{resolve: {{{host}: 127.0.0.1}}}}\n",
            c.access_key,
            c.secret_key.expose(),
            c.bucket,
            c.region
        ),
    )
    .expect("write connection file");
    let scenario = common::write_scenario(
        dir.path(),
        "virtual.scenario.yaml",
        r#"
name: virtual
users:
  - name: all
    sequence: true
    tasks:
      - {op: put, name: put, weight: 2, size: 1KiB}
      - {op: get, name: get}
      - {op: head, name: head}
      - {op: list, name: list}
      - {op: delete, name: delete}
verify: true
keep: true
"#,
    );
    let run_dir = dir.path().join("runs").join("virtual");
    let cli = common::cli(
        dir.path(),
        &[
            "run",
            "--workload-config",
            workload.to_str().unwrap(),
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
    .await;
    cli.expect_code(0);
    let summary = common::read_summary(&run_dir);
    let record = common::read_record(&run_dir);
    assert_eq!(
        (summary.total.requests, summary.total.failures),
        (6, 0),
        "{:?}",
        summary.failures
    );
    assert_eq!(
        record.prepare.as_ref().map(|p| p.bucket.as_str()),
        Some("created")
    );
    // Two written, one deleted: one object, under the run's prefix, seen path-style.
    let keys = bucket.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with(&record.key_prefix), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_addressing_lean() {
    virtual_hosted_addressing(DriverKind::Lean).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosted_addressing_aws_sdk() {
    virtual_hosted_addressing(DriverKind::AwsSdk).await;
}
