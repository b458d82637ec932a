//! The Claude CLI's own session files for each run — above all the session transcript
//! (`projects/<cwd>/<session>.jsonl`) that resuming after a review needs, but also the CLI's
//! todos, shell snapshots, file-history backups and large tool results — kept under the data
//! dir instead of the user's `~/.claude`, redacted after every segment of the run, and purged
//! with the execution ([`purge_transcripts`]).
//!
//! How: each execution's CLI gets `CLAUDE_CONFIG_DIR=<data dir>/claude/<execution id>` (0700;
//! a resumed segment of the same execution finds its session there again). The user's login
//! stays where it is and keeps working: Claude Code 2.1 reads its credential store — the
//! `.credentials.json` file on Linux and Windows, the Keychain item on macOS — from
//! `CLAUDE_SECURESTORAGE_CONFIG_DIR` when that is set, so it is pointed back at the user's own
//! config dir (empty = the default `~/.claude` and the default Keychain item). A token refresh
//! then updates the user's own store; nothing of the login is copied. The one login kept in the
//! global config file instead (`primaryApiKey` in `~/.claude.json`, a Console account's key on
//! Linux and Windows) is handed to the run as `ANTHROPIC_API_KEY` ([`Prepared::login_key`]),
//! a secret the run's redactor knows.
//!
//! The trade-off: the user's `~/.claude/settings.json` (hooks, `apiKeyHelper`, permissions)
//! and `CLAUDE.md` no longer apply to persona runs — a persona's policy is its own.

use crate::config::EngineConfig;
use personas_core::Secret;
use personas_core::redact::Redactor;
use std::path::{Path, PathBuf};

/// Where under the data dir the CLI's per-execution config dirs live.
pub const DIR: &str = "claude";
/// Files larger than this are not rewritten by [`seal`] (the CLI keeps large tool results in
/// files of their own; beyond this they are left as they are, still 0600 under a 0700 dir).
const REDACT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The CLI config dir of one execution.
pub fn dir(data_dir: &Path, execution_id: &str) -> PathBuf {
    data_dir.join(DIR).join(execution_id)
}

/// What a run needs so the CLI keeps its session files under the data dir.
#[derive(Debug, Default)]
pub struct Prepared {
    /// `CLAUDE_CONFIG_DIR` and `CLAUDE_SECURESTORAGE_CONFIG_DIR`, for `Invocation.extra_env`.
    pub env: Vec<(String, String)>,
    /// The user's `/login` API key from the global config file, when that is how they log in
    /// (and no `ANTHROPIC_API_KEY` is set already): passed as `ANTHROPIC_API_KEY`.
    pub login_key: Option<Secret>,
}

/// Creates the execution's CLI config dir (0700) and says how to point the CLI at it.
pub fn prepare(config: &EngineConfig, execution_id: &str) -> std::io::Result<Prepared> {
    let root = config.data_dir.join(DIR);
    let own = root.join(execution_id);
    std::fs::create_dir_all(&own)?;
    restrict_dir(&root)?;
    restrict_dir(&own)?;
    let user_dir = run_var(config, "CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty());
    let env = vec![
        ("CLAUDE_CONFIG_DIR".to_string(), own.display().to_string()),
        (
            "CLAUDE_SECURESTORAGE_CONFIG_DIR".to_string(),
            user_dir.clone().unwrap_or_default(),
        ),
    ];
    let login_key = if run_var(config, "ANTHROPIC_API_KEY").is_some() {
        None
    } else {
        login_key(config, user_dir.as_deref())
    };
    Ok(Prepared { env, login_key })
}

/// A variable as the run will see it: the config's `[env]` first, then the daemon's own.
fn run_var(config: &EngineConfig, name: &str) -> Option<String> {
    config
        .env
        .get(name)
        .cloned()
        .or_else(|| std::env::var(name).ok())
}

/// `primaryApiKey` from the user's global CLI config (where the CLI itself looks for it:
/// `<config dir>/.config.json` if present, else `<config dir or HOME>/.claude.json`).
fn login_key(config: &EngineConfig, user_dir: Option<&str>) -> Option<Secret> {
    let home = run_var(config, "HOME")
        .map(PathBuf::from)
        .or_else(dirs::home_dir)?;
    let config_dir = user_dir
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".claude"));
    let legacy = config_dir.join(".config.json");
    let file = if legacy.exists() {
        legacy
    } else {
        user_dir
            .map(PathBuf::from)
            .unwrap_or(home)
            .join(".claude.json")
    };
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let key = json.get("primaryApiKey")?.as_str()?;
    (!key.is_empty()).then(|| Secret::new(key))
}

/// After a segment of the run: every file the CLI wrote for this execution passes the run's
/// redactor and is made 0600 (directories 0700). Returns how many files were rewritten.
pub fn seal(data_dir: &Path, execution_id: &str, redactor: &Redactor) -> std::io::Result<usize> {
    let own = dir(data_dir, execution_id);
    if !own.exists() {
        return Ok(0);
    }
    let mut rewritten = 0;
    let mut pending = vec![own];
    while let Some(d) = pending.pop() {
        restrict_dir(&d)?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                if redact_file(&path, redactor, entry.metadata()?.len())? {
                    rewritten += 1;
                }
                restrict_file(&path)?;
            }
        }
    }
    Ok(rewritten)
}

