//! Every benchmark command the docs give works from the repository root as written (issue 17:
//! `cargo bench --bench coordinator` was documented, and fails there without `-p chopsticks`).
//!
//! Finds each `cargo bench … --bench NAME …` and `bench/run.sh …` command that README.md,
//! docs/benchmarks.md and the benchmarks' own doc comments give (in code spans and code
//! blocks) and runs it, exactly as written, from the repository root in its shortest mode:
//! - `cargo bench` commands with `--quick` added to the bench's own arguments: one pass per
//!   case for `content`, 2 simulated workers and a 2 s window for `coordinator` (which needs
//!   the RadosGW environment `tests/run.sh` exports);
//! - `bench/run.sh --help` as it is; every other `bench/run.sh` command with `--dry-run` added:
//!   its arguments are checked by the real harness and its plan printed, but no RadosGW, build
//!   or Python venv is started (a full run takes ~40 min and downloads Locust).
//!
//! No timing is asserted: this only checks that the documented commands still exist.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Files whose benchmark commands are checked.
const DOCUMENTED_IN: &[&str] = &[
    "README.md",
    "docs/benchmarks.md",
    "engine/benches/content.rs",
    "engine/benches/coordinator.rs",
    "engine/src/load/content.rs",
];
/// Bound on any one command (the first `cargo bench` may compile the bench binaries).
const LIMIT: Duration = Duration::from_secs(600);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine/ has a parent")
        .to_path_buf()
}

/// `text` without its leading `NAME=value` environment assignments, and those.
fn split_env(text: &str) -> (Vec<(&str, &str)>, &str) {
    let mut env = Vec::new();
    let mut rest = text.trim_start();
    while let Some((word, tail)) = rest.split_once(' ') {
        match word.split_once('=') {
            Some((name, value))
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') =>
            {
                env.push((name, value));
                rest = tail.trim_start();
            }
            _ => break,
        }
    }
    (env, rest)
}

/// Whether `text` (a code span or a code-block line) is a benchmark command.
fn is_command(text: &str) -> bool {
    let (_, text) = split_env(text);
    (text.starts_with("cargo bench ") && text.contains("--bench "))
        || text == "bench/run.sh"
        || text.starts_with("bench/run.sh ")
}

/// The benchmark commands of one file: code spans in prose, whole lines in code blocks
/// (without a trailing `# comment`). Doc-comment markers are stripped first.
fn commands_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    for raw in text.lines() {
        let line = raw.trim_start();
        let line = ["//!", "///"]
            .iter()
            .find_map(|m| line.strip_prefix(m))
            .unwrap_or(line)
            .trim();
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let command = line.split(" #").next().unwrap_or("").trim();
            if is_command(command) {
                found.push(command.to_string());
            }
        } else {
            // Odd pieces between backticks are code spans.
            for span in line.split('`').skip(1).step_by(2) {
                if is_command(span.trim()) {
                    found.push(span.trim().to_string());
                }
            }
        }
    }
    found
}

/// Runs `args` (with `env` set) from the repository root; panics with its output unless it
/// succeeds.
fn run(documented: &str, env: &[(&str, &str)], args: &[String]) {
    let (program, rest) = args.split_first().expect("a command has a program");
    let program = if program == "cargo" {
        std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
    } else {
        program.clone()
    };
    let started = Instant::now();
    let mut child = Command::new(&program)
        .args(rest)
        .envs(env.iter().copied())
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{documented}`: cannot start {program}: {e}"));
    // Drain both pipes on their own threads so a chatty command cannot block on a full pipe.
    let out = child.stdout.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut v = String::new();
            std::io::Read::read_to_string(&mut s, &mut v).ok();
            v
        })
    });
    let err = child.stderr.take().map(|mut s| {
        std::thread::spawn(move || {
            let mut v = String::new();
            std::io::Read::read_to_string(&mut s, &mut v).ok();
            v
        })
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let tail = |s: &str| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "the documented command `{documented}` fails from the repository root as {args:?} \
             ({s}):\n--- stdout\n{}\n--- stderr\n{}",
            tail(&stdout),
            tail(&stderr)
        ),
        None => panic!("`{documented}` ran longer than {LIMIT:?} as {args:?}; killed"),
    }
}

#[test]
fn extraction_finds_spans_and_block_lines_but_not_mentions() {
    let doc = "Run `cargo bench -p x --bench a` or see `cargo bench` and `bench/run.sh`.\n\
               ```sh\nbench/run.sh --quick    # comment\ncargo test\n```\n\
               //! cargo bench --bench b -- --seconds 5\n\
               Only memory: `BENCH_RGW=shared bench/run.sh --workloads= --no-memory`.\n";
    let found = commands_in(doc);
    assert_eq!(
        found,
        [
            "cargo bench -p x --bench a",
            "bench/run.sh",
            "bench/run.sh --quick",
            "BENCH_RGW=shared bench/run.sh --workloads= --no-memory"
        ]
    );
    assert_eq!(
        split_env(&found[3]),
        (
            vec![("BENCH_RGW", "shared")],
            "bench/run.sh --workloads= --no-memory"
        )
    );
}

#[test]
fn every_documented_benchmark_command_runs_from_the_repository_root() {
    let mut commands: Vec<(String, &str)> = Vec::new();
    for file in DOCUMENTED_IN {
        let text = std::fs::read_to_string(root().join(file))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"));
        for c in commands_in(&text) {
            if !commands.iter().any(|(known, _)| *known == c) {
                commands.push((c, file));
            }
        }
    }
    // The extractor must keep finding what the docs are known to give.
    for wanted in [
        "--bench content",
        "--bench coordinator",
        "bench/run.sh --help",
    ] {
        assert!(
            commands.iter().any(|(c, _)| c.contains(wanted)),
            "no documented command with {wanted:?} found in {DOCUMENTED_IN:?}; found {commands:?}"
        );
    }
    for (command, file) in &commands {
        assert!(
            !command.contains(['"', '\'', '$', '|', ';', '&', '<', '>', '*']),
            "{file}: `{command}` is not a plain command this test can run word by word"
        );
        let (env, words) = split_env(command);
        let mut args: Vec<String> = words.split_whitespace().map(String::from).collect();
        if args[0] == "cargo" {
            if !args.iter().any(|a| a == "--") {
                args.push("--".into());
            }
            args.push("--quick".into());
        } else if !args
            .iter()
            .any(|a| ["--help", "-h", "--dry-run"].contains(&a.as_str()))
        {
            args.push("--dry-run".into());
        }
        eprintln!("{file}: `{command}` -> {env:?} {args:?}");
        run(command, &env, &args);
    }
}
