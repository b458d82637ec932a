//! The persona file: the unit users share. YAML or JSON, versioned, never holding secrets.
//!
//! ```yaml
//! format: personas/v1
//! name: Release notes writer
//! description: Turns commit lists into release notes
//! instructions: |
//!   Summarise the input as release notes.
//! sections:
//!   - title: Format
//!     body: Markdown bullets grouped by feat/fix.
//! model: sonnet
//! limits: { max_concurrent: 2, timeout_secs: 300, max_turns: 10, max_budget_usd: 0.5 }
//! permissions: { mode: default, allow: [Read], deny: [WebFetch], allow_personas: [Reviewer] }
//! enabled: true
//! ```
//!
//! `permissions.allow_personas` names (never ids: ids differ between machines) the personas this
//! one may start; files written before it existed import with none. Importing a file never
//! grants more than the persona has without the importer saying so (see [`crate::grant`]).
//!
//! Unknown keys are rejected (a typo must not silently drop a limit), and the spec inside is
//! validated with [`crate::validate::persona_spec`] before anything is stored.

use crate::model::{PermissionPolicy, PersonaSpec, PromptSection, defaults};
use crate::validate::{self, ValidationError};
use serde::{Deserialize, Serialize};

/// The only format version so far.
pub const FORMAT: &str = "personas/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaFile {
    pub format: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub instructions: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<PromptSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub permissions: PermissionPolicy,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_concurrency")]
    pub max_concurrent: u32,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent: defaults::MAX_CONCURRENT,
            timeout_secs: defaults::TIMEOUT_SECS,
            max_turns: None,
            max_budget_usd: None,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_concurrency() -> u32 {
    defaults::MAX_CONCURRENT
}
fn default_timeout() -> u64 {
    defaults::TIMEOUT_SECS
}

/// File syntax for export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Yaml,
    Json,
}

impl Syntax {
    /// From a file name's extension; YAML unless it ends in `.json`.
    pub fn for_path(path: &str) -> Syntax {
        if path.to_ascii_lowercase().ends_with(".json") {
            Syntax::Json
        } else {
            Syntax::Yaml
        }
    }
}

impl From<&PersonaSpec> for PersonaFile {
    fn from(s: &PersonaSpec) -> Self {
        Self {
            format: FORMAT.into(),
            name: s.name.clone(),
            description: s.description.clone(),
            instructions: s.instructions.clone(),
            sections: s.sections.clone(),
            model: s.model.clone(),
            limits: Limits {
                max_concurrent: s.max_concurrent,
                timeout_secs: s.timeout_secs,
                max_turns: s.max_turns,
                max_budget_usd: s.max_budget_usd,
            },
            permissions: s.permissions.clone(),
            enabled: s.enabled,
        }
    }
}

impl PersonaFile {
    pub fn into_spec(self) -> PersonaSpec {
        PersonaSpec {
            name: self.name,
            description: self.description,
            instructions: self.instructions,
            sections: self.sections,
            model: self.model,
            max_concurrent: self.limits.max_concurrent,
            timeout_secs: self.limits.timeout_secs,
            max_turns: self.limits.max_turns,
            max_budget_usd: self.limits.max_budget_usd,
            permissions: self.permissions,
            enabled: self.enabled,
        }
    }

    pub fn render(&self, syntax: Syntax) -> String {
        match syntax {
            // Both serialisers only fail on non-string map keys, which this type has none of.
            Syntax::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
            Syntax::Yaml => serde_yaml_ng::to_string(self).unwrap_or_default(),
        }
    }
}

