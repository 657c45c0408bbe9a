//! Hook dispatch: every hook but `stop` and `remove` runs the one reconcile.

use crate::reconcile::{Charm, CharmError};

/// The hooks this charm acts on. Others (e.g. secret-rotate) are logged and ignored.
pub const HOOKS: [&str; 25] = [
    "install",
    "config-changed",
    "start",
    "stop",
    "remove",
    "upgrade-charm",
    "update-status",
    "leader-elected",
    "leader-settings-changed",
    "secret-changed",
    "cluster-relation-created",
    "cluster-relation-joined",
    "cluster-relation-changed",
    "cluster-relation-departed",
    "cluster-relation-broken",
    "s3-credentials-relation-created",
    "s3-credentials-relation-joined",
    "s3-credentials-relation-changed",
    "s3-credentials-relation-departed",
    "s3-credentials-relation-broken",
    "cos-agent-relation-created",
    "cos-agent-relation-joined",
    "cos-agent-relation-changed",
    "cos-agent-relation-departed",
    "cos-agent-relation-broken",
];

pub fn run(charm: &Charm, hook: &str) -> Result<(), CharmError> {
    match hook {
        "stop" => charm.stop_services(),
        "remove" => charm.remove(),
        h if HOOKS.contains(&h) => charm.reconcile(),
        other => {
            charm.log(&format!("hook {other} is not used by this charm; ignored"));
            Ok(())
        }
    }
}
