//! Executions (the queue is this table) and their output lines.
//!
//! Claiming is one `BEGIN IMMEDIATE` transaction that checks the global and per-persona limits
//! and flips a row from `queued` to `running`, so two engines (or an engine and a foreground CLI
//! run) can never start the same execution or exceed a persona's `max_concurrent`.

use crate::error::{enum_at, json_col, opt_enum_at};
use crate::lookup::Lookup;
use crate::time::{from_ms, now_ms, opt_from_ms};
use crate::{Store, StoreError, write_tx};
use personas_core::{
    ErrorClass, Execution, ExecutionId, ExecutionOutcome, ExecutionStatus, LineKind, OutputLine,
    PersonaDenial, PersonaId, TokenUsage, TriggerKind,
};
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

pub struct ExecutionRepo<'s> {
    pub(crate) store: &'s Store,
}

/// A request to run a persona.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub persona_id: PersonaId,
    pub trigger: TriggerKind,
    pub trigger_ref: Option<String>,
    pub input: Option<Value>,
    /// Defaults to the trigger's priority.
    pub priority: Option<i32>,
    /// At most one execution exists per key; enqueuing a known key returns the existing one.
    pub idempotency_key: Option<String>,
}

impl NewExecution {
    pub fn manual(persona_id: PersonaId, input: Option<Value>) -> Self {
        Self {
            persona_id,
            trigger: TriggerKind::Manual,
            trigger_ref: None,
            input,
            priority: None,
            idempotency_key: None,
        }
    }
}

/// One output line to append.
#[derive(Debug, Clone)]
pub struct NewLine {
    pub execution_id: ExecutionId,
    pub seq: i64,
    pub kind: LineKind,
    pub text: String,
    pub at_ms: i64,
}

/// Which executions to list.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub persona_id: Option<PersonaId>,
    pub status: Option<ExecutionStatus>,
    pub limit: Option<u32>,
}

const COLUMNS: &str = "id, persona_id, persona_name, status, priority, trigger_kind, trigger_ref, \
    input, prompt_version, session_id, model, num_turns, input_tokens, output_tokens, \
    cache_read_tokens, cache_creation_tokens, cost_usd, result_text, outcome_accomplished, \
    outcome_summary, error_class, error_message, permission_denials, parse_warnings, \
    output_lines, output_truncated, cancel_requested, queued_at, started_at, finished_at, \
    heartbeat_at, persona_denials";

fn row_to_execution(r: &Row<'_>) -> rusqlite::Result<Execution> {
    let input: Option<String> = r.get(7)?;
    let denials: String = r.get(22)?;
    Ok(Execution {
        id: ExecutionId::from_string(r.get::<_, String>(0)?),
        persona_id: PersonaId::from_string(r.get::<_, Option<String>>(1)?.unwrap_or_default()),
        persona_name: r.get(2)?,
        status: enum_at(r, 3, "executions.status")?,
        priority: r.get(4)?,
        trigger: enum_at(r, 5, "executions.trigger_kind")?,
        trigger_ref: r.get(6)?,
        input: input.map(|s| json_col("input", &s)).transpose()?,
        prompt_version: r.get(8)?,
        session_id: r.get(9)?,
        model: r.get(10)?,
        num_turns: r.get(11)?,
        tokens: TokenUsage {
            input: r.get(12)?,
            output: r.get(13)?,
            cache_read: r.get(14)?,
            cache_creation: r.get(15)?,
        },
        cost_usd: r.get(16)?,
        result_text: r.get(17)?,
        outcome_accomplished: r.get(18)?,
        outcome_summary: r.get(19)?,
        error_class: opt_enum_at(r, 20, "executions.error_class")?,
        error_message: r.get(21)?,
        permission_denials: json_col("permission_denials", &denials)?,
        parse_warnings: r.get(23)?,
        output_lines: r.get(24)?,
        output_truncated: r.get(25)?,
        cancel_requested: r.get(26)?,
        queued_at: from_ms(r.get(27)?),
        started_at: opt_from_ms(r.get(28)?),
        finished_at: opt_from_ms(r.get(29)?),
        heartbeat_at: opt_from_ms(r.get(30)?),
        persona_denials: json_col("persona_denials", &r.get::<_, String>(31)?)?,
    })
}

