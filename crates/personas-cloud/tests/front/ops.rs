//! The operations: tenant isolation, field-naming 400s for every operation, sealed credentials,
//! events starting subscribed personas, cancel of a queued run, health/readiness, OpenAPI.

use crate::harness::*;
use base64::Engine as _;
use personas_cloud_api::CloudErrorCode;
use personas_cloud_api::model::*;
use personas_core::ExecutionStatus;
use personas_core::trigger::TriggerConfig;
use serde_json::{Value, json};
use std::collections::BTreeMap;

async fn push(front: &Front, token: &str, name: &str) -> CloudPersona {
    front
        .client(token)
        .push_persona(&PushPersona {
            text: persona_file(name),
            id: None,
            credentials: vec![],
            triggers: vec![],
        })
        .await
        .expect("push")
}

async fn execute(front: &Front, token: &str, persona: &str) -> CloudExecution {
    front
        .client(token)
        .execute(&Execute {
            persona: persona.into(),
            input: Some(json!({"n": 1})),
            idempotency_key: None,
        })
        .await
        .expect("execute")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_a_cannot_see_cancel_read_or_stream_tenant_b_runs() {
    let front = Front::start().await;
    let (a, b) = (front.token("tenant-a"), front.token("tenant-b"));
    push(&front, &b, "B's persona").await;
    let run = execute(&front, &b, "B's persona").await;
    assert_eq!(run.execution.status, ExecutionStatus::Queued);
    let id = run.execution.id.as_str();

    // A: every path to B's run is "not found", like an id that never existed.
    for op in ["get_execution", "cancel_execution", "execution_output"] {
        let (status, body) = front
            .post(op, Some(&a), &json!({"id": id}).to_string())
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{op}: {body}"
        );
        let (status, _) = front
            .post(
                op,
                Some(&a),
                &json!({"id": "0190a0b0-0000-7000-8000-000000000000"}).to_string(),
            )
            .await;
        assert_eq!(status, 404, "{op} of a missing id answers the same");
    }
    let err = front
        .client(&a)
        .stream(0, Some(id))
        .await
        .err()
        .expect("stream refused");
    assert_eq!(err.code, CloudErrorCode::NotFound, "{err:?}");
    let listed = front
        .client(&a)
        .list_executions(&Default::default())
        .await
        .expect("list");
    assert!(listed.executions.is_empty(), "A lists none of B's runs");
    let (status, _) = front
        .post(
            "execute",
            Some(&a),
            &json!({"persona": "B's persona"}).to_string(),
        )
        .await;
    assert_eq!(status, 404, "A cannot run B's persona");
    assert!(
        front
            .client(&a)
            .list_personas(&Empty {})
            .await
            .expect("list")
            .personas
            .is_empty()
    );
    // B's run is untouched by A's cancel, and B cancels it: queued → cancelled at once.
    let still = front
        .client(&b)
        .get_execution(&ExecutionRef {
            id: run.execution.id.clone(),
        })
        .await;
    assert_eq!(
        still.expect("B sees it").execution.status,
        ExecutionStatus::Queued
    );
    let cancelled = front
        .client(&b)
        .cancel_execution(&ExecutionRef {
            id: run.execution.id.clone(),
        })
        .await
        .expect("cancel");
    assert_eq!(cancelled.execution.status, ExecutionStatus::Cancelled);
    let page = front
        .client(&b)
        .execution_output(&OutputRequest {
            id: run.execution.id.clone(),
            after_seq: None,
            limit: None,
        })
        .await
        .expect("output");
    assert!(
        page.lines.is_empty() && page.done,
        "a cancelled run with no output is done"
    );
    // The idempotency key returns the first run instead of queueing a second.
    let req = Execute {
        persona: "B's persona".into(),
        input: None,
        idempotency_key: Some("k-1".into()),
    };
    let first = front.client(&b).execute(&req).await.expect("first");
    let again = front.client(&b).execute(&req).await.expect("again");
    assert_eq!(first.execution.id, again.execution.id);
}

