//! Presentation-ready numbers from merged statistics: the rows of `summary.json`, `stats.csv`,
//! the terminal table and `fetch-metrics`. Computed once here so every view agrees.

use crate::load::scenario::OpKind;
use crate::load::stats::{Hist, StatsDelta, TaskStats};
use crate::results::RunState;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples in the histogram (for `latency_ms`: successful requests; for
    /// `failure_latency_ms`: failed ones). Absent in summaries written before it existed.
    #[serde(default)]
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p66: f64,
    pub p75: f64,
    pub p80: f64,
    pub p90: f64,
    pub p95: f64,
    pub p98: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Hist) -> Percentiles {
        let h = h.view();
        Percentiles {
            count: h.count(),
            min: h.min_ms(),
            mean: h.mean_ms(),
            p50: h.quantile_ms(0.50),
            p66: h.quantile_ms(0.66),
            p75: h.quantile_ms(0.75),
            p80: h.quantile_ms(0.80),
            p90: h.quantile_ms(0.90),
            p95: h.quantile_ms(0.95),
            p98: h.quantile_ms(0.98),
            p99: h.quantile_ms(0.99),
            p99_9: h.quantile_ms(0.999),
            p99_99: h.quantile_ms(0.9999),
            max: h.max_ms(),
        }
    }

    /// Locust's percentile columns, in order.
    pub fn columns(&self) -> [f64; 11] {
        [
            self.p50,
            self.p66,
            self.p75,
            self.p80,
            self.p90,
            self.p95,
            self.p98,
            self.p99,
            self.p99_9,
            self.p99_99,
            self.max,
        ]
    }
}

/// One task name's results over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub name: String,
    /// HTTP method (Locust's "Type"), or empty for the aggregate.
    pub method: String,
    pub requests: u64,
    pub failures: u64,
    pub aborted: u64,
    pub skipped: u64,
    pub bytes: u64,
    pub requests_per_s: f64,
    pub failures_per_s: f64,
    /// Payload throughput in MB/s (10^6 bytes).
    pub mb_per_s: f64,
    pub avg_size: f64,
    /// Successful requests only (failures are in `failure_latency_ms`).
    pub latency_ms: Percentiles,
    /// Time to first byte of successful reads.
    pub ttfb_ms: Option<Percentiles>,
    /// How long failed requests took to fail; `None` when none failed. Absent in summaries
    /// written before failures were kept apart.
    #[serde(default)]
    pub failure_latency_ms: Option<Percentiles>,
    /// What `latency_ms` is measured from: `intended_start` when requests had one
    /// (open-model arrivals, `pacing` users: the headline figure, free of coordinated
    /// omission) or `sent` (closed users without pacing: latency and service time are the
    /// same histogram, recorded once, and `service_ms` is null).
    #[serde(default = "sent")]
    pub latency_from: String,
    /// Successful requests timed from the moment they were sent; null when `latency_from` is
    /// `sent` (then it is `latency_ms`).
    #[serde(default)]
    pub service_ms: Option<Percentiles>,
    /// Requests issued: completed (failed ones included) and aborted.
    #[serde(default)]
    pub issued: u64,
    /// Open-model arrivals: `issued + dropped + skipped`, exactly.
    #[serde(default)]
    pub arrivals: u64,
    /// Arrivals not sent because `max_in_flight` requests were outstanding.
    #[serde(default)]
    pub dropped: u64,
    /// Arrivals sent 1 ms or more after their scheduled time.
    #[serde(default)]
    pub late: u64,
    /// How late the late arrivals were; null when none was.
    #[serde(default)]
    pub lateness_ms: Option<Percentiles>,
}

fn sent() -> String {
    "sent".into()
}

impl TaskSummary {
    pub fn of(name: &str, method: &str, t: &TaskStats, seconds: f64) -> TaskSummary {
        let per_s = |v: u64| {
            if seconds > 0.0 {
                v as f64 / seconds
            } else {
                0.0
            }
        };
        let ok = t.requests.saturating_sub(t.failures);
        TaskSummary {
            name: name.to_string(),
            method: method.to_string(),
            requests: t.requests,
            failures: t.failures,
            aborted: t.aborted,
            skipped: t.skipped,
            bytes: t.bytes,
            requests_per_s: per_s(t.requests),
            failures_per_s: per_s(t.failures),
            mb_per_s: per_s(t.bytes) / 1e6,
            avg_size: if ok > 0 {
                t.bytes as f64 / ok as f64
            } else {
                0.0
            },
            latency_ms: Percentiles::of(&t.latency),
            ttfb_ms: (t.ttfb.count() > 0).then(|| Percentiles::of(&t.ttfb)),
            failure_latency_ms: (t.failure_latency.count() > 0)
                .then(|| Percentiles::of(&t.failure_latency)),
            latency_from: if t.service.count() > 0 || t.arrivals > 0 {
                "intended_start".into()
            } else {
                sent()
            },
            service_ms: (t.service.count() > 0 || t.arrivals > 0)
                .then(|| Percentiles::of(&t.service)),
            issued: t.issued(),
            arrivals: t.arrivals,
            dropped: t.dropped,
            late: t.late,
            lateness_ms: (t.lateness.count() > 0).then(|| Percentiles::of(&t.lateness)),
        }
    }
}

