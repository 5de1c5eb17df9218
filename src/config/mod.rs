//! orgsync's configuration: built-in defaults, then one TOML file, then environment variables
//! `ORGSYNC_<SECTION>__<KEY>`, validated as a whole before anything starts.
//!
//! Relative paths (`store.path`, `socket.path`, `wecom.corp_secret_file`), whether written in the
//! file or in the environment, are resolved against the directory that holds the config file. The
//! daemon then never depends on its working directory (systemd starts it in `/`), and a directory
//! holding a config, its secret and its database works wherever it is.
//!
//! Loading collects [`ConfigWarning`]s instead of logging them, because logging is set up from
//! the `[log]` section of the very config being loaded: log them once it is.

mod callback;
mod error;
mod http;
mod secret;
mod settings;
mod sinks;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono_tz::Tz;
use figment::providers::{Env, Format, Toml};
use figment::{Figment, Metadata, Provider};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::guard::OutOfScope;
use crate::model::DepartmentId;
use crate::schedule::{Schedule, ScheduleError};
use crate::wecom::callback::CallbackCrypto;
pub use callback::CallbackConfig;
pub use error::{ConfigError, Origin, SecretFileProblem};
pub use http::{HttpConfig, HttpToken, HttpTokenConfig, TokenScope, MIN_TOKEN_CHARS};
use secret::Secret;
pub use secret::SecretSource;
pub use sinks::{
    decode_secret, NatsCredentials, NatsSinkConfig, SigningKeys, SinkStart, SinksConfig,
    WebhookSinkConfig,
};

const ENV_PREFIX: &str = "ORGSYNC_";
const ENV_SEPARATOR: &str = "__";

/// `sun_path` holds 108 bytes on Linux, including the terminating NUL.
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// The validated configuration. Build it with [`Config::load`] or [`Config::from_toml_str`];
/// every field has passed validation and every path is absolute.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub wecom: WecomConfig,
    pub schedule: ScheduleConfig,
    pub store: StoreConfig,
    pub socket: SocketConfig,
    pub safety: SafetyConfig,
    pub matching: MatchingConfig,
    pub events: EventsConfig,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub callback: CallbackConfig,
    pub sinks: SinksConfig,
    /// `None` only when loaded by [`Config::load_without_secret`].
    #[serde(skip)]
    secret: Option<(Secret, SecretSource)>,
    /// The HTTP API's bearer tokens; empty when loaded without secrets.
    #[serde(skip)]
    http_tokens: Vec<HttpToken>,
    /// The callbacks' token and key, checked; `None` when callbacks are off or the config was
    /// loaded without secrets.
    #[serde(skip)]
    callback_crypto: Option<Arc<CallbackCrypto>>,
    /// Each webhook sink's signing keys, in the order of `sinks.webhook`; empty when loaded
    /// without secrets.
    #[serde(skip)]
    sink_keys: Vec<SigningKeys>,
    /// Each NATS sink's credentials, in the order of `sinks.nats`; empty when loaded without
    /// secrets.
    #[serde(skip)]
    nats_credentials: Vec<Option<NatsCredentials>>,
    #[serde(skip)]
    warnings: Vec<ConfigWarning>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WecomConfig {
    /// Required. Never empty and without whitespace.
    pub corp_id: String,
    /// Discouraged; read the secret through [`Config::corp_secret`], which covers every source.
    corp_secret: Option<Secret>,
    pub corp_secret_file: Option<PathBuf>,
    pub agent_id: Option<i64>,
    /// An http(s) URL without a trailing slash, so `format!("{api_base}/cgi-bin/gettoken")` works;
    /// plain http only to a loopback host.
    pub api_base: String,
    pub root_department: DepartmentId,
    /// Concurrent WeCom requests, 1..=32.
    pub concurrency: usize,
    pub request_timeout_secs: u64,
    /// Retries of one WeCom call after a transient failure (-1, 5xx, a reset connection, a
    /// timeout, a body that is not JSON), 0..=10.
    pub retry_attempts: u32,
    /// The first delay before such a retry (and after a 45033), doubling up to 30 s, jittered;
    /// 1..=30000.
    pub retry_base_delay_ms: u64,
    /// How long every call pauses after a 45009 (frequency limit), 1..=3600. WeCom blocks an API
    /// for 60 s after a per-minute limit, so less than that only earns another 45009.
    pub rate_limit_pause_secs: u64,
}

