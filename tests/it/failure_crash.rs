//! Crash safety (issue #3, item 3): `kill -9` of the real `orgsync sync` at several points of
//! a large sync leaves the mirror and the event log exactly at the last committed run, whole,
//! and the next run produces exactly the right changes.
//!
//! The kills are placed by what the test observes, never by a timer:
//! - in the pull: once the simulator has answered half of the `user/list` calls;
//! - in the apply: once every `user/list` was answered and the store's write-ahead log then
//!   grew by more than a mebibyte, which only the run's write transaction does;
//! - just after the commit: once the run's row reads `completed` (the process is then closing
//!   the store, checkpointing the log, and printing its summary).
//!
//! Where each kill landed is read back from the store (the run still `running`, or
//! `completed`), printed, and asserted: at least one kill must land inside the apply.
//!
//! Last, SIGTERM (not SIGKILL) reaches the daemon inside an apply: the apply commits and the
//! daemon exits 0.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{self, integrity, types, Env, StoreState};
use orgsync_simulator::{Directory, Endpoint};
use tokio::process::Child;

const DEPARTMENTS: usize = 800;
const MEMBERS: usize = 16_000;
/// Write-ahead log growth that only a run's apply produces (begin and finish write a page or
/// two).
const APPLYING: u64 = 1 << 20;

/// Where a kill landed, as the store tells it afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    Pull,
    /// Inside the apply's transaction, before its commit.
    Apply,
    /// After the commit, with the process still alive.
    AfterCommit,
}

struct Crash {
    env: Env,
    report: Vec<String>,
}

impl Crash {
    fn wal(&self) -> PathBuf {
        let mut wal = self.env.store_path().into_os_string();
        wal.push("-wal");
        PathBuf::from(wal)
    }

    fn user_lists(&self) -> u64 {
        self.env.sim.calls().get(Endpoint::UserList)
    }

