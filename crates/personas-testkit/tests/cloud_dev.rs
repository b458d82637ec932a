//! `personas-cloud-dev`, what `make cloud-dev` runs: exactly one line on standard output when
//! the stack is ready, SIGTERM stops everything it started, and a second start reuses the data
//! directory (same secrets, so the same token).
//!
//! It starts processes of the `personas-cloud` binary, found next to this test's binaries (a
//! workspace `cargo test` builds it for that crate's own tests) or at `PERSONAS_CLOUD_BIN`.

use personas_testkit::process_table_has;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn cloud_bin() -> PathBuf {
    let path = match std::env::var_os("PERSONAS_CLOUD_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_BIN_EXE_personas-cloud-dev")).with_file_name("personas-cloud"),
    };
    assert!(
        path.exists(),
        "{} not found: build it first (`cargo build -p personas-cloud`) or set PERSONAS_CLOUD_BIN",
        path.display()
    );
    path
}

const MODEL_KEY: &str = "sk-ant-cloud-dev-test-key";

/// `(args, environment)` of every child of `pid` (as root, /proc shows any environment).
fn children(pid: u32) -> Vec<(String, Vec<String>)> {
    let out = Command::new("ps")
        .args(["-o", "pid=", "--ppid", &pid.to_string()])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| {
            let args = std::fs::read(format!("/proc/{p}/cmdline")).ok()?;
            let env = std::fs::read(format!("/proc/{p}/environ")).ok()?;
            let split = |b: &[u8]| {
                b.split(|c| *c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
            };
            Some((split(&args).join(" "), split(&env)))
        })
        .collect()
}

struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

fn start(dir: &Path, stderr: &Path) -> Dev {
    let err = std::fs::File::create(stderr).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_personas-cloud-dev"))
        .arg("--dir")
        .arg(dir)
        .args(["--orchestrators", "1", "--workers", "1", "--port", "0"])
        .arg("--binary")
        .arg(cloud_bin())
        .arg("--claude")
        .arg(personas_testkit::claude_bin())
        // The model credentials workers take from cloud-dev's environment (never used here).
        .env("ANTHROPIC_API_KEY", MODEL_KEY)
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("cannot start personas-cloud-dev");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Dev {
        child,
        lines,
        stderr: stderr.to_path_buf(),
    }
}

impl Dev {
    /// The ready line: `(url, token)`.
    fn ready_line(&mut self) -> (String, String) {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(180))
            .unwrap_or_else(|e| {
                let _ = self.child.kill();
                panic!(
                    "no ready line ({e}); its stderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                )
            });
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 2, "the line is `URL=… TOKEN=…`: {line:?}");
        let url = parts[0]
            .strip_prefix("PERSONAS_CLOUD_URL=")
            .unwrap_or_else(|| panic!("{line:?}"));
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "{line:?}");
        let token = parts[1]
            .strip_prefix("PERSONAS_CLOUD_TOKEN=")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(token.len() >= 32, "{line:?}");
        (url.to_string(), token.to_string())
    }

    /// SIGTERM, then its exit within a deadline; every further stdout line.
    fn terminate(mut self) -> Vec<String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("personas-cloud-dev did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "exit {status}; stderr:\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        self.lines.iter().collect()
    }
}

async fn check_serving(url: &str, token: &str) {
    let ready = reqwest::get(format!("{url}/ready"))
        .await
        .expect("GET /ready");
    assert_eq!(ready.status().as_u16(), 200);
    let client = personas_cloud_api::CloudClient::new(url, token).expect("client");
    let cluster = client
        .get_cluster(&personas_cloud_api::model::Empty {})
        .await
        .expect("get_cluster with the printed token");
    assert!(
        cluster.workers.iter().any(|w| w.id == "worker-0"),
        "{cluster:?}"
    );
}

fn listening(url: &str) -> bool {
    let addr = url.trim_start_matches("http://").parse().expect("ip:port");
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_dev_prints_one_line_when_ready_stops_on_sigterm_and_reuses_its_dir() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("cloud-dev");
    let marker = dir.display().to_string();

    let mut dev = start(&dir, &temp.path().join("first.stderr"));
    let (url, token) = dev.ready_line();
    check_serving(&url, &token).await;
    assert!(
        process_table_has(&marker),
        "Postgres runs with its data under {marker}"
    );
    // Workers got cloud-dev's model credentials; orchestrators did not.
    let kids = children(dev.child.id());
    let key = format!("ANTHROPIC_API_KEY={MODEL_KEY}");
    let workers: Vec<_> = kids
        .iter()
        .filter(|(a, _)| a.ends_with(" worker"))
        .collect();
    let orchestrators: Vec<_> = kids
        .iter()
        .filter(|(a, _)| a.ends_with(" orchestrator"))
        .collect();
    let names: Vec<&String> = kids.iter().map(|k| &k.0).collect();
    assert_eq!(
        (workers.len(), orchestrators.len()),
        (1, 1),
        "children: {names:?}"
    );
    assert!(
        workers.iter().all(|(_, env)| env.contains(&key)),
        "the worker lacks the model key"
    );
    assert!(
        orchestrators
            .iter()
            .all(|(_, env)| !env.iter().any(|v| v.starts_with("ANTHROPIC_"))),
        "an orchestrator got the model credentials"
    );
    let rest = dev.terminate();
    assert!(
        rest.is_empty(),
        "stdout has exactly one line; also: {rest:?}"
    );
    assert!(
        !listening(&url),
        "the orchestrator still listens after SIGTERM"
    );
    assert!(
        !process_table_has(&marker),
        "a process of {marker} survived SIGTERM"
    );

    // Again on the same directory: same secrets (the token), the same Postgres cluster.
    assert!(dir.join("postgres/data/PG_VERSION").exists());
    let mut dev = start(&dir, &temp.path().join("second.stderr"));
    let (url, second_token) = dev.ready_line();
    assert_eq!(
        second_token, token,
        "the second start reuses the stored secrets"
    );
    check_serving(&url, &second_token).await;
    assert!(dev.terminate().is_empty());
    assert!(
        !process_table_has(&marker),
        "a process of {marker} survived SIGTERM"
    );
}
