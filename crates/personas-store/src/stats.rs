//! Run statistics: the one rollup of the executions table, and the daily spend ledger budgets
//! read.
//!
//! - [`StatsRepo::runs`]: aggregates for charts, the dashboard and `personas stats`, computed
//!   in SQL so the numbers are the same whichever host asks and no history is loaded into
//!   memory. Durations are from start to finish of ended runs; percentiles use the nearest-rank
//!   method (the p-th percentile is the value at rank `ceil(p/100 * n)`), which SQLite computes
//!   with window functions.
//! - The spend ledger (`spend_daily`): each persona's cost per UTC day, recomputed from the
//!   executions table inside the healing transaction when one of its runs ends, so a monthly
//!   budget check reads at most 31 rows (see `admission`).
//!
//! One definition of a day serves both: the calendar date at an offset from UTC ([`day_of`]
//! in Rust, `day_sql` in SQL, tested to agree). Charts use the viewer's offset, so "today" is
//! the user's today; budgets use offset 0, so caps reset at midnight UTC for every client.

use crate::time::now_ms;
use crate::{Store, StoreError};
use chrono::{DateTime, NaiveDate};
use personas_core::PersonaId;
use rusqlite::{Connection, params};
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
    /// Of `failed`, refused at admission (paused persona, budget cap).
    pub refused: u64,
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
    /// Of `failed`, refused at admission (paused persona, budget cap).
    pub refused: u64,
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
    /// Refused at admission (counted in `ended`, as failed runs).
    pub refused: u64,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub duration_p50_ms: Option<u64>,
    pub duration_p95_ms: Option<u64>,
    pub success_rate: Option<f64>,
}

/// The calendar day (`YYYY-MM-DD`) of a timestamp in ms at an offset from UTC in minutes
/// (east positive). The Rust side of the one definition of a day; `day_sql` is the SQL side.
pub fn day_of(ms: i64, tz_offset_minutes: i32) -> String {
    let secs = ms.div_euclid(1000) + i64::from(tz_offset_minutes) * 60;
    DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// SQL for the day of column `c` (ms) at the offset (minutes) bound to `?1`: [`day_of`] in
/// SQL. Timestamps are positive, so SQLite's truncating division equals `div_euclid`.
fn day_sql(c: &str) -> String {
    format!("date(({c} / 1000) + ?1 * 60, 'unixepoch')")
}

/// The UTC day's start and end (exclusive) in ms.
fn utc_day_bounds(day: &str) -> Option<(i64, i64)> {
    let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let start = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some((start, start + 86_400_000))
}

/// Recomputes one persona's spend on one UTC day from its ended executions; budgets read it.
pub(crate) fn record_spend_in(
    conn: &Connection,
    day: &str,
    persona_id: &str,
) -> Result<(), StoreError> {
    let Some((start, end)) = utc_day_bounds(day) else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO spend_daily (day, persona_id, cost_usd)
         SELECT ?1, ?2, TOTAL(cost_usd) FROM executions
         WHERE persona_id = ?2 AND finished_at >= ?3 AND finished_at < ?4
           AND status NOT IN ('queued', 'running', 'awaiting_review')
         ON CONFLICT (day, persona_id) DO UPDATE SET cost_usd = excluded.cost_usd",
    )?
    .execute(params![day, persona_id, start, end])?;
    Ok(())
}

