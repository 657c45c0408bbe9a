//! The `s3-credentials` relation (interface `s3`, v0 and v1), implemented by hand as the
//! interface specs in canonical/charm-relation-interfaces say.
//!
//! Requirer side (us): the leader writes `bucket` (the `s3-bucket` option), and for v1
//! `requested-secrets` and `lib-version`, to our application databag. Provider side: its
//! application databag gives `bucket`, the keys (v0: `access-key`/`secret-key` in the databag;
//! v1: `secret-extra`, the URI of a Juju secret holding them) and optionally `endpoint`,
//! `region`, `path`, `s3-uri-style`, `storage-class`, `tls-ca-chain`, `s3-api-version`,
//! `attributes`. Every unit reads the provider's databag itself (application data is visible to
//! every unit of the other side), so workers get the credentials without the leader.
//!
//! [`parse`] turns the databag (and the secret's content) into one typed [`Provided`]; what it
//! gives overrides the matching `s3-*` options ([`Provided::apply`]).

use crate::config::{Addressing, CharmConfig, S3Settings};
use crate::juju::SecretContent;
use std::collections::BTreeMap;
use std::fmt;

/// The relation endpoint (metadata.yaml `requires`).
pub const ENDPOINT: &str = "s3-credentials";
/// What our leader asks a v1 provider to put in a secret (the spec's exact value).
pub const REQUESTED_SECRETS: &str = r#"["access-key", "secret-key"]"#;
/// The `lib-version` we announce: the v1 shape of the `s3` library (`LIBAPI.LIBPATCH`).
pub const LIB_VERSION: &str = "1.0";
/// The v1 field holding the secret URI.
pub const SECRET_EXTRA: &str = "secret-extra";

/// How buckets are addressed (`s3-uri-style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriStyle {
    /// `https://bucket.host/key`.
    Host,
    /// `https://host/bucket/key` (RadosGW without wildcard DNS; the default).
    Path,
}

/// What a provider gave, parsed and checked. `Debug` never shows the secret key.
#[derive(Clone, PartialEq)]
pub struct Provided {
    /// The provider application's name (shown in the status).
    pub remote_app: String,
    pub bucket: Option<String>,
    pub access_key: String,
    pub secret_key: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// A path in the bucket; the load engine writes under its own per-run prefixes and does
    /// not use it (the charm logs that it was given).
    pub path: Option<String>,
    pub uri_style: Option<UriStyle>,
    /// `tls-ca-chain` as one PEM bundle.
    pub ca_pem: Option<String>,
    /// Fields given that the engine does not use (`storage-class`, `attributes`): names only,
    /// since `attributes` may carry a server-side-encryption key.
    pub unused: Vec<&'static str>,
    /// The v1 secret the keys came from, `None` for v0.
    pub secret_id: Option<String>,
}

impl fmt::Debug for Provided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provided")
            .field("remote_app", &self.remote_app)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("uri_style", &self.uri_style)
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("secret_id", &self.secret_id)
            .finish()
    }
}

/// Why the provider's data cannot be used: each message names the relation, the provider, the
/// field and what to fix, never a value that could be secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RelationError {
    #[error("relation {ENDPOINT} ({app}): {field} {problem}; fix the provider's configuration")]
    Field {
        app: String,
        field: &'static str,
        problem: String,
    },
    /// The `secret-extra` secret cannot be read (removed, or no longer granted): the units
    /// stop their services rather than run on keys the provider withdrew. `message` is Juju's
    /// error (it names the secret's URI, never its content).
    #[error(
        "relation {ENDPOINT} ({app}): the secret in secret-extra cannot be read ({message}); the provider must send a new secret granted to this application (s3-integrator: juju run {app}/leader sync-s3-credentials), or remove the relation and set the s3-* options"
    )]
    Secret { app: String, message: String },
}

