//! Running one [`Assignment`] on this worker, through the same engine runner as the desktop:
//! the real Claude CLI, the same prompt assembly, protocol parsing, redaction, watchdogs, stop
//! and reap.
//!
//! Each run gets a store and data dir of its own under the worker's scratch dir
//! (`runs/<execution>/`), removed when the run ends: the persona file is imported there, the
//! execution is queued and run with [`Engine::run_queued`]. Nothing of one run (or tenant) is
//! left for the next.
//!
//! Credentials: the assignment carries them sealed with the deployment master key. They are
//! opened here, in memory, into the run's [`RunOptions`] — never into the run's store, a file,
//! or `/dev/shm` — handed to the CLI's environment by the runner, which also learns them for
//! redaction, and zeroed when the options are dropped at the end of the run. The tenant's own
//! Claude credential, when it supplied one, replaces the worker's.
//!
//! Output: the runner's line tap gives every stored line (numbered, redacted); it is
//! renumbered from the assignment's `first_seq` (a retried attempt continues its execution's
//! numbering) and handed to the caller as a [`WireLine`] right there, on the run's output path.

use crate::config::WorkerSettings;
use crate::seal;
use anyhow::Context;
use personas_cloud_api::wire::{Assignment, WireLine};
use personas_core::{ErrorClass, Execution, ExecutionOutcome, ExecutionStatus, Secret};
use personas_engine::Engine;
use personas_engine::config::EngineConfig;
use personas_engine::credentials::{self, SuppliedCredential};
use personas_engine::runner::RunOptions;
use personas_engine::vault::VaultOptions;
use personas_store::{NewExecution, NewLine, Store};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

/// Runs assignments; one per worker, shared by its runs.
pub struct Runner {
    scratch: PathBuf,
    /// Holds the scratch dir when the worker made it (removed on drop).
    _temp: Option<tempfile::TempDir>,
    claude_path: Option<PathBuf>,
    master_key: Zeroizing<[u8; 32]>,
    /// Extra variables for every run's CLI, as the local `[env]` table (tests point the CLI at
    /// their scripted API with it; a deployment sets the worker's own environment instead).
    cli_env: Vec<(String, String)>,
}

impl Runner {
    pub fn new(settings: &WorkerSettings) -> anyhow::Result<Runner> {
        let (scratch, temp) = match &settings.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("personas-worker-")
                    .tempdir()
                    .context("cannot create a scratch dir")?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        Ok(Runner {
            scratch,
            _temp: temp,
            claude_path: settings.claude_path.clone(),
            master_key: settings.master_key.clone(),
            cli_env: Vec::new(),
        })
    }

    /// Sets variables for every run's CLI (see the field's doc).
    pub fn with_cli_env(mut self, vars: Vec<(String, String)>) -> Runner {
        self.cli_env = vars;
        self
    }

