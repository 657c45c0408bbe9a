//! The `cos-agent` relation (interface `cos_agent`): what each unit hands to the collector
//! subordinate (opentelemetry-collector or grafana-agent) of the Canonical Observability Stack.
//!
//! The collector reads one key of our unit databag, `config`: the JSON the interface's Python
//! library (`charms.grafana_agent.v0.cos_agent`, `CosAgentProviderUnitData`) writes, field for
//! field — alert rules, dashboards (each xz-compressed then base64-encoded, as the library's
//! `LZMABase64.compress`), scrape jobs, log slots and the log files to tail. We write it by
//! hand from Rust; no charm library runs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Read;

/// The endpoint in metadata.yaml.
pub const RELATION: &str = "cos-agent";
/// The unit databag key the collector reads.
pub const KEY: &str = "config";
/// The charm's name, as the library tags dashboards and labels rules with it.
pub const CHARM: &str = "chopsticks";
/// Where the daemons' log files are (the collector tails them).
pub const LOG_FILES: &str = "/var/log/chopsticks/*.log";
/// The job name of the coordinator's `/metrics`.
pub const JOB: &str = "chopsticks_coordinator";

/// The alert rules, as Prometheus rule groups (`%%juju_topology%%` placeholders).
pub const ALERT_RULES: &str = include_str!("alert_rules/chopsticks.rules.yaml");
/// The Grafana dashboard.
pub const DASHBOARD: &str = include_str!("dashboards/chopsticks.json");

/// The placeholder in rule expressions that becomes the unit's topology matchers.
const TOPOLOGY_PLACEHOLDER: &str = "%%juju_topology%%";

/// Why the relation data could not be built (the embedded files are checked by unit tests,
/// so these mean a broken build).
#[derive(Debug, thiserror::Error)]
pub enum CosError {
    #[error("the charm's alert rules do not parse: {0}")]
    Rules(#[source] serde_yaml_ng::Error),
    #[error("the charm's dashboard does not parse: {0}")]
    Dashboard(#[source] serde_json::Error),
    #[error("cannot compress the dashboard: {0}")]
    Compress(#[source] std::io::Error),
    #[error("cannot encode the cos-agent data: {0}")]
    Encode(#[source] serde_json::Error),
}

/// The unit's Juju topology, which labels its rules (and which the collector adds to its
/// metrics), from the hook environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub model: String,
    pub model_uuid: String,
    pub application: String,
}

impl Topology {
    /// From `JUJU_MODEL_NAME`, `JUJU_MODEL_UUID` and the unit name; `None` outside a hook
    /// (then rules carry no topology rather than a made-up one).
    pub fn from_env(unit: &str) -> Option<Topology> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let application = unit.split('/').next().filter(|a| !a.is_empty())?;
        Some(Topology {
            model: var("JUJU_MODEL_NAME")?,
            model_uuid: var("JUJU_MODEL_UUID")?,
            application: application.to_string(),
        })
    }

    /// `juju_model="…",juju_model_uuid="…",juju_application="…"`.
    fn matchers(&self) -> String {
        format!(
            "juju_model=\"{}\",juju_model_uuid=\"{}\",juju_application=\"{}\"",
            promql_escape(&self.model),
            promql_escape(&self.model_uuid),
            promql_escape(&self.application)
        )
    }
}

fn promql_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One Prometheus scrape job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeJob {
    pub job_name: String,
    pub metrics_path: String,
    pub scheme: String,
    pub static_configs: Vec<StaticConfig>,
}

/// A scrape job's targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
}

/// `CosAgentProviderUnitData`, in the library's field order; `None` fields are written as
/// `null`, as the library's `data.json()` does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitData {
    /// Prometheus rule groups (`{"groups": [...]}`).
    pub metrics_alert_rules: Value,
    /// Loki rule groups; the charm has none (`{}` as the library sends for an empty dir).
    pub log_alert_rules: Value,
    /// Each dashboard's JSON, xz-compressed then base64-encoded.
    pub dashboards: Vec<String>,
    /// No longer read by collectors; kept by the library for compatibility.
    pub subordinate: Option<bool>,
    /// The leader's coordinator `/metrics`; workers expose no metrics of their own.
    pub metrics_scrape_jobs: Vec<ScrapeJob>,
    /// Snap log slots: none (the daemons are not snaps).
    pub log_slots: Vec<String>,
    /// The daemons' log files, which the collector tails.
    pub include_log_files: Option<Vec<String>>,
    /// Tracing: not used.
    pub tracing_protocols: Option<Vec<String>>,
}

