//! The worker pool: `GET /worker`, one WebSocket per worker (protocol:
//! `personas_cloud_api::wire`).
//!
//! A connection: the orchestrator sends a [`Challenge`]; the worker's first envelope must be a
//! `hello` whose MAC verifies under the token derived for the worker id it names; then every
//! envelope both ways is sealed and counted. A bad MAC, a counter out of order, an unknown
//! protocol version or a second hello closes the connection (with `refused` when the peer is
//! authenticated). The hello's held runs are resumed (`ack{resume}`): current attempts are
//! adopted, stale ones told to stop; live attempts assigned to this worker that it does not
//! hold are lost at once (re-queued). Then: heartbeats both ways, `assign` from the dispatcher,
//! `output` → stored in one transaction → `output_ack`, `complete` → accepted only for the
//! current attempt → `complete_ack`, and `cancel` from `lifecycle` messages.
//!
//! [`upkeep`] keeps this orchestrator's row and its workers' rows fresh (one statement a second
//! for all of them), which is what peers' reapers read.

pub mod registry;

pub use registry::{Outgoing, Registry, Slot, WorkerInfo};

use super::Orchestrator;
use super::db;
use super::queue::attempt::{self, Stored};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use chrono::Utc;
use personas_cloud_api::CloudError;
use personas_cloud_api::wire::{
    Challenge, Direction, Envelope, HEARTBEAT_MS, HeldRun, OrchestratorFrame, PROTOCOL_VERSION,
    WorkerFrame, worker_token,
};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// `GET /worker`.
pub async fn upgrade(State(state): State<Orchestrator>, ws: WebSocketUpgrade) -> Response {
    // Small buffers: an idle worker costs its socket, not the 128 KiB read buffer tungstenite
    // allocates by default (a thousand idle workers would hold 128 MB for nothing); frames
    // larger than the buffer still arrive whole, just in more reads.
    ws.max_message_size(16 << 20)
        .read_buffer_size(8 << 10)
        .write_buffer_size(8 << 10)
        .on_upgrade(move |socket| async move {
            let mut conn = Connection::new(state, socket);
            if let Err(why) = conn.serve().await {
                tracing::info!("worker connection closed: {why}");
            }
            conn.cleanup().await;
        })
}

/// One worker connection.
struct Connection {
    state: Orchestrator,
    socket: WebSocket,
    nonce: String,
    token: [u8; 32],
    worker_id: Option<String>,
    registered: Option<u64>,
    sent: u64,
    received: u64,
    last_seen: Instant,
}

impl Connection {
    fn new(state: Orchestrator, socket: WebSocket) -> Self {
        let mut nonce = [0u8; 32];
        // The OS always has randomness; a failure here would be a broken host.
        let _ = getrandom::fill(&mut nonce);
        Self {
            state,
            socket,
            nonce: hex::encode(nonce),
            token: [0; 32],
            worker_id: None,
            registered: None,
            sent: 0,
            received: 0,
            last_seen: Instant::now(),
        }
    }

