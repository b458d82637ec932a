//! Notification channels of personas and the delivery outbox.
//!
//! A channel's `config` never holds a secret (the engine checks that before storing it). The
//! outbox is derived from the inbox: [`DeliveryRepo::plan`] reads messages and review requests
//! added since its cursor (by rowid, which grows in commit order under SQLite's single writer),
//! whichever process added them — the runner, the MCP server, another engine — and creates one
//! delivery per (channel, subject). Deliveries are leased while being sent, so a crash mid-send
//! only delays them, and each attempt is recorded with its error and the next attempt's time.

use crate::error::{enum_at, json_col};
use crate::time::{from_ms, now_ms, opt_from_ms};
use crate::{Store, StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::{ChannelKind, ExecutionId, NoticeKind, NotificationStatus, PersonaId};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

pub struct DeliveryRepo<'s> {
    store: &'s Store,
}

/// A persona's notification channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelRow {
    pub id: String,
    pub persona_id: PersonaId,
    pub name: String,
    pub kind: ChannelKind,
    /// Kind-specific settings; secret fields hold references (`credential:NAME.FIELD`,
    /// `env:NAME`), never values.
    pub config: Value,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// What a delivery carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub kind: NoticeKind,
    pub id: String,
    pub persona_id: Option<PersonaId>,
    pub persona_name: String,
    pub execution_id: Option<ExecutionId>,
    pub title: Option<String>,
    pub body: String,
    /// Message priority, or review severity.
    pub priority: String,
    /// A review's suggested actions (empty for messages).
    pub suggested_actions: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// One delivery attempt's subject and channel, leased to the caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DueDelivery {
    pub id: String,
    pub attempts: u32,
    pub channel: ChannelRow,
    pub notice: Notice,
}

/// A delivery's state.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct DeliveryRow {
    pub id: String,
    pub channel_id: String,
    pub channel_name: String,
    pub channel_kind: ChannelKind,
    pub subject_kind: NoticeKind,
    pub subject_id: String,
    pub status: NotificationStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const CHANNEL_COLUMNS: &str = "id, persona_id, name, kind, config, enabled, created_at";

fn row_to_channel(r: &Row<'_>) -> rusqlite::Result<ChannelRow> {
    let config: String = r.get(4)?;
    Ok(ChannelRow {
        id: r.get(0)?,
        persona_id: PersonaId::from_string(r.get::<_, String>(1)?),
        name: r.get(2)?,
        kind: enum_at(r, 3, "notification_channels.kind")?,
        config: json_col("config", &config)?,
        enabled: r.get(5)?,
        created_at: from_ms(r.get(6)?),
    })
}

const DELIVERY_COLUMNS: &str = "d.id, d.channel_id, c.name, c.kind, d.subject_kind, d.subject_id, \
    d.status, d.attempts, d.next_attempt_at, d.last_error, d.delivered_at";

fn row_to_delivery(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.get(0)?,
        channel_id: r.get(1)?,
        channel_name: r.get(2)?,
        channel_kind: enum_at(r, 3, "notification_channels.kind")?,
        subject_kind: enum_at(r, 4, "notification_deliveries.subject_kind")?,
        subject_id: r.get(5)?,
        status: enum_at(r, 6, "notification_deliveries.status")?,
        attempts: r.get(7)?,
        next_attempt_at: opt_from_ms(r.get(8)?),
        last_error: r.get(9)?,
        delivered_at: opt_from_ms(r.get(10)?),
    })
}

/// Rows read per `plan` call per table, so one transaction stays short.
const PLAN_BATCH: u32 = 500;

