//! No secret escapes, by any way in: a secret seeded into the vault (a persona credential), a
//! notification channel, `config.toml [env]` and the daemon's own environment; a real run that
//! prints them, passes them to every MCP tool, emits them in events, messages and memories;
//! then everything a user or an attacker on the machine can read is searched for them in every
//! encoding. Also: what the real CLI's environment holds.

use super::{Daemon, Env, WAIT, text};
use personas_testkit::api::{HangPoint, Step, ToolCall};
use personas_testkit::http_sink::{HttpSink, Reply};
use personas_testkit::leak::{self, Needle};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASS: &str = "correct horse battery staple";
/// A persona credential in the vault (the run gets it as GITHUB_TOKEN).
const VAULT: &str = "ghp_Vault/S3cret+Value=0123456789abcdef";
/// A `config.toml [env]` entry (every run gets it).
const CONFIG: &str = "xoxb-Config/S3cret+Value-0123456789";
/// A credential in the daemon's own environment that runs inherit (AWS_SESSION_TOKEN).
const DAEMON: &str = "aws-Daemon/S3cret+Session=0123456789";
/// A notification channel's signing key (`env:LEAK_CHANNEL_KEY`, allowed for channels only).
const CHANNEL: &str = "hook-Channel/S3cret+Key=0123456789";
/// A variable of the daemon's environment that is on no allow-list: no run may see it.
const SHELL: &str = "shell-Hidden/S3cret=0123456789xyz";

fn needles() -> Vec<Needle> {
    vec![
        Needle::new("vault credential", VAULT),
        Needle::new("config [env] value", CONFIG),
        Needle::new("daemon environment credential", DAEMON),
        Needle::new("channel secret", CHANNEL),
        Needle::new("daemon environment secret", SHELL),
    ]
}

fn daemon_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PERSONAS_VAULT_PASSPHRASE", PASS),
        ("AWS_SESSION_TOKEN", DAEMON),
        ("LEAK_CHANNEL_KEY", CHANNEL),
        ("LEAK_SHELL_SECRET", SHELL),
        ("IS_SANDBOX", "1"),
    ]
}

