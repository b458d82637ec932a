//! Tables the persona protocol writes: the message inbox, bus events, memories and reviews.
//! Each row links back to the execution that produced it.

use crate::bus::NewEvent;
use crate::bus::{EVENT_COLUMNS, EventRow, row_to_event};
use crate::error::enum_at;
use crate::memories::{MEMORY_COLUMNS, MemoryRow, row_to_memory};
use crate::review::{REVIEW_COLUMNS, ReviewRow, row_to_review};
use crate::time::{from_ms, now_ms};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use personas_core::protocol::{Priority, Severity};
use personas_core::trigger::SourceKind;
use personas_core::{ExecutionId, MessageStatus, PersonaId, ReviewStatus};
use rusqlite::{Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub struct ProtocolRepo<'s> {
    store: &'s Store,
}

/// A `user_message` in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct MessageRow {
    pub id: String,
    pub execution_id: Option<ExecutionId>,
    pub persona_id: Option<PersonaId>,
    pub persona_name: String,
    pub title: Option<String>,
    pub content: String,
    pub priority: Priority,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn opt_exec(v: Option<String>) -> Option<ExecutionId> {
    v.map(ExecutionId::from_string)
}

pub(crate) fn opt_persona(v: Option<String>) -> Option<PersonaId> {
    v.map(PersonaId::from_string)
}

const MESSAGE_COLUMNS: &str =
    "id, execution_id, persona_id, persona_name, title, content, priority, status, created_at";

fn row_to_message(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        execution_id: opt_exec(r.get(1)?),
        persona_id: opt_persona(r.get(2)?),
        persona_name: r.get(3)?,
        title: r.get(4)?,
        content: r.get(5)?,
        priority: enum_at(r, 6, "messages.priority")?,
        status: enum_at(r, 7, "messages.status")?,
        created_at: from_ms(r.get(8)?),
    })
}

impl<'s> ProtocolRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    pub fn insert_message(
        &self,
        execution_id: Option<&ExecutionId>,
        persona_id: Option<&PersonaId>,
        persona_name: &str,
        title: Option<&str>,
        content: &str,
        priority: Priority,
    ) -> Result<MessageRow, StoreError> {
        let conn = self.store.conn()?;
        let id = new_id();
        conn.execute(
            "INSERT INTO messages (id, execution_id, persona_id, persona_name, title, content, priority, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                execution_id.map(|e| e.as_str()),
                persona_id.map(|p| p.as_str()),
                persona_name,
                title,
                content,
                priority.as_str(),
                now_ms()
            ],
        )?;
        Ok(conn.query_row(
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
            [&id],
            row_to_message,
        )?)
    }

    /// Newest first.
    pub fn messages(
        &self,
        execution_id: Option<&ExecutionId>,
        limit: u32,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE (?1 IS NULL OR execution_id = ?1)
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![execution_id.map(|e| e.as_str()), limit],
            row_to_message,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Publishes an event on the bus: durable when this returns. An event emitted by an
    /// execution is one step deeper than the event that started that execution.
    pub fn insert_event(
        &self,
        event_type: &str,
        source_kind: SourceKind,
        source_id: Option<&str>,
        source_execution_id: Option<&ExecutionId>,
        target_persona_id: Option<&PersonaId>,
        payload: &Value,
    ) -> Result<EventRow, StoreError> {
        let mut event = NewEvent::new(event_type, source_kind, payload.clone());
        event.source_id = source_id.map(str::to_string);
        event.source_execution_id = source_execution_id.cloned();
        event.target_persona_id = target_persona_id.cloned();
        Ok(self.store.bus().publish(&event)?.0)
    }

    /// Events emitted by one execution, oldest first.
    pub fn events_of(&self, execution_id: &ExecutionId) -> Result<Vec<EventRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE source_execution_id = ?1 ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([execution_id.as_str()], row_to_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn insert_memory(
        &self,
        persona_id: &PersonaId,
        execution_id: Option<&ExecutionId>,
        title: &str,
        content: &str,
        category: &str,
        importance: u8,
    ) -> Result<MemoryRow, StoreError> {
        let conn = self.store.conn()?;
        let id = new_id();
        let now = now_ms();
        conn.execute(
            "INSERT INTO memories (id, persona_id, execution_id, title, content, category, importance, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            params![id, persona_id.as_str(), execution_id.map(|e| e.as_str()), title, content, category, importance, now],
        )?;
        Ok(conn.query_row(
            &format!("SELECT {MEMORY_COLUMNS} FROM memories WHERE id = ?1"),
            [&id],
            row_to_memory,
        )?)
    }

    /// A persona's memories, most important then newest first.
    pub fn memories(
        &self,
        persona_id: &PersonaId,
        limit: u32,
    ) -> Result<Vec<MemoryRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {MEMORY_COLUMNS} FROM memories WHERE persona_id = ?1
             ORDER BY importance DESC, created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![persona_id.as_str(), limit], row_to_memory)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Messages, newest first; only unread ones when `unread_only`.
    pub fn inbox(&self, unread_only: bool, limit: u32) -> Result<Vec<MessageRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE (?1 = 0 OR status = 'unread')
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![unread_only, limit], row_to_message)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Number of unread messages.
    pub fn unread_count(&self) -> Result<u64, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row(
            "SELECT COUNT(*) FROM messages WHERE status = 'unread'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Marks the given messages read (all unread ones when `ids` is `None`); returns how many
    /// changed. Unknown ids are ignored: marking read is idempotent.
    pub fn mark_read(&self, ids: Option<&[String]>) -> Result<u64, StoreError> {
        let mut conn = self.store.conn()?;
        let now = now_ms();
        crate::write_tx(&mut conn, |tx| {
            let changed = match ids {
                None => tx.execute(
                    "UPDATE messages SET status = 'read', read_at = ?1 WHERE status = 'unread'",
                    [now],
                )?,
                Some(ids) => {
                    let mut stmt = tx.prepare_cached(
                        "UPDATE messages SET status = 'read', read_at = ?2 WHERE id = ?1 AND status = 'unread'",
                    )?;
                    let mut n = 0;
                    for id in ids {
                        n += stmt.execute(params![id, now])?;
                    }
                    n
                }
            };
            Ok(changed as u64)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert_review(
        &self,
        execution_id: &ExecutionId,
        persona_id: Option<&PersonaId>,
        title: &str,
        description: Option<&str>,
        severity: Severity,
        suggested_actions: &[String],
    ) -> Result<ReviewRow, StoreError> {
        let conn = self.store.conn()?;
        let id = new_id();
        conn.execute(
            "INSERT INTO reviews (id, execution_id, persona_id, title, description, severity, suggested_actions, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                execution_id.as_str(),
                persona_id.map(|p| p.as_str()),
                title,
                description,
                severity.as_str(),
                serde_json::to_string(suggested_actions).unwrap_or_else(|_| "[]".into()),
                now_ms()
            ],
        )?;
        Ok(conn.query_row(
            &format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = ?1"),
            [&id],
            row_to_review,
        )?)
    }

    /// Reviews, optionally of one status, oldest first.
    pub fn reviews(
        &self,
        status: Option<ReviewStatus>,
        execution_id: Option<&ExecutionId>,
    ) -> Result<Vec<ReviewRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR execution_id = ?2) ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map(
            params![
                status.map(ReviewStatus::as_str),
                execution_id.map(|e| e.as_str())
            ],
            row_to_review,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
