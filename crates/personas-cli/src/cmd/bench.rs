//! `personas bench`: the runtime's overhead measured in process by `personas-bench` (it builds
//! stores and engines of its own in throwaway data dirs, so it is not a client of the
//! operations; see docs/architecture.md).

use crate::context::Context;
use crate::error::{CliError, CliResult};
pub use personas_bench::BenchArgs;
use personas_bench::BenchError;
use std::process::ExitCode;

pub async fn run(ctx: &mut Context, args: BenchArgs) -> CliResult<ExitCode> {
    personas_bench::run(args, &ctx.config, ctx.json)
        .await
        .map_err(|e: BenchError| {
            let err = if e.usage {
                CliError::usage(e.message)
            } else {
                CliError::runtime(e.message)
            };
            match e.hint {
                Some(h) => err.with_hint(h),
                None => err,
            }
        })?;
    Ok(ExitCode::SUCCESS)
}
