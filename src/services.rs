//! The systemd units, behind a trait: [`Systemctl`] in production, a recorder in unit tests,
//! and a fake `systemctl` executable that really runs units in the simulated model.

use std::process::Command;

/// A `systemctl` call that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("systemctl {action} {unit} failed: {message}")]
pub struct ServiceError {
    pub action: String,
    pub unit: String,
    pub message: String,
}

/// What the charm does with units.
pub trait Services {
    fn daemon_reload(&self) -> Result<(), ServiceError>;
    /// Enables and starts `unit` (a no-op if it already runs).
    fn enable_start(&self, unit: &str) -> Result<(), ServiceError>;
    fn restart(&self, unit: &str) -> Result<(), ServiceError>;
    /// Stops and disables `unit` (a no-op if it is not running).
    fn stop_disable(&self, unit: &str) -> Result<(), ServiceError>;
    fn is_active(&self, unit: &str) -> bool;
}

/// The real systemd.
pub struct Systemctl;

fn systemctl(action: &str, args: &[&str], unit: &str) -> Result<(), ServiceError> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| ServiceError {
            action: action.into(),
            unit: unit.into(),
            message: format!("cannot run systemctl: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ServiceError {
            action: action.into(),
            unit: unit.into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Services for Systemctl {
    fn daemon_reload(&self) -> Result<(), ServiceError> {
        systemctl("daemon-reload", &["daemon-reload"], "")
    }

    fn enable_start(&self, unit: &str) -> Result<(), ServiceError> {
        systemctl("enable --now", &["enable", "--now", unit], unit)
    }

    fn restart(&self, unit: &str) -> Result<(), ServiceError> {
        systemctl("restart", &["restart", unit], unit)
    }

    fn stop_disable(&self, unit: &str) -> Result<(), ServiceError> {
        match systemctl("disable --now", &["disable", "--now", unit], unit) {
            // systemd 255 refuses to disable a unit whose file is gone: it is stopped anyway.
            Err(e) if e.message.contains("does not exist") || e.message.contains("not loaded") => {
                Ok(())
            }
            other => other,
        }
    }

    fn is_active(&self, unit: &str) -> bool {
        Command::new("systemctl")
            .args(["is-active", "--quiet", unit])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}
