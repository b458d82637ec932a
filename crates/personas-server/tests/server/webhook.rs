//! Webhook triggers through the daemon's HTTP server, on a real loopback listener over a real
//! engine and store.

use personas_core::PersonaSpec;
use personas_core::trigger::TriggerConfig;
use personas_engine::{Engine, EngineConfig, EngineEvent};
use personas_server::ServerState;
use personas_server::webhook::{DELIVERY_HEADER, SIGNATURE_HEADER, sign};
use personas_store::{NewTrigger, Store};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(30);

struct Server {
    url: String,
    engine: Engine,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn server(tune: impl FnOnce(&mut EngineConfig)) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = EngineConfig::for_data_dir(dir.path());
    // Runs would fail fast here; these tests are about what reaches the bus.
    config.claude_path = Some("/nonexistent/claude".into());
    tune(&mut config);
    let store = Store::open_in_dir(dir.path()).expect("store");
    let engine = Engine::new(config, store);
    engine.start().await.expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = ServerState::new(engine.clone(), "t".repeat(64), addr.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(personas_server::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Server {
        url: format!("http://{addr}"),
        engine,
        _dir: dir,
        stop: Some(stop),
    }
}

fn webhook(s: &Server) -> (String, String) {
    let store = s.engine.store();
    let p = store
        .personas()
        .create(&PersonaSpec::new(
            "Deploy notifier",
            "Tell people about deploys.",
        ))
        .expect("persona");
    let t = store
        .triggers()
        .create(
            &NewTrigger {
                persona_id: p.id,
                config: TriggerConfig::Webhook,
                enabled: true,
            },
            chrono::Utc::now(),
        )
        .expect("trigger");
    let secret = t.secret.expect("secret").expose().to_string();
    (t.id.to_string(), secret)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_is_accepted_as_an_event_for_its_persona() {
    let s = server(|_| {}).await;
    let (id, secret) = webhook(&s);
    let mut events = s.engine.subscribe();
    let body = br#"{"ref":"refs/heads/main","version":"1.2"}"#;
    let (status, answer) = post(
        &format!("{}/webhooks/{id}", s.url),
        body,
        &[
            (SIGNATURE_HEADER, sign(&secret, body)),
            ("content-type", "application/json".into()),
            // A tunnel's public host name: webhooks are not bound to our Host.
            ("host", "hooks.example.com".into()),
        ],
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
    assert_eq!(event.source_kind, "webhook");
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

    // A sender's retry with the same delivery id is the same event.
    let retry = |n: &str| {
        let (url, sig) = (format!("{}/webhooks/{id}", s.url), sign(&secret, b"{}"));
        let n = n.to_string();
        async move {
            post(
                &url,
                b"{}",
                &[(SIGNATURE_HEADER, sig), (DELIVERY_HEADER, n)],
            )
            .await
        }
    };
    let (a, first) = retry("delivery-1").await;
    let (b, second) = retry("delivery-1").await;
    assert_eq!((a, b), (202, 202));
    assert_eq!(first["event_id"], second["event_id"]);

    // A body that is not JSON arrives raw.
    let text = b"deploy finished";
    let (status, answer) = post(
        &format!("{}/webhooks/{id}", s.url),
        text,
        &[
            (SIGNATURE_HEADER, sign(&secret, text)),
            ("content-type", "text/plain".into()),
        ],
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
    let url = format!("{}/webhooks/{id}", s.url);
    let body = br#"{"a":1}"#;

    let (status, answer) = post(
        &url,
        body,
        &[(SIGNATURE_HEADER, sign("wrong secret", body))],
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["code"], "bad_signature");
    let (status, _) = post(&url, body, &[]).await;
    assert_eq!(status, 401, "missing signature");
    let (status, _) = post(
        &url,
        b"{\"a\":2}",
        &[(SIGNATURE_HEADER, sign(&secret, body))],
    )
    .await;
    assert_eq!(status, 401, "signature of another body");

    let big = vec![b'x'; 4096];
    let (status, answer) = post(&url, &big, &[(SIGNATURE_HEADER, sign(&secret, &big))]).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("1024"))
    );

    let unknown = format!("{}/webhooks/{}", s.url, personas_core::TriggerId::new());
    let (status, _) = post(&unknown, body, &[(SIGNATURE_HEADER, sign(&secret, body))]).await;
    assert_eq!(status, 404);

    assert_eq!(event_count(&s), 0, "nothing was published");

    // Webhooks skipping the Host check did not loosen the API: it still refuses other hosts
    // and wants its token.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/wake", s.url))
        .header("host", "evil.example")
        .bearer_auth("t".repeat(64))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 403);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/wake", s.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    s.engine.shutdown().await;
}
