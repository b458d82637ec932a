//! A persona's memories as a person manages them (`personas memory list|add|edit|delete`).
//! Runs add memories through the protocol (`ProtocolRepo::insert_memory`); the runner offers
//! the most important, then newest, to later runs within the prompt's memory budget.

use crate::lookup::Lookup;
use crate::protocol::opt_exec;
use crate::time::{from_ms, now_ms};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use personas_core::{ExecutionId, PersonaId};
use rusqlite::{Connection, Row, params};
use serde::{Deserialize, Serialize};

pub struct MemoryRepo<'s> {
    store: &'s Store,
}

/// Changes to a memory; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct MemoryEdit {
    pub title: Option<String>,
    pub content: Option<String>,
    pub category: Option<String>,
    pub importance: Option<u8>,
}

/// A persona's memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct MemoryRow {
    pub id: String,
    pub persona_id: PersonaId,
    pub execution_id: Option<ExecutionId>,
    pub title: String,
    pub content: String,
    pub category: String,
    pub importance: u8,
    pub created_at: DateTime<Utc>,
}

pub(crate) const MEMORY_COLUMNS: &str =
    "id, persona_id, execution_id, title, content, category, importance, created_at";

pub(crate) fn row_to_memory(r: &Row<'_>) -> rusqlite::Result<MemoryRow> {
    Ok(MemoryRow {
        id: r.get(0)?,
        persona_id: PersonaId::from_string(r.get::<_, String>(1)?),
        execution_id: opt_exec(r.get(2)?),
        title: r.get(3)?,
        content: r.get(4)?,
        category: r.get(5)?,
        importance: r.get(6)?,
        created_at: from_ms(r.get(7)?),
    })
}

fn check(title: &str, content: &str, category: &str, importance: u8) -> Result<(), StoreError> {
    if title.trim().is_empty() {
        return Err(StoreError::conflict("title", "must not be empty"));
    }
    if content.trim().is_empty() {
        return Err(StoreError::conflict("content", "must not be empty"));
    }
    if category.trim().is_empty() {
        return Err(StoreError::conflict("category", "must not be empty"));
    }
    if !(1..=5).contains(&importance) {
        return Err(StoreError::conflict(
            "importance",
            format!("must be between 1 and 5, got {importance}"),
        ));
    }
    Ok(())
}

fn find_in(conn: &Connection, id_or_prefix: &str) -> Result<MemoryRow, StoreError> {
    Lookup {
        what: "memory",
        select: &format!("SELECT {MEMORY_COLUMNS} FROM memories"),
        id_column: "id",
    }
    .find(conn, id_or_prefix, row_to_memory)
}

impl<'s> MemoryRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Memories of one persona or all, most important then newest first.
    pub fn list(
        &self,
        persona_id: Option<&PersonaId>,
        limit: u32,
    ) -> Result<Vec<MemoryRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {MEMORY_COLUMNS} FROM memories WHERE (?1 IS NULL OR persona_id = ?1)
             ORDER BY importance DESC, created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![persona_id.map(|p| p.as_str()), limit],
            row_to_memory,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A memory by id or unique id prefix (at least 4 characters).
    pub fn find(&self, id_or_prefix: &str) -> Result<MemoryRow, StoreError> {
        let conn = self.store.conn()?;
        find_in(&conn, id_or_prefix)
    }

    /// A memory written by a person (no execution).
    pub fn add(
        &self,
        persona_id: &PersonaId,
        title: &str,
        content: &str,
        category: &str,
        importance: u8,
    ) -> Result<MemoryRow, StoreError> {
        check(title, content, category, importance)?;
        self.store
            .protocol()
            .insert_memory(
                persona_id,
                None,
                title.trim(),
                content.trim(),
                category.trim(),
                importance,
            )
            .map_err(|e| match e {
                StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::not_found("persona", persona_id.as_str())
                }
                other => other,
            })
    }

    pub fn edit(&self, id_or_prefix: &str, edit: &MemoryEdit) -> Result<MemoryRow, StoreError> {
        let conn = self.store.conn()?;
        let current = find_in(&conn, id_or_prefix)?;
        let title = edit.title.clone().unwrap_or(current.title);
        let content = edit.content.clone().unwrap_or(current.content);
        let category = edit.category.clone().unwrap_or(current.category);
        let importance = edit.importance.unwrap_or(current.importance);
        check(&title, &content, &category, importance)?;
        conn.execute(
            "UPDATE memories SET title = ?2, content = ?3, category = ?4, importance = ?5,
                updated_at = ?6 WHERE id = ?1",
            params![
                current.id,
                title.trim(),
                content.trim(),
                category.trim(),
                importance,
                now_ms()
            ],
        )?;
        find_in(&conn, &current.id)
    }

    pub fn delete(&self, id_or_prefix: &str) -> Result<MemoryRow, StoreError> {
        let conn = self.store.conn()?;
        let current = find_in(&conn, id_or_prefix)?;
        conn.execute("DELETE FROM memories WHERE id = ?1", [&current.id])?;
        Ok(current)
    }
}
