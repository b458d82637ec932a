//! Requests and responses of the orchestrator's operations ([`crate::for_each_cloud_operation`]).
//!
//! A cloud execution is the local [`Execution`] (same fields, same statuses, so the desktop shows
//! a cloud run exactly like a local one) plus where and how often it ran.

use chrono::{DateTime, Utc};
use personas_core::{Execution, ExecutionId, ExecutionStatus, LineKind, PersonaId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

/// No fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A plaintext secret on its way into the cloud (over TLS) or from the orchestrator to a worker
/// (inside an authenticated frame). Serialises as its value — that is its purpose — but never
/// shows it in `Debug`, and zeroes its memory when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct WireSecret(#[schemars(with = "String")] Zeroizing<String>);

impl WireSecret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WireSecret([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// A bearer JWT (the portal's, or a Supabase project's).
    Jwt,
    /// The deployment's static admin token (self-hosting).
    AdminToken,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Identity {
    pub tenant_id: String,
    /// The token's `sub` (or `admin` for the static token).
    pub subject: String,
    pub via: AuthKind,
    /// The orchestrator that answered.
    pub orchestrator_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Execute {
    /// A pushed persona's name or id.
    pub persona: String,
    #[serde(default)]
    pub input: Option<serde_json::Value>,
    /// A retried request with the same key returns the first one's execution instead of
    /// queueing a second run.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptState {
    /// Taken off the queue, sent to a worker.
    Assigned,
    /// The worker started the CLI.
    Running,
    /// The worker reported the end; this attempt completed the execution.
    Completed,
    /// The worker (or its orchestrator) vanished; the run went back to the queue or the DLQ.
    Lost,
    /// Stopped by a cancel.
    Cancelled,
}

/// One try of an execution on one worker. Only the current attempt can complete its execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    pub number: u32,
    pub state: AttemptState,
    pub worker_id: Option<String>,
    pub orchestrator_id: Option<String>,
    pub assigned_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended other than by completing (a lost worker, a cancel).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudExecution {
    #[serde(flatten)]
    pub execution: Execution,
    /// The current attempt's number (0 while queued for the first time).
    pub attempt: u32,
    pub max_attempts: u32,
    /// The worker running it now.
    pub worker_id: Option<String>,
    /// Set when the run exhausted its attempts and went to the dead-letter topic.
    pub dead_letter_reason: Option<String>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListExecutions {
    /// A persona's name or id.
    #[serde(default)]
    pub persona: Option<String>,
    #[serde(default)]
    pub status: Option<ExecutionStatus>,
    /// At most this many (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudExecutionList {
    pub executions: Vec<CloudExecution>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutionRef {
    pub id: ExecutionId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputRequest {
    pub id: ExecutionId,
    /// Lines with a larger sequence number (default 0: from the start).
    #[serde(default)]
    pub after_seq: Option<i64>,
    /// At most this many (default 500, at most 5 000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One output line as stored by the orchestrator (already redacted by the worker).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudLine {
    pub execution_id: ExecutionId,
    /// Per execution, from 1, without gaps; a retried attempt continues the numbering.
    pub seq: i64,
    pub attempt: u32,
    pub kind: LineKind,
    pub text: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputPage {
    pub lines: Vec<CloudLine>,
    /// Pass as `after_seq` for the next page.
    pub next_seq: i64,
    /// The execution has ended and this page reaches its last line.
    pub done: bool,
}

/// A credential linked to the pushed persona, with its field values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushedCredential {
    /// The name the persona file refers to it by.
    pub name: String,
    /// Its connector type (`github`, `slack`, …).
    pub service_type: String,
    pub fields: BTreeMap<String, WireSecret>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushPersona {
    /// The persona file (what `personas persona export` writes).
    pub text: String,
    /// Keep the local persona's id, so local and cloud runs of it share one history.
    #[serde(default)]
    pub id: Option<PersonaId>,
    #[serde(default)]
    pub credentials: Vec<PushedCredential>,
    /// The persona's triggers (a persona file carries none): cron, event subscriptions, … as
    /// the local runtime lists them. They run in the cloud from then on.
    #[serde(default)]
    pub triggers: Vec<PushedTrigger>,
}

/// One trigger of a pushed persona.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushedTrigger {
    /// `cron`, `event`, `webhook`, `chain`, `watch`, `manual` — the local trigger kinds.
    pub kind: String,
    /// The trigger's settings as the local runtime stores them (`{"cron": "0 9 * * *",
    /// "timezone": "Europe/Paris"}`, `{"event_type": "issue.opened"}`, …).
    pub config: serde_json::Value,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudPersona {
    pub id: PersonaId,
    pub name: String,
    pub description: String,
    /// Names of its sealed credentials.
    pub credentials: Vec<String>,
    pub triggers: u32,
    /// Increments on every push.
    pub revision: u32,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudPersonaList {
    pub personas: Vec<CloudPersona>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaRef {
    /// Name or id.
    pub persona: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudTrigger {
    pub id: String,
    pub persona_id: PersonaId,
    pub persona_name: String,
    /// `cron`, `event`, `webhook`, …, as in the persona file.
    pub kind: String,
    /// The trigger's settings as in the persona file.
    pub config: serde_json::Value,
    pub enabled: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudTriggerList {
    pub triggers: Vec<CloudTrigger>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    pub event_type: String,
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    /// Who published it (free text; `cli` by default).
    #[serde(default)]
    pub source: Option<String>,
    /// An id chosen by the publisher: publishing the same id twice stores one event.
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEvent {
    pub id: String,
    pub event_type: String,
    pub payload: Option<serde_json::Value>,
    pub source: String,
    pub created_at: DateTime<Utc>,
    /// Runs the event started.
    pub executions: Vec<ExecutionId>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEvents {
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudEventList {
    pub events: Vec<CloudEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelCredentialKind {
    /// `CLAUDE_CODE_OAUTH_TOKEN`, made with `claude setup-token` (the user's subscription).
    OauthToken,
    /// `ANTHROPIC_API_KEY`.
    ApiKey,
}

impl ModelCredentialKind {
    /// The CLI's environment variable for it.
    pub fn env_var(self) -> &'static str {
        match self {
            Self::OauthToken => "CLAUDE_CODE_OAUTH_TOKEN",
            Self::ApiKey => "ANTHROPIC_API_KEY",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetModelCredential {
    pub kind: ModelCredentialKind,
    /// `None` removes it (runs then use the worker's own environment).
    #[serde(default)]
    pub value: Option<WireSecret>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelCredentialStatus {
    pub kind: Option<ModelCredentialKind>,
    pub set_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrchestratorView {
    pub id: String,
    /// Where it serves (as it advertises itself).
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub workers: u32,
    pub clients: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Idle,
    Busy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkerView {
    pub id: String,
    pub orchestrator_id: String,
    pub version: String,
    pub capacity: u32,
    pub state: WorkerState,
    /// The executions it runs now.
    pub running: Vec<ExecutionId>,
    pub connected_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cluster {
    pub orchestrators: Vec<OrchestratorView>,
    pub workers: Vec<WorkerView>,
    /// Executions queued in Postgres and not yet assigned.
    pub queued: u64,
    /// Messages on the execution topic not yet consumed by the orchestrators' group, when the
    /// broker answered.
    pub exec_lag: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRequest {
    /// `YYYY-MM` (UTC); this month by default.
    #[serde(default)]
    pub month: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    pub month: String,
    pub executions: u64,
    pub events: u64,
    pub cost_usd: f64,
    pub duration_ms: u64,
}
