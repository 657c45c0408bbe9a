//! The live web UI: the report's page, fed every second by the coordinator, with a stop
//! button and the list of past runs. Served by `chopsticks coordinator --web-ui ADDR:PORT`
//! and by `chopsticks run` unless `--headless`.
//!
//! | method | path                      | answer                                            |
//! |--------|---------------------------|---------------------------------------------------|
//! | GET    | `/`                       | the live page                                     |
//! | GET    | `/api/status`             | [`Status`](crate::control::Status)                |
//! | GET    | `/api/series?since=N`     | [`SeriesReply`] from point N on                   |
//! | GET    | `/api/live`               | [`LiveView`]: per-task table, distributions, run.json, events |
//! | POST   | `/api/stop`               | stops the active run (JSON body `{"abort": bool}` optional) |
//! | GET    | `/api/runs`               | past runs, newest first                           |
//! | GET    | `/runs/{id}/report.html`  | the run's report (rendered if missing)            |
//! | GET    | `/metrics`                | Prometheus text exposition                        |
//!
//! Access: bound to a loopback address the UI is open; bound anywhere else every request needs
//! the cluster token, as the password of HTTP Basic auth (any user name) or as
//! `Authorization: Bearer <token>`. [`access_for`] refuses to serve off loopback without one.
//! `POST /api/stop` also requires `Content-Type: application/json`, which a foreign page
//! cannot send without a CORS preflight this server never grants.

use crate::cluster::coordinator::{Coordinator, SeriesReply};
use crate::control::token::Token;
use crate::control::ControlError;
use crate::present::report::{self, Distribution, EventLine, ReportData};
use crate::results::artifacts::{self, RunRecord};
use crate::results::summary::Summary;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Events shown on the live page (the newest ones).
const LIVE_EVENTS: usize = 500;

/// Why the web UI cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WebUiError {
    #[error(
        "refusing to serve the web UI on {addr} without authentication: bind it to a loopback \
         address (e.g. 127.0.0.1:{port}) or give the cluster token (--token-file)",
        port = addr.port()
    )]
    NeedsToken { addr: SocketAddr },
    #[error("cannot listen on {addr} for the web UI: {source}; choose a free port with --web-ui ADDR:PORT")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The token a web UI bound to `addr` must demand: none on loopback, else the given one.
pub fn access_for(addr: SocketAddr, token: Option<Token>) -> Result<Option<Token>, WebUiError> {
    if addr.ip().is_loopback() {
        Ok(None)
    } else {
        token.map(Some).ok_or(WebUiError::NeedsToken { addr })
    }
}

/// A web UI being served.
pub struct Served {
    /// The address it listens on (the port filled in when 0 was asked for).
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// The URL to print.
    pub fn url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if self.addr.is_ipv6() {
            format!("[{}]", self.addr.ip())
        } else {
            self.addr.ip().to_string()
        };
        format!("http://{host}:{}/", self.addr.port())
    }
}

/// Binds `addr` and serves the web UI until `stop` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    coordinator: Coordinator,
    state_dir: PathBuf,
    token: Option<Token>,
    stop: CancellationToken,
) -> Result<Served, WebUiError> {
    let token = access_for(addr, token)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| WebUiError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let app = router(coordinator, state_dir, token);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            log::error!("web UI on {bound} stopped: {e}");
        }
    });
    Ok(Served { addr: bound, task })
}

/// A finished run's report data, by run id.
type ReportCache = Arc<Mutex<Option<(String, Arc<ReportData>)>>>;

#[derive(Clone)]
struct Ui {
    coordinator: Coordinator,
    state_dir: PathBuf,
    token: Option<Arc<Token>>,
    /// The last finished run's report data, when the coordinator no longer holds its numbers
    /// in memory (it restarted since).
    cached: ReportCache,
}

/// The web UI's router. `token`: demanded on every request when set.
pub fn router(coordinator: Coordinator, state_dir: PathBuf, token: Option<Token>) -> Router {
    let ui = Ui {
        coordinator,
        state_dir,
        token: token.map(Arc::new),
        cached: Arc::new(Mutex::new(None)),
    };
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/api/series", get(series))
        .route("/api/live", get(live))
        .route("/api/stop", post(stop))
        .route("/api/runs", get(runs))
        .route("/runs/{id}/report.html", get(run_report))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(ui.clone(), authorize))
        .layer(middleware::from_fn(hardening))
        .with_state(ui)
}

