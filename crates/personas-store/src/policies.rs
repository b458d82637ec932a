//! Per-persona settings for review, budgets and healing (`persona_policies`). Every field is
//! optional: `None` means the runtime's default from its configuration.

use crate::time::now_ms;
use crate::{Store, StoreError};
use personas_core::PersonaId;
use personas_core::review::{OnReject, TimeoutAction};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// One persona's overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonaPolicy {
    pub review_timeout_secs: Option<u64>,
    pub review_timeout_action: Option<TimeoutAction>,
    pub on_reject: Option<OnReject>,
    pub daily_budget_usd: Option<f64>,
    pub monthly_budget_usd: Option<f64>,
    /// Consecutive failures that pause the persona.
    pub failure_threshold: Option<u32>,
    /// Scheduled retries of a transient failure.
    pub max_retries: Option<u32>,
}

pub struct PolicyRepo<'s> {
    store: &'s Store,
}

fn parse<T: std::str::FromStr<Err = String>>(v: Option<String>) -> rusqlite::Result<Option<T>> {
    v.map(|s| {
        s.parse::<T>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

/// Reads a persona's policy inside any connection or transaction (admission, healing).
pub(crate) fn policy_in(conn: &Connection, persona_id: &str) -> Result<PersonaPolicy, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT review_timeout_secs, review_timeout_action, on_reject, daily_budget_usd,
                monthly_budget_usd, failure_threshold, max_retries
             FROM persona_policies WHERE persona_id = ?1",
        )?
        .query_row([persona_id], |r| {
            Ok(PersonaPolicy {
                review_timeout_secs: r.get(0)?,
                review_timeout_action: parse(r.get(1)?)?,
                on_reject: parse(r.get(2)?)?,
                daily_budget_usd: r.get(3)?,
                monthly_budget_usd: r.get(4)?,
                failure_threshold: r.get(5)?,
                max_retries: r.get(6)?,
            })
        })
        .optional()?;
    Ok(found.unwrap_or_default())
}

impl<'s> PolicyRepo<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store }
    }

    pub fn get(&self, persona_id: &PersonaId) -> Result<PersonaPolicy, StoreError> {
        let conn = self.store.conn()?;
        policy_in(&conn, persona_id.as_str())
    }

    /// Replaces a persona's policy. Values are checked here so every front-end gets the same
    /// errors, each naming its field.
    pub fn set(
        &self,
        persona_id: &PersonaId,
        policy: &PersonaPolicy,
    ) -> Result<PersonaPolicy, StoreError> {
        for (field, v) in [
            ("daily_budget_usd", policy.daily_budget_usd),
            ("monthly_budget_usd", policy.monthly_budget_usd),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(StoreError::conflict(
                    field,
                    format!("must be a positive amount in USD, got {v}"),
                ));
            }
        }
        if policy.review_timeout_secs == Some(0) {
            return Err(StoreError::conflict(
                "review_timeout_secs",
                "must be at least 1 second",
            ));
        }
        if policy.failure_threshold == Some(0) {
            return Err(StoreError::conflict(
                "failure_threshold",
                "must be at least 1",
            ));
        }
        let conn = self.store.conn()?;
        let exists: bool = conn
            .query_row(
                "SELECT 1 FROM personas WHERE id = ?1",
                [persona_id.as_str()],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        if !exists {
            return Err(StoreError::not_found("persona", persona_id.as_str()));
        }
        conn.execute(
            "INSERT INTO persona_policies (persona_id, review_timeout_secs, review_timeout_action,
                on_reject, daily_budget_usd, monthly_budget_usd, failure_threshold, max_retries,
                updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (persona_id) DO UPDATE SET
                review_timeout_secs = excluded.review_timeout_secs,
                review_timeout_action = excluded.review_timeout_action,
                on_reject = excluded.on_reject,
                daily_budget_usd = excluded.daily_budget_usd,
                monthly_budget_usd = excluded.monthly_budget_usd,
                failure_threshold = excluded.failure_threshold,
                max_retries = excluded.max_retries,
                updated_at = excluded.updated_at",
            params![
                persona_id.as_str(),
                policy.review_timeout_secs,
                policy.review_timeout_action.map(|a| a.as_str()),
                policy.on_reject.map(|a| a.as_str()),
                policy.daily_budget_usd,
                policy.monthly_budget_usd,
                policy.failure_threshold,
                policy.max_retries,
                now_ms(),
            ],
        )?;
        policy_in(&conn, persona_id.as_str())
    }
}
