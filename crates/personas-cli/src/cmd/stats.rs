//! `personas stats [--persona P] [--days N]`: daily rollups per persona (UTC days) — runs by
//! status, duration p50/p95, tokens, cost and success rate.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Args;
use personas_store::DailyMetrics;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Only this persona (name or id).
    #[arg(long)]
    pub persona: Option<String>,
    /// How many days back, today included (1 to 366).
    #[arg(long, default_value_t = 7)]
    pub days: u32,
}

#[derive(Serialize, Default)]
struct Totals {
    runs: u64,
    completed: u64,
    failed: u64,
    incomplete: u64,
    cancelled: u64,
    timed_out: u64,
    refused: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    success_rate: Option<f64>,
}

fn totals(rows: &[DailyMetrics]) -> Totals {
    let mut t = Totals::default();
    for r in rows {
        t.runs += r.runs;
        t.completed += r.completed;
        t.failed += r.failed;
        t.incomplete += r.incomplete;
        t.cancelled += r.cancelled;
        t.timed_out += r.timed_out;
        t.refused += r.refused;
        t.input_tokens += r.input_tokens;
        t.output_tokens += r.output_tokens;
        t.cost_usd += r.cost_usd;
    }
    let attempted = t.completed + t.failed + t.incomplete + t.timed_out;
    t.success_rate = (attempted > 0).then(|| t.completed as f64 / attempted as f64);
    t
}

fn pct(v: Option<f64>) -> String {
    v.map(|r| format!("{:.0}%", r * 100.0))
        .unwrap_or_else(|| "-".into())
}

pub async fn run(ctx: &mut Context, args: StatsArgs) -> CliResult<ExitCode> {
    if !(1..=366).contains(&args.days) {
        return Err(CliError::usage(format!(
            "--days: must be between 1 and 366, got {}",
            args.days
        )));
    }
    let store = ctx.store()?;
    let persona = match &args.persona {
        Some(p) => Some(store.personas().find(p)?),
        None => None,
    };
    let rows = store
        .metrics()
        .daily(persona.as_ref().map(|p| &p.id), args.days)?;
    let t = totals(&rows);
    if ctx.json {
        print_json(&serde_json::json!({
            "days": args.days,
            "persona": persona.as_ref().map(|p| &p.name),
            "daily": rows,
            "totals": t,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no runs in the last {} day(s)", args.days);
        return Ok(ExitCode::SUCCESS);
    }
    let st = Style::detect();
    let ms = |v: Option<i64>| v.map(render::duration_ms).unwrap_or_else(|| "-".into());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.day.clone(),
                r.persona_name.clone(),
                r.runs.to_string(),
                r.completed.to_string(),
                r.failed.to_string(),
                (r.incomplete + r.cancelled + r.timed_out + r.refused).to_string(),
                pct(r.success_rate),
                ms(r.duration_p50_ms),
                ms(r.duration_p95_ms),
                format!("{}/{}", r.input_tokens, r.output_tokens),
                format!("${:.4}", r.cost_usd),
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &[
                "DAY",
                "PERSONA",
                "RUNS",
                "OK",
                "FAILED",
                "OTHER",
                "SUCCESS",
                "P50",
                "P95",
                "TOKENS IN/OUT",
                "COST"
            ],
            &table
        )
    );
    println!(
        "\n{} {} runs · {} completed · {} failed · {} refused · success {} · ${:.4} (UTC days; OTHER = incomplete, cancelled, timed out, refused)",
        st.bold("total"),
        t.runs,
        t.completed,
        t.failed,
        t.refused,
        pct(t.success_rate),
        t.cost_usd
    );
    Ok(ExitCode::SUCCESS)
}
