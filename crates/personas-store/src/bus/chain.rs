//! Chain events: when an execution ends, one event per chain trigger waiting for its persona
//! (idempotent per trigger and execution, so recovery after a crash can republish safely).

use super::EventRow;
use super::{BusRepo, NewEvent, get_event_in, insert_event_in};
use crate::error::json_col;
use crate::time::now_ms;
use crate::{StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::trigger::{ChainOn, SourceKind, TriggerConfig};
use personas_core::{Execution, ExecutionId, PersonaId, TriggerId};
use rusqlite::params;
use serde_json::json;

impl BusRepo<'_> {
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
