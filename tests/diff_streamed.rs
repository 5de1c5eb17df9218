//! A run does not load the mirror whole: it reads it a member at a time and compares each with
//! the pull as it is read (`Comparison` over `mirror::for_each_member`). That must give exactly
//! the changeset of `diff` over whole snapshots, in the same order.

use std::borrow::Cow;

use orgsync::diff::{diff, Comparison};
use orgsync::model::Snapshot;
use orgsync::simulator::{Directory, Simulator};
use orgsync::store::{mirror, Store};
use orgsync::wecom::{self, ClientSettings, Secret, WecomClient};

async fn pull(simulator: &Simulator) -> Snapshot {
    let directory = simulator.directory();
    let client = WecomClient::new(ClientSettings::new(
        simulator.api_base(),
        directory.corp_id,
        Secret::new(&directory.corp_secret),
    ))
    .expect("a client");
    wecom::pull(&client, 1, 4, |_| {})
        .await
        .expect("the pull succeeds")
        .snapshot
}

fn streamed(store: &Store, pull: Snapshot) -> (orgsync::diff::Changeset, usize) {
    let mut comparison = Comparison::new(pull);
    mirror::for_each_member(store.conn(), |key, member| {
        comparison.mirrored(&key, Cow::Owned(member));
    })
    .expect("stream the mirror");
    let mirrored = comparison.mirrored_members();
    let departments = mirror::load_departments(store.conn()).expect("departments");
    (comparison.finish(&departments), mirrored)
}

#[tokio::test]
async fn comparing_the_streamed_mirror_gives_the_diff_of_whole_snapshots() {
    let simulator = Simulator::start(Directory::generate(31, 80, 2000))
        .await
        .expect("the simulator starts");
    let before = pull(&simulator).await;
    simulator.edit(|directory| {
        directory.mutate(32, 0.3);
    });
    let after = pull(&simulator).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("orgsync.db")).expect("open the store");
    store
        .write(|tx| mirror::apply(tx, &diff(&Snapshot::default(), before.clone())))
        .expect("fill the mirror");
    // The members are read with their memberships side by side: every member, with all of
    // its departments in WeCom's order (a fifth of them have two or three).
    assert_eq!(mirror::load(store.conn()).expect("load"), before);

    for (name, pull) in [
        ("30% changed", &after),
        ("no change", &before),
        ("everyone gone", &Snapshot::default()),
    ] {
        let expected = diff(&before, pull.clone());
        let (changes, mirrored) = streamed(&store, pull.clone());
        assert_eq!(mirrored, before.members.len(), "{name}");
        assert_eq!(changes, expected, "{name}");
        assert_eq!(changes.is_empty(), name == "no change", "{name}");
    }
}
