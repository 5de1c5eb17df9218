//! The SQLite store: the mirror, the run log, the event log and consumer cursors, in one file
//! opened in WAL mode so that readers (subscribers, `orgsync status`) never block a sync.
//!
//! The submodules are free functions over a `&Connection`, so that one write transaction can
//! span the mirror, the event log and the run log: a run's changes and its events commit
//! together or not at all.

pub mod callbacks;
pub mod consumers;
pub mod event_log;
pub mod host_users;
pub mod link_audit;
pub mod links;
pub mod lookups;
pub mod mirror;
mod rows;
pub mod runs;
mod schema;
pub mod sinks;
pub mod token_refusal;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

/// How long a writer waits for another process's write transaction (a concurrent
/// `orgsync sync` applying a large run) before giving up, unless told otherwise
/// (`store.busy_timeout_secs`).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {source}; check `store.path` and that its directory exists and is writable by this user")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the store {path} is not a valid SQLite database (corrupt or not an orgsync store); stop the daemon, move it aside and run `orgsync sync` to rebuild the mirror (host applications will then see the whole directory join again)")]
    Corrupt { path: PathBuf },
    #[error("the store {path} stayed locked by another process for {}s; is another orgsync holding it? retry, stop the other process, or raise `store.busy_timeout_secs`", waited.as_secs_f64())]
    Locked { path: PathBuf, waited: Duration },
    #[error("the store {path} has schema version {found}, newer than this orgsync supports ({supported}); upgrade orgsync or point `store.path` elsewhere")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("the store {path} mirrors corp {stored}, but the config says `wecom.corp_id = {configured}`; use one store per corp (set `store.path`)")]
    CorpMismatch {
        path: PathBuf,
        stored: String,
        configured: String,
    },
    #[error("the store {path} was made by an older orgsync (schema {found}, now {supported}) and is opened read-only here; let the daemon or `orgsync sync` open it once to update it")]
    OlderSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("cannot open the store {path}: {source}; check `store.path` and that its directory exists and is writable by this user")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is an SQLite database that orgsync did not make; it is left untouched: point `store.path` at a new file")]
    Foreign { path: PathBuf },
    #[error("the store's event log is damaged: {problem}; restore the store from a backup, or move it aside (stop the daemon first) and run `orgsync sync` to rebuild it (host applications then see the whole directory join again)")]
    CorruptEventLog { problem: String },
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store holds a value it cannot read ({what}): {source}")]
    Decode {
        what: &'static str,
        source: serde_json::Error,
    },
}

impl StoreError {
    /// A short machine-readable code for `orgsync.sync.failed` events.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Open { .. } | StoreError::Create { .. } => "store_open",
            StoreError::Foreign { .. } => "store_foreign",
            StoreError::CorruptEventLog { .. } => "store_corrupt",
            StoreError::Corrupt { .. } => "store_corrupt",
            StoreError::Locked { .. } => "store_locked",
            StoreError::NewerSchema { .. } | StoreError::OlderSchema { .. } => "store_schema",
            StoreError::CorpMismatch { .. } => "store_corp_mismatch",
            StoreError::Sqlite(_) | StoreError::Decode { .. } => "store",
        }
    }
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    busy_timeout: Duration,
}

