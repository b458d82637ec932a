//! The exact CLI invocation for one run: arguments from the persona's limits and permission
//! policy, and an environment built from an allow-list ([`super::environment`]) plus the run's
//! marker and the persona's credentials.
//!
//! Pure apart from reading the process uid; unit-tested below. The prompt never appears here:
//! it goes to stdin (fixtures README §3.8), so it is not visible in the process table and has no
//! argv length limit.

use super::environment::{self, RunEnv};
use crate::config::EngineConfig;
use crate::reaper::MARKER_VAR;
use personas_core::{Execution, PermissionMode, Persona, Secret};
use std::path::{Path, PathBuf};

/// A fully specified CLI invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct CliCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The child's whole environment (it starts empty): harmless variables in `plain`, every
    /// other value in `secret`, so no `Debug` of a command prints one.
    pub env: RunEnv,
    pub cwd: PathBuf,
}

/// Options beyond the persona that shape one invocation.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// Continue this Claude session (`--resume`) instead of starting a new one.
    pub resume_session: Option<String>,
    /// Extra arguments (e.g. `--mcp-config FILE --strict-mcp-config`).
    pub extra_args: Vec<String>,
    /// Extra environment, applied after the config's.
    pub extra_env: Vec<(String, String)>,
    /// Decrypted credentials for the child's environment (names checked against the
    /// deny-list when the credential was stored), applied last.
    pub secret_env: Vec<(String, Secret)>,
    /// Tool rules allowed on top of the persona's policy (the run's own MCP protocol tools),
    /// unless the policy denies them.
    pub extra_allowed_tools: Vec<String>,
    /// True when the process runs as root (decides `IS_SANDBOX` for full trust).
    pub as_root: bool,
    /// The runtime's own environment (`std::env::vars`); only allow-listed names are passed on.
    pub inherited_env: Vec<(String, Secret)>,
    /// Names taken out of the inherited environment and `config.toml` `[env]` for this run
    /// (ASCII case-insensitive): the host's model credentials when the run brings its own.
    pub withheld_env: Vec<String>,
}

