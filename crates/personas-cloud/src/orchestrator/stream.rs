//! The client stream: `GET /api/stream?after=N[&execution=ID]`, a WebSocket carrying the
//! caller's tenant journal as `ClientFrame`s (see `personas_cloud_api::stream`).
//!
//! A session subscribes to the live journal broadcast FIRST, then replays the journal rows after
//! `after` from Postgres, then forwards live entries. Live entries arrive in topic order per
//! partition, not in journal order, so a [`Reorder`] buffer holds any that run ahead of the
//! cursor and releases them in sequence; a gap that persists for [`GAP_FILL_AFTER`] is filled
//! from Postgres (the journal row is committed before its entry can be published). Every frame
//! has a sequence number one higher than the last one sent (frames of other executions are
//! skipped but still move the cursor), so a client that resumes with its last seq misses
//! nothing and sees nothing twice.
//!
//! A client that reads too slowly for the live broadcast is closed with a reason naming the
//! seq to resume from; a client silent for [`IDLE_LIMIT`] (no pong to our pings) is dropped.

use super::api::{Api, ApiError};
use super::db;
use super::journal::{self, JournalEntry};
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use personas_cloud_api::CloudError;
use personas_cloud_api::stream::{ClientEvent, ClientFrame};
use personas_core::ExecutionId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

/// How long a gap in the live sequence may last before it is read from Postgres.
pub const GAP_FILL_AFTER: Duration = Duration::from_millis(200);
/// Ping interval.
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// A client that sent nothing (not even a pong) for this long is gone.
pub const IDLE_LIMIT: Duration = Duration::from_secs(45);
/// Journal rows read per Postgres query while replaying or filling.
const PAGE: i64 = 1_000;
/// A send the client does not make room for within this long ends the session: a client that
/// stopped reading must not hold a task forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one message; a dead or stalled client ends the session.
async fn send(socket: &mut WebSocket, msg: Message, within: Duration) -> Result<(), End> {
    match tokio::time::timeout(within, socket.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(End::ClientLeft),
    }
}
/// Entries the reorder buffer holds before the session gives up on live order and catches up
/// from Postgres.
const REORDER_MAX: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The last seq the client has (0 or absent: from the start).
    #[serde(default)]
    pub after: Option<i64>,
    /// Only this execution's output and lifecycle.
    #[serde(default)]
    pub execution: Option<String>,
}

/// The upgrade: authenticated and checked before the socket opens, so a refused client gets
/// a plain HTTP error (401, 404, 400).
pub async fn handler(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match prepare(&api, &headers, query, ws).await {
        Ok((ws, session)) => ws.on_upgrade(move |socket| session.run(api, socket)),
        Err(e) => ApiError(e).into_response(),
    }
}

async fn prepare(
    api: &Api,
    headers: &HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<(WebSocketUpgrade, Session), CloudError> {
    let who = api.caller(headers).await?;
    let Query(q) = query.map_err(|e| CloudError::invalid("after", format!("bad query: {e}")))?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(CloudError::invalid(
            "after",
            format!("after must be 0 or more, got {after}"),
        ));
    }
    let execution = match q.execution {
        Some(id) => {
            let id = ExecutionId::from_string(id);
            // Another tenant's execution is "not found", as everywhere.
            let conn = db::conn(api.orch.db()).await?;
            let found = db::query_opt(
                &conn,
                "SELECT 1 FROM executions WHERE tenant_id = $1 AND id = $2",
                &[&who.tenant_id, &id.as_str()],
            )
            .await?;
            if found.is_none() {
                return Err(super::api::executions::not_found(&id));
            }
            Some(id)
        }
        None => None,
    };
    let ws =
        ws.map_err(|e| CloudError::invalid("upgrade", format!("not a WebSocket request: {e}")))?;
    Ok((
        ws,
        Session {
            tenant_id: who.tenant_id,
            execution,
            cursor: after,
        },
    ))
}

/// Puts live entries back in journal order: holds those past a gap until the gap is filled.
#[derive(Debug, Default)]
pub struct Reorder {
    /// The last seq released.
    cursor: i64,
    ahead: BTreeMap<i64, JournalEntry>,
}

impl Reorder {
    pub fn new(cursor: i64) -> Self {
        Self {
            cursor,
            ahead: BTreeMap::new(),
        }
    }

    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// Takes an entry; returns the entries now in order after the cursor (none twice).
    pub fn push(&mut self, entry: JournalEntry) -> Vec<JournalEntry> {
        if entry.seq > self.cursor {
            self.ahead.insert(entry.seq, entry);
        }
        self.release()
    }

