//! `orgsync run`: the long-running daemon, as components with one job and one lifecycle each,
//! talking through the sync queue, the event-head watch and a shutdown watch:
//!
//! - [`coordinator`] runs queued syncs one at a time and retries failed ones;
//! - the scheduler ([`crate::schedule`]) queues the nightly sync;
//! - the socket server ([`crate::socket`]) serves subscribers and requests;
//! - the HTTP API ([`crate::http`]), when `http.listen` is set, serves the same over HTTP;
//! - [`head_watcher`] publishes new events committed by other processes;
//! - [`pruner`] drops events past `events.retention_days`;
//! - the callback receiver ([`crate::callback`]), when `callback.listen` is set, records WeCom's
//!   contact-change callbacks, and its debounce queues callback runs;
//! - [`lookups`] asks WeCom whose unlinked host users' mobiles and emails are, for matching;
//! - [`signals`] turns signals into requests and keeps systemd informed ([`notify`]);
//! - the sinks ([`crate::delivery`]) push every event to the configured webhooks.
//!
//! [`Daemon`] starts them, reloads the config on SIGHUP and stops them in order. A new
//! component is a file here and a line in [`Daemon::start`].

mod coordinator;
mod head_watcher;
mod lookups;
pub mod notify;
mod pruner;
mod shared;
mod signals;
mod store_lock;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::callback;
use crate::config::{Config, ConfigError};
use crate::delivery::Sinks;
use crate::events::EventSource;
use crate::http::{self, HttpContext, HttpError, TlsReloader, Tokens};
use crate::queue::{SyncQueue, Trigger};
use crate::schedule::{Schedule, ScheduleError, Scheduler};
use crate::service::login::Login;
use crate::socket::{self, ServerContext, SocketError};
use crate::store::{callbacks, event_log, mirror, runs, Store, StoreError};
use crate::sync::{SyncError, Syncer};
use crate::wecom::WecomError;
use shared::{local_time, read, write, Live, Shared};
pub use signals::run;
use store_lock::{LockError, StoreLock};

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
    Http(#[from] HttpError),
    #[error(transparent)]
    Wecom(#[from] WecomError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error("{0}")]
    StoreReplaced(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// How long a callback client (WeCom, through the reverse proxy) may take for its headers.
const CALLBACK_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A running daemon, for `orgsync run` and for `orgsync demo` and the tests, which drive it
/// in-process.
pub struct Daemon {
    shared: Arc<Shared>,
    config_path: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    scheduler: tokio::sync::Mutex<Option<Scheduler>>,
    /// The HTTP API's tokens, replaced on reload.
    http_tokens: watch::Sender<Arc<Tokens>>,
    /// Re-reads the HTTP API's certificate and key on a reload, so that a renewed certificate
    /// needs no restart.
    http_tls: Option<TlsReloader>,
    /// The push sinks ([`crate::delivery`]), restarted when a reload changes them.
    sinks: tokio::sync::Mutex<Sinks>,
    tasks: Vec<JoinHandle<()>>,
    /// Where the callback receiver listens, when it does.
    callback_addr: Option<std::net::SocketAddr>,
    _lock: StoreLock,
}

/// What the daemon needs to know of the store before it starts.
struct StoreState {
    head: i64,
    empty: bool,
    /// The last run was stopped by a shutdown or a crash.
    cut_short: bool,
    last_completed: Option<chrono::DateTime<Utc>>,
    /// Callbacks recorded and not yet applied.
    pending_callbacks: u64,
}

impl Daemon {
    /// Opens the store, binds the socket and starts every component. Returns once the daemon is
    /// ready to serve (the point at which systemd is told READY=1).
    pub async fn start(
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Daemon, DaemonError> {
        let schedule = Schedule::new(&config.schedule.cron, config.schedule.timezone)?;
        // The lock first: a daemon that will be refused must not migrate or bind the store
        // another one is running on.
        let lock = StoreLock::acquire(&config.store.path)?;
        let mut syncer = Syncer::from_config(&config)?;
        syncer.bind_store().await?;
        syncer.create_store = false;
        let identity = {
            let path = config.store.path.clone();
            tokio::task::spawn_blocking(move || head_watcher::Identity::read(&path))
                .await
                .map_err(|e| DaemonError::Internal(e.to_string()))?
                .map_err(|e| DaemonError::Internal(e.to_string()))?
        };
        let store = read_store_state(config.store.path.clone()).await?;
        let listener = socket::bind(&config.socket_settings())?;
        let http_settings = config.http_settings();
        let http_listener = match &http_settings {
            Some(settings) => Some(http::bind(settings).await?),
            None => None,
        };
        let http_tls = http_listener
            .as_ref()
            .zip(http_settings.as_ref())
            .and_then(|(listener, settings)| listener.tls_reloader(settings));
        let callback_listener = match (config.callback.listen_addr(), config.callback_crypto()) {
            (Some(addr), Some(_)) => Some(
                http::bind_endpoint(
                    addr,
                    config.callback_tls().as_ref(),
                    callback::LISTENER_KEYS,
                )
                .await?,
            ),
            _ => None,
        };
        let callback_addr = callback_listener
            .as_ref()
            .and_then(http::Listener::local_addr);
        let (http_tokens, http_tokens_rx) =
            watch::channel(Arc::new(Tokens::new(config.http_api_tokens())));
        let queue = Arc::new(SyncQueue::default());
        let (head_tx, head_rx) = watch::channel(store.head);
        let (shutdown, shutdown_rx) = watch::channel(false);

        let now = Utc::now();
        let next = schedule
            .next_after(now)
            .map(|next| local_time(next, &schedule));
        let stale = match (store.last_completed, schedule.period(now)) {
            (None, _) => true,
            (Some(last), Some(period)) => now - last > period,
            (Some(_), None) => false,
        };
        if store.pending_callbacks > 0 {
            // Recorded before the last stop and not yet applied; a start-up sync covers them too.
            queue.request(Trigger::Callback);
        }
        let activity = if store.empty || stale || store.cut_short {
            tracing::info!(
                empty = store.empty,
                stale,
                cut_short = store.cut_short,
                "syncing at start-up"
            );
            queue.request(Trigger::Startup);
            "syncing at start-up".to_owned()
        } else {
            format!("waiting; next sync {}", next.as_deref().unwrap_or("never"))
        };

        let shared = Arc::new(Shared {
            syncer: RwLock::new(Arc::new(syncer)),
            schedule: RwLock::new(schedule.clone()),
            config: RwLock::new(config.clone()),
            queue: queue.clone(),
            live: Mutex::new(Live::default()),
            head: head_tx,
            activity: watch::Sender::new(activity),
            identity,
            lookups_wanted: tokio::sync::Notify::new(),
            callback_counters: callback_listener
                .as_ref()
                .map(|_| Arc::new(callback::Counters::default())),
            fatal: watch::Sender::new(None),
        });
        let status_shared = shared.clone();
        let http_status_shared = shared.clone();
        let client_shared = shared.clone();
        let login = Login::new(
            Arc::new(move || {
                let syncer = client_shared.syncer();
                (syncer.client.clone(), syncer.reach())
            }),
            config.store.path.clone(),
        );
        let context = Arc::new(ServerContext {
            store_path: config.store.path.clone(),
            head: head_rx,
            head_publisher: shared.head.clone(),
            source: EventSource::new(&config.wecom.corp_id),
            queue: queue.clone(),
            status: Arc::new(move || status_shared.status()),
            settings: config.socket_settings(),
            daemon_uid: current_uid(),
            login: login.clone(),
        });
        let scheduler = Scheduler::start(schedule.clone(), queue.clone()).await?;
        if let Some(next) = schedule.next_after(now) {
            tracing::info!(next = %next.with_timezone(&schedule.timezone()).to_rfc3339(), "next scheduled sync");
        }
        let sinks = Sinks::start(
            config.sink_settings(),
            config.store.path.clone(),
            shared.head.subscribe(),
        );
        let mut tasks = Vec::new();
        if let (Some(listener), Some(settings)) = (http_listener, http_settings) {
            let context = Arc::new(HttpContext {
                store_path: config.store.path.clone(),
                head: shared.head.subscribe(),
                head_publisher: shared.head.clone(),
                source: EventSource::new(&config.wecom.corp_id),
                queue: queue.clone(),
                login: login.clone(),
                status: Arc::new(move || http_status_shared.status()),
                tokens: http_tokens_rx,
                settings,
                shutdown: shutdown_rx.clone(),
            });
            tasks.push(tokio::spawn(http::serve(
                listener,
                context,
                shutdown_rx.clone(),
            )));
        }
        if let (Some(listener), Some(crypto), Some(counters)) = (
            callback_listener,
            config.callback_crypto(),
            shared.callback_counters.clone(),
        ) {
            let debounce = Arc::new(callback::debounce::Debounce::default());
            let context = Arc::new(callback::CallbackContext {
                store_path: config.store.path.clone(),
                crypto: crypto.clone(),
                counters,
                debounce: debounce.clone(),
            });
            let limits = http::Limits {
                max_connections: config.callback.max_connections,
                header_timeout: CALLBACK_HEADER_TIMEOUT,
            };
            tasks.push(tokio::spawn(http::serve_router(
                listener,
                callback::router(&config.callback.path, context),
                limits,
                shutdown_rx.clone(),
            )));
            tasks.push(tokio::spawn(callback::debounce::run(
                debounce,
                queue.clone(),
                callback::debounce::DEBOUNCE,
                shutdown_rx.clone(),
            )));
        }
        tasks.extend([
            tokio::spawn(socket::serve(listener, context, shutdown_rx.clone())),
            tokio::spawn(coordinator::run(shared.clone(), shutdown_rx.clone())),
            tokio::spawn(head_watcher::run(shared.clone(), shutdown_rx.clone())),
            tokio::spawn(lookups::run(shared.clone(), shutdown_rx.clone())),
            tokio::spawn(pruner::run(shared.clone(), shutdown_rx)),
        ]);
        Ok(Daemon {
            shared,
            config_path,
            shutdown,
            scheduler: tokio::sync::Mutex::new(Some(scheduler)),
            http_tokens,
            http_tls,
            sinks: tokio::sync::Mutex::new(sinks),
            tasks,
            callback_addr,
            _lock: lock,
        })
    }

    pub fn request_sync(&self, trigger: Trigger) {
        self.shared.queue.request(trigger);
    }

    /// The callback receiver's address (the port chosen, for port 0), when it runs.
    pub fn callback_addr(&self) -> Option<std::net::SocketAddr> {
        self.callback_addr
    }

    /// Why the daemon cannot go on, once it cannot.
    pub fn fatal(&self) -> watch::Receiver<Option<String>> {
        self.shared.fatal.subscribe()
    }

    /// The daemon's one-line status, updated when a run starts and when it ends.
    pub fn activity(&self) -> watch::Receiver<String> {
        self.shared.activity.subscribe()
    }

    /// SIGHUP: re-reads the config file; a bad one is rejected and the old one stays.
    /// Then syncs.
    pub async fn reload(&self) {
        if let Some(path) = &self.config_path {
            let applied = match Config::load(path) {
                Ok(config) => self.apply_config(config).await,
                Err(error) => Err(error.to_string()),
            };
            match applied {
                Ok(()) => self.shared.live().reload_rejected = None,
                Err(error) => {
                    tracing::error!(%error, "config reload rejected; the previous config stays in force");
                    self.shared.live().reload_rejected = Some((Utc::now(), error));
                }
            }
        }
        self.request_sync(Trigger::Signal);
    }

    /// Puts a new config in force, or says why it cannot be.
    async fn apply_config(&self, config: Config) -> Result<(), String> {
        {
            let old = read(&self.shared.config);
            if old.wecom.corp_id != config.wecom.corp_id {
                return Err(format!(
                    "wecom.corp_id changed from {} to {}: the store mirrors {} and cannot switch \
                     corps; give the other corp its own instance (its own config and store.path)",
                    old.wecom.corp_id, config.wecom.corp_id, old.wecom.corp_id
                ));
            }
        }
        let schedule = Schedule::new(&config.schedule.cron, config.schedule.timezone)
            .map_err(|e| e.to_string())?;
        // Read before anything changes: a certificate that cannot be used rejects the reload.
        let tls = match &self.http_tls {
            Some(reloader) => Some(reloader.load().map_err(|e| e.to_string())?),
            None => None,
        };
        {
            let old = read(&self.shared.config);
            let mut restart_needed = Vec::new();
            if old.store.path != config.store.path {
                restart_needed.push(format!(
                    "store.path is now {} in the file but {} is in use until a restart",
                    config.store.path.display(),
                    old.store.path.display()
                ));
            }
            if old.socket.path != config.socket.path {
                restart_needed.push(format!(
                    "socket.path is now {} in the file but {} is in use until a restart",
                    config.socket.path.display(),
                    old.socket.path.display()
                ));
            }
            // Every socket setting but the path (reported above) is bound at start-up.
            let mut serving = old.socket.clone();
            serving.path.clone_from(&config.socket.path);
            if serving != config.socket {
                restart_needed.push(
                    "socket.group, admin_uids, admin_gids, max_connections, \
                     max_connections_per_uid or allow_insecure_directory changed in the file; the \
                     socket keeps the ones in use until a restart"
                        .to_owned(),
                );
            }
            if old.callback != config.callback {
                restart_needed.push(
                    "the [callback] settings changed in the file; the callback receiver keeps \
                     the ones in use (and its token and key) until a restart"
                        .to_owned(),
                );
            }
            if old.http != config.http {
                let mut listening = old.http.clone();
                listening.tokens.clone_from(&config.http.tokens);
                if listening != config.http {
                    restart_needed.push(
                        "http.listen, http.tls_cert_file, http.tls_key_file and \
                         http.max_connections changed in the file; the HTTP API keeps the ones \
                         in use until a restart (a reload re-reads the certificate and key \
                         files in use)"
                            .to_owned(),
                    );
                }
            }
            for setting in &restart_needed {
                tracing::warn!(setting = %setting, "takes effect only after a restart");
            }
            self.shared.live().restart_needed = restart_needed;
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
        // Paths are bound at start-up; keep serving the ones in use, and sync into the store
        // this daemon holds (locked, watched), never one named only in the new file.
        {
            let old = read(&self.shared.config);
            config.store.path = old.store.path.clone();
            config.socket.path = old.socket.path.clone();
        }
        let syncer = daemon_syncer(&config).map_err(|e| e.to_string())?;
        *write(&self.shared.schedule) = schedule;
        *write(&self.shared.syncer) = Arc::new(syncer);
        // The tokens take effect at once: a revoked token stops working on reload.
        self.http_tokens
            .send_replace(Arc::new(Tokens::new(config.http_api_tokens())));
        if let Some((reloader, tls)) = self.http_tls.as_ref().zip(tls) {
            reloader.put(tls);
        }
        // Secrets and targets take effect at once; a changed sink resumes from its cursor.
        self.sinks
            .lock()
            .await
            .reconfigure(config.sink_settings())
            .await;
        *write(&self.shared.config) = config;
        tracing::info!("config reloaded");
        Ok(())
    }

    /// Graceful stop: no new runs, an in-flight apply commits or rolls back, the socket closes.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(scheduler) = self.scheduler.lock().await.take() {
            scheduler.stop().await;
        }
        self.sinks.into_inner().stop().await;
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a daemon task failed");
            }
        }
        tracing::info!("stopped");
    }
}

/// The syncer of a running daemon: its runs never create the store (see [`Syncer::create_store`]).
fn daemon_syncer(config: &Config) -> Result<Syncer, WecomError> {
    let mut syncer = Syncer::from_config(config)?;
    syncer.create_store = false;
    Ok(syncer)
}

/// Records runs left unfinished by a dead process as interrupted, and reads what start-up
/// decides from.
async fn read_store_state(path: PathBuf) -> Result<StoreState, DaemonError> {
    tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
        let store = Store::open(&path)?;
        let conn = store.conn();
        let state = runs::mark_interrupted(conn).and_then(|interrupted| {
            if interrupted > 0 {
                tracing::warn!(interrupted, "earlier runs were interrupted before they finished; nothing of them was applied");
            }
            Ok(StoreState {
                head: event_log::head(conn)?,
                empty: mirror::counts(conn)?.members == 0,
                cut_short: runs::last_was_cut_short(conn)?,
                last_completed: runs::last_completed_at(conn)?,
                pending_callbacks: callbacks::pending_count(conn)?,
            })
        });
        state.map_err(|e| store.explain(e))
    })
    .await
    .map_err(|e| DaemonError::Internal(e.to_string()))?
    .map_err(DaemonError::from)
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
