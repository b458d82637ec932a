//! Aggregates over the executions table for charts and the dashboard, computed in SQL so the
//! numbers are the same whichever host asks and no history has to be loaded into memory.
//!
//! Days are calendar days in the caller's time zone, given as an offset from UTC in minutes, so
//! "today" on a chart is the user's today. Durations are from start to finish of ended runs;
//! percentiles use the nearest-rank method (the p-th percentile is the value at rank
//! `ceil(p/100 * n)`), which SQLite computes with window functions.

use crate::{Store, StoreError};
use personas_core::PersonaId;
use rusqlite::params;
use serde::{Deserialize, Serialize};

pub struct StatsRepo<'s> {
    store: &'s Store,
}

/// Runs of one day, by how they ended, with what they cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct DayStats {
    /// `YYYY-MM-DD` in the caller's time zone.
    pub day: String,
    pub runs: u64,
    pub completed: u64,
    pub failed: u64,
    /// Runs the agent itself judged not accomplished.
    pub incomplete: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    /// Queued, running or awaiting review.
    pub active: u64,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Totals of one persona over the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct PersonaStats {
    /// `None` for runs of a persona that was deleted since.
    pub persona_id: Option<PersonaId>,
    pub persona_name: String,
    pub runs: u64,
    pub completed: u64,
    pub failed: u64,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub duration_p50_ms: Option<u64>,
    pub duration_p95_ms: Option<u64>,
    /// Completed / ended runs; `None` when none ended.
    pub success_rate: Option<f64>,
}

/// Everything the observability page charts, for the last `days` days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct RunStats {
    /// Oldest day included (`YYYY-MM-DD`).
    pub since_day: String,
    /// One entry per day with runs, oldest first (days without runs are absent).
    pub days: Vec<DayStats>,
    /// Personas by cost, then runs.
    pub personas: Vec<PersonaStats>,
    pub runs: u64,
    pub ended: u64,
    pub completed: u64,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub duration_p50_ms: Option<u64>,
    pub duration_p95_ms: Option<u64>,
    pub success_rate: Option<f64>,
}

/// SQL for "the local calendar day of column `c`" given the offset in `?1` (minutes).
fn day_of(c: &str) -> String {
    format!("date(({c} / 1000) + ?1 * 60, 'unixepoch')")
}

