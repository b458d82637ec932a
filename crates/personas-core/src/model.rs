//! Domain types: personas, their permission policy, executions and how they end.

use crate::ids::{ExecutionId, PersonaId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Defaults a persona gets when its author does not say otherwise.
pub mod defaults {
    pub const MAX_CONCURRENT: u32 = 1;
    pub const TIMEOUT_SECS: u64 = 600;
}

/// An agent written in natural language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct Persona {
    pub id: PersonaId,
    pub name: String,
    pub description: String,
    /// What the persona does, in the author's words.
    pub instructions: String,
    /// Optional structured parts of the prompt ("Output format", "Tone", ...), in order.
    pub sections: Vec<PromptSection>,
    /// Model alias or id passed to the CLI; `None` lets the CLI choose.
    pub model: Option<String>,
    pub max_concurrent: u32,
    pub timeout_secs: u64,
    pub max_turns: Option<u32>,
    pub max_budget_usd: Option<f64>,
    pub permissions: PermissionPolicy,
    pub enabled: bool,
    /// Number of the current prompt version (1 for a new persona).
    pub prompt_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A titled part of a persona's prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// A persona file refuses unknown keys at every level: a misspelt key must not vanish silently.
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct PromptSection {
    pub title: String,
    pub body: String,
}

/// Everything needed to create a persona, or the full new state when updating one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct PersonaSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub instructions: String,
    #[serde(default)]
    pub sections: Vec<PromptSection>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub max_budget_usd: Option<f64>,
    #[serde(default)]
    pub permissions: PermissionPolicy,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_max_concurrent() -> u32 {
    defaults::MAX_CONCURRENT
}
fn default_timeout() -> u64 {
    defaults::TIMEOUT_SECS
}
fn default_true() -> bool {
    true
}

impl PersonaSpec {
    /// A spec with defaults for everything but the two required fields.
    pub fn new(name: impl Into<String>, instructions: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            instructions: instructions.into(),
            sections: Vec::new(),
            model: None,
            max_concurrent: defaults::MAX_CONCURRENT,
            timeout_secs: defaults::TIMEOUT_SECS,
            max_turns: None,
            max_budget_usd: None,
            permissions: PermissionPolicy::default(),
            enabled: true,
        }
    }

    /// True when `other` changes what the model is told (a new prompt version).
    pub fn prompt_differs(&self, other: &PersonaSpec) -> bool {
        self.instructions != other.instructions || self.sections != other.sections
    }
}

impl From<&Persona> for PersonaSpec {
    fn from(p: &Persona) -> Self {
        Self {
            name: p.name.clone(),
            description: p.description.clone(),
            instructions: p.instructions.clone(),
            sections: p.sections.clone(),
            model: p.model.clone(),
            max_concurrent: p.max_concurrent,
            timeout_secs: p.timeout_secs,
            max_turns: p.max_turns,
            max_budget_usd: p.max_budget_usd,
            permissions: p.permissions.clone(),
            enabled: p.enabled,
        }
    }
}

/// One stored version of a persona's prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct PromptVersion {
    pub persona_id: PersonaId,
    pub version: i64,
    pub instructions: String,
    pub sections: Vec<PromptSection>,
    pub created_at: DateTime<Utc>,
}

/// What a persona's run may do with Claude Code's built-in tools. Passed to the CLI as
/// `--allowedTools`, `--disallowedTools` and `--permission-mode`; never as a blanket skip.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct PermissionPolicy {
    #[serde(default)]
    pub mode: PermissionMode,
    /// Tools or patterns allowed without asking, e.g. `Read`, `Bash(git *)`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Tools removed from the run entirely, e.g. `WebFetch`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Personas this one may start (`persona_action`, the MCP `run_persona` tool): persona ids
    /// as stored (names are accepted on the way in and resolved by the store), or
    /// [`ANY_PERSONA`] for every persona — an explicit, warned choice. Empty: none, so a run
    /// handling untrusted input cannot be talked into starting a persona with more power.
    #[serde(default)]
    pub allow_personas: Vec<String>,
}

/// The `allow_personas` entry that lets a persona start every other persona.
pub const ANY_PERSONA: &str = "*";

impl PermissionPolicy {
    /// True when a run of this persona may start `target`.
    pub fn may_start(&self, target: &PersonaId) -> bool {
        self.allow_personas
            .iter()
            .any(|a| a == ANY_PERSONA || a == target.as_str())
    }

    /// True when `allow_personas` holds [`ANY_PERSONA`].
    pub fn allows_any_persona(&self) -> bool {
        self.allow_personas.iter().any(|a| a == ANY_PERSONA)
    }

