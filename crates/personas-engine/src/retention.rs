//! Retention: the `[retention]` settings, one gc pass shared by `personas gc` and the running
//! runtime, and the runtime's periodic sweep.
//!
//! What is pruned is decided in the store (`personas_store::retention`); this module adds
//! the files an execution leaves under the data dir ([`purge_execution_files`]) and the
//! schedule. The sweep runs [`RetentionConfig::interval_minutes`] apart (first shortly after
//! start-up, so starting is not slowed), each pass in bounded transactions so the runtime's own
//! writers are never held up for long.

use crate::component::{Component, Running, Wake, due_in, never, sleep_until};
use crate::runner::{Runtime, blocking};
use personas_core::ExecutionId;
use personas_store::{GcReport, RetentionPolicy, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[retention]` in config.toml: how long things are kept (days; 0 keeps forever).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Output lines of executions that ended this many days ago are removed (the execution,
    /// its result and counters stay).
    pub output_days: u32,
    /// Events that reached a final state this many days ago, with their deliveries.
    pub events_days: u32,
    /// Notification deliveries (sent or failed) this old.
    pub deliveries_days: u32,
    /// Messages this old (unless a delivery of them is still pending).
    pub messages_days: u32,
    /// Ended executions kept per persona, newest first; older ones are removed entirely.
    pub keep_executions_per_persona: u32,
    /// How often the running runtime applies the policy, in minutes; 0 turns the automatic
    /// sweep off (`personas gc` still works).
    pub interval_minutes: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let p = RetentionPolicy::default();
        Self {
            output_days: p.output_days,
            events_days: p.events_days,
            deliveries_days: p.deliveries_days,
            messages_days: p.messages_days,
            keep_executions_per_persona: p.keep_executions_per_persona,
            interval_minutes: 60,
        }
    }
}

impl RetentionConfig {
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            output_days: self.output_days,
            events_days: self.events_days,
            deliveries_days: self.deliveries_days,
            messages_days: self.messages_days,
            keep_executions_per_persona: self.keep_executions_per_persona,
        }
    }
}

/// One gc pass as of now: prunes the store (or, with `dry_run`, counts), then removes the
/// files of the executions it pruned.
pub fn gc(
    store: &Store,
    data_dir: &Path,
    policy: &RetentionPolicy,
    dry_run: bool,
) -> Result<GcReport, StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let report = store.retention().prune(policy, now, dry_run)?;
    if !dry_run && !report.pruned_executions.is_empty() {
        let ids: Vec<ExecutionId> = report
            .pruned_executions
            .iter()
            .cloned()
            .map(ExecutionId::from_string)
            .collect();
        purge_execution_files(data_dir, &ids);
    }
    Ok(report)
}

/// Removes what pruned executions left under the data dir — the one place files of pruned
/// executions go: the CLI's session files (`<data dir>/claude/<id>`, see
/// [`crate::transcripts`]) and `<data dir>/run/<id>*` leftovers (MCP configs a crash left
/// behind). Returns how many entries were removed.
pub fn purge_execution_files(data_dir: &Path, executions: &[ExecutionId]) -> usize {
    let ids: HashSet<&str> = executions.iter().map(ExecutionId::as_str).collect();
    let mut removed = 0;
    for id in &ids {
        match crate::transcripts::purge_transcripts(data_dir, id) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(execution = %id, error = %e, "cannot remove a pruned execution's session files")
            }
        }
    }
    let Ok(entries) = std::fs::read_dir(data_dir.join("run")) else {
        return 0;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // `<id>`, `<id>.mcp.json`, `<id>.<anything>`.
        let id = name.split('.').next().unwrap_or_default();
        if !ids.contains(id) {
            continue;
        }
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        match gone {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a pruned execution's file")
            }
        }
    }
    removed
}

/// The runtime's sweep as an engine component: applies the configured policy every
/// `interval_minutes` (first a minute after start) until stopped.
pub struct Retention {
    pub rt: Runtime,
}

impl Component for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(run(self.rt, stop))
    }
}

/// Applies the configured policy every `interval_minutes` until `shutdown`.
pub async fn run(rt: Runtime, shutdown: CancellationToken) {
    let every = rt.config.retention.interval_minutes;
    if every == 0 {
        return;
    }
    let mut wait = Duration::from_secs(60);
    loop {
        if sleep_until(due_in(wait), never(), &shutdown).await == Wake::Stop {
            return;
        }
        wait = Duration::from_secs(every.saturating_mul(60));
        let (store, dir, policy) = (
            rt.store.clone(),
            rt.config.data_dir.clone(),
            rt.config.retention.policy(),
        );
        let started = std::time::Instant::now();
        match blocking(move || gc(&store, &dir, &policy, false)).await {
            Ok(r) if r.total() > 0 => tracing::info!(
                executions = r.executions,
                output_lines = r.output_lines,
                events = r.events,
                messages = r.messages,
                bytes_before = r.bytes_before,
                bytes_after = r.bytes_after,
                ms = started.elapsed().as_millis() as u64,
                "retention: pruned old rows"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: pruning failed; retried next time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_only_the_named_executions_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("aaa.transcripts")).expect("dir");
        std::fs::write(run.join("aaa.mcp.json"), "{}").expect("file");
        std::fs::write(run.join("bbb.mcp.json"), "{}").expect("file");
        let sessions = dir.path().join("claude");
        std::fs::create_dir_all(sessions.join("aaa").join("projects")).expect("dir");
        std::fs::create_dir_all(sessions.join("bbb")).expect("dir");
        let n = purge_execution_files(dir.path(), &[ExecutionId::from_string("aaa")]);
        assert_eq!(n, 3);
        assert!(!sessions.join("aaa").exists(), "its session files are gone");
        assert!(sessions.join("bbb").exists(), "another execution's stay");
        assert!(run.join("bbb.mcp.json").exists());
        assert!(!run.join("aaa.mcp.json").exists());
    }
}
