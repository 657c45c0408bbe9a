//! End-to-end tests of the packed charm's `s3-credentials` relation in the simulated model,
//! against the real RadosGW: scripted providers (a fake ceph-radosgw speaking `s3` v0 with a
//! `tls-ca-chain` for RadosGW's TLS endpoint, and a fake s3-integrator speaking v1 with a Juju
//! secret it rotates) write their databags; the charm's real `dispatch` runs every hook in
//! Juju's order and the units' real daemons load-test RadosGW with what the relation gave.
//!
//! Run: `tests/run.sh` (or `eval "$(tests/rgw/up.sh)"; cargo test --release --test charm_relations`).

mod model;
#[path = "support/pack.rs"]
mod pack;
#[path = "support/charm_suite.rs"]
mod suite;

use std::time::Duration;

use model::{wait_for, ActionOutcome, Model, Result};
use suite::{rgw, serial, RgwKey, BLOCKED_NEEDS_S3};

const ENDPOINT: &str = "s3-credentials";

fn free_ports() -> [u16; 3] {
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    let port = |i: usize| listeners[i].local_addr().unwrap().port();
    [port(0), port(1), port(2)]
}

/// A model of `units` units with its own ports, a bucket request and a scenario, and no keys.
fn deploy(units: usize, bucket: &str) -> Result<Model> {
    let mut m = Model::new(&suite::packed_charm("charm-relations"))?;
    m.deploy(units)?;
    let [coordinator, control, web] = free_ports();
    let (c, ctl, w) = (
        coordinator.to_string(),
        control.to_string(),
        web.to_string(),
    );
    m.config(&[
        ("coordinator-port", &c),
        ("control-port", &ctl),
        ("web-port", &w),
        ("s3-bucket", bucket),
        ("scenario-file", "s3_small_objects"),
    ])?;
    Ok(m)
}

fn wait_all_active(m: &mut Model) -> Result<()> {
    for _ in 0..10 {
        let statuses: Vec<(String, (String, String))> = m
            .units()
            .into_iter()
            .map(|u| Ok((u.clone(), m.status(&u)?)))
            .collect::<Result<_>>()?;
        if statuses
            .iter()
            .all(|(_, (s, msg))| s == "active" && !msg.contains("not connected"))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
        m.update_status()?;
    }
    let statuses: Vec<_> = m
        .units()
        .into_iter()
        .map(|u| (u.clone(), m.status(&u)))
        .collect();
    Err(model::Error(format!(
        "units did not all become active: {statuses:?}"
    )))
}

/// A 5-second run on the leader; returns test-status once it ended, asserting it completed
/// with requests and no failures.
fn run_passes(m: &mut Model) -> Result<ActionOutcome> {
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test users=2 spawn-rate=2 duration=5s",
    )?;
    assert_eq!(
        out.status, "completed",
        "start-test: {} {:?}",
        out.message, out.results
    );
    let run = out.get("test-run-id").expect("test-run-id").to_string();
    let mut last = None;
    let done = wait_for(Duration::from_secs(90), Duration::from_millis(500), || {
        let o = m.juju_run("chopsticks/leader", "test-status")?;
        let ended = o.get("test-run-id") == Some(run.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed");
        last = Some(o.results.clone());
        Ok(ended.then_some(o))
    })
    .map_err(|e| model::Error(format!("{e}; last test-status: {last:?}")))?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_ne!(done.get("requests"), Some("0"), "{:?}", done.results);
    assert_eq!(done.get("failures"), Some("0"), "{:?}", done.results);
    Ok(done)
}

fn rendered(m: &Model, unit: &str) -> String {
    std::fs::read_to_string(m.unit_root(unit).join("etc/chopsticks/s3_config.yaml"))
        .unwrap_or_default()
}

fn service_credential(m: &Model, unit: &str) -> String {
    let service = if m.leader().ok().as_deref() == Some(unit) {
        "chopsticks-leader.service"
    } else {
        "chopsticks-worker.service"
    };
    std::fs::read_to_string(
        m.unit_root(unit)
            .join("run/credentials")
            .join(service)
            .join("s3_config.yaml"),
    )
    .unwrap_or_default()
}

/// Every unit's status names the relation and the provider.
fn assert_source(m: &Model, provider: &str) -> Result<()> {
    let note = format!("credentials from relation s3-credentials ({provider})");
    for unit in m.units() {
        let (state, message) = m.status(&unit)?;
        assert_eq!(state, "active", "{unit}: {message}");
        assert!(message.ends_with(&note), "{unit}: {message}");
    }
    Ok(())
}

