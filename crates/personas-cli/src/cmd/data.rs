//! `personas backup FILE`, `personas restore FILE`, `personas gc`: the data's safety.
//!
//! `backup` is the `backup_store` operation: the process holding the data dir copies the live
//! store with SQLite's online backup API (consistent while the runtime runs). `gc` is `run_gc`:
//! the `[retention]` policy applied now (the running runtime also applies it every
//! `interval_minutes`). `restore` stays local — it needs a data dir no process holds, so it is
//! refused while a runtime runs and done in this process by `personas_api::local::restore`.

use super::print_json;
use crate::context::Context;
use crate::daemon;
use crate::error::{CliError, CliResult};
use clap::Args;
use personas_api::Operations;
use personas_api::ops::{BackupStore, GcResult, RunGc};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy (a new file; mode 0600). Works while the runtime runs.
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A file written by `personas backup`. The data dir must be empty (a config.toml is fine).
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Count what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Afterwards rewrite the whole database (VACUUM): shrinks a database made by an older
    /// version to its contents and makes later gc passes shrink it incrementally. Needs the
    /// runtime stopped.
    #[arg(long, conflicts_with = "dry_run")]
    pub vacuum: bool,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

pub async fn backup(ctx: &mut Context, args: BackupArgs) -> CliResult<ExitCode> {
    let started = Instant::now();
    // The runtime writes the file: a path relative to this shell is resolved here.
    let path = std::path::absolute(&args.file)
        .map_err(|e| CliError::usage(format!("FILE {}: {e}", args.file.display())))?;
    let b = ctx
        .client()?
        .backup_store(BackupStore {
            path: path.display().to_string(),
        })
        .await?;
    if ctx.json {
        print_json(&b);
    } else {
        println!(
            "backed up {} personas and {} executions (schema v{}, {}) to {} in {} ms",
            b.personas,
            b.executions,
            b.schema_version,
            mib(b.bytes),
            b.path,
            started.elapsed().as_millis()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(ctx: &mut Context, args: RestoreArgs) -> CliResult<ExitCode> {
    let data_dir = ctx.config.data_dir.clone();
    if let Some(info) = daemon::running(&data_dir)? {
        return Err(CliError::usage(format!(
            "a Personas runtime is running on {} (pid {}); restore only into an empty data dir",
            data_dir.display(),
            info.pid
        ))
        .with_hint("stop it, and restore into a new --data-dir"));
    }
    let (from, dir) = (args.file.clone(), data_dir.clone());
    let r = tokio::task::spawn_blocking(move || personas_api::local::restore(&from, &dir))
        .await
        .map_err(|e| CliError::runtime(e.to_string()))??;
    if ctx.json {
        print_json(&r);
    } else {
        println!(
            "restored {} personas and {} executions from {} into {} (schema v{})",
            r.restored.personas,
            r.restored.executions,
            args.file.display(),
            data_dir.display(),
            r.schema_version
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn gc(ctx: &mut Context, args: GcArgs) -> CliResult<ExitCode> {
    let req = RunGc {
        dry_run: Some(args.dry_run),
        vacuum: Some(args.vacuum),
    };
    let report = ctx.client()?.run_gc(req).await.map_err(super::flag_error)?;
    if ctx.json {
        print_json(&report);
    } else {
        print_gc(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_gc(report: &GcResult) {
    let elapsed_ms = report.elapsed_ms;
    let verb = if report.removed.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let parts: Vec<String> = [
        (report.removed.executions, "executions"),
        (report.removed.output_lines, "output lines"),
        (report.removed.events, "events"),
        (report.removed.event_deliveries, "event deliveries"),
        (
            report.removed.notification_deliveries,
            "notification deliveries",
        ),
        (report.removed.messages, "messages"),
        (report.removed.run_tokens, "run tokens"),
        (report.removed.webhook_deliveries, "webhook replay records"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        println!("nothing to remove under the retention policy ({elapsed_ms} ms)");
    } else {
        println!("{verb}: {}", parts.join(", "));
        if report.removed.executions_output_pruned > 0 {
            println!(
                "  (output of {} kept executions included)",
                report.removed.executions_output_pruned
            );
        }
    }
    if !report.removed.dry_run {
        println!(
            "database {} → {} in {elapsed_ms} ms",
            mib(report.removed.bytes_before),
            mib(report.removed.bytes_after)
        );
        if !report.vacuumed && !report.shrinks_by_itself {
            println!(
                "hint: this database was made by an older version and does not shrink by itself; \
                 `personas gc --vacuum` (runtime stopped) converts it once"
            );
        }
    }
}
