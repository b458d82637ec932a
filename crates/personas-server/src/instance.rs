//! One runtime per data dir: the instance lock, where the running instance listens, and
//! [`Host`], which starts a complete runtime (engine + HTTP server) for `personas up` and the
//! desktop app alike.
//!
//! The running instance holds an exclusive OS lock on `<data dir>/daemon.lock` for as long as it
//! lives (the kernel drops it when the process dies, even by SIGKILL) and describes itself in
//! `daemon.json`. Anyone who can take the lock knows no instance runs; anyone who cannot reads
//! where it listens. So `personas up` and the desktop app never both run an engine on one store:
//! the second one is told who holds it (the app then attaches to the running one).

use crate::auth;
use crate::routes::ServerState;
use personas_engine::{Engine, EngineConfig, EngineError};
use personas_store::Store;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;

pub const LOCK_FILE: &str = "daemon.lock";
pub const INFO_FILE: &str = "daemon.json";

/// Where a running instance listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub pid: u32,
    pub url: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// Held by the running instance; dropping it releases the lock and removes `daemon.json`.
pub struct InstanceLock {
    _file: File,
    info_path: PathBuf,
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.info_path);
    }
}

fn open_lock(data_dir: &Path) -> std::io::Result<File> {
    personas_store::files::create_private_dir(data_dir)?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(data_dir.join(LOCK_FILE))
}

/// Takes the instance lock, or reports who holds it (`None` while it has not said yet).
pub fn acquire(data_dir: &Path) -> std::io::Result<Result<InstanceLock, Option<InstanceInfo>>> {
    let file = open_lock(data_dir)?;
    match file.try_lock() {
        Ok(()) => Ok(Ok(InstanceLock {
            _file: file,
            info_path: data_dir.join(INFO_FILE),
        })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Err(read_info(data_dir))),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl InstanceLock {
    /// Publishes where the instance listens (written atomically: temp file, then rename).
    pub fn publish(&self, info: &InstanceInfo) -> std::io::Result<()> {
        let tmp = self.info_path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(info).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.info_path)
    }
}

fn read_info(data_dir: &Path) -> Option<InstanceInfo> {
    let text = std::fs::read_to_string(data_dir.join(INFO_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The running instance for this data dir, if any.
pub fn running(data_dir: &Path) -> std::io::Result<Option<InstanceInfo>> {
    let file = open_lock(data_dir)?;
    match file.try_lock() {
        // We got it: nobody is running. Dropping the file releases it.
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => Ok(read_info(data_dir)),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("another Personas runtime is already running for {data_dir}{}", .holder.as_ref().map(|i| format!(" (pid {} at {})", i.pid, i.url)).unwrap_or_default())]
    AlreadyRunning {
        data_dir: PathBuf,
        holder: Option<InstanceInfo>,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// How to bind when the configured address is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortFallback {
    /// Fail (`personas up`: the user asked for that address).
    Fail,
    /// Take any free loopback port (the desktop app: the UI does not need a fixed one).
    AnyLoopback,
}

/// A started runtime: engine running, lock held, listener bound. [`Host::serve`] runs it.
pub struct Host {
    pub engine: Engine,
    pub state: ServerState,
    pub url: String,
    pub token: String,
    listener: TcpListener,
    lock: InstanceLock,
}

impl Host {
    /// [`Host::start`] over the store in `config.data_dir`, opened (created and migrated if
    /// needed) here, for a host that holds no store of its own (`personas up`).
    pub async fn start_in_dir(
        config: EngineConfig,
        listen: &str,
        fallback: PortFallback,
    ) -> Result<Host, HostError> {
        let store = Store::open_in_dir(&config.data_dir).map_err(EngineError::from)?;
        Self::start(config, store, listen, fallback).await
    }

    /// Takes the data dir's lock, binds `listen`, starts the engine (crash recovery, queue,
    /// bus, scheduler, ...) and publishes where it listens.
    pub async fn start(
        config: EngineConfig,
        store: Store,
        listen: &str,
        fallback: PortFallback,
    ) -> Result<Host, HostError> {
        let data_dir = config.data_dir.clone();
        let io = |what: String| move |source| HostError::Io { what, source };
        let lock =
            match acquire(&data_dir).map_err(io(format!("cannot lock {}", data_dir.display())))? {
                Ok(lock) => lock,
                Err(holder) => return Err(HostError::AlreadyRunning { data_dir, holder }),
            };
        let token = auth::load_or_create_token(&data_dir).map_err(io(format!(
            "cannot create the API token in {}",
            data_dir.display()
        )))?;
        // Another local user must not read the store, the config or the token: modes that
        // became too wide (an old version, a copy, a restore from elsewhere) are fixed here.
        for report in personas_store::files::secure_data_dir(&data_dir) {
            tracing::warn!("data dir permissions: {report}");
        }
        let listener = match TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e)
                if fallback == PortFallback::AnyLoopback
                    && e.kind() == std::io::ErrorKind::AddrInUse =>
            {
                tracing::warn!(%listen, "address in use; listening on another loopback port");
                TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|source| HostError::Listen {
                        addr: "127.0.0.1:0".into(),
                        source,
                    })?
            }
            Err(source) => {
                return Err(HostError::Listen {
                    addr: listen.to_string(),
                    source,
                });
            }
        };
        let addr = listener
            .local_addr()
            .map_err(io("cannot read the listening address".into()))?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "listening beyond loopback; requests must still name a loopback host");
        }
        let engine = Engine::new(config, store);
        engine.start().await?;
        let url = format!("http://{addr}");
        lock.publish(&InstanceInfo {
            pid: std::process::id(),
            url: url.clone(),
            started_at: chrono::Utc::now(),
        })
        .map_err(io(format!(
            "cannot write {}",
            data_dir.join(INFO_FILE).display()
        )))?;
        let state = ServerState::new(engine.clone(), token.clone(), addr.port());
        Ok(Host {
            engine,
            state,
            url,
            token,
            listener,
            lock,
        })
    }

    /// Serves HTTP until `shutdown` resolves, then stops the engine (running executions are
    /// interrupted and recorded as such) and releases the lock.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Host {
            engine,
            state,
            listener,
            lock,
            ..
        } = self;
        if let Err(e) = crate::serve(listener, state, shutdown).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
        engine.shutdown().await;
        drop(lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(running(dir.path()).expect("check").is_none());
        let lock = acquire(dir.path()).expect("lock").expect("free");
        let info = InstanceInfo {
            pid: 42,
            url: "http://127.0.0.1:9".into(),
            started_at: chrono::Utc::now(),
        };
        lock.publish(&info).expect("publish");
        let held = acquire(dir.path()).expect("lock").err().expect("held");
        assert_eq!(held.map(|i| i.pid), Some(42));
        assert_eq!(
            running(dir.path()).expect("check").map(|i| i.url),
            Some(info.url)
        );
        drop(lock);
        assert!(
            running(dir.path()).expect("check").is_none(),
            "released on drop"
        );
        assert!(!dir.path().join(INFO_FILE).exists());
    }
}
