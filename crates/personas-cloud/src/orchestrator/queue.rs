//! The execution queue's write paths every front door uses — [`enqueue`] (the `execute`
//! operation, cron, events) and [`request_cancel`] — and reading an execution back
//! ([`load_execution`], [`execution_from_row`] for lists).
//!
//! An execution is queued in one transaction: its row (status `queued`, attempt 0), a journal
//! entry for the tenant's clients (topic `lifecycle`) and an outbox row for `exec` (key: the
//! persona; payload: attempt 1). The dispatcher of whichever orchestrator gets the message
//! creates attempt 1 conditionally ([`attempt`]), so a duplicate message runs nothing twice.

pub mod attempt;

use super::db::{self, GenericClient, Transaction};
use super::journal;
use super::outbox::{self, BusMessage};
use personas_cloud_api::model::{Attempt, AttemptState, CloudExecution};
use personas_cloud_api::stream::ClientEvent;
use personas_cloud_api::{CloudError, CloudErrorCode, topics};
use personas_core::{Execution, ExecutionId, ExecutionStatus, PersonaId, TriggerKind};
use std::str::FromStr;
use tokio_postgres::Row;

/// The columns [`execution_from_row`] reads, for `SELECT … FROM executions e`.
pub const EXECUTION_COLUMNS: &str = "e.id, e.persona_id, e.persona_name, e.status, e.trigger, \
    e.trigger_ref, e.input, e.attempt, e.max_attempts, e.worker_id, e.cancel_requested, e.record, \
    e.cost_usd, e.output_lines, e.dead_letter_reason, e.queued_at, e.started_at, e.finished_at";

/// A run to queue.
#[derive(Debug, Clone)]
pub struct NewExecution<'a> {
    pub tenant_id: &'a str,
    /// A pushed persona's name or id.
    pub persona: &'a str,
    pub input: Option<serde_json::Value>,
    pub trigger: TriggerKind,
    pub trigger_ref: Option<String>,
    /// A retried request with the same key gets the first request's execution.
    pub idempotency_key: Option<String>,
    /// The deployment's `max_attempts`.
    pub max_attempts: u32,
}

/// Queues a run (see the module doc). With an idempotency key already used by the tenant,
/// returns that execution and queues nothing. Call [`super::Orchestrator::kick_outbox`] after
/// committing.
pub async fn enqueue(
    tx: &Transaction<'_>,
    new: NewExecution<'_>,
) -> Result<CloudExecution, CloudError> {
    if let Some(key) = &new.idempotency_key
        && (key.is_empty() || key.len() > 200)
    {
        return Err(CloudError::invalid(
            "idempotency_key",
            "idempotency_key must be 1 to 200 characters",
        ));
    }
    journal::ensure_tenant(tx, new.tenant_id).await?;
    let persona = db::query_opt(
        tx,
        "SELECT id, name FROM personas WHERE tenant_id = $1 AND (id = $2 OR name = $2)
             ORDER BY (id = $2) DESC LIMIT 1",
        &[&new.tenant_id, &new.persona],
    )
    .await?
    .ok_or_else(|| CloudError {
        code: CloudErrorCode::NotFound,
        message: format!("no pushed persona named {:?}", new.persona),
        field: Some("persona".into()),
    })?;
    let persona_id: String = persona.get(0);
    let persona_name: String = persona.get(1);
    let id = ExecutionId::new();
    let max_attempts = new.max_attempts.max(1) as i32;
    let sql = format!(
        "INSERT INTO executions AS e (id, tenant_id, persona_id, persona_name, status, trigger,
             trigger_ref, input, idempotency_key, attempt, max_attempts)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, 0, $9)
         ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
         RETURNING {EXECUTION_COLUMNS}"
    );
    let inserted = db::query_opt(
        tx,
        &sql,
        &[
            &id.as_str(),
            &new.tenant_id,
            &persona_id,
            &persona_name,
            &new.trigger.as_str(),
            &new.trigger_ref,
            &new.input,
            &new.idempotency_key,
            &max_attempts,
        ],
    )
    .await?;
    let Some(row) = inserted else {
        return replayed(
            tx,
            new.tenant_id,
            &persona_id,
            new.idempotency_key.as_deref(),
        )
        .await;
    };
    let execution = execution_from_row(&row)?;
    announce(tx, new.tenant_id, &execution).await?;
    outbox::add(
        tx,
        topics::EXEC,
        &persona_id,
        &BusMessage::Exec {
            tenant_id: new.tenant_id.to_string(),
            execution_id: id,
            attempt: 1,
        },
    )
    .await?;
    Ok(execution)
}

