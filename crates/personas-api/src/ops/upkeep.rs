//! Request and response types of the data dir's upkeep: a consistent copy of the store
//! (`backup_store`), the retention policy applied now (`run_gc`), the vault's key rotation
//! (`rotate_vault`), and what a restore into an empty data dir reports (a local step, see
//! [`crate::local`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub use personas_store::retention::GcReport;

/// Copies the store to a new file while it is in use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct BackupStore {
    /// Absolute path of a file that does not exist yet, on the runtime's machine. It is
    /// written with mode 0600 (it holds everything the store holds).
    pub path: String,
}

/// What a backup (or a restore) holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Backup {
    /// The file written (or read).
    pub path: String,
    pub bytes: u64,
    /// The store's schema version in the copy.
    pub schema_version: i64,
    pub personas: i64,
    pub executions: i64,
}

/// Applies the `[retention]` policy of config.toml now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct RunGc {
    /// Count what would be removed; remove nothing.
    #[serde(default)]
    #[ts(optional)]
    pub dry_run: Option<bool>,
    /// Afterwards rewrite the whole database (VACUUM). Refused (`conflict`) by a runtime that
    /// serves the data dir: it needs the database to itself.
    #[serde(default)]
    #[ts(optional)]
    pub vacuum: Option<bool>,
}

/// What a gc pass removed (or, for a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct GcResult {
    /// What was removed (or would be): the same fields a prune reports.
    #[serde(flatten)]
    #[ts(flatten)]
    pub removed: GcReport,
    /// The database was rewritten (`vacuum`).
    pub vacuumed: bool,
    /// The database gives freed pages back to the disk as it goes (made by this version, or
    /// vacuumed once); when false, only a `vacuum` shrinks it.
    pub shrinks_by_itself: bool,
    /// How long the pass took.
    pub elapsed_ms: u64,
}

/// Re-encrypts every sealed value under a new random key (all or nothing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct RotateVault {
    /// For a passphrase vault: wrap the new key under this passphrase from now on (the
    /// runtime needs it at its next start). Absent: the current passphrase (or keychain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub new_passphrase: Option<String>,
}

/// The outcome of a key rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct VaultRotated {
    /// Values re-encrypted.
    pub resealed: u64,
    /// The key's generation now.
    pub generation: i64,
}

/// A backup put into an empty data dir.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Restored {
    pub restored: Backup,
    pub data_dir: String,
    /// The schema version after migrating an older backup up to date.
    pub schema_version: i64,
}
