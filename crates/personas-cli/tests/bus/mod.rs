//! `personas trigger` and `personas event` end to end, and the bus surviving `kill -9` of the
//! daemon mid-dispatch. Runs use the `personas-fake-claude` stand-in: these tests are about
//! delivery, not about what the model says (the engine tests cover that with the real CLI).

use super::{Daemon, Env, WAIT, nix_kill, text};
use personas_core::ExecutionStatus;
use personas_core::trigger::SourceKind;
use personas_store::{NewEvent, Store};
use personas_testkit::claude::fake_claude_bin;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn fake() -> String {
    fake_claude_bin().to_string_lossy().into_owned()
}

/// Polls the store (another process changes it) until `done` holds.
async fn poll_until(what: &str, wait: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn count(store: &Store, status: &str) -> u64 {
    store
        .bus()
        .count(status.parse().expect("event status"))
        .expect("count")
}

/// The vault's passphrase, as a user without an OS keychain sets it for webhook secrets.
const VAULT: [(&str, &str); 2] = [
    ("PERSONAS_VAULT_PASSPHRASE", "correct horse battery staple"),
    ("PERSONAS_VAULT_KEYCHAIN", "off"),
];

fn with_vault_out(env: &Env, args: &[&str]) -> std::process::Output {
    env.command()
        .args(args)
        .envs(VAULT)
        .output()
        .expect("run personas")
}

fn with_vault(env: &Env, args: &[&str]) -> Value {
    let out = with_vault_out(env, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_are_added_listed_and_removed_and_bad_ones_are_refused() {
    let env = Env::new().await;
    env.persona("Triage", vec![], &[]);
    env.persona("Digest", vec![], &[]);
    let watched = tempfile::tempdir().expect("dir");

    let sub = env.json(&[
        "trigger", "add", "Triage", "--event", "ticket.*", "--source", "webhook",
    ]);
    assert_eq!(
        sub["trigger"]["config"],
        json!({"kind": "event", "pattern": "ticket.*", "source": {"kind": "webhook"}})
    );
    let cron = env.json(&[
        "trigger",
        "add",
        "Digest",
        "--cron",
        "0 8 * * 1-5",
        "--tz",
        "Europe/Prague",
        "--missed",
        "catch-up:2",
    ]);
    assert_eq!(cron["trigger"]["config"]["missed"], "catch-up:2");
    let hook = with_vault(&env, &["trigger", "add", "Digest", "--webhook", "--json"]);
    let id = hook["trigger"]["id"].as_str().expect("id");
    assert!(
        hook["webhook"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/webhooks/{id}"))),
        "{hook}"
    );
    assert_eq!(hook["secret"].as_str().map(str::len), Some(64));
    let chain = env.json(&[
        "trigger", "add", "Digest", "--chain", "Triage", "--on", "failed",
    ]);
    assert_eq!(chain["trigger"]["config"]["on"], "failed");
    assert_eq!(chain["trigger"]["after_persona_name"], "Triage");
    let watch = env.json(&[
        "trigger",
        "add",
        "Triage",
        "--watch",
        watched.path().to_str().expect("utf8"),
        "--glob",
        "*.md",
    ]);
    assert_eq!(watch["trigger"]["config"]["glob"], "*.md");

    let list = env.json(&["trigger", "list"]);
    assert_eq!(list["triggers"].as_array().map(Vec::len), Some(5));
    let listed_cron = list["triggers"]
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["trigger"]["kind"] == "cron")
        .expect("cron");
    let next: Vec<chrono::DateTime<chrono::Utc>> = listed_cron["next_fires"]
        .as_array()
        .expect("preview")
        .iter()
        .map(|v| v.as_str().expect("time").parse().expect("rfc3339"))
        .collect();
    assert_eq!(next.len(), 3);
    assert!(next.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        listed_cron["trigger"]["next_fire_at"]
            .as_str()
            .map(|s| s.parse::<chrono::DateTime<chrono::Utc>>().expect("t")),
        Some(next[0])
    );
    let listed_hook = list["triggers"]
        .as_array()
        .expect("array")
        .iter()
        .find(|t| t["trigger"]["kind"] == "webhook")
        .expect("hook");
    let secret = hook["secret"].as_str().expect("secret");
    assert!(listed_hook.get("secret").is_none(), "{listed_hook}");
    assert_eq!(listed_hook["webhook"]["url"], hook["webhook"]["url"]);
    assert!(
        !list.to_string().contains(secret),
        "the JSON listing never carries the secret"
    );
    let human = env.run(&["trigger", "list"]);
    assert!(!text(&human.stdout).contains(secret), "nor does the table");
    // Shown again on request, and replaced by a rotation.
    let revealed = with_vault(&env, &["trigger", "reveal", id, "--json"]);
    assert_eq!(revealed["secret"], secret);
    let rotated = with_vault(&env, &["trigger", "rotate", id, "--json"]);
    let new_secret = rotated["secret"].as_str().expect("new secret");
    assert_eq!(new_secret.len(), 64);
    assert_ne!(new_secret, secret);
    assert_eq!(
        with_vault(&env, &["trigger", "reveal", id, "--json"])["secret"],
        new_secret
    );
    // The vault's passphrase is needed to see it: without, a clear error and no secret.
    let locked = env.run(&["trigger", "reveal", id]);
    assert!(!locked.status.success());
    assert!(
        text(&locked.stderr).contains("PERSONAS_VAULT_PASSPHRASE"),
        "{}",
        text(&locked.stderr)
    );
    let gh = with_vault(
        &env,
        &[
            "trigger",
            "add",
            "Digest",
            "--webhook",
            "--github",
            "--json",
        ],
    );
    assert_eq!(
        gh["trigger"]["config"],
        json!({"kind": "webhook", "github": true})
    );
    assert_eq!(gh["secret"].as_str().map(str::len), Some(64));
    let out = with_vault_out(&env, &["trigger", "add", "Digest", "--github"]);
    assert_eq!(out.status.code(), Some(2), "--github needs --webhook");
    let out = with_vault_out(
        &env,
        &[
            "trigger",
            "reveal",
            &cron["trigger"]["id"].as_str().expect("id")[..28],
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("only webhook triggers have a secret"),
        "{}",
        text(&out.stderr)
    );
    let out = env.run(&[
        "trigger",
        "remove",
        gh["trigger"]["id"].as_str().expect("id"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for db in ["personas.db", "personas.db-wal"] {
        let bytes = std::fs::read(env.data_dir().join(db)).unwrap_or_default();
        for k in [secret, new_secret] {
            assert!(
                !bytes.windows(k.len()).any(|w| w == k.as_bytes()),
                "{db} holds a webhook secret in plaintext"
            );
        }
    }
    assert!(
        text(&human.stdout).contains("cron 0 8 * * 1-5 (Europe/Prague)"),
        "{}",
        text(&human.stdout)
    );

    let out = env.run(&["trigger", "remove", &id[..28]]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        env.json(&["trigger", "list"])["triggers"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    // Bad input: exit 2, the flag named, nothing stored.
    for (args, needle) in [
        (vec!["--cron", "61 * * * *"], "--cron:"),
        (vec!["--cron", "* * *"], "--cron:"),
        (vec!["--cron", "0 8 * * *", "--tz", "Mars/Olympus"], "--tz:"),
        (
            vec!["--cron", "0 8 * * *", "--missed", "sometimes"],
            "--missed:",
        ),
        (vec!["--event", "ticket.*.created"], "--event:"),
        (vec!["--event", "*ticket"], "--event:"),
        (vec!["--event", "x", "--source", "Nobody"], "--source:"),
        (
            vec!["--chain", "Nobody"],
            "--chain: persona not found: Nobody",
        ),
        (vec!["--chain", "Triage", "--on", "sometimes"], "--on:"),
        (vec!["--watch", "/nonexistent/dir"], "--watch:"),
        (vec!["--watch", "/tmp", "--glob", "a["], "--glob:"),
    ] {
        let mut all = vec!["trigger", "add", "Triage"];
        all.extend(args.iter());
        let out = env.run(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(needle),
            "{all:?}: {}",
            text(&out.stderr)
        );
    }
    let out = env.run(&["trigger", "add", "Nobody", "--event", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("persona not found: Nobody"));
    let out = env.run(&["trigger", "add", "Triage"]);
    assert_eq!(out.status.code(), Some(2), "a trigger needs a kind");
    assert_eq!(
        env.json(&["trigger", "list"])["triggers"]
            .as_array()
            .map(Vec::len),
        Some(4),
        "nothing stored"
    );

    for (args, needle) in [
        (
            vec!["event", "emit", "ticket.*"],
            "wildcards are for subscriptions",
        ),
        (
            vec!["event", "emit", "x", "--payload", "{bad"],
            "--payload is not valid JSON",
        ),
        (
            vec!["event", "emit", "x", "--target", "Nobody"],
            "persona not found: Nobody",
        ),
        (
            vec!["event", "list", "--status", "lost"],
            "invalid value 'lost' for '--status <STATUS>': unknown event status \"lost\"; expected one of: pending",
        ),
        (vec!["event", "retry", "0000"], "event not found"),
    ] {
        let out = env.run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(
        env.json(&["event", "list"])["events"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_emitted_from_the_cli_run_subscribers_and_dead_letters_can_be_retried() {
    let env = Env::new().await;
    // Fast retries so a dead letter happens within the test.
    std::fs::write(
        env.data_dir().join("config.toml"),
        "bus_max_attempts = 2\nbus_retry_base_ms = 50\n",
    )
    .expect("config");
    env.persona("Triage", vec![], &[]);
    env.persona("Sleepy", vec![], &[]);
    let out = env.run(&["persona", "update", "Sleepy", "--disable"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.run(&["trigger", "add", "Triage", "--event", "ticket.created"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let _daemon = Daemon::start(&env, &[("PERSONAS_CLAUDE_PATH", &fake())]).await;
    let store = env.store();

    let emitted = env.json(&[
        "event",
        "emit",
        "ticket.created",
        "--payload",
        r#"{"id":42}"#,
    ]);
    let id = emitted["id"].as_str().expect("id").to_string();
    poll_until("delivery", WAIT, || {
        store.bus().get(&id).expect("get").status.as_str() == "delivered"
    })
    .await;
    let listed = env.json(&["event", "list"]);
    let event = &listed["events"][0];
    assert_eq!(
        (
            event["event"]["id"].as_str(),
            event["event"]["status"].as_str()
        ),
        (Some(id.as_str()), Some("delivered"))
    );
    let exec_id = event["executions"][0]
        .as_str()
        .expect("execution")
        .to_string();
    assert_eq!(event["deliveries"][0]["persona_name"], "Triage");
    let exec = store
        .executions()
        .get(&personas_core::ExecutionId::from_string(exec_id.clone()))
        .expect("execution");
    assert_eq!(exec.input, Some(json!({"id": 42})));
    assert_eq!(exec.trigger, personas_core::TriggerKind::Event);
    let shown = env.run(&["event", "show", &id[..28]]);
    assert!(
        text(&shown.stdout).contains(&exec_id),
        "{}",
        text(&shown.stdout)
    );

    // A manual trigger, fired by hand; a disabled one refuses.
    let manual = env.json(&["trigger", "add", "Triage", "--manual"]);
    let trigger_id = manual["trigger"]["id"].as_str().expect("id").to_string();
    let fired = env.json(&[
        "trigger",
        "fire",
        &trigger_id,
        "--payload",
        r#"{"v":"1.2"}"#,
    ]);
    let id = fired["id"].as_str().expect("event id").to_string();
    assert_eq!(fired["trigger_id"].as_str(), Some(trigger_id.as_str()));
    poll_until("manual delivery", WAIT, || {
        store.bus().get(&id).expect("get").status.as_str() == "delivered"
    })
    .await;
    let run = &store.bus().deliveries(&id).expect("deliveries")[0];
    let exec = store
        .executions()
        .get(run.execution_id.as_ref().expect("execution"))
        .expect("exec");
    assert_eq!(
        (exec.persona_name.as_str(), exec.input.clone()),
        ("Triage", Some(json!({"v": "1.2"})))
    );
    let out = env.run(&["trigger", "disable", &trigger_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.run(&["trigger", "fire", &trigger_id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is disabled"),
        "{}",
        text(&out.stderr)
    );

    // Addressed to a disabled persona: retried, then dead-lettered; fixed and retried by hand.
    let emitted = env.json(&["event", "emit", "nudge", "--target", "Sleepy"]);
    let id = emitted["id"].as_str().expect("id").to_string();
    poll_until("dead letter", WAIT, || {
        store.bus().get(&id).expect("get").status.as_str() == "dead_letter"
    })
    .await;
    let dead = store.bus().get(&id).expect("get");
    assert_eq!(dead.attempts, 2);
    assert!(
        dead.error
            .as_deref()
            .is_some_and(|e| e.contains("Sleepy is disabled")),
        "{dead:?}"
    );
    let out = env.run(&["persona", "update", "Sleepy", "--enable"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.run(&["event", "retry", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    poll_until("retried delivery", WAIT, || {
        store.bus().get(&id).expect("get").status.as_str() == "delivered"
    })
    .await;
    let deliveries = store.bus().deliveries(&id).expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status.as_str(), "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_mid_dispatch_delivers_every_event_exactly_once_after_restart() {
    const EVENTS: usize = 1_000;
    let env = Env::new().await;
    // Small batches, so dispatching 1 000 events takes several rounds.
    std::fs::write(env.data_dir().join("config.toml"), "bus_batch = 100\n").expect("config");
    for name in ["Worker A", "Worker B"] {
        env.persona(name, vec![], &["--max-concurrent", "2"]);
        let out = env.run(&["trigger", "add", name, "--event", "job.created"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let fake = fake();
    // A pause between claiming and delivering (fault injection) makes sure the kill lands
    // while the daemon holds leases.
    let mut daemon = Daemon::start(
        &env,
        &[
            ("PERSONAS_CLAUDE_PATH", &fake),
            ("PERSONAS_FAULT_DELIVER_DELAY_MS", "300"),
        ],
    )
    .await;
    let store = env.store();
    let events: Vec<NewEvent> = (0..EVENTS)
        .map(|i| NewEvent::new("job.created", SourceKind::User, json!({"job": i})))
        .collect();
    store
        .bus()
        .publish_batch(&events)
        .expect("publish 1000 events");

    poll_until(
        "the first batch delivered and the next one claimed",
        WAIT,
        || count(&store, "delivered") > 0 && count(&store, "processing") > 0,
    )
    .await;
    nix_kill(daemon.pid(), 9);
    let _ = daemon.child.wait().await;
    let stuck = store
        .bus()
        .list(&personas_store::EventFilter {
            status: Some(personas_core::EventStatus::Processing),
            limit: Some(EVENTS as u32),
            ..Default::default()
        })
        .expect("list");
    assert!(!stuck.is_empty(), "the daemon died holding leases");
    let delivered_at_kill = count(&store, "delivered");
    assert!((delivered_at_kill as usize) < EVENTS, "killed mid-dispatch");

    let _daemon = Daemon::start(&env, &[("PERSONAS_CLAUDE_PATH", &fake)]).await;
    poll_until("every event delivered", WAIT * 2, || {
        count(&store, "delivered") as usize == EVENTS
    })
    .await;
    let all_runs_ended = || {
        store
            .executions()
            .list(&personas_store::ExecutionFilter {
                limit: Some(5_000),
                ..Default::default()
            })
            .expect("list")
            .iter()
            .all(|e| e.status.is_terminal())
    };
    poll_until("every run ended", WAIT * 4, all_runs_ended).await;

    assert_eq!(count(&store, "processing"), 0, "no lease left behind");
    for e in &stuck {
        let now = store.bus().get(&e.id).expect("event");
        assert_eq!(
            now.status.as_str(),
            "delivered",
            "the stuck lease was reaped and delivered"
        );
        assert_eq!(
            now.attempts, 2,
            "one attempt lost to the kill, one that delivered"
        );
    }
    let runs = store
        .executions()
        .list(&personas_store::ExecutionFilter {
            limit: Some(5_000),
            ..Default::default()
        })
        .expect("list");
    assert_eq!(
        runs.len(),
        2 * EVENTS,
        "one execution per (event, subscription)"
    );
    let mut per: HashMap<(String, String), usize> = HashMap::new();
    for r in &runs {
        *per.entry((
            r.trigger_ref.clone().expect("event"),
            r.persona_name.clone(),
        ))
        .or_default() += 1;
    }
    assert_eq!(
        per.len(),
        2 * EVENTS,
        "every (event, subscription) has an execution"
    );
    assert!(per.values().all(|n| *n == 1), "none twice");
    // Runs the kill interrupted are recorded as such, not re-run; the rest completed.
    let statuses: HashMap<ExecutionStatus, usize> = runs.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.status).or_default() += 1;
        m
    });
    let ok = statuses
        .get(&ExecutionStatus::Completed)
        .copied()
        .unwrap_or(0);
    let interrupted = runs
        .iter()
        .filter(|r| r.error_class == Some(personas_core::ErrorClass::Interrupted))
        .count();
    let odd: Vec<_> = runs
        .iter()
        .filter(|r| {
            r.status != ExecutionStatus::Completed
                && r.error_class != Some(personas_core::ErrorClass::Interrupted)
        })
        .map(|r| {
            let lines = store.executions().output(&r.id, 0, 100).expect("output");
            (
                r.status,
                r.error_class,
                r.error_message.clone(),
                lines
                    .iter()
                    .map(|l| format!("{} {}", l.kind, l.text))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(ok + interrupted, 2 * EVENTS, "{statuses:?}: {odd:#?}");
    let events_json: Value = env.json(&["event", "list", "--limit", "1"]);
    assert_eq!(
        events_json["events"][0]["executions"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}
