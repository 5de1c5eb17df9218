//! The access-token cache: one token per client (that is, per corp id and secret), shared by all
//! concurrent calls, refreshed early, fetched by one caller at a time.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::error::WecomError;
use super::secret::Secret;

/// How long a refused `gettoken` is remembered. Repeated bad-secret calls get the server's IP
/// blocked for an hour (about 2000 failures an hour, per WeCom's documentation); remembering the refusal keeps
/// concurrent callers and quick re-runs from adding to that count, while a fix made in the admin
/// console without a config change (re-enabling the app) still takes effect a minute later.
pub const REFUSAL_HOLD: Duration = Duration::from_secs(60);

/// WeCom tokens last `expires_in` (7200 s); WxJava treats them as expired 200 s early.
const EARLY_REFRESH: u64 = 200;

/// `expires_in` comes from the network; a day is far beyond anything WeCom issues.
const MAX_LIFETIME: u64 = 86_400;

/// How long after it was requested a token is used: `expires_in − 200 s`, but never less than
/// half its lifetime, so a short-lived token is neither refetched on every call nor used late.
pub(crate) fn lifetime(expires_in: i64) -> Duration {
    let expires_in = u64::try_from(expires_in).unwrap_or(0).min(MAX_LIFETIME);
    Duration::from_secs(expires_in.saturating_sub(EARLY_REFRESH).max(expires_in / 2))
}

#[derive(Clone)]
pub(crate) struct Token {
    pub value: Secret,
    /// Lets a caller whose request was rejected drop exactly the token it used, not a newer one
    /// another caller already fetched.
    pub generation: u64,
    refresh_at: Instant,
}

#[derive(Default)]
pub(crate) struct TokenCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    generation: u64,
    refusal: Option<(Instant, WecomError)>,
}

