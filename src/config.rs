//! The charm's configuration (`config.yaml`), read from `config-get` and checked.
//!
//! Every problem becomes a message for a `blocked` status that names the option to set,
//! so an operator sees what to fix in `juju status`.

use crate::juju::HookTools;
use chopsticks::limits::{self, LimitError};
use chopsticks::s3_config::{DriverConfig, DriverKind};
use serde_json::{Map, Value};

/// The options, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct CharmConfig {
    pub s3_endpoint: String,
    pub s3_access_key: String,
    pub s3_secret_key: String,
    /// A Juju secret id holding `access-key` and `secret-key`; preferred over the plain keys.
    pub s3_credentials: String,
    pub s3_bucket: String,
    pub s3_region: String,
    pub s3_driver: String,
    pub s3_driver_config_yaml: String,
    /// PEM of the CA(s) that signed the gateway's certificate, trusted on top of the system's.
    pub s3_ca_chain: String,
    /// Skip TLS certificate verification (the daemons warn loudly in their logs).
    pub s3_insecure: bool,
    /// Several gateways instead of `s3-endpoint`: URLs separated by spaces or commas, each may
    /// hold one `{a...b}` range; empty for the one `s3-endpoint`.
    pub s3_endpoints: String,
    /// Buckets users are spread over: 1 is `s3-bucket` itself, N > 1 are `s3-bucket`-1 ...
    /// `s3-bucket`-N (the engine's `buckets: {count: N, prefix: <s3-bucket>-}`).
    pub s3_bucket_count: u32,
    pub scenario_file: String,
    pub default_users: u32,
    pub default_spawn_rate: f64,
    pub default_duration: String,
    pub coordinator_port: u16,
    pub control_port: u16,
    pub web_port: u16,
    pub log_level: String,
    /// The `scenarios` option as given: a YAML map of name → scenario, read by
    /// [`crate::scenarios::configured`] when an action needs it.
    pub scenarios: String,
}

/// The S3 settings the daemons get, rendered into `s3_config.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Settings {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
    pub driver: DriverKind,
    pub driver_config: DriverConfig,
    /// Every gateway when there are several (ranges expanded; `endpoint` is the first);
    /// empty for one.
    pub endpoints: Vec<String>,
    /// Every bucket when there are several (`bucket` is the first); empty for one.
    pub buckets: Vec<String>,
    /// How buckets are addressed, rendered as the connection file's top-level `addressing`
    /// (which the engine applies over `driver_config.path_style`).
    pub addressing: Addressing,
}

/// The connection file's `addressing`: how the engine names a bucket in its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `endpoint/bucket/key` (RadosGW without wildcard DNS; the default).
    Path,
    /// Virtual-hosted: `bucket.endpoint-host/key`.
    Virtual,
}

impl Addressing {
    /// The value the engine's connection file takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Addressing::Path => "path",
            Addressing::Virtual => "virtual",
        }
    }

    /// What `driver_config.path_style` means.
    pub fn from_path_style(path_style: bool) -> Addressing {
        if path_style {
            Addressing::Path
        } else {
            Addressing::Virtual
        }
    }
}

/// The status message while S3 is not configured.
pub const NEEDS_S3: &str = "set s3-endpoint, s3-access-key and s3-secret-key (or s3-credentials), or integrate an s3 provider: juju integrate chopsticks:s3-credentials <s3-integrator or ceph-radosgw>";

