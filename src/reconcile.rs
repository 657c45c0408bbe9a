//! The one idempotent reconcile every hook runs: from (config, secrets, leadership, peer data)
//! to (files, systemd units, published data, status).
//!
//! The leader runs the coordinator and publishes where it listens and which secret holds the
//! cluster token; every other unit runs a worker pointed at it. Because each hook recomputes
//! everything, leadership changes, units joining or leaving, and config changes all converge
//! without special cases.

use crate::config::{CharmConfig, S3Error, S3Settings};
use crate::control::Control;
use crate::juju::{HookTools, SecretContent, StatusKind};
use crate::paths::{Paths, LEADER_UNIT, LEADER_WEBUI_UNIT, WORKER_UNIT};
use crate::render::{write_if_changed, RenderError, Templates, UnitValues};
use crate::s3_relation;
use crate::services::{ServiceError, Services};
use crate::system::{AccountError, System};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The peer relation.
pub const PEER: &str = "cluster";
/// The system user the services run as.
pub const USER: &str = "chopsticks";
/// Keys of the application databag.
pub const KEY_ADDRESS: &str = "coordinator-address";
pub const KEY_PORT: &str = "coordinator-port";
pub const KEY_TOKEN: &str = "token-secret-id";
pub const KEY_LEADER: &str = "leader-unit";
/// A worker unit's own databag: its connection to the coordinator (`connected`, …), so the
/// leader hears (through cluster-relation-changed) when workers come and go.
pub const KEY_WORKER: &str = "worker-connection";
/// Application databag: the id of the run the coordinator is running (absent when idle), so
/// workers defer credential restarts until it ends.
pub const KEY_RUN: &str = "active-run";
const TOKEN_LABEL: &str = "cluster-token";

/// How long a hook waits for a (re)started worker to report its connection before it sets
/// `waiting`; update-status and the peers' relation events refresh it later.
const WORKER_SETTLE: Duration = Duration::from_secs(3);

