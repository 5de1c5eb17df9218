//! Matching 100,000 host users against 100,000 members.
//!
//! The members are the simulator's generated company (`Directory::generate(7, 5000, 100_000)`:
//! realistic Chinese names, many of them shared, and unique mobiles). The host users are derived
//! from them by `Directory::host_users`, the way a real host application's list differs from
//! WeCom: mobiles in every format, some missing, some shared by two accounts, some people known
//! only by name, some with an outdated mobile, and some who are not in WeCom at all.
//!
//! - `normalize`: NFKC names and E.164 mobiles for both sides (what loading the state costs
//!   beyond reading the rows).
//! - `first_pass`: the plan when nothing is linked yet (the first import).
//! - `steady_state`: the plan when every link is in place and nothing changed (what every
//!   sync and every host-user change pays).
//! - `rematch_in_store`: `steady_state` plus reading the whole state from SQLite inside a write
//!   transaction, as a sync run does after applying its changes.
//!
//! Run with `cargo bench --bench matching`. Measured on the 2-core development machine in a
//! release build at a load average of 0.3: normalize ≈ 135 ms, first_pass ≈ 161 ms,
//! steady_state ≈ 127 ms, rematch_in_store ≈ 334 ms. The derived set links 78,484 host users
//! (75,000 by phone), leaves 5,106 ambiguous and 16,410 unmatched.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

#[path = "../tests/it/harness/host_users.rs"]
mod host_users;

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use orgsync::diff::diff;
use orgsync::events::EventSource;
use orgsync::matching::apply::{put_host_users, rematch, PutError};
use orgsync::matching::{host_facts, plan, MemberFacts, State};
use orgsync::model::host_user::HostUser;
use orgsync::model::{Member, Snapshot};
use orgsync::store::{mirror, Store};
use orgsync_simulator::Directory;

const SIZE: usize = 100_000;

/// A member as the mirror holds it: userid, name, mobile.
type Raw = (String, String, String);

/// The members, and one host user derived from each (`Directory::host_users`).
fn company() -> (Vec<Raw>, Vec<HostUser>) {
    let directory = Directory::generate(7, 5000, SIZE);
    let hosts = host_users::host_users(&directory);
    let members = directory
        .users
        .into_iter()
        .map(|u| (u.userid, u.name, u.mobile))
        .collect();
    (members, hosts)
}

fn state(members: &[Raw], hosts: &[HostUser]) -> State {
    State {
        members: members
            .iter()
            .map(|(userid, name, mobile)| {
                (
                    userid.to_lowercase(),
                    MemberFacts::new(userid, Some(name), Some(mobile)),
                )
            })
            .collect(),
        host_users: hosts
            .iter()
            .map(|h| {
                (
                    h.id.clone(),
                    host_facts(h.name.as_deref(), h.mobile.as_deref()),
                )
            })
            .collect(),
        links: Default::default(),
        held: Default::default(),
    }
}

fn matching(c: &mut Criterion) {
    let (members, hosts) = company();
    let fresh = state(&members, &hosts);
    let first = plan(&fresh);
    let mut linked = fresh.clone();
    linked.links = first
        .created
        .iter()
        .map(|c| (c.host_user_id.clone(), c.link.clone()))
        .collect();
    let counts = first.assessment.host_users;
    eprintln!(
        "{SIZE} host users against {SIZE} members: {} linked ({} by phone), {} ambiguous, {} unmatched",
        counts.linked,
        first
            .created
            .iter()
            .filter(|c| c.link.method == orgsync::matching::Method::Phone)
            .count(),
        counts.ambiguous,
        counts.unmatched
    );

    let mut group = c.benchmark_group("matching_100k");
    group.sample_size(10);
    group.bench_function("normalize", |b| {
        b.iter(|| black_box(state(&members, &hosts)))
    });
    group.bench_function("first_pass", |b| b.iter(|| black_box(plan(&fresh))));
    group.bench_function("steady_state", |b| {
        b.iter(|| {
            let plan = plan(&linked);
            assert!(plan.is_empty());
            black_box(plan)
        })
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("bench.db")).expect("open the store");
    let mut snapshot = Snapshot::default();
    for (userid, name, mobile) in &members {
        let mut member = Member::new(userid.as_str());
        member.name = Some(name.clone());
        member.mobile = Some(mobile.clone());
        snapshot.insert_member(member);
    }
    let changes = diff(&Snapshot::default(), snapshot);
    let source = EventSource::new("wwbench");
    store
        .try_write(|tx| -> Result<_, PutError> {
            mirror::apply(tx, &changes)?;
            put_host_users(tx, &source, "bench", &hosts, true, Utc::now())
        })
        .expect("fill the store");
    group.bench_function("rematch_in_store", |b| {
        b.iter(|| {
            let changes = store.write(|tx| rematch(tx, Utc::now())).expect("rematch");
            assert!(changes.created.is_empty() && changes.removed.is_empty());
            black_box(changes)
        })
    });
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
