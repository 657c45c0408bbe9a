//! Runs on disk: the ones a previous coordinator process left active (marked `interrupted` at
//! start), the run list, and a run's summary.

use super::status::LastRun;
use crate::control::{ControlError, RunListing};
use crate::load::stats::StatsDelta;
use crate::results::artifacts::{self, RunDir};
use crate::results::summary::Summary;
use crate::results::RunState;
use std::path::{Path, PathBuf};

/// Why a run's summary.json could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

/// Marks runs a previous coordinator left active as `interrupted`; returns the newest run and
/// the directories of the runs it marked.
pub(super) fn recover_interrupted(state_dir: &Path) -> (Option<LastRun>, Vec<PathBuf>) {
    let mut newest: Option<LastRun> = None;
    let mut interrupted = Vec::new();
    for dir in run_dirs(state_dir) {
        let Ok(mut record) = artifacts::read_record(&dir) else {
            continue;
        };
        if record.state.is_active() {
            let was = record.state;
            record.state = RunState::Interrupted;
            record.reason = Some(format!(
                "the coordinator stopped while the run was {was}; results up to then are kept"
            ));
            record.ended_at = Some(artifacts::now_rfc3339());
            if let Ok(summary) = read_summary_at(&dir) {
                record.requests = summary.total.requests;
                record.failures = summary.total.failures;
                record.bytes = summary.total.bytes;
            }
            if let Ok(mut rd) = RunDir::create(&dir) {
                rd.event(&format!(
                    "state interrupted (coordinator restarted while {was})"
                ));
                let _ = rd.write_json(artifacts::RUN_JSON, &record);
                if let Ok(mut summary) = read_summary_at(&dir) {
                    summary.state = RunState::Interrupted;
                    let _ = rd.write_summary(&summary);
                }
                crate::present::report::write_logged(&dir);
            }
            log::warn!(
                "run {} was cut by a coordinator restart: marked interrupted",
                record.run_id
            );
            interrupted.push(dir.clone());
        }
        let summary = read_summary_at(&dir).ok();
        let candidate = LastRun {
            totals: StatsDelta::default(),
            tasks: record.scenario.task_names(),
            series: Vec::new(),
            run_id: record.run_id.clone(),
            scenario: record.scenario.name.clone(),
            state: record.state,
            reason: record.reason.clone(),
            elapsed_s: summary.as_ref().map(|s| s.duration_s).unwrap_or(0.0),
            users: record.parameters.users,
            requests: summary
                .as_ref()
                .map(|s| s.total.requests)
                .unwrap_or(record.requests),
            failures: summary
                .as_ref()
                .map(|s| s.total.failures)
                .unwrap_or(record.failures),
            bytes: summary
                .as_ref()
                .map(|s| s.total.bytes)
                .unwrap_or(record.bytes),
            run_dir: dir.display().to_string(),
        };
        if newest.as_ref().is_none_or(|n| candidate.run_id > n.run_id) {
            newest = Some(candidate);
        }
    }
    (newest, interrupted)
}

fn run_dirs(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| p.join(artifacts::RUN_JSON).is_file())
        .collect()
}

/// Past and current runs, newest first.
pub(super) fn list_runs(state_dir: &Path) -> Vec<RunListing> {
    let mut out: Vec<RunListing> = run_dirs(state_dir)
        .into_iter()
        .filter_map(|dir| artifacts::read_record(&dir).ok())
        .map(|r| RunListing {
            run_id: r.run_id,
            state: r.state,
            scenario: r.scenario.name,
            created_at: r.created_at,
            ended_at: r.ended_at,
            requests: r.requests,
            failures: r.failures,
        })
        .collect();
    out.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    out
}

fn read_summary_at(dir: &Path) -> Result<Summary, SummaryError> {
    let p = dir.join(artifacts::SUMMARY_JSON);
    let path = p.display().to_string();
    let text = std::fs::read_to_string(&p).map_err(|source| SummaryError::Read {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SummaryError::Parse { path, source })
}

/// The summary of run `run_id` in `state_dir`.
pub(super) fn read_summary(state_dir: &Path, run_id: &str) -> Result<Summary, ControlError> {
    if run_id.contains('/') || run_id.starts_with('.') {
        return Err(ControlError::BadRequest(format!(
            "'{run_id}' is not a run id"
        )));
    }
    let dir = state_dir.join(run_id);
    if !dir.join(artifacts::RUN_JSON).is_file() {
        return Err(ControlError::NotFound(format!(
            "no run '{run_id}' in {}; list runs to see the ids",
            state_dir.display()
        )));
    }
    read_summary_at(&dir).map_err(|e| {
        ControlError::NotFound(format!(
            "run '{run_id}' has no summary yet ({e}); it may still be preparing"
        ))
    })
}
