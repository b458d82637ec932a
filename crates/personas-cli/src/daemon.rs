//! Finding and talking to a running `personas up`.
//!
//! Whether one runs is decided by the data dir's instance lock (see
//! `personas_server::instance`). Operations reach it through `personas_api::Client`
//! ([`crate::context::Context::client`]); the small client here only wakes it for command groups
//! that still queue work through the store, and goes when they move to the operations.

use crate::error::{CliError, CliResult};
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

/// Wakes a running daemon after work was queued behind its back (see the module doc).
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
}
