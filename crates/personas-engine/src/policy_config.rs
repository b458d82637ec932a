//! The configuration sections for review, healing, budgets and delivery (`[review]`,
//! `[healing]`, `[budget]`, `[delivery]` in `config.toml`). Per-persona overrides live in the
//! store (`personas persona policy`).

use personas_core::review::{OnReject, TimeoutAction};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[review]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// How long a paused run waits for a decision.
    pub timeout_secs: u64,
    /// What happens when nobody decides in time: approve, reject or cancel.
    pub timeout_action: TimeoutAction,
    /// What a rejection does: resume the session with it, or end the run.
    pub on_reject: OnReject,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 24 * 3600,
            timeout_action: TimeoutAction::Reject,
            on_reject: OnReject::Resume,
        }
    }
}

impl ReviewConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.timeout_secs == 0 {
            return Err("timeout_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// `[healing]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealingConfig {
    /// Scheduled retries of a transient failure (rate limited, overloaded, server error,
    /// network); each is a new execution that waits for its time in the queue.
    pub max_retries: u32,
    /// Wait before the first retry; doubles for each further one, plus up to 25 % jitter.
    pub retry_base_ms: u64,
    /// Longest wait between retries.
    pub retry_max_ms: u64,
    /// Consecutive failures that pause a persona (its circuit breaker).
    pub failure_threshold: u32,
    /// Consecutive transient failures, across personas, that open the provider breaker.
    pub provider_threshold: u32,
    /// How long an open provider breaker holds the queue; doubles each time it reopens.
    pub provider_cooldown_secs: u64,
    pub provider_cooldown_max_secs: u64,
}

impl Default for HealingConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            retry_base_ms: 30_000,
            retry_max_ms: 15 * 60_000,
            failure_threshold: 5,
            provider_threshold: 5,
            provider_cooldown_secs: 60,
            provider_cooldown_max_secs: 15 * 60,
        }
    }
}

impl HealingConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.failure_threshold == 0 || self.provider_threshold == 0 {
            return Err("failure_threshold and provider_threshold must be at least 1".into());
        }
        if self.retry_base_ms == 0 || self.retry_max_ms < self.retry_base_ms {
            return Err("retry_base_ms must be at least 1 and at most retry_max_ms".into());
        }
        if self.provider_cooldown_secs == 0
            || self.provider_cooldown_max_secs < self.provider_cooldown_secs
        {
            return Err(
                "provider_cooldown_secs must be at least 1 and at most provider_cooldown_max_secs"
                    .into(),
            );
        }
        Ok(())
    }
}

/// `[budget]`: caps on what all personas together may spend (UTC day and month). Each persona
/// can have its own caps too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

impl BudgetConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        for (k, v) in [
            ("daily_usd", self.daily_usd),
            ("monthly_usd", self.monthly_usd),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(format!("{k} must be a positive amount, got {v}"));
            }
        }
        Ok(())
    }
}

/// `[delivery]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Attempts per delivery before it is marked failed (the message stays in the inbox).
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles each time, plus up to 25 % jitter. A
    /// `Retry-After` from the endpoint is honoured when longer.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Timeout of one attempt.
    pub timeout_secs: u64,
    /// Slack Web API base (bot-token channels).
    pub slack_api_url: String,
    /// Telegram Bot API base.
    pub telegram_api_url: String,
    /// How often the outbox looks for messages added by other processes (the MCP server).
    pub poll_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            retry_base_ms: 2_000,
            retry_max_ms: 10 * 60_000,
            timeout_secs: 15,
            slack_api_url: "https://slack.com/api".into(),
            telegram_api_url: "https://api.telegram.org".into(),
            poll_ms: 2_000,
        }
    }
}

impl DeliveryConfig {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.retry_base_ms == 0 || self.retry_max_ms < self.retry_base_ms {
            return Err("retry_base_ms must be at least 1 and at most retry_max_ms".into());
        }
        if self.timeout_secs == 0 || self.poll_ms == 0 {
            return Err("timeout_secs and poll_ms must be at least 1".into());
        }
        for (k, v) in [
            ("slack_api_url", &self.slack_api_url),
            ("telegram_api_url", &self.telegram_api_url),
        ] {
            if !(v.starts_with("https://") || v.starts_with("http://")) {
                return Err(format!("{k} must be an http(s) URL, got {v:?}"));
            }
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Exponential backoff with jitter: `base · 2^(attempt-1)`, capped at `max`, plus up to 25 %.
/// `attempt` is 1-based; `jitter` is a number in `[0, 1)`.
pub fn backoff_ms(attempt: u32, base_ms: u64, max_ms: u64, jitter: f64) -> u64 {
    let exp = base_ms.saturating_mul(1_u64 << attempt.saturating_sub(1).min(32));
    let capped = exp.min(max_ms);
    capped + (capped as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_at_most_a_quarter() {
        assert_eq!(backoff_ms(1, 1000, 60_000, 0.0), 1000);
        assert_eq!(backoff_ms(2, 1000, 60_000, 0.0), 2000);
        assert_eq!(backoff_ms(4, 1000, 60_000, 0.0), 8000);
        assert_eq!(backoff_ms(30, 1000, 60_000, 0.0), 60_000);
        assert_eq!(backoff_ms(1, 1000, 60_000, 0.999), 1249);
        assert_eq!(backoff_ms(u32::MAX, 1, u64::MAX, 0.0), 1 << 32);
    }

    #[test]
    fn sections_reject_values_they_cannot_use() {
        let h = HealingConfig {
            failure_threshold: 0,
            ..HealingConfig::default()
        };
        assert!(h.check().is_err());
        let b = BudgetConfig {
            daily_usd: Some(-1.0),
            monthly_usd: None,
        };
        assert!(b.check().expect_err("negative").contains("daily_usd"));
        let d = DeliveryConfig {
            slack_api_url: "slack.com".into(),
            ..DeliveryConfig::default()
        };
        assert!(d.check().expect_err("scheme").contains("slack_api_url"));
        assert!(ReviewConfig::default().check().is_ok());
    }
}
