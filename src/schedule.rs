//! The nightly schedule: a cron expression evaluated in the company's timezone.
//!
//! tokio-cron-scheduler computes a job's *first* tick in the real zone but every later tick
//! in the UTC offset the zone had when the job was created, so after a DST change a plain
//! repeating job would fire an hour off. The job is therefore re-created after every fire:
//! only first ticks are ever used, and 02:00 local stays 02:00 local.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use uuid::Uuid;

use crate::queue::SyncQueue;
use crate::queue::Trigger;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("`schedule.cron` = {expr:?} is not a valid cron expression (6 fields: sec min hour day month weekday, e.g. \"0 0 2 * * *\"): {reason}")]
    Cron { expr: String, reason: String },
    #[error("`schedule.cron` = {expr:?} never fires")]
    Never { expr: String },
    #[error("the scheduler failed: {0}")]
    Scheduler(#[from] JobSchedulerError),
}

#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// Parses the expression exactly as tokio-cron-scheduler does (seconds required, day of
    /// month and day of week both applying), so what validates here is what it runs.
    pub fn new(expr: &str, tz: Tz) -> Result<Schedule, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(expr)
            .map_err(|e| ScheduleError::Cron {
                expr: expr.to_owned(),
                reason: e.to_string(),
            })?;
        let schedule = Schedule {
            expr: expr.to_owned(),
            cron,
            tz,
        };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(ScheduleError::Never {
                expr: expr.to_owned(),
            });
        }
        Ok(schedule)
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire strictly after `t`, evaluated in the schedule's zone.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Fires are on whole seconds; croner would otherwise carry t's fraction over.
        self.cron
            .find_next_occurrence(&t.trunc_subsecs(0).with_timezone(&self.tz), false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The time between the next two fires: "one schedule period" for the start-up check.
    pub fn period(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let first = self.next_after(now)?;
        let second = self.next_after(first)?;
        Some(second - first)
    }
}

/// The running schedule: requests a `schedule` sync on every fire.
pub struct Scheduler {
    jobs: JobScheduler,
}

impl Scheduler {
    pub async fn start(
        schedule: Schedule,
        queue: Arc<SyncQueue>,
    ) -> Result<Scheduler, ScheduleError> {
        let jobs = JobScheduler::new().await?;
        arm(&jobs, Arc::new(schedule), queue).await?;
        jobs.start().await?;
        Ok(Scheduler { jobs })
    }

    pub async fn stop(mut self) {
        if let Err(error) = self.jobs.shutdown().await {
            tracing::warn!(%error, "stopping the scheduler failed");
        }
    }
}

/// Adds a job whose first tick is the next fire; on firing it queues a sync, removes itself
/// and arms the next one.
fn arm(
    jobs: &JobScheduler,
    schedule: Arc<Schedule>,
    queue: Arc<SyncQueue>,
) -> Pin<Box<dyn Future<Output = Result<Uuid, ScheduleError>> + Send + '_>> {
    // Boxed because the job re-arms itself: the future is recursive.
    Box::pin(async move {
        let job_schedule = schedule.clone();
        let job = Job::new_async_tz(schedule.expr.as_str(), schedule.tz, move |id, jobs| {
            let schedule = job_schedule.clone();
            let queue = queue.clone();
            Box::pin(async move {
                tracing::info!("scheduled sync due");
                queue.request(Trigger::Schedule);
                if let Err(error) = jobs.remove(&id).await {
                    tracing::warn!(%error, "could not remove the fired schedule job");
                }
                // Re-arming can only fail if the scheduler is shutting down.
                if let Err(error) = arm(&jobs, schedule, queue).await {
                    tracing::error!(%error, "could not re-arm the schedule; no further scheduled syncs until restart or SIGHUP");
                }
            })
        })?;
        Ok(jobs.add(job).await?)
    })
}

/// How the daemon retries a failed run: `attempts` times, the first after `first_delay`, each
/// further one after twice the previous delay (capped at an hour), with ±20% jitter so that
/// instances of many corps that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl RetryPolicy {
    /// The delay before retry number `attempt + 1`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .first_delay
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(Duration::from_secs(3600));
        let nanos = Utc::now().timestamp_subsec_nanos();
        let jitter = 0.8 + 0.4 * (f64::from(nanos % 1000) / 1000.0);
        base.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    /// Asserts each (after, next fire) pair, both in UTC.
    fn assert_fires(schedule: &Schedule, cases: &[(&str, &str)]) {
        for (after, next) in cases {
            assert_eq!(
                schedule.next_after(utc(after)),
                Some(utc(next)),
                "after {after}"
            );
        }
    }

    #[test]
    fn two_am_local_stays_two_am_local_across_dst_changes() {
        let schedule = Schedule::new("0 0 2 * * *", chrono_tz::Europe::London).expect("valid");
        assert_fires(
            &schedule,
            &[
                // GMT (UTC+0) before 2026-03-29, BST (UTC+1) after.
                ("2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"),
                ("2026-03-27T12:00:00Z", "2026-03-28T02:00:00Z"),
                // And back to GMT on 2026-10-25.
                ("2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z"),
            ],
        );
        let local = schedule
            .next_after(utc("2026-10-26T12:00:00Z"))
            .expect("fires")
            .with_timezone(&chrono_tz::Europe::London);
        assert_eq!(local.format("%H:%M").to_string(), "02:00");
    }

    #[test]
    fn shanghai_is_utc_plus_eight() {
        let schedule = Schedule::new("0 0 2 * * *", chrono_tz::Asia::Shanghai).expect("valid");
        assert_fires(
            &schedule,
            &[("2026-11-22T12:00:00Z", "2026-11-22T18:00:00Z")],
        );
        assert_eq!(
            schedule.period(utc("2026-11-22T12:00:00Z")),
            Some(chrono::Duration::hours(24))
        );
    }

    #[test]
    fn retry_delays_double_within_jitter() {
        let policy = RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_secs(10),
        };
        for (attempt, base) in [(0, 10.0), (1, 20.0), (2, 40.0), (20, 3600.0)] {
            let delay = policy.delay(attempt).as_secs_f64();
            assert!(
                delay >= base * 0.8 && delay <= base * 1.2,
                "{attempt}: {delay}"
            );
        }
    }

    #[test]
    fn rejects_five_field_expressions() {
        assert!(Schedule::new("0 2 * * *", chrono_tz::UTC).is_err());
        assert!(Schedule::new("not cron", chrono_tz::UTC).is_err());
    }

    #[tokio::test]
    async fn the_armed_job_fires_at_the_schedules_next_time() {
        // The scheduler's first tick for a freshly armed job must be the zone-aware next
        // fire; that is what re-arming after each fire relies on.
        let schedule = Schedule::new("0 0 2 * * *", chrono_tz::America::New_York).expect("valid");
        let mut jobs = JobScheduler::new().await.expect("scheduler");
        let id = arm(
            &jobs,
            Arc::new(schedule.clone()),
            Arc::new(SyncQueue::default()),
        )
        .await
        .expect("arm");
        let next = jobs.next_tick_for_job(id).await.expect("tick");
        let now = Utc::now();
        let expected = schedule.next_after(now);
        assert_eq!(next, expected);
    }
}
