//! The coordinator's worker endpoint: one WebSocket per worker at `/ws` (and `/metrics`
//! for scrapers holding the cluster token).
//!
//! A connection must present the cluster token before the upgrade (else 401 with the reason)
//! and then say `Hello` with our protocol version within a few seconds (else `Refused` with
//! the reason, and close). After `Welcome`, frames are bridged to the coordinator's link for
//! that worker: JSON text in, JSON text out. A frame that does not parse is logged and
//! dropped — a misbehaving peer can never take the coordinator down.

use crate::cluster::coordinator::Coordinator;
use crate::cluster::protocol::{FromWorker, ToWorker, PROTOCOL_VERSION};
use crate::control::token::{AuthError, Token};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Malformed frames tolerated from one connection before it is closed.
const MAX_BAD_FRAMES: u32 = 100;
/// Read buffer of a worker's WebSocket. The library's default, 128 KiB, is allocated per
/// connection and zeroed before every read: with 2,000 workers that was 250 MiB of RSS and
/// the largest single cost of the coordinator's CPU (profiled with the coordinator bench).
/// A stats message is a few KiB, so one usually fits; a larger frame still reserves its whole
/// length when its header is read.
const READ_BUFFER: usize = 16 * 1024;

#[derive(Clone)]
struct Hub {
    coordinator: Coordinator,
    token: Arc<Token>,
}

/// The router serving `/ws`.
pub fn router(coordinator: Coordinator, token: Token) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/metrics", get(metrics))
        .with_state(Hub {
            coordinator,
            token: Arc::new(token),
        })
}

async fn upgrade(
    State(hub): State<Hub>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = hub.token.check(&headers) {
        let reason = match e {
            AuthError::Missing => "no cluster token: send Authorization: Bearer <token>",
            AuthError::Wrong => {
                "wrong cluster token: the worker's token file does not match the coordinator's"
            }
        };
        log::warn!("refused worker connection from {peer}: {reason}");
        return (StatusCode::UNAUTHORIZED, reason).into_response();
    }
    ws.read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| serve(hub, socket, peer))
}

/// `/metrics` on the workers' address, for a Prometheus elsewhere: needs the cluster token
/// (Prometheus: `authorization: {credentials_file: ...}`).
async fn metrics(State(hub): State<Hub>, headers: HeaderMap) -> Response {
    if hub.token.check(&headers).is_err() {
        return (
            StatusCode::UNAUTHORIZED,
            "send the cluster token: Authorization: Bearer <token>",
        )
            .into_response();
    }
    crate::control::server::metrics_response(&hub.coordinator).await
}

async fn send(socket: &mut WebSocket, msg: &ToWorker) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(e) => {
            log::error!("cannot encode a message for a worker: {e}");
            false
        }
    }
}

async fn refuse(mut socket: WebSocket, peer: SocketAddr, reason: String) {
    log::warn!("refused worker {peer}: {reason}");
    let _ = send(&mut socket, &ToWorker::Refused { reason }).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn serve(hub: Hub, mut socket: WebSocket, peer: SocketAddr) {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await;
    let name = match hello {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<FromWorker>(&text) {
            Ok(FromWorker::Hello {
                protocol,
                name,
                engine_version,
            }) => {
                if protocol != PROTOCOL_VERSION {
                    return refuse(
                        socket,
                        peer,
                        format!(
                            "protocol version {protocol} (engine {engine_version}) is not this coordinator's \
                             version {PROTOCOL_VERSION} (engine {}); run the same chopsticks version everywhere",
                            crate::VERSION
                        ),
                    )
                    .await;
                }
                name
            }
            Ok(_) => return refuse(socket, peer, "the first message must be hello".into()).await,
            Err(e) => return refuse(socket, peer, format!("malformed hello: {e}")).await,
        },
        Ok(_) => {
            return refuse(
                socket,
                peer,
                "the first message must be a hello text frame".into(),
            )
            .await
        }
        Err(_) => {
            return refuse(
                socket,
                peer,
                format!("no hello within {}s", HELLO_TIMEOUT.as_secs()),
            )
            .await
        }
    };
    let Some((id, link)) = hub.coordinator.attach(name.clone()).await else {
        return refuse(socket, peer, "the coordinator is shutting down".into()).await;
    };
    let welcome = ToWorker::Welcome {
        worker_id: id,
        coordinator_version: crate::VERSION.to_string(),
    };
    if !send(&mut socket, &welcome).await {
        return;
    }
    log::info!("worker {name} (#{id}) at {peer} joined");
    let crate::cluster::worker::Link { tx, mut rx } = link;
    let mut bad_frames = 0u32;
    loop {
        tokio::select! {
            outgoing = rx.recv() => {
                let Some(msg) = outgoing else { break };
                if !send(&mut socket, &msg).await {
                    break;
                }
            }
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        bad_frames += 1;
                        if bad_frames > MAX_BAD_FRAMES {
                            log::warn!("worker {name} (#{id}) sent {bad_frames} malformed frames; closing");
                            break;
                        }
                        if bad_frames == 1 {
                            log::warn!("worker {name} (#{id}) sent a binary frame; ignored");
                        }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        log::warn!("worker {name} (#{id}) connection error: {e}");
                        break;
                    }
                };
                match serde_json::from_str::<FromWorker>(&text) {
                    Ok(msg) => {
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        bad_frames += 1;
                        // One warning per connection is enough to diagnose; a flood must not
                        // fill the journal.
                        if bad_frames == 1 {
                            log::warn!("worker {name} (#{id}) sent a malformed message ({e}); ignored");
                        }
                    }
                }
                if bad_frames > MAX_BAD_FRAMES {
                    log::warn!("worker {name} (#{id}) sent {bad_frames} malformed messages; closing");
                    break;
                }
            }
        }
    }
    log::info!("worker {name} (#{id}) at {peer} left");
}
