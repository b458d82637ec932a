//! Runtime configuration, in layers: built-in defaults → `<data dir>/config.toml` →
//! `PERSONAS_*` environment variables → command-line flags (applied by the host).

pub use crate::policy_config::{BudgetConfig, DeliveryConfig, HealingConfig, ReviewConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The effective configuration of one runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Where the store, workspaces and logs live. Not read from the file (it locates the file).
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// Address `personas up` listens on.
    pub listen: String,
    /// Executions running at once across all personas.
    pub max_concurrent: u32,
    /// The Claude Code CLI to run; found on PATH and in the usual install places when unset.
    pub claude_path: Option<PathBuf>,
    /// A run printing nothing this long, while no tool is running, is stopped as timed out.
    pub inactivity_timeout_secs: u64,
    /// Passed to the CLI as `CLAUDE_CODE_MAX_RETRIES` when set (the CLI's default is 10 retries
    /// over about 3 minutes).
    pub cli_max_retries: Option<u32>,
    /// Longest stdout line kept; longer lines are replaced by a truncation notice.
    pub output_line_cap_bytes: usize,
    /// Output stored per execution; beyond it lines are counted, not stored, and a marker says so.
    pub output_total_cap_bytes: usize,
    /// After SIGINT, how long the CLI gets to finish before SIGTERM (then SIGKILL as long again).
    pub cancel_grace_secs: u64,
    /// How often running executions are stamped alive and checked for cancel requests.
    pub heartbeat_secs: u64,
    /// A running execution whose owner has not stamped it for this long is considered orphaned.
    pub stale_after_secs: u64,
    /// How often the queue looks for work written by other processes (the CLI, MCP server).
    pub queue_poll_ms: u64,
    /// How often the bus dispatcher looks for events other processes published (the CLI, the
    /// MCP server); events published in this process wake it at once.
    pub bus_poll_ms: u64,
    /// Events claimed and delivered per dispatcher transaction.
    pub bus_batch: u32,
    /// How long a dispatcher's claim on events lasts before another may take them over.
    pub bus_lease_secs: u64,
    /// Delivery attempts before an event is dead-lettered.
    pub bus_max_attempts: u32,
    /// Wait before retrying a failed delivery, doubled per attempt up to `bus_retry_cap_secs`.
    pub bus_retry_base_ms: u64,
    pub bus_retry_cap_secs: u64,
    /// Most executions in one causal chain (events and chain triggers); stops loops.
    pub max_chain_depth: u32,
    /// A scheduled time later than this when the scheduler sees it counts as missed (downtime)
    /// and is handled by the trigger's missed-run policy.
    pub missed_run_grace_secs: u64,
    /// Largest webhook body accepted (bigger ones get 413).
    pub webhook_max_body_bytes: usize,
    /// File changes to one path within this window become one event.
    pub watch_debounce_ms: u64,
    /// Extra environment for every run (e.g. `ANTHROPIC_BASE_URL` for a bring-your-own-model
    /// gateway). A run's environment is otherwise built from an allow-list
    /// (`runner::environment`); every value here whose name is not on its harmless list is
    /// taught to the run's redactor. Secrets belong in the vault, not here.
    pub env: std::collections::BTreeMap<String, String>,
    /// Variables notification channels may read through `env:NAME` references (from `[env]`,
    /// then the runtime's environment). Never a `PERSONAS_*` name; these variables are withheld
    /// from runs. Prefer `credential:NAME.FIELD` references to the vault.
    pub channel_env_allow: Vec<String>,
    /// The `personas` binary a run's CLI starts as its MCP server (`personas mcp`) for the
    /// protocol tools. Unset: runs get no MCP server (the JSON-line protocol still works).
    /// The `personas` binary sets it to itself.
    pub mcp_command: Option<PathBuf>,
    /// `[review]`: review deadlines and what a rejection does (personas can override).
    pub review: ReviewConfig,
    /// `[healing]`: scheduled retries and circuit breakers.
    pub healing: HealingConfig,
    /// `[budget]`: global spending caps.
    pub budget: BudgetConfig,
    /// `[delivery]`: how messages reach notification channels.
    pub delivery: DeliveryConfig,
    /// `[retention]`: how long output, events, deliveries, messages and executions are kept.
    pub retention: crate::retention::RetentionConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            listen: "127.0.0.1:9420".into(),
            max_concurrent: 4,
            claude_path: None,
            inactivity_timeout_secs: 300,
            // The CLI alone retries for ~3 minutes (fixtures README §3.5); 3 quick retries (~3.5 s)
            // absorb blips, then the healing engine takes over with durable, scheduled retries.
            cli_max_retries: Some(3),
            output_line_cap_bytes: 8 * 1024 * 1024,
            output_total_cap_bytes: 64 * 1024 * 1024,
            cancel_grace_secs: 5,
            heartbeat_secs: 2,
            stale_after_secs: 20,
            queue_poll_ms: 500,
            bus_poll_ms: 1_000,
            bus_batch: 512,
            bus_lease_secs: 30,
            bus_max_attempts: 5,
            bus_retry_base_ms: 1_000,
            bus_retry_cap_secs: 300,
            max_chain_depth: 8,
            missed_run_grace_secs: 5,
            webhook_max_body_bytes: 1024 * 1024,
            watch_debounce_ms: 300,
            env: Default::default(),
            channel_env_allow: Vec::new(),
            mcp_command: None,
            review: ReviewConfig::default(),
            healing: HealingConfig::default(),
            budget: BudgetConfig::default(),
            delivery: DeliveryConfig::default(),
            retention: Default::default(),
        }
    }
}

