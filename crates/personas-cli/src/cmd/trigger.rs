//! `personas trigger add|list|remove|enable|disable|reveal|rotate`: what starts a persona
//! besides a person.
//!
//! A webhook trigger's secret is sealed in the vault: printed once by `add`, and again only by
//! `reveal` or `rotate`; `list` never shows it.
//!
//! Triggers are written to the store directly (safe beside a running daemon); a running daemon is
//! then woken so its scheduler and dispatcher pick the change up at once. What a flag means and
//! which values are refused is `personas_engine::triggers`, shared with the app's API.

use super::credential::vault_options;
use super::print_json;
use crate::context::Context;
use crate::daemon::{self, Client};
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use chrono::Utc;
use clap::{ArgGroup, Args, Subcommand};
use personas_core::cron::CronSchedule;
use personas_core::trigger::TriggerConfig;
use personas_core::{Secret, ValidationError};
use personas_engine::credentials::CredentialError;
use personas_engine::triggers::{self, TriggerSpec};
use personas_engine::vault::{Vault, VaultError};
use personas_store::{Store, StoreError, TriggerRow};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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

/// Bad input names the flag it came from.
fn flag_error(e: ValidationError) -> CliError {
    let hint = match e.field.as_str() {
        "chain" | "source" => Some("`personas persona list` shows the personas there are"),
        _ => None,
    };
    let err = CliError::usage(format!("--{}: {}", e.field, e.message));
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

fn store_error(e: StoreError) -> CliError {
    match e {
        StoreError::Invalid(v) => flag_error(v),
        other => other.into(),
    }
}

fn spec_of(args: &AddArgs) -> CliResult<TriggerSpec> {
    if let Some(pattern) = &args.event {
        return Ok(TriggerSpec::Event {
            pattern: pattern.clone(),
            source: args.source.clone(),
        });
    }
    if let Some(expr) = &args.cron {
        return Ok(TriggerSpec::Cron {
            expr: expr.clone(),
            tz: args.tz.clone(),
            missed: args.missed.clone(),
        });
    }
    if args.webhook {
        return Ok(TriggerSpec::Webhook {
            github: args.github,
        });
    }
    if args.manual {
        return Ok(TriggerSpec::Manual);
    }
    if let Some(after) = &args.chain {
        return Ok(TriggerSpec::Chain {
            after: after.clone(),
            on: Some(args.on.clone()),
        });
    }
    if let Some(path) = &args.watch {
        return Ok(TriggerSpec::Watch {
            path: path.clone(),
            glob: args.glob.clone(),
        });
    }
    Err(CliError::usage(
        "say what fires the trigger: --event, --cron, --webhook, --chain, --watch or --manual",
    ))
}

/// Where the webhook of trigger `id` is reached: the running daemon, else the configured address.
fn webhook_url(ctx: &Context, id: &str) -> String {
    let base = daemon::running(&ctx.config.data_dir)
        .ok()
        .flatten()
        .map(|d| d.url)
        .unwrap_or_else(|| format!("http://{}", ctx.config.listen));
    triggers::webhook_url(&base, id)
}

/// A trigger as `--json` shows it: the stored row, plus a webhook's URL (never its secret), or
/// the next fire times of a schedule.
fn to_json(ctx: &Context, t: &TriggerRow) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if matches!(t.config, TriggerConfig::Webhook { .. }) {
        v["url"] = json!(webhook_url(ctx, t.id.as_str()));
    }
    if t.schedule().is_some() {
        v["next_fires"] = json!(triggers::next_fires(t, 3, Utc::now()));
    }
    v
}

/// Bad input names its flag; vault trouble says how to fix it.
fn trigger_error(e: CredentialError) -> CliError {
    match e {
        CredentialError::Store(s) => store_error(s),
        CredentialError::Invalid(v) if v.field == "id" => CliError::usage(v.message),
        CredentialError::Invalid(v) => flag_error(v),
        CredentialError::Vault(v) => {
            let hint = personas_engine::vault::fix_hint(&v);
            let err = CliError::from(v);
            match hint {
                Some(h) => err.with_hint(h),
                None => err,
            }
        }
    }
}

/// Opens the vault for a webhook secret (creating it for the first secret stored).
fn unlock(store: &Store) -> Result<Arc<Vault>, VaultError> {
    Vault::open_or_create(store, &vault_options()).map(Arc::new)
}

/// Prints a webhook's secret with where to send and how to sign.
fn print_secret(ctx: &Context, t: &TriggerRow, secret: &Secret) {
    let url = webhook_url(ctx, t.id.as_str());
    if ctx.json {
        let mut v = to_json(ctx, t);
        v["url"] = json!(url);
        v["secret"] = json!(secret.expose());
        print_json(&v);
    } else {
        println!("  url:    {url}");
        println!("  secret: {}", secret.expose());
        println!("  sign each request: {}", triggers::signature_help(t));
    }
}

