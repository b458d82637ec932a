//! Finding the Claude Code CLI: the configured path, then PATH, then the places its installers
//! put it (npm global prefixes, `~/.local/bin`, `~/.claude/local`).

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the CLI was looked for, for error messages and `personas doctor`.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    /// How it was found: "config", "PATH" or "common location".
    pub how: &'static str,
}

/// The CLI could not be found.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "the Claude Code CLI was not found{configured}. Install it with `npm install -g @anthropic-ai/claude-code` \
     (or see https://docs.claude.com/claude-code), or set `claude_path` in config.toml / PERSONAS_CLAUDE_PATH. \
     Looked in: {searched}"
)]
pub struct NotFound {
    configured: String,
    searched: String,
}

fn binary_name() -> &'static str {
    if cfg!(windows) {
        "claude.exe"
    } else {
        "claude"
    }
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Candidate install locations besides PATH.
fn common_locations() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(home) = dirs::home_dir() {
        v.push(home.join(".local/bin"));
        v.push(home.join(".claude/local"));
        v.push(home.join(".npm-global/bin"));
        v.push(home.join(".local/share/npm/bin"));
        v.push(home.join(".volta/bin"));
        v.push(home.join(".bun/bin"));
        v.push(home.join("AppData/Roaming/npm"));
    }
    if let Some(prefix) = std::env::var_os("NPM_CONFIG_PREFIX") {
        v.push(PathBuf::from(prefix).join("bin"));
    }
    v.push(PathBuf::from("/usr/local/bin"));
    v.push(PathBuf::from("/opt/homebrew/bin"));
    v
}

/// Finds the CLI. `configured` (from config) wins and is not second-guessed: if it is set but
/// wrong, that is reported rather than silently using another binary.
pub fn find_claude(configured: Option<&Path>) -> Result<Located, NotFound> {
    if let Some(p) = configured {
        if is_executable(p) {
            return Ok(Located {
                path: p.to_path_buf(),
                how: "config",
            });
        }
        return Err(NotFound {
            configured: format!(
                " at the configured path {} (missing or not executable)",
                p.display()
            ),
            searched: p.display().to_string(),
        });
    }
    let mut searched = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join(binary_name());
            if is_executable(&c) {
                return Ok(Located {
                    path: c,
                    how: "PATH",
                });
            }
        }
        searched.push("PATH".to_string());
    }
    for dir in common_locations() {
        let c = dir.join(binary_name());
        if is_executable(&c) {
            return Ok(Located {
                path: c,
                how: "common location",
            });
        }
        searched.push(dir.display().to_string());
    }
    Err(NotFound {
        configured: String::new(),
        searched: searched.join(", "),
    })
}

/// Asks the CLI for its version (`claude --version`), bounded in time.
pub async fn claude_version(path: &Path) -> Result<String, String> {
    let fut = tokio::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(15), fut).await {
        Err(_) => Err("`claude --version` did not answer within 15 s".into()),
        Ok(Err(e)) => Err(format!("cannot run {}: {e}", path.display())),
        Ok(Ok(out)) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Ok(Ok(out)) => Err(format!(
            "`claude --version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_configured_path_is_reported_not_replaced() {
        let e = find_claude(Some(Path::new("/nonexistent/claude"))).expect_err("missing");
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/claude"), "{msg}");
        assert!(
            msg.contains("npm install -g @anthropic-ai/claude-code"),
            "{msg}"
        );
    }
}
