//! Request and response types of what a persona may use: credentials (values write-only),
//! the vault, custom tools, persona links and permission templates.
//!
//! No response type here has a place for a secret value: a secret field's `value` is always
//! `null`, and requests carry values only inward.

use chrono::{DateTime, Utc};
use personas_core::{PermissionPolicy, PermissionTemplate};
// The call a tool makes, re-exported so front-ends can build one without the store.
pub use personas_store::ToolCall;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use ts_rs::TS;

// ---- credential types ----

/// One field of a credential type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CredentialTypeField {
    pub name: String,
    pub description: String,
    /// Stored encrypted, never shown again, redacted from run output.
    pub secret: bool,
    /// A value must be given (no default applies).
    pub required: bool,
    /// The environment variable a run gets.
    pub env: String,
    /// Used when no value is given.
    pub default: Option<String>,
}

/// A kind of credential (connector template).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CredentialType {
    pub kind: String,
    pub label: String,
    pub fields: Vec<CredentialTypeField>,
    /// How `test_credential` checks it; `None` when no harmless check exists.
    pub check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CredentialTypeList {
    pub types: Vec<CredentialType>,
}

// ---- credentials ----

/// One field of a stored credential. `value` is never a secret's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CredentialField {
    pub field: String,
    pub description: String,
    /// The environment variable a run gets.
    pub variable: String,
    pub secret: bool,
    pub required: bool,
    /// A value is stored (or the type's default applies).
    pub set: bool,
    /// A non-secret field's value (stored, else the default); always `null` for a secret.
    pub value: Option<String>,
    /// `value` is the type's default.
    pub default: bool,
}

/// The last health check of a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct LastCheck {
    pub ok: bool,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// A stored credential as it may be shown: names, type, variables, non-secret values, health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Credential {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// The type's label (empty when the type is unknown to this version).
    pub label: String,
    pub fields: Vec<CredentialField>,
    pub last_check: Option<LastCheck>,
    /// Names of the personas it is linked to.
    pub personas: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CredentialList {
    pub credentials: Vec<Credential>,
}

/// Names a credential by name (case-insensitive) or id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CredentialRef {
    pub credential: String,
}

/// A new credential. Values are write-only: they are sealed into the vault and never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CreateCredential {
    pub name: String,
    /// The credential type (`list_credential_types`).
    pub kind: String,
    /// Field → value.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Field → environment variable, where the type's variable name is not wanted.
    #[serde(default)]
    #[ts(optional)]
    pub env: Option<BTreeMap<String, String>>,
}

/// Changes a credential. `fields` is the new set of values: a non-secret field left out (or
/// empty) is removed; a secret field left out (or empty) keeps its stored value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct UpdateCredential {
    pub credential: String,
    /// A new name.
    #[serde(default)]
    #[ts(optional)]
    pub name: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Replaces the variable renames when given.
    #[serde(default)]
    #[ts(optional)]
    pub env: Option<BTreeMap<String, String>>,
    /// Optional secret fields to remove.
    #[serde(default)]
    #[ts(optional)]
    pub clear: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct DeleteCredential {
    pub credential: String,
    /// Also unlink it from the personas that use it (refused otherwise).
    #[serde(default)]
    #[ts(optional)]
    pub force: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct TestCredential {
    pub credential: String,
    /// Seconds to wait for the service (default 10, at most 300).
    #[serde(default)]
    #[ts(optional)]
    pub timeout_secs: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    Ok,
    Failed,
    /// No check exists for this credential (nothing recorded).
    Unsupported,
}

/// A health check's result; `credential` shows what was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CredentialTest {
    pub status: TestStatus,
    pub detail: String,
    pub credential: Credential,
}

// ---- vault ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VaultMode {
    /// The key is in the OS keychain.
    Keychain,
    /// The key is wrapped under `PERSONAS_VAULT_PASSPHRASE`.
    Passphrase,
    /// No keychain and no passphrase: secrets cannot be stored.
    None,
}

/// Where the vault's key is and whether credentials can be stored now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct VaultStatus {
    /// Where the key is (or, before the first credential, would be).
    pub mode: VaultMode,
    pub created: bool,
    pub generation: Option<i64>,
    pub rotated_at: Option<DateTime<Utc>>,
    /// Credentials can be stored and opened now.
    pub can_store: bool,
    /// Why not, when not.
    pub problem: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    pub credentials: u64,
}

// ---- tools ----

/// A custom tool and where it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Tool {
    pub id: String,
    pub name: String,
    pub description: String,
    #[ts(type = "unknown")]
    pub input_schema: Value,
    pub call: ToolCall,
    /// How the persona's prompt tells the agent to call it.
    pub usage: String,
    /// Names of the personas it is attached to.
    pub personas: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ToolList {
    pub tools: Vec<Tool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct CreateTool {
    pub name: String,
    /// What it does; the agent reads this.
    pub description: String,
    /// A command line, or an HTTP request whose headers and body may use `$VARIABLE`s of
    /// linked credentials (never values).
    pub call: ToolCall,
    /// JSON Schema of the input (default `{"type": "object"}`).
    #[serde(default)]
    #[ts(optional, type = "unknown")]
    pub input_schema: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct ToolRef {
    pub tool: String,
}

// ---- persona links and permission templates ----

/// The credentials and tools a persona is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PersonaLinks {
    pub persona: String,
    /// Credential names.
    pub credentials: Vec<String>,
    /// Tool names.
    pub tools: Vec<String>,
}

/// A ready-made permission policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PermissionTemplateInfo {
    pub id: PermissionTemplate,
    pub label: String,
    pub description: String,
    pub policy: PermissionPolicy,
    /// Shown before the template is applied (full trust).
    pub warning: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct PermissionTemplateList {
    pub templates: Vec<PermissionTemplateInfo>,
}