/// Parses the provider's application databag. `secret` is the content of the `secret-extra`
/// secret when the databag names one. `Ok(None)`: the provider has not sent credentials yet.
pub fn parse(
    remote_app: &str,
    bag: &BTreeMap<String, String>,
    secret: Option<&SecretContent>,
) -> Result<Option<Provided>, RelationError> {
    let field = |field: &'static str, problem: &str| RelationError::Field {
        app: remote_app.to_string(),
        field,
        problem: problem.to_string(),
    };
    let get = |k: &str| {
        bag.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let from_secret = |k: &str| {
        secret
            .and_then(|s| s.get(k))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let secret_id = get(SECRET_EXTRA);
    let (access_key, secret_key) = match (&secret_id, get("access-key"), get("secret-key")) {
        (Some(_), _, _) => match (from_secret("access-key"), from_secret("secret-key")) {
            (Some(a), Some(s)) => (a, s),
            (None, _) => return Err(field(SECRET_EXTRA, "has no access-key in its secret")),
            (_, None) => return Err(field(SECRET_EXTRA, "has no secret-key in its secret")),
        },
        (None, Some(a), Some(s)) => (a, s),
        (None, None, None) => return Ok(None),
        (None, None, Some(_)) => return Err(field("access-key", "is missing")),
        (None, Some(_), None) => return Err(field("secret-key", "is missing")),
    };
    let uri_style = match get("s3-uri-style").as_deref() {
        None => None,
        Some("path") => Some(UriStyle::Path),
        Some("host") => Some(UriStyle::Host),
        Some(other) => {
            return Err(field(
                "s3-uri-style",
                &format!("is '{}', not host or path", short(other)),
            ))
        }
    };
    match get("s3-api-version").as_deref() {
        None | Some("4") => {}
        Some(other) => {
            return Err(field(
                "s3-api-version",
                &format!(
                    "is '{}'; Chopsticks signs requests with AWS Signature Version 4 only",
                    short(other)
                ),
            ))
        }
    }
    let ca_pem = match get("tls-ca-chain") {
        None => None,
        Some(text) => Some(ca_chain(&text).map_err(|p| field("tls-ca-chain", &p))?),
    };
    let unused = ["storage-class", "attributes"]
        .into_iter()
        .filter(|k| get(k).is_some())
        .collect();
    Ok(Some(Provided {
        remote_app: remote_app.to_string(),
        bucket: get("bucket"),
        access_key,
        secret_key,
        endpoint: get("endpoint"),
        region: get("region"),
        path: get("path"),
        uri_style,
        ca_pem,
        unused,
        secret_id,
    }))
}

/// At most 40 characters of a provider's value, for a message about a non-secret field.
fn short(value: &str) -> String {
    value.chars().take(40).collect()
}

/// `tls-ca-chain`: a JSON list of certificates, each PEM or (as the spec words it) base64 of
/// one; returned as one PEM bundle.
fn ca_chain(text: &str) -> Result<String, String> {
    use base64::Engine;
    let entries: Vec<String> = serde_json::from_str(text)
        .map_err(|e| format!("is not a JSON list of PEM certificates ({e})"))?;
    if entries.is_empty() {
        return Err("is an empty list".into());
    }
    let mut bundle = String::new();
    for (i, entry) in entries.iter().enumerate() {
        let entry = entry.trim();
        let pem = if entry.starts_with("-----BEGIN") {
            entry.to_string()
        } else {
            let compact: String = entry.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|t| t.trim_start().starts_with("-----BEGIN"))
                .ok_or_else(|| {
                    format!("entry {i} is neither a PEM certificate nor base64 of one")
                })?
        };
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(format!("entry {i} holds no PEM certificate"));
        }
        bundle.push_str(pem.trim());
        bundle.push('\n');
    }
    Ok(bundle)
}

impl Provided {
    /// The configuration with what the relation gives put over the matching `s3-*` options.
    pub fn apply(&self, config: &CharmConfig) -> CharmConfig {
        let mut c = config.clone();
        c.s3_access_key = self.access_key.clone();
        c.s3_secret_key = self.secret_key.clone();
        // The relation's keys replace the s3-credentials secret's as well.
        c.s3_credentials.clear();
        if let Some(e) = &self.endpoint {
            // The provider's one gateway replaces s3-endpoints as well.
            c.s3_endpoint = e.clone();
            c.s3_endpoints.clear();
        }
        if let Some(b) = &self.bucket {
            // The provider's bucket is the one to use: no spread over <bucket>-1..N.
            c.s3_bucket = b.clone();
            c.s3_bucket_count = 1;
        }
        if let Some(r) = &self.region {
            c.s3_region = r.clone();
        }
        if let Some(ca) = &self.ca_pem {
            c.s3_ca_chain = ca.clone();
        }
        c
    }

