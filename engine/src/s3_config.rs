//! The S3 connection file (`--workload-config`), in the seed's `s3_config.yaml` format:
//! `endpoint, access_key, secret_key, bucket, region, driver, driver_config`.
//!
//! Environment variables `S3_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` fill
//! what the file leaves out. The secret key lives in a [`Secret`], whose `Debug`/`Display`
//! never show it, so it cannot reach a log or an artifact by accident.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A credential that is never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that needs it (request signing).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The connection file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub secret_key: Option<Secret>,
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub driver: Option<DriverKind>,
    #[serde(default)]
    pub driver_config: Option<DriverConfig>,
    /// Several gateways instead of `endpoint` (each may hold a `{a...b}` range).
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
    /// How requests are split over several gateways (default `user`).
    #[serde(default)]
    pub endpoint_policy: Option<EndpointPolicy>,
    /// Several buckets instead of `bucket`: `{count: N, prefix: P}` or a list of names. Kept
    /// as YAML until [`WorkloadFile::resolve`] reads it into [`Spread::buckets`].
    #[serde(default)]
    pub buckets: Option<serde_yaml_ng::Value>,
    /// `path` (`endpoint/bucket/key`, the default) or `virtual` (`bucket.endpoint/key`);
    /// sets `driver_config.path_style`. Checked in [`WorkloadFile::resolve`].
    #[serde(default)]
    pub addressing: Option<String>,
}

/// How the requests of a run are split over several gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointPolicy {
    /// Each user is pinned to one gateway, round-robin over users (the default).
    #[default]
    User,
    /// Each request goes to the next gateway in turn.
    Request,
    /// Each request goes to the gateway with the fewest requests in flight (from this worker).
    LeastInFlight,
}

/// Several gateways and buckets (issue 14). Empty lists mean the one `endpoint` and the one
/// `bucket` of [`WorkloadConfig`]; when a list is given its first entry is that field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Every gateway, in the order given (ranges expanded); empty for a single one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// How requests are split over `endpoints`; `None` for a single gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_policy: Option<EndpointPolicy>,
    /// Every bucket users are spread over (user i uses bucket i mod n); empty for a single one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<String>,
}

/// Default prefix of `buckets: {count: N}` names: `chopsticks-1` ... `chopsticks-N`.
pub const DEFAULT_BUCKET_PREFIX: &str = "chopsticks-";

/// Why `endpoints`, an endpoint range, `endpoint_policy` or `buckets` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpreadError {
    #[error("endpoints: [] names no gateway; list at least one, e.g. endpoints: [http://127.0.0.1:7480]")]
    NoEndpoints,
    #[error(
        "give either endpoint or endpoints, not both; put every gateway in endpoints: [URL, ...]"
    )]
    EndpointAndEndpoints,
    #[error(
        "endpoint range in '{endpoint}' is malformed ({detail}); write it as {{FIRST...LAST}} with \
         whole numbers FIRST <= LAST, e.g. http://rgw{{1...3}}.example:443"
    )]
    BadRange { endpoint: String, detail: String },
    #[error("endpoint '{endpoint}' appears twice; list each gateway once")]
    DuplicateEndpoint { endpoint: String },
    #[error("endpoints: {0}")]
    TooManyEndpoints(crate::limits::LimitError),
    #[error("give either bucket or buckets, not both; put every bucket in buckets: [a, b] (or buckets: {{count: N, prefix: P}})")]
    BucketAndBuckets,
    #[error("buckets: {0}")]
    BucketCount(crate::limits::LimitError),
    #[error(
        "buckets: {detail}; write buckets: {{count: N, prefix: chopsticks-}} or buckets: [name-a, name-b]"
    )]
    BadBuckets { detail: String },
    #[error("buckets: '{name}' is not a valid S3 bucket name; use 3-63 lowercase letters, digits, dots and hyphens")]
    BadBucketName { name: String },
    #[error("buckets: '{name}' appears twice; list each bucket once")]
    DuplicateBucket { name: String },
}

