//! The per-second time series of a run: what the live web UI plots as it happens and the
//! HTML report plots afterwards (rebuilt from `stats_history.csv`).

use crate::load::stats::StatsDelta;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One task's numbers over one second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskPoint {
    pub rps: f64,
    pub failures_per_s: f64,
    pub mb_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One second of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Unix time (seconds) at the end of the second.
    pub t: i64,
    pub users: u32,
    pub rps: f64,
    pub failures_per_s: f64,
    pub mb_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub tasks: BTreeMap<String, TaskPoint>,
}

impl SeriesPoint {
    /// The point for an interval of `seconds` ending at `t`.
    pub fn new(t: i64, users: u32, interval: &StatsDelta, seconds: f64) -> SeriesPoint {
        let seconds = if seconds > 0.0 { seconds } else { 1.0 };
        let point = |t: &crate::load::stats::TaskStats| {
            let latency = t.latency.view();
            TaskPoint {
                rps: t.requests as f64 / seconds,
                failures_per_s: t.failures as f64 / seconds,
                mb_per_s: t.bytes as f64 / seconds / 1e6,
                p50_ms: latency.quantile_ms(0.50),
                p95_ms: latency.quantile_ms(0.95),
                p99_ms: latency.quantile_ms(0.99),
            }
        };
        let all = point(&interval.total());
        SeriesPoint {
            t,
            users,
            rps: all.rps,
            failures_per_s: all.failures_per_s,
            mb_per_s: all.mb_per_s,
            p50_ms: all.p50_ms,
            p95_ms: all.p95_ms,
            p99_ms: all.p99_ms,
            tasks: interval
                .tasks
                .iter()
                .filter(|(_, t)| t.requests > 0)
                .map(|(n, t)| (n.clone(), point(t)))
                .collect(),
        }
    }
}
