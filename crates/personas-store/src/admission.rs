//! Admission: the one transaction that moves a queued execution to `running`.
//!
//! Besides the global limit and the persona's `max_concurrent` it honours, in order:
//! - the provider circuit breaker: while open, nothing starts (work stays queued);
//! - `not_before` (scheduled retries wait for their time);
//! - the persona's circuit breaker: a paused persona's execution is refused;
//! - budgets: the persona's daily/monthly caps and the global ones, against the cost of what
//!   ended today / this month (UTC; the month's earlier days from the daily spend ledger). Over a
//!   cap, the execution is refused.
//!
//! A refused execution ends `failed` with error class `refused` and a reason saying which limit
//! and how to lift it; it is returned so the caller can announce it.

use crate::executions::get_in;
use crate::policies::policy_in;
use crate::stats::day_of;
use crate::time::now_ms;
use crate::{ExecutionRepo, StoreError, write_tx};
use chrono::{Datelike, TimeZone, Utc};
use personas_core::{Execution, ExecutionId};
use rusqlite::{Connection, OptionalExtension, params};

/// Global spending caps (from the runtime's configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GlobalCaps {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

/// What one admission attempt did.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Claimed and now running for the caller.
    pub started: Option<Execution>,
    /// Refused on the way (paused persona, budget), now ended.
    pub refused: Vec<Execution>,
}

/// At most this many refusals per attempt, so one attempt stays short under a write lock.
const MAX_REFUSALS: usize = 32;

/// Start of the current UTC day and month, in ms.
pub fn period_starts(now_ms: i64) -> (i64, i64) {
    let now = Utc
        .timestamp_millis_opt(now_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let day = now.date_naive();
    let day_start = day
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or(now_ms);
    let month_start = day
        .with_day(1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or(day_start);
    (day_start, month_start)
}

/// Money spent since the start of today (UTC) by executions that ended (or paused), one
/// persona or all. Reads only today's rows, from a covering index.
pub(crate) fn spent_today(
    conn: &Connection,
    persona_id: Option<&str>,
    day_start_ms: i64,
) -> Result<f64, StoreError> {
    let total = match persona_id {
        Some(p) => conn
            .prepare_cached(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM executions
                 WHERE persona_id = ?1 AND finished_at >= ?2",
            )?
            .query_row(params![p, day_start_ms], |r| r.get(0))?,
        None => conn
            .prepare_cached(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM executions WHERE finished_at >= ?1",
            )?
            .query_row([day_start_ms], |r| r.get(0))?,
    };
    Ok(total)
}

/// Money spent this month before today, from the daily spend ledger (`stats`).
pub(crate) fn spent_earlier_this_month(
    conn: &Connection,
    persona_id: Option<&str>,
    day_start_ms: i64,
    month_start_ms: i64,
) -> Result<f64, StoreError> {
    let (from, to) = (day_of(month_start_ms, 0), day_of(day_start_ms, 0));
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM spend_daily
             WHERE day >= ?1 AND day < ?2 AND (?3 IS NULL OR persona_id = ?3)",
        )?
        .query_row(params![from, to, persona_id], |r| r.get(0))?)
}

/// Why `exec` may not start now, if it may not.
fn refusal(
    conn: &Connection,
    exec: &Execution,
    caps: &GlobalCaps,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let persona = exec.persona_id.as_str();
    let paused: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT reason FROM circuit_breakers WHERE scope = 'persona:' || ?1 AND state = 'open'",
        )?
        .query_row([persona], |r| r.get(0))
        .optional()?;
    if let Some(reason) = paused {
        return Ok(Some(format!(
            "{} is paused{}; resume it with `personas persona resume \"{}\"`",
            exec.persona_name,
            reason.map(|r| format!(" {r}")).unwrap_or_default(),
            exec.persona_name
        )));
    }
    let (day, month) = period_starts(now);
    let policy = policy_in(conn, persona)?;
    let checks = [
        ("daily", policy.daily_budget_usd, Some(persona), "today"),
        (
            "monthly",
            policy.monthly_budget_usd,
            Some(persona),
            "this month",
        ),
        ("daily", caps.daily_usd, None, "today"),
        ("monthly", caps.monthly_usd, None, "this month"),
    ];
    // Today's spend is read at most once per scope (persona, global).
    let mut today: [Option<f64>; 2] = [None, None];
    for (period, cap, who, when) in checks {
        let Some(cap) = cap else { continue };
        let slot = usize::from(who.is_none());
        let spent_today = match today[slot] {
            Some(v) => v,
            None => *today[slot].insert(spent_today(conn, who, day)?),
        };
        let spent = if period == "daily" {
            spent_today
        } else {
            spent_today + spent_earlier_this_month(conn, who, day, month)?
        };
        if spent >= cap {
            let whose = match who {
                Some(_) => format!("{}'s", exec.persona_name),
                None => "the global".to_string(),
            };
            let fix = match who {
                Some(_) => format!(
                    "raise it with `personas persona policy \"{}\" --{period}-budget-usd N`",
                    exec.persona_name
                ),
                None => format!("raise budget.{period}_usd in config.toml"),
            };
            return Ok(Some(format!(
                "{whose} {period} budget of {} is used up ({} spent {when}, UTC); {fix}",
                usd(cap),
                usd(spent)
            )));
        }
    }
    Ok(None)
}

