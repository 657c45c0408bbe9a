//! The worker daemon's side of the connection: connect to the coordinator's `/ws` with the
//! cluster token, say hello, serve the session, and when the coordinator is lost, cut the
//! users off and reconnect with capped exponential backoff — forever, until shut down.

use crate::cluster::protocol::{FromWorker, ToWorker, PROTOCOL_VERSION};
use crate::cluster::worker::{self, Link, SessionEnd, WorkerOptions};
use crate::control::token::Token;
use crate::load::driver::Driver;
use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Where and as whom a worker connects.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// `ws://host:port/ws` (an `http://host:port` base is turned into that).
    pub url: String,
    pub token: Token,
    pub name: String,
    /// Where to keep [`LinkStatus`] current, for the charm's status and `test-status`.
    pub status_file: Option<std::path::PathBuf>,
}

/// The worker's connection as last seen, written to the status file on every change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LinkStatus {
    /// `connecting`, `connected` or `refused`.
    pub state: String,
    pub coordinator: String,
    pub worker_id: Option<u32>,
    /// RFC 3339 time of the change.
    pub since: String,
    pub detail: Option<String>,
}

impl ConnectorConfig {
    fn report(&self, state: &str, worker_id: Option<u32>, detail: Option<String>) {
        let Some(path) = &self.status_file else {
            return;
        };
        let status = LinkStatus {
            state: state.to_string(),
            coordinator: self.url.clone(),
            worker_id,
            since: crate::results::artifacts::now_rfc3339(),
            detail,
        };
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec_pretty(&status)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            log::warn!("cannot write worker status {}: {e}", path.display());
        }
    }
}

/// First and largest pause between connection attempts.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a coordinator address cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddressError {
    #[error("coordinator address '{given}' is not a URL ({reason}); write it as HOST:PORT or ws://HOST:PORT")]
    NotAUrl { given: String, reason: String },
    #[error("coordinator address scheme '{0}' is not supported; use ws:// or http://")]
    Scheme(String),
    #[error("cannot use scheme {scheme} with '{given}'")]
    SchemeMismatch { scheme: &'static str, given: String },
    #[error("coordinator address '{0}' has no host")]
    NoHost(String),
}

/// Normalizes what an operator gives (`host:port`, `http://host:port`, `ws://host:port/ws`).
pub fn worker_url(given: &str) -> Result<String, AddressError> {
    let given = given.trim().trim_end_matches('/');
    let with_scheme = if given.contains("://") {
        given.to_string()
    } else {
        format!("ws://{given}")
    };
    let mut url = reqwest::Url::parse(&with_scheme).map_err(|e| AddressError::NotAUrl {
        given: given.to_string(),
        reason: e.to_string(),
    })?;
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => return Err(AddressError::Scheme(other.to_string())),
    };
    url.set_scheme(scheme)
        .map_err(|_| AddressError::SchemeMismatch {
            scheme,
            given: given.to_string(),
        })?;
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/ws");
    }
    if url.host_str().is_none() {
        return Err(AddressError::NoHost(given.to_string()));
    }
    Ok(url.to_string())
}

/// What one connection attempt came to.
enum Attempt {
    /// A session ran (so the next attempt starts with a short pause again).
    Served(SessionEnd),
    /// Could not connect or was refused; the reason is logged.
    Failed,
}

