//! Actions: `start-test`, `stop-test`, `test-status`, `fetch-metrics`.
//!
//! They only talk to the daemons (the coordinator's control API on loopback, the worker's
//! status file) and read run artifacts; tests themselves run inside the daemons. A refusal is
//! an `action-fail` whose message says what to do instead. Result keys are lowercase-hyphen.

use crate::config::{CharmConfig, S3Error};
use crate::reconcile::{Charm, CharmError};
use chopsticks::control::client::CtlError;
use chopsticks::control::{ControlError, RunState, StartRequest, Status};
use chopsticks::limits::{self, Count, LimitError};
use chopsticks::results::summary::Summary;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// An action's outcome before it is reported.
enum Outcome {
    Done(Vec<(String, String)>),
    Refused(String),
}

fn kv(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Runs action `name` and reports its results or refusal.
pub fn run(charm: &Charm, name: &str) -> Result<(), CharmError> {
    let params = charm.tools.action_get()?;
    let outcome = match name {
        "start-test" => start_test(charm, &params)?,
        "stop-test" => stop_test(charm)?,
        "test-status" => test_status(charm)?,
        "fetch-metrics" => fetch_metrics(charm, &params)?,
        "list-scenarios" => list_scenarios(charm)?,
        other => Outcome::Refused(format!(
            "unknown action '{other}': this charm has start-test, stop-test, test-status, fetch-metrics and list-scenarios"
        )),
    };
    match outcome {
        Outcome::Done(results) => charm.tools.action_set(&results)?,
        Outcome::Refused(message) => {
            charm.log(&format!("action {name} refused: {message}"));
            charm.tools.action_fail(&message)?;
        }
    }
    Ok(())
}

fn leader_only(charm: &Charm, action: &str) -> Result<Option<Outcome>, CharmError> {
    if charm.tools.is_leader()? {
        Ok(None)
    } else {
        Ok(Some(Outcome::Refused(format!(
            "{action} runs on the leader unit, which coordinates tests: juju run chopsticks/leader {action}"
        ))))
    }
}

fn ctl_message(e: &CtlError) -> String {
    match e {
        CtlError::Unreachable { .. } => format!(
            "the coordinator is not answering ({e}); check juju status and journalctl -u chopsticks-leader"
        ),
        other => other.to_string(),
    }
}

fn param_str(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

/// Why an action parameter cannot be sent as given. Only what Juju's schema cannot express is
/// checked here (and what a start request's types cannot carry); every other bound is the
/// coordinator's, whose refusal is relayed verbatim, so the charm, `chopsticks run`,
/// `chopsticks ctl start` and the control API refuse a mistake in the same words.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    /// Not a whole number at all (Juju's schema says integer; the charm does not trust it),
    /// or a `min-workers` out of its range.
    #[error("{key}={value} is out of range: give a whole number from {min} to {max}")]
    NotWhole {
        key: &'static str,
        value: String,
        min: u64,
        max: u64,
    },
    #[error("{key}={value} is not a number: {fix}")]
    NotANumber {
        key: &'static str,
        value: String,
        fix: &'static str,
    },
    /// A number the start request cannot carry, refused by the engine's own bound (the same
    /// words the coordinator uses for the values it can carry).
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// Duration syntax and bounds, which Juju's schema cannot express: the engine's parser.
    #[error("duration={given}: {source}")]
    Duration {
        given: String,
        #[source]
        source: chopsticks::duration::DurationError,
    },
}

/// A whole-number param, read as an integer (never through f64): `Ok(None)` when absent.
fn param_whole(
    params: &Map<String, Value>,
    key: &'static str,
    bound: Count,
) -> Result<Option<i128>, ParamError> {
    let Some(value) = params.get(key) else {
        return Ok(None);
    };
    match (value.as_u64(), value.as_i64()) {
        (Some(n), _) => Ok(Some(i128::from(n))),
        (None, Some(n)) => Ok(Some(i128::from(n))),
        _ => Err(ParamError::NotWhole {
            key,
            value: value.to_string(),
            min: bound.min,
            max: bound.max,
        }),
    }
}

/// `users`: what a start request can carry (a u32) goes to the coordinator, which checks it;
/// what it cannot carry is refused here by the same bound, in the same words.
fn param_users(params: &Map<String, Value>) -> Result<Option<u32>, ParamError> {
    let Some(n) = param_whole(params, "users", limits::USERS)? else {
        return Ok(None);
    };
    match u32::try_from(n) {
        Ok(n) => Ok(Some(n)),
        Err(_) => {
            let n = limits::USERS.check_whole("users", n)?;
            Ok(Some(limits::USERS.check_u32("users", n)?))
        }
    }
}

/// `min-workers`: checked here, since the charm compares it with its peers before it starts.
fn param_min_workers(params: &Map<String, Value>) -> Result<Option<u32>, ParamError> {
    let bound = limits::EXPECTED_WORKERS;
    let Some(n) = param_whole(params, "min-workers", bound)? else {
        return Ok(None);
    };
    let out_of_range = || ParamError::NotWhole {
        key: "min-workers",
        value: n.to_string(),
        min: bound.min,
        max: bound.max,
    };
    let n = u64::try_from(n).map_err(|_| out_of_range())?;
    bound
        .check_u32("min-workers", n)
        .map(Some)
        .map_err(|_| out_of_range())
}

/// `spawn-rate`: any number goes to the coordinator, which checks its bounds.
fn param_spawn_rate(params: &Map<String, Value>) -> Result<Option<f64>, ParamError> {
    match params.get("spawn-rate") {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| ParamError::NotANumber {
            key: "spawn-rate",
            value: v.to_string(),
            fix: limits::SPAWN_RATE.fix,
        }),
    }
}

/// `rate`: open-model arrivals per second across all workers; any number goes to the
/// coordinator, which checks its bounds (its refusal is the action's message).
fn param_rate(params: &Map<String, Value>) -> Result<Option<f64>, ParamError> {
    match params.get("rate") {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| ParamError::NotANumber {
            key: "rate",
            value: v.to_string(),
            fix: limits::ARRIVAL_RATE.fix,
        }),
    }
}

/// `duration`: parsed and bounded by the engine's parser (Juju's schema only says "string").
fn param_duration(params: &Map<String, Value>, default: &str) -> Result<String, ParamError> {
    let given = param_str(params, "duration").unwrap_or_else(|| default.to_string());
    match chopsticks::duration::parse(&given) {
        Ok(_) => Ok(given),
        Err(source) => Err(ParamError::Duration { given, source }),
    }
}

/// How long start-test waits for every peer's worker to connect before starting with those
/// that are connected.
pub const WORKER_GRACE: Duration = Duration::from_secs(3);

