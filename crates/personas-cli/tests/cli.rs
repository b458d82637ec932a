//! The `personas` binary end to end: real processes, real store, the real Claude Code CLI against
//! the scripted Messages API.

use personas_core::{ErrorClass, ExecutionStatus};
use personas_store::Store;
use personas_testkit::api::{ScriptedApi, Step, ToolCall};
use personas_testkit::claude::{IsolatedEnv, claude_bin, isolated_env};
use personas_testkit::process_table_has;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const WAIT: Duration = Duration::from_secs(90);

#[path = "cli/perms.rs"]
mod perms;
#[path = "cli/vault.rs"]
mod vault;

#[path = "cli/cloud.rs"]
mod cloud;
#[path = "cli/datasafe.rs"]
mod datasafe;
#[path = "cli/leak.rs"]
mod leak;
#[path = "cli/mcp.rs"]
mod mcp;

struct Env {
    api: ScriptedApi,
    claude_env: IsolatedEnv,
    dir: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        let api = ScriptedApi::start().await;
        let claude_env = isolated_env(&api);
        Env {
            api,
            claude_env,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_personas"));
        c.env_clear();
        for (k, v) in &self.claude_env.vars {
            c.env(k, v);
        }
        c.env("PERSONAS_DATA_DIR", self.data_dir())
            .env("PERSONAS_CLAUDE_PATH", claude_bin())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run personas")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?} printed non-JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Creates a persona scripted with `steps` (a unique key in its prompt selects the script).
    fn persona(&self, name: &str, steps: Vec<Step>, extra: &[&str]) {
        let key = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
        self.api.script(&key, steps);
        let prompt = format!("Follow script {key}.");
        let mut args = vec!["persona", "create", "--name", name, "--prompt", &prompt];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn store(&self) -> Store {
        Store::open_in_dir(self.data_dir()).expect("store")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persona_lifecycle_and_file_round_trip() {
    let env = Env::new().await;
    let created = env.json(&[
        "persona",
        "create",
        "--name",
        "Release notes writer",
        "--prompt",
        "Summarise the input as release notes",
        "--allow-tool",
        "Read",
        "--max-concurrent",
        "2",
        "--timeout",
        "300",
    ]);
    assert_eq!(created["name"], "Release notes writer");
    assert_eq!(created["max_concurrent"], 2);
    assert_eq!(created["permissions"]["allow"], serde_json::json!(["Read"]));

    // `persona list --json` is `list_personas`' answer.
    let list = env.json(&["persona", "list"]);
    assert_eq!(list["personas"].as_array().map(Vec::len), Some(1));
    assert!(list["personas"][0]["id"].is_string());

    let updated = env.json(&[
        "persona",
        "update",
        "release notes writer",
        "--prompt",
        "Be brief.",
        "--model",
        "sonnet",
    ]);
    assert_eq!(updated["prompt_version"], 2);
    // `persona show --json` is `get_persona`; the versions are `persona versions`.
    let shown = env.json(&["persona", "show", created["id"].as_str().expect("id")]);
    assert_eq!(shown["prompt_version"], 2);
    let versions = env.json(&["persona", "versions", "Release notes writer"]);
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(2));
    let human = env.run(&["persona", "show", "Release notes writer"]);
    assert!(
        text(&human.stdout).contains("v2 (2 stored)"),
        "{}",
        text(&human.stdout)
    );

    for ext in ["yaml", "json"] {
        let file = env.data_dir().join(format!("p.{ext}"));
        let out = env.run(&[
            "persona",
            "export",
            "Release notes writer",
            "--output",
            file.to_str().expect("utf8"),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Importing over the existing one is refused without --replace, and nothing changes.
        let out = env.run(&["persona", "import", file.to_str().expect("utf8")]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("already exists"));
        let out = env.run(&["persona", "delete", "Release notes writer"]);
        assert!(out.status.success());
        // A new persona allowed a tool is more than the default policy: granted explicitly.
        let out = env.run(&["persona", "import", file.to_str().expect("utf8")]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("allowed tools Read"));
        let answer = env.json(&["persona", "import", file.to_str().expect("utf8"), "--grant"]);
        assert_eq!(answer["granted"], serde_json::json!(["allowed tools Read"]));
        let imported = &answer["persona"];
        assert_eq!(imported["instructions"], "Be brief.");
        assert_eq!(imported["model"], "sonnet");
        assert_eq!(imported["timeout_secs"], 300);
        assert_eq!(
            imported["permissions"]["allow"],
            serde_json::json!(["Read"])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_exit_2_and_the_store_untouched() {
    let env = Env::new().await;
    env.persona("Solo", vec![], &[]);

    let dup = env.run(&["persona", "create", "--name", "SOLO", "--prompt", "x"]);
    assert_eq!(dup.status.code(), Some(2));
    assert!(
        text(&dup.stderr).contains("already exists"),
        "{}",
        text(&dup.stderr)
    );

    let bad_limit = env.run(&[
        "persona",
        "create",
        "--name",
        "Other",
        "--prompt",
        "x",
        "--max-concurrent",
        "0",
    ]);
    assert_eq!(bad_limit.status.code(), Some(2));
    assert!(
        text(&bad_limit.stderr).contains("max_concurrent"),
        "{}",
        text(&bad_limit.stderr)
    );

    let unknown = env.run(&["run", "Nobody", "--follow"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("persona not found: Nobody"),
        "{}",
        text(&unknown.stderr)
    );

    let bad_json = env.run(&["run", "Solo", "--input", "{commits: [}"]);
    assert_eq!(bad_json.status.code(), Some(2));
    assert!(
        text(&bad_json.stderr).contains("--input is not valid JSON"),
        "{}",
        text(&bad_json.stderr)
    );

    let file = env.data_dir().join("broken.yaml");
    std::fs::write(
        &file,
        "format: personas/v1\nname: Broken\ninstructions: x\nlimits: {max_concurent: 3}\n",
    )
    .expect("write");
    let bad_file = env.run(&["persona", "import", file.to_str().expect("utf8")]);
    assert_eq!(bad_file.status.code(), Some(2));
    assert!(
        text(&bad_file.stderr).contains("max_concurent"),
        "{}",
        text(&bad_file.stderr)
    );

    let usage = env.run(&["persona", "create", "--name", "NoPrompt"]);
    assert_eq!(usage.status.code(), Some(2), "clap usage errors exit 2");

    let store = env.store();
    assert_eq!(
        store.personas().list().expect("list").len(),
        1,
        "only Solo exists"
    );
    assert!(
        store
            .executions()
            .list(&Default::default())
            .expect("list")
            .is_empty(),
        "no execution was queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follow_without_a_daemon_streams_and_summarises() {
    let env = Env::new().await;
    env.persona(
        "Release notes writer",
        vec![
            Step::tool_use(vec![ToolCall::bash("t1", "echo notes-from-tool")]),
            Step::text("## Release notes\n- fix: x\n- feat: y\n{\"user_message\": {\"title\": \"Notes ready\", \"content\": \"see execution\"}}"),
        ],
        &["--allow-tool", "Bash(echo *)"],
    );
    let out = env.run(&[
        "run",
        "Release notes writer",
        "--input",
        r#"{"commits":["fix: x","feat: y"]}"#,
        "--follow",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(stdout.contains("→ Bash: echo notes-from-tool"), "{stdout}");
    assert!(stdout.contains("← notes-from-tool"), "{stdout}");
    assert!(stdout.contains("## Release notes"), "{stdout}");
    assert!(
        stdout.contains("★ user_message: Notes ready: see execution"),
        "{stdout}"
    );
    assert!(stdout.contains("✔ completed in"), "{stdout}");
    assert!(
        stdout.contains("2 turns") && stdout.contains("$0."),
        "{stdout}"
    );

    let list = env.json(&["execution", "list"]);
    let exec = &list["executions"][0];
    assert_eq!(exec["status"], "completed");
    let id = exec["id"].as_str().expect("id");
    let shown = env.json(&["execution", "show", &id[..28]]);
    assert_eq!(shown["id"], id, "found by prefix");
    let messages = env.json(&["message", "list"]);
    assert_eq!(messages["messages"][0]["title"], "Notes ready");
    assert_eq!(messages["unread"], 1);
    let logs = env.run(&["execution", "logs", id]);
    assert!(text(&logs.stdout).contains("## Release notes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_claude_binary_fails_the_run_with_exit_1_and_a_hint() {
    let env = Env::new().await;
    env.persona("Solo", vec![], &[]);
    let out = env
        .command()
        .args(["run", "Solo", "--follow"])
        .env("PERSONAS_CLAUDE_PATH", "/nonexistent/claude")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("[cli_missing]")
            && stdout.contains("npm install -g @anthropic-ai/claude-code"),
        "{stdout}"
    );
    let e = &env.json(&["execution", "list"])["executions"][0];
    assert_eq!(
        (e["status"].as_str(), e["error_class"].as_str()),
        (Some("failed"), Some("cli_missing"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_the_cli_and_its_version() {
    let env = Env::new().await;
    // `doctor --json` is `system_check`'s report.
    let report = env.json(&["doctor"]);
    assert_eq!(report["ok"], true, "{report}");
    let checks = &report["checks"];
    let find = |name: &str| {
        checks
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["check"] == name)
            .cloned()
            .expect(name)
    };
    assert_eq!(find("claude cli")["status"], "ok");
    assert!(
        find("claude cli")["detail"]
            .as_str()
            .expect("detail")
            .contains(claude_bin().to_str().expect("utf8"))
    );
    assert!(
        find("claude version")["detail"]
            .as_str()
            .expect("detail")
            .starts_with("2.1.197")
    );
    assert_eq!(
        find("claude auth")["status"],
        "ok",
        "ANTHROPIC_API_KEY is set in the test env"
    );
    assert_eq!(find("store")["status"], "ok");
}

/// A `personas up` child process, killed when dropped.
struct Daemon {
    child: tokio::process::Child,
    url: String,
}

impl Daemon {
    async fn start(env: &Env, extra_env: &[(&str, &str)]) -> Daemon {
        let mut cmd = tokio::process::Command::from(env.command());
        cmd.args(["up", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn personas up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.expect("read") {
                if let Some(rest) = line.split("running at ").nth(1) {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
            None
        })
        .await
        .expect("daemon became ready")
        .expect("daemon printed its URL");
        // Keep draining stdout so the daemon never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Daemon { child, url: ready }
    }

    fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }
}

async fn wait_status(
    store: &Store,
    id: &personas_core::ExecutionId,
    pred: impl Fn(ExecutionStatus) -> bool,
) -> personas_core::Execution {
    // Another process changes the row, so the store is polled (there is no cross-process event).
    let deadline = Instant::now() + WAIT;
    loop {
        let e = store.executions().get(id).expect("get");
        if pred(e.status) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "execution {id} stuck in {}",
            e.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_handed_to_a_running_daemon_and_a_second_daemon_is_refused() {
    let env = Env::new().await;
    env.persona("Greeter", vec![Step::text("hello from the daemon")], &[]);
    let daemon = Daemon::start(&env, &[]).await;
    let health: Value = reqwest::get(format!("{}/api/health", daemon.url))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["ok"], true);

    let second = env.run(&["up", "--listen", "127.0.0.1:0"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("already running"),
        "{}",
        text(&second.stderr)
    );

    // Without --follow: queued, handed over, printed id, returns at once.
    let out = env.run(&["run", "Greeter"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = personas_core::ExecutionId::from_string(text(&out.stdout).trim());
    let done = wait_status(&env.store(), &id, ExecutionStatus::is_terminal).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );

    // With --follow: the daemon runs it, the CLI streams it from the store.
    let out = env.run(&["run", "Greeter", "--follow"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("hello from the daemon"),
        "{}",
        text(&out.stdout)
    );
    let owned_by_daemon = env
        .store()
        .executions()
        .list(&Default::default())
        .expect("list");
    assert_eq!(owned_by_daemon.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_mid_run_loses_nothing() {
    let env = Env::new().await;
    let marker = format!("personas-crash-{}", uuid::Uuid::new_v4().simple());
    env.persona(
        "Sleeper",
        vec![
            Step::tool_use(vec![ToolCall::bash(
                "s1",
                format!("exec -a {marker} sleep 300"),
            )]),
            Step::text("never"),
        ],
        &["--allow-tool", "Bash"],
    );
    env.persona("Quick", vec![Step::text("quick answer")], &[]);
    let store = env.store();
    let sleeper = store.personas().find("Sleeper").expect("sleeper");
    let quick = store.personas().find("Quick").expect("quick");

    // One slot: Sleeper runs, Quick waits in the queue.
    let mut daemon = Daemon::start(&env, &[("PERSONAS_MAX_CONCURRENT", "1")]).await;
    let running = store
        .executions()
        .enqueue(&personas_store::NewExecution::manual(
            sleeper.id.clone(),
            None,
        ))
        .expect("enqueue");
    wait_status(&store, &running.id, |s| s == ExecutionStatus::Running).await;
    let queued = store
        .executions()
        .enqueue(&personas_store::NewExecution::manual(
            quick.id.clone(),
            None,
        ))
        .expect("enqueue");
    // Wait until the tool process really runs, then kill the daemon hard.
    let deadline = Instant::now() + WAIT;
    while !process_table_has(&marker) {
        assert!(Instant::now() < deadline, "the tool never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nix_kill(daemon.pid(), 9);
    let _ = daemon.child.wait().await;
    assert_eq!(
        store.executions().get(&queued.id).expect("queued").status,
        ExecutionStatus::Queued
    );

    // Restart: the running one is failed/interrupted and its orphans killed; the queued one runs.
    let _daemon = Daemon::start(&env, &[("PERSONAS_MAX_CONCURRENT", "1")]).await;
    let interrupted = wait_status(&store, &running.id, ExecutionStatus::is_terminal).await;
    assert_eq!(
        (interrupted.status, interrupted.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::Interrupted))
    );
    let done = wait_status(&store, &queued.id, ExecutionStatus::is_terminal).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );
    assert!(
        !process_table_has(&marker),
        "the orphaned tool process was reaped"
    );
    let all = store.executions().list(&Default::default()).expect("list");
    assert_eq!(all.len(), 2, "nothing lost, nothing duplicated");
}

fn nix_kill(pid: i32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

mod bus;
mod review;
