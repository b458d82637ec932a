//! Orchestrators and workers as processes of the real binary, the worker running the real
//! Claude CLI against the scripted Messages API: a run completes once with its output; kill -9
//! of the orchestrator holding the worker mid-run moves the worker to the other orchestrator and
//! the run still completes once, with no output line lost or duplicated.

use super::support::{
    Db, MASTER_KEY, SECRET, TENANT, TestBroker, eventually, persona_text, push_persona,
};
use personas_cloud::orchestrator::db;
use personas_cloud::orchestrator::queue::{self, NewExecution};
use personas_testkit::claude::{claude_bin, isolated_env};
use personas_testkit::cloud::free_port;
use personas_testkit::{IsolatedEnv, ScriptedApi, Step, ToolCall};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// A child process killed (SIGKILL) on drop; its stderr goes to a file for failures.
struct Proc {
    child: Child,
    log: std::path::PathBuf,
}

impl Proc {
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Stack {
    d: Db,
    _broker: TestBroker,
    api: ScriptedApi,
    env: IsolatedEnv,
    logs: tempfile::TempDir,
    namespace: String,
}

impl Stack {
    async fn start(namespace: &str) -> Stack {
        let d = Db::start().await;
        let broker = TestBroker::start_temp();
        let api = ScriptedApi::start().await;
        let env = isolated_env(&api);
        Stack {
            d,
            _broker: broker,
            api,
            env,
            logs: tempfile::tempdir().unwrap(),
            namespace: namespace.into(),
        }
    }

    fn spawn(&self, name: &str, args: &[&str], envs: &[(String, String)]) -> Proc {
        let log = self.logs.path().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_personas-cloud"))
            .args(args)
            .envs(envs.iter().cloned())
            .env("PERSONAS_CLOUD_DEPLOYMENT_SECRET", SECRET)
            .env("PERSONAS_CLOUD_MASTER_KEY", hex::encode(MASTER_KEY))
            .env("PERSONAS_CLOUD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn personas-cloud");
        Proc { child, log }
    }