/// The execution an idempotency key already named (same persona, or a conflict).
async fn replayed(
    tx: &Transaction<'_>,
    tenant_id: &str,
    persona_id: &str,
    key: Option<&str>,
) -> Result<CloudExecution, CloudError> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions e WHERE e.tenant_id = $1 AND e.idempotency_key = $2"
    );
    let row = db::query_opt(tx, &sql, &[&tenant_id, &key])
        .await?
        .ok_or_else(|| CloudError::internal("an idempotency key's execution vanished"))?;
    let mut execution = execution_from_row(&row)?;
    if execution.execution.persona_id.as_str() != persona_id {
        return Err(CloudError {
            code: CloudErrorCode::Conflict,
            message: "this idempotency_key was used for a run of another persona".into(),
            field: Some("idempotency_key".into()),
        });
    }
    execution.attempts = load_attempts(tx, execution.execution.id.as_str()).await?;
    Ok(execution)
}

/// Journals the execution's current state for the tenant's clients (topic `lifecycle`).
pub async fn announce(
    tx: &Transaction<'_>,
    tenant_id: &str,
    execution: &CloudExecution,
) -> Result<(), CloudError> {
    journal::record(
        tx,
        tenant_id,
        topics::LIFECYCLE,
        execution.execution.id.as_str(),
        vec![ClientEvent::Execution {
            execution: Box::new(execution.clone()),
        }],
    )
    .await?;
    Ok(())
}

/// Cancels an execution: a queued one (no attempt on a worker) ends `cancelled` at once; a
/// running one gets `cancel_requested` and a `lifecycle` cancel message, which the orchestrator
/// holding its worker delivers (the worker's completion then says `cancelled`). An ended one is
/// returned unchanged.
pub async fn request_cancel(
    tx: &Transaction<'_>,
    tenant_id: &str,
    id: &ExecutionId,
) -> Result<CloudExecution, CloudError> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS}, a.state FROM executions e
         LEFT JOIN attempts a ON a.execution_id = e.id AND a.number = e.attempt
         WHERE e.tenant_id = $1 AND e.id = $2 FOR UPDATE OF e"
    );
    let row = db::query_opt(tx, &sql, &[&tenant_id, &id.as_str()])
        .await?
        .ok_or_else(|| not_found(id))?;
    let current = execution_from_row(&row)?;
    if current.execution.status.is_terminal() {
        return load_execution(tx, tenant_id, id).await;
    }
    let attempt_state: Option<String> = row.get("state");
    let on_worker = matches!(attempt_state.as_deref(), Some("assigned" | "running"));
    if on_worker {
        db::execute(
            tx,
            "UPDATE executions SET cancel_requested = TRUE WHERE id = $1",
            &[&id.as_str()],
        )
        .await?;
        outbox::add(
            tx,
            topics::LIFECYCLE,
            id.as_str(),
            &BusMessage::Cancel {
                tenant_id: tenant_id.to_string(),
                execution_id: id.clone(),
                attempt: current.attempt,
            },
        )
        .await?;
    } else {
        db::execute(
            tx,
            "UPDATE executions SET status = 'cancelled', cancel_requested = TRUE,
                 finished_at = now(), worker_id = NULL WHERE id = $1",
            &[&id.as_str()],
        )
        .await?;
    }
    let execution = load_execution(tx, tenant_id, id).await?;
    announce(tx, tenant_id, &execution).await?;
    Ok(execution)
}

fn not_found(id: &ExecutionId) -> CloudError {
    CloudError {
        code: CloudErrorCode::NotFound,
        message: format!("no execution {id}"),
        field: Some("id".into()),
    }
}

