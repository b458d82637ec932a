//! The durable event bus: publishing, the dispatcher's claim → deliver cycle, lease reaping,
//! retries and dead letters, delivery history, and chain events.
//!
//! Exactly one execution per (event, recipient), even across crashes, comes from three parts:
//! - **Leases.** [`BusRepo::claim`] flips due events to `processing` under the caller's owner tag
//!   with a lease deadline, in one `BEGIN IMMEDIATE` transaction.
//! - **One delivery transaction.** [`BusRepo::deliver`] re-checks the lease, enqueues every
//!   execution, records every delivery and settles the event's status in a single transaction:
//!   a crash before its commit leaves nothing behind but the lease, which
//!   [`BusRepo::reap_leases`] hands back to the queue.
//! - **Idempotency keys.** Each execution carries `ev:<event>:<recipient>`; delivering the same
//!   event again (a retry, a reaped lease whose first owner was only slow) finds the execution it
//!   already created instead of making a second one.
//!
//! This module holds publishing, reading and retrying; `dispatch` the claim/deliver/reap cycle;
//! `chain` the events chain triggers publish when an execution ends.

mod chain;
mod dispatch;

use crate::error::{enum_at, json_col, opt_enum_at};
use crate::lookup::Lookup;
use crate::protocol::{opt_exec, opt_persona};
use crate::time::{from_ms, now_ms};
use crate::{Store, StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::trigger::SourceKind;
use personas_core::{
    EventDeliveryStatus, EventStatus, Execution, ExecutionId, PersonaId, TriggerId, TriggerKind,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// A bus event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub source_kind: SourceKind,
    pub source_id: Option<String>,
    pub source_execution_id: Option<ExecutionId>,
    pub target_persona_id: Option<PersonaId>,
    pub payload: Value,
    pub status: EventStatus,
    pub attempts: u32,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The trigger that fired it (cron, webhook, chain, watcher), if any.
    pub trigger_id: Option<String>,
    /// How many executions led to it (0 for events from people, schedules and webhooks).
    pub depth: u32,
    /// When a failed delivery is tried again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it reached a final status (delivered, skipped, dead_letter).
    pub processed_at: Option<DateTime<Utc>>,
}

pub(crate) const EVENT_COLUMNS: &str = "id, event_type, source_kind, source_id, \
    source_execution_id, target_persona_id, payload, status, attempts, error, created_at, \
    trigger_id, depth, next_attempt_at, processed_at";

pub(crate) fn row_to_event(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    let payload: String = r.get(6)?;
    Ok(EventRow {
        id: r.get(0)?,
        event_type: r.get(1)?,
        source_kind: enum_at(r, 2, "events.source_kind")?,
        source_id: r.get(3)?,
        source_execution_id: opt_exec(r.get(4)?),
        target_persona_id: opt_persona(r.get(5)?),
        payload: json_col("payload", &payload)?,
        status: enum_at(r, 7, "events.status")?,
        attempts: r.get(8)?,
        error: r.get(9)?,
        created_at: from_ms(r.get(10)?),
        trigger_id: r.get(11)?,
        depth: r.get(12)?,
        next_attempt_at: r.get::<_, Option<i64>>(13)?.map(from_ms),
        processed_at: r.get::<_, Option<i64>>(14)?.map(from_ms),
    })
}

pub struct BusRepo<'s> {
    store: &'s Store,
}

/// An event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub source_kind: SourceKind,
    /// The persona, trigger or user the event came from.
    pub source_id: Option<String>,
    /// The execution whose output emitted it (its depth follows from that execution's event).
    pub source_execution_id: Option<ExecutionId>,
    /// Addressed to one persona only (persona_action, triggers, chains); else subscriptions.
    pub target_persona_id: Option<PersonaId>,
    pub trigger_id: Option<TriggerId>,
    pub payload: Value,
    /// Publishing a key that was published before returns that earlier event instead.
    pub dedupe_key: Option<String>,
}

impl NewEvent {
    pub fn new(event_type: impl Into<String>, source_kind: SourceKind, payload: Value) -> Self {
        Self {
            event_type: event_type.into(),
            source_kind,
            source_id: None,
            source_execution_id: None,
            target_persona_id: None,
            trigger_id: None,
            payload,
            dedupe_key: None,
        }
    }
}

/// One recipient of an event, as the dispatcher matched it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    /// The subscription's trigger id, or [`TARGETED`] for an addressed event.
    pub target: String,
    pub persona_id: PersonaId,
    /// What the execution is recorded as started by.
    pub trigger: TriggerKind,
}

/// [`Recipient::target`] of an event addressed to one persona.
pub const TARGETED: &str = "target";

