//! Prometheus text exposition (format 0.0.4) of the coordinator's state and the active (or
//! last) run's merged statistics, served at `/metrics`.
//!
//! Latency histograms are derived from the exact HDR data: a bucket's count is the number of
//! recorded values at or below its bound, at HDR's 3-significant-digit resolution. The exact
//! HDR percentiles are exported alongside as gauges.

use crate::cluster::coordinator::MetricsSnapshot;
use crate::control::RunState;
use crate::load::stats::Hist;
use std::fmt::Write as _;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];
const STATES: [RunState; 9] = [
    RunState::Idle,
    RunState::Preparing,
    RunState::Spawning,
    RunState::Running,
    RunState::Stopping,
    RunState::Completed,
    RunState::Stopped,
    RunState::Failed,
    RunState::Interrupted,
];

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Hist) {
    let view = h.view();
    for le in BUCKETS {
        let micros = (le * 1e6) as u64;
        let count = view.count_between(0, micros);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count());
    let sum = view.mean_ms() / 1000.0 * h.count() as f64;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
}

/// Per-gateway (`dimension` = `endpoint`) or per-bucket (`bucket`) series of a run that has
/// several: requests, failures, bytes and a latency histogram, labelled with the URL or bucket
/// name. Headers are always written; samples only for a run with several.
fn spread(
    out: &mut String,
    dimension: &str,
    per: &std::collections::BTreeMap<String, crate::load::stats::TaskStats>,
) {
    let what = if dimension == "endpoint" {
        "gateway"
    } else {
        "bucket"
    };
    for (suffix, help, pick) in [
        (
            "requests_total",
            "Completed requests (failed ones included) of the current run, per",
            (|t: &crate::load::stats::TaskStats| t.requests) as fn(&_) -> u64,
        ),
        (
            "failures_total",
            "Failed requests of the current run, per",
            |t| t.failures,
        ),
        (
            "bytes_total",
            "Payload bytes moved by the current run, per",
            |t| t.bytes,
        ),
    ] {
        let metric = format!("chopsticks_{dimension}_{suffix}");
        header(
            out,
            &metric,
            "counter",
            &format!("{help} {what} (runs with several only)."),
        );
        for (name, t) in per {
            let _ = writeln!(
                out,
                "{metric}{{{dimension}=\"{}\"}} {}",
                label(name),
                pick(t)
            );
        }
    }
    let metric = format!("chopsticks_{dimension}_request_duration_seconds");
    header(
        out,
        &metric,
        "histogram",
        &format!(
            "Latency of the current run's successful requests per {what} (runs with several only)."
        ),
    );
    for (name, t) in per {
        histogram(
            out,
            &metric,
            &format!("{dimension}=\"{}\"", label(name)),
            &t.latency,
        );
    }
}

