//! Review with resume, delivery to channels, memories, healing and budgets, end to end: the
//! real Claude Code CLI against the scripted API, real SQLite, real HTTP and SMTP servers on
//! loopback. Waits are on engine events; a deadline bounds every wait.

use super::{Harness, WAIT, wait_status, wait_terminal};
use hmac::{Hmac, KeyInit, Mac};
use personas_core::review::{Decision, OnReject, TimeoutAction};
use personas_core::{ErrorClass, Execution, ExecutionStatus, LineKind, PersonaSpec, TriggerKind};
use personas_engine::{Engine, EngineConfig, EngineEvent};
use personas_store::{Effect, NewExecution, PersonaPolicy, Store};
use personas_testkit::api::{ScriptedApi, Step, ToolCall};
use personas_testkit::claude::{claude_bin, isolated_env};
use personas_testkit::http_sink::{HttpSink, Reply};
use personas_testkit::smtp::SmtpSink;
use serde_json::json;
use sha2::Sha256;
use tokio::sync::broadcast;

const REVIEW_LINE: &str = r#"{"manual_review": {"title": "Publish v2?", "description": "Notes are ready", "severity": "high", "suggested_actions": ["publish"]}}"#;

fn set_policy(h: &Harness, p: &personas_core::Persona, policy: PersonaPolicy) {
    h.store().policies().set(&p.id, &policy).expect("policy");
}

async fn start(
    h: &Harness,
    p: &personas_core::Persona,
) -> (Execution, broadcast::Receiver<EngineEvent>) {
    let events = h.engine.subscribe();
    let exec = h
        .engine
        .enqueue(NewExecution::manual(p.id.clone(), None))
        .await
        .expect("enqueue");
    (exec, events)
}

