//! Running one execution on the real Claude Code CLI.
//!
//! Modelled on a log-source exec: spawn, frame stdout by newline with a size cap, parse each
//! line, persist and broadcast it, and watch the process with a deadline and an inactivity
//! watchdog of our own (the CLI has none that fires in practice, fixtures README §3.6).
//! The CLI runs in a process group (Unix) or Job Object (Windows) of its own; stopping it is
//! staged ([`process::Stopper`]: SIGINT → grace → SIGTERM → grace → SIGKILL to the group; on
//! Windows the job is terminated), then the reaper kills any descendant left behind (Bash tool
//! processes survive their CLI, §3.7).
//!
//! Success is decided from the `result` line ([`outcome::decide`]), never the exit code.

pub mod command;
pub mod environment;
pub mod lines;
pub mod mcp;
pub mod outcome;
pub mod process;
pub mod protocol;

use crate::config::EngineConfig;
use crate::credentials::{self, CredentialError, RunCredentials};
use crate::events::{EngineEvent, EventBus};
use crate::locate;
use crate::reaper;
use crate::vault::{VaultCell, VaultError};
use crate::writer::OutputWriter;
use command::Invocation;
use lines::{Frame, LineReader};
use outcome::{Observed, StopReason};
use personas_core::prompt::{self, MemoryDoc, PromptInput, ToolDoc};
use personas_core::protocol::scan_text;
use personas_core::redact::Redactor;
use personas_core::stream::{ApiRetry, Block, ClaudeLine, ResultLine, parse_line};
use personas_core::{ErrorClass, Execution, ExecutionOutcome, ExecutionStatus, LineKind, Persona};
use personas_store::review::Resume;
use personas_store::{NewLine, Store};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What every run shares.
#[derive(Clone)]
pub struct Runtime {
    pub config: Arc<EngineConfig>,
    pub store: Store,
    pub bus: EventBus,
    pub writer: OutputWriter,
    /// Woken when a run publishes a bus event (the dispatcher listens).
    pub bus_wakeup: Arc<tokio::sync::Notify>,
    /// The credential vault, unlocked on first use by a run that needs it.
    pub vault: Arc<VaultCell>,
}

/// How long a CLI that has exited gets to flush its pipes before leftovers are reaped.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Memories offered to the prompt builder (which then fits them into its byte budget).
const MEMORY_CANDIDATES: u32 = 100;
const STDERR_TAIL_LINES: usize = 20;
const STDERR_LINE_CAP: usize = 64 * 1024;

/// How a run can be asked to stop from outside.
#[derive(Clone, Default)]
pub struct StopSignals {
    /// A user cancelled this execution.
    pub cancel: CancellationToken,
    /// The hosting runtime is shutting down.
    pub shutdown: CancellationToken,
}

/// Runs a claimed execution to its end (or to a pause for review) and returns it as stored.
pub async fn run(rt: &Runtime, execution: Execution, stops: StopSignals) -> Execution {
    let mut sink = Sink::new(rt, &execution);
    // A decided review re-queued this execution to continue its Claude session.
    let resume = crate::review::take_resume(rt, &execution).await;
    let mut outcome = drive(rt, &execution, &stops, &mut sink, resume.as_ref()).await;
    crate::review::settle_outcome(rt, &execution, resume.is_some(), &mut outcome).await;
    if outcome.status == ExecutionStatus::AwaitingReview {
        sink.emit(
            LineKind::Engine,
            "paused: waiting for a review decision (`personas review list`)".into(),
        )
        .await;
    }
    // What is stored on the execution passes the run's redactor like every output line.
    for text in [&mut outcome.error_message, &mut outcome.result_text]
        .into_iter()
        .flatten()
    {
        sink.redactor.redact_string(text);
    }
    rt.writer.flush().await;
    {
        let store = rt.store.clone();
        let id = execution.id.to_string();
        if let Err(e) = blocking(move || store.credentials().revoke_run_token(&id)).await {
            tracing::warn!(error = %e, "cannot revoke the run's MCP token");
        }
    }
    let store = rt.store.clone();
    let id = execution.id.clone();
    let stored = blocking(move || store.executions().finish(&id, &outcome)).await;
    match stored {
        Ok(done) => {
            tracing::info!(execution = %done.id, status = %done.status, "execution ended");
            crate::review::after_segment(rt, &done).await;
            // Healing first, so whoever sees the end can already see the retry or the issue.
            let notes = crate::healing::after_finish(rt, &done.id).await;
            for note in &notes {
                sink.emit(LineKind::Engine, note.clone()).await;
            }
            rt.writer.flush().await;
            let done = if notes.is_empty() {
                done
            } else {
                let store = rt.store.clone();
                let id = done.id.clone();
                blocking(move || store.executions().get(&id))
                    .await
                    .unwrap_or(done)
            };
            rt.bus.send(EngineEvent::execution(&done));
            done
        }
        Err(e) => {
            tracing::error!(execution = %execution.id, error = %e, "cannot store how the execution ended");
            execution
        }
    }
}

