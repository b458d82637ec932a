//! `personas stats [--persona P] [--days N]`: the `get_stats` operation — per persona, runs by
//! outcome, duration p50/p95, tokens, cost and success rate, over local calendar days.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::{self, Style};
use clap::Args;
use personas_api::Operations;
use personas_api::ops::StatsRequest;
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
    let offset = chrono::Local::now().offset().local_minus_utc() / 60;
    let stats = ctx
        .client()?
        .get_stats(StatsRequest {
            days: Some(args.days),
            tz_offset_minutes: Some(offset),
            persona: args.persona,
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
        v.map(|v| render::duration_ms(v as i64))
            .unwrap_or_else(|| "-".into())
    };
    let table: Vec<Vec<String>> = stats
        .personas
        .iter()
        .map(|r| {
            vec![
                r.persona_name.clone(),
                r.runs.to_string(),
                r.completed.to_string(),
                r.failed.to_string(),
                r.refused.to_string(),
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
                "PERSONA",
                "RUNS",
                "OK",
                "FAILED",
                "REFUSED",
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
        "\n{} {} runs since {} · {} completed · {} refused · success {} · ${:.4} (local days)",
        st.bold("total"),
        stats.runs,
        stats.since_day,
        stats.completed,
        stats.refused,
        pct(stats.success_rate),
        stats.cost_usd
    );
    Ok(ExitCode::SUCCESS)
}
