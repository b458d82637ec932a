//! Triggers and the event bus as operations: their request and response types, and their
//! implementation over the store and the engine.
//!
//! What a trigger field means and which values are refused is `personas_engine::triggers`,
//! shared with the CLI, so `personas trigger add` and the app accept exactly the same things and
//! name the same field when they do not. Changes wake the engine at once (scheduler, dispatcher);
//! events are published through the engine, so they are durable before the operation answers.

use crate::Api;
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use personas_core::cron::CronSchedule;
use personas_core::trigger::{SourceKind, TriggerConfig};
use personas_core::{EventStatus, ExecutionId, Secret};
use personas_engine::triggers::{self, TriggerSpec};
use personas_store::{EventDeliveryRow, EventFilter, EventRow, TriggerRow};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::PathBuf;
use ts_rs::TS;

const MAX_EVENTS: u32 = 500;
const MAX_PREVIEW: u32 = 50;
/// Fire times shown with each schedule.
const NEXT_FIRES: usize = 3;

// ---- triggers ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListTriggers {
    /// Only this persona's (name or id); all when absent.
    #[serde(default)]
    #[ts(optional)]
    pub persona: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
pub struct TriggerList {
    /// Oldest first.
    pub triggers: Vec<TriggerView>,
}

/// Where a webhook trigger is called and how callers sign. Never its secret: that is shown
/// once in the answer to `add_trigger`, and on request by `reveal_webhook_secret` /
/// `rotate_webhook_secret`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct WebhookInfo {
    /// `POST` here, on the address this runtime serves on.
    pub url: String,
    /// Signed as GitHub signs (`X-Hub-Signature-256`) instead of Personas' scheme.
    pub github: bool,
    /// How a caller signs a request (headers and what goes in them).
    pub signing: String,
}

/// A webhook trigger's secret, shown to its owner on an explicit request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct WebhookSecretShown {
    pub trigger_id: String,
    /// The HMAC-SHA256 key callers sign with.
    pub secret: String,
    pub webhook: WebhookInfo,
}

/// A trigger as the app shows it.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
pub struct TriggerView {
    pub trigger: TriggerRow,
    /// One line saying what fires it, e.g. `after Coder completed`.
    pub summary: String,
    /// A schedule's next fire times (empty for other kinds).
    pub next_fires: Vec<DateTime<Utc>>,
    /// The same times as read in the schedule's own zone.
    pub next_fires_local: Vec<String>,
    /// A webhook's URL and how to sign (never its secret).
    pub webhook: Option<WebhookInfo>,
    /// A new webhook trigger's secret: only in the answer to `add_trigger`, the one time it is
    /// shown without asking (`reveal_webhook_secret` shows it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub secret: Option<String>,
}

