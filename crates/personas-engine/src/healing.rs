//! Healing: what the runtime does after an execution ends, per error class.
//!
//! - Transient classes (rate limited, overloaded, server error, network): a durable scheduled
//!   retry — a new execution (`trigger: retry`, `trigger_ref`: the failed one) that the queue
//!   starts no earlier than its `not_before`, with exponential backoff and jitter. The CLI's own
//!   retries are lowered (`cli_max_retries`) so it gives up in seconds and this takes over.
//! - Every other failure: a healing issue with a plain suggested fix, one per persona and class.
//! - A per-persona circuit breaker (N consecutive failures pause the persona until
//!   `personas persona resume`) and one for the model provider (holds the queue for a
//!   cool-down that doubles while failures continue).
//!
//! The bookkeeping is one store transaction per execution ([`personas_store::HealingRepo`]),
//! idempotent, and swept again at start-up and periodically, so nothing is lost in a crash.

use crate::events::EngineEvent;
use crate::policy_config::backoff_ms;
use crate::runner::{Runtime, blocking};
use personas_core::{ErrorClass, Execution, ExecutionId};
use personas_store::{Advice, HealingDefaults, HealingReport};

/// The suggested fix for a failure a retry will not cure.
pub fn advice(class: ErrorClass, exec: &Execution) -> Advice {
    let name = &exec.persona_name;
    let (title, fix) = match class {
        ErrorClass::CliMissing => (
            "The Claude Code CLI was not found".to_string(),
            "Install it (`npm install -g @anthropic-ai/claude-code`) or set claude_path in \
             config.toml; `personas doctor` checks it."
                .to_string(),
        ),
        ErrorClass::SpawnFailed => (
            "The Claude Code CLI could not be started".into(),
            "Check that the CLI is executable and the data dir is writable; `personas doctor` \
             checks both."
                .into(),
        ),
        ErrorClass::NotLoggedIn => (
            "Claude Code is not logged in".into(),
            "Run `claude` once and /login, or set ANTHROPIC_API_KEY for the runtime.".into(),
        ),
        ErrorClass::AuthFailed => (
            "The model API refused the credentials (401/403)".into(),
            "Renew the API key or log in again (`claude`, then /login); then resume the \
             persona if it was paused."
                .into(),
        ),
        ErrorClass::BadRequest => (
            "The model API rejected the request (400)".into(),
            format!(
                "Check {name}'s model name and prompt size (`personas persona show \"{name}\"`); \
                 the error message says which part was rejected."
            ),
        ),
        ErrorClass::Timeout => (
            format!("{name} ran out of time"),
            format!(
                "Raise its timeout (`personas persona update \"{name}\" --timeout SECONDS`) or \
                 give it a smaller task."
            ),
        ),
        ErrorClass::Inactivity => (
            format!("{name} printed nothing for too long"),
            "The model API may be hanging; check the network, or raise \
             inactivity_timeout_secs in config.toml for long silent tool runs."
                .into(),
        ),
        ErrorClass::MaxTurns => (
            format!("{name} hit its turn limit"),
            format!(
                "Raise it (`personas persona update \"{name}\" --max-turns N`) or narrow the \
                 instructions so the task needs fewer steps."
            ),
        ),
        ErrorClass::BudgetExceeded => (
            format!("{name} hit its per-run budget"),
            format!(
                "Raise it (`personas persona update \"{name}\" --max-budget-usd N`) or use a \
                 cheaper model."
            ),
        ),
        ErrorClass::PermissionDenied => (
            format!("{name} was denied a tool it needed"),
            format!(
                "Allow the tool (`personas persona update \"{name}\" --allow-tool RULE`) if it \
                 should have it, or change the instructions."
            ),
        ),
        ErrorClass::Crash => (
            "The Claude Code CLI stopped without a result".into(),
            "Read the stderr lines in `personas execution logs ID`; reinstall the CLI if it \
             keeps crashing."
                .into(),
        ),
        ErrorClass::RateLimited | ErrorClass::Overloaded | ErrorClass::ServerError => (
            "The model API kept failing after every retry".into(),
            "Wait for the provider to recover (its status page), lower max_concurrent, or \
             raise healing.max_retries in config.toml."
                .into(),
        ),
        ErrorClass::Network => (
            "The model API could not be reached after every retry".into(),
            "Check the network connection and ANTHROPIC_BASE_URL (if set).".into(),
        ),
        other => (
            format!("{name} failed ({other})"),
            "Read the execution's error and logs (`personas execution show ID`).".into(),
        ),
    };
    Advice {
        title,
        suggested_fix: fix,
    }
}

fn defaults(rt: &Runtime) -> HealingDefaults {
    let h = &rt.config.healing;
    HealingDefaults {
        failure_threshold: h.failure_threshold,
        max_retries: h.max_retries,
        provider_threshold: h.provider_threshold,
        provider_cooldown_ms: (h.provider_cooldown_secs * 1000) as i64,
        provider_cooldown_max_ms: (h.provider_cooldown_max_secs * 1000) as i64,
    }
}

/// Runs the healing bookkeeping for one ended execution and announces it. Returns notes for the
/// execution's output (what was scheduled or needs a person); empty when nothing was done.
pub async fn after_finish(rt: &Runtime, id: &ExecutionId) -> Vec<String> {
    let store = rt.store.clone();
    let defaults = defaults(rt);
    let (base, max) = (
        rt.config.healing.retry_base_ms,
        rt.config.healing.retry_max_ms,
    );
    let id2 = id.clone();
    let report = blocking(move || {
        let delay =
            move |attempt: u32| backoff_ms(attempt, base, max, rand::random::<f64>()) as i64;
        store
            .healing()
            .record_outcome(&id2, &defaults, &delay, &advice)
    })
    .await;
    let report = match report {
        Ok(Some(r)) => r,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(execution = %id, error = %e, "healing bookkeeping failed; the sweep retries it");
            return Vec::new();
        }
    };
    let notes = notes(&report, rt.config.healing.max_retries);
    if report != HealingReport::default() {
        rt.bus.send(EngineEvent::Healing {
            execution_id: id.clone(),
            report,
        });
    }
    notes
}

fn notes(r: &HealingReport, max_retries: u32) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(retry) = &r.retry {
        out.push(format!(
            "healing: a transient failure; retry {} of at most {max_retries} scheduled for {} as execution {}",
            retry.attempt,
            retry.not_before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            retry.execution_id
        ));
    }
    if let Some(reason) = &r.paused {
        out.push(format!(
            "healing: the persona is paused {reason}; resume it with `personas persona resume`"
        ));
    }
    if let Some(issue) = &r.issue {
        out.push(format!(
            "healing issue: {} — suggested fix: {}",
            issue.title, issue.suggested_fix
        ));
    }
    if let Some(until) = r.provider_open_until {
        out.push(format!(
            "healing: the model provider keeps failing; new runs wait until {}",
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    out
}

/// Processes ended executions that missed their bookkeeping (crash, refusal, a run ended by a
/// review decision or another process). Returns how many.
pub async fn sweep(rt: &Runtime) -> usize {
    let store = rt.store.clone();
    let ids = match blocking(move || store.healing().unhealed(500)).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list executions awaiting healing");
            return 0;
        }
    };
    for id in &ids {
        after_finish(rt, id).await;
    }
    ids.len()
}
