//! End-to-end tests of the *packed* charm in a simulated Juju model, against the real RadosGW.
//!
//! Each test deploys `chopsticks_ubuntu@24.04-amd64.charm` to five units of a [`model::Model`]:
//! the charm's real `dispatch` runs every hook and action under fake hook tools, and a fake
//! `systemctl` really runs the rendered units' `ExecStart` (the bundled `chopsticks` binary),
//! so the leader's coordinator and four workers load-test RadosGW from their own root prefixes
//! and loopback addresses (127.0.0.10-14).
//!
//! The charm is `$CHOPSTICKS_CHARM` when set, else built once per run with
//! `scripts/pack-charm.sh`.  RadosGW comes from `tests/rgw/up.sh` (`S3_ENDPOINT`, ...); without
//! it the tests fail and say to run `tests/run.sh`.  Models run one at a time: each one runs five units' daemons.
//!
//! Run: `tests/run.sh` (or `eval "$(tests/rgw/up.sh)"; cargo test --release --test charm_model`).

mod model;
#[path = "support/pack.rs"]
mod pack;
#[path = "support/charm_suite.rs"]
mod suite;

use std::path::PathBuf;
use std::time::Duration;

use model::{wait_for, ActionOutcome, Model, Result};
use serde_json::Value;

use suite::{rgw, serial, Rgw, RgwKey, BLOCKED_NEEDS_S3};

/// The packed charm, built once into `<tmp>/charm-model`.
fn packed_charm() -> PathBuf {
    suite::packed_charm("charm-model")
}

/// Ports no one listens on now, for this model's coordinator, control API and web UI.
fn free_ports() -> [u16; 3] {
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    let port = |i: usize| listeners[i].local_addr().unwrap().port();
    [port(0), port(1), port(2)]
}

struct Ports {
    coordinator: u16,
    control: u16,
    web: u16,
}

/// A model with five units deployed and, unless the test wants otherwise, its own ports.
fn deploy(units: usize) -> Result<(Model, Ports)> {
    let mut m = Model::new(&packed_charm())?;
    m.deploy(units)?;
    let [coordinator, control, web] = free_ports();
    Ok((
        m,
        Ports {
            coordinator,
            control,
            web,
        },
    ))
}

fn port_config(p: &Ports) -> [(String, String); 3] {
    [
        ("coordinator-port".into(), p.coordinator.to_string()),
        ("control-port".into(), p.control.to_string()),
        ("web-port".into(), p.web.to_string()),
    ]
}

fn config(m: &mut Model, values: &[(String, String)]) -> Result<()> {
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    m.config(&pairs)
}

/// Configures S3 with plain keys and a bucket of the test's own.
fn configure(m: &mut Model, rgw: &Rgw, ports: &Ports, bucket: &str) -> Result<()> {
    let mut values = vec![
        ("s3-endpoint".to_string(), rgw.endpoint.clone()),
        ("s3-access-key".to_string(), rgw.access_key.clone()),
        ("s3-secret-key".to_string(), rgw.secret_key.clone()),
        ("s3-bucket".to_string(), bucket.to_string()),
        ("scenario-file".to_string(), "s3_small_objects".to_string()),
    ];
    values.extend(port_config(ports));
    config(m, &values)
}

/// Runs update-status until every unit is active (workers connect asynchronously).
/// A model of `units` units configured against `rgw` (bucket `bucket`), every unit active.
fn active_model(units: usize, rgw: &Rgw, bucket: &str) -> Result<(Model, Ports)> {
    let (mut m, ports) = deploy(units)?;
    configure(&mut m, rgw, &ports, bucket)?;
    wait_all_active(&mut m)?;
    Ok((m, ports))
}

fn wait_all_active(m: &mut Model) -> Result<()> {
    for _ in 0..10 {
        let statuses: Vec<(String, (String, String))> = m
            .units()
            .into_iter()
            .map(|u| Ok((u.clone(), m.status(&u)?)))
            .collect::<Result<_>>()?;
        // The leader's status is read once per hook: it must have seen every worker too.
        if statuses
            .iter()
            .all(|(_, (s, msg))| s == "active" && !msg.contains("not connected"))
        {
            return Ok(());
        }
        eprintln!("not all active yet: {statuses:?}");
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

/// test-status on the leader until `done` accepts its results.
fn wait_status(
    m: &mut Model,
    timeout: Duration,
    done: impl Fn(&ActionOutcome) -> bool,
) -> Result<ActionOutcome> {
    let mut last = None;
    let found = wait_for(timeout, Duration::from_millis(500), || {
        let out = m.juju_run("chopsticks/leader", "test-status")?;
        let ok = out.status == "completed" && done(&out);
        last = Some(out.results.clone());
        Ok(ok.then_some(out))
    });
    found.map_err(|e| model::Error(format!("{e}; last test-status: {last:?}")))
}

fn expect_completed(out: &ActionOutcome) -> &ActionOutcome {
    assert_eq!(
        out.status, "completed",
        "action failed: {} {:?} {}",
        out.message, out.results, out.stderr
    );
    out
}

/// Runs start-test on the leader with `params`; returns the new run's id.
fn start_test(m: &mut Model, params: &str) -> Result<String> {
    let out = m.juju_run("chopsticks/leader", &format!("start-test {params}"))?;
    Ok(expect_completed(&out)
        .get("test-run-id")
        .expect("start-test returns test-run-id")
        .to_string())
}

fn expect_refused<'a>(out: &'a ActionOutcome, message_part: &str) -> &'a ActionOutcome {
    assert_eq!(
        out.status, "failed",
        "expected a refusal: {:?}",
        out.results
    );
    assert!(
        out.message.contains(message_part),
        "refusal {:?} lacks {message_part:?}",
        out.message
    );
    out
}

/// The main PID of a unit's service, as the fake systemd reports it.
fn main_pid(m: &Model, unit: &str, service: &str) -> Option<u64> {
    let path = m
        .unit_root(unit)
        .join("run/fake-systemd")
        .join(format!("{service}.state"));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    if state["active"] == "active" {
        state["main_pid"].as_u64()
    } else {
        None
    }
}

fn users_per_worker(out: &ActionOutcome) -> Vec<(String, u64)> {
    out.get("users-per-worker")
        .unwrap_or_default()
        .split(", ")
        .filter_map(|e| e.split_once('='))
        .map(|(w, n)| (w.to_string(), n.parse().unwrap_or(0)))
        .collect()
}