impl Default for WecomConfig {
    fn default() -> Self {
        Self {
            // Empty means "not set": validation reports it as a missing key.
            corp_id: String::new(),
            corp_secret: None,
            corp_secret_file: None,
            agent_id: None,
            api_base: "https://qyapi.weixin.qq.com".to_owned(),
            root_department: 1,
            concurrency: 4,
            request_timeout_secs: 30,
            retry_attempts: 3,
            retry_base_delay_ms: 1000,
            rate_limit_pause_secs: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Six fields with seconds (`sec min hour day month weekday`), checked with the parser
    /// tokio-cron-scheduler uses, so a schedule that validates is one the scheduler accepts.
    pub cron: String,
    #[serde(with = "timezone")]
    pub timezone: Tz,
    /// How often the daemon retries a failed run before waiting for the next trigger.
    pub retry_attempts: u32,
    /// The delay before the first retry; each further retry waits twice as long.
    pub retry_delay_secs: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            cron: "0 0 2 * * *".to_owned(),
            timezone: chrono_tz::Asia::Shanghai,
            retry_attempts: 3,
            retry_delay_secs: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database; absolute after loading.
    pub path: PathBuf,
    /// How long a sync waits for the write lock another process holds on the store (another
    /// `orgsync sync` applying a large run) before it fails; at least 1.
    pub busy_timeout_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/var/lib/orgsync/orgsync.db"),
            busy_timeout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketConfig {
    /// Absolute after loading, and short enough for a Unix socket address.
    pub path: PathBuf,
    /// The group that may connect; the socket file is created mode 0660 in this group.
    pub group: Option<String>,
    /// Peers allowed to use admin ops, besides uid 0 and the daemon's own uid.
    pub admin_uids: Vec<u32>,
    pub admin_gids: Vec<u32>,
    pub max_connections: usize,
    /// The most connections one peer uid may hold at once.
    pub max_connections_per_uid: usize,
    /// Create the socket even in a directory others could replace it in.
    pub allow_insecure_directory: bool,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/run/orgsync/orgsync.sock"),
            group: None,
            admin_uids: Vec::new(),
            admin_gids: Vec::new(),
            max_connections: 256,
            max_connections_per_uid: 64,
            allow_insecure_directory: false,
        }
    }
}

/// The deletion guard: a run that would remove more members than either limit is held.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafetyConfig {
    pub max_deletes: usize,
    /// A fraction of the mirrored members, within 0..=1.
    pub max_delete_ratio: f64,
    pub out_of_scope: OutOfScope,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        Self {
            max_deletes: 500,
            max_delete_ratio: 0.2,
            out_of_scope: OutOfScope::Hold,
        }
    }
}

/// Userid lookups for matching when WeCom withholds mobiles (docs/matching.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingConfig {
    pub lookups: bool,
    /// Failed lookups per day; 0: 5% of the mirrored members, at least 1.
    pub lookup_failure_budget: u64,
    /// At least 1.
    pub lookup_miss_ttl_hours: u64,
    /// At least 1.
    pub lookup_recheck_days: u64,
    /// 1 to 16.
    pub lookup_concurrency: usize,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            lookups: true,
            lookup_failure_budget: 0,
            lookup_miss_ttl_hours: 24,
            lookup_recheck_days: 30,
            lookup_concurrency: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// At least 1.
    pub retention_days: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { retention_days: 30 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive, checked at load.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Something that works but that an operator should fix; see the module docs for when to log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    InlineSecret,
    SecretFileReadable {
        path: PathBuf,
        mode: u32,
    },
    /// A secret key is set, so the systemd credential that also exists is not used.
    CredentialIgnored {
        credential: PathBuf,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::InlineSecret => f.write_str(
                "the corp secret is written inline in `wecom.corp_secret`, where whoever reads the \
                 config or the environment sees it; put it in a file readable only by orgsync and \
                 set `wecom.corp_secret_file`, or pass the systemd credential `corp_secret`",
            ),
            ConfigWarning::SecretFileReadable { path, mode } => write!(
                f,
                "the corp secret file {} is readable by group or others (mode {mode:04o}); make \
                 it readable only by the user orgsync runs as (chmod 600)",
                path.display()
            ),
            ConfigWarning::CredentialIgnored { credential } => write!(
                f,
                "the systemd credential {} is ignored because `wecom.corp_secret` or \
                 `wecom.corp_secret_file` is set; remove one of them",
                credential.display()
            ),
        }
    }
}

