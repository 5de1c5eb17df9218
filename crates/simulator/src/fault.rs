//! Scripted failures. Rules wait in a queue; a call takes the first rule that matches it, and a
//! rule leaves the queue once it has fired `times` times. Rules for different endpoints are
//! independent, rules for the same endpoint fire in the order they were injected.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::endpoint::Endpoint;

/// What a matched call gets instead of (or before) its normal answer.
///
/// JSON form (for `POST /_sim/faults`): `{"errcode": 45033}`, `{"http_status": 502}`,
/// `"not_json"`, `{"raw": {"status": 200, "body": "{\"errcode\":0}"}}`, `"truncated"`,
/// `"close"`, `"reset"`, `{"delay_ms": 1500}`, `"hang"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 200 with `{"errcode":N,"errmsg":…}`, the errmsg taken from WeCom's table.
    Errcode(i64),
    /// That status with an HTML error page, as Tencent's gateway sends (an invalid code gives 500).
    HttpStatus(u16),
    /// HTTP 200 with an HTML page instead of JSON.
    NotJson,
    /// This status and this body, sent as they are with WeCom's `Content-Type`: for answers the
    /// directory cannot produce, such as a field of the wrong type, arrays that do not line up,
    /// or an errmsg that echoes the secret (an invalid status gives 500).
    Raw { status: u16, body: String },
    /// The normal answer cut in half, with a Content-Length that matches the cut body, so only
    /// JSON parsing fails.
    Truncated,
    /// The connection is closed (TCP FIN) without a response, as a proxy that gives up on the
    /// backend does: the client reads a clean end of stream where the answer should be.
    Close,
    /// The connection is aborted (TCP RST) without a response.
    Reset,
    /// Wait this long, then answer normally.
    #[serde(rename = "delay_ms", with = "millis")]
    Delay(Duration),
    /// Never answer; the connection stays open until the client gives up or the simulator stops.
    Hang,
}

/// A fault and the calls it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// `None` matches every `/cgi-bin` call.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// Only calls naming this department (`id` on department APIs, `department_id` on user
    /// lists); a call without one does not match.
    #[serde(default)]
    pub department_id: Option<u32>,
    #[serde(default = "once")]
    pub times: u32,
    pub fault: Fault,
}

fn once() -> u32 {
    1
}

impl Fault {
    /// The fault on the next call to `endpoint`; narrow it further with the builder methods.
    pub fn on(self, endpoint: Endpoint) -> FaultRule {
        FaultRule {
            endpoint: Some(endpoint),
            ..FaultRule::from(self)
        }
    }
}

/// A bare fault hits the next `/cgi-bin` call, whatever the endpoint.
impl From<Fault> for FaultRule {
    fn from(fault: Fault) -> FaultRule {
        FaultRule {
            endpoint: None,
            department_id: None,
            times: 1,
            fault,
        }
    }
}

impl FaultRule {
    pub fn department(mut self, id: u32) -> FaultRule {
        self.department_id = Some(id);
        self
    }

    pub fn times(mut self, times: u32) -> FaultRule {
        self.times = times;
        self
    }

    fn matches(&self, endpoint: Endpoint, department: Option<u32>) -> bool {
        self.endpoint.is_none_or(|e| e == endpoint)
            && self.department_id.is_none_or(|d| department == Some(d))
    }
}

#[derive(Default)]
pub(crate) struct FaultQueue {
    rules: VecDeque<FaultRule>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, rule: FaultRule) {
        if rule.times > 0 {
            self.rules.push_back(rule);
        }
    }

    pub(crate) fn take(&mut self, endpoint: Endpoint, department: Option<u32>) -> Option<Fault> {
        let at = self
            .rules
            .iter()
            .position(|rule| rule.matches(endpoint, department))?;
        let rule = &mut self.rules[at];
        rule.times -= 1;
        if rule.times == 0 {
            self.rules.remove(at).map(|rule| rule.fault)
        } else {
            Some(rule.fault.clone())
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        delay: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_in_order_per_endpoint_and_run_out() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::Errcode(-1).on(Endpoint::UserList).times(2));
        queue.push(Fault::Reset.on(Endpoint::UserList));
        queue.push(Fault::NotJson.on(Endpoint::UserGet));

        assert_eq!(queue.take(Endpoint::UserGet, None), Some(Fault::NotJson));
        assert_eq!(queue.take(Endpoint::UserGet, None), None);
        assert_eq!(
            queue.take(Endpoint::UserList, Some(1)),
            Some(Fault::Errcode(-1))
        );
        assert_eq!(
            queue.take(Endpoint::UserList, Some(1)),
            Some(Fault::Errcode(-1))
        );
        assert_eq!(queue.take(Endpoint::UserList, Some(1)), Some(Fault::Reset));
        assert_eq!(queue.take(Endpoint::UserList, Some(1)), None);
    }

    #[test]
    fn a_department_rule_skips_other_departments() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::Hang.on(Endpoint::UserList).department(7));
        queue.push(Fault::Errcode(0).on(Endpoint::UserList).times(0));
        assert_eq!(queue.take(Endpoint::UserList, Some(8)), None);
        assert_eq!(queue.take(Endpoint::UserList, None), None);
        assert_eq!(queue.take(Endpoint::UserList, Some(7)), Some(Fault::Hang));
    }

    #[test]
    fn a_bare_fault_hits_any_endpoint() {
        let mut queue = FaultQueue::default();
        queue.push(Fault::Truncated.into());
        assert_eq!(queue.take(Endpoint::GetToken, None), Some(Fault::Truncated));
    }

    #[test]
    fn the_json_form_is_terse() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"endpoint":"/cgi-bin/user/list","department_id":3,"fault":{"delay_ms":1500}}"#,
        )
        .unwrap();
        assert_eq!(
            rule,
            Fault::Delay(Duration::from_millis(1500))
                .on(Endpoint::UserList)
                .department(3)
        );
        let hang: FaultRule = serde_json::from_str(r#"{"fault":"hang","times":3}"#).unwrap();
        assert_eq!(hang, FaultRule::from(Fault::Hang).times(3));
        assert_eq!(
            serde_json::to_string(&Fault::HttpStatus(502)).unwrap(),
            r#"{"http_status":502}"#
        );
        let raw: Fault =
            serde_json::from_str(r#"{"raw":{"status":503,"body":"{\"errcode\":0}"}}"#).unwrap();
        assert_eq!(
            raw,
            Fault::Raw {
                status: 503,
                body: r#"{"errcode":0}"#.into()
            }
        );
        assert_eq!(
            serde_json::from_str::<Fault>(r#""close""#).unwrap(),
            Fault::Close
        );
    }
}