/// Why the options cannot be used; each message names the option and the fix (it becomes a
/// `blocked` status). Bounds come from the engine's `chopsticks::limits`, the same ones the
/// coordinator applies to a start request.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration: {0}")]
    Read(#[source] crate::juju::ToolError),
    #[error("{option} {value} is not a TCP port; use 1-65535")]
    Port { option: &'static str, value: String },
    #[error("coordinator-port, control-port and web-port must be three different ports")]
    SamePorts,
    #[error("{option} {value} is not a whole number; {fix}")]
    NotWhole {
        option: &'static str,
        value: String,
        fix: &'static str,
    },
    #[error("{option} {value} is not a number; {fix}")]
    NotANumber {
        option: &'static str,
        value: String,
        fix: &'static str,
    },
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("default-duration={value}: {source}")]
    Duration {
        value: String,
        #[source]
        source: chopsticks::duration::DurationError,
    },
    #[error("log-level '{0}' is not one of error, warn, info, debug, trace")]
    LogLevel(String),
    #[error("{option} {value} is not a boolean; use true or false")]
    NotBool { option: &'static str, value: String },
}

/// Why the S3 settings cannot be rendered; each message says what to set.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// Nothing (or not enough) is configured yet.
    #[error("{NEEDS_S3}")]
    NotConfigured,
    #[error("cannot read the s3-credentials secret ({0}); grant it: juju grant-secret <secret> chopsticks")]
    SecretUnreadable(String),
    #[error(
        "the s3-credentials secret needs the keys access-key and secret-key; update it with juju update-secret"
    )]
    SecretKeys,
    #[error("s3-driver '{0}' is not known; use lean (the default) or aws-sdk")]
    Driver(String),
    #[error("s3-driver-config-yaml is not a valid driver config: {0}")]
    DriverConfig(#[source] serde_yaml_ng::Error),
    #[error("s3-ca-chain and s3-driver-config-yaml's ca_pem both give a CA; keep one of them")]
    CaTwice,
    #[error("s3-endpoint and s3-endpoints are both set; put every gateway in s3-endpoints and unset s3-endpoint (juju config chopsticks --reset s3-endpoint)")]
    EndpointTwice,
    /// The engine's own check of the endpoint, bucket and driver tuning.
    #[error("{0}")]
    Engine(String),
    /// The `s3-credentials` relation's data cannot be used.
    #[error(transparent)]
    Relation(#[from] crate::s3_relation::RelationError),
    /// Related to an s3 provider (named) that has not sent credentials yet.
    #[error("waiting for credentials from relation s3-credentials ({0})")]
    RelationPending(String),
}

fn text(map: &Map<String, Value>, key: &str, default: &str) -> String {
    match map.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Null) | None => default.to_string(),
        Some(other) => other.to_string(),
    }
}

/// A whole-number option, read as an integer (never through f64): `Ok(None)` when unset.
fn whole(
    map: &Map<String, Value>,
    option: &'static str,
    fix: &'static str,
) -> Result<Option<i128>, ConfigError> {
    let not_whole = |value: String| ConfigError::NotWhole { option, value, fix };
    match map.get(option) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Ok(Some(u as i128)),
            (None, Some(i)) => Ok(Some(i as i128)),
            _ => Err(not_whole(n.to_string())),
        },
        Some(Value::String(s)) => s
            .trim()
            .parse::<i128>()
            .map(Some)
            .map_err(|_| not_whole(format!("'{s}'"))),
        Some(other) => Err(not_whole(other.to_string())),
    }
}

fn flag(map: &Map<String, Value>, option: &'static str) -> Result<bool, ConfigError> {
    match map.get(option) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.trim() == "true" => Ok(true),
        Some(Value::String(s)) if s.trim() == "false" => Ok(false),
        Some(other) => Err(ConfigError::NotBool {
            option,
            value: other.to_string(),
        }),
    }
}

fn port(map: &Map<String, Value>, option: &'static str, default: u16) -> Result<u16, ConfigError> {
    let bad = |value: String| ConfigError::Port { option, value };
    match whole(map, option, "use 1-65535").map_err(|e| match e {
        ConfigError::NotWhole { value, .. } => bad(value),
        other => other,
    })? {
        None => Ok(default),
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(p.to_string())),
    }
}

impl CharmConfig {
    /// Reads and checks the options.
    pub fn load(tools: &dyn HookTools) -> Result<CharmConfig, ConfigError> {
        let map = tools.config().map_err(ConfigError::Read)?;
        Self::from_map(&map)
    }

