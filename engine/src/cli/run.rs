//! `chopsticks run`: a standalone load test — the coordinator and one local worker in this
//! process, the same code the distributed daemons run.

use super::{default_runs_dir, hostname, Exit};
use crate::cluster::coordinator::{Coordinator, CoordinatorConfig};
use crate::cluster::worker::{self, WorkerOptions};
use crate::control::{ControlError, RunState, StartRequest};
use crate::embedded_s3::EmbeddedTarget;
use crate::load::driver::AnyDriver;
use crate::load::scenario::ResolvedScenario;
use crate::present::progress::Progress;
use crate::s3_config::{ProcessEnv, WorkloadFile};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// S3 connection file (endpoint, access_key, secret_key, bucket, region, driver,
    /// driver_config). Without one, S3_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    /// are used; with no endpoint at all, an embedded demo target is started.
    #[arg(long, value_name = "FILE")]
    pub workload_config: Option<PathBuf>,
    /// Scenario: a built-in name (see `chopsticks scenarios`), a YAML file, or a seed path
    /// such as src/chopsticks/scenarios/s3_large_objects.py.
    #[arg(
        long,
        short = 'f',
        value_name = "NAME|PATH",
        default_value = "s3_small_objects"
    )]
    pub scenario_file: String,
    /// Number of virtual users (1 to 1000000; 10 when not given). Not with arrivals (a
    /// scenario's `load.arrival` or --rate).
    #[arg(long, short = 'u', value_parser = super::parse_users)]
    pub users: Option<u32>,
    /// Open-model load: arrivals per second across all workers (e.g. 500/s, 30/m), in place
    /// of the scenario's `load.arrival.rate`; instead of users.
    #[arg(long, value_name = "RATE", value_parser = super::parse_arrival_rate, allow_hyphen_values = true)]
    pub rate: Option<f64>,
    /// Users started per second (a float, 0.001 to 100000).
    #[arg(long, short = 'r', default_value_t = 5.0, value_parser = super::parse_spawn_rate)]
    pub spawn_rate: f64,
    /// How long to run: 90s, 10m, 1h30m. Without it the run lasts until Ctrl-C or
    /// until every user has run its --iterations.
    #[arg(long = "run-time", short = 't', visible_alias = "duration", value_name = "DURATION", value_parser = super::parse_run_time)]
    pub run_time: Option<String>,
    /// Tasks (or sequence passes) each user runs, then stops.
    #[arg(long, short = 'i', value_parser = super::parse_iterations)]
    pub iterations: Option<u64>,
    /// Directory for this run's artifacts (default ./chopsticks-runs/<run-id>/).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// No web UI: only the terminal's progress line and the artifacts.
    #[arg(long)]
    pub headless: bool,
    /// Where to serve the live web UI while the run goes (default 127.0.0.1:8089). Off
    /// loopback a random password is generated and printed (HTTP Basic, any user name).
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "headless")]
    pub web_ui: Option<std::net::SocketAddr>,
    /// Seed for object contents and random choices (random when absent), to repeat a run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run id (default: time-sortable, e.g. 20261122T101500Z-3f9c2a); names the run's
    /// directory and the prefix of its objects.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Seconds in-flight requests may take to finish when the run stops (0 to 3600).
    #[arg(long, default_value_t = 30.0, value_parser = super::parse_stop_timeout)]
    pub stop_timeout: f64,
    /// How long cleanup keeps retrying (with backoff) before it reports the run's objects as
    /// not cleaned up (0s to 1h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = super::parse_cleanup_timeout)]
    pub cleanup_timeout: Duration,
    /// Stop the run once its completed rate (requests/s) has been stable: its coefficient of
    /// variation over --autoterm-window below --autoterm-cv (as warp's --autoterm).
    #[arg(long)]
    pub autoterm: bool,
    /// The window the rate must be stable over (whole seconds, 2s to 1h; default 10s).
    #[arg(long, value_name = "DURATION", requires = "autoterm")]
    pub autoterm_window: Option<String>,
    /// The coefficient of variation below which the rate is stable (e.g. 5%; default 5%).
    #[arg(long, value_name = "PERCENT", requires = "autoterm", value_parser = super::parse_percent, allow_hyphen_values = true)]
    pub autoterm_cv: Option<f64>,
}