fn run_with(env: &Env, args: &[&str], stdin: &str) -> Output {
    let mut c = env.command();
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in daemon_env() {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn personas");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait personas");
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The config every test here uses: one secret `[env]` entry, and the channel variable allowed.
fn write_config(env: &Env) {
    std::fs::write(
        env.data_dir().join("config.toml"),
        format!(
            "channel_env_allow = [\"LEAK_CHANNEL_KEY\"]\n\n[env]\nLEAK_CONFIG_TOKEN = \"{CONFIG}\"\n"
        ),
    )
    .expect("config.toml");
}

/// Every secret, as the scripted model "knows" them (it read them somewhere).
fn all() -> String {
    format!("{VAULT} {CONFIG} {DAEMON} {CHANNEL}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_seeded_anywhere_never_reaches_storage_the_api_the_stream_or_a_channel() {
    let env = Env::new().await;
    write_config(&env);
    let sink = HttpSink::start(vec![Reply::status(200)]).await;
    run_with(
        &env,
        &[
            "credential",
            "add",
            "github",
            "--type",
            "github",
            "--field",
            "token",
        ],
        &format!("{VAULT}\n"),
    );
    let leaky_steps = vec![
        Step::tool_use(vec![ToolCall::bash(
            "toolu_print",
            "printenv GITHUB_TOKEN LEAK_CONFIG_TOKEN AWS_SESSION_TOKEN LEAK_CHANNEL_KEY \
             LEAK_SHELL_SECRET; printenv GITHUB_TOKEN | base64; echo \"$LEAK_CONFIG_TOKEN\" | base64 -w0; \
             echo; printf %s \"$AWS_SESSION_TOKEN\" | od -An -c | head -c 0",
        )]),
        Step::tool_use(vec![
            ToolCall::new(
                "toolu_msg",
                "mcp__personas__send_message",
                json!({"title": format!("t {VAULT}"), "content": format!("c {}", all()), "priority": "high"}),
            ),
            ToolCall::new(
                "toolu_mem",
                "mcp__personas__remember",
                json!({"title": format!("m {CONFIG}"), "content": format!("c {}", all())}),
            ),
            ToolCall::new(
                "toolu_evt",
                "mcp__personas__emit_event",
                json!({"type": "leak.check", "data": {"all": all(), "nested": [{"k": DAEMON}], CHANNEL: VAULT}}),
            ),
            ToolCall::new(
                "toolu_rev",
                "mcp__personas__request_review",
                json!({"title": format!("r {VAULT}"), "description": all(), "suggested_actions": [CONFIG]}),
            ),
            ToolCall::new(
                "toolu_run",
                "mcp__personas__run_persona",
                json!({"persona": "Echo", "action": format!("use {DAEMON}"), "input": {"token": VAULT}}),
            ),
        ]),
        Step::text(format!(
            "Done. The secrets are {}.\n{}\n{}\n{}",
            all(),
            json!({"user_message": {"title": format!("p {CONFIG}"), "content": all()}}),
            json!({"agent_memory": {"title": "p", "content": all()}}),
            json!({"emit_event": {"type": "leak.line", "data": {"v": all()}}}),
        )),
    ];
    // Leaky may start Echo (persona-to-persona permission), so its secrets can travel there.
    env.persona("Echo", vec![Step::text("echoed")], &[]);
    env.persona(
        "Leaky",
        leaky_steps,
        &[
            "--allow-tool",
            "Bash",
            "--credential",
            "github",
            "--allow-persona",
            "Echo",
        ],
    );
    let hook =
        json!({"url": format!("{}/hook", sink.base_url()), "secret": "env:LEAK_CHANNEL_KEY"})
            .to_string();
    run_with(
        &env,
        &[
            "channel", "add", "Leaky", "--name", "hook", "--type", "webhook", "--config", &hook,
        ],
        "",
    );

    let daemon = Daemon::start(&env, &daemon_env()).await;
    let token = std::fs::read_to_string(env.data_dir().join("api-token")).expect("api token");
    let token = token.trim().to_string();

    // The WebSocket stream, recorded from before the run to the end of the test.
    let streamed: Arc<Mutex<Vec<String>>> = Arc::default();
    let ws_url = format!("{}/api/events", daemon.url.replacen("http", "ws", 1));
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        ws_url.as_str(),
    )
    .expect("ws request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        format!("personas, personas.token.{token}")
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect in time")
        .expect("connect");
    let recorder = {
        let streamed = Arc::clone(&streamed);
        tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(Ok(m)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                    streamed.lock().expect("lock").push(t.to_string());
                }
            }
        })
    };

    let http = reqwest::Client::new();
    let call = |op: &'static str, body: Value| {
        let (http, url, token) = (http.clone(), daemon.url.clone(), token.clone());
        async move {
            let resp = http
                .post(format!("{url}/api/{op}"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("api call");
            resp.text().await.expect("body")
        }
    };
    let started = call("run_persona", json!({"persona": "Leaky"})).await;
    let started: Value = serde_json::from_str(&started).expect("run answer");
    let id = started["id"].as_str().expect("execution id").to_string();

    // The run ends (paused for its review), Echo runs, and the channel got every notice.
    let store = env.store();
    let exec_id = personas_core::ExecutionId::from_string(id.clone());
    let deadline = Instant::now() + WAIT;
    let leaky = loop {
        let e = store.executions().get(&exec_id).expect("get");
        if !matches!(
            e.status,
            personas_core::ExecutionStatus::Queued | personas_core::ExecutionStatus::Running
        ) {
            break e;
        }
        assert!(Instant::now() < deadline, "Leaky never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let echo = store.personas().find("Echo").expect("echo");
    loop {
        let runs = store
            .executions()
            .list(&personas_store::ExecutionFilter {
                persona_id: Some(echo.id.clone()),
                ..Default::default()
            })
            .expect("list");
        if runs.iter().any(|e| e.status.is_terminal()) {
            break;
        }
        assert!(Instant::now() < deadline, "Echo never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = sink.wait_for_requests(3, WAIT).await;

    // The run really saw and used its secrets: they were redacted, not absent.
    let lines = store
        .executions()
        .output(&exec_id, 0, 10_000)
        .expect("output");
    let output: String = lines.iter().map(|l| l.text.clone() + "\n").collect();
    for marker in [
        "[redacted:github.token]",
        "[redacted:env.LEAK_CONFIG_TOKEN]",
        "[redacted:env.AWS_SESSION_TOKEN]",
        "[redacted:channel.hook.env:LEAK_CHANNEL_KEY]",
    ] {
        assert!(output.contains(marker), "{marker} missing from:\n{output}");
    }
    let proto = store.protocol();
    let messages = proto.messages(Some(&exec_id), 20).expect("messages");
    assert!(messages.len() >= 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|m| m.content.contains("[redacted:github.token]")),
        "{messages:?}"
    );
    let events = proto.events_of(&exec_id).expect("events");
    assert!(events.len() >= 3, "{events:?}");
    assert!(
        !proto
            .memories(&leaky.persona_id, 20)
            .expect("memories")
            .is_empty(),
        "memories were written"
    );
    assert!(
        delivered
            .iter()
            .any(|r| text(&r.body).contains("[redacted:github.token]")),
        "the channel got the redacted notices"
    );

    // Text a client submits through the API passes the runtime's redactor before it is stored.
    let mut answers: Vec<(String, String)> = Vec::new();
    for (op, body) in [
        (
            "emit_event",
            json!({"type": "api.leak", "payload": {"all": all(), VAULT: [CONFIG]}}),
        ),
        (
            "add_memory",
            json!({"persona": "Echo", "title": format!("t {VAULT}"), "content": all()}),
        ),
    ] {
        let answer = call(op, body).await;
        assert!(answer.contains("[redacted:"), "{op}: {answer}");
        answers.push((format!("API {op}"), answer));
    }
    // And text the CLI stores on the user's behalf passes the same gate.
    let payload = json!({"all": all(), VAULT: [CONFIG]}).to_string();
    let memory = format!("m {}", all());
    for args in [
        vec!["event", "emit", "cli.leak", "--payload", payload.as_str()],
        vec![
            "memory",
            "add",
            "Echo",
            "--title",
            VAULT,
            "--content",
            &memory,
        ],
    ] {
        let out = run_with(&env, &args, "");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    // Everything readable through the API, and through the CLI's exports and listings.
    for (op, body) in [
        ("list_executions", json!({})),
        ("get_execution", json!({"id": id})),
        ("execution_output", json!({"id": id, "limit": 10000})),
        ("list_messages", json!({})),
        ("list_memories", json!({})),
        ("list_events", json!({})),
        ("list_reviews", json!({})),
        ("list_channels", json!({})),
        ("list_credentials", json!({})),
        ("get_settings", json!({})),
        ("get_persona", json!({"persona": "Leaky"})),
        ("get_dashboard", json!({})),
    ] {
        answers.push((format!("API {op}"), call(op, body).await));
    }
    let export = env.data_dir().join("leaky-export.yaml");
    let export_s = export.display().to_string();
    run_with(
        &env,
        &["persona", "export", "Leaky", "--output", &export_s],
        "",
    );
    for args in [
        vec!["execution", "show", id.as_str(), "--json"],
        vec!["execution", "logs", id.as_str()],
        vec!["message", "list", "--json"],
        vec!["memory", "list", "--json"],
        vec!["event", "list", "--json"],
        vec!["review", "list", "--json"],
    ] {
        let out = run_with(&env, &args, "");
        answers.push((format!("personas {}", args.join(" ")), text(&out.stdout)));
    }
    // A marker event emitted last: once it is streamed, so is everything before it.
    call("emit_event", json!({"type": "leak.done", "payload": {}})).await;
    let deadline = Instant::now() + WAIT;
    while !streamed
        .lock()
        .expect("lock")
        .iter()
        .any(|f| f.contains("leak.done"))
    {
        assert!(
            Instant::now() < deadline,
            "the marker event was not streamed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    recorder.abort();
    drop(daemon);

    let needles = needles();
    let mut hits = Vec::new();
    for (place, body) in &answers {
        hits.extend(leak::in_text(&needles, place, body.as_bytes()));
    }
    for (i, frame) in streamed.lock().expect("lock").iter().enumerate() {
        hits.extend(leak::in_text(
            &needles,
            &format!("stream frame {i}"),
            frame.as_bytes(),
        ));
    }
    for (i, r) in delivered.iter().enumerate() {
        let mut all = r.path.clone().into_bytes();
        for (k, v) in &r.headers {
            all.extend_from_slice(format!("\n{k}: {v}").as_bytes());
        }
        all.extend_from_slice(&r.body);
        hits.extend(leak::in_text(&needles, &format!("delivery {i}"), &all));
    }
    let (db_hits, values) = leak::in_database(&needles, &env.data_dir().join("personas.db"));
    assert!(values > 100, "the database search read {values} values");
    hits.extend(db_hits);
    // config.toml is where the user wrote the [env] value (0600); nothing else may hold it.
    let config = env.data_dir().join("config.toml");
    hits.extend(
        leak::in_files(&needles, env.data_dir())
            .into_iter()
            .filter(|h| {
                !(h.starts_with("config [env] value")
                    && h.ends_with(&*config.display().to_string()))
            }),
    );
    assert!(hits.is_empty(), "secrets found:\n{hits:#?}");
}

/// The names a run's environment may hold: the allow-list, the run's own variables, the
/// persona's credentials and the `[env]` entry.
fn allowed(name: &str) -> bool {
    personas_engine::runner::environment::is_inherited(name)
        || [
            "PERSONAS_EXECUTION_ID",
            "PERSONAS_PERSONA_ID",
            "GITHUB_TOKEN",
            "GITHUB_API_URL",
            "LEAK_CONFIG_TOKEN",
            // The run's own: its CLI session files under the data dir, the login where it was.
            "CLAUDE_CONFIG_DIR",
            "CLAUDE_SECURESTORAGE_CONFIG_DIR",
        ]
        .contains(&name)
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_clis_environment_holds_only_allow_listed_names_and_the_personas_credentials() {
    let env = Env::new().await;
    write_config(&env);
    run_with(
        &env,
        &[
            "credential",
            "add",
            "github",
            "--type",
            "github",
            "--field",
            "token",
        ],
        &format!("{VAULT}\n"),
    );
    // The model never answers: the CLI stays up while its environment is read.
    env.persona(
        "Waiter",
        vec![Step::hang(HangPoint::Headers)],
        &["--credential", "github"],
    );
    let mut c = tokio::process::Command::from(env.command());
    c.args(["run", "Waiter", "--follow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in daemon_env() {
        c.env(k, v);
    }
    let mut runner = c.spawn().expect("personas run");
    let store = env.store();
    let deadline = Instant::now() + WAIT;
    // The runner notes the CLI's pid in the run's output ("started … (pid N) …").
    let (exec, pid) = loop {
        let found = store
            .executions()
            .list(&Default::default())
            .expect("list")
            .into_iter()
            .find_map(|e| {
                let lines = store.executions().output(&e.id, 0, 100).ok()?;
                let pid = lines.iter().find_map(|l| {
                    l.text
                        .split("(pid ")
                        .nth(1)?
                        .split(')')
                        .next()?
                        .parse::<u32>()
                        .ok()
                })?;
                Some((e, pid))
            });
        if let Some(f) = found {
            break f;
        }
        assert!(Instant::now() < deadline, "the CLI never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    let vars: Vec<(String, String)> = environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let s = String::from_utf8_lossy(v);
            let (k, val) = s.split_once('=').unwrap_or((&s, ""));
            (k.to_string(), val.to_string())
        })
        .collect();
    let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    let extra: Vec<&&str> = names.iter().filter(|n| !allowed(n)).collect();
    assert!(
        extra.is_empty(),
        "not allow-listed: {extra:?} (all: {names:?})"
    );
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("GITHUB_TOKEN"), Some(VAULT), "the persona's credential");
    assert_eq!(get("LEAK_CONFIG_TOKEN"), Some(CONFIG), "the [env] entry");
    assert_eq!(
        get("AWS_SESSION_TOKEN"),
        Some(DAEMON),
        "an inherited CLI credential"
    );
    assert_eq!(get("PERSONAS_EXECUTION_ID"), Some(exec.id.as_str()));
    for never in [
        "IS_SANDBOX",
        "PERSONAS_VAULT_PASSPHRASE",
        "LEAK_CHANNEL_KEY",
        "LEAK_SHELL_SECRET",
        "PERSONAS_DATA_DIR",
    ] {
        assert_eq!(get(never), None, "{never} reached the run");
    }
    let out = env.run(&["execution", "cancel", exec.id.as_str()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    tokio::time::timeout(WAIT, runner.wait())
        .await
        .expect("the run stopped")
        .expect("wait");
}
