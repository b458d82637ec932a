//! `personas bench retention`: the database after a simulated year of hourly runs under the
//! default retention policy, and how long `personas gc` takes on it.
//!
//! Ten personas run every hour for 365 days, 200 output lines each (stream-json-sized lines of
//! about 500 bytes). Rows are written directly through the store (one transaction per hour)
//! rather than by running anything, and the policy is applied once per simulated day, as the
//! running runtime would with its hourly sweep (a daily pass prunes the same rows, 24 at once).

use crate::{BenchError, BenchResult};
use personas_core::PersonaSpec;
use personas_store::{Durability, RetentionPolicy, Store, StoreOptions};
use serde::Serialize;
use std::time::Instant;

#[derive(Serialize)]
pub struct RetentionReport {
    pub personas: usize,
    pub days: u32,
    pub lines_per_run: usize,
    pub line_bytes: usize,
    pub runs_written: u64,
    pub lines_written: u64,
    /// Database file (after a WAL checkpoint) at the end of the year.
    pub final_db_mb: f64,
    /// The largest the file got during the year.
    pub peak_db_mb: f64,
    /// Rows kept at the end.
    pub executions_kept: i64,
    pub output_lines_kept: u64,
    /// One daily gc pass on the year-old database: median and slowest.
    pub gc_ms_median: f64,
    pub gc_ms_max: f64,
    /// Generating the year (write speed of this machine's disk, not a Personas figure).
    pub generate_s: f64,
}

fn err(e: impl std::fmt::Display) -> BenchError {
    BenchError::runtime(e.to_string())
}

pub fn run(days: u32) -> BenchResult<RetentionReport> {
    const PERSONAS: usize = 10;
    const LINES: usize = 200;
    let dir = tempfile::tempdir().map_err(err)?;
    let store = Store::open(
        &dir.path().join(personas_store::DB_FILE),
        StoreOptions {
            durability: Durability::Normal,
            ..StoreOptions::default()
        },
    )
    .map_err(err)?;
    let personas: Vec<(String, String)> = (0..PERSONAS)
        .map(|i| {
            store
                .personas()
                .create(&PersonaSpec::new(format!("Hourly {i}"), "Report."))
                .map(|p| (p.id.to_string(), p.name))
        })
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let filler = "lorem ipsum dolor sit amet ".repeat(12);
    let policy = RetentionPolicy::default();
    let start = chrono::Utc::now().timestamp_millis() - i64::from(days) * 86_400_000;
    let started = Instant::now();
    let mut gc_ms = Vec::new();
    let mut peak = 0u64;
    let mut line_bytes = 0;
    for hour in 0..i64::from(days) * 24 {
        let at = start + hour * 3_600_000;
        let lines: Vec<String> = (0..LINES)
            .map(|i| {
                format!(
                    r#"{{"type":"assistant","message":{{"id":"msg_{hour}_{i}","role":"assistant","content":[{{"type":"text","text":"step {i} of hour {hour}: {filler}"}}]}},"session_id":"{hour:08}"}}"#
                )
            })
            .collect();
        line_bytes = lines[0].len();
        store
            .retention()
            .insert_history(&personas, at, &lines)
            .map_err(err)?;
        if hour % 24 == 23 {
            let t = Instant::now();
            store
                .retention()
                .prune(&policy, at + 3_600_000, false)
                .map_err(err)?;
            gc_ms.push(t.elapsed().as_secs_f64() * 1e3);
            peak = peak.max(store.retention().size());
        }
    }
    let generate_s = started.elapsed().as_secs_f64();
    let size = store.retention().size();
    let health = store.health().map_err(err)?;
    let output_lines_kept = store.retention().output_line_count().map_err(err)?;
    let last: Vec<f64> = gc_ms.iter().rev().take(30).copied().collect();
    let mut sorted = last.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(RetentionReport {
        personas: PERSONAS,
        days,
        lines_per_run: LINES,
        line_bytes,
        runs_written: (days as u64) * 24 * PERSONAS as u64,
        lines_written: (days as u64) * 24 * (PERSONAS * LINES) as u64,
        final_db_mb: size as f64 / 1_048_576.0,
        peak_db_mb: peak as f64 / 1_048_576.0,
        executions_kept: health.executions,
        output_lines_kept,
        gc_ms_median: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
        gc_ms_max: sorted.last().copied().unwrap_or(0.0),
        generate_s,
    })
}
