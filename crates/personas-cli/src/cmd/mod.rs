//! One module per command group; [`dispatch`] routes a parsed command line.

pub mod bench;
pub mod bench_bus;
pub mod bench_redact;
pub mod bench_retention;
pub mod channel;
pub mod credential;
pub mod data;
pub mod event;
pub mod execution;
pub mod follow;
pub mod healing;
pub mod memory;
pub mod misc;
pub mod persona;
mod persona_import;
pub mod policy;
pub mod review;
pub mod run;
pub mod stats;
pub mod tool;
pub mod trigger;
pub mod up;

use crate::context::Context;
use crate::error::CliResult;
use crate::{Cli, Command};
use std::process::ExitCode;

pub async fn dispatch(cli: Cli) -> CliResult<ExitCode> {
    let mut ctx = Context::load(&cli.global)?;
    match cli.command {
        Command::Up(args) => up::run(&mut ctx, args).await,
        Command::Persona(cmd) => persona::run(&mut ctx, cmd).await,
        Command::Run(args) => run::run(&mut ctx, args).await,
        Command::Execution(cmd) => execution::run(&mut ctx, cmd).await,
        Command::Trigger(cmd) => trigger::run(&mut ctx, cmd).await,
        Command::Event(cmd) => event::run(&mut ctx, cmd).await,
        Command::Message(cmd) => misc::message(&mut ctx, cmd).await,
        Command::Review(cmd) => review::run(&mut ctx, cmd).await,
        Command::Memory(cmd) => memory::run(&mut ctx, cmd).await,
        Command::Channel(cmd) => channel::run(&mut ctx, cmd).await,
        Command::Healing(cmd) => healing::run(&mut ctx, cmd).await,
        Command::Stats(args) => stats::run(&mut ctx, args).await,
        Command::Doctor => misc::doctor(&mut ctx).await,
        Command::Config => misc::config(&ctx),
        Command::Bench(args) => bench::run(&mut ctx, args).await,
        Command::Credential(cmd) => credential::run(&mut ctx, cmd).await,
        Command::Vault(cmd) => credential::vault(&mut ctx, cmd).await,
        Command::Tool(cmd) => tool::run(&mut ctx, cmd).await,
        Command::Mcp => mcp(&mut ctx).await,
        Command::Backup(args) => data::backup(&mut ctx, args).await,
        Command::Restore(args) => data::restore(&mut ctx, args).await,
        Command::Gc(args) => data::gc(&mut ctx, args).await,
    }
}

/// `personas mcp`: the MCP stdio server (a run's, when started with its token; else persona
/// control for a person's Claude Code / Claude Desktop).
async fn mcp(ctx: &mut Context) -> CliResult<ExitCode> {
    let scope = personas_mcp::Scope::from_env(|k| std::env::var(k).ok())
        .map_err(crate::error::CliError::usage)?;
    let store = ctx.store()?;
    let server = personas_mcp::Server::new(store, scope);
    server
        .serve(
            tokio::io::BufReader::new(tokio::io::stdin()),
            tokio::io::stdout(),
        )
        .await
        .map_err(|e| crate::error::CliError::runtime(format!("the MCP connection failed: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output as JSON: {e}"),
    }
}

/// Every secret this data dir's runtime knows (vault values when the vault opens, channel
/// secrets, non-harmless `[env]` values), for text the CLI stores on the user's behalf: the same
/// gate the API's submitted text and a run's output pass (`personas_engine::known`).
pub fn known_secrets(
    ctx: &Context,
    store: &personas_store::Store,
) -> personas_core::redact::Redactor {
    let vault = personas_engine::vault::VaultCell::new(credential::vault_options());
    personas_engine::known::runtime_redactor(store, &vault, &ctx.config)
}
