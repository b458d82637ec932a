//! The reaper: finds live attempts whose worker has gone silent (no heartbeat for
//! `worker_timeout_ms`, or no worker row at all) and loses them — re-queued as the next attempt
//! through the outbox, or dead-lettered with the reason after the execution's `max_attempts`
//! ([`attempt::lose`]). Any orchestrator may act; each execution is locked `FOR UPDATE SKIP
//! LOCKED`, so peers never act on the same one twice, and the loss itself is conditional on the
//! attempt still being current.

use super::Orchestrator;
use super::db;
use super::queue::attempt;
use personas_cloud_api::CloudError;
use personas_core::ExecutionId;
use std::time::Duration;

/// How often the reaper looks.
const TICK: Duration = Duration::from_millis(500);

/// Runs until the orchestrator stops.
pub async fn run(state: Orchestrator) {
    let stop = state.stop_token().clone();
    let mut tick = tokio::time::interval(TICK);
    let mut rounds: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match reap_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("reaper: {n} lost attempt(s) handled"),
            Err(e) => tracing::warn!("reaper: {e}"),
        }
        rounds += 1;
        if rounds.is_multiple_of(120)
            && let Err(e) = forget_departed(&state).await
        {
            tracing::warn!("reaper cleanup: {e}");
        }
    }
}

/// One pass: handles every live attempt of a silent worker; returns how many it handled.
pub async fn reap_once(state: &Orchestrator) -> Result<usize, CloudError> {
    let timeout_s = state.settings().worker_timeout_ms as f64 / 1000.0;
    let mut conn = db::conn(state.db()).await?;
    let candidates = db::query(
        &conn,
        "SELECT a.execution_id, a.number, a.worker_id FROM attempts a
             JOIN executions e ON e.id = a.execution_id AND e.attempt = a.number
             LEFT JOIN workers w ON w.id = a.worker_id
             WHERE a.state IN ('assigned', 'running')
               AND (w.id IS NULL OR w.heartbeat_at < now() - make_interval(secs => $1))
             LIMIT 200",
        &[&timeout_s],
    )
    .await?;
    let mut handled = 0;
    for row in candidates {
        let execution_id = ExecutionId::from_string(row.get::<_, String>(0));
        let n = row.get::<_, i32>(1) as u32;
        let worker: Option<String> = row.get(2);
        let tx = db::begin(&mut conn).await?;
        // A peer holding the row is acting on it (or a worker's frame is being stored).
        let locked = db::query_opt(
            &tx,
            "SELECT 1 FROM executions e
                 JOIN attempts a ON a.execution_id = e.id AND a.number = e.attempt
                 LEFT JOIN workers w ON w.id = a.worker_id
                 WHERE e.id = $1 AND e.attempt = $2 AND a.state IN ('assigned', 'running')
                   AND (w.id IS NULL OR w.heartbeat_at < now() - make_interval(secs => $3))
                 FOR UPDATE OF e SKIP LOCKED",
            &[&execution_id.as_str(), &(n as i32), &timeout_s],
        )
        .await?;
        if locked.is_none() {
            continue;
        }
        let reason = format!(
            "worker {} silent for more than {} ms",
            worker.as_deref().unwrap_or("?"),
            state.settings().worker_timeout_ms
        );
        let outcome = attempt::lose(&tx, &execution_id, n, &reason).await?;
        tx.commit().await.map_err(db::pg)?;
        tracing::info!("{execution_id} attempt {n}: {reason} → {outcome:?}");
        handled += 1;
    }
    if handled > 0 {
        state.kick_outbox();
    }
    Ok(handled)
}

/// Drops rows of workers and orchestrators silent for a minute (they re-register on return).
async fn forget_departed(state: &Orchestrator) -> Result<(), CloudError> {
    let conn = db::conn(state.db()).await?;
    db::execute(
        &conn,
        "DELETE FROM workers WHERE heartbeat_at < now() - interval '1 minute'",
        &[],
    )
    .await?;
    db::execute(
        &conn,
        "DELETE FROM orchestrators WHERE heartbeat_at < now() - interval '1 minute'",
        &[],
    )
    .await?;
    Ok(())
}
