//! The access-token cache: one token per client (that is, per corp id and secret), shared by all
//! concurrent calls, refreshed early, fetched by one caller at a time, and shared with the other
//! processes of the corp through a [`TokenShelf`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
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

/// Where the processes of one corp and app leave their access token for each other (the
/// daemon, an `orgsync sync` beside it, the daemon after a restart). WeCom's documentation no
/// longer promises that a second `gettoken` returns the token already issued rather than a new
/// one that invalidates it, so they share one.
pub trait TokenShelf: Send + Sync + fmt::Debug {
    /// The token left for `credentials`, and for how long more it may be used.
    fn take(&self, credentials: &str) -> Option<(Secret, Duration)>;
    /// Leaves `token`, fetched for `credentials`, usable for `usable_for`.
    fn leave(&self, credentials: &str, token: &Secret, usable_for: Duration);
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
    shelf: Option<(Arc<dyn TokenShelf>, String)>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    generation: u64,
    refusal: Option<(Instant, WecomError)>,
    /// The last token WeCom called invalid: one on the shelf that is the same is not taken.
    rejected: Option<Secret>,
}

impl State {
    /// Makes `value` the token in use, of a new generation, until `refresh_at`.
    fn hold(&mut self, value: Secret, refresh_at: Instant) -> Token {
        self.generation += 1;
        let token = Token {
            value,
            generation: self.generation,
            refresh_at,
        };
        self.token = Some(token.clone());
        token
    }
}

impl TokenCache {
    /// A cache that takes tokens from `shelf` before fetching one, and leaves there each one it
    /// fetches, under `credentials`.
    pub(crate) fn shared(shelf: Arc<dyn TokenShelf>, credentials: String) -> TokenCache {
        TokenCache {
            state: Mutex::default(),
            shelf: Some((shelf, credentials)),
        }
    }

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
        // Another process may have fetched one meanwhile; WeCom may have invalidated this
        // process's own when it did. The shelf is a small local file, read in place: this runs
        // once per token's life, under the lock that already keeps fetches one at a time.
        if let Some((shelf, credentials)) = &self.shelf {
            let taken = shelf.take(credentials).filter(|(value, left)| {
                !left.is_zero()
                    && state
                        .rejected
                        .as_ref()
                        .is_none_or(|rejected| rejected.expose() != value.expose())
            });
            if let Some((value, left)) = taken {
                return Ok(state.hold(value, Instant::now() + left));
            }
        }
        let requested = Instant::now();
        match fetch().await {
            Ok((value, expires_in)) => {
                let usable_for = lifetime(expires_in);
                if let Some((shelf, credentials)) = &self.shelf {
                    shelf.leave(credentials, &value, usable_for);
                }
                state.refusal = None;
                Ok(state.hold(value, requested + usable_for))
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

    /// Drops the token of `generation` after WeCom called it invalid or expired.
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .token
            .as_ref()
            .is_some_and(|token| token.generation == generation)
        {
            state.rejected = state.token.take().map(|token| token.value);
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

    /// A shelf in memory, as another process's token file would be.
    #[derive(Debug, Default)]
    struct Shelf(std::sync::Mutex<Option<(String, String, Duration)>>);

    impl TokenShelf for Shelf {
        fn take(&self, credentials: &str) -> Option<(Secret, Duration)> {
            let held = self.0.lock().unwrap().clone()?;
            (held.0 == credentials).then(|| (Secret::new(held.1), held.2))
        }
        fn leave(&self, credentials: &str, token: &Secret, usable_for: Duration) {
            *self.0.lock().unwrap() = Some((
                credentials.to_owned(),
                token.expose().to_owned(),
                usable_for,
            ));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_on_the_shelf_is_taken_before_fetching_and_a_fetched_one_left_there() {
        let shelf = Arc::new(Shelf::default());
        let cache = TokenCache::shared(shelf.clone(), "c1".into());
        let fetch = |value: &'static str| move || async move { Ok((Secret::new(value), 7200)) };
        // Nothing on the shelf: fetched, and left there.
        let own = cache.get(fetch("own")).await.unwrap();
        assert_eq!(own.value.expose(), "own");
        assert_eq!(
            shelf.take("c1").map(|t| t.0.expose().to_owned()),
            Some("own".into())
        );

        // Another process fetched a newer one, and WeCom rejects this one: the shelf's is taken.
        shelf.leave("c1", &Secret::new("theirs"), Duration::from_secs(100));
        cache.invalidate(own.generation).await;
        let theirs = cache.get(fetch("again")).await.unwrap();
        assert_eq!(theirs.value.expose(), "theirs");

        // Rejected in turn, the same token on the shelf is not taken again: a new one is fetched.
        cache.invalidate(theirs.generation).await;
        assert_eq!(
            cache.get(fetch("again")).await.unwrap().value.expose(),
            "again"
        );

        // Another corp's token is never taken.
        let other = TokenCache::shared(shelf, "c2".into());
        assert_eq!(
            other.get(fetch("mine")).await.unwrap().value.expose(),
            "mine"
        );
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
