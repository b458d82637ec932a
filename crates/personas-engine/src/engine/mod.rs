//! The engine: wires the runner, queue, writer, reaper, bus dispatcher and scheduler around one
//! store and one event channel, and keeps running executions accounted for.
//!
//! Two ways to host it:
//! - [`Engine::start`] for a daemon (`personas up`, the desktop app): crash recovery, then the
//!   components (see [`crate::component`]; the queue's runner pool, heartbeat, reaper, bus
//!   dispatcher, scheduler, …) run until [`Engine::shutdown`] stops them in reverse order. The
//!   engine's own components are in `loops`.
//! - [`Engine::run_foreground`] for a one-shot `personas run --follow` with no daemon: claims and
//!   runs one execution in this process, with the same heartbeats.
//!
//! Every running execution is owned by `<pid>:<instance>`. Owners stamp their executions every
//! heartbeat; an execution whose owner process is gone (or silent past `stale_after`) is marked
//! failed/interrupted and its leftover processes are killed — at start-up and periodically.

mod loops;

use crate::bus::{self, Dispatcher, Publisher};
use crate::component::{Component, Host};
use crate::component::{Wake, due_in, sleep_until};
use crate::config::EngineConfig;
use crate::events::{EngineEvent, EventBus};
use crate::metrics::{Event, Metrics};
use crate::reaper;
use crate::runner::{self, Runtime, blocking};
use crate::scheduler::Scheduler;
use crate::vault::{VaultCell, VaultOptions};
use crate::writer::OutputWriter;
use chrono::{DateTime, Utc};
use personas_core::{Execution, ExecutionId, ExecutionStatus};
use personas_store::{EventRow, GlobalCaps, NewEvent, NewExecution, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Publish(#[from] bus::PublishError),
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    rt: Runtime,
    owner: String,
    queue_wakeup: Arc<Notify>,
    /// Woken when triggers change (the scheduler reloads them).
    scheduler_wakeup: Arc<Notify>,
    /// `true` while cron firing is paused (the desktop tray's "Pause scheduler").
    scheduler_paused: tokio::sync::watch::Sender<bool>,
    publisher: Publisher,
    running: Mutex<HashMap<ExecutionId, CancellationToken>>,
    /// Cancelled when shutdown begins: no new work is taken, foreground runs are interrupted.
    shutdown: CancellationToken,
    /// The components [`Engine::start`] started.
    host: Host,
    /// The writer's thread until [`Engine::start`] hands it to the writer component.
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Engine {
    /// Builds an engine over an open store. Nothing runs until [`Engine::start`] or
    /// [`Engine::run_foreground`].
    pub fn new(config: EngineConfig, store: Store) -> Engine {
        let vault = VaultOptions::from_env(|k| std::env::var(k).ok());
        Engine::with_vault(config, store, vault)
    }

    /// As [`Engine::new`], with the vault's key sources given instead of read from the
    /// environment (`PERSONAS_VAULT_PASSPHRASE`, `PERSONAS_VAULT_KEYCHAIN`).
    pub fn with_vault(config: EngineConfig, store: Store, vault: VaultOptions) -> Engine {
        let bus = EventBus::new();
        // The writer thread runs from here (a one-shot run needs it without a daemon); it ends
        // when the writer component is stopped, or by itself once the last handle is dropped.
        let (writer, writer_thread) = OutputWriter::start(store.clone(), bus.clone());
        let owner = format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let bus_wakeup = Arc::new(Notify::new());
        let publisher = Publisher::start(store.clone(), bus.clone(), Arc::clone(&bus_wakeup));
        Engine {
            inner: Arc::new(Inner {
                rt: Runtime {
                    config: Arc::new(config),
                    store,
                    bus,
                    writer,
                    vault: Arc::new(VaultCell::new(vault)),
                    bus_wakeup,
                },
                owner,
                queue_wakeup: Arc::new(Notify::new()),
                scheduler_wakeup: Arc::new(Notify::new()),
                scheduler_paused: tokio::sync::watch::Sender::new(false),
                publisher,
                running: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                host: Host::new(),
                writer_thread: Mutex::new(Some(writer_thread)),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.rt.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.rt.config
    }

    /// The credential vault this engine's runs use (unlocked at most once per process).
    pub fn vault(&self) -> &Arc<VaultCell> {
        &self.inner.rt.vault
    }

    /// This process's owner tag for running executions.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.inner.rt.bus.subscribe()
    }

    /// Sending half of the event channel, for components hosted beside the engine.
    pub fn bus(&self) -> &EventBus {
        &self.inner.rt.bus
    }

    /// Notified whenever a run publishes a bus event.
    pub fn bus_wakeup(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.rt.bus_wakeup)
    }

    /// Recovers from a previous crash, then starts the components (see [`crate::component`]):
    /// the writer, heartbeat, runner pool, bus dispatcher, scheduler, review timeouts,
    /// notification delivery, reaper, healing sweep and retention. [`Engine::shutdown`] stops
    /// them in reverse order.
    pub async fn start(&self) -> Result<(), EngineError> {
        self.recover().await?;
        self.seal_legacy_webhook_secrets().await;
        crate::healing::sweep(&self.inner.rt).await;
        let mut dispatcher = Dispatcher::new(
            self.store().clone(),
            self.bus().clone(),
            Arc::clone(&self.inner.rt.config),
            self.inner.owner.clone(),
        );
        // Before dispatching: events a crashed dispatcher held, chain steps a crash lost.
        let (store, events) = (self.store().clone(), self.bus().clone());
        let dispatcher = blocking(move || {
            dispatcher.reap_orphaned()?;
            bus::chain::recover(&store, &events)?;
            Ok::<_, StoreError>(dispatcher)
        })
        .await?;
        let scheduler = Scheduler::new(
            self.store().clone(),
            self.bus().clone(),
            Arc::clone(&self.inner.rt.config),
            self.inner.publisher.clone(),
            Arc::clone(&self.inner.rt.bus_wakeup),
        )
        .arm()
        .await;
        let writer_thread = self
            .inner
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let rt = &self.inner.rt;
        // Start order; they stop in reverse: the writer outlives the runs, the heartbeat
        // keeps stamping while the runs stop.
        let components: Vec<Box<dyn Component>> = vec![
            Box::new(crate::writer::WriterComponent::new(
                rt.writer.clone(),
                writer_thread,
            )),
            Box::new(loops::Heartbeat {
                engine: self.clone(),
            }),
            Box::new(loops::RunnerPool {
                engine: self.clone(),
            }),
            Box::new(bus::dispatcher::DispatcherComponent {
                dispatcher,
                wakeup: Arc::clone(&rt.bus_wakeup),
                delivered: Arc::clone(&self.inner.queue_wakeup),
            }),
            Box::new(crate::scheduler::SchedulerComponent {
                scheduler,
                changes: Arc::clone(&self.inner.scheduler_wakeup),
                paused: self.inner.scheduler_paused.subscribe(),
            }),
            Box::new(crate::review::ReviewTimeouts {
                rt: rt.clone(),
                queue_wakeup: Arc::clone(&self.inner.queue_wakeup),
            }),
            Box::new(crate::delivery::Delivery {
                rt: rt.clone(),
                owner: self.inner.owner.clone(),
            }),
            Box::new(loops::Reaper {
                engine: self.clone(),
            }),
            Box::new(loops::Healing {
                engine: self.clone(),
            }),
            Box::new(crate::retention::Retention { rt: rt.clone() }),
        ];
        self.inner.host.start(components);
        Ok(())
    }

    /// Publishes a bus event (durable on return, group-committed with concurrent publishers)
    /// and wakes the dispatcher. Returns the earlier event when its dedupe key is known.
    pub async fn publish(&self, event: NewEvent) -> Result<EventRow, EngineError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        Ok(self.inner.publisher.publish(event).await?.0)
    }

    /// As [`Engine::publish`], with whether the event is new: `false` when its dedupe key was
    /// published before (the earlier event is returned and nothing is stored).
    pub async fn publish_once(&self, event: NewEvent) -> Result<(EventRow, bool), EngineError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        Ok(self.inner.publisher.publish(event).await?)
    }

    /// Pauses or resumes cron firing. While paused no cron trigger fires; on resume, the times
    /// missed meanwhile follow each trigger's missed-run policy, exactly as after downtime.
    /// Webhooks, events and chains keep working: pausing the scheduler is not pausing the bus.
    pub fn set_scheduler_paused(&self, paused: bool) {
        self.inner.scheduler_paused.send_replace(paused);
    }

    /// Whether cron firing is paused.
    pub fn scheduler_paused(&self) -> bool {
        *self.inner.scheduler_paused.borrow()
    }

    /// Tells the scheduler that triggers were added, changed or removed.
    pub fn triggers_changed(&self) {
        self.inner.scheduler_wakeup.notify_one();
    }

    /// Decides a pending review of a paused run: the run resumes its Claude session with the
    /// decision (or ends, per the persona's `on_reject`). Refused with a `Conflict` naming why
    /// when the review is not pending or its run has not paused.
    pub async fn decide_review(
        &self,
        id_or_prefix: &str,
        decision: personas_core::review::Decision,
        note: Option<String>,
    ) -> Result<personas_store::Decided, EngineError> {
        let decided = crate::review::decide(&self.inner.rt, id_or_prefix, decision, note).await?;
        if decided.effect == personas_store::Effect::Resumed {
            self.inner.queue_wakeup.notify_one();
        }
        Ok(decided)
    }

    /// Spending caps from the configuration, checked at admission.
    fn caps(&self) -> GlobalCaps {
        GlobalCaps {
            daily_usd: self.config().budget.daily_usd,
            monthly_usd: self.config().budget.monthly_usd,
        }
    }

    /// Announces executions admission refused, and books them (metrics).
    async fn announce_refused(&self, refused: Vec<Execution>) {
        for e in refused {
            tracing::info!(execution = %e.id, reason = ?e.error_message, "execution refused at admission");
            self.inner.rt.bus.send(EngineEvent::execution(&e));
            crate::healing::after_finish(&self.inner.rt, &e.id).await;
        }
    }

    /// Queues a run (durable on return) and wakes the queue.
    pub async fn enqueue(&self, new: NewExecution) -> Result<Execution, EngineError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        let store = self.store().clone();
        let exec = blocking(move || store.executions().enqueue(&new)).await?;
        self.inner.rt.bus.send(EngineEvent::execution(&exec));
        self.inner.queue_wakeup.notify_one();
        Ok(exec)
    }

    /// Wakes the queue, the bus dispatcher and the scheduler, e.g. after another process
    /// queued work, published events or changed triggers.
    pub fn wake(&self) {
        self.inner.queue_wakeup.notify_one();
        self.inner.rt.bus_wakeup.notify_one();
        self.inner.scheduler_wakeup.notify_one();
    }

    /// Cancels an execution: a queued one at once; a running one is interrupted by whichever
    /// process owns it (this one immediately, another within a heartbeat).
    pub async fn cancel(&self, id: &ExecutionId) -> Result<Execution, EngineError> {
        let store = self.store().clone();
        let id2 = id.clone();
        let exec = blocking(move || store.executions().request_cancel(&id2)).await?;
        if let Some(token) = self.lock_running().get(id) {
            token.cancel();
        }
        if exec.status.is_terminal() {
            self.inner.rt.bus.send(EngineEvent::execution(&exec));
        }
        Ok(exec)
    }

    /// Runs one queued execution in this process (no daemon), waiting for a free slot under
    /// the global and per-persona limits. Returns the finished execution.
    pub async fn run_foreground(&self, id: &ExecutionId) -> Result<Execution, EngineError> {
        self.run_queued(id, runner::RunOptions::default(), CancellationToken::new())
            .await
    }

    /// As [`Engine::run_foreground`], with what the host supplies to the run
    /// ([`runner::RunOptions`]: credentials opened elsewhere, an output tap) and its own cancel
    /// token — how a cloud worker runs an assignment.
    pub async fn run_queued(
        &self,
        id: &ExecutionId,
        options: runner::RunOptions,
        cancel: CancellationToken,
    ) -> Result<Execution, EngineError> {
        let mut options = Some(options);
        let stop_heartbeat = CancellationToken::new();
        let heartbeat = tokio::spawn(
            Box::new(loops::Heartbeat {
                engine: self.clone(),
            })
            .run(stop_heartbeat.clone()),
        );
        let result = async {
            let limit = self.config().max_concurrent;
            loop {
                let (store, owner, id2) =
                    (self.store().clone(), self.inner.owner.clone(), id.clone());
                let caps = self.caps();
                let admitted =
                    blocking(move || store.executions().admit(&id2, limit, &owner, &caps)).await?;
                if let Some(exec) = admitted.started {
                    let stops = runner::StopSignals {
                        cancel: cancel.clone(),
                        shutdown: self.inner.shutdown.clone(),
                    };
                    let options = options.take().unwrap_or_default();
                    return Ok(self.run_claimed_with(exec, stops, options).await);
                }
                if let Some(refused) = admitted.refused.first().cloned() {
                    self.announce_refused(admitted.refused).await;
                    return Ok(refused);
                }
                let store = self.store().clone();
                let id2 = id.clone();
                let current = blocking(move || store.executions().get(&id2)).await?;
                if current.status != ExecutionStatus::Queued {
                    // Someone else ran or cancelled it meanwhile.
                    return Ok(current);
                }
                let poll = Duration::from_millis(self.config().queue_poll_ms);
                let woken = self.inner.queue_wakeup.notified();
                if sleep_until(due_in(poll), woken, &self.inner.shutdown).await == Wake::Stop {
                    return Err(EngineError::ShuttingDown);
                }
            }
        }
        .await;
        stop_heartbeat.cancel();
        let _ = heartbeat.await;
        result
    }

    /// Runs an admitted execution; `shutdown` interrupts it (its host is stopping).
    async fn run_claimed(&self, exec: Execution, shutdown: CancellationToken) -> Execution {
        let stops = runner::StopSignals {
            cancel: CancellationToken::new(),
            shutdown,
        };
        self.run_claimed_with(exec, stops, runner::RunOptions::default())
            .await
    }

    async fn run_claimed_with(
        &self,
        exec: Execution,
        stops: runner::StopSignals,
        options: runner::RunOptions,
    ) -> Execution {
        self.lock_running()
            .insert(exec.id.clone(), stops.cancel.clone());
        self.inner.rt.bus.send(EngineEvent::execution(&exec));
        let id = exec.id.clone();
        let done = runner::run_with(&self.inner.rt, exec, stops, options).await;
        self.lock_running().remove(&id);
        self.inner.queue_wakeup.notify_one();
        self.chain(&done).await;
        done
    }

    /// Fires the chain triggers waiting for this execution's persona. Should this fail (or the
    /// process die first), start-up recovery publishes what is missing.
    async fn chain(&self, done: &Execution) {
        if !done.status.is_terminal() {
            return;
        }
        let (store, events, exec) = (self.store().clone(), self.bus().clone(), done.clone());
        match blocking(move || bus::chain::on_execution_end(&store, &events, &exec)).await {
            Ok(published) if !published.is_empty() => self.inner.rt.bus_wakeup.notify_one(),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(execution = %done.id, error = %e, "cannot publish chain events")
            }
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<ExecutionId, CancellationToken>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.inner.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of executions this process is running now.
    pub fn running_count(&self) -> usize {
        self.lock_running().len()
    }

    /// One heartbeat: stamps our running executions alive and cancels those another process
    /// asked to cancel.
    async fn beat(&self) {
        let (store, owner) = (self.store().clone(), self.inner.owner.clone());
        match blocking(move || store.executions().heartbeat(&owner)).await {
            Ok(cancelled) => {
                let running = self.lock_running();
                for id in cancelled {
                    if let Some(t) = running.get(&id) {
                        t.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }

    /// Marks executions of vanished owners failed/interrupted and kills their processes.
    async fn recover(&self) -> Result<(), EngineError> {
        self.remove_stale_mcp_configs().await;
        self.remove_orphaned_transcripts().await;
        let store = self.store().clone();
        let me = self.clone();
        let recovered = blocking(move || {
            store
                .executions()
                .recover_interrupted(&|owner, hb| me.owner_alive(owner, hb))
        })
        .await?;
        if recovered.is_empty() {
            return Ok(());
        }
        let metrics = self.metrics();
        metrics.record(Event::ExecutionsRecovered {
            count: recovered.len() as u64,
        });
        let ids: Vec<String> = recovered.iter().map(|e| e.id.to_string()).collect();
        let reaped = blocking(move || {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            reaper::reap(&refs)
        })
        .await;
        if reaped > 0 {
            metrics.record(Event::ReapedProcesses {
                count: reaped as u64,
            });
        }
        for e in &recovered {
            self.inner.rt.bus.send(EngineEvent::execution(e));
        }
        Ok(())
    }

    /// Moves webhook keys kept in plaintext by schema versions before 5 into the vault. When
    /// the vault cannot be opened, says how to fix it and carries on: those webhooks answer
    /// 503 until their key is sealed (or rotated).
    async fn seal_legacy_webhook_secrets(&self) {
        let store = self.store().clone();
        let cell = Arc::clone(self.vault());
        let moved = tokio::task::spawn_blocking(move || {
            crate::triggers::seal_legacy_secrets(&store, &mut || cell.get_or_create(&store))
        })
        .await;
        match moved {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(count = n, "moved webhook secrets into the vault"),
            Ok(Err(e)) => {
                let hint = match &e {
                    crate::credentials::CredentialError::Vault(v) => {
                        crate::vault::fix_hint(v).unwrap_or("")
                    }
                    _ => "",
                };
                tracing::warn!(
                    error = %e,
                    hint,
                    "webhook secrets from an older version are still in plaintext; their \
                     webhooks are refused until they can be moved into the vault"
                );
            }
            Err(e) => tracing::warn!(error = %e, "sealing old webhook secrets failed"),
        }
    }

    /// Removes MCP config files of executions no longer running (left by a crash; their tokens
    /// stopped working when the execution stopped running, but the files should not linger).
    async fn remove_stale_mcp_configs(&self) {
        let dir = self.config().run_dir();
        let store = self.store().clone();
        blocking(move || {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(id) = name.strip_suffix(".mcp.json") else {
                    continue;
                };
                let running = store
                    .executions()
                    .get(&ExecutionId::from_string(id))
                    .map(|e| !e.status.is_terminal() && e.status != ExecutionStatus::Queued)
                    .unwrap_or(false);
                if !running {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        })
        .await;
    }

    /// Removes the CLI session files of executions the store no longer has (deleted with their
    /// persona); the others go with their execution's retention.
    async fn remove_orphaned_transcripts(&self) {
        let data_dir = self.config().data_dir.clone();
        let store = self.store().clone();
        let purged = blocking(move || {
            crate::transcripts::purge_orphaned_transcripts(&data_dir, |id| {
                !matches!(
                    store.executions().get(&ExecutionId::from_string(id)),
                    Err(personas_store::StoreError::NotFound { .. })
                )
            })
        })
        .await;
        if let Err(e) = purged {
            tracing::warn!(error = %e, "cannot remove orphaned CLI session files");
        }
    }

    fn owner_alive(&self, owner: &str, heartbeat: Option<DateTime<Utc>>) -> bool {
        if owner == self.inner.owner {
            return true;
        }
        let Some(pid) = owner.split(':').next().and_then(|p| p.parse::<u32>().ok()) else {
            return false;
        };
        // Same pid, other instance: an earlier incarnation of this process (pid reuse after a
        // restart, common in containers).
        if pid == std::process::id() || !reaper::pid_alive(pid) {
            return false;
        }
        let stale = chrono::Duration::seconds(self.config().stale_after_secs as i64);
        heartbeat.is_some_and(|hb| Utc::now() - hb < stale)
    }

    /// Stops claiming work, interrupts running executions (recorded as failed/interrupted by
    /// the shutdown), waits for them, and flushes output.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.host.stop().await;
        // Without a daemon (no writer component), what one-shot runs queued is flushed here.
        self.inner.rt.writer.flush().await;
    }

    /// The names of the components running now, in start order (empty before [`Engine::start`]
    /// and after [`Engine::shutdown`]).
    pub fn components(&self) -> Vec<&'static str> {
        self.inner.host.names()
    }

    /// The engine's counters (see [`crate::metrics`]).
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.inner.rt.bus.metrics()
    }

    /// The engine's gauges now.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            running_executions: self.running_count() as u64,
            writer_queue_depth: self.inner.rt.writer.queued() as u64,
            subscribers: self.inner.rt.bus.subscribers() as u64,
        }
    }
}

/// Point-in-time values of this engine (the store's counts are read by the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    /// Executions this process is running.
    pub running_executions: u64,
    /// Output lines waiting for the writer.
    pub writer_queue_depth: u64,
    /// Subscribers of the engine's event channel.
    pub subscribers: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_core::PersonaSpec;

    #[tokio::test]
    async fn start_runs_every_component_and_shutdown_stops_them_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_in_dir(dir.path()).expect("store");
        let persona = store
            .personas()
            .create(&PersonaSpec::new("P", "Do it."))
            .expect("persona");
        let engine = Engine::with_vault(
            EngineConfig::for_data_dir(dir.path()),
            store,
            VaultOptions::default(),
        );
        assert!(engine.components().is_empty(), "nothing runs before start");
        engine.start().await.expect("start");
        assert_eq!(
            engine.components(),
            [
                "writer",
                "heartbeat",
                "runner_pool",
                "dispatcher",
                "scheduler",
                "review_timeouts",
                "delivery",
                "reaper",
                "healing",
                "retention"
            ]
        );
        engine.shutdown().await;
        assert!(engine.components().is_empty(), "every component stopped");
        let refused = engine.enqueue(NewExecution::manual(persona.id, None)).await;
        assert!(matches!(refused, Err(EngineError::ShuttingDown)));
    }
}
