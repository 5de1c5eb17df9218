//! Publishes the store's event head to subscribers: after each of the daemon's own runs, and
//! every half second for events another process committed (a manual `orgsync sync` on the same
//! store).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::shared::{stopped, Shared};
use crate::store::{event_log, Store};

/// How often the daemon looks for events committed by another process.
const HEAD_POLL: Duration = Duration::from_millis(500);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tokio::time::sleep(HEAD_POLL) => refresh(&shared).await,
        }
    }
}

/// Publishes the store's event head to subscribers if it moved.
pub async fn refresh(shared: &Shared) {
    let path = shared.store_path();
    let head = tokio::task::spawn_blocking(move || {
        Store::open(&path).and_then(|store| event_log::head(store.conn()))
    })
    .await;
    match head {
        Ok(Ok(head)) => {
            shared.head.send_if_modified(|current| {
                let moved = head > *current;
                if moved {
                    *current = head;
                }
                moved
            });
        }
        Ok(Err(error)) => tracing::warn!(%error, "cannot read the event head"),
        Err(error) => tracing::warn!(%error, "cannot read the event head"),
    }
}
