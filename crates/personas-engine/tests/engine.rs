//! End-to-end engine tests: the real Claude Code CLI against the scripted Messages API, a real
//! SQLite store in a temp dir, real processes. Waits are on engine events, never sleeps.
//!
//! Linux only: they need the pinned CLI (`scripts/install-claude.sh`) and look at processes
//! with Linux tools (`ps`, `setsid`, `/proc`). On macOS and Windows the release workflow runs
//! the engine's unit tests, which cover the per-OS process code there.
#![cfg(target_os = "linux")]

use personas_core::{ErrorClass, Execution, ExecutionId, ExecutionStatus, LineKind, PersonaSpec};
use personas_engine::{Engine, EngineConfig, EngineEvent, reaper, transcripts};
use personas_store::{NewExecution, Store};
use personas_testkit::api::{HangPoint, ScriptedApi, Step, ToolCall};
use personas_testkit::claude::{IsolatedEnv, claude_bin, isolated_env};
use personas_testkit::process_table_has;
use serde_json::json;
use std::time::Duration;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(90);

struct Harness {
    api: ScriptedApi,
    env: IsolatedEnv,
    dir: tempfile::TempDir,
    engine: Engine,
}

impl Harness {
    async fn new(tune: impl FnOnce(&mut EngineConfig)) -> Harness {
        let api = ScriptedApi::start().await;
        let env = isolated_env(&api);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = EngineConfig::for_data_dir(dir.path());
        config.claude_path = Some(claude_bin());
        config.env = env.vars.iter().cloned().collect();
        config.queue_poll_ms = 100;
        tune(&mut config);
        let store = Store::open_in_dir(dir.path()).expect("store");
        let engine = Engine::new(config, store);
        engine.start().await.expect("start");
        Harness {
            api,
            env,
            dir,
            engine,
        }
    }

