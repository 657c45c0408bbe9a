//! Run durations as operators type them: `90s`, `10m`, `1h30m`, or a bare number of seconds.

use std::time::Duration;

/// A duration string that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("'{input}' is not a duration: write e.g. 90s, 10m, 1h30m (or a number of seconds)")]
    Syntax { input: String },
    /// Zero (`0`, `0s`, `0m`) where a length of time must be above zero: it names no test.
    #[error("the {field} must be positive: write e.g. 90s, 10m, 1h30m")]
    Zero { field: String },
    #[error("'{input}' is not a usable duration: {source}")]
    Limit {
        input: String,
        source: Box<crate::limits::LimitError>,
    },
}

/// Parses `90s`, `10m`, `1h30m`, `300` (seconds), bounded as a run's length
/// ([`crate::limits::RUN_TIME`]: above 0, at most 30 days) — the longest span anything accepts.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    parse_bounded(input, "duration", crate::limits::RUN_TIME)
}

/// Parses like [`parse`] with the bounds of `field`.
pub fn parse_bounded(
    input: &str,
    field: &str,
    bound: crate::limits::Seconds,
) -> Result<Duration, DurationError> {
    let limit = |source| DurationError::Limit {
        input: input.to_string(),
        source: Box::new(source),
    };
    let zero = || DurationError::Zero {
        field: field.to_string(),
    };
    let s = input.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs == 0.0 && !bound.zero_ok {
            return Err(zero());
        }
        return bound.secs(field, secs).map_err(limit);
    }
    // Digits alone that do not fit an f64 parse are still a number, not a typo.
    let d = humantime::parse_duration(s).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => limit(crate::limits::LimitError::TooLarge {
            field: field.to_string(),
            value: s.to_string(),
            bound: bound.to_string(),
            fix: bound.fix.to_string(),
        }),
        _ => DurationError::Syntax {
            input: input.to_string(),
        },
    })?;
    if d.is_zero() && !bound.zero_ok {
        return Err(zero());
    }
    bound.check(field, d).map_err(limit)
}

/// Formats like the input grammar (`1h30m`, `90s` → `1m30s`), for messages and results.
pub fn format(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        let frac = d.subsec_millis();
        if frac > 0 && h == 0 && m == 0 {
            out.push_str(&format!("{}.{:03}s", s, frac));
        } else {
            out.push_str(&format!("{s}s"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_forms() {
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1.5").unwrap(), Duration::from_millis(1500));
    }

    #[test]
    fn refuses_nonsense_and_zero() {
        for bad in ["abc", "", "-5", "0", "0s", "10 parsecs"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("1h30m"), "{bad}: {e}");
        }
        for zero in ["0", "0s", "0m", "0.0"] {
            assert_eq!(
                parse(zero).unwrap_err().to_string(),
                "the duration must be positive: write e.g. 90s, 10m, 1h30m",
                "{zero}"
            );
        }
    }

    #[test]
    fn refuses_overflowing_durations_with_the_bound() {
        for bad in [
            "1e20",
            "10000000000000000000",
            "inf",
            "31d",
            "99999999999999999999999h",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("30 days") || e.contains("finite"), "{bad}: {e}");
        }
        assert_eq!(parse("30d").unwrap(), Duration::from_secs(30 * 86400));
    }

    #[test]
    fn formats_back() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(600)), "10m");
        assert_eq!(format(Duration::from_millis(2500)), "2.500s");
    }
}