    pub fn from_map(map: &Map<String, Value>) -> Result<CharmConfig, ConfigError> {
        let users = match whole(map, "default-users", limits::USERS.fix)? {
            None => 10,
            Some(n) => {
                let n = limits::USERS.check_whole("default-users", n)?;
                limits::USERS.check_u32("default-users", n)?
            }
        };
        let spawn_rate = match map.get("default-spawn-rate") {
            None | Some(Value::Null) => 2.0,
            Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| ConfigError::NotANumber {
                option: "default-spawn-rate",
                value: format!("'{s}'"),
                fix: limits::SPAWN_RATE.fix,
            })?,
            Some(other) => {
                return Err(ConfigError::NotANumber {
                    option: "default-spawn-rate",
                    value: other.to_string(),
                    fix: limits::SPAWN_RATE.fix,
                })
            }
        };
        let spawn_rate = limits::SPAWN_RATE.check("default-spawn-rate", spawn_rate)?;
        let duration = text(map, "default-duration", "10m");
        if let Err(source) = chopsticks::duration::parse(&duration) {
            return Err(ConfigError::Duration {
                value: duration,
                source,
            });
        }
        let log_level = text(map, "log-level", "info").to_lowercase();
        if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
            return Err(ConfigError::LogLevel(log_level));
        }
        let config = CharmConfig {
            s3_endpoint: text(map, "s3-endpoint", ""),
            s3_access_key: text(map, "s3-access-key", ""),
            s3_secret_key: text(map, "s3-secret-key", ""),
            s3_credentials: text(map, "s3-credentials", ""),
            s3_bucket: text(map, "s3-bucket", chopsticks::s3_config::DEFAULT_BUCKET),
            s3_region: text(map, "s3-region", chopsticks::s3_config::DEFAULT_REGION),
            s3_driver: text(map, "s3-driver", "lean"),
            s3_driver_config_yaml: text(map, "s3-driver-config-yaml", ""),
            s3_ca_chain: text(map, "s3-ca-chain", ""),
            s3_insecure: flag(map, "s3-insecure")?,
            s3_endpoints: text(map, "s3-endpoints", ""),
            s3_bucket_count: match whole(map, "s3-bucket-count", limits::BUCKETS.fix)? {
                None => 1,
                Some(n) => {
                    let n = limits::BUCKETS.check_whole("s3-bucket-count", n)?;
                    limits::BUCKETS.check_u32("s3-bucket-count", n)?
                }
            },
            scenario_file: text(map, "scenario-file", "s3_large_objects"),
            default_users: users,
            default_spawn_rate: spawn_rate,
            default_duration: duration,
            coordinator_port: port(map, "coordinator-port", 5557)?,
            control_port: port(map, "control-port", 5558)?,
            web_port: port(map, "web-port", 8089)?,
            log_level,
            scenarios: match map.get("scenarios") {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            },
        };
        let ports = [
            config.coordinator_port,
            config.control_port,
            config.web_port,
        ];
        if ports[0] == ports[1] || ports[0] == ports[2] || ports[1] == ports[2] {
            return Err(ConfigError::SamePorts);
        }
        Ok(config)
    }

    /// The S3 settings, or the blocked message saying what to set. `credentials` is the
    /// content of the `s3-credentials` secret when that option is set.
    pub fn s3(
        &self,
        credentials: Option<&crate::juju::SecretContent>,
    ) -> Result<S3Settings, S3Error> {
        let (access_key, secret_key) = match credentials {
            Some(c) => {
                let get = |k: &str| c.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
                let (a, s) = (get("access-key"), get("secret-key"));
                if a.is_empty() || s.is_empty() {
                    return Err(S3Error::SecretKeys);
                }
                (a, s)
            }
            None => (self.s3_access_key.clone(), self.s3_secret_key.clone()),
        };
        let endpoints: Vec<String> = self
            .s3_endpoints
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        if !endpoints.is_empty() && !self.s3_endpoint.is_empty() {
            return Err(S3Error::EndpointTwice);
        }
        if (self.s3_endpoint.is_empty() && endpoints.is_empty())
            || access_key.is_empty()
            || secret_key.is_empty()
        {
            return Err(S3Error::NotConfigured);
        }
        let driver = match self.s3_driver.as_str() {
            "lean" | "" => DriverKind::Lean,
            "aws-sdk" => DriverKind::AwsSdk,
            "s5cmd" => DriverKind::S5cmd,
            other => return Err(S3Error::Driver(other.to_string())),
        };
        let mut driver_config: DriverConfig = if self.s3_driver_config_yaml.is_empty() {
            DriverConfig::default()
        } else {
            serde_yaml_ng::from_str(&self.s3_driver_config_yaml).map_err(S3Error::DriverConfig)?
        };
        if !self.s3_ca_chain.is_empty() {
            if driver_config.ca_pem.is_some() {
                return Err(S3Error::CaTwice);
            }
            driver_config.ca_pem = Some(chopsticks::s3_config::Pem(self.s3_ca_chain.clone()));
        }
        if self.s3_insecure {
            driver_config.insecure = true;
        }
        // Options only: `driver_config.path_style` (default true) decides; a relation's
        // `s3-uri-style` is put over it later (`s3_relation::Provided::adjust`).
        let addressing = Addressing::from_path_style(driver_config.path_style);
        // The engine's own checks (URL, bucket name, driver tuning), with the charm's names.
        let several_buckets = self.s3_bucket_count > 1;
        let file = chopsticks::s3_config::WorkloadFile {
            endpoint: endpoints.is_empty().then(|| self.s3_endpoint.clone()),
            endpoints: (!endpoints.is_empty()).then_some(endpoints),
            access_key: Some(access_key.clone()),
            secret_key: Some(chopsticks::s3_config::Secret::new(secret_key.clone())),
            bucket: (!several_buckets).then(|| self.s3_bucket.clone()),
            buckets: several_buckets.then(|| {
                let mut m = serde_yaml_ng::Mapping::new();
                m.insert("count".into(), u64::from(self.s3_bucket_count).into());
                m.insert("prefix".into(), format!("{}-", self.s3_bucket).into());
                serde_yaml_ng::Value::Mapping(m)
            }),
            region: Some(self.s3_region.clone()),
            driver: Some(driver),
            driver_config: Some(driver_config.clone()),
            addressing: Some(addressing.as_str().to_string()),
            ..Default::default()
        };
        let resolved = file
            .resolve(&NoEnv, "charm config")
            .map_err(|e| {
                // The engine names the file it read; the charm's options are no file.
                let mut m = match e {
                    chopsticks::s3_config::WorkloadError::Invalid { problem, .. } => problem,
                    other => other.to_string(),
                };
                // Name the charm's own options where they are what the engine refused.
                if !self.s3_ca_chain.is_empty() {
                    m = m.replace("driver_config.ca_pem (inline)", "s3-ca-chain");
                }
                if self.s3_insecure {
                    m = m.replace("driver_config.insecure: true", "s3-insecure=true");
                }
                S3Error::Engine(m)
            })?
            .ok_or(S3Error::NotConfigured)?;
        Ok(S3Settings {
            endpoint: resolved.endpoint,
            access_key,
            secret_key,
            bucket: resolved.bucket,
            region: resolved.region,
            driver,
            driver_config,
            endpoints: resolved.spread.endpoints,
            buckets: resolved.spread.buckets,
            addressing,
        })
    }
}

