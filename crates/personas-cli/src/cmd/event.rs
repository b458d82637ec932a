//! `personas event emit|list|show|retry`: the bus from the command line.
//!
//! `emit` is the `emit_event` operation: the event is durable before the command returns (and
//! its payload passes the runtime's secret redaction); a running runtime delivers it at once,
//! else it waits in the store for the next `personas up`.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Subcommand;
use personas_api::Operations;
use personas_api::bus::{EmitEvent, EventRef, EventView, ListEvents};
use personas_api::ops::EventRow;
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
        status: Option<personas_core::EventStatus>,
        /// Only this event type.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Only events from this kind of source: persona, webhook, schedule, user, chain,
        /// system, watcher.
        #[arg(long, value_name = "SOURCE")]
        source: Option<personas_core::trigger::SourceKind>,
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
    let client = ctx.client()?;
    match cmd {
        EventCmd::Emit {
            event_type,
            payload,
            target,
        } => {
            let req = EmitEvent {
                event_type,
                payload: Some(parse_payload(payload.as_deref())?),
                target,
            };
            let row = client.emit_event(req).await?;
            if ctx.json {
                print_json(&row);
            } else {
                println!("{}", row.id);
                if client.url().is_none() {
                    eprintln!(
                        "stored; no runtime is running for {} — it is delivered when `personas up` starts",
                        ctx.config.data_dir.display()
                    );
                }
            }
        }
        EventCmd::List {
            status,
            event_type,
            source,
            limit,
        } => {
            let req = ListEvents {
                event_type,
                status,
                source,
                limit: Some(limit),
            };
            let list = client.list_events(req).await?;
            if ctx.json {
                print_json(&list);
            } else {
                print_list(&list.events);
            }
        }
        EventCmd::Show { id } => {
            let v = client.get_event(EventRef { id }).await?;
            if ctx.json {
                print_json(&v);
            } else {
                print_event(&v);
            }
        }
        EventCmd::Retry { id } => {
            let e = client.retry_event(EventRef { id }).await?;
            if ctx.json {
                print_json(&e);
            } else {
                println!("{} re-queued", e.id);
                if client.url().is_none() {
                    eprintln!("no runtime is running; it is delivered when `personas up` starts");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(list: &[EventView]) {
    if list.is_empty() {
        println!("no events");
        return;
    }
    let st = Style::detect();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|v| {
            let e = &v.event;
            let runs: Vec<String> = v.executions.iter().map(|x| short(x.as_str(), 13)).collect();
            vec![
                e.id.clone(),
                e.event_type.clone(),
                source(e),
                status(&e.status.to_string(), st),
                e.attempts.to_string(),
                render::ago(e.created_at),
                if runs.is_empty() {
                    "-".into()
                } else {
                    runs.join(", ")
                },
                e.error.as_deref().map(|x| short(x, 60)).unwrap_or_default(),
            ]
        })
        .collect();
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

fn print_event(v: &EventView) {
    let st = Style::detect();
    let e = &v.event;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows = vec![
        vec!["type".into(), e.event_type.clone()],
        vec!["source".into(), source(e)],
        vec!["status".into(), status(&e.status.to_string(), st)],
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
    if !v.deliveries.is_empty() {
        let rows: Vec<Vec<String>> = v
            .deliveries
            .iter()
            .map(|d| {
                vec![
                    d.persona_name.clone(),
                    status(&d.status.to_string(), st),
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
}
