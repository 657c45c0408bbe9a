//! The `chopsticks` command line: argument types and the dispatch to each subcommand.

mod cleanup;
mod ctl;
mod daemon;
mod run;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: what scripts and CI can rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The run completed (or was stopped by the operator) and its thresholds, if any, passed.
    Ok = 0,
    /// The run failed: the target was unusable, or a threshold was crossed.
    RunFailed = 1,
    /// Bad input: the message says what to fix.
    BadInput = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "chopsticks",
    version,
    about = "Distributed S3 (Ceph RadosGW) stress testing with exact metrics"
)]
pub struct Cli {
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info", value_parser = parse_level)]
    pub log_level: log::LevelFilter,
    /// Also append the log to FILE (created 0640, rotated at 10 MiB, 5 old files kept).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a load test in this process (a coordinator and a local worker).
    Run(run::RunArgs),
    /// A saturation sweep in this process: step the arrival rate up, hold each step until
    /// throughput is stable, stop at the first step that breaks the SLO; writes sweep.json.
    Sweep(run::SweepArgs),
    /// The coordinator daemon: control API, worker hub, stats merge, artifacts.
    Coordinator(daemon::CoordinatorArgs),
    /// A worker daemon: connects to the coordinator and runs the users it assigns.
    Worker(daemon::WorkerArgs),
    /// Drive a running coordinator (start, stop, status, runs, summary).
    Ctl(ctl::CtlArgs),
    /// Remove a run's objects and unfinished uploads (prefix chopsticks/<run-id>/), e.g. after
    /// an incomplete cleanup or a run whose process died; exit 0 only when nothing is left.
    Cleanup(cleanup::CleanupArgs),
    /// Compare two finished runs task by task; with --threshold, exit 1 on a regression.
    Compare {
        /// The baseline run's directory.
        run_a: PathBuf,
        /// The run to judge.
        run_b: PathBuf,
        /// Allowed changes from A to B, e.g. p99=+10%,rps=-5%,error_rate=+1%.
        #[arg(long)]
        threshold: Option<String>,
    },
    /// Render (again) a run's report.html from its saved files.
    Report {
        /// The run's directory (it holds run.json).
        run_dir: PathBuf,
    },
    /// List the built-in scenarios, or validate and print one (a name or a path).
    Scenarios {
        /// A built-in name or a path to a scenario file.
        scenario: Option<String>,
    },
}

// Value parsers: every number on the command line goes through `crate::limits`. The fields a
// start request shares with the control API (users, spawn_rate, duration, iterations) are named
// as in the request, so `run`, `ctl start`, the API and the charm refuse a mistake in the same words.

fn parse_users(s: &str) -> Result<u32, crate::limits::ParseError> {
    let users = crate::limits::USERS.parse("users", s)?;
    crate::limits::USERS
        .check_u32("users", users)
        .map_err(crate::limits::ParseError::Limit)
}

fn parse_spawn_rate(s: &str) -> Result<f64, crate::limits::ParseError> {
    let bound = crate::limits::SPAWN_RATE;
    let v = crate::limits::parse_f64("spawn_rate", s, bound.fix)?;
    bound
        .check("spawn_rate", v)
        .map_err(crate::limits::ParseError::Limit)
}

fn parse_arrival_rate(s: &str) -> Result<f64, crate::load::scenario::RateError> {
    crate::load::scenario::parse_rate("rate", s)
}

fn parse_percent(s: &str) -> Result<f64, crate::limits::ParseError> {
    crate::limits::parse_f64(
        "percent",
        s.trim().trim_end_matches('%'),
        "give a percentage, e.g. 5%",
    )
}

fn parse_factor(s: &str) -> Result<f64, crate::limits::ParseError> {
    crate::limits::parse_f64("factor", s, "give a factor above 1, e.g. 1.5")
}

fn parse_slo(s: &str) -> Result<crate::load::sweep::SloBlock, crate::load::sweep::SweepError> {
    crate::load::sweep::parse_slo(s)
}

fn parse_iterations(s: &str) -> Result<u64, crate::limits::ParseError> {
    crate::limits::ITERATIONS.parse("iterations", s)
}

/// Checked like the control API checks it (and named like its field, so the same mistake gets
/// the same message from every front end); the text is what the start request carries.
fn parse_run_time(s: &str) -> Result<String, crate::duration::DurationError> {
    crate::duration::parse(s).map(|_| s.to_string())
}

fn parse_stop_timeout(s: &str) -> Result<f64, crate::limits::ParseError> {
    crate::limits::STOP_TIMEOUT
        .parse("stop timeout", s)
        .map(|d| d.as_secs_f64())
}

fn parse_cleanup_timeout(s: &str) -> Result<std::time::Duration, crate::duration::DurationError> {
    crate::duration::parse_bounded(s, "cleanup timeout", crate::limits::CLEANUP_TIMEOUT)
}

fn parse_wait_workers(s: &str) -> Result<f64, crate::limits::ParseError> {
    crate::limits::WAIT_WORKERS
        .parse("wait workers", s)
        .map(|d| d.as_secs_f64())
}

fn parse_ctl_wait(s: &str) -> Result<std::time::Duration, crate::limits::ParseError> {
    crate::limits::CTL_WAIT.parse("wait", s)
}

/// A `--log-level` that is not one.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a log level; use error, warn, info, debug or trace")]
struct LevelError(String);

fn parse_level(s: &str) -> Result<log::LevelFilter, LevelError> {
    s.parse().map_err(|_| LevelError(s.to_string()))
}

