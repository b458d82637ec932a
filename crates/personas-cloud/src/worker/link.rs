//! The worker's connection to the orchestrators (protocol: `personas_cloud_api::wire`).
//!
//! [`Link`] owns what the worker holds across connections: each run's cancel token, its output
//! lines not yet acknowledged, and its completion until `complete_ack`. It connects to one of
//! the configured orchestrators (rotating to the next on failure, with backoff), answers the
//! challenge with a sealed `hello` announcing the held runs, and applies the `ack`'s resume
//! points: lines the deployment has are dropped, the rest resent; a run whose attempt is no
//! longer current is stopped and forgotten. While connected: heartbeats both ways (an
//! orchestrator silent for [`SILENT_MS`] is left for the next one), `assign` starts a run
//! through [`Runner`], lines go out as `output` and are kept until `output_ack`, the end goes
//! out as `complete` until `complete_ack`, and `cancel` fires the run's token (the runner
//! stops the CLI and its tools).

use super::run::Runner;
use crate::config::WorkerSettings;
use futures::{SinkExt, StreamExt};
use personas_cloud_api::wire::{
    Assignment, Challenge, Direction, Envelope, HEARTBEAT_MS, HeldRun, OrchestratorFrame,
    PROTOCOL_VERSION, Resume, WireLine, WorkerFrame,
};
use personas_core::{Execution, ExecutionId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// An orchestrator silent this long is gone: the worker moves to the next one.
pub const SILENT_MS: u64 = 3_000;
/// Most lines per `output` frame.
const BATCH: usize = 256;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a run task reports.
enum RunEvent {
    Line(ExecutionId, u32, WireLine),
    Done(ExecutionId, u32, Box<Execution>),
}

/// One run the worker holds.
struct Held {
    attempt: u32,
    cancel: CancellationToken,
    /// Lines not yet acknowledged, by seq.
    unacked: BTreeMap<i64, WireLine>,
    /// The first seq not yet sent on the current connection.
    next_send: i64,
    /// The runner's record once the run ended, until `complete_ack`.
    done: Option<Box<Execution>>,
    /// The attempt is no longer current: drop everything it produces.
    abandoned: bool,
}

/// The worker's side of the protocol.
pub struct Link {
    settings: WorkerSettings,
    runner: Arc<Runner>,
    held: BTreeMap<ExecutionId, Held>,
    /// The last connection got through its hello (the backoff starts over).
    reached: bool,
    events_tx: mpsc::UnboundedSender<RunEvent>,
    events_rx: mpsc::UnboundedReceiver<RunEvent>,
}

/// Why a connection ended.
enum End {
    Stop,
    Lost(String),
    Refused(String),
}

impl Link {
    pub fn new(settings: WorkerSettings, runner: Runner) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Self {
            settings,
            runner: Arc::new(runner),
            held: BTreeMap::new(),
            reached: false,
            events_tx,
            events_rx,
        }
    }

    /// Connects, serves, reconnects, until `stop`; then stops the runs still going (their
    /// attempts are re-queued by the orchestrators once this worker is silent).
    pub async fn run(mut self, stop: CancellationToken) {
        let urls = self.settings.orchestrators.clone();
        let mut next = 0usize;
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            let url = &urls[next % urls.len()];
            next += 1;
            self.reached = false;
            let end = self.connect_and_serve(url, &stop).await;
            if self.reached {
                failures = 0;
            }
            match end {
                End::Stop => break,
                End::Lost(why) => {
                    tracing::warn!("orchestrator {url}: {why}");
                    failures = failures.saturating_add(1);
                }
                End::Refused(why) => {
                    tracing::error!("orchestrator {url} refused this worker: {why}");
                    failures = failures.saturating_add(4);
                }
            }
            // 200 ms after a connection that worked (move to the next orchestrator at once),
            // doubling while none answers, at most 5 s.
            let backoff = Duration::from_millis((100u64 << failures.min(6)).min(5_000));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
        }
        for h in self.held.values() {
            h.cancel.cancel();
        }
    }

    async fn connect_and_serve(&mut self, url: &str, stop: &CancellationToken) -> End {
        let ws_url = format!(
            "{}/worker",
            url.trim_end_matches('/')
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        let connect = tokio_tungstenite::connect_async(ws_url.as_str());
        let mut socket = match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok((s, _))) => s,
            Ok(Err(e)) => return End::Lost(format!("cannot connect: {e}")),
            Err(_) => return End::Lost("connect timed out".into()),
        };
        let mut conn = match Conn::handshake(&mut socket, &self.settings).await {
            Ok(c) => c,
            Err(e) => return End::Lost(e),
        };
        self.absorb_events();
        let hello = WorkerFrame::Hello {
            worker_id: self.settings.id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: PROTOCOL_VERSION,
            capacity: self.settings.capacity,
            held: self.held_runs(),
        };
        if let Err(e) = conn.send(&mut socket, &hello).await {
            return End::Lost(e);
        }
        let ack = match tokio::time::timeout(Duration::from_secs(10), conn.recv(&mut socket)).await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return End::Lost(e),
            Err(_) => return End::Lost("no ack within 10 s".into()),
        };
        match ack {
            OrchestratorFrame::Ack { resume, .. } => self.apply_resume(&resume),
            OrchestratorFrame::Refused { reason } => return End::Refused(reason),
            other => return End::Lost(format!("expected ack, got {other:?}")),
        }
        self.reached = true;
        tracing::info!("connected to {url} ({} held run(s))", self.held.len());
        if let Err(e) = self.resend(&mut conn, &mut socket).await {
            return End::Lost(e);
        }
        self.serve(&mut conn, &mut socket, stop).await
    }

    /// Moves whatever the runs reported while no connection was up into `held`.
    fn absorb_events(&mut self) {
        while let Ok(ev) = self.events_rx.try_recv() {
            self.record(ev);
        }
    }

    fn held_runs(&self) -> Vec<HeldRun> {
        self.held
            .iter()
            .filter(|(_, h)| !h.abandoned)
            .map(|(id, h)| HeldRun {
                execution_id: id.clone(),
                attempt: h.attempt,
                first_unacked_seq: h.unacked.keys().next().copied().unwrap_or(h.next_send),
                finished: h.done.is_some(),
            })
            .collect()
    }

    fn apply_resume(&mut self, resume: &[Resume]) {
        for r in resume {
            let Some(h) = self.held.get_mut(&r.execution_id) else {
                continue;
            };
            if h.attempt != r.attempt {
                continue;
            }
            if !r.current {
                tracing::info!(
                    "{} attempt {} is no longer current; stopping it",
                    r.execution_id,
                    r.attempt
                );
                abandon(h);
            } else {
                h.unacked = h.unacked.split_off(&r.resend_from_seq);
                h.next_send = r.resend_from_seq;
            }
        }
        self.held.retain(|_, h| !(h.abandoned && h.done.is_some()));
        // Runs not mentioned keep going; lines are resent from their first unacknowledged one.
        for h in self.held.values_mut() {
            if let Some(first) = h.unacked.keys().next() {
                h.next_send = h.next_send.min(*first);
            }
        }
    }

    /// Resends, after a (re)connect, every unacknowledged line and every pending completion.
    async fn resend(&mut self, conn: &mut Conn, socket: &mut Socket) -> Result<(), String> {
        let ids: Vec<ExecutionId> = self.held.keys().cloned().collect();
        for id in ids {
            self.flush(&id, conn, socket).await?;
        }
        Ok(())
    }

    /// Sends a run's lines not yet sent on this connection, then its completion if it ended.
    async fn flush(
        &mut self,
        id: &ExecutionId,
        conn: &mut Conn,
        socket: &mut Socket,
    ) -> Result<(), String> {
        let Some(h) = self.held.get_mut(id) else {
            return Ok(());
        };
        if h.abandoned {
            return Ok(());
        }
        loop {
            let lines: Vec<WireLine> = h
                .unacked
                .range(h.next_send..)
                .take(BATCH)
                .map(|(_, l)| l.clone())
                .collect();
            let Some(last) = lines.last().map(|l| l.seq) else {
                break;
            };
            let frame = WorkerFrame::Output {
                execution_id: id.clone(),
                attempt: h.attempt,
                lines,
            };
            conn.send(socket, &frame).await?;
            h.next_send = last + 1;
        }
        if let Some(done) = &h.done {
            let last_seq = h.next_send - 1;
            let frame = WorkerFrame::Complete {
                execution_id: id.clone(),
                attempt: h.attempt,
                last_seq,
                execution: done.clone(),
            };
            conn.send(socket, &frame).await?;
        }
        Ok(())
    }

    fn record(&mut self, ev: RunEvent) -> Option<ExecutionId> {
        match ev {
            RunEvent::Line(id, attempt, line) => {
                let h = self.held.get_mut(&id).filter(|h| h.attempt == attempt)?;
                if !h.abandoned {
                    h.unacked.insert(line.seq, line);
                }
                Some(id)
            }
            RunEvent::Done(id, attempt, execution) => {
                let h = self.held.get_mut(&id).filter(|h| h.attempt == attempt)?;
                if h.abandoned {
                    self.held.remove(&id);
                    return None;
                }
                h.done = Some(execution);
                Some(id)
            }
        }
    }

    async fn serve(
        &mut self,
        conn: &mut Conn,
        socket: &mut Socket,
        stop: &CancellationToken,
    ) -> End {
        let mut beat = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS));
        loop {
            let step = tokio::select! {
                _ = stop.cancelled() => return End::Stop,
                _ = beat.tick() => self.beat(conn, socket).await,
                ev = self.events_rx.recv() => match ev {
                    Some(ev) => self.on_event(ev, conn, socket).await,
                    None => Err("the run channel closed".into()),
                },
                frame = conn.recv(socket) => match frame {
                    Ok(f) => self.on_frame(f, conn, socket).await,
                    Err(e) => Err(e),
                },
            };
            match step {
                Ok(None) => {}
                Ok(Some(end)) => return end,
                Err(e) => return End::Lost(e),
            }
        }
    }

    async fn beat(&mut self, conn: &mut Conn, socket: &mut Socket) -> Result<Option<End>, String> {
        if conn.last_seen.elapsed() > Duration::from_millis(SILENT_MS) {
            return Err(format!("silent for more than {SILENT_MS} ms"));
        }
        let frame = WorkerFrame::Heartbeat {
            at: chrono::Utc::now(),
        };
        conn.send(socket, &frame).await.map(|()| None)
    }

    async fn on_event(
        &mut self,
        ev: RunEvent,
        conn: &mut Conn,
        socket: &mut Socket,
    ) -> Result<Option<End>, String> {
        let mut touched = Vec::new();
        touched.extend(self.record(ev));
        // Batch whatever else is already waiting.
        while let Ok(ev) = self.events_rx.try_recv() {
            touched.extend(self.record(ev));
        }
        touched.dedup();
        for id in touched {
            self.flush(&id, conn, socket).await?;
        }
        Ok(None)
    }

    async fn on_frame(
        &mut self,
        frame: OrchestratorFrame,
        conn: &mut Conn,
        socket: &mut Socket,
    ) -> Result<Option<End>, String> {
        match frame {
            OrchestratorFrame::Heartbeat { .. } | OrchestratorFrame::Ack { .. } => {}
            OrchestratorFrame::Assign { assignment } => {
                self.start(*assignment, conn, socket).await?
            }
            OrchestratorFrame::OutputAck {
                execution_id,
                attempt,
                up_to_seq,
            } => {
                if let Some(h) = self
                    .held
                    .get_mut(&execution_id)
                    .filter(|h| h.attempt == attempt)
                {
                    h.unacked = h.unacked.split_off(&(up_to_seq + 1));
                }
            }
            OrchestratorFrame::CompleteAck {
                execution_id,
                attempt,
                accepted,
            } => {
                if self
                    .held
                    .get(&execution_id)
                    .is_some_and(|h| h.attempt == attempt && h.done.is_some())
                {
                    self.held.remove(&execution_id);
                    tracing::info!(
                        "{execution_id} attempt {attempt}: completion {}",
                        if accepted {
                            "stored"
                        } else {
                            "refused (not current)"
                        }
                    );
                }
            }
            OrchestratorFrame::Cancel {
                execution_id,
                attempt,
            } => {
                if let Some(h) = self
                    .held
                    .get(&execution_id)
                    .filter(|h| h.attempt == attempt)
                {
                    tracing::info!("{execution_id} attempt {attempt}: cancel");
                    h.cancel.cancel();
                }
            }
            OrchestratorFrame::Refused { reason } => return Ok(Some(End::Refused(reason))),
        }
        Ok(None)
    }

    /// Starts an assigned run and reports `started`.
    async fn start(
        &mut self,
        a: Assignment,
        conn: &mut Conn,
        socket: &mut Socket,
    ) -> Result<(), String> {
        let id = a.execution_id.clone();
        let attempt = a.attempt;
        if let Some(h) = self.held.get(&id) {
            if h.attempt >= attempt {
                return Ok(()); // already running it
            }
            h.cancel.cancel();
        }
        let cancel = CancellationToken::new();
        self.held.insert(
            id.clone(),
            Held {
                attempt,
                cancel: cancel.clone(),
                unacked: BTreeMap::new(),
                next_send: a.first_seq,
                done: None,
                abandoned: false,
            },
        );
        let runner = self.runner.clone();
        let events = self.events_tx.clone();
        let started = id.clone();
        tokio::spawn(async move {
            let (line_events, line_id) = (events.clone(), id.clone());
            let execution = runner
                .run(a, cancel, move |line| {
                    let _ = line_events.send(RunEvent::Line(line_id.clone(), attempt, line));
                })
                .await;
            // Sent after every line: the link sees the end last.
            let _ = events.send(RunEvent::Done(id, attempt, Box::new(execution)));
        });
        let frame = WorkerFrame::Started {
            execution_id: started,
            attempt,
            at: chrono::Utc::now(),
        };
        conn.send(socket, &frame).await
    }
}

