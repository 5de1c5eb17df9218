//! WeCom errcodes: what each means, what the operator should do, and how the client reacts.
//!
//! The client branches on the errcode only, never on `errmsg` (WeCom says the text may change);
//! `errmsg` is kept for the operator because it carries the `hint` and `from ip` that Tencent
//! support asks for.

use std::fmt;

/// How the client reacts to an errcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrcodeClass {
    /// The access token is no good: drop it, fetch a new one, retry the call once.
    TokenRefresh,
    /// WeCom is busy: retry with exponential backoff.
    Transient,
    /// Frequency limit: every call waits out the window, then retries.
    RateLimited,
    /// Too many calls in flight: the pull lowers its concurrency; the call retries shortly.
    ConcurrencyLimited,
    /// Configuration, permission or bug: retrying cannot help.
    Fatal,
}

/// One row of the table below.
#[derive(Debug, Clone, Copy)]
pub struct ErrcodeInfo {
    pub errcode: i64,
    pub meaning: &'static str,
    pub fix: &'static str,
    pub class: ErrcodeClass,
}

const fn row(
    errcode: i64,
    class: ErrcodeClass,
    meaning: &'static str,
    fix: &'static str,
) -> ErrcodeInfo {
    ErrcodeInfo {
        errcode,
        meaning,
        fix,
        class,
    }
}

use ErrcodeClass::{ConcurrencyLimited, Fatal, RateLimited, TokenRefresh, Transient};

/// The errcodes a directory mirror can meet, from WeCom's global error
/// list as captured by go-workwx and cross-checked against WxJava.
#[rustfmt::skip]
const TABLE: &[ErrcodeInfo] = &[
    row(-1, Transient, "WeCom system busy",
        "orgsync retries with backoff; if it persists WeCom is having trouble, and the next sync tries again"),
    row(40001, Fatal, "invalid corp secret (wrong or reset secret, app disabled, or the secret never reached WeCom)",
        "copy the app's Secret again from the admin console (App Management → your app → Secret) into the configured secret, check the app is enabled, then reload orgsync"),
    row(40003, Fatal, "invalid userid (bad format, or the member does not exist or has left)",
        "the member is gone or outside the app's visible range; nothing to fix in orgsync's configuration"),
    row(40013, Fatal, "invalid corpid",
        "set wecom.corp_id to the enterprise ID shown in the admin console under My Company → Company Info (企业信息)"),
    row(40014, TokenRefresh, "invalid access_token",
        "orgsync fetches a new token and retries once; if it persists, make sure nothing else hands this instance another app's token"),
    row(40029, Fatal, "invalid OAuth code (single use, valid for 5 minutes)",
        "not used by the directory pull; restart the login flow"),
    row(40056, Fatal, "invalid agentid: wecom.agent_id is not the AgentId of the app whose secret orgsync uses",
        "set wecom.agent_id to the AgentId shown on that app's page in the admin console (App Management → your app), or remove it"),
    row(40058, Fatal, "invalid parameter",
        "a bug or an API change in orgsync's request; report it with the errmsg"),
    row(40091, Fatal, "the secret belongs to a different enterprise than wecom.corp_id",
        "use the corp_id and the app secret of the same enterprise"),
    row(41001, Fatal, "access_token missing from the request",
        "a bug in orgsync's request; report it"),
    row(41002, Fatal, "corpid missing from the request", "set wecom.corp_id"),
    row(41004, Fatal, "corpsecret missing from the request",
        "configure the app secret (wecom.corp_secret_file or the corp_secret credential)"),
    row(42001, TokenRefresh, "access_token expired",
        "orgsync fetches a new token and retries once; nothing to do unless it persists"),
    row(45009, RateLimited, "API frequency limit reached (per minute or per hour; also after many bad-secret attempts from this IP)",
        "orgsync waits out the window; if it persists the block may last an hour: check nothing else calls WeCom with this app, or lift it with the admin console's self-service unblock tool"),
    row(45011, RateLimited, "API called too frequently (a WeChat code, treated like 45009)",
        "orgsync waits out the window; if it persists, check nothing else calls WeCom with this app"),
    row(45033, ConcurrencyLimited, "too many concurrent calls to this API",
        "orgsync lowers its concurrency and retries; if it keeps happening set wecom.concurrency lower"),
    row(46004, Fatal, "member not found (or outside the app's visible range)",
        "nothing to fix in orgsync's configuration"),
    row(48002, Fatal, "API not permitted for this kind of secret",
        "use the secret of a self-built app (自建应用) whose visible range covers wecom.root_department, not the contact-sync secret"),
    row(48005, Fatal, "API deprecated by WeCom", "upgrade orgsync"),
    row(48006, Fatal, "API permission withdrawn because the app was unused for a long time",
        "an admin must re-enable the app's API access in the admin console (App Management → your app)"),
    row(48009, Fatal, "the contact-sync secret cannot read details from an IP added after 2022-08-15 (api forbidden for contact assistant)",
        "use the secret of a self-built app (自建应用) whose visible range covers wecom.root_department instead of the contact-sync secret"),
    row(50001, Fatal, "redirect URL not under the app's trusted domain",
        "not used by the directory pull; fix the app's trusted domain"),
    row(50002, Fatal, "member outside the app's permission scope",
        "widen the app's visible range (可见范围) in the admin console"),
    row(50003, Fatal, "the app is disabled",
        "re-enable the app in the admin console (App Management → your app)"),
    row(50100, Fatal, "invalid paging cursor", "not used by the directory pull; restart the listing"),
    row(60003, Fatal, "department not found",
        "the department was deleted or is outside the visible range; check wecom.root_department and rerun the sync"),
    row(60011, Fatal, "no permission on this department or member (outside the app's visible range)",
        "add wecom.root_department to the app's visible range (可见范围) in the admin console, or set wecom.root_department to a department inside it"),
    row(60020, Fatal, "the calling IP is not in the app's trusted IPs (企业可信IP)",
        "add this server's egress IP in the admin console under App Management → your app → 企业可信IP; it takes about a minute to apply"),
    row(60021, Fatal, "userid not in the app's visible range",
        "widen the app's visible range (可见范围) in the admin console"),
    row(60111, Fatal, "userid does not exist", "nothing to fix in orgsync's configuration"),
    row(60123, Fatal, "invalid department id",
        "check wecom.root_department against the admin console's department list"),
    row(301002, Fatal, "the access token belongs to a different app than the one addressed",
        "check that wecom.agent_id is the AgentId of the app whose secret orgsync uses; give each orgsync instance its own app secret and never share a token between apps"),
];

