//! Publishing with group commit.
//!
//! Webhooks, file watchers and API callers hand events to one publisher thread, which commits
//! whatever has arrived in one transaction (one disk sync for the lot), answers each caller
//! once its event is durable, broadcasts the new events and wakes the dispatcher. Under load this
//! turns thousands of single-event transactions into a few large ones; alone, an event costs one
//! transaction as before.

use crate::events::{EngineEvent, EventBus};
use personas_store::{EventRow, NewEvent, Store, StoreError};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, oneshot};

type Reply = oneshot::Sender<Result<(EventRow, bool), String>>;

/// Most events committed in one transaction.
const MAX_BATCH: usize = 1_024;
/// Events waiting for the thread before publishers wait too (bounded memory under a burst).
const QUEUE_DEPTH: usize = 8_192;

/// Handle to the publisher thread; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<(NewEvent, Reply)>,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the event could not be stored: {0}")]
    Store(String),
    #[error("the event publisher has stopped")]
    Stopped,
}

impl Publisher {
    /// Starts the thread. It stops when every handle is dropped.
    pub fn start(store: Store, bus: EventBus, wakeup: Arc<Notify>) -> Publisher {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let spawned = std::thread::Builder::new()
            .name("personas-event-publisher".into())
            .spawn(move || run(store, bus, wakeup, rx));
        if let Err(e) = spawned {
            // Without the thread every publish reports `Stopped`: the receiver is gone.
            tracing::error!(error = %e, "cannot start the event publisher thread");
        }
        Publisher { tx }
    }

    /// Publishes an event; resolves once it is committed. The flag is false when its dedupe
    /// key was published before (the earlier event is returned).
    pub async fn publish(&self, event: NewEvent) -> Result<(EventRow, bool), PublishError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| PublishError::Stopped)?;
        match answer.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(PublishError::Store(e)),
            Err(_) => Err(PublishError::Stopped),
        }
    }
}

fn run(
    store: Store,
    bus: EventBus,
    wakeup: Arc<Notify>,
    mut rx: mpsc::Receiver<(NewEvent, Reply)>,
) {
    let mut events = Vec::with_capacity(64);
    let mut replies = Vec::with_capacity(64);
    while let Some((event, reply)) = rx.blocking_recv() {
        events.push(event);
        replies.push(reply);
        while events.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((event, reply)) => {
                    events.push(event);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        // One bad event (say, addressed to a persona deleted a moment ago) must not fail the
        // others sharing its transaction: a failed batch is retried one event at a time.
        let started = std::time::Instant::now();
        let committed = commit(&store, &events);
        tracing::debug!(
            events = events.len(),
            commit_us = started.elapsed().as_micros() as u64,
            "publish batch"
        );
        let results: Vec<Result<(EventRow, bool), String>> = match committed {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) if events.len() == 1 => vec![Err(e.to_string())],
            Err(_) => events
                .iter()
                .map(|e| {
                    commit(&store, std::slice::from_ref(e))
                        .map_err(|e| e.to_string())
                        .and_then(|mut rows| rows.pop().ok_or_else(|| "no event stored".into()))
                })
                .collect(),
        };
        let mut any_new = false;
        for (result, reply) in results.into_iter().zip(replies.drain(..)) {
            match &result {
                Ok((row, true)) => {
                    any_new = true;
                    bus.send(EngineEvent::EventPublished { event: row.clone() });
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "publishing an event failed"),
            }
            let _ = reply.send(result);
        }
        if any_new {
            wakeup.notify_one();
        }
        events.clear();
    }
}

/// Commits a batch; a busy database is retried briefly before the callers hear of it.
fn commit(store: &Store, events: &[NewEvent]) -> Result<Vec<(EventRow, bool)>, StoreError> {
    let mut delay = std::time::Duration::from_millis(20);
    let mut attempt = 1;
    loop {
        match store.bus().publish_batch(events) {
            Ok(rows) => return Ok(rows),
            Err(StoreError::Sqlite(e)) if attempt < 4 => {
                tracing::warn!(error = %e, attempt, "publishing events failed; retrying");
                std::thread::sleep(delay);
                delay *= 4;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