/// Dollars with cents, or with four decimals for amounts under a cent.
fn usd(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// True while the provider breaker holds the queue.
fn provider_open(conn: &Connection, now: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM circuit_breakers WHERE scope = 'provider' AND state = 'open'
               AND open_until > ?1",
        )?
        .query_row([now], |_| Ok(true))
        .optional()?
        .unwrap_or(false))
}

fn refuse(conn: &Connection, id: &str, reason: &str, now: i64) -> Result<Execution, StoreError> {
    conn.execute(
        "UPDATE executions SET status = 'failed', error_class = 'refused', error_message = ?2,
            finished_at = ?3, resume_session_id = NULL, resume_prompt = NULL
         WHERE id = ?1 AND status = 'queued'",
        params![id, reason, now],
    )?;
    get_in(conn, id)?.ok_or_else(|| StoreError::not_found("execution", id.to_string()))
}

fn start(conn: &Connection, id: &str, owner: &str, now: i64) -> Result<Execution, StoreError> {
    // A resumed execution keeps its first start time: its timeline spans the review.
    conn.execute(
        "UPDATE executions SET status = 'running', owner = ?2, started_at = COALESCE(started_at, ?3),
            heartbeat_at = ?3
         WHERE id = ?1 AND status = 'queued'",
        params![id, owner, now],
    )?;
    get_in(conn, id)?.ok_or_else(|| StoreError::not_found("execution", id.to_string()))
}

impl ExecutionRepo<'_> {
    /// Takes the next queued execution that may start now (see the module docs), highest
    /// priority first, then oldest, marking it running for `owner`. Executions refused on the
    /// way are ended and returned.
    pub fn admit_next(
        &self,
        global_limit: u32,
        owner: &str,
        caps: &GlobalCaps,
    ) -> Result<Admitted, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let mut out = Admitted::default();
            let now = now_ms();
            if provider_open(tx, now)? {
                return Ok(out);
            }
            let running: u32 = tx.query_row(
                "SELECT COUNT(*) FROM executions WHERE status = 'running' AND trigger_kind != 'cloud'",
                [],
                |r| r.get(0),
            )?;
            if running >= global_limit {
                return Ok(out);
            }
            while out.refused.len() < MAX_REFUSALS {
                let next: Option<String> = tx
                    .prepare_cached(
                        "SELECT e.id FROM executions e JOIN personas p ON p.id = e.persona_id
                         WHERE e.status = 'queued' AND e.trigger_kind != 'cloud' AND p.enabled = 1
                           AND (e.not_before IS NULL OR e.not_before <= ?1)
                           AND (SELECT COUNT(*) FROM executions r
                                WHERE r.persona_id = e.persona_id AND r.status = 'running'
                                  AND r.trigger_kind != 'cloud') < p.max_concurrent
                         ORDER BY e.priority DESC, e.queued_at, e.id LIMIT 1",
                    )?
                    .query_row([now], |r| r.get(0))
                    .optional()?;
                let Some(id) = next else { break };
                let exec = get_in(tx, &id)?
                    .ok_or_else(|| StoreError::not_found("execution", id.clone()))?;
                if let Some(reason) = refusal(tx, &exec, caps, now)? {
                    out.refused.push(refuse(tx, &id, &reason, now)?);
                    continue;
                }
                out.started = Some(start(tx, &id, owner, now)?);
                break;
            }
            Ok(out)
        })
    }

    /// Admits one specific queued execution (a foreground `personas run --follow`) under the
    /// same rules. Neither started nor refused means it cannot start yet.
    pub fn admit(
        &self,
        id: &ExecutionId,
        global_limit: u32,
        owner: &str,
        caps: &GlobalCaps,
    ) -> Result<Admitted, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let mut out = Admitted::default();
            let now = now_ms();
            if provider_open(tx, now)? {
                return Ok(out);
            }
            let fits: bool = tx
                .query_row(
                    "SELECT e.status = 'queued' AND e.trigger_kind != 'cloud'
                        AND (e.not_before IS NULL OR e.not_before <= ?3)
                        AND (SELECT COUNT(*) FROM executions WHERE status = 'running'
                             AND trigger_kind != 'cloud') < ?2
                        AND (SELECT COUNT(*) FROM executions r
                             WHERE r.persona_id = e.persona_id AND r.status = 'running'
                                  AND r.trigger_kind != 'cloud') < p.max_concurrent
                     FROM executions e JOIN personas p ON p.id = e.persona_id WHERE e.id = ?1",
                    params![id.as_str(), global_limit, now],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(false);
            if !fits {
                return Ok(out);
            }
            let exec = get_in(tx, id.as_str())?
                .ok_or_else(|| StoreError::not_found("execution", id.as_str()))?;
            match refusal(tx, &exec, caps, now)? {
                Some(reason) => out.refused.push(refuse(tx, id.as_str(), &reason, now)?),
                None => out.started = Some(start(tx, id.as_str(), owner, now)?),
            }
            Ok(out)
        })
    }

    /// When the earliest scheduled execution becomes due, if any waits (for the queue's timer).
    pub fn next_not_before(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row(
            "SELECT MIN(not_before) FROM executions WHERE status = 'queued' AND not_before IS NOT NULL",
            [],
            |r| r.get(0),
        )?)
    }
}
