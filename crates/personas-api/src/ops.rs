//! Request and response types of every operation. Each operation takes one named request struct
//! and returns one named response struct (never a bare list), so fields can be added later
//! without breaking a client.

use crate::system::Check;
use crate::templates::PersonaTemplate;
use personas_core::review::Decision;
use personas_core::{
    Execution, ExecutionStatus, OutputLine, PermissionTemplate, Persona, PersonaSpec,
    PromptVersion, ReviewStatus,
};
// Store rows some operations answer with, re-exported so front-ends need only this crate.
pub use personas_store::{
    DayStats, Effect, EventRow, IssueRow, MemoryRow, MessageRow, PersonaStats, ReviewRow, RunStats,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

mod access;
mod cloud;
mod files;
mod metrics;
mod oversight;
mod upkeep;
pub use access::*;
pub use cloud::*;
pub use files::*;
pub use metrics::*;
pub use oversight::*;
pub use upkeep::*;

/// An operation that takes no input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Empty {}

/// Names a persona by id or by name (case-insensitive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PersonaRef {
    pub persona: String,
}

/// Names an execution by id or a unique prefix of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ExecutionRef {
    pub id: String,
}

// ---- system ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct SystemReport {
    pub version: String,
    pub checks: Vec<Check>,
    /// True when no check failed (warnings allowed).
    pub ok: bool,
}

/// The runtime's effective configuration, and what is saved for its next start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Settings {
    pub version: String,
    pub data_dir: String,
    pub config_file: String,
    pub listen: String,
    pub max_concurrent: u32,
    /// Configured CLI path; `None` means found on PATH / usual places.
    pub claude_path: Option<String>,
    /// Where the CLI was found now, if anywhere.
    pub claude_found: Option<String>,
    pub inactivity_timeout_secs: u64,
    /// Saved settings differ from the running ones: they apply after `personas up` restarts.
    pub restart_required: bool,
}

/// Changes saved to `config.toml`; they take effect when the runtime restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct UpdateSettings {
    #[serde(default)]
    #[ts(optional)]
    pub max_concurrent: Option<u32>,
    /// An empty string clears it (find the CLI automatically).
    #[serde(default)]
    #[ts(optional)]
    pub claude_path: Option<String>,
}

// ---- personas ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PersonaList {
    pub personas: Vec<Persona>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CreatePersona {
    pub spec: PersonaSpec,
    /// Credentials (names) whose variables its runs get.
    #[serde(default)]
    #[ts(optional)]
    pub credentials: Option<Vec<String>>,
    /// Custom tools (names) documented in its prompt.
    #[serde(default)]
    #[ts(optional)]
    pub tools: Option<Vec<String>>,
    /// Start the permission policy from this template: its mode and rules replace
    /// `spec.permissions`' mode, and `spec.permissions`' rules are added to its own.
    #[serde(default)]
    #[ts(optional)]
    pub permissions_template: Option<PermissionTemplate>,
}

