//! The configuration turned into each component's settings: the one place that knows both the
//! config's keys and the components' types, so a component never reads the config itself.

use std::time::Duration;

use super::{Config, ScheduleConfig, StoreConfig, TokenScope, WecomConfig};
use crate::delivery::nats::NatsSettings;
use crate::delivery::webhook::WebhookSettings;
use crate::delivery::{SinkSettings, Target};
use crate::guard::Limits;
use crate::http::{HttpSettings, Scope, TlsFiles, Token};
use crate::matching::lookup::LookupSettings;
use crate::schedule;
use crate::socket::SocketSettings;
use crate::wecom::{self, ClientSettings, Secret, WecomError};

/// How long a socket client may wait before its first request: long enough for a person typing
/// into `socat`, short enough that leaked silent connections free their slots.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an HTTP client may take for its TLS handshake and its request headers, and for a
/// request body: a slow client holds one connection slot that long, no more.
const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest HTTP request body (an ack is a few bytes).
const HTTP_MAX_BODY: usize = 64 * 1024;

impl Config {
    /// The WeCom client's settings; fails when the config was loaded without the secret.
    pub fn client_settings(&self) -> Result<ClientSettings, WecomError> {
        let secret = self.corp_secret().ok_or_else(|| {
            WecomError::Settings("the config was loaded without the corp secret".to_owned())
        })?;
        let mut settings = ClientSettings::new(
            self.wecom.api_base.clone(),
            self.wecom.corp_id.clone(),
            Secret::new(secret),
        );
        settings.request_timeout = Duration::from_secs(self.wecom.request_timeout_secs);
        settings.retry = self.wecom.retry();
        Ok(settings)
    }

    pub fn socket_settings(&self) -> SocketSettings {
        SocketSettings {
            path: self.socket.path.clone(),
            group: self.socket.group.clone(),
            admin_uids: self.socket.admin_uids.clone(),
            admin_gids: self.socket.admin_gids.clone(),
            max_connections: self.socket.max_connections,
            max_connections_per_uid: self.socket.max_connections_per_uid,
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            allow_insecure_directory: self.socket.allow_insecure_directory,
        }
    }

    /// The HTTP API's settings; `None` when it is off (no `http.listen`).
    pub fn http_settings(&self) -> Option<HttpSettings> {
        let listen = self.http.listen.as_deref()?.parse().ok()?;
        let tls = match (&self.http.tls_cert_file, &self.http.tls_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        Some(HttpSettings {
            listen,
            tls,
            max_connections: self.http.max_connections,
            header_timeout: HTTP_HEADER_TIMEOUT,
            body_timeout: HTTP_BODY_TIMEOUT,
            max_body: HTTP_MAX_BODY,
            stream_stall: crate::socket::STREAM_STALL,
        })
    }

    /// The HTTP API's tokens as it checks them.
    pub fn http_api_tokens(&self) -> Vec<Token> {
        self.http_tokens()
            .iter()
            .map(|token| Token {
                name: token.name.clone(),
                scope: match token.scope {
                    TokenScope::Read => Scope::Read,
                    TokenScope::Admin => Scope::Admin,
                },
                value: token.expose().to_owned(),
            })
            .collect()
    }

    /// The callback receiver's certificate and key, when it serves TLS itself.
    pub fn callback_tls(&self) -> Option<TlsFiles> {
        match (&self.callback.tls_cert_file, &self.callback.tls_key_file) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    /// Every sink's settings; empty when the config was loaded without secrets (the sinks
    /// need their signing keys).
    pub fn sink_settings(&self) -> Vec<SinkSettings> {
        self.sinks
            .webhook
            .iter()
            .zip(&self.sink_keys)
            .filter_map(|(sink, keys)| {
                Some(SinkSettings {
                    name: sink.name.clone(),
                    target: Target::Webhook(WebhookSettings {
                        url: super::sinks::parse_url(&sink.url)?,
                        keys: keys.clone(),
                        timeout: Duration::from_secs(sink.timeout_secs),
                    }),
                    types: sink.type_filter().ok()?,
                    batch_size: sink.batch_size,
                    start: sink.start,
                    retry_first_delay: Duration::from_millis(sink.retry_first_delay_ms),
                    retry_max_delay: Duration::from_secs(sink.retry_max_delay_secs),
                    alert_after: Duration::from_secs(sink.alert_after_secs),
                })
            })
            .chain(
                self.sinks
                    .nats
                    .iter()
                    .zip(&self.nats_credentials)
                    .filter_map(|(sink, credentials)| {
                        Some(SinkSettings {
                            name: sink.name.clone(),
                            target: Target::Nats(NatsSettings {
                                servers: sink.servers.clone(),
                                corp_id: self.wecom.corp_id.clone(),
                                subject_prefix: sink.subject_prefix.clone(),
                                stream: sink.stream.clone(),
                                create_stream: sink.create_stream,
                                credentials: credentials.clone(),
                                tls_ca_file: sink.tls_ca_file.clone(),
                                tls_client: sink
                                    .tls_cert_file
                                    .clone()
                                    .zip(sink.tls_key_file.clone()),
                                tls_required: sink.tls_required,
                                timeout: Duration::from_secs(sink.timeout_secs),
                            }),
                            types: sink.type_filter().ok()?,
                            batch_size: sink.max_in_flight,
                            start: sink.start,
                            retry_first_delay: Duration::from_millis(sink.retry_first_delay_ms),
                            retry_max_delay: Duration::from_secs(sink.retry_max_delay_secs),
                            alert_after: Duration::from_secs(sink.alert_after_secs),
                        })
                    }),
            )
            .collect()
    }

    /// Userid lookups for matching.
    pub fn lookup_settings(&self) -> LookupSettings {
        let matching = &self.matching;
        LookupSettings {
            enabled: matching.lookups,
            failure_budget: (matching.lookup_failure_budget > 0)
                .then_some(matching.lookup_failure_budget),
            miss_ttl: Duration::from_secs(matching.lookup_miss_ttl_hours.saturating_mul(3600)),
            recheck_after: Duration::from_secs(
                matching.lookup_recheck_days.saturating_mul(24 * 3600),
            ),
            concurrency: matching.lookup_concurrency,
        }
    }

    /// The deletion guard's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_deletes: self.safety.max_deletes as u64,
            max_delete_ratio: self.safety.max_delete_ratio,
            out_of_scope: self.safety.out_of_scope,
        }
    }
}

impl WecomConfig {
    /// How the WeCom client retries failed calls.
    pub fn retry(&self) -> wecom::RetryPolicy {
        let base = Duration::from_millis(self.retry_base_delay_ms);
        wecom::RetryPolicy {
            max_retries: self.retry_attempts as usize,
            base_delay: base,
            rate_limit_wait: Duration::from_secs(self.rate_limit_pause_secs),
            concurrency_wait: base,
            ..wecom::RetryPolicy::default()
        }
    }
}

impl ScheduleConfig {
    /// How the daemon retries a failed run.
    pub fn retry(&self) -> schedule::RetryPolicy {
        schedule::RetryPolicy {
            attempts: self.retry_attempts,
            first_delay: Duration::from_secs(self.retry_delay_secs),
        }
    }
}

impl StoreConfig {
    pub fn busy_timeout(&self) -> Duration {
        Duration::from_secs(self.busy_timeout_secs)
    }
}