    async fn serve(&mut self) -> Result<(), String> {
        let challenge = Challenge {
            nonce: self.nonce.clone(),
            orchestrator_id: self.state.id().to_string(),
            protocol: PROTOCOL_VERSION,
        };
        let text = serde_json::to_string(&challenge).map_err(|e| e.to_string())?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("cannot send the challenge: {e}"))?;
        let hello = tokio::time::timeout(Duration::from_secs(10), self.next_envelope())
            .await
            .map_err(|_| "no hello within 10 s".to_string())??;
        let (capacity, version, held) = self.authenticate(&hello).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.hello(capacity, &version, &held, tx).await?;
        self.run(rx).await
    }

    /// The next envelope (not yet opened); pings and pongs are skipped.
    async fn next_envelope(&mut self) -> Result<Envelope, String> {
        loop {
            match self.socket.recv().await {
                None => return Err("the worker hung up".into()),
                Some(Err(e)) => return Err(format!("read error: {e}")),
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .map_err(|e| format!("not an envelope: {e}"));
                }
                Some(Ok(Message::Binary(_))) => return Err("binary frames are not spoken".into()),
                Some(Ok(Message::Close(_))) => return Err("the worker closed".into()),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Checks the hello: the MAC under the named worker's token, counter 1, the protocol.
    async fn authenticate(
        &mut self,
        env: &Envelope,
    ) -> Result<(u32, String, Vec<HeldRun>), String> {
        let Ok(WorkerFrame::Hello { worker_id, .. }) = env.peek::<WorkerFrame>() else {
            return Err("the first frame is not a hello".into());
        };
        if worker_id.is_empty() || worker_id.len() > 200 {
            return Err("a hello with an unusable worker id".into());
        }
        let secret = self.state.settings().deployment_secret.expose().as_bytes();
        self.token = worker_token(secret, &worker_id);
        let frame: WorkerFrame = env
            .open(&self.token, &self.nonce, Direction::ToOrchestrator, 1)
            .map_err(|e| format!("hello from {worker_id:?} refused: {e}"))?;
        self.received = 1;
        self.worker_id = Some(worker_id.clone());
        let WorkerFrame::Hello {
            version,
            protocol,
            capacity,
            held,
            ..
        } = frame
        else {
            return Err("the first frame is not a hello".into());
        };
        if protocol != PROTOCOL_VERSION {
            let reason = format!(
                "protocol {protocol} is not spoken here (this orchestrator speaks {PROTOCOL_VERSION})"
            );
            let _ = self
                .send(OrchestratorFrame::Refused {
                    reason: reason.clone(),
                })
                .await;
            return Err(reason);
        }
        if capacity == 0 {
            let reason = "capacity 0: a worker must hold at least one run".to_string();
            let _ = self
                .send(OrchestratorFrame::Refused {
                    reason: reason.clone(),
                })
                .await;
            return Err(reason);
        }
        Ok((capacity, version, held))
    }

    fn worker(&self) -> &str {
        self.worker_id.as_deref().unwrap_or("")
    }

    /// Records the worker, resumes its held runs, re-queues what it lost, answers `ack`.
    async fn hello(
        &mut self,
        capacity: u32,
        version: &str,
        held: &[HeldRun],
        tx: mpsc::UnboundedSender<Outgoing>,
    ) -> Result<(), String> {
        let worker_id = self.worker().to_string();
        let resume = adopt(&self.state, &worker_id, capacity, version, held)
            .await
            .map_err(|e| format!("cannot record worker {worker_id}: {e}"))?;
        let running = resume
            .iter()
            .filter(|r| r.current)
            .map(|r| (r.execution_id.clone(), r.attempt));
        let conn = self
            .state
            .workers()
            .register(&worker_id, version, capacity, running, tx);
        self.registered = Some(conn);
        let cancels = cancels_for(&self.state, &resume).await;
        self.send(OrchestratorFrame::Ack {
            orchestrator_id: self.state.id().to_string(),
            heartbeat_ms: HEARTBEAT_MS,
            resume,
        })
        .await?;
        for frame in cancels {
            self.send(frame).await?;
        }
        tracing::info!(
            "worker {worker_id} connected (capacity {capacity}, {} held)",
            held.len()
        );
        Ok(())
    }

    async fn send(&mut self, frame: OrchestratorFrame) -> Result<(), String> {
        self.sent += 1;
        let env = Envelope::seal(
            &self.token,
            &self.nonce,
            Direction::ToWorker,
            self.sent,
            &frame,
        );
        let text = serde_json::to_string(&env).map_err(|e| e.to_string())?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("write error: {e}"))
    }

    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Outgoing>) -> Result<(), String> {
        let timeout = Duration::from_millis(self.state.settings().worker_timeout_ms);
        let mut beat = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS));
        let stop = self.state.stop_token().clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    let _ = self.socket.send(Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: "the orchestrator is stopping".into(),
                    }))).await;
                    return Err("the orchestrator is stopping".into());
                }
                out = rx.recv() => match out {
                    Some(Outgoing::Frame(f)) => self.send(*f).await?,
                    Some(Outgoing::Close(why)) => return Err(why),
                    None => return Err("the registry dropped the connection".into()),
                },
                _ = beat.tick() => {
                    if self.last_seen.elapsed() > timeout {
                        return Err(format!("worker {} silent for {} ms", self.worker(), timeout.as_millis()));
                    }
                    self.send(OrchestratorFrame::Heartbeat { at: Utc::now() }).await?;
                }
                env = self.next_envelope() => {
                    let env = env?;
                    let frame: WorkerFrame = env
                        .open(&self.token, &self.nonce, Direction::ToOrchestrator, self.received + 1)
                        .map_err(|e| format!("frame from {} refused: {e}", self.worker()))?;
                    self.received += 1;
                    self.last_seen = Instant::now();
                    self.on_frame(frame).await?;
                }
            }
        }
    }

    async fn on_frame(&mut self, frame: WorkerFrame) -> Result<(), String> {
        let r = match frame {
            WorkerFrame::Heartbeat { .. } => return Ok(()),
            WorkerFrame::Hello { .. } => return Err("a second hello".into()),
            WorkerFrame::Started {
                execution_id,
                attempt: n,
                ..
            } => self.on_started(execution_id, n).await,
            WorkerFrame::Output {
                execution_id,
                attempt: n,
                lines,
            } => self.on_output(execution_id, n, lines).await,
            WorkerFrame::Complete {
                execution_id,
                attempt: n,
                execution,
                ..
            } => self.on_complete(execution_id, n, *execution).await,
        };
        // Postgres failed: close, so the worker resends everything unacknowledged after it
        // reconnects (here or to a peer).
        r.map_err(|e| format!("cannot store worker {}'s frame: {e}", self.worker()))
    }

    async fn on_started(
        &mut self,
        execution_id: personas_core::ExecutionId,
        n: u32,
    ) -> Result<(), CloudError> {
        let mut conn = db::conn(self.state.db()).await?;
        let tx = db::begin(&mut conn).await?;
        let live = attempt::started(&tx, &execution_id, n).await?;
        tx.commit().await.map_err(db::pg)?;
        self.state.kick_outbox();
        if !live {
            self.send_or_fail(OrchestratorFrame::Cancel {
                execution_id,
                attempt: n,
            })
            .await?;
        }
        Ok(())
    }

    async fn on_output(
        &mut self,
        execution_id: personas_core::ExecutionId,
        n: u32,
        lines: Vec<personas_cloud_api::wire::WireLine>,
    ) -> Result<(), CloudError> {
        let mut conn = db::conn(self.state.db()).await?;
        let tx = db::begin(&mut conn).await?;
        let stored = attempt::store_output(&tx, &execution_id, n, &lines).await?;
        tx.commit().await.map_err(db::pg)?;
        self.state.kick_outbox();
        let up_to_seq = lines.iter().map(|l| l.seq).max().unwrap_or(0);
        self.send_or_fail(OrchestratorFrame::OutputAck {
            execution_id: execution_id.clone(),
            attempt: n,
            up_to_seq,
        })
        .await?;
        if stored == Stored::Stale {
            self.send_or_fail(OrchestratorFrame::Cancel {
                execution_id,
                attempt: n,
            })
            .await?;
        }
        Ok(())
    }

    async fn on_complete(
        &mut self,
        execution_id: personas_core::ExecutionId,
        n: u32,
        record: personas_core::Execution,
    ) -> Result<(), CloudError> {
        let mut conn = db::conn(self.state.db()).await?;
        let tx = db::begin(&mut conn).await?;
        let accepted = attempt::complete(&tx, &execution_id, n, record).await?;
        tx.commit().await.map_err(db::pg)?;
        self.state.kick_outbox();
        self.state.workers().finished(self.worker(), &execution_id);
        self.send_or_fail(OrchestratorFrame::CompleteAck {
            execution_id,
            attempt: n,
            accepted,
        })
        .await?;
        Ok(())
    }

    async fn send_or_fail(&mut self, frame: OrchestratorFrame) -> Result<(), CloudError> {
        self.send(frame).await.map_err(CloudError::unavailable)
    }

    /// After the connection ends: unregister, and date the worker's heartbeat to when it was
    /// last heard, so reapers count its silence from then.
    async fn cleanup(&mut self) {
        let (Some(worker_id), Some(conn)) = (self.worker_id.clone(), self.registered) else {
            return;
        };
        self.state.workers().unregister(&worker_id, conn);
        if self.state.workers().ids().contains(&worker_id) {
            return; // a newer connection of the same worker holds it
        }
        let silent_ms = self.last_seen.elapsed().as_millis() as f64;
        if let Ok(c) = db::conn(self.state.db()).await {
            let _ = db::execute(
                &c,
                "UPDATE workers SET heartbeat_at = now() - make_interval(secs => $3 / 1000.0)
                     WHERE id = $1 AND orchestrator_id = $2",
                &[&worker_id, &self.state.id(), &silent_ms],
            )
            .await;
        }
    }
}