fn notice_in(conn: &Connection, kind: NoticeKind, id: &str) -> Result<Option<Notice>, StoreError> {
    let found = if kind == NoticeKind::Message {
        conn.prepare_cached(
            "SELECT id, persona_id, persona_name, execution_id, title, content, priority, created_at
             FROM messages WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(Notice {
                kind: NoticeKind::Message,
                id: r.get(0)?,
                persona_id: r.get::<_, Option<String>>(1)?.map(PersonaId::from_string),
                persona_name: r.get(2)?,
                execution_id: r.get::<_, Option<String>>(3)?.map(ExecutionId::from_string),
                title: r.get(4)?,
                body: r.get(5)?,
                priority: r.get(6)?,
                suggested_actions: Vec::new(),
                created_at: from_ms(r.get(7)?),
            })
        })
        .optional()?
    } else {
        conn.prepare_cached(
            "SELECT r.id, r.persona_id, COALESCE(p.name, e.persona_name), r.execution_id, r.title,
                r.description, r.severity, r.suggested_actions, r.created_at
             FROM reviews r JOIN executions e ON e.id = r.execution_id
             LEFT JOIN personas p ON p.id = r.persona_id WHERE r.id = ?1",
        )?
        .query_row([id], |r| {
            let actions: String = r.get(7)?;
            Ok(Notice {
                kind: NoticeKind::Review,
                id: r.get(0)?,
                persona_id: r.get::<_, Option<String>>(1)?.map(PersonaId::from_string),
                persona_name: r.get(2)?,
                execution_id: r.get::<_, Option<String>>(3)?.map(ExecutionId::from_string),
                title: r.get(4)?,
                body: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                priority: r.get(6)?,
                suggested_actions: json_col("suggested_actions", &actions)?,
                created_at: from_ms(r.get(8)?),
            })
        })
        .optional()?
    };
    Ok(found)
}

