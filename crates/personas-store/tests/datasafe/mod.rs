//! The data's safety: concurrent first opens, private file modes, backup/restore, retention,
//! and SIGKILL in the middle of a migration.

use super::spec;
use personas_core::{ExecutionOutcome, ExecutionStatus, LineKind};
use personas_store::backup::{self, RestoreError};
use personas_store::{NewExecution, NewLine, RetentionPolicy, Store};
use std::path::Path;

const DAY: i64 = 86_400_000;

fn raw(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join(personas_store::DB_FILE)).expect("raw open");
    c.busy_timeout(std::time::Duration::from_secs(10))
        .expect("busy");
    c
}

#[test]
fn thirty_two_concurrent_first_opens_of_a_new_data_dir_all_succeed() {
    // Several rounds: the race it guards against lost about 5 of 32 opens per round.
    for round in 0..4 {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
        let handles: Vec<_> = (0..32)
            .map(|_| {
                let (data, barrier) = (data.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open_in_dir(&data).map(|s| s.health().map(|h| h.schema_version))
                })
            })
            .collect();
        let failures: Vec<String> = handles
            .into_iter()
            .filter_map(|h| match h.join().expect("thread") {
                Ok(Ok(v)) if v == personas_store::latest_schema_version() => None,
                other => Some(format!("{other:?}")),
            })
            .collect();
        assert!(failures.is_empty(), "round {round}: {failures:?}");
    }
}

#[cfg(unix)]
#[test]
fn the_data_dir_and_database_files_are_private_whatever_the_umask_and_checked() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let store = Store::open_in_dir(&data).expect("open");
    store.personas().create(&spec("A", 1)).expect("write");
    assert_eq!(mode(&data), 0o700);
    for f in ["personas.db", "personas.db-wal", "personas.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    assert!(personas_store::files::secure_data_dir(&data).is_empty());

    // Widened by hand: reported and fixed.
    personas_store::files::set_mode(&data, 0o755).expect("chmod");
    std::fs::write(data.join("config.toml"), "").expect("config");
    personas_store::files::set_mode(&data.join("config.toml"), 0o644).expect("chmod");
    std::fs::create_dir_all(data.join("workspaces/p1")).expect("ws");
    personas_store::files::set_mode(&data.join("workspaces/p1"), 0o775).expect("chmod");
    let fixed = personas_store::files::secure_data_dir(&data);
    let paths: Vec<_> = fixed.iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(&data), "{fixed:?}");
    assert!(paths.contains(&data.join("config.toml")), "{fixed:?}");
    assert!(paths.contains(&data.join("workspaces/p1")), "{fixed:?}");
    assert!(fixed.iter().all(|r| r.fixed), "{fixed:?}");
    let text = fixed[0].to_string();
    assert!(
        text.contains("was 0755") && text.contains("changed to 0700"),
        "{text}"
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("config.toml")), 0o600);
    assert_eq!(mode(&data.join("workspaces/p1")), 0o700);
    assert!(personas_store::files::secure_data_dir(&data).is_empty());
}

#[test]
fn backup_restores_into_an_empty_dir_only_and_checks_what_it_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_in_dir(&dir.path().join("a")).expect("open");
    let p = store.personas().create(&spec("A", 1)).expect("A");
    store
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("queue");
    let file = dir.path().join("a.backup");
    let made = store.backup_to(&file).expect("backup");
    assert_eq!((made.personas, made.executions), (1, 1));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(m & 0o777, 0o600);
    }
    let again = store.backup_to(&file).expect_err("no overwrite");
    assert!(again.to_string().contains("already exists"), "{again}");

    // Into a non-empty dir: refused, naming what is there; nothing changed.
    let e = backup::restore(&file, &dir.path().join("a")).expect_err("not empty");
    assert!(matches!(e, RestoreError::NotEmpty { .. }), "{e}");
    assert!(e.to_string().contains("personas.db"), "{e}");
    assert_eq!(store.personas().list().expect("list").len(), 1);

    // A file that is not a Personas database.
    let junk = dir.path().join("junk.db");
    rusqlite::Connection::open(&junk)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x)"))
        .expect("junk");
    let e = backup::restore(&junk, &dir.path().join("b")).expect_err("junk");
    assert!(matches!(e, RestoreError::NotPersonas { .. }), "{e}");
    std::fs::write(dir.path().join("text.db"), "hello").expect("text");
    let e = backup::restore(&dir.path().join("text.db"), &dir.path().join("b")).expect_err("text");
    assert!(e.to_string().contains("not a Personas backup"), "{e}");

    // Into a fresh dir (only a config file in it): same rows.
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).expect("b");
    std::fs::write(b.join("config.toml"), "").expect("config");
    backup::restore(&file, &b).expect("restore");
    let restored = Store::open_in_dir(&b).expect("open restored");
    assert_eq!(restored.personas().list().expect("list")[0].id, p.id);
    assert_eq!(restored.health().expect("health").executions, 1);
}

