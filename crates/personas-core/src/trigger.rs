//! Triggers: what starts a persona besides a person at a keyboard — a cron schedule, a signed
//! webhook, a bus event it subscribes to, another persona ending (a chain), or a file changing.
//!
//! Every trigger fires a durable bus event; the bus dispatcher turns events into executions. This
//! module holds the pure parts: the trigger definitions, event-type patterns and their matching,
//! chain conditions and missed-run policies. Validation errors name the flag/field at fault.

use crate::ids::PersonaId;
use crate::model::ExecutionStatus;
use crate::validate::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What kind of trigger a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TriggerType {
    Manual,
    Cron,
    Webhook,
    Event,
    Chain,
    Watch,
}

impl TriggerType {
    pub const ALL: [TriggerType; 6] = [
        TriggerType::Manual,
        TriggerType::Cron,
        TriggerType::Webhook,
        TriggerType::Event,
        TriggerType::Chain,
        TriggerType::Watch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Manual => "manual",
            TriggerType::Cron => "cron",
            TriggerType::Webhook => "webhook",
            TriggerType::Event => "event",
            TriggerType::Chain => "chain",
            TriggerType::Watch => "watch",
        }
    }
}

impl fmt::Display for TriggerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TriggerType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TriggerType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown trigger kind {s:?}"))
    }
}

/// Where a bus event came from. Lower-case in the store and on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Persona,
    Webhook,
    Schedule,
    User,
    Chain,
    System,
    Watcher,
}

impl SourceKind {
    pub const ALL: [SourceKind; 7] = [
        SourceKind::Persona,
        SourceKind::Webhook,
        SourceKind::Schedule,
        SourceKind::User,
        SourceKind::Chain,
        SourceKind::System,
        SourceKind::Watcher,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Persona => "persona",
            SourceKind::Webhook => "webhook",
            SourceKind::Schedule => "schedule",
            SourceKind::User => "user",
            SourceKind::Chain => "chain",
            SourceKind::System => "system",
            SourceKind::Watcher => "watcher",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SourceKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown event source {s:?}; expected one of: {}",
                    SourceKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })
    }
}

/// Which events of a type a subscription wants, by origin: every event from one kind of source,
/// or (with `id`) only those of one persona or trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct SourceFilter {
    pub kind: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl SourceFilter {
    pub fn matches(&self, kind: &str, id: Option<&str>) -> bool {
        self.kind.as_str() == kind
            && match &self.id {
                None => true,
                Some(want) => id == Some(want.as_str()),
            }
    }
}

/// After which endings of persona A a chain runs persona B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChainOn {
    /// A completed.
    Completed,
    /// A failed, timed out, or judged its own work incomplete.
    Failed,
    /// A ended any way but a cancellation by a person.
    Any,
}

impl ChainOn {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainOn::Completed => "completed",
            ChainOn::Failed => "failed",
            ChainOn::Any => "any",
        }
    }

    /// True when an execution that ended in `status` fires the chain. A cancelled run never
    /// does: a person stopped it on purpose.
    pub fn matches(self, status: ExecutionStatus) -> bool {
        match self {
            ChainOn::Completed => status == ExecutionStatus::Completed,
            ChainOn::Failed => matches!(
                status,
                ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Incomplete
            ),
            ChainOn::Any => status.is_terminal() && status != ExecutionStatus::Cancelled,
        }
    }

    /// The statuses [`ChainOn::matches`] accepts, for queries.
    pub fn statuses(self) -> Vec<ExecutionStatus> {
        ExecutionStatus::ALL
            .iter()
            .copied()
            .filter(|s| self.matches(*s))
            .collect()
    }
}

impl FromStr for ChainOn {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "completed" => Ok(ChainOn::Completed),
            "failed" => Ok(ChainOn::Failed),
            "any" => Ok(ChainOn::Any),
            other => Err(ValidationError::new(
                "on",
                format!("{other:?} is not a chain condition; expected completed, failed or any"),
            )),
        }
    }
}