/// The table row for `errcode`, if orgsync knows it.
pub fn lookup(errcode: i64) -> Option<&'static ErrcodeInfo> {
    TABLE.iter().find(|info| info.errcode == errcode)
}

/// Unknown errcodes are fatal: retrying something not understood could hammer WeCom.
pub fn class(errcode: i64) -> ErrcodeClass {
    lookup(errcode).map_or(ErrcodeClass::Fatal, |info| info.class)
}

/// What a refused `user/get` says about a member orgsync asked for by userid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRefusal {
    /// 60111 (no such userid) or 40003 (invalid userid: for a userid orgsync has seen, the
    /// member has left or was deleted). WeCom may answer 60111 for a member the app cannot see,
    /// too; nothing tells the two apart, so it is a deletion candidate like the others.
    Gone,
    /// 60011, 60021 or 50002: the member exists but is outside the app's visible range.
    OutOfRange,
}

/// How `user/get`'s `errcode` is read; `None` for an errcode that says nothing about the member
/// (a failure of the call, which fails what asked).
pub(super) fn member_refusal(errcode: i64) -> Option<MemberRefusal> {
    match errcode {
        60111 | 40003 => Some(MemberRefusal::Gone),
        60011 | 60021 | 50002 => Some(MemberRefusal::OutOfRange),
        _ => None,
    }
}

/// `errmsg` comes from the network: keep it to a sane length in logs and events.
const MAX_ERRMSG_CHARS: usize = 300;

/// WeCom answered `{"errcode": N, "errmsg": "…"}` with `N != 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub errcode: i64,
    /// As WeCom sent it, minus the "more info at <url>" tail, truncated, secrets removed.
    pub errmsg: String,
}

impl ApiError {
    /// Builds the error from WeCom's answer, trimming `errmsg` to what helps an operator.
    pub(crate) fn new(errcode: i64, errmsg: &str) -> ApiError {
        // The tail is a link to WeCom's errcode lookup: the errcode already says it, and keeping
        // URLs with query strings out of errors is simpler as a rule without exceptions.
        let errmsg = match errmsg.find(", more info at") {
            Some(cut) => &errmsg[..cut],
            None => errmsg,
        };
        let errmsg = match errmsg.char_indices().nth(MAX_ERRMSG_CHARS) {
            Some((cut, _)) => format!("{}…", &errmsg[..cut]),
            None => errmsg.to_owned(),
        };
        ApiError { errcode, errmsg }
    }

