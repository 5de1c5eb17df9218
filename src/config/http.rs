//! `[http]`: the HTTP API's listen address, TLS files and bearer tokens. Off unless `listen`
//! is set. Tokens come from files or systemd credentials, never from the config itself, and
//! are kept in [`Secret`]s so that neither a log line nor `check-config` shows them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::secret::{file_or_credential, read_small_file, Secret};
use super::{check_name, resolve_path, ConfigError, Locator};

/// A token shorter than this is refused: a bearer token is a password that no one types.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A token file near this size is a wrong file.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `IP:PORT`; unset, the HTTP API is off. Plain HTTP only on a loopback address.
    pub listen: Option<String>,
    pub tokens: Vec<HttpTokenConfig>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Connections served at once; one more is refused.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tokens: Vec::new(),
            tls_cert_file: None,
            tls_key_file: None,
            max_connections: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTokenConfig {
    pub name: String,
    pub scope: TokenScope,
    /// Without it, the systemd credential `http_token_NAME` is read.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    Read,
    Admin,
}

/// A bearer token read from its file or credential.
#[derive(Debug, Clone)]
pub struct HttpToken {
    pub name: String,
    pub scope: TokenScope,
    secret: Secret,
}

impl HttpToken {
    /// The token itself. Never log it.
    pub fn expose(&self) -> &str {
        self.secret.expose()
    }
}

impl HttpConfig {
    pub(super) fn validate(&mut self, base_dir: &Path, at: &Locator) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| at.invalid(key, reason);
        let mut names = HashSet::new();
        for (index, token) in self.tokens.iter_mut().enumerate() {
            let key = "http.tokens";
            check_name(
                &token.name,
                "it names the token's consumers, `token:NAME`, and its credential, \
                 `http_token_NAME`",
            )
            .map_err(|reason| invalid(key, format!("tokens[{index}].name {reason}")))?;
            if !names.insert(token.name.clone()) {
                return Err(invalid(
                    key,
                    format!(
                        "two tokens are named {:?}; give each token its own name",
                        token.name
                    ),
                ));
            }
            if let Some(file) = &mut token.token_file {
                resolve_path(file, base_dir).map_err(|reason| {
                    invalid(key, format!("tokens[{index}].token_file {reason}"))
                })?;
            }
        }
        if self.max_connections == 0 {
            return Err(invalid("http.max_connections", "must be at least 1".into()));
        }
        for (key, file) in [
            ("http.tls_cert_file", &mut self.tls_cert_file),
            ("http.tls_key_file", &mut self.tls_key_file),
        ] {
            if let Some(file) = file {
                resolve_path(file, base_dir).map_err(|reason| invalid(key, reason))?;
            }
        }
        let tls =
            match (&self.tls_cert_file, &self.tls_key_file) {
                (Some(_), Some(_)) => true,
                (None, None) => false,
                (Some(_), None) => return Err(invalid(
                    "http.tls_key_file",
                    "is missing: http.tls_cert_file is set, and TLS needs both the certificate \
                     and its private key"
                        .into(),
                )),
                (None, Some(_)) => {
                    return Err(invalid(
                        "http.tls_cert_file",
                        "is missing: http.tls_key_file is set, and TLS needs both the certificate \
                     and its private key"
                            .into(),
                    ))
                }
            };
        let Some(listen) = &self.listen else {
            return Ok(());
        };
        let addr: SocketAddr = listen.parse().map_err(|_| {
            invalid(
                "http.listen",
                format!(
                    "`{listen}` is not IP:PORT; write e.g. \"127.0.0.1:8787\" or \"[::1]:8787\""
                ),
            )
        })?;
        if !tls && !addr.ip().is_loopback() {
            return Err(invalid(
                "http.listen",
                format!(
                    "`{listen}` is not a loopback address, and plain HTTP would carry the bearer \
                     tokens and the directory in clear text; set http.tls_cert_file and \
                     http.tls_key_file, or listen on 127.0.0.1 or [::1] (behind a TLS proxy)"
                ),
            ));
        }
        Ok(())
    }

    /// Reads every token; the API is useless without one, so an enabled API needs at least one.
    pub(super) fn read_tokens(
        &self,
        credentials_dir: Option<&Path>,
        at: &Locator,
    ) -> Result<Vec<HttpToken>, ConfigError> {
        let invalid = |reason: String| at.invalid("http.tokens", reason);
        if self.listen.is_none() {
            // The API is off: its tokens are not needed, and their files may not exist yet.
            return Ok(Vec::new());
        }
        if self.tokens.is_empty() {
            return Err(invalid(
                "is empty while http.listen is set; add a [[http.tokens]] table with name, \
                 scope and token_file"
                    .into(),
            ));
        }
        let mut tokens: Vec<HttpToken> = Vec::with_capacity(self.tokens.len());
        for token in &self.tokens {
            let credential = format!("http_token_{}", token.name);
            let path = file_or_credential(
                token.token_file.as_deref(),
                credentials_dir,
                &credential,
                "token",
            )
            .map_err(|missing| {
                invalid(format!(
                    "token {:?} has no token_file, and {missing}",
                    token.name
                ))
            })?;
            let secret = read_token(&path).map_err(|problem| {
                invalid(format!(
                    "token {:?}: cannot use {}: {problem}",
                    token.name,
                    path.display()
                ))
            })?;
            let chars = secret.expose().chars().count();
            if chars < MIN_TOKEN_CHARS {
                return Err(invalid(format!(
                    "token {:?} in {} is {chars} characters; use at least {MIN_TOKEN_CHARS} \
                     random ones (e.g. `openssl rand -hex 32`)",
                    token.name,
                    path.display()
                )));
            }
            if let Some(other) = tokens.iter().find(|t| t.expose() == secret.expose()) {
                return Err(invalid(format!(
                    "tokens {:?} and {:?} are the same token; give each its own",
                    other.name, token.name
                )));
            }
            tokens.push(HttpToken {
                name: token.name.clone(),
                scope: token.scope,
                secret,
            });
        }
        Ok(tokens)
    }
}

pub(super) fn read_token(path: &Path) -> Result<Secret, String> {
    let only = "the file must hold only the token";
    let text = read_small_file(path, MAX_TOKEN_FILE_BYTES, &format!("; {only}"), only)?;
    let secret = Secret::new(&text).ok_or_else(|| "it is empty".to_owned())?;
    if secret.expose().chars().any(char::is_whitespace) {
        return Err("the token contains whitespace; the file must hold only the token".into());
    }
    Ok(secret)
}
