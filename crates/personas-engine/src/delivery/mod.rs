//! Delivery of `user_message`s (and review requests) to the notification channels personas
//! configure: Slack, Telegram, email, signed webhooks and desktop notifications.
//!
//! The outbox lives in the store ([`personas_store::DeliveryRepo`]): deliveries are planned from
//! the inbox, leased while sent, and every attempt is recorded with its status and error. A
//! failed attempt is retried with exponential backoff and jitter (longer when the endpoint sent
//! `Retry-After`) until `delivery.max_attempts`, then marked failed; the message always stays in
//! the inbox. The sender sleeps until the next delivery is due, wakes at once when a run adds a
//! message or review, and looks for rows written by other processes every `delivery.poll_ms`.

pub mod channel;
pub mod send;

use crate::component::{Component, Running, Wake, due_at_ms, sleep_until, woken_by};
use crate::events::EngineEvent;
use crate::policy_config::backoff_ms;
use crate::runner::{Runtime, blocking};
use personas_store::{DueDelivery, StoreError};
use send::{SendContext, SendError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Deliveries sent at once.
const BATCH: u32 = 16;

/// The notification sender as an engine component.
pub struct Delivery {
    pub rt: Runtime,
    /// The lease owner tag of this runtime.
    pub owner: String,
}

impl Component for Delivery {
    fn name(&self) -> &'static str {
        "delivery"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(run(self.rt, self.owner, stop))
    }
}

/// Runs the sender until `shutdown`.
pub async fn run(rt: Runtime, owner: String, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder()
        .timeout(rt.config.delivery.timeout())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; notifications are not delivered");
            return;
        }
    };
    let mut events = rt.bus.subscribe();
    let poll = Duration::from_millis(rt.config.delivery.poll_ms);
    loop {
        let next = deliver_due(&rt, &http, &owner).await;
        let added = woken_by(&mut events, |e| {
            matches!(
                e,
                EngineEvent::MessageAdded { .. } | EngineEvent::ReviewRequested { .. }
            )
        });
        if sleep_until(due_at_ms(next, poll), added, &shutdown).await == Wake::Stop {
            return;
        }
    }
}

/// Plans new deliveries, sends everything due, and returns when the next one is due.
pub async fn deliver_due(rt: &Runtime, http: &reqwest::Client, owner: &str) -> Option<i64> {
    let store = rt.store.clone();
    if let Err(e) = blocking(move || store.deliveries().plan()).await {
        tracing::warn!(error = %e, "cannot plan deliveries");
    }
    let lease_ms = (rt.config.delivery.timeout_secs as i64) * 2000 + 5000;
    loop {
        let (store, o) = (rt.store.clone(), owner.to_string());
        let due = match blocking(move || store.deliveries().lease_due(&o, BATCH, lease_ms)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read due deliveries");
                break;
            }
        };
        if due.is_empty() {
            break;
        }
        let mut set = tokio::task::JoinSet::new();
        for d in due {
            let rt = rt.clone();
            let http = http.clone();
            set.spawn(async move { attempt(&rt, &http, d).await });
        }
        while set.join_next().await.is_some() {}
    }
    let store = rt.store.clone();
    blocking(move || store.deliveries().next_due_at())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the next delivery time");
            None
        })
}

/// One attempt of one delivery, recorded.
async fn attempt(rt: &Runtime, http: &reqwest::Client, d: DueDelivery) {
    let cfg = &rt.config.delivery;
    let number = d.attempts + 1;
    let result = match channel::parse(d.channel.kind, &d.channel.config) {
        Err(e) => Err(SendError {
            message: format!("the channel's stored config is invalid: {e}"),
            permanent: true,
            retry_after: None,
        }),
        Ok(config) => {
            let (store, vault, cfg_all, parsed) = (
                rt.store.clone(),
                std::sync::Arc::clone(&rt.vault),
                std::sync::Arc::clone(&rt.config),
                config.clone(),
            );
            let prepared = blocking(move || {
                let secrets = resolve_secrets(&store, &vault, &cfg_all, &parsed)?;
                Ok::<_, String>((
                    secrets,
                    crate::known::runtime_redactor(&store, &vault, &cfg_all),
                ))
            })
            .await;
            let (secrets, redactor) = match prepared {
                Ok(p) => p,
                Err(e) => {
                    return record(
                        rt,
                        &d,
                        number,
                        Err(SendError {
                            message: e,
                            permanent: true,
                            retry_after: None,
                        }),
                    )
                    .await;
                }
            };
            let ctx = SendContext {
                http,
                secrets: &secrets,
                redactor: &redactor,
                slack_api_url: &cfg.slack_api_url,
                telegram_api_url: &cfg.telegram_api_url,
                timeout: cfg.timeout(),
                bus: &rt.bus,
                delivery_id: &d.id,
                attempt: number,
            };
            send::send(&ctx, &config, &d.notice).await
        }
    };
    record(rt, &d, number, result).await
}

