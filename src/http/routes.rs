//! The endpoints. Each authenticates, parses its query, calls the service layer on a store
//! connection of the pool, and writes what it returns: JSON, or NDJSON and SSE streamed line
//! by line so that no answer holds more than a batch in memory.

use crate::service::host_users::{self, LoginLink};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::auth::Caller;
use super::error::ApiError;
use super::metrics;
use super::stores::Stores;
use super::{HttpContext, Scope};
use crate::event_reader;
use crate::events::TypeFilter;
use crate::queue::Trigger;
use crate::service::directory::{self, ObjectTypes, SnapshotFilter};
use crate::service::events::{self, ConsumerName, Owner, PageRequest};
use crate::socket::protocol::MAX_TYPE_PATTERNS;
use crate::status::Status;

/// Events per page unless `limit` says otherwise, and the most a page holds: a larger `limit`
/// counts as this.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: u64 = 10_000;

/// The longest `wait` of a long-poll, in seconds: a longer one counts as this.
const MAX_WAIT_SECS: u64 = 60;

/// How often an idle event stream sends a comment, so that proxies keep it open and a client
/// gone away is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Lines buffered between the store and a streamed response.
const STREAM_LINES: usize = 64;

const NDJSON: &str = "application/x-ndjson";

struct App {
    ctx: Arc<HttpContext>,
    stores: Stores,
}

type Shared = Arc<App>;

pub fn router(ctx: Arc<HttpContext>) -> Router {
    let app = Arc::new(App {
        stores: Stores::new(ctx.store_path.clone()),
        ctx,
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/status", get(status))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/members/{userid}", get(member))
        .route("/v1/departments/{id}", get(department))
        .route("/v1/events", get(events_page))
        .route("/v1/events/stream", get(events_stream))
        .route("/v1/consumers/{name}/ack", post(ack))
        .route("/v1/resync", post(resync))
        .route("/v1/login/resolve", post(login_resolve))
        .route("/v1/host_users", post(put_host_users))
        .route("/v1/links", post(put_link))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Caller, ApiError> {
        let tokens = Arc::clone(&app.ctx.tokens.borrow());
        tokens.authenticate(&parts.headers)
    }
}

// The fallbacks take a caller too, so that only a token's holder learns which paths and
// methods exist: without a valid token, every request but `GET /healthz` is a 401.
async fn not_found(_: Caller) -> ApiError {
    ApiError::not_found("no such endpoint; docs/http.md lists them")
}

async fn method_not_allowed(_: Caller) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        crate::service::ErrorCode::BadRequest,
        "this endpoint does not take that method; docs/http.md lists each endpoint's",
    )
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The status report, as `status` answers it.
async fn status_report(app: &App) -> Result<Value, ApiError> {
    let status = Arc::clone(&app.ctx.status);
    let report = tokio::task::spawn_blocking(move || status())
        .await
        .map_err(|_| ApiError::internal("the status task failed; see the daemon's log"))?
        .map_err(|e| ApiError::internal(format!("cannot compute the status: {e}")))?;
    Ok(report)
}

/// Whether `orgsync status` would exit 0 on `status`.
fn healthy(status: Option<&Status>) -> bool {
    status.is_some_and(|status| status.exit_code() == 0)
}

fn parse_status(report: &Value) -> Option<Status> {
    serde_json::from_value(report.clone()).ok()
}

async fn healthz(State(app): State<Shared>) -> Response {
    match status_report(&app).await {
        Ok(report) => {
            let healthy = healthy(parse_status(&report).as_ref());
            let last = &report["last_run"];
            let body = json!({
                "ok": healthy,
                "status": if healthy { "ok" } else { last["outcome"].as_str().unwrap_or("unhealthy") },
                "last_run": if last.is_null() { Value::Null } else {
                    json!({"id": last["id"], "outcome": last["outcome"], "finished_at": last["finished_at"]})
                },
            });
            let code = if healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_response(code, &body)
        }
        Err(error) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ok": false, "status": "error", "error": error.message}),
        ),
    }
}

