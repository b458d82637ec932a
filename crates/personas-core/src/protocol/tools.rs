//! The protocol as tools: the arguments of the MCP tools a run is given (`emit_event`,
//! `send_message`, `request_review`, `remember`, `run_persona`), as typed Rust structs.
//!
//! Each struct is both the tool's input schema (derived with schemars behind the `schema`
//! feature, so `tools/list` shows exactly what is decoded) and the decoder of a call's
//! arguments (unknown arguments refused, a wrong type named by its argument). A decoded call then
//! passes [`super::parse_message`], so a tool call and a protocol line written in the answer text
//! are accepted and refused by the same checks.

use super::{Priority, ProtocolMessage, Severity, parse_message};
use crate::decode::from_json_value;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One protocol tool of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolTool {
    EmitEvent,
    SendMessage,
    RequestReview,
    Remember,
    RunPersona,
}

impl ProtocolTool {
    /// Every protocol tool, in the order `tools/list` shows them.
    pub const ALL: [ProtocolTool; 5] = [
        ProtocolTool::EmitEvent,
        ProtocolTool::SendMessage,
        ProtocolTool::RequestReview,
        ProtocolTool::Remember,
        ProtocolTool::RunPersona,
    ];

    /// The tool's name (the CLI calls it `mcp__personas__<name>`).
    pub fn name(self) -> &'static str {
        match self {
            ProtocolTool::EmitEvent => "emit_event",
            ProtocolTool::SendMessage => "send_message",
            ProtocolTool::RequestReview => "request_review",
            ProtocolTool::Remember => "remember",
            ProtocolTool::RunPersona => "run_persona",
        }
    }

    /// The tool named `name`, if it is one.
    pub fn named(name: &str) -> Option<ProtocolTool> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What the model is told the tool does.
    pub fn description(self) -> &'static str {
        match self {
            ProtocolTool::EmitEvent => {
                "Publish an event on the Personas bus; personas subscribed to its type react to it."
            }
            ProtocolTool::SendMessage => "Send a message to the user's Personas inbox.",
            ProtocolTool::RequestReview => "Ask a person to review something before you go on.",
            ProtocolTool::Remember => "Remember something for your later runs.",
            ProtocolTool::RunPersona => {
                "Ask another persona to act (it runs with the given input)."
            }
        }
    }

    /// The protocol message a call stands for: the arguments decoded as the tool's type, then
    /// checked by the protocol's own parser. An error names the argument at fault.
    pub fn message(self, arguments: Value) -> Result<ProtocolMessage, String> {
        let arguments = match arguments {
            Value::Null => Value::Object(Map::new()),
            Value::Object(m) => Value::Object(m),
            other => return Err(format!("arguments must be an object, got {other}")),
        };
        let (key, body) = match self {
            ProtocolTool::EmitEvent => ("emit_event", body::<EmitEventArgs>(arguments)?),
            ProtocolTool::SendMessage => ("user_message", body::<SendMessageArgs>(arguments)?),
            ProtocolTool::RequestReview => ("manual_review", body::<RequestReviewArgs>(arguments)?),
            ProtocolTool::Remember => ("agent_memory", body::<RememberArgs>(arguments)?),
            ProtocolTool::RunPersona => {
                let args: RunPersonaArgs = decode(arguments)?;
                // The tool's argument is `persona`, the protocol's field `target`: check it here
                // so a refusal names the argument the model actually wrote.
                if args.persona.trim().is_empty() {
                    return Err("persona is required and must be a non-empty string".into());
                }
                let body = serde_json::json!({
                    "target": args.persona, "action": args.action, "input": args.input,
                });
                ("persona_action", body)
            }
        };
        parse_message(key, body)
    }
}

fn decode<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<T, String> {
    from_json_value(arguments).map_err(|e| e.to_string())
}

/// The decoded arguments re-encoded as the protocol body of the same field names.
fn body<T: serde::de::DeserializeOwned + Serialize>(arguments: Value) -> Result<Value, String> {
    let typed: T = decode(arguments)?;
    serde_json::to_value(typed).map_err(|e| format!("cannot encode the arguments: {e}"))
}

/// `emit_event`: an event on the bus, linked to this run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EmitEventArgs {
    /// The event type, e.g. `ticket.created`: letters, digits, '.', '_', '-' and ':'.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "schema", schemars(pattern(r"^[A-Za-z0-9._:-]+$")))]
    pub event_type: String,
    /// The payload subscribers receive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

/// `send_message`: a message in the user's inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SendMessageArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The message text.
    pub content: String,
    /// How urgent it is (normal when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
}

/// `request_review`: a review a person decides before the run goes on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RequestReviewArgs {
    /// What is to be decided.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How much is at stake (medium when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Actions the reviewer can choose from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggested_actions: Vec<String>,
}

/// `remember`: a memory this persona's later runs are given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RememberArgs {
    pub title: String,
    pub content: String,
    /// A grouping such as `fact` or `preference` (general when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// 1 (trivia) to 5 (essential); 3 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 5)))]
    pub importance: Option<u8>,
}

/// `run_persona`: another persona is asked to act.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunPersonaArgs {
    /// The name of the persona.
    pub persona: String,
    /// What it should do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The input of its run (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_become_the_messages_the_line_protocol_makes() {
        let m = ProtocolTool::RunPersona
            .message(json!({"persona": "B", "action": "go"}))
            .expect("message");
        assert!(matches!(m, ProtocolMessage::PersonaAction { ref target, .. } if target == "B"));
        let m = ProtocolTool::Remember
            .message(json!({"title": "t", "content": "c"}))
            .expect("message");
        assert!(
            matches!(m, ProtocolMessage::AgentMemory { importance: 3, ref category, .. } if category == "general")
        );
        assert_eq!(
            ProtocolTool::EmitEvent
                .message(json!({"type": "a.b"}))
                .expect("event"),
            ProtocolMessage::EmitEvent {
                event_type: "a.b".into(),
                data: json!({})
            }
        );
        for (tool, args, named) in [
            (ProtocolTool::EmitEvent, json!([1]), "arguments"),
            (
                ProtocolTool::EmitEvent,
                json!({"type": "has space"}),
                "type",
            ),
            (ProtocolTool::SendMessage, json!({"content": 5}), "content"),
            (
                ProtocolTool::SendMessage,
                json!({"content": "c", "colour": "red"}),
                "colour",
            ),
            (ProtocolTool::Remember, json!({"title": "t"}), "content"),
            (
                ProtocolTool::Remember,
                json!({"title": "t", "content": "c", "importance": 9}),
                "importance",
            ),
            (ProtocolTool::RunPersona, json!({"persona": " "}), "persona"),
        ] {
            let e = tool.message(args.clone()).expect_err("refused");
            assert!(e.contains(named), "{args}: {e}");
        }
        assert_eq!(
            ProtocolTool::named("remember"),
            Some(ProtocolTool::Remember)
        );
        assert_eq!(ProtocolTool::named("list_personas"), None);
    }
}
