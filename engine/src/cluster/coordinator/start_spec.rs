//! A start request parsed once into typed values: the scenario resolved to its content and
//! compiled, durations as `Duration`, counts as integers. The coordinator makes one as soon as
//! a request arrives; the wait for workers, the run, run.json and every worker use this value,
//! never the request's text again.

use crate::control::{ControlError, StartRequest};
use crate::limits;
use crate::load::scenario::{ArrivalPlan, ResolvedScenario, UserStage};
use std::time::Duration;

/// How long a start waits for its workers when the request does not say.
const DEFAULT_WAIT_WORKERS: Duration = Duration::from_secs(60);
/// In-flight requests' grace at the end when the request does not say.
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A checked start request.
#[derive(Debug, Clone, PartialEq)]
pub struct StartSpec {
    /// The scenario's text, hash and origin, and its compiled form.
    pub scenario: ResolvedScenario,
    /// What the operator named (built-in, path, seed path or label of text sent), for run.json.
    pub scenario_source: String,
    /// Closed-model users across all workers; 0 in an open-model run (`arrival` is set).
    pub users: u32,
    /// Open-model load: arrivals at a rate instead of users (the scenario's `load.arrival`, or
    /// the request's `rate` in place of its rate).
    pub arrival: Option<ArrivalPlan>,
    /// Closed-model users stage by stage (the scenario's `load.users.stages`, step and hold
    /// from the run's clock origin); empty = `users` throughout. `users` is the first stage's.
    pub user_stages: Vec<UserStage>,
    /// Users started per second across all workers (finite, within `limits::SPAWN_RATE`).
    pub spawn_rate: f64,
    /// How long load runs from the first user; `None` = until stopped or iterations are done.
    pub duration: Option<Duration>,
    /// Tasks (or sequence passes) per user; `None` = unlimited.
    pub iterations: Option<u64>,
    /// Workers that must be connected before the run starts (at least 1).
    pub expected_workers: u32,
    /// Whether the request named `expected_workers` (run.json records what was asked).
    pub expected_workers_asked: bool,
    /// How long to wait for them.
    pub wait_workers: Duration,
    /// Grace for in-flight requests after a stop.
    pub stop_timeout: Duration,
    /// The run id asked for (valid as a key prefix); `None` = a fresh time-sortable id.
    pub run_id: Option<String>,
    /// Seeds contents and random choices; `None` = random.
    pub seed: Option<u64>,
    /// A saturation sweep: the run steps `arrival`'s rate through the plan's steps.
    pub sweep: Option<crate::load::sweep::SweepPlan>,
    /// `--autoterm`: the run stops once its completed rate has been stable this long.
    pub autoterm: Option<crate::load::stability::Stability>,
}

/// A checked sweep plan, autoterm setting, and the arrival plan the run starts at.
type Sweeping = (
    Option<crate::load::sweep::SweepPlan>,
    Option<crate::load::stability::Stability>,
    Option<ArrivalPlan>,
);

