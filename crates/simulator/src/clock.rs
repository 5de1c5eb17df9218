//! The wall clock, for what WeCom stamps with it (callback timestamps, request ids, the day of
//! the lookup block) and for the seeds of values that must differ from run to run.
//!
//! Tokens and login codes age on tokio's clock instead, so that tests can pause it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch; zero on a clock set before 1970, which no caller needs to tell
/// from the epoch itself.
pub(crate) fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
