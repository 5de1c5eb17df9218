//! `/_sim/`: the control API that lets scripts and out-of-process tests drive a standalone
//! simulator the way `Simulator`'s methods drive an in-process one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::directory::Directory;
use super::endpoint::CallCounts;
use super::fault::{Fault, FaultRule};
use super::state::{lock, read, Shared};

/// `GET /_sim/directory`
pub(crate) async fn directory(State(shared): State<Arc<Shared>>) -> Json<Directory> {
    Json(read(&shared.tenant).directory.clone())
}

/// `PUT /_sim/directory`: replaces the whole tenant, settings included. Issued tokens stay valid.
pub(crate) async fn replace_directory(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let directory: Directory = match serde_json::from_slice(&body) {
        Ok(directory) => directory,
        Err(error) => return refuse(format!("not a directory: {error}")),
    };
    if let Err(error) = directory.validate() {
        return refuse(error.to_string());
    }
    shared.edit(|current| *current = directory);
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_sim/faults` with one rule, e.g.
/// `{"endpoint":"/cgi-bin/user/list","department_id":3,"times":2,"fault":{"errcode":45033}}`.
pub(crate) async fn inject(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let rule: FaultRule = match serde_json::from_slice(&body) {
        Ok(rule) => rule,
        Err(error) => return refuse(format!("not a fault rule: {error}")),
    };
    if let Fault::HttpStatus(status) | Fault::Raw { status, .. } = rule.fault {
        if StatusCode::from_u16(status).is_err() {
            return refuse(format!("{status} is not an HTTP status"));
        }
    }
    lock(&shared.faults).push(rule);
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_sim/calls`: `{"/cgi-bin/gettoken": 1, …}`.
pub(crate) async fn calls(State(shared): State<Arc<Shared>>) -> Json<CallCounts> {
    Json(*shared.calls.borrow())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginCodeRequest {
    #[serde(default)]
    userid: Option<String>,
    #[serde(default)]
    outsider: bool,
}

/// `POST /_sim/login_code` with `{"userid":"..."}` (a member opens the app) or
/// `{"outsider":true}`: `{"code":"..."}` for `auth/getuserinfo`.
pub(crate) async fn login_code(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: LoginCodeRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return refuse(format!("not a login code request: {error}")),
    };
    let code = match (request.userid, request.outsider) {
        (Some(userid), false) => match shared.member_login_code(&userid) {
            Some(code) => code,
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(serde_json::json!({ "error": format!("no member {userid:?} in the directory") })),
                )
                    .into_response()
            }
        },
        (None, true) => shared.outsider_login_code(),
        _ => return refuse("give either \"userid\" or \"outsider\": true".to_owned()),
    };
    Json(serde_json::json!({ "code": code })).into_response()
}

/// `POST /_sim/login_code/expire`: every login code issued so far gets 40029 from now on.
pub(crate) async fn expire_login_codes(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.login).expire_all();
    StatusCode::NO_CONTENT
}

/// `POST /_sim/new_day`: the failed userid lookups counted today are forgotten, as at midnight.
pub(crate) async fn new_day(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.lookups).new_day();
    StatusCode::NO_CONTENT
}

fn refuse(reason: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": reason })),
    )
        .into_response()
}
