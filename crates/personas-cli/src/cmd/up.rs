//! `personas up`: the local runtime — engine, queue, HTTP API — until Ctrl-C or SIGTERM.

use crate::context::Context;
use crate::daemon::{self, DaemonInfo};
use crate::error::{CliError, CliResult};
use clap::Args;
use personas_engine::Engine;
use personas_server::{ServerState, auth};
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
    let lock = match daemon::acquire(&data_dir)? {
        Ok(lock) => lock,
        Err(info) => {
            let who = info
                .map(|i| format!(" (pid {} at {})", i.pid, i.url))
                .unwrap_or_default();
            return Err(CliError::runtime(format!(
                "another Personas runtime is already running for {}{who}",
                data_dir.display()
            ))
            .with_hint("stop it first, or use another --data-dir"));
        }
    };
    let listen = args.listen.unwrap_or_else(|| ctx.config.listen.clone());
    let store = ctx.store()?;
    let token = auth::load_or_create_token(&data_dir).map_err(|e| {
        CliError::runtime(format!(
            "cannot create the API token in {}: {e}",
            data_dir.display()
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| {
        CliError::runtime(format!("cannot listen on {listen}: {e}"))
            .with_hint("pick another address with --listen 127.0.0.1:PORT")
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| CliError::runtime(format!("cannot read the listening address: {e}")))?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback; requests must still name a loopback host");
    }
    let engine = Engine::new(ctx.config.clone(), store);
    engine.start().await?;
    let url = format!("http://{addr}");
    lock.publish(&DaemonInfo {
        pid: std::process::id(),
        url: url.clone(),
        started_at: chrono::Utc::now(),
    })?;
    let state = ServerState::new(engine.clone(), token.clone(), addr.port());
    // The token rides in the fragment: browsers never send it to a server or put it in a
    // Referer; the UI stores it and strips it from the address bar.
    println!(
        "Personas is running at {url} — data dir {}, ready in {} ms. Ctrl-C stops it.\n\
         Open the app: {url}/#token={token}",
        data_dir.display(),
        started.elapsed().as_millis()
    );
    if !personas_server::ui::available() {
        println!("(the web UI is not built into this binary: `make up` builds it)");
    }
    let server = personas_server::serve(listener, state, shutdown_signal());
    if let Err(e) = server.await {
        tracing::error!(error = %e, "the HTTP server stopped");
    }
    eprintln!("stopping: interrupting running executions…");
    engine.shutdown().await;
    drop(lock);
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
