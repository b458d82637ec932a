//! What a front-end does to a data dir that no process holds, and that no operation can do
//! because it needs the data dir to itself: putting a backup into an empty one.
//!
//! The caller makes sure no runtime holds the data dir (the CLI checks its instance lock);
//! these functions then own it for their duration.

use crate::api::upkeep::backup_view;
use crate::error::{ApiError, Code};
use crate::ops::Restored;
use personas_store::Store;
use personas_store::backup::{self, RestoreError};
use std::path::Path;

/// Puts the backup `from` into the empty `data_dir` (checked first: a Personas database,
/// intact, not from a newer version), then opens it so an older backup's schema is migrated
/// up to date. Blocking.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Restored, ApiError> {
    let report = backup::restore(from, data_dir).map_err(|e| match e {
        RestoreError::Store(s) => ApiError::internal(s.to_string()),
        RestoreError::NotEmpty { .. } => ApiError {
            code: Code::Conflict,
            message: e.to_string(),
            field: Some("data_dir".into()),
        },
        other => ApiError::invalid("file", other.to_string()),
    })?;
    let store = Store::open_in_dir(data_dir).map_err(|e| {
        ApiError::internal(format!(
            "restored into {} but cannot open it: {e}",
            data_dir.display()
        ))
    })?;
    let health = store.health()?;
    Ok(Restored {
        restored: backup_view(report),
        data_dir: data_dir.display().to_string(),
        schema_version: health.schema_version,
    })
}