/// The charm never fills S3 settings from its own environment.
struct NoEnv;

impl chopsticks::s3_config::Env for NoEnv {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// No environment, for resolving connection files in tests.
    pub(crate) struct NoEnvForTests;

    impl chopsticks::s3_config::Env for NoEnvForTests {
        fn var(&self, _name: &str) -> Option<String> {
            None
        }
    }

    fn cfg(v: Value) -> Result<CharmConfig, String> {
        CharmConfig::from_map(v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    /// A self-signed CA certificate, public, made for these tests only.
    pub(crate) const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBmzCCAUGgAwIBAgIUbklpTkqkxCRHOp040ygrvkJ4RE4wCgYIKoZIzj0EAwIw\nIjEgMB4GA1UEAwwXQ2hvcHN0aWNrcyB1bml0LXRlc3QgQ0EwIBcNMjYxMTI5MDcx\nOTE4WhgPMjEyNjExMDUwNzE5MThaMCIxIDAeBgNVBAMMF0Nob3BzdGlja3MgdW5p\ndC10ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEm5fdy/aZh+I30nLg\n/N0Mgp60P458BjHU4/d883V8DfJ/kNEXUxmkbVPYT3+hPFnCpeSAcPWJ91234LV9\nSdqvqKNTMFEwHQYDVR0OBBYEFBzHeEVoG6HW/LrLJ1m0HCokkR+5MB8GA1UdIwQY\nMBaAFBzHeEVoG6HW/LrLJ1m0HCokkR+5MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI\nzj0EAwIDSAAwRQIhAM4qSRJmiv6kh+TLtGtmeBO2XV99Otb90ylquSDHzuxmAiA8\nvZ+KAaVLXbEG5vj5ZnQ+1x08IsllNN4yY1+N9K01mg==\n-----END CERTIFICATE-----\n";

    #[test]
    fn several_gateways_and_buckets_from_the_options() {
        let base = json!({"s3-access-key": "a", "s3-secret-key": "b", "s3-bucket": "load"});
        let with = |extra: Value| {
            let mut m = base.as_object().unwrap().clone();
            m.extend(extra.as_object().unwrap().clone());
            CharmConfig::from_map(&m)
                .map_err(|e| e.to_string())
                .and_then(|c| c.s3(None).map_err(|e| e.to_string()))
        };
        let s = with(json!({
            "s3-endpoints": "http://10.0.0.1:80, http://rgw{1...2}.example:80",
            "s3-bucket-count": 3
        }))
        .unwrap();
        assert_eq!(
            s.endpoints,
            [
                "http://10.0.0.1:80",
                "http://rgw1.example:80",
                "http://rgw2.example:80"
            ]
        );
        assert_eq!(s.endpoint, "http://10.0.0.1:80");
        assert_eq!(s.buckets, ["load-1", "load-2", "load-3"]);
        assert_eq!(s.bucket, "load-1");
        // The rendered connection file reads back as the same gateways and buckets.
        let text = crate::render::Templates::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
            .s3_config(&s)
            .unwrap();
        let resolved = chopsticks::s3_config::WorkloadFile::parse(&text, "rendered")
            .unwrap()
            .resolve_file(&NoEnvForTests, "rendered")
            .unwrap();
        assert_eq!(resolved.spread.endpoints, s.endpoints);
        assert_eq!(resolved.spread.buckets, s.buckets);

        // One of each: the plain keys, no lists.
        let one = with(json!({"s3-endpoint": "http://h:80"})).unwrap();
        assert!(one.endpoints.is_empty() && one.buckets.is_empty());
        assert_eq!(one.bucket, "load");

        let both = with(json!({"s3-endpoint": "http://h:80", "s3-endpoints": "http://i:80"}));
        assert!(both.unwrap_err().contains("s3-endpoint and s3-endpoints"));
        for bad in [json!(0), json!(101), json!(-1), json!(2.5)] {
            let e =
                with(json!({"s3-endpoint": "http://h:80", "s3-bucket-count": bad})).unwrap_err();
            assert!(e.contains("s3-bucket-count"), "{bad}: {e}");
        }
        let e = with(json!({"s3-endpoints": "http://rgw{1...}:80"})).unwrap_err();
        assert!(e.contains("malformed"), "{e}");
    }

    #[test]
    fn ca_chain_and_insecure_reach_the_driver_config() {
        let base = json!({"s3-endpoint": "https://h", "s3-access-key": "a", "s3-secret-key": "b"});
        let with = |extra: Value| {
            let mut m = base.as_object().unwrap().clone();
            m.extend(extra.as_object().unwrap().clone());
            CharmConfig::from_map(&m).unwrap().s3(None)
        };
        let s = with(json!({"s3-ca-chain": TEST_CA})).unwrap();
        assert_eq!(s.driver_config.ca_pem.as_ref().unwrap().0, TEST_CA.trim());
        assert!(!s.driver_config.insecure);
        assert!(
            !format!("{s:?}").contains("BEGIN"),
            "the CA is not logged in full"
        );
        let s = with(json!({"s3-insecure": true})).unwrap();
        assert!(s.driver_config.insecure);
        let e = with(json!({"s3-ca-chain": "my CA, trust me"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("s3-ca-chain holds no PEM certificate"), "{e}");
        assert!(!e.contains("trust me"), "{e}");
        let e = with(json!({"s3-ca-chain": TEST_CA, "s3-insecure": true}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("s3-insecure=true"), "{e}");
    }

    #[test]
    fn defaults_apply_and_s3_is_required() {
        let c = cfg(json!({})).unwrap();
        assert_eq!(c.coordinator_port, 5557);
        assert_eq!(c.scenario_file, "s3_large_objects");
        assert_eq!(c.s3(None).unwrap_err().to_string(), NEEDS_S3);
    }

    #[test]
    fn plain_keys_or_a_secret() {
        let c = cfg(json!({"s3-endpoint": "http://10.0.0.1:80", "s3-access-key": "a", "s3-secret-key": "b", "s3-bucket": "test-bucket"})).unwrap();
        let s = c.s3(None).unwrap();
        assert_eq!((s.access_key.as_str(), s.secret_key.as_str()), ("a", "b"));
        let mut secret = crate::juju::SecretContent::new();
        secret.insert("access-key".into(), "sa".into());
        secret.insert("secret-key".into(), "ss".into());
        assert_eq!(c.s3(Some(&secret)).unwrap().access_key, "sa");
        secret.remove("secret-key");
        assert!(c
            .s3(Some(&secret))
            .unwrap_err()
            .to_string()
            .contains("access-key and secret-key"));
    }

    #[test]
    fn addressing_follows_path_style_from_the_options() {
        let base = json!({"s3-endpoint": "http://h:1", "s3-access-key": "a", "s3-secret-key": "b"});
        assert_eq!(
            cfg(base.clone()).unwrap().s3(None).unwrap().addressing,
            Addressing::Path
        );
        let mut m = base.as_object().unwrap().clone();
        m.insert("s3-driver-config-yaml".into(), json!("{path_style: false}"));
        let s = CharmConfig::from_map(&m).unwrap().s3(None).unwrap();
        assert_eq!(s.addressing, Addressing::Virtual);
        assert_eq!(s.addressing.as_str(), "virtual");
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = cfg(json!({"coordinator-port": 70000})).unwrap_err();
        assert!(e.contains("coordinator-port"), "{e}");
        let e = cfg(json!({"default-duration": "soon"})).unwrap_err();
        assert!(e.contains("default-duration"), "{e}");
        // Config-level bounds are the engine's (chopsticks::limits), read as integers.
        assert_eq!(
            cfg(json!({"default-users": 2_000_000})).unwrap_err(),
            "default-users 2000000 is above the limit of 1000000; give a whole number of users from 1 to 1000000"
        );
        assert!(cfg(json!({"default-users": 1.5}))
            .unwrap_err()
            .starts_with("default-users 1.5 is not a whole number"));
        assert!(cfg(json!({"default-spawn-rate": 1e9}))
            .unwrap_err()
            .starts_with("default-spawn-rate 1000000000 is above the limit of 100000"));
        assert_eq!(
            cfg(json!({"default-duration": "40d"})).unwrap_err(),
            format!(
                "default-duration=40d: {}",
                chopsticks::duration::parse("40d").unwrap_err()
            )
        );
        let c = cfg(json!({"s3-endpoint": "10.0.0.1", "s3-access-key": "a", "s3-secret-key": "b"}))
            .unwrap();
        assert!(c
            .s3(None)
            .unwrap_err()
            .to_string()
            .contains("http://HOST:PORT"));
        let c = cfg(json!({"s3-endpoint": "http://h", "s3-access-key": "a", "s3-secret-key": "b", "s3-driver-config-yaml": "retries: [1"})).unwrap();
        assert!(c
            .s3(None)
            .unwrap_err()
            .to_string()
            .contains("s3-driver-config-yaml"));
        let c = cfg(json!({"s3-endpoint": "http://h", "s3-access-key": "a", "s3-secret-key": "b", "s3-driver": "boto"})).unwrap();
        assert!(c
            .s3(None)
            .unwrap_err()
            .to_string()
            .contains("s3-driver 'boto'"));
        let e = cfg(json!({"s3-insecure": "maybe"})).unwrap_err();
        assert!(e.contains("s3-insecure"), "{e}");
    }
}
