//! The command line (docs/install.md): parsing, dispatch, and exit statuses.

mod directory;
mod login_url;
mod sinks;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::{Config, ConfigError};
use crate::daemon::{self, DaemonError};
use crate::event_reader::{self, ReadError};
use crate::events::TypeFilter;
use crate::matching::commands::{self as matching, CommandError};
use crate::matching::import::Options as ImportOptions;
use crate::matching::lookup;
use crate::queue::Trigger;
use crate::schedule::Schedule;
use crate::store::{consumers, event_log, Store, StoreError};
use crate::sync::{Mode, RunReport, SyncError, Syncer};
use crate::wecom::WecomError;
use crate::{demo, dry_run, logging, socket, status};
use orgsync_simulator as simulator;

#[derive(Parser)]
#[command(
    name = "orgsync",
    version,
    about = "Mirrors a WeCom contact directory into SQLite and publishes every change as CloudEvents on a Unix socket",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `--help` says after the commands: what scripts and systemd act on.
const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  failure (a one-line message on stderr says what is wrong and what to do)
  2  bad usage or configuration
  3  a sync held by the deletion guard (`orgsync status` shows why)

Signals to `orgsync run`:
  SIGUSR1          sync now (requests during a run queue one follow-up run)
  SIGHUP           re-read the config, then sync; a bad config is rejected and the old one stays
  SIGTERM, SIGINT  graceful stop: an apply in progress commits or rolls back, then exit 0

Environment:
  ORGSYNC_CONFIG               the config file, instead of --config
  ORGSYNC_<SECTION>__<KEY>     overrides one config key, e.g. ORGSYNC_WECOM__API_BASE
  RUST_LOG                     overrides log.level

Docs: README.md and docs/ (install, configuration, protocol, matching, simulator).";