/// Runs `f` on the blocking pool (the store is synchronous), propagating panics.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn drive(
    rt: &Runtime,
    execution: &Execution,
    stops: &StopSignals,
    sink: &mut Sink<'_>,
    resume: Option<&Resume>,
) -> ExecutionOutcome {
    let store = rt.store.clone();
    let persona_id = execution.persona_id.clone();
    let persona = match blocking(move || store.personas().get(&persona_id)).await {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("cannot load the persona: {e}");
            sink.emit(LineKind::Engine, msg.clone()).await;
            return ExecutionOutcome::failed(ErrorClass::Unknown, msg);
        }
    };
    let claude = match locate::find_claude(rt.config.claude_path.as_deref()) {
        Ok(found) => found.path,
        Err(e) => {
            sink.emit(LineKind::Engine, e.to_string()).await;
            return ExecutionOutcome::failed(ErrorClass::CliMissing, e.to_string());
        }
    };
    let creds = match run_credentials(rt, &persona).await {
        Ok(c) => c,
        Err(msg) => {
            sink.emit(LineKind::Engine, msg.clone()).await;
            return ExecutionOutcome::failed(ErrorClass::CredentialUnavailable, msg);
        }
    };
    // From here on every line, note and stored field passes the run's redactor: the persona's
    // credentials and its channels' secrets.
    let channel_secrets = persona_channel_secrets(rt, &persona).await;
    sink.redactor = Arc::new(
        creds.redactor.with_secrets(
            channel_secrets
                .iter()
                .map(|(label, value)| (label.as_str(), value)),
        ),
    );
    let prompt_text = match resume {
        // The session already holds the prompt; the decision is the next user message.
        Some(r) => {
            sink.emit(
                LineKind::Engine,
                format!("resuming session {} with the review decision", r.session_id),
            )
            .await;
            r.prompt.clone()
        }
        None => match build_prompt(rt, &persona, execution, &creds.docs).await {
            Ok(p) => p,
            Err(msg) => {
                sink.emit(LineKind::Engine, msg.clone()).await;
                return ExecutionOutcome::failed(ErrorClass::Unknown, msg);
            }
        },
    };
    let cwd = rt.config.workspaces_dir().join(persona.id.as_str());
    if let Err(e) = std::fs::create_dir_all(&cwd) {
        let msg = format!("cannot create the working directory {}: {e}", cwd.display());
        sink.emit(LineKind::Engine, msg.clone()).await;
        return ExecutionOutcome::failed(ErrorClass::SpawnFailed, msg);
    }
    let mut inv = Invocation {
        as_root: command::running_as_root(),
        resume_session: resume.map(|r| r.session_id.clone()),
        secret_env: creds.env,
        inherited_env: command::inherited_env(),
        ..Invocation::default()
    };
    // Kept alive until the CLI has exited; dropping it removes the file and closes the channel.
    let mut tools = match mcp::prepare(rt, execution).await {
        Ok(Some(prepared)) => {
            inv.extra_args.extend(prepared.file.args());
            inv.extra_allowed_tools.push(mcp::ALLOW_RULE.into());
            Some(prepared)
        }
        Ok(None) => None,
        Err(msg) => {
            sink.emit(LineKind::Engine, msg.clone()).await;
            return ExecutionOutcome::failed(ErrorClass::SpawnFailed, msg);
        }
    };
    if let Err(msg) = keep_session_files(rt, execution, &mut inv) {
        sink.emit(LineKind::Engine, msg.clone()).await;
        return ExecutionOutcome::failed(ErrorClass::SpawnFailed, msg);
    }
    let cmd = command::build(&persona, execution, &rt.config, &claude, cwd, &inv);
    // Every value of the run's environment that is not known to be harmless — `[env]` entries,
    // the CLI's own credentials (a Console login key among them) — is a secret the run can
    // print; so is the MCP token, since the agent can read its own config file. One rebuild of
    // the automaton for all of them: with many secrets each build costs milliseconds.
    let mut run_secrets = cmd.env.redaction_pairs();
    if let Some(p) = &tools {
        run_secrets.push(("personas.mcp_token".into(), &p.token));
    }
    sink.redactor = Arc::new(
        sink.redactor.with_secrets(
            run_secrets
                .iter()
                .map(|(label, value)| (label.as_str(), *value)),
        ),
    );
    let channel = tools.as_mut().map(|p| &mut p.channel);
    let outcome = supervise(
        rt,
        execution,
        &persona,
        cmd,
        prompt_text,
        stops,
        sink,
        channel,
    )
    .await;
    drop(tools);
    seal_session_files(rt, execution, sink).await;
    outcome
}

