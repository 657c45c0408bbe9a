//! Where the charm puts things, under a root prefix (`/` in production).
//!
//! The prefix lets the simulated-model tests run several units on one machine, each in its
//! own directory tree; it comes from `CHOPSTICKS_ROOT` and is never set under Juju.

use std::path::{Path, PathBuf};

/// The charm's file layout.
#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
}

pub const LEADER_UNIT: &str = "chopsticks-leader.service";
pub const LEADER_WEBUI_UNIT: &str = "chopsticks-leader-webui.service";
pub const WORKER_UNIT: &str = "chopsticks-worker.service";
pub const ALL_UNITS: [&str; 3] = [LEADER_UNIT, LEADER_WEBUI_UNIT, WORKER_UNIT];

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Paths {
        Paths { root: root.into() }
    }

    /// `/`, or `CHOPSTICKS_ROOT` when set (tests only).
    pub fn from_env() -> Paths {
        match std::env::var_os("CHOPSTICKS_ROOT") {
            Some(r) if !r.is_empty() => Paths::new(r),
            _ => Paths::new("/"),
        }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `/opt/chopsticks`: the engine binary and scenarios, copied from the charm.
    pub fn opt(&self) -> PathBuf {
        self.at("/opt/chopsticks")
    }

    pub fn engine(&self) -> PathBuf {
        self.opt().join("bin/chopsticks")
    }

    pub fn scenarios(&self) -> PathBuf {
        self.opt().join("scenarios")
    }

    /// `/etc/chopsticks`: root-only configuration, handed to services with `LoadCredential=`.
    pub fn etc(&self) -> PathBuf {
        self.at("/etc/chopsticks")
    }

    pub fn s3_config(&self) -> PathBuf {
        self.etc().join("s3_config.yaml")
    }

    pub fn token_file(&self) -> PathBuf {
        self.etc().join("cluster-token")
    }

    /// `/var/lib/chopsticks`: runs (`<run-id>/`) and the daemons' state.
    pub fn state(&self) -> PathBuf {
        self.at("/var/lib/chopsticks")
    }

    /// `/var/lib/chopsticks/scenarios`: the operator's scenario files, root-owned; the only
    /// place `start-test scenario-file=NAME` reads a file from.
    pub fn operator_scenarios(&self) -> PathBuf {
        self.state().join("scenarios")
    }

    /// `/var/log/chopsticks`: the daemons' log files (`coordinator.log`, `worker.log`, rotated
    /// by the daemon), which the cos-agent collector tails.
    pub fn log_dir(&self) -> PathBuf {
        self.at("/var/log/chopsticks")
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.state().join(run_id)
    }

    /// The worker daemon's connection state.
    pub fn worker_status(&self) -> PathBuf {
        self.state().join("worker-status.json")
    }

    /// What the charm remembers between hooks (e.g. whether the web UI is on).
    pub fn charm_state(&self) -> PathBuf {
        self.etc().join("charm-state.json")
    }

    pub fn unit_file(&self, unit: &str) -> PathBuf {
        self.at("/etc/systemd/system").join(unit)
    }
}
