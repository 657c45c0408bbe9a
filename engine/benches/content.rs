//! Throughput of object content generation and verification, on one core.
//!
//! Every PUT body is generated and every verified GET body is checked by `chopsticks::content`,
//! so these must never be what limits a load test: the goal is at least 2 GB/s per core
//! (DESIGN.md §4). Run with `cargo bench -p chopsticks --bench content`; never run in CI.
//!
//! Each case processes a 64 MiB buffer repeatedly for about a second; the table shows the
//! median and best pass in GB/s (10^9 bytes per second).

use chopsticks::content::{check, fill, ContentSeed, GeneratedBody, Verifier};
use std::hint::black_box;
use std::time::{Duration, Instant};

const LEN: usize = 64 * 1024 * 1024;
const GOAL_GB_S: f64 = 2.0;
const MIN_PASSES: usize = 5;
const MIN_TIME: Duration = Duration::from_secs(1);
/// Chunk size of a streamed GET body as the HTTP client typically hands it over.
const READ_CHUNK: usize = 64 * 1024;

/// Runs `pass` (which processes `LEN` bytes) until enough time and passes have gone by;
/// returns (median, best) throughput in GB/s.
fn measure(mut pass: impl FnMut()) -> (f64, f64) {
    pass(); // warm up caches and page in the buffers
    let mut rates = Vec::new();
    let started = Instant::now();
    while rates.len() < MIN_PASSES || started.elapsed() < MIN_TIME {
        let t = Instant::now();
        pass();
        rates.push(LEN as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], rates[rates.len() - 1])
}

fn main() {
    let seed = ContentSeed::for_key(42, "chopsticks/bench/object");
    let mut buf = vec![0u8; LEN];
    let mut reference = vec![0u8; LEN];
    fill(seed, 0, &mut reference);

    let mut rows: Vec<(&str, (f64, f64))> = Vec::new();
    rows.push((
        "fill (offset 0)",
        measure(|| fill(seed, 0, black_box(&mut buf))),
    ));
    rows.push((
        "fill (offset 3, unaligned)",
        measure(|| fill(seed, 3, black_box(&mut buf))),
    ));
    rows.push((
        "check (offset 0)",
        measure(|| {
            let ok = check(seed, 0, black_box(&reference));
            assert!(ok.is_ok());
        }),
    ));
    let mut shifted = vec![0u8; LEN];
    fill(seed, 5, &mut shifted);
    rows.push((
        "check (offset 5, unaligned)",
        measure(|| {
            let ok = check(seed, 5, black_box(&shifted));
            assert!(ok.is_ok());
        }),
    ));
    rows.push((
        "GeneratedBody (PUT stream)",
        measure(|| {
            let mut body = GeneratedBody::new(seed, 0, LEN as u64);
            let mut total = 0usize;
            while let Some(chunk) = body.next_chunk() {
                total += black_box(chunk).len();
            }
            assert_eq!(total, LEN);
        }),
    ));
    rows.push((
        "Verifier (GET stream, 64KiB)",
        measure(|| {
            let mut v = Verifier::new(seed, 0, LEN as u64);
            for chunk in reference.chunks(READ_CHUNK) {
                v.update(black_box(chunk));
            }
            assert!(v.finish().is_ok());
        }),
    ));

    println!(
        "\nchopsticks content throughput, one core, {} MiB buffers",
        LEN >> 20
    );
    println!("{:<32} {:>12} {:>12}", "case", "median GB/s", "best GB/s");
    for (name, (median, best)) in &rows {
        println!("{name:<32} {median:>12.2} {best:>12.2}");
    }
    let slowest = rows
        .iter()
        .map(|(name, (median, _))| (*name, *median))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((name, rate)) = slowest {
        let verdict = if rate >= GOAL_GB_S { "MET" } else { "NOT MET" };
        println!(
            "\ngoal: >= {GOAL_GB_S:.1} GB/s per core for generation and verification: {verdict} \
             (slowest: {name}, median {rate:.2} GB/s)"
        );
    }
}
