//! The caller's account and the deployment: `whoami`, `set_model_credential` (the tenant's own
//! Claude credential, sealed on arrival), `get_cluster` (peers, workers, queue, broker lag) and
//! `get_usage` (the tenant's month).
//!
//! The cluster view is shared infrastructure, so a tenant sees every orchestrator and worker
//! but only its own executions on them and its own queue; the admin tenant sees everything.

use super::Api;
use crate::auth::{ADMIN_TENANT, Principal};
use crate::orchestrator::db;
use crate::seal;
use chrono::Utc;
use personas_cloud_api::CloudError;
use personas_cloud_api::model::{
    Cluster, Empty, Identity, ModelCredentialKind, ModelCredentialStatus, OrchestratorView,
    SetModelCredential, Usage, UsageRequest, WorkerState, WorkerView,
};
use personas_core::ExecutionId;
use std::collections::HashSet;
use std::time::Duration;

pub async fn whoami(api: &Api, who: &Principal, _: Empty) -> Result<Identity, CloudError> {
    Ok(Identity {
        tenant_id: who.tenant_id.clone(),
        subject: who.subject.clone(),
        via: who.via,
        orchestrator_id: api.orch.id().to_string(),
    })
}

fn kind_name(kind: ModelCredentialKind) -> &'static str {
    match kind {
        ModelCredentialKind::OauthToken => "oauth_token",
        ModelCredentialKind::ApiKey => "api_key",
    }
}

pub async fn set_model_credential(
    api: &Api,
    who: &Principal,
    req: SetModelCredential,
) -> Result<ModelCredentialStatus, CloudError> {
    let conn = db::conn(api.orch.db()).await?;
    let Some(value) = &req.value else {
        db::execute(
            &conn,
            "DELETE FROM model_credentials WHERE tenant_id = $1",
            &[&who.tenant_id],
        )
        .await?;
        return Ok(ModelCredentialStatus {
            kind: None,
            set_at: None,
        });
    };
    // The message names what is wrong, never the value.
    personas_core::validate::secret_value("value", value.expose())
        .map_err(|e| CloudError::invalid("value", format!("value {}", e.message)))?;
    let aad = seal::model_aad(&who.tenant_id, req.kind);
    let sealed =
        seal::seal_value(&api.orch.settings().master_key, value.expose(), &aad).map_err(|e| {
            tracing::error!("sealing a model credential failed: {e}");
            CloudError::internal("cannot seal the credential")
        })?;
    let row = db::query_one(
        &conn,
        "INSERT INTO model_credentials (tenant_id, kind, sealed) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO UPDATE SET kind = EXCLUDED.kind, sealed = EXCLUDED.sealed,
                 set_at = now()
             RETURNING set_at",
        &[&who.tenant_id, &kind_name(req.kind), &sealed],
    )
    .await?;
    Ok(ModelCredentialStatus {
        kind: Some(req.kind),
        set_at: Some(row.get(0)),
    })
}

