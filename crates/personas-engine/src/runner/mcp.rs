//! The run's MCP server: a per-run token, the `--mcp-config` file that makes the CLI start
//! `personas mcp` with it, and the run's tool channel.
//!
//! The token proves to the run's tool channel that a call comes from that run's MCP server; only
//! its SHA-256 hash is stored, and it stops working when the execution ends (the channel closes).
//! The channel is the only check: the MCP server opens no store. It travels in the config file's `env`
//! block (the file is mode 0600 in a 0700 directory and removed when the run ends), never in
//! argv, where other users could read it in the process table.
//!
//! The MCP server stores nothing itself: it forwards each protocol tool call over the run's
//! **tool channel** — a loopback TCP listener the runner opens for that run, whose address is
//! in the config file and which accepts only calls carrying the run's token — to the runner,
//! which holds the run's redactor. There the arguments are redacted, turned into the same
//! [`ProtocolMessage`] the JSON-line protocol produces and applied by the same code, so one gate
//! covers both ways in and the MCP process never needs a secret (see docs/architecture.md).

use super::protocol::Applied;
use crate::events::EventBus;
use personas_core::protocol::ProtocolMessage;
use personas_core::protocol::tools::ProtocolTool;
use personas_core::redact::{Redactor, redact_json};
use personas_core::{Execution, Persona, Secret};
use personas_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// The server's name in the config; the CLI calls its tools `mcp__personas__<tool>`.
pub const SERVER_NAME: &str = "personas";
/// Permission rule that allows every tool of the server.
pub const ALLOW_RULE: &str = "mcp__personas";
pub const TOKEN_VAR: &str = "PERSONAS_MCP_TOKEN";
pub const EXECUTION_VAR: &str = "PERSONAS_MCP_EXECUTION_ID";
/// The run's tool channel (`127.0.0.1:<port>`), in the MCP server's environment.
pub const ENDPOINT_VAR: &str = "PERSONAS_MCP_ENDPOINT";
/// Longest tool call accepted on the channel (a call with a large event payload still fits).
pub const MAX_CALL_BYTES: usize = 8 * 1024 * 1024;

/// Hex SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random token (256 bits, hex).
pub fn new_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for the run token: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The config file of one run; removed when dropped.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
}

impl ConfigFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The CLI arguments that hand this file to the CLI (and nothing else: `--strict-mcp-config`
    /// keeps the user's own MCP servers out of unattended runs).
    pub fn args(&self) -> Vec<String> {
        vec![
            "--mcp-config".into(),
            self.path.display().to_string(),
            "--strict-mcp-config".into(),
        ]
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a run's MCP config");
        }
    }
}

/// The file name of an execution's config inside the run dir.
pub fn file_name(execution_id: &str) -> String {
    format!("{execution_id}.mcp.json")
}

/// Writes the config for one run.
pub fn write_config(
    run_dir: &Path,
    command: &Path,
    data_dir: &Path,
    execution_id: &str,
    token: &str,
    endpoint: &str,
) -> Result<ConfigFile, String> {
    create_private_dir(run_dir)?;
    let path = run_dir.join(file_name(execution_id));
    let config = serde_json::json!({
        "mcpServers": {
            SERVER_NAME: {
                "type": "stdio",
                "command": command,
                "args": ["mcp"],
                "env": {
                    "PERSONAS_DATA_DIR": data_dir,
                    EXECUTION_VAR: execution_id,
                    TOKEN_VAR: token,
                    ENDPOINT_VAR: endpoint,
                }
            }
        }
    });
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    // A leftover from a crashed attempt of the same execution holds a revoked token: replace it.
    let _ = std::fs::remove_file(&path);
    let mut f = opts
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let file = ConfigFile { path };
    f.write_all(config.to_string().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", file.path.display()))?;
    Ok(file)
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// What a run with an MCP server holds while its CLI runs: the config file (removed on drop),
/// the token (taught to the redactor) and the tool channel.
pub(crate) struct Prepared {
    pub file: ConfigFile,
    pub token: Secret,
    pub channel: ToolChannel,
}

/// Issues the run's MCP token, opens its tool channel and writes its config, when an MCP server
/// is configured.
pub(crate) async fn prepare(
    rt: &super::Runtime,
    execution: &personas_core::Execution,
) -> Result<Option<Prepared>, String> {
    let Some(command) = rt.config.mcp_command.clone() else {
        return Ok(None);
    };
    let token = Secret::new(new_token()?);
    let (store, id, hash) = (
        rt.store.clone(),
        execution.id.to_string(),
        token_hash(token.expose()),
    );
    super::blocking(move || store.credentials().issue_run_token(&id, &hash))
        .await
        .map_err(|e| format!("cannot issue the run's MCP token: {e}"))?;
    let channel = ToolChannel::listen(&token)
        .await
        .map_err(|e| format!("cannot open the run's tool channel: {e}"))?;
    let file = write_config(
        &rt.config.run_dir(),
        &command,
        &rt.config.data_dir,
        execution.id.as_str(),
        token.expose(),
        &channel.addr().to_string(),
    )?;
    Ok(Some(Prepared {
        file,
        token,
        channel,
    }))
}

/// One request on the tool channel: a line of JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallRequest {
    pub token: String,
    pub tool: String,
    #[serde(default)]
    pub arguments: Value,
}

/// The answer to one request: a line of JSON. `text` is what the model is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReply {
    pub ok: bool,
    pub text: String,
}