/// An ended, healed execution of `persona` that ended `age_days` ago with `lines` output lines.
fn ended(
    store: &Store,
    dir: &Path,
    persona: &personas_core::PersonaId,
    age_days: i64,
    lines: i64,
    now: i64,
) -> String {
    let ex = store.executions();
    let e = ex
        .enqueue(&NewExecution::manual(persona.clone(), None))
        .expect("queue");
    ex.claim(&e.id, 100, "me").expect("claim");
    let batch: Vec<NewLine> = (1..=lines)
        .map(|seq| NewLine {
            execution_id: e.id.clone(),
            seq,
            kind: LineKind::AssistantText,
            text: format!("line {seq}"),
            at_ms: 0,
        })
        .collect();
    ex.append_output(&batch).expect("lines");
    ex.finish(
        &e.id,
        &ExecutionOutcome::ended(ExecutionStatus::Completed, None, None),
    )
    .expect("finish");
    let at = now - age_days * DAY;
    raw(dir)
        .execute(
            "UPDATE executions SET queued_at = ?2, started_at = ?2, finished_at = ?2, healed_at = ?2 WHERE id = ?1",
            rusqlite::params![e.id.as_str(), at],
        )
        .expect("backdate");
    e.id.to_string()
}

fn count(dir: &Path, sql: &str) -> i64 {
    raw(dir).query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn gc_removes_what_the_policy_says_and_nothing_else() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let store = Store::open_in_dir(dir).expect("open");
    let now = chrono::Utc::now().timestamp_millis();
    let a = store.personas().create(&spec("A", 5)).expect("A").id;
    let b = store.personas().create(&spec("B", 5)).expect("B").id;
    // A: 5 old runs (ages 40..36 days) and 2 recent ones; B: 1 old run.
    let a_old: Vec<String> = (36..=40)
        .rev()
        .map(|d| ended(&store, dir, &a, d, 10, now))
        .collect();
    let a_new: Vec<String> = (1..=2)
        .map(|d| ended(&store, dir, &a, d, 10, now))
        .collect();
    let b_old = ended(&store, dir, &b, 50, 10, now);
    // An old run with a pending review, one still running, one queued: never touched.
    let paused = ended(&store, dir, &a, 45, 10, now);
    let conn = raw(dir);
    conn.execute(
        "UPDATE executions SET status = 'awaiting_review', finished_at = NULL WHERE id = ?1",
        [&paused],
    )
    .expect("pause");
    conn.execute(
        "INSERT INTO reviews (id, execution_id, title, status, created_at) VALUES ('r1', ?1, 'ok?', 'pending', ?2)",
        rusqlite::params![paused, now - 45 * DAY],
    )
    .expect("review");
    let running = store
        .executions()
        .enqueue(&NewExecution::manual(a.clone(), None))
        .expect("run");
    store
        .executions()
        .claim(&running.id, 100, "me")
        .expect("claim");
    conn.execute(
        "UPDATE executions SET queued_at = ?1 WHERE id = ?2",
        rusqlite::params![now - 60 * DAY, running.id.as_str()],
    )
    .expect("old");
    let queued = store
        .executions()
        .enqueue(&NewExecution::manual(b.clone(), None))
        .expect("queue");
    conn.execute(
        "UPDATE executions SET queued_at = ?1 WHERE id = ?2",
        rusqlite::params![now - 60 * DAY, queued.id.as_str()],
    )
    .expect("old");
    // Events: one delivered long ago (with a delivery), one recent, one old but pending.
    for (id, status, age) in [
        ("e_old", "delivered", 40),
        ("e_new", "delivered", 2),
        ("e_pending", "pending", 40),
    ] {
        let at = now - age * DAY;
        conn.execute(
            "INSERT INTO events (id, event_type, source_kind, status, created_at, updated_at, processed_at)
             VALUES (?1, 't', 'user', ?2, ?3, ?3, CASE WHEN ?2 = 'pending' THEN NULL ELSE ?3 END)",
            rusqlite::params![id, status, at],
        )
        .expect("event");
    }
    conn.execute(
        "INSERT INTO event_deliveries (event_id, target, persona_name, status, attempt, created_at, updated_at)
         VALUES ('e_old', 'target', 'A', 'delivered', 1, 0, 0)",
        [],
    )
    .expect("delivery");
    // Messages: two old, one recent (the newest row is always kept anyway).
    for (id, age) in [("m_old1", 100), ("m_old2", 95), ("m_new", 1)] {
        conn.execute(
            "INSERT INTO messages (id, persona_name, content, created_at) VALUES (?1, 'A', 'hi', ?2)",
            rusqlite::params![id, now - age * DAY],
        )
        .expect("message");
    }
    // Run tokens: one of an ended run, one of the running run.
    conn.execute(
        "INSERT INTO run_tokens (execution_id, token_hash, created_at) VALUES (?1, 'h1', 0)",
        [&a_old[0]],
    )
    .expect("token");
    conn.execute(
        "INSERT INTO run_tokens (execution_id, token_hash, created_at) VALUES (?1, 'h2', 0)",
        [running.id.as_str()],
    )
    .expect("token");
    drop(conn);

    let policy = RetentionPolicy {
        output_days: 30,
        events_days: 30,
        deliveries_days: 30,
        messages_days: 90,
        keep_executions_per_persona: 4,
    };
    let before = count(dir, "SELECT COUNT(*) FROM execution_output");
    let dry = store
        .retention()
        .prune(&policy, now, true)
        .expect("dry run");
    assert_eq!(
        count(dir, "SELECT COUNT(*) FROM execution_output"),
        before,
        "dry run removes nothing"
    );
    assert_eq!(count(dir, "SELECT COUNT(*) FROM executions"), 11);
    let done = store.retention().prune(&policy, now, false).expect("gc");
    assert!(!done.dry_run && dry.dry_run);
    for (what, d, r) in [
        ("executions", dry.executions, done.executions),
        ("output_lines", dry.output_lines, done.output_lines),
        ("events", dry.events, done.events),
        (
            "event_deliveries",
            dry.event_deliveries,
            done.event_deliveries,
        ),
        ("messages", dry.messages, done.messages),
        ("run_tokens", dry.run_tokens, done.run_tokens),
    ] {
        assert_eq!(d, r, "the dry run predicted {what}");
    }
    // A keeps its 4 newest ended runs (a_new ×2 and the two youngest old ones), whose old
    // output goes; B's single run stays but loses its output.
    assert_eq!(done.executions, 3, "{done:?}");
    let exists = |id: &str| {
        count(
            dir,
            &format!("SELECT COUNT(*) FROM executions WHERE id = '{id}'"),
        ) == 1
    };
    let lines = |id: &str| {
        count(
            dir,
            &format!("SELECT COUNT(*) FROM execution_output WHERE execution_id = '{id}'"),
        )
    };
    for id in &a_old[..3] {
        assert!(!exists(id), "pruned beyond the keep count");
    }
    for id in &a_old[3..] {
        assert!(exists(id) && lines(id) == 0, "kept, output pruned");
    }
    for id in &a_new {
        assert_eq!(lines(id), 10, "recent output kept");
    }
    assert!(exists(&b_old) && lines(&b_old) == 0);
    assert_eq!(
        lines(&paused),
        10,
        "a run waiting for review keeps everything"
    );
    assert!(exists(running.id.as_str()) && exists(queued.id.as_str()));
    assert_eq!(done.output_lines, 3 * 10 + 2 * 10 + 10);
    assert_eq!(
        count(dir, "SELECT COUNT(*) FROM reviews WHERE id = 'r1'"),
        1
    );
    assert_eq!(
        count(
            dir,
            "SELECT COUNT(*) FROM events WHERE id IN ('e_new', 'e_pending')"
        ),
        2
    );
    assert_eq!((done.events, done.event_deliveries), (1, 1));
    assert_eq!(done.messages, 2);
    assert_eq!(
        count(dir, "SELECT COUNT(*) FROM messages WHERE id = 'm_new'"),
        1
    );
    assert_eq!(done.run_tokens, 1);
    assert_eq!(
        count(
            dir,
            "SELECT COUNT(*) FROM run_tokens WHERE token_hash = 'h2'"
        ),
        1
    );
    // What was pruned is named, so its files can go too.
    assert!(done.pruned_executions.contains(&a_old[0]));
    assert!(done.pruned_executions.contains(&b_old));
    // A second run finds nothing.
    assert_eq!(
        store
            .retention()
            .prune(&policy, now, false)
            .expect("again")
            .total(),
        0
    );
}

