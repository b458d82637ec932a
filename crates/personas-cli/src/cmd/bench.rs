//! `personas bench`: measurements of the runtime's own overhead, one subcommand per area.

use super::bench_bus::{self, BusBenchArgs};
use super::print_json;
use crate::context::Context;
use crate::error::CliResult;
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: Option<BenchCmd>,
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// The event bus: emit → enqueue latency, durable events/s, memory under a burst.
    Bus(BusBenchArgs),
}

pub async fn run(ctx: &mut Context, args: BenchArgs) -> CliResult<ExitCode> {
    let what = args.what.unwrap_or(BenchCmd::Bus(BusBenchArgs {
        subscriptions: 1_000,
        latency_events: 2_000,
        burst: 100_000,
        publishers: 64,
        dir: None,
    }));
    match what {
        BenchCmd::Bus(a) => {
            let report = bench_bus::run(ctx, a).await?;
            if ctx.json {
                print_json(&report);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
