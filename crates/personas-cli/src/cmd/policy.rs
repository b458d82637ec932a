//! `personas persona policy NAME [...]`: a persona's review, budget and healing settings. With
//! no option it shows them (`get_policy`, with the runtime defaults that apply where none is
//! set); with options it replaces them (`update_policy`) and shows the result.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render;
use clap::Args;
use personas_api::ops::{PersonaRef, Policy, UpdatePolicy};
use personas_api::{Client, Operations};
use personas_core::review::{OnReject, TimeoutAction};

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

pub async fn run(
    ctx: &Context,
    client: &Client,
    persona: String,
    args: PolicyArgs,
) -> CliResult<()> {
    let mut view = client
        .get_policy(PersonaRef {
            persona: persona.clone(),
        })
        .await?;
    if args.changes() {
        let mut policy = if args.clear {
            Policy::default()
        } else {
            view.policy.clone()
        };
        if let Some(v) = args.review_timeout {
            policy.review_timeout_secs = Some(v);
        }
        // Checked here too so the error names the flag, not the request field.
        if let Some(v) = &args.review_timeout_action {
            let a = v
                .parse::<TimeoutAction>()
                .map_err(|e| CliError::usage(format!("--review-timeout-action: {e}")))?;
            policy.review_timeout_action = Some(a);
        }
        if let Some(v) = &args.on_reject {
            let a = v
                .parse::<OnReject>()
                .map_err(|e| CliError::usage(format!("--on-reject: {e}")))?;
            policy.on_reject = Some(a);
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
        view = client
            .update_policy(UpdatePolicy {
                persona: view.persona_id.clone(),
                policy,
            })
            .await?;
    }
    if ctx.json {
        print_json(&view);
        return Ok(());
    }
    let (policy, d) = (&view.policy, &view.defaults);
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
                format!("{} s", d.review_timeout_secs),
            ),
        ],
        vec![
            "review timeout action".into(),
            or(
                policy.review_timeout_action.map(|a| a.to_string()),
                d.review_timeout_action.to_string(),
            ),
        ],
        vec![
            "on reject".into(),
            or(
                policy.on_reject.map(|a| a.to_string()),
                d.on_reject.to_string(),
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
                d.failure_threshold.to_string(),
            ),
        ],
        vec![
            "max retries".into(),
            or(
                policy.max_retries.map(|n| n.to_string()),
                d.max_retries.to_string(),
            ),
        ],
    ];
    println!("{} policy", view.persona_name);
    println!("{}", render::table(&["SETTING", "VALUE"], &rows));
    if view.paused {
        println!(
            "paused by its circuit breaker: `personas persona resume {}`",
            view.persona_name
        );
    }
    Ok(())
}
