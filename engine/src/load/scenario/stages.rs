//! Load stages: closed-model users, or the open model's arrival rate, stage by stage.
//!
//! ```yaml
//! load:
//!   users: {stages: [{users: 50, for: 2m}, {users: 200, for: 5m}, {users: 0, for: 1m}]}
//! # or
//! load:
//!   arrival: {stages: [{rate: 100/s, for: 1m}, {rate: 2000/s, for: 5m}, {rate: 0/s, for: 30s}]}
//!   max_in_flight: 2000
//! ```
//!
//! Semantics: **step and hold**. Each stage holds its level (users, or arrivals per second)
//! for its `for`, from the moment the previous stage ended; the first stage begins at the
//! run's clock origin. The run lasts the sum of the stages. Users are added at the spawn rate
//! and removed at a stage change; a removed user finishes its request in flight (it is
//! stopped, not aborted). Arrivals follow the rate of the stage they fall in: arrival `k` of
//! a worker is due when the integral of its rate since the origin reaches `k`, so a run's
//! arrivals are the integral of the stages (`ceil` of it per worker: a stage boundary can hold
//! at most one arrival more per worker when rate × length is not a whole number).
//!
//! `rate: 0/s` and `users: 0` are allowed inside stages (a pause or a ramp down), but at least
//! one stage must offer load. The YAML keeps what was written; [`check_user_stages`] and
//! [`check_rate_stages`] turn it into typed values once.

use super::load_spec::{RateError, RateText};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A stage's length as written: seconds as a number, or text such as `90s`, `2m`, `1h30m`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ForText {
    Seconds(f64),
    Text(String),
}

/// `users: {stages: [...]}` in a `load:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserLoad {
    /// Optional so that a block without it is named, not a YAML type error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<UserStageText>>,
}

/// `{users: 50, for: 2m}` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserStageText {
    /// Users across all workers during the stage; signed so that a negative value is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<i64>,
    /// How long the stage lasts.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub length: Option<ForText>,
}

/// `{rate: 100/s, for: 1m}` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateStageText {
    /// Arrivals per second across all workers during the stage (0 allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateText>,
    /// How long the stage lasts.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub length: Option<ForText>,
}

/// A checked user stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStage {
    /// Users across all workers.
    pub users: u32,
    /// Length in microseconds (whole, so stage boundaries add up exactly).
    pub for_us: u64,
}

/// A checked rate stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateStage {
    /// Arrivals per second across all workers (0 = a pause).
    pub rate: f64,
    /// Length in microseconds.
    pub for_us: u64,
}

/// Why stages cannot be used: the field, what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}; {fix}")]
pub struct StageError {
    pub field: String,
    pub message: String,
    pub fix: String,
}

fn stage_error(field: &str, message: impl Into<String>, fix: &str) -> StageError {
    StageError {
        field: field.into(),
        message: message.into(),
        fix: fix.into(),
    }
}

/// Checks a stage list's length against [`crate::limits::input::MAX_STAGES`].
fn check_count(field: &str, n: usize, example: &str) -> Result<(), StageError> {
    if n == 0 {
        return Err(stage_error(
            field,
            "no stages",
            &format!("give at least one stage, e.g. stages: [{example}]"),
        ));
    }
    let max = crate::limits::input::MAX_STAGES;
    if n > max {
        return Err(stage_error(
            field,
            format!("{n} stages, above the limit of {max}"),
            &format!("give at most {max} stages, e.g. stages: [{example}]"),
        ));
    }
    Ok(())
}

/// A stage's length in whole microseconds, checked against [`crate::limits::RUN_TIME`];
/// `example` is a stage of the list's kind, for the fix.
fn check_length(field: &str, length: Option<&ForText>, example: &str) -> Result<u64, StageError> {
    let fix = format!("give every stage a length, e.g. {example} or for: 2m");
    let d = match length {
        None => return Err(stage_error(field, "missing", &fix)),
        Some(ForText::Seconds(s)) => crate::limits::RUN_TIME
            .secs(field, *s)
            .map_err(|e| stage_error(field, e.problem(), &fix))?,
        Some(ForText::Text(t)) => crate::duration::parse_bounded(t, field, crate::limits::RUN_TIME)
            .map_err(|e| {
                let problem = match e {
                    // Its message names the field and a fix again.
                    crate::duration::DurationError::Zero { .. } => "must be positive".into(),
                    e => e.to_string(),
                };
                stage_error(field, problem, &fix)
            })?,
    };
    let us = d.as_micros() as u64;
    if us == 0 {
        return Err(stage_error(field, "shorter than a microsecond", &fix));
    }
    Ok(us)
}

