//! Credentials, their fields, their links to personas, and the vault's key record.
//!
//! This repository stores what the engine's vault gives it: non-secret field values as text and
//! secret ones as sealed bytes (nonce ‖ AES-256-GCM ciphertext) tagged with the key generation
//! that sealed them. It never sees a key or a plaintext secret; the schema refuses a secret field
//! that carries plain text.

use crate::error::json_col;
use crate::time::{from_ms, now_ms, opt_from_ms};
use crate::webhooks::SealedWebhookSecret;
use crate::{Store, StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::{PersonaId, validate};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use std::collections::BTreeMap;

pub struct CredentialRepo<'s> {
    store: &'s Store,
}

/// A credential as listed: never a secret value, sealed or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CredentialRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// Field names with the variable each becomes in a run (after the user's renames).
    pub env_overrides: BTreeMap<String, String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_check_ok: Option<bool>,
    pub last_check_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One stored field. `sealed` is ciphertext and is skipped when serialised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredField {
    pub field: String,
    pub secret: bool,
    /// The value of a non-secret field.
    pub plain: Option<String>,
    #[serde(skip)]
    pub sealed: Option<Vec<u8>>,
    #[serde(skip)]
    pub generation: Option<i64>,
}

impl StoredField {
    pub fn plain(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            secret: false,
            plain: Some(value.into()),
            sealed: None,
            generation: None,
        }
    }

    pub fn sealed(field: impl Into<String>, sealed: Vec<u8>, generation: i64) -> Self {
        Self {
            field: field.into(),
            secret: true,
            plain: None,
            sealed: Some(sealed),
            generation: Some(generation),
        }
    }
}

/// A new credential: the id is chosen by the caller because the vault binds each sealed value
/// to its credential id (so a sealed value copied to another row does not open).
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub env_overrides: BTreeMap<String, String>,
    pub fields: Vec<StoredField>,
}

/// The vault's key record (see V3__vault.sql).
#[derive(Debug, Clone, PartialEq)]
pub struct VaultRecord {
    pub vault_id: String,
    pub key_source: String,
    pub generation: i64,
    pub kdf: Option<String>,
    pub kdf_params: Option<String>,
    pub salt: Option<Vec<u8>>,
    pub wrapped_key: Option<Vec<u8>>,
    pub key_check: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

/// One stored sealed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub credential_id: String,
    pub field: String,
    pub sealed: Vec<u8>,
    pub generation: i64,
}

/// One sealed value re-sealed under a new key, for [`CredentialRepo::rotate`].
#[derive(Debug, Clone)]
pub struct Resealed {
    pub credential_id: String,
    pub field: String,
    pub sealed: Vec<u8>,
}

/// The result of a health check, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRecord {
    pub ok: bool,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, name, kind, env_overrides, last_checked_at, last_check_ok, \
    last_check_error, created_at, updated_at";

fn row_to_credential(r: &Row<'_>) -> rusqlite::Result<CredentialRow> {
    let env: String = r.get(3)?;
    Ok(CredentialRow {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        env_overrides: json_col("env_overrides", &env)?,
        last_checked_at: opt_from_ms(r.get(4)?),
        last_check_ok: r.get(5)?,
        last_check_error: r.get(6)?,
        created_at: from_ms(r.get(7)?),
        updated_at: from_ms(r.get(8)?),
    })
}

fn row_to_vault(r: &Row<'_>) -> rusqlite::Result<VaultRecord> {
    Ok(VaultRecord {
        vault_id: r.get(0)?,
        key_source: r.get(1)?,
        generation: r.get(2)?,
        kdf: r.get(3)?,
        kdf_params: r.get(4)?,
        salt: r.get(5)?,
        wrapped_key: r.get(6)?,
        key_check: r.get(7)?,
        created_at: from_ms(r.get(8)?),
        rotated_at: opt_from_ms(r.get(9)?),
    })
}

fn name_conflict(e: rusqlite::Error, name: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && msg.contains("credentials.name") =>
        {
            StoreError::conflict(
                "name",
                format!("a credential named {name:?} already exists"),
            )
        }
        _ => StoreError::Sqlite(e),
    }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

