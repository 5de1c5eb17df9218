//! `[[sinks.webhook]]`: push delivery of the event log to HTTPS endpoints (docs/sinks.md).
//! Everything about a sink is checked here, at start-up and on every reload, so that a bad
//! sink is a config error that names its key rather than a delivery that fails later.
//!
//! A webhook's signing secrets (Standard Webhooks, `whsec_` + base64) come from `secret_file`
//! or the systemd credential `sink_secret_NAME`; one per line, two during a rotation (both
//! sign every delivery). They are kept in [`SigningKeys`], which never prints them.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use url::Position;

use super::secret::{file_or_credential, read_small_file};
use super::{check_name, https_unless_loopback, is_loopback, resolve_path, ConfigError, Locator};
use crate::events::TypeFilter;

/// A secret file near this size is a wrong file.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// A NATS `.creds` file is a user JWT, its nkey seed and a few lines of comments: 1 to 2 KiB,
/// a few KiB with long permission lists in the JWT. 64 KiB leaves ample room for those and
/// still refuses a wrong file (a log, a binary) without reading it all.
const MAX_CREDENTIALS_FILE_BYTES: u64 = 64 * 1024;

/// Standard Webhooks: a signing key is 24 to 64 bytes.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// At most this many events in one batched POST.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinksConfig {
    pub webhook: Vec<WebhookSinkConfig>,
    pub nats: Vec<NatsSinkConfig>,
}

/// Where a sink seen for the first time starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkStart {
    /// From the oldest event kept.
    #[default]
    Beginning,
    /// From the events committed after it first starts.
    Now,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSinkConfig {
    /// 1 to 64 letters, digits, `_` or `-`; its cursor is the consumer `sink:NAME`.
    pub name: String,
    /// https, or plain http to a loopback host. Printed (`check-config`) with its password and
    /// query values redacted: either may carry a token.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// Without it, the systemd credential `sink_secret_NAME` is read.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Event types or `prefix.*` patterns; empty: every event.
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Events per POST; 1 (the default) sends each event on its own.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default)]
    pub start: SinkStart,
    /// The delay before the first retry of a failed delivery; it doubles, with jitter.
    #[serde(default = "default_retry_first_delay_ms")]
    pub retry_first_delay_ms: u64,
    /// The longest delay between two attempts, jitter included.
    #[serde(default = "default_retry_max_delay_secs")]
    pub retry_max_delay_secs: u64,
    /// A sink failing for longer than this is reported loudly in status and logs.
    #[serde(default = "default_alert_after_secs")]
    pub alert_after_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// 1 to 64 letters, digits, `_` or `-`, unique among all sinks.
    pub name: String,
    /// `nats://HOST:PORT` or `tls://HOST:PORT`; plain `nats://` only to a loopback host unless
    /// `tls_required`.
    pub servers: Vec<String>,
    /// Subjects are `<prefix>.<corp_id>.<type without "orgsync.">`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// The JetStream stream that must take the messages (`Nats-Expected-Stream`); unset, any.
    #[serde(default)]
    pub stream: Option<String>,
    /// Create `stream` (file storage, subjects `<prefix>.<corp_id>.>`) when it is missing.
    #[serde(default)]
    pub create_stream: bool,
    /// A NATS `.creds` file (a user JWT and its nkey seed).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Trusted CA certificates (PEM) besides the system's, for the servers' certificates.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify clients.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Require TLS whatever the URLs say.
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default)]
    pub types: Vec<String>,
    /// How long one publish waits for its PubAck (and a connection for the server).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Messages published before their PubAcks are awaited, in order.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default)]
    pub start: SinkStart,
    #[serde(default = "default_retry_first_delay_ms")]
    pub retry_first_delay_ms: u64,
    #[serde(default = "default_retry_max_delay_secs")]
    pub retry_max_delay_secs: u64,
    #[serde(default = "default_alert_after_secs")]
    pub alert_after_secs: u64,
}

