//! The WeCom HTTP client: one connection pool, the shared access token, and the retry policy
//! that decides, per errcode class, whether and when a failed call is tried again.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::{Response, Url};
use tokio::time::{sleep, Instant};
use tracing::{debug, warn};

use super::call::{Call, ClientStats, Counters};
use super::errcode::{ApiError, ErrcodeClass};
use super::error::WecomError;
use super::gate::RateGate;
use super::secret::Secret;
use super::token::{Token, TokenCache, TokenShelf};
use super::wire::{self, Reply};
use crate::model::host_user::LookupKind;
use crate::model::DepartmentId;

/// A userid lookup that found nobody the app can see.
const NOT_FOUND: i64 = 46004;

/// Everything [`WecomClient::new`] needs. [`ClientSettings::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Scheme and host, without `/cgi-bin`, e.g. `https://qyapi.weixin.qq.com`.
    pub api_base: String,
    pub corp_id: String,
    pub corp_secret: Secret,
    /// Whole request, connect to last body byte. Default 30 s.
    pub request_timeout: Duration,
    /// Larger bodies are refused: the network is not trusted to bound them. Default 64 MiB
    /// (a `user/list` of one department with ~100,000 members comes close: raise it for that).
    pub max_response_bytes: usize,
    pub retry: RetryPolicy,
    /// Where the access token is shared with the corp's other processes; `None`: not shared.
    pub token_shelf: Option<Arc<dyn TokenShelf>>,
}

impl ClientSettings {
    pub fn new(
        api_base: impl Into<String>,
        corp_id: impl Into<String>,
        corp_secret: Secret,
    ) -> ClientSettings {
        ClientSettings {
            api_base: api_base.into(),
            corp_id: corp_id.into(),
            corp_secret,
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 64 << 20,
            retry: RetryPolicy::default(),
            token_shelf: None,
        }
    }
}

/// Who a login code belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginIdentity {
    /// A member of the corp, by userid as WeCom spells it.
    Member(String),
    /// Someone who is not a member (a WeChat user, an external contact).
    Outsider,
}

/// What `agent/get` says of the app's visible range (可见范围) besides its departments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedInRange {
    /// The members it names individually, as WeCom spells them.
    pub userids: Vec<String>,
    /// How many tags it names.
    pub tags: usize,
}

/// How failed calls are retried. Every limit is per call; delays are jittered.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after a transient failure (errcode -1, connection error, timeout, non-2xx, a body
    /// that is not JSON or is cut short). Default 3, as WeCom's errcode page advises for -1.
    pub max_retries: usize,
    /// First transient delay, doubling up to `max_delay`, plus up to 100% jitter. Default 1 s.
    pub base_delay: Duration,
    /// Default 30 s.
    pub max_delay: Duration,
    /// How long every call pauses after a 45009 (frequency limit). WeCom blocks for 60 s after
    /// a per-minute limit. Default 60 s.
    pub rate_limit_wait: Duration,
    /// 45009 windows one call sits out before giving up (the block may be hourly). Default 3.
    pub max_rate_limit_waits: usize,
    /// First delay after a 45033 (concurrency limit), doubling to 4×, plus up to 100% jitter.
    /// Default 1 s, so 1–8 s.
    pub concurrency_wait: Duration,
    /// Default 5.
    pub max_concurrency_retries: usize,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            rate_limit_wait: Duration::from_secs(60),
            max_rate_limit_waits: 3,
            concurrency_wait: Duration::from_secs(1),
            max_concurrency_retries: 5,
        }
    }
}

impl RetryPolicy {
    /// The waits before retrying `call` after a passing failure. A login code works once: an
    /// attempt that reached WeCom may have used it, and a retry could only turn a passing
    /// failure into "invalid code", so `auth/getuserinfo` gets none.
    fn transient(&self, call: Call) -> ExponentialBackoff {
        let retries = match call {
            Call::AuthGetUserInfo => 0,
            _ => self.max_retries,
        };
        ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(retries)
            .with_jitter()
            .build()
    }

    fn concurrency(&self) -> ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(self.concurrency_wait)
            .with_max_delay(self.concurrency_wait.saturating_mul(4))
            .with_max_times(self.max_concurrency_retries)
            .with_jitter()
            .build()
    }
}