/// Expands warp's range syntax: `http://rgw{1...3}:80` is rgw1, rgw2, rgw3 (`{01...10}` keeps
/// the width, zero-padded). One range per URL; a URL without braces is itself.
pub fn expand_endpoint(endpoint: &str) -> Result<Vec<String>, SpreadError> {
    let bad = |detail: &str| SpreadError::BadRange {
        endpoint: endpoint.to_string(),
        detail: detail.to_string(),
    };
    let Some(open) = endpoint.find('{') else {
        if endpoint.contains('}') {
            return Err(bad("a '}' without '{'"));
        }
        return Ok(vec![endpoint.to_string()]);
    };
    let close = endpoint[open..]
        .find('}')
        .map(|i| open + i)
        .ok_or_else(|| bad("no closing '}'"))?;
    let (head, inner, tail) = (
        &endpoint[..open],
        &endpoint[open + 1..close],
        &endpoint[close + 1..],
    );
    if tail.contains(['{', '}']) {
        return Err(bad("more than one range; give one {FIRST...LAST} per URL"));
    }
    let (first, last) = inner
        .split_once("...")
        .ok_or_else(|| bad("no '...' between the braces"))?;
    let number = |t: &str, which: &str| -> Result<u64, SpreadError> {
        if t.is_empty() || t.len() > 9 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!(
                "{which} '{t}' is not a whole number of at most 9 digits"
            )));
        }
        t.parse().map_err(|_| bad(&format!("{which} '{t}'")))
    };
    let (a, b) = (number(first, "FIRST")?, number(last, "LAST")?);
    if a > b {
        return Err(bad(&format!("FIRST {a} is above LAST {b}")));
    }
    let count = b - a + 1;
    crate::limits::ENDPOINTS
        .check("endpoints", count)
        .map_err(SpreadError::TooManyEndpoints)?;
    let width = if first.len() > 1 && first.starts_with('0') {
        first.len()
    } else {
        0
    };
    Ok((a..=b)
        .map(|n| format!("{head}{n:0width$}{tail}"))
        .collect())
}

/// Reads `buckets:` as given: a list of names, or `{count: N, prefix: P}`.
fn bucket_names(value: &serde_yaml_ng::Value) -> Result<Vec<String>, SpreadError> {
    use serde_yaml_ng::Value;
    let bad = |detail: String| SpreadError::BadBuckets { detail };
    let names: Vec<String> = match value {
        Value::Sequence(items) => {
            crate::limits::BUCKETS
                .check("buckets", items.len() as u64)
                .map_err(SpreadError::BucketCount)?;
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(bad(format!("{other:?} is not a bucket name"))),
                })
                .collect::<Result<_, _>>()?
        }
        Value::Mapping(map) => {
            let mut count = None;
            let mut prefix = DEFAULT_BUCKET_PREFIX.to_string();
            for (k, v) in map {
                match (k.as_str(), v) {
                    (Some("count"), v) => {
                        let n = match v {
                            Value::Number(n) if n.as_u64().is_some() => n.as_u64(),
                            Value::Number(n) if n.as_i64().is_some() => Some(0),
                            _ => None,
                        }
                        .ok_or_else(|| bad(format!("count {v:?} is not a whole number")))?;
                        count = Some(
                            crate::limits::BUCKETS
                                .check("buckets.count", n)
                                .map_err(SpreadError::BucketCount)?,
                        );
                    }
                    (Some("prefix"), Value::String(p)) => prefix = p.clone(),
                    (Some("prefix"), other) => {
                        return Err(bad(format!("prefix {other:?} is not text")))
                    }
                    (key, _) => {
                        return Err(bad(format!(
                            "unknown key {}; the keys are count and prefix",
                            key.unwrap_or("(not text)")
                        )))
                    }
                }
            }
            let count = count.ok_or_else(|| bad("no count".into()))?;
            (1..=count).map(|i| format!("{prefix}{i}")).collect()
        }
        other => return Err(bad(format!("{other:?} is neither a list nor a mapping"))),
    };
    if names.is_empty() {
        return Err(SpreadError::BucketCount(
            crate::limits::LimitError::TooSmall {
                field: "buckets".into(),
                value: "[]".into(),
                bound: "1".into(),
                fix: crate::limits::BUCKETS.fix.into(),
            },
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in &names {
        if !valid_bucket_name(name) {
            return Err(SpreadError::BadBucketName { name: name.clone() });
        }
        if !seen.insert(name.as_str()) {
            return Err(SpreadError::DuplicateBucket { name: name.clone() });
        }
    }
    Ok(names)
}

/// Every gateway of `endpoints:` (or of one `endpoint:` with a range), expanded and checked
/// against [`crate::limits::ENDPOINTS`]; URLs are checked one by one by the caller.
fn endpoint_list(given: &[String]) -> Result<Vec<String>, SpreadError> {
    if given.is_empty() {
        return Err(SpreadError::NoEndpoints);
    }
    let mut out = Vec::new();
    for e in given {
        out.extend(expand_endpoint(e.trim())?);
        crate::limits::ENDPOINTS
            .check("endpoints", out.len() as u64)
            .map_err(SpreadError::TooManyEndpoints)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in &out {
        if !seen.insert(e.trim_end_matches('/')) {
            return Err(SpreadError::DuplicateEndpoint {
                endpoint: e.clone(),
            });
        }
    }
    Ok(out)
}

/// Which S3 client implementation issues requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverKind {
    /// The stock AWS SDK for Rust (aws-sdk-s3).
    AwsSdk,
    /// The default: hyper + the SDK's SigV4 signer for put/get/head/delete, the SDK for the
    /// rest. About a third of the stock SDK's client CPU per small request.
    #[default]
    Lean,
    /// One `s5cmd` subprocess per operation, like the seed.
    S5cmd,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverKind::AwsSdk => "aws-sdk",
            DriverKind::Lean => "lean",
            DriverKind::S5cmd => "s5cmd",
        })
    }
}