/// The shape of the file; [`FileConfig::validate`] turns it into a [`Config`].
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    wecom: WecomConfig,
    schedule: ScheduleConfig,
    store: StoreConfig,
    socket: SocketConfig,
    safety: SafetyConfig,
    matching: MatchingConfig,
    events: EventsConfig,
    log: LogConfig,
    http: HttpConfig,
    callback: CallbackConfig,
    sinks: SinksConfig,
}

impl Config {
    /// Loads `path`, applies `ORGSYNC_<SECTION>__<KEY>` environment variables on top, reads the
    /// corp secret, and validates everything. Every `ORGSYNC_*` variable must name a known key.
    /// Log [`Config::warnings`] once logging is set up.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, true)
    }

    /// [`Config::load`] for commands that never call WeCom (`status`, `resync`, `events`): the
    /// corp secret is not read. They then work from a shell, where the systemd credential that
    /// holds the secret of a service does not exist, and for users who may not read the secret.
    pub fn load_without_secret(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, false)
    }

    fn load_with(path: &Path, read_secret: bool) -> Result<Config, ConfigError> {
        let path = std::path::absolute(path).map_err(|error| ConfigError::Unreadable {
            path: path.to_owned(),
            error,
        })?;
        let text = fs::read_to_string(&path).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => ConfigError::NotFound { path: path.clone() },
            _ => ConfigError::Unreadable {
                path: path.clone(),
                error,
            },
        })?;
        // ORGSYNC_CONFIG names the file itself (the command line's --config), not a key.
        let env = Env::prefixed(ENV_PREFIX)
            .ignore(&["CONFIG"])
            .split(ENV_SEPARATOR);
        let env_metadata = env.metadata();
        let figment = Figment::from(Toml::string(&text)).merge(env);
        let at = Locator {
            figment: &figment,
            file: Origin::File(path.clone()),
            env: Some(env_metadata),
        };
        let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        let base_dir = path.parent().unwrap_or(Path::new("/"));
        Self::build(&at, base_dir, credentials_dir.as_deref(), read_secret)
    }

    /// Builds a config from TOML text alone, for tests and `orgsync demo`: no environment
    /// variables and no systemd credential, so the result does not depend on where it runs.
    /// Relative paths are resolved against `base_dir`.
    pub fn from_toml_str(toml: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let figment = Figment::from(Toml::string(toml));
        let at = Locator {
            figment: &figment,
            file: Origin::Text,
            env: None,
        };
        Self::build(&at, base_dir, None, true)
    }

    fn build(
        at: &Locator,
        base_dir: &Path,
        credentials_dir: Option<&Path>,
        read_secret: bool,
    ) -> Result<Config, ConfigError> {
        let file: FileConfig = at
            .figment
            .extract()
            .map_err(|error| error::from_figment(error, at))?;
        let file = file.validate(base_dir, at)?;
        let (http_tokens, callback_crypto) = if read_secret {
            (
                file.http.read_tokens(credentials_dir, at)?,
                file.callback
                    .read_crypto(&file.wecom.corp_id, credentials_dir, at)?,
            )
        } else {
            (Vec::new(), None)
        };
        let (sink_keys, nats_credentials) = if read_secret {
            (
                file.sinks.read_secrets(credentials_dir, at)?,
                file.sinks.read_nats_credentials(at)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let (secret, warnings) = if read_secret {
            let resolved = secret::resolve(
                file.wecom.corp_secret.as_ref(),
                file.wecom.corp_secret_file.as_deref(),
                credentials_dir,
            )?;
            (Some((resolved.secret, resolved.source)), resolved.warnings)
        } else {
            (None, Vec::new())
        };
        Ok(Config {
            wecom: file.wecom,
            schedule: file.schedule,
            store: file.store,
            socket: file.socket,
            safety: file.safety,
            matching: file.matching,
            events: file.events,
            log: file.log,
            http: file.http,
            callback: file.callback,
            secret,
            http_tokens,
            callback_crypto,
            sinks: file.sinks,
            sink_keys,
            nats_credentials,
            warnings,
        })
    }

    /// The WeCom app secret, whichever source it came from; `None` if the config was loaded
    /// without it. Never log it.
    pub fn corp_secret(&self) -> Option<&str> {
        self.secret.as_ref().map(|(secret, _)| secret.expose())
    }

    pub fn secret_source(&self) -> Option<&SecretSource> {
        self.secret.as_ref().map(|(_, source)| source)
    }

    /// The HTTP API's bearer tokens (none when loaded without secrets). Never log them.
    pub fn http_tokens(&self) -> &[HttpToken] {
        &self.http_tokens
    }

    /// What verifies and decrypts callbacks, when `callback.listen` is set (and the config was
    /// loaded with its secrets).
    pub fn callback_crypto(&self) -> Option<&Arc<CallbackCrypto>> {
        self.callback_crypto.as_ref()
    }

    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// The effective configuration as TOML for `orgsync check-config`, headed by a comment that
    /// says where the secret comes from. An inline secret shows as `"<redacted>"`.
    pub fn redacted_toml(&self) -> String {
        let body = toml::to_string(self)
            .unwrap_or_else(|error| format!("# cannot render the configuration: {error}\n"));
        let source = self
            .secret_source()
            .map_or_else(|| "not read".to_owned(), ToString::to_string);
        format!("# corp secret: {source}\n\n{body}")
    }
}

impl FileConfig {
    fn validate(mut self, base_dir: &Path, at: &Locator) -> Result<FileConfig, ConfigError> {
        let invalid = |key: &str, reason: String| at.invalid(key, reason);

        let wecom = &mut self.wecom;
        if wecom.corp_id.is_empty() {
            return Err(match at.origin("wecom.corp_id") {
                Origin::Default => ConfigError::MissingKey {
                    key: "wecom.corp_id".to_owned(),
                    origin: at.file.clone(),
                },
                _ => invalid(
                    "wecom.corp_id",
                    "is empty; set it to your corp ID (ww...)".into(),
                ),
            });
        }
        if wecom.corp_id.chars().any(char::is_whitespace) {
            let reason = format!(
                "`{}` contains whitespace; a corp ID never does",
                wecom.corp_id
            );
            return Err(invalid("wecom.corp_id", reason));
        }
        wecom.api_base = normalize_api_base(&wecom.api_base)
            .map_err(|reason| invalid("wecom.api_base", reason))?;
        if wecom.root_department < 1 {
            let reason = format!(
                "{} is not a department id; 1 is the whole directory",
                wecom.root_department
            );
            return Err(invalid("wecom.root_department", reason));
        }
        if !(1..=32).contains(&wecom.concurrency) {
            let reason = format!("{} is not within 1..=32", wecom.concurrency);
            return Err(invalid("wecom.concurrency", reason));
        }
        if let Some(agent_id) = wecom.agent_id.filter(|id| *id < 1) {
            let reason = format!(
                "{agent_id} is not an AgentId; copy the app's AgentId (a positive number, such \
                 as 1000002) from its page in the admin console"
            );
            return Err(invalid("wecom.agent_id", reason));
        }
        if wecom.request_timeout_secs == 0 {
            return Err(invalid(
                "wecom.request_timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if wecom.retry_attempts > 10 {
            let reason = format!(
                "{} is not within 0..=10 (more retries only add to WeCom's load)",
                wecom.retry_attempts
            );
            return Err(invalid("wecom.retry_attempts", reason));
        }
        if !(1..=30_000).contains(&wecom.retry_base_delay_ms) {
            let reason = format!(
                "{} is not within 1..=30000 (milliseconds)",
                wecom.retry_base_delay_ms
            );
            return Err(invalid("wecom.retry_base_delay_ms", reason));
        }
        if !(1..=3600).contains(&wecom.rate_limit_pause_secs) {
            let reason = format!(
                "{} is not within 1..=3600 (WeCom blocks an API for 60 s after a 45009)",
                wecom.rate_limit_pause_secs
            );
            return Err(invalid("wecom.rate_limit_pause_secs", reason));
        }
        if let Some(file) = &mut wecom.corp_secret_file {
            resolve_path(file, base_dir)
                .map_err(|reason| invalid("wecom.corp_secret_file", reason))?;
        }

        check_cron(&self.schedule).map_err(|reason| invalid("schedule.cron", reason))?;

        resolve_path(&mut self.store.path, base_dir)
            .map_err(|reason| invalid("store.path", reason))?;
        if self.store.busy_timeout_secs == 0 {
            return Err(invalid(
                "store.busy_timeout_secs",
                "must be at least 1".into(),
            ));
        }

        let socket = &mut self.socket;
        resolve_path(&mut socket.path, base_dir)
            .map_err(|reason| invalid("socket.path", reason))?;
        let length = socket.path.as_os_str().len();
        if length > MAX_SOCKET_PATH_BYTES {
            let reason = format!(
                "{} is {length} bytes; a Unix socket path can have at most {MAX_SOCKET_PATH_BYTES}",
                socket.path.display()
            );
            return Err(invalid("socket.path", reason));
        }
        if socket.group.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(
                "socket.group",
                "is empty; name a group, or leave the key out".into(),
            ));
        }
        if socket.max_connections == 0 {
            return Err(invalid(
                "socket.max_connections",
                "must be at least 1".into(),
            ));
        }
        if socket.max_connections_per_uid == 0 {
            return Err(invalid(
                "socket.max_connections_per_uid",
                "must be at least 1".into(),
            ));
        }

        let ratio = self.safety.max_delete_ratio;
        if !(0.0..=1.0).contains(&ratio) {
            let reason = format!("{ratio} is not within 0..=1 (it is a fraction: 0.2 means 20%)");
            return Err(invalid("safety.max_delete_ratio", reason));
        }

        let matching = &self.matching;
        for (key, value) in [
            (
                "matching.lookup_miss_ttl_hours",
                matching.lookup_miss_ttl_hours,
            ),
            ("matching.lookup_recheck_days", matching.lookup_recheck_days),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        if !(1..=16).contains(&matching.lookup_concurrency) {
            return Err(invalid(
                "matching.lookup_concurrency",
                format!(
                    "{} is not within 1..=16 (WeCom limits concurrent calls per corp)",
                    matching.lookup_concurrency
                ),
            ));
        }

        if self.events.retention_days == 0 {
            return Err(invalid(
                "events.retention_days",
                "must be at least 1".into(),
            ));
        }

        check_log_level(&self.log.level).map_err(|reason| invalid("log.level", reason))?;

        self.http.validate(base_dir, at)?;
        self.callback.validate(base_dir, at)?;
        self.sinks.validate(base_dir, at)?;

        Ok(self)
    }
}

/// A tracing filter that means what it says. `EnvFilter` takes a bare word such as `verbose` as
/// the name of a module to log at every level, which switches off everything else: the daemon
/// would log nothing at all. A directive is therefore a level, or names its target with `=`,
/// `::` or a span filter.
fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: &str = "trace, debug, info, warn, error or off";
    if filter.trim().is_empty() {
        return Err(format!("is empty; use one of {LEVELS}"));
    }
    for directive in filter.split(',').map(str::trim) {
        let names_target = directive.contains(['=', ':', '[']);
        if !names_target
            && directive
                .parse::<tracing::level_filters::LevelFilter>()
                .is_err()
        {
            return Err(format!(
                "`{directive}` is not a level; use one of {LEVELS}, or `target=level` \
                 (e.g. `info,orgsync::wecom=debug`)"
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|error| format!("`{filter}` is not a log filter: {error}"))
}

/// Finds which layer set a key, so that errors name the key the way the operator wrote it.
struct Locator<'a> {
    figment: &'a Figment,
    /// The config file (or text), where a missing key belongs.
    file: Origin,
    env: Option<Metadata>,
}

impl Locator<'_> {
    /// `key`'s value is invalid for `reason`; the error names where the value came from.
    fn invalid(&self, key: &str, reason: String) -> ConfigError {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            origin: self.origin(key),
            reason,
        }
    }

    fn origin(&self, key: &str) -> Origin {
        match self.figment.find_metadata(key) {
            Some(metadata) if Some(metadata) == self.env.as_ref() => Origin::Env(env_var(key)),
            Some(_) => self.file.clone(),
            None => Origin::Default,
        }
    }
}

/// `wecom.api_base` → `ORGSYNC_WECOM__API_BASE`.
fn env_var(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', ENV_SEPARATOR).to_ascii_uppercase()
    )
}

