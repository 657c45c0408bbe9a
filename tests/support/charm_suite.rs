//! What the two end-to-end charm suites (tests/charm_model.rs, process mode, and
//! tests/charm_real_systemd.rs, real systemd) share: the RadosGW under test, the packed charm,
//! and running one model at a time.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The blocked status of a unit with no S3 settings (the charm's `NEEDS_S3`).
pub const BLOCKED_NEEDS_S3: &str =
    "set s3-endpoint, s3-access-key and s3-secret-key (or s3-credentials), or integrate an s3 provider: juju integrate chopsticks:s3-credentials <s3-integrator or ceph-radosgw>";

/// The RadosGW under test (on the host's loopback).
pub struct Rgw {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

/// The RadosGW `tests/rgw/up.sh` brought up, from its environment; the tests fail without it.
pub fn rgw() -> Rgw {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("S3_ENDPOINT"),
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(endpoint), Some(access_key), Some(secret_key)) => Rgw {
            endpoint,
            access_key,
            secret_key,
        },
        _ => panic!(
            "S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set: run the suite with tests/run.sh (or tests/real-systemd.sh), which brings up RadosGW"
        ),
    }
}

/// The packed charm, built once per test process (into `<tmp>/<dir>`) unless
/// `CHOPSTICKS_CHARM` names one.
pub fn packed_charm(dir: &str) -> PathBuf {
    static CHARM: OnceLock<PathBuf> = OnceLock::new();
    CHARM
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("CHOPSTICKS_CHARM") {
                return PathBuf::from(path);
            }
            crate::pack::pack_charm(dir)
        })
        .clone()
}

/// One model at a time: each runs its units' daemons on a 2-core machine.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `radosgw-admin` against the test cluster (`CHOPSTICKS_RGW_DIR`, as tests/rgw/up.sh
/// left it) and returns its output.
#[allow(dead_code)] // used by the process-mode suites, not by the real-systemd one
pub fn radosgw_admin(args: &[&str]) -> crate::model::Result<String> {
    let dir = std::env::var("CHOPSTICKS_RGW_DIR").unwrap_or_else(|_| "/tmp/chopsticks-rgw".into());
    let out = std::process::Command::new("radosgw-admin")
        .arg("-c")
        .arg(format!("{dir}/ceph.conf"))
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(crate::model::Error(format!(
            "radosgw-admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// An extra S3 key pair of the test RadosGW's user that exists only for one test (removed on
/// drop; the user's default keys, which other tests use, are never touched), so a run after
/// its removal proves the units use another key.
#[allow(dead_code)] // used by the process-mode suites, not by the real-systemd one
pub struct RgwKey {
    pub access: String,
    pub secret: String,
}

#[allow(dead_code)]
impl RgwKey {
    /// A new key whose names carry `label` (e.g. `ROTA`), unique to this process and moment.
    pub fn create(label: &str) -> crate::model::Result<RgwKey> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let suffix = format!("{:08X}", std::process::id() ^ nanos);
        let key = RgwKey {
            access: format!("CHOPSTICKS{label}{suffix}"),
            secret: format!("chopsticks{label}Secret{suffix}{suffix}"),
        };
        radosgw_admin(&[
            "key",
            "create",
            "--uid=chopsticks",
            "--key-type=s3",
            &format!("--access-key={}", key.access),
            &format!("--secret-key={}", key.secret),
        ])?;
        Ok(key)
    }

    /// Deletes the key from RadosGW: a request signed with it fails from now on.
    pub fn remove(&self) -> crate::model::Result<()> {
        radosgw_admin(&[
            "key",
            "rm",
            "--uid=chopsticks",
            "--key-type=s3",
            &format!("--access-key={}", self.access),
        ])
        .map(|_| ())
    }
}

impl Drop for RgwKey {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}
