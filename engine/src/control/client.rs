//! A client of the control API, for `chopsticks ctl` and the charm's actions.

use crate::control::token::Token;
use crate::control::{ControlError, RunListing, RunStarted, StartRequest, Status, StopReply};
use crate::results::summary::Summary;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Why a control call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach the coordinator at {url}: {detail}; check that the coordinator (chopsticks-leader) is running")]
    Unreachable { url: String, detail: String },
    /// The coordinator answered with a refusal that says what to fix.
    #[error("{0}")]
    Refused(ControlError),
    #[error("the coordinator at {url} answered {status}: {body}")]
    Unexpected {
        url: String,
        status: u16,
        body: String,
    },
}

/// Talks to one coordinator's control API.
pub struct ControlClient {
    base: String,
    token: Option<Token>,
    http: reqwest::Client,
}

impl ControlClient {
    /// `base`: e.g. `http://127.0.0.1:8089`.
    pub fn new(base: &str, token: Option<Token>) -> ControlClient {
        let base = base.trim_end_matches('/');
        let base = if base.contains("://") {
            base.to_string()
        } else {
            format!("http://{base}")
        };
        ControlClient {
            base,
            token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, CtlError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.header(reqwest::header::AUTHORIZATION, t.header_value());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| CtlError::Unreachable {
            url: self.base.clone(),
            detail: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| CtlError::Unreachable {
            url: self.base.clone(),
            detail: e.to_string(),
        })?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| CtlError::Unexpected {
                url: url.clone(),
                status: status.as_u16(),
                body: format!("{e}: {text}"),
            });
        }
        match serde_json::from_str::<ControlError>(&text) {
            Ok(e) => Err(CtlError::Refused(e)),
            Err(_) => Err(CtlError::Unexpected {
                url,
                status: status.as_u16(),
                body: text,
            }),
        }
    }

    pub async fn status(&self) -> Result<Status, CtlError> {
        self.call(reqwest::Method::GET, "/api/status", None).await
    }

    pub async fn start(&self, request: &StartRequest) -> Result<RunStarted, CtlError> {
        let body = serde_json::to_value(request).map_err(|e| CtlError::Unexpected {
            url: self.base.clone(),
            status: 0,
            body: e.to_string(),
        })?;
        self.call(reqwest::Method::POST, "/api/runs", Some(body))
            .await
    }

    pub async fn stop(&self, abort: bool) -> Result<StopReply, CtlError> {
        self.call(
            reqwest::Method::POST,
            "/api/runs/current/stop",
            Some(serde_json::json!({ "abort": abort })),
        )
        .await
    }

    pub async fn runs(&self) -> Result<Vec<RunListing>, CtlError> {
        self.call(reqwest::Method::GET, "/api/runs", None).await
    }

    pub async fn summary(&self, run_id: &str) -> Result<Summary, CtlError> {
        self.call(reqwest::Method::GET, &format!("/api/runs/{run_id}"), None)
            .await
    }

    /// Polls status until run `run_id` has ended (or `limit` passes); returns the last status.
    pub async fn wait_ended(&self, run_id: &str, limit: Duration) -> Result<Status, CtlError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let s = self.status().await?;
            let ended = s.run_id.as_deref() == Some(run_id) && s.state.is_terminal();
            if ended || tokio::time::Instant::now() >= deadline {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
