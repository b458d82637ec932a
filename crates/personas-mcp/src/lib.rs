//! `personas mcp`: a Model Context Protocol server on stdio (JSON-RPC 2.0, one message per line).
//!
//! Two scopes, chosen at start:
//! - **Run** — started by a run's CLI through the `--mcp-config` file the runner wrote, with
//!   `PERSONAS_MCP_EXECUTION_ID` and `PERSONAS_MCP_TOKEN` in its environment. It offers the
//!   protocol tools (`emit_event`, `send_message`, `request_review`, `remember`, `run_persona`).
//!   It stores nothing itself: every call is checked against the store (the token must hash to
//!   the one issued for that execution, which must still be running) and then forwarded over
//!   the run's tool channel (`PERSONAS_MCP_ENDPOINT`, loopback, token-authenticated) to the
//!   runner, which redacts the arguments with the run's redactor and applies them as the same
//!   `ProtocolMessage` the JSON-line protocol produces (`runner::mcp::apply_call`). So the
//!   secrets a run can see never have to reach this process.
//! - **Standalone** — started by a person from Claude Code or Claude Desktop: persona control
//!   (list personas, run one, recent executions, one execution, pending reviews).
//!
//! The protocol is small enough that it is implemented here directly (initialize, ping,
//! tools/list, tools/call); messages this server does not know get JSON-RPC errors.
#![forbid(unsafe_code)]

mod tools;

use personas_engine::runner::mcp::{ENDPOINT_VAR, EXECUTION_VAR, TOKEN_VAR, token_hash};
use personas_store::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Protocol versions this server speaks; the client's choice is echoed when it is one of them.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Longest accepted message (a tool call with a large event payload still fits).
const MAX_LINE: usize = 8 * 1024 * 1024;

/// Which tools the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Acting for one run; the token is checked on every call, which goes to the run's tool
    /// channel at `endpoint`.
    Run {
        execution_id: String,
        token: String,
        endpoint: Option<String>,
    },
    /// A person controlling personas.
    Standalone,
}

impl Scope {
    /// From `PERSONAS_MCP_EXECUTION_ID` / `PERSONAS_MCP_TOKEN`: both set means a run.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Scope, String> {
        match (env(EXECUTION_VAR), env(TOKEN_VAR)) {
            (Some(e), Some(t)) if !e.is_empty() && !t.is_empty() => Ok(Scope::Run {
                execution_id: e,
                token: t,
                endpoint: env(ENDPOINT_VAR).filter(|s| !s.is_empty()),
            }),
            (None, None) => Ok(Scope::Standalone),
            _ => Err(format!(
                "{EXECUTION_VAR} and {TOKEN_VAR} go together: set both (a run) or neither (persona control)"
            )),
        }
    }
}

/// The server state.
pub struct Server {
    store: Store,
    scope: Scope,
}

/// A tool call that did not work: reported to the model as a tool error, not a protocol error.
#[derive(Debug)]
pub struct ToolError(pub String);

impl Server {
    pub fn new(store: Store, scope: Scope) -> Self {
        Server { store, scope }
    }