/// One failure kind of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRow {
    pub method: String,
    pub name: String,
    pub error: String,
    pub occurrences: u64,
    pub sample: String,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub run_id: String,
    pub state: RunState,
    pub scenario: String,
    /// Seconds of load: from the first user starting to the last one ending.
    pub duration_s: f64,
    pub users: u32,
    pub tasks: Vec<TaskSummary>,
    pub total: TaskSummary,
    pub failures: Vec<FailureRow>,
    /// Set when `--autoterm` stopped the run: after how long, and how stable the rate was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoterm: Option<crate::load::stability::AutotermStop>,
    /// Per gateway URL, when the run had several: all its tasks' requests merged, exact
    /// across workers. Absent with a single gateway.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub endpoints: std::collections::BTreeMap<String, EndpointSummary>,
    /// Per bucket, when the run spread its users over several: all its tasks' requests
    /// merged, exact across workers. Absent with a single bucket.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub buckets: std::collections::BTreeMap<String, EndpointSummary>,
    /// The post-run checks (`checks:` in the scenario); absent when none were asked for, or
    /// when the run ended before they ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<crate::load::audit::ChecksReport>,
}

/// One gateway's (or bucket's) share of a run (summary.json `endpoints` and `buckets`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSummary {
    /// Requests completed through it, failed ones included.
    pub requests: u64,
    pub failures: u64,
    /// Its successful requests.
    pub latency_ms: Percentiles,
    /// Payload throughput through it in MB/s (10^6 bytes).
    pub mb_per_s: f64,
}

impl EndpointSummary {
    pub fn of(t: &TaskStats, seconds: f64) -> EndpointSummary {
        EndpointSummary {
            requests: t.requests,
            failures: t.failures,
            latency_ms: Percentiles::of(&t.latency),
            mb_per_s: if seconds > 0.0 {
                t.bytes as f64 / 1e6 / seconds
            } else {
                0.0
            },
        }
    }
}

impl Summary {
    /// `tasks` gives the row order (the scenario's task names with their ops).
    pub fn new(
        run_id: &str,
        state: RunState,
        scenario: &str,
        users: u32,
        seconds: f64,
        stats: &StatsDelta,
        tasks: &[(String, OpKind)],
    ) -> Summary {
        let empty = TaskStats::default();
        let mut rows = Vec::new();
        let mut failures = Vec::new();
        for (name, op) in tasks {
            let t = stats.tasks.get(name).unwrap_or(&empty);
            rows.push(TaskSummary::of(name, op.method(), t, seconds));
            for f in t.failures_by_kind.values() {
                failures.push(FailureRow {
                    method: op.method().to_string(),
                    name: name.clone(),
                    error: f.kind.to_string(),
                    occurrences: f.count,
                    sample: f.sample.clone(),
                });
            }
        }
        Summary {
            run_id: run_id.to_string(),
            state,
            scenario: scenario.to_string(),
            duration_s: seconds,
            users,
            tasks: rows,
            total: TaskSummary::of("Aggregated", "", &stats.total(), seconds),
            failures,
            autoterm: None,
            checks: None,
            endpoints: stats
                .endpoints
                .iter()
                .map(|(url, t)| (url.clone(), EndpointSummary::of(t, seconds)))
                .collect(),
            buckets: stats
                .buckets
                .iter()
                .map(|(name, t)| (name.clone(), EndpointSummary::of(t, seconds)))
                .collect(),
        }
    }

    /// The per-task table printed at the end of a run and by `fetch-metrics format=summary`.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<22} {:>10} {:>9} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
            "Task", "Requests", "Failures", "p50 ms", "p95 ms", "p99 ms", "Max ms", "Req/s", "MB/s"
        );
        for t in self.tasks.iter().chain(std::iter::once(&self.total)) {
            let _ = writeln!(
                out,
                "{:<22} {:>10} {:>9} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>9.1} {:>9.2}",
                truncate(&t.name, 22),
                t.requests,
                t.failures,
                t.latency_ms.p50,
                t.latency_ms.p95,
                t.latency_ms.p99,
                t.latency_ms.max,
                t.requests_per_s,
                t.mb_per_s
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nFailures:");
            for f in &self.failures {
                let _ = writeln!(
                    out,
                    "  {:>8}  {} {}: {} ({})",
                    f.occurrences,
                    f.method,
                    f.name,
                    f.error,
                    truncate(&f.sample, 100)
                );
            }
        }
        out
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::Outcome;
    use std::time::Duration;

    #[test]
    fn rates_and_percentiles_come_from_the_data() {
        let r = crate::load::stats::Recorder::new(vec!["put".into()]);
        for ms in 1..=100u64 {
            r.record(
                0,
                0,
                &Outcome::Done {
                    latency: Duration::from_millis(ms),
                    ttfb: None,
                    bytes: 1_000_000,
                    error: None,
                    waited: None,
                },
            );
        }
        let stats = r.take();
        let s = Summary::new(
            "r",
            RunState::Completed,
            "x",
            1,
            10.0,
            &stats,
            &[("put".into(), OpKind::Put)],
        );
        let put = &s.tasks[0];
        assert_eq!(put.requests, 100);
        assert_eq!(put.requests_per_s, 10.0);
        assert_eq!(put.mb_per_s, 10.0);
        assert!(
            (put.latency_ms.p50 - 50.0).abs() < 0.1,
            "{}",
            put.latency_ms.p50
        );
        assert!((put.latency_ms.max - 100.0).abs() < 0.1);
        assert_eq!(s.total.requests, 100);
        assert!(s.table().contains("Aggregated"));
    }
}
