//! `personas mcp`, the real binary over stdio: the standalone tools are the allow-listed
//! operations with the request schemas `/api/openapi.json` serves, and a run's protocol tools
//! called by the real Claude CLI land where the API shows them.

use super::{Daemon, Env, WAIT, text};
use personas_testkit::api::{Step, ToolCall};
use serde_json::{Map, Value, json};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// A `personas mcp` process after the MCP handshake.
pub(super) struct McpSession {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl McpSession {
    /// Starts `personas mcp` with `vars` added to the environment and makes the handshake.
    pub(super) async fn start(env: &Env, vars: &[(&str, &str)]) -> McpSession {
        let mut cmd = tokio::process::Command::from(env.command());
        cmd.arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn personas mcp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut s = McpSession {
            child,
            stdin,
            stdout,
            next_id: 0,
        };
        let init = s
            .request(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "cli-test", "version": "1"}}),
            )
            .await;
        assert_eq!(init["result"]["serverInfo"]["name"], "personas", "{init}");
        s.write(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        s
    }

    async fn write(&mut self, msg: &Value) {
        let line = format!("{msg}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    /// One request; its JSON-RPC response.
    pub(super) async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.write(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let line = tokio::time::timeout(WAIT, self.stdout.next_line())
                .await
                .expect("personas mcp answered in time")
                .expect("read")
                .expect("personas mcp is still running");
            let reply: Value = serde_json::from_str(&line).expect("a JSON line");
            if reply["id"] == id {
                return reply;
            }
        }
    }

    /// A tool call: `(isError, text)`.
    pub(super) async fn tool(&mut self, name: &str, args: Value) -> (bool, String) {
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

    /// Closes stdin; the server exits cleanly.
    pub(super) async fn close(mut self) {
        drop(self.stdin);
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("personas mcp exits when its input closes")
            .expect("wait");
        assert!(status.success(), "{status}");
    }
}

/// `schema` with every `$ref` replaced by what it points to in `root` (a JSON pointer), so two
/// documents that place their definitions differently compare by meaning.
fn inlined(schema: &Value, root: &Value, depth: usize) -> Value {
    assert!(depth < 64, "a schema nests too deep (a recursive type?)");
    match schema {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let target = root
                    .pointer(r.trim_start_matches('#'))
                    .unwrap_or_else(|| panic!("{r} points nowhere"));
                return inlined(target, root, depth + 1);
            }
            Value::Object(
                m.iter()
                    .filter(|(k, _)| *k != "$defs")
                    .map(|(k, v)| (k.clone(), inlined(v, root, depth + 1)))
                    .collect::<Map<_, _>>(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| inlined(v, root, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

async fn post(daemon: &Daemon, token: &str, op: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/{op}", daemon.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert!(resp.status().is_success(), "{op}: {}", resp.status());
    resp.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_is_the_allow_list_with_the_request_schemas_of_the_openapi_document() {
    let env = Env::new().await;
    env.persona("Writer", vec![], &[]);
    let daemon = Daemon::start(&env, &[]).await;
    let token = personas_server::auth::read_token(env.data_dir()).expect("API token");
    let openapi: Value = reqwest::Client::new()
        .get(format!("{}/api/openapi.json", daemon.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET openapi")
        .json()
        .await
        .expect("JSON");

    let mut mcp = McpSession::start(&env, &[]).await;
    let list = mcp.request("tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().expect("tools").clone();
    let names: Vec<&str> = tools
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    let allowed: Vec<&str> = personas_mcp::control::ALLOWED
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        names, allowed,
        "tools/list is exactly the allow-list, in order"
    );

    for (name, _) in personas_mcp::control::ALLOWED {
        let tool = tools.iter().find(|t| t["name"] == *name).expect("listed");
        let op = &openapi["paths"][format!("/api/{name}")]["post"];
        assert!(op.is_object(), "{name} is not in /api/openapi.json");
        assert_eq!(
            tool["description"], op["summary"],
            "{name}: the operation's doc"
        );
        let input = &tool["inputSchema"];
        assert_eq!(input["type"], "object", "{name}: {input}");
        let request = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(
            inlined(input, input, 0),
            inlined(request, &openapi, 0),
            "{name}: tools/list and /api/openapi.json disagree on the request"
        );
    }

    // A call answers exactly the JSON the HTTP API does; a refusal is its {code, message, field}.
    let (err, text) = mcp.tool("list_personas", json!({})).await;
    assert!(!err, "{text}");
    let over_mcp: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        over_mcp,
        post(&daemon, &token, "list_personas", json!({})).await
    );
    let (err, text) = mcp.tool("get_execution", json!({"id": "nope"})).await;
    let refused: Value = serde_json::from_str(&text).expect("an API error");
    assert!(err && refused["code"] == "not_found", "{refused}");
    mcp.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_claude_cli_remembers_and_sends_a_message_over_mcp_and_the_api_shows_both() {
    let env = Env::new().await;
    env.persona(
        "Keeper",
        vec![
            Step::tool_use(vec![
                ToolCall::new(
                    "m1",
                    "mcp__personas__remember",
                    json!({"title": "Deploy day", "content": "We deploy on Tuesdays", "importance": 4}),
                ),
                ToolCall::new(
                    "m2",
                    "mcp__personas__send_message",
                    json!({"title": "Noted", "content": "Tuesday it is", "priority": "high"}),
                ),
            ]),
            Step::text("remembered and told"),
        ],
        &[],
    );
    let daemon = Daemon::start(&env, &[]).await;
    let token = personas_server::auth::read_token(env.data_dir()).expect("API token");
    let out = env.run(&["run", "Keeper", "--follow"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let executions = post(
        &daemon,
        &token,
        "list_executions",
        json!({"persona": "Keeper"}),
    )
    .await;
    let exec = &executions["executions"][0];
    assert_eq!(exec["status"], "completed", "{exec}");
    let memories = post(
        &daemon,
        &token,
        "list_memories",
        json!({"persona": "Keeper"}),
    )
    .await;
    let memory = &memories["memories"][0];
    assert_eq!(
        (&memory["title"], &memory["content"], &memory["importance"]),
        (
            &json!("Deploy day"),
            &json!("We deploy on Tuesdays"),
            &json!(4)
        ),
        "{memories}"
    );
    let messages = post(&daemon, &token, "list_messages", json!({})).await;
    let message = messages["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["title"] == "Noted")
        .unwrap_or_else(|| panic!("{messages}"));
    assert_eq!(message["content"], "Tuesday it is");
    assert_eq!(message["priority"], "high");
    assert_eq!(message["execution_id"], exec["id"], "linked to its run");
    // Both tool results reached the model as successes.
    let output = post(
        &daemon,
        &token,
        "execution_output",
        json!({"id": exec["id"].clone()}),
    )
    .await;
    let results: Vec<&str> = output["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["kind"] == "tool_result")
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert!(
        results.iter().any(|t| t.contains("remembered: Deploy day"))
            && results.iter().any(|t| t.contains("message delivered")),
        "{results:?}"
    );
}
