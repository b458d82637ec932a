//! The worker. `run` (the orchestrator connection) is being built; [`run::Runner`] runs one
//! assignment through the engine.

pub mod run;

use crate::config::WorkerSettings;

/// Runs a worker until SIGTERM/Ctrl-C.
pub async fn run(settings: WorkerSettings) -> anyhow::Result<()> {
    anyhow::bail!("the worker {} is not built yet", settings.id)
}
