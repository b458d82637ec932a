//! A worker speaking the protocol by hand, so a test controls every frame (the real worker is
//! `personas-cloud worker`; see `process.rs`). It heartbeats while it waits.

use super::support::SECRET;
use futures::{SinkExt, StreamExt};
use personas_cloud_api::wire::{
    Assignment, Challenge, Direction, Envelope, HeldRun, OrchestratorFrame, PROTOCOL_VERSION,
    Resume, WireLine, WorkerFrame, worker_token,
};
use personas_core::{Execution, ExecutionStatus, LineKind};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct FakeWorker {
    ws: Ws,
    token: [u8; 32],
    nonce: String,
    sent: u64,
    received: u64,
}

impl FakeWorker {
    /// Connects to `base` (`http://host:port`) as `id` and says hello; returns the resume list.
    pub async fn connect(
        base: &str,
        id: &str,
        capacity: u32,
        held: Vec<HeldRun>,
    ) -> (FakeWorker, Vec<Resume>) {
        let url = format!("{}/worker", base.replacen("http://", "ws://", 1));
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect");
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("no challenge");
        };
        let c: Challenge = serde_json::from_str(t.as_str()).unwrap();
        let mut w = FakeWorker {
            ws,
            token: worker_token(SECRET.as_bytes(), id),
            nonce: c.nonce,
            sent: 0,
            received: 0,
        };
        w.send(&WorkerFrame::Hello {
            worker_id: id.into(),
            version: "fake".into(),
            protocol: PROTOCOL_VERSION,
            capacity,
            held,
        })
        .await;
        match w.recv(Duration::from_secs(10)).await {
            Some(OrchestratorFrame::Ack { resume, .. }) => (w, resume),
            other => panic!("expected ack, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: &WorkerFrame) {
        self.sent += 1;
        let env = Envelope::seal(
            &self.token,
            &self.nonce,
            Direction::ToOrchestrator,
            self.sent,
            frame,
        );
        let text = serde_json::to_string(&env).unwrap();
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next frame other than a heartbeat within `within` (heartbeating meanwhile).
    pub async fn recv(&mut self, within: Duration) -> Option<OrchestratorFrame> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let wait = left.min(Duration::from_millis(400));
            match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) => {
                    self.send(&WorkerFrame::Heartbeat {
                        at: chrono::Utc::now(),
                    })
                    .await;
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    let env: Envelope = serde_json::from_str(t.as_str()).unwrap();
                    self.received += 1;
                    let f: OrchestratorFrame = env
                        .open(&self.token, &self.nonce, Direction::ToWorker, self.received)
                        .expect("a sealed frame");
                    if !matches!(f, OrchestratorFrame::Heartbeat { .. }) {
                        return Some(f);
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("the orchestrator closed: {other:?}"),
            }
        }
    }

    /// The next assignment within `within`, or `None`.
    pub async fn assignment(&mut self, within: Duration) -> Option<Assignment> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.recv(left).await? {
                OrchestratorFrame::Assign { assignment } => return Some(*assignment),
                other => eprintln!("fake worker: {other:?} while waiting for an assignment"),
            }
        }
    }

    /// Reports `a` started and one line, and waits for the line's acknowledgement; true when
    /// no other assignment arrived meanwhile.
    pub async fn finish_partly(&mut self, a: &Assignment) -> bool {
        self.send(&WorkerFrame::Started {
            execution_id: a.execution_id.clone(),
            attempt: a.attempt,
            at: chrono::Utc::now(),
        })
        .await;
        let line = WireLine {
            seq: a.first_seq,
            kind: LineKind::AssistantText,
            text: "partly".into(),
            at: chrono::Utc::now(),
        };
        self.send(&WorkerFrame::Output {
            execution_id: a.execution_id.clone(),
            attempt: a.attempt,
            lines: vec![line],
        })
        .await;
        loop {
            match self.recv(Duration::from_secs(10)).await {
                Some(OrchestratorFrame::OutputAck { .. }) => return true,
                Some(OrchestratorFrame::Assign { .. }) => return false,
                other => eprintln!("fake worker: {other:?}"),
            }
        }
    }

    /// Runs `a` as a no-op: started, `n` output lines, complete; returns whether it was accepted.
    pub async fn finish(&mut self, a: &Assignment, n: i64) -> bool {
        let id = a.execution_id.clone();
        self.send(&WorkerFrame::Started {
            execution_id: id.clone(),
            attempt: a.attempt,
            at: chrono::Utc::now(),
        })
        .await;
        let lines: Vec<WireLine> = (a.first_seq..a.first_seq + n)
            .map(|seq| WireLine {
                seq,
                kind: LineKind::AssistantText,
                text: format!("line {seq}"),
                at: chrono::Utc::now(),
            })
            .collect();
        if n > 0 {
            self.send(&WorkerFrame::Output {
                execution_id: id.clone(),
                attempt: a.attempt,
                lines,
            })
            .await;
            match self.recv(Duration::from_secs(10)).await {
                Some(OrchestratorFrame::OutputAck { up_to_seq, .. }) => {
                    assert_eq!(up_to_seq, a.first_seq + n - 1);
                }
                Some(OrchestratorFrame::Assign { .. }) => panic!("assigned beyond capacity"),
                other => panic!("expected output_ack, got {other:?}"),
            }
        }
        let record = record_of(a);
        self.send(&WorkerFrame::Complete {
            execution_id: id,
            attempt: a.attempt,
            last_seq: a.first_seq + n - 1,
            execution: Box::new(record),
        })
        .await;
        loop {
            match self.recv(Duration::from_secs(10)).await {
                Some(OrchestratorFrame::CompleteAck { accepted, .. }) => return accepted,
                other => eprintln!("fake worker: {other:?} while waiting for complete_ack"),
            }
        }
    }
}

/// The runner's record of a finished no-op run.
pub fn record_of(a: &Assignment) -> Execution {
    let now = chrono::Utc::now();
    serde_json::from_value(serde_json::json!({
        "id": a.execution_id, "persona_id": a.persona_id, "persona_name": "x",
        "status": ExecutionStatus::Completed, "priority": 0, "trigger": a.trigger,
        "trigger_ref": null, "input": null, "prompt_version": null, "session_id": null,
        "model": null, "num_turns": 1,
        "tokens": {"input": 0, "output": 0, "cache_read": 0, "cache_creation": 0},
        "cost_usd": 0.01, "result_text": "ok", "outcome_accomplished": null,
        "outcome_summary": null, "error_class": null, "error_message": null,
        "permission_denials": [], "persona_denials": [], "parse_warnings": 0,
        "output_lines": 0, "output_truncated": false, "cancel_requested": false,
        "queued_at": now, "started_at": now, "finished_at": now, "heartbeat_at": null
    }))
    .expect("an execution record")
}