/// The sweep and autoterm settings of a request, checked: the sweep's plan (scenario block
/// with the request's fields over it) and the arrival plan it starts at.
fn sweeping(
    request: &StartRequest,
    scenario: &crate::load::scenario::Scenario,
    arrival: Option<ArrivalPlan>,
) -> Result<Sweeping, ControlError> {
    use crate::load::sweep::{SweepBlock, SweepPlan};
    let bad = |e: &dyn std::fmt::Display| ControlError::BadRequest(e.to_string());
    let o = &request.sweeping;
    let autoterm = match &o.autoterm {
        Some(s) => {
            let window = match &s.window {
                Some(w) => crate::duration::parse_bounded(w, "autoterm window", limits::RUN_TIME)
                    .map_err(|e| bad(&e))?,
                None => crate::load::stability::DEFAULT_WINDOW,
            };
            let cv =
                s.cv.map_or(crate::load::stability::DEFAULT_CV * 100.0, |p| p.0);
            Some(
                crate::load::stability::Stability::new("autoterm", window, cv)
                    .map_err(|e| bad(&e))?,
            )
        }
        None => None,
    };
    if !o.sweep {
        if o.sweep_config.is_some() {
            return Err(ControlError::BadRequest(
                "sweep_config is given without sweep: true; set sweep: true to run the sweep, or drop sweep_config".into(),
            ));
        }
        return Ok((None, autoterm, arrival));
    }
    if autoterm.is_some() {
        return Err(ControlError::BadRequest(
            "autoterm is for single-rate runs; a sweep already holds each step until it is stable: drop autoterm".into(),
        ));
    }
    if request.rate.is_some() {
        return Err(ControlError::BadRequest(
            "rate is given with sweep: the sweep sets the rate step by step (sweep.from, sweep.to); drop rate".into(),
        ));
    }
    let block = scenario
        .sweep
        .as_deref()
        .cloned()
        .unwrap_or_default()
        .overlaid(o.sweep_config.as_ref().unwrap_or(&SweepBlock::default()));
    let plan = SweepPlan::from_block(&block).map_err(|e| bad(&e))?;
    let start = plan.rates[0];
    let arrival = match arrival {
        Some(a) if !a.stages.is_empty() => {
            return Err(ControlError::BadRequest(
                "load.arrival.stages is given with sweep: the sweep sets the rate step by step (sweep.from, sweep.to); drop the stages or the sweep".into(),
            ))
        }
        Some(a) => ArrivalPlan { rate: start, ..a },
        None => ArrivalPlan {
            rate: start,
            poisson: false,
            max_in_flight: crate::load::scenario::DEFAULT_MAX_IN_FLIGHT,
            max_connections: None,
            stages: Vec::new(),
        },
    };
    Ok((Some(plan), None, Some(arrival)))
}

