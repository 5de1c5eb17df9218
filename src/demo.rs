//! `orgsync demo`: the whole pipeline on a fresh machine with no credentials. Starts the
//! simulated WeCom tenant on loopback and a daemon against it in a temporary directory,
//! subscribes to the socket as a host application would, has the tenant send a contact-change
//! callback for a new hire, changes the simulated directory, asks for a resync, and prints
//! every event received.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;

use crate::config::{Config, ConfigError};
use crate::daemon::{Daemon, DaemonError};
use crate::socket;
use orgsync_simulator::{CallbackTarget, Directory, Payload, SimDepartment, SimUser, Simulator};

/// How long the demo waits for a sync before giving up.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("the daemon answered something unexpected: {0}")]
    Protocol(String),
    #[error("no sync finished within {}s", SYNC_TIMEOUT.as_secs())]
    Timeout,
    #[error("the sync failed: {0}")]
    SyncFailed(String),
}

pub async fn run(json_output: bool) -> Result<(), DemoError> {
    let mut out = Output { json_output };
    let simulator = Simulator::start(Directory::sample()).await?;
    let workdir = tempfile::tempdir()?;
    let directory = simulator.directory();
    let config = demo_config(
        workdir.path(),
        &directory.corp_id,
        &directory.corp_secret,
        &simulator.api_base(),
    )?;
    out.say(&format!(
        "Simulated WeCom tenant {} at {} ({} departments, {} members).",
        config.wecom.corp_id,
        simulator.api_base(),
        simulator.directory().departments.len(),
        simulator.directory().users.len()
    ));
    out.say(&format!(
        "Daemon store {} and socket {}.",
        config.store.path.display(),
        config.socket.path.display()
    ));

    let daemon = Daemon::start(config.clone(), None).await?;
    let callback_url = daemon
        .callback_addr()
        .map(|addr| format!("http://{addr}{}", config.callback.path));
    let result = host_application(&mut out, &config, &simulator, callback_url).await;
    daemon.shutdown().await;
    simulator.shutdown().await;
    result
}

/// What a host application does: subscribe, read the first sync, then (as the demo's
/// director) change WeCom, ask for a resync and read its events.
async fn host_application(
    out: &mut Output,
    config: &Config,
    simulator: &Simulator,
    callback_url: Option<String>,
) -> Result<(), DemoError> {
    let stream = UnixStream::connect(&config.socket.path).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let subscribe = json!({"op": "subscribe", "since": 0, "consumer": "demo-host"});
    write.write_all(format!("{subscribe}\n").as_bytes()).await?;
    let reply = next_json(&mut lines).await?;
    if reply["ok"] != true {
        return Err(DemoError::Protocol(reply.to_string()));
    }

    out.say("\n== First sync (at start-up, because the mirror is empty) ==");
    let last = read_run(out, &mut lines).await?;

    let url = callback_url
        .ok_or_else(|| DemoError::Protocol("the callback receiver is not running".into()))?;
    simulator
        .send_callbacks(Some(CallbackTarget {
            url,
            token: CALLBACK_TOKEN.into(),
            encoding_aes_key: CALLBACK_KEY.into(),
            payload: Payload::Full,
        }))
        .map_err(|e| DemoError::Protocol(e.to_string()))?;
    let hired = std::time::Instant::now();
    simulator.edit(|directory| {
        let mut hire = SimUser::new("zhouxin", "周新", &[4]);
        hire.position = "前端实习生".into();
        directory.users.push(hire);
    });
    out.say(
        "\n== A new hire in WeCom: 周新 joins 前端组; WeCom sends a contact-change callback ==",
    );
    let last = read_run(out, &mut lines).await?.max(last);
    out.say(&format!(
        "  on the socket {:.1} s after the change, without a resync",
        hired.elapsed().as_secs_f64()
    ));
    // The rest of the demo shows a resync: the changes below are not sent as callbacks.
    simulator
        .send_callbacks(None)
        .map_err(|e| DemoError::Protocol(e.to_string()))?;

    let described = change_directory(simulator);
    out.say("\n== Changes made in the simulated WeCom ==");
    for line in described {
        out.say(&format!("  {line}"));
    }
    out.say("\n== Resync requested over the socket ({\"op\":\"resync\"}) ==");
    socket::request(&config.socket.path, &json!({"op": "resync"}))
        .await
        .map_err(|e| DemoError::Protocol(e.to_string()))?;
    let last = read_run(out, &mut lines).await?.max(last);

    let ack = json!({"op": "ack", "consumer": "demo-host", "seq": last});
    write.write_all(format!("{ack}\n").as_bytes()).await?;
    out.say(&format!(
        "\nAcknowledged up to seq {last}: a host application reconnecting as consumer \"demo-host\" resumes after it."
    ));
    sign_in(out, config, simulator).await
}

