//! The data dir's upkeep as operations: a consistent copy of the live store, the retention
//! policy applied now, and the vault's key rotation. Each runs in the process that holds the
//! data dir (the runtime, or the CLI's in-process API when none runs), so the store is never
//! written by two owners at once.

use super::access::vault_error;
use crate::Api;
use crate::error::{ApiError, Code};
use crate::ops::{Backup, BackupStore, GcResult, RotateVault, RunGc, VaultRotated};
use personas_core::Secret;
use personas_engine::vault::VaultError;
use personas_store::StoreError;
use personas_store::backup::BackupReport;
use personas_store::retention::GcReport;
use std::path::PathBuf;
use std::time::Instant;

/// SQLite's `auto_vacuum` mode in which freed pages go back to the disk as gc runs.
const INCREMENTAL_VACUUM: i64 = 2;

pub(crate) fn backup_view(r: BackupReport) -> Backup {
    Backup {
        path: r.path.display().to_string(),
        bytes: r.bytes,
        schema_version: r.schema_version,
        personas: r.personas,
        executions: r.executions,
    }
}

fn gc_view(
    removed: GcReport,
    vacuumed: bool,
    shrinks_by_itself: bool,
    elapsed_ms: u64,
) -> GcResult {
    GcResult {
        removed,
        vacuumed,
        shrinks_by_itself,
        elapsed_ms,
    }
}

impl Api {
    pub async fn backup_store(&self, req: BackupStore) -> Result<Backup, ApiError> {
        let path = PathBuf::from(req.path.trim());
        // Relative to what? The runtime's working directory is no one's guess to make.
        if !path.is_absolute() {
            return Err(ApiError::invalid(
                "path",
                format!("{:?} is not an absolute path", req.path),
            ));
        }
        let report = self
            .store(move |s| s.backup_to(&path))
            .await
            .map_err(|e| match e.code {
                // The store names its own argument; here it is the request's `path`.
                Code::Conflict => ApiError {
                    field: Some("path".into()),
                    ..e
                },
                _ => e,
            })?;
        tracing::info!(path = %report.path.display(), bytes = report.bytes, "store backed up");
        Ok(backup_view(report))
    }

    pub async fn run_gc(&self, req: RunGc) -> Result<GcResult, ApiError> {
        let (dry_run, vacuum) = (req.dry_run.unwrap_or(false), req.vacuum.unwrap_or(false));
        if dry_run && vacuum {
            return Err(ApiError::invalid(
                "vacuum",
                "a dry run removes nothing, so there is nothing to vacuum",
            ));
        }
        if vacuum && let Some(url) = self.host_url() {
            return Err(ApiError {
                code: Code::Conflict,
                message: format!(
                    "vacuum: rewrites the whole database and needs the runtime stopped (it is running at {url})"
                ),
                field: Some("vacuum".into()),
            });
        }
        let data_dir = self.config().data_dir.clone();
        let policy = self.config().retention.policy();
        let started = Instant::now();
        let (report, shrinks) = self
            .store(move |s| {
                let mut report = personas_engine::retention::gc(s, &data_dir, &policy, dry_run)?;
                if vacuum {
                    s.retention().vacuum()?;
                    report.bytes_after = s.retention().size();
                }
                let shrinks = s.retention().auto_vacuum()? == INCREMENTAL_VACUUM;
                Ok::<_, StoreError>((report, shrinks))
            })
            .await?;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(removed = report.total(), dry_run, vacuum, "gc ran");
        Ok(gc_view(report, vacuum, shrinks, elapsed_ms))
    }

    pub async fn rotate_vault(&self, req: RotateVault) -> Result<VaultRotated, ApiError> {
        let new_passphrase = req
            .new_passphrase
            .filter(|p| !p.is_empty())
            .map(Secret::new);
        let created = self
            .store(|s| {
                personas_engine::vault::Vault::status(s).map_err(|e| match e {
                    VaultError::Store(s) => s,
                    other => StoreError::Corrupt(other.to_string()),
                })
            })
            .await?
            .created;
        if !created {
            return Err(ApiError::new(
                Code::Conflict,
                "there is no vault yet: nothing to rotate (it is created with the first credential)",
            ));
        }
        let store = self.engine().store().clone();
        let cell = std::sync::Arc::clone(self.engine().vault());
        let (resealed, generation) =
            tokio::task::spawn_blocking(move || cell.rotate(&store, new_passphrase))
                .await
                .map_err(|e| ApiError::internal(format!("the rotation task failed: {e}")))?
                .map_err(|e| match e {
                    VaultError::WeakPassphrase { .. } => {
                        ApiError::invalid("new_passphrase", e.to_string())
                    }
                    other => vault_error(other),
                })?;
        tracing::info!(resealed, generation, "vault key rotated");
        Ok(VaultRotated {
            resealed: resealed as u64,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostInfo;
    use personas_engine::EngineConfig;
    use personas_engine::vault::VaultOptions;

    fn api(dir: &std::path::Path, url: Option<&str>) -> Api {
        let config = EngineConfig::load(dir, |_| None).expect("config");
        Api::open(
            config,
            VaultOptions::default(),
            HostInfo {
                url: url.map(String::from),
            },
        )
        .expect("api")
    }

    #[tokio::test]
    async fn a_backup_needs_a_new_absolute_path_and_names_the_field_when_not() {
        let dir = tempfile::tempdir().expect("dir");
        let api = api(dir.path(), None);
        let e = api
            .backup_store(BackupStore {
                path: "copy.db".into(),
            })
            .await
            .expect_err("relative");
        assert_eq!((e.code, e.field.as_deref()), (Code::Invalid, Some("path")));
        let path = dir.path().join("copy.db").display().to_string();
        let b = api
            .backup_store(BackupStore { path: path.clone() })
            .await
            .expect("backup");
        assert_eq!(b.path, path);
        assert!(b.bytes > 0 && b.schema_version > 0);
        let e = api
            .backup_store(BackupStore { path })
            .await
            .expect_err("exists");
        assert_eq!((e.code, e.field.as_deref()), (Code::Conflict, Some("path")));
    }

    #[tokio::test]
    async fn vacuum_is_refused_by_a_serving_runtime_and_runs_in_process() {
        let dir = tempfile::tempdir().expect("dir");
        let served = api(dir.path(), Some("http://127.0.0.1:9"));
        let vacuum = RunGc {
            dry_run: None,
            vacuum: Some(true),
        };
        let e = served.run_gc(vacuum.clone()).await.expect_err("serving");
        assert_eq!(
            (e.code, e.field.as_deref()),
            (Code::Conflict, Some("vacuum"))
        );
        let r = api(dir.path(), None)
            .run_gc(vacuum)
            .await
            .expect("in process");
        assert!(r.vacuumed && r.shrinks_by_itself && !r.removed.dry_run);
        let e = served
            .run_gc(RunGc {
                dry_run: Some(true),
                vacuum: Some(true),
            })
            .await
            .expect_err("both");
        assert_eq!(e.code, Code::Invalid);
    }

    #[tokio::test]
    async fn rotating_without_a_vault_is_a_conflict() {
        let dir = tempfile::tempdir().expect("dir");
        let e = api(dir.path(), None)
            .rotate_vault(RotateVault::default())
            .await
            .expect_err("no vault");
        assert_eq!(e.code, Code::Conflict);
        assert!(e.message.contains("no vault yet"), "{}", e.message);
    }
}
