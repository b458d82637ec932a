//! The pinned real Claude Code CLI for end-to-end tests: where it is ([`claude_bin`]), the
//! isolated environment it runs in ([`isolated_env`]) and a run-to-completion helper
//! ([`run_claude`]).
//!
//! The environment mirrors how the reference recordings were made (README §2 and §6.7): nothing
//! inherited from the developer's shell, a fresh `HOME`, the API pointed at a [`ScriptedApi`],
//! telemetry and auto-update off, and no retries so scripted failures end fast.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::api::ScriptedApi;

/// The Claude Code CLI version the project is pinned to (see `scripts/install-claude.sh`).
pub const CLAUDE_CODE_VERSION: &str = "2.1.197";

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("personas-testkit lives at <workspace>/crates/personas-testkit")
}

/// The pinned CLI: `$PERSONAS_TEST_CLAUDE` if set, else
/// `<workspace>/.tools/claude-code/node_modules/.bin/claude`.
///
/// # Panics
/// When the binary does not exist, telling how to install it.
pub fn claude_bin() -> PathBuf {
    let path = match std::env::var_os("PERSONAS_TEST_CLAUDE") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace_root().join(".tools/claude-code/node_modules/.bin/claude"),
    };
    assert!(
        path.exists(),
        "Claude Code CLI {CLAUDE_CODE_VERSION} not found at {}: run `make test` (or \
         scripts/install-claude.sh) to install the pinned Claude Code CLI",
        path.display()
    );
    path
}

/// A fresh `HOME` plus the complete environment for one CLI run.
///
/// Keep it alive as long as the CLI runs: dropping it deletes `HOME`.
#[derive(Debug)]
pub struct IsolatedEnv {
    pub home: TempDir,
    /// Every variable the CLI gets; nothing else is inherited (see [`IsolatedEnv::command`]).
    pub vars: Vec<(String, String)>,
}

impl IsolatedEnv {
    /// Sets `key` (replacing an earlier value), e.g. `CLAUDE_CODE_MAX_RETRIES`.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.vars.push((key.to_owned(), value.to_owned())),
        }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A command for `program` with a cleared environment plus [`IsolatedEnv::vars`].
    /// `kill_on_drop` is on so a test that panics does not leak a CLI.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        cmd
    }
}

/// An environment that sends the CLI to `api` and keeps it away from the real user's files.
pub fn isolated_env(api: &ScriptedApi) -> IsolatedEnv {
    let home = tempfile::Builder::new()
        .prefix("personas-claude-home-")
        .tempdir()
        .expect("create a temporary HOME for the Claude Code CLI");
    let home_str = home
        .path()
        .to_str()
        .expect("temporary directory path is UTF-8")
        .to_owned();
    let vars = [
        ("ANTHROPIC_BASE_URL", api.base_url()),
        ("ANTHROPIC_API_KEY", "test-key".to_owned()),
        ("DISABLE_TELEMETRY", "1".to_owned()),
        ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
        // Every retryable error costs up to ~3 minutes of backoff with the default 10 retries.
        ("CLAUDE_CODE_MAX_RETRIES", "0".to_owned()),
        ("HOME", home_str),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_owned()),
    ];
    IsolatedEnv {
        home,
        vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// What one finished CLI run printed.
#[derive(Debug)]
pub struct ClaudeRun {
    /// Every stdout line, parsed.
    pub lines: Vec<Value>,
    pub stderr: String,
    pub status: ExitStatus,
}

impl ClaudeRun {
    /// The last `result` line.
    ///
    /// # Panics
    /// When there is none, showing the transcript and stderr.
    pub fn result(&self) -> &Value {
        self.lines
            .iter()
            .rev()
            .find(|l| l["type"] == "result")
            .unwrap_or_else(|| {
                panic!(
                    "no result line; stdout: {:#?}\nstderr: {}",
                    self.lines, self.stderr
                )
            })
    }

    /// Lines whose `type` is `ty`.
    pub fn of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |l| l["type"] == ty)
    }
}

/// Runs the pinned CLI in `cwd` with `args`, writes `prompt` to its stdin and closes it, and
/// waits for it to exit.
///
/// # Panics
/// When the CLI cannot start, does not finish within `timeout` (it is killed first), or prints a
/// stdout line that is not JSON.
pub async fn run_claude(
    env: &IsolatedEnv,
    cwd: &Path,
    args: &[&str],
    prompt: &str,
    timeout: Duration,
) -> ClaudeRun {
    let mut child = env
        .command(claude_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the Claude Code CLI");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A CLI that exits early (usage error) closes its stdin; that is not this helper's failure.
    let _ = stdin.write_all(prompt.as_bytes()).await;
    drop(stdin);
    // On timeout the future (and with it the child, kill_on_drop) is dropped: no leaked CLI.
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("Claude Code CLI {args:?} did not exit within {timeout:?}"))
        .expect("wait for the Claude Code CLI");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("CLI stdout line is not JSON ({e}): {l}"))
        })
        .collect();
    ClaudeRun {
        lines,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        status: output.status,
    }
}

/// The `personas-fake-claude` stand-in (see the crate docs), next to the test binaries of this
/// build. `cargo test --workspace` builds it; when a narrower run did not, it is built here.
///
/// # Panics
/// When it is missing and cannot be built.
pub fn fake_claude_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // Test binaries live in <target>/<profile>/deps; binaries in <target>/<profile>.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary inside <target>/<profile>/deps")
        .to_path_buf();
    let path = profile_dir.join("personas-fake-claude");
    if path.exists() {
        return path;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "personas-testkit",
        "--bin",
        "personas-fake-claude",
    ])
    .current_dir(workspace_root());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .expect("run cargo build for personas-fake-claude");
    assert!(
        status.success() && path.exists(),
        "could not build personas-fake-claude at {}: run `cargo build -p personas-testkit --bins`",
        path.display()
    );
    path
}