async fn adopt(
    state: &Orchestrator,
    worker_id: &str,
    capacity: u32,
    version: &str,
    held: &[HeldRun],
) -> Result<Vec<personas_cloud_api::wire::Resume>, CloudError> {
    let me = state.id();
    let mut conn = db::conn(state.db()).await?;
    db::execute(
        &conn,
        "INSERT INTO workers (id, orchestrator_id, version, capacity)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET orchestrator_id = $2, version = $3, capacity = $4,
             connected_at = now(), heartbeat_at = now()",
        &[&worker_id, &me, &version, &(capacity as i32)],
    )
    .await?;
    let mut resume = Vec::with_capacity(held.len());
    for h in held {
        resume.push(attempt::resume(&conn, worker_id, me, h).await?);
    }
    for (execution_id, n) in attempt::orphaned(&conn, worker_id, held).await? {
        let tx = db::begin(&mut conn).await?;
        let reason = format!("worker {worker_id} reconnected without the run");
        let outcome = attempt::lose(&tx, &execution_id, n, &reason).await?;
        tx.commit().await.map_err(db::pg)?;
        tracing::info!("{execution_id} attempt {n}: {reason} → {outcome:?}");
    }
    state.kick_outbox();
    Ok(resume)
}

/// `cancel` frames for adopted runs whose cancel was asked while the worker was away.
async fn cancels_for(
    state: &Orchestrator,
    resume: &[personas_cloud_api::wire::Resume],
) -> Vec<OrchestratorFrame> {
    let ids: Vec<&str> = resume
        .iter()
        .filter(|r| r.current)
        .map(|r| r.execution_id.as_str())
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let Ok(conn) = db::conn(state.db()).await else {
        return Vec::new();
    };
    let rows = db::query(
        &conn,
        "SELECT id FROM executions WHERE id = ANY($1) AND cancel_requested",
        &[&ids],
    )
    .await
    .unwrap_or_default();
    resume
        .iter()
        .filter(|r| {
            rows.iter()
                .any(|row| row.get::<_, &str>(0) == r.execution_id.as_str())
        })
        .map(|r| OrchestratorFrame::Cancel {
            execution_id: r.execution_id.clone(),
            attempt: r.attempt,
        })
        .collect()
}

