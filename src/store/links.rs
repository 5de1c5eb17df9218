//! Links between host users and members, and the host users held from automatic matching.
//! Only matching (`crate::matching::apply`) writes them, inside the transaction of the change
//! that caused the write.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::rows::{self, from_row, FromRow};
use super::StoreError;
use crate::hashing::FastMap;
use crate::model::host_user::{Link, Method, Reason};

/// Every link, by host user id.
pub fn load(conn: &Connection) -> Result<FastMap<String, Link>, StoreError> {
    let mut links = FastMap::default();
    let sql = "SELECT host_user_id, userid_key, userid, method FROM links";
    rows::for_each(conn, sql, [], |row| {
        let method: String = row.get(3)?;
        let link = Link {
            userid_key: row.get(1)?,
            userid: row.get(2)?,
            method: parse_method(&method)?,
        };
        links.insert(row.get(0)?, link);
        Ok(())
    })?;
    Ok(links)
}

/// A link as host applications read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkView {
    pub host_user_id: String,
    pub userid: String,
    pub method: String,
}
from_row!(LinkView {
    host_user_id,
    userid,
    method
});

/// Every link, by host user id, for reading.
pub fn for_each(conn: &Connection, mut each: impl FnMut(LinkView)) -> Result<(), StoreError> {
    let sql = "SELECT host_user_id, userid, method FROM links ORDER BY host_user_id";
    rows::for_each(conn, sql, [], |row| {
        each(LinkView::from_row(row)?);
        Ok(())
    })
}

/// The link of a host user, or of a member by [`crate::model::userid_key`].
pub fn find(conn: &Connection, by: LinkKey<'_>) -> Result<Option<LinkView>, StoreError> {
    let (sql, key) = match by {
        LinkKey::HostUser(id) => (
            "SELECT host_user_id, userid, method FROM links WHERE host_user_id = ?1",
            id,
        ),
        LinkKey::Member(key) => (
            "SELECT host_user_id, userid, method FROM links WHERE userid_key = ?1",
            key,
        ),
    };
    Ok(conn
        .prepare_cached(sql)?
        .query_row([key], LinkView::from_row)
        .optional()?)
}

/// How [`find`] looks a link up.
#[derive(Debug, Clone, Copy)]
pub enum LinkKey<'a> {
    HostUser(&'a str),
    /// A member's userid key.
    Member(&'a str),
}

fn parse_method(text: &str) -> Result<Method, StoreError> {
    Method::parse(text).ok_or_else(|| StoreError::Decode {
        what: "link method",
        source: serde::de::Error::custom(format!("unknown link method {text:?}")),
    })
}

pub fn insert(
    conn: &Connection,
    host_user_id: &str,
    link: &Link,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO links (host_user_id, userid_key, userid, method, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        host_user_id,
        link.userid_key,
        link.userid,
        link.method.as_str(),
        now.to_rfc3339()
    ])?;
    Ok(())
}

pub fn delete(conn: &Connection, host_user_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM links WHERE host_user_id = ?1")?
        .execute([host_user_id])?;
    Ok(())
}

/// Records how WeCom now spells a linked member's userid.
pub fn respell(conn: &Connection, host_user_id: &str, userid: &str) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE links SET userid = ?2 WHERE host_user_id = ?1")?
        .execute([host_user_id, userid])?;
    Ok(())
}

/// A host user that automatic matching must not link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub host_user_id: String,
    /// `manual_unlink` or `member_left`.
    pub reason: String,
    /// The member of the link whose end caused the hold.
    pub userid: String,
    pub since: String,
}
from_row!(Hold {
    host_user_id,
    reason,
    userid,
    since
});

/// Every hold, by host user id.
pub fn holds(conn: &Connection) -> Result<Vec<Hold>, StoreError> {
    rows::all(
        conn,
        "SELECT host_user_id, reason, userid, since FROM match_holds ORDER BY host_user_id",
        [],
    )
}

/// Holds a host user; a newer hold replaces an older one.
pub fn hold(
    conn: &Connection,
    host_user_id: &str,
    reason: Reason,
    userid: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO match_holds (host_user_id, reason, userid, since)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        host_user_id,
        reason.as_str(),
        userid,
        now.to_rfc3339()
    ])?;
    Ok(())
}

/// Releases a host user's hold (a manual link decided about it).
pub fn release(conn: &Connection, host_user_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM match_holds WHERE host_user_id = ?1")?
        .execute([host_user_id])?;
    Ok(())
}
