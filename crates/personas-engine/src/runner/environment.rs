//! A run's environment, built from an allow-list.
//!
//! The child starts from an empty environment (`env_clear`) and gets, in this order (later
//! wins): the variables of the runtime's own environment whose names are on [`INHERITED`],
//! `config.toml` `[env]`, the run's own variables (markers, `IS_SANDBOX`, the MCP server's), and
//! last the persona's decrypted credentials. Nothing else of the daemon's environment reaches a
//! run — not `PERSONAS_VAULT_PASSPHRASE`, not an inherited `IS_SANDBOX`, not a secret the user
//! happened to export in the shell that started `personas up`.
//!
//! Every value that is not known to be harmless is handed back as a [`Secret`] so the run's
//! redactor learns it: the CLI's own credentials (`ANTHROPIC_API_KEY`, …), proxy URLs (they can
//! carry a password) and every `[env]` entry whose name is not on [`HARMLESS`].
//!
//! Pure: the caller passes the inherited variables in; unit-tested below and benchmarked by
//! `personas bench redact`.

use personas_core::Secret;
use std::collections::BTreeMap;

/// Inherited from the runtime's environment, and not secret: what a process needs to run
/// (paths, user, locale, terminal, time zone, temp dirs, CA bundles, Windows essentials) and the
/// CLI's own non-secret settings. Compared ASCII case-insensitively (Windows names are).
pub const HARMLESS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "TZ",
    "TMPDIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    // Windows essentials.
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "USERPROFILE",
    "USERNAME",
    "USERDOMAIN",
    "HOMEDRIVE",
    "HOMEPATH",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
    "PROGRAMFILES",
    "PROGRAMFILES(X86)",
    "PROGRAMW6432",
    "COMMONPROGRAMFILES",
    "COMMONPROGRAMFILES(X86)",
    "TEMP",
    "TMP",
    "NUMBER_OF_PROCESSORS",
    "PROCESSOR_ARCHITECTURE",
    "OS",
    "PSMODULEPATH",
    // The Claude CLI's non-secret settings.
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_VERTEX_PROJECT_ID",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_MAX_RETRIES",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "CLOUD_ML_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "DISABLE_AUTOUPDATER",
    "DISABLE_BUG_COMMAND",
    "DISABLE_COST_WARNINGS",
    "DISABLE_NON_ESSENTIAL_MODEL_CALLS",
    "API_TIMEOUT_MS",
    "MAX_THINKING_TOKENS",
    "BASH_DEFAULT_TIMEOUT_MS",
    "BASH_MAX_TIMEOUT_MS",
    "MCP_TIMEOUT",
    "MCP_TOOL_TIMEOUT",
];

/// Name prefixes that are harmless too (locale categories).
const HARMLESS_PREFIXES: &[&str] = &["LC_"];

/// Inherited, but secret: the CLI's credentials when the user's login uses them, and proxy
/// URLs (which may carry `user:password@`). They reach the run and its redactor.
pub const INHERITED_SECRET: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// Values shorter than this from the environment are not taught to the redactor: flags such as
/// `1` or `true` would blank every occurrence of that text, and no real credential is this short.
/// (Vault values have their own, lower floor: `redact::MIN_SECRET_LEN`.)
pub const MIN_ENV_SECRET_LEN: usize = 8;

/// What the run's process environment is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunEnv {
    /// Harmless variables (safe to log).
    pub plain: Vec<(String, String)>,
    /// Everything else: the persona's credentials, inherited credentials, non-harmless `[env]`
    /// entries. Their values reach the child and the run's redactor, never a log.
    pub secret: Vec<(String, Secret)>,
}

impl RunEnv {
    /// `(label, value)` pairs for the run's redactor (`env.<NAME>`), leaving out values too short
    /// to be credentials.
    pub fn redaction_pairs(&self) -> Vec<(String, &Secret)> {
        self.secret
            .iter()
            .filter(|(_, v)| v.len() >= MIN_ENV_SECRET_LEN)
            .map(|(k, v)| (format!("env.{k}"), v))
            .collect()
    }
}

fn upper(name: &str) -> String {
    name.to_ascii_uppercase()
}

/// True when `name` is on the harmless allow-list.
pub fn is_harmless(name: &str) -> bool {
    let n = upper(name);
    HARMLESS.contains(&n.as_str()) || HARMLESS_PREFIXES.iter().any(|p| n.starts_with(p))
}

/// True when `name` may be inherited from the runtime's environment at all.
pub fn is_inherited(name: &str) -> bool {
    is_harmless(name) || INHERITED_SECRET.contains(&upper(name).as_str())
}