/// The client. Clones share the connection pool, the token and the counters: make one per
/// (corp id, secret) and clone it; a changed secret means a new client, and so a new token.
#[derive(Clone)]
pub struct WecomClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `{api_base}/cgi-bin/`.
    base: Url,
    corp_id: String,
    corp_secret: Secret,
    /// [`WecomClient::credentials_id`].
    credentials: String,
    max_response_bytes: usize,
    retry: RetryPolicy,
    tokens: TokenCache,
    gate: RateGate,
    counters: Counters,
}

impl fmt::Debug for WecomClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WecomClient")
            .field("base", &self.inner.base.as_str())
            .field("corp_id", &self.inner.corp_id)
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed, before the retry policy has had its say.
enum Failure {
    /// Worth retrying with backoff: no HTTP answer, a non-2xx one, or a body that is not JSON
    /// or is cut short.
    Transport(String),
    Api(ApiError),
    /// Not worth retrying: well-formed JSON of the wrong shape, or a body over the size limit.
    Malformed(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Transport(detail) | Failure::Malformed(detail) => f.write_str(detail),
            Failure::Api(error) => error.fmt(f),
        }
    }
}

impl WecomClient {
    pub fn new(settings: ClientSettings) -> Result<WecomClient, WecomError> {
        let base = Url::parse(&format!(
            "{}/cgi-bin/",
            settings.api_base.trim_end_matches('/')
        ))
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.query().is_none())
        .ok_or_else(|| {
            WecomError::Settings(format!(
                "wecom.api_base {:?} is not an http(s) URL without a query",
                settings.api_base
            ))
        })?;
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            // WeCom never redirects; following one would only send our requests elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| WecomError::Settings(describe(&err.without_url())))?;
        let credentials = credentials_id(&base, &settings.corp_id, &settings.corp_secret);
        let tokens = match settings.token_shelf {
            Some(shelf) => TokenCache::shared(shelf, credentials.clone()),
            None => TokenCache::default(),
        };
        Ok(WecomClient {
            inner: Arc::new(Inner {
                http,
                base,
                corp_id: settings.corp_id,
                corp_secret: settings.corp_secret,
                credentials,
                max_response_bytes: settings.max_response_bytes,
                retry: settings.retry,
                tokens,
                gate: RateGate::default(),
                counters: Counters::default(),
            }),
        })
    }

    /// Counts since the client was created.
    pub fn stats(&self) -> ClientStats {
        self.inner.counters.snapshot()
    }

    /// Names the WeCom endpoint, corp id and secret this client uses, without revealing the
    /// secret: a refusal recorded under it by one process applies to the next only while the
    /// credentials are the same.
    pub fn credentials_id(&self) -> String {
        self.inner.credentials.clone()
    }

    /// Holds a `gettoken` refusal WeCom gave these credentials `age` ago, in an earlier process:
    /// until a minute after it, calls fail with it without asking WeCom again.
    pub async fn remember_refusal(&self, error: ApiError, age: Duration) {
        self.inner
            .tokens
            .remember_refusal(WecomError::Token { error }, age)
            .await;
    }

    /// The `gettoken` refusal this client is holding, and how long ago WeCom gave it.
    pub async fn refusal(&self) -> Option<(ApiError, Duration)> {
        match self.inner.tokens.refusal().await? {
            (WecomError::Token { error }, age) => Some((error, age)),
            _ => None,
        }
    }

    /// How many 45033 answers this client has seen; an [`InFlightLimit`](super::InFlightLimit)
    /// lowers its pass's concurrency on each.
    pub(super) fn concurrency_limited_count(&self) -> u64 {
        self.inner.counters.concurrency_limited_count()
    }

    /// `department/list?id=ID`: the department and all its descendants; without an id, every
    /// department the app can see.
    pub(crate) async fn department_list(
        &self,
        id: Option<DepartmentId>,
    ) -> Result<Vec<wire::Department>, WecomError> {
        let call = Call::DepartmentList { id };
        let reply: wire::DepartmentList = self.call(call).await?;
        reply.department.ok_or_else(|| missing(call, "department"))
    }

    /// `auth/getuserinfo?code=CODE`: who a login code belongs to. Never retried (a code works
    /// once), and the code appears in no error or log.
    pub async fn login_identity(&self, code: &str) -> Result<LoginIdentity, WecomError> {
        let call = Call::AuthGetUserInfo;
        let reply: wire::UserInfo = self.call_with(call, &[("code", code)]).await?;
        match (reply.userid, reply.openid, reply.external_userid) {
            (Some(userid), _, _) if !userid.is_empty() => Ok(LoginIdentity::Member(userid)),
            (_, Some(_), _) | (_, _, Some(_)) => Ok(LoginIdentity::Outsider),
            _ => Err(missing(call, "userid")),
        }
    }

    /// `user/get?userid=ID`: one member, with only the memberships in `mirrored` departments,
    /// and how many it had elsewhere.
    pub async fn member(
        &self,
        userid: &str,
        mirrored: &std::collections::HashSet<DepartmentId>,
    ) -> Result<(crate::model::Member, usize), WecomError> {
        let call = Call::UserGet;
        let reply: wire::UserGet = self.call_with(call, &[("userid", userid)]).await?;
        let user = reply.user.ok_or_else(|| missing(call, "userid"))?;
        Ok(super::pull::member(user, mirrored))
    }

    /// `user/getuserid` (a mobile, as WeCom stores it) or `user/get_userid_by_email` (a
    /// business email): whose it is, or `None` when WeCom knows nobody the app can see by it
    /// (46004). A 45009 (the day's block, or a frequency limit) is returned at once, never
    /// waited out: see [`Retry::after`]. The value appears in no error or log.
    pub async fn lookup_userid(
        &self,
        kind: LookupKind,
        value: &str,
    ) -> Result<Option<String>, WecomError> {
        let (call, body) = match kind {
            LookupKind::Mobile => (Call::UserGetUserId, serde_json::json!({"mobile": value})),
            LookupKind::Email => (
                Call::UserGetUserIdByEmail,
                serde_json::json!({"email": value, "email_type": 1}),
            ),
        };
        match self.post::<wire::UserId>(call, &body).await {
            Ok(reply) => Ok(Some(
                reply
                    .userid
                    .filter(|userid| !userid.is_empty())
                    .ok_or_else(|| missing(call, "userid"))?,
            )),
            Err(WecomError::Api { error, .. }) if error.errcode == NOT_FOUND => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `agent/get?agentid=ID`: what the visible range of the app `agent_id` names besides
    /// departments. An app's token may read its own app only (40056 otherwise).
    pub(crate) async fn named_in_range(&self, agent_id: i64) -> Result<NamedInRange, WecomError> {
        let call = Call::AgentGet { agent_id };
        let reply: wire::AgentGet = self.call(call).await?;
        reply.agentid.ok_or_else(|| missing(call, "agentid"))?;
        let users = reply.allow_userinfos.map(|allowed| allowed.user);
        Ok(NamedInRange {
            userids: users
                .into_iter()
                .flatten()
                .map(|user| user.userid)
                .collect(),
            tags: reply.allow_tags.map_or(0, |tags| tags.tagid.len()),
        })
    }

    /// `user/list?department_id=ID`: the members directly in that department.
    pub(crate) async fn user_list(
        &self,
        department_id: DepartmentId,
    ) -> Result<Vec<wire::User>, WecomError> {
        let call = Call::UserList { department_id };
        let reply: wire::UserList = self.call(call).await?;
        reply.userlist.ok_or_else(|| missing(call, "userlist"))
    }

    /// A business call, with the shared token, retried as its failures allow.
    async fn call<T: Reply>(&self, call: Call) -> Result<T, WecomError> {
        self.call_with(call, &[]).await
    }

    /// [`WecomClient::call`] with query parameters that are not part of the call's name (a
    /// login code, a userid).
    async fn call_with<T: Reply>(
        &self,
        call: Call,
        params: &[(&str, &str)],
    ) -> Result<T, WecomError> {
        self.request(call, params, None).await
    }

    /// [`WecomClient::call`] as a POST of a JSON body that is not part of the call's name.
    async fn post<T: Reply>(&self, call: Call, body: &serde_json::Value) -> Result<T, WecomError> {
        self.request(call, &[], Some(body)).await
    }

    async fn request<T: Reply>(
        &self,
        call: Call,
        params: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, WecomError> {
        let mut retry = Retry::new(&self.inner, call);
        let mut refreshed = false;
        loop {
            let token = self.inner.tokens.get(|| self.fetch_token()).await?;
            let sent_at = Instant::now();
            match self.attempt(call, Some(&token), params, body).await {
                Ok(reply) => return Ok(reply),
                Err(Failure::Api(error)) if rejects_token(&error) => {
                    if refreshed {
                        return Err(WecomError::TokenRejected { call, error });
                    }
                    refreshed = true;
                    self.inner.counters.retry();
                    warn!(
                        endpoint = call.path(),
                        errcode = error.errcode,
                        "WeCom rejected the access token; fetching a new one and retrying once"
                    );
                    self.inner.tokens.invalidate(token.generation).await;
                }
                Err(failure) => retry.after(failure, sent_at).await?,
            }
        }
    }

    /// `gettoken`. Transient failures are retried; a refusal (bad corp id or secret, IP not
    /// allowed, ...) is returned at once and never retried, see [`TokenCache`].
    async fn fetch_token(&self) -> Result<(Secret, i64), WecomError> {
        let call = Call::GetToken;
        let mut retry = Retry::new(&self.inner, call);
        loop {
            let sent_at = Instant::now();
            match self.attempt::<wire::GetToken>(call, None, &[], None).await {
                Ok(reply) => {
                    let token = reply
                        .access_token
                        .filter(|token| !token.expose().is_empty())
                        .ok_or_else(|| missing(call, "access_token"))?;
                    let expires_in = reply
                        .expires_in
                        .ok_or_else(|| missing(call, "expires_in"))?;
                    return Ok((token, expires_in));
                }
                Err(Failure::Api(error))
                    if matches!(
                        error.class(),
                        ErrcodeClass::Fatal | ErrcodeClass::TokenRefresh
                    ) =>
                {
                    return Err(WecomError::Token { error });
                }
                Err(failure) => retry.after(failure, sent_at).await?,
            }
        }
    }

    /// One HTTP request and its decoded answer.
    async fn attempt<T: Reply>(
        &self,
        call: Call,
        token: Option<&Token>,
        params: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, Failure> {
        self.inner.gate.wait().await;
        self.inner.counters.call(call);
        let started = Instant::now();
        let result = self.send(call, token, params, body).await;
        debug!(
            endpoint = call.path(),
            ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "WeCom call"
        );
        let body = result.map_err(|failure| self.scrub(failure, token))?;
        decode(&body).map_err(|failure| self.scrub(failure, token))
    }

    async fn send(
        &self,
        call: Call,
        token: Option<&Token>,
        params: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, Failure> {
        let inner = &*self.inner;
        let url = inner
            .base
            .join(call.path())
            .map_err(|err| Failure::Malformed(err.to_string()))?;
        let mut request = match body {
            Some(body) => inner.http.post(url).json(body),
            None => inner.http.get(url),
        };
        request = match call {
            Call::GetToken => request.query(&[
                ("corpid", inner.corp_id.as_str()),
                ("corpsecret", inner.corp_secret.expose()),
            ]),
            Call::DepartmentList { id: Some(id) } => request.query(&[("id", id)]),
            Call::DepartmentList { id: None } => request,
            Call::UserList { department_id } => request.query(&[("department_id", department_id)]),
            Call::AgentGet { agent_id } => request.query(&[("agentid", agent_id)]),
            Call::AuthGetUserInfo
            | Call::UserGet
            | Call::UserGetUserId
            | Call::UserGetUserIdByEmail => request,
        };
        request = request.query(params);
        if let Some(token) = token {
            request = request.query(&[("access_token", token.value.expose())]);
        }
        // `without_url`: reqwest's errors print the URL, and ours carries the secret or token.
        let response = request
            .send()
            .await
            .map_err(|err| Failure::Transport(describe(&err.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::Transport(format!("HTTP status {status}")));
        }
        read_body(response, inner.max_response_bytes).await
    }

    /// Removes the secret and the token from text that came off the network or out of an HTTP
    /// library, in case either echoes them.
    fn scrub(&self, failure: Failure, token: Option<&Token>) -> Failure {
        let scrub = |mut text: String| {
            let needles = [Some(&self.inner.corp_secret), token.map(|t| &t.value)];
            for needle in needles.into_iter().flatten().map(Secret::expose) {
                if !needle.is_empty() && text.contains(needle) {
                    text = text.replace(needle, "[redacted]");
                }
            }
            text
        };
        match failure {
            Failure::Transport(detail) => Failure::Transport(scrub(detail)),
            Failure::Malformed(detail) => Failure::Malformed(scrub(detail)),
            Failure::Api(error) => Failure::Api(ApiError {
                errmsg: scrub(error.errmsg),
                ..error
            }),
        }
    }
}

/// 40014/42001 mean the token is stale. 40001 and 41001 on a business call (the token came from
/// a `gettoken` that succeeded) are treated the same, as WxJava does: one
/// refresh is cheap, and if the secret really is bad, that `gettoken` says so with a fatal 40001.
fn rejects_token(error: &ApiError) -> bool {
    error.class() == ErrcodeClass::TokenRefresh || matches!(error.errcode, 40001 | 41001)
}

/// [`WecomClient::credentials_id`]: a hash of the endpoint, corp id and secret.
fn credentials_id(base: &Url, corp_id: &str, secret: &Secret) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    // SipHash with fixed keys: stable across processes of one build. Across an upgrade an id
    // may change, which only costs one `gettoken` sooner than the hold would allow.
    let mut hasher = DefaultHasher::new();
    (base.as_str(), corp_id, secret.expose()).hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn missing(call: Call, field: &str) -> WecomError {
    WecomError::Malformed {
        call,
        detail: format!("errcode 0 but no `{field}`"),
    }
}

/// The error and its causes on one line. Callers pass errors stripped of their URL.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads the body, refusing more than `limit` bytes whether or not the server announced a length.
async fn read_body(mut response: Response, limit: usize) -> Result<Vec<u8>, Failure> {
    let too_large = || {
        Failure::Malformed(format!(
            "response body larger than {limit} bytes (the max_response_bytes client setting)"
        ))
    };
    let announced = response.content_length();
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced.map_or(16 << 10, |len| len as usize));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| Failure::Transport(describe(&err.without_url())))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn decode<T: Reply>(body: &[u8]) -> Result<T, Failure> {
    let reply: T = serde_json::from_slice(body).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            // A proxy's HTML error page, or a body cut short: the next attempt may do better.
            Category::Syntax | Category::Eof | Category::Io => {
                Failure::Transport(format!("response body is not JSON or is truncated ({err})"))
            }
            Category::Data => Failure::Malformed(err.to_string()),
        }
    })?;
    match reply.errcode() {
        Some(0) => Ok(reply),
        Some(errcode) => Err(Failure::Api(ApiError::new(errcode, reply.errmsg()))),
        None => Err(Failure::Malformed("JSON without an errcode".to_owned())),
    }
}

/// The retry state of one call.
struct Retry<'a> {
    inner: &'a Inner,
    call: Call,
    attempts: u32,
    transient: ExponentialBackoff,
    concurrency: ExponentialBackoff,
    rate_limit_waits: usize,
}

