//! `orgsync login-url --redirect URL [--state S]`: the two URLs an admin pastes into the WeCom
//! console or a host application's login page, built from the config so nobody hand-encodes
//! them: the in-app OAuth URL (a member opening the host application inside WeCom) and the web
//! QR-login URL (a browser outside WeCom). Both end at `redirect?code=CODE&state=STATE`, where
//! the host backend exchanges the code with WeCom's `auth/getuserinfo` for the member's userid.

use reqwest::Url;

use super::CliError;
use crate::config::Config;

const IN_APP: &str = "https://open.weixin.qq.com/connect/oauth2/authorize";
const WEB_LOGIN: &str = "https://login.work.weixin.qq.com/wwlogin/sso/login";

/// The longest `state` WeCom passes back (it is echoed in the redirect's query string).
const MAX_STATE: usize = 128;

pub fn print(config: &Config, redirect: &str, state: Option<&str>) -> Result<u8, CliError> {
    let agent_id = config.wecom.agent_id.ok_or_else(|| {
        CliError::Usage(
            "wecom.agent_id is not set: both URLs name the app; copy its AgentId from the app's \
             page in the admin console into the config"
                .to_owned(),
        )
    })?;
    let redirect_url = Url::parse(redirect)
        .map_err(|e| CliError::Usage(format!("--redirect {redirect:?} is not a URL: {e}")))?;
    if redirect_url.scheme() != "https" {
        return Err(CliError::Usage(format!(
            "--redirect must be an https URL (WeCom sends the login code to it), not {}",
            redirect_url.scheme()
        )));
    }
    let Some(host) = redirect_url.host_str() else {
        return Err(CliError::Usage("--redirect has no host".to_owned()));
    };
    if let Some(state) = state {
        if state.len() > MAX_STATE
            || !state
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(CliError::Usage(format!(
                "--state must be at most {MAX_STATE} letters, digits, '-', '_' or '.'"
            )));
        }
    }
    let (in_app, web) = urls(&config.wecom.corp_id, agent_id, redirect, state)?;
    println!("{in_app}");
    println!("{web}");
    let domain = match redirect_url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    eprintln!(
        "The app's trusted domain (可信域名, on its page in the admin console) must be exactly \
         {domain}, port included; otherwise WeCom refuses the login with errcode 50001. The first \
         line opens inside WeCom (snsapi_base, no consent screen); the second is the web QR login."
    );
    Ok(0)
}

/// The in-app OAuth URL and the web QR-login URL, every value percent-encoded.
pub fn urls(
    corp_id: &str,
    agent_id: i64,
    redirect: &str,
    state: Option<&str>,
) -> Result<(String, String), CliError> {
    let agent_id = agent_id.to_string();
    let state = state.unwrap_or("");
    let mut in_app = Url::parse_with_params(
        IN_APP,
        [
            ("appid", corp_id),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "snsapi_base"),
            ("state", state),
            ("agentid", agent_id.as_str()),
        ],
    )
    .map_err(|e| CliError::Failed(e.to_string()))?;
    // WeCom's in-app page needs this fragment to hand back to the redirect.
    in_app.set_fragment(Some("wechat_redirect"));
    let web = Url::parse_with_params(
        WEB_LOGIN,
        [
            ("login_type", "CorpApp"),
            ("appid", corp_id),
            ("agentid", agent_id.as_str()),
            ("redirect_uri", redirect),
            ("state", state),
        ],
    )
    .map_err(|e| CliError::Failed(e.to_string()))?;
    Ok((in_app.into(), web.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_encoded_and_the_fragment_closes_the_in_app_url() {
        let (in_app, web) = urls(
            "ww0123456789abcdef",
            1000002,
            "https://bi.example.com:8443/sso/wecom?next=/home&x=a b",
            Some("s1"),
        )
        .unwrap();
        assert_eq!(
            in_app,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww0123456789abcdef\
             &redirect_uri=https%3A%2F%2Fbi.example.com%3A8443%2Fsso%2Fwecom%3Fnext%3D%2Fhome%26x%3Da+b\
             &response_type=code&scope=snsapi_base&state=s1&agentid=1000002#wechat_redirect"
        );
        assert!(web.starts_with(
            "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&appid=ww0123456789abcdef&agentid=1000002&redirect_uri=https%3A%2F%2F"
        ));
    }
}
