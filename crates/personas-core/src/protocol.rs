//! The persona protocol: how an agent talks to the platform from inside its answer text.
//!
//! An agent writes a JSON object on a line of its own, with exactly one wrapper key:
//!
//! ```text
//! {"user_message": {"title": "Deploy done", "content": "v1.2 is live", "priority": "high"}}
//! {"emit_event": {"type": "ticket.created", "data": {"id": 42}}}
//! {"persona_action": {"target": "Reviewer", "action": "review", "input": {"pr": 7}}}
//! {"agent_memory": {"title": "Repo layout", "content": "...", "category": "fact", "importance": 4}}
//! {"manual_review": {"title": "Merge PR 7?", "description": "...", "severity": "high"}}
//! {"outcome_assessment": {"accomplished": false, "summary": "API was down"}}
//! ```
//!
//! [`scan_text`] finds these in a text block. A line that is clearly meant as a protocol message
//! (it opens a JSON object with a protocol key) but is malformed becomes a [`ProtocolWarning`];
//! warnings are recorded on the execution and never fail it. Code fences around the object are
//! tolerated, and an object pretty-printed over several lines is accepted too, because models do
//! that despite being asked not to.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod tools;

/// The wrapper keys, in the order the prompt documents them.
pub const KEYS: [&str; 6] = [
    "user_message",
    "emit_event",
    "persona_action",
    "agent_memory",
    "manual_review",
    "outcome_assessment",
];

/// One recognised protocol message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum ProtocolMessage {
    UserMessage {
        title: Option<String>,
        content: String,
        priority: Priority,
    },
    EmitEvent {
        event_type: String,
        data: Value,
    },
    PersonaAction {
        target: String,
        action: Option<String>,
        input: Option<Value>,
    },
    AgentMemory {
        title: String,
        content: String,
        category: String,
        importance: u8,
    },
    ManualReview {
        title: String,
        description: Option<String>,
        severity: Severity,
        suggested_actions: Vec<String>,
    },
    OutcomeAssessment {
        accomplished: bool,
        summary: String,
    },
}

impl ProtocolMessage {
    /// The wrapper key this message was written with.
    pub fn key(&self) -> &'static str {
        match self {
            ProtocolMessage::UserMessage { .. } => "user_message",
            ProtocolMessage::EmitEvent { .. } => "emit_event",
            ProtocolMessage::PersonaAction { .. } => "persona_action",
            ProtocolMessage::AgentMemory { .. } => "agent_memory",
            ProtocolMessage::ManualReview { .. } => "manual_review",
            ProtocolMessage::OutcomeAssessment { .. } => "outcome_assessment",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum Severity {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Stored and served as its lower-case name; parsing names the value and the choices.
macro_rules! parse_by_name {
    ($name:ident, $what:literal, [$($variant:ident),+]) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("unknown {} {s:?}; expected one of: {}", $what, names.join(", "))
                })
            }
        }
    };
}
parse_by_name!(Priority, "priority", [Low, Normal, High, Urgent]);
parse_by_name!(Severity, "severity", [Low, Medium, High, Critical]);

/// A line that tried to be a protocol message and failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolWarning {
    /// The wrapper key, when one could be read.
    pub key: Option<String>,
    /// What is wrong, naming the field.
    pub reason: String,
    /// The offending text, shortened.
    pub excerpt: String,
}

/// A scan result in text order.
pub type Scanned = Result<ProtocolMessage, ProtocolWarning>;

/// Longest object (in lines) accepted when an agent pretty-prints a protocol message.
const MAX_OBJECT_LINES: usize = 200;
const EXCERPT_CHARS: usize = 160;

