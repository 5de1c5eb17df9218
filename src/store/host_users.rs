//! The host application's users, as last given by `host_users.put` or an import, each with the
//! normalized name and mobile that matching compares. The normalized forms are computed when a
//! host user is written; a release that changes the normalization must recompute them in a
//! migration.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{self, from_row, FromRow};
use super::StoreError;
use crate::hashing::FastMap;
use crate::model::host_user::{email_key, HostFacts, HostUser};

/// What matching needs of every host user, by id.
pub fn facts(conn: &Connection) -> Result<FastMap<String, HostFacts>, StoreError> {
    let mut facts = FastMap::default();
    let sql = "SELECT id, name_norm, mobile_norm, email FROM host_users";
    rows::for_each(conn, sql, [], |row| {
        let email: Option<String> = row.get(3)?;
        let host = HostFacts {
            name: row.get(1)?,
            mobile: row.get(2)?,
            email: email.as_deref().and_then(email_key),
        };
        facts.insert(row.get(0)?, host);
        Ok(())
    })?;
    Ok(facts)
}

from_row!(HostUser {
    id,
    name,
    mobile,
    email
});

/// Every host user as given, by id.
pub fn load(conn: &Connection) -> Result<FastMap<String, HostUser>, StoreError> {
    let mut users = FastMap::default();
    let sql = "SELECT id, name, mobile, email FROM host_users";
    rows::for_each(conn, sql, [], |row| {
        let user = HostUser::from_row(row)?;
        users.insert(user.id.clone(), user);
        Ok(())
    })?;
    Ok(users)
}

pub fn exists(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM host_users WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn is_empty(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM host_users LIMIT 1", [], |_| Ok(()))
        .optional()?
        .is_none())
}

/// What a batch changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchSummary {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// By `replace`: host users the batch did not name.
    pub removed: usize,
}

/// The same id twice in one batch; `first` is where it was first seen (a line or an index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate {
    pub first: u64,
}

/// Puts host users one at a time inside the caller's write transaction, so that an import is
/// streamed into the store instead of held in memory. It remembers which ids it put (in a
/// temporary table), to refuse an id given twice and, with `replace`, to remove the rest.
pub struct Batch<'c> {
    conn: &'c Connection,
    now: String,
    summary: BatchSummary,
}

impl<'c> Batch<'c> {
    pub fn begin(conn: &'c Connection, now: DateTime<Utc>) -> Result<Batch<'c>, StoreError> {
        conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS host_users_seen (
                 id       TEXT PRIMARY KEY,
                 position INTEGER NOT NULL
             ) WITHOUT ROWID;
             DELETE FROM temp.host_users_seen;",
        )?;
        Ok(Batch {
            conn,
            now: now.to_rfc3339(),
            summary: BatchSummary::default(),
        })
    }

    /// Writes `user` with what matching compares of it (`facts`), if it differs from what is
    /// stored, or reports that the batch already had its id. `position` is the line or index
    /// the user came from.
    pub fn put(
        &mut self,
        user: &HostUser,
        facts: &HostFacts,
        position: u64,
    ) -> Result<Option<Duplicate>, StoreError> {
        let first: Option<i64> = self
            .conn
            .prepare_cached("SELECT position FROM temp.host_users_seen WHERE id = ?1")?
            .query_row([&user.id], |r| r.get(0))
            .optional()?;
        if let Some(first) = first {
            return Ok(Some(Duplicate {
                first: u64::try_from(first).unwrap_or_default(),
            }));
        }
        self.conn
            .prepare_cached("INSERT INTO temp.host_users_seen (id, position) VALUES (?1, ?2)")?
            .execute(params![
                user.id,
                i64::try_from(position).unwrap_or(i64::MAX)
            ])?;

        type Stored = (Option<String>, Option<String>, Option<String>);
        let stored: Option<Stored> = self
            .conn
            .prepare_cached("SELECT name, mobile, email FROM host_users WHERE id = ?1")?
            .query_row([&user.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let given = (user.name.clone(), user.mobile.clone(), user.email.clone());
        match stored {
            Some(stored) if stored == given => {
                self.summary.unchanged += 1;
                return Ok(None);
            }
            Some(_) => self.summary.updated += 1,
            None => self.summary.added += 1,
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO host_users
                     (id, name, mobile, email, name_norm, mobile_norm, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                user.id,
                user.name,
                user.mobile,
                user.email,
                facts.name,
                facts.mobile,
                self.now,
            ])?;
        Ok(None)
    }

    /// Ends the batch; with `replace`, first removes every host user it did not put.
    pub fn finish(mut self, replace: bool) -> Result<BatchSummary, StoreError> {
        if replace {
            self.summary.removed = self.conn.execute(
                "DELETE FROM host_users WHERE id NOT IN (SELECT id FROM temp.host_users_seen)",
                [],
            )?;
        }
        self.conn.execute("DELETE FROM temp.host_users_seen", [])?;
        Ok(self.summary)
    }
}