/// ceph-radosgw's `s3` endpoint (v0): keys in the databag, an https endpoint and the CA that
/// signed RadosGW's certificate in `tls-ca-chain`, no region or uri-style. Then the relation
/// is removed and every unit is blocked saying what to do.
#[test]
fn ceph_radosgw_v0_over_tls_with_the_relations_ca_then_removal_blocks() -> Result<()> {
    let rgw = rgw();
    let tls_endpoint =
        std::env::var("S3_TLS_ENDPOINT").expect("tests/rgw/up.sh sets S3_TLS_ENDPOINT");
    let ca_file = std::env::var("CHOPSTICKS_TEST_CA_FILE")
        .expect("tests/rgw/up.sh sets CHOPSTICKS_TEST_CA_FILE");
    let ca = std::fs::read_to_string(&ca_file)?;
    let _serial = serial();
    let key = RgwKey::create("RELV0")?;
    let bucket = "chopsticks-charm-rel-rgw";
    let mut m = deploy(3, bucket)?;
    for unit in m.units() {
        assert_eq!(
            m.status(&unit)?,
            ("blocked".to_string(), BLOCKED_NEEDS_S3.to_string())
        );
    }

    let rid = m.relate(ENDPOINT, "ceph-radosgw", 1)?;
    // Our leader asked for the bucket (v0) and the v1 secret fields; nothing is sent yet.
    let ours = m.relation_app_data(&rid)?;
    assert_eq!(ours["bucket"], bucket);
    assert_eq!(ours["requested-secrets"], r#"["access-key", "secret-key"]"#);
    assert!(ours.contains_key("lib-version"));
    for unit in m.units() {
        assert_eq!(
            m.status(&unit)?,
            (
                "waiting".to_string(),
                "waiting for credentials from relation s3-credentials (ceph-radosgw)".to_string()
            )
        );
    }
    // relation-set --app from a non-leader fails as in Juju.
    let worker = m
        .units()
        .into_iter()
        .find(|u| Some(u.clone()) != m.leader().ok())
        .unwrap();
    let (code, _, err) = m.run_tool(&worker, &["relation-set", "-r", &rid, "--app", "bucket=x"])?;
    assert_ne!(code, 0);
    assert!(err.contains("not the leader"), "{err}");

    let chain = serde_json::to_string(&vec![ca.trim()]).unwrap();
    m.set_remote_app_data(
        &rid,
        &[
            ("bucket", bucket),
            ("access-key", &key.access),
            ("secret-key", &key.secret),
            ("endpoint", &tls_endpoint),
            ("tls-ca-chain", &chain),
        ],
    )?;
    wait_all_active(&mut m)?;
    assert_source(&m, "ceph-radosgw")?;
    for unit in m.units() {
        let s3: serde_json::Value = serde_yaml_ng::from_str(&rendered(&m, &unit))
            .map_err(|e| model::Error(format!("{unit}: s3_config.yaml: {e}")))?;
        assert_eq!(s3["endpoint"], tls_endpoint.as_str(), "{unit}");
        assert_eq!(s3["bucket"], bucket, "{unit}");
        // The relation's key, not the suite's (which the model was never given).
        assert_eq!(s3["access_key"], key.access.as_str(), "{unit}");
        assert_ne!(key.access, rgw.access_key);
        assert_eq!(s3["region"], "us-east-1", "{unit}: default region");
        assert_eq!(
            s3["driver_config"]["path_style"], true,
            "{unit}: path-style default"
        );
        assert_eq!(
            s3["driver_config"]["ca_pem"].as_str().map(str::trim),
            Some(ca.trim()),
            "{unit}: the relation's CA"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(m.unit_root(&unit).join("etc/chopsticks/s3_config.yaml"))?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{unit}");
    }
    // Workers read the provider's databag themselves.
    let leader = m.leader()?;
    let readers: std::collections::BTreeSet<String> = m
        .calls()?
        .into_iter()
        .filter(|c| c.tool == "relation-get" && c.args.iter().any(|a| a == "ceph-radosgw"))
        .filter_map(|c| c.unit)
        .collect();
    assert_eq!(readers.len(), 3, "{readers:?}");
    assert!(readers.contains(&leader));
    run_passes(&mut m)?;

    m.unrelate(&rid)?;
    for unit in m.units() {
        assert_eq!(
            m.status(&unit)?,
            ("blocked".to_string(), BLOCKED_NEEDS_S3.to_string()),
            "{unit}"
        );
    }
    let leaks = m.leaks(&[&key.secret, &rgw.secret_key])?;
    assert!(leaks.is_empty(), "{leaks:?}");
    Ok(())
}

/// s3-integrator's v1: the keys in a Juju secret named by `secret-extra`; a rotation (new
/// secret revision) reaches every unit's service, and a run with the old key deleted passes.
#[test]
fn s3_integrator_v1_secret_and_its_rotation_reach_the_services() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let first = RgwKey::create("RELA")?;
    let second = RgwKey::create("RELB")?;
    let bucket = "chopsticks-charm-rel-integrator";
    let mut m = deploy(3, bucket)?;
    let rid = m.relate(ENDPOINT, "s3-integrator", 1)?;
    let secret = m.add_app_secret(
        "s3-integrator",
        &[("access-key", &first.access), ("secret-key", &first.secret)],
    )?;
    m.set_remote_app_data(
        &rid,
        &[
            ("bucket", bucket),
            ("secret-extra", &secret),
            ("endpoint", &rgw.endpoint),
            ("region", "us-east-1"),
            ("s3-uri-style", "path"),
            ("lib-version", "1.10"),
        ],
    )?;
    wait_all_active(&mut m)?;
    assert_source(&m, "s3-integrator")?;
    for unit in m.units() {
        assert!(
            service_credential(&m, &unit).contains(&first.secret),
            "{unit}"
        );
    }
    run_passes(&mut m)?;

    // Rotation: the provider's new revision, secret-changed on every unit, services restart.
    m.update_app_secret(
        &secret,
        &[
            ("access-key", &second.access),
            ("secret-key", &second.secret),
        ],
    )?;
    wait_all_active(&mut m)?;
    for unit in m.units() {
        let loaded = service_credential(&m, &unit);
        assert!(
            loaded.contains(&second.secret),
            "{unit} runs with the old key"
        );
        assert!(!loaded.contains(&first.secret), "{unit}");
    }
    let refreshed: std::collections::BTreeSet<String> = m
        .calls()?
        .into_iter()
        .filter(|c| c.tool == "secret-get" && c.args.iter().any(|a| a == "--refresh"))
        .filter_map(|c| c.unit)
        .collect();
    assert_eq!(
        refreshed.len(),
        3,
        "secret-get --refresh on every unit: {refreshed:?}"
    );
    first.remove()?;
    run_passes(&mut m)?;
    let leaks = m.leaks(&[&first.secret, &second.secret])?;
    assert!(leaks.is_empty(), "{leaks:?}");
    Ok(())
}

/// The connection file a unit's services got, parsed.
fn connection_file(m: &Model, unit: &str) -> Result<serde_json::Value> {
    serde_yaml_ng::from_str(&rendered(m, unit))
        .map_err(|e| model::Error(format!("{unit}: s3_config.yaml: {e}")))
}

/// `s3-uri-style: host` gives the engine virtual-hosted addressing (`addressing: virtual` in
/// every unit's connection file), `path` path-style; any other value blocks every unit with a
/// message naming the relation key and the values allowed, and no key.
#[test]
fn s3_uri_style_host_gives_virtual_addressing_and_another_value_blocks() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let key = RgwKey::create("RELVH")?;
    let bucket = "chopsticks-charm-rel-vhost";
    let mut m = deploy(2, bucket)?;
    let rid = m.relate(ENDPOINT, "s3-integrator", 1)?;
    let secret = m.add_app_secret(
        "s3-integrator",
        &[("access-key", &key.access), ("secret-key", &key.secret)],
    )?;
    m.set_remote_app_data(
        &rid,
        &[
            ("bucket", bucket),
            ("secret-extra", &secret),
            ("endpoint", &rgw.endpoint),
            ("s3-uri-style", "host"),
        ],
    )?;
    wait_all_active(&mut m)?;
    assert_source(&m, "s3-integrator")?;
    for unit in m.units() {
        let s3 = connection_file(&m, &unit)?;
        assert_eq!(s3["addressing"], "virtual", "{unit}");
        assert_eq!(s3["driver_config"]["path_style"], false, "{unit}");
        // What the services load is the same file.
        let loaded: serde_json::Value = serde_yaml_ng::from_str(&service_credential(&m, &unit))
            .map_err(|e| model::Error(format!("{unit}: loaded s3_config.yaml: {e}")))?;
        assert_eq!(loaded["addressing"], "virtual", "{unit}");
    }

    m.set_remote_app_data(&rid, &[("s3-uri-style", "path")])?;
    wait_all_active(&mut m)?;
    for unit in m.units() {
        let s3 = connection_file(&m, &unit)?;
        assert_eq!(s3["addressing"], "path", "{unit}");
        assert_eq!(s3["driver_config"]["path_style"], true, "{unit}");
    }

    m.set_remote_app_data(&rid, &[("s3-uri-style", "vhost")])?;
    for unit in m.units() {
        assert_eq!(
            m.status(&unit)?,
            (
                "blocked".to_string(),
                "relation s3-credentials (s3-integrator): s3-uri-style is 'vhost', not host or path; fix the provider's configuration".to_string()
            ),
            "{unit}"
        );
    }
    let leaks = m.leaks(&[&key.secret])?;
    assert!(leaks.is_empty(), "{leaks:?}");
    Ok(())
}

