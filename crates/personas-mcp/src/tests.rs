//! The server against a real store, spoken to in JSON-RPC lines.

use super::*;
use personas_core::{ExecutionOutcome, ExecutionStatus, PersonaSpec};
use personas_store::NewExecution;

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

    /// A running execution with a token issued for it.
    fn running(&self, persona: &str) -> (String, String) {
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
        let token = personas_engine::runner::mcp::new_token().expect("token");
        self.store
            .credentials()
            .issue_run_token(e.id.as_str(), &token_hash(&token))
            .expect("issue");
        (e.id.to_string(), token)
    }
}

/// Plays the runner's part: opens the run's tool channel and applies what arrives, through the
/// same `apply_call` the runner uses, with a redactor that knows `secret`.
async fn runner(store: &Store, exec: &str, token: &str, secret: &str) -> String {
    use personas_engine::runner::mcp::{CallReply, ToolChannel, apply_call, confirmation};
    let mut ch = ToolChannel::listen(&personas_core::Secret::new(token))
        .await
        .expect("listen");
    let endpoint = ch.addr().to_string();
    let store = store.clone();
    let exec = store
        .executions()
        .get(&personas_core::ExecutionId::from_string(exec))
        .expect("execution");
    let persona = store.personas().get(&exec.persona_id).expect("persona");
    let redactor = personas_core::redact::Redactor::new([(
        "vault.token",
        &personas_core::Secret::new(secret),
    )]);
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

async fn call(server: &Server, id: u64, method: &str, params: Value) -> Value {
    let line = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
    server.handle_line(&line).await.expect("a reply")
}

async fn tool(server: &Server, name: &str, args: Value) -> (bool, String) {
    let r = call(
        server,
        9,
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
    .await;
    let result = &r["result"];
    (
        result["isError"].as_bool().expect("isError"),
        result["content"][0]["text"]
            .as_str()
            .expect("text")
            .to_string(),
    )
}

#[tokio::test]
async fn a_run_scoped_server_lists_protocol_tools_with_schemas_and_stores_linked_rows() {
    let f = Fixture::new();
    let (exec, token) = f.running("Emitter");
    const SECRET: &str = "ghp_McpArgumentSecret0123456789";
    let endpoint = runner(&f.store, &exec, &token, SECRET).await;
    let s = Server::new(
        f.store.clone(),
        Scope::Run {
            execution_id: exec.clone(),
            token,
            endpoint: Some(endpoint),
        },
    );
    let init = call(
        &s,
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
    )
    .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    assert!(init["result"]["capabilities"]["tools"].is_object());
    assert!(
        s.handle_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await
            .is_none()
    );
    let list = call(&s, 2, "tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| {
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
            t["name"].as_str().expect("name")
        })
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

    let (err, text) = tool(
        &s,
        "emit_event",
        json!({"type": "notes.ready", "data": {"v": 1}}),
    )
    .await;
    assert!(!err, "{text}");
    let (err, _) = tool(
        &s,
        "send_message",
        json!({"title": "Hi", "content": "done"}),
    )
    .await;
    assert!(!err);
    // A secret in a tool's arguments is stored redacted, however it was escaped in the JSON.
    let (err, _) = tool(
        &s,
        "send_message",
        json!({"title": "leak", "content": format!("token {SECRET}"), "priority": "high"}),
    )
    .await;
    assert!(!err);
    let (err, _) = tool(
        &s,
        "remember",
        json!({"title": "t", "content": "c", "importance": 5}),
    )
    .await;
    assert!(!err);
    let (err, _) = tool(&s, "request_review", json!({"title": "Merge?"})).await;
    assert!(!err);
    let id = personas_core::ExecutionId::from_string(exec.as_str());
    let proto = f.store.protocol();
    let events = proto.events_of(&id).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].event_type.as_str(), &events[0].payload),
        ("notes.ready", &json!({"v": 1}))
    );
    assert_eq!(events[0].source_execution_id.as_ref(), Some(&id));
    let messages = proto.messages(Some(&id), 5).expect("m");
    assert!(messages.iter().any(|m| m.content == "done"));
    let leak = messages
        .iter()
        .find(|m| m.title.as_deref() == Some("leak"))
        .expect("leak");
    assert_eq!(leak.content, "token [redacted:vault.token]");
    assert_eq!(
        proto.reviews(None, Some(&id)).expect("r")[0].title,
        "Merge?"
    );

    // The same checks as the JSON-line protocol.
    let (err, text) = tool(&s, "emit_event", json!({"type": "has spaces"})).await;
    assert!(err && text.contains("may hold only"), "{text}");
    let (err, text) = tool(&s, "run_persona", json!({"persona": "Nobody"})).await;
    assert!(err && text.contains("Nobody"), "{text}");
    let unknown = call(
        &s,
        3,
        "tools/call",
        json!({"name": "list_personas", "arguments": {}}),
    )
    .await;
    assert_eq!(
        unknown["error"]["code"], -32602,
        "standalone tools are not offered to runs"
    );
}