/// What a cron trigger does about runs it missed while nothing was running (downtime, sleep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum MissedPolicy {
    /// Fire none of them; carry on with the next scheduled time.
    #[default]
    Skip,
    /// Fire once for all of them (the latest).
    Once,
    /// Fire the latest N of them, oldest first.
    CatchUp(u32),
}

/// Most missed runs one trigger may catch up on.
pub const MAX_CATCH_UP: u32 = 1_000;

impl MissedPolicy {
    /// How many missed runs get fired.
    pub fn keep(self) -> usize {
        match self {
            MissedPolicy::Skip => 0,
            MissedPolicy::Once => 1,
            MissedPolicy::CatchUp(n) => n as usize,
        }
    }
}

impl fmt::Display for MissedPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissedPolicy::Skip => f.write_str("skip"),
            MissedPolicy::Once => f.write_str("once"),
            MissedPolicy::CatchUp(n) => write!(f, "catch-up:{n}"),
        }
    }
}

impl From<MissedPolicy> for String {
    fn from(p: MissedPolicy) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for MissedPolicy {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for MissedPolicy {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValidationError::new(
                "missed",
                format!(
                    "{s:?} is not a missed-run policy; expected skip, once or catch-up:N (N from 1 to {MAX_CATCH_UP})"
                ),
            )
        };
        match s {
            "skip" => Ok(MissedPolicy::Skip),
            "once" => Ok(MissedPolicy::Once),
            other => {
                let n: u32 = other
                    .strip_prefix("catch-up:")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(bad)?;
                if n == 0 || n > MAX_CATCH_UP {
                    return Err(bad());
                }
                Ok(MissedPolicy::CatchUp(n))
            }
        }
    }
}

/// A trigger's definition, stored as JSON with a `kind` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerConfig {
    /// Fired only on request.
    Manual,
    /// A cron schedule in a named time zone.
    Cron {
        expr: String,
        tz: String,
        /// `skip`, `once` or `catch-up:N`.
        #[serde(default)]
        #[cfg_attr(feature = "schema", ts(type = "string"), schemars(with = "String"))]
        missed: MissedPolicy,
    },
    /// `POST /webhooks/{trigger id}` with an HMAC-SHA256 signature (the secret is sealed in the
    /// vault, apart from the definition). `github`: signed as GitHub signs
    /// (`X-Hub-Signature-256` over the body, replays refused by `X-GitHub-Delivery`) instead of
    /// Personas' timestamped `X-Personas-Signature`.
    Webhook {
        #[serde(default)]
        github: bool,
    },
    /// A subscription to bus events whose type matches `pattern`.
    Event {
        pattern: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<SourceFilter>,
    },
    /// Runs this trigger's persona after `after_persona_id` ends as `on` says, with its output.
    Chain {
        after_persona_id: PersonaId,
        on: ChainOn,
    },
    /// Files created, changed or deleted under `path` (optionally only names matching `glob`).
    Watch {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        glob: Option<String>,
    },
}

impl TriggerConfig {
    pub fn trigger_type(&self) -> TriggerType {
        match self {
            TriggerConfig::Manual => TriggerType::Manual,
            TriggerConfig::Cron { .. } => TriggerType::Cron,
            TriggerConfig::Webhook { .. } => TriggerType::Webhook,
            TriggerConfig::Event { .. } => TriggerType::Event,
            TriggerConfig::Chain { .. } => TriggerType::Chain,
            TriggerConfig::Watch { .. } => TriggerType::Watch,
        }
    }

    /// Checks what can be checked without I/O (cron syntax and zone, pattern, policy).
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            TriggerConfig::Cron { expr, tz, .. } => {
                crate::cron::CronSchedule::parse(expr, tz).map(|_| ())
            }
            TriggerConfig::Event { pattern, .. } => EventPattern::parse(pattern).map(|_| ()),
            TriggerConfig::Watch { path, glob } => {
                if path.trim().is_empty() {
                    return Err(ValidationError::new("watch", "the path must not be empty"));
                }
                if glob.as_deref().is_some_and(|g| g.trim().is_empty()) {
                    return Err(ValidationError::new("glob", "must not be empty"));
                }
                Ok(())
            }
            TriggerConfig::Manual | TriggerConfig::Webhook { .. } | TriggerConfig::Chain { .. } => {
                Ok(())
            }
        }
    }
}