impl StartSpec {
    /// Checks every number against `crate::limits` (the checks the CLI makes too), then reads
    /// and compiles the scenario once: from `scenario_yaml` when the caller sent text, else
    /// from what `scenario` names on this machine.
    pub fn from_request(request: &StartRequest) -> Result<StartSpec, ControlError> {
        request.check()?;
        let bad = |e: &dyn std::fmt::Display| ControlError::BadRequest(e.to_string());
        let limit = |e: limits::LimitError| ControlError::BadRequest(e.to_string());
        let scenario = match &request.scenario_yaml {
            Some(text) => ResolvedScenario::from_text(text.clone(), request.scenario.clone()),
            None => ResolvedScenario::locate(&request.scenario),
        }
        .map_err(|e| bad(&e))?;
        let asked_duration = match &request.duration {
            Some(d) => Some(crate::duration::parse(d).map_err(|e| bad(&e))?),
            None => None,
        };
        let wait_workers = match request.wait_workers_s {
            Some(s) => limits::WAIT_WORKERS
                .secs("wait_workers_s", s)
                .map_err(limit)?,
            None => DEFAULT_WAIT_WORKERS,
        };
        let stop_timeout = match request.stop_timeout_s {
            Some(s) => limits::STOP_TIMEOUT
                .secs("stop_timeout_s", s)
                .map_err(limit)?,
            None => DEFAULT_STOP_TIMEOUT,
        };
        if let Some(id) = &request.run_id {
            super::key_prefix(id).map_err(|e| bad(&e))?;
        }
        let load = scenario.scenario.load.as_deref();
        let user_stages = match load {
            Some(l) => l.user_stages().map_err(|e| bad(&e))?,
            None => Vec::new(),
        };
        if !user_stages.is_empty() && request.rate.is_some() {
            return Err(ControlError::BadRequest(
                "rate asks for arrivals, but the scenario's load.users.stages runs closed-model users; drop rate, or use a scenario with load.arrival".into(),
            ));
        }
        let arrival = ArrivalPlan::from_load(load, request.rate).map_err(|e| bad(&e))?;
        let (sweep, autoterm, arrival) = sweeping(request, &scenario.scenario, arrival)?;
        if sweep.is_some() && !user_stages.is_empty() {
            return Err(ControlError::BadRequest(
                "load.users.stages is given with sweep: a sweep steps an arrival rate; drop the users stages or the sweep".into(),
            ));
        }
        let stages_length = match (&arrival, user_stages.is_empty()) {
            (Some(a), _) => a.stages_length(),
            (None, false) => Some(crate::load::scenario::stages_length(&user_stages)),
            (None, true) => None,
        };
        if stages_length.is_some() && autoterm.is_some() {
            return Err(ControlError::BadRequest(
                "autoterm is for single-rate runs, and the scenario's load stages change the load over time (autoterm would end the run in its first stage); drop autoterm or the stages"
                    .into(),
            ));
        }
        if stages_length.is_some() && request.iterations.is_some() {
            return Err(ControlError::BadRequest(
                "iterations: the scenario's load stages set the load over time; drop iterations"
                    .into(),
            ));
        }
        // The stages set the run's length; a duration given as well must say the same.
        let duration = match (stages_length, asked_duration) {
            (Some(stages), Some(asked)) if stages != asked => {
                return Err(ControlError::BadRequest(format!(
                    "duration {} differs from the {} the scenario's load stages last; leave the duration out (the stages set it) or give {}",
                    crate::duration::format(asked),
                    crate::duration::format(stages),
                    crate::duration::format(stages),
                )))
            }
            (Some(stages), _) => Some(stages),
            (None, asked) => asked,
        };
        let users = match (&arrival, user_stages.first()) {
            (Some(_), _) => 0,
            (None, Some(first)) => first.users,
            (None, None) => request.users,
        };
        Ok(StartSpec {
            scenario,
            scenario_source: request.scenario.clone(),
            users,
            user_stages,
            arrival,
            spawn_rate: request.spawn_rate,
            duration,
            iterations: request.iterations,
            expected_workers: request.expected_workers.unwrap_or(1).max(1),
            expected_workers_asked: request.expected_workers.is_some(),
            wait_workers,
            stop_timeout,
            run_id: request.run_id.clone(),
            seed: request.seed,
            sweep,
            autoterm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scenario: &str) -> StartRequest {
        StartRequest {
            scenario: scenario.into(),
            scenario_yaml: None,
            users: 10,
            spawn_rate: 5.0,
            duration: Some("1m30s".into()),
            iterations: None,
            expected_workers: None,
            wait_workers_s: None,
            run_id: None,
            seed: None,
            stop_timeout_s: Some(2.5),
            rate: None,
            sweeping: Default::default(),
        }
    }

    #[test]
    fn a_request_becomes_typed_values_once() {
        let spec = StartSpec::from_request(&request("s3_small_objects")).unwrap();
        assert_eq!(spec.duration, Some(Duration::from_secs(90)));
        assert_eq!(spec.stop_timeout, Duration::from_millis(2500));
        assert_eq!(spec.wait_workers, DEFAULT_WAIT_WORKERS);
        assert_eq!(
            (spec.expected_workers, spec.expected_workers_asked),
            (1, false)
        );
        assert_eq!(spec.scenario.text.origin, "built-in s3_small_objects");
        assert_eq!(spec.scenario.scenario.name, "s3_small_objects");
    }

    #[test]
    fn text_sent_by_the_caller_is_compiled_and_labelled_with_its_origin() {
        let mut r = request("mine.yaml (charm scenario directory)");
        r.scenario_yaml = Some(
            crate::load::scenario::builtin("s3_read_heavy")
                .unwrap()
                .to_string(),
        );
        let spec = StartSpec::from_request(&r).unwrap();
        assert_eq!(
            spec.scenario.text.origin,
            "mine.yaml (charm scenario directory)"
        );
        assert_eq!(spec.scenario.scenario.name, "s3_read_heavy");
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let mut r = request("no_such_scenario");
        let e = StartSpec::from_request(&r).unwrap_err().to_string();
        assert!(e.contains("no_such_scenario"), "{e}");
        r = request("s3_small_objects");
        r.wait_workers_s = Some(1e20);
        let e = StartSpec::from_request(&r).unwrap_err().to_string();
        assert!(e.contains("wait_workers_s"), "{e}");
        r = request("s3_small_objects");
        r.run_id = Some("../x".into());
        assert!(StartSpec::from_request(&r).is_err());
    }
}
