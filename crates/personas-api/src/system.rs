//! The installation checks behind `personas doctor` and the UI's onboarding screen: one
//! implementation, so the terminal and the browser never disagree about what is wrong.

use personas_engine::vault::{KeyMode, VaultCell};
use personas_engine::{EngineConfig, locate};
use personas_store::Store;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

/// One check: what was looked at, how it went, and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Check {
    /// Stable name: `claude cli`, `claude version`, `claude auth`, `data dir`, `permissions`,
    /// `store`, `vault`, `runtime`.
    pub check: String,
    pub status: CheckStatus,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub hint: Option<String>,
}

impl Check {
    pub fn new(
        check: &str,
        status: CheckStatus,
        detail: impl Into<String>,
        hint: Option<&str>,
    ) -> Check {
        Check {
            check: check.to_string(),
            status,
            detail: detail.into(),
            hint: hint.map(str::to_string),
        }
    }
}

/// Runs the checks that need no daemon: the Claude CLI (found, version, auth), the data dir,
/// the store and the credential vault. `store` is the opened store or why it could not be
/// opened; `vault` is the host's vault (the daemon's unlocked one, or one for this command).
/// Hosts add a `runtime` check of their own (the CLI looks for a daemon; the daemon is one).
pub async fn checks(
    cfg: &EngineConfig,
    store: Result<&Store, String>,
    vault: &Arc<VaultCell>,
) -> Vec<Check> {
    use CheckStatus::{Fail, Ok as Good, Warn};
    let mut out = Vec::new();

    match locate::find_claude(cfg.claude_path.as_deref()) {
        Ok(found) => {
            out.push(Check::new(
                "claude cli",
                Good,
                format!("{} (found via {})", found.path.display(), found.how),
                None,
            ));
            match locate::claude_version(&found.path).await {
                Ok(v) => out.push(Check::new("claude version", Good, v, None)),
                Err(e) => out.push(Check::new(
                    "claude version",
                    Fail,
                    e,
                    Some("reinstall: npm install -g @anthropic-ai/claude-code"),
                )),
            }
        }
        Err(e) => out.push(Check::new(
            "claude cli",
            Fail,
            e.to_string(),
            Some(INSTALL_HINT),
        )),
    }

    let env_or_cfg = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| cfg.env.get(k).cloned())
    };
    let auth = [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
    ]
    .into_iter()
    .find(|k| env_or_cfg(k).is_some())
    .map(|k| format!("{k} is set"))
    .or_else(|| {
        let home = env_or_cfg("HOME").map(std::path::PathBuf::from)?;
        let creds = home.join(".claude/.credentials.json");
        creds
            .exists()
            .then(|| format!("logged in ({})", creds.display()))
    });
    out.push(match auth {
        Some(how) => Check::new("claude auth", Good, how, None),
        None => Check::new(
            "claude auth",
            Warn,
            "no API key or login found",
            Some("run `claude` once and /login, or set ANTHROPIC_API_KEY (runs fail with not_logged_in otherwise)"),
        ),
    });

    let dir = &cfg.data_dir;
    let probe = dir.join(".doctor-probe");
    let writable = personas_store::files::create_private_dir(dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    out.push(match writable {
        Ok(()) => Check::new("data dir", Good, dir.display().to_string(), None),
        Err(e) => Check::new(
            "data dir",
            Fail,
            format!("{}: {e}", dir.display()),
            Some("choose another with --data-dir or PERSONAS_DATA_DIR"),
        ),
    });

    // Another local user must not read the store, the config or the token; what the user
    // owns is fixed here, the rest is reported.
    let modes = personas_store::files::secure_data_dir(dir);
    out.push(if modes.is_empty() {
        Check::new(
            "permissions",
            Good,
            "data dir and its files are private to this user",
            None,
        )
    } else {
        let all_fixed = modes.iter().all(|m| m.fixed);
        let detail = modes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Check::new(
            "permissions",
            Warn,
            detail,
            (!all_fixed).then_some(
                "make them private to you: chmod 700 on directories, 600 on files (or ask their owner)",
            ),
        )
    });

    let health = store
        .clone()
        .and_then(|s| s.health().map_err(|e| e.to_string()));
    out.push(match health {
        Ok(h) if h.ok => Check::new(
            "store",
            Good,
            format!(
                "schema v{}, {} journal, {} personas, {} executions, {:.1} MiB",
                h.schema_version,
                h.journal_mode,
                h.personas,
                h.executions,
                h.size_bytes as f64 / 1048576.0
            ),
            None,
        ),
        Ok(h) => Check::new(
            "store",
            Fail,
            format!("integrity check: {}", h.integrity),
            Some("`personas persona export` what is still readable, then `personas restore FILE` (a file `personas backup FILE` wrote) into a new --data-dir"),
        ),
        Err(e) => Check::new(
            "store",
            Fail,
            e,
            Some("check the data dir (--data-dir / PERSONAS_DATA_DIR) is writable"),
        ),
    });
    if let Ok(store) = store {
        out.push(vault_check(store.clone(), Arc::clone(vault)).await);
    }
    out
}

/// `vault`: can credentials be stored and opened? A failure is a warning while no credential
/// is stored (nothing needs the vault yet) and a failure once one is (its runs cannot start).
async fn vault_check(store: Store, vault: Arc<VaultCell>) -> Check {
    let found = tokio::task::spawn_blocking(move || {
        let r = vault.readiness(&store)?;
        let stored = store.credentials().list()?.len();
        Ok::<_, personas_engine::vault::VaultError>((r, stored))
    })
    .await;
    let (r, stored) = match found {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Check::new("vault", CheckStatus::Fail, e.to_string(), None),
        Err(e) => return Check::new("vault", CheckStatus::Fail, e.to_string(), None),
    };
    let place = match r.mode {
        KeyMode::Keychain => "key in the OS keychain",
        KeyMode::Passphrase => "key under PERSONAS_VAULT_PASSPHRASE (Argon2id)",
        KeyMode::None => "no place for a key",
    };
    if r.ready {
        let detail = match r.generation {
            Some(g) if r.created => format!("{place}, generation {g}, {stored} credential(s)"),
            _ => format!("not created yet; the first credential creates it ({place})"),
        };
        return Check::new("vault", CheckStatus::Ok, detail, None);
    }
    Check {
        check: "vault".into(),
        status: if stored > 0 {
            CheckStatus::Fail
        } else {
            CheckStatus::Warn
        },
        detail: r
            .problem
            .unwrap_or_else(|| "credentials cannot be stored".into()),
        hint: r.hint,
    }
}

/// How to install the Claude Code CLI on this OS (the onboarding screen shows it when missing).
pub const INSTALL_HINT: &str = if cfg!(target_os = "windows") {
    "install Node.js LTS (winget install OpenJS.NodeJS.LTS), then run npm install -g \
     @anthropic-ai/claude-code in a new terminal — or set claude_path in config.toml"
} else if cfg!(target_os = "macos") {
    "install Node.js (brew install node), then npm install -g @anthropic-ai/claude-code — or set \
     claude_path in config.toml"
} else {
    "install Node.js 18+ (e.g. sudo apt install nodejs npm), then npm install -g \
     @anthropic-ai/claude-code — or set claude_path in config.toml"
};