/// The resolved secrets of the persona's notification channels, labelled
/// `channel.<name>.<reference>`. A channel whose secrets cannot be resolved now (a locked vault,
/// an unset variable) contributes nothing: it cannot deliver either.
async fn persona_channel_secrets(
    rt: &Runtime,
    persona: &Persona,
) -> Vec<(String, personas_core::Secret)> {
    let (store, cell, config, id) = (
        rt.store.clone(),
        Arc::clone(&rt.vault),
        Arc::clone(&rt.config),
        persona.id.clone(),
    );
    blocking(move || {
        let mut out = Vec::new();
        for c in store.deliveries().channels(Some(&id)).unwrap_or_default() {
            let Ok(parsed) = crate::delivery::channel::parse(c.kind, &c.config) else {
                continue;
            };
            if parsed.secret_refs().is_empty() {
                continue;
            }
            if let Ok(resolved) = crate::delivery::resolve_secrets(&store, &cell, &config, &parsed)
            {
                out.extend(
                    resolved
                        .values()
                        .map(|(r, v)| (format!("channel.{}.{r}", c.name), v.clone())),
                );
            }
        }
        out
    })
    .await
}

/// Points the CLI's own session files (transcript, todos, backups) at the execution's dir under
/// the data dir, keeping the user's login where it is ([`crate::transcripts`]).
fn keep_session_files(
    rt: &Runtime,
    execution: &Execution,
    inv: &mut Invocation,
) -> Result<(), String> {
    let prepared = crate::transcripts::prepare(&rt.config, execution.id.as_str())
        .map_err(|e| format!("cannot create the CLI's session directory: {e}"))?;
    inv.extra_env.extend(prepared.env);
    // A secret of the run's environment, so the run's redactor learns it with the others.
    if let Some(key) = prepared.login_key {
        inv.secret_env.push(("ANTHROPIC_API_KEY".into(), key));
    }
    Ok(())
}

/// Redacts and restricts what the CLI wrote for this segment of the run.
async fn seal_session_files(rt: &Runtime, execution: &Execution, sink: &mut Sink<'_>) {
    let data_dir = rt.config.data_dir.clone();
    let id = execution.id.to_string();
    let redactor = Arc::clone(&sink.redactor);
    let sealed = blocking(move || crate::transcripts::seal(&data_dir, &id, &redactor)).await;
    if let Err(e) = sealed {
        sink.emit(
            LineKind::Warning,
            format!("cannot redact the CLI's session files: {e}"),
        )
        .await;
    }
}

