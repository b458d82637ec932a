//! Supervising the CLI of one run: starting it with the prompt, reading its stdout, stderr and
//! tool channel until it has exited and its pipes are closed, turning each line into stored
//! output and protocol effects, and deciding the outcome from what was seen.

use super::lines::{Frame, LineReader};
use super::outcome::{self, Observed, StopReason};
use super::sink::Sink;
use super::{
    DRAIN_AFTER_EXIT, Runtime, STDERR_LINE_CAP, STDERR_TAIL_LINES, StopSignals, blocking, command,
    mcp, process, protocol, stop,
};
use personas_core::protocol::scan_text;
use personas_core::stream::{ApiRetry, Block, ClaudeLine, Init, ResultLine, parse_line};
use personas_core::{ErrorClass, Execution, ExecutionOutcome, LineKind, Persona};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::time::Instant;

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

impl StreamState {
    /// Notes what a parsed stdout line tells about the run (its session, tools in flight, API
    /// retries) and returns the kind it is stored as. The persona's own text blocks, which may
    /// carry protocol messages, are added to `protocol_texts`.
    fn observe(&mut self, parsed: &ClaudeLine, protocol_texts: &mut Vec<String>) -> LineKind {
        match parsed {
            ClaudeLine::Init(init) => {
                self.session_id = Some(init.session_id.clone());
                LineKind::System
            }
            ClaudeLine::ApiRetry(r) => {
                self.last_retry = Some(r.clone());
                LineKind::Retry
            }
            ClaudeLine::System { .. } | ClaudeLine::Other { .. } => LineKind::System,
            ClaudeLine::Assistant(a) => {
                let mut kind = LineKind::AssistantText;
                for b in &a.blocks {
                    match b {
                        Block::ToolUse { id, .. } => {
                            self.pending_tools.insert(id.clone());
                            self.used_tools = true;
                            kind = LineKind::ToolUse;
                        }
                        Block::Thinking(_) => kind = LineKind::Thinking,
                        // Only the persona's own words carry protocol, not sub-agents' or the
                        // CLI's synthetic error text.
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
                        self.pending_tools.remove(&r.tool_use_id);
                        kind = LineKind::ToolResult;
                    }
                }
                kind
            }
            ClaudeLine::Result(_) => LineKind::Result,
        }
    }
}

/// Stores the session id and model the CLI announced (a review resumes that session).
async fn record_session(rt: &Runtime, execution: &Execution, init: &Init) {
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
}

/// How the supervision loop ended.
#[derive(Default)]
struct Watched {
    exit: Option<std::process::ExitStatus>,
    stop: Option<StopReason>,
    /// The leftovers were already reaped while draining the pipes.
    reaped: bool,
}

/// Starts the CLI with the prompt, watches it to its end, and decides the outcome.
#[allow(clippy::too_many_arguments)]
pub(super) async fn supervise(
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
        stop::reap_leftovers(execution, sink).await;
    }
    let exit_text = watched
        .exit
        .map(stop::describe_exit)
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
    let limits = stop::Limits {
        deadline: Instant::now() + timeout,
        timeout,
        inactivity: rt.config.inactivity_timeout(),
    };
    let (mut last_activity, mut drain_until) = (Instant::now(), None);
    let mut stopper = process::Stopper::new(rt.config.cancel_grace());
    let mut w = Watched::default();
    while !(out_done && err_done && w.exit.is_some()) {
        let watching = w.stop.is_none() && w.exit.is_none();
        let idle = st.pending_tools.is_empty();
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
            why = stop::requested(stops, &limits, last_activity, idle), if watching => {
                stop_now = Some(why);
            },
            _ = stopper.next_step(), if w.exit.is_none() && stopper.pending() => {
                if let Some(note) = stopper.escalate(cli) {
                    sink.emit(LineKind::Engine, note).await;
                }
            },
            _ = stop::sleep_until_opt(drain_until), if drain_until.is_some() => {
                // The CLI is gone but something still holds its pipes: a left-behind tool
                // process. Reap, give the pipes one more moment, then stop reading.
                if w.reaped {
                    break;
                }
                stop::reap_while_draining(cli, execution, sink).await;
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

/// A line of the CLI as text (invalid UTF-8 replaced) through the run's redactor; a valid
/// line is not copied.
fn redacted_text(bytes: Vec<u8>, sink: &Sink<'_>) -> String {
    let mut text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    sink.redactor.redact_string(&mut text);
    text
}

async fn handle_stderr(frame: Frame, st: &mut StreamState, sink: &mut Sink<'_>) {
    match frame {
        Frame::Line(bytes) => {
            let text = redacted_text(bytes, sink);
            if st.stderr_tail.len() == STDERR_TAIL_LINES {
                st.stderr_tail.pop_front();
            }
            st.stderr_tail.push_back(text.clone());
            sink.emit_redacted(LineKind::Stderr, text).await;
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
    let text = redacted_text(bytes, sink);
    let parsed = match parse_line(text.as_bytes()) {
        Ok(line) => line,
        Err(_) => {
            // stdout is JSON only (README §3.1); anything else is kept, not fatal.
            sink.emit_redacted(LineKind::Raw, text).await;
            return;
        }
    };
    if let ClaudeLine::Init(init) = &parsed {
        record_session(rt, execution, init).await;
    }
    let mut protocol_texts: Vec<String> = Vec::new();
    let kind = st.observe(&parsed, &mut protocol_texts);
    sink.emit_redacted(kind, text).await;
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
