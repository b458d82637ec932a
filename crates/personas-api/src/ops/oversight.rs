//! Request and response types of what watches over a persona: its notification channels,
//! its review/budget/healing policy, healing issues and circuit breakers.
//!
//! A channel's config never holds a secret: secret fields are references
//! (`credential:NAME.FIELD` to the vault, or `env:NAME` for a variable `channel_env_allow`
//! lists) resolved when sending, so a channel can be listed as stored.

use chrono::{DateTime, Utc};
use personas_core::review::{OnReject, TimeoutAction};
use personas_core::{BreakerState, ChannelKind};
use personas_store::IssueRow;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;

// ---- notification channels ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListChannels {
    /// One persona's channels (id or name); every persona's when absent.
    #[serde(default)]
    #[ts(optional)]
    pub persona: Option<String>,
}

/// A persona's notification channel, as stored (secret fields are `credential:NAME.FIELD` or
/// `env:NAME` references).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Channel {
    pub id: String,
    pub persona_id: String,
    pub persona_name: String,
    pub name: String,
    pub kind: ChannelKind,
    #[ts(type = "unknown")]
    pub config: Value,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ChannelList {
    pub channels: Vec<Channel>,
}

/// Adds a channel to a persona. Secret fields (Slack webhook URL or bot token, Telegram bot
/// token, SMTP password, webhook secret) must be `credential:NAME.FIELD` references (or
/// `env:NAME` for a variable `channel_env_allow` in config.toml lists, never `PERSONAS_*`); a
/// plain value is refused naming the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct AddChannel {
    pub persona: String,
    /// Unique per persona.
    pub name: String,
    pub kind: ChannelKind,
    /// The kind's settings as a JSON object.
    #[serde(default)]
    #[ts(optional, type = "unknown")]
    pub config: Option<Value>,
}

/// Names a persona's channel (by name or id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ChannelRef {
    pub persona: String,
    pub name: String,
}

/// The outcome of a test notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ChannelTest {
    pub ok: bool,
    /// What happened, for a person.
    pub message: String,
}

// ---- policy: reviews, budgets, healing ----

/// A persona's overrides; `null` means the runtime default (see [`PolicyDefaults`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Policy {
    /// Seconds a paused run waits for a review decision.
    pub review_timeout_secs: Option<u64>,
    /// What an undecided review does at its deadline.
    pub review_timeout_action: Option<TimeoutAction>,
    /// What a rejection does to the paused run.
    pub on_reject: Option<OnReject>,
    /// Spending cap per UTC day; runs beyond it are refused.
    pub daily_budget_usd: Option<f64>,
    /// Spending cap per UTC month.
    pub monthly_budget_usd: Option<f64>,
    /// Consecutive failures that pause the persona (open its circuit breaker).
    pub failure_threshold: Option<u32>,
    /// Scheduled retries of a transient failure.
    pub max_retries: Option<u32>,
}

/// What applies where a persona sets nothing (from `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PolicyDefaults {
    pub review_timeout_secs: u64,
    pub review_timeout_action: TimeoutAction,
    pub on_reject: OnReject,
    /// The global caps (all personas together), if any.
    pub daily_budget_usd: Option<f64>,
    pub monthly_budget_usd: Option<f64>,
    pub failure_threshold: u32,
    pub max_retries: u32,
}

/// A circuit breaker's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Breaker {
    /// `provider` or `persona:<id>`.
    pub scope: String,
    /// The persona's name for a persona breaker.
    pub persona_name: Option<String>,
    pub consecutive_failures: u32,
    pub state: BreakerState,
    pub opened_at: Option<DateTime<Utc>>,
    pub open_until: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// A persona's policy, the defaults, and whether its breaker has paused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PersonaPolicy {
    pub persona_id: String,
    pub persona_name: String,
    pub policy: Policy,
    pub defaults: PolicyDefaults,
    pub breaker: Option<Breaker>,
    /// The breaker is open: runs are refused until `resume_persona`.
    pub paused: bool,
}

/// Replaces a persona's policy (every field; `null` = the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct UpdatePolicy {
    pub persona: String,
    pub policy: Policy,
}

// ---- healing ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListHealing {
    /// Resolved issues and closed breakers too.
    #[serde(default)]
    #[ts(optional)]
    pub all: Option<bool>,
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct HealingList {
    pub issues: Vec<IssueRow>,
    pub breakers: Vec<Breaker>,
}

/// Names a healing issue by id or a unique prefix of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct IssueRef {
    pub id: String,
}