fn default_subject_prefix() -> String {
    "orgsync".to_owned()
}
fn default_max_in_flight() -> usize {
    256
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_batch_size() -> usize {
    1
}
fn default_retry_first_delay_ms() -> u64 {
    1000
}
fn default_retry_max_delay_secs() -> u64 {
    300
}
fn default_alert_after_secs() -> u64 {
    3600
}

/// A webhook's signing keys: the base64-decoded part after `whsec_` of each secret. Neither
/// `Debug` nor serialization shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeys(Vec<Vec<u8>>);

impl SigningKeys {
    /// Builds keys from raw bytes (tests, benchmarks).
    pub fn from_keys(keys: Vec<Vec<u8>>) -> SigningKeys {
        SigningKeys(keys)
    }

    /// The keys themselves. Never log them.
    pub fn expose(&self) -> &[Vec<u8>] {
        &self.0
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} redacted keys>", self.0.len())
    }
}

impl SinksConfig {
    pub(super) fn validate(&mut self, base_dir: &Path, at: &Locator) -> Result<(), ConfigError> {
        self.validate_webhooks(base_dir, at)?;
        self.validate_nats(base_dir, at)
    }

    fn validate_nats(&mut self, base_dir: &Path, at: &Locator) -> Result<(), ConfigError> {
        let key = "sinks.nats";
        let invalid = |reason: String| at.invalid(key, reason);
        let mut names: HashSet<String> = self.webhook.iter().map(|s| s.name.clone()).collect();
        for (index, sink) in self.nats.iter_mut().enumerate() {
            let at_sink =
                |field: &str, reason: String| invalid(format!("nats[{index}].{field} {reason}"));
            check_name(&sink.name, "it names the sink's cursor, `sink:NAME`")
                .map_err(|reason| at_sink("name", reason))?;
            if !names.insert(sink.name.clone()) {
                return Err(invalid(format!(
                    "two sinks are named {:?}; give each sink its own name (each has its own \
                     cursor)",
                    sink.name
                )));
            }
            if sink.servers.is_empty() {
                return Err(at_sink(
                    "servers",
                    "is empty; list the NATS servers, e.g. [\"tls://nats.example.com:4222\"]"
                        .into(),
                ));
            }
            for server in &sink.servers {
                check_nats_server(server, sink.tls_required)
                    .map_err(|reason| at_sink("servers", reason))?;
            }
            if sink.subject_prefix.is_empty()
                || sink.subject_prefix.split('.').any(|token| {
                    token.is_empty()
                        || token
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '*' | '>'))
                })
            {
                return Err(at_sink(
                    "subject_prefix",
                    format!(
                        "{:?} is not a subject prefix: dot-separated tokens without spaces, `*` \
                         or `>` (the default is \"orgsync\")",
                        sink.subject_prefix
                    ),
                ));
            }
            if let Some(stream) = &sink.stream {
                if stream.is_empty()
                    || stream.chars().any(|c| {
                        c.is_whitespace()
                            || c.is_control()
                            || matches!(c, '.' | '*' | '>' | '/' | '\\')
                    })
                {
                    return Err(at_sink(
                        "stream",
                        format!("{stream:?} is not a stream name: no spaces, `.`, `*`, `>`, `/` or `\\`"),
                    ));
                }
            } else if sink.create_stream {
                return Err(at_sink(
                    "create_stream",
                    "needs `stream`, the name of the stream to create".into(),
                ));
            }
            for (field, file) in [
                ("credentials_file", &mut sink.credentials_file),
                ("tls_ca_file", &mut sink.tls_ca_file),
                ("tls_cert_file", &mut sink.tls_cert_file),
                ("tls_key_file", &mut sink.tls_key_file),
            ] {
                if let Some(file) = file {
                    resolve_path(file, base_dir).map_err(|reason| at_sink(field, reason))?;
                }
            }
            if sink.tls_cert_file.is_some() != sink.tls_key_file.is_some() {
                return Err(at_sink(
                    "tls_cert_file",
                    "and tls_key_file go together: a client certificate needs its key".into(),
                ));
            }
            sink.type_filter()
                .map_err(|reason| at_sink("types", reason))?;
            if !(1..=600).contains(&sink.timeout_secs) {
                return Err(at_sink(
                    "timeout_secs",
                    format!("{} is not within 1..=600", sink.timeout_secs),
                ));
            }
            if !(1..=MAX_BATCH).contains(&sink.max_in_flight) {
                return Err(at_sink(
                    "max_in_flight",
                    format!("{} is not within 1..={MAX_BATCH}", sink.max_in_flight),
                ));
            }
            check_retry(
                sink.retry_first_delay_ms,
                sink.retry_max_delay_secs,
                sink.alert_after_secs,
            )
            .map_err(|(field, reason)| at_sink(field, reason))?;
        }
        Ok(())
    }

    fn validate_webhooks(&mut self, base_dir: &Path, at: &Locator) -> Result<(), ConfigError> {
        let key = "sinks.webhook";
        let invalid = |reason: String| at.invalid(key, reason);
        let mut names = HashSet::new();
        for (index, sink) in self.webhook.iter_mut().enumerate() {
            let at_sink =
                |field: &str, reason: String| invalid(format!("webhook[{index}].{field} {reason}"));
            check_name(
                &sink.name,
                "it names the sink's cursor, `sink:NAME`, and its credential, `sink_secret_NAME`",
            )
            .map_err(|reason| at_sink("name", reason))?;
            if !names.insert(sink.name.clone()) {
                return Err(invalid(format!(
                    "two sinks are named {:?}; give each sink its own name (each has its own \
                     cursor)",
                    sink.name
                )));
            }
            check_url(&sink.url).map_err(|reason| at_sink("url", reason))?;
            if let Some(file) = &mut sink.secret_file {
                resolve_path(file, base_dir).map_err(|reason| at_sink("secret_file", reason))?;
            }
            sink.type_filter()
                .map_err(|reason| at_sink("types", reason))?;
            if !(1..=600).contains(&sink.timeout_secs) {
                return Err(at_sink(
                    "timeout_secs",
                    format!("{} is not within 1..=600", sink.timeout_secs),
                ));
            }
            if !(1..=MAX_BATCH).contains(&sink.batch_size) {
                return Err(at_sink(
                    "batch_size",
                    format!(
                        "{} is not within 1..={MAX_BATCH} (1 sends each event on its own)",
                        sink.batch_size
                    ),
                ));
            }
            check_retry(
                sink.retry_first_delay_ms,
                sink.retry_max_delay_secs,
                sink.alert_after_secs,
            )
            .map_err(|(field, reason)| at_sink(field, reason))?;
        }
        Ok(())
    }

    /// Reads every NATS sink's credentials file, in the order of the sinks; `None` for a sink
    /// without one.
    pub(super) fn read_nats_credentials(
        &self,
        at: &Locator,
    ) -> Result<Vec<Option<NatsCredentials>>, ConfigError> {
        self.nats
            .iter()
            .map(|sink| {
                let Some(path) = &sink.credentials_file else {
                    return Ok(None);
                };
                let invalid = |problem: String| {
                    at.invalid(
                        "sinks.nats",
                        format!(
                            "sink {:?}: cannot use the credentials in {}: {problem}",
                            sink.name,
                            path.display()
                        ),
                    )
                };
                let text = read_small_file(
                    path,
                    MAX_CREDENTIALS_FILE_BYTES,
                    ", too large for a NATS .creds file (a user JWT and its nkey seed); check \
                     that credentials_file names the .creds file",
                    "it must be a NATS .creds file (a user JWT and its nkey seed)",
                )
                .map_err(invalid)?;
                async_nats::ConnectOptions::with_credentials(&text).map_err(|e| {
                    invalid(format!(
                        "{e}; it must be a NATS .creds file (a user JWT and its nkey seed)"
                    ))
                })?;
                Ok(Some(NatsCredentials(text)))
            })
            .collect()
    }

    /// Reads every webhook's signing secrets, in the order of the sinks.
    pub(super) fn read_secrets(
        &self,
        credentials_dir: Option<&Path>,
        at: &Locator,
    ) -> Result<Vec<SigningKeys>, ConfigError> {
        let invalid = |reason: String| at.invalid("sinks.webhook", reason);
        self.webhook
            .iter()
            .map(|sink| {
                let credential = format!("sink_secret_{}", sink.name);
                let secret_file = sink.secret_file.as_deref();
                let path = file_or_credential(secret_file, credentials_dir, &credential, "secret")
                    .map_err(|missing| {
                        invalid(format!(
                            "sink {:?} has no secret_file, and {missing}",
                            sink.name
                        ))
                    })?;
                read_keys(&path).map_err(|problem| {
                    invalid(format!(
                        "sink {:?}: cannot use the secret in {}: {problem}",
                        sink.name,
                        path.display()
                    ))
                })
            })
            .collect()
    }
}

