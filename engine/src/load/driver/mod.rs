//! S3 drivers: the client implementations that issue requests.
//!
//! [`Driver`] is the seam between what users do (scenario tasks) and how requests are made.
//! It is generic (no boxing per request); [`AnyDriver`] picks an implementation at run time
//! from the connection file's `driver:`. Failures come back as [`OpError`], already grouped
//! into the kinds the statistics count (HTTP status + S3 code, timeout, connection, integrity).

mod aws;
mod fleet;
mod lean;
mod resolve;
mod s5cmd;
mod tls;

pub use aws::AwsDriver;
pub use fleet::{Fleet, Route};
pub use lean::{LeanDriver, LeanError};
pub use s5cmd::{S5cmdDriver, S5cmdError};
pub use tls::{TlsCause, TlsSetupError};

use crate::load::content::ContentSeed;
use crate::load::scenario::ObjectLock;
use crate::s3_config::{DriverKind, WorkloadConfig};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// How a request failed, as counted in statistics and `failures.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The server answered with an error status (and S3 error code when it sent one).
    Http { status: u16, code: String },
    /// No complete answer within the request's deadline.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The TLS handshake failed: the gateway's certificate was refused, and why.
    Tls(TlsCause),
    /// The body read back is not what was written.
    Integrity,
    /// Anything else (a malformed response, a client-side construction error).
    Other,
    /// The engine itself failed: a virtual user's task panicked and the user died.
    Internal,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Http { status, code } if code.is_empty() => write!(f, "HTTP {status}"),
            FailureKind::Http { status, code } => write!(f, "HTTP {status} {code}"),
            FailureKind::Timeout => f.write_str("timeout"),
            FailureKind::Connection => f.write_str("connection"),
            FailureKind::Tls(cause) => write!(f, "TLS {cause}"),
            FailureKind::Integrity => f.write_str("integrity"),
            FailureKind::Other => f.write_str("other"),
            FailureKind::Internal => f.write_str("internal"),
        }
    }
}

/// A failed operation: its kind and a human-readable detail (never containing credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub kind: FailureKind,
    pub detail: String,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.kind, self.detail)
        }
    }
}

impl std::error::Error for OpError {}

impl OpError {
    pub fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        OpError {
            kind,
            detail: detail.into(),
        }
    }

    pub fn is_status(&self, wanted: u16) -> bool {
        matches!(self.kind, FailureKind::Http { status, .. } if status == wanted)
    }

    pub fn code(&self) -> &str {
        match &self.kind {
            FailureKind::Http { code, .. } => code,
            _ => "",
        }
    }
}

/// Receives a GET body chunk by chunk (to verify or just count it) without buffering it.
pub trait ChunkSink: Send {
    fn chunk(&mut self, data: &[u8]);
}

/// Counts bytes only.
#[derive(Debug, Default)]
pub struct Discard;

impl ChunkSink for Discard {
    fn chunk(&mut self, _data: &[u8]) {}
}

impl ChunkSink for crate::load::content::Verifier {
    fn chunk(&mut self, data: &[u8]) {
        self.update(data);
    }
}

/// What a GET returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetReply {
    /// Time from sending the request to the first body byte (or the headers, for an empty body).
    pub ttfb: Duration,
    pub bytes: u64,
}

/// Follows a GET body as it streams into a [`ChunkSink`]: bytes, and when the first one came.
/// Both drivers read bodies through it, so TTFB means the same thing for each.
pub(crate) struct BodyMeter {
    start: std::time::Instant,
    ttfb: Option<Duration>,
    bytes: u64,
}

impl BodyMeter {
    /// `start`: when the request was sent.
    pub(crate) fn new(start: std::time::Instant) -> Self {
        BodyMeter {
            start,
            ttfb: None,
            bytes: 0,
        }
    }

    pub(crate) fn chunk(&mut self, data: &[u8], sink: &mut dyn ChunkSink) {
        if self.ttfb.is_none() {
            self.ttfb = Some(self.start.elapsed());
        }
        self.bytes += data.len() as u64;
        sink.chunk(data);
    }