/// `chopsticks sweep`: a run's arguments and the sweep's.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// The first step's arrival rate (e.g. 50/s); in place of the scenario's sweep.from.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// The highest rate a step may have (e.g. 5000/s).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Each step's rate is the previous one times this (above 1, e.g. 1.5).
    #[arg(long, conflicts_with = "step", value_parser = super::parse_factor, allow_hyphen_values = true)]
    pub factor: Option<f64>,
    /// Or: each step's rate is the previous one plus this (e.g. 500/s).
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub step: Option<String>,
    /// The longest a step is held, warm-up included (default 60s).
    #[arg(long, value_name = "DURATION")]
    pub step_time: Option<String>,
    /// The start of each step that is not measured (default 5s).
    #[arg(long, value_name = "DURATION")]
    pub warmup: Option<String>,
    /// What a step must meet: p99=50ms[,error_rate=1%].
    #[arg(long, value_name = "SLO", value_parser = super::parse_slo)]
    pub slo: Option<crate::load::sweep::SloBlock>,
}

impl SweepArgs {
    /// The sweep fields the flags set (over the scenario's `sweep:` block).
    pub fn block(&self) -> crate::load::sweep::SweepBlock {
        use crate::load::scenario::RateText;
        crate::load::sweep::SweepBlock {
            from: self.from.clone().map(RateText::Text),
            to: self.to.clone().map(RateText::Text),
            factor: self.factor,
            step: self.step.clone().map(RateText::Text),
            step_time: self.step_time.clone(),
            warmup: self.warmup.clone(),
            slo: self.slo,
            ..Default::default()
        }
    }
}

/// `chopsticks sweep`: checks what only a sweep refuses, runs it, prints its table; exit 0
/// when a knee was found or every step met the SLO, 1 when even the first step broke it (or
/// the sweep did not finish), 2 on bad input.
pub async fn sweep(args: SweepArgs) -> Exit {
    for (given, flag, fix) in [
        (
            args.run.users.is_some(),
            "--users/-u",
            "the sweep's rates set the load: drop -u",
        ),
        (
            args.run.rate.is_some(),
            "--rate",
            "the sweep sets the rate step by step: use --from/--to instead",
        ),
        (
            args.run.iterations.is_some(),
            "--iterations/-i",
            "a sweep ends by its steps: drop -i",
        ),
        (
            args.run.autoterm,
            "--autoterm",
            "a sweep holds each step until stable already: drop --autoterm",
        ),
    ] {
        if given {
            eprintln!("error: {flag} is not for a sweep; {fix}");
            return Exit::BadInput;
        }
    }
    let options = crate::control::SweepOptions {
        sweep: true,
        sweep_config: Some(args.block()),
        autoterm: None,
    };
    let (exit, run_dir) = run_with(args.run, options).await;
    if exit == Exit::BadInput {
        return exit;
    }
    let sweep = run_dir
        .and_then(|d| std::fs::read_to_string(d.join(crate::load::sweep::SWEEP_JSON)).ok())
        .and_then(|t| serde_json::from_str::<crate::load::sweep::SweepResult>(&t).ok());
    match sweep {
        Some(s) => {
            println!("\nsaturation sweep:\n{}", s.table());
            if exit != Exit::Ok {
                exit
            } else if s.success() {
                Exit::Ok
            } else {
                Exit::RunFailed
            }
        }
        None => {
            eprintln!("error: no sweep.json was written");
            Exit::RunFailed
        }
    }
}

/// Users when `-u` is not given.
const DEFAULT_USERS: u32 = 10;

pub async fn run(args: RunArgs) -> Exit {
    let autoterm = args.autoterm.then(|| crate::load::sweep::StableBlock {
        window: args.autoterm_window.clone(),
        cv: args.autoterm_cv.map(crate::load::scenario::Percent),
    });
    let options = crate::control::SweepOptions {
        autoterm,
        ..Default::default()
    };
    run_with(args, options).await.0
}