/// Longest event type or pattern accepted.
pub const MAX_EVENT_TYPE_LEN: usize = 200;

/// The form event types are compared in: lower case, with `-` and `_` read as `.`, so
/// `ticket-created`, `Ticket_Created` and `ticket.created` are one type.
pub fn normalize_event_type(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '-' | '_' => '.',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn allowed_type_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/')
}

/// Checks an event type a persona, a user or a trigger publishes (no wildcards).
pub fn validate_event_type(s: &str) -> Result<(), ValidationError> {
    let field = "type";
    if s.is_empty() {
        return Err(ValidationError::new(
            field,
            "the event type must not be empty",
        ));
    }
    if s.len() > MAX_EVENT_TYPE_LEN {
        return Err(ValidationError::new(
            field,
            format!("the event type must be at most {MAX_EVENT_TYPE_LEN} characters"),
        ));
    }
    if s.contains('*') {
        return Err(ValidationError::new(
            field,
            format!(
                "{s:?}: a published event type cannot contain `*` (wildcards are for subscriptions)"
            ),
        ));
    }
    if let Some(c) = s.chars().find(|c| !allowed_type_char(*c)) {
        return Err(ValidationError::new(
            field,
            format!("{s:?} contains {c:?}; use letters, digits and . - _ : /"),
        ));
    }
    Ok(())
}

/// A subscription's event-type pattern: an exact type, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPattern {
    /// The normalised type, or the normalised prefix before `*`.
    pub key: String,
    /// True for a `*` pattern.
    pub prefix: bool,
}

impl EventPattern {
    /// Parses `ticket.created`, `ticket.*` or `*`. Errors name the `event` field.
    pub fn parse(s: &str) -> Result<EventPattern, ValidationError> {
        let field = "event";
        if s.is_empty() {
            return Err(ValidationError::new(
                field,
                "the event type pattern must not be empty",
            ));
        }
        if s.len() > MAX_EVENT_TYPE_LEN {
            return Err(ValidationError::new(
                field,
                format!("the event type pattern must be at most {MAX_EVENT_TYPE_LEN} characters"),
            ));
        }
        let (body, prefix) = match s.strip_suffix('*') {
            Some(body) => (body, true),
            None => (s, false),
        };
        if body.contains('*') {
            return Err(ValidationError::new(
                field,
                format!("{s:?}: `*` is only allowed once, at the end (e.g. \"ticket.*\")"),
            ));
        }
        if let Some(c) = body.chars().find(|c| !allowed_type_char(*c)) {
            return Err(ValidationError::new(
                field,
                format!(
                    "{s:?} contains {c:?}; use letters, digits and . - _ : /, and `*` at the end"
                ),
            ));
        }
        Ok(EventPattern {
            key: normalize_event_type(body),
            prefix,
        })
    }

    /// True when an event of (already normalised) type `normalized` matches.
    pub fn matches(&self, normalized: &str) -> bool {
        if self.prefix {
            normalized.starts_with(&self.key)
        } else {
            normalized == self.key
        }
    }
}

