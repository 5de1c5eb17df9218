//! The deletion guard (issue #3, item 2) through the real binary: a run that would make too
//! many members leave, or that pulled no members at all, is held with nothing applied;
//! `orgsync status` shows it and exits non-zero, `--dry-run` lists every change member by
//! member, and `--force` applies it. Also the scope change peers got wrong: the app's visible
//! range narrowed.

use crate::harness::{
    assert_contains_all, describe, error_line, success_stdout, types, user, Env, StoreState,
};
use orgsync_simulator::{Directory, Endpoint, Fault, SimUser};
use serde_json::{json, Value};

/// Three leave, one joins, one is promoted, one moves.
fn reorganize(directory: &mut Directory) {
    directory
        .users
        .retain(|u| !["huangmin", "gaopeng", "wuxiuying"].contains(&u.userid.as_str()));
    directory.users.push(SimUser::new("sunli", "孙丽", &[3]));
    user(directory, "wangfang").position = "高级后端工程师".into();
    let chenjing = user(directory, "chenjing");
    chenjing.department = vec![3];
    chenjing.main_department = 3;
}

/// Asserts a held `orgsync sync`: exit status 3, the stderr line, the mirror unchanged and one
/// `orgsync.sync.held` event; returns that event's data.
fn assert_held(before: &StoreState, env: &Env, output: &std::process::Output) -> Value {
    assert_eq!(output.status.code(), Some(3), "{}", describe(output));
    let line = error_line(output);
    assert!(
        line.starts_with("orgsync: sync held by the deletion guard: run "),
        "{line}"
    );
    let after = env.state();
    assert_eq!(after.mirror, before.mirror, "a held run changed the mirror");
    let new = &after.event_values()[before.events.len()..];
    assert_eq!(types(new), ["orgsync.sync.held"], "{new:?}");
    let data = new[0]["data"].clone();
    let reason = data["reason"].as_str().expect("a reason");
    assert!(line.ends_with(reason), "{line}\n{reason}");
    let run: i64 = data["run"].as_str().expect("run").parse().expect("numeric");
    assert_eq!(after.outcome(run), Some("held"));
    data
}

/// The sample, synced with `config` appended to the generated one, then changed by `change`:
/// the next `orgsync sync` is held (see [`assert_held`]). Returns the held event's data.
async fn held_sync(config: &str, change: impl FnOnce(&mut Directory)) -> (Env, Value) {
    let env = Env::with_config(Directory::sample(), config).await;
    env.sync().await;
    let before = env.state();
    env.sim.edit(change);
    let output = env.run(&["sync"]).await;
    let held = assert_held(&before, &env, &output);
    (env, held)
}

#[tokio::test]
async fn too_many_leavers_are_held_shown_listed_and_applied_only_by_force() {
    let (env, held) = held_sync(
        "[safety]\nmax_deletes = 2\nmax_delete_ratio = 1.0\n",
        reorganize,
    )
    .await;
    assert_eq!(
        held["reason"],
        "3 members would leave, more than safety.max_deletes = 2; review with \
         `orgsync sync --dry-run`, then run `orgsync sync --force` to apply"
    );
    assert_eq!(held["pending"]["members_left"], 3);
    assert_eq!(held["pending"]["members_joined"], 1);
    assert_eq!(held["hold"]["code"], "too_many_deletes");

    let (code, text, json) = env.status().await;
    assert_eq!(code, Some(3), "status exits non-zero on a held run");
    assert!(text.contains("HELD:       3 members would leave"), "{text}");
    assert_eq!(json["held"]["pending"]["members_left"], 3);

    // --dry-run: member by member, and nothing written.
    let before_dry = env.state();
    let output = env.run(&["sync", "--dry-run"]).await;
    let report = success_stdout(&output);
    assert_contains_all(
        &report,
        &[
            "+ join   sunli 孙丽 (departments 3)",
            "~ change wangfang 王芳: position \"后端工程师\" -> \"高级后端工程师\"",
            "> move   chenjing 陈静: departments",
            "- leave  gaopeng 高鹏",
            "- leave  huangmin 黄敏",
            "- leave  wuxiuying 吴秀英",
            "Would apply: 1 join, ",
            "The deletion guard would HOLD this run: 3 members would leave",
        ],
    );
    assert_eq!(env.state(), before_dry, "--dry-run wrote to the store");

    // --force applies exactly the held changes.
    let output = env.run(&["sync", "--force"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let state = env.state();
    let events = &state.event_values()[before_dry.events.len()..];
    let left: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "orgsync.member.left")
        .map(|e| e["data"]["userid"].as_str().expect("userid"))
        .collect();
    assert_eq!(left, ["gaopeng", "huangmin", "wuxiuying"]);
    let joined: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "orgsync.member.joined")
        .collect();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["subject"], "member/sunli");
    assert_eq!(state.replayed(), state.mirror);
    assert_eq!(state.mirror.members.len(), 13);
    let (code, text, _) = env.status().await;
    assert_eq!(code, Some(0), "{text}");

    // Nothing left to do.
    env.assert_nothing_to_sync().await;
}

#[tokio::test]
async fn too_large_a_fraction_of_leavers_is_held() {
    // Four of fifteen is 27%, over the default 20%, and far under max_deletes = 500.
    let (_, held) = held_sync("", |d| {
        d.users.retain(|u| {
            !["huangmin", "gaopeng", "wuxiuying", "zhuxin"].contains(&u.userid.as_str())
        })
    })
    .await;
    assert_eq!(
        held["reason"],
        "4 of 15 members would leave, more than safety.max_delete_ratio = 0.2; review with \
         `orgsync sync --dry-run`, then run `orgsync sync --force` to apply"
    );
    assert_eq!(held["pending"]["members_left"], 4);
}

