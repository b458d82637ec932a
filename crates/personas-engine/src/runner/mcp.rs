//! The run's MCP server: a per-run token and the `--mcp-config` file that makes the CLI start
//! `personas mcp` with it.
//!
//! The token proves to the MCP server which execution it acts for; only its SHA-256 hash is
//! stored, and it stops working when the execution ends. It travels in the config file's `env`
//! block (the file is mode 0600 in a 0700 directory and removed when the run ends), never in
//! argv, where other users could read it in the process table.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The server's name in the config; the CLI calls its tools `mcp__personas__<tool>`.
pub const SERVER_NAME: &str = "personas";
/// Permission rule that allows every tool of the server.
pub const ALLOW_RULE: &str = "mcp__personas";
pub const TOKEN_VAR: &str = "PERSONAS_MCP_TOKEN";
pub const EXECUTION_VAR: &str = "PERSONAS_MCP_EXECUTION_ID";

/// Hex SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random token (256 bits, hex).
pub fn new_token() -> Result<String, String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness for the run token: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The config file of one run; removed when dropped.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
}

impl ConfigFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The CLI arguments that hand this file to the CLI (and nothing else: `--strict-mcp-config`
    /// keeps the user's own MCP servers out of unattended runs).
    pub fn args(&self) -> Vec<String> {
        vec![
            "--mcp-config".into(),
            self.path.display().to_string(),
            "--strict-mcp-config".into(),
        ]
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a run's MCP config");
        }
    }
}

/// The file name of an execution's config inside the run dir.
pub fn file_name(execution_id: &str) -> String {
    format!("{execution_id}.mcp.json")
}

/// Writes the config for one run.
pub fn write_config(
    run_dir: &Path,
    command: &Path,
    data_dir: &Path,
    execution_id: &str,
    token: &str,
) -> Result<ConfigFile, String> {
    create_private_dir(run_dir)?;
    let path = run_dir.join(file_name(execution_id));
    let config = serde_json::json!({
        "mcpServers": {
            SERVER_NAME: {
                "type": "stdio",
                "command": command,
                "args": ["mcp"],
                "env": {
                    "PERSONAS_DATA_DIR": data_dir,
                    EXECUTION_VAR: execution_id,
                    TOKEN_VAR: token,
                }
            }
        }
    });
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    // A leftover from a crashed attempt of the same execution holds a revoked token: replace it.
    let _ = std::fs::remove_file(&path);
    let mut f = opts
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let file = ConfigFile { path };
    f.write_all(config.to_string().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", file.path.display()))?;
    Ok(file)
}

fn create_private_dir(dir: &Path) -> Result<(), String> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Issues the run's MCP token and writes its config, when an MCP server is configured.
pub(crate) async fn prepare(
    rt: &super::Runtime,
    execution: &personas_core::Execution,
) -> Result<Option<(ConfigFile, personas_core::Secret)>, String> {
    let Some(command) = rt.config.mcp_command.clone() else {
        return Ok(None);
    };
    let token = new_token()?;
    let (store, id, hash) = (
        rt.store.clone(),
        execution.id.to_string(),
        token_hash(&token),
    );
    super::blocking(move || store.credentials().issue_run_token(&id, &hash))
        .await
        .map_err(|e| format!("cannot issue the run's MCP token: {e}"))?;
    let file = write_config(
        &rt.config.run_dir(),
        &command,
        &rt.config.data_dir,
        execution.id.as_str(),
        &token,
    )?;
    Ok(Some((file, personas_core::Secret::new(token))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_private_names_the_server_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        let f =
            write_config(&run, Path::new("/bin/personas"), dir.path(), "e1", "tok").expect("write");
        let text = std::fs::read_to_string(f.path()).expect("read");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["mcpServers"]["personas"]["args"][0], "mcp");
        assert_eq!(v["mcpServers"]["personas"]["env"][TOKEN_VAR], "tok");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(f.path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(&run).expect("meta").permissions().mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        assert_eq!(f.args()[0], "--mcp-config");
        let path = f.path().to_path_buf();
        drop(f);
        assert!(!path.exists());
        assert_ne!(token_hash("a"), token_hash("b"));
        assert_eq!(token_hash("a").len(), 64);
        assert_ne!(new_token().expect("t"), new_token().expect("t"));
    }
}
