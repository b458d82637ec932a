//! The dispatcher: this orchestrator's member of the execution topic's consumer group. It takes
//! a message only when one of its workers has a free slot — otherwise it pauses its partitions
//! (and keeps polling, so the group keeps it) — then: creates the attempt conditionally in
//! Postgres ([`queue::attempt::take`]), sends `assign` to the reserved worker, and commits the
//! message's offset. A duplicate or stale message (the attempt was taken already, the run
//! ended or was cancelled) takes nothing and is committed.
//!
//! An orchestrator without any worker is not in the group at all: it would hold partitions it
//! can never serve, so it leaves (and its peers take them over) until a worker connects.
//!
//! A crash anywhere in between is safe: before the Postgres commit nothing happened and the
//! message is redelivered; after it, the attempt names a worker that either has the run or
//! never got it (then the worker's next hello or the reaper re-queues it).

use super::Orchestrator;
use super::db;
use super::kafka;
use super::outbox::BusMessage;
use super::pool::Slot;
use super::queue::attempt;
use personas_cloud_api::wire::OrchestratorFrame;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use std::collections::VecDeque;
use std::time::Duration;

/// How often a waiting dispatcher re-checks (and re-pauses a fresh assignment).
const TICK: Duration = Duration::from_millis(200);

/// Runs the dispatcher until the orchestrator stops.
pub async fn run(state: Orchestrator) -> anyhow::Result<()> {
    let consumer = kafka::exec_consumer(state.settings())?;
    let topic = kafka::topic(state.settings(), personas_cloud_api::topics::EXEC);
    let stop = state.stop_token().clone();
    let workers = state.workers().clone();
    let mut pending: VecDeque<OwnedMessage> = VecDeque::new();
    let mut paused = false;
    let mut member = false;
    while !stop.is_cancelled() {
        if workers.is_empty() {
            if member {
                // Held messages are not committed: whoever gets the partitions reads them.
                pending.clear();
                consumer.unsubscribe();
                member = false;
                paused = false;
                tracing::info!("no workers: left the exec group");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = workers.idle_changed() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
            continue;
        }
        if !member {
            consumer.subscribe(&[&topic])?;
            member = true;
            tracing::info!("joined the exec group");
        }
        let Some(slot) = workers.reserve() else {
            // No idle worker: stop fetching, keep polling (rebalances, the group's liveness).
            set_paused(&consumer, &mut paused, true);
            let idle = workers.idle_changed();
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = idle => {}
                _ = tokio::time::sleep(TICK) => { paused = false; } // re-pause new partitions
                m = consumer.recv() => hold(m, &mut pending),
            }
            continue;
        };
        set_paused(&consumer, &mut paused, false);
        let message = match pending.pop_front() {
            Some(m) => m,
            None => {
                tokio::select! {
                    _ = stop.cancelled() => { workers.release(&slot); break; }
                    _ = tokio::time::sleep(TICK) => { workers.release(&slot); continue; }
                    m = consumer.recv() => match m {
                        Ok(m) => m.detach(),
                        Err(e) => {
                            workers.release(&slot);
                            tracing::warn!("exec consumer: {e}");
                            tokio::time::sleep(TICK).await;
                            continue;
                        }
                    },
                }
            }
        };
        match handle(&state, &slot, &message).await {
            Ok(()) => commit(&consumer, &message),
            Err(e) => {
                // Postgres is down: leave the offset, try the message again shortly.
                workers.release(&slot);
                tracing::warn!("dispatch: {e}; retrying");
                pending.push_front(message);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    if member {
        let _ = consumer.commit_consumer_state(CommitMode::Sync);
    }
    Ok(())
}

fn hold(
    m: rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>>,
    pending: &mut VecDeque<OwnedMessage>,
) {
    match m {
        Ok(m) => pending.push_back(m.detach()),
        Err(e) => tracing::warn!("exec consumer: {e}"),
    }
}

fn set_paused(consumer: &StreamConsumer, paused: &mut bool, want: bool) {
    if *paused == want {
        return;
    }
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let r = if want {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    match r {
        Ok(()) => *paused = want,
        Err(e) => tracing::warn!("exec consumer pause/resume: {e}"),
    }
}

fn commit(consumer: &StreamConsumer, m: &OwnedMessage) {
    let mut tpl = rdkafka::TopicPartitionList::new();
    let next = rdkafka::Offset::Offset(m.offset() + 1);
    if tpl
        .add_partition_offset(m.topic(), m.partition(), next)
        .is_ok()
        && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
    {
        // The next commit covers it; a redelivery is skipped as a duplicate.
        tracing::warn!("exec offset commit: {e}");
    }
}

/// Takes one exec message with a reserved slot. `Ok` when the message is done with (taken,
/// duplicate, malformed); `Err` when Postgres failed (the message is retried).
async fn handle(
    state: &Orchestrator,
    slot: &Slot,
    m: &OwnedMessage,
) -> Result<(), personas_cloud_api::CloudError> {
    let workers = state.workers();
    let msg = m
        .payload()
        .and_then(|p| serde_json::from_slice::<BusMessage>(p).ok());
    let Some(BusMessage::Exec {
        execution_id,
        attempt: n,
        ..
    }) = msg
    else {
        tracing::warn!(
            "exec message at {}/{} is not an exec message; skipped",
            m.partition(),
            m.offset()
        );
        workers.release(slot);
        return Ok(());
    };
    let mut conn = db::conn(state.db()).await?;
    let tx = db::begin(&mut conn).await?;
    let taken = attempt::take(&tx, &execution_id, n, &slot.worker_id, state.id()).await?;
    tx.commit().await.map_err(db::pg)?;
    state.kick_outbox();
    match taken {
        Some(t) => {
            let frame = OrchestratorFrame::Assign {
                assignment: Box::new(t.assignment),
            };
            if !workers.fill(slot, &execution_id, n, frame) {
                tracing::warn!(
                    "worker {} left before its assignment of {execution_id}; it will be re-queued",
                    slot.worker_id
                );
            }
        }
        None => {
            tracing::debug!("exec {execution_id} attempt {n}: already taken or ended; skipped");
            workers.release(slot);
        }
    }
    Ok(())
}
