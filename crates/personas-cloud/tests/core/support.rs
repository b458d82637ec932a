//! Shared helpers: a broker process, settings for an in-process orchestrator, waiting on a
//! condition with a deadline.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root (for `.tools/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Tansu broker process on a free port (memory storage), killed on drop.
pub struct TestBroker {
    child: Child,
    pub port: u16,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        let port = personas_testkit::cloud::free_port();
        let bin = repo_root().join(".tools/tansu");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        wait_until(Duration::from_secs(20), "the broker listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        TestBroker { child, port }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds or `within` passes (then panics naming `what`).
pub fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
