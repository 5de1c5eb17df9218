//! `[callback]`: where WeCom's contact-change callbacks are received, and the token and
//! EncodingAESKey they are signed and encrypted with. Off unless `listen` is set. The two
//! secrets come from files or systemd credentials, never from the config itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::http::read_token;
use super::secret::file_or_credential;
use super::{resolve_path, ConfigError, Locator};
use crate::wecom::callback::CallbackCrypto;

/// The systemd credentials read when the files are not set.
const TOKEN_CREDENTIAL: &str = "callback_token";
const KEY_CREDENTIAL: &str = "callback_encoding_aes_key";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbackConfig {
    /// `IP:PORT`; unset, callbacks are off. Plain HTTP on a loopback address, behind the
    /// HTTPS reverse proxy that WeCom reaches.
    pub listen: Option<String>,
    /// The URL path WeCom posts to.
    pub path: String,
    /// Without it, the systemd credential `callback_token` is read.
    pub token_file: Option<PathBuf>,
    /// Without it, the systemd credential `callback_encoding_aes_key` is read.
    pub encoding_aes_key_file: Option<PathBuf>,
    /// PEM certificate chain and key: the receiver serves HTTPS itself (rustls), and may then
    /// listen on an address WeCom reaches directly.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Connections served at once; one more is refused.
    pub max_connections: usize,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            listen: None,
            path: "/wecom/callback".to_owned(),
            token_file: None,
            encoding_aes_key_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            max_connections: 16,
        }
    }
}

impl CallbackConfig {
    pub(super) fn validate(&mut self, base_dir: &Path, at: &Locator) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| at.invalid(key, reason);
        for (key, file) in [
            ("callback.token_file", &mut self.token_file),
            (
                "callback.encoding_aes_key_file",
                &mut self.encoding_aes_key_file,
            ),
            ("callback.tls_cert_file", &mut self.tls_cert_file),
            ("callback.tls_key_file", &mut self.tls_key_file),
        ] {
            if let Some(file) = file {
                resolve_path(file, base_dir).map_err(|reason| invalid(key, reason))?;
            }
        }
        if !self.path.starts_with('/')
            || self.path.len() > 256
            || self
                .path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(invalid(
                "callback.path",
                format!(
                    "{:?} is not a URL path; write it as it appears in the callback URL, e.g. \
                     \"/wecom/callback\"",
                    self.path.chars().take(64).collect::<String>()
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid(
                "callback.max_connections",
                "must be at least 1".into(),
            ));
        }
        let tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), Some(_)) => true,
            (None, None) => false,
            (Some(_), None) => {
                return Err(invalid(
                    "callback.tls_key_file",
                    "is missing: callback.tls_cert_file is set, and TLS needs both".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "callback.tls_cert_file",
                    "is missing: callback.tls_key_file is set, and TLS needs both".into(),
                ))
            }
        };
        if let Some(listen) = &self.listen {
            let addr = self
                .addr(listen)
                .map_err(|reason| invalid("callback.listen", reason))?;
            if !tls && !addr.ip().is_loopback() {
                return Err(invalid(
                    "callback.listen",
                    format!(
                        "`{listen}` is not a loopback address, and plain HTTP would be open to \
                         anyone; listen on 127.0.0.1 or [::1] behind the HTTPS reverse proxy \
                         that WeCom reaches, or set callback.tls_cert_file and \
                         callback.tls_key_file"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn addr(&self, listen: &str) -> Result<SocketAddr, String> {
        listen.parse().map_err(|_| {
            format!("`{listen}` is not IP:PORT; write e.g. \"127.0.0.1:8788\" or \"[::1]:8788\"")
        })
    }

    /// The listen address, when callbacks are on.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| self.addr(l).ok())
    }

    /// Reads the token and the EncodingAESKey and checks them, when callbacks are on.
    pub(super) fn read_crypto(
        &self,
        corp_id: &str,
        credentials_dir: Option<&Path>,
        at: &Locator,
    ) -> Result<Option<Arc<CallbackCrypto>>, ConfigError> {
        if self.listen.is_none() {
            return Ok(None);
        }
        let read = |key: &'static str, file: &Option<PathBuf>, credential: &str| {
            let invalid = |reason: String| at.invalid(key, reason);
            let path = file_or_credential(file.as_deref(), credentials_dir, credential, "file")
                .map_err(|missing| {
                    invalid(format!("is not set, and {missing}; callback.listen is set"))
                })?;
            read_token(&path)
                .map_err(|problem| invalid(format!("cannot use {}: {problem}", path.display())))
        };
        let token = read("callback.token_file", &self.token_file, TOKEN_CREDENTIAL)?;
        let key = read(
            "callback.encoding_aes_key_file",
            &self.encoding_aes_key_file,
            KEY_CREDENTIAL,
        )?;
        CallbackCrypto::new(token.expose(), key.expose(), corp_id)
            .map(|crypto| Some(Arc::new(crypto)))
            .map_err(|problem| {
                at.invalid(
                    "callback.encoding_aes_key_file",
                    format!(
                    "{problem}; copy the EncodingAESKey from the app's callback settings in the \
                     WeCom console"
                    ),
                )
            })
    }
}
