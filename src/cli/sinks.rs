//! `orgsync sinks`: the push sinks with their lag and state; `resume NAME` after a 410 Gone;
//! `replay NAME --from SEQ` to deliver again. Both act on the store, with or without a running
//! daemon: a running one picks the change up within a second.

use chrono::Utc;

use super::CliError;
use crate::config::Config;
use crate::status::{self, SinkStatus};
use crate::store::consumers::{self, sink_consumer};
use crate::store::{event_log, sinks, Store, BUSY_TIMEOUT};

/// `orgsync sinks [list]`.
pub fn list(config: &Config, json: bool) -> Result<u8, CliError> {
    let store = Store::open_read_only(&config.store.path)?;
    let conn = store.conn();
    let head = event_log::head(conn).map_err(|e| store.explain(e))?;
    let statuses = status::sink_statuses(conn, head, Utc::now()).map_err(|e| store.explain(e))?;
    let configured: Vec<(&str, &str)> = config
        .sinks
        .webhook
        .iter()
        .map(|sink| (sink.name.as_str(), "webhook"))
        .chain(
            config
                .sinks
                .nats
                .iter()
                .map(|sink| (sink.name.as_str(), "nats")),
        )
        .collect();
    if json {
        let listed: Vec<serde_json::Value> = statuses
            .iter()
            .map(|sink| {
                let mut value = serde_json::to_value(sink).unwrap_or_default();
                value["configured"] = configured
                    .iter()
                    .any(|(name, _)| *name == sink.row.name)
                    .into();
                value
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).unwrap_or_default()
        );
        return Ok(0);
    }
    if statuses.is_empty() && configured.is_empty() {
        println!("no sinks; add a [[sinks.webhook]] table to the config (docs/sinks.md)");
        return Ok(0);
    }
    println!(
        "{:<20} {:<8} {:>10} {:>8}  {:<10} detail",
        "NAME", "KIND", "CURSOR", "LAG", "STATE"
    );
    for sink in &statuses {
        println!(
            "{}",
            row(sink, configured.iter().any(|(n, _)| *n == sink.row.name))
        );
    }
    for (name, kind) in configured {
        if !statuses.iter().any(|sink| sink.row.name == name) {
            println!(
                "{name:<20} {kind:<8} {:>10} {:>8}  {:<10} starts with the daemon",
                "-", "-", "new"
            );
        }
    }
    Ok(0)
}

fn row(sink: &SinkStatus, configured: bool) -> String {
    let detail = if !configured {
        format!(
            "not in the config: its cursor still holds events back; `orgsync consumers remove \
             sink:{}` forgets it",
            sink.row.name
        )
    } else if let Some(reason) = &sink.row.paused_reason {
        reason.clone()
    } else if let Some(error) = &sink
        .row
        .last_error
        .as_ref()
        .filter(|_| sink.row.failing_since.is_some())
    {
        format!(
            "{}{} attempts since {}, next {}: {error}",
            if sink.alert { "ALERT: " } else { "" },
            sink.row.attempts,
            sink.row.failing_since.as_deref().unwrap_or("?"),
            sink.row.next_attempt.as_deref().unwrap_or("-")
        )
    } else {
        sink.row
            .delivered_at
            .as_deref()
            .map(|at| format!("last delivery {at}"))
            .unwrap_or_default()
    };
    format!(
        "{:<20} {:<8} {:>10} {:>8}  {:<10} {detail}",
        sink.row.name,
        sink.row.kind,
        sink.cursor
            .map_or_else(|| "-".to_owned(), |cursor| cursor.to_string()),
        sink.lag,
        if sink.alert {
            "ALERT"
        } else {
            sink.state.as_str()
        },
    )
}

/// `orgsync sinks resume NAME`.
pub fn resume(config: &Config, name: &str) -> Result<u8, CliError> {
    let mut store = Store::open_existing(&config.store.path, BUSY_TIMEOUT)?;
    if store.write(|tx| sinks::resume(tx, name))? {
        println!("sink {name:?} resumed; a running daemon delivers again within a second");
        Ok(0)
    } else {
        Err(unknown(name))
    }
}

/// `orgsync sinks replay NAME --from SEQ`: the sink delivers again every event from `SEQ` on.
///
/// Replay only moves a cursor back: a `--from` past the cursor + 1 would skip events the sink
/// has not delivered, so it is refused. The one exception is a cursor behind the oldest event
/// kept (a store edited or replaced under it), which may move to the oldest: the events in
/// between are gone, so nothing that could still be delivered is skipped.
pub fn replay(config: &Config, name: &str, from: i64) -> Result<u8, CliError> {
    let mut store = Store::open_existing(&config.store.path, BUSY_TIMEOUT)?;
    let consumer = sink_consumer(name);
    let moved = store.write(|tx| {
        let Some(cursor) = consumers::cursor(tx, &consumer)? else {
            return Ok(Err(unknown(name)));
        };
        let head = event_log::head(tx)?;
        let lowest = event_log::oldest(tx)?.unwrap_or(head + 1).max(1);
        let highest = cursor.saturating_add(1).max(lowest).min(head + 1);
        if from < lowest {
            return Ok(Err(CliError::Usage(format!(
                "--from {from} is outside the events kept: give a seq from {lowest} to \
                 {highest}"
            ))));
        }
        if from > highest {
            return Ok(Err(CliError::Usage(format!(
                "--from {from} is past the cursor of sink {name:?}, {cursor}: replay only moves \
                 a cursor back, and a later start would skip events the sink has not \
                 delivered; give a seq from {lowest} to {highest}"
            ))));
        }
        consumers::move_cursor(tx, &consumer, Some(cursor), from - 1, consumers::SINK_OWNER)?;
        Ok(Ok(cursor))
    })?;
    let cursor = moved?;
    if from - 1 > cursor {
        // Only past a gap of pruned events: the cursor's events are no longer kept.
        println!(
            "sink {name:?} moved from {cursor} to {} past events no longer kept: it delivers \
             from seq {from} on (a running daemon within a second)",
            from - 1
        );
    } else if from - 1 == cursor {
        println!("sink {name:?} is already at {cursor}: nothing changed");
    } else {
        println!(
            "sink {name:?} moved from {cursor} to {}: it delivers every event from seq {from} \
             on again (a running daemon within a second, after the delivery in flight)",
            from - 1
        );
    }
    Ok(0)
}

fn unknown(name: &str) -> CliError {
    CliError::Failed(format!(
        "there is no sink {name:?} in the store (a configured sink appears once the daemon has \
         started it); `orgsync sinks` lists them"
    ))
}
