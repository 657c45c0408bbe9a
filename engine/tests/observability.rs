//! The numbers handed to other tools, checked against the run's own summary: `/metrics` read
//! by a real Prometheus parser, `histograms.hlog` read back with HdrHistogram's interval-log
//! reader, `chopsticks compare` on two real runs, scenario thresholds that fail a run, and
//! `chopsticks report` re-rendering a report from the saved files.

mod common;
mod obs;

use chopsticks::control::RunState;
use chopsticks::present::report::ReportData;
use chopsticks::results::hlog::tag_for;
use chopsticks::results::summary::Summary;
use common::{cli, read_record, read_summary, workdir, write_scenario, TestBucket};
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use obs::{start_request, Daemons, TOKEN};
use prometheus_parse::{Scrape, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Every user writes, reads back and deletes a few objects, in order.
const SEQUENCE: &str = "\
name: observability
users:
  - name: writer
    sequence: true
    wait: {constant: 0}
    tasks:
      - {op: put, name: upload, size: 8KiB}
      - {op: get, name: download, key: own}
      - {op: list, name: list, max_keys: 20}
      - {op: delete, name: remove}
verify: true
";

/// Per tag, the sum of every interval of a run's `histograms.hlog`.
fn hlog_sums(run_dir: &Path) -> BTreeMap<String, Histogram<u64>> {
    let bytes = std::fs::read(run_dir.join("histograms.hlog")).expect("read histograms.hlog");
    let mut sums: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut last_start = Duration::ZERO;
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.expect("a well-formed interval log entry");
        let LogEntry::Interval(h) = entry else {
            continue;
        };
        assert!(h.start_timestamp() >= last_start, "intervals in time order");
        last_start = h.start_timestamp();
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            h.encoded_histogram(),
        )
        .expect("base64 histogram");
        let hist: Histogram<u64> = Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(raw))
            .expect("a V2 compressed histogram");
        let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
        let sum = sums
            .entry(tag)
            .or_insert_with(|| Histogram::new(3).expect("histogram"));
        sum.auto(true);
        sum.add(&hist).expect("add intervals");
    }
    sums
}

/// The value of `metric` with exactly `labels` among `samples`.
fn sample<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| &s.value)
}

fn scalar(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x)) => *x,
        other => panic!("not a scalar: {other:?}"),
    }
}