/// Why a hook could not do its job (Juju then retries it).
#[derive(Debug, thiserror::Error)]
pub enum CharmError {
    #[error(transparent)]
    Tool(#[from] crate::juju::ToolError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A file or directory the charm manages could not be read, made or changed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("chown {path}: {source}")]
    Chown {
        path: String,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("cannot encode the charm's state: {0}")]
    State(#[source] serde_json::Error),
    /// Credential files `remove` could not delete (paths and errors, never contents).
    #[error("could not remove credentials: {}", .0.join("; "))]
    CredentialsLeft(Vec<String>),
    #[error("cannot start the control client: {0}")]
    ControlClient(#[source] std::io::Error),
    #[error(transparent)]
    CosAgent(#[from] crate::cos_agent::CosError),
}

/// Makes the coordinator client for a control port.
pub type ControlFactory<'a> = dyn Fn(u16) -> Result<Box<dyn Control>, std::io::Error> + 'a;

/// Everything a hook or action works with.
pub struct Charm<'a> {
    pub tools: &'a dyn HookTools,
    pub services: &'a dyn Services,
    pub system: &'a dyn System,
    pub control: &'a ControlFactory<'a>,
    pub paths: Paths,
    pub charm_dir: PathBuf,
    /// `chopsticks/0`.
    pub unit: String,
    /// How long to wait for a daemon to come up before reporting status.
    pub settle: Duration,
    /// The secret a `secret-changed` hook is about (`JUJU_SECRET_ID`): read with `--refresh`
    /// so this unit moves to its newest revision. `None` in every other hook.
    pub refresh_secret: Option<String>,
    /// The relation a `*-relation-broken` hook is about (`JUJU_RELATION_ID`): Juju still
    /// lists it during that hook, but it is gone, so the reconcile leaves it out.
    pub broken_relation: Option<String>,
}

/// What the charm remembers between hooks.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CharmState {
    /// The coordinator serves the web UI (set by `start-test headless=false`).
    #[serde(default)]
    pub web_ui: bool,
    /// The cluster token secret, kept until it is published to the peers.
    #[serde(default)]
    pub token_secret_id: Option<String>,
    /// Set when new inputs (rotated credentials, a new engine) were written while a run was
    /// active: this unit's service restarts once no run is active; cleared by that restart.
    #[serde(default)]
    pub restart_pending: bool,
    /// Where the S3 credentials in use come from when not the options (`credentials from
    /// relation s3-credentials (APP)`), for the leader's status, which actions also set.
    #[serde(default)]
    pub credentials_from: Option<String>,
}

/// What the peers publish.
#[derive(Debug, Clone, Default)]
pub struct PeerView {
    pub relation: Option<String>,
    pub app: BTreeMap<String, String>,
    pub peers: Vec<String>,
}

impl<'a> Charm<'a> {
    pub fn log(&self, message: &str) {
        self.tools.log("INFO", message);
    }

    /// Reads a secret, refreshing it when this hook is its `secret-changed`.
    pub fn read_secret(&self, id: &str) -> crate::juju::ToolResult<crate::juju::SecretContent> {
        let refresh = self
            .refresh_secret
            .as_deref()
            .is_some_and(|changed| same_secret(changed, id));
        if refresh {
            self.log(&format!("secret {id} changed: reading its newest revision"));
        }
        self.tools.secret_get(id, refresh)
    }

    /// The run the coordinator is running, asked with a bound of about a second; `None` when
    /// idle or not answering.
    pub fn active_run(&self, config: &CharmConfig) -> Option<String> {
        let control = (self.control)(config.control_port).ok()?;
        let status = control.status().ok()?;
        status
            .state
            .is_active()
            .then(|| status.run_id.unwrap_or_else(|| "?".into()))
    }

    pub fn load_state(&self) -> CharmState {
        std::fs::read_to_string(self.paths.charm_state())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save_state(&self, state: &CharmState) -> Result<(), CharmError> {
        let text = serde_json::to_vec_pretty(state).map_err(CharmError::State)?;
        write_if_changed(&self.paths.charm_state(), &text, 0o600)?;
        Ok(())
    }

    pub fn peers(&self) -> Result<PeerView, CharmError> {
        let Some(relation) = self.tools.relation_ids(PEER)?.into_iter().next() else {
            return Ok(PeerView::default());
        };
        Ok(PeerView {
            app: self.tools.relation_get_app(&relation)?,
            peers: self.tools.relation_list(&relation)?,
            relation: Some(relation),
        })
    }

    /// The `s3-credentials` relation and its provider's application name, unless there is
    /// none or it is being broken.
    pub fn s3_relation(&self) -> Result<Option<(String, String)>, CharmError> {
        let relation = self
            .tools
            .relation_ids(s3_relation::ENDPOINT)?
            .into_iter()
            .find(|r| self.broken_relation.as_deref() != Some(r.as_str()));
        match relation {
            None => Ok(None),
            Some(r) => {
                let app = self.tools.relation_remote_app(&r)?;
                Ok(Some((r, app)))
            }
        }
    }

    /// What the `s3-credentials` provider sent, read by every unit itself: `Ok(None)` when not
    /// related, `Err(RelationPending)` when related but nothing sent yet.
    fn s3_provided(&self) -> Result<Option<s3_relation::Provided>, S3Error> {
        let (relation, app) = match self.s3_relation() {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(S3Error::Relation(s3_relation::RelationError::Field {
                    app: "?".into(),
                    field: "relation",
                    problem: format!("cannot be read ({e})"),
                }))
            }
        };
        let secret_error = |message: String| {
            S3Error::Relation(s3_relation::RelationError::Secret {
                app: app.clone(),
                message,
            })
        };
        let bag = self
            .tools
            .relation_get_remote_app(&relation, &app)
            .map_err(|e| {
                S3Error::Relation(s3_relation::RelationError::Field {
                    app: app.clone(),
                    field: "application data",
                    problem: format!("cannot be read ({})", e.message),
                })
            })?;
        let secret =
            match bag
                .get(s3_relation::SECRET_EXTRA)
                .filter(|v| !v.trim().is_empty())
            {
                Some(id) => Some(self.read_secret(id.trim()).map_err(|e| {
                    secret_error(e.message.trim_start_matches("ERROR ").to_string())
                })?),
                None => None,
            };
        match s3_relation::parse(&app, &bag, secret.as_ref())? {
            Some(p) => Ok(Some(p)),
            None => Err(S3Error::RelationPending(app)),
        }
    }

    /// Our leader's request in the `s3-credentials` relation (`bucket`, and v1's
    /// `requested-secrets` and `lib-version`), written only where it changed.
    fn request_s3(&self, config: &CharmConfig) -> Result<(), CharmError> {
        let Some((relation, _)) = self.s3_relation()? else {
            return Ok(());
        };
        let ours = self.tools.relation_get_app(&relation)?;
        let changed: Vec<(String, String)> = s3_relation::request(config)
            .into_iter()
            .filter(|(k, v)| ours.get(k) != Some(v))
            .collect();
        if !changed.is_empty() {
            self.log(&format!(
                "asking relation {relation} for bucket {}",
                config.s3_bucket
            ));
            self.tools.relation_set_app(&relation, &changed)?;
            // v0's text asks for the bucket in a unit databag too.
            self.tools.relation_set_unit(
                &relation,
                &[("bucket".to_string(), config.s3_bucket.clone())],
            )?;
        }
        Ok(())
    }

    /// The S3 settings (the relation's over the options'), and where the credentials come
    /// from when the relation gave them; or the message saying what to fix.
    pub fn s3_settings_and_source(
        &self,
        config: &CharmConfig,
    ) -> Result<(S3Settings, Option<String>), S3Error> {
        match self.s3_provided() {
            Ok(Some(p)) => {
                for field in &p.unused {
                    self.log(&format!(
                        "relation s3-credentials ({}) gives {field}; the load engine does not use it",
                        p.remote_app
                    ));
                }
                if p.path.is_some() {
                    self.log(&format!(
                        "relation s3-credentials ({}) gives a path; Chopsticks writes under its own per-run prefixes in the bucket",
                        p.remote_app
                    ));
                }
                let mut s = p.apply(config).s3(None)?;
                p.adjust(&mut s);
                Ok((s, Some(p.source())))
            }
            Ok(None) => self.s3_settings_from_options(config).map(|s| (s, None)),
            // Nothing sent yet: options that work meanwhile are used.
            Err(S3Error::RelationPending(app)) => self
                .s3_settings_from_options(config)
                .map(|s| (s, None))
                .map_err(|_| S3Error::RelationPending(app)),
            Err(e) => Err(e),
        }
    }

    /// The S3 settings, or the blocked message saying what to fix.
    pub fn s3_settings(&self, config: &CharmConfig) -> Result<S3Settings, S3Error> {
        self.s3_settings_and_source(config).map(|(s, _)| s)
    }

    fn s3_settings_from_options(&self, config: &CharmConfig) -> Result<S3Settings, S3Error> {
        let credentials = if config.s3_credentials.is_empty() {
            None
        } else {
            match self.read_secret(&config.s3_credentials) {
                Ok(c) => Some(c),
                Err(e) => return Err(S3Error::SecretUnreadable(e.message)),
            }
        };
        config.s3(credentials.as_ref())
    }

    /// Puts the engine and scenarios from the charm in place, with the user and directories.
    /// Returns whether the engine binary changed (an upgrade: running services restart).
    pub fn install_files(&self) -> Result<bool, CharmError> {
        let io = |what: &str, source: std::io::Error| CharmError::Io {
            what: what.to_string(),
            source,
        };
        let source = self.charm_dir.join("bin/chopsticks");
        let bytes =
            std::fs::read(&source).map_err(|e| io(&format!("reading {}", source.display()), e))?;
        let engine_changed = write_if_changed(&self.paths.engine(), &bytes, 0o755)?;
        let scenarios = self.charm_dir.join("scenarios");
        if let Ok(entries) = std::fs::read_dir(&scenarios) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    let text = std::fs::read(&path).map_err(|e| io("reading a scenario", e))?;
                    write_if_changed(
                        &self.paths.scenarios().join(entry.file_name()),
                        &text,
                        0o644,
                    )?;
                }
            }
        }
        let (uid, gid) = self
            .system
            .ensure_user(USER, &self.paths.state().display().to_string())?;
        let state = self.paths.state();
        std::fs::create_dir_all(&state).map_err(|e| io("creating the state directory", e))?;
        nix::unistd::chown(
            &state,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|source| CharmError::Chown {
            path: state.display().to_string(),
            source,
        })?;
        set_mode(&state, 0o750)?;
        // The daemons write their log files here (0640); root and the group read them.
        let logs = self.paths.log_dir();
        std::fs::create_dir_all(&logs).map_err(|e| io("creating the log directory", e))?;
        nix::unistd::chown(
            &logs,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|source| CharmError::Chown {
            path: logs.display().to_string(),
            source,
        })?;
        set_mode(&logs, 0o750)?;
        // Root-owned, so the service user cannot plant what a root action will read.
        let scenarios = self.paths.operator_scenarios();
        std::fs::create_dir_all(&scenarios)
            .map_err(|e| io("creating the scenario directory", e))?;
        set_mode(&scenarios, 0o755)?;
        std::fs::create_dir_all(self.paths.etc()).map_err(|e| io("creating /etc/chopsticks", e))?;
        set_mode(&self.paths.etc(), 0o700)?;
        Ok(engine_changed)
    }

    /// The reconcile every hook runs.
    pub fn reconcile(&self) -> Result<(), CharmError> {
        let upgraded = self.install_files()?;
        self.tools.application_version_set(chopsticks::VERSION)?;
        let config = match CharmConfig::load(self.tools) {
            Ok(c) => c,
            Err(e) => return self.block(&e.to_string()),
        };
        let leader = self.tools.is_leader()?;
        self.publish_cos_agent(&config, leader)?;
        let view = self.peers()?;
        let mut state = self.load_state();
        let token_id = if leader {
            Some(self.ensure_token(&view, &mut state)?)
        } else {
            view.app.get(KEY_TOKEN).cloned()
        };
        if leader {
            self.request_s3(&config)?;
        }
        let (s3, source) = match self.s3_settings_and_source(&config) {
            Ok(s) => s,
            Err(e) => {
                if leader {
                    // Workers still learn where the coordinator will be.
                    self.publish(&config, &view, token_id.as_deref())?;
                }
                let kind = match e {
                    S3Error::RelationPending(_) => StatusKind::Waiting,
                    _ => StatusKind::Blocked,
                };
                return self.stop_with_status(kind, &e.to_string());
            }
        };
        if state.credentials_from != source {
            state.credentials_from = source;
            self.save_state(&state)?;
        }
        let templates = Templates::new(&self.charm_dir);
        let s3_changed = write_if_changed(
            &self.paths.s3_config(),
            templates.s3_config(&s3)?.as_bytes(),
            0o600,
        )?;
        let token_changed = match &token_id {
            Some(id) => {
                let content = self.read_secret(id)?;
                let token = content.get("token").cloned().unwrap_or_default();
                write_if_changed(&self.paths.token_file(), token.as_bytes(), 0o600)?
            }
            None => false,
        };
        let inputs_changed = upgraded || s3_changed || token_changed;
        if inputs_changed && !state.restart_pending {
            state.restart_pending = true;
            self.save_state(&state)?;
        }
        if leader {
            let active = self.active_run(&config);
            self.publish_run(&view, active.as_deref())?;
            self.publish(&config, &view, token_id.as_deref())?;
            self.run_coordinator(
                &config,
                &templates,
                &mut state,
                active.as_deref(),
                &view.peers,
            )
        } else {
            let active = view.app.get(KEY_RUN).filter(|r| !r.is_empty()).cloned();
            self.run_worker(
                &config,
                &templates,
                &view,
                token_id.is_some(),
                &mut state,
                active.as_deref(),
            )
        }
    }

    fn block(&self, message: &str) -> Result<(), CharmError> {
        self.stop_with_status(StatusKind::Blocked, message)
    }

    /// Stops every service and sets `kind` with `message` (blocked: the operator must act;
    /// waiting: a related application has yet to answer).
    fn stop_with_status(&self, kind: StatusKind, message: &str) -> Result<(), CharmError> {
        for unit in [LEADER_UNIT, LEADER_WEBUI_UNIT, WORKER_UNIT] {
            self.stop_unit(unit)?;
        }
        self.tools.status_set(kind, message)?;
        if self.tools.is_leader()? {
            self.tools.app_status_set(kind, message)?;
        }
        Ok(())
    }

    /// The cluster token secret's id, creating the secret on first need (leader only).
    fn ensure_token(&self, view: &PeerView, state: &mut CharmState) -> Result<String, CharmError> {
        if let Some(id) = view.app.get(KEY_TOKEN) {
            return Ok(id.clone());
        }
        if let Some(id) = &state.token_secret_id {
            return Ok(id.clone());
        }
        let mut content = SecretContent::new();
        content.insert(
            "token".into(),
            chopsticks::control::token::Token::generate()
                .expose()
                .to_string(),
        );
        let id = self.tools.secret_add_app(TOKEN_LABEL, &content)?;
        state.token_secret_id = Some(id.clone());
        self.save_state(state)?;
        self.log("created the cluster token secret");
        Ok(id)
    }

    /// Publishes where the coordinator listens (leader only), writing only what changed.
    fn publish(
        &self,
        config: &CharmConfig,
        view: &PeerView,
        token_id: Option<&str>,
    ) -> Result<(), CharmError> {
        let Some(relation) = &view.relation else {
            return Ok(());
        };
        let address = self.tools.ingress_address(PEER)?;
        let mut wanted = vec![
            (KEY_ADDRESS.to_string(), address),
            (KEY_PORT.to_string(), config.coordinator_port.to_string()),
            (KEY_LEADER.to_string(), self.unit.clone()),
        ];
        if let Some(id) = token_id {
            wanted.push((KEY_TOKEN.to_string(), id.to_string()));
        }
        let changed: Vec<(String, String)> = wanted
            .into_iter()
            .filter(|(k, v)| view.app.get(k) != Some(v))
            .collect();
        if !changed.is_empty() {
            self.tools.relation_set_app(relation, &changed)?;
        }
        Ok(())
    }

    /// Writes this unit's `cos-agent` data (alert rules, dashboard, the leader's scrape job at
    /// the control port) on every hook, so a changed port or leadership reaches the collector.
    /// Juju passes a relation-changed on only when the value differs.
    pub fn publish_cos_agent(&self, config: &CharmConfig, leader: bool) -> Result<(), CharmError> {
        let relations = self.tools.relation_ids(crate::cos_agent::RELATION)?;
        if relations.is_empty() {
            return Ok(());
        }
        let topology = crate::cos_agent::Topology::from_env(&self.unit);
        let data = crate::cos_agent::unit_data(leader, config.control_port, topology.as_ref())?;
        let json = data.to_json()?;
        for relation in relations {
            self.tools.relation_set_unit(
                &relation,
                &[(crate::cos_agent::KEY.to_string(), json.clone())],
            )?;
        }
        Ok(())
    }

    fn unit_values(&self, config: &CharmConfig) -> UnitValues {
        let mut v = UnitValues::new(&self.paths, config);
        v.worker_name = self.unit.replace('/', "-");
        v
    }

    /// Publishes the active run's id (or removes it) so workers know whether to defer restarts.
    pub fn publish_run(&self, view: &PeerView, active: Option<&str>) -> Result<(), CharmError> {
        let Some(relation) = &view.relation else {
            return Ok(());
        };
        let current = view.app.get(KEY_RUN).filter(|v| !v.is_empty());
        if current.map(String::as_str) != active {
            self.tools.relation_set_app(
                relation,
                &[(KEY_RUN.to_string(), active.unwrap_or_default().to_string())],
            )?;
        }
        Ok(())
    }

    /// Restarts `unit` when its inputs changed, unless a run is active: then the restart is
    /// deferred (kept in `state.restart_pending`) and the returned note says so for the status.
    fn restart_for_inputs(
        &self,
        unit: &str,
        state: &mut CharmState,
        unit_changed: bool,
        active: Option<&str>,
    ) -> Result<Option<String>, CharmError> {
        if !(unit_changed || state.restart_pending) {
            return Ok(None);
        }
        if !unit_changed {
            if let Some(run) = active {
                self.log(&format!(
                    "new credentials or engine written; {unit} restarts after run {run} ends"
                ));
                return Ok(Some(format!("new settings apply when run {run} ends")));
            }
        }
        self.log(&format!("restarting {unit}: its configuration changed"));
        if unit == WORKER_UNIT {
            // A stale connection state must not be reported for the new target.
            let _ = std::fs::remove_file(self.paths.worker_status());
        }
        self.services.restart(unit)?;
        if state.restart_pending {
            state.restart_pending = false;
            self.save_state(state)?;
        }
        Ok(None)
    }

    fn run_coordinator(
        &self,
        config: &CharmConfig,
        templates: &Templates,
        state: &mut CharmState,
        active: Option<&str>,
        peers: &[String],
    ) -> Result<(), CharmError> {
        let web_ui = state.web_ui;
        let values = self.unit_values(config);
        let headless_changed = write_if_changed(
            &self.paths.unit_file(LEADER_UNIT),
            templates.leader_unit(&values, false)?.as_bytes(),
            0o644,
        )?;
        let webui_changed = write_if_changed(
            &self.paths.unit_file(LEADER_WEBUI_UNIT),
            templates.leader_unit(&values, true)?.as_bytes(),
            0o644,
        )?;
        if headless_changed || webui_changed {
            self.services.daemon_reload()?;
        }
        let (wanted, other, unit_changed) = if web_ui {
            (LEADER_WEBUI_UNIT, LEADER_UNIT, webui_changed)
        } else {
            (LEADER_UNIT, LEADER_WEBUI_UNIT, headless_changed)
        };
        self.stop_unit(WORKER_UNIT)?;
        self.stop_unit(other)?;
        if self.services.is_active(wanted) {
            self.restart_for_inputs(wanted, state, unit_changed, active)?;
        } else {
            self.services.enable_start(wanted)?;
            if state.restart_pending {
                state.restart_pending = false;
                self.save_state(state)?;
            }
        }
        self.tools.open_port(config.coordinator_port)?;
        // The web UI's port is open while a run goes (start-test opens it), closed after.
        if web_ui && active.is_some() {
            self.tools.open_port(config.web_port)?;
        } else {
            self.tools.close_port(config.web_port)?;
        }
        self.coordinator_status(config, peers)
    }

    /// Sets the leader's unit and application status from one coordinator status read
    /// (bounded to about a second: a hook never waits on the coordinator).
    pub fn coordinator_status(
        &self,
        config: &CharmConfig,
        peers: &[String],
    ) -> Result<(), CharmError> {
        let control = (self.control)(config.control_port).map_err(CharmError::ControlClient)?;
        match control.status() {
            Ok(s) => {
                let last = last_run_on_disk(&self.paths);
                let (unit, app) = leader_status_messages(&s, peers, last);
                let state = self.load_state();
                let unit = match (&s.run_id, state.restart_pending) {
                    (Some(run), true) if s.state.is_active() => {
                        format!("{unit}; new settings apply when run {run} ends")
                    }
                    _ => unit,
                };
                let unit = match &state.credentials_from {
                    Some(source) => format!("{unit}; {source}"),
                    None => unit,
                };
                self.tools.status_set(StatusKind::Active, &unit)?;
                self.tools.app_status_set(StatusKind::Active, &app)?;
            }
            Err(e) => {
                let message = "waiting for the coordinator to answer (starting or busy)";
                self.tools.status_set(StatusKind::Waiting, message)?;
                self.tools.app_status_set(StatusKind::Waiting, message)?;
                self.log(&format!("coordinator not answering yet: {e}"));
            }
        }
        Ok(())
    }

    fn run_worker(
        &self,
        config: &CharmConfig,
        templates: &Templates,
        view: &PeerView,
        have_token: bool,
        state: &mut CharmState,
        active: Option<&str>,
    ) -> Result<(), CharmError> {
        self.stop_unit(LEADER_UNIT)?;
        self.stop_unit(LEADER_WEBUI_UNIT)?;
        self.tools.close_port(config.coordinator_port)?;
        self.tools.close_port(config.web_port)?;
        let address = view.app.get(KEY_ADDRESS).filter(|a| valid_host(a));
        let port = view.app.get(KEY_PORT).and_then(|p| p.parse::<u16>().ok());
        let stale = view.app.get(KEY_LEADER) == Some(&self.unit);
        let (Some(address), Some(port), true, false) = (address, port, have_token, stale) else {
            self.stop_unit(WORKER_UNIT)?;
            self.tools
                .status_set(StatusKind::Waiting, "waiting for leader address")?;
            return Ok(());
        };
        let coordinator = if address.contains(':') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        };
        let mut values = self.unit_values(config);
        values.coordinator = coordinator.clone();
        let unit_changed = write_if_changed(
            &self.paths.unit_file(WORKER_UNIT),
            templates.worker_unit(&values)?.as_bytes(),
            0o644,
        )?;
        if unit_changed {
            self.services.daemon_reload()?;
        }
        let note = if self.services.is_active(WORKER_UNIT) {
            self.restart_for_inputs(WORKER_UNIT, state, unit_changed, active)?
        } else {
            let _ = std::fs::remove_file(self.paths.worker_status());
            self.services.enable_start(WORKER_UNIT)?;
            if state.restart_pending {
                state.restart_pending = false;
                self.save_state(state)?;
            }
            None
        };
        let note = match (note, &state.credentials_from) {
            (Some(n), Some(source)) => Some(format!("{n}; {source}")),
            (None, Some(source)) => Some(source.clone()),
            (n, None) => n,
        };
        let connection = self.worker_status(&coordinator, note.as_deref())?;
        if let Some(relation) = &view.relation {
            self.tools.relation_set_unit(
                relation,
                &[(KEY_WORKER.to_string(), connection.to_string())],
            )?;
        }
        Ok(())
    }

    /// The worker's connection as its daemon last reported it.
    pub fn link_status(&self) -> Option<chopsticks::cluster::connector::LinkStatus> {
        std::fs::read_to_string(self.paths.worker_status())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
    }

    /// Sets the worker's status from its daemon's report; returns the connection state.
    fn worker_status(
        &self,
        coordinator: &str,
        note: Option<&str>,
    ) -> Result<&'static str, CharmError> {
        let with_note = |m: String| match note {
            Some(n) => format!("{m}; {n}"),
            None => m,
        };
        let deadline = Instant::now() + self.settle.min(WORKER_SETTLE);
        loop {
            let link = self.link_status();
            match link.as_ref().map(|l| l.state.as_str()) {
                Some("connected") => {
                    self.tools.status_set(
                        StatusKind::Active,
                        &with_note(format!("worker connected to {coordinator}")),
                    )?;
                    return Ok("connected");
                }
                Some("refused") if Instant::now() >= deadline => {
                    let detail = link.and_then(|l| l.detail).unwrap_or_default();
                    self.tools.status_set(
                        StatusKind::Blocked,
                        &format!("coordinator {coordinator} refused this worker: {detail}"),
                    )?;
                    return Ok("refused");
                }
                _ if Instant::now() >= deadline => {
                    self.tools.status_set(
                        StatusKind::Waiting,
                        &format!("worker connecting to {coordinator}"),
                    )?;
                    return Ok("connecting");
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Stops and disables `unit` if this unit ever installed it.
    fn stop_unit(&self, unit: &str) -> Result<(), CharmError> {
        if self.paths.unit_file(unit).exists() || self.services.is_active(unit) {
            self.services.stop_disable(unit)?;
        }
        Ok(())
    }

    /// The `stop` hook: this unit's services end.
    pub fn stop_services(&self) -> Result<(), CharmError> {
        for unit in [WORKER_UNIT, LEADER_UNIT, LEADER_WEBUI_UNIT] {
            self.stop_unit(unit)?;
        }
        Ok(())
    }

    /// The `remove` hook: units, binaries and configuration go; run artifacts in
    /// `/var/lib/chopsticks` stay, so results survive the removal. Every piece is tried even
    /// when one fails, secrets first, and each failure is logged. The hook fails (and Juju
    /// retries it) only if a file holding credentials could not be removed.
    pub fn remove(&self) -> Result<(), CharmError> {
        let mut failures: Vec<String> = Vec::new();
        let mut secret_errors: Vec<(PathBuf, std::io::Error)> = Vec::new();
        for path in [self.paths.s3_config(), self.paths.token_file()] {
            if let Err(e) = remove_file_if_present(&path) {
                secret_errors.push((path, e));
            }
        }
        for unit in [WORKER_UNIT, LEADER_UNIT, LEADER_WEBUI_UNIT] {
            if let Err(e) = self.stop_unit(unit) {
                failures.push(format!("stopping {unit}: {e}"));
            }
        }
        for unit in [WORKER_UNIT, LEADER_UNIT, LEADER_WEBUI_UNIT] {
            let path = self.paths.unit_file(unit);
            if let Err(e) = remove_file_if_present(&path) {
                failures.push(format!("removing {}: {e}", path.display()));
            }
        }
        if let Err(e) = self.services.daemon_reload() {
            failures.push(e.to_string());
        }
        for dir in [self.paths.etc(), self.paths.opt()] {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    failures.push(format!("removing {}: {e}", dir.display()));
                }
            }
        }
        if let Err(e) = remove_file_if_present(&self.paths.worker_status()) {
            failures.push(format!(
                "removing {}: {e}",
                self.paths.worker_status().display()
            ));
        }
        for failure in &failures {
            self.tools.log(
                "WARNING",
                &format!("remove: could not finish a step ({failure}); the rest was removed"),
            );
        }
        // Removing /etc/chopsticks may still have taken what unlinking could not.
        let secrets_left: Vec<String> = secret_errors
            .into_iter()
            .filter(|(path, _)| path.symlink_metadata().is_ok())
            .map(|(path, e)| format!("{}: {e}", path.display()))
            .collect();
        if secrets_left.is_empty() {
            Ok(())
        } else {
            for left in &secrets_left {
                self.tools
                    .log("ERROR", &format!("remove: credentials file left: {left}"));
            }
            Err(CharmError::CredentialsLeft(secrets_left))
        }
    }
}