/// A NATS `.creds` file's text; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsCredentials(String);

impl NatsCredentials {
    /// The credentials themselves. Never log them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted credentials>")
    }
}

impl NatsSinkConfig {
    /// The sink's type filter; `None` for every event.
    pub fn type_filter(&self) -> Result<Option<TypeFilter>, String> {
        type_filter(&self.types)
    }
}

fn type_filter(types: &[String]) -> Result<Option<TypeFilter>, String> {
    if types.is_empty() {
        return Ok(None);
    }
    let mut filter = TypeFilter::default();
    for pattern in types {
        filter.add(pattern).map_err(|e| e.to_string())?;
    }
    Ok(Some(filter))
}

fn check_retry(
    first_delay_ms: u64,
    max_delay_secs: u64,
    alert_after_secs: u64,
) -> Result<(), (&'static str, String)> {
    if !(1..=600_000).contains(&first_delay_ms) {
        return Err((
            "retry_first_delay_ms",
            format!("{first_delay_ms} is not within 1..=600000"),
        ));
    }
    if !(1..=86_400).contains(&max_delay_secs) {
        return Err((
            "retry_max_delay_secs",
            format!("{max_delay_secs} is not within 1..=86400"),
        ));
    }
    if alert_after_secs == 0 {
        return Err(("alert_after_secs", "must be at least 1".into()));
    }
    Ok(())
}

