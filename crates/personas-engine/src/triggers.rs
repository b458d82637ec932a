//! Triggers as a person asks for them: what "add a cron trigger in Europe/Prague" or "run B after
//! A" resolves to in the store, how a trigger is fired by hand, what a schedule will do next, and
//! the one-line description of each kind.
//!
//! Shared by every front-end (`personas trigger …`, `personas event emit`, the API behind the
//! app), so they accept and refuse exactly the same input with the same words. Bad input is a
//! [`ValidationError`] naming the field — `cron`, `tz`, `missed`, `event`, `source`, `chain`,
//! `on`, `watch`, `glob`, `type`, `payload` — which the CLI shows as `--field` and the API puts
//! in its error's `field`.

use crate::scheduler::watch::check_glob;
use chrono::{DateTime, TimeDelta, Utc};
use personas_core::trigger::{
    ChainOn, MissedPolicy, SourceFilter, SourceKind, TriggerConfig, validate_event_type,
};
use personas_core::{PersonaId, ValidationError};
use personas_store::{NewEvent, NewTrigger, Store, StoreError, TriggerRow};
use serde_json::Value;
use std::path::PathBuf;

/// The event type a trigger fired by hand publishes.
pub const MANUAL_EVENT: &str = "trigger.fired";

/// How a webhook caller signs its request (the header and what goes in it).
pub const SIGNATURE_HELP: &str =
    "X-Personas-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>";

/// What fires a trigger, as given: personas by name or id, a path as typed, policies as text.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerSpec {
    /// Fired only by hand.
    Manual,
    /// `expr` in zone `tz` (default: this machine's zone), missed runs per `missed` (default
    /// skip).
    Cron {
        expr: String,
        tz: Option<String>,
        missed: Option<String>,
    },
    Webhook,
    /// Bus events whose type matches `pattern`, optionally only from `source` (a source kind
    /// or a persona's name or id).
    Event {
        pattern: String,
        source: Option<String>,
    },
    /// After persona `after` ends as `on` says (default completed).
    Chain {
        after: String,
        on: Option<String>,
    },
    /// Files under `path` (an existing directory), optionally only those matching `glob`.
    Watch {
        path: PathBuf,
        glob: Option<String>,
    },
}

/// This machine's IANA time zone, when it has one chrono-tz knows.
pub fn local_zone() -> Option<String> {
    let name = iana_time_zone::get_timezone().ok()?;
    name.parse::<chrono_tz::Tz>().ok().map(|_| name)
}

/// The zone a schedule uses when none is given: this machine's, else UTC.
pub fn default_zone() -> String {
    local_zone().unwrap_or_else(|| "UTC".into())
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    ValidationError::new(field, message).into()
}