fn remove_file_if_present(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn set_mode(path: &std::path::Path, mode: u32) -> Result<(), CharmError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        CharmError::Io {
            what: format!("chmod {}", path.display()),
            source,
        }
    })
}

/// The newest run recorded on disk and its state: the truth about the last run even when the
/// coordinator restarted since and remembers none.
pub fn last_run_on_disk(paths: &Paths) -> Option<(String, chopsticks::control::RunState)> {
    let id = crate::actions::known_runs(paths).into_iter().next()?;
    let record = chopsticks::results::artifacts::read_record(&paths.run_dir(&id)).ok()?;
    Some((id, record.state))
}

/// The leader's unit and application status messages for a coordinator status, the peer
/// units (which should each run a worker) and the last run on disk.
pub fn leader_status_messages(
    s: &chopsticks::control::Status,
    peers: &[String],
    last_on_disk: Option<(String, chopsticks::control::RunState)>,
) -> (String, String) {
    let connected: Vec<&str> = s
        .workers
        .iter()
        .filter(|w| w.state == "connected")
        .map(|w| w.name.as_str())
        .collect();
    if s.state.is_active() {
        let message = format!(
            "{} {}: {} users on {} workers, {:.0} req/s",
            s.state,
            s.run_id.as_deref().unwrap_or("?"),
            s.users_running,
            connected.len(),
            s.current_rps
        );
        return (message.clone(), message);
    }
    let missing: Vec<&str> = peers
        .iter()
        .filter(|p| !connected.contains(&crate::actions::worker_name(p).as_str()))
        .map(String::as_str)
        .collect();
    let workers = if missing.is_empty() {
        format!("{} workers connected", connected.len())
    } else {
        format!(
            "{} workers connected (not connected: {})",
            connected.len(),
            missing.join(", ")
        )
    };
    let last = match (&s.run_id, s.state) {
        (Some(id), state) if state.is_terminal() => Some((id.clone(), state)),
        _ => last_on_disk,
    };
    match last {
        Some((id, state)) => (
            format!("coordinator ready: {workers}, last run {id}: {state}"),
            format!("idle: last run {id} {state}"),
        ),
        None => (
            format!("coordinator ready: {workers}, no runs yet"),
            "idle: no runs yet".to_string(),
        ),
    }
}

