//! The WeCom access token the last run used, left for the next process of the same corp and
//! app (an `orgsync sync` beside the daemon, a restarted daemon), so that one token serves them
//! all: WeCom's documentation no longer promises that a second `gettoken` returns the token
//! already issued rather than a new one that invalidates it.
//!
//! The token grants the app's API access for at most two hours. It is kept beside the
//! directory it reads, in the store that only the daemon's user may open.

use std::fmt;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{encode, StoreError};

const KEY: &str = "access_token";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedToken {
    /// Whose token it is (`WecomClient::credentials_id`), never the secret.
    pub credentials: String,
    pub token: String,
    /// When a client should fetch a new one instead.
    pub refresh_at: DateTime<Utc>,
}

/// Never shows the token.
impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedToken")
            .field("credentials", &self.credentials)
            .field("refresh_at", &self.refresh_at)
            .finish_non_exhaustive()
    }
}

/// Replaces the shared token.
pub fn record(conn: &Connection, shared: &SharedToken) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        [KEY, &encode(shared)],
    )?;
    Ok(())
}

/// Removes the shared token, its bytes overwritten: a backup carries none, since it would give
/// whoever holds the copy the app's API access.
pub fn forget(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "secure_delete", true)?;
    conn.execute("DELETE FROM meta WHERE key = ?1", [KEY])?;
    Ok(())
}

/// The shared token, if one is recorded for `credentials`. One that cannot be read is ignored:
/// it only ever saves a `gettoken`.
pub fn current(conn: &Connection, credentials: &str) -> Result<Option<SharedToken>, StoreError> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [KEY], |r| r.get(0))
        .optional()?;
    Ok(value
        .and_then(|text| serde_json::from_str::<SharedToken>(&text).ok())
        .filter(|shared| shared.credentials == credentials))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn the_token_is_kept_per_credentials_and_never_shown() {
        let store = Store::in_memory().expect("store");
        let shared = SharedToken {
            credentials: "c1".into(),
            token: "TOKENx9Qm2Lw7".into(),
            refresh_at: Utc::now(),
        };
        record(store.conn(), &shared).expect("record");
        assert_eq!(
            current(store.conn(), "c1").expect("read"),
            Some(shared.clone())
        );
        assert_eq!(current(store.conn(), "c2").expect("read"), None);
        assert!(!format!("{shared:?}").contains("TOKEN"));
    }
}
