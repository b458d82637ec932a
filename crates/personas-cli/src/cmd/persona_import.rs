//! `personas persona import FILE [--replace] [--grant]`: a persona from a shared file, never
//! with more power than the importer agreed to. What the file would grant beyond what the
//! persona has (see `personas_core::grant`) is named, and without `--grant` the import is
//! refused with exit code 2 before anything is written.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::Style;
use personas_core::grant::{self, Holding};
use personas_core::{ANY_PERSONA, PersonaSpec, persona_file};
use personas_store::{Store, StoreError};
use std::path::Path;

pub fn run(
    ctx: &Context,
    store: &Store,
    file: &Path,
    replace: bool,
    allow_grants: bool,
) -> CliResult<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    let mut spec = persona_file::parse(&text)
        .map_err(|e| CliError::usage(format!("{}: {e}", file.display())))?;
    let existing = match store.personas().find(&spec.name) {
        Ok(existing) if replace => Some(existing),
        Ok(existing) => {
            return Err(CliError::usage(format!(
                "a persona named {:?} already exists",
                existing.name
            ))
            .with_hint("use --replace to update it from the file"));
        }
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    resolve_targets(store, &mut spec)?;

    let (held_policy, credentials, prompt_changes) = match &existing {
        Some(p) => {
            let mut policy = p.permissions.clone();
            policy.allow_personas = store.personas().target_names(&p.permissions)?;
            let credentials: Vec<String> = store
                .credentials()
                .of_persona(&p.id)?
                .into_iter()
                .map(|c| c.name)
                .collect();
            (
                Some(policy),
                credentials,
                PersonaSpec::from(p).prompt_differs(&spec),
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
        return Err(CliError::usage(format!(
            "{}: importing would grant {whom}: {grants}; nothing was changed",
            file.display()
        ))
        .with_hint("read the file, then run the import again with --grant to apply it"));
    }

    let p = match &existing {
        Some(current) => store.personas().update(current.id.as_str(), &spec)?,
        None => store.personas().create(&spec)?,
    };
    if !grants.is_empty() {
        eprintln!("granted {}: {grants}", p.name);
    }
    if ctx.json {
        print_json(&p);
    } else {
        let st = Style::detect();
        println!("imported persona {} ({})", st.bold(&p.name), p.id);
    }
    Ok(())
}

/// Replaces the file's `allow_personas` names with the names as stored here. A name no persona
/// here has is left out with a warning (granting less than the file asks is always safe, and
/// personas that allow each other could not be imported one by one otherwise).
fn resolve_targets(store: &Store, spec: &mut PersonaSpec) -> CliResult<()> {
    let mut resolved: Vec<String> = Vec::new();
    for name in std::mem::take(&mut spec.permissions.allow_personas) {
        let found = if name == ANY_PERSONA {
            name.clone()
        } else {
            match store.personas().find(&name) {
                Ok(p) => p.name,
                Err(StoreError::NotFound { .. }) => {
                    eprintln!(
                        "warning: allow_personas: no persona named {name:?} here; {} will not be \
                         allowed to start it (import it, then `personas persona update {:?} \
                         --allow-persona {name:?}`)",
                        spec.name, spec.name
                    );
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        if !resolved.iter().any(|r| r.eq_ignore_ascii_case(&found)) {
            resolved.push(found);
        }
    }
    spec.permissions.allow_personas = resolved;
    Ok(())
}
