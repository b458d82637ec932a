//! The whole path with the real broker: an orchestrator started as `personas-cloud
//! orchestrator` starts it (migrations, topics, outbox relay, broadcast consumers, the router),
//! a client stream, and operations whose journal entries travel Postgres → outbox → Tansu →
//! the broadcast consumer → the stream.

use crate::harness::*;
use futures::StreamExt;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use personas_cloud::orchestrator;
use personas_cloud_api::model::*;
use personas_cloud_api::stream::{ClientEvent, ClientFrame};
use personas_core::ExecutionStatus;
use personas_testkit::cloud::{Broker, Postgres};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_frames_reach_the_stream_through_the_broker() {
    let keys = tokio::task::spawn_blocking(Keys::generate)
        .await
        .expect("keys");
    let jwks = JwksServer::start(JwkSet {
        keys: vec![Keys::jwk(&keys.ec, Algorithm::ES256, EC_KID)],
    })
    .await;
    let (pg, broker) = tokio::task::spawn_blocking(|| {
        let pg = Postgres::start_temp();
        pg.create_database("cloud");
        (pg, Broker::start_temp())
    })
    .await
    .expect("services");
    let mut settings = settings(&pg.url("cloud"), &jwks.url, &["ES256"]);
    settings.kafka_brokers = broker.bootstrap();
    let running = orchestrator::start(settings).await.expect("orchestrator");
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(
        ready.status().as_u16(),
        200,
        "Postgres and the broker answer"
    );

    let token = sign(
        Algorithm::ES256,
        Some(EC_KID),
        &keys.ec,
        &claims("tenant-live"),
    );
    let client = personas_cloud_api::CloudClient::new(&base, &token).expect("client");
    let mut stream = Box::pin(client.stream(0, None).await.expect("stream"));
    let mut next = async || -> ClientFrame {
        tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("a live frame within 60 s")
            .expect("open")
            .expect("frame")
    };
    client
        .push_persona(&PushPersona {
            text: persona_file("Live"),
            id: None,
            credentials: vec![],
            triggers: vec![],
        })
        .await
        .expect("push");
    let sent = Instant::now();
    let run = client
        .execute(&Execute {
            persona: "Live".into(),
            input: None,
            idempotency_key: None,
        })
        .await
        .expect("execute");
    let queued = next().await;
    eprintln!(
        "execute → live frame through the broker: {:?}",
        sent.elapsed()
    );
    assert_eq!(queued.seq, 1);
    assert!(matches!(&queued.event, ClientEvent::Execution { execution }
        if execution.execution.id == run.execution.id && execution.execution.status == ExecutionStatus::Queued));
    // No worker is connected: the run waits; cancelling it ends it at once, live.
    client
        .cancel_execution(&ExecutionRef {
            id: run.execution.id.clone(),
        })
        .await
        .expect("cancel");
    let cancelled = next().await;
    assert_eq!(cancelled.seq, 2);
    assert!(
        matches!(&cancelled.event, ClientEvent::Execution { execution }
        if execution.execution.status == ExecutionStatus::Cancelled)
    );
    let published = client
        .publish_event(&PublishEvent {
            event_type: "live.check".into(),
            payload: None,
            source: None,
            id: None,
        })
        .await
        .expect("publish");
    let event = next().await;
    assert_eq!(event.seq, 3);
    assert!(matches!(&event.event, ClientEvent::Event { event } if event.id == published.id));
    // Latency, operation committed → frame at the client, over the broker (loopback).
    let mut lat = Vec::new();
    for i in 0..100 {
        let sent = Instant::now();
        client
            .publish_event(&PublishEvent {
                event_type: "live.bench".into(),
                payload: Some(serde_json::json!({"i": i})),
                source: None,
                id: None,
            })
            .await
            .expect("publish");
        let frame = next().await;
        assert_eq!(frame.seq, 4 + i, "in order, none lost or twice");
        lat.push(sent.elapsed());
    }
    lat.sort();
    eprintln!(
        "publish_event → stream frame through Tansu, 100 sequential: p50 {:?}, p99 {:?}, max {:?}",
        lat[49], lat[98], lat[99]
    );
    let cluster = client.get_cluster(&Empty {}).await.expect("cluster");
    assert!(
        cluster
            .orchestrators
            .iter()
            .any(|o| o.id == "orch-front-test"),
        "{cluster:?}"
    );
    drop(stream);
    running.stop().await;
    drop(broker);
}
