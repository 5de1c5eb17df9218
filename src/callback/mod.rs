//! The callback receiver: the URL WeCom posts contact-change callbacks to (`[callback]`).
//!
//! - `GET` is WeCom's URL verification: the signed, encrypted `echostr` is answered with its
//!   plaintext.
//! - `POST` is a callback. The signature is checked before anything is decrypted; the receive
//!   id must be this corp's; the decrypted callback is recorded in the store
//!   ([`crate::store::callbacks`]) before WeCom gets its empty `200`, so an answered callback is
//!   never lost; a redelivery (same payload) is recognized by its hash and changes nothing.
//! - Anything that fails verification (signature, timestamp window, receive id, decryption, a
//!   body cut short or too large) gets a `4xx` and changes nothing. No error reply or log line
//!   carries the token, the key or a decrypted value.
//!
//! A recorded callback arms [`debounce`]: about two seconds later one callback run
//! ([`crate::targeted`]) reads again every member the callbacks of that window named.

pub mod debounce;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::http::EndpointKeys;
use crate::store::callbacks::{self, Callback, Covered, Recorded};
use crate::store::{Store, BUSY_TIMEOUT};
use crate::wecom::callback::{
    hex, parse_envelope, parse_event, CallbackCrypto, ContactChange, EventKind, Signed,
    MAX_CALLBACK_BYTES,
};
use debounce::Debounce;

/// The `[callback]` settings of the receiver's listener.
pub const LISTENER_KEYS: EndpointKeys = EndpointKeys {
    name: "callback",
    listen: "callback.listen",
    tls_cert_file: "callback.tls_cert_file",
    tls_key_file: "callback.tls_key_file",
};

/// A verified request whose timestamp is further than this from the server's clock was signed
/// long ago (or the clock is off): it is logged, and a payload a run covered already is not
/// taken again.
const STALE_AFTER_SECS: u64 = 300;
/// How long a client may take to send the body.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the receiver has seen since the daemon started, for status.
#[derive(Debug, Default)]
pub struct Counters {
    /// Recorded for a run.
    pub recorded: AtomicU64,
    /// Redeliveries of a callback already recorded.
    pub duplicates: AtomicU64,
    /// Verified but not about the mirror (tags, other events): answered and not recorded.
    pub ignored: AtomicU64,
    /// Refused: bad signature, stale timestamp, another corp, undecryptable, malformed.
    pub refused: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct CallbackContext {
    pub store_path: PathBuf,
    pub crypto: Arc<CallbackCrypto>,
    pub counters: Arc<Counters>,
    pub debounce: Arc<Debounce>,
}

pub fn router(path: &str, ctx: Arc<CallbackContext>) -> Router {
    Router::new()
        .route(path, get(verify).post(receive))
        .with_state(ctx)
}

/// Why a request is refused; the reply says which check failed and nothing more.
#[derive(Debug)]
enum Refusal {
    BadRequest(&'static str),
    Forbidden(&'static str),
    TooLarge,
    Internal,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            Refusal::Forbidden(why) => (StatusCode::FORBIDDEN, why),
            Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"),
            Refusal::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the callback could not be recorded; WeCom will deliver it again",
            ),
        };
        (status, text).into_response()
    }
}

/// The signature parameters and the rest of the query, percent-decoded (a `+` stays a `+`:
/// base64 uses it, and WeCom encodes what must be encoded).
struct Query {
    params: HashMap<String, String>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        let params = raw
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .ok()
                        .map(|v| v.into_owned())
                };
                Some((decode(key)?, decode(value)?))
            })
            .collect();
        Query { params }
    }

    fn get(&self, name: &'static str) -> Result<&str, Refusal> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or(Refusal::BadRequest(match name {
                "msg_signature" => "msg_signature is missing",
                "timestamp" => "timestamp is missing",
                "nonce" => "nonce is missing",
                _ => "echostr is missing",
            }))
    }

    /// The signature parameters.
    fn signed(&self) -> Result<Signed<'_>, Refusal> {
        let timestamp = self.get("timestamp")?;
        if timestamp.parse::<i64>().is_err() {
            return Err(Refusal::BadRequest("timestamp is not a number"));
        }
        Ok(Signed {
            msg_signature: self.get("msg_signature")?,
            timestamp,
            nonce: self.get("nonce")?,
        })
    }
}

/// Whether a verified request was signed long ago by the server's clock, which is logged. Such
/// a request is not refused: refusing would refuse every callback of a server whose clock is
/// off (and the fact sheet's own test vectors). But a callback signed long ago whose payload a
/// run covered already is a replay, not a redelivery, and starts no run (see
/// [`callbacks::record`]): WeCom redelivers within seconds.
fn signed_long_ago(timestamp: &str) -> bool {
    let Ok(at) = timestamp.parse::<i64>() else {
        return false;
    };
    let seconds = Utc::now().timestamp().abs_diff(at);
    let stale = seconds > STALE_AFTER_SECS;
    if stale {
        tracing::warn!(
            seconds,
            "a verified callback's timestamp is far from this server's clock; check its time \
             (NTP), or this may be an old callback sent again"
        );
    }
    stale
}

/// `GET`: URL verification.
async fn verify(
    State(ctx): State<Arc<CallbackContext>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    let query = Query::parse(raw.as_deref());
    let answer = (|| {
        let signed = query.signed()?;
        let timestamp = signed.timestamp;
        let echo = ctx
            .crypto
            .open(signed, query.get("echostr")?)
            .map_err(|_| Refusal::Forbidden("verification failed"))?;
        signed_long_ago(timestamp);
        String::from_utf8(echo).map_err(|_| Refusal::Forbidden("verification failed"))
    })();
    match answer {
        Ok(echo) => {
            tracing::info!("WeCom verified the callback URL");
            Ok(echo.into_response())
        }
        Err(refusal) => Err(refuse(&ctx, refusal)),
    }
}

