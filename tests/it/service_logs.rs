//! What `orgsync` writes to its output, at debug level, in both log formats: one summary line
//! per sync with stable field names, and never the corp secret or an access token, also when
//! WeCom fails in ways that put the token back in front of the client (a rejected token, a
//! reset connection whose error names the URL).

use std::process::Output;

use orgsync_simulator::{Directory, Endpoint, Fault, Simulator};
use serde_json::Value;

use crate::harness::{describe, output, Env};

/// `orgsync sync` at debug level; `journal` sets JOURNAL_STREAM as systemd does. Each run gets
/// an access token of its own, so that every run's token is among those looked for.
async fn sync(sim: &Simulator, instance: &Env, journal: bool) -> Output {
    sim.revoke_tokens();
    let mut command = instance.command(&["sync"]);
    command.env("RUST_LOG", "debug");
    if journal {
        command.env("JOURNAL_STREAM", "8:12345");
    }
    output(command).await
}

/// The JSON log lines of an output; every line of stderr must be one.
fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.starts_with("orgsync: "))
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("not a JSON log line ({e}): {line}\n{}", describe(output))
            })
        })
        .collect()
}

fn summaries(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|line| line["target"] == "orgsync::sync" && line.get("outcome").is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_output_contains_the_secret_or_a_token_and_each_sync_logs_one_summary() {
    let text_instance = Env::new(Directory::sample()).await;
    let sim = &text_instance.sim;
    let members = sim.directory().users.len() as u64;
    let json_instance = text_instance.beside("", "[log]\nformat = \"json\"\n");
    let mut outputs = Vec::new();

    // A full sync, readable on a terminal.
    let first = sync(sim, &text_instance, false).await;
    assert!(first.status.success(), "{}", describe(&first));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("sync completed") && stderr.contains("trigger=cli"),
        "{stderr}"
    );
    outputs.push(first);

    // The same in JSON: log.format = "json", and under systemd (JOURNAL_STREAM).
    for (instance, journal) in [(&json_instance, false), (&text_instance, true)] {
        let out = sync(sim, instance, journal).await;
        assert!(out.status.success(), "{}", describe(&out));
        let lines = json_lines(&out);
        let summary = summaries(&lines);
        assert_eq!(summary.len(), 1, "one summary line per sync: {summary:#?}");
        let summary = summary[0];
        assert_eq!(summary["message"], "sync completed");
        assert_eq!(summary["level"], "INFO");
        assert_eq!(summary["outcome"], "completed");
        assert_eq!(summary["trigger"], "cli");
        assert!(summary["run"].is_i64(), "{summary}");
        assert_eq!(summary["members"], members);
        for field in [
            "members_joined",
            "members_updated",
            "members_left",
            "departments_created",
            "departments_updated",
            "departments_deleted",
            "departments",
            "api_calls",
            "pull_ms",
        ] {
            assert!(summary[field].is_u64(), "{field} missing: {summary}");
        }
        outputs.push(out);
    }

    // A rejected token is refreshed once; rejected again, the run fails. One department, so
    // that both rejections hit the same call rather than two calls in parallel.
    sim.inject(
        Fault::Errcode(40014)
            .on(Endpoint::UserList)
            .department(1)
            .times(2),
    );
    let failed = sync(sim, &json_instance, false).await;
    assert_eq!(failed.status.code(), Some(1), "{}", describe(&failed));
    let lines = json_lines(&failed);
    let summary = summaries(&lines);
    assert_eq!(summary.len(), 1, "{summary:#?}");
    assert_eq!(summary[0]["outcome"], "failed");
    assert_eq!(summary[0]["errcode"], 40014);
    assert_eq!(summary[0]["level"], "ERROR");
    assert!(summary[0]["code"].is_string(), "{}", summary[0]);
    outputs.push(failed);

    // A reset connection: the transport error is logged with its retry, then the run succeeds.
    sim.inject(Fault::Reset.on(Endpoint::UserList));
    let retried = sync(sim, &text_instance, false).await;
    assert!(retried.status.success(), "{}", describe(&retried));
    assert!(
        String::from_utf8_lossy(&retried.stderr).contains("retrying"),
        "{}",
        describe(&retried)
    );
    outputs.push(retried);

    // A bad secret, as gettoken reports it.
    sim.inject(Fault::Errcode(40001).on(Endpoint::GetToken));
    let refused = sync(sim, &text_instance, true).await;
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    outputs.push(refused);

    let secret = sim.directory().corp_secret;
    let tokens = sim.issued_tokens();
    assert!(
        tokens.len() >= 5,
        "one token per run that got one: {}",
        tokens.len()
    );
    for out in &outputs {
        let all = describe(out);
        assert!(!all.contains(&secret), "the corp secret leaked:\n{all}");
        for token in &tokens {
            assert!(
                !all.contains(token.as_str()),
                "an access token leaked:\n{all}"
            );
        }
    }
}