#[test]
fn deploy_configure_run_fetch_and_stop() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, ports) = deploy(5)?;
    let leader = m.leader()?;
    for unit in m.units() {
        assert_eq!(
            m.status(&unit)?,
            ("blocked".to_string(), BLOCKED_NEEDS_S3.to_string()),
            "{unit}"
        );
    }

    // Refusals before S3 is configured, on a worker, and of bad params.
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test users=50 spawn-rate=5 duration=10m",
    )?;
    expect_refused(
        &out,
        "S3 is not configured: juju config chopsticks s3-endpoint=",
    );
    let out = m.juju_run("chopsticks/1", "start-test")?;
    expect_refused(&out, "start-test runs on the leader unit");
    for (command, error) in [
        // Bounds (users=0, spawn-rate=0) are the engine's, not the schema's: see
        // a_bad_start_request_gets_the_same_message_from_every_front_end. The schema still
        // refuses what is not a number.
        (
            "start-test users=1.5",
            "users: Invalid type. Expected: integer, given: number",
        ),
        (
            "start-test spawn-rate=fast",
            "spawn-rate: Invalid type. Expected: number, given: string",
        ),
        (
            "start-test users=many",
            "users: Invalid type. Expected: integer, given: string",
        ),
        (
            "start-test color=blue",
            "Additional property color is not allowed",
        ),
        (
            "fetch-metrics format=xml",
            "format must be one of the following",
        ),
        (
            "stop-test now=true",
            "Additional property now is not allowed",
        ),
    ] {
        let err = m
            .juju_run("chopsticks/leader", command)
            .unwrap_err()
            .to_string();
        assert!(err.contains(error), "{command}: {err}");
    }

    // S3 keys through a user secret: blocked until it is granted.
    let creds = m.add_user_secret(&[
        ("access-key", &rgw.access_key),
        ("secret-key", &rgw.secret_key),
    ])?;
    let mut values = vec![
        ("s3-endpoint".to_string(), rgw.endpoint.clone()),
        ("s3-credentials".to_string(), creds.clone()),
        (
            "s3-bucket".to_string(),
            "chopsticks-charm-model-a".to_string(),
        ),
        ("scenario-file".to_string(), "s3_small_objects".to_string()),
    ];
    values.extend(port_config(&ports));
    config(&mut m, &values)?;
    let (state, message) = m.status(&leader)?;
    assert_eq!(state, "blocked");
    assert!(message.contains("juju grant-secret"), "{message}");
    m.grant_secret(&creds)?;
    m.update_status()?;
    wait_all_active(&mut m)?;
    let (_, message) = m.status(&leader)?;
    assert!(
        message.starts_with("coordinator ready: 4 workers connected"),
        "{message}"
    );
    for unit in m.units().iter().filter(|u| **u != leader) {
        assert_eq!(
            m.status(unit)?,
            (
                "active".into(),
                format!(
                    "worker connected to {}:{}",
                    m.address(&leader),
                    ports.coordinator
                )
            )
        );
    }
    assert_eq!(m.app_data()?["coordinator-address"], m.address(&leader));
    assert!(m
        .opened_ports(&leader)?
        .contains(&format!("{}/tcp", ports.coordinator)));

    // The leader's files and units: credentials through LoadCredential=, hardened, as chopsticks.
    let root = m.unit_root(&leader);
    let s3_config = root.join("etc/chopsticks/s3_config.yaml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&s3_config)?.permissions().mode() & 0o777,
        0o600
    );
    let recorded = &m.systemd_units(&leader)?["chopsticks-leader.service"];
    assert_eq!(
        recorded["hardening"]["User"],
        serde_json::json!(["chopsticks"])
    );
    assert_eq!(
        recorded["hardening"]["NoNewPrivileges"],
        serde_json::json!(["yes"])
    );
    assert!(recorded["load_credential"]
        .to_string()
        .contains("s3_config.yaml"));

    // A run: every worker gets users, test-status mid-run, then it completes.
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test users=8 spawn-rate=8 duration=20s",
    )?;
    expect_completed(&out);
    let run_id = out.get("test-run-id").unwrap().to_string();
    assert_eq!(out.get("users"), Some("8"));
    assert_eq!(out.get("workers"), Some("4"));
    assert_eq!(out.get("duration"), Some("20s"));
    let metrics_dir = out.get("metrics-dir").unwrap().to_string();
    assert!(
        metrics_dir.ends_with(&format!("/var/lib/chopsticks/{run_id}")),
        "{metrics_dir}"
    );

    let mid = wait_status(&mut m, Duration::from_secs(60), |o| {
        let per = users_per_worker(o);
        o.get("state") == Some("running") && per.len() == 4 && per.iter().all(|(_, n)| *n > 0)
    })?;
    assert_eq!(mid.get("test-run-id"), Some(run_id.as_str()));
    assert_eq!(mid.get("users"), Some("8/8"));
    assert_eq!(mid.get("workers-connected"), Some("4"));
    assert_eq!(mid.get("workers-missing"), Some("0"));
    let worker_view = m.juju_run("chopsticks/1", "test-status")?;
    assert_eq!(worker_view.get("role"), Some("worker"));
    assert_eq!(worker_view.get("connection"), Some("connected"));
    let out = m.juju_run("chopsticks/leader", "start-test")?;
    expect_refused(&out, "stop it first: juju run chopsticks/leader stop-test");

    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("state")
            .is_some_and(|s| !matches!(s, "preparing" | "spawning" | "running" | "stopping"))
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_ne!(done.get("requests"), Some("0"));

    // fetch-metrics in the three formats.
    let summary = m.juju_run("chopsticks/leader", "fetch-metrics")?;
    expect_completed(&summary);
    assert_eq!(summary.get("state"), Some("completed"));
    assert_eq!(summary.get("test-run-id"), Some(run_id.as_str()));
    let table = summary.get("summary").unwrap();
    for task in ["upload", "download"] {
        assert!(table.contains(task), "{table}");
    }
    let files = summary.get("files").unwrap();
    assert!(
        files.contains("summary.json") && files.contains("stats.csv"),
        "{files}"
    );
    assert_eq!(
        summary.get("scp-command"),
        Some(format!("juju scp -- -r {leader}:{metrics_dir} .").as_str())
    );
    let json = m.juju_run(
        "chopsticks/leader",
        &format!("fetch-metrics format=json run-id={run_id}"),
    )?;
    let parsed: Value = serde_json::from_str(expect_completed(&json).get("json").unwrap())?;
    assert!(parsed.is_object(), "{parsed}");
    let csv = m.juju_run("chopsticks/leader", "fetch-metrics format=csv")?;
    let csv = expect_completed(&csv).get("csv").unwrap().to_string();
    assert!(csv.lines().next().unwrap().contains("Name"), "{csv}");
    assert!(csv.contains("upload"), "{csv}");
    let out = m.juju_run("chopsticks/2", "fetch-metrics")?;
    expect_refused(&out, "fetch-metrics runs on the leader unit");
    let out = m.juju_run("chopsticks/leader", "fetch-metrics run-id=nope")?;
    expect_refused(&out, "there is no run 'nope'");

    // stop-test mid-run.
    let long_run = start_test(&mut m, "users=4 spawn-rate=4 duration=10m")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("state") == Some("running")
    })?;
    let out = m.juju_run("chopsticks/leader", "stop-test")?;
    expect_completed(&out);
    assert_eq!(out.get("test-run-id"), Some(long_run.as_str()));
    assert_eq!(out.get("state"), Some("stopped"));
    let out = m.juju_run(
        "chopsticks/leader",
        &format!("fetch-metrics run-id={long_run}"),
    )?;
    assert_eq!(expect_completed(&out).get("state"), Some("stopped"));

    // A config change restarts what depends on it.
    let coordinator_pid =
        main_pid(&m, &leader, "chopsticks-leader.service").expect("coordinator runs");
    let worker_pid =
        main_pid(&m, "chopsticks/3", "chopsticks-worker.service").expect("worker runs");
    m.config(&[("log-level", "debug")])?;
    wait_all_active(&mut m)?;
    let new_coordinator =
        main_pid(&m, &leader, "chopsticks-leader.service").expect("coordinator runs");
    let new_worker =
        main_pid(&m, "chopsticks/3", "chopsticks-worker.service").expect("worker runs");
    assert_ne!(
        coordinator_pid, new_coordinator,
        "the coordinator was not restarted"
    );
    assert_ne!(worker_pid, new_worker, "the worker was not restarted");
    let unit_file =
        std::fs::read_to_string(root.join("etc/systemd/system/chopsticks-leader.service"))?;
    assert!(unit_file.contains("--log-level debug"), "{unit_file}");

    // No secret anywhere Juju would show or record it.
    let token = std::fs::read_to_string(root.join("etc/chopsticks/cluster-token"))?;
    let leaks = m.leaks(&[&rgw.secret_key, token.trim()])?;
    assert!(leaks.is_empty(), "{leaks:?}");
    Ok(())
}