/// Runs a test with `sweeping`'s sweep or autoterm; returns the exit code and the run's
/// directory once it has one.
async fn run_with(
    args: RunArgs,
    sweeping: crate::control::SweepOptions,
) -> (Exit, Option<PathBuf>) {
    let mut run_dir_made = None;
    let exit = run_inner(args, sweeping, &mut run_dir_made).await;
    (exit, run_dir_made)
}

async fn run_inner(
    args: RunArgs,
    sweeping: crate::control::SweepOptions,
    run_dir_made: &mut Option<PathBuf>,
) -> Exit {
    // Everything the operator typed is checked before anything starts.
    // The scenario is read once, here; the coordinator gets its text, never the path again.
    let resolved = match ResolvedScenario::locate(&args.scenario_file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let (scenario, source) = (&resolved.scenario, resolved.text.origin.clone());
    let arrivals = sweeping.sweep
        || args.rate.is_some()
        || scenario.load.as_ref().is_some_and(|l| l.arrival.is_some());
    if arrivals && (args.users.is_some() || args.iterations.is_some()) {
        let flag = if args.users.is_some() {
            "--users/-u"
        } else {
            "--iterations/-i"
        };
        let why = if args.rate.is_some() {
            "--rate"
        } else {
            "the scenario's load.arrival"
        };
        eprintln!(
            "error: {flag} is for closed-model users, but {why} asks for arrivals at a rate; \
             drop {flag} (the arrival rate sets the load), or run without arrivals"
        );
        return Exit::BadInput;
    }
    let user_stages = scenario.load.as_ref().is_some_and(|l| l.users.is_some());
    // Without --run-time, a run of stages ends with them (a --rate replaces arrival stages).
    let staged = user_stages
        || (args.rate.is_none()
            && scenario
                .load
                .as_ref()
                .and_then(|l| l.arrival.as_ref())
                .is_some_and(|a| a.stages.is_some()));
    if user_stages && args.users.is_some() {
        eprintln!(
            "error: --users/-u sets a constant number of users, but the scenario's load.users.stages sets them stage by stage; drop --users/-u, or remove the stages"
        );
        return Exit::BadInput;
    }
    let users = args.users.unwrap_or(DEFAULT_USERS);
    let origin = args
        .workload_config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "environment".into());
    let file = match &args.workload_config {
        Some(p) => match WorkloadFile::load(p) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::BadInput;
            }
        },
        None => WorkloadFile::default(),
    };
    // A file the operator named must lead to an endpoint; only no configuration at all
    // selects the embedded demo target.
    let config = match &args.workload_config {
        Some(_) => file.resolve_file(&ProcessEnv, &origin).map(Some),
        None => file.resolve(&ProcessEnv, &origin),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let (config, embedded) = match config {
        Some(c) => (c, None),
        None => match EmbeddedTarget::start().await {
            Ok(t) => {
                eprintln!(
                    "\n  *** NO S3 ENDPOINT CONFIGURED: using an embedded LOCAL DEMO S3 target at {} ***\n  \
                     *** (data in {}, deleted at exit). It measures this machine, not Ceph.   ***\n  \
                     *** Point --workload-config (or S3_ENDPOINT_URL) at RadosGW for real numbers. ***\n",
                    t.endpoint,
                    t.data_dir().display()
                );
                (t.workload_config(), Some(t))
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::RunFailed;
            }
        },
    };
    if let Some(warning) = config.insecure_warning() {
        eprintln!("\n  *** {warning} ***\n");
        log::warn!("{warning}");
    }
    // Two drivers, so two connection pools: the coordinator's (prefill, cleanup) opens its
    // connections on the control runtime, the worker's on the load runtime. A connection's
    // I/O runs on the runtime it was opened on, so with one pool the load's requests reused
    // the prefill's connections and ran half on the control threads (docs/benchmarks.md,
    // "Session 24").
    let (driver, worker_driver) =
        match AnyDriver::new(&config).and_then(|d| Ok((d, AnyDriver::new(&config)?))) {
            Ok((d, w)) => (Arc::new(d), Arc::new(w)),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::BadInput;
            }
        };
    let state_dir = args
        .run_dir
        .as_ref()
        .and_then(|d| d.parent().map(|p| p.to_path_buf()))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(default_runs_dir);
    let coordinator = Coordinator::spawn(
        Arc::clone(&driver),
        CoordinatorConfig {
            state_dir: state_dir.clone(),
            target: config.info(embedded.is_some()),
            run_dir_override: args.run_dir.clone(),
            cleanup_timeout: args.cleanup_timeout,
        },
    );
    let shutdown = CancellationToken::new();
    let web_ui = if args.headless {
        None
    } else {
        match start_web_ui(args.web_ui, &coordinator, state_dir, shutdown.clone()).await {
            Ok(ui) => ui,
            Err(e) => {
                eprintln!("error: {e}");
                coordinator.shutdown().await;
                return Exit::BadInput;
            }
        }
    };
    let worker_task = match coordinator.attach(hostname()).await {
        Some((id, link)) => tokio::spawn(worker::serve(
            worker_driver,
            id,
            link,
            WorkerOptions {
                load_runtime: super::load_runtime(),
                ..WorkerOptions::default()
            },
            shutdown.clone(),
        )),
        None => {
            eprintln!("error: the coordinator did not start");
            return Exit::RunFailed;
        }
    };
    let started = coordinator
        .start(StartRequest {
            scenario: args.scenario_file.clone(),
            scenario_yaml: Some(resolved.text.yaml.clone()),
            users,
            spawn_rate: args.spawn_rate,
            duration: args.run_time.clone(),
            iterations: args.iterations,
            expected_workers: Some(1),
            wait_workers_s: Some(10.0),
            run_id: args.run_id.clone(),
            seed: args.seed,
            stop_timeout_s: Some(args.stop_timeout),
            rate: args.rate,
            sweeping: sweeping.clone(),
        })
        .await;
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return match e {
                ControlError::BadRequest(_) => Exit::BadInput,
                _ => Exit::RunFailed,
            };
        }
    };
    *run_dir_made = Some(PathBuf::from(&started.run_dir));
    let load = match (&args.rate, arrivals) {
        _ if sweeping.sweep => "a saturation sweep (arrival rate stepped up)".to_string(),
        (Some(rate), _) => format!("{rate} arrivals/s"),
        (None, true) => "arrivals as the scenario's load.arrival says".to_string(),
        (None, false) if user_stages => format!(
            "users as the scenario's load.users.stages say, started at {}/s",
            args.spawn_rate
        ),
        (None, false) => format!("{users} users at {}/s", args.spawn_rate),
    };
    eprintln!(
        "run {}: scenario {} ({source}), {load}, {}; target {} bucket {}; artifacts in {}",
        started.run_id,
        scenario.name,
        match (args.run_time.as_deref(), args.iterations) {
            (Some(d), Some(i)) => format!("for {d} or {i} iterations per user"),
            (Some(d), None) => format!("for {d}"),
            (None, Some(i)) => format!("{i} iterations per user"),
            (None, None) if sweeping.sweep => "until the sweep ends".into(),
            (None, None) if staged => "until the stages end".into(),
            (None, None) => "until stopped".into(),
        },
        config.endpoint,
        config.bucket,
        started.run_dir
    );

    if let Some(ui) = &web_ui {
        eprintln!("web UI: {}", ui.url());
    }
    let final_status = watch_run(&coordinator, &started.run_id).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), worker_task).await;
    if let Some(ui) = web_ui {
        let _ = tokio::time::timeout(Duration::from_secs(2), ui.task).await;
    }
    coordinator.shutdown().await;
    let was_embedded = embedded.is_some();
    if let Some(t) = embedded {
        t.stop();
    }

    let run_dir = PathBuf::from(&started.run_dir);
    let record = crate::results::artifacts::read_record(&run_dir).ok();
    match std::fs::read_to_string(run_dir.join(crate::results::artifacts::SUMMARY_JSON))
        .ok()
        .and_then(|t| serde_json::from_str::<crate::results::summary::Summary>(&t).ok())
    {
        Some(summary) if summary.total.requests > 0 || final_status.state != RunState::Failed => {
            println!("{}", summary.table());
            if let Some(checks) = &summary.checks {
                println!("{}", checks.line());
            }
        }
        Some(_) => {}
        None => eprintln!("(no summary was written)"),
    }
    let reason = final_status
        .reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    eprintln!(
        "run {} {}{reason}\nartifacts: {}",
        started.run_id,
        final_status.state,
        run_dir.display()
    );
    // Objects left in the bucket make the run fail, whatever its state: the operator must
    // hear where they are and how to remove them.
    let cleanup = record.as_ref().and_then(|r| r.cleanup.as_ref());
    match (cleanup, &record) {
        (Some(c), Some(r)) if c.incomplete() => {
            let config_file = args
                .workload_config
                .as_ref()
                .map(|p| p.display().to_string());
            eprintln!(
                "error: run {}: {}",
                r.run_id,
                crate::cluster::coordinator::incomplete_message(
                    &r.run_id,
                    &r.key_prefix,
                    &r.target.bucket,
                    c,
                    config_file.as_deref()
                )
            );
            return Exit::RunFailed;
        }
        (None, _) if !was_embedded => {
            eprintln!(
                "error: run {}: no cleanup was recorded; objects may be left under chopsticks/{}/: \
                 remove them with: chopsticks cleanup{} --run-id {}",
                started.run_id,
                started.run_id,
                args.workload_config
                    .as_ref()
                    .map(|p| format!(" --workload-config {}", p.display()))
                    .unwrap_or_default(),
                started.run_id
            );
            return Exit::RunFailed;
        }
        _ => {}
    }
    match final_status.state {
        RunState::Completed | RunState::Stopped => Exit::Ok,
        _ => Exit::RunFailed,
    }
}

