//! The sync queue: requests to sync from signals, the socket, the schedule and start-up.
//!
//! Requests coalesce: however many arrive while a run is in progress, exactly one follow-up
//! run is queued, carrying the trigger of the first of them.

use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;

use crate::store::runs::Trigger;

#[derive(Debug, Default)]
pub struct SyncQueue {
    pending: Mutex<Option<Trigger>>,
    wake: Notify,
}

impl SyncQueue {
    /// Asks for a run. Returns false when one was already queued (this request merged into it).
    pub fn request(&self, trigger: Trigger) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let queued = pending.is_none();
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
}
