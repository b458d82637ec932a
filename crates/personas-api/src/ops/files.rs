//! Request and response types of persona files: the YAML/JSON text users share, written by
//! `export_persona` and read back by `import_persona` (never with more power than the importer
//! agreed to).

use personas_core::Persona;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// The syntax of a persona file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileSyntax {
    Yaml,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ExportPersona {
    /// Persona id or name.
    pub persona: String,
    /// YAML when absent.
    #[serde(default)]
    #[ts(optional)]
    pub syntax: Option<FileSyntax>,
}

/// A persona as a shareable file. The personas it may start are named (ids differ between
/// machines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PersonaFileText {
    pub name: String,
    pub syntax: FileSyntax,
    pub text: String,
}

/// Creates (or with `replace`, updates) a persona from a file's text. What the file would grant
/// beyond what the persona holds (a broader permission mode, new allowed tools, lifted denials,
/// new personas it may start, its credentials for new instructions; a new persona counts as
/// granting everything above the default policy) is refused — `invalid` on field `grant`,
/// naming each grant, nothing changed — unless `grant` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ImportPersona {
    pub text: String,
    /// Update the persona of the same name instead of refusing.
    #[serde(default)]
    #[ts(optional)]
    pub replace: Option<bool>,
    /// Apply what the file grants instead of refusing.
    #[serde(default)]
    #[ts(optional)]
    pub grant: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ImportedPersona {
    pub persona: Persona,
    /// What the import granted (empty when nothing beyond what it held).
    pub granted: Vec<String>,
    /// Personas the file allows starting that do not exist here: left out (granting less than
    /// the file asks is always safe).
    pub unknown_targets: Vec<String>,
}