#[tokio::test]
async fn an_empty_pull_is_held_even_where_the_limits_would_allow_it() {
    let (_, held) = held_sync(
        "[safety]\nmax_deletes = 1000\nmax_delete_ratio = 1.0\n",
        |d| d.users.clear(),
    )
    .await;
    assert_eq!(held["hold"], json!({"code": "empty_pull", "mirrored": 15}));
    assert!(
        held["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("WeCom returned no members while the mirror has 15")),
        "{held}"
    );
}

#[tokio::test]
async fn a_narrowed_visible_range_is_held_and_rerooting_into_it_is_held_too() {
    let env = Env::synced_sample().await;
    let before = env.state();

    // The admin narrows the app's visible range to the R&D subtree. Everything visible is
    // mirrored, so the six members outside it look as if they left; asked about, WeCom says
    // they exist but are out of the app's range: the run is held, and nobody leaves.
    env.sim.edit(|d| d.visible_departments = vec![2]);
    let output = env.run(&["sync"]).await;
    let held = assert_held(&before, &env, &output);
    assert_eq!(held["pending"]["members_left"], 6);
    assert_eq!(held["pending"]["members_out_of_scope"], 6);
    assert_eq!(held["pending"]["departments_deleted"], 3);
    assert_eq!(held["hold"], json!({"code": "out_of_scope", "members": 6}));

    // Mirroring department 2 alone on purpose is the same change, held the same way.
    env.write_config("root_department = 2\n", "");
    let before = env.state();
    let output = env.run(&["sync"]).await;
    let held = assert_held(&before, &env, &output);
    assert_eq!(held["pending"]["members_left"], 6);
    assert_eq!(held["pending"]["departments_deleted"], 3);
    let (code, text, _) = env.status().await;
    assert_eq!(code, Some(3));
    assert!(
        text.contains("HELD:       6 members are no longer in the app's visible range"),
        "{text}"
    );
    assert_eq!(env.state().mirror.members.len(), 15);

    // Told to let them go, they leave with their reason.
    env.write_config(
        "root_department = 2
",
        "[safety]
out_of_scope = \"leave\"
max_delete_ratio = 1.0
",
    );
    let output = env.run(&["sync"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let left: Vec<Value> = env
        .state()
        .events
        .iter()
        .filter(|(_, kind, _)| kind == "orgsync.member.left")
        .map(|(_, _, body)| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(left.len(), 6);
    assert!(
        left.iter().all(|e| e["data"]["reason"] == "out_of_scope"),
        "{left:?}"
    );
}

/// A run that fails after a held one does not hide the hold: its changes still wait for an
/// admin, so `status` shows both the failure (exit 1) and the pending hold, until a run
/// completes.
#[tokio::test]
async fn a_failed_run_after_a_held_one_keeps_the_hold_in_status() {
    let env = Env::with_config(
        Directory::sample(),
        "[safety]\nmax_deletes = 2\nmax_delete_ratio = 1.0\n",
    )
    .await;
    env.sync().await;
    env.sim.edit(reorganize);
    let output = env.run(&["sync"]).await;
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));

    env.sim
        .inject(Fault::Errcode(60011).on(Endpoint::DepartmentList));
    let output = env.run(&["sync"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));

    let (code, text, json) = env.status().await;
    assert_eq!(code, Some(1), "the last run failed: {text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("HELD:       3 members would leave"), "{text}");
    assert_eq!(json["held"]["pending"]["members_left"], 3);

    let output = env.run(&["sync", "--force"]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let (code, text, json) = env.status().await;
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("HELD"), "{text}");
    assert!(json["held"].is_null(), "{json}");
}

/// The fact sheet gives several `user/get` errcodes for a member who is gone (60111, and 40003
/// for a userid orgsync has seen) and for one outside the app's visible range (60011, 60021,
/// 50002). Members missing from a pull are asked about; each answer is read as what it says,
/// not as a failed run.
#[tokio::test]
async fn every_user_get_answer_for_a_gone_or_hidden_member_is_read_as_such() {
    let leavers = ["huangmin", "gaopeng"];
    for (errcode, reason) in [
        (60111, "deleted"),
        (40003, "deleted"),
        (60011, "out_of_scope"),
        (60021, "out_of_scope"),
        (50002, "out_of_scope"),
    ] {
        let env =
            Env::with_config(Directory::sample(), "[safety]\nout_of_scope = \"leave\"\n").await;
        env.sync().await;
        env.sim
            .edit(|d| d.users.retain(|u| !leavers.contains(&u.userid.as_str())));
        env.sim.inject(
            Fault::Errcode(errcode)
                .on(Endpoint::UserGet)
                .times(u32::MAX),
        );
        let before = env.state().events.len();

        let output = env.run(&["sync"]).await;

        assert!(output.status.success(), "{errcode}: {}", describe(&output));
        let left: Vec<Value> = env.state().event_values()[before..]
            .iter()
            .filter(|e| e["type"] == "orgsync.member.left")
            .cloned()
            .collect();
        assert_eq!(left.len(), leavers.len(), "{errcode}: {left:?}");
        assert!(
            left.iter().all(|e| e["data"]["reason"] == reason),
            "{errcode}: {left:?}"
        );
    }
}