async fn status(State(app): State<Shared>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/v1/status")?;
    let report = status_report(&app).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"ok": true, "op": "status", "status": report}),
    ))
}

async fn metrics_text(State(app): State<Shared>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/metrics")?;
    let report = status_report(&app).await?;
    let status: Status = serde_json::from_value(report.clone())
        .map_err(|e| ApiError::internal(format!("cannot read the status report: {e}")))?;
    let healthy = healthy(Some(&status));
    let store = app
        .stores
        .with(|store| Ok(metrics::StoreFigures::read(store.conn())?))
        .await?;
    let text = metrics::render(&status, &report, healthy, &store);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// The query's `name=value` pairs, each name known and given once.
fn query_pairs(
    query: Option<&str>,
    known: &[&'static str],
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut pairs = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let Some(&known_name) = known.iter().find(|k| **k == name) else {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {:?}; this endpoint takes {}",
                name.chars().take(64).collect::<String>(),
                known.join(", ")
            )));
        };
        if pairs.iter().any(|(n, _)| *n == known_name) {
            return Err(ApiError::bad_request(format!(
                "query parameter {known_name:?} is given twice"
            )));
        }
        pairs.push((known_name, value.into_owned()));
    }
    Ok(pairs)
}

fn param<'a>(pairs: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

/// The query parameter `name`, read by `parse`. A value it refuses is a `bad_request`: the
/// parameter must be `expected`, not the value (its first 32 characters), then `after`.
fn parsed<T>(
    pairs: &[(&'static str, String)],
    name: &str,
    parse: impl FnOnce(&str) -> Option<T>,
    expected: &str,
    after: &str,
) -> Result<Option<T>, ApiError> {
    param(pairs, name)
        .map(|value| {
            parse(value).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter {name:?} must be {expected}, not {:?}{after}",
                    value.chars().take(32).collect::<String>()
                ))
            })
        })
        .transpose()
}

