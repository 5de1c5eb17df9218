//! Webhook delivery (Standard Webhooks): one POST per event in CloudEvents structured mode
//! (`application/cloudevents+json`, the body the event's stored line), or with batching a JSON
//! array of them (`application/cloudevents-batch+json`), signed with `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over
//! `id.timestamp.body`, one per signing key). Redirects are not followed; TLS is rustls. A 429
//! or 503 with `Retry-After` is retried no sooner than it asks (within the sink's maximum delay).

use std::error::Error as _;
use std::fmt;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use sha2::Sha256;

use super::{event_id, Attempt};
use crate::config::SigningKeys;
use crate::store::event_log::StoredEvent;

/// How much of a refusing receiver's body a status shows.
const ERROR_BODY_CHARS: usize = 200;

/// A `Retry-After` longer than this is not one: an HTTP-date is 29 characters (at most 33 in
/// its obsolete forms), and 40 digits of delta-seconds are far past any sink's maximum delay.
const MAX_RETRY_AFTER_CHARS: usize = 40;

#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: Url,
    pub keys: SigningKeys,
    pub timeout: Duration,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a token in its query: only its origin and path are shown.
        f.debug_struct("WebhookSettings")
            .field("url", &shown_url(&self.url))
            .field("keys", &self.keys)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The URL without its query, for logs and errors.
pub fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

pub struct Webhook {
    client: reqwest::Client,
    settings: WebhookSettings,
}

impl Webhook {
    pub fn new(settings: WebhookSettings) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            // A receiver that moved says so with a redirect; following it would send the
            // directory wherever the redirect points. The operator updates `url` instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", describe(&e)))?;
        Ok(Webhook { client, settings })
    }

    /// One POST of `events` (one, or a batch); what the receiver made of it.
    pub async fn post(&self, events: &[StoredEvent], batch: bool) -> Attempt {
        let Some(first) = events.first() else {
            return Attempt::Delivered;
        };
        let id = match event_id(first) {
            // A batch is named by its first event's id and its last seq: the same events sent
            // again carry the same id.
            Ok(id) if batch => format!("{id}-{}", events.last().map_or(first.seq, |e| e.seq)),
            Ok(id) => id,
            Err(error) => return Attempt::Failed(error),
        };
        let (content_type, body) = if batch {
            let mut body =
                String::with_capacity(events.iter().map(|e| e.body.len() + 1).sum::<usize>() + 2);
            body.push('[');
            for (index, event) in events.iter().enumerate() {
                if index > 0 {
                    body.push(',');
                }
                body.push_str(&event.body);
            }
            body.push(']');
            ("application/cloudevents-batch+json", body)
        } else {
            ("application/cloudevents+json", first.body.clone())
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(&self.settings.keys, &id, timestamp, &body);
        let sent = self
            .client
            .post(self.settings.url.clone())
            .header(CONTENT_TYPE, content_type)
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => {
                return Attempt::Failed(format!(
                    "no answer within {} s (timeout_secs)",
                    self.settings.timeout.as_secs()
                ))
            }
            Err(error) => return Attempt::Failed(describe(&error.without_url())),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Delivered;
        }
        if status == StatusCode::GONE {
            return Attempt::Gone(
                "the receiver answered 410 Gone: it wants no more events".to_owned(),
            );
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(|l| format!(" to {}", printable(l, ERROR_BODY_CHARS)))
                .unwrap_or_default();
            return Attempt::Failed(format!(
                "the receiver redirected (HTTP {status}{location}); redirects are not followed: \
                 set the sink's url to the final address"
            ));
        }
        // 429 and 503 may say when to come back; other statuses' Retry-After is not about
        // this request being retried.
        let asked = if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response
                .headers()
                .get(RETRY_AFTER)
                .map(|value| match value.to_str() {
                    Ok(text) => retry_after(text, SystemTime::now())
                        .ok_or_else(|| format!("{:?}", printable(text, MAX_RETRY_AFTER_CHARS))),
                    Err(_) => Err("(not text)".to_owned()),
                })
        } else {
            None
        };
        let body = error_body(response).await;
        let body = printable(body.trim(), ERROR_BODY_CHARS);
        let error = if body.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {body}")
        };
        match asked {
            Some(Ok(retry_after)) => Attempt::Throttled {
                error: format!(
                    "{error}; the receiver asked to wait {} s (Retry-After)",
                    retry_after.as_secs()
                ),
                retry_after,
            },
            Some(Err(header)) => Attempt::Failed(format!(
                "{error}; its Retry-After {header} is not delta-seconds or an HTTP-date, so \
                 the ordinary backoff applies"
            )),
            None => Attempt::Failed(error),
        }
    }
}

/// How long a `Retry-After` value asks to wait from `now`: delta-seconds, or an HTTP-date (a
/// date past is no wait). `None` when it is neither, or longer than any valid one.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_RETRY_AFTER_CHARS {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits past u64 are still a valid, if absurd, delay: the caller caps it.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The start of an error reply's body: read a chunk at a time and no further than what is
/// shown, so a receiver cannot make the sink hold an endless body.
async fn error_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_CHARS * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each key,
/// separated by spaces.
pub fn sign(keys: &SigningKeys, id: &str, timestamp: i64, body: &str) -> String {
    keys.expose()
        .iter()
        .filter_map(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body.as_bytes());
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text from the receiver, cut to `max` characters and stripped of control characters, so that
/// it shows safely in status and logs.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The error and its causes on one line (a certificate refused shows as such). Callers pass
/// errors stripped of their URL.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = source.and_then(|s| s.source());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_as_standard_webhooks_does() {
        let key = crate::config::decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let keys = SigningKeys::from_keys(vec![key]);
        let signature = sign(
            &keys,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retry_after_is_delta_seconds_or_an_http_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:30 GMT").unwrap();
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(retry_after("2", now), secs(2));
        assert_eq!(retry_after(" 120 ", now), secs(120));
        assert_eq!(retry_after("0", now), secs(0));
        assert_eq!(retry_after("99999999999999999999999", now), secs(u64::MAX));
        // The three forms of an HTTP-date; one in the past asks for no wait.
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), secs(7));
        assert_eq!(retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), secs(7));
        assert_eq!(retry_after("Sun Nov  6 08:49:37 1994", now), secs(7));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), secs(0));
        for invalid in [
            "",
            "soon",
            "-1",
            "1.5",
            "2 s",
            "Sun, 06 Nov 1994",
            &"9".repeat(41),
        ] {
            assert_eq!(retry_after(invalid, now), None, "{invalid:?}");
        }
    }

    #[test]
    fn two_keys_give_two_signatures() {
        let keys = SigningKeys::from_keys(vec![vec![1; 32], vec![2; 32]]);
        let signature = sign(&keys, "id", 1, "{}");
        let parts: Vec<&str> = signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }
}
