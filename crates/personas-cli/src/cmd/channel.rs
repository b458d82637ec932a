//! `personas channel add|list|remove|test`: where a persona's messages and review requests are
//! delivered (Slack, Telegram, email, signed webhook, desktop).
//!
//! Secret fields are given as `credential:NAME.FIELD` (a vault credential's field) or `env:NAME`
//! (a variable `channel_env_allow` in config.toml lists) and resolved when sending, so no secret
//! is ever stored. Each subcommand is one operation (`add_channel`, `list_channels`,
//! `remove_channel`, `test_channel`).

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::Operations;
use personas_api::ops::{AddChannel, ChannelRef, ListChannels};
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
        kind: personas_core::ChannelKind,
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

/// `kind` is `--type`, `config.X` is `--config X`, `name` is `--name`.
fn add_error(e: personas_api::ApiError) -> CliError {
    let Some(field) = e.field.clone() else {
        return e.into();
    };
    if e.code != personas_api::Code::Invalid {
        return e.into();
    }
    let what = match field.as_str() {
        "kind" => "--type".to_string(),
        "name" => "--name".to_string(),
        f => match f.strip_prefix("config.") {
            Some(key) => format!("--config {key}"),
            None => return e.into(),
        },
    };
    let message = e
        .message
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(&e.message);
    CliError::usage(format!("{what}: {message}"))
        .with_hint("`personas channel add --help` shows an example of each type")
}

pub async fn run(ctx: &mut Context, cmd: ChannelCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    let st = Style::detect();
    match cmd {
        ChannelCmd::Add {
            persona,
            name,
            kind,
            config,
        } => {
            let value: serde_json::Value = serde_json::from_str(&config).map_err(|e| {
                CliError::usage(format!("--config is not valid JSON: {e}"))
                    .with_hint(r#"quote it for the shell, e.g. --config '{"webhook_url": "env:SLACK_WEBHOOK_URL"}'"#)
            })?;
            let req = AddChannel {
                persona,
                name,
                kind,
                config: Some(value),
            };
            let c = client.add_channel(req).await.map_err(add_error)?;
            if ctx.json {
                print_json(&c);
            } else {
                println!(
                    "added {} channel {} to {}",
                    c.kind,
                    st.bold(&c.name),
                    c.persona_name
                );
            }
        }
        ChannelCmd::List { persona } => {
            let list = client.list_channels(ListChannels { persona }).await?;
            if ctx.json {
                print_json(&list);
            } else if list.channels.is_empty() {
                println!(
                    "no channels — add one with `personas channel add PERSONA --name NAME --type TYPE --config JSON`"
                );
            } else {
                let rows: Vec<Vec<String>> = list
                    .channels
                    .iter()
                    .map(|c| {
                        vec![
                            c.persona_name.clone(),
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
            let c = client.remove_channel(ChannelRef { persona, name }).await?;
            if ctx.json {
                print_json(&c);
            } else {
                println!("removed channel {} from {}", c.name, c.persona_name);
            }
        }
        ChannelCmd::Test { persona, name } => {
            let hint = format!("`personas channel list --persona \"{persona}\"`");
            let t = client
                .test_channel(ChannelRef {
                    persona,
                    name: name.clone(),
                })
                .await
                .map_err(|e| {
                    let missing = e.code == personas_api::Code::NotFound;
                    let err = CliError::from(e);
                    if missing { err.with_hint(hint) } else { err }
                })?;
            if ctx.json {
                print_json(&t);
            } else if t.ok {
                println!("{} {}", st.green("✔"), t.message);
            }
            if !t.ok {
                return Err(CliError::runtime(format!(
                    "the test notification through {name} failed: {}",
                    t.message
                )));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
