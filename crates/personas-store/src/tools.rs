//! Custom tool definitions and which personas they are attached to.
//!
//! A tool is documented in the prompt of every persona it is attached to; how to call it is in
//! `config` (a command line, or an HTTP request template whose credential placeholders name
//! environment variables, never values).

use crate::error::json_col;
use crate::time::{from_ms, now_ms};
use crate::{Store, StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::{PersonaId, validate};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub struct ToolRepo<'s> {
    store: &'s Store,
}

/// How a tool is called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub enum ToolCall {
    /// A command line the agent runs with its Bash tool.
    Command { command: String },
    /// An HTTP request. Header and body templates may use `$ENV_VAR` of linked credentials.
    Http {
        method: String,
        url: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        body: Option<String>,
    },
}

impl ToolCall {
    fn kind(&self) -> &'static str {
        match self {
            ToolCall::Command { .. } => "command",
            ToolCall::Http { .. } => "http",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct ToolDefinition {
    pub id: String,
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub call: ToolCall,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What is needed to define a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub call: ToolCall,
}

const COLUMNS: &str = "id, name, description, input_schema, kind, config, created_at, updated_at";

fn row_to_tool(r: &Row<'_>) -> rusqlite::Result<ToolDefinition> {
    let schema: String = r.get(3)?;
    let config: String = r.get(5)?;
    Ok(ToolDefinition {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        input_schema: json_col("input_schema", &schema)?,
        call: json_col("config", &config)?,
        created_at: from_ms(r.get(6)?),
        updated_at: from_ms(r.get(7)?),
    })
}

impl<'s> ToolRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    pub fn create(&self, new: &NewTool) -> Result<ToolDefinition, StoreError> {
        validate::resource_name("name", &new.name)?;
        if new.description.trim().is_empty() {
            return Err(personas_core::ValidationError::new(
                "description",
                "must say what the tool does (the agent reads it)",
            )
            .into());
        }
        if !new.input_schema.is_object() {
            return Err(personas_core::ValidationError::new(
                "input_schema",
                "must be a JSON object (a JSON Schema)",
            )
            .into());
        }
        match &new.call {
            ToolCall::Command { command } if command.trim().is_empty() => {
                return Err(
                    personas_core::ValidationError::new("command", "must not be empty").into(),
                );
            }
            ToolCall::Http { method, url, .. } => {
                if !matches!(
                    method.to_ascii_uppercase().as_str(),
                    "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD"
                ) {
                    return Err(personas_core::ValidationError::new(
                        "method",
                        format!(
                            "{method:?} is not an HTTP method (GET, POST, PUT, PATCH, DELETE, HEAD)"
                        ),
                    )
                    .into());
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(personas_core::ValidationError::new(
                        "url",
                        format!("{url:?} must start with http:// or https://"),
                    )
                    .into());
                }
            }
            _ => {}
        }
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let conn = self.store.conn()?;
        conn.execute(
            &format!(
                "INSERT INTO tool_definitions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)"
            ),
            params![
                id,
                new.name,
                new.description,
                new.input_schema.to_string(),
                new.call.kind(),
                serde_json::to_string(&new.call).unwrap_or_else(|_| "{}".into()),
                now
            ],
        )
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, Some(msg))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
                    && msg.contains("tool_definitions.name") =>
            {
                StoreError::conflict(
                    "name",
                    format!("a tool named {:?} already exists", new.name),
                )
            }
            _ => StoreError::Sqlite(e),
        })?;
        self.find(&id)
    }

    pub fn find(&self, name_or_id: &str) -> Result<ToolDefinition, StoreError> {
        let conn = self.store.conn()?;
        conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM tool_definitions WHERE id = ?1 OR name = ?1 COLLATE NOCASE LIMIT 1"
            ),
            [name_or_id],
            row_to_tool,
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found("tool", name_or_id))
    }

    pub fn list(&self) -> Result<Vec<ToolDefinition>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM tool_definitions ORDER BY name COLLATE NOCASE"
        ))?;
        let rows = stmt.query_map([], row_to_tool)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a tool (it is detached from every persona).
    pub fn remove(&self, name_or_id: &str) -> Result<ToolDefinition, StoreError> {
        let t = self.find(name_or_id)?;
        let conn = self.store.conn()?;
        conn.execute("DELETE FROM tool_definitions WHERE id = ?1", [&t.id])?;
        Ok(t)
    }

    /// Names of the personas a tool is attached to.
    pub fn attached_personas(&self, tool_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT p.name FROM persona_tools pt JOIN personas p ON p.id = pt.persona_id
             WHERE pt.tool_id = ?1 ORDER BY p.name COLLATE NOCASE",
        )?;
        let rows = stmt.query_map([tool_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Tools attached to a persona, by name.
    pub fn of_persona(&self, persona_id: &PersonaId) -> Result<Vec<ToolDefinition>, StoreError> {
        let conn = self.store.conn()?;
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn.prepare(&format!(
            "SELECT {cols} FROM tool_definitions t JOIN persona_tools pt ON pt.tool_id = t.id
             WHERE pt.persona_id = ?1 ORDER BY t.name COLLATE NOCASE"
        ))?;
        let rows = stmt.query_map([persona_id.as_str()], row_to_tool)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces the set of tools attached to a persona.
    pub fn set_persona_tools(
        &self,
        persona_id: &PersonaId,
        tool_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            replace_persona_tools(tx, persona_id, tool_ids)
        })
    }
}

/// Inside a transaction: the persona's attached tools become exactly `tool_ids`.
pub(crate) fn replace_persona_tools(
    tx: &rusqlite::Transaction<'_>,
    persona_id: &PersonaId,
    tool_ids: &[String],
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM persona_tools WHERE persona_id = ?1",
        [persona_id.as_str()],
    )?;
    for id in tool_ids {
        tx.execute(
            "INSERT OR IGNORE INTO persona_tools (persona_id, tool_id) VALUES (?1, ?2)",
            params![persona_id.as_str(), id],
        )?;
    }
    Ok(())
}
