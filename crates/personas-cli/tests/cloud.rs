//! The desktop/CLI side of the cloud end to end, against a real cloud on loopback (testkit's
//! `CloudStack`: Postgres, the Tansu broker, an orchestrator and a worker of the
//! `personas-cloud` binary, the worker running the real Claude CLI against the scripted Messages
//! API): a persona with a linked credential pushed from the CLI runs on the cloud worker, its
//! output streams to the local side in order while it runs, and the local store holds the
//! finished execution — same id, statuses, lines, cost and result — with the connection's token
//! only sealed in the vault. A run started without `--follow` and without a runtime is left
//! pending, and the runtime that starts next resumes its mirror to the end.
//!
//! The `personas-cloud` binary is the workspace's (`cargo build -p personas-cloud` first; the
//! workspace's `cargo test` builds it): this crate must not depend on it (librdkafka stays out of
//! the CLI), so the test finds it next to the `personas` binary.

use personas_cloud_api::model::OutputRequest;
use personas_core::{ExecutionId, ExecutionStatus, TriggerKind};
use personas_store::Store;
use personas_testkit::api::{ScriptedApi, Step, ToolCall};
use personas_testkit::claude::{IsolatedEnv, claude_bin, isolated_env};
use personas_testkit::cloud::{CloudStack, StackOptions};
use personas_testkit::leak::{Needle, in_database, in_files};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PASS: &str = "correct horse battery staple";
/// The linked credential's value: pushed sealed, opened on the worker only.
const GH: &str = "ghp_CloudPushed/S3cret+0123456789abcdef";
const WAIT: Duration = Duration::from_secs(120);

fn cloud_binary() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_personas")).with_file_name("personas-cloud");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p personas-cloud)",
        bin.display()
    );
    bin
}

struct Local {
    env: IsolatedEnv,
    dir: tempfile::TempDir,
}

