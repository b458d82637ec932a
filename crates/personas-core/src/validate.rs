//! Input validation that names the field at fault. Every host (CLI, HTTP, desktop) calls these
//! before anything is stored, so a bad value never reaches the database.

use crate::model::PersonaSpec;
use serde::Serialize;
use std::fmt;

/// A rejected value: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

pub const MAX_NAME_LEN: usize = 120;
pub const MAX_INSTRUCTIONS_LEN: usize = 200_000;
pub const MAX_TIMEOUT_SECS: u64 = 24 * 3600;
pub const MAX_CONCURRENT_LIMIT: u32 = 64;

/// Checks a persona spec; the first problem found is returned.
pub fn persona_spec(spec: &PersonaSpec) -> Result<(), ValidationError> {
    let name = spec.name.trim();
    if name.is_empty() {
        return Err(ValidationError::new("name", "must not be empty"));
    }
    if name != spec.name {
        return Err(ValidationError::new(
            "name",
            "must not start or end with whitespace",
        ));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            "name",
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "name",
            "must not contain control characters",
        ));
    }
    if crate::ids::PersonaId::looks_like_id(name) {
        return Err(ValidationError::new(
            "name",
            "must not look like an id (a UUID); names and ids share one lookup",
        ));
    }
    if spec.instructions.trim().is_empty() {
        return Err(ValidationError::new(
            "instructions",
            "must not be empty: say what the persona should do",
        ));
    }
    if spec.instructions.len() > MAX_INSTRUCTIONS_LEN {
        return Err(ValidationError::new(
            "instructions",
            format!("must be at most {MAX_INSTRUCTIONS_LEN} bytes"),
        ));
    }
    for (i, s) in spec.sections.iter().enumerate() {
        if s.title.trim().is_empty() {
            return Err(ValidationError::new(
                format!("sections[{i}].title"),
                "must not be empty",
            ));
        }
    }
    if let Some(model) = &spec.model
        && (model.trim().is_empty() || model.chars().any(char::is_whitespace))
    {
        return Err(ValidationError::new(
            "model",
            "must be a model alias or id without spaces (e.g. sonnet, claude-sonnet-4-5)",
        ));
    }
    if spec.max_concurrent == 0 || spec.max_concurrent > MAX_CONCURRENT_LIMIT {
        return Err(ValidationError::new(
            "max_concurrent",
            format!("must be between 1 and {MAX_CONCURRENT_LIMIT}"),
        ));
    }
    if spec.timeout_secs == 0 || spec.timeout_secs > MAX_TIMEOUT_SECS {
        return Err(ValidationError::new(
            "timeout",
            format!("must be between 1 and {MAX_TIMEOUT_SECS} seconds"),
        ));
    }
    if spec.max_turns == Some(0) {
        return Err(ValidationError::new("max_turns", "must be at least 1"));
    }
    if let Some(b) = spec.max_budget_usd
        && !(b.is_finite() && b > 0.0)
    {
        return Err(ValidationError::new(
            "max_budget_usd",
            "must be a positive number of US dollars",
        ));
    }
    for (field, list) in [
        ("allow_tool", &spec.permissions.allow),
        ("deny_tool", &spec.permissions.deny),
    ] {
        for rule in list {
            tool_rule(rule).map_err(|m| ValidationError::new(field, format!("{rule:?}: {m}")))?;
        }
    }
    for target in &spec.permissions.allow_personas {
        if target.trim().is_empty() || target.trim() != target {
            return Err(ValidationError::new(
                "allow_personas",
                format!("{target:?}: must be a persona name or id, or '*' for every persona"),
            ));
        }
        if target.chars().any(char::is_control) || target.chars().count() > MAX_NAME_LEN {
            return Err(ValidationError::new(
                "allow_personas",
                format!("{target:?}: not a persona name"),
            ));
        }
    }
    Ok(())
}

/// Environment variables a credential may never set in a run: the ones that decide which
/// programs and libraries run (PATH, LD_*, …), who and where the process is (HOME, USER, …), and
/// Personas' and the CLI's own controls.
pub const ENV_DENY_LIST: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "OLDPWD",
    "TMPDIR",
    "TMP",
    "TEMP",
    "IFS",
    "ENV",
    "BASH_ENV",
    "CDPATH",
    "PS4",
    "PROMPT_COMMAND",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYOPT",
    "RUBYLIB",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_CONFIG_GLOBAL",
    "SSH_AUTH_SOCK",
    "IS_SANDBOX",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "DISABLE_AUTOUPDATER",
    "DISABLE_TELEMETRY",
];

/// Prefixes of variables a credential may never set (dynamic loader, shell functions, ours, the
/// CLI's configuration).
pub const ENV_DENY_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "BASH_FUNC_",
    "PERSONAS_",
    "CLAUDE_",
    "CLAUDECODE",
];

/// A name a credential field may be exposed as in a run's environment.
pub fn env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is not a valid variable name: use A-Z, 0-9 and '_', not starting with a digit"
        ));
    }
    if ENV_DENY_LIST.contains(&name) {
        return Err(format!(
            "{name} is on the deny-list: a credential must not override it"
        ));
    }
    if let Some(p) = ENV_DENY_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(format!(
            "{name} is on the deny-list ({p}* is reserved): a credential must not set it"
        ));
    }
    Ok(())
}