    /// The run's stored output, one line each, for failure messages.
    fn output_text(&self, id: &ExecutionId) -> String {
        self.store()
            .executions()
            .output(id, 0, 10_000)
            .expect("output")
            .iter()
            .map(|l| format!("{:?} {}", l.kind, l.text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn store(&self) -> &Store {
        self.engine.store()
    }

    /// A persona whose prompt carries a unique script key, scripted with `steps`.
    fn persona(
        &self,
        name: &str,
        steps: Vec<Step>,
        edit: impl FnOnce(&mut PersonaSpec),
    ) -> personas_core::Persona {
        let key = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
        self.api.script(&key, steps);
        let mut spec = PersonaSpec::new(name, format!("Follow script {key}."));
        edit(&mut spec);
        self.store()
            .personas()
            .create(&spec)
            .expect("create persona")
    }

    async fn run(
        &self,
        persona: &personas_core::Persona,
        input: Option<serde_json::Value>,
    ) -> Execution {
        let mut events = self.engine.subscribe();
        let exec = self
            .engine
            .enqueue(NewExecution::manual(persona.id.clone(), input))
            .await
            .expect("enqueue");
        wait_terminal(&mut events, &exec.id).await
    }
}

async fn wait_terminal(
    events: &mut broadcast::Receiver<EngineEvent>,
    id: &ExecutionId,
) -> Execution {
    let fut = async {
        loop {
            match events.recv().await {
                Ok(EngineEvent::Execution { execution })
                    if &execution.id == id && execution.status.is_terminal() =>
                {
                    return *execution;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("execution {id} did not end within {WAIT:?}"))
}

/// Waits for an execution event of `id` whose status satisfies `pred`.
async fn wait_status(
    events: &mut broadcast::Receiver<EngineEvent>,
    id: &ExecutionId,
    pred: impl Fn(ExecutionStatus) -> bool,
) -> Execution {
    let fut = async {
        loop {
            match events.recv().await {
                Ok(EngineEvent::Execution { execution })
                    if &execution.id == id && pred(execution.status) =>
                {
                    return *execution;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("execution {id} did not reach the status within {WAIT:?}"))
}

async fn wait_output(
    events: &mut broadcast::Receiver<EngineEvent>,
    id: &ExecutionId,
    pred: impl Fn(&personas_core::OutputLine) -> bool,
) {
    let fut = async {
        loop {
            if let Ok(EngineEvent::Output { line }) = events.recv().await
                && &line.execution_id == id
                && pred(&line)
            {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("expected output line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_answer_completes_with_ordered_output_cost_and_session() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona(
        "Writer",
        vec![Step::text("Release notes: fixed x, added y.")],
        |_| {},
    );
    let done = h
        .run(&p, Some(json!({"commits": ["fix: x", "feat: y"]})))
        .await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );
    assert_eq!(
        done.result_text.as_deref(),
        Some("Release notes: fixed x, added y.")
    );
    assert!(done.cost_usd > 0.0, "cost recorded");
    assert_eq!(done.tokens.input, 10);
    assert_eq!(done.num_turns, 1);
    let session = done.session_id.clone().expect("session id stored");

    let req = &h.api.requests()[0];
    assert_eq!(
        req.session_id.as_deref(),
        Some(session.as_str()),
        "same session as the CLI used"
    );
    let text = req.all_text();
    assert!(text.contains("\"fix: x\""), "input reached the prompt");
    assert!(
        text.contains("untrusted-input-"),
        "input is fenced as untrusted"
    );

    let lines = h
        .store()
        .executions()
        .output(&done.id, 0, 1000)
        .expect("output");
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(
        seqs,
        (1..=lines.len() as i64).collect::<Vec<_>>(),
        "contiguous, in order"
    );
    let kinds: Vec<LineKind> = lines.iter().map(|l| l.kind).collect();
    assert_eq!(kinds.first(), Some(&LineKind::Engine), "spawn note first");
    assert!(kinds.contains(&LineKind::System));
    assert!(kinds.contains(&LineKind::AssistantText));
    assert_eq!(kinds.last(), Some(&LineKind::Result));
    assert_eq!(done.output_lines, lines.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_bash_tool_runs_and_a_disallowed_write_is_a_recorded_denial() {
    let h = Harness::new(|_| {}).await;
    let allowed = h.persona(
        "Allowed",
        vec![
            Step::tool_use(vec![ToolCall::bash(
                "t1",
                "echo personas-tool-ran > out.txt && cat out.txt",
            )]),
            Step::text("done"),
        ],
        |s| s.permissions.allow = vec!["Bash".into()],
    );
    let done = h.run(&allowed, None).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );
    assert!(
        done.permission_denials.is_empty(),
        "{:?}",
        done.permission_denials
    );
    let lines = h
        .store()
        .executions()
        .output(&done.id, 0, 1000)
        .expect("output");
    let result = lines
        .iter()
        .find(|l| l.kind == LineKind::ToolResult)
        .expect("tool result line");
    assert!(result.text.contains("personas-tool-ran"), "{}", result.text);
    let workdir = h.engine.config().workspaces_dir().join(allowed.id.as_str());
    assert!(
        workdir.join("out.txt").exists(),
        "the tool ran in the persona's working directory"
    );

    let denied = h.persona(
        "Denied",
        vec![
            Step::tool_use(vec![ToolCall::bash("t2", "echo nope > denied.txt")]),
            Step::text("could not"),
        ],
        |s| s.permissions.allow = vec!["Read".into()],
    );
    let done = h.run(&denied, None).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "a denial does not fail the run"
    );
    assert_eq!(
        done.permission_denials.len(),
        1,
        "{:?}",
        done.permission_denials
    );
    assert_eq!(done.permission_denials[0].tool_name, "Bash");
    let workdir = h.engine.config().workspaces_dir().join(denied.id.as_str());
    assert!(
        !workdir.join("denied.txt").exists(),
        "the denied command did not run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_messages_land_in_their_tables_and_malformed_ones_warn() {
    let h = Harness::new(|_| {}).await;
    let target = h.persona("Reviewer", vec![], |_| {});
    let text = [
        "Here is what I did.",
        r#"{"user_message": {"title": "Done", "content": "Notes are ready", "priority": "high"}}"#,
        r#"{"emit_event": {"type": "notes.ready", "data": {"version": "1.2"}}}"#,
        r#"{"persona_action": {"target": "Reviewer", "action": "review", "input": {"pr": 7}}}"#,
        r#"{"persona_action": {"target": "Nobody", "input": {}}}"#,
        r#"{"agent_memory": {"title": "Style", "content": "Use bullets", "category": "style", "importance": 4}}"#,
        r#"{"manual_review": {"title": "Publish?", "severity": "high", "suggested_actions": ["publish"]}}"#,
        r#"{"user_message": {"title": "broken"}}"#,
        r#"{"outcome_assessment": {"accomplished": true, "summary": "all good"}}"#,
    ]
    .join("\n");
    let p = h.persona("Talker", vec![Step::text(&text)], |s| {
        s.permissions.allow_personas = vec!["Reviewer".into()];
    });
    let mut events = h.engine.subscribe();
    let exec = h
        .engine
        .enqueue(NewExecution::manual(p.id.clone(), None))
        .await
        .expect("enqueue");
    // The manual_review pauses the run (see tests/review) instead of completing it.
    let done = wait_status(&mut events, &exec.id, |s| {
        s == ExecutionStatus::AwaitingReview
    })
    .await;
    assert_eq!(done.outcome_accomplished, Some(true));
    assert_eq!(done.outcome_summary.as_deref(), Some("all good"));
    let proto = h.store().protocol();
    let msgs = proto.messages(Some(&done.id), 10).expect("messages");
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (msgs[0].content.as_str(), msgs[0].priority.as_str()),
        ("Notes are ready", "high")
    );
    // The persona's own events (the runtime adds a system review.requested one).
    let events: Vec<_> = proto
        .events_of(&done.id)
        .expect("events")
        .into_iter()
        .filter(|e| e.source_kind == personas_core::trigger::SourceKind::Persona)
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].event_type, "notes.ready");
    assert_eq!(events[0].payload, json!({"version": "1.2"}));
    assert_eq!(events[1].target_persona_id.as_ref(), Some(&target.id));
    assert_eq!(events[1].payload["input"], json!({"pr": 7}));
    let mems = proto.memories(&p.id, 10).expect("memories");
    assert_eq!((mems[0].title.as_str(), mems[0].importance), ("Style", 4));
    let reviews = proto.reviews(None, Some(&done.id)).expect("reviews");
    assert_eq!(reviews[0].title, "Publish?");
    // The malformed user_message and the unknown target are warnings, not failures.
    assert_eq!(done.parse_warnings, 2, "warnings counted");
    let lines = h
        .store()
        .executions()
        .output(&done.id, 0, 1000)
        .expect("output");
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l.kind == LineKind::Warning)
        .map(|l| l.text.clone())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains("content is required")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("Nobody")),
        "{warnings:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.kind == LineKind::Protocol)
            .count(),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_accomplished_is_incomplete() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona(
        "Quitter",
        vec![Step::text(
            r#"{"outcome_assessment": {"accomplished": false, "summary": "API down"}}"#,
        )],
        |_| {},
    );
    let done = h.run(&p, None).await;
    assert_eq!(done.status, ExecutionStatus::Incomplete);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_fail_with_a_class() {
    let h = Harness::new(|c| c.cli_max_retries = Some(0)).await;
    let bad = h.persona("Bad request", vec![Step::error(400, 1)], |_| {});
    let done = h.run(&bad, None).await;
    assert_eq!(
        (done.status, done.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::BadRequest))
    );
    assert!(
        done.error_message
            .as_deref()
            .is_some_and(|m| m.contains("400")),
        "{:?}",
        done.error_message
    );

    let down = h.persona("Server down", vec![Step::error(500, u32::MAX)], |_| {});
    let done = h.run(&down, None).await;
    assert_eq!(
        (done.status, done.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::ServerError))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_hangs_is_ended_by_the_watchdog_as_timed_out() {
    let h = Harness::new(|c| {
        c.inactivity_timeout_secs = 3;
        c.cancel_grace_secs = 2;
    })
    .await;
    let p = h.persona("Hanger", vec![Step::hang(HangPoint::MessageStart)], |_| {});
    let done = h.run(&p, None).await;
    assert_eq!(
        (done.status, done.error_class),
        (ExecutionStatus::TimedOut, Some(ErrorClass::Inactivity))
    );
    assert!(
        reaper::find_marked(&[done.id.as_str()]).is_empty(),
        "nothing left running"
    );
}

/// How a test stops a run that is busy in a Bash tool.
#[derive(Clone, Copy, Debug)]
enum StopBy {
    Cancel,
    Timeout,
    Inactivity,
}

/// The CLI and every process its Bash tool started are gone after the run is stopped, including
/// one that left the tool's process group and session (`setsid`), which only the run's marker
/// finds.
#[rstest::rstest]
#[case::cancel(StopBy::Cancel)]
#[case::timeout(StopBy::Timeout)]
#[case::inactivity(StopBy::Inactivity)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_run_leaves_no_process_behind(#[case] by: StopBy) {
    // Deadlines leave room for a slow CLI start on a loaded machine: each must fire only once
    // the tool is running.
    let h = Harness::new(|c| {
        c.cancel_grace_secs = 3;
        if matches!(by, StopBy::Inactivity) {
            c.inactivity_timeout_secs = 10;
        }
    })
    .await;
    let marker = format!("personas-sleep-{}", uuid::Uuid::new_v4().simple());
    let escaped = format!("setsid -f bash -c 'exec -a {marker}-escaped sleep 300'");
    let steps = match by {
        // Busy in the tool when stopped: the tool's own sleep and the escaped one.
        StopBy::Cancel | StopBy::Timeout => vec![
            Step::bash("s1", format!("{escaped}; exec -a {marker} sleep 300")),
            Step::text("woke"),
        ],
        // The tool returns at once; then the API hangs and the watchdog fires.
        StopBy::Inactivity => vec![
            Step::bash("s1", escaped.clone()),
            Step::hang(HangPoint::MessageStart),
        ],
    };
    let p = h.persona("Sleeper", steps, |s| {
        s.permissions.allow = vec!["Bash".into()];
        if matches!(by, StopBy::Timeout) {
            s.timeout_secs = 20;
        }
    });
    let mut events = h.engine.subscribe();
    let exec = h
        .engine
        .enqueue(NewExecution::manual(p.id.clone(), None))
        .await
        .expect("enqueue");
    wait_output(&mut events, &exec.id, |l| l.kind == LineKind::ToolUse).await;
    // The processes exist before the stop (the proof that there was something to kill).
    let deadline = tokio::time::Instant::now() + WAIT;
    while !process_table_has(&format!("{marker}-escaped")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Bash tool never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if matches!(by, StopBy::Cancel) {
        h.engine.cancel(&exec.id).await.expect("cancel");
    }
    let done = wait_terminal(&mut events, &exec.id).await;
    let expected = match by {
        StopBy::Cancel => (ExecutionStatus::Cancelled, Some(ErrorClass::Cancelled)),
        StopBy::Timeout => (ExecutionStatus::TimedOut, Some(ErrorClass::Timeout)),
        StopBy::Inactivity => (ExecutionStatus::TimedOut, Some(ErrorClass::Inactivity)),
    };
    assert_eq!(
        (done.status, done.error_class),
        expected,
        "{}",
        h.output_text(&exec.id)
    );
    assert!(
        !process_table_has(&marker),
        "a process of the tool survived the stop"
    );
    assert!(reaper::find_marked(&[exec.id.as_str()]).is_empty());
}

/// The CLI's own session transcript (what review resume needs) is written under the data dir,
/// owner-only, never under the user's `~/.claude`; purging removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_transcript_stays_under_the_data_dir_until_purged() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona("Talker", vec![Step::text("hello there")], |_| {});
    let done = h.run(&p, None).await;
    assert_eq!(done.status, ExecutionStatus::Completed);
    let session = done.session_id.clone().expect("session id");
    let own = transcripts::dir(h.dir.path(), done.id.as_str());
    let transcript = find_file(&own, &format!("{session}.jsonl")).expect("the transcript");
    let text = std::fs::read_to_string(&transcript).expect("read");
    assert!(
        text.contains("hello there"),
        "it is the session's transcript"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&transcript), 0o600);
        let mut d = transcript.parent().expect("parent");
        while d.starts_with(h.dir.path().join(transcripts::DIR)) {
            assert_eq!(mode(d), 0o700, "{}", d.display());
            d = d.parent().expect("parent");
        }
    }
    let user_projects = h.env.home.path().join(".claude").join("projects");
    assert!(
        !user_projects.exists(),
        "the CLI wrote under the user's config dir"
    );
    assert!(transcripts::purge_transcripts(h.dir.path(), done.id.as_str()).expect("purge"));
    assert!(!own.exists());
}

/// The first file named `name` under `dir`.
fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_persona_and_global_limits_hold() {
    let h = Harness::new(|c| c.max_concurrent = 2).await;
    let slow = || {
        vec![Step::Slow {
            text: "slow answer".into(),
            chunks: 3,
            delay: Duration::from_millis(300),
        }]
    };
    let solo = h.persona("Solo", slow(), |s| s.max_concurrent = 1);
    let wide = h.persona("Wide", slow(), |s| s.max_concurrent = 5);
    let mut events = h.engine.subscribe();
    let mut ids = Vec::new();
    for p in [&solo, &solo, &wide, &wide, &wide] {
        ids.push(
            h.engine
                .enqueue(NewExecution::manual(p.id.clone(), None))
                .await
                .expect("enqueue")
                .id,
        );
    }
    // Wait for all five to end.
    let mut done = 0;
    let fut = async {
        while done < ids.len() {
            if let Ok(EngineEvent::Execution { execution }) = events.recv().await
                && ids.contains(&execution.id)
                && execution.status.is_terminal()
            {
                assert_eq!(
                    execution.status,
                    ExecutionStatus::Completed,
                    "{:?}",
                    execution.error_message
                );
                done += 1;
            }
        }
    };
    tokio::time::timeout(WAIT * 2, fut)
        .await
        .expect("all five finish");
    // How many ran at once, overall and for Solo, from the stored start and end times (the
    // broadcast order of two different executions' events is not guaranteed: a slot freed by
    // one run's commit can be taken before that run's end is broadcast).
    let runs: Vec<Execution> = ids
        .iter()
        .map(|id| h.store().executions().get(id).expect("execution"))
        .collect();
    let most_at_once = |runs: &[&Execution]| {
        let mut edges: Vec<(chrono::DateTime<chrono::Utc>, i32)> = Vec::new();
        for r in runs {
            edges.push((r.started_at.expect("started"), 1));
            edges.push((r.finished_at.expect("finished"), -1));
        }
        // An end and a start at the same instant do not overlap.
        edges.sort();
        let (mut now, mut most) = (0, 0);
        for (_, d) in edges {
            now += d;
            most = most.max(now);
        }
        most
    };
    let all: Vec<&Execution> = runs.iter().collect();
    assert_eq!(
        most_at_once(&all),
        2,
        "global limit of 2 was reached but not exceeded"
    );
    assert_eq!(most_at_once(&all[..2]), 1, "Solo never ran twice at once");
    // And Solo's two runs did not overlap in time.
    let a = h.store().executions().get(&ids[0]).expect("a");
    let b = h.store().executions().get(&ids[1]).expect("b");
    let (first, second) = if a.started_at < b.started_at {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        second.started_at >= first.finished_at,
        "Solo's runs overlapped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_cli_fails_the_execution_with_a_fix_hint() {
    let h = Harness::new(|c| c.claude_path = Some("/nonexistent/claude".into())).await;
    let p = h.persona("Nowhere", vec![], |_| {});
    let done = h.run(&p, None).await;
    assert_eq!(
        (done.status, done.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::CliMissing))
    );
    let msg = done.error_message.expect("message");
    assert!(
        msg.contains("npm install -g @anthropic-ai/claude-code"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_work_from_another_process_is_picked_up_by_the_poll() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona("Polled", vec![Step::text("picked up")], |_| {});
    let mut events = h.engine.subscribe();
    // Enqueue straight into the store, as `personas run` in another process would.
    let exec = h
        .store()
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("enqueue");
    let done = wait_terminal(&mut events, &exec.id).await;
    assert_eq!(done.status, ExecutionStatus::Completed);
}

mod bus;
mod review;
