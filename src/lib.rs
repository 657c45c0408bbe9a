//! The Chopsticks charm: a Juju machine charm whose `dispatch` binary is this crate.
//!
//! Juju runs `dispatch` for every hook and action with `JUJU_DISPATCH_PATH` set to
//! `hooks/<name>` or `actions/<name>`. Hooks run one idempotent [`reconcile`]; actions talk
//! to the daemons. The edges — hook tools ([`juju`]), systemd ([`services`]), accounts
//! ([`system`]), the coordinator ([`control`]) and the file layout ([`paths`]) — are traits or
//! plain values, so the same code runs under Juju, under the simulated model, and in unit tests.

pub mod actions;
pub mod config;
pub mod control;
pub mod cos_agent;
pub mod hooks;
pub mod juju;
pub mod paths;
pub mod reconcile;
pub mod render;
pub mod s3_relation;
pub mod scenarios;
pub mod services;
pub mod system;
#[cfg(test)]
mod testing;

use std::process::ExitCode;
use std::time::Duration;

/// The entry point of `dispatch`.
pub fn dispatch() -> ExitCode {
    let path = std::env::var("JUJU_DISPATCH_PATH").unwrap_or_default();
    let unit = std::env::var("JUJU_UNIT_NAME").unwrap_or_default();
    let charm_dir = std::env::var_os("JUJU_CHARM_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let tools = juju::CliTools;
    let factory = |port: u16| {
        control::HttpControl::new(port).map(|c| Box::new(c) as Box<dyn control::Control>)
    };
    let charm = reconcile::Charm {
        tools: &tools,
        services: &services::Systemctl,
        system: &system::Accounts,
        control: &factory,
        paths: paths::Paths::from_env(),
        charm_dir,
        unit,
        settle: Duration::from_secs(15),
        refresh_secret: (path == "hooks/secret-changed")
            .then(|| std::env::var("JUJU_SECRET_ID").ok())
            .flatten(),
        broken_relation: path
            .ends_with("-relation-broken")
            .then(|| std::env::var("JUJU_RELATION_ID").ok())
            .flatten(),
    };
    let result = match path.split_once('/') {
        Some(("hooks", hook)) => hooks::run(&charm, hook),
        Some(("actions", action)) => actions::run(&charm, action),
        _ => {
            eprintln!(
                "dispatch: JUJU_DISPATCH_PATH is '{path}', expected hooks/<name> or actions/<name>; \
                 this binary is run by Juju"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            use juju::HookTools;
            tools.log("ERROR", &format!("{path} failed: {e}"));
            eprintln!("{path} failed: {e}");
            ExitCode::FAILURE
        }
    }
}
