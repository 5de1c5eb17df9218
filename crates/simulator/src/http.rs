//! The route table, and the path every `/cgi-bin` call takes: log and count it, hold it while
//! its API is held, apply an injected fault, apply WeCom's throttles and latency, then answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Router};
use tokio::time::Instant;

use super::api::{self, Call};
use super::control;
use super::endpoint::Endpoint;
use super::errcode::ApiError;
use super::fault::Fault;
use super::requests::Request;
use super::server::Connection;
use super::state::{lock, read, Shared};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/cgi-bin/{*api}", any(cgi))
        .route(
            "/_sim/directory",
            // A 100k-member directory is tens of megabytes; this is a loopback test tool.
            get(control::directory)
                .put(control::replace_directory)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/_sim/faults", post(control::inject))
        .route("/_sim/calls", get(control::calls))
        .route("/_sim/login_code", post(control::login_code))
        .route("/_sim/login_code/expire", post(control::expire_login_codes))
        .route("/_sim/new_day", post(control::new_day))
        .route(
            "/_sim/callback",
            axum::routing::put(control::set_callback).delete(control::stop_callback),
        )
        .route(
            "/_sim/callback/faults",
            axum::routing::put(control::callback_faults),
        )
        .route("/_sim/rename", post(control::rename))
        .with_state(shared)
}

async fn cgi(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Connection>,
    method: Method,
    uri: Uri,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Response {
    let Some(endpoint) = Endpoint::from_path(uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Taken, and the call logged, before the call is counted, so a test that saw the count
    // knows the slot is held and finds the call in the log.
    let slot = shared.limits.enter(endpoint);
    let params = query.ok().map(|Query(params)| params);
    let request = Request {
        endpoint,
        query: params.clone().unwrap_or_default(),
        at: Instant::now(),
        in_flight: slot.level,
    };
    let department = request.department();
    lock(&shared.requests).record(request);
    shared.calls.send_modify(|calls| calls.record(endpoint));
    // A held API keeps its calls here, counted and in flight, until the test releases it. The
    // sender lives in `shared`, so the wait cannot fail.
    let mut held = shared.held.subscribe();
    let _ = held.wait_for(|held| !held[endpoint.index()]).await;
    let from_ip = connection.peer.ip();

    let Some(params) = params else {
        return json(ApiError::invalid_param("query").body(from_ip));
    };
    let fault = lock(&shared.faults).take(endpoint, department);
    if let Some(fault) = &fault {
        tracing::debug!(%endpoint, ?fault, "simulator injects a fault");
    }
    let truncate = fault == Some(Fault::Truncated);
    match fault {
        Some(Fault::Errcode(0)) => return json(br#"{"errcode":0,"errmsg":"ok"}"#.to_vec()),
        Some(Fault::Errcode(code)) => return json(ApiError::new(code).body(from_ip)),
        Some(Fault::HttpStatus(status)) => return gateway_error(status),
        Some(Fault::NotJson) => return not_json(),
        Some(Fault::Raw { status, body }) => return raw(status, body),
        Some(Fault::Close) => {
            connection.close();
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Some(Fault::Reset) => {
            connection.reset();
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Hang) => std::future::pending::<()>().await,
        Some(Fault::Truncated) | None => {}
    }

    let (latency, max_concurrent, rate_limit, window) = {
        let tenant = read(&shared.tenant);
        let d = &tenant.directory;
        (
            Duration::from_millis(d.latency_ms),
            d.max_concurrent_per_api,
            d.rate_limit_per_minute,
            Duration::from_millis(d.rate_limit_window_ms),
        )
    };
    // Throttling happens at the door: a refused call frees its slot at once and does not count
    // against the rate window, but still takes the round trip.
    let throttled = if max_concurrent.is_some_and(|max| slot.level > max) {
        Some(ApiError::new(45033))
    } else if rate_limit.is_some_and(|limit| {
        !exempt_from_rate_limit(&shared, endpoint, &params)
            && !shared.limits.admit(endpoint, limit, window)
    }) {
        Some(ApiError::new(45009))
    } else {
        None
    };
    if throttled.is_some() {
        drop(slot);
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut body = match throttled {
        Some(error) => error.body(from_ip),
        None => {
            let call = Call {
                endpoint,
                params: &params,
                body: &body,
                is_post: method == Method::POST,
            };
            api::answer(&shared, &call).unwrap_or_else(|error| error.body(from_ip))
        }
    };
    if truncate {
        body.truncate(body.len() / 2);
    }
    json(body)
}

/// `auth/getuserinfo` with a valid code is exempt from the frequency limits; with an unknown,
/// used or expired one it counts like any call.
fn exempt_from_rate_limit(
    shared: &Shared,
    endpoint: Endpoint,
    params: &HashMap<String, String>,
) -> bool {
    endpoint == Endpoint::AuthGetUserInfo
        && params
            .get("code")
            .is_some_and(|code| lock(&shared.login).is_valid(code))
}

/// The `Content-Type` of every WeCom API answer, errors included.
const WECOM_JSON: &str = "application/json; charset=UTF-8";

/// WeCom answers `application/json` with status 200, errors included.
fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, WECOM_JSON)], body).into_response()
}

/// A hand-written answer, sent as it is with WeCom's content type (an invalid status gives 500).
fn raw(status: u16, body: String) -> Response {
    (
        status_or_500(status),
        [(header::CONTENT_TYPE, WECOM_JSON)],
        body,
    )
        .into_response()
}

/// A fault's status code; one outside HTTP's range (which `/_sim/faults` refuses, but
/// `Simulator::inject` takes) is answered 500.
fn status_or_500(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// What Tencent's gateway (STGW) sends when the backend fails.
fn gateway_error(status: u16) -> Response {
    let status = status_or_500(status);
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>stgw</center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
}

/// A 200 that is not JSON, as a captive portal or a misrouted proxy produces.
fn not_json() -> Response {
    let page =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>企业微信</title></head>\
                <body><p>系统繁忙，请稍后再试。</p></body></html>\n";
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}
