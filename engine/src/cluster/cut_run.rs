//! A worker's memory of the run it was cut from when its coordinator went away.
//!
//! When a leader unit is lost mid-run its coordinator's records go with it, but every worker
//! still knows the run's id, key prefix and what it did. The worker keeps that as
//! `cut-run.json` in its state directory until a coordinator confirms it recorded the run
//! (`CutRunRecorded`); the next coordinator then marks the run `interrupted` with those
//! totals and cleans its objects up. One file: a worker is in at most one run at a time.

use crate::cluster::protocol::CutRun;
use std::path::{Path, PathBuf};

/// The file name in the worker's state directory.
pub const CUT_RUN_FILE: &str = "cut-run.json";

fn path(dir: &Path) -> PathBuf {
    dir.join(CUT_RUN_FILE)
}

/// Keeps `cut` (replacing an older one); failures are logged, as the run is lost anyway.
pub fn save(dir: &Path, cut: &CutRun) {
    let file = path(dir);
    let tmp = file.with_extension("tmp");
    let written = serde_json::to_vec_pretty(cut)
        .map_err(std::io::Error::other)
        .and_then(|bytes| {
            std::fs::create_dir_all(dir)?;
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &file)
        });
    match written {
        Ok(()) => log::warn!(
            "run {}: cut from its coordinator; kept {} (requests {}) for the next coordinator",
            cut.spec.run_id,
            file.display(),
            cut.totals.requests()
        ),
        Err(e) => log::error!("could not keep the cut run in {}: {e}", file.display()),
    }
}

/// The cut run kept in `dir`, if any.
pub fn load(dir: &Path) -> Option<CutRun> {
    let text = std::fs::read_to_string(path(dir)).ok()?;
    match serde_json::from_str(&text) {
        Ok(cut) => Some(cut),
        Err(e) => {
            log::warn!("ignoring unreadable {}: {e}", path(dir).display());
            None
        }
    }
}

/// Forgets the cut run `run_id` once a coordinator recorded it.
pub fn clear(dir: &Path, run_id: &str) {
    if load(dir).is_some_and(|c| c.spec.run_id == run_id) {
        let _ = std::fs::remove_file(path(dir));
        log::info!("run {run_id}: the coordinator recorded what this worker did");
    }
}
