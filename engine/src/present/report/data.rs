//! What a report shows, rebuilt from a run directory's files.

use super::ReportError;
use crate::load::stats::{Hist, SIGFIG};
use crate::results::artifacts::{self, RunRecord};
use crate::results::hlog::{tag_for, HLOG};
use crate::results::series::{SeriesPoint, TaskPoint};
use crate::results::summary::Summary;
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Everything the page draws; embedded in the page as JSON (`#data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportData {
    /// When the page was rendered (RFC 3339).
    pub generated_at: String,
    /// The version of the engine that rendered it (the run's own is in `run`).
    pub rendered_by: String,
    /// `run.json`.
    pub run: RunRecord,
    /// The run's seed in decimal: JavaScript numbers cannot hold every u64 exactly.
    pub seed: String,
    /// The resolved scenario, as YAML.
    pub scenario_yaml: String,
    /// `summary.json`; absent when the run never got that far.
    pub summary: Option<Summary>,
    /// One point per second, from `stats_history.csv`.
    pub series: Vec<SeriesPoint>,
    /// Latency (and TTFB) percentile curves per task, from `histograms.hlog`.
    pub distributions: Vec<Distribution>,
    /// `events.log`.
    pub events: Vec<EventLine>,
    /// Inputs that were missing or unreadable, said plainly on the page.
    pub notes: Vec<String>,
    /// `sweep.json`, for a saturation sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::load::sweep::SweepResult>,
}

/// A task's whole-run percentile curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub task: String,
    /// `latency` or `ttfb`.
    pub kind: String,
    /// Values the histogram holds (successful requests, for `latency`).
    pub count: u64,
    /// `[percentile (0..=100), milliseconds]`, percentile ascending.
    pub points: Vec<[f64; 2]>,
}

/// One line of `events.log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    pub at: String,
    pub text: String,
}

/// Points a curve is drawn through, dense where tails live: (percentile, quantile). Both are
/// literals: `99.9 / 100.0` is not the double `0.999`, and the curve must agree with the
/// summary's percentiles to the last bit.
const POINTS: [(f64, f64); 30] = [
    (0.0, 0.0),
    (10.0, 0.1),
    (20.0, 0.2),
    (25.0, 0.25),
    (30.0, 0.3),
    (40.0, 0.4),
    (50.0, 0.5),
    (60.0, 0.6),
    (66.0, 0.66),
    (70.0, 0.7),
    (75.0, 0.75),
    (80.0, 0.8),
    (85.0, 0.85),
    (90.0, 0.9),
    (92.5, 0.925),
    (95.0, 0.95),
    (96.0, 0.96),
    (97.0, 0.97),
    (97.5, 0.975),
    (98.0, 0.98),
    (98.5, 0.985),
    (99.0, 0.99),
    (99.25, 0.9925),
    (99.5, 0.995),
    (99.75, 0.9975),
    (99.9, 0.999),
    (99.95, 0.9995),
    (99.99, 0.9999),
    (99.999, 0.99999),
    (100.0, 1.0),
];

/// The percentile curve of `h`: only percentiles the sample size can tell apart, and 100.
pub fn distribution(h: &Hist) -> Vec<[f64; 2]> {
    curve(&h.histogram())
}

/// [`distribution`] of a plain histogram (µs); the same arithmetic as [`Hist`]'s, so the
/// curve agrees with the summary's percentiles exactly.
fn curve(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    let n = h.len();
    if n == 0 {
        return Vec::new();
    }
    let finest = 1.0 - 1.0 / n as f64;
    POINTS
        .iter()
        .filter(|(_, q)| *q <= 0.5 || *q <= finest || *q >= 1.0)
        .map(|(p, q)| {
            let micros = if *q >= 1.0 {
                h.max()
            } else {
                h.value_at_quantile(*q)
            };
            [*p, micros as f64 / 1000.0]
        })
        .collect()
}