/// Records how an attempt went.
async fn record(rt: &Runtime, d: &DueDelivery, number: u32, result: Result<(), SendError>) {
    let cfg = &rt.config.delivery;
    let (error, retry_at) = match &result {
        Ok(()) => (None, None),
        Err(e) => {
            let retry_at = (!e.permanent && number < cfg.max_attempts).then(|| {
                let backoff = backoff_ms(
                    number,
                    cfg.retry_base_ms,
                    cfg.retry_max_ms,
                    rand::random::<f64>(),
                );
                let asked = e.retry_after.map_or(0, |a| a.as_millis() as u64);
                chrono::Utc::now().timestamp_millis() + backoff.max(asked) as i64
            });
            (Some(e.message.clone()), retry_at)
        }
    };
    if let Err(e) = &result {
        tracing::info!(channel = %d.channel.name, kind = %d.channel.kind, attempt = number,
            retry = retry_at.is_some(), error = %e.message, "delivery attempt failed");
    }
    let store = rt.store.clone();
    let id = d.id.clone();
    let recorded: Result<_, StoreError> = blocking(move || {
        store
            .deliveries()
            .record_attempt(&id, error.as_deref(), retry_at)
    })
    .await;
    match recorded {
        Ok(row) => rt.bus.send(EngineEvent::DeliveryUpdated { delivery: row }),
        Err(e) => tracing::warn!(delivery = %d.id, error = %e, "cannot record a delivery attempt"),
    }
}

/// Resolves a channel's secret references: `credential:` ones through the vault (unlocking it
/// if needed), `env:` ones from `[env]`/the environment when `channel_env_allow` lists them.
/// Blocking.
pub fn resolve_secrets(
    store: &personas_store::Store,
    vault: &crate::vault::VaultCell,
    config: &crate::EngineConfig,
    channel: &channel::ChannelConfig,
) -> Result<channel::Resolved, String> {
    let mut lookup = |name: &str, field: &str| -> Result<channel::Secret, String> {
        let opened = crate::credentials::open_named(store, name, &mut || vault.get(store))
            .map_err(|e| e.to_string())?;
        opened
            .values
            .get(field)
            .cloned()
            .ok_or_else(|| format!("the credential {name} has no field {field:?}"))
    };
    channel::Resolved::of(channel, &config.env, &config.channel_env_allow, &mut lookup)
}

/// Sends a test notification through one of `persona_name`'s channels now, with the runtime's
/// delivery settings (`[delivery]`, `[env]` for `env:NAME` secrets). Shared by
/// `personas channel test` and the API's `test_channel`. A desktop channel only validates: a
/// running app shows those.
pub async fn send_test(
    config: &crate::EngineConfig,
    store: &personas_store::Store,
    vault: &std::sync::Arc<crate::vault::VaultCell>,
    persona_name: &str,
    persona_id: &personas_core::PersonaId,
    row: &personas_store::ChannelRow,
) -> Result<(), SendError> {
    let parsed = channel::parse(row.kind, &row.config).map_err(|e| SendError {
        message: format!("the stored config is invalid: {e}"),
        permanent: true,
        retry_after: None,
    })?;
    let (s, v, c, p) = (
        store.clone(),
        std::sync::Arc::clone(vault),
        config.clone(),
        parsed.clone(),
    );
    let secrets = blocking(move || resolve_secrets(&s, &v, &c, &p))
        .await
        .map_err(SendError::permanent_message)?;
    let cfg = &config.delivery;
    let http = reqwest::Client::builder()
        .timeout(cfg.timeout())
        .build()
        .map_err(|e| SendError {
            message: format!("cannot build an HTTP client: {e}"),
            permanent: true,
            retry_after: None,
        })?;
    let bus = crate::events::EventBus::new();
    let notice = personas_store::Notice {
        kind: personas_core::NoticeKind::Message,
        id: "test".into(),
        persona_id: Some(persona_id.clone()),
        persona_name: persona_name.to_string(),
        execution_id: None,
        title: Some("Test notification".into()),
        body: format!(
            "The {} channel {:?} of {} works.",
            row.kind, row.name, persona_name
        ),
        priority: "normal".into(),
        suggested_actions: Vec::new(),
        created_at: chrono::Utc::now(),
    };
    send::send(
        &SendContext {
            http: &http,
            secrets: &secrets,
            redactor: &personas_core::redact::Redactor::none(),
            slack_api_url: &cfg.slack_api_url,
            telegram_api_url: &cfg.telegram_api_url,
            timeout: cfg.timeout(),
            bus: &bus,
            delivery_id: "test",
            attempt: 1,
        },
        &parsed,
        &notice,
    )
    .await
}
