//! What `orgsync status` and the socket's `status` op report: last runs, the mirror's size,
//! the next scheduled run, the event head and how far behind each consumer is.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schedule::Schedule;
use crate::store::consumers;
use crate::store::mirror::{self, MirrorCounts};
use crate::store::runs::{self, Outcome, RunRecord};
use crate::store::sinks::{self, SinkRow};
use crate::store::{event_log, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub corp_id: String,
    pub last_run: Option<RunRecord>,
    pub recent_runs: Vec<RunRecord>,
    /// The pending changes of the last held run, while no run has completed since.
    pub held: Option<Value>,
    /// In the schedule's zone, RFC 3339.
    pub next_run: Option<String>,
    /// The schedule's zone (IANA name): the human form shows every time in it.
    #[serde(default)]
    pub timezone: Option<String>,
    pub mirror: MirrorCounts,
    pub events: EventCounts,
    pub consumers: Vec<ConsumerLag>,
    /// The push sinks (`[[sinks.webhook]]`) and how their delivery goes.
    #[serde(default)]
    pub sinks: Vec<SinkStatus>,
    /// Set when the report comes from the running daemon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventCounts {
    pub head: i64,
    pub oldest: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerLag {
    pub name: String,
    pub acked_seq: i64,
    pub lag: i64,
    pub updated_at: String,
}

/// A sink's delivery, from its cursor and its row in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SinkStatus {
    /// Its name and kind, and the state of its deliveries as the runner records it.
    #[serde(flatten)]
    pub row: SinkRow,
    /// The last seq the target confirmed; `None` before the sink first ran.
    pub cursor: Option<i64>,
    pub lag: i64,
    /// `delivering`, `idle` (nothing to send), `failing` (retrying) or `paused` (410 Gone).
    pub state: String,
    /// Failing for longer than its `alert_after_secs`.
    pub alert: bool,
}

/// Every sink's status, as of `now`, with the event head `head`.
pub fn sink_statuses(
    conn: &Connection,
    head: i64,
    now: DateTime<Utc>,
) -> Result<Vec<SinkStatus>, StoreError> {
    sinks::list(conn)?
        .into_iter()
        .map(|row| {
            let cursor = consumers::cursor(conn, &consumers::sink_consumer(&row.name))?;
            let lag = cursor.map_or(head, |cursor| head - cursor);
            let alert = row
                .failing_since
                .as_deref()
                .and_then(|since| DateTime::parse_from_rfc3339(since).ok())
                .is_some_and(|since| {
                    (now - since.with_timezone(&Utc)).num_seconds() >= row.alert_after
                });
            let state = if row.paused_at.is_some() {
                "paused"
            } else if row.failing_since.is_some() {
                "failing"
            } else if lag > 0 {
                "delivering"
            } else {
                "idle"
            };
            Ok(SinkStatus {
                row,
                cursor,
                lag,
                state: state.to_owned(),
                alert,
            })
        })
        .collect()
}

impl SinkStatus {
    /// The human form: one line, and a second with the error while it fails or is paused.
    pub fn render(&self, local: &dyn Fn(&str) -> String) -> String {
        let row = &self.row;
        let at = self
            .cursor
            .map_or_else(|| "-".to_owned(), |cursor| cursor.to_string());
        let mut text = format!(
            "{} ({}) at {at}, lag {}, {}",
            row.name, row.kind, self.lag, self.state
        );
        if let Some(delivered) = &row.delivered_at {
            text.push_str(&format!(", last delivery {}", local(delivered)));
        }
        if let (Some(paused), Some(reason)) = (&row.paused_at, &row.paused_reason) {
            text.push_str(&format!(
                "\n            PAUSED since {}: {reason}",
                local(paused)
            ));
        } else if let Some(since) = &row.failing_since {
            text.push_str(&format!(
                "\n            {} since {}, {} attempts, next {}: {}",
                if self.alert {
                    "ALERT: FAILING"
                } else {
                    "failing"
                },
                local(since),
                row.attempts,
                row.next_attempt
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), local),
                row.last_error.as_deref().unwrap_or("?")
            ));
        }
        text
    }
}