/// Parses and validates a persona file (YAML or JSON, detected from the content).
pub fn parse(text: &str) -> Result<PersonaSpec, ValidationError> {
    // Errors name the key at fault by its path in the file (`limits.max_concurrent`), or `file`
    // when the text as a whole is not a persona file.
    let located = |syntax: &'static str| {
        move |e: crate::decode::DecodeError| {
            let field = e.field.unwrap_or_else(|| "file".into());
            ValidationError::new(field, format!("invalid {syntax}: {}", e.message))
        }
    };
    let file: PersonaFile = if text.trim_start().starts_with('{') {
        crate::decode::from_json_slice(text.as_bytes()).map_err(located("JSON"))?
    } else {
        crate::decode::from_yaml_str(text).map_err(located("YAML"))?
    };
    if file.format != FORMAT {
        return Err(ValidationError::new(
            "format",
            format!(
                "unsupported format {:?}; this version reads {FORMAT:?}",
                file.format
            ),
        ));
    }
    let spec = file.into_spec();
    validate::persona_spec(&spec).map_err(in_file_terms)?;
    Ok(spec)
}

/// [`validate::persona_spec`] names fields as the CLI flags and the API do; a file's author
/// needs the key as it is written in the file.
fn in_file_terms(mut e: ValidationError) -> ValidationError {
    let key = match e.field.as_str() {
        "max_concurrent" => "limits.max_concurrent",
        "timeout" => "limits.timeout_secs",
        "max_turns" => "limits.max_turns",
        "max_budget_usd" => "limits.max_budget_usd",
        "allow_tool" => "permissions.allow",
        "deny_tool" => "permissions.deny",
        _ => return e,
    };
    e.field = key.into();
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PermissionMode;

    fn spec() -> PersonaSpec {
        let mut s = PersonaSpec::new("Release notes writer", "Summarise the input.\nBe brief.");
        s.description = "Notes".into();
        s.sections.push(PromptSection {
            title: "Format".into(),
            body: "Bullets".into(),
        });
        s.model = Some("sonnet".into());
        s.max_concurrent = 2;
        s.timeout_secs = 300;
        s.max_turns = Some(5);
        s.max_budget_usd = Some(0.25);
        s.permissions.allow = vec!["Read".into(), "Bash(git *)".into()];
        s.permissions.deny = vec!["WebFetch".into()];
        s.permissions.mode = PermissionMode::AcceptEdits;
        s.permissions.allow_personas = vec!["Reviewer".into(), "*".into()];
        s
    }

    #[test]
    fn yaml_and_json_round_trip() {
        let s = spec();
        for syntax in [Syntax::Yaml, Syntax::Json] {
            let text = PersonaFile::from(&s).render(syntax);
            assert_eq!(parse(&text).expect("parses"), s, "{syntax:?}:\n{text}");
        }
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let s = parse("format: personas/v1\nname: A\ninstructions: do it\n").expect("parses");
        assert_eq!(s, PersonaSpec::new("A", "do it"));
    }

    #[test]
    fn allow_personas_travels_by_name_and_older_files_have_none() {
        let s = parse(
            "format: personas/v1\nname: A\ninstructions: x\npermissions: {allow_personas: [Reviewer]}\n",
        )
        .expect("parses");
        assert_eq!(s.permissions.allow_personas, vec!["Reviewer".to_string()]);
        let old =
            parse("format: personas/v1\nname: A\ninstructions: x\npermissions: {mode: plan}\n")
                .expect("a file without allow_personas still imports");
        assert!(old.permissions.allow_personas.is_empty());
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let cases = [
            ("name: A\ninstructions: x\n", "format"),
            (
                "format: personas/v9\nname: A\ninstructions: x\n",
                "unsupported format",
            ),
            (
                "format: personas/v1\nname: A\ninstructions: x\ntimeout: 5\n",
                "unknown field `timeout`",
            ),
            (
                "format: personas/v1\nname: A\ninstructions: ''\n",
                "instructions",
            ),
            (
                "format: personas/v1\nname: A\ninstructions: x\nlimits: {max_concurrent: 0}\n",
                "max_concurrent",
            ),
            ("{\"format\": \"personas/v1\", \"name\": ", "invalid JSON"),
            (
                "format: personas/v1\nname: A\ninstructions: x\npermissions: {mode: yolo}\n",
                "yolo",
            ),
        ];
        for (text, needle) in cases {
            let e = parse(text).expect_err(text);
            assert!(e.to_string().contains(needle), "{text:?} -> {e}");
        }
    }
}
