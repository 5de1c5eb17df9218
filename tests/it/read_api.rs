//! Host applications read the directory over the socket: a snapshot consistent with a seq, so
//! that listing and then watching from that seq loses and repeats nothing, lookups with clear
//! `not_found` errors, and the store's identity on every position.

use orgsync::model::{Department, Member, Snapshot};
use orgsync_simulator::Directory;
use serde_json::{json, Value};

use crate::harness::{error_code, replay_onto, Client, Daemon, Env};

/// The sample company, synced, with its daemon running.
async fn serving_the_sample() -> (Env, Daemon) {
    let env = Env::synced_sample().await;
    let daemon = env.start_daemon().await;
    (env, daemon)
}

/// Reads a streamed answer's object lines up to its last line.
async fn rest(client: &mut Client, mut lines: Vec<Value>) -> (Vec<Value>, Value) {
    loop {
        let line = client.next().await;
        if line.get("ok").is_some() {
            return (lines, line);
        }
        lines.push(line);
    }
}

fn directory_of(lines: &[Value]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for line in lines {
        if let Some(department) = line.get("department") {
            let department: Department = serde_json::from_value(department.clone()).unwrap();
            snapshot.insert_department(department);
        } else if let Some(member) = line.get("member") {
            let member: Member = serde_json::from_value(member.clone()).unwrap();
            snapshot.insert_member(member);
        }
    }
    snapshot
}

#[tokio::test]
async fn list_then_watch_across_a_concurrent_sync_loses_and_repeats_nothing() {
    let env = Env::new(Directory::generate(11, 250, 5_000)).await;
    env.sync().await;
    let daemon = env.start_daemon().await;
    let mut runs = env
        .subscribe(json!({"op": "subscribe", "types": ["orgsync.sync.*"]}))
        .await;

    let mut lister = Client::connect(&env.socket_path()).await;
    lister.send(&json!({"op": "snapshot"})).await;
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines.push(lister.next().await);
    }
    // The directory changes and a sync commits while the snapshot is being read.
    let changed = env.sim.edit(|d| d.mutate(5, 0.02));
    assert!(
        changed.updated + changed.left + changed.joined > 0,
        "{changed:?}"
    );
    daemon.signal(libc::SIGUSR1);
    let run = runs.run_events().await;
    assert_eq!(run.last().unwrap()["type"], "orgsync.sync.completed");
    let (lines, end) = rest(&mut lister, lines).await;

    assert_eq!(end["op"], "snapshot");
    let listed = directory_of(&lines);
    assert_eq!(end["departments"], listed.departments.len());
    assert_eq!(end["members"], listed.members.len());
    // Parents come before their children.
    let mut seen = std::collections::HashSet::new();
    for department in listed.departments.values() {
        seen.insert(department.id);
    }
    let mut before = std::collections::HashSet::new();
    for line in lines.iter().filter_map(|l| l.get("department")) {
        let parent = line["parent_id"].as_i64().unwrap_or(0);
        assert!(
            !seen.contains(&parent) || before.contains(&parent),
            "{line}"
        );
        before.insert(line["id"].as_i64().unwrap());
    }

    let mut watcher = env
        .subscribe(json!({"op": "subscribe", "since": end["seq"], "store": end["store"]}))
        .await;
    assert_eq!(watcher.reply["store"], end["store"]);
    let events = watcher.run_events().await;
    // The snapshot was read from before the sync committed: its changes follow as events.
    assert!(events.len() > 1, "{events:?}");
    for event in &events {
        if event["type"] == "orgsync.member.joined" {
            let key = event["data"]["userid"].as_str().unwrap().to_lowercase();
            assert!(!listed.members.contains_key(&key), "seen twice: {event}");
        }
    }
    assert_eq!(replay_onto(listed, &events), env.state().mirror);
}