pub(crate) fn get_in(
    conn: &rusqlite::Connection,
    id: &str,
) -> Result<Option<Execution>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM executions WHERE id = ?1"),
            [id],
            row_to_execution,
        )
        .optional()?)
}

/// What queueing a run needs to know about its persona. The bus looks each persona up once per
/// delivery batch.
#[derive(Debug, Clone)]
pub(crate) struct QueueTarget {
    pub name: String,
    pub enabled: bool,
    pub prompt_version: i64,
}

pub(crate) fn queue_target(
    tx: &rusqlite::Connection,
    persona_id: &PersonaId,
) -> Result<Option<QueueTarget>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT name, enabled, prompt_version FROM personas WHERE id = ?1")?
        .query_row([persona_id.as_str()], |r| {
            Ok(QueueTarget {
                name: r.get(0)?,
                enabled: r.get(1)?,
                prompt_version: r.get(2)?,
            })
        })
        .optional()?)
}

fn existing_by_key(
    tx: &rusqlite::Connection,
    new: &NewExecution,
) -> Result<Option<ExecutionId>, StoreError> {
    let Some(key) = &new.idempotency_key else {
        return Ok(None);
    };
    Ok(tx
        .prepare_cached("SELECT id FROM executions WHERE idempotency_key = ?1")?
        .query_row([key], |r| r.get::<_, String>(0))
        .optional()?
        .map(ExecutionId::from_string))
}

/// Queues a run inside the caller's transaction. Returns the execution's id, and the execution
/// itself when it is new: a known idempotency key returns the existing one's id (even if its
/// persona has since been disabled or deleted).
pub(crate) fn enqueue_for(
    tx: &rusqlite::Connection,
    new: &NewExecution,
    persona: Option<&QueueTarget>,
) -> Result<(ExecutionId, Option<Execution>), StoreError> {
    let persona = match persona {
        Some(p) if p.enabled => p,
        other => {
            if let Some(existing) = existing_by_key(tx, new)? {
                return Ok((existing, None));
            }
            return Err(match other {
                Some(p) => StoreError::conflict(
                    "persona",
                    format!("{} is disabled; enable it to run it", p.name),
                ),
                None => StoreError::not_found("persona", new.persona_id.as_str()),
            });
        }
    };
    let id = ExecutionId::new();
    let input = new
        .input
        .as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_else(|_| "null".into()));
    let priority = new.priority.unwrap_or_else(|| new.trigger.priority());
    let now = now_ms();
    let inserted = tx
        .prepare_cached(
            "INSERT INTO executions (id, persona_id, persona_name, status, priority, trigger_kind,
                trigger_ref, idempotency_key, input, prompt_version, queued_at)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )?
        .execute(params![
            id.as_str(),
            new.persona_id.as_str(),
            persona.name,
            priority,
            new.trigger.as_str(),
            new.trigger_ref,
            new.idempotency_key,
            input,
            persona.prompt_version,
            now
        ])?;
    if inserted == 0 {
        let existing = existing_by_key(tx, new)?
            .ok_or_else(|| StoreError::Corrupt("idempotency conflict without a row".into()))?;
        return Ok((existing, None));
    }
    // Built from what was just written rather than read back: the bus queues thousands a second.
    let exec = Execution {
        priority,
        trigger_ref: new.trigger_ref.clone(),
        input: new.input.clone(),
        prompt_version: Some(persona.prompt_version),
        ..Execution::queued(
            id.clone(),
            new.persona_id.clone(),
            persona.name.clone(),
            new.trigger,
            from_ms(now),
        )
    };
    Ok((id, Some(exec)))
}