    /// How much a mode lets a run do, for telling a broader mode from a narrower one:
    /// `dontAsk` (only what is pre-allowed) < `plan` (read-only exploration) < `default`
    /// (reads plus the allow-list) < `acceptEdits` < `bypassPermissions`.
    pub fn mode_rank(mode: PermissionMode) -> u8 {
        match mode {
            PermissionMode::DontAsk => 0,
            PermissionMode::Plan => 1,
            PermissionMode::Default => 2,
            PermissionMode::AcceptEdits => 3,
            PermissionMode::BypassPermissions => 4,
        }
    }
}

/// The CLI's `--permission-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum PermissionMode {
    /// Anything not allowed by the policy is denied (nothing prompts in `-p` mode).
    #[default]
    Default,
    /// File edits inside the working directory are allowed.
    AcceptEdits,
    /// Deny everything not pre-allowed, without exception.
    DontAsk,
    /// Read-only planning.
    Plan,
    /// Full trust: every tool allowed. An explicit per-persona choice.
    BypassPermissions,
}

impl PermissionMode {
    pub const ALL: [PermissionMode; 5] = [
        PermissionMode::Default,
        PermissionMode::AcceptEdits,
        PermissionMode::DontAsk,
        PermissionMode::Plan,
        PermissionMode::BypassPermissions,
    ];

    /// The value the CLI's `--permission-mode` flag takes.
    pub fn as_cli_str(self) -> &'static str {
        match self {
            PermissionMode::Default => "default",
            PermissionMode::AcceptEdits => "acceptEdits",
            PermissionMode::DontAsk => "dontAsk",
            PermissionMode::Plan => "plan",
            PermissionMode::BypassPermissions => "bypassPermissions",
        }
    }
}

impl FromStr for PermissionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermissionMode::ALL
            .into_iter()
            .find(|m| m.as_cli_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown permission mode {s:?}; expected one of: {}",
                    PermissionMode::ALL.map(|m| m.as_cli_str()).join(", ")
                )
            })
    }
}

/// Ready-made permission policies, from least to most trust. Applying one replaces the mode and
/// the allow/deny lists; rules given afterwards add to them. Templates are about tools: the
/// personas a persona may start (`allow_personas`) are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum PermissionTemplate {
    /// Read and search files; nothing else. `dontAsk` denies every other tool without asking,
    /// and each attempt is a recorded permission denial (removing the tools instead would hide
    /// the attempts).
    ReadOnly,
    /// Read, search and edit files inside the persona's working directory (`acceptEdits`).
    EditInWorkspace,
    /// Every tool, no questions (`bypassPermissions`). An explicit, per-persona choice.
    FullTrust,
}

impl PermissionTemplate {
    pub const ALL: [PermissionTemplate; 3] = [
        PermissionTemplate::ReadOnly,
        PermissionTemplate::EditInWorkspace,
        PermissionTemplate::FullTrust,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PermissionTemplate::ReadOnly => "read-only",
            PermissionTemplate::EditInWorkspace => "edit-in-workspace",
            PermissionTemplate::FullTrust => "full-trust",
        }
    }

    /// The policy this template stands for.
    pub fn policy(self) -> PermissionPolicy {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            PermissionTemplate::ReadOnly => PermissionPolicy {
                mode: PermissionMode::DontAsk,
                allow: list(&["Read", "Glob", "Grep", "LS"]),
                deny: Vec::new(),
                allow_personas: Vec::new(),
            },
            PermissionTemplate::EditInWorkspace => PermissionPolicy {
                mode: PermissionMode::AcceptEdits,
                allow: list(&["Read", "Glob", "Grep", "LS", "Edit", "MultiEdit", "Write"]),
                deny: list(&["WebFetch", "WebSearch"]),
                allow_personas: Vec::new(),
            },
            PermissionTemplate::FullTrust => PermissionPolicy {
                mode: PermissionMode::BypassPermissions,
                allow: Vec::new(),
                deny: Vec::new(),
                allow_personas: Vec::new(),
            },
        }
    }
}

impl FromStr for PermissionTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermissionTemplate::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown permission template {s:?}; expected one of: {}",
                    PermissionTemplate::ALL.map(|t| t.as_str()).join(", ")
                )
            })
    }
}

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}; expected one of: {}",
                        $crate::model::words(stringify!($name)),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}
