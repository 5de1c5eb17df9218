//! The 45009 gate: once WeCom says "frequency limit", no call leaves until the window has passed.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

/// Shared by every call of one client.
#[derive(Default)]
pub(crate) struct RateGate {
    window: Mutex<Option<Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    opened: Instant,
    until: Instant,
}

impl RateGate {
    /// Returns once no window is in force.
    pub(crate) async fn wait(&self) {
        loop {
            let until = match *self.lock() {
                Some(window) if window.until > Instant::now() => window.until,
                _ => return,
            };
            sleep_until(until).await;
        }
    }

    /// Records a 45009 for a request sent at `sent_at`, opening a window of `wait` during which
    /// no call leaves; the caller then [`wait`](Self::wait)s like every other call.
    ///
    /// Workers must not stack waits: requests already in flight when the first 45009 arrives
    /// get 45009 too, and each opening its own window would keep WeCom blocked and the pull
    /// idle for several windows. So a 45009 opens a window only if no window is in force and
    /// none opened after its request was sent; otherwise it belongs to that window's episode.
    /// Returns whether this call opened a window.
    pub(crate) fn block(&self, sent_at: Instant, wait: Duration) -> bool {
        let mut window = self.lock();
        let now = Instant::now();
        if let Some(current) = *window {
            if current.until > now || current.opened >= sent_at {
                return false;
            }
        }
        // A configured wait too long to add is as good as forever; it must not panic.
        let until = now
            .checked_add(wait)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 86_400));
        *window = Some(Window { opened: now, until });
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Window>> {
        // The guarded value is two instants, always consistent: a panic elsewhere while holding
        // the lock cannot leave it half-written, so a poisoned lock is safe to reuse.
        self.window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_join_the_open_window() {
        let gate = RateGate::default();
        let wait = Duration::from_secs(60);
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(gate.block(sent, wait), "first 45009 opens a window");
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(!gate.block(sent, wait), "a request in flight joins it");

        let before = Instant::now();
        gate.wait().await;
        assert!(Instant::now() >= before + wait - Duration::from_millis(20));

        assert!(
            !gate.block(sent, wait),
            "late answer to an old request: same episode"
        );
        assert!(
            gate.block(Instant::now(), wait),
            "a request sent after the window: new one"
        );
    }
}