/// Reads a run directory.
pub fn load(dir: &Path) -> Result<ReportData, ReportError> {
    let run_json = dir.join(artifacts::RUN_JSON);
    if !run_json.is_file() {
        return Err(ReportError::NotARun {
            dir: dir.display().to_string(),
        });
    }
    let run = artifacts::read_record(dir).map_err(ReportError::Unreadable)?;
    let mut notes = Vec::new();
    let summary = match std::fs::read_to_string(dir.join(artifacts::SUMMARY_JSON)) {
        Ok(text) => match serde_json::from_str::<Summary>(&text) {
            Ok(s) => Some(s),
            Err(e) => {
                notes.push(format!("summary.json is not readable ({e})"));
                None
            }
        },
        Err(_) => {
            notes.push("no summary.json: the run ended before any load was measured".into());
            None
        }
    };
    let series = match std::fs::read(dir.join(artifacts::HISTORY_CSV)) {
        Ok(bytes) => series_from_history(&bytes),
        Err(_) => {
            notes.push("no stats_history.csv: no time series to plot".into());
            Vec::new()
        }
    };
    let distributions = match std::fs::read(dir.join(HLOG)) {
        Ok(bytes) => {
            let (d, skipped) = distributions_from_hlog(&bytes, &run);
            if skipped > 0 {
                notes.push(format!(
                    "{skipped} entries of {HLOG} could not be read and are left out"
                ));
            }
            d
        }
        Err(_) => {
            notes.push(format!("no {HLOG}: no latency distributions"));
            Vec::new()
        }
    };
    let events = std::fs::read_to_string(dir.join(artifacts::EVENTS_LOG))
        .map(|t| parse_events(&t))
        .unwrap_or_default();
    let sweep = match std::fs::read_to_string(dir.join(crate::load::sweep::SWEEP_JSON)) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(s) => Some(s),
            Err(e) => {
                notes.push(format!("sweep.json is not readable ({e})"));
                None
            }
        },
        Err(_) => None,
    };
    Ok(ReportData {
        sweep,
        generated_at: artifacts::now_rfc3339(),
        rendered_by: crate::VERSION.to_string(),
        scenario_yaml: serde_yaml_ng::to_string(&run.scenario).unwrap_or_default(),
        seed: run.seed.to_string(),
        run,
        summary,
        series,
        distributions,
        events,
        notes,
    })
}

/// `stats_history.csv` back into per-second points: task rows, then the `Aggregated` row
/// that closes each second.
pub(crate) fn series_from_history(bytes: &[u8]) -> Vec<SeriesPoint> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let Ok(headers) = reader.headers().cloned() else {
        return Vec::new();
    };
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(t), Some(users), Some(name), Some(rps), Some(fps), Some(p50), Some(p95), Some(p99)) = (
        col("Timestamp"),
        col("User Count"),
        col("Name"),
        col("Requests/s"),
        col("Failures/s"),
        col("50%"),
        col("95%"),
        col("99%"),
    ) else {
        return Vec::new();
    };
    let mbps = col("MB/s");
    let num = |row: &csv::StringRecord, i: usize| -> f64 {
        row.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .unwrap_or(0.0)
    };
    let mut points = Vec::new();
    let mut tasks = BTreeMap::new();
    for row in reader.records().flatten() {
        if row.len() != headers.len() {
            continue;
        }
        let point = TaskPoint {
            rps: num(&row, rps),
            failures_per_s: num(&row, fps),
            mb_per_s: mbps.map(|i| num(&row, i)).unwrap_or(0.0),
            p50_ms: num(&row, p50),
            p95_ms: num(&row, p95),
            p99_ms: num(&row, p99),
        };
        let task = row.get(name).unwrap_or_default();
        if task != "Aggregated" {
            if point.rps > 0.0 {
                tasks.insert(task.to_string(), point);
            }
            continue;
        }
        points.push(SeriesPoint {
            t: row.get(t).and_then(|v| v.parse().ok()).unwrap_or(0),
            users: row.get(users).and_then(|v| v.parse().ok()).unwrap_or(0),
            rps: point.rps,
            failures_per_s: point.failures_per_s,
            mb_per_s: point.mb_per_s,
            p50_ms: point.p50_ms,
            p95_ms: point.p95_ms,
            p99_ms: point.p99_ms,
            tasks: std::mem::take(&mut tasks),
        });
    }
    points
}

