//! `personas trigger add|list|remove|enable|disable|reveal|rotate|fire|preview`: what starts a persona
//! besides a person.
//!
//! A webhook trigger's secret is sealed in the vault: printed once by `add`, and again only by
//! `reveal` or `rotate`; `list` never shows it.
//!
//! Each subcommand is one trigger operation (`add_trigger`, `list_triggers`, ...) called
//! through the client, so a running runtime's scheduler and dispatcher pick the change up at
//! once; `--json` prints the operation's answer as the HTTP API returns it.

use super::{flag_error, print_json};
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::{ArgGroup, Args, Subcommand};
use personas_api::Operations;
use personas_api::bus::{
    AddTrigger, FireTrigger, ListTriggers, PreviewCron, SetTriggerEnabled, TriggerInput,
    TriggerRef, TriggerView, WebhookSecretShown,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum TriggerCmd {
    /// Add a trigger to a persona: an event subscription, a cron schedule, a webhook, a chain
    /// after another persona, or a file watcher.
    Add(Box<AddArgs>),
    /// List triggers with their state and, for schedules, the next fire times.
    List {
        /// Only this persona's (name or id).
        #[arg(long)]
        persona: Option<String>,
    },
    /// Remove a trigger (events it fired stay in history).
    Remove {
        /// Trigger id (or a unique prefix of it).
        id: String,
    },
    /// Turn a trigger on (a schedule restarts from now: its time off is not "missed").
    Enable { id: String },
    /// Turn a trigger off without removing it.
    Disable { id: String },
    /// Show a webhook trigger's secret (kept encrypted in the vault).
    Reveal {
        /// Trigger id (or a unique prefix of it).
        id: String,
    },
    /// Give a webhook trigger a new secret and show it; the old one stops working at once.
    Rotate {
        /// Trigger id (or a unique prefix of it).
        id: String,
    },
    /// Check a cron expression and show its next fire times (nothing is stored).
    Preview {
        /// 5 fields (minute hour day month weekday) or 6 (seconds first).
        #[arg(value_name = "EXPR")]
        cron: String,
        /// Time zone (IANA name, e.g. Europe/Prague). Default: the runtime machine's.
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// How many fire times (at most 50).
        #[arg(long, default_value_t = 5)]
        count: u32,
    },
    /// Fire a trigger by hand now: its persona runs with this payload (any kind of trigger;
    /// the way to use a --manual one).
    Fire {
        id: String,
        /// Payload as JSON. Default: {}.
        #[arg(long, value_name = "JSON")]
        payload: Option<String>,
    },
}

#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("kind")
        .required(true)
        .args(["event", "cron", "webhook", "chain", "watch", "manual"])
))]
pub struct AddArgs {
    /// The persona the trigger runs (name or id).
    pub persona: String,
    /// Run on bus events of this type: exact (`ticket.created`), or a prefix ending in `*`
    /// (`ticket.*`, or `*` for all). `-`, `_` and `.` are treated alike.
    #[arg(long, value_name = "TYPE")]
    pub event: Option<String>,
    /// Only events from this source: a kind (persona, webhook, schedule, user, chain, watcher,
    /// system) or a persona's name or id.
    #[arg(long, requires = "event", value_name = "SOURCE")]
    pub source: Option<String>,
    /// Run on a cron schedule: 5 fields (minute hour day month weekday) or 6 (seconds first).
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// Time zone of the schedule (IANA name, e.g. Europe/Prague). Default: this machine's.
    #[arg(long, requires = "cron", value_name = "ZONE")]
    pub tz: Option<String>,
    /// Runs missed while Personas was not running: skip, once, or catch-up:N. Default: skip.
    #[arg(long, requires = "cron", value_name = "POLICY")]
    pub missed: Option<String>,
    /// Run on signed HTTP calls to POST /webhooks/<id>. Prints the URL and the secret (once;
    /// `personas trigger reveal ID` shows it again). Callers send X-Personas-Timestamp: <unix
    /// seconds> and X-Personas-Signature: sha256=<hex of HMAC-SHA256(secret,
    /// "<timestamp>.<raw body>")>; a timestamp more than 300 s off is refused (401), and so is
    /// the same signature twice (409).
    #[arg(long)]
    pub webhook: bool,
    /// With --webhook: signed as GitHub signs (X-Hub-Signature-256: sha256=<hex of
    /// HMAC-SHA256(secret, raw body)>), so a GitHub repository's webhook can call it directly;
    /// a repeated X-GitHub-Delivery is refused (409).
    #[arg(long, requires = "webhook")]
    pub github: bool,
    /// Run after this persona ends (its output becomes this run's input).
    #[arg(long, value_name = "PERSONA")]
    pub chain: Option<String>,
    /// Which endings of the --chain persona fire: completed, failed or any.
    #[arg(
        long,
        requires = "chain",
        value_name = "completed|failed|any",
        default_value = "completed"
    )]
    pub on: String,
    /// Run when files under this directory are created, changed or deleted.
    #[arg(long, value_name = "PATH")]
    pub watch: Option<PathBuf>,
    /// Only files whose path (relative to --watch) matches this glob, e.g. `*.md`.
    #[arg(long, requires = "watch", value_name = "GLOB")]
    pub glob: Option<String>,
    /// Fired only by hand, with `personas trigger fire`.
    #[arg(long)]
    pub manual: bool,
    /// Store it switched off.
    #[arg(long)]
    pub disabled: bool,
}

