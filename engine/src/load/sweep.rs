//! The saturation sweep: step the arrival rate up, hold each step until throughput is stable
//! (or for at most the step time) after a warm-up that is not measured, and stop at the first
//! step that breaks the SLO or drops/lates more than a bound. The knee is the highest step that
//! met the SLO.
//!
//! ```yaml
//! sweep:
//!   from: 100/s
//!   to: 20000/s
//!   factor: 1.5            # or step: +500/s
//!   step_time: 60s         # the longest a step is held (warm-up included)
//!   warmup: 5s             # not measured (nor is the second a later step's rate changes in)
//!   slo: {p99: 50ms, error_rate: 1%}
//!   max_dropped: 1%        # of a step's arrivals
//!   max_late: 5%
//!   stable: {window: 10s, cv: 5%}
//! ```
//!
//! [`SweepBlock`] is the text as written (scenario block, or the CLI's flags laid over it);
//! [`SweepPlan::from_block`] checks it once into typed values; [`SweepController`] is fed the
//! run's seconds as the coordinator writes them and says when to change the rate and when the
//! sweep is over; [`SweepResult`] is `sweep.json`. All pure: the tests below drive it with
//! synthetic seconds.

use crate::load::scenario::{parse_rate, Millis, Percent, RateText};
use crate::load::stability::{RateWindow, Stability};
use crate::load::stats::{Hist, StatsDelta};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

/// The file a sweep writes in its run directory.
pub const SWEEP_JSON: &str = "sweep.json";
/// A step is held at most this long when not told.
pub const DEFAULT_STEP_TIME: Duration = Duration::from_secs(60);
/// Each step's unmeasured warm-up when not told.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(5);
/// Dropped arrivals a step may have (percent of its arrivals) when not told.
pub const DEFAULT_MAX_DROPPED: f64 = 1.0;
/// Late arrivals a step may have (percent of its arrivals) when not told.
pub const DEFAULT_MAX_LATE: f64 = 5.0;
/// The most steps a sweep may plan.
pub const MAX_STEPS: usize = 1000;
/// The largest factor between steps.
pub const MAX_FACTOR: f64 = 100.0;

/// The `sweep:` block (or the CLI's flags) as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepBlock {
    /// The first step's arrival rate, e.g. `100/s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<RateText>,
    /// No step goes above this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<RateText>,
    /// Each step's rate is the previous one times this (above 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// Or: each step's rate is the previous one plus this (`+500/s` or `500/s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<RateText>,
    /// The longest a step is held, warm-up included (`60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_time: Option<String>,
    /// The start of each step that is not measured (`5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
    /// What a step must meet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloBlock>,
    /// Dropped arrivals a step may have, in percent of its arrivals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dropped: Option<Percent>,
    /// Late arrivals a step may have, in percent of its arrivals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_late: Option<Percent>,
    /// When a step's throughput counts as stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<StableBlock>,
}

/// `slo: {p99: 50ms, error_rate: 1%}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloBlock {
    /// The highest p99 of `latency_ms` (from the intended start) a step may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<Millis>,
    /// The highest share of failed requests a step may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<Percent>,
}

/// `stable: {window: 10s, cv: 5%}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StableBlock {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<Percent>,
}

