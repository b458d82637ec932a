//! Triggers and the subscriptions event triggers stand for.
//!
//! A trigger row holds its kind's JSON definition. An `event` trigger also gets a subscription
//! row with its pattern normalised for the matcher; a `chain` trigger records the persona it
//! waits for in an indexed column; a `cron` trigger keeps its next due time; a `webhook`
//! trigger's HMAC key is stored sealed beside it (`webhooks`), never in plaintext.

use crate::bus::EventRow;
use crate::bus::{NewEvent, get_event_in, insert_event_in};
use crate::error::{enum_at, json_col};
use crate::lookup::Lookup;
use crate::time::{from_ms, now_ms, opt_from_ms};
use crate::webhooks::{SealedSecret, check_vault_generation};
use crate::{Store, StoreError, write_tx};
use chrono::{DateTime, Utc};
use personas_core::cron::CronSchedule;
use personas_core::trigger::{EventPattern, TriggerConfig, TriggerType};
use personas_core::{PersonaId, TriggerId};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

pub struct TriggerRepo<'s> {
    store: &'s Store,
}

/// A trigger to create.
#[derive(Debug, Clone)]
pub struct NewTrigger {
    pub persona_id: PersonaId,
    pub config: TriggerConfig,
    pub enabled: bool,
}

/// A stored trigger. A webhook's secret is not part of it (see `WebhookRepo`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(ts_rs::TS, schemars::JsonSchema))]
pub struct TriggerRow {
    pub id: TriggerId,
    pub persona_id: PersonaId,
    pub persona_name: String,
    pub kind: TriggerType,
    pub config: TriggerConfig,
    /// For a chain: the name of the persona it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_persona_name: Option<String>,
    pub enabled: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
    pub fire_count: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl TriggerRow {
    /// The parsed schedule of a cron trigger.
    pub fn schedule(&self) -> Option<Result<CronSchedule, personas_core::ValidationError>> {
        match &self.config {
            TriggerConfig::Cron { expr, tz, .. } => Some(CronSchedule::parse(expr, tz)),
            _ => None,
        }
    }
}

const COLUMNS: &str = "t.id, t.persona_id, p.name, t.kind, t.config, a.name, t.enabled, \
    t.next_fire_at, t.last_fired_at, t.fire_count, t.last_error, t.last_error_at, t.created_at";

const FROM: &str = "FROM triggers t JOIN personas p ON p.id = t.persona_id \
    LEFT JOIN personas a ON a.id = t.after_persona_id";

fn row_to_trigger(r: &Row<'_>) -> rusqlite::Result<TriggerRow> {
    let config: String = r.get(4)?;
    Ok(TriggerRow {
        id: TriggerId::from_string(r.get::<_, String>(0)?),
        persona_id: PersonaId::from_string(r.get::<_, String>(1)?),
        persona_name: r.get(2)?,
        kind: enum_at(r, 3, "triggers.kind")?,
        config: json_col("config", &config)?,
        after_persona_name: r.get(5)?,
        enabled: r.get(6)?,
        next_fire_at: opt_from_ms(r.get(7)?),
        last_fired_at: opt_from_ms(r.get(8)?),
        fire_count: r.get(9)?,
        last_error: r.get(10)?,
        last_error_at: opt_from_ms(r.get(11)?),
        created_at: from_ms(r.get(12)?),
    })
}

fn get_in(conn: &rusqlite::Connection, id: &str) -> Result<Option<TriggerRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} {FROM} WHERE t.id = ?1"))?
        .query_row([id], row_to_trigger)
        .optional()?)
}

