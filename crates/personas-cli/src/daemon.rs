//! Finding and talking to a running `personas up`.
//!
//! Whether one runs is decided by the data dir's instance lock (see
//! `personas_server::instance`); operations reach it through `personas_api::Client`
//! ([`crate::context::Context::client`]).

use crate::error::{CliError, CliResult};
use std::path::Path;

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
