//! The runtime inside the app: the same [`Host`] `personas up` starts (engine, scheduler, bus,
//! HTTP listener for webhooks and the CLI), or — when `personas up` already holds the data dir —
//! an attachment to it. Two engines never share one store.

use personas_api::{Api, ApiError, Code};
use personas_engine::EngineConfig;
use personas_engine::config::default_data_dir;
use personas_server::ServerState;
use personas_server::instance::{Host, HostError, InstanceInfo, PortFallback};
use personas_store::Store;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the desktop runtime listens unless `config.toml` or `PERSONAS_LISTEN` says otherwise;
/// another free loopback port is taken when it is busy (the window does not need a fixed one).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9420";

/// What the app runs on.
pub enum Mode {
    /// The engine runs in this process; the UI calls it over IPC.
    Local {
        state: ServerState,
        url: String,
        stop: CancellationToken,
        served: Mutex<Option<tauri::async_runtime::JoinHandle<()>>>,
    },
    /// `personas up` runs for this data dir; the window shows its UI (web backend).
    Attached { info: InstanceInfo, token: String },
    /// Nothing could start; every command answers with this reason.
    Failed(String),
}

pub struct Runtime {
    pub data_dir: PathBuf,
    pub mode: Mode,
}

impl Runtime {
    /// Starts (or attaches to) the runtime for the data dir `PERSONAS_DATA_DIR` names, else the
    /// same default data dir the `personas` CLI uses.
    pub async fn start() -> Runtime {
        let data_dir = std::env::var_os("PERSONAS_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(default_data_dir);
        let mode = match start_local(&data_dir).await {
            Ok(mode) => mode,
            Err(e) => {
                tracing::error!(error = %e, "the runtime did not start");
                Mode::Failed(e)
            }
        };
        Runtime { data_dir, mode }
    }

    /// The API, when the engine runs here.
    pub fn api(&self) -> Result<&Api, ApiError> {
        match &self.mode {
            Mode::Local { state, .. } => Ok(&state.api),
            Mode::Attached { info, .. } => Err(ApiError::new(
                Code::Unavailable,
                format!(
                    "this window is attached to `personas up` (pid {}) at {}",
                    info.pid, info.url
                ),
            )),
            Mode::Failed(why) => Err(ApiError::new(
                Code::Unavailable,
                format!("the Personas runtime did not start: {why}"),
            )),
        }
    }

    pub fn state(&self) -> Option<&ServerState> {
        match &self.mode {
            Mode::Local { state, .. } => Some(state),
            _ => None,
        }
    }

    /// Stops the engine (running executions are interrupted and recorded as such) and releases
    /// the data dir. Bounded so a stuck child cannot keep the app from quitting.
    pub async fn shutdown(&self) {
        if let Mode::Local { stop, served, .. } = &self.mode {
            stop.cancel();
            let handle = served.lock().ok().and_then(|mut h| h.take());
            if let Some(h) = handle
                && tokio::time::timeout(Duration::from_secs(15), h)
                    .await
                    .is_err()
            {
                tracing::warn!("the engine did not stop within 15 s; quitting anyway");
            }
        }
    }
}

async fn start_local(data_dir: &std::path::Path) -> Result<Mode, String> {
    let mut config = EngineConfig::load(data_dir, |k| std::env::var(k).ok())
        .map_err(|e| format!("invalid configuration: {e}"))?;
    // Runs reach the protocol tools through this binary (`personas-desktop mcp`).
    if config.mcp_command.is_none() {
        config.mcp_command = std::env::current_exe().ok();
    }
    let listen = std::env::var("PERSONAS_LISTEN").unwrap_or_else(|_| config.listen.clone());
    for attempt in 0..20 {
        let store = Store::open_in_dir(data_dir)
            .map_err(|e| format!("cannot open the store in {}: {e}", data_dir.display()))?;
        match Host::start(config.clone(), store, &listen, PortFallback::AnyLoopback).await {
            Ok(host) => {
                let state = host.state.clone();
                let url = host.url.clone();
                let stop = CancellationToken::new();
                let until = stop.clone();
                let served = tauri::async_runtime::spawn(host.serve(async move {
                    until.cancelled().await;
                }));
                tracing::info!(%url, data_dir = %data_dir.display(), "runtime started in the app");
                return Ok(Mode::Local {
                    state,
                    url,
                    stop,
                    served: Mutex::new(Some(served)),
                });
            }
            Err(HostError::AlreadyRunning {
                holder: Some(info), ..
            }) => {
                let token = personas_server::auth::read_token(data_dir).ok_or_else(|| {
                    format!(
                        "`personas up` (pid {}) runs for {} but its API token is unreadable",
                        info.pid,
                        data_dir.display()
                    )
                })?;
                tracing::info!(url = %info.url, pid = info.pid, "attaching to the running `personas up`");
                return Ok(Mode::Attached { info, token });
            }
            // Held, but the holder has not said where it listens yet: it is starting.
            Err(HostError::AlreadyRunning { holder: None, .. }) if attempt < 19 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "another Personas runtime holds {} but does not say where it listens",
        data_dir.display()
    ))
}
