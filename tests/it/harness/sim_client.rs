//! For the simulator's own tests: a running simulator and an HTTP client that speaks to it
//! the way orgsync's WeCom client does (token in the query string).

use orgsync_simulator::{Directory, Simulator};
use serde_json::Value;

/// The WeCom API paths the simulator's tests call.
pub mod paths {
    pub const DEPARTMENT_LIST: &str = "/cgi-bin/department/list";
    pub const USER_LIST: &str = "/cgi-bin/user/list";
    pub const USER_GET: &str = "/cgi-bin/user/get";
    pub const LIST_ID: &str = "/cgi-bin/user/list_id";
    pub const GETUSERINFO: &str = "/cgi-bin/auth/getuserinfo";
    pub const GETUSERID: &str = "/cgi-bin/user/getuserid";
    pub const BY_EMAIL: &str = "/cgi-bin/user/get_userid_by_email";
    pub const AGENT_GET: &str = "/cgi-bin/agent/get";
}

pub struct SimClient {
    pub sim: Simulator,
    pub http: reqwest::Client,
}

/// A raw answer: status, Content-Length header, body.
pub struct Raw {
    pub status: u16,
    pub content_length: Option<usize>,
    pub bytes: Vec<u8>,
    pub text: String,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

impl SimClient {
    pub async fn start(directory: Directory) -> SimClient {
        SimClient {
            sim: Simulator::start(directory).await.expect("simulator starts"),
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.api_base())
    }

    pub async fn raw(&self, path: &str, query: &[(&str, &str)]) -> Raw {
        let response = self
            .http
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .expect("request succeeds");
        Raw::from(response).await
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let raw = self.raw(path, query).await;
        assert_eq!(raw.status, 200, "{}", raw.text);
        raw.json()
    }

    pub async fn post(&self, path: &str, token: &str, body: &str) -> Value {
        let response = self
            .http
            .post(self.url(path))
            .query(&[("access_token", token)])
            .body(body.to_owned())
            .send()
            .await
            .expect("request succeeds");
        Raw::from(response).await.json()
    }

    pub async fn token_for(&self, secret: &str) -> String {
        let corp_id = self.sim.directory().corp_id;
        let answer = self
            .get(
                "/cgi-bin/gettoken",
                &[("corpid", &corp_id), ("corpsecret", secret)],
            )
            .await;
        assert_eq!(answer["errcode"], 0, "{answer}");
        answer["access_token"].as_str().expect("a token").to_owned()
    }

    /// A token of the self-built app.
    pub async fn token(&self) -> String {
        let secret = self.sim.directory().corp_secret;
        self.token_for(&secret).await
    }

    /// A token of the contact-sync tool.
    pub async fn sync_token(&self) -> String {
        let secret = self
            .sim
            .directory()
            .contact_sync_secret
            .expect("the directory has a contact-sync secret");
        self.token_for(&secret).await
    }

    /// A business call with `token`; returns the parsed body.
    pub async fn call(&self, path: &str, token: &str, query: &[(&str, &str)]) -> Value {
        let mut full = vec![("access_token", token)];
        full.extend_from_slice(query);
        self.get(path, &full).await
    }

    pub async fn call_raw(&self, path: &str, token: &str, query: &[(&str, &str)]) -> Raw {
        let mut full = vec![("access_token", token)];
        full.extend_from_slice(query);
        self.raw(path, &full).await
    }
}

impl Raw {
    async fn from(response: reqwest::Response) -> Raw {
        let status = response.status().as_u16();
        let content_length = response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = response.bytes().await.expect("a body").to_vec();
        Raw {
            status,
            content_length,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }
}

pub fn errcode(answer: &Value) -> i64 {
    answer["errcode"].as_i64().expect("an errcode")
}

/// Asserts a WeCom error answer: `code`, and an `errmsg` the way WeCom writes it,
/// `{message}, hint: [...]`.
pub fn assert_wecom_error(answer: &Value, code: i64, message: &str) {
    assert_eq!(errcode(answer), code, "{answer}");
    let errmsg = answer["errmsg"].as_str().unwrap();
    assert!(
        errmsg.starts_with(&format!("{message}, hint: [")),
        "{answer}"
    );
}

pub fn ids(list: &Value, key: &str) -> Vec<u64> {
    list[key]
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| d["id"].as_u64().expect("an id"))
        .collect()
}

pub fn userids(answer: &Value) -> Vec<String> {
    answer["userlist"]
        .as_array()
        .expect("a userlist")
        .iter()
        .map(|u| u["userid"].as_str().expect("a userid").to_owned())
        .collect()
}

/// The `/_sim/` control API, as a standalone simulator's driver uses it.
impl SimClient {
    pub async fn control_get(&self, path: &str) -> reqwest::Response {
        let request = self.http.get(self.url(path));
        request.send().await.expect("request succeeds")
    }

    pub async fn control_put(&self, path: &str, body: &impl serde::Serialize) -> reqwest::Response {
        let request = self.http.put(self.url(path)).json(body);
        request.send().await.expect("request succeeds")
    }

    pub async fn control_post(&self, path: &str, body: &'static str) -> reqwest::Response {
        let request = self.http.post(self.url(path)).body(body);
        request.send().await.expect("request succeeds")
    }
}
