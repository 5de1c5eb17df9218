//! The accept loop: one task per client, a cap on how many, and a clean stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::protocol::{error_reply, ErrorCode};
use super::{connection, listener, ServerContext};

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
    let max = ctx.settings.max_connections;
    let slots = Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS)));
    let mut connections = JoinSet::new();
    tracing::info!(path = %ctx.settings.path.display(), "socket listening");
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    tracing::error!(%error, "socket connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let ctx = Arc::clone(&ctx);
                        connections.spawn(async move {
                            connection::run(stream, ctx).await;
                            drop(slot);
                        });
                    }
                    Err(_) => refuse(&stream, max),
                },
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

/// Resolves when the daemon asks to stop, or can no longer ask (the sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Tells a client over the cap why it is closed. The write never waits: a fresh connection's
/// buffer always has room for one short line, and a refused client gets no more of our time.
fn refuse(stream: &UnixStream, max: usize) {
    tracing::warn!(max, "socket connection refused: too many connections");
    let mut line = error_reply(
        ErrorCode::TooManyConnections,
        &format!("the daemon already serves {max} connections (socket.max_connections); retry later or raise the limit"),
    )
    .to_string();
    line.push('\n');
    let _ = stream.try_write(line.as_bytes());
}
