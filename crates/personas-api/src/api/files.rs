//! `export_persona` / `import_persona`: a persona as the file users share, and back — an import
//! never grants more than the importer agreed to (see `personas_core::grant`).

use super::Api;
use crate::error::{ApiError, Code};
use crate::ops::{ExportPersona, FileSyntax, ImportPersona, ImportedPersona, PersonaFileText};
use personas_core::grant::{self, Holding};
use personas_core::persona_file::{self, PersonaFile, Syntax};
use personas_core::{ANY_PERSONA, PersonaSpec};
use personas_store::{Store, StoreError};

impl Api {
    pub async fn export_persona(&self, req: ExportPersona) -> Result<PersonaFileText, ApiError> {
        let p = self.persona(req.persona).await?;
        let syntax = req.syntax.unwrap_or(FileSyntax::Yaml);
        let mut spec = PersonaSpec::from(&p);
        // Files name the personas it may start: ids differ between machines.
        spec.permissions.allow_personas = self
            .store(move |s| s.personas().target_names(&p.permissions))
            .await?;
        let text = PersonaFile::from(&spec).render(match syntax {
            FileSyntax::Yaml => Syntax::Yaml,
            FileSyntax::Json => Syntax::Json,
        });
        Ok(PersonaFileText {
            name: spec.name,
            syntax,
            text,
        })
    }

    pub async fn import_persona(&self, req: ImportPersona) -> Result<ImportedPersona, ApiError> {
        let mut spec = persona_file::parse(&req.text).map_err(|e| ApiError {
            code: Code::Invalid,
            message: e.to_string(),
            field: Some("text".into()),
        })?;
        let (replace, allow_grants) = (req.replace.unwrap_or(false), req.grant.unwrap_or(false));
        self.store(move |s| import(s, &mut spec, replace, allow_grants))
            .await
            .and_then(|r| r)
    }
}

/// The whole import in one blocking task: what is checked is what is written.
fn import(
    s: &Store,
    spec: &mut PersonaSpec,
    replace: bool,
    allow_grants: bool,
) -> Result<Result<ImportedPersona, ApiError>, StoreError> {
    let existing = match s.personas().find(&spec.name) {
        Ok(existing) if replace => Some(existing),
        Ok(existing) => {
            return Ok(Err(ApiError::new(
                Code::Conflict,
                format!(
                    "a persona named {:?} already exists (import with replace to update it)",
                    existing.name
                ),
            )));
        }
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let unknown_targets = resolve_targets(s, spec)?;
    let (held_policy, credentials, prompt_changes) = match &existing {
        Some(p) => {
            let mut policy = p.permissions.clone();
            policy.allow_personas = s.personas().target_names(&p.permissions)?;
            let credentials: Vec<String> = s
                .credentials()
                .of_persona(&p.id)?
                .into_iter()
                .map(|c| c.name)
                .collect();
            (
                Some(policy),
                credentials,
                PersonaSpec::from(p).prompt_differs(spec),
            )
        }
        None => (None, Vec::new(), true),
    };
    let holding = held_policy.as_ref().map(|policy| Holding {
        policy,
        credentials: &credentials,
    });
    let grants = grant::grants(holding, &spec.permissions, prompt_changes);
    if !grants.is_empty() && !allow_grants {
        let whom = match &existing {
            Some(p) => format!("persona {:?}", p.name),
            None => format!("the new persona {:?}", spec.name),
        };
        return Ok(Err(ApiError::invalid(
            "grant",
            format!("importing would grant {whom}: {grants}; nothing was changed"),
        )));
    }
    let persona = match &existing {
        Some(current) => s.personas().update(current.id.as_str(), spec)?,
        None => s.personas().create(spec)?,
    };
    Ok(Ok(ImportedPersona {
        persona,
        granted: grants.0.iter().map(ToString::to_string).collect(),
        unknown_targets,
    }))
}

/// Replaces the file's `allow_personas` names with the names as stored here; returns the names
/// no persona here has, which are left out.
fn resolve_targets(s: &Store, spec: &mut PersonaSpec) -> Result<Vec<String>, StoreError> {
    let mut resolved: Vec<String> = Vec::new();
    let mut unknown = Vec::new();
    for name in std::mem::take(&mut spec.permissions.allow_personas) {
        let found = if name == ANY_PERSONA {
            name.clone()
        } else {
            match s.personas().find(&name) {
                Ok(p) => p.name,
                Err(StoreError::NotFound { .. }) => {
                    unknown.push(name);
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        if !resolved.iter().any(|r| r.eq_ignore_ascii_case(&found)) {
            resolved.push(found);
        }
    }
    spec.permissions.allow_personas = resolved;
    Ok(unknown)
}