    /// The reply; an empty body's TTFB is the time to the end of the response.
    pub(crate) fn reply(self) -> GetReply {
        GetReply {
            ttfb: self.ttfb.unwrap_or_else(|| self.start.elapsed()),
            bytes: self.bytes,
        }
    }
}

/// A byte range `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub len: u64,
}

impl ByteRange {
    /// The HTTP `Range` header value (inclusive end; a zero length reads one byte).
    pub(crate) fn header(&self) -> String {
        format!("bytes={}-{}", self.start, self.start + self.len.max(1) - 1)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub next: Option<String>,
}

/// An unfinished multipart upload found during cleanup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    pub key: String,
    pub upload_id: String,
}

/// A key a DeleteObjects request did not delete, as its reply said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    /// The S3 error code (`AccessDenied`, …).
    pub code: String,
    pub message: String,
}

/// What one DeleteObjects request did: how many keys it asked to delete and which it did not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchDeleted {
    pub requested: u64,
    pub errors: Vec<KeyError>,
}

impl BatchDeleted {
    /// Keys the reply did not name as failed.
    pub fn deleted(&self) -> u64 {
        self.requested.saturating_sub(self.errors.len() as u64)
    }

    /// The failure to count for the request when keys were not deleted: the first key's code
    /// (the reply's status was 200), with how many failed and the first key.
    pub fn failure(&self) -> Option<OpError> {
        let first = self.errors.first()?;
        Some(OpError::new(
            FailureKind::Http {
                status: 200,
                code: first.code.clone(),
            },
            format!(
                "{} of {} keys not deleted, first {}: {}",
                self.errors.len(),
                self.requested,
                first.key,
                first.message
            ),
        ))
    }
}

/// One page of a listing with a delimiter: keys directly under the prefix, and the common
/// prefixes ("directories") that group the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelimitedPage {
    pub keys: Vec<String>,
    pub common_prefixes: Vec<String>,
}

/// An object's tag set, in the order S3 returned it.
pub type Tags = Vec<(String, String)>;

/// One version of an object, or one delete marker: its key and version id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    pub version_id: String,
}

/// Where the next ListObjectVersions page starts: the key marker and version id marker.
pub type VersionMarker = (String, Option<String>);

/// One ListObjectVersions page: the versions and the delete markers it listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionPage {
    pub versions: Vec<ObjectVersion>,
    pub delete_markers: Vec<ObjectVersion>,
    /// `None` on the last page.
    pub next: Option<VersionMarker>,
}

/// What an existing bucket has of the features a versioned scenario needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketFeatures {
    /// GetBucketVersioning says `Enabled` (not suspended, not never enabled).
    pub versioning: bool,
    /// GetObjectLockConfiguration says object lock is enabled.
    pub object_lock: bool,
}

/// The most keys one DeleteObjects request may carry (S3's limit).
pub const MAX_BATCH_KEYS: usize = 1000;

/// What `ensure_bucket` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketState {
    Existed,
    Created,
}

