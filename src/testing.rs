//! In-process fakes of the charm's edges, for unit tests of reconcile and actions. The
//! simulated-model suite (tests/) runs the real binary under executable fakes instead.

use crate::control::Control;
use crate::juju::{HookTools, SecretContent, StatusKind, ToolError, ToolResult};
use crate::paths::Paths;
use crate::reconcile::{Charm, ControlFactory};
use crate::services::{ServiceError, Services};
use crate::system::{AccountError, System};
use chopsticks::control::client::CtlError;
use chopsticks::control::{ControlError, RunStarted, RunState, StartRequest, Status, StopReply};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// Juju, as far as one unit can see it.
#[derive(Default)]
pub struct FakeTools {
    pub config: RefCell<Map<String, Value>>,
    pub leader: RefCell<bool>,
    pub status: RefCell<Option<(StatusKind, String)>>,
    pub app_status: RefCell<Option<(StatusKind, String)>>,
    pub params: RefCell<Map<String, Value>>,
    pub results: RefCell<BTreeMap<String, String>>,
    pub failed: RefCell<Option<String>>,
    pub app: RefCell<BTreeMap<String, String>>,
    pub unit_data: RefCell<BTreeMap<String, String>>,
    pub relation: RefCell<bool>,
    pub peers: RefCell<Vec<String>>,
    pub secrets: RefCell<BTreeMap<String, SecretContent>>,
    /// Secrets this unit may read (app-owned ones always).
    pub granted: RefCell<BTreeSet<String>>,
    pub ports: RefCell<BTreeSet<u16>>,
    /// Every call with its arguments, as a call log would show them.
    pub calls: RefCell<Vec<String>>,
    /// The `s3-credentials` relation: the provider's app name and databag, when related.
    pub s3_remote: RefCell<Option<(String, BTreeMap<String, String>)>>,
    /// Our application and unit databags in the `s3-credentials` relation.
    pub s3_app: RefCell<BTreeMap<String, String>>,
    pub s3_unit: RefCell<BTreeMap<String, String>>,
    /// The `cos-agent` relation's id, when the collector subordinate is related.
    pub cos_agent: RefCell<Option<String>>,
    /// This unit's databag in the `cos-agent` relation.
    pub cos_agent_data: RefCell<BTreeMap<String, String>>,
}

/// The `s3-credentials` relation's id in the fakes.
pub const S3_RELATION: &str = "s3-credentials:1";

impl FakeTools {
    fn call(&self, line: String) {
        self.calls.borrow_mut().push(line);
    }
}

fn valid_key(key: &str) -> bool {
    key.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !seg.starts_with('-')
            && !seg.ends_with('-')
    })
}