    fn spawn(&self) -> Child {
        self.env
            .command(&["sync"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn orgsync sync")
    }

    /// SIGKILL; returns whether the process was still alive to receive it.
    async fn kill(&self, mut child: Child) -> bool {
        let alive = child.try_wait().expect("try_wait").is_none();
        child.start_kill().expect("SIGKILL");
        let status = tokio::time::timeout(harness::WAIT, child.wait())
            .await
            .expect("the killed process is reaped")
            .expect("wait");
        if alive {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        }
        alive
    }

    /// Kills a sync once half of the departments' members were pulled.
    async fn kill_in_pull(&self) {
        let half = self.user_lists() + DEPARTMENTS as u64 / 2;
        let child = self.spawn();
        bounded(self.env.sim.wait_for_calls(Endpoint::UserList, half)).await;
        assert!(self.kill(child).await, "the sync was still pulling");
    }

    /// Kills sync run `run` once its apply is writing.
    async fn kill_in_apply(&self, run: i64) {
        let child = self.spawn();
        self.wait_for_apply(self.user_lists(), run).await;
        self.kill(child).await;
    }

    /// Waits until run `run`, started after `user_lists` calls, is applying: every `user/list`
    /// answered, then the log grew. A machine too loaded to see the growth sees the run
    /// complete instead; the caller finds that out from the store.
    async fn wait_for_apply(&self, user_lists: u64, run: i64) {
        let all = user_lists + DEPARTMENTS as u64;
        bounded(self.env.sim.wait_for_calls(Endpoint::UserList, all)).await;
        let pulled = size(&self.wal());
        let store = self.env.store_path();
        bounded(async {
            while size(&self.wal()) < pulled + APPLYING
                && outcome(&store, run).as_deref() != Some("completed")
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }

    /// Kills a sync as soon as its run reads `completed`.
    async fn kill_after_commit(&self, run: i64) -> bool {
        let child = self.spawn();
        let store = self.env.store_path();
        bounded(async {
            while outcome(&store, run).as_deref() != Some("completed") {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        self.kill(child).await
    }

    /// Checks the store after a kill of run `run`, whose predecessor left `before`; returns
    /// where the kill landed.
    fn check(&mut self, what: &str, run: i64, before: &StoreState, in_pull: bool) -> Landed {
        let store = self.env.store_path();
        assert_eq!(integrity(&store), "ok", "{what}");
        let after = self.env.state();
        assert_eq!(
            after.replayed(),
            after.mirror,
            "{what}: mirror = replayed events"
        );
        let landed = match after.outcome(run) {
            Some("running") => {
                assert_eq!(after.mirror, before.mirror, "{what}: mirror unchanged");
                assert_eq!(after.events, before.events, "{what}: event log unchanged");
                if in_pull {
                    Landed::Pull
                } else {
                    Landed::Apply
                }
            }
            Some("completed") => {
                assert!(!in_pull, "{what}: a pull cannot commit");
                Landed::AfterCommit
            }
            other => panic!("{what}: run {run} is {other:?}"),
        };
        let line = format!(
            "{what}: landed {landed:?}; run {run} {}, mirror {} members, {} events",
            after.outcome(run).unwrap_or("?"),
            after.mirror.members.len(),
            after.events.len()
        );
        eprintln!("{line}");
        self.report.push(line);
        landed
    }
}

async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(harness::WAIT, future)
        .await
        .expect("the awaited point of the sync was reached in time")
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn outcome(store: &Path, run: i64) -> Option<String> {
    if !store.exists() {
        return None;
    }
    harness::read_only(store)
        .query_row("SELECT outcome FROM runs WHERE id = ?1", [run], |r| {
            r.get(0)
        })
        .ok()
}

/// The mirror's member keys, and what the directory says they should be.
fn keys(state: &StoreState) -> BTreeSet<String> {
    state.mirror.members.keys().cloned().collect()
}

fn directory_keys(directory: &Directory) -> BTreeSet<String> {
    directory
        .users
        .iter()
        .map(|u| u.userid.to_lowercase())
        .collect()
}

/// `data.userid` of the events of `kind` among `events`, lower-cased.
fn subjects(events: &[serde_json::Value], kind: &str) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["data"]["userid"].as_str().expect("userid").to_lowercase())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_point_of_a_large_sync_leaves_the_last_committed_run_whole() {
    let directory = Directory::generate(2024, DEPARTMENTS, MEMBERS);
    let env = Env::with_config(
        directory,
        "[safety]\nmax_deletes = 100000\nmax_delete_ratio = 1.0\n",
    )
    .await;
    let mut crash = Crash {
        env,
        report: Vec::new(),
    };
    let mut landed = Vec::new();

    // The first sync, killed twice: during its pull, during its apply.
    let empty = crash.env.state();
    crash.kill_in_pull().await;
    landed.push(crash.check("first sync, kill in the pull", 1, &empty, true));
    crash.kill_in_apply(2).await;
    landed.push(crash.check("first sync, kill in the apply", 2, &empty, false));

    // Unless the apply kill came after the commit, the next run does the whole first sync.
    let output = crash.env.sync().await;
    harness::assert_no_panic(&String::from_utf8_lossy(&output.stderr));
    let synced = crash.env.state();
    assert_eq!(integrity(&crash.env.store_path()), "ok");
    assert_eq!(synced.replayed(), synced.mirror);
    assert_eq!(keys(&synced), directory_keys(&crash.env.sim.directory()));
    assert_eq!(synced.mirror.departments.len(), DEPARTMENTS);
    assert_eq!(synced.outcome(1), Some("interrupted"));
    if landed[1] == Landed::Apply {
        assert_eq!(synced.outcome(2), Some("interrupted"));
        let events = synced.event_values();
        assert_eq!(subjects(&events, "orgsync.member.joined").len(), MEMBERS);
        assert_eq!(
            events.len(),
            DEPARTMENTS + MEMBERS + 1,
            "one run's events, once"
        );
    }

    // A reorganisation: about 30% of the members change, join or leave.
    let old = crash.env.sim.directory();
    crash.env.sim.edit(|d| {
        d.mutate(7, 0.3);
    });
    let new = crash.env.sim.directory();
    let left: BTreeSet<String> = directory_keys(&old)
        .difference(&directory_keys(&new))
        .cloned()
        .collect();
    let joined: BTreeSet<String> = directory_keys(&new)
        .difference(&directory_keys(&old))
        .cloned()
        .collect();
    assert!(left.len() > 500 && joined.len() > 500);

    let run = synced.runs.len() as i64 + 1;
    crash.kill_in_pull().await;
    landed.push(crash.check("reorganisation, kill in the pull", run, &synced, true));
    crash.kill_in_apply(run + 1).await;
    let in_apply = crash.check("reorganisation, kill in the apply", run + 1, &synced, false);
    landed.push(in_apply);

    // Killed right after its commit: the run is whole, its events exactly the
    // reorganisation.
    let (base, next) = if in_apply == Landed::AfterCommit {
        (crash.env.state(), run + 1)
    } else {
        let alive = crash.kill_after_commit(run + 2).await;
        let what = format!("reorganisation, kill after the commit (process alive: {alive})");
        landed.push(crash.check(&what, run + 2, &synced, false));
        (crash.env.state(), run + 3)
    };
    let events = &base.event_values()[synced.events.len()..];
    assert_eq!(
        subjects(events, "orgsync.member.left"),
        left,
        "no spurious leaver"
    );
    assert_eq!(subjects(events, "orgsync.member.joined"), joined);
    assert_eq!(types(events).last(), Some(&"orgsync.sync.completed"));
    assert_eq!(
        types(events)
            .iter()
            .filter(|t| t.starts_with("orgsync.sync."))
            .count(),
        1,
        "one run's events, once: {:?}",
        base.runs
    );
    assert_eq!(keys(&base), directory_keys(&new));
    assert_eq!(base.replayed(), base.mirror);

    // And the next run finds nothing left to do.
    crash.env.sync().await;
    let last = crash.env.state();
    assert_eq!(
        types(&last.event_values()[base.events.len()..]),
        ["orgsync.sync.completed"]
    );
    assert_eq!(last.outcome(next), Some("completed"));
    assert!(
        last.runs
            .iter()
            .all(|(_, outcome)| outcome == "completed" || outcome == "interrupted"),
        "{:?}",
        last.runs
    );

    // SIGTERM to the daemon while it applies: the apply commits, the daemon exits 0.
    crash.env.sim.edit(|d| {
        d.mutate(8, 0.1);
    });
    let daemon = crash.env.start_daemon().await;
    let user_lists = crash.user_lists();
    daemon.signal(libc::SIGUSR1);
    crash.wait_for_apply(user_lists, next + 1).await;
    let stderr = daemon.stop().await;
    harness::assert_no_panic(&stderr);
    let stopped = crash.env.state();
    assert_eq!(stopped.outcome(next + 1), Some("completed"), "{stderr}");
    assert_eq!(keys(&stopped), directory_keys(&crash.env.sim.directory()));
    assert_eq!(stopped.replayed(), stopped.mirror);
    let line = format!(
        "daemon, SIGTERM in the apply: run {} completed, exit status 0",
        next + 1
    );
    eprintln!("{line}");
    crash.report.push(line);

    eprintln!("where the kills landed:\n  {}", crash.report.join("\n  "));
    assert!(
        landed.contains(&Landed::Apply),
        "no kill landed inside an apply: {:?}",
        crash.report
    );
}