pub fn build(
    persona: &Persona,
    execution: &Execution,
    config: &EngineConfig,
    claude: &Path,
    cwd: PathBuf,
    inv: &Invocation,
) -> CliCommand {
    let mut args: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"]
        .map(String::from)
        .to_vec();
    let policy = &persona.permissions;
    args.push("--permission-mode".into());
    args.push(policy.mode.as_cli_str().into());
    if let Some(model) = &persona.model {
        args.push("--model".into());
        args.push(model.clone());
    }
    if let Some(turns) = persona.max_turns {
        args.push("--max-turns".into());
        args.push(turns.to_string());
    }
    if let Some(budget) = persona.max_budget_usd {
        args.push("--max-budget-usd".into());
        args.push(budget.to_string());
    }
    // Each rule is its own argument after one flag: rules like `Bash(git *)` contain spaces.
    let mut allow = policy.allow.clone();
    for extra in &inv.extra_allowed_tools {
        let denied = policy
            .deny
            .iter()
            .any(|d| d == extra || d.starts_with(&format!("{extra}__")));
        if !denied && !allow.contains(extra) {
            allow.push(extra.clone());
        }
    }
    if !allow.is_empty() {
        args.push("--allowedTools".into());
        args.extend(allow);
    }
    if !policy.deny.is_empty() {
        args.push("--disallowedTools".into());
        args.extend(policy.deny.iter().cloned());
    }
    if let Some(session) = &inv.resume_session {
        args.push("--resume".into());
        args.push(session.clone());
    }
    args.extend(inv.extra_args.iter().cloned());

    let mut run_vars: Vec<(String, String)> = vec![
        (MARKER_VAR.to_string(), execution.id.to_string()),
        ("PERSONAS_PERSONA_ID".to_string(), persona.id.to_string()),
        // Unattended runs must not update the binary under a running engine.
        ("DISABLE_AUTOUPDATER".to_string(), "1".to_string()),
    ];
    if let Some(retries) = config.cli_max_retries {
        run_vars.push(("CLAUDE_CODE_MAX_RETRIES".into(), retries.to_string()));
    }
    // As root the CLI refuses bypassPermissions unless told it runs in a sandbox (README §3.3).
    // Only a persona explicitly set to full trust gets this; it is never inherited.
    if policy.mode == PermissionMode::BypassPermissions && inv.as_root {
        run_vars.push(("IS_SANDBOX".into(), "1".into()));
    }
    run_vars.extend(inv.extra_env.iter().cloned());
    let withheld = |k: &str| inv.withheld_env.iter().any(|w| w.eq_ignore_ascii_case(k));
    // A copy of `[env]` only for a run that withholds something from it.
    let config_env = if inv.withheld_env.is_empty() {
        std::borrow::Cow::Borrowed(&config.env)
    } else {
        std::borrow::Cow::Owned(
            config
                .env
                .iter()
                .filter(|(k, _)| !withheld(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    let env = environment::build(
        inv.inherited_env
            .iter()
            .filter(|(k, _)| !withheld(k))
            .map(|(k, v)| (k.as_str(), v.expose())),
        &config_env,
        &config.channel_env_allow,
        &run_vars,
        &inv.secret_env,
    );

    CliCommand {
        program: claude.to_path_buf(),
        args,
        env,
        cwd,
    }
}

/// The runtime's own environment, for [`Invocation::inherited_env`] (values as secrets: any of
/// them may be one). Variables that are not valid Unicode are left out, and so are empty ones:
/// a container that passes `ANTHROPIC_API_KEY=` for an unset key must not hand the CLI an empty
/// key that shadows its OAuth token.
pub fn inherited_env() -> Vec<(String, Secret)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, Secret::new(v)))
        .collect()
}

/// True when this process runs as root.
pub fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        nix::unistd::geteuid().is_root()
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use personas_core::{ExecutionId, ExecutionStatus, PersonaId, TokenUsage, TriggerKind};

    fn persona() -> Persona {
        Persona {
            id: PersonaId::new(),
            name: "P".into(),
            description: String::new(),
            instructions: "x".into(),
            sections: vec![],
            model: Some("sonnet".into()),
            max_concurrent: 1,
            timeout_secs: 60,
            max_turns: Some(3),
            max_budget_usd: Some(0.5),
            permissions: Default::default(),
            enabled: true,
            prompt_version: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn execution(p: &Persona) -> Execution {
        Execution {
            id: ExecutionId::new(),
            persona_id: p.id.clone(),
            persona_name: p.name.clone(),
            status: ExecutionStatus::Running,
            priority: 0,
            trigger: TriggerKind::Manual,
            trigger_ref: None,
            input: None,
            prompt_version: Some(1),
            session_id: None,
            model: None,
            num_turns: 0,
            tokens: TokenUsage::default(),
            cost_usd: 0.0,
            result_text: None,
            outcome_accomplished: None,
            outcome_summary: None,
            error_class: None,
            error_message: None,
            permission_denials: vec![],
            persona_denials: vec![],
            parse_warnings: 0,
            output_lines: 0,
            output_truncated: false,
            cancel_requested: false,
            queued_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            heartbeat_at: None,
        }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].as_str())
    }

    #[test]
    fn limits_and_policy_become_flags_never_a_blanket_skip() {
        let mut p = persona();
        p.permissions.allow = vec!["Read".into(), "Bash(git *)".into()];
        p.permissions.deny = vec!["WebFetch".into()];
        let e = execution(&p);
        let cfg = EngineConfig {
            cli_max_retries: Some(1),
            ..EngineConfig::default()
        };
        let c = build(
            &p,
            &e,
            &cfg,
            Path::new("/bin/claude"),
            "/w".into(),
            &Invocation::default(),
        );
        assert_eq!(
            &c.args[..4],
            ["-p", "--output-format", "stream-json", "--verbose"]
        );
        assert_eq!(value_after(&c.args, "--model"), Some("sonnet"));
        assert_eq!(value_after(&c.args, "--max-turns"), Some("3"));
        assert_eq!(value_after(&c.args, "--max-budget-usd"), Some("0.5"));
        assert_eq!(value_after(&c.args, "--permission-mode"), Some("default"));
        let allow = c
            .args
            .iter()
            .position(|a| a == "--allowedTools")
            .expect("allow flag");
        assert_eq!(&c.args[allow + 1..allow + 3], ["Read", "Bash(git *)"]);
        assert_eq!(value_after(&c.args, "--disallowedTools"), Some("WebFetch"));
        assert!(!c.args.iter().any(|a| a.contains("dangerously")));
        assert!(c.env.plain.contains(&(MARKER_VAR.into(), e.id.to_string())));
        assert!(
            c.env
                .plain
                .contains(&("CLAUDE_CODE_MAX_RETRIES".into(), "1".into()))
        );
        assert!(!c.env.plain.iter().any(|(k, _)| k == "IS_SANDBOX"));
    }

    #[test]
    fn full_trust_as_root_sets_is_sandbox_only_then() {
        let mut p = persona();
        p.permissions.mode = PermissionMode::BypassPermissions;
        let e = execution(&p);
        let cfg = EngineConfig::default();
        let root = Invocation {
            as_root: true,
            ..Invocation::default()
        };
        let c = build(&p, &e, &cfg, Path::new("claude"), "/w".into(), &root);
        assert!(c.env.plain.contains(&("IS_SANDBOX".into(), "1".into())));
        assert_eq!(
            value_after(&c.args, "--permission-mode"),
            Some("bypassPermissions")
        );
        let c = build(
            &p,
            &e,
            &cfg,
            Path::new("claude"),
            "/w".into(),
            &Invocation::default(),
        );
        assert!(!c.env.plain.iter().any(|(k, _)| k == "IS_SANDBOX"));
        // An IS_SANDBOX in the runtime's own environment never reaches a run.
        let mut p = persona();
        p.permissions.mode = PermissionMode::Default;
        let inherited = Invocation {
            inherited_env: vec![("IS_SANDBOX".into(), Secret::new("1"))],
            ..Invocation::default()
        };
        let c = build(&p, &e, &cfg, Path::new("claude"), "/w".into(), &inherited);
        assert!(!c.env.plain.iter().any(|(k, _)| k == "IS_SANDBOX"));
        assert!(!c.env.secret.iter().any(|(k, _)| k == "IS_SANDBOX"));
    }

    #[test]
    fn credentials_go_to_the_environment_only_and_never_show_in_debug() {
        let p = persona();
        let inv = Invocation {
            secret_env: vec![("GITHUB_TOKEN".into(), Secret::new("ghp_topsecret"))],
            extra_allowed_tools: vec!["mcp__personas".into()],
            ..Invocation::default()
        };
        let c = build(
            &p,
            &execution(&p),
            &EngineConfig::default(),
            Path::new("claude"),
            "/w".into(),
            &inv,
        );
        assert!(
            !c.args.iter().any(|a| a.contains("ghp_topsecret")),
            "never argv"
        );
        assert_eq!(c.env.secret[0].1.expose(), "ghp_topsecret");
        assert!(!format!("{c:?}").contains("ghp_topsecret"));
        assert_eq!(
            value_after(&c.args, "--allowedTools"),
            Some("mcp__personas")
        );
        // A policy that denies the protocol tools keeps them denied.
        let mut p = persona();
        p.permissions.deny = vec!["mcp__personas".into()];
        let c = build(
            &p,
            &execution(&p),
            &EngineConfig::default(),
            Path::new("claude"),
            "/w".into(),
            &inv,
        );
        assert!(!c.args.iter().any(|a| a == "--allowedTools"));
    }

    #[test]
    fn resume_adds_the_session() {
        let p = persona();
        let inv = Invocation {
            resume_session: Some("s-1".into()),
            ..Invocation::default()
        };
        let c = build(
            &p,
            &execution(&p),
            &EngineConfig::default(),
            Path::new("claude"),
            "/w".into(),
            &inv,
        );
        assert_eq!(value_after(&c.args, "--resume"), Some("s-1"));
    }
}
