//! Property tests of the MCP server's edge: JSON-RPC lines on a real connection and tool
//! arguments, for both scopes.
//!
//! One connection per scope for the whole binary (a real store in a temp dir; the run's calls
//! applied by the runner's own `apply_call` behind a real tool channel; persona control through
//! the real `Api`), each after the `initialize` handshake as a client makes it. Properties:
//! arbitrary bytes never stop the server (the next good message is answered), every reply is a
//! well-formed JSON-RPC response, a request with a valid id gets its id back, an unknown tool is a
//! protocol error, and a tool argument of the wrong type or value is refused as a tool error
//! naming that argument, with nothing stored.
//!
//! Framing is the SDK's (rmcp): a line that is not JSON gets no reply (as in the other official
//! SDKs: answering junk can start an error storm with a peer that echoes), and JSON that is not
//! a JSON-RPC message gets "Invalid request" without an id, since none can be read.

use personas_core::{ExecutionId, PersonaSpec, Secret};
use personas_engine::runner::mcp::{CallReply, ToolChannel, apply_call, confirmation, new_token};
use personas_mcp::{ControlServer, RunServer, ServeError, serve};
use personas_store::{NewExecution, Store};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

/// The client's end of one served connection.
struct Client {
    tx: tokio::io::WriteHalf<DuplexStream>,
    rx: Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    served: tokio::task::JoinHandle<Result<(), ServeError>>,
    probes: u64,
}

impl Client {
    async fn start<S: rmcp::ServerHandler>(handler: S) -> Client {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (sr, sw) = tokio::io::split(server);
        let served = tokio::spawn(serve(handler, sr, sw));
        let (cr, cw) = tokio::io::split(client);
        let mut c = Client {
            tx: cw,
            rx: BufReader::new(cr).lines(),
            served,
            probes: 0,
        };
        let init = json!({"jsonrpc": "2.0", "id": "init", "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "proptest", "version": "1"}}});
        c.send(init.to_string().as_bytes()).await;
        let replies = c.until("init").await;
        assert!(replies[0]["result"]["protocolVersion"].is_string());
        c.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        c
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tx.write_all(bytes).await.expect("write");
        self.tx.write_all(b"\n").await.expect("write");
        self.tx.flush().await.expect("flush");
    }

    /// Every reply up to and including the one to request `id`, each a JSON line.
    async fn until(&mut self, id: &str) -> Vec<Value> {
        let mut replies = Vec::new();
        loop {
            let next =
                tokio::time::timeout(std::time::Duration::from_secs(30), self.rx.next_line());
            let line = next
                .await
                .expect("an answer in time")
                .expect("read")
                .unwrap_or_else(|| panic!("the server stopped: {:?}", self.served.is_finished()));
            let reply: Value = serde_json::from_str(&line).expect("each reply is one JSON line");
            let done = reply["id"] == id;
            replies.push(reply);
            if done {
                return replies;
            }
        }
    }

    /// The reply whose id is `id` (any other line read first is checked and skipped).
    async fn until_value(&mut self, id: &Value) -> Value {
        loop {
            let next =
                tokio::time::timeout(std::time::Duration::from_secs(30), self.rx.next_line());
            let line = next
                .await
                .expect("an answer in time")
                .expect("read")
                .expect("the server is still there");
            let reply: Value = serde_json::from_str(&line).expect("each reply is one JSON line");
            if &reply["id"] == id {
                return reply;
            }
        }
    }

    /// Sends `bytes` as a line, then a ping; every reply up to the ping's (which must come: the
    /// server is still up).
    async fn after(&mut self, bytes: &[u8]) -> Vec<Value> {
        self.probes += 1;
        let probe = format!("probe-{}", self.probes);
        self.send(bytes).await;
        self.send(
            json!({"jsonrpc": "2.0", "id": probe, "method": "ping"})
                .to_string()
                .as_bytes(),
        )
        .await;
        self.until(&probe).await
    }

    /// One request with a fresh string id; its reply.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.probes += 1;
        let id = format!("req-{}", self.probes);
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send(msg.to_string().as_bytes()).await;
        self.until(&id).await.pop().expect("the reply")
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    exec: ExecutionId,
    run: Mutex<Client>,
    control: Mutex<Client>,
    rt: Runtime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_in_dir(dir.path()).expect("store");
        let p = store
            .personas()
            .create(&PersonaSpec::new("Caller", "x"))
            .expect("persona");
        store
            .personas()
            .create(&PersonaSpec::new("Reviewer", "x"))
            .expect("persona");
        let e = store
            .executions()
            .enqueue(&NewExecution::manual(p.id.clone(), None))
            .expect("enqueue");
        store.executions().claim(&e.id, 8, "test").expect("claim");
        let token = Secret::new(new_token().expect("token"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let config = personas_engine::EngineConfig::for_data_dir(dir.path());
        let (run, control) = rt.block_on(async {
            let endpoint = apply_like_the_runner(&store, &e.id, &token).await;
            let run = RunServer::new(e.id.to_string(), token, Some(endpoint));
            let engine = personas_engine::Engine::new(config, store.clone());
            let api = personas_api::Api::new(engine, personas_api::HostInfo::default());
            let control = ControlServer::new(api).expect("control server");
            (Client::start(run).await, Client::start(control).await)
        });
        Fixture {
            _dir: dir,
            store,
            exec: e.id,
            run: Mutex::new(run),
            control: Mutex::new(control),
            rt,
        }
    })
}

/// Plays the runner's part for the run: opens its tool channel and applies each call through
/// the runner's own `apply_call` (no secrets known), answering as the runner does.
async fn apply_like_the_runner(store: &Store, exec: &ExecutionId, token: &Secret) -> String {
    let mut ch = ToolChannel::listen(token).await.expect("listen");
    let endpoint = ch.addr().to_string();
    let store = store.clone();
    let exec = store.executions().get(exec).expect("execution");
    let persona = store.personas().get(&exec.persona_id).expect("persona");
    let redactor = personas_core::redact::Redactor::none();
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
                Ok((msg, applied)) => match applied.warning {
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

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z_]{1,10}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "ping",
            "tools/list",
            "tools/call",
            "resources/list",
            "prompts/list",
            "logging/setLevel",
        ])
        .prop_map(str::to_owned),
        "[a-z/]{1,20}",
    ]
}

