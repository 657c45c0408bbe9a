//! The native driver: aws-sdk-s3 with path-style addressing, a custom endpoint, SigV4,
//! one shared client (one connection pool) for every user, and SDK retries off by default.
//!
//! Request bodies are generated while they stream ([`GeneratedBody`]) and GET bodies are
//! verified while they stream, so no object is ever held in memory whole. Checksums are
//! computed only when S3 requires them: with the SDK's default (always), a streamed PUT
//! fails on RadosGW 16 with `XAmzContentSHA256Mismatch`.

use super::tls::TlsSetupError;
use super::{
    encode_key, BatchDeleted, BodyMeter, BucketFeatures, BucketState, ByteRange, ChunkSink,
    DelimitedPage, Driver, FailureKind, GetReply, KeyError, ListPage, ObjectVersion, OpError,
    PendingUpload, Tags, VersionMarker, VersionPage,
};
use crate::load::content::{ContentSeed, GeneratedBody};
use crate::load::scenario::{LockMode, ObjectLock};
use crate::s3_config::{DriverConfig, WorkloadConfig};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, DefaultRetention, Delete,
    ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
    ObjectLockRule, Tag, Tagging, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use futures::{StreamExt, TryStreamExt};
use std::future::Future;
use std::time::Instant;

/// The aws-sdk-s3 driver. Cheap to share: clones of the inner client share one pool.
pub struct AwsDriver {
    client: Client,
    bucket: String,
    tuning: DriverConfig,
}

impl AwsDriver {
    pub fn new(config: &WorkloadConfig) -> Result<AwsDriver, TlsSetupError> {
        let tuning = config.driver_config.clone();
        let credentials = Credentials::new(
            config.access_key.clone(),
            config.secret_key.expose().to_string(),
            None,
            None,
            "chopsticks-workload-config",
        );
        let retry = if tuning.retries == 0 {
            RetryConfig::disabled()
        } else {
            RetryConfig::standard().with_max_attempts(tuning.retries + 1)
        };
        let mut sdk_config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&config.endpoint)
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(tuning.path_style)
            .retry_config(retry)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(tuning.connect_timeout())
                    .build(),
            )
            // Our own per-request deadline (scaled to size) covers slow streams.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        // The SDK's own client trusts the system's roots only; extra CAs or no verification
        // need ours.
        if super::tls::customised(&tuning) {
            sdk_config = sdk_config.http_client(super::tls::sdk_http_client(&tuning)?);
        }
        Ok(AwsDriver {
            client: Client::from_conf(sdk_config.build()),
            bucket: config.bucket.clone(),
            tuning,
        })
    }

    /// The same client (and its connection pool) on another bucket.
    pub(super) fn with_bucket(&self, bucket: &str) -> AwsDriver {
        AwsDriver {
            client: self.client.clone(),
            bucket: bucket.to_string(),
            tuning: self.tuning.clone(),
        }
    }

    /// Sends a GetObject (of a key, a range or a version) and streams its body into `sink`
    /// under the deadline for `expected_len` bytes.
    async fn stream_get(
        &self,
        req: aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
        expected_len: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<GetReply, OpError> {
        self.deadline(expected_len, async {
            let mut meter = BodyMeter::new(Instant::now());
            let mut body = req.send().await.map_err(classify)?.body;
            while let Some(chunk) = body.next().await {
                meter.chunk(&chunk.map_err(body_error)?, sink);
            }
            Ok(meter.reply())
        })
        .await
    }

    /// Runs `fut` under the deadline for a request moving `bytes`.
    async fn deadline<T>(
        &self,
        bytes: u64,
        fut: impl Future<Output = Result<T, OpError>>,
    ) -> Result<T, OpError> {
        super::with_deadline(&self.tuning, bytes, fut).await
    }
}

/// A request body that regenerates itself if the SDK needs to resend it.
fn generated(seed: ContentSeed, offset: u64, len: u64) -> ByteStream {
    ByteStream::new(SdkBody::retryable(move || {
        SdkBody::from_body_1_x(GeneratedBody::new(seed, offset, len))
    }))
}

