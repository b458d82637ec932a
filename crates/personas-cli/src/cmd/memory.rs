//! `personas memory list|add|edit|delete`: what personas remember between runs —
//! `list_memories`, `add_memory`, `update_memory`, `delete_memory` (text is redacted by the API).

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::ops::{AddMemory, Empty, ListMemories, MemoryRef, MemoryRow, UpdateMemory};
use personas_api::{ApiError, Code, Operations};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum MemoryCmd {
    /// Memories, newest first.
    List {
        /// Only this persona's (name or id).
        #[arg(long)]
        persona: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Add a memory to a persona; later runs get it in their prompt.
    Add {
        /// Persona name or id.
        persona: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        content: String,
        #[arg(long, default_value = "general")]
        category: String,
        /// 1 (trivia) to 5 (essential).
        #[arg(long, default_value_t = 3)]
        importance: u8,
    },
    /// Change a memory; only the options given change.
    Edit {
        /// Memory id (or a unique prefix of it).
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        content: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        importance: Option<u8>,
    },
    /// Delete a memory.
    Delete { id: String },
}

fn hint(e: ApiError) -> CliError {
    let not_found = e.code == Code::NotFound;
    let err = CliError::from(e);
    if not_found {
        err.with_hint("`personas memory list` shows the memories and their ids")
    } else {
        err
    }
}

pub async fn run(ctx: &mut Context, cmd: MemoryCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    let st = Style::detect();
    let show = |m: &MemoryRow, verb: &str| {
        if ctx.json {
            print_json(m);
        } else {
            println!("{verb} memory {} ({})", st.bold(&m.title), m.id);
        }
    };
    match cmd {
        MemoryCmd::List { persona, limit } => {
            let list = client
                .list_memories(ListMemories {
                    persona,
                    limit: Some(limit),
                })
                .await?;
            if ctx.json {
                print_json(&list);
            } else if list.memories.is_empty() {
                println!("no memories");
            } else {
                let names: std::collections::HashMap<_, _> = client
                    .list_personas(Empty {})
                    .await?
                    .personas
                    .into_iter()
                    .map(|p| (p.id, p.name))
                    .collect();
                let rows: Vec<Vec<String>> = list
                    .memories
                    .iter()
                    .map(|m| {
                        let mut content: String = m.content.chars().take(60).collect();
                        if m.content.chars().count() > 60 {
                            content.push('…');
                        }
                        vec![
                            m.id.clone(),
                            names.get(&m.persona_id).cloned().unwrap_or_default(),
                            m.importance.to_string(),
                            m.category.clone(),
                            m.title.clone(),
                            content.replace('\n', " "),
                            render::ago(m.created_at),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    render::table(
                        &[
                            "ID", "PERSONA", "IMP", "CATEGORY", "TITLE", "CONTENT", "ADDED"
                        ],
                        &rows
                    )
                );
            }
        }
        MemoryCmd::Add {
            persona,
            title,
            content,
            category,
            importance,
        } => {
            let m = client
                .add_memory(AddMemory {
                    persona,
                    title,
                    content,
                    category: Some(category),
                    importance: Some(importance),
                })
                .await?;
            show(&m, "added");
        }
        MemoryCmd::Edit {
            id,
            title,
            content,
            category,
            importance,
        } => {
            if title.is_none() && content.is_none() && category.is_none() && importance.is_none() {
                return Err(CliError::usage(
                    "nothing to change: give --title, --content, --category or --importance",
                ));
            }
            let m = client
                .update_memory(UpdateMemory {
                    id,
                    title,
                    content,
                    category,
                    importance,
                })
                .await
                .map_err(hint)?;
            show(&m, "updated");
        }
        MemoryCmd::Delete { id } => {
            let m = client.delete_memory(MemoryRef { id }).await.map_err(hint)?;
            show(&m, "deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