    /// What orgsync knows about this errcode, if anything.
    pub fn info(&self) -> Option<&'static ErrcodeInfo> {
        lookup(self.errcode)
    }

    pub fn class(&self) -> ErrcodeClass {
        class(self.errcode)
    }

    /// The caller's IP as WeCom saw it (`from ip: 1.2.3.4`), reported with 60020.
    pub fn from_ip(&self) -> Option<&str> {
        field(&self.errmsg, "from ip:", |c| c == ',' || c.is_whitespace())
    }

    /// WeCom's request id (`hint: [...]`), what Tencent support asks for.
    pub fn hint(&self) -> Option<&str> {
        field(&self.errmsg, "hint: [", |c| c == ']')
    }
}

/// The text after `label` up to the first character matching `end`.
fn field<'a>(errmsg: &'a str, label: &str, end: impl Fn(char) -> bool) -> Option<&'a str> {
    let start = errmsg.find(label)? + label.len();
    let rest = errmsg[start..].trim_start();
    let value = &rest[..rest.find(end).unwrap_or(rest.len())];
    (!value.is_empty()).then_some(value)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.errcode;
        if code == 60020 {
            let ip = self.from_ip().unwrap_or("(WeCom did not say which)");
            write!(
                f,
                "WeCom errcode 60020: this server's IP {ip} is not in the app's trusted IPs \
                 (企业可信IP); add it in the admin console under App Management → your app → \
                 企业可信IP; it takes about a minute to apply"
            )?;
            if let Some(hint) = self.hint() {
                write!(f, " (WeCom hint: {hint})")?;
            }
            return Ok(());
        }
        match self.info() {
            Some(info) => write!(f, "WeCom errcode {code} ({}): {}", info.meaning, info.fix)?,
            None => write!(
                f,
                "WeCom errcode {code}, which orgsync does not know and does not retry: look it \
                 up with WeCom's errcode query tool (open.work.weixin.qq.com, 开发者工具 → 错误码查询)"
            )?,
        }
        write!(f, " [errmsg: {}]", self.errmsg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicates_and_says_what_to_do() {
        for (i, info) in TABLE.iter().enumerate() {
            assert!(
                !info.meaning.is_empty() && !info.fix.is_empty(),
                "{}",
                info.errcode
            );
            assert!(
                TABLE[i + 1..].iter().all(|o| o.errcode != info.errcode),
                "duplicate {}",
                info.errcode
            );
        }
    }

    #[test]
    fn classes() {
        assert_eq!(class(40014), ErrcodeClass::TokenRefresh);
        assert_eq!(class(42001), ErrcodeClass::TokenRefresh);
        assert_eq!(class(-1), ErrcodeClass::Transient);
        assert_eq!(class(45009), ErrcodeClass::RateLimited);
        assert_eq!(class(45011), ErrcodeClass::RateLimited);
        assert_eq!(class(45033), ErrcodeClass::ConcurrencyLimited);
        for fatal in [
            40001, 40013, 40091, 41001, 41002, 41004, 48002, 48006, 48009, 50003, 60011, 60020,
            301002,
        ] {
            assert_eq!(class(fatal), ErrcodeClass::Fatal, "{fatal}");
        }
        assert_eq!(class(99_999), ErrcodeClass::Fatal);
    }

    #[test]
    fn ip_allowlist_message_names_the_ip_and_hint() {
        let err = ApiError::new(
            60020,
            "not allow to access from your ip, hint: [1658286717354964018506079], from ip: \
             115.227.127.185, more info at https://open.work.weixin.qq.com/devtool/query?e=60020",
        );
        assert_eq!(err.from_ip(), Some("115.227.127.185"));
        assert_eq!(err.hint(), Some("1658286717354964018506079"));
        let shown = err.to_string();
        assert!(shown.starts_with("WeCom errcode 60020: this server's IP 115.227.127.185 is not in the app's trusted IPs (企业可信IP)"), "{shown}");
        assert!(shown.contains("1658286717354964018506079"), "{shown}");
        assert!(!shown.contains("http"), "{shown}");
    }

    #[test]
    fn unknown_errcode_keeps_raw_errmsg() {
        let shown = ApiError::new(12345, "something odd").to_string();
        assert!(
            shown.contains("12345") && shown.contains("something odd"),
            "{shown}"
        );
    }

    #[test]
    fn long_errmsg_is_truncated() {
        let err = ApiError::new(-1, &"é".repeat(5000));
        assert_eq!(err.errmsg.chars().count(), MAX_ERRMSG_CHARS + 1);
    }
}