fn number<T: std::str::FromStr>(
    pairs: &[(&'static str, String)],
    name: &str,
) -> Result<Option<T>, ApiError> {
    parsed(
        pairs,
        name,
        |v| v.parse().ok(),
        "a non-negative integer",
        "",
    )
}

/// The query parameter `name`, an integer of at least `min`, clamped to `max`: asking for more
/// than the most the daemon gives is asking for the most, so a client need not know the
/// maximum (a page's next-since says where to go on).
fn clamped(
    pairs: &[(&'static str, String)],
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ApiError> {
    let expected = format!("an integer of at least {min} (above {max} counts as {max})");
    let parse = |value: &str| {
        // Digits too many for a u64 are above the maximum too.
        (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.parse::<u64>().unwrap_or(u64::MAX))
            .filter(|number| *number >= min)
            .map(|number| number.min(max))
    };
    parsed(pairs, name, parse, &expected, "")
}

/// An event seq, as the socket takes one: a non-negative integer. A negative `since` would
/// otherwise read as a position before every event, and come back as a `gap`.
fn parse_seq(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|seq| *seq >= 0)
}

/// The query parameter `name` as an event seq.
fn seq_param(pairs: &[(&'static str, String)], name: &str) -> Result<Option<i64>, ApiError> {
    let after = ": the seq of the last event you have, as X-Orgsync-Next-Since or a snapshot's \
                 seq gives it";
    parsed(
        pairs,
        name,
        parse_seq,
        "a non-negative integer (an event seq)",
        after,
    )
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A streamed body of the lines a channel receives, ending when the channel closes.
fn streamed(lines: mpsc::Receiver<Bytes>) -> Body {
    Body::from_stream(futures_util::stream::unfold(
        lines,
        |mut lines| async move {
            lines
                .recv()
                .await
                .map(|line| (Ok::<_, Infallible>(line), lines))
        },
    ))
}

fn line_bytes(mut line: String) -> Bytes {
    line.push('\n');
    Bytes::from(line)
}

/// A line of a streamed answer; `last` marks the answer's last line.
struct Chunk {
    line: Bytes,
    last: bool,
}

/// The body of a streamed answer that ends with a last line. Lines that stop before it (the
/// producer gave up on a client that stopped reading) make the body fail instead of end, so
/// that the server aborts the response: the client sees a cut-off transfer, never what looks
/// like a whole answer.
fn streamed_to_last(lines: mpsc::Receiver<Chunk>) -> Body {
    Body::from_stream(futures_util::stream::unfold(
        Some(lines),
        |lines| async move {
            let mut lines = lines?;
            match lines.recv().await {
                Some(Chunk { line, last }) => Some((Ok(line), (!last).then_some(lines))),
                None => Some((
                    Err(std::io::Error::other(
                        "the answer ended before its last line",
                    )),
                    None,
                )),
            }
        },
    ))
}

/// Hands the lines of a streamed answer from the blocking thread that reads the store to the
/// response body, giving up on a client that takes no line for `stall`: the answer's read
/// transaction would otherwise stay open for as long as the client lingers, and with it a
/// blocking thread, and the WAL could not be checkpointed while syncs commit.
struct Handover {
    lines: mpsc::Sender<Chunk>,
    runtime: tokio::runtime::Handle,
    stall: Duration,
    stalled: bool,
}

impl Handover {
    /// Whether the line was handed over; false once the client is gone or has stalled.
    fn send(&mut self, line: String, last: bool) -> bool {
        let chunk = Chunk {
            line: line_bytes(line),
            last,
        };
        // Mostly there is room: only a full channel needs the runtime and a timer.
        let chunk = match self.lines.try_send(chunk) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(chunk)) => chunk,
        };
        let sent = self
            .runtime
            .block_on(tokio::time::timeout(self.stall, self.lines.send(chunk)));
        match sent {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                self.stalled = true;
                false
            }
        }
    }
}

async fn snapshot(
    State(app): State<Shared>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/v1/snapshot")?;
    let pairs = query_pairs(query.as_deref(), &["department", "types"])?;
    let mut filter = SnapshotFilter {
        department: number(&pairs, "department")?,
        types: ObjectTypes::ALL,
    };
    if let Some(types) = param(&pairs, "types") {
        filter.types = ObjectTypes::parse(types.split(',').map(str::trim))
            .map_err(|problem| ApiError::bad_request(format!("\"types\": {problem}")))?;
    }
    let (lines, received) = mpsc::channel::<Chunk>(STREAM_LINES);
    let (started, on_start) = oneshot::channel::<(i64, String)>();
    let stores = app.stores.clone();
    let mut handover = Handover {
        lines,
        runtime: tokio::runtime::Handle::current(),
        stall: app.ctx.settings.stream_stall,
        stalled: false,
    };
    let token = caller.name;
    let producing = tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        let store = stores.take()?;
        let mut started = Some(started);
        // The read transaction lasts as long as this call: until the last line is handed
        // over, the client is gone, or it has stalled.
        let result = directory::snapshot_with(
            &store,
            filter,
            |seq, id| {
                started
                    .take()
                    .is_some_and(|started| started.send((seq, id.to_owned())).is_ok())
            },
            |line| handover.send(line, false),
        );
        stores.give_back(store);
        let last = match result {
            Ok(Some(end)) => {
                let mut last = json!({"ok": true, "op": "snapshot"});
                if let (Value::Object(last), Ok(Value::Object(end))) =
                    (&mut last, serde_json::to_value(end))
                {
                    last.extend(end);
                }
                Some(last)
            }
            Ok(None) => None,
            // Before the headers the error is the response; after them, the last line.
            Err(error) if started.is_some() => return Err(error.into()),
            Err(error) => Some(ApiError::from(error).body()),
        };
        if let Some(last) = last {
            handover.send(last.to_string(), true);
        }
        if handover.stalled {
            tracing::warn!(
                %token,
                stall_secs = handover.stall.as_secs_f64(),
                "http snapshot cut off: the client took no line for the stall limit; its read transaction is closed"
            );
        }
        Ok(())
    });
    match on_start.await {
        Ok((seq, store)) => {
            let mut response = Response::new(streamed_to_last(received));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
            headers.insert("x-orgsync-seq", header_value(&seq.to_string()));
            headers.insert("x-orgsync-store", header_value(&store));
            Ok(response)
        }
        Err(_) => match producing.await {
            Ok(Err(error)) => Err(error),
            _ => Err(ApiError::internal(
                "the snapshot ended before it began; see the daemon's log",
            )),
        },
    }
}

async fn member(
    State(app): State<Shared>,
    caller: Caller,
    Path(userid): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/v1/members")?;
    let member = app
        .stores
        .with(move |store| Ok(directory::member(store.conn(), &userid)?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"ok": true, "op": "member.get", "member": member}),
    ))
}