#[test]
fn leadership_moves_and_units_come_and_go() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, ports) = active_model(5, &rgw, "chopsticks-charm-model-b")?;
    let old = m.leader()?;

    // The leader moves: the old one stops its coordinator, everyone follows the new one.
    m.set_leader("chopsticks/2")?;
    wait_all_active(&mut m)?;
    let new = "chopsticks/2";
    assert_eq!(m.app_data()?["coordinator-address"], m.address(new));
    assert!(
        main_pid(&m, &old, "chopsticks-leader.service").is_none(),
        "old coordinator still runs"
    );
    assert!(
        main_pid(&m, &old, "chopsticks-worker.service").is_some(),
        "old leader is not a worker"
    );
    for unit in m.units().iter().filter(|u| *u != new) {
        assert_eq!(
            m.status(unit)?,
            (
                "active".into(),
                format!(
                    "worker connected to {}:{}",
                    m.address(new),
                    ports.coordinator
                )
            )
        );
    }
    let (_, message) = m.status(new)?;
    assert!(
        message.starts_with("coordinator ready: 4 workers connected"),
        "{message}"
    );
    let out = m.juju_run(&old, "start-test")?;
    expect_refused(&out, "start-test runs on the leader unit");
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test users=4 spawn-rate=4 duration=10s",
    )?;
    assert_eq!(expect_completed(&out).get("workers"), Some("4"));
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("state") == Some("completed")
    })?;
    assert_eq!(done.get("test-run-id"), out.get("test-run-id"));

    // A worker removed mid-run: the run still completes; remove cleans the unit's files.
    let run_id = start_test(&mut m, "users=8 spawn-rate=8 duration=25s")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("state") == Some("running") && users_per_worker(o).len() == 4
    })?;
    m.set_keep_removed_roots(true);
    let gone = "chopsticks/4";
    let gone_root = m.unit_root(gone);
    m.remove_unit(gone)?;
    let done = wait_status(&mut m, Duration::from_secs(120), |o| {
        o.get("test-run-id") == Some(run_id.as_str())
            && o.get("state")
                .is_some_and(|s| !matches!(s, "preparing" | "spawning" | "running" | "stopping"))
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    // fetch-metrics, in every format, shows each worker's part and names the one that left.
    for format in ["summary", "json", "csv"] {
        let out = m.juju_run(
            "chopsticks/leader",
            &format!("fetch-metrics format={format} run-id={run_id}"),
        )?;
        expect_completed(&out);
        let lost = out.get("workers-lost").unwrap_or_default();
        assert!(lost.contains("chopsticks-4 ("), "{format}: {lost}");
        let workers = out.get("workers").unwrap_or_default();
        // chopsticks/2 leads; the other four ran the run.
        for w in [0, 1, 3, 4] {
            assert!(
                workers.contains(&format!("chopsticks-{w}")),
                "{format}: {workers}"
            );
        }
        assert_ne!(out.get("requests"), Some("0"));
    }
    for unit_file in ["chopsticks-worker.service", "chopsticks-leader.service"] {
        assert!(
            !gone_root
                .join("etc/systemd/system")
                .join(unit_file)
                .exists(),
            "{unit_file} left"
        );
    }
    assert!(
        !gone_root.join("etc/chopsticks").exists(),
        "/etc/chopsticks left"
    );
    assert!(
        !gone_root.join("opt/chopsticks").exists(),
        "/opt/chopsticks left"
    );
    assert!(main_pid(&m, gone, "chopsticks-worker.service").is_none());
    assert!(
        model::processes_matching(gone_root.to_str().unwrap()).is_empty(),
        "processes of a removed unit"
    );

    // A new unit joins the current leader and takes part in the next run.
    let added = m.add_unit()?;
    wait_all_active(&mut m)?;
    assert_eq!(
        m.status(&added)?,
        (
            "active".into(),
            format!(
                "worker connected to {}:{}",
                m.address(new),
                ports.coordinator
            )
        )
    );
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test users=4 spawn-rate=4 duration=5s",
    )?;
    assert_eq!(expect_completed(&out).get("workers"), Some("4"));
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("state") == Some("completed")
    })?;
    assert_eq!(done.get("test-run-id"), out.get("test-run-id"));
    let leaks = m.leaks(&[&rgw.secret_key])?;
    assert!(leaks.is_empty(), "{leaks:?}");
    Ok(())
}

/// Files under `dir` (recursively, symlinks not followed) whose bytes contain `needle`,
/// except those in `allowed` (where the secret lives by design).
fn files_containing(dir: &std::path::Path, needle: &str, allowed: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && !allowed.contains(&path) {
                let hit = std::fs::read(&path)
                    .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
                if hit {
                    found.push(path);
                }
            }
        }
    }
    found
}

