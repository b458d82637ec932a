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

/// What applying a frame leaves the mirror to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Read the next frame.
    More,
    /// The run ended and its final record is stored.
    Ended,
    /// Something here failed (the store, the writer stopping with the runtime): stop without
    /// moving the saved position past it, so whoever follows next replays from there.
    Stop,
}

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
                            Ok(f) => match self.apply_frame(id, f, &mut at).await {
                                Next::More => {}
                                Next::Ended | Next::Stop => return,
                            },
                            Err(e) => {
                                self.note(id, &e.message).await;
                                break;
                            }
                        }
                    }
                    if !self.save(id, &mut at).await {
                        return;
                    }
                }
                // The cloud does not know it (another tenant's token now, or deleted):
                // following again cannot help; the row says why.
                Err(e) if e.code == personas_cloud_api::CloudErrorCode::NotFound => {
                    self.note(id, &e.message).await;
                    return;
                }
                Err(e) => self.note(id, &e.message).await,
            }
            // The stream ended or broke before the run did: reopen it where it stopped.
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// Applies one frame.
    async fn apply_frame(&self, id: &ExecutionId, frame: ClientFrame, at: &mut Progress) -> Next {
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
                if at.unsaved >= ADVANCE_EVERY && !self.save(id, at).await {
                    return Next::Stop;
                }
                Next::More
            }
            ClientEvent::Execution { execution } if &execution.execution.id == id => {
                // Its lines first, so the record never claims output the row does not hold.
                if !self.lines_stored(id, at).await {
                    return Next::Stop;
                }
                let record: Execution = execution.execution;
                let ended = record.status.is_terminal();
                match self.store(move |s| s.cloud().apply(&record)).await {
                    Ok(Some(stored)) => self.engine().bus().send(EngineEvent::execution(&stored)),
                    Ok(None) => {}
                    Err(e) => {
                        self.note(id, &e.message).await;
                        return Next::Stop;
                    }
                }
                at.journal_seq = at.journal_seq.max(frame.seq);
                match (self.save(id, at).await, ended) {
                    (false, _) => Next::Stop,
                    (true, true) => Next::Ended,
                    (true, false) => Next::More,
                }
            }
            _ => {
                at.journal_seq = at.journal_seq.max(frame.seq);
                Next::More
            }
        }
    }

    /// Waits until the lines handed to the writer are stored; false if they were not (the
    /// writer stopped with its runtime, or dropped a batch it could not store).
    async fn lines_stored(&self, id: &ExecutionId, at: &mut Progress) -> bool {
        if at.unsaved == 0 {
            return true;
        }
        let writer = self.engine().writer();
        let lost = writer.flush_execution(id).await.is_err();
        at.unsaved = 0;
        let id2 = id.clone();
        let held = match self.store(move |s| s.executions().get(&id2)).await {
            Ok(e) => i64::try_from(e.output_lines).unwrap_or(i64::MAX),
            Err(_) => return false,
        };
        if lost || held < at.line_seq {
            tracing::warn!(execution = %id, held, expected = at.line_seq,
                "cloud mirror: lines were not stored; stopping here to replay them later");
            return false;
        }
        true
    }

    /// Saves the journal number once every line before it is stored; false if they were not
    /// or the position could not be saved.
    async fn save(&self, id: &ExecutionId, at: &mut Progress) -> bool {
        if !self.lines_stored(id, at).await {
            return false;
        }
        let (id2, seq) = (id.clone(), at.journal_seq);
        match self.store(move |s| s.cloud().advance(&id2, seq)).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(execution = %id, error = %e.message, "cannot save a mirror's position");
                false
            }
        }
    }

    async fn note(&self, id: &ExecutionId, error: &str) {
        tracing::info!(execution = %id, error, "cloud mirror: the stream broke; resuming");
        let (id2, text) = (id.clone(), error.to_string());
        let _ = self.store(move |s| s.cloud().note_error(&id2, &text)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostInfo;
    use chrono::Utc;
    use personas_cloud_api::model::{CloudExecution, CloudLine};
    use personas_core::{ExecutionStatus, LineKind, PersonaSpec};
    use personas_engine::EngineConfig;
    use personas_engine::vault::VaultOptions;
    use personas_store::NewExecution;
    use tokio::sync::broadcast::error::TryRecvError;

    fn frame(seq: i64, event: ClientEvent) -> ClientFrame {
        ClientFrame { seq, event }
    }

    fn record(e: &Execution) -> ClientEvent {
        ClientEvent::Execution {
            execution: Box::new(CloudExecution {
                execution: e.clone(),
                attempt: 1,
                max_attempts: 3,
                worker_id: Some("w-1".into()),
                dead_letter_reason: None,
                attempts: vec![],
            }),
        }
    }

    fn line(id: &ExecutionId, seq: i64, text: &str) -> ClientEvent {
        ClientEvent::Output {
            line: CloudLine {
                execution_id: id.clone(),
                seq,
                attempt: 1,
                kind: LineKind::AssistantText,
                text: text.into(),
                at: Utc::now(),
            },
        }
    }

    /// The frames of one cloud run: started, three lines, completed.
    fn run_frames(cloud: &Execution) -> Vec<ClientFrame> {
        let mut running = cloud.clone();
        running.status = ExecutionStatus::Running;
        running.started_at = Some(Utc::now());
        let mut done = running.clone();
        done.status = ExecutionStatus::Completed;
        done.finished_at = Some(Utc::now());
        done.cost_usd = 0.25;
        done.result_text = Some("notes written".into());
        vec![
            frame(11, record(&running)),
            frame(12, line(&cloud.id, 1, "one")),
            frame(13, line(&cloud.id, 2, "two")),
            frame(14, line(&cloud.id, 3, "three")),
            frame(15, record(&done)),
        ]
    }

    #[tokio::test]
    async fn a_cloud_run_becomes_a_local_execution_in_order_and_a_replay_changes_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let config = EngineConfig::load(dir.path(), |_| None).expect("config");
        let api = Api::open(config, VaultOptions::default(), HostInfo::default()).expect("api");
        let store = api.engine().store().clone();
        let persona = store
            .personas()
            .create(&PersonaSpec::new("Writer", "write release notes"))
            .expect("persona");
        // A local run queued too: the queue must take it and never the mirror.
        let local = store
            .executions()
            .enqueue(&NewExecution::manual(persona.id.clone(), None))
            .expect("local");
        let mut cloud = local.clone();
        cloud.id = ExecutionId::new();
        let mirror = store
            .cloud()
            .insert_mirror(&cloud, "http://127.0.0.1:9")
            .expect("mirror");
        assert_eq!(
            (mirror.status, mirror.trigger, mirror.persona_id.clone()),
            (
                ExecutionStatus::Queued,
                personas_core::TriggerKind::Cloud,
                persona.id.clone()
            )
        );
        let mut events = api.engine().subscribe();
        let mut at = Progress {
            journal_seq: 0,
            line_seq: 0,
            unsaved: 0,
        };
        let frames = run_frames(&cloud);
        let mut ended = Vec::new();
        for f in frames.clone() {
            ended.push(api.apply_frame(&cloud.id, f, &mut at).await);
        }
        assert_eq!(
            ended,
            [Next::More, Next::More, Next::More, Next::More, Next::Ended]
        );
        // The store holds it like a local run: status, result, cost, lines in order.
        let stored = store.executions().get(&cloud.id).expect("row");
        assert_eq!(stored.status, ExecutionStatus::Completed);
        assert_eq!(stored.result_text.as_deref(), Some("notes written"));
        assert_eq!((stored.cost_usd, stored.output_lines), (0.25, 3));
        let texts: Vec<String> = store
            .executions()
            .output(&cloud.id, 0, 10)
            .expect("output")
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(
            store.cloud().mirror_state(&cloud.id).expect("state"),
            Some((15, true, None))
        );
        // ... and announced it like one: running, the lines, completed, in that order.
        let mut seen = Vec::new();
        loop {
            match events.try_recv() {
                Ok(EngineEvent::Execution { execution }) if execution.id == cloud.id => {
                    seen.push(execution.status.to_string())
                }
                Ok(EngineEvent::Output { line }) if line.execution_id == cloud.id => {
                    seen.push(line.text)
                }
                Ok(_) => {}
                Err(TryRecvError::Empty) => break,
                Err(e) => panic!("events: {e}"),
            }
        }
        assert_eq!(seen, ["running", "one", "two", "three", "completed"]);
        // A resumed stream replays what was applied: nothing is stored or announced twice,
        // and a late record cannot move the ended run back.
        let mut again = Progress {
            journal_seq: 0,
            line_seq: i64::try_from(stored.output_lines).expect("fits"),
            unsaved: 0,
        };
        for f in frames {
            api.apply_frame(&cloud.id, f, &mut again).await;
        }
        api.engine().writer().flush().await;
        assert!(matches!(events.try_recv(), Err(TryRecvError::Empty)));
        assert_eq!(store.executions().get(&cloud.id).expect("row"), stored);
        // No local process takes, counts or recovers the mirror.
        let taken = store.executions().claim_next(1, "me:1").expect("claim");
        assert_eq!(taken.map(|e| e.id), Some(local.id.clone()));
        let recovered = store
            .executions()
            .recover_interrupted(&|_, _| false)
            .expect("recover");
        let recovered: Vec<&ExecutionId> = recovered.iter().map(|e| &e.id).collect();
        assert_eq!(recovered, [&local.id]);
        assert!(store.cloud().pending().expect("pending").is_empty());
    }

    #[tokio::test]
    async fn a_running_mirror_is_not_claimed_recovered_or_counted_against_the_limit() {
        let dir = tempfile::tempdir().expect("dir");
        let store = personas_store::Store::open_in_dir(dir.path()).expect("store");
        let persona = store
            .personas()
            .create(&PersonaSpec::new("Writer", "write"))
            .expect("persona");
        let local = store
            .executions()
            .enqueue(&NewExecution::manual(persona.id.clone(), None))
            .expect("local");
        let mut cloud = local.clone();
        cloud.id = ExecutionId::new();
        store
            .cloud()
            .insert_mirror(&cloud, "http://127.0.0.1:9")
            .expect("mirror");
        cloud.status = ExecutionStatus::Running;
        cloud.started_at = Some(Utc::now());
        store.cloud().apply(&cloud).expect("running");
        // A limit of one running execution: the running mirror does not use it up.
        let taken = store.executions().claim_next(1, "me:1").expect("claim");
        assert_eq!(taken.map(|e| e.id), Some(local.id.clone()));
        let recovered = store
            .executions()
            .recover_interrupted(&|_, _| false)
            .expect("recover");
        assert!(recovered.iter().all(|e| e.id != cloud.id));
        assert_eq!(
            store.executions().get(&cloud.id).expect("row").status,
            ExecutionStatus::Running
        );
        let pending = store.cloud().pending().expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].execution_id.clone(), pending[0].journal_seq),
            (cloud.id, 0)
        );
    }

    #[tokio::test]
    async fn lines_the_writer_could_not_store_are_not_skipped_on_resume() {
        let dir = tempfile::tempdir().expect("dir");
        let config = EngineConfig::load(dir.path(), |_| None).expect("config");
        let api = Api::open(config, VaultOptions::default(), HostInfo::default()).expect("api");
        let store = api.engine().store().clone();
        let persona = store
            .personas()
            .create(&PersonaSpec::new("Writer", "write"))
            .expect("persona");
        let mut cloud = store
            .executions()
            .enqueue(&NewExecution::manual(persona.id.clone(), None))
            .expect("local");
        cloud.id = ExecutionId::new();
        store
            .cloud()
            .insert_mirror(&cloud, "http://127.0.0.1:9")
            .expect("mirror");
        // The runtime is stopping: its writer takes nothing more.
        api.engine().writer().close().await;
        let mut at = Progress {
            journal_seq: 0,
            line_seq: 0,
            unsaved: 0,
        };
        let frames = run_frames(&cloud);
        let mut next = Vec::new();
        for f in frames {
            next.push(api.apply_frame(&cloud.id, f, &mut at).await);
        }
        // The first record applies (no lines before it); the end is not recorded over lines
        // that are not there, and the saved position stays before them.
        assert_eq!(next[0], Next::More);
        assert_eq!(next[4], Next::Stop);
        let row = store.executions().get(&cloud.id).expect("row");
        assert_eq!(
            (row.status, row.output_lines),
            (ExecutionStatus::Running, 0)
        );
        assert_eq!(
            store.cloud().mirror_state(&cloud.id).expect("state"),
            Some((11, false, None))
        );
    }
}
