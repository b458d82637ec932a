//! `POST /webhooks/{trigger_id}`: signed HTTP calls from outside become bus events.
//!
//! How a request must be signed is [`signature`]. Answers: 404 unknown (or disabled)
//! trigger, 413 body over `webhook_max_body_bytes`, 401 missing, garbled, stale or wrong
//! signature (the error names the header), 409 a replay (the same signature, or the same
//! delivery id, again) or a disabled persona, 503 when the trigger's secret cannot be opened from
//! the vault, 202 `{"event_id": ...}` once the event is durable. Checks run in that order, so an
//! unknown trigger never costs reading a large body and a replay stores nothing. A JSON body is
//! the event's payload as is; anything else becomes `{"raw": <text>, "content_type": ...}`.
//!
//! These routes skip the API token (the signature authenticates the sender) and the Host/Origin
//! checks (see `routes`), because their callers are other machines — often through a tunnel
//! whose public host name is not ours. Nothing here logs a header, a body or the secret.

pub mod signature;

use crate::routes::ServerState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use personas_core::trigger::{SourceKind, TriggerConfig, TriggerType};
use personas_core::{Secret, TriggerId};
use personas_engine::EngineEvent;
use personas_engine::credentials::CredentialError;
use personas_engine::triggers;
use personas_engine::vault::{VaultError, fix_hint};
use personas_store::{Claim, NewEvent, StoreError, TriggerRow};
use serde_json::{Value, json};
pub use signature::{
    DELIVERY_HEADER, GITHUB_DELIVERY_HEADER, GITHUB_SIGNATURE_HEADER, Rejection, SIGNATURE_HEADER,
    Scheme, TIMESTAMP_HEADER, Verified, sign, sign_github, signed_headers, verify,
};

/// The event type a webhook publishes.
pub const WEBHOOK_EVENT: &str = "webhook.received";

/// The event payload of a request body: JSON as is, anything else as text with its type.
pub fn payload(body: &[u8], content_type: Option<&str>) -> Value {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => v,
        Err(_) => json!({
            "raw": String::from_utf8_lossy(body),
            "content_type": content_type,
        }),
    }
}

fn not_found(id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no enabled webhook trigger {id}"),
    )
}

fn too_large(limit: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than the {limit} bytes a webhook may send"),
    )
}

pub async fn receive(
    State(s): State<ServerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let store = s.engine.store().clone();
    let lookup = {
        let id = TriggerId::from_string(id.clone());
        tokio::task::spawn_blocking(move || {
            let t = store.triggers().get(&id)?;
            let persona = store.personas().get(&t.persona_id)?;
            Ok::<_, StoreError>((t, persona.enabled))
        })
        .await
    };
    let (trigger, persona_enabled) = match lookup {
        Ok(Ok(found)) => found,
        Ok(Err(StoreError::NotFound { .. })) => return not_found(&id),
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    let scheme = match trigger.config {
        TriggerConfig::Webhook { github: true } => Scheme::GitHub,
        TriggerConfig::Webhook { github: false } => Scheme::Personas,
        _ => return not_found(&id),
    };
    if trigger.kind != TriggerType::Webhook || !trigger.enabled {
        return not_found(&id);
    }
    let limit = s.engine.config().webhook_max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return too_large(limit);
    };
    let secret = match open_secret(&s, &trigger).await {
        Ok(secret) => secret,
        Err(answer) => return answer,
    };
    let now = chrono::Utc::now().timestamp();
    let verified = match verify(scheme, secret.expose(), &headers, &bytes, now) {
        Ok(v) => v,
        Err(rejection) => return rejected(&rejection),
    };
    drop(secret);
    if !persona_enabled {
        return error(
            StatusCode::CONFLICT,
            "persona_disabled",
            format!(
                "persona {} is disabled; enable it to accept webhooks",
                trigger.persona_name
            ),
        );
    }
    let claim = {
        let store = s.engine.store().clone();
        let (id, key) = (trigger.id.clone(), verified.delivery_key.clone());
        tokio::task::spawn_blocking(move || {
            store
                .webhooks()
                .claim_delivery(&id, &key, verified.expires_at_ms)
        })
        .await
    };
    match claim {
        Ok(Ok(Claim::New)) => {}
        Ok(Ok(Claim::Replayed)) => return replayed(),
        Ok(Err(e)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut event = NewEvent::new(
        WEBHOOK_EVENT,
        SourceKind::Webhook,
        payload(&bytes, content_type),
    );
    event.source_id = Some(trigger.id.to_string());
    event.target_persona_id = Some(trigger.persona_id.clone());
    event.trigger_id = Some(trigger.id.clone());
    // Kept with the event for good: a delivery id (or signature) published once is never
    // published again, even after its row above is pruned.
    event.dedupe_key = Some(format!(
        "webhook:{}:{}",
        trigger.id,
        verified
            .delivery_id
            .as_deref()
            .unwrap_or(&verified.delivery_key)
    ));
    match s.engine.publish_once(event).await {
        Ok((row, true)) => {
            s.engine.bus().send(EngineEvent::TriggerFired {
                trigger_id: trigger.id.clone(),
                persona_id: trigger.persona_id.clone(),
                kind: TriggerType::Webhook,
                event_id: row.id.clone(),
            });
            (StatusCode::ACCEPTED, Json(json!({"event_id": row.id}))).into_response()
        }
        Ok((_, false)) => replayed(),
        Err(e) => {
            // Not stored: the sender's retry of this very request must not count as a replay.
            let store = s.engine.store().clone();
            let (id, key) = (trigger.id.clone(), verified.delivery_key);
            let _ =
                tokio::task::spawn_blocking(move || store.webhooks().release_delivery(&id, &key))
                    .await;
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        }
    }
}

/// The trigger's secret from the vault (unlocked once per process; unlocked again when another
/// process rotated it). Every failure is a 503 that says how to fix it, never the secret.
async fn open_secret(s: &ServerState, trigger: &TriggerRow) -> Result<Secret, Response> {
    let store = s.engine.store().clone();
    let cell = std::sync::Arc::clone(s.engine.vault());
    let t = trigger.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let attempt = || triggers::open_secret(&store, &t, &mut || cell.get(&store));
        match attempt() {
            Err(CredentialError::Vault(VaultError::Stale)) => {
                cell.invalidate();
                attempt()
            }
            other => other,
        }
    })
    .await;
    let unavailable = |message: String| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "secret_unavailable",
            message,
        )
    };
    match opened {
        Ok(Ok(Some(secret))) => Ok(secret),
        Ok(Ok(None)) => Err(unavailable(format!(
            "the secret of webhook trigger {} is not in the vault yet (it dates from an older \
             version); restart `personas up` with the vault available, or rotate the secret",
            trigger.id
        ))),
        Ok(Err(CredentialError::Vault(v))) => {
            tracing::warn!(trigger = %trigger.id, error = %v, "cannot open a webhook secret");
            Err(unavailable(match fix_hint(&v) {
                Some(h) => format!("the vault cannot be opened: {v}. To fix it: {h}"),
                None => format!("the vault cannot be opened: {v}"),
            }))
        }
        Ok(Err(e)) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )),
    }
}

fn rejected(r: &Rejection) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"code": r.code(), "message": r.to_string(), "field": r.header()})),
    )
        .into_response()
}

fn replayed() -> Response {
    error(
        StatusCode::CONFLICT,
        "replayed",
        "this delivery was received before (same signature or delivery id); sign each new \
         request with the current time, and send a delivery only once",
    )
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"code": code, "message": message.into()})),
    )
        .into_response()
}
