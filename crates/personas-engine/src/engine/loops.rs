//! The engine's own components: the runner pool (the queue and the runs it starts), the
//! heartbeat, the reaper of a vanished runtime's executions, and the healing sweep.

use super::Engine;
use crate::component::{Component, Running, Wake, due_in, never, sleep_until};
use crate::runner::blocking;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The queue: admits queued executions under the limits and runs each on its own task. On
/// stop it claims nothing more and waits for its runs, which the stop interrupts (recorded as
/// failed/interrupted).
pub(super) struct RunnerPool {
    pub engine: Engine,
}

impl Component for RunnerPool {
    fn name(&self) -> &'static str {
        "runner_pool"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(async move {
            let runs = TaskTracker::new();
            let poll = Duration::from_millis(self.engine.config().queue_poll_ms);
            loop {
                self.admit_all(&runs, &stop).await;
                let wakeup = &self.engine.inner.queue_wakeup;
                if sleep_until(due_in(poll), wakeup.notified(), &stop).await == Wake::Stop {
                    break;
                }
            }
            runs.close();
            runs.wait().await;
        })
    }
}

impl RunnerPool {
    /// Starts queued executions until none can be admitted now.
    async fn admit_all(&self, runs: &TaskTracker, stop: &CancellationToken) {
        let engine = &self.engine;
        while !stop.is_cancelled() {
            let (store, owner) = (engine.store().clone(), engine.inner.owner.clone());
            let limit = engine.config().max_concurrent;
            let caps = engine.caps();
            match blocking(move || store.executions().admit_next(limit, &owner, &caps)).await {
                Ok(admitted) => {
                    let refused = !admitted.refused.is_empty();
                    engine.announce_refused(admitted.refused).await;
                    match admitted.started {
                        Some(exec) => {
                            let (me, stop) = (engine.clone(), stop.clone());
                            runs.spawn(async move {
                                me.run_claimed(exec, stop).await;
                            });
                        }
                        None if refused => {}
                        None => return,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming queued executions failed");
                    return;
                }
            }
        }
    }
}

/// Stamps this process's running executions alive every `heartbeat_secs` and picks up cancel
/// requests other processes made.
pub(super) struct Heartbeat {
    pub engine: Engine,
}

impl Component for Heartbeat {
    fn name(&self) -> &'static str {
        "heartbeat"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(async move {
            let every = Duration::from_secs(self.engine.config().heartbeat_secs);
            while sleep_until(due_in(every), never(), &stop).await != Wake::Stop {
                self.engine.beat().await;
            }
        })
    }
}

/// How many heartbeats pass between sweeps for vanished runtimes' executions and healing.
const SWEEP_EVERY_BEATS: u32 = 5;

fn sweep_interval(engine: &Engine) -> Duration {
    Duration::from_secs(engine.config().heartbeat_secs) * SWEEP_EVERY_BEATS
}

/// Marks executions whose owning process vanished failed/interrupted and kills what they left
/// behind (start-up does this once before any component runs; this keeps doing it).
pub(super) struct Reaper {
    pub engine: Engine,
}

impl Component for Reaper {
    fn name(&self) -> &'static str {
        "reaper"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(async move {
            let every = sweep_interval(&self.engine);
            while sleep_until(due_in(every), never(), &stop).await != Wake::Stop {
                if let Err(e) = self.engine.recover().await {
                    tracing::warn!(error = %e, "recovering orphaned executions failed");
                }
            }
        })
    }
}

/// Executions ended elsewhere (refused, ended by a review decision in another process) still
/// get their healing bookkeeping and metrics.
pub(super) struct Healing {
    pub engine: Engine,
}

impl Component for Healing {
    fn name(&self) -> &'static str {
        "healing"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(async move {
            let every = sweep_interval(&self.engine);
            while sleep_until(due_in(every), never(), &stop).await != Wake::Stop {
                crate::healing::sweep(&self.engine.inner.rt).await;
            }
        })
    }
}
