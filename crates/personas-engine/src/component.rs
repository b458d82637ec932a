//! The engine's moving parts as components: the [`Component`] trait, the one "sleep until due
//! or woken" helper every waiting loop uses ([`sleep_until`]), and the [`Host`] that starts
//! and stops them all in one place.
//!
//! A component is a long-running loop with a name: it runs until its stop token is cancelled,
//! then finishes what it holds (the runner pool waits for its runs, the writer drains its
//! queue) and returns. The host starts components in list order and stops them in reverse
//! order, one at a time, so whatever a component depends on (the writer under the runs, the
//! heartbeat beside them) outlives it. Every line a component logs carries its name (a
//! `component` span).

use crate::events::EngineEvent;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A component's run, boxed so different components sit in one list.
pub type Running = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One long-running part of the engine.
pub trait Component: Send + 'static {
    /// A short, stable name (`runner_pool`, `dispatcher`, …): in logs and in the host's list.
    fn name(&self) -> &'static str;

    /// Runs until `stop` is cancelled, then finishes what it holds and returns.
    fn run(self: Box<Self>, stop: CancellationToken) -> Running;
}

/// Why [`sleep_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The deadline passed.
    Due,
    /// The wake-up future resolved first (new work, a change, a nudge from another process).
    Woken,
    /// The component is asked to stop.
    Stop,
}

/// Sleeps until `due` (never, when `None`), until `woken` resolves, or until `stop` is
/// cancelled — whichever comes first; a stop request wins a tie. Every waiting loop of the
/// engine waits through this, so none can forget the stop token or drift its deadline.
pub async fn sleep_until(
    due: Option<Instant>,
    woken: impl Future<Output = ()>,
    stop: &CancellationToken,
) -> Wake {
    tokio::select! {
        biased;
        _ = stop.cancelled() => Wake::Stop,
        _ = woken => Wake::Woken,
        _ = async {
            match due {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        } => Wake::Due,
    }
}

/// The deadline `after` from now.
pub fn due_in(after: Duration) -> Option<Instant> {
    Some(Instant::now() + after)
}

/// The deadline for a wall-clock time in Unix milliseconds (now, when it has passed), capped at
/// `at_most` from now; with no time, `at_most` from now.
pub fn due_at_ms(at_ms: Option<i64>, at_most: Duration) -> Option<Instant> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let wait = at_ms
        .map(|t| Duration::from_millis((t - now_ms).max(0) as u64))
        .unwrap_or(at_most)
        .min(at_most);
    due_in(wait)
}

/// Resolves at the first engine event `wanted` accepts, or when the subscriber lagged (it may
/// have missed one). A wake-up future for [`sleep_until`].
pub async fn woken_by(
    events: &mut broadcast::Receiver<EngineEvent>,
    wanted: impl Fn(&EngineEvent) -> bool,
) {
    loop {
        match events.recv().await {
            Ok(e) if wanted(&e) => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            // The sender lives as long as the engine: only the stop token ends this wait.
            Err(RecvError::Closed) => never().await,
        }
    }
}

/// A future that never resolves: for loops woken by their deadline only.
pub async fn never() {
    std::future::pending::<()>().await
}

struct Started {
    name: &'static str,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts components and stops them in reverse order.
#[derive(Default)]
pub struct Host {
    started: Mutex<Vec<Started>>,
}

impl Host {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts each component in order, each on its own task inside a `component` span.
    pub fn start(&self, components: Vec<Box<dyn Component>>) {
        let mut started = self.lock();
        for component in components {
            let name = component.name();
            let stop = CancellationToken::new();
            let span = tracing::info_span!("component", name);
            let run = component.run(stop.clone());
            let task = tokio::spawn(
                async move {
                    tracing::debug!("component started");
                    run.await;
                    tracing::debug!("component stopped");
                }
                .instrument(span),
            );
            started.push(Started { name, stop, task });
        }
    }

    /// The names of the running components, in start order.
    pub fn names(&self) -> Vec<&'static str> {
        self.lock().iter().map(|s| s.name).collect()
    }

    /// Stops every component, the last started first, each finishing before the next is asked.
    pub async fn stop(&self) {
        let started = std::mem::take(&mut *self.lock());
        for s in started.into_iter().rev() {
            s.stop.cancel();
            if let Err(e) = s.task.await {
                tracing::error!(component = s.name, error = %e, "component ended abnormally");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Started>> {
        // Pushes and a take: a panic elsewhere cannot leave the list half-changed.
        self.started.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Notify;

    #[tokio::test]
    async fn wakes_for_the_deadline_the_nudge_or_the_stop() {
        let (notify, stop) = (Notify::new(), CancellationToken::new());
        let due = due_in(Duration::from_millis(10));
        assert_eq!(sleep_until(due, notify.notified(), &stop).await, Wake::Due);
        notify.notify_one();
        assert_eq!(
            sleep_until(None, notify.notified(), &stop).await,
            Wake::Woken
        );
        stop.cancel();
        notify.notify_one();
        assert_eq!(
            sleep_until(Some(Instant::now()), notify.notified(), &stop).await,
            Wake::Stop,
            "a stop request wins a tie"
        );
    }

    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Component for Recorder {
        fn name(&self) -> &'static str {
            self.name
        }
        fn run(self: Box<Self>, stop: CancellationToken) -> Running {
            Box::pin(async move {
                stop.cancelled().await;
                self.log.lock().expect("log").push(self.name.to_owned());
            })
        }
    }

    #[tokio::test]
    async fn components_stop_in_reverse_start_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let host = Host::new();
        host.start(
            ["writer", "pool", "dispatcher"]
                .into_iter()
                .map(|name| {
                    Box::new(Recorder {
                        name,
                        log: Arc::clone(&log),
                    }) as Box<dyn Component>
                })
                .collect(),
        );
        assert_eq!(host.names(), ["writer", "pool", "dispatcher"]);
        host.stop().await;
        assert_eq!(*log.lock().expect("log"), ["dispatcher", "pool", "writer"]);
        assert!(host.names().is_empty());
    }
}
