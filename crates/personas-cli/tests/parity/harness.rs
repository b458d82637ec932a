//! Runs one parity [`Case`] in fresh data dirs with and without a real `personas up`.

use personas_testkit::api::ScriptedApi;
use personas_testkit::claude::{IsolatedEnv, claude_bin, isolated_env};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const WAIT: Duration = Duration::from_secs(60);
/// The vault of every data dir here: CI has no OS keychain.
pub const PASSPHRASE: &str = "parity passphrase, long enough";

/// An operation, the CLI command that performs it and the HTTP request it amounts to.
#[derive(Debug, Clone)]
pub struct Case {
    pub op: &'static str,
    /// CLI commands (without `--json`) run first, in every data dir; each must succeed. `$id`
    /// in the command and the request stands for the `id` the last one printed as JSON.
    pub setup: Vec<Vec<String>>,
    /// The command under test, without `--json`.
    pub argv: Vec<String>,
    /// The body of `POST /api/<op>` the command amounts to.
    pub request: Value,
    /// The command changes what is stored: its output is compared with the HTTP answer in a
    /// twin data dir (masked), not on the same state.
    pub changes: bool,
    /// Keys masked besides ids and times (e.g. a duration).
    pub volatile: Vec<&'static str>,
    /// Values looked up in each data dir after the setup, put in place of a placeholder in
    /// `argv` and `request` (an id the setup made). `{dir}` always stands for the data dir.
    pub lookups: Vec<Lookup>,
}

