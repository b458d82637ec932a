//! Notification channels, persona policies (review, budgets, healing), healing issues and
//! circuit breakers. The logic is the store's and the engine's (`delivery::channel::parse`,
//! `delivery::send_test`, `PolicyRepo::set`, `HealingRepo`), shared with the CLI; this module
//! turns it into wire types and errors that name the request field.

use super::Api;
use crate::error::{ApiError, Code};
use crate::ops::*;
use personas_core::{BreakerState, ChannelKind, IssueStatus, Persona, PersonaId};
use personas_engine::delivery::{self, channel};
use personas_store::{BreakerRow, ChannelRow, Store, StoreError};
use std::collections::HashMap;

const POLICY_FIELDS: &[&str] = &[
    "review_timeout_secs",
    "daily_budget_usd",
    "monthly_budget_usd",
    "failure_threshold",
];

fn names(s: &Store) -> Result<HashMap<PersonaId, String>, StoreError> {
    Ok(s.personas()
        .list()?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect())
}

fn channel_out(c: ChannelRow, names: &HashMap<PersonaId, String>) -> Channel {
    Channel {
        persona_name: names.get(&c.persona_id).cloned().unwrap_or_default(),
        id: c.id,
        persona_id: c.persona_id.as_str().to_string(),
        name: c.name,
        kind: c.kind,
        config: c.config,
        enabled: c.enabled,
        created_at: c.created_at,
    }
}

fn breaker_out(b: BreakerRow, names: &HashMap<PersonaId, String>) -> Breaker {
    let persona_name = b
        .scope
        .strip_prefix("persona:")
        .and_then(|id| names.get(&PersonaId::from_string(id)).cloned());
    Breaker {
        scope: b.scope,
        persona_name,
        consecutive_failures: b.consecutive_failures,
        state: b.state,
        opened_at: b.opened_at,
        open_until: b.open_until,
        reason: b.reason,
    }
}

fn policy_out(p: personas_store::PersonaPolicy) -> Policy {
    Policy {
        review_timeout_secs: p.review_timeout_secs,
        review_timeout_action: p.review_timeout_action,
        on_reject: p.on_reject,
        daily_budget_usd: p.daily_budget_usd,
        monthly_budget_usd: p.monthly_budget_usd,
        failure_threshold: p.failure_threshold,
        max_retries: p.max_retries,
    }
}

fn policy_in(p: Policy) -> Result<personas_store::PersonaPolicy, ApiError> {
    Ok(personas_store::PersonaPolicy {
        review_timeout_secs: p.review_timeout_secs,
        review_timeout_action: p.review_timeout_action,
        on_reject: p.on_reject,
        daily_budget_usd: p.daily_budget_usd,
        monthly_budget_usd: p.monthly_budget_usd,
        failure_threshold: p.failure_threshold,
        max_retries: p.max_retries,
    })
}

impl Api {
    pub async fn list_channels(&self, req: ListChannels) -> Result<ChannelList, ApiError> {
        let persona = match req.persona {
            Some(p) => Some(self.persona(p).await?.id),
            None => None,
        };
        self.store(move |s| {
            let names = names(s)?;
            Ok(ChannelList {
                channels: s
                    .deliveries()
                    .channels(persona.as_ref())?
                    .into_iter()
                    .map(|c| channel_out(c, &names))
                    .collect(),
            })
        })
        .await
    }

    pub async fn add_channel(&self, req: AddChannel) -> Result<Channel, ApiError> {
        let p = self.persona(req.persona).await?;
        let name = req.name.trim().to_string();
        if name.is_empty() {
            return Err(ApiError::invalid("name", "must not be empty"));
        }
        let config = req
            .config
            .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        channel::parse(req.kind, &config)
            .and_then(|c| c.check_env_refs(&self.config().channel_env_allow))
            .map_err(|e| {
                let field = if e.field == "type" {
                    "kind".to_string()
                } else {
                    format!("config.{}", e.field)
                };
                ApiError::invalid(field, e.message)
            })?;
        let kind = req.kind;
        self.store(move |s| {
            let c = s.deliveries().add_channel(&p.id, &name, kind, &config)?;
            Ok(channel_out(c, &HashMap::from([(p.id, p.name)])))
        })
        .await
    }

    async fn find_channel(&self, req: ChannelRef) -> Result<(Persona, ChannelRow), ApiError> {
        let p = self.persona(req.persona).await?;
        let id = p.id.clone();
        let name = req.name;
        let pname = p.name.clone();
        let c = self
            .store(move |s| {
                s.deliveries()
                    .channels(Some(&id))?
                    .into_iter()
                    .find(|c| c.name == name || c.id == name)
                    .ok_or_else(|| StoreError::not_found("channel", format!("{name} of {pname}")))
            })
            .await?;
        Ok((p, c))
    }