/// The operations scenarios and run preparation/cleanup need from an S3 client.
pub trait Driver: Send + Sync + 'static {
    /// Writes `size` generated bytes of `seed` under `key`.
    fn put(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Reads the object (or a range of it) into `sink`.
    fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        expected_len: u64,
        sink: &mut dyn ChunkSink,
    ) -> impl Future<Output = Result<GetReply, OpError>> + Send;

    /// The object's size.
    fn head(&self, key: &str) -> impl Future<Output = Result<u64, OpError>> + Send;

    fn delete(&self, key: &str) -> impl Future<Output = Result<(), OpError>> + Send;

    /// One ListObjectsV2 page under `prefix`.
    fn list(
        &self,
        prefix: &str,
        max_keys: u32,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<ListPage, OpError>> + Send;

    /// A multipart upload of `size` generated bytes, `parts_in_flight` parts at a time.
    /// On failure the upload is aborted so no parts are left behind.
    fn multipart_put(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
        part_size: u64,
        parts_in_flight: u32,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Server-side copy within the bucket.
    fn copy(
        &self,
        source_key: &str,
        key: &str,
        size: u64,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Makes sure the bucket exists, creating it when missing.
    fn ensure_bucket(&self) -> impl Future<Output = Result<BucketState, OpError>> + Send;

    /// Deletes up to 1000 keys; returns how many were deleted.
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = Result<u64, OpError>> + Send;

    /// One ListObjectsV2 page under `prefix`, grouped by `delimiter`.
    fn list_delimited(
        &self,
        prefix: &str,
        delimiter: &str,
        max_keys: u32,
    ) -> impl Future<Output = Result<DelimitedPage, OpError>> + Send {
        let _ = (prefix, delimiter, max_keys);
        async { Err(unsupported("list with a delimiter")) }
    }

    /// Replaces the object's tag set (PutObjectTagging).
    fn put_tagging(
        &self,
        key: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        let _ = (key, tags);
        async { Err(unsupported("put_tagging")) }
    }

    /// The object's tag set (GetObjectTagging).
    fn get_tagging(&self, key: &str) -> impl Future<Output = Result<Tags, OpError>> + Send {
        let _ = key;
        async { Err(unsupported("get_tagging")) }
    }

    /// One DeleteObjects request for up to [`MAX_BATCH_KEYS`] keys (quiet mode: the reply
    /// names only the keys it did not delete). Unlike `delete_many`, never falls back to
    /// single deletes: it is the `delete_batch` operation as measured.
    fn delete_batch(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<BatchDeleted, OpError>> + Send {
        let requested = keys.len();
        async move {
            Err(OpError::new(
                FailureKind::Other,
                format!("this driver cannot delete {requested} keys in one DeleteObjects request"),
            ))
        }
    }

    /// A PUT like [`Driver::put`] that returns the version id the gateway gave the object
    /// (`None` when the bucket is not versioned or the reply named none).
    fn put_versioned(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
    ) -> impl Future<Output = Result<Option<String>, OpError>> + Send {
        let _ = (key, seed, size);
        async { Err(unsupported("a PUT that returns the version id")) }
    }

    /// Reads version `version_id` of the object into `sink`.
    fn get_version(
        &self,
        key: &str,
        version_id: &str,
        expected_len: u64,
        sink: &mut dyn ChunkSink,
    ) -> impl Future<Output = Result<GetReply, OpError>> + Send {
        let _ = (key, version_id, expected_len, sink);
        async { Err(unsupported("get of a version")) }
    }

    /// Deletes version `version_id` of the object for good (no delete marker).
    fn delete_version(
        &self,
        key: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        let _ = (key, version_id);
        async { Err(unsupported("delete of a version")) }
    }

    /// One ListObjectVersions page under `prefix`, from `from` (`None`: the first page).
    fn list_versions(
        &self,
        prefix: &str,
        max_keys: u32,
        from: Option<VersionMarker>,
    ) -> impl Future<Output = Result<VersionPage, OpError>> + Send {
        let _ = (prefix, max_keys, from);
        async { Err(unsupported("list_versions")) }
    }

    /// One DeleteObjects request naming versions (and delete markers) by id; with
    /// `bypass_governance`, sends `x-amz-bypass-governance-retention: true`.
    fn delete_versions(
        &self,
        versions: &[ObjectVersion],
        bypass_governance: bool,
    ) -> impl Future<Output = Result<BatchDeleted, OpError>> + Send {
        let _ = (versions, bypass_governance);
        async { Err(unsupported("deleting versions")) }
    }

    /// Whether the (existing) bucket has versioning enabled and object lock.
    fn bucket_features(&self) -> impl Future<Output = Result<BucketFeatures, OpError>> + Send {
        async {
            Err(unsupported(
                "reading the bucket's versioning and object lock",
            ))
        }
    }

    /// Like [`Driver::ensure_bucket`] for a versioned scenario: a missing bucket is created
    /// (with object lock when `lock` is given), its versioning enabled and, with `lock`, its
    /// default retention set. An existing bucket is left as it is.
    fn ensure_versioned_bucket(
        &self,
        lock: Option<ObjectLock>,
    ) -> impl Future<Output = Result<BucketState, OpError>> + Send {
        let _ = lock;
        async { Err(unsupported("creating a versioned bucket")) }
    }

    /// Server-side copy of `source_key` in bucket `source_bucket` into this driver's bucket.
    fn copy_from(
        &self,
        source_bucket: &str,
        source_key: &str,
        key: &str,
        size: u64,
    ) -> impl Future<Output = Result<(), OpError>> + Send {
        let _ = (source_bucket, source_key, key, size);
        async { Err(unsupported("copy from another bucket")) }
    }

    /// The bucket this driver addresses.
    fn bucket(&self) -> &str;

    /// Unfinished multipart uploads under `prefix`.
    fn pending_uploads(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<PendingUpload>, OpError>> + Send;

    fn abort_upload(
        &self,
        upload: &PendingUpload,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// The driver a request of user slot `slot` goes through (its gateway and bucket). With
    /// one gateway and one bucket, `self`.
    fn route(&self, _slot: u64) -> Route<'_, Self>
    where
        Self: Sized,
    {
        Route::direct(self)
    }

    /// The gateway URLs requests are counted under; empty with a single gateway.
    fn endpoint_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// The bucket names requests are counted under; empty with a single bucket.
    fn bucket_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// A driver per bucket users work in, with the bucket's name, for preparing and cleaning
    /// each (`None` for the name: the one bucket of the connection file).
    fn per_bucket(&self) -> Vec<(Option<&str>, &Self)>
    where
        Self: Sized,
    {
        vec![(None, self)]
    }
}

/// What a driver that lacks an operation answers.
fn unsupported(op: &str) -> OpError {
    OpError::new(
        FailureKind::Other,
        format!("this driver does not support {op}"),
    )
}

/// Runs `fut` under the deadline `tuning` allows a request moving `bytes`: timeouts scale
/// with size, and a request that misses its deadline is a `timeout` failure.
pub(crate) async fn with_deadline<T>(
    tuning: &crate::s3_config::DriverConfig,
    bytes: u64,
    fut: impl Future<Output = Result<T, OpError>>,
) -> Result<T, OpError> {
    let limit = tuning.timeout_for(bytes);
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(OpError::new(
            FailureKind::Timeout,
            format!("no complete response within {:.1}s", limit.as_secs_f64()),
        )),
    }
}

/// Percent-encodes an object key for a URL path or `x-amz-copy-source`: unreserved
/// characters and `/` stay, everything else becomes `%XX`.
pub(crate) fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a driver could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Lean(#[from] LeanError),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    S5cmd(#[from] S5cmdError),
}

/// The driver chosen by the connection file.
pub enum AnyDriver {
    Aws(AwsDriver),
    /// Boxed: it embeds an `AwsDriver` for its slow path.
    Lean(Box<LeanDriver>),
    /// One `s5cmd` process per operation. Boxed: it embeds an `AwsDriver` for preparation
    /// and cleanup.
    S5cmd(Box<S5cmdDriver>),
    /// Several gateways or buckets; each of its drivers is `Aws`, `Lean` or `S5cmd`.
    Fleet(Box<Fleet>),
}

/// One gateway-and-bucket driver, borrowed: what [`dispatch!`] calls.
enum Single<'a> {
    Aws(&'a AwsDriver),
    Lean(&'a LeanDriver),
    S5cmd(&'a S5cmdDriver),
}

impl AnyDriver {
    /// The driver for `config`: a [`Fleet`] when it names several gateways or buckets.
    pub fn new(config: &WorkloadConfig) -> Result<AnyDriver, DriverError> {
        if config.endpoints().len() > 1 || config.buckets().len() > 1 {
            return Ok(AnyDriver::Fleet(Box::new(Fleet::new(config)?)));
        }
        AnyDriver::single(config)
    }

    /// The same client on another bucket (a fleet stays on its own buckets); `None` for
    /// s5cmd, which has no client to share: build another driver for that bucket instead.
    fn with_bucket(&self, bucket: &str) -> Option<AnyDriver> {
        match self {
            AnyDriver::Aws(d) => Some(AnyDriver::Aws(d.with_bucket(bucket))),
            AnyDriver::Lean(d) => Some(AnyDriver::Lean(Box::new(d.with_bucket(bucket)))),
            AnyDriver::S5cmd(_) => None,
            AnyDriver::Fleet(f) => f.primary().with_bucket(bucket),
        }
    }

    /// The gateway-and-bucket driver operations outside users' requests go through.
    fn one(&self) -> Single<'_> {
        match self {
            AnyDriver::Aws(d) => Single::Aws(d),
            AnyDriver::Lean(d) => Single::Lean(d),
            AnyDriver::S5cmd(d) => Single::S5cmd(d),
            AnyDriver::Fleet(f) => f.primary().one(),
        }
    }

    /// A driver for the one gateway and bucket of `config`.
    fn single(config: &WorkloadConfig) -> Result<AnyDriver, DriverError> {
        match config.driver {
            DriverKind::AwsSdk => Ok(AnyDriver::Aws(AwsDriver::new(config)?)),
            DriverKind::Lean => Ok(AnyDriver::Lean(Box::new(LeanDriver::new(config)?))),
            DriverKind::S5cmd => Ok(AnyDriver::S5cmd(Box::new(S5cmdDriver::new(config)?))),
        }
    }
}

/// Awaits the call on the chosen driver. The SDK's futures are boxed (17–29 KiB each, see
/// `aws::tests`): a user boxes the request it has in flight, and that box is as large as the
/// largest future any operation of either driver could hold inline. Lean's own are ~3 KiB.
macro_rules! dispatch {
    ($self:ident, $d:ident => $e:expr) => {
        match $self.one() {
            Single::Aws($d) => Box::pin($e).await,
            Single::Lean($d) => $e.await,
            Single::S5cmd($d) => Box::pin($e).await,
        }
    };
}

impl Driver for AnyDriver {
    async fn put(&self, key: &str, seed: ContentSeed, size: u64) -> Result<(), OpError> {
        dispatch!(self, d => d.put(key, seed, size))
    }
    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        expected_len: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<GetReply, OpError> {
        dispatch!(self, d => d.get(key, range, expected_len, sink))
    }
    async fn head(&self, key: &str) -> Result<u64, OpError> {
        dispatch!(self, d => d.head(key))
    }
    async fn delete(&self, key: &str) -> Result<(), OpError> {
        dispatch!(self, d => d.delete(key))
    }
    async fn list(
        &self,
        prefix: &str,
        max_keys: u32,
        continuation: Option<String>,
    ) -> Result<ListPage, OpError> {
        dispatch!(self, d => d.list(prefix, max_keys, continuation))
    }
    async fn multipart_put(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
        part_size: u64,
        parts_in_flight: u32,
    ) -> Result<(), OpError> {
        dispatch!(self, d => d.multipart_put(key, seed, size, part_size, parts_in_flight))
    }
    async fn copy(&self, source_key: &str, key: &str, size: u64) -> Result<(), OpError> {
        dispatch!(self, d => d.copy(source_key, key, size))
    }
    async fn ensure_bucket(&self) -> Result<BucketState, OpError> {
        dispatch!(self, d => d.ensure_bucket())
    }
    async fn delete_many(&self, keys: &[String]) -> Result<u64, OpError> {
        dispatch!(self, d => d.delete_many(keys))
    }
    async fn delete_batch(&self, keys: &[String]) -> Result<BatchDeleted, OpError> {
        dispatch!(self, d => d.delete_batch(keys))
    }
    async fn list_delimited(
        &self,
        prefix: &str,
        delimiter: &str,
        max_keys: u32,
    ) -> Result<DelimitedPage, OpError> {
        dispatch!(self, d => d.list_delimited(prefix, delimiter, max_keys))
    }
    async fn put_tagging(&self, key: &str, tags: &[(String, String)]) -> Result<(), OpError> {
        dispatch!(self, d => d.put_tagging(key, tags))
    }
    async fn get_tagging(&self, key: &str) -> Result<Tags, OpError> {
        dispatch!(self, d => d.get_tagging(key))
    }
    async fn put_versioned(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
    ) -> Result<Option<String>, OpError> {
        dispatch!(self, d => d.put_versioned(key, seed, size))
    }
    async fn get_version(
        &self,
        key: &str,
        version_id: &str,
        expected_len: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<GetReply, OpError> {
        dispatch!(self, d => d.get_version(key, version_id, expected_len, sink))
    }
    async fn delete_version(&self, key: &str, version_id: &str) -> Result<(), OpError> {
        dispatch!(self, d => d.delete_version(key, version_id))
    }
    async fn list_versions(
        &self,
        prefix: &str,
        max_keys: u32,
        from: Option<VersionMarker>,
    ) -> Result<VersionPage, OpError> {
        dispatch!(self, d => d.list_versions(prefix, max_keys, from))
    }
    async fn delete_versions(
        &self,
        versions: &[ObjectVersion],
        bypass_governance: bool,
    ) -> Result<BatchDeleted, OpError> {
        dispatch!(self, d => d.delete_versions(versions, bypass_governance))
    }
    async fn bucket_features(&self) -> Result<BucketFeatures, OpError> {
        dispatch!(self, d => d.bucket_features())
    }
    async fn ensure_versioned_bucket(
        &self,
        lock: Option<ObjectLock>,
    ) -> Result<BucketState, OpError> {
        dispatch!(self, d => d.ensure_versioned_bucket(lock))
    }
    async fn copy_from(
        &self,
        source_bucket: &str,
        source_key: &str,
        key: &str,
        size: u64,
    ) -> Result<(), OpError> {
        dispatch!(self, d => d.copy_from(source_bucket, source_key, key, size))
    }
    fn bucket(&self) -> &str {
        match self.one() {
            Single::Aws(d) => d.bucket(),
            Single::Lean(d) => d.bucket(),
            Single::S5cmd(d) => d.bucket(),
        }
    }
    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, OpError> {
        dispatch!(self, d => d.pending_uploads(prefix))
    }
    async fn abort_upload(&self, upload: &PendingUpload) -> Result<(), OpError> {
        dispatch!(self, d => d.abort_upload(upload))
    }
    fn route(&self, slot: u64) -> Route<'_, AnyDriver> {
        match self {
            AnyDriver::Fleet(f) => f.route(slot),
            _ => Route::direct(self),
        }
    }
    fn endpoint_names(&self) -> Vec<String> {
        match self {
            AnyDriver::Fleet(f) if f.endpoints().len() > 1 => f.endpoints().to_vec(),
            _ => Vec::new(),
        }
    }
    fn bucket_names(&self) -> Vec<String> {
        match self {
            AnyDriver::Fleet(f) if f.buckets().len() > 1 => f.buckets().to_vec(),
            _ => Vec::new(),
        }
    }
    fn per_bucket(&self) -> Vec<(Option<&str>, &AnyDriver)> {
        match self {
            AnyDriver::Fleet(f) => f
                .per_bucket()
                .into_iter()
                .map(|(n, d)| (Some(n), d))
                .collect(),
            _ => vec![(None, self)],
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::s3_config::{DriverConfig, Secret};

    /// Connection settings for a driver that is built but never sends: constructing a
    /// request future sends nothing, and the size guards never poll one.
    pub(crate) fn unused_target(driver: DriverKind) -> WorkloadConfig {
        WorkloadConfig {
            endpoint: "http://127.0.0.1:9".into(),
            access_key: "size-guard".into(),
            secret_key: Secret::new("size-guard-secret"),
            bucket: "size-guard".into(),
            region: "us-east-1".into(),
            driver,
            driver_config: DriverConfig::default(),
            spread: Default::default(),
        }
    }

    /// `size_of_val` of each per-request future a user can start, by operation name. A user
    /// boxes the one in flight, so this is what every in-flight request allocates.
    pub(super) fn request_future_sizes<D: Driver>(d: &D) -> Vec<(&'static str, usize)> {
        let seed = ContentSeed(1);
        let mut sink = Discard;
        let range = Some(ByteRange { start: 0, len: 1 });
        // Its own statement: the future borrows `sink`, and is dropped at the semicolon.
        let get = std::mem::size_of_val(&d.get("k", range, 1, &mut sink));
        // These borrow too: their own statements, as for `get`.
        let batch = vec!["k".to_string()];
        let delete_batch = std::mem::size_of_val(&d.delete_batch(&batch));
        let tags = vec![("t".to_string(), "v".to_string())];
        let put_tagging = std::mem::size_of_val(&d.put_tagging("k", &tags));
        vec![
            ("put", std::mem::size_of_val(&d.put("k", seed, 4096))),
            ("get", get),
            ("head", std::mem::size_of_val(&d.head("k"))),
            ("delete", std::mem::size_of_val(&d.delete("k"))),
            ("list", std::mem::size_of_val(&d.list("k/", 1000, None))),
            (
                "multipart_put",
                std::mem::size_of_val(&d.multipart_put("k", seed, 1 << 24, 1 << 23, 2)),
            ),
            ("copy", std::mem::size_of_val(&d.copy("k", "k2", 4096))),
            ("delete_batch", delete_batch),
            (
                "list_delimited",
                std::mem::size_of_val(&d.list_delimited("k/", "/", 1000)),
            ),
            ("put_tagging", put_tagging),
            ("get_tagging", std::mem::size_of_val(&d.get_tagging("k"))),
        ]
    }

    /// Fails with every operation's size when any is over its bound.
    pub(super) fn assert_request_futures_within(
        driver: &str,
        sizes: &[(&str, usize)],
        bounds: &[(&str, usize)],
    ) {
        let over: Vec<String> = sizes
            .iter()
            .filter_map(|(op, size)| {
                let bound = bounds.iter().find(|(b, _)| b == op).map(|(_, b)| *b)?;
                (*size > bound).then(|| format!("{op} {size} > {bound}"))
            })
            .collect();
        let unbounded: Vec<&str> = sizes
            .iter()
            .filter(|(op, _)| !bounds.iter().any(|(b, _)| b == op))
            .map(|(op, _)| *op)
            .collect();
        assert!(
            over.is_empty() && unbounded.is_empty(),
            "{driver} driver request futures over their bounds: [{}]; without a bound: {unbounded:?}; \
             all sizes in bytes: {sizes:?}",
            over.join(", ")
        );
        eprintln!("{driver}: {sizes:?}");
    }

    #[test]
    fn a_batch_with_key_errors_is_one_failure_with_the_first_code() {
        let ok = BatchDeleted {
            requested: 3,
            errors: Vec::new(),
        };
        assert_eq!((ok.deleted(), ok.failure()), (3, None));
        let partial = BatchDeleted {
            requested: 3,
            errors: vec![
                KeyError {
                    key: "run/a".into(),
                    code: "AccessDenied".into(),
                    message: "denied".into(),
                },
                KeyError {
                    key: "run/b".into(),
                    code: "InternalError".into(),
                    message: String::new(),
                },
            ],
        };
        assert_eq!(partial.deleted(), 1);
        let e = partial.failure().unwrap();
        assert_eq!(e.code(), "AccessDenied");
        assert_eq!(
            e.to_string(),
            "HTTP 200 AccessDenied: 2 of 3 keys not deleted, first run/a: denied"
        );
    }

    #[test]
    fn keys_are_percent_encoded_but_slashes_stay() {
        assert_eq!(encode_key("run/u1/0001"), "run/u1/0001");
        assert_eq!(encode_key("a b+c"), "a%20b%2Bc");
    }

    #[test]
    fn failure_kinds_read_like_locust_errors() {
        let k = FailureKind::Http {
            status: 404,
            code: "NoSuchKey".into(),
        };
        assert_eq!(k.to_string(), "HTTP 404 NoSuchKey");
        let k = FailureKind::Http {
            status: 503,
            code: String::new(),
        };
        assert_eq!(k.to_string(), "HTTP 503");
        assert_eq!(FailureKind::Integrity.to_string(), "integrity");
    }
}
