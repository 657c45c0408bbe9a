//! The lean driver: the hot operations (put, get, head, delete) go straight through a pooled
//! hyper client, signed with the AWS SDK's own SigV4 implementation (`aws-sigv4`).
//!
//! Why: the stock SDK spends most of a small request's client CPU in its per-request
//! machinery — interceptors, config layering, endpoint resolution, retry classification —
//! not on the wire. Bodies are signed `UNSIGNED-PAYLOAD` and streamed from the content
//! generator, so nothing is hashed or buffered. The rest (multipart, copy, list, tagging,
//! DeleteObjects, bucket and cleanup calls) goes through the aws-sdk driver: they are rare, or
//! their cost is the server's, and the SDK already does them correctly.

use super::aws::status_reason;
use super::{
    encode_key, AwsDriver, BatchDeleted, BodyMeter, BucketState, ByteRange, ChunkSink,
    DelimitedPage, Driver, FailureKind, GetReply, ListPage, OpError, PendingUpload, Tags,
};
use crate::load::content::{ContentSeed, GeneratedBody};
use crate::s3_config::{DriverConfig, WorkloadConfig};
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{Method, Request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

/// A request body: nothing, or generated object bytes.
enum ReqBody {
    Empty,
    Generated(GeneratedBody),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Generated(g) => Pin::new(g).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Generated(g) => g.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Generated(g) => g.size_hint(),
        }
    }
}

type Connector = hyper_rustls::HttpsConnector<super::tls::TcpConnector>;

/// The lean driver. One pooled client serves every user.
pub struct LeanDriver {
    client: Client<Connector, ReqBody>,
    /// `scheme://authority` (with `bucket.` before the host when virtual-hosted), no
    /// trailing slash.
    base: String,
    /// The Host header: the endpoint's authority, or `bucket.` and it when virtual-hosted.
    host: String,
    /// What an object's path starts with: `/bucket` path-style, empty virtual-hosted.
    path_prefix: String,
    /// The gateway as configured (`scheme`, authority, the URL without a trailing slash):
    /// [`LeanDriver::with_bucket`] addresses another bucket on it.
    gateway: Gateway,
    region: String,
    identity: Identity,
    tuning: DriverConfig,
    settings: SigningSettings,
    sdk: AwsDriver,
}

/// Why the lean driver could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the lean driver: {0}")]
pub struct LeanError(String);

/// A gateway's URL, parsed once.
#[derive(Clone)]
struct Gateway {
    scheme: String,
    authority: String,
    /// The endpoint without a trailing slash.
    url: String,
    /// Path-style (`/bucket/key`) rather than virtual-hosted (`bucket.host/key`).
    path_style: bool,
}

impl Gateway {
    /// The request base, Host header and object path prefix for `bucket` on this gateway.
    fn address(&self, bucket: &str) -> (String, String, String) {
        if self.path_style {
            (
                self.url.clone(),
                self.authority.clone(),
                format!("/{bucket}"),
            )
        } else {
            let host = format!("{bucket}.{}", self.authority);
            (format!("{}://{host}", self.scheme), host, String::new())
        }
    }
}