/// Serves the web UI for a standalone run. The default address is only a convenience: when it
/// is taken (another run has it) the run goes on without a UI. An address the operator chose
/// must work. Off loopback a fresh token guards it, printed for the operator.
async fn start_web_ui(
    chosen: Option<std::net::SocketAddr>,
    coordinator: &Coordinator,
    state_dir: PathBuf,
    stop: CancellationToken,
) -> Result<Option<crate::present::webui::Served>, crate::present::webui::WebUiError> {
    let addr = chosen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8089)));
    let token = (!addr.ip().is_loopback()).then(crate::control::token::Token::generate);
    let served =
        crate::present::webui::serve(addr, coordinator.clone(), state_dir, token.clone(), stop)
            .await;
    match served {
        Ok(s) => {
            if let Some(t) = token {
                eprintln!(
                    "web UI on {addr} needs a login: any user name, password {}",
                    t.expose()
                );
            }
            Ok(Some(s))
        }
        Err(e) if chosen.is_none() => {
            eprintln!("note: no web UI ({e}); pass --web-ui ADDR:PORT to choose another address, or --headless");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Shows progress until the run ends; Ctrl-C / SIGTERM stop it gracefully, a second one cuts
/// in-flight requests off. Cleanup and artifacts happen either way.
async fn watch_run(coordinator: &Coordinator, run_id: &str) -> crate::control::Status {
    let mut updates = coordinator.watch();
    let mut progress = Progress::new();
    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (Some(i), Some(t)),
        _ => (None, None),
    };
    let mut signals = 0u32;
    loop {
        let status = updates.borrow_and_update().clone();
        let ours = status.run_id.as_deref() == Some(run_id);
        if ours && status.state.is_terminal() {
            progress.finish();
            return status;
        }
        if ours {
            progress.update(&status);
        }
        let signalled = async {
            match (sigint.as_mut(), sigterm.as_mut()) {
                (Some(i), Some(t)) => {
                    tokio::select! {
                        _ = i.recv() => {}
                        _ = t.recv() => {}
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    progress.finish();
                    return coordinator.status().await;
                }
            }
            _ = signalled => {
                signals += 1;
                let abort = signals > 1;
                progress.finish();
                if abort {
                    eprintln!("second interrupt: cutting off in-flight requests; cleaning up");
                } else {
                    eprintln!("stopping: letting in-flight requests finish, then cleaning up (interrupt again to cut them off)");
                }
                progress = Progress::new();
                let _ = coordinator.stop(abort).await;
            }
        }
    }
}