pub fn collect(
    conn: &Connection,
    corp_id: &str,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Status, StoreError> {
    let recent_runs = runs::recent(conn, 5)?;
    let last_run = runs::last_finished(conn)?;
    let held = runs::pending_hold(conn)?.map(|run| run.detail);
    let head = event_log::check(conn)?;
    Ok(Status {
        corp_id: corp_id.to_owned(),
        last_run,
        recent_runs,
        held,
        next_run: schedule
            .next_after(now)
            .map(|t| t.with_timezone(&schedule.timezone()).to_rfc3339()),
        timezone: Some(schedule.timezone().name().to_owned()),
        mirror: mirror::counts(conn)?,
        events: EventCounts {
            head,
            oldest: event_log::oldest(conn)?,
        },
        consumers: consumers::list(conn)?
            .into_iter()
            .map(|c| ConsumerLag {
                lag: head - c.acked_seq,
                name: c.name,
                acked_seq: c.acked_seq,
                updated_at: c.updated_at,
            })
            .collect(),
        sinks: sink_statuses(conn, head, now)?,
        daemon: None,
    })
}

impl Status {
    /// The exit status of `orgsync status`: it doubles as a health check.
    pub fn exit_code(&self) -> i32 {
        match self.last_run.as_ref().map(|run| run.outcome) {
            Some(Outcome::Failed) => 1,
            Some(Outcome::Held) => 3,
            _ => 0,
        }
    }

    /// What `orgsync status` says on stderr when it exits non-zero: the failed or held run, and
    /// what to do.
    pub fn problem(&self) -> Option<String> {
        let run = self.last_run.as_ref()?;
        let said = |pointer: &str| run.detail.pointer(pointer).and_then(Value::as_str);
        match run.outcome {
            Outcome::Failed => Some(format!(
                "the last run, {}, failed: {}",
                run.id,
                said("/error/message").unwrap_or("see `orgsync status` for its error")
            )),
            Outcome::Held => Some(format!(
                "run {} is held by the deletion guard: {}",
                run.id,
                said("/reason").unwrap_or(
                    "review with `orgsync sync --dry-run`, then apply with `orgsync sync --force`"
                )
            )),
            _ => None,
        }
    }

    /// The human form. Times are shown in the schedule's zone.
    pub fn render(&self) -> String {
        let tz: Option<Tz> = self.timezone.as_deref().and_then(|name| name.parse().ok());
        let local = |at: &str| local_time(at, tz);
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        line(format!("corp:       {}", self.corp_id));
        match &self.daemon {
            None => line("daemon:     not answering on its socket (stopped?)".into()),
            Some(daemon) => line(format!("daemon:     {}", describe_daemon(daemon, &local))),
        }
        match &self.last_run {
            None => line("last run:   none yet".into()),
            Some(run) => line(format!(
                "last run:   #{} {} ({}), finished {}{}{}",
                run.id,
                outcome_word(run.outcome),
                run.trigger,
                run.finished_at
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), local),
                run.duration_ms
                    .map(|ms| format!(", took {:.1} s", ms as f64 / 1000.0))
                    .unwrap_or_default(),
                describe_detail(run)
            )),
        }
        if let Some(daemon) = &self.daemon {
            if let Some(rejected) = daemon.get("reload_rejected").filter(|v| !v.is_null()) {
                line(format!(
                    "RELOAD REJECTED at {}: {}; the previous config stays in force",
                    rejected["at"]
                        .as_str()
                        .map_or_else(|| "?".to_owned(), local),
                    rejected["error"].as_str().unwrap_or("?")
                ));
            }
            for setting in daemon["restart_needed"].as_array().into_iter().flatten() {
                line(format!(
                    "RESTART NEEDED: {}",
                    setting.as_str().unwrap_or("?")
                ));
            }
        }
        if let Some(held) = &self.held {
            line(format!(
                "HELD:       {}",
                held.get("reason").and_then(Value::as_str).unwrap_or("held")
            ));
            if let Some(pending) = held.get("pending") {
                line(format!("            pending: {}", counts(pending)));
            }
            line(
                "            `orgsync sync --dry-run` lists the changes; `orgsync sync --force` applies them"
                    .into(),
            );
        }
        line(format!(
            "next run:   {}",
            match (&self.next_run, &self.timezone) {
                (Some(next), Some(zone)) => format!("{} ({zone})", local(next)),
                (Some(next), None) => next.clone(),
                (None, _) => "never".to_owned(),
            }
        ));
        line(format!(
            "mirror:     {} departments, {} members",
            self.mirror.departments, self.mirror.members
        ));
        line(format!(
            "events:     head {}, oldest kept {}",
            self.events.head,
            self.events
                .oldest
                .map_or_else(|| "-".to_owned(), |s| s.to_string())
        ));
        if self.consumers.is_empty() {
            line("consumers:  none".into());
        }
        for consumer in &self.consumers {
            line(format!(
                "consumer:   {} acked {} (lag {}, last ack {})",
                consumer.name,
                consumer.acked_seq,
                consumer.lag,
                local(&consumer.updated_at)
            ));
        }
        for sink in self.sinks.iter().filter(|sink| sink.alert) {
            let row = &sink.row;
            line(format!(
                "SINK ALERT: {} has been failing since {}: {}",
                row.name,
                row.failing_since
                    .as_deref()
                    .map_or_else(|| "?".to_owned(), local),
                row.last_error.as_deref().unwrap_or("?")
            ));
        }
        for sink in &self.sinks {
            line(format!("sink:       {}", sink.render(&local)));
        }
        out
    }
}