/// The host application gives orgsync its own accounts, and a member opens it inside WeCom:
/// the login code WeCom hands the host application resolves to its account.
async fn sign_in(
    out: &mut Output,
    config: &Config,
    simulator: &Simulator,
) -> Result<(), DemoError> {
    let member = simulator
        .directory()
        .users
        .first()
        .cloned()
        .ok_or_else(|| DemoError::Protocol("the simulated company has no members".into()))?;
    let ask = |request: serde_json::Value| async move {
        socket::request(&config.socket.path, &request)
            .await
            .map_err(|e| DemoError::Protocol(e.to_string()))
    };
    let put = json!({"op": "host_users.put", "users": [{"id": "42", "name": member.name}]});
    let reply = ask(put).await?;
    out.say(&format!(
        "\n== The host application's accounts ({{\"op\":\"host_users.put\"}}) ==\n  account 42 \"{}\": {} linked",
        member.name, reply["linked"]
    ));
    out.say(&format!(
        "\n== {} opens the host application inside WeCom ==",
        member.name
    ));
    let code = simulator.login_code(&member.userid);
    let who = ask(json!({"op": "login.resolve", "code": code})).await?;
    out.say(&format!(
        "  the login code resolves to member {} and host account {} (linked by {})",
        who["userid"].as_str().unwrap_or("?"),
        who["host_user_id"].as_str().unwrap_or("none"),
        who["method"].as_str().unwrap_or("nothing")
    ));
    Ok(())
}

/// The config of an orgsync against a simulated tenant, with its secret file, store and socket
/// in `dir`: the demo's, and the end-to-end benchmark's.
pub fn simulated_tenant_config(
    dir: &Path,
    corp_id: &str,
    corp_secret: &str,
    api_base: &str,
) -> Result<Config, DemoError> {
    tenant_config(dir, corp_id, corp_secret, api_base, "")
}

/// [`simulated_tenant_config`] with `extra` sections.
fn tenant_config(
    dir: &Path,
    corp_id: &str,
    corp_secret: &str,
    api_base: &str,
    extra: &str,
) -> Result<Config, DemoError> {
    private_file(&dir.join("corp_secret"), corp_secret)?;
    let toml = format!(
        r#"
[wecom]
corp_id = "{corp_id}"
corp_secret_file = "corp_secret"
api_base = "{api_base}"

[store]
path = "orgsync.db"

[socket]
path = "orgsync.sock"
{extra}"#
    );
    Ok(Config::from_toml_str(&toml, dir)?)
}

/// The callback Token and EncodingAESKey the demo's simulated console and daemon share.
const CALLBACK_TOKEN: &str = "demotoken";
const CALLBACK_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

/// The demo's config: [`simulated_tenant_config`] with the callback receiver on a port the
/// kernel picks, its Token and EncodingAESKey in files in `dir`.
fn demo_config(
    dir: &Path,
    corp_id: &str,
    corp_secret: &str,
    api_base: &str,
) -> Result<Config, DemoError> {
    for (name, value) in [
        ("callback.token", CALLBACK_TOKEN),
        ("callback.key", CALLBACK_KEY),
    ] {
        private_file(&dir.join(name), value)?;
    }
    tenant_config(
        dir,
        corp_id,
        corp_secret,
        api_base,
        "[callback]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"callback.token\"\n\
         encoding_aes_key_file = \"callback.key\"\n",
    )
}

