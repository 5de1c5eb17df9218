//! Push delivery: each configured sink (`[[sinks.webhook]]`, `[[sinks.nats]]`) is a durable
//! consumer of the event log, `sink:NAME` in the consumers table, that the daemon itself drives.
//!
//! A sink reads the log through [`crate::event_reader`], the same batch reader a socket
//! subscription uses, and delivers strictly in `seq` order: an event that fails is retried
//! (exponential backoff with jitter, for ever) before anything after it is sent, and the cursor
//! moves only once the target confirmed (a 2xx; every JetStream PubAck of a batch). Its state (failing since, attempts, last
//! error, next attempt, paused) is written to the store's `sinks` table, so `orgsync status`
//! and `orgsync sinks` show it with or without a daemon, and `orgsync sinks resume` and
//! `replay` reach a running daemon through the store: each runner looks at its row and cursor
//! at least every [`CONTROL_POLL`].
//!
//! Every sink is a task of its own with its own store connection: a failing or slow sink never
//! holds back a sync, another sink or a socket consumer.

pub mod nats;
pub mod webhook;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::SinkStart;
use crate::event_reader::{self, ReadError};
use crate::events::TypeFilter;
use crate::shutdown::stopped;
use crate::store::consumers::{self, sink_consumer, SINK_OWNER};
use crate::store::event_log::{self, StoredEvent};
use crate::store::{sinks, Store, StoreError};
use nats::{Nats, NatsSettings};
use webhook::{Webhook, WebhookSettings};

/// How often a runner looks at its row and cursor while it waits (for new events, or for the
/// next attempt): an admin's `resume` or `replay` takes effect within this.
pub const CONTROL_POLL: Duration = Duration::from_secs(1);

/// A sink's settings, from its config table.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkSettings {
    pub name: String,
    pub target: Target,
    /// `None`: every event.
    pub types: Option<TypeFilter>,
    /// Events per delivery; 1 sends each on its own.
    pub batch_size: usize,
    pub start: SinkStart,
    pub retry_first_delay: Duration,
    pub retry_max_delay: Duration,
    /// Failing longer than this is reported loudly.
    pub alert_after: Duration,
}

/// Where a sink delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Webhook(WebhookSettings),
    Nats(NatsSettings),
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook(_) => "webhook",
            Target::Nats(_) => "nats",
        }
    }
}

/// A target ready to deliver to.
enum Deliverer {
    Webhook(Webhook),
    Nats(Box<Nats>),
}

impl Deliverer {
    /// Delivers `events` (one, or a batch) at once.
    async fn send(&self, events: &[StoredEvent], batch: bool) -> Attempt {
        match self {
            Deliverer::Webhook(webhook) => webhook.post(events, batch).await,
            Deliverer::Nats(nats) => nats.publish(events).await,
        }
    }
}

/// The `id` of an event's stored line.
pub(crate) fn event_id(event: &StoredEvent) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    serde_json::from_str::<Id>(&event.body)
        .map(|line| line.id)
        .map_err(|e| format!("event {} has no readable id ({e})", event.seq))
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Confirmed: the cursor may move past the events.
    Delivered,
    /// The target wants no more events: the sink pauses until an admin resumes it.
    Gone(String),
    /// Retried after a backoff.
    Failed(String),
    /// Retried after the backoff or the delay the target asked for (a webhook's 429 or 503
    /// with `Retry-After`), whichever is longer, within the sink's maximum delay.
    Throttled {
        error: String,
        retry_after: Duration,
    },
}

/// The running sinks: one task each, restarted as a whole when a reload changes them.
pub struct Sinks {
    store_path: PathBuf,
    head: watch::Receiver<i64>,
    settings: Vec<SinkSettings>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Sinks {
    /// Starts a runner per sink.
    pub fn start(
        settings: Vec<SinkSettings>,
        store_path: PathBuf,
        head: watch::Receiver<i64>,
    ) -> Sinks {
        let (stop, _) = watch::channel(false);
        let tasks = settings
            .iter()
            .map(|sink| {
                let runner = Runner {
                    consumer: sink_consumer(&sink.name),
                    sink: sink.clone(),
                    store: Arc::new(Mutex::new(None)),
                    store_path: store_path.clone(),
                    recorded: Mutex::new(None),
                };
                tokio::spawn(runner.run(head.clone(), stop.subscribe()))
            })
            .collect();
        Sinks {
            store_path,
            head,
            settings,
            stop,
            tasks,
        }
    }

    /// Puts new settings in force: unchanged, nothing happens; changed, every runner stops
    /// (an attempt in flight is abandoned and made again, which at-least-once allows) and
    /// starts again from its confirmed cursor.
    pub async fn reconfigure(&mut self, settings: Vec<SinkSettings>) {
        if settings == self.settings {
            return;
        }
        tracing::info!(sinks = settings.len(), "sinks reconfigured");
        // The old runners stop before the new ones start: a sink never has two at once.
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            if let Err(error) = task.await {
                tracing::error!(%error, "a sink task failed");
            }
        }
        *self = Sinks::start(settings, self.store_path.clone(), self.head.clone());
    }

