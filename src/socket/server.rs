//! The accept loop: one task per client, fair shares of the slots ([`super::slots`]), and a
//! clean stop.

use crate::shutdown::stopped;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::connection::is_admin;
use super::protocol::{error_reply, ErrorCode};
use super::slots::{Refusal, Slots};
use super::{connection, listener, ServerContext};
use crate::memory;

/// A pause after a failed accept (out of file descriptors, typically), so that the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves clients until `shutdown` turns true (or its sender is dropped), then closes every
/// connection, which ends the subscriptions, and removes the socket file.
pub async fn serve(
    listener: UnixListener,
    ctx: Arc<ServerContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Slots::new(
        ctx.settings.max_connections,
        ctx.settings.max_connections_per_uid,
    );
    let mut connections = JoinSet::new();
    tracing::info!(path = %ctx.settings.path.display(), "socket listening");
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    tracing::error!(%error, "socket connection task failed");
                }
                // After a storm of connections, what they used goes back to the system.
                if connections.is_empty() {
                    tokio::task::spawn_blocking(memory::release_freed);
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // A peer whose credentials cannot be read is nobody in particular.
                    let peer = stream.peer_cred().map_err(|e| e.to_string());
                    let (uid, admin) = peer.as_ref().map_or((u32::MAX, false), |peer| {
                        let admin =
                            is_admin(peer.uid(), peer.gid(), &ctx.settings, ctx.daemon_uid);
                        (peer.uid(), admin)
                    });
                    match slots.admit(uid, admin) {
                        Ok(slot) => {
                            let ctx = Arc::clone(&ctx);
                            connections.spawn(async move {
                                connection::run(stream, peer, ctx).await;
                                drop(slot);
                            });
                        }
                        Err(refusal) => refuse(&stream, &refusal),
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "socket accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    connections.shutdown().await;
    drop(listener);
    listener::remove(&ctx.settings.path);
    tracing::info!("socket closed");
}

/// Tells a client over the cap why it is closed. The write never waits: a fresh connection's
/// buffer always has room for one short line, and a refused client gets no more of our time.
fn refuse(stream: &UnixStream, refusal: &Refusal) {
    let message = match refusal {
        Refusal::Full { max } => {
            tracing::warn!(max, "socket connection refused: too many connections");
            format!("the daemon already serves all the connections it may ({max}, socket.max_connections, some kept for admins); retry later or raise the limit")
        }
        Refusal::PerUid { uid, max } => {
            tracing::warn!(
                uid,
                max,
                "socket connection refused: the peer holds its share"
            );
            format!("uid {uid} already holds {max} connections (socket.max_connections_per_uid); close some, or raise the limit")
        }
    };
    let mut line = error_reply(ErrorCode::TooManyConnections, &message).to_string();
    line.push('\n');
    let _ = stream.try_write(line.as_bytes());
}
