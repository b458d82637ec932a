//! `personas run PERSONA [--input JSON] [--follow]`.
//!
//! The execution is queued in the store first (durable), then:
//! - a running daemon is woken and runs it; `--follow` tails it from the store;
//! - with no daemon, `--follow` runs it in this process and streams engine events;
//!   without `--follow` it stays queued for the next `personas up`.

use super::print_json;
use crate::context::Context;
use crate::daemon::{self, Client};
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Args;
use personas_core::{Execution, ExecutionId, ExecutionStatus, OutputLine};
use personas_engine::{Engine, EngineEvent};
use personas_store::{NewExecution, Store};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};
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
    let store = ctx.store()?;
    let persona = store.personas().find(&args.persona)?;
    let exec = store
        .executions()
        .enqueue(&NewExecution::manual(persona.id.clone(), input))?;
    let data_dir = ctx.config.data_dir.clone();
    let daemon = daemon::running(&data_dir)?;
    let client = daemon.as_ref().and_then(|d| Client::new(d, &data_dir));
    if let Some(c) = &client {
        c.wake().await;
    }
    if !args.follow {
        if ctx.json {
            print_json(&exec);
        } else {
            println!("{}", exec.id);
            if daemon.is_none() {
                eprintln!(
                    "queued; no runtime is running for {} — it runs when `personas up` starts (or use --follow to run it now)",
                    data_dir.display()
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
            persona.name,
            exec.id
        );
    }
    let done = match daemon {
        Some(_) => follow_stored(&store, &exec.id, client.as_ref(), &mut follower).await?,
        None => follow_foreground(ctx, store, &exec.id, &mut follower).await?,
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

/// Runs the execution in this process, streaming engine events. Ctrl-C cancels it cleanly.
async fn follow_foreground(
    ctx: &Context,
    store: Store,
    id: &ExecutionId,
    follower: &mut Follower,
) -> CliResult<Execution> {
    let engine = Engine::new(ctx.config.clone(), store.clone());
    loop {
        let done = run_here(&engine, &store, id, follower).await?;
        if done.status != ExecutionStatus::AwaitingReview {
            return Ok(done);
        }
        // Paused for review: wait for a decision made in another terminal, then resume here.
        match wait_for_decision(&store, id, follower).await? {
            Some(next) if next.status == ExecutionStatus::Queued => continue,
            Some(next) if next.status.is_terminal() => return Ok(next),
            Some(next) => return follow_stored(&store, id, None, follower).await.or(Ok(next)),
            None => return Ok(done),
        }
    }
}

/// Prints how to decide a paused run's reviews.
fn note_paused(store: &Store, id: &ExecutionId, follower: &mut Follower) -> CliResult<()> {
    let pending = store
        .protocol()
        .reviews(Some(personas_core::ReviewStatus::Pending), Some(id))?;
    follower.note("⏸ paused: waiting for a review decision");
    for r in pending {
        follower.note(&format!(
            "  {} — `personas review approve {} [--note TEXT]` or `personas review reject {}`",
            r.title, r.id, r.id
        ));
    }
    Ok(())
}

/// Waits (polling the store, which another process changes) until a paused execution is no
/// longer paused. `None` when the user pressed Ctrl-C: the run stays paused.
async fn wait_for_decision(
    store: &Store,
    id: &ExecutionId,
    follower: &mut Follower,
) -> CliResult<Option<Execution>> {
    note_paused(store, id, follower)?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = store.executions().get(id)?;
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
    engine: &Engine,
    store: &Store,
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
                Ok(EngineEvent::Output { line }) if &line.execution_id == id => follower.line(&line),
                Ok(EngineEvent::Execution { execution }) if &execution.id == id
                    && (execution.status.is_terminal() || execution.status == ExecutionStatus::AwaitingReview) => break,
                Ok(_) => {}
                // Fell behind: catch up from the store, which has every line.
                Err(RecvError::Lagged(_)) => { follower.catch_up(store, id)?; }
                Err(RecvError::Closed) => break,
            },
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                follower.note("cancelling… (the CLI gets a few seconds to stop its tools)");
                engine.cancel(id).await?;
            },
            _ = tick.tick() => follower.spin(),
        }
    }
    let done = match runner.await {
        Ok(r) => r?,
        Err(e) => return Err(CliError::runtime(format!("the run task failed: {e}"))),
    };
    follower.catch_up(store, id)?;
    if done.status.is_terminal() || done.status == ExecutionStatus::AwaitingReview {
        return Ok(done);
    }
    // Another runtime took it over meanwhile (a daemon started); keep following from the store.
    follow_stored(store, id, None, follower).await
}

