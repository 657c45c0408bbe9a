//! The charm's units under real systemd (issue 16): each unit of the simulated model is a
//! machine of its own, a container booted with `systemd-nspawn` whose PID 1 is Debian
//! bookworm's systemd, with its own address on a bridge the test creates
//! ([`model::Model::new_real_systemd`], `tests/model/machines.rs`).  The packed charm's
//! `dispatch` runs inside the machine for every hook and action under the fake Juju hook tools;
//! `systemctl`, `useradd` and the unit files' hardening are the real ones, and RadosGW on the
//! host is reached through a forwarder on the bridge's host address.
//!
//! Four tests, one model each (machines boot side by side in about two seconds):
//! 1. the five-unit walk-through: deploy, config, start-test, test-status, fetch-metrics,
//!    stop-test, leader change, unit removal mid-run, config change, remove;
//! 2. host loss: a worker's whole machine is SIGKILLed mid-run;
//! 3. reboot: enabled units come back, the worker rejoins, the coordinator recovers its runs;
//! 4. hardening, checked from inside each running service.
//!
//! They need root, `systemd-nspawn` (Debian `systemd-container`), `debootstrap` for the first
//! build of the cached rootfs (`tests/real-systemd/rootfs.sh`) and cgroup access; when the host
//! cannot boot containers they FAIL and say why (never skipped, never run in process mode).
//! Run them alone with `tests/real-systemd.sh`; `tests/run.sh` runs them with everything else.

mod model;
#[path = "support/pack.rs"]
mod pack;
#[path = "support/charm_suite.rs"]
mod suite;

use std::path::PathBuf;
use std::time::Duration;

use model::{wait_for, ActionOutcome, Model, Result};
use serde_json::Value;

const LEADER_SERVICE: &str = "chopsticks-leader.service";
const WEBUI_SERVICE: &str = "chopsticks-leader-webui.service";
const WORKER_SERVICE: &str = "chopsticks-worker.service";
use suite::{rgw, serial, Rgw, BLOCKED_NEEDS_S3};

/// The packed charm, built once into `<tmp>/charm-real-systemd`.
fn packed_charm() -> PathBuf {
    suite::packed_charm("charm-real-systemd")
}

/// `units` machines booted and deployed to.
fn deploy(units: usize) -> Result<Model> {
    let mut m = Model::new_real_systemd(&packed_charm())?;
    m.deploy(units)?;
    Ok(m)
}

fn config(m: &mut Model, values: &[(String, String)]) -> Result<()> {
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    m.config(&pairs)
}

/// S3 with plain keys, RadosGW through the bridge forwarder, a bucket of the test's own.
fn configure(m: &mut Model, rgw: &Rgw, bucket: &str) -> Result<()> {
    let endpoint = m.unit_endpoint(&rgw.endpoint)?;
    config(
        m,
        &[
            ("s3-endpoint".into(), endpoint),
            ("s3-access-key".into(), rgw.access_key.clone()),
            ("s3-secret-key".into(), rgw.secret_key.clone()),
            ("s3-bucket".into(), bucket.into()),
            ("scenario-file".into(), "s3_small_objects".into()),
        ],
    )
}

fn active_model(units: usize, rgw: &Rgw, bucket: &str) -> Result<Model> {
    let mut m = deploy(units)?;
    configure(&mut m, rgw, bucket)?;
    wait_all_active(&mut m)?;
    Ok(m)
}

