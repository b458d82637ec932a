//! The event stream: engine events numbered, buffered for replay, and served on one WebSocket.
//!
//! One task subscribes to the engine, turns each event into an [`ApiEvent`], gives it the next
//! sequence number and appends it to a ring buffer before broadcasting it. A client connects to
//! `/api/events?after=<seq>&epoch=<epoch>`: under the buffer's lock it copies what it missed and
//! subscribes to the live feed, so nothing falls between replay and live. When the client was
//! away longer than the buffer covers (or comes from another runtime instance, or reads too
//! slowly) it gets a `resync` frame and re-reads state through the operations.
//!
//! Frames go out as JSON arrays: a burst of output lines costs one WebSocket message.

use axum::extract::ws::{Message, WebSocket};
use personas_api::{ApiEvent, StreamFrame};
use personas_engine::Engine;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events kept for clients that reconnect (about a second of a 10 000 lines/s stream).
pub const REPLAY_CAPACITY: usize = 16_384;
/// Live events a slow client may fall behind by before it is told to resync.
const LIVE_CAPACITY: usize = 32_768;
/// Most frames sent in one WebSocket message.
const BATCH: usize = 1_024;

type Numbered = Arc<(u64, ApiEvent)>;

/// How a connecting client starts.
enum Start {
    /// From now on (a first connection).
    Fresh,
    /// With these buffered events it missed.
    Replay(Vec<Numbered>),
    /// Too far behind (or another runtime instance): it must re-read state.
    Gap,
}

struct Ring {
    events: VecDeque<Numbered>,
    last_seq: u64,
}

/// Numbers, buffers and fans out the engine's events; cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    epoch: String,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Numbered>,
    capacity: usize,
}

impl EventHub {
    /// Starts numbering the engine's events (until `stop` is cancelled).
    pub fn start(engine: &Engine, stop: CancellationToken) -> EventHub {
        Self::start_with_capacity(engine, stop, REPLAY_CAPACITY)
    }

    pub fn start_with_capacity(
        engine: &Engine,
        stop: CancellationToken,
        capacity: usize,
    ) -> EventHub {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let hub = EventHub {
            inner: Arc::new(HubInner {
                epoch: format!(
                    "{:x}-{:x}",
                    std::process::id(),
                    chrono::Utc::now().timestamp_millis()
                ),
                ring: Mutex::new(Ring {
                    events: VecDeque::with_capacity(capacity.min(4096)),
                    last_seq: 0,
                }),
                live,
                capacity: capacity.max(1),
            }),
        };
        let mut rx = engine.subscribe();
        let me = hub.clone();
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    ev = rx.recv() => ev,
                    _ = stop.cancelled() => return,
                };
                match ev {
                    Ok(ev) => me.publish(ApiEvent::from(ev)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // The engine's channel is large; losing events here means the host is
                        // starved. Clients are told to resync through the sequence gap.
                        tracing::warn!(missed = n, "event hub fell behind the engine");
                        me.skip(n);
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        hub
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // Pushes and pops cannot leave the ring inconsistent, so a poisoned lock is usable.
        self.inner.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn epoch(&self) -> &str {
        &self.inner.epoch
    }

    /// Numbers and publishes one event.
    pub fn publish(&self, event: ApiEvent) {
        let mut ring = self.ring();
        ring.last_seq += 1;
        let numbered: Numbered = Arc::new((ring.last_seq, event));
        if ring.events.len() == self.inner.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&numbered));
        let _ = self.inner.live.send(numbered);
    }

    /// Burns `n` sequence numbers for events that were lost upstream, so clients see the gap.
    fn skip(&self, n: u64) {
        let mut ring = self.ring();
        ring.last_seq += n;
        // What is in the ring is no longer contiguous with what follows: drop it.
        ring.events.clear();
    }

    /// The newest sequence number.
    pub fn last_seq(&self) -> u64 {
        self.ring().last_seq
    }

    /// Where a connecting client starts, and a live subscription taken under the same lock so
    /// nothing falls between the two.
    fn resume(&self, after: Option<u64>) -> (Start, u64, broadcast::Receiver<Numbered>) {
        let ring = self.ring();
        let rx = self.inner.live.subscribe();
        let last = ring.last_seq;
        let oldest = ring.events.front().map_or(last + 1, |e| e.0);
        let start = match after {
            None => Start::Fresh,
            Some(a) if a > last => Start::Gap,
            Some(a) if a + 1 >= oldest => {
                Start::Replay(ring.events.iter().filter(|e| e.0 > a).cloned().collect())
            }
            Some(_) => Start::Gap,
        };
        (start, last, rx)
    }

