//! The mirror of a cloud run in the local store. A run started with `cloud_execute` is stored
//! here under the cloud's execution id (trigger `cloud`) and followed through the cloud's client
//! stream (`CloudClient::stream(after, Some(id))`): each output line goes through the engine's
//! writer — stored, then broadcast — and each execution record updates the row and is announced
//! on the event bus, so the UI's execution view, `personas execution logs --follow` and the
//! event stream show it exactly like a local run. When the run ends the row holds its status,
//! cost and result.
//!
//! The journal number applied is kept in `cloud_mirrors` once what came before it is stored, so
//! a broken stream resumes after it (with a growing back-off), and a runtime that starts picks
//! up every mirror that had not ended ([`Api::resume_cloud_mirrors`]). Lines the row already
//! holds (by sequence number) are skipped, so a replay never shows a line twice.

use crate::Api;
use futures::StreamExt;
use personas_cloud_api::CloudClient;
use personas_cloud_api::stream::{ClientEvent, ClientFrame};
use personas_core::{Execution, ExecutionId};
use personas_engine::EngineEvent;
use personas_store::NewLine;
use std::time::Duration;

/// Back-off between attempts to reopen a broken stream.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Lines stored between two saves of the journal number.
const ADVANCE_EVERY: u32 = 200;

/// Where one mirror stands while it follows.
struct Progress {
    /// The last journal number whose effect is stored (or about to be, see `unsaved`).
    journal_seq: i64,
    /// The highest output line stored for the execution.
    line_seq: i64,
    /// Lines handed to the writer since the journal number was last saved.
    unsaved: u32,
}

impl Api {
    /// Follows every mirror that has not ended (a runtime calls this when it starts, and a
    /// new connection does), in the background.
    pub fn resume_cloud_mirrors(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let api = self.clone();
        handle.spawn(async move {
            let pending = match api.store(|s| s.cloud().pending()).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the cloud mirrors");
                    return;
                }
            };
            if pending.is_empty() {
                return;
            }
            let client = match api.cloud_client().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e.message, mirrors = pending.len(),
                        "cloud runs are not mirrored until the cloud is reachable");
                    return;
                }
            };
            for m in pending {
                if m.url.trim_end_matches('/') != client.url() {
                    let note = format!(
                        "started on {}, but this data dir is now connected to {}",
                        m.url,
                        client.url()
                    );
                    let id = m.execution_id.clone();
                    let _ = api.store(move |s| s.cloud().note_error(&id, &note)).await;
                    continue;
                }
                api.follow_mirror(client.clone(), m.execution_id, m.journal_seq);
            }
        });
    }

    /// Starts following one mirror from journal number `after` (once per process).
    pub(crate) fn follow_mirror(&self, client: CloudClient, id: ExecutionId, after: i64) {
        if !self.claim_mirror(&id) {
            return;
        }
        let api = self.clone();
        tokio::spawn(async move {
            api.mirror(&client, &id, after).await;
            api.release_mirror(&id);
        });
    }

    async fn mirror(&self, client: &CloudClient, id: &ExecutionId, after: i64) {
        let id2 = id.clone();
        let line_seq = match self.store(move |s| s.executions().get(&id2)).await {
            Ok(e) if e.status.is_terminal() => return,
            Ok(e) => i64::try_from(e.output_lines).unwrap_or(i64::MAX),
            Err(e) => {
                tracing::warn!(execution = %id, error = %e.message, "cannot mirror: no such row");
                return;
            }
        };
        let mut at = Progress {
            journal_seq: after,
            line_seq,
            unsaved: 0,
        };
        let mut wait = RETRY_FIRST;
        loop {
            match client.stream(at.journal_seq, Some(id.as_str())).await {
                Ok(frames) => {
                    let mut frames = std::pin::pin!(frames);
                    wait = RETRY_FIRST;
                    while let Some(frame) = frames.next().await {
                        match frame {
                            Ok(f) => {
                                if self.apply_frame(id, f, &mut at).await {
                                    self.save(id, &mut at).await;
                                    return;
                                }
                            }
                            Err(e) => {
                                self.note(id, &e.message).await;
                                break;
                            }
                        }
                    }
                    self.save(id, &mut at).await;
                }
                Err(e) => self.note(id, &e.message).await,
            }
            // The stream ended or broke before the run did: reopen it where it stopped.
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// Applies one frame; true when the run has ended (its final record is stored).
    async fn apply_frame(&self, id: &ExecutionId, frame: ClientFrame, at: &mut Progress) -> bool {
        match frame.event {
            ClientEvent::Output { line } if &line.execution_id == id => {
                if line.seq > at.line_seq {
                    at.line_seq = line.seq;
                    self.engine()
                        .writer()
                        .line(NewLine {
                            execution_id: id.clone(),
                            seq: line.seq,
                            kind: line.kind,
                            text: line.text,
                            at_ms: line.at.timestamp_millis(),
                        })
                        .await;
                    at.unsaved += 1;
                }
                at.journal_seq = at.journal_seq.max(frame.seq);
                if at.unsaved >= ADVANCE_EVERY {
                    self.save(id, at).await;
                }
                false
            }
            ClientEvent::Execution { execution } if &execution.execution.id == id => {
                // Its lines first, so the record never claims output the row does not hold.
                self.engine().writer().flush().await;
                let record: Execution = execution.execution;
                let ended = record.status.is_terminal();
                match self.store(move |s| s.cloud().apply(&record)).await {
                    Ok(Some(stored)) => self.engine().bus().send(EngineEvent::execution(&stored)),
                    Ok(None) => {}
                    Err(e) => {
                        self.note(id, &e.message).await;
                        return false;
                    }
                }
                at.journal_seq = at.journal_seq.max(frame.seq);
                self.save(id, at).await;
                ended
            }
            _ => {
                at.journal_seq = at.journal_seq.max(frame.seq);
                false
            }
        }
    }

    /// Stores the journal number once every line before it is stored.
    async fn save(&self, id: &ExecutionId, at: &mut Progress) {
        if at.unsaved > 0 {
            self.engine().writer().flush().await;
            at.unsaved = 0;
        }
        let (id2, seq) = (id.clone(), at.journal_seq);
        if let Err(e) = self.store(move |s| s.cloud().advance(&id2, seq)).await {
            tracing::warn!(execution = %id, error = %e.message, "cannot save a mirror's position");
        }
    }

    async fn note(&self, id: &ExecutionId, error: &str) {
        tracing::info!(execution = %id, error, "cloud mirror: the stream broke; resuming");
        let (id2, text) = (id.clone(), error.to_string());
        let _ = self.store(move |s| s.cloud().note_error(&id2, &text)).await;
    }
}
