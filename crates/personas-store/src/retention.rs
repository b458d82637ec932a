//! Retention: what old rows are pruned, and pruning them (`personas gc`, and the runtime's
//! periodic sweep).
//!
//! The policy (all ages in days; 0 keeps forever):
//! - output lines of executions that ended more than `output_days` ago (the execution row, its
//!   result and its counters stay);
//! - executions beyond the newest `keep_executions_per_persona` ended ones of each persona
//!   (with their output, reviews and run token) — never a queued, running or paused one, never
//!   one with a pending review, never one not yet through healing, and never one that ended
//!   today (UTC): today's budget is summed from today's executions;
//! - events that reached a final state (`delivered`, `skipped`, `dead_letter`) more than
//!   `events_days` ago, with their per-recipient deliveries;
//! - notification deliveries that reached a final state (`delivered`, `failed`) more than
//!   `deliveries_days` ago (pending ones never);
//! - messages older than `messages_days`, unless a delivery of them is still pending;
//! - run tokens of executions that ended (or were revoked) more than an hour ago;
//! - webhook replay-protection rows whose window has passed.
//!
//! The newest message and the newest review are never removed: the delivery planner reads those
//! tables by rowid, and removing the row holding the largest rowid would let SQLite hand that
//! rowid to the next row, which the planner would then skip.
//!
//! Rows go in transactions of a bounded size, so a large first prune never holds the write lock
//! for long while the runtime runs. Afterwards free pages are handed back to the file system
//! with `PRAGMA incremental_vacuum` (the store creates databases with `auto_vacuum =
//! INCREMENTAL`; an older database is converted by `personas gc --vacuum`, one full `VACUUM`),
//! and the WAL is checkpointed and truncated, so the file actually shrinks.

use crate::{Store, StoreError, write_tx};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// How long things are kept. Ages in days; 0 keeps forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub output_days: u32,
    pub events_days: u32,
    pub deliveries_days: u32,
    pub messages_days: u32,
    /// Ended executions kept per persona (newest first); 0 keeps all.
    pub keep_executions_per_persona: u32,
}

impl Default for RetentionPolicy {
    /// Sized so a year of hourly runs of 10 personas, 200 output lines each, stays well under
    /// 500 MB (measured by `personas bench --retention`; see the README).
    fn default() -> Self {
        Self {
            output_days: 14,
            events_days: 30,
            deliveries_days: 30,
            messages_days: 90,
            keep_executions_per_persona: 2_000,
        }
    }
}

/// What a prune removed (or, for a dry run, would remove). On the wire inside `run_gc`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct GcReport {
    pub dry_run: bool,
    /// Executions removed entirely.
    pub executions: u64,
    /// Output lines removed (of removed executions and of kept ones past `output_days`).
    pub output_lines: u64,
    /// Executions whose output was removed while the execution itself was kept.
    pub executions_output_pruned: u64,
    pub events: u64,
    pub event_deliveries: u64,
    pub notification_deliveries: u64,
    pub messages: u64,
    pub run_tokens: u64,
    pub webhook_deliveries: u64,
    /// Database size (file plus WAL) before and after, in bytes.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Executions removed or with output removed: their leftover files go too.
    #[serde(skip)]
    #[cfg_attr(feature = "schema", ts(skip), schemars(skip))]
    pub pruned_executions: Vec<String>,
}

impl GcReport {
    /// Rows removed (or that would be), all kinds together.
    pub fn total(&self) -> u64 {
        self.executions
            + self.output_lines
            + self.events
            + self.event_deliveries
            + self.notification_deliveries
            + self.messages
            + self.run_tokens
            + self.webhook_deliveries
    }
}

const DAY_MS: i64 = 86_400_000;
/// Rows (or executions, for output) per write transaction.
const CHUNK: usize = 200;
const TERMINAL: &str = "('completed', 'failed', 'incomplete', 'cancelled', 'timed_out')";

pub struct RetentionRepo<'s> {
    store: &'s Store,
}

