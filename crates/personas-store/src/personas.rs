//! Personas and their prompt versions.

use crate::error::json_col;
use crate::time::{from_ms, now_ms};
use crate::{Store, StoreError, write_tx};
use personas_core::{
    ANY_PERSONA, PermissionPolicy, Persona, PersonaId, PersonaSpec, PromptVersion, validate,
};
use rusqlite::{OptionalExtension, Row, params};

pub struct PersonaRepo<'s> {
    store: &'s Store,
}

/// Credentials and tools to link to a persona in the same transaction as its settings.
/// `None` leaves a set as it is; `Some` replaces it (ids, already resolved by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonaLinks {
    pub credentials: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
}

impl PersonaLinks {
    fn write(&self, tx: &rusqlite::Transaction<'_>, id: &PersonaId) -> Result<(), StoreError> {
        if let Some(c) = &self.credentials {
            crate::credentials::replace_persona_credentials(tx, id, c)?;
        }
        if let Some(t) = &self.tools {
            crate::tools::replace_persona_tools(tx, id, t)?;
        }
        Ok(())
    }
}

const COLUMNS: &str = "id, name, description, instructions, sections, model, max_concurrent, \
    timeout_secs, max_turns, max_budget_usd, permissions, enabled, prompt_version, created_at, \
    updated_at";