    /// Runs `assignment` to its end and returns the runner's record of it, with the cloud's
    /// execution and persona ids. `cancel` stops the CLI and its tools. Every line goes to
    /// `lines` as it is stored, on the run's output path. A run that cannot start (a bad persona file, a credential that
    /// does not open) ends `failed` with the reason in its output, like a local one.
    pub async fn run(
        &self,
        assignment: Assignment,
        cancel: CancellationToken,
        lines: impl Fn(WireLine) + Send + Sync + 'static,
    ) -> Execution {
        let lines: Arc<dyn Fn(WireLine) + Send + Sync> = Arc::new(lines);
        let dir = self
            .scratch
            .join("runs")
            .join(assignment.execution_id.as_str());
        let result = self
            .run_in(&dir, &assignment, cancel, Arc::clone(&lines))
            .await;
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a run's scratch dir");
        }
        let mut execution = match result {
            Ok(execution) => execution,
            Err(e) => {
                let message = format!("the worker could not run this assignment: {e:#}");
                lines(WireLine {
                    seq: assignment.first_seq,
                    kind: personas_core::LineKind::Engine,
                    text: message.clone(),
                    at: chrono::Utc::now(),
                });
                not_started(&assignment, message)
            }
        };
        execution.id = assignment.execution_id.clone();
        execution.persona_id = assignment.persona_id.clone();
        execution
    }

    async fn run_in(
        &self,
        dir: &std::path::Path,
        a: &Assignment,
        cancel: CancellationToken,
        lines: Arc<dyn Fn(WireLine) + Send + Sync>,
    ) -> anyhow::Result<Execution> {
        let options = self.options(a)?;
        let mut spec = personas_core::persona_file::parse(&a.persona_text)
            .context("the persona file does not parse")?;
        if let Some(ms) = a.timeout_ms {
            spec.timeout_secs = spec.timeout_secs.min(ms.div_ceil(1000).max(1));
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let store = Store::open_in_dir(dir).context("cannot open the run's store")?;
        let mut config = EngineConfig::for_data_dir(dir);
        config.claude_path = self.claude_path.clone();
        config.env = self.cli_env.iter().cloned().collect();
        // No keychain, no passphrase: this store never holds a secret.
        let engine = Engine::with_vault(config, store, VaultOptions::default());
        let persona = engine
            .store()
            .personas()
            .create(&spec)
            .context("the persona does not import")?;
        let queued = engine
            .enqueue(NewExecution {
                persona_id: persona.id.clone(),
                trigger: a.trigger,
                trigger_ref: a.trigger_ref.clone(),
                input: a.input.clone(),
                priority: None,
                idempotency_key: None,
            })
            .await
            .context("cannot queue the run")?;
        let offset = a.first_seq - 1;
        let tap = move |line: &NewLine| {
            lines(WireLine {
                seq: line.seq + offset,
                kind: line.kind,
                text: line.text.clone(),
                at: chrono::DateTime::from_timestamp_millis(line.at_ms)
                    .unwrap_or_else(chrono::Utc::now),
            })
        };
        let options = RunOptions {
            line_tap: Some(Arc::new(tap)),
            ..options
        };
        let done = engine.run_queued(&queued.id, options, cancel).await;
        engine.shutdown().await;
        Ok(done?)
    }

    /// Opens the assignment's credentials in memory.
    fn options(&self, a: &Assignment) -> anyhow::Result<RunOptions> {
        let key = &self.master_key;
        let mut supplied = Vec::with_capacity(a.credentials.len());
        for c in &a.credentials {
            let aad = seal::credential_aad(&a.tenant_id, a.persona_id.as_str(), &c.name);
            let fields = seal::open_fields(key, &seal::from_base64(&c.sealed)?, &aad)
                .with_context(|| format!("credential {}", c.name))?;
            supplied.push(SuppliedCredential {
                name: c.name.clone(),
                kind: c.service_type.clone(),
                values: fields
                    .into_iter()
                    .map(|(k, v)| (k, Secret::new(v.expose())))
                    .collect(),
            });
        }
        let credentials = credentials::supplied(supplied).context("the credentials")?;
        let model_credential = match &a.model_credential {
            Some(m) => {
                let aad = seal::model_aad(&a.tenant_id, m.kind);
                let value = seal::open_value(key, &seal::from_base64(&m.sealed)?, &aad)
                    .context("the tenant's model credential")?;
                Some((m.kind.env_var().to_string(), Secret::new(value.expose())))
            }
            None => None,
        };
        Ok(RunOptions {
            credentials: Some(credentials),
            model_credential,
            line_tap: None,
        })
    }
}

/// The record of a run that never reached the CLI.
fn not_started(a: &Assignment, message: String) -> Execution {
    let now = chrono::Utc::now();
    let outcome = ExecutionOutcome::failed(ErrorClass::SpawnFailed, message);
    Execution {
        status: ExecutionStatus::Failed,
        trigger_ref: a.trigger_ref.clone(),
        input: a.input.clone(),
        error_class: outcome.error_class,
        error_message: outcome.error_message,
        output_lines: 1,
        finished_at: Some(now),
        ..Execution::queued(
            a.execution_id.clone(),
            a.persona_id.clone(),
            String::new(),
            a.trigger,
            now,
        )
    }
}
