//! The corp-wide daily count of failed userid lookups (`user/getuserid`,
//! `user/get_userid_by_email`): once the failures of a day exceed 20% of the corp's headcount
//! limit, WeCom blocks the lookups until the day ends.
//!
//! Days are calendar days in China time (UTC+8), as WeCom counts them; `Simulator::new_day`
//! starts a new one without waiting for midnight.

use super::clock::since_epoch;

/// Beijing is UTC+8 all year.
const CHINA_OFFSET_SECS: u64 = 8 * 3600;
const DAY_SECS: u64 = 24 * 3600;

#[derive(Default)]
pub(crate) struct LookupFailures {
    day: u64,
    failures: u64,
}

/// Today's number, counted in China time.
pub(crate) fn today() -> u64 {
    (since_epoch().as_secs() + CHINA_OFFSET_SECS) / DAY_SECS
}

impl LookupFailures {
    /// Whether lookups are blocked on `day` for a corp whose headcount limit is `headcount_limit`:
    /// its failures that day exceed 20% of the limit.
    pub(crate) fn blocked(&mut self, day: u64, headcount_limit: u64) -> bool {
        self.roll(day);
        self.failures.saturating_mul(5) > headcount_limit
    }

    pub(crate) fn fail(&mut self, day: u64) {
        self.roll(day);
        self.failures += 1;
    }

    /// Forgets the failures so far, as midnight does.
    pub(crate) fn new_day(&mut self) {
        self.failures = 0;
    }

    fn roll(&mut self, day: u64) {
        if day != self.day {
            self.day = day;
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_starts_past_a_fifth_of_the_headcount_limit() {
        let mut failures = LookupFailures::default();
        for _ in 0..20 {
            assert!(!failures.blocked(7, 100));
            failures.fail(7);
        }
        assert!(!failures.blocked(7, 100), "20 of 100 is not above 20%");
        failures.fail(7);
        assert!(failures.blocked(7, 100));
        // The next day starts afresh, and so does `new_day`.
        assert!(!failures.blocked(8, 100));
        for _ in 0..21 {
            failures.fail(8);
        }
        assert!(failures.blocked(8, 100));
        failures.new_day();
        assert!(!failures.blocked(8, 100));
    }

    #[test]
    fn a_limit_of_zero_blocks_after_the_first_failure() {
        let mut failures = LookupFailures::default();
        assert!(!failures.blocked(1, 0));
        failures.fail(1);
        assert!(failures.blocked(1, 0));
    }
}
