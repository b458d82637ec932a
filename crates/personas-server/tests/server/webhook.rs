//! Webhook triggers through the daemon's HTTP server, on a real loopback listener over a real
//! engine, store and (passphrase) vault: signatures with a timestamp, replays refused, GitHub's
//! format, and the secret kept out of the database file.

use super::Server;
use personas_core::PersonaSpec;
use personas_engine::triggers::{self, TriggerSpec};
use personas_engine::vault::VaultOptions;
use personas_engine::{Engine, EngineConfig, EngineEvent};
use personas_server::webhook::{
    DELIVERY_HEADER, GITHUB_DELIVERY_HEADER, GITHUB_SIGNATURE_HEADER, SIGNATURE_HEADER,
    TIMESTAMP_HEADER, sign, signed_headers,
};
use personas_store::Store;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(30);

/// The test server with runs that fail fast (no Claude CLI): these tests are about what
/// reaches the bus.
async fn server(tune: impl FnOnce(&mut EngineConfig)) -> Server {
    Server::start_tuned(|c| {
        c.claude_path = Some("/nonexistent/claude".into());
        tune(c)
    })
    .await
}

/// A webhook trigger for a new persona, made as `personas trigger add` makes it: returns its
/// id and the secret shown at creation.
fn webhook_for(s: &Server, persona: &str, github: bool) -> (String, String) {
    let store = s.engine.store();
    store
        .personas()
        .create(&PersonaSpec::new(persona, "Tell people about deploys."))
        .expect("persona");
    let cell = s.engine.vault();
    let added = triggers::add(
        store,
        persona,
        &TriggerSpec::Webhook { github },
        true,
        chrono::Utc::now(),
        &mut || cell.get_or_create(store),
    )
    .expect("trigger");
    let secret = added.secret.expect("secret").expose().to_string();
    (added.trigger.id.to_string(), secret)
}