impl CallReply {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
        }
    }
    pub fn err(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
        }
    }
}

/// A tool call that arrived on the channel with the right token, waiting for the runner.
#[derive(Debug)]
pub struct ToolCall {
    pub tool: String,
    pub arguments: Value,
    pub reply: oneshot::Sender<CallReply>,
}

/// The runner's end of a run's tool channel. Dropping it closes the listener, so a finished
/// run's MCP server can no longer reach anything.
pub struct ToolChannel {
    addr: SocketAddr,
    calls: mpsc::Receiver<ToolCall>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for ToolChannel {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl ToolChannel {
    /// Listens on a fresh loopback port for calls carrying `token`.
    pub async fn listen(token: &Secret) -> std::io::Result<ToolChannel> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, calls) = mpsc::channel(16);
        let expected = token_hash(token.expose());
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((sock, _)) => {
                        let (tx, expected) = (tx.clone(), expected.clone());
                        tokio::spawn(async move {
                            if let Err(e) = serve_call(sock, &expected, &tx).await {
                                tracing::debug!(error = %e, "a tool channel connection failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "tool channel accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(ToolChannel {
            addr,
            calls,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next authenticated call (pending forever once nothing can send any more).
    pub async fn next(&mut self) -> ToolCall {
        match self.calls.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }
}

async fn serve_call(
    sock: tokio::net::TcpStream,
    expected_hash: &str,
    calls: &mpsc::Sender<ToolCall>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut line = Vec::new();
    BufReader::new(r)
        .take(MAX_CALL_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    let reply = if line.len() > MAX_CALL_BYTES {
        CallReply::err("the tool call is too large")
    } else {
        match serde_json::from_slice::<CallRequest>(&line) {
            Err(e) => CallReply::err(format!("not a tool call: {e}")),
            Ok(req) if token_hash(&req.token) != expected_hash => {
                CallReply::err("rejected: the run token is not this run's")
            }
            Ok(req) => {
                let (reply, answer) = oneshot::channel();
                let call = ToolCall {
                    tool: req.tool,
                    arguments: req.arguments,
                    reply,
                };
                match calls.send(call).await {
                    Ok(()) => answer
                        .await
                        .unwrap_or_else(|_| CallReply::err("the run ended before the call")),
                    Err(_) => CallReply::err("the run has ended"),
                }
            }
        }
    };
    let mut out = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await
}

/// The MCP server's side: sends one call to the run's tool channel and waits for the answer.
pub async fn forward(
    endpoint: &str,
    token: &str,
    tool: &str,
    arguments: Value,
) -> Result<CallReply, String> {
    let mut sock = tokio::net::TcpStream::connect(endpoint)
        .await
        .map_err(|e| format!("cannot reach the run at {endpoint} (has it ended?): {e}"))?;
    let req = CallRequest {
        token: token.to_string(),
        tool: tool.to_string(),
        arguments,
    };
    let mut line = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    sock.write_all(&line)
        .await
        .map_err(|e| format!("cannot send the call to the run: {e}"))?;
    let mut answer = Vec::new();
    BufReader::new(sock)
        .take(MAX_CALL_BYTES as u64)
        .read_until(b'\n', &mut answer)
        .await
        .map_err(|e| format!("the run did not answer: {e}"))?;
    serde_json::from_slice(&answer).map_err(|e| format!("the run's answer is not valid: {e}"))
}

/// The protocol message a run-scope tool call stands for: the arguments decoded as the tool's
/// typed arguments (the same types its MCP input schema is generated from) and checked by the
/// protocol's parser. An error starts with the tool's name and names the argument at fault.
pub fn protocol_message(name: &str, args: Value) -> Result<ProtocolMessage, String> {
    let tool = ProtocolTool::named(name).ok_or_else(|| format!("unknown tool {name}"))?;
    tool.message(args).map_err(|e| format!("{name}: {e}"))
}

/// What the model is told after a protocol tool worked.
pub fn confirmation(msg: &ProtocolMessage) -> String {
    match msg {
        ProtocolMessage::EmitEvent { event_type, .. } => format!("event {event_type} published"),
        ProtocolMessage::UserMessage { .. } => "message delivered to the inbox".into(),
        ProtocolMessage::ManualReview { title, .. } => format!("review requested: {title}"),
        ProtocolMessage::AgentMemory { title, .. } => format!("remembered: {title}"),
        ProtocolMessage::PersonaAction { target, .. } => format!("{target} was asked to act"),
        ProtocolMessage::OutcomeAssessment { .. } => "noted".into(),
    }
}

/// Applies one tool call for a run: the arguments pass `redactor` (after JSON decoding, so no
/// escape hides a value), become a [`ProtocolMessage`] and are stored by
/// [`super::protocol::apply_from`] as [`super::protocol::Origin::Mcp`]. Blocking (synchronous store).
pub fn apply_call(
    store: &Store,
    bus: &EventBus,
    execution: &Execution,
    persona: &Persona,
    redactor: &Redactor,
    tool: &str,
    mut arguments: Value,
) -> Result<(ProtocolMessage, Applied), String> {
    redact_json(redactor, &mut arguments);
    let msg = protocol_message(tool, arguments)?;
    let applied = super::protocol::apply_from(
        super::protocol::Origin::Mcp,
        store,
        bus,
        execution,
        persona,
        &msg,
    )
    .map_err(|e| format!("{} could not be stored: {e}", msg.key()))?;
    Ok((msg, applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_private_names_the_server_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        let f = write_config(
            &run,
            Path::new("/bin/personas"),
            dir.path(),
            "e1",
            "tok",
            "127.0.0.1:9",
        )
        .expect("write");
        let text = std::fs::read_to_string(f.path()).expect("read");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["mcpServers"]["personas"]["args"][0], "mcp");
        assert_eq!(v["mcpServers"]["personas"]["env"][TOKEN_VAR], "tok");
        assert_eq!(
            v["mcpServers"]["personas"]["env"][ENDPOINT_VAR],
            "127.0.0.1:9"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(&run).expect("meta").permissions().mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        assert_eq!(f.args()[0], "--mcp-config");
        let path = f.path().to_path_buf();
        drop(f);
        assert!(!path.exists());
        assert_ne!(token_hash("a"), token_hash("b"));
        assert_eq!(token_hash("a").len(), 64);
        assert_ne!(new_token().expect("t"), new_token().expect("t"));
    }

    #[tokio::test]
    async fn the_channel_takes_calls_with_the_run_token_only_and_closes_with_the_run() {
        let token = Secret::new(new_token().expect("token"));
        let mut ch = ToolChannel::listen(&token).await.expect("listen");
        let endpoint = ch.addr().to_string();
        let runner = tokio::spawn(async move {
            let call = ch.next().await;
            assert_eq!(call.tool, "emit_event");
            assert_eq!(call.arguments["type"], "a.b");
            let _ = call.reply.send(CallReply::ok("event a.b published"));
            ch
        });
        let wrong = forward(&endpoint, "nope", "emit_event", serde_json::json!({}))
            .await
            .expect("answer");
        assert!(!wrong.ok && wrong.text.contains("rejected"), "{wrong:?}");
        let right = forward(
            &endpoint,
            token.expose(),
            "emit_event",
            serde_json::json!({"type": "a.b"}),
        )
        .await
        .expect("answer");
        assert_eq!(right, CallReply::ok("event a.b published"));
        let ch = runner.await.expect("runner");
        drop(ch);
        tokio::task::yield_now().await;
        let gone = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            forward(&endpoint, token.expose(), "emit_event", Value::Null),
        )
        .await
        .expect("a closed channel answers at once");
        assert!(gone.is_err(), "{gone:?}");
    }

    #[test]
    fn tool_arguments_become_protocol_messages() {
        let m = protocol_message(
            "run_persona",
            serde_json::json!({"persona": "B", "action": "go"}),
        )
        .expect("message");
        assert!(matches!(m, ProtocolMessage::PersonaAction { ref target, .. } if target == "B"));
        assert!(protocol_message("emit_event", serde_json::json!([1])).is_err());
        assert!(protocol_message("nope", Value::Null).is_err());
    }
}