/// What the exposition format requires beyond what the parser enforces: HELP and TYPE before
/// every family's samples, and well-formed sample lines.
fn check_exposition_format(text: &str) {
    let mut typed = std::collections::HashSet::new();
    let mut helped = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap_or_default().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap_or_default().to_string();
            let kind = parts.next().unwrap_or_default();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name);
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let name_end = line.find(['{', ' ']).expect("a metric name");
        let name = &line[..name_end];
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(
            typed.contains(family) && helped.contains(family),
            "{name} has no HELP/TYPE before it"
        );
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "value {value:?} in {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_hlog_match_the_summary() {
    let bucket = TestBucket::new("observability-metrics");
    let dir = workdir();
    let scenario = write_scenario(dir.path(), "scenario.yaml", SEQUENCE);
    let mut d = Daemons::start(&bucket, dir.path(), None).await;
    d.start_worker("good", false);
    d.start_worker("denied", true);
    d.wait_workers(&["good", "denied"]).await;
    let mut request = start_request(&scenario, 4);
    request.iterations = Some(25);
    request.expected_workers = Some(2);
    let started = d.start_run(&request).await;
    let end = d
        .wait_state(&started.run_id, Duration::from_secs(120), |s| {
            s.state.is_terminal()
        })
        .await;
    assert_eq!(end.state, RunState::Completed, "{:?}", end.reason);
    let run_dir = d.run_dir(&started.run_id);
    let summary: Summary = read_summary(&run_dir);
    assert!(summary.total.requests > 100, "{}", summary.total.requests);
    assert!(summary.total.failures > 0, "the denied worker's puts fail");

    // /metrics on the control API, read by a Prometheus parser.
    let text = d.metrics().await;
    check_exposition_format(&text);
    let scrape =
        Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text parses");
    let hdr = hlog_sums(&run_dir);
    assert_eq!(
        scalar(sample(
            &scrape,
            "chopsticks_run_state",
            &[("state", "completed"), ("run_id", &started.run_id)]
        )),
        1.0
    );
    for other in ["running", "failed", "stopped", "idle"] {
        assert_eq!(
            scalar(sample(&scrape, "chopsticks_run_state", &[("state", other)])),
            0.0
        );
    }
    for t in &summary.tasks {
        let task = [("task", t.name.as_str())];
        assert_eq!(
            scalar(sample(&scrape, "chopsticks_requests_total", &task)) as u64,
            t.requests,
            "{} requests",
            t.name
        );
        assert_eq!(
            scalar(sample(&scrape, "chopsticks_bytes_total", &task)) as u64,
            t.bytes,
            "{} bytes",
            t.name
        );
        let failures: f64 = scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == "chopsticks_failures_total" && s.labels.get("task") == Some(&t.name)
            })
            .map(|s| scalar(Some(&s.value)))
            .sum();
        assert_eq!(failures as u64, t.failures, "{} failures", t.name);
        for f in summary.failures.iter().filter(|f| f.name == t.name) {
            assert_eq!(
                scalar(sample(
                    &scrape,
                    "chopsticks_failures_total",
                    &[("task", &t.name), ("kind", &f.error)]
                )) as u64,
                f.occurrences,
                "{} {}",
                t.name,
                f.error
            );
        }

        // The histogram: monotone buckets ending in every successful request (failures'
        // times are not latency), each bucket the exact count of recorded values at or below
        // its bound.
        let Some(Value::Histogram(buckets)) =
            sample(&scrape, "chopsticks_request_duration_seconds", &task)
        else {
            panic!("no latency histogram for {}", t.name);
        };
        assert!(buckets.windows(2).all(|w| w[0].less_than < w[1].less_than));
        assert!(
            buckets.windows(2).all(|w| w[0].count <= w[1].count),
            "{} buckets are cumulative: {buckets:?}",
            t.name
        );
        let last = buckets.last().expect("buckets");
        assert!(last.less_than.is_infinite());
        let ok = t.requests - t.failures;
        assert_eq!(t.latency_ms.count, ok, "{}", t.name);
        assert_eq!(last.count as u64, ok);
        assert_eq!(
            scalar(sample(
                &scrape,
                "chopsticks_request_duration_seconds_count",
                &task
            )) as u64,
            ok
        );
        let h = &hdr[&tag_for(&t.name, false)];
        for b in buckets.iter().filter(|b| b.less_than.is_finite()) {
            let exact = h.count_between(0, (b.less_than * 1e6) as u64);
            assert_eq!(b.count as u64, exact, "{} le={}", t.name, b.less_than);
        }
        let p99 = scalar(sample(
            &scrape,
            "chopsticks_request_duration_quantile_seconds",
            &[("task", &t.name), ("quantile", "0.99")],
        ));
        assert!(
            (p99 * 1000.0 - t.latency_ms.p99).abs() < 1e-9,
            "{} p99 {p99} s vs {} ms",
            t.name,
            t.latency_ms.p99
        );
    }

    // histograms.hlog: per task, the intervals add up to every successful request of the
    // summary.
    for t in &summary.tasks {
        let h = hdr
            .get(&tag_for(&t.name, false))
            .unwrap_or_else(|| panic!("no {} histograms in {:?}", t.name, hdr.keys()));
        assert_eq!(
            h.len(),
            t.requests - t.failures,
            "{}: hlog intervals vs summary",
            t.name
        );
        assert_eq!(h.max() as f64 / 1000.0, t.latency_ms.max, "{} max", t.name);
    }
    let known: Vec<String> = summary
        .tasks
        .iter()
        .flat_map(|t| [tag_for(&t.name, false), tag_for(&t.name, true)])
        .collect();
    assert!(hdr.keys().all(|k| known.contains(k)), "{:?}", hdr.keys());
    assert!(hdr.contains_key("ttfb:download"));

    // The workers' listener serves the same numbers, but only with the cluster token.
    let hub = format!("http://127.0.0.1:{}/metrics", d.listen_port);
    let refused = d.http.get(&hub).send().await.expect("GET hub metrics");
    assert_eq!(refused.status(), 401);
    let text = d
        .http
        .get(&hub)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET hub metrics")
        .text()
        .await
        .expect("text");
    let again = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");
    assert_eq!(
        scalar(sample(
            &again,
            "chopsticks_requests_total",
            &[("task", "upload")]
        )) as u64,
        summary.tasks[0].requests
    );
    assert_eq!(d.stop().await, Some(0));
}

/// A standalone run of `yaml`, headless; returns the run directory.
async fn standalone(
    bucket: &TestBucket,
    dir: &Path,
    name: &str,
    yaml: &str,
) -> (common::CliRun, std::path::PathBuf) {
    let scenario = write_scenario(dir, &format!("{name}.yaml"), yaml);
    let workload = bucket.write_workload(dir);
    let run_dir = dir.join("runs").join(name);
    let run = cli(
        dir,
        &[
            "run",
            "--headless",
            "--workload-config",
            workload.to_str().expect("utf-8"),
            "-f",
            scenario.to_str().expect("utf-8"),
            "-u",
            "2",
            "-r",
            "100",
            "-t",
            "3s",
            "--run-dir",
            run_dir.to_str().expect("utf-8"),
        ],
    )
    .await;
    (run, run_dir)
}

