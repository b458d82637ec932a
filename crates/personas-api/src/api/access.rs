//! The operations on what a persona may use: credentials and the vault, custom tools, persona
//! links and permission templates. The logic is the engine's (`credentials`, `vault`,
//! `tools`) and the store's, shared with the CLI; this module turns it into wire types and
//! errors that name the request field.
//!
//! Secret values arrive in requests, go straight into [`Secret`]s and from there only into the
//! vault. Nothing here logs a request, and no response type has a place for a secret value.

use super::Api;
use crate::error::{ApiError, Code};
use crate::ops::*;
use personas_core::connector::{self, HealthCheck, TcpTarget};
use personas_core::{PermissionTemplate, PersonaSpec, Secret, ValidationError};
use personas_engine::credentials::{
    self, CredentialError, CredentialInput, CredentialUpdate, Unlock, check,
};
use personas_engine::vault::{self as vault_mod, KeyMode, VaultError};
use personas_store::{CredentialRow, NewTool, Store, StoreError, ToolDefinition};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_TEST_TIMEOUT_SECS: f64 = 10.0;
const MAX_TEST_TIMEOUT_SECS: f64 = 300.0;

/// Engine field names → the request fields they come from (`field token` → `fields.token`).
fn wire_field(field: &str) -> String {
    if let Some(f) = field.strip_prefix("field ") {
        format!("fields.{f}")
    } else if let Some(f) = field.strip_prefix("env ") {
        format!("env.{f}")
    } else if field.starts_with("clear ") {
        "clear".into()
    } else if field == "type" {
        "kind".into()
    } else {
        field.to_string()
    }
}

fn invalid(v: ValidationError) -> ApiError {
    ApiError::invalid(wire_field(&v.field), v.message)
}

pub(super) fn vault_error(e: VaultError) -> ApiError {
    let hint = vault_mod::fix_hint(&e);
    match e {
        VaultError::Store(s) => s.into(),
        VaultError::Damaged { .. } | VaultError::Corrupt(_) | VaultError::Cipher(_) => {
            ApiError::internal(e.to_string())
        }
        e => ApiError {
            code: Code::Unavailable,
            message: match hint {
                Some(h) => format!("{e}. To fix it: {h}"),
                None => e.to_string(),
            },
            field: Some("vault".into()),
        },
    }
}

fn credential_error(e: CredentialError) -> ApiError {
    match e {
        CredentialError::Invalid(v) => invalid(v),
        CredentialError::Store(StoreError::Invalid(v)) => invalid(v),
        CredentialError::Store(s) => s.into(),
        CredentialError::Vault(v) => vault_error(v),
    }
}

