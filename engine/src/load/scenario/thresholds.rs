//! Pass/fail limits a scenario can declare; a run that crosses one ends `failed` with the
//! reason (and `chopsticks run` exits 1), so a scenario doubles as a CI gate.
//!
//! ```yaml
//! thresholds:
//!   - {max_error_rate: 1%}            # all tasks together
//!   - {task: download, max_p99: 200ms}
//!   - {task: upload, min_rps: 10, min_mb_per_s: 50}
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A limit as written: a bare number, or text with its unit.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(f64),
    Text(String),
}

/// Milliseconds, written as `200ms`, `1.5s` or a number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Millis(pub f64);

impl Millis {
    /// `200ms`, `1.5s`, or a bare number of milliseconds (the scenario's and `--slo`'s rule).
    pub fn parse(text: &str) -> Option<Millis> {
        let text = text.trim();
        match text.parse::<f64>() {
            Ok(ms) => Some(Millis(ms)),
            Err(_) => humantime::parse_duration(text)
                .ok()
                .map(|d| Millis(d.as_secs_f64() * 1000.0)),
        }
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) => Ok(Millis(n)),
            // No value in the message: YAML errors never echo the text.
            NumberOrText::Text(t) => Millis::parse(&t)
                .ok_or_else(|| serde::de::Error::custom("not a latency; write e.g. 200ms or 1.5s")),
        }
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0))
    }
}

/// A percentage, written as `1%` or a number of percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl Percent {
    /// `1%` or a bare number of percent (the scenario's and `--slo`'s rule).
    pub fn parse(text: &str) -> Option<Percent> {
        text.trim()
            .trim_end_matches('%')
            .trim()
            .parse()
            .ok()
            .map(Percent)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) => Ok(Percent(n)),
            NumberOrText::Text(t) => Percent::parse(&t)
                .ok_or_else(|| serde::de::Error::custom("not a percentage; write e.g. 1%")),
        }
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", self.0))
    }
}

/// Limits on one task (or on all tasks together when `task` is absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Failed requests as a share of all requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p50: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p95: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p999: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_mb_per_s: Option<f64>,
}

impl Threshold {
    fn has_limit(&self) -> bool {
        self.max_error_rate.is_some()
            || self.max_p50.is_some()
            || self.max_p95.is_some()
            || self.max_p99.is_some()
            || self.max_p999.is_some()
            || self.min_rps.is_some()
            || self.min_mb_per_s.is_some()
    }

    /// Problems as (message, fix), given the scenario's task names.
    pub fn problems(
        &self,
        task_names: &[String],
        known: &std::collections::HashSet<&str>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !self.has_limit() {
            out.push((
                "has no limit".into(),
                "give at least one of max_error_rate, max_p50, max_p95, max_p99, max_p999, min_rps, min_mb_per_s".into(),
            ));
        }
        if let Some(task) = &self.task {
            if !known.contains(task.as_str()) {
                let shown: Vec<&str> = task_names.iter().take(20).map(String::as_str).collect();
                let more = if task_names.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                };
                out.push((
                    format!("task '{task}' is not a task of this scenario"),
                    format!("use one of: {}{more}", shown.join(", ")),
                ));
            }
        }
        let limits = [
            self.max_p50.map(|m| m.0),
            self.max_p95.map(|m| m.0),
            self.max_p99.map(|m| m.0),
            self.max_p999.map(|m| m.0),
            self.min_rps,
            self.min_mb_per_s,
            self.max_error_rate.map(|p| p.0),
        ];
        if limits.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
            out.push((
                "a limit is negative".into(),
                "use limits of 0 or more".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let t: Threshold =
            serde_yaml_ng::from_str("{task: get, max_p99: 200ms, max_error_rate: 1%, min_rps: 5}")
                .unwrap();
        assert_eq!(t.max_p99, Some(Millis(200.0)));
        assert_eq!(t.max_error_rate, Some(Percent(1.0)));
        let t: Threshold = serde_yaml_ng::from_str("{max_p50: 1.5s}").unwrap();
        assert_eq!(t.max_p50, Some(Millis(1500.0)));
        assert!(serde_yaml_ng::from_str::<Threshold>("{max_p99: soon}").is_err());
        assert!(serde_yaml_ng::from_str::<Threshold>("{max_p98: 1ms}").is_err());
    }
}
