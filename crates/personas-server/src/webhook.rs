//! `POST /webhooks/{trigger_id}`: signed HTTP calls from outside become bus events.
//!
//! The sender signs the raw body with the trigger's secret (the key is the secret string's
//! bytes): `X-Personas-Signature: sha256=<hex of HMAC-SHA256(secret, body)>`. Answers:
//! 404 unknown (or disabled) trigger, 413 body over `webhook_max_body_bytes`, 401 missing or bad
//! signature, 202 `{"event_id": ...}` once the event is durable. Checks run in that order, so an
//! unknown trigger never costs reading a large body. A JSON body is the event's payload as is;
//! anything else becomes `{"raw": <text>, "content_type": ...}`. An optional
//! `X-Personas-Delivery` header makes a sender's retries idempotent (same id → same event).
//!
//! These routes skip the API token (the signature authenticates the sender) and the Host/Origin
//! checks (see `routes`), because their callers are other machines — often through a tunnel
//! whose public host name is not ours.

use crate::routes::ServerState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, KeyInit, Mac};
use personas_core::TriggerId;
use personas_core::trigger::{SourceKind, TriggerType};
use personas_engine::EngineEvent;
use personas_store::{NewEvent, StoreError};
use serde_json::{Value, json};
use sha2::Sha256;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-personas-signature";
/// The optional delivery-id header (idempotent retries).
pub const DELIVERY_HEADER: &str = "x-personas-delivery";
/// The event type a webhook publishes.
pub const WEBHOOK_EVENT: &str = "webhook.received";
/// Longest delivery id kept.
const MAX_DELIVERY_ID: usize = 200;

type HmacSha256 = Hmac<Sha256>;

/// The `X-Personas-Signature` value for `body` under `secret`: `sha256=<hex>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    let code = mac.finalize().into_bytes();
    let hex: String = code.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// True when `header` is a valid signature of `body` under `secret` (compared in constant time).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
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
    let Some(secret) = trigger.secret.clone() else {
        return not_found(&id);
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
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !verify(secret.expose(), &bytes, signature) {
        return error(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            format!(
                "missing or wrong {SIGNATURE_HEADER} header; expected sha256=<hex of HMAC-SHA256(secret, raw body)>"
            ),
        );
    }
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
    let payload = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => v,
        Err(_) => json!({
            "raw": String::from_utf8_lossy(&bytes),
            "content_type": headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        }),
    };
    let mut event = NewEvent::new(WEBHOOK_EVENT, SourceKind::Webhook, payload);
    event.source_id = Some(trigger.id.to_string());
    event.target_persona_id = Some(trigger.persona_id.clone());
    event.trigger_id = Some(trigger.id.clone());
    event.dedupe_key = headers
        .get(DELIVERY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_DELIVERY_ID)
        .map(|v| format!("webhook:{}:{v}", trigger.id));
    match s.engine.publish(event).await {
        Ok(row) => {
            s.engine.bus().send(EngineEvent::TriggerFired {
                trigger_id: trigger.id.clone(),
                persona_id: trigger.persona_id.clone(),
                kind: TriggerType::Webhook,
                event_id: row.id.clone(),
            });
            (StatusCode::ACCEPTED, Json(json!({"event_id": row.id}))).into_response()
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"code": code, "message": message.into()})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let sig = sign("s3cret", b"{\"a\":1}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert!(verify("s3cret", b"{\"a\":1}", &sig));
        assert!(!verify("s3cret", b"{\"a\":2}", &sig), "other body");
        assert!(!verify("other", b"{\"a\":1}", &sig), "other secret");
        assert!(
            !verify("s3cret", b"{\"a\":1}", &sig[7..]),
            "no sha256= prefix"
        );
        assert!(!verify("s3cret", b"{\"a\":1}", "sha256=zz"), "not hex");
        assert!(!verify("s3cret", b"{\"a\":1}", ""));
    }

    #[test]
    fn a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
