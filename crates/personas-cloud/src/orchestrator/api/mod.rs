//! The orchestrator's front door over HTTP: every operation of
//! [`personas_cloud_api::for_each_cloud_operation!`] as `POST /api/<name>` (bearer token, JSON
//! in and out, errors as `CloudError`), the client stream `GET /api/stream`
//! ([`super::stream`]), and the unauthenticated `GET /health`, `GET /ready` and
//! `GET /openapi.json`.
//!
//! A request is authenticated before its body is read ([`crate::auth`]); the body is then decoded
//! with `serde_path_to_error`, so a bad value is answered with the path of the field at fault.
//! Handlers live by subject: [`executions`], [`personas`], [`events`], [`account`]; every one
//! takes the caller's [`Principal`] and names its tenant in every query.

pub mod account;
pub mod events;
pub mod executions;
pub mod personas;

use super::Orchestrator;
use super::db;
use crate::auth::{Authenticator, Principal};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use personas_cloud_api::{CloudError, CloudErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request body accepted (a persona file with its credentials fits many times over).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Tenants known to have a row, so that a tenant's first request creates it and later ones
/// skip the write. Bounded: forgetting costs one idempotent insert.
const KNOWN_TENANTS_MAX: usize = 100_000;

/// What every handler shares: the orchestrator and the authenticator.
#[derive(Clone)]
pub struct Api {
    pub orch: Orchestrator,
    pub auth: Authenticator,
    known_tenants: Arc<Mutex<HashSet<String>>>,
}

impl Api {
    pub fn new(orch: Orchestrator, auth: Authenticator) -> Self {
        Self {
            orch,
            auth,
            known_tenants: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The caller of a request: its token verified, its tenant's row made on first use.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Principal, CloudError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map_err(|_| crate::auth::AuthError::NotBearer))
            .transpose()?;
        let principal = self.auth.authenticate_header(value).await?;
        self.ensure_tenant(&principal.tenant_id).await?;
        Ok(principal)
    }

    async fn ensure_tenant(&self, tenant_id: &str) -> Result<(), CloudError> {
        if self.is_known(tenant_id) {
            return Ok(());
        }
        let conn = db::conn(self.orch.db()).await?;
        db::execute(
            &conn,
            "INSERT INTO tenants (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
            &[&tenant_id],
        )
        .await?;
        if let Ok(mut known) = self.known_tenants.lock() {
            if known.len() >= KNOWN_TENANTS_MAX {
                known.clear();
            }
            known.insert(tenant_id.to_string());
        }
        Ok(())
    }

    fn is_known(&self, tenant_id: &str) -> bool {
        self.known_tenants
            .lock()
            .map(|k| k.contains(tenant_id))
            .unwrap_or(false)
    }
}

/// A [`CloudError`] as an HTTP answer: its code's status and the error as JSON. A 401 says
/// how to authenticate (`WWW-Authenticate`).
pub struct ApiError(pub CloudError);

impl From<CloudError> for ApiError {
    fn from(e: CloudError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(self.0)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        resp
    }
}

/// Decodes a request body; a value that does not fit is `invalid` naming its path
/// (`credentials[0].fields`). An empty body reads as `{}` (operations without fields).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, CloudError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A missing field is reported at its parent's path; name the field itself.
        let missing = inner
            .to_string()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_string());
        let field = match (path.as_str(), missing) {
            (".", Some(name)) => name,
            (".", None) => "body".to_string(),
            (_, Some(name)) => format!("{path}.{name}"),
            (_, None) => path,
        };
        CloudError::invalid(&field, format!("{field}: {inner}"))
    })
}

/// The request body, or `too_large` / `invalid` when it cannot be read.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, CloudError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            CloudError::new(
                CloudErrorCode::TooLarge,
                format!("the request body is over {BODY_LIMIT} bytes"),
            )
        } else {
            CloudError::invalid("body", format!("cannot read the request body: {rejection}"))
        }
    })
}

