//! The data's safety end to end: file modes after `personas up`, backup while runs stream,
//! restore, SIGKILL during a vault rotation and during output commits, a closed stdout.

use super::{Env, text};
use personas_core::ExecutionStatus;
use personas_store::Store;
use personas_testkit::claude::fake_claude_bin;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

/// `personas up` on `data`, until it prints its URL; stderr is collected.
async fn up(
    env: &Env,
    data: &Path,
    vars: &[(&str, String)],
) -> (
    tokio::process::Child,
    String,
    tokio::task::JoinHandle<String>,
) {
    let mut cmd = tokio::process::Command::from(env.command());
    cmd.args(["up", "--listen", "127.0.0.1:0"])
        .env("PERSONAS_DATA_DIR", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn up");
    let mut out = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut err = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let stderr = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(l)) = err.next_line().await {
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    let url = tokio::time::timeout(super::WAIT, async {
        while let Some(line) = out.next_line().await.expect("read") {
            if let Some(rest) = line.split("running at ").nth(1) {
                return rest.split_whitespace().next().map(str::to_string);
            }
        }
        None
    })
    .await
    .expect("ready in time")
    .expect("printed its URL");
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    (child, url, stderr)
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_modes_after_up_on_a_fresh_data_dir_and_a_wrong_mode_is_reported_and_fixed() {
    let env = Env::new().await;
    let data = env.data_dir().join("fresh");
    let (mut daemon, _url, _) = up(&env, &data, &[]).await;
    assert_eq!(mode(&data), 0o700, "data dir");
    for f in [
        "personas.db",
        "personas.db-wal",
        "personas.db-shm",
        "api-token",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    daemon.kill().await.expect("kill");
    let _ = daemon.wait().await;

    // Widened (an old version, a copy with cp -r under umask 022): doctor reports and fixes.
    std::fs::write(data.join("config.toml"), "").expect("config");
    for (p, m) in [
        (data.clone(), 0o755),
        (data.join("personas.db"), 0o644),
        (data.join("config.toml"), 0o644),
    ] {
        personas_store::files::set_mode(&p, m).expect("chmod");
    }
    let out = env
        .command()
        .args(["doctor", "--json"])
        .env("PERSONAS_DATA_DIR", &data)
        .output()
        .expect("doctor");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let perm = report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["check"] == "permissions"))
        .expect("a permissions check")
        .clone();
    assert_eq!(perm["status"], "warn", "{perm}");
    let detail = perm["detail"].as_str().expect("detail");
    assert!(
        detail.contains("personas.db was 0644") && detail.contains("changed to 0600"),
        "{detail}"
    );
    assert!(detail.contains("config.toml"), "{detail}");
    assert_eq!(
        (
            mode(&data),
            mode(&data.join("personas.db")),
            mode(&data.join("config.toml"))
        ),
        (0o700, 0o600, 0o600)
    );

    // And `personas up` says so on stderr, naming the path and the change.
    personas_store::files::set_mode(&data.join("api-token"), 0o644).expect("chmod");
    let (mut daemon, _url, stderr) = up(&env, &data, &[]).await;
    daemon.kill().await.expect("kill");
    let _ = daemon.wait().await;
    let stderr = stderr.await.expect("stderr");
    assert!(
        stderr.contains("api-token was 0644") && stderr.contains("changed to 0600"),
        "{stderr}"
    );
    assert_eq!(mode(&data.join("api-token")), 0o600);
}

/// A transcript of `n` assistant lines (each naming its number) and a result, for the stand-in CLI.
fn long_transcript(dir: &Path, n: usize) -> PathBuf {
    let fixture = include_str!("../../../../fixtures/claude-code/01-text.stdout.jsonl");
    let lines: Vec<&str> = fixture.lines().collect();
    let (init, assistant, result) = (lines[0], lines[1], lines[lines.len() - 1]);
    let mut text = format!("{init}\n");
    for i in 0..n {
        let mut v: Value = serde_json::from_str(assistant).expect("assistant");
        v["message"]["content"][0]["text"] = Value::from(format!("streamed line {i:05}"));
        text.push_str(&v.to_string());
        text.push('\n');
    }
    text.push_str(result);
    text.push('\n');
    let path = dir.join("long.jsonl");
    std::fs::write(&path, text).expect("transcript");
    path
}

/// Points the CLI stand-in at `transcript` through `config.toml [env]`: a run's environment is
/// built from an allow-list, so variables exported to the runtime never reach the stand-in.
fn stand_in_config(data: &Path, transcript: &Path, lines_per_sec: u32) {
    std::fs::create_dir_all(data).expect("data dir");
    let config = format!(
        "[env]\nPERSONAS_FAKE_TRANSCRIPT = {:?}\nPERSONAS_FAKE_LINES_PER_SEC = \"{lines_per_sec}\"\n",
        transcript.display().to_string()
    );
    std::fs::write(data.join("config.toml"), config).expect("config.toml");
}

fn exec_list(env: &Env, data: &Path) -> Value {
    let out = env
        .command()
        .args(["execution", "list", "--json", "--limit", "500"])
        .env("PERSONAS_DATA_DIR", data)
        .output()
        .expect("list");
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_twenty_runs_stream_holds_every_committed_row_and_restores() {
    let env = Env::new().await;
    let transcript = long_transcript(env.data_dir(), 1_500);
    let vars = [
        (
            "PERSONAS_CLAUDE_PATH",
            fake_claude_bin().display().to_string(),
        ),
        ("PERSONAS_MAX_CONCURRENT", "20".to_string()),
    ];
    let data = env.data_dir().join("live");
    stand_in_config(&data, &transcript, 50);
    let mut cmd = env.command();
    cmd.env("PERSONAS_DATA_DIR", &data);
    let out = cmd
        .args([
            "persona",
            "create",
            "--name",
            "Streamer",
            "--prompt",
            "stream",
            "--max-concurrent",
            "20",
        ])
        .output()
        .expect("create");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (mut daemon, _url, _) = up(&env, &data, &vars).await;
    for _ in 0..20 {
        let out = env
            .command()
            .args(["run", "Streamer"])
            .env("PERSONAS_DATA_DIR", &data)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let store = Store::open_in_dir(&data).expect("store");
    let count = |s: &Store, sql: &str| -> i64 {
        let path = s.path().to_path_buf();
        rusqlite::Connection::open(path)
            .expect("raw")
            .query_row(sql, [], |r| r.get(0))
            .expect(sql)
    };
    // Until all 20 are running and streaming.
    let deadline = Instant::now() + super::WAIT;
    while count(
        &store,
        "SELECT COUNT(DISTINCT execution_id) FROM execution_output",
    ) < 20
        || store
            .executions()
            .count(ExecutionStatus::Running)
            .expect("count")
            < 20
    {
        assert!(
            Instant::now() < deadline,
            "20 runs never streamed at once: {} streaming, {} running, {:?}",
            count(
                &store,
                "SELECT COUNT(DISTINCT execution_id) FROM execution_output"
            ),
            store
                .executions()
                .count(ExecutionStatus::Running)
                .expect("count"),
            store
                .executions()
                .list(&Default::default())
                .expect("list")
                .iter()
                .map(|e| (e.status, e.error_message.clone()))
                .take(3)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = count(&store, "SELECT COUNT(*) FROM execution_output");
    let file = env.data_dir().join("mid-run.backup");
    let out = env
        .command()
        .args(["backup", file.to_str().expect("utf8")])
        .env("PERSONAS_DATA_DIR", &data)
        .output()
        .expect("backup");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = count(&store, "SELECT COUNT(*) FROM execution_output");
    assert!(
        after > before,
        "runs kept streaming during the backup ({before} -> {after})"
    );
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    // The copy is one committed state: it holds every line committed before it began, and
    // each execution's counter matches the lines it holds (counter and lines commit together).
    let b = rusqlite::Connection::open(&file).expect("open backup");
    let held: i64 = b
        .query_row("SELECT COUNT(*) FROM execution_output", [], |r| r.get(0))
        .expect("held");
    assert!(
        held >= before && held <= after,
        "{before} <= {held} <= {after}"
    );
    let mismatched: i64 = b
        .query_row(
            "SELECT COUNT(*) FROM executions x WHERE x.output_lines !=
               (SELECT COALESCE(MAX(seq), 0) FROM execution_output o WHERE o.execution_id = x.id)",
            [],
            |r| r.get(0),
        )
        .expect("consistency");
    assert_eq!(mismatched, 0, "a half-committed batch in the backup");
    let gaps: i64 = b
        .query_row(
            "SELECT COUNT(*) FROM executions x WHERE x.output_lines !=
               (SELECT COUNT(*) FROM execution_output o WHERE o.execution_id = x.id)",
            [],
            |r| r.get(0),
        )
        .expect("gaps");
    assert_eq!(gaps, 0);
    drop(b);

    // When the runs are done: a quiet backup restores to the same execution list.
    let deadline = Instant::now() + super::WAIT;
    while store
        .executions()
        .count(ExecutionStatus::Completed)
        .expect("count")
        < 20
    {
        assert!(Instant::now() < deadline, "runs did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = env.data_dir().join("done.backup");
    let out = env
        .command()
        .args(["backup", done.to_str().expect("utf8")])
        .env("PERSONAS_DATA_DIR", &data)
        .output()
        .expect("backup");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let restored = env.data_dir().join("restored");
    let out = env
        .command()
        .args(["restore", done.to_str().expect("utf8")])
        .env("PERSONAS_DATA_DIR", &restored)
        .output()
        .expect("restore");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(exec_list(&env, &restored), exec_list(&env, &data));
    // The mid-run copy restores too.
    let mid = env.data_dir().join("restored-mid");
    let out = env
        .command()
        .args(["restore", file.to_str().expect("utf8")])
        .env("PERSONAS_DATA_DIR", &mid)
        .output()
        .expect("restore");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        exec_list(&env, &mid)["executions"].as_array().map(Vec::len),
        Some(20)
    );

    // Into a data dir that holds anything: refused, naming why, nothing changed.
    let out = env
        .command()
        .args(["restore", file.to_str().expect("utf8")])
        .env("PERSONAS_DATA_DIR", &restored)
        .output()
        .expect("restore");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not empty") && text(&out.stderr).contains("personas.db"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(exec_list(&env, &restored), exec_list(&env, &data));
    daemon.kill().await.expect("kill");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_the_cli_quietly() {
    let env = Env::new().await;
    env.json(&["persona", "list"]);
    for args in [
        &["execution", "list", "--json"][..],
        &["persona", "list"][..],
        &["doctor"][..],
        &["--help"][..],
    ] {
        // The reading end is closed before the process writes a byte.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = env
            .command()
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run");
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            matches!(out.status.code(), Some(0) | Some(1)),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

/// Waits until another process holds the database's write lock (our own attempt is refused).
fn wait_for_write_lock(db: &Path, child: &mut std::process::Child, within: Duration) -> bool {
    let probe = rusqlite::Connection::open(db).expect("probe");
    // Fail at once when the lock is taken (rusqlite's default is to wait 5 s).
    probe.busy_timeout(Duration::ZERO).expect("no wait");
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        if probe.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").is_err() {
            return true;
        }
    }
    false
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_output_commits_loses_no_acknowledged_line() {
    let env = Env::new().await;
    let transcript = long_transcript(env.data_dir(), 20_000);
    env.json(&[
        "persona", "create", "--name", "Streamer", "--prompt", "stream",
    ]);
    let db = env.data_dir().join("personas.db");
    stand_in_config(env.data_dir(), &transcript, 2000);
    for round in 0..3 {
        // `run --follow` without a daemon: this process runs the CLI stand-in and commits its
        // output; it prints a line only after the writer stored and broadcast it.
        let mut child = env
            .command()
            .args(["run", "Streamer", "--follow"])
            .env("PERSONAS_CLAUDE_PATH", fake_claude_bin())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run");
        let stdout = child.stdout.take().expect("stdout");
        let printed = std::thread::spawn(move || {
            use std::io::BufRead;
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    l.split("streamed line ")
                        .nth(1)
                        .map(|n| n.trim().to_string())
                })
                .collect::<Vec<String>>()
        });
        // Kill it while it holds the write lock, i.e. inside a commit.
        std::thread::sleep(Duration::from_millis(500 + 700 * round));
        let in_commit = wait_for_write_lock(&db, &mut child, Duration::from_secs(20));
        let _ = child.kill();
        let _ = child.wait();
        let printed = printed.join().expect("reader");
        assert!(
            in_commit,
            "round {round}: never caught a commit ({} lines printed)",
            printed.len()
        );
        let store = Store::open_in_dir(env.data_dir()).expect("reopen");
        let exec = store
            .executions()
            .list(&Default::default())
            .expect("list")
            .into_iter()
            .next()
            .expect("the run");
        let stored: std::collections::HashSet<String> = store
            .executions()
            .output(&exec.id, 0, 100_000)
            .expect("output")
            .into_iter()
            .filter_map(|l| {
                l.text
                    .split("streamed line ")
                    .nth(1)
                    .map(|n| n[..5].to_string())
            })
            .collect();
        let lost: Vec<&String> = printed
            .iter()
            .filter(|n| !stored.contains(&n[..5]))
            .collect();
        assert!(
            !printed.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged but not stored: {lost:?}"
        );
        // Batches are all-or-nothing: the stored lines are 1..n without a gap.
        let lines = store
            .executions()
            .output(&exec.id, 0, 100_000)
            .expect("output");
        assert!(
            lines.iter().enumerate().all(|(i, l)| l.seq == i as i64 + 1),
            "a gap in the stored lines"
        );
        assert_eq!(
            store.executions().get(&exec.id).expect("get").output_lines,
            lines.len() as u64
        );
        // Next round starts clean.
        drop(store);
        let _ = Command::new("true").status();
        rusqlite::Connection::open(&db)
            .expect("raw")
            .execute("DELETE FROM executions", [])
            .expect("clean");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_vault_rotation_is_all_or_nothing() {
    const PASS: &str = "correct horse battery staple";
    let env = Env::new().await;
    let with_pass = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = env
            .command()
            .args(args)
            .env("PERSONAS_VAULT_PASSPHRASE", PASS)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("stdin");
        child.wait_with_output().expect("wait")
    };
    for i in 0..6 {
        let name = format!("gh{i}");
        let out = with_pass(
            &[
                "credential",
                "add",
                &name,
                "--type",
                "github",
                "--field",
                "token",
            ],
            &format!("ghp_valueNumber{i}xxxxxxxxxxxxxxxx\n"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let store = Store::open_in_dir(env.data_dir()).expect("store");
    let consistent = |store: &Store| {
        let g = store
            .credentials()
            .vault()
            .expect("vault")
            .expect("created")
            .generation;
        let sealed = store.credentials().all_sealed().expect("sealed");
        assert!(
            sealed.iter().all(|s| s.generation == g),
            "values sealed under different generations after a kill: vault {g}, {:?}",
            sealed.iter().map(|s| s.generation).collect::<Vec<_>>()
        );
        g
    };
    // How long a clean rotation takes, to spread the kills over it.
    let t0 = Instant::now();
    assert!(with_pass(&["vault", "rotate"], "").status.success());
    let took = t0.elapsed();
    let mut generations = Vec::new();
    let mut in_tx = 0;
    for i in 0..12u32 {
        let mut c = env.command();
        c.args(["vault", "rotate"])
            .env("PERSONAS_VAULT_PASSPHRASE", PASS)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("rotate");
        if i % 2 == 0 {
            // Kill at a point spread over the whole rotation (key derivation included).
            std::thread::sleep(took.mul_f64(f64::from(i) / 12.0));
        } else if wait_for_write_lock(&env.data_dir().join("personas.db"), &mut child, took * 2) {
            in_tx += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        generations.push(consistent(&store));
    }
    // Still usable: a rotation after all that decrypts and re-seals every value.
    let out = with_pass(&["vault", "rotate"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    consistent(&store);
    let ok = with_pass(&["credential", "list"], "");
    assert!(ok.status.success());
    eprintln!("kills inside a write transaction: {in_tx}; generations seen: {generations:?}");
}
