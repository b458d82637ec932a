//! The per-tenant journal: what a tenant's client stream carries, numbered gaplessly in commit
//! order per tenant.
//!
//! The number comes from `tenants.journal_seq`, bumped by an `UPDATE … RETURNING` inside the
//! transaction that appends: the row lock it takes is held to commit, so a second writer of the
//! same tenant waits, and numbers are handed out in the order transactions commit, never twice,
//! with no gap (a rolled-back transaction gives its numbers back).
//!
//! Every appended entry is also written to the outbox for its topic ([`record`]), so each
//! orchestrator's broadcast consumer sees it and its clients get it live.

use super::db::{self, Transaction};
use super::outbox;
use personas_cloud_api::CloudError;
use personas_cloud_api::stream::ClientEvent;
use serde::{Deserialize, Serialize};

/// One journal entry: what the broadcast consumers hand to the client stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub tenant_id: String,
    pub seq: i64,
    pub event: ClientEvent,
}

/// Creates the tenant's row if it has none (the first request of a new JWT subject).
pub async fn ensure_tenant(tx: &Transaction<'_>, tenant_id: &str) -> Result<(), CloudError> {
    db::execute(
        tx,
        "INSERT INTO tenants (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
        &[&tenant_id],
    )
    .await?;
    Ok(())
}

fn execution_of(event: &ClientEvent) -> Option<&str> {
    match event {
        ClientEvent::Output { line } => Some(line.execution_id.as_str()),
        ClientEvent::Execution { execution } => Some(execution.execution.id.as_str()),
        ClientEvent::Event { .. } => None,
    }
}

/// Appends `event` to the tenant's journal; returns its number. The tenant row must exist.
pub async fn append(
    tx: &Transaction<'_>,
    tenant_id: &str,
    event: &ClientEvent,
) -> Result<i64, CloudError> {
    let seqs = append_all(tx, tenant_id, std::slice::from_ref(event)).await?;
    Ok(seqs[0])
}

/// Appends `events` in order; returns their numbers (consecutive).
pub async fn append_all(
    tx: &Transaction<'_>,
    tenant_id: &str,
    events: &[ClientEvent],
) -> Result<Vec<i64>, CloudError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let n = events.len() as i64;
    let row = db::query_opt(
        tx,
        "UPDATE tenants SET journal_seq = journal_seq + $2 WHERE id = $1 RETURNING journal_seq",
        &[&tenant_id, &n],
    )
    .await?
    .ok_or_else(|| CloudError::internal(format!("tenant {tenant_id:?} has no row")))?;
    let last: i64 = row.get(0);
    let seqs: Vec<i64> = (last - n + 1..=last).collect();
    let mut bodies = Vec::with_capacity(events.len());
    let mut execs = Vec::with_capacity(events.len());
    for e in events {
        bodies.push(serde_json::to_value(e).map_err(|e| CloudError::internal(e.to_string()))?);
        execs.push(execution_of(e).map(str::to_string));
    }
    db::execute(
        tx,
        "INSERT INTO journal (tenant_id, seq, event, execution_id)
         SELECT $1, s, ev, ex FROM UNNEST($2::BIGINT[], $3::JSONB[], $4::TEXT[]) AS t(s, ev, ex)",
        &[&tenant_id, &seqs, &bodies, &execs],
    )
    .await?;
    Ok(seqs)
}

/// Appends `events` to the journal and queues each entry for `topic` (keyed by `key`), so every
/// orchestrator's clients of the tenant see it. Returns the entries.
pub async fn record(
    tx: &Transaction<'_>,
    tenant_id: &str,
    topic: &str,
    key: &str,
    events: Vec<ClientEvent>,
) -> Result<Vec<JournalEntry>, CloudError> {
    let seqs = append_all(tx, tenant_id, &events).await?;
    let entries: Vec<JournalEntry> = seqs
        .into_iter()
        .zip(events)
        .map(|(seq, event)| JournalEntry {
            tenant_id: tenant_id.to_string(),
            seq,
            event,
        })
        .collect();
    let payloads = entries
        .iter()
        .map(|e| outbox::BusMessage::Journal(e.clone()))
        .collect::<Vec<_>>();
    outbox::add_all(tx, topic, key, &payloads).await?;
    Ok(entries)
}

/// Journal entries of `tenant_id` after `after` (at most `limit`), oldest first: what a
/// resuming client missed, or a gap the live stream has to fill.
pub async fn read_after(
    conn: &impl db::GenericClient,
    tenant_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<JournalEntry>, CloudError> {
    let rows = db::query(
        conn,
        "SELECT seq, event FROM journal WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        &[&tenant_id, &after, &limit],
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(JournalEntry {
                tenant_id: tenant_id.to_string(),
                seq: r.get(0),
                event: db::json(r.get(1), "journal entry")?,
            })
        })
        .collect()
}