impl<'s> CredentialRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// The vault's key record, if the vault was created.
    pub fn vault(&self) -> Result<Option<VaultRecord>, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn
            .query_row(
                "SELECT vault_id, key_source, generation, kdf, kdf_params, salt, wrapped_key,
                        key_check, created_at, rotated_at FROM vault WHERE id = 1",
                [],
                row_to_vault,
            )
            .optional()?)
    }

    /// Creates the vault record. Refused when one exists (two processes creating a vault at
    /// once: the loser must use the winner's key, never replace it).
    pub fn create_vault(&self, v: &VaultRecord) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        let changed = conn.execute(
            "INSERT OR IGNORE INTO vault (id, vault_id, key_source, generation, kdf, kdf_params,
                salt, wrapped_key, key_check, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                v.vault_id,
                v.key_source,
                v.generation,
                v.kdf,
                v.kdf_params,
                v.salt,
                v.wrapped_key,
                v.key_check,
                now_ms()
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::conflict(
                "vault",
                "a vault was created meanwhile; open it instead",
            ));
        }
        Ok(())
    }

    /// Stores a credential with its (already sealed) fields in one transaction.
    pub fn create(&self, new: &NewCredential) -> Result<CredentialRow, StoreError> {
        validate::resource_name("name", &new.name)?;
        let now = now_ms();
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            check_generation(tx, &new.fields)?;
            tx.execute(
                "INSERT INTO credentials (id, name, kind, env_overrides, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![new.id, new.name, new.kind, to_json(&new.env_overrides), now],
            )
            .map_err(|e| name_conflict(e, &new.name))?;
            for f in &new.fields {
                tx.execute(
                    "INSERT INTO credential_fields (credential_id, field, secret, plain, sealed, generation)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![new.id, f.field, f.secret, f.plain, f.sealed, f.generation],
                )?;
            }
            Ok(())
        })?;
        self.find(&new.id)
    }

    /// Replaces a credential's name, variable renames and fields in one transaction (the
    /// caller passes every field the credential keeps, sealed ones included). The last health
    /// check is cleared: it was made with the old values.
    pub fn update(
        &self,
        id: &str,
        name: &str,
        env_overrides: &BTreeMap<String, String>,
        fields: &[StoredField],
    ) -> Result<CredentialRow, StoreError> {
        validate::resource_name("name", name)?;
        let now = now_ms();
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            check_generation(tx, fields)?;
            let changed = tx
                .execute(
                    "UPDATE credentials SET name = ?2, env_overrides = ?3, updated_at = ?4,
                        last_checked_at = NULL, last_check_ok = NULL, last_check_error = NULL
                     WHERE id = ?1",
                    params![id, name, to_json(env_overrides), now],
                )
                .map_err(|e| name_conflict(e, name))?;
            if changed == 0 {
                return Err(StoreError::not_found("credential", id));
            }
            tx.execute(
                "DELETE FROM credential_fields WHERE credential_id = ?1",
                [id],
            )?;
            for f in fields {
                tx.execute(
                    "INSERT INTO credential_fields (credential_id, field, secret, plain, sealed, generation)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, f.field, f.secret, f.plain, f.sealed, f.generation],
                )?;
            }
            Ok(())
        })?;
        self.find(id)
    }

    /// By id or name (case-insensitive).
    pub fn find(&self, name_or_id: &str) -> Result<CredentialRow, StoreError> {
        let conn = self.store.conn()?;
        conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM credentials WHERE id = ?1 OR name = ?1 COLLATE NOCASE LIMIT 1"
            ),
            [name_or_id],
            row_to_credential,
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found("credential", name_or_id))
    }

    pub fn list(&self) -> Result<Vec<CredentialRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM credentials ORDER BY name COLLATE NOCASE"
        ))?;
        let rows = stmt.query_map([], row_to_credential)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A credential's fields in name order (sealed values included, for the vault to open).
    pub fn fields(&self, credential_id: &str) -> Result<Vec<StoredField>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT field, secret, plain, sealed, generation FROM credential_fields
             WHERE credential_id = ?1 ORDER BY field",
        )?;
        let rows = stmt.query_map([credential_id], |r| {
            Ok(StoredField {
                field: r.get(0)?,
                secret: r.get(1)?,
                plain: r.get(2)?,
                sealed: r.get(3)?,
                generation: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Names of the personas a credential is linked to.
    pub fn linked_personas(&self, credential_id: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT p.name FROM persona_credentials pc JOIN personas p ON p.id = pc.persona_id
             WHERE pc.credential_id = ?1 ORDER BY p.name COLLATE NOCASE",
        )?;
        let rows = stmt.query_map([credential_id], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a credential and its sealed values. Refused while personas use it, unless
    /// `force` (then they lose the link).
    pub fn remove(&self, name_or_id: &str, force: bool) -> Result<CredentialRow, StoreError> {
        let c = self.find(name_or_id)?;
        let users = self.linked_personas(&c.id)?;
        if !users.is_empty() && !force {
            return Err(StoreError::conflict(
                "credential",
                format!(
                    "{} is used by {}; unlink it first or pass --force",
                    c.name,
                    users.join(", ")
                ),
            ));
        }
        let conn = self.store.conn()?;
        conn.execute("DELETE FROM credentials WHERE id = ?1", [&c.id])?;
        Ok(c)
    }

    /// Records a health check. The error text must already be free of secret values.
    pub fn record_check(&self, credential_id: &str, check: &CheckRecord) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE credentials SET last_checked_at = ?2, last_check_ok = ?3, last_check_error = ?4
             WHERE id = ?1",
            params![credential_id, now_ms(), check.ok, check.error],
        )?;
        Ok(())
    }

    /// Credentials linked to a persona, by name.
    pub fn of_persona(&self, persona_id: &PersonaId) -> Result<Vec<CredentialRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM credentials c JOIN persona_credentials pc ON pc.credential_id = c.id
             WHERE pc.persona_id = ?1 ORDER BY c.name COLLATE NOCASE",
            COLUMNS
                .split(", ")
                .map(|c| format!("c.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        let rows = stmt.query_map([persona_id.as_str()], row_to_credential)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Replaces the set of credentials linked to a persona.
    pub fn set_persona_credentials(
        &self,
        persona_id: &PersonaId,
        credential_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            replace_persona_credentials(tx, persona_id, credential_ids)
        })
    }

    /// Every sealed value with its credential id, for re-sealing under a new key.
    pub fn all_sealed(&self) -> Result<Vec<SealedValue>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT credential_id, field, sealed, generation FROM credential_fields
             WHERE secret = 1 ORDER BY credential_id, field",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SealedValue {
                credential_id: r.get(0)?,
                field: r.get(1)?,
                sealed: r.get(2)?,
                generation: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Installs a new key record and every value re-sealed under it, in one transaction, only
    /// if the vault is still at `from_generation` and every sealed value was re-sealed (a value
    /// added meanwhile would otherwise stay under a key that no longer exists).
    pub fn rotate(
        &self,
        from_generation: i64,
        record: &VaultRecord,
        resealed: &[Resealed],
    ) -> Result<(), StoreError> {
        self.rotate_all(from_generation, record, resealed, &[], None)
    }

    /// [`CredentialRepo::rotate`], with every webhook key and the cloud connection's token
    /// re-sealed too (all of them, or nothing changes).
    pub fn rotate_all(
        &self,
        from_generation: i64,
        record: &VaultRecord,
        resealed: &[Resealed],
        webhooks: &[SealedWebhookSecret],
        cloud_token: Option<&crate::webhooks::SealedSecret>,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let current: i64 =
                tx.query_row("SELECT generation FROM vault WHERE id = 1", [], |r| {
                    r.get(0)
                })?;
            if current != from_generation {
                return Err(StoreError::conflict(
                    "vault",
                    "the vault was rotated by another process meanwhile; nothing was changed",
                ));
            }
            let sealed_now: i64 = tx.query_row(
                "SELECT COUNT(*) FROM credential_fields WHERE secret = 1",
                [],
                |r| r.get(0),
            )?;
            if sealed_now != resealed.len() as i64 {
                return Err(StoreError::conflict(
                    "vault",
                    "credentials changed during the rotation; nothing was changed, run it again",
                ));
            }
            for r in resealed {
                let n = tx.execute(
                    "UPDATE credential_fields SET sealed = ?3, generation = ?4
                     WHERE credential_id = ?1 AND field = ?2 AND secret = 1 AND generation = ?5",
                    params![
                        r.credential_id,
                        r.field,
                        r.sealed,
                        record.generation,
                        from_generation
                    ],
                )?;
                if n != 1 {
                    return Err(StoreError::conflict(
                        "vault",
                        "credentials changed during the rotation; nothing was changed, run it again",
                    ));
                }
            }
            let webhooks_now: i64 =
                tx.query_row("SELECT COUNT(*) FROM webhook_secrets", [], |r| r.get(0))?;
            if webhooks_now != webhooks.len() as i64 {
                return Err(StoreError::conflict(
                    "vault",
                    "webhook secrets changed during the rotation; nothing was changed, run it again",
                ));
            }
            for w in webhooks {
                let n = tx.execute(
                    "UPDATE webhook_secrets SET sealed = ?2, generation = ?3
                     WHERE trigger_id = ?1 AND generation = ?4",
                    params![
                        w.trigger_id.as_str(),
                        w.secret.sealed,
                        record.generation,
                        from_generation
                    ],
                )?;
                if n != 1 {
                    return Err(StoreError::conflict(
                        "vault",
                        "webhook secrets changed during the rotation; nothing was changed, run it again",
                    ));
                }
            }
            crate::cloud::reseal_token_in(tx, from_generation, record.generation, cloud_token)?;
            tx.execute(
                "UPDATE vault SET key_source = ?1, generation = ?2, kdf = ?3, kdf_params = ?4,
                    salt = ?5, wrapped_key = ?6, key_check = ?7, rotated_at = ?8 WHERE id = 1",
                params![
                    record.key_source,
                    record.generation,
                    record.kdf,
                    record.kdf_params,
                    record.salt,
                    record.wrapped_key,
                    record.key_check,
                    now_ms()
                ],
            )?;
            Ok(())
        })
    }

    /// Stores the hash of a run's MCP token.
    pub fn issue_run_token(&self, execution_id: &str, token_hash: &str) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "INSERT OR REPLACE INTO run_tokens (execution_id, token_hash, created_at) VALUES (?1, ?2, ?3)",
            params![execution_id, token_hash, now_ms()],
        )?;
        Ok(())
    }

    /// The execution a token hash was issued to, if it is not revoked and the execution is
    /// still in progress.
    pub fn run_token_execution(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn
            .query_row(
                "SELECT t.execution_id FROM run_tokens t JOIN executions e ON e.id = t.execution_id
                 WHERE t.token_hash = ?1 AND t.revoked_at IS NULL
                   AND e.status IN ('running', 'awaiting_review')",
                [token_hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Ends a run's token (called when the run ends).
    pub fn revoke_run_token(&self, execution_id: &str) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE run_tokens SET revoked_at = ?2 WHERE execution_id = ?1 AND revoked_at IS NULL",
            params![execution_id, now_ms()],
        )?;
        Ok(())
    }
}

/// Sealed values may only be stored under the vault's current key: a rotation that committed
/// after the caller opened the vault would otherwise leave a value under a retired key.
fn check_generation(
    tx: &rusqlite::Transaction<'_>,
    fields: &[StoredField],
) -> Result<(), StoreError> {
    let generation: Option<i64> = tx
        .query_row("SELECT generation FROM vault WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    for f in fields.iter().filter(|f| f.secret) {
        if generation.is_none() || f.generation != generation {
            return Err(StoreError::conflict(
                "vault",
                "the vault key changed meanwhile (rotated); nothing was stored, try again",
            ));
        }
    }
    Ok(())
}

/// Inside a transaction: the persona's linked credentials become exactly `credential_ids`.
pub(crate) fn replace_persona_credentials(
    tx: &rusqlite::Transaction<'_>,
    persona_id: &PersonaId,
    credential_ids: &[String],
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM persona_credentials WHERE persona_id = ?1",
        [persona_id.as_str()],
    )?;
    for id in credential_ids {
        tx.execute(
            "INSERT OR IGNORE INTO persona_credentials (persona_id, credential_id) VALUES (?1, ?2)",
            params![persona_id.as_str(), id],
        )?;
    }
    Ok(())
}
