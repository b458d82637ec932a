//! [`CloudStack`]: a whole cloud deployment on loopback, for tests and `make cloud-dev` —
//! Postgres and the broker of [`super`], then N orchestrators and M workers as processes of a
//! given `personas-cloud` binary, with generated deployment secret, master key and admin token.
//!
//! Readiness is waited for, never slept on: an orchestrator is up when `GET /ready` answers
//! 200, a worker when an orchestrator's `get_cluster` lists it. Every child writes its output
//! to a log file in the stack's directory (the paths and the log's tail are in every panic
//! message), and every child is stopped when the stack drops: workers first, then the
//! orchestrators (SIGTERM, SIGKILL after a grace period), then the broker and Postgres.
//!
//! The children's environment is ours minus every `PERSONAS_CLOUD_*`, `ANTHROPIC_*` and
//! `CLAUDE_CODE_*` variable, so a developer's own credentials never reach a test's workers by
//! accident; model credentials are what the caller passes in [`StackOptions::worker_env`].

use super::{Broker, Postgres, free_port};
use personas_cloud_api::CloudClient;
use personas_cloud_api::model::Empty;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The database the orchestrators keep their state in.
pub const CLOUD_DATABASE: &str = "personas_cloud";

/// The deployment's generated secrets, passed to the children by environment (never by flag:
/// `ps` shows flags to everyone on the machine).
#[derive(Clone)]
pub struct StackSecrets {
    /// Workers' tokens derive from it.
    pub deployment_secret: String,
    /// 64 hex digits: the key credentials are sealed with.
    pub master_key: String,
    /// The static bearer token of the `admin` tenant.
    pub admin_token: String,
}

impl std::fmt::Debug for StackSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StackSecrets([redacted])")
    }
}

