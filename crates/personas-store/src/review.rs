//! Reviews of paused runs: deciding them and handing the decision back to the run.
//!
//! A run that asked for review (a `manual_review` line, or the MCP `request_review` tool from
//! another process) ends its first segment in `awaiting_review` with its Claude session id kept.
//! Deciding is one transaction: the review is closed, and once no review of the execution is
//! pending the execution is either re-queued with `resume_session_id` + `resume_prompt` (the
//! runner continues the same session with `--resume`) or ended, per the persona's `on_reject`.
//! Re-queuing goes through the normal queue, so a resume passes admission and survives restarts.

use crate::error::{enum_at, json_col, opt_enum_at};
use crate::executions::get_in;
use crate::lookup::Lookup;
use crate::policies::policy_in;
use crate::protocol::opt_persona;
use crate::time::{from_ms, now_ms};
use crate::{Store, StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::protocol::Severity;
use personas_core::review::{DecidedReview, Decision, OnReject, TimeoutAction, resume_prompt};
use personas_core::{
    Execution, ExecutionId, ExecutionStatus, PersonaId, ReviewDecider, ReviewStatus, TriggerKind,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

/// A request for a person's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct ReviewRow {
    pub id: String,
    pub execution_id: ExecutionId,
    pub persona_id: Option<PersonaId>,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub suggested_actions: Vec<String>,
    pub status: ReviewStatus,
    pub decision_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// When the review times out, once its run has paused (see `ReviewRepo::effective_deadline`).
    pub deadline_at: Option<DateTime<Utc>>,
    /// What happens at the deadline: approve, reject or cancel.
    pub timeout_action: Option<TimeoutAction>,
    /// Who decided: user, timeout or system.
    pub decided_by: Option<ReviewDecider>,
}

pub(crate) const REVIEW_COLUMNS: &str = "id, execution_id, persona_id, title, description, \
    severity, suggested_actions, status, decision_note, created_at, decided_at, deadline_at, \
    timeout_action, decided_by";

pub(crate) fn row_to_review(r: &Row<'_>) -> rusqlite::Result<ReviewRow> {
    let actions: String = r.get(6)?;
    Ok(ReviewRow {
        id: r.get(0)?,
        execution_id: ExecutionId::from_string(r.get::<_, String>(1)?),
        persona_id: opt_persona(r.get(2)?),
        title: r.get(3)?,
        description: r.get(4)?,
        severity: enum_at(r, 5, "reviews.severity")?,
        suggested_actions: json_col("suggested_actions", &actions)?,
        status: enum_at(r, 7, "reviews.status")?,
        decision_note: r.get(8)?,
        created_at: from_ms(r.get(9)?),
        decided_at: r.get::<_, Option<i64>>(10)?.map(from_ms),
        deadline_at: r.get::<_, Option<i64>>(11)?.map(from_ms),
        timeout_action: opt_enum_at(r, 12, "reviews.timeout_action")?,
        decided_by: opt_enum_at(r, 13, "reviews.decided_by")?,
    })
}

pub struct ReviewRepo<'s> {
    store: &'s Store,
}

/// Who took a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    User,
    /// The review's deadline passed.
    Timeout,
}

impl DecidedBy {
    fn as_str(self) -> &'static str {
        match self {
            DecidedBy::User => "user",
            DecidedBy::Timeout => "timeout",
        }
    }
}

/// What a decision did to the paused execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Other reviews of the execution are still pending; it stays paused.
    Waiting { pending: u32 },
    /// Re-queued to continue its Claude session with the decision.
    Resumed,
    /// Ended (rejected with `on_reject = end`, or a timeout configured to cancel).
    Ended,
}

/// The result of deciding a review.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Decided {
    pub review: ReviewRow,
    pub execution: Execution,
    pub effect: Effect,
}

/// Where a resumed execution continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub session_id: String,
    pub prompt: String,
}