#[derive(Args)]
struct ConfigArg {
    /// The configuration file (docs/configuration.md).
    #[arg(
        long,
        value_name = "FILE",
        env = "ORGSYNC_CONFIG",
        default_value = "/etc/orgsync/orgsync.toml",
        // Also after a subcommand's own subcommand: `orgsync sinks resume crm --config F`.
        global = true
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground (systemd runs this).
    Run(ConfigArg),
    /// Pull, diff and apply once now, then exit.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        /// Print what would change, member by member, and write nothing.
        #[arg(long, conflicts_with = "force")]
        dry_run: bool,
        /// Apply even when the deletion guard would hold the run.
        #[arg(long)]
        force: bool,
        /// With --dry-run: also write what WeCom returned to FILE, in the simulator's
        /// directory format (docs/simulator.md), to serve it back with `orgsync simulator
        /// --directory FILE` or keep it as a test fixture. The file holds personal data and is
        /// created mode 0600.
        #[arg(long, value_name = "FILE", requires = "dry_run")]
        dump_pull: Option<PathBuf>,
    },
    /// Ask the running daemon to sync now.
    Resync {
        #[command(flatten)]
        config: ConfigArg,
        /// Wait for the run that serves this request and exit with its outcome: 0 completed,
        /// 1 failed, 3 held.
        #[arg(long)]
        wait: bool,
    },
    /// Write a consistent copy of the store to FILE while the daemon runs (docs/install.md,
    /// "Backup and restore").
    Backup {
        #[command(flatten)]
        config: ConfigArg,
        /// Where the copy goes; it must not exist yet. Created mode 0600: it holds personal data.
        file: PathBuf,
    },
    /// Last runs, counts, next scheduled run, event head, consumer lags.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print stored events, one JSON object per line.
    Events {
        #[command(flatten)]
        config: ConfigArg,
        /// Only events with a seq above this one.
        #[arg(long, value_name = "SEQ")]
        since: Option<i64>,
        /// Keep printing new events as they are committed.
        #[arg(long)]
        follow: bool,
        /// Only events of this type: an exact type (orgsync.member.joined) or a prefix ending
        /// in `.*` (orgsync.member.*). May be given more than once.
        #[arg(long = "type", value_name = "PATTERN")]
        types: Vec<String>,
        /// `json`: the CloudEvents lines as stored; `text`: one short line per event for people.
        #[arg(long, value_enum, default_value_t = EventFormat::Json)]
        format: EventFormat,
    },
    /// Validate the configuration and the secret's presence without calling WeCom.
    CheckConfig(ConfigArg),
    /// The whole pipeline against a built-in simulated WeCom, in a temporary directory.
    Demo {
        /// Print the raw CloudEvents lines instead of a summary per event.
        #[arg(long)]
        json: bool,
    },
    /// Serve the built-in simulated WeCom tenant over HTTP, for trying orgsync out.
    Simulator {
        /// The address to serve on; port 0 picks a free port (the banner names it).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8480")]
        listen: SocketAddr,
        /// A directory as JSON (default: the demo company).
        #[arg(long, value_name = "FILE")]
        directory: Option<PathBuf>,
        /// Serve a generated company of this many members instead: the benchmarks' seeded
        /// generator, for trying orgsync at scale.
        #[arg(long, value_name = "N", conflicts_with = "directory")]
        members: Option<usize>,
        /// Departments of the generated company (default: one per 20 members).
        #[arg(long, value_name = "N", requires = "members")]
        departments: Option<usize>,
        /// Seed of the generated company: the same seed gives the same company.
        #[arg(long, value_name = "N", requires = "members")]
        seed: Option<u64>,
        /// Answer as WeCom answers a self-built app created on or after 2022-06-20: without
        /// members' mobiles, emails, genders and avatars.
        #[arg(long)]
        withhold_sensitive: bool,
    },
    /// The host application's users, which are matched to WeCom members.
    #[command(subcommand)]
    HostUsers(HostUsersCommand),
    /// Link a host user to a WeCom member by hand (automatic matching never undoes it), or
    /// show a link's history.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Link {
        #[command(subcommand)]
        history: Option<LinkCommand>,
        #[command(flatten)]
        config: ConfigArg,
        /// The host application's id of the user.
        #[arg(required = true)]
        host_id: Option<String>,
        /// The member's WeCom userid (case-insensitive).
        #[arg(required = true)]
        userid: Option<String>,
        /// Replace an automatic (phone or name) link of the host user or the member.
        #[arg(long)]
        replace: bool,
    },
    /// Remove a host user's link and hold it from automatic matching.
    Unlink {
        #[command(flatten)]
        config: ConfigArg,
        /// The host application's id of the user.
        host_id: String,
    },
    /// Matching of host users to members.
    #[command(subcommand)]
    Match(MatchCommand),
    /// The mirrored members, one per line (read-only: no secret or daemon needed).
    Members {
        #[command(flatten)]
        config: ConfigArg,
        /// Only the members of this department and its subdepartments.
        #[arg(long, value_name = "ID")]
        department: Option<i64>,
        /// One member object per line, as events carry them.
        #[arg(long)]
        json: bool,
    },
    /// One member's every field, by userid (case-insensitive).
    Member {
        #[command(flatten)]
        config: ConfigArg,
        /// The member's WeCom userid.
        userid: String,
    },
    /// The department tree, indented, with member counts.
    Departments(ConfigArg),
    /// Print the in-app OAuth URL and the web QR-login URL for the app (wecom.corp_id and
    /// wecom.agent_id), one per line, ready to paste; notes on the trusted domain on stderr.
    LoginUrl {
        #[command(flatten)]
        config: ConfigArg,
        /// Where WeCom sends the login code: an https URL of the host application.
        #[arg(long, value_name = "URL")]
        redirect: String,
        /// An opaque value WeCom passes back with the code (letters, digits, '-', '_', '.').
        #[arg(long, value_name = "S")]
        state: Option<String>,
    },
    /// The named consumers: list them with their owner and lag, or remove a stale one.
    Consumers {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: Option<ConsumersCommand>,
    },
    /// The push sinks (docs/sinks.md): list them with their lag and state, resume a paused
    /// one, or replay events to one.
    Sinks {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: Option<SinksCommand>,
    },
}

#[derive(Subcommand)]
enum SinksCommand {
    /// Every sink: its cursor, lag behind the head, state and last error (the default).
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Resume a sink paused by its target's 410 Gone, and retry a failing one at once. Needs
    /// write access to the store (the daemon's user or root).
    Resume {
        /// The sink's name (`name` in its config table).
        name: String,
    },
    /// Deliver again every event from SEQ on: moves the sink's cursor back (admin). Needs
    /// write access to the store.
    Replay {
        /// The sink's name.
        name: String,
        /// The first seq to deliver again: from the oldest event kept to the sink's cursor + 1.
        #[arg(long, value_name = "SEQ")]
        from: i64,
    },
}

