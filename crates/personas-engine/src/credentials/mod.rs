//! Credentials: checking what a user gives against the connector template, sealing it into the
//! vault, and resolving a persona's credentials for one run (environment, prompt docs, redactor).
//!
//! Secret values exist in plaintext only inside [`Secret`]s: between the user's input and the
//! cipher, and between the cipher and the child process's environment.

pub mod check;

use crate::vault::{Vault, VaultError, VaultOptions};
use personas_core::connector::{self, ConnectorTemplate};
use personas_core::prompt::CredentialDoc;
use personas_core::redact::Redactor;
use personas_core::{PersonaId, Secret, ValidationError, validate};
use personas_store::{CredentialRow, NewCredential, Store, StoreError, StoredField};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CredentialError {
    pub fn is_user_error(&self) -> bool {
        match self {
            CredentialError::Invalid(_) => true,
            CredentialError::Vault(v) => v.is_user_error(),
            CredentialError::Store(s) => s.is_user_error(),
        }
    }
}

/// A credential as a user gives it.
#[derive(Debug, Clone)]
pub struct CredentialInput {
    pub name: String,
    pub kind: String,
    /// Field values; secret and plain alike arrive as [`Secret`] so nothing is logged by accident.
    pub fields: BTreeMap<String, Secret>,
    /// Field → environment variable, where the template's name is not wanted.
    pub env_overrides: BTreeMap<String, String>,
}

/// The template for `kind`, or an error listing the known kinds. The unknown kind is quoted
/// only when it looks like a type name: a value pasted into the wrong field (a token) must not
/// come back in the error.
pub fn template(kind: &str) -> Result<&'static ConnectorTemplate, ValidationError> {
    connector::template(kind).ok_or_else(|| {
        let looks_like_a_kind = kind.len() <= 32
            && kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let what = if looks_like_a_kind {
            format!("unknown credential type {kind:?}")
        } else {
            "that is not a credential type".to_string()
        };
        ValidationError::new(
            "type",
            format!("{what}; known types: {}", connector::kinds()),
        )
    })
}