/// A reply is a JSON-RPC 2.0 response with exactly one of `result` and `error`; only an error
/// to a message whose id could not be read may leave the id out.
fn check_reply(reply: &Value) -> Result<(), TestCaseError> {
    prop_assert_eq!(&reply["jsonrpc"], "2.0", "{}", reply);
    match (reply.get("result"), reply.get("error")) {
        (Some(_), None) => prop_assert!(reply.get("id").is_some(), "{}", reply),
        (None, Some(e)) => {
            prop_assert!(e["code"].is_i64() && e["message"].is_string(), "{}", reply);
        }
        _ => prop_assert!(false, "{}", reply),
    }
    Ok(())
}

/// A fresh text for unique ids.
fn uuid_like() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "case-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    fixture().rt.block_on(f)
}

fn call_tool(client: &Mutex<Client>, name: &str, args: Value) -> Value {
    block_on(async {
        client
            .lock()
            .await
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await
    })
}

/// `(isError, text)` of a tool call that reached the tool.
fn tool_outcome(reply: &Value) -> (bool, String) {
    let result = &reply["result"];
    (
        result["isError"]
            .as_bool()
            .unwrap_or_else(|| panic!("{reply}")),
        result["content"][0]["text"]
            .as_str()
            .expect("text")
            .to_string(),
    )
}

/// Rows the run has stored through the protocol tools.
fn stored() -> usize {
    let f = fixture();
    let proto = f.store.protocol();
    proto.events_of(&f.exec).expect("events").len()
        + proto.messages(Some(&f.exec), 1000).expect("messages").len()
        + proto.reviews(None, Some(&f.exec)).expect("reviews").len()
}

const RUN_TOOLS: [&str; 5] = [
    "emit_event",
    "send_message",
    "request_review",
    "remember",
    "run_persona",
];

/// The run-scope tools' arguments, with the JSON type each takes (`"enum"`: a string from a
/// fixed list; `"nonblank"`: a string with text in it).
const ARGS: &[(&str, &str, &str)] = &[
    ("emit_event", "type", "event_type"),
    ("send_message", "title", "string"),
    ("send_message", "content", "nonblank"),
    ("send_message", "priority", "enum"),
    ("request_review", "title", "nonblank"),
    ("request_review", "description", "string"),
    ("request_review", "severity", "enum"),
    ("request_review", "suggested_actions", "strings"),
    ("remember", "title", "nonblank"),
    ("remember", "content", "nonblank"),
    ("remember", "category", "string"),
    ("remember", "importance", "importance"),
    ("run_persona", "persona", "nonblank"),
    ("run_persona", "action", "string"),
];

/// Valid arguments for each tool.
fn valid_args(tool: &str) -> Map<String, Value> {
    let v = match tool {
        "emit_event" => json!({"type": "a.b", "data": {"k": 1}}),
        "send_message" => json!({"title": "t", "content": "c", "priority": "high"}),
        "request_review" => json!({"title": "t", "description": "d", "severity": "low",
                                   "suggested_actions": ["go"]}),
        "remember" => json!({"title": "t", "content": "c", "category": "fact", "importance": 3}),
        _ => json!({"persona": "Reviewer", "action": "review"}),
    };
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object"),
    }
}

