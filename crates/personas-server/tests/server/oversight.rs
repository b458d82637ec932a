//! Notification channels, policies (budgets, breaker), healing issues and reviews through the
//! real server: each operation's round trip (called from
//! `every_operation_round_trips_through_the_server`), and a paused run approved with a note
//! through the API that resumes the same Claude session and completes.

use super::{Server, frames, read_until};
use personas_testkit::api::Step;
use personas_testkit::http_sink::{HttpSink, Reply};
use serde_json::{Value, json};

/// Channels, policies, healing and breakers. Creates its own persona ("Watched").
pub async fn round_trips(s: &Server) {
    let mut ws = s.socket("").await;
    frames(&mut ws).await;
    let key = "SCRIPT-server-oversight";
    s.api.script(key, vec![Step::error(400, 1)]);
    s.ok(
        "create_persona",
        json!({"spec": {"name": "Watched", "instructions": format!("Follow script {key}.")}}),
    )
    .await;

    // Notification channels: secrets only as references, bad input names the field.
    let sink = HttpSink::start(vec![Reply::status(200)]).await;
    assert_eq!(
        s.ok("list_channels", json!({"persona": "Watched"})).await["channels"],
        json!([])
    );
    let (st, e) = s
        .call(
            "add_channel",
            json!({"persona": "Watched", "name": "hook", "kind": "webhook",
                "config": {"url": format!("{}/hook", sink.base_url()), "secret": "plain-secret-value"}}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str(), e["field"].as_str()),
        (400, Some("invalid"), Some("config.secret")),
        "{e}"
    );
    assert!(!e.to_string().contains("plain-secret-value"), "{e}");
    // The runtime's own variables are never a channel secret (the vault passphrase could
    // otherwise be mailed anywhere), and other env: names need channel_env_allow.
    for (secret, says) in [
        ("env:PERSONAS_VAULT_PASSPHRASE", "Personas' own variables"),
        ("env:SOME_SHELL_SECRET", "channel_env_allow"),
    ] {
        let (st, e) = s
            .call(
                "add_channel",
                json!({"persona": "Watched", "name": "hook", "kind": "webhook",
                    "config": {"url": format!("{}/hook", sink.base_url()), "secret": secret}}),
            )
            .await;
        assert_eq!(
            (st, e["field"].as_str()),
            (400, Some("config.secret")),
            "{e}"
        );
        assert!(
            e["message"].as_str().is_some_and(|m| m.contains(says)),
            "{e}"
        );
    }
    let (st, e) = s
        .call(
            "add_channel",
            json!({"persona": "Watched", "name": "x", "kind": "pigeon"}),
        )
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("kind")), "{e}");
    let (st, e) = s
        .call(
            "add_channel",
            json!({"persona": "Watched", "name": " ", "kind": "desktop"}),
        )
        .await;
    assert_eq!((st, e["field"].as_str()), (400, Some("name")), "{e}");
    let hook = s
        .ok(
            "add_channel",
            json!({"persona": "Watched", "name": "hook", "kind": "webhook",
                "config": {"url": format!("{}/hook", sink.base_url()), "secret": "credential:hook.signing_key"}}),
        )
        .await;
    assert_eq!(
        (hook["kind"].as_str(), hook["persona_name"].as_str()),
        (Some("webhook"), Some("Watched"))
    );
    s.ok(
        "add_channel",
        json!({"persona": "Watched", "name": "desk", "kind": "desktop"}),
    )
    .await;
    let (st, e) = s
        .call(
            "add_channel",
            json!({"persona": "Watched", "name": "desk", "kind": "desktop"}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (409, Some("conflict")), "{e}");
    let listed = s.ok("list_channels", json!({})).await;
    assert_eq!(listed["channels"].as_array().map(Vec::len), Some(2));
    let stored = listed["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["name"] == "hook")
        .cloned()
        .expect("hook listed");
    assert_eq!(stored["config"]["secret"], "credential:hook.signing_key");
    // The secret's variable is not set in this runtime: the test says so, naming it.
    let t = s
        .ok(
            "test_channel",
            json!({"persona": "Watched", "name": "hook"}),
        )
        .await;
    assert_eq!(t["ok"], false, "{t}");
    assert!(
        t["message"]
            .as_str()
            .is_some_and(|m| m.contains("credential:hook.signing_key")),
        "{t}"
    );
    let t = s
        .ok(
            "test_channel",
            json!({"persona": "Watched", "name": "desk"}),
        )
        .await;
    assert_eq!(t["ok"], true, "{t}");
    let (st, _) = s
        .call(
            "test_channel",
            json!({"persona": "Watched", "name": "nope"}),
        )
        .await;
    assert_eq!(st, 404);
    let removed = s
        .ok(
            "remove_channel",
            json!({"persona": "Watched", "name": "desk"}),
        )
        .await;
    assert_eq!(removed["name"], "desk");
    let (st, _) = s
        .call(
            "remove_channel",
            json!({"persona": "Watched", "name": "desk"}),
        )
        .await;
    assert_eq!(st, 404);

    // Policy: budgets and the breaker threshold; bad values name the field.
    let p = s.ok("get_policy", json!({"persona": "Watched"})).await;
    assert_eq!(p["policy"]["daily_budget_usd"], Value::Null);
    assert_eq!(p["paused"], false);
    assert!(
        p["defaults"]["failure_threshold"].as_u64() >= Some(1),
        "{p}"
    );
    let (st, e) = s
        .call(
            "update_policy",
            json!({"persona": "Watched", "policy": {"daily_budget_usd": -1.0}}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str(), e["field"].as_str()),
        (400, Some("invalid"), Some("policy.daily_budget_usd")),
        "{e}"
    );
    let (st, e) = s
        .call(
            "update_policy",
            json!({"persona": "Watched", "policy": {"on_reject": "sulk"}}),
        )
        .await;
    assert_eq!(
        (st, e["field"].as_str()),
        (400, Some("policy.on_reject")),
        "{e}"
    );
    let p = s
        .ok(
            "update_policy",
            json!({"persona": "Watched", "policy": {"daily_budget_usd": 2.5,
                "monthly_budget_usd": 40.0, "failure_threshold": 1, "max_retries": 0}}),
        )
        .await;
    assert_eq!(
        (
            p["policy"]["daily_budget_usd"].as_f64(),
            p["policy"]["monthly_budget_usd"].as_f64(),
            p["policy"]["failure_threshold"].as_u64()
        ),
        (Some(2.5), Some(40.0), Some(1))
    );
    let (st, e) = s
        .call("resume_persona", json!({"persona": "Watched"}))
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("conflict")),
        "not paused: {e}"
    );

    // One failure opens the breaker (threshold 1): an issue and a paused persona.
    let exec = s.ok("run_persona", json!({"persona": "Watched"})).await;
    let id = exec["id"].as_str().expect("id").to_string();
    read_until(&mut ws, |f| {
        f["event"]["type"] == "healing" && f["event"]["execution_id"] == id.as_str()
    })
    .await;
    let healing = s.ok("list_healing", json!({})).await;
    let breakers = healing["breakers"].as_array().expect("breakers");
    assert!(
        breakers
            .iter()
            .any(|b| b["persona_name"] == "Watched" && b["state"] == "open"),
        "{healing}"
    );
    let issue = healing["issues"]
        .as_array()
        .expect("issues")
        .iter()
        .find(|i| i["persona_name"] == "Watched")
        .cloned()
        .expect("an issue for Watched");
    assert!(
        issue["suggested_fix"]
            .as_str()
            .is_some_and(|f| !f.is_empty())
    );
    let p = s.ok("get_policy", json!({"persona": "Watched"})).await;
    assert_eq!(p["paused"], true, "{p}");
    let resolved = s
        .ok(
            "resolve_issue",
            json!({"id": &issue["id"].as_str().expect("id")[..28]}),
        )
        .await;
    assert_eq!(resolved["status"], "resolved");
    let (st, e) = s.call("resolve_issue", json!({"id": ""})).await;
    assert_eq!((st, e["field"].as_str()), (400, Some("id")));
    let resumed = s.ok("resume_persona", json!({"persona": "Watched"})).await;
    assert_eq!(resumed["paused"], false, "{resumed}");
    let all = s.ok("list_healing", json!({"all": true})).await;
    assert!(
        all["issues"]
            .as_array()
            .expect("issues")
            .iter()
            .all(|i| i["persona_name"] != "Watched" || i["status"] == "resolved"),
        "{all}"
    );
    s.ok("delete_persona", json!({"persona": "Watched"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_approved_with_a_note_through_the_api_resumes_the_run_to_completion() {
    let s = Server::start().await;
    let mut ws = s.socket("").await;
    frames(&mut ws).await;
    let key = "SCRIPT-server-review";
    s.api.script(
        key,
        vec![
            Step::text(
                "Ready to publish.\n{\"manual_review\": {\"title\": \"Publish v2?\", \"severity\": \"high\", \"suggested_actions\": [\"publish\"]}}",
            ),
            Step::text("Published v2."),
        ],
    );
    s.ok(
        "create_persona",
        json!({"spec": {"name": "Publisher", "instructions": format!("Follow script {key}.")}}),
    )
    .await;
    let exec = s.ok("run_persona", json!({"persona": "Publisher"})).await;
    let id = exec["id"].as_str().expect("id").to_string();

    // The request is streamed, and the run waits for it.
    let seen = read_until(&mut ws, |f| {
        f["event"]["type"] == "execution"
            && f["event"]["execution"]["id"] == id.as_str()
            && f["event"]["execution"]["status"] == "awaiting_review"
    })
    .await;
    assert!(
        seen.iter()
            .any(|f| f["event"]["type"] == "review"
                && f["event"]["review"]["title"] == "Publish v2?"),
        "a review event before the pause"
    );
    let pending = s.ok("list_reviews", json!({"status": "pending"})).await;
    let reviews = pending["reviews"].as_array().expect("reviews");
    assert_eq!(reviews.len(), 1, "{pending}");
    assert_eq!(reviews[0]["execution_id"], id.as_str());
    let review_id = reviews[0]["id"].as_str().expect("id").to_string();

    let decided = s
        .ok(
            "decide_review",
            json!({"id": review_id, "decision": "approve", "note": "ship it on Monday"}),
        )
        .await;
    assert_eq!(decided["effect"], "resumed", "{decided}");
    assert_eq!(decided["review"]["status"], "approved");
    let seen = read_until(&mut ws, |f| {
        f["event"]["type"] == "execution"
            && f["event"]["execution"]["id"] == id.as_str()
            && f["event"]["execution"]["finished_at"].is_string()
    })
    .await;
    assert!(
        seen.iter().any(|f| f["event"]["type"] == "review_decided"),
        "the decision is streamed"
    );
    let done = s.ok("get_execution", json!({"id": id})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let reqs = s.api.requests();
    assert_eq!(reqs.len(), 2, "one request before the pause, one after");
    assert_eq!(
        reqs[0].session_id, reqs[1].session_id,
        "the same Claude session"
    );
    assert!(
        reqs[1].all_text().contains("ship it on Monday"),
        "the note reaches the model"
    );

    let (st, e) = s
        .call(
            "decide_review",
            json!({"id": review_id, "decision": "reject", "note": "too late"}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (409, Some("conflict")), "{e}");
    let all = s.ok("list_reviews", json!({})).await;
    assert_eq!(all["reviews"][0]["decision_note"], "ship it on Monday");
}
