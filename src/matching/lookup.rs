//! Matching when WeCom withholds mobiles: asking WeCom whose a host user's mobile
//! (`user/getuserid`) or email (`user/get_userid_by_email`) is.
//!
//! The answers do not link anyone by themselves. They are cached in the store
//! ([`crate::store::lookups`]) and become facts of the member they name (a mobile, an email),
//! and the same [`super::plan`] decides the links, under the same ambiguity rules: a mobile two
//! host users share links neither, whatever WeCom says of it.
//!
//! # What is asked, and how often
//!
//! Only unlinked host users that automatic matching may link (not held) are looked up, and only
//! for values with no usable answer yet: never asked, or a miss older than its time to live.
//! Mobiles are asked only while some mirrored member lacks one (WeCom withholds them from apps
//! created since 2022-06-20) and no mirrored member already has the host user's mobile; an
//! email is asked once the host user's mobile is answered or absent, so a mobile that links
//! saves the email lookup. Hits are asked again once they are older than
//! [`LookupSettings::recheck_after`], so that a number given to someone else is noticed.
//!
//! # The failure budget
//!
//! WeCom blocks both lookups for the rest of the day once a corp's failed lookups (46004) of
//! the day exceed 20% of its headcount limit. The pass keeps its own count of the day's failures
//! in the store, stops at a budget well under that (by default 5% of the mirrored members), and
//! resumes the next day (days in China time, as WeCom counts them). A 45009 from a lookup may
//! be that block or an ordinary frequency limit: lookups pause for an hour
//! ([`PAUSE_AFTER_REFUSAL`]) and no other call waits for it.
//!
//! Results are committed in batches as they arrive, each batch re-matched with its link events,
//! so a link found in the first second does not wait for ten thousand more lookups.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Offset, Utc};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::apply::{load_state, rematch_and_announce};
use super::{plan, Plan, State};
use crate::events::EventSource;
use crate::hashing::{FastMap, FastSet};
use crate::model::host_user::LookupKind;
use crate::shutdown::stopped;
use crate::store::host_users;
use crate::store::lookups::{self, Answer};
use crate::store::{Store, StoreError};
use crate::wecom::{ErrcodeClass, InFlightLimit, WecomClient, WecomError};

/// How many lookups one batch makes before committing what they found.
const BATCH: usize = 200;

/// Beijing is UTC+8 all year.
const CHINA_OFFSET_SECS: i32 = 8 * 3600;

#[derive(Debug, Clone, PartialEq)]
pub struct LookupSettings {
    pub enabled: bool,
    /// Failed lookups allowed per day; `None`: 5% of the mirrored members, at least 1.
    pub failure_budget: Option<u64>,
    /// How long a miss is trusted before the value is asked again.
    pub miss_ttl: Duration,
    /// How long a hit is trusted before it is checked again.
    pub recheck_after: Duration,
    /// Lookups in flight at once.
    pub concurrency: usize,
}

impl Default for LookupSettings {
    fn default() -> LookupSettings {
        LookupSettings {
            enabled: true,
            failure_budget: None,
            miss_ttl: Duration::from_secs(24 * 3600),
            recheck_after: Duration::from_secs(30 * 24 * 3600),
            concurrency: 4,
        }
    }
}

impl LookupSettings {
    /// The day's failure budget for a mirror of `members` members.
    pub fn budget(&self, members: usize) -> u64 {
        self.failure_budget
            .unwrap_or_else(|| (members as u64 / 20).max(1))
    }
}

