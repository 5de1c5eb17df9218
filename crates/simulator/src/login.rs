//! Password-free login (OAuth2): the codes WeCom hands the browser after a person opens the app,
//! which the backend exchanges with `auth/getuserinfo`.
//!
//! A code is single-use and lives five minutes; an unknown, used or expired one is 40029. Codes
//! live on tokio's clock, like tokens, so a test that pauses time can age them.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::errcode::ApiError;
use super::rng::{clock_seed, Rng, ALNUM, URL_SAFE};

/// How long a code can be exchanged after it was issued.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(5 * 60);
/// WeCom promises codes of at most 512 bytes; real ones are far shorter.
pub(crate) const MAX_CODE_LEN: usize = 512;
const CODE_LEN: usize = 64;

/// Who opened the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Person {
    /// A member of the corp, by userid (spelled as the directory spelled it when the code was
    /// issued).
    Member(String),
    /// Someone who is not a member, e.g. in the web QR-login flow.
    Outsider {
        openid: String,
        external_userid: String,
    },
}

struct Issued {
    person: Person,
    expires_at: Instant,
}

pub(crate) struct LoginCodes {
    issued: HashMap<String, Issued>,
    rng: Rng,
}

impl LoginCodes {
    pub(crate) fn new() -> LoginCodes {
        LoginCodes {
            issued: HashMap::new(),
            // Not the tokens' stream, should both be seeded in the same nanosecond.
            rng: Rng::new(clock_seed() ^ 0x6C6F_6769_6E63_6F64),
        }
    }

    /// A fresh code for `person`. Expired codes are forgotten on the way.
    pub(crate) fn issue(&mut self, person: Person) -> String {
        let now = Instant::now();
        self.issued.retain(|_, issued| issued.expires_at > now);
        let code = loop {
            let code = self.rng.string(URL_SAFE, CODE_LEN);
            if !self.issued.contains_key(&code) {
                break code;
            }
        };
        self.issued.insert(
            code.clone(),
            Issued {
                person,
                expires_at: now + CODE_TTL,
            },
        );
        code
    }

    /// A new outsider: an `openid` and an `external_userid` of the shapes WeCom uses.
    pub(crate) fn outsider(&mut self) -> Person {
        Person::Outsider {
            openid: format!("o{}", self.rng.string(ALNUM, 27)),
            external_userid: format!("wm{}", self.rng.string(ALNUM, 30)),
        }
    }

    /// Exchanges `code`: it is gone afterwards, whatever the answer.
    pub(crate) fn redeem(&mut self, code: &str) -> Result<Person, ApiError> {
        if code.len() > MAX_CODE_LEN {
            return Err(ApiError::new(40029));
        }
        let issued = self
            .issued
            .remove(code)
            .ok_or_else(|| ApiError::new(40029))?;
        if Instant::now() >= issued.expires_at {
            return Err(ApiError::new(40029));
        }
        Ok(issued.person)
    }

    /// Whether `code` would be accepted now (without using it up): valid-code exchanges are
    /// exempt from the frequency limits.
    pub(crate) fn is_valid(&self, code: &str) -> bool {
        self.issued
            .get(code)
            .is_some_and(|issued| Instant::now() < issued.expires_at)
    }

    /// Ages every code issued so far past its five minutes.
    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for issued in self.issued.values_mut() {
            issued.expires_at = issued.expires_at.min(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(userid: &str) -> Person {
        Person::Member(userid.into())
    }

    #[tokio::test]
    async fn a_code_is_single_use() {
        let mut codes = LoginCodes::new();
        let code = codes.issue(member("lina"));
        assert!(code.len() <= MAX_CODE_LEN);
        assert!(codes.is_valid(&code));
        assert_eq!(codes.redeem(&code), Ok(member("lina")));
        assert!(!codes.is_valid(&code));
        assert_eq!(codes.redeem(&code).unwrap_err().code, 40029);
    }

    #[tokio::test]
    async fn unknown_and_oversized_codes_are_40029() {
        let mut codes = LoginCodes::new();
        assert_eq!(codes.redeem("nope").unwrap_err().code, 40029);
        assert_eq!(codes.redeem("").unwrap_err().code, 40029);
        assert_eq!(codes.redeem(&"x".repeat(513)).unwrap_err().code, 40029);
    }

    #[tokio::test(start_paused = true)]
    async fn a_code_expires_after_five_minutes() {
        let mut codes = LoginCodes::new();
        let early = codes.issue(member("lina"));
        let late = codes.issue(member("lina"));
        tokio::time::advance(CODE_TTL - Duration::from_millis(1)).await;
        assert_eq!(codes.redeem(&early), Ok(member("lina")));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!codes.is_valid(&late));
        assert_eq!(codes.redeem(&late).unwrap_err().code, 40029);
    }

    #[tokio::test]
    async fn expire_all_ages_every_issued_code() {
        let mut codes = LoginCodes::new();
        let before = codes.issue(member("lina"));
        codes.expire_all();
        let after = codes.issue(member("lina"));
        assert_eq!(codes.redeem(&before).unwrap_err().code, 40029);
        assert_eq!(codes.redeem(&after), Ok(member("lina")));
    }

    #[tokio::test]
    async fn codes_and_outsiders_differ_every_time() {
        let mut codes = LoginCodes::new();
        let a = codes.outsider();
        let b = codes.outsider();
        assert_ne!(a, b);
        let Person::Outsider {
            openid,
            external_userid,
        } = a
        else {
            panic!("an outsider");
        };
        assert!(openid.starts_with('o') && openid.len() == 28);
        assert!(external_userid.starts_with("wm") && external_userid.len() == 32);
        let first = codes.issue(member("x"));
        let second = codes.issue(member("x"));
        assert_ne!(first, second);
        assert_eq!(first.len(), CODE_LEN);
    }
}
