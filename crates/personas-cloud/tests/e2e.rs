//! The whole cloud as users run it — two orchestrators and two workers as processes of the real
//! binary, the real broker, a real Postgres, the real Claude CLI on the scripted Messages API —
//! seen from a client's stream:
//!
//! - kill -9 of the orchestrator holding the workers while two runs are mid-way: the workers
//!   move to the other orchestrator, both runs complete exactly once, and the client, resuming
//!   on the survivor with the last sequence number it saw, gets every journal entry once, in
//!   order, and every output line of both runs once, numbered without gaps;
//! - a credential pushed with a persona reaches the worker's CLI (it printed the variable, which
//!   the runner redacted) and its value is nowhere else: not in Postgres (dump and data files),
//!   not in the broker's storage, not in a worker's files, not in any log.

use futures::{Stream, StreamExt};
use personas_cloud_api::model::{
    Empty, Execute, ExecutionRef, PushPersona, PushedCredential, WireSecret,
};
use personas_cloud_api::stream::{ClientEvent, ClientFrame};
use personas_cloud_api::{CloudClient, CloudError};
use personas_core::{ExecutionId, ExecutionStatus, LineKind};
use personas_testkit::claude::{claude_bin, isolated_env};
use personas_testkit::cloud::{CloudStack, StackOptions};
use personas_testkit::leak::{self, Needle};
use personas_testkit::{IsolatedEnv, ScriptedApi, Step, ToolCall};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(120);

/// The next frame; `None` when the stream ended or broke (the orchestrator went away).
async fn next_frame(
    stream: &mut (impl Stream<Item = Result<ClientFrame, CloudError>> + Unpin),
    wait: Duration,
) -> Option<ClientFrame> {
    match tokio::time::timeout(wait, stream.next()).await {
        Ok(Some(Ok(frame))) => Some(frame),
        Ok(_) => None,
        Err(_) => panic!("no stream frame within {wait:?}"),
    }
}

struct Cloud {
    stack: CloudStack,
    api: ScriptedApi,
    _env: IsolatedEnv,
}

async fn cloud(orchestrators: usize, workers: usize) -> Cloud {
    let api = ScriptedApi::start().await;
    let env = isolated_env(&api);
    let mut options = StackOptions::new(env!("CARGO_BIN_EXE_personas-cloud"));
    options.orchestrators = orchestrators;
    options.workers = workers;
    options.claude_path = Some(claude_bin());
    options.worker_env = env.vars.clone();
    options.namespace = format!("e2e{}", uuid::Uuid::new_v4().simple());
    let stack = CloudStack::start(options).await;
    Cloud {
        stack,
        api,
        _env: env,
    }
}

impl Cloud {
    /// Pushes a persona that follows `steps` (Bash allowed), with `credentials`.
    async fn push(&self, name: &str, steps: Vec<Step>, credentials: Vec<PushedCredential>) {
        let script = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
        self.api.script(&script, steps);
        let text = format!(
            "format: personas/v1\nname: {name}\ninstructions: Follow script {script}.\npermissions:\n  allow: [Bash]\n"
        );
        self.stack
            .client()
            .push_persona(&PushPersona {
                text,
                id: None,
                credentials,
                triggers: Vec::new(),
            })
            .await
            .expect("push_persona");
    }

    async fn execute(&self, persona: &str) -> ExecutionId {
        let run = self
            .stack
            .client()
            .execute(&Execute {
                persona: persona.into(),
                input: None,
                idempotency_key: None,
            })
            .await
            .expect("execute");
        run.execution.id
    }

    /// The index of the orchestrator most workers are connected to.
    async fn busiest_orchestrator(&self) -> usize {
        let cluster = self
            .stack
            .client()
            .get_cluster(&Empty {})
            .await
            .expect("cluster");
        let mut held: HashMap<&str, usize> = HashMap::new();
        for w in &cluster.workers {
            *held.entry(w.orchestrator_id.as_str()).or_default() += 1;
        }
        (0..self.stack.orchestrator_count())
            .max_by_key(|&i| {
                held.get(self.stack.orchestrator_id(i))
                    .copied()
                    .unwrap_or(0)
            })
            .expect("an orchestrator")
    }
}

/// What a client saw of the stream.
#[derive(Default)]
struct Seen {
    seqs: Vec<i64>,
    lines: BTreeMap<ExecutionId, Vec<(i64, LineKind, String)>>,
    /// Terminal statuses announced per execution (a run completed twice would show twice).
    endings: BTreeMap<ExecutionId, Vec<ExecutionStatus>>,
}

impl Seen {
    fn take(&mut self, frame: ClientFrame) {
        self.seqs.push(frame.seq);
        match frame.event {
            ClientEvent::Output { line } => self
                .lines
                .entry(line.execution_id.clone())
                .or_default()
                .push((line.seq, line.kind, line.text)),
            ClientEvent::Execution { execution } => {
                if execution.execution.status.is_terminal() {
                    self.endings
                        .entry(execution.execution.id.clone())
                        .or_default()
                        .push(execution.execution.status);
                }
            }
            ClientEvent::Event { .. } => {}
        }
    }

    fn last_seq(&self) -> i64 {
        self.seqs.last().copied().unwrap_or(0)
    }

    fn mid_run(&self, id: &ExecutionId) -> bool {
        self.lines.get(id).is_some_and(|ls| {
            ls.iter()
                .any(|(_, k, t)| *k == LineKind::ToolUse && t.contains("sleep"))
        })
    }

