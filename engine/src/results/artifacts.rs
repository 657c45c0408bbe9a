//! A run's directory and the files in it: `run.json`, `summary.json`, `stats.csv`,
//! `stats_history.csv`, `failures.csv`, `events.log`, and a `latest` link beside it.
//!
//! CSV files use Locust's column names (so existing tooling reads them) plus `MB/s` and TTFB
//! columns. Whole-file artifacts are written to a temporary name and renamed, so a reader
//! (or a crash) never sees half a file; the history and event log are appended as they happen.

use crate::load::scenario::{Scenario, ScenarioText};
use crate::load::stats::StatsDelta;
use crate::results::summary::{Percentiles, Summary, TaskSummary};
use crate::results::RunState;
use crate::s3_config::TargetInfo;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The parameters a run was started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunParameters {
    /// What the operator asked for (a built-in name, path or seed path).
    pub scenario_source: String,
    pub users: u32,
    pub spawn_rate: f64,
    pub duration_s: Option<f64>,
    pub iterations: Option<u64>,
    pub expected_workers: Option<u32>,
    pub stop_timeout_s: f64,
    /// Open-model load (arrivals per second across workers, Poisson or not, requests in flight
    /// at most); absent for closed-model users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<crate::load::scenario::ArrivalPlan>,
}

/// What preparing did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrepareReport {
    /// `existed` or `created`.
    pub bucket: String,
    pub prefilled_objects: u64,
    pub prefilled_bytes: u64,
    pub seconds: f64,
}

/// What cleanup did. Only what a final listing verified is stated: a count that could not
/// be taken is `null` (unknown), never 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// False when the scenario said `keep: true`.
    pub performed: bool,
    /// True when a final listing found no object and no unfinished upload under the run's
    /// prefix (or there was no bucket at all). False means objects may be left: run
    /// `chopsticks cleanup --run-id ID` to remove them.
    #[serde(default = "verified_before")]
    pub complete: bool,
    pub deleted_objects: u64,
    pub aborted_uploads: u64,
    /// Objects under the run's prefix after cleanup, as the final listing counted them;
    /// `null` when that listing failed (or the objects were kept and not counted).
    pub remaining_objects: Option<u64>,
    /// Unfinished multipart uploads under the prefix after cleanup; `null` when unknown.
    #[serde(default)]
    pub remaining_uploads: Option<u64>,
    /// Cleanup passes made (it retries with backoff for a bounded time).
    #[serde(default)]
    pub attempts: u32,
    /// Errors of the last pass.
    pub errors: Vec<String>,
    pub seconds: f64,
}

/// Records written before `complete` existed claimed their cleanup was done.
fn verified_before() -> bool {
    true
}

impl CleanupReport {
    /// Whether cleanup was asked for and did not verify an empty prefix.
    pub fn incomplete(&self) -> bool {
        self.performed && !self.complete
    }
}

/// A worker's part in a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// The coordinator's id for the worker's connection (a reconnect gets a new one).
    pub id: u32,
    /// The name the worker gave (its unit name, or `local` in a standalone run).
    pub name: String,
    /// Requests that completed on this worker (successful or not), as merged.
    pub requests: u64,
    /// Of those, the failed ones.
    pub failures: u64,
    /// Payload bytes moved by this worker.
    pub bytes: u64,
    /// Stats messages received (the worker numbers them; a gap means lost data).
    pub stats_messages: u64,
    /// When it was enlisted in the run (RFC 3339).
    pub joined_at: String,
    /// When it finished or was lost; `None` while it takes part.
    pub left_at: Option<String>,
    /// `finished`, `lost` (went missing and never came back), `dropped`, `active`, or `cut`
    /// (its coordinator was lost mid-run; reported to the next one, see `recovery`).
    pub fate: String,
    /// How often it went silent long enough to be marked missing (its users went elsewhere).
    pub missing_events: u32,
    /// Virtual users of this worker that died (their task panicked); any fails the run.
    #[serde(default)]
    pub died_users: Vec<crate::load::user::UserDeath>,
}

