//! Bearer tokens: `Authorization: Bearer TOKEN`, compared in constant time with every
//! configured token, so that neither a wrong token's content nor its length can be learned
//! from how long the answer takes.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::{Scope, Token};

/// The tokens in force, kept as SHA-256 digests: comparing fixed-size digests takes the same
/// time whatever the length of the token presented or configured, which comparing the tokens
/// themselves does not (a length mismatch ends the comparison at once).
#[derive(Debug, Default)]
pub struct Tokens(Vec<Known>);

struct Known {
    name: String,
    scope: Scope,
    digest: [u8; 32],
}

/// Without the digest: a token's hash has no place in a log.
impl std::fmt::Debug for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Known")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Who is calling: the token's name and scope.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub scope: Scope,
}

impl Caller {
    /// The owner of the consumers this caller creates.
    pub fn owner(&self) -> String {
        format!("token:{}", self.name)
    }

    pub fn require(&self, scope: Scope, what: &str) -> Result<(), ApiError> {
        if self.scope >= scope {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "{what} needs a token with scope \"{}\"; token {:?} has scope \"{}\"",
            scope.as_str(),
            self.name,
            self.scope.as_str()
        )))
    }
}

impl Tokens {
    pub fn new(tokens: Vec<Token>) -> Tokens {
        Tokens(
            tokens
                .into_iter()
                .map(|token| Known {
                    digest: digest(&token.value),
                    name: token.name,
                    scope: token.scope,
                })
                .collect(),
        )
    }

    /// The caller the request's bearer token belongs to.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "this endpoint needs a bearer token: send `Authorization: Bearer TOKEN`",
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then_some(token.trim())
            })
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the Authorization header must be `Bearer TOKEN`; no other scheme is accepted",
                )
            })?;
        // Every token is compared, whichever matches, so the time taken does not say which.
        let presented = digest(presented);
        let mut found: Option<&Known> = None;
        for token in &self.0 {
            let equal: bool = presented.ct_eq(&token.digest).into();
            if equal && found.is_none() {
                found = Some(token);
            }
        }
        found
            .map(|token| Caller {
                name: token.name.clone(),
                scope: token.scope,
            })
            .ok_or_else(|| {
                ApiError::unauthorized("the bearer token is not one of the configured tokens")
            })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(vec![
            Token {
                name: "crm".into(),
                scope: Scope::Read,
                value: "read-token-0123456789".into(),
            },
            Token {
                name: "ops".into(),
                scope: Scope::Admin,
                value: "admin-token-0123456789".into(),
            },
        ])
    }

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_configured_token_is_its_caller_and_anything_else_is_unauthorized() {
        let tokens = tokens();
        let caller = tokens
            .authenticate(&with("Bearer read-token-0123456789"))
            .unwrap();
        assert_eq!((caller.name.as_str(), caller.scope), ("crm", Scope::Read));
        assert_eq!(caller.owner(), "token:crm");
        let admin = tokens
            .authenticate(&with("bearer admin-token-0123456789"))
            .unwrap();
        assert_eq!(admin.scope, Scope::Admin);
        for bad in [
            "Bearer read-token-012345678",
            "Bearer read-token-01234567890",
            "Basic read-token-0123456789",
            "read-token-0123456789",
            "Bearer ",
        ] {
            let error = tokens.authenticate(&with(bad)).unwrap_err();
            assert_eq!(error.code_str(), "unauthorized", "{bad}");
        }
        assert_eq!(
            tokens
                .authenticate(&HeaderMap::new())
                .unwrap_err()
                .code_str(),
            "unauthorized"
        );
    }

    #[test]
    fn the_tokens_in_force_debug_print_without_their_values_or_digests() {
        let printed = format!("{:?}", tokens());
        assert!(
            printed.contains("crm") && printed.contains("ops"),
            "{printed}"
        );
        assert!(!printed.contains("token-0123456789"), "{printed}");
        assert!(!printed.contains("digest"), "{printed}");
    }

    #[test]
    fn a_read_token_is_refused_admin_operations() {
        let caller = Caller {
            name: "crm".into(),
            scope: Scope::Read,
        };
        assert!(caller.require(Scope::Read, "x").is_ok());
        assert_eq!(
            caller
                .require(Scope::Admin, "resync")
                .unwrap_err()
                .code_str(),
            "forbidden"
        );
    }
}