/// A sweep setting that cannot be used: the field, what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}; {fix}")]
pub struct SweepError {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

fn err(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> SweepError {
    SweepError {
        field: field.to_string(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Parses `p99=50ms,error_rate=1%` (the CLI's `--slo`).
pub fn parse_slo(text: &str) -> Result<SloBlock, SweepError> {
    const FIX: &str = "write e.g. p99=50ms or p99=50ms,error_rate=1%";
    let mut slo = SloBlock::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(err(
                "slo",
                format!("'{}' is not key=value", shown(part)),
                FIX,
            ));
        };
        let value = value.trim();
        match key.trim() {
            "p99" => {
                let ms = Millis::parse(value).ok_or_else(|| {
                    err(
                        "slo p99",
                        format!("'{}' is not a latency", shown(value)),
                        FIX,
                    )
                })?;
                slo.p99 = Some(ms);
            }
            "error_rate" => {
                let percent = Percent::parse(value).ok_or_else(|| {
                    err(
                        "slo error_rate",
                        format!("'{}' is not a percentage", shown(value)),
                        FIX,
                    )
                })?;
                slo.error_rate = Some(percent);
            }
            other => {
                return Err(err(
                    "slo",
                    format!("'{}' is not an SLO (p99, error_rate)", shown(other)),
                    FIX,
                ))
            }
        }
    }
    Ok(slo)
}

/// Text from an operator in a message: short, one line.
fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(32).collect()
}

impl SweepBlock {
    /// This block with every field `over` sets in place of its own (the CLI's flags over the
    /// scenario's block).
    pub fn overlaid(&self, over: &SweepBlock) -> SweepBlock {
        let mut b = self.clone();
        macro_rules! take {
            ($($f:ident),*) => {$(if over.$f.is_some() { b.$f = over.$f.clone(); })*};
        }
        take!(
            from,
            to,
            factor,
            step,
            step_time,
            warmup,
            slo,
            max_dropped,
            max_late,
            stable
        );
        // A factor given over a block with a step (or the other way round) replaces it.
        if over.factor.is_some() && over.step.is_none() {
            b.step = None;
        }
        if over.step.is_some() && over.factor.is_none() {
            b.factor = None;
        }
        b
    }
}

/// The SLO as a run judges it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// The highest p99 of `latency_ms`, in ms.
    pub p99_ms: Option<f64>,
    /// The highest share of failed requests, in percent.
    pub error_rate_percent: Option<f64>,
}

/// A checked sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPlan {
    /// The offered rate of each step, ascending (arrivals per second across all workers).
    pub rates: Vec<f64>,
    /// The longest a step is held, warm-up included, in seconds.
    pub step_time_s: u64,
    /// Each step's unmeasured start, in seconds.
    pub warmup_s: u64,
    pub slo: Slo,
    /// Dropped arrivals a step may have, in percent of its arrivals.
    pub max_dropped_percent: f64,
    /// Late arrivals a step may have, in percent of its arrivals.
    pub max_late_percent: f64,
    /// When a step is stable.
    pub stable: Stability,
}

/// A length of time in whole seconds, `zero_ok` or not, named `field`.
fn whole_seconds(field: &str, text: &str, zero_ok: bool) -> Result<u64, SweepError> {
    let bound = crate::limits::Seconds {
        zero_ok,
        ..crate::limits::RUN_TIME
    };
    let d = crate::duration::parse_bounded(text, field, bound)
        .map_err(|e| err(field, e.to_string(), "write whole seconds, e.g. 60s or 2m"))?;
    if d.subsec_nanos() != 0 {
        return Err(err(
            field,
            format!("{} is not a whole number of seconds", shown(text)),
            "steps are measured in whole seconds: write e.g. 60s or 2m",
        ));
    }
    Ok(d.as_secs())
}

fn rate(field: &str, r: &RateText) -> Result<f64, SweepError> {
    let checked = match r {
        RateText::Number(v) => crate::limits::ARRIVAL_RATE
            .check(field, *v)
            .map_err(crate::load::scenario::RateError::from),
        RateText::Text(t) => parse_rate(field, t.trim().trim_start_matches('+')),
    };
    checked.map_err(|e| match e {
        crate::load::scenario::RateError::NotARate(t) => err(
            field,
            format!("'{t}' is not a rate"),
            "write arrivals per second, e.g. 500/s",
        ),
        crate::load::scenario::RateError::Limit(l) => err(field, l.problem(), l.fix()),
        other => err(
            field,
            other.to_string(),
            "write arrivals per second, e.g. 500/s",
        ),
    })
}

fn percent(field: &str, p: Option<Percent>, default: f64) -> Result<f64, SweepError> {
    let v = p.map_or(default, |p| p.0);
    if !v.is_finite() || !(0.0..=100.0).contains(&v) {
        return Err(err(
            field,
            format!("{v}% is not from 0% to 100%"),
            "give a percentage, e.g. 1%",
        ));
    }
    Ok(v)
}

impl SweepPlan {
    /// Checks a block (fields named `sweep.<field>` in messages).
    pub fn from_block(b: &SweepBlock) -> Result<SweepPlan, SweepError> {
        let from = match &b.from {
            Some(r) => rate("sweep.from", r)?,
            None => {
                return Err(err(
                    "sweep.from",
                    "is missing",
                    "give the first step's rate, e.g. from: 100/s (--from 100/s)",
                ))
            }
        };
        let to = match &b.to {
            Some(r) => rate("sweep.to", r)?,
            None => {
                return Err(err(
                    "sweep.to",
                    "is missing",
                    "give the highest rate to try, e.g. to: 5000/s (--to 5000/s)",
                ))
            }
        };
        if from > to {
            return Err(err(
                "sweep.from",
                format!("{from}/s is above sweep.to {to}/s"),
                "the sweep steps up: give from below to (swap them)",
            ));
        }
        enum Next {
            Times(f64),
            Plus(f64),
        }
        let next = match (b.factor, &b.step) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "sweep.factor",
                    "is given together with sweep.step",
                    "give one: factor (e.g. 1.5) or step (e.g. +500/s)",
                ))
            }
            (None, None) => {
                return Err(err(
                    "sweep.factor",
                    "neither factor nor step is given",
                    "give factor (e.g. 1.5, --factor 1.5) or step (e.g. +500/s, --step 500/s)",
                ))
            }
            (Some(f), None) => {
                if !f.is_finite() || f <= 1.0 || f > MAX_FACTOR {
                    return Err(err(
                        "sweep.factor",
                        format!("{f} is not above 1 and at most {MAX_FACTOR}"),
                        "each step multiplies the rate: give e.g. 1.5",
                    ));
                }
                Next::Times(f)
            }
            (None, Some(s)) => Next::Plus(rate("sweep.step", s)?),
        };
        let mut rates = Vec::new();
        let mut r = from;
        // A tiny tolerance so that 100 × 1.5 × 1.5 … lands on `to` when it should.
        while r <= to * (1.0 + 1e-9) {
            if rates.len() == MAX_STEPS {
                return Err(err(
                    "sweep",
                    format!("more than {MAX_STEPS} steps from {from}/s to {to}/s"),
                    "give a larger factor or step, or a narrower range",
                ));
            }
            rates.push(r);
            r = match next {
                Next::Times(f) => r * f,
                Next::Plus(s) => r + s,
            };
        }
        let step_time_s = match &b.step_time {
            Some(t) => whole_seconds("sweep.step_time", t, false)?,
            None => DEFAULT_STEP_TIME.as_secs(),
        };
        if step_time_s < 2 {
            return Err(err(
                "sweep.step_time",
                format!("{step_time_s}s is too short: a step after the first begins with a change-over second, which is not measured"),
                "give at least 2s, e.g. step_time: 60s",
            ));
        }
        // The default warm-up, shortened when the step is short so that every step measures
        // at least two seconds (the fewest the stability window can judge); the README says so.
        let warmup_s = match &b.warmup {
            Some(t) => whole_seconds("sweep.warmup", t, true)?,
            None => DEFAULT_WARMUP.as_secs().min(step_time_s - 2),
        };
        if warmup_s >= step_time_s {
            return Err(err(
                "sweep.warmup",
                format!("{warmup_s}s leaves nothing of the {step_time_s}s step_time to measure"),
                "give a warmup shorter than step_time, e.g. warmup: 5s with step_time: 60s",
            ));
        }
        let stable = match &b.stable {
            None => Stability::default_setting(),
            Some(s) => {
                let window = match &s.window {
                    Some(w) => Duration::from_secs(whole_seconds("sweep.stable.window", w, false)?),
                    None => crate::load::stability::DEFAULT_WINDOW,
                };
                let cv =
                    s.cv.map_or(crate::load::stability::DEFAULT_CV * 100.0, |p| p.0);
                Stability::new("sweep.stable", window, cv)
                    .map_err(|e| err(&e.field, e.problem, e.fix))?
            }
        };
        let stable = Stability {
            // A window longer than what a step measures can never fill: use what it measures.
            window_s: stable
                .window_s
                .min((step_time_s - warmup_s.max(1)).clamp(2, u64::from(u32::MAX)) as u32),
            ..stable
        };
        let slo = match b.slo {
            Some(s) if s.p99.is_some() || s.error_rate.is_some() => s,
            _ => {
                return Err(err(
                    "sweep.slo",
                    "is missing",
                    "say what a step must meet, e.g. slo: {p99: 50ms, error_rate: 1%} (--slo p99=50ms,error_rate=1%)",
                ))
            }
        };
        if let Some(Millis(ms)) = slo.p99 {
            if !ms.is_finite()
                || ms <= 0.0
                || ms > crate::limits::RUN_TIME.max.as_secs_f64() * 1000.0
            {
                return Err(err(
                    "sweep.slo.p99",
                    format!("{ms}ms is not a positive latency"),
                    "give e.g. p99: 50ms",
                ));
            }
        }
        let error_rate = match slo.error_rate {
            Some(p) => Some(percent("sweep.slo.error_rate", Some(p), 0.0)?),
            None => None,
        };
        Ok(SweepPlan {
            rates,
            step_time_s,
            warmup_s,
            slo: Slo {
                p99_ms: slo.p99.map(|m| m.0),
                error_rate_percent: error_rate,
            },
            max_dropped_percent: percent("sweep.max_dropped", b.max_dropped, DEFAULT_MAX_DROPPED)?,
            max_late_percent: percent("sweep.max_late", b.max_late, DEFAULT_MAX_LATE)?,
            stable,
        })
    }
}

