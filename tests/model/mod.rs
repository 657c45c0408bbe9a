//! A simulated Juju model for end-to-end tests of the charm's real `dispatch` binary.
//!
//! Juju and systemd are not available in tests, so [`Model`] plays the controller: it keeps the
//! model state (through `tests/fake-juju/fake.py admin ...`, which owns the state format), runs
//! hooks and actions in the order Juju would, one at a time, with the environment Juju sets, and
//! puts a per-unit bin dir of fake hook tools and a fake `systemctl` first on PATH.  Every unit
//! has its own root prefix (`CHOPSTICKS_ROOT`) and loopback address `127.0.0.(N+10)`, so five
//! units can run their real services side by side on one machine.
//!
//! ```ignore
//! mod model;
//! let mut m = model::Model::new(&charm_path)?;
//! m.deploy(3)?;
//! m.config(&[("s3-endpoint", "http://127.0.0.1:7480")])?;
//! let out = m.juju_run("chopsticks/leader", "start-test users=4 duration=10s")?;
//! assert_eq!(out.status, "completed");
//! ```
//!
//! Dropping the model stops every service of every unit root (no orphan processes).  Set
//! `FAKE_JUJU_KEEP=1` to keep the model directory for inspection.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// A harness failure, worded like the Juju CLI's (`ERROR ...`) where Juju would refuse.
#[derive(Debug)]
pub struct Error(pub String);

pub type Result<T> = std::result::Result<T, Error>;

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

macro_rules! impl_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error(e.to_string())
            }
        }
    )*};
}
impl_from!(std::io::Error, serde_json::Error, serde_yaml_ng::Error);

macro_rules! anyhow {
    ($($t:tt)*) => { Error(format!($($t)*)) };
}

macro_rules! bail {
    ($($t:tt)*) => { return Err(Error(format!($($t)*))) };
}

pub mod machines;

/// `.with_context(|| ...)` for any displayable error.
trait Context<T> {
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error(format!("{}: {e}", f())))
    }
}

/// How long one hook or action may run before the harness kills it and fails.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(180);
/// Juju 3 version the hooks are told they run under.
pub const JUJU_VERSION: &str = "3.6.0";
/// Upper bound on relation-changed/secret-changed rounds in [`Model::settle`].
const SETTLE_ROUNDS: usize = 25;

/// One line of `calls.log`: a hook tool invocation (argv only, never stdin or file contents).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Call {
    pub unit: Option<String>,
    /// `JUJU_DISPATCH_PATH` of the hook or action that made the call (`hooks/install`, ...).
    pub hook: Option<String>,
    pub tool: String,
    pub args: Vec<String>,
}

/// What a hook run produced.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub unit: String,
    pub dispatch_path: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The result of `juju run UNIT ACTION`, as Juju reports it.
#[derive(Debug, Clone)]
pub struct ActionOutcome {
    pub id: String,
    pub unit: String,
    /// `completed` or `failed`.
    pub status: String,
    /// What `action-set` stored (dotted keys nested).
    pub results: Map<String, Value>,
    /// The `action-fail` message, or `exit status N` when dispatch failed without one.
    pub message: String,
    /// `action-log` messages in order.
    pub log: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ActionOutcome {
    /// A top-level result as a string (results are strings, as `action-set` makes them).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.results.get(key).and_then(Value::as_str)
    }
}

#[derive(Debug, Clone)]
struct ConfigOption {
    kind: String,
}

/// A relation between our application and a scripted one.
#[derive(Debug, Clone)]
pub struct RemoteRelation {
    pub id: String,
    /// Our endpoint (`s3-credentials`).
    pub endpoint: String,
    pub remote_app: String,
    pub remote_units: Vec<String>,
}

/// A model with one application deployed from a charm directory or `.charm` file.
pub struct Model {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    charm_dir: PathBuf,
    app: String,
    peers: Vec<String>,
    config_options: BTreeMap<String, ConfigOption>,
    /// config.yaml's `options` as written (types, defaults), for `config-get`.
    config_spec: Map<String, Value>,
    actions: BTreeMap<String, Value>,
    units: Vec<String>,
    roots: Vec<PathBuf>,
    next_unit: u32,
    hook_seq: u64,
    base_path: String,
    hook_timeout: Duration,
    /// Environment passed to every hook on top of Juju's (e.g. `RUST_LOG`).
    extra_env: Vec<(String, String)>,
    /// Keep a removed unit's root (services stopped) so tests can inspect what remove left.
    keep_removed_roots: bool,
    /// Units whose machine went away ([`Model::lose_unit`]): still in the model and its
    /// relations, but their agent runs no hook or action.
    lost: std::collections::BTreeSet<String>,
    /// Real-systemd mode ([`Model::new_real_systemd`]): every unit is a booted container and
    /// hooks run inside it under the real systemd; `None` in process mode.
    machines: Option<machines::Machines>,
}

/// The fake tool script every tool name is a symlink to.
pub fn fake_tool_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-juju/fake.py")
}

fn read_yaml(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: Value =
        serde_yaml_ng::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(if value.is_null() { json!({}) } else { value }))
}

impl Model {
    /// A fresh model for the charm at `charm`: an unpacked charm directory or a `.charm` zip.
    pub fn new(charm: &Path) -> Result<Model> {
        let dir = tempfile::Builder::new()
            .prefix("fake-juju-model-")
            .tempdir()?;
        let path = dir.path().to_path_buf();
        let mut model = Model {
            dir: Some(dir),
            path: path.clone(),
            charm_dir: PathBuf::new(),
            app: String::new(),
            peers: Vec::new(),
            config_options: BTreeMap::new(),
            config_spec: Map::new(),
            actions: BTreeMap::new(),
            units: Vec::new(),
            roots: Vec::new(),
            next_unit: 0,
            hook_seq: 0,
            base_path: std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            hook_timeout: DEFAULT_HOOK_TIMEOUT,
            extra_env: Vec::new(),
            keep_removed_roots: false,
            lost: Default::default(),
            machines: None,
        };
        model.charm_dir = if charm.is_file() {
            let dest = path.join("charm");
            model.admin("unpack", json!({"zip": charm, "dest": dest}))?;
            dest
        } else {
            charm
                .canonicalize()
                .with_context(|| format!("charm dir {}", charm.display()))?
        };
        let dispatch = model.charm_dir.join("dispatch");
        let mode = std::fs::metadata(&dispatch).with_context(|| {
            format!("{} is not a charm: no dispatch", model.charm_dir.display())
        })?;
        use std::os::unix::fs::PermissionsExt;
        if mode.permissions().mode() & 0o111 == 0 {
            bail!("{} is not executable", dispatch.display());
        }
        model.load_charm_metadata()?;
        let mut bindings = model.peers.clone();
        bindings.push("juju-info".into());
        model.admin(
            "init",
            json!({
                "model": "chopsticks-test",
                "app": model.app,
                "charm_dir": model.charm_dir,
                "config_options": model.config_spec,
                "bindings": bindings,
            }),
        )?;
        Ok(model)
    }