/// The HMAC key of a webhook trigger. `Debug` redacts it and it cannot be serialised by
/// accident; [`WebhookSecret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("ticket.created", "ticket.created", true)]
    #[case("ticket.created", "Ticket-Created", true)]
    #[case("ticket_created", "ticket.created", true)]
    #[case("ticket.created", "ticket.created.v2", false)]
    #[case("ticket.*", "ticket.created", true)]
    #[case("ticket.*", "ticket", false)]
    #[case("ticket-*", "ticket_closed", true)]
    #[case("*", "anything.at.all", true)]
    #[case("deploy*", "deploys.done", true)]
    #[case("deploy*", "build.deploy", false)]
    fn patterns_match(#[case] pattern: &str, #[case] event: &str, #[case] expected: bool) {
        let p = EventPattern::parse(pattern).expect("valid pattern");
        assert_eq!(p.matches(&normalize_event_type(event)), expected);
    }

    #[rstest]
    #[case("", "must not be empty")]
    #[case("ticket.*.created", "only allowed once, at the end")]
    #[case("*ticket", "only allowed once, at the end")]
    #[case("ticket**", "only allowed once, at the end")]
    #[case("ticket created", "contains ' '")]
    #[case("ticket?", "contains '?'")]
    fn bad_patterns_are_refused_naming_the_field(#[case] pattern: &str, #[case] msg: &str) {
        let e = EventPattern::parse(pattern).expect_err("invalid");
        assert_eq!(e.field, "event");
        assert!(e.message.contains(msg), "{e}");
    }

    #[test]
    fn published_types_take_no_wildcards() {
        assert!(validate_event_type("ticket.created").is_ok());
        assert!(validate_event_type("github:push/main").is_ok());
        let e = validate_event_type("ticket.*").expect_err("wildcard");
        assert!(e.message.contains("wildcards"), "{e}");
        assert!(validate_event_type("").is_err());
    }

    #[test]
    fn missed_policies_parse_and_round_trip() {
        assert_eq!("skip".parse(), Ok(MissedPolicy::Skip));
        assert_eq!("once".parse(), Ok(MissedPolicy::Once));
        assert_eq!("catch-up:3".parse(), Ok(MissedPolicy::CatchUp(3)));
        for bad in [
            "catch-up:0",
            "catch-up:x",
            "catchup:3",
            "always",
            "catch-up:100000",
        ] {
            let e = bad.parse::<MissedPolicy>().expect_err(bad);
            assert_eq!(e.field, "missed");
        }
        let json = serde_json::to_string(&MissedPolicy::CatchUp(4)).expect("json");
        assert_eq!(json, "\"catch-up:4\"");
        assert_eq!(
            serde_json::from_str::<MissedPolicy>(&json).expect("back"),
            MissedPolicy::CatchUp(4)
        );
    }

    #[test]
    fn chain_conditions() {
        use ExecutionStatus::*;
        assert!(ChainOn::Completed.matches(Completed));
        assert!(!ChainOn::Completed.matches(Failed));
        assert!(ChainOn::Failed.matches(TimedOut));
        assert!(ChainOn::Failed.matches(Incomplete));
        assert!(!ChainOn::Failed.matches(Completed));
        assert!(ChainOn::Any.matches(Completed) && ChainOn::Any.matches(Failed));
        assert!(
            !ChainOn::Any.matches(Cancelled),
            "a person's cancel stops the chain"
        );
        assert!(!ChainOn::Any.matches(Running));
    }

    #[test]
    fn configs_round_trip_as_tagged_json() {
        let c = TriggerConfig::Event {
            pattern: "ticket.*".into(),
            source: Some(SourceFilter {
                kind: SourceKind::Webhook,
                id: None,
            }),
        };
        let json = serde_json::to_value(&c).expect("json");
        assert_eq!(json["kind"], "event");
        assert_eq!(json["source"]["kind"], "webhook");
        assert_eq!(
            serde_json::from_value::<TriggerConfig>(json).expect("back"),
            c
        );
    }

    #[test]
    fn webhook_configs_stored_before_the_github_format_still_read() {
        let old: TriggerConfig = serde_json::from_str(r#"{"kind":"webhook"}"#).expect("old");
        assert_eq!(old, TriggerConfig::Webhook { github: false });
        let gh = serde_json::to_value(TriggerConfig::Webhook { github: true }).expect("json");
        assert_eq!(gh, serde_json::json!({"kind": "webhook", "github": true}));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = WebhookSecret::new("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}
