//! The matching subcommands: `host-users import`, `link`, `unlink` and `match report`.
//!
//! They write to the store directly, each change in one write transaction with its link
//! events, so they are safe beside a running daemon: the two serialize on the store, and the
//! daemon publishes the new events to subscribers within its head poll (500 ms).

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::apply::{self, LinkChanges, LinkError};
use super::import::{self, ImportError, Options};
use super::report;
use super::Method;
use crate::config::Config;
use crate::events::EventSource;
use crate::store::{link_audit, links, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot open {}: {source}; check the path", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Import { path: PathBuf, source: ImportError },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("{0}; add --replace to replace it with this manual link")]
    WouldReplace(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CommandError {
    /// 2 for a file that cannot be opened or whose content is bad (exit statuses, docs/install.md: bad usage),
    /// 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Open { .. } | CommandError::WouldReplace(_) => 2,
            CommandError::Import { source, .. } if source.is_bad_input() => 2,
            _ => 1,
        }
    }
}

fn open(config: &Config) -> Result<(Store, EventSource), StoreError> {
    let mut store = Store::open(&config.store.path)?;
    store.bind_corp(&config.wecom.corp_id)?;
    Ok((store, EventSource::new(&config.wecom.corp_id)))
}

/// `orgsync host-users import FILE [--skip-bad] [--replace]`.
pub fn import(config: &Config, path: &Path, options: Options) -> Result<(), CommandError> {
    let import_error = |source: ImportError| CommandError::Import {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|source| CommandError::Open {
        path: path.to_owned(),
        source,
    })?;
    let rows = import::rows(BufReader::new(file)).map_err(import_error)?;
    let (mut store, source) = open(config)?;
    let now = Utc::now();
    let result = store.try_write(|tx| import::import(tx, &source, &cli_user(), rows, options, now));
    let imported = match result {
        Ok(imported) => imported,
        Err(ImportError::BadRows { rows, total }) => {
            print_bad_rows(path, &rows, total);
            return Err(import_error(ImportError::BadRows { rows, total }));
        }
        Err(error) => return Err(import_error(error)),
    };
    if imported.bad_total > 0 {
        print_bad_rows(path, &imported.bad, imported.bad_total);
        eprintln!(
            "{}: skipped {} bad row{}",
            path.display(),
            imported.bad_total,
            if imported.bad_total == 1 { "" } else { "s" }
        );
    }
    let summary = imported.summary;
    println!(
        "{}: {} added, {} updated, {} unchanged, {} removed",
        path.display(),
        summary.added,
        summary.updated,
        summary.unchanged,
        summary.removed
    );
    print_changes(&imported.changes);
    Ok(())
}

fn print_bad_rows(path: &Path, rows: &[import::BadRow], total: usize) {
    let mut stderr = io::stderr().lock();
    for row in rows {
        let _ = writeln!(stderr, "{}:{}: {}", path.display(), row.line, row.problem);
    }
    if total > rows.len() {
        let _ = writeln!(stderr, "... and {} more", total - rows.len());
    }
}

/// Who changes links from the command line, for the audit trail.
fn cli_user() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    format!("cli uid {}", unsafe { libc::getuid() })
}

/// `orgsync link HOST_ID USERID [--replace]`. An automatic link of either end is replaced only
/// when asked: an admin who links by hand should know what the link undoes.
pub fn link(
    config: &Config,
    host_user_id: &str,
    userid: &str,
    replace: bool,
) -> Result<(), CommandError> {
    let (mut store, source) = open(config)?;
    let now = Utc::now();
    let changes = store.try_write(|tx| {
        if !replace {
            let key = crate::model::userid_key(userid);
            let existing = links::load(tx)?;
            let in_the_way = existing.iter().find(|(host, link)| {
                !link.method.is_decided()
                    && (host.as_str() == host_user_id || link.userid_key == key)
                    && !(host.as_str() == host_user_id && link.userid_key == key)
            });
            if let Some((host, link)) = in_the_way {
                return Err(CommandError::WouldReplace(format!(
                    "host user {host} is linked to {} by {}",
                    link.userid,
                    link.method.as_str()
                )));
            }
        }
        let by = cli_user();
        Ok(apply::link(
            tx,
            &source,
            &by,
            host_user_id,
            userid,
            Method::Manual,
            now,
        )?)
    })?;
    if changes.created.is_empty() {
        println!("host user {host_user_id} is already linked to {userid} by hand; nothing changed");
    }
    print_changes(&changes);
    Ok(())
}

/// `orgsync link history ID`: the audit trail of a host user's or a member's links.
pub fn history(config: &Config, id: &str) -> Result<(), CommandError> {
    let store = Store::open_read_only(&config.store.path)?;
    let entries = link_audit::history(store.conn(), id).map_err(|e| store.explain(e))?;
    if entries.is_empty() {
        println!("no link of {id:?} was ever recorded");
    }
    for entry in entries {
        println!(
            "{}  {:<7} {} -> {} ({}){}  by {}{}",
            entry.at,
            entry.action,
            entry.host_user_id,
            entry.userid,
            entry.method,
            entry.reason.map(|r| format!(", {r}")).unwrap_or_default(),
            entry.by,
            entry
                .replaced
                .map(|r| format!("; replaced {r}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `orgsync unlink HOST_ID`.
pub fn unlink(config: &Config, host_user_id: &str) -> Result<(), CommandError> {
    let (mut store, source) = open(config)?;
    let now = Utc::now();
    match store.try_write(|tx| apply::unlink(tx, &source, &cli_user(), host_user_id, now))? {
        None => println!("host user {host_user_id} is not linked; nothing changed"),
        Some(changes) => {
            print_changes(&changes);
            println!("host user {host_user_id} is held from automatic matching until you link it by hand");
        }
    }
    Ok(())
}

/// `orgsync match report [--json]`.
pub fn report(config: &Config, json: bool) -> Result<(), CommandError> {
    let store = Store::open(&config.store.path)?;
    let report = report::build(&store, &config.lookup_settings(), Utc::now())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

fn print_changes(changes: &LinkChanges) {
    for removed in &changes.removed {
        println!(
            "link removed: host user {} - {} ({}, was {})",
            removed.host_user_id,
            removed.link.userid,
            removed.reason.as_str(),
            removed.link.method.as_str()
        );
    }
    for created in &changes.created {
        println!(
            "link created: host user {} - {} ({})",
            created.host_user_id,
            created.link.userid,
            created.link.method.as_str()
        );
    }
    let counts = changes.assessment.host_users;
    println!(
        "host users: {} linked, {} ambiguous, {} unmatched (`orgsync match report` shows why)",
        counts.linked, counts.ambiguous, counts.unmatched
    );
}
