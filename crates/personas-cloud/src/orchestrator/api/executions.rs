//! Execution operations: `execute` (through [`queue::enqueue`]), `list_executions`,
//! `get_execution`, `cancel_execution` (through [`queue::request_cancel`]) and
//! `execution_output` (pages of stored lines). Every query is bound to the caller's tenant: an
//! execution of another tenant is "not found", exactly like a missing one.

use super::Api;
use crate::auth::Principal;
use crate::orchestrator::db::{self, GenericClient};
use crate::orchestrator::queue::{self, EXECUTION_COLUMNS, NewExecution};
use personas_cloud_api::CloudError;
use personas_cloud_api::model::{
    Attempt, CloudExecution, CloudExecutionList, CloudLine, Execute, ExecutionRef, ListExecutions,
    OutputPage, OutputRequest,
};
use personas_core::{ExecutionId, ExecutionStatus, LineKind, TriggerKind};
use std::collections::HashMap;
use std::str::FromStr;

/// Checks an optional `limit`: absent → `default`, else 1..=`max`.
pub fn limit(field: &str, value: Option<u32>, default: u32, max: u32) -> Result<i64, CloudError> {
    match value {
        None => Ok(i64::from(default)),
        Some(n) if (1..=max).contains(&n) => Ok(i64::from(n)),
        Some(n) => Err(CloudError::invalid(
            field,
            format!("{field} must be between 1 and {max}, got {n}"),
        )),
    }
}

/// A persona given by name or id: neither empty nor absurdly long.
pub fn persona_ref(field: &str, value: &str) -> Result<(), CloudError> {
    if value.trim().is_empty() {
        return Err(CloudError::invalid(
            field,
            format!("{field} must name a persona (name or id)"),
        ));
    }
    if value.len() > 200 {
        return Err(CloudError::invalid(
            field,
            format!("{field} is longer than 200 characters"),
        ));
    }
    Ok(())
}

pub async fn execute(
    api: &Api,
    who: &Principal,
    req: Execute,
) -> Result<CloudExecution, CloudError> {
    persona_ref("persona", &req.persona)?;
    let mut conn = db::conn(api.orch.db()).await?;
    let tx = db::begin(&mut conn).await?;
    let execution = queue::enqueue(
        &tx,
        NewExecution {
            tenant_id: &who.tenant_id,
            persona: &req.persona,
            input: req.input,
            trigger: TriggerKind::Manual,
            trigger_ref: None,
            idempotency_key: req.idempotency_key,
            max_attempts: api.orch.settings().max_attempts,
        },
    )
    .await?;
    tx.commit().await.map_err(db::pg)?;
    api.orch.kick_outbox();
    Ok(execution)
}

pub async fn list_executions(
    api: &Api,
    who: &Principal,
    req: ListExecutions,
) -> Result<CloudExecutionList, CloudError> {
    let limit = limit("limit", req.limit, 50, 500)?;
    if let Some(p) = &req.persona {
        persona_ref("persona", p)?;
    }
    let status = req.status.map(|s| s.as_str().to_string());
    let conn = db::conn(api.orch.db()).await?;
    let sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions e
         WHERE e.tenant_id = $1
           AND ($2::TEXT IS NULL OR e.persona_id = $2 OR e.persona_name = $2)
           AND ($3::TEXT IS NULL OR e.status = $3)
         ORDER BY e.queued_at DESC, e.id DESC LIMIT $4"
    );
    let rows = db::query(
        &conn,
        &sql,
        &[&who.tenant_id, &req.persona, &status, &limit],
    )
    .await?;
    let mut executions = rows
        .iter()
        .map(queue::execution_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<&str> = executions.iter().map(|e| e.execution.id.as_str()).collect();
    let mut attempts = attempts_of(&conn, &ids).await?;
    for e in &mut executions {
        e.attempts = attempts.remove(e.execution.id.as_str()).unwrap_or_default();
    }
    Ok(CloudExecutionList { executions })
}

