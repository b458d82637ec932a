//! Persona operations: `push_persona` (parse and validate the persona file, seal every
//! credential on arrival, store the triggers), `list_personas`, `delete_persona` and
//! `list_triggers`.
//!
//! A push is one transaction: the persona row (revision + 1), its credentials replaced by the
//! pushed ones (only sealed bytes reach Postgres: the plaintext lives in the request's
//! `WireSecret`s, zeroed when the request is dropped) and its triggers replaced by the pushed
//! ones (a trigger keeping its id and definition keeps its next fire time).

use super::Api;
use super::executions::persona_ref;
use crate::auth::Principal;
use crate::orchestrator::db::{self, GenericClient, Transaction};
use crate::seal;
use chrono::{DateTime, Utc};
use personas_cloud_api::model::{
    CloudPersona, CloudPersonaList, CloudTrigger, CloudTriggerList, Empty, PersonaRef, PushPersona,
    PushedCredential, PushedTrigger,
};
use personas_cloud_api::{CloudError, CloudErrorCode};
use personas_core::cron::CronSchedule;
use personas_core::trigger::{EventPattern, TriggerConfig};
use personas_core::{PersonaId, ValidationError};
use std::collections::HashSet;

/// Keys the orchestrator adds to an event trigger's stored `config` for lookups by type; they
/// are not part of the trigger's definition and are not shown.
const EVENT_TYPE_KEY: &str = "event_type";
const EVENT_PREFIX_KEY: &str = "event_prefix";

/// A pushed trigger ready to store.
struct TriggerRow {
    id: String,
    kind: &'static str,
    config: serde_json::Value,
    enabled: bool,
    next_fire_at: Option<DateTime<Utc>>,
}

pub async fn push_persona(
    api: &Api,
    who: &Principal,
    req: PushPersona,
) -> Result<CloudPersona, CloudError> {
    let spec = personas_core::persona_file::parse(&req.text).map_err(|e| {
        CloudError::invalid(
            "text",
            format!("the persona file is invalid at {}: {}", e.field, e.message),
        )
    })?;
    check_credentials(&req.credentials)?;
    let now = Utc::now();
    let triggers = req
        .triggers
        .iter()
        .enumerate()
        .map(|(i, t)| trigger_row(i, t, now))
        .collect::<Result<Vec<_>, _>>()?;
    let mut conn = db::conn(api.orch.db()).await?;
    let tx = db::begin(&mut conn).await?;
    let persona_id = resolve_id(&tx, &who.tenant_id, req.id.as_ref(), &spec.name).await?;
    let mut seen = HashSet::new();
    let triggers: Vec<TriggerRow> = triggers
        .into_iter()
        .map(|t| TriggerRow {
            id: trigger_id(&persona_id, &t.config),
            ..t
        })
        // The same definition pushed twice is one trigger.
        .filter(|t| seen.insert(t.id.clone()))
        .collect();
    let row = db::query_one(
        &tx,
        "INSERT INTO personas (tenant_id, id, name, description, definition)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name,
                 description = EXCLUDED.description, definition = EXCLUDED.definition,
                 revision = personas.revision + 1, updated_at = now()
             RETURNING revision, updated_at",
        &[
            &who.tenant_id,
            &persona_id,
            &spec.name,
            &spec.description,
            &req.text,
        ],
    )
    .await?;
    let revision: i32 = row.get(0);
    let updated_at: DateTime<Utc> = row.get(1);
    let names = store_credentials(api, &tx, &who.tenant_id, &persona_id, &req.credentials).await?;
    store_triggers(&tx, &who.tenant_id, &persona_id, &triggers).await?;
    tx.commit().await.map_err(db::pg)?;
    Ok(CloudPersona {
        id: PersonaId::from_string(persona_id),
        name: spec.name,
        description: spec.description,
        credentials: names,
        triggers: triggers.len() as u32,
        revision: revision.max(0) as u32,
        updated_at,
    })
}