/// Every second: this orchestrator's row (alive, counts) and its connected workers' rows
/// (heartbeat, what they run).
pub async fn upkeep(state: Orchestrator) {
    let mut tick = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS));
    let stop = state.stop_token().clone();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = upkeep_once(&state).await {
            tracing::warn!("upkeep: {e}");
        }
    }
}

async fn upkeep_once(state: &Orchestrator) -> Result<(), CloudError> {
    let conn = db::conn(state.db()).await?;
    let snapshot = state.workers().snapshot();
    let s = state.settings();
    db::execute(
        &conn,
        "INSERT INTO orchestrators (id, url, workers, clients) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), url = $2, workers = $3, clients = $4",
        &[
            &s.id,
            &s.advertise_url,
            &(snapshot.len() as i32),
            &(state.client_count() as i32),
        ],
    )
    .await?;
    if snapshot.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = snapshot.iter().map(|w| w.id.as_str()).collect();
    let running: Vec<serde_json::Value> = snapshot
        .iter()
        .map(|w| serde_json::json!(w.running))
        .collect();
    db::execute(
        &conn,
        "UPDATE workers w SET heartbeat_at = now(), running = r.running
         FROM UNNEST($1::TEXT[], $2::JSONB[]) AS r(id, running)
         WHERE w.id = r.id AND w.orchestrator_id = $3",
        &[&ids, &running, &s.id],
    )
    .await?;
    Ok(())
}
