//! The standalone scope: persona control for a person's Claude Code or Claude Desktop, one tool
//! per operation of [`ALLOWED`], generated from the `personas-api` operation table.
//!
//! A tool's name is the operation's, its description the operation's doc, its `inputSchema` the
//! request schema `personas_api::schema::request_schema` gives (the function the OpenAPI
//! document's schemas come from), and a call is `personas_api::dispatch` on the
//! [`Operations`] the server was given. A refused call comes back as a tool error whose text is
//! the API's `{code, message, field}`.
//!
//! The allow-list is read-mostly plus actions a person would take from a chat without a second
//! thought (run or cancel a persona, decide a review, emit an event). Never offered: anything
//! touching credentials, the vault, settings, custom tools or channels, and deletions.

use crate::{implementation, tool_result, unknown_tool};
use personas_api::{OPERATIONS, Operations, dispatch, schema::request_schema};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

/// What an allowed operation does to the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Only reads (the tool is annotated read-only).
    Reads,
    /// Changes something (queues a run, decides a review, publishes an event).
    Acts,
}

/// The operations offered as tools, in `tools/list` order.
pub const ALLOWED: &[(&str, Effect)] = &[
    ("list_personas", Effect::Reads),
    ("get_persona", Effect::Reads),
    ("run_persona", Effect::Acts),
    ("list_executions", Effect::Reads),
    ("get_execution", Effect::Reads),
    ("execution_output", Effect::Reads),
    ("cancel_execution", Effect::Acts),
    ("list_messages", Effect::Reads),
    ("list_memories", Effect::Reads),
    ("list_reviews", Effect::Reads),
    ("decide_review", Effect::Acts),
    ("list_events", Effect::Reads),
    ("get_event", Effect::Reads),
    ("emit_event", Effect::Acts),
    ("list_triggers", Effect::Reads),
    ("get_stats", Effect::Reads),
];

const INSTRUCTIONS: &str = "Control Personas: list personas and run one, follow executions and \
    their output, read the inbox and memories, decide pending reviews, look at the event bus and \
    triggers. Each tool is one operation of the Personas API; an error is its {code, message, \
    field}.";

/// The tools of [`ALLOWED`], generated from the operation table. An allow-listed name the table
/// does not have is an error naming it (a test keeps the list and the table in step).
pub fn tools() -> Result<Vec<Tool>, String> {
    ALLOWED
        .iter()
        .map(|&(name, effect)| {
            let op = OPERATIONS
                .iter()
                .find(|o| o.name == name)
                .ok_or_else(|| format!("the MCP allow-list names {name}, which is no operation"))?;
            let schema =
                request_schema(name).ok_or_else(|| format!("no request schema for {name}"))?;
            let annotations = ToolAnnotations::new()
                .read_only(effect == Effect::Reads)
                .destructive(false);
            Ok(Tool::new(name, op.doc.trim(), schema).annotate(annotations))
        })
        .collect()
}

/// The persona-control server over the operations `O`.
pub struct ControlServer<O> {
    ops: O,
    tools: Vec<Tool>,
}

impl<O: Operations + 'static> ControlServer<O> {
    pub fn new(ops: O) -> Result<ControlServer<O>, String> {
        Ok(ControlServer {
            ops,
            tools: tools()?,
        })
    }
}

impl<O: Operations + 'static> ServerHandler for ControlServer<O> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(implementation())
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.tools.iter().any(|t| t.name == request.name) {
            return Err(unknown_tool(&request.name));
        }
        let input = request.arguments.map_or(Value::Null, Value::Object);
        let (ok, text) = match dispatch(&self.ops, &request.name, input).await {
            Ok(response) => (true, response.to_string()),
            // `{code, message, field}`, as the HTTP API answers it.
            Err(e) => (
                false,
                serde_json::to_string(&e).unwrap_or_else(|_| e.message.clone()),
            ),
        };
        Ok(tool_result(ok, text).into())
    }
}