/// An RFC 3339 time as `2026-11-23 02:00:04 CST`; as given if it does not parse.
fn local_time(at: &str, tz: Option<Tz>) -> String {
    match (DateTime::parse_from_rfc3339(at), tz) {
        (Ok(at), Some(tz)) => at
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        _ => at.to_owned(),
    }
}

/// What the daemon's part of a status reply says it is doing.
fn describe_daemon(daemon: &Value, local: &dyn Fn(&str) -> String) -> String {
    let mut text = match daemon.get("pid").and_then(Value::as_u64) {
        Some(pid) => format!("running, pid {pid}"),
        None => "running".to_owned(),
    };
    match daemon.get("running").filter(|v| !v.is_null()) {
        Some(running) => text.push_str(&format!(
            "; syncing ({}) since {}",
            running["trigger"].as_str().unwrap_or("?"),
            running["since"]
                .as_str()
                .map_or_else(|| "?".to_owned(), local)
        )),
        None => text.push_str("; idle"),
    }
    if daemon.get("queued").and_then(Value::as_bool) == Some(true) {
        text.push_str("; another sync queued");
    }
    if let Some(retry) = daemon.get("retry").filter(|v| !v.is_null()) {
        text.push_str(&format!(
            "; retry {} at {}",
            retry["attempt"],
            retry["at"].as_str().map_or_else(|| "?".to_owned(), local)
        ));
    }
    text
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Running => "running",
        Outcome::Completed => "completed",
        Outcome::Failed => "FAILED",
        Outcome::Held => "HELD",
        Outcome::Interrupted => "interrupted",
    }
}

fn describe_detail(run: &RunRecord) -> String {
    let detail = &run.detail;
    if let Some(counts) = detail.get("counts") {
        return format!("\n            {}", self::counts(counts));
    }
    if let Some(message) = detail.pointer("/error/message").and_then(Value::as_str) {
        return format!("\n            error: {message}");
    }
    String::new()
}

/// `members 3 joined, 1 updated, 0 left; departments 0 created, ...` from a run's counts.
fn counts(counts: &Value) -> String {
    let n = |key: &str| counts.get(key).and_then(Value::as_u64).unwrap_or(0);
    let mut text = format!(
        "members {} joined, {} updated, {} left; departments {} created, {} updated, {} deleted",
        n("members_joined"),
        n("members_updated"),
        n("members_left"),
        n("departments_created"),
        n("departments_updated"),
        n("departments_deleted")
    );
    let ignored = (
        n("ignored_departments"),
        n("ignored_memberships"),
        n("ignored_members"),
    );
    if ignored != (0, 0, 0) {
        text.push_str(&format!(
            "; not mirrored: {} departments outside wecom.root_department, {} memberships in \
             departments not mirrored, {} members named in the app's visible range",
            ignored.0, ignored.1, ignored.2
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sinks_status_is_one_flat_object_and_reads_back() {
        let status = SinkStatus {
            row: SinkRow {
                name: "crm".into(),
                kind: "webhook".into(),
                alert_after: 3600,
                paused_at: None,
                paused_reason: None,
                failing_since: Some("2026-12-07T10:00:00Z".into()),
                attempts: 3,
                last_error: Some("HTTP 503".into()),
                next_attempt: None,
                delivered_at: None,
            },
            cursor: Some(41),
            lag: 2,
            state: "failing".into(),
            alert: false,
        };
        let value = serde_json::to_value(&status).unwrap();
        assert_eq!(value["name"], "crm");
        assert_eq!(value["kind"], "webhook");
        assert_eq!(value["attempts"], 3);
        assert_eq!(value["last_error"], "HTTP 503");
        assert_eq!(value["cursor"], 41);
        assert_eq!(value["state"], "failing");
        assert!(value.get("row").is_none(), "{value}");
        let mut older = value.clone();
        let back: SinkStatus = serde_json::from_value(value).unwrap();
        assert_eq!(back.row, status.row);
        assert_eq!(back.cursor, Some(41));
        // A daemon that has not been restarted since an upgrade sends no `alert_after`.
        older.as_object_mut().unwrap().remove("alert_after");
        let from_older: SinkStatus = serde_json::from_value(older).unwrap();
        assert_eq!(from_older.row.attempts, 3);
    }
}