/// Sums every interval of `histograms.hlog` per tag; returns the curves (in the scenario's
/// task order, latency before TTFB) and how many entries could not be read.
fn distributions_from_hlog(bytes: &[u8], run: &RunRecord) -> (Vec<Distribution>, usize) {
    let mut sums: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut skipped = 0;
    // One deserializer for every interval: it keeps its buffers.
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(bytes) {
        let Ok(LogEntry::Interval(h)) = entry else {
            if entry.is_err() {
                skipped += 1;
            }
            continue;
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(h.encoded_histogram())
            .map_err(|e| e.to_string())
            .and_then(|b| {
                deserializer
                    .deserialize::<u64, _>(&mut std::io::Cursor::new(b))
                    .map_err(|e| format!("{e:?}"))
            });
        let tag = h.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
        let added = decoded.and_then(|hist| {
            let sum = match sums.entry(tag) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut fresh = Histogram::new(SIGFIG).map_err(|e| format!("{e:?}"))?;
                    fresh.auto(true);
                    e.insert(fresh)
                }
            };
            sum.add(&hist).map_err(|e| format!("{e:?}"))
        });
        if added.is_err() {
            skipped += 1;
        }
    }
    let mut out = Vec::new();
    let mut take =
        |sums: &mut BTreeMap<String, Histogram<u64>>, task: &str, kind: &str, tag: &str| {
            if let Some(h) = sums.remove(tag) {
                out.push(Distribution {
                    task: task.to_string(),
                    kind: kind.to_string(),
                    count: h.len(),
                    points: curve(&h),
                });
            }
        };
    let tasks = run.scenario.task_names();
    for (task, _) in &tasks {
        take(&mut sums, task, "latency", &tag_for(task, false));
    }
    for (task, _) in &tasks {
        take(&mut sums, task, "ttfb", &tag_for(task, true));
    }
    // Tags no task of the scenario maps to (hand-edited logs) are still shown.
    let rest: Vec<String> = sums.keys().cloned().collect();
    for tag in rest {
        match tag.strip_prefix("ttfb:") {
            Some(task) => take(&mut sums, task, "ttfb", &tag),
            None => take(&mut sums, &tag, "latency", &tag),
        }
    }
    (out, skipped)
}

pub(crate) fn parse_events(text: &str) -> Vec<EventLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once(' ') {
            Some((at, rest)) if at.contains('T') => EventLine {
                at: at.to_string(),
                text: rest.to_string(),
            },
            _ => EventLine {
                at: String::new(),
                text: l.to_string(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn history_rows_become_points_per_second() {
        let csv = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,Total Min Response Time,Total Max Response Time,Total Average Content Size,MB/s,TTFB 50%,TTFB 99%\n\
            10,2,PUT,up,3.00,1.00,4.0,0,0,0,0,5.0,0,6.0,0,0,0,3,1,0,0,0,0,0,0.5,,\n\
            10,2,GET,down,0.00,0.00,0,0,0,0,0,0,0,0,0,0,0,1,0,0,0,0,0,0,0,,\n\
            10,2,,Aggregated,3.00,1.00,4.0,0,0,0,0,5.0,0,6.0,0,0,0,4,1,0,0,0,0,0,0.5,,\n\
            11,2,,Aggregated,0.00,0.00,0,0,0,0,0,0,0,0,0,0,0,4,1,0,0,0,0,0,0,,\n\
            12,2,,Aggre";
        let points = series_from_history(csv.as_bytes());
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].t, 10);
        assert_eq!(points[0].users, 2);
        assert_eq!(points[0].rps, 3.0);
        assert_eq!(points[0].p99_ms, 6.0);
        assert_eq!(points[0].mb_per_s, 0.5);
        assert_eq!(points[0].tasks.keys().collect::<Vec<_>>(), vec!["up"]);
        assert!(points[1].tasks.is_empty());
    }

    #[test]
    fn curves_follow_the_histogram_and_end_at_the_max() {
        let mut h = Hist::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let curve = distribution(&h);
        let at = |p: f64| curve.iter().find(|c| c[0] == p).map(|c| c[1]);
        assert_eq!(at(50.0), Some(h.quantile_ms(0.5)));
        assert_eq!(at(66.0), Some(h.quantile_ms(0.66)));
        assert_eq!(at(99.9), Some(h.quantile_ms(0.999)));
        assert_eq!(at(99.99), None, "1000 samples cannot tell 99.99% apart");
        assert_eq!(curve.last().map(|c| c[1]), Some(h.max_ms()));
        assert!(curve.windows(2).all(|w| w[0][1] <= w[1][1]));
    }

    #[test]
    fn events_keep_their_time() {
        let e = parse_events("2026-01-01T00:00:00.000Z state running: 4 users\n\nloose line\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].at, "2026-01-01T00:00:00.000Z");
        assert_eq!(e[0].text, "state running: 4 users");
        assert_eq!(e[1].text, "loose line");
    }
}
