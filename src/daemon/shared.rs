//! The state the daemon's components share: the config, the syncer and the schedule (replaced
//! on SIGHUP), the sync queue, the event head, and what the daemon is doing right now.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::head_watcher::Identity;
use crate::config::Config;
use crate::queue::{SyncQueue, Trigger};
use crate::schedule::Schedule;
use crate::status;
use crate::store::{callbacks, Store, BUSY_TIMEOUT};
use crate::sync::Syncer;

/// What the daemon is doing right now, for status replies.
#[derive(Debug, Default)]
pub struct Live {
    pub running: Option<(Trigger, DateTime<Utc>)>,
    pub retry: Option<(u32, DateTime<Utc>)>,
    /// The last config reload that was refused, with why; cleared by a reload that succeeds.
    pub reload_rejected: Option<(DateTime<Utc>, String)>,
    /// Settings changed in the file that take effect only after a restart.
    pub restart_needed: Vec<String>,
}

pub struct Shared {
    pub config: RwLock<Config>,
    pub syncer: RwLock<Arc<Syncer>>,
    pub schedule: RwLock<Schedule>,
    pub queue: Arc<SyncQueue>,
    pub live: Mutex<Live>,
    /// The store's event head, published to subscribers after every commit.
    pub head: watch::Sender<i64>,
    /// What the daemon is doing, in one line: systemd shows it as the unit's status.
    pub activity: watch::Sender<String>,
    /// The store the daemon started with.
    pub identity: Identity,
    /// Wakes the userid lookups (after a completed run).
    pub lookups_wanted: tokio::sync::Notify,
    /// What the callback receiver has seen, when it runs.
    pub callback_counters: Option<std::sync::Arc<crate::callback::Counters>>,
    /// Set when the daemon cannot go on (its store was replaced): it then stops with an error.
    pub fatal: watch::Sender<Option<String>>,
}

/// A poisoned lock only means a panic elsewhere; the data it guards is still whole.
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn store_path(&self) -> PathBuf {
        read(&self.config).store.path.clone()
    }

    pub fn set_activity(&self, activity: String) {
        self.activity.send_replace(activity);
    }

    /// Stops the daemon with an error: logged, shown as systemd's status, and the exit status.
    pub fn fail(&self, problem: String) {
        tracing::error!(%problem, "stopping");
        self.set_activity(format!("STOPPED: {problem}"));
        self.fatal.send_replace(Some(problem));
    }

    pub fn syncer(&self) -> Arc<Syncer> {
        read(&self.syncer).clone()
    }

    pub fn schedule(&self) -> Schedule {
        read(&self.schedule).clone()
    }

    /// The status reply: the store's view plus what the daemon is doing.
    pub fn status(&self) -> Result<Value, String> {
        let config = read(&self.config).clone();
        let schedule = self.schedule();
        let store =
            Store::open_existing(&config.store.path, BUSY_TIMEOUT).map_err(|e| e.to_string())?;
        let mut report =
            status::collect(store.conn(), &config.wecom.corp_id, &schedule, Utc::now())
                .map_err(|e| e.to_string())?;
        let live = self.live();
        report.daemon = Some(json!({
            "pid": std::process::id(),
            "running": live.running.map(|(trigger, since)| json!({"trigger": trigger, "since": since.to_rfc3339()})),
            "queued": self.queue.is_pending(),
            "retry": live.retry.map(|(attempt, at)| json!({"attempt": attempt, "at": at.to_rfc3339()})),
            "reload_rejected": live.reload_rejected.as_ref().map(|(at, error)| json!({"at": at.to_rfc3339(), "error": error})),
            "restart_needed": live.restart_needed,
            "callbacks": self.callback_counters.as_ref().map(|counters| json!({
                "recorded": counters.recorded.load(Ordering::Relaxed),
                "duplicates": counters.duplicates.load(Ordering::Relaxed),
                "ignored": counters.ignored.load(Ordering::Relaxed),
                "refused": counters.refused.load(Ordering::Relaxed),
                "pending": callbacks::pending_count(store.conn()).ok(),
            })),
        }));
        serde_json::to_value(report).map_err(|e| e.to_string())
    }
}

/// A time in the schedule's zone, the one operators think in: `2026-11-23 02:00:00 CST`.
pub fn local_time(at: DateTime<Utc>, schedule: &Schedule) -> String {
    at.with_timezone(&schedule.timezone())
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}
