//! The outbox: what must reach a Kafka topic is written to `outbox` in the same transaction as
//! the state it describes, then published after commit by [`Relay`], which marks what the broker
//! acknowledged. A crash between commit and publish leaves unmarked rows that the relay of any
//! orchestrator publishes later (at least once; every consumer is idempotent by its key).
//!
//! Rows are taken `FOR UPDATE SKIP LOCKED` in id order, so peers never publish the same row at
//! the same time, and each relay publishes its batch in commit (id) order.

use super::db::{self, Pool, Transaction};
use super::journal::JournalEntry;
use super::live::LiveJournal;
use personas_cloud_api::{CloudError, topics};
use personas_core::ExecutionId;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What the cloud's topics carry (every topic: one JSON message each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusMessage {
    /// `exec`: attempt `attempt` of an execution is due (keyed by persona).
    Exec {
        tenant_id: String,
        execution_id: ExecutionId,
        attempt: u32,
    },
    /// `output`, `lifecycle`, `events`: a journal entry for the tenant's clients.
    Journal(JournalEntry),
    /// `lifecycle`: stop attempt `attempt` (the orchestrator holding its worker delivers it).
    Cancel {
        tenant_id: String,
        execution_id: ExecutionId,
        attempt: u32,
    },
    /// `dlq`: the execution exhausted its attempts.
    DeadLetter {
        tenant_id: String,
        execution_id: ExecutionId,
        attempts: u32,
        reason: String,
    },
}

/// Queues `msg` for `topic` (a name from `personas_cloud_api::topics`, without the namespace).
pub async fn add(
    tx: &Transaction<'_>,
    topic: &str,
    key: &str,
    msg: &BusMessage,
) -> Result<(), CloudError> {
    add_all(tx, topic, key, std::slice::from_ref(msg)).await
}

/// Queues `msgs` for `topic`, in order, under one key.
pub async fn add_all(
    tx: &Transaction<'_>,
    topic: &str,
    key: &str,
    msgs: &[BusMessage],
) -> Result<(), CloudError> {
    if msgs.is_empty() {
        return Ok(());
    }
    let payloads = msgs
        .iter()
        .map(|m| serde_json::to_value(m).map_err(|e| CloudError::internal(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    db::execute(
        tx,
        "INSERT INTO outbox (topic, key, payload)
         SELECT $1, $2, p FROM UNNEST($3::JSONB[]) WITH ORDINALITY AS t(p, i) ORDER BY i",
        &[&topic, &key, &payloads],
    )
    .await?;
    Ok(())
}

/// Publishes the outbox: woken after each commit that added rows ([`Relay::kick`]), and every
/// `poll` for what a crashed peer (or a failed publish) left.
pub struct Relay {
    pool: Pool,
    producer: FutureProducer,
    namespace: String,
    /// Journal entries read from committed rows go here at once (this orchestrator's clients
    /// need not wait for the broker's round trip).
    live: Arc<LiveJournal>,
    wake: Notify,
}

const BATCH: i64 = 1_000;

impl Relay {
    pub fn new(
        pool: Pool,
        producer: FutureProducer,
        namespace: String,
        live: Arc<LiveJournal>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            producer,
            namespace,
            live,
            wake: Notify::new(),
        })
    }

    /// Asks the relay to publish now (call after committing outbox rows).
    pub fn kick(&self) {
        self.wake.notify_one();
    }

    /// Runs until `stop`: publishes pending rows as they come.
    pub async fn run(self: Arc<Self>, poll: Duration, stop: CancellationToken) {
        let mut last_cleanup = std::time::Instant::now();
        loop {
            match self.publish_pending().await {
                // A full batch: more may wait.
                Ok(n) if n as i64 >= BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!("outbox relay: {e}"),
            }
            if last_cleanup.elapsed() > Duration::from_secs(60) {
                last_cleanup = std::time::Instant::now();
                if let Err(e) = self.cleanup().await {
                    tracing::warn!("outbox cleanup: {e}");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Publishes one batch of pending rows in id order and marks what the broker acknowledged.
    /// Returns how many it published.
    pub async fn publish_pending(&self) -> Result<usize, CloudError> {
        let mut conn = db::conn(&self.pool).await?;
        let tx = db::begin(&mut conn).await?;
        let rows = db::query(
            &tx,
            "SELECT id, topic, key, payload::TEXT FROM outbox WHERE published_at IS NULL
                 ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&BATCH],
        )
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.get(0);
            let payload: &str = row.get(3);
            let short_topic: &str = row.get(1);
            // The row is committed (a SELECT sees nothing else): its journal entry is live. Only
            // the journal topics carry entries; exec and dlq rows are not decoded.
            if matches!(
                short_topic,
                topics::OUTPUT | topics::LIFECYCLE | topics::EVENTS
            ) && let Ok(BusMessage::Journal(entry)) = serde_json::from_str::<BusMessage>(payload)
            {
                self.live.publish(entry);
            }
            let topic = topics::name(&self.namespace, short_topic);
            let key: &str = row.get(2);
            let record = FutureRecord::to(&topic).key(key).payload(payload);
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push((id, delivery)),
                Err((e, _)) => {
                    // The local queue is full or the producer is failing: publish what was
                    // queued, keep the rest for the next round.
                    tracing::warn!("outbox: cannot queue row {id} for {topic}: {e}");
                    break;
                }
            }
        }
        let mut done: Vec<i64> = Vec::with_capacity(pending.len());
        for (id, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => done.push(id),
                Ok(Err((e, _))) => tracing::warn!("outbox: row {id} not delivered: {e}"),
                Err(_) => tracing::warn!("outbox: row {id}'s delivery was dropped"),
            }
        }
        if !done.is_empty() {
            db::execute(
                &tx,
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1)",
                &[&done],
            )
            .await?;
        }
        tx.commit().await.map_err(db::pg)?;
        Ok(done.len())
    }

    /// Forgets rows published more than an hour ago.
    async fn cleanup(&self) -> Result<(), CloudError> {
        let conn = db::conn(&self.pool).await?;
        db::execute(
            &conn,
            "DELETE FROM outbox WHERE published_at < now() - interval '1 hour'",
            &[],
        )
        .await?;
        Ok(())
    }
}