#[test]
fn start_test_reads_scenarios_only_from_the_scenario_dir() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, ports) = active_model(2, &rgw, "chopsticks-charm-model-files")?;
    let leader = m.leader()?;
    let root = m.unit_root(&leader);
    let token_path = root.join("etc/chopsticks/cluster-token");
    let token = std::fs::read_to_string(&token_path)?.trim().to_string();
    assert!(token.len() >= 16, "the cluster token is written");
    let canary = "CANARY-a41f9e-planted-secret-line";
    let canary_path = root.join("etc/canary-secret");
    std::fs::write(&canary_path, format!("{canary}\n"))?;
    let scenarios = root.join("var/lib/chopsticks/scenarios");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&scenarios)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);
    assert_eq!(meta.uid(), 0, "the scenario directory is root's");
    std::os::unix::fs::symlink(&token_path, scenarios.join("token.yaml"))?;
    std::os::unix::fs::symlink(&canary_path, scenarios.join("canary.yaml"))?;
    std::fs::write(scenarios.join("notes.yaml"), format!("{canary}\n"))?;
    std::fs::write(
        scenarios.join("keyed.yaml"),
        format!("name: x\n{canary} key: {canary}\nusers: []\n"),
    )?;

    let dir = scenarios.display().to_string();
    for (given, refusal) in [
        (token_path.display().to_string(), "read only from"),
        (canary_path.display().to_string(), "read only from"),
        (
            "/etc/chopsticks/cluster-token".to_string(),
            "read only from",
        ),
        ("/etc/shadow".to_string(), "read only from"),
        ("../../../etc/canary-secret".to_string(), "read only from"),
        (
            format!("{dir}/../../../../etc/canary-secret"),
            "read only from",
        ),
        (
            "src/chopsticks/scenarios/../../../../etc/shadow.py".to_string(),
            "read only from",
        ),
        ("token.yaml".to_string(), "is a symbolic link"),
        (format!("{dir}/canary.yaml"), "is a symbolic link"),
        (
            "notes.yaml".to_string(),
            "invalid type: string (value not shown)",
        ),
        ("keyed.yaml".to_string(), "unknown field (value not shown)"),
    ] {
        let out = m.run_action(
            "chopsticks/leader",
            "start-test",
            serde_json::json!({"scenario-file": given, "duration": "5s"}),
        )?;
        expect_refused(&out, refusal);
    }
    // The configured default goes through the same door.
    m.config(&[("scenario-file", &token_path.display().to_string())])?;
    let out = m.juju_run("chopsticks/leader", "start-test duration=5s")?;
    expect_refused(&out, "read only from");
    m.config(&[("scenario-file", "s3_small_objects")])?;

    // A scenario file in the directory is read by the charm and sent as text.
    let mine = "name: from_the_dir\nusers:\n  - name: writer\n    tasks:\n      - {op: put, size: 1KiB}\n    wait: {constant: 0.1}\n";
    std::fs::write(scenarios.join("mine.yaml"), mine)?;
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test scenario-file=mine.yaml users=1 spawn-rate=1 duration=3s",
    )?;
    let run_id = expect_completed(&out)
        .get("test-run-id")
        .unwrap()
        .to_string();
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("test-run-id") == Some(run_id.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed")
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_eq!(done.get("scenario"), Some("from_the_dir"));
    let record: Value = serde_json::from_str(&std::fs::read_to_string(
        root.join("var/lib/chopsticks")
            .join(&run_id)
            .join("run.json"),
    )?)?;
    assert_eq!(
        record["parameters"]["scenario_source"],
        scenarios.join("mine.yaml").display().to_string()
    );

    // Scenarios through Juju, without a file: the whole scenario as the action's text, and
    // named scenarios in the `scenarios` option, listed with their descriptions.
    let inline = "name: from_the_action\ndescription: sent as text\nusers:\n  - name: writer\n    tasks:\n      - {op: put, size: 1KiB}\n    wait: {constant: 0.1}\n";
    let out = m.run_action(
        "chopsticks/leader",
        "start-test",
        serde_json::json!({"scenario": "name: broken\nusers: []\n", "duration": "3s"}),
    )?;
    expect_refused(&out, "scenario: ");
    let out = m.run_action(
        "chopsticks/leader",
        "start-test",
        serde_json::json!({"scenario": inline, "scenario-file": "s3_small_objects"}),
    )?;
    expect_refused(&out, "not both");
    m.config(&[(
        "scenarios",
        &format!(
            "nightly: |\n  {}\n",
            inline.trim_end().replace('\n', "\n  ")
        ),
    )])?;
    let out = m.juju_run("chopsticks/leader", "list-scenarios")?;
    let listed = expect_completed(&out).get("scenarios").unwrap_or_default();
    assert!(
        listed
            .lines()
            .any(|l| l == "nightly (scenarios option): sent as text"),
        "{listed}"
    );
    assert!(listed
        .lines()
        .any(|l| l.starts_with("s3_small_objects (built-in): ")));
    assert!(listed.lines().any(|l| l.starts_with("mine.yaml (file in ")));
    let out = m.run_action(
        "chopsticks/leader",
        "start-test",
        serde_json::json!({"scenario": inline, "users": 1, "spawn-rate": 1, "duration": "3s", "headless": false}),
    )?;
    let inline_run = expect_completed(&out)
        .get("test-run-id")
        .unwrap()
        .to_string();
    // The web UI's port is open while the run goes (juju expose reaches it) ...
    let web = format!("{}/tcp", ports.web);
    assert!(
        m.opened_ports(&leader)?.contains(&web),
        "{:?}",
        m.opened_ports(&leader)?
    );
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("test-run-id") == Some(inline_run.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed")
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_eq!(done.get("scenario"), Some("from_the_action"));
    // ... and closed by the first hook after it ends.
    m.update_status()?;
    assert!(
        !m.opened_ports(&leader)?.contains(&web),
        "{:?}",
        m.opened_ports(&leader)?
    );

    // Results out of Juju: the report's ready-to-paste scp command, for a file that exists.
    let out = m.juju_run("chopsticks/leader", "fetch-metrics")?;
    let report = root
        .join("var/lib/chopsticks")
        .join(&inline_run)
        .join("report.html");
    assert!(report.is_file());
    assert_eq!(
        expect_completed(&out).get("report-command"),
        Some(format!("juju scp {leader}:{} .", report.display()).as_str())
    );
    assert_eq!(m.app_version()?, env!("CARGO_PKG_VERSION"));
    // The daemons' logs are also files under /var/log/chopsticks, 0640.
    let log = root.join("var/log/chopsticks/coordinator.log");
    let meta = std::fs::metadata(&log)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert!(std::fs::read_to_string(&log)?.contains(&inline_run));

    // Neither secret reached anything Juju shows or records, nor any log or file of the model.
    let leaks = m.leaks(&[&token, canary])?;
    assert!(leaks.is_empty(), "{leaks:?}");
    let planted = vec![
        canary_path.clone(),
        scenarios.join("notes.yaml"),
        scenarios.join("keyed.yaml"),
    ];
    let hits = files_containing(m.path(), canary, &planted);
    assert!(hits.is_empty(), "canary content in {hits:?}");
    let token_files: Vec<PathBuf> = m
        .units()
        .iter()
        .map(|u| m.unit_root(u).join("etc/chopsticks/cluster-token"))
        .chain([m.path().join("state.json")])
        .collect();
    let hits = files_containing(m.path(), &token, &token_files);
    assert!(
        hits.iter().all(|p| p.starts_with(m.path().join("units"))
            && p.to_string_lossy().contains("/run/credentials/")),
        "token in {hits:?}"
    );
    Ok(())
}

#[test]
fn a_lost_worker_unit_does_not_block_start_test() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, _) = active_model(3, &rgw, "chopsticks-charm-model-lost")?;
    // chopsticks/2's machine goes away: it stays a peer, but its worker is gone for good.
    m.lose_unit("chopsticks/2")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("workers-connected") == Some("1")
    })?;

    let out = m.juju_run("chopsticks/leader", "start-test min-workers=2 duration=5s")?;
    expect_refused(
        &out,
        "1 of 2 workers are connected but 2 are needed; not connected: chopsticks/2",
    );
    let out = m.juju_run("chopsticks/leader", "start-test min-workers=3 duration=5s")?;
    expect_refused(&out, "min-workers=3 but there are only 2 worker units");

    let began = std::time::Instant::now();
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test users=2 spawn-rate=2 duration=5s",
    )?;
    let took = began.elapsed();
    expect_completed(&out);
    assert_eq!(out.get("workers"), Some("1"));
    assert_eq!(out.get("workers-not-connected"), Some("chopsticks/2"));
    // It waited a few seconds for chopsticks/2, not the minute it used to.
    assert!(took < Duration::from_secs(30), "start-test took {took:?}");
    let run_id = out.get("test-run-id").unwrap().to_string();
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("test-run-id") == Some(run_id.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed")
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_ne!(done.get("requests"), Some("0"));
    let leader = m.leader()?;
    let record: Value = serde_json::from_str(&std::fs::read_to_string(
        m.unit_root(&leader)
            .join("var/lib/chopsticks")
            .join(&run_id)
            .join("run.json"),
    )?)?;
    let workers = record["workers"].as_array().cloned().unwrap_or_default();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert!(
        workers[0].to_string().contains("chopsticks-1"),
        "{workers:?}"
    );
    Ok(())
}

