//! One module per command group; [`dispatch`] routes a parsed command line.

pub mod bench;
pub mod channel;
pub mod cloud;
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
        Command::Metrics => stats::metrics(&mut ctx).await,
        Command::Doctor => misc::doctor(&mut ctx).await,
        Command::Config => misc::config(&ctx),
        Command::Bench(args) => bench::run(&mut ctx, args).await,
        Command::Credential(cmd) => credential::run(&mut ctx, cmd).await,
        Command::Vault(cmd) => credential::vault(&mut ctx, cmd).await,
        Command::Tool(cmd) => tool::run(&mut ctx, cmd).await,
        Command::Mcp => mcp(&mut ctx).await,
        Command::Cloud(cmd) => cloud::run(&mut ctx, cmd).await,
        Command::Backup(args) => data::backup(&mut ctx, args).await,
        Command::Restore(args) => data::restore(&mut ctx, args).await,
        Command::Gc(args) => data::gc(&mut ctx, args).await,
    }
}

/// `personas mcp`: the MCP stdio server (a run's, when started with its token; else persona
/// control for a person's Claude Code / Claude Desktop).
async fn mcp(ctx: &mut Context) -> CliResult<ExitCode> {
    use crate::error::CliError;
    let scope =
        personas_mcp::Scope::from_env(|k| std::env::var(k).ok()).map_err(CliError::usage)?;
    let served = match scope {
        // A run's server opens no store: its calls go to the run's tool channel.
        personas_mcp::Scope::Run {
            execution_id,
            token,
            endpoint,
        } => {
            let server = personas_mcp::RunServer::new(execution_id, token, endpoint);
            personas_mcp::serve_stdio(server).await
        }
        personas_mcp::Scope::Standalone => {
            // The operations through the runtime holding the data dir, or in this process.
            let server =
                personas_mcp::ControlServer::new(ctx.client()?).map_err(CliError::runtime)?;
            personas_mcp::serve_stdio(server).await
        }
    };
    served.map_err(|e| CliError::runtime(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot encode output as JSON: {e}"),
    }
}

/// An API error whose `field` is named like the command's flag, reported as that flag
/// (`--cron: ...`); other errors as they are.
pub fn flag_error(e: personas_api::ApiError) -> crate::error::CliError {
    match e.field.as_deref() {
        Some(f) if e.code == personas_api::Code::Invalid && e.message.starts_with(f) => {
            crate::error::CliError::usage(format!("--{}", e.message))
        }
        _ => e.into(),
    }
}
