//! What WeCom answered when asked whose a mobile or an email is, and how many of those questions
//! failed each day.
//!
//! A cached answer is kept by the value asked for, not by host user: two host users with one
//! mobile cost one call, and a host user whose mobile changes is asked about again because the
//! new value has no answer yet. A hit (a userid) stands until it is rechecked; a miss (WeCom knew
//! nobody) is asked again once it is older than its time to live.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::rows;
use super::StoreError;
use crate::hashing::FastMap;
use crate::model::host_user::LookupKind;

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// As WeCom spells it; `None` when WeCom knew nobody.
    pub userid: Option<String>,
    pub looked_up_at: DateTime<Utc>,
}

/// Every cached answer, by what was asked.
pub fn load(conn: &Connection) -> Result<FastMap<(LookupKind, String), Answer>, StoreError> {
    let mut answers = FastMap::default();
    let sql = "SELECT kind, value, userid, looked_up_at FROM lookups";
    rows::for_each(conn, sql, [], |row| {
        let kind: String = row.get(0)?;
        let at: String = row.get(3)?;
        // A row this version cannot read is asked about again rather than trusted.
        if let (Some(kind), Ok(at)) = (LookupKind::parse(&kind), DateTime::parse_from_rfc3339(&at))
        {
            let answer = Answer {
                userid: row.get(2)?,
                looked_up_at: at.with_timezone(&Utc),
            };
            answers.insert((kind, row.get(1)?), answer);
        }
        Ok(())
    })?;
    Ok(answers)
}

/// The hits only: (kind, value, userid).
pub fn hits(conn: &Connection) -> Result<Vec<(LookupKind, String, String)>, StoreError> {
    let mut hits = Vec::new();
    let sql = "SELECT kind, value, userid FROM lookups WHERE userid IS NOT NULL";
    rows::for_each(conn, sql, [], |row| {
        let kind: String = row.get(0)?;
        if let Some(kind) = LookupKind::parse(&kind) {
            hits.push((kind, row.get(1)?, row.get(2)?));
        }
        Ok(())
    })?;
    Ok(hits)
}

pub fn record(
    conn: &Connection,
    kind: LookupKind,
    value: &str,
    userid: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO lookups (kind, value, userid, looked_up_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![kind.as_str(), value, userid, now.to_rfc3339()])?;
    Ok(())
}

/// How many cached answers there are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
}

pub fn counts(conn: &Connection) -> Result<CacheCounts, StoreError> {
    Ok(conn.query_row(
        "SELECT count(userid), count(*) - count(userid) FROM lookups",
        [],
        |r| {
            Ok(CacheCounts {
                hits: count(r.get(0)?),
                misses: count(r.get(1)?),
            })
        },
    )?)
}

/// One day's failed lookups (days in China time, as WeCom counts them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Day {
    pub day: String,
    pub failures: u64,
    /// When WeCom refused lookups for the rest of the day, if it did.
    pub blocked_at: Option<String>,
}

pub fn day(conn: &Connection, day: &str) -> Result<Day, StoreError> {
    let found = conn
        .prepare_cached("SELECT failures, blocked_at FROM lookup_days WHERE day = ?1")?
        .query_row([day], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (failures, blocked_at) = found.unwrap_or((0, None));
    Ok(Day {
        day: day.to_owned(),
        failures: count(failures),
        blocked_at,
    })
}

/// Counts `failures` more failed lookups on `day`, forgetting earlier days.
fn count_failures(conn: &Connection, day: &str, failures: u64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM lookup_days WHERE day <> ?1")?
        .execute([day])?;
    conn.prepare_cached(
        "INSERT INTO lookup_days (day, failures) VALUES (?1, ?2)
         ON CONFLICT (day) DO UPDATE SET failures = failures + excluded.failures",
    )?
    .execute(params![day, i64::try_from(failures).unwrap_or(i64::MAX)])?;
    Ok(())
}

/// Reserves up to `wanted` of what is left of `day`'s failure `budget` for a batch of lookups
/// about to be made, counting them as failed until [`settle`] records what happened. Call it in
/// a write transaction: two passes at once (the daemon's, and the one `orgsync sync` makes)
/// then each reserve from what the other left, and together never exceed the budget. Returns
/// how many were granted.
pub fn reserve(conn: &Connection, day: &str, wanted: u64, budget: u64) -> Result<u64, StoreError> {
    let granted = wanted.min(budget.saturating_sub(self::day(conn, day)?.failures));
    count_failures(conn, day, granted)?;
    Ok(granted)
}

/// Settles a reservation of `reserved` failures on `day`, of which `misses` happened.
pub fn settle(conn: &Connection, day: &str, reserved: u64, misses: u64) -> Result<(), StoreError> {
    let unused = i64::try_from(reserved.saturating_sub(misses)).unwrap_or(i64::MAX);
    conn.prepare_cached("UPDATE lookup_days SET failures = max(failures - ?2, 0) WHERE day = ?1")?
        .execute(params![day, unused])?;
    Ok(())
}

/// Records that WeCom refused lookups on `day`: none are made again until the next day.
pub fn block(conn: &Connection, day: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    count_failures(conn, day, 0)?;
    conn.prepare_cached("UPDATE lookup_days SET blocked_at = ?2 WHERE day = ?1")?
        .execute(params![day, now.to_rfc3339()])?;
    Ok(())
}

/// Changes whenever a host user is added, changed or removed: the lookup worker compares it
/// to decide whether there may be someone new to look up, without loading the set.
pub fn host_users_fingerprint(conn: &Connection) -> Result<(i64, Option<String>), StoreError> {
    Ok(conn.query_row(
        "SELECT count(*), max(updated_at) FROM host_users",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// SQLite counts are never negative.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}
