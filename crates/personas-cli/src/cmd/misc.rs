//! Small commands: `message list|read` (`list_messages`, `mark_messages_read`), `doctor` (`system_check`), and `config`,
//! which stays local: it prints the configuration this process resolves (defaults →
//! config.toml → `PERSONAS_*` variables), which is what a CLI run in this shell uses and may
//! differ from what a running runtime was started with (`get_settings` reports that one).

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::Operations;
use personas_api::ops::{Empty, ListMessages, MarkMessagesRead, SystemReport};
use personas_api::system::{self, CheckStatus};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum MessageCmd {
    /// Messages from personas, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only messages not read yet.
        #[arg(long)]
        unread: bool,
    },
    /// Mark messages read: these ids, or every unread one when none is given.
    Read { ids: Vec<String> },
}

pub async fn message(ctx: &mut Context, cmd: MessageCmd) -> CliResult<ExitCode> {
    let (limit, unread) = match cmd {
        MessageCmd::List { limit, unread } => (limit, unread),
        MessageCmd::Read { ids } => {
            let done = ctx
                .client()?
                .mark_messages_read(MarkMessagesRead {
                    ids: (!ids.is_empty()).then_some(ids),
                })
                .await?;
            if ctx.json {
                print_json(&done);
            } else {
                println!("{} message(s) marked read", done.updated);
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let list = ctx
        .client()?
        .list_messages(ListMessages {
            unread_only: unread.then_some(true),
            limit: Some(limit),
        })
        .await?;
    if ctx.json {
        print_json(&list);
    } else if list.messages.is_empty() {
        println!("no messages");
    } else {
        let st = Style::detect();
        for m in &list.messages {
            let title = m
                .title
                .as_deref()
                .map(|t| format!("{} — ", st.bold(t)))
                .unwrap_or_default();
            println!(
                "{} {} [{}] {}{}",
                st.dim(&render::ago(m.created_at)),
                m.persona_name,
                m.priority,
                title,
                m.content
            );
        }
        println!("{}", st.dim(&format!("{} unread", list.unread)));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn doctor(ctx: &mut Context) -> CliResult<ExitCode> {
    let report = match ctx.client() {
        Ok(client) => client.system_check(Empty {}).await?,
        // The store cannot be opened: the checks that need none still say what is wrong.
        Err(e) => {
            let cause = match e.hint {
                Some(h) => format!("{} ({h})", e.message),
                None => e.message,
            };
            let vault = std::sync::Arc::new(personas_engine::vault::VaultCell::new(
                super::credential::vault_options(),
            ));
            let checks = system::checks(&ctx.config, Err(cause), &vault).await;
            SystemReport {
                version: env!("CARGO_PKG_VERSION").into(),
                ok: checks.iter().all(|c| c.status != CheckStatus::Fail),
                checks,
            }
        }
    };
    if ctx.json {
        print_json(&report);
    } else {
        let st = Style::detect();
        for c in &report.checks {
            let mark = match c.status {
                CheckStatus::Ok => st.green("✔"),
                CheckStatus::Warn => st.yellow("!"),
                CheckStatus::Fail => st.red("✘"),
            };
            println!("{mark} {:<15} {}", c.check, c.detail);
            if let Some(h) = &c.hint {
                println!("  {} {h}", st.dim("fix:"));
            }
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn config(ctx: &Context) -> CliResult<ExitCode> {
    if ctx.json {
        let mut v =
            serde_json::to_value(&ctx.config).map_err(|e| CliError::runtime(e.to_string()))?;
        v["data_dir"] = serde_json::json!(ctx.config.data_dir);
        print_json(&v);
    } else {
        let text =
            toml::to_string_pretty(&ctx.config).map_err(|e| CliError::runtime(e.to_string()))?;
        println!(
            "# data dir: {}\n# file: {}\n{text}",
            ctx.config.data_dir.display(),
            personas_engine::config::config_file(&ctx.config.data_dir).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
