//! `personas review list|approve|reject`: decisions on runs paused for review.
//!
//! `list_reviews` and `decide_review`. With a runtime holding the data dir the decision is
//! announced on its event stream and the session resumes at once; without one the decision is
//! stored (one transaction re-queues the paused execution) and the run resumes when the
//! runtime starts.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::ops::{DecideReview, Effect, Empty, ListReviews, ReviewRow};
use personas_api::{Code, Operations};
use personas_core::review::Decision;
use std::collections::HashMap;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ReviewCmd {
    /// Reviews, oldest first (pending ones by default).
    List {
        /// pending, approved, rejected, timed_out, cancelled, or all.
        #[arg(long, default_value = "pending")]
        status: String,
    },
    /// Approve: the paused run resumes its session with the approval (and note).
    Approve {
        /// Review id (or a unique prefix of it).
        id: String,
        /// A note for the agent, e.g. "ship it".
        #[arg(long)]
        note: Option<String>,
    },
    /// Reject: the paused run resumes with the rejection, or ends if its persona says so.
    Reject {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
}

const STATUSES: [&str; 6] = [
    "pending",
    "approved",
    "rejected",
    "timed_out",
    "cancelled",
    "all",
];

pub async fn run(ctx: &mut Context, cmd: ReviewCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    let st = Style::detect();
    match cmd {
        ReviewCmd::List { status } => {
            if !STATUSES.contains(&status.as_str()) {
                return Err(CliError::usage(format!(
                    "--status: unknown review status {status:?}; expected one of: {}",
                    STATUSES.join(", ")
                )));
            }
            let list = client
                .list_reviews(ListReviews {
                    status: match status.as_str() {
                        "all" => None,
                        s => Some(
                            s.parse()
                                .map_err(|e| CliError::usage(format!("--status: {e}")))?,
                        ),
                    },
                })
                .await?;
            if ctx.json {
                print_json(&list);
            } else if list.reviews.is_empty() {
                println!("no {} reviews", if status == "all" { "" } else { &status });
            } else {
                let names: HashMap<String, String> = client
                    .list_personas(Empty {})
                    .await?
                    .personas
                    .into_iter()
                    .map(|p| (p.id.to_string(), p.name))
                    .collect();
                print_list(&list.reviews, &names, st);
            }
        }
        ReviewCmd::Approve { id, note } => return decide(ctx, id, Decision::Approve, note).await,
        ReviewCmd::Reject { id, note } => return decide(ctx, id, Decision::Reject, note).await,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(list: &[ReviewRow], names: &HashMap<String, String>, st: Style) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let persona = r
                .persona_id
                .as_ref()
                .and_then(|id| names.get(id.as_str()).cloned())
                .unwrap_or_else(|| "-".into());
            let due = match (r.status.as_str(), r.deadline_at) {
                ("pending", Some(d)) => format!(
                    "{} then {}",
                    d.format("%Y-%m-%d %H:%M UTC"),
                    r.timeout_action
                        .map_or_else(|| "reject".to_string(), |a| a.to_string())
                ),
                ("pending", None) => "run still going".into(),
                _ => r
                    .decided_by
                    .map_or_else(|| "-".to_string(), |d| d.to_string()),
            };
            vec![
                r.id.clone(),
                persona,
                r.title.clone(),
                r.severity.to_string(),
                status(r.status.as_str(), st),
                render::ago(r.created_at),
                due,
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &[
                "ID",
                "PERSONA",
                "TITLE",
                "SEVERITY",
                "STATUS",
                "ASKED",
                "DEADLINE / BY"
            ],
            &rows
        )
    );
}

fn status(s: &str, st: Style) -> String {
    match s {
        "pending" => st.cyan(s),
        "approved" => st.green(s),
        "rejected" | "timed_out" => st.yellow(s),
        _ => st.dim(s),
    }
}

async fn decide(
    ctx: &mut Context,
    id: String,
    decision: Decision,
    note: Option<String>,
) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    let decided = client
        .decide_review(DecideReview { id, decision, note })
        .await
        .map_err(|e| {
            let not_found = e.code == Code::NotFound;
            let err = CliError::from(e);
            if not_found {
                err.with_hint("`personas review list` shows the pending reviews")
            } else {
                err
            }
        })?;
    if ctx.json {
        print_json(&decided);
        return Ok(ExitCode::SUCCESS);
    }
    let st = Style::detect();
    println!(
        "{} review {} ({})",
        decision.status(),
        decided.review.id,
        st.bold(&decided.review.title)
    );
    match decided.effect {
        Effect::Waiting { pending } => println!(
            "execution {} stays paused: {pending} more review(s) to decide",
            decided.execution.id
        ),
        Effect::Resumed if client.local_api().is_none() => println!(
            "execution {} resumes its Claude session now (`personas execution logs {} -f`)",
            decided.execution.id, decided.execution.id
        ),
        Effect::Resumed => {
            println!(
                "execution {} is queued to resume its Claude session",
                decided.execution.id
            );
            eprintln!(
                "no runtime is running for {}: it resumes when `personas up` starts",
                ctx.config.data_dir.display()
            );
        }
        Effect::Ended => println!(
            "execution {} ended: {}",
            decided.execution.id,
            decided.execution.error_message.as_deref().unwrap_or("")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
