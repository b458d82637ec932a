//! Routes of the daemon's HTTP server.
//!
//! - `POST /api/<operation>` for every operation of the personas-api table (expanded from
//!   `for_each_operation!`, so a new operation gets its route without a line here), JSON in and
//!   out, errors as `{code, message, field}` with the matching HTTP status.
//! - `GET /api/events`: the WebSocket event stream (see [`crate::events`]).
//! - `GET /api/openapi.json`: the OpenAPI document of the same table.
//! - `GET /api/health` (no token: a liveness probe revealing only version and pid) and
//!   `POST /api/wake` (another process changed triggers or queued work). Nothing else is
//!   written by hand: an action a client can take is an operation of the table (cancelling is
//!   `cancel_execution`).
//! - `GET /metrics`: the `get_metrics` series in Prometheus text format (see [`crate::metrics`]).
//! - `POST /webhooks/{trigger_id}`: webhook triggers (see [`crate::webhook`]).
//! - Everything else: the built UI.
//!
//! Every request but webhooks passes the Host check (DNS rebinding) and, when it carries an
//! Origin, the Origin check (cross-site requests). Webhooks are authenticated by their HMAC
//! signature instead, with no Host/Origin check, because their callers are other machines
//! (often through a tunnel with its own host name) — see docs/architecture.md. Every `/api/*`
//! route but `/api/health` needs the token (and so does `/metrics`),
//! as `Authorization: Bearer <token>` or, for the WebSocket (browsers cannot set headers on
//! it), as the subprotocol `personas.token.<token>`. Bodies are limited to [`MAX_BODY_BYTES`].

use crate::auth;
use crate::events::EventHub;
use crate::ui;
use crate::webhook;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use personas_api::{Api, ApiError, Code, HostInfo, Operations};
use personas_engine::Engine;
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted anywhere (webhooks set their own, smaller limit).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The WebSocket subprotocol the UI speaks; the token rides as a second one.
pub const WS_PROTOCOL: &str = "personas";
const WS_TOKEN_PREFIX: &str = "personas.token.";

#[derive(Clone)]
pub struct ServerState {
    pub engine: Engine,
    pub api: Api,
    pub hub: EventHub,
    pub token: Arc<str>,
    pub port: u16,
    /// Cancelled when the server shuts down (closes WebSockets so shutdown is not held up).
    pub stop: CancellationToken,
}

impl ServerState {
    /// State for a server on `port` over `engine`; starts numbering its events.
    pub fn new(engine: Engine, token: impl Into<Arc<str>>, port: u16) -> ServerState {
        let stop = CancellationToken::new();
        let api = Api::new(
            engine.clone(),
            HostInfo {
                url: Some(format!("http://127.0.0.1:{port}")),
            },
        );
        // Cloud runs that were still going when the last runtime stopped are followed again.
        api.resume_cloud_mirrors();
        ServerState {
            hub: EventHub::start(&engine, stop.clone()),
            api,
            engine,
            token: token.into(),
            port,
            stop,
        }
    }
}