/// `base64(xz(text))`, exactly what Python's `base64.b64encode(lzma.compress(text.encode()))`
/// decodes back (xz container, preset 6, CRC64 — `lzma.compress`'s defaults).
pub fn lzma_base64(text: &str) -> Result<String, CosError> {
    let mut encoder = xz2::read::XzEncoder::new(text.as_bytes(), 6);
    let mut compressed = Vec::new();
    encoder
        .read_to_end(&mut compressed)
        .map_err(CosError::Compress)?;
    Ok(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        compressed,
    ))
}

/// The alert rules with the topology put in (or the placeholders removed when unknown), each
/// rule labelled with it and each group named after it, as the library's `AlertRules` does.
pub fn alert_rules(topology: Option<&Topology>) -> Result<Value, CosError> {
    let text = match topology {
        Some(t) => ALERT_RULES.replace(TOPOLOGY_PLACEHOLDER, &t.matchers()),
        None => ALERT_RULES
            .replace(&format!(",{TOPOLOGY_PLACEHOLDER}"), "")
            .replace(TOPOLOGY_PLACEHOLDER, ""),
    };
    let mut rules: Value = serde_yaml_ng::from_str(&text).map_err(CosError::Rules)?;
    if let Some(t) = topology {
        let groups = rules
            .get_mut("groups")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten();
        for group in groups {
            if let Some(name) = group.get("name").and_then(Value::as_str) {
                let prefixed = format!(
                    "{}_{}_{}_{name}_alerts",
                    t.model, t.model_uuid, t.application
                );
                group["name"] = Value::String(prefixed);
            }
            let rules = group
                .get_mut("rules")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten();
            for rule in rules {
                let labels = rule
                    .as_object_mut()
                    .map(|r| r.entry("labels").or_insert_with(|| serde_json::json!({})));
                if let Some(Value::Object(labels)) = labels {
                    for (k, v) in [
                        ("juju_model", &t.model),
                        ("juju_model_uuid", &t.model_uuid),
                        ("juju_application", &t.application),
                        ("juju_charm", &CHARM.to_string()),
                    ] {
                        labels.insert(k.into(), Value::String(v.clone()));
                    }
                }
            }
        }
    }
    Ok(rules)
}

/// The dashboard as the library sends it: tagged `charm: chopsticks`, compressed, encoded.
pub fn encoded_dashboard() -> Result<String, CosError> {
    let mut dashboard: Value = serde_json::from_str(DASHBOARD).map_err(CosError::Dashboard)?;
    let tag = format!("charm: {CHARM}");
    if let Some(tags) = dashboard.get_mut("tags").and_then(Value::as_array_mut) {
        let tagged = tags
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.starts_with("charm: ")));
        if !tagged {
            tags.push(Value::String(tag));
        }
    } else {
        dashboard["tags"] = serde_json::json!([tag]);
    }
    let text = serde_json::to_string(&dashboard).map_err(CosError::Dashboard)?;
    lzma_base64(&text)
}

/// What this unit writes: the leader's job scrapes its coordinator's control API on loopback
/// (plain HTTP, no token there; the collector runs on the same machine); a worker has none.
pub fn unit_data(
    leader: bool,
    control_port: u16,
    topology: Option<&Topology>,
) -> Result<UnitData, CosError> {
    let metrics_scrape_jobs = if leader {
        vec![ScrapeJob {
            job_name: JOB.to_string(),
            metrics_path: "/metrics".to_string(),
            scheme: "http".to_string(),
            static_configs: vec![StaticConfig {
                targets: vec![format!("localhost:{control_port}")],
            }],
        }]
    } else {
        Vec::new()
    };
    Ok(UnitData {
        metrics_alert_rules: alert_rules(topology)?,
        log_alert_rules: serde_json::json!({}),
        dashboards: vec![encoded_dashboard()?],
        subordinate: None,
        metrics_scrape_jobs,
        log_slots: Vec::new(),
        include_log_files: Some(vec![LOG_FILES.to_string()]),
        tracing_protocols: None,
    })
}

