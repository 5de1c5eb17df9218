//! How many calls a pass of many (`user/list` per department, `user/get` per member, lookups)
//! keeps in flight, and the reading of members one `user/get` each.
//!
//! WeCom caps concurrent calls per API and per app without saying where (45033, "too many
//! concurrent calls"). The client retries a refused call itself; the pass also takes one call
//! fewer in flight for each 45033 since it began, never fewer than one, so that it settles under
//! the cap instead of being refused again and again until the client's retries run out.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::task::{JoinError, JoinSet};
use tracing::info;

use super::{WecomClient, WecomError};
use crate::model::{DepartmentId, Member};

pub struct InFlightLimit {
    client: WecomClient,
    configured: usize,
    limited_at_start: u64,
    allowed: usize,
    /// The API the pass calls, for the log line.
    api: &'static str,
}

impl InFlightLimit {
    /// `configured` calls at once (at least one) until `client` sees a 45033.
    pub fn new(client: &WecomClient, configured: usize, api: &'static str) -> InFlightLimit {
        InFlightLimit {
            client: client.clone(),
            configured: configured.max(1),
            limited_at_start: client.concurrency_limited_count(),
            allowed: configured.max(1),
            api,
        }
    }

    /// How many calls may be in flight now: lower by one for each 45033 since the pass began.
    pub fn allowed(&mut self) -> usize {
        let limited = self.client.concurrency_limited_count() - self.limited_at_start;
        let now_allowed = self
            .configured
            .saturating_sub(usize::try_from(limited).unwrap_or(usize::MAX))
            .max(1);
        if now_allowed < self.allowed {
            self.allowed = now_allowed;
            info!(
                concurrency = now_allowed,
                "WeCom concurrency limit (45033); lowering {} concurrency", self.api
            );
        }
        self.allowed
    }
}

/// What `user/get` answered for one userid: the member, with how many of their memberships were
/// outside the mirrored departments, or the failure.
pub type MemberAnswer = (String, Result<(Member, usize), WecomError>);

/// Members read with `user/get`, at most the configured number at once under an
/// [`InFlightLimit`], answers taken in the order they come. Dropping it drops the calls still in
/// flight.
pub struct MemberReads {
    client: WecomClient,
    queue: std::vec::IntoIter<String>,
    mirrored: Arc<HashSet<DepartmentId>>,
    limit: InFlightLimit,
    in_flight: JoinSet<MemberAnswer>,
}

impl MemberReads {
    /// Reads `userids`, keeping each member's memberships in `mirrored` departments only.
    pub fn start(
        client: &WecomClient,
        userids: Vec<String>,
        mirrored: Arc<HashSet<DepartmentId>>,
        concurrency: usize,
    ) -> MemberReads {
        MemberReads {
            client: client.clone(),
            queue: userids.into_iter(),
            mirrored,
            limit: InFlightLimit::new(client, concurrency, "user/get"),
            in_flight: JoinSet::new(),
        }
    }

    /// The next answer, `None` once every userid is answered. `Err` only when a call's task
    /// ended abnormally.
    pub async fn next(&mut self) -> Option<Result<MemberAnswer, JoinError>> {
        while self.in_flight.len() < self.limit.allowed() {
            let Some(userid) = self.queue.next() else {
                break;
            };
            let (client, mirrored) = (self.client.clone(), Arc::clone(&self.mirrored));
            self.in_flight.spawn(async move {
                let answer = client.member(&userid, &mirrored).await;
                (userid, answer)
            });
        }
        self.in_flight.join_next().await
    }
}