#[derive(Subcommand)]
enum ConsumersCommand {
    /// Every consumer: owner, acked seq, lag behind the head, last ack, and whether it holds
    /// back retention (the default).
    List,
    /// Forget a consumer, its cursor and its owner; it no longer holds back retention. Needs
    /// write access to the store (the daemon's user or root).
    Remove {
        /// The consumer's name.
        name: String,
    },
}

#[derive(Subcommand)]
enum LinkCommand {
    /// Every link a host user or a member had: when, how, by whom, and what it replaced.
    History {
        #[command(flatten)]
        config: ConfigArg,
        /// A host user id or a member's userid.
        id: String,
    },
}

#[derive(Subcommand)]
enum HostUsersCommand {
    /// Import host users from CSV (header id,name,mobile,email) or JSON Lines, then re-match.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// The file to import: CSV or JSON Lines, told apart by its first character.
        file: PathBuf,
        /// Import the good rows even if some are bad (they are listed on stderr).
        #[arg(long)]
        skip_bad: bool,
        /// The file is the whole set: remove the host users it does not list.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum MatchCommand {
    /// Counts, ambiguous candidates, and who is unmatched and why.
    Report {
        #[command(flatten)]
        config: ConfigArg,
        /// Machine-readable output, listing everything.
        #[arg(long)]
        json: bool,
    },
}

