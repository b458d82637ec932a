//! The dispatcher's side of the bus: claiming due events under a lease, delivering a batch in
//! one transaction, giving events back after a failed delivery, and reaping lost leases.

use super::{BusRepo, Decision, Delivered, RetryPolicy, TARGETED, get_event_in};
use super::{EVENT_COLUMNS, EventRow, row_to_event};
use crate::executions::{QueueTarget, enqueue_for, queue_target};
use crate::time::{from_ms, now_ms};
use crate::{NewExecution, StoreError, write_tx};
use personas_core::{EventDeliveryStatus, EventStatus, PersonaId};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::time::Duration;

impl BusRepo<'_> {
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
            let row = finish_event(tx, event, EventStatus::Skipped, Some(reason), now)?;
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
                (EventDeliveryStatus::Delivered, Some(id), None)
            }
            // A subscriber that was disabled after matching simply does not listen; an event
            // addressed to a disabled or deleted persona is a failed delivery, retried (the
            // persona may be re-enabled) and then dead-lettered.
            Err(StoreError::Conflict { message, .. }) if rcpt.target != TARGETED => {
                skipped.push(message.clone());
                (EventDeliveryStatus::Skipped, None, Some(message))
            }
            Err(e @ (StoreError::Conflict { .. } | StoreError::NotFound { .. })) => {
                let msg = e.to_string();
                failures.push(msg.clone());
                (EventDeliveryStatus::Failed, None, Some(msg))
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
            status.as_str(),
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
        finish_event(tx, event, EventStatus::Skipped, Some(&reason), now)?
    } else {
        finish_event(tx, event, EventStatus::Delivered, None, now)?
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
    status: EventStatus,
    error: Option<&str>,
    now: i64,
) -> Result<EventRow, StoreError> {
    tx.prepare_cached(
        "UPDATE events SET status = ?2, error = ?3, processed_at = ?4, updated_at = ?4,
            lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL WHERE id = ?1",
    )?
    .execute(params![event.id, status.as_str(), error, now])?;
    // The claimed row plus what just changed: no read-back (and no payload re-parse) per event.
    Ok(EventRow {
        status,
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
        (EventStatus::DeadLetter, None, Some(now))
    } else {
        let wait = i64::try_from(retry.backoff(attempts).as_millis()).unwrap_or(i64::MAX);
        (EventStatus::Failed, Some(now.saturating_add(wait)), None)
    };
    let error = if status == EventStatus::DeadLetter {
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
        .execute(params![
            id,
            status.as_str(),
            error,
            next,
            processed,
            now,
            owner
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    get_event_in(tx, id)
}