/// Rewrites a text file with its secrets redacted; binary and oversized files are left as is.
fn redact_file(path: &Path, redactor: &Redactor, len: u64) -> std::io::Result<bool> {
    if redactor.is_empty() || len > REDACT_MAX_BYTES {
        return Ok(false);
    }
    let Ok(text) = String::from_utf8(std::fs::read(path)?) else {
        return Ok(false);
    };
    let redacted = redactor.redact(&text);
    if redacted == text {
        return Ok(false);
    }
    // Written beside it and renamed over it, so a crash leaves one whole version.
    let tmp = path.with_extension("redacting");
    std::fs::write(&tmp, redacted.as_bytes())?;
    restrict_file(&tmp)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// Removes the CLI's session files of one execution (its transcript included). For retention
/// and execution deletion; true when there was something to remove.
pub fn purge_transcripts(data_dir: &Path, execution_id: &str) -> std::io::Result<bool> {
    // An id is one path component: never let a crafted id reach outside the dir.
    if execution_id.is_empty()
        || execution_id.contains(['/', '\\'])
        || execution_id == "."
        || execution_id == ".."
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not an execution id: {execution_id:?}"),
        ));
    }
    match std::fs::remove_dir_all(dir(data_dir, execution_id)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the session files of every execution `exists` no longer knows (deleted with their
/// persona, or by retention in another process). Returns how many were removed.
pub fn purge_orphaned_transcripts(
    data_dir: &Path,
    exists: impl Fn(&str) -> bool,
) -> std::io::Result<usize> {
    let root = data_dir.join(DIR);
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut purged = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !exists(&name) && purge_transcripts(data_dir, &name)? {
            purged += 1;
        }
    }
    Ok(purged)
}

#[cfg(unix)]
fn restrict_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(unix)]
fn restrict_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

// Windows: files under the user's profile inherit an ACL that admits only that user (and
// administrators); there are no mode bits to set.
#[cfg(not(unix))]
fn restrict_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
fn restrict_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_store_stays_the_users_and_a_console_key_is_handed_over() {
        let data = tempfile::tempdir().expect("tempdir");
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            home.path().join(".claude.json"),
            r#"{"primaryApiKey":"sk-ant-console-key","userID":"u"}"#,
        )
        .expect("write");
        let mut config = EngineConfig::for_data_dir(data.path());
        config
            .env
            .insert("HOME".into(), home.path().display().to_string());
        config.env.remove("ANTHROPIC_API_KEY");
        // Only meaningful when the daemon itself has no key or custom config dir.
        if std::env::var_os("ANTHROPIC_API_KEY").is_some()
            || std::env::var_os("CLAUDE_CONFIG_DIR").is_some()
        {
            return;
        }
        let p = prepare(&config, "e1").expect("prepare");
        let own = dir(data.path(), "e1");
        assert!(own.is_dir());
        assert!(
            p.env
                .contains(&("CLAUDE_CONFIG_DIR".into(), own.display().to_string()))
        );
        assert!(
            p.env
                .contains(&("CLAUDE_SECURESTORAGE_CONFIG_DIR".into(), String::new()))
        );
        assert_eq!(p.login_key.expect("key").expose(), "sk-ant-console-key");
        // A key in the run's environment already wins.
        config.env.insert("ANTHROPIC_API_KEY".into(), "k".into());
        assert!(prepare(&config, "e1").expect("prepare").login_key.is_none());
    }

    #[test]
    fn seal_redacts_and_restricts_and_purge_removes_only_that_execution() {
        let data = tempfile::tempdir().expect("tempdir");
        for id in ["e1", "e2"] {
            let nested = dir(data.path(), id).join("projects").join("-w");
            std::fs::create_dir_all(&nested).expect("mkdir");
            std::fs::write(
                nested.join("s.jsonl"),
                "{\"text\":\"token hunter2-secret\"}\n",
            )
            .expect("write");
        }
        let secret = Secret::new("hunter2-secret");
        let redactor = Redactor::new([("cred.token", &secret)]);
        assert_eq!(seal(data.path(), "e1", &redactor).expect("seal"), 1);
        let file = dir(data.path(), "e1").join("projects/-w/s.jsonl");
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(!text.contains("hunter2-secret"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&file), 0o600);
            assert_eq!(mode(&dir(data.path(), "e1").join("projects")), 0o700);
        }
        assert!(purge_transcripts(data.path(), "e1").expect("purge"));
        assert!(!dir(data.path(), "e1").exists());
        assert!(dir(data.path(), "e2").exists());
        assert!(!purge_transcripts(data.path(), "e1").expect("purge again"));
        assert_eq!(
            purge_orphaned_transcripts(data.path(), |id| id == "e2").expect("sweep"),
            0
        );
        assert_eq!(
            purge_orphaned_transcripts(data.path(), |_| false).expect("sweep"),
            1
        );
        assert!(!dir(data.path(), "e2").exists());
        assert!(purge_transcripts(data.path(), "..").is_err());
        assert!(purge_transcripts(data.path(), "a/b").is_err());
    }
}