fn find_in(conn: &Connection, id_or_prefix: &str) -> Result<ReviewRow, StoreError> {
    Lookup {
        what: "review",
        select: &format!("SELECT {REVIEW_COLUMNS} FROM reviews"),
        id_column: "id",
    }
    .find(conn, id_or_prefix, row_to_review)
}

fn pending_count(conn: &Connection, execution_id: &str) -> Result<u32, StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM reviews WHERE execution_id = ?1 AND status = 'pending'",
        [execution_id],
        |r| r.get(0),
    )?)
}

impl<'s> ReviewRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// A review by id or unique id prefix (at least 4 characters).
    pub fn find(&self, id_or_prefix: &str) -> Result<ReviewRow, StoreError> {
        let conn = self.store.conn()?;
        find_in(&conn, id_or_prefix)
    }

    /// Reviews, newest first; `status` filters (pending, approved, rejected, timed_out,
    /// cancelled).
    pub fn list(
        &self,
        status: Option<ReviewStatus>,
        limit: u32,
    ) -> Result<Vec<ReviewRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews WHERE (?1 IS NULL OR status = ?1)
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![status.map(ReviewStatus::as_str), limit],
            row_to_review,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of undecided reviews of an execution.
    pub fn pending_for(&self, execution_id: &ExecutionId) -> Result<u32, StoreError> {
        let conn = self.store.conn()?;
        pending_count(&conn, execution_id.as_str())
    }

    /// Stamps the deadline and timeout action on an execution's pending reviews that have none
    /// (called when its run pauses). Returns them.
    pub fn arm(
        &self,
        execution_id: &ExecutionId,
        deadline_ms: i64,
        action: TimeoutAction,
    ) -> Result<Vec<ReviewRow>, StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE reviews SET deadline_at = ?2, timeout_action = ?3
             WHERE execution_id = ?1 AND status = 'pending' AND deadline_at IS NULL",
            params![execution_id.as_str(), deadline_ms, action.as_str()],
        )?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews WHERE execution_id = ?1 AND status = 'pending'
             ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([execution_id.as_str()], row_to_review)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Pending reviews whose run has paused (the ones a deadline can act on), oldest first.
    pub fn awaiting(&self) -> Result<Vec<ReviewRow>, StoreError> {
        let conn = self.store.conn()?;
        let cols = REVIEW_COLUMNS
            .split(", ")
            .map(|c| format!("r.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn.prepare(&format!(
            "SELECT {cols} FROM reviews r JOIN executions e ON e.id = r.execution_id
             WHERE r.status = 'pending' AND e.status = 'awaiting_review'
             ORDER BY r.created_at, r.id"
        ))?;
        let rows = stmt.query_map([], row_to_review)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Closes pending reviews whose execution ended some other way (cancelled, failed, deleted
    /// persona): nobody can decide them any more. Returns how many.
    pub fn close_orphans(&self) -> Result<usize, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.execute(
            "UPDATE reviews SET status = 'cancelled', decided_by = 'system', decided_at = ?1,
                decision_note = 'the run ended before a decision'
             WHERE status = 'pending' AND execution_id IN (SELECT id FROM executions
                WHERE status NOT IN ('queued', 'running', 'awaiting_review'))",
            [now_ms()],
        )?)
    }

    /// Records a decision. Refused (a `Conflict` naming why) unless the review is pending and
    /// its run has paused. When it was the last pending review of the execution, the execution
    /// is re-queued to resume its session, or ended per `on_reject` (the persona's setting,
    /// else `on_reject_default`).
    pub fn decide(
        &self,
        id_or_prefix: &str,
        decision: Decision,
        note: Option<&str>,
        by: DecidedBy,
        on_reject_default: OnReject,
    ) -> Result<Decided, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let review = find_in(tx, id_or_prefix)?;
            let exec = check_decidable(tx, &review)?;
            tx.execute(
                "UPDATE reviews SET status = ?2, decision_note = ?3, decided_at = ?4, decided_by = ?5
                 WHERE id = ?1 AND status = 'pending'",
                params![
                    review.id,
                    decision.status().as_str(),
                    note,
                    now_ms(),
                    by.as_str()
                ],
            )?;
            let policy = match exec.persona_id.as_str() {
                "" => Default::default(),
                p => policy_in(tx, p)?,
            };
            let on_reject = policy.on_reject.unwrap_or(on_reject_default);
            settle(tx, &review.id, &exec, on_reject, None)
        })
    }

    /// Applies a review's timeout action (the deadline passed without a decision).
    pub fn expire(
        &self,
        review_id: &str,
        action: TimeoutAction,
        waited_secs: u64,
        on_reject_default: OnReject,
    ) -> Result<Decided, StoreError> {
        match action {
            TimeoutAction::Approve => self.decide(
                review_id,
                Decision::Approve,
                None,
                DecidedBy::Timeout,
                on_reject_default,
            ),
            TimeoutAction::Reject => self.decide(
                review_id,
                Decision::Reject,
                None,
                DecidedBy::Timeout,
                on_reject_default,
            ),
            TimeoutAction::Cancel => {
                let mut conn = self.store.conn()?;
                write_tx(&mut conn, |tx| {
                    let review = find_in(tx, review_id)?;
                    let exec = check_decidable(tx, &review)?;
                    tx.execute(
                        "UPDATE reviews SET status = 'timed_out', decided_at = ?2, decided_by = 'timeout'
                         WHERE id = ?1 AND status = 'pending'",
                        params![review.id, now_ms()],
                    )?;
                    let why = format!(
                        "no reviewer answered \"{}\" within {waited_secs} s; the run was ended as configured",
                        review.title
                    );
                    settle(tx, &review.id, &exec, OnReject::End, Some(why))
                })
            }
        }
    }

    /// Takes (reads and clears) the resume point of a claimed execution, if it is a resumption.
    pub fn take_resume(&self, execution_id: &ExecutionId) -> Result<Option<Resume>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let found: Option<(Option<String>, Option<String>)> = tx
                .query_row(
                    "SELECT resume_session_id, resume_prompt FROM executions WHERE id = ?1",
                    [execution_id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((Some(session_id), Some(prompt))) = found else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE executions SET resume_session_id = NULL, resume_prompt = NULL WHERE id = ?1",
                [execution_id.as_str()],
            )?;
            Ok(Some(Resume { session_id, prompt }))
        })
    }
}