/// Opens the persona's linked credentials (none: the vault is not touched).
async fn run_credentials(rt: &Runtime, persona: &Persona) -> Result<RunCredentials, String> {
    let (store, cell, id) = (rt.store.clone(), Arc::clone(&rt.vault), persona.id.clone());
    blocking(move || {
        let attempt = || credentials::for_run(&store, &id, &mut || cell.get(&store));
        match attempt() {
            // Another process rotated the key since we unlocked: unlock again, once.
            Err(CredentialError::Vault(VaultError::Stale)) => {
                cell.invalidate();
                attempt()
            }
            other => other,
        }
    })
    .await
    .map_err(|e| format!("the persona's credentials are not available: {e}"))
}

async fn build_prompt(
    rt: &Runtime,
    persona: &Persona,
    execution: &Execution,
    credentials: &[prompt::CredentialDoc],
) -> Result<String, String> {
    let store = rt.store.clone();
    let persona_id = persona.id.clone();
    let memories = blocking(move || store.protocol().memories(&persona_id, MEMORY_CANDIDATES))
        .await
        .map_err(|e| format!("cannot load memories: {e}"))?;
    let store = rt.store.clone();
    let persona_id = persona.id.clone();
    let tools: Vec<ToolDoc> = blocking(move || store.tools().of_persona(&persona_id))
        .await
        .map_err(|e| format!("cannot load the persona's tools: {e}"))?
        .iter()
        .map(crate::tools::doc)
        .collect();
    let memories: Vec<MemoryDoc> = memories
        .into_iter()
        .map(|m| MemoryDoc {
            title: m.title,
            content: m.content,
            category: m.category,
            importance: m.importance,
        })
        .collect();
    let trigger_event = crate::bus::triggering_event(&rt.store, execution).await;
    let nonce = prompt::new_nonce();
    Ok(prompt::assemble(&PromptInput {
        persona,
        tools: &tools,
        credentials,
        memories: &memories,
        trigger_event: trigger_event.as_ref(),
        input: execution.input.as_ref(),
        nonce: &nonce,
    }))
}

/// What the stream has told us so far.
#[derive(Default)]
struct StreamState {
    session_id: Option<String>,
    pending_tools: HashSet<String>,
    used_tools: bool,
    result: Option<ResultLine>,
    last_retry: Option<ApiRetry>,
    accomplished: Option<bool>,
    stderr_tail: VecDeque<String>,
}

/// How the supervision loop ended.
#[derive(Default)]
struct Watched {
    exit: Option<std::process::ExitStatus>,
    stop: Option<StopReason>,
    /// The leftovers were already reaped while draining the pipes.
    reaped: bool,
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    rt: &Runtime,
    execution: &Execution,
    persona: &Persona,
    cmd: command::CliCommand,
    prompt_text: String,
    stops: &StopSignals,
    sink: &mut Sink<'_>,
    tools: Option<&mut mcp::ToolChannel>,
) -> ExecutionOutcome {
    let (mut cli, pipes) = match start_cli(rt, execution, &cmd, prompt_text, sink).await {
        Ok(started) => started,
        Err(failed) => return failed,
    };
    let mut st = StreamState::default();
    let timeout = Duration::from_secs(persona.timeout_secs);
    let watched = watch(
        rt, execution, persona, &mut cli, pipes, timeout, stops, &mut st, sink, tools,
    )
    .await;
    // Whatever is still in the CLI's group (or Windows job) goes now; tools run in process
    // groups of their own and may outlive the CLI, on abnormal ends too.
    cli.kill_container();
    let exit_ok = watched.exit.is_some_and(|s| s.success());
    if !watched.reaped && (st.used_tools || watched.stop.is_some() || !exit_ok) {
        let id = execution.id.to_string();
        let n = blocking(move || reaper::reap(&[&id])).await;
        if n > 0 {
            sink.emit(
                LineKind::Engine,
                format!("killed {n} process(es) the run left behind"),
            )
            .await;
        }
    }
    let exit_text = watched
        .exit
        .map(describe_exit)
        .unwrap_or_else(|| "unknown exit".into());
    let stderr_tail = st
        .stderr_tail
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let mut decided = outcome::decide(&Observed {
        result: st.result.as_ref(),
        stop: watched.stop,
        exit: exit_text,
        stderr_tail: &stderr_tail,
        last_retry: st.last_retry.as_ref(),
        accomplished: st.accomplished,
        timeout_secs: timeout.as_secs(),
        inactivity_secs: rt.config.inactivity_timeout().as_secs(),
    });
    if decided.session_id.is_none() {
        decided.session_id = st.session_id.clone();
    }
    decided
}

