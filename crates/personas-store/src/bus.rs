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

use crate::error::json_col;
use crate::executions::{QueueTarget, enqueue_for, queue_target};
use crate::protocol::{EVENT_COLUMNS, EventRow, row_to_event};
use crate::time::{from_ms, now_ms};
use crate::{NewExecution, Store, StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::trigger::{ChainOn, SourceKind, TriggerConfig};
use personas_core::{Execution, ExecutionId, PersonaId, TriggerId, TriggerKind};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

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

/// A recorded delivery of an event to one recipient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    pub event_id: String,
    pub target: String,
    pub persona_id: Option<PersonaId>,
    pub persona_name: String,
    pub execution_id: Option<ExecutionId>,
    pub status: String,
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
    pub source_kind: Option<String>,
    pub source_id: Option<String>,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<String>,
    pub event_type: Option<String>,
    pub limit: Option<u32>,
}

/// Statuses an event can have.
pub const EVENT_STATUSES: [&str; 6] = [
    "pending",
    "processing",
    "delivered",
    "skipped",
    "failed",
    "dead_letter",
];

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
                        source_kind: ev.source_kind.as_str().to_string(),
                        source_id: ev.source_id.clone(),
                        source_execution_id: ev.source_execution_id.clone(),
                        target_persona_id: ev.target_persona_id.clone(),
                        payload: ev.payload.clone(),
                        status: "pending".into(),
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
        if let Some(e) = get_event_in(&conn, id_or_prefix)? {
            return Ok(e);
        }
        if id_or_prefix.len() < 4
            || !id_or_prefix
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            return Err(StoreError::not_found("event", id_or_prefix));
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id >= ?1 AND id < ?1 || 'g' ORDER BY id LIMIT 2"
        ))?;
        let mut found: Vec<EventRow> = stmt
            .query_map([id_or_prefix.to_ascii_lowercase()], row_to_event)?
            .collect::<Result<_, _>>()?;
        match found.len() {
            0 => Err(StoreError::not_found("event", id_or_prefix)),
            1 => Ok(found.remove(0)),
            _ => Err(StoreError::conflict(
                "event",
                format!("{id_or_prefix:?} matches more than one event; give more of the id"),
            )),
        }
    }

    /// Newest first.
    pub fn list(&self, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        if let Some(s) = &filter.status
            && !EVENT_STATUSES.contains(&s.as_str())
        {
            return Err(StoreError::conflict(
                "status",
                format!(
                    "unknown event status {s:?}; expected one of: {}",
                    EVENT_STATUSES.join(", ")
                ),
            ));
        }
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR event_type = ?2)
             ORDER BY created_at DESC, id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![filter.status, filter.event_type, filter.limit.unwrap_or(50)],
            row_to_event,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deliveries of an event, in the order they were first made.
    pub fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT event_id, target, persona_id, persona_name, execution_id, status, error,
                    attempt, created_at
             FROM event_deliveries WHERE event_id = ?1 ORDER BY created_at, target",
        )?;
        let rows = stmt.query_map([event_id], |r| {
            Ok(DeliveryRow {
                event_id: r.get(0)?,
                target: r.get(1)?,
                persona_id: r.get::<_, Option<String>>(2)?.map(PersonaId::from_string),
                persona_name: r.get(3)?,
                execution_id: r.get::<_, Option<String>>(4)?.map(ExecutionId::from_string),
                status: r.get(5)?,
                error: r.get(6)?,
                attempt: r.get(7)?,
                created_at: from_ms(r.get(8)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of events in a status.
    pub fn count(&self, status: &str) -> Result<u64, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM events WHERE status = ?1",
            [status],
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
                source_kind: r.get(5)?,
                source_id: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Takes up to `limit` due events (new ones first, oldest first; then failed ones whose
    /// retry time has come) for `owner`, leased for `lease`. Each claim counts as an attempt.
    pub fn claim(
        &self,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        let mut conn = self.store.conn()?;
        // A claim need not reach the disk: lost to a power cut, its events are simply pending
        // again (and the delivery that follows syncs the log, claim included). Skipping the
        // sync here takes one of three disk syncs off every event's way to its execution.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let claimed = write_tx(&mut conn, |tx| {
            let now = now_ms();
            let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
            let mut claimed: Vec<EventRow> = tx
                .prepare_cached(&format!(
                    // Pending events never carry a retry time, so the `events_pending` index
                    // (status, next_attempt_at, created_at) yields them already in order: no
                    // sort of the whole backlog per claim.
                    "UPDATE events SET status = 'processing', lease_owner = ?1, lease_until = ?2,
                        attempts = attempts + 1, updated_at = ?3
                     WHERE id IN (SELECT id FROM events
                                  WHERE status = 'pending' AND next_attempt_at IS NULL
                                  ORDER BY created_at LIMIT ?4)
                     RETURNING {EVENT_COLUMNS}"
                ))?
                .query_map(params![owner, until, now, limit], row_to_event)?
                .collect::<Result<_, _>>()?;
            let room = limit.saturating_sub(claimed.len() as u32);
            if room > 0 {
                let retries: Vec<EventRow> = tx
                    .prepare_cached(&format!(
                        "UPDATE events SET status = 'processing', lease_owner = ?1, lease_until = ?2,
                            attempts = attempts + 1, updated_at = ?3, next_attempt_at = NULL
                         WHERE id IN (SELECT id FROM events WHERE status = 'failed'
                                        AND next_attempt_at <= ?3
                                      ORDER BY next_attempt_at LIMIT ?4)
                         RETURNING {EVENT_COLUMNS}"
                    ))?
                    .query_map(params![owner, until, now, room], row_to_event)?
                    .collect::<Result<_, _>>()?;
                claimed.extend(retries);
            }
            // RETURNING gives no order; deliver in publication order.
            claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok(claimed)
        });
        // The connection goes back to the pool: restore its normal durability either way.
        let restored = conn.pragma_update(None, "synchronous", self.store.synchronous());
        let claimed = claimed?;
        restored?;
        Ok(claimed)
    }

    /// Carries out the dispatcher's decisions for events it holds the lease on, all in one
    /// transaction. Events whose lease was lost meanwhile are left alone (not in the result).
    pub fn deliver(
        &self,
        owner: &str,
        decisions: &[(EventRow, Decision)],
        retry: RetryPolicy,
    ) -> Result<Vec<Delivered>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let now = now_ms();
            let mut out = Vec::with_capacity(decisions.len());
            let mut personas: HashMap<PersonaId, Option<QueueTarget>> = HashMap::new();
            // What this owner still holds (a lease may have been reaped meanwhile), read once.
            let held: std::collections::HashSet<String> = tx
                .prepare_cached(
                    "SELECT id FROM events WHERE status = 'processing' AND lease_owner = ?1",
                )?
                .query_map([owner], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for (event, decision) in decisions {
                if !held.contains(&event.id) {
                    continue;
                }
                out.push(deliver_one(tx, event, decision, retry, now, &mut personas)?);
            }
            Ok(out)
        })
    }

    /// Gives events back after a delivery transaction failed as a whole: each is retried after
    /// its backoff, or dead-lettered when out of attempts.
    pub fn release(
        &self,
        owner: &str,
        events: &[EventRow],
        error: &str,
        retry: RetryPolicy,
    ) -> Result<Vec<EventRow>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let now = now_ms();
            let mut out = Vec::new();
            for e in events {
                if let Some(row) =
                    settle_failed(tx, &e.id, e.attempts, error, retry, now, Some(owner))?
                {
                    out.push(row);
                }
            }
            Ok(out)
        })
    }

    /// Hands back events whose lease expired or whose owner is gone (`owner_alive` says no):
    /// to `pending` again, or to `dead_letter` once they have used up their attempts. Returns
    /// the events as they are now.
    pub fn reap_leases(
        &self,
        owner_alive: &dyn Fn(&str) -> bool,
        max_attempts: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let now = now_ms();
            let stuck: Vec<(String, Option<String>, Option<i64>, u32)> = tx
                .prepare_cached(
                    "SELECT id, lease_owner, lease_until, attempts FROM events
                     WHERE status = 'processing'",
                )?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::new();
            for (id, owner, until, attempts) in stuck {
                let expired = until.is_none_or(|u| u < now);
                let orphaned = !owner.as_deref().is_some_and(owner_alive);
                if !expired && !orphaned {
                    continue;
                }
                let who = owner.unwrap_or_else(|| "nobody".into());
                if attempts >= max_attempts {
                    tx.execute(
                        "UPDATE events SET status = 'dead_letter', lease_owner = NULL,
                            lease_until = NULL, next_attempt_at = NULL, processed_at = ?2,
                            updated_at = ?2, error = ?3 WHERE id = ?1",
                        params![
                            id,
                            now,
                            format!("the dispatcher holding it ({who}) stopped {attempts} time(s) while delivering it")
                        ],
                    )?;
                } else {
                    tx.execute(
                        "UPDATE events SET status = 'pending', lease_owner = NULL,
                            lease_until = NULL, next_attempt_at = NULL, updated_at = ?2
                         WHERE id = ?1",
                        params![id, now],
                    )?;
                }
                if let Some(row) = get_event_in(tx, &id)? {
                    out.push(row);
                }
            }
            Ok(out)
        })
    }

    /// Puts a dead-lettered, failed or skipped event back in the queue with fresh attempts.
    /// Deliveries it already made are kept and not repeated.
    pub fn retry(&self, id_or_prefix: &str) -> Result<EventRow, StoreError> {
        let event = self.find(id_or_prefix)?;
        if !matches!(event.status.as_str(), "dead_letter" | "failed" | "skipped") {
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
        Ok(match event.source_kind.as_str() {
            "persona" => format!("persona \"{}\"", persona_name(event.source_id.as_deref())?),
            "chain" => format!(
                "the end of a run of persona \"{}\" (chain trigger {trigger})",
                persona_name(event.source_id.as_deref())?
            ),
            "webhook" => format!("a webhook (trigger {trigger})"),
            "schedule" => format!("a schedule (trigger {trigger})"),
            "watcher" => format!("a file watcher (trigger {trigger})"),
            "user" => "a person (personas event emit)".to_string(),
            other => format!("the {other}"),
        })
    }

    /// Publishes the chain events an ended execution fires: one per enabled chain trigger
    /// waiting for its persona with a matching condition. Idempotent (keyed by trigger and
    /// execution), so recovery can call it again. Returns the events published now.
    pub fn publish_chain_events(&self, exec: &Execution) -> Result<Vec<EventRow>, StoreError> {
        if !exec.status.is_terminal() {
            return Ok(Vec::new());
        }
        let finished = exec
            .finished_at
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(now_ms);
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let chains: Vec<(String, String, String)> = tx
                .prepare_cached(
                    "SELECT id, persona_id, config FROM triggers
                     WHERE kind = 'chain' AND enabled = 1 AND after_persona_id = ?1
                       AND created_at <= ?2",
                )?
                .query_map(params![exec.persona_id.as_str(), finished], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let now = now_ms();
            let mut out = Vec::new();
            for (trigger_id, persona_id, config) in chains {
                let on = match json_col::<TriggerConfig>("config", &config)? {
                    TriggerConfig::Chain { on, .. } => on,
                    _ => continue,
                };
                if !on.matches(exec.status) {
                    continue;
                }
                let event = chain_event(exec, &trigger_id, &persona_id, on);
                let (id, new) = insert_event_in(tx, &event, now)?;
                if new && let Some(row) = get_event_in(tx, &id)? {
                    out.push(row);
                }
            }
            Ok(out)
        })
    }

    /// Chain events a crash may have lost: for executions that ended since `since`, after the
    /// chain trigger was created, publishes the ones not published yet.
    pub fn recover_chain_events(&self, since: DateTime<Utc>) -> Result<Vec<EventRow>, StoreError> {
        let ids: Vec<String> = {
            let conn = self.store.conn()?;
            let mut stmt = conn.prepare(
                "SELECT DISTINCT x.id FROM executions x
                 JOIN triggers t ON t.after_persona_id = x.persona_id
                      AND t.kind = 'chain' AND t.enabled = 1
                 WHERE x.finished_at >= ?1 AND x.finished_at >= t.created_at
                   AND NOT EXISTS (SELECT 1 FROM events e
                                   WHERE e.dedupe_key = 'chain:' || t.id || ':' || x.id)",
            )?;
            stmt.query_map([since.timestamp_millis()], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for id in ids {
            let exec = self.store.executions().get(&ExecutionId::from_string(id))?;
            out.extend(self.publish_chain_events(&exec)?);
        }
        Ok(out)
    }
}

/// The event a chain trigger publishes when `exec` ended: addressed to the trigger's persona,
/// carrying the run's output.
fn chain_event(exec: &Execution, trigger_id: &str, persona_id: &str, on: ChainOn) -> NewEvent {
    let mut event = NewEvent::new(
        format!("chain.{}", exec.status),
        SourceKind::Chain,
        json!({
            "after": {
                "persona": exec.persona_name,
                "persona_id": exec.persona_id,
                "execution_id": exec.id,
                "status": exec.status,
                "error": exec.error_message,
                "on": on.as_str(),
            },
            "output": exec.result_text,
        }),
    );
    event.source_id = Some(exec.persona_id.to_string());
    event.source_execution_id = Some(exec.id.clone());
    event.target_persona_id = Some(PersonaId::from_string(persona_id));
    event.trigger_id = Some(TriggerId::from_string(trigger_id));
    event.dedupe_key = Some(format!("chain:{trigger_id}:{}", exec.id));
    event
}

fn deliver_one(
    tx: &Connection,
    event: &EventRow,
    decision: &Decision,
    retry: RetryPolicy,
    now: i64,
    personas: &mut HashMap<PersonaId, Option<QueueTarget>>,
) -> Result<Delivered, StoreError> {
    let recipients = match decision {
        Decision::Skip(reason) => {
            let row = finish_event(tx, event, "skipped", Some(reason), now)?;
            return Ok(Delivered {
                event: row,
                executions: Vec::new(),
                created: Vec::new(),
            });
        }
        Decision::Deliver(r) => r,
    };
    let mut executions = Vec::new();
    let mut created = Vec::new();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for rcpt in recipients {
        let key = format!("ev:{}:{}", event.id, rcpt.target);
        let new = NewExecution {
            persona_id: rcpt.persona_id.clone(),
            trigger: rcpt.trigger,
            trigger_ref: Some(event.id.clone()),
            input: Some(event.payload.clone()),
            priority: None,
            idempotency_key: Some(key),
        };
        if !personas.contains_key(&rcpt.persona_id) {
            let target = queue_target(tx, &rcpt.persona_id)?;
            personas.insert(rcpt.persona_id.clone(), target);
        }
        let persona = personas.get(&rcpt.persona_id).and_then(Option::as_ref);
        let persona_name = persona
            .map(|p| p.name.clone())
            .unwrap_or_else(|| rcpt.persona_id.to_string());
        let (status, exec_id, error) = match enqueue_for(tx, &new, persona) {
            Ok((id, fresh)) => {
                created.extend(fresh);
                executions.push(id.clone());
                ("delivered", Some(id), None)
            }
            // A subscriber that was disabled after matching simply does not listen; an event
            // addressed to a disabled or deleted persona is a failed delivery, retried (the
            // persona may be re-enabled) and then dead-lettered.
            Err(StoreError::Conflict { message, .. }) if rcpt.target != TARGETED => {
                skipped.push(message.clone());
                ("skipped", None, Some(message))
            }
            Err(e @ (StoreError::Conflict { .. } | StoreError::NotFound { .. })) => {
                let msg = e.to_string();
                failures.push(msg.clone());
                ("failed", None, Some(msg))
            }
            Err(e) => return Err(e),
        };
        tx.prepare_cached(
            "INSERT INTO event_deliveries (event_id, target, persona_id, persona_name,
                execution_id, status, error, attempt, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?9, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (event_id, target) DO UPDATE SET
                execution_id = excluded.execution_id, status = excluded.status,
                error = excluded.error, attempt = excluded.attempt,
                updated_at = excluded.updated_at",
        )?
        .execute(params![
            event.id,
            rcpt.target,
            rcpt.persona_id.as_str(),
            exec_id.as_ref().map(|e| e.as_str()),
            status,
            error,
            event.attempts,
            now,
            persona_name
        ])?;
    }
    let row = if !failures.is_empty() {
        settle_failed(
            tx,
            &event.id,
            event.attempts,
            &failures.join("; "),
            retry,
            now,
            None,
        )?
        .ok_or_else(|| StoreError::not_found("event", &event.id))?
    } else if executions.is_empty() {
        let reason = if skipped.is_empty() {
            "no subscription matches this event".to_string()
        } else {
            format!("every subscriber is unavailable: {}", skipped.join("; "))
        };
        finish_event(tx, event, "skipped", Some(&reason), now)?
    } else {
        finish_event(tx, event, "delivered", None, now)?
    };
    Ok(Delivered {
        event: row,
        executions,
        created,
    })
}

fn finish_event(
    tx: &Connection,
    event: &EventRow,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<EventRow, StoreError> {
    tx.prepare_cached(
        "UPDATE events SET status = ?2, error = ?3, processed_at = ?4, updated_at = ?4,
            lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL WHERE id = ?1",
    )?
    .execute(params![event.id, status, error, now])?;
    // The claimed row plus what just changed: no read-back (and no payload re-parse) per event.
    Ok(EventRow {
        status: status.to_string(),
        error: error.map(str::to_string),
        processed_at: Some(from_ms(now)),
        next_attempt_at: None,
        ..event.clone()
    })
}

/// Marks an event failed (retry after backoff) or dead-lettered (out of attempts). With
/// `owner`, only while that owner still holds its lease.
#[allow(clippy::too_many_arguments)]
fn settle_failed(
    tx: &Connection,
    id: &str,
    attempts: u32,
    error: &str,
    retry: RetryPolicy,
    now: i64,
    owner: Option<&str>,
) -> Result<Option<EventRow>, StoreError> {
    let (status, next, processed) = if attempts >= retry.max_attempts {
        ("dead_letter", None, Some(now))
    } else {
        let wait = i64::try_from(retry.backoff(attempts).as_millis()).unwrap_or(i64::MAX);
        ("failed", Some(now.saturating_add(wait)), None)
    };
    let error = if status == "dead_letter" {
        format!("gave up after {attempts} attempt(s): {error}")
    } else {
        error.to_string()
    };
    let changed = tx
        .prepare_cached(
            "UPDATE events SET status = ?2, error = ?3, next_attempt_at = ?4, processed_at = ?5,
                updated_at = ?6, lease_owner = NULL, lease_until = NULL
             WHERE id = ?1 AND status = 'processing' AND (?7 IS NULL OR lease_owner = ?7)",
        )?
        .execute(params![id, status, error, next, processed, now, owner])?;
    if changed == 0 {
        return Ok(None);
    }
    get_event_in(tx, id)
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
