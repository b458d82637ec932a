//! The daemon's HTTP server end to end: a real server on 127.0.0.1 port 0 over a real store and
//! engine, the real Claude Code CLI against the scripted Messages API, real WebSockets.
//! Waits are on responses and stream frames, each with a deadline.

#[path = "server/bus.rs"]
mod bus;
#[path = "server/webhook.rs"]
mod webhook;

use futures::{SinkExt, StreamExt};
use personas_engine::vault::VaultOptions;
use personas_engine::{Engine, EngineConfig, EngineEvent};
use personas_server::events::EventHub;
use personas_server::{ServerState, serve};
use personas_store::{MessageRow, Store};
use personas_testkit::api::{ScriptedApi, Step, ToolCall};
use personas_testkit::claude::{IsolatedEnv, claude_bin, isolated_env};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[path = "server/vault.rs"]
mod vault;

#[path = "server/oversight.rs"]
mod oversight;

#[path = "server/client.rs"]
mod client;
#[path = "server/cloud.rs"]
mod cloud;
#[path = "server/metrics.rs"]
mod metrics;

const WAIT: Duration = Duration::from_secs(90);

struct Server {
    api: ScriptedApi,
    _env: IsolatedEnv,
    _dir: tempfile::TempDir,
    engine: Engine,
    base: String,
    port: u16,
    token: String,
    http: reqwest::Client,
    called: Mutex<BTreeSet<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    async fn start() -> Server {
        Self::start_with(None).await
    }

    async fn start_with(replay_capacity: Option<usize>) -> Server {
        Self::start_opts(replay_capacity, vault::passphrase()).await
    }

    /// A server whose vault uses `vault` (a passphrase by default: CI has no OS keychain).
    async fn start_opts(replay_capacity: Option<usize>, vault: VaultOptions) -> Server {
        Self::launch(replay_capacity, vault, |_| {}).await
    }

    /// A server whose engine configuration `tune` adjusts last.
    async fn start_tuned(tune: impl FnOnce(&mut EngineConfig)) -> Server {
        Self::launch(None, vault::passphrase(), tune).await
    }

    async fn launch(
        replay_capacity: Option<usize>,
        vault: VaultOptions,
        tune: impl FnOnce(&mut EngineConfig),
    ) -> Server {
        let api = ScriptedApi::start().await;
        let env = isolated_env(&api);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = EngineConfig::for_data_dir(dir.path());
        config.claude_path = Some(claude_bin());
        config.env = env.vars.iter().cloned().collect();
        config.queue_poll_ms = 100;
        // Dead letters within a test: two attempts, quick retries.
        config.bus_max_attempts = 2;
        config.bus_retry_base_ms = 50;
        tune(&mut config);
        let store = Store::open_in_dir(dir.path()).expect("store");
        let engine = Engine::with_vault(config, store, vault);
        engine.start().await.expect("start engine");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let token = "t".repeat(64);
        let mut state = ServerState::new(engine.clone(), token.clone(), port);
        if let Some(cap) = replay_capacity {
            state.hub = EventHub::start_with_capacity(&engine, state.stop.clone(), cap);
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, state, async move {
            let _ = rx.await;
        }));
        Server {
            api,
            _env: env,
            _dir: dir,
            engine,
            base: format!("http://127.0.0.1:{port}"),
            port,
            token,
            http: reqwest::Client::new(),
            called: Mutex::new(BTreeSet::new()),
            stop: Some(tx),
        }
    }

    fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Calls an operation with the token; returns status and JSON body.
    async fn call(&self, op: &str, body: Value) -> (u16, Value) {
        self.called.lock().expect("lock").insert(op.to_string());
        let resp = tokio::time::timeout(
            WAIT,
            self.http
                .post(format!("{}/api/{op}", self.base))
                .bearer_auth(&self.token)
                .json(&body)
                .send(),
        )
        .await
        .expect("response in time")
        .expect("send");
        let status = resp.status().as_u16();
        let v = resp.json::<Value>().await.expect("JSON body");
        (status, v)
    }

    /// Calls an operation that must succeed.
    async fn ok(&self, op: &str, body: Value) -> Value {
        let (status, v) = self.call(op, body).await;
        assert_eq!(status, 200, "{op}: {v}");
        v
    }

    async fn socket(
        &self,
        query: &str,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
    {
        let mut req = format!("ws://127.0.0.1:{}/api/events{query}", self.port)
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "sec-websocket-protocol",
            format!("personas, personas.token.{}", self.token)
                .parse()
                .expect("header"),
        );
        let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect in time")
            .expect("connect");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("personas")
        );
        ws
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next batch of frames (a JSON array).
async fn frames(ws: &mut Ws) -> Vec<Value> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("JSON frames");
            return v.as_array().expect("an array of frames").clone();
        }
    }
}