    fn release(&mut self) -> Vec<JournalEntry> {
        let mut out = Vec::new();
        while let Some(e) = self.ahead.remove(&(self.cursor + 1)) {
            self.cursor = e.seq;
            out.push(e);
        }
        out
    }

    /// Whether entries wait behind a missing one.
    pub fn has_gap(&self) -> bool {
        !self.ahead.is_empty()
    }

    pub fn held(&self) -> usize {
        self.ahead.len()
    }

    /// Takes entries read from Postgres (in order from the cursor) and anything they unblock.
    pub fn fill(&mut self, rows: Vec<JournalEntry>) -> Vec<JournalEntry> {
        let mut out = Vec::new();
        for e in rows {
            if e.seq == self.cursor + 1 {
                self.ahead.remove(&e.seq);
                self.cursor = e.seq;
                out.push(e);
            }
        }
        self.ahead = self.ahead.split_off(&(self.cursor + 1));
        out.extend(self.release());
        out
    }
}

/// One client's stream.
struct Session {
    tenant_id: String,
    execution: Option<ExecutionId>,
    cursor: i64,
}

/// Why a session ended, for the close frame.
enum End {
    ClientLeft,
    Closed { code: u16, reason: String },
}

/// Counts the session in `orchestrators.clients` while it lives.
struct ClientCount<'a>(&'a std::sync::atomic::AtomicU32);

impl Drop for ClientCount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Session {
    async fn run(mut self, api: Api, mut socket: WebSocket) {
        api.orch.clients().fetch_add(1, Ordering::Relaxed);
        let _count = ClientCount(api.orch.clients());
        let end = self.serve(&api, &mut socket).await;
        if let End::Closed { code, reason } = end {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            // Queued behind the frames already sent; a stalled client does not get to hold us.
            let _ = send(
                &mut socket,
                Message::Close(Some(frame)),
                Duration::from_secs(5),
            )
            .await;
        }
    }