/// What fires a new trigger. Each field is named like the CLI flag, and a refused value comes
/// back as an `invalid` error whose `field` is that name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerInput {
    /// Fired only by hand (`fire_trigger`).
    Manual,
    /// A cron schedule: 5 fields (minute hour day month weekday) or 6 (seconds first).
    Cron {
        cron: String,
        /// IANA zone, e.g. Europe/Prague; default: the runtime machine's.
        #[serde(default)]
        #[ts(optional)]
        tz: Option<String>,
        /// Runs missed while Personas was down: `skip` (default), `once` or `catch-up:N`.
        #[serde(default)]
        #[ts(optional)]
        missed: Option<String>,
    },
    /// Signed calls to `POST /webhooks/<id>`; the secret is made for it and shown once.
    Webhook {
        /// Signed as GitHub signs (`X-Hub-Signature-256`, `X-GitHub-Delivery`), so GitHub can
        /// call it directly. Default false: Personas' timestamped `X-Personas-Signature`.
        #[serde(default)]
        #[ts(optional)]
        github: Option<bool>,
    },
    /// Bus events of a type: exact (`ticket.created`) or a prefix ending in `*`.
    Event {
        event: String,
        /// Only from this source: a kind (persona, webhook, schedule, user, chain, watcher,
        /// system) or a persona's name or id.
        #[serde(default)]
        #[ts(optional)]
        source: Option<String>,
    },
    /// After the persona `chain` (name or id) ends.
    Chain {
        chain: String,
        /// `completed` (default), `failed` or `any`.
        #[serde(default)]
        #[ts(optional)]
        on: Option<String>,
    },
    /// Files created, changed or deleted under an absolute directory path.
    Watch {
        watch: String,
        /// Only files whose path relative to `watch` matches, e.g. `*.md`.
        #[serde(default)]
        #[ts(optional)]
        glob: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct AddTrigger {
    /// The persona the trigger runs (name or id).
    pub persona: String,
    pub trigger: TriggerInput,
    /// Default true.
    #[serde(default)]
    #[ts(optional)]
    pub enabled: Option<bool>,
}

/// Names a trigger by id or a unique prefix of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct TriggerRef {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct SetTriggerEnabled {
    pub id: String,
    /// Turning a schedule on restarts it from now: its time off is not "missed".
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct FireTrigger {
    pub id: String,
    /// The run's input; default `{}`.
    #[serde(default)]
    #[ts(optional, type = "unknown")]
    pub payload: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PreviewCron {
    pub cron: String,
    /// Default: the runtime machine's zone.
    #[serde(default)]
    #[ts(optional)]
    pub tz: Option<String>,
    /// How many fire times (default 5, at most 50).
    #[serde(default)]
    #[ts(optional)]
    pub count: Option<u32>,
}

/// A valid schedule and when it fires next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CronPreview {
    pub cron: String,
    /// The zone used (the default filled in).
    pub tz: String,
    pub next: Vec<DateTime<Utc>>,
    /// The same times as read in `tz`.
    pub next_local: Vec<String>,
}

// ---- events ----

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ListEvents {
    /// Only this event type (exact).
    #[serde(default, rename = "type")]
    #[ts(optional)]
    pub event_type: Option<String>,
    /// Only events in this status.
    #[serde(default)]
    #[ts(optional)]
    pub status: Option<EventStatus>,
    /// Only from this kind of source.
    #[serde(default)]
    #[ts(optional)]
    pub source: Option<SourceKind>,
    /// At most this many, newest first (default 100, at most 500).
    #[serde(default)]
    #[ts(optional)]
    pub limit: Option<u32>,
}

/// A bus event with what it caused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct EventView {
    pub event: EventRow,
    /// One per recipient: who it went to, and the execution it made (or why not).
    pub deliveries: Vec<EventDeliveryRow>,
    /// The executions it caused.
    pub executions: Vec<ExecutionId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct EventList {
    /// Newest first.
    pub events: Vec<EventView>,
}

/// Names an event by id or a unique prefix of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct EventRef {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct EmitEvent {
    /// The event type, e.g. `ticket.created` (no wildcards).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Any JSON; default `{}`. Subscribers get it as their input.
    #[serde(default)]
    #[ts(optional, type = "unknown")]
    pub payload: Option<Value>,
    /// Address it to this persona (name or id) instead of the subscribers.
    #[serde(default)]
    #[ts(optional)]
    pub target: Option<String>,
}

fn webhook_info(base: &str, t: &TriggerRow) -> Option<WebhookInfo> {
    match t.config {
        TriggerConfig::Webhook { github } => Some(WebhookInfo {
            url: triggers::webhook_url(base, t.id.as_str()),
            github,
            signing: triggers::signature_help(t).into(),
        }),
        _ => None,
    }
}

fn view(base: &str, t: TriggerRow, now: DateTime<Utc>) -> TriggerView {
    let next_fires = triggers::next_fires(&t, NEXT_FIRES, now);
    let zone = t
        .schedule()
        .and_then(Result::ok)
        .map(|s| s.tz_name().to_string());
    let next_fires_local = match &zone {
        Some(z) => next_fires
            .iter()
            .map(|f| triggers::in_zone(*f, z))
            .collect(),
        None => Vec::new(),
    };
    TriggerView {
        summary: triggers::describe(&t),
        webhook: webhook_info(base, &t),
        next_fires,
        next_fires_local,
        trigger: t,
        secret: None,
    }
}

