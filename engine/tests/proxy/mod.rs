//! A TCP proxy in front of the shared RadosGW that a test can stall or make refuse, so server
//! faults are injected without touching the RadosGW other tests use.
//!
//! - `Forward`: bytes pass both ways (each upstream→client chunk after `delay`, if set).
//! - `Stall`: connections stay open but no byte moves until the mode changes; new connections
//!   are accepted and held too. Requests in flight complete when forwarding resumes.
//! - `Refuse`: every connection, open or new, is reset at once (a connection failure).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Stall,
    Refuse,
}

pub struct Proxy {
    /// `http://127.0.0.1:PORT`, to use as the workload's endpoint.
    pub endpoint: String,
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
    /// Client connections accepted so far (refused ones included).
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, delay: Duration) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (mode, watching) = watch::channel(Mode::Forward);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                if *watching.borrow() == Mode::Refuse {
                    reset(client);
                    continue;
                }
                let upstream = upstream.clone();
                let watching = watching.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        reset(client);
                        return;
                    };
                    serve(client, server, watching, delay).await;
                });
            }
        });
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            mode,
            accept,
            accepted,
        }
    }

    /// Client connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open connections end when they see the sender gone.
    }
}

/// Closes with RST, as a refused or broken connection looks to a client.
fn reset(stream: TcpStream) {
    // Deprecated because a non-zero linger blocks the thread on drop; a zero one does not.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn serve(client: TcpStream, server: TcpStream, mode: watch::Receiver<Mode>, delay: Duration) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = pump(
        &mut client_read,
        &mut server_write,
        mode.clone(),
        Duration::ZERO,
    );
    let down = pump(&mut server_read, &mut client_write, mode.clone(), delay);
    // Either direction ending (EOF, error or Refuse) ends the connection.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    if *mode.borrow() == Mode::Refuse {
        if let (Ok(c), Ok(s)) = (
            client_read.reunite(client_write),
            server_read.reunite(server_write),
        ) {
            reset(c);
            reset(s);
        }
    }
}

/// Copies `from` to `to` until EOF, an error, or `Refuse`; holds every chunk while stalled.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    delay: Duration,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = mode.wait_for(|m| *m == Mode::Refuse) => {
                let _ = changed;
                return;
            }
        };
        // Hold the chunk while stalled; give up on it when refusing (or the proxy is gone).
        match mode.wait_for(|m| *m != Mode::Stall).await {
            Ok(m) if *m == Mode::Refuse => return,
            Ok(_) => {}
            Err(_) => return,
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
