//! The pipeline end to end, through the real `orgsync` binary against the simulated WeCom:
//! first sync, incremental syncs, the daemon's signals, and subscribers over the socket.

use std::collections::HashSet;

use crate::harness::{
    self, assert_contains_all, describe, kinds, move_to, success_stdout, types, user, Env,
};
use orgsync_simulator::{Directory, SimDepartment, SimUser};
use serde_json::json;

#[tokio::test]
async fn first_sync_emits_departments_parents_first_then_members_then_completed() {
    let env = Env::synced_sample().await;
    let events = env.events_since(0).await;
    let directory = env.sim.directory();

    let departments = directory.departments.len();
    let members = directory.users.len();
    assert_eq!(events.len(), departments + members + 1);
    assert!(types(&events[..departments])
        .iter()
        .all(|t| *t == "orgsync.department.created"));
    assert!(types(&events[departments..departments + members])
        .iter()
        .all(|t| *t == "orgsync.member.joined"));
    assert_eq!(events[events.len() - 1]["type"], "orgsync.sync.completed");
    assert_eq!(events[events.len() - 1]["data"]["trigger"], "cli");

    // Parents before children.
    let mut created = HashSet::new();
    for event in &events[..departments] {
        let department = &event["data"]["department"];
        let parent = department["parent_id"].as_i64().expect("parent_id");
        assert!(
            parent == 0 || created.contains(&parent),
            "department {} created before its parent {parent}",
            department["id"]
        );
        created.insert(department["id"].as_i64().expect("id"));
    }
    // One join per member, as WeCom spells the userid.
    let joined: HashSet<&str> = events[departments..departments + members]
        .iter()
        .map(|e| e["data"]["userid"].as_str().expect("userid"))
        .collect();
    let expected: HashSet<&str> = directory.users.iter().map(|u| u.userid.as_str()).collect();
    assert_eq!(joined, expected);

    // Every event is a CloudEvent with contiguous seqs and the run's id.
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["seq"], json!(index as i64 + 1));
        assert_eq!(
            event["id"],
            json!(format!("{}:{}", directory.corp_id, index + 1))
        );
        assert_eq!(event["syncrun"], "1");
        assert!(event["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}

/// A promotion, a move, a departure, a hire, a new, a renamed and a removed department.
fn reorganize(directory: &mut Directory) {
    user(directory, "wangfang").position = "高级后端工程师".into();
    for id in ["chenjing", "liuyang"] {
        move_to(user(directory, id), 3, 0);
    }
    move_to(user(directory, "yangjie"), 3, 4_000_000_000);
    directory.users.retain(|u| u.userid != "huangmin");
    directory.departments.retain(|d| d.id != 4);
    directory
        .departments
        .push(SimDepartment::new(7, "测试组", 2));
    directory.users.push(SimUser::new("sunli", "孙丽", &[7]));
    let i = directory
        .departments
        .iter()
        .position(|d| d.id == 6)
        .expect("sample has department 6");
    directory.departments[i].name = "人力资源部".into();
}

#[tokio::test]
async fn second_sync_emits_exactly_the_changes_and_a_third_only_completed() {
    let env = Env::synced_sample().await;
    let head = env.events_since(0).await.len() as i64;

    env.sim.edit(reorganize);
    env.sync().await;
    let events = env.events_since(head).await;
    let expected = [
        ("orgsync.department.created", "department/7"),
        ("orgsync.department.updated", "department/6"),
        ("orgsync.member.joined", "member/sunli"),
        ("orgsync.member.updated", "member/chenjing"),
        ("orgsync.member.updated", "member/liuyang"),
        ("orgsync.member.updated", "member/wangfang"),
        ("orgsync.member.updated", "member/yangjie"),
        ("orgsync.member.left", "member/huangmin"),
        ("orgsync.department.deleted", "department/4"),
        ("orgsync.sync.completed", "run/2"),
    ]
    .map(|(t, s)| (t.to_owned(), s.to_owned()));
    assert_eq!(kinds(&events), expected);

    let changed = |subject: &str| -> Vec<String> {
        let event = events
            .iter()
            .find(|e| e["subject"] == subject)
            .expect("event present");
        let mut fields: Vec<String> = event["data"]["changes"]
            .as_object()
            .expect("changes")
            .keys()
            .cloned()
            .collect();
        fields.sort();
        fields
    };
    assert_eq!(changed("department/6"), ["name"]);
    assert_eq!(changed("member/wangfang"), ["position"]);
    assert_eq!(
        changed("member/chenjing"),
        ["departments", "main_department"]
    );
    assert_eq!(changed("member/yangjie"), ["departments"]);
    let wangfang = events
        .iter()
        .find(|e| e["subject"] == "member/wangfang")
        .expect("present");
    assert_eq!(
        wangfang["data"]["changes"]["position"],
        json!({"old": "后端工程师", "new": "高级后端工程师"})
    );
    // The last known state of whoever left.
    let left = &events[7]["data"]["member"];
    assert_eq!(left["name"], "黄敏");
    assert_eq!(events[9]["data"]["counts"]["members_left"], 1);

    // Nothing changed since: only the completion.
    let head = head + events.len() as i64;
    env.sync().await;
    let events = env.events_since(head).await;
    assert_eq!(types(&events), ["orgsync.sync.completed"]);
    assert_eq!(events[0]["data"]["counts"]["members_joined"], 0);
}

#[tokio::test]
async fn daemon_syncs_at_startup_on_sigusr1_and_exits_zero_on_sigterm() {
    let env = Env::new(Directory::sample()).await;
    let daemon = env.start_daemon().await;
    let mut subscriber = env.subscribe(json!({"op": "subscribe", "since": 0})).await;
    assert_eq!(subscriber.reply["ok"], true, "{}", subscriber.reply);

    let startup = subscriber.run_events().await;
    let last = startup.last().expect("events");
    assert_eq!(last["type"], "orgsync.sync.completed");
    assert_eq!(last["data"]["trigger"], "startup");

    env.sim.edit(|d| d.users.retain(|u| u.userid != "zhuxin"));
    daemon.signal(libc::SIGUSR1);
    let run = subscriber.run_events().await;
    assert_eq!(
        types(&run),
        ["orgsync.member.left", "orgsync.sync.completed"]
    );
    assert_eq!(run[1]["data"]["trigger"], "signal");

    daemon.stop().await;
    assert!(!env.socket_path().exists(), "the socket file is removed");
}

#[tokio::test]
async fn a_subscriber_with_since_gets_every_later_event_in_order_then_live_ones() {
    let env = Env::synced_sample().await;
    env.sim
        .edit(|d| user(d, "lina").position = "后端架构师".into());
    env.sync().await;
    let stored = env.events_since(0).await;
    let since = 10;

    let daemon = env.start_daemon().await;
    let mut subscriber = env
        .subscribe(json!({"op": "subscribe", "since": since}))
        .await;
    assert_eq!(subscriber.reply["head"], json!(stored.len()));
    for expected in &stored[since as usize..] {
        assert_eq!(&subscriber.next().await, expected);
    }

    // Live: a change made now, synced through `orgsync resync`, arrives next.
    env.sim.edit(|d| d.users.retain(|u| u.userid != "zhuxin"));
    let output = env.run(&["resync"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let live = subscriber.run_events().await;
    assert_eq!(
        kinds(&live),
        [
            ("orgsync.member.left".to_owned(), "member/zhuxin".to_owned()),
            ("orgsync.sync.completed".to_owned(), "run/3".to_owned()),
        ]
    );
    assert_eq!(live[0]["seq"], json!(stored.len() + 1));
    assert_eq!(live[1]["data"]["trigger"], "socket");

    daemon.stop().await;
}

#[tokio::test]
async fn a_manual_sync_beside_the_daemon_emits_each_change_once() {
    let env = Env::new(Directory::sample()).await;
    let (daemon, mut subscriber) = env.start_synced_daemon().await;

    env.sim.edit(|d| d.users.retain(|u| u.userid != "gaopeng"));
    // The daemon and a manual sync race for the same change.
    daemon.signal(libc::SIGUSR1);
    env.sync().await;
    let mut runs = [subscriber.run_events().await, subscriber.run_events().await];
    runs.sort_by_key(|run| run.len());
    assert_eq!(types(&runs[0]), ["orgsync.sync.completed"]);
    assert_eq!(
        types(&runs[1]),
        ["orgsync.member.left", "orgsync.sync.completed"]
    );

    daemon.stop().await;
}

#[tokio::test]
async fn demo_exits_zero_and_prints_the_events_of_its_changes() {
    let output = harness::output(harness::orgsync(&["demo"])).await;
    let stdout = success_stdout(&output);
    assert_contains_all(
        &stdout,
        &[
            "orgsync.department.created",
            "orgsync.member.joined",
            "orgsync.member.updated",
            "orgsync.member.left",
            "orgsync.sync.completed",
        ],
    );
    // A new hire reaches the socket through a contact-change callback, without a resync.
    assert!(
        stdout.contains("member/zhouxin") && stdout.contains("without a resync"),
        "{stdout}"
    );
    // It ends with a member opening the host application inside WeCom.
    assert!(
        stdout.contains("the login code resolves to member xuhao and host account 42"),
        "{stdout}"
    );
}

#[tokio::test]
async fn sighup_rejects_a_bad_config_and_applies_a_good_one_then_syncs() {
    let env = Env::new(Directory::sample()).await;
    let (daemon, mut subscriber) = env.start_synced_daemon().await;
    let good = std::fs::read_to_string(&env.config_path).expect("read config");

    // A broken config: rejected, the old one stays, and the sync still runs.
    std::fs::write(
        &env.config_path,
        format!("{good}\n[safety]\nmax_deletes = \"many\"\n"),
    )
    .expect("write config");
    daemon.signal(libc::SIGHUP);
    let run = subscriber.run_events().await;
    assert_eq!(types(&run), ["orgsync.sync.completed"]);
    assert_eq!(run[0]["data"]["trigger"], "signal");

    // A valid config that forbids any departure: in force for the next run.
    std::fs::write(
        &env.config_path,
        format!("{good}\n[safety]\nmax_deletes = 0\nmax_delete_ratio = 0.0\n"),
    )
    .expect("write config");
    env.sim.edit(|d| d.users.retain(|u| u.userid != "zhuxin"));
    daemon.signal(libc::SIGHUP);
    let run = subscriber.run_events().await;
    assert_eq!(types(&run), ["orgsync.sync.held"]);
    assert_eq!(run[0]["data"]["pending"]["members_left"], 1);

    let stderr = daemon.stop().await;
    assert!(
        stderr.contains("config reload rejected") && stderr.contains("safety.max_deletes"),
        "the rejection is logged with the key:\n{stderr}"
    );
}
