//! A run does not load the mirror whole: it reads it a member at a time and compares each with
//! the pull as it is read (`Comparison` over `mirror::for_each_member`). That must give exactly
//! the changeset of `diff` over whole snapshots, in the same order.

// The benchmarks' inputs: generated directories pulled through the real client. Their sizes
// are the benchmarks' own, not used here.
#[allow(dead_code)]
#[path = "../../benches/support/mod.rs"]
mod support;

use std::borrow::Cow;

use orgsync::diff::{diff, Comparison};
use orgsync::model::Snapshot;
use orgsync::store::{mirror, Store};

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

#[test]
fn comparing_the_streamed_mirror_gives_the_diff_of_whole_snapshots() {
    // Pulled through the real client: 2,000 members, then 30% of them changed.
    let support::Pulled { before, after } = support::pulled(2000, 80, 0.3);

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