/// Why a pass ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Nothing is left to ask.
    Done,
    /// The day's failure budget is spent; lookups resume the next day.
    Budget,
    /// WeCom refused lookups (45009); they pause for an hour.
    Blocked,
    /// A lookup failed for another reason (WeCom unreachable, the token refused); the next pass
    /// tries again.
    Failed(String),
    /// The daemon is stopping.
    Stopped,
    /// `matching.lookups` is off.
    Disabled,
}

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassSummary {
    pub calls: u64,
    pub hits: u64,
    pub misses: u64,
    pub links_created: usize,
    pub links_removed: usize,
    pub ended: Ended,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where the lookups stand today, for `orgsync match report` and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetView {
    /// YYYY-MM-DD in China time.
    pub day: String,
    pub failures: u64,
    pub budget: u64,
    /// When WeCom last refused lookups today, if it did; they pause for an hour after it.
    pub blocked_at: Option<String>,
    /// Host-user values waiting to be asked.
    pub pending: usize,
    pub cached_hits: u64,
    pub cached_misses: u64,
    pub enabled: bool,
}

/// How long lookups pause after WeCom refused one (45009). The refusal may be the day's block
/// or an ordinary frequency limit; asking once an hour costs one refused call if it was the
/// former, and loses at most an hour if it was the latter.
const PAUSE_AFTER_REFUSAL: Duration = Duration::from_secs(3600);

/// Whether a refusal recorded at `blocked_at` (RFC 3339) still pauses lookups at `now`.
fn is_paused(blocked_at: Option<&str>, now: DateTime<Utc>) -> bool {
    blocked_at
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .is_some_and(|at| {
            (now - at.with_timezone(&Utc))
                .to_std()
                .is_ok_and(|age| age < PAUSE_AFTER_REFUSAL)
        })
}

/// Today's number, as WeCom counts days.
pub fn china_day(now: DateTime<Utc>) -> String {
    let china = FixedOffset::east_opt(CHINA_OFFSET_SECS).unwrap_or_else(|| Utc.fix());
    now.with_timezone(&china).format("%Y-%m-%d").to_string()
}

/// The mobile as WeCom stores it: Chinese mobiles without `+86`, others in E.164.
fn wecom_mobile(normalized: &str) -> &str {
    normalized.strip_prefix("+86").unwrap_or(normalized)
}

/// The values to ask about now, most useful first: never asked, then misses past their time to
/// live, then hits due for a recheck. `plan` is matching's plan for `state`: a host user it
/// links is not asked about.
pub fn wanted(
    state: &State,
    plan: &Plan,
    answers: &FastMap<(LookupKind, String), Answer>,
    settings: &LookupSettings,
    now: DateTime<Utc>,
) -> Vec<(LookupKind, String)> {
    let links = plan.links_after(state);
    let age = |answer: &Answer| (now - answer.looked_up_at).to_std().unwrap_or_default();
    let mirrored_mobiles: FastSet<&str> = state
        .members
        .values()
        .filter_map(|m| m.mobile.as_deref())
        .collect();
    let mobiles_withheld = state.members.values().any(|m| m.mobile.is_none());

    let mut fresh = Vec::new();
    let mut expired = Vec::new();
    let mut recheck = Vec::new();
    let mut seen: FastSet<(LookupKind, String)> = FastSet::default();
    let mut consider = |kind: LookupKind, value: &str, open: bool| -> bool {
        match answers.get(&(kind, value.to_owned())) {
            None if open => {
                if seen.insert((kind, value.to_owned())) {
                    fresh.push((kind, value.to_owned()));
                }
                true
            }
            Some(answer) if answer.userid.is_none() && open && age(answer) > settings.miss_ttl => {
                if seen.insert((kind, value.to_owned())) {
                    expired.push((kind, value.to_owned()));
                }
                true
            }
            Some(answer) if answer.userid.is_some() && age(answer) > settings.recheck_after => {
                if seen.insert((kind, value.to_owned())) {
                    recheck.push((kind, value.to_owned()));
                }
                false
            }
            _ => false,
        }
    };
    let mut hosts: Vec<(&String, &super::HostFacts)> = state.host_users.iter().collect();
    hosts.sort_by(|a, b| a.0.cmp(b.0));
    for (id, host) in hosts {
        let open = !links.contains_key(id.as_str()) && !state.held.contains(id);
        let mut mobile_pending = false;
        if let Some(mobile) = host.mobile.as_deref() {
            if mobiles_withheld && !mirrored_mobiles.contains(mobile) {
                mobile_pending = consider(LookupKind::Mobile, mobile, open);
            }
        }
        if let Some(email) = host.email.as_deref() {
            if !mobile_pending {
                consider(LookupKind::Email, email, open);
            }
        }
    }
    fresh.extend(expired);
    fresh.extend(recheck);
    fresh
}

/// The budget, cache and backlog as the store holds them, for matching's `state` as loaded from
/// the same store and its `plan`.
pub fn budget_view(
    conn: &rusqlite::Connection,
    state: &State,
    plan: &Plan,
    settings: &LookupSettings,
    now: DateTime<Utc>,
) -> Result<BudgetView, StoreError> {
    let answers = lookups::load(conn)?;
    let today = lookups::day(conn, &china_day(now))?;
    let cache = lookups::counts(conn)?;
    let pending = if settings.enabled {
        wanted(state, plan, &answers, settings, now).len()
    } else {
        0
    };
    Ok(BudgetView {
        day: today.day,
        failures: today.failures,
        budget: settings.budget(state.members.len()),
        blocked_at: today.blocked_at,
        pending,
        cached_hits: cache.hits,
        cached_misses: cache.misses,
        enabled: settings.enabled,
    })
}

/// One pass: asks WeCom about every wanted value, within the day's budget, committing the
/// answers and the links they make batch by batch. `stop` resolving ends it after the batch in
/// flight is committed.
pub async fn run(
    client: &WecomClient,
    store_path: PathBuf,
    source: EventSource,
    settings: &LookupSettings,
    stop: &mut watch::Receiver<bool>,
) -> Result<PassSummary, LookupError> {
    let mut summary = PassSummary {
        calls: 0,
        hits: 0,
        misses: 0,
        links_created: 0,
        links_removed: 0,
        ended: Ended::Done,
    };
    if !settings.enabled {
        summary.ended = Ended::Disabled;
        return Ok(summary);
    }
    loop {
        if *stop.borrow() {
            summary.ended = Ended::Stopped;
            return Ok(summary);
        }
        let now = Utc::now();
        let Next { work, allowed, day } = {
            let path = store_path.clone();
            let settings = settings.clone();
            blocking(move || next_batch(&path, &settings, now)).await??
        };
        let allowed = match allowed {
            Allowed::Failures(n) => n,
            Allowed::Blocked => {
                summary.ended = Ended::Blocked;
                return Ok(summary);
            }
        };
        if work.is_empty() {
            return Ok(summary);
        }
        if allowed == 0 {
            summary.ended = Ended::Budget;
            return Ok(summary);
        }
        let batch = ask(client, work, allowed, settings.concurrency, stop).await;
        summary.calls += batch.answers.len() as u64;
        summary.hits += batch.answers.iter().filter(|a| a.2.is_some()).count() as u64;
        summary.misses += batch.answers.iter().filter(|a| a.2.is_none()).count() as u64;
        let (created, removed) = {
            let path = store_path.clone();
            let source = source.clone();
            let answers = batch.answers;
            let blocked = batch.blocked;
            blocking(move || {
                commit(
                    &path,
                    &source,
                    &answers,
                    blocked,
                    (&day, allowed),
                    Utc::now(),
                )
            })
            .await??
        };
        summary.links_created += created;
        summary.links_removed += removed;
        if batch.blocked {
            summary.ended = Ended::Blocked;
            return Ok(summary);
        }
        if let Some(error) = batch.failed {
            summary.ended = Ended::Failed(error);
            return Ok(summary);
        }
        if batch.over_budget {
            summary.ended = Ended::Budget;
            return Ok(summary);
        }
    }
}

enum Allowed {
    /// Failures left in today's budget.
    Failures(u64),
    Blocked,
}

/// A batch of values to ask about, and the failures reserved for it.
struct Next {
    work: Vec<(LookupKind, String)>,
    allowed: Allowed,
    /// The day (China time) the reserved failures count on.
    day: String,
}

/// The next batch, with the failures reserved for it ([`lookups::reserve`]).
fn next_batch(
    path: &std::path::Path,
    settings: &LookupSettings,
    now: DateTime<Utc>,
) -> Result<Next, StoreError> {
    let mut store = Store::open_existing(path, crate::store::BUSY_TIMEOUT)?;
    let conn = store.conn();
    let day = china_day(now);
    let nothing = |allowed, day| Next {
        work: Vec::new(),
        allowed,
        day,
    };
    if host_users::is_empty(conn)? {
        // Nothing to look up: a corp without host users pays nothing for lookups.
        return Ok(nothing(Allowed::Failures(0), day));
    }
    if is_paused(lookups::day(conn, &day)?.blocked_at.as_deref(), now) {
        return Ok(nothing(Allowed::Blocked, day));
    }
    let state = load_state(conn)?;
    let budget = settings.budget(state.members.len());
    let mut work = wanted(&state, &plan(&state), &lookups::load(conn)?, settings, now);
    work.truncate(BATCH);
    if work.is_empty() {
        return Ok(nothing(Allowed::Failures(0), day));
    }
    let wanted = work.len() as u64;
    let granted = store.write(|tx| lookups::reserve(tx, &day, wanted, budget))?;
    Ok(Next {
        work,
        allowed: Allowed::Failures(granted),
        day,
    })
}

/// What one batch of lookups found.
struct Batch {
    /// (kind, value, userid or `None` for a miss).
    answers: Vec<(LookupKind, String, Option<String>)>,
    blocked: bool,
    over_budget: bool,
    failed: Option<String>,
}

/// Asks about `work`, at most `concurrency` at once (one fewer after each 45033), stopping before the misses could exceed
/// `allowed` (every call in flight is counted as a possible miss), at a 45009, at another
/// failure, or when `stop` resolves (the calls in flight are dropped unanswered).
async fn ask(
    client: &WecomClient,
    work: Vec<(LookupKind, String)>,
    allowed: u64,
    concurrency: usize,
    stop: &mut watch::Receiver<bool>,
) -> Batch {
    let mut batch = Batch {
        answers: Vec::new(),
        blocked: false,
        over_budget: false,
        failed: None,
    };
    let mut misses = 0u64;
    let mut in_flight = JoinSet::new();
    let mut limit = InFlightLimit::new(client, concurrency, "lookup");
    let mut work = work.into_iter().peekable();
    loop {
        let stopping = batch.blocked || batch.failed.is_some();
        while !stopping
            && in_flight.len() < limit.allowed()
            && misses + (in_flight.len() as u64) < allowed
        {
            let Some((kind, value)) = work.next() else {
                break;
            };
            let client = client.clone();
            in_flight.spawn(async move {
                let asked = match kind {
                    LookupKind::Mobile => wecom_mobile(&value).to_owned(),
                    LookupKind::Email => value.clone(),
                };
                let answer = client.lookup_userid(kind, &asked).await;
                (kind, value, answer)
            });
        }
        let joined = tokio::select! {
            joined = in_flight.join_next() => joined,
            () = stopped(stop) => {
                in_flight.abort_all();
                break;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let Ok((kind, value, answer)) = joined else {
            batch.failed = Some("a lookup task ended abnormally".to_owned());
            continue;
        };
        match answer {
            Ok(userid) => {
                misses += u64::from(userid.is_none());
                batch.answers.push((kind, value, userid));
            }
            Err(error) if is_block(&error) => batch.blocked = true,
            Err(error) => {
                batch.failed.get_or_insert(error.to_string());
            }
        }
    }
    batch.over_budget = work.peek().is_some() && misses >= allowed;
    batch
}

/// 45009, or 45011, WeChat's code for the same, which the fact sheet says to treat alike.
fn is_block(error: &WecomError) -> bool {
    matches!(error, WecomError::Api { error, .. } if error.class() == ErrcodeClass::RateLimited)
}

/// Records a batch's answers, settles the failures reserved for it (`reserved` on `day`), and
/// re-matches with its link events, in one transaction. Returns the links created and removed.
fn commit(
    path: &std::path::Path,
    source: &EventSource,
    answers: &[(LookupKind, String, Option<String>)],
    blocked: bool,
    (day, reserved): (&str, u64),
    now: DateTime<Utc>,
) -> Result<(usize, usize), StoreError> {
    let mut store = Store::open_existing(path, crate::store::BUSY_TIMEOUT)?;
    store.write(|tx| {
        let mut misses = 0;
        for (kind, value, userid) in answers {
            lookups::record(tx, *kind, value, userid.as_deref(), now)?;
            misses += u64::from(userid.is_none());
        }
        lookups::settle(tx, day, reserved, misses)?;
        if blocked {
            lookups::block(tx, day, now)?;
        }
        let changes = rematch_and_announce(tx, source, "lookup", now)?;
        Ok((changes.created.len(), changes.removed.len()))
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LookupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LookupError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{facts_of, HostFacts, MemberFacts};
    use crate::model::host_user::tests::user;
    use crate::model::host_user::{Link, Method};

    fn host(id: &str, mobile: Option<&str>, email: Option<&str>) -> (String, HostFacts) {
        (id.to_owned(), facts_of(&user(id, None, mobile, email)))
    }

    fn answer(userid: Option<&str>, hours_ago: i64, now: DateTime<Utc>) -> Answer {
        Answer {
            userid: userid.map(Into::into),
            looked_up_at: now - chrono::Duration::hours(hours_ago),
        }
    }

    #[test]
    fn asks_new_values_first_then_expired_misses_then_stale_hits_and_never_the_linked_or_held() {
        let now = Utc::now();
        let mut state = State::default();
        state
            .members
            .insert("alice".into(), MemberFacts::new("alice", None, None));
        state.host_users.extend([
            host("new", Some("13800138000"), Some("new@corp.example")),
            host("missed", Some("13911220876"), None),
            host("fresh-miss", Some("15010873321"), None),
            host("linked", Some("13000000001"), None),
            host("held", Some("13000000002"), None),
            host("email-only", None, Some("E@Corp.example")),
        ]);
        state.links.insert(
            "linked".into(),
            Link {
                userid_key: "alice".into(),
                userid: "alice".into(),
                method: Method::Phone,
            },
        );
        state.held.insert("held".into());
        let mut answers = FastMap::default();
        let mobile = |m: &str| (LookupKind::Mobile, m.to_owned());
        answers.insert(mobile("+8613911220876"), answer(None, 25, now));
        answers.insert(mobile("+8615010873321"), answer(None, 1, now));
        answers.insert(
            mobile("+8613000000001"),
            answer(Some("alice"), 31 * 24, now),
        );

        let wanted = wanted(
            &state,
            &plan(&state),
            &answers,
            &LookupSettings::default(),
            now,
        );
        assert_eq!(
            wanted,
            [
                (LookupKind::Email, "e@corp.example".to_owned()),
                mobile("+8613800138000"),
                mobile("+8613911220876"),
                mobile("+8613000000001"),
            ]
        );
    }

    #[test]
    fn mobiles_are_not_asked_when_the_mirror_has_them() {
        let now = Utc::now();
        let mut state = State::default();
        state.members.insert(
            "alice".into(),
            MemberFacts::new("alice", None, Some("13800138000")),
        );
        state
            .host_users
            .extend([host("h1", Some("13911220876"), Some("h1@corp.example"))]);
        let wanted = wanted(
            &state,
            &plan(&state),
            &FastMap::default(),
            &LookupSettings::default(),
            now,
        );
        assert_eq!(wanted, [(LookupKind::Email, "h1@corp.example".to_owned())]);
    }

    #[test]
    fn the_default_budget_is_a_twentieth_of_the_members_and_at_least_one() {
        let settings = LookupSettings::default();
        assert_eq!(settings.budget(0), 1);
        assert_eq!(settings.budget(100_000), 5_000);
        let fixed = LookupSettings {
            failure_budget: Some(7),
            ..settings
        };
        assert_eq!(fixed.budget(100_000), 7);
    }

    #[test]
    fn a_refusal_pauses_lookups_for_an_hour() {
        let at = Utc::now();
        let stamp = at.to_rfc3339();
        assert!(is_paused(Some(&stamp), at + chrono::Duration::minutes(59)));
        assert!(!is_paused(Some(&stamp), at + chrono::Duration::minutes(61)));
        assert!(!is_paused(None, at));
    }

    #[test]
    fn days_are_counted_in_china_time() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc));
        assert_eq!(china_day(at("2026-12-07T15:59:59Z").unwrap()), "2026-12-07");
        assert_eq!(china_day(at("2026-12-07T16:00:00Z").unwrap()), "2026-12-08");
    }

    #[test]
    fn chinese_mobiles_are_asked_without_the_country_code() {
        assert_eq!(wecom_mobile("+8613800138000"), "13800138000");
        assert_eq!(wecom_mobile("+14155550100"), "+14155550100");
    }
}
