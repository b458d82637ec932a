//! Attempt transitions. Every change to an execution by a worker's message is conditional on
//! the attempt being the execution's current one and still live (`assigned` or `running`), with
//! the execution's row locked: a lost attempt's late output or completion changes nothing, and
//! an execution is completed once.

use super::{EXECUTION_COLUMNS, announce, execution_from_row, load_execution};
use crate::orchestrator::db::{self, GenericClient, Transaction};
use crate::orchestrator::journal;
use crate::orchestrator::outbox::{self, BusMessage};
use base64::Engine;
use personas_cloud_api::model::{CloudExecution, CloudLine, ModelCredentialKind};
use personas_cloud_api::stream::ClientEvent;
use personas_cloud_api::wire::{
    Assignment, HeldRun, Resume, SealedCredential, SealedModelCredential, WireLine,
};
use personas_cloud_api::{CloudError, topics};
use personas_core::{Execution, ExecutionId, ExecutionStatus, PersonaId};

/// The execution row of a live attempt, locked for the rest of the transaction.
struct Live {
    tenant_id: String,
    persona_id: String,
    cancel_requested: bool,
}

/// Locks the execution and returns it if `attempt` is its current, live attempt.
async fn lock_live(
    tx: &Transaction<'_>,
    execution_id: &str,
    attempt: u32,
) -> Result<Option<Live>, CloudError> {
    let row = db::query_opt(
        tx,
        "SELECT e.tenant_id, e.persona_id, e.cancel_requested FROM executions e
             JOIN attempts a ON a.execution_id = e.id AND a.number = e.attempt
             WHERE e.id = $1 AND e.attempt = $2 AND a.state IN ('assigned', 'running')
             FOR UPDATE OF e, a",
        &[&execution_id, &(attempt as i32)],
    )
    .await?;
    Ok(row.map(|r| Live {
        tenant_id: r.get(0),
        persona_id: r.get(1),
        cancel_requested: r.get(2),
    }))
}

/// What taking an exec message gave.
#[derive(Debug)]
pub struct Taken {
    pub tenant_id: String,
    pub assignment: Assignment,
}

/// Creates attempt `attempt` for `worker_id` if the execution is queued at attempt `attempt - 1`
/// and not cancelled; `None` for a duplicate or stale message (already taken, ended, cancelled).
pub async fn take(
    tx: &Transaction<'_>,
    execution_id: &ExecutionId,
    attempt: u32,
    worker_id: &str,
    orchestrator_id: &str,
) -> Result<Option<Taken>, CloudError> {
    if attempt == 0 {
        return Ok(None);
    }
    let sql = format!(
        "UPDATE executions e SET attempt = $2, worker_id = $3
         WHERE e.id = $1 AND e.attempt = $2 - 1 AND e.status = 'queued' AND NOT e.cancel_requested
         RETURNING e.tenant_id, {EXECUTION_COLUMNS}"
    );
    let Some(row) = db::query_opt(
        tx,
        &sql,
        &[&execution_id.as_str(), &(attempt as i32), &worker_id],
    )
    .await?
    else {
        return Ok(None);
    };
    let tenant_id: String = row.get("tenant_id");
    let execution = execution_from_row(&row)?;
    let Some(assignment) = build_assignment(tx, &tenant_id, &execution, attempt).await? else {
        // The persona was deleted while the run waited: it cannot run.
        db::execute(
            tx,
            "UPDATE executions SET status = 'failed', finished_at = now(), worker_id = NULL,
                 dead_letter_reason = 'the persona was deleted before the run started'
             WHERE id = $1",
            &[&execution_id.as_str()],
        )
        .await?;
        let execution = load_execution(tx, &tenant_id, execution_id).await?;
        announce(tx, &tenant_id, &execution).await?;
        return Ok(None);
    };
    db::execute(
        tx,
        "INSERT INTO attempts (execution_id, number, state, worker_id, orchestrator_id)
         VALUES ($1, $2, 'assigned', $3, $4)",
        &[
            &execution_id.as_str(),
            &(attempt as i32),
            &worker_id,
            &orchestrator_id,
        ],
    )
    .await?;
    let execution = load_execution(tx, &tenant_id, execution_id).await?;
    announce(tx, &tenant_id, &execution).await?;
    Ok(Some(Taken {
        tenant_id,
        assignment,
    }))
}

