//! The trigger and event-bus operations, round-tripped through the real server as part of
//! `every_operation_round_trips_through_the_server`: every kind of trigger added (and refused,
//! naming the field, with nothing stored), a webhook reached at the URL the API gives, a
//! persona's event running its subscriber with the real CLI, a dead letter retried by hand.

use super::{Server, Ws, read_until};
use personas_server::webhook::signed_headers;
use personas_testkit::api::Step;
use serde_json::{Value, json};

/// Asserts an operation fails with this status, code and field.
async fn refused(s: &Server, op: &str, body: Value, want: (u16, &str, Option<&str>)) -> Value {
    let (st, e) = s.call(op, body.clone()).await;
    assert_eq!(
        (st, e["code"].as_str().unwrap_or(""), e["field"].as_str()),
        want,
        "{op} {body}: {e}"
    );
    e
}

/// Waits for a bus frame of `kind` about event `id`.
async fn bus_frame(ws: &mut Ws, kind: &str, id: &str) -> Value {
    let seen = read_until(ws, |f| {
        f["event"]["type"] == kind && f["event"]["event"]["id"] == id
    })
    .await;
    seen.last().expect("the frame")["event"].clone()
}

/// Waits until execution `id` reaches a final status; returns it.
async fn finished(ws: &mut Ws, id: &str) -> Value {
    let seen = read_until(ws, |f| {
        f["event"]["type"] == "execution"
            && f["event"]["execution"]["id"] == id
            && f["event"]["execution"]["finished_at"].is_string()
    })
    .await;
    seen.last().expect("the frame")["event"]["execution"].clone()
}

