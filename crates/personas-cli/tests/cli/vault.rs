//! Credentials, the vault, permissions and the MCP server, end to end through the `personas`
//! binary: real store, real processes, the real Claude Code CLI against the scripted API, real
//! HTTP servers on loopback for health checks.

use super::{Env, text};
use base64::Engine as _;
use personas_core::{ExecutionId, LineKind};
use personas_testkit::api::{Step, ToolCall};
use personas_testkit::{HttpSink, SilentServer, files_containing};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

const PASS: &str = "correct horse battery staple";
const TOKEN: &str = "ghp_Zq8vRealLookingT0ken4PersonasTest";

impl Env {
    /// Runs `personas` with extra environment and `stdin` fed in.
    fn run_with(&self, args: &[&str], vars: &[(&str, &str)], stdin: &str) -> Output {
        let mut c = self.command();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn personas");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait personas")
    }

    fn with_pass(&self, args: &[&str]) -> Output {
        self.run_with(args, &[("PERSONAS_VAULT_PASSPHRASE", PASS)], "")
    }

    fn json_pass(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.with_pass(&all);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    fn add_github(&self, name: &str, token: &str, api_url: Option<&str>) {
        let mut args = vec![
            "credential",
            "add",
            name,
            "--type",
            "github",
            "--field",
            "token",
        ];
        let url;
        if let Some(u) = api_url {
            url = format!("api_url={u}");
            args.extend(["--field", &url]);
        }
        // The value arrives on stdin, never in argv (which other users can read).
        let out = self.run_with(
            &args,
            &[("PERSONAS_VAULT_PASSPHRASE", PASS)],
            &format!("{token}\n"),
        );
        assert!(out.status.success(), "add {name}: {}", text(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_reaches_the_run_environment_and_every_copy_is_redacted() {
    let env = Env::new().await;
    env.add_github("github", TOKEN, None);
    let listed = env.run(&["credential", "list", "--json"]);
    assert!(listed.status.success(), "list needs no passphrase");
    let listed = text(&listed.stdout);
    assert!(
        listed.contains("\"github\"") && !listed.contains(TOKEN),
        "{listed}"
    );
    let shown = text(&env.run(&["credential", "show", "github", "--json"]).stdout);
    assert!(
        shown.contains("GITHUB_TOKEN") && !shown.contains(TOKEN),
        "{shown}"
    );

    let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    let tool = env.run(&[
        "tool",
        "add",
        "open-issue",
        "--description",
        "Opens a GitHub issue",
        "--url",
        "https://api.github.com/repos/o/r/issues",
        "--method",
        "POST",
        "-H",
        "Authorization: Bearer $GITHUB_TOKEN",
    ]);
    assert!(tool.status.success(), "{}", text(&tool.stderr));
    env.persona(
        "Triage",
        vec![
            Step::tool_use(vec![ToolCall::bash(
                "t1",
                "printenv GITHUB_TOKEN; printenv GITHUB_TOKEN | base64; echo \"$GITHUB_TOKEN\" >&2",
            )]),
            Step::text(format!(
                "The token is {TOKEN}.\n{{\"user_message\": {{\"title\": \"leak {TOKEN}\", \"content\": \"b64 {b64}\"}}}}"
            )),
        ],
        &["--credential", "github", "--tool", "open-issue", "--allow-tool", "Bash"],
    );
    let log = env.data_dir().join("run.log");
    let out = env.run_with(
        &["run", "Triage", "--follow", "--json"],
        &[("PERSONAS_VAULT_PASSPHRASE", PASS), ("RUST_LOG", "debug")],
        "",
    );
    std::fs::write(&log, [&out.stdout[..], &out.stderr[..]].concat()).expect("write log");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));

    // The broadcast output (what --follow printed from the engine's events).
    assert!(stdout.contains("[redacted:github.token]"), "{stdout}");
    // The stored output: the tool really saw the value (it printed it, now a marker), the
    // base64 copy and the agent's own words are markers too.
    let store = env.store();
    let exec = &store.executions().list(&Default::default()).expect("list")[0];
    let lines = store
        .executions()
        .output(&exec.id, 0, 1000)
        .expect("output");
    let tool_result = lines
        .iter()
        .find(|l| l.kind == LineKind::ToolResult)
        .expect("tool result");
    // printenv, printenv | base64, echo >&2: three copies, each in content and in stdout.
    assert_eq!(
        tool_result.text.matches("[redacted:github.token]").count(),
        6,
        "{}",
        tool_result.text
    );
    assert!(!tool_result.text.contains(TOKEN) && !tool_result.text.contains(&b64[..40]));
    assert!(
        exec.result_text
            .as_deref()
            .is_some_and(|r| r.contains("[redacted:github.token]"))
    );
    let msg = &store
        .protocol()
        .messages(Some(&exec.id), 5)
        .expect("messages")[0];
    assert_eq!(msg.title.as_deref(), Some("leak [redacted:github.token]"));
    assert_eq!(msg.content, "b64 [redacted:github.token]");
    // The prompt names the variable and never holds the value.
    let prompt = env.api.requests()[0].all_text();
    assert!(
        prompt.contains("github (github): GITHUB_API_URL, GITHUB_TOKEN"),
        "{prompt}"
    );
    assert!(!prompt.contains(TOKEN));
    drop(store);

    // Zero hits for the value or its base64 anywhere in the data dir (SQLite file, WAL, the
    // workspaces) and in the captured log.
    for needle in [TOKEN.as_bytes(), b64.as_bytes()] {
        let hits = files_containing(env.data_dir(), needle);
        assert!(hits.is_empty(), "value found in {hits:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_record_ok_unauthorized_and_timeout() {
    let env = Env::new().await;
    let github = HttpSink::github_like(TOKEN).await;
    let url = github.base_url();
    let silent = SilentServer::start().await;
    env.add_github("good", TOKEN, Some(&url));
    env.add_github("bad", "ghp_revokedTokenValue000", Some(&url));
    env.add_github("slow", TOKEN, Some(&silent.base_url()));

    let ok = env.with_pass(&["credential", "test", "good"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    let bad = env.with_pass(&["credential", "test", "bad"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stdout).contains("HTTP 401"),
        "{}",
        text(&bad.stdout)
    );
    let slow = env.with_pass(&["credential", "test", "slow", "--timeout", "1"]);
    assert_eq!(slow.status.code(), Some(1));
    assert!(
        text(&slow.stdout).contains("timed out"),
        "{}",
        text(&slow.stdout)
    );
    assert_eq!(
        github
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == "/user")
            .count(),
        2
    );

    let list = env.json(&["credential", "list"]);
    let find = |n: &str| {
        list["credentials"]
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["name"] == n)
            .cloned()
            .expect(n)
    };
    assert_eq!(
        (
            find("good")["last_check"]["ok"].clone(),
            find("good")["last_check"]["error"].clone()
        ),
        (json!(true), Value::Null)
    );
    assert_eq!(find("bad")["last_check"]["ok"], json!(false));
    assert!(
        find("bad")["last_check"]["error"]
            .as_str()
            .expect("error")
            .contains("401")
    );
    assert_eq!(find("slow")["last_check"]["ok"], json!(false));
    assert!(
        find("slow")["last_check"]["error"]
            .as_str()
            .expect("error")
            .contains("timed out")
    );
    assert!(find("good")["last_check"]["at"].is_string());
    assert!(files_containing(env.data_dir(), TOKEN.as_bytes()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_store_refuses_a_wrong_passphrase_changes_nothing_and_rotation_keeps_values() {
    let env = Env::new().await;
    // No keychain on this machine (and none reachable from the cleared environment), no
    // passphrase: refused, nothing stored.
    let out = env.run_with(
        &[
            "credential",
            "add",
            "github",
            "--type",
            "github",
            "--field",
            "token",
        ],
        &[],
        &format!("{TOKEN}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing to store secrets") && err.contains("PERSONAS_VAULT_PASSPHRASE"),
        "{err}"
    );
    assert!(
        env.json(&["credential", "list"])["credentials"]
            .as_array()
            .expect("a")
            .is_empty()
    );

    let github = HttpSink::github_like(TOKEN).await;
    let url = github.base_url();
    env.add_github("github", TOKEN, Some(&url));
    let db_before = env.store().credentials().vault().expect("v");
    let sealed_before = env.store().credentials().all_sealed().expect("s");
    let wrong = [("PERSONAS_VAULT_PASSPHRASE", "not the passphrase")];
    let out = env.run_with(
        &[
            "credential",
            "add",
            "other",
            "--type",
            "github",
            "--field",
            "token",
        ],
        &wrong,
        "ghp_otherValue123456\n",
    );
    // The API answers `unavailable` (field `vault`): the vault cannot be used as configured.
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("wrong vault passphrase"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run_with(&["vault", "rotate"], &wrong, "");
    assert_eq!(out.status.code(), Some(1));
    let out = env.run_with(&["credential", "test", "github"], &wrong, "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        env.store().credentials().vault().expect("v"),
        db_before,
        "key record untouched"
    );
    assert_eq!(
        env.store().credentials().all_sealed().expect("s"),
        sealed_before,
        "values untouched"
    );
    assert_eq!(
        env.json(&["credential", "list"])["credentials"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let rotated = env.json_pass(&["vault", "rotate"]);
    assert_eq!(
        (rotated["resealed"].clone(), rotated["generation"].clone()),
        (json!(1), json!(2))
    );
    assert_ne!(
        env.store().credentials().all_sealed().expect("s"),
        sealed_before
    );
    // Still readable: the health check decrypts it and the server accepts exactly that token.
    let ok = env.with_pass(&["credential", "test", "github"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    let status = env.json(&["vault", "status"]);
    assert_eq!(
        (status["mode"].clone(), status["generation"].clone()),
        (json!("passphrase"), json!(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credential_input_is_refused_with_exit_2_and_nothing_stored() {
    let env = Env::new().await;
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "credential",
                "add",
                "x",
                "--type",
                "gitlab",
                "--field",
                "token=abcdef",
            ],
            "unknown credential type \"gitlab\"",
        ),
        (
            &[
                "credential",
                "add",
                "x",
                "--type",
                "jira",
                "--field",
                "email=a@b.c",
            ],
            "field base_url: is required",
        ),
        (
            &[
                "credential",
                "add",
                "x",
                "--type",
                "github",
                "--field",
                "token=abcdef",
                "--env",
                "token=LD_PRELOAD",
            ],
            "LD_PRELOAD is on the deny-list",
        ),
        (
            &[
                "credential",
                "add",
                "x",
                "--type",
                "github",
                "--field",
                "token=abcdef",
                "--env",
                "token=PATH",
            ],
            "PATH is on the deny-list",
        ),
        (
            &[
                "persona",
                "create",
                "--name",
                "P",
                "--prompt",
                "x",
                "--credential",
                "nosuch",
            ],
            "no credential named \"nosuch\"",
        ),
    ];
    for (args, want) in cases {
        let out = env.with_pass(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(want),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let store = env.store();
    assert!(
        store.credentials().vault().expect("v").is_none(),
        "no vault was created"
    );
    assert!(
        store.personas().list().expect("l").is_empty(),
        "no half-made persona"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_persona_cannot_write_and_an_editing_one_can() {
    let env = Env::new().await;
    let steps = |id: &str| {
        vec![
            Step::tool_use(vec![ToolCall::new(
                format!("{id}w"),
                "Write",
                json!({"file_path": "PLACEHOLDER", "content": "hello"}),
            )]),
            Step::text("tried"),
        ]
    };
    for (name, template) in [("Reader", "read-only"), ("Editor", "edit-in-workspace")] {
        env.persona(name, steps(name), &["--permissions-template", template]);
    }
    // The Write path must be absolute, inside the persona's working directory.
    let store = env.store();
    for name in ["Reader", "Editor"] {
        let p = store.personas().find(name).expect("persona");
        let target = env
            .data_dir()
            .join("workspaces")
            .join(p.id.as_str())
            .join("out.txt");
        // Re-script with the real path now that the id is known.
        let key = p
            .instructions
            .trim_start_matches("Follow script ")
            .trim_end_matches('.')
            .to_string();
        env.api.script(
            &key,
            vec![
                Step::tool_use(vec![
                    ToolCall::new(
                        "w1",
                        "Write",
                        json!({"file_path": target, "content": "hello"}),
                    ),
                    ToolCall::bash(
                        "b1",
                        format!("echo hi > {}", target.with_file_name("bash.txt").display()),
                    ),
                ]),
                Step::text("tried"),
            ],
        );
        let out = env.run(&["run", name, "--follow"]);
        assert!(out.status.success(), "{name}: {}", text(&out.stdout));
    }
    let workspace = |name: &str| {
        env.data_dir()
            .join("workspaces")
            .join(store.personas().find(name).expect("p").id.as_str())
    };
    assert!(
        !workspace("Reader").join("out.txt").exists(),
        "read-only persona wrote a file"
    );
    assert!(
        !workspace("Reader").join("bash.txt").exists(),
        "read-only persona ran a shell write"
    );
    assert!(
        workspace("Editor").join("out.txt").exists(),
        "edit-in-workspace persona could not write"
    );
    let execs = store.executions().list(&Default::default()).expect("list");
    let reader = execs
        .iter()
        .find(|e| e.persona_name == "Reader")
        .expect("reader run");
    let denied: Vec<&str> = reader
        .permission_denials
        .iter()
        .map(|d| d.tool_name.as_str())
        .collect();
    assert!(denied.contains(&"Write"), "{denied:?}");
    let shown = text(&env.run(&["execution", "show", reader.id.as_str()]).stdout);
    assert!(shown.contains("Write"), "denials are visible: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_cli_calls_emit_event_over_mcp_and_the_event_is_linked_to_its_run() {
    let env = Env::new().await;
    env.persona(
        "Emitter",
        vec![
            Step::tool_use(vec![ToolCall::new(
                "m1",
                "mcp__personas__emit_event",
                json!({"type": "ticket.created", "data": {"id": 42}}),
            )]),
            Step::text("emitted"),
        ],
        &[],
    );
    let out = env.run(&["run", "Emitter", "--follow"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let store = env.store();
    let exec = &store.executions().list(&Default::default()).expect("list")[0];
    let events = store.protocol().events_of(&exec.id).expect("events");
    assert_eq!(events.len(), 1, "{}", text(&out.stdout));
    assert_eq!(events[0].event_type, "ticket.created");
    assert_eq!(events[0].payload, json!({"id": 42}));
    assert_eq!(events[0].source_kind.as_str(), "persona");
    let lines = store
        .executions()
        .output(&exec.id, 0, 1000)
        .expect("output");
    let result = lines
        .iter()
        .find(|l| l.kind == LineKind::ToolResult)
        .expect("tool result");
    assert!(
        result.text.contains("event ticket.created published"),
        "{}",
        result.text
    );
    assert!(
        exec.permission_denials.is_empty(),
        "{:?}",
        exec.permission_denials
    );
    // The per-run config (with its token) is gone.
    let run_dir = env.data_dir().join("run");
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    // The finished run's token no longer works, even presented with the right execution id:
    // its tool channel closed with the run, and the server opens no store to act by itself.
    let mut mcp = super::mcp::McpSession::start(
        &env,
        &[
            ("PERSONAS_MCP_EXECUTION_ID", exec.id.as_str()),
            ("PERSONAS_MCP_TOKEN", &"0".repeat(64)),
        ],
    )
    .await;
    let (is_error, reply) = mcp.tool("emit_event", json!({"type": "x.y"})).await;
    assert!(is_error && reply.contains("rejected"), "{reply}");
    mcp.close().await;
    assert_eq!(
        store
            .protocol()
            .events_of(&ExecutionId::from_string(exec.id.as_str()))
            .expect("e")
            .len(),
        1
    );
    // NOTE: that a subscribed persona then runs needs the event bus dispatcher (issue 3).
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_emitted_over_mcp_starts_the_subscribed_persona() {
    let env = Env::new().await;
    env.persona(
        "Emitter",
        vec![
            Step::tool_use(vec![ToolCall::new(
                "m1",
                "mcp__personas__emit_event",
                json!({"type": "ticket.created", "data": {"id": 42}}),
            )]),
            Step::text("emitted"),
        ],
        &[],
    );
    env.persona("Triage", vec![Step::text("triaged ticket 42")], &[]);
    let out = env.run(&["trigger", "add", "Triage", "--event", "ticket.created"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let _daemon = super::Daemon::start(&env, &[]).await;
    let out = env.run(&["run", "Emitter", "--follow"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let store = env.store();
    let triage = store.personas().find("Triage").expect("triage");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let run = loop {
        let runs = store
            .executions()
            .list(&personas_store::ExecutionFilter {
                persona_id: Some(triage.id.clone()),
                ..Default::default()
            })
            .expect("list");
        if let Some(done) = runs.into_iter().find(|e| e.status.is_terminal()) {
            break done;
        }
        assert!(std::time::Instant::now() < deadline, "Triage never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        run.status,
        personas_core::ExecutionStatus::Completed,
        "{:?}",
        run.error_message
    );
    assert_eq!(run.trigger, personas_core::TriggerKind::Event);
    // The subscriber saw the event in its prompt: type, source and payload.
    let req = env
        .api
        .requests()
        .into_iter()
        .find(|r| r.all_text().contains("Triggering event"))
        .expect("the subscriber's request");
    let prompt = req.all_text();
    assert!(prompt.contains("ticket.created"), "{prompt}");
    assert!(prompt.contains("\"id\": 42"), "{prompt}");
}
