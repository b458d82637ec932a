//! `personas-desktop mcp`: the protocol tools' MCP stdio server for runs started by the app —
//! the same server the CLI's `personas mcp` runs, so the app needs no second binary.

use personas_engine::config::default_data_dir;
use personas_store::Store;
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
    let data_dir = env("PERSONAS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(default_data_dir);
    let store = match Store::open_in_dir(&data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: cannot open the store in {}: {e}",
                data_dir.display()
            );
            return ExitCode::FAILURE;
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
    let server = personas_mcp::Server::new(store, scope);
    match rt.block_on(server.serve(
        tokio::io::BufReader::new(tokio::io::stdin()),
        tokio::io::stdout(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the MCP connection failed: {e}");
            ExitCode::FAILURE
        }
    }
}
