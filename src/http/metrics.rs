//! `/metrics`: the status report as Prometheus text. Everything is read when scraped, from
//! the same report `orgsync status` prints and two counts of the run log; nothing is kept in
//! memory between scrapes.

use std::fmt::Write;

use rusqlite::Connection;
use serde_json::Value;

use crate::status::{SinkStatus, Status};
use crate::store::{runs, StoreError};

/// What the status report does not carry.
pub struct StoreFigures {
    /// `(trigger, outcome, count)`.
    runs: Vec<(String, String, i64)>,
    last_completed: Option<runs::RunRecord>,
}

impl StoreFigures {
    pub fn read(conn: &Connection) -> Result<StoreFigures, StoreError> {
        let tx = conn.unchecked_transaction()?;
        Ok(StoreFigures {
            runs: runs::counts_by_trigger(&tx)?,
            last_completed: runs::last_completed(&tx)?,
        })
    }
}

struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.0,
            "# HELP orgsync_{name} {help}\n# TYPE orgsync_{name} {kind}"
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.0, "orgsync_{name}");
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn timestamp(text: Option<&str>) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(text?)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

pub fn render(status: &Status, report: &Value, healthy: bool, store: &StoreFigures) -> String {
    let mut out = Text(String::new());
    out.gauge(
        "healthy",
        "1 when `orgsync status` would exit 0 (the last run did not fail and was not held).",
        f64::from(u8::from(healthy)),
    );
    if let Some(at) = timestamp(
        store
            .last_completed
            .as_ref()
            .and_then(|run| run.finished_at.as_deref()),
    ) {
        out.gauge(
            "last_success_timestamp_seconds",
            "When the last successful sync finished (Unix time).",
            at,
        );
    }
    out.family(
        "runs_total",
        "counter",
        "Sync runs recorded in the store, by trigger and outcome.",
    );
    for (trigger, outcome, count) in &store.runs {
        out.sample(
            "runs_total",
            &[("trigger", trigger), ("outcome", outcome)],
            *count as f64,
        );
    }
    if let Some(run) = &status.last_run {
        if let Some(ms) = run.duration_ms {
            out.gauge(
                "last_run_duration_seconds",
                "How long the last finished run took.",
                ms as f64 / 1000.0,
            );
        }
        out.family(
            "last_run_outcome",
            "gauge",
            "The outcome of the last finished run (1 for its outcome).",
        );
        let outcome = serde_json::to_value(run.outcome).unwrap_or(Value::Null);
        out.sample(
            "last_run_outcome",
            &[("outcome", outcome.as_str().unwrap_or("unknown"))],
            1.0,
        );
    }
    if let Some(Value::Object(counts)) = store
        .last_completed
        .as_ref()
        .map(|run| &run.detail["counts"])
    {
        out.family(
            "last_run_changes",
            "gauge",
            "The counts of the last completed run, by kind.",
        );
        for (kind, value) in counts {
            if let Some(n) = value.as_f64() {
                out.sample("last_run_changes", &[("kind", kind)], n);
            }
        }
    }
    out.gauge(
        "mirror_members",
        "Members in the mirror.",
        status.mirror.members as f64,
    );
    out.gauge(
        "mirror_departments",
        "Departments in the mirror.",
        status.mirror.departments as f64,
    );
    out.gauge(
        "event_head",
        "The seq of the newest event.",
        status.events.head as f64,
    );
    if let Some(oldest) = status.events.oldest {
        out.gauge(
            "event_oldest",
            "The seq of the oldest event kept.",
            oldest as f64,
        );
    }
    out.family(
        "consumer_lag",
        "gauge",
        "Events committed after each consumer's last ack.",
    );
    for consumer in &status.consumers {
        out.sample(
            "consumer_lag",
            &[("consumer", &consumer.name)],
            consumer.lag as f64,
        );
    }
    for (name, help, value) in [
        (
            "sink_lag",
            "Events committed after each sink's confirmed cursor.",
            &(|sink: &SinkStatus| sink.lag as f64) as &dyn Fn(&SinkStatus) -> f64,
        ),
        (
            "sink_failing_attempts",
            "Failed attempts of each sink's current delivery (0 while it delivers).",
            &|sink: &SinkStatus| sink.row.attempts as f64,
        ),
        (
            "sink_paused",
            "1 while a sink is paused (its target answered 410 Gone).",
            &|sink: &SinkStatus| f64::from(u8::from(sink.row.paused_at.is_some())),
        ),
        (
            "sink_alert",
            "1 while a sink has been failing for longer than its alert_after_secs.",
            &|sink: &SinkStatus| f64::from(u8::from(sink.alert)),
        ),
    ] {
        out.family(name, "gauge", help);
        for sink in &status.sinks {
            out.sample(name, &[("sink", &sink.row.name)], value(sink));
        }
    }
    out.gauge(
        "guard_held",
        "1 while a run held by the deletion guard waits for an admin.",
        f64::from(u8::from(status.held.is_some())),
    );
    let daemon = &report["daemon"];
    out.gauge(
        "sync_running",
        "1 while a sync runs.",
        f64::from(u8::from(!daemon["running"].is_null())),
    );
    out.gauge(
        "sync_queued",
        "1 while a sync is queued.",
        f64::from(u8::from(daemon["queued"] == true)),
    );
    out.0
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::events::{EventDraft, EventSource, EventType};
    use crate::schedule::Schedule;
    use crate::status;
    use crate::store::{consumers, event_log, sinks, Store};

    #[test]
    fn each_sink_has_its_lag_attempts_pause_and_alert() {
        let mut store = Store::in_memory().expect("store");
        let drafts = vec![
            EventDraft {
                kind: EventType::MemberUpdated,
                subject: "member/zhangsan".into(),
                data: json!({}),
            };
            7
        ];
        let now = Utc::now();
        store
            .write(|tx| {
                event_log::append(tx, &EventSource::new("wwtest"), None, &drafts, now)?;
                sinks::register(tx, "crm", "webhook", 60)?;
                consumers::move_cursor(tx, "sink:crm", None, 3, consumers::SINK_OWNER)?;
                sinks::record_failure(
                    tx,
                    "crm",
                    "HTTP 500",
                    now - chrono::TimeDelta::seconds(120),
                    now,
                )?;
                sinks::register(tx, "bus", "nats", 60)?;
                consumers::move_cursor(tx, "sink:bus", None, 7, consumers::SINK_OWNER)?;
                sinks::pause(tx, "bus", "410", now)
            })
            .expect("write");
        let schedule = Schedule::new("0 0 2 * * *", chrono_tz::Asia::Shanghai).expect("schedule");
        let report = status::collect(store.conn(), "wwtest", &schedule, now).expect("status");
        let figures = StoreFigures::read(store.conn()).expect("figures");
        let text = render(&report, &json!({}), true, &figures);
        for line in [
            "orgsync_sink_lag{sink=\"crm\"} 4",
            "orgsync_sink_lag{sink=\"bus\"} 0",
            "orgsync_sink_failing_attempts{sink=\"crm\"} 1",
            "orgsync_sink_paused{sink=\"bus\"} 1",
            "orgsync_sink_paused{sink=\"crm\"} 0",
            "orgsync_sink_alert{sink=\"crm\"} 1",
            "orgsync_sink_alert{sink=\"bus\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        let crm = report
            .sinks
            .iter()
            .find(|s| s.row.name == "crm")
            .expect("crm");
        assert_eq!((crm.state.as_str(), crm.alert), ("failing", true));
        assert!(report
            .render()
            .contains("SINK ALERT: crm has been failing since"));
    }
}