/// The credential copy the fake systemd handed to a running service (`LoadCredential=`).
fn service_credential(m: &Model, unit: &str, service: &str) -> String {
    let path = m
        .unit_root(unit)
        .join("run/credentials")
        .join(service)
        .join("s3_config.yaml");
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn rotated_credentials_reach_every_unit_after_the_run() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let first = RgwKey::create("ROTA")?;
    let second = RgwKey::create("ROTB")?;
    let (mut m, ports) = deploy(3)?;
    let creds =
        m.add_user_secret(&[("access-key", &first.access), ("secret-key", &first.secret)])?;
    m.grant_secret(&creds)?;
    let mut values = vec![
        ("s3-endpoint".to_string(), rgw.endpoint.clone()),
        ("s3-credentials".to_string(), creds.clone()),
        (
            "s3-bucket".to_string(),
            "chopsticks-charm-model-rotate".to_string(),
        ),
        ("scenario-file".to_string(), "s3_small_objects".to_string()),
    ];
    values.extend(port_config(&ports));
    config(&mut m, &values)?;
    wait_all_active(&mut m)?;
    let leader = m.leader()?;
    let service = |u: &str| {
        if u == leader {
            "chopsticks-leader.service"
        } else {
            "chopsticks-worker.service"
        }
    };
    for unit in m.units() {
        assert!(
            service_credential(&m, &unit, service(&unit)).contains(&first.secret),
            "{unit}"
        );
    }

    // Rotate mid-run: every unit writes the new key at once, no service restarts mid-run.
    let run = start_test(&mut m, "users=2 spawn-rate=2 duration=2m")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("state") == Some("running")
    })?;
    let pids: Vec<(String, u64)> = m
        .units()
        .into_iter()
        .map(|u| {
            let pid = main_pid(&m, &u, service(&u)).expect("service runs");
            (u, pid)
        })
        .collect();
    m.update_user_secret(
        &creds,
        &[
            ("access-key", &second.access),
            ("secret-key", &second.secret),
        ],
    )?;
    for unit in m.units() {
        let rendered =
            std::fs::read_to_string(m.unit_root(&unit).join("etc/chopsticks/s3_config.yaml"))?;
        assert!(
            rendered.contains(&second.access) && rendered.contains(&second.secret),
            "{unit}"
        );
        assert!(!rendered.contains(&first.secret), "{unit}");
        let (state, message) = m.status(&unit)?;
        assert_eq!(state, "active", "{unit}");
        assert!(
            message.ends_with(&format!("new settings apply when run {run} ends")),
            "{unit}: {message}"
        );
    }
    for (unit, pid) in &pids {
        assert_eq!(
            main_pid(&m, unit, service(unit)),
            Some(*pid),
            "{unit} restarted mid-run"
        );
    }
    let refreshes = m
        .calls()?
        .into_iter()
        .filter(|c| c.tool == "secret-get" && c.args.iter().any(|a| a == "--refresh"))
        .count();
    assert!(
        refreshes >= m.units().len(),
        "secret-get --refresh on every unit"
    );

    // The run ends: each service restarts once with the new key.
    let out = m.juju_run("chopsticks/leader", "stop-test")?;
    expect_completed(&out);
    wait_all_active(&mut m)?;
    for (unit, pid) in &pids {
        let now = main_pid(&m, unit, service(unit)).expect("service runs");
        assert_ne!(now, *pid, "{unit} was not restarted after the run");
        let loaded = service_credential(&m, unit, service(unit));
        assert!(
            loaded.contains(&second.secret),
            "{unit} runs with the old key"
        );
        let (_, message) = m.status(unit)?;
        assert!(!message.contains("new settings apply"), "{unit}: {message}");
    }

    // The next run works with the old key gone: it can only be using the new one.
    first.remove()?;
    let next = start_test(&mut m, "users=2 spawn-rate=2 duration=5s")?;
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("test-run-id") == Some(next.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed")
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_ne!(done.get("requests"), Some("0"));
    assert_eq!(done.get("failures"), Some("0"), "{:?}", done.results);
    let leaks = m.leaks(&[&first.secret, &second.secret])?;
    assert!(leaks.is_empty(), "{leaks:?}");
    Ok(())
}

/// Makes removing `dir` fail as it did in production (EBUSY): a bind mount on it when this
/// test runs as root, else a parent directory without write permission. Undone on drop.
struct Obstacle {
    mounted: Option<PathBuf>,
    locked_parent: Option<PathBuf>,
}

impl Obstacle {
    fn on(dir: &std::path::Path) -> Result<Obstacle> {
        use std::os::unix::fs::PermissionsExt;
        if nix_is_root() {
            let mount = dir.join("bin");
            let status = std::process::Command::new("mount")
                .args(["--bind", "--read-only"])
                .arg(&mount)
                .arg(&mount)
                .status()?;
            if status.success() {
                return Ok(Obstacle {
                    mounted: Some(mount),
                    locked_parent: None,
                });
            }
        }
        let parent = dir.parent().unwrap().to_path_buf();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555))?;
        Ok(Obstacle {
            mounted: None,
            locked_parent: Some(parent),
        })
    }
}

