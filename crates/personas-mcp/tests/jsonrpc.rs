//! Property tests of the MCP server's edge: JSON-RPC framing on stdio and tool arguments.
//!
//! A real store in a temp dir and the real server, spoken to in lines: arbitrary bytes never
//! stop the server (it answers the next good message), any line gets a well-formed reply or
//! none, a request's id comes back as sent, and a tool argument of the wrong type or value is
//! refused as a tool error naming that argument, with nothing stored.

use personas_core::{ExecutionId, PersonaSpec};
use personas_engine::runner::mcp::{new_token, token_hash};
use personas_mcp::{Scope, Server};
use personas_store::{NewExecution, Store};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// One server per scope for the whole binary: each case is one or a few messages.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    exec: ExecutionId,
    run: Server,
    standalone: Server,
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
        let token = new_token().expect("token");
        store
            .credentials()
            .issue_run_token(e.id.as_str(), &token_hash(&token))
            .expect("issue");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let endpoint = rt.block_on(apply_like_the_runner(&store, &e.id, &token));
        let run = Server::new(
            store.clone(),
            Scope::Run {
                execution_id: e.id.to_string(),
                token,
                endpoint: Some(endpoint),
            },
        );
        let standalone = Server::new(store.clone(), Scope::Standalone);
        Fixture {
            _dir: dir,
            store,
            exec: e.id,
            run,
            standalone,
            rt,
        }
    })
}

/// Plays the runner's part for the run: opens its tool channel and applies each call through
/// the runner's own `apply_call` (no secrets known), answering as the runner does.
async fn apply_like_the_runner(store: &Store, exec: &ExecutionId, token: &str) -> String {
    use personas_engine::runner::mcp::{CallReply, ToolChannel, apply_call, confirmation};
    let mut ch = ToolChannel::listen(&personas_core::Secret::new(token))
        .await
        .expect("listen");
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
            "initialize",
            "ping",
            "tools/list",
            "tools/call",
            "notifications/initialized",
            "resources/list",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,20}",
    ]
}

/// A reply is a JSON-RPC 2.0 response with exactly one of `result` and `error`.
fn check_reply(reply: &Value) -> Result<(), TestCaseError> {
    prop_assert_eq!(&reply["jsonrpc"], "2.0", "{}", reply);
    prop_assert!(reply.get("id").is_some(), "{}", reply);
    match (reply.get("result"), reply.get("error")) {
        (Some(_), None) => {}
        (None, Some(e)) => {
            prop_assert!(e["code"].is_i64() && e["message"].is_string(), "{}", reply);
        }
        _ => prop_assert!(false, "{}", reply),
    }
    Ok(())
}

fn call_tool(server: &Server, name: &str, args: Value) -> (bool, String) {
    let line = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": name, "arguments": args}})
    .to_string();
    let reply = fixture()
        .rt
        .block_on(server.handle_line(&line))
        .expect("a reply");
    let result = &reply["result"];
    (
        result["isError"].as_bool().expect("isError"),
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
    #![proptest_config(config(256))]

    /// Any line gets a well-formed reply or none (notifications, stray responses).
    #[test]
    fn any_line_gets_a_well_formed_reply_or_none(line in prop_oneof![
        any::<String>(),
        json_value().prop_map(|v| v.to_string()),
    ]) {
        for server in [&fixture().run, &fixture().standalone] {
            if let Some(reply) = fixture().rt.block_on(server.handle_line(&line)) {
                check_reply(&reply)?;
            }
        }
    }

    /// A request's id comes back as sent, whatever the method and params; without an id (a
    /// notification) nothing comes back.
    #[test]
    fn requests_are_answered_with_their_own_id(
        id in proptest::option::of(prop_oneof![
            "\\PC{0,16}".prop_map(Value::String),
            any::<i64>().prop_map(Value::from),
            Just(Value::Null),
            // Not JSON-RPC, still echoed.
            Just(json!([1, {"a": true}])),
        ]),
        method in method(),
        params in json_value(),
    ) {
        let mut msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
        if let Some(id) = &id {
            msg["id"] = id.clone();
        }
        let reply = fixture().rt.block_on(fixture().standalone.handle_line(&msg.to_string()));
        match (id, reply) {
            (Some(id), Some(reply)) => {
                check_reply(&reply)?;
                prop_assert_eq!(&reply["id"], &id);
            }
            (None, None) => {}
            (id, reply) => prop_assert!(false, "id {:?} got {:?}", id, reply),
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
        let (is_error, text) = call_tool(&fixture().run, tool, Value::Object(args));
        prop_assert!(is_error, "{} {}={} accepted: {}", tool, arg, bad, text);
        // The reason after the tool's name (`run_persona: …`) names the argument.
        let reason = text.strip_prefix(&format!("{tool}: ")).unwrap_or(&text);
        prop_assert!(reason.contains(arg), "{} {}={}: {}", tool, arg, bad, text);
        prop_assert_eq!(stored(), before);
    }

    /// Arguments that are not an object at all are refused saying so.
    #[test]
    fn arguments_that_are_not_an_object_are_refused(
        tool in prop::sample::select(vec!["emit_event", "send_message", "request_review", "remember", "run_persona"]),
        args in json_value().prop_filter("not an object", |v| !v.is_object() && !v.is_null()),
    ) {
        let (is_error, text) = call_tool(&fixture().run, tool, args);
        prop_assert!(is_error && text.contains("arguments must be an object"), "{}", text);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Arbitrary bytes on stdin (invalid UTF-8, huge lines, junk) never stop the server: every
    /// reply is a JSON line and the message after the junk is still answered.
    #[test]
    fn junk_on_stdin_never_stops_the_server(junk in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut input = junk;
        input.extend_from_slice(b"\n{\"jsonrpc\": \"2.0\", \"id\": \"last\", \"method\": \"ping\"}\n");
        let mut output = Vec::new();
        let served = fixture().rt.block_on(fixture().standalone.serve(&input[..], &mut output));
        prop_assert!(served.is_ok(), "{:?}", served);
        let text = String::from_utf8(output).expect("replies are UTF-8");
        let replies: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each reply is one JSON line"))
            .collect();
        for r in &replies {
            check_reply(r)?;
        }
        prop_assert_eq!(replies.last().map(|r| &r["id"]), Some(&json!("last")));
    }
}
