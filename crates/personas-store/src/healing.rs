//! Healing bookkeeping for ended executions, in one transaction per execution:
//! circuit breakers (per persona, and one for the model provider), durable scheduled retries of
//! transient failures, healing issues with a suggested fix, and the day's spend in the budget ledger (`stats`).
//!
//! Idempotent and crash-safe: an execution is processed once (`healed_at`), and executions that
//! ended while nobody processed them (a crash between finishing and healing, a refusal, a run
//! ended by a review decision) are found again by [`HealingRepo::unhealed`].

use crate::error::enum_at;
use crate::executions::get_in;
use crate::lookup::Lookup;
use crate::policies::policy_in;
use crate::stats::{day_of, record_spend_in};
use crate::time::{from_ms, now_ms, opt_from_ms};
use crate::{Store, StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::{
    BreakerState, ErrorClass, Execution, ExecutionId, ExecutionStatus, IssueClass, IssueStatus,
    PersonaId,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

pub struct HealingRepo<'s> {
    store: &'s Store,
}

/// The runtime's defaults (a persona's policy overrides the first two).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealingDefaults {
    /// Consecutive failures that pause a persona.
    pub failure_threshold: u32,
    /// Scheduled retries of a transient failure.
    pub max_retries: u32,
    /// Consecutive provider failures (any persona) that open the provider breaker.
    pub provider_threshold: u32,
    /// How long an open provider breaker holds the queue the first time; doubles each time it
    /// opens again without a success in between, up to `provider_cooldown_max_ms`.
    pub provider_cooldown_ms: i64,
    pub provider_cooldown_max_ms: i64,
}

/// What to tell a person about a failure that retrying will not fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub title: String,
    pub suggested_fix: String,
}

/// A scheduled retry.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct RetryScheduled {
    pub execution_id: ExecutionId,
    pub attempt: u32,
    pub not_before: DateTime<Utc>,
}

/// What healing did about one ended execution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct HealingReport {
    pub retry: Option<RetryScheduled>,
    /// The persona was paused by this failure (the reason).
    pub paused: Option<String>,
    pub issue: Option<IssueRow>,
    /// The provider breaker opened until then.
    pub provider_open_until: Option<DateTime<Utc>>,
}

/// A failure needing a person.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct IssueRow {
    pub id: String,
    pub persona_id: Option<PersonaId>,
    pub persona_name: String,
    pub execution_id: Option<ExecutionId>,
    pub error_class: IssueClass,
    pub title: String,
    pub detail: Option<String>,
    pub suggested_fix: String,
    pub status: IssueStatus,
    pub occurrences: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A circuit breaker's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerRow {
    /// `provider` or `persona:<id>`.
    pub scope: String,
    pub consecutive_failures: u32,
    pub state: BreakerState,
    pub opened_at: Option<DateTime<Utc>>,
    pub open_until: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// Error class of the issue recorded when a persona's breaker opens.
pub const PAUSED_CLASS: IssueClass = IssueClass::CIRCUIT_OPEN;

const ISSUE_COLUMNS: &str = "id, persona_id, persona_name, execution_id, error_class, title, \
    detail, suggested_fix, status, occurrences, created_at, updated_at";

fn row_to_issue(r: &Row<'_>) -> rusqlite::Result<IssueRow> {
    Ok(IssueRow {
        id: r.get(0)?,
        persona_id: r.get::<_, Option<String>>(1)?.map(PersonaId::from_string),
        persona_name: r.get(2)?,
        execution_id: r.get::<_, Option<String>>(3)?.map(ExecutionId::from_string),
        error_class: enum_at(r, 4, "healing_issues.error_class")?,
        title: r.get(5)?,
        detail: r.get(6)?,
        suggested_fix: r.get(7)?,
        status: enum_at(r, 8, "healing_issues.status")?,
        occurrences: r.get(9)?,
        created_at: from_ms(r.get(10)?),
        updated_at: from_ms(r.get(11)?),
    })
}

const BREAKER_COLUMNS: &str = "scope, consecutive_failures, state, opened_at, open_until, reason";

fn row_to_breaker(r: &Row<'_>) -> rusqlite::Result<BreakerRow> {
    Ok(BreakerRow {
        scope: r.get(0)?,
        consecutive_failures: r.get(1)?,
        state: enum_at(r, 2, "circuit_breakers.state")?,
        opened_at: opt_from_ms(r.get(3)?),
        open_until: opt_from_ms(r.get(4)?),
        reason: r.get(5)?,
    })
}

