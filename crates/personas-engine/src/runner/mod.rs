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
//!
//! This module prepares a run (persona, CLI, credentials, prompt, command line) and records
//! its end; `supervise` watches the CLI and turns its output into stored lines and protocol
//! effects, `stop` holds what stops a run and cleans up after it, and `sink` numbers, caps,
//! redacts and hands each line to the writer.

pub mod command;
pub mod environment;
pub mod lines;
pub mod mcp;
pub mod outcome;
pub mod process;
pub mod protocol;
mod sink;
mod stop;
mod supervise;

use crate::config::EngineConfig;
use crate::credentials::{self, CredentialError, RunCredentials};
use crate::events::{EngineEvent, EventBus};
use crate::locate;
use crate::vault::{VaultCell, VaultError};
use crate::writer::OutputWriter;
use command::Invocation;
use personas_core::prompt::{self, MemoryDoc, PromptInput, ToolDoc};
use personas_core::{ErrorClass, Execution, ExecutionOutcome, ExecutionStatus, LineKind, Persona};
use personas_store::Store;
use personas_store::review::Resume;
use sink::Sink;
use std::sync::Arc;
use std::time::Duration;
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
pub(crate) const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// Memories offered to the prompt builder (which then fits them into its byte budget).
const MEMORY_CANDIDATES: u32 = 100;
pub(crate) const STDERR_TAIL_LINES: usize = 20;
pub(crate) const STDERR_LINE_CAP: usize = 64 * 1024;

/// How a run can be asked to stop from outside.
#[derive(Clone, Default)]
pub struct StopSignals {
    /// A user cancelled this execution.
    pub cancel: CancellationToken,
    /// The hosting runtime is shutting down.
    pub shutdown: CancellationToken,
}

/// What a host supplies to one run in place of the engine's own sources. The desktop passes
/// the default; a cloud worker passes the credentials it opened in memory (the persona's, and
/// the tenant's own Claude credential) and taps the output to stream it to its orchestrator.
#[derive(Default)]
pub struct RunOptions {
    /// The persona's credentials, already opened: the store's links and the vault are not
    /// consulted. Their values are secrets of the run like the vault's.
    pub credentials: Option<RunCredentials>,
    /// The model credential to run the CLI with (`CLAUDE_CODE_OAUTH_TOKEN` or
    /// `ANTHROPIC_API_KEY`, and its value) instead of the runtime's own: the inherited model
    /// credentials are dropped so the CLI cannot fall back to the host's account.
    pub model_credential: Option<(String, personas_core::Secret)>,
    /// Receives every line the run stores, numbered and redacted, as it is handed to the writer.
    pub line_tap: Option<LineTap>,
}

/// Called with every line a run stores (numbered, redacted), in order, as it is handed to the
/// writer. Keep it quick: it runs on the run's output path.
pub type LineTap = Arc<dyn Fn(&personas_store::NewLine) + Send + Sync>;

/// The environment variables that carry the CLI's model credentials.
const MODEL_CREDENTIAL_VARS: [&str; 3] = [
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "ANTHROPIC_AUTH_TOKEN",
];

/// Runs a claimed execution to its end (or to a pause for review) and returns it as stored.
pub async fn run(rt: &Runtime, execution: Execution, stops: StopSignals) -> Execution {
    run_with(rt, execution, stops, RunOptions::default()).await
}

