//! The machine's accounts: the `chopsticks` system user the services run as.

use std::process::Command;

/// Why the user could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot create system user {name}: {message}")]
pub struct AccountError {
    pub name: String,
    pub message: String,
}

/// Account operations, behind a trait for tests.
pub trait System {
    /// Makes sure system user `name` exists; returns its uid and gid.
    fn ensure_user(&self, name: &str, home: &str) -> Result<(u32, u32), AccountError>;
}

/// `getent` and `useradd`.
pub struct Accounts;

fn lookup(name: &str) -> Option<(u32, u32)> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.trim().split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

impl System for Accounts {
    fn ensure_user(&self, name: &str, home: &str) -> Result<(u32, u32), AccountError> {
        if let Some(ids) = lookup(name) {
            return Ok(ids);
        }
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--home-dir",
                home,
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output()
            .map_err(|e| AccountError {
                name: name.into(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(AccountError {
                name: name.into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        lookup(name).ok_or_else(|| AccountError {
            name: name.into(),
            message: "useradd succeeded but getent does not know the user".into(),
        })
    }
}
