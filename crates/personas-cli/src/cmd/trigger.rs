//! `personas trigger add|list|remove|enable|disable`: what starts a persona besides a person.
//!
//! Triggers are written to the store directly (safe beside a running daemon); a running daemon is
//! then woken so its scheduler and dispatcher pick the change up at once.

use super::print_json;
use crate::context::Context;
use crate::daemon::{self, Client};
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use chrono::Utc;
use clap::{ArgGroup, Args, Subcommand};
use personas_core::ValidationError;
use personas_core::cron::CronSchedule;
use personas_core::trigger::{ChainOn, MissedPolicy, SourceFilter, SourceKind, TriggerConfig};
use personas_store::{NewEvent, NewTrigger, Store, StoreError, TriggerRow};
use serde_json::{Value, json};
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
    /// Run on signed HTTP calls to POST /webhooks/<id> (prints the URL and the secret).
    #[arg(long)]
    pub webhook: bool,
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

/// The event type a trigger fired by hand publishes.
pub const MANUAL_EVENT: &str = "trigger.fired";

/// Bad input names the flag it came from.
fn flag_error(e: ValidationError) -> CliError {
    CliError::usage(format!("--{}: {}", e.field, e.message))
}

fn store_error(e: StoreError) -> CliError {
    match e {
        StoreError::Invalid(v) => flag_error(v),
        other => other.into(),
    }
}

/// This machine's IANA time zone, when it has one chrono-tz knows.
fn local_zone() -> Option<String> {
    let name = iana_time_zone::get_timezone().ok()?;
    name.parse::<chrono_tz::Tz>().ok().map(|_| name)
}

fn source_filter(store: &Store, s: &str) -> CliResult<SourceFilter> {
    if let Ok(kind) = s.parse::<SourceKind>() {
        return Ok(SourceFilter { kind, id: None });
    }
    match store.personas().find(s) {
        Ok(p) => Ok(SourceFilter {
            kind: SourceKind::Persona,
            id: Some(p.id.to_string()),
        }),
        Err(StoreError::NotFound { .. }) => Err(CliError::usage(format!(
            "--source: {s:?} is neither a source kind ({}) nor a persona",
            SourceKind::ALL.map(|k| k.as_str()).join(", ")
        ))),
        Err(e) => Err(e.into()),
    }
}

