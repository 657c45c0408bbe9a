//! The charm's Grafana dashboard and Prometheus alert rules (src/dashboards/, src/alert_rules/
//! at the workspace top, sent over `cos-agent`) name only metrics a live coordinator exports:
//! the metric names every PromQL expression selects are read by a small PromQL lexer (below,
//! itself tested; a PromQL parser crate pulled other features of shared dependencies into the
//! test build and so a second build of the S3 stack), and each must
//! be a sample name of `/metrics` scraped from a real coordinator while a run against RadosGW
//! is going (with a worker whose requests fail, so failure series exist too).

mod common;
mod obs;

use common::{workdir, write_scenario, TestBucket};
use obs::{start_request, Daemons};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const SCENARIO: &str = "\
name: cos-dashboard
users:
  - name: rw
    sequence: true
    wait: {constant: 0.05}
    tasks:
      - {op: put, name: upload, size: 4KiB}
      - {op: get, name: download, key: own}
      - {op: delete, name: remove}
";

/// PromQL words that are not metric names where they stand: set operators, modifiers and
/// literals (functions, aggregations and `by (...)` lists are recognised by their syntax).
const KEYWORDS: [&str; 10] = [
    "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end",
];
/// Words followed by a parenthesised list of label names, not of expressions.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Metric names a PromQL expression selects: identifiers outside strings, label matchers
/// (`{...}`) and ranges (`[...]`) that are not a function or aggregation (followed by `(`),
/// a label list (`by (...)`), a keyword or a number.
fn selected_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> Result<usize, String> {
        let mut j = from + 1;
        let mut quoted = false;
        while j < chars.len() {
            match chars[j] {
                '\\' => j += 1,
                c if c == close && !quoted => return Ok(j + 1),
                '"' => quoted = !quoted,
                _ => {}
            }
            j += 1;
        }
        Err(format!("unclosed '{}' in `{expr}`", chars[from]))
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i = skip_to(i, c)?;
        } else if c == '{' {
            i = skip_to(i, '}')?;
        } else if c == '[' {
            i = skip_to(i, ']')?;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            // An aggregation may put its label list first: `sum by (task) (...)`.
            let following: String = chars[next..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            let called = chars.get(next) == Some(&'(')
                || (following == "by" || following == "without") && !word.is_empty();
            if LABEL_LISTS.contains(&word.as_str()) {
                if called {
                    i = skip_to(next, ')')?;
                }
            } else if !called && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    Ok(names)
}

fn names_in(expr: &str, source: &str, names: &mut BTreeSet<String>) {
    let found = selected_names(expr).unwrap_or_else(|e| panic!("{source}: {e}"));
    assert!(!found.is_empty(), "{source}: `{expr}` selects no metric");
    names.extend(found);
}

#[test]
fn the_name_reader_finds_selectors_only() {
    let names = |e: &str| selected_names(e).unwrap().into_iter().collect::<Vec<_>>();
    assert_eq!(
        names("histogram_quantile(0.99, sum by (task, le) (rate(a_bucket{x=\"y}\"}[1m]))) / 1e6"),
        ["a_bucket"]
    );
    assert_eq!(
        names("sum(rate(b[5m])) / on (job) group_left (task) sum(c) > 0.05 and d offset 5m"),
        ["b", "c", "d"]
    );
    assert_eq!(names("absent(e{juju_model=\"m\"})"), ["e"]);
    assert!(selected_names("f{x=\"unclosed}").is_err());
}

/// Every metric name the dashboard's and the rules' expressions use.
fn used_names() -> BTreeSet<String> {
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names = BTreeSet::new();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(top.join("src/dashboards/chopsticks.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            names_in(
                expr,
                &format!("dashboard panel {}", panel["title"]),
                &mut names,
            );
            exprs += 1;
        }
    }
    assert!(exprs >= 10, "{exprs} dashboard expressions");
    // The rules as the charm sends them: the topology placeholder becomes label matchers.
    let rules_text = std::fs::read_to_string(top.join("src/alert_rules/chopsticks.rules.yaml"))
        .unwrap()
        .replace("%%juju_topology%%", "juju_application=\"chopsticks\"");
    let rules: serde_json::Value = serde_yaml_ng::from_str(&rules_text).unwrap();
    let mut alerts = 0;
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            names_in(expr, &format!("alert {}", rule["alert"]), &mut names);
            alerts += 1;
        }
    }
    assert_eq!(alerts, 4);
    names
}

/// Sample names of an exposition (`name{labels} value` or `name value`).
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_rules_use_only_exported_metrics() {
    let used = used_names();
    let bucket = TestBucket::new("cos-dashboard");
    let dir = workdir();
    let scenario = write_scenario(dir.path(), "scenario.yaml", SCENARIO);
    let mut d = Daemons::start(&bucket, dir.path(), None).await;
    d.start_worker("good", false);
    d.start_worker("denied", true);
    d.wait_workers(&["good", "denied"]).await;
    let mut request = start_request(&scenario, 4);
    request.duration = Some("60s".into());
    request.expected_workers = Some(2);
    let started = d.start_run(&request).await;
    // Scrape while the run goes until every used name is exported (failures and histogram
    // buckets appear once requests complete); bounded by the run itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (missing, scraped_while_running) = loop {
        let text = d.metrics().await;
        let exported = exported_names(&text);
        let missing: Vec<String> = used.difference(&exported).cloned().collect();
        let running = text.contains(&format!(
            "chopsticks_run_state{{run_id=\"{}\",state=\"running\"}} 1",
            started.run_id
        ));
        if (missing.is_empty() && running) || Instant::now() >= deadline {
            break (missing, running);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let stop = d
        .http
        .post(d.control("/api/runs/current/stop"))
        .json(&serde_json::json!({"abort": true}))
        .send()
        .await
        .expect("stop the run");
    assert!(stop.status().is_success());
    d.wait_state(&started.run_id, Duration::from_secs(60), |s| {
        s.state.is_terminal()
    })
    .await;
    d.stop().await;
    assert!(scraped_while_running, "the run was never seen running");
    assert!(
        missing.is_empty(),
        "used by the dashboard or the alert rules but not exported: {missing:?}"
    );
    // The names the panels need are among those checked.
    for name in [
        "chopsticks_requests_total",
        "chopsticks_failures_total",
        "chopsticks_bytes_total",
        "chopsticks_request_duration_quantile_seconds",
        "chopsticks_request_duration_seconds_bucket",
        "chopsticks_users",
        "chopsticks_users_target",
        "chopsticks_workers",
        "chopsticks_run_state",
    ] {
        assert!(used.contains(name), "{name} is not used");
    }
}
