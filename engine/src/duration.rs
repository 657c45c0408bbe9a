//! Run durations as operators type them: `90s`, `10m`, `1h30m`, or a bare number of seconds.

use std::time::Duration;

/// A duration string that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("'{input}' is not a duration: write e.g. 90s, 10m, 1h30m (or a number of seconds)")]
pub struct DurationError {
    input: String,
}

/// Parses `90s`, `10m`, `1h30m`, `300` (seconds). Zero is refused: a run of no time is a mistake.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_string(),
    };
    let s = input.trim();
    let d = if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(err());
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(s).map_err(|_| err())?
    };
    if d.is_zero() {
        return Err(err());
    }
    Ok(d)
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
    }

    #[test]
    fn formats_back() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(600)), "10m");
        assert_eq!(format(Duration::from_millis(2500)), "2.500s");
    }
}
