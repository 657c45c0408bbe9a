//! The scenario's `load:` block: open-model load (arrivals at a rate) instead of closed-model
//! users.
//!
//! ```yaml
//! load:
//!   arrival: {rate: 500/s}              # or {rate: 500/s, poisson: true}
//!   max_in_flight: 2000                 # requests outstanding at once, across the run
//!   max_connections: 64                 # optional: connections they share, across the run
//! ```
//!
//! or stages, of arrivals or of closed-model users (see [`super::stages`]: step and hold):
//!
//! ```yaml
//! load: {arrival: {stages: [{rate: 100/s, for: 1m}, {rate: 0/s, for: 30s}]}, max_in_flight: 100}
//! load: {users: {stages: [{users: 50, for: 2m}, {users: 200, for: 5m}, {users: 0, for: 1m}]}}
//! ```
//!
//! The YAML keeps what was written (a rate is text such as `500/s`, or a bare number), so a
//! scenario read back from run.json is the one written; [`Load::problems`] checks it, and
//! [`ArrivalPlan::from_load`] turns a checked block into typed values once.

use super::stages::{self, RateStage, RateStageText, StageError, UserLoad, UserStage};
use serde::{Deserialize, Serialize};

/// The `load:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Arrivals at a rate (the open model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<Arrival>,
    /// Requests outstanding at once across the run; an arrival that finds this many is
    /// dropped. Signed so that a negative value is named, not a YAML type error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<i64>,
    /// Connections the requests in flight share, across the run; a request beyond them waits
    /// in the client for a free one (its wait is in `latency_ms`, not in `service_ms`).
    /// Unset: each request in flight may open one. Signed like `max_in_flight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    /// Closed-model users in stages (instead of arrivals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<UserLoad>,
}

/// `arrival: {rate: 500/s, poisson: true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// Arrivals per second, as written: `500/s`, `30/m`, `2/h` or a bare number (per second).
    /// Optional so that an arrival with neither a rate nor stages is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateText>,
    /// Exponential inter-arrival times (a Poisson process) instead of evenly spaced ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub poisson: bool,
    /// The rate stage by stage, instead of `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<RateStageText>>,
}

/// A rate as written in YAML: a number (per second) or text such as `500/s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RateText {
    Number(f64),
    Text(String),
}

/// Why a rate cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    #[error("'{0}' is not a rate; {fix}", fix = RATE_FIX)]
    NotARate(String),
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
    #[error(transparent)]
    Stages(#[from] StageError),
}

const RATE_FIX: &str = "write arrivals per second as e.g. 500/s (or 30/m, 2/h)";

/// Parses `500/s`, `30/m`, `2/h`, `500` (per second) into arrivals per second, checked against
/// [`crate::limits::ARRIVAL_RATE`] under the name `field`.
pub fn parse_rate(field: &str, text: &str) -> Result<f64, RateError> {
    parse_rate_within(field, text, crate::limits::ARRIVAL_RATE)
}

/// Parses like [`parse_rate`], checked against `bound`.
pub fn parse_rate_within(
    field: &str,
    text: &str,
    bound: crate::limits::Rate,
) -> Result<f64, RateError> {
    let t = text.trim();
    let (number, per) = match t.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "second" => 1.0,
                "m" | "min" | "minute" => 60.0,
                "h" | "hour" => 3600.0,
                _ => return Err(RateError::NotARate(shown(t))),
            };
            (n.trim(), per)
        }
        None => (t, 1.0),
    };
    let value: f64 = number.parse().map_err(|_| RateError::NotARate(shown(t)))?;
    Ok(bound.check(field, value / per)?)
}

/// Text from an operator in a message: short, one line.
fn shown(text: &str) -> String {
    let one_line: String = text.chars().filter(|c| !c.is_control()).take(32).collect();
    one_line
}

impl RateText {
    /// Arrivals per second.
    pub fn per_second(&self, field: &str) -> Result<f64, RateError> {
        self.per_second_within(field, crate::limits::ARRIVAL_RATE)
    }

    /// Arrivals per second, checked against `bound`.
    pub fn per_second_within(
        &self,
        field: &str,
        bound: crate::limits::Rate,
    ) -> Result<f64, RateError> {
        match self {
            RateText::Number(v) => Ok(bound.check(field, *v)?),
            RateText::Text(t) => parse_rate_within(field, t, bound),
        }
    }
}

