//! WeCom's two throttles, per API: calls in flight at once (45033) and calls per window (45009,
//! after which the API stays blocked until the window ends).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::endpoint::Endpoint;
use super::state::lock;

const APIS: usize = Endpoint::ALL.len();

pub(crate) struct Limits {
    in_flight: [AtomicUsize; APIS],
    windows: Mutex<[Window; APIS]>,
}

#[derive(Clone, Copy, Default)]
struct Window {
    started: Option<Instant>,
    calls: u32,
}

/// One call in flight; dropping it (response sent, or the client gave up) frees the slot.
pub(crate) struct InFlight<'a> {
    counter: &'a AtomicUsize,
    /// Calls in flight on this API including this one, when it arrived.
    pub(crate) level: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    pub(crate) fn new() -> Limits {
        Limits {
            in_flight: std::array::from_fn(|_| AtomicUsize::new(0)),
            windows: Mutex::new([Window::default(); APIS]),
        }
    }

    pub(crate) fn enter(&self, endpoint: Endpoint) -> InFlight<'_> {
        let counter = &self.in_flight[endpoint.index()];
        let level = counter.fetch_add(1, Ordering::AcqRel) + 1;
        InFlight { counter, level }
    }

    /// Counts the call against the API's current window; false once the window's budget is spent.
    /// The window opens at the first call after the previous one closed.
    pub(crate) fn admit(&self, endpoint: Endpoint, per_window: u32, window: Duration) -> bool {
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        let current = &mut windows[endpoint.index()];
        match current.started {
            Some(started) if now < started + window => {}
            _ => {
                *current = Window {
                    started: Some(now),
                    calls: 0,
                }
            }
        }
        current.calls = current.calls.saturating_add(1);
        current.calls <= per_window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_api_and_freed_on_drop() {
        let limits = Limits::new();
        let first = limits.enter(Endpoint::UserGet);
        let second = limits.enter(Endpoint::UserGet);
        let other = limits.enter(Endpoint::UserList);
        assert_eq!((first.level, second.level, other.level), (1, 2, 1));
        drop(second);
        assert_eq!(limits.enter(Endpoint::UserGet).level, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_window_blocks_until_it_ends() {
        let limits = Limits::new();
        let window = Duration::from_secs(60);
        assert!(limits.admit(Endpoint::UserList, 2, window));
        assert!(limits.admit(Endpoint::UserList, 2, window));
        assert!(!limits.admit(Endpoint::UserList, 2, window));
        assert!(limits.admit(Endpoint::UserGet, 2, window));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!limits.admit(Endpoint::UserList, 2, window));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limits.admit(Endpoint::UserList, 2, window));
    }
}