/// `POST`: a callback.
async fn receive(
    State(ctx): State<Arc<CallbackContext>>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<StatusCode, Refusal> {
    let query = Query::parse(raw.as_deref());
    let verified = async {
        let signed = query.signed()?;
        let timestamp = signed.timestamp;
        let body = read_body(body).await?;
        let envelope = parse_envelope(&body)
            .map_err(|_| Refusal::BadRequest("the body is not a callback envelope"))?;
        let plaintext = ctx
            .crypto
            .open(signed, &envelope.encrypt)
            .map_err(|_| Refusal::Forbidden("verification failed"))?;
        let stale = signed_long_ago(timestamp);
        let event = parse_event(&plaintext)
            .map_err(|_| Refusal::BadRequest("the decrypted callback is not an event"))?;
        Ok::<_, Refusal>((plaintext, event, stale))
    }
    .await;
    let (plaintext, event, stale) = verified.map_err(|refusal| refuse(&ctx, refusal))?;
    let Some(callback) = callback_of(event.kind) else {
        Counters::bump(&ctx.counters.ignored);
        return Ok(StatusCode::OK);
    };
    let hash = hex(&Sha256::digest(&plaintext));
    let path = ctx.store_path.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        let mut store = Store::open_existing(&path, BUSY_TIMEOUT)?;
        let covered = match stale {
            true => Covered::Stays,
            false => Covered::Reopens,
        };
        store.write(|tx| callbacks::record(tx, &hash, &callback, covered, Utc::now()))
    })
    .await;
    match recorded {
        Ok(Ok(Recorded::New)) => {
            Counters::bump(&ctx.counters.recorded);
            ctx.debounce.arm();
            Ok(StatusCode::OK)
        }
        Ok(Ok(Recorded::Again)) => {
            Counters::bump(&ctx.counters.duplicates);
            ctx.debounce.arm();
            Ok(StatusCode::OK)
        }
        Ok(Ok(Recorded::Duplicate)) => {
            Counters::bump(&ctx.counters.duplicates);
            Ok(StatusCode::OK)
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot record a callback; WeCom will deliver it again");
            Err(Refusal::Internal)
        }
        Err(error) => {
            tracing::error!(%error, "cannot record a callback; WeCom will deliver it again");
            Err(Refusal::Internal)
        }
    }
}

fn refuse(ctx: &CallbackContext, refusal: Refusal) -> Refusal {
    Counters::bump(&ctx.counters.refused);
    tracing::warn!(?refusal, "callback refused");
    refusal
}

async fn read_body(body: Body) -> Result<Bytes, Refusal> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_CALLBACK_BYTES)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        // `to_bytes` fails both on a body over the limit and on one cut short.
        Ok(Err(error)) if is_too_large(&error) => Err(Refusal::TooLarge),
        Ok(Err(_)) => Err(Refusal::BadRequest("the body was cut short")),
        Err(_) => Err(Refusal::BadRequest("the body was not sent in time")),
    }
}

fn is_too_large(error: &axum::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// What a run needs of a verified event; `None` for what the mirror does not hold (tags,
/// other events).
fn callback_of(kind: EventKind) -> Option<Callback> {
    let EventKind::ContactChange(change) = kind else {
        return None;
    };
    Some(match change {
        ContactChange::CreateUser { userid, .. } => user("create_user", userid, None),
        ContactChange::UpdateUser {
            userid, new_userid, ..
        } => user("update_user", userid, new_userid),
        ContactChange::DeleteUser { userid } => user("delete_user", userid, None),
        ContactChange::CreateParty { id, .. } => party("create_party", id),
        ContactChange::UpdateParty { id, .. } => party("update_party", id),
        ContactChange::DeleteParty { id } => party("delete_party", id),
        ContactChange::UpdateTag { .. } => return None,
        ContactChange::Other { change_type } => Callback {
            id: 0,
            change_type,
            userid: None,
            new_userid: None,
            department_id: None,
        },
    })
}

fn user(change_type: &str, userid: String, new_userid: Option<String>) -> Callback {
    Callback {
        id: 0,
        change_type: change_type.to_owned(),
        userid: Some(userid),
        new_userid,
        department_id: None,
    }
}

fn party(change_type: &str, id: i64) -> Callback {
    Callback {
        id: 0,
        change_type: change_type.to_owned(),
        userid: None,
        new_userid: None,
        department_id: Some(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_numeric_timestamp_is_taken_and_no_other() {
        for timestamp in ["-9223372036854775808", "9223372036854775807", "1409659589"] {
            let query = Query::parse(Some(&format!(
                "msg_signature=s&timestamp={timestamp}&nonce=n"
            )));
            assert!(query.signed().is_ok(), "{timestamp}");
            assert!(
                signed_long_ago(timestamp),
                "{timestamp}, without overflowing"
            );
        }
        let query = Query::parse(Some("msg_signature=s&timestamp=soon&nonce=n"));
        assert!(matches!(query.signed(), Err(Refusal::BadRequest(_))));
        assert!(!signed_long_ago(&Utc::now().timestamp().to_string()));
    }

    #[test]
    fn a_plus_in_the_query_stays_a_plus() {
        let query = Query::parse(Some("echostr=a+b%2Bc%3D"));
        assert_eq!(query.get("echostr").ok(), Some("a+b+c="));
    }
}
