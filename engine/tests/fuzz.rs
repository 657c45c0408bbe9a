//! A fuzz harness on stable Rust (proptest; `cargo fuzz` needs nightly): the scenario parser
//! and validator, the S3 connection file, duration/size/rate/count parsing and the control
//! API's start request take arbitrary input without panicking; every refusal is an error
//! value, and everything accepted is within the bounds of `chopsticks::limits`.
//!
//! The normal test run tries proptest's default number of cases per property (256). For a
//! longer run: `PROPTEST_CASES=100000 cargo test --release -p chopsticks --test fuzz`.
//! Inputs worth keeping live in `tests/fuzz_corpus/<target>/`: `ok-*` files must be
//! accepted, `bad-*` files refused; [`corpus_replays`] runs them all.

use chopsticks::cluster::coordinator::StartSpec;
use chopsticks::control::StartRequest;
use chopsticks::limits;
use chopsticks::load::scenario::{Scenario, Source, Wait};
use chopsticks::s3_config::{Env, WorkloadFile};
use chopsticks::size::ByteSize;
use proptest::prelude::*;
use std::path::Path;
use std::time::Duration;

/// Input size per case: large enough to reach every field, small enough to stay fast.
const MAX_INPUT: usize = 4096;

struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

/// What a target made of one input.
#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted,
    Refused(String),
}

