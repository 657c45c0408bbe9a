//! Test-bucket removal for the integration-test support code (`common/` includes it with
//! `#[path]`; `cluster/` and `obs/` use it through `common`).

use chopsticks::load::driver::{AwsDriver, Driver};
use chopsticks::s3_config::WorkloadConfig;

/// Empties the bucket (objects and unfinished uploads) and deletes it; a missing bucket is fine.
pub async fn remove_bucket(config: &WorkloadConfig) -> Result<(), String> {
    let driver = AwsDriver::new(config).map_err(|e| e.to_string())?;
    for _ in 0..1000 {
        let page = match driver.list("", 1000, None).await {
            Ok(p) => p,
            Err(e) if e.is_status(404) => return Ok(()),
            Err(e) => return Err(format!("listing: {e}")),
        };
        if page.keys.is_empty() {
            break;
        }
        driver
            .delete_many(&page.keys)
            .await
            .map_err(|e| format!("deleting: {e}"))?;
    }
    // A versioned (or object-locked) bucket keeps versions and delete markers after its keys
    // are deleted: remove those too, past governance retention.
    if let Ok(f) = driver.bucket_features().await {
        if f.versioning || f.object_lock {
            for _ in 0..1000 {
                let page = driver
                    .list_versions("", 1000, None)
                    .await
                    .map_err(|e| format!("listing versions: {e}"))?;
                let all: Vec<_> = page
                    .versions
                    .into_iter()
                    .chain(page.delete_markers)
                    .collect();
                if all.is_empty() {
                    break;
                }
                let reply = driver
                    .delete_versions(&all, f.object_lock)
                    .await
                    .map_err(|e| format!("deleting versions: {e}"))?;
                if let Some(e) = reply.failure() {
                    return Err(format!("deleting versions: {e}"));
                }
            }
        }
    }
    for upload in driver.pending_uploads("").await.unwrap_or_default() {
        let _ = driver.abort_upload(&upload).await;
    }
    // The library's driver never deletes buckets; this one call uses the SDK directly.
    let sdk = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(&config.endpoint)
        .region(aws_sdk_s3::config::Region::new(config.region.clone()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            config.access_key.clone(),
            config.secret_key.expose().to_string(),
            None,
            None,
            "chopsticks-tests",
        ))
        .force_path_style(true)
        .build();
    match aws_sdk_s3::Client::from_conf(sdk)
        .delete_bucket()
        .bucket(&config.bucket)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(()),
        Err(e) => Err(format!("deleting bucket: {e:?}")),
    }
}

/// [`remove_bucket`] for a `Drop`: Drop cannot await, and may run inside a test's runtime, so
/// the bucket is removed from a thread with a runtime of its own. A failure is only noted.
pub fn remove_bucket_on_drop(config: &WorkloadConfig) {
    let owned = config.clone();
    let removed = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(remove_bucket(&owned)))
    })
    .join();
    if let Ok(Ok(Err(e))) = removed {
        eprintln!("note: could not remove test bucket {}: {e}", config.bucket);
    }
}