/// The name of a sink or a token: 1 to 64 letters, digits, `_` or `-`, since it becomes part of
/// a consumer name and of a credential's file name. `names` says what it names.
fn check_name(name: &str, names: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        return Ok(());
    }
    Err(format!(
        "{:?} must be 1 to 64 letters, digits, `_` or `-` ({names})",
        name.chars().take(64).collect::<String>()
    ))
}

fn resolve_path(path: &mut PathBuf, base_dir: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("is empty".to_owned());
    }
    if path.is_relative() {
        *path = base_dir.join(&*path);
    }
    Ok(())
}

/// `url` is https, or plain http to a loopback host; `allowed` says in the error why no more.
pub(super) fn https_unless_loopback(url: &Url, raw: &str, allowed: &str) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(format!(
            "`{raw}` uses plain http to a host that is not loopback; use https ({allowed})"
        )),
        other => Err(format!("`{raw}`: the scheme must be https, not `{other}`")),
    }
}

/// The access token travels in the query string, so plain http is only safe where the traffic
/// never leaves the machine: the simulator in tests and `orgsync demo`.
fn normalize_api_base(raw: &str) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|error| {
        format!("`{raw}` is not a URL ({error}); the default is https://qyapi.weixin.qq.com")
    })?;
    https_unless_loopback(
        &url,
        raw,
        "http is allowed only to 127.0.0.0/8, ::1 and localhost, because the access token \
         travels in the query string",
    )?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{raw}` must not have a query or fragment"));
    }
    let base = url.as_str().trim_end_matches('/');
    if let Some(without) = base.strip_suffix("/cgi-bin") {
        return Err(format!(
            "give it without the `/cgi-bin` suffix: `{without}`"
        ));
    }
    Ok(base.to_owned())
}

fn is_loopback(url: &Url) -> bool {
    // `host_str` writes an IPv6 address in brackets and an IPv4 one in canonical form (`127.1`
    // becomes `127.0.0.1`).
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_cron(schedule: &ScheduleConfig) -> Result<(), String> {
    Schedule::new(&schedule.cron, schedule.timezone)
        .map(drop)
        .map_err(|error| match error {
            ScheduleError::Cron { expr, reason } => format!(
                "`{expr}` is not a schedule ({reason}); write 6 fields with seconds, \
                 `sec min hour day month weekday`, e.g. `0 0 2 * * *`"
            ),
            // A date that never comes (`0 0 0 30 2 *`) parses, but the job would never run.
            ScheduleError::Never { expr } => {
                format!("`{expr}` matches no date, so it would never run")
            }
            other => other.to_string(),
        })
}

/// `schedule.timezone` is an IANA name in the file and a [`Tz`] in memory.
mod timezone {
    use chrono_tz::{Tz, TZ_VARIANTS};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tz: &Tz, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(|_| {
            let hint = TZ_VARIANTS
                .iter()
                .find(|tz| tz.name().eq_ignore_ascii_case(&name))
                .map(|tz| format!("did you mean `{}`? ", tz.name()))
                .unwrap_or_default();
            D::Error::custom(format!(
                "unknown time zone `{name}`; {hint}use an IANA name such as `Asia/Shanghai`"
            ))
        })
    }
}