/// One or more bad requests per operation, with the field the answer must name.
fn bad_inputs() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        ("whoami", json!({"extra": 1}), "extra"),
        ("execute", json!({"persona": 5}), "persona"),
        ("execute", json!({"persona": ""}), "persona"),
        (
            "execute",
            json!({"persona": "Writer", "idempotency_key": ""}),
            "idempotency_key",
        ),
        ("list_executions", json!({"status": "sleeping"}), "status"),
        ("list_executions", json!({"limit": 0}), "limit"),
        ("list_executions", json!({"limit": 501}), "limit"),
        ("get_execution", json!({}), "id"),
        ("get_execution", json!({"id": 7}), "id"),
        ("cancel_execution", json!({"id": ["x"]}), "id"),
        (
            "execution_output",
            json!({"id": "x", "after_seq": -1}),
            "after_seq",
        ),
        (
            "execution_output",
            json!({"id": "x", "limit": 5001}),
            "limit",
        ),
        (
            "push_persona",
            json!({"text": "format: personas/v1\nname: X\n"}),
            "text",
        ),
        (
            "push_persona",
            json!({"text": "format: personas/v2\nname: X\ninstructions: y\n"}),
            "text",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "credentials": [{"name": "gh", "service_type": "github", "fields": {"token": 5}}]}),
            "credentials[0].fields.token",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "credentials": [{"name": "gh", "service_type": "github", "fields": {"token": "ab"}}]}),
            "credentials[0].fields.token",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "credentials": [{"name": "bad name!", "service_type": "github", "fields": {"token": "long-enough-secret-value"}}]}),
            "credentials[0].name",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "triggers": [{"kind": "cron", "config": {"expr": "not cron", "tz": "UTC"}}]}),
            "triggers[0].config.expr",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "triggers": [{"kind": "cron", "config": {"cron": "0 * * * *", "timezone": "Mars/Base"}}]}),
            "triggers[0].config.tz",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "triggers": [{"kind": "event", "config": {"event_type": "a*b"}}]}),
            "triggers[0].config.pattern",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "triggers": [{"kind": "nope", "config": {}}]}),
            "triggers[0].kind",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "triggers": [{"kind": "cron", "config": {"kind": "event", "pattern": "x"}}]}),
            "triggers[0].kind",
        ),
        (
            "push_persona",
            json!({"text": persona_file("X"), "id": "not-a-uuid"}),
            "id",
        ),
        ("list_personas", json!({"x": 1}), "x"),
        ("delete_persona", json!({"persona": ""}), "persona"),
        ("list_triggers", json!("text"), "body"),
        ("publish_event", json!({"event_type": ""}), "event_type"),
        (
            "publish_event",
            json!({"event_type": "has space"}),
            "event_type",
        ),
        ("publish_event", json!({"event_type": "ok", "id": ""}), "id"),
        ("list_events", json!({"limit": 0}), "limit"),
        (
            "set_model_credential",
            json!({"kind": "password", "value": "x"}),
            "kind",
        ),
        (
            "set_model_credential",
            json!({"kind": "api_key", "value": "ab"}),
            "value",
        ),
        ("get_cluster", json!({"verbose": true}), "verbose"),
        ("get_usage", json!({"month": "2026-13"}), "month"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_names_the_bad_field_with_400() {
    let front = Front::start().await;
    let t = front.token("tenant-bad-input");
    push(&front, &t, "Writer").await;
    let cases = bad_inputs();
    let mut covered = std::collections::BTreeSet::new();
    for (op, body, field) in &cases {
        let (status, answer) = front.post(op, Some(&t), &body.to_string()).await;
        assert_eq!(status, 400, "{op} {body}: {answer}");
        assert_eq!(answer["code"], "invalid", "{op} {body}: {answer}");
        let named = answer["field"].as_str().unwrap_or_default();
        assert!(
            named == *field || named.starts_with(&format!("{field}.")),
            "{op} {body}: the field {named:?} should be {field:?} ({answer})"
        );
        assert!(
            !answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains("long-enough-secret-value")
        );
        covered.insert(*op);
    }
    for op in personas_cloud_api::CLOUD_OPERATIONS {
        assert!(
            covered.contains(op.name),
            "no bad-input case for {}",
            op.name
        );
    }
    // Not JSON at all, an unknown operation, a body over the limit.
    let (status, answer) = front.post("execute", Some(&t), "{not json").await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("invalid")));
    let (status, answer) = front.post("launch_rockets", Some(&t), "{}").await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (404, Some("unknown_operation")),
        "{answer}"
    );
    let huge = json!({"text": "x".repeat(2 * 1024 * 1024)}).to_string();
    let (status, answer) = front.post("push_persona", Some(&t), &huge).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("too_large")),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_credentials_are_stored_sealed_and_triggers_kept() {
    let front = Front::start().await;
    let t = front.token("tenant-sealed");
    let secret = "ghp_Sup3r\"Secret/Value\\with+escapes";
    let model_secret = "sk-ant-oat01-model-secret-value-123";
    let mut fields = BTreeMap::new();
    fields.insert("token".to_string(), WireSecret::new(secret));
    let pushed = front
        .client(&t)
        .push_persona(&PushPersona {
            text: persona_file("Sealed writer"),
            id: None,
            credentials: vec![PushedCredential {
                name: "github".into(),
                service_type: "github".into(),
                fields,
            }],
            triggers: vec![
                // As the local store keeps it: the tagged TriggerConfig.
                PushedTrigger {
                    kind: "cron".into(),
                    config: serde_json::to_value(TriggerConfig::Cron {
                        expr: "*/5 * * * *".into(),
                        tz: "UTC".into(),
                        missed: Default::default(),
                    })
                    .expect("json"),
                    enabled: true,
                },
                // The short form.
                PushedTrigger {
                    kind: "event".into(),
                    config: json!({"event_type": "release.*"}),
                    enabled: true,
                },
            ],
        })
        .await
        .expect("push");
    assert_eq!((pushed.revision, pushed.triggers), (1, 2));
    assert_eq!(pushed.credentials, ["github"]);
    front
        .client(&t)
        .set_model_credential(&SetModelCredential {
            kind: ModelCredentialKind::OauthToken,
            value: Some(WireSecret::new(model_secret)),
        })
        .await
        .expect("model credential");

    assert_no_plaintext(&front.pg.dump("cloud"), &[secret, model_secret]);
    let (cron_id, next) = check_triggers(&front, &t).await;
    check_events_start_subscribers(&front, &t).await;
    check_repush_keeps_unchanged_triggers(&front, &t, &pushed, &cron_id, next).await;
}

