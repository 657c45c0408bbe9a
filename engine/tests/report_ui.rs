//! The report and the live web UI in a real browser: a real distributed run against the real
//! RadosGW renders `report.html`, which headless Chromium loads and screenshots while the test
//! checks that its tables and charts hold the run's real numbers (summary.json,
//! stats_history.csv, histograms.hlog, run.json). The live UI shows a run as it goes, and its
//! stop button stops it. Off loopback, the UI demands the cluster token.

mod common;
mod obs;

use chopsticks::control::{RunState, Status};
use chopsticks::present::report::ReportData;
use chopsticks::results::summary::Summary;
use common::{read_record, read_summary, wait_for, workdir, write_scenario, TestBucket};
use obs::{start_request, Browser, Daemons, Proc, TOKEN};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// A mix of writes, verified reads, lists and deletes, quick enough to give every second data.
const SCENARIO: &str = "\
name: report_ui
users:
  - name: mixed
    wait: {constant: 0.02}
    tasks:
      - {op: put, name: upload, weight: 3, size: 16KiB}
      - {op: get, name: download, weight: 4, key: own}
      - {op: list, name: list, weight: 1, max_keys: 50}
      - {op: delete, name: remove, weight: 1}
verify: true
";

/// `1234567` → `1,234,567`, as the page writes counts.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table cell as the page shows it: its raw value and its text.
#[derive(Debug, Clone)]
struct Cell {
    value: String,
    text: String,
}

/// Rows of table `id` keyed by `key` (a data- attribute), each a map column → cell.
async fn table(b: &Browser, id: &str, key: &str) -> BTreeMap<String, BTreeMap<String, Cell>> {
    let script = format!(
        "return [...document.querySelectorAll('#{id} tr[data-{key}]')].map(tr => [tr.dataset.{key}, \
         [...tr.querySelectorAll('td[data-col]')].map(td => [td.dataset.col, td.dataset.value || '', td.textContent])]);"
    );
    let rows = b.js(&script).await;
    let mut out = BTreeMap::new();
    for row in rows.as_array().expect("rows") {
        let name = row[0].as_str().expect("row key").to_string();
        let mut cells = BTreeMap::new();
        for c in row[1].as_array().expect("cells") {
            cells.insert(
                c[0].as_str().unwrap_or_default().to_string(),
                Cell {
                    value: c[1].as_str().unwrap_or_default().to_string(),
                    text: c[2].as_str().unwrap_or_default().to_string(),
                },
            );
        }
        out.insert(name, cells);
    }
    out
}

/// A latency cell: the exact value, shown in ms with 2 decimals and thousands separators.
fn assert_ms(cell: &Cell, expected: f64, what: &str) {
    let value: f64 = cell
        .value
        .parse()
        .unwrap_or_else(|_| panic!("{what}: {cell:?}"));
    assert_eq!(value, expected, "{what}: data-value");
    let digits = cell.text.replace(',', "");
    let shown: f64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("{what}: text {cell:?}"));
    assert!(
        (shown - expected).abs() <= 0.005 + 1e-9,
        "{what}: shows {} for {expected}",
        cell.text
    );
    let (int, frac) = cell.text.split_once('.').expect("two decimals");
    assert_eq!(frac.len(), 2, "{what}: '{}' has 2 decimals", cell.text);
    let groups: Vec<&str> = int.split(',').collect();
    assert!(
        groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3),
        "{what}: '{}' groups thousands",
        cell.text
    );
}

fn assert_count(cell: &Cell, expected: u64, what: &str) {
    assert_eq!(cell.value, expected.to_string(), "{what}: data-value");
    assert_eq!(cell.text, thousands(expected), "{what}: text");
}

