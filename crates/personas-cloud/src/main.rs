//! `personas-cloud orchestrator|worker` — see `--help`.

use clap::Parser;
use personas_cloud::config::{Cli, Mode};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PERSONAS_CLOUD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("personas-cloud: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.mode {
            Mode::Orchestrator(args) => {
                let settings = args.resolve()?;
                personas_cloud::orchestrator::run(settings).await
            }
            Mode::Worker(args) => {
                let settings = args.resolve()?;
                personas_cloud::worker::run(settings).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("personas-cloud: {e:#}");
            ExitCode::FAILURE
        }
    }
}
