//! `personas execution list|show|logs|cancel`.

use super::print_json;
use super::run::Follower;
use crate::context::Context;
use crate::daemon::{self, Client};
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_core::ExecutionStatus;
use personas_store::ExecutionFilter;
use std::process::ExitCode;
use std::time::Duration;

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
    },
    /// One execution: status, timings, tokens, cost, error.
    Show {
        /// Execution id (or a unique prefix of it).
        id: String,
    },
    /// The execution's output, rendered (or as JSON lines with --json).
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
    let store = ctx.store()?;
    let st = Style::detect();
    match cmd {
        ExecutionCmd::List {
            persona,
            status,
            limit,
        } => {
            let persona_id = match persona {
                Some(p) => Some(store.personas().find(&p)?.id),
                None => None,
            };
            let status = status
                .map(|s| {
                    s.parse::<ExecutionStatus>()
                        .map_err(|e| CliError::usage(format!("--status: {e}")))
                })
                .transpose()?;
            let list = store.executions().list(&ExecutionFilter {
                persona_id,
                status,
                limit: Some(limit),
            })?;
            if ctx.json {
                print_json(&list);
            } else if list.is_empty() {
                println!("no executions");
            } else {
                let rows: Vec<Vec<String>> = list
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
            let e = store.executions().find(&id)?;
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
            let e = store.executions().find(&id)?;
            let mut f = Follower::new(ctx.json);
            while f.catch_up(&store, &e.id)? {}
            if follow {
                loop {
                    let now = store.executions().get(&e.id)?;
                    if now.status.is_terminal() {
                        while f.catch_up(&store, &e.id)? {}
                        f.finish(&now);
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => { while f.catch_up(&store, &e.id)? {} }
                        _ = tokio::signal::ctrl_c() => break,
                    }
                }
            }
        }
        ExecutionCmd::Cancel { id } => {
            let e = store.executions().find(&id)?;
            let data_dir = ctx.config.data_dir.clone();
            let via_daemon = daemon::running(&data_dir)?.and_then(|d| Client::new(&d, &data_dir));
            let after = match via_daemon {
                Some(c) => c.cancel(e.id.as_str()).await?,
                None => store.executions().request_cancel(&e.id)?,
            };
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