/// p50, p99 and p99.9 of a histogram, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tail {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Tail {
    /// `None` for an empty histogram: no sample is no latency, not 0 ms.
    fn of(h: &Hist) -> Option<Tail> {
        (h.count() > 0).then(|| {
            let h = h.view();
            Tail {
                p50: h.quantile_ms(0.5),
                p99: h.quantile_ms(0.99),
                p999: h.quantile_ms(0.999),
            }
        })
    }
}

/// One step of `sweep.json`: its numbers over its measured seconds (after the warm-up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    /// Arrivals per second asked for.
    pub offered_rate: f64,
    /// Requests completed per second over the measured seconds.
    pub achieved_rate: f64,
    /// Successful requests, timed from their intended start; null when none succeeded.
    pub latency_ms: Option<Tail>,
    /// Successful requests, timed from when they were sent; null when none succeeded.
    pub service_ms: Option<Tail>,
    /// Requests completed (failed ones included).
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Arrivals scheduled in the measured seconds' results (issued + dropped + skipped).
    pub arrivals: u64,
    pub dropped: u64,
    pub late: u64,
    /// The completed rate was stable (below the cv bound over the window) when the step ended;
    /// false when it ended at its step time instead.
    pub stable: bool,
    /// The coefficient of variation over the last window when the step ended, in percent.
    pub cv_percent: Option<f64>,
    /// Seconds measured (the warm-up and the change-over second excluded).
    pub seconds: u64,
    /// `met`, or `broke: ` and what it broke.
    pub verdict: String,
}

