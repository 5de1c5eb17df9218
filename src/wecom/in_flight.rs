//! How many calls a pass of many (`user/list` per department, `user/get` per member, lookups)
//! keeps in flight.
//!
//! WeCom caps concurrent calls per API and per app without saying where (45033, "too many
//! concurrent calls"). The client retries a refused call itself; the pass also takes one call
//! fewer in flight for each 45033 since it began, never fewer than one, so that it settles under
//! the cap instead of being refused again and again until the client's retries run out.

use tracing::info;

use super::WecomClient;

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