/// No form of a secret — raw, base64, base64url, JSON-escaped, hex (how pg_dump prints
/// bytea) — appears in the dump.
fn assert_no_plaintext(dump: &str, secrets: &[&str]) {
    assert!(
        dump.contains("Sealed writer"),
        "the dump holds the persona (the search is real)"
    );
    for value in secrets.iter().copied() {
        let std_b64 = base64::engine::general_purpose::STANDARD.encode(value);
        let url_b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value);
        let json_escaped = serde_json::to_string(value).expect("json");
        let json_inner = &json_escaped[1..json_escaped.len() - 1];
        let hex_form = hex::encode(value);
        for (form, needle) in [
            ("raw", value),
            ("base64", std_b64.as_str()),
            ("base64url", url_b64.as_str()),
            ("JSON-escaped", json_inner),
            ("hex (bytea)", hex_form.as_str()),
        ] {
            assert!(
                !dump.contains(needle),
                "the {form} form of a secret is in pg_dump"
            );
        }
    }
}

/// The triggers as pushed: cron with its next fire, the event subscription. Returns the cron
/// trigger's id and next fire.
async fn check_triggers(front: &Front, t: &str) -> (String, chrono::DateTime<chrono::Utc>) {
    // The triggers: cron with its next fire, the event subscription as pushed.
    let triggers = front
        .client(t)
        .list_triggers(&Empty {})
        .await
        .expect("triggers")
        .triggers;
    assert_eq!(triggers.len(), 2);
    let cron = triggers
        .iter()
        .find(|t| t.kind == "cron")
        .expect("cron trigger");
    let next = cron.next_fire_at.expect("cron has a next fire");
    assert!(next > chrono::Utc::now() && next <= chrono::Utc::now() + chrono::Duration::minutes(5));
    let event = triggers
        .iter()
        .find(|t| t.kind == "event")
        .expect("event trigger");
    assert_eq!(
        event.config,
        json!({"kind": "event", "pattern": "release.*"})
    );
    (cron.id.clone(), next)
}