impl SweepStep {
    pub fn met(&self) -> bool {
        self.verdict == "met"
    }
}

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// The steps run to their end, in order.
    pub steps: Vec<SweepStep>,
    /// The highest step that met the SLO; null when even the first broke (or none ended). When
    /// the sweep did not finish, the highest so far.
    pub knee: Option<SweepStep>,
    /// The sweep reached its end (a step broke, or every step was run); false when the run
    /// ended first (stopped, failed, or its duration ran out).
    pub finished: bool,
    /// How it ended, in words.
    pub ended: String,
    /// What the sweep was asked to do.
    pub plan: SweepPlan,
}

impl SweepResult {
    /// The exit code `chopsticks sweep` gives: 0 when a knee was found or every step met the
    /// SLO, 1 when even the first step broke it or the sweep did not finish.
    pub fn success(&self) -> bool {
        self.finished && self.knee.is_some()
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:>4} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6} {:>5}  verdict",
            "step",
            "offered/s",
            "achieved/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "svc p99",
            "errors",
            "dropped",
            "late",
            "stable",
            "secs"
        );
        let ms = |t: &Option<Tail>, f: fn(&Tail) -> f64| {
            t.as_ref()
                .map_or("-".to_string(), |t| format!("{:.2}", f(t)))
        };
        for (i, st) in self.steps.iter().enumerate() {
            let knee = self.knee.as_ref() == Some(st);
            let _ = writeln!(
                s,
                "{:>4} {:>10.1} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6} {:>5}  {}{}",
                i + 1,
                st.offered_rate,
                st.achieved_rate,
                ms(&st.latency_ms, |t| t.p50),
                ms(&st.latency_ms, |t| t.p99),
                ms(&st.latency_ms, |t| t.p999),
                ms(&st.service_ms, |t| t.p99),
                st.errors,
                st.dropped,
                st.late,
                if st.stable { "yes" } else { "no" },
                st.seconds,
                st.verdict,
                if knee { "  <- knee" } else { "" }
            );
        }
        let _ = match &self.knee {
            Some(k) => writeln!(
                s,
                "knee{}: {:.1}/s offered, {:.1}/s achieved; {}",
                // Unfinished: a higher step was not tried.
                if self.finished { "" } else { " so far" },
                k.offered_rate,
                k.achieved_rate,
                self.ended
            ),
            None => writeln!(s, "knee: none; {}", self.ended),
        };
        s
    }
}