/// Starts the CLI, records its pid and hands it the prompt; a failure is the run's outcome.
async fn start_cli(
    rt: &Runtime,
    execution: &Execution,
    cmd: &command::CliCommand,
    prompt_text: String,
    sink: &mut Sink<'_>,
) -> Result<(process::CliProcess, process::Pipes), ExecutionOutcome> {
    let (cli, mut pipes) = match process::spawn(cmd) {
        Ok(started) => started,
        Err(e) => {
            let (class, msg) = if e.kind() == std::io::ErrorKind::NotFound {
                (
                    ErrorClass::CliMissing,
                    format!(
                        "the Claude CLI at {} could not be started: {e}",
                        cmd.program.display()
                    ),
                )
            } else {
                (
                    ErrorClass::SpawnFailed,
                    format!("cannot start {}: {e}", cmd.program.display()),
                )
            };
            sink.emit(LineKind::Engine, msg.clone()).await;
            return Err(ExecutionOutcome::failed(class, msg));
        }
    };
    let pid = cli.pid();
    {
        // Informational only (the reaper finds processes by marker), so not awaited: the run
        // does not wait for a disk sync before reading the CLI's first line.
        let store = rt.store.clone();
        let id = execution.id.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.executions().set_pid(&id, pid) {
                tracing::warn!(error = %e, "cannot record the CLI pid");
            }
        });
    }
    sink.emit(
        LineKind::Engine,
        format!(
            "started {} (pid {pid}) in {}",
            cmd.program.display(),
            cmd.cwd.display()
        ),
    )
    .await;
    // The prompt goes to stdin, which is then closed (fixtures README §3.8). Written from its own
    // task so a CLI that dies before reading cannot block us.
    if let Some(mut stdin) = pipes.stdin.take() {
        tokio::spawn(async move {
            if let Err(e) = stdin.write_all(prompt_text.as_bytes()).await {
                tracing::debug!(error = %e, "the CLI did not take the whole prompt");
            }
            let _ = stdin.shutdown().await;
        });
    }
    Ok((cli, pipes))
}

