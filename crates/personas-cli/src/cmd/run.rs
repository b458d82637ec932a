//! `personas run PERSONA [--input JSON] [--follow] [--cloud]`.
//!
//! With `--cloud` the run is queued in the connected cloud (`cloud_execute`) and mirrored into
//! the local store; `--follow` follows the mirror exactly like a local run.
//!
//! The execution is queued by `run_persona` (durable before it answers), then:
//! - a runtime holding the data dir runs it; `--follow` streams it through the operations and
//!   the runtime's event stream (Ctrl-C cancels it with `cancel_execution`);
//! - with no runtime, `--follow` runs it in this process (the in-process API's engine) and
//!   streams its events; without `--follow` it stays queued for the next `personas up`.

use super::follow::{self, Follower, OnInterrupt};
use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::Style;
use clap::Args;
use personas_api::ops::{CloudExecute, ExecutionRef, RunPersona};
use personas_api::{Client, Operations};
use personas_core::{Execution, ExecutionId, ExecutionStatus};
use personas_engine::{Engine, EngineEvent};
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Persona name or id.
    pub persona: String,
    /// Input for the run as JSON; `@FILE` reads it from a file, `-` from stdin.
    #[arg(long)]
    pub input: Option<String>,
    /// Stream the run live and wait for its end (exit 0 only if it completed).
    #[arg(long, short)]
    pub follow: bool,
    /// Run it on the connected cloud's workers (push it first: `personas persona push`). The
    /// run is mirrored into the local store as it goes, so --follow, `execution logs` and the
    /// app show it like a local run.
    #[arg(long)]
    pub cloud: bool,
}

/// Reads and parses `--input`.
fn parse_input(raw: Option<&str>) -> CliResult<Option<serde_json::Value>> {
    let Some(raw) = raw else { return Ok(None) };
    let (text, source) = if raw == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::usage(format!("cannot read --input from stdin: {e}")))?;
        (s, "stdin".to_string())
    } else if let Some(path) = raw.strip_prefix('@') {
        let s = std::fs::read_to_string(path)
            .map_err(|e| CliError::usage(format!("cannot read --input file {path}: {e}")))?;
        (s, path.to_string())
    } else {
        (raw.to_string(), "--input".to_string())
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        CliError::usage(format!("{source} is not valid JSON: {e}"))
            .with_hint(r#"quote it for the shell, e.g. --input '{"key": "value"}'"#)
    })
}