/// The provider removes the v1 secret behind `secret-extra` (`secret-remove`): on their next
/// hook every unit finds `secret-get` failing, stops its services and is `blocked` saying the
/// relation's secret cannot be read and what to do; no key shows in any status, log, relation
/// data or action output. A new secret from the provider brings them back.
#[test]
fn a_removed_v1_secret_blocks_every_unit_without_showing_a_key() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let first = RgwKey::create("RELRM")?;
    let second = RgwKey::create("RELRN")?;
    let bucket = "chopsticks-charm-rel-removed";
    let mut m = deploy(2, bucket)?;
    let rid = m.relate(ENDPOINT, "s3-integrator", 1)?;
    let secret = m.add_app_secret(
        "s3-integrator",
        &[("access-key", &first.access), ("secret-key", &first.secret)],
    )?;
    m.set_remote_app_data(
        &rid,
        &[
            ("bucket", bucket),
            ("secret-extra", &secret),
            ("endpoint", &rgw.endpoint),
        ],
    )?;
    wait_all_active(&mut m)?;
    assert_source(&m, "s3-integrator")?;

    m.remove_app_secret(&secret)?;
    // Juju fires no hook on the consumers for a removal: the next one (here update-status)
    // finds it.
    m.update_status()?;
    let id = secret.trim_start_matches("secret:");
    let expected = format!(
        "relation s3-credentials (s3-integrator): the secret in secret-extra cannot be read (secret \"{id}\" not found); the provider must send a new secret granted to this application (s3-integrator: juju run s3-integrator/leader sync-s3-credentials), or remove the relation and set the s3-* options"
    );
    for unit in m.units() {
        assert_eq!(
            m.status(&unit)?,
            ("blocked".to_string(), expected.clone()),
            "{unit}"
        );
        for service in ["chopsticks-leader.service", "chopsticks-worker.service"] {
            let (code, out, _) = m.run_tool(&unit, &["systemctl", "is-active", service])?;
            assert_ne!(code, 0, "{unit}: {service} is {out}");
        }
    }
    assert_eq!(m.app_status()?, ("blocked".to_string(), expected.clone()));
    // Actions say no more than the status does.
    let out = m.juju_run("chopsticks/leader", "test-status")?;
    let started = m.juju_run("chopsticks/leader", "start-test users=1 duration=2s")?;
    assert_ne!(started.status, "completed", "{:?}", started.results);

    // The provider sends a new secret: the units run again with its key.
    let renewed = m.add_app_secret(
        "s3-integrator",
        &[
            ("access-key", &second.access),
            ("secret-key", &second.secret),
        ],
    )?;
    m.set_remote_app_data(&rid, &[("secret-extra", &renewed)])?;
    wait_all_active(&mut m)?;
    for unit in m.units() {
        let loaded = service_credential(&m, &unit);
        assert!(loaded.contains(&second.secret), "{unit}");
        assert!(!loaded.contains(&first.secret), "{unit}");
    }
    let leaks = m.leaks(&[&first.secret, &second.secret, &first.access])?;
    assert!(
        leaks.is_empty(),
        "{leaks:?} (test-status said {:?})",
        out.results
    );
    Ok(())
}