impl Drop for Obstacle {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if let Some(m) = &self.mounted {
            let _ = std::process::Command::new("umount").arg(m).status();
        }
        if let Some(p) = &self.locked_parent {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
        }
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn remove_takes_every_piece_it_can_credentials_first() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, _) = active_model(3, &rgw, "chopsticks-charm-model-remove")?;
    m.set_keep_removed_roots(true);
    let unit = "chopsticks/2";
    let root = m.unit_root(unit);
    let opt = root.join("opt/chopsticks");
    let obstacle = Obstacle::on(&opt)?;
    // The hook succeeds: what could not go is logged, and no credentials are left.
    m.remove_unit(unit)?;
    for gone in [
        "etc/chopsticks/s3_config.yaml",
        "etc/chopsticks/cluster-token",
        "etc/chopsticks",
        "etc/systemd/system/chopsticks-worker.service",
    ] {
        assert!(!root.join(gone).exists(), "{gone} left behind");
    }
    assert!(
        opt.exists(),
        "the obstacle did not hold: the test proves nothing"
    );
    let log = m.juju_log();
    assert!(
        log.contains("remove: could not finish a step (removing") && log.contains("opt/chopsticks"),
        "{log}"
    );
    assert!(model::processes_matching(root.to_str().unwrap()).is_empty());
    drop(obstacle);
    Ok(())
}

/// Sends `signal` to a service's main process (SIGSTOP makes a coordinator that does not answer).
fn signal_service(m: &Model, unit: &str, service: &str, signal: &str) -> Result<()> {
    let pid = main_pid(m, unit, service).expect("service runs");
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()?;
    assert!(status.success(), "kill -{signal} {pid}");
    Ok(())
}

#[test]
fn status_tells_the_truth_and_hooks_do_not_hang() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, _) = active_model(3, &rgw, "chopsticks-charm-model-status")?;
    let leader = m.leader()?;
    assert_eq!(
        m.status(&leader)?,
        (
            "active".into(),
            "coordinator ready: 2 workers connected, no runs yet".into()
        )
    );
    assert_eq!(
        m.app_status()?,
        ("active".into(), "idle: no runs yet".into())
    );

    // start-test sets both statuses at once; update-status follows the run.
    let run = start_test(&mut m, "users=4 spawn-rate=4 duration=20s")?;
    let (_, message) = m.status(&leader)?;
    assert!(
        ["preparing", "spawning", "running"]
            .iter()
            .any(|s| message.starts_with(&format!("{s} {run}: "))),
        "{message}"
    );
    assert_eq!(m.app_status()?.1, message);
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("state") == Some("running") && o.get("users") == Some("4/4")
    })?;
    m.update_status()?;
    let (state, message) = m.status(&leader)?;
    assert_eq!(state, "active");
    assert!(
        message.starts_with(&format!("running {run}: 4 users on 2 workers, "))
            && message.ends_with(" req/s"),
        "{message}"
    );
    assert_eq!(m.app_status()?, ("active".into(), message.clone()));
    wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("state") == Some("completed")
    })?;
    m.update_status()?;
    assert_eq!(
        m.status(&leader)?,
        (
            "active".into(),
            format!("coordinator ready: 2 workers connected, last run {run}: completed")
        )
    );
    assert_eq!(
        m.app_status()?,
        ("active".into(), format!("idle: last run {run} completed"))
    );

    // A coordinator that does not answer: the hook reads for about a second, says waiting.
    signal_service(&m, &leader, "chopsticks-leader.service", "STOP")?;
    let began = std::time::Instant::now();
    let hook = m.run_hook(&leader, "update-status");
    let took = began.elapsed();
    signal_service(&m, &leader, "chopsticks-leader.service", "CONT")?;
    hook?;
    assert!(
        took < Duration::from_secs(10),
        "update-status took {took:?}"
    );
    assert_eq!(
        m.status(&leader)?,
        (
            "waiting".into(),
            "waiting for the coordinator to answer (starting or busy)".into()
        )
    );
    m.update_status()?;
    assert_eq!(m.status(&leader)?.0, "active");

    // Results through Juju: a zero duration is refused; the web UI hint names the real secret.
    let out = m.juju_run("chopsticks/leader", "start-test duration=0s")?;
    expect_refused(&out, "duration=0s: the duration must be positive");
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test headless=false users=1 spawn-rate=1 duration=3s",
    )?;
    expect_completed(&out);
    let token_id = m.app_data()?["token-secret-id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(token_id.starts_with("secret:"), "{token_id}");
    assert_eq!(
        out.get("web-ui-login"),
        Some(
            format!(
                "any user name; the password is the cluster token: juju show-secret --reveal {token_id}"
            )
            .as_str()
        )
    );
    Ok(())
}

