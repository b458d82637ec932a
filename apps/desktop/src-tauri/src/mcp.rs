//! `personas-desktop mcp`: the protocol tools' MCP stdio server for runs started by the app —
//! the same server the CLI's `personas mcp` runs, so the app needs no second binary. Started by
//! hand (no run token), it offers persona control over the data dir's operations in process.

use personas_engine::EngineConfig;
use personas_engine::config::default_data_dir;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn serve() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let scope = match personas_mcp::Scope::from_env(env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = match scope {
        // A run's server opens no store: its calls go to the run's tool channel.
        personas_mcp::Scope::Run {
            execution_id,
            token,
            endpoint,
        } => rt.block_on(personas_mcp::serve_stdio(personas_mcp::RunServer::new(
            execution_id,
            token,
            endpoint,
        ))),
        personas_mcp::Scope::Standalone => {
            let server = match control_server(env) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(personas_mcp::serve_stdio(server))
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Persona control over the operations of the data dir, in this process.
fn control_server(
    env: impl Fn(&str) -> Option<String>,
) -> Result<personas_mcp::ControlServer<personas_api::Api>, String> {
    let data_dir = env("PERSONAS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(default_data_dir);
    let config =
        EngineConfig::load(&data_dir, env).map_err(|e| format!("invalid configuration: {e}"))?;
    let api = personas_api::Api::open(
        config,
        personas_engine::vault::VaultOptions::default(),
        personas_api::HostInfo::default(),
    )
    .map_err(|e| e.message)?;
    personas_mcp::ControlServer::new(api)
}
