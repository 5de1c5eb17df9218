//! What WeCom sends that a naive mirror gets wrong (issue #3, item 4): fields withheld from
//! apps created after 2022-06-20, userids that differ only in case, `order` above 2^31,
//! members in several departments, and members listed under departments outside the
//! mirrored subtree. Each through the real `orgsync sync`; none may produce a spurious
//! `member.left`.

use crate::harness::{move_to, types, user, Env};
use orgsync_simulator::{Directory, SimUser};
use serde_json::json;

#[tokio::test]
async fn withheld_fields_keep_their_last_known_value_and_emit_no_change() {
    let env = Env::synced_sample().await;
    let known = env.state();
    let lina = known.mirror.members["lina"].clone();
    assert_eq!(lina.mobile.as_deref(), Some("15010873321"));
    assert!(lina.email.is_some() && lina.gender.is_some() && lina.biz_mail.is_some());

    // The app is replaced by one created after 2022-06-20: WeCom stops sending the fields.
    env.sim.edit(|d| d.withhold_sensitive = true);
    env.sync().await;
    let after = env.state();
    assert_eq!(
        types(&after.event_values()[known.events.len()..]),
        ["orgsync.sync.completed"]
    );
    assert_eq!(after.mirror, known.mirror, "the mirror keeps every mobile");

    // A withheld value changes in WeCom: orgsync cannot know, so nothing happens.
    env.sim
        .edit(|d| user(d, "lina").mobile = "13000000000".into());
    env.sync().await;
    let after = env.state();
    assert_eq!(
        types(&after.event_values()[known.events.len() + 1..]),
        ["orgsync.sync.completed"]
    );
    assert_eq!(after.mirror, known.mirror);

    // A field WeCom still sends changes: one update, of that field only, and the member
    // object carries the last known mobile.
    env.sim
        .edit(|d| user(d, "lina").position = "研发副总监".into());
    let events = env.sync_events().await;
    assert_eq!(
        types(&events),
        ["orgsync.member.updated", "orgsync.sync.completed"]
    );
    assert_eq!(
        events[0]["data"]["changes"],
        json!({"position": {"old": "后端组负责人", "new": "研发副总监"}})
    );
    assert_eq!(events[0]["data"]["member"]["mobile"], "15010873321");
    assert_eq!(
        env.state().mirror.members["lina"].mobile.as_deref(),
        Some("15010873321")
    );
}

#[tokio::test]
async fn a_userid_whose_spelling_changes_case_is_the_same_member() {
    let env = Env::synced_sample().await;
    env.sim
        .edit(|d| user(d, "ZhaoLei").userid = "zhaolei".into());
    let events = env.sync_events().await;
    assert_eq!(
        types(&events),
        ["orgsync.member.updated", "orgsync.sync.completed"],
        "no member.left and no member.joined: {events:?}"
    );
    assert_eq!(events[0]["subject"], "member/zhaolei");
    assert_eq!(
        events[0]["data"]["changes"],
        json!({"userid": {"old": "ZhaoLei", "new": "zhaolei"}})
    );
    let mirror = env.state().mirror;
    assert_eq!(mirror.members.len(), 15);
    assert_eq!(mirror.members["zhaolei"].userid, "zhaolei");
}

#[tokio::test]
async fn orders_above_2_pow_31_survive_the_round_trip() {
    let mut directory = Directory::sample();
    let top = u32::MAX;
    directory
        .departments
        .iter_mut()
        .find(|d| d.id == 2)
        .expect("department 2")
        .order = top;
    user(&mut directory, "yangjie").order = vec![top, (1 << 31) + 1];
    let env = Env::new(directory).await;
    env.sync().await;
    let state = env.state();
    let yangjie = &state.mirror.members["yangjie"];
    let orders: Vec<i64> = yangjie
        .departments
        .iter()
        .flatten()
        .map(|m| m.order)
        .collect();
    assert_eq!(orders, [i64::from(top), (1 << 31) + 1]);
    assert_eq!(state.mirror.departments[&2].order, Some(i64::from(top)));
    let joined = state
        .event_values()
        .into_iter()
        .find(|e| e["subject"] == "member/yangjie")
        .expect("yangjie joined");
    assert_eq!(
        joined["data"]["member"]["departments"][0]["order"],
        json!(4_294_967_295u64)
    );

    // Read back and pulled again, nothing differs.
    env.assert_nothing_to_sync().await;
}

#[tokio::test]
async fn a_member_of_several_departments_is_one_member_and_a_move_is_one_update() {
    let env = Env::synced_sample().await;
    let state = env.state();
    let events = state.event_values();
    let joined: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["subject"] == "member/zhuxin")
        .collect();
    assert_eq!(joined.len(), 1, "listed under 5 and 6, joined once");
    assert_eq!(
        joined[0]["data"]["member"]["departments"],
        json!([
            {"id": 5, "order": 40, "is_leader": false},
            {"id": 6, "order": 40, "is_leader": false}
        ])
    );
    assert_eq!(state.mirror.members.len(), 15);

    // Leaves marketing, stays in HR: one update of `departments`, no departure.
    env.sim.edit(|d| move_to(user(d, "zhuxin"), 6, 40));
    env.sync().await;
    let events = env.events_since(state.head()).await;
    assert_eq!(
        types(&events),
        ["orgsync.member.updated", "orgsync.sync.completed"]
    );
    let changes = &events[0]["data"]["changes"];
    assert_eq!(
        changes["departments"]["new"],
        json!([{"id": 6, "order": 40, "is_leader": false}])
    );
    assert_eq!(changes["main_department"], json!({"old": 5, "new": 6}));
}

#[tokio::test]
async fn only_the_mirrored_subtree_is_mirrored_and_foreign_memberships_are_dropped() {
    let mut directory = Directory::sample();
    // In the backend team (inside the subtree of 2) and in marketing (outside it).
    directory.users.push(SimUser::new("sunli", "孙丽", &[3, 5]));
    let env = Env::with_wecom(directory, "root_department = 2\n", "").await;
    env.sync().await;
    let state = env.state();
    let departments: Vec<i64> = state.mirror.departments.keys().copied().collect();
    assert_eq!(departments, [2, 3, 4]);
    let ids = |userid: &str| -> Vec<i64> {
        state.mirror.members[userid]
            .departments
            .iter()
            .flatten()
            .map(|m| m.id)
            .collect()
    };
    assert_eq!(ids("sunli"), [3], "marketing is outside the mirror");
    assert_eq!(ids("yangjie"), [3, 4]);
    for outside in ["zhaolei", "huangmin", "zhuxin", "xuhao"] {
        assert!(
            !state.mirror.members.contains_key(outside),
            "{outside} is not in the subtree of 2"
        );
    }
    let mut mirrored: Vec<&str> = state.mirror.members.keys().map(String::as_str).collect();
    mirrored.sort_unstable();
    let mut expected: Vec<String> = env
        .sim
        .directory()
        .users
        .iter()
        .filter(|u| u.department.iter().any(|d| [2, 3, 4].contains(d)))
        .map(|u| u.userid.to_lowercase())
        .collect();
    expected.sort_unstable();
    assert_eq!(mirrored, expected);

    // A change in the foreign department alone is not a change of the mirror.
    env.sim.edit(|d| user(d, "sunli").order = vec![0, 77]);
    env.assert_nothing_to_sync().await;
}