impl HookTools for FakeTools {
    fn config(&self) -> ToolResult<Map<String, Value>> {
        self.call("config-get".into());
        Ok(self.config.borrow().clone())
    }
    fn is_leader(&self) -> ToolResult<bool> {
        Ok(*self.leader.borrow())
    }
    fn status_set(&self, kind: StatusKind, message: &str) -> ToolResult<()> {
        self.call(format!("status-set {} {message}", kind.as_str()));
        *self.status.borrow_mut() = Some((kind, message.to_string()));
        Ok(())
    }
    fn app_status_set(&self, kind: StatusKind, message: &str) -> ToolResult<()> {
        self.call(format!(
            "status-set --application {} {message}",
            kind.as_str()
        ));
        *self.app_status.borrow_mut() = Some((kind, message.to_string()));
        Ok(())
    }
    fn application_version_set(&self, version: &str) -> ToolResult<()> {
        self.call(format!("application-version-set {version}"));
        Ok(())
    }
    fn log(&self, level: &str, message: &str) {
        self.call(format!("juju-log {level} {message}"));
    }
    fn action_get(&self) -> ToolResult<Map<String, Value>> {
        Ok(self.params.borrow().clone())
    }
    fn action_set(&self, values: &[(String, String)]) -> ToolResult<()> {
        for (k, v) in values {
            if !valid_key(k) {
                return Err(ToolError {
                    tool: "action-set".into(),
                    message: format!("key {k:?} is not valid"),
                });
            }
            self.call(format!("action-set {k}={v}"));
            self.results.borrow_mut().insert(k.clone(), v.clone());
        }
        Ok(())
    }
    fn action_fail(&self, message: &str) -> ToolResult<()> {
        self.call(format!("action-fail {message}"));
        *self.failed.borrow_mut() = Some(message.to_string());
        Ok(())
    }
    fn action_log(&self, message: &str) -> ToolResult<()> {
        self.call(format!("action-log {message}"));
        Ok(())
    }
    fn relation_ids(&self, endpoint: &str) -> ToolResult<Vec<String>> {
        if endpoint == crate::cos_agent::RELATION {
            return Ok(self.cos_agent.borrow().iter().cloned().collect());
        }
        Ok(match endpoint {
            "cluster" if *self.relation.borrow() => vec!["cluster:0".into()],
            crate::s3_relation::ENDPOINT if self.s3_remote.borrow().is_some() => {
                vec![S3_RELATION.into()]
            }
            _ => vec![],
        })
    }
    fn relation_remote_app(&self, _id: &str) -> ToolResult<String> {
        self.s3_remote
            .borrow()
            .as_ref()
            .map(|(app, _)| app.clone())
            .ok_or_else(|| ToolError {
                tool: "relation-list".into(),
                message: "relation not found".into(),
            })
    }
    fn relation_get_remote_app(
        &self,
        _id: &str,
        app: &str,
    ) -> ToolResult<BTreeMap<String, String>> {
        self.call(format!("relation-get --app - {app}"));
        match self.s3_remote.borrow().as_ref() {
            Some((name, bag)) if name == app => Ok(bag.clone()),
            _ => Err(ToolError {
                tool: "relation-get".into(),
                message: format!("no application {app} in the relation"),
            }),
        }
    }
    fn relation_list(&self, _id: &str) -> ToolResult<Vec<String>> {
        Ok(self.peers.borrow().clone())
    }
    fn relation_get_app(&self, id: &str) -> ToolResult<BTreeMap<String, String>> {
        if id == S3_RELATION {
            return Ok(self.s3_app.borrow().clone());
        }
        Ok(self.app.borrow().clone())
    }
    fn relation_set_app(&self, id: &str, values: &[(String, String)]) -> ToolResult<()> {
        if !*self.leader.borrow() {
            return Err(ToolError {
                tool: "relation-set".into(),
                message: "not the leader".into(),
            });
        }
        for (k, v) in values {
            self.call(format!("relation-set -r {id} --app {k}={v}"));
            if id == S3_RELATION {
                self.s3_app.borrow_mut().insert(k.clone(), v.clone());
            } else {
                self.app.borrow_mut().insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }
    fn relation_set_unit(&self, id: &str, values: &[(String, String)]) -> ToolResult<()> {
        if self.cos_agent.borrow().as_deref() == Some(id) {
            let mut data = self.cos_agent_data.borrow_mut();
            data.extend(values.iter().cloned());
            return Ok(());
        }
        for (k, v) in values {
            self.call(format!("relation-set -r {id} {k}={v}"));
            if id == S3_RELATION {
                self.s3_unit.borrow_mut().insert(k.clone(), v.clone());
            } else {
                self.unit_data.borrow_mut().insert(k.clone(), v.clone());
            }
        }
        Ok(())
    }
    fn ingress_address(&self, _endpoint: &str) -> ToolResult<String> {
        Ok("10.1.2.3".into())
    }
    fn secret_get(&self, id: &str, refresh: bool) -> ToolResult<SecretContent> {
        self.call(if refresh {
            format!("secret-get {id} --refresh")
        } else {
            format!("secret-get {id}")
        });
        if !self.granted.borrow().contains(id) {
            return Err(ToolError {
                tool: "secret-get".into(),
                message: "ERROR permission denied".into(),
            });
        }
        self.secrets
            .borrow()
            .get(id)
            .cloned()
            .ok_or_else(|| ToolError {
                tool: "secret-get".into(),
                message: format!("ERROR secret {id} not found"),
            })
    }
    fn secret_add_app(&self, label: &str, content: &SecretContent) -> ToolResult<String> {
        let id = format!("secret:fake{}", self.secrets.borrow().len());
        self.call(format!(
            "secret-add --owner application --label {label} --file <file>"
        ));
        self.secrets
            .borrow_mut()
            .insert(id.clone(), content.clone());
        self.granted.borrow_mut().insert(id.clone());
        Ok(id)
    }
    fn open_port(&self, port: u16) -> ToolResult<()> {
        self.ports.borrow_mut().insert(port);
        Ok(())
    }
    fn close_port(&self, port: u16) -> ToolResult<()> {
        self.ports.borrow_mut().remove(&port);
        Ok(())
    }
}

/// systemd, as a record of calls and active units.
#[derive(Default)]
pub struct FakeServices {
    pub active: RefCell<BTreeSet<String>>,
    pub calls: RefCell<Vec<String>>,
}

impl Services for FakeServices {
    fn daemon_reload(&self) -> Result<(), ServiceError> {
        self.calls.borrow_mut().push("daemon-reload".into());
        Ok(())
    }
    fn enable_start(&self, unit: &str) -> Result<(), ServiceError> {
        self.calls.borrow_mut().push(format!("enable-start {unit}"));
        self.active.borrow_mut().insert(unit.into());
        Ok(())
    }
    fn restart(&self, unit: &str) -> Result<(), ServiceError> {
        self.calls.borrow_mut().push(format!("restart {unit}"));
        self.active.borrow_mut().insert(unit.into());
        Ok(())
    }
    fn stop_disable(&self, unit: &str) -> Result<(), ServiceError> {
        if self.active.borrow_mut().remove(unit) {
            self.calls.borrow_mut().push(format!("stop {unit}"));
        }
        Ok(())
    }
    fn is_active(&self, unit: &str) -> bool {
        self.active.borrow().contains(unit)
    }
}

impl FakeServices {
    pub fn is_active_unit(&self, unit: &str) -> bool {
        self.active.borrow().contains(unit)
    }
}

/// Accounts that always exist, owned by whoever runs the tests.
pub struct FakeSystem;

impl System for FakeSystem {
    fn ensure_user(&self, _name: &str, _home: &str) -> Result<(u32, u32), AccountError> {
        Ok((
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        ))
    }
}

/// A coordinator that answers from a script.
pub struct FakeControl {
    pub status: RefCell<Status>,
    pub started: RefCell<Vec<StartRequest>>,
    pub up: bool,
}

fn idle() -> Status {
    serde_json::from_value(json!({
        "state": "idle", "run_id": null, "scenario": null, "elapsed_s": 0.0, "duration_s": null,
        "users_target": 0, "users_running": 0, "users_per_worker": {},
        "workers": (1..=4).map(|i| json!({"id": i, "name": format!("chopsticks-{i}"),
            "state": "connected", "users": 0, "last_seen_s": 0.1})).collect::<Vec<_>>(),
        "workers_connected": 4, "workers_missing": 0, "current_rps": 0.0,
        "current_failures_per_s": 0.0, "current_mb_per_s": 0.0, "requests": 0, "failures": 0,
        "bytes": 0, "reason": null, "run_dir": null
    }))
    .unwrap_or_else(|e| panic!("fake status: {e}"))
}

impl FakeControl {
    pub fn new(up: bool) -> FakeControl {
        FakeControl {
            status: RefCell::new(idle()),
            started: RefCell::new(Vec::new()),
            up,
        }
    }

    fn down() -> CtlError {
        CtlError::Unreachable {
            url: "http://127.0.0.1:5558".into(),
            detail: "connection refused".into(),
        }
    }
}

impl Control for FakeControl {
    fn status(&self) -> Result<Status, CtlError> {
        if !self.up {
            return Err(Self::down());
        }
        Ok(self.status.borrow().clone())
    }
    fn start(&self, request: &StartRequest) -> Result<RunStarted, CtlError> {
        if self.status.borrow().state.is_active() {
            return Err(CtlError::Refused(ControlError::Busy("busy".into())));
        }
        // The real coordinator's first step: the engine's one check of a start request, so
        // the charm's relaying of its refusals is tested with the real messages.
        request.check().map_err(CtlError::Refused)?;
        self.started.borrow_mut().push(request.clone());
        let mut s = self.status.borrow_mut();
        s.state = RunState::Preparing;
        s.run_id = Some("20261122T101500Z-3f9c2a".into());
        Ok(RunStarted {
            run_id: "20261122T101500Z-3f9c2a".into(),
            state: RunState::Preparing,
            run_dir: "/var/lib/chopsticks/20261122T101500Z-3f9c2a".into(),
            workers: s.workers_connected,
            scenario: request.scenario.clone(),
        })
    }
    fn stop(&self, _abort: bool) -> Result<StopReply, CtlError> {
        let mut s = self.status.borrow_mut();
        if !s.state.is_active() {
            return Err(CtlError::Refused(ControlError::NotFound(
                "no test is running".into(),
            )));
        }
        s.state = RunState::Stopped;
        Ok(StopReply {
            run_id: s.run_id.clone().unwrap_or_default(),
            state: RunState::Stopping,
        })
    }
    fn wait_ended(&self, _run_id: &str, _limit: Duration) -> Result<Status, CtlError> {
        self.status()
    }
}

/// A unit with its own root, charm dir and fakes.
pub struct Unit {
    pub root: tempfile::TempDir,
    pub charm_dir: tempfile::TempDir,
    pub tools: FakeTools,
    pub services: FakeServices,
    pub control: std::rc::Rc<FakeControl>,
    /// `JUJU_SECRET_ID` of the hook being simulated (`secret-changed`).
    pub refresh_secret: RefCell<Option<String>>,
    /// `JUJU_RELATION_ID` of a relation-broken hook being simulated.
    pub broken_relation: RefCell<Option<String>>,
}

impl Unit {
    pub fn new(leader: bool) -> Unit {
        let charm_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(charm_dir.path().join("bin")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(charm_dir.path().join("bin/chopsticks"), b"engine v1")
            .unwrap_or_else(|e| panic!("{e}"));
        for dir in ["templates", "engine/scenarios"] {
            let target = charm_dir.path().join(if dir == "templates" {
                "templates"
            } else {
                "scenarios"
            });
            std::fs::create_dir_all(&target).unwrap_or_else(|e| panic!("{e}"));
            for e in std::fs::read_dir(repo.join(dir)).unwrap_or_else(|e| panic!("{e}")) {
                let e = e.unwrap_or_else(|e| panic!("{e}"));
                std::fs::copy(e.path(), target.join(e.file_name()))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let tools = FakeTools::default();
        *tools.leader.borrow_mut() = leader;
        *tools.relation.borrow_mut() = true;
        Unit {
            root: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            charm_dir,
            tools,
            services: FakeServices::default(),
            control: std::rc::Rc::new(FakeControl::new(true)),
            refresh_secret: RefCell::new(None),
            broken_relation: RefCell::new(None),
        }
    }

    pub fn configure(&self, pairs: &[(&str, Value)]) {
        let mut c = self.tools.config.borrow_mut();
        for (k, v) in pairs {
            c.insert(k.to_string(), v.clone());
        }
    }

    pub fn configure_s3(&self) {
        self.configure(&[
            ("s3-endpoint", json!("http://10.0.0.1:80")),
            ("s3-access-key", json!("AKIAEXAMPLE")),
            ("s3-secret-key", json!("SUPER-SECRET-KEY-VALUE")),
            ("s3-bucket", json!("test-bucket")),
        ]);
    }

    pub fn with<R>(&self, f: impl FnOnce(&Charm) -> R) -> R {
        let control = std::rc::Rc::clone(&self.control);
        let factory = move |_port: u16| -> Result<Box<dyn Control>, std::io::Error> {
            Ok(Box::new(Shared(std::rc::Rc::clone(&control))))
        };
        let factory: &ControlFactory = &factory;
        let charm = Charm {
            tools: &self.tools,
            services: &self.services,
            system: &FakeSystem,
            control: factory,
            paths: Paths::new(self.root.path()),
            charm_dir: self.charm_dir.path().to_path_buf(),
            unit: "chopsticks/0".into(),
            settle: Duration::from_millis(0),
            refresh_secret: self.refresh_secret.borrow().clone(),
            broken_relation: self.broken_relation.borrow().clone(),
        };
        f(&charm)
    }

    pub fn paths(&self) -> Paths {
        Paths::new(self.root.path())
    }

    pub fn status(&self) -> (StatusKind, String) {
        self.tools
            .status
            .borrow()
            .clone()
            .unwrap_or((StatusKind::Maintenance, String::new()))
    }
}

/// Lets every `Box<dyn Control>` the charm makes share one fake.
struct Shared(std::rc::Rc<FakeControl>);

impl Control for Shared {
    fn status(&self) -> Result<Status, CtlError> {
        self.0.status()
    }
    fn start(&self, r: &StartRequest) -> Result<RunStarted, CtlError> {
        self.0.start(r)
    }
    fn stop(&self, abort: bool) -> Result<StopReply, CtlError> {
        self.0.stop(abort)
    }
    fn wait_ended(&self, id: &str, limit: Duration) -> Result<Status, CtlError> {
        self.0.wait_ended(id, limit)
    }
}
