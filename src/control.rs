//! The leader's coordinator, reached through its control API on loopback — the charm never
//! runs a test itself, it only asks the daemon. Behind a trait for in-process tests.

use chopsticks::control::{RunStarted, StartRequest, Status, StopReply};
use chopsticks::ctl::{ControlClient, CtlError};
use std::time::Duration;

/// What actions and status need from the coordinator.
pub trait Control {
    fn status(&self) -> Result<Status, CtlError>;
    fn start(&self, request: &StartRequest) -> Result<RunStarted, CtlError>;
    fn stop(&self, abort: bool) -> Result<StopReply, CtlError>;
    /// Polls until run `run_id` has ended or `limit` passed; returns the last status.
    fn wait_ended(&self, run_id: &str, limit: Duration) -> Result<Status, CtlError>;
}

/// The control API over HTTP.
pub struct HttpControl {
    client: ControlClient,
    runtime: tokio::runtime::Runtime,
}

impl HttpControl {
    pub fn new(port: u16) -> Result<HttpControl, std::io::Error> {
        Ok(HttpControl {
            client: ControlClient::new(&format!("http://127.0.0.1:{port}"), None),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }
}

impl Control for HttpControl {
    fn status(&self) -> Result<Status, CtlError> {
        self.runtime.block_on(self.client.status())
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