/// 32 random bytes as 64 hex digits (two v4 UUIDs carry 244 random bits: plenty for a test or
/// a developer's stack, and no extra dependency).
fn random_hex64() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl StackSecrets {
    /// Fresh random secrets.
    pub fn generate() -> StackSecrets {
        StackSecrets {
            deployment_secret: random_hex64(),
            master_key: random_hex64(),
            admin_token: format!("pca_{}", random_hex64()),
        }
    }

    /// The secrets stored in `path` (`KEY=value` lines, as written by [`StackSecrets::save`]),
    /// or fresh ones saved there when the file does not exist. A stack whose Postgres is reused
    /// must reuse its master key, or the sealed credentials there cannot be opened.
    pub fn load_or_create(path: &Path) -> StackSecrets {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let get = |key: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                        .map(|v| v.trim().to_string())
                        .filter(|v| !v.is_empty())
                        .unwrap_or_else(|| panic!("{} has no {key}= line", path.display()))
                };
                StackSecrets {
                    deployment_secret: get("PERSONAS_CLOUD_DEPLOYMENT_SECRET"),
                    master_key: get("PERSONAS_CLOUD_MASTER_KEY"),
                    admin_token: get("PERSONAS_CLOUD_ADMIN_TOKEN"),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secrets = StackSecrets::generate();
                secrets.save(path);
                secrets
            }
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }

    /// Writes them to `path`, readable by its owner only.
    pub fn save(&self, path: &Path) {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        writeln!(
            file,
            "PERSONAS_CLOUD_DEPLOYMENT_SECRET={}\nPERSONAS_CLOUD_MASTER_KEY={}\nPERSONAS_CLOUD_ADMIN_TOKEN={}",
            self.deployment_secret, self.master_key, self.admin_token
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    fn env(&self) -> [(&'static str, String); 2] {
        [
            (
                "PERSONAS_CLOUD_DEPLOYMENT_SECRET",
                self.deployment_secret.clone(),
            ),
            ("PERSONAS_CLOUD_MASTER_KEY", self.master_key.clone()),
        ]
    }
}

/// What to start.
#[derive(Clone)]
pub struct StackOptions {
    /// The `personas-cloud` binary (in a test of that crate: `env!("CARGO_BIN_EXE_personas-cloud")`).
    pub binary: PathBuf,
    /// Where data and logs go; a fresh temporary directory when `None` (removed on drop). An
    /// existing directory is reused: Postgres' cluster and the broker's topics survive.
    pub dir: Option<PathBuf>,
    pub orchestrators: usize,
    pub workers: usize,
    /// Ports for the orchestrators, in order; the rest get free ports.
    pub orchestrator_ports: Vec<u16>,
    /// Extra environment of every orchestrator (`PERSONAS_CLOUD_WORKER_TIMEOUT_MS`, …).
    pub orchestrator_env: Vec<(String, String)>,
    /// Extra environment of every worker: the model credentials (`ANTHROPIC_BASE_URL`,
    /// `ANTHROPIC_API_KEY`, `CLAUDE_CODE_OAUTH_TOKEN`) and anything else.
    pub worker_env: Vec<(String, String)>,
    /// The Claude CLI the workers run (`PERSONAS_CLOUD_CLAUDE_PATH`).
    pub claude_path: Option<PathBuf>,
    /// Generated when `None`.
    pub secrets: Option<StackSecrets>,
    /// The topics' namespace (several stacks may share nothing, but a reused broker could).
    pub namespace: String,
    /// How long each start (Postgres, broker, every orchestrator, every worker) may take.
    pub ready_timeout: Duration,
}

/// The environments hold model credentials: `Debug` names their keys only.
impl std::fmt::Debug for StackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys =
            |env: &[(String, String)]| env.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        f.debug_struct("StackOptions")
            .field("binary", &self.binary)
            .field("dir", &self.dir)
            .field("orchestrators", &self.orchestrators)
            .field("workers", &self.workers)
            .field("orchestrator_ports", &self.orchestrator_ports)
            .field("orchestrator_env", &keys(&self.orchestrator_env))
            .field("worker_env", &keys(&self.worker_env))
            .field("claude_path", &self.claude_path)
            .field("secrets", &self.secrets)
            .field("namespace", &self.namespace)
            .field("ready_timeout", &self.ready_timeout)
            .finish()
    }
}

impl StackOptions {
    /// Two orchestrators and two workers of `binary`, everything else defaulted.
    pub fn new(binary: impl Into<PathBuf>) -> StackOptions {
        StackOptions {
            binary: binary.into(),
            dir: None,
            orchestrators: 2,
            workers: 2,
            orchestrator_ports: Vec::new(),
            orchestrator_env: Vec::new(),
            worker_env: Vec::new(),
            claude_path: None,
            secrets: None,
            namespace: "personas".into(),
            ready_timeout: Duration::from_secs(60),
        }
    }
}

