//! The packed charm's layout: what `scripts/pack-charm.sh` builds is what Juju needs.
//!
//! The zip is read back with Python's `zipfile` (on every machine the suite runs on), which
//! reports each entry's unix mode, so the test checks exactly what Juju will unpack.

#[path = "support/pack.rs"]
mod pack;

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Entries as (name, unix mode), plus the text of the small files.
fn entries(charm: &Path) -> Value {
    let script = r#"
import json, stat, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
out = {"modes": {}, "texts": {}, "heads": {}}
for i in z.infolist():
    out["modes"][i.filename] = stat.S_IMODE(i.external_attr >> 16)
    data = z.read(i.filename)
    out["heads"][i.filename] = list(data[:4])
    if i.filename.endswith((".yaml", ".j2")):
        out["texts"][i.filename] = data.decode()
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(charm)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("zip listing")
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("valid YAML")
}

#[test]
fn the_packed_charm_has_what_juju_needs() {
    let listing = entries(&pack::pack_charm("charm-pack"));
    let modes = listing["modes"].as_object().expect("modes");
    let mode = |name: &str| {
        modes
            .get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{name} is missing from the charm: {:?}", modes.keys()))
    };
    // Juju runs dispatch for every hook: it must be executable, at the root, a native binary.
    assert_eq!(mode("dispatch"), 0o755);
    assert_eq!(mode("bin/chopsticks"), 0o755);
    let elf = [0x7f, b'E', b'L', b'F'].map(u64::from).to_vec();
    for binary in ["dispatch", "bin/chopsticks"] {
        let head: Vec<u64> = listing["heads"][binary]
            .as_array()
            .expect("head")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(head, elf, "{binary} is not an ELF binary");
    }
    for file in [
        "metadata.yaml",
        "config.yaml",
        "actions.yaml",
        "manifest.yaml",
    ] {
        assert_eq!(mode(file), 0o644, "{file}");
    }
    for scenario in chopsticks::load::scenario::builtin_names() {
        assert_eq!(mode(&format!("scenarios/{scenario}.yaml")), 0o644);
    }
    for template in [
        "templates/s3_config.yaml.j2",
        "templates/chopsticks-leader.service.j2",
        "templates/chopsticks-worker.service.j2",
    ] {
        assert_eq!(mode(template), 0o644);
    }
    // No hooks directory and no Python: dispatch is the whole charm.
    assert!(!modes
        .keys()
        .any(|k| k.starts_with("hooks/") || k.ends_with(".py")));

    let texts = &listing["texts"];
    let metadata = yaml(texts["metadata.yaml"].as_str().expect("metadata"));
    assert_eq!(metadata["name"], "chopsticks");
    assert_eq!(
        metadata["peers"]["cluster"]["interface"],
        "chopsticks-cluster"
    );
    let manifest = yaml(texts["manifest.yaml"].as_str().expect("manifest"));
    assert_eq!(manifest["bases"][0]["name"], "ubuntu");
    assert_eq!(manifest["bases"][0]["channel"], "24.04");
    assert_eq!(manifest["bases"][0]["architectures"][0], "amd64");

    // Every action refuses unknown parameters; start-test's are typed.
    let actions = yaml(texts["actions.yaml"].as_str().expect("actions"));
    let actions = actions.as_object().expect("actions map");
    let names: Vec<&str> = actions.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "fetch-metrics",
            "list-scenarios",
            "start-test",
            "stop-test",
            "test-status"
        ]
    );
    for (name, action) in actions {
        assert_eq!(action["additionalProperties"], false, "{name}");
    }
    assert_eq!(actions["start-test"]["params"]["users"]["type"], "integer");
    assert_eq!(
        actions["start-test"]["params"]["spawn-rate"]["type"],
        "number"
    );
    assert_eq!(actions["start-test"]["params"]["headless"]["default"], true);
    assert_eq!(
        actions["fetch-metrics"]["params"]["format"]["enum"],
        serde_json::json!(["summary", "json", "csv"])
    );

    // The seed's configuration names are all there.
    let config = yaml(texts["config.yaml"].as_str().expect("config"));
    for option in [
        "s3-endpoint",
        "s3-access-key",
        "s3-secret-key",
        "s3-bucket",
        "s3-region",
        "s3-driver",
        "s3-driver-config-yaml",
        "scenario-file",
        "s3-credentials",
    ] {
        assert!(config["options"].get(option).is_some(), "{option}");
    }
    assert_eq!(config["options"]["s3-credentials"]["type"], "secret");
}
