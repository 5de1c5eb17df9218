//! The systemd files as shipped, judged by systemd's own tools, which work offline (no running
//! systemd needed): `systemd-analyze verify` must have nothing to say about the unit, and
//! `systemd-analyze security` must rate its exposure 1.9 or lower. verify also checks that
//! ExecStart exists, so the unit's `/usr/bin/orgsync` is pointed at the binary under test.
//!
//! Without `systemd-analyze` these tests fail: passing would claim a check that never ran.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orgsync::config::Config;

use crate::harness::{describe, BIN};

const UNIT: &str = "orgsync@.service";
const INSTALLED_BINARY: &str = "/usr/bin/orgsync";

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

fn unit_text() -> String {
    fs::read_to_string(shipped("systemd").join(UNIT)).expect("read the unit")
}

/// The unit in a temporary directory, ExecStart pointed at the binary cargo built.
fn unit_for_test() -> (tempfile::TempDir, PathBuf) {
    let text = unit_text();
    let exec_start = format!("ExecStart={INSTALLED_BINARY} ");
    assert_eq!(
        text.matches(&exec_start).count(),
        1,
        "the unit runs {INSTALLED_BINARY}, once"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join(UNIT);
    let built = format!("ExecStart={BIN} ");
    fs::write(&unit, text.replace(&exec_start, &built)).expect("write the unit");
    // An instance of the template, as `systemctl start orgsync@acme` would load it.
    (dir, unit.with_file_name("orgsync@acme.service"))
}

fn run(program: &str, args: &[&str], instance: Option<&Path>) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(instance) = instance {
        command.arg(instance);
    }
    match command.output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "{program} is not installed, so the systemd units cannot be checked; install it \
             (Debian: apt-get install systemd) and run the tests again"
        ),
        Err(error) => panic!("cannot run {program}: {error}"),
    }
}

#[test]
fn the_unit_verifies_without_a_single_warning() {
    let (_dir, instance) = unit_for_test();
    let output = run("systemd-analyze", &["verify", "--man=no"], Some(&instance));
    // verify exits 0 even for unknown keys and bad values, which it only warns about.
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        describe(&output)
    );
}

#[test]
fn the_unit_is_hardened_to_an_exposure_of_at_most_1_9() {
    let (_dir, instance) = unit_for_test();
    let output = run(
        "systemd-analyze",
        &["security", "--offline=yes", "--threshold=19"],
        Some(&instance),
    );
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let exposure: f64 = stdout
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for orgsync@acme.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|score| score.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{stdout}"));
    assert!(exposure <= 1.9, "{stdout}");
}

#[test]
fn the_unit_reloads_with_sighup_and_keeps_what_orgsync_needs() {
    let text = unit_text();
    let settings: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    for expected in [
        "Type=notify",
        "ExecStart=/usr/bin/orgsync run --config /etc/orgsync/%i.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=orgsync",
        "Group=orgsync",
        "StateDirectory=orgsync/%i",
        "RuntimeDirectory=orgsync/%i",
        // Group members must traverse the directory to reach the 0660 socket.
        "RuntimeDirectoryMode=0750",
        "LoadCredential=corp_secret:/etc/orgsync/%i.secret",
        // HTTPS to WeCom, and the socket.
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ] {
        assert!(settings.contains(&expected), "the unit lacks {expected}");
    }
}

/// The example instance config keeps the store and the socket where the unit lets orgsync
/// write: its StateDirectory and RuntimeDirectory.
#[test]
fn the_example_instance_config_matches_the_unit_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("acme.toml");
    fs::copy(shipped("config/acme.example.toml"), &config).expect("copy the example");
    let config = Config::load_without_secret(&config).expect("the example is valid");
    assert_eq!(
        config.store.path,
        Path::new("/var/lib/orgsync/acme/orgsync.db")
    );
    assert_eq!(
        config.socket.path,
        Path::new("/run/orgsync/acme/orgsync.sock")
    );
    // No secret key: the unit passes the secret as the credential `corp_secret`.
    assert_eq!(config.wecom.corp_secret_file, None);
}

#[test]
fn the_sysusers_file_creates_the_orgsync_user_and_group() {
    let root = tempfile::tempdir().expect("tempdir");
    fs::create_dir(root.path().join("etc")).expect("mkdir etc");
    let sysusers = shipped("systemd/orgsync.sysusers");
    let output = run(
        "systemd-sysusers",
        &[&format!("--root={}", root.path().display())],
        Some(&sysusers),
    );
    // It reports what it creates on stderr; anything else is a complaint about the file.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.lines().all(|l| l.starts_with("Creating ")),
        "{}",
        describe(&output)
    );
    let passwd = fs::read_to_string(root.path().join("etc/passwd")).expect("passwd");
    let group = fs::read_to_string(root.path().join("etc/group")).expect("group");
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("orgsync:"))
        .unwrap_or_else(|| panic!("no orgsync user in {passwd}"))
        .split(':')
        .collect();
    assert!(
        group
            .lines()
            .any(|l| l.starts_with(&format!("orgsync:x:{}:", user[3]))),
        "the user's primary group is the orgsync group: {group}"
    );
    assert!(
        user[2].parse::<u32>().is_ok_and(|uid| uid < 1000),
        "a system user: {user:?}"
    );
    assert_eq!(user[6], "/usr/sbin/nologin");
}