/// The runtime a worker's users and scheduler run on, apart from the runtime of everything
/// else (see [`crate::cluster::worker::WorkerOptions::load_runtime`]); set by [`main`].
static LOAD_RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// The load runtime, for a worker this process runs.
fn load_runtime() -> Option<tokio::runtime::Handle> {
    LOAD_RUNTIME.get().cloned()
}

/// The runtime everything runs on and, for a command that runs a worker, the load runtime
/// its users and scheduler run on (see [`crate::load::thread_priority`]). Without a worker
/// (the coordinator daemon, ctl, reports), one runtime at the usual priority.
fn runtimes(
    runs_worker: bool,
) -> std::io::Result<(tokio::runtime::Runtime, Option<tokio::runtime::Runtime>)> {
    use crate::load::thread_priority::{prefer_short_slices, yield_to_load_threads};
    let mut control = tokio::runtime::Builder::new_multi_thread();
    control.thread_name("chopsticks-ctl").enable_all();
    if !runs_worker {
        return Ok((control.build()?, None));
    }
    control.on_thread_start(|| {
        if let Err(e) = yield_to_load_threads() {
            log::debug!("control thread: priority unchanged ({e})");
        }
    });
    let load = tokio::runtime::Builder::new_multi_thread()
        .thread_name("chopsticks-load")
        .on_thread_start(|| {
            if let Err(e) = prefer_short_slices() {
                log::debug!("load thread: no short scheduler slice ({e})");
            }
        })
        .enable_all()
        .build()?;
    // A deadline always in the load runtime's timer wheel, at most a second away, so each
    // request's timeout (further away) joins the wheel quietly. With the wheel empty (the
    // open-model scheduler's timer is a timerfd; between requests no timeout is pending),
    // tokio takes every new timeout for the earliest and wakes its driver through an eventfd:
    // a write, a read and an extra `epoll_wait` per request (docs/benchmarks.md, "Session 25").
    load.spawn(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
    });
    Ok((control.build()?, Some(load)))
}

/// Parses arguments and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = crate::logging::init(cli.log_level, cli.log_file.as_deref()) {
        eprintln!("error: {e}");
        return Exit::BadInput.into();
    }
    let runs_worker = matches!(
        cli.command,
        Command::Run(_) | Command::Sweep(_) | Command::Worker(_)
    );
    let (runtime, load) = match runtimes(runs_worker) {
        Ok(rts) => rts,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::RunFailed.into();
        }
    };
    if let Some(load) = &load {
        // Set once, before anything reads it.
        let _ = LOAD_RUNTIME.set(load.handle().clone());
    }
    let exit = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Sweep(args) => run::sweep(args).await,
            Command::Coordinator(args) => daemon::coordinator(args).await,
            Command::Worker(args) => daemon::worker(args).await,
            Command::Ctl(args) => ctl::ctl(args).await,
            Command::Cleanup(args) => cleanup::cleanup_run(args).await,
            Command::Scenarios { scenario } => scenarios(scenario),
            Command::Compare {
                run_a,
                run_b,
                threshold,
            } => compare(&run_a, &run_b, threshold.as_deref()),
            Command::Report { run_dir } => report(&run_dir),
        }
    });
    // Users still cutting off requests must not delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Some(load) = load {
        load.shutdown_timeout(std::time::Duration::from_secs(1));
    }
    exit.into()
}

fn compare(a: &std::path::Path, b: &std::path::Path, threshold: Option<&str>) -> Exit {
    let limits = match threshold.map(crate::present::compare::parse_limits) {
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
        None => Vec::new(),
    };
    let (sa, sb) = match (
        crate::present::compare::load(a),
        crate::present::compare::load(b),
    ) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let c = crate::present::compare::compare(&sa, &sb, &limits);
    println!(
        "A: {} ({})\nB: {} ({})\n",
        sa.run_id, sa.state, sb.run_id, sb.state
    );
    print!("{}", c.table);
    if c.regressions.is_empty() {
        if !limits.is_empty() {
            println!("\nno threshold crossed");
        }
        Exit::Ok
    } else {
        println!("\nREGRESSION:");
        for r in &c.regressions {
            println!("  {r}");
        }
        Exit::RunFailed
    }
}

fn report(dir: &std::path::Path) -> Exit {
    match crate::present::report::write(dir) {
        Ok(path) => {
            println!("{}", path.display());
            Exit::Ok
        }
        Err(e @ crate::present::report::ReportError::Write { .. }) => {
            eprintln!("error: {e}");
            Exit::RunFailed
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::BadInput
        }
    }
}

fn scenarios(which: Option<String>) -> Exit {
    use crate::load::scenario::{Scenario, BUILTINS};
    match which {
        None => {
            for (name, yaml) in BUILTINS {
                let description =
                    Scenario::from_yaml(yaml, crate::load::scenario::Source(name.to_string()))
                        .ok()
                        .and_then(|s| s.description)
                        .unwrap_or_default();
                println!("{name:<24} {description}");
            }
            Exit::Ok
        }
        Some(spec) => match Scenario::resolve(&spec) {
            Ok((scenario, source)) => match serde_yaml_ng::to_string(&scenario) {
                Ok(text) => {
                    println!("# {source}: valid\n{text}");
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::RunFailed
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                Exit::BadInput
            }
        },
    }
}

/// The default directory standalone runs write to.
pub fn default_runs_dir() -> PathBuf {
    PathBuf::from("chopsticks-runs")
}

/// This machine's name, for worker names.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}