/// Runs update-status until every unit is active and the leader has seen every worker.
fn wait_all_active(m: &mut Model) -> Result<()> {
    let mut last = Vec::new();
    for _ in 0..30 {
        last = m
            .units()
            .into_iter()
            .map(|u| Ok((u.clone(), m.status(&u)?)))
            .collect::<Result<Vec<_>>>()?;
        if last
            .iter()
            .all(|(_, (s, msg))| s == "active" && !msg.contains("not connected"))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
        m.update_status()?;
    }
    Err(model::Error(format!(
        "units did not all become active: {last:?}"
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

fn finished(o: &ActionOutcome, run: &str) -> bool {
    o.get("test-run-id") == Some(run)
        && o.get("state")
            .is_some_and(|s| !matches!(s, "preparing" | "spawning" | "running" | "stopping"))
}

fn expect_completed(out: &ActionOutcome) -> &ActionOutcome {
    assert_eq!(
        out.status, "completed",
        "action failed: {} {:?} {}",
        out.message, out.results, out.stderr
    );
    out
}

fn expect_refused(out: &ActionOutcome, message_part: &str) {
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
}

fn start_test(m: &mut Model, params: &str) -> Result<String> {
    let out = m.juju_run("chopsticks/leader", &format!("start-test {params}"))?;
    Ok(expect_completed(&out)
        .get("test-run-id")
        .expect("start-test returns test-run-id")
        .to_string())
}

fn users_per_worker(out: &ActionOutcome) -> Vec<(String, u64)> {
    out.get("users-per-worker")
        .unwrap_or_default()
        .split(", ")
        .filter_map(|e| e.split_once('='))
        .map(|(w, n)| (w.to_string(), n.parse().unwrap_or(0)))
        .collect()
}

/// `systemctl is-active SERVICE` in the unit's machine, from the real systemd.
fn service_state(m: &Model, unit: &str, service: &str) -> Result<String> {
    let (_, out, _) = m.exec(unit, &["systemctl", "is-active", service])?;
    Ok(out.trim().to_string())
}

/// systemd's id of the service's current run: changes on every (re)start.
fn invocation(m: &Model, unit: &str, service: &str) -> Result<String> {
    let id = m.systemd_property(unit, service, "InvocationID")?;
    assert!(!id.is_empty(), "{service} on {unit} has not run");
    Ok(id)
}

/// The per-worker lines of fetch-metrics (`name: N requests, ...`): (name, requests, fate).
fn worker_lines(workers: &str) -> Vec<(String, u64, String)> {
    workers
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(": ")?;
            let requests = rest.split(' ').next()?.parse().ok()?;
            let fate = rest.rsplit(", ").next()?.split(' ').next()?.to_string();
            Some((name.to_string(), requests, fate))
        })
        .collect()
}

/// The files a removed unit must not keep.
fn assert_unit_cleaned(m: &Model, unit: &str) {
    let root = m.unit_root(unit);
    assert!(
        root.join("usr/lib/systemd/systemd").exists(),
        "{unit}'s disk is not there to inspect: {}",
        root.display()
    );
    for unit_file in [LEADER_SERVICE, WEBUI_SERVICE, WORKER_SERVICE] {
        assert!(
            !root.join("etc/systemd/system").join(unit_file).exists(),
            "{unit}: {unit_file} left"
        );
    }
    assert!(
        !root.join("etc/chopsticks").exists(),
        "{unit}: /etc/chopsticks (credentials) left"
    );
    assert!(
        !root.join("opt/chopsticks").exists(),
        "{unit}: /opt/chopsticks left"
    );
    assert!(!m.machine_is_up(unit), "{unit}'s machine still runs");
}

#[test]
fn five_units_under_real_systemd_deploy_run_lead_remove() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let mut m = deploy(5)?;
    let leader = m.leader()?;
    assert_eq!(leader, "chopsticks/0");
    for unit in m.units() {
        assert_eq!(
            m.status(&unit)?,
            ("blocked".to_string(), BLOCKED_NEEDS_S3.to_string()),
            "{unit}"
        );
        // Every machine is its own host: real PID 1, its own address on the bridge.
        let (_, comm, _) = m.exec(&unit, &["cat", "/proc/1/comm"])?;
        assert_eq!(comm.trim(), "systemd", "{unit}");
        let (_, addr, _) = m.exec(&unit, &["ip", "-4", "-o", "addr", "show", "host0"])?;
        assert!(
            addr.contains(&format!(" {}/24 ", m.address(&unit))),
            "{unit}: {addr}"
        );
    }
    // The install hook made the chopsticks system user with the machine's real useradd.
    let (code, passwd, _) = m.exec("chopsticks/3", &["getent", "passwd", "chopsticks"])?;
    assert_eq!(code, 0, "no chopsticks user");
    assert!(passwd.trim().ends_with(":/usr/sbin/nologin"), "{passwd}");

    // S3 keys through a user secret: blocked until granted, then everyone active.
    let creds = m.add_user_secret(&[
        ("access-key", &rgw.access_key),
        ("secret-key", &rgw.secret_key),
    ])?;
    let endpoint = m.unit_endpoint(&rgw.endpoint)?;
    config(
        &mut m,
        &[
            ("s3-endpoint".into(), endpoint),
            ("s3-credentials".into(), creds.clone()),
            ("s3-bucket".into(), "chopsticks-real-systemd-a".into()),
            ("scenario-file".into(), "s3_small_objects".into()),
        ],
    )?;
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
    let coordinator = format!("worker connected to {}:", m.address(&leader));
    for unit in m.units().iter().filter(|u| **u != leader) {
        let (state, message) = m.status(unit)?;
        assert_eq!(state, "active", "{unit}");
        assert!(message.starts_with(&coordinator), "{unit}: {message}");
        // Started and enabled by the real systemd, not by a stand-in.
        assert_eq!(service_state(&m, unit, WORKER_SERVICE)?, "active", "{unit}");
        assert_eq!(
            service_state(&m, unit, LEADER_SERVICE)?,
            "inactive",
            "{unit}"
        );
        let (_, enabled, _) = m.exec(unit, &["systemctl", "is-enabled", WORKER_SERVICE])?;
        assert_eq!(enabled.trim(), "enabled", "{unit}");
    }
    assert_eq!(service_state(&m, &leader, LEADER_SERVICE)?, "active");
    assert_eq!(m.app_data()?["coordinator-address"], m.address(&leader));

    // A run: every worker gets users, test-status mid-run, then it completes.
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test users=8 spawn-rate=8 duration=15s",
    )?;
    expect_completed(&out);
    let run_id = out.get("test-run-id").unwrap().to_string();
    assert_eq!(out.get("workers"), Some("4"));
    let mid = wait_status(&mut m, Duration::from_secs(60), |o| {
        let per = users_per_worker(o);
        o.get("state") == Some("running") && per.len() == 4 && per.iter().all(|(_, n)| *n > 0)
    })?;
    assert_eq!(mid.get("test-run-id"), Some(run_id.as_str()));
    assert_eq!(mid.get("users"), Some("8/8"));
    assert_eq!(mid.get("workers-connected"), Some("4"));
    let worker_view = m.juju_run("chopsticks/1", "test-status")?;
    assert_eq!(worker_view.get("role"), Some("worker"));
    assert_eq!(worker_view.get("connection"), Some("connected"));
    let done = wait_status(&mut m, Duration::from_secs(90), |o| finished(o, &run_id))?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    assert_ne!(done.get("requests"), Some("0"));

    // fetch-metrics in the three formats; per-worker requests add up to the total.
    let summary = m.juju_run("chopsticks/leader", "fetch-metrics")?;
    expect_completed(&summary);
    assert_eq!(summary.get("test-run-id"), Some(run_id.as_str()));
    assert!(summary.get("summary").unwrap().contains("upload"));
    let lines = worker_lines(summary.get("workers").unwrap());
    assert_eq!(lines.len(), 4, "{lines:?}");
    let total: u64 = summary.get("requests").unwrap().parse().unwrap();
    assert_eq!(lines.iter().map(|l| l.1).sum::<u64>(), total, "{lines:?}");
    let json = m.juju_run(
        "chopsticks/leader",
        &format!("fetch-metrics format=json run-id={run_id}"),
    )?;
    let parsed: Value = serde_json::from_str(expect_completed(&json).get("json").unwrap())?;
    assert!(parsed.is_object(), "{parsed}");
    let csv = m.juju_run("chopsticks/leader", "fetch-metrics format=csv")?;
    assert!(expect_completed(&csv)
        .get("csv")
        .unwrap()
        .contains("upload"));
    // The run's files are on the leader's disk, owned by the service user.
    let (code, owner, _) = m.exec(
        &leader,
        &[
            "stat",
            "-c",
            "%U",
            &format!("/var/lib/chopsticks/{run_id}/run.json"),
        ],
    )?;
    assert_eq!((code, owner.trim()), (0, "chopsticks"));

    // stop-test mid-run.
    let long_run = start_test(&mut m, "users=4 spawn-rate=4 duration=10m")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("state") == Some("running")
    })?;
    let out = m.juju_run("chopsticks/leader", "stop-test")?;
    expect_completed(&out);
    assert_eq!(out.get("test-run-id"), Some(long_run.as_str()));
    assert_eq!(out.get("state"), Some("stopped"));

    // The leader moves: the old one's coordinator stops, it becomes a worker of the new one.
    m.set_leader("chopsticks/2")?;
    wait_all_active(&mut m)?;
    let new = "chopsticks/2";
    assert_eq!(m.app_data()?["coordinator-address"], m.address(new));
    assert_eq!(service_state(&m, &leader, LEADER_SERVICE)?, "inactive");
    assert_eq!(service_state(&m, &leader, WORKER_SERVICE)?, "active");
    assert_eq!(service_state(&m, new, LEADER_SERVICE)?, "active");
    assert_eq!(service_state(&m, new, WORKER_SERVICE)?, "inactive");
    let (_, message) = m.status(new)?;
    assert!(
        message.starts_with("coordinator ready: 4 workers connected"),
        "{message}"
    );
    let (_, message) = m.status(&leader)?;
    assert!(
        message.starts_with(&format!("worker connected to {}:", m.address(new))),
        "{message}"
    );
    let out = m.juju_run(&leader, "start-test")?;
    expect_refused(&out, "start-test runs on the leader unit");

    // A worker unit removed mid-run: the run completes, names it, and its machine is clean.
    let run = start_test(&mut m, "users=8 spawn-rate=8 duration=20s")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("state") == Some("running") && users_per_worker(o).len() == 4
    })?;
    m.set_keep_removed_roots(true);
    m.remove_unit("chopsticks/4")?;
    assert_unit_cleaned(&m, "chopsticks/4");
    let done = wait_status(&mut m, Duration::from_secs(120), |o| finished(o, &run))?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    let out = m.juju_run("chopsticks/leader", &format!("fetch-metrics run-id={run}"))?;
    expect_completed(&out);
    assert!(
        out.get("workers-lost")
            .unwrap_or_default()
            .contains("chopsticks-4 ("),
        "{:?}",
        out.results
    );
    let lines = worker_lines(out.get("workers").unwrap());
    let total: u64 = out.get("requests").unwrap().parse().unwrap();
    assert_eq!(lines.iter().map(|l| l.1).sum::<u64>(), total, "{lines:?}");

    // A config change restarts the services that depend on it (new systemd invocations).
    let coordinator_run = invocation(&m, new, LEADER_SERVICE)?;
    let worker_run = invocation(&m, "chopsticks/3", WORKER_SERVICE)?;
    m.config(&[("log-level", "debug")])?;
    wait_all_active(&mut m)?;
    assert_ne!(invocation(&m, new, LEADER_SERVICE)?, coordinator_run);
    assert_ne!(invocation(&m, "chopsticks/3", WORKER_SERVICE)?, worker_run);
    let exec_start = m.systemd_property(new, LEADER_SERVICE, "ExecStart")?;
    assert!(exec_start.contains("--log-level debug"), "{exec_start}");

    // No secret anywhere Juju would show or record it.
    let token = std::fs::read_to_string(m.unit_root(new).join("etc/chopsticks/cluster-token"))?;
    let leaks = m.leaks(&[&rgw.secret_key, token.trim()])?;
    assert!(leaks.is_empty(), "{leaks:?}");

    // Remove: every unit goes (the leader last); none keeps credentials, units or the engine.
    for unit in [
        "chopsticks/1",
        "chopsticks/3",
        "chopsticks/0",
        "chopsticks/2",
    ] {
        m.remove_unit(unit)?;
        assert_unit_cleaned(&m, unit);
    }
    assert!(m.units().is_empty());
    Ok(())
}