    async fn serve(&mut self, api: &Api, socket: &mut WebSocket) -> End {
        // Subscribe before reading Postgres: whatever commits meanwhile is in one or the other.
        let mut live = api.orch.live();
        if let Err(end) = self.replay(api, socket).await {
            return end;
        }
        let mut order = Reorder::new(self.cursor);
        let mut gap_since: Option<Instant> = None;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut heard = Instant::now();
        let stop = api.orch.stop_token().clone();
        loop {
            let gap_deadline = gap_since.map(|t| t + GAP_FILL_AFTER);
            tokio::select! {
                _ = stop.cancelled() => {
                    return End::Closed { code: close_code::AWAY, reason: self.resume_hint("the orchestrator is stopping") };
                }
                received = live.recv() => match received {
                    Ok(entry) if entry.tenant_id == self.tenant_id => {
                        let ready = order.push(entry);
                        if let Err(end) = self.send_all(socket, ready).await {
                            return end;
                        }
                        if order.held() > REORDER_MAX {
                            gap_since = Some(Instant::now() - GAP_FILL_AFTER);
                        } else if !order.has_gap() {
                            gap_since = None;
                        } else if gap_since.is_none() {
                            gap_since = Some(Instant::now());
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracing::info!(tenant = %self.tenant_id, missed = n, "closing a lagging client stream");
                        return End::Closed {
                            code: close_code::AGAIN,
                            reason: self.resume_hint("the client reads too slowly"),
                        };
                    }
                    Err(RecvError::Closed) => {
                        return End::Closed { code: close_code::AWAY, reason: self.resume_hint("the orchestrator is stopping") };
                    }
                },
                _ = sleep_until_opt(gap_deadline) => {
                    match self.fill(api, &mut order).await {
                        Ok(ready) => {
                            if let Err(end) = self.send_all(socket, ready).await {
                                return end;
                            }
                        }
                        Err(e) => tracing::warn!("client stream gap fill: {e}"),
                    }
                    gap_since = order.has_gap().then(Instant::now);
                }
                _ = ping.tick() => {
                    if heard.elapsed() > IDLE_LIMIT {
                        return End::Closed { code: close_code::POLICY, reason: self.resume_hint("no pong from the client") };
                    }
                    if let Err(end) = send(socket, Message::Ping(Default::default()), SEND_TIMEOUT).await {
                        return end;
                    }
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::ClientLeft,
                    // Pings are answered by the socket itself; anything heard means alive.
                    Some(Ok(_)) => heard = Instant::now(),
                },
            }
        }
    }

    /// Sends the journal after the cursor from Postgres, page by page, until it is exhausted.
    async fn replay(&mut self, api: &Api, socket: &mut WebSocket) -> Result<(), End> {
        loop {
            let rows = self.read(api, self.cursor).await.map_err(|e| End::Closed {
                code: close_code::AGAIN,
                reason: self.resume_hint(&e.message),
            })?;
            let n = rows.len() as i64;
            self.send_all(socket, rows).await?;
            if n < PAGE {
                return Ok(());
            }
        }
    }

    async fn read(&self, api: &Api, after: i64) -> Result<Vec<JournalEntry>, CloudError> {
        let conn = db::conn(api.orch.db()).await?;
        journal::read_after(&conn, &self.tenant_id, after, PAGE).await
    }

    /// Reads the missing entries after the cursor from Postgres.
    async fn fill(
        &mut self,
        api: &Api,
        order: &mut Reorder,
    ) -> Result<Vec<JournalEntry>, CloudError> {
        let rows = self.read(api, order.cursor()).await?;
        Ok(order.fill(rows))
    }

    /// Sends entries (already in order after the cursor), skipping other executions' frames.
    async fn send_all(
        &mut self,
        socket: &mut WebSocket,
        entries: Vec<JournalEntry>,
    ) -> Result<(), End> {
        for e in entries {
            if e.seq != self.cursor + 1 {
                // Replay starts right after the cursor and Reorder releases in sequence; this
                // would be a bug, and a frame out of order is worse than a reconnect.
                tracing::error!(
                    expected = self.cursor + 1,
                    got = e.seq,
                    "client stream out of order"
                );
                return Err(End::Closed {
                    code: close_code::ERROR,
                    reason: self.resume_hint("internal sequencing error"),
                });
            }
            self.cursor = e.seq;
            if !self.wants(&e.event) {
                continue;
            }
            let frame = ClientFrame {
                seq: e.seq,
                event: e.event,
            };
            let text = match serde_json::to_string(&frame) {
                Ok(t) => t,
                Err(err) => {
                    tracing::error!("cannot encode a client frame: {err}");
                    continue;
                }
            };
            send(socket, Message::Text(text.into()), SEND_TIMEOUT).await?;
        }
        Ok(())
    }

    fn wants(&self, event: &ClientEvent) -> bool {
        let Some(only) = &self.execution else {
            return true;
        };
        match event {
            ClientEvent::Output { line } => &line.execution_id == only,
            ClientEvent::Execution { execution } => &execution.execution.id == only,
            ClientEvent::Event { .. } => false,
        }
    }

    fn resume_hint(&self, why: &str) -> String {
        // Close reasons are at most 123 bytes.
        let mut s = format!("{why}; reconnect with after={}", self.cursor);
        s.truncate(120);
        s
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_cloud_api::model::CloudEvent;

    fn entry(seq: i64) -> JournalEntry {
        JournalEntry {
            tenant_id: "t".into(),
            seq,
            event: ClientEvent::Event {
                event: CloudEvent {
                    id: format!("e{seq}"),
                    event_type: "x".into(),
                    payload: None,
                    source: "test".into(),
                    created_at: chrono::Utc::now(),
                    executions: vec![],
                },
            },
        }
    }

    fn seqs(v: &[JournalEntry]) -> Vec<i64> {
        v.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn reorder_releases_in_sequence_and_never_twice() {
        let mut r = Reorder::new(10);
        assert!(r.push(entry(9)).is_empty(), "before the cursor");
        assert!(r.push(entry(10)).is_empty(), "at the cursor");
        assert!(r.push(entry(12)).is_empty(), "ahead of a gap");
        assert!(r.has_gap());
        assert_eq!(seqs(&r.push(entry(11))), [11, 12]);
        assert!(!r.has_gap());
        assert!(r.push(entry(12)).is_empty(), "a duplicate");
        assert_eq!(r.cursor(), 12);
    }

    #[test]
    fn fill_covers_the_gap_and_drops_what_it_replaced() {
        let mut r = Reorder::new(0);
        r.push(entry(3));
        r.push(entry(5));
        // Postgres has 1..=4: they come in order, 3 is not sent twice, 5 follows.
        let out = r.fill((1..=4).map(entry).collect());
        assert_eq!(seqs(&out), [1, 2, 3, 4, 5]);
        assert!(!r.has_gap());
        // A fill that starts past the cursor (impossible from Postgres) releases nothing.
        let out = r.fill(vec![entry(7)]);
        assert!(out.is_empty());
        assert_eq!(r.cursor(), 5);
    }
}
