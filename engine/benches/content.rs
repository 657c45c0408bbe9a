//! Throughput of object content generation and verification, on one core.
//!
//! Every PUT body is generated and every verified GET body is checked by `chopsticks::load::content`,
//! so these must never be what limits a load test: the goal is at least 2 GB/s per core
//! (DESIGN.md §4). Run from the repository root with `cargo bench -p chopsticks --bench content`
//! (the workspace's default package is the charm, hence `-p`); CI only runs it with `--quick`.
//!
//! Each case processes a 64 MiB buffer repeatedly for about a second; the table shows the
//! median and best pass in GB/s (10^9 bytes per second). `-- --quick` makes one pass over a
//! 4 MiB buffer per case instead: a smoke test of the bench, not a measurement
//! (`engine/tests/bench_commands.rs` runs every documented bench command this way).

use chopsticks::load::content::{check, fill, ContentSeed, GeneratedBody, Verifier};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const GOAL_GB_S: f64 = 2.0;
/// Chunk size of a streamed GET body as the HTTP client typically hands it over.
const READ_CHUNK: usize = 64 * 1024;

/// How long the bench measures: the full run, or `--quick`'s smoke test.
#[derive(Clone, Copy)]
struct Plan {
    /// Bytes each pass processes.
    len: usize,
    /// Passes measured per case (at least).
    min_passes: usize,
    /// Time spent per case (at least).
    min_time: Duration,
}

impl Plan {
    const FULL: Plan = Plan {
        len: 64 * 1024 * 1024,
        min_passes: 5,
        min_time: Duration::from_secs(1),
    };
    const QUICK: Plan = Plan {
        len: 4 * 1024 * 1024,
        min_passes: 1,
        min_time: Duration::ZERO,
    };

    /// Runs `pass` (which processes `len` bytes) until enough time and passes have gone by;
    /// returns (median, best) throughput in GB/s.
    fn measure(self, mut pass: impl FnMut()) -> (f64, f64) {
        pass(); // warm up caches and page in the buffers
        let mut rates = Vec::new();
        let started = Instant::now();
        while rates.len() < self.min_passes || started.elapsed() < self.min_time {
            let t = Instant::now();
            pass();
            rates.push(self.len as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        rates.sort_by(f64::total_cmp);
        (rates[rates.len() / 2], rates[rates.len() - 1])
    }
}

fn main() -> ExitCode {
    let mut quick = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            // `cargo bench` passes this to every bench binary.
            "--bench" => {}
            "--quick" => quick = true,
            other => {
                eprintln!("error: unknown argument {other}; the only flag is --quick");
                return ExitCode::from(2);
            }
        }
    }
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    let len = plan.len;
    let seed = ContentSeed::for_key(42, "chopsticks/bench/object");
    let mut buf = vec![0u8; len];
    let mut reference = vec![0u8; len];
    fill(seed, 0, &mut reference);

    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();
    rows.push((
        "fill (offset 0)",
        plan.measure(|| fill(seed, 0, black_box(&mut buf))),
    ));
    rows.push((
        "fill (offset 3, unaligned)",
        plan.measure(|| fill(seed, 3, black_box(&mut buf))),
    ));
    rows.push((
        "check (offset 0)",
        plan.measure(|| {
            let ok = check(seed, 0, black_box(&reference));
            assert!(ok.is_ok());
        }),
    ));
    let mut shifted = vec![0u8; len];
    fill(seed, 5, &mut shifted);
    rows.push((
        "check (offset 5, unaligned)",
        plan.measure(|| {
            let ok = check(seed, 5, black_box(&shifted));
            assert!(ok.is_ok());
        }),
    ));
    rows.push((
        "GeneratedBody (PUT stream)",
        plan.measure(|| {
            let mut body = GeneratedBody::new(seed, 0, len as u64);
            let mut total = 0usize;
            while let Some(chunk) = body.next_chunk() {
                total += black_box(chunk).len();
            }
            assert_eq!(total, len);
        }),
    ));
    rows.push((
        "Verifier (GET stream, 64KiB)",
        plan.measure(|| {
            let mut v = Verifier::new(seed, 0, len as u64);
            for chunk in reference.chunks(READ_CHUNK) {
                v.update(black_box(chunk));
            }
            assert!(v.finish().is_ok());
        }),
    ));

    println!(
        "\nchopsticks content throughput, one core, {} MiB buffers",
        len >> 20
    );
    if quick {
        println!("(--quick: one pass per case, a smoke test of the bench, not a measurement)");
    }
    println!("{:<32} {:>12} {:>12}", "case", "median GB/s", "best GB/s");
    for (name, (median, best)) in &rows {
        println!("{name:<32} {median:>12.2} {best:>12.2}");
    }
    let slowest = rows
        .iter()
        .map(|(name, (median, _))| (*name, *median))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let (false, Some((name, rate))) = (quick, slowest) {
        let verdict = if rate >= GOAL_GB_S { "MET" } else { "NOT MET" };
        println!(
            "\ngoal: >= {GOAL_GB_S:.1} GB/s per core for generation and verification: {verdict} \
             (slowest: {name}, median {rate:.2} GB/s)"
        );
    }
    ExitCode::SUCCESS
}
