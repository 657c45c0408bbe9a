//! `chopsticks compare RUN_A RUN_B`: per-task deltas between two runs, and a regression gate.
//!
//! Limits are relative changes from A to B in the direction that hurts: latency may rise by at
//! most `p99=+10%`, throughput may fall by at most `rps=-5%`; the error rate may rise by at most
//! `error_rate=+1%` (percentage points). Every task present in both runs is checked, and the
//! aggregate.

use crate::results::summary::{Summary, TaskSummary};
use std::fmt::Write as _;
use std::path::Path;

/// A metric a limit can be put on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
    Mean,
    Rps,
    Mbps,
    ErrorRate,
}

impl Metric {
    fn parse(name: &str) -> Option<Metric> {
        Some(match name {
            "p50" => Metric::P50,
            "p90" => Metric::P90,
            "p95" => Metric::P95,
            "p99" => Metric::P99,
            "p999" | "p99.9" => Metric::P999,
            "max" => Metric::Max,
            "mean" | "avg" => Metric::Mean,
            "rps" => Metric::Rps,
            "mbps" | "mb/s" => Metric::Mbps,
            "error_rate" | "errors" => Metric::ErrorRate,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::Max => "max",
            Metric::Mean => "mean",
            Metric::Rps => "rps",
            Metric::Mbps => "MB/s",
            Metric::ErrorRate => "error rate",
        }
    }

    /// Whether a rise is bad (latency, errors) or a fall (throughput).
    fn higher_is_worse(self) -> bool {
        !matches!(self, Metric::Rps | Metric::Mbps)
    }

    fn value(self, t: &TaskSummary) -> f64 {
        match self {
            Metric::P50 => t.latency_ms.p50,
            Metric::P90 => t.latency_ms.p90,
            Metric::P95 => t.latency_ms.p95,
            Metric::P99 => t.latency_ms.p99,
            Metric::P999 => t.latency_ms.p99_9,
            Metric::Max => t.latency_ms.max,
            Metric::Mean => t.latency_ms.mean,
            Metric::Rps => t.requests_per_s,
            Metric::Mbps => t.mb_per_s,
            Metric::ErrorRate => error_rate(t),
        }
    }
}

fn error_rate(t: &TaskSummary) -> f64 {
    if t.requests == 0 {
        0.0
    } else {
        100.0 * t.failures as f64 / t.requests as f64
    }
}

/// One allowed change, e.g. `p99=+10%`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub metric: Metric,
    /// Signed percent: +10 for "may rise 10%", -5 for "may fall 5%".
    pub percent: f64,
}

/// Why `compare` cannot run: a threshold it cannot read or a run it cannot load.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("threshold '{0}' is not METRIC=CHANGE; write e.g. p99=+10% or rps=-5%")]
    NotAThreshold(String),
    #[error("unknown metric '{name}' in '{part}'; use p50, p90, p95, p99, p999, max, mean, rps, mbps or error_rate")]
    UnknownMetric { name: String, part: String },
    #[error("'{value}' in '{part}' is not a signed percentage; write e.g. +10% or -5%")]
    NotAPercentage { value: String, part: String },
    #[error(
        "'{part}': {metric} is limited in the direction that hurts; write e.g. {name}={example}"
    )]
    HarmlessDirection {
        part: String,
        metric: &'static str,
        name: String,
        example: &'static str,
    },
    #[error("cannot read {path}: {source}; give the directory of a finished run")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a run summary: {source}")]
    NotASummary {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Parses `p99=+10%,rps=-5%`.
pub fn parse_limits(spec: &str) -> Result<Vec<Limit>, CompareError> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| CompareError::NotAThreshold(part.to_string()))?;
        let metric = Metric::parse(name.trim().to_lowercase().as_str()).ok_or_else(|| {
            CompareError::UnknownMetric {
                name: name.to_string(),
                part: part.to_string(),
            }
        })?;
        let v = value.trim();
        let percent: f64 =
            v.trim_end_matches('%')
                .trim()
                .parse()
                .map_err(|_| CompareError::NotAPercentage {
                    value: v.to_string(),
                    part: part.to_string(),
                })?;
        let sign_ok = if metric.higher_is_worse() {
            percent >= 0.0 && v.starts_with('+')
        } else {
            percent <= 0.0 && v.starts_with('-')
        };
        if !sign_ok || !percent.is_finite() {
            let example = if metric.higher_is_worse() {
                "+10%"
            } else {
                "-5%"
            };
            return Err(CompareError::HarmlessDirection {
                part: part.to_string(),
                metric: metric.name(),
                name: name.trim().to_string(),
                example,
            });
        }
        out.push(Limit { metric, percent });
    }
    Ok(out)
}

