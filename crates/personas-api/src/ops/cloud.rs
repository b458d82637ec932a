//! Request and response types of the cloud operations: connecting this data dir to a Personas
//! cloud (its orchestrator's URL, the token kept in the vault), its status, pushing a persona,
//! running one there (mirrored here) and listing the cloud's runs.
//!
//! The cloud's own shapes (its cluster, usage, executions) are `personas-cloud-api`'s types,
//! re-exported, so the UI reads exactly what the orchestrator answers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

pub use personas_cloud_api::model::{
    Attempt, AttemptState, AuthKind, CloudExecution, CloudExecutionList, Cluster, Identity,
    OrchestratorView, Usage, WorkerState, WorkerView,
};

/// Connects to an orchestrator: checks the URL and token (`whoami`), then keeps the URL in the
/// store and the token sealed in the vault.
#[derive(Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CloudConnect {
    /// The orchestrator's URL, `http://` or `https://` (`http://127.0.0.1:9500`).
    pub url: String,
    /// A bearer JWT, or the deployment's admin token.
    pub token: String,
}

impl std::fmt::Debug for CloudConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudConnect")
            .field("url", &self.url)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// The connection and, when the orchestrator answers, what the cloud is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CloudStatus {
    /// A connection is stored.
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub url: Option<String>,
    /// The orchestrator answered just now.
    pub reachable: bool,
    /// Why it did not (unreachable, the token refused, the vault locked), when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
    /// Who the token says the caller is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub identity: Option<Identity>,
    /// Orchestrators, workers (idle/busy with their executions), queued runs, the broker's lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub cluster: Option<Cluster>,
    /// This month's usage of the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub usage: Option<Usage>,
    /// Cloud runs being mirrored into this data dir now (not ended yet).
    pub mirrors_pending: u32,
}

/// What `cloud_disconnect` removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CloudDisconnected {
    /// A connection was stored (and is now forgotten, its token with it).
    pub was_connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub url: Option<String>,
}

/// Pushes a persona (its file as `export_persona` writes it, and its linked credentials) to the
/// cloud, under the local persona's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PushPersona {
    /// Name or id.
    pub persona: String,
}

/// The pushed persona as the cloud stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PushedPersona {
    pub id: String,
    pub name: String,
    /// Names of the credentials sent along (sealed in the cloud on arrival).
    pub credentials: Vec<String>,
    pub triggers: u32,
    /// Increments on every push.
    pub revision: u32,
}

/// Runs a pushed persona in the cloud; the run is mirrored into the local store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CloudExecute {
    /// Name or id (of the local persona, pushed under the same id).
    pub persona: String,
    #[serde(default)]
    #[ts(optional, type = "unknown")]
    pub input: Option<Value>,
}

/// The cloud's executions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListCloudExecutions {
    /// Name or id.
    #[serde(default)]
    #[ts(optional)]
    pub persona: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub status: Option<personas_core::ExecutionStatus>,
    /// At most this many (default 50, at most 500).
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
}