    /// Stops every runner and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a sink task failed");
            }
        }
    }
}

/// One sink's delivery loop.
struct Runner {
    sink: SinkSettings,
    consumer: String,
    store_path: PathBuf,
    /// The runner's own connection, opened on first use (and again after an error).
    store: Arc<Mutex<Option<Store>>>,
    /// When the sink's row last recorded a delivery, while no attempt has failed since: the
    /// row is then written at most once a second, the cursor after every delivery.
    recorded: Mutex<Option<std::time::Instant>>,
}

/// What the runner found in the store.
enum Next {
    /// Paused by a 410 until resumed.
    Paused,
    /// Nothing after the cursor.
    Idle,
    /// The sink was registered (or its settings recorded): read again at once.
    Registered,
    /// The events after `cursor` to deliver (possibly none, all filtered out), read up to
    /// `last_seq`.
    Batch {
        cursor: i64,
        events: Vec<StoredEvent>,
        last_seq: i64,
    },
}

/// How a delivery with its retries ended.
enum Delivery {
    Delivered,
    /// Stopped, paused, or the cursor was moved by an admin: read again.
    Interrupted,
}

impl Runner {
    async fn run(self, mut head: watch::Receiver<i64>, mut stop: watch::Receiver<bool>) {
        let name = self.sink.name.clone();
        tracing::info!(sink = %name, kind = self.sink.target.kind(), "sink started");
        let target = loop {
            match self.target() {
                Ok(target) => break target,
                Err(error) => {
                    tracing::error!(sink = %name, %error, "sink cannot start");
                    if self.wait_after_failure(&error, &mut stop).await.is_err() {
                        return;
                    }
                }
            }
        };
        let mut failures = self.backoff();
        loop {
            if *stop.borrow() {
                return;
            }
            let next = match self.next().await {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(sink = %name, %error, "sink cannot read the event log");
                    if self.wait_after_failure(&error, &mut stop).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            match next {
                Next::Registered => {}
                Next::Paused | Next::Idle => {
                    tokio::select! {
                        () = stopped(&mut stop) => return,
                        _ = head.changed() => {}
                        () = tokio::time::sleep(CONTROL_POLL) => {}
                    }
                }
                Next::Batch {
                    mut cursor,
                    events,
                    last_seq,
                } => {
                    let batch =
                        self.sink.batch_size > 1 && matches!(self.sink.target, Target::Webhook(_));
                    let mut interrupted = false;
                    for chunk in events.chunks(self.sink.batch_size.max(1)) {
                        match self
                            .deliver(&target, chunk, batch, cursor, &mut failures, &mut stop)
                            .await
                        {
                            Delivery::Delivered => {
                                let delivered = chunk.last().map_or(cursor, |e| e.seq);
                                match self.confirm(cursor, delivered).await {
                                    Ok(true) => cursor = delivered,
                                    Ok(false) => {
                                        interrupted = true;
                                        break;
                                    }
                                    Err(error) => {
                                        // Delivered but not recorded: sent again after the
                                        // wait (at least once).
                                        tracing::error!(sink = %name, %error, "cannot store the sink's cursor");
                                        interrupted = true;
                                        let _ = self.wait_after_failure(&error, &mut stop).await;
                                        break;
                                    }
                                }
                            }
                            Delivery::Interrupted => {
                                interrupted = true;
                                break;
                            }
                        }
                    }
                    // The events filtered out after the last one delivered are passed too.
                    if !interrupted && last_seq > cursor {
                        if let Err(error) = self.confirm(cursor, last_seq).await {
                            tracing::error!(sink = %name, %error, "cannot store the sink's cursor");
                        }
                    }
                }
            }
        }
    }

    fn target(&self) -> Result<Deliverer, String> {
        Ok(match &self.sink.target {
            Target::Webhook(settings) => Deliverer::Webhook(Webhook::new(settings.clone())?),
            Target::Nats(settings) => Deliverer::Nats(Box::new(Nats::new(settings.clone()))),
        })
    }

    fn backoff(&self) -> backon::ExponentialBackoff {
        retry_delays(self.sink.retry_first_delay, self.sink.retry_max_delay)
    }

    /// Runs `work` on the runner's connection in a blocking thread. A failed call drops the
    /// connection, so that the next one opens it afresh.
    async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        let path = self.store_path.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = store.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(Store::open_for_cursors(&path).map_err(|e| e.to_string())?);
            }
            let Some(open) = slot.as_mut() else {
                return Err("the store is not open".to_owned());
            };
            let result = work(open);
            if result.is_err() {
                *slot = None;
            }
            result
        })
        .await
        .map_err(|e| format!("internal error: {e}"))?
    }

    /// Reads the sink's state and the next batch after its cursor; registers the sink and
    /// places its cursor when it is seen for the first time.
    async fn next(&self) -> Result<Next, String> {
        let name = self.sink.name.clone();
        let consumer = self.consumer.clone();
        let kind = self.sink.target.kind();
        let start = self.sink.start;
        let alert_after = self.sink.alert_after.as_secs();
        let types = self.sink.types.clone();
        self.with_store(move |store| {
            let cursor = match (
                sinks::get(store.conn(), &name).map_err(|e| e.to_string())?,
                consumers::cursor(store.conn(), &consumer).map_err(|e| e.to_string())?,
            ) {
                // A row whose kind or alert_after differ from the settings is registered again
                // (the cursor stays): a `[[sinks.webhook]]` that became a `[[sinks.nats]]` of
                // the same name shows as NATS in `orgsync sinks`, status and the metrics.
                (Some(row), Some(cursor))
                    if row.kind == kind
                        && row.alert_after == i64::try_from(alert_after).unwrap_or(i64::MAX) =>
                {
                    if row.paused_at.is_some() {
                        return Ok(Next::Paused);
                    }
                    cursor
                }
                _ => {
                    store
                        .write(|tx| {
                            sinks::register(tx, &name, kind, alert_after)?;
                            let at = match start {
                                SinkStart::Beginning => match event_log::oldest(tx)? {
                                    Some(oldest) => oldest - 1,
                                    None => event_log::head(tx)?,
                                },
                                SinkStart::Now => event_log::head(tx)?,
                            };
                            if consumers::move_cursor(tx, &consumer, None, at, SINK_OWNER)? {
                                tracing::info!(sink = %name, cursor = at, "sink seen for the first time");
                            }
                            Ok(())
                        })
                        .map_err(|e: StoreError| e.to_string())?;
                    return Ok(Next::Registered);
                }
            };
            let batch = event_reader::next_batch(store.conn(), cursor, types.as_ref())
                .map_err(|e| match e {
                    ReadError::Store(e) => e.to_string(),
                    // Retention never prunes past a sink's cursor; a gap means the store was
                    // replaced or edited. Reported, never skipped: an admin decides.
                    other => format!(
                        "{other} (for a sink: `orgsync sinks replay NAME --from SEQ` moves its \
                         cursor)"
                    ),
                })?;
            Ok(match batch.last_seq {
                None => Next::Idle,
                Some(last_seq) => Next::Batch {
                    cursor,
                    events: batch.events,
                    last_seq,
                },
            })
        })
        .await
    }

    /// Delivers `events` (one, or a batch) after `cursor`, retrying until the target confirms,
    /// pauses the sink, or the runner is stopped or its cursor moved.
    async fn deliver(
        &self,
        target: &Deliverer,
        events: &[StoredEvent],
        batch: bool,
        cursor: i64,
        failures: &mut backon::ExponentialBackoff,
        stop: &mut watch::Receiver<bool>,
    ) -> Delivery {
        let name = &self.sink.name;
        let mut alerted = false;
        loop {
            let attempt = tokio::select! {
                () = stopped(stop) => return Delivery::Interrupted,
                attempt = target.send(events, batch) => attempt,
            };
            let (error, retry_after) = match attempt {
                Attempt::Delivered => {
                    *failures = self.backoff();
                    return Delivery::Delivered;
                }
                Attempt::Gone(reason) => {
                    let reason =
                        format!("{reason}; `orgsync sinks resume {name}` once it wants them again");
                    tracing::warn!(sink = %name, %reason, "sink paused");
                    let sink = name.clone();
                    let paused = self
                        .with_store(move |store| {
                            store
                                .write(|tx| sinks::pause(tx, &sink, &reason, Utc::now()))
                                .map_err(|e| e.to_string())
                        })
                        .await;
                    if let Err(error) = paused {
                        tracing::error!(sink = %name, %error, "cannot record the pause");
                        let _ = self.wait_after_failure(&error, stop).await;
                    }
                    return Delivery::Interrupted;
                }
                Attempt::Failed(error) => (error, None),
                Attempt::Throttled { error, retry_after } => (error, Some(retry_after)),
            };
            let delay = retry_delay(
                failures.next().unwrap_or(self.sink.retry_max_delay),
                retry_after,
                self.sink.retry_max_delay,
            );
            let now = Utc::now();
            let since = match self.record_failure(&error, now, delay).await {
                Ok(since) => since
                    .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                    .map_or(now, |s| s.with_timezone(&Utc)),
                Err(store_error) => {
                    tracing::error!(sink = %name, error = %store_error, "cannot record the sink's failure");
                    now
                }
            };
            let failing = (now - since).to_std().unwrap_or_default();
            let seq = events.first().map_or(cursor + 1, |e| e.seq);
            if failing >= self.sink.alert_after {
                if !alerted {
                    tracing::error!(
                        sink = %name,
                        %error,
                        seq,
                        failing_since = %since.to_rfc3339(),
                        "SINK FAILING for longer than alert_after_secs: nothing after seq {seq} is delivered until it succeeds"
                    );
                    alerted = true;
                }
            } else {
                tracing::warn!(sink = %name, %error, seq, retry_in_ms = delay.as_millis() as u64, "sink delivery failed; retrying");
            }
            match self.wait_for_retry(delay, cursor, stop).await {
                Wait::Retry => {}
                Wait::RetryNow => *failures = self.backoff(),
                Wait::Interrupted => return Delivery::Interrupted,
            }
        }
    }

    /// Waits `delay` before the next attempt, looking at the store every [`CONTROL_POLL`] and
    /// at the end of the wait: a `resume` (which clears the next attempt) retries at once; a
    /// moved cursor or a pause interrupts the delivery.
    async fn wait_for_retry(
        &self,
        delay: Duration,
        cursor: i64,
        stop: &mut watch::Receiver<bool>,
    ) -> Wait {
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                () = stopped(stop) => return Wait::Interrupted,
                () = tokio::time::sleep(left.min(CONTROL_POLL)) => {}
            }
            // Also after the last sleep: delays shorter than CONTROL_POLL (all of them with
            // retry_max_delay_secs = 1) would otherwise never see a replay or a pause while the
            // target keeps failing.
            let name = self.sink.name.clone();
            let consumer = self.consumer.clone();
            let looked = self
                .with_store(move |store| {
                    let row = sinks::get(store.conn(), &name).map_err(|e| e.to_string())?;
                    let at =
                        consumers::cursor(store.conn(), &consumer).map_err(|e| e.to_string())?;
                    Ok((row, at))
                })
                .await;
            match looked {
                Ok((Some(row), Some(at))) if at == cursor && row.paused_at.is_none() => {
                    if row.next_attempt.is_none() {
                        return Wait::RetryNow;
                    }
                }
                Ok(_) => return Wait::Interrupted,
                Err(_) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Wait::Retry;
            }
        }
    }

    /// Records a failure, shown by status, and the next attempt, `delay` after `now`. Returns
    /// when the sink began failing, as the store has it.
    async fn record_failure(
        &self,
        error: &str,
        now: DateTime<Utc>,
        delay: Duration,
    ) -> Result<Option<String>, String> {
        self.forget_recorded();
        let next_at = now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::zero());
        let (name, error) = (self.sink.name.clone(), error.to_owned());
        self.with_store(move |store| {
            store
                .write(|tx| sinks::record_failure(tx, &name, &error, now, next_at))
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// After a failure of the sink itself (the store, the client), not of its target: shown in
    /// status when the store allows, then a wait of the first retry delay. Err when stopped.
    async fn wait_after_failure(
        &self,
        error: &str,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), ()> {
        let delay = self.sink.retry_max_delay.min(Duration::from_secs(5));
        let _ = self.record_failure(error, Utc::now(), delay).await;
        tokio::select! {
            () = stopped(stop) => Err(()),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// Moves the cursor from `from` to `to` and ends the streak of failures; false when the
    /// cursor is no longer at `from` (an admin replayed).
    async fn confirm(&self, from: i64, to: i64) -> Result<bool, String> {
        let name = self.sink.name.clone();
        let consumer = self.consumer.clone();
        let record = self
            .recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        let moved = self
            .with_store(move |store| {
                store
                    .write(|tx| {
                        if !consumers::move_cursor(tx, &consumer, Some(from), to, SINK_OWNER)? {
                            return Ok(false);
                        }
                        if record {
                            sinks::record_delivery(tx, &name, Utc::now())?;
                        }
                        Ok(true)
                    })
                    .map_err(|e: StoreError| e.to_string())
            })
            .await;
        if record && moved == Ok(true) {
            *self.recorded.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(std::time::Instant::now());
        }
        moved
    }

    /// A failure: the next delivery records the end of the streak in the sink's row.
    fn forget_recorded(&self) {
        *self.recorded.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

enum Wait {
    Retry,
    RetryNow,
    Interrupted,
}

/// The delays between a sink's attempts: from `first`, about doubling, with jitter, never more
/// than `max`.
///
/// backon's jitter adds up to 100% of a delay after its cap (backon 1.6, `ExponentialBackoff::
/// next`), and does not cap the first delay at all: capped at `max` it would wait up to twice
/// `max`. So the delay before jitter is held to half of `max`, the first one included, and the
/// jittered delay, between that and twice it, stays within `max` while still spreading sinks
/// that fail together.
fn retry_delays(first: Duration, max: Duration) -> backon::ExponentialBackoff {
    let before_jitter = max / 2;
    ExponentialBuilder::default()
        .with_min_delay(first.min(before_jitter))
        .with_max_delay(before_jitter)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The wait before the next attempt: the backoff's `delay`, or what the target asked for when
/// that is longer, but never more than `max`, so that a receiver cannot park a sink for ever
/// (the backoff is within `max` already).
fn retry_delay(delay: Duration, asked: Option<Duration>, max: Duration) -> Duration {
    asked.map_or(delay, |asked| delay.max(asked.min(max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_asked_for_is_waited_when_longer_than_the_backoff_up_to_the_maximum() {
        let ms = Duration::from_millis;
        let max = ms(3000);
        assert_eq!(retry_delay(ms(20), None, max), ms(20));
        assert_eq!(retry_delay(ms(20), Some(ms(2000)), max), ms(2000));
        assert_eq!(retry_delay(ms(2500), Some(ms(1000)), max), ms(2500));
        assert_eq!(retry_delay(ms(20), Some(Duration::MAX), max), max);
        assert_eq!(retry_delay(ms(20), Some(Duration::ZERO), max), ms(20));
    }

    /// Jitter included, no delay is above the maximum; below it, each is at least the doubled
    /// one before it would be without jitter, and at it they still spread (between half the
    /// maximum and all of it), so that sinks failing together do not retry in step.
    #[test]
    fn retry_delays_double_with_jitter_and_never_exceed_the_maximum() {
        let first = Duration::from_millis(10);
        let max = Duration::from_secs(1);
        let delays: Vec<Duration> = retry_delays(first, max).take(200).collect();
        assert!(delays.iter().all(|d| *d <= max), "{delays:?}");
        for (n, delay) in delays.iter().take(6).enumerate() {
            assert!(*delay >= first * 2u32.pow(n as u32), "{n}: {delays:?}");
        }
        let capped = &delays[20..];
        assert!(capped.iter().all(|d| *d >= max / 2), "{capped:?}");
        let spread = capped
            .iter()
            .max()
            .unwrap()
            .saturating_sub(*capped.iter().min().unwrap());
        assert!(spread >= max / 10, "jitter at the maximum too: {capped:?}");

        // A first delay above the maximum is held to it too.
        let delays: Vec<Duration> = retry_delays(Duration::from_secs(600), max)
            .take(50)
            .collect();
        assert!(
            delays.iter().all(|d| *d <= max && *d >= max / 2),
            "{delays:?}"
        );
    }
}
