//! `personas execution list|show|logs|cancel`: `list_executions`, `get_execution`,
//! `execution_output` (followed through the runtime's event stream with `--follow`) and
//! `cancel_execution`.

use super::follow::{self, Follower, OnInterrupt};
use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::Operations;
use personas_api::ops::{ExecutionOutputRequest, ExecutionRef, ListExecutions};
use personas_core::ExecutionStatus;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ExecutionCmd {
    /// Recent executions, newest first.
    List {
        /// Only this persona's (name or id).
        #[arg(long)]
        persona: Option<String>,
        /// Only this status (queued, running, completed, failed, ...).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The connected cloud's executions (with their attempt and worker), asked of the
        /// orchestrator; cloud runs started here are also in the plain list, mirrored.
        #[arg(long)]
        cloud: bool,
    },
    /// One execution: status, timings, tokens, cost, error.
    Show {
        /// Execution id (or a unique prefix of it).
        id: String,
    },
    /// The execution's output, rendered; with --json the `execution_output` page (or, with
    /// --follow, one JSON line per output line and the execution at the end).
    Logs {
        id: String,
        /// Keep printing new lines until the execution ends.
        #[arg(long, short)]
        follow: bool,
    },
    /// Stop a queued or running execution.
    Cancel { id: String },
}

pub async fn run(ctx: &mut Context, cmd: ExecutionCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    let st = Style::detect();
    match cmd {
        ExecutionCmd::List {
            persona,
            status,
            limit,
            cloud,
        } => {
            let status = status
                .map(|s| {
                    s.parse::<ExecutionStatus>()
                        .map_err(|e| CliError::usage(format!("--status: {e}")))
                })
                .transpose()?;
            if cloud {
                return super::cloud::list_executions(ctx, persona, status, limit).await;
            }
            let list = client
                .list_executions(ListExecutions {
                    persona,
                    status,
                    limit: Some(limit),
                })
                .await?;
            if ctx.json {
                print_json(&list);
            } else if list.executions.is_empty() {
                println!("no executions");
            } else {
                let rows: Vec<Vec<String>> = list
                    .executions
                    .iter()
                    .map(|e| {
                        vec![
                            e.id.to_string(),
                            e.persona_name.clone(),
                            render::status(e.status, st),
                            e.trigger.to_string(),
                            render::ago(e.queued_at),
                            e.duration_ms(chrono::Utc::now())
                                .map(render::duration_ms)
                                .unwrap_or_else(|| "-".into()),
                            format!("${:.4}", e.cost_usd),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    render::table(
                        &[
                            "ID", "PERSONA", "STATUS", "TRIGGER", "QUEUED", "DURATION", "COST"
                        ],
                        &rows
                    )
                );
            }
        }
        ExecutionCmd::Show { id } => {
            let e = client.get_execution(ExecutionRef { id }).await?;
            if ctx.json {
                print_json(&e);
            } else {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                let rows = vec![
                    vec!["persona".into(), e.persona_name.clone()],
                    vec!["status".into(), render::status(e.status, st)],
                    vec![
                        "trigger".into(),
                        format!(
                            "{}{}",
                            e.trigger,
                            e.trigger_ref
                                .as_ref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        ),
                    ],
                    vec!["queued".into(), e.queued_at.to_rfc3339()],
                    vec!["started".into(), opt(e.started_at.map(|t| t.to_rfc3339()))],
                    vec![
                        "finished".into(),
                        opt(e.finished_at.map(|t| t.to_rfc3339())),
                    ],
                    vec![
                        "duration".into(),
                        opt(e.duration_ms(chrono::Utc::now()).map(render::duration_ms)),
                    ],
                    vec!["session".into(), opt(e.session_id.clone())],
                    vec!["model".into(), opt(e.model.clone())],
                    vec!["turns".into(), e.num_turns.to_string()],
                    vec![
                        "tokens".into(),
                        format!(
                            "{} in / {} out / {} cache read / {} cache write",
                            e.tokens.input,
                            e.tokens.output,
                            e.tokens.cache_read,
                            e.tokens.cache_creation
                        ),
                    ],
                    vec!["cost".into(), format!("${:.6}", e.cost_usd)],
                    vec![
                        "output lines".into(),
                        format!(
                            "{}{}",
                            e.output_lines,
                            if e.output_truncated {
                                " (truncated)"
                            } else {
                                ""
                            }
                        ),
                    ],
                    vec!["parse warnings".into(), e.parse_warnings.to_string()],
                    vec![
                        "error".into(),
                        opt(e.error_class.map(|c| {
                            format!("[{c}] {}", e.error_message.clone().unwrap_or_default())
                        })),
                    ],
                    vec![
                        "outcome".into(),
                        opt(e.outcome_accomplished.map(|a| {
                            format!(
                                "{} — {}",
                                if a {
                                    "accomplished"
                                } else {
                                    "not accomplished"
                                },
                                e.outcome_summary.clone().unwrap_or_default()
                            )
                        })),
                    ],
                ];
                println!("{} {}", st.bold("execution"), e.id);
                println!("{}", render::table(&["FIELD", "VALUE"], &rows));
                if !e.permission_denials.is_empty() {
                    println!("\n{}", st.yellow("denied tool calls:"));
                    for d in &e.permission_denials {
                        println!("  {} {}", d.tool_name, d.tool_input);
                    }
                }
                if !e.persona_denials.is_empty() {
                    println!(
                        "\n{}",
                        st.yellow("denied persona starts (not in allow_personas):")
                    );
                    for d in &e.persona_denials {
                        println!(
                            "  {} ({}) via {}{}",
                            d.target,
                            d.target_persona_id,
                            d.via,
                            d.action
                                .as_deref()
                                .map(|a| format!(", action {a}"))
                                .unwrap_or_default()
                        );
                    }
                }
                if let Some(r) = &e.result_text {
                    println!("\n{}\n{r}", st.bold("result"));
                }
            }
        }
        ExecutionCmd::Logs { id, follow } => {
            let e = client.get_execution(ExecutionRef { id }).await?;
            if ctx.json && !follow {
                // The stored output as `execution_output` answers it (one page).
                let page = client
                    .execution_output(ExecutionOutputRequest {
                        id: e.id.to_string(),
                        after: None,
                        limit: None,
                    })
                    .await?;
                print_json(&page);
                return Ok(ExitCode::SUCCESS);
            }
            let mut f = Follower::new(ctx.json);
            f.catch_up(&client, e.id.as_str()).await?;
            if follow {
                let runtime = ctx.runtime().cloned();
                if let Some(done) = follow::follow(
                    &client,
                    runtime.as_ref(),
                    e.id.as_str(),
                    &mut f,
                    OnInterrupt::Detach,
                )
                .await?
                {
                    f.finish(&done);
                }
            }
        }
        ExecutionCmd::Cancel { id } => {
            let after = client.cancel_execution(ExecutionRef { id }).await?;
            if ctx.json {
                print_json(&after);
            } else if after.status == ExecutionStatus::Running {
                println!(
                    "cancel requested for {} — it stops within seconds",
                    after.id
                );
            } else {
                println!("{} is {}", after.id, render::status(after.status, st));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