/// The attempts of many executions in one query, by execution id, oldest first.
async fn attempts_of(
    conn: &impl GenericClient,
    ids: &[&str],
) -> Result<HashMap<String, Vec<Attempt>>, CloudError> {
    let mut by_id: HashMap<String, Vec<Attempt>> = HashMap::new();
    if ids.is_empty() {
        return Ok(by_id);
    }
    let rows = db::query(
        conn,
        "SELECT execution_id, number, state, worker_id, orchestrator_id, assigned_at,
                    ended_at, reason
             FROM attempts WHERE execution_id = ANY($1) ORDER BY execution_id, number",
        &[&ids],
    )
    .await?;
    for r in &rows {
        let state: String = r.get(2);
        let attempt = Attempt {
            number: r.get::<_, i32>(1).max(0) as u32,
            state: db::json(serde_json::Value::String(state), "attempt state")?,
            worker_id: r.get(3),
            orchestrator_id: r.get(4),
            assigned_at: r.get(5),
            ended_at: r.get(6),
            reason: r.get(7),
        };
        by_id.entry(r.get(0)).or_default().push(attempt);
    }
    Ok(by_id)
}

pub async fn get_execution(
    api: &Api,
    who: &Principal,
    req: ExecutionRef,
) -> Result<CloudExecution, CloudError> {
    let conn = db::conn(api.orch.db()).await?;
    queue::load_execution(&conn, &who.tenant_id, &req.id).await
}

pub async fn cancel_execution(
    api: &Api,
    who: &Principal,
    req: ExecutionRef,
) -> Result<CloudExecution, CloudError> {
    let mut conn = db::conn(api.orch.db()).await?;
    let tx = db::begin(&mut conn).await?;
    let execution = queue::request_cancel(&tx, &who.tenant_id, &req.id).await?;
    tx.commit().await.map_err(db::pg)?;
    api.orch.kick_outbox();
    Ok(execution)
}

pub async fn execution_output(
    api: &Api,
    who: &Principal,
    req: OutputRequest,
) -> Result<OutputPage, CloudError> {
    let limit = limit("limit", req.limit, 500, 5_000)?;
    let after = req.after_seq.unwrap_or(0);
    if after < 0 {
        return Err(CloudError::invalid(
            "after_seq",
            format!("after_seq must be 0 or more, got {after}"),
        ));
    }
    let conn = db::conn(api.orch.db()).await?;
    let status: String = db::query_opt(
        &conn,
        "SELECT status FROM executions WHERE tenant_id = $1 AND id = $2",
        &[&who.tenant_id, &req.id.as_str()],
    )
    .await?
    .ok_or_else(|| not_found(&req.id))?
    .get(0);
    let ended = ExecutionStatus::from_str(&status)
        .map_err(|e| CloudError::internal(format!("stored status: {e}")))?
        .is_terminal();
    // One more than asked tells whether another page follows.
    let rows = db::query(
        &conn,
        "SELECT seq, attempt, kind, text, at FROM output_lines
             WHERE execution_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[&req.id.as_str(), &after, &(limit + 1)],
    )
    .await?;
    let more = rows.len() as i64 > limit;
    let lines = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            let kind: String = r.get(2);
            Ok(CloudLine {
                execution_id: req.id.clone(),
                seq: r.get(0),
                attempt: r.get::<_, i32>(1).max(0) as u32,
                kind: LineKind::from_str(&kind)
                    .map_err(|e| CloudError::internal(format!("stored line kind: {e}")))?,
                text: r.get(3),
                at: r.get(4),
            })
        })
        .collect::<Result<Vec<_>, CloudError>>()?;
    let next_seq = lines.last().map_or(after, |l| l.seq);
    Ok(OutputPage {
        lines,
        next_seq,
        done: ended && !more,
    })
}

pub fn not_found(id: &ExecutionId) -> CloudError {
    CloudError {
        code: personas_cloud_api::CloudErrorCode::NotFound,
        message: format!("no execution {id}"),
        field: Some("id".into()),
    }
}