/// As [`run`], with what the host supplies ([`RunOptions`]).
pub async fn run_with(
    rt: &Runtime,
    execution: Execution,
    stops: StopSignals,
    mut options: RunOptions,
) -> Execution {
    let mut sink = Sink::new(rt, &execution);
    sink.tap = options.line_tap.take();
    // A decided review re-queued this execution to continue its Claude session.
    let resume = crate::review::take_resume(rt, &execution).await;
    let mut outcome = drive(rt, &execution, &stops, &mut sink, resume.as_ref(), options).await;
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
    options: RunOptions,
) -> ExecutionOutcome {
    let ready = match prepare(rt, execution, sink, resume, options.credentials).await {
        Ok(r) => r,
        Err(failed) => return failed,
    };
    let mut secret_env = ready.creds.env;
    let mut withheld_env = Vec::new();
    if let Some((name, value)) = options.model_credential {
        withheld_env.extend(MODEL_CREDENTIAL_VARS.iter().map(|v| v.to_string()));
        // The redactor learns it below with the rest of the run's environment.
        secret_env.push((name, value));
    }
    let mut inv = Invocation {
        as_root: command::running_as_root(),
        resume_session: resume.map(|r| r.session_id.clone()),
        secret_env,
        inherited_env: command::inherited_env(),
        withheld_env,
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
        Err(msg) => return fail(sink, ErrorClass::SpawnFailed, msg).await,
    };
    if let Err(msg) = keep_session_files(rt, execution, &mut inv) {
        return fail(sink, ErrorClass::SpawnFailed, msg).await;
    }
    let persona = &ready.persona;
    let cmd = command::build(
        persona,
        execution,
        &rt.config,
        &ready.claude,
        ready.cwd,
        &inv,
    );
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
    let prompt = ready.prompt;
    let outcome =
        supervise::supervise(rt, execution, persona, cmd, prompt, stops, sink, channel).await;
    drop(tools);
    seal_session_files(rt, execution, sink).await;
    outcome
}

/// What a run needs before its command line can be built.
struct Prepared {
    persona: Persona,
    claude: std::path::PathBuf,
    creds: RunCredentials,
    prompt: String,
    cwd: std::path::PathBuf,
}

/// Loads the persona, finds the CLI, opens the credentials (arming the sink's redactor with
/// them and the channels' secrets), builds the prompt and creates the working directory. A
/// failure is the run's outcome, already explained in its output.
async fn prepare(
    rt: &Runtime,
    execution: &Execution,
    sink: &mut Sink<'_>,
    resume: Option<&Resume>,
    supplied: Option<RunCredentials>,
) -> Result<Prepared, ExecutionOutcome> {
    let store = rt.store.clone();
    let persona_id = execution.persona_id.clone();
    let persona = match blocking(move || store.personas().get(&persona_id)).await {
        Ok(p) => p,
        Err(e) => {
            let msg = format!("cannot load the persona: {e}");
            return Err(fail(sink, ErrorClass::Unknown, msg).await);
        }
    };
    let claude = match locate::find_claude(rt.config.claude_path.as_deref()) {
        Ok(found) => found.path,
        Err(e) => return Err(fail(sink, ErrorClass::CliMissing, e.to_string()).await),
    };
    let creds = match supplied {
        Some(c) => c,
        None => match run_credentials(rt, &persona).await {
            Ok(c) => c,
            Err(msg) => return Err(fail(sink, ErrorClass::CredentialUnavailable, msg).await),
        },
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
    let prompt = match resume {
        // The session already holds the prompt; the decision is the next user message.
        Some(r) => {
            let note = format!("resuming session {} with the review decision", r.session_id);
            sink.emit(LineKind::Engine, note).await;
            r.prompt.clone()
        }
        None => match build_prompt(rt, &persona, execution, &creds.docs).await {
            Ok(p) => p,
            Err(msg) => return Err(fail(sink, ErrorClass::Unknown, msg).await),
        },
    };
    let cwd = rt.config.workspaces_dir().join(persona.id.as_str());
    if let Err(e) = std::fs::create_dir_all(&cwd) {
        let msg = format!("cannot create the working directory {}: {e}", cwd.display());
        return Err(fail(sink, ErrorClass::SpawnFailed, msg).await);
    }
    Ok(Prepared {
        persona,
        claude,
        creds,
        prompt,
        cwd,
    })
}

/// Explains a failure before the CLI ran in the run's output; returns it as the outcome.
async fn fail(sink: &mut Sink<'_>, class: ErrorClass, msg: String) -> ExecutionOutcome {
    sink.emit(LineKind::Engine, msg.clone()).await;
    ExecutionOutcome::failed(class, msg)
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
