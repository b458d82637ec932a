//! `personas channel add|list|remove|test`: where a persona's messages and review requests are
//! delivered (Slack, Telegram, email, signed webhook, desktop).
//!
//! Secret fields are given as `credential:NAME.FIELD` (a vault credential's field) or `env:NAME`
//! (a variable `channel_env_allow` in config.toml lists) and resolved when sending, so no secret
//! is ever stored.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_engine::delivery::channel;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum ChannelCmd {
    /// Add a notification channel to a persona.
    #[command(after_help = "Examples:\n  \
        --type slack --config '{\"webhook_url\": \"env:SLACK_WEBHOOK_URL\"}'\n  \
        --type slack --config '{\"bot_token\": \"env:SLACK_BOT_TOKEN\", \"channel\": \"#alerts\"}'\n  \
        --type telegram --config '{\"bot_token\": \"env:TELEGRAM_BOT_TOKEN\", \"chat_id\": \"12345\"}'\n  \
        --type email --config '{\"url\": \"smtps://smtp.example.com\", \"username\": \"me\", \"password\": \"env:SMTP_PASSWORD\", \"from\": \"me@example.com\", \"to\": [\"me@example.com\"]}'\n  \
        --type webhook --config '{\"url\": \"https://example.com/hook\", \"secret\": \"env:HOOK_SECRET\"}'\n  \
        --type desktop")]
    Add {
        /// Persona name or id.
        persona: String,
        /// A name for the channel, unique per persona.
        #[arg(long)]
        name: String,
        /// slack, telegram, email, webhook or desktop.
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// The channel's settings as a JSON object; secrets as "credential:NAME.FIELD" (or
        /// "env:NAME" for a variable channel_env_allow in config.toml lists).
        #[arg(long, default_value = "{}")]
        config: String,
    },
    /// Channels of one persona or all.
    List {
        #[arg(long)]
        persona: Option<String>,
    },
    /// Remove a persona's channel.
    Remove { persona: String, name: String },
    /// Send a test notification through a channel now and report the result.
    Test { persona: String, name: String },
}

pub async fn run(ctx: &mut Context, cmd: ChannelCmd) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let st = Style::detect();
    match cmd {
        ChannelCmd::Add {
            persona,
            name,
            kind,
            config,
        } => {
            let p = store.personas().find(&persona)?;
            let value: serde_json::Value = serde_json::from_str(&config).map_err(|e| {
                CliError::usage(format!("--config is not valid JSON: {e}"))
                    .with_hint(r#"quote it for the shell, e.g. --config '{"webhook_url": "env:SLACK_WEBHOOK_URL"}'"#)
            })?;
            let kind: personas_core::ChannelKind = kind
                .parse()
                .map_err(|e| CliError::usage(format!("--type: {e}")))?;
            channel::parse(kind, &value)
                .and_then(|c| c.check_env_refs(&ctx.config.channel_env_allow))
                .map_err(|e| {
                    let what = if e.field == "type" {
                        "--type".to_string()
                    } else {
                        format!("--config {}", e.field)
                    };
                    CliError::usage(format!("{what}: {}", e.message))
                        .with_hint("`personas channel add --help` shows an example of each type")
                })?;
            let name = name.trim();
            if name.is_empty() {
                return Err(CliError::usage("--name: must not be empty"));
            }
            let c = store.deliveries().add_channel(&p.id, name, kind, &value)?;
            if ctx.json {
                print_json(&c);
            } else {
                println!("added {kind} channel {} to {}", st.bold(&c.name), p.name);
            }
        }
        ChannelCmd::List { persona } => {
            let persona_id = match persona {
                Some(p) => Some(store.personas().find(&p)?.id),
                None => None,
            };
            let list = store.deliveries().channels(persona_id.as_ref())?;
            if ctx.json {
                print_json(&list);
            } else if list.is_empty() {
                println!(
                    "no channels — add one with `personas channel add PERSONA --name NAME --type TYPE --config JSON`"
                );
            } else {
                let names: std::collections::HashMap<_, _> = store
                    .personas()
                    .list()?
                    .into_iter()
                    .map(|p| (p.id, p.name))
                    .collect();
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|c| {
                        vec![
                            names.get(&c.persona_id).cloned().unwrap_or_default(),
                            c.name.clone(),
                            c.kind.to_string(),
                            c.config.to_string(),
                            render::ago(c.created_at),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    render::table(&["PERSONA", "NAME", "TYPE", "CONFIG", "ADDED"], &rows)
                );
            }
        }
        ChannelCmd::Remove { persona, name } => {
            let p = store.personas().find(&persona)?;
            let c = store.deliveries().remove_channel(&p.id, &name)?;
            if ctx.json {
                print_json(&c);
            } else {
                println!("removed channel {} from {}", c.name, p.name);
            }
        }
        ChannelCmd::Test { persona, name } => {
            let p = store.personas().find(&persona)?;
            let c = store
                .deliveries()
                .channels(Some(&p.id))?
                .into_iter()
                .find(|c| c.name == name || c.id == name)
                .ok_or_else(|| {
                    CliError::usage(format!("channel not found: {name}"))
                        .with_hint(format!("`personas channel list --persona \"{}\"`", p.name))
                })?;
            let vault = std::sync::Arc::new(personas_engine::vault::VaultCell::new(
                personas_engine::vault::VaultOptions::from_env(|k| std::env::var(k).ok()),
            ));
            let sent = personas_engine::delivery::send_test(
                &ctx.config,
                &store,
                &vault,
                &p.name,
                &p.id,
                &c,
            )
            .await;
            match sent {
                Ok(()) if c.kind == personas_core::ChannelKind::Desktop => println!(
                    "desktop notifications are shown by a running app; the channel config is valid"
                ),
                Ok(()) => println!(
                    "{} sent a test notification through {}",
                    st.green("✔"),
                    c.name
                ),
                Err(e) => {
                    return Err(CliError::runtime(format!(
                        "the test notification through {} failed: {}",
                        c.name, e.message
                    )));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