/// The scope of a persona's breaker.
pub fn persona_scope(persona_id: &PersonaId) -> String {
    format!("persona:{persona_id}")
}

fn breaker_in(conn: &Connection, scope: &str) -> Result<Option<BreakerRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {BREAKER_COLUMNS} FROM circuit_breakers WHERE scope = ?1"
        ))?
        .query_row([scope], row_to_breaker)
        .optional()?)
}

/// Counts a failure; returns the new count.
fn fail_breaker(
    conn: &Connection,
    scope: &str,
    execution: &str,
    now: i64,
) -> Result<u32, StoreError> {
    conn.execute(
        "INSERT INTO circuit_breakers (scope, consecutive_failures, last_execution_id, updated_at)
         VALUES (?1, 1, ?2, ?3)
         ON CONFLICT (scope) DO UPDATE SET consecutive_failures = consecutive_failures + 1,
            last_execution_id = excluded.last_execution_id, updated_at = excluded.updated_at",
        params![scope, execution, now],
    )?;
    Ok(conn.query_row(
        "SELECT consecutive_failures FROM circuit_breakers WHERE scope = ?1",
        [scope],
        |r| r.get(0),
    )?)
}

/// Upserts the open issue of (persona, class).
fn upsert_issue(
    conn: &Connection,
    exec: &Execution,
    class: IssueClass,
    advice: &Advice,
    detail: Option<&str>,
    now: i64,
) -> Result<IssueRow, StoreError> {
    conn.execute(
        "INSERT INTO healing_issues (id, persona_id, persona_name, execution_id, error_class, title,
            detail, suggested_fix, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
         ON CONFLICT (persona_id, error_class) WHERE status = 'open' DO UPDATE SET
            occurrences = occurrences + 1, execution_id = excluded.execution_id,
            title = excluded.title, detail = excluded.detail,
            suggested_fix = excluded.suggested_fix, updated_at = excluded.updated_at",
        params![
            uuid::Uuid::now_v7().to_string(),
            exec.persona_id.as_str(),
            exec.persona_name,
            exec.id.as_str(),
            class.as_str(),
            advice.title,
            detail,
            advice.suggested_fix,
            now
        ],
    )?;
    Ok(conn.query_row(
        &format!(
            "SELECT {ISSUE_COLUMNS} FROM healing_issues
             WHERE persona_id = ?1 AND error_class = ?2 AND status = 'open'"
        ),
        params![exec.persona_id.as_str(), class.as_str()],
        row_to_issue,
    )?)
}

/// True for a class whose failure says nothing about the persona (a person or the runtime
/// ended it, or admission refused it).
fn not_a_failure(class: Option<ErrorClass>) -> bool {
    matches!(
        class,
        Some(ErrorClass::Refused | ErrorClass::Cancelled | ErrorClass::Interrupted)
    )
}

