//! Output persistence with group commit.
//!
//! Every runner hands its lines to one writer thread, which drains whatever has arrived and
//! commits it in a single transaction, then broadcasts the lines. With many concurrent runs
//! this turns thousands of tiny transactions into a few larger ones (SQLite has one writer at
//! a time anyway), and subscribers only ever see lines that are already stored.
//!
//! A batch that still fails after the retries is dropped: its lines are neither broadcast nor
//! counted as stored, and each execution that lost lines is remembered until its runner asks
//! ([`OutputWriter::flush_execution`]), so the run ends with an error saying so instead of
//! claiming output that is not there.

use crate::component::{Component, Running};
use crate::events::{EngineEvent, EventBus};
use crate::metrics::Event;
use chrono::{TimeZone, Utc};
use personas_core::{ExecutionId, OutputLine};
use personas_store::{NewLine, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

enum Cmd {
    Line(NewLine),
    Flush(oneshot::Sender<()>),
    /// Store what is queued, then stop (the engine is shutting down).
    Close,
}

/// Most lines committed in one transaction.
const MAX_BATCH: usize = 2_048;
/// Lines buffered before senders wait (back-pressure on runners, bounded memory).
const QUEUE_DEPTH: usize = 16_384;

/// Lines of one execution the writer could not store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{lines} output line(s) could not be stored ({error}); the stored output is incomplete")]
pub struct LostOutput {
    pub lines: u64,
    /// The last storage error.
    pub error: String,
}

type Lost = Arc<Mutex<HashMap<ExecutionId, LostOutput>>>;

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct OutputWriter {
    tx: mpsc::Sender<Cmd>,
    lost: Lost,
}

impl OutputWriter {
    /// Starts the writer thread. It stops when every handle is dropped, after writing what it
    /// was given.
    pub fn start(store: Store, bus: EventBus) -> (OutputWriter, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let lost = Lost::default();
        let handle = {
            let lost = Arc::clone(&lost);
            std::thread::Builder::new()
                .name("personas-output-writer".into())
                .spawn(move || run(store, bus, rx, lost))
                .unwrap_or_else(|e| panic!("cannot start the output writer thread: {e}"))
        };
        (OutputWriter { tx, lost }, handle)
    }

    /// Lines queued and not yet taken by the writer thread.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Asks the thread to store everything queued so far and stop; later lines are refused.
    pub async fn close(&self) {
        let _ = self.tx.send(Cmd::Close).await;
    }

    /// Queues a line; waits only when the writer is far behind.
    pub async fn line(&self, line: NewLine) {
        if self.tx.send(Cmd::Line(line)).await.is_err() {
            tracing::error!("output writer stopped; a line was not stored");
        }
    }

    /// Resolves once every line queued before it is committed and broadcast, or dropped.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Flushes, then tells whether any line of `execution` was dropped since the last call
    /// (the loss is reported once).
    pub async fn flush_execution(&self, execution: &ExecutionId) -> Result<(), LostOutput> {
        self.flush().await;
        match lock(&self.lost).remove(execution) {
            Some(lost) => Err(lost),
            None => Ok(()),
        }
    }
}

/// The writer as a component of a daemon: its thread already runs (one-shot runs need it too);
/// stopping it — last, after the runs — stores what is queued and ends the thread.
pub struct WriterComponent {
    writer: OutputWriter,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WriterComponent {
    pub fn new(writer: OutputWriter, thread: Option<std::thread::JoinHandle<()>>) -> Self {
        Self { writer, thread }
    }
}

impl Component for WriterComponent {
    fn name(&self) -> &'static str {
        "writer"
    }

    fn run(self: Box<Self>, stop: tokio_util::sync::CancellationToken) -> Running {
        Box::pin(async move {
            stop.cancelled().await;
            self.writer.close().await;
            if let Some(thread) = self.thread {
                let joined = tokio::task::spawn_blocking(move || thread.join()).await;
                if !matches!(joined, Ok(Ok(()))) {
                    tracing::error!("the output writer thread panicked");
                }
            }
        })
    }
}

fn lock(lost: &Lost) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, LostOutput>> {
    // Plain inserts and removes: a panic elsewhere cannot leave the map half-changed.
    lost.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(store: Store, bus: EventBus, mut rx: mpsc::Receiver<Cmd>, lost: Lost) {
    let mut lines: Vec<NewLine> = Vec::with_capacity(256);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Line(l) => lines.push(l),
                Cmd::Flush(f) => flushes.push(f),
                // Later sends fail; what is already queued is still received, then `None`.
                Cmd::Close => rx.close(),
            }
            if lines.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        let metrics = bus.metrics();
        if let Err(error) = commit(&store, &lines) {
            metrics.record(Event::OutputLinesLost {
                lines: lines.len() as u64,
            });
            // Not stored: not broadcast either; the runner learns of it at its flush.
            let mut lost = lock(&lost);
            for l in lines.drain(..) {
                let entry = lost.entry(l.execution_id).or_insert_with(|| LostOutput {
                    lines: 0,
                    error: error.clone(),
                });
                entry.lines += 1;
                entry.error.clone_from(&error);
            }
        }
        if !lines.is_empty() {
            metrics.record(Event::WriterBatchCommitted {
                lines: lines.len() as u64,
            });
        }
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
                    frame: None,
                },
            });
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

/// Commits a batch, retrying through transient failures (a locked database, a full disk being
/// cleared) rather than dropping output. Err: the batch was given up on (the last error).
fn commit(store: &Store, lines: &[NewLine]) -> Result<(), String> {
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.executions().append_output(lines) {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 8 => {
                tracing::warn!(error = %e, attempt, "storing output failed; retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, lines = lines.len(), "storing output failed; giving up on this batch");
                return Err(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_core::{LineKind, PersonaSpec};
    use personas_store::NewExecution;

    fn line(id: &ExecutionId, seq: i64) -> NewLine {
        NewLine {
            execution_id: id.clone(),
            seq,
            kind: LineKind::AssistantText,
            text: format!("line {seq}"),
            at_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_dropped_batch_is_neither_broadcast_nor_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_in_dir(dir.path()).expect("store");
        let p = store
            .personas()
            .create(&PersonaSpec::new("P", "Do it."))
            .expect("persona");
        let good = store
            .executions()
            .enqueue(&NewExecution::manual(p.id, None))
            .expect("queue")
            .id;
        let bus = EventBus::new();
        let mut seen = bus.subscribe();
        let (writer, _thread) = OutputWriter::start(store.clone(), bus);

        writer.line(line(&good, 1)).await;
        assert_eq!(writer.flush_execution(&good).await, Ok(()));

        // Lines of an execution the store has no row for can never be stored (foreign key):
        // after the retries the batch is dropped.
        let ghost = ExecutionId::from_string("no-such-execution");
        writer.line(line(&ghost, 1)).await;
        writer.line(line(&ghost, 2)).await;
        let lost = writer.flush_execution(&ghost).await.expect_err("lost");
        assert_eq!(lost.lines, 2);
        assert!(lost.to_string().contains("could not be stored"), "{lost}");
        assert_eq!(
            writer.flush_execution(&ghost).await,
            Ok(()),
            "reported once"
        );

        let mut broadcast = Vec::new();
        while let Ok(EngineEvent::Output { line }) = seen.try_recv() {
            broadcast.push((line.execution_id, line.seq));
        }
        assert_eq!(
            broadcast,
            vec![(good.clone(), 1)],
            "only stored lines go out"
        );
        assert_eq!(store.executions().get(&good).expect("get").output_lines, 1);
    }
}