/// Failures of a command, each with its exit status (docs/install.md).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Wecom(#[from] WecomError),
    #[error(transparent)]
    Matching(#[from] CommandError),
    #[error("sync held by the deletion guard: {0}")]
    Held(String),
    #[error("{0}")]
    Failed(String),
    /// A bad argument: exit 2.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => 2,
            CliError::Daemon(DaemonError::Config(_) | DaemonError::Schedule(_)) => 2,
            CliError::Daemon(DaemonError::Http(crate::http::HttpError::Tls { .. })) => 2,
            CliError::Wecom(WecomError::Settings(_))
            | CliError::Daemon(DaemonError::Wecom(WecomError::Settings(_))) => 2,
            CliError::Matching(error) => error.exit_code(),
            CliError::Held(_) => 3,
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// The seed `orgsync simulator --members` generates with unless told: the benchmarks' default,
/// so that the same command serves the company the numbers in docs/performance.md came from.
const GENERATED_SEED: u64 = 2024;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let _ = writeln!(io::stderr(), "orgsync: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))
}

fn load(path: &Path) -> Result<Config, CliError> {
    init(Config::load(path)?)
}

/// For the commands that do not call WeCom (they talk to the daemon, or read and write the
/// store): no corp secret needed, so they work where the secret is only a systemd credential.
fn load_without_secret(path: &Path) -> Result<Config, CliError> {
    init(Config::load_without_secret(path)?)
}

fn init(config: Config) -> Result<Config, CliError> {
    logging::init(&config.log);
    for warning in config.warnings() {
        tracing::warn!(%warning, "config");
    }
    Ok(config)
}

fn dispatch(command: Command) -> Result<u8, CliError> {
    match command {
        Command::Run(args) => {
            let config = load(&args.config)?;
            // Before the runtime starts its threads: this edits the environment.
            let notifier = daemon::notify::Notifier::from_env();
            runtime()?.block_on(daemon::run(config, &args.config, notifier))?;
            Ok(0)
        }
        Command::Sync {
            config,
            dry_run,
            force,
            dump_pull,
        } => sync(&load(&config.config)?, dry_run, force, dump_pull),
        Command::Resync { config, wait } => {
            let config = load_without_secret(&config.config)?;
            runtime()?.block_on(resync(&config.socket.path, wait))
        }
        Command::Members {
            config,
            department,
            json,
        } => directory::members(&load_without_secret(&config.config)?, department, json),
        Command::Member { config, userid } => {
            directory::member(&load_without_secret(&config.config)?, &userid)
        }
        Command::Departments(args) => directory::departments(&load_without_secret(&args.config)?),
        Command::LoginUrl {
            config,
            redirect,
            state,
        } => login_url::print(
            &load_without_secret(&config.config)?,
            &redirect,
            state.as_deref(),
        ),
        Command::Consumers { config, action } => {
            let config = load_without_secret(&config.config)?;
            match action.unwrap_or(ConsumersCommand::List) {
                ConsumersCommand::List => list_consumers(&config),
                ConsumersCommand::Remove { name } => remove_consumer(&config.store.path, &name),
            }
        }
        Command::Sinks { config, action } => {
            let config = load_without_secret(&config.config)?;
            match action.unwrap_or(SinksCommand::List { json: false }) {
                SinksCommand::List { json } => sinks::list(&config, json),
                SinksCommand::Resume { name } => sinks::resume(&config, &name),
                SinksCommand::Replay { name, from } => sinks::replay(&config, &name, from),
            }
        }
        Command::Backup { config, file } => {
            let config = load_without_secret(&config.config)?;
            backup(&config.store.path, &file)
        }
        Command::Status { config, json } => status(&load_without_secret(&config.config)?, json),
        Command::Events {
            config,
            since,
            follow,
            types,
            format,
        } => {
            let mut filter = TypeFilter::default();
            for pattern in &types {
                filter
                    .add(pattern)
                    .map_err(|e| CliError::Usage(format!("--type: {e}")))?;
            }
            let filter = (!types.is_empty()).then_some(filter);
            let config = load_without_secret(&config.config)?;
            events(&config, since, follow, filter.as_ref(), format)
        }
        Command::CheckConfig(args) => {
            let config = Config::load(&args.config)?;
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            println!("# {} is valid", args.config.display());
            print!("{}", config.redacted_toml());
            Ok(0)
        }
        Command::Demo { json } => {
            logging::init_for_demo();
            runtime()?
                .block_on(demo::run(json))
                .map_err(|e| CliError::Failed(format!("demo failed: {e}")))?;
            Ok(0)
        }
        Command::Simulator {
            listen,
            directory,
            members,
            departments,
            seed,
            withhold_sensitive,
        } => {
            logging::init_for_demo();
            let mut directory = match (directory, members) {
                (Some(path), _) => simulator::Directory::load(&path)
                    .map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?,
                (None, Some(members)) => simulator::Directory::generate(
                    seed.unwrap_or(GENERATED_SEED),
                    departments.unwrap_or(members / 20).max(1),
                    members,
                ),
                (None, None) => simulator::Directory::sample(),
            };
            directory.withhold_sensitive |= withhold_sensitive;
            // A simulated tenant's made-up secret: printing it is how a user configures orgsync.
            let banner = format!(
                "corp_id {} with secret {} ({} departments, {} members); Ctrl-C stops it",
                directory.corp_id,
                directory.corp_secret,
                directory.departments.len(),
                directory.users.len()
            );
            runtime()?
                .block_on(simulator::serve(listen, directory, |api_base| {
                    println!("simulated WeCom on {api_base}: {banner}");
                }))
                .map_err(|e| match e.kind() {
                    io::ErrorKind::AddrInUse => CliError::Failed(format!(
                        "cannot listen on {listen}: the address is in use; choose another with \
                         --listen, or port 0 for a free one (--listen 127.0.0.1:0)"
                    )),
                    _ => CliError::Failed(format!("simulator on {listen} failed: {e}")),
                })?;
            Ok(0)
        }
        Command::HostUsers(HostUsersCommand::Import {
            config,
            file,
            skip_bad,
            replace,
        }) => {
            let options = ImportOptions { replace, skip_bad };
            matching::import(&load_without_secret(&config.config)?, &file, options)?;
            Ok(0)
        }
        Command::Link {
            history: Some(LinkCommand::History { config, id }),
            ..
        } => {
            matching::history(&load_without_secret(&config.config)?, &id)?;
            Ok(0)
        }
        Command::Link {
            history: None,
            config,
            host_id: Some(host_id),
            userid: Some(userid),
            replace,
        } => {
            let config = load_without_secret(&config.config)?;
            matching::link(&config, &host_id, &userid, replace)?;
            Ok(0)
        }
        Command::Link { .. } => Err(CliError::Usage(
            "give HOST_ID and USERID, or `history ID`".to_owned(),
        )),
        Command::Unlink { config, host_id } => {
            matching::unlink(&load_without_secret(&config.config)?, &host_id)?;
            Ok(0)
        }
        Command::Match(MatchCommand::Report { config, json }) => {
            matching::report(&load_without_secret(&config.config)?, json)?;
            Ok(0)
        }
    }
}

fn sync(
    config: &Config,
    dry_run: bool,
    force: bool,
    dump_pull: Option<PathBuf>,
) -> Result<u8, CliError> {
    let mut syncer = Syncer::from_config(config)?;
    syncer.dump_pull = dump_pull;
    let mode = match (dry_run, force) {
        (true, _) => Mode::DryRun,
        (false, true) => Mode::Force,
        (false, false) => Mode::Apply,
    };
    let runtime = runtime()?;
    let report = runtime.block_on(async {
        // SIGTERM or Ctrl-C during the pull aborts the run cleanly: a `failed` event, no changes.
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending().await,
            }
        };
        Ok::<_, CliError>(syncer.run(Trigger::Cli, mode, stop).await?)
    })?;
    report.log_brief(Trigger::Cli);
    match report {
        RunReport::DryRun {
            changes,
            links,
            hold,
        } => {
            print!("{}", dry_run::render(&changes, &links, hold.as_ref()));
            Ok(0)
        }
        RunReport::Completed { run, counts, stats } => {
            println!(
                "run {run} completed: {} joined, {} updated, {} left; {} departments created, {} updated, {} deleted; {} links created, {} removed; mirror has {} members in {} departments ({} API calls, pull {} ms, apply {} ms)",
                counts.changes.members_joined,
                counts.changes.members_updated,
                counts.changes.members_left,
                counts.changes.departments_created,
                counts.changes.departments_updated,
                counts.changes.departments_deleted,
                counts.links_created,
                counts.links_removed,
                counts.members,
                counts.departments,
                stats.api_calls,
                stats.pull_ms,
                stats.apply_ms,
            );
            look_up(&runtime, config, &syncer)?;
            Ok(0)
        }
        RunReport::Held { run, hold, .. } => {
            Err(CliError::Held(format!("run {run}: {}", hold.message())))
        }
        RunReport::Failed { run, error } => Err(CliError::Failed(format!(
            "sync run {run} failed ({}): {error}",
            error.code()
        ))),
    }
}

