//! The connection to a Personas cloud and the local mirrors of its runs.
//!
//! - The connection ([`CloudConnection`]): the orchestrator's URL, who the token says the caller
//!   is, and the bearer token sealed by the engine's vault — this module never sees it in
//!   plaintext (the table has no column that could hold one).
//! - Mirrors: a cloud run is stored as an ordinary execution row under the cloud's id, with
//!   `trigger_kind = 'cloud'`, so history, the execution view, stats and notifications treat it
//!   like a local one; the queue, the admission counts and crash recovery skip those rows (no
//!   local process runs them). Its output goes through the engine's writer like a local run's
//!   (idempotent by `(execution, seq)`), and `cloud_mirrors` keeps how far the cloud's client
//!   stream was applied, so a mirror resumes after a disconnect or a restart.

use crate::executions::get_in;
use crate::time::now_ms;
use crate::webhooks::SealedSecret;
use crate::{Store, StoreError, write_tx};
use personas_core::{Execution, ExecutionId, TriggerKind};
use rusqlite::{OptionalExtension, params};

/// The stored connection (the token sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct CloudConnection {
    pub url: String,
    pub token: SealedSecret,
    pub tenant_id: String,
    pub subject: String,
    pub connected_at_ms: i64,
}

/// A mirror still following its cloud run.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingMirror {
    pub execution_id: ExecutionId,
    pub url: String,
    /// The last journal number applied; the stream resumes after it.
    pub journal_seq: i64,
}

pub struct CloudRepo<'s> {
    store: &'s Store,
}