/// Bad input names the flag it came from; a persona that is not there says where to look.
fn add_error(e: personas_api::ApiError) -> CliError {
    let hint = match e.field.as_deref() {
        Some("chain" | "source" | "persona") => {
            Some("`personas persona list` shows the personas there are")
        }
        _ => None,
    };
    let err = flag_error(e);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

fn input_of(args: &AddArgs) -> CliResult<TriggerInput> {
    if let Some(event) = &args.event {
        return Ok(TriggerInput::Event {
            event: event.clone(),
            source: args.source.clone(),
        });
    }
    if let Some(cron) = &args.cron {
        return Ok(TriggerInput::Cron {
            cron: cron.clone(),
            tz: args.tz.clone(),
            missed: args.missed.clone(),
        });
    }
    if args.webhook {
        return Ok(TriggerInput::Webhook {
            github: Some(args.github),
        });
    }
    if args.manual {
        return Ok(TriggerInput::Manual);
    }
    if let Some(after) = &args.chain {
        return Ok(TriggerInput::Chain {
            chain: after.clone(),
            on: Some(args.on.clone()),
        });
    }
    if let Some(path) = &args.watch {
        // The runtime may run elsewhere: a path relative to this shell is resolved here.
        let abs = std::path::absolute(path)
            .map_err(|e| CliError::usage(format!("--watch {}: {e}", path.display())))?;
        return Ok(TriggerInput::Watch {
            watch: abs.display().to_string(),
            glob: args.glob.clone(),
        });
    }
    Err(CliError::usage(
        "say what fires the trigger: --event, --cron, --webhook, --chain, --watch or --manual",
    ))
}

/// Prints a webhook's secret with where to send and how to sign.
fn print_secret(url: &str, secret: &str, signing: &str) {
    println!("  url:    {url}");
    println!("  secret: {secret}");
    println!("  sign each request: {signing}");
}

fn print_shown(ctx: &Context, shown: &WebhookSecretShown) {
    if ctx.json {
        print_json(shown);
    } else {
        print_secret(&shown.webhook.url, &shown.secret, &shown.webhook.signing);
    }
}

/// The next fire time as read in the schedule's zone, or how long ago something happened.
fn next_fire(v: &TriggerView) -> String {
    match v.next_fires_local.first() {
        Some(t) if v.trigger.enabled => t.clone(),
        _ => "-".into(),
    }
}

fn ago(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(render::ago).unwrap_or_else(|| "-".into())
}

pub async fn run(ctx: &mut Context, cmd: TriggerCmd) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        TriggerCmd::Add(args) => {
            let req = AddTrigger {
                trigger: input_of(&args)?,
                persona: args.persona.clone(),
                enabled: Some(!args.disabled),
            };
            let v = client.add_trigger(req).await.map_err(add_error)?;
            if ctx.json {
                print_json(&v);
            } else {
                print_added(&v);
            }
        }
        TriggerCmd::Reveal { id } => {
            let shown = client.reveal_webhook_secret(TriggerRef { id }).await?;
            print_shown(ctx, &shown);
        }
        TriggerCmd::Rotate { id } => {
            let shown = client.rotate_webhook_secret(TriggerRef { id }).await?;
            if !ctx.json {
                println!(
                    "new secret for trigger {} (the old one no longer works):",
                    shown.trigger_id
                );
            }
            print_shown(ctx, &shown);
        }
        TriggerCmd::List { persona } => {
            let list = client.list_triggers(ListTriggers { persona }).await?;
            if ctx.json {
                print_json(&list);
            } else {
                print_list(&list.triggers);
            }
        }
        TriggerCmd::Remove { id } => {
            let v = client.remove_trigger(TriggerRef { id }).await?;
            if ctx.json {
                print_json(&v);
            } else {
                let t = &v.trigger;
                println!("removed {} trigger {} of {}", t.kind, t.id, t.persona_name);
            }
        }
        TriggerCmd::Fire { id, payload } => {
            let payload =
                match payload {
                    Some(p) => Some(serde_json::from_str(&p).map_err(|e| {
                        CliError::usage(format!("--payload is not valid JSON: {e}"))
                    })?),
                    None => None,
                };
            let hint = format!("`personas trigger enable {id}`");
            let row = client
                .fire_trigger(FireTrigger { id, payload })
                .await
                .map_err(|e| {
                    let disabled = e.code == personas_api::Code::Conflict;
                    let err = CliError::from(e);
                    if disabled { err.with_hint(hint) } else { err }
                })?;
            if ctx.json {
                print_json(&row);
            } else {
                println!("{}", row.id);
            }
        }
        TriggerCmd::Preview { cron, tz, count } => {
            let p = client
                .preview_cron(PreviewCron {
                    cron,
                    tz,
                    count: Some(count),
                })
                .await
                .map_err(flag_error)?;
            if ctx.json {
                print_json(&p);
            } else {
                println!("{} ({})", p.cron, p.tz);
                for t in &p.next_local {
                    println!("  {t}");
                }
            }
        }
        TriggerCmd::Enable { id } => set_enabled(ctx, id, true).await?,
        TriggerCmd::Disable { id } => set_enabled(ctx, id, false).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_added(v: &TriggerView) {
    let t = &v.trigger;
    println!(
        "added {} trigger {} for {}: {}",
        t.kind, t.id, t.persona_name, v.summary
    );
    if let Some(next) = v.next_fires_local.first() {
        println!("  next: {next}");
    }
    if let (Some(secret), Some(hook)) = (&v.secret, &v.webhook) {
        print_secret(&hook.url, secret, &hook.signing);
        println!(
            "  the secret is shown once; `personas trigger reveal {}` shows it again",
            t.id
        );
    }
}

fn print_list(list: &[TriggerView]) {
    if list.is_empty() {
        println!("no triggers");
        return;
    }
    let st = Style::detect();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|v| {
            let t = &v.trigger;
            let state = match (&t.last_error, t.enabled) {
                (_, false) => st.dim("disabled"),
                (Some(e), true) => st.red(&format!("error: {e}")),
                (None, true) => st.green("enabled"),
            };
            vec![
                t.id.to_string(),
                t.persona_name.clone(),
                t.kind.to_string(),
                v.summary.clone(),
                state,
                next_fire(v),
                ago(t.last_fired_at),
                t.fire_count.to_string(),
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &[
                "ID",
                "PERSONA",
                "KIND",
                "FIRES ON",
                "STATE",
                "NEXT",
                "LAST FIRED",
                "FIRED"
            ],
            &rows
        )
    );
}

async fn set_enabled(ctx: &mut Context, id: String, enabled: bool) -> CliResult<()> {
    let v = ctx
        .client()?
        .set_trigger_enabled(SetTriggerEnabled { id, enabled })
        .await?;
    if ctx.json {
        print_json(&v);
    } else {
        println!(
            "{} trigger {} of {}",
            if enabled { "enabled" } else { "disabled" },
            v.trigger.id,
            v.trigger.persona_name
        );
    }
    Ok(())
}