impl<'s> DeliveryRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Adds a channel (its config already checked by the caller). Names are unique per persona.
    pub fn add_channel(
        &self,
        persona_id: &PersonaId,
        name: &str,
        kind: ChannelKind,
        config: &Value,
    ) -> Result<ChannelRow, StoreError> {
        let conn = self.store.conn()?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        conn.execute(
            "INSERT INTO notification_channels (id, persona_id, name, kind, config, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![id, persona_id.as_str(), name, kind.as_str(), config.to_string(), now],
        )
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::conflict(
                    "name",
                    format!("the persona already has a channel named {name:?}"),
                )
            }
            _ => StoreError::Sqlite(e),
        })?;
        Ok(conn.query_row(
            &format!("SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE id = ?1"),
            [&id],
            row_to_channel,
        )?)
    }

    /// Channels of one persona, or all, by persona then name.
    pub fn channels(&self, persona_id: Option<&PersonaId>) -> Result<Vec<ChannelRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels
             WHERE (?1 IS NULL OR persona_id = ?1) ORDER BY persona_id, name"
        ))?;
        let rows = stmt.query_map([persona_id.map(|p| p.as_str())], row_to_channel)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a persona's channel by name or id; its pending deliveries go with it.
    pub fn remove_channel(
        &self,
        persona_id: &PersonaId,
        name_or_id: &str,
    ) -> Result<ChannelRow, StoreError> {
        let conn = self.store.conn()?;
        let found = conn
            .query_row(
                &format!(
                    "SELECT {CHANNEL_COLUMNS} FROM notification_channels
                     WHERE persona_id = ?1 AND (id = ?2 OR name = ?2)"
                ),
                params![persona_id.as_str(), name_or_id],
                row_to_channel,
            )
            .optional()?
            .ok_or_else(|| StoreError::not_found("channel", name_or_id))?;
        conn.execute(
            "DELETE FROM notification_channels WHERE id = ?1",
            [&found.id],
        )?;
        Ok(found)
    }

    /// Creates deliveries for messages and reviews added since the last call, for the channels
    /// their persona had when they were added. Returns how many deliveries were created.
    pub fn plan(&self) -> Result<usize, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let now = now_ms();
            let mut created = 0;
            for (kind, table) in [
                (NoticeKind::Message, "messages"),
                (NoticeKind::Review, "reviews"),
            ] {
                let kind = kind.as_str();
                let cursor: i64 = tx.query_row(
                    "SELECT position FROM delivery_cursors WHERE name = ?1",
                    [kind],
                    |r| r.get(0),
                )?;
                let rows: Vec<(i64, String, Option<String>, i64)> = tx
                    .prepare(&format!(
                        "SELECT rowid, id, persona_id, created_at FROM {table}
                         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2"
                    ))?
                    .query_map(params![cursor, PLAN_BATCH], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let Some(last) = rows.last().map(|r| r.0) else {
                    continue;
                };
                let mut insert = tx.prepare_cached(
                    "INSERT OR IGNORE INTO notification_deliveries (id, channel_id, persona_id,
                        subject_kind, subject_id, next_attempt_at, created_at, updated_at)
                     SELECT ?1 || '-' || c.id, c.id, c.persona_id, ?2, ?3, ?4, ?4, ?4
                     FROM notification_channels c
                     WHERE c.persona_id = ?5 AND c.enabled = 1 AND c.created_at <= ?6",
                )?;
                for (_, id, persona, created_at) in &rows {
                    let Some(persona) = persona else { continue };
                    created += insert.execute(params![
                        uuid::Uuid::now_v7().simple().to_string(),
                        kind,
                        id,
                        now,
                        persona,
                        created_at
                    ])?;
                }
                tx.execute(
                    "UPDATE delivery_cursors SET position = ?2 WHERE name = ?1",
                    params![kind, last],
                )?;
            }
            Ok(created)
        })
    }

    /// Leases up to `limit` deliveries due now to `owner` for `lease_ms`.
    pub fn lease_due(
        &self,
        owner: &str,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let now = now_ms();
            let due: Vec<(String, u32, String, NoticeKind, String)> = tx
                .prepare_cached(
                    "SELECT id, attempts, channel_id, subject_kind, subject_id
                     FROM notification_deliveries
                     WHERE status = 'pending' AND next_attempt_at <= ?1
                       AND (lease_until IS NULL OR lease_until < ?1)
                     ORDER BY next_attempt_at, id LIMIT ?2",
                )?
                .query_map(params![now, limit], |r| {
                    let kind = enum_at(r, 3, "notification_deliveries.subject_kind")?;
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, kind, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(due.len());
            for (id, attempts, channel_id, kind, subject) in due {
                let channel = tx
                    .query_row(
                        &format!(
                            "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE id = ?1"
                        ),
                        [&channel_id],
                        row_to_channel,
                    )
                    .optional()?;
                let notice = notice_in(tx, kind, &subject)?;
                let (Some(channel), Some(notice)) = (channel, notice) else {
                    // The message or review was deleted: nothing left to deliver.
                    tx.execute(
                        "UPDATE notification_deliveries SET status = 'failed', updated_at = ?2,
                            last_error = 'the message no longer exists' WHERE id = ?1",
                        params![id, now],
                    )?;
                    continue;
                };
                tx.execute(
                    "UPDATE notification_deliveries SET lease_owner = ?2, lease_until = ?3 WHERE id = ?1",
                    params![id, owner, now + lease_ms],
                )?;
                out.push(DueDelivery {
                    id,
                    attempts,
                    channel,
                    notice,
                });
            }
            Ok(out)
        })
    }

    /// Records one attempt: delivered (`error` is `None`), failed with a next attempt at
    /// `retry_at`, or failed for good (`retry_at` is `None`).
    pub fn record_attempt(
        &self,
        id: &str,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<DeliveryRow, StoreError> {
        let conn = self.store.conn()?;
        let now = now_ms();
        match (error, retry_at) {
            (None, _) => conn.execute(
                "UPDATE notification_deliveries SET status = 'delivered', attempts = attempts + 1,
                    delivered_at = ?2, updated_at = ?2, last_error = NULL, lease_owner = NULL,
                    lease_until = NULL, next_attempt_at = NULL WHERE id = ?1",
                params![id, now],
            )?,
            (Some(e), Some(at)) => conn.execute(
                "UPDATE notification_deliveries SET attempts = attempts + 1, last_error = ?2,
                    next_attempt_at = ?3, updated_at = ?4, lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1",
                params![id, e, at, now],
            )?,
            (Some(e), None) => conn.execute(
                "UPDATE notification_deliveries SET status = 'failed', attempts = attempts + 1,
                    last_error = ?2, next_attempt_at = NULL, updated_at = ?3, lease_owner = NULL,
                    lease_until = NULL WHERE id = ?1",
                params![id, e, now],
            )?,
        };
        conn.query_row(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries d
                 JOIN notification_channels c ON c.id = d.channel_id WHERE d.id = ?1"
            ),
            [id],
            row_to_delivery,
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found("delivery", id))
    }

    /// When the next pending delivery is due (for the sender's timer).
    pub fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row(
            "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0)))
             FROM notification_deliveries WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Deliveries of one message or review.
    pub fn of_subject(&self, kind: NoticeKind, id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries d
             JOIN notification_channels c ON c.id = d.channel_id
             WHERE d.subject_kind = ?1 AND d.subject_id = ?2 ORDER BY c.name"
        ))?;
        let rows = stmt.query_map(params![kind.as_str(), id], row_to_delivery)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
