//! Runs queued syncs one at a time, so runs from the schedule, signals and the socket never
//! overlap, and retries a failed run with exponential backoff a bounded number of times,
//! unless another request supersedes the retry.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;

use super::shared::{local_time, read, Shared};
use super::{head_watcher, pruner};
use crate::queue::Trigger;
use crate::shutdown::stopped;
use crate::sync::{Mode, RunReport};

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
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
        let syncer = shared.syncer();
        let mut stop = shutdown.clone();
        let report = syncer
            .run(
                trigger,
                Mode::Apply,
                async move { stopped(&mut stop).await },
            )
            .await;
        shared.live().running = None;
        head_watcher::refresh(&shared).await;
        pruner::prune(&shared).await;
        let schedule = shared.schedule();
        let finished = local_time(Utc::now(), &schedule);
        match report {
            Ok(report) => {
                report.log(trigger);
                if let RunReport::Completed { .. } = report {
                    shared.lookups_wanted.notify_one();
                }
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

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