impl<'s> CloudRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Replaces the connection (one per data dir). Refused if the vault was rotated since the
    /// token was sealed.
    pub fn connect(&self, c: &CloudConnection) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            crate::webhooks::check_vault_generation(tx, c.token.generation)?;
            tx.execute(
                "INSERT INTO cloud_connection (id, url, token_sealed, generation, tenant_id, subject, connected_at)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET url = ?1, token_sealed = ?2, generation = ?3,
                    tenant_id = ?4, subject = ?5, connected_at = ?6",
                params![
                    c.url,
                    c.token.sealed,
                    c.token.generation,
                    c.tenant_id,
                    c.subject,
                    c.connected_at_ms
                ],
            )?;
            Ok(())
        })
    }

    pub fn connection(&self) -> Result<Option<CloudConnection>, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn
            .query_row(
                "SELECT url, token_sealed, generation, tenant_id, subject, connected_at
                 FROM cloud_connection WHERE id = 1",
                [],
                |r| {
                    Ok(CloudConnection {
                        url: r.get(0)?,
                        token: SealedSecret {
                            sealed: r.get(1)?,
                            generation: r.get(2)?,
                        },
                        tenant_id: r.get(3)?,
                        subject: r.get(4)?,
                        connected_at_ms: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    /// Forgets the connection; returns whether there was one. Mirrors keep their rows.
    pub fn disconnect(&self) -> Result<bool, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.execute("DELETE FROM cloud_connection WHERE id = 1", [])? > 0)
    }

    /// Stores the mirror of a cloud run: its execution row (under the cloud's id, trigger
    /// `cloud`, the cloud's own trigger in `trigger_ref`) and its bookkeeping. Idempotent: a
    /// mirror that exists is returned as stored.
    pub fn insert_mirror(&self, exec: &Execution, url: &str) -> Result<Execution, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            if let Some(found) = get_in(tx, exec.id.as_str())? {
                if found.trigger != TriggerKind::Cloud {
                    return Err(StoreError::conflict(
                        "execution",
                        format!("{} is a local execution, not a cloud run", exec.id),
                    ));
                }
                return Ok(found);
            }
            // The persona may be unknown here (pushed from another machine): keep the name.
            let persona: Option<String> = tx
                .query_row(
                    "SELECT id FROM personas WHERE id = ?1",
                    [exec.persona_id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let input = exec
                .input
                .as_ref()
                .map(|v| serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
            let cloud_trigger = match &exec.trigger_ref {
                Some(r) => format!("{}:{r}", exec.trigger),
                None => exec.trigger.to_string(),
            };
            tx.execute(
                "INSERT INTO executions (id, persona_id, persona_name, status, priority, trigger_kind,
                    trigger_ref, input, prompt_version, owner, queued_at)
                 VALUES (?1, ?2, ?3, 'queued', 0, 'cloud', ?4, ?5, ?6, 'cloud', ?7)",
                params![
                    exec.id.as_str(),
                    persona,
                    exec.persona_name,
                    cloud_trigger,
                    input,
                    exec.prompt_version,
                    exec.queued_at.timestamp_millis()
                ],
            )?;
            tx.execute(
                "INSERT INTO cloud_mirrors (execution_id, url, created_at) VALUES (?1, ?2, ?3)",
                params![exec.id.as_str(), url, now_ms()],
            )?;
            let stored = apply_in(tx, exec)?;
            stored.ok_or_else(|| StoreError::not_found("execution", exec.id.as_str()))
        })
    }

    /// Applies the cloud's record of a run to its mirror (status, timings, cost, result).
    /// Returns the stored execution when something changed; a mirror that already ended is
    /// left alone (a late or replayed frame cannot move it back).
    pub fn apply(&self, exec: &Execution) -> Result<Option<Execution>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let stored = apply_in(tx, exec)?;
            if exec.status.is_terminal() {
                tx.execute(
                    "UPDATE cloud_mirrors SET done = 1 WHERE execution_id = ?1",
                    [exec.id.as_str()],
                )?;
            }
            Ok(stored)
        })
    }

    /// Records how far the stream was applied (after its lines were stored).
    pub fn advance(&self, id: &ExecutionId, journal_seq: i64) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE cloud_mirrors SET journal_seq = MAX(journal_seq, ?2), last_error = NULL
             WHERE execution_id = ?1",
            params![id.as_str(), journal_seq],
        )?;
        Ok(())
    }

    /// Notes why following a mirror failed (shown until it progresses again).
    pub fn note_error(&self, id: &ExecutionId, error: &str) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE cloud_mirrors SET last_error = ?2 WHERE execution_id = ?1",
            params![id.as_str(), error],
        )?;
        Ok(())
    }

    /// Mirrors whose run has not ended, oldest first (restarted with the runtime).
    pub fn pending(&self) -> Result<Vec<PendingMirror>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT execution_id, url, journal_seq FROM cloud_mirrors WHERE done = 0
             ORDER BY created_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PendingMirror {
                execution_id: ExecutionId::from_string(r.get::<_, String>(0)?),
                url: r.get(1)?,
                journal_seq: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A mirror's bookkeeping: the journal number applied, whether it ended, its last error.
    pub fn mirror_state(
        &self,
        id: &ExecutionId,
    ) -> Result<Option<(i64, bool, Option<String>)>, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn
            .query_row(
                "SELECT journal_seq, done, last_error FROM cloud_mirrors WHERE execution_id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }
}

/// Inside a vault rotation: stores the connection's token re-sealed under generation `to`;
/// refused (nothing changes) if the connection appeared, vanished or was re-sealed meanwhile.
pub(crate) fn reseal_token_in(
    tx: &rusqlite::Transaction<'_>,
    from: i64,
    to: i64,
    token: Option<&SealedSecret>,
) -> Result<(), StoreError> {
    let changed = || {
        StoreError::conflict(
            "vault",
            "the cloud connection changed during the rotation; nothing was changed, run it again",
        )
    };
    let stored: Option<i64> = tx
        .query_row(
            "SELECT generation FROM cloud_connection WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match (stored, token) {
        (None, None) => Ok(()),
        (Some(_), Some(t)) => {
            let n = tx.execute(
                "UPDATE cloud_connection SET token_sealed = ?1, generation = ?2
                 WHERE id = 1 AND generation = ?3",
                params![t.sealed, to, from],
            )?;
            if n == 1 { Ok(()) } else { Err(changed()) }
        }
        _ => Err(changed()),
    }
}

/// Copies the cloud's fields onto the mirror row unless it already ended.
fn apply_in(tx: &rusqlite::Connection, e: &Execution) -> Result<Option<Execution>, StoreError> {
    let denials = serde_json::to_string(&e.permission_denials).unwrap_or_else(|_| "[]".into());
    let persona_denials = serde_json::to_string(&e.persona_denials).unwrap_or_else(|_| "[]".into());
    let ms = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis());
    let changed = tx.execute(
        "UPDATE executions SET status = ?2, session_id = ?3, model = ?4, num_turns = ?5,
            input_tokens = ?6, output_tokens = ?7, cache_read_tokens = ?8,
            cache_creation_tokens = ?9, cost_usd = ?10, result_text = ?11,
            outcome_accomplished = ?12, outcome_summary = ?13, error_class = ?14,
            error_message = ?15, permission_denials = ?16, persona_denials = ?17,
            cancel_requested = ?18, started_at = ?19, finished_at = ?20, heartbeat_at = ?21,
            output_truncated = ?22
         WHERE id = ?1 AND trigger_kind = 'cloud'
           AND status NOT IN ('completed', 'failed', 'incomplete', 'cancelled', 'timed_out')",
        params![
            e.id.as_str(),
            e.status.as_str(),
            e.session_id,
            e.model,
            e.num_turns,
            e.tokens.input,
            e.tokens.output,
            e.tokens.cache_read,
            e.tokens.cache_creation,
            e.cost_usd,
            e.result_text,
            e.outcome_accomplished,
            e.outcome_summary,
            e.error_class.map(|c| c.as_str()),
            e.error_message,
            denials,
            persona_denials,
            e.cancel_requested,
            ms(e.started_at),
            ms(e.finished_at),
            ms(e.heartbeat_at),
            e.output_truncated,
        ],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    get_in(tx, e.id.as_str())
}
