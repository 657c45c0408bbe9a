//! The Juju hook tools, behind a trait so reconcile and actions can be tested in-process.
//!
//! [`CliTools`] runs the real executables Juju puts on `PATH` during a hook. Values that are
//! secret (the cluster token) are passed to `secret-add` in a 0600 file, never on argv.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

/// A unit or application status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Maintenance,
    Blocked,
    Waiting,
    Active,
}

impl StatusKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Maintenance => "maintenance",
            StatusKind::Blocked => "blocked",
            StatusKind::Waiting => "waiting",
            StatusKind::Active => "active",
        }
    }
}

/// A hook tool that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{tool} failed: {message}")]
pub struct ToolError {
    pub tool: String,
    pub message: String,
}

pub type ToolResult<T> = Result<T, ToolError>;

/// A secret's content.
pub type SecretContent = BTreeMap<String, String>;

/// What the charm asks of Juju.
pub trait HookTools {
    fn config(&self) -> ToolResult<Map<String, Value>>;
    fn is_leader(&self) -> ToolResult<bool>;
    fn status_set(&self, kind: StatusKind, message: &str) -> ToolResult<()>;
    /// The application's status (leader only).
    fn app_status_set(&self, kind: StatusKind, message: &str) -> ToolResult<()>;
    fn application_version_set(&self, version: &str) -> ToolResult<()>;
    fn log(&self, level: &str, message: &str);
    fn action_get(&self) -> ToolResult<Map<String, Value>>;
    fn action_set(&self, values: &[(String, String)]) -> ToolResult<()>;
    fn action_fail(&self, message: &str) -> ToolResult<()>;
    fn action_log(&self, message: &str) -> ToolResult<()>;
    fn relation_ids(&self, endpoint: &str) -> ToolResult<Vec<String>>;
    fn relation_list(&self, relation_id: &str) -> ToolResult<Vec<String>>;
    /// The application databag of a peer relation.
    fn relation_get_app(&self, relation_id: &str) -> ToolResult<BTreeMap<String, String>>;
    /// Writes the application databag (leader only).
    fn relation_set_app(&self, relation_id: &str, values: &[(String, String)]) -> ToolResult<()>;
    /// Writes this unit's own databag.
    fn relation_set_unit(&self, relation_id: &str, values: &[(String, String)]) -> ToolResult<()>;
    fn ingress_address(&self, endpoint: &str) -> ToolResult<String>;
    /// The application at the other end of a (non-peer) relation (`relation-list --app`).
    fn relation_remote_app(&self, relation_id: &str) -> ToolResult<String>;
    /// The other application's databag in a relation: every unit may read it.
    fn relation_get_remote_app(
        &self,
        relation_id: &str,
        app: &str,
    ) -> ToolResult<BTreeMap<String, String>>;
    /// A secret's content. Juju keeps showing a consumer the revision it first read until it
    /// asks with `refresh` (on `secret-changed`), which moves it to the latest revision.
    fn secret_get(&self, id: &str, refresh: bool) -> ToolResult<SecretContent>;
    /// Adds an application-owned secret; returns its id.
    fn secret_add_app(&self, label: &str, content: &SecretContent) -> ToolResult<String>;
    fn open_port(&self, port: u16) -> ToolResult<()>;
    fn close_port(&self, port: u16) -> ToolResult<()>;
}

/// The real hook tools.
pub struct CliTools;