async fn build_assignment(
    tx: &Transaction<'_>,
    tenant_id: &str,
    execution: &CloudExecution,
    attempt: u32,
) -> Result<Option<Assignment>, CloudError> {
    let e = &execution.execution;
    let persona = db::query_opt(
        tx,
        "SELECT definition FROM personas WHERE tenant_id = $1 AND id = $2",
        &[&tenant_id, &e.persona_id.as_str()],
    )
    .await?;
    let Some(persona) = persona else {
        return Ok(None);
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let credentials = db::query(
        tx,
        "SELECT name, service_type, sealed FROM credentials
             WHERE tenant_id = $1 AND persona_id = $2 ORDER BY name",
        &[&tenant_id, &e.persona_id.as_str()],
    )
    .await?
    .iter()
    .map(|r| SealedCredential {
        name: r.get(0),
        service_type: r.get(1),
        sealed: b64.encode(r.get::<_, &[u8]>(2)),
    })
    .collect();
    let model_credential = db::query_opt(
        tx,
        "SELECT kind, sealed FROM model_credentials WHERE tenant_id = $1",
        &[&tenant_id],
    )
    .await?
    .map(|r| {
        let kind = match r.get::<_, &str>(0) {
            "api_key" => ModelCredentialKind::ApiKey,
            _ => ModelCredentialKind::OauthToken,
        };
        SealedModelCredential {
            kind,
            sealed: b64.encode(r.get::<_, &[u8]>(1)),
        }
    });
    let last_seq: i64 = db::query_one(
        tx,
        "SELECT COALESCE(MAX(seq), 0) FROM output_lines WHERE execution_id = $1",
        &[&e.id.as_str()],
    )
    .await?
    .get(0);
    Ok(Some(Assignment {
        execution_id: e.id.clone(),
        attempt,
        tenant_id: tenant_id.to_string(),
        persona_id: PersonaId::from_string(e.persona_id.as_str()),
        persona_text: persona.get(0),
        input: e.input.clone(),
        trigger: e.trigger,
        trigger_ref: e.trigger_ref.clone(),
        first_seq: last_seq + 1,
        credentials,
        model_credential,
        timeout_ms: None,
    }))
}

/// The worker started the CLI for a live attempt: the execution is `running`. Returns whether
/// the attempt is live (a stale one should be stopped).
pub async fn started(
    tx: &Transaction<'_>,
    execution_id: &ExecutionId,
    attempt: u32,
) -> Result<bool, CloudError> {
    let Some(live) = lock_live(tx, execution_id.as_str(), attempt).await? else {
        return Ok(false);
    };
    db::execute(
        tx,
        "UPDATE attempts SET state = 'running' WHERE execution_id = $1 AND number = $2",
        &[&execution_id.as_str(), &(attempt as i32)],
    )
    .await?;
    db::execute(
        tx,
        "UPDATE executions SET status = 'running', started_at = COALESCE(started_at, now())
         WHERE id = $1",
        &[&execution_id.as_str()],
    )
    .await?;
    let execution = load_execution(tx, &live.tenant_id, execution_id).await?;
    announce(tx, &live.tenant_id, &execution).await?;
    Ok(true)
}

/// What storing a batch of output lines gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    /// Every line up to `up_to_seq` is stored; `new` of them were not before.
    Lines { up_to_seq: i64, new: usize },
    /// The attempt is no longer current: nothing stored.
    Stale,
}

/// Stores a live attempt's lines (idempotent by `(execution, seq)`), journals the new ones and
/// queues them for the `output` topic.
pub async fn store_output(
    tx: &Transaction<'_>,
    execution_id: &ExecutionId,
    attempt: u32,
    lines: &[WireLine],
) -> Result<Stored, CloudError> {
    let Some(live) = lock_live(tx, execution_id.as_str(), attempt).await? else {
        return Ok(Stored::Stale);
    };
    let up_to_seq = lines.iter().map(|l| l.seq).max().unwrap_or(0);
    if lines.is_empty() {
        return Ok(Stored::Lines { up_to_seq, new: 0 });
    }
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l.kind.as_str()).collect();
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let ats: Vec<chrono::DateTime<chrono::Utc>> = lines.iter().map(|l| l.at).collect();
    let inserted = db::query(
        tx,
        "INSERT INTO output_lines (execution_id, seq, attempt, kind, text, at)
             SELECT $1, s, $2, k, t, a
             FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TIMESTAMPTZ[]) AS l(s, k, t, a)
             ON CONFLICT (execution_id, seq) DO NOTHING RETURNING seq",
        &[
            &execution_id.as_str(),
            &(attempt as i32),
            &seqs,
            &kinds,
            &texts,
            &ats,
        ],
    )
    .await?;
    let mut new: Vec<i64> = inserted.iter().map(|r| r.get(0)).collect();
    new.sort_unstable();
    if !new.is_empty() {
        db::execute(
            tx,
            "UPDATE executions SET output_lines = output_lines + $2 WHERE id = $1",
            &[&execution_id.as_str(), &(new.len() as i64)],
        )
        .await?;
        let events = lines
            .iter()
            .filter(|l| new.binary_search(&l.seq).is_ok())
            .map(|l| ClientEvent::Output {
                line: CloudLine {
                    execution_id: execution_id.clone(),
                    seq: l.seq,
                    attempt,
                    kind: l.kind,
                    text: l.text.clone(),
                    at: l.at,
                },
            })
            .collect();
        journal::record(
            tx,
            &live.tenant_id,
            topics::OUTPUT,
            execution_id.as_str(),
            events,
        )
        .await?;
    }
    Ok(Stored::Lines {
        up_to_seq,
        new: new.len(),
    })
}