/// What the dispatcher decided for one claimed event.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Deliver(Vec<Recipient>),
    /// Nothing to run, with the reason recorded on the event (no subscriber, depth limit).
    Skip(String),
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts (deliveries and expired leases) before an event is dead-lettered.
    pub max_attempts: u32,
    /// Wait before the 2nd attempt; doubled for each further one.
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// The wait after attempt number `attempts` (1-based) failed.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// What delivering one event did.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The event as stored afterwards.
    pub event: EventRow,
    /// Executions of this event (created now or by an earlier attempt).
    pub executions: Vec<ExecutionId>,
    /// The executions created by this delivery.
    pub created: Vec<Execution>,
}

/// A recorded delivery of an event to one recipient: who got it, and the execution it made.
/// Exported as `EventDeliveryRow` (the notification outbox has its own `DeliveryRow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    ts(rename = "EventDeliveryRow"),
    schemars(rename = "EventDeliveryRow")
)]
pub struct DeliveryRow {
    pub event_id: String,
    pub target: String,
    pub persona_id: Option<PersonaId>,
    pub persona_name: String,
    pub execution_id: Option<ExecutionId>,
    pub status: EventDeliveryStatus,
    pub error: Option<String>,
    pub attempt: u32,
    pub created_at: DateTime<Utc>,
}

/// An event subscription as the matcher needs it (live ones only: trigger and persona enabled).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub trigger_id: String,
    pub persona_id: PersonaId,
    pub pattern: String,
    /// Normalised type, or prefix for a `*` pattern.
    pub match_key: String,
    pub is_prefix: bool,
    pub source_kind: Option<SourceKind>,
    pub source_id: Option<String>,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub event_type: Option<String>,
    /// Only events from this kind of source.
    pub source_kind: Option<SourceKind>,
    pub limit: Option<u32>,
}

const DELIVERY_COLUMNS: &str = "event_id, target, persona_id, persona_name, execution_id, \
    status, error, attempt, created_at";

fn row_to_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        event_id: r.get(0)?,
        target: r.get(1)?,
        persona_id: r.get::<_, Option<String>>(2)?.map(PersonaId::from_string),
        persona_name: r.get(3)?,
        execution_id: r.get::<_, Option<String>>(4)?.map(ExecutionId::from_string),
        status: enum_at(r, 5, "event_deliveries.status")?,
        error: r.get(6)?,
        attempt: r.get(7)?,
        created_at: from_ms(r.get(8)?),
    })
}

fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Inserts an event inside the caller's transaction. Returns its id and whether it is new (a
/// known dedupe key returns the earlier event's id).
pub(crate) fn insert_event_in(
    tx: &Connection,
    ev: &NewEvent,
    now: i64,
) -> Result<(String, bool), StoreError> {
    let (id, depth) = insert_event_depth(tx, ev, now)?;
    Ok((id, depth.is_some()))
}

/// Like [`insert_event_in`], returning the new event's depth (`None` when the dedupe key was
/// known and the earlier event's id is returned).
fn insert_event_depth(
    tx: &Connection,
    ev: &NewEvent,
    now: i64,
) -> Result<(String, Option<u32>), StoreError> {
    let id = new_event_id();
    let depth: Option<u32> = tx
        .prepare_cached(
            "INSERT INTO events (id, event_type, source_kind, source_id, source_execution_id,
                target_persona_id, payload, trigger_id, dedupe_key, depth, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                CASE WHEN ?5 IS NULL THEN 0 ELSE 1 + COALESCE(
                    (SELECT e.depth FROM executions x JOIN events e ON e.id = x.trigger_ref
                     WHERE x.id = ?5), 0) END,
                ?10, ?10)
             ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
             RETURNING depth",
        )?
        .query_row(
            params![
                id,
                ev.event_type,
                ev.source_kind.as_str(),
                ev.source_id,
                ev.source_execution_id.as_ref().map(|e| e.as_str()),
                ev.target_persona_id.as_ref().map(|p| p.as_str()),
                ev.payload.to_string(),
                ev.trigger_id.as_ref().map(|t| t.as_str()),
                ev.dedupe_key,
                now
            ],
            |r| r.get(0),
        )
        .optional()?;
    if depth.is_none() {
        let existing: String = tx
            .prepare_cached("SELECT id FROM events WHERE dedupe_key = ?1")?
            .query_row([&ev.dedupe_key], |r| r.get(0))?;
        return Ok((existing, None));
    }
    if let Some(trigger) = &ev.trigger_id {
        tx.prepare_cached(
            "UPDATE triggers SET last_fired_at = ?2, fire_count = fire_count + 1 WHERE id = ?1",
        )?
        .execute(params![trigger.as_str(), now])?;
    }
    Ok((id, depth))
}