/// A value the argument cannot take: another JSON type, or a refused value of its type.
fn bad_value(kind: &'static str) -> BoxedStrategy<Value> {
    let not_string = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::Bool),
        Just(json!([1, "x"])),
        Just(json!({"nested": true})),
    ];
    match kind {
        "string" => not_string.boxed(),
        "nonblank" => prop_oneof![not_string, "[ \t\n]{0,3}".prop_map(Value::String)].boxed(),
        "event_type" => prop_oneof![
            not_string,
            "[ \t\n]{0,3}".prop_map(Value::String),
            "[a-z]{0,4}[ {}!é\"][a-z]{0,4}".prop_map(Value::String),
        ]
        .boxed(),
        "enum" => prop_oneof![
            not_string,
            "[a-z]{1,10}"
                .prop_filter("not a level", |s| {
                    !["low", "normal", "medium", "high", "urgent", "critical"].contains(&s.as_str())
                })
                .prop_map(Value::String),
        ]
        .boxed(),
        "strings" => prop_oneof![
            Just(json!("one string")),
            Just(json!(5)),
            Just(json!([1, 2])),
            Just(json!({"a": "b"})),
        ]
        .boxed(),
        _ => prop_oneof![
            Just(json!(0)),
            Just(json!(6)),
            Just(json!(-1)),
            Just(json!(2.5)),
            Just(json!(u64::MAX)),
            Just(json!(1e300)),
            Just(json!("3")),
        ]
        .boxed(),
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Any line gets well-formed replies or none, and the server answers the next message.
    #[test]
    fn any_line_gets_a_well_formed_reply_and_the_server_stays_up(line in prop_oneof![
        any::<String>(),
        json_value().prop_map(|v| v.to_string()),
    ]) {
        let line = line.replace('\n', " ");
        for client in [&fixture().run, &fixture().control] {
            let replies = block_on(async { client.lock().await.after(line.as_bytes()).await });
            for r in &replies {
                check_reply(r)?;
            }
        }
    }

    /// A request's id comes back as sent, whatever the method and params. (Requests are
    /// handled concurrently, so the reply is found by its id, not by its place.)
    #[test]
    fn requests_are_answered_with_their_own_id(
        id in prop_oneof![
            "[a-zA-Z0-9 ]{0,16}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
        ],
        method in method(),
        params in prop_oneof![Just(json!({})), json_value().prop_filter("an object", Value::is_object)],
    ) {
        let id = match id {
            // Unique, so no late reply to an earlier case can be taken for this one.
            Value::String(s) => Value::String(format!("{}:{s}", uuid_like())),
            n => n,
        };
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let reply = block_on(async {
            let mut c = fixture().control.lock().await;
            c.send(msg.to_string().as_bytes()).await;
            c.until_value(&id).await
        });
        check_reply(&reply)?;
        prop_assert_eq!(&reply["id"], &id, "{}", reply);
    }

    /// A tool neither scope offers is a protocol error (invalid params), not a tool result.
    #[test]
    fn an_unknown_tool_is_a_protocol_error(name in "[a-z_]{1,20}") {
        prop_assume!(!RUN_TOOLS.contains(&name.as_str()));
        prop_assume!(!personas_mcp::control::ALLOWED.iter().any(|(n, _)| *n == name));
        for client in [&fixture().run, &fixture().control] {
            let reply = call_tool(client, &name, json!({}));
            prop_assert_eq!(&reply["error"]["code"], -32602, "{}", reply);
        }
    }

    /// A tool argument that cannot be taken is refused as a tool error naming the argument,
    /// and nothing is stored for the run.
    #[test]
    fn a_bad_tool_argument_is_named_and_nothing_is_stored(
        ((tool, arg, _), bad) in prop::sample::select(ARGS).prop_flat_map(|a| (Just(a), bad_value(a.2))),
    ) {
        let mut args = valid_args(tool);
        args.insert(arg.to_string(), bad.clone());
        let before = stored();
        let (is_error, text) = tool_outcome(&call_tool(&fixture().run, tool, Value::Object(args)));
        prop_assert!(is_error, "{} {}={} accepted: {}", tool, arg, bad, text);
        // The reason after the tool's name (`run_persona: …`) names the argument.
        let reason = text.strip_prefix(&format!("{tool}: ")).unwrap_or(&text);
        prop_assert!(reason.contains(arg), "{} {}={}: {}", tool, arg, bad, text);
        prop_assert_eq!(stored(), before);
    }

    /// Arguments that are not an object at all are refused (the SDK refuses the message), and
    /// nothing is stored.
    #[test]
    fn arguments_that_are_not_an_object_are_refused(
        tool in prop::sample::select(RUN_TOOLS.to_vec()),
        args in json_value().prop_filter("not an object", |v| !v.is_object() && !v.is_null()),
    ) {
        let before = stored();
        let reply = call_tool(&fixture().run, tool, args);
        let refused = reply.get("error").is_some()
            || reply["result"]["isError"] == true;
        prop_assert!(refused, "{}", reply);
        prop_assert_eq!(stored(), before);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Arbitrary bytes (invalid UTF-8, huge lines, junk) never stop the server: every reply is
    /// a JSON line and the message after the junk is still answered.
    #[test]
    fn junk_never_stops_the_server(junk in prop::collection::vec(any::<u8>(), 0..2000)) {
        let junk: Vec<u8> = junk.into_iter().map(|b| if b == b'\n' { b' ' } else { b }).collect();
        let replies = block_on(async { fixture().control.lock().await.after(&junk).await });
        for r in &replies {
            check_reply(r)?;
        }
    }
}
