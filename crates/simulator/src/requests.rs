//! The request log: each `/cgi-bin` call as it arrived, for tests that check what a client sent
//! (its query parameters) and when (arrival times, calls in flight).

use std::collections::{HashMap, VecDeque};

use tokio::time::Instant;

use super::endpoint::Endpoint;

/// How many calls the log keeps: the most recent ones, so a simulator that runs for long
/// (`orgsync demo`, a benchmark) does not grow without bound.
pub(crate) const KEPT: usize = 10_000;

/// One `/cgi-bin` call as it arrived, before any fault, hold or throttle applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub endpoint: Endpoint,
    /// The query parameters as sent, `access_token` included; empty if the query string did not
    /// parse.
    pub query: HashMap<String, String>,
    /// Arrival, on tokio's clock.
    pub at: Instant,
    /// Calls to this API in flight when it arrived, itself included: what the 45033 cap
    /// compares with `max_concurrent_per_api`.
    pub in_flight: usize,
}

impl Request {
    /// The department the call names (`id` on department APIs, `department_id` on user lists),
    /// as a fault rule's `department_id` matches it.
    pub fn department(&self) -> Option<u32> {
        let name = self.endpoint.department_param()?;
        self.query.get(name)?.parse().ok()
    }
}

pub(crate) struct RequestLog {
    kept: VecDeque<Request>,
    capacity: usize,
}

impl RequestLog {
    pub(crate) fn new(capacity: usize) -> RequestLog {
        RequestLog {
            kept: VecDeque::new(),
            capacity,
        }
    }

    /// Adds `request`, dropping the oldest one when the log is full.
    pub(crate) fn record(&mut self, request: Request) {
        if self.kept.len() >= self.capacity {
            self.kept.pop_front();
        }
        if self.kept.len() < self.capacity {
            self.kept.push_back(request);
        }
    }

    /// The kept calls, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<Request> {
        self.kept.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(endpoint: Endpoint, query: &[(&str, &str)]) -> Request {
        Request {
            endpoint,
            query: query
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            at: Instant::now(),
            in_flight: 1,
        }
    }

    #[test]
    fn the_log_keeps_the_most_recent_calls_in_order() {
        let mut log = RequestLog::new(2);
        for id in ["1", "2", "3"] {
            log.record(request(Endpoint::UserList, &[("department_id", id)]));
        }
        let kept: Vec<_> = log.snapshot().iter().map(Request::department).collect();
        assert_eq!(kept, [Some(2), Some(3)]);

        let mut none = RequestLog::new(0);
        none.record(request(Endpoint::GetToken, &[]));
        assert!(none.snapshot().is_empty());
    }

    #[test]
    fn the_department_is_read_as_fault_rules_read_it() {
        let list = request(
            Endpoint::DepartmentList,
            &[("id", "7"), ("department_id", "8")],
        );
        assert_eq!(list.department(), Some(7));
        let users = request(Endpoint::UserList, &[("department_id", "8")]);
        assert_eq!(users.department(), Some(8));
        assert_eq!(request(Endpoint::UserList, &[]).department(), None);
        let get = request(Endpoint::UserGet, &[("department_id", "8")]);
        assert_eq!(get.department(), None);
        let garbage = request(Endpoint::UserList, &[("department_id", "x")]);
        assert_eq!(garbage.department(), None);
    }
}
