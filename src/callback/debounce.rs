//! Turns a stream of callbacks into few runs: the first callback after a quiet spell arms a
//! timer, and when it fires (about two seconds later, by which time a burst has mostly
//! arrived) one callback run is queued for everything recorded so far. Callbacks arriving
//! while it is armed ride along; one arriving after it fired arms it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::queue::{SyncQueue, Trigger};
use crate::shutdown::stopped;

/// How long after the first callback of a burst its run is queued.
pub const DEBOUNCE: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Debounce {
    armed: AtomicBool,
    wake: Notify,
}

impl Debounce {
    /// A callback was recorded.
    pub fn arm(&self) {
        if !self.armed.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }
}

pub async fn run(
    debounce: Arc<Debounce>,
    queue: Arc<SyncQueue>,
    delay: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = debounce.wake.notified() => {}
        }
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tokio::time::sleep(delay) => {}
        }
        debounce.armed.store(false, Ordering::Release);
        queue.request(Trigger::Callback);
    }
}
