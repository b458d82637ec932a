//! Finding and talking to a running `personas up`.
//!
//! The daemon holds an exclusive lock on `<data dir>/daemon.lock` for as long as it lives (the
//! OS drops it if the process dies, even by SIGKILL) and describes itself in `daemon.json`. A
//! client that can take the lock knows no daemon runs; one that cannot reads where it listens.

use crate::error::{CliError, CliResult};
use personas_core::Execution;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const LOCK_FILE: &str = "daemon.lock";
pub const INFO_FILE: &str = "daemon.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub url: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// Held by the running daemon; dropping it releases the lock and removes `daemon.json`.
pub struct DaemonLock {
    _file: File,
    info_path: PathBuf,
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.info_path);
    }
}

fn open_lock(data_dir: &Path) -> CliResult<File> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        CliError::runtime(format!(
            "cannot create the data dir {}: {e}",
            data_dir.display()
        ))
    })?;
    let path = data_dir.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| CliError::runtime(format!("cannot open {}: {e}", path.display())))
}

/// Takes the daemon lock, or reports who holds it.
pub fn acquire(data_dir: &Path) -> CliResult<Result<DaemonLock, Option<DaemonInfo>>> {
    let file = open_lock(data_dir)?;
    match file.try_lock() {
        Ok(()) => Ok(Ok(DaemonLock {
            _file: file,
            info_path: data_dir.join(INFO_FILE),
        })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Err(read_info(data_dir))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(CliError::runtime(format!("cannot lock the data dir: {e}")))
        }
    }
}

impl DaemonLock {
    /// Publishes where the daemon listens (written atomically: temp file, then rename).
    pub fn publish(&self, info: &DaemonInfo) -> CliResult<()> {
        let tmp = self.info_path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(info).unwrap_or_default();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.info_path))
            .map_err(|e| {
                CliError::runtime(format!("cannot write {}: {e}", self.info_path.display()))
            })
    }
}

fn read_info(data_dir: &Path) -> Option<DaemonInfo> {
    let text = std::fs::read_to_string(data_dir.join(INFO_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The running daemon for this data dir, if any.
pub fn running(data_dir: &Path) -> CliResult<Option<DaemonInfo>> {
    let file = open_lock(data_dir)?;
    match file.try_lock() {
        // We got it: nobody is running. Dropping the file releases it.
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => Ok(read_info(data_dir)),
        Err(std::fs::TryLockError::Error(e)) => Err(CliError::runtime(format!(
            "cannot check the data dir lock: {e}"
        ))),
    }
}

/// A client of a running daemon's API.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(info: &DaemonInfo, data_dir: &Path) -> Option<Client> {
        let token = personas_server::auth::read_token(data_dir)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .ok()?;
        Some(Client {
            base: info.url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// Tells the daemon new work is queued (it would otherwise notice at its next poll).
    pub async fn wake(&self) -> bool {
        self.http
            .post(format!("{}/api/wake", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Calls an operation of the API table (`POST /api/<name>`), so the daemon acts and
    /// announces it on its event stream at once.
    pub async fn operation<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        body: &serde_json::Value,
    ) -> CliResult<T> {
        let resp = self
            .http
            .post(format!("{}/api/{name}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| {
                CliError::runtime(format!("cannot reach the runtime at {}: {e}", self.base))
            })?;
        Self::answer(resp).await
    }

    /// Cancels through the daemon, which interrupts a run it owns at once.
    pub async fn cancel(&self, id: &str) -> CliResult<Execution> {
        let resp = self
            .http
            .post(format!("{}/api/executions/{id}/cancel", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| {
                CliError::runtime(format!("cannot reach the runtime at {}: {e}", self.base))
            })?;
        Self::answer(resp).await
    }

    async fn answer<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> CliResult<T> {
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| CliError::runtime(format!("bad answer from the runtime: {e}")))?;
        if status.is_success() {
            serde_json::from_value(body)
                .map_err(|e| CliError::runtime(format!("bad answer from the runtime: {e}")))
        } else {
            let msg = body["message"]
                .as_str()
                .unwrap_or("request failed")
                .to_string();
            Err(if status.is_client_error() {
                CliError::usage(msg)
            } else {
                CliError::runtime(msg)
            })
        }
    }
}