/// Driver tuning; every field has a stated default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriverConfig {
    /// SDK retries per request. Off by default so every failure is seen and counted.
    pub retries: u32,
    /// Time allowed for a request of no payload, in seconds.
    pub request_timeout: f64,
    /// Extra time allowed per MiB of payload, in seconds (timeouts scale with size).
    pub timeout_per_mib: f64,
    /// TCP connect timeout, in seconds.
    pub connect_timeout: f64,
    /// Path-style addressing (`endpoint/bucket/key`), which RadosGW needs without wildcard DNS.
    pub path_style: bool,
    /// Path to the s5cmd binary (driver s5cmd).
    pub s5cmd_path: Option<String>,
    /// A PEM bundle of CA certificates trusted for an https endpoint, on top of the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The same, inline (what a Juju relation hands over). With ca_file, both are trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<Pem>,
    /// Skip certificate verification: anyone on the path can read and change the traffic.
    pub insecure: bool,
    /// Host names connected to at a given IP instead of through DNS (curl's --resolve), as
    /// written: `{HOST: IP}`. Checked, and parsed into [`DriverConfig::resolved`], when the
    /// file is resolved.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub resolve: std::collections::BTreeMap<String, String>,
    /// `resolve` parsed: what both drivers' connectors use. Empty before
    /// [`WorkloadFile::resolve`].
    #[serde(skip)]
    pub resolved: Vec<(String, std::net::IpAddr)>,
    /// The certificates of ca_file and ca_pem, parsed and checked when the file is resolved;
    /// what the drivers add to the system's roots. Empty before [`WorkloadFile::resolve`].
    #[serde(skip)]
    pub trusted: TrustedCas,
}

/// PEM text given inline. Not secret, but long: `Debug` shows its size only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pem(pub String);

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pem({} bytes)", self.0.len())
    }
}

/// CA certificates (DER) to trust on top of the system's roots.
#[derive(Clone, Default, PartialEq)]
pub struct TrustedCas(pub Vec<CertificateDer<'static>>);

impl fmt::Debug for TrustedCas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedCas({} certificates)", self.0.len())
    }
}

/// What to give when a CA is unusable.
const CA_FIX: &str =
    "give the PEM of the CA that signed the gateway's certificate (-----BEGIN CERTIFICATE----- ...)";

/// Why `ca_file` or `ca_pem` cannot be trusted; `field` and `shown` name what was given (never
/// its content).
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("driver_config.ca_file: {0}; ca_file must be a PEM file of CA certificates")]
    Unreadable(#[source] crate::limits::FileError),
    #[error("{field} {shown} is not valid PEM ({detail}); {CA_FIX}")]
    NotPem {
        field: &'static str,
        shown: String,
        detail: String,
    },
    #[error("{field} {shown} holds no PEM certificate; {CA_FIX}")]
    NoCertificate { field: &'static str, shown: String },
    #[error(
        "{field} {shown}: certificate {index} of {count} is not a usable X.509 certificate ({detail}); {CA_FIX}"
    )]
    Unusable {
        field: &'static str,
        shown: String,
        index: usize,
        count: usize,
        detail: String,
    },
}

/// Reads the CA certificates of a PEM text; `field` and `shown` name it in the messages.
/// Every certificate must be one a TLS client can use as a trust anchor.
fn parse_cas(
    text: &str,
    field: &'static str,
    shown: &str,
) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::NotPem {
            field,
            shown: shown.to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CaError::NoCertificate {
            field,
            shown: shown.to_string(),
        });
    }
    for (i, cert) in certs.iter().enumerate() {
        let mut store = rustls::RootCertStore::empty();
        store.add(cert.clone()).map_err(|e| CaError::Unusable {
            field,
            shown: shown.to_string(),
            index: i + 1,
            count: certs.len(),
            detail: e.to_string(),
        })?;
    }
    Ok(certs)
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            retries: 0,
            request_timeout: 30.0,
            timeout_per_mib: 1.0,
            connect_timeout: 10.0,
            path_style: true,
            s5cmd_path: None,
            ca_file: None,
            ca_pem: None,
            insecure: false,
            resolve: Default::default(),
            resolved: Vec::new(),
            trusted: TrustedCas::default(),
        }
    }
}

