//! `personas review list|approve|reject`: decisions on runs paused for review.
//!
//! With `personas up` running the decision goes through its API (`decide_review`), so it is
//! announced on the event stream and the session resumes at once; without it the decision is
//! written to the shared store (one transaction re-queues the paused execution) and the run
//! resumes when the runtime starts.

use super::print_json;
use crate::context::Context;
use crate::daemon::{self, Client};
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_core::review::Decision;
use personas_store::{Decided, DecidedBy, Effect, ReviewRow};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ReviewCmd {
    /// Reviews, newest first (pending ones by default).
    List {
        /// pending, approved, rejected, timed_out, cancelled, or all.
        #[arg(long, default_value = "pending")]
        status: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
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
    let store = ctx.store()?;
    let st = Style::detect();
    match cmd {
        ReviewCmd::List { status, limit } => {
            if !STATUSES.contains(&status.as_str()) {
                return Err(CliError::usage(format!(
                    "--status: unknown review status {status:?}; expected one of: {}",
                    STATUSES.join(", ")
                )));
            }
            let filter = (status != "all")
                .then(|| status.parse::<personas_core::ReviewStatus>())
                .transpose()
                .map_err(|e| CliError::usage(format!("--status: {e}")))?;
            let list = store.reviews().list(filter, limit)?;
            if ctx.json {
                print_json(&list);
            } else if list.is_empty() {
                println!("no {} reviews", if status == "all" { "" } else { &status });
            } else {
                print_list(&list, &store, st);
            }
        }
        ReviewCmd::Approve { id, note } => return decide(ctx, &id, Decision::Approve, note).await,
        ReviewCmd::Reject { id, note } => return decide(ctx, &id, Decision::Reject, note).await,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(list: &[ReviewRow], store: &personas_store::Store, st: Style) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let persona = store
                .executions()
                .get(&r.execution_id)
                .map(|e| e.persona_name)
                .unwrap_or_else(|_| "-".into());
            let due = match (r.status.as_str(), r.deadline_at) {
                ("pending", Some(d)) => format!(
                    "{} then {}",
                    d.format("%Y-%m-%d %H:%M UTC"),
                    r.timeout_action.map_or("reject", |a| a.as_str())
                ),
                ("pending", None) => "run still going".into(),
                _ => r.decided_by.map_or("-".into(), |b| b.to_string()),
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
    id: &str,
    decision: Decision,
    note: Option<String>,
) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let data_dir = ctx.config.data_dir.clone();
    let daemon = daemon::running(&data_dir)?;
    let decided: Decided = match daemon.as_ref().and_then(|d| Client::new(d, &data_dir)) {
        // The daemon decides, announces it to the UI and resumes the session at once.
        Some(c) => {
            let body = serde_json::json!({"id": id, "decision": decision.as_str(), "note": note});
            c.operation("decide_review", &body).await?
        }
        None => store
            .reviews()
            .decide(
                id,
                decision,
                note.as_deref(),
                DecidedBy::User,
                ctx.config.review.on_reject,
            )
            .map_err(|e| {
                let hint = matches!(e, personas_store::StoreError::NotFound { .. })
                    .then_some("`personas review list` shows the pending reviews");
                let err = CliError::from(e);
                match hint {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            })?,
    };
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
        Effect::Resumed if daemon.is_some() => println!(
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
                data_dir.display()
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