/// The run's length: the stages' lengths summed, at most [`crate::limits::RUN_TIME`].
fn check_total(field: &str, lengths: impl Iterator<Item = u64>) -> Result<Duration, StageError> {
    let us: u64 = lengths.fold(0u64, |a, b| a.saturating_add(b));
    crate::limits::RUN_TIME
        .check(field, Duration::from_micros(us))
        .map_err(|e| {
            stage_error(
                field,
                format!("the stages last {}", e.problem()),
                "keep the sum of the stages' lengths within 30 days",
            )
        })
}

/// Checks `load.users.stages` once into typed stages.
pub fn check_user_stages(stages: Option<&[UserStageText]>) -> Result<Vec<UserStage>, StageError> {
    const FIELD: &str = "load.users.stages";
    const EXAMPLE: &str = "{users: 10, for: 1m}";
    let stages = stages.ok_or_else(|| {
        stage_error(
            FIELD,
            "missing",
            "give the users stage by stage, e.g. users: {stages: [{users: 10, for: 1m}]}",
        )
    })?;
    check_count(FIELD, stages.len(), EXAMPLE)?;
    let mut out = Vec::with_capacity(stages.len());
    for (i, s) in stages.iter().enumerate() {
        let field = format!("{FIELD}[{i}].users");
        let users = match s.users {
            None => {
                return Err(stage_error(
                    &field,
                    "missing",
                    "give the users of every stage, e.g. {users: 10, for: 30s}",
                ))
            }
            Some(n) => crate::limits::STAGE_USERS
                .check_signed(&field, n)
                .map_err(|e| stage_error(&field, e.problem(), e.fix()))?
                as u32,
        };
        let for_us = check_length(
            &format!("{FIELD}[{i}].for"),
            s.length.as_ref(),
            "{users: 10, for: 30s}",
        )?;
        out.push(UserStage { users, for_us });
    }
    if out.iter().all(|s| s.users == 0) {
        return Err(stage_error(
            FIELD,
            "every stage has 0 users: no load",
            "give at least one stage users, e.g. {users: 10, for: 1m}",
        ));
    }
    check_total(FIELD, out.iter().map(|s| s.for_us))?;
    Ok(out)
}

/// Checks `load.arrival.stages` once into typed stages.
pub fn check_rate_stages(stages: &[RateStageText]) -> Result<Vec<RateStage>, StageError> {
    const FIELD: &str = "load.arrival.stages";
    const EXAMPLE: &str = "{rate: 100/s, for: 1m}";
    check_count(FIELD, stages.len(), EXAMPLE)?;
    let mut out = Vec::with_capacity(stages.len());
    for (i, s) in stages.iter().enumerate() {
        let field = format!("{FIELD}[{i}].rate");
        let rate = match &s.rate {
            None => {
                return Err(stage_error(
                    &field,
                    "missing",
                    "give the rate of every stage, e.g. {rate: 100/s, for: 30s}",
                ))
            }
            Some(r) => r
                .per_second_within(&field, crate::limits::STAGE_RATE)
                .map_err(|e| match e {
                    RateError::Limit(l) => stage_error(&field, l.problem(), l.fix()),
                    other => stage_error(
                        &field,
                        other.to_string(),
                        "write e.g. rate: 100/s (0/s pauses)",
                    ),
                })?,
        };
        let for_us = check_length(
            &format!("{FIELD}[{i}].for"),
            s.length.as_ref(),
            "{rate: 100/s, for: 30s}",
        )?;
        out.push(RateStage { rate, for_us });
    }
    if out.iter().all(|s| s.rate == 0.0) {
        return Err(stage_error(
            FIELD,
            "every stage has rate 0: no load",
            "give at least one stage a rate, e.g. {rate: 100/s, for: 1m}",
        ));
    }
    check_total(FIELD, out.iter().map(|s| s.for_us))?;
    Ok(out)
}

