//! The orchestrator. (Being built: see the module docs as they land.)

use crate::config::OrchestratorSettings;

/// Runs an orchestrator until SIGTERM/Ctrl-C.
pub async fn run(settings: OrchestratorSettings) -> anyhow::Result<()> {
    anyhow::bail!("the orchestrator {} is not built yet", settings.id)
}