#[test]
fn a_new_database_hands_pruned_pages_back_to_the_file_system() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let store = Store::open_in_dir(dir).expect("open");
    assert_eq!(
        store.retention().auto_vacuum().expect("mode"),
        2,
        "incremental"
    );
    let now = chrono::Utc::now().timestamp_millis();
    let p = store.personas().create(&spec("A", 5)).expect("A").id;
    let big = "x".repeat(2_000);
    for _ in 0..20 {
        let id = ended(&store, dir, &p, 60, 0, now);
        let batch: Vec<NewLine> = (1..=500)
            .map(|seq| NewLine {
                execution_id: personas_core::ExecutionId::from_string(id.clone()),
                seq,
                kind: LineKind::AssistantText,
                text: big.clone(),
                at_ms: 0,
            })
            .collect();
        store.executions().append_output(&batch).expect("lines");
    }
    raw(dir)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("ckpt");
    let full = std::fs::metadata(dir.join("personas.db"))
        .expect("meta")
        .len();
    let r = store
        .retention()
        .prune(&RetentionPolicy::default(), now, false)
        .expect("gc");
    assert_eq!(r.output_lines, 20 * 500);
    let after = std::fs::metadata(dir.join("personas.db"))
        .expect("meta")
        .len();
    assert!(after * 4 < full, "the file shrank: {full} -> {after}");
}

