//! `personas mcp`: a Model Context Protocol server on stdio, built on the official Rust SDK
//! (`rmcp`), which owns the protocol (JSON-RPC framing, `initialize` and version negotiation,
//! `ping`, cancellation, malformed input). This crate only says which tools there are and what a
//! call does.
//!
//! Two scopes, chosen at start ([`Scope::from_env`]):
//! - **Run** ([`RunServer`]) — started by a run's CLI through the `--mcp-config` file the
//!   runner wrote, with `PERSONAS_MCP_EXECUTION_ID`, `PERSONAS_MCP_TOKEN` and
//!   `PERSONAS_MCP_ENDPOINT` in its environment. It offers the protocol tools (`emit_event`,
//!   `send_message`, `request_review`, `remember`, `run_persona`), whose input schemas are
//!   derived from their typed arguments (`personas_core::protocol::tools`). It stores nothing
//!   and opens no store: every call is forwarded over the run's tool channel (loopback,
//!   `personas_engine::runner::mcp`) to the runner, which accepts only that run's token, exists
//!   only while the run runs, redacts the arguments with the run's redactor and applies them as
//!   the same `ProtocolMessage` the JSON-line protocol produces. So the secrets a run can see
//!   never have to reach this process, and a token of another run or of a finished run is
//!   refused there.
//! - **Standalone** ([`ControlServer`]) — started by a person from Claude Code or Claude Desktop:
//!   persona control, one tool per operation of the allow-list [`control::ALLOWED`], generated
//!   from the `personas-api` operation table (name, doc, request schema) and called through
//!   `personas_api::dispatch` on any [`personas_api::Operations`] — in `personas mcp`, the
//!   client of the running runtime (or of the in-process API when none runs). `tools/list` and
//!   `/api/openapi.json` describe each request with the same schema function.
#![forbid(unsafe_code)]

pub mod control;
pub mod run;

pub use control::ControlServer;
pub use run::RunServer;

use personas_core::Secret;
use personas_engine::runner::mcp::{ENDPOINT_VAR, EXECUTION_VAR, TOKEN_VAR};
use rmcp::ServiceExt;
use rmcp::service::{QuitReason, ServerInitializeError};
use tokio::io::{AsyncRead, AsyncWrite};

/// Which tools the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Acting for one run: calls go to the run's tool channel at `endpoint` with `token`.
    Run {
        execution_id: String,
        token: Secret,
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
                token: Secret::new(t),
                endpoint: env(ENDPOINT_VAR).filter(|s| !s.is_empty()),
            }),
            (None, None) => Ok(Scope::Standalone),
            _ => Err(format!(
                "{EXECUTION_VAR} and {TOKEN_VAR} go together: set both (a run) or neither (persona control)"
            )),
        }
    }
}

/// Why serving ended other than by the client closing the connection.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Boxed: the SDK's error carries the message that failed, hundreds of bytes.
    #[error("the MCP handshake failed: {0}")]
    Handshake(Box<ServerInitializeError>),
    #[error("the MCP server stopped: {0}")]
    Stopped(String),
}

/// Serves `handler` on one connection (stdin/stdout in `personas mcp`) until the client closes
/// it. A client that goes away before or after the handshake is a normal end.
pub async fn serve<S, R, W>(handler: S, reader: R, writer: W) -> Result<(), ServeError>
where
    S: rmcp::ServerHandler,
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let running = match handler.serve((reader, writer)).await {
        Ok(r) => r,
        Err(ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
        Err(e) => return Err(ServeError::Handshake(Box::new(e))),
    };
    match running.waiting().await {
        Ok(QuitReason::JoinError(e)) | Err(e) => Err(ServeError::Stopped(e.to_string())),
        // Closed or cancelled (`QuitReason` may grow: any other end is a normal one too).
        Ok(_) => Ok(()),
    }
}

/// Serves `handler` on this process's stdin and stdout (through the SDK's pipe transport, which
/// uses the I/O reactor instead of a blocking thread per read when both are pipes, as they are
/// under an MCP client).
pub async fn serve_stdio<S: rmcp::ServerHandler>(handler: S) -> Result<(), ServeError> {
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    serve(handler, stdin, stdout).await
}

/// The server's name and version in the `initialize` answer.
fn implementation() -> rmcp::model::Implementation {
    rmcp::model::Implementation::new("personas", env!("CARGO_PKG_VERSION"))
}

/// A tool result the model reads: `text`, marked as an error or not.
fn tool_result(ok: bool, text: String) -> rmcp::model::CallToolResult {
    let content = vec![rmcp::model::ContentBlock::text(text)];
    if ok {
        rmcp::model::CallToolResult::success(content)
    } else {
        rmcp::model::CallToolResult::error(content)
    }
}

/// The protocol error for a tool this server does not offer (the spec's "Unknown tool",
/// JSON-RPC invalid params).
fn unknown_tool(name: &str) -> rmcp::ErrorData {
    rmcp::ErrorData::invalid_params(format!("unknown tool: {name}"), None)
}

#[cfg(test)]
mod tests;