/// Runs one operation: authenticate, decode, handle, encode.
async fn serve<Req, Resp, F, Fut>(
    api: Api,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    handler: F,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: FnOnce(Api, Principal, Req) -> Fut,
    Fut: std::future::Future<Output = Result<Resp, CloudError>>,
{
    let result = async {
        let caller = api.caller(&headers).await?;
        let req: Req = decode(&body_bytes(body)?)?;
        handler(api, caller, req).await
    }
    .await;
    match result {
        Ok(resp) => Json(resp).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

macro_rules! operation_routes {
    ($( $(#[doc = $doc:literal])* $name:ident : $req:ty => $resp:ty ),* $(,)?) => {
        /// One `POST /api/<name>` route per operation of the table.
        fn operation_routes() -> Router<Api> {
            Router::new()
            $(
                .route(
                    concat!("/api/", stringify!($name)),
                    post(
                        |State(api): State<Api>,
                         headers: HeaderMap,
                         body: Result<Bytes, BytesRejection>| async move {
                            serve::<$req, $resp, _, _>(api, headers, body, |api, who, req| async move {
                                handlers::$name(&api, &who, req).await
                            })
                            .await
                        },
                    ),
                )
            )*
        }
    };
}

/// The handlers by operation name, so the table's names resolve.
mod handlers {
    pub use super::account::{get_cluster, get_usage, set_model_credential, whoami};
    pub use super::events::{list_events, publish_event};
    pub use super::executions::{
        cancel_execution, execute, execution_output, get_execution, list_executions,
    };
    pub use super::personas::{delete_persona, list_personas, list_triggers, push_persona};
}

personas_cloud_api::for_each_cloud_operation!(operation_routes);

/// The orchestrator's HTTP routes (API, client stream, health, readiness, OpenAPI).
pub fn router(state: Orchestrator) -> Router {
    let auth = Authenticator::new(state.settings()).unwrap_or_else(|e| {
        // The settings were checked when resolved; this fallback refuses every JWT (the admin
        // token still works) rather than taking a running peer down.
        tracing::error!("JWT verification is off: {e:#}");
        Authenticator::admin_only(state.settings().admin_token.as_ref())
    });
    router_with(Api::new(state, auth))
}

/// The routes over a prepared [`Api`] (tests pass their own authenticator policy).
pub fn router_with(api: Api) -> Router {
    operation_routes()
        .route("/api/stream", get(super::stream::handler))
        .route("/api/{*rest}", any(unknown_operation))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api)
}

async fn unknown_operation(axum::extract::Path(rest): axum::extract::Path<String>) -> ApiError {
    let name: String = rest.chars().take(64).collect();
    ApiError(CloudError::new(
        CloudErrorCode::UnknownOperation,
        format!(
            "no operation {name:?}; the operations are POST /api/<name> for: {}",
            personas_cloud_api::CLOUD_OPERATIONS
                .iter()
                .map(|o| o.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// Liveness: the process answers. No token, no dependencies.
async fn health(State(api): State<Api>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "orchestrator_id": api.orch.id(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Readiness: Postgres answers a query and the broker answers a metadata request.
async fn ready(State(api): State<Api>) -> Response {
    let postgres = async {
        let conn = db::conn(api.orch.db()).await?;
        db::query_one(&conn, "SELECT 1", &[]).await?;
        Ok::<_, CloudError>(())
    };
    let postgres = match tokio::time::timeout(Duration::from_secs(3), postgres).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.message),
        Err(_) => Err("no answer within 3 s".to_string()),
    };
    let broker = broker_reachable(&api.orch).await;
    let ok = postgres.is_ok() && broker.is_ok();
    let body = serde_json::json!({
        "ready": ok,
        "orchestrator_id": api.orch.id(),
        "postgres": postgres.err().unwrap_or_else(|| "ok".into()),
        "broker": broker.err().unwrap_or_else(|| "ok".into()),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Whether the broker answers a metadata request through the producer's connection.
async fn broker_reachable(orch: &Orchestrator) -> Result<(), String> {
    use rdkafka::producer::Producer;
    let producer = orch.producer().clone();
    tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, Duration::from_secs(2))
            .map(|_| ())
            .map_err(|e| format!("the broker does not answer: {e}"))
    })
    .await
    .map_err(|e| format!("the broker check failed: {e}"))?
}

async fn openapi() -> Json<serde_json::Value> {
    Json(personas_cloud_api::openapi())
}