    /// An orchestrator process; returns it and its URL once it serves.
    async fn orchestrator(&self, id: &str) -> (Proc, String) {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let p = self.spawn(
            id,
            &[
                "orchestrator",
                "--id",
                id,
                "--listen",
                &listen,
                "--database-url",
                &self.d.url,
                "--kafka-brokers",
                &self._broker.bootstrap(),
                "--kafka-namespace",
                &self.namespace,
                "--kafka-partitions",
                "3",
            ],
            &[],
        );
        eventually(Duration::from_secs(60), &format!("{id} serves"), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        (p, format!("http://{listen}"))
    }

    fn worker(&self, id: &str, orchestrators: &[&str]) -> Proc {
        let data = self.logs.path().join(format!("{id}-data"));
        self.spawn(
            id,
            &[
                "worker",
                "--id",
                id,
                "--orchestrator",
                &orchestrators.join(","),
                "--data-dir",
                data.to_str().unwrap(),
                "--claude-path",
                claude_bin().to_str().unwrap(),
            ],
            &self.env.vars,
        )
    }

    async fn enqueue(&self, persona: &str) -> personas_core::ExecutionId {
        let pool = self.d.pool();
        let mut c = db::conn(&pool).await.unwrap();
        let tx = db::begin(&mut c).await.unwrap();
        let e = queue::enqueue(
            &tx,
            NewExecution {
                tenant_id: TENANT,
                persona,
                input: None,
                trigger: personas_core::TriggerKind::Manual,
                trigger_ref: None,
                idempotency_key: None,
                max_attempts: 3,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        e.execution.id
    }

    async fn scalar(&self, sql: &str) -> String {
        let pool = self.d.pool();
        let c = db::conn(&pool).await.unwrap();
        let row = c
            .query_one(&format!("SELECT ({sql})::TEXT"), &[])
            .await
            .unwrap();
        row.get::<_, Option<String>>(0).unwrap_or_default()
    }
}

fn scripted_persona(s: &Stack, name: &str, command: &str) {
    let script = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
    s.api.script(
        &script,
        vec![
            Step::tool_use(vec![ToolCall::bash("t1", command)]),
            Step::text("all done"),
        ],
    );
    push_persona(&s.d, TENANT, name, &persona_text(name, &script));
}

/// Checks the stored output: numbered 1..=n without gap or duplicate, one journal entry each.
async fn assert_output_whole(s: &Stack, id: &str) -> i64 {
    let n: i64 = s
        .scalar(&format!(
            "SELECT count(*) FROM output_lines WHERE execution_id = '{id}'"
        ))
        .await
        .parse()
        .unwrap();
    assert!(n > 0, "the run has output");
    assert_eq!(
        s.scalar(&format!("SELECT min(seq) = 1 AND max(seq) = count(*) FROM output_lines WHERE execution_id = '{id}'")).await,
        "true",
        "lines numbered 1..=n with no gap"
    );
    assert_eq!(
        s.scalar(&format!(
            "SELECT count(*) FROM journal WHERE execution_id = '{id}' AND event->>'type' = 'output'"
        ))
        .await,
        n.to_string(),
        "one journal entry per line"
    );
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_a_worker_process_completes_once_with_its_output() {
    let s = Stack::start("proc1").await;
    scripted_persona(&s, "Echo", "echo cloud-says-hello");
    let (o1, url) = s.orchestrator("o1").await;
    let w1 = s.worker("w1", &[&url]);
    eventually(WAIT, "w1 connected", || async {
        s.scalar("SELECT count(*) FROM workers WHERE id = 'w1'")
            .await
            == "1"
    })
    .await;
    let id = s.enqueue("Echo").await;
    eventually(WAIT, "the run ended", || async {
        s.scalar(&format!("SELECT status FROM executions WHERE id = '{id}'"))
            .await
            == "completed"
    })
    .await;
    let _ = (&o1, &w1);
    assert_eq!(
        s.scalar(&format!(
            "SELECT count(*) FROM attempts WHERE execution_id = '{id}'"
        ))
        .await,
        "1"
    );
    assert_eq!(
        s.scalar(&format!(
            "SELECT string_agg(state, ',') FROM attempts WHERE execution_id = '{id}'"
        ))
        .await,
        "completed"
    );
    assert_output_whole(&s, id.as_str()).await;
    assert_eq!(
        s.scalar(&format!("SELECT count(*) > 0 FROM output_lines WHERE execution_id = '{id}' AND text LIKE '%cloud-says-hello%'")).await,
        "true",
        "the CLI's tool output reached Postgres\n{}\n{}", o1.log(), w1.log()
    );
    assert_eq!(
        s.scalar(&format!(
            "SELECT record->>'result_text' FROM executions WHERE id = '{id}'"
        ))
        .await,
        "all done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_orchestrator_holding_the_worker_mid_run_loses_nothing() {
    let s = Stack::start("proc2").await;
    let marker = s.logs.path().join("half-way");
    let release = s.logs.path().join("release");
    // The tool says one thing, waits to be released (after the kill), says another.
    let cmd = format!(
        "echo before-kill; touch {m}; while [ ! -e {r} ]; do sleep 0.1; done; echo after-kill",
        m = marker.display(),
        r = release.display()
    );
    scripted_persona(&s, "Survivor", &cmd);
    let (mut o1, url1) = s.orchestrator("o1").await;
    let (o2, url2) = s.orchestrator("o2").await;
    let w1 = s.worker("w1", &[&url1, &url2]);
    eventually(WAIT, "w1 connected to o1", || async {
        s.scalar("SELECT orchestrator_id FROM workers WHERE id = 'w1'")
            .await
            == "o1"
    })
    .await;
    let id = s.enqueue("Survivor").await;
    eventually(WAIT, "the tool is half-way", || async { marker.exists() }).await;
    eventually(WAIT, "o1 stored output", || async {
        s.scalar(&format!(
            "SELECT count(*) > 0 FROM output_lines WHERE execution_id = '{id}'"
        ))
        .await
            == "true"
    })
    .await;
    let started = std::time::Instant::now();
    o1.kill9();
    eventually(WAIT, "w1 moved to o2", || async {
        s.scalar("SELECT orchestrator_id FROM workers WHERE id = 'w1'")
            .await
            == "o2"
    })
    .await;
    eprintln!(
        "failover: w1 on o2 {} ms after kill -9",
        started.elapsed().as_millis()
    );
    std::fs::write(&release, b"go").unwrap();
    eventually(WAIT, "the run ended", || async {
        s.scalar(&format!("SELECT status FROM executions WHERE id = '{id}'"))
            .await
            == "completed"
    })
    .await;
    let _ = &o2;
    assert_eq!(
        s.scalar(&format!("SELECT string_agg(state || '@' || orchestrator_id, ',') FROM attempts WHERE execution_id = '{id}'")).await,
        "completed@o2",
        "one attempt, adopted by o2, completed once\n{}\n{}", o2.log(), w1.log()
    );
    let n = assert_output_whole(&s, id.as_str()).await;
    for text in ["before-kill", "after-kill"] {
        assert_eq!(
            s.scalar(&format!("SELECT count(*) FROM output_lines WHERE execution_id = '{id}' AND text LIKE '%{text}%' AND kind = 'tool_result'")).await,
            "1",
            "{text} stored once ({n} lines)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_worker_mid_run_retries_on_another_worker_as_attempt_2() {
    let s = Stack::start("proc3").await;
    let marker = s.logs.path().join("started");
    let release = s.logs.path().join("release");
    let cmd = format!(
        "echo working; touch {m}; while [ ! -e {r} ]; do sleep 0.1; done; echo finished",
        m = marker.display(),
        r = release.display()
    );
    scripted_persona(&s, "Retried", &cmd);
    let (o1, url) = s.orchestrator("o1").await;
    let mut w1 = s.worker("w1", &[&url]);
    let mut w2 = s.worker("w2", &[&url]);
    eventually(WAIT, "both workers connected", || async {
        s.scalar("SELECT count(*) FROM workers").await == "2"
    })
    .await;
    let id = s.enqueue("Retried").await;
    eventually(WAIT, "attempt 1 is running", || async { marker.exists() }).await;
    let first = s
        .scalar(&format!(
            "SELECT worker_id FROM attempts WHERE execution_id = '{id}' AND number = 1"
        ))
        .await;
    let killed_at = std::time::Instant::now();
    if first == "w1" {
        w1.kill9()
    } else {
        w2.kill9()
    }
    std::fs::write(&release, b"go").unwrap();
    eventually(WAIT, "the run ended", || async {
        matches!(
            s.scalar(&format!("SELECT status FROM executions WHERE id = '{id}'"))
                .await
                .as_str(),
            "completed" | "failed"
        )
    })
    .await;
    eprintln!(
        "worker kill -9 → completed on attempt 2 in {} ms",
        killed_at.elapsed().as_millis()
    );
    let other = if first == "w1" { "w2" } else { "w1" };
    assert_eq!(
        s.scalar(&format!("SELECT string_agg(number || ':' || state || '@' || worker_id, ',' ORDER BY number) FROM attempts WHERE execution_id = '{id}'")).await,
        format!("1:lost@{first},2:completed@{other}"),
        "retried once on the other worker\n{}", o1.log()
    );
    assert_eq!(
        s.scalar(&format!("SELECT status FROM executions WHERE id = '{id}'"))
            .await,
        "completed"
    );
    let reason = s
        .scalar(&format!(
            "SELECT reason FROM attempts WHERE execution_id = '{id}' AND number = 1"
        ))
        .await;
    assert!(reason.contains("silent"), "{reason}");
    assert_output_whole(&s, id.as_str()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_worker_and_stops_the_cli_and_its_tools() {
    let s = Stack::start("proc4").await;
    let marker = s.logs.path().join("started");
    let sleeper = format!("sleep {}", 4000 + std::process::id() % 1000);
    let cmd = format!(
        "touch {m}; {sleeper}; echo never-printed",
        m = marker.display()
    );
    scripted_persona(&s, "Sleeper", &cmd);
    let (o1, url) = s.orchestrator("o1").await;
    let w1 = s.worker("w1", &[&url]);
    let id = s.enqueue("Sleeper").await;
    eventually(WAIT, "the tool runs", || async { marker.exists() }).await;
    assert!(
        personas_testkit::process_table_has(&sleeper),
        "the tool's process runs"
    );
    {
        let pool = s.d.pool();
        let mut c = db::conn(&pool).await.unwrap();
        let tx = db::begin(&mut c).await.unwrap();
        let e = queue::request_cancel(&tx, TENANT, &id).await.unwrap();
        tx.commit().await.unwrap();
        assert!(e.execution.cancel_requested);
    }
    eventually(WAIT, "the run ended cancelled", || async {
        s.scalar(&format!("SELECT status FROM executions WHERE id = '{id}'"))
            .await
            == "cancelled"
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "the tool's process is gone",
        || async { !personas_testkit::process_table_has(&sleeper) },
    )
    .await;
    assert_eq!(
        s.scalar(&format!("SELECT count(*) FROM output_lines WHERE execution_id = '{id}' AND text LIKE '%never-printed%' AND kind = 'tool_result'")).await,
        "0",
        "\n{}\n{}", o1.log(), w1.log()
    );
    assert_eq!(
        s.scalar(&format!(
            "SELECT string_agg(state, ',') FROM attempts WHERE execution_id = '{id}'"
        ))
        .await,
        "cancelled"
    );
}
