//! Daily metrics per persona (UTC days): runs by status, duration p50/p95, tokens, cost and
//! success rate. A day's row is recomputed from the executions table whenever one of that
//! persona's executions ends on that day (inside the healing bookkeeping transaction), so the
//! rollups are exact and cheap to read for charts and `personas stats`.

use crate::time::now_ms;
use crate::{Store, StoreError};
use chrono::{NaiveDate, TimeZone, Utc};
use personas_core::PersonaId;
use rusqlite::{Connection, params};
use serde::Serialize;

pub struct MetricsRepo<'s> {
    store: &'s Store,
}

/// One persona's day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyMetrics {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub persona_id: PersonaId,
    pub persona_name: String,
    pub runs: u64,
    pub completed: u64,
    /// Failed, not counting refused ones.
    pub failed: u64,
    pub incomplete: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    /// Refused at admission (paused persona, budget).
    pub refused: u64,
    pub duration_p50_ms: Option<i64>,
    pub duration_p95_ms: Option<i64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cost_usd: f64,
    /// completed / (completed + failed + incomplete + timed_out); `None` without such runs.
    pub success_rate: Option<f64>,
}

/// The UTC day (`YYYY-MM-DD`) of a timestamp in ms.
pub fn day_of(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
        .format("%Y-%m-%d")
        .to_string()
}