async fn department(
    State(app): State<Shared>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/v1/departments")?;
    let id = id.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{:?} is not a department id (a number)",
            id.chars().take(32).collect::<String>()
        ))
    })?;
    let (department, path) = app
        .stores
        .with(move |store| Ok(directory::department(store.conn(), id)?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"ok": true, "op": "department.get", "department": department, "path": path}),
    ))
}

/// `types=a,b` as a type filter.
fn types_param(pairs: &[(&'static str, String)]) -> Result<Option<TypeFilter>, ApiError> {
    let Some(types) = param(pairs, "types") else {
        return Ok(None);
    };
    let patterns: Vec<&str> = types.split(',').map(str::trim).collect();
    if patterns.len() > MAX_TYPE_PATTERNS {
        return Err(ApiError::bad_request(format!(
            "\"types\" lists more than {MAX_TYPE_PATTERNS} patterns; use prefixes like orgsync.member.*"
        )));
    }
    let mut filter = TypeFilter::default();
    for pattern in patterns {
        filter
            .add(pattern)
            .map_err(|problem| ApiError::bad_request(format!("\"types\": {problem}")))?;
    }
    Ok(Some(filter))
}

fn consumer_param(pairs: &[(&'static str, String)]) -> Result<Option<ConsumerName>, ApiError> {
    param(pairs, "consumer")
        .map(|name| {
            ConsumerName::new(name)
                .map_err(|problem| ApiError::bad_request(format!("\"consumer\" {problem}")))
        })
        .transpose()
}

fn owner(caller: &Caller) -> Owner {
    Owner {
        name: caller.owner(),
        admin: caller.scope == Scope::Admin,
    }
}

/// Checks the caller's claims (the store its position is from, the consumer it reads as) and
/// finds where it starts: returns `(cursor, store id)`.
async fn start_reading(
    app: &App,
    caller: &Caller,
    request: &PageRequest,
    theirs: Option<String>,
) -> Result<(i64, String), ApiError> {
    let request = request.clone();
    let owner = owner(caller);
    app.stores
        .with(move |store| {
            let ours = store.id()?;
            if let Some(theirs) = theirs.filter(|theirs| *theirs != ours) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    crate::service::ErrorCode::StoreChanged,
                    format!("this position belongs to store {theirs}, but the daemon serves store {ours} (replaced, or restored from a backup); take a new snapshot, then read from its seq"),
                ));
            }
            if let Some(consumer) = &request.consumer {
                events::check_reader(store.conn(), consumer.as_str(), &owner)?;
            }
            let (cursor, _) = events::page_start(store.conn(), &request)?;
            Ok((cursor, ours))
        })
        .await
}

async fn events_page(
    State(app): State<Shared>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/v1/events")?;
    let pairs = query_pairs(
        query.as_deref(),
        &["since", "limit", "wait", "consumer", "types", "store"],
    )?;
    let limit = clamped(&pairs, "limit", 1, MAX_LIMIT)?
        .and_then(|limit| usize::try_from(limit).ok())
        .unwrap_or(DEFAULT_LIMIT);
    let wait = clamped(&pairs, "wait", 0, MAX_WAIT_SECS)?.unwrap_or(0);
    let request = PageRequest {
        since: seq_param(&pairs, "since")?,
        consumer: consumer_param(&pairs)?,
        types: types_param(&pairs)?,
        limit,
    };
    let theirs = param(&pairs, "store").map(str::to_owned);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut head = app.ctx.head.clone();
    let mut shutdown = app.ctx.shutdown.clone();
    head.borrow_and_update();
    let (mut cursor, store_id) = start_reading(&app, &caller, &request, theirs).await?;
    let page = loop {
        // Marked seen before reading: a commit from here on wakes the wait below, and one
        // before is already visible to the read.
        head.borrow_and_update();
        let reading = request.clone();
        let page = app
            .stores
            .with(move |store| Ok(events::read_page(store.conn(), cursor, &reading)?))
            .await?;
        cursor = page.next;
        if !page.events.is_empty() || tokio::time::Instant::now() >= deadline {
            break page;
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { break page },
            () = tokio::time::sleep_until(deadline) => {}
            () = crate::shutdown::stopped(&mut shutdown) => break page,
        }
    };
    let mut body = Vec::with_capacity(page.events.iter().map(|e| e.body.len() + 1).sum());
    for event in &page.events {
        body.extend_from_slice(event.body.as_bytes());
        body.push(b'\n');
    }
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    headers.insert("x-orgsync-next-since", header_value(&page.next.to_string()));
    headers.insert("x-orgsync-head", header_value(&page.head.to_string()));
    headers.insert("x-orgsync-store", header_value(&store_id));
    Ok(response)
}

async fn events_stream(
    State(app): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/v1/events/stream")?;
    let pairs = query_pairs(query.as_deref(), &["since", "consumer", "types", "store"])?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|value| {
            value.to_str().ok().map(str::trim).and_then(parse_seq).ok_or_else(|| {
                ApiError::bad_request(
                    "Last-Event-ID must be a non-negative integer (an event seq): the id of the last event received",
                )
            })
        })
        .transpose()?;
    let request = PageRequest {
        // A reconnecting client resumes after the last event it received.
        since: last_event_id.or(seq_param(&pairs, "since")?),
        consumer: consumer_param(&pairs)?,
        types: types_param(&pairs)?,
        limit: 1,
    };
    let theirs = param(&pairs, "store").map(str::to_owned);
    let (cursor, store_id) = start_reading(&app, &caller, &request, theirs).await?;
    let (frames, received) = mpsc::channel::<Bytes>(STREAM_LINES);
    tokio::spawn(stream_events(
        Arc::clone(&app),
        cursor,
        request.types,
        frames,
    ));
    let mut response = Response::new(streamed(received));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-orgsync-store", header_value(&store_id));
    Ok(response)
}

