//! `personas stats [--days N]`: `get_stats` — runs, outcomes, durations, tokens and cost per
//! day and per persona, in this machine's time zone (the same days the UI charts).

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use chrono::Offset;
use clap::Args;
use personas_api::Operations;
use personas_api::ops::StatsRequest;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// How many days back, today included (1 to 366).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Only this persona (name or id).
    #[arg(long)]
    pub persona: Option<String>,
}

fn pct(v: Option<f64>) -> String {
    v.map(|r| format!("{:.0}%", r * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// This machine's offset from UTC now, in minutes east.
fn local_offset_minutes() -> i32 {
    chrono::Local::now().offset().fix().local_minus_utc() / 60
}

pub async fn run(ctx: &mut Context, args: StatsArgs) -> CliResult<ExitCode> {
    if !(1..=366).contains(&args.days) {
        return Err(CliError::usage(format!(
            "--days: must be between 1 and 366, got {}",
            args.days
        )));
    }
    let stats = ctx
        .client()?
        .get_stats(StatsRequest {
            days: Some(args.days),
            tz_offset_minutes: Some(local_offset_minutes()),
            persona: args.persona.clone(),
        })
        .await?;
    if ctx.json {
        print_json(&stats);
        return Ok(ExitCode::SUCCESS);
    }
    if stats.runs == 0 {
        println!("no runs in the last {} day(s)", args.days);
        return Ok(ExitCode::SUCCESS);
    }
    let st = Style::detect();
    let ms = |v: Option<u64>| {
        v.map(|v| render::duration_ms(i64::try_from(v).unwrap_or(i64::MAX)))
            .unwrap_or_else(|| "-".into())
    };
    let days: Vec<Vec<String>> = stats
        .days
        .iter()
        .map(|d| {
            vec![
                d.day.clone(),
                d.runs.to_string(),
                d.completed.to_string(),
                d.failed.to_string(),
                (d.incomplete + d.cancelled + d.timed_out).to_string(),
                d.active.to_string(),
                format!("{}/{}", d.input_tokens, d.output_tokens),
                format!("${:.4}", d.cost_usd),
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &[
                "DAY",
                "RUNS",
                "OK",
                "FAILED",
                "OTHER",
                "ACTIVE",
                "TOKENS IN/OUT",
                "COST"
            ],
            &days
        )
    );
    let personas: Vec<Vec<String>> = stats
        .personas
        .iter()
        .map(|p| {
            vec![
                p.persona_name.clone(),
                p.runs.to_string(),
                p.completed.to_string(),
                p.failed.to_string(),
                pct(p.success_rate),
                ms(p.duration_p50_ms),
                ms(p.duration_p95_ms),
                format!("{}/{}", p.input_tokens, p.output_tokens),
                format!("${:.4}", p.cost_usd),
            ]
        })
        .collect();
    println!(
        "\n{}",
        render::table(
            &[
                "PERSONA",
                "RUNS",
                "OK",
                "FAILED",
                "SUCCESS",
                "P50",
                "P95",
                "TOKENS IN/OUT",
                "COST"
            ],
            &personas
        )
    );
    println!(
        "\n{} {} runs · {} completed · success {} · p50 {} · ${:.4} since {} (local days; OTHER = incomplete, cancelled, timed out)",
        st.bold("total"),
        stats.runs,
        stats.completed,
        pct(stats.success_rate),
        ms(stats.duration_p50_ms),
        stats.cost_usd,
        stats.since_day
    );
    Ok(ExitCode::SUCCESS)
}

/// `personas metrics`: `get_metrics` — the counters of the runtime holding the data dir. With
/// none running the answer is this process's own (fresh) engine's, so every counter is 0: said
/// on stderr so a script reading `--json` still gets the operation's answer.
pub async fn metrics(ctx: &mut Context) -> CliResult<ExitCode> {
    let client = ctx.client()?;
    let m = client.get_metrics(personas_api::ops::Empty {}).await?;
    if client.url().is_none() {
        eprintln!(
            "note: no runtime is running for this data dir; counters start at 0 in this process"
        );
    }
    if ctx.json {
        print_json(&m);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = m
        .series
        .iter()
        .map(|s| {
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            vec![s.name.clone(), labels, format!("{}", s.value)]
        })
        .collect();
    println!("{}", render::table(&["SERIES", "LABELS", "VALUE"], &rows));
    Ok(ExitCode::SUCCESS)
}
