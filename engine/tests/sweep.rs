//! The saturation sweep and `--autoterm` (issue 13, item 4) with the real binary against the
//! real RadosGW. The sweep's knee is made deterministic by a capacity the test sets: a TCP
//! proxy in front of the shared RadosGW delays every response by 100 ms and the scenario
//! allows 8 requests in flight, so at most ~80 requests/s can be served: a step of 40/s keeps
//! up, a step of 320/s must drop most of its arrivals and break the sweep's drop bound.

mod common;
mod obs;
mod proxy;

use chopsticks::load::sweep::SweepResult;
use chopsticks::present::report::ReportData;
use common::{cli, workdir, write_scenario, TestBucket};
use obs::Browser;
use proxy::Proxy;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const SWEEP_SCENARIO: &str = "\
name: sweep
users:
  - name: writer
    tasks:
      - {op: put, name: put, size: 1KiB}
load:
  arrival: {rate: 5/s}
  max_in_flight: 8
sweep:
  from: 5/s
  to: 320/s
  factor: 8
  step_time: 5s
  warmup: 1s
  stable: {window: 3s, cv: 10%}
  slo: {p99: 5s, error_rate: 1%}
  max_dropped: 20%
  max_late: 100%
";

fn read_sweep(run_dir: &Path) -> SweepResult {
    let text = std::fs::read_to_string(run_dir.join("sweep.json")).expect("sweep.json");
    serde_json::from_str(&text).expect("sweep.json parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_finds_the_knee_writes_sweep_json_and_charts_it() {
    let bucket = TestBucket::new("sweep-knee");
    let dir = workdir();
    let proxy = Proxy::start(&bucket.config.endpoint, Duration::from_millis(100)).await;
    let scenario = write_scenario(dir.path(), "scenario.yaml", SWEEP_SCENARIO);
    let mut config = bucket.config.clone();
    config.endpoint = proxy.endpoint.clone();
    let workload = dir.path().join("s3_config.yaml");
    std::fs::write(&workload, common::workload_yaml(&config)).expect("write workload");
    let run_dir = dir.path().join("runs").join("run");
    let run = cli(
        dir.path(),
        &[
            "sweep",
            "--workload-config",
            workload.to_str().unwrap(),
            "-f",
            scenario.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--headless",
        ],
    )
    .await;
    run.expect_code(0);
    run.expect_stderr(&["until the sweep ends"]);
    let sweep = read_sweep(&run_dir);
    assert!(sweep.finished, "{sweep:?}");
    let offered: Vec<f64> = sweep.steps.iter().map(|s| s.offered_rate).collect();
    assert_eq!(offered, [5.0, 40.0, 320.0], "{}", run.stdout);
    let (ok, broke) = (&sweep.steps[1], &sweep.steps[2]);
    assert_eq!(sweep.steps[0].verdict, "met", "{:?}", sweep.steps[0]);
    assert_eq!(ok.verdict, "met", "{ok:?}");
    assert!(broke.verdict.starts_with("broke: "), "{broke:?}");
    assert!(broke.verdict.contains("dropped"), "{broke:?}");
    assert_eq!(
        sweep.knee.as_ref(),
        Some(ok),
        "the knee is the highest step that met"
    );
    for s in &sweep.steps {
        // Each step measured whole seconds after its warm-up, within its step time.
        assert!(s.seconds >= 1 && s.seconds <= 4, "{s:?}");
        // Requests completed in the window can have arrived just before it (a response
        // takes 100 ms): at most max_in_flight (8) of them.
        assert!(
            s.arrivals >= s.dropped && s.requests <= s.arrivals + 8,
            "{s:?}"
        );
        assert_eq!(s.errors, 0, "{s:?}");
        let l = s.latency_ms.expect("latency");
        let v = s.service_ms.expect("service time");
        // Every response waited for the proxy's 100 ms.
        assert!(v.p50 >= 100.0 && l.p50 >= v.p50 - 1.0, "{s:?}");
    }
    assert!(
        broke.dropped * 2 > broke.arrivals,
        "320/s through a ~80/s pipe drops most arrivals: {broke:?}"
    );
    // The terminal table.
    assert!(run.stdout.contains("saturation sweep"), "{}", run.stdout);
    assert!(run.stdout.contains("<- knee"), "{}", run.stdout);
    // The run itself was one coordinator run that ended by the sweep.
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    assert!(events.contains("sweep over"), "{events}");
    assert!(events.contains("assigned 40.000000 arrivals/s"), "{events}");

    // report.html draws the sweep with the knee marked.
    let report = run_dir.join("report.html");
    let browser = Browser::start(dir.path(), 1400, 1000).await;
    browser.open_report(&report).await;
    let embedded = browser
        .js("return document.getElementById('data').textContent;")
        .await;
    let data: ReportData = serde_json::from_str(embedded.as_str().expect("data")).expect("data");
    assert_eq!(data.sweep.as_ref(), Some(&sweep));
    let knee_text = browser
        .js("return document.getElementById('sweep-knee').textContent;")
        .await;
    let knee_text = knee_text.as_str().expect("knee text");
    assert!(knee_text.starts_with("Knee: 40.0/s offered"), "{knee_text}");
    let chart = browser
        .js("var c = Chopsticks.chartData('chart-sweep'); return c ? c.data : null;")
        .await;
    let series = chart.as_array().expect("the sweep chart has data");
    let xs: Vec<f64> = series[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let mut achieved: Vec<f64> = sweep.steps.iter().map(|s| s.achieved_rate).collect();
    achieved.sort_by(f64::total_cmp);
    assert_eq!(xs, achieved, "x is the achieved rate of each step");
    let knee_points: Vec<&Value> = series[2]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| !v.is_null())
        .collect();
    assert_eq!(knee_points.len(), 1, "one point is the knee: {chart}");
    assert_eq!(
        knee_points[0].as_f64(),
        ok.latency_ms.map(|l| l.p99),
        "the knee is drawn at its p99"
    );
    let canvases = browser
        .js("return document.querySelectorAll('#chart-sweep canvas').length;")
        .await;
    assert!(canvases.as_u64().unwrap_or(0) >= 1, "the chart is drawn");
    let rows = browser
        .js("return document.querySelectorAll('#sweep-table tbody tr').length;")
        .await;
    assert_eq!(rows.as_u64(), Some(3));
    // The tasks table shows the open-model numbers next to latency (issue 13 item 4).
    let summary = common::read_summary(&run_dir);
    let put = summary
        .tasks
        .iter()
        .find(|t| t.name == "put")
        .expect("put row");
    let cells = browser
        .js("return Object.fromEntries([...document.querySelectorAll('#tasks-table tbody tr[data-task=\"put\"] td[data-col]')].map(td => [td.dataset.col, [td.dataset.value, td.textContent]]));")
        .await;
    let value = |col: &str| cells[col][0].as_str().unwrap_or_default().to_string();
    assert_eq!(value("arrivals"), put.arrivals.to_string(), "{cells}");
    assert_eq!(value("dropped"), put.dropped.to_string(), "{cells}");
    assert_eq!(value("late"), put.late.to_string(), "{cells}");
    assert!(put.dropped > 0 && put.arrivals == put.issued + put.dropped + put.skipped);
    let service = put
        .service_ms
        .as_ref()
        .expect("arrivals have a service time");
    let shown: f64 = value("service_p99").parse().expect("a number");
    assert!((shown - service.p99).abs() < 1e-9, "{cells}");
    assert_eq!(put.latency_from, "intended_start");
    let shot = dir.path().join("sweep.png");
    let (w, h, colours) = browser.screenshot_page(&shot).await;
    assert!(
        w >= 1000 && h >= 1500 && colours > 50,
        "{w}x{h}, {colours} colours"
    );
}

/// The same sweep run by a coordinator and two worker daemons, started through the control
/// API (what the charm's `start-test sweep=true` sends): each step's rate is split over both
/// workers, and the sweep finds the same knee as one process does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distributed_sweep_splits_each_step_over_the_workers() {
    let bucket = TestBucket::new("sweep-distributed");
    let dir = workdir();
    let proxy = Proxy::start(&bucket.config.endpoint, Duration::from_millis(100)).await;
    let scenario = write_scenario(dir.path(), "scenario.yaml", SWEEP_SCENARIO);
    let mut d = obs::Daemons::start(&bucket, dir.path(), None).await;
    // The coordinator prepares and cleans up directly; the workers' load goes through the
    // proxy (their connection file is read when they start).
    let mut through_proxy = bucket.config.clone();
    through_proxy.endpoint = proxy.endpoint.clone();
    std::fs::write(&d.workload, common::workload_yaml(&through_proxy)).expect("write workload");
    d.start_worker("w1", false);
    d.start_worker("w2", false);
    d.wait_workers(&["w1", "w2"]).await;
    let mut request = obs::start_request(&scenario, 1);
    request.expected_workers = Some(2);
    request.sweeping.sweep = true;
    let started = d.start_run(&request).await;
    let end = d
        .wait_state(&started.run_id, Duration::from_secs(90), |s| {
            !s.state.is_active()
        })
        .await;
    assert_eq!(end.state.to_string(), "completed", "{}", d.logs());
    let run_dir = d.run_dir(&started.run_id);
    let sweep = read_sweep(&run_dir);
    assert!(sweep.finished, "{sweep:?}");
    let offered: Vec<f64> = sweep.steps.iter().map(|s| s.offered_rate).collect();
    assert_eq!(offered, [5.0, 40.0, 320.0]);
    let verdicts: Vec<&str> = sweep.steps.iter().map(|s| s.verdict.as_str()).collect();
    assert_eq!(&verdicts[..2], ["met", "met"], "{sweep:?}");
    assert!(
        verdicts[2].starts_with("broke: ") && verdicts[2].contains("dropped"),
        "{sweep:?}"
    );
    assert_eq!(sweep.knee.as_ref(), Some(&sweep.steps[1]));
    // Every step's rate was split exactly over the two workers (millionths of an arrival).
    let events = std::fs::read_to_string(run_dir.join("events.log")).expect("events.log");
    for half in ["20.000000", "160.000000"] {
        assert_eq!(
            events
                .matches(&format!("assigned {half} arrivals/s"))
                .count(),
            2,
            "each of the two workers gets half of the step: {events}"
        );
    }
    // Both workers sent requests, and they add up to the run's.
    let record = common::read_record(&run_dir);
    assert_eq!(record.workers.len(), 2, "{:?}", record.workers);
    assert!(
        record.workers.iter().all(|w| w.requests > 0),
        "{:?}",
        record.workers
    );
    assert_eq!(
        record.workers.iter().map(|w| w.requests).sum::<u64>(),
        record.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoterm_stops_a_steady_run_before_its_duration() {
    let bucket = TestBucket::new("sweep-autoterm");
    let dir = workdir();
    let scenario =
        "name: steady\nusers:\n  - name: writer\n    tasks:\n      - {op: put, name: put, size: 1KiB}\n";
    let (child, run_dir) = common::spawn_run_through(
        &bucket,
        &bucket.config.endpoint.clone(),
        dir.path(),
        scenario,
        &[
            "--rate",
            "20/s",
            "-t",
            "120s",
            "--autoterm",
            "--autoterm-window",
            "3s",
            "--autoterm-cv",
            "25%",
        ],
        &[],
    );
    let run = child.finish().await;
    run.expect_code(0);
    let summary = common::read_summary(&run_dir);
    let stop = summary
        .autoterm
        .as_ref()
        .expect("summary.json says autoterm stopped it");
    assert_eq!(stop.window_s, 3);
    assert_eq!(stop.cv_bound_percent, 25.0);
    assert!(stop.cv_percent < 25.0, "{stop:?}");
    assert!(stop.after_s >= 3 && stop.after_s < 120, "{stop:?}");
    assert!(summary.duration_s < 120.0, "{}", summary.duration_s);
    let record = common::read_record(&run_dir);
    assert_eq!(record.state, chopsticks::control::RunState::Completed);
    let reason = record.reason.unwrap_or_default();
    assert!(
        reason.starts_with("autoterm:") && reason.contains(&format!("after {}s", stop.after_s)),
        "{reason}"
    );
}

/// Bad input: exit 2, naming the field and the fix, before any load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sweeps_and_autoterms_exit_2_naming_the_field() {
    let dir = workdir();
    // Nothing is sent: every case is refused before the run starts.
    let workload = write_scenario(
        dir.path(),
        "s3.yaml",
        "endpoint: http://127.0.0.1:9\naccess_key: a\nsecret_key: b\nbucket: never-used\n",
    );
    let scenario = write_scenario(
        dir.path(),
        "scenario.yaml",
        "name: s\nusers:\n  - name: w\n    tasks:\n      - {op: put, name: put, size: 1KiB}\n",
    );
    let (w, f) = (workload.to_str().unwrap(), scenario.to_str().unwrap());
    let base = ["sweep", "--workload-config", w, "-f", f, "--headless"];
    for (extra, words) in [
        (
            &[
                "--from", "500/s", "--to", "50/s", "--factor", "2", "--slo", "p99=5ms",
            ][..],
            &["sweep.from", "above sweep.to", "swap"][..],
        ),
        (
            &[
                "--from", "5/s", "--to", "50/s", "--factor", "1", "--slo", "p99=5ms",
            ],
            &["sweep.factor", "not above 1", "e.g. 1.5"],
        ),
        (
            &[
                "--from", "5/s", "--to", "50/s", "--step", "0/s", "--slo", "p99=5ms",
            ],
            &["sweep.step", "below the minimum"],
        ),
        (
            &[
                "--from", "5/s", "--to", "50/s", "--factor", "2", "--slo", "p99=fast",
            ],
            &["slo p99", "p99=50ms"],
        ),
        (
            &[
                "--from",
                "5/s",
                "--to",
                "50/s",
                "--factor",
                "2",
                "--slo",
                "p99=5ms",
                "--step-time",
                "0s",
            ],
            &["sweep.step_time", "positive"],
        ),
        (
            &["--from", "5/s", "--to", "50/s", "--factor", "2"],
            &["sweep.slo", "missing", "p99=50ms"],
        ),
        (
            &[
                "--from", "5/s", "--to", "50/s", "--factor", "2", "--slo", "p99=5ms", "-u", "5",
            ],
            &["--users/-u", "drop -u"],
        ),
        (
            &[
                "--from", "5/s", "--to", "50/s", "--factor", "2", "--slo", "p99=5ms", "--rate",
                "5/s",
            ],
            &["--rate", "--from/--to"],
        ),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let run = cli(dir.path(), &args).await;
        run.expect_code(2);
        run.expect_stderr(words);
    }
    let run = cli(
        dir.path(),
        &[
            "run",
            "--workload-config",
            w,
            "-f",
            f,
            "--headless",
            "--autoterm",
            "--autoterm-cv",
            "0%",
        ],
    )
    .await;
    run.expect_code(2);
    run.expect_stderr(&["autoterm cv", "e.g. 5%"]);
    // Autoterm would end a staged run in its first stage: refused, rate or users stages.
    for (name, load) in [
        (
            "rate-stages.yaml",
            "load:\n  arrival: {stages: [{rate: 5/s, for: 3s}, {rate: 50/s, for: 3s}]}\n",
        ),
        (
            "user-stages.yaml",
            "load:\n  users: {stages: [{users: 1, for: 3s}, {users: 5, for: 3s}]}\n",
        ),
    ] {
        let staged = write_scenario(
            dir.path(),
            name,
            &format!("name: s\nusers:\n  - name: w\n    tasks:\n      - {{op: put, name: put, size: 1KiB}}\n{load}"),
        );
        let run = cli(
            dir.path(),
            &[
                "run",
                "--workload-config",
                w,
                "-f",
                staged.to_str().unwrap(),
                "--headless",
                "--autoterm",
            ],
        )
        .await;
        run.expect_code(2);
        run.expect_stderr(&[
            "autoterm is for single-rate runs",
            "drop autoterm or the stages",
        ]);
    }
}