/// Sends the events after `cursor` as SSE frames, then live ones as they are committed, until
/// the client goes away, the daemon stops, or the log cannot be followed (a last `error`
/// frame says why).
async fn stream_events(
    app: Arc<App>,
    mut cursor: i64,
    types: Option<TypeFilter>,
    frames: mpsc::Sender<Bytes>,
) {
    let types = Arc::new(types);
    let mut head = app.ctx.head.clone();
    let mut shutdown = app.ctx.shutdown.clone();
    // The first frame goes out at once, so that the client knows the stream is live.
    if frames
        .send(Bytes::from_static(b": orgsync event stream\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        head.borrow_and_update();
        let filter = Arc::clone(&types);
        let batch = app
            .stores
            .with(move |store| {
                event_reader::next_batch(store.conn(), cursor, filter.as_ref().as_ref())
                    .map_err(ApiError::from)
            })
            .await;
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                let frame = format!("event: error\ndata: {}\n\n", error.body());
                let _ = frames.send(Bytes::from(frame)).await;
                return;
            }
        };
        let Some(last_seq) = batch.last_seq else {
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    if frames.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
                () = frames.closed() => return,
                () = crate::shutdown::stopped(&mut shutdown) => return,
            }
            continue;
        };
        for event in batch.events {
            let frame = format!(
                "id: {}\nevent: {}\ndata: {}\n\n",
                event.seq, event.kind, event.body
            );
            if frames.send(Bytes::from(frame)).await.is_err() {
                return;
            }
        }
        cursor = last_seq;
    }
}