#[tokio::test]
async fn lookups_find_members_departments_and_links_and_say_not_found() {
    let env = Env::synced_sample().await;
    let member = env.sim.directory().users[0].clone();
    let users = env.path("users.csv");
    std::fs::write(&users, format!("id,name\nh-1,{}\n", member.name)).unwrap();
    let out = env
        .run(&["host-users", "import", users.to_str().unwrap()])
        .await;
    assert!(out.status.success());
    let _daemon = env.start_daemon().await;
    let mut client = Client::connect(&env.socket_path()).await;

    let reply = client
        .request(json!({"op": "member.get", "userid": member.userid.to_uppercase()}))
        .await;
    assert_eq!(reply["member"]["userid"], member.userid.as_str(), "{reply}");
    let reply = client
        .request(json!({"op": "member.get", "userid": "nobody"}))
        .await;
    assert_eq!(error_code(&reply), "not_found");

    let reply = client
        .request(json!({"op": "department.get", "id": 3}))
        .await;
    assert_eq!(reply["department"]["id"], 3, "{reply}");
    assert_eq!(reply["path"], json!([3, 2, 1]));
    let reply = client
        .request(json!({"op": "department.get", "id": 999}))
        .await;
    assert_eq!(error_code(&reply), "not_found");

    client
        .send(&json!({"op": "members.list", "department": 2, "descendants": true}))
        .await;
    let (lines, end) = rest(&mut client, Vec::new()).await;
    let expected = env
        .sim
        .directory()
        .users
        .iter()
        .filter(|u| u.department.iter().any(|d| [2, 3, 4].contains(d)))
        .count();
    assert_eq!(lines.len(), expected);
    assert_eq!(end["count"], expected);
    client
        .send(&json!({"op": "members.list", "department": 2}))
        .await;
    let (direct, _) = rest(&mut client, Vec::new()).await;
    assert!(direct.len() < expected);

    let reply = client
        .request(json!({"op": "link.get", "host_user_id": "h-1"}))
        .await;
    assert_eq!(reply["link"]["userid"], member.userid.as_str(), "{reply}");
    let reply = client
        .request(json!({"op": "link.get", "userid": member.userid.to_uppercase()}))
        .await;
    assert_eq!(reply["link"]["host_user_id"], "h-1", "{reply}");
    let reply = client
        .request(json!({"op": "link.get", "host_user_id": "h-2"}))
        .await;
    assert_eq!(error_code(&reply), "not_found");
}

#[tokio::test]
async fn a_snapshot_can_list_one_subtree_and_some_object_types() {
    let (env, _daemon) = serving_the_sample().await;
    let mut client = Client::connect(&env.socket_path()).await;
    client
        .send(&json!({"op": "snapshot", "department": 2, "types": ["department"]}))
        .await;
    let (lines, end) = rest(&mut client, Vec::new()).await;
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["department"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3, 4]);
    assert_eq!(end["members"], 0);
    let reply = client
        .request(json!({"op": "snapshot", "types": ["person"]}))
        .await;
    assert_eq!(error_code(&reply), "bad_request");
}

#[tokio::test]
async fn a_position_from_another_store_is_told_store_changed() {
    let (env, _daemon) = serving_the_sample().await;
    for from_elsewhere in [
        json!({"op": "subscribe", "since": 0, "store": "0123456789abcdef"}),
        json!({"op": "subscribe", "since": env.state().head() + 10}),
    ] {
        let reply = env.subscribe(from_elsewhere).await.reply;
        assert_eq!(error_code(&reply), "store_changed", "{reply}");
    }
}

#[tokio::test]
async fn people_read_the_directory_from_the_command_line_without_secret_or_daemon() {
    let env = Env::synced_sample().await;
    std::fs::remove_file(env.path("secret")).unwrap();
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();

    let out = env.run(&["members", "--json"]).await;
    assert!(out.status.success(), "{}", crate::harness::describe(&out));
    assert_eq!(text(&out).lines().count(), env.sim.directory().users.len());
    let out = env.run(&["members", "--department", "2"]).await;
    assert!(out.status.success());
    assert!(text(&out).lines().count() < env.sim.directory().users.len());

    let userid = env.sim.directory().users[0].userid.clone();
    let out = env.run(&["member", &userid.to_uppercase()]).await;
    let member: Value = serde_json::from_str(&text(&out)).unwrap();
    assert_eq!(member["userid"], userid.as_str());
    let out = env.run(&["member", "nobody"]).await;
    assert_eq!(out.status.code(), Some(1));

    let out = env.run(&["departments"]).await;
    let tree = text(&out);
    let first = tree.lines().next().unwrap();
    assert!(first.starts_with("1 "), "{tree}");
    assert!(
        first.contains(&format!(
            "{} with subdepartments",
            env.sim.directory().users.len()
        )),
        "{tree}"
    );
    assert!(tree.lines().any(|l| l.starts_with("    3 ")), "{tree}");
}
