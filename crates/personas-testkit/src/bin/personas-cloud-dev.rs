//! `personas-cloud-dev` — what `make cloud-dev` runs: the whole cloud on this machine without
//! Docker (Postgres, the Tansu broker, orchestrators and workers as processes), data under
//! `.cloud-dev/` kept across starts. When everything is ready it prints exactly one line on
//! standard output,
//!
//! ```text
//! PERSONAS_CLOUD_URL=http://127.0.0.1:9500 PERSONAS_CLOUD_TOKEN=<admin token>
//! ```
//!
//! and stays in the foreground until SIGTERM or Ctrl-C, which stop everything it started.
//! Everything else (where the logs are) goes to standard error. Workers get this process's model
//! credentials (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `CLAUDE_CODE_OAUTH_TOKEN`); a tenant's
//! own token, when set, replaces them per run.
#![forbid(unsafe_code)]

use clap::Parser;
use personas_testkit::cloud::{CloudStack, StackOptions, StackSecrets};
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "personas-cloud-dev",
    about = "The Personas cloud on this machine: Postgres, the Tansu broker, orchestrators and workers"
)]
struct Args {
    /// Data and logs (Postgres cluster, broker storage, secrets, worker scratch dirs).
    #[arg(long, env = "PERSONAS_CLOUD_DEV_DIR", default_value = ".cloud-dev")]
    dir: PathBuf,
    /// Orchestrators to start.
    #[arg(long, default_value_t = 2)]
    orchestrators: usize,
    /// Workers to start.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The first orchestrator's port (the next ones count up from it); a port in use, or 0,
    /// means any free port.
    #[arg(long, default_value_t = 9500)]
    port: u16,
    /// The `personas-cloud` binary [default: the one next to this program].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The Claude CLI the workers run [default: PERSONAS_CLOUD_CLAUDE_PATH, else the project's
    /// pinned one in .tools/claude-code].
    #[arg(long, env = "PERSONAS_CLOUD_CLAUDE_PATH")]
    claude: Option<PathBuf>,
}

/// The model credentials workers take from our environment.
const MODEL_ENV: [&str; 3] = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
];

fn port_free(port: u16) -> bool {
    port != 0 && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn options(args: Args) -> anyhow::Result<StackOptions> {
    use anyhow::Context;
    let binary = match args.binary {
        Some(path) => path,
        None => std::env::current_exe()
            .context("cannot find this program's path")?
            .with_file_name("personas-cloud"),
    };
    anyhow::ensure!(
        binary.exists(),
        "{} does not exist: build it (`cargo build -p personas-cloud`) or pass --binary",
        binary.display()
    );
    let claude = args.claude.unwrap_or_else(|| {
        personas_testkit::workspace_root().join(".tools/claude-code/node_modules/.bin/claude")
    });
    if !claude.exists() {
        eprintln!(
            "personas-cloud-dev: warning: no Claude CLI at {} (scripts/install-claude.sh installs it); runs will fail",
            claude.display()
        );
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let secrets = StackSecrets::load_or_create(&args.dir.join("secrets.env"));
    let mut ports = Vec::new();
    for i in 0..args.orchestrators {
        let wanted = u16::try_from(i)
            .ok()
            .and_then(|i| args.port.checked_add(i))
            .unwrap_or(0);
        if port_free(wanted) {
            ports.push(wanted);
        } else {
            if wanted != 0 {
                eprintln!("personas-cloud-dev: port {wanted} is in use; orch-{i} takes a free one");
            }
            ports.push(personas_testkit::cloud::free_port());
        }
    }
    let mut options = StackOptions::new(binary);
    options.dir = Some(args.dir);
    options.orchestrators = args.orchestrators;
    options.workers = args.workers;
    options.orchestrator_ports = ports;
    options.claude_path = Some(claude);
    options.secrets = Some(secrets);
    options.ready_timeout = Duration::from_secs(120);
    options.worker_env = MODEL_ENV
        .iter()
        .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
        .collect();
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // The stack's helpers panic on a failed start (they are test helpers); here the message is
    // the whole story, without a thread name or source location.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("a start step failed");
        eprintln!("personas-cloud-dev: {message}");
    }));
    let options = options(Args::parse())?;
    // Signals are caught before anything starts. One during the start drops the start's future:
    // what it started so far is stopped by the drops (the stack's, or Postgres' and the
    // broker's when their blocking start ends; the runtime waits for it before exiting).
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut stack = tokio::select! {
        stack = CloudStack::start(options) => stack,
        _ = term.recv() => return Ok(()),
        _ = int.recv() => return Ok(()),
    };
    eprintln!(
        "personas-cloud-dev: {} orchestrator(s), {} worker(s) ready; data and logs in {}",
        stack.orchestrator_count(),
        stack.worker_count(),
        stack.dir().display()
    );
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "PERSONAS_CLOUD_URL={} PERSONAS_CLOUD_TOKEN={}",
        stack.url(),
        stack.admin_token()
    )?;
    out.flush()?;
    drop(out);
    // A process that dies is said once on stderr (with its log); the rest keeps running, as a
    // deployment would.
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = check.tick() => {
                for (name, status, log) in stack.exited() {
                    eprintln!("personas-cloud-dev: {name} exited ({status}); its log: {}", log.display());
                }
            }
        }
    }
    eprintln!("personas-cloud-dev: stopping");
    drop(stack);
    Ok(())
}
