//! Both scopes over a real connection (an in-memory pipe carrying JSON-RPC lines, as stdio
//! does), against a real store: the run scope through a real tool channel applied by the
//! runner's own `apply_call`, the standalone scope through the real `Api`.

use super::*;
use personas_core::{ExecutionId, PersonaSpec};
use personas_engine::runner::mcp::new_token;
use personas_store::{NewExecution, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};

/// The client's end of a connection to a server being served.
pub(crate) struct Client {
    tx: tokio::io::WriteHalf<DuplexStream>,
    rx: Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    served: tokio::task::JoinHandle<Result<(), ServeError>>,
    next_id: u64,
}

impl Client {
    /// Serves `handler` on a fresh pipe; no handshake yet.
    pub(crate) fn connect<S: rmcp::ServerHandler>(handler: S) -> Client {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (sr, sw) = tokio::io::split(server);
        let served = tokio::spawn(serve(handler, sr, sw));
        let (cr, cw) = tokio::io::split(client);
        Client {
            tx: cw,
            rx: BufReader::new(cr).lines(),
            served,
            next_id: 100,
        }
    }

    /// Connects and completes the handshake at `version`; the `initialize` result.
    pub(crate) async fn start<S: rmcp::ServerHandler>(
        handler: S,
        version: &str,
    ) -> (Client, Value) {
        let mut c = Client::connect(handler);
        let init = c
            .request(
                "initialize",
                json!({"protocolVersion": version, "capabilities": {},
                       "clientInfo": {"name": "test", "version": "1"}}),
            )
            .await;
        c.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        (c, init)
    }

    pub(crate) async fn send_line(&mut self, line: &[u8]) {
        self.tx.write_all(line).await.expect("write");
        self.tx.write_all(b"\n").await.expect("write");
        self.tx.flush().await.expect("flush");
    }

    pub(crate) async fn send(&mut self, msg: &Value) {
        self.send_line(msg.to_string().as_bytes()).await;
    }

    /// The next line the server writes, as JSON.
    pub(crate) async fn reply(&mut self) -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), self.rx.next_line())
            .await
            .expect("a reply in time")
            .expect("read")
            .expect("the server is still there");
        serde_json::from_str(&line).expect("a JSON line")
    }

    /// A request and its reply (the whole JSON-RPC response).
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let reply = self.reply().await;
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    /// A tool call: `(isError, text)`.
    pub(crate) async fn tool(&mut self, name: &str, args: Value) -> (bool, String) {
        let r = self
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await;
        let result = &r["result"];
        (
            result["isError"].as_bool().unwrap_or_else(|| panic!("{r}")),
            result["content"][0]["text"]
                .as_str()
                .expect("text")
                .to_string(),
        )
    }

    /// Closes the connection; how serving ended.
    pub(crate) async fn close(mut self) -> Result<(), ServeError> {
        self.tx.shutdown().await.expect("shutdown");
        drop(self.tx);
        self.served.await.expect("join")
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_in_dir(dir.path()).expect("store");
        Fixture { _dir: dir, store }
    }

    /// A running execution of `persona`.
    fn running(&self, persona: &str) -> ExecutionId {
        let p = match self.store.personas().find(persona) {
            Ok(p) => p,
            Err(_) => self
                .store
                .personas()
                .create(&PersonaSpec::new(persona, "x"))
                .expect("persona"),
        };
        let e = self
            .store
            .executions()
            .enqueue(&NewExecution::manual(p.id.clone(), None))
            .expect("enqueue");
        self.store
            .executions()
            .claim(&e.id, 8, "test")
            .expect("claim");
        e.id
    }

    fn api(&self) -> personas_api::Api {
        let config = personas_engine::EngineConfig::for_data_dir(self._dir.path());
        let engine = personas_engine::Engine::new(config, self.store.clone());
        personas_api::Api::new(engine, personas_api::HostInfo::default())
    }
}

/// Plays the runner's part for `exec`: opens its tool channel for `token` and applies what
/// arrives through the runner's own `apply_call`, with a redactor that knows `secret`.
pub(crate) async fn runner(
    store: &Store,
    exec: &ExecutionId,
    token: &Secret,
    secret: &str,
) -> String {
    use personas_engine::runner::mcp::{CallReply, ToolChannel, apply_call, confirmation};
    let mut ch = ToolChannel::listen(token).await.expect("listen");
    let endpoint = ch.addr().to_string();
    let store = store.clone();
    let exec = store.executions().get(exec).expect("execution");
    let persona = store.personas().get(&exec.persona_id).expect("persona");
    let redactor = personas_core::redact::Redactor::new([("vault.token", &Secret::new(secret))]);
    let bus = personas_engine::events::EventBus::new();
    tokio::spawn(async move {
        loop {
            let call = ch.next().await;
            let reply = match apply_call(
                &store,
                &bus,
                &exec,
                &persona,
                &redactor,
                &call.tool,
                call.arguments,
            ) {
                Ok((msg, a)) => match a.warning {
                    Some(w) => CallReply::err(w),
                    None => CallReply::ok(confirmation(&msg)),
                },
                Err(e) => CallReply::err(e),
            };
            let _ = call.reply.send(reply);
        }
    });
    endpoint
}

