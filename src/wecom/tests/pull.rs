//! The pull against simulated tenants: conversion, merging, filtering, the members the visible
//! range names individually, and all-or-nothing failure.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use orgsync_simulator::{Directory, Endpoint, ExtAttr, ExtAttrItem, Fault, SimDepartment, SimUser};
use serde_json::{json, Value};

use super::sim::{self, always, client, flat_tenant, id, reach, requests, tenant};
use crate::model::{Department, Membership};
use crate::targeted;
use crate::wecom::{pull, Progress, PullError};

fn departments() -> Value {
    json!([
        {"id": 1, "name": "总部", "name_en": "HQ", "parentid": 0, "order": 100000000,
         "department_leader": ["boss"]},
        {"id": 2, "name": "研发", "parentid": 1, "order": 4294967295u32},
        {"id": 3, "name": "平台", "parentid": 2, "order": 1}
    ])
}

/// The departments, and a second visible subtree whose parent (80) the app cannot see.
fn two_subtrees() -> Value {
    let mut all = departments();
    if let Value::Array(list) = &mut all {
        list.push(json!({"id": 90, "name": "外部", "parentid": 80, "order": 1}));
        list.push(json!({"id": 91, "name": "外部子", "parentid": 90, "order": 1}));
    }
    all
}

fn users() -> HashMap<i64, Value> {
    HashMap::from([
        (
            1,
            json!([{"userid": "boss", "name": "老板", "department": [1], "order": [0],
                    "is_leader_in_dept": [1], "main_department": 1, "status": 1,
                    "gender": 1, "mobile": "13800000000"}]),
        ),
        (
            2,
            json!([{"userid": "ZhangSan", "name": "张三", "department": [2, 3, 90],
                    "order": [3000000000u32, 2, 5], "is_leader_in_dept": [0, 1, 0],
                    "main_department": 90, "direct_leader": ["boss"], "gender": "1",
                    "position": "工程师", "extattr": {"attrs": []}, "avatar": "http://x"},
                   {"userid": "lisi", "department": [2]}]),
        ),
        (
            3,
            json!([{"userid": "ZhangSan", "name": "张三", "department": [2, 3, 90],
                    "order": [3000000000u32, 2, 5], "is_leader_in_dept": [0, 1, 0],
                    "main_department": 90}]),
        ),
    ])
}

#[tokio::test]
async fn pulls_the_subtree_and_merges_members() {
    let sim = tenant(departments(), users()).await;
    let client = client(&sim.api_base());
    let mut seen = Vec::new();
    let pulled = pull(&client, 1, None, 4, |p| seen.push(p)).await.unwrap();
    let snapshot = &pulled.snapshot;

    assert_eq!(
        snapshot.departments.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        snapshot.departments[&1],
        Department {
            id: 1,
            name: Some("总部".into()),
            name_en: Some("HQ".into()),
            parent_id: Some(0),
            order: Some(100_000_000),
            leaders: Some(vec!["boss".into()]),
        }
    );
    assert_eq!(snapshot.departments[&2].order, Some(4_294_967_295));
    assert_eq!(snapshot.departments[&2].name_en, None);
    assert_eq!(snapshot.departments[&2].leaders, None);

    assert_eq!(
        snapshot.members.keys().collect::<Vec<_>>(),
        ["boss", "lisi", "zhangsan"]
    );
    let zhangsan = &snapshot.members["zhangsan"];
    // Listed first under department 2, as "ZhangSan".
    assert_eq!(zhangsan.userid, "ZhangSan");
    assert_eq!(
        zhangsan.departments,
        Some(vec![
            Membership {
                id: 2,
                order: 3_000_000_000,
                is_leader: false
            },
            Membership {
                id: 3,
                order: 2,
                is_leader: true
            },
        ])
    );
    assert_eq!(zhangsan.main_department, Some(90), "kept as WeCom sent it");
    assert_eq!(zhangsan.direct_leaders, Some(vec!["boss".into()]));
    assert_eq!(zhangsan.gender.as_deref(), Some("1"));
    assert_eq!(zhangsan.extattr, Some(json!({"attrs": []}).into()));
    assert_eq!(zhangsan.mobile, None, "withheld stays unknown");

    let boss = &snapshot.members["boss"];
    assert_eq!(
        boss.gender.as_deref(),
        Some("1"),
        "a number becomes its string"
    );
    assert_eq!(boss.mobile.as_deref(), Some("13800000000"));
    assert_eq!(boss.status, Some(1));

    let lisi = &snapshot.members["lisi"];
    assert_eq!(
        lisi.departments, None,
        "no order/is_leader_in_dept: unknown"
    );
    assert_eq!(lisi.name, None);

    let list = requests(&sim, Endpoint::DepartmentList);
    assert_eq!(list.len(), 1);
    assert!(
        !list[0].query.contains_key("id"),
        "everything visible is asked for without an id"
    );
    let mut listed: Vec<_> = requests(&sim, Endpoint::UserList)
        .iter()
        .map(|h| id(h, "department_id"))
        .collect();
    listed.sort();
    assert_eq!(listed, [1, 2, 3], "one call per mirrored department");
    let hits = sim.requests();
    assert!(hits.iter().all(|h| !h.query.contains_key("fetch_child")));

    let stats = &pulled.stats;
    assert_eq!((stats.departments, stats.members), (3, 3));
    assert_eq!(stats.members_with_unknown_departments, 1);
    assert_eq!(stats.ignored_departments, 0);
    assert_eq!(stats.ignored_memberships, 1, "ZhangSan's department 90");
    assert_eq!(stats.calls.calls["gettoken"], 1);
    assert_eq!(stats.calls.calls["department/list"], 1);
    assert_eq!(stats.calls.calls["user/list"], 3);
    assert_eq!(stats.final_concurrency, 4);

    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen.last(),
        Some(&Progress {
            departments_done: 3,
            departments_total: 3,
            members: 3
        })
    );
}