/// Reads frames until `done` says so; returns every frame read.
async fn read_until(ws: &mut Ws, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        for f in frames(ws).await {
            let stop = done(&f);
            all.push(f);
            if stop {
                return all;
            }
        }
    }
}

fn message_event(n: usize) -> EngineEvent {
    EngineEvent::MessageAdded {
        message: MessageRow {
            id: format!("m{n}"),
            execution_id: None,
            persona_id: None,
            persona_name: "Tester".into(),
            title: None,
            content: format!("message {n}"),
            priority: personas_core::protocol::Priority::Normal,
            status: personas_core::MessageStatus::Unread,
            created_at: chrono::Utc::now(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_round_trips_through_the_server() {
    let s = Server::start().await;
    let mut ws = s.socket("").await;
    let hello = frames(&mut ws).await;
    assert_eq!(hello[0]["kind"], "hello");

    // System and settings.
    let report = s.ok("system_check", json!({})).await;
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["check"].as_str())
        .collect();
    for want in [
        "claude cli",
        "claude version",
        "claude auth",
        "data dir",
        "store",
        "runtime",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert_eq!(report["ok"], true, "{report}");
    let settings = s.ok("get_settings", json!({})).await;
    assert_eq!(settings["max_concurrent"], 4);
    assert_eq!(settings["restart_required"], false);
    let (st, e) = s
        .call("update_settings", json!({"max_concurrent": 0}))
        .await;
    assert_eq!(
        (st, e["code"].as_str(), e["field"].as_str()),
        (400, Some("invalid"), Some("max_concurrent"))
    );
    let saved = s.ok("update_settings", json!({"max_concurrent": 3})).await;
    assert_eq!(
        (
            saved["max_concurrent"].as_u64(),
            saved["restart_required"].as_bool()
        ),
        (Some(3), Some(true))
    );

    // Templates and personas.
    let templates = s.ok("list_templates", json!({})).await;
    assert!(templates["templates"].as_array().expect("list").len() >= 8);
    let from_t = s
        .ok(
            "create_from_template",
            json!({"template_id": "docs-checker"}),
        )
        .await;
    assert_eq!(from_t["name"], "Docs checker");
    let (st, e) = s
        .call(
            "create_from_template",
            json!({"template_id": "docs-checker"}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str(), e["field"].as_str()),
        (409, Some("conflict"), Some("name"))
    );
    let (st, e) = s
        .call("create_from_template", json!({"template_id": "nope"}))
        .await;
    assert_eq!((st, e["code"].as_str()), (404, Some("not_found")));

    let key = "SCRIPT-server-run";
    s.api.script(
        key,
        vec![
            Step::tool_use(vec![ToolCall::new("toolu_1", "Glob", json!({"pattern": "*"}))]),
            Step::text(
                "Checked the docs.\n{\"user_message\": {\"title\": \"Docs\", \"content\": \"all good\", \"priority\": \"high\"}}\n{\"agent_memory\": {\"title\": \"Layout\", \"content\": \"docs live in /docs\", \"category\": \"fact\", \"importance\": 4}}",
            ),
        ],
    );
    let spec = json!({"name": "Checker", "instructions": format!("Follow script {key}."),
        "permissions": {"mode": "default", "allow": ["Glob"], "deny": []}});
    let created = s.ok("create_persona", json!({"spec": spec})).await;
    assert_eq!(created["prompt_version"], 1);
    let (st, e) = s.call("create_persona", json!({"spec": spec})).await;
    assert_eq!((st, e["field"].as_str()), (409, Some("name")));
    let (st, e) = s
        .call(
            "create_persona",
            json!({"spec": {"name": "", "instructions": "x"}}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str(), e["field"].as_str()),
        (400, Some("invalid"), Some("name"))
    );
    let (st, e) = s
        .call("create_persona", json!({"spec": {"instructions": "x"}}))
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("name")), "{e}");

    let list = s.ok("list_personas", json!({})).await;
    assert_eq!(list["personas"].as_array().map(Vec::len), Some(2));
    let got = s.ok("get_persona", json!({"persona": "checker"})).await;
    assert_eq!(got["id"], created["id"]);
    let (st, _) = s.call("get_persona", json!({"persona": "Nobody"})).await;
    assert_eq!(st, 404);
    // The personas a persona may start travel by name and are stored as ids.
    let starter = s
        .ok(
            "create_persona",
            json!({"spec": {"name": "Starter", "instructions": "x",
                "permissions": {"allow_personas": ["checker"]}}}),
        )
        .await;
    assert_eq!(
        starter["permissions"]["allow_personas"],
        json!([created["id"]])
    );
    let (st, e) = s
        .call(
            "create_persona",
            json!({"spec": {"name": "Starter 2", "instructions": "x",
                "permissions": {"allow_personas": ["Nobody"]}}}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str(), e["field"].as_str()),
        (400, Some("invalid"), Some("allow_personas")),
        "{e}"
    );
    s.ok("delete_persona", json!({"persona": "Starter"})).await;

    let mut spec2 = spec.clone();
    spec2["instructions"] = json!(format!("Follow script {key}. Be brief."));
    spec2["timeout_secs"] = json!(120);
    let updated = s
        .ok(
            "update_persona",
            json!({"persona": "Checker", "spec": spec2}),
        )
        .await;
    assert_eq!(updated["prompt_version"], 2);
    let versions = s
        .ok("list_prompt_versions", json!({"persona": "Checker"}))
        .await;
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        versions["versions"][0]["instructions"],
        json!(format!("Follow script {key}."))
    );

    // The shareable file: exported, refused as a duplicate, re-imported over itself.
    let file = s.ok("export_persona", json!({"persona": "Checker"})).await;
    let text = file["text"].as_str().expect("file text").to_string();
    assert!(text.contains(&format!("Follow script {key}.")), "{text}");
    let (st, dup) = s.call("import_persona", json!({"text": text})).await;
    assert_eq!((st, dup["code"].as_str()), (409, Some("conflict")), "{dup}");
    let imported = s
        .ok(
            "import_persona",
            json!({"text": text, "replace": true, "grant": true}),
        )
        .await;
    assert_eq!(imported["persona"]["name"], "Checker");

    // A real run through the API, watched on the event stream.
    let exec = s
        .ok(
            "run_persona",
            json!({"persona": "Checker", "input": {"focus": "readme"}}),
        )
        .await;
    let id = exec["id"].as_str().expect("id").to_string();
    let seen = read_until(&mut ws, |f| {
        f["event"]["type"] == "execution"
            && f["event"]["execution"]["id"] == id.as_str()
            && f["event"]["execution"]["status"] == "completed"
    })
    .await;
    let kinds: BTreeSet<&str> = seen
        .iter()
        .filter(|f| f["event"]["type"] == "output")
        .filter_map(|f| f["event"]["line"]["kind"].as_str())
        .collect();
    for want in [
        "tool_use",
        "tool_result",
        "assistant_text",
        "result",
        "protocol",
    ] {
        assert!(kinds.contains(want), "no {want} line streamed: {kinds:?}");
    }
    // Each line is served with the frame the runtime parsed from it, the raw text beside it.
    for f in seen.iter().filter(|f| f["event"]["type"] == "output") {
        let line = &f["event"]["line"];
        let want = match line["kind"].as_str().unwrap_or("") {
            "assistant_text" | "thinking" | "tool_use" => Some("assistant"),
            "tool_result" | "user" => Some("user"),
            "system" => None, // session or another system line
            "result" => Some("result"),
            "protocol" => Some("protocol"),
            "stderr" | "engine" | "raw" => {
                assert!(line.get("frame").is_none(), "plain line framed: {line}");
                continue;
            }
            _ => None,
        };
        assert!(
            line["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{line}"
        );
        let frame = line["frame"]["type"].as_str();
        assert!(frame.is_some(), "no frame: {line}");
        if let Some(want) = want {
            assert_eq!(frame, Some(want), "{line}");
        }
    }
    let tool_call = seen
        .iter()
        .filter(|f| f["event"]["line"]["kind"] == "tool_use")
        .flat_map(|f| {
            f["event"]["line"]["frame"]["blocks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|b| b["type"] == "tool_use");
    assert!(
        tool_call.is_some_and(|b| b["name"].as_str().is_some_and(|n| !n.is_empty())),
        "a tool_use line carries its tool call"
    );
    assert!(
        seen.iter().any(|f| f["event"]["type"] == "message"),
        "message event"
    );
    assert!(
        seen.iter().any(|f| f["event"]["type"] == "memory"),
        "memory event"
    );
    let seqs: Vec<u64> = seen.iter().filter_map(|f| f["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequences without gaps: {seqs:?}"
    );

    let done = s.ok("get_execution", json!({"id": &id[..28]})).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["cost_usd"].as_f64().is_some());
    let page = s
        .ok(
            "execution_output",
            json!({"id": id, "after": 0, "limit": 2}),
        )
        .await;
    assert_eq!(page["lines"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["more"], true);
    let rest = s
        .ok(
            "execution_output",
            json!({"id": id, "after": page["last_seq"], "limit": 5000}),
        )
        .await;
    assert_eq!(rest["more"], false);
    let paged = rest["lines"].as_array().cloned().unwrap_or_default();
    let result = paged
        .iter()
        .find(|l| l["kind"] == "result")
        .expect("result line");
    assert_eq!(
        (
            result["frame"]["type"].as_str(),
            result["frame"]["is_error"].as_bool()
        ),
        (Some("result"), Some(false)),
        "{result}"
    );
    assert_eq!(
        rest["lines"][0]["seq"].as_i64(),
        page["last_seq"].as_i64().map(|s| s + 1)
    );
    let listed = s.ok("list_executions", json!({"persona": "Checker"})).await;
    assert_eq!(listed["executions"][0]["id"], id.as_str());
    let (st, e) = s
        .call("list_executions", json!({"status": "finished"}))
        .await;
    assert_eq!((st, e["code"].as_str()), (400, Some("invalid")));
    let (st, e) = s.call("cancel_execution", json!({"id": id})).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("conflict")),
        "an ended run cannot be cancelled"
    );

    // Another run, cancelled while queued or running.
    s.ok(
        "update_persona",
        json!({"persona": "Docs checker", "spec": {
        "name": "Docs checker", "instructions": "Check docs.", "enabled": true}}),
    )
    .await;
    let queued = s
        .ok("run_persona", json!({"persona": "Docs checker"}))
        .await;
    let cancelled = s.ok("cancel_execution", json!({"id": queued["id"]})).await;
    assert!(
        ["cancelled", "running"].contains(&cancelled["status"].as_str().unwrap_or("")),
        "{cancelled}"
    );

    // Inbox.
    let inbox = s.ok("list_messages", json!({"unread_only": true})).await;
    assert_eq!(inbox["unread"], 1);
    assert_eq!(inbox["messages"][0]["content"], "all good");
    let marked = s
        .ok(
            "mark_messages_read",
            json!({"ids": [inbox["messages"][0]["id"]]}),
        )
        .await;
    assert_eq!(marked["updated"], 1);
    assert_eq!(s.ok("list_messages", json!({})).await["unread"], 0);

    // Memories.
    let mems = s.ok("list_memories", json!({"persona": "Checker"})).await;
    assert_eq!(mems["memories"][0]["title"], "Layout");
    let added = s
        .ok("add_memory", json!({"persona": "Checker", "title": "Owner", "content": "Ana owns docs", "importance": 5}))
        .await;
    let (st, e) = s
        .call(
            "add_memory",
            json!({"persona": "Checker", "title": "x", "content": "y", "importance": 9}),
        )
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("importance")));
    let edited = s
        .ok("update_memory", json!({"id": added["id"], "title": "Owner", "content": "Ben owns docs", "category": "fact", "importance": 4}))
        .await;
    assert_eq!(edited["content"], "Ben owns docs");
    s.ok("delete_memory", json!({"id": added["id"]})).await;
    let (st, _) = s.call("delete_memory", json!({"id": added["id"]})).await;
    assert_eq!(st, 404);

    // Reviews (deciding a paused run end to end: personas-engine tests/review).
    assert_eq!(
        s.ok("list_reviews", json!({"status": "pending"})).await["reviews"],
        json!([])
    );
    let (st, e) = s.call("list_reviews", json!({"status": "maybe"})).await;
    assert_eq!((st, e["field"].as_str()), (400, Some("status")));
    let (st, e) = s
        .call(
            "decide_review",
            json!({"id": "0000ffff", "decision": "approve"}),
        )
        .await;
    assert_eq!(st, 404, "{e}");
    let (st, e) = s
        .call(
            "decide_review",
            json!({"id": "0000ffff", "decision": "maybe"}),
        )
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("decision")));

    // Charts and the dashboard.
    let stats = s
        .ok("get_stats", json!({"days": 7, "tz_offset_minutes": 60}))
        .await;
    assert!(stats["runs"].as_u64() >= Some(2), "{stats}");
    assert_eq!(stats["completed"], 1);
    assert!(stats["duration_p50_ms"].as_u64().is_some());
    let checker = stats["personas"]
        .as_array()
        .expect("personas")
        .iter()
        .find(|p| p["persona_name"] == "Checker")
        .expect("Checker in stats");
    assert_eq!(checker["success_rate"], 1.0);
    assert_eq!(checker["refused"], 0);
    // One persona's statistics, as `personas stats --persona` asks for them.
    let one = s
        .ok("get_stats", json!({"days": 7, "persona": "checker"}))
        .await;
    let names: Vec<&Value> = one["personas"]
        .as_array()
        .expect("personas")
        .iter()
        .map(|p| &p["persona_name"])
        .collect();
    assert_eq!(names, [&json!("Checker")], "{one}");
    assert_eq!(one["runs"], checker["runs"]);
    let (st, e) = s
        .call("get_stats", json!({"persona": "nobody-by-this-name"}))
        .await;
    assert_eq!((st, e["code"].as_str()), (404, Some("not_found")), "{e}");
    let (st, _) = s.call("get_stats", json!({"days": 0})).await;
    assert_eq!(st, 400);
    let dash = s.ok("get_dashboard", json!({"tz_offset_minutes": 0})).await;
    assert_eq!(dash["personas"], 2);
    assert!(dash["runs_today"].as_u64() >= Some(2));
    assert_eq!(dash["recent"][1]["id"], id.as_str());

    // Canvas layout.
    assert_eq!(s.ok("get_canvas", json!({})).await["nodes"], json!([]));
    let layout = json!({"nodes": [{"persona_id": created["id"], "x": 10.5, "y": -3.0}]});
    s.ok("save_canvas", layout.clone()).await;
    assert_eq!(s.ok("get_canvas", json!({})).await, layout);

    // Deleting (once the cancelled run has ended).
    let qid = queued["id"].as_str().expect("id").to_string();
    if cancelled["status"] != "cancelled" {
        read_until(&mut ws, |f| {
            f["event"]["type"] == "execution"
                && f["event"]["execution"]["id"] == qid.as_str()
                && f["event"]["execution"]["finished_at"].is_string()
        })
        .await;
    }
    let gone = s
        .ok("delete_persona", json!({"persona": "Docs checker"}))
        .await;
    assert_eq!(gone["name"], "Docs checker");

    // Triggers and the event bus.
    bus::round_trips(&s, &mut ws).await;
    // Credentials, the vault, tools, persona links and permission templates.
    vault::round_trips(&s).await;

    // Notification channels, policies (budgets, breaker), healing issues.
    oversight::round_trips(&s).await;

    // The runtime's counters and gauges (after the runs above).
    metrics::round_trips(&s).await;

    // The cloud operations, with no orchestrator to reach.
    cloud::round_trips(&s).await;

    let called = s.called.lock().expect("lock").clone();
    let all: BTreeSet<String> = personas_api::OPERATIONS
        .iter()
        .map(|o| o.name.to_string())
        .collect();
    let untested: Vec<_> = all.difference(&called).collect();
    assert!(
        untested.is_empty(),
        "operations without a round-trip test: {untested:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_token_from_foreign_hosts_or_origins_or_too_large_are_refused() {
    let s = Server::start().await;
    let url = format!("{}/api/list_personas", s.base);
    let r = s
        .http
        .post(&url)
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "unauthorized"
    );
    let r = s
        .http
        .post(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .get(format!("{}/api/openapi.json", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401, "the OpenAPI document needs the token too");
    // The scheme is case-insensitive (RFC 9110): a lower-case `bearer` with the right token
    // is let in, with a wrong one is not.
    for (value, want) in [
        (format!("bearer {}", s.token), 200),
        (format!("BEARER {}", s.token), 200),
        ("bearer wrong".to_string(), 401),
    ] {
        let r = s
            .http
            .post(&url)
            .header("authorization", value.as_str())
            .json(&json!({}))
            .send()
            .await
            .expect("send");
        assert_eq!(
            r.status(),
            want,
            "{}",
            value.split(' ').next().unwrap_or("")
        );
    }

    let r = s
        .http
        .post(&url)
        .bearer_auth(&s.token)
        .header("host", "evil.example:80")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "forbidden_host"
    );
    let r = s
        .http
        .get(format!("{}/", s.base))
        .header("host", format!("rebind.example:{}", s.port))
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        403,
        "the UI is refused to foreign hosts as well"
    );
    let r = s
        .http
        .post(&url)
        .bearer_auth(&s.token)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "forbidden_origin"
    );
    let r = s
        .http
        .post(&url)
        .bearer_auth(&s.token)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);

    let big = "x".repeat(personas_server::routes::MAX_BODY_BYTES + 1);
    let r = s
        .http
        .post(format!("{}/api/create_persona", s.base))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"spec\":{{\"name\":\"a\",\"instructions\":\"{big}\"}}}}"
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.expect("json")["code"], "too_large");

    let r = s
        .http
        .post(format!("{}/api/run_persona", s.base))
        .bearer_auth(&s.token)
        .body("{\"persona\": \"x\", \"input\": {oops}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.expect("json");
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid"), Some("body"))
    );

    let r = s
        .http
        .post(format!("{}/api/no_such_thing", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "unknown_operation"
    );
    // Actions are operations of the table only: the old hand-written cancel route is gone
    // (`cancel_execution` is the way).
    let r = s
        .http
        .post(format!("{}/api/executions/0190aaaa/cancel", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "unknown_operation"
    );

    // The WebSocket needs the token too.
    let req = format!("ws://127.0.0.1:{}/api/events", s.port)
        .into_client_request()
        .expect("request");
    let err = tokio_tungstenite::connect_async(req)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("401"), "{err}");

    // With the token: the OpenAPI document covers the table; the UI (or its placeholder) is
    // served with a strict CSP; health needs no token.
    let doc: Value = s
        .http
        .get(format!("{}/api/openapi.json", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["paths"].as_object().map(|p| p.len()),
        Some(personas_api::OPERATIONS.len())
    );
    let r = s
        .http
        .get(format!("{}/personas/x", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("default-src 'self'")
    );
    let r = s
        .http
        .get(format!("{}/api/health", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_resumes_without_missing_an_event() {
    let s = Server::start().await;
    let mut ws = s.socket("").await;
    let hello = frames(&mut ws).await;
    let epoch = hello[0]["epoch"].as_str().expect("epoch").to_string();
    let start = hello[0]["seq"].as_u64().expect("seq");

    for n in 0..100 {
        s.engine.bus().send(message_event(n));
    }
    let first = read_until(&mut ws, |f| {
        f["kind"] == "event" && f["seq"].as_u64() >= Some(start + 40)
    })
    .await;
    let last_seen = first
        .iter()
        .filter_map(|f| f["seq"].as_u64())
        .max()
        .expect("some events");
    ws.close(None).await.expect("close");
    drop(ws);

    // Published while nobody listens.
    for n in 100..250 {
        s.engine.bus().send(message_event(n));
    }
    // Wait until the hub has numbered them all (it runs on its own task).
    let mut probe = s.socket("").await;
    let want_last = start + 250;
    let hello = frames(&mut probe).await;
    let mut newest = hello[0]["seq"].as_u64().expect("seq");
    while newest < want_last {
        for f in frames(&mut probe).await {
            newest = newest.max(f["seq"].as_u64().unwrap_or(0));
        }
    }
    drop(probe);

    let mut ws = s.socket(&format!("?after={last_seen}&epoch={epoch}")).await;
    let resumed = read_until(&mut ws, |f| {
        f["kind"] == "event" && f["seq"].as_u64() == Some(want_last)
    })
    .await;
    assert_eq!(resumed[0]["kind"], "hello");
    let seqs: Vec<u64> = resumed
        .iter()
        .filter_map(|f| f["seq"].as_u64())
        .skip(1)
        .collect();
    let expected: Vec<u64> = (last_seen + 1..=want_last).collect();
    assert_eq!(seqs, expected, "every missed event once, in order");
    assert!(resumed.iter().all(|f| f["kind"] != "resync"));
    let contents: Vec<&str> = resumed
        .iter()
        .filter_map(|f| f["event"]["message"]["content"].as_str())
        .collect();
    assert_eq!(contents.last(), Some(&"message 249"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_away_longer_than_the_buffer_is_told_to_resync() {
    let s = Server::start_with(Some(16)).await;
    let mut ws = s.socket("").await;
    let hello = frames(&mut ws).await;
    let epoch = hello[0]["epoch"].as_str().expect("epoch").to_string();
    drop(ws);
    for n in 0..40 {
        s.engine.bus().send(message_event(n));
    }
    let mut probe = s.socket("").await;
    let mut newest = frames(&mut probe).await[0]["seq"].as_u64().expect("seq");
    while newest < 40 {
        for f in frames(&mut probe).await {
            newest = newest.max(f["seq"].as_u64().unwrap_or(0));
        }
    }
    let mut ws = s.socket(&format!("?after=1&epoch={epoch}")).await;
    let f = frames(&mut ws).await;
    assert_eq!(f[0]["kind"], "hello");
    assert_eq!(f[1]["kind"], "resync", "{f:?}");
    // Another runtime instance's sequence means nothing here either.
    let mut ws = s.socket("?after=1&epoch=someone-else").await;
    let f = frames(&mut ws).await;
    assert_eq!(f[1]["kind"], "resync");
    // A client within the buffer resumes normally.
    let mut ws = s.socket(&format!("?after=30&epoch={epoch}")).await;
    let f = frames(&mut ws).await;
    let seqs: Vec<u64> = f.iter().skip(1).filter_map(|x| x["seq"].as_u64()).collect();
    assert_eq!(seqs, (31..=40).collect::<Vec<_>>());
    let _ = ws.send(Message::Close(None)).await;
}