/// The id the pushed persona is stored under: the one asked for, else the id of the tenant's
/// persona of that name, else a new one. A name held by another id is a conflict.
async fn resolve_id(
    tx: &Transaction<'_>,
    tenant_id: &str,
    asked: Option<&PersonaId>,
    name: &str,
) -> Result<String, CloudError> {
    if let Some(id) = asked
        && !PersonaId::looks_like_id(id.as_str())
    {
        return Err(CloudError::invalid(
            "id",
            format!("{:?} is not a persona id (a UUID)", id.as_str()),
        ));
    }
    let holder: Option<String> = db::query_opt(
        tx,
        "SELECT id FROM personas WHERE tenant_id = $1 AND name = $2 FOR UPDATE",
        &[&tenant_id, &name],
    )
    .await?
    .map(|r| r.get(0));
    match (asked, holder) {
        (Some(id), Some(h)) if h != id.as_str() => Err(CloudError {
            code: CloudErrorCode::Conflict,
            message: format!(
                "another pushed persona ({h}) is named {name:?}; rename one or delete it first"
            ),
            field: Some("text".into()),
        }),
        (Some(id), _) => Ok(id.as_str().to_string()),
        (None, Some(h)) => Ok(h),
        (None, None) => Ok(PersonaId::new().as_str().to_string()),
    }
}

fn check_credentials(creds: &[PushedCredential]) -> Result<(), CloudError> {
    let mut names = HashSet::new();
    for (i, c) in creds.iter().enumerate() {
        let at = |f: &str| format!("credentials[{i}].{f}");
        personas_core::validate::resource_name(&at("name"), &c.name)
            .map_err(|e| CloudError::invalid(&e.field, format!("{}: {}", e.field, e.message)))?;
        if !names.insert(c.name.as_str()) {
            return Err(CloudError::invalid(
                &at("name"),
                format!("credential {:?} is pushed twice", c.name),
            ));
        }
        if c.service_type.trim().is_empty() || c.service_type.len() > 64 {
            return Err(CloudError::invalid(
                &at("service_type"),
                "service_type must be 1 to 64 characters",
            ));
        }
        if c.fields.is_empty() {
            return Err(CloudError::invalid(
                &at("fields"),
                "a credential needs at least one field",
            ));
        }
        for (key, value) in &c.fields {
            let field = format!("credentials[{i}].fields.{key}");
            if key.is_empty() || key.len() > 64 || key.chars().any(char::is_control) {
                return Err(CloudError::invalid(
                    &field,
                    "a field name must be 1 to 64 printable characters",
                ));
            }
            // The message never repeats the value: it is a secret.
            personas_core::validate::secret_value(&field, value.expose())
                .map_err(|e| CloudError::invalid(&field, format!("{field} {}", e.message)))?;
        }
    }
    Ok(())
}

/// Seals and stores the pushed credentials, removing the persona's others. Returns the names.
async fn store_credentials(
    api: &Api,
    tx: &Transaction<'_>,
    tenant_id: &str,
    persona_id: &str,
    creds: &[PushedCredential],
) -> Result<Vec<String>, CloudError> {
    let key = &api.orch.settings().master_key;
    let names: Vec<String> = creds.iter().map(|c| c.name.clone()).collect();
    db::execute(
        tx,
        "DELETE FROM credentials WHERE tenant_id = $1 AND persona_id = $2 AND name <> ALL($3)",
        &[&tenant_id, &persona_id, &names],
    )
    .await?;
    for c in creds {
        let aad = seal::credential_aad(tenant_id, persona_id, &c.name);
        let sealed = seal::seal_fields(key, &c.fields, &aad).map_err(|e| {
            tracing::error!("sealing a credential failed: {e}");
            CloudError::internal("cannot seal the credential")
        })?;
        db::execute(tx, "INSERT INTO credentials (tenant_id, persona_id, name, service_type, sealed)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, persona_id, name) DO UPDATE SET
                 service_type = EXCLUDED.service_type, sealed = EXCLUDED.sealed, updated_at = now()",
            &[&tenant_id, &persona_id, &c.name, &c.service_type, &sealed],
        )
        .await?;
    }
    let mut names = names;
    names.sort();
    Ok(names)
}

/// A validation error inside `triggers[i].config`, named by the key as the request spells it.
fn trigger_error(i: usize, e: ValidationError) -> CloudError {
    let key = match e.field.as_str() {
        "cron" => "expr",
        "event" => "pattern",
        "watch" => "path",
        other => other,
    };
    let field = format!("triggers[{i}].config.{key}");
    CloudError::invalid(&field, format!("{field}: {}", e.message))
}

