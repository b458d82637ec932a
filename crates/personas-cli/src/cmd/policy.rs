//! `personas persona policy NAME [...]`: a persona's review, budget and healing settings. With
//! no option it shows them (with the runtime defaults that apply where none is set).

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render;
use clap::Args;
use personas_core::Persona;
use personas_core::review::{OnReject, TimeoutAction};
use personas_store::{PersonaPolicy, Store};

#[derive(Args, Debug, Default)]
pub struct PolicyArgs {
    /// Seconds a paused run waits for a review decision.
    #[arg(long, value_name = "SECONDS")]
    review_timeout: Option<u64>,
    /// approve | reject | cancel: what an undecided review does at its deadline.
    #[arg(long, value_name = "ACTION")]
    review_timeout_action: Option<String>,
    /// resume | end: what a rejection does to the paused run.
    #[arg(long, value_name = "ACTION")]
    on_reject: Option<String>,
    /// Spending cap per UTC day; runs beyond it are refused.
    #[arg(long, value_name = "USD")]
    daily_budget_usd: Option<f64>,
    /// Spending cap per UTC month.
    #[arg(long, value_name = "USD")]
    monthly_budget_usd: Option<f64>,
    /// Consecutive failures that pause the persona.
    #[arg(long, value_name = "N")]
    failure_threshold: Option<u32>,
    /// Scheduled retries of a transient failure.
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,
    /// Back to the runtime defaults for every setting (before applying the options given).
    #[arg(long)]
    clear: bool,
}

impl PolicyArgs {
    fn changes(&self) -> bool {
        self.clear
            || self.review_timeout.is_some()
            || self.review_timeout_action.is_some()
            || self.on_reject.is_some()
            || self.daily_budget_usd.is_some()
            || self.monthly_budget_usd.is_some()
            || self.failure_threshold.is_some()
            || self.max_retries.is_some()
    }
}

pub fn run(ctx: &Context, store: &Store, p: &Persona, args: PolicyArgs) -> CliResult<()> {
    let mut policy = if args.clear {
        PersonaPolicy::default()
    } else {
        store.policies().get(&p.id)?
    };
    if args.changes() {
        if let Some(v) = args.review_timeout {
            policy.review_timeout_secs = Some(v);
        }
        if let Some(v) = &args.review_timeout_action {
            policy.review_timeout_action = Some(
                v.parse::<TimeoutAction>()
                    .map_err(|e| CliError::usage(format!("--review-timeout-action: {e}")))?,
            );
        }
        if let Some(v) = &args.on_reject {
            policy.on_reject = Some(
                v.parse::<OnReject>()
                    .map_err(|e| CliError::usage(format!("--on-reject: {e}")))?,
            );
        }
        if let Some(v) = args.daily_budget_usd {
            policy.daily_budget_usd = Some(v);
        }
        if let Some(v) = args.monthly_budget_usd {
            policy.monthly_budget_usd = Some(v);
        }
        if let Some(v) = args.failure_threshold {
            policy.failure_threshold = Some(v);
        }
        if let Some(v) = args.max_retries {
            policy.max_retries = Some(v);
        }
        policy = store.policies().set(&p.id, &policy)?;
    }
    if ctx.json {
        print_json(&policy);
        return Ok(());
    }
    let c = &ctx.config;
    let or = |v: Option<String>, default: String| match v {
        Some(v) => v,
        None => format!("{default} (default)"),
    };
    let usd = |v: Option<f64>| v.map(|v| format!("${v}"));
    let rows = vec![
        vec![
            "review timeout".into(),
            or(
                policy.review_timeout_secs.map(|s| format!("{s} s")),
                format!("{} s", c.review.timeout_secs),
            ),
        ],
        vec![
            "review timeout action".into(),
            or(
                policy.review_timeout_action.map(|a| a.to_string()),
                c.review.timeout_action.to_string(),
            ),
        ],
        vec![
            "on reject".into(),
            or(
                policy.on_reject.map(|a| a.to_string()),
                c.review.on_reject.to_string(),
            ),
        ],
        vec![
            "daily budget".into(),
            or(usd(policy.daily_budget_usd), "none".into()),
        ],
        vec![
            "monthly budget".into(),
            or(usd(policy.monthly_budget_usd), "none".into()),
        ],
        vec![
            "failure threshold".into(),
            or(
                policy.failure_threshold.map(|n| n.to_string()),
                c.healing.failure_threshold.to_string(),
            ),
        ],
        vec![
            "max retries".into(),
            or(
                policy.max_retries.map(|n| n.to_string()),
                c.healing.max_retries.to_string(),
            ),
        ],
    ];
    println!("{} policy", p.name);
    println!("{}", render::table(&["SETTING", "VALUE"], &rows));
    Ok(())
}