/// SIGKILL while a migration holds the write lock (an old V3 store with many rows being
/// upgraded): afterwards the store opens at the latest version with every row.
#[cfg(unix)]
#[test]
fn sigkill_during_a_migration_leaves_the_old_or_the_new_schema_never_half() {
    const CHILD: &str = "PERSONAS_TEST_MIGRATE_CHILD";
    if let Ok(dir) = std::env::var(CHILD) {
        // The child: open (and so migrate) the store, then report.
        Store::open_in_dir(Path::new(&dir)).expect("child open");
        println!("migrated");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let rows = 200_000;
    {
        let old = Store::open_at_version(&dir.join("personas.db"), 3).expect("v3");
        let p = old.personas().create(&spec("A", 1)).expect("A").id;
        let c = raw(dir);
        c.execute_batch("BEGIN").expect("begin");
        let mut ins = c
            .prepare(
                "INSERT INTO executions (id, persona_id, persona_name, status, trigger_kind, queued_at, finished_at)
                 VALUES (?1, ?2, 'A', 'completed', 'manual', ?3, ?3)",
            )
            .expect("prepare");
        for i in 0..rows {
            ins.execute(rusqlite::params![format!("x{i:07}"), p.as_str(), i])
                .expect("row");
        }
        drop(ins);
        c.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("commit");
    }
    let version = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT MAX(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .expect("version")
    };
    assert_eq!(version(&raw(dir)), 3);
    let mut killed_mid = 0;
    for _attempt in 0..3 {
        let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args([
                "--exact",
                "datasafe::sigkill_during_a_migration_leaves_the_old_or_the_new_schema_never_half",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("child");
        // Wait until the child holds the write lock (our own attempt to take it is refused),
        // then kill it there.
        let probe = raw(dir);
        probe
            .busy_timeout(std::time::Duration::ZERO)
            .expect("no wait");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut held = false;
        while std::time::Instant::now() < deadline && child.try_wait().expect("wait").is_none() {
            match probe.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
                Ok(()) => std::thread::yield_now(),
                Err(_) => {
                    held = true;
                    break;
                }
            }
        }
        if held {
            // Give the migration a moment to be well under way (V4 rewrites every row).
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait().expect("reap");
        if held && !status.success() {
            killed_mid += 1;
            let c = raw(dir);
            assert_eq!(version(&c), 3, "a killed migration left nothing behind");
            let integrity: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("check");
            assert_eq!(integrity, "ok");
        }
    }
    assert!(
        killed_mid > 0,
        "no kill landed while the migration held the lock"
    );
    let store = Store::open_in_dir(dir).expect("reopen migrates");
    let h = store.health().expect("health");
    assert_eq!(h.schema_version, personas_store::latest_schema_version());
    assert_eq!(h.executions, rows);
    assert!(h.ok, "{h:?}");
    assert_eq!(
        count(
            dir,
            "SELECT COUNT(*) FROM executions WHERE healed_at IS NULL"
        ),
        0,
        "V4 applied to every row"
    );
}