    /// A fresh model in real-systemd mode: every unit will be a container booted with
    /// `systemd-nspawn` (its PID 1 the real systemd), with its own address on a bridge this
    /// model creates, `dispatch` run inside it for every hook and action under the fake hook
    /// tools, and the real `systemctl`, `useradd`, `getent`.  See [`machines`].  Fails, saying
    /// why, when this host cannot boot such containers; it never falls back to process mode.
    pub fn new_real_systemd(charm: &Path) -> Result<Model> {
        let mut model = Model::new(charm)?;
        let fake_juju = fake_tool_script()
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("fake.py has no directory"))?;
        model.machines = Some(machines::Machines::new(
            vec![fake_juju],
            vec![model.path.clone()],
            model.path.join("machines"),
        )?);
        Ok(model)
    }

    /// Whether units are booted containers ([`Model::new_real_systemd`]).
    pub fn is_real_systemd(&self) -> bool {
        self.machines.is_some()
    }

    fn real(&self) -> Result<&machines::Machines> {
        self.machines.as_ref().ok_or_else(|| {
            anyhow!("this needs a model in real-systemd mode (Model::new_real_systemd)")
        })
    }

    /// The S3 endpoint as the units reach `endpoint` (a service on the host's loopback): the
    /// same in process mode; in real-systemd mode a forwarder on the bridge's host address.
    pub fn unit_endpoint(&mut self, endpoint: &str) -> Result<String> {
        let Some(machines) = self.machines.as_mut() else {
            return Ok(endpoint.to_string());
        };
        let (scheme, rest) = endpoint
            .split_once("://")
            .ok_or_else(|| anyhow!("endpoint {endpoint:?} has no scheme"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let target: std::net::SocketAddr = authority
            .parse()
            .with_context(|| format!("endpoint {endpoint:?} is not http://IP:PORT"))?;
        let listen = machines.forward(target)?;
        Ok(format!("{scheme}://{listen}"))
    }

    /// Runs `argv` as root inside the unit's machine (real-systemd mode): (code, stdout, stderr).
    pub fn exec(&self, unit: &str, argv: &[&str]) -> Result<(i32, String, String)> {
        let out = self.real()?.exec(unit, argv)?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `systemctl show -p PROP --value SERVICE` inside the unit's machine.
    pub fn systemd_property(&self, unit: &str, service: &str, prop: &str) -> Result<String> {
        let (code, out, err) =
            self.exec(unit, &["systemctl", "show", "-p", prop, "--value", service])?;
        if code != 0 {
            bail!("systemctl show {service} on {unit}: {err}");
        }
        Ok(out.trim().to_string())
    }

    /// The unit's machine reboots (`systemctl reboot` inside it: a clean shutdown, then a boot
    /// from the same disk); returns once it has booted.  No hook runs: Juju runs `start` after
    /// a reboot, which a test does with `run_hook(unit, "start")` once it has looked at what
    /// systemd brought back by itself.
    pub fn reboot_unit(&mut self, unit: &str) -> Result<()> {
        let unit = self.resolve(unit)?;
        self.machines
            .as_mut()
            .ok_or_else(|| anyhow!("reboot_unit needs real-systemd mode"))?
            .reboot(&unit)
    }

    /// How many times the unit's machine has booted (real-systemd mode; 0 in process mode).
    pub fn boots(&self, unit: &str) -> u32 {
        self.machines.as_ref().map_or(0, |m| m.boots(unit))
    }

    /// Whether the unit's machine is up (real-systemd mode).
    pub fn machine_is_up(&self, unit: &str) -> bool {
        self.machines.as_ref().is_some_and(|m| m.is_up(unit))
    }

    /// The unit's PID 1 as the host sees it (real-systemd mode).
    pub fn machine_init_pid(&self, unit: &str) -> Result<u32> {
        self.real()?.init_pid(unit)
    }

    fn load_charm_metadata(&mut self) -> Result<()> {
        let dir = &self.charm_dir;
        let charmcraft = read_yaml(&dir.join("charmcraft.yaml"))?.unwrap_or(json!({}));
        let metadata = read_yaml(&dir.join("metadata.yaml"))?.unwrap_or_else(|| charmcraft.clone());
        self.app = metadata["name"]
            .as_str()
            .ok_or_else(|| anyhow!("charm metadata has no name"))?
            .to_string();
        self.peers = metadata["peers"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let config =
            read_yaml(&dir.join("config.yaml"))?.unwrap_or_else(|| charmcraft["config"].clone());
        self.config_spec = config["options"].as_object().cloned().unwrap_or_default();
        for (name, opt) in &self.config_spec {
            let kind = opt["type"].as_str().unwrap_or("string").to_string();
            self.config_options
                .insert(name.clone(), ConfigOption { kind });
        }
        let actions =
            read_yaml(&dir.join("actions.yaml"))?.unwrap_or_else(|| charmcraft["actions"].clone());
        for (name, spec) in actions.as_object().cloned().unwrap_or_default() {
            self.actions.insert(name, spec);
        }
        Ok(())
    }

    // ---- accessors ------------------------------------------------------------------------

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn charm_dir(&self) -> &Path {
        &self.charm_dir
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    /// Live units, in deployment order.
    pub fn units(&self) -> Vec<String> {
        self.units.clone()
    }

    pub fn set_hook_timeout(&mut self, timeout: Duration) {
        self.hook_timeout = timeout;
    }

    /// Keep the root of units removed from now on (their services are stopped all the same).
    pub fn set_keep_removed_roots(&mut self, keep: bool) {
        self.keep_removed_roots = keep;
    }

    /// Extra environment for every hook (for instance `RUST_LOG`).
    pub fn set_hook_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.into(), value.into()));
    }

    /// The unit's root prefix: what `/` is for that unit's files and services (in
    /// real-systemd mode, its machine's root filesystem as mounted on the host).
    pub fn unit_root(&self, unit: &str) -> PathBuf {
        match &self.machines {
            Some(m) => m.root(unit),
            None => self.unit_dir(unit).join("root"),
        }
    }

    fn unit_dir(&self, unit: &str) -> PathBuf {
        self.path.join("units").join(unit.replace('/', "-"))
    }

    fn unit_number(unit: &str) -> u32 {
        unit.rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The unit's address, as `network-get` reports it: a loopback alias in process mode,
    /// its machine's address on the model's bridge in real-systemd mode.
    pub fn address(&self, unit: &str) -> String {
        match &self.machines {
            Some(m) => m.address(Self::unit_number(unit)),
            None => format!("127.0.0.{}", Self::unit_number(unit) + 10),
        }
    }

    /// Resolves `app/leader` (as `juju run` accepts) to the leader's name.
    pub fn resolve(&self, unit: &str) -> Result<String> {
        if unit == format!("{}/leader", self.app) {
            return self.leader();
        }
        if !self.units.iter().any(|u| u == unit) {
            bail!("ERROR unit {unit:?} not found");
        }
        Ok(unit.to_string())
    }

    /// The full model state as fake.py keeps it (for assertions not covered below).
    pub fn state(&self) -> Result<Value> {
        self.admin("state", json!({}))
    }

    pub fn leader(&self) -> Result<String> {
        self.state()?["leader"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the model has no leader"))
    }

    /// The unit's workload status `(state, message)`; `("unknown", "")` before any status-set.
    pub fn status(&self, unit: &str) -> Result<(String, String)> {
        let unit = self.resolve(unit)?;
        let state = self.state()?;
        Ok(status_pair(&state["units"][&unit]["status"]))
    }

    /// Every status the unit set, oldest first.
    pub fn status_history(&self, unit: &str) -> Result<Vec<(String, String)>> {
        let state = self.state()?;
        Ok(state["units"][unit]["status_history"]
            .as_array()
            .map(|h| h.iter().map(status_pair).collect())
            .unwrap_or_default())
    }

    pub fn app_status(&self) -> Result<(String, String)> {
        Ok(status_pair(&self.state()?["app_status"]))
    }

    pub fn app_version(&self) -> Result<String> {
        Ok(self.state()?["app_version"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn opened_ports(&self, unit: &str) -> Result<Vec<String>> {
        let state = self.state()?;
        Ok(strings(&state["units"][unit]["ports"]))
    }

    fn peer_relation(&self, state: &Value) -> Result<(String, Value)> {
        let peer = self
            .peers
            .first()
            .ok_or_else(|| anyhow!("the charm has no peer relation"))?;
        state["relations"]
            .as_object()
            .and_then(|rels| rels.iter().find(|(_, r)| r["name"] == peer.as_str()))
            .map(|(id, r)| (id.clone(), r.clone()))
            .ok_or_else(|| anyhow!("peer relation {peer} not created yet"))
    }

    /// The peer relation's application databag (committed writes only).
    pub fn app_data(&self) -> Result<Map<String, Value>> {
        let (_, rel) = self.peer_relation(&self.state()?)?;
        Ok(rel["app"].as_object().cloned().unwrap_or_default())
    }

    /// A unit's databag in the peer relation (committed writes only).
    pub fn unit_data(&self, unit: &str) -> Result<Map<String, Value>> {
        let (_, rel) = self.peer_relation(&self.state()?)?;
        Ok(rel["data"][unit].as_object().cloned().unwrap_or_default())
    }

    /// The peer relation id (`cluster:0`).
    pub fn peer_relation_id(&self) -> Result<String> {
        Ok(self.peer_relation(&self.state()?)?.0)
    }

    /// What the fake systemd recorded about units it started for `unit` (ExecStart, hardening).
    pub fn systemd_units(&self, unit: &str) -> Result<Map<String, Value>> {
        Ok(self.state()?["systemd"][unit]
            .as_object()
            .cloned()
            .unwrap_or_default())
    }

    /// Every hook tool call so far.
    pub fn calls(&self) -> Result<Vec<Call>> {
        let path = self.path.join("calls.log");
        if !path.exists() {
            return Ok(Vec::new());
        }
        std::fs::read_to_string(&path)?
            .lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("bad calls.log line {l}")))
            .collect()
    }

    /// Everything written with `juju-log`.
    pub fn juju_log(&self) -> String {
        std::fs::read_to_string(self.path.join("juju-log.txt")).unwrap_or_default()
    }

    /// Where any of `needles` shows up in what Juju would show or record: tool argv, juju-log,
    /// statuses, action results/messages/logs, relation data.  Empty means no leak.
    pub fn leaks(&self, needles: &[&str]) -> Result<Vec<String>> {
        let mut places: Vec<(String, String)> = vec![
            (
                "calls.log".into(),
                std::fs::read_to_string(self.path.join("calls.log")).unwrap_or_default(),
            ),
            ("juju-log".into(), self.juju_log()),
        ];
        let state = self.state()?;
        for (unit, u) in state["units"].as_object().cloned().unwrap_or_default() {
            places.push((
                format!("status history of {unit}"),
                u["status_history"].to_string(),
            ));
        }
        places.push((
            "application status".into(),
            state["app_status_history"].to_string(),
        ));
        places.push(("actions".into(), state["actions"].to_string()));
        places.push(("relation data".into(), state["relations"].to_string()));
        let mut found = Vec::new();
        for needle in needles.iter().filter(|n| !n.is_empty()) {
            for (place, text) in &places {
                if text.contains(needle) {
                    found.push(format!(
                        "{place} contains a secret ({} chars)",
                        needle.len()
                    ));
                }
            }
        }
        Ok(found)
    }

    // ---- model operations -----------------------------------------------------------------

    /// `juju deploy CHARM -n N`: install, relation-created, leader-elected (or
    /// leader-settings-changed), config-changed and start on every unit, then peer
    /// relation-joined/changed between all of them, then [`settle`](Self::settle).
    pub fn deploy(&mut self, n: usize) -> Result<()> {
        if !self.units.is_empty() {
            bail!("already deployed; use add_unit");
        }
        let names: Vec<String> = (0..n).map(|_| self.new_unit()).collect::<Result<_>>()?;
        if let Some(machines) = self.machines.as_mut() {
            machines.boot_all(&names)?;
        }
        let mut rids = Vec::new();
        for peer in self.peers.clone() {
            let rid = self.admin("add-relation", json!({"name": peer, "units": names}))?["id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            rids.push((peer, rid));
        }
        if let Some(first) = names.first() {
            self.admin("set-leader", json!({"unit": first}))?;
        }
        for unit in &names {
            self.bring_up(unit, &rids)?;
        }
        for unit in &names {
            for other in names.iter().filter(|o| *o != unit) {
                self.join(unit, other, &rids)?;
            }
        }
        self.settle()?;
        Ok(())
    }

    /// `juju add-unit`: brings up a new unit and introduces it to its peers.
    pub fn add_unit(&mut self) -> Result<String> {
        let unit = self.new_unit()?;
        if let Some(machines) = self.machines.as_mut() {
            machines.boot(&unit)?;
        }
        let rids = self.peer_rids()?;
        self.bring_up(&unit, &rids)?;
        for other in self.units.clone().iter().filter(|o| **o != unit) {
            self.join(other, &unit, &rids)?;
            self.join(&unit, other, &rids)?;
        }
        for rel in self.remote_relations()? {
            self.join_remote(&unit, &rel)?;
        }
        self.settle()?;
        Ok(unit)
    }

    /// `juju remove-unit`: relation-departed on the others and on the unit, relation-broken,
    /// stop and remove on the unit, then its services are stopped and its root deleted (unless
    /// [`set_keep_removed_roots`](Self::set_keep_removed_roots)).  When it was the leader, the
    /// lowest remaining unit is elected.
    pub fn remove_unit(&mut self, unit: &str) -> Result<()> {
        let unit = self.resolve(unit)?;
        let was_leader = self.leader().ok().as_deref() == Some(unit.as_str());
        let rids = self.peer_rids()?;
        self.admin("leave-relations", json!({"unit": unit}))?;
        let others: Vec<String> = self.units.iter().filter(|u| **u != unit).cloned().collect();
        for (name, rid) in &rids {
            for other in &others {
                self.admin(
                    "forget-seen",
                    json!({"unit": other, "relation": rid, "remote_unit": unit}),
                )?;
                let env = relation_env(name, rid, Some(&unit), &self.app, Some(&unit));
                self.run_hook_env(other, &format!("{name}-relation-departed"), env)?;
            }
            for other in &others {
                let env = relation_env(name, rid, Some(other), &self.app, Some(&unit));
                self.run_hook_env(&unit, &format!("{name}-relation-departed"), env)?;
            }
            let env = relation_env(name, rid, None, &self.app, None);
            self.run_hook_env(&unit, &format!("{name}-relation-broken"), env)?;
        }
        for rel in self.remote_relations()? {
            for remote in &rel.remote_units {
                let env = relation_env(
                    &rel.endpoint,
                    &rel.id,
                    Some(remote),
                    &rel.remote_app,
                    Some(&unit),
                );
                self.run_hook_env(&unit, &format!("{}-relation-departed", rel.endpoint), env)?;
            }
            let env = relation_env(&rel.endpoint, &rel.id, None, &rel.remote_app, None);
            self.run_hook_env(&unit, &format!("{}-relation-broken", rel.endpoint), env)?;
        }
        self.run_hook(&unit, "stop")?;
        self.run_hook(&unit, "remove")?;
        let root = self.unit_root(&unit);
        if let Some(machines) = self.machines.as_mut() {
            // Juju removes the unit's machine: a clean shutdown (the disk stays mounted on the
            // host while the test keeps removed roots).
            machines.poweroff(&unit)?;
            if !self.keep_removed_roots {
                machines.destroy(&unit)?;
            }
        } else {
            self.admin("stop-all", json!({"root": root}))?;
        }
        self.admin("remove-unit", json!({"unit": unit}))?;
        self.units.retain(|u| *u != unit);
        if !self.keep_removed_roots {
            let _ = std::fs::remove_dir_all(self.unit_dir(&unit));
        }
        if was_leader {
            if let Some(next) = self.units.first().cloned() {
                self.set_leader(&next)?;
            }
        }
        self.settle()?;
        Ok(())
    }

    /// The unit's machine is lost (power cut, `juju` shows its agent `lost`): every service of
    /// the unit is killed at once (SIGKILL, no graceful stop), and from now on the unit runs no
    /// hook or action, though it stays in the model and in its relations. Leadership does not
    /// move by itself: call [`set_leader`](Self::set_leader) as Juju would after the lease ends.
    pub fn lose_unit(&mut self, unit: &str) -> Result<()> {
        let unit = self.resolve(unit)?;
        if let Some(machines) = self.machines.as_mut() {
            // Host loss: SIGKILL to the machine's PID 1 takes every process down at once.
            machines.kill(&unit)?;
        } else {
            let root = self.unit_root(&unit);
            self.admin("stop-all", json!({"root": root, "timeout": 0}))?;
        }
        self.lost.insert(unit);
        Ok(())
    }

    /// A lost unit's machine comes back: its agent runs `start` (its services were killed;
    /// systemd would start the enabled ones at boot, which the charm's hook then corrects)
    /// and whatever relation events piled up, then the model settles.
    pub fn restore_unit(&mut self, unit: &str) -> Result<()> {
        let unit = self.resolve(unit)?;
        if !self.lost.remove(&unit) {
            bail!("unit {unit} is not lost");
        }
        if let Some(machines) = self.machines.as_mut() {
            // The machine boots again from its disk; systemd starts the enabled units.
            machines.boot(&unit)?;
        }
        self.run_hook(&unit, "start")?;
        self.run_hook(&unit, "leader-settings-changed")?;
        self.settle()
    }

    /// Whether [`lose_unit`](Self::lose_unit) took the unit away.
    pub fn is_lost(&self, unit: &str) -> bool {
        self.lost.contains(unit)
    }

    /// `juju config APP key=value ...` (values typed per config.yaml, as the CLI does); runs
    /// config-changed on every unit when the effective config changed, then settles.
    pub fn config(&mut self, values: &[(&str, &str)]) -> Result<()> {
        let mut typed = Map::new();
        for (key, raw) in values {
            let opt = self
                .config_options
                .get(*key)
                .ok_or_else(|| anyhow!("ERROR unknown option {key:?}"))?;
            typed.insert(key.to_string(), typed_config(key, &opt.kind, raw)?);
        }
        self.apply_config(json!({"values": typed}))
    }

    /// `juju config APP --reset key,...`.
    pub fn reset_config(&mut self, keys: &[&str]) -> Result<()> {
        for key in keys {
            if !self.config_options.contains_key(*key) {
                bail!("ERROR unknown option {key:?}");
            }
        }
        self.apply_config(json!({"reset": keys}))
    }

    fn apply_config(&mut self, change: Value) -> Result<()> {
        if self.admin("set-config", change)?["changed"] == true {
            for unit in self.units.clone() {
                self.run_hook(&unit, "config-changed")?;
            }
            self.settle()?;
        }
        Ok(())
    }

    /// `juju add-secret NAME k=v ...`: a user secret, not yet granted to the application.
    pub fn add_user_secret(&mut self, content: &[(&str, &str)]) -> Result<String> {
        let content: Map<String, Value> = content
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        Ok(
            self.admin("add-user-secret", json!({"content": content}))?["id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }

    /// `juju grant-secret NAME APP`.
    pub fn grant_secret(&mut self, id: &str) -> Result<()> {
        self.admin("grant-secret", json!({"id": id, "granted": true}))?;
        Ok(())
    }

    /// `juju revoke-secret NAME APP`.
    pub fn revoke_secret(&mut self, id: &str) -> Result<()> {
        self.admin("grant-secret", json!({"id": id, "granted": false}))?;
        Ok(())
    }

    /// `juju update-secret NAME k=v ...`: a new revision; consumers get secret-changed.
    pub fn update_user_secret(&mut self, id: &str, content: &[(&str, &str)]) -> Result<()> {
        let content: Map<String, Value> = content
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.admin("update-user-secret", json!({"id": id, "content": content}))?;
        self.settle()?;
        Ok(())
    }

    /// Moves leadership: leader-settings-changed on the old leader first (so it releases its
    /// coordinator and ports), leader-elected on the new one, leader-settings-changed on the
    /// rest, then settles.
    pub fn set_leader(&mut self, unit: &str) -> Result<()> {
        let unit = self.resolve(unit)?;
        let previous = self.admin("set-leader", json!({"unit": unit}))?["previous"]
            .as_str()
            .map(str::to_string);
        if previous.as_deref() == Some(unit.as_str()) {
            return Ok(());
        }
        if let Some(old) = previous.as_ref().filter(|o| self.units.contains(o)) {
            self.run_hook(old, "leader-settings-changed")?;
        }
        self.run_hook(&unit, "leader-elected")?;
        for other in self.units.clone() {
            if other != unit && Some(&other) != previous.as_ref() {
                self.run_hook(&other, "leader-settings-changed")?;
            }
        }
        self.settle()
    }

    /// update-status on every unit.
    pub fn update_status(&mut self) -> Result<()> {
        for unit in self.units.clone() {
            self.run_hook(&unit, "update-status")?;
        }
        self.settle()
    }

    /// `juju refresh` with the same charm: upgrade-charm then config-changed on every unit.
    pub fn upgrade_charm(&mut self) -> Result<()> {
        for unit in self.units.clone() {
            self.run_hook(&unit, "upgrade-charm")?;
            self.run_hook(&unit, "config-changed")?;
        }
        self.settle()
    }

    /// Fires what Juju would fire until nothing changes: relation-changed on units whose view
    /// of a peer's databag (or the app databag) changed since they were last told, and
    /// secret-changed on consumers of a secret with a newer revision.  Bounded.
    pub fn settle(&mut self) -> Result<()> {
        for _ in 0..SETTLE_ROUNDS {
            let pending = self.admin("pending", json!({}))?["pending"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
            for p in pending {
                let unit = p["unit"].as_str().unwrap_or_default().to_string();
                if p["subordinate"] == true {
                    let rid = p["relation"].as_str().unwrap_or_default().to_string();
                    let principal = p["remote_unit"].as_str().unwrap_or_default().to_string();
                    self.admin(
                        "mark-seen",
                        json!({"unit": unit, "relation": rid, "remote_unit": principal, "app": false}),
                    )?;
                    let name = rid.split(':').next().unwrap_or_default().to_string();
                    self.run_collector(
                        &unit,
                        &principal,
                        &rid,
                        &format!("{name}-relation-changed"),
                    )?;
                    continue;
                }
                if !self.units.contains(&unit) {
                    continue;
                }
                if p["kind"] == "secret-changed" {
                    let sid = p["secret"].as_str().unwrap_or_default();
                    self.admin("secret-notified", json!({"unit": unit, "secret": sid}))?;
                    let mut env = vec![("JUJU_SECRET_ID".to_string(), sid.to_string())];
                    if let Some(label) = p["label"].as_str() {
                        env.push(("JUJU_SECRET_LABEL".into(), label.into()));
                    }
                    self.run_hook_env(&unit, "secret-changed", env)?;
                    continue;
                }
                let rid = p["relation"].as_str().unwrap_or_default().to_string();
                let remote = p["remote_unit"].as_str().map(str::to_string);
                self.admin(
                    "mark-seen",
                    json!({"unit": unit, "relation": rid, "remote_unit": remote, "app": remote.is_none()}),
                )?;
                let name = rid.split(':').next().unwrap_or_default().to_string();
                let remote_app = p["remote_app"].as_str().unwrap_or(&self.app).to_string();
                let env = relation_env(&name, &rid, remote.as_deref(), &remote_app, None);
                self.run_hook_env(&unit, &format!("{name}-relation-changed"), env)?;
            }
        }
        let pending = self.admin("pending", json!({}))?;
        bail!("the model did not settle after {SETTLE_ROUNDS} rounds; still pending: {pending}")
    }

    // ---- hooks ----------------------------------------------------------------------------

    /// Runs one hook with no relation or secret context.  Fails when dispatch exits non-zero
    /// (Juju would put the unit in error state) or runs past the hook timeout.
    pub fn run_hook(&mut self, unit: &str, hook: &str) -> Result<HookRun> {
        self.run_hook_env(unit, hook, Vec::new())
    }

    /// Runs one hook with extra Juju environment (`JUJU_RELATION`, `JUJU_REMOTE_UNIT`, ...).
    pub fn run_hook_env(
        &mut self,
        unit: &str,
        hook: &str,
        env: Vec<(String, String)>,
    ) -> Result<HookRun> {
        let unit = self.resolve(unit)?;
        let mut env = env;
        env.push(("JUJU_HOOK_NAME".into(), hook.into()));
        let run = self.dispatch(&unit, &format!("hooks/{hook}"), env)?;
        if run.code != 0 {
            bail!(
                "hook {hook} failed on {unit} (exit {}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
                run.code,
                tail(&run.stderr, 60),
                tail(&run.stdout, 20)
            );
        }
        Ok(run)
    }

    /// `juju run UNIT ACTION key=value ...` with values parsed as YAML, as the CLI does;
    /// `app/leader` names the leader.
    pub fn juju_run(&mut self, unit: &str, command: &str) -> Result<ActionOutcome> {
        let mut words = command.split_whitespace();
        let action = words
            .next()
            .ok_or_else(|| anyhow!("no action given"))?
            .to_string();
        let mut params = Map::new();
        for word in words {
            let (key, raw) = word
                .split_once('=')
                .ok_or_else(|| anyhow!("ERROR argument {word:?} must be of the form key=value"))?;
            let value: Value = serde_yaml_ng::from_str(raw).unwrap_or_else(|_| json!(raw));
            let value = if value.is_null() { json!(raw) } else { value };
            let parts: Vec<&str> = key.split('.').collect();
            let mut slot = &mut params;
            for part in &parts[..parts.len() - 1] {
                slot = slot
                    .entry(part.to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .ok_or_else(|| anyhow!("ERROR key {key:?} conflicts with a value"))?;
            }
            slot.insert(parts[parts.len() - 1].to_string(), value);
        }
        self.run_action(unit, &action, Value::Object(params))
    }

    /// Runs an action: params are validated against the action's JSON schema (types, enum,
    /// minimum/maximum, lengths, required, additionalProperties) and completed with schema
    /// defaults, exactly as Juju does before queuing it; invalid params are refused with a
    /// Juju-like `ERROR ...` without running dispatch.  Staged relation writes are committed
    /// when dispatch exits 0.
    pub fn run_action(&mut self, unit: &str, action: &str, params: Value) -> Result<ActionOutcome> {
        let unit = self.resolve(unit)?;
        if self.lost.contains(&unit) {
            bail!("unit {unit} is lost: Juju would leave the action pending");
        }
        let spec = self
            .actions
            .get(action)
            .ok_or_else(|| anyhow!("ERROR action {action:?} not defined on unit {unit:?}"))?;
        let params = validate_action_params(spec, params)?;
        let id = self.admin(
            "begin-action",
            json!({"unit": unit, "name": action, "params": params}),
        )?["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let env = vec![
            ("JUJU_ACTION_NAME".to_string(), action.to_string()),
            ("JUJU_ACTION_UUID".to_string(), id.clone()),
        ];
        let run = self.dispatch(&unit, &format!("actions/{action}"), env)?;
        let state = self.state()?;
        let record = &state["actions"][&id];
        let failed = record["failed"] == true || run.code != 0;
        let mut message = record["message"].as_str().unwrap_or_default().to_string();
        if message.is_empty() && run.code != 0 {
            message = format!("exit status {}", run.code);
        }
        let outcome = ActionOutcome {
            id,
            unit,
            status: if failed { "failed" } else { "completed" }.into(),
            results: record["results"].as_object().cloned().unwrap_or_default(),
            message,
            log: strings(&record["log"]),
            code: run.code,
            stdout: run.stdout,
            stderr: run.stderr,
        };
        self.settle()?;
        Ok(outcome)
    }

    fn new_unit(&mut self) -> Result<String> {
        let n = self.next_unit;
        if n > 240 {
            bail!("out of loopback addresses");
        }
        self.next_unit += 1;
        let unit = format!("{}/{n}", self.app);
        let dir = self.unit_dir(&unit);
        let root = self.unit_root(&unit);
        let mut arg = json!({
            "unit": unit,
            "bin": dir.join("bin"),
            "root": root,
            "address": self.address(&unit),
            "peers": self.peers,
        });
        if let Some(machines) = self.machines.as_ref() {
            // The machine has the real systemctl, useradd, getent...: only Juju's tools are fake.
            arg["system_tools"] = json!(false);
            arg["interface"] = json!("host0");
            arg["cidr"] = json!(machines.cidr());
        }
        self.admin("add-unit", arg)?;
        if let Some(machines) = self.machines.as_mut() {
            machines.create(&unit, n, &self.app, &self.charm_dir)?;
        } else {
            self.roots.push(root);
        }
        self.units.push(unit.clone());
        Ok(unit)
    }

    fn peer_rids(&self) -> Result<Vec<(String, String)>> {
        let state = self.state()?;
        let mut out = Vec::new();
        for (rid, rel) in state["relations"].as_object().cloned().unwrap_or_default() {
            if rel.get("remote_app").is_none() {
                out.push((rel["name"].as_str().unwrap_or_default().to_string(), rid));
            }
        }
        Ok(out)
    }

    /// Relations with other applications: (relation id, our endpoint, remote app, its units).
    fn remote_relations(&self) -> Result<Vec<RemoteRelation>> {
        let state = self.state()?;
        let mut out = Vec::new();
        for (rid, rel) in state["relations"].as_object().cloned().unwrap_or_default() {
            if let Some(app) = rel["remote_app"].as_str() {
                out.push(RemoteRelation {
                    id: rid,
                    endpoint: rel["name"].as_str().unwrap_or_default().to_string(),
                    remote_app: app.to_string(),
                    remote_units: strings(&rel["remote_units"]),
                });
            }
        }
        Ok(out)
    }

    // ---- relations with other applications --------------------------------------------------

    /// `juju integrate APP:ENDPOINT REMOTE`: relates our `endpoint` to a *scripted* application
    /// `remote_app` with `remote_units` units (`remote_app/0`, ...), which runs no charm code:
    /// the test writes its databags ([`set_remote_app_data`](Self::set_remote_app_data),
    /// [`set_remote_unit_data`](Self::set_remote_unit_data)) and reads ours.  Our units get
    /// relation-created, then relation-joined and relation-changed for each remote unit, in
    /// Juju's order, then the model settles.  Returns the relation id.
    pub fn relate(
        &mut self,
        endpoint: &str,
        remote_app: &str,
        remote_units: usize,
    ) -> Result<String> {
        if remote_app == self.app {
            bail!("ERROR cannot relate {remote_app} to itself; peers are related on deploy");
        }
        let remote: Vec<String> = (0..remote_units)
            .map(|i| format!("{remote_app}/{i}"))
            .collect();
        let rid = self.admin(
            "add-relation",
            json!({"name": endpoint, "units": self.units, "remote_app": remote_app, "remote_units": remote}),
        )?["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for unit in self.units.clone() {
            let env = relation_env(endpoint, &rid, None, remote_app, None);
            self.run_hook_env(&unit, &format!("{endpoint}-relation-created"), env)?;
        }
        let rel = RemoteRelation {
            id: rid.clone(),
            endpoint: endpoint.to_string(),
            remote_app: remote_app.to_string(),
            remote_units: remote,
        };
        for unit in self.units.clone() {
            self.join_remote(&unit, &rel)?;
        }
        self.settle()?;
        Ok(rid)
    }

    /// `juju deploy otel-collector; juju integrate chopsticks:ENDPOINT otel-collector`: a
    /// subordinate application `sub_app` related over our `endpoint` with container scope. It
    /// gets one unit per unit of ours (`sub_app/N` beside `chopsticks/N`, on that unit's
    /// machine), each seeing only its own principal, and each one of them is the fake
    /// collector `tests/fake-juju/collector.py`, run with Juju's hook environment and the fake
    /// hook tools as that subordinate unit: it reads its principal's databag key `config` and
    /// decodes it as the real collector does, into [`collector_record`](Self::collector_record).
    /// Our units get relation-created, then joined and changed about their own subordinate;
    /// then the subordinates get joined and changed about their principal; then the model
    /// settles (a subordinate hears relation-changed whenever its principal's databag
    /// changes). Process mode only. Returns the relation id.
    pub fn relate_subordinate(&mut self, endpoint: &str, sub_app: &str) -> Result<String> {
        if self.machines.is_some() {
            bail!("relate_subordinate: process mode only");
        }
        let principals: Vec<(String, String)> = self
            .units
            .iter()
            .map(|u| (format!("{sub_app}/{}", Self::unit_number(u)), u.clone()))
            .collect();
        for (sub, _) in &principals {
            let bin = self.unit_dir(sub).join("bin");
            std::fs::create_dir_all(&bin)?;
            for tool in ["relation-get", "relation-list", "relation-ids", "juju-log"] {
                let link = bin.join(tool);
                if !link.exists() {
                    std::os::unix::fs::symlink(fake_tool_script(), &link)?;
                }
            }
        }
        let map: Map<String, Value> = principals
            .iter()
            .map(|(s, p)| (s.clone(), json!(p)))
            .collect();
        let subs: Vec<&String> = principals.iter().map(|(s, _)| s).collect();
        let rid = self.admin(
            "add-relation",
            json!({"name": endpoint, "units": self.units, "remote_app": sub_app,
                   "remote_units": subs, "principals": map}),
        )?["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for unit in self.units.clone() {
            let env = relation_env(endpoint, &rid, None, sub_app, None);
            self.run_hook_env(&unit, &format!("{endpoint}-relation-created"), env)?;
        }
        for (sub, principal) in &principals {
            let rel = RemoteRelation {
                id: rid.clone(),
                endpoint: endpoint.to_string(),
                remote_app: sub_app.to_string(),
                remote_units: vec![sub.clone()],
            };
            self.join_remote(principal, &rel)?;
        }
        for (sub, principal) in &principals {
            self.admin(
                "mark-seen",
                json!({"unit": sub, "relation": rid, "remote_unit": principal, "app": false}),
            )?;
            self.run_collector(sub, principal, &rid, &format!("{endpoint}-relation-joined"))?;
            self.run_collector(
                sub,
                principal,
                &rid,
                &format!("{endpoint}-relation-changed"),
            )?;
        }
        self.settle()?;
        Ok(rid)
    }

    fn collector_file(&self, sub: &str) -> PathBuf {
        self.unit_dir(sub).join("collector.json")
    }

    /// Runs a hook of the fake collector `sub` about its principal.
    fn run_collector(&mut self, sub: &str, principal: &str, rid: &str, hook: &str) -> Result<()> {
        self.hook_seq += 1;
        let bin = self.unit_dir(sub).join("bin");
        let name = rid.split(':').next().unwrap_or_default();
        let out = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-juju/collector.py"),
        )
        .arg("hook")
        .arg(self.collector_file(sub))
        .env_clear()
        .env("PATH", format!("{}:{}", bin.display(), self.base_path))
        .env("LANG", "C.UTF-8")
        .env("JUJU_UNIT_NAME", sub)
        .env("JUJU_MACHINE_ID", Self::unit_number(principal).to_string())
        .env("JUJU_PRINCIPAL_UNIT", principal)
        .env("JUJU_RELATION", name)
        .env("JUJU_RELATION_ID", rid)
        .env("JUJU_REMOTE_UNIT", principal)
        .env("JUJU_REMOTE_APP", &self.app)
        .env("JUJU_DISPATCH_PATH", format!("hooks/{hook}"))
        .env("FAKE_JUJU_MODEL", &self.path)
        .env("FAKE_JUJU_HOOK_ID", format!("collector-{}", self.hook_seq))
        .stdin(Stdio::null())
        .output()
        .with_context(|| "running tests/fake-juju/collector.py".to_string())?;
        if !out.status.success() {
            bail!(
                "the fake collector's {hook} on {sub} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// What the fake collector `sub` last decoded from its principal: `unit`, `machine` (its
    /// `JUJU_MACHINE_ID`), `principals` (its `relation-list`), `config` (the principal's
    /// `config`, dashboards decoded to JSON) and `errors` (what did not decode).
    pub fn collector_record(&self, sub: &str) -> Result<Value> {
        let text = std::fs::read_to_string(self.collector_file(sub))
            .with_context(|| format!("{sub} has decoded nothing yet"))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The fake collector `sub` scrapes every target of the jobs it decoded, from its machine
    /// (process mode: this host), as the real one does: `[{job, url, status, metrics}]`.
    pub fn collector_scrape(&self, sub: &str) -> Result<Vec<Value>> {
        let out = Command::new(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-juju/collector.py"),
        )
        .arg("scrape")
        .arg(self.collector_file(sub))
        .stdin(Stdio::null())
        .output()
        .with_context(|| "running tests/fake-juju/collector.py scrape".to_string())?;
        if !out.status.success() {
            bail!(
                "the fake collector's scrape on {sub} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// The machine a unit runs on: ours on machine N (`JUJU_MACHINE_ID`), a subordinate on its
    /// principal's, as the model placed it.
    pub fn machine(&self, unit: &str) -> Result<String> {
        if self.units.iter().any(|u| u == unit) {
            return Ok(Self::unit_number(unit).to_string());
        }
        let state = self.state()?;
        for rel in state["relations"].as_object().into_iter().flatten() {
            if let Some(p) = rel.1["principals"][unit].as_str() {
                return Ok(Self::unit_number(p).to_string());
            }
        }
        bail!("ERROR unit {unit:?} not found")
    }

    /// relation-joined then relation-changed on `unit` for every unit of the remote app.
    fn join_remote(&mut self, unit: &str, rel: &RemoteRelation) -> Result<()> {
        for remote in &rel.remote_units {
            let env = relation_env(&rel.endpoint, &rel.id, Some(remote), &rel.remote_app, None);
            self.run_hook_env(
                unit,
                &format!("{}-relation-joined", rel.endpoint),
                env.clone(),
            )?;
            self.admin(
                "mark-seen",
                json!({"unit": unit, "relation": rel.id, "remote_unit": remote, "app": true}),
            )?;
            self.run_hook_env(unit, &format!("{}-relation-changed", rel.endpoint), env)?;
        }
        Ok(())
    }

    /// The scripted remote application's leader writes its application databag (an empty
    /// value deletes the key); our units get relation-changed.
    pub fn set_remote_app_data(&mut self, rid: &str, values: &[(&str, &str)]) -> Result<()> {
        let data: Map<String, Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.admin("set-remote-data", json!({"relation": rid, "data": data}))?;
        self.settle()
    }

    /// A scripted remote unit writes its own databag; our units get relation-changed.
    pub fn set_remote_unit_data(
        &mut self,
        rid: &str,
        unit: &str,
        values: &[(&str, &str)],
    ) -> Result<()> {
        let data: Map<String, Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.admin(
            "set-remote-data",
            json!({"relation": rid, "unit": unit, "data": data}),
        )?;
        self.settle()
    }

    /// Our application databag in relation `rid`, as the remote application reads it.
    pub fn relation_app_data(&self, rid: &str) -> Result<Map<String, Value>> {
        Ok(self.state()?["relations"][rid]["app"]
            .as_object()
            .cloned()
            .unwrap_or_default())
    }

    /// A unit's databag in relation `rid` (ours or a remote unit's).
    pub fn relation_unit_data(&self, rid: &str, unit: &str) -> Result<Map<String, Value>> {
        Ok(self.state()?["relations"][rid]["data"][unit]
            .as_object()
            .cloned()
            .unwrap_or_default())
    }

    /// `secret-add` by the scripted application `owner_app` and `secret-grant` to our
    /// application (as a provider grants a secret to a relation).  Returns its URI.
    pub fn add_app_secret(&mut self, owner_app: &str, content: &[(&str, &str)]) -> Result<String> {
        let content: Map<String, Value> = content
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        Ok(self.admin(
            "add-app-secret",
            json!({"owner_app": owner_app, "content": content, "granted_apps": [self.app]}),
        )?["id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// `secret-set` by the owning application: a new revision; every unit that read the secret
    /// gets secret-changed (the model settles).
    pub fn update_app_secret(&mut self, id: &str, content: &[(&str, &str)]) -> Result<()> {
        self.update_user_secret(id, content)
    }

    /// `secret-remove URI` by the owning application: the secret and all its revisions are
    /// gone and consumers' `secret-get` fails as in Juju. Juju fires no hook on the consumers
    /// for it; they notice on their next hook (e.g. [`update_status`](Self::update_status)).
    pub fn remove_app_secret(&mut self, id: &str) -> Result<()> {
        self.admin("remove-secret", json!({"id": id}))?;
        Ok(())
    }

    /// `juju remove-relation`: the remote units depart (relation-departed about each on every
    /// unit of ours), then relation-broken on every unit of ours, then the relation is gone
    /// and the model settles.
    pub fn unrelate(&mut self, rid: &str) -> Result<()> {
        let rel = self
            .remote_relations()?
            .into_iter()
            .find(|r| r.id == rid)
            .ok_or_else(|| anyhow!("ERROR relation {rid} not found"))?;
        self.admin("remote-depart", json!({"relation": rid}))?;
        for unit in self.units.clone() {
            self.admin("forget-seen-all", json!({"unit": unit, "relation": rid}))?;
            for remote in &rel.remote_units {
                let env = relation_env(
                    &rel.endpoint,
                    rid,
                    Some(remote),
                    &rel.remote_app,
                    Some(remote),
                );
                self.run_hook_env(&unit, &format!("{}-relation-departed", rel.endpoint), env)?;
            }
        }
        for unit in self.units.clone() {
            let env = relation_env(&rel.endpoint, rid, None, &rel.remote_app, None);
            self.run_hook_env(&unit, &format!("{}-relation-broken", rel.endpoint), env)?;
        }
        self.admin("remove-relation", json!({"relation": rid}))?;
        self.settle()
    }

    fn bring_up(&mut self, unit: &str, rids: &[(String, String)]) -> Result<()> {
        self.run_hook(unit, "install")?;
        for (name, rid) in rids {
            let env = relation_env(name, rid, None, &self.app, None);
            self.run_hook_env(unit, &format!("{name}-relation-created"), env)?;
        }
        for rel in self.remote_relations()? {
            let env = relation_env(&rel.endpoint, &rel.id, None, &rel.remote_app, None);
            self.run_hook_env(unit, &format!("{}-relation-created", rel.endpoint), env)?;
        }
        if self.leader().ok().as_deref() == Some(unit) {
            self.run_hook(unit, "leader-elected")?;
        } else {
            self.run_hook(unit, "leader-settings-changed")?;
        }
        self.run_hook(unit, "config-changed")?;
        self.run_hook(unit, "start")?;
        Ok(())
    }

    /// relation-joined then relation-changed on `unit` about `remote`.
    fn join(&mut self, unit: &str, remote: &str, rids: &[(String, String)]) -> Result<()> {
        for (name, rid) in rids {
            let env = relation_env(name, rid, Some(remote), &self.app, None);
            self.run_hook_env(unit, &format!("{name}-relation-joined"), env.clone())?;
            self.admin(
                "mark-seen",
                json!({"unit": unit, "relation": rid, "remote_unit": remote, "app": true}),
            )?;
            self.run_hook_env(unit, &format!("{name}-relation-changed"), env)?;
        }
        Ok(())
    }

    /// Runs `$JUJU_CHARM_DIR/dispatch` as Juju would, then commits or drops staged writes.
    fn dispatch(
        &mut self,
        unit: &str,
        dispatch_path: &str,
        extra: Vec<(String, String)>,
    ) -> Result<HookRun> {
        if self.lost.contains(unit) {
            // A lost unit's agent is gone: Juju queues the event; nothing runs.
            return Ok(HookRun {
                unit: unit.to_string(),
                dispatch_path: dispatch_path.to_string(),
                code: 0,
                stdout: String::new(),
                stderr: "the unit's agent is lost; nothing ran".into(),
            });
        }
        self.hook_seq += 1;
        let name = dispatch_path.rsplit('/').next().unwrap_or_default();
        let hook_id = format!("{}-{}-{}", unit.replace('/', "-"), name, self.hook_seq);
        let dir = self.unit_dir(unit);
        let root = self.unit_root(unit);
        let logs = self.path.join("hooks");
        std::fs::create_dir_all(&logs)?;
        std::fs::create_dir_all(&root)?;
        let out_path = logs.join(format!("{:05}-{hook_id}.out", self.hook_seq));
        let err_path = logs.join(format!("{:05}-{hook_id}.err", self.hook_seq));
        let (mut cmd, charm_dir, base_path) = match &self.machines {
            Some(machines) => {
                // Inside the unit's machine, where the charm was unpacked as Juju does.
                let charm_dir = machines::Machines::charm_dir(&self.app, Self::unit_number(unit));
                let dispatch = charm_dir.join("dispatch");
                let cmd = machines.command(unit, &charm_dir, &dispatch.display().to_string())?;
                (cmd, charm_dir, machines::SYSTEM_PATH.to_string())
            }
            None => {
                let mut cmd = Command::new(self.charm_dir.join("dispatch"));
                cmd.env_clear()
                    .current_dir(&self.charm_dir)
                    .env("CHOPSTICKS_ROOT", &root);
                (cmd, self.charm_dir.clone(), self.base_path.clone())
            }
        };
        // Its own process group, so a hook that overruns is killed with everything it started.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(&err_path)?)
            .env(
                "PATH",
                format!("{}:{}", dir.join("bin").display(), base_path),
            )
            .env("LANG", "C.UTF-8")
            .env("JUJU_UNIT_NAME", unit)
            .env("JUJU_MODEL_NAME", "chopsticks-test")
            .env("JUJU_MODEL_UUID", "00000000-0000-4000-8000-000000000000")
            .env("JUJU_MACHINE_ID", Self::unit_number(unit).to_string())
            .env("JUJU_PRINCIPAL_UNIT", unit)
            .env("JUJU_CHARM_DIR", &charm_dir)
            .env("CHARM_DIR", &charm_dir)
            .env("JUJU_DISPATCH_PATH", dispatch_path)
            .env("JUJU_CONTEXT_ID", &hook_id)
            .env("JUJU_VERSION", JUJU_VERSION)
            .env("FAKE_JUJU_MODEL", &self.path)
            .env("FAKE_JUJU_HOOK_ID", &hook_id);
        for (k, v) in self.extra_env.iter().chain(extra.iter()) {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning dispatch for {dispatch_path}"))?;
        let deadline = Instant::now() + self.hook_timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let stuck = descendants(child.id());
                let locks = lock_holders(&self.path.join("state.lock"));
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = child.kill();
                let _ = child.wait();
                self.admin("commit", json!({"hook_id": hook_id, "ok": false}))?;
                bail!(
                    "{dispatch_path} on {unit} did not finish within {:?}\n--- its processes ---\n{}\n--- state.lock ---\n{}\n--- stderr ---\n{}\n--- juju-log ---\n{}",
                    self.hook_timeout,
                    stuck.join("\n"),
                    locks.join("\n"),
                    tail(&std::fs::read_to_string(&err_path).unwrap_or_default(), 40),
                    tail(&self.juju_log(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let code = status.code().unwrap_or(-1);
        self.admin("commit", json!({"hook_id": hook_id, "ok": code == 0}))?;
        Ok(HookRun {
            unit: unit.to_string(),
            dispatch_path: dispatch_path.to_string(),
            code,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        })
    }

    /// Runs one fake tool (`systemctl is-active X`, `relation-get ...`) as `unit` would, outside
    /// any hook; its calls.log entries have hook `harness`.  Returns (exit code, stdout, stderr).
    pub fn run_tool(&mut self, unit: &str, argv: &[&str]) -> Result<(i32, String, String)> {
        let unit = self.resolve(unit)?;
        self.hook_seq += 1;
        let bin = self.unit_dir(&unit).join("bin");
        let name = argv.first().ok_or_else(|| anyhow!("no tool"))?;
        let mut cmd = match &self.machines {
            // In the machine: a Juju tool from the bin dir, anything else the machine's own.
            Some(machines) => {
                let mut cmd = machines.command(&unit, Path::new("/"), "/usr/bin/env")?;
                cmd.arg(name);
                cmd.env(
                    "PATH",
                    format!("{}:{}", bin.display(), machines::SYSTEM_PATH),
                );
                cmd
            }
            None => {
                let mut cmd = Command::new(bin.join(name));
                cmd.env_clear()
                    .env("PATH", format!("{}:{}", bin.display(), self.base_path))
                    .env("CHOPSTICKS_ROOT", self.unit_root(&unit));
                cmd
            }
        };
        let out = cmd
            .args(&argv[1..])
            .env("JUJU_UNIT_NAME", &unit)
            .env("JUJU_DISPATCH_PATH", "harness")
            .env("FAKE_JUJU_MODEL", &self.path)
            .env("FAKE_JUJU_HOOK_ID", format!("harness-{}", self.hook_seq))
            .stdin(Stdio::null())
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn admin(&self, cmd: &str, mut arg: Value) -> Result<Value> {
        arg["model"] = json!(self.path);
        let out = Command::new(fake_tool_script())
            .arg("admin")
            .arg(cmd)
            .arg(arg.to_string())
            .env("FAKE_JUJU_MODEL", &self.path)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running fake.py admin {cmd}"))?;
        if !out.status.success() {
            bail!(
                "fake.py admin {cmd} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).with_context(|| format!("fake.py admin {cmd} output"))
    }

    /// Stops every service of every unit root this model ever created (in real-systemd
    /// mode: every machine is destroyed and the bridge deleted).
    pub fn stop_everything(&mut self) {
        if let Some(machines) = self.machines.as_mut() {
            if std::env::var_os("FAKE_JUJU_KEEP").is_some() {
                eprintln!(
                    "fake-juju: machines' console logs in {}",
                    machines.logs().display()
                );
            }
            machines.teardown();
        }
        for root in &self.roots {
            if root.exists() {
                let _ = self.admin("stop-all", json!({"root": root, "timeout": 10}));
            }
        }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        self.stop_everything();
        if std::thread::panicking() {
            eprintln!(
                "--- fake-juju model {} : juju-log tail ---",
                self.path.display()
            );
            eprintln!("{}", tail(&self.juju_log(), 40));
        }
        if std::env::var_os("FAKE_JUJU_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("fake-juju: keeping model dir {}", dir.keep().display());
            }
        }
    }
}

fn status_pair(v: &Value) -> (String, String) {
    (
        v["status"].as_str().unwrap_or("unknown").to_string(),
        v["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn relation_env(
    name: &str,
    rid: &str,
    remote_unit: Option<&str>,
    app: &str,
    departing: Option<&str>,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("JUJU_RELATION".to_string(), name.to_string()),
        ("JUJU_RELATION_ID".to_string(), rid.to_string()),
        ("JUJU_REMOTE_APP".to_string(), app.to_string()),
    ];
    if let Some(remote) = remote_unit {
        env.push(("JUJU_REMOTE_UNIT".into(), remote.into()));
    }
    if let Some(d) = departing {
        env.push(("JUJU_DEPARTING_UNIT".into(), d.into()));
    }
    env
}

/// A `juju config` CLI value typed per the option's type, with Juju-like errors.
fn typed_config(key: &str, kind: &str, raw: &str) -> Result<Value> {
    let bad = || anyhow!("ERROR option {key:?} expected {kind}, got {raw:?}");
    Ok(match kind {
        "int" => json!(raw.parse::<i64>().map_err(|_| bad())?),
        "float" => json!(raw.parse::<f64>().map_err(|_| bad())?),
        "boolean" => json!(match raw {
            "true" | "True" | "yes" => true,
            "false" | "False" | "no" => false,
            _ => return Err(bad()),
        }),
        "secret" => {
            if !raw.starts_with("secret:") {
                return Err(anyhow!("ERROR option {key:?}: {raw:?} is not a secret URI"));
            }
            json!(raw)
        }
        _ => json!(raw),
    })
}

/// Validates action params like Juju (gojsonschema wording) and inserts schema defaults.
pub fn validate_action_params(spec: &Value, params: Value) -> Result<Value> {
    let mut params = match params {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        other => bail!("ERROR action params must be a map, got {other}"),
    };
    let properties = spec["params"].as_object().cloned().unwrap_or_default();
    let mut errors = Vec::new();
    if spec["additionalProperties"] == false {
        for key in params.keys() {
            if !properties.contains_key(key) {
                errors.push(format!("(root): Additional property {key} is not allowed"));
            }
        }
    }
    for required in strings(&spec["required"]) {
        if !params.contains_key(&required) {
            errors.push(format!("(root): {required} is required"));
        }
    }
    for (key, value) in &params {
        if let Some(schema) = properties.get(key) {
            validate_value(key, schema, value, &mut errors);
        }
    }
    if !errors.is_empty() {
        bail!("ERROR validation failed: {}", errors.join("; "));
    }
    for (key, schema) in &properties {
        if let Some(default) = schema.get("default") {
            params.entry(key.clone()).or_insert_with(|| default.clone());
        }
    }
    Ok(Value::Object(params))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn validate_value(field: &str, schema: &Value, value: &Value, errors: &mut Vec<String>) {
    const KNOWN: &[&str] = &[
        "type",
        "description",
        "default",
        "enum",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "title",
        "examples",
        "properties",
        "additionalProperties",
        "required",
        "items",
    ];
    if let Some(obj) = schema.as_object() {
        for key in obj.keys() {
            assert!(
                KNOWN.contains(&key.as_str()),
                "the test harness does not check JSON-schema keyword {key:?} (param {field}); extend tests/model"
            );
        }
    }
    let given = json_type(value);
    if let Some(expected) = schema["type"].as_str() {
        let ok = expected == given || (expected == "number" && given == "integer");
        if !ok {
            errors.push(format!(
                "{field}: Invalid type. Expected: {expected}, given: {given}"
            ));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            errors.push(format!(
                "{field}: {field} must be one of the following: {}",
                list.join(", ")
            ));
        }
    }
    if let Some(v) = value.as_f64() {
        let num = |k: &str| schema[k].as_f64();
        if let Some(min) = num("minimum").filter(|m| v < *m) {
            errors.push(format!(
                "{field}: Must be greater than or equal to {}",
                fmt_num(min)
            ));
        }
        if let Some(max) = num("maximum").filter(|m| v > *m) {
            errors.push(format!(
                "{field}: Must be less than or equal to {}",
                fmt_num(max)
            ));
        }
        if let Some(min) = num("exclusiveMinimum").filter(|m| v <= *m) {
            errors.push(format!("{field}: Must be greater than {}", fmt_num(min)));
        }
        if let Some(max) = num("exclusiveMaximum").filter(|m| v >= *m) {
            errors.push(format!("{field}: Must be less than {}", fmt_num(max)));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64().filter(|m| len < *m) {
            errors.push(format!(
                "{field}: String length must be greater than or equal to {min}"
            ));
        }
        if let Some(max) = schema["maxLength"].as_u64().filter(|m| len > *m) {
            errors.push(format!(
                "{field}: String length must be less than or equal to {max}"
            ));
        }
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Polls `probe` every `every` until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        std::thread::sleep(every);
    }
}

/// A live process as /proc shows it.
struct Proc {
    pid: u32,
    ppid: u32,
    /// 'R', 'S', 'Z', …
    state: char,
    argv: String,
}

/// Every process in /proc (those that vanish while being read are left out).
fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // After "pid (comm) ": state, ppid, …
        let mut rest = stat.rsplit_once(") ").map(|(_, r)| r.split_whitespace());
        let state = rest
            .as_mut()
            .and_then(|r| r.next())
            .and_then(|s| s.chars().next());
        let ppid = rest
            .as_mut()
            .and_then(|r| r.next())
            .and_then(|s| s.parse().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        out.push(Proc {
            pid,
            ppid: ppid.unwrap_or(0),
            state: state.unwrap_or('X'),
            argv: String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .trim()
                .to_string(),
        });
    }
    out
}

/// Processes (pid, argv) whose argv mentions `needle` and that are not zombies.
pub fn processes_matching(needle: &str) -> Vec<(u32, String)> {
    processes()
        .into_iter()
        .filter(|p| !matches!(p.state, 'Z' | 'X') && p.argv.contains(needle))
        .map(|p| (p.pid, p.argv))
        .collect()
}

/// `pid` and its descendants as "pid argv" lines (to show where a hook is stuck).
fn descendants(pid: u32) -> Vec<String> {
    let procs = processes();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() && tree.len() < 1000 {
        let parent = tree[i];
        tree.extend(procs.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    tree.iter()
        .filter_map(|pid| procs.iter().find(|p| p.pid == *pid))
        .map(|p| format!("{} {}", p.pid, p.argv))
        .collect()
}

/// Who holds or waits for flock(2) locks on `path`, from /proc/locks, as "holds|waits pid argv".
fn lock_holders(path: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let waiting = f.get(1) == Some(&"->");
            let at = if waiting { 2 } else { 1 };
            let (pid, dev_ino) = (f.get(at + 3)?, f.get(at + 4)?);
            let ino: u64 = dev_ino.rsplit(':').next()?.parse().ok()?;
            if ino != meta.ino() {
                return None;
            }
            let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
            Some(format!(
                "{} {pid} {argv}",
                if waiting { "waits" } else { "holds" }
            ))
        })
        .collect()
}

/// True when `pid` is gone (or a zombie).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => matches!(
            stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()),
            Some('Z') | Some('X')
        ),
        Err(_) => true,
    }
}