/// `placeholder` stands for the string at `pointer` (a JSON pointer) in what `personas
/// <argv> --json` prints.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub placeholder: &'static str,
    pub argv: Vec<String>,
    pub pointer: &'static str,
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Case {
    /// A command that only reads.
    pub fn read(op: &'static str, argv: &[&str], request: Value) -> Case {
        Case {
            op,
            setup: Vec::new(),
            argv: strings(argv),
            request,
            changes: false,
            volatile: Vec::new(),
            lookups: Vec::new(),
        }
    }

    /// A command that changes what is stored.
    pub fn change(op: &'static str, argv: &[&str], request: Value) -> Case {
        Case {
            changes: true,
            ..Case::read(op, argv, request)
        }
    }

    /// CLI commands run before the one under test.
    pub fn after(mut self, setup: &[&[&str]]) -> Case {
        self.setup.extend(setup.iter().map(|a| strings(a)));
        self
    }

    /// Keys whose values differ between two equal runs (masked like ids).
    pub fn volatile(mut self, keys: &[&'static str]) -> Case {
        self.volatile.extend_from_slice(keys);
        self
    }

    /// `placeholder` in the command and the request stands for the string at `pointer` in
    /// what `personas <argv> --json` prints after the setup (e.g. the id of what it made).
    pub fn lookup(
        mut self,
        placeholder: &'static str,
        argv: &[&str],
        pointer: &'static str,
    ) -> Case {
        self.lookups.push(Lookup {
            placeholder,
            argv: strings(argv),
            pointer,
        });
        self
    }
}

/// One data dir, the scripted Messages API its runs talk to, and maybe a runtime on it.
struct Dir {
    _api: ScriptedApi,
    claude_env: IsolatedEnv,
    dir: tempfile::TempDir,
    runtime: Option<Runtime>,
}

struct Runtime {
    child: tokio::process::Child,
    url: String,
    token: String,
}

impl Dir {
    async fn new() -> Dir {
        let api = ScriptedApi::start().await;
        let claude_env = isolated_env(&api);
        Dir {
            _api: api,
            claude_env,
            dir: tempfile::tempdir().expect("tempdir"),
            runtime: None,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_personas"));
        c.env_clear();
        for (k, v) in &self.claude_env.vars {
            c.env(k, v);
        }
        c.env("PERSONAS_DATA_DIR", self.path())
            .env("PERSONAS_CLAUDE_PATH", claude_bin())
            .env("PERSONAS_VAULT_PASSPHRASE", PASSPHRASE)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn up(&mut self) -> Result<(), String> {
        let mut cmd = self.command();
        cmd.args(["up", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("spawn personas up: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let url = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("running at ").nth(1) {
                    return rest.split_whitespace().next().map(str::to_string);
                }
            }
            None
        })
        .await
        .map_err(|_| "personas up did not become ready".to_string())?
        .ok_or("personas up ended without printing its URL")?;
        // Keep draining stdout so the runtime never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let token = std::fs::read_to_string(self.path().join("api-token"))
            .map_err(|e| format!("read api-token: {e}"))?
            .trim()
            .to_string();
        self.runtime = Some(Runtime { child, url, token });
        Ok(())
    }

    async fn down(&mut self) {
        if let Some(mut rt) = self.runtime.take() {
            let _ = rt.child.start_kill();
            let _ = rt.child.wait().await;
        }
    }

    /// `personas <args>`: its stdout when it succeeds.
    async fn cli(&self, args: &[String]) -> Result<Vec<u8>, String> {
        let out = tokio::time::timeout(WAIT, self.command().args(args).output())
            .await
            .map_err(|_| format!("{args:?} did not finish"))?
            .map_err(|e| format!("run {args:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{args:?} exited {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out.stdout)
    }

    async fn cli_json(&self, argv: &[String]) -> Result<Value, String> {
        let mut all = argv.to_vec();
        all.push("--json".into());
        let out = self.cli(&all).await?;
        serde_json::from_slice(&out).map_err(|e| {
            format!(
                "{argv:?} --json printed non-JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        })
    }

    async fn http(&self, op: &str, request: &Value) -> Result<Value, String> {
        let rt = self.runtime.as_ref().ok_or("no runtime")?;
        let resp = reqwest::Client::new()
            .post(format!("{}/api/{op}", rt.url))
            .bearer_auth(&rt.token)
            .json(request)
            .timeout(WAIT)
            .send()
            .await
            .map_err(|e| format!("POST /api/{op}: {e}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("POST /api/{op}: body: {e}"))?;
        if !status.is_success() {
            return Err(format!("POST /api/{op} answered {status}: {body}"));
        }
        Ok(body)
    }

    /// Runs the setup commands; returns the case with `$id` in its command and request replaced
    /// by the `id` the last setup command printed as JSON (so a case can name what its setup
    /// made: an execution, a memory), in this data dir.
    async fn setup(&self, case: &Case) -> Result<Case, String> {
        let mut last = Vec::new();
        for cmd in &case.setup {
            let cmd: Vec<String> = cmd.iter().map(|a| self.in_dir(a)).collect();
            last = self.cli(&cmd).await?;
        }
        let Some(id) = printed_id(&last) else {
            return Ok(case.clone());
        };
        let mut case = case.clone();
        for a in &mut case.argv {
            *a = a.replace("$id", &id);
        }
        case.request = with_id(&case.request, &id);
        Ok(case)
    }

    fn in_dir(&self, s: &str) -> String {
        s.replace("{dir}", &self.path().display().to_string())
    }

    /// The case's command and request with its placeholders filled in for this data dir.
    async fn resolve(&self, case: &Case) -> Result<(Vec<String>, Value), String> {
        let mut pairs = vec![("{dir}".to_string(), self.path().display().to_string())];
        for l in &case.lookups {
            let found = self.cli_json(&l.argv).await?;
            let value = found
                .pointer(l.pointer)
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    format!(
                        "{:?} --json has no string at {}: {found}",
                        l.argv, l.pointer
                    )
                })?;
            pairs.push((l.placeholder.to_string(), value.to_string()));
        }
        let fill = |s: &str| {
            pairs
                .iter()
                .fold(s.to_string(), |acc, (p, v)| acc.replace(p.as_str(), v))
        };
        let argv = case.argv.iter().map(|a| fill(a)).collect();
        Ok((argv, fill_json(&case.request, &fill)))
    }
}

/// The `id` of the JSON a command printed: one value, or JSON lines ending with it
/// (`run --follow --json`).
fn printed_id(stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stdout);
    let value: Value = serde_json::from_str(&text)
        .ok()
        .or_else(|| serde_json::from_str(text.lines().rfind(|l| !l.trim().is_empty())?).ok())?;
    value["id"].as_str().map(str::to_string)
}

fn with_id(v: &Value, id: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("$id", id)),
        Value::Array(items) => Value::Array(items.iter().map(|i| with_id(i, id)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_id(v, id)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Checks one case (see `tests/parity.rs`).
pub async fn check(case: &Case) -> Result<(), String> {
    // 1. A runtime holds the data dir: the CLI's calls go over HTTP.
    let mut up = Dir::new().await;
    up.up().await?;
    let here = up.setup(case).await?;
    let (argv, request) = up.resolve(&here).await?;
    let by_cli = up.cli_json(&argv).await?;
    if case.changes {
        let mut twin = Dir::new().await;
        twin.up().await?;
        let there = twin.setup(case).await?;
        let (_, request) = twin.resolve(&there).await?;
        let by_http = twin.http(case.op, &request).await?;
        twin.down().await;
        same(
            &case.volatile,
            "CLI with a runtime",
            &by_cli,
            "HTTP in a twin data dir",
            &by_http,
        )?;
    } else {
        let by_http = up.http(case.op, &request).await?;
        // The runtime may move on between the two reads (an event it dispatches): only the
        // keys the case calls volatile may differ.
        if only_volatile(&by_cli, &case.volatile) != only_volatile(&by_http, &case.volatile) {
            return Err(format!(
                "the CLI printed\n{}\nbut the HTTP API answered\n{}",
                pretty(&by_cli),
                pretty(&by_http)
            ));
        }
    }
    up.down().await;

    // 2. Nothing holds the data dir: the CLI runs the operation in process.
    let alone = Dir::new().await;
    let here = alone.setup(case).await?;
    let (argv, _) = alone.resolve(&here).await?;
    let in_process = alone.cli_json(&argv).await?;
    same(
        &case.volatile,
        "CLI with a runtime",
        &by_cli,
        "CLI without one",
        &in_process,
    )
}

fn same(volatile: &[&str], a_name: &str, a: &Value, b_name: &str, b: &Value) -> Result<(), String> {
    let (ma, mb) = (mask_with(a, volatile), mask_with(b, volatile));
    if ma == mb {
        Ok(())
    } else {
        Err(format!(
            "{a_name} printed\n{}\nbut {b_name} printed\n{}",
            pretty(&ma),
            pretty(&mb)
        ))
    }
}

/// `v` with every string passed through `fill`.
fn fill_json(v: &Value, fill: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(fill(s)),
        Value::Array(items) => Value::Array(items.iter().map(|i| fill_json(i, fill)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_json(v, fill)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `v` with the values of `volatile` keys masked, and nothing else.
fn only_volatile(v: &Value, volatile: &[&str]) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let masked = if volatile.contains(&k.as_str()) {
                        Value::String("<volatile>".into())
                    } else {
                        only_volatile(v, volatile)
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| only_volatile(i, volatile)).collect())
        }
        other => other.clone(),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// `v` with ids and times replaced by `<id>` / `<time>`: values of `id`, `*_id`, `*_ids`,
/// `*_at` keys, and any string shaped like a UUID or an RFC 3339 time.
pub fn mask(v: &Value) -> Value {
    mask_with(v, &[])
}

fn mask_with(v: &Value, volatile: &[&str]) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let masked = if volatile.contains(&k.as_str()) {
                        Value::String("<volatile>".into())
                    } else if k.ends_with("_at") && !v.is_null() {
                        Value::String("<time>".into())
                    } else if (k == "id" || k.ends_with("_id") || k.ends_with("_ids"))
                        && !v.is_null()
                    {
                        mask_ids(v)
                    } else {
                        mask_with(v, volatile)
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| mask_with(i, volatile)).collect()),
        Value::String(s) if looks_like_uuid(s) => Value::String("<id>".into()),
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
            Value::String("<time>".into())
        }
        other => other.clone(),
    }
}

fn mask_ids(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(mask_ids).collect()),
        _ => Value::String("<id>".into()),
    }
}

fn looks_like_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}
