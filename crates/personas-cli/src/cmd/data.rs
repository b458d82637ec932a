//! `personas backup FILE`, `personas restore FILE`, `personas gc`: the data's safety.
//!
//! `backup` copies the live store with SQLite's online backup API (consistent while the runtime
//! runs); `restore` puts a backup into an empty data dir after checking it; `gc` applies the
//! `[retention]` policy now (the running runtime also applies it every `interval_minutes`).

use super::print_json;
use crate::context::Context;
use crate::daemon;
use crate::error::{CliError, CliResult};
use clap::Args;
use personas_store::backup::{self, RestoreError};
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
    let store = ctx.store()?;
    let started = Instant::now();
    let file = args.file.clone();
    let report = tokio::task::spawn_blocking(move || store.backup_to(&file))
        .await
        .map_err(|e| CliError::runtime(e.to_string()))?
        .map_err(|e| match e {
            personas_store::StoreError::Conflict { message, .. } => CliError::usage(message),
            other => CliError::runtime(format!(
                "cannot back up to {}: {other}",
                args.file.display()
            )),
        })?;
    if ctx.json {
        print_json(&report);
    } else {
        println!(
            "backed up {} personas and {} executions (schema v{}, {}) to {} in {} ms",
            report.personas,
            report.executions,
            report.schema_version,
            mib(report.bytes),
            report.path.display(),
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
    let report = tokio::task::spawn_blocking(move || backup::restore(&from, &dir))
        .await
        .map_err(|e| CliError::runtime(e.to_string()))?
        .map_err(|e| match e {
            RestoreError::Store(s) => CliError::runtime(s.to_string()),
            other => CliError::usage(other.to_string()),
        })?;
    // Brings an older backup's schema up to date.
    let store = ctx.store()?;
    let health = store.health()?;
    if ctx.json {
        print_json(&serde_json::json!({
            "restored": report,
            "data_dir": data_dir,
            "schema_version": health.schema_version,
        }));
    } else {
        println!(
            "restored {} personas and {} executions from {} into {} (schema v{})",
            report.personas,
            report.executions,
            args.file.display(),
            data_dir.display(),
            health.schema_version
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn gc(ctx: &mut Context, args: GcArgs) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let data_dir = ctx.config.data_dir.clone();
    if args.vacuum
        && let Some(info) = daemon::running(&data_dir)?
    {
        return Err(CliError::usage(format!(
            "--vacuum rewrites the whole database and needs the runtime stopped (pid {} is running)",
            info.pid
        )));
    }
    let policy = ctx.config.retention.policy();
    let started = Instant::now();
    let (s, dry) = (store.clone(), args.dry_run);
    let mut report = tokio::task::spawn_blocking(move || {
        personas_engine::retention::gc(&s, &data_dir, &policy, dry)
    })
    .await
    .map_err(|e| CliError::runtime(e.to_string()))??;
    if args.vacuum {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.retention().vacuum())
            .await
            .map_err(|e| CliError::runtime(e.to_string()))??;
        report.bytes_after = store.retention().size();
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if ctx.json {
        let mut v = serde_json::to_value(&report).map_err(|e| CliError::runtime(e.to_string()))?;
        v["elapsed_ms"] = elapsed_ms.into();
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let parts: Vec<String> = [
        (report.executions, "executions"),
        (report.output_lines, "output lines"),
        (report.events, "events"),
        (report.event_deliveries, "event deliveries"),
        (report.notification_deliveries, "notification deliveries"),
        (report.messages, "messages"),
        (report.run_tokens, "run tokens"),
        (report.webhook_deliveries, "webhook replay records"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        println!("nothing to remove under the retention policy ({elapsed_ms} ms)");
    } else {
        println!("{verb}: {}", parts.join(", "));
        if report.executions_output_pruned > 0 {
            println!(
                "  (output of {} kept executions included)",
                report.executions_output_pruned
            );
        }
    }
    if !report.dry_run {
        println!(
            "database {} → {} in {elapsed_ms} ms",
            mib(report.bytes_before),
            mib(report.bytes_after)
        );
        if !args.vacuum && store.retention().auto_vacuum().unwrap_or(2) != 2 {
            println!(
                "hint: this database was made by an older version and does not shrink by itself; \
                 `personas gc --vacuum` (runtime stopped) converts it once"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
