//! A department tree that does not add up never turns into departures: an inconsistent pull
//! fails like a failed call (mirror unchanged, `sync.failed` naming what is wrong), and a visible
//! range of several separate departments is mirrored whole.

use orgsync_simulator::{Directory, SimDepartment, SimUser};

use crate::harness::{assert_sync_fails, describe, Env};

/// A first sync of the sample, then `edit` applied to the simulated directory, then a sync that
/// must fail as inconsistent, naming `what`.
async fn fails_as_inconsistent(edit: impl FnOnce(&mut Directory), what: &str) {
    let env = Env::synced_sample().await;
    env.sim.edit(edit);
    let before = env.state();
    let (line, _) = assert_sync_fails(&before, &env, "inconsistent_pull").await;
    assert!(line.contains(what), "{line}");
}

/// Departments `(id, parentid)` added to the visible range, the first one named in it.
fn visible(added: &'static [(u32, u32)]) -> impl FnOnce(&mut Directory) {
    move |d| {
        for &(id, parent) in added {
            d.departments
                .push(SimDepartment::new(id, format!("部门{id}"), parent));
        }
        d.visible_departments.push(added[0].0);
    }
}

#[tokio::test]
async fn a_self_parented_department_fails_the_run() {
    fails_as_inconsistent(visible(&[(7, 7)]), "cycle").await;
}

#[tokio::test]
async fn a_cycle_of_three_departments_fails_the_run() {
    fails_as_inconsistent(visible(&[(7, 9), (8, 7), (9, 8)]), "cycle").await;
}

#[tokio::test]
async fn a_department_listed_twice_fails_the_run() {
    fails_as_inconsistent(
        |d| {
            let again = d.departments[2].clone();
            d.departments.push(again);
        },
        "listed twice",
    )
    .await;
}

#[tokio::test]
async fn userids_equal_but_for_case_fail_the_run() {
    fails_as_inconsistent(
        |d| {
            let twin = d.users[0].userid.to_uppercase();
            d.users.push(SimUser::new(twin, "双胞胎", &[1]));
        },
        "differ only in case",
    )
    .await;
}

#[tokio::test]
async fn an_orphan_department_is_the_top_of_a_subtree_of_its_own() {
    let env = Env::synced_sample().await;
    let members = env.state().mirror.members.len();
    env.sim.edit(|d| {
        d.departments.push(SimDepartment::new(8, "孤儿", 99));
        d.visible_departments.push(8);
        d.users.push(SimUser::new("orphan", "孤儿成员", &[8]));
    });
    let output = env.run(&["sync"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let state = env.state();
    assert_eq!(state.mirror.departments[&8].parent_id, Some(99));
    assert_eq!(state.mirror.members.len(), members + 1, "nobody left");
    let left = state
        .event_values()
        .iter()
        .filter(|e| e["type"] == "orgsync.member.left")
        .count();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_visible_range_of_two_departments_mirrors_both_subtrees() {
    let mut directory = Directory::sample();
    directory.visible_departments = vec![2, 5];
    let expected: Vec<String> = directory
        .users
        .iter()
        .filter(|u| u.department.iter().any(|d| [2, 3, 4, 5].contains(d)))
        .map(|u| u.userid.to_lowercase())
        .collect();
    let env = Env::new(directory).await;
    env.sync().await;
    let state = env.state();
    assert_eq!(
        state.mirror.departments.keys().copied().collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    let mut mirrored: Vec<String> = state.mirror.members.keys().cloned().collect();
    mirrored.sort();
    let mut expected = expected;
    expected.sort();
    assert_eq!(mirrored, expected);
}