fn token() -> Secret {
    Secret::new(new_token().expect("token"))
}

#[tokio::test]
async fn a_run_scoped_server_lists_protocol_tools_with_schemas_and_stores_linked_rows() {
    let f = Fixture::new();
    let exec = f.running("Emitter");
    let token = token();
    const SECRET: &str = "ghp_McpArgumentSecret0123456789";
    let endpoint = runner(&f.store, &exec, &token, SECRET).await;
    let server = RunServer::new(exec.to_string(), token, Some(endpoint));
    let (mut c, init) = Client::start(server, "2025-06-18").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    assert!(init["result"]["capabilities"]["tools"].is_object());
    assert_eq!(init["result"]["serverInfo"]["name"], "personas");

    let list = c.request("tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "emit_event",
            "send_message",
            "request_review",
            "remember",
            "run_persona"
        ]
    );
    // Each schema is its argument type's, as the OpenAPI document would give it.
    let schema = |name: &str| {
        tools
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["inputSchema"].clone())
            .expect("tool")
    };
    for t in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["inputSchema"]["additionalProperties"], false, "{t}");
    }
    assert_eq!(
        schema("remember"),
        Value::Object(personas_api::schema::json_schema::<
            personas_core::protocol::tools::RememberArgs,
        >())
    );
    assert_eq!(schema("remember")["required"], json!(["title", "content"]));
    assert_eq!(
        (
            &schema("remember")["properties"]["importance"]["minimum"],
            &schema("remember")["properties"]["importance"]["maximum"]
        ),
        (&json!(1), &json!(5))
    );
    assert!(
        schema("emit_event")["properties"]["type"]["pattern"].is_string(),
        "{}",
        schema("emit_event")
    );

    let (err, text) = c
        .tool(
            "emit_event",
            json!({"type": "notes.ready", "data": {"v": 1}}),
        )
        .await;
    assert!(!err, "{text}");
    let (err, text) = c
        .tool("send_message", json!({"title": "Hi", "content": "done"}))
        .await;
    assert!(!err, "{text}");
    // A secret in a tool's arguments is stored redacted, however it was escaped in the JSON.
    let (err, _) = c
        .tool(
            "send_message",
            json!({"title": "leak", "content": format!("token {SECRET}"), "priority": "high"}),
        )
        .await;
    assert!(!err);
    let (err, _) = c
        .tool(
            "remember",
            json!({"title": "t", "content": "c", "importance": 5}),
        )
        .await;
    assert!(!err);
    let (err, _) = c.tool("request_review", json!({"title": "Merge?"})).await;
    assert!(!err);
    let proto = f.store.protocol();
    let events = proto.events_of(&exec).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].event_type.as_str(), &events[0].payload),
        ("notes.ready", &json!({"v": 1}))
    );
    assert_eq!(events[0].source_execution_id.as_ref(), Some(&exec));
    let messages = proto.messages(Some(&exec), 5).expect("m");
    assert!(messages.iter().any(|m| m.content == "done"));
    let leak = messages
        .iter()
        .find(|m| m.title.as_deref() == Some("leak"))
        .expect("leak");
    assert_eq!(leak.content, "token [redacted:vault.token]");
    assert_eq!(
        proto.reviews(None, Some(&exec)).expect("r")[0].title,
        "Merge?"
    );

    // The same checks as the JSON-line protocol, and unknown arguments are named.
    let (err, text) = c.tool("emit_event", json!({"type": "has spaces"})).await;
    assert!(err && text.contains("may hold only"), "{text}");
    let (err, text) = c.tool("run_persona", json!({"persona": "Nobody"})).await;
    assert!(err && text.contains("Nobody"), "{text}");
    let (err, text) = c
        .tool(
            "remember",
            json!({"title": "t", "content": "c", "mood": "x"}),
        )
        .await;
    assert!(err && text.contains("mood"), "{text}");
    let unknown = c
        .request(
            "tools/call",
            json!({"name": "list_personas", "arguments": {}}),
        )
        .await;
    assert_eq!(
        unknown["error"]["code"], -32602,
        "standalone tools are not offered to runs: {unknown}"
    );
    assert!(c.close().await.is_ok());
}