#[test]
fn a_worker_machine_killed_mid_run_leaves_honest_accounting() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let mut m = active_model(4, &rgw, "chopsticks-real-systemd-hostloss")?;
    let run = start_test(&mut m, "users=6 spawn-rate=6 duration=30s")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        let per = users_per_worker(o);
        o.get("state") == Some("running")
            && per.len() == 3
            && per.iter().all(|(_, n)| *n > 0)
            && o.get("requests").and_then(|r| r.parse::<u64>().ok()) > Some(50)
    })?;

    // chopsticks/3's host is lost: every process of its machine is SIGKILLed at once.
    let init = m.machine_init_pid("chopsticks/3")?;
    m.lose_unit("chopsticks/3")?;
    assert!(model::process_gone(init), "the machine's PID 1 survived");
    assert!(!m.machine_is_up("chopsticks/3"));

    // The run goes on with the two others and finishes; the lost worker is named.
    wait_status(&mut m, Duration::from_secs(90), |o| {
        o.get("workers-connected") == Some("2")
    })?;
    let done = wait_status(&mut m, Duration::from_secs(120), |o| finished(o, &run))?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    for format in ["summary", "json", "csv"] {
        let out = m.juju_run(
            "chopsticks/leader",
            &format!("fetch-metrics format={format} run-id={run}"),
        )?;
        expect_completed(&out);
        let lost = out.get("workers-lost").unwrap_or_default();
        assert!(lost.contains("chopsticks-3 ("), "{format}: {lost}");
        assert_ne!(out.get("requests"), Some("0"));
    }
    let out = m.juju_run("chopsticks/leader", &format!("fetch-metrics run-id={run}"))?;
    let lines = worker_lines(out.get("workers").unwrap());
    assert_eq!(lines.len(), 3, "{lines:?}");
    let total: u64 = out.get("requests").unwrap().parse().unwrap();
    eprintln!(
        "host loss: run {run} {}: {total} requests; workers:\n{}",
        done.get("state").unwrap_or_default(),
        out.get("workers").unwrap_or_default()
    );
    assert_eq!(
        lines.iter().map(|l| l.1).sum::<u64>(),
        total,
        "per-worker requests do not add up: {lines:?}"
    );
    for (name, requests, fate) in &lines {
        assert!(*requests > 0, "{name} did no request: {lines:?}");
        if name == "chopsticks-3" {
            assert!(fate == "lost" || fate == "dropped", "{lines:?}");
        } else {
            assert_eq!(fate, "finished", "{lines:?}");
        }
    }

    // The next run starts with the workers that are there and says which one is not.
    let out = m.juju_run(
        "chopsticks/leader",
        "start-test users=2 spawn-rate=2 duration=4s",
    )?;
    expect_completed(&out);
    assert_eq!(out.get("workers"), Some("2"));
    assert_eq!(out.get("workers-not-connected"), Some("chopsticks/3"));
    let next = out.get("test-run-id").unwrap().to_string();
    let done = wait_status(&mut m, Duration::from_secs(90), |o| finished(o, &next))?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    Ok(())
}