/// Scenario text → parsed and validated; an accepted scenario keeps every number in bounds
/// and survives a YAML round trip.
fn scenario(text: &str) -> Outcome {
    match Scenario::from_yaml(text, Source("fuzz".into())) {
        Ok(s) => {
            for class in &s.users {
                let waits = match class.wait {
                    Wait::Constant(v) | Wait::Pacing(v) => vec![v],
                    Wait::Between([a, b]) => vec![a, b],
                };
                for w in waits {
                    limits::WAIT
                        .secs("wait", w)
                        .unwrap_or_else(|e| panic!("accepted a wait past its bound: {e}"));
                }
                assert!(class.tasks.len() <= limits::input::MAX_TASKS_PER_CLASS);
                for t in &class.tasks {
                    if let Some(size) = &t.size {
                        assert!(size.max() <= limits::MAX_OBJECT, "{size:?}");
                    }
                }
            }
            let text = serde_yaml_ng::to_string(&s).expect("an accepted scenario serializes");
            let back = Scenario::from_yaml(&text, Source("round trip".into()))
                .unwrap_or_else(|e| panic!("an accepted scenario must parse again: {e}\n{text}"));
            assert_eq!(back, s);
            Outcome::Accepted
        }
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// Connection file text → resolved; accepted timeouts convert without overflow.
fn connection(text: &str) -> Outcome {
    let resolved = WorkloadFile::parse(text, "fuzz").and_then(|f| f.resolve_file(&NoEnv, "fuzz"));
    match resolved {
        Ok(c) => {
            let d = &c.driver_config;
            assert!(d.connect_timeout() <= limits::REQUEST_TIMEOUT.max);
            for bytes in [0, 1 << 20, limits::MAX_OBJECT, u64::MAX] {
                let _ = d.timeout_for(bytes);
            }
            assert!(!c.endpoint.is_empty());
            Outcome::Accepted
        }
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// Duration text → bounded duration.
fn duration(text: &str) -> Outcome {
    match chopsticks::duration::parse(text) {
        Ok(d) => {
            assert!(
                d > Duration::ZERO && d <= limits::RUN_TIME.max,
                "{text:?}: {d:?}"
            );
            Outcome::Accepted
        }
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// A start request as JSON → the coordinator's one parse of it (`StartSpec`: numbers checked,
/// scenario resolved and compiled); accepted numbers pass the coordinator's conversions.
fn start(text: &str) -> Outcome {
    let request: StartRequest = match serde_json::from_str(text) {
        Ok(r) => r,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    check_start(&request)
}

fn check_start(request: &StartRequest) -> Outcome {
    match StartSpec::from_request(request) {
        Ok(_) => {
            assert!(request.users >= 1 && request.users as u64 <= limits::USERS.max);
            limits::SPAWN_RATE
                .check("spawn_rate", request.spawn_rate)
                .expect("accepted spawn rate is in bounds");
            if let Some(s) = request.stop_timeout_s {
                limits::STOP_TIMEOUT.secs("stop", s).expect("in bounds");
            }
            if let Some(s) = request.wait_workers_s {
                limits::WAIT_WORKERS.secs("wait", s).expect("in bounds");
            }
            Outcome::Accepted
        }
        Err(e) => Outcome::Refused(e.to_string()),
    }
}

/// Text shaped like the inputs: YAML/JSON punctuation, digits, exponents, units, keys.
fn yamlish() -> impl Strategy<Value = String> {
    let fixed: Vec<&'static str> = vec![
        "name: x\n",
        "users:\n",
        "  - name: a\n",
        "    tasks:\n",
        "      - {op: put, size: 1KiB}\n",
        "      - {op: get, range: 0}\n",
        "      - {op: multipart_put, size: 10MiB, part_size: 5MiB}\n",
        "    wait: {between: [",
        "    wait: {constant: ",
        "    sequence: true\n",
        "prefill: {objects: ",
        "thresholds:\n  - {max_p99: ",
        "size: {lognormal: {median: 1KiB, max: ",
        "&a ",
        "*a",
        "1e20",
        "1e300",
        ".inf",
        ".nan",
        "-1",
        "18446744073709551615",
        "9223372036854775807",
        "GiB",
        "TiB",
        "weight: ",
    ];
    let atoms = prop_oneof![
        proptest::sample::select(fixed).prop_map(str::to_string),
        "[\\[\\]{}:,\\- \n0-9a-z.'\"#&*!|>%]{0,16}",
    ];
    proptest::collection::vec(atoms, 0..64)
        .prop_map(|parts| parts.concat())
        .prop_filter("bounded input", |s| s.len() <= MAX_INPUT)
}

/// A built-in scenario with bytes replaced, inserted or removed.
fn mutated_builtin() -> impl Strategy<Value = String> {
    let builtins: Vec<&'static str> = chopsticks::load::scenario::BUILTINS
        .iter()
        .map(|(_, y)| *y)
        .collect();
    (
        proptest::sample::select(builtins),
        proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, "[ -~\n]{0,8}"), 1..6),
    )
        .prop_map(|(text, edits)| {
            let mut s = text.to_string();
            for (at, kind, piece) in edits {
                let mut i = at.index(s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                match kind {
                    0 => s.insert_str(i, &piece),
                    1 => {
                        let end = (i + piece.len()).min(s.len());
                        let mut end = end;
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.replace_range(i..end, &piece);
                    }
                    _ => {
                        let mut end = (i + 4).min(s.len());
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.replace_range(i..end, "");
                    }
                }
            }
            s
        })
}

/// Numbers that break naive conversions.
fn nasty_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(1e20),
        Just(1e300),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        0.0..10_000.0f64,
    ]
}

proptest! {
    #[test]
    fn scenario_text_never_panics(text in yamlish()) {
        scenario(&text);
    }

    #[test]
    fn mutated_builtins_never_panic(text in mutated_builtin()) {
        scenario(&text);
    }

    #[test]
    fn connection_text_never_panics(
        parts in proptest::collection::vec(prop_oneof![
            proptest::sample::select(vec![
                "endpoint: http://127.0.0.1:7480\n",
                "endpoint: ",
                "access_key: a\n",
                "secret_key: b\n",
                "bucket: ",
                "driver: lean\n",
                "driver: aws-sdk\n",
                "driver_config: {",
                "request_timeout: ",
                "connect_timeout: ",
                "timeout_per_mib: ",
                "retries: ",
            ]).prop_map(str::to_string),
            "[0-9e.+\\-]{1,12}",
            "[a-z:/@?#.\\[\\]{}, \n0-9]{0,24}",
        ], 0..24)
    ) {
        connection(&parts.concat());
    }

    #[test]
    fn duration_text_never_panics(text in prop_oneof![
        "[0-9]{0,30}",
        "[0-9]{1,20}(\\.[0-9]{1,5})?(e[+-]?[0-9]{1,4})?",
        "([0-9]{1,25}(ns|us|ms|s|m|h|d|w|y) ?){1,4}",
        "\\PC{0,40}",
    ]) {
        duration(&text);
    }

    #[test]
    fn size_and_count_text_never_panic(text in prop_oneof![
        "[0-9]{1,30}",
        "[0-9]{1,25}(\\.[0-9]{1,4})? ?(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB|PB|EiB|ZB)",
        "\\PC{0,40}",
    ]) {
        let _ = text.parse::<ByteSize>();
        let _ = limits::USERS.parse("users", &text);
        let _ = limits::ITERATIONS.parse("iterations", &text);
        if let Ok(d) = limits::STOP_TIMEOUT.parse("stop timeout", &text) {
            prop_assert!(d <= limits::STOP_TIMEOUT.max);
        }
        if let Ok(v) = limits::parse_f64("rate", &text, "") {
            if limits::SPAWN_RATE.check("rate", v).is_ok() {
                prop_assert!(v.is_finite() && v > 0.0);
            }
        }
    }

    #[test]
    fn every_seconds_bound_converts_any_f64(v in nasty_f64()) {
        for bound in [limits::RUN_TIME, limits::REQUEST_TIMEOUT, limits::TIMEOUT_PER_MIB,
                      limits::STOP_TIMEOUT, limits::WAIT_WORKERS, limits::CLEANUP_TIMEOUT,
                      limits::WAIT, limits::CTL_WAIT] {
            if let Ok(d) = bound.secs("v", v) {
                prop_assert!(d <= bound.max);
                // The point of the bound: adding it to now cannot overflow.
                let _ = std::time::Instant::now() + d;
            }
        }
    }

    #[test]
    fn start_requests_never_panic(
        users in prop_oneof![any::<u32>(), 0u32..20],
        spawn_rate in nasty_f64(),
        stop in proptest::option::of(nasty_f64()),
        wait in proptest::option::of(nasty_f64()),
        duration in proptest::option::of("[0-9e.]{0,24}(s|m|h|d)?"),
        iterations in proptest::option::of(any::<u64>()),
        workers in proptest::option::of(any::<u32>()),
        run_id in proptest::option::of("[a-z0-9./_\\-]{0,12}"),
        scenario_yaml in proptest::option::of("(name: x\n)?[a-z:{}\\[\\], \n0-9]{0,64}"),
    ) {
        let request = StartRequest {
            scenario: "s3_small_objects".into(),
            scenario_yaml,
            users,
            spawn_rate,
            duration,
            iterations,
            expected_workers: workers,
            wait_workers_s: wait,
            run_id,
            seed: None,
            stop_timeout_s: stop,
            rate: None,
            sweeping: Default::default(),
        };
        check_start(&request);
    }

    #[test]
    fn start_request_json_never_panics(text in prop_oneof![
        "\\{\"scenario\": ?\"[a-z0-9_/.]{0,20}\", ?\"users\": ?[0-9e.\\-]{1,22}, ?\"spawn_rate\": ?[0-9e.\\-]{1,22}(, ?\"stop_timeout_s\": ?[0-9e.\\-]{1,22})?\\}",
        "[\\[\\]{}\":,0-9a-z_ ]{0,80}",
    ]) {
        start(&text);
    }
}

/// One fuzz target: input text to what it made of it.
type Target = fn(&str) -> Outcome;

/// Every file of `target`'s corpus, with whether it must be accepted.
fn corpus(target: &str) -> Vec<(String, String, bool)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(target);
    let mut out: Vec<(String, String, bool)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string();
            let text =
                String::from_utf8_lossy(&std::fs::read(&p).expect("read corpus file")).into_owned();
            let ok = name.starts_with("ok-");
            assert!(
                ok || name.starts_with("bad-"),
                "corpus file {name} must start with ok- or bad-"
            );
            (name, text, ok)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn corpus_replays() {
    let targets: [(&str, Target); 4] = [
        ("scenario", scenario),
        ("connection", connection),
        ("duration", duration),
        ("start", start),
    ];
    for (target, run) in targets {
        let files = corpus(target);
        assert!(files.len() >= 5, "{target}: corpus too small");
        for (name, text, ok) in files {
            let outcome = run(&text);
            match (&outcome, ok) {
                (Outcome::Accepted, true) => {}
                (Outcome::Refused(message), false) => {
                    assert!(!message.trim().is_empty(), "{target}/{name}: empty refusal");
                }
                _ => panic!(
                    "{target}/{name}: expected {} but got {outcome:?}",
                    if ok { "acceptance" } else { "refusal" }
                ),
            }
        }
    }
}
