//! `chopsticks coordinator` and `chopsticks worker`: the long-running daemons the charm's
//! systemd units start. SIGTERM ends them cleanly: the coordinator winds down an active run
//! (cleanup included, state `interrupted`), a worker cuts its users off and exits.

use super::{hostname, Exit};
use crate::cluster::connector::{self, ConnectorConfig};
use crate::cluster::coordinator::{Coordinator, CoordinatorConfig};
use crate::cluster::worker::WorkerOptions;
use crate::control::token::Token;
use crate::load::driver::AnyDriver;
use crate::s3_config::{ProcessEnv, WorkloadConfig, WorkloadFile};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// Where runs are kept (`<state-dir>/<run-id>/`).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/chopsticks")]
    pub state_dir: PathBuf,
    /// Address workers connect to (WebSocket at /ws).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:5557")]
    pub listen: SocketAddr,
    /// Address of the control API. Off loopback, every request must carry the cluster token.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8089")]
    pub control: SocketAddr,
    /// File holding the cluster token.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// S3 connection file, used to prepare runs (bucket, prefill) and clean up after them.
    #[arg(long, value_name = "FILE")]
    pub workload_config: Option<PathBuf>,
    /// Serve the live web UI (charts, workers, stop button, past runs' reports) here. Off
    /// loopback it asks for the cluster token (HTTP Basic password, any user name).
    #[arg(long, value_name = "ADDR:PORT")]
    pub web_ui: Option<SocketAddr>,
    /// How long cleanup keeps retrying (with backoff) before it records a run's objects as
    /// not cleaned up (0s to 1h). Unfinished cleanups are retried at start and before each run.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = super::parse_cleanup_timeout)]
    pub cleanup_timeout: std::time::Duration,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The coordinator: HOST:PORT, http://HOST:PORT or ws://HOST:PORT/ws.
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// File holding the cluster token.
    #[arg(long, value_name = "FILE")]
    pub token_file: PathBuf,
    /// S3 connection file.
    #[arg(long, value_name = "FILE")]
    pub workload_config: Option<PathBuf>,
    /// Name shown in status and run records (default: the host name).
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write this worker's own per-run totals (`<run-id>.worker-<id>.json`).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// File kept up to date with the connection state (JSON), for the charm.
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
}

