//! One sync run: pull the directory, diff it against the mirror, and apply the changes with
//! their events in a single transaction, or record why not.
//!
//! The pull happens outside any transaction. The mirror is read *inside* the write
//! transaction, so two processes syncing the same store (the daemon and a manual
//! `orgsync sync`) serialize, and the second diffs against what the first committed: no
//! duplicate events. It is read a member at a time and compared as it is read, so a run never
//! holds the whole mirror beside the pull.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;

use crate::config::Config;
use crate::diff::{Changeset, Comparison};
use crate::events::{
    changeset_drafts, ChangeCounts, ErrorData, EventDraft, EventSource, EventType, Ignored,
    RunCounts, SyncCompleted, SyncFailed, SyncHeld,
};
use crate::guard::{self, Hold, Limits};
use crate::matching;
use crate::matching::apply::LinkChanges;
use crate::memory;
use std::collections::BTreeSet;

use crate::model::{userid_key, Department, DepartmentId, Snapshot};
use crate::pull_dump;
use crate::queue::Trigger;
use crate::store::runs::{self, Outcome};
use crate::store::token_refusal::{self, Refusal};
use crate::store::{callbacks, event_log, mirror, Store, StoreError};
use crate::targeted::{self, Scope};
use crate::token_file::TokenFile;
use crate::wecom::{
    self, ApiError, ClientSettings, Progress, PullError, Reach, WecomClient, WecomError,
    REFUSAL_HOLD,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply unless the deletion guard holds the run.
    Apply,
    /// Apply even what the deletion guard would hold.
    Force,
    /// Pull and diff, write nothing.
    DryRun,
}

/// Where the time of a run went, for logs, status and benchmarks. The phases after the pull run
/// one after the other in the write transaction.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunStats {
    pub pull_ms: u64,
    /// Reading the mirror a member at a time, comparing each with the pull as it is read (and
    /// freeing the pulled member).
    pub load_ms: u64,
    /// Finishing the comparison (joined members, departments) and the deletion guard.
    pub diff_ms: u64,
    /// Writing the changed rows of the mirror.
    pub apply_ms: u64,
    /// Drafting, encoding and appending the events, and freeing the changes after theirs.
    pub events_ms: u64,
    /// Re-matching host users against the changed mirror (nothing without host users), after
    /// the member events and before the link events.
    pub match_ms: u64,
    pub commit_ms: u64,
    pub api_calls: u64,
}

#[derive(Debug)]
pub enum RunReport {
    Completed {
        run: i64,
        counts: RunCounts,
        stats: RunStats,
    },
    Held {
        run: i64,
        hold: Hold,
        pending: ChangeCounts,
    },
    Failed {
        run: i64,
        error: SyncError,
    },
    /// What a run would change; nothing was written.
    DryRun {
        changes: Box<Changeset>,
        links: Box<LinkChanges>,
        hold: Option<Hold>,
    },
}

impl RunReport {
    /// The one summary line of a run, with stable field names for the journal.
    pub fn log(&self, trigger: Trigger) {
        self.log_summary(trigger, true);
    }

    /// The summary line of a run for a command whose failure message follows on stderr anyway
    /// (`orgsync sync`): a failure's line keeps its fields but not the long message twice.
    pub fn log_brief(&self, trigger: Trigger) {
        self.log_summary(trigger, false);
    }

