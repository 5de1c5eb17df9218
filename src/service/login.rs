//! `login.resolve`: a WeCom login code (from the in-app OAuth redirect or the web QR login) to
//! the member and the host user linked to them. It needs no admin right: a code works once,
//! for this app only, so resolving it grants nothing its holder did not already have. Codes are
//! never logged, and never part of an error.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::model::{userid_key, Member};
use crate::store::links::{self, LinkKey};
use crate::store::{mirror, Store, StoreError};
use crate::wecom::{belongs, LoginIdentity, Reach, WecomClient, WecomError};

/// WeCom's longest code, in bytes.
const MAX_CODE: usize = 512;

/// Who signed in.
#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub userid: String,
    pub member: Member,
    pub host_user_id: Option<String>,
    pub method: Option<String>,
    /// The member joined since the last sync: fetched from WeCom just now.
    pub fetched: bool,
}

impl Resolved {
    /// The `login.resolve` reply, the same over every transport.
    pub fn reply(&self) -> serde_json::Value {
        serde_json::json!({"ok": true, "op": "login.resolve", "userid": self.userid,
                           "member": self.member, "host_user_id": self.host_user_id,
                           "method": self.method, "fetched": self.fetched})
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the login code is invalid, expired (after 5 minutes) or already used; send the user through the login again")]
    InvalidCode,
    #[error("the code belongs to someone who is not a member of this corp's directory")]
    NotAMember,
    #[error("WeCom cannot resolve the code now: {0}; retry")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoginError {
    pub fn code(&self) -> super::ErrorCode {
        match self {
            LoginError::InvalidCode => super::ErrorCode::InvalidCode,
            LoginError::NotAMember => super::ErrorCode::NotAMember,
            LoginError::Unavailable(_) => super::ErrorCode::Unavailable,
            LoginError::Store(_) => super::ErrorCode::Internal,
        }
    }
}

/// The daemon's WeCom client of the moment and what its mirror holds (a reload replaces both).
pub type CurrentWecom = Arc<dyn Fn() -> (WecomClient, Reach) + Send + Sync>;

/// What resolves codes: the daemon's WeCom client and root, and the store. Transports hold one
/// and know nothing of WeCom.
#[derive(Clone)]
pub struct Login {
    wecom: CurrentWecom,
    store_path: PathBuf,
}

impl Login {
    pub fn new(wecom: CurrentWecom, store_path: PathBuf) -> Login {
        Login { wecom, store_path }
    }

    pub async fn resolve(&self, code: &str) -> Result<Resolved, LoginError> {
        let (client, reach) = (self.wecom)();
        resolve(&client, reach, self.store_path.clone(), code).await
    }
}

async fn resolve(
    client: &WecomClient,
    reach: Reach,
    store_path: PathBuf,
    code: &str,
) -> Result<Resolved, LoginError> {
    if code.is_empty() || code.len() > MAX_CODE || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LoginError::InvalidCode);
    }
    let userid = match client.login_identity(code).await {
        Ok(LoginIdentity::Member(userid)) => userid,
        Ok(LoginIdentity::Outsider) => return Err(LoginError::NotAMember),
        Err(error) if error.errcode() == Some(40029) => return Err(LoginError::InvalidCode),
        Err(error) => return Err(unavailable(error)),
    };
    let key = userid_key(&userid);
    // One read of the store: the member, its link, and what a fetch would need.
    let (mirrored, link, departments) = blocking(store_path, move |store| {
        let member = mirror::member(store.conn(), &key)?;
        let link = links::find(store.conn(), LinkKey::Member(&key))?;
        let departments: HashSet<i64> = match member {
            Some(_) => HashSet::new(),
            None => mirror::load_departments(store.conn())?
                .into_keys()
                .collect(),
        };
        Ok((member, link, departments))
    })
    .await?;
    let (member, fetched) = match mirrored {
        Some(member) => (member, false),
        None if departments.is_empty() => {
            return Err(LoginError::Unavailable(
                "nothing is mirrored yet: the first sync has not completed".to_owned(),
            ))
        }
        None => match client.member(&userid, &departments).await {
            // One a pull would not mirror (outside wecom.root_department) is not a member of
            // this directory.
            Ok((member, _)) if !belongs(reach, &member) => return Err(LoginError::NotAMember),
            Ok((member, _)) => (member, true),
            // Gone or out of range: not (or no longer) a member the app can see.
            Err(error) if error.member_refusal().is_some() => return Err(LoginError::NotAMember),
            Err(error) => return Err(unavailable(error)),
        },
    };
    Ok(Resolved {
        userid: member.userid.clone(),
        member,
        host_user_id: link.as_ref().map(|l| l.host_user_id.clone()),
        method: link.map(|l| l.method),
        fetched,
    })
}

fn unavailable(error: WecomError) -> LoginError {
    LoginError::Unavailable(error.to_string())
}

async fn blocking<T: Send + 'static>(
    path: PathBuf,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, LoginError> {
    tokio::task::spawn_blocking(move || {
        let store = Store::open_existing(&path, crate::store::BUSY_TIMEOUT)?;
        f(&store).map_err(|e| store.explain(e))
    })
    .await
    .map_err(|e| LoginError::Unavailable(e.to_string()))?
    .map_err(LoginError::Store)
}