/// Why a daemon cannot start with the inputs it was given.
#[derive(Debug, thiserror::Error)]
pub(super) enum InputError {
    #[error(transparent)]
    Token(#[from] crate::control::token::TokenError),
    #[error(transparent)]
    Workload(#[from] crate::s3_config::WorkloadError),
    #[error(
        "workload config {origin}: no S3 endpoint; set endpoint in --workload-config (or S3_ENDPOINT_URL)"
    )]
    NoEndpoint { origin: String },
    #[error(transparent)]
    Driver(#[from] crate::load::driver::DriverError),
    #[error(transparent)]
    Address(#[from] crate::cluster::connector::AddressError),
}

/// Loads the S3 connection settings a daemon needs; under systemd the file may come from
/// `LoadCredential=` (`$CREDENTIALS_DIRECTORY/s3_config.yaml`).
pub(super) fn load_workload(path: Option<&Path>) -> Result<WorkloadConfig, InputError> {
    let credential = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(|d| PathBuf::from(d).join("s3_config.yaml"))
        .filter(|p| p.is_file());
    let path = path.map(Path::to_path_buf).or(credential);
    let (file, origin) = match &path {
        Some(p) => (WorkloadFile::load(p)?, p.display().to_string()),
        None => (WorkloadFile::default(), "environment".to_string()),
    };
    let config = file
        .resolve(&ProcessEnv, &origin)?
        .ok_or(InputError::NoEndpoint { origin })?;
    if let Some(warning) = config.insecure_warning() {
        log::warn!("{warning}");
    }
    Ok(config)
}

/// Resolves on the first SIGINT or SIGTERM.
async fn terminated() {
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut i), Ok(mut t)) => {
            tokio::select! {
                _ = i.recv() => {}
                _ = t.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// What both daemons need before they start: the token, the S3 target and a driver for it.
struct Inputs {
    token: Token,
    workload: WorkloadConfig,
    driver: Arc<AnyDriver>,
}

fn inputs(token_file: &Path, workload_config: Option<&Path>) -> Result<Inputs, InputError> {
    let token = Token::load(token_file)?;
    let workload = load_workload(workload_config)?;
    let driver = AnyDriver::new(&workload)?;
    Ok(Inputs {
        token,
        workload,
        driver: Arc::new(driver),
    })
}

pub async fn coordinator(args: CoordinatorArgs) -> Exit {
    let Inputs {
        token,
        workload,
        driver,
    } = match inputs(&args.token_file, args.workload_config.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.state_dir) {
        eprintln!(
            "error: cannot create state dir {}: {e}; check the path and permissions",
            args.state_dir.display()
        );
        return Exit::BadInput;
    }
    let workers_listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {} for workers: {e}; choose a free port",
                args.listen
            );
            return Exit::BadInput;
        }
    };
    let control_listener = match TcpListener::bind(args.control).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {} for control: {e}; choose a free port",
                args.control
            );
            return Exit::BadInput;
        }
    };
    let coordinator = Coordinator::spawn(
        driver,
        CoordinatorConfig {
            state_dir: args.state_dir.clone(),
            target: workload.info(false),
            run_dir_override: None,
            cleanup_timeout: args.cleanup_timeout,
        },
    );
    let control_token = (!args.control.ip().is_loopback()).then(|| token.clone());
    let stop = CancellationToken::new();
    let web_ui = match args.web_ui {
        Some(addr) => match crate::present::webui::serve(
            addr,
            coordinator.clone(),
            args.state_dir.clone(),
            Some(token.clone()),
            stop.clone(),
        )
        .await
        {
            Ok(served) => {
                log::info!("web UI at {}", served.url());
                Some(served)
            }
            Err(e) => {
                eprintln!("error: {e}");
                coordinator.shutdown().await;
                return Exit::BadInput;
            }
        },
        None => None,
    };
    let hub = crate::cluster::hub::router(coordinator.clone(), token);
    let api = crate::control::server::router(coordinator.clone(), control_token);
    let hub_stop = stop.clone();
    let hub_server = tokio::spawn(async move {
        axum::serve(
            workers_listener,
            hub.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { hub_stop.cancelled().await })
        .await
    });
    let api_stop = stop.clone();
    let api_server = tokio::spawn(async move {
        axum::serve(control_listener, api)
            .with_graceful_shutdown(async move { api_stop.cancelled().await })
            .await
    });
    log::info!(
        "coordinator {}: workers connect to {} (/ws), control API on {}, runs in {}, target {} bucket {}",
        crate::VERSION,
        args.listen,
        args.control,
        args.state_dir.display(),
        workload.endpoint,
        workload.bucket
    );
    terminated().await;
    log::info!("terminating: finishing the active run, if any");
    coordinator.shutdown().await;
    stop.cancel();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = hub_server.await;
        let _ = api_server.await;
        if let Some(ui) = web_ui {
            let _ = ui.task.await;
        }
    })
    .await;
    Exit::Ok
}

pub async fn worker(args: WorkerArgs) -> Exit {
    let url = connector::worker_url(&args.coordinator).map_err(InputError::from);
    let checked = url.and_then(|url| {
        inputs(&args.token_file, args.workload_config.as_deref()).map(|i| (url, i))
    });
    let (
        url,
        Inputs {
            token,
            workload,
            driver,
        },
    ) = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::BadInput;
        }
    };
    let name = args.name.unwrap_or_else(hostname);
    log::info!(
        "worker {name} {}: coordinator {url}, target {} bucket {}",
        crate::VERSION,
        workload.endpoint,
        workload.bucket
    );
    let shutdown = CancellationToken::new();
    let signalled = shutdown.clone();
    tokio::spawn(async move {
        terminated().await;
        log::info!("terminating: cutting off users");
        signalled.cancel();
    });
    connector::run(
        driver,
        ConnectorConfig {
            url,
            token,
            name: name.clone(),
            status_file: args.status_file,
        },
        WorkerOptions {
            totals_dir: args.state_dir,
            name: Some(name),
            load_runtime: super::load_runtime(),
        },
        shutdown,
    )
    .await;
    Exit::Ok
}
