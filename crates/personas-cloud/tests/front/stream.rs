//! The client stream: replay from Postgres after `after`, then live entries in journal order
//! (out-of-order live entries reordered, a gap filled from Postgres), tenant and execution
//! filters, nothing twice.

use crate::harness::*;
use futures::{Stream, StreamExt};
use personas_cloud::orchestrator::db;
use personas_cloud::orchestrator::journal::{self, JournalEntry};
use personas_cloud_api::CloudError;
use personas_cloud_api::model::CloudEvent;
use personas_cloud_api::model::*;
use personas_cloud_api::stream::{ClientEvent, ClientFrame};
use std::time::{Duration, Instant};

async fn next_frame(
    s: &mut (impl Stream<Item = Result<ClientFrame, CloudError>> + Unpin),
) -> ClientFrame {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("a frame within 10 s")
        .expect("the stream is open")
        .expect("a decodable frame")
}

/// The stored journal entry `seq` of `tenant`, as a broadcast consumer would hand it over.
async fn entry(front: &Front, tenant: &str, seq: i64) -> JournalEntry {
    let conn = db::conn(front.orch.db()).await.expect("conn");
    let mut rows = journal::read_after(&conn, tenant, seq - 1, 1)
        .await
        .expect("journal");
    let e = rows.pop().expect("the entry is stored");
    assert_eq!(e.seq, seq);
    e
}

fn feed(front: &Front, e: JournalEntry) {
    front
        .orch
        .live_sender()
        .send(e)
        .expect("a stream is subscribed");
}

async fn publish(front: &Front, token: &str, n: usize) {
    for i in 0..n {
        let ev = PublishEvent {
            event_type: "note.added".into(),
            payload: Some(serde_json::json!({"i": i})),
            source: None,
            id: None,
        };
        front
            .client(token)
            .publish_event(&ev)
            .await
            .expect("publish");
    }
}

