//! The embedded S3 target: an `s3s-fs` server on 127.0.0.1 in a temporary directory.
//!
//! It exists so `chopsticks run` does something real out of the box, with no endpoint
//! configured. It measures this machine, not Ceph, and says so loudly when it starts.
//! Its data and keys live only as long as the run.

use crate::s3_config::{
    DriverConfig, DriverKind, Secret, WorkloadConfig, DEFAULT_BUCKET, DEFAULT_REGION,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A running embedded target; dropped (or `stop`ped) it shuts down and deletes its data.
pub struct EmbeddedTarget {
    pub endpoint: String,
    access_key: String,
    secret_key: Secret,
    dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

/// Why the embedded target could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the embedded S3 target: {0}; set an endpoint in --workload-config or S3_ENDPOINT_URL instead")]
pub struct TargetError(String);

impl EmbeddedTarget {
    pub async fn start() -> Result<EmbeddedTarget, TargetError> {
        let dir = tempfile::Builder::new()
            .prefix("chopsticks-demo-s3-")
            .tempdir()
            .map_err(|e| TargetError(e.to_string()))?;
        let fs = s3s_fs::FileSystem::new(dir.path()).map_err(|e| TargetError(format!("{e:?}")))?;
        // Random per-process keys: the demo target is not reachable with anything else.
        let access_key = format!("demo{:016x}", rand::random::<u64>());
        let secret_key = Secret::new(format!("{:032x}", rand::random::<u128>()));
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(
                access_key.clone(),
                secret_key.expose().to_string(),
            ));
            b.build()
        };
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| TargetError(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TargetError(e.to_string()))?;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let socket = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(e) => {
                            log::warn!("embedded target: accept failed: {e}");
                            continue;
                        }
                    },
                };
                let _ = socket.set_nodelay(true);
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.cancelled() => {}
                    }
                });
            }
        });
        Ok(EmbeddedTarget {
            endpoint: format!("http://{addr}"),
            access_key,
            secret_key,
            dir,
            shutdown,
        })
    }

    /// Connection settings for the target.
    pub fn workload_config(&self) -> WorkloadConfig {
        WorkloadConfig {
            endpoint: self.endpoint.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            bucket: DEFAULT_BUCKET.to_string(),
            region: DEFAULT_REGION.to_string(),
            driver: DriverKind::default(),
            driver_config: DriverConfig::default(),
            spread: Default::default(),
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn stop(self) {
        self.shutdown.cancel();
    }
}

impl Drop for EmbeddedTarget {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