/// Finds every protocol message (or failed attempt) in one assistant text block.
pub fn scan_text(text: &str) -> Vec<Scanned> {
    // Fast path: most text has no protocol key at all.
    if !KEYS.iter().any(|k| text.contains(k)) {
        return Vec::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = strip_fence_noise(lines[i]);
        let Some(key) = candidate_key(line).or_else(|| key_on_next_line(line, lines.get(i + 1)))
        else {
            i += 1;
            continue;
        };
        match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                out.push(interpret(v, line));
                i += 1;
            }
            Err(single_line_err) => {
                // Maybe the object continues on the following lines: read the first JSON value
                // of the window of lines starting here. It is read once, not once per added
                // line: that made text full of unclosed objects quadratic (2,000 such lines took
                // 11 s in a release build).
                let end = (i + MAX_OBJECT_LINES).min(lines.len());
                let joined = lines[i..end]
                    .iter()
                    .map(|l| strip_fence_noise(l))
                    .collect::<Vec<_>>()
                    .join("\n");
                match first_value_ending_a_line(&joined) {
                    Some((v, used)) => {
                        out.push(interpret(v, &joined[..used]));
                        i += joined[..used].matches('\n').count() + 1;
                    }
                    None => {
                        out.push(Err(ProtocolWarning {
                            key: Some(key.to_owned()),
                            reason: format!("invalid JSON: {single_line_err}"),
                            excerpt: excerpt(line),
                        }));
                        i += 1;
                    }
                }
            }
        }
    }
    out
}

/// The JSON value `text` starts with, and the bytes it takes, when it ends a line (nothing but
/// whitespace follows it on that line), as an object written over several lines does.
fn first_value_ending_a_line(text: &str) -> Option<(Value, usize)> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let v = values.next()?.ok()?;
    let used = values.byte_offset();
    let rest_of_line = text[used..].split('\n').next().unwrap_or_default();
    rest_of_line.trim().is_empty().then_some((v, used))
}

/// Removes markdown fence and quote decoration around a line, and surrounding whitespace.
fn strip_fence_noise(line: &str) -> &str {
    let t = line.trim();
    let t = t.strip_prefix('>').map(str::trim_start).unwrap_or(t);
    let t = t.trim_matches('`');
    let t = t.strip_prefix("json").unwrap_or(t);
    t.trim()
}

/// The protocol key a line opens an object with, if it does: `{"key"` (whitespace allowed).
fn candidate_key(line: &str) -> Option<&'static str> {
    let rest = line.strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    KEYS.into_iter()
        .find(|k| rest.starts_with(k) && rest[k.len()..].starts_with('"'))
}

/// The protocol key of an object pretty-printed the usual way (`JSON.stringify(v, null, 2)`,
/// `json.dumps(v, indent=2)`): `{` alone on its line and the key opening the next one.
fn key_on_next_line(line: &str, next: Option<&&str>) -> Option<&'static str> {
    if line != "{" {
        return None;
    }
    candidate_key(&format!("{{{}", strip_fence_noise(next?)))
}

fn excerpt(s: &str) -> String {
    let mut e: String = s.chars().take(EXCERPT_CHARS).collect();
    if s.chars().count() > EXCERPT_CHARS {
        e.push('…');
    }
    e
}

fn interpret(v: Value, source: &str) -> Scanned {
    let warn = |key: Option<&str>, reason: String| ProtocolWarning {
        key: key.map(str::to_owned),
        reason,
        excerpt: excerpt(source),
    };
    let Value::Object(outer) = v else {
        return Err(warn(None, "not a JSON object".into()));
    };
    if outer.len() != 1 {
        return Err(warn(
            None,
            format!(
                "a protocol object has exactly one key (one of {}); found {}",
                KEYS.join(", "),
                outer.len()
            ),
        ));
    }
    let Some((key, body)) = outer.into_iter().next() else {
        return Err(warn(None, "empty object".into()));
    };
    let Some(key) = KEYS.into_iter().find(|k| *k == key) else {
        return Err(warn(Some(&key), format!("unknown protocol key {key:?}")));
    };
    let Value::Object(body) = body else {
        return Err(warn(Some(key), format!("{key} must hold an object")));
    };
    parse_body(key, body).map_err(|reason| warn(Some(key), reason))
}