fn day_bounds(day: &str) -> Option<(i64, i64)> {
    let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let start = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some((start, start + 86_400_000))
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn success_rate(completed: u64, failed: u64, incomplete: u64, timed_out: u64) -> Option<f64> {
    let attempted = completed + failed + incomplete + timed_out;
    (attempted > 0).then(|| completed as f64 / attempted as f64)
}

/// Recomputes one persona's row for one day from its ended executions.
pub(crate) fn rollup_in(conn: &Connection, day: &str, persona_id: &str) -> Result<(), StoreError> {
    let Some((start, end)) = day_bounds(day) else {
        return Ok(());
    };
    let mut stmt = conn.prepare_cached(
        "SELECT status, error_class, started_at, finished_at, input_tokens, output_tokens,
            cache_read_tokens, cost_usd, persona_name
         FROM executions WHERE persona_id = ?1 AND finished_at >= ?2 AND finished_at < ?3
           AND status NOT IN ('queued', 'running', 'awaiting_review')",
    )?;
    let mut m = DailyMetrics {
        day: day.to_string(),
        persona_id: PersonaId::from_string(persona_id),
        persona_name: String::new(),
        runs: 0,
        completed: 0,
        failed: 0,
        incomplete: 0,
        cancelled: 0,
        timed_out: 0,
        refused: 0,
        duration_p50_ms: None,
        duration_p95_ms: None,
        input_tokens: 0,
        output_tokens: 0,
        cache_read_tokens: 0,
        cost_usd: 0.0,
        success_rate: None,
    };
    let mut durations = Vec::new();
    let mut rows = stmt.query(params![persona_id, start, end])?;
    while let Some(r) = rows.next()? {
        let status: String = r.get(0)?;
        let class: Option<String> = r.get(1)?;
        m.runs += 1;
        match (status.as_str(), class.as_deref()) {
            ("completed", _) => m.completed += 1,
            ("failed", Some("refused")) => m.refused += 1,
            ("failed", _) => m.failed += 1,
            ("incomplete", _) => m.incomplete += 1,
            ("cancelled", _) => m.cancelled += 1,
            ("timed_out", _) => m.timed_out += 1,
            _ => {}
        }
        if let (Some(s), Some(f)) = (r.get::<_, Option<i64>>(2)?, r.get::<_, Option<i64>>(3)?) {
            durations.push((f - s).max(0));
        }
        m.input_tokens += r.get::<_, u64>(4)?;
        m.output_tokens += r.get::<_, u64>(5)?;
        m.cache_read_tokens += r.get::<_, u64>(6)?;
        m.cost_usd += r.get::<_, f64>(7)?;
        m.persona_name = r.get(8)?;
    }
    if m.runs == 0 {
        conn.execute(
            "DELETE FROM metrics_daily WHERE day = ?1 AND persona_id = ?2",
            params![day, persona_id],
        )?;
        return Ok(());
    }
    durations.sort_unstable();
    conn.prepare_cached(
        "INSERT INTO metrics_daily (day, persona_id, persona_name, runs, completed, failed,
            incomplete, cancelled, timed_out, refused, duration_p50_ms, duration_p95_ms,
            input_tokens, output_tokens, cache_read_tokens, cost_usd, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (day, persona_id) DO UPDATE SET persona_name = excluded.persona_name,
            runs = excluded.runs, completed = excluded.completed, failed = excluded.failed,
            incomplete = excluded.incomplete, cancelled = excluded.cancelled,
            timed_out = excluded.timed_out, refused = excluded.refused,
            duration_p50_ms = excluded.duration_p50_ms, duration_p95_ms = excluded.duration_p95_ms,
            input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
            cache_read_tokens = excluded.cache_read_tokens, cost_usd = excluded.cost_usd,
            updated_at = excluded.updated_at",
    )?
    .execute(params![
        m.day,
        persona_id,
        m.persona_name,
        m.runs,
        m.completed,
        m.failed,
        m.incomplete,
        m.cancelled,
        m.timed_out,
        m.refused,
        percentile(&durations, 50.0),
        percentile(&durations, 95.0),
        m.input_tokens,
        m.output_tokens,
        m.cache_read_tokens,
        m.cost_usd,
        now_ms()
    ])?;
    Ok(())
}

impl<'s> MetricsRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Daily rows of the last `days` UTC days (today included), newest first; one persona or
    /// all.
    pub fn daily(
        &self,
        persona_id: Option<&PersonaId>,
        days: u32,
    ) -> Result<Vec<DailyMetrics>, StoreError> {
        let since = day_of(now_ms() - i64::from(days.saturating_sub(1)) * 86_400_000);
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT day, persona_id, persona_name, runs, completed, failed, incomplete, cancelled,
                timed_out, refused, duration_p50_ms, duration_p95_ms, input_tokens,
                output_tokens, cache_read_tokens, cost_usd
             FROM metrics_daily WHERE day >= ?1 AND (?2 IS NULL OR persona_id = ?2)
             ORDER BY day DESC, persona_name COLLATE NOCASE",
        )?;
        let rows = stmt.query_map(params![since, persona_id.map(|p| p.as_str())], |r| {
            let (completed, failed, incomplete, timed_out) =
                (r.get(4)?, r.get(5)?, r.get(6)?, r.get(8)?);
            Ok(DailyMetrics {
                day: r.get(0)?,
                persona_id: PersonaId::from_string(r.get::<_, String>(1)?),
                persona_name: r.get(2)?,
                runs: r.get(3)?,
                completed,
                failed,
                incomplete,
                cancelled: r.get(7)?,
                timed_out,
                refused: r.get(9)?,
                duration_p50_ms: r.get(10)?,
                duration_p95_ms: r.get(11)?,
                input_tokens: r.get(12)?,
                output_tokens: r.get(13)?,
                cache_read_tokens: r.get(14)?,
                cost_usd: r.get(15)?,
                success_rate: success_rate(completed, failed, incomplete, timed_out),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recomputes the rollups of the last `days` days from the executions table (after an
    /// upgrade, or to repair). Returns how many (day, persona) rows were recomputed.
    pub fn rebuild(&self, days: u32) -> Result<usize, StoreError> {
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
            let mut seen = std::collections::BTreeSet::new();
            for (at, persona) in pairs {
                seen.insert((day_of(at), persona));
            }
            for (day, persona) in &seen {
                rollup_in(tx, day, persona)?;
            }
            Ok(seen.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 95.0), Some(7));
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(86_400_000 - 1), "1970-01-01");
        assert_eq!(day_bounds("1970-01-02"), Some((86_400_000, 172_800_000)));
    }
}