/// The OS app-data dir for Personas (e.g. `~/.local/share/personas`).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .or_else(dirs::home_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("personas")
}

/// The config file inside a data dir.
pub fn config_file(data_dir: &Path) -> PathBuf {
    data_dir.join("config.toml")
}

/// A configuration value that could not be used; names the source and the key.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub message: String,
}

impl EngineConfig {
    /// Defaults, then the data dir's `config.toml` (if present), then `PERSONAS_*` variables.
    pub fn load(
        data_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let path = config_file(data_dir);
        let mut cfg = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<EngineConfig>(&text).map_err(|e| ConfigError {
                source_name: path.display().to_string(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => EngineConfig::default(),
            Err(e) => {
                return Err(ConfigError {
                    source_name: path.display().to_string(),
                    message: e.to_string(),
                });
            }
        };
        cfg.data_dir = data_dir.to_path_buf();
        cfg.apply_env(env)?;
        cfg.check()?;
        Ok(cfg)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ConfigError> {
            v.trim().parse().map_err(|_| ConfigError {
                source_name: name.into(),
                message: format!("{v:?} is not a valid number"),
            })
        }
        if let Some(v) = env("PERSONAS_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = env("PERSONAS_MAX_CONCURRENT") {
            self.max_concurrent = num("PERSONAS_MAX_CONCURRENT", &v)?;
        }
        if let Some(v) = env("PERSONAS_CLAUDE_PATH") {
            self.claude_path = Some(PathBuf::from(v));
        }
        if let Some(v) = env("PERSONAS_INACTIVITY_TIMEOUT_SECS") {
            self.inactivity_timeout_secs = num("PERSONAS_INACTIVITY_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("PERSONAS_CLI_MAX_RETRIES") {
            self.cli_max_retries = Some(num("PERSONAS_CLI_MAX_RETRIES", &v)?);
        }
        if let Some(v) = env("PERSONAS_CANCEL_GRACE_SECS") {
            self.cancel_grace_secs = num("PERSONAS_CANCEL_GRACE_SECS", &v)?;
        }
        if let Some(v) = env("PERSONAS_MAX_CHAIN_DEPTH") {
            self.max_chain_depth = num("PERSONAS_MAX_CHAIN_DEPTH", &v)?;
        }
        if let Some(v) = env("PERSONAS_BUS_POLL_MS") {
            self.bus_poll_ms = num("PERSONAS_BUS_POLL_MS", &v)?;
        }
        Ok(())
    }

    /// Rejects values the runtime cannot work with.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| ConfigError {
            source_name: key.into(),
            message: message.into(),
        };
        if self.max_concurrent == 0 {
            return Err(bad("max_concurrent", "must be at least 1"));
        }
        if self.inactivity_timeout_secs == 0 {
            return Err(bad("inactivity_timeout_secs", "must be at least 1"));
        }
        if self.output_line_cap_bytes < 4096 {
            return Err(bad("output_line_cap_bytes", "must be at least 4096"));
        }
        if self.bus_batch == 0 {
            return Err(bad("bus_batch", "must be at least 1"));
        }
        if self.bus_lease_secs == 0 {
            return Err(bad("bus_lease_secs", "must be at least 1"));
        }
        if self.bus_max_attempts == 0 {
            return Err(bad("bus_max_attempts", "must be at least 1"));
        }
        if self.max_chain_depth == 0 {
            return Err(bad("max_chain_depth", "must be at least 1"));
        }
        if self.bus_poll_ms == 0 {
            return Err(bad("bus_poll_ms", "must be at least 1"));
        }
        if let Some(name) = self
            .channel_env_allow
            .iter()
            .find(|n| crate::delivery::channel::is_reserved_env(n))
        {
            return Err(bad(
                "channel_env_allow",
                &format!("{name} is one of Personas' own variables; channels cannot read it"),
            ));
        }
        self.review.check().map_err(|m| bad("review", &m))?;
        self.healing.check().map_err(|m| bad("healing", &m))?;
        self.budget.check().map_err(|m| bad("budget", &m))?;
        self.delivery.check().map_err(|m| bad("delivery", &m))?;
        if self.heartbeat_secs == 0 || self.stale_after_secs <= self.heartbeat_secs * 2 {
            return Err(bad(
                "stale_after_secs",
                "must exceed two heartbeats (heartbeat_secs >= 1)",
            ));
        }
        Ok(())
    }

    /// Per-run files (MCP configs), private to the user.
    pub fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    /// Working directories of personas' runs.
    pub fn workspaces_dir(&self) -> PathBuf {
        self.data_dir.join("workspaces")
    }

    pub fn inactivity_timeout(&self) -> Duration {
        Duration::from_secs(self.inactivity_timeout_secs)
    }

    pub fn cancel_grace(&self) -> Duration {
        Duration::from_secs(self.cancel_grace_secs)
    }

    /// A config for tests and embedding: defaults rooted at `data_dir`.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            config_file(dir.path()),
            "max_concurrent = 7\ninactivity_timeout_secs = 9\n",
        )
        .expect("write");
        let cfg = EngineConfig::load(dir.path(), |k| {
            (k == "PERSONAS_MAX_CONCURRENT").then(|| "3".into())
        })
        .expect("load");
        assert_eq!(cfg.max_concurrent, 3, "env wins over file");
        assert_eq!(cfg.inactivity_timeout_secs, 9, "file wins over default");
        assert_eq!(cfg.data_dir, dir.path());
    }

    #[test]
    fn bad_values_name_their_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = EngineConfig::load(dir.path(), |k| {
            (k == "PERSONAS_MAX_CONCURRENT").then(|| "many".into())
        })
        .expect_err("bad env");
        assert!(e.to_string().contains("PERSONAS_MAX_CONCURRENT"), "{e}");
        std::fs::write(config_file(dir.path()), "max_concurent = 7\n").expect("write");
        let e = EngineConfig::load(dir.path(), |_| None).expect_err("typo");
        assert!(e.to_string().contains("max_concurent"), "{e}");
        std::fs::write(config_file(dir.path()), "max_concurrent = 0\n").expect("write");
        let e = EngineConfig::load(dir.path(), |_| None).expect_err("zero");
        assert!(e.to_string().contains("max_concurrent"), "{e}");
        std::fs::write(
            config_file(dir.path()),
            "channel_env_allow = [\"SLACK_URL\", \"PERSONAS_VAULT_PASSPHRASE\"]\n",
        )
        .expect("write");
        let e = EngineConfig::load(dir.path(), |_| None).expect_err("reserved");
        assert!(
            e.to_string().contains("channel_env_allow")
                && e.to_string().contains("PERSONAS_VAULT_PASSPHRASE"),
            "{e}"
        );
    }
}
