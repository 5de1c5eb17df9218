//! A simulated WeCom tenant in the test process and a temporary directory holding a config
//! that points at it, its secret (mode 0600), the store and the socket; runs `orgsync`
//! commands and the daemon there.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use orgsync_simulator::{Directory, Simulator};
use serde_json::Value;
use tokio::process::{Child, Command};

use super::{describe, orgsync, output, types, Client, Daemon, NotifySocket, StoreState, WAIT};

pub struct Env {
    pub dir: tempfile::TempDir,
    /// Shared with the instances started [`Env::beside`] this one.
    pub sim: Arc<Simulator>,
    pub config_path: PathBuf,
}

impl Env {
    pub async fn new(directory: Directory) -> Env {
        Env::with_config(directory, "").await
    }

    /// The sample directory, with the store filled by a first `orgsync sync`.
    pub async fn synced_sample() -> Env {
        let env = Env::new(Directory::sample()).await;
        env.sync().await;
        env
    }

    /// `extra` is appended to the generated config (whole sections, e.g. `[safety]\n...`).
    pub async fn with_config(directory: Directory, extra: &str) -> Env {
        Env::with_wecom(directory, "", extra).await
    }

    /// Like [`Env::with_config`], with `wecom` lines added to the `[wecom]` section.
    pub async fn with_wecom(directory: Directory, wecom: &str, extra: &str) -> Env {
        let sim = Simulator::start(directory).await.expect("start simulator");
        Env::against(Arc::new(sim), wecom, extra)
    }

    /// Another instance against the same simulator: a directory, config, store and socket of
    /// its own.
    pub fn beside(&self, wecom: &str, extra: &str) -> Env {
        Env::against(Arc::clone(&self.sim), wecom, extra)
    }

    fn against(sim: Arc<Simulator>, wecom: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, sim.directory().corp_secret).expect("write secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .expect("chmod secret");
        let env = Env {
            config_path: dir.path().join("orgsync.toml"),
            dir,
            sim,
        };
        env.write_config(wecom, extra);
        env
    }

    /// Rewrites the config file: the generated `[wecom]`, `[store]` and `[socket]` sections
    /// with `wecom` lines added to `[wecom]`, then `extra`.
    pub fn write_config(&self, wecom: &str, extra: &str) {
        let config = format!(
            "[wecom]\ncorp_id = \"{}\"\ncorp_secret_file = \"secret\"\napi_base = \"{}\"\n{wecom}\n\
             [store]\npath = \"orgsync.db\"\n\n[socket]\npath = \"orgsync.sock\"\n\n{extra}",
            self.sim.directory().corp_id,
            self.sim.api_base()
        );
        std::fs::write(&self.config_path, config).expect("write config");
    }