/// Connects, serves and reconnects until `shutdown`.
pub async fn run<D: Driver>(
    driver: Arc<D>,
    config: ConnectorConfig,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_START;
    config.report("connecting", None, None);
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = attempt(Arc::clone(&driver), &config, &options, shutdown.clone()) => a,
        };
        match attempt {
            Attempt::Served(SessionEnd::Shutdown) => return,
            Attempt::Served(SessionEnd::CoordinatorLost) => {
                log::warn!("lost the coordinator at {}; reconnecting", config.url);
                config.report("connecting", None, Some("lost the coordinator".into()));
                backoff = BACKOFF_START;
            }
            Attempt::Failed => {}
        }
        // Jitter keeps a fleet of workers from reconnecting in lockstep.
        let pause = backoff.mul_f64(0.75 + rand::random::<f64>() * 0.5);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn attempt<D: Driver>(
    driver: Arc<D>,
    config: &ConnectorConfig,
    options: &WorkerOptions,
    shutdown: CancellationToken,
) -> Attempt {
    let mut request = match config.url.as_str().into_client_request() {
        Ok(r) => r,
        Err(e) => {
            log::error!("bad coordinator URL {}: {e}", config.url);
            return Attempt::Failed;
        }
    };
    match config.token.header_value().parse() {
        Ok(v) => {
            request
                .headers_mut()
                .insert(axum::http::header::AUTHORIZATION, v);
        }
        Err(_) => {
            log::error!("the cluster token contains characters not allowed in a header");
            return Attempt::Failed;
        }
    }
    let (socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(s) => s,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            log::error!(
                "coordinator {} refused this worker (HTTP {}): {body}",
                config.url,
                response.status()
            );
            config.report("refused", None, Some(body));
            return Attempt::Failed;
        }
        Err(e) => {
            log::info!("cannot reach the coordinator at {}: {e}", config.url);
            return Attempt::Failed;
        }
    };
    let (mut sink, mut stream) = socket.split();
    let hello = FromWorker::Hello {
        protocol: PROTOCOL_VERSION,
        name: config.name.clone(),
        engine_version: crate::VERSION.to_string(),
    };
    let Ok(text) = serde_json::to_string(&hello) else {
        return Attempt::Failed;
    };
    if sink.send(Message::Text(text.into())).await.is_err() {
        return Attempt::Failed;
    }
    let welcome = tokio::time::timeout(WELCOME_TIMEOUT, stream.next()).await;
    let worker_id = match welcome {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ToWorker>(&text) {
            Ok(ToWorker::Welcome { worker_id, .. }) => worker_id,
            Ok(ToWorker::Refused { reason }) => {
                log::error!("coordinator {} refused this worker: {reason}", config.url);
                config.report("refused", None, Some(reason));
                return Attempt::Failed;
            }
            _ => {
                log::error!(
                    "coordinator {} answered hello with something else",
                    config.url
                );
                return Attempt::Failed;
            }
        },
        _ => {
            log::warn!("no welcome from the coordinator at {}", config.url);
            return Attempt::Failed;
        }
    };
    log::info!(
        "connected to the coordinator at {} as worker #{worker_id}",
        config.url
    );
    config.report("connected", Some(worker_id), None);

    let (to_coordinator, mut outbox) = mpsc::channel::<FromWorker>(256);
    let (inbox, from_coordinator) = mpsc::channel::<ToWorker>(256);
    // Outgoing: session → socket.
    let writer = tokio::spawn(async move {
        while let Some(msg) = outbox.recv().await {
            let Ok(text) = serde_json::to_string(&msg) else {
                continue;
            };
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // Incoming: socket → session. Dropping `inbox` tells the session the link is gone.
    let reader = tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(text)) => match serde_json::from_str::<ToWorker>(&text) {
                    Ok(msg) => {
                        if inbox.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => log::warn!("malformed message from the coordinator ({e}); ignored"),
                },
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    // A run this worker was cut from goes to the coordinator first (see crate::cluster::cut_run).
    if let Some(cut) = options
        .totals_dir
        .as_deref()
        .and_then(crate::cluster::cut_run::load)
    {
        log::info!("reporting run {} it was cut from", cut.spec.run_id);
        let _ = to_coordinator
            .send(FromWorker::CutRun { run: Box::new(cut) })
            .await;
    }
    let end = worker::serve(
        driver,
        worker_id,
        Link {
            tx: to_coordinator,
            rx: from_coordinator,
        },
        options.clone(),
        shutdown,
    )
    .await;
    reader.abort();
    // The writer ends once the session's sender is dropped, after flushing what it holds.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    Attempt::Served(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_addresses_normalize() {
        assert_eq!(
            worker_url("10.0.0.5:8090").unwrap(),
            "ws://10.0.0.5:8090/ws"
        );
        assert_eq!(worker_url("http://h:1/").unwrap(), "ws://h:1/ws");
        assert_eq!(worker_url("ws://h:1/ws").unwrap(), "ws://h:1/ws");
        assert!(worker_url("ftp://h")
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }
}