impl UnitData {
    /// The `config` value.
    pub fn to_json(&self) -> Result<String, CosError> {
        serde_json::to_string(self).map_err(CosError::Encode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology {
            model: "stress".into(),
            model_uuid: "0f2a".into(),
            application: "chopsticks".into(),
        }
    }

    #[test]
    fn leader_data_has_every_field_of_the_library_in_its_order() {
        let data = unit_data(true, 5558, Some(&topology())).unwrap();
        let json = data.to_json().unwrap();
        let value: Value = serde_json::from_str(&json).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        let mut expected = vec![
            "dashboards",
            "include_log_files",
            "log_alert_rules",
            "log_slots",
            "metrics_alert_rules",
            "metrics_scrape_jobs",
            "subordinate",
            "tracing_protocols",
        ];
        expected.sort();
        assert_eq!(keys, expected);
        assert!(json.starts_with("{\"metrics_alert_rules\":"), "{json}");
        assert_eq!(value["log_slots"], serde_json::json!([]));
        assert_eq!(value["subordinate"], Value::Null);
        assert_eq!(
            value["metrics_scrape_jobs"],
            serde_json::json!([{
                "job_name": "chopsticks_coordinator",
                "metrics_path": "/metrics",
                "scheme": "http",
                "static_configs": [{"targets": ["localhost:5558"]}]
            }])
        );
        assert_eq!(
            value["include_log_files"],
            serde_json::json!(["/var/log/chopsticks/*.log"])
        );
        assert_eq!(value["dashboards"].as_array().unwrap().len(), 1);
        // Round trip through the typed form.
        let back: UnitData = serde_json::from_str(&json).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn workers_send_rules_and_dashboards_but_no_scrape_job() {
        let data = unit_data(false, 5558, None).unwrap();
        assert!(data.metrics_scrape_jobs.is_empty());
        assert_eq!(data.dashboards.len(), 1);
        assert!(!data.metrics_alert_rules["groups"]
            .as_array()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn rules_are_the_four_alerts_with_the_topology_put_in() {
        let rules = alert_rules(Some(&topology())).unwrap();
        let groups = rules["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0]["name"],
            "stress_0f2a_chopsticks_chopsticks_alerts"
        );
        let alerts: Vec<&str> = groups[0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["alert"].as_str().unwrap())
            .collect();
        assert_eq!(
            alerts,
            [
                "ChopsticksRunFailed",
                "ChopsticksWorkerLost",
                "ChopsticksErrorRateHigh",
                "ChopsticksCoordinatorDown"
            ]
        );
        for rule in groups[0]["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            assert!(!expr.contains("%%"), "{expr}");
            assert!(
                expr.contains("juju_model=\"stress\",juju_model_uuid=\"0f2a\",juju_application=\"chopsticks\""),
                "{expr}"
            );
            assert_eq!(rule["labels"]["juju_application"], "chopsticks");
            assert_eq!(rule["labels"]["juju_charm"], "chopsticks");
            assert!(rule["labels"]["severity"].is_string());
        }
        // Without a topology (outside a hook) the matchers go, leaving valid selectors.
        let bare = alert_rules(None).unwrap();
        let text = bare.to_string();
        assert!(!text.contains("%%") && !text.contains(",}") && !text.contains("juju_model"));
        assert_eq!(bare["groups"][0]["name"], "chopsticks");
    }

    #[test]
    fn the_dashboard_decodes_with_pythons_lzma_and_base64() {
        let encoded = encoded_dashboard().unwrap();
        let script = "import base64, lzma, sys\n\
                      data = sys.stdin.read().strip()\n\
                      sys.stdout.write(lzma.decompress(base64.b64decode(data)).decode('utf-8'))\n";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 is needed to check the encoding against the library's");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(encoded.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "python3 could not decode it");
        let decoded: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut original: Value = serde_json::from_str(DASHBOARD).unwrap();
        original["tags"]
            .as_array_mut()
            .unwrap()
            .push(Value::String("charm: chopsticks".into()));
        assert_eq!(decoded, original);
        // Compressed for real (the library's purpose: small relation data).
        assert!(encoded.len() < DASHBOARD.len() / 2, "{}", encoded.len());
    }

    #[test]
    fn the_dashboard_has_the_panels_the_issue_lists() {
        let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
        let exprs: Vec<String> = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["targets"].as_array().unwrap().iter())
            .map(|t| t["expr"].as_str().unwrap().to_string())
            .collect();
        let has = |needle: &str| exprs.iter().any(|e| e.contains(needle));
        for needle in [
            "rate(chopsticks_requests_total",
            "rate(chopsticks_failures_total",
            "chopsticks_request_duration_quantile_seconds{quantile=\"0.5\"}",
            "chopsticks_request_duration_quantile_seconds{quantile=\"0.99\"}",
            "histogram_quantile(0.5,",
            "histogram_quantile(0.99,",
            "rate(chopsticks_bytes_total",
            "chopsticks_users_target",
            "chopsticks_users",
            "chopsticks_workers",
            "sum by (kind)",
            "chopsticks_run_state",
        ] {
            assert!(has(needle), "no panel uses {needle}");
        }
    }
}