fn when(t: Option<chrono::DateTime<Utc>>, schedule: Option<&CronSchedule>) -> String {
    match (t, schedule) {
        (Some(t), Some(s)) => triggers::in_zone(t, s.tz_name()),
        (Some(t), None) => render::ago(t),
        (None, _) => "-".into(),
    }
}

async fn wake_daemon(ctx: &Context) {
    let data_dir = &ctx.config.data_dir;
    if let Some(client) = daemon::running(data_dir)
        .ok()
        .flatten()
        .and_then(|d| Client::new(&d, data_dir))
    {
        client.wake().await;
    }
}

pub async fn run(ctx: &mut Context, cmd: TriggerCmd) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let st = Style::detect();
    match cmd {
        TriggerCmd::Add(args) => {
            let spec = spec_of(&args)?;
            let added = triggers::add(
                &store,
                &args.persona,
                &spec,
                !args.disabled,
                Utc::now(),
                &mut || unlock(&store),
            )
            .map_err(trigger_error)?;
            let t = added.trigger;
            wake_daemon(ctx).await;
            if ctx.json {
                match &added.secret {
                    Some(secret) => print_secret(ctx, &t, secret),
                    None => print_json(&to_json(ctx, &t)),
                }
            } else {
                println!(
                    "added {} trigger {} for {}: {}",
                    t.kind,
                    t.id,
                    t.persona_name,
                    triggers::describe(&t)
                );
                if let Some(Ok(s)) = t.schedule() {
                    println!("  next: {}", when(t.next_fire_at, Some(&s)));
                }
                if let Some(secret) = &added.secret {
                    print_secret(ctx, &t, secret);
                    println!(
                        "  the secret is shown once; `personas trigger reveal {}` shows it again",
                        t.id
                    );
                }
            }
        }
        TriggerCmd::Reveal { id } => {
            let (t, secret) = triggers::reveal_secret(&store, &id, &mut || unlock(&store))
                .map_err(trigger_error)?;
            print_secret(ctx, &t, &secret);
        }
        TriggerCmd::Rotate { id } => {
            let (t, secret) = triggers::rotate_secret(&store, &id, &mut || unlock(&store))
                .map_err(trigger_error)?;
            if !ctx.json {
                println!(
                    "new secret for trigger {} (the old one no longer works):",
                    t.id
                );
            }
            print_secret(ctx, &t, &secret);
        }
        TriggerCmd::List { persona } => {
            let persona_id = match persona {
                Some(p) => Some(store.personas().find(&p)?.id),
                None => None,
            };
            let list = store.triggers().list(persona_id.as_ref())?;
            if ctx.json {
                print_json(&list.iter().map(|t| to_json(ctx, t)).collect::<Vec<_>>());
            } else if list.is_empty() {
                println!("no triggers");
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        let schedule = t.schedule().and_then(Result::ok);
                        let state = match (&t.last_error, t.enabled) {
                            (_, false) => st.dim("disabled"),
                            (Some(e), true) => st.red(&format!("error: {e}")),
                            (None, true) => st.green("enabled"),
                        };
                        vec![
                            t.id.to_string(),
                            t.persona_name.clone(),
                            t.kind.to_string(),
                            triggers::describe(t),
                            state,
                            when(t.next_fire_at.filter(|_| t.enabled), schedule.as_ref()),
                            when(t.last_fired_at, None),
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
        }
        TriggerCmd::Remove { id } => {
            let t = store.triggers().remove(&id)?;
            wake_daemon(ctx).await;
            if ctx.json {
                print_json(&t);
            } else {
                println!("removed {} trigger {} of {}", t.kind, t.id, t.persona_name);
            }
        }
        TriggerCmd::Fire { id, payload } => {
            let t = store.triggers().find(&id)?;
            let payload = match payload {
                Some(p) => serde_json::from_str(&p)
                    .map_err(|e| CliError::usage(format!("--payload is not valid JSON: {e}")))?,
                None => json!({}),
            };
            let event =
                triggers::fire_event(&t, payload, std::env::var("USER").ok()).map_err(|e| {
                    CliError::from(e).with_hint(format!("`personas trigger enable {}`", t.id))
                })?;
            let (row, _) = store.bus().publish(&event)?;
            wake_daemon(ctx).await;
            if ctx.json {
                print_json(&row);
            } else {
                println!("{}", row.id);
            }
        }
        TriggerCmd::Enable { id } => set_enabled(ctx, &store, &id, true).await?,
        TriggerCmd::Disable { id } => set_enabled(ctx, &store, &id, false).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_enabled(ctx: &Context, store: &Store, id: &str, enabled: bool) -> CliResult<()> {
    let t = store.triggers().set_enabled(id, enabled, Utc::now())?;
    wake_daemon(ctx).await;
    if ctx.json {
        print_json(&to_json(ctx, &t));
    } else {
        println!(
            "{} trigger {} of {}",
            if enabled { "enabled" } else { "disabled" },
            t.id,
            t.persona_name
        );
    }
    Ok(())
}
