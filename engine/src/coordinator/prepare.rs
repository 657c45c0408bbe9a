//! Before and after the load: check credentials and bucket, prefill shared objects, and
//! delete everything the run created.
//!
//! Cleanup works by prefix, not by remembering keys: every object of a run lives under
//! `chopsticks/<run-id>/`, so objects written by a worker that died, or by a request cut off
//! mid-flight, are found and deleted too. Unfinished multipart uploads are aborted the same way.

use crate::artifacts::{CleanupReport, PrepareReport};
use crate::driver::{BucketState, Driver, FailureKind, OpError};
use crate::protocol::RunSpec;
use crate::user::Program;
use crate::workload::TargetInfo;
use futures::StreamExt;
use std::time::Instant;

/// Prefill requests in flight at once.
const PREFILL_CONCURRENCY: usize = 32;

/// Checks the bucket (creating it if missing) and writes the prefill pool.
pub async fn prepare<D: Driver>(
    driver: &D,
    spec: &RunSpec,
    target: &TargetInfo,
) -> Result<PrepareReport, String> {
    let started = Instant::now();
    let bucket = driver
        .ensure_bucket()
        .await
        .map_err(|e| explain("checking bucket", &e, target))?;
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
            return Err(format!(
                "prefill failed: {failed} of {objects} objects could not be written; first error: {}",
                explain("writing prefill objects", &e, target)
            ));
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

/// Deletes every object and aborts every upload under the run's prefix.
pub async fn cleanup<D: Driver>(driver: &D, spec: &RunSpec) -> CleanupReport {
    let started = Instant::now();
    let mut report = CleanupReport {
        performed: true,
        ..CleanupReport::default()
    };
    let prefix = spec.key_prefix.as_str();
    // Each pass lists from the start: deleting while paginating would skip keys.
    for _ in 0..100_000 {
        let page = match driver.list(prefix, 1000, None).await {
            Ok(p) => p,
            // No bucket (preparing failed before creating it): nothing was written.
            Err(e) if e.code() == "NoSuchBucket" => {
                report.seconds = started.elapsed().as_secs_f64();
                return report;
            }
            Err(e) => {
                report.errors.push(format!("listing {prefix}: {e}"));
                break;
            }
        };
        if page.keys.is_empty() {
            break;
        }
        match driver.delete_many(&page.keys).await {
            Ok(n) => report.deleted_objects += n,
            Err(e) => {
                report.errors.push(format!("deleting under {prefix}: {e}"));
                break;
            }
        }
    }
    match driver.pending_uploads(prefix).await {
        Ok(uploads) => {
            for u in uploads {
                match driver.abort_upload(&u).await {
                    Ok(()) => report.aborted_uploads += 1,
                    Err(e) => report
                        .errors
                        .push(format!("aborting upload of {}: {e}", u.key)),
                }
            }
        }
        // Servers without ListMultipartUploads (e.g. the embedded demo target) have none to abort.
        Err(e) if e.is_status(501) => {}
        Err(e) => report
            .errors
            .push(format!("listing multipart uploads under {prefix}: {e}")),
    }
    report.remaining_objects = match driver.list(prefix, 1000, None).await {
        Ok(p) => p.keys.len() as u64,
        Err(e) => {
            report.errors.push(format!("re-listing {prefix}: {e}"));
            0
        }
    };
    report.seconds = started.elapsed().as_secs_f64();
    report
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