/// The exposition text.
pub fn render(m: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let s = &m.status;
    let run_id = label(s.run_id.as_deref().unwrap_or(""));

    header(
        &mut out,
        "chopsticks_run_state",
        "gauge",
        "1 for the state the current (or last) run is in.",
    );
    for state in STATES {
        let v = u8::from(s.state == state);
        let _ = writeln!(
            out,
            "chopsticks_run_state{{run_id=\"{run_id}\",state=\"{state}\"}} {v}"
        );
    }
    header(
        &mut out,
        "chopsticks_users",
        "gauge",
        "Virtual users running now.",
    );
    let _ = writeln!(out, "chopsticks_users {}", s.users_running);
    header(
        &mut out,
        "chopsticks_users_target",
        "gauge",
        "Virtual users the run asks for.",
    );
    let _ = writeln!(out, "chopsticks_users_target {}", s.users_target);
    header(
        &mut out,
        "chopsticks_workers",
        "gauge",
        "Workers by connection state.",
    );
    let _ = writeln!(
        out,
        "chopsticks_workers{{state=\"connected\"}} {}",
        s.workers_connected
    );
    let _ = writeln!(
        out,
        "chopsticks_workers{{state=\"missing\"}} {}",
        s.workers_missing
    );
    header(
        &mut out,
        "chopsticks_elapsed_seconds",
        "gauge",
        "Seconds since the run's users started.",
    );
    let _ = writeln!(out, "chopsticks_elapsed_seconds {}", s.elapsed_s);

    header(
        &mut out,
        "chopsticks_requests_total",
        "counter",
        "Completed requests (failed ones included) of the current run.",
    );
    for (name, op) in &m.tasks {
        let t = m.totals.tasks.get(name).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "chopsticks_requests_total{{task=\"{}\",op=\"{op}\"}} {}",
            label(name),
            t.requests
        );
    }
    header(
        &mut out,
        "chopsticks_failures_total",
        "counter",
        "Failed requests of the current run, by kind.",
    );
    for (name, op) in &m.tasks {
        if let Some(t) = m.totals.tasks.get(name) {
            for f in t.failures_by_kind.values() {
                let _ = writeln!(
                    out,
                    "chopsticks_failures_total{{task=\"{}\",op=\"{op}\",kind=\"{}\"}} {}",
                    label(name),
                    label(&f.kind.to_string()),
                    f.count
                );
            }
        }
    }
    header(
        &mut out,
        "chopsticks_bytes_total",
        "counter",
        "Payload bytes moved by the current run (written or read).",
    );
    for (name, op) in &m.tasks {
        let t = m.totals.tasks.get(name).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "chopsticks_bytes_total{{task=\"{}\",op=\"{op}\"}} {}",
            label(name),
            t.bytes
        );
    }
    header(
        &mut out,
        "chopsticks_request_duration_seconds",
        "histogram",
        "Latency of the current run's successful requests (from exact HDR data); from the \
         intended start when requests had one (open-model arrivals, pacing users).",
    );
    for (name, op) in &m.tasks {
        let t = m.totals.tasks.get(name).cloned().unwrap_or_default();
        histogram(
            &mut out,
            "chopsticks_request_duration_seconds",
            &format!("task=\"{}\",op=\"{op}\"", label(name)),
            &t.latency,
        );
    }
    header(
        &mut out,
        "chopsticks_time_to_first_byte_seconds",
        "histogram",
        "Time to first byte of successful reads in the current run.",
    );
    for (name, op) in &m.tasks {
        let t = m.totals.tasks.get(name).cloned().unwrap_or_default();
        if t.ttfb.count() > 0 {
            histogram(
                &mut out,
                "chopsticks_time_to_first_byte_seconds",
                &format!("task=\"{}\",op=\"{op}\"", label(name)),
                &t.ttfb,
            );
        }
    }
    header(
        &mut out,
        "chopsticks_service_duration_seconds",
        "histogram",
        "Time from the send of successful requests that had an intended start (open-model \
         arrivals, pacing users); for others it is chopsticks_request_duration_seconds.",
    );
    for (name, op) in &m.tasks {
        let t = m.totals.tasks.get(name).cloned().unwrap_or_default();
        if t.service.count() > 0 {
            histogram(
                &mut out,
                "chopsticks_service_duration_seconds",
                &format!("task=\"{}\",op=\"{op}\"", label(name)),
                &t.service,
            );
        }
    }
    for (metric, help, pick) in [
        (
            "chopsticks_arrivals_total",
            "Open-model arrivals of the current run (issued + dropped + skipped).",
            (|t: &crate::load::stats::TaskStats| t.arrivals) as fn(&_) -> u64,
        ),
        (
            "chopsticks_arrivals_dropped_total",
            "Arrivals not sent because max_in_flight requests were outstanding.",
            |t| t.dropped,
        ),
        (
            "chopsticks_arrivals_late_total",
            "Arrivals sent 1 ms or more after their scheduled time.",
            |t| t.late,
        ),
    ] {
        header(&mut out, metric, "counter", help);
        for (name, op) in &m.tasks {
            let t = m.totals.tasks.get(name).cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "{metric}{{task=\"{}\",op=\"{op}\"}} {}",
                label(name),
                pick(&t)
            );
        }
    }
    spread(&mut out, "endpoint", &m.totals.endpoints);
    spread(&mut out, "bucket", &m.totals.buckets);
    header(
        &mut out,
        "chopsticks_request_duration_quantile_seconds",
        "gauge",
        "Exact HDR latency percentiles of the current run's successful requests.",
    );
    for (name, op) in &m.tasks {
        let t = m.totals.tasks.get(name).cloned().unwrap_or_default();
        let latency = t.latency.view();
        for q in QUANTILES {
            let _ = writeln!(
                out,
                "chopsticks_request_duration_quantile_seconds{{task=\"{}\",op=\"{op}\",quantile=\"{q}\"}} {}",
                label(name),
                latency.quantile_ms(q) / 1000.0
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::driver::{FailureKind, OpError};
    use crate::load::stats::{Outcome, Recorder, Via};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn done(failed: bool) -> Outcome {
        Outcome::Done {
            latency: Duration::from_millis(4),
            ttfb: None,
            bytes: 1000,
            error: failed.then(|| OpError::new(FailureKind::Connection, "refused")),
            waited: None,
        }
    }

    #[test]
    fn gateways_and_buckets_get_their_own_labelled_series() {
        let urls = vec![
            "http://127.0.0.1:1".to_string(),
            "http://127.0.0.1:2".to_string(),
        ];
        let r = Recorder::new(vec!["put".into()])
            .with_endpoints(urls)
            .with_buckets(vec!["a".into(), "b".into()]);
        let via = |e: u8, b: u8| Via {
            endpoint: Some(e),
            bucket: Some(b),
        };
        for _ in 0..3 {
            r.record_via(0, 0, via(0, 0), &done(false));
        }
        r.record_via(1, 0, via(1, 1), &done(false));
        r.record_via(1, 0, via(1, 0), &done(true));
        r.record_via(1, 0, via(1, 1), &done(true));
        let totals = r.take();
        assert_eq!(totals.requests(), 6);
        let mut out = String::new();
        spread(&mut out, "endpoint", &totals.endpoints);
        spread(&mut out, "bucket", &totals.buckets);
        for line in [
            "chopsticks_endpoint_requests_total{endpoint=\"http://127.0.0.1:1\"} 3",
            "chopsticks_endpoint_requests_total{endpoint=\"http://127.0.0.1:2\"} 3",
            "chopsticks_endpoint_failures_total{endpoint=\"http://127.0.0.1:1\"} 0",
            "chopsticks_endpoint_failures_total{endpoint=\"http://127.0.0.1:2\"} 2",
            "chopsticks_endpoint_request_duration_seconds_count{endpoint=\"http://127.0.0.1:2\"} 1",
            "chopsticks_bucket_requests_total{bucket=\"a\"} 4",
            "chopsticks_bucket_requests_total{bucket=\"b\"} 2",
            "chopsticks_bucket_failures_total{bucket=\"b\"} 1",
            "chopsticks_bucket_bytes_total{bucket=\"a\"} 3000",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        }
        // A run with one gateway and one bucket: the families are declared, with no samples.
        let mut none = String::new();
        spread(&mut none, "bucket", &BTreeMap::new());
        assert!(none.contains("# TYPE chopsticks_bucket_requests_total counter"));
        assert!(none.lines().all(|l| l.starts_with('#')), "{none}");
    }
}