/// Queues a run inside the caller's transaction; see [`enqueue_for`].
pub(crate) fn enqueue_in(
    tx: &rusqlite::Connection,
    new: &NewExecution,
) -> Result<(ExecutionId, bool), StoreError> {
    let target = queue_target(tx, &new.persona_id)?;
    let (id, created) = enqueue_for(tx, new, target.as_ref())?;
    Ok((id, created.is_some()))
}

impl<'s> ExecutionRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Queues a run. Durable when this returns. Refused for a disabled persona.
    pub fn enqueue(&self, new: &NewExecution) -> Result<Execution, StoreError> {
        let mut conn = self.store.conn()?;
        let (id, _) = write_tx(&mut conn, |tx| enqueue_in(tx, new))?;
        self.get(&id)
    }

    pub fn get(&self, id: &ExecutionId) -> Result<Execution, StoreError> {
        let conn = self.store.conn()?;
        get_in(&conn, id.as_str())?.ok_or_else(|| StoreError::not_found("execution", id.as_str()))
    }

    /// Looks an execution up by its id or a unique prefix of it (at least 4 characters).
    pub fn find(&self, id_or_prefix: &str) -> Result<Execution, StoreError> {
        let conn = self.store.conn()?;
        Lookup {
            what: "execution",
            select: &format!("SELECT {COLUMNS} FROM executions"),
            id_column: "id",
        }
        .find(&conn, id_or_prefix, row_to_execution)
    }

    /// Newest first.
    pub fn list(&self, filter: &ExecutionFilter) -> Result<Vec<Execution>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM executions
             WHERE (?1 IS NULL OR persona_id = ?1) AND (?2 IS NULL OR status = ?2)
             ORDER BY queued_at DESC, id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![
                filter.persona_id.as_ref().map(|p| p.as_str()),
                filter.status.map(|s| s.as_str()),
                filter.limit.unwrap_or(50)
            ],
            row_to_execution,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Takes the next queued execution that may start now under `global_limit` running
    /// executions and its persona's `max_concurrent`, marking it running for `owner`. Highest
    /// priority first, then oldest. `None` when nothing can start now. Admission rules
    /// (scheduled times, paused personas, budgets) apply: see [`ExecutionRepo::admit_next`].
    pub fn claim_next(
        &self,
        global_limit: u32,
        owner: &str,
    ) -> Result<Option<Execution>, StoreError> {
        Ok(self
            .admit_next(global_limit, owner, &Default::default())?
            .started)
    }

    /// Claims one specific queued execution (a foreground `personas run --follow`), subject to
    /// the same rules. `Ok(None)` when it cannot start (yet).
    pub fn claim(
        &self,
        id: &ExecutionId,
        global_limit: u32,
        owner: &str,
    ) -> Result<Option<Execution>, StoreError> {
        Ok(self
            .admit(id, global_limit, owner, &Default::default())?
            .started)
    }

    /// Records the CLI process serving a running execution.
    pub fn set_pid(&self, id: &ExecutionId, pid: u32) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE executions SET pid = ?2 WHERE id = ?1",
            params![id.as_str(), pid],
        )?;
        Ok(())
    }

    /// Records the Claude session as soon as the CLI announces it.
    pub fn set_session(
        &self,
        id: &ExecutionId,
        session_id: &str,
        model: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE executions SET session_id = ?2, model = COALESCE(?3, model) WHERE id = ?1",
            params![id.as_str(), session_id, model],
        )?;
        Ok(())
    }

    /// Refreshes the liveness stamp of every execution `owner` is running, and returns those
    /// among them whose cancellation was requested (possibly by another process).
    pub fn heartbeat(&self, owner: &str) -> Result<Vec<ExecutionId>, StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE executions SET heartbeat_at = ?2 WHERE owner = ?1 AND status = 'running'",
            params![owner, now_ms()],
        )?;
        let mut stmt = conn.prepare(
            "SELECT id FROM executions WHERE owner = ?1 AND status = 'running' AND cancel_requested = 1",
        )?;
        let ids = stmt.query_map([owner], |r| {
            Ok(ExecutionId::from_string(r.get::<_, String>(0)?))
        })?;
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Records how a running execution ended. Returns the stored execution.
    pub fn finish(
        &self,
        id: &ExecutionId,
        outcome: &ExecutionOutcome,
    ) -> Result<Execution, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let denials =
                serde_json::to_string(&outcome.permission_denials).unwrap_or_else(|_| "[]".into());
            tx.execute(
                "UPDATE executions SET status = ?2, error_class = ?3, error_message = ?4,
                    session_id = COALESCE(?5, session_id), model = COALESCE(?6, model),
                    num_turns = ?7, input_tokens = ?8, output_tokens = ?9, cache_read_tokens = ?10,
                    cache_creation_tokens = ?11, cost_usd = ?12, result_text = ?13,
                    permission_denials = ?14, finished_at = ?15, heartbeat_at = ?15
                 WHERE id = ?1 AND status = 'running'",
                params![
                    id.as_str(),
                    outcome.status.as_str(),
                    outcome.error_class.map(|c| c.as_str()),
                    outcome.error_message,
                    outcome.session_id,
                    outcome.model,
                    outcome.num_turns,
                    outcome.tokens.input,
                    outcome.tokens.output,
                    outcome.tokens.cache_read,
                    outcome.tokens.cache_creation,
                    outcome.cost_usd,
                    outcome.result_text,
                    denials,
                    now_ms(),
                ],
            )?;
            get_in(tx, id.as_str())?.ok_or_else(|| StoreError::not_found("execution", id.as_str()))
        })
    }

    /// Records that the execution was refused permission to start a persona. Appended in one
    /// statement, so the runner and the run's MCP server (another process) never lose each
    /// other's entries.
    pub fn add_persona_denial(
        &self,
        id: &ExecutionId,
        denial: &PersonaDenial,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        let entry = serde_json::to_string(denial)
            .map_err(|e| StoreError::Corrupt(format!("persona denial: {e}")))?;
        write_tx(&mut conn, |tx| {
            let changed = tx.execute(
                "UPDATE executions SET persona_denials = json_insert(persona_denials, '$[#]', json(?2))
                 WHERE id = ?1",
                params![id.as_str(), entry],
            )?;
            if changed == 0 {
                return Err(StoreError::not_found("execution", id.as_str()));
            }
            Ok(())
        })
    }

    /// Stores the agent's own assessment of whether it accomplished its task.
    pub fn set_outcome_assessment(
        &self,
        id: &ExecutionId,
        accomplished: bool,
        summary: &str,
    ) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE executions SET outcome_accomplished = ?2, outcome_summary = ?3 WHERE id = ?1",
            params![id.as_str(), accomplished, summary],
        )?;
        Ok(())
    }

    /// Asks for an execution to stop. A queued one is cancelled at once; a running one is
    /// flagged and its owner stops it; a finished one is left alone (`Conflict`).
    pub fn request_cancel(&self, id: &ExecutionId) -> Result<Execution, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let exec = get_in(tx, id.as_str())?
                .ok_or_else(|| StoreError::not_found("execution", id.as_str()))?;
            match exec.status {
                ExecutionStatus::Queued | ExecutionStatus::AwaitingReview => {
                    tx.execute(
                        "UPDATE executions SET status = 'cancelled', error_class = 'cancelled',
                            error_message = 'cancelled by user', finished_at = ?2 WHERE id = ?1",
                        params![id.as_str(), now_ms()],
                    )?;
                }
                ExecutionStatus::Running => {
                    tx.execute(
                        "UPDATE executions SET cancel_requested = 1 WHERE id = ?1",
                        [id.as_str()],
                    )?;
                }
                done => {
                    return Err(StoreError::conflict(
                        "execution",
                        format!("{} already ended ({done})", id),
                    ));
                }
            }
            get_in(tx, id.as_str())?.ok_or_else(|| StoreError::not_found("execution", id.as_str()))
        })
    }

    /// Executions marked running by an owner that is gone (crashed daemon, killed CLI): marks
    /// them failed with class `interrupted` and returns them so their processes can be reaped.
    /// `owner_alive` gets the owner and the execution's last heartbeat.
    pub fn recover_interrupted(
        &self,
        owner_alive: &dyn Fn(&str, Option<chrono::DateTime<chrono::Utc>>) -> bool,
    ) -> Result<Vec<Execution>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS}, owner FROM executions WHERE status = 'running' AND trigger_kind != 'cloud'"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok((row_to_execution(r)?, r.get::<_, Option<String>>(32)?))
            })?;
            let mut dead = Vec::new();
            for row in rows {
                let (exec, owner) = row?;
                if !owner
                    .as_deref()
                    .is_some_and(|o| owner_alive(o, exec.heartbeat_at))
                {
                    dead.push(exec);
                }
            }
            let now = now_ms();
            for exec in &mut dead {
                tx.execute(
                    "UPDATE executions SET status = 'failed', error_class = 'interrupted',
                        error_message = 'the process running it stopped unexpectedly (crash or kill); it was not resumed',
                        finished_at = ?2 WHERE id = ?1 AND status = 'running'",
                    params![exec.id.as_str(), now],
                )?;
                exec.status = ExecutionStatus::Failed;
                exec.error_class = Some(ErrorClass::Interrupted);
            }
            Ok(dead)
        })
    }

    /// Appends output lines in one transaction (group commit for all runners).
    pub fn append_output(&self, lines: &[NewLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO execution_output (execution_id, seq, kind, text, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut bump = tx.prepare_cached(
                "UPDATE executions SET output_lines = MAX(output_lines, ?2),
                    parse_warnings = parse_warnings + ?3 WHERE id = ?1",
            )?;
            let mut i = 0;
            while i < lines.len() {
                // Lines of one execution arrive in runs; bump its counters once per run.
                let id = &lines[i].execution_id;
                let mut max_seq = 0;
                let mut warnings = 0;
                while i < lines.len() && &lines[i].execution_id == id {
                    let l = &lines[i];
                    insert.execute(params![
                        l.execution_id.as_str(),
                        l.seq,
                        l.kind.as_str(),
                        l.text,
                        l.at_ms
                    ])?;
                    max_seq = max_seq.max(l.seq);
                    warnings += i64::from(l.kind == LineKind::Warning);
                    i += 1;
                }
                bump.execute(params![id.as_str(), max_seq, warnings])?;
            }
            Ok(())
        })
    }

    /// Marks that the execution's stored output hit its size cap.
    pub fn set_output_truncated(&self, id: &ExecutionId) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE executions SET output_truncated = 1 WHERE id = ?1",
            [id.as_str()],
        )?;
        Ok(())
    }

    /// Output lines with `seq > after`, in order, at most `limit`.
    pub fn output(
        &self,
        id: &ExecutionId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<OutputLine>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, text, at FROM execution_output WHERE execution_id = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![id.as_str(), after, limit], |r| {
            Ok(OutputLine {
                execution_id: id.clone(),
                seq: r.get(0)?,
                kind: enum_at(r, 1, "execution_output.kind")?,
                text: r.get(2)?,
                at: from_ms(r.get(3)?),
                // Computed by whoever serves the line (`OutputLine::framed`), not stored.
                frame: None,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of executions in a status (all personas).
    pub fn count(&self, status: ExecutionStatus) -> Result<u64, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM executions WHERE status = ?1",
            [status.as_str()],
            |r| r.get(0),
        )?)
    }
}