fn abandon(h: &mut Held) {
    h.abandoned = true;
    h.cancel.cancel();
    h.unacked.clear();
}

/// One authenticated connection: the nonce and both counters.
struct Conn {
    token: [u8; 32],
    nonce: String,
    sent: u64,
    received: u64,
    last_seen: Instant,
}

impl Conn {
    async fn handshake(socket: &mut Socket, settings: &WorkerSettings) -> Result<Conn, String> {
        let first = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .map_err(|_| "no challenge within 10 s".to_string())?;
        let text = match first {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(other)) => return Err(format!("expected a challenge, got {other:?}")),
            Some(Err(e)) => return Err(format!("read error: {e}")),
            None => return Err("the orchestrator hung up".into()),
        };
        let challenge: Challenge =
            serde_json::from_str(text.as_str()).map_err(|e| format!("not a challenge: {e}"))?;
        if challenge.protocol != PROTOCOL_VERSION {
            return Err(format!(
                "the orchestrator speaks protocol {}, this worker {PROTOCOL_VERSION}",
                challenge.protocol
            ));
        }
        Ok(Conn {
            token: *settings.token,
            nonce: challenge.nonce,
            sent: 0,
            received: 0,
            last_seen: Instant::now(),
        })
    }

    async fn send(&mut self, socket: &mut Socket, frame: &WorkerFrame) -> Result<(), String> {
        self.sent += 1;
        let env = Envelope::seal(
            &self.token,
            &self.nonce,
            Direction::ToOrchestrator,
            self.sent,
            frame,
        );
        let text = serde_json::to_string(&env).map_err(|e| e.to_string())?;
        socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| format!("write error: {e}"))
    }

    /// The next frame; a bad MAC or counter ends the connection.
    async fn recv(&mut self, socket: &mut Socket) -> Result<OrchestratorFrame, String> {
        loop {
            let msg = socket
                .next()
                .await
                .ok_or_else(|| "the orchestrator hung up".to_string())?
                .map_err(|e| format!("read error: {e}"))?;
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(c) => return Err(format!("closed by the orchestrator: {c:?}")),
                Message::Binary(_) => return Err("binary frames are not spoken".into()),
                _ => continue,
            };
            let env: Envelope =
                serde_json::from_str(text.as_str()).map_err(|e| format!("not an envelope: {e}"))?;
            let frame = env
                .open(
                    &self.token,
                    &self.nonce,
                    Direction::ToWorker,
                    self.received + 1,
                )
                .map_err(|e| format!("frame refused: {e}"))?;
            self.received += 1;
            self.last_seen = Instant::now();
            return Ok(frame);
        }
    }
}
