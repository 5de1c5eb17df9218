//! The last `gettoken` refusal (bad secret, bad corp id, untrusted IP), kept so that the next
//! process (another `orgsync sync`, a restarted daemon) does not ask WeCom again at once:
//! repeated refusals get the server's IP blocked for an hour.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{encode, StoreError};

const KEY: &str = "gettoken_refusal";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Which credentials WeCom refused (`WecomClient::credentials_id`), never the secret.
    pub credentials: String,
    pub errcode: i64,
    pub errmsg: String,
    /// When WeCom answered.
    pub at: DateTime<Utc>,
}

/// Replaces the recorded refusal.
pub fn record(conn: &Connection, refusal: &Refusal) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        [KEY, &encode(refusal)],
    )?;
    Ok(())
}

/// The recorded refusal. One that cannot be read is ignored: it only ever saves a call.
pub fn last(conn: &Connection) -> Result<Option<Refusal>, StoreError> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [KEY], |r| r.get(0))
        .optional()?;
    Ok(value.and_then(|text| serde_json::from_str(&text).ok()))
}