impl<'a> Retry<'a> {
    fn new(inner: &'a Inner, call: Call) -> Retry<'a> {
        Retry {
            inner,
            call,
            attempts: 0,
            transient: inner.retry.transient(call),
            concurrency: inner.retry.concurrency(),
            rate_limit_waits: 0,
        }
    }

    /// Waits before the next attempt, or returns the error that ends the call.
    async fn after(&mut self, failure: Failure, sent_at: Instant) -> Result<(), WecomError> {
        let call = self.call;
        self.attempts += 1;
        let attempts = self.attempts;
        let delay = match failure {
            Failure::Transport(ref detail) => {
                self.transient.next().ok_or_else(|| WecomError::Transport {
                    call,
                    attempts,
                    detail: detail.clone(),
                })?
            }
            Failure::Malformed(detail) => return Err(WecomError::Malformed { call, detail }),
            Failure::Api(ref error) => {
                let give_up = || WecomError::Api {
                    call,
                    error: error.clone(),
                    attempts,
                };
                match error.class() {
                    ErrcodeClass::Transient => self.transient.next().ok_or_else(give_up)?,
                    ErrcodeClass::ConcurrencyLimited => {
                        self.inner.counters.concurrency_limited();
                        self.concurrency.next().ok_or_else(give_up)?
                    }
                    ErrcodeClass::RateLimited => {
                        self.inner.counters.rate_limited();
                        // For a lookup it may be the day's block, which pausing every other
                        // call for a minute would not lift: the lookup pass stops instead.
                        if call.is_lookup()
                            || self.rate_limit_waits >= self.inner.retry.max_rate_limit_waits
                        {
                            return Err(give_up());
                        }
                        self.rate_limit_waits += 1;
                        let wait = self.inner.retry.rate_limit_wait;
                        if self.inner.gate.block(sent_at, wait) {
                            warn!(
                                endpoint = call.path(),
                                errcode = error.errcode,
                                wait_s = wait.as_secs_f64(),
                                "WeCom frequency limit; pausing every call"
                            );
                        }
                        // The next attempt waits at the gate, with every other call.
                        Duration::ZERO
                    }
                    ErrcodeClass::TokenRefresh | ErrcodeClass::Fatal => return Err(give_up()),
                }
            }
        };
        self.inner.counters.retry();
        warn!(
            endpoint = call.path(),
            attempt = attempts,
            delay_ms = delay.as_millis() as u64,
            reason = %failure,
            "WeCom call failed; retrying"
        );
        sleep(delay).await;
        Ok(())
    }
}
