//! `/_sim/`: the control API that lets scripts and out-of-process tests drive a standalone
//! simulator the way `Simulator`'s methods drive an in-process one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::callback_sender::{CallbackFaults, CallbackTarget};
use super::directory::Directory;
use super::endpoint::CallCounts;
use super::fault::{Fault, FaultRule};
use super::state::{lock, read, Shared};

/// `GET /_sim/directory`
pub(crate) async fn directory(State(shared): State<Arc<Shared>>) -> Json<Directory> {
    Json(read(&shared.tenant).directory.clone())
}

/// `PUT /_sim/directory`: replaces the whole tenant, settings included. Issued tokens stay valid.
pub(crate) async fn replace_directory(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let directory: Directory = parse(&body, "a directory")?;
    directory
        .validate()
        .map_err(|error| BadRequest(error.to_string()))?;
    shared.edit(|current| *current = directory);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /_sim/faults` with one rule, e.g.
/// `{"endpoint":"/cgi-bin/user/list","department_id":3,"times":2,"fault":{"errcode":45033}}`.
pub(crate) async fn inject(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let rule: FaultRule = parse(&body, "a fault rule")?;
    if let Fault::HttpStatus(status) | Fault::Raw { status, .. } = rule.fault {
        if StatusCode::from_u16(status).is_err() {
            return Err(BadRequest(format!("{status} is not an HTTP status")));
        }
    }
    lock(&shared.faults).push(rule);
    Ok(StatusCode::NO_CONTENT)
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
pub(crate) async fn login_code(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer<Response> {
    let request: LoginCodeRequest = parse(&body, "a login code request")?;
    let code = match (request.userid, request.outsider) {
        (Some(userid), false) => match shared.member_login_code(&userid) {
            Some(code) => code,
            None => {
                return Ok((
                    StatusCode::NOT_FOUND,
                    Json(serde_json::json!({ "error": format!("no member {userid:?} in the directory") })),
                )
                    .into_response())
            }
        },
        (None, true) => shared.outsider_login_code(),
        _ => return Err(BadRequest("give either \"userid\" or \"outsider\": true".to_owned())),
    };
    Ok(Json(serde_json::json!({ "code": code })).into_response())
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

/// The control call's JSON body, or the 400 saying it is not `what` and why.
fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, BadRequest> {
    serde_json::from_slice(body).map_err(|error| BadRequest(format!("not {what}: {error}")))
}

/// A control call's answer, or the 400 refusing it. Most calls change the simulator and answer
/// 204 once done.
pub(crate) type Answer<T = StatusCode> = Result<T, BadRequest>;

/// A refused control call: 400 with `{"error": reason}`.
pub(crate) struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": self.0 })),
        )
            .into_response()
    }
}

/// `PUT /_sim/callback` with `{"url","token","encoding_aes_key","payload":"full"|"ids_only"}`:
/// from now on every change is sent there as a contact-change callback. `DELETE` stops them.
pub(crate) async fn set_callback(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let target: CallbackTarget = parse(&body, "a callback target")?;
    send_callbacks(&shared, Some(target))
}

/// `DELETE /_sim/callback`.
pub(crate) async fn stop_callback(State(shared): State<Arc<Shared>>) -> Answer {
    send_callbacks(&shared, None)
}

fn send_callbacks(shared: &Shared, target: Option<CallbackTarget>) -> Answer {
    shared
        .send_callbacks(target)
        .map_err(|error| BadRequest(error.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /_sim/callback/faults` with `{"duplicate":true,"drop_next":1,"reverse":false}`.
pub(crate) async fn callback_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let faults: CallbackFaults = parse(&body, "callback faults")?;
    shared.callback_faults(faults);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    old: String,
    new: String,
}

/// `POST /_sim/rename` with `{"old","new"}`: the member gets a new userid, and the one
/// `update_user` callback with `NewUserID` goes out.
pub(crate) async fn rename(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer<Response> {
    let rename: Rename = parse(&body, "a rename")?;
    Ok(if shared.rename_user(&rename.old, &rename.new) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::NOT_FOUND, format!("no member {:?}", rename.old)).into_response()
    })
}