/// Follows an execution another process runs, by tailing the store.
async fn follow_stored(
    store: &Store,
    id: &ExecutionId,
    client: Option<&Client>,
    follower: &mut Follower,
) -> CliResult<Execution> {
    let mut cancelled = false;
    let mut paused_noted = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let more = follower.catch_up(store, id)?;
        if !more {
            let exec = store.executions().get(id)?;
            if exec.status.is_terminal() {
                follower.catch_up(store, id)?;
                return Ok(exec);
            }
            // The daemon resumes it after the decision; keep following.
            if exec.status == ExecutionStatus::AwaitingReview && !paused_noted {
                note_paused(store, id, follower)?;
                paused_noted = true;
            } else if exec.status != ExecutionStatus::AwaitingReview {
                paused_noted = false;
            }
        }
        tokio::select! {
            _ = tick.tick() => follower.spin(),
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                follower.note("cancelling…");
                match client {
                    Some(c) => { c.cancel(id.as_str()).await?; }
                    None => { store.executions().request_cancel(id)?; }
                }
            },
        }
    }
}

/// Prints lines once each, in order, with a spinner between them on a terminal.
pub struct Follower {
    json: bool,
    style: Style,
    last_seq: i64,
    spinner: bool,
    spun: bool,
    frame: usize,
    started: Instant,
}

const SPIN: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const PAGE: u32 = 1000;

impl Follower {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            style: Style::detect(),
            last_seq: 0,
            spinner: !json && std::io::stderr().is_terminal(),
            spun: false,
            frame: 0,
            started: Instant::now(),
        }
    }

    fn clear_spinner(&mut self) {
        if self.spun {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
            self.spun = false;
        }
    }

    pub fn spin(&mut self) {
        if !self.spinner {
            return;
        }
        self.frame = (self.frame + 1) % SPIN.len();
        eprint!(
            "\r\x1b[2K{} {}",
            SPIN[self.frame],
            self.style.dim(&format!(
                "working · {:.0} s",
                self.started.elapsed().as_secs_f64()
            ))
        );
        let _ = std::io::stderr().flush();
        self.spun = true;
    }

    pub fn note(&mut self, text: &str) {
        self.clear_spinner();
        eprintln!("{}", self.style.dim(text));
    }

    pub fn line(&mut self, l: &OutputLine) {
        if l.seq <= self.last_seq {
            return;
        }
        self.last_seq = l.seq;
        self.clear_spinner();
        if self.json {
            println!("{}", serde_json::to_string(l).unwrap_or_default());
        } else if let Some(text) = render::line(l, self.style) {
            println!("{text}");
        }
    }

    /// Prints stored lines not shown yet; true when there may be more right away.
    pub fn catch_up(&mut self, store: &Store, id: &ExecutionId) -> CliResult<bool> {
        let lines = store.executions().output(id, self.last_seq, PAGE)?;
        for l in &lines {
            self.line(l);
        }
        Ok(lines.len() == PAGE as usize)
    }

    pub fn finish(&mut self, e: &Execution) {
        self.clear_spinner();
        if self.json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!("{}", render::summary(e, self.style));
        }
    }
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