/// A type's name as words for messages: `EventStatus` → `event status`.
pub(crate) fn words(type_name: &str) -> String {
    let mut out = String::with_capacity(type_name.len() + 4);
    for (i, c) in type_name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

// Shared with the other modules that declare closed sets of stored names (`status`).
pub(crate) use string_enum;

string_enum!(
    /// Where an execution is in its life. Lower-case on the wire and in the store.
    ExecutionStatus {
        Queued => "queued",
        Running => "running",
        AwaitingReview => "awaiting_review",
        Completed => "completed",
        Failed => "failed",
        Incomplete => "incomplete",
        Cancelled => "cancelled",
        TimedOut => "timed_out",
    }
);

impl ExecutionStatus {
    /// True once nothing more will happen to the execution.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Completed
                | ExecutionStatus::Failed
                | ExecutionStatus::Incomplete
                | ExecutionStatus::Cancelled
                | ExecutionStatus::TimedOut
        )
    }
}

string_enum!(
    /// Why an execution did not complete, decided by the runner from the CLI's output.
    ErrorClass {
        CliMissing => "cli_missing",
        SpawnFailed => "spawn_failed",
        NotLoggedIn => "not_logged_in",
        AuthFailed => "auth_failed",
        RateLimited => "rate_limited",
        Overloaded => "overloaded",
        ServerError => "server_error",
        BadRequest => "bad_request",
        Network => "network",
        Timeout => "timeout",
        Inactivity => "inactivity",
        MaxTurns => "max_turns",
        BudgetExceeded => "budget_exceeded",
        PermissionDenied => "permission_denied",
        Crash => "crash",
        Interrupted => "interrupted",
        Cancelled => "cancelled",
        Refused => "refused",
        CredentialUnavailable => "credential_unavailable",
        Unknown => "unknown",
    }
);

impl ErrorClass {
    /// Failures that are likely to go away by themselves when retried later.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::Overloaded
                | ErrorClass::ServerError
                | ErrorClass::Network
        )
    }
}

string_enum!(
    /// What started an execution. `cloud`: it ran in a Personas cloud and this row mirrors it
    /// (no local process runs it).
    TriggerKind {
        Manual => "manual",
        Schedule => "schedule",
        Webhook => "webhook",
        Event => "event",
        Chain => "chain",
        Retry => "retry",
        Cloud => "cloud",
    }
);

impl TriggerKind {
    /// Queue priority: people waiting at a keyboard go first.
    pub fn priority(self) -> i32 {
        match self {
            TriggerKind::Manual => 10,
            _ => 0,
        }
    }
}

/// Token counts reported by the CLI's `result` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

/// A tool call the CLI refused under the persona's permission policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct PermissionDenial {
    pub tool_name: String,
    pub tool_use_id: String,
    pub tool_input: serde_json::Value,
}

/// A persona this run tried to start (`persona_action`, the MCP `run_persona` tool) that its
/// persona's `allow_personas` does not list. The target did not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct PersonaDenial {
    /// The target as the run named it.
    pub target: String,
    /// The persona that name resolved to.
    pub target_persona_id: PersonaId,
    /// The `action` the run asked for, if any.
    pub action: Option<String>,
    /// Where the request came from: `protocol` (a JSON line), `mcp` (a tool call) or `bus`
    /// (an addressed event held back by the dispatcher).
    pub via: String,
    pub at: DateTime<Utc>,
}

/// One run of a persona, from queue to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct Execution {
    pub id: ExecutionId,
    pub persona_id: PersonaId,
    pub persona_name: String,
    pub status: ExecutionStatus,
    pub priority: i32,
    pub trigger: TriggerKind,
    /// What caused it (an event id, a trigger id, a parent execution), when known.
    pub trigger_ref: Option<String>,
    pub input: Option<serde_json::Value>,
    /// The persona's prompt version the run used.
    pub prompt_version: Option<i64>,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub num_turns: u32,
    pub tokens: TokenUsage,
    pub cost_usd: f64,
    pub result_text: Option<String>,
    /// The agent's own `outcome_assessment`, when it gave one.
    pub outcome_accomplished: Option<bool>,
    pub outcome_summary: Option<String>,
    pub error_class: Option<ErrorClass>,
    pub error_message: Option<String>,
    pub permission_denials: Vec<PermissionDenial>,
    /// Personas this run was refused permission to start.
    pub persona_denials: Vec<PersonaDenial>,
    pub parse_warnings: u32,
    pub output_lines: u64,
    pub output_truncated: bool,
    pub cancel_requested: bool,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
}

impl Execution {
    /// A run just queued: nothing measured yet, the trigger's priority.
    pub fn queued(
        id: ExecutionId,
        persona_id: PersonaId,
        persona_name: String,
        trigger: TriggerKind,
        queued_at: DateTime<Utc>,
    ) -> Execution {
        Execution {
            id,
            persona_id,
            persona_name,
            status: ExecutionStatus::Queued,
            priority: trigger.priority(),
            trigger,
            trigger_ref: None,
            input: None,
            prompt_version: None,
            session_id: None,
            model: None,
            num_turns: 0,
            tokens: TokenUsage::default(),
            cost_usd: 0.0,
            result_text: None,
            outcome_accomplished: None,
            outcome_summary: None,
            error_class: None,
            error_message: None,
            permission_denials: Vec::new(),
            persona_denials: Vec::new(),
            parse_warnings: 0,
            output_lines: 0,
            output_truncated: false,
            cancel_requested: false,
            queued_at,
            started_at: None,
            finished_at: None,
            heartbeat_at: None,
        }
    }

