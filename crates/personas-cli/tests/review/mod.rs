//! The `personas` binary for review, channels, memories, policies, healing and stats: real
//! processes, real store, the real Claude CLI against the scripted API where a model runs.

use super::{Daemon, Env, text, wait_status};
use personas_core::review::{Decision, OnReject};
use personas_core::{ExecutionOutcome, ExecutionStatus};
use personas_store::{DecidedBy, NewExecution};
use personas_testkit::api::Step;
use personas_testkit::http_sink::{HttpSink, Reply};
use serde_json::Value;
use std::time::{Duration, Instant};

const REVIEW_LINE: &str = r#"{"manual_review": {"title": "Publish v2?", "severity": "high", "suggested_actions": ["publish"]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_run_is_listed_approved_with_a_note_and_completes() {
    let env = Env::new().await;
    env.persona(
        "Publisher",
        vec![
            Step::text(format!("Ready.\n{REVIEW_LINE}")),
            Step::text("Published v2."),
        ],
        &[],
    );
    let _daemon = Daemon::start(&env, &[]).await;
    let out = env.run(&["run", "Publisher"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = personas_core::ExecutionId::from_string(text(&out.stdout).trim());
    let store = env.store();
    let paused = wait_status(&store, &id, |s| s == ExecutionStatus::AwaitingReview).await;
    assert!(paused.session_id.is_some());

    let list = env.json(&["review", "list"]);
    let reviews = list["reviews"].as_array().expect("array");
    assert_eq!(reviews.len(), 1, "{list}");
    assert_eq!(reviews[0]["status"], "pending");
    assert_eq!(reviews[0]["execution_id"], id.as_str());
    assert!(reviews[0]["deadline_at"].is_string(), "{list}");
    let review_id = reviews[0]["id"].as_str().expect("id").to_string();

    let human = env.run(&["review", "list"]);
    assert!(
        text(&human.stdout).contains("Publish v2?"),
        "{}",
        text(&human.stdout)
    );

    let decided = env.json(&["review", "approve", &review_id[..28], "--note", "ship it"]);
    assert_eq!(decided["effect"], "resumed", "{decided}");
    let done = wait_status(&store, &id, ExecutionStatus::is_terminal).await;
    assert_eq!(
        done.status,
        ExecutionStatus::Completed,
        "{:?}",
        done.error_message
    );
    let reqs = env.api.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].session_id, reqs[1].session_id);
    assert!(reqs[1].all_text().contains("ship it"));

    let again = env.run(&["review", "approve", &review_id]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("is not pending: it was already approved by user"),
        "{}",
        text(&again.stderr)
    );
    let all = env.json(&["review", "list", "--status", "all"]);
    assert_eq!(all["reviews"][0]["status"], "approved");
    assert_eq!(all["reviews"][0]["decision_note"], "ship it");

    // The daemon books the run into the day's metrics (right after it ends).
    let deadline = Instant::now() + super::WAIT;
    let stats = loop {
        // `stats --json` is `get_stats` for this machine's days.
        let s = env.json(&["stats", "--days", "1"]);
        if s["completed"] == 1 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed the run: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stats["personas"][0]["persona_name"], "Publisher");
    assert!(stats["personas"][0]["cost_usd"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(stats["days"][0]["completed"], 1);
    assert_eq!(stats["success_rate"], 1.0);
    let human = env.run(&["stats"]);
    assert!(
        text(&human.stdout).contains("Publisher"),
        "{}",
        text(&human.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_exit_2_and_names_what_is_wrong() {
    let env = Env::new().await;
    env.persona("Solo", vec![], &[]);
    let store = env.store();
    let solo = store.personas().find("Solo").expect("solo");

    // A review that is not pending, and one whose run has not paused.
    let ex = store.executions();
    let e = ex
        .enqueue(&NewExecution::manual(solo.id.clone(), None))
        .expect("enqueue");
    ex.claim(&e.id, 9, "test").expect("claim").expect("claimed");
    let running = store
        .protocol()
        .insert_review(
            &e.id,
            Some(&solo.id),
            "Early?",
            None,
            personas_core::protocol::Severity::Low,
            &[],
        )
        .expect("review");
    let out = env.run(&["review", "approve", &running.id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is still running"),
        "{}",
        text(&out.stderr)
    );
    let mut paused = ExecutionOutcome::ended(ExecutionStatus::AwaitingReview, None, None);
    paused.session_id = Some("s".into());
    ex.finish(&e.id, &paused).expect("pause");
    store
        .reviews()
        .decide(
            &running.id,
            Decision::Reject,
            None,
            DecidedBy::User,
            OnReject::End,
        )
        .expect("decided");
    for verb in ["approve", "reject"] {
        let out = env.run(&["review", verb, &running.id, "--note", "x"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("not pending"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = env.run(&["review", "approve", "ffffffff-0000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("review not found"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["review", "list", "--status", "waiting"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("pending, approved"),
        "{}",
        text(&out.stderr)
    );

    // Channels: unknown type, a secret given in plain, bad SMTP URLs, bad JSON.
    let cases: [(&[&str], &str); 6] = [
        (
            &["--type", "pager"],
            "invalid value 'pager' for '--type <TYPE>': unknown channel kind \"pager\"; expected one of: slack",
        ),
        (
            &[
                "--type",
                "slack",
                "--config",
                r#"{"webhook_url": "https://hooks.slack.com/services/T/B/x"}"#,
            ],
            "--config webhook_url: holds a secret: store it in the vault",
        ),
        (
            &[
                "--type",
                "email",
                "--config",
                r#"{"url": "http://smtp.example.com", "from": "a@example.com", "to": "b@example.com"}"#,
            ],
            "--config url: unsupported scheme \"http\"",
        ),
        (
            &[
                "--type",
                "email",
                "--config",
                r#"{"url": "smtp://mail.example.com?tls=none", "from": "a@example.com", "to": "b@example.com"}"#,
            ],
            "only allowed to a relay on this machine",
        ),
        (
            &[
                "--type",
                "telegram",
                "--config",
                r#"{"bot_token": "env:TG", "chatid": 1}"#,
            ],
            "--config chatid: unknown field for a telegram channel",
        ),
        (
            &["--type", "webhook", "--config", "{url:"],
            "--config is not valid JSON",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["channel", "add", "Solo", "--name", "c"];
        all.extend_from_slice(args);
        let out = env.run(&all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(
        env.json(&["channel", "list"]),
        serde_json::json!({"channels": []}),
        "nothing stored"
    );

    // Memories, policies, resume, stats.
    let out = env.run(&[
        "memory",
        "add",
        "Solo",
        "--title",
        "T",
        "--content",
        "C",
        "--importance",
        "9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("importance") && text(&out.stderr).contains("between 1 and 5"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["persona", "policy", "Solo", "--daily-budget-usd=-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("daily_budget_usd"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["persona", "policy", "Solo", "--on-reject", "maybe"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("expected one of: resume, end"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["persona", "resume", "Solo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("Solo is not paused"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["stats", "--days", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--days"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        store.policies().get(&solo.id).expect("policy"),
        Default::default(),
        "unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memories_channels_and_policies_are_managed_from_the_cli() {
    let env = Env::new().await;
    env.persona("Keeper", vec![], &[]);
    let added = env.json(&[
        "memory",
        "add",
        "Keeper",
        "--title",
        "Style",
        "--content",
        "Use bullets",
        "--category",
        "style",
        "--importance",
        "4",
    ]);
    let id = added["id"].as_str().expect("id").to_string();
    let edited = env.json(&[
        "memory",
        "edit",
        &id[..30],
        "--importance",
        "5",
        "--content",
        "Short bullets",
    ]);
    assert_eq!(
        (edited["importance"].as_u64(), edited["content"].as_str()),
        (Some(5), Some("Short bullets"))
    );
    let list = env.json(&["memory", "list", "--persona", "Keeper"]);
    assert_eq!(list["memories"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["memories"][0]["title"], "Style");
    let out = env.run(&["memory", "edit", &id]);
    assert_eq!(out.status.code(), Some(2), "nothing to change");
    env.json(&["memory", "delete", &id]);
    assert_eq!(
        env.json(&["memory", "list"]),
        serde_json::json!({"memories": []})
    );

    let policy = env.json(&[
        "persona",
        "policy",
        "Keeper",
        "--daily-budget-usd",
        "2.5",
        "--on-reject",
        "end",
        "--review-timeout",
        "600",
    ]);
    assert_eq!(
        (
            policy["policy"]["daily_budget_usd"].as_f64(),
            policy["policy"]["on_reject"].as_str()
        ),
        (Some(2.5), Some("end"))
    );
    let shown = env.run(&["persona", "policy", "Keeper"]);
    assert!(
        text(&shown.stdout).contains("$2.5") && text(&shown.stdout).contains("600 s"),
        "{}",
        text(&shown.stdout)
    );
    let cleared = env.json(&["persona", "policy", "Keeper", "--clear"]);
    assert_eq!(cleared["policy"]["daily_budget_usd"], Value::Null);

    // A signed webhook channel, tested for real; a broken one reports the failure (exit 1).
    let hook = HttpSink::start(vec![Reply::status(200)]).await;
    let broken = HttpSink::start(vec![Reply::text(500, "down")]).await;
    // env: references name only variables config.toml lets channels read.
    std::fs::write(
        env.data_dir().join("config.toml"),
        "channel_env_allow = [\"CLI_TEST_HOOK_KEY\"]\n",
    )
    .expect("config");
    for (name, url) in [("hook", hook.base_url()), ("broken", broken.base_url())] {
        let config = serde_json::json!({"url": url, "secret": "env:CLI_TEST_HOOK_KEY"}).to_string();
        env.json(&[
            "channel", "add", "Keeper", "--name", name, "--type", "webhook", "--config", &config,
        ]);
    }
    let out = env
        .command()
        .args(["channel", "test", "Keeper", "hook"])
        .env("CLI_TEST_HOOK_KEY", "k1")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = &hook.wait_for_requests(1, super::WAIT).await[0];
    assert!(
        got.header("x-personas-signature")
            .is_some_and(|s| s.starts_with("sha256="))
    );
    assert_eq!(got.json()["title"], "Test notification");
    let out = env
        .command()
        .args(["channel", "test", "Keeper", "broken"])
        .env("CLI_TEST_HOOK_KEY", "k1")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("HTTP 500") && text(&out.stderr).contains("down"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&["channel", "test", "Keeper", "hook"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the secret's variable is not set"
    );
    assert!(
        text(&out.stderr).contains("CLI_TEST_HOOK_KEY is not set"),
        "{}",
        text(&out.stderr)
    );
    let channels = env.json(&["channel", "list", "--persona", "Keeper"]);
    assert_eq!(channels["channels"].as_array().map(Vec::len), Some(2));
    env.json(&["channel", "remove", "Keeper", "broken"]);
    assert_eq!(
        env.json(&["channel", "list"])["channels"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let issues = env.json(&["healing", "list"]);
    assert_eq!(issues["issues"], serde_json::json!([]));
}