/// Replaces a persona's settings; `credentials` and `tools`, when given, replace its links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct UpdatePersona {
    pub persona: String,
    pub spec: PersonaSpec,
    #[serde(default)]
    #[ts(optional)]
    pub credentials: Option<Vec<String>>,
    #[serde(default)]
    #[ts(optional)]
    pub tools: Option<Vec<String>>,
    #[serde(default)]
    #[ts(optional)]
    pub permissions_template: Option<PermissionTemplate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PromptVersionList {
    /// Oldest first.
    pub versions: Vec<PromptVersion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct TemplateList {
    pub templates: Vec<PersonaTemplate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CreateFromTemplate {
    pub template_id: String,
    /// Defaults to the template's name.
    #[serde(default)]
    #[ts(optional)]
    pub name: Option<String>,
}

// ---- executions ----

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct RunPersona {
    pub persona: String,
    /// Any JSON value handed to the persona as its input.
    #[serde(default)]
    #[ts(optional, type = "unknown")]
    pub input: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListExecutions {
    #[serde(default)]
    #[ts(optional)]
    pub persona: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub status: Option<ExecutionStatus>,
    /// At most this many, newest first (default 50, at most 500).
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ExecutionList {
    pub executions: Vec<Execution>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ExecutionOutputRequest {
    pub id: String,
    /// Lines with a sequence number above this (0 = from the start).
    #[serde(default)]
    #[ts(optional)]
    pub after: Option<i64>,
    /// At most this many lines (default 1000, at most 5000).
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct OutputPage {
    pub lines: Vec<OutputLine>,
    /// Sequence number of the last line returned (or `after` when none were).
    pub last_seq: i64,
    /// More stored lines follow this page.
    pub more: bool,
}

// ---- inbox, memories, reviews ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListMessages {
    #[serde(default)]
    #[ts(optional)]
    pub unread_only: Option<bool>,
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct MessageList {
    pub messages: Vec<MessageRow>,
    pub unread: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct MarkMessagesRead {
    /// These messages; all unread ones when absent.
    #[serde(default)]
    #[ts(optional)]
    pub ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Updated {
    pub updated: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListMemories {
    #[serde(default)]
    #[ts(optional)]
    pub persona: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct MemoryList {
    pub memories: Vec<MemoryRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct AddMemory {
    pub persona: String,
    pub title: String,
    pub content: String,
    #[serde(default)]
    #[ts(optional)]
    pub category: Option<String>,
    /// 1 (trivia) to 5 (essential); default 3.
    #[serde(default)]
    #[ts(optional)]
    pub importance: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct UpdateMemory {
    pub id: String,
    /// Fields left out keep their value.
    #[serde(default)]
    #[ts(optional)]
    pub title: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub content: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub category: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub importance: Option<u8>,
}

/// Names a memory by id or a unique prefix of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct MemoryRef {
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListReviews {
    /// `pending`, `approved`, `rejected`, `timed_out`, `cancelled`; all when absent.
    #[serde(default)]
    #[ts(optional)]
    pub status: Option<ReviewStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ReviewList {
    pub reviews: Vec<ReviewRow>,
}

/// A decision on a pending review of a paused run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct DecideReview {
    /// Review id, or a unique prefix of it.
    pub id: String,
    pub decision: Decision,
    /// A note for the agent, given to the resumed session with the decision.
    #[serde(default)]
    #[ts(optional)]
    pub note: Option<String>,
}

/// The decided review, the execution, and what the decision did to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct DecidedReview {
    pub review: ReviewRow,
    pub execution: Execution,
    pub effect: personas_store::Effect,
}

// ---- observability ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct StatsRequest {
    /// Days back, today included (default 14, 1..=366).
    #[serde(default)]
    #[ts(optional)]
    pub days: Option<u32>,
    /// The viewer's offset from UTC in minutes (east positive), so days are their days.
    #[serde(default)]
    #[ts(optional)]
    pub tz_offset_minutes: Option<i32>,
    /// Only this persona's runs (name or id).
    #[serde(default)]
    #[ts(optional)]
    pub persona: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct DashboardRequest {
    #[serde(default)]
    #[ts(optional)]
    pub tz_offset_minutes: Option<i32>,
}

/// Everything the home screen shows, in one round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Dashboard {
    pub personas: u64,
    /// Running or waiting for a review.
    pub running: Vec<Execution>,
    pub queued: u64,
    pub recent: Vec<Execution>,
    /// Recent runs that failed or timed out.
    pub failures: Vec<Execution>,
    pub pending_reviews: Vec<ReviewRow>,
    pub unread_messages: u64,
    pub latest_messages: Vec<MessageRow>,
    pub runs_today: u64,
    pub spend_today_usd: f64,
}

// ---- team canvas ----

/// Where a persona sits on the team canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CanvasNode {
    pub persona_id: String,
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CanvasLayout {
    pub nodes: Vec<CanvasNode>,
}