/// Whether two secret references name the same secret (`secret:ID`, `secret://MODEL/ID`, `ID`).
fn same_secret(a: &str, b: &str) -> bool {
    let id = |s: &str| s.rsplit(['/', ':']).next().unwrap_or(s).to_string();
    id(a) == id(b)
}

/// An address safe to put on a unit's command line.
fn valid_host(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= 253
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Unit;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn unconfigured_leader_is_blocked_but_publishes_its_address_and_token() {
        let u = Unit::new(true);
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(
            u.status(),
            (StatusKind::Blocked, crate::config::NEEDS_S3.to_string())
        );
        assert!(u.services.active.borrow().is_empty());
        let app = u.tools.app.borrow().clone();
        assert_eq!(app[KEY_ADDRESS], "10.1.2.3");
        assert_eq!(app[KEY_PORT], "5557");
        assert!(app[KEY_TOKEN].starts_with("secret:"));
        // The engine and scenarios were installed from the charm.
        assert_eq!(std::fs::read(u.paths().engine()).unwrap(), b"engine v1");
        assert!(u
            .paths()
            .scenarios()
            .join("s3_large_objects.yaml")
            .is_file());
    }

    #[test]
    fn configured_leader_runs_the_coordinator_with_private_files() {
        let u = Unit::new(true);
        u.configure_s3();
        u.with(|c| c.reconcile()).unwrap();
        let p = u.paths();
        assert_eq!(mode(&p.s3_config()), 0o600);
        assert_eq!(mode(&p.token_file()), 0o600);
        assert_eq!(mode(&p.etc()), 0o700);
        let s3 = std::fs::read_to_string(p.s3_config()).unwrap();
        assert!(s3.contains("bucket: \"test-bucket\""), "{s3}");
        let token = std::fs::read_to_string(p.token_file()).unwrap();
        assert_eq!(token.len(), 64);
        assert!(u.services.is_active_unit(LEADER_UNIT));
        assert!(!u.services.is_active_unit(WORKER_UNIT));
        assert!(u.tools.ports.borrow().contains(&5557));
        assert_eq!(
            u.status(),
            (
                StatusKind::Active,
                "coordinator ready: 4 workers connected, no runs yet".to_string()
            )
        );
        // No secret in any call the charm made.
        for call in u.tools.calls.borrow().iter() {
            assert!(!call.contains("SUPER-SECRET-KEY-VALUE"), "{call}");
            assert!(!call.contains(&token), "{call}");
        }
    }

    #[test]
    fn reconcile_is_idempotent_and_restarts_only_on_change() {
        let u = Unit::new(true);
        u.configure_s3();
        u.with(|c| c.reconcile()).unwrap();
        let calls_before = u.services.calls.borrow().len();
        let relation_sets = |u: &Unit| {
            u.tools
                .calls
                .borrow()
                .iter()
                .filter(|c| c.starts_with("relation-set"))
                .count()
        };
        let sets_before = relation_sets(&u);
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(
            u.services.calls.borrow().len(),
            calls_before,
            "{:?}",
            u.services.calls.borrow()
        );
        assert_eq!(relation_sets(&u), sets_before);
        u.configure(&[("s3-bucket", json!("other-bucket"))]);
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(
            u.services.calls.borrow().last().map(String::as_str),
            Some("restart chopsticks-leader.service")
        );
    }

    #[test]
    fn worker_waits_for_the_leader_then_connects() {
        let u = Unit::new(false);
        u.configure_s3();
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(
            u.status(),
            (
                StatusKind::Waiting,
                "waiting for leader address".to_string()
            )
        );
        assert!(u.services.active.borrow().is_empty());
        // The leader publishes; the token secret is app-owned, so readable here.
        let mut secret = SecretContent::new();
        secret.insert("token".into(), "t".repeat(64));
        u.tools
            .secrets
            .borrow_mut()
            .insert("secret:tok".into(), secret);
        u.tools.granted.borrow_mut().insert("secret:tok".into());
        u.tools.app.borrow_mut().extend([
            (KEY_ADDRESS.to_string(), "10.9.9.9".to_string()),
            (KEY_PORT.to_string(), "5557".to_string()),
            (KEY_TOKEN.to_string(), "secret:tok".to_string()),
            (KEY_LEADER.to_string(), "chopsticks/1".to_string()),
        ]);
        std::fs::create_dir_all(u.paths().state()).unwrap();
        u.with(|c| c.reconcile()).unwrap();
        assert!(u.services.is_active_unit(WORKER_UNIT));
        let unit = std::fs::read_to_string(u.paths().unit_file(WORKER_UNIT)).unwrap();
        assert!(
            unit.contains("--coordinator 10.9.9.9:5557 --name chopsticks-0"),
            "{unit}"
        );
        // The daemon reports its connection; the status follows it.
        let link = chopsticks::cluster::connector::LinkStatus {
            state: "connected".into(),
            coordinator: "ws://10.9.9.9:5557/ws".into(),
            worker_id: Some(3),
            since: "now".into(),
            detail: None,
        };
        std::fs::write(
            u.paths().worker_status(),
            serde_json::to_vec(&link).unwrap(),
        )
        .unwrap();
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(
            u.status(),
            (
                StatusKind::Active,
                "worker connected to 10.9.9.9:5557".to_string()
            )
        );
        // The leader hears of it through the worker's own databag.
        assert_eq!(u.tools.unit_data.borrow()[KEY_WORKER], "connected");
    }

    #[test]
    fn rotated_credentials_are_refreshed_and_restart_the_worker_after_the_run() {
        let u = Unit::new(false);
        u.configure(&[
            ("s3-endpoint", json!("http://10.0.0.1:80")),
            ("s3-credentials", json!("secret:creds")),
        ]);
        let creds = |sk: &str| {
            let mut c = SecretContent::new();
            c.insert("access-key".into(), "AK".into());
            c.insert("secret-key".into(), sk.into());
            c
        };
        u.tools.secrets.borrow_mut().extend([
            ("secret:creds".to_string(), creds("SK-ONE")),
            ("secret:tok".to_string(), {
                let mut t = SecretContent::new();
                t.insert("token".into(), "t".repeat(64));
                t
            }),
        ]);
        u.tools
            .granted
            .borrow_mut()
            .extend(["secret:creds".to_string(), "secret:tok".to_string()]);
        u.tools.app.borrow_mut().extend([
            (KEY_ADDRESS.to_string(), "10.9.9.9".to_string()),
            (KEY_PORT.to_string(), "5557".to_string()),
            (KEY_TOKEN.to_string(), "secret:tok".to_string()),
            (KEY_LEADER.to_string(), "chopsticks/1".to_string()),
            (KEY_RUN.to_string(), "run-a".to_string()),
        ]);
        std::fs::create_dir_all(u.paths().state()).unwrap();
        u.with(|c| c.reconcile()).unwrap();
        assert!(u.services.is_active_unit(WORKER_UNIT));
        let link = chopsticks::cluster::connector::LinkStatus {
            state: "connected".into(),
            coordinator: "ws://10.9.9.9:5557/ws".into(),
            worker_id: Some(3),
            since: "now".into(),
            detail: None,
        };
        let connected = serde_json::to_vec(&link).unwrap();
        std::fs::write(u.paths().worker_status(), &connected).unwrap();
        u.tools.calls.borrow_mut().clear();
        u.services.calls.borrow_mut().clear();

        // secret-changed mid-run: refreshed and written, the restart waits for the run.
        u.tools
            .secrets
            .borrow_mut()
            .insert("secret:creds".into(), creds("SK-TWO"));
        *u.refresh_secret.borrow_mut() = Some("secret:creds".into());
        u.with(|c| c.reconcile()).unwrap();
        assert!(u
            .tools
            .calls
            .borrow()
            .contains(&"secret-get secret:creds --refresh".to_string()));
        let s3 = std::fs::read_to_string(u.paths().s3_config()).unwrap();
        assert!(s3.contains("SK-TWO"), "{s3}");
        assert!(u
            .services
            .calls
            .borrow()
            .iter()
            .all(|c| !c.starts_with("restart")));
        assert_eq!(
            u.status(),
            (
                StatusKind::Active,
                "worker connected to 10.9.9.9:5557; new settings apply when run run-a ends"
                    .to_string()
            )
        );
        // Other hooks do not refresh.
        *u.refresh_secret.borrow_mut() = None;
        u.tools.calls.borrow_mut().clear();
        u.with(|c| c.reconcile()).unwrap();
        assert!(u
            .tools
            .calls
            .borrow()
            .contains(&"secret-get secret:creds".to_string()));
        assert!(u
            .services
            .calls
            .borrow()
            .iter()
            .all(|c| !c.starts_with("restart")));

        // The run ends (the leader removes active-run): the deferred restart happens once.
        u.tools.app.borrow_mut().remove(KEY_RUN);
        u.with(|c| c.reconcile()).unwrap();
        std::fs::write(u.paths().worker_status(), &connected).unwrap();
        u.with(|c| c.reconcile()).unwrap();
        let restarts = u
            .services
            .calls
            .borrow()
            .iter()
            .filter(|c| *c == "restart chopsticks-worker.service")
            .count();
        assert_eq!(restarts, 1);
        assert_eq!(
            u.status(),
            (
                StatusKind::Active,
                "worker connected to 10.9.9.9:5557".to_string()
            )
        );
    }

    fn status_of(
        state: &str,
        run_id: Option<&str>,
        connected: &[u32],
    ) -> chopsticks::control::Status {
        let workers: Vec<serde_json::Value> = connected
            .iter()
            .map(|i| json!({"id": i, "name": format!("chopsticks-{i}"), "state": "connected", "users": 10, "last_seen_s": 0.1}))
            .collect();
        serde_json::from_value(json!({
            "state": state, "run_id": run_id, "scenario": null, "elapsed_s": 3.0, "duration_s": null,
            "users_target": 40, "users_running": 40, "users_per_worker": {}, "workers": workers,
            "workers_connected": connected.len(), "workers_missing": 0, "current_rps": 125.4,
            "current_failures_per_s": 0.0, "current_mb_per_s": 0.0, "requests": 0, "failures": 0,
            "bytes": 0, "reason": null, "run_dir": null
        }))
        .unwrap()
    }

    #[test]
    fn leader_status_tells_the_run_the_workers_and_the_last_run() {
        use chopsticks::control::RunState;
        let peers: Vec<String> = (1..=4).map(|i| format!("chopsticks/{i}")).collect();
        let (unit, app) = leader_status_messages(
            &status_of("running", Some("R1"), &[1, 2, 3, 4]),
            &peers,
            None,
        );
        assert_eq!(unit, "running R1: 40 users on 4 workers, 125 req/s");
        assert_eq!(app, unit);
        let (unit, app) = leader_status_messages(
            &status_of("completed", Some("R1"), &[1, 2, 4]),
            &peers,
            Some(("R0".into(), RunState::Stopped)),
        );
        assert_eq!(
            unit,
            "coordinator ready: 3 workers connected (not connected: chopsticks/3), last run R1: completed"
        );
        assert_eq!(app, "idle: last run R1 completed");
        // A restarted coordinator remembers no run: the disk does.
        let (unit, app) = leader_status_messages(
            &status_of("idle", None, &[1, 2, 3, 4]),
            &peers,
            Some(("R0".into(), RunState::Interrupted)),
        );
        assert_eq!(
            unit,
            "coordinator ready: 4 workers connected, last run R0: interrupted"
        );
        assert_eq!(app, "idle: last run R0 interrupted");
        let (_, app) = leader_status_messages(&status_of("idle", None, &[]), &peers, None);
        assert_eq!(app, "idle: no runs yet");
    }

    #[test]
    fn leader_status_is_waiting_when_the_coordinator_does_not_answer() {
        let mut u = Unit::new(true);
        u.configure_s3();
        u.control = std::rc::Rc::new(crate::testing::FakeControl::new(false));
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(
            u.status(),
            (
                StatusKind::Waiting,
                "waiting for the coordinator to answer (starting or busy)".to_string()
            )
        );
        assert_eq!(
            u.tools.app_status.borrow().clone().unwrap().0,
            StatusKind::Waiting
        );
    }

    #[test]
    fn losing_leadership_stops_the_coordinator() {
        let u = Unit::new(true);
        u.configure_s3();
        u.with(|c| c.reconcile()).unwrap();
        assert!(u.services.is_active_unit(LEADER_UNIT));
        *u.tools.leader.borrow_mut() = false;
        // Until the new leader publishes, the old address points at this unit itself.
        u.with(|c| c.reconcile()).unwrap();
        assert!(!u.services.is_active_unit(LEADER_UNIT));
        assert!(!u.services.is_active_unit(WORKER_UNIT));
        u.tools.app.borrow_mut().extend([
            (KEY_ADDRESS.to_string(), "10.7.7.7".to_string()),
            (KEY_LEADER.to_string(), "chopsticks/2".to_string()),
        ]);
        u.with(|c| c.reconcile()).unwrap();
        assert!(u.services.is_active_unit(WORKER_UNIT));
        assert!(!u.tools.ports.borrow().contains(&5557));
    }

    #[test]
    fn credentials_secret_must_be_granted() {
        let u = Unit::new(true);
        u.configure(&[
            ("s3-endpoint", json!("http://10.0.0.1:80")),
            ("s3-credentials", json!("secret:creds")),
        ]);
        let mut creds = SecretContent::new();
        creds.insert("access-key".into(), "AK".into());
        creds.insert("secret-key".into(), "SK-FROM-SECRET".into());
        u.tools
            .secrets
            .borrow_mut()
            .insert("secret:creds".into(), creds);
        u.with(|c| c.reconcile()).unwrap();
        let (kind, message) = u.status();
        assert_eq!(kind, StatusKind::Blocked);
        assert!(message.contains("juju grant-secret"), "{message}");
        u.tools.granted.borrow_mut().insert("secret:creds".into());
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(u.status().0, StatusKind::Active);
        let s3 = std::fs::read_to_string(u.paths().s3_config()).unwrap();
        assert!(s3.contains("SK-FROM-SECRET"));
    }

    fn relate_s3(u: &Unit, app: &str, bag: &[(&str, &str)]) {
        let bag = bag
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        *u.tools.s3_remote.borrow_mut() = Some((app.to_string(), bag));
    }

    #[test]
    fn the_leader_asks_and_waits_then_the_relation_overrides_the_options() {
        let u = Unit::new(true);
        u.configure(&[("s3-bucket", json!("my-bucket"))]);
        relate_s3(&u, "ceph-radosgw", &[]);
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(
            u.status(),
            (
                StatusKind::Waiting,
                "waiting for credentials from relation s3-credentials (ceph-radosgw)".to_string()
            )
        );
        let ours = u.tools.s3_app.borrow().clone();
        assert_eq!(ours["bucket"], "my-bucket");
        assert_eq!(ours["requested-secrets"], r#"["access-key", "secret-key"]"#);
        assert_eq!(u.tools.s3_unit.borrow()["bucket"], "my-bucket");
        relate_s3(
            &u,
            "ceph-radosgw",
            &[
                ("access-key", "AK-REL"),
                ("secret-key", "SK-REL-SECRET"),
                ("endpoint", "http://10.0.0.9:80"),
            ],
        );
        u.with(|c| c.reconcile()).unwrap();
        let (kind, message) = u.status();
        assert_eq!(kind, StatusKind::Active);
        assert!(
            message.ends_with("; credentials from relation s3-credentials (ceph-radosgw)"),
            "{message}"
        );
        let s3 = std::fs::read_to_string(u.paths().s3_config()).unwrap();
        assert!(
            s3.contains("SK-REL-SECRET") && s3.contains("10.0.0.9"),
            "{s3}"
        );
        for call in u.tools.calls.borrow().iter() {
            assert!(!call.contains("SK-REL-SECRET"), "{call}");
        }
        // relation-broken: Juju still lists the relation, the charm leaves it out.
        *u.broken_relation.borrow_mut() = Some(crate::testing::S3_RELATION.into());
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(
            u.status(),
            (StatusKind::Blocked, crate::config::NEEDS_S3.to_string())
        );
        assert!(u.services.active.borrow().is_empty());
    }

    #[test]
    fn host_style_renders_virtual_addressing_and_a_removed_secret_blocks() {
        let u = Unit::new(true);
        let id = "secret:fakerel";
        let mut content = SecretContent::new();
        content.insert("access-key".into(), "AK-V1".into());
        content.insert("secret-key".into(), "SK-V1-SECRET".into());
        u.tools.secrets.borrow_mut().insert(id.into(), content);
        u.tools.granted.borrow_mut().insert(id.into());
        relate_s3(
            &u,
            "s3-integrator",
            &[
                ("secret-extra", id),
                ("endpoint", "http://10.0.0.9:80"),
                ("s3-uri-style", "host"),
            ],
        );
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(u.status().0, StatusKind::Active, "{:?}", u.status());
        let text = std::fs::read_to_string(u.paths().s3_config()).unwrap();
        let file = chopsticks::s3_config::WorkloadFile::parse(&text, "rendered").unwrap();
        assert_eq!(file.addressing.as_deref(), Some("virtual"), "{text}");
        assert!(!u.services.active.borrow().is_empty());

        // The provider removes the secret: secret-get fails, the services stop.
        u.tools.secrets.borrow_mut().remove(id);
        u.with(|c| c.reconcile()).unwrap();
        let (kind, message) = u.status();
        assert_eq!(kind, StatusKind::Blocked);
        assert_eq!(
            message,
            "relation s3-credentials (s3-integrator): the secret in secret-extra cannot be read (secret secret:fakerel not found); the provider must send a new secret granted to this application (s3-integrator: juju run s3-integrator/leader sync-s3-credentials), or remove the relation and set the s3-* options"
        );
        assert!(u.services.active.borrow().is_empty());
        for line in u.tools.calls.borrow().iter() {
            assert!(!line.contains("SK-V1-SECRET"), "{line}");
        }
    }

    #[test]
    fn a_bad_tls_ca_chain_blocks_naming_the_relation_and_the_field() {
        let u = Unit::new(false);
        u.configure_s3();
        relate_s3(
            &u,
            "ceph-radosgw",
            &[
                ("access-key", "AK"),
                ("secret-key", "SK"),
                ("tls-ca-chain", "-----BEGIN CERTIFICATE-----"),
            ],
        );
        u.with(|c| c.reconcile()).unwrap();
        let (kind, message) = u.status();
        assert_eq!(kind, StatusKind::Blocked);
        assert!(
            message.starts_with(
                "relation s3-credentials (ceph-radosgw): tls-ca-chain is not a JSON list of PEM certificates"
            ),
            "{message}"
        );
        // A worker never writes the application databag.
        assert!(u.tools.s3_app.borrow().is_empty());
    }

    #[test]
    fn a_v1_secret_is_read_and_refreshed_on_secret_changed() {
        let u = Unit::new(true);
        let creds = |sk: &str| {
            let mut c = SecretContent::new();
            c.insert("access-key".into(), "AK1".into());
            c.insert("secret-key".into(), sk.into());
            c
        };
        u.tools
            .secrets
            .borrow_mut()
            .insert("secret:s3x".into(), creds("SK-ONE"));
        u.tools.granted.borrow_mut().insert("secret:s3x".into());
        relate_s3(
            &u,
            "s3-integrator",
            &[
                ("secret-extra", "secret:s3x"),
                ("endpoint", "http://10.0.0.9:80"),
                ("bucket", "given-bucket"),
            ],
        );
        u.with(|c| c.reconcile()).unwrap();
        let s3 = std::fs::read_to_string(u.paths().s3_config()).unwrap();
        assert!(s3.contains("SK-ONE") && s3.contains("given-bucket"), "{s3}");
        u.tools
            .secrets
            .borrow_mut()
            .insert("secret:s3x".into(), creds("SK-TWO"));
        *u.refresh_secret.borrow_mut() = Some("secret:s3x".into());
        u.with(|c| c.reconcile()).unwrap();
        assert!(u
            .tools
            .calls
            .borrow()
            .contains(&"secret-get secret:s3x --refresh".to_string()));
        let s3 = std::fs::read_to_string(u.paths().s3_config()).unwrap();
        assert!(s3.contains("SK-TWO"), "{s3}");
        assert_eq!(
            u.services.calls.borrow().last().map(String::as_str),
            Some("restart chopsticks-leader.service")
        );
    }

    #[test]
    fn remove_goes_on_after_a_failure_and_fails_only_for_credentials_left() {
        let u = Unit::new(true);
        u.configure_s3();
        u.with(|c| c.reconcile()).unwrap();
        // /opt/chopsticks cannot be removed as a directory (as with EBUSY on a mount).
        std::fs::remove_dir_all(u.paths().opt()).unwrap();
        std::fs::write(u.paths().opt(), b"in the way").unwrap();
        u.with(|c| c.remove()).unwrap();
        assert!(!u.paths().s3_config().exists());
        assert!(!u.paths().token_file().exists());
        assert!(!u.paths().etc().exists());
        assert!(!u.paths().unit_file(LEADER_UNIT).exists());
        assert!(u.services.active.borrow().is_empty());
        let logs = u.tools.calls.borrow().join("\n");
        assert!(
            logs.contains("remove: could not finish a step (removing"),
            "{logs}"
        );
    }

    #[test]
    fn remove_takes_units_binaries_and_config_but_keeps_results() {
        let u = Unit::new(true);
        u.configure_s3();
        u.with(|c| c.reconcile()).unwrap();
        std::fs::create_dir_all(u.paths().run_dir("r1")).unwrap();
        u.with(|c| c.remove()).unwrap();
        assert!(u.services.active.borrow().is_empty());
        assert!(!u.paths().unit_file(LEADER_UNIT).exists());
        assert!(!u.paths().opt().exists());
        assert!(!u.paths().etc().exists());
        assert!(u.paths().run_dir("r1").is_dir());
    }

    #[test]
    fn upgrade_with_a_new_engine_restarts_the_service() {
        let u = Unit::new(true);
        u.configure_s3();
        u.with(|c| c.reconcile()).unwrap();
        std::fs::write(u.charm_dir.path().join("bin/chopsticks"), b"engine v2").unwrap();
        u.with(|c| c.reconcile()).unwrap();
        assert_eq!(std::fs::read(u.paths().engine()).unwrap(), b"engine v2");
        assert_eq!(
            u.services.calls.borrow().last().map(String::as_str),
            Some("restart chopsticks-leader.service")
        );
    }

    #[test]
    fn cos_agent_data_follows_leadership_and_the_control_port() {
        let u = Unit::new(true);
        u.configure_s3();
        // Not related yet: nothing is written.
        u.with(|c| c.reconcile()).unwrap();
        assert!(u.tools.cos_agent_data.borrow().is_empty());
        *u.tools.cos_agent.borrow_mut() = Some("cos-agent:7".into());
        u.configure(&[("control-port", serde_json::json!(6001))]);
        u.with(|c| c.reconcile()).unwrap();
        let data = u.tools.cos_agent_data.borrow().clone();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["config"]);
        let config: crate::cos_agent::UnitData = serde_json::from_str(&data["config"]).unwrap();
        assert_eq!(
            config.metrics_scrape_jobs[0].static_configs[0].targets,
            ["localhost:6001"]
        );
        assert_eq!(config.log_slots, Vec::<String>::new());
        // The same unit as a worker: rules and dashboards, no scrape job.
        *u.tools.leader.borrow_mut() = false;
        u.with(|c| c.reconcile()).unwrap();
        let config: crate::cos_agent::UnitData =
            serde_json::from_str(&u.tools.cos_agent_data.borrow()["config"]).unwrap();
        assert!(config.metrics_scrape_jobs.is_empty());
        assert_eq!(config.dashboards.len(), 1);
        // No secret reaches the relation.
        assert!(!u.tools.cos_agent_data.borrow()["config"].contains("SUPER-SECRET"));
    }
}