/// Keys under `prefix` in `bucket`, listed with a signed ListObjectsV2 (curl's SigV4).
fn s3_key_count(rgw: &Rgw, bucket: &str, prefix: &str) -> Result<u64> {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            // RadosGW wants the payload hash: this is SHA-256 of the empty body.
            "-H",
            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "--user",
        ])
        .arg(format!("{}:{}", rgw.access_key, rgw.secret_key))
        .arg(format!(
            "{}/{bucket}?list-type=2&prefix={}",
            rgw.endpoint,
            prefix.replace('/', "%2F")
        ))
        .output()?;
    if !out.status.success() {
        return Err(model::Error(format!(
            "listing {bucket}/{prefix}: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let count = text
        .split("<KeyCount>")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| model::Error(format!("no KeyCount in {text}")))?;
    Ok(count)
}

#[test]
fn leader_loss_mid_run_is_recorded_and_cleaned_by_the_new_leader() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let bucket = "chopsticks-charm-model-leaderloss";
    let (mut m, _) = active_model(4, &rgw, bucket)?;
    let old = m.leader()?;
    let run = start_test(&mut m, "users=6 spawn-rate=6 duration=10m")?;
    wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("state") == Some("running")
            && o.get("requests").and_then(|r| r.parse::<u64>().ok()) > Some(100)
    })?;
    let prefix = format!("chopsticks/{run}/");
    assert!(
        s3_key_count(&rgw, bucket, &prefix)? > 0,
        "the run wrote no objects"
    );

    // The leader's machine is lost mid-run; Juju elects chopsticks/1.
    m.lose_unit(&old)?;
    m.set_leader("chopsticks/1")?;
    let new = m.leader()?;
    assert_eq!(new, "chopsticks/1");

    // The new coordinator learns the run from the three workers that were in it.
    let mut last = None;
    let found = wait_for(Duration::from_secs(120), Duration::from_secs(1), || {
        m.update_status()?;
        let out = m.juju_run("chopsticks/leader", &format!("fetch-metrics run-id={run}"))?;
        let done =
            out.status == "completed" && out.get("workers").is_some_and(|w| w.lines().count() == 3);
        last = Some((out.message.clone(), out.results.clone()));
        Ok(done.then_some(out))
    })
    .map_err(|e| model::Error(format!("{e}; last fetch-metrics: {last:?}")))?;
    assert_eq!(found.get("state"), Some("interrupted"));
    assert!(found.get("partial").is_some_and(|p| p.starts_with("yes:")));
    let workers = found.get("workers").unwrap();
    for w in ["chopsticks-1", "chopsticks-2", "chopsticks-3"] {
        assert!(workers.contains(&format!("{w}: ")), "{workers}");
    }
    let requests: u64 = found.get("requests").unwrap().parse().unwrap();
    assert!(requests > 100, "{requests}");
    // Per-worker requests add up to the run's total.
    let sum: u64 = workers
        .lines()
        .map(|l| {
            l.split(": ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(sum, requests, "{workers}");

    // Its objects and unfinished uploads are cleaned up.
    let record_path = m
        .unit_root(&new)
        .join("var/lib/chopsticks")
        .join(&run)
        .join("run.json");
    let cleanup = wait_for(Duration::from_secs(120), Duration::from_millis(500), || {
        let record: Value = serde_json::from_str(&std::fs::read_to_string(&record_path)?)?;
        Ok((!record["cleanup"].is_null()).then(|| record["cleanup"].clone()))
    })?;
    assert!(cleanup["deleted_objects"].as_u64() > Some(0), "{cleanup}");
    assert_eq!(cleanup["remaining_objects"], 0, "{cleanup}");
    assert_eq!(s3_key_count(&rgw, bucket, &prefix)?, 0);

    // The new leader's status tells of it; the old leader comes back as a worker.
    m.update_status()?;
    let (_, message) = m.status(&new)?;
    assert!(
        message.contains(&format!("last run {run}: interrupted")),
        "{message}"
    );
    m.restore_unit(&old)?;
    wait_all_active(&mut m)?;
    assert_eq!(m.app_data()?["coordinator-address"], m.address(&new));
    assert!(main_pid(&m, &old, "chopsticks-leader.service").is_none());
    assert!(main_pid(&m, &old, "chopsticks-worker.service").is_some());
    let out = m.juju_run("chopsticks/leader", &format!("fetch-metrics run-id={run}"))?;
    assert_eq!(out.get("state"), Some("interrupted"));
    assert_eq!(out.get("workers").map(|w| w.lines().count()), Some(3));
    let next = start_test(&mut m, "users=3 spawn-rate=3 duration=4s min-workers=3")?;
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("test-run-id") == Some(next.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed")
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    Ok(())
}

/// `start-test sweep=true` with the scenario in the action: the coordinator steps the
/// arrival rate over both workers and writes sweep.json where the action says.
#[test]
fn start_test_sweep_steps_the_rate_and_writes_sweep_json() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, _) = active_model(3, &rgw, "chopsticks-charm-model-sweep")?;
    // Three steps the gateway keeps up with: the knee is the last one, and the sweep ends
    // because it reached `to`. Lateness is not what this checks: a step of 8 arrivals on a
    // machine running five units' processes can have one late arrival, 12.5 %.
    let scenario = "\
name: charm_sweep
users:
  - name: writer
    tasks:
      - {op: put, name: put, size: 1KiB}
load:
  arrival: {rate: 4/s}
  max_in_flight: 32
sweep:
  from: 4/s
  to: 16/s
  factor: 2
  step_time: 3s
  warmup: 1s
  stable: {window: 2s, cv: 50%}
  slo: {p99: 5s, error_rate: 1%}
  max_late: 100%
";
    let out = m.run_action(
        "chopsticks/leader",
        "start-test",
        serde_json::json!({"scenario": scenario, "sweep": true, "users": 1}),
    )?;
    let started = expect_completed(&out);
    let run = started.get("test-run-id").expect("test-run-id").to_string();
    let sweep_file = PathBuf::from(started.get("sweep-file").expect("sweep-file"));
    assert!(
        sweep_file.ends_with(format!("{run}/sweep.json")),
        "{sweep_file:?}"
    );
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("test-run-id") == Some(run.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed")
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    let sweep: Value = serde_json::from_str(&std::fs::read_to_string(&sweep_file)?)?;
    let offered: Vec<f64> = sweep["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["offered_rate"].as_f64().unwrap_or(-1.0))
        .collect();
    assert_eq!(offered, [4.0, 8.0, 16.0], "{sweep}");
    assert_eq!(sweep["finished"], true, "{sweep}");
    assert_eq!(sweep["knee"]["offered_rate"], 16.0, "{sweep}");
    for step in sweep["steps"].as_array().unwrap() {
        assert_eq!(step["verdict"], "met", "{step}");
        assert_eq!(step["errors"], 0, "{step}");
    }
    // Both workers took part: the run's requests are theirs.
    let record: Value = serde_json::from_str(&std::fs::read_to_string(
        sweep_file.with_file_name("run.json"),
    )?)?;
    let workers = record["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2, "{record}");
    assert!(
        workers.iter().all(|w| w["requests"].as_u64() > Some(0)),
        "{record}"
    );
    Ok(())
}

#[test]
fn upgrade_charm_restarts_nothing_mid_run_and_the_next_run_passes() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, _) = active_model(3, &rgw, "chopsticks-charm-model-upgrade")?;
    let leader = m.leader()?;
    let service = |u: &str| {
        if u == leader {
            "chopsticks-leader.service"
        } else {
            "chopsticks-worker.service"
        }
    };
    let pids = |m: &Model| -> Vec<Option<u64>> {
        m.units()
            .iter()
            .map(|u| main_pid(m, u, service(u)))
            .collect()
    };
    let before = pids(&m);

    // `juju refresh` with the same charm: the engine is byte-identical, nothing restarts,
    // and a run started right away passes.
    m.upgrade_charm()?;
    assert_eq!(pids(&m), before, "a same-charm refresh restarted a service");
    let run = start_test(&mut m, "users=4 spawn-rate=4 duration=3s")?;
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("test-run-id") == Some(run.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed")
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_eq!(done.get("failures"), Some("0"), "{:?}", done.results);

    // A new engine during a run: written everywhere, restarts wait for the run's end.
    let long = start_test(&mut m, "users=2 spawn-rate=2 duration=2m")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("state") == Some("running")
    })?;
    let engine = m.charm_dir().join("bin/chopsticks");
    let mut bytes = std::fs::read(&engine)?;
    bytes.extend_from_slice(b"\0new build");
    std::fs::write(&engine, &bytes)?;
    m.upgrade_charm()?;
    assert_eq!(pids(&m), before, "an upgrade restarted a service mid-run");
    for unit in m.units() {
        let installed = std::fs::read(m.unit_root(&unit).join("opt/chopsticks/bin/chopsticks"))?;
        assert_eq!(installed, bytes, "{unit}");
        let (_, message) = m.status(&unit)?;
        assert!(
            message.ends_with(&format!("new settings apply when run {long} ends")),
            "{unit}: {message}"
        );
    }
    let out = m.juju_run("chopsticks/leader", "stop-test")?;
    expect_completed(&out);
    wait_all_active(&mut m)?;
    let after = pids(&m);
    for (b, a) in before.iter().zip(&after) {
        assert!(
            a.is_some() && a != b,
            "not restarted after the run: {before:?} {after:?}"
        );
    }
    // The first run after the restarts passes.
    let next = start_test(&mut m, "users=4 spawn-rate=4 duration=3s min-workers=2")?;
    let done = wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("test-run-id") == Some(next.as_str())
            && o.get("state")
                .is_some_and(|s| s == "completed" || s == "failed")
    })?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_eq!(done.get("failures"), Some("0"), "{:?}", done.results);
    Ok(())
}