    fn log_summary(&self, trigger: Trigger, with_message: bool) {
        match self {
            RunReport::Completed { run, counts, stats } => tracing::info!(
                run,
                %trigger,
                outcome = "completed",
                members_joined = counts.changes.members_joined,
                members_updated = counts.changes.members_updated,
                members_left = counts.changes.members_left,
                departments_created = counts.changes.departments_created,
                departments_updated = counts.changes.departments_updated,
                departments_deleted = counts.changes.departments_deleted,
                links_created = counts.links_created,
                links_removed = counts.links_removed,
                members = counts.members,
                departments = counts.departments,
                api_calls = stats.api_calls,
                pull_ms = stats.pull_ms,
                load_ms = stats.load_ms,
                diff_ms = stats.diff_ms,
                apply_ms = stats.apply_ms,
                match_ms = stats.match_ms,
                events_ms = stats.events_ms,
                commit_ms = stats.commit_ms,
                "sync completed"
            ),
            RunReport::Held { run, hold, pending } => tracing::warn!(
                run,
                %trigger,
                outcome = "held",
                members_joined = pending.members_joined,
                members_updated = pending.members_updated,
                members_left = pending.members_left,
                departments_created = pending.departments_created,
                departments_updated = pending.departments_updated,
                departments_deleted = pending.departments_deleted,
                reason = %hold.message(),
                "sync held by the deletion guard"
            ),
            RunReport::Failed { run, error } => tracing::error!(
                run,
                %trigger,
                outcome = "failed",
                code = error.code(),
                errcode = error.errcode(),
                error = with_message.then_some(error).map(tracing::field::display),
                "sync failed"
            ),
            RunReport::DryRun {
                changes,
                links,
                hold,
            } => tracing::info!(
                %trigger,
                outcome = "dry_run",
                members_joined = changes.members_joined.len(),
                members_updated = changes.members_updated.len(),
                members_left = changes.members_left.len(),
                links_created = links.created.len(),
                links_removed = links.removed.len(),
                would_hold = hold.is_some(),
                "dry run finished; nothing written"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the sync was stopped because orgsync is shutting down; nothing was applied")]
    Shutdown,
    #[error("internal error: the store worker stopped unexpectedly ({0})")]
    Worker(String),
    #[error("cannot write the pull to {path}: {source}; check that its directory exists and is writable")]
    Dump {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SyncError {
    /// The WeCom errcode behind the failure, if WeCom refused a call.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            SyncError::Pull(PullError::Wecom(error)) => error.errcode(),
            _ => None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Pull(e) => e.code(),
            SyncError::Store(e) => e.code(),
            SyncError::Shutdown => "shutdown",
            SyncError::Worker(_) => "internal",
            SyncError::Dump { .. } => "dump_failed",
        }
    }
}

/// Everything a run needs; cheap to clone into a task.
#[derive(Clone)]
pub struct Syncer {
    pub client: WecomClient,
    pub store_path: PathBuf,
    /// How long the run waits for another process's write lock on the store.
    pub store_busy_timeout: Duration,
    pub source: EventSource,
    pub root_department: DepartmentId,
    /// `wecom.agent_id`: with it, a full pull also reads the members the app's visible range
    /// names individually.
    pub agent_id: Option<i64>,
    pub concurrency: usize,
    pub limits: Limits,
    /// Where a dry run writes what WeCom returned ([`crate::pull_dump`]).
    pub dump_pull: Option<PathBuf>,
    /// Whether a run may create the store. The daemon's runs may not: a store removed under a
    /// running daemon must not come back empty and reuse its seqs.
    pub create_store: bool,
}

impl Syncer {
    pub fn from_config(config: &Config) -> Result<Syncer, WecomError> {
        Ok(Syncer {
            client: WecomClient::new(ClientSettings {
                // Fetched tokens are left beside the store, for the corp's other processes.
                token_shelf: Some(Arc::new(TokenFile::new(&config.store.path))),
                ..config.client_settings()?
            })?,
            store_path: config.store.path.clone(),
            store_busy_timeout: config.store.busy_timeout(),
            source: EventSource::new(&config.wecom.corp_id),
            root_department: config.wecom.root_department,
            agent_id: config.wecom.agent_id,
            concurrency: config.wecom.concurrency,
            limits: config.limits(),
            dump_pull: None,
            create_store: true,
        })
    }

    /// What the mirror holds: the root's subtree, and the members named individually in the
    /// visible range when `wecom.agent_id` is set.
    pub fn reach(&self) -> Reach {
        Reach {
            root: self.root_department,
            named_members: self.agent_id.is_some(),
        }
    }

    /// Records which corp the store mirrors, or refuses a store made for another corp. Every
    /// run that writes binds first; the daemon binds at start-up too, to refuse a foreign store
    /// before it serves anything.
    pub async fn bind_store(&self) -> Result<(), SyncError> {
        let corp_id = self.source.corp_id().to_owned();
        self.blocking(move |store| store.bind_corp(&corp_id)).await
    }

    /// Runs one sync. `Err` only when the run could not even be recorded (the store is
    /// unusable); every other failure is a `RunReport::Failed` with its event committed.
    ///
    /// `stop` resolving aborts the pull (the run then fails with `shutdown`); once the pull is
    /// done the apply always runs to its commit or rollback.
    pub async fn run(
        &self,
        trigger: Trigger,
        mode: Mode,
        stop: impl Future<Output = ()>,
    ) -> Result<RunReport, SyncError> {
        let (run, refusal, pending) = match mode {
            Mode::DryRun => (
                None,
                self.reading(|store| token_refusal::last(store.conn()))
                    .await?,
                Vec::new(),
            ),
            Mode::Apply | Mode::Force => {
                let corp_id = self.source.corp_id().to_owned();
                let (run, refusal, pending) = self
                    .blocking(move |store| {
                        store.bind_corp(&corp_id)?;
                        event_log::check(store.conn())?;
                        runs::mark_interrupted(store.conn())?;
                        let refusal = token_refusal::last(store.conn())?;
                        let pending = callbacks::pending(store.conn())?;
                        Ok((runs::begin(store.conn(), trigger)?, refusal, pending))
                    })
                    .await?;
                (Some(run), refusal, pending)
            }
        };
        // Every callback that arrived before this run's pull is covered by it: a full pull reads
        // everything, a callback run what they name.
        let covered = pending.last().map(|callback| callback.id);
        let scope = match trigger {
            Trigger::Callback => targeted::scope(&pending),
            _ => Scope::Full,
        };
        let renames = targeted::renames(&pending);
        drop(pending);
        self.hold_refusal(refusal).await;
        match run {
            Some(run) => tracing::info!(run, %trigger, "sync started"),
            None => tracing::info!(%trigger, "dry run started"),
        }

        let started = Instant::now();
        let calls_before = self.client.stats();
        let pulled = tokio::select! {
            pulled = self.fetch(scope) => pulled,
            () = stop => Err(SyncError::Shutdown),
        };
        let pull_ms = millis(started.elapsed());
        let Fetched {
            snapshot,
            touched,
            ignored,
            deleted,
        } = match pulled {
            Ok(pulled) => pulled,
            Err(error) => {
                return match run {
                    None => Err(error),
                    Some(run) => self.record_failure(run, trigger, error).await,
                };
            }
        };
        // A member missing from a full pull is asked about before anything is announced: gone
        // from WeCom, or only out of the app's visible range.
        let (snapshot, deleted, out_of_scope) = match (touched.is_none(), run) {
            (true, Some(_)) => self.ask_about_missing(snapshot).await?,
            _ => (snapshot, deleted, BTreeSet::new()),
        };
        let api_calls = self.client.stats().since(&calls_before).total_calls();
        let limits = self.limits;
        let source = self.source.clone();

        let Some(run) = run else {
            if let Some(path) = &self.dump_pull {
                pull_dump::write(path, self.source.corp_id(), &snapshot).map_err(|source| {
                    SyncError::Dump {
                        path: path.clone(),
                        source,
                    }
                })?;
            }
            let report = self
                .reading(move |store| {
                    let pulled = snapshot.members.len();
                    let (comparison, departments) = compare(store.conn(), snapshot)?;
                    let mirrored = comparison.mirrored_members();
                    let changes = comparison.finish(&departments);
                    let hold = guard::check(limits, mirrored, pulled, &changes);
                    let links = matching::apply::preview(store.conn(), &changes)?;
                    Ok(RunReport::DryRun {
                        changes: Box::new(changes),
                        links: Box::new(links),
                        hold,
                    })
                })
                .await?;
            return Ok(report);
        };

        let force = mode == Mode::Force;
        let pulled = Pulled {
            snapshot,
            touched,
            ignored,
            covered,
            renames,
            deleted,
            out_of_scope,
        };
        let outcome = self
            .blocking(move |store| apply(store, &source, run, trigger, pulled, limits, force))
            .await;
        // In the background: at 100,000 members the trim takes a tenth of a second that no
        // caller needs to wait for.
        tokio::task::spawn_blocking(memory::release_freed);
        match outcome {
            Ok(Applied::Completed { counts, mut stats }) => {
                stats.pull_ms = pull_ms;
                stats.api_calls = api_calls;
                Ok(RunReport::Completed { run, counts, stats })
            }
            Ok(Applied::Held { hold, pending }) => Ok(RunReport::Held { run, hold, pending }),
            Err(error) => self.record_failure(run, trigger, error).await,
        }
    }

    /// What the run compares the mirror with: a full pull, or the mirror with the members the
    /// callbacks named read again ([`targeted`]).
    async fn fetch(&self, scope: Scope) -> Result<Fetched, SyncError> {
        let (userids, departments_changed) = match scope {
            Scope::Full => return self.full_pull().await,
            Scope::Targeted {
                userids,
                departments,
            } => (userids, departments),
            Scope::Nothing => (BTreeSet::new(), false),
        };
        let mirrored = self
            .blocking(|store| mirror::load_departments(store.conn()))
            .await?;
        let departments = if departments_changed {
            let tree = self.department_tree().await?;
            // A mirrored department gone from the tree may take members with it (a move out of
            // the mirrored subtree): only a full pull reads them all.
            if mirrored.keys().any(|id| !tree.contains_key(id)) {
                tracing::info!(
                    "a department left the mirrored tree; the callback run pulls everything"
                );
                return self.full_pull().await;
            }
            tree
        } else {
            mirrored
        };
        let base = Snapshot {
            departments,
            members: Default::default(),
        };
        let (snapshot, reread) =
            targeted::reread(&self.client, base, &userids, self.reach(), self.concurrency)
                .await
                .map_err(|error| SyncError::Pull(PullError::Wecom(error)))?;
        tracing::info!(
            members_read = reread.members_read,
            deleted = reread.deleted.len(),
            out_of_range = reread.out_of_range.len(),
            "read the members named by callbacks"
        );
        // A member in a department the run does not know may be in a new one whose callback is
        // late or lost: if the tree has changed, only a full pull reads them all rightly.
        if reread.unknown_departments > 0 && !departments_changed {
            let tree = self.department_tree().await?;
            if !tree.keys().eq(snapshot.departments.keys()) {
                tracing::info!(
                    "members are in departments the mirror does not have yet; the callback run pulls everything"
                );
                return self.full_pull().await;
            }
        }
        // A member the app may no longer see is left as it is: the next full run asks.
        let keys = userids
            .iter()
            .map(|userid| userid_key(userid))
            .filter(|key| !reread.out_of_range.contains(key))
            .collect();
        Ok(Fetched {
            snapshot,
            touched: Some(Touched {
                keys,
                departments_read: departments_changed,
            }),
            ignored: Ignored::default(),
            deleted: reread.deleted,
        })
    }

    /// The mirrored subtree's departments as WeCom has them now (one `department/list`).
    async fn department_tree(&self) -> Result<BTreeMap<DepartmentId, Department>, SyncError> {
        let (tree, _) = wecom::departments(&self.client, self.root_department)
            .await
            .map_err(SyncError::Pull)?;
        Ok(tree)
    }

    async fn full_pull(&self) -> Result<Fetched, SyncError> {
        let pull = wecom::pull(
            &self.client,
            self.root_department,
            self.agent_id,
            self.concurrency,
            log_progress(),
        )
        .await
        .map_err(SyncError::Pull)?;
        let ignored = Ignored {
            ignored_departments: pull.stats.ignored_departments,
            ignored_memberships: pull.stats.ignored_memberships,
            ignored_members: pull.stats.ignored_members,
        };
        Ok(Fetched {
            snapshot: pull.snapshot,
            touched: None,
            ignored,
            deleted: BTreeSet::new(),
        })
    }

    /// Asks WeCom (`user/get`) about each mirrored member a full pull no longer has: the userid
    /// no longer exists (deleted), the app may not see them (out of its visible range), or WeCom
    /// still shows them where the mirror reaches ([`wecom::belongs`]): the pull missed them, and
    /// they stay. At most
    /// [`MAX_ASKED`] are asked, and none when more are missing than the deletion guard lets
    /// leave (the run is held anyway); the others leave for a reason not asked, or are held with
    /// them.
    async fn ask_about_missing(
        &self,
        mut snapshot: Snapshot,
    ) -> Result<(Snapshot, BTreeSet<String>, BTreeSet<String>), SyncError> {
        let identities = self
            .blocking(|store| mirror::identities(store.conn()))
            .await?;
        let missing: BTreeSet<String> = identities
            .into_iter()
            .filter(|identity| !snapshot.members.contains_key(&identity.userid_key))
            .map(|identity| identity.userid)
            .collect();
        let guard_holds =
            u64::try_from(missing.len()).unwrap_or(u64::MAX) > self.limits.max_deletes;
        if missing.is_empty() || guard_holds {
            return Ok((snapshot, BTreeSet::new(), BTreeSet::new()));
        }
        // More than that: the first ones stand for the rest. One out of range among them is
        // enough to hold the run (`safety.out_of_scope`).
        let missing: BTreeSet<String> = missing.into_iter().take(MAX_ASKED).collect();
        // Read the way a callback run reads: from an empty set of members, so that only those
        // WeCom still shows in a mirrored department come back.
        let asking = Snapshot {
            departments: snapshot.departments.clone(),
            members: Default::default(),
        };
        let (found, report) = targeted::reread(
            &self.client,
            asking,
            &missing,
            self.reach(),
            self.concurrency,
        )
        .await
        .map_err(|error| SyncError::Pull(PullError::Wecom(error)))?;
        for (key, member) in found.members {
            tracing::warn!(userid = %member.userid, "a member missing from the pull is still where the mirror reaches in WeCom; keeping them");
            snapshot.members.insert(key, member);
        }
        tracing::info!(
            asked = missing.len(),
            deleted = report.deleted.len(),
            out_of_scope = report.out_of_range.len(),
            "asked WeCom about the members missing from the pull"
        );
        Ok((snapshot, report.deleted, report.out_of_range))
    }

    /// Makes the client hold a `gettoken` refusal that an earlier process recorded for the same
    /// credentials less than [`REFUSAL_HOLD`] ago, so that runs in quick succession (a cron
    /// job, a restarted daemon, an operator trying again) do not each ask WeCom: repeated
    /// refusals get the server's IP blocked for an hour.
    async fn hold_refusal(&self, refusal: Option<Refusal>) {
        let Some(refusal) = refusal else {
            return;
        };
        if let Some(age) = held_for(&refusal, &self.client.credentials_id(), Utc::now()) {
            let error = ApiError::new(refusal.errcode, &refusal.errmsg);
            self.client.remember_refusal(error, age).await;
        }
    }

    /// Records a failed run and its `orgsync.sync.failed` event; the mirror is untouched. A
    /// `gettoken` refusal is recorded with it, for the next process to hold.
    pub async fn record_failure(
        &self,
        run: i64,
        trigger: Trigger,
        error: SyncError,
    ) -> Result<RunReport, SyncError> {
        let refusal = match &error {
            SyncError::Pull(PullError::Wecom(
                WecomError::Token { .. } | WecomError::TokenHeld { .. },
            )) => self.client.refusal().await.map(|(error, age)| Refusal {
                credentials: self.client.credentials_id(),
                errcode: error.errcode,
                errmsg: error.errmsg,
                at: Utc::now() - chrono::Duration::from_std(age).unwrap_or_default(),
            }),
            _ => None,
        };
        let source = self.source.clone();
        let detail = SyncFailed {
            run: run.to_string(),
            trigger,
            error: ErrorData {
                code: error.code(),
                message: error.to_string(),
            },
        };
        self.blocking(move |store| {
            store.write(|tx| {
                if let Some(refusal) = &refusal {
                    token_refusal::record(tx, refusal)?;
                }
                runs::finish(tx, run, Outcome::Failed, &detail)?;
                let draft = EventDraft::run(EventType::SyncFailed, run, &detail);
                event_log::append(tx, &source, Some(run), &[draft], Utc::now())?;
                Ok(())
            })
        })
        .await?;
        Ok(RunReport::Failed { run, error })
    }

    /// [`Syncer::blocking`] for a dry run, which writes nothing: the store is opened read-only,
    /// and one that does not exist yet is compared as empty instead of being created.
    async fn reading<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, SyncError> {
        let path = self.store_path.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = if path.exists() {
                Store::open_read_only(&path)?
            } else {
                Store::in_memory()?
            };
            f(&mut store).map_err(|e| store.explain(e))
        })
        .await
        .map_err(|e| SyncError::Worker(e.to_string()))?
        .map_err(SyncError::Store)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, SyncError> {
        let path = self.store_path.clone();
        let busy_timeout = self.store_busy_timeout;
        let create = self.create_store;
        tokio::task::spawn_blocking(move || {
            let mut store = match create {
                true => Store::open_waiting(&path, busy_timeout)?,
                false => Store::open_existing(&path, busy_timeout)?,
            };
            f(&mut store).map_err(|e| store.explain(e))
        })
        .await
        .map_err(|e| SyncError::Worker(e.to_string()))?
        .map_err(SyncError::Store)
    }
}

/// How long ago a recorded `gettoken` refusal happened, if a run with `credentials` must still
/// hold it. A refusal dated in the future (the clock was set back) is not held: holding it
/// would skip WeCom until the clock catches up, while asking once records a true time.
fn held_for(refusal: &Refusal, credentials: &str, now: DateTime<Utc>) -> Option<Duration> {
    let age = (now - refusal.at).to_std().ok()?;
    (refusal.credentials == credentials && age < REFUSAL_HOLD).then_some(age)
}

/// What the run log keeps of a completed run.
#[derive(Serialize)]
struct CompletedDetail<'a> {
    counts: &'a RunCounts,
    /// Applied with `--force` over a hold.
    forced: bool,
}

enum Applied {
    Completed {
        counts: RunCounts,
        /// The phases of the transaction; the pull's fields are left for the caller.
        stats: RunStats,
    },
    Held {
        hold: Hold,
        pending: ChangeCounts,
    },
}

/// The most members a full run asks WeCom about when they are missing from its pull.
const MAX_ASKED: usize = 1_000;

/// What a run compares the mirror with.
struct Fetched {
    /// A full pull, or, for a callback run, the mirror's departments and the members read again.
    snapshot: Snapshot,
    /// For a callback run: what it compares; the rest of the mirror is left as it is.
    touched: Option<Touched>,
    ignored: Ignored,
    /// Keys of members WeCom confirmed deleted.
    deleted: BTreeSet<String>,
}

/// What a callback run compares with the mirror.
struct Touched {
    /// The keys of the members it read again.
    keys: BTreeSet<String>,
    /// Whether it read the department tree again. If not, its departments are the mirror's as
    /// the write transaction finds them: the copy it took before its calls to WeCom may lack
    /// a department that an `orgsync sync` beside the daemon committed meanwhile, and comparing
    /// with that copy would delete it.
    departments_read: bool,
}

/// A pull as a run applies it.
struct Pulled {
    /// For a callback run, what it compares ([`Fetched::touched`]).
    touched: Option<Touched>,
    /// Keys of members WeCom still has, outside the app's visible range.
    out_of_scope: BTreeSet<String>,
    /// Keys of members WeCom confirmed deleted.
    deleted: BTreeSet<String>,
    snapshot: Snapshot,
    ignored: Ignored,
    /// The newest callback the run covers, marked applied with its commit.
    covered: Option<i64>,
    /// Renames announced by the callbacks the run covers.
    renames: Vec<targeted::Rename>,
}

/// The write transaction of a run: diff against the mirror as it is now, then either apply
/// with all events (re-matching host users after the mirror changes), or hold with only the
/// `held` event.
fn apply(
    store: &mut Store,
    source: &EventSource,
    run: i64,
    trigger: Trigger,
    pulled: Pulled,
    limits: Limits,
    force: bool,
) -> Result<Applied, StoreError> {
    let Pulled {
        snapshot: pulled,
        touched,
        ignored,
        covered,
        renames,
        deleted,
        out_of_scope,
    } = pulled;
    let mut lap = Lap::start();
    let mut applied = store.write(|tx| {
        // Waiting for another process's write lock is not a phase of this run.
        lap = Lap::start();
        let mut stats = RunStats::default();
        let (mut departments, mut members) = (pulled.departments.len(), pulled.members.len());
        // The pull is consumed: its unchanged members are freed as they are compared, and the
        // new ones move into the changes, which hold all the rest of the run needs.
        let (comparison, mirrored_departments) = match &touched {
            None => compare(tx, pulled)?,
            Some(touched) => compare_touched(tx, pulled, touched)?,
        };
        stats.load_ms = lap.next();
        let mut mirrored = comparison.mirrored_members();
        if touched.is_some() {
            // The guard weighs the run against the whole mirror, which it leaves as it is but
            // for the members it touched.
            let counts = mirror::counts(tx)?;
            mirrored = usize::try_from(counts.members).unwrap_or_default();
            departments = usize::try_from(counts.departments).unwrap_or_default();
        }
        let mut changes = comparison.finish(&mirrored_departments);
        changes.confirmed_deleted = deleted;
        changes.out_of_scope = out_of_scope;
        changes.pair_renames(renames.iter().map(|r| (r.old.as_str(), r.new.as_str())));
        let pending = ChangeCounts::of(&changes);
        if touched.is_some() {
            // The mirror's size after the run, as a full pull would have counted it.
            members = (mirrored + changes.members_joined.len())
                .saturating_sub(changes.members_left.len());
        }
        let now = Utc::now();
        let hold = guard::check(limits, mirrored, members, &changes);
        stats.diff_ms = lap.next();

        if let (Some(hold), false) = (&hold, force) {
            let detail = SyncHeld {
                run: run.to_string(),
                reason: hold.message(),
                hold,
                pending: &pending,
            };
            runs::finish(tx, run, Outcome::Held, &detail)?;
            let draft = EventDraft::run(EventType::SyncHeld, run, &detail);
            event_log::append(tx, source, Some(run), &[draft], now)?;
            return Ok(Applied::Held {
                hold: hold.clone(),
                pending,
            });
        }

        mirror::apply(tx, &changes)?;
        stats.apply_ms = lap.next();
        // The member and department events go first (docs/protocol.md, event order), so the changes can be
        // freed before matching loads its own state: at 100,000 members the two together
        // would set the run's peak memory.
        event_log::append_each(tx, source, Some(run), changeset_drafts(&changes), now)?;
        drop(changes);
        stats.events_ms = lap.next();
        let links = matching::apply::rematch(tx, now)?;
        links.audit(tx, &format!("run {run} ({trigger})"), now)?;
        stats.match_ms = lap.next();
        let counts = RunCounts {
            changes: pending,
            departments,
            members,
            links_created: links.created.len(),
            links_removed: links.removed.len(),
            ignored,
        };
        event_log::append_each(tx, source, Some(run), links.drafts(), now)?;
        drop(links);
        let completed = SyncCompleted {
            run: run.to_string(),
            trigger,
            counts: &counts,
        };
        let draft = EventDraft::run(EventType::SyncCompleted, run, &completed);
        event_log::append(tx, source, Some(run), &[draft], now)?;
        let detail = CompletedDetail {
            counts: &counts,
            forced: force && hold.is_some(),
        };
        runs::finish(tx, run, Outcome::Completed, &detail)?;
        if let Some(covered) = covered {
            callbacks::applied(tx, covered, run, now)?;
        }
        stats.events_ms += lap.next();
        Ok(Applied::Completed { counts, stats })
    })?;
    if let Applied::Completed { stats, .. } = &mut applied {
        stats.commit_ms = lap.next();
    }
    Ok(applied)
}

/// Reads the mirror a member at a time, comparing each with the pull as it is read, and its
/// departments whole (a few thousand): the comparison is finished with them.
fn compare(
    conn: &Connection,
    pulled: Snapshot,
) -> Result<(Comparison, BTreeMap<DepartmentId, Department>), StoreError> {
    let departments = mirror::load_departments(conn)?;
    let mut comparison = Comparison::new(pulled);
    mirror::for_each_member(conn, |key, member| {
        comparison.mirrored(&key, Cow::Owned(member));
    })?;
    Ok((comparison, departments))
}

/// [`compare`] for a callback run: only the mirrored members it touched are compared, and
/// those of them missing from `pulled` leave.
fn compare_touched(
    conn: &Connection,
    mut pulled: Snapshot,
    touched: &Touched,
) -> Result<(Comparison, BTreeMap<DepartmentId, Department>), StoreError> {
    let departments = mirror::load_departments(conn)?;
    if !touched.departments_read {
        pulled.departments.clone_from(&departments);
    }
    let mut comparison = Comparison::new(pulled);
    for key in &touched.keys {
        if let Some(member) = mirror::member(conn, key)? {
            comparison.mirrored(key, Cow::Owned(member));
        }
    }
    Ok((comparison, departments))
}

/// Times consecutive phases: each `next` returns the milliseconds since the previous one.
struct Lap(Instant);

impl Lap {
    fn start() -> Lap {
        Lap(Instant::now())
    }