/// Sorts an SDK error into the kinds statistics count.
fn classify<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> OpError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) => OpError::new(FailureKind::Timeout, "SDK timeout"),
        SdkError::DispatchFailure(d) => {
            let detail = error_chain(&err);
            if let Some(tls) = super::tls::failure(&err, &detail) {
                tls
            } else if d.is_timeout() {
                OpError::new(FailureKind::Timeout, detail)
            } else if d.is_io() {
                OpError::new(FailureKind::Connection, detail)
            } else {
                OpError::new(FailureKind::Other, detail)
            }
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = s.err().code().unwrap_or("").to_string();
            let message = s.err().message().unwrap_or("").to_string();
            let code = if code.is_empty() {
                status_reason(status).to_string()
            } else {
                code
            };
            OpError::new(FailureKind::Http { status, code }, message)
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            if status >= 300 {
                OpError::new(
                    FailureKind::Http {
                        status,
                        code: status_reason(status).to_string(),
                    },
                    error_chain(&err),
                )
            } else {
                OpError::new(FailureKind::Other, error_chain(&err))
            }
        }
        _ => OpError::new(FailureKind::Other, error_chain(&err)),
    }
}

/// HEAD responses and some errors carry no S3 error code; name the status instead.
pub(super) fn status_reason(status: u16) -> &'static str {
    match status {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        _ => "",
    }
}

pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The S3 `DeleteObjects` reply's per-key errors.
fn key_errors(errors: &[aws_sdk_s3::types::Error]) -> Vec<KeyError> {
    errors
        .iter()
        .map(|e| KeyError {
            key: e.key().unwrap_or("").to_string(),
            code: e.code().unwrap_or("").to_string(),
            message: e.message().unwrap_or("").to_string(),
        })
        .collect()
}

fn body_error(e: impl std::error::Error) -> OpError {
    let text = error_chain(&e);
    let kind = if text.contains("timed out") || text.contains("timeout") {
        FailureKind::Timeout
    } else {
        FailureKind::Connection
    };
    OpError::new(kind, format!("reading body: {text}"))
}