#[test]
fn rebooted_machines_bring_their_services_back() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let mut m = active_model(3, &rgw, "chopsticks-real-systemd-reboot")?;
    let leader = m.leader()?;
    let before = start_test(&mut m, "users=2 spawn-rate=2 duration=4s")?;
    let done = wait_status(&mut m, Duration::from_secs(90), |o| finished(o, &before))?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);

    // A worker's machine reboots: systemd starts its enabled worker before any hook runs,
    // and the worker rejoins the coordinator.
    let worker = "chopsticks/2";
    let first = invocation(&m, worker, WORKER_SERVICE)?;
    let old_init = m.machine_init_pid(worker)?;
    m.reboot_unit(worker)?;
    assert_eq!(m.boots(worker), 2);
    // A new PID 1: the old systemd shut down and a new one booted from the same disk.
    assert!(model::process_gone(old_init), "the old systemd still runs");
    assert_ne!(m.machine_init_pid(worker)?, old_init);
    let (_, enabled, _) = m.exec(worker, &["systemctl", "is-enabled", WORKER_SERVICE])?;
    assert_eq!(enabled.trim(), "enabled");
    wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        Ok((service_state(&m, worker, WORKER_SERVICE)? == "active").then_some(()))
    })?;
    assert_ne!(invocation(&m, worker, WORKER_SERVICE)?, first);
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("workers-connected") == Some("2")
    })?;
    // Juju runs start after a reboot; the charm finds everything in place.
    m.run_hook(worker, "start")?;
    wait_all_active(&mut m)?;

    // The leader's machine reboots: the coordinator comes back by itself with its past runs,
    // and both workers reconnect to it.
    let first = invocation(&m, &leader, LEADER_SERVICE)?;
    m.reboot_unit(&leader)?;
    wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        Ok((service_state(&m, &leader, LEADER_SERVICE)? == "active").then_some(()))
    })?;
    assert_ne!(invocation(&m, &leader, LEADER_SERVICE)?, first);
    assert_eq!(service_state(&m, &leader, WORKER_SERVICE)?, "inactive");
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("workers-connected") == Some("2")
    })?;
    let out = m.juju_run(
        "chopsticks/leader",
        &format!("fetch-metrics run-id={before}"),
    )?;
    expect_completed(&out);
    assert_eq!(out.get("state"), Some("completed"));
    assert_eq!(worker_lines(out.get("workers").unwrap()).len(), 2);
    m.run_hook(&leader, "start")?;
    wait_all_active(&mut m)?;
    let after = start_test(&mut m, "users=2 spawn-rate=2 duration=4s min-workers=2")?;
    let done = wait_status(&mut m, Duration::from_secs(90), |o| finished(o, &after))?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    Ok(())
}

