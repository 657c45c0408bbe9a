//! The source tree's layers import downward only (engine/src/lib.rs lists them): measuring
//! (`load/`) knows nothing of aggregating, distributing or presenting; aggregating (`results/`)
//! knows nothing of distributing or presenting; the foundation files know no layer at all.
//! Test modules (everything from a file's `#[cfg(test)]` on) may reach further.

use std::path::{Path, PathBuf};

/// (folder or file under engine/src, the top-level modules its code must not import)
const RULES: &[(&str, &[&str])] = &[
    (
        "load",
        &[
            "results",
            "cluster",
            "present",
            "control",
            "cli",
            "embedded_s3",
        ],
    ),
    (
        "results",
        &["cluster", "present", "control", "cli", "embedded_s3"],
    ),
    ("limits.rs", LAYERS),
    ("duration.rs", LAYERS),
    ("size.rs", LAYERS),
    ("s3_config.rs", LAYERS),
    ("logging.rs", LAYERS),
];
const LAYERS: &[&str] = &[
    "load",
    "results",
    "cluster",
    "present",
    "control",
    "cli",
    "embedded_s3",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The `crate::NAME` paths a file's non-test code names, with their line numbers.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push((n + 1, name));
        }
    }
    out
}

#[test]
fn layers_import_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for (part, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(part), &mut files);
        assert!(!files.is_empty(), "engine/src/{part} has no Rust files");
        for file in files {
            checked += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, name) in crate_paths(&text) {
                if forbidden.contains(&name.as_str()) {
                    violations.push(format!(
                        "{}:{line} imports crate::{name}",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(checked > 15, "only {checked} files checked");
    assert!(
        violations.is_empty(),
        "upward imports:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    let text = "use crate::load::stats::Hist;\nfn f() { crate::present::report::render(); }\n#[cfg(test)]\nuse crate::cli;";
    assert_eq!(
        crate_paths(text),
        [(1, "load".to_string()), (2, "present".to_string())]
    );
}
