//! `personas healing list|resolve`: failures the runtime could not fix by itself, with a
//! suggested fix, and the state of the circuit breakers.

use super::print_json;
use crate::context::Context;
use crate::error::CliResult;
use crate::render::{self, Style};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum HealingCmd {
    /// Open healing issues (all with --all) and open circuit breakers.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Mark an issue resolved.
    Resolve {
        /// Issue id (or a unique prefix of it).
        id: String,
    },
}

pub async fn run(ctx: &mut Context, cmd: HealingCmd) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let st = Style::detect();
    match cmd {
        HealingCmd::List { all, limit } => {
            let issues = store
                .healing()
                .issues((!all).then_some(personas_core::IssueStatus::Open), limit)?;
            let breakers: Vec<_> = store
                .healing()
                .breakers()?
                .into_iter()
                .filter(|b| all || b.state == personas_core::BreakerState::Open)
                .collect();
            if ctx.json {
                print_json(&serde_json::json!({"issues": issues, "breakers": breakers}));
                return Ok(ExitCode::SUCCESS);
            }
            if issues.is_empty() {
                println!("no {}healing issues", if all { "" } else { "open " });
            }
            for i in &issues {
                println!(
                    "{} {} · {} · [{}] ×{} · {}",
                    st.yellow("●"),
                    st.bold(&i.title),
                    i.persona_name,
                    i.error_class,
                    i.occurrences,
                    render::ago(i.updated_at)
                );
                println!("  fix: {}", i.suggested_fix);
                println!("  {}", st.dim(&format!("id {} · {}", i.id, i.status)));
            }
            for b in &breakers {
                let scope = match b.scope.strip_prefix("persona:") {
                    Some(id) => store
                        .personas()
                        .get(&personas_core::PersonaId::from_string(id))
                        .map(|p| format!("persona {}", p.name))
                        .unwrap_or_else(|_| b.scope.clone()),
                    None => "model provider".into(),
                };
                println!(
                    "{} breaker {}: {}{}",
                    st.red("■"),
                    scope,
                    b.state,
                    b.reason
                        .as_deref()
                        .map(|r| format!(" — {r}"))
                        .unwrap_or_default()
                );
            }
        }
        HealingCmd::Resolve { id } => {
            let issue = store.healing().resolve_issue(&id)?;
            if ctx.json {
                print_json(&issue);
            } else {
                println!("resolved {} ({})", issue.title, issue.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