impl Store {
    /// Opens (creating if needed) the store and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_waiting(path, BUSY_TIMEOUT)
    }

    /// [`Store::open`], waiting at most `busy_timeout` for another process's write lock.
    pub fn open_waiting(path: &Path, busy_timeout: Duration) -> Result<Store, StoreError> {
        create_private(path)?;
        Store::open_with(path, busy_timeout)
    }

    /// Opens a store that must exist already: the daemon's own opens after start-up, so that a
    /// store removed under it is an error rather than a new, empty store reusing its seqs.
    pub fn open_existing(path: &Path, busy_timeout: Duration) -> Result<Store, StoreError> {
        Store::open_with(path, busy_timeout)
    }

    /// Opens an existing store for one client's requests (a socket connection, the HTTP API's
    /// pool). Such a connection reads batches straight through, so it keeps a small page
    /// cache: SQLite's default 2 MiB per connection would make a few hundred clients cost
    /// hundreds of MiB.
    pub fn open_for_requests(path: &Path) -> Result<Store, StoreError> {
        /// In KiB (negative: SQLite's unit for KiB).
        const REQUEST_CACHE_KIB: i64 = -256;
        let store = Store::open_existing(path, BUSY_TIMEOUT)?;
        store
            .conn
            .pragma_update(None, "cache_size", REQUEST_CACHE_KIB)
            .map_err(|e| store.classify(e))?;
        Ok(store)
    }

    /// Opens an existing store for a sink's runner, whose writes are its cursor after every
    /// delivery and its status. A power cut may take the last of them back (SQLite's NORMAL
    /// in WAL mode, no fsync per commit): the sink then delivers those events again, which
    /// at-least-once delivery allows, and the receiver dedupes them by id.
    pub fn open_for_cursors(path: &Path) -> Result<Store, StoreError> {
        let store = Store::open_existing(path, BUSY_TIMEOUT)?;
        store
            .conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| store.classify(e))?;
        Ok(store)
    }

    fn open_with(path: &Path, busy_timeout: Duration) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            busy_timeout,
        };
        store
            .conn
            .busy_timeout(busy_timeout)
            .map_err(|e| store.classify(e))?;
        // Before anything that writes: even switching to WAL rewrites the file's header.
        if store.is_foreign().map_err(|e| store.classify(e))? {
            return Err(StoreError::Foreign {
                path: path.to_owned(),
            });
        }
        store.configure().map_err(|e| store.classify(e))?;
        schema::migrate(&mut store.conn, path, busy_timeout)?;
        Ok(store)
    }

    /// A database with tables but no orgsync schema version was made by something else.
    fn is_foreign(&self) -> Result<bool, rusqlite::Error> {
        self.conn.query_row(
            "SELECT (SELECT user_version FROM pragma_user_version) = 0
                AND (SELECT count(*) FROM sqlite_master) > 0",
            [],
            |r| r.get(0),
        )
    }

    /// The random id made when the store was created.
    pub fn id(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })?)
    }

    /// Opens an existing store for reading only, for the commands that only read it (`status`,
    /// `events`, `sync --dry-run`): they then work for a user who may read the store but not
    /// write it, and never create a store or change its schema.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        match Store::open_reading(path, false) {
            // A WAL store that no process has open has no `-shm` file, and a reader that may
            // not write the directory cannot create one. With no `-wal` file either, there is
            // no writer whose changes it could miss: read the file as it is.
            Err(StoreError::Sqlite(e))
                if e.sqlite_error_code() == Some(ErrorCode::ReadOnly)
                    && !sidecar(path, "-wal").exists() =>
            {
                Store::open_reading(path, true)
            }
            other => other,
        }
    }

    fn open_reading(path: &Path, immutable: bool) -> Result<Store, StoreError> {
        let foreign = || StoreError::Foreign {
            path: path.to_owned(),
        };
        let open = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match immutable {
            false => Connection::open_with_flags(path, flags).map_err(open)?,
            true => Connection::open_with_flags(
                format!("file:{}?immutable=1", uri_path(path)),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(open)?,
        };
        let store = Store {
            conn,
            path: path.to_owned(),
            busy_timeout: BUSY_TIMEOUT,
        };
        store
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| store.classify(e))?;
        if store.is_foreign().map_err(|e| store.classify(e))? {
            return Err(foreign());
        }
        schema::check(&store.conn, path)?;
        Ok(store)
    }

    /// An empty store in memory: what a dry run compares with before any store exists.
    pub fn in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let mut store = Store {
            conn,
            path,
            busy_timeout: BUSY_TIMEOUT,
        };
        schema::migrate(&mut store.conn, Path::new(":memory:"), BUSY_TIMEOUT)?;
        Ok(store)
    }

    fn configure(&self) -> Result<(), rusqlite::Error> {
        // WAL lets subscribers and `status` read while a sync writes. FULL puts every commit
        // on disk before it returns: with NORMAL a power cut may take the last commits back, and
        // the seqs of events that subscribers and sinks had already received would then be
        // given to other events (interfaces §4: a seq is never reused), and an ack reported
        // stored would be lost. It costs one fsync per commit; see `open_for_cursors` for the
        // frequent writes that may be lost.
        self.conn.pragma_update(None, "journal_mode", "WAL")?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    /// Turns low-level SQLite failures into the errors an operator can act on.
    pub fn classify(&self, error: rusqlite::Error) -> StoreError {
        classify_with(&self.path, self.busy_timeout, error)
    }

    /// Classifies an error that came out of a query on this store's connection: corruption
    /// often shows only when a damaged page is read, long after the open, and the operator
    /// needs the store's path and the fix then too.
    pub fn explain(&self, error: StoreError) -> StoreError {
        classify_store_error(&self.path, self.busy_timeout, error)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A read-only view for queries outside a transaction.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in one write transaction, taken up front (BEGIN IMMEDIATE) so that two
    /// processes syncing the same store serialize instead of failing at commit time.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (path, busy_timeout) = (self.path.clone(), self.busy_timeout);
        self.try_write(|tx| f(tx).map_err(|e| classify_store_error(&path, busy_timeout, e)))
    }

    /// [`Store::write`] for work that can fail for reasons of its own (a bad import row):
    /// any error rolls the whole transaction back.
    pub fn try_write<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => return Err(classify_with(&self.path, self.busy_timeout, e).into()),
        };
        let value = f(&tx)?;
        tx.commit()
            .map_err(|e| E::from(classify_with(&self.path, self.busy_timeout, e)))?;
        Ok(value)
    }

    /// Records which corp this store mirrors, or refuses a store made for another corp.
    pub fn bind_corp(&mut self, corp_id: &str) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.write(|tx| {
            let stored: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'corp_id'", [], |r| {
                    r.get(0)
                })
                .map(Some)
                .or_else(ignore_no_rows)?;
            match stored {
                Some(stored) if stored != corp_id => Err(StoreError::CorpMismatch {
                    path,
                    stored,
                    configured: corp_id.to_owned(),
                }),
                Some(_) => Ok(()),
                None => {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES ('corp_id', ?1)",
                        [corp_id],
                    )?;
                    Ok(())
                }
            }
        })
    }
}