    fn ended(&self, id: &ExecutionId) -> bool {
        self.endings.contains_key(id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_an_orchestrator_mid_run_loses_and_repeats_nothing_at_the_client() {
    let mut c = cloud(2, 2).await;
    c.push(
        "Steady",
        vec![
            Step::tool_use(vec![ToolCall::bash(
                "t1",
                "echo before; sleep 4; echo after",
            )]),
            Step::text("finished after the pause"),
        ],
        Vec::new(),
    )
    .await;
    let victim = c.busiest_orchestrator().await;
    let survivor = 1 - victim;
    let token = c.stack.admin_token().to_string();
    // The client streams from the orchestrator that will die, from the very start.
    let on_victim = CloudClient::new(&c.stack.orchestrator_url(victim), &token).expect("client");
    let mut stream = Box::pin(on_victim.stream(0, None).await.expect("stream"));
    let runs = [c.execute("Steady").await, c.execute("Steady").await];
    let mut seen = Seen::default();
    while !runs.iter().all(|id| seen.mid_run(id)) {
        let frame = next_frame(&mut stream, WAIT)
            .await
            .expect("the stream is up");
        seen.take(frame);
    }
    c.stack.kill9_orchestrator(victim);
    // The stream breaks; what arrived before the break is kept (a frame is whole or absent).
    while let Some(frame) = next_frame(&mut stream, WAIT).await {
        seen.take(frame);
    }
    let on_survivor =
        CloudClient::new(&c.stack.orchestrator_url(survivor), &token).expect("client");
    let mut stream = Box::pin(
        on_survivor
            .stream(seen.last_seq(), None)
            .await
            .expect("resume on the survivor"),
    );
    while !runs.iter().all(|id| seen.ended(id)) {
        let frame = next_frame(&mut stream, WAIT)
            .await
            .expect("the survivor streams");
        seen.take(frame);
    }

    // Every journal entry once and in order, across the break.
    let first = seen.seqs[0];
    let expected: Vec<i64> = (first..first + seen.seqs.len() as i64).collect();
    assert_eq!(
        seen.seqs, expected,
        "journal numbers at the client: gaps or repeats"
    );
    for id in &runs {
        let run = on_survivor
            .get_execution(&ExecutionRef { id: id.clone() })
            .await
            .expect("get_execution");
        assert_eq!(run.execution.status, ExecutionStatus::Completed, "{run:#?}");
        assert_eq!(
            run.attempts.len(),
            1,
            "the worker kept its run: one attempt {run:#?}"
        );
        assert_eq!(
            seen.endings[id],
            vec![ExecutionStatus::Completed],
            "completed exactly once"
        );
        let lines = &seen.lines[id];
        let numbers: Vec<i64> = lines.iter().map(|(s, _, _)| *s).collect();
        assert_eq!(
            numbers,
            (1..=lines.len() as i64).collect::<Vec<_>>(),
            "output lines of {id} at the client"
        );
        assert_eq!(run.execution.output_lines, lines.len() as u64, "as stored");
        assert!(
            lines
                .iter()
                .any(|(_, k, t)| *k == LineKind::ToolResult && t.contains("after")),
            "the tool finished after the kill"
        );
        assert_eq!(lines.last().map(|l| l.1), Some(LineKind::Result));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_credential_reaches_the_cli_and_nothing_else_in_the_cloud_holds_its_value() {
    let c = cloud(1, 1).await;
    let secret = format!("ghp_e2e{}", uuid::Uuid::new_v4().simple());
    let mut fields = BTreeMap::new();
    fields.insert("token".to_string(), WireSecret::new(&secret));
    c.push(
        "Keyholder",
        vec![
            Step::tool_use(vec![ToolCall::bash("t1", "echo \"token=$GITHUB_TOKEN\"")]),
            Step::text("done"),
        ],
        vec![PushedCredential {
            name: "github".into(),
            service_type: "github".into(),
            fields,
        }],
    )
    .await;
    let client = c.stack.client();
    let mut stream = Box::pin(client.stream(0, None).await.expect("stream"));
    let id = c.execute("Keyholder").await;
    let mut seen = Seen::default();
    while !seen.ended(&id) {
        let frame = next_frame(&mut stream, WAIT)
            .await
            .expect("the stream is up");
        seen.take(frame);
    }
    assert_eq!(seen.endings[&id], vec![ExecutionStatus::Completed]);
    // The CLI's environment had the value: the tool printed it, and the runner redacted it.
    let tool = seen.lines[&id]
        .iter()
        .find(|(_, k, _)| *k == LineKind::ToolResult)
        .expect("a tool result");
    assert!(
        tool.2.contains("token=["),
        "printed and redacted: {}",
        tool.2
    );

    let needle = [Needle::new("the pushed credential", &secret)];
    let mut hits = leak::in_text(
        &needle,
        "the cloud database (pg_dump)",
        c.stack
            .postgres()
            .dump(personas_testkit::cloud::CLOUD_DATABASE)
            .as_bytes(),
    );
    // Everything the stack wrote: Postgres' data files and WAL, the broker's storage, the
    // workers' scratch dirs, every process's log.
    hits.extend(leak::in_files(&needle, c.stack.dir()));
    for frame_line in seen.lines.values().flatten() {
        hits.extend(leak::in_text(
            &needle,
            "the client stream",
            frame_line.2.as_bytes(),
        ));
    }
    assert!(hits.is_empty(), "{hits:#?}");
}
