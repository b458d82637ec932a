//! Small commands: `message list` (with delivery status), `doctor`, `config`.

use super::print_json;
use crate::context::Context;
use crate::daemon;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_engine::locate;
use serde::Serialize;
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
        .map(|m| store.deliveries().of_subject("message", &m.id))
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

#[derive(Serialize)]
struct Check {
    check: &'static str,
    status: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

fn check(
    check: &'static str,
    status: &'static str,
    detail: impl Into<String>,
    hint: Option<&str>,
) -> Check {
    Check {
        check,
        status,
        detail: detail.into(),
        hint: hint.map(str::to_string),
    }
}

pub async fn doctor(ctx: &mut Context) -> CliResult<ExitCode> {
    let mut checks = Vec::new();
    let cfg = ctx.config.clone();

    match locate::find_claude(cfg.claude_path.as_deref()) {
        Ok(found) => {
            checks.push(check(
                "claude cli",
                "ok",
                format!("{} (found via {})", found.path.display(), found.how),
                None,
            ));
            match locate::claude_version(&found.path).await {
                Ok(v) => checks.push(check("claude version", "ok", v, None)),
                Err(e) => checks.push(check(
                    "claude version",
                    "fail",
                    e,
                    Some("reinstall: npm install -g @anthropic-ai/claude-code"),
                )),
            }
        }
        Err(e) => checks.push(check(
            "claude cli",
            "fail",
            e.to_string(),
            Some("npm install -g @anthropic-ai/claude-code, or set claude_path in config.toml"),
        )),
    }

    let env_or_cfg = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| cfg.env.get(k).cloned())
    };
    let auth = [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
    ]
    .into_iter()
    .find(|k| env_or_cfg(k).is_some())
    .map(|k| format!("{k} is set"))
    .or_else(|| {
        let home = env_or_cfg("HOME")
            .map(std::path::PathBuf::from)
            .or_else(dirs_home)?;
        let creds = home.join(".claude/.credentials.json");
        creds
            .exists()
            .then(|| format!("logged in ({})", creds.display()))
    });
    checks.push(match auth {
        Some(how) => check("claude auth", "ok", how, None),
        None => check(
            "claude auth",
            "warn",
            "no API key or login found",
            Some("run `claude` once and /login, or set ANTHROPIC_API_KEY (runs fail with not_logged_in otherwise)"),
        ),
    });

    let dir = &cfg.data_dir;
    let probe = dir.join(".doctor-probe");
    let writable = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    checks.push(match writable {
        Ok(()) => check("data dir", "ok", dir.display().to_string(), None),
        Err(e) => check(
            "data dir",
            "fail",
            format!("{}: {e}", dir.display()),
            Some("choose another with --data-dir or PERSONAS_DATA_DIR"),
        ),
    });

    match ctx.store().and_then(|s| s.health().map_err(CliError::from)) {
        Ok(h) if h.ok => checks.push(check(
            "store",
            "ok",
            format!(
                "schema v{}, {} journal, {} personas, {} executions, {:.1} MiB",
                h.schema_version, h.journal_mode, h.personas, h.executions, h.size_bytes as f64 / 1048576.0
            ),
            None,
        )),
        Ok(h) => checks.push(check("store", "fail", format!("integrity check: {}", h.integrity), Some("restore personas.db from a backup; `personas persona export` what is still readable"))),
        Err(e) => checks.push(check("store", "fail", e.message, e.hint.as_deref())),
    }

    match daemon::running(dir) {
        Ok(Some(info)) => checks.push(check(
            "runtime",
            "ok",
            format!("running at {} (pid {})", info.url, info.pid),
            None,
        )),
        Ok(None) => checks.push(check(
            "runtime",
            "ok",
            "not running (start it with `personas up`)",
            None,
        )),
        Err(e) => checks.push(check("runtime", "warn", e.message, None)),
    }

    let failed = checks.iter().any(|c| c.status == "fail");
    if ctx.json {
        print_json(&checks);
    } else {
        let st = Style::detect();
        for c in &checks {
            let mark = match c.status {
                "ok" => st.green("✔"),
                "warn" => st.yellow("!"),
                _ => st.red("✘"),
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

fn dirs_home() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(std::path::PathBuf::from)
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