/// The userid lookups that follow a completed run (docs/matching.md#lookups); Ctrl-C stops
/// them after the batch in flight is committed.
fn look_up(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    syncer: &Syncer,
) -> Result<(), CliError> {
    let settings = config.lookup_settings();
    let summary = runtime.block_on(async {
        let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop_tx.send(true);
            }
        });
        lookup::run(
            &syncer.client,
            config.store.path.clone(),
            syncer.source.clone(),
            &settings,
            &mut stop,
        )
        .await
    });
    let summary = summary.map_err(|e| CliError::Failed(e.to_string()))?;
    // A pass WeCom refused or that failed is shown even when no lookup was answered.
    if summary.calls > 0
        || matches!(
            summary.ended,
            lookup::Ended::Failed(_) | lookup::Ended::Blocked
        )
    {
        println!(
            "userid lookups: {} asked, {} found, {} not found; {} links created, {} removed ({})",
            summary.calls,
            summary.hits,
            summary.misses,
            summary.links_created,
            summary.links_removed,
            match &summary.ended {
                lookup::Ended::Done => "done".to_owned(),
                lookup::Ended::Budget =>
                    "today's failure budget is spent; the rest tomorrow".to_owned(),
                lookup::Ended::Blocked =>
                    "WeCom refused lookups (45009); they pause for an hour".to_owned(),
                lookup::Ended::Failed(why) => format!("stopped: {why}"),
                lookup::Ended::Stopped => "interrupted".to_owned(),
                lookup::Ended::Disabled => "off".to_owned(),
            }
        );
    }
    Ok(())
}