fn seqs(frames: &[ClientFrame]) -> Vec<i64> {
    frames.iter().map(|f| f.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_n_gets_exactly_the_later_frames_in_order_then_live() {
    let front = Front::start().await;
    let (t, other) = (front.token("tenant-s"), front.token("tenant-other"));
    front
        .client(&t)
        .push_persona(&PushPersona {
            text: persona_file("Streamer"),
            id: None,
            credentials: vec![],
            triggers: vec![],
        })
        .await
        .expect("push");
    let mut runs = Vec::new();
    for _ in 0..3 {
        let req = Execute {
            persona: "Streamer".into(),
            input: None,
            idempotency_key: None,
        };
        runs.push(front.client(&t).execute(&req).await.expect("execute"));
    }
    publish(&front, &t, 2).await;
    publish(&front, &other, 3).await;

    // From the start: the tenant's five entries, 1..=5, none of the other tenant's.
    let mut all = Box::pin(front.client(&t).stream(0, None).await.expect("stream"));
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(next_frame(&mut all).await);
    }
    assert_eq!(seqs(&got), [1, 2, 3, 4, 5]);
    assert!(
        matches!(&got[0].event, ClientEvent::Execution { execution } if execution.execution.id == runs[0].execution.id)
    );
    assert!(matches!(&got[4].event, ClientEvent::Event { .. }));
    drop(all);

    // Resume after 3: exactly 4 and 5, then live frames continue the sequence.
    let mut resumed = Box::pin(front.client(&t).stream(3, None).await.expect("stream"));
    let replayed = vec![
        next_frame(&mut resumed).await,
        next_frame(&mut resumed).await,
    ];
    assert_eq!(seqs(&replayed), [4, 5]);
    assert_eq!(replayed, got[3..5], "the same frames as the first time");

    // Live: the other tenant's entry is not delivered; 7 arriving before 6 waits for it.
    publish(&front, &t, 2).await;
    feed(&front, entry(&front, "tenant-other", 1).await);
    feed(&front, entry(&front, "tenant-s", 7).await);
    feed(&front, entry(&front, "tenant-s", 6).await);
    // A duplicate of an entry already sent changes nothing.
    feed(&front, entry(&front, "tenant-s", 5).await);
    let live = vec![
        next_frame(&mut resumed).await,
        next_frame(&mut resumed).await,
    ];
    assert_eq!(seqs(&live), [6, 7]);

    // A gap that is never filled live (9 arrives, 8 never does) is read from Postgres.
    publish(&front, &t, 2).await;
    let fed_at = Instant::now();
    feed(&front, entry(&front, "tenant-s", 9).await);
    let filled = vec![
        next_frame(&mut resumed).await,
        next_frame(&mut resumed).await,
    ];
    let waited = fed_at.elapsed();
    assert_eq!(seqs(&filled), [8, 9]);
    assert!(
        waited >= Duration::from_millis(150),
        "the gap was given time to fill live ({waited:?})"
    );
    assert!(
        waited < Duration::from_secs(3),
        "the gap was filled promptly ({waited:?})"
    );
    eprintln!("gap of one entry filled from Postgres after {waited:?}");

    // Another resume from the last seq seen gets nothing old: its first frame is the next one.
    let last = filled[1].seq;
    let mut again = Box::pin(front.client(&t).stream(last, None).await.expect("stream"));
    publish(&front, &t, 1).await;
    feed(&front, entry(&front, "tenant-s", last + 1).await);
    assert_eq!(next_frame(&mut again).await.seq, last + 1);
    assert_eq!(next_frame(&mut resumed).await.seq, last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_filter_sends_only_that_run_and_a_bad_after_is_refused() {
    let front = Front::start().await;
    let t = front.token("tenant-f");
    front
        .client(&t)
        .push_persona(&PushPersona {
            text: persona_file("Filtered"),
            id: None,
            credentials: vec![],
            triggers: vec![],
        })
        .await
        .expect("push");
    let req = Execute {
        persona: "Filtered".into(),
        input: None,
        idempotency_key: None,
    };
    let first = front.client(&t).execute(&req).await.expect("execute");
    let second = front.client(&t).execute(&req).await.expect("execute");
    publish(&front, &t, 1).await;
    let mut only = Box::pin(
        front
            .client(&t)
            .stream(0, Some(second.execution.id.as_str()))
            .await
            .expect("stream"),
    );
    let f = next_frame(&mut only).await;
    assert_eq!(
        f.seq, 2,
        "entry 1 (the first run) and 3 (an event) are skipped"
    );
    // Cancelling the first run, then the second: only the second's frame arrives.
    for run in [&first, &second] {
        front
            .client(&t)
            .cancel_execution(&ExecutionRef {
                id: run.execution.id.clone(),
            })
            .await
            .expect("cancel");
    }
    feed(&front, entry(&front, "tenant-f", 4).await);
    feed(&front, entry(&front, "tenant-f", 5).await);
    let f = next_frame(&mut only).await;
    assert_eq!(f.seq, 5);
    match &f.event {
        ClientEvent::Execution { execution } => {
            assert_eq!(execution.execution.id, second.execution.id);
            assert_eq!(
                execution.execution.status,
                personas_core::ExecutionStatus::Cancelled
            );
        }
        other => panic!("expected the run's lifecycle, got {other:?}"),
    }

    let resp = reqwest::Client::new()
        .get(format!("{}/api/stream?after=-4", front.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400, "after must not be negative");
    let resp = reqwest::Client::new()
        .get(format!("{}/api/stream?after=0", front.base))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401, "no token, no stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_for_the_live_stream_is_closed_with_its_resume_point() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let front = Front::start().await;
    let t = front.token("tenant-slow");
    // A client that connects and then does not read.
    let url = format!(
        "{}/api/stream?after=0",
        front.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {t}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    // The session is live once a frame arrives: feed entry 1 and read it.
    let big = "x".repeat(4096);
    let fabricated = |seq: i64| JournalEntry {
        tenant_id: "tenant-slow".into(),
        seq,
        event: ClientEvent::Event {
            event: CloudEvent {
                id: format!("e{seq}"),
                event_type: "flood".into(),
                payload: Some(serde_json::json!({"pad": big})),
                source: "test".into(),
                created_at: chrono::Utc::now(),
                executions: vec![],
            },
        },
    };
    // The upgrade answer comes before the session subscribes; wait for the subscription.
    let deadline = Instant::now() + Duration::from_secs(10);
    while front.orch.live_sender().receiver_count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the session subscribes to the live journal"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    feed(&front, fabricated(1));
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("first frame")
        .expect("open")
        .expect("frame");
    assert!(matches!(first, Message::Text(_)));
    // Far more than the live buffer while the client reads nothing.
    // (The session may give up before the flood ends: then nobody is subscribed.)
    for seq in 2..=20_000 {
        if front.orch.live_sender().send(fabricated(seq)).is_err() {
            break;
        }
    }
    // Now it reads: contiguous frames from 2, then a close naming where to resume.
    let mut last = 1;
    let reason = loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the stream goes on or closes")
            .expect("open")
            .expect("frame");
        match msg {
            Message::Text(text) => {
                let frame: ClientFrame = serde_json::from_str(&text).expect("frame");
                assert_eq!(frame.seq, last + 1, "in order, none skipped or twice");
                last = frame.seq;
            }
            Message::Close(frame) => break frame.expect("a close frame with a reason").reason,
            _ => {}
        }
    };
    assert!(
        last < 20_000,
        "the client fell behind and was cut off (got {last})"
    );
    assert!(
        reason.contains("too slowly") && reason.ends_with(&format!("after={last}")),
        "the reason names the resume point: {reason:?}"
    );
}
