//! Access tokens: issued by `gettoken`, checked on every other call.
//!
//! Tokens live on tokio's clock so a test that pauses time can expire them without waiting.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::errcode::ApiError;
use super::rng::{clock_seed, Rng, URL_SAFE};
use super::tenant::Scope;

/// Real tokens are a couple of hundred characters; clients must keep 512 bytes for them.
const TOKEN_LEN: usize = 214;

struct Issued {
    scope: Scope,
    expires_at: Instant,
    revoked: bool,
}

pub(crate) struct Tokens {
    issued: HashMap<String, Issued>,
    /// The token `gettoken` hands out again while it is valid, per scope.
    current: HashMap<Scope, String>,
    rng: Rng,
}

/// What `gettoken` returns.
pub(crate) struct Grant {
    pub(crate) access_token: String,
    pub(crate) expires_in: u64,
}

impl Tokens {
    pub(crate) fn new() -> Tokens {
        Tokens {
            issued: HashMap::new(),
            current: HashMap::new(),
            rng: Rng::new(clock_seed()),
        }
    }

    /// `expires_in` of a reused token is what is left of it, rounded up: the old doc promises
    /// the same token, not a fresh lifetime, so a client that trusts 7200 s would overrun.
    pub(crate) fn grant(&mut self, scope: Scope, ttl_secs: u64, reuse: bool) -> Grant {
        let now = Instant::now();
        if reuse {
            if let Some(token) = self.current.get(&scope) {
                if let Some(issued) = self.issued.get(token) {
                    if !issued.revoked && issued.expires_at > now {
                        let left = issued.expires_at - now;
                        return Grant {
                            access_token: token.clone(),
                            expires_in: left.as_secs() + u64::from(left.subsec_nanos() > 0),
                        };
                    }
                }
            }
        }
        let token = self.fresh_token();
        self.issued.insert(
            token.clone(),
            Issued {
                scope,
                expires_at: now + Duration::from_secs(ttl_secs),
                revoked: false,
            },
        );
        self.current.insert(scope, token.clone());
        Grant {
            access_token: token,
            expires_in: ttl_secs,
        }
    }

    pub(crate) fn check(&self, token: Option<&str>) -> Result<Scope, ApiError> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::new(41001))?;
        let issued = self.issued.get(token).ok_or_else(|| ApiError::new(40014))?;
        if issued.revoked {
            Err(ApiError::new(40014))
        } else if Instant::now() >= issued.expires_at {
            Err(ApiError::new(42001))
        } else {
            Ok(issued.scope)
        }
    }

    /// WeCom may invalidate tokens early "for operational reasons": they then read as invalid
    /// (40014), not expired.
    pub(crate) fn revoke_all(&mut self) {
        for issued in self.issued.values_mut() {
            issued.revoked = true;
        }
        self.current.clear();
    }

    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for issued in self.issued.values_mut() {
            issued.expires_at = issued.expires_at.min(now);
        }
    }

    /// Every token issued so far, revoked and expired ones included.
    pub(crate) fn issued(&self) -> Vec<String> {
        self.issued.keys().cloned().collect()
    }

    fn fresh_token(&mut self) -> String {
        loop {
            let token = self.rng.string(URL_SAFE, TOKEN_LEN);
            if !self.issued.contains_key(&token) {
                return token;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_token_expires_after_its_ttl() {
        let mut tokens = Tokens::new();
        let grant = tokens.grant(Scope::App, 10, true);
        assert_eq!(tokens.check(Some(&grant.access_token)), Ok(Scope::App));

        tokio::time::advance(Duration::from_millis(9_500)).await;
        let again = tokens.grant(Scope::App, 10, true);
        assert_eq!(again.access_token, grant.access_token);
        assert_eq!(again.expires_in, 1);

        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(
            tokens.check(Some(&grant.access_token)).unwrap_err().code,
            42001
        );
        let renewed = tokens.grant(Scope::App, 10, true);
        assert_ne!(renewed.access_token, grant.access_token);
        assert_eq!(renewed.expires_in, 10);
    }

    #[tokio::test]
    async fn scopes_get_separate_tokens_and_missing_ones_are_41001() {
        let mut tokens = Tokens::new();
        let app = tokens.grant(Scope::App, 60, true);
        let sync = tokens.grant(Scope::ContactSync, 60, true);
        assert_ne!(app.access_token, sync.access_token);
        assert_eq!(app.access_token.len(), TOKEN_LEN);
        assert_eq!(
            tokens.check(Some(&sync.access_token)),
            Ok(Scope::ContactSync)
        );
        assert_eq!(tokens.check(None).unwrap_err().code, 41001);
        assert_eq!(tokens.check(Some("")).unwrap_err().code, 41001);
        assert_eq!(tokens.check(Some("nope")).unwrap_err().code, 40014);
    }
}