/// Reads the CLI's output until it has exited and its pipes are closed, stopping it on cancel,
/// shutdown, timeout or inactivity.
#[allow(clippy::too_many_arguments)]
async fn watch(
    rt: &Runtime,
    execution: &Execution,
    persona: &Persona,
    cli: &mut process::CliProcess,
    pipes: process::Pipes,
    timeout: Duration,
    stops: &StopSignals,
    st: &mut StreamState,
    sink: &mut Sink<'_>,
    mut tools: Option<&mut mcp::ToolChannel>,
) -> Watched {
    let cap = rt.config.output_line_cap_bytes;
    let mut out = LineReader::new(BufReader::with_capacity(64 * 1024, pipes.stdout), cap);
    let mut err = LineReader::new(BufReader::new(pipes.stderr), STDERR_LINE_CAP);
    let (mut out_done, mut err_done) = (false, false);
    let (deadline, inactivity) = (Instant::now() + timeout, rt.config.inactivity_timeout());
    let (mut last_activity, mut drain_until) = (Instant::now(), None);
    let mut stopper = process::Stopper::new(rt.config.cancel_grace());
    let mut w = Watched::default();
    while !(out_done && err_done && w.exit.is_some()) {
        let watching = w.stop.is_none() && w.exit.is_none();
        let idle_at = last_activity + inactivity;
        // Set by a branch that asks the CLI to stop, with the note saying why.
        let mut stop_now: Option<(StopReason, String)> = None;
        tokio::select! {
            frame = out.next(), if !out_done => match frame {
                Ok(Some(frame)) => {
                    last_activity = Instant::now();
                    handle_stdout(rt, execution, persona, frame, st, sink).await;
                }
                Ok(None) => out_done = true,
                Err(e) => {
                    sink.emit(LineKind::Engine, format!("reading the CLI's output failed: {e}")).await;
                    out_done = true;
                }
            },
            call = next_tool_call(&mut tools) => {
                last_activity = Instant::now();
                handle_tool_call(rt, execution, persona, call, st, sink).await;
            },
            frame = err.next(), if !err_done => match frame {
                Ok(Some(frame)) => handle_stderr(frame, st, sink).await,
                Ok(None) | Err(_) => err_done = true,
            },
            status = cli.wait(), if w.exit.is_none() => {
                w.exit = Some(status.unwrap_or_default());
                drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            },
            _ = stops.cancel.cancelled(), if watching => {
                stop_now = Some((StopReason::Cancelled, "cancel requested".into()));
            },
            _ = stops.shutdown.cancelled(), if watching => {
                stop_now = Some((StopReason::Shutdown, "the runtime is shutting down".into()));
            },
            _ = tokio::time::sleep_until(deadline), if watching => {
                stop_now = Some((StopReason::Timeout, format!("timeout of {} s reached", timeout.as_secs())));
            },
            _ = tokio::time::sleep_until(idle_at), if watching && st.pending_tools.is_empty() => {
                stop_now = Some((StopReason::Inactivity, format!("no output for {} s", inactivity.as_secs())));
            },
            _ = stopper.next_step(), if w.exit.is_none() && stopper.pending() => {
                if let Some(note) = stopper.escalate(cli) {
                    sink.emit(LineKind::Engine, note).await;
                }
            },
            _ = sleep_until_opt(drain_until), if drain_until.is_some() => {
                // The CLI is gone but something still holds its pipes: a left-behind tool
                // process. Reap, give the pipes one more moment, then stop reading.
                if w.reaped {
                    break;
                }
                reap_while_draining(cli, execution, sink).await;
                w.reaped = true;
                drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
            },
        }
        if let Some((reason, why)) = stop_now {
            w.stop = Some(reason);
            let how = process::Stopper::first_stage_note();
            sink.emit(LineKind::Engine, format!("{why}: {how}")).await;
            stopper.begin(cli);
        }
    }
    w
}

/// The CLI has exited but something still holds its pipes: kill what it left behind.
async fn reap_while_draining(
    cli: &mut process::CliProcess,
    execution: &Execution,
    sink: &mut Sink<'_>,
) {
    cli.kill_container();
    let id = execution.id.to_string();
    let n = blocking(move || reaper::reap(&[&id])).await;
    sink.emit(
        LineKind::Engine,
        format!("the CLI exited but its output stayed open; killed {n} leftover process(es)"),
    )
    .await;
}