fn run(tool: &str, args: &[&str]) -> ToolResult<String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| ToolError {
            tool: tool.to_string(),
            message: format!("cannot run it: {e}"),
        })?;
    if !out.status.success() {
        return Err(ToolError {
            tool: tool.to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

fn json<T: serde::de::DeserializeOwned>(tool: &str, text: &str) -> ToolResult<T> {
    let text = text.trim();
    let text = if text.is_empty() { "null" } else { text };
    serde_json::from_str(text).map_err(|e| ToolError {
        tool: tool.to_string(),
        message: format!("unexpected output ({e})"),
    })
}

/// `key=value` arguments.
fn pairs(values: &[(String, String)]) -> Vec<String> {
    values.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Relation data may come back as strings or (rarely) other JSON values.
fn string_map(value: Option<Map<String, Value>>) -> BTreeMap<String, String> {
    value
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

impl HookTools for CliTools {
    fn config(&self) -> ToolResult<Map<String, Value>> {
        let out = run("config-get", &["--format=json"])?;
        Ok(json::<Option<Map<String, Value>>>("config-get", &out)?.unwrap_or_default())
    }

    fn is_leader(&self) -> ToolResult<bool> {
        let out = run("is-leader", &["--format=json"])?;
        json("is-leader", &out)
    }

    fn status_set(&self, kind: StatusKind, message: &str) -> ToolResult<()> {
        run("status-set", &[kind.as_str(), message]).map(|_| ())
    }

    fn app_status_set(&self, kind: StatusKind, message: &str) -> ToolResult<()> {
        run("status-set", &["--application", kind.as_str(), message]).map(|_| ())
    }

    fn application_version_set(&self, version: &str) -> ToolResult<()> {
        run("application-version-set", &[version]).map(|_| ())
    }

    fn log(&self, level: &str, message: &str) {
        if run("juju-log", &["--log-level", level, message]).is_err() {
            eprintln!("{level}: {message}");
        }
    }

    fn action_get(&self) -> ToolResult<Map<String, Value>> {
        let out = run("action-get", &["--format=json"])?;
        Ok(json::<Option<Map<String, Value>>>("action-get", &out)?.unwrap_or_default())
    }

    fn action_set(&self, values: &[(String, String)]) -> ToolResult<()> {
        let args = pairs(values);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("action-set", &args).map(|_| ())
    }

    fn action_fail(&self, message: &str) -> ToolResult<()> {
        run("action-fail", &[message]).map(|_| ())
    }

    fn action_log(&self, message: &str) -> ToolResult<()> {
        run("action-log", &[message]).map(|_| ())
    }

    fn relation_ids(&self, endpoint: &str) -> ToolResult<Vec<String>> {
        let out = run("relation-ids", &[endpoint, "--format=json"])?;
        Ok(json::<Option<Vec<String>>>("relation-ids", &out)?.unwrap_or_default())
    }

    fn relation_list(&self, relation_id: &str) -> ToolResult<Vec<String>> {
        let out = run("relation-list", &["-r", relation_id, "--format=json"])?;
        Ok(json::<Option<Vec<String>>>("relation-list", &out)?.unwrap_or_default())
    }

    fn relation_get_app(&self, relation_id: &str) -> ToolResult<BTreeMap<String, String>> {
        let unit = std::env::var("JUJU_UNIT_NAME").unwrap_or_default();
        let out = run(
            "relation-get",
            &["-r", relation_id, "--app", "--format=json", "-", &unit],
        )?;
        Ok(string_map(json("relation-get", &out)?))
    }

    fn relation_set_app(&self, relation_id: &str, values: &[(String, String)]) -> ToolResult<()> {
        let mut args = vec![
            "-r".to_string(),
            relation_id.to_string(),
            "--app".to_string(),
        ];
        args.extend(pairs(values));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("relation-set", &args).map(|_| ())
    }

    fn relation_set_unit(&self, relation_id: &str, values: &[(String, String)]) -> ToolResult<()> {
        let mut args = vec!["-r".to_string(), relation_id.to_string()];
        args.extend(pairs(values));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("relation-set", &args).map(|_| ())
    }

    fn ingress_address(&self, endpoint: &str) -> ToolResult<String> {
        let out = run("network-get", &[endpoint, "--ingress-address"])?;
        let addr = out.trim().trim_matches('"').to_string();
        if addr.is_empty() {
            return Err(ToolError {
                tool: "network-get".into(),
                message: format!("no ingress address for {endpoint}"),
            });
        }
        Ok(addr)
    }

    fn relation_remote_app(&self, relation_id: &str) -> ToolResult<String> {
        let out = run(
            "relation-list",
            &["-r", relation_id, "--app", "--format=json"],
        )?;
        let app: Option<String> = json("relation-list", &out)?;
        app.filter(|a| !a.is_empty()).ok_or_else(|| ToolError {
            tool: "relation-list".into(),
            message: format!("no remote application in relation {relation_id}"),
        })
    }

    fn relation_get_remote_app(
        &self,
        relation_id: &str,
        app: &str,
    ) -> ToolResult<BTreeMap<String, String>> {
        let out = run(
            "relation-get",
            &["-r", relation_id, "--app", "--format=json", "-", app],
        )?;
        Ok(string_map(json("relation-get", &out)?))
    }

    fn secret_get(&self, id: &str, refresh: bool) -> ToolResult<SecretContent> {
        let mut args = vec![id, "--format=json"];
        if refresh {
            args.push("--refresh");
        }
        let out = run("secret-get", &args)?;
        Ok(string_map(json("secret-get", &out)?))
    }

    fn secret_add_app(&self, label: &str, content: &SecretContent) -> ToolResult<String> {
        let fail = |message: String| ToolError {
            tool: "secret-add".into(),
            message,
        };
        // The content goes in a private file so it never shows in a process list or call log.
        let mut file = tempfile::Builder::new()
            .prefix("chopsticks-secret-")
            .tempfile()
            .map_err(|e| fail(e.to_string()))?;
        let yaml = serde_yaml_ng::to_string(content).map_err(|e| fail(e.to_string()))?;
        file.write_all(yaml.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let path = file.path().display().to_string();
        let out = run(
            "secret-add",
            &["--owner", "application", "--label", label, "--file", &path],
        )?;
        Ok(out.trim().to_string())
    }

    fn open_port(&self, port: u16) -> ToolResult<()> {
        run("open-port", &[&format!("{port}/tcp")]).map(|_| ())
    }

    fn close_port(&self, port: u16) -> ToolResult<()> {
        run("close-port", &[&format!("{port}/tcp")]).map(|_| ())
    }
}