impl<'s> StatsRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Statistics of runs queued on the last `days` local days (today included).
    pub fn runs(&self, days: u32, tz_offset_minutes: i32) -> Result<RunStats, StoreError> {
        let days = days.clamp(1, 366);
        let conn = self.store.conn()?;
        let since_day: String = conn.query_row(
            "SELECT date('now', ?1 || ' minutes', ?2 || ' days')",
            params![tz_offset_minutes, -(i64::from(days) - 1)],
            |r| r.get(0),
        )?;
        let in_period = format!("{} >= ?2", day_of("queued_at"));

        let mut stmt = conn.prepare(&format!(
            "SELECT {day} AS day, COUNT(*),
                SUM(status = 'completed'), SUM(status = 'failed'), SUM(status = 'incomplete'),
                SUM(status = 'cancelled'), SUM(status = 'timed_out'),
                SUM(status IN ('queued', 'running', 'awaiting_review')),
                TOTAL(cost_usd), TOTAL(input_tokens), TOTAL(output_tokens)
             FROM executions WHERE {in_period} GROUP BY day ORDER BY day",
            day = day_of("queued_at")
        ))?;
        let day_rows = stmt.query_map(params![tz_offset_minutes, since_day], |r| {
            Ok(DayStats {
                day: r.get(0)?,
                runs: r.get(1)?,
                completed: r.get(2)?,
                failed: r.get(3)?,
                incomplete: r.get(4)?,
                cancelled: r.get(5)?,
                timed_out: r.get(6)?,
                active: r.get(7)?,
                cost_usd: r.get(8)?,
                input_tokens: r.get::<_, f64>(9)? as u64,
                output_tokens: r.get::<_, f64>(10)? as u64,
            })
        })?;
        let days_out: Vec<DayStats> = day_rows.collect::<Result<_, _>>()?;

        // Per persona, with nearest-rank duration percentiles over its ended runs. Runs of a
        // deleted persona are grouped under the name they ran with.
        let mut stmt = conn.prepare(&format!(
            "WITH period AS (
                SELECT persona_id, persona_name, status, cost_usd, input_tokens, output_tokens,
                    CASE WHEN finished_at IS NOT NULL AND started_at IS NOT NULL
                         THEN finished_at - started_at END AS ms
                FROM executions WHERE {in_period}),
             ranked AS (
                SELECT COALESCE(persona_id, '') AS pkey, ms,
                    ROW_NUMBER() OVER (PARTITION BY COALESCE(persona_id, '') ORDER BY ms) AS rn,
                    COUNT(*) OVER (PARTITION BY COALESCE(persona_id, '')) AS n
                FROM period WHERE ms IS NOT NULL),
             pct AS (
                SELECT pkey,
                    MIN(CASE WHEN rn >= (n * 50 + 99) / 100 THEN ms END) AS p50,
                    MIN(CASE WHEN rn >= (n * 95 + 99) / 100 THEN ms END) AS p95
                FROM ranked GROUP BY pkey)
             SELECT p.persona_id, MAX(p.persona_name), COUNT(*),
                SUM(p.status = 'completed'), SUM(p.status = 'failed'),
                SUM(p.status IN ('completed', 'failed', 'incomplete', 'cancelled', 'timed_out')),
                TOTAL(p.cost_usd), TOTAL(p.input_tokens), TOTAL(p.output_tokens),
                MAX(pct.p50), MAX(pct.p95)
             FROM period p LEFT JOIN pct ON pct.pkey = COALESCE(p.persona_id, '')
             GROUP BY COALESCE(p.persona_id, p.persona_name)
             ORDER BY TOTAL(p.cost_usd) DESC, COUNT(*) DESC"
        ))?;
        let persona_rows = stmt.query_map(params![tz_offset_minutes, since_day], |r| {
            let completed: u64 = r.get(3)?;
            let ended: u64 = r.get(5)?;
            Ok(PersonaStats {
                persona_id: r.get::<_, Option<String>>(0)?.map(PersonaId::from_string),
                persona_name: r.get(1)?,
                runs: r.get(2)?,
                completed,
                failed: r.get(4)?,
                cost_usd: r.get(6)?,
                input_tokens: r.get::<_, f64>(7)? as u64,
                output_tokens: r.get::<_, f64>(8)? as u64,
                duration_p50_ms: r.get::<_, Option<i64>>(9)?.map(|v| v.max(0) as u64),
                duration_p95_ms: r.get::<_, Option<i64>>(10)?.map(|v| v.max(0) as u64),
                success_rate: (ended > 0).then(|| completed as f64 / ended as f64),
            })
        })?;
        let personas: Vec<PersonaStats> = persona_rows.collect::<Result<_, _>>()?;

        let (p50, p95): (Option<i64>, Option<i64>) = conn.query_row(
            &format!(
                "WITH d AS (SELECT finished_at - started_at AS ms FROM executions
                    WHERE {in_period} AND finished_at IS NOT NULL AND started_at IS NOT NULL),
                 r AS (SELECT ms, ROW_NUMBER() OVER (ORDER BY ms) AS rn, COUNT(*) OVER () AS n FROM d)
                 SELECT MIN(CASE WHEN rn >= (n * 50 + 99) / 100 THEN ms END),
                        MIN(CASE WHEN rn >= (n * 95 + 99) / 100 THEN ms END) FROM r"
            ),
            params![tz_offset_minutes, since_day],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;

        let runs = days_out.iter().map(|d| d.runs).sum();
        let completed = days_out.iter().map(|d| d.completed).sum();
        let ended = days_out
            .iter()
            .map(|d| d.completed + d.failed + d.incomplete + d.cancelled + d.timed_out)
            .sum();
        Ok(RunStats {
            since_day,
            runs,
            ended,
            completed,
            cost_usd: days_out.iter().map(|d| d.cost_usd).sum(),
            input_tokens: days_out.iter().map(|d| d.input_tokens).sum(),
            output_tokens: days_out.iter().map(|d| d.output_tokens).sum(),
            duration_p50_ms: p50.map(|v| v.max(0) as u64),
            duration_p95_ms: p95.map(|v| v.max(0) as u64),
            success_rate: (ended > 0).then(|| completed as f64 / ended as f64),
            days: days_out,
            personas,
        })
    }

    /// Cost of runs queued on the caller's local today.
    pub fn spend_today(&self, tz_offset_minutes: i32) -> Result<(u64, f64), StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row(
            &format!(
                "SELECT COUNT(*), TOTAL(cost_usd) FROM executions
                 WHERE {} = date('now', ?1 || ' minutes')",
                day_of("queued_at")
            ),
            params![tz_offset_minutes],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }
}