/// Checks input against the template. Everything a user can get wrong is found here, before
/// the vault is unlocked. Returns the names of required fields still missing a value.
pub fn check_input(input: &CredentialInput) -> Result<Vec<&'static str>, ValidationError> {
    validate::resource_name("name", &input.name)?;
    let t = template(&input.kind)?;
    for (field, value) in &input.fields {
        let Some(spec) = t.field(field) else {
            return Err(ValidationError::new(
                format!("field {field}"),
                format!(
                    "{} credentials have no field {field:?}; fields: {}",
                    t.kind,
                    t.fields
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if spec.secret {
            validate::secret_value(&format!("field {field}"), value.expose())?;
        } else if value.expose().trim().is_empty() || value.expose().contains('\0') {
            return Err(ValidationError::new(
                format!("field {field}"),
                "must not be empty or contain a NUL character",
            ));
        }
    }
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for (field, env) in &input.env_overrides {
        if t.field(field).is_none() {
            return Err(ValidationError::new(
                format!("env {field}"),
                format!("{} credentials have no field {field:?}", t.kind),
            ));
        }
        validate::env_name(env).map_err(|m| ValidationError::new(format!("env {field}"), m))?;
    }
    for f in t.fields {
        let env = input
            .env_overrides
            .get(f.name)
            .map(String::as_str)
            .unwrap_or(f.env);
        if let Some(other) = seen.insert(env.to_string(), f.name) {
            return Err(ValidationError::new(
                format!("env {}", f.name),
                format!("{env} is already the variable of field {other}"),
            ));
        }
    }
    Ok(t.fields
        .iter()
        .filter(|f| f.required && f.default.is_none() && !input.fields.contains_key(f.name))
        .map(|f| f.name)
        .collect())
}

/// Opens (or, for the first credential, creates) the vault when a value must be sealed or
/// opened. Hosts pass their own: the CLI unlocks per command, a daemon keeps one unlocked
/// vault ([`crate::vault::VaultCell`]).
pub type Unlock<'a> = &'a mut dyn FnMut() -> Result<Arc<Vault>, VaultError>;

/// Validates, seals and stores a new credential. Creates the vault on first use.
pub fn add(
    store: &Store,
    opts: &VaultOptions,
    input: &CredentialInput,
) -> Result<CredentialRow, CredentialError> {
    add_with(store, input, &mut || {
        Vault::open_or_create(store, opts).map(Arc::new)
    })
}

/// As [`add`], with the vault from `unlock`. Everything a user can get wrong is reported before
/// the vault is touched. A vault rotated since `unlock` opened it is [`VaultError::Stale`]
/// (nothing stored; unlock again and retry).
pub fn add_with(
    store: &Store,
    input: &CredentialInput,
    unlock: Unlock<'_>,
) -> Result<CredentialRow, CredentialError> {
    let missing = check_input(input)?;
    if let Some(f) = missing.first() {
        return Err(ValidationError::new(
            format!("field {f}"),
            format!("is required for {} credentials", input.kind),
        )
        .into());
    }
    if let Ok(existing) = store.credentials().find(&input.name) {
        return Err(StoreError::conflict(
            "name",
            format!("a credential named {:?} already exists", existing.name),
        )
        .into());
    }
    let t = template(&input.kind)?;
    let vault = unlock()?;
    let id = uuid::Uuid::now_v7().to_string();
    let mut fields = Vec::new();
    for (name, value) in &input.fields {
        let secret = t.field(name).is_some_and(|f| f.secret);
        fields.push(if secret {
            StoredField::sealed(name, vault.seal(&id, name, value)?, vault.generation())
        } else {
            StoredField::plain(name, value.expose())
        });
    }
    store
        .credentials()
        .create(&NewCredential {
            id,
            name: input.name.clone(),
            kind: input.kind.clone(),
            env_overrides: input.env_overrides.clone(),
            fields,
        })
        .map_err(stale_on_rotation)
}

/// A change to a stored credential.
#[derive(Debug, Clone, Default)]
pub struct CredentialUpdate {
    /// A new name.
    pub name: Option<String>,
    /// The credential's field values after the change. Non-secret fields left out (or empty)
    /// are removed; secret fields left out (or empty) keep their stored value.
    pub fields: BTreeMap<String, Secret>,
    /// Replaces the variable renames when given.
    pub env_overrides: Option<BTreeMap<String, String>>,
    /// Optional secret fields to remove.
    pub clear: Vec<String>,
}

/// Changes a credential's name, fields or variable names. The vault is unlocked only when a
/// new secret value must be sealed; secret values not given stay sealed as they are.
pub fn update(
    store: &Store,
    credential: &str,
    change: CredentialUpdate,
    unlock: Unlock<'_>,
) -> Result<CredentialRow, CredentialError> {
    let row = store.credentials().find(credential)?;
    let t = template(&row.kind)?;
    let secret = |f: &str| t.field(f).is_some_and(|s| s.secret);
    for c in &change.clear {
        let Some(spec) = t.field(c) else {
            return Err(ValidationError::new(
                format!("clear {c}"),
                format!("{} credentials have no field {c:?}", t.kind),
            )
            .into());
        };
        if spec.required && spec.default.is_none() {
            return Err(ValidationError::new(
                format!("field {c}"),
                format!(
                    "is required for {} credentials and cannot be removed",
                    t.kind
                ),
            )
            .into());
        }
    }
    let input = CredentialInput {
        name: change.name.unwrap_or_else(|| row.name.clone()),
        kind: row.kind.clone(),
        fields: change
            .fields
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect(),
        env_overrides: change
            .env_overrides
            .unwrap_or_else(|| row.env_overrides.clone()),
    };
    let missing = check_input(&input)?;
    let kept: Vec<StoredField> = store
        .credentials()
        .fields(&row.id)?
        .into_iter()
        .filter(|f| {
            f.secret
                && secret(&f.field)
                && !input.fields.contains_key(&f.field)
                && !change.clear.contains(&f.field)
        })
        .collect();
    if let Some(f) = missing
        .iter()
        .find(|m| !kept.iter().any(|k| k.field == **m))
    {
        return Err(ValidationError::new(
            format!("field {f}"),
            format!("is required for {} credentials", row.kind),
        )
        .into());
    }
    if !input.name.eq_ignore_ascii_case(&row.name)
        && let Ok(other) = store.credentials().find(&input.name)
    {
        return Err(StoreError::conflict(
            "name",
            format!("a credential named {:?} already exists", other.name),
        )
        .into());
    }
    let vault = if input.fields.keys().any(|f| secret(f)) {
        Some(unlock()?)
    } else {
        None
    };
    let mut fields = kept;
    for (name, value) in &input.fields {
        fields.push(match (&vault, secret(name)) {
            (Some(v), true) => {
                StoredField::sealed(name, v.seal(&row.id, name, value)?, v.generation())
            }
            _ => StoredField::plain(name, value.expose()),
        });
    }
    store
        .credentials()
        .update(&row.id, &input.name, &input.env_overrides, &fields)
        .map_err(stale_on_rotation)
}

/// The store refuses a value sealed under a key that was rotated away meanwhile.
fn stale_on_rotation(e: StoreError) -> CredentialError {
    match e {
        StoreError::Conflict { ref field, .. } if field == "vault" => VaultError::Stale.into(),
        e => e.into(),
    }
}

/// One field of a stored credential as it may be shown: never a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldState {
    pub field: String,
    pub description: String,
    /// The environment variable a run gets (after the user's rename).
    pub variable: String,
    pub secret: bool,
    pub required: bool,
    /// A value is stored, or the template's default applies.
    pub set: bool,
    /// The value of a non-secret field (stored, else the default). Always `None` for secrets.
    pub value: Option<String>,
    /// `value` is the template's default, not a stored value.
    pub default: bool,
}

/// Every field of the credential's type, with what is stored for it.
pub fn field_states(store: &Store, row: &CredentialRow) -> Result<Vec<FieldState>, StoreError> {
    let Some(t) = connector::template(&row.kind) else {
        return Ok(Vec::new());
    };
    let stored = store.credentials().fields(&row.id)?;
    Ok(t.fields
        .iter()
        .map(|f| {
            let s = stored.iter().find(|s| s.field == f.name);
            let plain = s.and_then(|s| s.plain.clone()).filter(|_| !f.secret);
            let default = plain.is_none() && s.is_none() && f.default.is_some();
            FieldState {
                field: f.name.to_string(),
                description: f.description.to_string(),
                variable: row
                    .env_overrides
                    .get(f.name)
                    .cloned()
                    .unwrap_or_else(|| f.env.to_string()),
                secret: f.secret,
                required: f.required && f.default.is_none(),
                set: s.is_some() || f.default.is_some(),
                value: if f.secret {
                    None
                } else {
                    plain.or_else(|| f.default.map(String::from))
                },
                default,
            }
        })
        .collect())
}

/// Refuses a set of credentials for one persona where two would set the same variable.
pub fn check_env_clashes(store: &Store, rows: &[CredentialRow]) -> Result<(), CredentialError> {
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for r in rows {
        for f in field_states(store, r)?.into_iter().filter(|f| f.set) {
            if let Some(other) = owners.insert(f.variable.clone(), r.name.clone()) {
                return Err(ValidationError::new(
                    "credentials",
                    format!(
                        "{other} and {} both set {}; store one of them under another variable name",
                        r.name, f.variable
                    ),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Opens one credential by name or id, e.g. for its health check.
pub fn open_named(
    store: &Store,
    credential: &str,
    unlock: Unlock<'_>,
) -> Result<Opened, CredentialError> {
    let row = store.credentials().find(credential)?;
    let vault = unlock()?;
    open(&vault, store, row)
}

/// One credential with its values opened.
pub struct Opened {
    pub row: CredentialRow,
    pub template: &'static ConnectorTemplate,
    /// Field → value, defaults filled in.
    pub values: BTreeMap<String, Secret>,
}

impl Opened {
    /// `(label, value)` of every secret field, labels as in redaction markers.
    pub fn secret_labels(&self) -> Vec<(String, &Secret)> {
        self.template
            .fields
            .iter()
            .filter(|f| f.secret)
            .filter_map(|f| {
                self.values
                    .get(f.name)
                    .map(|v| (format!("{}.{}", self.row.name, f.name), v))
            })
            .collect()
    }

    /// A redactor for this credential's secret values.
    pub fn redactor(&self) -> Redactor {
        let labels = self.secret_labels();
        Redactor::new(labels.iter().map(|(l, v)| (l.as_str(), *v)))
    }

    /// `(variable, value)` pairs for a run's environment.
    pub fn env(&self) -> Vec<(String, Secret)> {
        self.template
            .fields
            .iter()
            .filter_map(|f| {
                let v = self.values.get(f.name)?;
                let name = self
                    .row
                    .env_overrides
                    .get(f.name)
                    .cloned()
                    .unwrap_or_else(|| f.env.to_string());
                Some((name, v.clone()))
            })
            .collect()
    }
}

/// Opens one stored credential with an unlocked vault.
pub fn open(vault: &Vault, store: &Store, row: CredentialRow) -> Result<Opened, CredentialError> {
    let t = template(&row.kind).map_err(|_| {
        VaultError::Corrupt(format!(
            "credential {} has an unknown type {:?}",
            row.name, row.kind
        ))
    })?;
    let mut values = BTreeMap::new();
    for f in store.credentials().fields(&row.id)? {
        let value = match (&f.plain, &f.sealed, f.generation) {
            (_, Some(sealed), Some(generation)) => {
                vault.open_value(&row.name, &row.id, &f.field, sealed, generation)?
            }
            (Some(plain), _, _) => Secret::new(plain.clone()),
            _ => {
                return Err(VaultError::Damaged {
                    what: format!("{}.{}", row.name, f.field),
                }
                .into());
            }
        };
        values.insert(f.field, value);
    }
    for f in t.fields {
        if let (Some(d), false) = (f.default, values.contains_key(f.name)) {
            values.insert(f.name.to_string(), Secret::new(d));
        }
    }
    Ok(Opened {
        row,
        template: t,
        values,
    })
}

/// What a run gets from its persona's credentials.
#[derive(Default)]
pub struct RunCredentials {
    /// Variables for the child's environment.
    pub env: Vec<(String, Secret)>,
    /// Names and variable names for the prompt (no values).
    pub docs: Vec<CredentialDoc>,
    /// Knows every secret value of the run.
    pub redactor: Redactor,
}

/// Opens the persona's linked credentials. Without linked credentials the vault is not touched
/// (a persona without credentials runs without a keychain or passphrase). `unlock` is called
/// at most once, only when a value must be opened.
pub fn for_run(
    store: &Store,
    persona_id: &PersonaId,
    unlock: Unlock<'_>,
) -> Result<RunCredentials, CredentialError> {
    let rows = store.credentials().of_persona(persona_id)?;
    if rows.is_empty() {
        return Ok(RunCredentials::default());
    }
    let vault = unlock()?;
    let opened = rows
        .into_iter()
        .map(|row| open(&vault, store, row))
        .collect::<Result<Vec<_>, _>>()?;
    assemble(opened)
}

/// A credential opened outside this store — a cloud worker opening what its orchestrator
/// sealed — for [`supplied`].
pub struct SuppliedCredential {
    pub name: String,
    /// The connector type (`github`, `slack`, …).
    pub kind: String,
    pub values: BTreeMap<String, Secret>,
}

/// What a run gets from credentials opened elsewhere: the same environment, prompt docs and
/// redactor as [`for_run`] builds from the vault (defaults filled in, variable clashes refused).
pub fn supplied(items: Vec<SuppliedCredential>) -> Result<RunCredentials, CredentialError> {
    let now = chrono::Utc::now();
    let opened = items
        .into_iter()
        .map(|c| {
            let t = template(&c.kind).map_err(|_| {
                ValidationError::new(
                    "credential",
                    format!("credential {} has an unknown type {:?}", c.name, c.kind),
                )
            })?;
            let mut values = c.values;
            for f in t.fields {
                if let (Some(d), false) = (f.default, values.contains_key(f.name)) {
                    values.insert(f.name.to_string(), Secret::new(d));
                }
            }
            Ok(Opened {
                row: CredentialRow {
                    id: c.name.clone(),
                    name: c.name,
                    kind: c.kind,
                    env_overrides: BTreeMap::new(),
                    last_checked_at: None,
                    last_check_ok: None,
                    last_check_error: None,
                    created_at: now,
                    updated_at: now,
                },
                template: t,
                values,
            })
        })
        .collect::<Result<Vec<_>, CredentialError>>()?;
    assemble(opened)
}

/// Environment, docs and redactor of opened credentials.
fn assemble(opened: Vec<Opened>) -> Result<RunCredentials, CredentialError> {
    let mut out = RunCredentials::default();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for o in &opened {
        for (name, value) in o.env() {
            if let Some(other) = owners.insert(name.clone(), o.row.name.clone()) {
                return Err(ValidationError::new(
                    "credential",
                    format!(
                        "credentials {other} and {} both set {name}; give one another variable \
                         name (personas credential add … --env FIELD=NAME)",
                        o.row.name
                    ),
                )
                .into());
            }
            out.env.push((name, value));
        }
        let mut env_vars: Vec<String> = o.env().into_iter().map(|(n, _)| n).collect();
        env_vars.sort();
        out.docs.push(CredentialDoc {
            name: o.row.name.clone(),
            kind: o.row.kind.clone(),
            env_vars,
        });
    }
    let labels: Vec<(String, &Secret)> = opened.iter().flat_map(|o| o.secret_labels()).collect();
    out.redactor = Redactor::new(labels.iter().map(|(l, v)| (l.as_str(), *v)));
    Ok(out)
}

#[cfg(test)]
mod tests;