/// One child process of the stack, and how to start it again.
struct Node {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

/// Variables of ours a child must not inherit (see the module doc).
fn inherited(key: &str) -> bool {
    !(key.starts_with("PERSONAS_CLOUD_")
        || key.starts_with("ANTHROPIC_")
        || key.starts_with("CLAUDE_CODE_"))
}

impl Node {
    fn spawn(&mut self, binary: &Path) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let mut cmd = Command::new(binary);
        cmd.args(&self.args)
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| inherited(k)))
            // The logs are files: no colour codes in them (tracing's fmt honours NO_COLOR).
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({}): {e}", self.name, binary.display()));
        self.child = Some(child);
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` when the process has ended.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log's last lines, for panic messages.
    fn tail(&self) -> String {
        log_tail(&self.log, 40)
    }
}

/// The last `lines` lines of a log file (at most its last 16 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut text = String::new();
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_ok() {
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running deployment: Postgres, the broker, orchestrators and workers.
pub struct CloudStack {
    options: StackOptions,
    secrets: StackSecrets,
    dir: PathBuf,
    orchestrators: Vec<Node>,
    ports: Vec<u16>,
    workers: Vec<Node>,
    // Dropped after our own `Drop` stopped the processes above: the broker, then Postgres,
    // then the temporary directory they live in.
    broker: Broker,
    postgres: Postgres,
    _temp: Option<tempfile::TempDir>,
}

/// Sends SIGTERM to every node, waits for all of them up to `grace`, then SIGKILLs the rest.
fn stop_all(nodes: &mut [Node], grace: Duration) {
    let mut children: Vec<Child> = nodes.iter_mut().filter_map(|n| n.child.take()).collect();
    for child in &children {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        children.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        if children.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs blocking setup (initdb, the broker's start) off the async runtime; a panic there is
/// the caller's panic.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a setup step was cancelled: {e}"),
    }
}

impl CloudStack {
    /// Starts everything `options` asks for and waits until the orchestrators are ready and
    /// every worker is connected. Panics (after stopping what it started) on any failure, with
    /// the failing process's log.
    pub async fn start(options: StackOptions) -> CloudStack {
        let (temp, dir) = match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
                let dir = std::fs::canonicalize(dir)
                    .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.display()));
                (None, dir)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("personas-cloud-")
                    .tempdir()
                    .expect("cannot create a temp dir");
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        std::fs::create_dir_all(dir.join("logs")).expect("cannot create the logs dir");
        let secrets = options
            .secrets
            .clone()
            .unwrap_or_else(StackSecrets::generate);
        let data = dir.clone();
        let (postgres, broker) = blocking(move || {
            let postgres = Postgres::start(&data.join("postgres").join("data"), free_port());
            postgres.create_database(CLOUD_DATABASE);
            let broker = Broker::start(&data.join("broker"), free_port());
            (postgres, broker)
        })
        .await;
        let mut stack = CloudStack {
            secrets,
            dir,
            orchestrators: Vec::new(),
            ports: Vec::new(),
            workers: Vec::new(),
            broker,
            postgres,
            _temp: temp,
            options,
        };
        for _ in 0..stack.options.orchestrators {
            stack.spawn_orchestrator();
        }
        for i in 0..stack.orchestrators.len() {
            stack.wait_orchestrator_ready(i).await;
        }
        for _ in 0..stack.options.workers {
            stack.spawn_worker(Vec::new());
        }
        let all: Vec<usize> = (0..stack.workers.len()).collect();
        stack.wait_workers_seen(&all).await;
        stack
    }

    fn spawn_orchestrator(&mut self) -> usize {
        let i = self.orchestrators.len();
        let port = self
            .options
            .orchestrator_ports
            .get(i)
            .copied()
            .unwrap_or_else(free_port);
        let name = format!("orch-{i}");
        let mut env = vec![
            ("PERSONAS_CLOUD_ID".to_string(), name.clone()),
            ("PERSONAS_CLOUD_LISTEN".into(), format!("127.0.0.1:{port}")),
            ("PERSONAS_CLOUD_DATABASE_URL".into(), self.database_url()),
            (
                "PERSONAS_CLOUD_KAFKA_BROKERS".into(),
                self.broker.bootstrap(),
            ),
            (
                "PERSONAS_CLOUD_KAFKA_NAMESPACE".into(),
                self.options.namespace.clone(),
            ),
            (
                "PERSONAS_CLOUD_ADMIN_TOKEN".into(),
                self.secrets.admin_token.clone(),
            ),
        ];
        env.extend(self.secrets.env().map(|(k, v)| (k.to_string(), v)));
        env.extend(self.options.orchestrator_env.iter().cloned());
        let mut node = Node {
            log: self.dir.join("logs").join(format!("{name}.log")),
            name,
            args: vec!["orchestrator".into()],
            env,
            child: None,
        };
        node.spawn(&self.options.binary);
        self.orchestrators.push(node);
        self.ports.push(port);
        i
    }

    fn spawn_worker(&mut self, extra_env: Vec<(String, String)>) -> usize {
        let i = self.workers.len();
        let name = format!("worker-{i}");
        let data = self.dir.join(&name);
        std::fs::create_dir_all(&data)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
        let urls: Vec<String> = (0..self.ports.len())
            .map(|i| self.orchestrator_url(i))
            .collect();
        let mut env = vec![
            ("PERSONAS_CLOUD_WORKER_ID".to_string(), name.clone()),
            ("PERSONAS_CLOUD_ORCHESTRATORS".into(), urls.join(",")),
            ("PERSONAS_CLOUD_DATA_DIR".into(), data.display().to_string()),
        ];
        env.extend(self.secrets.env().map(|(k, v)| (k.to_string(), v)));
        if let Some(claude) = &self.options.claude_path {
            env.push((
                "PERSONAS_CLOUD_CLAUDE_PATH".into(),
                claude.display().to_string(),
            ));
        }
        env.extend(self.options.worker_env.iter().cloned());
        env.extend(extra_env);
        let mut node = Node {
            log: self.dir.join("logs").join(format!("{name}.log")),
            name,
            args: vec!["worker".into()],
            env,
            child: None,
        };
        node.spawn(&self.options.binary);
        self.workers.push(node);
        i
    }

    async fn wait_orchestrator_ready(&mut self, i: usize) {
        let url = format!("{}/ready", self.orchestrator_url(i));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("cannot build an HTTP client");
        let deadline = Instant::now() + self.options.ready_timeout;
        loop {
            let node = &mut self.orchestrators[i];
            if let Some(status) = node.exited() {
                panic!(
                    "{} exited ({status}) before it was ready; its log {}:\n{}",
                    node.name,
                    node.log.display(),
                    node.tail()
                );
            }
            let last = match http.get(&url).send().await {
                Ok(r) if r.status().as_u16() == 200 => return,
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let node = &self.orchestrators[i];
                panic!(
                    "{} was not ready at {url} within {:?} (last: {last}); its log {}:\n{}",
                    node.name,
                    self.options.ready_timeout,
                    node.log.display(),
                    node.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `get_cluster` lists every worker in `indices` as connected.
    async fn wait_workers_seen(&mut self, indices: &[usize]) {
        if indices.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.options.ready_timeout;
        loop {
            for &i in indices {
                let node = &mut self.workers[i];
                if let Some(status) = node.exited() {
                    panic!(
                        "{} exited ({status}) before it connected; its log {}:\n{}",
                        node.name,
                        node.log.display(),
                        node.tail()
                    );
                }
            }
            let last = match self.client().get_cluster(&Empty {}).await {
                Ok(cluster) => {
                    let missing: Vec<&str> = indices
                        .iter()
                        .map(|&i| self.workers[i].name.as_str())
                        .filter(|name| !cluster.workers.iter().any(|w| w.id == *name))
                        .collect();
                    if missing.is_empty() {
                        return;
                    }
                    format!("not listed yet: {}", missing.join(", "))
                }
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let logs: Vec<String> = indices
                    .iter()
                    .map(|&i| {
                        let n = &self.workers[i];
                        format!("--- {} ({}):\n{}", n.name, n.log.display(), n.tail())
                    })
                    .collect();
                panic!(
                    "workers not seen by get_cluster within {:?} ({last}); logs:\n{}",
                    self.options.ready_timeout,
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The URL of the first orchestrator still running (what a client connects to).
    pub fn url(&self) -> String {
        let i = self
            .orchestrators
            .iter()
            .position(|n| n.child.is_some())
            .expect("no orchestrator of the stack is running");
        self.orchestrator_url(i)
    }

    /// Orchestrator `i`'s URL, running or not.
    pub fn orchestrator_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    pub fn admin_token(&self) -> &str {
        &self.secrets.admin_token
    }

    pub fn secrets(&self) -> &StackSecrets {
        &self.secrets
    }

    /// A client of [`CloudStack::url`] with the admin token.
    pub fn client(&self) -> CloudClient {
        CloudClient::new(&self.url(), self.admin_token()).expect("the stack's URL is valid")
    }

    /// The orchestrators' database.
    pub fn database_url(&self) -> String {
        self.postgres.url(CLOUD_DATABASE)
    }

    pub fn postgres(&self) -> &Postgres {
        &self.postgres
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Where data and logs live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn orchestrator_count(&self) -> usize {
        self.orchestrators.len()
    }

    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    pub fn orchestrator_id(&self, i: usize) -> &str {
        &self.orchestrators[i].name
    }

    pub fn worker_id(&self, i: usize) -> &str {
        &self.workers[i].name
    }

    /// Process ids (`None` once killed), e.g. to look for their children.
    pub fn orchestrator_pid(&self, i: usize) -> Option<u32> {
        self.orchestrators[i].pid()
    }

    pub fn worker_pid(&self, i: usize) -> Option<u32> {
        self.workers[i].pid()
    }

    pub fn orchestrator_log(&self, i: usize) -> &Path {
        &self.orchestrators[i].log
    }

    pub fn worker_log(&self, i: usize) -> &Path {
        &self.workers[i].log
    }

    /// Every log file of the stack's processes (orchestrators, workers), e.g. to search for
    /// a secret.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.orchestrators
            .iter()
            .chain(&self.workers)
            .map(|n| n.log.clone())
            .collect()
    }

    /// The processes that ended on their own since the last call (not those the stack killed):
    /// name, exit status, log. Each is reported once.
    pub fn exited(&mut self) -> Vec<(String, std::process::ExitStatus, PathBuf)> {
        let mut ended = Vec::new();
        for node in self.orchestrators.iter_mut().chain(self.workers.iter_mut()) {
            if let Some(status) = node.exited() {
                node.child = None;
                ended.push((node.name.clone(), status, node.log.clone()));
            }
        }
        ended
    }

    /// `kill -9` orchestrator `i` (no goodbye to its workers, clients or Kafka group).
    pub fn kill9_orchestrator(&mut self, i: usize) {
        self.orchestrators[i].kill9();
    }

    /// `kill -9` worker `i` (its Claude CLI child is orphaned, as on a crashed machine).
    pub fn kill9_worker(&mut self, i: usize) {
        self.workers[i].kill9();
    }

    /// Starts orchestrator `i` again (same id, port and settings) after a kill and waits for
    /// it to be ready.
    pub async fn restart_orchestrator(&mut self, i: usize) {
        self.orchestrators[i].kill9();
        self.orchestrators[i].spawn(&self.options.binary);
        self.wait_orchestrator_ready(i).await;
    }

    /// Starts worker `i` again (same id and settings) and waits until it is connected.
    pub async fn restart_worker(&mut self, i: usize) {
        self.workers[i].kill9();
        self.workers[i].spawn(&self.options.binary);
        self.wait_workers_seen(&[i]).await;
    }

    /// Starts one more worker with `extra_env` on top of the stack's worker environment, waits
    /// until it is connected; its index.
    pub async fn start_worker(&mut self, extra_env: &[(&str, &str)]) -> usize {
        let env = extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let i = self.spawn_worker(env);
        self.wait_workers_seen(&[i]).await;
        i
    }

    /// Stops the broker and starts it again on the same port and storage (what the
    /// orchestrators see as a broker restart). Returns once it accepts connections.
    pub fn restart_broker(&mut self) {
        self.broker.restart();
    }

    /// Stops every process now (workers, then orchestrators, then the broker and Postgres), as
    /// dropping the stack does.
    pub fn stop(self) {}
}

impl Drop for CloudStack {
    fn drop(&mut self) {
        stop_all(&mut self.workers, Duration::from_secs(5));
        stop_all(&mut self.orchestrators, Duration::from_secs(5));
    }
}