impl TokenCache {
    /// The cached token, or a new one from `fetch`. The lock is held while fetching, so only one
    /// `gettoken` is ever in flight; the others wait and then find the fresh token.
    pub(crate) async fn get<F, Fut>(&self, fetch: F) -> Result<Token, WecomError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Secret, i64), WecomError>>,
    {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.token {
            if Instant::now() < token.refresh_at {
                return Ok(token.clone());
            }
        }
        if let Some((at, refusal)) = &state.refusal {
            let age = at.elapsed();
            if age < REFUSAL_HOLD {
                return Err(match refusal {
                    WecomError::Token { error } => WecomError::TokenHeld {
                        error: error.clone(),
                        age_secs: age.as_secs(),
                        retry_in_secs: (REFUSAL_HOLD - age).as_secs().max(1),
                    },
                    other => other.clone(),
                });
            }
        }
        let requested = Instant::now();
        match fetch().await {
            Ok((value, expires_in)) => {
                state.generation += 1;
                let token = Token {
                    value,
                    generation: state.generation,
                    refresh_at: requested + lifetime(expires_in),
                };
                state.token = Some(token.clone());
                state.refusal = None;
                Ok(token)
            }
            Err(err) => {
                state.token = None;
                if matches!(err, WecomError::Token { .. }) {
                    state.refusal = Some((Instant::now(), err.clone()));
                }
                Err(err)
            }
        }
    }

    /// Holds `refusal`, which WeCom gave `age` ago (to an earlier process), as if this cache had
    /// received it: until [`REFUSAL_HOLD`] after it, `get` returns it without fetching.
    pub(crate) async fn remember_refusal(&self, refusal: WecomError, age: Duration) {
        let now = Instant::now();
        // Only fails within `age` of the clock's origin (boot); holding from now is then the
        // safe side.
        let at = now.checked_sub(age).unwrap_or(now);
        self.state.lock().await.refusal = Some((at, refusal));
    }

    /// The refusal `get` is holding, with how long ago WeCom gave it.
    pub(crate) async fn refusal(&self) -> Option<(WecomError, Duration)> {
        let state = self.state.lock().await;
        let (at, refusal) = state.refusal.as_ref()?;
        let age = at.elapsed();
        (age < REFUSAL_HOLD).then(|| (refusal.clone(), age))
    }

    /// Takes `value`, a token another process fetched for the same credentials, usable for
    /// `usable_for` more, unless this cache holds a usable token already.
    pub(crate) async fn adopt(&self, value: Secret, usable_for: Duration) {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if usable_for.is_zero() || state.token.as_ref().is_some_and(|t| now < t.refresh_at) {
            return;
        }
        state.generation += 1;
        state.token = Some(Token {
            value,
            generation: state.generation,
            refresh_at: now + usable_for,
        });
    }

    /// The token this cache would use now, and for how long more.
    pub(crate) async fn current(&self) -> Option<(Secret, Duration)> {
        let state = self.state.lock().await;
        let token = state.token.as_ref()?;
        let left = token.refresh_at.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then(|| (token.value.clone(), left))
    }

    /// Drops the token of `generation` after WeCom called it invalid or expired.
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .token
            .as_ref()
            .is_some_and(|token| token.generation == generation)
        {
            state.token = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_early_with_a_floor() {
        assert_eq!(lifetime(7200), Duration::from_secs(7000));
        assert_eq!(lifetime(400), Duration::from_secs(200));
        assert_eq!(lifetime(300), Duration::from_secs(150));
        assert_eq!(lifetime(1), Duration::ZERO);
        assert_eq!(lifetime(0), Duration::ZERO);
        assert_eq!(lifetime(-5), Duration::ZERO);
        assert_eq!(
            lifetime(i64::MAX),
            Duration::from_secs(MAX_LIFETIME - EARLY_REFRESH)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expires_early() {
        let cache = TokenCache::default();
        let fetch = |value: &'static str| move || async move { Ok((Secret::new(value), 7200)) };
        let first = cache.get(fetch("a")).await.unwrap();
        tokio::time::advance(Duration::from_secs(6999)).await;
        assert_eq!(cache.get(fetch("b")).await.unwrap().value.expose(), "a");
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = cache.get(fetch("b")).await.unwrap();
        assert_eq!(second.value.expose(), "b");
        assert!(second.generation > first.generation);

        cache.invalidate(first.generation).await;
        assert_eq!(cache.get(fetch("c")).await.unwrap().value.expose(), "b");
        cache.invalidate(second.generation).await;
        assert_eq!(cache.get(fetch("c")).await.unwrap().value.expose(), "c");
    }

    #[tokio::test(start_paused = true)]
    async fn an_adopted_token_is_used_until_its_time_unless_one_is_held() {
        let cache = TokenCache::default();
        let fetch = |value: &'static str| move || async move { Ok((Secret::new(value), 7200)) };
        cache
            .adopt(Secret::new("shared"), Duration::from_secs(100))
            .await;
        assert_eq!(
            cache.get(fetch("own")).await.unwrap().value.expose(),
            "shared"
        );
        let (current, left) = cache.current().await.expect("a token");
        assert_eq!(
            (current.expose(), left),
            ("shared", Duration::from_secs(100))
        );

        // A usable token is kept; an expired one gives way.
        cache
            .adopt(Secret::new("other"), Duration::from_secs(500))
            .await;
        assert_eq!(
            cache.get(fetch("own")).await.unwrap().value.expose(),
            "shared"
        );
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(cache.current().await.is_none());
        cache
            .adopt(Secret::new("other"), Duration::from_secs(500))
            .await;
        let token = cache.get(fetch("own")).await.unwrap();
        assert_eq!(token.value.expose(), "other");

        // Invalidated, it is fetched again.
        cache.invalidate(token.generation).await;
        assert_eq!(cache.get(fetch("own")).await.unwrap().value.expose(), "own");
    }

    #[tokio::test(start_paused = true)]
    async fn a_remembered_refusal_is_held_for_what_is_left_of_the_hold() {
        let cache = TokenCache::default();
        let refusal = WecomError::Token {
            error: crate::wecom::ApiError::new(40001, "invalid credential"),
        };
        tokio::time::advance(Duration::from_secs(3600)).await;
        cache
            .remember_refusal(refusal, Duration::from_secs(45))
            .await;
        let (held, age) = cache.refusal().await.expect("held");
        assert_eq!(held.errcode(), Some(40001));
        assert_eq!(age, Duration::from_secs(45));
        let fetch = || async { Ok((Secret::new("a"), 7200)) };
        assert!(cache.get(fetch).await.is_err(), "refused without fetching");
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(cache.refusal().await.is_none());
        assert_eq!(cache.get(fetch).await.unwrap().value.expose(), "a");
    }
}