impl Driver for AwsDriver {
    async fn put(&self, key: &str, seed: ContentSeed, size: u64) -> Result<(), OpError> {
        self.deadline(size, async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_length(size as i64)
                .body(generated(seed, 0, size))
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        expected_len: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<GetReply, OpError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(r) = range {
            req = req.range(r.header());
        }
        self.stream_get(req, expected_len, sink).await
    }

    async fn head(&self, key: &str) -> Result<u64, OpError> {
        self.deadline(0, async {
            let out = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(classify)?;
            Ok(out.content_length().unwrap_or(0).max(0) as u64)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), OpError> {
        self.deadline(0, async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        max_keys: u32,
        continuation: Option<String>,
    ) -> Result<ListPage, OpError> {
        self.deadline(0, async {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(max_keys as i32)
                .set_continuation_token(continuation)
                .send()
                .await
                .map_err(classify)?;
            let keys = out
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect();
            let next = if out.is_truncated().unwrap_or(false) {
                out.next_continuation_token().map(str::to_string)
            } else {
                None
            };
            Ok(ListPage { keys, next })
        })
        .await
    }

    async fn multipart_put(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
        part_size: u64,
        parts_in_flight: u32,
    ) -> Result<(), OpError> {
        let created = self
            .deadline(0, async {
                self.client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| OpError::new(FailureKind::Other, "no upload id in response"))?
            .to_string();
        let parts = size.div_ceil(part_size).max(1);
        let upload = futures::stream::iter(0..parts)
            .map(|i| {
                let offset = i * part_size;
                let len = part_size.min(size - offset);
                let upload_id = upload_id.clone();
                async move {
                    let out = self
                        .deadline(len, async {
                            self.client
                                .upload_part()
                                .bucket(&self.bucket)
                                .key(key)
                                .upload_id(upload_id)
                                .part_number(i as i32 + 1)
                                .content_length(len as i64)
                                .body(generated(seed, offset, len))
                                .send()
                                .await
                                .map_err(classify)
                        })
                        .await?;
                    Ok::<_, OpError>(
                        CompletedPart::builder()
                            .part_number(i as i32 + 1)
                            .set_e_tag(out.e_tag().map(str::to_string))
                            .build(),
                    )
                }
            })
            .buffered(parts_in_flight.max(1) as usize)
            .try_collect::<Vec<_>>()
            .await;
        let result = match upload {
            Ok(parts) => {
                self.deadline(0, async {
                    self.client
                        .complete_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(&upload_id)
                        .multipart_upload(
                            CompletedMultipartUpload::builder()
                                .set_parts(Some(parts))
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(classify)
                })
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let pending = PendingUpload {
                    key: key.to_string(),
                    upload_id,
                };
                if let Err(abort) = self.abort_upload(&pending).await {
                    log::warn!("could not abort failed multipart upload of {key}: {abort} (cleanup will retry)");
                }
                Err(e)
            }
        }
    }

    async fn copy(&self, source_key: &str, key: &str, size: u64) -> Result<(), OpError> {
        self.deadline(size, async {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(key)
                .copy_source(format!("{}/{}", self.bucket, encode_key(source_key)))
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn ensure_bucket(&self) -> Result<BucketState, OpError> {
        let head = self
            .deadline(0, async {
                self.client
                    .head_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await;
        match head {
            Ok(_) => Ok(BucketState::Existed),
            // HEAD answers carry no S3 error code; a listing says whether the key, the
            // signature or the permission is wrong.
            Err(e) if e.is_status(403) || e.is_status(400) => match self.list("", 1, None).await {
                Err(precise) => Err(precise),
                Ok(_) => Err(e),
            },
            Err(e) if e.is_status(404) => {
                self.deadline(0, async {
                    self.client
                        .create_bucket()
                        .bucket(&self.bucket)
                        .send()
                        .await
                        .map_err(classify)
                })
                .await?;
                Ok(BucketState::Created)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64, OpError> {
        if keys.is_empty() {
            return Ok(0);
        }
        match self.delete_batch(keys).await {
            Ok(reply) => match reply.failure() {
                Some(e) => Err(e),
                None => Ok(reply.deleted()),
            },
            // Servers without multi-object delete get one DELETE per key.
            Err(e) if e.is_status(501) || e.is_status(400) => {
                let deleted = futures::stream::iter(keys.iter().cloned())
                    .map(|k| async move { self.delete(&k).await })
                    .buffer_unordered(16)
                    .try_fold(0u64, |n, ()| async move { Ok(n + 1) })
                    .await?;
                Ok(deleted)
            }
            Err(e) => Err(e),
        }
    }

    async fn list_delimited(
        &self,
        prefix: &str,
        delimiter: &str,
        max_keys: u32,
    ) -> Result<DelimitedPage, OpError> {
        self.deadline(0, async {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .delimiter(delimiter)
                .max_keys(max_keys as i32)
                .send()
                .await
                .map_err(classify)?;
            Ok(DelimitedPage {
                keys: out
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string))
                    .collect(),
                common_prefixes: out
                    .common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string))
                    .collect(),
            })
        })
        .await
    }

    async fn put_tagging(&self, key: &str, tags: &[(String, String)]) -> Result<(), OpError> {
        let set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .and_then(|set| Tagging::builder().set_tag_set(Some(set)).build())
            .map_err(|e| OpError::new(FailureKind::Other, e.to_string()))?;
        self.deadline(0, async {
            self.client
                .put_object_tagging()
                .bucket(&self.bucket)
                .key(key)
                .tagging(set)
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn get_tagging(&self, key: &str) -> Result<Tags, OpError> {
        self.deadline(0, async {
            let out = self
                .client
                .get_object_tagging()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(classify)?;
            Ok(out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect())
        })
        .await
    }

    async fn delete_batch(&self, keys: &[String]) -> Result<BatchDeleted, OpError> {
        let objects: Vec<ObjectIdentifier> = keys
            .iter()
            .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| OpError::new(FailureKind::Other, e.to_string()))?;
        let out = self
            .deadline(0, async {
                self.client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await?;
        Ok(BatchDeleted {
            requested: keys.len() as u64,
            errors: key_errors(out.errors()),
        })
    }

    async fn put_versioned(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
    ) -> Result<Option<String>, OpError> {
        self.deadline(size, async {
            let out = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_length(size as i64)
                .body(generated(seed, 0, size))
                .send()
                .await
                .map_err(classify)?;
            Ok(out.version_id().map(str::to_string))
        })
        .await
    }

    async fn get_version(
        &self,
        key: &str,
        version_id: &str,
        expected_len: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<GetReply, OpError> {
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .version_id(version_id);
        self.stream_get(req, expected_len, sink).await
    }

    async fn delete_version(&self, key: &str, version_id: &str) -> Result<(), OpError> {
        self.deadline(0, async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .version_id(version_id)
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn list_versions(
        &self,
        prefix: &str,
        max_keys: u32,
        from: Option<VersionMarker>,
    ) -> Result<VersionPage, OpError> {
        let (key_marker, version_marker) = match from {
            Some((k, v)) => (Some(k), v),
            None => (None, None),
        };
        self.deadline(0, async {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(max_keys as i32)
                .set_key_marker(key_marker)
                .set_version_id_marker(version_marker)
                .send()
                .await
                .map_err(classify)?;
            let versions = out
                .versions()
                .iter()
                .filter_map(|v| {
                    Some(ObjectVersion {
                        key: v.key()?.to_string(),
                        version_id: v.version_id().unwrap_or("null").to_string(),
                    })
                })
                .collect();
            let delete_markers = out
                .delete_markers()
                .iter()
                .filter_map(|v| {
                    Some(ObjectVersion {
                        key: v.key()?.to_string(),
                        version_id: v.version_id().unwrap_or("null").to_string(),
                    })
                })
                .collect();
            let next = match (out.is_truncated(), out.next_key_marker()) {
                (Some(true), Some(k)) => Some((
                    k.to_string(),
                    out.next_version_id_marker().map(str::to_string),
                )),
                _ => None,
            };
            Ok(VersionPage {
                versions,
                delete_markers,
                next,
            })
        })
        .await
    }

    async fn delete_versions(
        &self,
        versions: &[ObjectVersion],
        bypass_governance: bool,
    ) -> Result<BatchDeleted, OpError> {
        let objects: Vec<ObjectIdentifier> = versions
            .iter()
            .filter_map(|v| {
                ObjectIdentifier::builder()
                    .key(&v.key)
                    .version_id(&v.version_id)
                    .build()
                    .ok()
            })
            .collect();
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| OpError::new(FailureKind::Other, e.to_string()))?;
        let out = self
            .deadline(0, async {
                let mut req = self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete);
                if bypass_governance {
                    req = req.bypass_governance_retention(true);
                }
                req.send().await.map_err(classify)
            })
            .await?;
        Ok(BatchDeleted {
            requested: versions.len() as u64,
            errors: key_errors(out.errors()),
        })
    }

    async fn bucket_features(&self) -> Result<BucketFeatures, OpError> {
        self.deadline(0, async {
            let versioning = self
                .client
                .get_bucket_versioning()
                .bucket(&self.bucket)
                .send()
                .await
                .map_err(classify)?;
            let lock = self
                .client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send()
                .await
                .map_err(classify);
            let object_lock = match lock {
                Ok(out) => {
                    out.object_lock_configuration()
                        .and_then(|c| c.object_lock_enabled())
                        == Some(&ObjectLockEnabled::Enabled)
                }
                // A bucket without object lock has no configuration to read.
                Err(e) if e.is_status(404) && e.code() != "NoSuchBucket" => false,
                Err(e) => return Err(e),
            };
            Ok(BucketFeatures {
                versioning: versioning.status() == Some(&BucketVersioningStatus::Enabled),
                object_lock,
            })
        })
        .await
    }

    async fn ensure_versioned_bucket(
        &self,
        lock: Option<ObjectLock>,
    ) -> Result<BucketState, OpError> {
        let head = self
            .deadline(0, async {
                self.client
                    .head_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await;
        match head {
            Ok(_) => return Ok(BucketState::Existed),
            Err(e) if e.is_status(404) => {}
            Err(e) if e.is_status(403) || e.is_status(400) => {
                return match self.list("", 1, None).await {
                    Err(precise) => Err(precise),
                    Ok(_) => Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        self.deadline(0, async {
            self.client
                .create_bucket()
                .bucket(&self.bucket)
                .object_lock_enabled_for_bucket(lock.is_some())
                .send()
                .await
                .map_err(classify)?;
            self.client
                .put_bucket_versioning()
                .bucket(&self.bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map_err(classify)?;
            if let Some(lock) = lock {
                let mode = match lock.mode {
                    LockMode::Governance => ObjectLockRetentionMode::Governance,
                    LockMode::Compliance => ObjectLockRetentionMode::Compliance,
                };
                self.client
                    .put_object_lock_configuration()
                    .bucket(&self.bucket)
                    .object_lock_configuration(
                        ObjectLockConfiguration::builder()
                            .object_lock_enabled(ObjectLockEnabled::Enabled)
                            .rule(
                                ObjectLockRule::builder()
                                    .default_retention(
                                        DefaultRetention::builder()
                                            .mode(mode)
                                            .days(lock.days() as i32)
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(classify)?;
            }
            Ok(BucketState::Created)
        })
        .await
    }

    async fn copy_from(
        &self,
        source_bucket: &str,
        source_key: &str,
        key: &str,
        size: u64,
    ) -> Result<(), OpError> {
        self.deadline(size, async {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(key)
                .copy_source(format!("{source_bucket}/{}", encode_key(source_key)))
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, OpError> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let page = self
                .deadline(0, async {
                    self.client
                        .list_multipart_uploads()
                        .bucket(&self.bucket)
                        .prefix(prefix)
                        .set_key_marker(key_marker.clone())
                        .set_upload_id_marker(id_marker.clone())
                        .send()
                        .await
                        .map_err(classify)
                })
                .await?;
            for u in page.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                    out.push(PendingUpload {
                        key: key.to_string(),
                        upload_id: id.to_string(),
                    });
                }
            }
            if !page.is_truncated().unwrap_or(false) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(out);
            }
        }
    }

    async fn abort_upload(&self, upload: &PendingUpload) -> Result<(), OpError> {
        self.deadline(0, async {
            self.client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&upload.key)
                .upload_id(&upload.upload_id)
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::driver::tests::{
        assert_request_futures_within, request_future_sizes, unused_target,
    };

    /// Bytes each aws-sdk request future may take. Measured on x86_64 (aws-sdk-s3 of
    /// Cargo.lock): put 29320, get 20576, head 20312, delete 17048, list 17368, multipart_put
    /// 25008, copy 27776. They are this large because the SDK's orchestrator futures are;
    /// `AnyDriver` and the lean driver box them, so only requests in flight pay for them.
    const AWS_REQUEST_MAX: &[(&str, usize)] = &[
        ("put", 40960),
        ("get", 32768),
        ("head", 32768),
        ("delete", 32768),
        ("list", 32768),
        ("multipart_put", 40960),
        ("copy", 40960),
        ("delete_batch", 40960),
        ("list_delimited", 40960),
        ("put_tagging", 40960),
        ("get_tagging", 40960),
    ];

    #[test]
    fn request_futures_stay_within_their_bounds() {
        let driver = AwsDriver::new(&unused_target(crate::s3_config::DriverKind::AwsSdk)).unwrap();
        assert_request_futures_within("aws-sdk", &request_future_sizes(&driver), AWS_REQUEST_MAX);
    }
}
