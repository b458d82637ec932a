//! `personas up`: the local runtime — engine, queue, HTTP API — until Ctrl-C or SIGTERM.

use crate::context::Context;
use crate::error::{CliError, CliResult};
use clap::Args;
use personas_server::instance::{Host, HostError, PortFallback};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Address to listen on (default from config: 127.0.0.1:9420). Port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub async fn run(ctx: &mut Context, args: UpArgs) -> CliResult<ExitCode> {
    let started = Instant::now();
    let data_dir = ctx.config.data_dir.clone();
    let listen = args.listen.unwrap_or_else(|| ctx.config.listen.clone());
    let host = Host::start_in_dir(ctx.config.clone(), &listen, PortFallback::Fail)
        .await
        .map_err(|e| match e {
            HostError::AlreadyRunning { .. } => CliError::runtime(e.to_string())
                .with_hint("stop it first, or use another --data-dir"),
            HostError::Listen { .. } => CliError::runtime(e.to_string())
                .with_hint("pick another address with --listen 127.0.0.1:PORT"),
            HostError::Engine(_) => CliError::runtime(e.to_string()).with_hint(
                "check the data dir (--data-dir / PERSONAS_DATA_DIR) is writable; `personas doctor` checks it",
            ),
            other => CliError::runtime(other.to_string()),
        })?;
    // The token rides in the fragment: browsers never send it to a server or put it in a
    // Referer; the UI stores it and strips it from the address bar.
    println!(
        "Personas is running at {url} — data dir {}, ready in {} ms. Ctrl-C stops it.\n\
         Open the app: {url}/#token={token}",
        data_dir.display(),
        started.elapsed().as_millis(),
        url = host.url,
        token = host.token,
    );
    if !personas_server::ui::available() {
        println!("(the web UI is not built into this binary: `make up` builds it)");
    }
    host.serve(async {
        shutdown_signal().await;
        eprintln!("stopping: interrupting running executions…");
    })
    .await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
