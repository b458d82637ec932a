//! Routes of the daemon's HTTP server.
//!
//! Every `/api/*` request passes the Host check (DNS rebinding) and, when it carries an Origin,
//! the Origin check (cross-site requests); every `/api/*` route but `/api/health` needs the
//! token, as `Authorization: Bearer <token>`. `/webhooks/*` is the exception: each request is
//! authenticated by its HMAC signature instead, and no Host/Origin check applies, because its
//! callers are other machines (often through a tunnel with its own host name) — see
//! docs/architecture.md.

use crate::auth;
use crate::webhook;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use personas_core::ExecutionId;
use personas_engine::{Engine, EngineError};
use personas_store::StoreError;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Largest request body accepted anywhere (webhooks set their own, smaller limit).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

#[derive(Clone)]
pub struct ServerState {
    pub engine: Engine,
    pub token: Arc<str>,
    pub port: u16,
}

pub fn router(state: ServerState) -> Router {
    let api = Router::new()
        .route("/api/wake", post(wake))
        .route("/api/executions/{id}/cancel", post(cancel))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    let checked = Router::new()
        .route("/api/health", get(health))
        .merge(api)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            check_host_and_origin,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // The webhook handler enforces its own (configurable) body limit while reading.
    let hooks = Router::new()
        .route("/webhooks/{trigger_id}", post(webhook::receive))
        .layer(DefaultBodyLimit::disable());
    checked.merge(hooks).with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message.into()})),
    )
        .into_response()
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
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!("host {host:?} is not this server"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok()) {
        let same = origin
            .strip_prefix("http://")
            .is_some_and(|rest| auth::host_allowed(rest, s.port));
        if !same && origin != "tauri://localhost" {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!("origin {origin:?} may not call this server"),
            );
        }
    }
    next.run(req).await
}

async fn require_token(
    State(s): State<ServerState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if !auth::token_matches(&s.token, given) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API token (Authorization: Bearer <token>)",
        );
    }
    next.run(req).await
}

async fn health(State(s): State<ServerState>) -> Json<serde_json::Value> {
    Json(json!({
        "ok": true,
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "running": s.engine.running_count(),
    }))
}

async fn wake(State(s): State<ServerState>) -> StatusCode {
    s.engine.wake();
    StatusCode::NO_CONTENT
}

async fn cancel(State(s): State<ServerState>, Path(id): Path<String>) -> Response {
    match s.engine.cancel(&ExecutionId::from_string(id)).await {
        Ok(exec) => Json(exec).into_response(),
        Err(EngineError::Store(StoreError::NotFound { what, key })) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found: {key}"),
        ),
        Err(EngineError::Store(StoreError::Conflict { message, .. })) => {
            error(StatusCode::CONFLICT, "conflict", message)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}
