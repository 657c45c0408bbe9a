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
    /// `path` (`endpoint/bucket/key`, the default) or `virtual` (`bucket.endpoint/key`);
    /// sets `driver_config.path_style`. Checked in [`WorkloadFile::resolve`].
    #[serde(default)]
    pub addressing: Option<String>,
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
        let endpoint = match self.endpoint.or_else(|| env.var("S3_ENDPOINT_URL")) {
            Some(e) => e,
            None => return Ok(None),
        };
        let endpoint = endpoint.trim().trim_end_matches('/').to_string();
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        let parsed = reqwest::Url::parse(&endpoint).ok();
        let Some(url) = parsed.filter(|u| scheme_ok && u.host_str().is_some()) else {
            return Err(invalid(format!(
                "endpoint '{endpoint}' is not a URL; write it as http://HOST:PORT or https://HOST"
            )));
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(format!(
                "endpoint '{}' carries credentials; give only http://HOST:PORT and put the keys in access_key and secret_key",
                url.host_str().unwrap_or("?")
            )));
        }
        // The bucket and keys go in the path; an endpoint with its own path, query or fragment
        // would be sent somewhere else than the operator thinks.
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(format!(
                "endpoint '{endpoint}' has a path, query or fragment; give only http://HOST:PORT (the bucket goes in bucket:)"
            )));
        }
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
        let bucket = self.bucket.unwrap_or_else(|| DEFAULT_BUCKET.to_string());
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
        }))
    }
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

    pub fn info(&self, embedded: bool) -> TargetInfo {
        TargetInfo {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            driver: self.driver,
            driver_config: self.driver_config.recorded(),
            embedded,
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
}