fn shown(base: &str, t: &TriggerRow, secret: &Secret) -> Result<WebhookSecretShown, ApiError> {
    Ok(WebhookSecretShown {
        trigger_id: t.id.to_string(),
        secret: secret.expose().to_string(),
        webhook: webhook_info(base, t)
            .ok_or_else(|| ApiError::internal("not a webhook trigger"))?,
    })
}

fn event_view(event: EventRow, deliveries: Vec<EventDeliveryRow>) -> EventView {
    EventView {
        executions: deliveries
            .iter()
            .filter_map(|d| d.execution_id.clone())
            .collect(),
        deliveries,
        event,
    }
}

fn spec(input: TriggerInput) -> Result<TriggerSpec, ApiError> {
    Ok(match input {
        TriggerInput::Manual => TriggerSpec::Manual,
        TriggerInput::Webhook { github } => TriggerSpec::Webhook {
            github: github.unwrap_or(false),
        },
        TriggerInput::Cron { cron, tz, missed } => TriggerSpec::Cron {
            expr: cron,
            tz,
            missed,
        },
        TriggerInput::Event { event, source } => TriggerSpec::Event {
            pattern: event,
            source,
        },
        TriggerInput::Chain { chain, on } => TriggerSpec::Chain { after: chain, on },
        TriggerInput::Watch { watch, glob } => {
            let path = PathBuf::from(watch.trim());
            // Relative to what? The runtime's working directory is no one's guess to make.
            if !path.is_absolute() {
                return Err(ApiError::invalid(
                    "watch",
                    format!("{watch:?} is not an absolute path"),
                ));
            }
            TriggerSpec::Watch { path, glob }
        }
    })
}

impl Api {
    /// The address webhooks are reached on: where this runtime serves, else its configured one.
    fn webhook_base(&self) -> String {
        self.host_url()
            .unwrap_or_else(|| format!("http://{}", self.engine().config().listen))
    }

    pub async fn list_triggers(&self, req: ListTriggers) -> Result<TriggerList, ApiError> {
        let persona_id = match req.persona {
            Some(p) => Some(self.persona(p).await?.id),
            None => None,
        };
        let rows = self
            .store(move |s| s.triggers().list(persona_id.as_ref()))
            .await?;
        let base = self.webhook_base();
        let now = Utc::now();
        Ok(TriggerList {
            triggers: rows.into_iter().map(|t| view(&base, t, now)).collect(),
        })
    }

    pub async fn add_trigger(&self, req: AddTrigger) -> Result<TriggerView, ApiError> {
        if req.persona.trim().is_empty() {
            return Err(ApiError::invalid("persona", "must name a persona"));
        }
        let spec = spec(req.trigger)?;
        let enabled = req.enabled.unwrap_or(true);
        let added = self
            .with_vault(move |s, unlock| {
                triggers::add(s, &req.persona, &spec, enabled, Utc::now(), unlock)
            })
            .await?;
        self.engine().triggers_changed();
        self.engine().wake();
        let mut v = view(&self.webhook_base(), added.trigger, Utc::now());
        v.secret = added.secret.map(|s| s.expose().to_string());
        Ok(v)
    }

    pub async fn reveal_webhook_secret(
        &self,
        req: TriggerRef,
    ) -> Result<WebhookSecretShown, ApiError> {
        let (t, secret) = self
            .with_vault(move |s, unlock| triggers::reveal_secret(s, &req.id, unlock))
            .await?;
        shown(&self.webhook_base(), &t, &secret)
    }

    pub async fn rotate_webhook_secret(
        &self,
        req: TriggerRef,
    ) -> Result<WebhookSecretShown, ApiError> {
        let (t, secret) = self
            .with_vault(move |s, unlock| triggers::rotate_secret(s, &req.id, unlock))
            .await?;
        shown(&self.webhook_base(), &t, &secret)
    }