impl<'s> HealingRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Processes one ended execution (see the module docs). `None` when it is not ended or was
    /// processed already. `delay_ms(attempt)` gives the wait before retry `attempt` (1-based);
    /// `advice` the title and fix of a failure class.
    pub fn record_outcome(
        &self,
        id: &ExecutionId,
        defaults: &HealingDefaults,
        delay_ms: &dyn Fn(u32) -> i64,
        advice: &dyn Fn(ErrorClass, &Execution) -> Advice,
    ) -> Result<Option<HealingReport>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let Some(exec) = get_in(tx, id.as_str())? else {
                return Ok(None);
            };
            let (healed, attempt): (Option<i64>, u32) = tx.query_row(
                "SELECT healed_at, retry_attempt FROM executions WHERE id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if healed.is_some() || !exec.status.is_terminal() {
                return Ok(None);
            }
            let now = now_ms();
            tx.execute(
                "UPDATE executions SET healed_at = ?2 WHERE id = ?1",
                params![id.as_str(), now],
            )?;
            let persona = exec.persona_id.as_str();
            if persona.is_empty() {
                return Ok(Some(HealingReport::default()));
            }
            if let Some(finished) = exec.finished_at {
                record_spend_in(tx, &day_of(finished.timestamp_millis(), 0), persona)?;
            }
            let report = heal(tx, &exec, attempt, defaults, delay_ms, advice, now)?;
            Ok(Some(report))
        })
    }

    /// Ended executions not processed yet (oldest first), for the start-up and periodic sweep.
    pub fn unhealed(&self, limit: u32) -> Result<Vec<ExecutionId>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id FROM executions WHERE healed_at IS NULL
               AND status NOT IN ('queued', 'running', 'awaiting_review')
             ORDER BY finished_at LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(ExecutionId::from_string(r.get::<_, String>(0)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Closes a paused persona's breaker so it runs again. `Conflict` when it is not paused.
    pub fn resume_persona(&self, persona_id: &PersonaId, name: &str) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let now = now_ms();
            let n = tx.execute(
                "UPDATE circuit_breakers SET state = 'closed', consecutive_failures = 0,
                    reason = NULL, open_until = NULL, updated_at = ?2
                 WHERE scope = ?1 AND state = 'open'",
                params![persona_scope(persona_id), now],
            )?;
            if n == 0 {
                return Err(StoreError::conflict(
                    "persona",
                    format!("{name} is not paused; there is nothing to resume"),
                ));
            }
            tx.execute(
                "UPDATE healing_issues SET status = 'resolved', resolved_at = ?3, updated_at = ?3
                 WHERE persona_id = ?1 AND error_class = ?2 AND status = 'open'",
                params![persona_id.as_str(), PAUSED_CLASS.as_str(), now],
            )?;
            Ok(())
        })
    }

    /// A persona's breaker, if it ever failed.
    pub fn persona_breaker(
        &self,
        persona_id: &PersonaId,
    ) -> Result<Option<BreakerRow>, StoreError> {
        let conn = self.store.conn()?;
        breaker_in(&conn, &persona_scope(persona_id))
    }

    /// Every breaker (provider and personas).
    pub fn breakers(&self) -> Result<Vec<BreakerRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {BREAKER_COLUMNS} FROM circuit_breakers ORDER BY scope"
        ))?;
        let rows = stmt.query_map([], row_to_breaker)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Healing issues, most recently updated first.
    pub fn issues(
        &self,
        status: Option<IssueStatus>,
        limit: u32,
    ) -> Result<Vec<IssueRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {ISSUE_COLUMNS} FROM healing_issues WHERE (?1 IS NULL OR status = ?1)
             ORDER BY updated_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![status.map(IssueStatus::as_str), limit],
            row_to_issue,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks an issue resolved (by id or unique prefix).
    pub fn resolve_issue(&self, id_or_prefix: &str) -> Result<IssueRow, StoreError> {
        let conn = self.store.conn()?;
        let issue = Lookup {
            what: "healing issue",
            select: &format!("SELECT {ISSUE_COLUMNS} FROM healing_issues"),
            id_column: "id",
        }
        .find(&conn, id_or_prefix, row_to_issue)?;
        if issue.status != IssueStatus::Open {
            return Err(StoreError::conflict(
                "issue",
                format!("issue {} is already {}", issue.id, issue.status),
            ));
        }
        let now = now_ms();
        conn.execute(
            "UPDATE healing_issues SET status = 'resolved', resolved_at = ?2, updated_at = ?2 WHERE id = ?1",
            params![issue.id, now],
        )?;
        Ok(IssueRow {
            status: IssueStatus::Resolved,
            updated_at: from_ms(now),
            ..issue
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn heal(
    tx: &Connection,
    exec: &Execution,
    attempt: u32,
    defaults: &HealingDefaults,
    delay_ms: &dyn Fn(u32) -> i64,
    advice: &dyn Fn(ErrorClass, &Execution) -> Advice,
    now: i64,
) -> Result<HealingReport, StoreError> {
    let mut report = HealingReport::default();
    let persona_id = &exec.persona_id;
    let scope = persona_scope(persona_id);
    let succeeded = matches!(
        exec.status,
        ExecutionStatus::Completed | ExecutionStatus::Incomplete
    );
    if succeeded {
        tx.execute(
            "UPDATE circuit_breakers SET consecutive_failures = 0, updated_at = ?2
             WHERE scope = ?1 AND state = 'closed'",
            params![scope, now],
        )?;
        // The model provider answered: its breaker closes.
        tx.execute(
            "UPDATE circuit_breakers SET consecutive_failures = 0, state = 'closed',
                open_until = NULL, times_opened = 0, reason = NULL, updated_at = ?1
             WHERE scope = 'provider'",
            [now],
        )?;
        // Whatever kept failing works now.
        tx.execute(
            "UPDATE healing_issues SET status = 'resolved', resolved_at = ?3, updated_at = ?3
             WHERE persona_id = ?1 AND status = 'open' AND error_class != ?2",
            params![persona_id.as_str(), PAUSED_CLASS.as_str(), now],
        )?;
        return Ok(report);
    }
    if exec.status == ExecutionStatus::Cancelled || not_a_failure(exec.error_class) {
        return Ok(report);
    }
    let class = exec.error_class.unwrap_or(ErrorClass::Unknown);
    let policy = policy_in(tx, persona_id.as_str())?;
    let threshold = policy
        .failure_threshold
        .unwrap_or(defaults.failure_threshold)
        .max(1);
    let failures = fail_breaker(tx, &scope, exec.id.as_str(), now)?;
    let already_open = breaker_in(tx, &scope)?.is_some_and(|b| b.state == BreakerState::Open);
    if failures >= threshold && !already_open {
        let reason = format!(
            "after {failures} consecutive failures; last: [{class}] {}",
            exec.error_message.as_deref().unwrap_or("no message")
        );
        tx.execute(
            "UPDATE circuit_breakers SET state = 'open', opened_at = ?2, reason = ?3,
                times_opened = times_opened + 1, updated_at = ?2
             WHERE scope = ?1",
            params![scope, now, reason],
        )?;
        let pause_advice = Advice {
            title: format!(
                "{} was paused after {failures} failures in a row",
                exec.persona_name
            ),
            suggested_fix: format!(
                "Look at the last failures (`personas execution list --persona \"{0}\"`), fix \
                 the cause, then run `personas persona resume \"{0}\"`.",
                exec.persona_name
            ),
        };
        report.issue = Some(upsert_issue(
            tx,
            exec,
            PAUSED_CLASS,
            &pause_advice,
            Some(&reason),
            now,
        )?);
        report.paused = Some(reason);
    }
    let paused = report.paused.is_some() || already_open;
    if class.is_transient() {
        let provider = fail_breaker(tx, "provider", exec.id.as_str(), now)?;
        let open = breaker_in(tx, "provider")?;
        let still_open = open.as_ref().is_some_and(|b| {
            b.state == BreakerState::Open
                && b.open_until.is_some_and(|u| u.timestamp_millis() > now)
        });
        if provider >= defaults.provider_threshold.max(1) && !still_open {
            let times: u32 = tx.query_row(
                "SELECT times_opened FROM circuit_breakers WHERE scope = 'provider'",
                [],
                |r| r.get(0),
            )?;
            let cooldown = defaults
                .provider_cooldown_ms
                .saturating_mul(1_i64 << times.min(16))
                .min(defaults.provider_cooldown_max_ms);
            let until = now + cooldown;
            tx.execute(
                "UPDATE circuit_breakers SET state = 'open', opened_at = ?1, open_until = ?2,
                    times_opened = times_opened + 1, reason = ?3, updated_at = ?1
                 WHERE scope = 'provider'",
                params![
                    now,
                    until,
                    format!("{provider} provider failures in a row; last: [{class}]")
                ],
            )?;
            report.provider_open_until = Some(from_ms(until));
        }
        let max_retries = policy.max_retries.unwrap_or(defaults.max_retries);
        if !paused && attempt < max_retries {
            report.retry = schedule_retry(tx, exec, attempt + 1, now + delay_ms(attempt + 1), now)?;
        }
        if report.retry.is_none() && !paused {
            let a = advice(class, exec);
            report.issue = Some(upsert_issue(
                tx,
                exec,
                class.into(),
                &a,
                exec.error_message.as_deref(),
                now,
            )?);
        }
    } else if report.issue.is_none() {
        let a = advice(class, exec);
        report.issue = Some(upsert_issue(
            tx,
            exec,
            class.into(),
            &a,
            exec.error_message.as_deref(),
            now,
        )?);
    }
    Ok(report)
}

/// Queues retry `attempt` of `failed` to start no earlier than `not_before`. At most one retry
/// per failed execution (its idempotency key); none for a disabled or deleted persona.
fn schedule_retry(
    tx: &Connection,
    failed: &Execution,
    attempt: u32,
    not_before: i64,
    now: i64,
) -> Result<Option<RetryScheduled>, StoreError> {
    let id = ExecutionId::new();
    let n = tx.execute(
        "INSERT OR IGNORE INTO executions (id, persona_id, persona_name, status, priority,
            trigger_kind, trigger_ref, idempotency_key, input, prompt_version, queued_at,
            not_before, retry_attempt)
         SELECT ?1, e.persona_id, p.name, 'queued', e.priority, 'retry', e.id, 'retry:' || e.id,
            e.input, p.prompt_version, ?2, ?3, ?4
         FROM executions e JOIN personas p ON p.id = e.persona_id
         WHERE e.id = ?5 AND p.enabled = 1",
        params![id.as_str(), now, not_before, attempt, failed.id.as_str()],
    )?;
    Ok((n == 1).then(|| RetryScheduled {
        execution_id: id,
        attempt,
        not_before: from_ms(not_before),
    }))
}