/// What a running service is, from `/proc/PID/status` in its machine.
struct ProcStatus {
    uids: Vec<u32>,
    gids: Vec<u32>,
    no_new_privs: String,
    cap_bounding: String,
    cap_effective: String,
    seccomp: String,
}

fn proc_status(m: &Model, unit: &str, pid: &str) -> Result<ProcStatus> {
    let (code, text, err) = m.exec(unit, &["cat", &format!("/proc/{pid}/status")])?;
    assert_eq!(code, 0, "{err}");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let ids = |v: String| -> Vec<u32> {
        v.split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    Ok(ProcStatus {
        uids: ids(field("Uid")),
        gids: ids(field("Gid")),
        no_new_privs: field("NoNewPrivs"),
        cap_bounding: field("CapBnd"),
        cap_effective: field("CapEff"),
        seccomp: field("Seccomp"),
    })
}

/// Runs `script` with `sh` as the service user inside the running service's own mount
/// namespace (its ProtectSystem=, PrivateTmp=, ReadWritePaths= view of the machine).
fn as_service(
    m: &Model,
    unit: &str,
    pid: &str,
    uid: u32,
    gid: u32,
    script: &str,
) -> Result<String> {
    let (code, out, err) = m.exec(
        unit,
        &[
            "nsenter",
            "-t",
            pid,
            "-m",
            "--",
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "/bin/sh",
            "-c",
            script,
        ],
    )?;
    assert_eq!(code, 0, "probe in {unit} failed: {err}");
    Ok(out)
}

/// The hardening of `service` on `unit`, checked on the running process and by attempts made
/// from its own view of the machine, as its user.
fn check_hardening(m: &Model, unit: &str, service: &str) -> Result<()> {
    assert_eq!(
        service_state(m, unit, service)?,
        "active",
        "{unit} {service}"
    );
    let pid = m.systemd_property(unit, service, "MainPID")?;
    assert_ne!(pid, "0", "{service} has no main process");
    let (_, uid, _) = m.exec(unit, &["id", "-u", "chopsticks"])?;
    let (_, gid, _) = m.exec(unit, &["id", "-g", "chopsticks"])?;
    let (uid, gid): (u32, u32) = (uid.trim().parse().unwrap(), gid.trim().parse().unwrap());
    assert_ne!(uid, 0);

    let st = proc_status(m, unit, &pid)?;
    assert_eq!(st.uids, vec![uid; 4], "{service}: runs as chopsticks");
    assert_eq!(st.gids, vec![gid; 4], "{service}: group chopsticks");
    assert_eq!(st.no_new_privs, "1", "{service}: NoNewPrivs");
    assert_eq!(st.cap_bounding, "0000000000000000", "{service}: CapBnd");
    assert_eq!(st.cap_effective, "0000000000000000", "{service}: CapEff");
    assert_eq!(st.seccomp, "2", "{service}: a seccomp filter is on");

    // Attempts, as the service user in the service's mount namespace.
    let cred = format!("/run/credentials/{service}");
    let script = format!(
        r#"for d in /etc /usr /opt/chopsticks /var/lib /tmp /var/tmp /run /run/lock /dev/shm; do
  if err=$(touch "$d/.hardening-probe" 2>&1); then echo "write-ok $d"; rm -f "$d/.hardening-probe"; else echo "write-refused $d: $err"; fi
done
if touch /var/lib/chopsticks/.hardening-probe; then echo "write-ok /var/lib/chopsticks"; rm /var/lib/chopsticks/.hardening-probe; fi
if err=$(head -c0 /etc/chopsticks/s3_config.yaml 2>&1); then echo "read-ok etc"; else echo "read-refused etc: $err"; fi
echo "credential-bytes $(wc -c < {cred}/s3_config.yaml)"
echo "token-bytes $(wc -c < {cred}/cluster-token)"
find / \( -path /proc -o -path /sys \) -prune -o -writable ! -type c ! -type s ! -type l -print 2>/dev/null | sed 's/^/writable /'
"#
    );
    let out = as_service(m, unit, &pid, uid, gid, &script)?;
    let lines: Vec<&str> = out.lines().collect();
    for d in [
        "/etc",
        "/usr",
        "/opt/chopsticks",
        "/var/lib",
        "/tmp",
        "/var/tmp",
        "/run",
        "/run/lock",
        "/dev/shm",
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("write-refused {d}:")))
            .unwrap_or_else(|| panic!("{service}: {d} is writable: {out}"));
        assert!(
            line.contains("Read-only file system"),
            "{service}: {d} is not read-only to it: {line}"
        );
    }
    assert!(lines.contains(&"write-ok /var/lib/chopsticks"), "{out}");
    let refused = lines
        .iter()
        .find(|l| l.starts_with("read-refused etc:"))
        .unwrap_or_else(|| panic!("{service}: /etc/chopsticks/s3_config.yaml readable: {out}"));
    assert!(refused.contains("Permission denied"), "{refused}");
    // Through the credential (LoadCredential=) it reads the same file, and its token.
    let size = std::fs::metadata(m.unit_root(unit).join("etc/chopsticks/s3_config.yaml"))?.len();
    assert!(
        lines.contains(&format!("credential-bytes {size}").as_str()),
        "{service}: credential not readable: {out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("token-bytes ") && *l != "token-bytes 0"),
        "{out}"
    );
    // Every file or directory it can write (devices and sockets, such as /dev/null and the
    // journal's, are endpoints, not storage): its state directory and its log directory
    // (the `--log-file` the collector tails), nothing else.
    let allowed = ["/var/lib/chopsticks", "/var/log/chopsticks"];
    let writable: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("writable "))
        .collect();
    let stray: Vec<&&str> = writable
        .iter()
        .filter(|p| {
            !allowed
                .iter()
                .any(|a| **p == *a || p.starts_with(&format!("{a}/")))
        })
        .collect();
    assert!(stray.is_empty(), "{service} can write {stray:?}");
    assert!(writable.contains(&"/var/lib/chopsticks"), "{writable:?}");
    Ok(())
}

#[test]
fn every_service_runs_hardened_under_real_systemd() -> Result<()> {
    let rgw = rgw();
    let _serial = serial();
    let mut m = active_model(2, &rgw, "chopsticks-real-systemd-hardening")?;
    let leader = m.leader()?;
    check_hardening(&m, &leader, LEADER_SERVICE)?;
    check_hardening(&m, "chopsticks/1", WORKER_SERVICE)?;
    // The web UI variant of the coordinator, while it serves a run.
    let run = start_test(&mut m, "headless=false users=1 spawn-rate=1 duration=20s")?;
    wait_status(&mut m, Duration::from_secs(60), |o| {
        o.get("test-run-id") == Some(run.as_str()) && o.get("state") == Some("running")
    })?;
    assert_eq!(service_state(&m, &leader, LEADER_SERVICE)?, "inactive");
    check_hardening(&m, &leader, WEBUI_SERVICE)?;
    let done = wait_status(&mut m, Duration::from_secs(90), |o| finished(o, &run))?;
    assert_eq!(done.get("state"), Some("completed"), "{:?}", done.results);
    Ok(())
}