    pub async fn remove_channel(&self, req: ChannelRef) -> Result<Channel, ApiError> {
        let p = self.persona(req.persona).await?;
        let name = req.name;
        self.store(move |s| {
            let c = s.deliveries().remove_channel(&p.id, &name)?;
            Ok(channel_out(c, &HashMap::from([(p.id, p.name)])))
        })
        .await
    }

    pub async fn test_channel(&self, req: ChannelRef) -> Result<ChannelTest, ApiError> {
        let (p, c) = self.find_channel(req).await?;
        let sent = delivery::send_test(
            self.config(),
            self.inner.engine.store(),
            self.inner.engine.vault(),
            &p.name,
            &p.id,
            &c,
        )
        .await;
        Ok(match sent {
            Ok(()) if c.kind == ChannelKind::Desktop => ChannelTest {
                ok: true,
                message: "the config is valid; a running app shows desktop notifications".into(),
            },
            Ok(()) => ChannelTest {
                ok: true,
                message: format!("sent a test notification through {}", c.name),
            },
            // The message names only the channel and the endpoint's answer; secret values are
            // resolved inside the sender and never put into errors.
            Err(e) => ChannelTest {
                ok: false,
                message: e.message,
            },
        })
    }

    fn policy_defaults(&self) -> PolicyDefaults {
        let c = self.config();
        PolicyDefaults {
            review_timeout_secs: c.review.timeout_secs,
            review_timeout_action: c.review.timeout_action,
            on_reject: c.review.on_reject,
            daily_budget_usd: c.budget.daily_usd,
            monthly_budget_usd: c.budget.monthly_usd,
            failure_threshold: c.healing.failure_threshold,
            max_retries: c.healing.max_retries,
        }
    }

    async fn policy_view(&self, p: Persona) -> Result<PersonaPolicy, ApiError> {
        let defaults = self.policy_defaults();
        self.store(move |s| {
            let policy = policy_out(s.policies().get(&p.id)?);
            let names = HashMap::from([(p.id.clone(), p.name.clone())]);
            let breaker = s
                .healing()
                .persona_breaker(&p.id)?
                .map(|b| breaker_out(b, &names));
            Ok(PersonaPolicy {
                persona_id: p.id.as_str().to_string(),
                persona_name: p.name,
                paused: breaker
                    .as_ref()
                    .is_some_and(|b| b.state == BreakerState::Open),
                policy,
                defaults,
                breaker,
            })
        })
        .await
    }

    pub async fn get_policy(&self, req: PersonaRef) -> Result<PersonaPolicy, ApiError> {
        let p = self.persona(req.persona).await?;
        self.policy_view(p).await
    }

    pub async fn update_policy(&self, req: UpdatePolicy) -> Result<PersonaPolicy, ApiError> {
        let p = self.persona(req.persona).await?;
        let policy = policy_in(req.policy)?;
        let id = p.id.clone();
        self.store(move |s| s.policies().set(&id, &policy))
            .await
            .map_err(|e| match e.field.as_deref() {
                // The store checks values for every front-end; here they are request fields.
                Some(f) if e.code == Code::Conflict && POLICY_FIELDS.contains(&f) => {
                    let field = format!("policy.{f}");
                    ApiError {
                        code: Code::Invalid,
                        message: e.message.replacen(f, &field, 1),
                        field: Some(field),
                    }
                }
                _ => e,
            })?;
        self.policy_view(p).await
    }

    pub async fn resume_persona(&self, req: PersonaRef) -> Result<PersonaPolicy, ApiError> {
        let p = self.persona(req.persona).await?;
        let (id, name) = (p.id.clone(), p.name.clone());
        self.store(move |s| s.healing().resume_persona(&id, &name))
            .await?;
        self.policy_view(p).await
    }

    pub async fn list_healing(&self, req: ListHealing) -> Result<HealingList, ApiError> {
        let all = req.all.unwrap_or(false);
        let limit = super::limit(req.limit, 50, super::MAX_LIMIT);
        self.store(move |s| {
            let names = names(s)?;
            Ok(HealingList {
                issues: s
                    .healing()
                    .issues((!all).then_some(IssueStatus::Open), limit)?,
                breakers: s
                    .healing()
                    .breakers()?
                    .into_iter()
                    .filter(|b| all || b.state != BreakerState::Closed)
                    .map(|b| breaker_out(b, &names))
                    .collect(),
            })
        })
        .await
    }

    pub async fn resolve_issue(&self, req: IssueRef) -> Result<personas_store::IssueRow, ApiError> {
        let id = req.id.trim().to_string();
        if id.is_empty() {
            return Err(ApiError::invalid("id", "must name a healing issue"));
        }
        self.store(move |s| s.healing().resolve_issue(&id)).await
    }
}
