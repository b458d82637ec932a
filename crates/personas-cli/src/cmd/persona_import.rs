//! `personas persona import FILE [--replace] [--grant]`: a persona from a shared file, never
//! with more power than the importer agreed to. The `import_persona` operation names what the
//! file would grant beyond what the persona has (see `personas_core::grant`) and, without
//! `--grant`, refuses (exit code 2) before anything is written.

use super::print_json;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::render::Style;
use personas_api::ops::ImportPersona;
use personas_api::{Client, Code, Operations};
use std::path::Path;

pub async fn run(
    ctx: &Context,
    client: &Client,
    file: &Path,
    replace: bool,
    grant: bool,
) -> CliResult<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    let imported = client
        .import_persona(ImportPersona {
            text,
            replace: Some(replace),
            grant: Some(grant),
        })
        .await
        .map_err(|e| {
            let hint = match (e.code, e.field.as_deref()) {
                (Code::Invalid, Some("grant")) => {
                    Some("read the file, then run the import again with --grant to apply it")
                }
                (Code::Conflict, _) => Some("use --replace to update it from the file"),
                _ => None,
            };
            let err = CliError::usage(format!("{}: {}", file.display(), e.message));
            match hint {
                Some(h) => err.with_hint(h),
                None => err,
            }
        })?;
    let p = &imported.persona;
    for name in &imported.unknown_targets {
        eprintln!(
            "warning: allow_personas: no persona named {name:?} here; {} will not be allowed to \
             start it (import it, then `personas persona update {:?} --allow-persona {name:?}`)",
            p.name, p.name
        );
    }
    if !imported.granted.is_empty() {
        eprintln!("granted {}: {}", p.name, imported.granted.join("; "));
    }
    if ctx.json {
        print_json(&imported);
    } else {
        let st = Style::detect();
        println!("imported persona {} ({})", st.bold(&p.name), p.id);
    }
    Ok(())
}
