//! What most commands need: the effective config, and the operations through a [`Client`] —
//! over HTTP to the runtime holding the data dir (`personas up`, the desktop app), or in this
//! process when none does.

use crate::GlobalOpts;
use crate::error::{CliError, CliResult};
use personas_api::{Api, Client, HostInfo};
use personas_engine::EngineConfig;
use personas_engine::config::default_data_dir;

pub struct Context {
    pub config: EngineConfig,
    pub json: bool,
    client: Option<Client>,
    runtime: Option<Runtime>,
}

/// The runtime holding the data dir, as the client found it: where it listens and its token
/// (for its event stream, which is not an operation).
#[derive(Debug, Clone)]
pub struct Runtime {
    pub url: String,
    pub token: String,
}

impl Context {
    pub fn load(global: &GlobalOpts) -> CliResult<Context> {
        let data_dir = global.data_dir.clone().unwrap_or_else(default_data_dir);
        let mut config = EngineConfig::load(&data_dir, |k| std::env::var(k).ok())
            .map_err(|e| CliError::usage(format!("invalid configuration: {e}")))?;
        // Runs reach the protocol tools through this very binary (`personas mcp`).
        if config.mcp_command.is_none() {
            config.mcp_command = std::env::current_exe().ok();
        }
        Ok(Context {
            config,
            json: global.json,
            client: None,
            runtime: None,
        })
    }

    /// The operations, through the runtime holding the data dir when one does (so it acts and
    /// announces the change at once), else in this process over the store.
    pub fn client(&mut self) -> CliResult<Client> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let client = match crate::daemon::running(&self.config.data_dir)? {
            Some(info) => {
                let token = personas_server::auth::read_token(&self.config.data_dir).ok_or_else(|| {
                    CliError::runtime(format!(
                        "a runtime (pid {}) holds {} but its API token cannot be read",
                        info.pid,
                        self.config.data_dir.display()
                    ))
                    .with_hint("the token is <data dir>/api-token; run as the user who started the runtime")
                })?;
                let client = Client::http(&info.url, &token)?;
                self.runtime = Some(Runtime {
                    url: info.url,
                    token,
                });
                client
            }
            None => Client::local(Api::open(
                self.config.clone(),
                crate::cmd::credential::vault_options(),
                HostInfo::default(),
            )?),
        };
        self.client = Some(client.clone());
        Ok(client)
    }

    /// The runtime the client talks to, when one holds the data dir (after [`Context::client`]).
    pub fn runtime(&self) -> Option<&Runtime> {
        self.runtime.as_ref()
    }
}