/// What the coordinator does after a second was fed to the sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Steer {
    /// Keep the current rate.
    Hold,
    /// Change the offered rate to this (arrivals per second across all workers).
    Rate(f64),
    /// The sweep is over: stop the run.
    Done,
}

/// Drives a sweep from the seconds the coordinator writes.
#[derive(Debug, Clone)]
pub struct SweepController {
    plan: SweepPlan,
    /// The step being held.
    step: usize,
    /// The second of the run this step's rate took effect in (0 for the first step). The step
    /// is held for at most `step_time_s` seconds from it; for later steps it is a change-over
    /// second, part old rate and part new, so it is never measured (it is warm-up).
    began: u64,
    /// The measured seconds' completed counts, for stability.
    window: RateWindow,
    /// The measured seconds' results, merged: the step's exact numbers.
    measured: StatsDelta,
    /// How many seconds are in `measured`.
    measured_seconds: u64,
    /// The steps run to their end.
    steps: Vec<SweepStep>,
    /// How it ended, once it has.
    ended: Option<String>,
}

impl SweepController {
    pub fn new(plan: SweepPlan) -> SweepController {
        SweepController {
            plan,
            step: 0,
            began: 0,
            window: RateWindow::default(),
            measured: StatsDelta::default(),
            measured_seconds: 0,
            steps: Vec::new(),
            ended: None,
        }
    }

    /// The rate the run starts at.
    pub fn first_rate(&self) -> f64 {
        self.plan.rates[0]
    }

    /// The rate being offered now.
    pub fn current_rate(&self) -> f64 {
        self.plan.rates[self.step.min(self.plan.rates.len() - 1)]
    }

    /// The step being held (0-based) and the number of steps planned.
    pub fn progress(&self) -> (usize, usize) {
        (self.step, self.plan.rates.len())
    }

