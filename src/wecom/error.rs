//! What can go wrong talking to WeCom, worded for the operator who has to fix it.

use super::call::Call;
use super::errcode::{self, ApiError, ErrcodeClass, MemberRefusal};

/// A failed WeCom call, after whatever retries its class allows. Messages name the call (never
/// its URL) and say what to do; none contains the secret or an access token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WecomError {
    #[error("invalid WeCom client settings: {0}")]
    Settings(String),

    /// WeCom answered with an errcode that is not retried, or kept answering one that is.
    #[error("{call}: {error}{}", gave_up(*attempts))]
    Api {
        call: Call,
        error: ApiError,
        attempts: u32,
    },

    /// `gettoken` refused the corp id or secret.
    #[error(
        "gettoken: could not obtain an access token: {error} (orgsync waits at least a minute \
         before asking again: repeated failures get this IP blocked for an hour)"
    )]
    Token { error: ApiError },

    /// `gettoken` was not asked: WeCom refused the same credentials moments ago (this process
    /// or an earlier one), and asking again within the hold adds to the count that blocks the IP.
    #[error(
        "gettoken: not asked again: WeCom refused this secret {age_secs} s ago with {error}; \
         orgsync asks again in {retry_in_secs} s (repeated refusals get this IP blocked for an hour)"
    )]
    TokenHeld {
        error: ApiError,
        age_secs: u64,
        retry_in_secs: u64,
    },

    /// A freshly fetched token was rejected as well.
    #[error("{call}: WeCom rejected a freshly fetched access token too: {error}")]
    TokenRejected { call: Call, error: ApiError },

    /// No usable HTTP answer: connection, timeout, non-2xx status, or a body that is not JSON.
    #[error(
        "{call}: {detail}{}; check the network path to WeCom (DNS, firewall, proxy, wecom.api_base)",
        gave_up(*attempts)
    )]
    Transport {
        call: Call,
        attempts: u32,
        detail: String,
    },

    /// JSON that is not what WeCom documents, or a body over the size limit. Not retried: the
    /// same request would get the same answer.
    #[error("{call}: unexpected response from WeCom: {detail}")]
    Malformed { call: Call, detail: String },
}

fn gave_up(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl WecomError {
    /// Stable machine-readable code for the `orgsync.sync.failed` event.
    pub fn code(&self) -> &'static str {
        match self {
            WecomError::Settings(_) => "config",
            WecomError::Api { error, .. } => match error.class() {
                ErrcodeClass::RateLimited | ErrcodeClass::ConcurrencyLimited => "rate_limited",
                _ => "wecom_errcode",
            },
            WecomError::Token { .. }
            | WecomError::TokenHeld { .. }
            | WecomError::TokenRejected { .. } => "token",
            WecomError::Transport { .. } => "transport",
            WecomError::Malformed { .. } => "malformed_response",
        }
    }

    /// The WeCom errcode behind this error, if WeCom sent one.
    pub fn errcode(&self) -> Option<i64> {
        match self {
            WecomError::Api { error, .. }
            | WecomError::Token { error }
            | WecomError::TokenHeld { error, .. }
            | WecomError::TokenRejected { error, .. } => Some(error.errcode),
            _ => None,
        }
    }

    /// What this failure of a `user/get` says about the member asked for: gone, out of the
    /// app's visible range, or nothing (the call itself failed).
    pub fn member_refusal(&self) -> Option<MemberRefusal> {
        match self {
            WecomError::Api { error, .. } => errcode::member_refusal(error.errcode),
            _ => None,
        }
    }
}
