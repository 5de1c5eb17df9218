//! Versioned migrations, tracked in `PRAGMA user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Each entry upgrades the schema by one version; never edit a released one, append.
const MIGRATIONS: &[&str] = &[
    // 1: mirror, run log, event log, consumer cursors.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE departments (
        id         INTEGER PRIMARY KEY,
        name       TEXT,
        name_en    TEXT,
        parent_id  INTEGER,
        sort_order INTEGER,
        leaders    TEXT            -- JSON array of userids, NULL when unknown
    );
    CREATE TABLE members (
        userid_key        TEXT PRIMARY KEY,   -- lower-cased userid
        userid            TEXT NOT NULL,      -- as WeCom spells it
        name              TEXT,
        alias             TEXT,
        position          TEXT,
        mobile            TEXT,
        email             TEXT,
        biz_mail          TEXT,
        gender            TEXT,
        status            INTEGER,
        telephone         TEXT,
        departments_known INTEGER NOT NULL,   -- 0 when WeCom never sent the department list
        main_department   INTEGER,
        direct_leaders    TEXT,               -- JSON array, NULL when unknown
        extattr           TEXT                -- JSON object, NULL when unknown
    ) WITHOUT ROWID;
    CREATE TABLE memberships (
        userid_key    TEXT NOT NULL REFERENCES members (userid_key) ON DELETE CASCADE,
        idx           INTEGER NOT NULL,       -- position in WeCom's list for this member
        department_id INTEGER NOT NULL,
        sort_order    INTEGER NOT NULL,
        is_leader     INTEGER NOT NULL,
        PRIMARY KEY (userid_key, idx)
    ) WITHOUT ROWID;
    CREATE INDEX memberships_by_department ON memberships (department_id);
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        trigger     TEXT NOT NULL,
        pid         INTEGER NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        outcome     TEXT NOT NULL,   -- running, completed, failed, held, interrupted
        detail      TEXT             -- JSON: counts, error or pending changes
    );
    -- AUTOINCREMENT: a seq is never reused, even after the newest events are pruned.
    CREATE TABLE events (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        type   TEXT NOT NULL,
        run_id INTEGER,
        time   TEXT NOT NULL,
        body   TEXT NOT NULL      -- the CloudEvents JSON line, as delivered
    );
    CREATE TABLE consumers (
        name       TEXT PRIMARY KEY,
        acked_seq  INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    "#,
    // 2: host users and their links to members (matching, issue #4). No foreign keys: a link
    // outlives its member for the one transaction that announces `member_left`, and a manual
    // link outlives its host user.
    r#"
    CREATE TABLE host_users (
        id          TEXT PRIMARY KEY,   -- as the host application gives it (integers as decimal)
        name        TEXT,
        mobile      TEXT,
        email       TEXT,
        name_norm   TEXT,               -- NFKC + trim; NULL when empty
        mobile_norm TEXT,               -- E.164; NULL when not confidently a mobile
        updated_at  TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE links (
        host_user_id TEXT PRIMARY KEY,
        userid_key   TEXT NOT NULL UNIQUE,   -- one host user per member
        userid       TEXT NOT NULL,          -- as WeCom spells it, to name a member who left
        method       TEXT NOT NULL CHECK (method IN ('phone', 'name', 'manual')),
        created_at   TEXT NOT NULL
    ) WITHOUT ROWID;
    -- Host users that automatic matching must not link until a manual link releases them.
    CREATE TABLE match_holds (
        host_user_id TEXT PRIMARY KEY,
        reason       TEXT NOT NULL,          -- manual_unlink or member_left
        userid       TEXT NOT NULL,          -- the member of the link that ended
        since        TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 3: the store's identity (a random id made once, so that a replaced or restored store is
    // told apart from the one a consumer's cursor belongs to), and who owns each consumer.
    r#"
    INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    ALTER TABLE consumers ADD COLUMN owner TEXT;   -- "uid:N" over the socket; NULL from before owners
    "#,
    // 4: links made from a login (`link.put`) and by an email lookup. SQLite cannot change a
    // CHECK constraint in place: the table is rebuilt.
    r#"
    CREATE TABLE links_new (
        host_user_id TEXT PRIMARY KEY,
        userid_key   TEXT NOT NULL UNIQUE,
        userid       TEXT NOT NULL,
        method       TEXT NOT NULL CHECK (method IN ('phone', 'name', 'manual', 'login', 'email')),
        created_at   TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO links_new SELECT host_user_id, userid_key, userid, method, created_at FROM links;
    DROP TABLE links;
    ALTER TABLE links_new RENAME TO links;
    "#,
    // 5: the audit trail of links, never pruned.
    r#"
    CREATE TABLE link_audit (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at           TEXT NOT NULL,
        action       TEXT NOT NULL CHECK (action IN ('created', 'removed')),
        host_user_id TEXT NOT NULL,
        userid_key   TEXT NOT NULL,
        userid       TEXT NOT NULL,
        method       TEXT NOT NULL,
        reason       TEXT,
        by           TEXT NOT NULL,
        replaced     TEXT
    );
    CREATE INDEX link_audit_by_host_user ON link_audit (host_user_id);
    CREATE INDEX link_audit_by_member ON link_audit (userid_key);
    "#,
    // 6: what WeCom answered to userid lookups (a mobile or an email of a host user), and the
    // failed lookups of each day, which WeCom punishes with a day's block past a limit. The
    // index lets the lookup worker see cheaply whether host users changed.
    r#"
    CREATE TABLE lookups (
        kind         TEXT NOT NULL CHECK (kind IN ('mobile', 'email')),
        value        TEXT NOT NULL,      -- the normalized mobile or email asked for
        userid       TEXT,               -- as WeCom spells it; NULL when WeCom knew nobody (46004)
        looked_up_at TEXT NOT NULL,
        PRIMARY KEY (kind, value)
    ) WITHOUT ROWID;
    CREATE TABLE lookup_days (
        day        TEXT PRIMARY KEY,     -- YYYY-MM-DD in China time, as WeCom counts days
        failures   INTEGER NOT NULL,
        blocked_at TEXT                  -- WeCom refused lookups (45009) for the rest of the day
    ) WITHOUT ROWID;
    CREATE INDEX host_users_by_update ON host_users (updated_at);
    "#,
    // 7: WeCom contact-change callbacks, recorded before they are answered and applied by a
    // later run; a redelivery has the same payload, so its hash is refused as a duplicate.
    r#"
    CREATE TABLE callbacks (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        hash          TEXT NOT NULL UNIQUE,   -- SHA-256 of the decrypted payload
        received_at   TEXT NOT NULL,
        change_type   TEXT NOT NULL,          -- create_user, update_user, ..., or another event
        userid        TEXT,
        new_userid    TEXT,                   -- update_user that renamed the member
        department_id INTEGER,
        applied_run   INTEGER                 -- the run that covered it; NULL while pending
    );
    CREATE INDEX callbacks_pending ON callbacks (applied_run) WHERE applied_run IS NULL;
    "#,
    // 8: push delivery sinks (issue #17). A sink's cursor is the consumer `sink:NAME` (owner
    // `sink`); this row is its delivery state, kept here so that `orgsync status` and
    // `orgsync sinks` show it with or without a daemon, and so that `orgsync sinks resume`
    // reaches a running daemon through the store.
    r#"
    CREATE TABLE sinks (
        name          TEXT PRIMARY KEY,   -- the name in the config, without `sink:`
        kind          TEXT NOT NULL,      -- webhook or nats
        alert_after   INTEGER NOT NULL DEFAULT 3600,   -- seconds of failing before status alerts
        paused_at     TEXT,               -- set by a 410 Gone; cleared by `orgsync sinks resume`
        paused_reason TEXT,
        failing_since TEXT,               -- the first failed attempt of the current streak
        attempts      INTEGER NOT NULL DEFAULT 0,   -- failed attempts in that streak
        last_error    TEXT,
        next_attempt  TEXT,
        delivered_at  TEXT                -- the last confirmed delivery
    ) WITHOUT ROWID;
    "#,
];

pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// For a store opened read-only: its schema must be this version's, since it cannot be updated.
pub fn check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| super::classify_with(path, super::BUSY_TIMEOUT, e))?;
    match found {
        VERSION => Ok(()),
        found if found > VERSION => Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: VERSION,
        }),
        found => Err(StoreError::OlderSchema {
            path: path.to_owned(),
            found,
            supported: VERSION,
        }),
    }
}

pub fn migrate(conn: &mut Connection, path: &Path, waited: Duration) -> Result<(), StoreError> {
    // Readers (subscribers, status) open the store while a sync may hold the write lock for
    // seconds; an up-to-date schema must not make them wait for it.
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| super::classify_with(path, waited, e))?;
    if current == VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| super::classify_with(path, waited, e))?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| super::classify_with(path, waited, e))?;
    if found > VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()
        .map_err(|e| super::classify_with(path, waited, e))?;
    Ok(())
}
