//! The worker WebSocket's authentication: a hello under the wrong token, a replayed counter or a
//! tampered frame closes the connection before anything acts; a good hello is acknowledged.

use super::support::{Db, SECRET, offline_state};
use futures::{SinkExt, StreamExt};
use personas_cloud::orchestrator::{self, Orchestrator};
use personas_cloud_api::wire::{
    Challenge, Direction, Envelope, OrchestratorFrame, PROTOCOL_VERSION, WorkerFrame, worker_token,
};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(state: Orchestrator) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, orchestrator::router(state))
            .await
            .unwrap();
    });
    format!("ws://{addr}/worker")
}

async fn connect(url: &str) -> (Ws, Challenge) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no challenge");
    };
    let c: Challenge = serde_json::from_str(t.as_str()).expect("a challenge");
    assert_eq!(c.protocol, PROTOCOL_VERSION);
    (ws, c)
}

fn hello(id: &str) -> WorkerFrame {
    WorkerFrame::Hello {
        worker_id: id.into(),
        version: "test".into(),
        protocol: PROTOCOL_VERSION,
        capacity: 1,
        held: Vec::new(),
    }
}

async fn send(ws: &mut Ws, env: &Envelope) {
    let text = serde_json::to_string(env).unwrap();
    ws.send(Message::Text(text.into())).await.unwrap();
}

/// True when the orchestrator closes the connection without sending a frame.
async fn closed_without_answer(ws: &mut Ws) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(Message::Text(t)))) => {
                eprintln!("unexpected frame: {t}");
                return false;
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_replayed_worker_frame_is_refused_and_the_connection_closed() {
    let d = Db::start().await;
    let url = serve(offline_state(&d, "o1")).await;
    let good = worker_token(SECRET.as_bytes(), "w1");

    // The wrong token (another deployment's secret).
    let (mut ws, c) = connect(&url).await;
    let forged = worker_token(b"not the deployment secret", "w1");
    send(
        &mut ws,
        &Envelope::seal(
            &forged,
            &c.nonce,
            Direction::ToOrchestrator,
            1,
            &hello("w1"),
        ),
    )
    .await;
    assert!(
        closed_without_answer(&mut ws).await,
        "a forged hello is refused"
    );

    // Another connection's nonce (a replayed hello).
    let (mut ws, _) = connect(&url).await;
    send(
        &mut ws,
        &Envelope::seal(&good, &c.nonce, Direction::ToOrchestrator, 1, &hello("w1")),
    )
    .await;
    assert!(
        closed_without_answer(&mut ws).await,
        "a replayed hello is refused"
    );

    // A good hello is acknowledged; then a replayed counter closes the connection.
    let (mut ws, c) = connect(&url).await;
    send(
        &mut ws,
        &Envelope::seal(&good, &c.nonce, Direction::ToOrchestrator, 1, &hello("w1")),
    )
    .await;
    let ack = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => break t,
            Some(Ok(_)) => continue,
            other => panic!("no ack: {other:?}"),
        }
    };
    let env: Envelope = serde_json::from_str(ack.as_str()).unwrap();
    let frame: OrchestratorFrame = env
        .open(&good, &c.nonce, Direction::ToWorker, 1)
        .expect("sealed for w1");
    assert!(matches!(frame, OrchestratorFrame::Ack { .. }), "{frame:?}");
    assert_eq!(
        d.sql("SELECT orchestrator_id FROM workers WHERE id = 'w1'"),
        "o1"
    );
    let beat = WorkerFrame::Heartbeat {
        at: chrono::Utc::now(),
    };
    let env2 = Envelope::seal(&good, &c.nonce, Direction::ToOrchestrator, 2, &beat);
    send(&mut ws, &env2).await;
    send(&mut ws, &env2).await; // replayed
    let mut closed = false;
    while let Ok(m) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        match m {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                closed = true;
                break;
            }
            Some(Ok(_)) => continue, // heartbeats before the refusal
        }
    }
    assert!(closed, "a replayed counter closes the connection");

    // A tampered body under a good MAC's envelope.
    let (mut ws, c) = connect(&url).await;
    let mut env = Envelope::seal(&good, &c.nonce, Direction::ToOrchestrator, 1, &hello("w1"));
    env.body = env.body.replace("\"capacity\":1", "\"capacity\":9");
    send(&mut ws, &env).await;
    assert!(
        closed_without_answer(&mut ws).await,
        "a tampered hello is refused"
    );
}