impl DriverConfig {
    /// The deadline for a request moving `bytes` of payload. The fields were checked against
    /// their bounds when the file was resolved; the sum is capped at the largest object's
    /// time so no payload size can overflow it.
    pub fn timeout_for(&self, bytes: u64) -> Duration {
        let mib = bytes.min(crate::limits::MAX_OBJECT) as f64 / (1024.0 * 1024.0);
        let secs = self.request_timeout + self.timeout_per_mib * mib;
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(u32::MAX as u64))
    }

    /// The TCP connect timeout; checked against its bound when the file was resolved.
    pub fn connect_timeout(&self) -> Duration {
        crate::limits::REQUEST_TIMEOUT
            .secs("driver_config.connect_timeout", self.connect_timeout)
            .unwrap_or(crate::limits::REQUEST_TIMEOUT.max)
    }

    fn problems(&self) -> Vec<String> {
        use crate::limits::{REQUEST_TIMEOUT, TIMEOUT_PER_MIB};
        let mut out = Vec::new();
        let checks = [
            REQUEST_TIMEOUT
                .secs("driver_config.request_timeout", self.request_timeout)
                .err(),
            TIMEOUT_PER_MIB
                .secs("driver_config.timeout_per_mib", self.timeout_per_mib)
                .err(),
            REQUEST_TIMEOUT
                .secs("driver_config.connect_timeout", self.connect_timeout)
                .err(),
        ];
        out.extend(checks.into_iter().flatten().map(|e| e.to_string()));
        for (host, ip) in &self.resolve {
            if host.is_empty() || host.len() > 253 || host.contains(['/', ':', ' ']) {
                out.push(format!(
                    "driver_config.resolve: '{host}' is not a host name; write {{HOST: IP}}, e.g. resolve: {{mybucket.s3.example: 10.0.0.5}}"
                ));
            } else if ip.trim().parse::<std::net::IpAddr>().is_err() {
                out.push(format!(
                    "driver_config.resolve.{host}: '{ip}' is not an IP address; give the address to connect to, e.g. {{{host}: 10.0.0.5}} (like curl --resolve)"
                ));
            }
        }
        if self.retries > 10 {
            out.push("driver_config.retries must be 0 to 10".into());
        }
        if self.insecure && (self.ca_file.is_some() || self.ca_pem.is_some()) {
            out.push(
                "driver_config.insecure: true skips certificate verification, so ca_file / ca_pem would be ignored; \
                 keep the CA and remove insecure (or remove the CA to skip verification)"
                    .into(),
            );
        }
        out
    }

    /// Reads and checks ca_file and ca_pem into [`DriverConfig::trusted`] (both may be given:
    /// all their certificates are trusted).
    fn load_cas(&mut self) -> Result<(), CaError> {
        let mut certs = Vec::new();
        if let Some(path) = &self.ca_file {
            let shown = format!("'{}'", path.display());
            let text = crate::limits::read_input_file(path, "CA certificate")
                .map_err(CaError::Unreadable)?;
            certs.extend(parse_cas(&text, "driver_config.ca_file", &shown)?);
        }
        if let Some(pem) = &self.ca_pem {
            certs.extend(parse_cas(&pem.0, "driver_config.ca_pem", "(inline)")?);
        }
        self.trusted = TrustedCas(certs);
        Ok(())
    }

    /// What run.json records: the settings as given, but inline PEM only as a note.
    fn recorded(&self) -> DriverConfig {
        let mut out = self.clone();
        if let Some(pem) = &self.ca_pem {
            let n = CertificateDer::pem_slice_iter(pem.0.as_bytes()).count();
            out.ca_pem = Some(Pem(format!(
                "given inline: {n} certificate(s), not recorded"
            )));
        }
        out
    }
}

/// A complete, checked S3 target: everything a driver needs.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: Secret,
    pub bucket: String,
    pub region: String,
    pub driver: DriverKind,
    pub driver_config: DriverConfig,
    /// Every gateway and bucket when there are several (`endpoint` and `bucket` are the first).
    pub spread: Spread,
}

/// What a run records about its target: no credentials, and no inline PEM (see
/// [`DriverConfig`]'s `ca_pem`, recorded as a note of how many certificates it held).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub driver: DriverKind,
    pub driver_config: DriverConfig,
    /// True when the target is the embedded demo server, not a real S3 endpoint.
    pub embedded: bool,
    /// Every gateway (with the policy) and bucket, when there are several.
    #[serde(flatten)]
    pub spread: Spread,
}

pub const DEFAULT_BUCKET: &str = "chopsticks";
pub const DEFAULT_REGION: &str = "us-east-1";

/// Why the connection settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("workload config: {0}")]
    File(crate::limits::FileError),
    #[error("workload config {path}: {message}; fix the file (format: endpoint, access_key, secret_key, bucket, region, driver, driver_config)")]
    Syntax { path: String, message: String },
    #[error("workload config {origin}: {problem}")]
    Invalid { origin: String, problem: String },
}