async fn ack(
    State(app): State<Shared>,
    caller: Caller,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/v1/consumers/{name}/ack")?;
    let consumer = ConsumerName::new(&name)
        .map_err(|problem| ApiError::bad_request(format!("the consumer name {problem}")))?;
    let shape = "a JSON object {\"seq\":N}, N a seq";
    let seq = json_body(&app, body, shape)
        .await?
        .get("seq")
        .and_then(Value::as_i64)
        .filter(|seq| *seq >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("the body must be {shape}")))?;
    let owner = owner(&caller);
    let name = consumer.as_str().to_owned();
    app.stores
        .with(move |store| Ok(events::ack(store, &name, seq, &owner)?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"ok": true, "op": "ack", "consumer": consumer.as_str(), "seq": seq}),
    ))
}

/// A request body, bounded in size and in the time it may take to arrive.
async fn read_body(app: &Shared, body: Body, shape: &str) -> Result<axum::body::Bytes, ApiError> {
    let settings = &app.ctx.settings;
    match tokio::time::timeout(
        settings.body_timeout,
        axum::body::to_bytes(body, settings.max_body),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::service::ErrorCode::TooLarge,
            format!(
                "the body may be at most {} bytes: {shape}",
                settings.max_body
            ),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            crate::service::ErrorCode::Timeout,
            format!(
                "the body did not arrive within {}s",
                settings.body_timeout.as_secs()
            ),
        )),
    }
}

/// `POST /v1/login/resolve` `{"code":C}`: read scope, like the socket op (a code works once,
/// for this app only).
async fn login_resolve(
    State(app): State<Shared>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "/v1/login/resolve")?;
    let shape = "{\"code\":C}, C the login code";
    let value = json_body(&app, body, shape).await?;
    let code = value
        .get("code")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("the body must be {shape}")))?;
    let resolved = app.ctx.login.resolve(code).await?;
    Ok(json_response(StatusCode::OK, &resolved.reply()))
}

/// `POST /v1/host_users` `{"users":[...],"replace":BOOL}`: the socket's `host_users.put`.
async fn put_host_users(
    State(app): State<Shared>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin, "/v1/host_users")?;
    let shape = "{\"users\":[{\"id\":..,\"name\":..,\"mobile\":..}],\"replace\":false}";
    let value = json_body(&app, body, shape).await?;
    let users = match value.get("users") {
        Some(Value::Array(items)) => {
            host_users::parse_users(items).map_err(|(index, problem)| {
                ApiError::bad_request(format!("users[{index}]: {problem}"))
            })?
        }
        _ => return Err(ApiError::bad_request(format!("the body must be {shape}"))),
    };
    let replace = match value.get("replace") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(replace)) => *replace,
        Some(_) => return Err(ApiError::bad_request("\"replace\" must be true or false")),
    };
    let source = app.ctx.source.clone();
    let by = format!("http token {}", caller.name);
    let (summary, head) = app
        .stores
        .with(move |store| Ok(host_users::put(store, &source, &by, &users, replace)?))
        .await?;
    publish(&app, head);
    let mut reply = json!({"ok": true, "op": "host_users.put"});
    if let (Value::Object(reply), Ok(Value::Object(summary))) =
        (&mut reply, serde_json::to_value(summary))
    {
        reply.extend(summary);
    }
    Ok(json_response(StatusCode::OK, &reply))
}

