//! `personas backup` / `personas restore`: a consistent copy of the live database, and putting
//! one back into an empty data dir.
//!
//! The copy uses SQLite's online backup API in a single step: the step reads the source inside
//! one read transaction, so the copy is one committed state even while the runtime writes (WAL
//! readers do not block writers, and a single step never restarts because of them). It is
//! written to a private temporary file next to the destination and renamed into place, so a
//! failed backup never leaves a half-written file under the name asked for.

use crate::{DB_FILE, StoreError, files};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a backup or restore copied.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub schema_version: i64,
    pub personas: i64,
    pub executions: i64,
}

/// Why a restore was refused.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "{dir} is not empty ({found}); restore only into an empty data dir — choose a new --data-dir, or move the current one away"
    )]
    NotEmpty { dir: PathBuf, found: String },
    #[error("{path} is not a Personas backup: {why}")]
    NotPersonas { path: PathBuf, why: String },
    #[error("{path} is damaged (integrity check: {report}); try an older backup")]
    Damaged { path: PathBuf, report: String },
    #[error(
        "{path} was made by a newer Personas (schema v{found}; this one knows up to v{known}); upgrade first"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, source }
}

/// The temporary name a copy is written under before it is renamed to `dest`.
fn partial_name(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Copies `from` (an open connection) into a new private file `dest` with the online backup
/// API in one step, retrying while another connection holds a lock that blocks reading.
fn copy(from: &Connection, dest: &Path) -> Result<(), StoreError> {
    let tmp = partial_name(dest);
    let _ = std::fs::remove_file(&tmp);
    files::create_private_file(&tmp).map_err(io(&tmp))?;
    let result = (|| {
        let mut to = Connection::open(&tmp)?;
        {
            let backup = rusqlite::backup::Backup::new(from, &mut to)?;
            let mut waits = 0;
            loop {
                match backup.step(-1)? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                        waits += 1;
                        if waits > 2_000 {
                            return Err(StoreError::Corrupt(
                                "the database stayed locked for 10 s".into(),
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    _ => {}
                }
            }
        }
        // One self-contained file: no WAL beside it to lose when it is copied elsewhere.
        to.pragma_update(None, "journal_mode", "DELETE")?;
        drop(to);
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, dest).map_err(io(dest))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Facts about a Personas database file, or why it is not one.
fn inspect(path: &Path) -> Result<BackupReport, RestoreError> {
    let not = |why: String| RestoreError::NotPersonas {
        path: path.to_path_buf(),
        why,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not(e.to_string()))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| not(e.to_string()))?;
    if integrity != "ok" {
        return Err(RestoreError::Damaged {
            path: path.to_path_buf(),
            report: integrity,
        });
    }
    let count = |table: &str| -> Result<i64, RestoreError> {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .map_err(|_| not(format!("it has no {table} table")))
    };
    let schema_version: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .map_err(|_| not("it has no schema history".into()))?;
    let known = crate::latest_schema_version();
    if schema_version > known {
        return Err(RestoreError::TooNew {
            path: path.to_path_buf(),
            found: schema_version,
            known,
        });
    }
    Ok(BackupReport {
        path: path.to_path_buf(),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        schema_version,
        personas: count("personas")?,
        executions: count("executions")?,
    })
}

impl crate::Store {
    /// Writes a consistent copy of the live database to `dest` (mode 0600). Refuses to
    /// overwrite an existing file.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        if dest.exists() {
            return Err(StoreError::conflict(
                "FILE",
                format!("{} already exists; choose a new file name", dest.display()),
            ));
        }
        let conn = self.conn()?;
        copy(&conn, dest)?;
        drop(conn);
        inspect(dest).map_err(|e| match e {
            RestoreError::Store(s) => s,
            other => StoreError::Corrupt(other.to_string()),
        })
    }
}

/// Entries a data dir may hold and still count as empty: settings, not data.
const HARMLESS: &[&str] = &["config.toml", "api-token", "daemon.lock"];

/// Restores the backup `from` into the empty data dir `data_dir` (created if missing):
/// checks it is an intact Personas database no newer than this build, copies it in, and leaves
/// it for [`crate::Store::open_in_dir`] to migrate. Refuses a data dir holding anything else.
pub fn restore(from: &Path, data_dir: &Path) -> Result<BackupReport, RestoreError> {
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        let mut found: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !HARMLESS.contains(&n.as_str()))
            .collect();
        found.sort();
        if !found.is_empty() {
            let more = if found.len() > 3 {
                format!(" and {} more", found.len() - 3)
            } else {
                String::new()
            };
            found.truncate(3);
            return Err(RestoreError::NotEmpty {
                dir: data_dir.to_path_buf(),
                found: format!("it holds {}{more}", found.join(", ")),
            });
        }
    }
    inspect(from)?;
    files::create_private_dir(data_dir).map_err(io(data_dir))?;
    let source = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::from)?;
    let dest = data_dir.join(DB_FILE);
    copy(&source, &dest)?;
    // The copy is checked again: what is restored is what was verified.
    inspect(&dest).inspect_err(|_| {
        let _ = std::fs::remove_file(&dest);
    })
}