/// Ends the execution with the worker's record if `attempt` is its current, live attempt;
/// returns whether it was accepted. A record whose status is not an end is stored as `failed`.
pub async fn complete(
    tx: &Transaction<'_>,
    execution_id: &ExecutionId,
    attempt: u32,
    mut record: Execution,
) -> Result<bool, CloudError> {
    let Some(live) = lock_live(tx, execution_id.as_str(), attempt).await? else {
        return Ok(false);
    };
    if !record.status.is_terminal() {
        record.error_message = Some(format!(
            "the worker reported the run ended as {:?}",
            record.status.as_str()
        ));
        record.status = ExecutionStatus::Failed;
    }
    if live.cancel_requested && record.status != ExecutionStatus::Completed {
        record.status = ExecutionStatus::Cancelled;
    }
    let state = if record.status == ExecutionStatus::Cancelled {
        "cancelled"
    } else {
        "completed"
    };
    db::execute(
        tx,
        "UPDATE attempts SET state = $3, ended_at = now() WHERE execution_id = $1 AND number = $2",
        &[&execution_id.as_str(), &(attempt as i32), &state],
    )
    .await?;
    let json = serde_json::to_value(&record).map_err(|e| CloudError::internal(e.to_string()))?;
    let row = db::query_one(
        tx,
        "UPDATE executions SET status = $2, record = $3, cost_usd = $4, worker_id = NULL,
                 started_at = COALESCE(started_at, $5, now()), finished_at = COALESCE($6, now())
             WHERE id = $1
             RETURNING EXTRACT(EPOCH FROM (finished_at - started_at))::FLOAT8 * 1000",
        &[
            &execution_id.as_str(),
            &record.status.as_str(),
            &json,
            &record.cost_usd,
            &record.started_at,
            &record.finished_at,
        ],
    )
    .await?;
    let duration_ms = row.get::<_, Option<f64>>(0).unwrap_or(0.0).max(0.0) as i64;
    count_usage(
        tx,
        &live.tenant_id,
        execution_id,
        record.cost_usd,
        duration_ms,
    )
    .await?;
    let execution = load_execution(tx, &live.tenant_id, execution_id).await?;
    announce(tx, &live.tenant_id, &execution).await?;
    let _ = live.persona_id;
    Ok(true)
}

/// Counts an ended execution in its tenant's month once (`usage_counted` remembers it).
async fn count_usage(
    tx: &Transaction<'_>,
    tenant_id: &str,
    execution_id: &ExecutionId,
    cost_usd: f64,
    duration_ms: i64,
) -> Result<(), CloudError> {
    let first = db::execute(
        tx,
        "INSERT INTO usage_counted (tenant_id, kind, ref_id) VALUES ($1, 'execution', $2)
             ON CONFLICT DO NOTHING",
        &[&tenant_id, &execution_id.as_str()],
    )
    .await?;
    if first == 1 {
        db::execute(
            tx,
            "INSERT INTO usage (tenant_id, month, executions, cost_usd, duration_ms)
             VALUES ($1, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'), 1, $2, $3)
             ON CONFLICT (tenant_id, month) DO UPDATE SET executions = usage.executions + 1,
                 cost_usd = usage.cost_usd + $2, duration_ms = usage.duration_ms + $3",
            &[&tenant_id, &cost_usd, &duration_ms],
        )
        .await?;
    }
    Ok(())
}

/// What became of a lost attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Queued again as attempt `next`.
    Requeued { next: u32 },
    /// Out of attempts: failed and sent to the dead-letter topic.
    DeadLettered,
    /// Cancel had been asked: ended `cancelled`.
    Cancelled,
    /// Not the live current attempt any more: nothing changed.
    NotLive,
}

