//! Before and after the load: check credentials and bucket, prefill shared objects, and
//! delete everything the run created.
//!
//! Cleanup works by prefix, not by remembering keys: every object of a run lives under
//! `chopsticks/<run-id>/`, so objects written by a worker that died, or by a request cut off
//! mid-flight, are found and deleted too. Unfinished multipart uploads are aborted the same way.

use crate::cluster::protocol::RunSpec;
use crate::load::driver::{
    BucketState, Driver, FailureKind, ObjectVersion, OpError, TlsCause, VersionMarker,
};
use crate::load::scenario::{CopyTo, ObjectLock, Scenario};
use crate::load::user::Program;
use crate::results::artifacts::{CleanupReport, PrepareReport, RunDir};
use crate::s3_config::DriverKind;
use crate::s3_config::TargetInfo;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Prefill requests in flight at once.
const PREFILL_CONCURRENCY: usize = 32;

/// Why preparing failed, and whether it may have left objects behind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PrepareError {
    pub reason: String,
    /// False when it failed before writing anything (at the bucket check): there is then
    /// nothing to clean up, and no listing is needed to know it.
    pub may_have_written: bool,
}

/// Checks every bucket of the run (creating those missing) and writes the prefill pool into
/// each, so a user reads shared objects from its own bucket.
pub async fn prepare<D: Driver>(
    driver: &D,
    spec: &RunSpec,
    target: &TargetInfo,
) -> Result<PrepareReport, PrepareError> {
    let buckets = driver.per_bucket();
    if buckets.len() == 1 {
        return prepare_one(driver, spec, target).await;
    }
    let started = Instant::now();
    let mut states = Vec::with_capacity(buckets.len());
    let (mut objects, mut bytes) = (0u64, 0u64);
    for (name, d) in &buckets {
        let name = name.unwrap_or(&target.bucket);
        let one = prepare_one(*d, spec, target)
            .await
            .map_err(|e| PrepareError {
                reason: format!("bucket {name}: {}", e.reason),
                // Buckets before this one may hold prefill objects.
                may_have_written: e.may_have_written || !states.is_empty(),
            })?;
        states.push(format!("{name} {}", one.bucket));
        objects += one.prefilled_objects;
        bytes += one.prefilled_bytes;
    }
    Ok(PrepareReport {
        bucket: states.join(", "),
        prefilled_objects: objects,
        prefilled_bytes: bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Checks one bucket (creating it if missing) and writes the prefill pool.
async fn prepare_one<D: Driver>(
    driver: &D,
    spec: &RunSpec,
    target: &TargetInfo,
) -> Result<PrepareReport, PrepareError> {
    let started = Instant::now();
    let bucket = if spec.scenario.versioning {
        prepare_versioned(driver, spec.scenario.object_lock, target).await?
    } else {
        driver.ensure_bucket().await.map_err(|e| PrepareError {
            reason: explain("checking bucket", &e, target),
            may_have_written: false,
        })?
    };
    let program = Program::new(&spec.scenario);
    let objects = program.shared_objects();
    let mut bytes = 0u64;
    if objects > 0 {
        log::info!(
            "prefilling {objects} objects under {}",
            spec.shared_prefix()
        );
        let results: Vec<Result<u64, OpError>> = futures::stream::iter(0..objects)
            .map(|i| {
                let (key, seed, size) = program.shared_object(spec, i);
                async move { driver.put(&key, seed, size).await.map(|_| size) }
            })
            .buffer_unordered(PREFILL_CONCURRENCY)
            .collect()
            .await;
        let mut failed = 0u64;
        let mut first: Option<OpError> = None;
        for r in results {
            match r {
                Ok(size) => bytes += size,
                Err(e) => {
                    failed += 1;
                    first.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first {
            return Err(PrepareError {
                reason: format!(
                    "prefill failed: {failed} of {objects} objects could not be written; first error: {}",
                    explain("writing prefill objects", &e, target)
                ),
                may_have_written: true,
            });
        }
    }
    Ok(PrepareReport {
        bucket: match bucket {
            BucketState::Existed => "existed".into(),
            BucketState::Created => "created".into(),
        },
        prefilled_objects: objects,
        prefilled_bytes: bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The bucket of a versioned scenario: created versioned (and object-locked with its default
/// retention when `lock` is given) when missing; an existing one must already have what the
/// scenario asks for, and is never changed. Either way, what the bucket has is read back.
async fn prepare_versioned<D: Driver>(
    driver: &D,
    lock: Option<ObjectLock>,
    target: &TargetInfo,
) -> Result<BucketState, PrepareError> {
    let failed = |reason: String| PrepareError {
        reason,
        may_have_written: false,
    };
    let state = driver.ensure_versioned_bucket(lock).await.map_err(|e| {
        failed(explain(
            "checking (or creating) the versioned bucket",
            &e,
            target,
        ))
    })?;
    let features = driver.bucket_features().await.map_err(|e| {
        failed(explain(
            "reading the bucket's versioning and object lock",
            &e,
            target,
        ))
    })?;
    let name = driver.bucket();
    let how = match state {
        BucketState::Existed => "exists",
        BucketState::Created => "was created by this run",
    };
    if !features.versioning {
        let fix = match state {
            BucketState::Existed => format!(
                "the run never changes an existing bucket: enable versioning on it (e.g. \
                 aws s3api put-bucket-versioning --bucket {name} --versioning-configuration Status=Enabled), \
                 or name a bucket that does not exist yet so the run creates it versioned"
            ),
            BucketState::Created => {
                "the gateway did not enable versioning when asked; check that it supports bucket versioning"
                    .into()
            }
        };
        return Err(failed(format!(
            "bucket {name} {how} without versioning enabled, but the scenario asks for versioning: true; {fix}"
        )));
    }
    if lock.is_some() && !features.object_lock {
        let fix = match state {
            BucketState::Existed => {
                "object lock can only be enabled when a bucket is created: name a bucket that does \
                 not exist yet so the run creates it with object lock, or remove object_lock from the scenario"
            }
            BucketState::Created => {
                "the gateway did not enable object lock when asked; check that it supports object lock"
            }
        };
        return Err(failed(format!(
            "bucket {name} {how} without object lock, but the scenario asks for object_lock; {fix}"
        )));
    }
    Ok(state)
}

/// Why `scenario` cannot run against `target` (checked when a run is asked for, before
/// anything is sent): the driver or the bucket set lacks what the scenario needs.
pub fn target_problem(scenario: &Scenario, target: &TargetInfo) -> Option<String> {
    if scenario.versioning && target.driver == DriverKind::S5cmd {
        return Some(
            "driver s5cmd cannot run a versioned scenario (versioning: true): s5cmd has no \
             version-id addressing (no GET or DELETE of a version, no ListObjectVersions) and does \
             not report the version id a PUT made; use driver: aws-sdk or driver: lean"
                .into(),
        );
    }
    let buckets = target.spread.buckets.len().max(1);
    if !scenario.checks.is_empty() && buckets > 1 {
        // The audit reads back and lists through one bucket; objects in the others would be
        // reported missing. Refused rather than reported wrong.
        return Some(format!(
            "scenario checks: the post-run checks audit one bucket, and the connection file \
             spreads the run over {buckets}; run the checks with a single bucket (bucket: NAME), \
             or remove checks"
        ));
    }
    for (ci, class) in scenario.users.iter().enumerate() {
        for (ti, task) in class.tasks.iter().enumerate() {
            if task.to == Some(CopyTo::Other) && buckets < 2 {
                return Some(format!(
                    "scenario users[{ci}].tasks[{ti}].to: to: other copies into another bucket of \
                     the run's set, but the connection file names one bucket; add e.g. \
                     buckets: {{count: 2}} to the connection file, or remove to"
                ));
            }
        }
    }
    None
}

/// Pause before the first retry of a failed cleanup pass; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Listing pages counted when verifying; past this the count is unknown (`null`).
const COUNT_PAGES: usize = 1_000;
/// DeleteObjects requests cleanup keeps in flight while it lists.
const DELETES_IN_FLIGHT: usize = 8;
/// Keys per cleanup DeleteObjects request. Below S3's 1000: a loaded RadosGW took over the
/// 30 s request timeout for one 1000-key request (docs/benchmarks.md, cleanup).
const CLEANUP_BATCH_KEYS: usize = 250;

/// A run id that cannot name a prefix of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run id '{0}' may only use letters, digits, '-', '_' and '.' (at most 100), and not start with '.'")]
pub struct RunIdError(pub String);

/// The prefix every object of run `run_id` lives under: `chopsticks/<run-id>/`. The id is
/// checked so that no id names a prefix shared with another run (or the whole bucket).
pub fn key_prefix(run_id: &str) -> Result<String, RunIdError> {
    let ok = !run_id.is_empty()
        && run_id.len() <= 100
        && run_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !run_id.starts_with('.');
    if ok {
        Ok(format!("chopsticks/{run_id}/"))
    } else {
        Err(RunIdError(run_id.to_string()))
    }
}

/// [`cleanup_one`] in every bucket of the run, one after the other within `budget`; the
/// report adds them up, and is complete only when every bucket's final listing was empty.
pub async fn cleanup<D: Driver>(driver: &D, prefix: &str, budget: Duration) -> CleanupReport {
    let buckets = driver.per_bucket();
    if buckets.len() == 1 {
        return cleanup_one(driver, prefix, budget).await;
    }
    let started = Instant::now();
    let mut all = CleanupReport {
        performed: true,
        complete: true,
        remaining_objects: Some(0),
        remaining_uploads: Some(0),
        ..CleanupReport::default()
    };
    for (name, d) in buckets {
        let left = budget.saturating_sub(started.elapsed());
        let one = cleanup_one(d, prefix, left).await;
        all.complete &= one.complete;
        all.deleted_objects += one.deleted_objects;
        all.aborted_uploads += one.aborted_uploads;
        all.remaining_objects = all
            .remaining_objects
            .zip(one.remaining_objects)
            .map(|(a, b)| a + b);
        all.remaining_uploads = all
            .remaining_uploads
            .zip(one.remaining_uploads)
            .map(|(a, b)| a + b);
        all.attempts = all.attempts.max(one.attempts);
        let name = name.unwrap_or("?");
        all.errors.extend(
            one.errors
                .into_iter()
                .map(|e| format!("bucket {name}: {e}")),
        );
    }
    all.seconds = started.elapsed().as_secs_f64();
    all
}

/// Deletes every object and aborts every upload under `prefix`, then lists again to verify.
/// A pass that fails or leaves something is retried with backoff until `budget` is spent.
/// The report states only what the last listing verified.
async fn cleanup_one<D: Driver>(driver: &D, prefix: &str, budget: Duration) -> CleanupReport {
    let started = Instant::now();
    let mut report = CleanupReport {
        performed: true,
        ..CleanupReport::default()
    };
    let mut backoff = BACKOFF_FIRST;
    let versions = versioned(driver).await;
    loop {
        report.attempts += 1;
        report.errors.clear();
        let (objects, uploads) = clean_once(driver, prefix, versions, &mut report).await;
        report.remaining_objects = objects;
        report.remaining_uploads = uploads;
        report.complete = objects == Some(0) && uploads == Some(0);
        let left = budget.saturating_sub(started.elapsed());
        if report.complete || left.is_zero() {
            break;
        }
        log::warn!(
            "cleanup of {prefix}: pass {} left {} objects and {} uploads ({}); retrying in {:.1}s",
            report.attempts,
            shown(objects),
            shown(uploads),
            report
                .errors
                .first()
                .map(String::as_str)
                .unwrap_or("no error"),
            backoff.min(left).as_secs_f64()
        );
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// A count for messages: the number, or "an unknown number of".
pub fn shown(count: Option<u64>) -> String {
    count
        .map(|n| n.to_string())
        .unwrap_or_else(|| "an unknown number of".into())
}

/// How cleanup must delete in the driver's bucket: `None` by key (an unversioned bucket, or
/// one whose versioning cannot be read); `Some(bypass)` every version and delete marker by
/// id, bypassing governance retention when the bucket has object lock.
async fn versioned<D: Driver>(driver: &D) -> Option<bool> {
    match driver.bucket_features().await {
        Ok(f) if f.versioning || f.object_lock => Some(f.object_lock),
        Ok(_) => None,
        Err(e) => {
            log::debug!("cleanup: bucket versioning not read ({e}); deleting by key");
            None
        }
    }
}

/// One pass: delete, abort, verify. Returns the verified (objects, uploads) left; on a
/// versioned bucket (`versions`), "objects" are versions and delete markers.
async fn clean_once<D: Driver>(
    driver: &D,
    prefix: &str,
    versions: Option<bool>,
    report: &mut CleanupReport,
) -> (Option<u64>, Option<u64>) {
    let exists = match versions {
        Some(bypass) => delete_versions_listed(driver, prefix, bypass, report).await,
        None => delete_listed(driver, prefix, report).await,
    };
    if !exists {
        // No bucket (preparing failed before creating it): nothing was written.
        return (Some(0), Some(0));
    }
    let uploads = match driver.pending_uploads(prefix).await {
        Ok(uploads) => {
            let mut left = 0u64;
            for u in uploads {
                match driver.abort_upload(&u).await {
                    Ok(()) => report.aborted_uploads += 1,
                    Err(e) => {
                        left += 1;
                        report
                            .errors
                            .push(format!("aborting upload of {}: {e}", u.key));
                    }
                }
            }
            // Verified below by listing again.
            Some(left)
        }
        // Servers without ListMultipartUploads (e.g. the embedded demo target) have none.
        Err(e) if e.is_status(501) => Some(0),
        Err(e) => {
            report
                .errors
                .push(format!("listing multipart uploads under {prefix}: {e}"));
            None
        }
    };
    let objects = match versions {
        Some(_) => count_versions(driver, prefix, report).await,
        None => count_objects(driver, prefix, report).await,
    };
    let uploads = match uploads {
        Some(_) => match driver.pending_uploads(prefix).await {
            Ok(u) => Some(u.len() as u64),
            Err(e) if e.is_status(501) => Some(0),
            Err(e) => {
                report
                    .errors
                    .push(format!("re-listing multipart uploads under {prefix}: {e}"));
                None
            }
        },
        None => None,
    };
    (objects, uploads)
}

/// Lists `prefix` page after page (following the continuation token) while up to
/// [`DELETES_IN_FLIGHT`] DeleteObjects requests remove the pages already listed, then sweeps
/// what is left by listing from the start until a page comes back empty. The listing that
/// follows is what the report trusts; this only deletes. Stops at the first error. False when
/// the bucket does not exist.
async fn delete_listed<D: Driver>(driver: &D, prefix: &str, report: &mut CleanupReport) -> bool {
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut next: Option<String> = None;
    let mut sweeping = false;
    let mut failed = false;
    for _ in 0..100_000 {
        let page = match driver.list(prefix, 1000, next.take()).await {
            Ok(p) => p,
            Err(e) if e.code() == "NoSuchBucket" && in_flight.is_empty() => return false,
            Err(e) => {
                report.errors.push(format!("listing {prefix}: {e}"));
                break;
            }
        };
        let last_page = page.next.is_none();
        if page.keys.is_empty() && (sweeping || last_page) {
            break;
        }
        for keys in page.keys.chunks(CLEANUP_BATCH_KEYS) {
            let keys = keys.to_vec();
            in_flight.push(async move { driver.delete_many(&keys).await });
        }
        match page.next {
            Some(token) if !sweeping => next = Some(token),
            // Keys a page skipped (written or listed late) are found from the start.
            _ => sweeping = true,
        }
        // A listing from the start must not see keys whose delete is still in flight (they
        // would be deleted and counted twice), so sweeping waits for every delete first.
        // Each listed page is several batches, so the count may pass the limit until they end.
        let limit = if sweeping { 1 } else { DELETES_IN_FLIGHT };
        while in_flight.len() >= limit {
            if let Some(result) = in_flight.next().await {
                failed |= !count_deleted(result, prefix, report);
            }
        }
        if failed {
            break;
        }
    }
    while let Some(result) = in_flight.next().await {
        count_deleted(result, prefix, report);
    }
    true
}

/// Lists every version and delete marker under `prefix`, page after page, and deletes each
/// page's by version id. The count that follows is what the report trusts. Stops at the first
/// error. False when the bucket does not exist.
async fn delete_versions_listed<D: Driver>(
    driver: &D,
    prefix: &str,
    bypass_governance: bool,
    report: &mut CleanupReport,
) -> bool {
    let mut from: Option<VersionMarker> = None;
    for _ in 0..100_000 {
        let page = match driver.list_versions(prefix, 1000, from.take()).await {
            Ok(p) => p,
            Err(e) if e.code() == "NoSuchBucket" => return false,
            Err(e) => {
                report
                    .errors
                    .push(format!("listing versions under {prefix}: {e}"));
                break;
            }
        };
        let all: Vec<ObjectVersion> = page
            .versions
            .into_iter()
            .chain(page.delete_markers)
            .collect();
        for batch in all.chunks(CLEANUP_BATCH_KEYS) {
            match driver.delete_versions(batch, bypass_governance).await {
                Ok(reply) => {
                    report.deleted_objects += reply.deleted();
                    if let Some(e) = reply.failure() {
                        report
                            .errors
                            .push(format!("deleting versions under {prefix}: {e}"));
                    }
                }
                Err(e) => {
                    report
                        .errors
                        .push(format!("deleting versions under {prefix}: {e}"));
                    return true;
                }
            }
        }
        match page.next {
            Some(marker) => from = Some(marker),
            None => break,
        }
    }
    true
}

/// Counts the versions and delete markers under `prefix`, all pages; `None` when a listing
/// fails or there are more pages than [`COUNT_PAGES`].
async fn count_versions<D: Driver>(
    driver: &D,
    prefix: &str,
    report: &mut CleanupReport,
) -> Option<u64> {
    let mut count = 0u64;
    let mut from = None;
    for _ in 0..COUNT_PAGES {
        match driver.list_versions(prefix, 1000, from).await {
            Ok(page) => {
                count += (page.versions.len() + page.delete_markers.len()) as u64;
                match page.next {
                    Some(marker) => from = Some(marker),
                    None => return Some(count),
                }
            }
            Err(e) if e.code() == "NoSuchBucket" => return Some(0),
            Err(e) => {
                report
                    .errors
                    .push(format!("re-listing versions under {prefix}: {e}"));
                return None;
            }
        }
    }
    report.errors.push(format!(
        "re-listing versions under {prefix}: more than {} versions left; not counted to the end",
        COUNT_PAGES * 1000
    ));
    None
}

/// Adds a DeleteObjects result to the report; false when it failed.
fn count_deleted(result: Result<u64, OpError>, prefix: &str, report: &mut CleanupReport) -> bool {
    match result {
        Ok(n) => {
            report.deleted_objects += n;
            true
        }
        Err(e) => {
            report.errors.push(format!("deleting under {prefix}: {e}"));
            false
        }
    }
}

/// Counts the objects under `prefix`, all pages; `None` when a listing fails or there are
/// more pages than [`COUNT_PAGES`].
async fn count_objects<D: Driver>(
    driver: &D,
    prefix: &str,
    report: &mut CleanupReport,
) -> Option<u64> {
    let mut count = 0u64;
    let mut next = None;
    for _ in 0..COUNT_PAGES {
        match driver.list(prefix, 1000, next).await {
            Ok(page) => {
                count += page.keys.len() as u64;
                match page.next {
                    Some(token) => next = Some(token),
                    None => return Some(count),
                }
            }
            Err(e) if e.code() == "NoSuchBucket" => return Some(0),
            Err(e) => {
                report.errors.push(format!("re-listing {prefix}: {e}"));
                return None;
            }
        }
    }
    report.errors.push(format!(
        "re-listing {prefix}: more than {} objects left; not counted to the end",
        COUNT_PAGES * 1000
    ));
    None
}

/// The message for a run whose objects were not all removed: where they are and the
/// command that removes them.
pub fn incomplete_message(
    run_id: &str,
    prefix: &str,
    bucket: &str,
    report: &CleanupReport,
    workload_config: Option<&str>,
) -> String {
    let config = workload_config
        .map(|f| format!(" --workload-config {f}"))
        .unwrap_or_default();
    format!(
        "cleanup incomplete: {} objects and {} unfinished uploads may be left under {prefix} in bucket {bucket}; \
         remove them with: chopsticks cleanup{config} --run-id {run_id}",
        shown(report.remaining_objects),
        shown(report.remaining_uploads),
    )
}

/// Guards against two cleanups of the same earlier run at once (at start and before a run).
static RETRYING: std::sync::Mutex<BTreeSet<PathBuf>> = std::sync::Mutex::new(BTreeSet::new());

/// Runs in `state_dir` whose cleanup is owed: `interrupted` ones that never cleaned up and
/// finished ones whose cleanup was incomplete. Only runs against `target`'s endpoint and
/// bucket: another target's objects are not this coordinator's to touch.
pub fn owed_cleanups(state_dir: &Path, target: &TargetInfo) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|dir| {
            let Ok(record) = crate::results::artifacts::read_record(dir) else {
                return false;
            };
            let owed = match &record.cleanup {
                Some(c) => c.incomplete(),
                None => record.state == crate::control::RunState::Interrupted,
            };
            owed && !record.scenario.keep
                && record.target.endpoint == target.endpoint
                && record.target.bucket == target.bucket
        })
        .collect()
}

/// Cleans up after an earlier run (interrupted, or whose cleanup was incomplete) and records
/// the outcome in its run.json and events.log.
pub async fn cleanup_earlier_run<D: Driver>(driver: Arc<D>, dir: PathBuf, budget: Duration) {
    if !RETRYING
        .lock()
        .map(|mut set| set.insert(dir.clone()))
        .unwrap_or(false)
    {
        return;
    }
    if let Ok(started) = crate::results::artifacts::read_record(&dir) {
        let report = cleanup(&*driver, &started.key_prefix, budget).await;
        // The record may have changed while cleanup ran (a recovered run gains each cut
        // worker's totals): read it again under the update lock and add only the cleanup.
        let update = crate::results::artifacts::record_update();
        let mut record = crate::results::artifacts::read_record(&dir).unwrap_or(started);
        if let Ok(mut rd) = RunDir::create(&dir) {
            rd.event(&format!(
                "cleanup of an earlier run: {} objects deleted, {} uploads aborted, {} objects and {} uploads left, {} errors",
                report.deleted_objects,
                report.aborted_uploads,
                shown(report.remaining_objects),
                shown(report.remaining_uploads),
                report.errors.len()
            ));
            for e in &report.errors {
                rd.event(&format!("cleanup error: {e}"));
            }
            if report.complete {
                log::info!(
                    "run {}: objects left earlier are now cleaned up",
                    record.run_id
                );
            } else {
                log::warn!(
                    "run {}: {}",
                    record.run_id,
                    incomplete_message(
                        &record.run_id,
                        &record.key_prefix,
                        &record.target.bucket,
                        &report,
                        None
                    )
                );
            }
            // Counts of earlier passes add up; the state is the last pass's.
            if let Some(before) = &record.cleanup {
                let mut merged = report.clone();
                merged.deleted_objects += before.deleted_objects;
                merged.aborted_uploads += before.aborted_uploads;
                merged.attempts += before.attempts;
                record.cleanup = Some(merged);
            } else {
                record.cleanup = Some(report);
            }
            let _ = rd.write_json(crate::results::artifacts::RUN_JSON, &record);
            drop(update);
            crate::present::report::write_logged(&dir);
        }
    }
    if let Ok(mut set) = RETRYING.lock() {
        set.remove(&dir);
    }
}

/// Turns a failed preparation request into a message that says what to fix.
pub fn explain(doing: &str, e: &OpError, target: &TargetInfo) -> String {
    let endpoint = &target.endpoint;
    let bucket = &target.bucket;
    let fix = match &e.kind {
        FailureKind::Connection => format!(
            "cannot connect to {endpoint}; check the endpoint URL and that RadosGW is reachable from this machine"
        ),
        FailureKind::Timeout => format!(
            "{endpoint} did not answer in time; check that RadosGW is up and not overloaded"
        ),
        FailureKind::Tls(TlsCause::UnknownCa) => format!(
            "TLS: the certificate of {endpoint} is signed by a CA this machine does not trust (unknown CA); \
             set driver_config.ca_file (or ca_pem) to the CA that signed the gateway's certificate, \
             or insecure: true to skip verification"
        ),
        FailureKind::Tls(TlsCause::NameMismatch) => format!(
            "TLS: the certificate of {endpoint} is not valid for that host name (name mismatch); \
             write the endpoint with a name the certificate lists, reissue the certificate for this name, \
             or set driver_config.insecure: true to skip verification"
        ),
        FailureKind::Tls(TlsCause::Expired) => format!(
            "TLS: the certificate of {endpoint} has expired or is not valid yet; renew the gateway's \
             certificate (and check this machine's clock), or set driver_config.insecure: true to skip verification"
        ),
        FailureKind::Tls(TlsCause::Handshake) => format!(
            "TLS handshake with {endpoint} failed; check that the gateway serves https on that port \
             (or write the endpoint as http://)"
        ),
        FailureKind::Http { status: 403, code } if code == "InvalidAccessKeyId" => format!(
            "{endpoint} does not know this access key; check the access key (s3-access-key)"
        ),
        FailureKind::Http { status: 403, code } if code == "SignatureDoesNotMatch" => format!(
            "{endpoint} rejected the request signature; check the secret key (s3-secret-key)"
        ),
        FailureKind::Http { status: 403, .. } if e.detail.contains("create") || doing.contains("bucket") => format!(
            "access denied for bucket '{bucket}': it is missing and these credentials may not create it, \
             or it belongs to another user; create the bucket or use credentials that may (or check the keys)"
        ),
        FailureKind::Http { code, .. } if code == "TooManyBuckets" => format!(
            "bucket '{bucket}' does not exist and this user may not create buckets (TooManyBuckets); \
             create the bucket first or raise the user's bucket quota"
        ),
        FailureKind::Http { status: 403, .. } => format!(
            "access denied on bucket '{bucket}'; check the credentials and the bucket policy"
        ),
        _ => format!("{e}"),
    };
    format!("{doing}: {fix} ({e})")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::load::content::ContentSeed;
    use crate::load::driver::{ByteRange, ChunkSink, GetReply, ListPage, PendingUpload};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A bucket of `objects` keys under the prefix whose deletes always fail, and whose
    /// first `failing_lists` listings are refused.
    pub(in crate::cluster::coordinator) struct Stuck {
        pub(in crate::cluster::coordinator) objects: u64,
        pub(in crate::cluster::coordinator) failing_lists: AtomicU32,
        pub(in crate::cluster::coordinator) deletes_fail: bool,
    }

    #[test]
    fn tls_failures_name_the_cause_and_the_fix() {
        let target = TargetInfo {
            endpoint: "https://rgw:443".into(),
            bucket: "b".into(),
            region: "us-east-1".into(),
            driver: crate::s3_config::DriverKind::Lean,
            driver_config: Default::default(),
            embedded: false,
            spread: Default::default(),
        };
        let says = |cause: TlsCause, needles: &[&str]| {
            let e = OpError::new(FailureKind::Tls(cause), "handshake");
            let m = explain("checking bucket", &e, &target);
            for n in needles {
                assert!(m.contains(n), "{cause:?}: {m}");
            }
        };
        says(
            TlsCause::UnknownCa,
            &["unknown CA", "driver_config.ca_file", "insecure: true"],
        );
        says(
            TlsCause::NameMismatch,
            &["name mismatch", "host name", "insecure: true"],
        );
        says(TlsCause::Expired, &["expired", "renew", "clock"]);
        says(TlsCause::Handshake, &["https", "http://"]);
    }

    fn refused() -> OpError {
        OpError::new(FailureKind::Connection, "connection refused")
    }

    impl Driver for Stuck {
        async fn put(&self, _: &str, _: ContentSeed, _: u64) -> Result<(), OpError> {
            unreachable!("cleanup never writes")
        }
        async fn get(
            &self,
            _: &str,
            _: Option<ByteRange>,
            _: u64,
            _: &mut dyn ChunkSink,
        ) -> Result<GetReply, OpError> {
            unreachable!("cleanup never reads")
        }
        async fn head(&self, _: &str) -> Result<u64, OpError> {
            unreachable!("cleanup never heads")
        }
        async fn delete(&self, _: &str) -> Result<(), OpError> {
            unreachable!("cleanup deletes in batches")
        }
        async fn list(
            &self,
            prefix: &str,
            max_keys: u32,
            continuation: Option<String>,
        ) -> Result<ListPage, OpError> {
            if self
                .failing_lists
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(refused());
            }
            let from: u64 = continuation.map(|c| c.parse().unwrap_or(0)).unwrap_or(0);
            let to = (from + max_keys as u64).min(self.objects);
            Ok(ListPage {
                keys: (from..to).map(|i| format!("{prefix}k{i}")).collect(),
                next: (to < self.objects).then(|| to.to_string()),
            })
        }
        async fn multipart_put(
            &self,
            _: &str,
            _: ContentSeed,
            _: u64,
            _: u64,
            _: u32,
        ) -> Result<(), OpError> {
            unreachable!("cleanup never writes")
        }
        async fn copy(&self, _: &str, _: &str, _: u64) -> Result<(), OpError> {
            unreachable!("cleanup never copies")
        }
        async fn ensure_bucket(&self) -> Result<BucketState, OpError> {
            unreachable!("cleanup never creates the bucket")
        }
        fn bucket(&self) -> &str {
            "stuck"
        }
        async fn delete_many(&self, keys: &[String]) -> Result<u64, OpError> {
            if self.deletes_fail {
                Err(OpError::new(
                    FailureKind::Http {
                        status: 403,
                        code: "AccessDenied".into(),
                    },
                    "denied",
                ))
            } else {
                Ok(keys.len() as u64)
            }
        }
        async fn pending_uploads(&self, _: &str) -> Result<Vec<PendingUpload>, OpError> {
            Ok(Vec::new())
        }
        async fn abort_upload(&self, _: &PendingUpload) -> Result<(), OpError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn failed_deletes_leave_the_true_count_and_an_incomplete_cleanup() {
        let stuck = Stuck {
            objects: 2500,
            failing_lists: AtomicU32::new(0),
            deletes_fail: true,
        };
        let report = cleanup(&stuck, "chopsticks/r/", Duration::ZERO).await;
        assert!(report.performed && !report.complete && report.incomplete());
        // Counted over all three pages, not the first page's 1000.
        assert_eq!(report.remaining_objects, Some(2500));
        assert_eq!(report.remaining_uploads, Some(0));
        assert_eq!(report.deleted_objects, 0);
        assert_eq!(report.attempts, 1);
        assert!(
            report.errors[0].contains("deleting under chopsticks/r/"),
            "{report:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_listing_is_unknown_then_retried_until_verified() {
        // Every listing of the first pass fails (the delete round and the verification).
        let flaky = Stuck {
            objects: 0,
            failing_lists: AtomicU32::new(2),
            deletes_fail: false,
        };
        let report = cleanup(&flaky, "chopsticks/r/", Duration::from_secs(30)).await;
        assert!(report.complete, "{report:?}");
        assert_eq!(report.attempts, 2);
        assert_eq!(report.remaining_objects, Some(0));
        assert!(
            report.errors.is_empty(),
            "errors are the last pass's: {report:?}"
        );

        let down = Stuck {
            objects: 0,
            failing_lists: AtomicU32::new(u32::MAX),
            deletes_fail: false,
        };
        let report = cleanup(&down, "chopsticks/r/", Duration::ZERO).await;
        assert!(!report.complete);
        assert_eq!(report.remaining_objects, None, "unknown, never 0");
    }

    #[test]
    fn run_ids_that_could_name_another_prefix_are_refused() {
        assert_eq!(
            key_prefix("20261122T101500Z-3f9c2a").unwrap(),
            "chopsticks/20261122T101500Z-3f9c2a/"
        );
        for bad in ["", ".", "..", "../x", "a/b", "a b", &"x".repeat(101)] {
            assert!(key_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
