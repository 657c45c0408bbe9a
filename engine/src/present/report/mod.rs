//! `report.html`: one self-contained page per run, rendered from the run's saved files only
//! (`run.json`, `summary.json`, `stats_history.csv`, `histograms.hlog`, `events.log`), so
//! `chopsticks report RUN_DIR` can re-render it any time.
//!
//! The page is data plus a renderer: the numbers are embedded as JSON
//! (`<script id="data" type="application/json">`, a [`ReportData`]) and drawn by the same
//! script the live web UI uses ([`html`]), with uPlot embedded for the charts. Nothing is
//! fetched from the network; a Content-Security-Policy in the page enforces it.

mod data;
pub(crate) mod html;

pub use data::{distribution, load, Distribution, EventLine, ReportData};
pub(crate) use data::{parse_events, series_from_history};

use std::io;
use std::path::{Path, PathBuf};

/// The report's file name in a run directory.
pub const REPORT_HTML: &str = "report.html";

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{dir} has no run.json: give the directory of a run (e.g. chopsticks-runs/<run-id> or \
         /var/lib/chopsticks/<run-id>; `chopsticks ctl runs` lists them)"
    )]
    NotARun { dir: String },
    #[error("cannot read {0}; the run directory is damaged — re-run the test or restore the file")]
    Unreadable(#[source] crate::results::artifacts::RecordError),
    #[error("cannot write {path}: {source}; check that the run directory is writable and the disk has space")]
    Write { path: String, source: io::Error },
}

/// Renders `report.html` into the run directory `dir`; returns its path.
pub fn write(dir: &Path) -> Result<PathBuf, ReportError> {
    let page = html::report_page(&load(dir)?);
    let path = dir.join(REPORT_HTML);
    let tmp = dir.join(".report.html.tmp");
    std::fs::write(&tmp, page.as_bytes())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| ReportError::Write {
            path: path.display().to_string(),
            source,
        })?;
    Ok(path)
}

/// [`write`], for callers that must carry on whatever happens: a failure is logged.
pub fn write_logged(dir: &Path) {
    match write(dir) {
        Ok(path) => log::debug!("wrote {}", path.display()),
        Err(e) => log::warn!("no report for {}: {e}", dir.display()),
    }
}