    /// A file in the instance's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn socket_path(&self) -> PathBuf {
        self.path("orgsync.sock")
    }

    pub fn store_path(&self) -> PathBuf {
        self.path("orgsync.db")
    }

    /// A new file name in the instance's directory, e.g. `daemon-3.log`.
    fn unique_path(&self, stem: &str, extension: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.path(&format!("{stem}-{n}.{extension}"))
    }

    /// `orgsync ARGS --config CONFIG`, as [`orgsync`] makes it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = orgsync(args);
        command.arg("--config").arg(&self.config_path);
        command
    }

    /// Runs a command to completion.
    pub async fn run(&self, args: &[&str]) -> Output {
        output(self.command(args)).await
    }

    /// `orgsync sync`, asserting success.
    pub async fn sync(&self) -> Output {
        let output = self.run(&["sync"]).await;
        assert!(
            output.status.success(),
            "orgsync sync failed: {}",
            describe(&output)
        );
        output
    }

    /// `orgsync sync`, asserting success; returns the events it added.
    pub async fn sync_events(&self) -> Vec<Value> {
        let head = self.state().head();
        self.sync().await;
        self.events_since(head).await
    }

    /// `orgsync sync`, asserting that it found nothing to change: its one event is
    /// `orgsync.sync.completed`.
    pub async fn assert_nothing_to_sync(&self) {
        let events = self.sync_events().await;
        assert_eq!(types(&events), ["orgsync.sync.completed"], "{events:?}");
    }

    /// Every stored event with `seq > since`, through `orgsync events`.
    pub async fn events_since(&self, since: i64) -> Vec<Value> {
        let output = self.run(&["events", "--since", &since.to_string()]).await;
        assert!(
            output.status.success(),
            "orgsync events: {}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect()
    }

    /// `orgsync status` and `orgsync status --json`, which must exit alike: the exit code, the
    /// text and the JSON report.
    pub async fn status(&self) -> (Option<i32>, String, Value) {
        let human = self.run(&["status"]).await;
        let json = self.run(&["status", "--json"]).await;
        assert_eq!(
            human.status.code(),
            json.status.code(),
            "{}",
            describe(&json)
        );
        let report = serde_json::from_slice(&json.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", describe(&json)));
        // A health check that fails says why on stderr, in one line (interfaces §1).
        if human.status.code() != Some(0) {
            for output in [&human, &json] {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let lines: Vec<&str> = stderr.lines().collect();
                assert!(
                    matches!(lines[..], [line] if line.starts_with("orgsync: ")),
                    "{}",
                    describe(output)
                );
            }
        }
        (
            human.status.code(),
            String::from_utf8_lossy(&human.stdout).into_owned(),
            report,
        )
    }

    /// Starts `orgsync run`, with `configure` applied to its command (an environment variable,
    /// say), and does not wait: [`Daemon::ready`] does.
    pub fn spawn_daemon(&self, configure: impl FnOnce(&mut Command)) -> Daemon {
        let mut command = self.command(&["run"]);
        configure(&mut command);
        let notify = NotifySocket::bind(self.unique_path("notify", "sock"));
        Daemon::spawn(command, notify, &self.unique_path("daemon", "log"))
    }

    /// Starts `orgsync run` and waits until it is ready.
    pub async fn start_daemon(&self) -> Daemon {
        let mut daemon = self.spawn_daemon(|_| {});
        daemon.ready().await;
        daemon
    }

    /// Starts `orgsync run` and a subscriber from seq 0, which has read the start-up sync's
    /// events.
    pub async fn start_synced_daemon(&self) -> (Daemon, Client) {
        let daemon = self.start_daemon().await;
        let mut subscriber = self
            .subscribe(serde_json::json!({"op": "subscribe", "since": 0}))
            .await;
        subscriber.run_events().await;
        (daemon, subscriber)
    }

    /// A connection to the daemon's socket that sent `request` (the reply is in
    /// [`Client::reply`]).
    pub async fn subscribe(&self, request: Value) -> Client {
        Client::open(&self.socket_path(), request).await
    }

    /// `orgsync ARGS` as a child with stdout and stderr piped, for tests that signal or kill it.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orgsync")
    }

    /// The store as it is on disk, read without orgsync: the mirror, every event and every
    /// run. A store that does not exist yet is empty.
    pub fn state(&self) -> StoreState {
        StoreState::read(&self.store_path())
    }

    /// The daemon's `status` reply over the socket.
    pub async fn daemon_status(&self) -> Value {
        let reply = tokio::time::timeout(
            WAIT,
            orgsync::socket::request(&self.socket_path(), &serde_json::json!({"op": "status"})),
        )
        .await
        .expect("status reply in time")
        .expect("status request");
        assert_eq!(reply["ok"], true, "{reply}");
        reply["status"].clone()
    }

    /// Asks the running daemon for its status until `found` finds something in it; that.
    /// Panics with `what` and the last status after [`WAIT`].
    pub async fn status_when<T>(&self, what: &str, found: impl Fn(&Value) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = self.daemon_status().await;
            if let Some(found) = found(&status) {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen: {status}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until the running daemon reports a rejected reload; its error.
    pub async fn reload_rejected(&self) -> String {
        self.status_when("a rejected reload", |status| {
            status["daemon"]["reload_rejected"]["error"]
                .as_str()
                .map(str::to_owned)
        })
        .await
    }
}