/// The pushed trigger as the local runtime's [`TriggerConfig`]: `config` as the local store
/// keeps it (`{"kind": "cron", "expr": …, "tz": …}`; `kind` comes from the trigger when the
/// config lacks it), or in the short form (`{"cron": …, "timezone": …}`, `{"event_type": …}`).
fn trigger_config(i: usize, t: &PushedTrigger) -> Result<TriggerConfig, CloudError> {
    let kind_field = format!("triggers[{i}].kind");
    let config_field = format!("triggers[{i}].config");
    let serde_json::Value::Object(mut obj) = t.config.clone() else {
        return Err(CloudError::invalid(
            &config_field,
            format!("{config_field} must be an object"),
        ));
    };
    match obj.get("kind").and_then(|k| k.as_str()) {
        Some(k) if k != t.kind => {
            return Err(CloudError::invalid(
                &kind_field,
                format!("{kind_field} is {:?} but its config says {k:?}", t.kind),
            ));
        }
        Some(_) => {}
        None => {
            obj.insert("kind".into(), t.kind.clone().into());
        }
    }
    for (short, long) in [
        ("cron", "expr"),
        ("timezone", "tz"),
        ("event_type", "pattern"),
    ] {
        if !obj.contains_key(long)
            && let Some(v) = obj.remove(short)
        {
            obj.insert(long.into(), v);
        }
    }
    if t.kind == "cron" && !obj.contains_key("tz") {
        obj.insert("tz".into(), "UTC".into());
    }
    serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| {
        let field = if e.to_string().contains("unknown variant") {
            kind_field
        } else {
            config_field
        };
        CloudError::invalid(&field, format!("{field}: {e}"))
    })
}

/// A trigger's id, derived from its persona and definition: pushing an unchanged trigger
/// again finds its row (keeping its schedule state); a changed one is a new trigger.
fn trigger_id(persona_id: &str, config: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{persona_id}\n{config}").as_bytes());
    format!("trg-{}", &hex::encode(digest)[..24])
}

/// A pushed trigger checked and ready to store (its id is set once the persona's is known).
fn trigger_row(i: usize, t: &PushedTrigger, now: DateTime<Utc>) -> Result<TriggerRow, CloudError> {
    let parsed = trigger_config(i, t)?;
    parsed.validate().map_err(|e| trigger_error(i, e))?;
    let mut config =
        serde_json::to_value(&parsed).map_err(|e| CloudError::internal(e.to_string()))?;
    let (enabled, next_fire_at) = match &parsed {
        TriggerConfig::Cron { expr, tz, .. } => {
            let schedule = CronSchedule::parse(expr, tz).map_err(|e| trigger_error(i, e))?;
            (
                t.enabled,
                if t.enabled {
                    schedule.next_after(now)
                } else {
                    None
                },
            )
        }
        TriggerConfig::Event { pattern, .. } => {
            let p = EventPattern::parse(pattern).map_err(|e| trigger_error(i, e))?;
            if let Some(obj) = config.as_object_mut() {
                obj.insert(EVENT_TYPE_KEY.into(), p.key.into());
                obj.insert(EVENT_PREFIX_KEY.into(), p.prefix.into());
            }
            (t.enabled, None)
        }
        TriggerConfig::Manual => (t.enabled, None),
        // Nothing in the cloud fires these (no webhook secret is pushed, chains and file
        // watchers are the desktop's): kept for the record, disabled.
        TriggerConfig::Webhook { .. }
        | TriggerConfig::Chain { .. }
        | TriggerConfig::Watch { .. } => (false, None),
    };
    Ok(TriggerRow {
        id: String::new(),
        kind: parsed.trigger_type().as_str(),
        config,
        enabled,
        next_fire_at,
    })
}

/// Replaces the persona's triggers with `rows`; an unchanged definition keeps its fire times.
async fn store_triggers(
    tx: &Transaction<'_>,
    tenant_id: &str,
    persona_id: &str,
    rows: &[TriggerRow],
) -> Result<(), CloudError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    db::execute(
        tx,
        "DELETE FROM triggers WHERE tenant_id = $1 AND persona_id = $2 AND id <> ALL($3)",
        &[&tenant_id, &persona_id, &ids],
    )
    .await?;
    for (i, r) in rows.iter().enumerate() {
        let stored = db::query_opt(tx, "INSERT INTO triggers AS t (tenant_id, id, persona_id, kind, config, enabled, next_fire_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (tenant_id, id) DO UPDATE SET kind = EXCLUDED.kind,
                     config = EXCLUDED.config, enabled = EXCLUDED.enabled,
                     next_fire_at = CASE
                         WHEN t.config = EXCLUDED.config AND t.enabled AND EXCLUDED.enabled
                         THEN t.next_fire_at ELSE EXCLUDED.next_fire_at END
                 WHERE t.persona_id = EXCLUDED.persona_id
                 RETURNING id",
                &[&tenant_id, &r.id, &persona_id, &r.kind, &r.config, &r.enabled, &r.next_fire_at],
            )
            .await?;
        if stored.is_none() {
            return Err(CloudError {
                code: CloudErrorCode::Conflict,
                message: format!("trigger id {} belongs to another pushed persona", r.id),
                field: Some(format!("triggers[{i}].id")),
            });
        }
    }
    Ok(())
}