/// A NATS server URL: `nats://` only to a loopback host (unless TLS is required), `tls://`
/// anywhere.
fn check_nats_server(raw: &str, tls_required: bool) -> Result<(), String> {
    let url = Url::parse(raw).map_err(|error| {
        format!("`{raw}` is not a URL ({error}); write e.g. \"tls://nats.example.com:4222\"")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // Echoing the URL would show the password; name the host only.
        return Err(format!(
            "the server URL for {} carries a user or password, which would end up in logs and \
             status; put the credentials in credentials_file instead",
            url.host_str().unwrap_or("the host")
        ));
    }
    match url.scheme() {
        "tls" => {}
        "nats" if tls_required || is_loopback(&url) => {}
        "nats" => {
            return Err(format!(
                "`{raw}` is plain nats:// to a host that is not loopback; use tls:// (or set \
                 tls_required = true), because every event carries directory data"
            ))
        }
        other => {
            return Err(format!(
                "`{raw}`: the scheme must be nats:// or tls://, not `{other}`"
            ))
        }
    }
    if url.host_str().unwrap_or_default().is_empty() {
        return Err(format!("`{raw}` has no host"));
    }
    Ok(())
}

impl WebhookSinkConfig {
    /// The sink's type filter; `None` for every event.
    pub fn type_filter(&self) -> Result<Option<TypeFilter>, String> {
        type_filter(&self.types)
    }
}

/// https anywhere; plain http only to a loopback host, since the events carry the directory.
fn check_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|error| format!("`{raw}` is not a URL ({error})"))?;
    https_unless_loopback(
        &url,
        raw,
        "plain http is allowed only to 127.0.0.0/8, ::1 and localhost, because every event \
         carries directory data",
    )?;
    if url.host_str().unwrap_or_default().is_empty() {
        return Err(format!("`{raw}` has no host"));
    }
    if url.fragment().is_some() {
        return Err(format!("`{raw}` must not have a fragment"));
    }
    Ok(url)
}