/// `stats_history.csv` as (name, row) pairs in file order.
fn history(run_dir: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(run_dir.join("stats_history.csv")).expect("history");
    let headers = reader.headers().expect("headers").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("a history row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

async fn chart(b: &Browser, id: &str) -> (Vec<String>, Vec<Vec<Option<f64>>>) {
    let v = b.js(&format!("return Chopsticks.chartData('{id}');")).await;
    assert!(!v.is_null(), "chart {id} is not drawn");
    let labels = v["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_string())
        .collect();
    let data = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|s| s.as_array().expect("series").iter().map(num).collect())
        .collect();
    (labels, data)
}

fn f(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col} = {:?}", row[col]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_of_a_real_run_shows_its_numbers_in_chromium() {
    let bucket = TestBucket::new("report-ui");
    let dir = workdir();
    let scenario = write_scenario(dir.path(), "scenario.yaml", SCENARIO);
    let mut d = Daemons::start(&bucket, dir.path(), None).await;
    d.start_worker("good", false);
    d.start_worker("denied", true);
    d.start_worker("doomed", false);
    d.wait_workers(&["good", "denied", "doomed"]).await;

    let mut request = start_request(&scenario, 6);
    request.duration = Some("8s".into());
    request.expected_workers = Some(3);
    let started = d.start_run(&request).await;
    let id = started.run_id.clone();
    // Lose a worker mid-run: its part must show as lost in the report.
    d.wait_state(&id, Duration::from_secs(60), |s| {
        s.state == RunState::Running && s.requests > 50
    })
    .await;
    d.kill_worker("doomed");
    let end = d
        .wait_state(&id, Duration::from_secs(120), |s| s.state.is_terminal())
        .await;
    assert_eq!(
        end.state,
        RunState::Completed,
        "{:?}\n{}",
        end.reason,
        d.logs()
    );

    let run_dir = d.run_dir(&id);
    let summary = read_summary(&run_dir);
    let record = read_record(&run_dir);
    let fate: BTreeMap<&str, &str> = record
        .workers
        .iter()
        .map(|w| (w.name.as_str(), w.fate.as_str()))
        .collect();
    assert_eq!(fate["doomed"], "lost", "{:?}", record.workers);
    assert_eq!(fate["good"], "finished");
    assert!(
        !summary.failures.is_empty(),
        "the denied worker's requests must fail"
    );
    let report = run_dir.join("report.html");
    assert!(report.is_file(), "the run's end writes report.html");

    let browser = Browser::start(dir.path(), 1400, 1000).await;
    browser.open_report(&report).await;

    // Nothing was fetched: the page is one file.
    let fetched = browser
        .js("return performance.getEntriesByType('resource').map(e => e.name);")
        .await;
    assert_eq!(
        fetched,
        Value::Array(vec![]),
        "the report fetched resources"
    );

    // The embedded data is the run's files (read as text: a u64 seed is beyond JS numbers).
    let embedded = browser
        .js("return document.getElementById('data').textContent;")
        .await;
    let data: ReportData = serde_json::from_str(embedded.as_str().expect("data text"))
        .expect("the embedded data parses as ReportData");
    assert_eq!(data.summary.as_ref(), Some(&summary));
    assert_eq!(data.run, record);
    let seed = browser
        .js("return document.querySelector('[data-param=seed] dd').textContent;")
        .await;
    assert_eq!(
        seed,
        record.seed.to_string().as_str(),
        "the exact seed is shown"
    );

    // Header.
    let header = browser
        .js("return [document.getElementById('run-id').textContent, document.getElementById('run-state').dataset.state, document.title];")
        .await;
    assert_eq!(header[0], id.as_str());
    assert_eq!(header[1], "completed");
    assert!(header[2].as_str().unwrap_or_default().contains(&id));
    let kpi = browser
        .js("return document.querySelector('[data-kpi=requests] .value').dataset.value;")
        .await;
    assert_eq!(kpi, summary.total.requests.to_string().as_str());

    check_tasks_table(&browser, &summary).await;
    check_time_charts(&browser, &run_dir).await;
    check_distributions(&browser, &data, &summary).await;
    check_failures(&browser, &summary).await;

    // Per-worker totals, and the lost worker called out.
    let workers = table(&browser, "workers-table", "worker").await;
    assert_eq!(workers.len(), record.workers.len());
    for w in &record.workers {
        let row = &workers[&w.name];
        assert_count(
            &row["requests"],
            w.requests,
            &format!("{} requests", w.name),
        );
        assert_count(
            &row["failures"],
            w.failures,
            &format!("{} failures", w.name),
        );
        assert_eq!(row["fate"].value, w.fate);
    }
    assert_eq!(
        record.workers.iter().map(|w| w.requests).sum::<u64>(),
        summary.total.requests,
        "the workers' totals add up to the run's"
    );
    let lost = browser
        .js("const b = document.getElementById('lost-workers'); return b ? b.textContent : null;")
        .await;
    assert!(
        lost.as_str().unwrap_or_default().contains("doomed"),
        "lost-worker banner: {lost}"
    );

    let shot = dir.path().join("report.png");
    let (w, h, colours) = browser.screenshot_page(&shot).await;
    assert!(w >= 1000 && h >= 2000, "screenshot is {w}x{h}");
    assert!(colours > 50, "screenshot has only {colours} colours");
    assert!(std::fs::metadata(&shot).expect("png").len() > 50_000);
    browser.close().await;
    d.stop().await;
}

async fn check_tasks_table(b: &Browser, summary: &Summary) {
    let rows = table(b, "tasks-table", "task").await;
    for t in summary.tasks.iter().chain(std::iter::once(&summary.total)) {
        let row = rows
            .get(&t.name)
            .unwrap_or_else(|| panic!("no row for {} in {:?}", t.name, rows.keys()));
        let what = |c: &str| format!("{} {c}", t.name);
        assert_count(&row["requests"], t.requests, &what("requests"));
        assert_count(&row["failures"], t.failures, &what("failures"));
        let l = &t.latency_ms;
        for (col, v) in [
            ("min", l.min),
            ("p50", l.p50),
            ("p90", l.p90),
            ("p95", l.p95),
            ("p99", l.p99),
            ("p999", l.p99_9),
            ("max", l.max),
        ] {
            assert_ms(&row[col], v, &what(col));
        }
        match &t.ttfb_ms {
            Some(p) => {
                assert_ms(&row["ttfb_p50"], p.p50, &what("ttfb p50"));
                assert_ms(&row["ttfb_p99"], p.p99, &what("ttfb p99"));
            }
            None => assert_eq!(row["ttfb_p50"].value, "", "{}", what("ttfb")),
        }
        assert_eq!(
            row["mb_per_s"].value.parse::<f64>().ok(),
            Some(t.mb_per_s),
            "{}",
            what("MB/s")
        );
        assert_eq!(
            row["rps"].value.parse::<f64>().ok(),
            Some(t.requests_per_s),
            "{}",
            what("req/s")
        );
        // Open-model columns (issue 13): a closed run without pacing has one latency
        // histogram, said once, and no arrivals.
        match &t.service_ms {
            Some(p) => {
                assert_ms(&row["service_p50"], p.p50, &what("service p50"));
                assert_ms(&row["service_p99"], p.p99, &what("service p99"));
            }
            None => {
                assert_eq!(
                    row["service_p99"].text,
                    "same as latency",
                    "{}",
                    what("service")
                );
                assert_eq!(row["service_p99"].value, "", "{}", what("service"));
            }
        }
        if t.arrivals == 0 {
            assert_eq!(row["dropped"].value, "", "{}", what("dropped"));
        } else {
            assert_count(&row["dropped"], t.dropped, &what("dropped"));
            assert_count(&row["late"], t.late, &what("late"));
        }
    }
    assert!(summary.tasks.iter().any(|t| t.ttfb_ms.is_some()));
}

async fn check_time_charts(b: &Browser, run_dir: &Path) {
    let rows = history(run_dir);
    let agg: Vec<&BTreeMap<String, String>> =
        rows.iter().filter(|r| r["Name"] == "Aggregated").collect();
    assert!(agg.len() >= 5, "{} seconds of history", agg.len());

    let (labels, rps) = chart(b, "chart-rps").await;
    assert_eq!(labels, ["Requests/s", "Failures/s"]);
    assert_eq!(rps[0].len(), agg.len(), "one point per second");
    for (i, row) in agg.iter().enumerate() {
        // Two flushes can share a second: the chart nudges the second one by a millisecond.
        let (x, ts) = (rps[0][i].expect("x"), f(row, "Timestamp"));
        assert!(x >= ts && x < ts + 0.5, "time {x} for row at {ts}");
        assert_eq!(rps[1][i], Some(f(row, "Requests/s")), "requests/s at {i}");
        assert_eq!(rps[2][i], Some(f(row, "Failures/s")), "failures/s at {i}");
    }
    assert!(
        rps[2].iter().flatten().any(|v| *v > 0.0),
        "failures show over time"
    );
    let (_, users) = chart(b, "chart-users").await;
    let (_, mbps) = chart(b, "chart-mbps").await;
    let (_, latency) = chart(b, "chart-latency").await;
    for (i, row) in agg.iter().enumerate() {
        assert_eq!(users[1][i], Some(f(row, "User Count")), "users at {i}");
        assert_eq!(mbps[1][i], Some(f(row, "MB/s")), "MB/s at {i}");
        let expect = (f(row, "Requests/s") > 0.0).then(|| f(row, "99%"));
        assert_eq!(latency[3][i], expect, "p99 at {i}");
    }

    // p50/p95/p99 per task: the task's rows of each second.
    let charts = b
        .js("return [...document.querySelectorAll('#task-charts .chart')].map(c => [c.id, c.dataset.task]);")
        .await;
    let charts = charts.as_array().expect("task charts");
    assert!(charts.len() >= 3, "{charts:?}");
    for c in charts {
        let (id, task) = (
            c[0].as_str().unwrap_or_default(),
            c[1].as_str().unwrap_or_default(),
        );
        let (labels, data) = chart(b, id).await;
        assert_eq!(labels, ["p50", "p95", "p99"]);
        let mut second = 0;
        let mut this: Option<&BTreeMap<String, String>> = None;
        for row in &rows {
            if row["Name"] == task {
                this = Some(row);
            } else if row["Name"] == "Aggregated" {
                let expect = this
                    .filter(|r| f(r, "Requests/s") > 0.0)
                    .map(|r| (f(r, "50%"), f(r, "95%"), f(r, "99%")));
                let got = (data[1][second], data[2][second], data[3][second]);
                match expect {
                    Some((p50, p95, p99)) => {
                        assert_eq!(got, (Some(p50), Some(p95), Some(p99)), "{task} at {second}")
                    }
                    None => assert_eq!(got, (None, None, None), "{task} at {second}"),
                }
                this = None;
                second += 1;
            }
        }
    }
}

async fn check_distributions(b: &Browser, data: &ReportData, summary: &Summary) {
    let latency: Vec<_> = data
        .distributions
        .iter()
        .filter(|d| d.kind == "latency")
        .collect();
    // Latency curves are of successful requests: a task with none has no curve.
    let ran: Vec<&str> = summary
        .tasks
        .iter()
        .filter(|t| t.latency_ms.count > 0)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        latency.iter().map(|d| d.task.as_str()).collect::<Vec<_>>(),
        ran
    );
    for d in &latency {
        let t = summary
            .tasks
            .iter()
            .find(|t| t.name == d.task)
            .expect("task");
        assert_eq!(
            d.count,
            t.requests - t.failures,
            "{}: histograms.hlog holds every successful request",
            d.task
        );
        let at = |p: f64| d.points.iter().find(|x| x[0] == p).map(|x| x[1]);
        assert_eq!(at(50.0), Some(t.latency_ms.p50), "{} p50", d.task);
        assert_eq!(at(100.0), Some(t.latency_ms.max), "{} max", d.task);
        for (p, enough, v) in [
            (90.0, 10, t.latency_ms.p90),
            (95.0, 20, t.latency_ms.p95),
            (99.0, 100, t.latency_ms.p99),
            (99.9, 1000, t.latency_ms.p99_9),
        ] {
            // Enough successful requests to tell that percentile apart.
            if t.latency_ms.count >= enough {
                assert_eq!(at(p), Some(v), "{} p{p}", d.task);
            }
        }
    }
    let (labels, plotted) = chart(b, "chart-distribution").await;
    assert_eq!(labels, ran);
    for (i, d) in latency.iter().enumerate() {
        let values: Vec<f64> = plotted[i + 1].iter().flatten().copied().collect();
        let expected: Vec<f64> = d.points.iter().map(|p| p[1].max(0.001)).collect();
        assert_eq!(values, expected, "{} curve", d.task);
    }
    let (ttfb_labels, _) = chart(b, "chart-ttfb-distribution").await;
    assert_eq!(ttfb_labels, ["download"]);
}