impl<'s> TriggerRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    /// Validates and stores a trigger. `now` is when a cron schedule starts counting (its
    /// first due time is the next occurrence after it). A webhook trigger needs its secret
    /// sealed first: see [`TriggerRepo::create_webhook`].
    pub fn create(&self, new: &NewTrigger, now: DateTime<Utc>) -> Result<TriggerRow, StoreError> {
        self.insert(new, now, TriggerId::new(), None)
    }

    /// Stores a webhook trigger under `id` with its secret sealed (for `id`) by the vault,
    /// provided the vault is still at the generation it was sealed under.
    pub fn create_webhook(
        &self,
        new: &NewTrigger,
        now: DateTime<Utc>,
        id: TriggerId,
        secret: &SealedSecret,
    ) -> Result<TriggerRow, StoreError> {
        self.insert(new, now, id, Some(secret))
    }

    fn insert(
        &self,
        new: &NewTrigger,
        now: DateTime<Utc>,
        id: TriggerId,
        secret: Option<&SealedSecret>,
    ) -> Result<TriggerRow, StoreError> {
        new.config.validate()?;
        let kind = new.config.trigger_type();
        let mut next_fire_at = None;
        let mut after_persona_id = None;
        let mut subscription = None;
        let is_webhook = matches!(new.config, TriggerConfig::Webhook { .. });
        if is_webhook != secret.is_some() {
            return Err(StoreError::Invalid(personas_core::ValidationError::new(
                "webhook",
                if is_webhook {
                    "a webhook trigger needs a secret sealed by the vault"
                } else {
                    "only a webhook trigger has a secret"
                },
            )));
        }
        match &new.config {
            TriggerConfig::Cron { expr, tz, .. } => {
                let schedule = CronSchedule::parse(expr, tz)?;
                next_fire_at = schedule.next_after(now).map(|t| t.timestamp_millis());
            }
            TriggerConfig::Webhook { .. } => {}
            TriggerConfig::Chain {
                after_persona_id: after,
                ..
            } => {
                self.store.personas().get(after)?;
                after_persona_id = Some(after.clone());
            }
            TriggerConfig::Event { pattern, source } => {
                subscription = Some((
                    pattern.clone(),
                    EventPattern::parse(pattern)?,
                    source.clone(),
                ));
            }
            TriggerConfig::Manual | TriggerConfig::Watch { .. } => {}
        }
        let persona = self.store.personas().get(&new.persona_id)?;
        let config = serde_json::to_string(&new.config)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode a trigger: {e}")))?;
        let created = now_ms();
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            tx.execute(
                "INSERT INTO triggers (id, persona_id, kind, config, after_persona_id,
                    enabled, next_fire_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    id.as_str(),
                    persona.id.as_str(),
                    kind.as_str(),
                    config,
                    after_persona_id.as_ref().map(|p: &PersonaId| p.as_str()),
                    new.enabled,
                    next_fire_at,
                    created
                ],
            )?;
            if let Some(secret) = secret {
                check_vault_generation(tx, secret.generation)?;
                tx.execute(
                    "INSERT INTO webhook_secrets (trigger_id, sealed, generation, created_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id.as_str(), secret.sealed, secret.generation, created],
                )?;
            }
            if let Some((raw, pattern, source)) = &subscription {
                tx.execute(
                    "INSERT INTO subscriptions (trigger_id, persona_id, pattern, match_key,
                        is_prefix, source_kind, source_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        id.as_str(),
                        persona.id.as_str(),
                        raw,
                        pattern.key,
                        pattern.prefix,
                        source.as_ref().map(|s| s.kind.as_str()),
                        source.as_ref().and_then(|s| s.id.clone()),
                        created
                    ],
                )?;
            }
            Ok(())
        })?;
        self.get(&id)
    }

    pub fn get(&self, id: &TriggerId) -> Result<TriggerRow, StoreError> {
        let conn = self.store.conn()?;
        get_in(&conn, id.as_str())?.ok_or_else(|| StoreError::not_found("trigger", id.as_str()))
    }

    /// Looks a trigger up by its id or a unique prefix of it (at least 4 characters).
    pub fn find(&self, id_or_prefix: &str) -> Result<TriggerRow, StoreError> {
        let conn = self.store.conn()?;
        Lookup {
            what: "trigger",
            select: &format!("SELECT {COLUMNS} {FROM}"),
            id_column: "t.id",
        }
        .find(&conn, id_or_prefix, row_to_trigger)
    }

    /// All triggers (or one persona's), oldest first.
    pub fn list(&self, persona: Option<&PersonaId>) -> Result<Vec<TriggerRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} {FROM} WHERE (?1 IS NULL OR t.persona_id = ?1) ORDER BY t.created_at, t.id"
        ))?;
        let rows = stmt.query_map([persona.map(|p| p.as_str())], row_to_trigger)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Enabled triggers of one kind whose persona is enabled: what the scheduler runs.
    pub fn live(&self, kind: TriggerType) -> Result<Vec<TriggerRow>, StoreError> {
        let conn = self.store.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} {FROM} WHERE t.kind = ?1 AND t.enabled = 1 AND p.enabled = 1
             ORDER BY t.next_fire_at, t.id"
        ))?;
        let rows = stmt.query_map([kind.as_str()], row_to_trigger)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a trigger (its subscription goes with it; events it fired stay in history).
    pub fn remove(&self, id_or_prefix: &str) -> Result<TriggerRow, StoreError> {
        let t = self.find(id_or_prefix)?;
        let conn = self.store.conn()?;
        conn.execute("DELETE FROM triggers WHERE id = ?1", [t.id.as_str()])?;
        Ok(t)
    }

    /// Turns a trigger on or off. Turning a cron trigger on starts its schedule from `now`,
    /// so the time it spent off does not count as missed runs.
    pub fn set_enabled(
        &self,
        id_or_prefix: &str,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<TriggerRow, StoreError> {
        let t = self.find(id_or_prefix)?;
        let next = match (enabled, t.schedule()) {
            (true, Some(s)) => s?.next_after(now).map(|n| n.timestamp_millis()),
            _ => t.next_fire_at.map(|n| n.timestamp_millis()),
        };
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE triggers SET enabled = ?2, next_fire_at = ?3, updated_at = ?4 WHERE id = ?1",
            params![t.id.as_str(), enabled, next, now_ms()],
        )?;
        self.get(&t.id)
    }

    /// Records a cron trigger's fires and its next due time in one transaction, provided it is
    /// still due at `expected_due` (else nothing happens and `None` is returned: someone
    /// changed it meanwhile). Each fire's dedupe key makes a repeated fire impossible.
    pub fn fire_scheduled(
        &self,
        id: &TriggerId,
        expected_due: Option<DateTime<Utc>>,
        events: &[NewEvent],
        next: Option<DateTime<Utc>>,
    ) -> Result<Option<Vec<EventRow>>, StoreError> {
        let mut conn = self.store.conn()?;
        write_tx(&mut conn, |tx| {
            let now = now_ms();
            let changed = tx.execute(
                "UPDATE triggers SET next_fire_at = ?3, last_error = NULL, last_error_at = NULL
                 WHERE id = ?1 AND next_fire_at IS ?2",
                params![
                    id.as_str(),
                    expected_due.map(|t| t.timestamp_millis()),
                    next.map(|t| t.timestamp_millis()),
                ],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            let mut out = Vec::new();
            for ev in events {
                let (event_id, new) = insert_event_in(tx, ev, now)?;
                if new && let Some(row) = get_event_in(tx, &event_id)? {
                    out.push(row);
                }
            }
            Ok(Some(out))
        })
    }

    /// Records why a trigger could not fire (shown by `trigger list`).
    pub fn record_error(&self, id: &TriggerId, message: &str) -> Result<(), StoreError> {
        let conn = self.store.conn()?;
        conn.execute(
            "UPDATE triggers SET last_error = ?2, last_error_at = ?3 WHERE id = ?1",
            params![id.as_str(), message, now_ms()],
        )?;
        Ok(())
    }
}
