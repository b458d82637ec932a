//! Store errors. `NotFound` and `Conflict` are for users (they name what is missing or clashing);
//! the rest are infrastructure failures.

use personas_core::ValidationError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found: {key}")]
    NotFound { what: &'static str, key: String },
    #[error("{field}: {message}")]
    Conflict { field: String, message: String },
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("cannot open the store at {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store migration failed: {0}")]
    Migration(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),
}

impl StoreError {
    pub fn not_found(what: &'static str, key: impl Into<String>) -> Self {
        StoreError::NotFound {
            what,
            key: key.into(),
        }
    }

    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Conflict {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True for errors caused by the caller's input rather than the machine.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. } | StoreError::Conflict { .. } | StoreError::Invalid(_)
        )
    }
}

/// Reads a JSON column, reporting damage instead of panicking or guessing.
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(
    column: &str,
    text: &str,
) -> Result<T, rusqlite::Error> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("column {column}: {e}").into(),
        )
    })
}

/// Parses the text of a column holding one of a closed set of names (statuses, kinds). An
/// unknown name (a newer runtime's row, a hand edit) is an error naming the column and the
/// value, never a panic or a guess.
pub(crate) fn enum_col<T: std::str::FromStr<Err = String>>(
    column: &str,
    text: &str,
) -> Result<T, rusqlite::Error> {
    text.parse::<T>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("column {column}: {e}").into(),
        )
    })
}

/// Reads column `idx` (named `column` in errors) of a row as one of a closed set of names.
pub(crate) fn enum_at<T: std::str::FromStr<Err = String>>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    column: &str,
) -> Result<T, rusqlite::Error> {
    enum_col(column, &r.get::<_, String>(idx)?)
}

/// [`enum_at`] for a nullable column.
pub(crate) fn opt_enum_at<T: std::str::FromStr<Err = String>>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    column: &str,
) -> Result<Option<T>, rusqlite::Error> {
    r.get::<_, Option<String>>(idx)?
        .map(|text| enum_col(column, &text))
        .transpose()
}