/// `POST /v1/links` `{"host_user_id":H,"userid":U,"method":"login"}`: the socket's `link.put`.
async fn put_link(
    State(app): State<Shared>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin, "/v1/links")?;
    let shape = "{\"host_user_id\":H,\"userid\":U,\"method\":\"login\"}";
    let value = json_body(&app, body, shape).await?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(host_user_id), Some(userid), Some("login")) = (
        text("host_user_id"),
        text("userid"),
        text("method").as_deref(),
    ) else {
        return Err(ApiError::bad_request(format!("the body must be {shape}")));
    };
    let link = LoginLink {
        host_user_id,
        userid,
    };
    let (source, by) = (
        app.ctx.source.clone(),
        format!("http token {}", caller.name),
    );
    let head = app
        .stores
        .with(move |store| Ok(link.record(store, &source, &by)?))
        .await?;
    publish(&app, head);
    Ok(json_response(
        StatusCode::OK,
        &json!({"ok": true, "op": "link.put"}),
    ))
}

/// A request body that must be a JSON object (duplicate keys refused).
async fn json_body(app: &Shared, body: Body, shape: &str) -> Result<Value, ApiError> {
    let bytes = read_body(app, body, shape).await?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| crate::strict_json::parse(text).ok())
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::bad_request(format!("the body must be {shape}")))
}

/// Publishes a head a write here moved.
fn publish(app: &Shared, head: i64) {
    crate::shutdown::publish_head(&app.ctx.head_publisher, head);
}

async fn resync(State(app): State<Shared>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Admin, "/v1/resync")?;
    let queue = Arc::clone(&app.ctx.queue);
    let resync = app
        .stores
        // A host application's request, like the socket's `resync`: the contract's triggers
        // name where a run came from, not the transport.
        .with(move |store| Ok(events::resync(store.conn(), &queue, Trigger::Socket)?))
        .await?;
    tracing::info!(token = %caller.name, "resync requested over http");
    Ok(json_response(
        StatusCode::OK,
        &json!({"ok": true, "op": "resync", "queued": resync.queued, "merged": resync.merged, "after_run": resync.after_run}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(&'static str, String)> {
        query_pairs(Some(query), &["limit", "wait"]).unwrap()
    }

    fn wait(query: &str) -> Option<u64> {
        clamped(&pairs(query), "wait", 0, MAX_WAIT_SECS)
            .ok()
            .flatten()
    }

    fn limit(query: &str) -> Option<u64> {
        clamped(&pairs(query), "limit", 1, MAX_LIMIT).ok().flatten()
    }

    #[test]
    fn a_limit_or_wait_above_its_maximum_counts_as_the_maximum() {
        assert_eq!(wait("wait=0"), Some(0));
        assert_eq!(wait("wait=60"), Some(60));
        assert_eq!(wait("wait=120"), Some(60));
        assert_eq!(wait("wait=99999999999999999999999"), Some(60));
        assert_eq!(limit("limit=1"), Some(1));
        assert_eq!(limit("limit=10000"), Some(10_000));
        assert_eq!(limit("limit=50000"), Some(10_000));
        assert_eq!(clamped(&pairs(""), "limit", 1, MAX_LIMIT).unwrap(), None);
    }

    #[test]
    fn a_limit_of_0_or_a_value_that_is_not_a_number_is_refused() {
        for (name, query) in [
            ("limit", "limit=0"),
            ("limit", "limit=-5"),
            ("limit", "limit=ten"),
            ("limit", "limit="),
            ("wait", "wait=-1"),
            ("wait", "wait=1.5"),
            ("wait", "wait=+3"),
        ] {
            let min = u64::from(name == "limit");
            let error = clamped(&pairs(query), name, min, 100).unwrap_err();
            assert_eq!(error.code_str(), "bad_request", "{query}");
            assert!(error.message.contains(name), "{query}: {}", error.message);
        }
    }
}