fn scenario_with_wait(name: &str, wait: f64) -> String {
    format!(
        "name: {name}\nusers:\n  - name: rw\n    wait: {{constant: {wait}}}\n    tasks:\n      \
         - {{op: put, name: upload, weight: 1, size: 4KiB}}\n      \
         - {{op: get, name: download, weight: 2, key: own}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_exit_codes_on_two_real_runs() {
    let bucket = TestBucket::new("compare-runs");
    let dir = workdir();
    // A runs flat out; B waits half a second between requests: far fewer requests/s.
    let (a, fast) = standalone(
        &bucket,
        dir.path(),
        "fast",
        &scenario_with_wait("fast", 0.0),
    )
    .await;
    a.expect_code(0);
    let (b, slow) = standalone(
        &bucket,
        dir.path(),
        "slow",
        &scenario_with_wait("slow", 0.5),
    )
    .await;
    b.expect_code(0);
    let (sa, sb) = (read_summary(&fast), read_summary(&slow));
    assert!(
        sb.total.requests_per_s * 2.0 < sa.total.requests_per_s,
        "B ({}) must be much slower than A ({})",
        sb.total.requests_per_s,
        sa.total.requests_per_s
    );
    let (fast, slow) = (fast.to_str().expect("utf-8"), slow.to_str().expect("utf-8"));

    // No limits: a table, exit 0.
    let out = cli(dir.path(), &["compare", fast, slow]).await;
    out.expect_code(0);
    assert!(out.stdout.contains("download") && out.stdout.contains("Aggregated"));
    // No threshold crossed: B to A is faster.
    let out = cli(
        dir.path(),
        &["compare", slow, fast, "--threshold", "rps=-50%"],
    )
    .await;
    out.expect_code(0);
    assert!(
        out.stdout.contains("no threshold crossed"),
        "{}",
        out.stdout
    );
    // Crossed: A to B loses far more than half its throughput.
    let out = cli(
        dir.path(),
        &["compare", fast, slow, "--threshold", "rps=-50%"],
    )
    .await;
    out.expect_code(1);
    assert!(
        out.stdout.contains("REGRESSION") && out.stdout.contains("rps of download"),
        "{}",
        out.stdout
    );
    // Bad specs and bad runs are bad input.
    for spec in ["p99=10%", "p99=+ten%", "latency=+5%", "rps=+5%"] {
        let out = cli(dir.path(), &["compare", fast, slow, "--threshold", spec]).await;
        out.expect_code(2);
        assert!(out.stderr.contains("error:"), "{spec}: {}", out.stderr);
    }
    let missing = dir.path().join("no-such-run");
    let out = cli(
        dir.path(),
        &["compare", fast, missing.to_str().expect("utf-8")],
    )
    .await;
    out.expect_code(2);
    assert!(
        out.stderr.contains("give the directory of a finished run"),
        "{}",
        out.stderr
    );
}

/// The JSON a report embeds.
fn embedded(report: &Path) -> ReportData {
    let html = std::fs::read_to_string(report).expect("read report.html");
    let start = html
        .find("<script id=\"data\" type=\"application/json\">")
        .expect("embedded data")
        + "<script id=\"data\" type=\"application/json\">".len();
    let end = start + html[start..].find("</script>").expect("end of data");
    serde_json::from_str(&html[start..end]).expect("embedded data parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_thresholds_fail_a_run_and_its_report_can_be_rerendered() {
    let bucket = TestBucket::new("thresholds-fail");
    let dir = workdir();
    let yaml = format!(
        "{}thresholds:\n  - {{min_rps: 1000000}}\n  - {{task: download, max_p99: 1us}}\n  - {{max_error_rate: 50%}}\n",
        scenario_with_wait("gated", 0.0)
    );
    let (run, run_dir) = standalone(&bucket, dir.path(), "gated", &yaml).await;
    run.expect_code(1);
    run.expect_stderr(&["failed", "thresholds crossed"]);
    let record = read_record(&run_dir);
    assert_eq!(record.state, RunState::Failed);
    let reason = record.reason.clone().expect("a reason");
    assert!(reason.contains("requests/s of all tasks"), "{reason}");
    assert!(reason.contains("p99 of download"), "{reason}");
    assert!(
        !reason.contains("error rate"),
        "no failures, so not crossed: {reason}"
    );
    assert_eq!(read_summary(&run_dir).state, RunState::Failed);

    // The report says so, and re-renders from the saved files alone.
    let report = run_dir.join("report.html");
    let first = embedded(&report);
    assert_eq!(first.run.state, RunState::Failed);
    assert_eq!(first.run.reason.as_deref(), Some(reason.as_str()));
    std::fs::remove_file(&report).expect("remove report.html");
    let out = cli(dir.path(), &["report", run_dir.to_str().expect("utf-8")]).await;
    out.expect_code(0);
    assert_eq!(out.stdout.trim(), report.display().to_string());
    let again = embedded(&report);
    assert_eq!(
        ReportData {
            generated_at: String::new(),
            ..again
        },
        ReportData {
            generated_at: String::new(),
            ..first
        }
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = cli(dir.path(), &["report", empty.to_str().expect("utf-8")]).await;
    out.expect_code(2);
    out.expect_stderr(&["has no run.json", "give the directory of a run"]);
}
