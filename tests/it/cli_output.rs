//! What people read, through the real binary, as snapshots under `tests/it/snapshots/`: the
//! help of every command, `sync --dry-run` against the simulator's sample company, the
//! `status` page after a sync, and the match report after an import of host users. What varies
//! from run to run (the temporary directory, times, durations, pids, ports) is redacted.
//!
//! A change to any of it fails here until the snapshot is updated: run
//! `INSTA_UPDATE=always cargo test --test it cli_output::` (or `cargo insta review`) and review
//! the diff of the `.snap` files like any other.

use std::fmt::Write;
use std::path::Path;

use orgsync_simulator::Directory;

use crate::harness::host_users::host_users;
use crate::harness::{describe, orgsync, output, Env};

/// Snapshot settings that redact what varies between runs; `dir` is the instance's temporary
/// directory, if there is one.
fn redacting(dir: Option<&Path>) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    if let Some(dir) = dir {
        settings.add_filter(&literal(&dir.display().to_string()), "[DIR]");
    }
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?Z?",
        "[TIME]",
    );
    settings.add_filter(r"\b\d+(\.\d+)? (s|ms)\b", "[DURATION]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2} \(China time\)", "[DAY] (China time)");
    settings.add_filter(r"\bpid \d+", "pid [PID]");
    settings.add_filter(r"\b(127\.0\.0\.1|localhost):\d+", "$1:[PORT]");
    settings
}

/// A regex that matches `text` literally.
fn literal(text: &str) -> String {
    text.chars().fold(String::new(), |mut pattern, c| {
        if r"\.+*?()|[]{}^$".contains(c) {
            pattern.push('\\');
        }
        pattern.push(c);
        pattern
    })
}

/// The stdout of a command that must succeed.
async fn stdout(env: &Env, args: &[&str]) -> String {
    let output = env.run(args).await;
    assert!(output.status.success(), "{args:?}: {}", describe(&output));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The subcommands a help text lists under `Commands:`, but `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_help_of_every_command() {
    let settings = redacting(None);
    // Breadth first from the top: each help names the subcommands to look at next.
    let mut commands: Vec<Vec<String>> = vec![vec![]];
    let mut next = 0;
    while let Some(command) = commands.get(next).cloned() {
        next += 1;
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("--help");
        let output = output(orgsync(&args)).await;
        assert!(output.status.success(), "{args:?}: {}", describe(&output));
        let help = String::from_utf8(output.stdout).expect("UTF-8 help");
        for sub in subcommands(&help) {
            let mut path = command.clone();
            path.push(sub);
            commands.push(path);
        }
        let name = command
            .iter()
            .fold("help".to_owned(), |name, word| format!("{name}_{word}"));
        let mut settings = settings.clone();
        settings.set_description(format!("orgsync {}", args.join(" ")));
        settings.bind(|| insta::assert_snapshot!(name, help));
    }
    assert!(
        commands.len() > 10,
        "every command has a help snapshot: {commands:?}"
    );
}

#[tokio::test]
async fn a_dry_run_against_the_sample_company_lists_every_change() {
    let env = Env::new(Directory::sample()).await;
    let listing = stdout(&env, &["sync", "--dry-run"]).await;
    redacting(Some(env.dir.path())).bind(|| insta::assert_snapshot!(listing));
}

#[tokio::test]
async fn the_status_page_after_a_sync() {
    let env = Env::synced_sample().await;
    let page = stdout(&env, &["status"]).await;
    redacting(Some(env.dir.path())).bind(|| insta::assert_snapshot!(page));
}

#[tokio::test]
async fn the_match_report_after_an_import_of_host_users() {
    // Forty members, so that the host users derived from them hold every case twice.
    let env = Env::new(Directory::generate(7, 4, 40)).await;
    env.sync().await;
    // The members as a host application knows them: mobiles in every format, names only, a
    // mobile shared with a relative, an outdated one, people not in WeCom, accounts with
    // neither name nor mobile.
    let mut csv = String::from("id,name,mobile,email\n");
    for user in host_users(&env.sim.directory()) {
        let field = |value: Option<String>| value.unwrap_or_default();
        writeln!(
            csv,
            "{},{},{},{}",
            user.id,
            field(user.name),
            field(user.mobile),
            field(user.email)
        )
        .expect("write to a string");
    }
    let file = env.path("host-users.csv");
    std::fs::write(&file, csv).expect("write the import file");

    let settings = redacting(Some(env.dir.path()));
    let import = stdout(&env, &["host-users", "import", &file.to_string_lossy()]).await;
    settings.bind(|| insta::assert_snapshot!("host_users_import", import));
    let report = stdout(&env, &["match", "report"]).await;
    settings.bind(|| insta::assert_snapshot!("match_report", report));
}