    fn next(&mut self) -> u64 {
        let now = Instant::now();
        let elapsed = millis(now - self.0);
        self.0 = now;
        elapsed
    }
}

/// Logs pull progress every few seconds, so that a long pull shows it is alive while a
/// short one stays quiet (the pull logs its own summary).
fn log_progress() -> impl FnMut(Progress) + Send {
    const EVERY: Duration = Duration::from_secs(5);
    let mut last = Instant::now();
    move |progress: Progress| {
        if last.elapsed() >= EVERY {
            last = Instant::now();
            tracing::info!(
                departments_done = progress.departments_done,
                departments_total = progress.departments_total,
                members = progress.members,
                "pulling"
            );
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_refusal_is_held_for_a_minute_for_the_same_credentials_only() {
        let at = Utc::now();
        let refusal = Refusal {
            credentials: "c1".into(),
            errcode: 40001,
            errmsg: "invalid credential".into(),
            at,
        };
        let later = |secs| at + chrono::Duration::seconds(secs);
        assert_eq!(
            held_for(&refusal, "c1", later(59)),
            Some(Duration::from_secs(59))
        );
        assert_eq!(held_for(&refusal, "c1", later(60)), None);
        assert_eq!(held_for(&refusal, "c2", later(1)), None, "a fixed secret");
        assert_eq!(
            held_for(&refusal, "c1", later(-3600)),
            None,
            "clock set back"
        );
    }
}