fn webhook(s: &Server) -> (String, String) {
    webhook_for(s, "Deploy notifier", false)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The Personas-scheme headers for `body` signed now.
fn signed(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    signed_headers(secret, now(), body).to_vec()
}

async fn post(url: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn event_count(s: &Server) -> usize {
    s.engine
        .store()
        .bus()
        .list(&Default::default())
        .expect("list")
        .len()
}

/// Asserts a refusal: status, code, and a message naming `mentions`.
fn assert_refused(got: &(u16, Value), status: u16, code: &str, mentions: &str) {
    let (st, body) = got;
    assert_eq!(*st, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().unwrap_or("");
    assert!(
        message
            .to_ascii_lowercase()
            .contains(&mentions.to_ascii_lowercase()),
        "{message:?} should mention {mentions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_is_accepted_as_an_event_for_its_persona() {
    let s = server(|_| {}).await;
    let (id, secret) = webhook(&s);
    let mut events = s.engine.subscribe();
    let body = br#"{"ref":"refs/heads/main","version":"1.2"}"#;
    let (status, answer) = post(
        &format!("{}/webhooks/{id}", s.base),
        body,
        &[
            signed(&secret, body),
            vec![
                ("content-type", "application/json".into()),
                // A tunnel's public host name: webhooks are not bound to our Host.
                ("host", "hooks.example.com".into()),
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let event_id = answer["event_id"].as_str().expect("event_id").to_string();
    let event = s
        .engine
        .store()
        .bus()
        .get(&event_id)
        .expect("stored before the answer");
    assert_eq!(event.event_type, "webhook.received");
    assert_eq!(
        event.source_kind,
        personas_core::trigger::SourceKind::Webhook
    );
    assert_eq!(
        event.payload,
        json!({"ref": "refs/heads/main", "version": "1.2"})
    );
    assert_eq!(event.trigger_id.as_deref(), Some(id.as_str()));
    // The dispatcher turns it into a run of the trigger's persona.
    let executions = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(EngineEvent::EventDelivered { event, executions }) if event.id == event_id => {
                    return executions;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("delivered");
    let exec = s
        .engine
        .store()
        .executions()
        .get(&executions[0])
        .expect("execution");
    assert_eq!(exec.trigger, personas_core::TriggerKind::Webhook);
    assert_eq!(exec.persona_name, "Deploy notifier");

    // A sender's retry under the same delivery id, freshly signed, is not a second event.
    let url = format!("{}/webhooks/{id}", s.base);
    let with_delivery = |n: &str| {
        let mut h = signed(&secret, b"{}");
        h.push((DELIVERY_HEADER, n.to_string()));
        h
    };
    let (a, first) = post(&url, b"{}", &with_delivery("delivery-1")).await;
    assert_eq!(a, 202, "{first}");
    let before = event_count(&s);
    let retry = post(&url, b"{}", &with_delivery("delivery-1")).await;
    assert_refused(&retry, 409, "replayed", "received before");
    assert_eq!(event_count(&s), before, "nothing stored for the retry");

    // A body that is not JSON arrives raw.
    let text = b"deploy finished";
    let (status, answer) = post(
        &format!("{}/webhooks/{id}", s.base),
        text,
        &[
            signed(&secret, text),
            vec![("content-type", "text/plain".into())],
        ]
        .concat(),
    )
    .await;
    assert_eq!(status, 202);
    let raw = s
        .engine
        .store()
        .bus()
        .get(answer["event_id"].as_str().expect("id"))
        .expect("event");
    assert_eq!(raw.payload["raw"], "deploy finished");
    assert_eq!(raw.payload["content_type"], "text/plain");
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_signatures_oversized_bodies_and_unknown_triggers_store_nothing() {
    let s = server(|c| c.webhook_max_body_bytes = 1024).await;
    let (id, secret) = webhook(&s);
    let url = format!("{}/webhooks/{id}", s.base);
    let body = br#"{"a":1}"#;

    let wrong = post(&url, body, &signed("wrong secret", body)).await;
    assert_refused(&wrong, 401, "bad_signature", SIGNATURE_HEADER);
    assert_eq!(wrong.1["field"], SIGNATURE_HEADER);
    let missing = post(&url, body, &[]).await;
    assert_refused(&missing, 401, "missing_signature", TIMESTAMP_HEADER);
    let other_body = post(&url, b"{\"a\":2}", &signed(&secret, body)).await;
    assert_refused(&other_body, 401, "bad_signature", "does not match");
    let garbled = post(
        &url,
        body,
        &[
            (TIMESTAMP_HEADER, "Tue, 03 Dec 2026 07:00:00 GMT".into()),
            (SIGNATURE_HEADER, sign(&secret, now(), body)),
        ],
    )
    .await;
    assert_refused(&garbled, 401, "malformed_signature", "unix seconds");
    let no_prefix = post(
        &url,
        body,
        &[
            (TIMESTAMP_HEADER, now().to_string()),
            (
                SIGNATURE_HEADER,
                sign(&secret, now(), body)[7..].to_string(),
            ),
        ],
    )
    .await;
    assert_refused(&no_prefix, 401, "malformed_signature", "sha256=");
    let old_scheme = post(
        &url,
        body,
        &[(SIGNATURE_HEADER, sign(&secret, now(), body))],
    )
    .await;
    assert_refused(&old_scheme, 401, "missing_signature", TIMESTAMP_HEADER);

    let big = vec![b'x'; 4096];
    let (status, answer) = post(&url, &big, &signed(&secret, &big)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("1024"))
    );

    let unknown = format!("{}/webhooks/{}", s.base, personas_core::TriggerId::new());
    let (status, _) = post(&unknown, body, &signed(&secret, body)).await;
    assert_eq!(status, 404);

    assert_eq!(event_count(&s), 0, "nothing was published");

    // Webhooks skipping the Host check did not loosen the API: it still refuses other hosts
    // and wants its token.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/wake", s.base))
        .header("host", "evil.example")
        .bearer_auth("t".repeat(64))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 403);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/wake", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_is_refused_and_stores_nothing() {
    let s = server(|_| {}).await;
    let (id, secret) = webhook(&s);
    let url = format!("{}/webhooks/{id}", s.base);
    let body = br#"{"deploy":"v1"}"#;
    let headers = signed(&secret, body);
    let (status, first) = post(&url, body, &headers).await;
    assert_eq!(status, 202, "{first}");
    assert_eq!(event_count(&s), 1);
    for _ in 0..2 {
        let again = post(&url, body, &headers).await;
        assert_refused(&again, 409, "replayed", "received before");
    }
    assert_eq!(event_count(&s), 1, "a replay stores no event");
    // The same body signed again (a new timestamp) is a new delivery.
    let later = signed_headers(&secret, now() + 1, body).to_vec();
    let (status, _) = post(&url, body, &later).await;
    assert_eq!(status, 202);
    assert_eq!(event_count(&s), 2);
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_or_future_timestamp_is_refused() {
    let s = server(|_| {}).await;
    let (id, secret) = webhook(&s);
    let url = format!("{}/webhooks/{id}", s.base);
    let body = b"{}";
    for skew in [-301, 301, -86_400, 86_400] {
        let headers = signed_headers(&secret, now() + skew, body).to_vec();
        let got = post(&url, body, &headers).await;
        assert_refused(&got, 401, "stale_timestamp", "300 s");
        assert_eq!(got.1["field"], TIMESTAMP_HEADER);
    }
    assert_eq!(event_count(&s), 0);
    // Just inside the window either way is accepted.
    for skew in [-290, 290] {
        let headers = signed_headers(&secret, now() + skew, body).to_vec();
        assert_eq!(post(&url, body, &headers).await.0, 202, "{skew}");
    }
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_trigger_takes_githubs_signature_and_refuses_a_repeated_delivery() {
    let s = server(|_| {}).await;
    let (id, _) = webhook_for(&s, "Repo watcher", true);
    // GitHub's published example: the trigger's secret is set to theirs (a rotation through
    // the store would pick a random one), so their documented signature must verify here.
    let github_secret = "It's a Secret to Everybody";
    {
        let store = s.engine.store();
        let t = store.triggers().find(&id).expect("trigger");
        let vault = s.engine.vault().get(store).expect("vault");
        let sealed = vault
            .seal_webhook(t.id.as_str(), &personas_core::Secret::new(github_secret))
            .expect("seal");
        store
            .webhooks()
            .replace_secret(&t.id, &sealed)
            .expect("set");
    }
    let url = format!("{}/webhooks/{id}", s.base);
    let body = b"Hello, World!";
    let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let headers = [
        (GITHUB_SIGNATURE_HEADER, signature.to_string()),
        (
            GITHUB_DELIVERY_HEADER,
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
        ),
        ("x-github-event", "ping".into()),
    ];
    let (status, answer) = post(&url, body, &headers).await;
    assert_eq!(status, 202, "{answer}");
    let event = s
        .engine
        .store()
        .bus()
        .get(answer["event_id"].as_str().expect("event id"))
        .expect("event");
    assert_eq!(event.payload["raw"], "Hello, World!");
    let again = post(&url, body, &headers).await;
    assert_refused(&again, 409, "replayed", "delivery id");
    let no_delivery = post(&url, body, &headers[..1]).await;
    assert_refused(
        &no_delivery,
        401,
        "missing_signature",
        GITHUB_DELIVERY_HEADER,
    );
    let tampered = post(&url, b"Hello, World?", &headers).await;
    assert_refused(&tampered, 401, "bad_signature", GITHUB_SIGNATURE_HEADER);
    // A Personas-scheme signature is not what this trigger takes.
    let personas = post(&url, body, &signed(github_secret, body)).await;
    assert_refused(&personas, 401, "missing_signature", GITHUB_SIGNATURE_HEADER);
    assert_eq!(event_count(&s), 1);
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_never_reach_the_database_file_in_plaintext() {
    let s = server(|_| {}).await;
    let mut secrets = Vec::new();
    for (i, github) in [false, true, false].into_iter().enumerate() {
        let (id, secret) = webhook_for(&s, &format!("Hook {i}"), github);
        secrets.push(secret);
        let cell = s.engine.vault();
        let store = s.engine.store();
        let (_, rotated) =
            triggers::rotate_secret(store, &id, &mut || cell.get(store)).expect("rotate");
        secrets.push(rotated.expose().to_string());
    }
    // A delivery goes through too, so the WAL has seen every kind of write.
    let (id, secret) = webhook_for(&s, "Last", false);
    let (status, _) = post(
        &format!("{}/webhooks/{id}", s.base),
        b"{}",
        &signed(&secret, b"{}"),
    )
    .await;
    assert_eq!(status, 202);
    secrets.push(secret);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(s.data_dir()).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            files.push((path.clone(), std::fs::read(&path).expect("read")));
        }
    }
    assert!(
        files.iter().any(|(p, _)| p.ends_with("personas.db-wal")),
        "the WAL was searched too"
    );
    for (path, bytes) in &files {
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a webhook secret in plaintext",
                path.display()
            );
        }
    }
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_vault_no_webhook_trigger_is_made_and_the_error_says_how_to_enable_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_in_dir(dir.path()).expect("store");
    let engine = Engine::with_vault(
        EngineConfig::for_data_dir(dir.path()),
        store.clone(),
        VaultOptions::default(),
    );
    store
        .personas()
        .create(&PersonaSpec::new("Hooked", "x"))
        .expect("persona");
    let err = triggers::add(
        &store,
        "Hooked",
        &TriggerSpec::Webhook { github: false },
        true,
        chrono::Utc::now(),
        &mut || engine.vault().get_or_create(&store),
    )
    .expect_err("no key store");
    assert!(
        err.to_string().contains("PERSONAS_VAULT_PASSPHRASE"),
        "{err}"
    );
    assert!(store.triggers().list(None).expect("list").is_empty());
}
