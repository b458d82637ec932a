//! [`Orchestrator`]: what every part of one orchestrator shares. Cheap to clone (an `Arc`).
//!
//! - the settings and the Postgres pool ([`super::db`]);
//! - the Kafka producer and the outbox relay ([`super::outbox`]): call
//!   [`Orchestrator::kick_outbox`] after committing a transaction that added outbox rows;
//! - the live journal: a broadcast of every journal entry of every tenant as the broadcast
//!   consumers read it from `output`, `lifecycle` and `events` (in topic order per partition;
//!   the client stream puts them in journal order and fills gaps from Postgres);
//! - the worker pool registry ([`super::pool::Registry`]);
//! - the count of connected clients (the client stream keeps it; peers see it in
//!   `orchestrators.clients`);
//! - the stop token every task watches.

use super::db::Pool;
use super::journal::JournalEntry;
use super::outbox::Relay;
use super::pool::Registry;
use crate::config::OrchestratorSettings;
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How many live journal entries a slow stream may fall behind before it must catch up from
/// Postgres (it sees `RecvError::Lagged`).
const LIVE_BUFFER: usize = 8_192;

/// One orchestrator's shared state.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: OrchestratorSettings,
    db: Pool,
    producer: FutureProducer,
    relay: Arc<Relay>,
    live: broadcast::Sender<JournalEntry>,
    workers: Arc<Registry>,
    clients: AtomicU32,
    stop: CancellationToken,
}

impl Orchestrator {
    /// The shared state over a pool and a producer (made by [`super::start`]).
    pub fn new(settings: OrchestratorSettings, db: Pool, producer: FutureProducer) -> Self {
        let relay = Relay::new(
            db.clone(),
            producer.clone(),
            settings.kafka_namespace.clone(),
        );
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Self {
            inner: Arc::new(Inner {
                settings,
                db,
                producer,
                relay,
                live,
                workers: Arc::new(Registry::new()),
                clients: AtomicU32::new(0),
                stop: CancellationToken::new(),
            }),
        }
    }

    pub fn settings(&self) -> &OrchestratorSettings {
        &self.inner.settings
    }

    pub fn id(&self) -> &str {
        &self.inner.settings.id
    }

    /// The Postgres pool.
    pub fn db(&self) -> &Pool {
        &self.inner.db
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.inner.producer
    }

    pub fn relay(&self) -> &Arc<Relay> {
        &self.inner.relay
    }

    /// Publish the outbox now (after a commit that added rows).
    pub fn kick_outbox(&self) {
        self.inner.relay.kick();
    }

    /// Subscribes to the live journal (every tenant; filter by `tenant_id`).
    pub fn live(&self) -> broadcast::Receiver<JournalEntry> {
        self.inner.live.subscribe()
    }

    /// Where the broadcast consumers put what they read.
    pub fn live_sender(&self) -> &broadcast::Sender<JournalEntry> {
        &self.inner.live
    }

    /// The workers connected to this orchestrator.
    pub fn workers(&self) -> &Arc<Registry> {
        &self.inner.workers
    }

    /// Connected clients (the client stream adds and subtracts).
    pub fn clients(&self) -> &AtomicU32 {
        &self.inner.clients
    }

    pub fn client_count(&self) -> u32 {
        self.inner.clients.load(Ordering::Relaxed)
    }

    /// Cancelled when the orchestrator stops.
    pub fn stop_token(&self) -> &CancellationToken {
        &self.inner.stop
    }

    /// The orchestrators' lag on the execution topic (`None` if the broker does not answer).
    pub async fn exec_lag(&self) -> Option<i64> {
        let settings = self.inner.settings.clone();
        tokio::task::spawn_blocking(move || super::kafka::exec_lag(&settings))
            .await
            .ok()
            .flatten()
    }
}