    pub async fn remove_trigger(&self, req: TriggerRef) -> Result<TriggerView, ApiError> {
        let row = self.store(move |s| s.triggers().remove(&req.id)).await?;
        self.engine().triggers_changed();
        Ok(view(&self.webhook_base(), row, Utc::now()))
    }

    pub async fn set_trigger_enabled(
        &self,
        req: SetTriggerEnabled,
    ) -> Result<TriggerView, ApiError> {
        let row = self
            .store(move |s| s.triggers().set_enabled(&req.id, req.enabled, Utc::now()))
            .await?;
        self.engine().triggers_changed();
        self.engine().wake();
        Ok(view(&self.webhook_base(), row, Utc::now()))
    }

    pub async fn fire_trigger(&self, req: FireTrigger) -> Result<EventRow, ApiError> {
        let t = self.store(move |s| s.triggers().find(&req.id)).await?;
        let event = triggers::fire_event(&t, req.payload.unwrap_or_else(|| json!({})), None)?;
        Ok(self.engine().publish(event).await?)
    }

    pub async fn preview_cron(&self, req: PreviewCron) -> Result<CronPreview, ApiError> {
        let n = req.count.unwrap_or(5);
        if !(1..=MAX_PREVIEW).contains(&n) {
            return Err(ApiError::invalid(
                "count",
                format!("must be between 1 and {MAX_PREVIEW}"),
            ));
        }
        let tz = req
            .tz
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map_or_else(triggers::default_zone, str::to_string);
        let schedule = CronSchedule::parse(&req.cron, &tz)?;
        let next = schedule.upcoming(Utc::now(), n as usize);
        Ok(CronPreview {
            cron: schedule.expr().to_string(),
            next_local: next.iter().map(|t| triggers::in_zone(*t, &tz)).collect(),
            next,
            tz,
        })
    }

    pub async fn list_events(&self, req: ListEvents) -> Result<EventList, ApiError> {
        let n = req.limit.unwrap_or(100).clamp(1, MAX_EVENTS);
        let filter = EventFilter {
            status: req.status,
            event_type: req.event_type.filter(|s| !s.is_empty()),
            source_kind: req.source,
            limit: Some(n),
        };
        let events = self
            .store(move |s| {
                let bus = s.bus();
                let events = bus.list(&filter)?;
                let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
                let mut deliveries = bus.deliveries_of(&ids)?;
                Ok(events
                    .into_iter()
                    .map(|e| {
                        let d = deliveries.remove(&e.id).unwrap_or_default();
                        event_view(e, d)
                    })
                    .collect())
            })
            .await?;
        Ok(EventList { events })
    }

    pub async fn get_event(&self, req: EventRef) -> Result<EventView, ApiError> {
        self.store(move |s| {
            let e = s.bus().find(&req.id)?;
            let d = s.bus().deliveries(&e.id)?;
            Ok(event_view(e, d))
        })
        .await
    }

    pub async fn emit_event(&self, mut req: EmitEvent) -> Result<EventRow, ApiError> {
        // A payload is stored and delivered to runs: it passes the same redaction gate as a
        // run's output.
        if let Some(payload) = req.payload.as_mut() {
            personas_core::redact::redact_json(&self.known_secrets().await, payload);
        }
        let target = match req.target.filter(|t| !t.trim().is_empty()) {
            Some(t) => Some(self.persona(t).await.map_err(|e| ApiError {
                field: Some("target".into()),
                ..e
            })?),
            None => None,
        };
        let event = triggers::user_event(
            &req.event_type,
            req.payload.unwrap_or_else(|| json!({})),
            target.map(|p| p.id),
            None,
        )?;
        Ok(self.engine().publish(event).await?)
    }

    pub async fn retry_event(&self, req: EventRef) -> Result<EventRow, ApiError> {
        let row = self.store(move |s| s.bus().retry(&req.id)).await?;
        self.engine().wake();
        Ok(row)
    }
}