/// A stored credential as the API shows it.
fn credential_view(store: &Store, row: CredentialRow) -> Result<Credential, StoreError> {
    let fields = credentials::field_states(store, &row)?
        .into_iter()
        .map(|f| CredentialField {
            field: f.field,
            description: f.description,
            variable: f.variable,
            secret: f.secret,
            required: f.required,
            set: f.set,
            value: f.value,
            default: f.default,
        })
        .collect();
    let personas = store.credentials().linked_personas(&row.id)?;
    let last_check = match (row.last_checked_at, row.last_check_ok) {
        (Some(at), Some(ok)) => Some(LastCheck {
            ok,
            error: row.last_check_error.clone(),
            at,
        }),
        _ => None,
    };
    Ok(Credential {
        label: connector::template(&row.kind)
            .map(|t| t.label.to_string())
            .unwrap_or_default(),
        id: row.id,
        name: row.name,
        kind: row.kind,
        fields,
        last_check,
        personas,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn tool_view(store: &Store, t: ToolDefinition) -> Result<Tool, StoreError> {
    let personas = store.tools().attached_personas(&t.id)?;
    let usage = personas_engine::tools::doc(&t).usage;
    Ok(Tool {
        id: t.id,
        name: t.name,
        description: t.description,
        input_schema: t.input_schema,
        call: t.call,
        usage,
        personas,
        created_at: t.created_at,
    })
}

fn check_text(check: &HealthCheck) -> Option<String> {
    match check {
        HealthCheck::None => None,
        HealthCheck::Http(h) => Some(format!("{} {}", h.method, h.url)),
        HealthCheck::Tcp(TcpTarget::HostPort { host, port }) => {
            Some(format!("TCP connection to {{{host}}}:{{{port}}}"))
        }
        HealthCheck::Tcp(TcpTarget::Url { field, .. }) => {
            Some(format!("TCP connection to the host in {{{field}}}"))
        }
    }
}

fn secrets(values: BTreeMap<String, String>) -> BTreeMap<String, Secret> {
    values
        .into_iter()
        .map(|(k, v)| (k, Secret::new(v)))
        .collect()
}

/// The policy a persona gets: the template's, with the spec's own rules added.
pub(super) fn with_template(mut spec: PersonaSpec, t: Option<PermissionTemplate>) -> PersonaSpec {
    if let Some(t) = t {
        let mut p = t.policy();
        for r in spec.permissions.allow.drain(..) {
            if !p.allow.contains(&r) {
                p.allow.push(r);
            }
        }
        for r in spec.permissions.deny.drain(..) {
            if !p.deny.contains(&r) {
                p.deny.push(r);
            }
        }
        // Templates are about tools: the personas it may start stay as they are.
        p.allow_personas = std::mem::take(&mut spec.permissions.allow_personas);
        spec.permissions = p;
    }
    spec
}

fn template_info(t: PermissionTemplate) -> PermissionTemplateInfo {
    let (label, description, warning) = match t {
        PermissionTemplate::ReadOnly => (
            "Read-only",
            "Read and search files; every other tool is denied (and each attempt recorded).",
            None,
        ),
        PermissionTemplate::EditInWorkspace => (
            "Edit in workspace",
            "Read, search and edit files in the persona's working directory; no web access.",
            None,
        ),
        PermissionTemplate::FullTrust => (
            "Full trust",
            "Every tool runs without any check (bypassPermissions).",
            Some(
                "Full trust lets this persona run any shell command and write any file you can \
                 write, without asking. Give it only to a persona whose instructions and inputs \
                 you trust completely.",
            ),
        ),
    };
    PermissionTemplateInfo {
        id: t,
        label: label.into(),
        description: description.into(),
        policy: t.policy(),
        warning: warning.map(String::from),
    }
}

impl Api {
    /// Runs blocking store work whose errors are already API errors.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.inner.engine.store().clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
    }

    /// Runs blocking credential work with the engine's vault (unlocked once per process).
    /// When another process rotated the key since, it unlocks again and retries once.
    pub(crate) async fn with_vault<T: Send + 'static>(
        &self,
        f: impl Fn(&Store, Unlock<'_>) -> Result<T, CredentialError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.inner.engine.store().clone();
        let cell = Arc::clone(self.inner.engine.vault());
        tokio::task::spawn_blocking(move || {
            let attempt = || f(&store, &mut || cell.get_or_create(&store));
            match attempt() {
                Err(CredentialError::Vault(VaultError::Stale)) => {
                    cell.invalidate();
                    attempt()
                }
                other => other,
            }
        })
        .await
        .map_err(|e| ApiError::internal(format!("credential task failed: {e}")))?
        .map_err(credential_error)
    }

    /// Resolves credential and tool names for a persona (before anything is stored): each
    /// must exist, and no two credentials may set the same variable.
    pub(super) async fn resolve_links(
        &self,
        credentials: Option<Vec<String>>,
        tools: Option<Vec<String>>,
    ) -> Result<personas_store::PersonaLinks, ApiError> {
        self.blocking(move |s| {
            let credentials = match credentials {
                None => None,
                Some(names) => {
                    let mut rows: Vec<CredentialRow> = Vec::new();
                    for n in &names {
                        let row = s.credentials().find(n).map_err(|e| match e {
                            StoreError::NotFound { .. } => ApiError::invalid(
                                "credentials",
                                format!("no credential named {n:?}"),
                            ),
                            e => e.into(),
                        })?;
                        if !rows.iter().any(|r| r.id == row.id) {
                            rows.push(row);
                        }
                    }
                    credentials::check_env_clashes(s, &rows).map_err(credential_error)?;
                    Some(rows.into_iter().map(|r| r.id).collect())
                }
            };
            let tools = match tools {
                None => None,
                Some(names) => {
                    let mut ids: Vec<String> = Vec::new();
                    for n in &names {
                        let t = s.tools().find(n).map_err(|e| match e {
                            StoreError::NotFound { .. } => {
                                ApiError::invalid("tools", format!("no tool named {n:?}"))
                            }
                            e => e.into(),
                        })?;
                        if !ids.contains(&t.id) {
                            ids.push(t.id);
                        }
                    }
                    Some(ids)
                }
            };
            Ok(personas_store::PersonaLinks { credentials, tools })
        })
        .await
    }

    pub async fn list_credential_types(&self, _: Empty) -> Result<CredentialTypeList, ApiError> {
        Ok(CredentialTypeList {
            types: connector::TEMPLATES
                .iter()
                .map(|t| CredentialType {
                    kind: t.kind.into(),
                    label: t.label.into(),
                    fields: t
                        .fields
                        .iter()
                        .map(|f| CredentialTypeField {
                            name: f.name.into(),
                            description: f.description.into(),
                            secret: f.secret,
                            required: f.required && f.default.is_none(),
                            env: f.env.into(),
                            default: f.default.map(String::from),
                        })
                        .collect(),
                    check: check_text(&t.check),
                })
                .collect(),
        })
    }

    pub async fn list_credentials(&self, _: Empty) -> Result<CredentialList, ApiError> {
        self.blocking(|s| {
            let rows = s.credentials().list()?;
            let credentials = rows
                .into_iter()
                .map(|r| credential_view(s, r))
                .collect::<Result<_, _>>()?;
            Ok(CredentialList { credentials })
        })
        .await
    }

    pub async fn get_credential(&self, req: CredentialRef) -> Result<Credential, ApiError> {
        self.blocking(move |s| Ok(credential_view(s, s.credentials().find(&req.credential)?)?))
            .await
    }

    pub async fn create_credential(&self, req: CreateCredential) -> Result<Credential, ApiError> {
        let input = CredentialInput {
            name: req.name,
            kind: req.kind,
            fields: secrets(req.fields),
            env_overrides: req.env.unwrap_or_default(),
        };
        let row = self
            .with_vault(move |s, unlock| credentials::add_with(s, &input, unlock))
            .await?;
        tracing::info!(credential = %row.name, kind = %row.kind, "credential stored");
        self.blocking(move |s| Ok(credential_view(s, row)?)).await
    }

    pub async fn update_credential(&self, req: UpdateCredential) -> Result<Credential, ApiError> {
        let change = CredentialUpdate {
            name: req.name,
            fields: secrets(req.fields),
            env_overrides: req.env,
            clear: req.clear.unwrap_or_default(),
        };
        let credential = req.credential;
        let row = self
            .with_vault(move |s, unlock| {
                credentials::update(s, &credential, change.clone(), unlock)
            })
            .await?;
        tracing::info!(credential = %row.name, "credential updated");
        self.blocking(move |s| Ok(credential_view(s, row)?)).await
    }

    pub async fn delete_credential(&self, req: DeleteCredential) -> Result<Credential, ApiError> {
        let view = self
            .blocking(move |s| {
                let view = credential_view(s, s.credentials().find(&req.credential)?)?;
                s.credentials()
                    .remove(&view.id, req.force.unwrap_or(false))
                    .map_err(|e| match e {
                        StoreError::Conflict { message, .. } => ApiError {
                            code: Code::Conflict,
                            message: message.replace("or pass --force", "or delete it with force"),
                            field: Some("force".into()),
                        },
                        e => e.into(),
                    })?;
                Ok(view)
            })
            .await?;
        tracing::info!(credential = %view.name, "credential deleted");
        Ok(view)
    }

    pub async fn test_credential(&self, req: TestCredential) -> Result<CredentialTest, ApiError> {
        let secs = req.timeout_secs.unwrap_or(DEFAULT_TEST_TIMEOUT_SECS);
        if !(secs.is_finite() && secs > 0.0 && secs <= MAX_TEST_TIMEOUT_SECS) {
            return Err(ApiError::invalid(
                "timeout_secs",
                format!("must be more than 0 and at most {MAX_TEST_TIMEOUT_SECS}"),
            ));
        }
        let name = req.credential;
        let opened = self
            .with_vault(move |s, unlock| credentials::open_named(s, &name, unlock))
            .await?;
        let outcome = check::run(&opened, Duration::from_secs_f64(secs)).await;
        let (status, detail) = match &outcome {
            check::CheckOutcome::Ok { detail } => (TestStatus::Ok, detail.clone()),
            check::CheckOutcome::Failed { error } => (TestStatus::Failed, error.clone()),
            check::CheckOutcome::Unsupported { reason } => {
                (TestStatus::Unsupported, reason.clone())
            }
        };
        tracing::info!(credential = %opened.row.name, status = ?status, "credential checked");
        let credential = self
            .blocking(move |s| {
                let row = check::record(s, &opened, &outcome)?;
                Ok(credential_view(s, row)?)
            })
            .await?;
        Ok(CredentialTest {
            status,
            detail,
            credential,
        })
    }

    pub async fn vault_status(&self, _: Empty) -> Result<VaultStatus, ApiError> {
        let cell = Arc::clone(self.inner.engine.vault());
        self.blocking(move |s| {
            let r = cell.readiness(s).map_err(vault_error)?;
            let credentials = s.credentials().list()?.len() as u64;
            Ok(VaultStatus {
                mode: match r.mode {
                    KeyMode::Keychain => VaultMode::Keychain,
                    KeyMode::Passphrase => VaultMode::Passphrase,
                    KeyMode::None => VaultMode::None,
                },
                created: r.created,
                generation: r.generation,
                rotated_at: r.rotated_at,
                can_store: r.ready,
                problem: r.problem,
                hint: r.hint,
                credentials,
            })
        })
        .await
    }

    pub async fn list_tools(&self, _: Empty) -> Result<ToolList, ApiError> {
        self.blocking(|s| {
            let tools = s
                .tools()
                .list()?
                .into_iter()
                .map(|t| tool_view(s, t))
                .collect::<Result<_, _>>()?;
            Ok(ToolList { tools })
        })
        .await
    }

    pub async fn create_tool(&self, req: CreateTool) -> Result<Tool, ApiError> {
        let new = NewTool {
            name: req.name,
            description: req.description,
            input_schema: req
                .input_schema
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            call: req.call,
        };
        self.blocking(move |s| Ok(tool_view(s, s.tools().create(&new)?)?))
            .await
    }

    pub async fn get_tool(&self, req: ToolRef) -> Result<Tool, ApiError> {
        self.blocking(move |s| Ok(tool_view(s, s.tools().find(&req.tool)?)?))
            .await
    }

    pub async fn delete_tool(&self, req: ToolRef) -> Result<Tool, ApiError> {
        self.blocking(move |s| {
            let view = tool_view(s, s.tools().find(&req.tool)?)?;
            s.tools().remove(&view.id)?;
            Ok(view)
        })
        .await
    }

    pub async fn get_persona_links(&self, req: PersonaRef) -> Result<PersonaLinks, ApiError> {
        let p = self.persona(req.persona).await?;
        self.blocking(move |s| {
            Ok(PersonaLinks {
                credentials: s
                    .credentials()
                    .of_persona(&p.id)?
                    .into_iter()
                    .map(|c| c.name)
                    .collect(),
                tools: s
                    .tools()
                    .of_persona(&p.id)?
                    .into_iter()
                    .map(|t| t.name)
                    .collect(),
                persona: p.id.to_string(),
            })
        })
        .await
    }

    pub async fn list_permission_templates(
        &self,
        _: Empty,
    ) -> Result<PermissionTemplateList, ApiError> {
        Ok(PermissionTemplateList {
            templates: PermissionTemplate::ALL
                .into_iter()
                .map(template_info)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_field_names_become_request_fields() {
        assert_eq!(wire_field("field token"), "fields.token");
        assert_eq!(wire_field("env token"), "env.token");
        assert_eq!(wire_field("type"), "kind");
        assert_eq!(wire_field("clear url"), "clear");
        assert_eq!(wire_field("name"), "name");
    }

    #[test]
    fn a_template_replaces_the_mode_and_keeps_added_rules() {
        let mut spec = PersonaSpec::new("A", "do");
        spec.permissions.allow = vec!["Bash(git *)".into(), "Read".into()];
        let s = with_template(spec, Some(PermissionTemplate::ReadOnly));
        assert_eq!(s.permissions.mode, personas_core::PermissionMode::DontAsk);
        assert_eq!(
            s.permissions.allow,
            ["Read", "Glob", "Grep", "LS", "Bash(git *)"]
        );
        let full = template_info(PermissionTemplate::FullTrust);
        assert!(full.warning.is_some());
    }
}
