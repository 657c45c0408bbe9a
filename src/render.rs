//! Files the charm writes: `s3_config.yaml`, the cluster token, the systemd units — rendered
//! from the charm's `templates/` with minijinja and written only when their content changes,
//! so callers know exactly which services need a restart.

use crate::config::S3Settings;
use crate::paths::Paths;
use minijinja::{context, Environment};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why a file could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read template {path}: {source}; the charm is incomplete, re-deploy it")]
    Template {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot render {name}: {message}")]
    Render { name: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Templates of one charm directory.
pub struct Templates {
    dir: PathBuf,
}

/// Everything a unit file needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnitValues {
    pub engine: String,
    pub state_dir: String,
    pub s3_config: String,
    pub token_file: String,
    pub status_file: String,
    pub log_level: String,
    /// The daemons' log directory (`--log-file DIR/NAME.log`).
    pub log_dir: String,
    pub coordinator_port: u16,
    pub control_port: u16,
    pub web_port: u16,
    /// `HOST:PORT` of the coordinator (worker unit).
    pub coordinator: String,
    pub worker_name: String,
}

impl UnitValues {
    pub fn new(paths: &Paths, config: &crate::config::CharmConfig) -> UnitValues {
        UnitValues {
            engine: paths.engine().display().to_string(),
            state_dir: paths.state().display().to_string(),
            s3_config: paths.s3_config().display().to_string(),
            token_file: paths.token_file().display().to_string(),
            status_file: paths.worker_status().display().to_string(),
            log_level: config.log_level.clone(),
            log_dir: paths.log_dir().display().to_string(),
            coordinator_port: config.coordinator_port,
            control_port: config.control_port,
            web_port: config.web_port,
            coordinator: String::new(),
            worker_name: String::new(),
        }
    }
}

impl Templates {
    pub fn new(charm_dir: &Path) -> Templates {
        Templates {
            dir: charm_dir.join("templates"),
        }
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, RenderError> {
        let path = self.dir.join(name);
        let source = std::fs::read_to_string(&path).map_err(|source| RenderError::Template {
            path: path.display().to_string(),
            source,
        })?;
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.render_str(&source, ctx)
            .map_err(|e| RenderError::Render {
                name: name.to_string(),
                message: e.to_string(),
            })
    }

    pub fn s3_config(&self, s3: &S3Settings) -> Result<String, RenderError> {
        let driver_config =
            serde_json::to_value(&s3.driver_config).map_err(|e| RenderError::Render {
                name: "s3_config.yaml".into(),
                message: e.to_string(),
            })?;
        self.render(
            "s3_config.yaml.j2",
            context! {
                endpoint => s3.endpoint,
                endpoints => s3.endpoints,
                buckets => s3.buckets,
                access_key => s3.access_key,
                secret_key => s3.secret_key,
                bucket => s3.bucket,
                region => s3.region,
                driver => s3.driver.to_string(),
                driver_config => driver_config,
                addressing => s3.addressing.as_str(),
            },
        )
    }

    pub fn leader_unit(&self, values: &UnitValues, web_ui: bool) -> Result<String, RenderError> {
        self.render(
            "chopsticks-leader.service.j2",
            context! { web_ui => web_ui, ..minijinja::Value::from_serialize(values) },
        )
    }

    pub fn worker_unit(&self, values: &UnitValues) -> Result<String, RenderError> {
        self.render(
            "chopsticks-worker.service.j2",
            minijinja::Value::from_serialize(values),
        )
    }
}

/// Writes `content` to `path` with `mode` unless it is already exactly that; returns whether
/// anything changed. Written to a temporary file first, so readers never see half a file, and
/// created with the final mode, so a secret is never readable by others even for an instant.
pub fn write_if_changed(path: &Path, content: &[u8], mode: u32) -> Result<bool, RenderError> {
    let err = |source| RenderError::Write {
        path: path.display().to_string(),
        source,
    };
    let same_content = std::fs::read(path)
        .map(|old| old == content)
        .unwrap_or(false);
    let same_mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777 == mode)
        .unwrap_or(false);
    if same_content && same_mode {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("charm-tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(content).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(!same_content || !same_mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        Templates::new(Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    #[test]
    fn s3_config_escapes_values_and_parses_back() {
        let s3 = S3Settings {
            endpoint: "http://10.0.0.1:80".into(),
            access_key: "AK".into(),
            secret_key: "s3cr\"et: with # yaml\nchars".into(),
            bucket: "test-bucket".into(),
            region: "us-east-1".into(),
            driver: chopsticks::s3_config::DriverKind::AwsSdk,
            driver_config: chopsticks::s3_config::DriverConfig {
                retries: 2,
                ..Default::default()
            },
            endpoints: Vec::new(),
            buckets: Vec::new(),
            addressing: crate::config::Addressing::Virtual,
        };
        let text = templates().s3_config(&s3).unwrap();
        let parsed = chopsticks::s3_config::WorkloadFile::parse(&text, "rendered").unwrap();
        assert_eq!(
            parsed.secret_key.as_ref().unwrap().expose(),
            "s3cr\"et: with # yaml\nchars"
        );
        assert_eq!(parsed.driver_config.as_ref().unwrap().retries, 2);
        assert_eq!(parsed.bucket.as_deref(), Some("test-bucket"));
        // The top-level `addressing` reaches the engine, which applies it over path_style.
        assert_eq!(parsed.addressing.as_deref(), Some("virtual"));
        let resolved = parsed
            .resolve_file(&crate::config::tests::NoEnvForTests, "rendered")
            .unwrap();
        assert!(!resolved.driver_config.path_style);
    }

    #[test]
    fn s3_config_carries_the_ca_chain_and_insecure() {
        let ca = crate::config::tests::TEST_CA;
        let driver_config = chopsticks::s3_config::DriverConfig {
            ca_pem: Some(chopsticks::s3_config::Pem(ca.to_string())),
            ..Default::default()
        };
        let s3 = S3Settings {
            endpoint: "https://10.0.0.1:443".into(),
            access_key: "AK".into(),
            secret_key: "SK".into(),
            bucket: "test-bucket".into(),
            region: "us-east-1".into(),
            driver: chopsticks::s3_config::DriverKind::Lean,
            driver_config,
            endpoints: Vec::new(),
            buckets: Vec::new(),
            addressing: crate::config::Addressing::Path,
        };
        let text = templates().s3_config(&s3).unwrap();
        let parsed = chopsticks::s3_config::WorkloadFile::parse(&text, "rendered").unwrap();
        let resolved = parsed
            .resolve_file(&crate::config::tests::NoEnvForTests, "rendered")
            .unwrap();
        assert_eq!(resolved.driver_config.ca_pem.as_ref().unwrap().0, ca);
        assert_eq!(resolved.driver_config.trusted.0.len(), 1);
        assert!(!resolved.driver_config.insecure);
        let mut s3 = s3;
        s3.driver_config.ca_pem = None;
        s3.driver_config.insecure = true;
        let text = templates().s3_config(&s3).unwrap();
        let parsed = chopsticks::s3_config::WorkloadFile::parse(&text, "rendered").unwrap();
        assert!(parsed.driver_config.unwrap().insecure);
    }

    #[test]
    fn units_are_hardened_and_pass_credentials_by_loadcredential() {
        let paths = Paths::new("/");
        let config = crate::config::CharmConfig::from_map(&serde_json::Map::new()).unwrap();
        let mut v = UnitValues::new(&paths, &config);
        v.coordinator = "10.0.0.2:5557".into();
        v.worker_name = "chopsticks-1".into();
        let leader = templates().leader_unit(&v, false).unwrap();
        assert!(leader.contains("ExecStart=/opt/chopsticks/bin/chopsticks --log-level info --log-file /var/log/chopsticks/coordinator.log coordinator --state-dir /var/lib/chopsticks --listen 0.0.0.0:5557 --control 127.0.0.1:5558"));
        assert!(leader.contains("LoadCredential=s3_config.yaml:/etc/chopsticks/s3_config.yaml"));
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/chopsticks /var/log/chopsticks",
            "User=chopsticks",
        ] {
            assert!(leader.contains(line), "{line}");
        }
        assert!(!leader.contains("--web-ui"));
        assert!(templates()
            .leader_unit(&v, true)
            .unwrap()
            .contains("--web-ui 0.0.0.0:8089"));
        let worker = templates().worker_unit(&v).unwrap();
        assert!(worker.contains("worker --coordinator 10.0.0.2:5557 --name chopsticks-1"));
        assert!(worker.contains("--log-file /var/log/chopsticks/worker.log worker"));
        assert!(worker.contains("ReadWritePaths=/var/lib/chopsticks /var/log/chopsticks"));
    }

    #[test]
    fn writes_only_on_change_with_the_mode_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/secret");
        assert!(write_if_changed(&p, b"x", 0o600).unwrap());
        assert!(!write_if_changed(&p, b"x", 0o600).unwrap());
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_if_changed(&p, b"y", 0o600).unwrap());
        assert!(write_if_changed(&p, b"y", 0o644).unwrap());
    }
}
