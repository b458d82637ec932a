//! Small commands: `message list` (with delivery status), `doctor` (checks shared with the UI,
//! in personas-api), `config`.

use super::print_json;
use crate::context::Context;
use crate::daemon;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::system::{self, Check, CheckStatus};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum MessageCmd {
    /// Messages from personas, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

pub async fn message(ctx: &mut Context, cmd: MessageCmd) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let MessageCmd::List { limit } = cmd;
    let list = store.protocol().messages(None, limit)?;
    let deliveries = list
        .iter()
        .map(|m| {
            store
                .deliveries()
                .of_subject(personas_core::NoticeKind::Message, &m.id)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ctx.json {
        // Each message with how its deliveries to the persona's channels went.
        let out: Vec<serde_json::Value> = list
            .iter()
            .zip(&deliveries)
            .map(|(m, d)| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                v["deliveries"] = serde_json::to_value(d).unwrap_or_default();
                v
            })
            .collect();
        print_json(&out);
    } else if list.is_empty() {
        println!("no messages");
    } else {
        let st = Style::detect();
        for (m, sent) in list.iter().zip(&deliveries) {
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
            if !sent.is_empty() {
                let parts: Vec<String> = sent
                    .iter()
                    .map(|d| match d.status.as_str() {
                        "delivered" => format!("{} ✔", d.channel_name),
                        "failed" => format!(
                            "{} ✘ after {} attempt(s): {}",
                            d.channel_name,
                            d.attempts,
                            d.last_error.as_deref().unwrap_or("")
                        ),
                        _ => format!("{} … (attempt {})", d.channel_name, d.attempts + 1),
                    })
                    .collect();
                println!("  {}", st.dim(&parts.join(" · ")));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn doctor(ctx: &mut Context) -> CliResult<ExitCode> {
    let cfg = ctx.config.clone();
    let store = ctx.store().map_err(|e| match e.hint {
        Some(h) => format!("{} ({h})", e.message),
        None => e.message,
    });
    let vault = std::sync::Arc::new(personas_engine::vault::VaultCell::new(
        personas_engine::vault::VaultOptions::from_env(|k| std::env::var(k).ok()),
    ));
    let mut checks = system::checks(&cfg, store.as_ref().map_err(Clone::clone), &vault).await;
    checks.push(match daemon::running(&cfg.data_dir) {
        Ok(Some(info)) => Check::new(
            "runtime",
            CheckStatus::Ok,
            format!("running at {} (pid {})", info.url, info.pid),
            None,
        ),
        Ok(None) => Check::new(
            "runtime",
            CheckStatus::Ok,
            "not running (start it with `personas up`)",
            None,
        ),
        Err(e) => Check::new("runtime", CheckStatus::Warn, e.message, None),
    });

    let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
    if ctx.json {
        print_json(&checks);
    } else {
        let st = Style::detect();
        for c in &checks {
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
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
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
