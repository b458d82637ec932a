//! The orchestrator: one peer of many against one Postgres and one Kafka-protocol broker.
//!
//! Who owns what (each file's own doc says more):
//! - [`state`]: [`Orchestrator`], what every part shares (settings, the Postgres pool, Kafka,
//!   the worker pool, the live journal).
//! - Core (dispatch and durability): [`db`] (pool, migrations, transactions), [`kafka`]
//!   (producer, consumers, topics), [`outbox`] (publish after commit + relay), [`queue`]
//!   (enqueue, cancel — the write paths every front door uses — and attempt transitions),
//!   [`journal`] (the per-tenant client sequence), [`dispatch`] (the execution topic's consumer
//!   group → idle workers), [`pool`] (the worker WebSocket), [`reaper`] (lost attempts → retry
//!   or dead letter), [`cron`] (cloud cron triggers).
//! - Front door: `api` (the operation table as routes, health, readiness, OpenAPI), `stream`
//!   (the client WebSocket with resume) and `crate::auth` (JWT and static tokens).

pub mod api;
pub mod cron;
pub mod db;
pub mod dispatch;
pub mod journal;
pub mod kafka;
pub mod live;
pub mod outbox;
pub mod pool;
pub mod queue;
pub mod reaper;
pub mod state;
pub mod stream;

pub use state::Orchestrator;

use crate::config::OrchestratorSettings;
use anyhow::Context;
use outbox::BusMessage;
use personas_cloud_api::wire::OrchestratorFrame;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinSet;

/// The orchestrator's HTTP surface.
pub fn router(state: Orchestrator) -> axum::Router {
    axum::Router::new()
        .route("/worker", axum::routing::get(pool::upgrade))
        .with_state(state.clone())
        // The front door: the operations, GET /api/stream, /health, /ready, /openapi.json.
        .merge(api::router(state))
}

/// A started orchestrator (for `run`, and for tests that run one in-process).
pub struct Running {
    pub state: Orchestrator,
    /// Where it serves (the bound address; `listen` may have asked for port 0).
    pub addr: SocketAddr,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops every task and the server, flushes the producer, and leaves the cluster.
    pub async fn stop(mut self) {
        self.state.stop_token().cancel();
        while tokio::time::timeout(Duration::from_secs(10), self.tasks.join_next())
            .await
            .ok()
            .flatten()
            .is_some()
        {}
        self.tasks.abort_all();
        use rdkafka::producer::Producer;
        let _ = self.state.producer().flush(Duration::from_secs(5));
        if let Ok(conn) = db::conn(self.state.db()).await {
            let _ = conn
                .execute(
                    "DELETE FROM orchestrators WHERE id = $1",
                    &[&self.state.id()],
                )
                .await;
        }
    }
}

/// Connects Postgres (migrating it) and the broker (creating the topics), starts every part
/// and serves on `settings.listen`.
pub async fn start(settings: OrchestratorSettings) -> anyhow::Result<Running> {
    db::migrate(&settings.database_url).await?;
    let pool = db::pool(&settings.database_url, settings.database_pool)?;
    create_topics_patiently(&settings).await?;
    let producer = kafka::producer(&settings)?;
    let state = Orchestrator::new(settings.clone(), pool, producer);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let mut tasks = JoinSet::new();
    let stop = state.stop_token().clone();
    tasks.spawn(
        state
            .relay()
            .clone()
            .run(Duration::from_millis(500), stop.clone()),
    );
    let s = state.clone();
    tasks.spawn(async move {
        if let Err(e) = dispatch::run(s.clone()).await {
            tracing::error!("the dispatcher stopped: {e:#}");
            s.stop_token().cancel();
        }
    });
    let s = state.clone();
    tasks.spawn(async move {
        let on = broadcast_handler(s.clone());
        if let Err(e) = kafka::broadcast(s.settings().clone(), s.stop_token().clone(), on).await {
            tracing::error!("the broadcast consumer stopped: {e:#}");
            s.stop_token().cancel();
        }
    });
    tasks.spawn(reaper::run(state.clone()));
    tasks.spawn(cron::run(state.clone()));
    tasks.spawn(pool::upkeep(state.clone()));
    let app = router(state.clone());
    let shutdown = stop.clone();
    tasks.spawn(async move {
        // Small frames (heartbeats, acks, one line of output) go out at once: without
        // TCP_NODELAY Nagle's algorithm holds a write until the peer's delayed ACK, ~40 ms.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY: {e}");
            }
        });
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.cancelled().await;
        });
        if let Err(e) = serve.await {
            tracing::error!("the HTTP server stopped: {e}");
        }
    });
    tracing::info!("orchestrator {} serving on {addr}", state.id());
    Ok(Running { state, addr, tasks })
}

/// Creates the topics, waiting up to 30 s for a broker that is still starting.
async fn create_topics_patiently(settings: &OrchestratorSettings) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match kafka::create_topics(settings).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!("waiting for the broker: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What the broadcast consumer does with a message: journal entries go to the live stream;
/// a cancel goes to the worker running the attempt, if it is connected here.
fn broadcast_handler(state: Orchestrator) -> impl Fn(&str, &[u8]) + Send + 'static {
    move |topic, payload| match serde_json::from_slice::<BusMessage>(payload) {
        Ok(BusMessage::Journal(entry)) => {
            state.live_journal().publish(entry);
        }
        Ok(BusMessage::Cancel {
            execution_id,
            attempt,
            ..
        }) => {
            if let Some((worker, held)) = state.workers().holder_of(&execution_id)
                && held == attempt
            {
                state.workers().send(
                    &worker,
                    OrchestratorFrame::Cancel {
                        execution_id,
                        attempt,
                    },
                );
            }
        }
        Ok(other) => tracing::debug!("{topic}: ignored {other:?}"),
        Err(e) => tracing::warn!("{topic}: a message that does not decode: {e}"),
    }
}

/// Runs an orchestrator until SIGTERM/Ctrl-C.
pub async fn run(settings: OrchestratorSettings) -> anyhow::Result<()> {
    let running = start(settings).await?;
    let stop = running.state.stop_token().clone();
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("stopping"),
        _ = stop.cancelled() => tracing::error!("a part failed; stopping"),
    }
    let failed = stop.is_cancelled();
    running.stop().await;
    if failed {
        anyhow::bail!("the orchestrator stopped after a failure (see the log)");
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
