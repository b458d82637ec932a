//! `personas event emit|list|show|retry`: the bus from the command line.
//!
//! `emit` stores the event (durable before the command returns) and wakes a running daemon;
//! without one, the event waits in the store for the next `personas up`.

use super::print_json;
use crate::context::Context;
use crate::daemon::{self, Client};
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_core::trigger::validate_event_type;
use personas_engine::triggers::user_event;
use personas_store::{EventDeliveryRow, EventFilter, EventRow, Store};
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum EventCmd {
    /// Publish an event on the bus; every persona subscribed to its type runs.
    Emit {
        /// Event type, e.g. ticket.created.
        #[arg(value_name = "TYPE")]
        event_type: String,
        /// Payload as JSON (`@FILE` reads it from a file). Default: {}.
        #[arg(long, value_name = "JSON")]
        payload: Option<String>,
        /// Address it to one persona (name or id) instead of the subscribers.
        #[arg(long, value_name = "PERSONA")]
        target: Option<String>,
    },
    /// Recent events, newest first, with their status and the executions they caused.
    List {
        /// Only this status: pending, processing, delivered, skipped, failed, dead_letter.
        #[arg(long)]
        status: Option<String>,
        /// Only this event type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only events from this kind of source: persona, webhook, schedule, user, chain,
        /// system, watcher.
        #[arg(long, value_name = "SOURCE")]
        source: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One event: payload, status, and each delivery.
    Show {
        /// Event id (or a unique prefix of it).
        id: String,
    },
    /// Re-queue a dead-lettered (or failed, or skipped) event with fresh attempts.
    Retry { id: String },
}

fn parse_payload(raw: Option<&str>) -> CliResult<Value> {
    let Some(raw) = raw else {
        return Ok(json!({}));
    };
    let (text, source) = match raw.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("cannot read --payload file {path}: {e}")))?,
            path.to_string(),
        ),
        None => (raw.to_string(), "--payload".to_string()),
    };
    serde_json::from_str(&text).map_err(|e| {
        CliError::usage(format!("{source} is not valid JSON: {e}"))
            .with_hint(r#"quote it for the shell, e.g. --payload '{"id": 42}'"#)
    })
}

async fn wake_daemon(ctx: &Context) -> bool {
    let data_dir = &ctx.config.data_dir;
    match daemon::running(data_dir)
        .ok()
        .flatten()
        .and_then(|d| Client::new(&d, data_dir))
    {
        Some(client) => {
            client.wake().await;
            true
        }
        None => false,
    }
}

/// An event with its deliveries, as `--json` shows it.
fn with_deliveries(e: &EventRow, deliveries: &[EventDeliveryRow]) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    v["executions"] = json!(
        deliveries
            .iter()
            .filter_map(|d| d.execution_id.clone())
            .collect::<Vec<_>>()
    );
    v["deliveries"] = json!(deliveries);
    v
}

