//! `chopsticks cleanup`: removes what a run left in the bucket — every object under its
//! prefix `chopsticks/<run-id>/` and its unfinished multipart uploads — for a run whose
//! cleanup was incomplete or whose process died. It verifies by listing again and exits 0
//! only when nothing is left.

use super::{default_runs_dir, Exit};
use crate::cluster::coordinator::{cleanup, incomplete_message, key_prefix};
use crate::load::driver::AnyDriver;
use crate::results::artifacts::{self, RunDir};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// S3 connection file of the run's target (as for `run`); without it, S3_ENDPOINT_URL /
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
    #[arg(long, value_name = "FILE")]
    pub workload_config: Option<PathBuf>,
    /// The run whose objects to remove (its prefix is chopsticks/<run-id>/).
    #[arg(long)]
    pub run_id: String,
    /// Where the run's directory is, to record the cleanup in its run.json (default
    /// ./chopsticks-runs; for the coordinator daemon /var/lib/chopsticks).
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// How long to keep retrying (with backoff) before giving up (0s to 1h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = super::parse_cleanup_timeout)]
    pub cleanup_timeout: Duration,
}

pub async fn cleanup_run(args: CleanupArgs) -> Exit {
    let prefix = match key_prefix(&args.run_id) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let config = match super::daemon::load_workload(args.workload_config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let driver = match AnyDriver::new(&config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let report = cleanup(&driver, &prefix, args.cleanup_timeout).await;
    // Record it in the run's directory when there is one for this target.
    let dir = args
        .runs_dir
        .unwrap_or_else(default_runs_dir)
        .join(&args.run_id);
    if let Ok(mut record) = artifacts::read_record(&dir) {
        if record.target.endpoint == config.endpoint && record.target.bucket == config.bucket {
            if let Ok(mut rd) = RunDir::create(&dir) {
                rd.event(&format!(
                    "chopsticks cleanup: {} objects deleted, {} uploads aborted, {} objects and {} uploads left",
                    report.deleted_objects,
                    report.aborted_uploads,
                    crate::cluster::coordinator::prepare_shown(report.remaining_objects),
                    crate::cluster::coordinator::prepare_shown(report.remaining_uploads),
                ));
                let mut merged = report.clone();
                if let Some(before) = &record.cleanup {
                    merged.deleted_objects += before.deleted_objects;
                    merged.aborted_uploads += before.aborted_uploads;
                    merged.attempts += before.attempts;
                }
                record.cleanup = Some(merged);
                if let Err(e) = rd.write_json(artifacts::RUN_JSON, &record) {
                    eprintln!("warning: {e}");
                }
                crate::present::report::write_logged(&dir);
            }
        } else {
            eprintln!(
                "note: {} belongs to another target ({} bucket {}); its run.json is left as it is",
                dir.display(),
                record.target.endpoint,
                record.target.bucket
            );
        }
    }
    for e in &report.errors {
        eprintln!("cleanup error: {e}");
    }
    println!(
        "cleanup of {prefix} in bucket {}: {} objects deleted, {} uploads aborted, {} objects and {} uploads left",
        config.bucket,
        report.deleted_objects,
        report.aborted_uploads,
        crate::cluster::coordinator::prepare_shown(report.remaining_objects),
        crate::cluster::coordinator::prepare_shown(report.remaining_uploads),
    );
    if report.complete {
        Exit::Ok
    } else {
        let file = args
            .workload_config
            .as_ref()
            .map(|p| p.display().to_string());
        eprintln!(
            "error: {}",
            incomplete_message(
                &args.run_id,
                &prefix,
                &config.bucket,
                &report,
                file.as_deref()
            )
        );
        Exit::RunFailed
    }
}