/// The comparison of two runs.
pub struct Comparison {
    pub table: String,
    pub regressions: Vec<String>,
}

fn change(a: f64, b: f64) -> f64 {
    if a == 0.0 {
        if b == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        100.0 * (b - a) / a
    }
}

/// Compares B against A.
pub fn compare(a: &Summary, b: &Summary, limits: &[Limit]) -> Comparison {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<22} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "Task",
        "rps A",
        "rps B",
        "Δ%",
        "p50 A",
        "p50 B",
        "Δ%",
        "p99 A",
        "p99 B",
        "Δ%",
        "err% A",
        "err% B"
    );
    let mut rows: Vec<(&TaskSummary, &TaskSummary)> = a
        .tasks
        .iter()
        .filter_map(|ta| {
            b.tasks
                .iter()
                .find(|tb| tb.name == ta.name)
                .map(|tb| (ta, tb))
        })
        .collect();
    rows.push((&a.total, &b.total));
    let mut regressions = Vec::new();
    for (ta, tb) in rows {
        let _ = writeln!(
            table,
            "{:<22} {:>10.1} {:>10.1} {:>+8.1} {:>10.2} {:>10.2} {:>+8.1} {:>10.2} {:>10.2} {:>+8.1} {:>8.2} {:>8.2}",
            ta.name,
            ta.requests_per_s,
            tb.requests_per_s,
            change(ta.requests_per_s, tb.requests_per_s),
            ta.latency_ms.p50,
            tb.latency_ms.p50,
            change(ta.latency_ms.p50, tb.latency_ms.p50),
            ta.latency_ms.p99,
            tb.latency_ms.p99,
            change(ta.latency_ms.p99, tb.latency_ms.p99),
            error_rate(ta),
            error_rate(tb),
        );
        for limit in limits {
            let (va, vb) = (limit.metric.value(ta), limit.metric.value(tb));
            let (moved, crossed) = if limit.metric == Metric::ErrorRate {
                let d = vb - va;
                (d, d > limit.percent)
            } else {
                let d = change(va, vb);
                let crossed = if limit.metric.higher_is_worse() {
                    d > limit.percent
                } else {
                    d < limit.percent
                };
                (d, crossed)
            };
            if crossed {
                let unit = if limit.metric == Metric::ErrorRate {
                    " points"
                } else {
                    "%"
                };
                regressions.push(format!(
                    "{} of {}: {va:.3} -> {vb:.3} ({moved:+.1}{unit}, limit {:+}{unit})",
                    limit.metric.name(),
                    ta.name,
                    limit.percent
                ));
            }
        }
    }
    Comparison { table, regressions }
}

/// Reads `summary.json` from a run directory.
pub fn load(dir: &Path) -> Result<Summary, CompareError> {
    let p = dir.join(crate::results::artifacts::SUMMARY_JSON);
    let path = || p.display().to_string();
    let text = std::fs::read_to_string(&p).map_err(|source| CompareError::Read {
        path: path(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| CompareError::NotASummary {
        path: path(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_with_the_harmful_direction_only() {
        let l = parse_limits("p99=+10%, rps=-5%, error_rate=+1").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(
            l[1],
            Limit {
                metric: Metric::Rps,
                percent: -5.0
            }
        );
        assert!(parse_limits("p99=-10%")
            .unwrap_err()
            .to_string()
            .contains("p99=+10%"));
        assert!(parse_limits("rps=+5%")
            .unwrap_err()
            .to_string()
            .contains("rps=-5%"));
        assert!(parse_limits("p42=+1%")
            .unwrap_err()
            .to_string()
            .contains("unknown metric"));
        assert!(parse_limits("p99")
            .unwrap_err()
            .to_string()
            .contains("METRIC=CHANGE"));
    }
}
