//! Finding and talking to a running `personas up`.
//!
//! Whether one runs is decided by the data dir's instance lock (see
//! `personas_server::instance`); this module adds the HTTP client the CLI uses to hand work to it.

use crate::error::{CliError, CliResult};
use personas_core::Execution;
use std::path::Path;
use std::time::Duration;

pub use personas_server::instance::InstanceInfo as DaemonInfo;

/// The running daemon (or desktop app) for this data dir, if any.
pub fn running(data_dir: &Path) -> CliResult<Option<DaemonInfo>> {
    personas_server::instance::running(data_dir).map_err(|e| {
        CliError::runtime(format!(
            "cannot check the lock in {}: {e}",
            data_dir.display()
        ))
    })
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
            .post(format!("{}/api/cancel_execution", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "id": id }))
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
