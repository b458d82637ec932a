//! `personas bench`: measurements of the runtime's own overhead. Filled in below.

use crate::context::Context;
use crate::error::CliResult;
use clap::Args;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct BenchArgs {}

pub async fn run(_ctx: &mut Context, _args: BenchArgs) -> CliResult<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
