//! `personas`: the command-line front-end of the Personas runtime.
//!
//! Thin by design: it parses arguments, turns them into operations of the `personas-api` table
//! and renders their answers (`--json` prints an operation's answer as the HTTP API returns it).
//! Operations go to the runtime holding the data dir when one runs (`personas up`, the desktop
//! app), else run in this process.
#![forbid(unsafe_code)]

mod cmd;
mod context;
mod daemon;
mod error;
mod render;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Personas: AI agents written in natural language, run locally on the Claude Code CLI.
#[derive(Parser, Debug)]
#[command(name = "personas", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Data directory (store, workspaces, config.toml). Default: the OS app-data dir.
    #[arg(long, global = true, env = "PERSONAS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the local runtime: engine, queue, HTTP API (and later the UI) on one machine.
    Up(cmd::up::UpArgs),
    /// Create, inspect, change, share and delete personas.
    #[command(subcommand)]
    Persona(cmd::persona::PersonaCmd),
    /// Run a persona now.
    Run(cmd::run::RunArgs),
    /// Inspect, follow and cancel executions.
    #[command(subcommand)]
    Execution(cmd::execution::ExecutionCmd),
    /// Add, list and remove triggers: event subscriptions, cron schedules, webhooks, chains,
    /// file watchers.
    #[command(subcommand)]
    Trigger(cmd::trigger::TriggerCmd),
    /// Publish bus events, list them with what they caused, retry dead letters.
    #[command(subcommand)]
    Event(cmd::event::EventCmd),
    /// Messages personas sent to you.
    #[command(subcommand)]
    Message(cmd::misc::MessageCmd),
    /// Decide on runs paused for a person's review.
    #[command(subcommand)]
    Review(cmd::review::ReviewCmd),
    /// What personas remember between runs.
    #[command(subcommand)]
    Memory(cmd::memory::MemoryCmd),
    /// Where personas' messages are delivered: Slack, Telegram, email, webhook, desktop.
    #[command(subcommand)]
    Channel(cmd::channel::ChannelCmd),
    /// Failures that need a person, with suggested fixes; circuit breakers.
    #[command(subcommand)]
    Healing(cmd::healing::HealingCmd),
    /// Daily metrics per persona: runs by status, durations, tokens, cost, success rate.
    Stats(cmd::stats::StatsArgs),
    /// The runtime's counters and gauges (named internal events), as `/metrics` serves them.
    Metrics,
    /// Check the installation: Claude CLI, auth, data dir, store.
    Doctor,
    /// Print the effective configuration (defaults, config.toml, PERSONAS_* variables).
    Config,
    /// Measure the runtime's own overhead (parser, pipeline, start-up).
    Bench(cmd::bench::BenchArgs),
    /// Credentials in the encrypted vault: add, list, show, test, remove, types.
    #[command(subcommand)]
    Credential(cmd::credential::CredentialCmd),
    /// The vault's key: status, rotate.
    #[command(subcommand)]
    Vault(cmd::credential::VaultCmd),
    /// Custom tools personas can be given.
    #[command(subcommand)]
    Tool(cmd::tool::ToolCmd),
    /// MCP server on stdio: protocol tools for runs; persona control from Claude Code/Desktop.
    Mcp,
    /// A Personas cloud: connect (token kept in the vault), status, disconnect.
    #[command(subcommand)]
    Cloud(cmd::cloud::CloudCmd),
    /// Copy the store to FILE (consistent while the runtime runs; the file is 0600).
    Backup(cmd::data::BackupArgs),
    /// Put a backup into an empty data dir (checked first: a Personas database, intact).
    Restore(cmd::data::RestoreArgs),
    /// Remove old output, executions, events, deliveries and messages per `[retention]`.
    Gc(cmd::data::GcArgs),
}

fn main() -> ExitCode {
    quiet_on_closed_output();
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Command::Up(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cmd::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            if let Some(hint) = &e.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.code)
        }
    }
}

/// A closed stdout (`personas execution list --json | head -1`) ends the process quietly with
/// exit code 0 instead of a panic message.
///
/// Rust ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe` and `println!`
/// panics. Restoring SIGPIPE's default action would need `unsafe` (this crate forbids it) and
/// would kill the process with 141 mid-way through whatever it was doing (a run it started,
/// a store write). Instead the panic hook recognises the failed print — on every print path,
/// including ones added later — and exits; every other panic keeps the default report.
fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // "failed printing to stdout: Broken pipe (os error 32)"; Windows says "The pipe is
        // being closed" / "The pipe has been ended".
        let closed = (text.starts_with("failed printing to stdout")
            || text.starts_with("failed printing to stderr"))
            && text.to_ascii_lowercase().contains("pipe");
        if closed {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Logs go to stderr. Quiet by default for one-shot commands; `personas up` logs at info.
/// `RUST_LOG` overrides both.
fn init_tracing(daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
