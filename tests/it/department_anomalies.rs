//! A department tree that does not add up never turns into departures: an inconsistent pull
//! fails like a failed call (mirror unchanged, `sync.failed` naming what is wrong), a visible
//! range of several separate departments is mirrored whole, and so, with `wecom.agent_id`, is
//! a member the range names individually.

use orgsync_simulator::{CallCounts, Directory, Endpoint, SimDepartment, SimUser};
use serde_json::{json, Value};

use crate::harness::{assert_sync_fails, describe, user, Env};

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

/// The calls each of `endpoints` received between `before` and now.
fn calls_since(env: &Env, before: CallCounts, endpoints: &[Endpoint]) -> Vec<u64> {
    let now = env.sim.calls();
    endpoints
        .iter()
        .map(|&e| now.get(e) - before.get(e))
        .collect()
}

/// The `orgsync.member.*` events among `events`, as (type, userid).
fn member_events(events: &[Value]) -> Vec<(&str, &str)> {
    events
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("orgsync.member."))
        })
        .map(|e| {
            let userid = e["data"]["userid"].as_str().unwrap_or_default();
            (e["type"].as_str().unwrap_or_default(), userid)
        })
        .collect()
}

#[tokio::test]
async fn a_member_named_individually_in_the_visible_range_is_mirrored_with_agent_id() {
    // The app sees R&D (2 and its teams 3 and 4) and, named on their own, ZhaoLei, who heads
    // marketing (5).
    let mut directory = Directory::sample();
    directory.visible_departments = vec![2];
    directory.visible_users = vec!["ZhaoLei".into()];
    let apis = [
        Endpoint::GetToken,
        Endpoint::DepartmentList,
        Endpoint::UserList,
        Endpoint::AgentGet,
        Endpoint::UserGet,
    ];

    // Without wecom.agent_id the calls are what they always were, and ZhaoLei is not mirrored.
    let without = Env::new(directory).await;
    let before = without.sim.calls();
    without.sync().await;
    assert_eq!(calls_since(&without, before, &apis), [1, 1, 3, 0, 0]);
    assert_eq!(without.sim.calls().total() - before.total(), 5);
    let mirrored = without.state().mirror;
    assert_eq!(mirrored.members.len(), 9);
    assert!(!mirrored.members.contains_key("zhaolei"));

    // With it (another instance against the same tenant): one agent/get, one user/get, and
    // ZhaoLei joins, in no mirrored department.
    let with = without.beside("agent_id = 1000002\n", "");
    let before = with.sim.calls();
    let events = with.sync_events().await;
    assert_eq!(calls_since(&with, before, &apis), [1, 1, 3, 1, 1]);
    let joined = events
        .iter()
        .find(|e| e["type"] == "orgsync.member.joined" && e["data"]["userid"] == "ZhaoLei")
        .unwrap_or_else(|| panic!("ZhaoLei joins: {events:?}"));
    let member = &joined["data"]["member"];
    assert_eq!(member["departments"], json!([]), "{member}");
    assert_eq!(member["position"], "市场总监");
    let completed = events.last().unwrap();
    assert_eq!(completed["data"]["counts"]["members"], 10, "{completed}");
    assert_eq!(completed["data"]["counts"]["ignored_members"], 0);

    // The next run has nothing to change: nobody is announced as left.
    with.assert_nothing_to_sync().await;

    // A change to him arrives as one update.
    with.sim
        .edit(|d| user(d, "ZhaoLei").position = "市场副总裁".into());
    let events = with.sync_events().await;
    assert_eq!(
        member_events(&events),
        [("orgsync.member.updated", "ZhaoLei")]
    );

    // agent_id removed: he is missing from the pull and asked about; WeCom still shows him to
    // the app, but a mirror without agent_id holds no member named individually, as a pull
    // would not have mirrored him: he leaves.
    with.write_config("", "");
    let before = with.sim.calls();
    let events = with.sync_events().await;
    assert_eq!(
        member_events(&events),
        [("orgsync.member.left", "ZhaoLei")],
        "{events:?}"
    );
    assert_eq!(calls_since(&with, before, &apis), [0, 1, 3, 0, 1]);
    assert!(!with.state().mirror.members.contains_key("zhaolei"));
}
