//! Runs the userid lookups of matching ([`crate::matching::lookup`]) in the background: soon
//! after host users arrive (a put or an import, seen by the host-user set changing), after every
//! completed sync run, and at least every [`RECHECK_EVERY`] (a spent budget resumes the next
//! day, a failed pass is tried again). Lookups never delay a sync: the two commit separately.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::head_watcher;
use super::shared::{read, Shared};
use crate::events::EventSource;
use crate::matching::lookup::{self, Ended};
use crate::shutdown::stopped;
use crate::store::{lookups, Store, BUSY_TIMEOUT};

/// How often the host-user set is checked for changes: "soon" after a put or an import.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// How often a pass runs even when nothing seems to have changed.
const RECHECK_EVERY: Duration = Duration::from_secs(10 * 60);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut fingerprint = None;
    let mut watch_tick = tokio::time::interval(WATCH_EVERY);
    let mut recheck =
        tokio::time::interval_at(tokio::time::Instant::now() + RECHECK_EVERY, RECHECK_EVERY);
    loop {
        let due = tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = shared.lookups_wanted.notified() => true,
            _ = recheck.tick() => true,
            _ = watch_tick.tick() => {
                let now = read_fingerprint(&shared).await;
                let changed = now.is_some() && now != fingerprint;
                if now.is_some() {
                    fingerprint = now;
                }
                changed
            }
        };
        if due {
            pass(&shared, &mut shutdown).await;
        }
    }
}

async fn read_fingerprint(shared: &Shared) -> Option<(i64, Option<String>)> {
    let path = shared.store_path();
    tokio::task::spawn_blocking(move || {
        Store::open_existing(&path, BUSY_TIMEOUT)
            .and_then(|store| lookups::host_users_fingerprint(store.conn()))
    })
    .await
    .ok()?
    .ok()
}

async fn pass(shared: &Shared, shutdown: &mut watch::Receiver<bool>) {
    let (settings, corp_id) = {
        let config = read(&shared.config);
        (config.lookup_settings(), config.wecom.corp_id.clone())
    };
    if !settings.enabled {
        return;
    }
    let client = shared.syncer().client.clone();
    let result = lookup::run(
        &client,
        shared.store_path(),
        EventSource::new(&corp_id),
        &settings,
        shutdown,
    )
    .await;
    match result {
        Ok(summary) => {
            if summary.links_created + summary.links_removed > 0 {
                head_watcher::refresh(shared).await;
            }
            if summary.calls > 0 || matches!(summary.ended, Ended::Failed(_)) {
                tracing::info!(
                    calls = summary.calls,
                    found = summary.hits,
                    not_found = summary.misses,
                    links_created = summary.links_created,
                    links_removed = summary.links_removed,
                    ended = ?summary.ended,
                    "userid lookups"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "userid lookups could not run"),
    }
}
