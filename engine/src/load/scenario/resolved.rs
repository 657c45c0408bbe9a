//! A scenario resolved once to its content: the YAML text, its SHA-256 and where it came from,
//! compiled. Everything after the resolution (the wait for workers, the run, run.json) uses this
//! value, so the text validated is the text run and recorded.

use super::{Scenario, ScenarioError, Source};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A scenario's text and where it came from, as run.json records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioText {
    /// Where the text came from: a file path on the coordinator, `built-in NAME`, or the label
    /// a caller gave text it read itself (the charm's scenario directory).
    pub origin: String,
    /// Lowercase hex SHA-256 of `yaml`'s bytes.
    pub sha256: String,
    /// The YAML text exactly as compiled.
    pub yaml: String,
}

impl ScenarioText {
    pub fn new(yaml: String, origin: String) -> ScenarioText {
        ScenarioText {
            origin,
            sha256: hex::encode(Sha256::digest(yaml.as_bytes())),
            yaml,
        }
    }
}

/// A scenario's text and its compiled form, made together.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedScenario {
    pub text: ScenarioText,
    pub scenario: Scenario,
}

impl ResolvedScenario {
    /// Compiles `yaml`, labelled `origin` in messages and in run.json.
    pub fn from_text(yaml: String, origin: String) -> Result<ResolvedScenario, ScenarioError> {
        let scenario = Scenario::from_yaml(&yaml, Source(origin.clone()))?;
        Ok(ResolvedScenario {
            text: ScenarioText::new(yaml, origin),
            scenario,
        })
    }

    /// Reads what `spec` names (a file, a built-in name or a seed path) once and compiles it.
    pub fn locate(spec: &str) -> Result<ResolvedScenario, ScenarioError> {
        let (yaml, Source(origin)) = Scenario::locate(spec)?;
        ResolvedScenario::from_text(yaml, origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_in_resolves_to_its_text_and_hash() {
        let r = ResolvedScenario::locate("s3_small_objects").unwrap();
        assert_eq!(r.text.origin, "built-in s3_small_objects");
        assert_eq!(
            r.text.yaml,
            super::super::builtin("s3_small_objects").unwrap()
        );
        assert_eq!(r.text.sha256.len(), 64);
        assert_eq!(r.scenario.name, "s3_small_objects");
        // The hash is of the bytes: the empty text has the well-known SHA-256.
        assert_eq!(
            ScenarioText::new(String::new(), "x".into()).sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_file_is_read_once_and_its_text_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.yaml");
        let text = super::super::builtin("s3_read_heavy").unwrap();
        std::fs::write(&path, text).unwrap();
        let r = ResolvedScenario::locate(path.to_str().unwrap()).unwrap();
        // Changing the file afterwards changes nothing already resolved.
        std::fs::write(&path, "name: other\n").unwrap();
        assert_eq!(r.text.yaml, text);
        assert_eq!(r.text.origin, path.display().to_string());
    }
}