    /// Feeds second `second` of the run (its merged results); `elapsed` is the run's load time
    /// now, when a change of rate would take effect.
    pub fn on_second(&mut self, second: u64, delta: &StatsDelta, elapsed: Duration) -> Steer {
        if self.ended.is_some() || second < self.measured_from() {
            return Steer::Hold;
        }
        self.measured.merge(delta);
        self.measured_seconds += 1;
        let cv = self.window.push(&self.plan.stable, delta.requests());
        let held = second + 1 - self.began;
        if cv.is_none() && held < self.plan.step_time_s {
            return Steer::Hold;
        }
        let step = self.finish_step(cv);
        let met = step.met();
        let verdict = step.verdict.clone();
        let rate = step.offered_rate;
        self.steps.push(step);
        if !met {
            self.ended = Some(format!("step {} ({rate}/s) {verdict}", self.steps.len()));
            return Steer::Done;
        }
        if self.step + 1 >= self.plan.rates.len() {
            self.ended = Some("every step met the SLO".into());
            return Steer::Done;
        }
        self.step += 1;
        // The rate changes now, in the second of the run that is current.
        self.began = elapsed.as_secs();
        self.window.clear();
        self.measured = StatsDelta::default();
        self.measured_seconds = 0;
        Steer::Rate(self.plan.rates[self.step])
    }

    /// The first second this step measures: after its warm-up, and never the change-over
    /// second a later step begins with.
    fn measured_from(&self) -> u64 {
        let unmeasured = if self.step == 0 {
            self.plan.warmup_s
        } else {
            self.plan.warmup_s.max(1)
        };
        self.began + unmeasured
    }

    fn finish_step(&self, cv: Option<f64>) -> SweepStep {
        let t = self.measured.total();
        let secs = self.measured_seconds.max(1);
        let latency_ms = Tail::of(&t.latency);
        // Without intended starts the two are one histogram (recorded once, in `latency`).
        let service_ms = if t.service.count() > 0 {
            Tail::of(&t.service)
        } else {
            latency_ms
        };
        let share = |n: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                n as f64 * 100.0 / of as f64
            }
        };
        let mut broke = Vec::new();
        if t.requests == 0 {
            broke.push("no request completed".to_string());
        }
        if let (Some(limit), Some(l)) = (self.plan.slo.p99_ms, &latency_ms) {
            if l.p99 > limit {
                broke.push(format!("p99 {:.2} ms > {limit} ms", l.p99));
            }
        }
        if let Some(limit) = self.plan.slo.error_rate_percent {
            let rate = share(t.failures, t.requests);
            if rate > limit {
                broke.push(format!("error rate {rate:.2}% > {limit}%"));
            }
        }
        let dropped = share(t.dropped, t.arrivals);
        if dropped > self.plan.max_dropped_percent {
            broke.push(format!(
                "dropped {dropped:.2}% of arrivals > {}%",
                self.plan.max_dropped_percent
            ));
        }
        let late = share(t.late, t.arrivals);
        if late > self.plan.max_late_percent {
            broke.push(format!(
                "late {late:.2}% of arrivals > {}%",
                self.plan.max_late_percent
            ));
        }
        SweepStep {
            offered_rate: self.current_rate(),
            achieved_rate: t.requests as f64 / secs as f64,
            latency_ms,
            service_ms,
            requests: t.requests,
            errors: t.failures,
            arrivals: t.arrivals,
            dropped: t.dropped,
            late: t.late,
            stable: cv.is_some(),
            cv_percent: crate::load::stability::cv(self.window_rates().as_slice())
                .map(|c| c * 100.0),
            seconds: self.measured_seconds,
            verdict: if broke.is_empty() {
                "met".into()
            } else {
                format!("broke: {}", broke.join(", "))
            },
        }
    }

    fn window_rates(&self) -> Vec<u64> {
        self.window.rates()
    }

    /// Whether the sweep has ended.
    pub fn ended(&self) -> bool {
        self.ended.is_some()
    }

    /// `sweep.json` as it stands: finished or not.
    pub fn result(&self) -> SweepResult {
        let finished = self.ended.is_some();
        // Also when the run ended before the sweep did: the highest step that met the SLO so
        // far (`finished: false` says a higher one was not tried).
        let knee = self.steps.iter().rev().find(|s| s.met()).cloned();
        SweepResult {
            steps: self.steps.clone(),
            knee,
            finished,
            ended: self.ended.clone().unwrap_or_else(|| {
                format!(
                    "the run ended during step {} of {} ({}/s): the sweep did not finish",
                    self.step + 1,
                    self.plan.rates.len(),
                    self.current_rate()
                )
            }),
            plan: self.plan.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