impl<'s> RetentionRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Applies `policy` as of `now_ms` (or, with `dry_run`, only counts what it would remove).
    pub fn prune(
        &self,
        policy: &RetentionPolicy,
        now_ms: i64,
        dry_run: bool,
    ) -> Result<GcReport, StoreError> {
        let mut r = GcReport {
            dry_run,
            bytes_before: self.size(),
            ..GcReport::default()
        };
        let cutoff = |days: u32| now_ms - i64::from(days) * DAY_MS;
        let mut conn = self.store.conn()?;

        // A token is useless once its execution stops running; an hour's grace covers a
        // tool call still in flight when the run ended. First, so a token is counted here
        // and not left to go with its execution below.
        r.run_tokens = bulk(
            &mut conn,
            dry_run,
            &format!(
                "run_tokens WHERE (revoked_at IS NOT NULL AND revoked_at < ?1)
                   OR execution_id IN (SELECT id FROM executions
                                       WHERE status IN {TERMINAL} AND finished_at < ?1)"
            ),
            now_ms - 3_600_000,
        )?;

        if policy.keep_executions_per_persona > 0 {
            let today = now_ms - now_ms.rem_euclid(DAY_MS);
            let ids = ids(
                &conn,
                &format!(
                    "SELECT id FROM (
                        SELECT x.id, x.finished_at, x.healed_at, ROW_NUMBER() OVER (
                            PARTITION BY COALESCE(x.persona_id, '~' || x.persona_name)
                            ORDER BY x.queued_at DESC, x.id DESC) AS rn
                        FROM executions x WHERE x.status IN {TERMINAL}) k
                     WHERE k.rn > ?1 AND k.healed_at IS NOT NULL AND k.finished_at < ?2
                       AND {removable}",
                    removable = removable("k.id")
                ),
                params![policy.keep_executions_per_persona, today],
            )?;
            for chunk in ids.chunks(CHUNK) {
                let (lines, execs) = apply(&mut conn, dry_run, |tx| {
                    let mut lines = 0;
                    let mut execs = 0;
                    for id in chunk {
                        lines += count_or_delete(
                            tx,
                            dry_run,
                            "execution_output WHERE execution_id = ?1",
                            [id],
                        )?;
                        execs += count_or_delete(tx, dry_run, "executions WHERE id = ?1", [id])?;
                    }
                    Ok((lines, execs))
                })?;
                r.output_lines += lines;
                r.executions += execs;
            }
            r.pruned_executions.extend(ids);
        }

        if policy.output_days > 0 {
            let ids = ids(
                &conn,
                &format!(
                    "SELECT x.id FROM executions x
                     WHERE x.finished_at < ?1 AND x.status IN {TERMINAL}
                       AND EXISTS (SELECT 1 FROM execution_output o WHERE o.execution_id = x.id)
                       AND {removable}",
                    removable = removable("x.id")
                ),
                params![cutoff(policy.output_days)],
            )?;
            // In a dry run, executions counted above as removed are still there: skip them.
            let ids: Vec<String> = ids
                .into_iter()
                .filter(|id| !dry_run || !r.pruned_executions.contains(id))
                .collect();
            for chunk in ids.chunks(CHUNK) {
                r.output_lines += apply(&mut conn, dry_run, |tx| {
                    let mut n = 0;
                    for id in chunk {
                        n += count_or_delete(
                            tx,
                            dry_run,
                            "execution_output WHERE execution_id = ?1",
                            [id],
                        )?;
                    }
                    Ok(n)
                })?;
            }
            r.executions_output_pruned = ids.len() as u64;
            r.pruned_executions.extend(ids);
        }

        if policy.events_days > 0 {
            let ids = ids(
                &conn,
                "SELECT id FROM events
                 WHERE status IN ('delivered', 'skipped', 'dead_letter')
                   AND COALESCE(processed_at, updated_at) < ?1",
                params![cutoff(policy.events_days)],
            )?;
            for chunk in ids.chunks(CHUNK * 10) {
                let (deliveries, events) = apply(&mut conn, dry_run, |tx| {
                    let (mut d, mut e) = (0, 0);
                    for id in chunk {
                        d += count_or_delete(
                            tx,
                            dry_run,
                            "event_deliveries WHERE event_id = ?1",
                            [id],
                        )?;
                        e += count_or_delete(tx, dry_run, "events WHERE id = ?1", [id])?;
                    }
                    Ok((d, e))
                })?;
                r.event_deliveries += deliveries;
                r.events += events;
            }
        }

        if policy.deliveries_days > 0 {
            r.notification_deliveries = bulk(
                &mut conn,
                dry_run,
                "notification_deliveries WHERE status IN ('delivered', 'failed')
                   AND COALESCE(delivered_at, updated_at) < ?1",
                cutoff(policy.deliveries_days),
            )?;
        }

        if policy.messages_days > 0 {
            r.messages = bulk(
                &mut conn,
                dry_run,
                "messages WHERE created_at < ?1
                   AND rowid < (SELECT MAX(rowid) FROM messages)
                   AND NOT EXISTS (SELECT 1 FROM notification_deliveries d
                                   WHERE d.subject_kind = 'message' AND d.subject_id = messages.id
                                     AND d.status = 'pending')",
                cutoff(policy.messages_days),
            )?;
        }

        if table_exists(&conn, "webhook_deliveries")? {
            // A WITHOUT ROWID table that every webhook call already prunes: small, so one
            // statement (the chunked `bulk` deletes by rowid).
            r.webhook_deliveries = count_or_delete(
                &conn,
                dry_run,
                "webhook_deliveries WHERE expires_at < ?1",
                [now_ms],
            )?;
        }

        if !dry_run && r.total() > 0 {
            reclaim(&conn)?;
        }
        drop(conn);
        r.bytes_after = if dry_run { r.bytes_before } else { self.size() };
        Ok(r)
    }

    /// Rewrites the whole database (`VACUUM`), switching an old one to incremental vacuum.
    /// Holds the write lock for the duration: seconds for a large database.
    pub fn vacuum(&self) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// `auto_vacuum` of the database: 0 none, 1 full, 2 incremental.
    pub fn auto_vacuum(&self) -> Result<i64, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?)
    }

    /// Output lines stored, all executions together.
    pub fn output_line_count(&self) -> Result<u64, StoreError> {
        let conn = self.store.conn()?;
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM execution_output", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Database file plus WAL, in bytes.
    pub fn size(&self) -> u64 {
        let path = self.store.path();
        let wal = path.with_file_name(format!("{}-wal", crate::DB_FILE));
        [path.to_path_buf(), wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// The conditions that protect an execution (referred to as `id`) from any pruning: a
/// pending review, and the newest review row (see the module doc).
fn removable(id: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM reviews r WHERE r.execution_id = {id}
                     AND (r.status = 'pending' OR r.rowid = (SELECT MAX(rowid) FROM reviews)))"
    )
}

fn ids(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(p, |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Runs `f` in a write transaction, or (dry run) in a read that changes nothing.
fn apply<T>(
    conn: &mut crate::Conn,
    dry_run: bool,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if dry_run {
        f(conn)
    } else {
        write_tx(conn, |tx| f(tx))
    }
}

/// `SELECT COUNT(*) FROM <from_where>` or `DELETE FROM <from_where>`; the number of rows.
fn count_or_delete(
    conn: &Connection,
    dry_run: bool,
    from_where: &str,
    p: impl rusqlite::Params,
) -> Result<u64, StoreError> {
    let n = if dry_run {
        conn.prepare_cached(&format!("SELECT COUNT(*) FROM {from_where}"))?
            .query_row(p, |r| r.get::<_, i64>(0))?
    } else {
        conn.prepare_cached(&format!("DELETE FROM {from_where}"))?
            .execute(p)? as i64
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Removes (or counts) every row of `from_where` (`?1` bound to `at`), a bounded number per
/// transaction.
fn bulk(
    conn: &mut crate::Conn,
    dry_run: bool,
    from_where: &str,
    at: i64,
) -> Result<u64, StoreError> {
    if dry_run {
        return count_or_delete(conn, true, from_where, [at]);
    }
    let (table, cond) = from_where
        .split_once(" WHERE ")
        .ok_or_else(|| StoreError::Corrupt(format!("bad prune clause {from_where}")))?;
    let sql = format!(
        "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {cond} LIMIT {})",
        CHUNK * 10
    );
    let mut total = 0u64;
    loop {
        let n = write_tx(conn, |tx| Ok(tx.prepare_cached(&sql)?.execute([at])?))?;
        total += n as u64;
        if n < CHUNK * 10 {
            return Ok(total);
        }
    }
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Hands free pages back to the file system (incremental vacuum, in steps so writers get the
/// lock in between) and truncates the WAL.
fn reclaim(conn: &Connection) -> Result<(), StoreError> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == 2 {
        loop {
            let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            if free == 0 {
                break;
            }
            // Each step is its own write transaction.
            conn.execute_batch("PRAGMA incremental_vacuum(4096)")?;
        }
    }
    // PASSIVE-then-TRUNCATE: a busy checkpoint (a reader in the way) is not an error.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    Ok(())
}

impl RetentionRepo<'_> {
    /// Benchmark support (`personas bench retention`): stores one ended, healed execution of
    /// each persona as if it had run at `at_ms`, each with `lines` as its output, in one
    /// transaction. Not for anything but simulating history.
    #[doc(hidden)]
    pub fn insert_history(
        &self,
        personas: &[(String, String)],
        at_ms: i64,
        lines: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let mut exec = tx.prepare_cached(
                "INSERT INTO executions (id, persona_id, persona_name, status, trigger_kind,
                    queued_at, started_at, finished_at, healed_at, output_lines, result_text)
                 VALUES (?1, ?2, ?3, 'completed', 'schedule', ?4, ?4, ?5, ?5, ?6, 'done')",
            )?;
            let mut line = tx.prepare_cached(
                "INSERT INTO execution_output (execution_id, seq, kind, text, at)
                 VALUES (?1, ?2, 'assistant_text', ?3, ?4)",
            )?;
            for (persona_id, name) in personas {
                let id = uuid::Uuid::now_v7().to_string();
                exec.execute(params![
                    id,
                    persona_id,
                    name,
                    at_ms,
                    at_ms + 60_000,
                    lines.len()
                ])?;
                for (i, text) in lines.iter().enumerate() {
                    line.execute(params![id, i as i64 + 1, text, at_ms])?;
                }
            }
            Ok(())
        })
    }
}