pub async fn run(ctx: &mut Context, args: RunArgs) -> CliResult<ExitCode> {
    let input = parse_input(args.input.as_deref())?;
    let client = ctx.client()?;
    if args.cloud {
        return run_in_cloud(ctx, &client, args.persona, input, args.follow).await;
    }
    let exec = client
        .run_persona(RunPersona {
            persona: args.persona,
            input,
        })
        .await?;
    if !args.follow {
        if ctx.json {
            print_json(&exec);
        } else {
            println!("{}", exec.id);
            if client.local_api().is_some() {
                eprintln!(
                    "queued; no runtime is running for {} — it runs when `personas up` starts (or use --follow to run it now)",
                    ctx.config.data_dir.display()
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut follower = Follower::new(ctx.json);
    if !ctx.json {
        eprintln!(
            "{} {} · execution {}",
            Style::detect().bold("▶"),
            exec.persona_name,
            exec.id
        );
    }
    let done = match client.local_api() {
        Some(api) => {
            let engine = api.engine().clone();
            follow_foreground(&client, &engine, &exec.id, &mut follower).await?
        }
        None => follow::follow(
            &client,
            ctx.runtime(),
            exec.id.as_str(),
            &mut follower,
            OnInterrupt::Cancel,
        )
        .await?
        .ok_or_else(|| CliError::runtime("stopped following before the run ended"))?,
    };
    follower.finish(&done);
    if done.status == ExecutionStatus::AwaitingReview {
        // Left paused on purpose (Ctrl-C while waiting): not a failure.
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if done.status == ExecutionStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `run --cloud`: `cloud_execute`, then (with --follow) the local mirror followed like a local
/// run. Without a runtime the mirror runs in this process while it follows; without --follow
/// it is picked up by the next runtime that starts.
async fn run_in_cloud(
    ctx: &Context,
    client: &Client,
    persona: String,
    input: Option<serde_json::Value>,
    follow: bool,
) -> CliResult<ExitCode> {
    let exec = client
        .cloud_execute(CloudExecute { persona, input })
        .await?;
    if !follow {
        if ctx.json {
            print_json(&exec);
        } else {
            println!("{}", exec.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut follower = Follower::new(ctx.json);
    if !ctx.json {
        eprintln!(
            "{} {} · cloud execution {}",
            Style::detect().bold("▶"),
            exec.persona_name,
            exec.id
        );
    }
    let done = follow::follow(
        client,
        ctx.runtime(),
        exec.id.as_str(),
        &mut follower,
        OnInterrupt::Cancel,
    )
    .await?
    .ok_or_else(|| CliError::runtime("stopped following before the run ended"))?;
    follower.finish(&done);
    Ok(if done.status == ExecutionStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs the execution in this process, streaming engine events. Ctrl-C cancels it cleanly.
async fn follow_foreground(
    client: &Client,
    engine: &Engine,
    id: &ExecutionId,
    follower: &mut Follower,
) -> CliResult<Execution> {
    loop {
        let done = run_here(client, engine, id, follower).await?;
        if done.status != ExecutionStatus::AwaitingReview {
            return Ok(done);
        }
        // Paused for review: wait for a decision made in another terminal, then resume here.
        match wait_for_decision(client, id, follower).await? {
            Some(next) if next.status == ExecutionStatus::Queued => continue,
            Some(next) if next.status.is_terminal() => return Ok(next),
            Some(next) => {
                return Ok(follow::follow(
                    client,
                    None,
                    id.as_str(),
                    follower,
                    OnInterrupt::Cancel,
                )
                .await?
                .unwrap_or(next));
            }
            None => return Ok(done),
        }
    }
}

/// Waits (reading the execution again: another process decides) until a paused execution is
/// no longer paused. `None` when the user pressed Ctrl-C: the run stays paused.
async fn wait_for_decision(
    client: &Client,
    id: &ExecutionId,
    follower: &mut Follower,
) -> CliResult<Option<Execution>> {
    follow::note_paused(client, id.as_str(), follower).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = client.get_execution(ExecutionRef { id: id.to_string() }).await?;
                if now.status != ExecutionStatus::AwaitingReview {
                    return Ok(Some(now));
                }
                follower.spin();
            }
            _ = tokio::signal::ctrl_c() => {
                follower.note("left paused; decide it any time with `personas review approve|reject`");
                return Ok(None);
            }
        }
    }
}

/// One segment of the execution in this process.
async fn run_here(
    client: &Client,
    engine: &Engine,
    id: &ExecutionId,
    follower: &mut Follower,
) -> CliResult<Execution> {
    let mut events = engine.subscribe();
    let runner = {
        let (engine, id) = (engine.clone(), id.clone());
        tokio::spawn(async move { engine.run_foreground(&id).await })
    };
    let mut cancelled = false;
    let mut tick = tokio::time::interval(Duration::from_millis(120));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(EngineEvent::Output { line }) if &line.execution_id == id => {
                    if !follower.line(&line) {
                        follower.catch_up(client, id.as_str()).await?;
                    }
                }
                Ok(EngineEvent::Execution { execution }) if &execution.id == id
                    && (execution.status.is_terminal() || execution.status == ExecutionStatus::AwaitingReview) => break,
                Ok(_) => {}
                // Fell behind: catch up from the stored output, which has every line.
                Err(RecvError::Lagged(_)) => follower.catch_up(client, id.as_str()).await?,
                Err(RecvError::Closed) => break,
            },
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                follower.note("cancelling… (the CLI gets a few seconds to stop its tools)");
                client.cancel_execution(ExecutionRef { id: id.to_string() }).await?;
            },
            _ = tick.tick() => follower.spin(),
        }
    }
    let done = match runner.await {
        Ok(r) => r?,
        Err(e) => return Err(CliError::runtime(format!("the run task failed: {e}"))),
    };
    follower.catch_up(client, id.as_str()).await?;
    if done.status.is_terminal() || done.status == ExecutionStatus::AwaitingReview {
        return Ok(done);
    }
    // Another runtime took it over meanwhile (one started); keep following its stored state.
    Ok(
        follow::follow(client, None, id.as_str(), follower, OnInterrupt::Cancel)
            .await?
            .unwrap_or(done),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_must_be_json_and_says_where_it_went_wrong() {
        assert_eq!(parse_input(None).expect("none"), None);
        assert_eq!(
            parse_input(Some(r#"{"a":1}"#)).expect("ok"),
            Some(serde_json::json!({"a": 1}))
        );
        let e = parse_input(Some("{a:1}")).expect_err("bad");
        assert_eq!(e.code, 2);
        assert!(
            e.message.contains("--input is not valid JSON") && e.message.contains("column"),
            "{}",
            e.message
        );
        let e = parse_input(Some("@/nonexistent.json")).expect_err("missing file");
        assert!(e.message.contains("/nonexistent.json"), "{}", e.message);
    }
}