/// The execution of a pending review whose run has paused, or a `Conflict` saying why not.
fn check_decidable(conn: &Connection, review: &ReviewRow) -> Result<Execution, StoreError> {
    if review.status != ReviewStatus::Pending {
        let by = review
            .decided_by
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        return Err(StoreError::conflict(
            "review",
            format!(
                "review {} is not pending: it was already {}{by}; only pending reviews can be decided",
                review.id, review.status
            ),
        ));
    }
    let exec = get_in(conn, review.execution_id.as_str())?
        .ok_or_else(|| StoreError::not_found("execution", review.execution_id.as_str()))?;
    match exec.status {
        ExecutionStatus::AwaitingReview => Ok(exec),
        ExecutionStatus::Queued | ExecutionStatus::Running => Err(StoreError::conflict(
            "review",
            format!(
                "execution {} is still {}; review {} can be decided once its run pauses (awaiting_review)",
                exec.id, exec.status, review.id
            ),
        )),
        ended => Err(StoreError::conflict(
            "review",
            format!(
                "execution {} already ended ({ended}); review {} can no longer be decided",
                exec.id, review.id
            ),
        )),
    }
}

/// After a review of `exec` was closed: resume or end the execution once none is pending.
/// `end_reason` forces ending (a timeout configured to cancel).
fn settle(
    tx: &Connection,
    review_id: &str,
    exec: &Execution,
    on_reject: OnReject,
    end_reason: Option<String>,
) -> Result<Decided, StoreError> {
    let id = exec.id.as_str();
    let now = now_ms();
    let effect = if let Some(reason) = end_reason {
        end(tx, id, &reason, now)?;
        Effect::Ended
    } else {
        let pending = pending_count(tx, id)?;
        if pending > 0 {
            Effect::Waiting { pending }
        } else {
            // The decisions taken since this pause (a resumed run may pause again later).
            let paused_at = exec.finished_at.map(|t| t.timestamp_millis()).unwrap_or(0);
            let mut stmt = tx.prepare(&format!(
                "SELECT {REVIEW_COLUMNS} FROM reviews WHERE execution_id = ?1
                   AND status IN ('approved', 'rejected') AND decided_at >= ?2
                 ORDER BY created_at, id"
            ))?;
            let batch: Vec<ReviewRow> = stmt
                .query_map(params![id, paused_at], row_to_review)?
                .collect::<Result<_, _>>()?;
            let rejected: Vec<&ReviewRow> = batch
                .iter()
                .filter(|r| r.status == ReviewStatus::Rejected)
                .collect();
            if !rejected.is_empty() && on_reject == OnReject::End {
                let notes: Vec<String> = rejected
                    .iter()
                    .map(|r| match r.decision_note.as_deref() {
                        Some(n) if !n.trim().is_empty() => {
                            format!("\"{}\" ({})", r.title, n.trim())
                        }
                        _ => format!("\"{}\"", r.title),
                    })
                    .collect();
                end(
                    tx,
                    id,
                    &format!("rejected in review: {}", notes.join(", ")),
                    now,
                )?;
                Effect::Ended
            } else if let Some(session) = &exec.session_id {
                let decided: Vec<DecidedReview<'_>> = batch
                    .iter()
                    .map(|r| DecidedReview {
                        title: &r.title,
                        decision: if r.status == ReviewStatus::Approved {
                            Decision::Approve
                        } else {
                            Decision::Reject
                        },
                        note: r.decision_note.as_deref(),
                        by_timeout: r.decided_by == Some(ReviewDecider::Timeout),
                    })
                    .collect();
                tx.execute(
                    "UPDATE executions SET status = 'queued', resume_session_id = ?2,
                        resume_prompt = ?3, priority = MAX(priority, ?4), finished_at = NULL,
                        not_before = NULL, cancel_requested = 0
                     WHERE id = ?1 AND status = 'awaiting_review'",
                    params![
                        id,
                        session,
                        resume_prompt(&decided),
                        TriggerKind::Manual.priority()
                    ],
                )?;
                Effect::Resumed
            } else {
                end(
                    tx,
                    id,
                    "cannot resume: the run recorded no Claude session id",
                    now,
                )?;
                Effect::Ended
            }
        }
    };
    let review = tx.query_row(
        &format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = ?1"),
        [review_id],
        row_to_review,
    )?;
    let execution =
        get_in(tx, id)?.ok_or_else(|| StoreError::not_found("execution", id.to_string()))?;
    Ok(Decided {
        review,
        execution,
        effect,
    })
}

fn end(tx: &Connection, id: &str, reason: &str, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE executions SET status = 'cancelled', error_class = 'cancelled', error_message = ?2,
            finished_at = ?3 WHERE id = ?1 AND status = 'awaiting_review'",
        params![id, reason, now],
    )?;
    // Any other review of the run can no longer be decided.
    tx.execute(
        "UPDATE reviews SET status = 'cancelled', decided_by = 'system', decided_at = ?2
         WHERE execution_id = ?1 AND status = 'pending'",
        params![id, now],
    )?;
    Ok(())
}

/// When a review's run pauses, this is its deadline: the stamped one, else `created_at` plus
/// `timeout_secs`.
pub fn effective_deadline_ms(review: &ReviewRow, timeout_secs: u64) -> i64 {
    review
        .deadline_at
        .map(|d| d.timestamp_millis())
        .unwrap_or_else(|| {
            review
                .created_at
                .timestamp_millis()
                .saturating_add((timeout_secs as i64).saturating_mul(1000))
        })
}

/// Converts stored milliseconds for callers outside the crate.
pub fn ms_to_time(ms: i64) -> chrono::DateTime<chrono::Utc> {
    from_ms(ms)
}