/// Text of the last user message of a request (what the CLI was just told).
fn last_user_text(req: &personas_testkit::RecordedRequest) -> String {
    let last = req
        .messages()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .cloned()
        .unwrap_or_default();
    match &last["content"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_review_resumes_the_same_claude_session_with_the_decision() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona(
        "Publisher",
        vec![
            Step::text(format!("Prepared the release notes.\n{REVIEW_LINE}")),
            Step::text("Published v2 after approval."),
        ],
        |_| {},
    );
    let (exec, mut events) = start(&h, &p).await;
    let paused = wait_status(&mut events, &exec.id, |s| {
        s == ExecutionStatus::AwaitingReview
    })
    .await;
    let session = paused
        .session_id
        .clone()
        .expect("the paused run keeps its session");
    assert!(paused.cost_usd > 0.0);

    let reviews = h
        .store()
        .protocol()
        .reviews(Some(personas_core::ReviewStatus::Pending), Some(&exec.id))
        .expect("reviews");
    assert_eq!(reviews.len(), 1);
    let review = &reviews[0];
    assert!(
        review.deadline_at.is_some(),
        "the deadline is armed when the run pauses"
    );
    assert_eq!(review.timeout_action.map(|a| a.as_str()), Some("reject"));
    let bus_events = h.store().protocol().events_of(&exec.id).expect("events");
    assert!(
        bus_events
            .iter()
            .any(|e| e.event_type == "review.requested"),
        "a durable review.requested event for the bus: {bus_events:?}"
    );

    let decided = h
        .engine
        .decide_review(&review.id, Decision::Approve, Some("ship it".into()))
        .await
        .expect("approve");
    assert_eq!(decided.effect, Effect::Resumed);
    let done = wait_terminal(&mut events, &exec.id).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );
    assert_eq!(
        done.result_text.as_deref(),
        Some("Published v2 after approval.")
    );
    assert_eq!(done.session_id.as_deref(), Some(session.as_str()));
    assert!(
        (done.cost_usd - 2.0 * paused.cost_usd).abs() < 1e-9,
        "both segments' cost: {} vs {}",
        done.cost_usd,
        paused.cost_usd
    );
    assert_eq!(done.num_turns, 2);

    // The API saw the same session continue, with the earlier turns replayed.
    let reqs = h.api.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].session_id.as_deref(), Some(session.as_str()));
    assert_eq!(
        reqs[1].session_id.as_deref(),
        Some(session.as_str()),
        "--resume keeps the session id"
    );
    let replay = reqs[1].all_text();
    let first_prompt = last_user_text(&reqs[0]);
    assert!(first_prompt.contains("Follow script"), "{first_prompt}");
    assert!(
        replay.contains("Follow script"),
        "the first user message is replayed"
    );
    assert!(
        reqs[1].messages().iter().any(|m| m["role"] == "assistant"
            && m["content"]
                .to_string()
                .contains("Prepared the release notes.")),
        "the earlier assistant turn is replayed"
    );
    let decision = last_user_text(&reqs[1]);
    assert!(
        decision.contains("\"Publish v2?\": APPROVED by the reviewer")
            && decision.contains("ship it"),
        "the decision is the new user message: {decision}"
    );

    // One execution, one contiguous output across both segments.
    let lines = h
        .store()
        .executions()
        .output(&exec.id, 0, 10_000)
        .expect("output");
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=lines.len() as i64).collect::<Vec<_>>());
    assert!(
        lines
            .iter()
            .any(|l| l.kind == LineKind::Engine && l.text.contains("resuming session"))
    );
    assert_eq!(
        lines.iter().filter(|l| l.kind == LineKind::Result).count(),
        2
    );
    let again = h
        .engine
        .decide_review(&review.id, Decision::Reject, None)
        .await
        .expect_err("decided already");
    assert!(again.to_string().contains("not pending"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_resumes_with_the_rejection_or_ends_the_run_as_configured() {
    let h = Harness::new(|_| {}).await;
    let adapts = h.persona(
        "Adapter",
        vec![
            Step::text(format!("Draft ready.\n{REVIEW_LINE}")),
            Step::text("Understood, not publishing."),
        ],
        |_| {},
    );
    let (exec, mut events) = start(&h, &adapts).await;
    wait_status(&mut events, &exec.id, |s| {
        s == ExecutionStatus::AwaitingReview
    })
    .await;
    let review = h
        .store()
        .protocol()
        .reviews(Some(personas_core::ReviewStatus::Pending), Some(&exec.id))
        .expect("r")[0]
        .clone();
    h.engine
        .decide_review(
            &review.id,
            Decision::Reject,
            Some("not before Monday".into()),
        )
        .await
        .expect("reject");
    let done = wait_terminal(&mut events, &exec.id).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );
    let resumed = h
        .api
        .requests()
        .into_iter()
        .filter(|r| r.session_id == done.session_id)
        .collect::<Vec<_>>();
    assert_eq!(resumed.len(), 2);
    let told = last_user_text(&resumed[1]);
    assert!(
        told.contains("REJECTED by the reviewer") && told.contains("not before Monday"),
        "{told}"
    );
    assert!(
        told.contains("Do not carry out what was rejected"),
        "{told}"
    );

    let strict = h.persona(
        "Strict",
        vec![
            Step::text(format!("Draft ready.\n{REVIEW_LINE}")),
            Step::text("never sent"),
        ],
        |_| {},
    );
    set_policy(
        &h,
        &strict,
        PersonaPolicy {
            on_reject: Some(OnReject::End),
            ..Default::default()
        },
    );
    let (exec, mut events) = start(&h, &strict).await;
    let paused = wait_status(&mut events, &exec.id, |s| {
        s == ExecutionStatus::AwaitingReview
    })
    .await;
    let review = h
        .store()
        .protocol()
        .reviews(Some(personas_core::ReviewStatus::Pending), Some(&exec.id))
        .expect("r")[0]
        .clone();
    let decided = h
        .engine
        .decide_review(&review.id, Decision::Reject, Some("no".into()))
        .await
        .expect("reject");
    assert_eq!(decided.effect, Effect::Ended);
    assert_eq!(decided.execution.status, ExecutionStatus::Cancelled);
    assert!(
        decided
            .execution
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("rejected in review"))
    );
    let sent = h
        .api
        .requests()
        .into_iter()
        .filter(|r| r.session_id == paused.session_id)
        .count();
    assert_eq!(sent, 1, "an ended run is not resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_review_times_out_to_its_configured_action() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona(
        "Patient",
        vec![
            Step::text(format!("Waiting.\n{REVIEW_LINE}")),
            Step::text("Went ahead after the timeout."),
        ],
        |_| {},
    );
    set_policy(
        &h,
        &p,
        PersonaPolicy {
            review_timeout_secs: Some(1),
            review_timeout_action: Some(TimeoutAction::Approve),
            ..Default::default()
        },
    );
    let (exec, mut events) = start(&h, &p).await;
    let paused = wait_status(&mut events, &exec.id, |s| {
        s == ExecutionStatus::AwaitingReview
    })
    .await;
    let done = wait_terminal(&mut events, &exec.id).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );
    let review = h
        .store()
        .protocol()
        .reviews(None, Some(&exec.id))
        .expect("r")[0]
        .clone();
    assert_eq!(
        (
            review.status.as_str(),
            review.decided_by.map(|b| b.as_str())
        ),
        ("approved", Some("timeout"))
    );
    let decided_after = review.decided_at.expect("decided") - paused.finished_at.expect("paused");
    assert!(
        decided_after.num_milliseconds() >= 900,
        "not before the deadline: {decided_after}"
    );
    let told = last_user_text(&h.api.requests()[1]);
    assert!(
        told.contains("APPROVED automatically (nobody answered in time)"),
        "{told}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_every_channel_and_a_failing_endpoint_is_retried_then_failed() {
    let slack_hook = HttpSink::start(vec![Reply::text(200, "ok")]).await;
    let slack_api =
        HttpSink::start(vec![Reply::json(200, &json!({"ok": true, "ts": "1.2"}))]).await;
    let telegram = HttpSink::start(vec![Reply::json(
        200,
        &json!({"ok": true, "result": {"message_id": 7}}),
    )])
    .await;
    let hook = HttpSink::start(vec![Reply::status(204)]).await;
    let broken = HttpSink::start(vec![Reply::text(500, "boom")]).await;
    let smtp = SmtpSink::start().await;
    let (slack_api_url, telegram_url) = (slack_api.base_url(), telegram.base_url());
    let hook_url = format!("{}/services/T0/B0/SECRETPART", slack_hook.base_url());
    let h = Harness::new(move |c| {
        c.delivery.slack_api_url = slack_api_url;
        c.delivery.telegram_api_url = telegram_url;
        c.delivery.retry_base_ms = 50;
        c.delivery.retry_max_ms = 200;
        c.delivery.max_attempts = 3;
        c.delivery.poll_ms = 200;
        for (k, v) in [
            ("T_SLACK_HOOK", hook_url.as_str()),
            ("T_SLACK_TOKEN", "xoxb-test-token"),
            ("T_TG_TOKEN", "123456:test-token"),
            ("T_HOOK_KEY", "hook-signing-key"),
            ("T_SMTP_PASS", "mail-pass"),
        ] {
            c.env.insert(k.into(), v.into());
            c.channel_env_allow.push(k.into());
        }
    })
    .await;
    let p = h.persona(
        "Announcer",
        vec![Step::text(
            r#"{"user_message": {"title": "Release out", "content": "v2 is live", "priority": "high"}}"#,
        )],
        |_| {},
    );
    let channels = [
        (
            "slack-hook",
            "slack",
            json!({"webhook_url": "env:T_SLACK_HOOK"}),
        ),
        (
            "slack-bot",
            "slack",
            json!({"bot_token": "env:T_SLACK_TOKEN", "channel": "#alerts"}),
        ),
        (
            "telegram",
            "telegram",
            json!({"bot_token": "env:T_TG_TOKEN", "chat_id": 42}),
        ),
        (
            "hook",
            "webhook",
            json!({"url": hook.base_url() + "/in", "secret": "env:T_HOOK_KEY"}),
        ),
        (
            "broken",
            "webhook",
            json!({"url": broken.base_url(), "secret": "env:T_HOOK_KEY"}),
        ),
        (
            "mail",
            "email",
            json!({"url": smtp.url(), "username": "mailer", "password": "env:T_SMTP_PASS",
                                 "from": "Personas <personas@example.com>", "to": ["ops@example.com"]}),
        ),
        ("desk", "desktop", json!({})),
    ];
    for (name, kind, config) in &channels {
        let kind: personas_core::ChannelKind = kind.parse().expect("channel kind");
        personas_engine::delivery::channel::parse(kind, config).expect("valid channel");
        h.store()
            .deliveries()
            .add_channel(&p.id, name, kind, config)
            .expect("add channel");
    }
    let mut events = h.engine.subscribe();
    let done = h.run(&p, None).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );

    let r = &slack_hook.wait_for_requests(1, WAIT).await[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/services/T0/B0/SECRETPART")
    );
    let text = r.json()["text"].as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("[Announcer] Release out") && text.contains("v2 is live"),
        "{text}"
    );

    let r = &slack_api.wait_for_requests(1, WAIT).await[0];
    assert_eq!(r.path, "/chat.postMessage");
    assert_eq!(r.header("authorization"), Some("Bearer xoxb-test-token"));
    assert_eq!(r.json()["channel"], "#alerts");

    let r = &telegram.wait_for_requests(1, WAIT).await[0];
    assert_eq!(r.path, "/bot123456:test-token/sendMessage");
    assert_eq!(r.json()["chat_id"], "42");
    assert!(
        r.json()["text"]
            .as_str()
            .unwrap_or_default()
            .contains("v2 is live")
    );

    let r = &hook.wait_for_requests(1, WAIT).await[0];
    assert_eq!(r.path, "/in");
    let ts = r
        .header("x-personas-timestamp")
        .expect("timestamp")
        .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"hook-signing-key").expect("key");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        r.header("x-personas-signature"),
        Some(expected.as_str()),
        "signed body"
    );
    assert_eq!(r.header("x-personas-event"), Some("message"));
    let body = r.json();
    assert_eq!(
        (body["type"].as_str(), body["content"].as_str()),
        (Some("message"), Some("v2 is live"))
    );
    assert_eq!(body["persona"]["name"], "Announcer");

    let mail = &smtp.wait_for_mails(1, WAIT).await[0];
    assert_eq!(
        (mail.from.as_str(), mail.to.clone()),
        ("personas@example.com", vec!["ops@example.com".to_string()])
    );
    assert!(
        mail.data.contains("Subject: [Announcer] Release out") && mail.data.contains("v2 is live"),
        "{}",
        mail.data
    );
    assert_eq!(mail.auth, Some(("mailer".into(), "mail-pass".into())));

    // The broken endpoint: three attempts with backoff, then failed; a desktop notification.
    let message = h
        .store()
        .protocol()
        .messages(Some(&done.id), 10)
        .expect("inbox")[0]
        .clone();
    let (mut failed, mut desktop) = (None, false);
    let watch = async {
        while failed.is_none() || !desktop {
            match events.recv().await {
                Ok(EngineEvent::DeliveryUpdated { delivery })
                    if delivery.channel_name == "broken"
                        && delivery.status == personas_core::NotificationStatus::Failed =>
                {
                    failed = Some(delivery)
                }
                Ok(EngineEvent::Notification {
                    subject_id, title, ..
                }) if subject_id == message.id => {
                    assert_eq!(title, "[Announcer] Release out");
                    desktop = true;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, watch)
        .await
        .expect("broken channel failed and desktop notified");
    let failed = failed.expect("failed delivery");
    assert_eq!(failed.attempts, 3);
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("HTTP 500") && e.contains("boom")),
        "{failed:?}"
    );
    assert_eq!(broken.requests().len(), 3, "retried, then given up");
    let all = h
        .store()
        .deliveries()
        .of_subject(personas_core::NoticeKind::Message, &message.id)
        .expect("deliveries");
    assert_eq!(all.len(), channels.len());
    for d in &all {
        let want = if d.channel_name == "broken" {
            "failed"
        } else {
            "delivered"
        };
        assert_eq!(d.status.as_str(), want, "{d:?}");
    }
    assert_eq!(
        h.store()
            .protocol()
            .messages(None, 10)
            .expect("inbox")
            .len(),
        1,
        "the message stays in the inbox"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_from_one_run_reach_the_next_within_the_prompt_budget() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona(
        "Rememberer",
        vec![Step::text(
            r#"{"agent_memory": {"title": "Deploy day", "content": "Deploys happen on Tuesdays only", "category": "fact", "importance": 5}}"#,
        )],
        |_| {},
    );
    assert_eq!(h.run(&p, None).await.status, ExecutionStatus::Completed);
    assert_eq!(h.run(&p, None).await.status, ExecutionStatus::Completed);
    let second = h.api.requests()[1].all_text();
    assert!(
        second.contains("Deploy day: Deploys happen on Tuesdays only"),
        "run 2 remembers"
    );

    for i in 0..200 {
        h.store()
            .memories()
            .add(
                &p.id,
                &format!("Note {i}"),
                &"filler detail ".repeat(20),
                "note",
                1 + (i % 4) as u8,
            )
            .expect("add");
    }
    assert_eq!(h.run(&p, None).await.status, ExecutionStatus::Completed);
    let third = last_user_text(&h.api.requests()[2]);
    let start = third
        .find("## What you remember from earlier runs")
        .expect("memory section");
    let section = &third[start..];
    let end = section[3..]
        .find("\n## ")
        .map(|e| e + 3)
        .unwrap_or(section.len());
    let section = &section[..end];
    assert!(
        section.len() <= personas_core::prompt::MEMORY_BUDGET_BYTES + 100,
        "bounded: {} bytes",
        section.len()
    );
    assert!(
        section.contains("Deploy day"),
        "the most important memory is kept"
    );
    assert!(
        section.contains("less important memories left out"),
        "the cut is said"
    );
}

/// A persona whose script is shared by all its runs (so a later run sees the API recover).
fn shared_persona(h: &Harness, name: &str, steps: Vec<Step>) -> personas_core::Persona {
    let key = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
    h.api.script_shared(&key, steps);
    h.store()
        .personas()
        .create(&PersonaSpec::new(name, format!("Follow script {key}.")))
        .expect("create")
}

async fn wait_retry_of(
    events: &mut broadcast::Receiver<EngineEvent>,
    failed: &Execution,
) -> Execution {
    let fut = async {
        loop {
            if let Ok(EngineEvent::Execution { execution }) = events.recv().await
                && execution.trigger == TriggerKind::Retry
                && execution.trigger_ref.as_deref() == Some(failed.id.as_str())
                && execution.status.is_terminal()
            {
                return *execution;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("the retry ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_run_heals_through_a_scheduled_retry() {
    let h = Harness::new(|c| {
        c.cli_max_retries = Some(0);
        c.healing.retry_base_ms = 400;
        c.healing.retry_max_ms = 1_000;
    })
    .await;
    let p = shared_persona(
        &h,
        "Throttled",
        vec![Step::error(429, 1), Step::text("made it")],
    );
    let mut events = h.engine.subscribe();
    let failed = h.run(&p, None).await;
    assert_eq!(
        (failed.status, failed.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::RateLimited))
    );
    let retry = wait_retry_of(&mut events, &failed).await;
    assert_eq!(
        retry.status,
        ExecutionStatus::Completed,
        "{:?}",
        retry.error_message
    );
    assert_eq!(retry.result_text.as_deref(), Some("made it"));
    let waited = retry.started_at.expect("started") - failed.finished_at.expect("finished");
    assert!(
        waited.num_milliseconds() >= 400,
        "the queue honoured not_before: {waited}"
    );
    let notes = h
        .store()
        .executions()
        .output(&failed.id, 0, 1000)
        .expect("output");
    assert!(
        notes.iter().any(
            |l| l.kind == LineKind::Engine && l.text.contains("retry 1 of at most 3 scheduled")
        ),
        "the failed run says what healing did"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failures_pause_the_persona_until_it_is_resumed() {
    let h = Harness::new(|c| c.cli_max_retries = Some(0)).await;
    let key = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
    h.api.script(&key, vec![Step::error(400, 1)]);
    let p = h
        .store()
        .personas()
        .create(&PersonaSpec::new(
            "Fragile",
            format!("Follow script {key}."),
        ))
        .expect("create");
    for _ in 0..5 {
        let e = h.run(&p, None).await;
        assert_eq!(e.error_class, Some(ErrorClass::BadRequest));
    }
    let breaker = h
        .store()
        .healing()
        .persona_breaker(&p.id)
        .expect("breaker")
        .expect("row");
    assert_eq!(
        (breaker.state.as_str(), breaker.consecutive_failures),
        ("open", 5)
    );
    let issues = h
        .store()
        .healing()
        .issues(Some(personas_core::IssueStatus::Open), 10)
        .expect("issues");
    assert!(issues.iter().any(|i| i.error_class
        == personas_core::IssueClass::Failure(personas_core::ErrorClass::BadRequest)
        && i.occurrences == 4
        && !i.suggested_fix.is_empty()));
    assert!(
        issues
            .iter()
            .any(|i| i.error_class == personas_core::IssueClass::CIRCUIT_OPEN)
    );

    let sixth = h.run(&p, None).await;
    assert_eq!(
        (sixth.status, sixth.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::Refused))
    );
    let why = sixth.error_message.unwrap_or_default();
    assert!(
        why.contains("Fragile is paused after 5 consecutive failures")
            && why.contains("personas persona resume"),
        "{why}"
    );
    assert_eq!(
        h.api.requests().len(),
        5,
        "the refused run never reached the API"
    );

    h.api.script(&key, vec![Step::text("fixed")]);
    h.store()
        .healing()
        .resume_persona(&p.id, &p.name)
        .expect("resume");
    let seventh = h.run(&p, None).await;
    assert_eq!(
        seventh.status,
        ExecutionStatus::Completed,
        "{:?}",
        seventh.error_message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_retry_survives_a_runtime_restart() {
    let api = ScriptedApi::start().await;
    let env = isolated_env(&api);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = {
        let mut c = EngineConfig::for_data_dir(dir.path());
        c.claude_path = Some(claude_bin());
        c.env = env.vars.iter().cloned().collect();
        c.queue_poll_ms = 100;
        c.cli_max_retries = Some(0);
        c.healing.retry_base_ms = 2_000;
        c.healing.retry_max_ms = 2_000;
        c
    };
    let key = format!("SCRIPT-{}", uuid::Uuid::new_v4().simple());
    api.script_shared(
        &key,
        vec![Step::error(429, 1), Step::text("after the restart")],
    );
    let first = Engine::new(
        config.clone(),
        Store::open_in_dir(dir.path()).expect("store"),
    );
    first.start().await.expect("start");
    let p = first
        .store()
        .personas()
        .create(&PersonaSpec::new(
            "Survivor",
            format!("Follow script {key}."),
        ))
        .expect("persona");
    let mut events = first.subscribe();
    let exec = first
        .enqueue(NewExecution::manual(p.id.clone(), None))
        .await
        .expect("enqueue");
    // Healing reports before the execution's end is announced.
    let retry = wait_healing_retry(&mut events, &exec.id).await;
    let failed = first.store().executions().get(&exec.id).expect("failed");
    assert_eq!(failed.error_class, Some(ErrorClass::RateLimited));
    first.shutdown().await;
    drop(first);

    let second = Engine::new(config, Store::open_in_dir(dir.path()).expect("reopen"));
    let mut events = second.subscribe();
    second.start().await.expect("restart");
    let done = wait_terminal(&mut events, &retry).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );
    assert_eq!(
        (done.trigger, done.trigger_ref.as_deref()),
        (TriggerKind::Retry, Some(failed.id.as_str()))
    );
    assert!(
        done.started_at.expect("started")
            >= failed.finished_at.expect("f") + chrono::Duration::milliseconds(2_000)
    );
    second.shutdown().await;
}

async fn wait_healing_retry(
    events: &mut broadcast::Receiver<EngineEvent>,
    failed: &personas_core::ExecutionId,
) -> personas_core::ExecutionId {
    let fut = async {
        loop {
            if let Ok(EngineEvent::Healing {
                execution_id,
                report,
            }) = events.recv().await
                && &execution_id == failed
            {
                return report.retry.expect("a retry was scheduled").execution_id;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("healing report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_refuse_at_admission_and_the_cli_budget_stop_is_classified() {
    let h = Harness::new(|_| {}).await;
    let p = h.persona("Frugal", vec![Step::text("cheap")], |_| {});
    set_policy(
        &h,
        &p,
        PersonaPolicy {
            daily_budget_usd: Some(0.0002),
            ..Default::default()
        },
    );
    let first = h.run(&p, None).await;
    assert_eq!(first.status, ExecutionStatus::Completed);
    assert!(
        first.cost_usd >= 0.0002,
        "the scripted answer costs {}",
        first.cost_usd
    );
    let refused = h.run(&p, None).await;
    assert_eq!(
        (refused.status, refused.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::Refused))
    );
    let why = refused.error_message.unwrap_or_default();
    assert!(
        why.contains("Frugal's daily budget of $0.0002 is used up"),
        "{why}"
    );
    assert_eq!(h.api.requests().len(), 1, "refused before spawning the CLI");

    let capped = h.persona(
        "Capped",
        vec![
            Step::tool_use(vec![ToolCall::bash("b1", "echo one")]),
            Step::text("never reached"),
        ],
        |s| {
            s.max_budget_usd = Some(0.0001);
            s.permissions.allow = vec!["Bash".into()];
        },
    );
    let done = h.run(&capped, None).await;
    assert_eq!(
        (done.status, done.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::BudgetExceeded)),
        "{:?}",
        done.error_message
    );
    let issue = h
        .store()
        .healing()
        .issues(Some(personas_core::IssueStatus::Open), 10)
        .expect("issues");
    assert!(issue.iter().any(|i| i.error_class
        == personas_core::IssueClass::Failure(personas_core::ErrorClass::BudgetExceeded)
        && i.suggested_fix.contains("--max-budget-usd")));
}