macro_rules! operation_routes {
    ($( $(#[doc = $doc:literal])* $name:ident : $req:ty => $resp:ty ),* $(,)?) => {
        /// One `POST /api/<name>` route per operation of the table.
        fn operation_routes(router: Router<ServerState>) -> Router<ServerState> {
            router
            $(
                .route(
                    concat!("/api/", stringify!($name)),
                    post(|State(s): State<ServerState>, body: Result<Bytes, BytesRejection>| async move {
                        let req: $req = match decode(body) {
                            Ok(r) => r,
                            Err(e) => return error_response(e),
                        };
                        match <Api as Operations>::$name(&s.api, req).await {
                            Ok(resp) => Json(resp).into_response(),
                            Err(e) => error_response(e),
                        }
                    }),
                )
            )*
        }
    };
}

personas_api::for_each_operation!(operation_routes);

pub fn router(state: ServerState) -> Router {
    let api = operation_routes(Router::new())
        .route("/api/events", get(events))
        .route("/api/openapi.json", get(openapi))
        .route("/api/wake", post(wake))
        .route("/api/{*rest}", get(unknown).post(unknown))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    let checked = Router::new()
        .route("/api/health", get(health))
        .merge(api)
        .fallback(get(ui::serve))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            check_host_and_origin,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // The webhook handler enforces its own (configurable) body limit while reading.
    let hooks = Router::new()
        .route("/webhooks/{trigger_id}", post(webhook::receive))
        .layer(DefaultBodyLimit::disable());
    hooks.merge(checked).with_state(state)
}

/// Serves until `shutdown` resolves, then closes event streams and finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stop = state.stop.clone();
    let shutdown = async move {
        shutdown.await;
        stop.cancel();
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

fn error_response(e: ApiError) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e)).into_response()
}

fn error(code: Code, message: impl Into<String>) -> Response {
    error_response(ApiError::new(code, message))
}

/// Decodes a JSON request body (an empty body is `{}`), naming what is wrong.
fn decode<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                Code::TooLarge,
                format!("the request body is over the {MAX_BODY_BYTES} byte limit"),
            )
        } else {
            ApiError::invalid("body", r.body_text())
        }
    })?;
    let value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid("body", format!("not valid JSON: {e}")))?
    };
    personas_api::schema::parse_request(value)
}

async fn check_host_and_origin(
    State(s): State<ServerState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !auth::host_allowed(host, s.port) {
        return error(
            Code::ForbiddenHost,
            format!("host {host:?} is not this server"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) {
        let same = origin
            .strip_prefix("http://")
            .is_some_and(|rest| auth::host_allowed(rest, s.port));
        if !same && origin != "tauri://localhost" {
            return error(
                Code::ForbiddenOrigin,
                format!("origin {origin:?} may not call this server"),
            );
        }
    }
    // Browsers mark requests from other sites even when they carry no Origin.
    if headers
        .get("sec-fetch-site")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return error(Code::ForbiddenOrigin, "cross-site requests are refused");
    }
    next.run(req).await
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(t) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(auth::bearer_token)
    {
        return Some(t);
    }
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|h| h.to_str().ok())?
        .split(',')
        .find_map(|p| p.trim().strip_prefix(WS_TOKEN_PREFIX))
}

async fn require_token(
    State(s): State<ServerState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = presented_token(&headers).unwrap_or("");
    if !auth::token_matches(&s.token, given) {
        return error(
            Code::Unauthorized,
            "missing or wrong API token (Authorization: Bearer <token>)",
        );
    }
    next.run(req).await
}

async fn unknown(req: Request) -> Response {
    error(
        Code::UnknownOperation,
        format!("no API route {} {}", req.method(), req.uri().path()),
    )
}

async fn health(State(s): State<ServerState>) -> Json<serde_json::Value> {
    Json(json!({
        "ok": true,
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "running": s.engine.running_count(),
        "ui": ui::available(),
    }))
}

async fn metrics(State(s): State<ServerState>) -> Response {
    match s.api.get_metrics(personas_api::ops::Empty {}).await {
        Ok(m) => (
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            crate::metrics::render(&m),
        )
            .into_response(),
        Err(e) => error_response(e),
    }
}

async fn openapi() -> Json<serde_json::Value> {
    Json(personas_api::schema::openapi())
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
    epoch: Option<String>,
}

async fn events(
    State(s): State<ServerState>,
    Query(q): Query<EventsQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let hub = s.hub.clone();
    let stop = s.stop.clone();
    ws.protocols([WS_PROTOCOL])
        .on_upgrade(move |socket| hub.serve_socket(socket, q.after, q.epoch, stop))
}

async fn wake(State(s): State<ServerState>) -> StatusCode {
    s.engine.wake();
    StatusCode::NO_CONTENT
}