    /// Serves until the input closes.
    pub async fn serve<R, W>(&self, reader: R, mut writer: W) -> std::io::Result<()>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut reader = reader;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).await? == 0 {
                break;
            }
            // Bytes that are not UTF-8 get a parse error like any other junk; they must not end
            // the server (reading them as text lines would fail the whole stream).
            let Ok(line) = std::str::from_utf8(&buf) else {
                self.reply(
                    &mut writer,
                    error_reply(Value::Null, -32700, "parse error: not UTF-8"),
                )
                .await?;
                continue;
            };
            let line = line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let reply = if line.len() > MAX_LINE {
                Some(error_reply(Value::Null, -32600, "message too large"))
            } else {
                self.handle_line(line).await
            };
            if let Some(reply) = reply {
                self.reply(&mut writer, reply).await?;
            }
        }
        Ok(())
    }

    async fn reply<W: AsyncWrite + Unpin>(
        &self,
        writer: &mut W,
        reply: Value,
    ) -> std::io::Result<()> {
        let mut text = reply.to_string();
        text.push('\n');
        writer.write_all(text.as_bytes()).await?;
        writer.flush().await
    }

    /// One incoming message; the reply, if it needs one.
    pub async fn handle_line(&self, line: &str) -> Option<Value> {
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return Some(error_reply(
                    Value::Null,
                    -32700,
                    &format!("parse error: {e}"),
                ));
            }
        };
        let Some(obj) = msg.as_object() else {
            return Some(error_reply(
                Value::Null,
                -32600,
                "a message must be a JSON object",
            ));
        };
        let id = obj.get("id").cloned();
        let Some(method) = obj.get("method").and_then(Value::as_str) else {
            // A response to something we never ask, or junk: nothing to answer.
            return None;
        };
        let params = obj.get("params").cloned().unwrap_or(Value::Null);
        let id = id?; // notifications (no id) get no reply
        let result = match method {
            "initialize" => Ok(self.initialize(&params)),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({ "tools": tools::list(&self.scope) })),
            "tools/call" => self.call(&params).await,
            other => Err((-32601, format!("method not found: {other}"))),
        };
        Some(match result {
            Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
            Err((code, message)) => error_reply(id, code, &message),
        })
    }

    fn initialize(&self, params: &Value) -> Value {
        let asked = params.get("protocolVersion").and_then(Value::as_str);
        let version = asked
            .filter(|v| PROTOCOL_VERSIONS.contains(v))
            .unwrap_or(PROTOCOL_VERSIONS[1]);
        let instructions = match self.scope {
            Scope::Run { .. } => {
                "Personas protocol tools: tell the user something, emit events other personas \
                 react to, ask for a review, remember things for later runs, ask another \
                 persona to act. Everything is linked to this run."
            }
            Scope::Standalone => {
                "Control Personas: list personas, run one, look at recent executions and \
                 pending reviews."
            }
        };
        json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "personas", "version": env!("CARGO_PKG_VERSION")},
            "instructions": instructions,
        })
    }

    async fn call(&self, params: &Value) -> Result<Value, (i64, String)> {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or((-32602, "tools/call needs a tool name".to_string()))?;
        let args = params.get("arguments").cloned().unwrap_or(json!({}));
        if !tools::list(&self.scope)
            .iter()
            .any(|t| t["name"].as_str() == Some(name))
        {
            return Err((-32602, format!("unknown tool: {name}")));
        }
        let outcome = match &self.scope {
            Scope::Run {
                execution_id,
                token,
                endpoint,
            } => {
                self.run_tool(execution_id, token, endpoint.as_deref(), name, args)
                    .await
            }
            Scope::Standalone => tools::standalone(&self.store, name, args).await,
        };
        Ok(match outcome {
            Ok(text) => json!({"content": [{"type": "text", "text": text}], "isError": false}),
            Err(ToolError(text)) => {
                json!({"content": [{"type": "text", "text": text}], "isError": true})
            }
        })
    }

    /// A protocol tool, for the run the token proves, applied by that run's runner.
    async fn run_tool(
        &self,
        execution_id: &str,
        token: &str,
        endpoint: Option<&str>,
        name: &str,
        args: Value,
    ) -> Result<String, ToolError> {
        let (store, exec_id, hash) = (
            self.store.clone(),
            execution_id.to_string(),
            token_hash(token),
        );
        tokio::task::spawn_blocking(move || {
            let owner = store
                .credentials()
                .run_token_execution(&hash)
                .map_err(|e| ToolError(format!("cannot check the run token: {e}")))?;
            match owner {
                Some(o) if o == exec_id => Ok(()),
                Some(_) => Err(ToolError(format!(
                    "rejected: this token belongs to another execution, not {exec_id}"
                ))),
                None => Err(ToolError(
                    "rejected: the run token is not valid (unknown, or its execution is no \
                     longer running)"
                        .into(),
                )),
            }
        })
        .await
        .map_err(|e| ToolError(format!("the tool call failed: {e}")))??;
        let endpoint = endpoint.ok_or_else(|| {
            ToolError(format!(
                "rejected: {ENDPOINT_VAR} is not set, so there is no run to apply the call"
            ))
        })?;
        let reply = personas_engine::runner::mcp::forward(endpoint, token, name, args)
            .await
            .map_err(ToolError)?;
        if reply.ok {
            Ok(reply.text)
        } else {
            Err(ToolError(reply.text))
        }
    }
}

fn error_reply(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests;