/// The tenant of `departments()` and `users()` as the simulator's own directory: ZhangSan in
/// departments 2 and 3.
fn directory() -> Directory {
    let mut directory = sim::directory();
    directory.departments[0].name = "总部".into();
    directory.departments[0].department_leader = vec!["boss".into()];
    directory.departments.extend([
        SimDepartment::new(2, "研发", 1),
        SimDepartment::new(3, "平台", 2),
    ]);
    directory.users.extend([
        SimUser::new("boss", "老板", &[1]),
        SimUser::new("ZhangSan", "张三", &[2, 3]),
        SimUser::new("lisi", "", &[2]),
    ]);
    directory
}

#[tokio::test]
async fn merge_does_not_depend_on_which_call_finishes_first() {
    // Department 2 answers last, yet its spelling wins: it comes first in WeCom's order.
    let sim = sim::start(directory()).await;
    sim.inject(
        Fault::Delay(Duration::from_millis(50))
            .on(Endpoint::UserList)
            .department(2),
    );
    let pulled = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap();
    assert_eq!(pulled.snapshot.members["zhangsan"].userid, "ZhangSan");
}

#[tokio::test]
async fn misaligned_arrays_leave_departments_unknown() {
    let users = HashMap::from([(
        1,
        json!([
            {"userid": "a", "department": [1, 2], "order": [1], "is_leader_in_dept": [0, 0]},
            {"userid": "b", "department": [1], "order": [1]},
            {"userid": "c"},
            {"userid": "d", "department": [1], "order": [7], "is_leader_in_dept": [1]}
        ]),
    )]);
    let sim = tenant(json!([{"id": 1, "parentid": 0}]), users).await;
    let pulled = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap();
    let members = &pulled.snapshot.members;
    for userid in ["a", "b", "c"] {
        assert_eq!(members[userid].departments, None, "{userid}");
    }
    assert_eq!(
        members["d"].departments,
        Some(vec![Membership {
            id: 1,
            order: 7,
            is_leader: true
        }])
    );
    assert_eq!(pulled.stats.members_with_unknown_departments, 3);
}

/// How many departments the pulled member `userid` is in, if it has its departments.
fn memberships(pulled: &crate::wecom::Pull, userid: &str) -> Option<usize> {
    pulled.snapshot.members[userid]
        .departments
        .as_ref()
        .map(Vec::len)
}

/// The ids of the departments a pull mirrors, in order.
fn department_ids(pulled: &crate::wecom::Pull) -> Vec<i64> {
    pulled.snapshot.departments.keys().copied().collect()
}

#[tokio::test]
async fn a_subtree_root_mirrors_only_its_descendants() {
    // A server that ignored `id` would send departments outside the subtree too.
    let sim = tenant(two_subtrees(), users()).await;
    let pulled = pull(&client(&sim.api_base()), 2, None, 4, |_| {})
        .await
        .unwrap();
    assert_eq!(department_ids(&pulled), [2, 3]);
    assert_eq!(memberships(&pulled, "zhangsan"), Some(2));
    assert!(!pulled.snapshot.members.contains_key("boss"));
    assert_eq!(pulled.stats.ignored_departments, 3, "1, 90 and 91");
    assert_eq!(id(&sim.requests()[1], "id"), 2);
}