/// One bad start request, written for each front end.
struct BadStart {
    /// What it is, for failure messages.
    what: &'static str,
    /// `chopsticks run` / `chopsticks ctl start` flags.
    flags: &'static [&'static str],
    /// The control API's JSON body.
    json: &'static str,
    /// `start-test` params.
    action: &'static str,
}

/// The refusal without the front end's own framing: `error: ` (the CLI), clap's
/// `invalid value 'V' for '--flag <F>': ` (the CLI's flag parser), and the charm's
/// `duration=V: ` / `scenario-file=V (files are read from DIR): ` (which name the param as the
/// operator typed it). What is left is the sentence naming the field and the fix.
fn core_message(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim();
    let mut rest = line.strip_prefix("error: ").unwrap_or(line);
    if let Some(after) = rest.strip_prefix("invalid value '") {
        if let Some(i) = after.find("' for '") {
            let flag = &after[i + "' for '".len()..];
            if let Some(j) = flag.find("': ") {
                rest = &flag[j + "': ".len()..];
            }
        }
    }
    if let Some(after) = rest.strip_prefix("duration=") {
        if let Some(i) = after.find(": ") {
            rest = &after[i + 2..];
        }
    }
    if rest.starts_with("scenario-file=") {
        if let Some(i) = rest.find("): ") {
            rest = &rest[i + 3..];
        }
    }
    rest.to_string()
}

/// Runs the leader's installed engine binary (the one the charm ships) with `args`.
fn engine(m: &Model, leader: &str, args: &[&str]) -> Result<(i32, String)> {
    let bin = m.unit_root(leader).join("opt/chopsticks/bin/chopsticks");
    let out = std::process::Command::new(&bin)
        .args(args)
        .env_remove("S3_ENDPOINT_URL")
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn a_bad_start_request_gets_the_same_message_from_every_front_end() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let (mut m, ports) = active_model(2, &rgw, "chopsticks-same-refusals")?;
    let leader = m.leader()?;
    let control = format!("http://127.0.0.1:{}", ports.control);
    // `chopsticks run` gets a connection file for a closed port: a request wrongly accepted
    // would fail the run (exit 1), not exit 2.
    let dir = tempfile::tempdir()?;
    let connection = dir.path().join("s3_config.yaml");
    std::fs::write(
        &connection,
        "endpoint: http://127.0.0.1:1\naccess_key: AK\nsecret_key: SK\nbucket: unused\n",
    )?;
    let cases = [
        BadStart {
            what: "users=0",
            flags: &["-f", "s3_small_objects", "-u", "0", "-r", "1"],
            json: r#"{"scenario":"s3_small_objects","users":0,"spawn_rate":1}"#,
            action: "start-test users=0 spawn-rate=1",
        },
        BadStart {
            what: "users=2000000",
            flags: &["-f", "s3_small_objects", "-u", "2000000", "-r", "1"],
            json: r#"{"scenario":"s3_small_objects","users":2000000,"spawn_rate":1}"#,
            action: "start-test users=2000000 spawn-rate=1",
        },
        BadStart {
            what: "spawn_rate=-1",
            flags: &["-f", "s3_small_objects", "-u", "1", "--spawn-rate=-1"],
            json: r#"{"scenario":"s3_small_objects","users":1,"spawn_rate":-1}"#,
            action: "start-test users=1 spawn-rate=-1",
        },
        BadStart {
            what: "duration=40d",
            flags: &["-f", "s3_small_objects", "-u", "1", "-r", "1", "-t", "40d"],
            json: r#"{"scenario":"s3_small_objects","users":1,"spawn_rate":1,"duration":"40d"}"#,
            action: "start-test users=1 spawn-rate=1 duration=40d",
        },
        BadStart {
            what: "duration=0s",
            flags: &["-f", "s3_small_objects", "-u", "1", "-r", "1", "-t", "0s"],
            json: r#"{"scenario":"s3_small_objects","users":1,"spawn_rate":1,"duration":"0s"}"#,
            action: "start-test users=1 spawn-rate=1 duration=0s",
        },
        BadStart {
            what: "an unknown scenario",
            flags: &["-f", "s3_no_such_scenario", "-u", "1", "-r", "1"],
            json: r#"{"scenario":"s3_no_such_scenario","users":1,"spawn_rate":1}"#,
            action: "start-test users=1 spawn-rate=1 scenario-file=s3_no_such_scenario",
        },
    ];
    for case in &cases {
        let what = case.what;
        // 1. chopsticks run (standalone): exit 2.
        let mut run_args = vec![
            "run",
            "--headless",
            "--workload-config",
            connection.to_str().unwrap_or_default(),
            "-i",
            "1",
        ];
        run_args.extend_from_slice(case.flags);
        let (code, run_err) = engine(&m, &leader, &run_args)?;
        assert_eq!(code, 2, "{what}: chopsticks run: {run_err}");
        // 2. chopsticks ctl start, against the leader's coordinator: exit 2.
        let mut ctl_args = vec!["ctl", "--control", control.as_str(), "start"];
        ctl_args.extend_from_slice(case.flags);
        let (code, ctl_err) = engine(&m, &leader, &ctl_args)?;
        assert_eq!(code, 2, "{what}: chopsticks ctl start: {ctl_err}");
        // 3. The control API: HTTP 400 with the message in the body.
        let out = std::process::Command::new("curl")
            .args(["-sS", "-X", "POST", "-H", "content-type: application/json"])
            .args(["-w", "\n%{http_code}", "--data", case.json])
            .arg(format!("{control}/api/runs"))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or((&text, ""));
        assert_eq!(status, "400", "{what}: POST /api/runs: {text}");
        let body: Value = serde_json::from_str(body)?;
        assert_eq!(body["error"], "bad_request", "{what}: {body}");
        let api = body["message"].as_str().unwrap_or_default().to_string();
        // 4. The charm's start-test action: failed.
        let out = m.juju_run("chopsticks/leader", case.action)?;
        expect_refused(&out, "");
        let messages = [
            ("chopsticks run", core_message(&run_err)),
            ("chopsticks ctl start", core_message(&ctl_err)),
            ("control API", core_message(&api)),
            ("start-test", core_message(&out.message)),
        ];
        eprintln!("{what}: {messages:#?}");
        for (front, message) in &messages {
            assert_eq!(
                message, &messages[2].1,
                "{what}: {front} says something else than the control API"
            );
        }
        // The sentence names the field and says what to write instead.
        let field = match what {
            w if w.starts_with("users") => "users",
            w if w.starts_with("spawn") => "spawn_rate",
            w if w.starts_with("duration") => "duration",
            _ => "scenario",
        };
        assert!(api.contains(field), "{what}: {api}");
        assert!(
            api.contains("give") || api.contains("write"),
            "{what}: no fix in {api}"
        );
    }
    // Nothing was started by any of them.
    let status = m.juju_run("chopsticks/leader", "test-status")?;
    assert_eq!(status.results["state"], "idle", "{:?}", status.results);
    Ok(())
}