impl<'s> StatsRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Statistics of runs queued on the last `days` local days (today included), of one
    /// persona or all.
    pub fn runs(
        &self,
        days: u32,
        tz_offset_minutes: i32,
        persona: Option<&PersonaId>,
    ) -> Result<RunStats, StoreError> {
        let days = days.clamp(1, 366);
        let conn = self.store.conn()?;
        let since_day: String = conn.query_row(
            "SELECT date('now', ?1 || ' minutes', ?2 || ' days')",
            params![tz_offset_minutes, -(i64::from(days) - 1)],
            |r| r.get(0),
        )?;
        let in_period = format!(
            "{} >= ?2 AND (?3 IS NULL OR persona_id = ?3)",
            day_sql("queued_at")
        );
        let persona = persona.map(|p| p.as_str());

        let mut stmt = conn.prepare(&format!(
            "SELECT {day} AS day, COUNT(*),
                SUM(status = 'completed'), SUM(status = 'failed'), SUM(status = 'incomplete'),
                SUM(status = 'cancelled'), SUM(status = 'timed_out'),
                SUM(status IN ('queued', 'running', 'awaiting_review')),
                TOTAL(cost_usd), TOTAL(input_tokens), TOTAL(output_tokens),
                SUM(status = 'failed' AND error_class = 'refused')
             FROM executions WHERE {in_period} GROUP BY day ORDER BY day",
            day = day_sql("queued_at")
        ))?;
        let day_rows = stmt.query_map(params![tz_offset_minutes, since_day, persona], |r| {
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
                refused: r.get(11)?,
            })
        })?;
        let days_out: Vec<DayStats> = day_rows.collect::<Result<_, _>>()?;

        // Per persona, with nearest-rank duration percentiles over its ended runs. Runs of a
        // deleted persona are grouped under the name they ran with.
        let mut stmt = conn.prepare(&format!(
            "WITH period AS (
                SELECT persona_id, persona_name, status, error_class, cost_usd, input_tokens,
                    output_tokens,
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
                MAX(pct.p50), MAX(pct.p95),
                SUM(p.status = 'failed' AND p.error_class = 'refused')
             FROM period p LEFT JOIN pct ON pct.pkey = COALESCE(p.persona_id, '')
             GROUP BY COALESCE(p.persona_id, p.persona_name)
             ORDER BY TOTAL(p.cost_usd) DESC, COUNT(*) DESC"
        ))?;
        let persona_rows = stmt.query_map(params![tz_offset_minutes, since_day, persona], |r| {
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
                refused: r.get(11)?,
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
            params![tz_offset_minutes, since_day, persona],
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
            refused: days_out.iter().map(|d| d.refused).sum(),
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
                day_sql("queued_at")
            ),
            params![tz_offset_minutes],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Recomputes the spend ledger of the last `days` UTC days from the executions table
    /// (after an upgrade, or to repair). Returns how many (day, persona) rows it wrote.
    pub fn rebuild_spend(&self, days: u32) -> Result<usize, StoreError> {
        let since = now_ms() - i64::from(days) * 86_400_000;
        let mut conn = self.store.conn()?;
        crate::write_tx(&mut conn, |tx| {
            let pairs: Vec<(i64, String)> = tx
                .prepare(
                    "SELECT DISTINCT finished_at, persona_id FROM executions
                     WHERE finished_at >= ?1 AND persona_id IS NOT NULL",
                )?
                .query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let seen: std::collections::BTreeSet<(String, String)> = pairs
                .into_iter()
                .map(|(at, persona)| (day_of(at, 0), persona))
                .collect();
            for (day, persona) in &seen {
                record_spend_in(tx, day, persona)?;
            }
            Ok(seen.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rust_and_sql_days_agree_at_every_offset() {
        let conn = Connection::open_in_memory().expect("in-memory db");
        let sql = format!("SELECT {}", day_sql("?2"));
        // Around midnight UTC, around local midnights, a leap day, and a year boundary.
        let instants = [
            0,
            86_400_000 - 1,
            86_400_000,
            951_782_400_000,   // 2000-02-29 00:00 UTC
            1_704_067_199_999, // 2023-12-31 23:59:59.999 UTC
            1_704_067_200_000, // 2024-01-01 00:00 UTC
            1_718_000_000_123,
        ];
        for ms in instants {
            for offset in [-840, -600, -1, 0, 1, 60, 330, 840] {
                let from_sql: String = conn
                    .query_row(&sql, params![offset, ms], |r| r.get(0))
                    .expect("test step");
                assert_eq!(day_of(ms, offset), from_sql, "{ms} at {offset} minutes");
            }
        }
    }

    #[test]
    fn days_are_calendar_dates_at_the_offset() {
        assert_eq!(day_of(0, 0), "1970-01-01");
        assert_eq!(day_of(86_400_000 - 1, 0), "1970-01-01");
        assert_eq!(day_of(86_400_000 - 1, 1), "1970-01-02");
        assert_eq!(day_of(0, -1), "1969-12-31");
        assert_eq!(
            utc_day_bounds("1970-01-02"),
            Some((86_400_000, 172_800_000))
        );
        assert_eq!(utc_day_bounds("not a day"), None);
    }
}