/// `run.json`: the parameters, resolved scenario, engine version and workers of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub engine_version: String,
    pub state: RunState,
    pub reason: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub parameters: RunParameters,
    pub scenario: Scenario,
    /// The scenario's text as resolved once at start, its SHA-256 and where it came from; null
    /// for a run recorded from what a worker kept of it (the text never reached it).
    #[serde(default)]
    pub scenario_text: Option<ScenarioText>,
    pub seed: u64,
    pub key_prefix: String,
    pub target: TargetInfo,
    pub prepare: Option<PrepareReport>,
    pub cleanup: Option<CleanupReport>,
    pub workers: Vec<WorkerRecord>,
    pub requests: u64,
    pub failures: u64,
    pub bytes: u64,
    /// Per bucket, when the run spread its users over several (absent with one): the same
    /// counts as `requests`, `failures` and `bytes`, split by the bucket each request went to.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub buckets: std::collections::BTreeMap<String, BucketCounts>,
}

/// One bucket's share of a run (run.json `buckets`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCounts {
    pub requests: u64,
    pub failures: u64,
    pub bytes: u64,
}

/// Why a run directory could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write {path}: {source}; check that the directory is writable and the disk has space"
)]
pub struct ArtifactError {
    path: String,
    source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError {
        path: path.display().to_string(),
        source,
    }
}

/// A run's directory.
pub struct RunDir {
    path: PathBuf,
    history: Option<csv::Writer<File>>,
    events: Option<File>,
}

pub const RUN_JSON: &str = "run.json";
pub const SUMMARY_JSON: &str = "summary.json";
pub const STATS_CSV: &str = "stats.csv";
pub const HISTORY_CSV: &str = "stats_history.csv";
pub const FAILURES_CSV: &str = "failures.csv";
pub const EVENTS_LOG: &str = "events.log";

const PERCENTILE_HEADERS: [&str; 11] = [
    "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
];

impl RunDir {
    /// Creates (or reopens) the directory; it must not hold another run's files.
    pub fn create(path: &Path) -> Result<RunDir, ArtifactError> {
        std::fs::create_dir_all(path).map_err(at(path))?;
        let events_path = path.join(EVENTS_LOG);
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events_path)
            .map_err(at(&events_path))?;
        Ok(RunDir {
            path: path.to_path_buf(),
            history: None,
            events: Some(events),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a timestamped line to `events.log`.
    pub fn event(&mut self, text: &str) {
        let line = format!("{} {text}\n", now_rfc3339());
        if let Some(f) = self.events.as_mut() {
            if let Err(e) = f.write_all(line.as_bytes()) {
                log::warn!(
                    "cannot append to {}: {e}",
                    self.path.join(EVENTS_LOG).display()
                );
            }
        }
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), ArtifactError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| ArtifactError {
            path: self.path.join(name).display().to_string(),
            source: io::Error::other(e),
        })?;
        write_atomic(&self.path.join(name), &bytes)
    }

    /// Writes `stats.csv`, `failures.csv` and `summary.json`.
    pub fn write_summary(&self, summary: &Summary) -> Result<(), ArtifactError> {
        self.write_json(SUMMARY_JSON, summary)?;
        write_atomic(&self.path.join(STATS_CSV), stats_csv(summary).as_bytes())?;
        write_atomic(
            &self.path.join(FAILURES_CSV),
            failures_csv(summary).as_bytes(),
        )
    }

