//! Event operations: `publish_event` and `list_events`.
//!
//! Publishing is one transaction: the event stored idempotently by its id (publishing an id
//! again returns the stored event and starts nothing), a run queued for every enabled event
//! trigger of the tenant subscribed to its type ([`queue::enqueue`], each with an idempotency
//! key naming the event and the trigger), the event counted in the tenant's usage, and a
//! journal entry (`ClientEvent::Event`) with its outbox row for the `events` topic.

use super::Api;
use super::executions::limit;
use crate::auth::Principal;
use crate::orchestrator::db::{self, Transaction};
use crate::orchestrator::journal;
use crate::orchestrator::queue::{self, NewExecution};
use chrono::{DateTime, Utc};
use personas_cloud_api::model::{CloudEvent, CloudEventList, ListEvents, PublishEvent};
use personas_cloud_api::stream::ClientEvent;
use personas_cloud_api::{CloudError, topics};
use personas_core::trigger::{
    EventPattern, SourceFilter, normalize_event_type, validate_event_type,
};
use personas_core::{ExecutionId, TriggerKind};

/// Longest publisher-chosen event id (it is part of the runs' idempotency keys).
const MAX_EVENT_ID_LEN: usize = 80;
const MAX_SOURCE_LEN: usize = 100;
/// The kind of source an event published through the API has, for triggers' source filters.
const API_SOURCE_KIND: &str = "user";

fn check(req: &PublishEvent) -> Result<(), CloudError> {
    validate_event_type(&req.event_type)
        .map_err(|e| CloudError::invalid("event_type", format!("event_type: {}", e.message)))?;
    if let Some(id) = &req.id
        && (id.is_empty() || id.len() > MAX_EVENT_ID_LEN || id.chars().any(char::is_control))
    {
        return Err(CloudError::invalid(
            "id",
            format!("id must be 1 to {MAX_EVENT_ID_LEN} printable characters"),
        ));
    }
    if let Some(s) = &req.source
        && (s.is_empty() || s.len() > MAX_SOURCE_LEN)
    {
        return Err(CloudError::invalid(
            "source",
            format!("source must be 1 to {MAX_SOURCE_LEN} characters"),
        ));
    }
    Ok(())
}

pub async fn publish_event(
    api: &Api,
    who: &Principal,
    req: PublishEvent,
) -> Result<CloudEvent, CloudError> {
    check(&req)?;
    let id = req
        .id
        .clone()
        .unwrap_or_else(|| ExecutionId::new().as_str().to_string());
    let source = req.source.clone().unwrap_or_else(|| "cli".into());
    let mut conn = db::conn(api.orch.db()).await?;
    let tx = db::begin(&mut conn).await?;
    let inserted = db::query_opt(
        &tx,
        "INSERT INTO events (tenant_id, id, event_type, payload, source)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, id) DO NOTHING
             RETURNING created_at",
        &[&who.tenant_id, &id, &req.event_type, &req.payload, &source],
    )
    .await?;
    let Some(row) = inserted else {
        // Published before: the first publication stands, nothing runs twice.
        let event = load_event(&tx, &who.tenant_id, &id).await?;
        tx.commit().await.map_err(db::pg)?;
        return Ok(event);
    };
    let created_at: DateTime<Utc> = row.get(0);
    let executions = start_subscribers(api, &tx, &who.tenant_id, &id, &req).await?;
    let ids = serde_json::to_value(&executions).map_err(|e| CloudError::internal(e.to_string()))?;
    db::execute(
        &tx,
        "UPDATE events SET executions = $3 WHERE tenant_id = $1 AND id = $2",
        &[&who.tenant_id, &id, &ids],
    )
    .await?;
    count_event(&tx, &who.tenant_id, &id).await?;
    let event = CloudEvent {
        id: id.clone(),
        event_type: req.event_type,
        payload: req.payload,
        source,
        created_at,
        executions,
    };
    journal::record(
        &tx,
        &who.tenant_id,
        topics::EVENTS,
        &id,
        vec![ClientEvent::Event {
            event: event.clone(),
        }],
    )
    .await?;
    tx.commit().await.map_err(db::pg)?;
    api.orch.kick_outbox();
    Ok(event)
}

