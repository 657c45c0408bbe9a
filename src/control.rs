//! The leader's coordinator, reached through its control API on loopback — the charm never
//! runs a test itself, it only asks the daemon. Behind a trait for in-process tests.

use chopsticks::control::client::{ControlClient, CtlError};
use chopsticks::control::{RunStarted, StartRequest, Status, StopReply};
use std::time::Duration;

/// What actions and status need from the coordinator.
pub trait Control {
    fn status(&self) -> Result<Status, CtlError>;
    fn start(&self, request: &StartRequest) -> Result<RunStarted, CtlError>;
    fn stop(&self, abort: bool) -> Result<StopReply, CtlError>;
    /// Polls until run `run_id` has ended or `limit` passed; returns the last status.
    fn wait_ended(&self, run_id: &str, limit: Duration) -> Result<Status, CtlError>;
}

/// How long a status read may take: hooks must never hang on a busy or stuck coordinator.
pub const STATUS_BOUND: Duration = Duration::from_secs(1);

/// The control API over HTTP.
pub struct HttpControl {
    client: ControlClient,
    /// For messages.
    url: String,
    runtime: tokio::runtime::Runtime,
}

impl HttpControl {
    pub fn new(port: u16) -> Result<HttpControl, std::io::Error> {
        let url = format!("http://127.0.0.1:{port}");
        Ok(HttpControl {
            client: ControlClient::new(&url, None),
            url,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }
}

impl Control for HttpControl {
    fn status(&self) -> Result<Status, CtlError> {
        self.runtime.block_on(async {
            match tokio::time::timeout(STATUS_BOUND, self.client.status()).await {
                Ok(answer) => answer,
                Err(_) => Err(CtlError::Unreachable {
                    url: self.url.clone(),
                    detail: format!("no answer within {}s", STATUS_BOUND.as_secs()),
                }),
            }
        })
    }

    fn start(&self, request: &StartRequest) -> Result<RunStarted, CtlError> {
        self.runtime.block_on(self.client.start(request))
    }

    fn stop(&self, abort: bool) -> Result<StopReply, CtlError> {
        self.runtime.block_on(self.client.stop(abort))
    }

    fn wait_ended(&self, run_id: &str, limit: Duration) -> Result<Status, CtlError> {
        self.runtime.block_on(self.client.wait_ended(run_id, limit))
    }
}