    /// Appends one second of history: a row per task with activity, then the aggregate.
    pub fn append_history(
        &mut self,
        unix_time: i64,
        (users, users_target): (u32, u32),
        interval: &StatsDelta,
        totals: &StatsDelta,
        tasks: &[(String, crate::load::scenario::OpKind)],
    ) -> Result<(), ArtifactError> {
        if self.history.is_none() {
            let p = self.path.join(HISTORY_CSV);
            let fresh = !p.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(at(&p))?;
            let mut w = csv::Writer::from_writer(file);
            if fresh {
                let mut header = vec![
                    "Timestamp",
                    "User Count",
                    "Type",
                    "Name",
                    "Requests/s",
                    "Failures/s",
                ];
                header.extend(PERCENTILE_HEADERS);
                header.extend([
                    "Total Request Count",
                    "Total Failure Count",
                    "Total Median Response Time",
                    "Total Average Response Time",
                    "Total Min Response Time",
                    "Total Max Response Time",
                    "Total Average Content Size",
                    "MB/s",
                    "TTFB 50%",
                    "TTFB 99%",
                    // Load stages (issue 13): what was asked in the second, next to what ran.
                    "Users Target",
                    "Arrivals/s",
                ]);
                w.write_record(&header).map_err(|e| csv_error(&p, e))?;
            }
            self.history = Some(w);
        }
        let p = self.path.join(HISTORY_CSV);
        let empty = crate::load::stats::TaskStats::default();
        let mut rows: Vec<(TaskSummary, TaskSummary)> = Vec::new();
        for (name, op) in tasks {
            let now = interval.tasks.get(name).unwrap_or(&empty);
            let all = totals.tasks.get(name).unwrap_or(&empty);
            if all.requests == 0 {
                continue;
            }
            rows.push((
                TaskSummary::of(name, op.method(), now, 1.0),
                TaskSummary::of(name, op.method(), all, 1.0),
            ));
        }
        rows.push((
            TaskSummary::of("Aggregated", "", &interval.total(), 1.0),
            TaskSummary::of("Aggregated", "", &totals.total(), 1.0),
        ));
        if let Some(w) = self.history.as_mut() {
            for (now, all) in rows {
                let mut rec = vec![
                    unix_time.to_string(),
                    users.to_string(),
                    now.method.clone(),
                    now.name.clone(),
                    fmt2(now.requests_per_s),
                    fmt2(now.failures_per_s),
                ];
                rec.extend(now.latency_ms.columns().iter().map(|v| fmt3(*v)));
                rec.extend([
                    all.requests.to_string(),
                    all.failures.to_string(),
                    fmt3(all.latency_ms.p50),
                    fmt3(all.latency_ms.mean),
                    fmt3(all.latency_ms.min),
                    fmt3(all.latency_ms.max),
                    fmt2(all.avg_size),
                    fmt3(now.mb_per_s),
                    ttfb(&now.ttfb_ms, |p| p.p50),
                    ttfb(&now.ttfb_ms, |p| p.p99),
                    users_target.to_string(),
                    now.arrivals.to_string(),
                ]);
                w.write_record(&rec).map_err(|e| csv_error(&p, e))?;
            }
            w.flush().map_err(at(&p))?;
        }
        Ok(())
    }

    /// Points `<parent>/latest` at this run.
    pub fn mark_latest(&self) {
        let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let link = parent.join("latest");
        let tmp = parent.join(".latest.tmp");
        let _ = std::fs::remove_file(&tmp);
        let made =
            std::os::unix::fs::symlink(name, &tmp).and_then(|_| std::fs::rename(&tmp, &link));
        if let Err(e) = made {
            log::debug!("cannot update {}: {e}", link.display());
        }
    }
}

fn csv_error(p: &Path, e: csv::Error) -> ArtifactError {
    ArtifactError {
        path: p.display().to_string(),
        source: io::Error::other(e),
    }
}

fn fmt2(v: f64) -> String {
    format!("{v:.2}")
}

fn fmt3(v: f64) -> String {
    format!("{v:.3}")
}

fn ttfb(p: &Option<Percentiles>, f: impl Fn(&Percentiles) -> f64) -> String {
    p.as_ref().map(|p| fmt3(f(p))).unwrap_or_default()
}