fn row_to_persona(r: &Row<'_>) -> rusqlite::Result<Persona> {
    let sections: String = r.get(4)?;
    let permissions: String = r.get(10)?;
    Ok(Persona {
        id: PersonaId::from_string(r.get::<_, String>(0)?),
        name: r.get(1)?,
        description: r.get(2)?,
        instructions: r.get(3)?,
        sections: json_col("sections", &sections)?,
        model: r.get(5)?,
        max_concurrent: r.get(6)?,
        timeout_secs: r.get(7)?,
        max_turns: r.get(8)?,
        max_budget_usd: r.get(9)?,
        permissions: json_col("permissions", &permissions)?,
        enabled: r.get(11)?,
        prompt_version: r.get(12)?,
        created_at: from_ms(r.get(13)?),
        updated_at: from_ms(r.get(14)?),
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising plain domain structs to JSON cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Maps SQLite's UNIQUE failure on the name to a message a user can act on.
fn name_conflict(e: rusqlite::Error, name: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && msg.contains("personas.name") =>
        {
            StoreError::conflict("name", format!("a persona named {name:?} already exists"))
        }
        _ => StoreError::Sqlite(e),
    }
}

/// `policy` with its `allow_personas` entries (names or ids) replaced by persona ids, in order
/// and without repeats; `*` stays. An entry naming no persona is refused, naming it.
fn with_target_ids(
    tx: &rusqlite::Connection,
    policy: &PermissionPolicy,
) -> Result<PermissionPolicy, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM personas WHERE id = ?1 OR name = ?1 COLLATE NOCASE LIMIT 1",
    )?;
    let mut ids: Vec<String> = Vec::with_capacity(policy.allow_personas.len());
    for target in &policy.allow_personas {
        let id = if target == ANY_PERSONA {
            target.clone()
        } else {
            stmt.query_row([target], |r| r.get::<_, String>(0))
                .optional()?
                .ok_or_else(|| {
                    StoreError::Invalid(validate::ValidationError::new(
                        "allow_personas",
                        format!("no persona named {target:?}"),
                    ))
                })?
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(PermissionPolicy {
        allow_personas: ids,
        ..policy.clone()
    })
}

/// Removes a deleted persona from every other persona's `allow_personas`, so no stale id is
/// left behind in a policy.
fn forget_target(tx: &rusqlite::Connection, deleted: &PersonaId) -> Result<(), StoreError> {
    let mut stmt =
        tx.prepare("SELECT id, permissions FROM personas WHERE instr(permissions, ?1) > 0")?;
    let rows = stmt
        .query_map([deleted.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, text) in rows {
        let mut policy: PermissionPolicy = json_col("permissions", &text)?;
        policy.allow_personas.retain(|t| t != deleted.as_str());
        tx.execute(
            "UPDATE personas SET permissions = ?2 WHERE id = ?1",
            params![id, to_json(&policy)],
        )?;
    }
    Ok(())
}

impl<'s> PersonaRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Validates and stores a new persona with prompt version 1.
    pub fn create(&self, spec: &PersonaSpec) -> Result<Persona, StoreError> {
        self.create_linked(spec, &PersonaLinks::default())
    }

    /// As [`PersonaRepo::create`], linking credentials and tools in the same transaction.
    pub fn create_linked(
        &self,
        spec: &PersonaSpec,
        links: &PersonaLinks,
    ) -> Result<Persona, StoreError> {
        validate::persona_spec(spec)?;
        let id = PersonaId::new();
        let now = now_ms();
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let permissions = with_target_ids(tx, &spec.permissions)?;
            tx.execute(
                &format!("INSERT INTO personas ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, ?13, ?13)"),
                params![
                    id.as_str(),
                    spec.name,
                    spec.description,
                    spec.instructions,
                    to_json(&spec.sections),
                    spec.model,
                    spec.max_concurrent,
                    spec.timeout_secs,
                    spec.max_turns,
                    spec.max_budget_usd,
                    to_json(&permissions),
                    spec.enabled,
                    now
                ],
            )
            .map_err(|e| name_conflict(e, &spec.name))?;
            tx.execute(
                "INSERT INTO prompt_versions (persona_id, version, instructions, sections, created_at) VALUES (?1, 1, ?2, ?3, ?4)",
                params![id.as_str(), spec.instructions, to_json(&spec.sections), now],
            )?;
            links.write(tx, &id)
        })?;
        self.get(&id)
    }

    pub fn get(&self, id: &PersonaId) -> Result<Persona, StoreError> {
        let conn = self.store.conn()?;
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM personas WHERE id = ?1"),
            [id.as_str()],
            row_to_persona,
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found("persona", id.as_str()))
    }

    /// Looks a persona up by id, or by name (case-insensitive).
    pub fn find(&self, name_or_id: &str) -> Result<Persona, StoreError> {
        let conn = self.store.conn()?;
        let found = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM personas WHERE id = ?1 OR name = ?1 COLLATE NOCASE LIMIT 1"),
                [name_or_id],
                row_to_persona,
            )
            .optional()?;
        found.ok_or_else(|| StoreError::not_found("persona", name_or_id))
    }

    pub fn list(&self) -> Result<Vec<Persona>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM personas ORDER BY name COLLATE NOCASE"
        ))?;
        let rows = stmt.query_map([], row_to_persona)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces a persona's settings with `spec`. A change to instructions or sections adds a
    /// new prompt version.
    pub fn update(&self, name_or_id: &str, spec: &PersonaSpec) -> Result<Persona, StoreError> {
        self.update_linked(name_or_id, spec, &PersonaLinks::default())
    }

    /// As [`PersonaRepo::update`], replacing linked credentials and tools in the same
    /// transaction.
    pub fn update_linked(
        &self,
        name_or_id: &str,
        spec: &PersonaSpec,
        links: &PersonaLinks,
    ) -> Result<Persona, StoreError> {
        validate::persona_spec(spec)?;
        let current = self.find(name_or_id)?;
        let now = now_ms();
        let new_version = if PersonaSpec::from(&current).prompt_differs(spec) {
            current.prompt_version + 1
        } else {
            current.prompt_version
        };
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let permissions = with_target_ids(tx, &spec.permissions)?;
            let changed = tx
                .execute(
                    "UPDATE personas SET name = ?2, description = ?3, instructions = ?4, sections = ?5,
                        model = ?6, max_concurrent = ?7, timeout_secs = ?8, max_turns = ?9,
                        max_budget_usd = ?10, permissions = ?11, enabled = ?12, prompt_version = ?13,
                        updated_at = ?14
                     WHERE id = ?1 AND prompt_version = ?15",
                    params![
                        current.id.as_str(),
                        spec.name,
                        spec.description,
                        spec.instructions,
                        to_json(&spec.sections),
                        spec.model,
                        spec.max_concurrent,
                        spec.timeout_secs,
                        spec.max_turns,
                        spec.max_budget_usd,
                        to_json(&permissions),
                        spec.enabled,
                        new_version,
                        now,
                        current.prompt_version,
                    ],
                )
                .map_err(|e| name_conflict(e, &spec.name))?;
            if changed == 0 {
                // Someone else changed the prompt between our read and write.
                return Err(StoreError::conflict(
                    "persona",
                    format!("{} was changed concurrently; try again", current.name),
                ));
            }
            if new_version != current.prompt_version {
                tx.execute(
                    "INSERT INTO prompt_versions (persona_id, version, instructions, sections, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![current.id.as_str(), new_version, spec.instructions, to_json(&spec.sections), now],
                )?;
            }
            links.write(tx, &current.id)
        })?;
        self.get(&current.id)
    }

    /// Deletes a persona. Refused while one of its executions is running; queued ones are
    /// cancelled. Past executions stay in history under the persona's name.
    pub fn delete(&self, name_or_id: &str) -> Result<Persona, StoreError> {
        let persona = self.find(name_or_id)?;
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let running: i64 = tx.query_row(
                "SELECT COUNT(*) FROM executions WHERE persona_id = ?1 AND status IN ('running', 'awaiting_review')",
                [persona.id.as_str()],
                |r| r.get(0),
            )?;
            if running > 0 {
                return Err(StoreError::conflict(
                    "persona",
                    format!(
                        "{} has {running} execution(s) in progress; cancel them first",
                        persona.name
                    ),
                ));
            }
            tx.execute(
                "UPDATE executions SET status = 'cancelled', error_class = 'cancelled',
                    error_message = 'persona deleted before the run started', finished_at = ?2
                 WHERE persona_id = ?1 AND status = 'queued'",
                params![persona.id.as_str(), now_ms()],
            )?;
            tx.execute("DELETE FROM personas WHERE id = ?1", [persona.id.as_str()])?;
            forget_target(tx, &persona.id)
        })?;
        Ok(persona)
    }

    /// The names of the personas a policy lets its persona start, in order (`*` stays `*`).
    /// Ids of personas deleted meanwhile are left out.
    pub fn target_names(&self, policy: &PermissionPolicy) -> Result<Vec<String>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare_cached("SELECT name FROM personas WHERE id = ?1")?;
        let mut out = Vec::new();
        for target in &policy.allow_personas {
            if target == ANY_PERSONA {
                out.push(target.clone());
            } else if let Some(name) = stmt
                .query_row([target], |r| r.get::<_, String>(0))
                .optional()?
            {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Every prompt version of a persona, oldest first.
    pub fn prompt_versions(&self, id: &PersonaId) -> Result<Vec<PromptVersion>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT persona_id, version, instructions, sections, created_at FROM prompt_versions
             WHERE persona_id = ?1 ORDER BY version",
        )?;
        let rows = stmt.query_map([id.as_str()], |r| {
            let sections: String = r.get(3)?;
            Ok(PromptVersion {
                persona_id: PersonaId::from_string(r.get::<_, String>(0)?),
                version: r.get(1)?,
                instructions: r.get(2)?,
                sections: json_col("sections", &sections)?,
                created_at: from_ms(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