/// Builds a run's environment. `inherited` is the runtime's own environment; `config_env` the
/// `[env]` table, less the names in `withheld` (`channel_env_allow`: channel secrets never reach
/// a run); `run_vars` the run's own variables (harmless by construction: ids and flags);
/// `credentials` the persona's decrypted credentials.
pub fn build<'a>(
    inherited: impl IntoIterator<Item = (&'a str, &'a str)>,
    config_env: &BTreeMap<String, String>,
    withheld: &[String],
    run_vars: &[(String, String)],
    credentials: &[(String, Secret)],
) -> RunEnv {
    // name -> (value, secret?); later layers replace earlier ones.
    let mut vars: BTreeMap<String, (Secret, bool)> = BTreeMap::new();
    for (k, v) in inherited {
        if is_inherited(k) && !withheld.iter().any(|w| w.eq_ignore_ascii_case(k)) {
            vars.insert(k.to_string(), (Secret::new(v), !is_harmless(k)));
        }
    }
    for (k, v) in config_env.iter().filter(|(k, _)| !withheld.contains(k)) {
        vars.insert(k.clone(), (Secret::new(v.as_str()), !is_harmless(k)));
    }
    for (k, v) in run_vars {
        vars.insert(k.clone(), (Secret::new(v.as_str()), false));
    }
    for (k, v) in credentials {
        vars.insert(k.clone(), (v.clone(), true));
    }
    let mut out = RunEnv::default();
    for (k, (v, secret)) in vars {
        if secret {
            out.secret.push((k, v));
        } else {
            out.plain.push((k, v.expose().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(e: &RunEnv) -> Vec<&str> {
        let mut n: Vec<&str> = e
            .plain
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(e.secret.iter().map(|(k, _)| k.as_str()))
            .collect();
        n.sort();
        n
    }

    #[test]
    fn only_allow_listed_names_are_inherited_and_never_is_sandbox_or_our_own() {
        let inherited = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C.UTF-8"),
            ("https_proxy", "http://u:proxy-password@proxy:3128"),
            ("ANTHROPIC_API_KEY", "sk-ant-inherited-key"),
            ("IS_SANDBOX", "1"),
            ("PERSONAS_VAULT_PASSPHRASE", "correct horse battery"),
            ("PERSONAS_API_TOKEN", "tok"),
            ("CLAUDECODE", "1"),
            ("CLAUDE_CODE_ENTRYPOINT", "cli"),
            ("AWS_SECRET_ACCESS_KEY_OLD", "x"),
            ("GITHUB_TOKEN", "ghp_exported_in_the_shell"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("SystemRoot", "C:\\Windows"),
        ];
        let e = build(inherited, &BTreeMap::new(), &[], &[], &[]);
        assert_eq!(
            names(&e),
            [
                "ANTHROPIC_API_KEY",
                "HOME",
                "LC_ALL",
                "PATH",
                "SystemRoot",
                "https_proxy"
            ]
        );
        let secret: Vec<&str> = e.secret.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(secret, ["ANTHROPIC_API_KEY", "https_proxy"]);
        assert!(!format!("{e:?}").contains("proxy-password"));
    }

    #[test]
    fn config_env_is_kept_and_redacted_unless_harmless_and_credentials_win() {
        let config = BTreeMap::from([
            (
                "SLACK_URL".to_string(),
                "https://hooks.slack.com/services/T/B/xyz".to_string(),
            ),
            ("DISABLE_TELEMETRY".to_string(), "1".to_string()),
            (
                "ANTHROPIC_BASE_URL".to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
            (
                "GITHUB_TOKEN".to_string(),
                "from-config-not-used".to_string(),
            ),
        ]);
        let run = [("PERSONAS_EXECUTION_ID".to_string(), "e1".to_string())];
        let creds = [(
            "GITHUB_TOKEN".to_string(),
            Secret::new("ghp_from_the_vault"),
        )];
        let e = build([("PATH", "/bin")], &config, &[], &run, &creds);
        let plain: BTreeMap<&str, &str> = e
            .plain
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(plain["DISABLE_TELEMETRY"], "1");
        assert_eq!(plain["ANTHROPIC_BASE_URL"], "http://127.0.0.1:1");
        assert_eq!(plain["PERSONAS_EXECUTION_ID"], "e1");
        let secret: BTreeMap<&str, &str> = e
            .secret
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(
            secret["SLACK_URL"],
            "https://hooks.slack.com/services/T/B/xyz"
        );
        assert_eq!(secret["GITHUB_TOKEN"], "ghp_from_the_vault");
        let labels: Vec<String> = e.redaction_pairs().into_iter().map(|(l, _)| l).collect();
        assert_eq!(labels, ["env.GITHUB_TOKEN", "env.SLACK_URL"]);
    }

    #[test]
    fn short_values_reach_the_child_but_not_the_redactor() {
        let config = BTreeMap::from([("FEATURE".to_string(), "on".to_string())]);
        let e = build([], &config, &[], &[], &[]);
        assert_eq!(e.secret.len(), 1);
        assert!(e.redaction_pairs().is_empty());
    }

    #[test]
    fn channel_variables_are_withheld_from_runs() {
        let config = BTreeMap::from([
            (
                "SLACK_URL".to_string(),
                "https://hooks.slack.com/services/T/B/xyz".to_string(),
            ),
            ("OTHER".to_string(), "kept-for-the-run".to_string()),
        ]);
        let withheld = ["SLACK_URL".to_string(), "HTTPS_PROXY".to_string()];
        let e = build(
            [("HTTPS_PROXY", "http://u:p@proxy:1")],
            &config,
            &withheld,
            &[],
            &[],
        );
        assert_eq!(names(&e), ["OTHER"]);
    }

    #[test]
    fn names_compare_case_insensitively_like_windows() {
        assert!(is_harmless("Path") && is_harmless("windir") && is_harmless("lc_messages"));
        assert!(is_inherited("Http_Proxy") && !is_harmless("HTTP_PROXY"));
        assert!(!is_inherited("IS_SANDBOX") && !is_inherited("PERSONAS_DATA_DIR"));
    }
}
