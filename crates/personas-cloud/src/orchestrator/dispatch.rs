//! The dispatcher: this orchestrator's member of the execution topic's consumer group. It takes
//! a message only when one of its workers has a free slot — meanwhile it holds a short backlog
//! of its partitions' messages uncommitted and pauses them beyond that (polling on, so the group
//! keeps it) — then: creates the attempt conditionally in
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
/// Most exec messages held in memory waiting for a free slot before fetching pauses.
const PREFETCH: usize = 64;

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
        // Registered before looking, so a slot freed from now on wakes the select below.
        let freed = workers.idle_notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        // Serve what is held, as far as there are free slots.
        while !pending.is_empty() {
            let Some(slot) = workers.reserve() else {
                break;
            };
            let Some(message) = pending.pop_front() else {
                workers.release(&slot);
                break;
            };
            if let Err(e) = handle(&state, &slot, &message).await {
                // Postgres is down: keep the message (offset not committed), retry shortly.
                workers.release(&slot);
                tracing::warn!("dispatch: {e}; retrying");
                pending.push_front(message);
                tokio::time::sleep(Duration::from_millis(500)).await;
                break;
            }
            commit(&consumer, &message);
        }
        // Fetch only while the backlog held here is short: the partitions are this
        // orchestrator's anyway, so holding a few saves a fetch round trip per run without
        // taking work a peer could do; a long backlog pauses them (polling goes on).
        set_paused(&consumer, &mut paused, pending.len() >= PREFETCH);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut freed, if !pending.is_empty() => {}
            _ = tokio::time::sleep(TICK) => {}
            m = consumer.recv() => hold(m, &mut pending),
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

/// Pauses (every time: a rebalance may have handed over fresh, unpaused partitions) or
/// resumes the assigned partitions.
fn set_paused(consumer: &StreamConsumer, paused: &mut bool, want: bool) {
    if !want && !*paused {
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
