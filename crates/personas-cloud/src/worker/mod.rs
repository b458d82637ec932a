//! The worker: [`link::Link`] keeps the connection to the orchestrators (handshake,
//! heartbeats, output kept until acknowledged, reconnect to another orchestrator, completion
//! until acknowledged, cancel), and [`run::Runner`] runs each assignment through the engine.

pub mod link;
pub mod run;

use crate::config::WorkerSettings;
use tokio_util::sync::CancellationToken;

/// Runs a worker until SIGTERM/Ctrl-C.
pub async fn run(settings: WorkerSettings) -> anyhow::Result<()> {
    let runner = run::Runner::new(&settings)?;
    tracing::info!(
        "worker {} (capacity {}) for {}",
        settings.id,
        settings.capacity,
        settings.orchestrators.join(", ")
    );
    let stop = CancellationToken::new();
    let link = link::Link::new(settings, runner);
    let task = tokio::spawn(link.run(stop.clone()));
    crate::orchestrator::shutdown_signal().await;
    tracing::info!("stopping");
    stop.cancel();
    let _ = task.await;
    Ok(())
}