/// The `cos-agent` relation with a fake collector subordinate (`otel-collector`): one unit
/// beside each chopsticks unit, on its machine, seeing only its principal, which reads its
/// principal's `config` and decodes it as the real collector does (JSON; each dashboard
/// base64 + xz, decoded with Python's `lzma` and `base64`). The leader's scrape job is its
/// coordinator's `/metrics` on localhost, and the collector scrapes it there.
#[test]
fn a_collector_subordinate_decodes_each_units_cos_agent_config() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let mut m = deploy(2, "chopsticks-charm-rel-cos")?;
    m.config(&[
        ("s3-endpoint", &rgw.endpoint),
        ("s3-access-key", &rgw.access_key),
        ("s3-secret-key", &rgw.secret_key),
    ])?;
    wait_all_active(&mut m)?;
    let rid = m.relate_subordinate("cos-agent", "otel-collector")?;
    let leader = m.leader()?;
    let port = &m.state()?["config"]["control-port"];
    let control_port: u64 = port
        .as_u64()
        .or_else(|| port.as_str().and_then(|p| p.parse().ok()))
        .expect("the test set control-port");
    let mut dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dashboards/chopsticks.json"),
    )?)?;
    // The interface library tags each dashboard with the charm's name; so do we.
    dashboard["tags"]
        .as_array_mut()
        .expect("the dashboard has tags")
        .push("charm: chopsticks".into());
    for unit in m.units() {
        let sub = format!("otel-collector/{}", unit.rsplit('/').next().unwrap());
        let record = m.collector_record(&sub)?;
        // Container scope: on its principal's machine, seeing that principal only.
        assert_eq!(record["principals"], serde_json::json!([unit]), "{sub}");
        assert_eq!(record["machine"], m.machine(&unit)?.as_str(), "{sub}");
        assert_eq!(m.machine(&sub)?, m.machine(&unit)?, "{sub}");
        let (code, seen, err) =
            m.run_tool(&unit, &["relation-list", "-r", &rid, "--format=json"])?;
        assert_eq!(code, 0, "{err}");
        let seen: Vec<String> = serde_json::from_str(&seen)?;
        assert_eq!(
            seen,
            vec![sub.clone()],
            "{unit} sees only its own subordinate"
        );
        for other in m.units().into_iter().filter(|u| *u != unit) {
            let other_sub = format!("otel-collector/{}", other.rsplit('/').next().unwrap());
            let (code, _, err) =
                m.run_tool(&unit, &["relation-get", "-r", &rid, "-", &other_sub])?;
            assert_ne!(code, 0, "{unit} read {other_sub}'s databag");
            assert!(err.contains("settings not found"), "{err}");
        }

        assert_eq!(record["errors"], serde_json::json!([]), "{sub}");
        let config = &record["config"];
        assert_eq!(config["log_slots"], serde_json::json!([]), "{sub}");
        assert!(config["log_alert_rules"].is_object(), "{sub}: {config}");
        assert_eq!(
            config["dashboards"],
            serde_json::json!([dashboard]),
            "{sub}: the decoded dashboard is src/dashboards/chopsticks.json"
        );
        let groups = config["metrics_alert_rules"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let alerts: Vec<&str> = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .filter_map(|r| r["alert"].as_str())
            .collect();
        assert_eq!(
            alerts,
            [
                "ChopsticksRunFailed",
                "ChopsticksWorkerLost",
                "ChopsticksErrorRateHigh",
                "ChopsticksCoordinatorDown"
            ],
            "{sub}"
        );
        assert!(
            groups
                .iter()
                .all(|g| g["name"] == "chopsticks-test_00000000-0000-4000-8000-000000000000_chopsticks_chopsticks_alerts"),
            "{sub}: group names carry the unit's topology: {groups:?}"
        );
        let jobs = &config["metrics_scrape_jobs"];
        if unit == leader {
            assert_eq!(
                *jobs,
                serde_json::json!([{
                    "job_name": "chopsticks_coordinator",
                    "metrics_path": "/metrics",
                    "scheme": "http",
                    "static_configs": [{"targets": [format!("localhost:{control_port}")]}]
                }]),
                "{sub}"
            );
        } else {
            assert_eq!(
                *jobs,
                serde_json::json!([]),
                "{sub}: a worker exports no metrics"
            );
        }
    }

    // The leader's collector scrapes the job's address from the leader's machine.
    let sub = format!("otel-collector/{}", leader.rsplit('/').next().unwrap());
    let mut last = Vec::new();
    let scraped = wait_for(Duration::from_secs(20), Duration::from_millis(250), || {
        last = m.collector_scrape(&sub)?;
        Ok(last
            .first()
            .filter(|r| r["status"] == 200)
            .map(|r| r["metrics"].clone()))
    })
    .map_err(|e| model::Error(format!("{e}; last scrape: {last:?}")))?;
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!(
        last[0]["url"],
        format!("http://localhost:{control_port}/metrics")
    );
    let names: Vec<&str> = scraped
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .collect();
    for metric in ["chopsticks_run_state", "chopsticks_workers"] {
        assert!(names.contains(&metric), "{metric} not in {names:?}");
    }
    Ok(())
}