/// `stats.csv` in Locust's layout (times in ms), plus throughput and TTFB columns.
pub fn stats_csv(summary: &Summary) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "Type",
        "Name",
        "Request Count",
        "Failure Count",
        "Median Response Time",
        "Average Response Time",
        "Min Response Time",
        "Max Response Time",
        "Average Content Size",
        "Requests/s",
        "Failures/s",
    ];
    header.extend(PERCENTILE_HEADERS);
    header.extend(["MB/s", "TTFB 50%", "TTFB 99%"]);
    // Issue 13: service time (from the send; the same as the response times above when
    // requests had no intended start) and the open model's arrivals.
    header.extend([
        "Service 50%",
        "Service 99%",
        "Service Max",
        "Arrivals",
        "Dropped",
        "Late",
        "Lateness 99%",
    ]);
    let _ = w.write_record(&header);
    for t in summary.tasks.iter().chain(std::iter::once(&summary.total)) {
        let mut rec = vec![
            t.method.clone(),
            t.name.clone(),
            t.requests.to_string(),
            t.failures.to_string(),
            fmt3(t.latency_ms.p50),
            fmt3(t.latency_ms.mean),
            fmt3(t.latency_ms.min),
            fmt3(t.latency_ms.max),
            fmt2(t.avg_size),
            fmt2(t.requests_per_s),
            fmt2(t.failures_per_s),
        ];
        rec.extend(t.latency_ms.columns().iter().map(|v| fmt3(*v)));
        rec.extend([
            fmt3(t.mb_per_s),
            ttfb(&t.ttfb_ms, |p| p.p50),
            ttfb(&t.ttfb_ms, |p| p.p99),
        ]);
        let service = t.service_ms.as_ref().unwrap_or(&t.latency_ms);
        rec.extend([
            fmt3(service.p50),
            fmt3(service.p99),
            fmt3(service.max),
            t.arrivals.to_string(),
            t.dropped.to_string(),
            t.late.to_string(),
            ttfb(&t.lateness_ms, |p| p.p99),
        ]);
        let _ = w.write_record(&rec);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// `failures.csv` in Locust's layout.
pub fn failures_csv(summary: &Summary) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(["Method", "Name", "Error", "Occurrences"]);
    for f in &summary.failures {
        let error = if f.sample.is_empty() {
            f.error.clone()
        } else {
            format!("{}: {}", f.error, f.sample)
        };
        let _ = w.write_record([
            f.method.clone(),
            f.name.clone(),
            error,
            f.occurrences.to_string(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(at(path))
}

/// Why a run's `run.json` cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Serialises read-modify-write updates of `run.json` within this process: a coordinator's
/// recovery adds each cut worker's totals while a cleanup task of the same run records its
/// result, and without the lock the later write loses the other's change.
static RECORD_UPDATES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds off every other [`RecordUpdate`] until dropped; take it around reading a `run.json`,
/// changing it and writing it back (no `.await` while it is held).
pub struct RecordUpdate(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

/// Takes the process-wide `run.json` update lock (a poisoned lock is still a lock: the file
/// itself is written whole, so a panic elsewhere left nothing half-done).
pub fn record_update() -> RecordUpdate {
    RecordUpdate(RECORD_UPDATES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Reads a run's `run.json`.
pub fn read_record(dir: &Path) -> Result<RunRecord, RecordError> {
    let p = dir.join(RUN_JSON);
    let path = || p.display().to_string();
    let text = std::fs::read_to_string(&p).map_err(|source| RecordError::Read {
        path: path(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| RecordError::Parse {
        path: path(),
        source,
    })
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::scenario::OpKind;
    use crate::load::stats::{Outcome, Recorder};
    use std::time::Duration;

    fn summary() -> Summary {
        let r = Recorder::new(vec!["upload".into(), "download".into()]);
        r.record(
            0,
            0,
            &Outcome::Done {
                latency: Duration::from_millis(12),
                ttfb: None,
                bytes: 4096,
                error: None,
                waited: None,
            },
        );
        r.record(
            0,
            1,
            &Outcome::Done {
                latency: Duration::from_millis(3),
                ttfb: Some(Duration::from_millis(2)),
                bytes: 0,
                error: Some(crate::load::driver::OpError::new(
                    crate::load::driver::FailureKind::Integrity,
                    "k: content differs, at byte 7",
                )),
                waited: None,
            },
        );
        Summary::new(
            "r1",
            RunState::Completed,
            "s",
            1,
            1.0,
            &r.take(),
            &[
                ("upload".into(), OpKind::Put),
                ("download".into(), OpKind::Get),
            ],
        )
    }

    #[test]
    fn stats_csv_has_locust_columns_and_our_extras() {
        let csv = stats_csv(&summary());
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("Type,Name,Request Count,Failure Count,Median Response Time"));
        assert!(header.ends_with(
            "100%,MB/s,TTFB 50%,TTFB 99%,Service 50%,Service 99%,Service Max,Arrivals,Dropped,Late,Lateness 99%"
        ));
        // HDR keeps 3 significant digits: 12 ms is reported as the top of its 8 µs bucket.
        let put = lines.next().unwrap();
        assert!(
            put.starts_with("PUT,upload,1,0,12.007,12.004,12.000,12.007,4096.00"),
            "{put}"
        );
        // The one download failed: latency columns hold successes only, so they are empty (0).
        let get = lines.next().unwrap();
        assert!(
            get.starts_with("GET,download,1,1,0.000,0.000,0.000,0.000,0.00"),
            "{get}"
        );
        assert!(lines.next().unwrap().starts_with(",Aggregated,2,1"));
    }

    #[test]
    fn failures_csv_quotes_messages() {
        let csv = failures_csv(&summary());
        assert_eq!(
            csv,
            "Method,Name,Error,Occurrences\nGET,download,\"integrity: k: content differs, at byte 7\",1\n"
        );
    }
}