/// The run's length under `stages` (checked: at most 30 days).
pub fn total_length(stages_us: impl Iterator<Item = u64>) -> Duration {
    Duration::from_micros(stages_us.fold(0u64, |a, b| a.saturating_add(b)))
}

/// How long users stages last.
pub fn stages_length(stages: &[UserStage]) -> Duration {
    total_length(stages.iter().map(|s| s.for_us))
}

/// The stage in force `elapsed` after the origin, and when the next one begins (from the
/// origin); `None` past the last stage.
pub fn user_stage_at(stages: &[UserStage], elapsed: Duration) -> Option<(usize, Duration)> {
    let at = elapsed.as_micros() as u64;
    let mut end = 0u64;
    for (i, s) in stages.iter().enumerate() {
        end = end.saturating_add(s.for_us);
        if at < end {
            return Some((i, Duration::from_micros(end)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: i64, for_: &str) -> UserStageText {
        UserStageText {
            users: Some(n),
            length: Some(ForText::Text(for_.into())),
        }
    }

    #[test]
    fn user_stages_become_typed_values_and_bad_ones_are_named() {
        let ok = check_user_stages(Some(
            &[users(2, "2s"), users(6, "1.5s"), users(0, "2s")][..],
        ))
        .unwrap();
        assert_eq!(
            ok,
            vec![
                UserStage {
                    users: 2,
                    for_us: 2_000_000
                },
                UserStage {
                    users: 6,
                    for_us: 1_500_000
                },
                UserStage {
                    users: 0,
                    for_us: 2_000_000
                },
            ]
        );
        assert_eq!(
            user_stage_at(&ok, Duration::from_millis(2100)),
            Some((1, Duration::from_micros(3_500_000)))
        );
        assert_eq!(user_stage_at(&ok, Duration::from_millis(5500)), None);
        for (stages, field, words) in [
            (vec![], "load.users.stages", "no stages"),
            (vec![users(-1, "1s")], "load.users.stages[0].users", "below"),
            (vec![users(1, "0s")], "load.users.stages[0].for", "0"),
            (vec![users(0, "1s")], "load.users.stages", "no load"),
            (
                vec![UserStageText {
                    users: Some(3),
                    length: None,
                }],
                "load.users.stages[0].for",
                "missing",
            ),
            (
                vec![users(1, "20d"), users(1, "20d")],
                "load.users.stages",
                "30 days",
            ),
        ] {
            let e = check_user_stages(Some(&stages[..])).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(words), "{e}");
            assert!(e.fix.contains("e.g.") || e.fix.contains("30 days"), "{e}");
        }
        let many = vec![users(1, "1s"); crate::limits::input::MAX_STAGES + 1];
        assert!(check_user_stages(Some(&many[..]))
            .unwrap_err()
            .message
            .contains("above the limit"));
    }

    #[test]
    fn rate_stages_allow_zero_inside_but_not_below() {
        let stage = |r: &str, f: f64| RateStageText {
            rate: Some(RateText::Text(r.into())),
            length: Some(ForText::Seconds(f)),
        };
        let ok = check_rate_stages(&[stage("50/s", 2.0), stage("0/s", 1.0)]).unwrap();
        assert_eq!(ok[1].rate, 0.0);
        let e = check_rate_stages(&[stage("-1/s", 2.0)]).unwrap_err();
        assert_eq!(e.field, "load.arrival.stages[0].rate");
        assert!(e.message.contains("below the minimum"), "{e}");
        let e = check_rate_stages(&[stage("fast", 2.0)]).unwrap_err();
        assert!(e.to_string().contains("not a rate"), "{e}");
        let e = check_rate_stages(&[stage("0/s", 2.0)]).unwrap_err();
        assert!(e.message.contains("no load"), "{e}");
        let e = check_rate_stages(&[stage("5/s", 0.0)]).unwrap_err();
        assert_eq!(e.field, "load.arrival.stages[0].for", "{e}");
    }
}