async fn authorize(State(ui): State<Ui>, request: Request, next: Next) -> Response {
    if let Some(token) = &ui.token {
        if token.check(request.headers()).is_err() {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"chopsticks\", charset=\"UTF-8\"",
                )],
                "This Chopsticks web UI needs the cluster token: log in with any user name and \
                 the token as the password, or send Authorization: Bearer <token>.\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// Headers every answer carries: never cached, never framed, never sniffed.
async fn hardening(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

struct UiError(ControlError);

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

fn html(body: String, csp: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    html(report::html::live_page(), report::html::LIVE_CSP)
}

async fn status(State(ui): State<Ui>) -> Response {
    Json(ui.coordinator.status().await).into_response()
}

#[derive(Debug, Deserialize)]
struct SeriesQuery {
    #[serde(default)]
    since: usize,
}

async fn series(State(ui): State<Ui>, Query(q): Query<SeriesQuery>) -> Response {
    let reply = ui.coordinator.series(q.since).await;
    if reply.from == 0 && reply.points.is_empty() {
        // A coordinator that restarted since the last run ended has no series in memory:
        // the run's stats_history.csv has it.
        let st = ui.coordinator.status().await;
        if st.state.is_terminal() {
            if let Some(dir) = st.run_dir.as_deref().map(PathBuf::from) {
                let points = tokio::task::spawn_blocking(move || {
                    std::fs::read(dir.join(artifacts::HISTORY_CSV))
                        .map(|b| report::series_from_history(&b))
                        .unwrap_or_default()
                })
                .await
                .unwrap_or_default();
                return Json(SeriesReply {
                    run_id: st.run_id,
                    from: 0,
                    points,
                })
                .into_response();
            }
        }
    }
    Json(reply).into_response()
}

/// What the live page shows beside the status and the series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveView {
    pub run_id: Option<String>,
    /// The run's `run.json` as it is now.
    pub run: Option<RunRecord>,
    pub scenario_yaml: String,
    /// The run's seed in decimal (JavaScript numbers cannot hold every u64).
    pub seed: String,
    /// The per-task table: computed from the merged totals while the run is going.
    pub summary: Option<Summary>,
    pub distributions: Vec<Distribution>,
    /// The newest lines of `events.log`.
    pub events: Vec<EventLine>,
}

async fn live(State(ui): State<Ui>) -> Result<Response, UiError> {
    let m = ui.coordinator.metrics().await.ok_or_else(|| {
        UiError(ControlError::Unavailable(
            "the coordinator is shutting down".into(),
        ))
    })?;
    let st = &m.status;
    let Some(run_id) = st.run_id.clone() else {
        return Ok(Json(LiveView::default()).into_response());
    };
    let dir = st.run_dir.as_deref().map(PathBuf::from);
    let in_memory = m.totals.requests() > 0 || st.state.is_active();
    if !in_memory && st.state.is_terminal() {
        if let Some(dir) = dir {
            return Ok(Json(finished_view(&ui, &run_id, dir).await).into_response());
        }
    }
    let summary = Summary::new(
        &run_id,
        st.state,
        st.scenario.as_deref().unwrap_or_default(),
        st.users_target,
        st.elapsed_s,
        &m.totals,
        &m.tasks,
    );
    let mut distributions = Vec::new();
    for ttfb in [false, true] {
        for (name, _) in &m.tasks {
            let Some(t) = m.totals.tasks.get(name) else {
                continue;
            };
            let h = if ttfb { &t.ttfb } else { &t.latency };
            if h.count() > 0 {
                distributions.push(Distribution {
                    task: name.clone(),
                    kind: if ttfb { "ttfb" } else { "latency" }.into(),
                    count: h.count(),
                    points: report::distribution(h),
                });
            }
        }
    }
    // A finished run's summary.json is the authority (its load time is exact).
    let final_summary = match (&dir, st.state.is_terminal()) {
        (Some(d), true) => std::fs::read_to_string(d.join(artifacts::SUMMARY_JSON))
            .ok()
            .and_then(|t| serde_json::from_str::<Summary>(&t).ok()),
        _ => None,
    };
    let (run, events) = match dir {
        Some(d) => tokio::task::spawn_blocking(move || {
            let run = artifacts::read_record(&d).ok();
            let events = std::fs::read_to_string(d.join(artifacts::EVENTS_LOG))
                .map(|t| {
                    let all = report::parse_events(&t);
                    let skip = all.len().saturating_sub(LIVE_EVENTS);
                    all.into_iter().skip(skip).collect()
                })
                .unwrap_or_default();
            (run, events)
        })
        .await
        .unwrap_or_default(),
        None => (None, Vec::new()),
    };
    Ok(Json(LiveView {
        run_id: Some(run_id),
        scenario_yaml: run
            .as_ref()
            .and_then(|r| serde_yaml_ng::to_string(&r.scenario).ok())
            .unwrap_or_default(),
        seed: run.as_ref().map(|r| r.seed.to_string()).unwrap_or_default(),
        run,
        summary: Some(final_summary.unwrap_or(summary)),
        distributions,
        events,
    })
    .into_response())
}

/// The live view of a finished run whose numbers only its files hold.
async fn finished_view(ui: &Ui, run_id: &str, dir: PathBuf) -> LiveView {
    let cached = ui.cached.lock().ok().and_then(|c| {
        c.as_ref()
            .filter(|(id, _)| id == run_id)
            .map(|(_, d)| Arc::clone(d))
    });
    let data = match cached {
        Some(d) => Some(d),
        None => {
            let loaded = tokio::task::spawn_blocking(move || report::load(&dir).ok())
                .await
                .ok()
                .flatten()
                .map(Arc::new);
            if let (Some(d), Ok(mut c)) = (&loaded, ui.cached.lock()) {
                *c = Some((run_id.to_string(), Arc::clone(d)));
            }
            loaded
        }
    };
    match data {
        Some(d) => LiveView {
            run_id: Some(run_id.to_string()),
            run: Some(d.run.clone()),
            scenario_yaml: d.scenario_yaml.clone(),
            seed: d.seed.clone(),
            summary: d.summary.clone(),
            distributions: d.distributions.clone(),
            events: d.events.clone(),
        },
        None => LiveView {
            run_id: Some(run_id.to_string()),
            ..LiveView::default()
        },
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    #[serde(default)]
    abort: bool,
}

async fn stop(State(ui): State<Ui>, headers: HeaderMap, body: String) -> Result<Response, UiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(UiError(ControlError::BadRequest(
            "send the stop request with Content-Type: application/json (body {} or {\"abort\": true})"
                .into(),
        )));
    }
    let abort = if body.trim().is_empty() {
        false
    } else {
        serde_json::from_str::<StopBody>(&body)
            .map_err(|e| {
                UiError(ControlError::BadRequest(format!(
                    "the stop request is not valid: {e}; send {{}} or {{\"abort\": true}}"
                )))
            })?
            .abort
    };
    let reply = ui.coordinator.stop(abort).await.map_err(UiError)?;
    Ok(Json(reply).into_response())
}