/// Queues a run for each enabled event trigger of the tenant whose pattern (and source filter)
/// matches the event.
async fn start_subscribers(
    api: &Api,
    tx: &Transaction<'_>,
    tenant_id: &str,
    event_id: &str,
    req: &PublishEvent,
) -> Result<Vec<ExecutionId>, CloudError> {
    let normalized = normalize_event_type(&req.event_type);
    // The index finds exact subscriptions; prefix ones are few and checked here.
    let rows = db::query(
        tx,
        "SELECT id, persona_id, config FROM triggers
             WHERE tenant_id = $1 AND kind = 'event' AND enabled
               AND (config->>'event_type' = $2 OR (config->>'event_prefix')::BOOLEAN)
             ORDER BY id",
        &[&tenant_id, &normalized],
    )
    .await?;
    let mut started = Vec::new();
    for r in &rows {
        let trigger_id: String = r.get(0);
        let persona_id: String = r.get(1);
        let config: serde_json::Value = r.get(2);
        let pattern = config.get("pattern").and_then(|p| p.as_str()).unwrap_or("");
        let Ok(pattern) = EventPattern::parse(pattern) else {
            tracing::warn!(trigger_id, "stored event trigger has an invalid pattern");
            continue;
        };
        if !pattern.matches(&normalized) {
            continue;
        }
        let source: Option<SourceFilter> = config
            .get("source")
            .and_then(|s| serde_json::from_value(s.clone()).ok());
        if source.is_some_and(|f| !f.matches(API_SOURCE_KIND, None)) {
            continue;
        }
        let execution = queue::enqueue(
            tx,
            NewExecution {
                tenant_id,
                persona: &persona_id,
                input: req.payload.clone(),
                trigger: TriggerKind::Event,
                trigger_ref: Some(event_id.to_string()),
                idempotency_key: Some(format!("event:{event_id}:{trigger_id}")),
                max_attempts: api.orch.settings().max_attempts,
            },
        )
        .await?;
        started.push(execution.execution.id);
    }
    Ok(started)
}

/// Counts the event in the tenant's month once.
async fn count_event(tx: &Transaction<'_>, tenant_id: &str, id: &str) -> Result<(), CloudError> {
    let first = db::execute(
        tx,
        "INSERT INTO usage_counted (tenant_id, kind, ref_id) VALUES ($1, 'event', $2)
             ON CONFLICT DO NOTHING",
        &[&tenant_id, &id],
    )
    .await?;
    if first == 1 {
        db::execute(
            tx,
            "INSERT INTO usage (tenant_id, month, events)
             VALUES ($1, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'), 1)
             ON CONFLICT (tenant_id, month) DO UPDATE SET events = usage.events + 1",
            &[&tenant_id],
        )
        .await?;
    }
    Ok(())
}

const EVENT_COLUMNS: &str = "id, event_type, payload, source, created_at, executions";

fn event_from_row(r: &tokio_postgres::Row) -> Result<CloudEvent, CloudError> {
    Ok(CloudEvent {
        id: r.get(0),
        event_type: r.get(1),
        payload: r.get(2),
        source: r.get(3),
        created_at: r.get(4),
        executions: db::json(r.get(5), "event's executions")?,
    })
}

async fn load_event(
    tx: &Transaction<'_>,
    tenant_id: &str,
    id: &str,
) -> Result<CloudEvent, CloudError> {
    let row = db::query_one(
        tx,
        &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"),
        &[&tenant_id, &id],
    )
    .await?;
    event_from_row(&row)
}

pub async fn list_events(
    api: &Api,
    who: &Principal,
    req: ListEvents,
) -> Result<CloudEventList, CloudError> {
    let limit = limit("limit", req.limit, 50, 500)?;
    if let Some(t) = &req.event_type {
        validate_event_type(t)
            .map_err(|e| CloudError::invalid("event_type", format!("event_type: {}", e.message)))?;
    }
    let conn = db::conn(api.orch.db()).await?;
    let rows = db::query(
        &conn,
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events
                 WHERE tenant_id = $1 AND ($2::TEXT IS NULL OR event_type = $2)
                 ORDER BY created_at DESC, id DESC LIMIT $3"
        ),
        &[&who.tenant_id, &req.event_type, &limit],
    )
    .await?;
    Ok(CloudEventList {
        events: rows.iter().map(event_from_row).collect::<Result<_, _>>()?,
    })
}