/// Writes `content` to a new file only its owner may read.
fn private_file(path: &Path, content: &str) -> Result<(), DemoError> {
    let mut file = std::fs::File::create(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(content.as_bytes())?;
    Ok(())
}

/// A promotion, a move, a departure, a new hire, a new team and a renamed department.
fn change_directory(simulator: &Simulator) -> Vec<String> {
    simulator.edit(|directory| {
        let mut done = Vec::new();
        if let Some(user) = directory.users.iter_mut().find(|u| u.userid == "wangfang") {
            user.position = "高级后端工程师".into();
            done.push("wangfang (王芳) promoted to 高级后端工程师".to_owned());
        }
        if let Some(user) = directory.users.iter_mut().find(|u| u.userid == "chenjing") {
            *user = SimUser {
                department: vec![3],
                order: vec![0],
                is_leader_in_dept: vec![0],
                main_department: 3,
                ..user.clone()
            };
            done.push("chenjing (陈静) moved from 前端组 to 后端组".to_owned());
        }
        let before = directory.users.len();
        directory.users.retain(|u| u.userid != "huangmin");
        if directory.users.len() < before {
            done.push("huangmin (黄敏) left the company".to_owned());
        }
        directory
            .departments
            .push(SimDepartment::new(7, "测试组", 2));
        done.push("department 7 测试组 created under 研发中心".to_owned());
        let mut hire = SimUser::new("sunli", "孙丽", &[7]);
        hire.position = "测试工程师".into();
        hire.mobile = "13812345678".into();
        hire.email = "sunli@xinghe.example.com".into();
        directory.users.push(hire);
        done.push("sunli (孙丽) joined 测试组".to_owned());
        if let Some(department) = directory.departments.iter_mut().find(|d| d.id == 6) {
            department.name = "人力资源部".into();
            done.push("department 6 renamed 行政人事部 -> 人力资源部".to_owned());
        }
        done
    })
}

/// Prints the events of one run up to its `sync.completed`; returns the last seq.
async fn read_run(
    out: &mut Output,
    lines: &mut BufReader<OwnedReadHalf>,
) -> Result<i64, DemoError> {
    loop {
        let event = tokio::time::timeout(SYNC_TIMEOUT, next_json(lines))
            .await
            .map_err(|_| DemoError::Timeout)??;
        out.event(&event);
        let seq = event["seq"].as_i64().unwrap_or(0);
        match event["type"].as_str() {
            Some("orgsync.sync.completed") => return Ok(seq),
            Some("orgsync.sync.failed" | "orgsync.sync.held") => {
                return Err(DemoError::SyncFailed(event["data"].to_string()))
            }
            _ => {}
        }
    }
}

async fn next_json(lines: &mut BufReader<OwnedReadHalf>) -> Result<Value, DemoError> {
    let mut line = String::new();
    if lines.read_line(&mut line).await? == 0 {
        return Err(DemoError::Protocol(
            "the daemon closed the connection".into(),
        ));
    }
    serde_json::from_str(&line).map_err(|e| DemoError::Protocol(format!("{e}: {line}")))
}

/// Narration and events: a summary line per event, or with `--json` the raw CloudEvents
/// lines on stdout and the narration on stderr.
struct Output {
    json_output: bool,
}

impl Output {
    fn say(&mut self, text: &str) {
        if self.json_output {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    fn event(&mut self, event: &Value) {
        if self.json_output {
            println!("{event}");
            return;
        }
        let data = &event["data"];
        let detail = match event["type"].as_str().unwrap_or_default() {
            "orgsync.department.created" | "orgsync.department.deleted" => {
                text(&data["department"]["name"])
            }
            "orgsync.member.joined" | "orgsync.member.left" => format!(
                "{} ({})",
                text(&data["member"]["name"]),
                text(&data["member"]["position"])
            ),
            "orgsync.department.updated" | "orgsync.member.updated" => data["changes"]
                .as_object()
                .map(|changes| {
                    changes
                        .iter()
                        .map(|(field, change)| {
                            format!("{field}: {} -> {}", change["old"], change["new"])
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default(),
            "orgsync.sync.completed" => format!("counts {}", data["counts"]),
            _ => data.to_string(),
        };
        println!(
            "  #{:<3} {:<28} {:<18} {detail}",
            event["seq"].as_i64().unwrap_or_default(),
            event["type"].as_str().unwrap_or_default(),
            event["subject"].as_str().unwrap_or_default()
        );
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("").to_owned()
}