pub(super) async fn round_trips(s: &Server, ws: &mut Ws) {
    let key_up = "SCRIPT-bus-upstream";
    let key_down = "SCRIPT-bus-downstream";
    let key_sleepy = "SCRIPT-bus-sleepy";
    s.api.script(
        key_up,
        vec![Step::text(
            "Report done.\n{\"emit_event\": {\"type\": \"report.ready\", \"data\": {\"n\": 1}}}",
        )],
    );
    s.api.script(key_down, vec![Step::text("Read the report.")]);
    s.api.script(key_sleepy, vec![Step::text("Awake now.")]);
    for (name, key, enabled) in [
        ("Upstream", key_up, true),
        ("Downstream", key_down, true),
        ("Sleepy", key_sleepy, false),
    ] {
        s.ok(
            "create_persona",
            json!({"spec": {"name": name, "instructions": format!("Follow script {key}."), "enabled": enabled}}),
        )
        .await;
    }

    // Cron preview: valid, and refused naming the field.
    let preview = s
        .ok(
            "preview_cron",
            json!({"cron": "0 8 * * 1-5", "tz": "Europe/Prague", "count": 3}),
        )
        .await;
    assert_eq!(preview["tz"], "Europe/Prague");
    assert_eq!(preview["next"].as_array().map(Vec::len), Some(3));
    let local = preview["next_local"][0].as_str().expect("local time");
    assert!(local.contains("08:00:00"), "{local}");
    refused(
        s,
        "preview_cron",
        json!({"cron": "61 * * * *"}),
        (400, "invalid", Some("cron")),
    )
    .await;
    refused(
        s,
        "preview_cron",
        json!({"cron": "0 8 * * *", "tz": "Mars/Olympus"}),
        (400, "invalid", Some("tz")),
    )
    .await;

    // Bad triggers: the field named, nothing stored.
    for (trigger, field) in [
        (json!({"kind": "cron", "cron": "61 * * * *"}), "cron"),
        (json!({"kind": "cron", "cron": "* * *"}), "cron"),
        (
            json!({"kind": "cron", "cron": "0 8 * * *", "missed": "often"}),
            "missed",
        ),
        (json!({"kind": "event", "event": "*ticket"}), "event"),
        (
            json!({"kind": "event", "event": "x", "source": "Nobody"}),
            "source",
        ),
        (json!({"kind": "chain", "chain": "Nobody"}), "chain"),
        (
            json!({"kind": "chain", "chain": "Upstream", "on": "sometimes"}),
            "on",
        ),
        (json!({"kind": "watch", "watch": "relative/dir"}), "watch"),
        (
            json!({"kind": "watch", "watch": "/nonexistent/dir"}),
            "watch",
        ),
        (
            json!({"kind": "watch", "watch": "/tmp", "glob": "a["}),
            "glob",
        ),
    ] {
        refused(
            s,
            "add_trigger",
            json!({"persona": "Downstream", "trigger": trigger}),
            (400, "invalid", Some(field)),
        )
        .await;
    }
    refused(
        s,
        "add_trigger",
        json!({"persona": "Nobody", "trigger": {"kind": "manual"}}),
        (404, "not_found", None),
    )
    .await;
    assert_eq!(
        s.ok("list_triggers", json!({})).await["triggers"],
        json!([])
    );

    // One of each kind.
    let add = |trigger: Value| {
        s.ok(
            "add_trigger",
            json!({"persona": "Downstream", "trigger": trigger}),
        )
    };
    let sub = add(json!({"kind": "event", "event": "report.*", "source": "Upstream"})).await;
    assert_eq!(sub["trigger"]["config"]["source"]["kind"], "persona");
    assert_eq!(
        sub["summary"]
            .as_str()
            .map(|t| t.starts_with("event report.* from persona")),
        Some(true)
    );
    let cron = add(
        json!({"kind": "cron", "cron": "0 8 * * 1-5", "tz": "Europe/Prague", "missed": "once"}),
    )
    .await;
    assert_eq!(cron["trigger"]["config"]["missed"], "once");
    assert_eq!(cron["next_fires"].as_array().map(Vec::len), Some(3));
    assert_eq!(cron["next_fires"][0], cron["trigger"]["next_fire_at"]);
    assert!(
        cron["next_fires_local"][0]
            .as_str()
            .is_some_and(|t| t.contains("08:00:00"))
    );
    let chain = add(json!({"kind": "chain", "chain": "Upstream", "on": "failed"})).await;
    assert_eq!(chain["summary"], "after Upstream failed");
    let dir = tempfile::tempdir().expect("tempdir");
    let watch = add(json!({"kind": "watch", "watch": dir.path(), "glob": "*.md"})).await;
    assert_eq!(watch["trigger"]["kind"], "watch");
    let manual = add(json!({"kind": "manual"})).await;
    let hook = add(json!({"kind": "webhook"})).await;
    let hook_id = hook["trigger"]["id"].as_str().expect("id");
    assert_eq!(
        hook["webhook"]["url"].as_str(),
        Some(format!("{}/webhooks/{hook_id}", s.base).as_str()),
        "the URL is this server's real address"
    );
    assert_eq!(hook["webhook"]["github"], false);
    assert!(
        hook["webhook"]["signing"]
            .as_str()
            .is_some_and(|h| h.contains("X-Personas-Timestamp")),
        "{hook}"
    );
    let secret = hook["secret"]
        .as_str()
        .expect("the secret, shown once at creation")
        .to_string();
    assert!(
        hook["trigger"].get("secret").is_none() && hook["webhook"].get("secret").is_none(),
        "the secret is not part of the row"
    );
    // Shown again only on request; a rotation replaces it.
    let revealed = s.ok("reveal_webhook_secret", json!({"id": hook_id})).await;
    assert_eq!(revealed["secret"], secret.as_str());
    let rotated = s.ok("rotate_webhook_secret", json!({"id": hook_id})).await;
    let old_secret = secret;
    let secret = rotated["secret"].as_str().expect("new secret").to_string();
    assert_ne!(secret, old_secret);
    assert_eq!(rotated["webhook"]["url"], hook["webhook"]["url"]);
    refused(
        s,
        "reveal_webhook_secret",
        json!({"id": manual["trigger"]["id"]}),
        (400, "invalid", Some("id")),
    )
    .await;

    // The webhook answers at that URL with that secret, and not with the rotated-out one.
    let body = br#"{"ref":"main"}"#;
    let now = chrono::Utc::now().timestamp();
    let send = |secret: String| {
        let url = hook["webhook"]["url"].as_str().expect("url").to_string();
        let http = s.http.clone();
        async move {
            let mut req = http.post(url).body(body.to_vec());
            for (k, v) in signed_headers(&secret, now, body) {
                req = req.header(k, v);
            }
            req.send().await.expect("send")
        }
    };
    assert_eq!(send(old_secret.clone()).await.status(), 401);
    let resp = send(secret.clone()).await;
    assert_eq!(resp.status(), 202);
    let hook_event = resp.json::<Value>().await.expect("json")["event_id"]
        .as_str()
        .expect("event id")
        .to_string();
    // Downstream runs for it; wait so later counts are settled.
    // Every frame streamed since the webhook was added, up to its event's delivery: none
    // carries a secret.
    let seen = read_until(ws, |f| {
        f["event"]["type"] == "bus_delivered" && f["event"]["event"]["id"] == hook_event.as_str()
    })
    .await;
    for f in &seen {
        let f = f.to_string();
        assert!(
            !f.contains(&secret) && !f.contains(&old_secret),
            "a stream frame carries a secret: {f}"
        );
    }
    let d = seen.last().expect("the frame")["event"].clone();
    let hook_run = d["executions"][0].as_str().expect("execution").to_string();
    assert_eq!(finished(ws, &hook_run).await["status"], "completed");

    let listed = s
        .ok("list_triggers", json!({"persona": "downstream"}))
        .await;
    let listed = listed["triggers"].as_array().expect("triggers");
    assert_eq!(listed.len(), 6);
    assert_eq!(
        listed.iter().filter(|t| !t["webhook"].is_null()).count(),
        1,
        "only the webhook has a URL"
    );
    let all = s.ok("list_triggers", json!({})).await.to_string();
    for k in [&secret, &old_secret] {
        assert!(
            !all.contains(k.as_str()),
            "a listing never carries a secret"
        );
    }
    assert_eq!(
        s.ok("list_triggers", json!({"persona": "Upstream"})).await["triggers"],
        json!([])
    );

    // Manual: disabled refuses to fire; enabled fires with the payload.
    let manual_id = manual["trigger"]["id"].as_str().expect("id");
    let off = s
        .ok(
            "set_trigger_enabled",
            json!({"id": manual_id, "enabled": false}),
        )
        .await;
    assert_eq!(off["trigger"]["enabled"], false);
    refused(
        s,
        "fire_trigger",
        json!({"id": manual_id}),
        (409, "conflict", Some("trigger")),
    )
    .await;
    s.ok(
        "set_trigger_enabled",
        json!({"id": manual_id, "enabled": true}),
    )
    .await;
    let fired = s
        .ok(
            "fire_trigger",
            json!({"id": &manual_id[..28], "payload": {"v": "1.2"}}),
        )
        .await;
    assert_eq!(fired["trigger_id"], manual_id);
    assert_eq!(fired["event_type"], "trigger.fired");
    let d = bus_frame(ws, "bus_delivered", fired["id"].as_str().expect("id")).await;
    let manual_run = d["executions"][0].as_str().expect("execution").to_string();
    let run = finished(ws, &manual_run).await;
    assert_eq!(
        (run["persona_name"].as_str(), &run["input"]),
        (Some("Downstream"), &json!({"v": "1.2"}))
    );

    // A persona's event runs its subscriber (and only once: the chain waits for a failure).
    let up = s.ok("run_persona", json!({"persona": "Upstream"})).await;
    let up_id = up["id"].as_str().expect("id").to_string();
    let seen = read_until(ws, |f| {
        f["event"]["type"] == "bus_delivered" && f["event"]["event"]["event_type"] == "report.ready"
    })
    .await;
    let delivered = &seen.last().expect("frame")["event"];
    assert_eq!(delivered["event"]["source_execution_id"], up_id.as_str());
    assert_eq!(delivered["executions"].as_array().map(Vec::len), Some(1));
    let event_id = delivered["event"]["id"].as_str().expect("id").to_string();
    let down_id = delivered["executions"][0]
        .as_str()
        .expect("execution")
        .to_string();
    let down = finished(ws, &down_id).await;
    assert_eq!(
        (down["persona_name"].as_str(), down["status"].as_str()),
        (Some("Downstream"), Some("completed"))
    );
    assert_eq!(down["input"], json!({"n": 1}));

    let events = s.ok("list_events", json!({"source": "persona"})).await;
    let ev = &events["events"][0];
    assert_eq!(ev["event"]["id"], event_id.as_str());
    assert_eq!(ev["executions"], json!([down_id]));
    assert_eq!(ev["deliveries"][0]["persona_name"], "Downstream");
    assert_eq!(ev["deliveries"][0]["status"], "delivered");
    let by_type = s
        .ok(
            "list_events",
            json!({"type": "webhook.received", "status": "delivered"}),
        )
        .await;
    assert_eq!(by_type["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_type["events"][0]["executions"], json!([hook_run]));
    let got = s.ok("get_event", json!({"id": &event_id[..28]})).await;
    assert_eq!(got["event"]["payload"], json!({"n": 1}));
    assert_eq!(got["executions"], json!([down_id]));
    refused(
        s,
        "list_events",
        json!({"status": "lost"}),
        (400, "invalid", Some("status")),
    )
    .await;
    refused(
        s,
        "list_events",
        json!({"source": "mars"}),
        (400, "invalid", Some("source")),
    )
    .await;
    refused(
        s,
        "get_event",
        json!({"id": "0000"}),
        (404, "not_found", None),
    )
    .await;

    // Emitting: refused inputs, then a dead letter retried by hand.
    refused(
        s,
        "emit_event",
        json!({"type": "ticket.*"}),
        (400, "invalid", Some("type")),
    )
    .await;
    refused(
        s,
        "emit_event",
        json!({"type": "nudge", "target": "Nobody"}),
        (404, "not_found", Some("target")),
    )
    .await;
    refused(
        s,
        "retry_event",
        json!({"id": event_id}),
        (409, "conflict", Some("event")),
    )
    .await;
    let nudge = s
        .ok(
            "emit_event",
            json!({"type": "nudge", "payload": {"wake": true}, "target": "Sleepy"}),
        )
        .await;
    let nudge_id = nudge["id"].as_str().expect("id").to_string();
    assert_eq!(nudge["source_kind"], "user");
    let dead = bus_frame(ws, "bus_dead_lettered", &nudge_id).await;
    assert!(
        dead["event"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Sleepy is disabled")),
        "{dead}"
    );
    let dead_list = s.ok("list_events", json!({"status": "dead_letter"})).await;
    assert_eq!(dead_list["events"][0]["event"]["id"], nudge_id.as_str());
    s.ok(
        "update_persona",
        json!({"persona": "Sleepy", "spec": {"name": "Sleepy", "instructions": format!("Follow script {key_sleepy}."), "enabled": true}}),
    )
    .await;
    let retried = s.ok("retry_event", json!({"id": nudge_id})).await;
    assert_eq!(
        (retried["status"].as_str(), retried["attempts"].as_u64()),
        (Some("pending"), Some(0))
    );
    let d = bus_frame(ws, "bus_delivered", &nudge_id).await;
    let sleepy_run = d["executions"][0].as_str().expect("execution").to_string();
    let run = finished(ws, &sleepy_run).await;
    assert_eq!(
        (run["persona_name"].as_str(), &run["input"]),
        (Some("Sleepy"), &json!({"wake": true}))
    );

    // Removing.
    let watch_id = watch["trigger"]["id"].as_str().expect("id");
    let gone = s.ok("remove_trigger", json!({"id": watch_id})).await;
    assert_eq!(gone["trigger"]["id"], watch_id);
    refused(
        s,
        "remove_trigger",
        json!({"id": watch_id}),
        (404, "not_found", None),
    )
    .await;
    assert_eq!(
        s.ok("list_triggers", json!({"persona": "Downstream"}))
            .await["triggers"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    let _ = (cron, chain, sub);
}
