//! `personas healing list|resolve`: failures the runtime could not fix by itself, with a
//! suggested fix, and the state of the circuit breakers (`list_healing`, `resolve_issue`).

use super::print_json;
use crate::context::Context;
use crate::error::CliResult;
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::Operations;
use personas_api::ops::{HealingList, IssueRef, ListHealing};
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
    let client = ctx.client()?;
    match cmd {
        HealingCmd::List { all, limit } => {
            let list = client
                .list_healing(ListHealing {
                    all: Some(all),
                    limit: Some(limit),
                })
                .await?;
            if ctx.json {
                print_json(&list);
            } else {
                print_list(&list, all);
            }
        }
        HealingCmd::Resolve { id } => {
            let issue = client.resolve_issue(IssueRef { id }).await?;
            if ctx.json {
                print_json(&issue);
            } else {
                println!("resolved {} ({})", issue.title, issue.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(list: &HealingList, all: bool) {
    let st = Style::detect();
    if list.issues.is_empty() {
        println!("no {}healing issues", if all { "" } else { "open " });
    }
    for i in &list.issues {
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
    for b in &list.breakers {
        let scope = match &b.persona_name {
            Some(name) => format!("persona {name}"),
            None if b.scope == "provider" => "model provider".into(),
            None => b.scope.clone(),
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
