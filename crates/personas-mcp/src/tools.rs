//! The tools each scope offers: their JSON schemas, how a protocol tool's arguments become a
//! [`ProtocolMessage`], and the persona-control tools of the standalone scope.

use super::{Scope, ToolError};
use personas_core::{ExecutionId, ExecutionStatus};
use personas_store::{ExecutionFilter, NewExecution, Store};
use serde_json::{Map, Value, json};

fn tool(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "description": description, "inputSchema": schema})
}

/// The tools of a scope, with JSON schemas.
pub fn list(scope: &Scope) -> Vec<Value> {
    match scope {
        Scope::Run { .. } => vec![
            tool(
                "emit_event",
                "Publish an event on the Personas bus; personas subscribed to its type react to it.",
                json!({
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "pattern": "^[A-Za-z0-9._:-]+$", "description": "event type, e.g. ticket.created"},
                        "data": {"type": "object", "description": "payload"}
                    },
                    "required": ["type"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "send_message",
                "Send a message to the user's Personas inbox.",
                json!({
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "content": {"type": "string"},
                        "priority": {"type": "string", "enum": ["low", "normal", "high", "urgent"]}
                    },
                    "required": ["content"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "request_review",
                "Ask a person to review something before you go on.",
                json!({
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                        "severity": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                        "suggested_actions": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["title"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "remember",
                "Remember something for your later runs.",
                json!({
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "content": {"type": "string"},
                        "category": {"type": "string"},
                        "importance": {"type": "integer", "minimum": 1, "maximum": 5}
                    },
                    "required": ["title", "content"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "run_persona",
                "Ask another persona to act (it runs with the given input).",
                json!({
                    "type": "object",
                    "properties": {
                        "persona": {"type": "string", "description": "name of the persona"},
                        "action": {"type": "string"},
                        "input": {"description": "input for its run"}
                    },
                    "required": ["persona"],
                    "additionalProperties": false
                }),
            ),
        ],
        Scope::Standalone => vec![
            tool(
                "list_personas",
                "List the personas: name, id, model, whether enabled.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            tool(
                "run_persona",
                "Queue a run of a persona; the Personas runtime (personas up) runs it.",
                json!({
                    "type": "object",
                    "properties": {
                        "persona": {"type": "string", "description": "name or id"},
                        "input": {"description": "input for the run (any JSON)"}
                    },
                    "required": ["persona"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "recent_executions",
                "Recent executions, newest first, optionally of one persona.",
                json!({
                    "type": "object",
                    "properties": {
                        "persona": {"type": "string"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100}
                    },
                    "additionalProperties": false
                }),
            ),
            tool(
                "get_execution",
                "One execution: status, result, error, cost.",
                json!({
                    "type": "object",
                    "properties": {"id": {"type": "string", "description": "id or unique prefix"}},
                    "required": ["id"],
                    "additionalProperties": false
                }),
            ),
            tool(
                "pending_reviews",
                "Reviews waiting for a person's decision.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
        ],
    }
}

fn object(args: Value) -> Result<Map<String, Value>, ToolError> {
    match args {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(ToolError(format!(
            "arguments must be an object, got {other}"
        ))),
    }
}

fn text_of<T: serde::Serialize>(v: &T) -> Result<String, ToolError> {
    serde_json::to_string_pretty(v).map_err(|e| ToolError(format!("cannot encode the answer: {e}")))
}

/// A persona-control tool.
pub async fn standalone(store: &Store, name: &str, args: Value) -> Result<String, ToolError> {
    let a = object(args)?;
    let store = store.clone();
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let err = |e: personas_store::StoreError| ToolError(e.to_string());
        match name.as_str() {
            "list_personas" => {
                let list: Vec<Value> = store
                    .personas()
                    .list()
                    .map_err(err)?
                    .into_iter()
                    .map(|p| {
                        json!({"name": p.name, "id": p.id, "description": p.description,
                               "model": p.model, "enabled": p.enabled})
                    })
                    .collect();
                text_of(&list)
            }
            "run_persona" => {
                let who = a
                    .get("persona")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ToolError("persona is required".into()))?;
                let p = store.personas().find(who).map_err(err)?;
                let exec = store
                    .executions()
                    .enqueue(&NewExecution::manual(p.id.clone(), a.get("input").cloned()))
                    .map_err(err)?;
                Ok(format!(
                    "queued execution {} of {}; it runs when the Personas runtime (personas up) \
                     picks it up. Use get_execution to follow it.",
                    exec.id, p.name
                ))
            }
            "recent_executions" => {
                let persona_id = match a.get("persona").and_then(Value::as_str) {
                    Some(n) => Some(store.personas().find(n).map_err(err)?.id),
                    None => None,
                };
                let limit = a
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(20)
                    .clamp(1, 100) as u32;
                let list: Vec<Value> = store
                    .executions()
                    .list(&ExecutionFilter {
                        persona_id,
                        status: None,
                        limit: Some(limit),
                    })
                    .map_err(err)?
                    .into_iter()
                    .map(|e| {
                        json!({"id": e.id, "persona": e.persona_name, "status": e.status,
                               "queued_at": e.queued_at, "cost_usd": e.cost_usd,
                               "error": e.error_message})
                    })
                    .collect();
                text_of(&list)
            }
            "get_execution" => {
                let id = a
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ToolError("id is required".into()))?;
                let e = store.executions().find(id).map_err(err)?;
                text_of(&json!({
                    "id": e.id, "persona": e.persona_name, "status": e.status,
                    "result": e.result_text, "error_class": e.error_class,
                    "error": e.error_message, "permission_denials": e.permission_denials,
                    "cost_usd": e.cost_usd, "num_turns": e.num_turns,
                    "queued_at": e.queued_at, "finished_at": e.finished_at,
                    "done": e.status.is_terminal() && e.status != ExecutionStatus::Queued,
                }))
            }
            "pending_reviews" => {
                let list = store
                    .protocol()
                    .reviews(
                        Some(personas_core::ReviewStatus::Pending),
                        None::<&ExecutionId>,
                    )
                    .map_err(err)?;
                text_of(&list)
            }
            other => Err(ToolError(format!("unknown tool {other}"))),
        }
    })
    .await
    .map_err(|e| ToolError(format!("the tool call failed: {e}")))?
}