/// A credential or tool name: how personas refer to it, and the first part of redaction
/// markers (`[redacted:<name>.<field>]`).
pub fn resource_name(what: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(what, "must not be empty"));
    }
    if name.len() > 64 {
        return Err(ValidationError::new(what, "must be at most 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(ValidationError::new(
            what,
            format!(
                "{name:?}: use letters, digits, '_', '-' and '.', starting with a letter or digit"
            ),
        ));
    }
    if crate::ids::PersonaId::looks_like_id(name) {
        return Err(ValidationError::new(
            what,
            "must not look like an id (a UUID)",
        ));
    }
    Ok(())
}

/// A secret value as given by a user.
pub fn secret_value(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if value.len() < crate::redact::MIN_SECRET_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "is shorter than {} characters, too short to be redacted from output reliably",
                crate::redact::MIN_SECRET_LEN
            ),
        ));
    }
    if value.contains('\0') {
        return Err(ValidationError::new(
            field,
            "must not contain a NUL character (it cannot be passed in an environment variable)",
        ));
    }
    Ok(())
}

/// A tool rule as the CLI takes it: `Name` or `Name(pattern)`.
pub fn tool_rule(rule: &str) -> Result<(), String> {
    let name_end = rule.find('(').unwrap_or(rule.len());
    let name = &rule[..name_end];
    if name.is_empty() {
        return Err("needs a tool name, e.g. Read or Bash(git *)".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err("a tool name is letters, digits, '_' and '-' only".into());
    }
    if name_end < rule.len() && (!rule.ends_with(')') || rule.len() - name_end < 3) {
        return Err("a pattern is written Tool(pattern), e.g. Bash(git *)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn spec() -> PersonaSpec {
        PersonaSpec::new("Release notes writer", "Summarise the input")
    }

    #[test]
    fn a_plain_spec_is_valid() {
        assert_eq!(persona_spec(&spec()), Ok(()));
    }

    #[rstest]
    #[case::empty_name(|s: &mut PersonaSpec| s.name = "  ".into(), "name")]
    #[case::padded_name(|s: &mut PersonaSpec| s.name = " x".into(), "name")]
    #[case::uuid_name(|s: &mut PersonaSpec| s.name = "0190a5b2-0000-7000-8000-000000000000".into(), "name")]
    #[case::no_instructions(|s: &mut PersonaSpec| s.instructions = "\n".into(), "instructions")]
    #[case::zero_concurrency(|s: &mut PersonaSpec| s.max_concurrent = 0, "max_concurrent")]
    #[case::zero_timeout(|s: &mut PersonaSpec| s.timeout_secs = 0, "timeout")]
    #[case::zero_turns(|s: &mut PersonaSpec| s.max_turns = Some(0), "max_turns")]
    #[case::negative_budget(|s: &mut PersonaSpec| s.max_budget_usd = Some(-1.0), "max_budget_usd")]
    #[case::nan_budget(|s: &mut PersonaSpec| s.max_budget_usd = Some(f64::NAN), "max_budget_usd")]
    #[case::bad_tool(|s: &mut PersonaSpec| s.permissions.allow = vec!["Bash(".into()], "allow_tool")]
    #[case::blank_target(|s: &mut PersonaSpec| s.permissions.allow_personas = vec![" ".into()], "allow_personas")]
    #[case::spaced_model(|s: &mut PersonaSpec| s.model = Some("my model".into()), "model")]
    fn bad_specs_name_their_field(#[case] edit: fn(&mut PersonaSpec), #[case] field: &str) {
        let mut s = spec();
        edit(&mut s);
        let err = persona_spec(&s).expect_err("invalid spec accepted");
        assert_eq!(err.field, field, "{err}");
    }

    #[rstest]
    #[case("GITHUB_TOKEN", true)]
    #[case("MY_API_KEY2", true)]
    #[case("PATH", false)]
    #[case("HOME", false)]
    #[case("LD_PRELOAD", false)]
    #[case("DYLD_INSERT_LIBRARIES", false)]
    #[case("PERSONAS_API_TOKEN", false)]
    #[case("CLAUDE_CODE_MAX_RETRIES", false)]
    #[case("NODE_OPTIONS", false)]
    #[case("github_token", false)]
    #[case("1TOKEN", false)]
    #[case("A-B", false)]
    fn env_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(env_name(name).is_ok(), ok, "{name}: {:?}", env_name(name));
    }

    #[test]
    fn deny_list_errors_say_why() {
        let e = env_name("LD_PRELOAD").expect_err("denied");
        assert!(e.contains("deny-list"), "{e}");
    }

    #[test]
    fn secret_values_must_be_redactable() {
        assert!(secret_value("token", "ghp_abc").is_ok());
        assert_eq!(
            secret_value("token", "ab").expect_err("short").field,
            "token"
        );
        assert!(secret_value("token", "  ").is_err());
        assert!(secret_value("token", "a\0bcd").is_err());
    }

    #[rstest]
    #[case("github", true)]
    #[case("gh-work.2", true)]
    #[case("", false)]
    #[case("-x", false)]
    #[case("has space", false)]
    #[case("a/b", false)]
    fn resource_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(resource_name("name", name).is_ok(), ok, "{name}");
    }

    #[rstest]
    #[case("Read", true)]
    #[case("Bash(git *)", true)]
    #[case("mcp__personas__emit_event", true)]
    #[case("", false)]
    #[case("(x)", false)]
    #[case("Bash()", false)]
    #[case("Bash(git", false)]
    #[case("Ba sh", false)]
    fn tool_rules(#[case] rule: &str, #[case] ok: bool) {
        assert_eq!(tool_rule(rule).is_ok(), ok, "{rule}");
    }
}