/// Builds a message from a wrapper key and its body, with the same checks as [`scan_text`].
/// Used by hosts that receive protocol messages as structured calls (the MCP server) so both
/// ways of talking to Personas accept and refuse exactly the same input.
pub fn parse_message(key: &str, body: Value) -> Result<ProtocolMessage, String> {
    let Some(key) = KEYS.into_iter().find(|k| *k == key) else {
        return Err(format!("unknown protocol key {key:?}"));
    };
    match body {
        Value::Object(b) => parse_body(key, b),
        _ => Err(format!("{key} must hold an object")),
    }
}

fn parse_body(key: &str, mut b: Map<String, Value>) -> Result<ProtocolMessage, String> {
    let msg = match key {
        "user_message" => ProtocolMessage::UserMessage {
            title: opt_str(&mut b, "title")?,
            content: req_str(&mut b, "content")?,
            priority: opt_enum(&mut b, "priority")?.unwrap_or_default(),
        },
        "emit_event" => {
            let event_type = req_str(&mut b, "type")?;
            if !event_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
            {
                return Err(format!(
                    "type {event_type:?} may hold only letters, digits, '.', '_', '-' and ':'"
                ));
            }
            ProtocolMessage::EmitEvent {
                event_type,
                data: b.remove("data").unwrap_or(Value::Object(Map::new())),
            }
        }
        "persona_action" => ProtocolMessage::PersonaAction {
            target: req_str(&mut b, "target")?,
            action: opt_str(&mut b, "action")?,
            input: b.remove("input"),
        },
        "agent_memory" => {
            let importance = match b.remove("importance") {
                None | Some(Value::Null) => 3,
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(i @ 1..=5) => i as u8,
                    _ => return Err(format!("importance must be a whole number 1-5, got {n}")),
                },
                Some(other) => {
                    return Err(format!(
                        "importance must be a whole number 1-5, got {other}"
                    ));
                }
            };
            ProtocolMessage::AgentMemory {
                title: req_str(&mut b, "title")?,
                content: req_str(&mut b, "content")?,
                category: opt_str(&mut b, "category")?.unwrap_or_else(|| "general".into()),
                importance,
            }
        }
        "manual_review" => ProtocolMessage::ManualReview {
            title: req_str(&mut b, "title")?,
            description: opt_str(&mut b, "description")?,
            severity: opt_enum(&mut b, "severity")?.unwrap_or_default(),
            suggested_actions: match b.remove("suggested_actions") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .into_iter()
                    .map(|i| match i {
                        Value::String(s) => Ok(s),
                        other => Err(format!(
                            "suggested_actions items must be strings, got {other}"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(format!(
                        "suggested_actions must be a list of strings, got {other}"
                    ));
                }
            },
        },
        "outcome_assessment" => ProtocolMessage::OutcomeAssessment {
            accomplished: match b.remove("accomplished") {
                Some(Value::Bool(v)) => v,
                Some(other) => {
                    return Err(format!("accomplished must be true or false, got {other}"));
                }
                None => return Err("accomplished is required (true or false)".into()),
            },
            summary: opt_str(&mut b, "summary")?.unwrap_or_default(),
        },
        other => return Err(format!("unknown protocol key {other:?}")),
    };
    Ok(msg)
}

fn req_str(b: &mut Map<String, Value>, field: &str) -> Result<String, String> {
    match opt_str(b, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(format!(
            "{field} is required and must be a non-empty string"
        )),
    }
}

fn opt_str(b: &mut Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match b.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{field} must be a string, got {other}")),
    }
}