fn config_of(store: &Store, args: &AddArgs) -> CliResult<TriggerConfig> {
    if let Some(pattern) = &args.event {
        let source = args
            .source
            .as_deref()
            .map(|s| source_filter(store, s))
            .transpose()?;
        return Ok(TriggerConfig::Event {
            pattern: pattern.clone(),
            source,
        });
    }
    if let Some(expr) = &args.cron {
        let tz = match &args.tz {
            Some(tz) => tz.clone(),
            None => local_zone().unwrap_or_else(|| "UTC".into()),
        };
        let missed = match &args.missed {
            Some(m) => m.parse::<MissedPolicy>().map_err(flag_error)?,
            None => MissedPolicy::Skip,
        };
        return Ok(TriggerConfig::Cron {
            expr: expr.clone(),
            tz,
            missed,
        });
    }
    if args.webhook {
        return Ok(TriggerConfig::Webhook);
    }
    if args.manual {
        return Ok(TriggerConfig::Manual);
    }
    if let Some(after) = &args.chain {
        let on = args.on.parse::<ChainOn>().map_err(flag_error)?;
        let after = store.personas().find(after).map_err(|e| match e {
            StoreError::NotFound { .. } => {
                CliError::usage(format!("--chain: persona not found: {after}"))
                    .with_hint("`personas persona list` shows the personas there are")
            }
            other => other.into(),
        })?;
        return Ok(TriggerConfig::Chain {
            after_persona_id: after.id,
            on,
        });
    }
    if let Some(path) = &args.watch {
        let root = path
            .canonicalize()
            .map_err(|e| CliError::usage(format!("--watch: cannot use {}: {e}", path.display())))?;
        if !root.is_dir() {
            return Err(CliError::usage(format!(
                "--watch: {} is not a directory",
                root.display()
            )));
        }
        if let Some(g) = &args.glob {
            personas_engine::scheduler::watch::check_glob(g).map_err(flag_error)?;
        }
        return Ok(TriggerConfig::Watch {
            path: root.to_string_lossy().into_owned(),
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
    format!("{}/webhooks/{id}", base.trim_end_matches('/'))
}

/// A trigger as `--json` shows it: the stored row, plus the webhook URL and secret, or the
/// next fire times of a schedule.
fn to_json(ctx: &Context, t: &TriggerRow) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(secret) = &t.secret {
        v["url"] = json!(webhook_url(ctx, t.id.as_str()));
        v["secret"] = json!(secret.expose());
    }
    if let Some(Ok(s)) = t.schedule() {
        let from = t
            .next_fire_at
            .map(|n| n - chrono::TimeDelta::seconds(1))
            .unwrap_or_else(Utc::now);
        v["next_fires"] =
            json!(s.upcoming(from.max(Utc::now() - chrono::TimeDelta::seconds(1)), 3));
    }
    v
}

/// One line saying what a trigger listens for.
fn describe(t: &TriggerRow) -> String {
    match &t.config {
        TriggerConfig::Manual => "by hand".into(),
        TriggerConfig::Cron { expr, tz, missed } => format!("cron {expr} ({tz}), missed: {missed}"),
        TriggerConfig::Webhook => "webhook".into(),
        TriggerConfig::Event { pattern, source } => match source {
            None => format!("event {pattern}"),
            Some(SourceFilter { kind, id: None }) => format!("event {pattern} from {kind}"),
            Some(SourceFilter { kind, id: Some(id) }) => {
                format!("event {pattern} from {kind} {id}")
            }
        },
        TriggerConfig::Chain { on, .. } => format!(
            "after {} {}",
            t.after_persona_name
                .as_deref()
                .unwrap_or("(deleted persona)"),
            on.as_str()
        ),
        TriggerConfig::Watch { path, glob } => match glob {
            Some(g) => format!("files {g} in {path}"),
            None => format!("files in {path}"),
        },
    }
}

fn when(t: Option<chrono::DateTime<Utc>>, schedule: Option<&CronSchedule>) -> String {
    match (t, schedule) {
        (Some(t), Some(s)) => {
            let tz: chrono_tz::Tz = s.tz_name().parse().unwrap_or(chrono_tz::UTC);
            format!("{}", t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"))
        }
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
            let persona = store.personas().find(&args.persona)?;
            let config = config_of(&store, &args)?;
            let t = store
                .triggers()
                .create(
                    &NewTrigger {
                        persona_id: persona.id.clone(),
                        config,
                        enabled: !args.disabled,
                    },
                    Utc::now(),
                )
                .map_err(store_error)?;
            wake_daemon(ctx).await;
            if ctx.json {
                print_json(&to_json(ctx, &t));
            } else {
                println!(
                    "added {} trigger {} for {}: {}",
                    t.kind,
                    t.id,
                    t.persona_name,
                    describe(&t)
                );
                if let Some(Ok(s)) = t.schedule() {
                    println!("  next: {}", when(t.next_fire_at, Some(&s)));
                }
                if let Some(secret) = &t.secret {
                    println!("  url:    {}", webhook_url(ctx, t.id.as_str()));
                    println!("  secret: {}", secret.expose());
                    println!(
                        "  sign each request: X-Personas-Signature: sha256=<hex of HMAC-SHA256(secret, raw body)>"
                    );
                }
            }
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
                            describe(t),
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
            if !t.enabled {
                return Err(CliError::usage(format!(
                    "trigger {} is disabled; `personas trigger enable {}` first",
                    t.id, t.id
                )));
            }
            let payload = match payload {
                Some(p) => serde_json::from_str(&p)
                    .map_err(|e| CliError::usage(format!("--payload is not valid JSON: {e}")))?,
                None => json!({}),
            };
            let mut event = NewEvent::new(MANUAL_EVENT, SourceKind::User, payload);
            event.target_persona_id = Some(t.persona_id.clone());
            event.trigger_id = Some(t.id.clone());
            event.source_id = std::env::var("USER").ok().filter(|u| !u.is_empty());
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
