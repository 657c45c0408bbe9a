//! Judging a run against its scenario's thresholds: the aggregating layer reads the limits the
//! scenario declared (measuring layer) and the merged numbers, never the other way round.

use crate::load::scenario::{Millis, Percent, Threshold};
use crate::results::summary::{Summary, TaskSummary};

/// The limits this run's numbers cross, as readable sentences.
pub fn crossed(threshold: &Threshold, summary: &Summary) -> Vec<String> {
    let row: Option<&TaskSummary> = match &threshold.task {
        None => Some(&summary.total),
        Some(name) => summary.tasks.iter().find(|t| &t.name == name),
    };
    let Some(row) = row else {
        return vec![];
    };
    let what = match &threshold.task {
        Some(t) => format!("of {t}"),
        None => "of all tasks".to_string(),
    };
    let mut out = Vec::new();
    if let Some(Percent(max)) = threshold.max_error_rate {
        let rate = if row.requests > 0 {
            100.0 * row.failures as f64 / row.requests as f64
        } else {
            0.0
        };
        if rate > max {
            out.push(format!("error rate {what} is {rate:.2}%, above {max}%"));
        }
    }
    for (name, limit, value) in [
        ("p50", threshold.max_p50, row.latency_ms.p50),
        ("p95", threshold.max_p95, row.latency_ms.p95),
        ("p99", threshold.max_p99, row.latency_ms.p99),
        ("p99.9", threshold.max_p999, row.latency_ms.p99_9),
    ] {
        if let Some(Millis(max)) = limit {
            if value > max {
                out.push(format!("{name} {what} is {value:.3} ms, above {max} ms"));
            }
        }
    }
    if let Some(min) = threshold.min_rps {
        if row.requests_per_s < min {
            out.push(format!(
                "requests/s {what} is {:.2}, below {min}",
                row.requests_per_s
            ));
        }
    }
    if let Some(min) = threshold.min_mb_per_s {
        if row.mb_per_s < min {
            out.push(format!("MB/s {what} is {:.3}, below {min}", row.mb_per_s));
        }
    }
    out
}