fn opt_enum<T: serde::de::DeserializeOwned>(
    b: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<T>, String> {
    match b.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let shown = v.to_string();
            let lowered = match v {
                Value::String(s) => Value::String(s.to_ascii_lowercase()),
                other => other,
            };
            serde_json::from_value(lowered)
                .map(Some)
                .map_err(|_| format!("{field} has an unknown value {shown}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn one(text: &str) -> Scanned {
        let mut all = scan_text(text);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn each_message_kind_is_recognised() {
        let text = r#"Working on it.
{"user_message": {"title": "Done", "content": "All good", "priority": "HIGH"}}
{"emit_event": {"type": "ticket.created", "data": {"id": 42}}}
{"persona_action": {"target": "Reviewer", "input": {"pr": 7}}}
{"agent_memory": {"title": "Layout", "content": "src/ holds code", "importance": 5}}
{"manual_review": {"title": "Merge?", "severity": "critical", "suggested_actions": ["merge", "close"]}}
{"outcome_assessment": {"accomplished": false, "summary": "API down"}}
Bye."#;
        let all: Vec<_> = scan_text(text)
            .into_iter()
            .map(|r| r.expect("valid"))
            .collect();
        assert_eq!(
            all.iter().map(ProtocolMessage::key).collect::<Vec<_>>(),
            KEYS.to_vec()
        );
        assert_eq!(
            all[0],
            ProtocolMessage::UserMessage {
                title: Some("Done".into()),
                content: "All good".into(),
                priority: Priority::High
            }
        );
        assert_eq!(
            all[1],
            ProtocolMessage::EmitEvent {
                event_type: "ticket.created".into(),
                data: json!({"id": 42})
            }
        );
        assert!(
            matches!(&all[3], ProtocolMessage::AgentMemory { importance: 5, category, .. } if category == "general")
        );
        assert!(
            matches!(&all[4], ProtocolMessage::ManualReview { severity: Severity::Critical, suggested_actions, .. } if suggested_actions.len() == 2)
        );
        assert_eq!(
            all[5],
            ProtocolMessage::OutcomeAssessment {
                accomplished: false,
                summary: "API down".into()
            }
        );
    }

    #[test]
    fn fenced_and_pretty_printed_objects_are_accepted() {
        let text = "```json\n{\"emit_event\": {\n  \"type\": \"a.b\",\n  \"data\": {}\n}}\n```";
        assert!(matches!(one(text), Ok(ProtocolMessage::EmitEvent { .. })));
        let inline = "`{\"user_message\": {\"content\": \"hi\"}}`";
        assert!(matches!(
            one(inline),
            Ok(ProtocolMessage::UserMessage { .. })
        ));
    }

    #[test]
    fn malformed_messages_become_warnings_naming_the_problem() {
        let cases = [
            (r#"{"user_message": {"title": "x"}}"#, "content"),
            (r#"{"emit_event": {"type": "has space"}}"#, "type"),
            (
                r#"{"agent_memory": {"title": "t", "content": "c", "importance": 9}}"#,
                "importance",
            ),
            (
                r#"{"outcome_assessment": {"summary": "s"}}"#,
                "accomplished",
            ),
            (
                r#"{"manual_review": {"title": "t", "severity": "apocalyptic"}}"#,
                "severity",
            ),
            (
                r#"{"user_message": {"content": "x"}, "emit_event": {}}"#,
                "exactly one key",
            ),
            (r#"{"user_message": "just text"}"#, "must hold an object"),
            (
                r#"{"user_message": {"content": "unterminated}"#,
                "invalid JSON",
            ),
        ];
        for (text, needle) in cases {
            let w = one(text).expect_err(text);
            assert!(w.reason.contains(needle), "{text}: {}", w.reason);
        }
    }

    #[test]
    fn prose_mentioning_keys_is_not_a_message() {
        assert!(scan_text("I could send a user_message later.").is_empty());
        assert!(scan_text(r#"{"other": {"user_message": 1}}"#).is_empty());
    }

    proptest! {
        #[test]
        fn scanning_never_panics(s in "\\PC{0,400}") {
            let _ = scan_text(&s);
        }

        #[test]
        fn any_valid_user_message_round_trips(content in "[^\\n\\r]{1,80}") {
            prop_assume!(!content.trim().is_empty());
            let line = json!({"user_message": {"content": content.clone()}}).to_string();
            let got = one(&line).expect("valid");
            prop_assert_eq!(got, ProtocolMessage::UserMessage { title: None, content, priority: Priority::Normal });
        }
    }
}
