//! What a webhook trigger keeps besides its definition: its HMAC key, sealed by the engine's
//! vault, and the deliveries it accepted recently (so a replayed request is refused).
//!
//! The store never sees a webhook key in plaintext: it stores and returns ciphertext with the
//! vault generation it was sealed under, and refuses a value sealed under a key the vault no
//! longer has. The one plaintext path left is reading keys stored before schema version 5, so
//! the engine can seal them and empty the old column ([`WebhookRepo::seal_legacy`]).

use crate::time::now_ms;
use crate::{Store, StoreError, write_tx};
use personas_core::TriggerId;
use personas_core::trigger::WebhookSecret;
use rusqlite::{OptionalExtension, params};

/// A webhook key as the vault sealed it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub sealed: Vec<u8>,
    /// The vault generation whose data key sealed it.
    pub generation: i64,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("len", &self.sealed.len())
            .field("generation", &self.generation)
            .finish()
    }
}

/// A sealed webhook key with the trigger it belongs to (for re-sealing on vault rotation).
#[derive(Debug, Clone)]
pub struct SealedWebhookSecret {
    pub trigger_id: TriggerId,
    pub secret: SealedSecret,
}

/// What became of a delivery key offered to [`WebhookRepo::claim_delivery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time seen: go on.
    New,
    /// Seen before, within the window: a replay.
    Replayed,
}

pub struct WebhookRepo<'s> {
    store: &'s Store,
}

/// Inside a transaction: refuses a value sealed under any generation but the vault's current
/// one (a rotation that committed meanwhile would otherwise leave it under a retired key).
pub(crate) fn check_vault_generation(
    tx: &rusqlite::Transaction<'_>,
    generation: i64,
) -> Result<(), StoreError> {
    let current: Option<i64> = tx
        .query_row("SELECT generation FROM vault WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    if current != Some(generation) {
        return Err(StoreError::conflict(
            "vault",
            "the vault key changed meanwhile (rotated); nothing was stored, try again",
        ));
    }
    Ok(())
}

impl<'s> WebhookRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// The sealed key of a webhook trigger, if it has one.
    pub fn secret(&self, trigger_id: &TriggerId) -> Result<Option<SealedSecret>, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn
            .prepare_cached("SELECT sealed, generation FROM webhook_secrets WHERE trigger_id = ?1")?
            .query_row([trigger_id.as_str()], |r| {
                Ok(SealedSecret {
                    sealed: r.get(0)?,
                    generation: r.get(1)?,
                })
            })
            .optional()?)
    }

    /// Replaces a webhook trigger's key (rotation by its owner). The old key stops working
    /// when this commits.
    pub fn replace_secret(
        &self,
        trigger_id: &TriggerId,
        secret: &SealedSecret,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            check_vault_generation(tx, secret.generation)?;
            let n = tx.execute(
                "UPDATE webhook_secrets SET sealed = ?2, generation = ?3, rotated_at = ?4
                 WHERE trigger_id = ?1",
                params![
                    trigger_id.as_str(),
                    secret.sealed,
                    secret.generation,
                    now_ms()
                ],
            )?;
            if n != 1 {
                return Err(StoreError::not_found(
                    "webhook secret of trigger",
                    trigger_id.as_str(),
                ));
            }
            Ok(())
        })
    }

    /// Every sealed webhook key, for re-sealing under a new vault key.
    pub fn all_sealed(&self) -> Result<Vec<SealedWebhookSecret>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(
            "SELECT trigger_id, sealed, generation FROM webhook_secrets ORDER BY trigger_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SealedWebhookSecret {
                trigger_id: TriggerId::from_string(r.get::<_, String>(0)?),
                secret: SealedSecret {
                    sealed: r.get(1)?,
                    generation: r.get(2)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Webhook keys still in plaintext from before schema version 5.
    pub fn legacy_plaintext(&self) -> Result<Vec<(TriggerId, WebhookSecret)>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt =
            conn.prepare("SELECT id, secret FROM triggers WHERE secret IS NOT NULL ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                TriggerId::from_string(r.get::<_, String>(0)?),
                WebhookSecret::new(r.get::<_, String>(1)?),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores the sealed form of a pre-version-5 key and empties its plaintext column, in one
    /// transaction. Freed pages are zeroed (`secure_delete`) so the old plaintext does not
    /// linger in the file.
    pub fn seal_legacy(
        &self,
        trigger_id: &TriggerId,
        secret: &SealedSecret,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.conn()?;
        conn.execute_batch("PRAGMA secure_delete = ON")?;
        let result = write_tx(&mut conn, |tx| {
            check_vault_generation(tx, secret.generation)?;
            tx.execute(
                "INSERT INTO webhook_secrets (trigger_id, sealed, generation, created_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (trigger_id) DO NOTHING",
                params![
                    trigger_id.as_str(),
                    secret.sealed,
                    secret.generation,
                    now_ms()
                ],
            )?;
            tx.execute(
                "UPDATE triggers SET secret = NULL WHERE id = ?1",
                [trigger_id.as_str()],
            )?;
            Ok(())
        });
        conn.execute_batch("PRAGMA secure_delete = OFF")?;
        result?;
        // Move the rewritten pages into the main file now, so neither the WAL nor the file
        // keeps the old page images longer than needed.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Records a delivery key for a trigger, unless it is already recorded (a replay). Keys
    /// whose window has passed are pruned on the way. `expires_at_ms` is when the request's
    /// signed time leaves the acceptance window (after that it is refused as stale anyway).
    pub fn claim_delivery(
        &self,
        trigger_id: &TriggerId,
        key: &str,
        expires_at_ms: i64,
    ) -> Result<Claim, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            tx.prepare_cached("DELETE FROM webhook_deliveries WHERE expires_at < ?1")?
                .execute([now_ms()])?;
            let n = tx
                .prepare_cached(
                    "INSERT INTO webhook_deliveries (trigger_id, delivery_key, expires_at)
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )?
                .execute(params![trigger_id.as_str(), key, expires_at_ms])?;
            Ok(if n == 1 { Claim::New } else { Claim::Replayed })
        })
    }

    /// Forgets a claimed delivery whose event could not be stored, so the sender's retry of the
    /// same request is not taken for a replay.
    pub fn release_delivery(&self, trigger_id: &TriggerId, key: &str) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "DELETE FROM webhook_deliveries WHERE trigger_id = ?1 AND delivery_key = ?2",
            params![trigger_id.as_str(), key],
        )?;
        Ok(())
    }

    /// How many delivery keys are kept now (for tests and `doctor`).
    pub fn delivery_count(&self) -> Result<u64, StoreError> {
        let conn = self.store.conn()?;
        Ok(conn.query_row("SELECT COUNT(*) FROM webhook_deliveries", [], |r| r.get(0))?)
    }
}