/// `orgsync.db` → `orgsync.db-wal`.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A path as the path of a `file:` URI: bytes outside the unreserved set are percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Creates the store file mode 0600 whatever the umask, before SQLite opens it: it holds
/// personal data, and SQLite gives its WAL and shared-memory files the database's mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Create {
            path: path.to_owned(),
            source,
        }),
    }
}

fn classify_with(path: &Path, waited: Duration, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
            path: path.to_owned(),
            waited,
        },
        _ => StoreError::Sqlite(error),
    }
}

fn classify_store_error(path: &Path, waited: Duration, error: StoreError) -> StoreError {
    match error {
        StoreError::Sqlite(error) => classify_with(path, waited, error),
        other => other,
    }
}

/// For `query_row` lookups where "no row" is an answer, not an error.
fn ignore_no_rows<T>(error: rusqlite::Error) -> Result<Option<T>, rusqlite::Error> {
    match error {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        other => Err(other),
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Decode { what, source })
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    // The store only encodes plain data (strings, numbers, JSON values), which cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synchronous(store: &Store) -> i64 {
        store
            .conn()
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .expect("read synchronous")
    }

    /// FULL (2) wherever events, acks and callbacks are written; NORMAL (1) only for sinks'
    /// cursors, whose loss means a redelivery.
    #[test]
    fn commits_reach_the_disk_except_a_sinks_cursor_moves() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("orgsync.db");
        assert_eq!(synchronous(&Store::open(&path).expect("open")), 2);
        assert_eq!(
            synchronous(&Store::open_for_requests(&path).expect("open")),
            2
        );
        assert_eq!(
            synchronous(&Store::open_for_cursors(&path).expect("open")),
            1
        );
    }
}