#[tokio::test]
async fn another_runs_token_or_a_finished_run_is_refused_by_the_tool_channel() {
    let f = Fixture::new();
    let exec_a = f.running("A");
    let exec_b = f.running("B");
    let (token_a, token_b) = (token(), token());
    let endpoint_b = runner(&f.store, &exec_b, &token_b, "unused-secret-value").await;
    // B's channel, presented A's token (a server of A pointed at B's channel).
    let server = RunServer::new(exec_a.to_string(), token_a.clone(), Some(endpoint_b));
    let (mut c, _) = Client::start(server, "2025-06-18").await;
    let (err, text) = c.tool("emit_event", json!({"type": "x.y"})).await;
    assert!(err && text.contains("rejected"), "{text}");
    // A run that has ended: its channel is closed, nothing answers.
    let gone = {
        let ch = personas_engine::runner::mcp::ToolChannel::listen(&token_a)
            .await
            .expect("listen");
        ch.addr().to_string()
    };
    let server = RunServer::new(exec_a.to_string(), token_a, Some(gone));
    let (mut c, _) = Client::start(server, "2025-06-18").await;
    let (err, text) = c.tool("emit_event", json!({"type": "x.y"})).await;
    assert!(err && text.contains("cannot reach the run"), "{text}");
    // No channel at all.
    let server = RunServer::new(exec_a.to_string(), token_b, None);
    let (mut c, _) = Client::start(server, "2025-06-18").await;
    let (err, text) = c.tool("emit_event", json!({"type": "x.y"})).await;
    assert!(err && text.contains("rejected"), "{text}");
    for e in [&exec_a, &exec_b] {
        assert!(f.store.protocol().events_of(e).expect("events").is_empty());
    }
}

#[tokio::test]
async fn standalone_mode_controls_personas_through_the_operations() {
    let f = Fixture::new();
    f.store
        .personas()
        .create(&PersonaSpec::new("Writer", "write"))
        .expect("persona");
    let server = ControlServer::new(f.api()).expect("server");
    let (mut c, init) = Client::start(server, "1999-01-01").await;
    // An unknown version gets one this server speaks.
    let version = init["result"]["protocolVersion"].as_str().expect("version");
    assert!(
        rmcp::model::ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .any(|v| v.as_str() == version),
        "{init}"
    );
    let list = c.request("tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    let allowed: Vec<&str> = control::ALLOWED.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, allowed);

    let (err, text) = c.tool("list_personas", json!({})).await;
    assert!(!err && text.contains("Writer"), "{text}");
    let (err, text) = c
        .tool(
            "run_persona",
            json!({"persona": "writer", "input": {"a": 1}}),
        )
        .await;
    assert!(!err, "{text}");
    let queued: Value = serde_json::from_str(&text).expect("the execution as JSON");
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["input"], json!({"a": 1}));
    let (err, text) = c
        .tool("get_execution", json!({"id": queued["id"].clone()}))
        .await;
    assert!(!err && text.contains("queued"), "{text}");

    // A refused operation is a tool error with the API's {code, message, field}.
    let (err, text) = c.tool("get_persona", json!({"persona": "Nobody"})).await;
    assert!(err, "{text}");
    let e: Value = serde_json::from_str(&text).expect("an API error");
    assert_eq!(e["code"], "not_found", "{e}");
    let (err, text) = c.tool("run_persona", json!({"input": 1})).await;
    let e: Value = serde_json::from_str(&text).expect("an API error");
    assert!(
        err && e["code"] == "invalid" && e["field"] == "persona",
        "{e}"
    );
    // Operations off the allow-list are not tools.
    for name in [
        "delete_persona",
        "list_credentials",
        "get_settings",
        "emit_event_x",
    ] {
        let r = c
            .request("tools/call", json!({"name": name, "arguments": {}}))
            .await;
        assert_eq!(r["error"]["code"], -32602, "{name}: {r}");
    }
    let r = c.request("nope/nope", json!({})).await;
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let queued = f
        .store
        .executions()
        .list(&Default::default())
        .expect("list");
    assert_eq!(queued.len(), 1);
    assert!(c.close().await.is_ok());
}

#[test]
fn the_allow_list_names_operations_and_never_a_secret_or_setting() {
    let tools = control::tools().expect("every allowed name is an operation");
    assert_eq!(tools.len(), control::ALLOWED.len());
    for (name, _) in control::ALLOWED {
        assert!(
            ![
                "credential",
                "vault",
                "setting",
                "secret",
                "delete",
                "tool",
                "channel"
            ]
            .iter()
            .any(|w| name.contains(w)),
            "{name} must not be offered"
        );
    }
    for t in &tools {
        let doc = personas_api::OPERATIONS
            .iter()
            .find(|o| o.name == t.name)
            .expect("op")
            .doc;
        assert_eq!(t.description.as_deref(), Some(doc.trim()));
        assert_eq!(
            *t.input_schema,
            personas_api::schema::request_schema(&t.name).expect("schema")
        );
        assert_eq!(t.input_schema["type"], "object", "{}", t.name);
    }
}

#[test]
fn scope_needs_both_variables_or_neither() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(Scope::from_env(env(&[])), Ok(Scope::Standalone));
    assert!(Scope::from_env(env(&[(TOKEN_VAR, "t")])).is_err());
    assert!(matches!(
        Scope::from_env(env(&[(TOKEN_VAR, "t"), (EXECUTION_VAR, "e")])),
        Ok(Scope::Run { endpoint: None, .. })
    ));
}