/// Reads a source filter: a source kind (`webhook`, …) or a persona's name or id.
pub fn source_filter(store: &Store, s: &str) -> Result<SourceFilter, StoreError> {
    if let Ok(kind) = s.parse::<SourceKind>() {
        return Ok(SourceFilter { kind, id: None });
    }
    match store.personas().find(s) {
        Ok(p) => Ok(SourceFilter {
            kind: SourceKind::Persona,
            id: Some(p.id.to_string()),
        }),
        Err(StoreError::NotFound { .. }) => Err(invalid(
            "source",
            format!(
                "{s:?} is neither a source kind ({}) nor a persona",
                SourceKind::ALL.map(|k| k.as_str()).join(", ")
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Resolves a spec into the definition the store keeps: personas looked up, the zone and
/// policy defaulted and parsed, the watched directory made absolute and checked.
pub fn resolve(store: &Store, spec: &TriggerSpec) -> Result<TriggerConfig, StoreError> {
    Ok(match spec {
        TriggerSpec::Manual => TriggerConfig::Manual,
        TriggerSpec::Webhook => TriggerConfig::Webhook,
        TriggerSpec::Event { pattern, source } => TriggerConfig::Event {
            pattern: pattern.clone(),
            source: source
                .as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| source_filter(store, s.trim()))
                .transpose()?,
        },
        TriggerSpec::Cron { expr, tz, missed } => TriggerConfig::Cron {
            expr: expr.clone(),
            tz: tz
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map_or_else(default_zone, str::to_string),
            missed: match missed.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
                Some(m) => m.parse::<MissedPolicy>()?,
                None => MissedPolicy::Skip,
            },
        },
        TriggerSpec::Chain { after, on } => {
            let on = match on.as_deref() {
                Some(o) => o.parse::<ChainOn>()?,
                None => ChainOn::Completed,
            };
            if after.trim().is_empty() {
                return Err(invalid("chain", "name the persona to run after"));
            }
            let after = match store.personas().find(after.trim()) {
                Ok(p) => p,
                Err(StoreError::NotFound { .. }) => {
                    return Err(invalid("chain", format!("persona not found: {after}")));
                }
                Err(e) => return Err(e),
            };
            TriggerConfig::Chain {
                after_persona_id: after.id,
                on,
            }
        }
        TriggerSpec::Watch { path, glob } => {
            let root = path
                .canonicalize()
                .map_err(|e| invalid("watch", format!("cannot use {}: {e}", path.display())))?;
            if !root.is_dir() {
                return Err(invalid(
                    "watch",
                    format!("{} is not a directory", root.display()),
                ));
            }
            if let Some(g) = glob {
                check_glob(g)?;
            }
            TriggerConfig::Watch {
                path: root.to_string_lossy().into_owned(),
                glob: glob.clone(),
            }
        }
    })
}

/// Adds a trigger to `persona` (name or id). Nothing is stored unless all of it is valid.
/// The caller wakes the scheduler (`Engine::triggers_changed`, or a running daemon).
pub fn add(
    store: &Store,
    persona: &str,
    spec: &TriggerSpec,
    enabled: bool,
    now: DateTime<Utc>,
) -> Result<TriggerRow, StoreError> {
    let persona = store.personas().find(persona)?;
    let config = resolve(store, spec)?;
    store.triggers().create(
        &NewTrigger {
            persona_id: persona.id,
            config,
            enabled,
        },
        now,
    )
}

/// The event that fires `trigger` by hand with `payload`, from `who` (a user name). Refused
/// while the trigger is disabled.
pub fn fire_event(
    trigger: &TriggerRow,
    payload: Value,
    who: Option<String>,
) -> Result<NewEvent, StoreError> {
    if !trigger.enabled {
        return Err(StoreError::conflict(
            "trigger",
            format!(
                "trigger {} is disabled; enable it before firing it",
                trigger.id
            ),
        ));
    }
    let mut event = NewEvent::new(MANUAL_EVENT, SourceKind::User, payload);
    event.target_persona_id = Some(trigger.persona_id.clone());
    event.trigger_id = Some(trigger.id.clone());
    event.source_id = who.filter(|u| !u.is_empty());
    Ok(event)
}

/// An event a person publishes (`personas event emit`, the app's Emit form): a valid type
/// without wildcards, to the subscribers or to one `target` persona.
pub fn user_event(
    event_type: &str,
    payload: Value,
    target: Option<PersonaId>,
    who: Option<String>,
) -> Result<NewEvent, ValidationError> {
    validate_event_type(event_type)?;
    let mut event = NewEvent::new(event_type, SourceKind::User, payload);
    event.target_persona_id = target;
    event.source_id = who.filter(|u| !u.is_empty());
    Ok(event)
}

/// The next `n` fire times of a cron trigger (empty for other kinds), from its stored next due
/// time, or from `now` when that has passed.
pub fn next_fires(trigger: &TriggerRow, n: usize, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let Some(Ok(schedule)) = trigger.schedule() else {
        return Vec::new();
    };
    let from = trigger
        .next_fire_at
        .map(|t| t - TimeDelta::seconds(1))
        .unwrap_or(now);
    schedule.upcoming(from.max(now - TimeDelta::seconds(1)), n)
}

/// A time as a person in zone `tz` reads it (UTC when the zone is unknown).
pub fn in_zone(t: DateTime<Utc>, tz: &str) -> String {
    let zone: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    t.with_timezone(&zone)
        .format("%a %Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// Where the webhook of trigger `id` is reached on a server at `base` (`http://host:port`).
pub fn webhook_url(base: &str, id: &str) -> String {
    format!("{}/webhooks/{id}", base.trim_end_matches('/'))
}

/// One line saying what a trigger listens for.
pub fn describe(t: &TriggerRow) -> String {
    match &t.config {
        TriggerConfig::Manual => "by hand".into(),
        TriggerConfig::Cron { expr, tz, missed } => format!("cron {expr} ({tz}), missed: {missed}"),
        TriggerConfig::Webhook => "webhook".into(),
        TriggerConfig::Event { pattern, source } => match source {
            None => format!("event {pattern}"),
            Some(SourceFilter { kind, id: None }) => format!("event {pattern} from {kind}"),
            Some(SourceFilter { kind, id: Some(id) }) => {
                format!("event {pattern} from {kind} {id}")
            }
        },
        TriggerConfig::Chain { on, .. } => format!(
            "after {} {}",
            t.after_persona_name
                .as_deref()
                .unwrap_or("(deleted persona)"),
            on.as_str()
        ),
        TriggerConfig::Watch { path, glob } => match glob {
            Some(g) => format!("files {g} in {path}"),
            None => format!("files in {path}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_core::PersonaSpec;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_in_dir(dir.path()).expect("store");
        for name in ["A", "B"] {
            store
                .personas()
                .create(&PersonaSpec::new(name, "Do things."))
                .expect("persona");
        }
        (dir, store)
    }

    #[test]
    fn specs_resolve_with_defaults_and_personas_looked_up() {
        let (_d, store) = store();
        let chain = resolve(
            &store,
            &TriggerSpec::Chain {
                after: "a".into(),
                on: None,
            },
        )
        .expect("chain");
        let a = store.personas().find("A").expect("A");
        assert_eq!(
            chain,
            TriggerConfig::Chain {
                after_persona_id: a.id.clone(),
                on: ChainOn::Completed
            }
        );
        let ev = resolve(
            &store,
            &TriggerSpec::Event {
                pattern: "ticket.*".into(),
                source: Some("A".into()),
            },
        )
        .expect("event");
        assert_eq!(
            ev,
            TriggerConfig::Event {
                pattern: "ticket.*".into(),
                source: Some(SourceFilter {
                    kind: SourceKind::Persona,
                    id: Some(a.id.to_string())
                })
            }
        );
        let cron = resolve(
            &store,
            &TriggerSpec::Cron {
                expr: "0 8 * * 1-5".into(),
                tz: Some("Europe/Prague".into()),
                missed: Some("catch-up:3".into()),
            },
        )
        .expect("cron");
        assert!(matches!(
            cron,
            TriggerConfig::Cron {
                missed: MissedPolicy::CatchUp(3),
                ..
            }
        ));
    }

    #[test]
    fn bad_specs_name_their_field_and_store_nothing() {
        let (_d, store) = store();
        for (spec, field) in [
            (
                TriggerSpec::Chain {
                    after: "Nobody".into(),
                    on: None,
                },
                "chain",
            ),
            (
                TriggerSpec::Chain {
                    after: "A".into(),
                    on: Some("sometimes".into()),
                },
                "on",
            ),
            (
                TriggerSpec::Event {
                    pattern: "x".into(),
                    source: Some("Nobody".into()),
                },
                "source",
            ),
            (
                TriggerSpec::Event {
                    pattern: "*x".into(),
                    source: None,
                },
                "event",
            ),
            (
                TriggerSpec::Cron {
                    expr: "61 * * * *".into(),
                    tz: None,
                    missed: None,
                },
                "cron",
            ),
            (
                TriggerSpec::Cron {
                    expr: "0 8 * * *".into(),
                    tz: Some("Mars/Olympus".into()),
                    missed: None,
                },
                "tz",
            ),
            (
                TriggerSpec::Cron {
                    expr: "0 8 * * *".into(),
                    tz: None,
                    missed: Some("often".into()),
                },
                "missed",
            ),
            (
                TriggerSpec::Watch {
                    path: "/nonexistent/dir".into(),
                    glob: None,
                },
                "watch",
            ),
            (
                TriggerSpec::Watch {
                    path: std::env::temp_dir(),
                    glob: Some("a[".into()),
                },
                "glob",
            ),
        ] {
            match add(&store, "B", &spec, true, Utc::now()) {
                Err(StoreError::Invalid(v)) => assert_eq!(v.field, field, "{spec:?}: {v}"),
                other => panic!("{spec:?}: expected an invalid {field}, got {other:?}"),
            }
        }
        assert!(store.triggers().list(None).expect("list").is_empty());
    }

    #[test]
    fn firing_by_hand_targets_the_persona_and_refuses_a_disabled_trigger() {
        let (_d, store) = store();
        let t = add(&store, "B", &TriggerSpec::Manual, true, Utc::now()).expect("add");
        let e = fire_event(&t, json!({"v": 1}), Some("ana".into())).expect("event");
        assert_eq!(e.event_type, MANUAL_EVENT);
        assert_eq!(e.target_persona_id.as_ref(), Some(&t.persona_id));
        assert_eq!(e.trigger_id.as_ref(), Some(&t.id));
        let off = store
            .triggers()
            .set_enabled(t.id.as_str(), false, Utc::now())
            .expect("disable");
        let err = fire_event(&off, json!({}), None).expect_err("disabled");
        assert!(err.to_string().contains("is disabled"), "{err}");
    }

    #[test]
    fn a_schedule_previews_its_next_fires_in_its_zone() {
        let (_d, store) = store();
        let now = Utc::now();
        let t = add(
            &store,
            "A",
            &TriggerSpec::Cron {
                expr: "0 8 * * *".into(),
                tz: Some("Europe/Prague".into()),
                missed: None,
            },
            true,
            now,
        )
        .expect("add");
        let next = next_fires(&t, 3, now);
        assert_eq!(next.len(), 3);
        assert!(next.windows(2).all(|w| w[0] < w[1]) && next[0] > now);
        assert_eq!(Some(next[0]), t.next_fire_at);
        assert!(in_zone(next[0], "Europe/Prague").contains("08:00:00"));
        assert_eq!(describe(&t), "cron 0 8 * * * (Europe/Prague), missed: skip");
        let hook = add(&store, "A", &TriggerSpec::Webhook, true, now).expect("hook");
        assert!(next_fires(&hook, 3, now).is_empty());
        assert_eq!(
            webhook_url("http://127.0.0.1:9/", hook.id.as_str()),
            format!("http://127.0.0.1:9/webhooks/{}", hook.id)
        );
    }

    #[test]
    fn user_events_take_no_wildcards() {
        let e = user_event("ticket.*", json!({}), None, None).expect_err("wildcard");
        assert_eq!(e.field, "type");
        assert!(user_event("ticket.created", json!({}), None, Some(String::new())).is_ok());
    }
}
