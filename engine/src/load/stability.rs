//! When throughput is stable: the coefficient of variation (standard deviation over mean) of
//! the per-second completed rate over the last `window` seconds is below a bound.
//!
//! Used by `--autoterm` (a single-rate run stops once it is stable, as warp does) and by the
//! saturation sweep (a step is held until it is stable, or until its maximum time). Pure
//! functions over counts: the coordinator feeds them the seconds it writes.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// Seconds of history the stability window looks at when not told.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// The coefficient of variation below which throughput is stable when not told (5 %).
pub const DEFAULT_CV: f64 = 0.05;
/// The longest window accepted: an hour of seconds kept per run is small.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// The coefficient of variation (population standard deviation over mean) of `rates`;
/// `None` when there are none or their mean is 0 (no throughput is not a stable rate).
pub fn cv(rates: &[u64]) -> Option<f64> {
    if rates.is_empty() {
        return None;
    }
    let n = rates.len() as f64;
    let mean = rates.iter().map(|&r| r as f64).sum::<f64>() / n;
    if mean <= 0.0 {
        return None;
    }
    let var = rates
        .iter()
        .map(|&r| (r as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    Some(var.sqrt() / mean)
}

/// What "stable" means: a window and a bound on the coefficient of variation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stability {
    /// Whole seconds the rate must be steady over (at least 2: one second has no variation).
    pub window_s: u32,
    /// The bound on the coefficient of variation, as a fraction (0.05 = 5 %).
    pub cv: f64,
}

/// Why a stability setting cannot be used: the field, what is wrong, and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} {problem}; {fix}")]
pub struct StabilityError {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl Stability {
    /// A checked setting: `window` from 2 s to an hour (whole seconds), `cv_percent` above 0
    /// and at most 100 %. `field` prefixes the names in messages (e.g. `autoterm` or
    /// `sweep.stable`).
    pub fn new(
        field: &str,
        window: Duration,
        cv_percent: f64,
    ) -> Result<Stability, StabilityError> {
        // A YAML path (`sweep.stable`) goes on with dots; a flag group (`autoterm`: the flags
        // --autoterm-window and --autoterm-cv) with words.
        let named = |part: &str| {
            if field.contains('.') {
                format!("{field}.{part}")
            } else {
                format!("{field} {part}")
            }
        };
        let secs = window.as_secs_f64();
        if !(2.0..=MAX_WINDOW.as_secs_f64()).contains(&secs) || window.subsec_nanos() != 0 {
            return Err(StabilityError {
                field: named("window"),
                problem: format!(
                    "{} is not a whole number of seconds from 2s to 1h",
                    crate::duration::format(window)
                ),
                fix: "give e.g. 10s: the rate must stay steady over that many seconds".into(),
            });
        }
        if !cv_percent.is_finite() || cv_percent <= 0.0 || cv_percent > 100.0 {
            return Err(StabilityError {
                field: named("cv"),
                problem: format!("{cv_percent}% is not above 0% and at most 100%"),
                fix: "give the coefficient of variation that counts as stable, e.g. 5%".into(),
            });
        }
        Ok(Stability {
            window_s: secs as u32,
            cv: cv_percent / 100.0,
        })
    }

    /// The defaults: 10 s at 5 %.
    pub fn default_setting() -> Stability {
        Stability {
            window_s: DEFAULT_WINDOW.as_secs() as u32,
            cv: DEFAULT_CV,
        }
    }

    /// The coefficient of variation of the last `window_s` of `rates` when there are that
    /// many and it is below the bound; `None` otherwise.
    pub fn stable(&self, rates: &[u64]) -> Option<f64> {
        let w = self.window_s as usize;
        if rates.len() < w {
            return None;
        }
        cv(&rates[rates.len() - w..]).filter(|c| *c < self.cv)
    }
}

/// The last seconds' completed counts, at most a window of them.
#[derive(Debug, Clone, Default)]
pub struct RateWindow {
    /// Completed requests per second, oldest first; at most `window_s` of them.
    rates: VecDeque<u64>,
}

impl RateWindow {
    /// Adds one second's completed count; returns the window's coefficient of variation when
    /// it holds `stability.window_s` seconds and is stable.
    pub fn push(&mut self, stability: &Stability, completed: u64) -> Option<f64> {
        self.rates.push_back(completed);
        while self.rates.len() > stability.window_s as usize {
            self.rates.pop_front();
        }
        stability.stable(self.rates.make_contiguous())
    }

    /// The seconds in the window, oldest first.
    pub fn rates(&self) -> Vec<u64> {
        self.rates.iter().copied().collect()
    }

    /// Forgets every second (a new step begins).
    pub fn clear(&mut self) {
        self.rates.clear();
    }
}

/// Why a run stopped by `--autoterm`: said in run.json and summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutotermStop {
    /// Seconds of load when the rate had been stable for the window.
    pub after_s: u64,
    /// The window, in seconds.
    pub window_s: u32,
    /// The bound on the coefficient of variation, in percent.
    pub cv_bound_percent: f64,
    /// The coefficient of variation over the window when it stopped, in percent.
    pub cv_percent: f64,
    /// The mean completed rate over the window (requests/s).
    pub rate: f64,
}

/// `--autoterm`: watches the run's seconds and says when its rate has been stable for the
/// window.
#[derive(Debug, Clone)]
pub struct Autoterm {
    /// The window and bound.
    pub stability: Stability,
    /// The last seconds' completed counts.
    window: RateWindow,
    /// The seconds seen so far, to say after how long the run stopped.
    seconds: u64,
    /// Set once the rate was stable: later seconds change nothing.
    stopped: Option<AutotermStop>,
}

impl Autoterm {
    pub fn new(stability: Stability) -> Autoterm {
        Autoterm {
            stability,
            window: RateWindow::default(),
            seconds: 0,
            stopped: None,
        }
    }

    /// Feeds the run's next written second (its completed requests); returns the stop the
    /// first time the rate has been stable for the window.
    pub fn on_second(&mut self, completed: u64) -> Option<AutotermStop> {
        if self.stopped.is_some() {
            return None;
        }
        self.seconds += 1;
        let cv = self.window.push(&self.stability, completed)?;
        let w = self.stability.window_s as usize;
        let rates = self.window.rates.make_contiguous();
        let rate = rates[rates.len() - w..].iter().sum::<u64>() as f64 / w as f64;
        let stop = AutotermStop {
            after_s: self.seconds,
            window_s: self.stability.window_s,
            cv_bound_percent: self.stability.cv * 100.0,
            cv_percent: cv * 100.0,
            rate,
        };
        self.stopped = Some(stop.clone());
        Some(stop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cv_of_known_series() {
        assert_eq!(cv(&[]), None);
        assert_eq!(cv(&[0, 0, 0]), None);
        assert_eq!(cv(&[100, 100, 100]), Some(0.0));
        // mean 100, population sd 10.
        let c = cv(&[90, 110, 90, 110]).unwrap();
        assert!((c - 0.1).abs() < 1e-12, "{c}");
    }

    #[test]
    fn stable_only_with_a_full_window_below_the_bound() {
        let s = Stability::new("autoterm", Duration::from_secs(4), 5.0).unwrap();
        assert_eq!(
            s.stable(&[100, 100, 100]),
            None,
            "three seconds are not a window of four"
        );
        assert_eq!(s.stable(&[100, 100, 100, 100]), Some(0.0));
        // 10 % variation is above 5 %.
        assert_eq!(s.stable(&[90, 110, 90, 110]), None);
        // Only the last window counts: a ramp before it does not.
        assert!(s.stable(&[1, 20, 50, 100, 101, 99, 100]).is_some());
    }

    #[test]
    fn autoterm_stops_once_after_a_ramp_settles() {
        let s = Stability::new("autoterm", Duration::from_secs(3), 2.0).unwrap();
        let mut a = Autoterm::new(s);
        let mut stops = Vec::new();
        for (i, c) in [10, 40, 80, 100, 100, 101, 100, 100]
            .into_iter()
            .enumerate()
        {
            if let Some(stop) = a.on_second(c) {
                stops.push((i, stop));
            }
        }
        assert_eq!(stops.len(), 1, "{stops:?}");
        let (i, stop) = &stops[0];
        // Seconds 3..=5 are 100, 100, 101: cv 0.47 % < 2 %.
        assert_eq!(*i, 5);
        assert_eq!(stop.after_s, 6);
        assert_eq!(stop.window_s, 3);
        assert!((stop.rate - 301.0 / 3.0).abs() < 1e-9);
        assert!(stop.cv_percent < 2.0 && stop.cv_percent > 0.0);
    }

    #[test]
    fn bad_settings_name_the_field_and_the_fix() {
        for (w, cv, field) in [
            (Duration::from_secs(1), 5.0, "autoterm window"),
            (Duration::from_millis(2500), 5.0, "autoterm window"),
            (Duration::from_secs(7200), 5.0, "autoterm window"),
            (Duration::from_secs(10), 0.0, "autoterm cv"),
            (Duration::from_secs(10), 150.0, "autoterm cv"),
            (Duration::from_secs(10), f64::NAN, "autoterm cv"),
        ] {
            let e = Stability::new("autoterm", w, cv).unwrap_err();
            assert!(e.to_string().starts_with(field), "{e}");
            assert!(e.to_string().contains("e.g."), "{e}");
        }
    }
}