#[tokio::test]
async fn several_visible_subtrees_are_all_mirrored_under_the_default_root() {
    let mut users = users();
    users.insert(
        90,
        json!([{"userid": "wangwu", "department": [90], "order": [1], "is_leader_in_dept": [0]}]),
    );
    users.insert(91, json!([]));
    let sim = tenant(two_subtrees(), users).await;
    let pulled = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap();
    assert_eq!(department_ids(&pulled), [1, 2, 3, 90, 91]);
    assert_eq!(pulled.snapshot.departments[&90].parent_id, Some(80));
    assert!(pulled.snapshot.members.contains_key("wangwu"));
    assert_eq!(memberships(&pulled, "zhangsan"), Some(3));
    assert_eq!(pulled.stats.ignored_memberships, 0);
}

#[tokio::test]
async fn answers_that_do_not_add_up_fail_the_pull() {
    let cases = [
        (
            json!([{"id": 1, "parentid": 0}, {"id": 7, "parentid": 7}]),
            "departments form a cycle through their parentids: 7 → 7",
        ),
        (
            json!([{"id": 1, "parentid": 0}, {"id": 1, "parentid": 0}]),
            "department 1 is listed twice",
        ),
    ];
    for (departments, message) in cases {
        let sim = tenant(departments, users()).await;
        let err = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), "inconsistent_pull", "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }

    let mut twins = users();
    twins.insert(
        3,
        json!([{"userid": "zhangsan", "department": [3], "order": [1], "is_leader_in_dept": [0]}]),
    );
    let sim = tenant(departments(), twins).await;
    let err = pull(&client(&sim.api_base()), 1, None, 1, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), "inconsistent_pull", "{err}");
    assert!(err.to_string().contains("differ only in case"), "{err}");

    let mut empty = users();
    empty.insert(3, json!([{"userid": ""}]));
    let sim = tenant(departments(), empty).await;
    let err = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty userid"), "{err}");
}

#[tokio::test]
async fn one_failed_department_fails_the_whole_pull() {
    let mut users = users();
    users.remove(&3);
    let sim = tenant(departments(), users).await;
    let err = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), "wecom_errcode");
    assert!(
        err.to_string()
            .starts_with("user/list (department 3): WeCom errcode 60003"),
        "{err}"
    );

    let mut users = self::users();
    users.remove(&2);
    let sim = tenant(departments(), users).await;
    sim.inject(always(
        Fault::HttpStatus(503).on(Endpoint::UserList).department(2),
    ));
    let err = pull(&client(&sim.api_base()), 1, None, 1, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), "transport");
    assert!(
        err.to_string().contains("user/list (department 2)"),
        "{err}"
    );
}

