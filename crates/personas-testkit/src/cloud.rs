//! The cloud's real backing services for tests and `make cloud-dev`: a PostgreSQL cluster of
//! our own ([`Postgres`]) and the Tansu Kafka-protocol broker ([`Broker`], its topics in a
//! SQLite file). Both are child processes killed when their handle drops. [`CloudStack`] (in
//! `stack.rs`) adds orchestrators and workers of the `personas-cloud` binary on top.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then `initdb` and `postgres` run as
//! the `postgres` system user (Debian's package creates it) through `runuser`, in a directory
//! handed to that user. Authentication is `trust` on loopback only — a throwaway cluster.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (bound and released; good enough for a test's own servers).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free_port: cannot bind loopback")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The directory holding PostgreSQL's server programs (`initdb`, `postgres`): `PG_BIN`, else
/// the newest `/usr/lib/postgresql/<v>/bin`, else whatever `PATH` has.
pub fn pg_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

fn pg_program(name: &str) -> PathBuf {
    pg_bin_dir()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// A command that runs as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn hand_to_pg_user(dir: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("cannot run chown");
        assert!(
            status.success(),
            "cannot hand {} to the postgres user",
            dir.display()
        );
    }
}

/// A running PostgreSQL cluster on loopback.
pub struct Postgres {
    child: Child,
    port: u16,
    data: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Postgres {
    /// A fresh cluster in a temporary directory.
    pub fn start_temp() -> Postgres {
        let temp = tempfile::Builder::new()
            .prefix("personas-pg-")
            .tempdir()
            .expect("cannot create a temp dir");
        let mut pg = Postgres::start(&temp.path().join("data"), free_port());
        pg._temp = Some(temp);
        pg
    }

    /// The cluster in `data` (created with `initdb` when missing) on `port`.
    pub fn start(data: &Path, port: u16) -> Postgres {
        let parent = data.parent().expect("the data dir has a parent");
        std::fs::create_dir_all(parent).expect("cannot create the data dir's parent");
        if !data.join("PG_VERSION").exists() {
            std::fs::create_dir_all(data).expect("cannot create the data dir");
            hand_to_pg_user(data);
            if is_root() {
                // The postgres user must be able to reach its directory.
                let mut p = Some(parent);
                while let Some(dir) = p {
                    if dir == Path::new("/") {
                        break;
                    }
                    let _ = Command::new("chmod").arg("o+x").arg(dir).status();
                    p = dir.parent();
                }
            }
            let out = as_pg_user(&pg_program("initdb"))
                .arg("-D")
                .arg(data)
                .args(["-U", "personas", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run initdb (install Debian's postgresql; PG_BIN names its bin dir): {e}"
                    )
                });
            assert!(
                out.status.success(),
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log =
            std::fs::File::create(parent.join("postgres.log")).expect("cannot create the log");
        let child = as_pg_user(&pg_program("postgres"))
            .arg("-D")
            .arg(data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data.display()))
            .args([
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start postgres");
        let pg = Postgres {
            child,
            port,
            data: data.to_path_buf(),
            _temp: None,
        };
        pg.wait_ready(Duration::from_secs(30));
        pg
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = Command::new(pg_program("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "personas",
                    "-d",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections on port {} (see {})",
                self.port,
                self.data
                    .parent()
                    .map(|p| p.join("postgres.log").display().to_string())
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://personas@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with `psql` against `db`; its standard output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "personas",
                "-d",
                db,
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("cannot run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a database (no error if it exists).
    pub fn create_database(&self, name: &str) {
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        );
        if exists.trim() != "1" {
            self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        }
    }

    /// Everything in database `db` as SQL text (`pg_dump`), to search for what must not be there.
    pub fn dump(&self, db: &str) -> String {
        let out = Command::new(pg_program("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "personas",
                db,
            ])
            .output()
            .expect("cannot run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server now (fast shutdown), as `drop` does, and waits until it is gone.
    ///
    /// The signal goes to the postmaster named in `postmaster.pid`, not to our child: as root
    /// the child is `runuser`, which ignores SIGINT (killing it would orphan a running server).
    pub fn stop(&mut self) {
        let child_pid = i32::try_from(self.child.id()).unwrap_or(i32::MAX);
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse::<i32>().ok())
            .unwrap_or(child_pid);
        let signal = |pid: i32, sig: nix::sys::signal::Signal| {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        };
        // A pid of ours is gone once reaped; the postmaster under `runuser` once /proc drops it.
        let gone = |child: &mut Child| {
            matches!(child.try_wait(), Ok(Some(_)))
                && (postmaster == child_pid || !Path::new(&format!("/proc/{postmaster}")).exists())
        };
        signal(postmaster, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if gone(&mut self.child) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(postmaster, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Tansu broker binary: `PERSONAS_TANSU`, else `.tools/tansu` of the workspace
/// (`scripts/install-tansu.sh` builds it).
pub fn tansu_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PERSONAS_TANSU") {
        return PathBuf::from(p);
    }
    let bin = crate::claude::workspace_root().join(".tools").join("tansu");
    assert!(
        bin.exists(),
        "the Tansu broker is not installed at {} (run scripts/install-tansu.sh)",
        bin.display()
    );
    bin
}

/// A running Tansu broker (Kafka protocol) on loopback, storing its topics in one SQLite file
/// that outlives the process: [`Broker::restart`] brings it back with everything it held.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    db: PathBuf,
    log: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Broker {
    /// A broker with its storage in a temporary directory.
    pub fn start_temp() -> Broker {
        let temp = tempfile::Builder::new()
            .prefix("personas-broker-")
            .tempdir()
            .expect("cannot create a temp dir");
        let mut b = Broker::start(temp.path(), free_port());
        b._temp = Some(temp);
        b
    }

    /// A broker storing its topics under `dir` (`tansu.db`), listening on `port`.
    pub fn start(dir: &Path, port: u16) -> Broker {
        std::fs::create_dir_all(dir).expect("cannot create the broker's dir");
        let mut b = Broker {
            child: None,
            port,
            db: dir.join("tansu.db"),
            log: dir.join("tansu.log"),
            _temp: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("cannot open the broker's log");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(tansu_bin())
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            // Tansu resolves the file relative to its working directory (an absolute path in
            // the URL loses its leading slash), so it runs in the storage's directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.db.parent().expect("the storage file has a directory"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("cannot start the Tansu broker");
        self.child = Some(child);
        self.wait_listening(Duration::from_secs(30));
    }

    fn wait_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the broker exited ({status}) before listening; see {}",
                    self.log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not listen on port {} (see {})",
                self.port,
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file the broker keeps its topics in (to search it for what must not be there).
    pub fn storage_file(&self) -> &Path {
        &self.db
    }

    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// Kills the broker (SIGKILL: nothing flushed on its way out).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the broker and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

mod stack;
pub use stack::{CLOUD_DATABASE, CloudStack, StackOptions, StackSecrets, log_tail};