/// Publishing a matching event starts the persona, once per event id; usage counts events.
async fn check_events_start_subscribers(front: &Front, t: &str) {
    // Publishing a matching event starts the persona, once per event id.
    let ev = PublishEvent {
        event_type: "Release.Published".into(),
        payload: Some(json!({"version": "1.2.0"})),
        source: None,
        id: Some("evt-1".into()),
    };
    let published = front.client(t).publish_event(&ev).await.expect("publish");
    assert_eq!(published.executions.len(), 1, "the subscription matched");
    let again = front
        .client(t)
        .publish_event(&ev)
        .await
        .expect("publish again");
    assert_eq!(
        again.executions, published.executions,
        "the same id stores one event"
    );
    let other = PublishEvent {
        event_type: "deploy.done".into(),
        id: None,
        ..ev.clone()
    };
    assert!(
        front
            .client(t)
            .publish_event(&other)
            .await
            .expect("publish")
            .executions
            .is_empty()
    );
    let runs = front
        .client(t)
        .list_executions(&Default::default())
        .await
        .expect("list")
        .executions;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].execution.trigger_ref.as_deref(), Some("evt-1"));
    let events = front
        .client(t)
        .list_events(&Default::default())
        .await
        .expect("events")
        .events;
    assert_eq!(events.len(), 2);
    let usage = front
        .client(t)
        .get_usage(&Default::default())
        .await
        .expect("usage");
    assert_eq!(usage.events, 2, "each event counted once");
}

/// A second push replaces: revision 2, credentials replaced, and an unchanged cron trigger is
/// the same row (same id) keeping its schedule; deleting the persona removes its triggers.
async fn check_repush_keeps_unchanged_triggers(
    front: &Front,
    t: &str,
    pushed: &CloudPersona,
    cron_id: &str,
    next: chrono::DateTime<chrono::Utc>,
) {
    // A second push replaces: revision 2; the unchanged cron trigger is the same row (same id)
    // and keeps its schedule.
    // The unchanged cron trigger, in the short form this time.
    let keep = PushedTrigger {
        kind: "cron".into(),
        config: json!({"cron": "*/5 * * * *", "timezone": "UTC"}),
        enabled: true,
    };
    let again = front
        .client(t)
        .push_persona(&PushPersona {
            text: persona_file("Sealed writer"),
            id: None,
            credentials: vec![],
            triggers: vec![keep],
        })
        .await
        .expect("push again");
    assert_eq!(
        (again.id.as_str(), again.revision, again.triggers),
        (pushed.id.as_str(), 2, 1)
    );
    assert!(
        again.credentials.is_empty(),
        "credentials replaced by the pushed ones"
    );
    let triggers = front
        .client(t)
        .list_triggers(&Empty {})
        .await
        .expect("triggers")
        .triggers;
    assert_eq!(triggers[0].id, cron_id);
    assert_eq!(triggers[0].next_fire_at, Some(next));
    let deleted = front
        .client(t)
        .delete_persona(&PersonaRef {
            persona: "Sealed writer".into(),
        })
        .await;
    assert_eq!(deleted.expect("delete").id, pushed.id);
    assert!(
        front
            .client(t)
            .list_triggers(&Empty {})
            .await
            .expect("triggers")
            .triggers
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_openapi_and_cluster() {
    let front = Front::start().await;
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/health", front.base))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 200, "health needs no token");
    // Postgres is up, the broker is not: not ready, and the answer says which.
    let ready = http
        .get(format!("{}/ready", front.base))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status().as_u16(), 503);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["postgres"], "ok", "{ready}");
    assert_ne!(ready["broker"], "ok", "{ready}");

    let doc: Value = http
        .get(format!("{}/openapi.json", front.base))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    for op in personas_cloud_api::CLOUD_OPERATIONS {
        let path = &doc["paths"][format!("/api/{}", op.name)]["post"];
        assert_eq!(
            path["operationId"], op.name,
            "the document lists {}",
            op.name
        );
        // And the route exists: without a token it is a 401, not a 404.
        let (status, _) = front.post(op.name, None, "{}").await;
        assert_eq!(status, 401, "POST /api/{} is routed", op.name);
    }
    assert_eq!(
        doc["paths"].as_object().map(|p| p.len()),
        Some(personas_cloud_api::CLOUD_OPERATIONS.len())
    );

    let t = front.token("tenant-cluster");
    let cluster = front
        .client(&t)
        .get_cluster(&Empty {})
        .await
        .expect("cluster");
    assert_eq!(
        (cluster.queued, cluster.exec_lag),
        (0, None),
        "no broker: no lag figure"
    );
}