/// One execution of the tenant with its attempts (another tenant's is "not found").
pub async fn load_execution(
    conn: &impl GenericClient,
    tenant_id: &str,
    id: &ExecutionId,
) -> Result<CloudExecution, CloudError> {
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions e WHERE e.tenant_id = $1 AND e.id = $2"
    );
    let row = db::query_opt(conn, &sql, &[&tenant_id, &id.as_str()])
        .await?
        .ok_or_else(|| not_found(id))?;
    let mut execution = execution_from_row(&row)?;
    execution.attempts = load_attempts(conn, id.as_str()).await?;
    Ok(execution)
}

/// An execution's attempts, oldest first.
pub async fn load_attempts(
    conn: &impl GenericClient,
    execution_id: &str,
) -> Result<Vec<Attempt>, CloudError> {
    let rows = db::query(
        conn,
        "SELECT number, state, worker_id, orchestrator_id, assigned_at, ended_at, reason
             FROM attempts WHERE execution_id = $1 ORDER BY number",
        &[&execution_id],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let state: String = r.get(1);
            Ok(Attempt {
                number: r.get::<_, i32>(0) as u32,
                state: attempt_state(&state)?,
                worker_id: r.get(2),
                orchestrator_id: r.get(3),
                assigned_at: r.get(4),
                ended_at: r.get(5),
                reason: r.get(6),
            })
        })
        .collect()
}

fn attempt_state(s: &str) -> Result<AttemptState, CloudError> {
    Ok(match s {
        "assigned" => AttemptState::Assigned,
        "running" => AttemptState::Running,
        "completed" => AttemptState::Completed,
        "lost" => AttemptState::Lost,
        "cancelled" => AttemptState::Cancelled,
        other => {
            return Err(CloudError::internal(format!(
                "unknown attempt state {other:?}"
            )));
        }
    })
}

/// A row of [`EXECUTION_COLUMNS`] as a [`CloudExecution`] (attempts not loaded). The runner's
/// record (once the run ended) supplies cost, tokens, result and errors; the columns win for
/// what the queue owns (status, times, attempt).
pub fn execution_from_row(row: &Row) -> Result<CloudExecution, CloudError> {
    let status: String = row.get("status");
    let status = ExecutionStatus::from_str(&status)
        .map_err(|e| CloudError::internal(format!("stored status: {e}")))?;
    let trigger: String = row.get("trigger");
    let trigger = TriggerKind::from_str(&trigger)
        .map_err(|e| CloudError::internal(format!("stored trigger: {e}")))?;
    let record: Option<serde_json::Value> = row.get("record");
    let mut execution = match record {
        Some(v) => db::json::<Execution>(v, "execution record")?,
        None => Execution::queued(
            ExecutionId::new(),
            PersonaId::new(),
            String::new(),
            trigger,
            row.get("queued_at"),
        ),
    };
    execution.id = ExecutionId::from_string(row.get::<_, String>("id"));
    execution.persona_id = PersonaId::from_string(row.get::<_, String>("persona_id"));
    execution.persona_name = row.get("persona_name");
    execution.status = status;
    execution.trigger = trigger;
    execution.priority = trigger.priority();
    execution.trigger_ref = row.get("trigger_ref");
    execution.input = row.get("input");
    execution.cancel_requested = row.get("cancel_requested");
    execution.cost_usd = row.get("cost_usd");
    execution.output_lines = row.get::<_, i64>("output_lines").max(0) as u64;
    execution.queued_at = row.get("queued_at");
    execution.started_at = row.get("started_at");
    execution.finished_at = row.get("finished_at");
    let dead_letter_reason: Option<String> = row.get("dead_letter_reason");
    if dead_letter_reason.is_some() && execution.error_message.is_none() {
        execution.error_message = dead_letter_reason.clone();
    }
    Ok(CloudExecution {
        execution,
        attempt: row.get::<_, i32>("attempt").max(0) as u32,
        max_attempts: row.get::<_, i32>("max_attempts").max(0) as u32,
        worker_id: row.get("worker_id"),
        dead_letter_reason,
        attempts: Vec::new(),
    })
}