impl Load {
    /// What is wrong with the block: (field, message, fix).
    pub fn problems(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let stage_problem = |e: StageError| (e.field, e.message, e.fix);
        if let (Some(_), Some(_)) = (&self.arrival, &self.users) {
            out.push((
                "load.users".into(),
                "a load block has either arrival or users stages, not both".into(),
                "remove one, e.g. keep arrival: {rate: 100/s} for the open model".into(),
            ));
        } else if let Some(users) = &self.users {
            if let Err(e) = stages::check_user_stages(users.stages.as_deref()) {
                out.push(stage_problem(e));
            }
            if self.max_in_flight.is_some() {
                out.push((
                    "load.max_in_flight".into(),
                    "max_in_flight bounds arrivals, and users stages have none".into(),
                    "remove it, or use arrival: {stages: [...]} with e.g. max_in_flight: 100"
                        .into(),
                ));
            }
            if self.max_connections.is_some() {
                out.push((
                    "load.max_connections".into(),
                    "max_connections bounds the connections of arrivals, and users stages have none (each user keeps its own)".into(),
                    "remove it, or use arrival: {stages: [...]} with e.g. max_connections: 64"
                        .into(),
                ));
            }
            return out;
        }
        if let Some(arrival) = &self.arrival {
            match (&arrival.rate, &arrival.stages) {
                (Some(rate), None) => {
                    if let Err(e) = rate.per_second("load.arrival.rate") {
                        let (message, fix) = match &e {
                            RateError::NotARate(t) => {
                                (format!("'{t}' is not a rate"), RATE_FIX.into())
                            }
                            RateError::Limit(l) => (l.problem(), l.fix().to_string()),
                            RateError::Stages(s) => (s.message.clone(), s.fix.clone()),
                        };
                        out.push(("load.arrival.rate".into(), message, fix));
                    }
                }
                (None, Some(s)) => {
                    if let Err(e) = stages::check_rate_stages(s) {
                        out.push(stage_problem(e));
                    }
                }
                (Some(_), Some(_)) => out.push((
                    "load.arrival.stages".into(),
                    "an arrival has a rate or stages, not both".into(),
                    "remove one, e.g. arrival: {stages: [{rate: 100/s, for: 1m}]}".into(),
                )),
                (None, None) => out.push((
                    "load.arrival.rate".into(),
                    "missing".into(),
                    "give a rate or stages, e.g. arrival: {rate: 100/s}".into(),
                )),
            }
        } else {
            out.push((
                "load.arrival".into(),
                "a load block without arrival offers no load".into(),
                "add e.g. arrival: {rate: 100/s} or users: {stages: [{users: 10, for: 1m}]}, or remove the load block for closed-model users"
                    .into(),
            ));
        }
        if let Some(n) = self.max_in_flight {
            if let Err(e) = crate::limits::MAX_IN_FLIGHT.check_signed("load.max_in_flight", n) {
                out.push(("load.max_in_flight".into(), e.problem(), e.fix().into()));
            }
        }
        if let Some(n) = self.max_connections {
            if let Err(e) = crate::limits::MAX_CONNECTIONS.check_signed("load.max_connections", n) {
                out.push(("load.max_connections".into(), e.problem(), e.fix().into()));
            }
        }
        out
    }

    /// The checked users stages (empty when the load has none).
    pub fn user_stages(&self) -> Result<Vec<UserStage>, StageError> {
        match &self.users {
            Some(u) => stages::check_user_stages(u.stages.as_deref()),
            None => Ok(Vec::new()),
        }
    }
}

/// Requests outstanding at once when the scenario does not say.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 1000;

/// Open-model load as a run executes it: typed and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrivalPlan {
    /// Arrivals per second across all workers; with `stages`, the highest stage's rate.
    pub rate: f64,
    /// Exponential inter-arrival times.
    pub poisson: bool,
    /// Requests outstanding at once across all workers.
    pub max_in_flight: u32,
    /// Connections the requests in flight share across all workers; `None`: one per request
    /// in flight, opened as needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// The rate stage by stage from the run's clock origin (step and hold); empty = `rate`
    /// throughout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<RateStage>,
}

