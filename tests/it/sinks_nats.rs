//! NATS JetStream sinks through the real daemon against a real `nats-server -js` (the Debian
//! package `nats-server`; `.ci/run` installs it), started by each test on a free loopback port
//! in a temporary directory and stopped by its pid: every event arrives in `seq` order with
//! `Nats-Msg-Id` = its id, 100,000 of them through a broker killed and restarted mid-stream
//! and the daemon killed with SIGKILL mid-stream.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use orgsync::events::{EventSource, EventType};
use orgsync::store::Store;
use orgsync_simulator::Directory;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::{commit_dated, Env, WAIT};

/// A `nats-server -js` on 127.0.0.1, its JetStream data under `dir`.
struct NatsServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    async fn start(dir: &Path) -> NatsServer {
        // A port is free when it is chosen, but another test may bind it before nats-server
        // does; nats-server then exits at once, and another port is tried.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut server = NatsServer {
                port,
                dir: dir.to_owned(),
                child: None,
            };
            if server.try_up().await {
                return server;
            }
        }
        panic!("nats-server did not become ready on any of three ports");
    }

    /// Starts it again, on the same port and data, and waits until it is ready.
    async fn up(&mut self) {
        assert!(self.try_up().await, "nats-server did not become ready");
    }

    /// Starts it and waits until it is ready; false if it exits or does not get ready in time.
    async fn try_up(&mut self) -> bool {
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.join("jetstream"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server is needed (apt-get install nats-server; .ci/run installs it)");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ready = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("Server is ready") {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            let _ = child.kill().await;
            return false;
        }
        // Keep draining its log so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        true
    }

    /// Kills it with SIGKILL, by its pid, and reaps it.
    async fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().expect("pid") as libc::pid_t;
        // SAFETY: kill only sends a signal; the pid is our child's, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        child.wait().await.unwrap();
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Every message of `stream`, in stream order: (subject, Nats-Msg-Id, event).
    async fn messages(&self, stream: &str) -> Vec<(String, String, Value)> {
        let client = async_nats::connect(self.url()).await.unwrap();
        let context = jetstream::new(client);
        let mut stream = context.get_stream(stream).await.unwrap();
        let count = stream.info().await.unwrap().state.messages as usize;
        let reader = stream
            .create_consumer(consumer::pull::Config {
                ack_policy: consumer::AckPolicy::None,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = reader.messages().await.unwrap();
        let mut read = Vec::with_capacity(count);
        while read.len() < count {
            let message = tokio::time::timeout(WAIT, messages.next())
                .await
                .expect("the stream's messages in time")
                .unwrap()
                .unwrap();
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            read.push((
                message.subject.to_string(),
                id,
                serde_json::from_slice(&message.payload).unwrap(),
            ));
        }
        read
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn nats_config(url: &str, extra: &str) -> String {
    format!(
        "[[sinks.nats]]\nname = \"bus\"\nservers = [\"{url}\"]\nstream = \"ORGSYNC\"\n\
         create_stream = true\ntimeout_secs = 2\nretry_first_delay_ms = 10\n\
         retry_max_delay_secs = 1\n{extra}\n"
    )
}

/// The sink `bus` in the daemon's status, once `found` finds something in it.
async fn sink_when<T>(env: &Env, what: &str, found: impl Fn(&Value) -> Option<T>) -> T {
    env.status_when(what, |status| {
        status["sinks"]
            .as_array()?
            .iter()
            .find(|sink| sink["name"] == "bus")
            .and_then(&found)
    })
    .await
}

/// Checks the stream holds every event of the store once, in seq order, on its subject, with
/// its id as Nats-Msg-Id.
async fn assert_stream_is_the_log(env: &Env, nats: &NatsServer) {
    let events = env.events_since(0).await;
    let corp = env.sim.directory().corp_id;
    let messages = nats.messages("ORGSYNC").await;
    assert_eq!(messages.len(), events.len(), "one message per event");
    for ((subject, id, message), event) in messages.iter().zip(&events) {
        assert_eq!(message, event);
        assert_eq!(id, event["id"].as_str().unwrap());
        let kind = event["type"].as_str().unwrap();
        assert_eq!(
            *subject,
            format!("orgsync.{corp}.{}", kind.strip_prefix("orgsync.").unwrap())
        );
    }
}

#[tokio::test]
async fn every_event_is_published_in_order_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path()).await;
    let env = Env::with_config(Directory::sample(), &nats_config(&nats.url(), "")).await;
    let (daemon, _subscriber) = env.start_synced_daemon().await;
    let head = env.state().head();
    let sink = sink_when(&env, "the sink caught up", |sink| {
        (sink["cursor"] == head).then(|| sink.clone())
    })
    .await;
    assert_eq!(sink["kind"], "nats", "{sink}");
    assert_eq!(sink["state"], "idle", "{sink}");
    assert_stream_is_the_log(&env, &nats).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_stream_that_does_not_exist_is_a_clear_error_until_it_does() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path()).await;
    let config = nats_config(&nats.url(), "").replace("create_stream = true\n", "");
    let env = Env::with_config(Directory::sample(), &config).await;
    let (daemon, _subscriber) = env.start_synced_daemon().await;
    let sink = sink_when(&env, "the sink failing", |sink| {
        (sink["state"] == "failing").then(|| sink.clone())
    })
    .await;
    let error = sink["last_error"].as_str().unwrap();
    assert!(
        error.contains("no JetStream stream takes subject"),
        "{sink}"
    );
    assert_eq!(sink["cursor"], 0, "{sink}");

    // An operator creates it: everything arrives, in order.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let corp = env.sim.directory().corp_id;
    jetstream::new(client)
        .create_stream(jetstream::stream::Config {
            name: "ORGSYNC".into(),
            subjects: vec![format!("orgsync.{corp}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let head = env.state().head();
    sink_when(&env, "the sink caught up", |sink| {
        (sink["cursor"] == head).then_some(())
    })
    .await;
    assert_stream_is_the_log(&env, &nats).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_webhook_sink_that_becomes_a_nats_sink_keeps_its_cursor_and_shows_its_new_kind() {
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsServer::start(dir.path()).await;
    // A webhook named bus to a port that never answers: registered, it delivers nothing. The
    // listener stays bound, so that no other test's server can take the port meanwhile.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let webhook = format!(
        "[[sinks.webhook]]\nname = \"bus\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
         secret_file = \"bus.whsec\"\ntimeout_secs = 1\nretry_first_delay_ms = 10\n\
         retry_max_delay_secs = 1\n"
    );
    let env = Env::with_config(Directory::sample(), &webhook).await;
    std::fs::write(
        env.path("bus.whsec"),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
    )
    .unwrap();
    let (daemon, _subscriber) = env.start_synced_daemon().await;
    sink_when(&env, "the webhook failing", |sink| {
        (sink["kind"] == "webhook" && sink["state"] == "failing").then_some(())
    })
    .await;

    // The same name, now a NATS sink: its cursor (0) stays, so it publishes every event, and
    // its kind is the new one.
    env.write_config("", &nats_config(&nats.url(), ""));
    daemon.signal(libc::SIGHUP);
    let sink = sink_when(&env, "the sink shown as nats and caught up", |sink| {
        (sink["kind"] == "nats" && sink["state"] == "idle" && sink["lag"] == 0)
            .then(|| sink.clone())
    })
    .await;
    assert_stream_is_the_log(&env, &nats).await;
    let listed = env.run(&["sinks"]).await;
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("bus ") && l.split_whitespace().nth(1) == Some("nats")),
        "{text}\n{sink}"
    );
    daemon.stop().await;
}

/// How many events the chaos test pushes through.
const MANY: usize = 100_000;

#[tokio::test]
async fn a_hundred_thousand_events_survive_the_broker_and_the_daemon_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start(dir.path()).await;
    let env = Env::with_config(Directory::sample(), &nats_config(&nats.url(), "")).await;
    env.sync().await;
    // The events of a large first sync, committed in one transaction as a run commits them.
    {
        let mut store = Store::open(&env.store_path()).unwrap();
        let source = EventSource::new(&env.sim.directory().corp_id);
        commit_dated(
            &mut store,
            &source,
            (EventType::MemberJoined, "member/zhangsan"),
            MANY,
            chrono::Utc::now(),
        );
    }
    let head = env.state().head();
    assert!(head > MANY as i64, "{head}");
    let daemon = env.start_daemon().await;

    // The broker dies mid-stream (SIGKILL) and comes back on the same port and data.
    let at = sink_when(&env, "deliveries under way", |sink| {
        sink["cursor"].as_i64().filter(|cursor| *cursor >= 20_000)
    })
    .await;
    nats.kill().await;
    assert!(at < head, "cut mid-stream: {at} < {head}");
    sink_when(&env, "the sink failing while the broker is down", |sink| {
        (sink["state"] == "failing").then_some(())
    })
    .await;
    nats.up().await;

    // Then the daemon dies mid-stream (SIGKILL) and starts again.
    let at = sink_when(&env, "deliveries under way again", |sink| {
        sink["cursor"]
            .as_i64()
            .filter(|cursor| *cursor >= at + 20_000)
    })
    .await;
    daemon.signal(libc::SIGKILL);
    let _ = daemon.wait().await;
    assert!(at < head, "cut mid-stream: {at} < {head}");
    let daemon = env.start_daemon().await;
    sink_when(&env, "the sink caught up", |sink| {
        (sink["cursor"] == head).then_some(())
    })
    .await;
    // Messages published again after a cut carry the same Nats-Msg-Id: the broker dropped
    // them, so the stream holds each event once, in order.
    assert_stream_is_the_log(&env, &nats).await;
    daemon.stop().await;
}

#[tokio::test]
async fn bad_nats_sinks_are_config_errors() {
    let env = Env::new(Directory::sample()).await;
    // Far larger than any .creds file: a wrong file, refused without reading it all.
    std::fs::write(env.path("huge.creds"), vec![b'x'; 64 * 1024 + 1]).unwrap();
    for (sink, says) in [
        (
            "name = \"bus\"\nservers = [\"nats://nats.example.com:4222\"]",
            "plain nats:// to a host that is not loopback",
        ),
        ("name = \"bus\"\nservers = []", "nats[0].servers is empty"),
        (
            "name = \"bus\"\nservers = [\"tls://nats.example.com:4222\"]\ncreate_stream = true",
            "nats[0].create_stream needs `stream`",
        ),
        (
            "name = \"bus\"\nservers = [\"tls://nats.example.com:4222\"]\nsubject_prefix = \"a.>\"",
            "nats[0].subject_prefix",
        ),
        (
            "name = \"bus\"\nservers = [\"tls://nats.example.com:4222\"]\ncredentials_file = \"nope.creds\"",
            "cannot use the credentials in",
        ),
        (
            "name = \"bus\"\nservers = [\"tls://nats.example.com:4222\"]\ncredentials_file = \"huge.creds\"",
            "it is larger than 65536 bytes",
        ),
    ] {
        env.write_config("", &format!("[[sinks.nats]]\n{sink}\n"));
        let output = env.run(&["check-config"]).await;
        crate::harness::assert_fails(&output, 2, says);
    }
    // Names are unique across kinds: each is a cursor `sink:NAME`.
    std::fs::write(
        env.path("crm.whsec"),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
    )
    .unwrap();
    env.write_config(
        "",
        "[[sinks.webhook]]\nname = \"bus\"\nurl = \"https://x.example.com/\"\nsecret_file = \"crm.whsec\"\n\n\
         [[sinks.nats]]\nname = \"bus\"\nservers = [\"tls://nats.example.com:4222\"]\n",
    );
    let output = env.run(&["check-config"]).await;
    crate::harness::assert_fails(&output, 2, "two sinks are named \"bus\"");
}
