//! Output persistence with group commit.
//!
//! Every runner hands its lines to one writer thread, which drains whatever has arrived and
//! commits it in a single transaction, then broadcasts the lines. With many concurrent runs
//! this turns thousands of tiny transactions into a few larger ones (SQLite has one writer at
//! a time anyway), and subscribers only ever see lines that are already stored.

use crate::events::{EngineEvent, EventBus};
use chrono::{TimeZone, Utc};
use personas_core::OutputLine;
use personas_store::{NewLine, Store};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

enum Cmd {
    Line(NewLine),
    Flush(oneshot::Sender<()>),
}

/// Most lines committed in one transaction.
const MAX_BATCH: usize = 2_048;
/// Lines buffered before senders wait (back-pressure on runners, bounded memory).
const QUEUE_DEPTH: usize = 16_384;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct OutputWriter {
    tx: mpsc::Sender<Cmd>,
}

impl OutputWriter {
    /// Starts the writer thread. It stops when every handle is dropped, after writing what it
    /// was given.
    pub fn start(store: Store, bus: EventBus) -> (OutputWriter, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let handle = std::thread::Builder::new()
            .name("personas-output-writer".into())
            .spawn(move || run(store, bus, rx))
            .unwrap_or_else(|e| panic!("cannot start the output writer thread: {e}"));
        (OutputWriter { tx }, handle)
    }

    /// Queues a line; waits only when the writer is far behind.
    pub async fn line(&self, line: NewLine) {
        if self.tx.send(Cmd::Line(line)).await.is_err() {
            tracing::error!("output writer stopped; a line was not stored");
        }
    }

    /// Resolves once every line queued before it is committed and broadcast.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

fn run(store: Store, bus: EventBus, mut rx: mpsc::Receiver<Cmd>) {
    let mut lines: Vec<NewLine> = Vec::with_capacity(256);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Line(l) => lines.push(l),
                Cmd::Flush(f) => flushes.push(f),
            }
            if lines.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        commit(&store, &lines);
        for l in lines.drain(..) {
            bus.send(EngineEvent::Output {
                line: OutputLine {
                    execution_id: l.execution_id,
                    seq: l.seq,
                    kind: l.kind,
                    text: l.text,
                    at: Utc
                        .timestamp_millis_opt(l.at_ms)
                        .single()
                        .unwrap_or_else(Utc::now),
                },
            });
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

/// Commits a batch, retrying through transient failures (a locked database, a full disk being
/// cleared) rather than dropping output.
fn commit(store: &Store, lines: &[NewLine]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1.. {
        match store.executions().append_output(lines) {
            Ok(()) => return,
            Err(e) if attempt < 8 => {
                tracing::warn!(error = %e, attempt, "storing output failed; retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, lines = lines.len(), "storing output failed; giving up on this batch");
                return;
            }
        }
    }
}