pub(crate) fn get_event_in(conn: &Connection, id: &str) -> Result<Option<EventRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))?
        .query_row([id], row_to_event)
        .optional()?)
}

impl<'s> BusRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Publishes one event; durable when this returns. The flag is false when the dedupe key
    /// was already published (the earlier event is returned).
    pub fn publish(&self, event: &NewEvent) -> Result<(EventRow, bool), StoreError> {
        let mut out = self.publish_batch(std::slice::from_ref(event))?;
        out.pop()
            .ok_or_else(|| StoreError::Corrupt("publishing returned no event".into()))
    }

    /// Publishes many events in one transaction (one disk sync for all): group commit for
    /// busy publishers. In input order.
    pub fn publish_batch(&self, events: &[NewEvent]) -> Result<Vec<(EventRow, bool)>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let now = now_ms();
            let mut out = Vec::with_capacity(events.len());
            for ev in events {
                let (id, depth) = insert_event_depth(tx, ev, now)?;
                let row = match depth {
                    // Built from what was just written: publishing is the bus's hot path.
                    Some(depth) => EventRow {
                        id,
                        event_type: ev.event_type.clone(),
                        source_kind: ev.source_kind,
                        source_id: ev.source_id.clone(),
                        source_execution_id: ev.source_execution_id.clone(),
                        target_persona_id: ev.target_persona_id.clone(),
                        payload: ev.payload.clone(),
                        status: EventStatus::Pending,
                        attempts: 0,
                        error: None,
                        created_at: from_ms(now),
                        trigger_id: ev.trigger_id.as_ref().map(|t| t.to_string()),
                        depth,
                        next_attempt_at: None,
                        processed_at: None,
                    },
                    None => get_event_in(tx, &id)?
                        .ok_or_else(|| StoreError::not_found("event", id.clone()))?,
                };
                out.push((row, depth.is_some()));
            }
            Ok(out)
        })
    }

    pub fn get(&self, id: &str) -> Result<EventRow, StoreError> {
        let conn = self.store.conn()?;
        get_event_in(&conn, id)?.ok_or_else(|| StoreError::not_found("event", id))
    }

    /// Looks an event up by its id or a unique prefix of it (at least 4 characters).
    pub fn find(&self, id_or_prefix: &str) -> Result<EventRow, StoreError> {
        let conn = self.store.conn()?;
        Lookup {
            what: "event",
            select: &format!("SELECT {EVENT_COLUMNS} FROM events"),
            id_column: "id",
        }
        .find(&conn, id_or_prefix, row_to_event)
    }

    /// Newest first.
    pub fn list(&self, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR event_type = ?2)
                AND (?3 IS NULL OR source_kind = ?3)
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![
                filter.status.map(EventStatus::as_str),
                filter.event_type,
                filter.source_kind.map(SourceKind::as_str),
                filter.limit.unwrap_or(50)
            ],
            row_to_event,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deliveries of many events at once (one query, for listings), keyed by event id; an
    /// event without deliveries has no entry.
    pub fn deliveries_of(
        &self,
        event_ids: &[&str],
    ) -> Result<HashMap<String, Vec<DeliveryRow>>, StoreError> {
        let mut out: HashMap<String, Vec<DeliveryRow>> = HashMap::new();
        if event_ids.is_empty() {
            return Ok(out);
        }
        let conn = self.store.conn()?;
        // SQLite binds at most 32 766 parameters; listings are far smaller, but chunk anyway.
        for chunk in event_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut stmt = conn.prepare(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM event_deliveries WHERE event_id IN ({marks})
                 ORDER BY created_at, target"
            ))?;
            let rows = stmt.query_map(rusqlite::params_from_iter(chunk.iter()), row_to_delivery)?;
            for row in rows {
                let row = row?;
                out.entry(row.event_id.clone()).or_default().push(row);
            }
        }
        Ok(out)
    }

    /// Deliveries of an event, in the order they were first made.
    pub fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM event_deliveries WHERE event_id = ?1
             ORDER BY created_at, target"
        ))?;
        let rows = stmt.query_map([event_id], row_to_delivery)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of events in a status.
    pub fn count(&self, status: EventStatus) -> Result<u64, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM events WHERE status = ?1",
            [status.as_str()],
            |r| r.get(0),
        )?)
    }

    /// A change counter (`subscriptions` or `triggers`) that moves whenever what it covers is
    /// changed, by any process.
    pub fn version(&self, name: &str) -> Result<i64, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn
            .prepare_cached("SELECT version FROM bus_state WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// Live subscriptions: enabled event triggers of enabled personas.
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT s.trigger_id, s.persona_id, s.pattern, s.match_key, s.is_prefix,
                    s.source_kind, s.source_id
             FROM subscriptions s
             JOIN triggers t ON t.id = s.trigger_id
             JOIN personas p ON p.id = s.persona_id
             WHERE t.enabled = 1 AND p.enabled = 1
             ORDER BY s.trigger_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SubscriptionRow {
                trigger_id: r.get(0)?,
                persona_id: PersonaId::from_string(r.get::<_, String>(1)?),
                pattern: r.get(2)?,
                match_key: r.get(3)?,
                is_prefix: r.get(4)?,
                source_kind: opt_enum_at(r, 5, "subscriptions.source_kind")?,
                source_id: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Puts a dead-lettered, failed or skipped event back in the queue with fresh attempts.
    /// Deliveries it already made are kept and not repeated.
    pub fn retry(&self, id_or_prefix: &str) -> Result<EventRow, StoreError> {
        let event = self.find(id_or_prefix)?;
        if !matches!(
            event.status,
            EventStatus::DeadLetter | EventStatus::Failed | EventStatus::Skipped
        ) {
            return Err(StoreError::conflict(
                "event",
                format!(
                    "event {} is {}; only dead_letter, failed or skipped events can be retried",
                    event.id, event.status
                ),
            ));
        }
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let changed = tx.execute(
                "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = NULL,
                    processed_at = NULL, error = NULL, updated_at = ?2
                 WHERE id = ?1 AND status IN ('dead_letter', 'failed', 'skipped')",
                params![event.id, now_ms()],
            )?;
            if changed == 0 {
                return Err(StoreError::conflict(
                    "event",
                    format!("event {} changed meanwhile; look again", event.id),
                ));
            }
            get_event_in(tx, &event.id)?.ok_or_else(|| StoreError::not_found("event", &event.id))
        })
    }

    /// The personas that led to an event, oldest first: the chain of executions whose output
    /// (or end) published it. Bounded by `max` steps.
    pub fn causal_path(&self, event: &EventRow, max: usize) -> Result<Vec<String>, StoreError> {
        let conn = self.store.conn()?;
        let mut names = Vec::new();
        let mut exec = event.source_execution_id.as_ref().map(|e| e.to_string());
        while let Some(id) = exec.take() {
            if names.len() >= max {
                names.push("…".to_string());
                break;
            }
            let row: Option<(String, Option<String>)> = conn
                .prepare_cached("SELECT persona_name, trigger_ref FROM executions WHERE id = ?1")?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((name, trigger_ref)) = row else {
                break;
            };
            names.push(name);
            if let Some(r) = trigger_ref {
                exec = conn
                    .prepare_cached("SELECT source_execution_id FROM events WHERE id = ?1")?
                    .query_row([&r], |r| r.get::<_, Option<String>>(0))
                    .optional()?
                    .flatten();
            }
        }
        names.reverse();
        Ok(names)
    }

    /// How a run's prompt describes where its triggering event came from.
    pub fn describe_source(&self, event: &EventRow) -> Result<String, StoreError> {
        let conn = self.store.conn()?;
        let persona_name = |id: Option<&str>| -> Result<String, StoreError> {
            let Some(id) = id else {
                return Ok("an unknown persona".into());
            };
            Ok(conn
                .prepare_cached("SELECT name FROM personas WHERE id = ?1")?
                .query_row([id], |r| r.get::<_, String>(0))
                .optional()?
                .unwrap_or_else(|| id.to_string()))
        };
        let trigger = event.trigger_id.as_deref().unwrap_or("?");
        Ok(match event.source_kind {
            SourceKind::Persona => {
                format!("persona \"{}\"", persona_name(event.source_id.as_deref())?)
            }
            SourceKind::Chain => format!(
                "the end of a run of persona \"{}\" (chain trigger {trigger})",
                persona_name(event.source_id.as_deref())?
            ),
            SourceKind::Webhook => format!("a webhook (trigger {trigger})"),
            SourceKind::Schedule => format!("a schedule (trigger {trigger})"),
            SourceKind::Watcher => format!("a file watcher (trigger {trigger})"),
            SourceKind::User => "a person (personas event emit)".to_string(),
            SourceKind::System => "the system".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        assert_eq!(r.backoff(1), Duration::from_secs(1));
        assert_eq!(r.backoff(2), Duration::from_secs(2));
        assert_eq!(r.backoff(4), Duration::from_secs(8));
        assert_eq!(r.backoff(5), Duration::from_secs(10));
        assert_eq!(r.backoff(60), Duration::from_secs(10));
    }
}