#[tokio::test]
async fn another_runs_token_or_a_finished_runs_token_is_rejected() {
    let f = Fixture::new();
    let (exec_a, token_a) = f.running("A");
    let (exec_b, _token_b) = f.running("B");
    // B's server holding A's token.
    let s = Server::new(
        f.store.clone(),
        Scope::Run {
            execution_id: exec_b.clone(),
            token: token_a.clone(),
            endpoint: None,
        },
    );
    let (err, text) = tool(&s, "emit_event", json!({"type": "x.y"})).await;
    assert!(
        err && text.contains("belongs to another execution"),
        "{text}"
    );
    // A forged token.
    let s = Server::new(
        f.store.clone(),
        Scope::Run {
            execution_id: exec_a.clone(),
            token: "f".repeat(64),
            endpoint: None,
        },
    );
    let (err, text) = tool(&s, "emit_event", json!({"type": "x.y"})).await;
    assert!(err && text.contains("not valid"), "{text}");
    // A's own token after A finished.
    f.store
        .executions()
        .finish(
            &personas_core::ExecutionId::from_string(exec_a.clone()),
            &ExecutionOutcome::ended(ExecutionStatus::Completed, None, None),
        )
        .expect("finish");
    let s = Server::new(
        f.store.clone(),
        Scope::Run {
            execution_id: exec_a.clone(),
            token: token_a,
            endpoint: None,
        },
    );
    let (err, text) = tool(&s, "emit_event", json!({"type": "x.y"})).await;
    assert!(err && text.contains("no longer running"), "{text}");
    for e in [&exec_a, &exec_b] {
        assert!(
            f.store
                .protocol()
                .events_of(&personas_core::ExecutionId::from_string(e.as_str()))
                .expect("events")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn standalone_mode_controls_personas_over_stdio() {
    let f = Fixture::new();
    f.store
        .personas()
        .create(&PersonaSpec::new("Writer", "write"))
        .expect("persona");
    let s = Server::new(f.store.clone(), Scope::Standalone);
    let input = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "1999-01-01"}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_personas", "arguments": {}}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "run_persona", "arguments": {"persona": "writer", "input": {"a": 1}}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "nope"}),
    ]
    .iter()
    .map(|v| v.to_string() + "\n")
    .collect::<String>()
        + "not json\n";
    let mut out = Vec::new();
    s.serve(tokio::io::BufReader::new(input.as_bytes()), &mut out)
        .await
        .expect("serve");
    let replies: Vec<Value> = String::from_utf8(out)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(replies.len(), 5, "{replies:?}");
    assert_eq!(
        replies[0]["result"]["protocolVersion"], PROTOCOL_VERSIONS[1],
        "unknown version: ours"
    );
    assert!(
        replies[1]["result"]["content"][0]["text"]
            .as_str()
            .expect("t")
            .contains("Writer")
    );
    assert!(
        replies[2]["result"]["content"][0]["text"]
            .as_str()
            .expect("t")
            .contains("queued execution")
    );
    assert_eq!(replies[3]["error"]["code"], -32601);
    assert_eq!(replies[4]["error"]["code"], -32700);
    let queued = f
        .store
        .executions()
        .list(&Default::default())
        .expect("list");
    assert_eq!(
        (queued.len(), queued[0].status),
        (1, ExecutionStatus::Queued)
    );
    assert_eq!(queued[0].input, Some(json!({"a": 1})));
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
        Ok(Scope::Run { .. })
    ));
}