    /// What `apply` cannot say through an option: the addressing style. `host` is the
    /// engine's virtual-hosted `addressing: virtual`, `path` its `addressing: path`; absent
    /// leaves the options' choice (path-style unless `s3-driver-config-yaml` says otherwise).
    pub fn adjust(&self, settings: &mut S3Settings) {
        let addressing = match self.uri_style {
            Some(UriStyle::Host) => Addressing::Virtual,
            Some(UriStyle::Path) => Addressing::Path,
            None => return,
        };
        settings.addressing = addressing;
        settings.driver_config.path_style = addressing == Addressing::Path;
    }

    /// The status note: where the credentials come from.
    pub fn source(&self) -> String {
        format!("credentials from relation {ENDPOINT} ({})", self.remote_app)
    }
}

/// What our leader writes to our application databag (v0 `bucket`; v1 also
/// `requested-secrets` and `lib-version`).
pub fn request(config: &CharmConfig) -> Vec<(String, String)> {
    vec![
        ("bucket".to_string(), config.s3_bucket.clone()),
        (
            "requested-secrets".to_string(),
            REQUESTED_SECRETS.to_string(),
        ),
        ("lib-version".to_string(), LIB_VERSION.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::TEST_CA;
    use serde_json::json;

    fn bag(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config() -> CharmConfig {
        CharmConfig::from_map(
            json!({"s3-endpoint": "http://10.0.0.1:80", "s3-access-key": "cfg-ak",
                   "s3-secret-key": "cfg-sk", "s3-bucket": "cfg-bucket", "s3-region": "eu-west-1"})
            .as_object()
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn nothing_sent_yet_is_pending() {
        assert_eq!(parse("s3", &bag(&[("bucket", "b")]), None), Ok(None));
    }

    #[test]
    fn v0_ceph_radosgw_overrides_config_and_keeps_path_style_and_region_defaults() {
        let ca = serde_json::to_string(&vec![TEST_CA]).unwrap();
        let p = parse(
            "ceph-radosgw",
            &bag(&[
                ("bucket", "rgw-bucket"),
                ("access-key", "AK0"),
                ("secret-key", "SK0-SECRET"),
                ("endpoint", "https://127.0.0.1:7443"),
                ("tls-ca-chain", &ca),
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert!(!format!("{p:?}").contains("SK0-SECRET"));
        assert_eq!(
            p.source(),
            "credentials from relation s3-credentials (ceph-radosgw)"
        );
        let base = CharmConfig::from_map(&serde_json::Map::new()).unwrap();
        let c = p.apply(&base);
        let mut s = c.s3(None).unwrap();
        p.adjust(&mut s);
        assert_eq!(s.endpoint, "https://127.0.0.1:7443");
        assert_eq!(s.bucket, "rgw-bucket");
        assert_eq!(
            (s.access_key.as_str(), s.secret_key.as_str()),
            ("AK0", "SK0-SECRET")
        );
        assert_eq!(s.region, "us-east-1");
        assert!(s.driver_config.path_style);
        assert_eq!(s.addressing, Addressing::Path, "absent s3-uri-style: path");
        assert_eq!(
            s.driver_config.ca_pem.as_ref().unwrap().0.trim(),
            TEST_CA.trim()
        );
        // Over set options: the relation wins field by field; unset fields keep the options.
        let c = p.apply(&config());
        assert_eq!(c.s3_bucket, "rgw-bucket");
        assert_eq!(c.s3_region, "eu-west-1");
        assert_eq!(c.s3_access_key, "AK0");
    }

    #[test]
    fn v1_keys_come_from_the_secret() {
        let mut secret = SecretContent::new();
        secret.insert("access-key".into(), "AK1".into());
        secret.insert("secret-key".into(), "SK1".into());
        let b = bag(&[
            ("bucket", "bucket-one"),
            ("secret-extra", "secret://model/abc"),
            ("s3-uri-style", "host"),
            ("region", "us-west-2"),
            ("storage-class", "GLACIER"),
            ("lib-version", "1.10"),
        ]);
        let p = parse("s3-integrator", &b, Some(&secret)).unwrap().unwrap();
        assert_eq!(p.secret_id.as_deref(), Some("secret://model/abc"));
        assert_eq!(
            (p.access_key.as_str(), p.secret_key.as_str()),
            ("AK1", "SK1")
        );
        assert_eq!(p.unused, vec!["storage-class"]);
        let mut s = p.apply(&config()).s3(None).unwrap();
        p.adjust(&mut s);
        assert!(!s.driver_config.path_style);
        assert_eq!(s.addressing, Addressing::Virtual, "host: virtual-hosted");
        assert_eq!(s.region, "us-west-2");
        secret.remove("secret-key");
        let e = parse("s3-integrator", &b, Some(&secret)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "relation s3-credentials (s3-integrator): secret-extra has no secret-key in its secret; fix the provider's configuration"
        );
    }

    #[test]
    fn uri_style_decides_the_addressing_over_the_options() {
        let keys = [("access-key", "AK"), ("secret-key", "SK")];
        // The options ask for virtual-hosted addressing through the driver tuning.
        let base = CharmConfig::from_map(
            json!({"s3-endpoint": "http://10.0.0.1:80",
                   "s3-driver-config-yaml": "{path_style: false}"})
            .as_object()
            .unwrap(),
        )
        .unwrap();
        let settings = |style: Option<&str>| {
            let mut b = bag(&keys);
            if let Some(style) = style {
                b.insert("s3-uri-style".into(), style.into());
            }
            let p = parse("s3-integrator", &b, None).unwrap().unwrap();
            let mut s = p.apply(&base).s3(None).unwrap();
            p.adjust(&mut s);
            (s.addressing, s.driver_config.path_style)
        };
        assert_eq!(settings(Some("path")), (Addressing::Path, true));
        assert_eq!(settings(Some("host")), (Addressing::Virtual, false));
        // Absent: the options' choice stays.
        assert_eq!(settings(None), (Addressing::Virtual, false));
        // A value other than host or path names the relation, the key and the allowed values,
        // never the credentials.
        let mut b = bag(&keys);
        b.insert("s3-uri-style".into(), "Virtual-Hosted".into());
        let e = parse("s3-integrator", &b, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "relation s3-credentials (s3-integrator): s3-uri-style is 'Virtual-Hosted', not host or path; fix the provider's configuration"
        );
        assert!(!e.contains("SK"), "{e}");
    }

    #[test]
    fn bad_fields_name_the_relation_and_the_field() {
        let keys = [("access-key", "AK"), ("secret-key", "SK")];
        let with = |extra: (&str, &str)| {
            let mut b = bag(&keys);
            b.insert(extra.0.into(), extra.1.into());
            parse("ceph-radosgw", &b, None).unwrap_err().to_string()
        };
        let e = with(("tls-ca-chain", "-----BEGIN CERTIFICATE----- not json"));
        assert!(
            e.starts_with("relation s3-credentials (ceph-radosgw): tls-ca-chain is not a JSON list of PEM certificates"),
            "{e}"
        );
        let e = with(("tls-ca-chain", r#"["bm90IGEgY2VydA=="]"#));
        assert!(
            e.contains("tls-ca-chain entry 0 is neither a PEM certificate nor base64 of one"),
            "{e}"
        );
        let e = with(("tls-ca-chain", "[]"));
        assert!(e.contains("tls-ca-chain is an empty list"), "{e}");
        let e = with(("s3-uri-style", "virtual"));
        assert!(
            e.contains("s3-uri-style is 'virtual', not host or path"),
            "{e}"
        );
        let e = with(("s3-api-version", "2"));
        assert!(e.contains("s3-api-version is '2'"), "{e}");
        let e = parse("ceph-radosgw", &bag(&[("access-key", "AK")]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("secret-key is missing"), "{e}");
        // A CA sent base64-encoded (the spec's wording) is accepted too.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(TEST_CA);
        let mut b = bag(&keys);
        b.insert(
            "tls-ca-chain".into(),
            serde_json::to_string(&vec![b64]).unwrap(),
        );
        let p = parse("ceph-radosgw", &b, None).unwrap().unwrap();
        assert_eq!(p.ca_pem.unwrap().trim(), TEST_CA.trim());
    }

    #[test]
    fn the_request_follows_the_spec() {
        let r = request(&config());
        assert_eq!(r[0], ("bucket".to_string(), "cfg-bucket".to_string()));
        let asked: Vec<String> = serde_json::from_str(&r[1].1).unwrap();
        assert_eq!(asked, ["access-key", "secret-key"]);
        assert_eq!(r[2].0, "lib-version");
    }
}