fn status(s: &str, st: Style) -> String {
    match s {
        "delivered" => st.green(s),
        "failed" | "dead_letter" => st.red(s),
        "skipped" => st.dim(s),
        _ => st.yellow(s),
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

fn source(e: &EventRow) -> String {
    match &e.source_id {
        Some(id) => format!("{} {}", e.source_kind, short(id, 8)),
        None => e.source_kind.to_string(),
    }
}

pub async fn run(ctx: &mut Context, cmd: EventCmd) -> CliResult<ExitCode> {
    let store = ctx.store()?;
    let st = Style::detect();
    match cmd {
        EventCmd::Emit {
            event_type,
            payload,
            target,
        } => {
            validate_event_type(&event_type).map_err(|e| CliError::usage(e.to_string()))?;
            let mut payload = parse_payload(payload.as_deref())?;
            personas_core::redact::redact_json(&super::known_secrets(ctx, &store), &mut payload);
            let target = match target {
                Some(t) => Some(store.personas().find(&t)?.id),
                None => None,
            };
            let event = user_event(&event_type, payload, target, std::env::var("USER").ok())?;
            let (row, _) = store.bus().publish(&event)?;
            let woke = wake_daemon(ctx).await;
            if ctx.json {
                print_json(&row);
            } else {
                println!("{}", row.id);
                if !woke {
                    eprintln!(
                        "stored; no runtime is running for {} — it is delivered when `personas up` starts",
                        ctx.config.data_dir.display()
                    );
                }
            }
        }
        EventCmd::List {
            status: wanted,
            event_type,
            source: from,
            limit,
        } => {
            let wanted = wanted
                .filter(|s| !s.is_empty())
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| CliError::usage(format!("--status: {e}")))?;
            let from = from
                .filter(|s| !s.is_empty())
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| CliError::usage(format!("--source: {e}")))?;
            let list = store.bus().list(&EventFilter {
                status: wanted,
                event_type,
                source_kind: from,
                limit: Some(limit),
            })?;
            let ids: Vec<&str> = list.iter().map(|e| e.id.as_str()).collect();
            let deliveries = store.bus().deliveries_of(&ids)?;
            let of = |e: &EventRow| deliveries.get(&e.id).map(Vec::as_slice).unwrap_or(&[]);
            if ctx.json {
                let all: Vec<Value> = list.iter().map(|e| with_deliveries(e, of(e))).collect();
                print_json(&all);
            } else if list.is_empty() {
                println!("no events");
            } else {
                let mut rows = Vec::new();
                for e in &list {
                    let runs: Vec<String> = of(e)
                        .iter()
                        .filter_map(|d| d.execution_id.as_ref())
                        .map(|x| short(x.as_str(), 13))
                        .collect();
                    rows.push(vec![
                        e.id.clone(),
                        e.event_type.clone(),
                        source(e),
                        status(e.status.as_str(), st),
                        e.attempts.to_string(),
                        render::ago(e.created_at),
                        if runs.is_empty() {
                            "-".into()
                        } else {
                            runs.join(", ")
                        },
                        e.error.as_deref().map(|x| short(x, 60)).unwrap_or_default(),
                    ]);
                }
                println!(
                    "{}",
                    render::table(
                        &[
                            "ID",
                            "TYPE",
                            "SOURCE",
                            "STATUS",
                            "TRIES",
                            "CREATED",
                            "EXECUTIONS",
                            "ERROR"
                        ],
                        &rows
                    )
                );
            }
        }
        EventCmd::Show { id } => {
            let e = store.bus().find(&id)?;
            if ctx.json {
                print_json(&with_deliveries(&e, &store.bus().deliveries(&e.id)?));
            } else {
                print_event(&store, &e, st)?;
            }
        }
        EventCmd::Retry { id } => {
            let e = store.bus().retry(&id)?;
            let woke = wake_daemon(ctx).await;
            if ctx.json {
                print_json(&e);
            } else {
                println!("{} re-queued", e.id);
                if !woke {
                    eprintln!("no runtime is running; it is delivered when `personas up` starts");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_event(store: &Store, e: &EventRow, st: Style) -> CliResult<()> {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows = vec![
        vec!["type".into(), e.event_type.clone()],
        vec!["source".into(), source(e)],
        vec!["status".into(), status(e.status.as_str(), st)],
        vec!["attempts".into(), e.attempts.to_string()],
        vec!["depth".into(), e.depth.to_string()],
        vec!["created".into(), e.created_at.to_rfc3339()],
        vec![
            "processed".into(),
            opt(e.processed_at.map(|t| t.to_rfc3339())),
        ],
        vec![
            "next attempt".into(),
            opt(e.next_attempt_at.map(|t| t.to_rfc3339())),
        ],
        vec!["error".into(), opt(e.error.clone())],
    ];
    println!("{} {}", st.bold("event"), e.id);
    println!("{}", render::table(&["FIELD", "VALUE"], &rows));
    println!(
        "\n{}\n{}",
        st.bold("payload"),
        serde_json::to_string_pretty(&e.payload).unwrap_or_default()
    );
    let deliveries: Vec<EventDeliveryRow> = store.bus().deliveries(&e.id)?;
    if !deliveries.is_empty() {
        let rows: Vec<Vec<String>> = deliveries
            .iter()
            .map(|d| {
                vec![
                    d.persona_name.clone(),
                    status(d.status.as_str(), st),
                    d.execution_id
                        .as_ref()
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "-".into()),
                    d.error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        println!(
            "\n{}",
            render::table(&["PERSONA", "DELIVERY", "EXECUTION", "ERROR"], &rows)
        );
    }
    Ok(())
}
