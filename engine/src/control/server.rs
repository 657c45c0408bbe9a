//! The coordinator's control API: JSON over HTTP, for `chopsticks ctl` and the charm.
//!
//! | method | path                       | body / answer                         |
//! |--------|----------------------------|---------------------------------------|
//! | GET    | `/api/status`              | [`Status`]                            |
//! | POST   | `/api/runs`                | [`StartRequest`] → 201 [`RunStarted`] |
//! | POST   | `/api/runs/current/stop`   | `{"abort": bool}` (optional) → [`StopReply`] |
//! | GET    | `/api/runs`                | list of [`RunListing`]                |
//! | GET    | `/api/runs/{id}`           | the run's `summary.json`              |
//! | GET    | `/metrics`                 | Prometheus text exposition            |
//!
//! Errors are `{"error": kind, "message": text}` with a matching status code. When bound to a
//! non-loopback address every request must carry the cluster token.
//!
//! [`Status`]: crate::control::Status
//! [`StartRequest`]: crate::control::StartRequest
//! [`RunStarted`]: crate::control::RunStarted
//! [`StopReply`]: crate::control::StopReply
//! [`RunListing`]: crate::control::RunListing

use crate::cluster::coordinator::Coordinator;
use crate::control::token::Token;
use crate::control::{ControlError, StartRequest};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Clone)]
struct Api {
    coordinator: Coordinator,
    token: Option<Arc<Token>>,
}

/// The control router. `token`: required on every request when set.
pub fn router(coordinator: Coordinator, token: Option<Token>) -> Router {
    let api = Api {
        coordinator,
        token: token.map(Arc::new),
    };
    Router::new()
        .route("/api/status", get(status))
        .route("/api/runs", get(runs).post(start))
        .route("/api/runs/current/stop", post(stop))
        .route("/api/runs/{id}", get(summary))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(api.clone(), authorize))
        .with_state(api)
}

/// An error as the API answers it.
struct ApiError(ControlError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

async fn authorize(State(api): State<Api>, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        if token.check(request.headers()).is_err() {
            return (
                StatusCode::UNAUTHORIZED,
                Json(ControlError::BadRequest(
                    "missing or wrong cluster token: send Authorization: Bearer <token>".into(),
                )),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn status(State(api): State<Api>) -> Response {
    Json(api.coordinator.status().await).into_response()
}

async fn start(
    State(api): State<Api>,
    body: Result<Json<StartRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|e| {
        ApiError(ControlError::BadRequest(format!(
            "the start request is not valid: {}",
            e.body_text()
        )))
    })?;
    let started = api.coordinator.start(request).await.map_err(ApiError)?;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    #[serde(default)]
    abort: bool,
}

async fn stop(State(api): State<Api>, body: Option<Json<StopBody>>) -> Result<Response, ApiError> {
    let abort = body.map(|Json(b)| b.abort).unwrap_or(false);
    let reply = api.coordinator.stop(abort).await.map_err(ApiError)?;
    Ok(Json(reply).into_response())
}

/// Prometheus text exposition.
async fn metrics(State(api): State<Api>) -> Response {
    metrics_response(&api.coordinator).await
}

/// `/metrics` for any router that holds a coordinator.
pub async fn metrics_response(coordinator: &Coordinator) -> Response {
    match coordinator.metrics().await {
        Some(m) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::present::metrics::render(&m),
        )
            .into_response(),
        None => ApiError(ControlError::Unavailable(
            "the coordinator is shutting down".into(),
        ))
        .into_response(),
    }
}

async fn runs(State(api): State<Api>) -> Response {
    Json(api.coordinator.runs()).into_response()
}

async fn summary(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let summary = api.coordinator.summary(&id).map_err(ApiError)?;
    Ok(Json(summary).into_response())
}
