//! What starts a run, and the queue of requests to run: from signals, the socket, the schedule,
//! start-up and the command line. The store records triggers, and the daemon, the socket and
//! the scheduler queue them, so both live here, below all of them.
//!
//! Requests coalesce: however many arrive while a run is in progress, exactly one follow-up
//! run is queued, carrying the trigger of the first of them, except that a request for a full
//! run replaces a queued callback run: the full run covers the callbacks too.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::Notify;

/// What started a run, as named in `orgsync.sync.*` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Signal,
    Socket,
    Cli,
    Startup,
    /// WeCom contact-change callbacks: a targeted run over what they name.
    Callback,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Signal => "signal",
            Trigger::Socket => "socket",
            Trigger::Cli => "cli",
            Trigger::Startup => "startup",
            Trigger::Callback => "callback",
        }
    }

    /// A full pull; the other kind, [`Trigger::Callback`], re-reads only what callbacks named.
    pub fn is_full(self) -> bool {
        self != Trigger::Callback
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Trigger, String> {
        [
            Trigger::Schedule,
            Trigger::Signal,
            Trigger::Socket,
            Trigger::Cli,
            Trigger::Startup,
            Trigger::Callback,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
        .ok_or_else(|| format!("unknown trigger {s:?}"))
    }
}

#[derive(Debug, Default)]
pub struct SyncQueue {
    pending: Mutex<Option<Trigger>>,
    wake: Notify,
}

impl SyncQueue {
    /// Asks for a run. Returns false when one was already queued (this request merged into it).
    pub fn request(&self, trigger: Trigger) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let queued = match *pending {
            None => true,
            Some(queued) => !queued.is_full() && trigger.is_full(),
        };
        if queued {
            *pending = Some(trigger);
        }
        drop(pending);
        self.wake.notify_one();
        queued
    }

    /// Waits for a request and takes it.
    pub async fn next(&self) -> Trigger {
        loop {
            if let Some(trigger) = self.take() {
                return trigger;
            }
            self.wake.notified().await;
        }
    }

    pub fn is_pending(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn take(&self) -> Option<Trigger> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_during_a_run_coalesce_into_one() {
        let queue = SyncQueue::default();
        assert!(queue.request(Trigger::Signal));
        assert_eq!(queue.next().await, Trigger::Signal);
        // A run is now in progress; three more requests arrive.
        assert!(queue.request(Trigger::Socket));
        assert!(!queue.request(Trigger::Signal));
        assert!(!queue.request(Trigger::Schedule));
        assert_eq!(queue.next().await, Trigger::Socket);
        assert!(!queue.is_pending());
    }

    #[tokio::test]
    async fn a_full_run_replaces_a_queued_callback_run_and_not_the_other_way() {
        let queue = SyncQueue::default();
        assert!(queue.request(Trigger::Callback));
        assert!(!queue.request(Trigger::Callback));
        assert!(queue.request(Trigger::Schedule));
        assert!(!queue.request(Trigger::Callback));
        assert_eq!(queue.next().await, Trigger::Schedule);
    }
}