async fn runs(State(ui): State<Ui>) -> Response {
    Json(ui.coordinator.runs()).into_response()
}

async fn metrics(State(ui): State<Ui>) -> Response {
    crate::control::server::metrics_response(&ui.coordinator).await
}

/// The directory of run `id` under `state_dir` (a `--run-dir` may name it differently).
fn find_run_dir(state_dir: &Path, id: &str) -> Option<PathBuf> {
    let valid = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !valid {
        return None;
    }
    let is_it = |d: &Path| artifacts::read_record(d).is_ok_and(|r| r.run_id == id);
    let direct = state_dir.join(id);
    if is_it(&direct) {
        return Some(direct);
    }
    std::fs::read_dir(state_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .find(|d| is_it(d))
}

async fn run_report(
    State(ui): State<Ui>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, UiError> {
    let state_dir = ui.state_dir.clone();
    let wanted = id.clone();
    let rendered = tokio::task::spawn_blocking(move || -> Result<String, ControlError> {
        let dir = find_run_dir(&state_dir, &wanted).ok_or_else(|| {
            ControlError::NotFound(format!(
                "no run '{wanted}' in {}; the runs list (/api/runs) has the ids",
                state_dir.display()
            ))
        })?;
        let record =
            artifacts::read_record(&dir).map_err(|e| ControlError::NotFound(e.to_string()))?;
        let unavailable = |e: report::ReportError| ControlError::Unavailable(e.to_string());
        if record.state.is_active() {
            // Still going: a snapshot, not saved (the final report is written at the end).
            return report::load(&dir)
                .map(|d| report::html::report_page(&d))
                .map_err(unavailable);
        }
        let path = dir.join(report::REPORT_HTML);
        if !path.is_file() {
            report::write(&dir).map_err(unavailable)?;
        }
        std::fs::read_to_string(&path)
            .map_err(|e| ControlError::Unavailable(format!("cannot read {}: {e}", path.display())))
    })
    .await
    .map_err(|e| UiError(ControlError::Unavailable(format!("rendering failed: {e}"))))?
    .map_err(UiError)?;
    Ok(html(rendered, report::html::REPORT_CSP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_loopback_needs_a_token() {
        let t = Token::new("0123456789abcdef0123");
        let lo: SocketAddr = "127.0.0.1:8089".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8089".parse().unwrap();
        assert!(access_for(lo, Some(t.clone())).unwrap().is_none());
        assert!(access_for(any, Some(t)).unwrap().is_some());
        let e = access_for(any, None).unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:8089"), "{e}");
    }

    #[test]
    fn run_ids_cannot_escape_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find_run_dir(dir.path(), "../etc").is_none());
        assert!(find_run_dir(dir.path(), ".hidden").is_none());
        assert!(find_run_dir(dir.path(), "a/b").is_none());
    }
}