/// Waits for the coordinator to answer (it may be restarting after a unit switch).
fn wait_coordinator(
    control: &dyn crate::control::Control,
    limit: Duration,
) -> Result<Status, CtlError> {
    let deadline = Instant::now() + limit;
    loop {
        match control.status() {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The worker name a peer unit's daemon registers with (`chopsticks/3` → `chopsticks-3`).
pub fn worker_name(unit: &str) -> String {
    unit.replace('/', "-")
}

/// The names of connected workers, once every peer is connected or `limit` has passed.
fn wait_workers(
    control: &dyn crate::control::Control,
    peers: &[String],
    limit: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let connected: Vec<String> = control
            .status()
            .map(|s| {
                s.workers
                    .into_iter()
                    .filter(|w| w.state == "connected")
                    .map(|w| w.name)
                    .collect()
            })
            .unwrap_or_default();
        let all = peers.iter().all(|p| connected.contains(&worker_name(p)));
        if all || Instant::now() >= deadline {
            return connected;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_test(charm: &Charm, params: &Map<String, Value>) -> Result<Outcome, CharmError> {
    if let Some(refused) = leader_only(charm, "start-test")? {
        return Ok(refused);
    }
    let config = match CharmConfig::load(charm.tools) {
        Ok(c) => c,
        Err(m) => {
            return Ok(Outcome::Refused(format!(
                "the charm configuration is invalid: {m}"
            )))
        }
    };
    if let Err(e) = charm.s3_settings(&config) {
        let hint = match e {
            S3Error::NotConfigured => "S3 is not configured: juju config chopsticks s3-endpoint=http://HOST:PORT s3-access-key=KEY s3-secret-key=SECRET (or s3-credentials=SECRET-ID)".to_string(),
            other => format!("S3 is not configured correctly: {other}"),
        };
        return Ok(Outcome::Refused(hint));
    }
    let checked = (
        param_users(params),
        param_min_workers(params),
        param_spawn_rate(params),
        param_duration(params, &config.default_duration),
    );
    let (users, min_workers, spawn_rate, duration) = match checked {
        (Ok(u), Ok(w), Ok(r), Ok(d)) => (
            u.unwrap_or(config.default_users),
            w,
            r.unwrap_or(config.default_spawn_rate),
            d,
        ),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return Ok(Outcome::Refused(e.to_string()))
        }
    };
    let (scenario, chosen) = match choose_scenario(charm, &config, params) {
        Ok(chosen) => chosen,
        Err(message) => return Ok(Outcome::Refused(message)),
    };
    let rate = match param_rate(params) {
        Ok(r) => r,
        Err(e) => return Ok(Outcome::Refused(e.to_string())),
    };
    let headless = params
        .get("headless")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let view = charm.peers()?;
    let peers = view.peers.clone();
    if peers.is_empty() {
        return Ok(Outcome::Refused(
            "there are no worker units: the leader only coordinates; add some with juju add-unit chopsticks -n 4"
                .into(),
        ));
    }
    if let Some(min) = min_workers.filter(|m| *m as usize > peers.len()) {
        return Ok(Outcome::Refused(format!(
            "min-workers={min} but there are only {} worker units; add units (juju add-unit chopsticks -n {}) or lower min-workers",
            peers.len(),
            min as usize - peers.len()
        )));
    }
    let control = (charm.control)(config.control_port).map_err(CharmError::ControlClient)?;
    let status = match wait_coordinator(control.as_ref(), charm.settle) {
        Ok(s) => s,
        Err(e) => return Ok(Outcome::Refused(ctl_message(&e))),
    };
    if status.state.is_active() {
        return Ok(Outcome::Refused(format!(
            "test {} is {}; stop it first: juju run chopsticks/leader stop-test",
            status.run_id.as_deref().unwrap_or("?"),
            status.state
        )));
    }
    // The web UI is a variant of the coordinator unit: switch between runs, then wait for the
    // coordinator and its workers to be back before starting.
    let mut state = charm.load_state();
    if state.web_ui == headless {
        state.web_ui = !headless;
        charm.save_state(&state)?;
        charm.log(if headless {
            "switching the coordinator to headless"
        } else {
            "switching the coordinator to serve the web UI"
        });
        charm.reconcile()?;
        if let Err(e) = wait_coordinator(control.as_ref(), charm.settle) {
            return Ok(Outcome::Refused(ctl_message(&e)));
        }
    }
    // Start with the workers that are connected: wait briefly for all peers, never for a
    // lost one, unless min-workers insists on more.
    let connected = wait_workers(control.as_ref(), &peers, WORKER_GRACE.min(charm.settle));
    let missing: Vec<String> = peers
        .iter()
        .filter(|p| !connected.contains(&worker_name(p)))
        .cloned()
        .collect();
    let need = min_workers.unwrap_or(1);
    if (connected.len() as u32) < need {
        return Ok(Outcome::Refused(format!(
            "{} of {} workers are connected but {} {} needed; not connected: {}; check juju status for those units{}",
            connected.len(),
            peers.len(),
            need,
            if need == 1 { "is" } else { "are" },
            if missing.is_empty() { "none".to_string() } else { missing.join(", ") },
            if min_workers.is_some() { ", or lower min-workers" } else { "" }
        )));
    }
    let sweep = params
        .get("sweep")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let request = StartRequest {
        scenario: chosen.label.clone(),
        scenario_yaml: Some(chosen.yaml),
        users,
        spawn_rate,
        // A sweep ends by its steps unless the operator gave a duration.
        duration: (!sweep || params.contains_key("duration")).then(|| duration.clone()),
        iterations: None,
        expected_workers: Some(need),
        wait_workers_s: Some(WORKER_GRACE.as_secs_f64()),
        run_id: None,
        seed: None,
        stop_timeout_s: None,
        rate,
        sweeping: chopsticks::control::SweepOptions {
            sweep,
            ..Default::default()
        },
    };
    let started = match control.start(&request) {
        Ok(s) => s,
        Err(CtlError::Refused(ControlError::Busy(m))) => {
            return Ok(Outcome::Refused(format!(
                "{m} (juju run chopsticks/leader stop-test)"
            )))
        }
        Err(e) => return Ok(Outcome::Refused(ctl_message(&e))),
    };
    // Workers hold back credential restarts while a run is published as active.
    charm.publish_run(&view, Some(&started.run_id))?;
    if !headless {
        // Open while the run goes (juju expose then reaches it); reconcile closes it after.
        charm.tools.open_port(config.web_port)?;
    }
    charm.coordinator_status(&config, &peers)?;
    let not_connected = if missing.is_empty() {
        "none".to_string()
    } else {
        missing.join(", ")
    };
    let offered = match rate {
        Some(r) => format!("{r} arrivals/s"),
        None => format!("{users} users at {spawn_rate}/s"),
    };
    charm.log(&format!(
        "started test {} ({scenario}, {offered} for {duration}, {} workers; not connected: {not_connected})",
        started.run_id, started.workers
    ));
    // An open-model run has arrivals, not users: its result says the rate it was given.
    let load = match rate {
        Some(r) => vec![("rate", format!("{r}/s"))],
        None => vec![
            ("users", users.to_string()),
            ("spawn-rate", spawn_rate.to_string()),
        ],
    };
    let mut results = kv(&[
        ("test-run-id", started.run_id.clone()),
        ("state", started.state.to_string()),
        ("duration", duration),
        ("scenario-file", scenario),
        ("workers", started.workers.to_string()),
        ("workers-not-connected", not_connected),
        ("headless", headless.to_string()),
        (
            "metrics-dir",
            charm.paths.run_dir(&started.run_id).display().to_string(),
        ),
    ]);
    results.extend(load.into_iter().map(|(k, v)| (k.to_string(), v)));
    if sweep {
        results.push((
            "sweep-file".into(),
            charm
                .paths
                .run_dir(&started.run_id)
                .join(chopsticks::load::sweep::SWEEP_JSON)
                .display()
                .to_string(),
        ));
    }
    if !headless {
        let address = charm
            .tools
            .ingress_address(crate::reconcile::PEER)
            .unwrap_or_else(|_| "LEADER-ADDRESS".into());
        results.push((
            "web-ui".into(),
            format!("http://{address}:{}/", config.web_port),
        ));
        let token_id = view
            .app
            .get(crate::reconcile::KEY_TOKEN)
            .cloned()
            .or_else(|| charm.load_state().token_secret_id);
        results.push((
            "web-ui-login".into(),
            match token_id {
                Some(id) => format!(
                    "any user name; the password is the cluster token: juju show-secret --reveal {id}"
                ),
                None => "any user name; the password is the cluster token (its secret is not created yet: run juju status and retry)".into(),
            },
        ));
    }
    Ok(Outcome::Done(results))
}

/// The scenario a start-test names: the `scenario` parameter's YAML text, or the
/// `scenario-file` name (the `scenarios` option's names first, then the built-ins and the
/// operator's files), or the `scenario-file` option. `Err` is the refusal's message.
fn choose_scenario(
    charm: &Charm,
    config: &CharmConfig,
    params: &Map<String, Value>,
) -> Result<(String, crate::scenarios::ChosenScenario), String> {
    // The text as given: YAML indentation is meaningful, so it is not trimmed.
    let inline = match params.get("scenario") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.as_str()),
        _ => None,
    };
    match (inline, param_str(params, "scenario-file")) {
        (Some(_), Some(_)) => Err(
            "give either scenario (the scenario's YAML text) or scenario-file (a name), not both"
                .into(),
        ),
        (Some(text), None) => crate::scenarios::inline(text)
            .map(|c| (c.label.clone(), c))
            .map_err(|e| e.to_string()),
        (None, named) => {
            let name = named.unwrap_or_else(|| config.scenario_file.clone());
            let configured =
                crate::scenarios::configured(&config.scenarios).map_err(|e| e.to_string())?;
            crate::scenarios::choose_with(&name, &configured, &charm.paths.operator_scenarios())
                .map(|c| (name, c))
                .map_err(|e| e.to_string())
        }
    }
}

fn list_scenarios(charm: &Charm) -> Result<Outcome, CharmError> {
    if let Some(refused) = leader_only(charm, "list-scenarios")? {
        return Ok(refused);
    }
    let config = match CharmConfig::load(charm.tools) {
        Ok(c) => c,
        Err(m) => {
            return Ok(Outcome::Refused(format!(
                "the charm configuration is invalid: {m}"
            )))
        }
    };
    let configured = match crate::scenarios::configured(&config.scenarios) {
        Ok(c) => c,
        Err(e) => return Ok(Outcome::Refused(e.to_string())),
    };
    let listed = crate::scenarios::list(&configured, &charm.paths.operator_scenarios());
    let lines: Vec<String> = listed
        .iter()
        .map(|l| match &l.description {
            Ok(d) => format!("{} ({}): {d}", l.name, l.origin),
            Err(e) => format!("{} ({}): INVALID: {e}", l.name, l.origin),
        })
        .collect();
    let invalid = listed.iter().filter(|l| l.description.is_err()).count();
    let mut results = kv(&[
        ("scenarios", lines.join("\n")),
        ("count", listed.len().to_string()),
        ("invalid", invalid.to_string()),
        ("default", config.scenario_file.clone()),
    ]);
    fit_results(&mut results, &["scenarios"], "");
    Ok(Outcome::Done(results))
}

/// Juju refuses an action result above about 100 KB; results are kept under this.
pub const RESULT_BUDGET: usize = 90 * 1024;

/// Cuts the largest of the `cuttable` values (at a line break) until the whole result fits in
/// [`RESULT_BUDGET`], and says what was cut in a `truncated` key, with `whole` (where the full
/// text is). Returns whether anything was cut.
pub fn fit_results(results: &mut Vec<(String, String)>, cuttable: &[&str], whole: &str) -> bool {
    // Room for the note itself.
    let budget = RESULT_BUDGET - 2048;
    let entry = |k: &str, v: &str| k.len() + v.len() + 4;
    let total: usize = results.iter().map(|(k, v)| entry(k, v)).sum();
    if total <= budget {
        return false;
    }
    let is_cut = |k: &str| cuttable.contains(&k);
    let fixed: usize = results
        .iter()
        .map(|(k, v)| if is_cut(k) { k.len() + 4 } else { entry(k, v) })
        .sum();
    // Share what is left fairly: the shortest values keep all they have, the rest split the
    // remainder equally.
    let mut lengths: Vec<(usize, usize)> = results
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| is_cut(k))
        .map(|(i, (_, v))| (v.len(), i))
        .collect();
    lengths.sort();
    let mut remaining = budget.saturating_sub(fixed);
    let mut allowance = vec![usize::MAX; results.len()];
    let count = lengths.len();
    for (n, (len, i)) in lengths.into_iter().enumerate() {
        let share = remaining / (count - n);
        let given = len.min(share);
        allowance[i] = given;
        remaining -= given;
    }
    let mut notes = Vec::new();
    for (i, (key, value)) in results.iter_mut().enumerate() {
        if value.len() <= allowance[i] {
            continue;
        }
        let mut end = allowance[i];
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        // At a line break when there is one in the second half of what fits (a table or CSV
        // keeps whole rows); otherwise (one-line JSON) at a character.
        let at_line = value[..end]
            .rfind('\n')
            .map(|n| n + 1)
            .filter(|n| *n >= end / 2);
        notes.push(match at_line {
            Some(line_end) => {
                let note = format!(
                    "{key}: the first {} of {} lines ({line_end} of {} bytes)",
                    value[..line_end].lines().count(),
                    value.lines().count(),
                    value.len()
                );
                end = line_end;
                note
            }
            None => format!("{key}: the first {end} of {} bytes", value.len()),
        });
        value.truncate(end);
    }
    if notes.is_empty() {
        return false;
    }
    results.push((
        "truncated".into(),
        format!(
            "Juju keeps action results under 100 KB, so only part is shown: {}{whole}",
            notes.join("; ")
        ),
    ));
    true
}

fn stop_test(charm: &Charm) -> Result<Outcome, CharmError> {
    if let Some(refused) = leader_only(charm, "stop-test")? {
        return Ok(refused);
    }
    let config = match CharmConfig::load(charm.tools) {
        Ok(c) => c,
        Err(m) => {
            return Ok(Outcome::Refused(format!(
                "the charm configuration is invalid: {m}"
            )))
        }
    };
    let control = (charm.control)(config.control_port).map_err(CharmError::ControlClient)?;
    let reply = match control.stop(false) {
        Ok(r) => r,
        Err(CtlError::Refused(ControlError::NotFound(m))) => return Ok(Outcome::Refused(m)),
        Err(e) => return Ok(Outcome::Refused(ctl_message(&e))),
    };
    // In-flight requests get the run's stop timeout (30 s) to finish, then cleanup runs.
    let end = control.wait_ended(&reply.run_id, Duration::from_secs(120));
    let state = match end {
        Ok(s) if s.state.is_terminal() => {
            // The run is over: restarts deferred during it happen now, and workers hear it.
            charm.reconcile()?;
            s.state.to_string()
        }
        Ok(s) => {
            charm.coordinator_status(&config, &charm.peers()?.peers)?;
            format!("{} (still winding down; check test-status)", s.state)
        }
        Err(e) => return Ok(Outcome::Refused(ctl_message(&e))),
    };
    Ok(Outcome::Done(kv(&[
        ("test-run-id", reply.run_id.clone()),
        ("state", state),
        (
            "metrics-dir",
            charm.paths.run_dir(&reply.run_id).display().to_string(),
        ),
    ])))
}

fn test_status(charm: &Charm) -> Result<Outcome, CharmError> {
    if !charm.tools.is_leader()? {
        let link = charm.link_status();
        return Ok(Outcome::Done(match link {
            Some(l) => kv(&[
                ("role", "worker".into()),
                ("connection", l.state),
                ("coordinator", l.coordinator),
                (
                    "worker-id",
                    l.worker_id.map(|i| i.to_string()).unwrap_or_default(),
                ),
                ("since", l.since),
                ("detail", l.detail.unwrap_or_default()),
            ]),
            None => kv(&[
                ("role", "worker".into()),
                ("connection", "not running".into()),
                (
                    "detail",
                    "the worker has not started; see juju status for why".into(),
                ),
            ]),
        }));
    }
    let config = match CharmConfig::load(charm.tools) {
        Ok(c) => c,
        Err(m) => {
            return Ok(Outcome::Refused(format!(
                "the charm configuration is invalid: {m}"
            )))
        }
    };
    let control = (charm.control)(config.control_port).map_err(CharmError::ControlClient)?;
    let s = match control.status() {
        Ok(s) => s,
        Err(e) => return Ok(Outcome::Refused(ctl_message(&e))),
    };
    charm.coordinator_status(&config, &charm.peers()?.peers)?;
    let per_worker: Vec<String> = s
        .users_per_worker
        .iter()
        .map(|(name, users)| format!("{name}={users}"))
        .collect();
    Ok(Outcome::Done(kv(&[
        ("role", "coordinator".into()),
        ("state", s.state.to_string()),
        ("test-run-id", s.run_id.clone().unwrap_or_default()),
        ("scenario", s.scenario.clone().unwrap_or_default()),
        ("elapsed", format!("{:.0}s", s.elapsed_s)),
        ("users", format!("{}/{}", s.users_running, s.users_target)),
        ("users-per-worker", per_worker.join(", ")),
        ("workers-connected", s.workers_connected.to_string()),
        ("workers-missing", s.workers_missing.to_string()),
        ("requests", s.requests.to_string()),
        ("failures", s.failures.to_string()),
        ("requests-per-second", format!("{:.1}", s.current_rps)),
        ("mb-per-second", format!("{:.2}", s.current_mb_per_s)),
        ("reason", s.reason.clone().unwrap_or_default()),
    ])))
}

fn fetch_metrics(charm: &Charm, params: &Map<String, Value>) -> Result<Outcome, CharmError> {
    if let Some(refused) = leader_only(charm, "fetch-metrics")? {
        return Ok(refused);
    }
    let format = param_str(params, "format").unwrap_or_else(|| "summary".into());
    let run_id = match param_str(params, "run-id") {
        Some(id) => id,
        None => match latest_run(charm) {
            Some(id) => id,
            None => {
                return Ok(Outcome::Refused(
                    "no test has run yet: start one with juju run chopsticks/leader start-test"
                        .into(),
                ))
            }
        },
    };
    if run_id.contains('/') || run_id.starts_with('.') {
        return Ok(Outcome::Refused(format!(
            "run-id '{run_id}' is not a run id"
        )));
    }
    let dir = charm.paths.run_dir(&run_id);
    let record = match chopsticks::results::artifacts::read_record(&dir) {
        Ok(r) => r,
        Err(_) => {
            let known = known_runs(&charm.paths);
            return Ok(Outcome::Refused(format!(
                "there is no run '{run_id}'; known runs: {}",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        }
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let content = match format.as_str() {
        "summary" => read(chopsticks::results::artifacts::SUMMARY_JSON)
            .and_then(|t| serde_json::from_str::<Summary>(&t).ok())
            .map(|s| s.table()),
        "json" => read(chopsticks::results::artifacts::SUMMARY_JSON),
        "csv" => read(chopsticks::results::artifacts::STATS_CSV),
        other => {
            return Ok(Outcome::Refused(format!(
                "format={other} is not known; use summary, json or csv"
            )))
        }
    };
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| !n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut results = kv(&[
        ("test-run-id", run_id.clone()),
        ("state", record.state.to_string()),
        ("format", format.clone()),
    ]);
    match content {
        Some(text) => results.push((format.clone(), text)),
        None => results.push((
            "note".into(),
            format!(
                "run {run_id} ({}) has no {format} output{}; the totals below are from run.json",
                record.state,
                if record.state.is_active() {
                    " yet: it is written every few seconds once users start"
                } else {
                    ""
                }
            ),
        )),
    }
    results.extend(run_totals(&record, &format));
    let scp = format!("juju scp -- -r {}:{} .", charm.unit, dir.display());
    results.extend(kv(&[
        ("metrics-dir", dir.display().to_string()),
        ("files", files.join(", ")),
        ("scp-command", scp.clone()),
    ]));
    let report = dir.join(chopsticks::present::report::REPORT_HTML);
    results.push(if report.is_file() {
        (
            "report-command".into(),
            format!("juju scp {}:{} .", charm.unit, report.display()),
        )
    } else {
        (
            "report".into(),
            format!(
                "run {run_id} has no report.html{}",
                if record.state.is_active() {
                    " yet: it is written when the run ends"
                } else {
                    ""
                }
            ),
        )
    });
    fit_results(
        &mut results,
        &[format.as_str(), "workers", "files"],
        &format!("; the whole files are in the run directory: {scp}"),
    );
    Ok(Outcome::Done(results))
}

/// The run's totals and each worker's part, from run.json: in every format, so a lost or
/// dropped worker (and what it did before) is never hidden behind a merged table.
pub fn run_totals(
    record: &chopsticks::results::artifacts::RunRecord,
    format: &str,
) -> Vec<(String, String)> {
    let workers = if format == "json" {
        serde_json::to_string(&record.workers).unwrap_or_default()
    } else {
        record
            .workers
            .iter()
            .map(|w| {
                format!(
                    "{}: {} requests, {} failures, {} bytes, {}{}",
                    w.name,
                    w.requests,
                    w.failures,
                    w.bytes,
                    w.fate,
                    w.left_at
                        .as_deref()
                        .map(|t| format!(" (left {t})"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let lost: Vec<String> = record
        .workers
        .iter()
        .filter(|w| w.fate == "lost" || w.fate == "dropped")
        .map(|w| format!("{} ({})", w.name, w.fate))
        .collect();
    let mut out = kv(&[
        ("requests", record.requests.to_string()),
        ("failures", record.failures.to_string()),
        ("bytes", record.bytes.to_string()),
        (
            "workers",
            if workers.is_empty() {
                "none".into()
            } else {
                workers
            },
        ),
        (
            "workers-lost",
            if lost.is_empty() {
                "none".into()
            } else {
                lost.join(", ")
            },
        ),
    ]);
    if let Some(reason) = &record.reason {
        out.push(("reason".into(), reason.clone()));
    }
    if record.state == RunState::Interrupted {
        out.push((
            "partial".into(),
            "yes: the coordinator was lost mid-run; totals are what the workers had recorded when it was cut, and what they did after their last report is not counted".into(),
        ));
    }
    out
}

/// Run ids with a run.json under the state directory, newest first.
pub fn known_runs(paths: &crate::paths::Paths) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(paths.state())
        .map(|entries| {
            entries
                .flatten()
                // Real run directories only: `latest` is a symlink to one of them.
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .filter(|e| {
                    e.path()
                        .join(chopsticks::results::artifacts::RUN_JSON)
                        .is_file()
                })
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_by(|a, b| b.cmp(a));
    ids
}

fn latest_run(charm: &Charm) -> Option<String> {
    known_runs(&charm.paths).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Unit;
    use serde_json::json;

    /// A completed run's run.json as the coordinator writes it (scenario s3_small_objects):
    /// these workers, `requests` requests of 1000 bytes each, no failure.
    fn completed_record(
        run_id: &str,
        driver: chopsticks::s3_config::DriverKind,
        workers: Vec<chopsticks::results::artifacts::WorkerRecord>,
        requests: u64,
    ) -> chopsticks::results::artifacts::RunRecord {
        let (scenario, _) =
            chopsticks::load::scenario::Scenario::resolve("s3_small_objects").unwrap();
        chopsticks::results::artifacts::RunRecord {
            run_id: run_id.into(),
            engine_version: "t".into(),
            state: RunState::Completed,
            reason: None,
            created_at: "t".into(),
            started_at: None,
            ended_at: None,
            parameters: chopsticks::results::artifacts::RunParameters {
                scenario_source: "s3_small_objects".into(),
                users: 1,
                spawn_rate: 1.0,
                duration_s: None,
                iterations: None,
                expected_workers: None,
                stop_timeout_s: 30.0,
                arrival: None,
            },
            scenario,
            scenario_text: None,
            seed: 1,
            key_prefix: "p/".into(),
            target: chopsticks::s3_config::TargetInfo {
                endpoint: "http://x".into(),
                bucket: "b".into(),
                region: "r".into(),
                driver,
                driver_config: Default::default(),
                embedded: false,
                spread: Default::default(),
            },
            prepare: None,
            cleanup: None,
            workers,
            requests,
            failures: 0,
            bytes: 1000 * requests,
            buckets: Default::default(),
        }
    }

    fn act(
        u: &Unit,
        name: &str,
        params: Value,
    ) -> (Option<String>, std::collections::BTreeMap<String, String>) {
        *u.tools.params.borrow_mut() = params.as_object().cloned().unwrap_or_default();
        u.tools.results.borrow_mut().clear();
        *u.tools.failed.borrow_mut() = None;
        u.with(|c| run(c, name)).unwrap();
        (
            u.tools.failed.borrow().clone(),
            u.tools.results.borrow().clone(),
        )
    }

    fn leader_with_workers() -> Unit {
        let u = Unit::new(true);
        u.configure_s3();
        *u.tools.peers.borrow_mut() = (1..=4).map(|i| format!("chopsticks/{i}")).collect();
        u.with(|c| c.reconcile()).unwrap();
        u
    }

    #[test]
    fn start_test_passes_parameters_and_reports_the_run() {
        let u = leader_with_workers();
        let (failed, r) = act(
            &u,
            "start-test",
            json!({"users": 50, "spawn-rate": 5.0, "duration": "10m", "headless": true}),
        );
        assert_eq!(failed, None);
        assert_eq!(r["test-run-id"], "20261122T101500Z-3f9c2a");
        assert_eq!(r["users"], "50");
        assert_eq!(r["spawn-rate"], "5");
        assert_eq!(r["workers"], "4");
        assert_eq!(r["scenario-file"], "s3_large_objects");
        assert!(r["metrics-dir"].ends_with("var/lib/chopsticks/20261122T101500Z-3f9c2a"));
        let sent = u.control.started.borrow()[0].clone();
        assert_eq!(sent.expected_workers, Some(1));
        assert_eq!(sent.duration.as_deref(), Some("10m"));
        assert_eq!(r["workers-not-connected"], "none");
        assert_eq!(sent.scenario, "s3_large_objects");
        assert_eq!(
            sent.scenario_yaml.as_deref(),
            chopsticks::load::scenario::builtin("s3_large_objects")
        );
        // A second start while it runs is refused with what to do.
        let (failed, _) = act(&u, "start-test", json!({}));
        assert!(failed
            .unwrap()
            .contains("stop it first: juju run chopsticks/leader stop-test"));
    }

    #[test]
    fn start_test_relays_an_arrival_rate_and_the_coordinators_refusal() {
        let u = leader_with_workers();
        let (failed, r) = act(&u, "start-test", json!({"rate": 500}));
        assert_eq!(failed, None);
        assert_eq!(r["rate"], "500/s");
        assert!(!r.contains_key("users"), "an open-model run has no users");
        assert_eq!(u.control.started.borrow()[0].rate, Some(500.0));
        u.control.status.borrow_mut().state = RunState::Completed;
        for (params, message) in [
            (
                json!({"rate": 0}),
                "rate 0 is below the minimum of 1/h; give arrivals per second from 1/h to 1000000/s, e.g. 500/s",
            ),
            (
                json!({"rate": 5e6}),
                "rate 5000000 is above the limit of 1000000",
            ),
            (json!({"rate": "fast"}), "rate=\"fast\" is not a number"),
        ] {
            let (failed, _) = act(&u, "start-test", params.clone());
            let failed = failed.unwrap_or_default();
            assert!(failed.starts_with(message), "{params}: {failed}");
        }
        assert_eq!(u.control.started.borrow().len(), 1);
    }

    #[test]
    fn a_lost_unit_does_not_block_a_start_unless_min_workers_insists() {
        let u = leader_with_workers();
        // chopsticks/5 is a peer whose worker never connected (its machine is gone).
        u.tools.peers.borrow_mut().push("chopsticks/5".into());
        let (failed, _) = act(&u, "start-test", json!({"min-workers": 6}));
        assert_eq!(
            failed.as_deref(),
            Some("min-workers=6 but there are only 5 worker units; add units (juju add-unit chopsticks -n 1) or lower min-workers")
        );
        let (failed, _) = act(&u, "start-test", json!({"min-workers": 5}));
        let failed = failed.unwrap();
        assert!(
            failed.starts_with(
                "4 of 5 workers are connected but 5 are needed; not connected: chopsticks/5"
            ),
            "{failed}"
        );
        assert!(u.control.started.borrow().is_empty());
        let (failed, r) = act(&u, "start-test", json!({"min-workers": 4}));
        assert_eq!(failed, None);
        assert_eq!(r["workers"], "4");
        assert_eq!(r["workers-not-connected"], "chopsticks/5");
        assert_eq!(u.control.started.borrow()[0].expected_workers, Some(4));
    }

    #[test]
    fn integer_params_are_integers_and_durations_positive() {
        let u = leader_with_workers();
        for (params, message) in [
            (
                json!({"users": 1.5}),
                "users=1.5 is out of range: give a whole number from 1 to 1000000",
            ),
            // Bounds the request can carry are the coordinator's, relayed verbatim.
            (
                json!({"users": 0}),
                "users 0 is below the minimum of 1; give a whole number of users from 1 to 1000000",
            ),
            (
                json!({"users": 2_000_000}),
                "users 2000000 is above the limit of 1000000",
            ),
            // Past what the request can carry: the same bound, the same words, from the charm.
            (
                json!({"users": 5_000_000_000u64}),
                "users 5000000000 is above the limit of 1000000",
            ),
            (json!({"users": -3}), "users -3 is below the minimum of 1"),
            (
                json!({"spawn-rate": -1}),
                "spawn_rate -1 is below the minimum of 0.001",
            ),
            (
                json!({"spawn-rate": "fast"}),
                "spawn-rate=\"fast\" is not a number",
            ),
            (json!({"min-workers": -1}), "min-workers=-1 is out of range"),
            (
                json!({"duration": "0s"}),
                "duration=0s: the duration must be positive",
            ),
        ] {
            let (failed, _) = act(&u, "start-test", params.clone());
            let failed = failed.unwrap_or_default();
            assert!(failed.starts_with(message), "{params}: {failed}");
        }
        assert!(u.control.started.borrow().is_empty());
    }

    #[test]
    fn headless_false_switches_to_the_web_ui_coordinator() {
        let u = leader_with_workers();
        assert!(u.services.is_active_unit(crate::paths::LEADER_UNIT));
        let (failed, r) = act(&u, "start-test", json!({"headless": false}));
        assert_eq!(failed, None);
        assert_eq!(r["web-ui"], "http://10.1.2.3:8089/");
        let token_id = u.tools.app.borrow()[crate::reconcile::KEY_TOKEN].clone();
        assert!(token_id.starts_with("secret:"), "{token_id}");
        assert!(
            r["web-ui-login"].ends_with(&format!("juju show-secret --reveal {token_id}")),
            "{}",
            r["web-ui-login"]
        );
        assert!(u.services.is_active_unit(crate::paths::LEADER_WEBUI_UNIT));
        assert!(!u.services.is_active_unit(crate::paths::LEADER_UNIT));
        assert!(u.tools.ports.borrow().contains(&8089));
        // Back to headless once the test is over.
        u.control.status.borrow_mut().state = RunState::Completed;
        let (failed, r) = act(&u, "start-test", json!({}));
        assert_eq!(failed, None);
        assert!(!r.contains_key("web-ui"));
        assert!(u.services.is_active_unit(crate::paths::LEADER_UNIT));
        assert!(!u.tools.ports.borrow().contains(&8089));
    }

    #[test]
    fn start_test_refusals_say_what_to_do() {
        let worker = Unit::new(false);
        let (failed, _) = act(&worker, "start-test", json!({}));
        assert!(failed.unwrap().contains("runs on the leader unit"));

        let unconfigured = Unit::new(true);
        *unconfigured.tools.peers.borrow_mut() = vec!["chopsticks/1".into()];
        let (failed, _) = act(&unconfigured, "start-test", json!({}));
        assert!(failed
            .unwrap()
            .starts_with("S3 is not configured: juju config chopsticks s3-endpoint="));

        let alone = Unit::new(true);
        alone.configure_s3();
        let (failed, _) = act(&alone, "start-test", json!({}));
        assert!(failed.unwrap().contains("juju add-unit"));

        let u = leader_with_workers();
        let (failed, _) = act(&u, "start-test", json!({"duration": "soon"}));
        assert!(failed.unwrap().contains("1h30m"));
        let (failed, _) = act(&u, "start-test", json!({"scenario-file": "nope"}));
        assert!(failed.unwrap().contains("no built-in scenario and no file"));
        assert!(u.control.started.borrow().is_empty());
    }

    #[test]
    fn stop_test_reports_the_final_state_or_that_nothing_runs() {
        let u = leader_with_workers();
        let (failed, _) = act(&u, "stop-test", json!({}));
        assert_eq!(failed.as_deref(), Some("no test is running"));
        act(&u, "start-test", json!({}));
        let (failed, r) = act(&u, "stop-test", json!({}));
        assert_eq!(failed, None);
        assert_eq!(r["test-run-id"], "20261122T101500Z-3f9c2a");
        assert_eq!(r["state"], "stopped");
    }

    #[test]
    fn test_status_on_leader_and_worker() {
        let u = leader_with_workers();
        let (failed, r) = act(&u, "test-status", json!({}));
        assert_eq!(failed, None);
        assert_eq!(r["role"], "coordinator");
        assert_eq!(r["state"], "idle");
        assert_eq!(r["workers-connected"], "4");
        let w = Unit::new(false);
        let (_, r) = act(&w, "test-status", json!({}));
        assert_eq!(r["role"], "worker");
        assert_eq!(r["connection"], "not running");
    }

    #[test]
    fn fetch_metrics_in_every_format() {
        let u = leader_with_workers();
        let (failed, _) = act(&u, "fetch-metrics", json!({"format": "summary"}));
        assert!(failed.unwrap().contains("no test has run yet"));
        // A real run directory, written by the engine's own artifact code.
        let dir = u.paths().run_dir("20261122T101500Z-3f9c2a");
        let rec = chopsticks::results::artifacts::RunDir::create(&dir).unwrap();
        let stats = chopsticks::load::stats::Recorder::new(vec!["upload".into()]);
        stats.record(
            0,
            0,
            &chopsticks::load::stats::Outcome::Done {
                latency: std::time::Duration::from_millis(5),
                ttfb: None,
                bytes: 1000,
                error: None,
                waited: None,
            },
        );
        let summary = chopsticks::results::summary::Summary::new(
            "20261122T101500Z-3f9c2a",
            RunState::Completed,
            "s3_small_objects",
            1,
            1.0,
            &stats.take(),
            &[("upload".into(), chopsticks::load::scenario::OpKind::Put)],
        );
        rec.write_summary(&summary).unwrap();
        let record = completed_record(
            "20261122T101500Z-3f9c2a",
            chopsticks::s3_config::DriverKind::AwsSdk,
            vec![
                chopsticks::results::artifacts::WorkerRecord {
                    id: 1,
                    name: "chopsticks-1".into(),
                    requests: 1,
                    bytes: 1000,
                    fate: "finished".into(),
                    ..Default::default()
                },
                chopsticks::results::artifacts::WorkerRecord {
                    id: 2,
                    name: "chopsticks-2".into(),
                    fate: "lost".into(),
                    left_at: Some("2026-11-22T10:16:00Z".into()),
                    ..Default::default()
                },
            ],
            1,
        );
        rec.write_json(chopsticks::results::artifacts::RUN_JSON, &record)
            .unwrap();
        // The engine keeps a `latest` link beside the runs; it is not a run id.
        rec.mark_latest();

        let (failed, r) = act(&u, "fetch-metrics", json!({"format": "summary"}));
        assert_eq!(failed, None);
        assert!(r["summary"].contains("upload") && r["summary"].contains("Aggregated"));
        assert_eq!(r["state"], "completed");
        assert!(r["files"].contains("summary.json") && r["files"].contains("stats.csv"));
        assert!(r["scp-command"].starts_with("juju scp -- -r chopsticks/0:"));
        assert_eq!(
            r["workers"],
            "chopsticks-1: 1 requests, 0 failures, 1000 bytes, finished\nchopsticks-2: 0 requests, 0 failures, 0 bytes, lost (left 2026-11-22T10:16:00Z)"
        );
        assert_eq!(r["workers-lost"], "chopsticks-2 (lost)");
        assert_eq!(r["requests"], "1");
        let (_, r) = act(&u, "fetch-metrics", json!({"format": "json"}));
        let parsed: Summary = serde_json::from_str(&r["json"]).unwrap();
        assert_eq!(parsed.total.requests, 1);
        let workers: Vec<chopsticks::results::artifacts::WorkerRecord> =
            serde_json::from_str(&r["workers"]).unwrap();
        assert_eq!(workers.len(), 2);
        assert_eq!(r["workers-lost"], "chopsticks-2 (lost)");
        let (_, r) = act(
            &u,
            "fetch-metrics",
            json!({"format": "csv", "run-id": "20261122T101500Z-3f9c2a"}),
        );
        assert!(r["csv"].starts_with("Type,Name,Request Count"));
        assert!(r["workers"].contains("chopsticks-2: 0 requests"));
        let (failed, _) = act(&u, "fetch-metrics", json!({"run-id": "nope"}));
        assert!(failed
            .unwrap()
            .contains("known runs: 20261122T101500Z-3f9c2a"));
        let worker = Unit::new(false);
        let (failed, _) = act(&worker, "fetch-metrics", json!({}));
        assert!(failed.unwrap().contains("leader"));
    }

    /// A run directory written by the engine's own artifact code, with `tasks` tasks and
    /// `workers` workers.
    fn write_run(u: &Unit, run_id: &str, tasks: usize, workers: usize) {
        let dir = u.paths().run_dir(run_id);
        let rec = chopsticks::results::artifacts::RunDir::create(&dir).unwrap();
        let names: Vec<String> = (0..tasks).map(|i| format!("task-number-{i:05}")).collect();
        let stats = chopsticks::load::stats::Recorder::new(names.clone());
        for i in 0..tasks {
            stats.record(
                0,
                i,
                &chopsticks::load::stats::Outcome::Done {
                    latency: std::time::Duration::from_millis(5),
                    ttfb: None,
                    bytes: 1000,
                    error: None,
                    waited: None,
                },
            );
        }
        let ops: Vec<(String, chopsticks::load::scenario::OpKind)> = names
            .iter()
            .map(|n| (n.clone(), chopsticks::load::scenario::OpKind::Put))
            .collect();
        let summary = chopsticks::results::summary::Summary::new(
            run_id,
            RunState::Completed,
            "s3_small_objects",
            1,
            1.0,
            &stats.take(),
            &ops,
        );
        rec.write_summary(&summary).unwrap();
        let record = completed_record(
            run_id,
            chopsticks::s3_config::DriverKind::Lean,
            (1..=workers)
                .map(|i| chopsticks::results::artifacts::WorkerRecord {
                    id: i as u32,
                    name: format!("chopsticks-{i}"),
                    requests: 1,
                    bytes: 1000,
                    fate: "finished".into(),
                    ..Default::default()
                })
                .collect(),
            tasks as u64,
        );
        rec.write_json(chopsticks::results::artifacts::RUN_JSON, &record)
            .unwrap();
    }

    fn result_size(r: &std::collections::BTreeMap<String, String>) -> usize {
        r.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    #[test]
    fn fetch_metrics_stays_under_jujus_limit_whatever_the_number_of_tasks() {
        let u = leader_with_workers();
        let run = "20261122T101500Z-aaaaaa";
        write_run(&u, run, 3000, 2500);
        for format in ["summary", "json", "csv"] {
            let (failed, r) = act(&u, "fetch-metrics", json!({"format": format}));
            assert_eq!(failed, None);
            let size = result_size(&r);
            assert!(size < RESULT_BUDGET, "{format}: {size} bytes");
            let note = &r["truncated"];
            assert!(note.contains(&format!("{format}: the first ")), "{note}");
            assert!(note.contains("workers: the first "), "{note}");
            assert!(note.contains("juju scp -- -r chopsticks/0:"), "{note}");
            // What is shown is whole lines of the real output.
            let whole = std::fs::read_to_string(u.paths().run_dir(run).join(match format {
                "json" => "summary.json",
                "csv" => "stats.csv",
                _ => "run.json",
            }))
            .unwrap();
            assert!(
                r[format].len() > 1000,
                "{format}: {} bytes",
                r[format].len()
            );
            if format != "summary" {
                assert!(
                    whole.starts_with(&r[format]),
                    "{format}: a prefix of the file"
                );
            }
            if format != "json" {
                assert!(r["workers"].starts_with("chopsticks-1: 1 requests"));
                assert!(r["workers"].lines().count() > 100);
            }
            assert_eq!(r["requests"], "3000");
        }
        // No report.html was rendered for this run: no command for a file that is not there.
        let (_, r) = act(&u, "fetch-metrics", json!({}));
        assert_eq!(r["report"], format!("run {run} has no report.html"));
        assert!(!r.contains_key("report-command"));
        let dir = u.paths().run_dir(run);
        std::fs::write(dir.join("report.html"), "<html></html>").unwrap();
        let (_, r) = act(&u, "fetch-metrics", json!({}));
        assert_eq!(
            r["report-command"],
            format!("juju scp chopsticks/0:{}/report.html .", dir.display())
        );
        // A small run is not cut.
        let small = "20261122T101500Z-bbbbbb";
        write_run(&u, small, 3, 2);
        let (_, r) = act(&u, "fetch-metrics", json!({"run-id": small}));
        assert!(!r.contains_key("truncated"), "{:?}", r.get("truncated"));
        assert_eq!(
            r["summary"]
                .lines()
                .filter(|l| l.contains("task-number-"))
                .count(),
            3
        );
    }

    const OWN: &str = "name: own\ndescription: Own mix\nusers:\n  - name: u\n    tasks:\n      - {op: put, size: 1KiB}\n";

    #[test]
    fn start_test_takes_the_scenario_as_text_or_by_a_configured_name() {
        let u = leader_with_workers();
        let (failed, r) = act(&u, "start-test", json!({"scenario": OWN}));
        assert_eq!(failed, None);
        assert_eq!(r["scenario-file"], crate::scenarios::INLINE_LABEL);
        let sent = u.control.started.borrow()[0].clone();
        assert_eq!(sent.scenario_yaml.as_deref(), Some(OWN));
        assert_eq!(sent.scenario, crate::scenarios::INLINE_LABEL);
        u.control.status.borrow_mut().state = RunState::Completed;

        // A bad scenario is refused with the engine's validation message; nothing is sent.
        let bad = "name: bad\nusers: []\n";
        let engine = chopsticks::load::scenario::Scenario::from_yaml(
            bad,
            chopsticks::load::scenario::Source(crate::scenarios::INLINE_LABEL.into()),
        )
        .unwrap_err()
        .to_string();
        let (failed, _) = act(&u, "start-test", json!({"scenario": bad}));
        assert_eq!(failed, Some(format!("scenario: {engine}")));
        let (failed, _) = act(
            &u,
            "start-test",
            json!({"scenario": OWN, "scenario-file": "s3_small_objects"}),
        );
        assert!(failed.unwrap().contains("not both"));
        assert_eq!(u.control.started.borrow().len(), 1);

        // The scenarios option: its names are accepted by scenario-file.
        let option = format!("nightly: |\n  {}\n", OWN.trim_end().replace('\n', "\n  "));
        u.configure(&[("scenarios", json!(option))]);
        let (failed, r) = act(&u, "start-test", json!({"scenario-file": "nightly"}));
        assert_eq!(failed, None);
        assert_eq!(r["scenario-file"], "nightly");
        let sent = u.control.started.borrow()[1].clone();
        assert_eq!(sent.scenario, "scenarios option: nightly");
        assert_eq!(
            sent.scenario_yaml.as_deref().map(str::trim_end),
            Some(OWN.trim_end())
        );

        // list-scenarios shows built-ins and configured ones with their descriptions.
        let (failed, r) = act(&u, "list-scenarios", json!({}));
        assert_eq!(failed, None);
        let lines: Vec<&str> = r["scenarios"].lines().collect();
        let builtins = chopsticks::load::scenario::builtin_names().len();
        assert_eq!(lines.len(), builtins + 1);
        assert_eq!(r["count"], (builtins + 1).to_string());
        assert_eq!(r["invalid"], "0");
        assert!(
            lines[0].starts_with("s3_") && lines[0].contains("(built-in): "),
            "{}",
            lines[0]
        );
        assert_eq!(lines[builtins], "nightly (scenarios option): Own mix");

        // A broken option is named with the fix, by both actions.
        u.configure(&[("scenarios", json!("[not, a, map]"))]);
        let (failed, _) = act(&u, "list-scenarios", json!({}));
        assert!(failed
            .unwrap()
            .starts_with("the scenarios option is not a YAML map"));
        let worker = Unit::new(false);
        let (failed, _) = act(&worker, "list-scenarios", json!({}));
        assert!(failed.unwrap().contains("runs on the leader unit"));
    }

    #[test]
    fn the_web_ui_port_is_open_only_while_a_run_goes() {
        let u = leader_with_workers();
        let (failed, _) = act(&u, "start-test", json!({"headless": false}));
        assert_eq!(failed, None);
        assert!(u.tools.ports.borrow().contains(&8089));
        // A hook during the run keeps it open.
        u.control.status.borrow_mut().state = RunState::Running;
        u.with(|c| c.reconcile()).unwrap();
        assert!(u.tools.ports.borrow().contains(&8089));
        // The run ends: the next hook closes it; the coordinator port stays open.
        u.control.status.borrow_mut().state = RunState::Completed;
        u.with(|c| c.reconcile()).unwrap();
        assert!(!u.tools.ports.borrow().contains(&8089));
        assert!(u.tools.ports.borrow().contains(&5557));
    }
}