fn status(config: &Config, json_output: bool) -> Result<u8, CliError> {
    // The daemon's answer includes what it is doing right now; without a daemon, the store
    // alone tells the rest.
    let asked = runtime()?.block_on(socket::request(
        &config.socket.path,
        &json!({"op": "status"}),
    ));
    // An impostor on the socket is reported, not papered over with the store's view.
    if let Err(untrusted @ socket::ClientError::Untrusted { .. }) = &asked {
        return Err(CliError::Failed(untrusted.to_string()));
    }
    let from_daemon = asked
        .as_ref()
        .ok()
        .and_then(|reply| serde_json::from_value::<status::Status>(reply["status"].clone()).ok());
    let report = match from_daemon {
        Some(report) => report,
        None => {
            // Opening would create an empty store, and a health check would pass on a typo.
            // `exists` is also false for a store this user may not read.
            if !config.store.path.exists() {
                let daemon = match &asked {
                    Err(error) => error.to_string(),
                    Ok(_) => "its status reply is not one this orgsync reads".to_owned(),
                };
                return Err(CliError::Failed(format!(
                    "cannot ask the daemon ({daemon}), and there is no store this user can \
                     read at {}; has orgsync run with this config?",
                    config.store.path.display()
                )));
            }
            let schedule = Schedule::new(&config.schedule.cron, config.schedule.timezone)
                .map_err(|e| CliError::Failed(e.to_string()))?;
            let store = Store::open_read_only(&config.store.path)?;
            status::collect(
                store.conn(),
                &config.wecom.corp_id,
                &schedule,
                chrono::Utc::now(),
            )
            .map_err(|e| store.explain(e))?
        }
    };
    if json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report.render());
    }
    if let Some(problem) = report.problem() {
        let _ = writeln!(io::stderr(), "orgsync: {problem}");
    }
    Ok(report.exit_code() as u8)
}

/// `orgsync resync [--wait]`. With `--wait`, a subscription to the run events is opened before
/// the request, so the outcome of the run that serves it cannot be missed.
async fn resync(socket_path: &Path, wait: bool) -> Result<u8, CliError> {
    let failed = |e: socket::ClientError| CliError::Failed(e.to_string());
    let mut outcomes = match wait {
        true => {
            let subscribe = json!({"op": "subscribe", "types": ["orgsync.sync.*"]});
            let mut lines = socket::send(socket_path, &subscribe)
                .await
                .map_err(failed)?;
            let reply = lines.next().await.map_err(failed)?;
            if reply["ok"] != true {
                return Err(CliError::Failed(format!(
                    "the daemon refused to report the outcome: {}",
                    reply["error"]["message"]
                        .as_str()
                        .unwrap_or("no reason given")
                )));
            }
            Some(lines)
        }
        false => None,
    };
    let reply = socket::request(socket_path, &json!({"op": "resync"}))
        .await
        .map_err(failed)?;
    let Some(events) = &mut outcomes else {
        println!("sync queued");
        return Ok(0);
    };
    let after = reply["after_run"].as_i64().unwrap_or(0);
    println!("sync queued; waiting for it (Ctrl-C stops waiting, not the run)");
    loop {
        let event = events.next().await.map_err(failed)?;
        let run: i64 = event["data"]["run"]
            .as_str()
            .and_then(|run| run.parse().ok())
            .unwrap_or(0);
        if run <= after {
            continue;
        }
        let kind = event["type"].as_str().unwrap_or_default();
        return match kind {
            "orgsync.sync.completed" => {
                println!("run {run} completed: {}", event["data"]["counts"]);
                Ok(0)
            }
            "orgsync.sync.held" => Err(CliError::Held(format!(
                "run {run}: {}",
                event["data"]["reason"].as_str().unwrap_or("held")
            ))),
            _ => Err(CliError::Failed(format!(
                "run {run} failed ({}): {}",
                event["data"]["error"]["code"].as_str().unwrap_or("?"),
                event["data"]["error"]["message"].as_str().unwrap_or("?")
            ))),
        };
    }
}

/// `orgsync consumers list`.
fn list_consumers(config: &Config) -> Result<u8, CliError> {
    let store = Store::open_read_only(&config.store.path)?;
    let head = event_log::head(store.conn()).map_err(|e| store.explain(e))?;
    let list = consumers::list(store.conn()).map_err(|e| store.explain(e))?;
    if list.is_empty() {
        println!("no consumers");
        return Ok(0);
    }
    let retained_since =
        chrono::Utc::now() - chrono::Duration::days(i64::from(config.events.retention_days));
    println!(
        "{:<24} {:<12} {:>10} {:>8}  {:<25} retention",
        "NAME", "OWNER", "ACKED", "LAG", "LAST ACK"
    );
    for consumer in list {
        let holds = consumer.holds_events(retained_since);
        println!(
            "{:<24} {:<12} {:>10} {:>8}  {:<25} {}",
            consumer.name,
            consumer.owner.as_deref().unwrap_or("-"),
            consumer.acked_seq,
            head - consumer.acked_seq,
            consumer.updated_at,
            if holds {
                "holds events back"
            } else {
                "stale: holds nothing back"
            }
        );
    }
    Ok(0)
}

