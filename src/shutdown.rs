//! The two watch channels every component shares: the daemon's shutdown, and the event head
//! that wakes whoever follows the event log.

use tokio::sync::watch;

/// Resolves once shutdown has been requested, or can no longer be (the sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Publishes an event head if it moved forward; a late, lower one changes nothing.
pub fn publish_head(head_publisher: &watch::Sender<i64>, head: i64) {
    head_publisher.send_if_modified(|current| {
        let moved = head > *current;
        if moved {
            *current = head;
        }
        moved
    });
}