    /// Wall time from start to end (or to now, while running).
    pub fn duration_ms(&self, now: DateTime<Utc>) -> Option<i64> {
        let start = self.started_at?;
        Some((self.finished_at.unwrap_or(now) - start).num_milliseconds())
    }
}

/// How an execution ended, as decided by the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionOutcome {
    pub status: ExecutionStatus,
    pub error_class: Option<ErrorClass>,
    pub error_message: Option<String>,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub num_turns: u32,
    pub tokens: TokenUsage,
    pub cost_usd: f64,
    pub result_text: Option<String>,
    pub permission_denials: Vec<PermissionDenial>,
}

impl ExecutionOutcome {
    pub fn failed(class: ErrorClass, message: impl Into<String>) -> Self {
        Self::ended(ExecutionStatus::Failed, Some(class), Some(message.into()))
    }

    pub fn ended(
        status: ExecutionStatus,
        error_class: Option<ErrorClass>,
        error_message: Option<String>,
    ) -> Self {
        Self {
            status,
            error_class,
            error_message,
            session_id: None,
            model: None,
            num_turns: 0,
            tokens: TokenUsage::default(),
            cost_usd: 0.0,
            result_text: None,
            permission_denials: Vec::new(),
        }
    }
}

string_enum!(
    /// What an output line of an execution holds; lets viewers render without re-parsing.
    LineKind {
        System => "system",
        AssistantText => "assistant_text",
        Thinking => "thinking",
        ToolUse => "tool_use",
        ToolResult => "tool_result",
        User => "user",
        Result => "result",
        Retry => "retry",
        Protocol => "protocol",
        Warning => "warning",
        Stderr => "stderr",
        Raw => "raw",
        Engine => "engine",
    }
);

/// One stored, ordered line of an execution's output (already redacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct OutputLine {
    pub execution_id: ExecutionId,
    pub seq: i64,
    pub kind: LineKind,
    /// The line as the CLI printed it (JSON for stream lines), or the engine's own note.
    pub text: String,
    pub at: DateTime<Utc>,
    /// What the line says, parsed ([`crate::frame`]); filled in where lines are served, never
    /// stored. Absent for plain-text lines (stderr, engine notes, raw output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", ts(optional))]
    pub frame: Option<crate::frame::OutputFrame>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_text() {
        for s in ExecutionStatus::ALL {
            assert_eq!(s.as_str().parse::<ExecutionStatus>(), Ok(*s));
            assert_eq!(
                serde_json::to_string(s).expect("serialise"),
                format!("\"{}\"", s.as_str())
            );
        }
        let err = "done"
            .parse::<ExecutionStatus>()
            .expect_err("unknown status");
        assert!(err.contains("queued"), "{err}");
    }

    #[test]
    fn only_ended_statuses_are_terminal() {
        assert!(!ExecutionStatus::Queued.is_terminal());
        assert!(!ExecutionStatus::Running.is_terminal());
        assert!(!ExecutionStatus::AwaitingReview.is_terminal());
        assert!(ExecutionStatus::TimedOut.is_terminal());
    }

    #[test]
    fn permission_templates_go_from_least_to_most_trust() {
        let ro = PermissionTemplate::ReadOnly.policy();
        assert_eq!(ro.mode, PermissionMode::DontAsk);
        for t in ["Write", "Edit", "Bash"] {
            assert!(
                !ro.allow.iter().any(|a| a.starts_with(t)),
                "read-only must not allow {t}"
            );
        }
        assert_eq!(
            PermissionTemplate::FullTrust.policy().mode,
            PermissionMode::BypassPermissions
        );
        assert_eq!("Read-Only".parse(), Ok(PermissionTemplate::ReadOnly));
        let err = "yolo".parse::<PermissionTemplate>().expect_err("unknown");
        assert!(err.contains("edit-in-workspace"), "{err}");
    }

    #[test]
    fn permission_mode_parses_case_insensitively_and_names_choices() {
        assert_eq!("acceptedits".parse(), Ok(PermissionMode::AcceptEdits));
        let err = "yolo".parse::<PermissionMode>().expect_err("unknown");
        assert!(err.contains("dontAsk"), "{err}");
    }
}
