//! WeCom's error replies: `{"errcode":N,"errmsg":"…"}` with HTTP 200, the message decorated the
//! way the real server decorates it (hint, caller IP, help link), so a client's logging of those
//! parts gets exercised.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::clock::since_epoch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: i64,
    text: Cow<'static, str>,
}

impl ApiError {
    pub(crate) fn new(code: i64) -> ApiError {
        ApiError {
            code,
            text: Cow::Borrowed(message(code)),
        }
    }

    /// 40058 naming the offending parameter, as WeCom does (`invalid param 'key'`).
    pub(crate) fn invalid_param(name: &str) -> ApiError {
        ApiError {
            code: 40058,
            text: Cow::Owned(format!("invalid param '{name}'. invalid Request Parameter")),
        }
    }

    pub(crate) fn wrong_json() -> ApiError {
        ApiError {
            code: 40058,
            text: Cow::Borrowed("Warning: wrong json format. invalid Request Parameter"),
        }
    }

    pub(crate) fn body(&self, from_ip: IpAddr) -> Vec<u8> {
        let errmsg = format!(
            "{}, hint: [{}], from ip: {from_ip}, more info at https://open.work.weixin.qq.com/devtool/query?e={}",
            self.text,
            hint(),
            self.code
        );
        serde_json::json!({ "errcode": self.code, "errmsg": errmsg })
            .to_string()
            .into_bytes()
    }
}

/// The message text for an errcode, as seen in real responses where one was captured.
pub(crate) fn message(code: i64) -> &'static str {
    match code {
        -1 => "system busy",
        0 => "ok",
        40001 => "invalid credential",
        40003 => "invalid userid",
        40013 => "invalid corpid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40056 => "invalid agentid",
        40058 => "invalid Request Parameter",
        40091 => "secret is invalid",
        41001 => "access_token missing",
        41002 => "corpid missing",
        41004 => "corpsecret missing",
        41008 => "missing code",
        41009 => "missing userid",
        41011 => "missing agentid",
        42001 => "access_token expired",
        45009 => "api freq out of limit",
        45033 => "api concurrent out of limit",
        46004 => "user no exist",
        48002 => "api forbidden",
        48005 => "api deprecated",
        48006 => "api forbidden for app not used for a long time",
        48009 => "api forbidden for contact assistant",
        50001 => "redirect_url not authorised",
        50002 => "user not in agent's allow range",
        50003 => "agent is disabled",
        50100 => "invalid cursor",
        60003 => "department not found",
        60011 => "no privilege to access/modify contact/party/agent",
        60020 => "not allow to access from your ip",
        60021 => "userid not in agent's allow range",
        60111 => "userid not found",
        60123 => "invalid party id",
        301002 => "not allow operate another agent with this accesstoken.",
        _ => "system error",
    }
}

/// WeCom's request id: 25 digits, millisecond clock first.
fn hint() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let millis = since_epoch().as_millis();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed) % 1_000_000_000_000;
    format!("{millis:013}{sequence:012}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_errmsg_carries_hint_ip_and_link() {
        let body = ApiError::new(60020).body(IpAddr::from([127, 0, 0, 1]));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["errcode"], 60020);
        let errmsg = value["errmsg"].as_str().unwrap();
        assert!(errmsg.starts_with("not allow to access from your ip, hint: ["));
        assert!(errmsg.ends_with(
            "], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e=60020"
        ));
        let hint = &errmsg[errmsg.find('[').unwrap() + 1..errmsg.find(']').unwrap()];
        assert_eq!(hint.len(), 25);
        assert!(hint.bytes().all(|b| b.is_ascii_digit()));
    }
}