async fn handle_stderr(frame: Frame, st: &mut StreamState, sink: &mut Sink<'_>) {
    match frame {
        Frame::Line(bytes) => {
            let text = sink
                .redactor
                .redact(&String::from_utf8_lossy(&bytes))
                .into_owned();
            if st.stderr_tail.len() == STDERR_TAIL_LINES {
                st.stderr_tail.pop_front();
            }
            st.stderr_tail.push_back(text.clone());
            sink.emit(LineKind::Stderr, text).await;
        }
        Frame::Oversize(n) => {
            sink.emit(
                LineKind::Warning,
                format!("a stderr line of {n} bytes was too long to keep"),
            )
            .await;
        }
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = s.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match s.code() {
        Some(c) => format!("exit code {c}"),
        None => "unknown exit".into(),
    }
}

/// The next call on the run's tool channel; pending forever without one.
async fn next_tool_call(tools: &mut Option<&mut mcp::ToolChannel>) -> mcp::ToolCall {
    match tools {
        Some(ch) => ch.next().await,
        None => std::future::pending().await,
    }
}

/// A protocol tool call the run's MCP server forwarded: redacted, applied and recorded exactly
/// like a protocol line, then answered.
async fn handle_tool_call(
    rt: &Runtime,
    execution: &Execution,
    persona: &Persona,
    call: mcp::ToolCall,
    st: &mut StreamState,
    sink: &mut Sink<'_>,
) {
    let (store, bus, exec, pers, redactor) = (
        rt.store.clone(),
        rt.bus.clone(),
        execution.clone(),
        persona.clone(),
        Arc::clone(&sink.redactor),
    );
    let (tool, args) = (call.tool, call.arguments);
    let applied =
        blocking(move || mcp::apply_call(&store, &bus, &exec, &pers, &redactor, &tool, args)).await;
    let reply = match applied {
        Ok((msg, applied)) => {
            let json = serde_json::to_string(&msg).unwrap_or_default();
            sink.emit(LineKind::Protocol, json).await;
            if applied.accomplished.is_some() {
                st.accomplished = applied.accomplished;
            }
            if applied.published_event {
                rt.bus_wakeup.notify_one();
            }
            match applied.warning {
                Some(w) => {
                    sink.emit(LineKind::Warning, w.clone()).await;
                    mcp::CallReply::err(w)
                }
                None => mcp::CallReply::ok(mcp::confirmation(&msg)),
            }
        }
        Err(e) => {
            let e = sink.redactor.redact(&e).into_owned();
            sink.emit(LineKind::Warning, e.clone()).await;
            mcp::CallReply::err(e)
        }
    };
    let _ = call.reply.send(reply);
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn handle_stdout(
    rt: &Runtime,
    execution: &Execution,
    persona: &Persona,
    frame: Frame,
    st: &mut StreamState,
    sink: &mut Sink<'_>,
) {
    let bytes = match frame {
        Frame::Line(b) => b,
        Frame::Oversize(n) => {
            sink.emit(
                LineKind::Warning,
                format!(
                    "an output line of {n} bytes exceeded the {} byte cap and was not kept",
                    rt.config.output_line_cap_bytes
                ),
            )
            .await;
            return;
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    // Redacted before it is parsed, so nothing derived from it (protocol rows, the result text)
    // can carry a secret value either.
    let text = sink
        .redactor
        .redact(&String::from_utf8_lossy(&bytes))
        .into_owned();
    let parsed = match parse_line(text.as_bytes()) {
        Ok(line) => line,
        Err(_) => {
            // stdout is JSON only (README §3.1); anything else is kept, not fatal.
            sink.emit(LineKind::Raw, text).await;
            return;
        }
    };
    let mut protocol_texts: Vec<String> = Vec::new();
    let kind = match &parsed {
        ClaudeLine::Init(init) => {
            st.session_id = Some(init.session_id.clone());
            let store = rt.store.clone();
            let id = execution.id.clone();
            let session = init.session_id.clone();
            let model = init.model.clone();
            if let Err(e) = blocking(move || {
                store
                    .executions()
                    .set_session(&id, &session, model.as_deref())
            })
            .await
            {
                tracing::warn!(error = %e, "cannot record the session id");
            }
            LineKind::System
        }
        ClaudeLine::ApiRetry(r) => {
            st.last_retry = Some(r.clone());
            LineKind::Retry
        }
        ClaudeLine::System { .. } | ClaudeLine::Other { .. } => LineKind::System,
        ClaudeLine::Assistant(a) => {
            let mut kind = LineKind::AssistantText;
            for b in &a.blocks {
                match b {
                    Block::ToolUse { id, .. } => {
                        st.pending_tools.insert(id.clone());
                        st.used_tools = true;
                        kind = LineKind::ToolUse;
                    }
                    Block::Thinking(_) => kind = LineKind::Thinking,
                    // Only the persona's own words carry protocol, not sub-agents' or the CLI's
                    // synthetic error text.
                    Block::Text(t) if a.parent_tool_use_id.is_none() && !a.is_synthetic() => {
                        protocol_texts.push(t.clone());
                    }
                    _ => {}
                }
            }
            kind
        }
        ClaudeLine::User(u) => {
            let mut kind = LineKind::User;
            for b in &u.blocks {
                if let Block::ToolResult(r) = b {
                    st.pending_tools.remove(&r.tool_use_id);
                    kind = LineKind::ToolResult;
                }
            }
            kind
        }
        ClaudeLine::Result(_) => LineKind::Result,
    };
    sink.emit(kind, text).await;
    if let ClaudeLine::Result(r) = parsed {
        st.pending_tools.clear();
        st.result = Some(r);
    }
    for t in protocol_texts {
        apply_protocol(rt, execution, persona, &t, st, sink).await;
    }
}

async fn apply_protocol(
    rt: &Runtime,
    execution: &Execution,
    persona: &Persona,
    text: &str,
    st: &mut StreamState,
    sink: &mut Sink<'_>,
) {
    for scanned in scan_text(text) {
        match scanned {
            Ok(msg) => {
                let (store, bus, exec, pers, m) = (
                    rt.store.clone(),
                    rt.bus.clone(),
                    execution.clone(),
                    persona.clone(),
                    msg.clone(),
                );
                let applied =
                    blocking(move || protocol::apply(&store, &bus, &exec, &pers, &m)).await;
                let json = serde_json::to_string(&msg).unwrap_or_default();
                sink.emit(LineKind::Protocol, json).await;
                match applied {
                    Ok(a) => {
                        if let Some(w) = a.warning {
                            sink.emit(LineKind::Warning, w).await;
                        }
                        if a.accomplished.is_some() {
                            st.accomplished = a.accomplished;
                        }
                        if a.published_event {
                            rt.bus_wakeup.notify_one();
                        }
                    }
                    Err(e) => {
                        sink.emit(
                            LineKind::Warning,
                            format!("{} could not be stored: {e}", msg.key()),
                        )
                        .await;
                    }
                }
            }
            Err(w) => {
                let json = serde_json::to_string(&w).unwrap_or_default();
                sink.emit(LineKind::Warning, json).await;
            }
        }
    }
}

/// Numbers, caps, redacts and hands lines of one execution to the writer.
struct Sink<'r> {
    rt: &'r Runtime,
    execution_id: personas_core::ExecutionId,
    seq: i64,
    stored_bytes: usize,
    truncated: bool,
    /// Every secret value of this run; applied to every line before it is stored or broadcast.
    redactor: Arc<Redactor>,
}

impl<'r> Sink<'r> {
    fn new(rt: &'r Runtime, execution: &Execution) -> Self {
        Self {
            rt,
            execution_id: execution.id.clone(),
            // A resumed execution continues its numbering.
            seq: execution.output_lines as i64,
            stored_bytes: 0,
            truncated: false,
            redactor: Arc::new(Redactor::none()),
        }
    }

    async fn emit(&mut self, kind: LineKind, mut text: String) {
        self.redactor.redact_string(&mut text);
        // Results, protocol, warnings and engine notes are always kept: they explain the run.
        let essential = matches!(
            kind,
            LineKind::Result | LineKind::Protocol | LineKind::Warning | LineKind::Engine
        );
        if !essential && self.stored_bytes + text.len() > self.rt.config.output_total_cap_bytes {
            if !self.truncated {
                self.truncated = true;
                let store = self.rt.store.clone();
                let id = self.execution_id.clone();
                if let Err(e) = blocking(move || store.executions().set_output_truncated(&id)).await
                {
                    tracing::warn!(error = %e, "cannot mark output truncated");
                }
                let note = format!(
                    "output truncated: more than {} bytes; later lines are not stored",
                    self.rt.config.output_total_cap_bytes
                );
                Box::pin(self.emit(LineKind::Engine, note)).await;
            }
            return;
        }
        self.stored_bytes += text.len();
        self.seq += 1;
        self.rt
            .writer
            .line(NewLine {
                execution_id: self.execution_id.clone(),
                seq: self.seq,
                kind,
                text,
                at_ms: chrono::Utc::now().timestamp_millis(),
            })
            .await;
    }
}
