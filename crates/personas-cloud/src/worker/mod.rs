//! The worker. (Being built: see the module docs as they land.)

use crate::config::WorkerSettings;

/// Runs a worker until SIGTERM/Ctrl-C.
pub async fn run(settings: WorkerSettings) -> anyhow::Result<()> {
    anyhow::bail!("the worker {} is not built yet", settings.id)
}