#[tokio::test]
async fn root_outside_the_visible_range_fails() {
    let sim = tenant(departments(), users()).await;
    let err = pull(&client(&sim.api_base()), 7, None, 4, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::RootNotVisible { root: 7 }),
        "{err}"
    );
    assert_eq!(err.code(), "root_not_visible");
    assert_eq!(sim.calls().get(Endpoint::UserList), 0);

    let sim = tenant(json!([]), users()).await;
    let err = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), "no_departments");

    let sim = sim::start(directory()).await;
    for endpoint in [Endpoint::DepartmentList, Endpoint::UserList] {
        sim.inject(always(Fault::Errcode(60011).on(endpoint)));
    }
    let err = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), sim.calls().get(Endpoint::DepartmentList)),
        ("wecom_errcode", 1)
    );
    assert!(err.to_string().contains("visible range"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_is_bounded() {
    let sim = flat_tenant(40).await;
    let pulled = pull(&client(&sim.api_base()), 1, None, 3, |_| {})
        .await
        .unwrap();
    assert_eq!(pulled.snapshot.members.len(), 40);
    let max = requests(&sim, Endpoint::UserList)
        .iter()
        .map(|h| h.in_flight)
        .max();
    assert_eq!(max, Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limit_lowers_concurrency() {
    let sim = flat_tenant(60).await;
    sim.inject(Fault::Errcode(45033).on(Endpoint::UserList));
    let pulled = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap();
    assert_eq!(pulled.snapshot.members.len(), 60);
    assert_eq!(pulled.stats.final_concurrency, 3);
    assert_eq!(pulled.stats.calls.concurrency_limited, 1);
    let in_flight: Vec<_> = requests(&sim, Endpoint::UserList)
        .iter()
        .map(|h| h.in_flight)
        .collect();
    assert_eq!(in_flight.len(), 61);
    // The first dozen requests span the change; after them at most 3 are in flight.
    assert!(in_flight[12..].iter().all(|&n| n <= 3), "{in_flight:?}");
}

/// 5,000 departments and 100,000 members (a fifth of them in two departments), served from
/// memory. `cargo test --release -- --ignored --nocapture pull_at_scale`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run in release"]
async fn pull_at_scale() {
    const DEPARTMENTS: u32 = 5_000;
    const MEMBERS: u32 = 100_000;
    let mut directory = sim::directory();
    directory.departments = (1..=DEPARTMENTS)
        .map(|id| {
            let parent = if id == 1 { 0 } else { (id - 2) / 50 + 1 };
            let mut department = SimDepartment::new(id, format!("部门{id}"), parent);
            department.order = id;
            // User{id - 1} lives in department id.
            department.department_leader = vec![format!("User{}", id - 1)];
            department
        })
        .collect();
    directory.users = (0..MEMBERS)
        .map(|n| {
            let home = n % DEPARTMENTS + 1;
            let mut depts = vec![home];
            if n % 5 == 0 {
                depts.push((home + 7) % DEPARTMENTS + 1);
            }
            let mut user = SimUser::new(format!("User{n}"), format!("成员{n}"), &depts);
            user.position = "工程师".into();
            user.order = vec![n; depts.len()];
            user.telephone = "010-12345678".into();
            user.direct_leader = vec![format!("User{}", home - 1)];
            user.extattr = ExtAttr {
                attrs: vec![ExtAttrItem::text("工号", format!("{n:06}"))],
            };
            user
        })
        .collect();
    let sim = sim::start(directory).await;
    let client = client(&sim.api_base());
    let started = std::time::Instant::now();
    let pulled = pull(&client, 1, None, 4, |_| {}).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(pulled.snapshot.departments.len(), DEPARTMENTS as usize);
    assert_eq!(pulled.snapshot.members.len(), MEMBERS as usize);
    assert_eq!(pulled.stats.calls.calls["user/list"], DEPARTMENTS as u64);
    println!(
        "pulled {DEPARTMENTS} departments, {MEMBERS} members in {elapsed:?}: {:?}",
        pulled.stats
    );
}

#[tokio::test]
async fn a_top_department_sent_without_parentid_is_mirrored_with_parent_0() {
    let mut listed = departments();
    listed[0].as_object_mut().unwrap().remove("parentid");
    let sim = tenant(listed, users()).await;
    let pulled = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap();
    assert_eq!(pulled.snapshot.departments[&1].parent_id, Some(0));
    assert_eq!(pulled.snapshot.departments.len(), 3);
}

/// The app's AgentId in the simulated tenant (its default).
const AGENT_ID: i64 = 1_000_002;

/// [`directory`] with department 4 outside the app's visible range (departments 2 and 3),
/// which names boss (in 1), wangwu (in 4) and ZhangSan (listed anyway, spelled otherwise)
/// individually, and a userid the directory does not have.
fn named_individually() -> Directory {
    let mut directory = directory();
    directory.departments.push(SimDepartment::new(4, "外部", 1));
    let mut wangwu = SimUser::new("wangwu", "王五", &[4]);
    wangwu.position = "顾问".into();
    directory.users.push(wangwu);
    directory.visible_departments = vec![2];
    directory.visible_users = ["boss", "ZHANGSAN", "wangwu", "ghost"]
        .map(String::from)
        .into();
    directory
}

fn userids(pulled: &crate::wecom::Pull) -> Vec<&str> {
    let members = pulled.snapshot.members.values();
    members.map(|m| m.userid.as_str()).collect()
}

#[tokio::test]
async fn without_an_agent_id_members_named_in_the_visible_range_are_not_asked_for() {
    let sim = sim::start(named_individually()).await;
    let pulled = pull(&client(&sim.api_base()), 1, None, 4, |_| {})
        .await
        .unwrap();
    assert_eq!(userids(&pulled), ["lisi", "ZhangSan"]);
    let calls = sim.calls();
    assert_eq!(
        (calls.get(Endpoint::AgentGet), calls.get(Endpoint::UserGet)),
        (0, 0)
    );
    assert_eq!(calls.total(), 4, "gettoken, department/list, 2 user/list");
    assert_eq!(
        (pulled.stats.named_members, pulled.stats.ignored_members),
        (0, 0)
    );
}

#[tokio::test]
async fn with_an_agent_id_members_named_in_the_visible_range_are_mirrored() {
    let sim = sim::start(named_individually()).await;
    let pulled = pull(&client(&sim.api_base()), 1, Some(AGENT_ID), 4, |_| {})
        .await
        .unwrap();
    assert_eq!(userids(&pulled), ["boss", "lisi", "wangwu", "ZhangSan"]);
    // The app sees them, not their departments: mirrored with no membership.
    let wangwu = &pulled.snapshot.members["wangwu"];
    assert_eq!(wangwu.departments, Some(vec![]));
    assert_eq!(wangwu.main_department, None);
    assert_eq!(wangwu.position.as_deref(), Some("顾问"));
    assert_eq!(
        pulled.snapshot.departments.len(),
        2,
        "departments as before"
    );

    let agent = requests(&sim, Endpoint::AgentGet);
    assert_eq!(agent.len(), 1);
    assert_eq!(id(&agent[0], "agentid"), AGENT_ID);
    // ZhangSan, listed by user/list, is not asked for again.
    let mut asked: Vec<String> = requests(&sim, Endpoint::UserGet)
        .iter()
        .map(|r| r.query["userid"].clone())
        .collect();
    asked.sort();
    assert_eq!(asked, ["boss", "wangwu"]);
    let stats = &pulled.stats;
    assert_eq!((stats.named_members, stats.ignored_members), (2, 0));
    assert_eq!(stats.calls.calls["agent/get"], 1);
    assert_eq!(stats.calls.calls["user/get"], 2);
    assert_eq!(stats.calls.calls["user/list"], 2);
}

#[tokio::test]
async fn another_root_mirrors_a_named_member_only_with_a_membership_in_its_subtree() {
    let mut directory = named_individually();
    directory.visible_departments = vec![1];
    let sim = sim::start(directory).await;
    // boss is in 1, wangwu in 4: neither is in 2's subtree. With one call in flight boss is
    // asked first (agent/get lists him first), and gets an answer written as if he had just
    // joined department 3 too.
    sim.inject(
        sim::ok(
            json!({"userid": "boss", "department": [1, 3], "order": [0, 7],
                       "is_leader_in_dept": [1, 0]}),
        )
        .on(Endpoint::UserGet),
    );
    let pulled = pull(&client(&sim.api_base()), 2, Some(AGENT_ID), 1, |_| {})
        .await
        .unwrap();
    let asked: Vec<String> = requests(&sim, Endpoint::UserGet)
        .iter()
        .map(|r| r.query["userid"].clone())
        .collect();
    assert_eq!(asked, ["boss", "wangwu"]);
    assert_eq!(userids(&pulled), ["boss", "lisi", "ZhangSan"]);
    assert_eq!(
        pulled.snapshot.members["boss"].departments,
        Some(vec![Membership {
            id: 3,
            order: 7,
            is_leader: false
        }])
    );
    let stats = &pulled.stats;
    assert_eq!(
        (stats.named_members, stats.ignored_members),
        (2, 1),
        "wangwu"
    );
    assert_eq!(stats.ignored_memberships, 1, "boss's department 1");
}

#[tokio::test]
async fn a_named_member_gone_or_out_of_range_by_user_get_is_counted_not_mirrored() {
    for errcode in [60111, 40003, 60011, 60021, 50002] {
        let sim = sim::start(named_individually()).await;
        sim.inject(Fault::Errcode(errcode).on(Endpoint::UserGet));
        let pulled = pull(&client(&sim.api_base()), 1, Some(AGENT_ID), 1, |_| {})
            .await
            .unwrap();
        assert_eq!(
            userids(&pulled),
            ["lisi", "wangwu", "ZhangSan"],
            "{errcode}: boss, asked first, is left out"
        );
        let stats = &pulled.stats;
        assert_eq!(
            (stats.named_members, stats.ignored_members),
            (1, 1),
            "{errcode}"
        );
    }
}

#[tokio::test]
async fn any_other_failure_of_agent_get_or_user_get_fails_the_pull() {
    // The agentid of another app: the message names the key to fix.
    let sim = sim::start(named_individually()).await;
    let err = pull(&client(&sim.api_base()), 1, Some(1_000_003), 4, |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), "wecom_errcode");
    let message = err.to_string();
    assert!(
        message.starts_with(
            "agent/get (wecom.agent_id 1000003): WeCom errcode 40056 (invalid agentid"
        ),
        "{message}"
    );
    assert!(
        message.contains("set wecom.agent_id to the AgentId"),
        "{message}"
    );
    assert_eq!(sim.calls().get(Endpoint::UserGet), 0);

    let failing = [
        (
            Fault::Errcode(48002).on(Endpoint::AgentGet),
            "wecom_errcode",
            "agent/get",
        ),
        (
            sim::ok(json!({})).on(Endpoint::AgentGet),
            "malformed_response",
            "agent/get",
        ),
        (
            Fault::Errcode(60020).on(Endpoint::UserGet),
            "wecom_errcode",
            "user/get",
        ),
        (
            always(Fault::HttpStatus(502).on(Endpoint::UserGet)),
            "transport",
            "user/get",
        ),
        (
            sim::ok(json!({"userid": "someone_else", "department": []})).on(Endpoint::UserGet),
            "inconsistent_pull",
            "user/get for \"boss\" answered the member \"someone_else\"",
        ),
    ];
    for (fault, code, what) in failing {
        let sim = sim::start(named_individually()).await;
        sim.inject(fault);
        let err = pull(&client(&sim.api_base()), 1, Some(AGENT_ID), 1, |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn named_members_are_read_with_bounded_concurrency() {
    // Department 2 is a second top, outside the visible range (department 1's subtree); its
    // 30 members are named individually.
    let mut directory = sim::directory();
    directory.departments.push(SimDepartment::new(2, "外部", 0));
    directory
        .users
        .extend((0..30).map(|n| SimUser::new(format!("u{n}"), "", &[2])));
    directory.visible_users = (0..30).map(|n| format!("u{n}")).collect();
    directory.latency_ms = 5;
    let sim = sim::start(directory).await;
    let pulled = pull(&client(&sim.api_base()), 1, Some(AGENT_ID), 3, |_| {})
        .await
        .unwrap();
    assert_eq!(pulled.stats.named_members, 30);
    assert_eq!(pulled.snapshot.members.len(), 30);
    let max = requests(&sim, Endpoint::UserGet)
        .iter()
        .map(|r| r.in_flight)
        .max();
    assert_eq!(max, Some(3));
}

/// A callback run, or a full run asking about a member missing from its pull, reads the member
/// again with `user/get`: one the visible range names individually is kept where a full pull
/// mirrors them, and dropped where it does not.
#[tokio::test]
async fn a_reread_keeps_a_named_member_where_the_pull_mirrors_them() {
    let sim = sim::start(named_individually()).await;
    let client = client(&sim.api_base());
    let wangwu = BTreeSet::from(["wangwu".to_owned()]);

    let mirror = pull(&client, 1, Some(AGENT_ID), 4, |_| {})
        .await
        .unwrap()
        .snapshot;
    let (reread, report) = targeted::reread(&client, mirror.clone(), &wangwu, reach(1), 4)
        .await
        .unwrap();
    assert_eq!(reread.members["wangwu"], mirror.members["wangwu"]);
    assert!(report.deleted.is_empty() && report.out_of_range.is_empty());
    // Whether WeCom lists such a member's departments outside the visible range or leaves
    // them out is not documented: listed, the member is kept all the same.
    sim.inject(
        sim::ok(
            json!({"userid": "wangwu", "name": "王五", "position": "顾问",
        "department": [4], "order": [0], "is_leader_in_dept": [0]}),
        )
        .on(Endpoint::UserGet),
    );
    let (reread, _) = targeted::reread(&client, mirror.clone(), &wangwu, reach(1), 4)
        .await
        .unwrap();
    assert_eq!(reread.members["wangwu"].departments, Some(vec![]));

    let mirror = pull(&client, 2, Some(AGENT_ID), 4, |_| {})
        .await
        .unwrap()
        .snapshot;
    assert!(!mirror.members.contains_key("wangwu"));
    let (reread, report) = targeted::reread(&client, mirror, &wangwu, reach(2), 4)
        .await
        .unwrap();
    assert!(!reread.members.contains_key("wangwu"), "not in 2's subtree");
    assert!(report.deleted.is_empty() && report.out_of_range.is_empty());
}