/// Marks a live attempt `lost` with `reason` and re-queues the execution as the next attempt,
/// or dead-letters it after its `max_attempts`.
pub async fn lose(
    tx: &Transaction<'_>,
    execution_id: &ExecutionId,
    attempt: u32,
    reason: &str,
) -> Result<Lost, CloudError> {
    let Some(live) = lock_live(tx, execution_id.as_str(), attempt).await? else {
        return Ok(Lost::NotLive);
    };
    db::execute(
        tx,
        "UPDATE attempts SET state = 'lost', ended_at = now(), reason = $3
         WHERE execution_id = $1 AND number = $2",
        &[&execution_id.as_str(), &(attempt as i32), &reason],
    )
    .await?;
    let max: i32 = db::query_one(
        tx,
        "SELECT max_attempts FROM executions WHERE id = $1",
        &[&execution_id.as_str()],
    )
    .await?
    .get(0);
    let outcome = if live.cancel_requested {
        db::execute(
            tx,
            "UPDATE executions SET status = 'cancelled', worker_id = NULL, finished_at = now()
             WHERE id = $1",
            &[&execution_id.as_str()],
        )
        .await?;
        Lost::Cancelled
    } else if (attempt as i32) < max {
        db::execute(
            tx,
            "UPDATE executions SET status = 'queued', worker_id = NULL WHERE id = $1",
            &[&execution_id.as_str()],
        )
        .await?;
        let next = attempt + 1;
        outbox::add(
            tx,
            topics::EXEC,
            &live.persona_id,
            &BusMessage::Exec {
                tenant_id: live.tenant_id.clone(),
                execution_id: execution_id.clone(),
                attempt: next,
            },
        )
        .await?;
        Lost::Requeued { next }
    } else {
        let why = format!("attempt {attempt} of {max} lost: {reason}");
        db::execute(
            tx,
            "UPDATE executions SET status = 'failed', worker_id = NULL, finished_at = now(),
                 dead_letter_reason = $2 WHERE id = $1",
            &[&execution_id.as_str(), &why],
        )
        .await?;
        outbox::add(
            tx,
            topics::DLQ,
            execution_id.as_str(),
            &BusMessage::DeadLetter {
                tenant_id: live.tenant_id.clone(),
                execution_id: execution_id.clone(),
                attempts: attempt,
                reason: why,
            },
        )
        .await?;
        Lost::DeadLettered
    };
    let execution = load_execution(tx, &live.tenant_id, execution_id).await?;
    announce(tx, &live.tenant_id, &execution).await?;
    Ok(outcome)
}

/// Where a reconnecting worker resumes a run it holds: whether the attempt is still current
/// and the first line this deployment has not stored. Adopts a current attempt (this
/// orchestrator now holds its worker).
pub async fn resume(
    conn: &impl GenericClient,
    worker_id: &str,
    orchestrator_id: &str,
    held: &HeldRun,
) -> Result<Resume, CloudError> {
    let row = db::query_opt(
        conn,
        "UPDATE attempts a SET orchestrator_id = $4
             FROM executions e
             WHERE a.execution_id = $1 AND a.number = $2 AND a.worker_id = $3
               AND e.id = a.execution_id AND e.attempt = a.number
               AND a.state IN ('assigned', 'running')
             RETURNING a.number",
        &[
            &held.execution_id.as_str(),
            &(held.attempt as i32),
            &worker_id,
            &orchestrator_id,
        ],
    )
    .await?;
    let stored: i64 = db::query_one(
        conn,
        "SELECT COALESCE(MAX(seq), 0) FROM output_lines WHERE execution_id = $1",
        &[&held.execution_id.as_str()],
    )
    .await?
    .get(0);
    Ok(Resume {
        execution_id: held.execution_id.clone(),
        attempt: held.attempt,
        resend_from_seq: stored + 1,
        current: row.is_some(),
    })
}

/// Live attempts assigned to `worker_id` that are not in `held`: the worker never got them (it
/// reconnected without them), so they are lost now rather than after the timeout.
pub async fn orphaned(
    conn: &impl GenericClient,
    worker_id: &str,
    held: &[HeldRun],
) -> Result<Vec<(ExecutionId, u32)>, CloudError> {
    let rows = db::query(
        conn,
        "SELECT a.execution_id, a.number FROM attempts a
             JOIN executions e ON e.id = a.execution_id AND e.attempt = a.number
             WHERE a.worker_id = $1 AND a.state IN ('assigned', 'running')",
        &[&worker_id],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                ExecutionId::from_string(r.get::<_, String>(0)),
                r.get::<_, i32>(1) as u32,
            )
        })
        .filter(|(id, n)| {
            !held
                .iter()
                .any(|h| &h.execution_id == id && h.attempt == *n)
        })
        .collect())
}
