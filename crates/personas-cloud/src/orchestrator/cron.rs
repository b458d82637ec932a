//! Cloud cron triggers: every second each orchestrator takes the due cron triggers `FOR UPDATE
//! SKIP LOCKED` and, in one transaction per trigger, queues the run ([`queue::enqueue`], with an
//! idempotency key naming the trigger and the due time) and moves `next_fire_at` to the next
//! occurrence after now. A due time is fired once across all orchestrators: a peer skips the
//! locked row, and once committed the row is no longer due. Missed occurrences (every
//! orchestrator down) fire once, then the schedule continues from now.
//!
//! The schedule is the persona file's (`config.expr`, `config.tz`), parsed with
//! `personas_core::cron` like the desktop's scheduler.

use super::Orchestrator;
use super::db;
use super::queue::{self, NewExecution};
use chrono::{DateTime, Utc};
use personas_cloud_api::CloudError;
use personas_core::TriggerKind;
use personas_core::cron::CronSchedule;
use std::time::Duration;

/// Runs until the orchestrator stops.
pub async fn run(state: Orchestrator) {
    let stop = state.stop_token().clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match fire_due(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("cron: {n} trigger(s) fired"),
            Err(e) => tracing::warn!("cron: {e}"),
        }
    }
}

fn schedule_of(config: &serde_json::Value) -> Result<CronSchedule, String> {
    let expr = config
        .get("expr")
        .and_then(|v| v.as_str())
        .ok_or("no `expr` in the cron trigger")?;
    let tz = config.get("tz").and_then(|v| v.as_str()).unwrap_or("UTC");
    CronSchedule::parse(expr, tz).map_err(|e| e.to_string())
}

/// Schedules cron triggers that have no next time yet, then fires the due ones. Returns how
/// many fired.
pub async fn fire_due(state: &Orchestrator) -> Result<usize, CloudError> {
    let mut conn = db::conn(state.db()).await?;
    schedule_new(&mut conn).await?;
    let mut fired = 0;
    loop {
        let tx = db::begin(&mut conn).await?;
        let Some(row) = db::query_opt(
            &tx,
            "SELECT tenant_id, id, persona_id, config, next_fire_at FROM triggers
                 WHERE enabled AND kind = 'cron' AND next_fire_at <= now()
                 ORDER BY next_fire_at LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?
        else {
            return Ok(fired);
        };
        let tenant_id: String = row.get(0);
        let trigger_id: String = row.get(1);
        let persona_id: String = row.get(2);
        let config: serde_json::Value = row.get(3);
        let due: DateTime<Utc> = row.get(4);
        let next = match schedule_of(&config) {
            Ok(s) => s.next_after(Utc::now()),
            Err(e) => {
                tracing::warn!("cron trigger {trigger_id}: {e}; disabled");
                None
            }
        };
        let run = queue::enqueue(
            &tx,
            NewExecution {
                tenant_id: &tenant_id,
                persona: &persona_id,
                input: None,
                trigger: TriggerKind::Schedule,
                trigger_ref: Some(trigger_id.clone()),
                idempotency_key: Some(format!("cron:{trigger_id}:{}", due.timestamp())),
                max_attempts: state.settings().max_attempts,
            },
        )
        .await;
        if let Err(e) = &run {
            // The persona is gone (its triggers go with it) or the row is bad: do not retry
            // the same due time forever.
            tracing::warn!("cron trigger {trigger_id}: cannot queue a run: {e}");
        }
        db::execute(
            &tx,
            "UPDATE triggers SET next_fire_at = $3, last_fired_at = now(),
                 enabled = enabled AND $3::TIMESTAMPTZ IS NOT NULL
             WHERE tenant_id = $1 AND id = $2",
            &[&tenant_id, &trigger_id, &next],
        )
        .await?;
        tx.commit().await.map_err(db::pg)?;
        state.kick_outbox();
        if run.is_ok() {
            fired += 1;
        }
    }
}

/// Gives enabled cron triggers without a next time their first one.
async fn schedule_new(conn: &mut db::Conn) -> Result<(), CloudError> {
    let rows = db::query(
        conn,
        "SELECT tenant_id, id, config FROM triggers
             WHERE enabled AND kind = 'cron' AND next_fire_at IS NULL",
        &[],
    )
    .await?;
    for row in rows {
        let (tenant_id, id): (String, String) = (row.get(0), row.get(1));
        let next = match schedule_of(&row.get(2)) {
            Ok(s) => s.next_after(Utc::now()),
            Err(e) => {
                tracing::warn!("cron trigger {id}: {e}");
                None
            }
        };
        let Some(next) = next else { continue };
        db::execute(
            conn,
            "UPDATE triggers SET next_fire_at = $3
             WHERE tenant_id = $1 AND id = $2 AND next_fire_at IS NULL",
            &[&tenant_id, &id, &next],
        )
        .await?;
    }
    Ok(())
}
