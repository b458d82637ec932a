//! `personas memory list|add|edit|delete`: what personas remember between runs.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_store::{MemoryEdit, MemoryRow};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum MemoryCmd {
    /// Memories, most important then newest first.
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

fn hint(e: personas_store::StoreError) -> CliError {
    let not_found = matches!(
        e,
        personas_store::StoreError::NotFound { what: "memory", .. }
    );
    let err = CliError::from(e);
    if not_found {
        err.with_hint("`personas memory list` shows the memories and their ids")
    } else {
        err
    }
}

pub async fn run(ctx: &mut Context, cmd: MemoryCmd) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let st = Style::detect();
    let mems = store.memories();
    let show = |m: &MemoryRow, verb: &str| {
        if ctx.json {
            print_json(m);
        } else {
            println!("{verb} memory {} ({})", st.bold(&m.title), m.id);
        }
    };
    match cmd {
        MemoryCmd::List { persona, limit } => {
            let persona_id = match persona {
                Some(p) => Some(store.personas().find(&p)?.id),
                None => None,
            };
            let list = mems.list(persona_id.as_ref(), limit)?;
            if ctx.json {
                print_json(&list);
            } else if list.is_empty() {
                println!("no memories");
            } else {
                let names: std::collections::HashMap<_, _> = store
                    .personas()
                    .list()?
                    .into_iter()
                    .map(|p| (p.id, p.name))
                    .collect();
                let rows: Vec<Vec<String>> = list
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
            let p = store.personas().find(&persona)?;
            let known = personas_engine::known::runtime_redactor(
                &store,
                &personas_engine::vault::VaultCell::new(super::credential::vault_options()),
                &ctx.config,
            );
            let (title, content) = (known.redact(&title), known.redact(&content));
            let m = mems.add(&p.id, &title, &content, &category, importance)?;
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
            let known = personas_engine::known::runtime_redactor(
                &store,
                &personas_engine::vault::VaultCell::new(super::credential::vault_options()),
                &ctx.config,
            );
            let title = title.map(|t| known.redact(&t).into_owned());
            let content = content.map(|c| known.redact(&c).into_owned());
            let m = mems
                .edit(
                    &id,
                    &MemoryEdit {
                        title,
                        content,
                        category,
                        importance,
                    },
                )
                .map_err(hint)?;
            show(&m, "updated");
        }
        MemoryCmd::Delete { id } => {
            let m = mems.delete(&id).map_err(hint)?;
            show(&m, "deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