async fn check_failures(b: &Browser, summary: &Summary) {
    let rows = b
        .js("return [...document.querySelectorAll('#failures-table tr[data-kind]')].map(tr => [tr.dataset.task, tr.dataset.kind, tr.querySelector('[data-col=occurrences]').dataset.value]);")
        .await;
    let mut got: Vec<(String, String, u64)> = rows
        .as_array()
        .expect("failure rows")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                r[1].as_str().unwrap_or_default().to_string(),
                r[2].as_str().and_then(|v| v.parse().ok()).unwrap_or(0),
            )
        })
        .collect();
    let mut expected: Vec<(String, String, u64)> = summary
        .failures
        .iter()
        .map(|f| (f.name.clone(), f.error.clone(), f.occurrences))
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert!(
        expected.iter().any(|(_, kind, _)| kind.contains("403")),
        "the denied worker's refusals are HTTP 403: {expected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_ui_shows_the_run_and_its_stop_button_stops_it() {
    let bucket = TestBucket::new("live-ui");
    let dir = workdir();
    let scenario = write_scenario(dir.path(), "scenario.yaml", SCENARIO);
    let ui_port = common::free_port();
    let ui = format!("http://127.0.0.1:{ui_port}");
    let mut d = Daemons::start(&bucket, dir.path(), Some(&format!("127.0.0.1:{ui_port}"))).await;
    d.start_worker("w1", false);
    d.wait_workers(&["w1"]).await;
    let mut request = start_request(&scenario, 3);
    request.duration = Some("5m".into());
    let started = d.start_run(&request).await;
    let id = started.run_id.clone();

    let browser = Browser::start(dir.path(), 1400, 1000).await;
    browser.client.goto(&ui).await.expect("open the web UI");
    let requests = async || -> Result<u64, String> {
        let v = browser
            .js("const e = document.querySelector('[data-kpi=requests] .value'); return e ? e.dataset.value : null;")
            .await;
        v.as_str()
            .and_then(|s| s.parse().ok())
            .filter(|n| *n > 0)
            .ok_or(format!("requests: {v}"))
    };
    let first = wait_for(
        "requests on the live page",
        Duration::from_secs(60),
        requests,
    )
    .await;
    wait_for(
        "the request count to grow",
        Duration::from_secs(30),
        async || {
            let n = requests().await?;
            if n > first {
                Ok(n)
            } else {
                Err(format!("{n}, not above {first}"))
            }
        },
    )
    .await;
    let shown = wait_for("the live page to show the worker and its users", Duration::from_secs(30), async || {
        let v = browser
            .js("const r = document.querySelector('#live-workers-table tr[data-worker=w1]'); \
                 return r ? [r.dataset.state, r.querySelector('[data-col=users]').dataset.value, \
                 document.getElementById('run-id').textContent, document.getElementById('run-state').dataset.state, \
                 Chopsticks.chartData('chart-rps').data[0].length] : null;")
            .await;
        if v[1].as_str() == Some("3") && v[3] == "running" && v[4].as_u64().unwrap_or(0) >= 2 {
            Ok(v)
        } else {
            Err(format!("{v}"))
        }
    })
    .await;
    assert_eq!(shown[0], "connected");
    assert_eq!(shown[2], id.as_str());

    let shot = dir.path().join("live.png");
    let (w, h, colours) = browser.screenshot_page(&shot).await;
    assert!(w >= 1000 && h >= 1500, "screenshot is {w}x{h}");
    assert!(colours > 50, "screenshot has only {colours} colours");

    // The stop button asks first, then stops the run.
    browser
        .client
        .find(fantoccini::Locator::Id("stop-button"))
        .await
        .expect("the stop button")
        .click()
        .await
        .expect("click stop");
    let question = wait_for(
        "the stop confirmation",
        Duration::from_secs(10),
        async || {
            browser
                .client
                .get_alert_text()
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    assert!(question.contains(&id), "{question}");
    browser
        .client
        .accept_alert()
        .await
        .expect("confirm the stop");
    let http = reqwest::Client::new();
    let end: Status = wait_for("the run to stop", Duration::from_secs(90), async || {
        let s: Status = http
            .get(format!("{ui}/api/status"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if s.state.is_terminal() {
            Ok(s)
        } else {
            Err(format!("{}", s.state))
        }
    })
    .await;
    assert_eq!(end.state, RunState::Stopped, "{:?}", end.reason);
    assert_eq!(read_record(&d.run_dir(&id)).state, RunState::Stopped);
    wait_for(
        "the page to show the run stopped and listed",
        Duration::from_secs(30),
        async || {
            let v = browser
                .js(
                    "return [document.getElementById('run-state').dataset.state, \
                 !!document.querySelector('#runs-table tr[data-run] a[href$=\"report.html\"]')];",
                )
                .await;
            if v[0] == "stopped" && v[1] == true {
                Ok(())
            } else {
                Err(format!("{v}"))
            }
        },
    )
    .await;
    // The runs list links to the run's report.
    let page = http
        .get(format!("{ui}/runs/{id}/report.html"))
        .send()
        .await
        .expect("GET report");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("report text");
    assert!(html.contains(&id) && html.contains("id=\"data\""));
    browser.close().await;
    d.stop().await;
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_ui_off_loopback_demands_the_token() {
    let bucket = TestBucket::new("webui-auth");
    let dir = workdir();
    let port = common::free_port();
    let d = Daemons::start(&bucket, dir.path(), Some(&format!("0.0.0.0:{port}"))).await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let up = wait_for(
        "the web UI to listen",
        Duration::from_secs(30),
        async || {
            http.get(format!("{base}/"))
                .send()
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    assert_eq!(up.status(), 401);
    let challenge = up
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        challenge.starts_with("Basic realm=\"chopsticks\""),
        "{challenge}"
    );
    for path in [
        "/api/status",
        "/api/runs",
        "/metrics",
        "/api/series?since=0",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.expect("GET");
        assert_eq!(r.status(), 401, "{path} without credentials");
        let r = http
            .get(format!("{base}{path}"))
            .header("authorization", basic("operator", "not-the-token-at-all"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), 401, "{path} with a wrong password");
    }
    let r = http
        .post(format!("{base}/api/stop"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 401, "stop without credentials");

    let r = http
        .get(format!("{base}/api/status"))
        .header("authorization", basic("anyone", TOKEN))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    let s: Status = r.json().await.expect("status");
    assert_eq!(s.state, RunState::Idle);
    let r = http
        .get(format!("{base}/"))
        .header("authorization", basic("", TOKEN))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("Chopsticks.live()"));
    let r = http
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    assert_eq!(d.stop().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_run_serves_the_web_ui_until_stopped_from_it() {
    let bucket = TestBucket::new("run-webui");
    let dir = workdir();
    let scenario = write_scenario(dir.path(), "scenario.yaml", SCENARIO);
    let workload = bucket.write_workload(dir.path());
    let port = common::free_port();
    let run_dir = dir.path().join("runs").join("run");
    let run = Proc::spawn(
        dir.path(),
        "run",
        env!("CARGO_BIN_EXE_chopsticks"),
        &[
            "run".into(),
            "--workload-config".into(),
            workload.display().to_string(),
            "-f".into(),
            scenario.display().to_string(),
            "-u".into(),
            "2".into(),
            "-r".into(),
            "10".into(),
            "-t".into(),
            "5m".into(),
            "--run-dir".into(),
            run_dir.display().to_string(),
            "--web-ui".into(),
            format!("127.0.0.1:{port}"),
        ],
    );
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let status = wait_for(
        "the run's web UI to show requests",
        Duration::from_secs(60),
        async || {
            let s: Status = http
                .get(format!("{base}/api/status"))
                .send()
                .await
                .map_err(|e| format!("{e}\n{}", run.tail()))?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if s.state == RunState::Running && s.requests > 0 {
                Ok(s)
            } else {
                Err(format!("{} {}", s.state, s.requests))
            }
        },
    )
    .await;
    let page = http.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    assert!(page
        .headers()
        .get("content-security-policy")
        .is_some_and(|v| v
            .to_str()
            .unwrap_or_default()
            .contains("connect-src 'self'")));
    // A stop must come as JSON: a form posted by a foreign page cannot stop a run.
    let form = http
        .post(format!("{base}/api/stop"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("abort=true")
        .send()
        .await
        .expect("POST");
    assert_eq!(form.status(), 400);
    let stop = http
        .post(format!("{base}/api/stop"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("POST stop");
    assert_eq!(stop.status(), 200, "{:?}", stop.text().await);
    let mut run = run;
    let code = tokio::time::timeout(Duration::from_secs(90), run.child.wait())
        .await
        .expect("chopsticks run exits after the stop")
        .expect("wait");
    let log = std::fs::read_to_string(&run.log).unwrap_or_default();
    assert_eq!(code.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("web UI: http://127.0.0.1:{port}/")),
        "{log}"
    );
    let record = read_record(&run_dir);
    assert_eq!(record.run_id, status.run_id.unwrap_or_default());
    assert_eq!(record.state, RunState::Stopped);
    assert!(run_dir.join("report.html").is_file());
}