impl Local {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_personas"));
        c.env_clear()
            .envs(self.env.vars.iter().map(|(k, v)| (k, v)))
            .env("PERSONAS_DATA_DIR", self.dir.path())
            .env("PERSONAS_CLAUDE_PATH", claude_bin())
            .env("PERSONAS_VAULT_PASSPHRASE", PASS)
            .env("PERSONAS_VAULT_KEYCHAIN", "off")
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start personas");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin");
        child.wait_with_output().expect("personas")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all, "");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_persona_runs_on_a_cloud_worker_and_is_mirrored_here_in_order_also_after_a_restart()
 {
    let api = ScriptedApi::start().await;
    let mut options = StackOptions::new(cloud_binary());
    options.orchestrators = 1;
    options.workers = 1;
    options.claude_path = Some(claude_bin());
    // The worker's model credentials: the scripted API, as a local run gets them.
    options.worker_env = isolated_env(&api).vars;
    let stack = CloudStack::start(options).await;
    let local = Local {
        env: isolated_env(&api),
        dir: tempfile::tempdir().expect("dir"),
    };

    // A persona with a linked credential, scripted to print ten numbered lines through Bash.
    let key = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
    api.script(
        &key,
        vec![
            Step::ToolUse {
                text: Some("Writing the notes.".into()),
                calls: vec![ToolCall::bash(
                    "t1",
                    "for i in 1 2 3 4 5 6 7 8 9 10; do echo note-$i; done; test -n \"$GITHUB_TOKEN\" && echo has-token",
                )],
            },
            Step::Text("Release notes written.".into()),
        ],
    );
    let out = local.run(
        &[
            "credential",
            "add",
            "gh",
            "--type",
            "github",
            "--field",
            "token",
        ],
        &format!("{GH}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prompt = format!("Follow script {key}.");
    let created = local.json(&[
        "persona",
        "create",
        "--name",
        "Release notes writer",
        "--prompt",
        &prompt,
        "--allow-tool",
        "Bash",
        "--credential",
        "gh",
    ]);
    let persona_id = created["id"].as_str().expect("id").to_string();

    // A token the orchestrator refuses: a usage error naming it, nothing stored.
    let out = local.run(
        &[
            "cloud",
            "connect",
            &stack.url(),
            "--token",
            "not-the-admin-token",
        ],
        "",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused the token"), "{err}");
    assert_eq!(local.json(&["cloud", "status"])["connected"], false);

    // Connect (the token checked by the orchestrator, then sealed here), push, run, follow.
    let status = local.json(&[
        "cloud",
        "connect",
        &stack.url(),
        "--token",
        stack.admin_token(),
    ]);
    assert_eq!(
        (&status["connected"], &status["reachable"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{status}"
    );
    assert_eq!(
        status["cluster"]["workers"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );
    let pushed = local.json(&["persona", "push", "Release notes writer"]);
    assert_eq!(pushed["id"], persona_id.as_str(), "{pushed}");
    assert_eq!(pushed["credentials"], serde_json::json!(["gh"]), "{pushed}");

    let started = Instant::now();
    let mut follow = local
        .command(&[
            "run",
            "Release notes writer",
            "--cloud",
            "--input",
            r#"{"version": "1.2"}"#,
            "--follow",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run --cloud --follow");
    let stdout = follow.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(&l.expect("line")).expect("JSON line"))
            .collect::<Vec<Value>>()
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = follow.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "run --cloud --follow did not end in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let printed = reader.join().expect("reader");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follow.stderr.take().expect("stderr"), &mut err).ok();
    assert!(
        status.success(),
        "run --cloud --follow: {err}\n{printed:#?}"
    );
    let elapsed = started.elapsed();

    // What streamed here: lines 1..n in order, then the completed execution.
    let (last, lines) = printed.split_last().expect("output");
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["trigger"], "cloud", "{last}");
    let seqs: Vec<i64> = lines
        .iter()
        .map(|l| l["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let streamed = lines
        .iter()
        .map(|l| l["text"].as_str().unwrap_or(""))
        .collect::<String>();
    for i in 1..=10 {
        assert!(
            streamed.contains(&format!("note-{i}")),
            "note-{i} missing: {streamed}"
        );
    }
    assert!(
        streamed.contains("has-token"),
        "the worker's CLI had the credential: {streamed}"
    );
    assert!(!streamed.contains(GH), "the credential's value is redacted");

    // The local store holds the finished execution, exactly as the cloud has it.
    let id = ExecutionId::from_string(last["id"].as_str().expect("id").to_string());
    let cloud = stack.client();
    let page = cloud
        .execution_output(&OutputRequest {
            id: id.clone(),
            after_seq: None,
            limit: Some(5000),
        })
        .await
        .expect("cloud output");
    let store = Store::open_in_dir(local.dir.path()).expect("store");
    let mirrored = store.executions().get(&id).expect("mirrored row");
    assert_eq!(mirrored.status, ExecutionStatus::Completed);
    assert_eq!(mirrored.trigger, TriggerKind::Cloud);
    assert_eq!(mirrored.persona_id.as_str(), persona_id);
    assert_eq!(
        mirrored.result_text.as_deref(),
        Some("Release notes written.")
    );
    let local_lines = store.executions().output(&id, 0, 5000).expect("output");
    let ours: Vec<(i64, String, String)> = local_lines
        .iter()
        .map(|l| (l.seq, l.kind.to_string(), l.text.clone()))
        .collect();
    let theirs: Vec<(i64, String, String)> = page
        .lines
        .iter()
        .map(|l| (l.seq, l.kind.to_string(), l.text.clone()))
        .collect();
    assert_eq!(ours, theirs);
    let remote = cloud
        .get_execution(&personas_cloud_api::model::ExecutionRef { id: id.clone() })
        .await
        .expect("cloud execution");
    assert_eq!(mirrored.cost_usd, remote.execution.cost_usd);
    let ms = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis());
    assert_eq!(ms(mirrored.finished_at), ms(remote.execution.finished_at));

    // `execution list --cloud` asks the cloud; statuses as locally.
    let listed = local.json(&["execution", "list", "--cloud"]);
    let row = listed["executions"]
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["id"] == id.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(
        (&row["status"], &row["attempt"]),
        (&Value::from("completed"), &Value::from(1))
    );
    let status = local.json(&["cloud", "status"]);
    assert_eq!(status["mirrors_pending"], 0, "{status}");

    // The connection's token is sealed in the vault: in no column, no file of the data dir.
    let needles = [
        Needle::new("cloud token", stack.admin_token()),
        Needle::new("credential", GH),
    ];
    drop(store);
    let (hits, values) = in_database(&needles, &local.dir.path().join(personas_store::DB_FILE));
    assert!(hits.is_empty() && values > 0, "{hits:#?}");
    let hits = in_files(&needles, local.dir.path());
    assert!(hits.is_empty(), "{hits:#?}");
    eprintln!("cloud run from `run --cloud` to its mirrored end: {elapsed:?}");

    // Started without --follow and no runtime: the mirror is left pending; the runtime that
    // starts next resumes it and stores the finished run.
    let queued = local.json(&["run", "Release notes writer", "--cloud"]);
    let second = ExecutionId::from_string(queued["id"].as_str().expect("id").to_string());
    assert_eq!(queued["trigger"], "cloud");
    let mut up = tokio::process::Command::from(local.command(&["up", "--listen", "127.0.0.1:0"]));
    up.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut runtime = up.spawn().expect("personas up");
    let store = Store::open_in_dir(local.dir.path()).expect("store");
    let deadline = Instant::now() + WAIT;
    let done = loop {
        let e = store.executions().get(&second).expect("row");
        if e.status.is_terminal() {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the runtime did not finish mirroring {second} (status {})",
            e.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.status, ExecutionStatus::Completed);
    let page = cloud
        .execution_output(&OutputRequest {
            id: second.clone(),
            after_seq: None,
            limit: Some(5000),
        })
        .await
        .expect("cloud output");
    let ours: Vec<(i64, String)> = store
        .executions()
        .output(&second, 0, 5000)
        .expect("output")
        .into_iter()
        .map(|l| (l.seq, l.text))
        .collect();
    let theirs: Vec<(i64, String)> = page.lines.into_iter().map(|l| (l.seq, l.text)).collect();
    assert_eq!(ours, theirs);
    assert!(store.cloud().pending().expect("pending").is_empty());
    runtime.kill().await.expect("stop the runtime");
    drop(store);

    let gone = local.json(&["cloud", "disconnect"]);
    assert_eq!(gone["was_connected"], true);
}
