//! The run scope: the protocol tools of one run, forwarded to its runner.
//!
//! The tools and their input schemas come from the typed arguments in
//! `personas_core::protocol::tools`, through the same schema function as the OpenAPI document
//! (`personas_api::schema::json_schema`). A call is sent, unchanged, over the run's tool channel
//! (`personas_engine::runner::mcp::forward`); the runner checks the token, redacts, decodes the
//! arguments with those same types and stores the result. This process holds no store and no
//! secret but the run's token.

use crate::{implementation, tool_result, unknown_tool};
use personas_api::schema::json_schema;
use personas_core::Secret;
use personas_core::protocol::tools::{
    EmitEventArgs, ProtocolTool, RememberArgs, RequestReviewArgs, RunPersonaArgs, SendMessageArgs,
};
use personas_engine::runner::mcp::{ENDPOINT_VAR, forward};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value};

const INSTRUCTIONS: &str = "Personas protocol tools: tell the user something, emit events other \
    personas react to, ask for a review, remember things for later runs, ask another persona to \
    act. Everything is linked to this run.";

/// The MCP server of one run.
pub struct RunServer {
    execution_id: String,
    token: Secret,
    /// The run's tool channel (`127.0.0.1:<port>`); without one no call can be applied.
    endpoint: Option<String>,
    tools: Vec<Tool>,
}

/// The input schema of a protocol tool: its argument type's.
fn input_schema(tool: ProtocolTool) -> Map<String, Value> {
    match tool {
        ProtocolTool::EmitEvent => json_schema::<EmitEventArgs>(),
        ProtocolTool::SendMessage => json_schema::<SendMessageArgs>(),
        ProtocolTool::RequestReview => json_schema::<RequestReviewArgs>(),
        ProtocolTool::Remember => json_schema::<RememberArgs>(),
        ProtocolTool::RunPersona => json_schema::<RunPersonaArgs>(),
    }
}

/// Every protocol tool as an MCP tool.
pub fn tools() -> Vec<Tool> {
    ProtocolTool::ALL
        .into_iter()
        .map(|t| Tool::new(t.name(), t.description(), input_schema(t)))
        .collect()
}

impl RunServer {
    pub fn new(execution_id: String, token: Secret, endpoint: Option<String>) -> RunServer {
        RunServer {
            execution_id,
            token,
            endpoint,
            tools: tools(),
        }
    }

    /// The execution this server acts for.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// Sends one call to the run; `(ok, text)` is what the model is told.
    async fn apply(&self, tool: ProtocolTool, arguments: Value) -> (bool, String) {
        let Some(endpoint) = &self.endpoint else {
            return (
                false,
                format!(
                    "rejected: {ENDPOINT_VAR} is not set, so there is no run of execution {} to \
                     apply the call",
                    self.execution_id
                ),
            );
        };
        match forward(endpoint, self.token.expose(), tool.name(), arguments).await {
            Ok(reply) => (reply.ok, reply.text),
            Err(e) => (false, e),
        }
    }
}

impl ServerHandler for RunServer {
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
        let tool = ProtocolTool::named(&request.name).ok_or_else(|| unknown_tool(&request.name))?;
        let arguments = request.arguments.map_or(Value::Null, Value::Object);
        let (ok, text) = self.apply(tool, arguments).await;
        Ok(tool_result(ok, text).into())
    }
}
