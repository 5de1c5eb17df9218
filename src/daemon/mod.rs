//! `orgsync run`: the long-running daemon. A few tasks with one job each, talking through
//! the sync queue, the event-head watch and a shutdown watch:
//!
//! - the coordinator runs queued syncs one at a time and retries failed ones;
//! - the scheduler queues the nightly sync;
//! - the socket server serves subscribers and requests;
//! - the head watcher publishes new events committed by other processes
//!   (a manual `orgsync sync` on the same store);
//! - the pruner drops events past `events.retention_days`, daily and after every sync.
//!
//! [`run`] adds the signals and systemd's notifications ([`notify`]).

pub mod notify;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::events::EventSource;
use crate::queue::{SyncQueue, Trigger};
use crate::schedule::{Schedule, ScheduleError, Scheduler};
use crate::socket::{self, ServerContext, SocketError, SocketSettings};
use crate::status;
use crate::store::runs;
use crate::store::{event_log, mirror, Store, StoreError};
use crate::sync::{Mode, RunReport, Syncer};
use crate::wecom::WecomError;
use notify::Notifier;

/// How often the daemon looks for events committed by another process.
const HEAD_POLL: Duration = Duration::from_millis(500);

/// How long a socket client may wait before its first request: long enough for a person typing
/// into `socat`, short enough that leaked silent connections free their slots.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the event log is pruned besides after each sync, so that a daemon whose syncs
/// keep failing (or are rare) still lets old events go.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error(transparent)]
    Wecom(#[from] WecomError),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the daemon is doing right now, for status replies.
#[derive(Debug, Default)]
struct Live {
    running: Option<(Trigger, DateTime<Utc>)>,
    retry: Option<(u32, DateTime<Utc>)>,
}

/// State shared by the daemon's tasks. The syncer and schedule are replaced on SIGHUP.
struct Shared {
    config: RwLock<Config>,
    syncer: RwLock<Arc<Syncer>>,
    schedule: RwLock<Schedule>,
    queue: Arc<SyncQueue>,
    live: Mutex<Live>,
    head: watch::Sender<i64>,
    /// What the daemon is doing, in one line: systemd shows it as the unit's status.
    activity: watch::Sender<String>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn store_path(&self) -> PathBuf {
        read(&self.config).store.path.clone()
    }

    fn set_activity(&self, activity: String) {
        self.activity.send_replace(activity);
    }

    /// Publishes the store's event head to subscribers if it moved.
    async fn refresh_head(&self) {
        let path = self.store_path();
        let head = tokio::task::spawn_blocking(move || {
            Store::open(&path).and_then(|store| event_log::head(store.conn()))
        })
        .await;
        match head {
            Ok(Ok(head)) => {
                self.head.send_if_modified(|current| {
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

    /// Drops the events that `events.retention_days` no longer keeps (see
    /// [`event_log::prune`]). A failure is logged and retried at the next occasion.
    async fn prune_events(&self) {
        let path = self.store_path();
        let retention_days = read(&self.config).events.retention_days;
        let pruned = tokio::task::spawn_blocking(move || {
            let mut store = Store::open(&path)?;
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

    /// The status reply: the store's view plus what the daemon is doing.
    fn status(&self) -> Result<Value, String> {
        let config = read(&self.config).clone();
        let schedule = read(&self.schedule).clone();
        let store = Store::open(&config.store.path).map_err(|e| e.to_string())?;
        let mut report =
            status::collect(store.conn(), &config.wecom.corp_id, &schedule, Utc::now())
                .map_err(|e| e.to_string())?;
        let live = self.live();
        report.daemon = Some(json!({
            "pid": std::process::id(),
            "running": live.running.map(|(trigger, since)| json!({"trigger": trigger, "since": since.to_rfc3339()})),
            "queued": self.queue.is_pending(),
            "retry": live.retry.map(|(attempt, at)| json!({"attempt": attempt, "at": at.to_rfc3339()})),
        }));
        serde_json::to_value(report).map_err(|e| e.to_string())
    }
}

fn syncer(config: &Config) -> Result<Syncer, DaemonError> {
    Ok(Syncer::from_config(config)?)
}

/// A running daemon, for `orgsync run` and for `orgsync demo` and the tests, which drive it
/// in-process.
pub struct Daemon {
    shared: Arc<Shared>,
    config_path: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    scheduler: tokio::sync::Mutex<Option<Scheduler>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Opens the store, binds the socket and starts every task. Returns once the daemon is
    /// ready to serve (the point at which systemd is told READY=1).
    pub async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Daemon, DaemonError> {
        let schedule = Schedule::new(&config.schedule.cron, config.schedule.timezone)?;
        let (head, empty, last_completed) = {
            let path = config.store.path.clone();
            let corp = config.wecom.corp_id.clone();
            tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
                let mut store = Store::open(&path)?;
                store.bind_corp(&corp)?;
                let conn = store.conn();
                let state = runs::mark_interrupted(conn).and_then(|interrupted| {
                    if interrupted > 0 {
                        tracing::warn!(interrupted, "earlier runs were interrupted before they finished; nothing of them was applied");
                    }
                    Ok((
                        event_log::head(conn)?,
                        mirror::counts(conn)?.members == 0,
                        runs::last_completed_at(conn)?,
                    ))
                });
                state.map_err(|e| store.explain(e))
            })
            .await
            .map_err(|e| DaemonError::Internal(e.to_string()))??
        };
        let listener = socket::bind(&socket_settings(&config))?;
        let queue = Arc::new(SyncQueue::default());
        let (head_tx, head_rx) = watch::channel(head);
        let (shutdown, shutdown_rx) = watch::channel(false);

        let now = Utc::now();
        let next = schedule
            .next_after(now)
            .map(|next| local_time(next, &schedule));
        let stale = match (last_completed, schedule.period(now)) {
            (None, _) => true,
            (Some(last), Some(period)) => now - last > period,
            (Some(_), None) => false,
        };
        let activity = if empty || stale {
            tracing::info!(empty, "syncing at start-up");
            queue.request(Trigger::Startup);
            "syncing at start-up".to_owned()
        } else {
            format!("waiting; next sync {}", next.as_deref().unwrap_or("never"))
        };

        let shared = Arc::new(Shared {
            syncer: RwLock::new(Arc::new(syncer(&config)?)),
            schedule: RwLock::new(schedule.clone()),
            config: RwLock::new(config.clone()),
            queue: queue.clone(),
            live: Mutex::new(Live::default()),
            head: head_tx,
            activity: watch::Sender::new(activity),
        });
        let status_shared = shared.clone();
        let context = Arc::new(ServerContext {
            store_path: config.store.path.clone(),
            head: head_rx,
            head_publisher: shared.head.clone(),
            source: EventSource::new(&config.wecom.corp_id),
            queue: queue.clone(),
            status: Arc::new(move || status_shared.status()),
            settings: socket_settings(&config),
            daemon_uid: current_uid(),
        });
        let scheduler = Scheduler::start(schedule.clone(), queue.clone()).await?;
        if let Some(next) = schedule.next_after(now) {
            tracing::info!(next = %next.with_timezone(&schedule.timezone()).to_rfc3339(), "next scheduled sync");
        }
        let tasks = vec![
            tokio::spawn(socket::serve(listener, context, shutdown_rx.clone())),
            tokio::spawn(coordinate(shared.clone(), shutdown_rx.clone())),
            tokio::spawn(watch_head(shared.clone(), shutdown_rx.clone())),
            tokio::spawn(prune_daily(shared.clone(), shutdown_rx)),
        ];
        Ok(Daemon {
            shared,
            config_path,
            shutdown,
            scheduler: tokio::sync::Mutex::new(Some(scheduler)),
            tasks,
        })
    }

    pub fn request_sync(&self, trigger: Trigger) {
        self.shared.queue.request(trigger);
    }

    /// The daemon's one-line status, updated when a run starts and when it ends.
    pub fn activity(&self) -> watch::Receiver<String> {
        self.shared.activity.subscribe()
    }

    /// SIGHUP: re-reads the config file; a bad one is rejected and the old one stays.
    /// Then syncs.
    pub async fn reload(&self) {
        if let Some(path) = &self.config_path {
            match Config::load(path) {
                Ok(config) => self.apply_config(config).await,
                Err(error) => {
                    tracing::error!(%error, "config reload rejected; the previous config stays in force")
                }
            }
        }
        self.request_sync(Trigger::Signal);
    }

    async fn apply_config(&self, config: Config) {
        let schedule = match Schedule::new(&config.schedule.cron, config.schedule.timezone) {
            Ok(schedule) => schedule,
            Err(error) => {
                tracing::error!(%error, "config reload rejected; the previous config stays in force");
                return;
            }
        };
        let syncer = match syncer(&config) {
            Ok(syncer) => syncer,
            Err(error) => {
                tracing::error!(%error, "config reload rejected; the previous config stays in force");
                return;
            }
        };
        {
            let old = read(&self.shared.config);
            if old.store.path != config.store.path || old.socket.path != config.socket.path {
                tracing::warn!(
                    "store.path and socket.path changes take effect only after a restart"
                );
            }
        }
        let mut scheduler = self.scheduler.lock().await;
        if let Some(old) = scheduler.take() {
            old.stop().await;
        }
        match Scheduler::start(schedule.clone(), self.shared.queue.clone()).await {
            Ok(new) => *scheduler = Some(new),
            Err(error) => tracing::error!(%error, "could not restart the schedule"),
        }
        let mut config = config;
        // Paths are bound at start-up; keep serving the ones in use.
        {
            let old = read(&self.shared.config);
            config.store.path = old.store.path.clone();
            config.socket.path = old.socket.path.clone();
        }
        *write(&self.shared.schedule) = schedule;
        *write(&self.shared.syncer) = Arc::new(syncer);
        *write(&self.shared.config) = config;
        tracing::info!("config reloaded");
    }

    /// Graceful stop: no new runs, an in-flight apply commits or rolls back, the socket closes.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(scheduler) = self.scheduler.lock().await.take() {
            scheduler.stop().await;
        }
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a daemon task failed");
            }
        }
        tracing::info!("stopped");
    }
}

/// `orgsync run`: start, then serve signals until SIGTERM or SIGINT, keeping systemd informed.
pub async fn run(
    config: Config,
    config_path: &Path,
    notifier: Notifier,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let daemon = Daemon::start(config, Some(config_path.to_owned())).await?;
    let mut activity = daemon.activity();
    notifier.ready(&activity.borrow_and_update());
    let mut watchdog = notifier.watchdog_interval().map(|every| {
        let mut interval = tokio::time::interval(every);
        // After a stall, one ping now and the next a full interval later, not a burst.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    tracing::info!(pid = std::process::id(), "orgsync is running");
    loop {
        tokio::select! {
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: sync requested");
                daemon.request_sync(Trigger::Signal);
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                notifier.reloading();
                daemon.reload().await;
                notifier.ready(&activity.borrow_and_update());
            }
            // The sender lives as long as `daemon`, so this never fails while we loop.
            Ok(()) = activity.changed() => notifier.status(&activity.borrow_and_update()),
            () = tick(watchdog.as_mut()) => notifier.watchdog(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping");
    notifier.stopping();
    daemon.shutdown().await;
    Ok(())
}

async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs queued syncs one at a time; retries a failed run with exponential backoff a bounded
/// number of times, unless another request supersedes the retry.
async fn coordinate(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut retry: Option<(Trigger, u32, tokio::time::Instant)> = None;
    loop {
        let retry_at = retry.map(|(_, _, at)| at);
        let (trigger, attempt) = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => return,
            trigger = shared.queue.next() => (trigger, 0),
            () = sleep_until(retry_at), if retry_at.is_some() => match retry {
                Some((trigger, attempt, _)) => (trigger, attempt),
                None => continue,
            },
        };
        retry = None;
        shared.live().retry = None;
        shared.live().running = Some((trigger, Utc::now()));
        shared.set_activity(format!("syncing ({trigger})"));
        let syncer = read(&shared.syncer).clone();
        let mut stop = shutdown.clone();
        let report = syncer
            .run(
                trigger,
                Mode::Apply,
                async move { stopped(&mut stop).await },
            )
            .await;
        shared.live().running = None;
        shared.refresh_head().await;
        shared.prune_events().await;
        let schedule = read(&shared.schedule).clone();
        let finished = local_time(Utc::now(), &schedule);
        match report {
            Ok(report) => {
                report.log(trigger);
                let mut activity = format!("last sync {finished}: {}", summary(&report));
                if let RunReport::Failed { .. } = report {
                    let policy = read(&shared.config).schedule.retry();
                    if attempt < policy.attempts && !*shutdown.borrow() {
                        let delay = policy.delay(attempt);
                        tracing::warn!(
                            attempt = attempt + 1,
                            of = policy.attempts,
                            delay_secs = delay.as_secs(),
                            "will retry the failed sync"
                        );
                        let at = Utc::now() + delay;
                        retry = Some((trigger, attempt + 1, tokio::time::Instant::now() + delay));
                        shared.live().retry = Some((attempt + 1, at));
                        activity.push_str(&format!(
                            "; retry {} of {} at {}",
                            attempt + 1,
                            policy.attempts,
                            local_time(at, &schedule)
                        ));
                    }
                }
                shared.set_activity(activity);
            }
            Err(error) => {
                tracing::error!(%error, "sync could not run");
                shared.set_activity(format!("last sync {finished}: could not run: {error}"));
            }
        }
    }
}

/// A run's outcome in a few words, for systemd's status line.
fn summary(report: &RunReport) -> String {
    match report {
        RunReport::Completed { run, counts, .. } => format!(
            "run {run} completed: {} members in {} departments; {} joined, {} updated, {} left",
            counts.members,
            counts.departments,
            counts.changes.members_joined,
            counts.changes.members_updated,
            counts.changes.members_left
        ),
        RunReport::Held { run, hold, .. } => format!(
            "run {run} HELD by the deletion guard: {}; see `orgsync status`",
            hold.message()
        ),
        RunReport::Failed { run, error } => {
            format!("run {run} FAILED ({}): {error}", error.code())
        }
        RunReport::DryRun { .. } => "dry run; nothing written".to_owned(),
    }
}

/// A time in the schedule's zone, the one operators think in: `2026-11-23 02:00:00 CST`.
fn local_time(at: DateTime<Utc>, schedule: &Schedule) -> String {
    at.with_timezone(&schedule.timezone())
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// Resolves once shutdown has been requested.
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Publishes events that another process (a manual `orgsync sync`) committed to the store.
async fn watch_head(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tokio::time::sleep(HEAD_POLL) => shared.refresh_head().await,
        }
    }
}

/// Prunes the event log at start-up and then every day.
async fn prune_daily(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            _ = every.tick() => shared.prune_events().await,
        }
    }
}

fn socket_settings(config: &Config) -> SocketSettings {
    SocketSettings {
        path: config.socket.path.clone(),
        group: config.socket.group.clone(),
        admin_uids: config.socket.admin_uids.clone(),
        admin_gids: config.socket.admin_gids.clone(),
        max_connections: config.socket.max_connections,
        first_request_timeout: FIRST_REQUEST_TIMEOUT,
    }
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