const PERSONA_VIEW: &str = "SELECT p.id, p.name, p.description, p.revision, p.updated_at,
        COALESCE((SELECT array_agg(c.name ORDER BY c.name) FROM credentials c
                  WHERE c.tenant_id = p.tenant_id AND c.persona_id = p.id), '{}'),
        (SELECT count(*) FROM triggers t WHERE t.tenant_id = p.tenant_id AND t.persona_id = p.id)
    FROM personas p";

fn persona_from_row(r: &tokio_postgres::Row) -> CloudPersona {
    CloudPersona {
        id: PersonaId::from_string(r.get::<_, String>(0)),
        name: r.get(1),
        description: r.get(2),
        revision: r.get::<_, i32>(3).max(0) as u32,
        updated_at: r.get(4),
        credentials: r.get(5),
        triggers: r.get::<_, i64>(6).max(0) as u32,
    }
}

pub async fn list_personas(
    api: &Api,
    who: &Principal,
    _: Empty,
) -> Result<CloudPersonaList, CloudError> {
    let conn = db::conn(api.orch.db()).await?;
    let rows = db::query(
        &conn,
        &format!("{PERSONA_VIEW} WHERE p.tenant_id = $1 ORDER BY p.name"),
        &[&who.tenant_id],
    )
    .await?;
    Ok(CloudPersonaList {
        personas: rows.iter().map(persona_from_row).collect(),
    })
}

/// The tenant's persona named or numbered `persona` (an id wins over a name).
async fn find_persona(
    conn: &impl GenericClient,
    tenant_id: &str,
    persona: &str,
) -> Result<CloudPersona, CloudError> {
    let row = db::query_opt(
        conn,
        &format!(
            "{PERSONA_VIEW} WHERE p.tenant_id = $1 AND (p.id = $2 OR p.name = $2)
                 ORDER BY (p.id = $2) DESC LIMIT 1"
        ),
        &[&tenant_id, &persona],
    )
    .await?
    .ok_or_else(|| CloudError {
        code: CloudErrorCode::NotFound,
        message: format!("no pushed persona named {persona:?}"),
        field: Some("persona".into()),
    })?;
    Ok(persona_from_row(&row))
}

pub async fn delete_persona(
    api: &Api,
    who: &Principal,
    req: PersonaRef,
) -> Result<CloudPersona, CloudError> {
    persona_ref("persona", &req.persona)?;
    let mut conn = db::conn(api.orch.db()).await?;
    let tx = db::begin(&mut conn).await?;
    let persona = find_persona(&tx, &who.tenant_id, &req.persona).await?;
    // Credentials and triggers go with it (ON DELETE CASCADE); queued runs of it fail when
    // taken ("the persona was deleted").
    db::execute(
        &tx,
        "DELETE FROM personas WHERE tenant_id = $1 AND id = $2",
        &[&who.tenant_id, &persona.id.as_str()],
    )
    .await?;
    tx.commit().await.map_err(db::pg)?;
    Ok(persona)
}

pub async fn list_triggers(
    api: &Api,
    who: &Principal,
    _: Empty,
) -> Result<CloudTriggerList, CloudError> {
    let conn = db::conn(api.orch.db()).await?;
    let rows = db::query(
        &conn,
        "SELECT t.id, t.persona_id, p.name, t.kind, t.config, t.enabled, t.next_fire_at,
                    t.last_fired_at
             FROM triggers t JOIN personas p ON p.tenant_id = t.tenant_id AND p.id = t.persona_id
             WHERE t.tenant_id = $1 ORDER BY p.name, t.id",
        &[&who.tenant_id],
    )
    .await?;
    let triggers = rows
        .iter()
        .map(|r| {
            let mut config: serde_json::Value = r.get(4);
            if let Some(obj) = config.as_object_mut() {
                obj.remove(EVENT_TYPE_KEY);
                obj.remove(EVENT_PREFIX_KEY);
            }
            CloudTrigger {
                id: r.get(0),
                persona_id: PersonaId::from_string(r.get::<_, String>(1)),
                persona_name: r.get(2),
                kind: r.get(3),
                config,
                enabled: r.get(5),
                next_fire_at: r.get(6),
                last_fired_at: r.get(7),
            }
        })
        .collect();
    Ok(CloudTriggerList { triggers })
}