/// `orgsync consumers remove NAME`.
fn remove_consumer(store: &Path, name: &str) -> Result<u8, CliError> {
    let mut store = Store::open_existing(store, crate::store::BUSY_TIMEOUT)?;
    if store.write(|tx| consumers::remove(tx, name))? {
        println!("consumer {name:?} removed");
        Ok(0)
    } else {
        Err(CliError::Failed(format!(
            "there is no consumer {name:?}; `orgsync consumers` lists them"
        )))
    }
}

/// `orgsync backup FILE`: SQLite's online backup of the store, consistent while a sync writes.
fn backup(store: &Path, file: &Path) -> Result<u8, CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    // Created here first, so the copy is never readable by others, not even for a moment.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => CliError::Usage(format!(
                "{} exists; remove it or choose another file",
                file.display()
            )),
            _ => CliError::Failed(format!("cannot create {}: {e}", file.display())),
        })?;
    let source = Store::open_read_only(store)?;
    let copied = source
        .conn()
        .backup(
            rusqlite::MAIN_DB,
            file,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .map_err(|e| {
            let _ = std::fs::remove_file(file);
            CliError::Failed(format!("backup to {} failed: {e}", file.display()))
        });
    copied?;
    // A restored backup is another store: its log stops where the copy was taken and its seqs
    // will be handed out again, so it gets an identity of its own, and host applications that
    // followed the live store are told `store_changed` and list again.
    rusqlite::Connection::open(file)
        .and_then(|copy| {
            copy.execute(
                "UPDATE meta SET value = lower(hex(randomblob(16))) WHERE key = 'store_id'",
                [],
            )
        })
        .map_err(|e| CliError::Failed(format!("cannot mark the backup {}: {e}", file.display())))?;
    println!("{} backed up to {}", store.display(), file.display());
    Ok(0)
}

/// How `orgsync events` prints.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EventFormat {
    Json,
    Text,
}

/// `orgsync events`: the store read-only, through the same reader a socket subscription uses,
/// so a `--since` past the head or into pruned events is the same error here as there.
fn events(
    config: &Config,
    since: Option<i64>,
    follow: bool,
    types: Option<&TypeFilter>,
    format: EventFormat,
) -> Result<u8, CliError> {
    let store = Store::open_read_only(&config.store.path)?;
    // Without --since: every event still kept, from the oldest on.
    let since = match since {
        Some(since) => since,
        None => event_log::oldest(store.conn())
            .map_err(|e| store.explain(e))?
            .map_or(0, |oldest| oldest - 1),
    };
    let (mut cursor, _) =
        event_reader::start(store.conn(), Some(since), None).map_err(|e| match e {
            ReadError::Store(e) => CliError::Store(store.explain(e)),
            other => CliError::Failed(other.to_string()),
        })?;
    let stdout = io::stdout();
    loop {
        let batch = event_reader::next_batch(store.conn(), cursor, types).map_err(|e| match e {
            ReadError::Store(e) => CliError::Store(store.explain(e)),
            other => CliError::Failed(other.to_string()),
        })?;
        let Some(last) = batch.last_seq else {
            if !follow {
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(250));
            continue;
        };
        cursor = last;
        let mut out = stdout.lock();
        for event in &batch.events {
            let written = match format {
                EventFormat::Json => writeln!(out, "{}", event.body),
                EventFormat::Text => writeln!(out, "{}", event_line(&event.body)),
            };
            if written.is_err() {
                // The reader went away (`orgsync events | head`): not an error.
                return Ok(0);
            }
        }
        if out.flush().is_err() {
            return Ok(0);
        }
    }
}

/// One event for people: `#SEQ  TIME  TYPE  SUBJECT`.
fn event_line(body: &str) -> String {
    let event: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let field = |key: &str| event[key].as_str().unwrap_or("?").to_owned();
    format!(
        "#{:<8} {}  {:<28} {}",
        event["seq"],
        field("time"),
        field("type"),
        field("subject")
    )
}