/// Environment lookups, injectable so tests do not touch the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl WorkloadFile {
    pub fn load(path: &Path) -> Result<WorkloadFile, WorkloadError> {
        let shown = path.display().to_string();
        let text =
            crate::limits::read_input_file(path, "connection").map_err(WorkloadError::File)?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, origin: &str) -> Result<WorkloadFile, WorkloadError> {
        let syntax = |message: String| WorkloadError::Syntax {
            path: origin.to_string(),
            message,
        };
        crate::limits::check_yaml_shape(text).map_err(|e| syntax(e.to_string()))?;
        if text.trim().is_empty() {
            return Ok(WorkloadFile::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| syntax(e.to_string()))
    }

    /// Like [`WorkloadFile::resolve`] for a file the operator named: it must lead to an
    /// endpoint (its own or `S3_ENDPOINT_URL`). Only the absence of any configuration may
    /// select the embedded demo target, never a file that forgot its endpoint.
    pub fn resolve_file(
        self,
        env: &dyn Env,
        origin: &str,
    ) -> Result<WorkloadConfig, WorkloadError> {
        self.resolve(env, origin)?
            .ok_or_else(|| WorkloadError::Invalid {
                origin: origin.to_string(),
                problem:
                    "no endpoint; set endpoint: http://HOST:PORT in the file (or S3_ENDPOINT_URL)"
                        .into(),
            })
    }

    /// Fills gaps from the environment. `None` when no endpoint is configured anywhere
    /// (the caller may then start the embedded demo target).
    pub fn resolve(
        self,
        env: &dyn Env,
        origin: &str,
    ) -> Result<Option<WorkloadConfig>, WorkloadError> {
        let invalid = |problem: String| WorkloadError::Invalid {
            origin: origin.to_string(),
            problem,
        };
        let spread_err = |e: SpreadError| invalid(e.to_string());
        let given = match (self.endpoints, self.endpoint) {
            (Some(_), Some(_)) => return Err(spread_err(SpreadError::EndpointAndEndpoints)),
            (Some(list), None) => list,
            (None, Some(one)) => vec![one],
            (None, None) => match env.var("S3_ENDPOINT_URL") {
                Some(one) => vec![one],
                None => return Ok(None),
            },
        };
        let endpoints = endpoint_list(&given)
            .map_err(spread_err)?
            .iter()
            .map(|e| checked_endpoint(e).map_err(&invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let endpoint = endpoints[0].clone();
        let buckets = match (&self.buckets, &self.bucket) {
            (Some(_), Some(_)) => return Err(spread_err(SpreadError::BucketAndBuckets)),
            (Some(value), None) => bucket_names(value).map_err(spread_err)?,
            _ => Vec::new(),
        };
        let spread = Spread {
            endpoint_policy: (endpoints.len() > 1)
                .then(|| self.endpoint_policy.unwrap_or_default()),
            endpoints: if endpoints.len() > 1 {
                endpoints
            } else {
                Vec::new()
            },
            buckets: if buckets.len() > 1 {
                buckets.clone()
            } else {
                Vec::new()
            },
        };
        let access_key = self
            .access_key
            .or_else(|| env.var("AWS_ACCESS_KEY_ID"))
            .ok_or_else(|| {
                invalid("no access key; set access_key in the file or AWS_ACCESS_KEY_ID".into())
            })?;
        let secret_key = self
            .secret_key
            .or_else(|| env.var("AWS_SECRET_ACCESS_KEY").map(Secret::new))
            .ok_or_else(|| {
                invalid("no secret key; set secret_key in the file or AWS_SECRET_ACCESS_KEY".into())
            })?;
        let bucket = buckets
            .first()
            .cloned()
            .or(self.bucket)
            .unwrap_or_else(|| DEFAULT_BUCKET.to_string());
        if !valid_bucket_name(&bucket) {
            return Err(invalid(format!(
                "bucket '{bucket}' is not a valid S3 bucket name; use 3-63 lowercase letters, digits, dots and hyphens"
            )));
        }
        let mut driver_config = self.driver_config.unwrap_or_default();
        if let Some(problem) = driver_config.problems().into_iter().next() {
            return Err(invalid(problem));
        }
        match self.addressing.as_deref().map(str::trim) {
            None => {}
            Some("path") => driver_config.path_style = true,
            Some("virtual") => driver_config.path_style = false,
            Some(other) => {
                return Err(invalid(format!(
                    "addressing '{other}' is neither path nor virtual; write addressing: path (endpoint/bucket/key, the default) or addressing: virtual (bucket.endpoint/key)"
                )))
            }
        }
        driver_config.resolved = driver_config
            .resolve
            .iter()
            .filter_map(|(h, ip)| Some((h.clone(), ip.trim().parse().ok()?)))
            .collect();
        driver_config
            .load_cas()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Some(WorkloadConfig {
            endpoint,
            access_key,
            secret_key,
            bucket,
            region: self
                .region
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            driver: self.driver.unwrap_or_default(),
            driver_config,
            spread,
        }))
    }
}

/// `endpoint` trimmed and checked: an http(s) URL with a host and nothing after it, without
/// credentials. The error is the problem to report.
fn checked_endpoint(endpoint: &str) -> Result<String, String> {
    let endpoint = endpoint.trim().trim_end_matches('/').to_string();
    let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
    let parsed = reqwest::Url::parse(&endpoint).ok();
    let Some(url) = parsed.filter(|u| scheme_ok && u.host_str().is_some()) else {
        return Err(format!(
            "endpoint '{endpoint}' is not a URL; write it as http://HOST:PORT or https://HOST"
        ));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "endpoint '{}' carries credentials; give only http://HOST:PORT and put the keys in access_key and secret_key",
            url.host_str().unwrap_or("?")
        ));
    }
    // The bucket and keys go in the path; an endpoint with its own path, query or fragment
    // would be sent somewhere else than the operator thinks.
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "endpoint '{endpoint}' has a path, query or fragment; give only http://HOST:PORT (the bucket goes in bucket:)"
        ));
    }
    Ok(endpoint)
}

fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl WorkloadConfig {
    /// The warning every front end shows (stderr and log) when certificates go unchecked.
    pub fn insecure_warning(&self) -> Option<String> {
        self.driver_config.insecure.then(|| {
            format!(
                "WARNING: driver_config.insecure is true: the TLS certificate of {} is NOT verified; \
                 anyone on the network path can impersonate the gateway and read or change object data. \
                 Set driver_config.ca_file to the CA that signed its certificate instead.",
                self.endpoint
            )
        })
    }

    /// Every gateway, in order (one when the file names one).
    pub fn endpoints(&self) -> Vec<String> {
        if self.spread.endpoints.is_empty() {
            vec![self.endpoint.clone()]
        } else {
            self.spread.endpoints.clone()
        }
    }

    /// Every bucket users are spread over, in order (one when the file names one).
    pub fn buckets(&self) -> Vec<String> {
        if self.spread.buckets.is_empty() {
            vec![self.bucket.clone()]
        } else {
            self.spread.buckets.clone()
        }
    }

    /// The same target on one gateway and one bucket: what one driver is built for.
    pub fn single(&self, endpoint: &str, bucket: &str) -> WorkloadConfig {
        WorkloadConfig {
            endpoint: endpoint.to_string(),
            bucket: bucket.to_string(),
            spread: Spread::default(),
            ..self.clone()
        }
    }

    pub fn info(&self, embedded: bool) -> TargetInfo {
        TargetInfo {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            driver: self.driver,
            driver_config: self.driver_config.recorded(),
            embedded,
            spread: self.spread.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl Env for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> FakeEnv {
        FakeEnv(pairs.iter().copied().collect())
    }

    #[test]
    fn addressing_and_resolve_are_checked_and_parsed() {
        let base = "endpoint: http://localhost:7480\naccess_key: AK\nsecret_key: SK\n";
        let c = WorkloadFile::parse(
            &format!("{base}addressing: virtual\ndriver_config: {{resolve: {{b.localhost: 127.0.0.1}}}}\n"),
            "t",
        )
        .unwrap()
        .resolve(&env(&[]), "t")
        .unwrap()
        .unwrap();
        assert!(!c.driver_config.path_style);
        assert_eq!(
            c.driver_config.resolved,
            vec![("b.localhost".to_string(), "127.0.0.1".parse().unwrap())]
        );
        for (extra, words) in [
            ("addressing: vhost\n", "addressing 'vhost' is neither path nor virtual; write addressing: path"),
            (
                "driver_config: {resolve: {b.localhost: my-gateway}}\n",
                "driver_config.resolve.b.localhost: 'my-gateway' is not an IP address; give the address",
            ),
        ] {
            let e = WorkloadFile::parse(&format!("{base}{extra}"), "t")
                .unwrap()
                .resolve(&env(&[]), "t")
                .unwrap_err()
                .to_string();
            assert!(e.contains(words), "{extra}: {e}");
        }
    }

    #[test]
    fn seed_format_parses_and_never_shows_the_secret() {
        let f = WorkloadFile::parse(
            "endpoint: http://10.0.0.1:80\naccess_key: AK\nsecret_key: SUPERSECRET\nbucket: test-bucket\nregion: default\ndriver: aws-sdk\ndriver_config: {retries: 2}\n",
            "t",
        )
        .unwrap();
        let c = f.resolve(&env(&[]), "t").unwrap().unwrap();
        assert_eq!(c.endpoint, "http://10.0.0.1:80");
        assert_eq!(c.bucket, "test-bucket");
        assert_eq!(c.driver_config.retries, 2);
        let shown = format!("{c:?}");
        assert!(!shown.contains("SUPERSECRET"), "{shown}");
        assert_eq!(c.secret_key.expose(), "SUPERSECRET");
    }

    #[test]
    fn environment_fills_gaps_and_no_endpoint_means_none() {
        let e = env(&[
            ("S3_ENDPOINT_URL", "http://127.0.0.1:7480/"),
            ("AWS_ACCESS_KEY_ID", "a"),
            ("AWS_SECRET_ACCESS_KEY", "b"),
        ]);
        let c = WorkloadFile::default().resolve(&e, "t").unwrap().unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:7480");
        assert_eq!(c.bucket, DEFAULT_BUCKET);
        assert!(WorkloadFile::default()
            .resolve(&env(&[]), "t")
            .unwrap()
            .is_none());
    }

    #[test]
    fn missing_keys_and_bad_values_say_what_to_set() {
        let f = WorkloadFile::parse("endpoint: http://h:1\n", "t").unwrap();
        let e = f.resolve(&env(&[]), "t").unwrap_err().to_string();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        let f = WorkloadFile::parse("endpoint: h:1\naccess_key: a\nsecret_key: b\n", "t").unwrap();
        let e = f.resolve(&env(&[]), "t").unwrap_err().to_string();
        assert!(e.contains("http://HOST:PORT"), "{e}");
        let f = WorkloadFile::parse(
            "endpoint: http://h\naccess_key: a\nsecret_key: b\nbucket: Bad_Bucket\n",
            "t",
        )
        .unwrap();
        let e = f.resolve(&env(&[]), "t").unwrap_err().to_string();
        assert!(e.contains("not a valid S3 bucket name"), "{e}");
        let e = WorkloadFile::parse("endpont: x\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `endpont`"), "{e}");
    }

    /// A self-signed CA certificate, public, made for these tests only.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBmzCCAUGgAwIBAgIUbklpTkqkxCRHOp040ygrvkJ4RE4wCgYIKoZIzj0EAwIw\nIjEgMB4GA1UEAwwXQ2hvcHN0aWNrcyB1bml0LXRlc3QgQ0EwIBcNMjYxMTI5MDcx\nOTE4WhgPMjEyNjExMDUwNzE5MThaMCIxIDAeBgNVBAMMF0Nob3BzdGlja3MgdW5p\ndC10ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEm5fdy/aZh+I30nLg\n/N0Mgp60P458BjHU4/d883V8DfJ/kNEXUxmkbVPYT3+hPFnCpeSAcPWJ91234LV9\nSdqvqKNTMFEwHQYDVR0OBBYEFBzHeEVoG6HW/LrLJ1m0HCokkR+5MB8GA1UdIwQY\nMBaAFBzHeEVoG6HW/LrLJ1m0HCokkR+5MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI\nzj0EAwIDSAAwRQIhAM4qSRJmiv6kh+TLtGtmeBO2XV99Otb90ylquSDHzuxmAiA8\nvZ+KAaVLXbEG5vj5ZnQ+1x08IsllNN4yY1+N9K01mg==\n-----END CERTIFICATE-----\n";

    fn resolved(driver_config: &str) -> Result<WorkloadConfig, String> {
        let text = format!(
            "endpoint: https://h\naccess_key: a\nsecret_key: b\ndriver_config: {driver_config}\n"
        );
        WorkloadFile::parse(&text, "t")
            .map_err(|e| e.to_string())?
            .resolve(&env(&[]), "t")
            .map(|c| c.expect("endpoint given"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ca_file_and_ca_pem_are_both_trusted_and_inline_pem_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, TEST_CA).unwrap();
        let inline = serde_json::to_string(TEST_CA).unwrap();
        let c = resolved(&format!(
            "{{ca_file: {}, ca_pem: {inline}}}",
            file.display()
        ))
        .unwrap();
        assert_eq!(c.driver_config.trusted.0.len(), 2);
        let shown = format!("{c:?}");
        assert!(!shown.contains("BEGIN"), "{shown}");
        let recorded = serde_json::to_string(&c.info(false)).unwrap();
        assert!(!recorded.contains("BEGIN"), "{recorded}");
        assert!(
            recorded.contains("given inline: 1 certificate(s), not recorded"),
            "{recorded}"
        );
        assert!(recorded.contains(&file.display().to_string()), "{recorded}");
        assert!(c.insecure_warning().is_none());
        // The connection file the charm renders keeps the PEM as given.
        let rendered = serde_json::to_value(&c.driver_config).unwrap();
        assert_eq!(rendered["ca_pem"], TEST_CA);
    }

    #[test]
    fn bad_ca_settings_name_the_field_and_the_fix() {
        let e = resolved("{ca_file: /nonexistent.pem}").unwrap_err();
        assert!(
            e.contains("driver_config.ca_file") && e.contains("/nonexistent.pem"),
            "{e}"
        );
        let e = resolved("{ca_pem: 'nothing here'}").unwrap_err();
        assert!(
            e.contains("driver_config.ca_pem (inline) holds no PEM certificate"),
            "{e}"
        );
        assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
        let e = resolved(
            "{ca_pem: \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"}",
        )
        .unwrap_err();
        assert!(e.contains("not a usable X.509 certificate"), "{e}");
        let inline = serde_json::to_string(TEST_CA).unwrap();
        let e = resolved(&format!("{{ca_pem: {inline}, insecure: true}}")).unwrap_err();
        assert!(e.contains("driver_config.insecure"), "{e}");
        let c = resolved("{insecure: true}").unwrap();
        let warning = c.insecure_warning().expect("a warning");
        assert!(warning.contains("NOT verified"), "{warning}");
        assert!(c.info(false).driver_config.insecure);
    }

    fn spread(extra: &str) -> Result<WorkloadConfig, String> {
        let text = format!("access_key: a\nsecret_key: b\n{extra}");
        WorkloadFile::parse(&text, "t")
            .map_err(|e| e.to_string())?
            .resolve(&env(&[]), "t")
            .map(|c| c.expect("endpoint given"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn several_gateways_from_a_list_or_a_range_are_recorded_with_the_policy() {
        let c = spread("endpoints: [http://127.0.0.1:7480, 'http://127.0.0.2:7480/']\n").unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:7480");
        assert_eq!(
            c.endpoints(),
            ["http://127.0.0.1:7480", "http://127.0.0.2:7480"]
        );
        assert_eq!(c.spread.endpoint_policy, Some(EndpointPolicy::User));
        let c =
            spread("endpoint: https://rgw{1...3}.example:443\nendpoint_policy: least_in_flight\n")
                .unwrap();
        assert_eq!(
            c.endpoints(),
            [
                "https://rgw1.example:443",
                "https://rgw2.example:443",
                "https://rgw3.example:443"
            ]
        );
        let recorded = serde_json::to_value(c.info(false)).unwrap();
        assert_eq!(recorded["endpoints"].as_array().unwrap().len(), 3);
        assert_eq!(recorded["endpoint_policy"], "least_in_flight");
        assert_eq!(
            expand_endpoint("http://h{08...10}:1").unwrap(),
            ["http://h08:1", "http://h09:1", "http://h10:1"]
        );
        // One gateway records nothing new.
        let c = spread("endpoint: http://h:1\nendpoint_policy: request\n").unwrap();
        assert!(c.spread.endpoints.is_empty() && c.spread.endpoint_policy.is_none());
        let recorded = serde_json::to_value(c.info(false)).unwrap();
        assert!(recorded.get("endpoints").is_none(), "{recorded}");
    }

    #[test]
    fn bad_gateway_settings_name_the_field_and_the_fix() {
        let cases = [
            ("endpoints: []\n", "endpoints: [] names no gateway"),
            (
                "endpoint: 'http://h{1...}:1'\n",
                "LAST '' is not a whole number",
            ),
            ("endpoint: 'http://h{3...1}:1'\n", "FIRST 3 is above LAST 1"),
            (
                "endpoint: 'http://h{1...100000}:1'\n",
                "above the limit of 64",
            ),
            (
                "endpoint: 'http://h{1..3}:1'\n",
                "no '...' between the braces",
            ),
            (
                "endpoint: 'http://h{1...2}{1...2}:1'\n",
                "more than one range",
            ),
            ("endpoints: [http://h:1, http://h:1]\n", "appears twice"),
            (
                "endpoint: http://a:1\nendpoints: [http://b:1]\n",
                "either endpoint or endpoints",
            ),
            ("endpoints: [http://a:1, 'b:1']\n", "'b:1' is not a URL"),
            (
                "endpoints: [http://a:1, http://b:1]\nendpoint_policy: random\n",
                "unknown variant `random`",
            ),
        ];
        for (yaml, needle) in cases {
            let e = spread(yaml).unwrap_err();
            assert!(e.contains(needle), "{yaml}: {e}");
        }
        let e = spread("endpoint: 'http://h{x...2}:1'\n").unwrap_err();
        assert!(e.contains("{FIRST...LAST}"), "{e}");
    }

    #[test]
    fn many_buckets_from_a_count_or_a_list() {
        let c = spread("endpoint: http://h:1\nbuckets: {count: 3, prefix: load-}\n").unwrap();
        assert_eq!(c.buckets(), ["load-1", "load-2", "load-3"]);
        assert_eq!(c.bucket, "load-1");
        let c = spread("endpoint: http://h:1\nbuckets: {count: 2}\n").unwrap();
        assert_eq!(c.buckets(), ["chopsticks-1", "chopsticks-2"]);
        let c = spread("endpoint: http://h:1\nbuckets: [alpha, beta]\n").unwrap();
        assert_eq!(c.buckets(), ["alpha", "beta"]);
        let recorded = serde_json::to_value(c.info(false)).unwrap();
        assert_eq!(recorded["buckets"], serde_json::json!(["alpha", "beta"]));
        let cases = [
            (
                "buckets: {count: 0}\n",
                "buckets.count 0 is below the minimum of 1",
            ),
            (
                "buckets: {count: -2}\n",
                "buckets.count 0 is below the minimum of 1",
            ),
            (
                "buckets: {count: 101}\n",
                "buckets.count 101 is above the limit of 100",
            ),
            ("buckets: {count: two}\n", "is not a whole number"),
            ("buckets: {cont: 2}\n", "unknown key cont"),
            ("buckets: []\n", "buckets 0 is below the minimum of 1"),
            (
                "buckets: [Bad_Name]\n",
                "'Bad_Name' is not a valid S3 bucket name",
            ),
            ("buckets: [aaa, aaa]\n", "'aaa' appears twice"),
            (
                "buckets: {count: 2, prefix: X}\n",
                "'X1' is not a valid S3 bucket name",
            ),
            ("bucket: a\nbuckets: [b, c]\n", "either bucket or buckets"),
        ];
        for (yaml, needle) in cases {
            let e = spread(&format!("endpoint: http://h:1\n{yaml}")).unwrap_err();
            assert!(e.contains(needle), "{yaml}: {e}");
        }
    }
}