impl LeanDriver {
    pub fn new(config: &WorkloadConfig) -> Result<LeanDriver, LeanError> {
        let uri: http::Uri = config
            .endpoint
            .parse()
            .map_err(|e| LeanError(format!("endpoint {}: {e}", config.endpoint)))?;
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| LeanError(format!("endpoint {} has no host", config.endpoint)))?;
        let gateway = Gateway {
            scheme: uri.scheme_str().unwrap_or("http").to_string(),
            authority,
            url: config.endpoint.trim_end_matches('/').to_string(),
            path_style: config.driver_config.path_style,
        };
        let (base, host, path_prefix) = gateway.address(&config.bucket);
        let connector =
            super::tls::connector(&config.driver_config).map_err(|e| LeanError(e.to_string()))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent (no double encoding, no normalization) and wants the
        // payload hash header; UNSIGNED-PAYLOAD lets bodies stream without hashing.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let credentials = aws_credential_types::Credentials::new(
            config.access_key.clone(),
            config.secret_key.expose().to_string(),
            None,
            None,
            "chopsticks-workload-config",
        );
        Ok(LeanDriver {
            client,
            base,
            host,
            path_prefix,
            gateway,
            region: config.region.clone(),
            identity: credentials.into(),
            tuning: config.driver_config.clone(),
            settings,
            sdk: AwsDriver::new(config).map_err(|e| LeanError(e.to_string()))?,
        })
    }

    /// The same client (and its connection pool) on another bucket.
    pub(super) fn with_bucket(&self, bucket: &str) -> LeanDriver {
        let (base, host, path_prefix) = self.gateway.address(bucket);
        LeanDriver {
            client: self.client.clone(),
            base,
            host,
            path_prefix,
            gateway: self.gateway.clone(),
            region: self.region.clone(),
            identity: self.identity.clone(),
            tuning: self.tuning.clone(),
            settings: self.settings.clone(),
            sdk: self.sdk.with_bucket(bucket),
        }
    }

    fn object_path(&self, key: &str) -> String {
        format!("{}/{}", self.path_prefix, encode_key(key))
    }

    /// Builds and signs a request.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        extra: &[(&'static str, String)],
    ) -> Result<Request<ReqBody>, OpError> {
        let uri = format!("{}{path}", self.base);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(http::header::HOST, &self.host);
        let length = body.size_hint().exact().unwrap_or(0);
        if method == Method::PUT {
            builder = builder.header(http::header::CONTENT_LENGTH, length);
        }
        for (name, value) in extra {
            builder = builder.header(*name, value);
        }
        let mut request = builder
            .body(body)
            .map_err(|e| OpError::new(FailureKind::Other, format!("building request: {e}")))?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(self.settings.clone())
            .build()
            .map_err(|e| OpError::new(FailureKind::Other, format!("signing: {e}")))?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let signable = SignableRequest::new(
            method.as_str(),
            uri.as_str(),
            headers.into_iter(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| OpError::new(FailureKind::Other, format!("signing: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| OpError::new(FailureKind::Other, format!("signing: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }

    async fn send(
        &self,
        request: Request<ReqBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, OpError> {
        self.client.request(request).await.map_err(|e| {
            let text = super::aws::error_chain(&e);
            if let Some(tls) = super::tls::failure(&e, &text) {
                tls
            } else if e.is_connect() {
                OpError::new(FailureKind::Connection, text)
            } else if text.contains("timed out") {
                OpError::new(FailureKind::Timeout, text)
            } else {
                OpError::new(FailureKind::Connection, text)
            }
        })
    }

    /// Signs and sends one request for the object `key`; an answer other than 2xx becomes the
    /// failure it reports.
    async fn call(
        &self,
        method: Method,
        key: &str,
        body: ReqBody,
        extra: &[(&'static str, String)],
    ) -> Result<http::Response<hyper::body::Incoming>, OpError> {
        self.call_at(method, &self.object_path(key), body, extra)
            .await
    }

    /// [`LeanDriver::call`] on version `version_id` of the object `key`.
    async fn call_version(
        &self,
        method: Method,
        key: &str,
        version_id: &str,
        extra: &[(&'static str, String)],
    ) -> Result<http::Response<hyper::body::Incoming>, OpError> {
        let path = format!(
            "{}?versionId={}",
            self.object_path(key),
            encode_query(version_id)
        );
        self.call_at(method, &path, ReqBody::Empty, extra).await
    }

    /// Signs and sends one request for `path` (with its query).
    async fn call_at(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        extra: &[(&'static str, String)],
    ) -> Result<http::Response<hyper::body::Incoming>, OpError> {
        let request = self.request(method, path, body, extra)?;
        let response = self.send(request).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(failure(response).await)
        }
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

/// An error answer: the status and, when the body carries one, the S3 error code and message.
async fn failure(response: http::Response<hyper::body::Incoming>) -> OpError {
    let status = response.status().as_u16();
    // Error bodies are small XML documents; cap what is read.
    let body = match http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let (code, message) = error_fields(&body);
    let code = code.unwrap_or_else(|| status_reason(status).to_string());
    OpError::new(
        FailureKind::Http { status, code },
        message.unwrap_or_default(),
    )
}

/// `<Error><Code>…</Code><Message>…</Message></Error>` from an S3 error body.
fn error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut current: Option<&'static str> = None;
    let (mut code, mut message) = (None, None);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                current = match e.name().as_ref() {
                    b"Code" => Some("code"),
                    b"Message" => Some("message"),
                    _ => None,
                }
            }
            Ok(Event::Text(t)) => {
                if let (Some(field), Ok(text)) = (current, t.decode()) {
                    let text = text.trim().to_string();
                    match field {
                        "code" => code = Some(text),
                        _ => message = Some(text),
                    }
                }
            }
            Ok(Event::End(_)) => current = None,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        buf.clear();
    }
    (code, message)
}

/// Percent-encodes a query value (a version id): unreserved characters stay.
fn encode_query(value: &str) -> String {
    encode_key(value).replace('/', "%2F")
}

/// Reads the rest of a body nobody needs, so the connection goes back to the pool.
async fn drain(response: http::Response<hyper::body::Incoming>) {
    let _ = response.into_body().collect().await;
}

fn body_error(e: hyper::Error) -> OpError {
    OpError::new(
        FailureKind::Connection,
        format!("reading body: {}", super::aws::error_chain(&e)),
    )
}

impl Driver for LeanDriver {
    async fn put(&self, key: &str, seed: ContentSeed, size: u64) -> Result<(), OpError> {
        self.deadline(size, async {
            let body = ReqBody::Generated(GeneratedBody::new(seed, 0, size));
            drain(self.call(Method::PUT, key, body, &[]).await?).await;
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
        self.deadline(expected_len, async {
            let mut meter = BodyMeter::new(Instant::now());
            let extra = range.map(|r| ("range", r.header()));
            let response = self
                .call(Method::GET, key, ReqBody::Empty, extra.as_slice())
                .await?;
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(body_error)?.into_data() {
                    meter.chunk(&data, sink);
                }
            }
            Ok(meter.reply())
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<u64, OpError> {
        self.deadline(0, async {
            let response = self.call(Method::HEAD, key, ReqBody::Empty, &[]).await?;
            let size = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            drain(response).await;
            Ok(size)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), OpError> {
        self.deadline(0, async {
            drain(self.call(Method::DELETE, key, ReqBody::Empty, &[]).await?).await;
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
        // The SDK's futures are boxed here and below: inline, they would make every lean
        // request future (which a user boxes per request) as large as theirs, 17–29 KiB.
        Box::pin(self.sdk.list(prefix, max_keys, continuation)).await
    }

    async fn multipart_put(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
        part_size: u64,
        parts_in_flight: u32,
    ) -> Result<(), OpError> {
        Box::pin(
            self.sdk
                .multipart_put(key, seed, size, part_size, parts_in_flight),
        )
        .await
    }

    async fn copy(&self, source_key: &str, key: &str, size: u64) -> Result<(), OpError> {
        Box::pin(self.sdk.copy(source_key, key, size)).await
    }

    async fn ensure_bucket(&self) -> Result<BucketState, OpError> {
        self.sdk.ensure_bucket().await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64, OpError> {
        self.sdk.delete_many(keys).await
    }

    async fn delete_batch(&self, keys: &[String]) -> Result<BatchDeleted, OpError> {
        Box::pin(self.sdk.delete_batch(keys)).await
    }

    async fn list_delimited(
        &self,
        prefix: &str,
        delimiter: &str,
        max_keys: u32,
    ) -> Result<DelimitedPage, OpError> {
        Box::pin(self.sdk.list_delimited(prefix, delimiter, max_keys)).await
    }

    async fn put_tagging(&self, key: &str, tags: &[(String, String)]) -> Result<(), OpError> {
        Box::pin(self.sdk.put_tagging(key, tags)).await
    }

    async fn get_tagging(&self, key: &str) -> Result<Tags, OpError> {
        Box::pin(self.sdk.get_tagging(key)).await
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, OpError> {
        self.sdk.pending_uploads(prefix).await
    }

    async fn put_versioned(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
    ) -> Result<Option<String>, OpError> {
        self.deadline(size, async {
            let body = ReqBody::Generated(GeneratedBody::new(seed, 0, size));
            let response = self.call(Method::PUT, key, body, &[]).await?;
            let version = response
                .headers()
                .get("x-amz-version-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            drain(response).await;
            Ok(version)
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
        self.deadline(expected_len, async {
            let mut meter = BodyMeter::new(Instant::now());
            let response = self.call_version(Method::GET, key, version_id, &[]).await?;
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(body_error)?.into_data() {
                    meter.chunk(&data, sink);
                }
            }
            Ok(meter.reply())
        })
        .await
    }

    async fn delete_version(&self, key: &str, version_id: &str) -> Result<(), OpError> {
        self.deadline(0, async {
            drain(
                self.call_version(Method::DELETE, key, version_id, &[])
                    .await?,
            )
            .await;
            Ok(())
        })
        .await
    }

    async fn list_versions(
        &self,
        prefix: &str,
        max_keys: u32,
        from: Option<super::VersionMarker>,
    ) -> Result<super::VersionPage, OpError> {
        Box::pin(self.sdk.list_versions(prefix, max_keys, from)).await
    }

    async fn delete_versions(
        &self,
        versions: &[super::ObjectVersion],
        bypass_governance: bool,
    ) -> Result<BatchDeleted, OpError> {
        Box::pin(self.sdk.delete_versions(versions, bypass_governance)).await
    }

    async fn bucket_features(&self) -> Result<super::BucketFeatures, OpError> {
        Box::pin(self.sdk.bucket_features()).await
    }

    async fn ensure_versioned_bucket(
        &self,
        lock: Option<crate::load::scenario::ObjectLock>,
    ) -> Result<BucketState, OpError> {
        Box::pin(self.sdk.ensure_versioned_bucket(lock)).await
    }

    async fn copy_from(
        &self,
        source_bucket: &str,
        source_key: &str,
        key: &str,
        size: u64,
    ) -> Result<(), OpError> {
        Box::pin(self.sdk.copy_from(source_bucket, source_key, key, size)).await
    }

    fn bucket(&self) -> &str {
        self.sdk.bucket()
    }

    async fn abort_upload(&self, upload: &PendingUpload) -> Result<(), OpError> {
        self.sdk.abort_upload(upload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes each lean request future may take. Measured on x86_64: put 2616, get 2920,
    /// head 2536, delete 2536; list, multipart_put and copy 64 (they box the SDK's future). A
    /// user boxes the request it has in flight, so this is what each one allocates.
    const LEAN_REQUEST_MAX: &[(&str, usize)] = &[
        ("put", 4096),
        ("get", 4096),
        ("head", 4096),
        ("delete", 4096),
        ("list", 256),
        ("multipart_put", 256),
        ("copy", 256),
        ("delete_batch", 256),
        ("list_delimited", 256),
        ("put_tagging", 256),
        ("get_tagging", 256),
    ];

    #[test]
    fn request_futures_stay_within_their_bounds() {
        let config = crate::load::driver::tests::unused_target(crate::s3_config::DriverKind::Lean);
        let driver = LeanDriver::new(&config).unwrap();
        let sizes = crate::load::driver::tests::request_future_sizes(&driver);
        crate::load::driver::tests::assert_request_futures_within("lean", &sizes, LEAN_REQUEST_MAX);
    }

    #[test]
    fn s3_error_bodies_give_code_and_message() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><RequestId>tx1</RequestId></Error>"#;
        assert_eq!(
            error_fields(body),
            (
                Some("NoSuchKey".into()),
                Some("The specified key does not exist.".into())
            )
        );
        assert_eq!(error_fields(b""), (None, None));
    }
}