    /// Joins the stream as a client that last saw `after` from runtime instance `epoch`:
    /// returns the first frames (hello, then the missed events or a resync) and the live
    /// subscription that continues exactly after them.
    pub fn join(
        &self,
        after: Option<u64>,
        epoch: Option<&str>,
    ) -> (Vec<StreamFrame>, Subscription) {
        let wanted = match (after, epoch) {
            (None, _) => None,
            // Sequences restart with the runtime: another instance's number means nothing here.
            (Some(_), Some(e)) if e != self.epoch() => Some(u64::MAX),
            (Some(a), _) => Some(a),
        };
        let (start, last, rx) = self.resume(wanted);
        let mut first = vec![StreamFrame::Hello {
            epoch: self.epoch().to_string(),
            seq: last,
        }];
        match start {
            Start::Fresh => {}
            Start::Replay(events) => first.extend(events.iter().map(frame)),
            Start::Gap => first.push(self.resync(
                last,
                "the events since your last sequence are no longer buffered",
            )),
        }
        // Everything up to `last` is covered by the replay (or the resync).
        let sub = Subscription {
            hub: self.clone(),
            rx,
            sent: last,
        };
        (first, sub)
    }

    /// Serves one WebSocket until the client leaves or `stop` is cancelled. `after`/`epoch` are
    /// the last sequence the client saw and the runtime instance it saw it from.
    pub async fn serve_socket(
        self,
        mut socket: WebSocket,
        after: Option<u64>,
        epoch: Option<String>,
        stop: CancellationToken,
    ) {
        let (first, mut sub) = self.join(after, epoch.as_deref());
        if send(&mut socket, &first).await.is_err() {
            return;
        }
        loop {
            let batch = tokio::select! {
                b = sub.next_batch() => match b {
                    Some(b) => b,
                    None => return,
                },
                msg = socket.recv() => match msg {
                    // Clients send nothing but pings/close; anything else is ignored.
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                },
                _ = stop.cancelled() => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            };
            if !batch.is_empty() && send(&mut socket, &batch).await.is_err() {
                return;
            }
        }
    }

    fn resync(&self, seq: u64, reason: &str) -> StreamFrame {
        StreamFrame::Resync {
            epoch: self.epoch().to_string(),
            seq,
            reason: reason.to_string(),
        }
    }
}

/// A client's place in the live stream, continuing right after the frames [`EventHub::join`]
/// returned. Hosts forward its batches: the web host to a WebSocket, the desktop shell to a
/// Tauri channel.
pub struct Subscription {
    hub: EventHub,
    rx: broadcast::Receiver<Numbered>,
    sent: u64,
}

impl Subscription {
    /// The next frames in order (up to a batch), waiting for at least one; `None` when the
    /// runtime stopped. Gaps and lag become `resync` frames, never silent loss.
    pub async fn next_batch(&mut self) -> Option<Vec<StreamFrame>> {
        let mut batch = Vec::new();
        let first = self.rx.recv().await;
        if !self.push(&mut batch, first) {
            return None;
        }
        while batch.len() < BATCH {
            match self.rx.try_recv() {
                Ok(e) => {
                    self.push(&mut batch, Ok(e));
                }
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    self.push(&mut batch, Err(broadcast::error::RecvError::Lagged(n)));
                }
                Err(_) => break,
            }
        }
        Some(batch)
    }

    fn push(
        &mut self,
        batch: &mut Vec<StreamFrame>,
        r: Result<Numbered, broadcast::error::RecvError>,
    ) -> bool {
        match r {
            Ok(e) if e.0 <= self.sent => true,
            Ok(e) if e.0 == self.sent + 1 => {
                batch.push(frame(&e));
                self.sent = e.0;
                true
            }
            Ok(e) => {
                // A gap (events lost upstream): say so, then go on from here.
                batch.push(self.hub.resync(e.0 - 1, "events were lost upstream"));
                batch.push(frame(&e));
                self.sent = e.0;
                true
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let last = self.hub.last_seq();
                batch.push(
                    self.hub
                        .resync(last, "you read too slowly and missed events"),
                );
                self.sent = last;
                true
            }
            Err(broadcast::error::RecvError::Closed) => false,
        }
    }
}

fn frame(e: &Numbered) -> StreamFrame {
    StreamFrame::Event {
        seq: e.0,
        event: e.1.clone(),
    }
}

async fn send(socket: &mut WebSocket, frames: &[StreamFrame]) -> Result<(), ()> {
    let text = serde_json::to_string(frames).map_err(|e| {
        tracing::error!(error = %e, "cannot encode stream frames");
    })?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| ())
}
