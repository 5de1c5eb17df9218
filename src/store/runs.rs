//! The run log: one row per sync run, from start to outcome.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{decode, encode, StoreError};
use crate::queue::Trigger;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Running,
    Completed,
    Failed,
    Held,
    /// The process running it died before it finished (nothing of it was committed).
    Interrupted,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Held => "held",
            Outcome::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Outcome {
        match s {
            "completed" => Outcome::Completed,
            "failed" => Outcome::Failed,
            "held" => Outcome::Held,
            "interrupted" => Outcome::Interrupted,
            _ => Outcome::Running,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Outcome,
    /// Counts for a completed run, the error of a failed one, the pending changes of a held one.
    pub detail: Value,
    /// From start to outcome; `None` while it runs.
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

/// Opens a run. Committed on its own, before the pull, so that the run id is known to the
/// run's events and a crash mid-run is visible afterwards as an interrupted run.
pub fn begin(conn: &Connection, trigger: Trigger) -> Result<i64, StoreError> {
    conn.execute(
        "INSERT INTO runs (trigger, pid, started_at, outcome) VALUES (?1, ?2, ?3, 'running')",
        params![trigger.as_str(), std::process::id(), now()],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn finish(
    conn: &Connection,
    id: i64,
    outcome: Outcome,
    detail: &impl Serialize,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE runs SET outcome = ?2, finished_at = ?3, detail = ?4 WHERE id = ?1",
        params![id, outcome.as_str(), now(), encode(detail)],
    )?;
    Ok(())
}

/// Marks runs whose process no longer exists as interrupted. A live process with the run's pid
/// that started after the run did is another process that reused the pid: the run's own
/// process is gone.
pub fn mark_interrupted(conn: &Connection) -> Result<usize, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, pid, started_at FROM runs WHERE outcome = 'running'")?;
    let running = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut marked = 0;
    for (id, pid, started_at) in running {
        if !run_process_alive(pid, &started_at) {
            conn.execute(
                "UPDATE runs SET outcome = 'interrupted' WHERE id = ?1 AND outcome = 'running'",
                [id],
            )?;
            marked += 1;
        }
    }
    Ok(marked)
}

/// Run timestamps: RFC 3339 in UTC with milliseconds, like event times.
fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether the process that began a run at `started_at` may still be running it.
fn run_process_alive(pid: i64, started_at: &str) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid == std::process::id() as libc::pid_t {
        return true;
    }
    // SAFETY: kill with signal 0 only checks for the process's existence; it sends nothing.
    let result = unsafe { libc::kill(pid, 0) };
    let exists = result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    let started_before_the_run =
        match (process_start(pid), DateTime::parse_from_rfc3339(started_at)) {
            // A minute of slack: /proc's boot time has whole seconds, and the wall clock may be
            // stepped back a little after a run began. A pid comes round again only after
            // pid_max more processes, which hardly ever fit in the minute after a run began.
            (Some(process), Ok(run)) => {
                process <= run.with_timezone(&Utc) + chrono::Duration::seconds(60)
            }
            // Without /proc (or with a mangled row) the pid alone has to do.
            _ => true,
        };
    exists && started_before_the_run
}

/// When a process started: its start time in clock ticks after boot (`/proc/PID/stat`, field
/// 22), plus the boot time (`/proc/stat`, `btime`).
fn process_start(pid: libc::pid_t) -> Option<DateTime<Utc>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces; count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let ticks: i64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    let millis = boot * 1000 + ticks * 1000 / per_second;
    DateTime::from_timestamp_millis(millis)
}

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<(RunRecord, Option<String>)> {
    let outcome: String = row.get(4)?;
    let started_at: String = row.get(2)?;
    let finished_at: Option<String> = row.get(3)?;
    Ok((
        RunRecord {
            id: row.get(0)?,
            trigger: row.get(1)?,
            duration_ms: duration_ms(&started_at, finished_at.as_deref()),
            started_at,
            finished_at,
            outcome: Outcome::parse(&outcome),
            detail: Value::Null,
        },
        row.get(5)?,
    ))
}

fn duration_ms(started_at: &str, finished_at: Option<&str>) -> Option<i64> {
    let started = DateTime::parse_from_rfc3339(started_at).ok()?;
    let finished = DateTime::parse_from_rfc3339(finished_at?).ok()?;
    Some((finished - started).num_milliseconds())
}

fn with_detail((mut run, detail): (RunRecord, Option<String>)) -> Result<RunRecord, StoreError> {
    if let Some(text) = detail {
        run.detail = decode("run detail", &text)?;
    }
    Ok(run)
}

const COLUMNS: &str = "id, trigger, started_at, finished_at, outcome, detail";

/// The newest runs first.
pub fn recent(conn: &Connection, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM runs ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt
        .query_map([limit as i64], record)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(with_detail).collect()
}

/// The newest run that ended (completed, failed or held).
pub fn last_finished(conn: &Connection) -> Result<Option<RunRecord>, StoreError> {
    last_of(conn, "'completed', 'failed', 'held'")
}

/// The id of the newest run recorded, 0 when there is none.
pub fn last_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT coalesce(max(id), 0) FROM runs", [], |r| r.get(0))?)
}

/// Whether the last run that ended was cut short rather than finished: stopped by a shutdown
/// (`sync.failed` with code `shutdown`) or left unfinished by a process that died. The daemon
/// runs again at start-up then, instead of failing health checks until the next schedule.
pub fn last_was_cut_short(conn: &Connection) -> Result<bool, StoreError> {
    Ok(
        last_of(conn, "'completed', 'failed', 'held', 'interrupted'")?.is_some_and(|run| {
            run.outcome == Outcome::Interrupted
                || (run.outcome == Outcome::Failed && run.detail["error"]["code"] == "shutdown")
        }),
    )
}

/// The last held run, unless a run has completed since: its changes still wait for an admin,
/// even when a later run failed before the guard could look at them again.
pub fn pending_hold(conn: &Connection) -> Result<Option<RunRecord>, StoreError> {
    let last = last_of(conn, "'completed', 'held'")?;
    Ok(last.filter(|run| run.outcome == Outcome::Held))
}

/// The newest run whose outcome is one of `outcomes`, a list of SQL string literals.
fn last_of(conn: &Connection, outcomes: &str) -> Result<Option<RunRecord>, StoreError> {
    let row = conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM runs WHERE outcome IN ({outcomes}) ORDER BY id DESC LIMIT 1"
            ),
            [],
            record,
        )
        .optional()?;
    row.map(with_detail).transpose()
}

/// When the last run that completed finished.
pub fn last_completed_at(conn: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let finished: Option<String> = conn
        .query_row(
            "SELECT finished_at FROM runs WHERE outcome = 'completed' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(finished
        .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// The newest run that completed, with its counts.
pub fn last_completed(conn: &Connection) -> Result<Option<RunRecord>, StoreError> {
    last_of(conn, "'completed'")
}

/// How many runs each trigger started, by outcome: `(trigger, outcome, count)`.
pub fn counts_by_trigger(conn: &Connection) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT trigger, outcome, count(*) FROM runs GROUP BY trigger, outcome ORDER BY 1, 2",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
