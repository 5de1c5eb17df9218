//! `orgsync sync --dry-run --dump-pull FILE`: a pull written in the simulator's directory format
//! serves back the same directory, so a capture from a real corp becomes a fixture.

use std::os::unix::fs::PermissionsExt;

use orgsync_simulator::Directory;
use serde_json::Value;

use crate::harness::{describe, Env};

/// The members of every `member.joined` event of a first sync, by userid.
async fn first_sync_members(env: &Env) -> Vec<(String, Value)> {
    env.sync().await;
    let mut members: Vec<(String, Value)> = env
        .events_since(0)
        .await
        .into_iter()
        .filter(|e| e["type"] == "orgsync.member.joined")
        .map(|e| {
            (
                e["data"]["userid"].as_str().unwrap().to_owned(),
                e["data"]["member"].clone(),
            )
        })
        .collect();
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members
}

#[tokio::test]
async fn a_dumped_pull_served_back_mirrors_the_same_directory() {
    let env = Env::new(Directory::sample()).await;
    let dump = env.path("pull.json");
    let out = env
        .run(&["sync", "--dry-run", "--dump-pull", dump.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!env.store_path().exists(), "a dry run writes no store");
    let mode = std::fs::metadata(&dump).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the dump holds personal data");
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(
        !text.contains(&env.sim.directory().corp_secret),
        "the secret was written"
    );

    let replayed = Env::new(Directory::load(&dump).expect("the dump loads")).await;
    assert_eq!(
        first_sync_members(&replayed).await,
        first_sync_members(&env).await
    );
}