/// `url` for `orgsync check-config`, as [`redacted_url`] shows it.
fn serialize_redacted_url<S: serde::Serializer>(
    url: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redacted_url(url))
}

/// The URL with its password and every query value replaced by `<redacted>`, the way
/// check-config shows secrets; a query segment without `=` is redacted whole. The user name,
/// host, path and query keys stay, so that the operator sees which URL it is. A URL that does
/// not parse (validation refuses one) shows as `<redacted>` rather than risk showing a token.
fn redacted_url(raw: &str) -> String {
    const REDACTED: &str = "<redacted>";
    let Ok(url) = Url::parse(raw) else {
        return REDACTED.to_owned();
    };
    let mut shown = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        shown.push_str(url.username());
        if url.password().is_some() {
            shown.push(':');
            shown.push_str(REDACTED);
        }
        shown.push('@');
    }
    shown.push_str(&url[Position::BeforeHost..Position::AfterPath]);
    if let Some(query) = url.query() {
        shown.push('?');
        let segments: Vec<String> = query
            .split('&')
            .map(|segment| match segment.split_once('=') {
                Some((key, _)) => format!("{key}={REDACTED}"),
                None if segment.is_empty() => String::new(),
                None => REDACTED.to_owned(),
            })
            .collect();
        shown.push_str(&segments.join("&"));
    }
    shown
}

/// The URL as validated (validation has already refused a bad one).
pub(super) fn parse_url(raw: &str) -> Option<Url> {
    check_url(raw).ok()
}

/// One or two `whsec_` secrets, one per line.
fn read_keys(path: &Path) -> Result<SigningKeys, String> {
    let text = read_small_file(
        path,
        MAX_SECRET_FILE_BYTES,
        "; the file must hold only the secrets, one per line",
        "the file must hold only `whsec_` secrets",
    )?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(index, line)| decode_secret(line).map_err(|e| format!("line {}: {e}", index + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    match keys.len() {
        0 => Err("it is empty; write a `whsec_` secret into it".into()),
        1 | 2 => Ok(SigningKeys(keys)),
        n => Err(format!(
            "it holds {n} secrets; give one, or two while rotating (both sign each delivery)"
        )),
    }
}

/// `whsec_` + base64 of 24 to 64 random bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").ok_or_else(|| {
        "a secret must start with `whsec_` (Standard Webhooks; make one with \
         `echo whsec_$(openssl rand -base64 32)`)"
            .to_owned()
    })?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "the part after `whsec_` is not base64".to_owned())?;
    if !KEY_BYTES.contains(&key.len()) {
        return Err(format!(
            "the key is {} bytes; Standard Webhooks keys are 24 to 64 random bytes \
             (`echo whsec_$(openssl rand -base64 32)`)",
            key.len()
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_url_shows_no_password_and_no_query_value() {
        for (raw, shown) in [
            (
                "https://crm:pa55@crm.example.com:8443/hook?token=SECRET&v=2",
                "https://crm:<redacted>@crm.example.com:8443/hook?token=<redacted>&v=<redacted>",
            ),
            // A bare segment may be the token itself.
            (
                "https://crm.example.com/hook?SECRET&a=",
                "https://crm.example.com/hook?<redacted>&a=<redacted>",
            ),
            (
                "https://:pa55@crm.example.com/",
                "https://:<redacted>@crm.example.com/",
            ),
            (
                "https://crm@crm.example.com/",
                "https://crm@crm.example.com/",
            ),
            ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
            ("not a url SECRET", "<redacted>"),
        ] {
            assert_eq!(redacted_url(raw), shown);
            // What check-config prints is a valid url again.
            if shown != "<redacted>" {
                assert!(check_url(shown).is_ok(), "{shown}");
            }
        }
    }

    #[test]
    fn a_nats_url_with_a_password_is_refused_without_repeating_it() {
        let error = check_nats_server("nats://bus:s3cret@127.0.0.1:4222", false).unwrap_err();
        assert!(error.contains("credentials_file"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        assert!(check_nats_server("nats://127.0.0.1:4222", false).is_ok());
        assert!(check_nats_server("nats://nats.example.com:4222", false).is_err());
    }
}