impl ArrivalPlan {
    /// How long the stages last; `None` without stages.
    pub fn stages_length(&self) -> Option<std::time::Duration> {
        (!self.stages.is_empty())
            .then(|| stages::total_length(self.stages.iter().map(|s| s.for_us)))
    }
}

impl ArrivalPlan {
    /// The plan of a validated `load` block, with `rate_override` (a checked `--rate`) in place
    /// of the scenario's rate. `None` when there is no arrival (closed-model users) and no
    /// override.
    pub fn from_load(
        load: Option<&Load>,
        rate_override: Option<f64>,
    ) -> Result<Option<ArrivalPlan>, RateError> {
        let arrival = load.and_then(|l| l.arrival.as_ref());
        let (rate, stages) = match (rate_override, arrival) {
            (Some(r), _) => (crate::limits::ARRIVAL_RATE.check("rate", r)?, Vec::new()),
            (None, Some(a)) => match (&a.rate, &a.stages) {
                (_, Some(s)) => {
                    let stages = stages::check_rate_stages(s)?;
                    let peak = stages.iter().map(|s| s.rate).fold(0.0, f64::max);
                    (peak, stages)
                }
                (Some(r), None) => (r.per_second("load.arrival.rate")?, Vec::new()),
                (None, None) => {
                    return Err(RateError::Stages(StageError {
                        field: "load.arrival.rate".into(),
                        message: "missing".into(),
                        fix: "give a rate or stages, e.g. arrival: {rate: 100/s}".into(),
                    }))
                }
            },
            (None, None) => return Ok(None),
        };
        let max_in_flight = match load.and_then(|l| l.max_in_flight) {
            Some(n) => crate::limits::MAX_IN_FLIGHT.check_signed("load.max_in_flight", n)? as u32,
            None => DEFAULT_MAX_IN_FLIGHT,
        };
        let max_connections = match load.and_then(|l| l.max_connections) {
            Some(n) => {
                Some(crate::limits::MAX_CONNECTIONS.check_signed("load.max_connections", n)? as u32)
            }
            None => None,
        };
        Ok(Some(ArrivalPlan {
            rate,
            poisson: arrival.is_some_and(|a| a.poisson),
            max_in_flight,
            max_connections,
            stages,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_per_second_minute_and_hour() {
        assert_eq!(parse_rate("r", "500/s").unwrap(), 500.0);
        assert_eq!(parse_rate("r", " 30/m ").unwrap(), 0.5);
        assert_eq!(parse_rate("r", "7200/h").unwrap(), 2.0);
        assert_eq!(parse_rate("r", "2.5").unwrap(), 2.5);
        for bad in ["fast", "500/fortnight", "/s", ""] {
            let e = parse_rate("rate", bad).unwrap_err().to_string();
            assert!(e.contains("is not a rate") && e.contains("500/s"), "{e}");
        }
        for (bad, word) in [
            ("0/s", "below the minimum"),
            ("-5/s", "below the minimum"),
            ("1e12/s", "above the limit"),
            ("inf/s", "not a finite number"),
        ] {
            let e = parse_rate("rate", bad).unwrap_err().to_string();
            assert!(e.contains(word) && e.starts_with("rate "), "{bad}: {e}");
        }
    }

    #[test]
    fn an_override_replaces_the_scenarios_rate() {
        let load = Load {
            arrival: Some(Arrival {
                rate: Some(RateText::Text("100/s".into())),
                poisson: true,
                stages: None,
            }),
            max_in_flight: Some(7),
            max_connections: None,
            users: None,
        };
        let plan = ArrivalPlan::from_load(Some(&load), None).unwrap().unwrap();
        assert_eq!(
            (plan.rate, plan.poisson, plan.max_in_flight),
            (100.0, true, 7)
        );
        let plan = ArrivalPlan::from_load(Some(&load), Some(250.0))
            .unwrap()
            .unwrap();
        assert_eq!(plan.rate, 250.0);
        assert_eq!(ArrivalPlan::from_load(None, None).unwrap(), None);
        let plan = ArrivalPlan::from_load(None, Some(3.0)).unwrap().unwrap();
        assert_eq!(plan.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(
            plan.max_connections, None,
            "unset: one connection per request"
        );
    }
}