/// Execution ids in a worker's `running` column: strings, or objects with `execution_id`.
fn running_ids(running: &serde_json::Value) -> Vec<ExecutionId> {
    running
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| {
                    v.as_str()
                        .or_else(|| v.get("execution_id").and_then(|e| e.as_str()))
                        .map(ExecutionId::from_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn get_cluster(api: &Api, who: &Principal, _: Empty) -> Result<Cluster, CloudError> {
    let admin = who.tenant_id == ADMIN_TENANT;
    let conn = db::conn(api.orch.db()).await?;
    let orchestrators = load_orchestrators(&conn).await?;
    let mut workers = load_workers(&conn).await?;
    if !admin {
        hide_other_tenants(&conn, &who.tenant_id, &mut workers).await?;
    }
    let queued: i64 = db::query_one(
        &conn,
        "SELECT count(*) FROM executions
             WHERE status = 'queued' AND ($1::TEXT IS NULL OR tenant_id = $1)",
        &[&(!admin).then_some(who.tenant_id.as_str())],
    )
    .await?
    .get(0);
    // The broker's answer is optional: a cluster view without a lag beats no view.
    let exec_lag = tokio::time::timeout(Duration::from_secs(5), api.orch.exec_lag())
        .await
        .ok()
        .flatten();
    Ok(Cluster {
        orchestrators,
        workers,
        queued: queued.max(0) as u64,
        exec_lag,
    })
}

async fn load_orchestrators(conn: &db::Conn) -> Result<Vec<OrchestratorView>, CloudError> {
    let rows = db::query(
        conn,
        "SELECT id, url, started_at, heartbeat_at, workers, clients FROM orchestrators ORDER BY id",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| OrchestratorView {
            id: r.get(0),
            url: r.get(1),
            started_at: r.get(2),
            heartbeat_at: r.get(3),
            workers: r.get::<_, i32>(4).max(0) as u32,
            clients: r.get::<_, i32>(5).max(0) as u32,
        })
        .collect())
}

async fn load_workers(conn: &db::Conn) -> Result<Vec<WorkerView>, CloudError> {
    let rows = db::query(
        conn,
        "SELECT id, orchestrator_id, version, capacity, running, connected_at, heartbeat_at
             FROM workers ORDER BY id",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let running = running_ids(&r.get::<_, serde_json::Value>(4));
            let capacity = r.get::<_, i32>(3).max(0) as u32;
            WorkerView {
                id: r.get(0),
                orchestrator_id: r.get(1),
                version: r.get(2),
                capacity,
                state: if running.len() as u32 >= capacity.max(1) {
                    WorkerState::Busy
                } else {
                    WorkerState::Idle
                },
                running,
                connected_at: r.get(5),
                heartbeat_at: r.get(6),
            }
        })
        .collect())
}

/// Keeps in each worker's `running` only the tenant's own executions (busy/idle stays true).
async fn hide_other_tenants(
    conn: &db::Conn,
    tenant_id: &str,
    workers: &mut [WorkerView],
) -> Result<(), CloudError> {
    let all: Vec<String> = workers
        .iter()
        .flat_map(|w| w.running.iter().map(|e| e.as_str().to_string()))
        .collect();
    let own: HashSet<String> = db::query(
        conn,
        "SELECT id FROM executions WHERE tenant_id = $1 AND id = ANY($2)",
        &[&tenant_id, &all],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    for w in workers {
        w.running.retain(|e| own.contains(e.as_str()));
    }
    Ok(())
}

/// `YYYY-MM` with a real month.
fn check_month(month: &str) -> Result<(), CloudError> {
    let ok = month.is_ascii()
        && month.len() == 7
        && month.as_bytes()[4] == b'-'
        && month[..4].bytes().all(|b| b.is_ascii_digit())
        && month[5..]
            .parse::<u32>()
            .is_ok_and(|m| (1..=12).contains(&m));
    if ok {
        Ok(())
    } else {
        Err(CloudError::invalid(
            "month",
            format!("month must be YYYY-MM (UTC), got {month:?}"),
        ))
    }
}

pub async fn get_usage(api: &Api, who: &Principal, req: UsageRequest) -> Result<Usage, CloudError> {
    let month = match req.month {
        Some(m) => {
            check_month(&m)?;
            m
        }
        None => Utc::now().format("%Y-%m").to_string(),
    };
    let conn = db::conn(api.orch.db()).await?;
    let row = db::query_opt(
        &conn,
        "SELECT executions, events, cost_usd, duration_ms FROM usage
             WHERE tenant_id = $1 AND month = $2",
        &[&who.tenant_id, &month],
    )
    .await?;
    Ok(match row {
        Some(r) => Usage {
            month,
            executions: r.get::<_, i64>(0).max(0) as u64,
            events: r.get::<_, i64>(1).max(0) as u64,
            cost_usd: r.get(2),
            duration_ms: r.get::<_, i64>(3).max(0) as u64,
        },
        None => Usage {
            month,
            executions: 0,
            events: 0,
            cost_usd: 0.0,
            duration_ms: 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_checked() {
        assert!(check_month("2026-12").is_ok());
        for bad in ["2026-13", "2026-00", "26-12", "2026/12", "2026-1x", ""] {
            assert_eq!(
                check_month(bad).expect_err(bad).field.as_deref(),
                Some("month")
            );
        }
    }

    #[test]
    fn running_accepts_ids_and_objects() {
        let v = serde_json::json!(["a", {"execution_id": "b", "attempt": 1}, 3]);
        let ids: Vec<String> = running_ids(&v).iter().map(|e| e.to_string()).collect();
        assert_eq!(ids, ["a", "b"]);
    }
}
