//! Every file of one run's directory, behind one type: run.json, summary.json (with stats.csv
//! and failures.csv), the per-second history CSV, the HDR histogram log, events.log and the
//! HTML report. The run's state ([`super::run::Run`]) decides what to write; this writes it,
//! and logs (never fails the run on) a write error, since a full disk must not stop a test.

use crate::load::scenario::OpKind;
use crate::load::stats::StatsDelta;
use crate::results::artifacts::{self, ArtifactError, RunDir, RunRecord};
use crate::results::hlog::{HistogramLog, HLOG};
use crate::results::summary::Summary;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// One second of the run as its files record it.
pub(super) struct SecondRow<'a> {
    /// The Unix second in which the run's second ends (consecutive seconds, consecutive rows).
    pub unix_end: i64,
    /// Wall-clock start of the second, from the run's clock origin.
    pub begins: SystemTime,
    /// How much of the second the load covered (the last one may be cut short).
    pub span: Duration,
    /// Users running on connected workers when the second was written.
    pub users: u32,
    /// Users asked for during the second (with users stages, its stage's).
    pub users_target: u32,
    /// What completed in the second, across workers.
    pub delta: &'a StatsDelta,
    /// The run's totals so far (the history's cumulative columns).
    pub totals: &'a StatsDelta,
    /// The scenario's task names and kinds, in report order.
    pub tasks: &'a [(String, OpKind)],
}

/// The files of one run directory.
pub(super) struct RunFiles {
    /// run.json, summary.json, the CSVs and events.log.
    dir: RunDir,
    /// The HDR histogram log; opened when load begins (its timestamps count from the run's
    /// clock origin, unknown before).
    hlog: Option<HistogramLog>,
}

impl RunFiles {
    /// Creates the directory and writes the run's first run.json; it must not hold a run yet.
    pub fn create(path: &Path, record: &RunRecord) -> Result<RunFiles, ArtifactError> {
        let dir = RunDir::create(path)?;
        dir.write_json(artifacts::RUN_JSON, record)?;
        dir.mark_latest();
        Ok(RunFiles { dir, hlog: None })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A line of events.log.
    pub fn event(&mut self, text: &str) {
        self.dir.event(text);
    }

    pub fn write_record(&self, record: &RunRecord) {
        if let Err(e) = self.dir.write_json(artifacts::RUN_JSON, record) {
            log::warn!("{e}");
        }
    }

    /// sweep.json, as it stands.
    pub fn write_sweep(&self, sweep: &crate::load::sweep::SweepResult) {
        if let Err(e) = self.dir.write_json(crate::load::sweep::SWEEP_JSON, sweep) {
            log::warn!("{e}");
        }
    }

    /// summary.json, stats.csv and failures.csv.
    pub fn write_summary(&self, summary: &Summary) {
        if let Err(e) = self.dir.write_summary(summary) {
            log::warn!("{e}");
        }
    }

    /// Opens the histogram log once the run's clock origin is known.
    pub fn begin_histograms(&mut self, origin: SystemTime) {
        self.hlog = Some(HistogramLog::new(self.dir.path(), origin));
    }

    /// Appends one second to the history CSV and the histogram log.
    pub fn append_second(&mut self, row: &SecondRow<'_>) {
        if let Err(e) = self.dir.append_history(
            row.unix_end,
            (row.users, row.users_target),
            row.delta,
            row.totals,
            row.tasks,
        ) {
            log::warn!("{e}");
        }
        if let Some(hlog) = self.hlog.as_mut() {
            if let Err(e) = hlog.append(row.delta, row.begins, row.span) {
                log::warn!("cannot append to {HLOG}: {e}");
            }
        }
    }

    /// The run's last files: summary, run.json, and the HTML report rendered from them.
    pub fn finish(&self, summary: &Summary, record: &RunRecord) {
        self.write_summary(summary);
        self.write_record(record);
        crate::present::report::write_logged(self.dir.path());
    }
}
