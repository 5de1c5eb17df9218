//! Drops the events that `events.retention_days` no longer keeps: at start-up, every day, and
//! after every run, so that a daemon whose syncs keep failing (or are rare) still lets old
//! events go.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::shared::{read, Shared};
use crate::shutdown::stopped;
use crate::store::{event_log, Store, BUSY_TIMEOUT};

const PRUNE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            _ = every.tick() => prune(&shared).await,
        }
    }
}

/// One pass (see [`event_log::prune`]). A failure is logged and retried at the next occasion.
pub async fn prune(shared: &Shared) {
    let path = shared.store_path();
    let retention_days = read(&shared.config).events.retention_days;
    let pruned = tokio::task::spawn_blocking(move || {
        let mut store = Store::open_existing(&path, BUSY_TIMEOUT)?;
        event_log::prune(&mut store, Utc::now(), retention_days)
    })
    .await;
    match pruned {
        Ok(Ok(pruned)) if pruned.deleted > 0 => {
            tracing::info!(
                deleted = pruned.deleted,
                oldest = pruned.oldest,
                retention_days,
                "pruned events past their retention"
            );
        }
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "cannot prune the event log"),
        Err(error) => tracing::warn!(%error, "cannot prune the event log"),
    }
}
