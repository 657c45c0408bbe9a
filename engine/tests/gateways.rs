//! Several gateways and buckets (issue 14) with the real binary against the real RadosGW.
//! The shared RGW listens on one port, so two in-process TCP proxies on two ports in front of
//! it are the two gateways the client sees; a proxy that refuses connections is a dead one.

mod common;
mod obs;
mod proxy;

use chopsticks::load::driver::{AwsDriver, Driver};
use common::{cli, read_record, read_summary, rgw, workload_config, TestBucket};
use proxy::{Mode, Proxy};
use std::time::Duration;

/// 4 users, each 5 passes of put, get, delete: 15 requests per user.
const SCENARIO: &str = r#"
name: gateways
users:
  - name: rw
    sequence: true
    tasks:
      - {op: put, name: put, size: 4KiB}
      - {op: get, name: get, key: own}
      - {op: delete, name: delete, key: own}
verify: true
"#;

/// The connection file for `bucket`'s keys with `extra` lines (endpoints, buckets).
fn connection(bucket: &TestBucket, extra: &str) -> String {
    let c = &bucket.config;
    format!(
        "access_key: {}\nsecret_key: {}\nregion: {}\n{extra}",
        c.access_key,
        c.secret_key.expose(),
        c.region
    )
}

/// Runs [`SCENARIO`] with `connection` and returns (exit code, run dir, stderr).
async fn run(dir: &std::path::Path, connection: &str) -> (i32, std::path::PathBuf, String) {
    let scenario = common::write_scenario(dir, "scenario.yaml", SCENARIO);
    let workload = dir.join("connection.yaml");
    std::fs::write(&workload, connection).expect("write the connection file");
    let run_dir = dir.join("runs").join("run");
    let done = cli(
        dir,
        &[
            "run",
            "--workload-config",
            workload.to_str().unwrap(),
            "-f",
            scenario.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "-r",
            "100",
            "-u",
            "4",
            "-i",
            "5",
        ],
    )
    .await;
    (done.code, run_dir, done.stderr.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_split_users_evenly_and_a_dead_one_is_named() {
    let bucket = TestBucket::new("gw-split");
    let upstream = bucket.rgw.endpoint.clone();
    let (a, b) = (
        Proxy::start(&upstream, Duration::ZERO).await,
        Proxy::start(&upstream, Duration::ZERO).await,
    );
    let extra = format!(
        "bucket: {}\nendpoints: [{}, {}]\nendpoint_policy: user\n",
        bucket.name, a.endpoint, b.endpoint
    );
    let dir = common::workdir();
    let (code, run_dir, stderr) = run(dir.path(), &connection(&bucket, &extra)).await;
    assert_eq!(code, 0, "{stderr}");
    let summary = read_summary(&run_dir);
    assert_eq!(summary.total.requests, 60);
    assert_eq!(summary.endpoints.len(), 2, "{:?}", summary.endpoints);
    for url in [&a.endpoint, &b.endpoint] {
        let e = &summary.endpoints[url];
        // 4 users pinned round-robin: 2 per gateway, 15 requests each.
        assert_eq!((e.requests, e.failures), (30, 0), "{url}");
        assert_eq!(e.latency_ms.count, 30, "{url}");
        assert!(e.mb_per_s > 0.0, "{url}");
    }
    let record = read_record(&run_dir);
    assert_eq!(
        record.target.spread.endpoints,
        [a.endpoint.clone(), b.endpoint.clone()]
    );
    // One bucket: nothing is split per bucket.
    assert!(summary.buckets.is_empty() && record.buckets.is_empty());

    // The report's gateway table shows the same counts, one row per gateway.
    let browser = obs::Browser::start(dir.path(), 1200, 900).await;
    browser.open_report(&run_dir.join("report.html")).await;
    let rows = browser
        .js(
            "return Array.from(document.querySelectorAll('#endpoints-table tbody tr')).map(r => \
             [r.dataset.endpoint, r.querySelector('[data-col=requests]').dataset.value, \
             r.querySelector('[data-col=failures]').dataset.value]);",
        )
        .await;
    // The table lists gateways sorted by URL (the ports are random, so either may come first).
    let mut urls = [&a.endpoint, &b.endpoint];
    urls.sort();
    assert_eq!(
        rows,
        serde_json::json!([[urls[0], "30", "0"], [urls[1], "30", "0"]]),
        "the report's gateway table"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('spread-card').hidden;")
            .await,
        serde_json::json!(false)
    );
    drop(browser);
    assert_eq!(
        record.target.spread.endpoint_policy,
        Some(chopsticks::s3_config::EndpointPolicy::User)
    );

    // Gateway b dead: its users' requests fail under its name, gateway a's all succeed.
    b.set(Mode::Refuse);
    let dir = common::workdir();
    // Failed requests are measured, not a failed run (no thresholds): the exit code is not
    // what this checks.
    let (_code, run_dir, _stderr) = run(dir.path(), &connection(&bucket, &extra)).await;
    let summary = read_summary(&run_dir);
    let (live, dead) = (
        &summary.endpoints[&a.endpoint],
        &summary.endpoints[&b.endpoint],
    );
    assert_eq!((live.requests, live.failures), (30, 0));
    assert!(
        dead.failures > 0 && dead.failures == dead.requests,
        "{dead:?}"
    );
    assert!(
        summary
            .failures
            .iter()
            .any(|f| f.error.contains("connection")),
        "{:?}",
        summary.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_buckets_are_created_used_and_cleaned() {
    let rgw = rgw();
    // Names prefix-1..3; each is removed when the test ends.
    let prefix = format!("{}-", common::bucket_name("gw-many"));
    let names: Vec<String> = (1..=3).map(|i| format!("{prefix}{i}")).collect();
    let configs: Vec<_> = names.iter().map(|n| workload_config(&rgw, n)).collect();
    let _cleanup: Vec<_> = configs.iter().map(Remover).collect();
    let bucket = TestBucket::new("gw-many-keys");
    let extra = format!(
        "endpoint: {}\nbuckets: {{count: 3, prefix: {prefix}}}\n",
        rgw.endpoint
    );
    let dir = common::workdir();
    let (code, run_dir, stderr) = run(dir.path(), &connection(&bucket, &extra)).await;
    assert_eq!(code, 0, "{stderr}");
    let summary = read_summary(&run_dir);
    assert_eq!((summary.total.requests, summary.total.failures), (60, 0));
    let record = read_record(&run_dir);
    assert_eq!(record.target.spread.buckets, names);
    // 4 users over 3 buckets, 15 requests each: one bucket has two users. summary.json and
    // run.json count every request under its bucket, and the counts add up.
    let mut per_bucket: Vec<u64> = names
        .iter()
        .map(|n| summary.buckets.get(n).map_or(0, |b| b.requests))
        .collect();
    assert_eq!(summary.buckets.len(), 3, "{:?}", summary.buckets);
    for n in &names {
        let (s, r) = (&summary.buckets[n], &record.buckets[n]);
        assert_eq!((r.requests, r.failures), (s.requests, s.failures), "{n}");
        assert_eq!(r.bytes % 4096, 0, "{n}: whole 4 KiB objects");
    }
    per_bucket.sort();
    assert_eq!(per_bucket, [15, 15, 30]);
    let cleanup = record.cleanup.expect("a cleanup report");
    assert!(cleanup.complete, "{cleanup:?}");
    assert_eq!(cleanup.remaining_objects, Some(0));
    // Every bucket was created (a listing of a missing bucket fails) and holds nothing.
    for config in &configs {
        let d = AwsDriver::new(config).expect("driver");
        let page = d.list("", 1000, None).await.expect("bucket exists");
        assert!(page.keys.is_empty(), "{}: {:?}", config.bucket, page.keys);
    }
}

/// Removes a bucket the run created when the test ends.
struct Remover<'a>(&'a chopsticks::s3_config::WorkloadConfig);

impl Drop for Remover<'_> {
    fn drop(&mut self) {
        common::remove_bucket_on_drop(self.0);
    }
}
