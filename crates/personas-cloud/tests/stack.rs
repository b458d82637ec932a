//! The test stack itself (`personas_testkit::cloud::CloudStack`): it starts real Postgres, the
//! real broker and processes of this crate's binary, waits on readiness, and its failure
//! helpers (kill -9, restarts, one more worker) do what the failure tests rely on them doing.

use personas_cloud_api::model::Empty;
use personas_testkit::cloud::{CloudStack, StackOptions};
use personas_testkit::process_table_has;
use std::time::{Duration, Instant};

fn options(orchestrators: usize, workers: usize) -> StackOptions {
    let mut o = StackOptions::new(env!("CARGO_BIN_EXE_personas-cloud"));
    o.orchestrators = orchestrators;
    o.workers = workers;
    o.claude_path = Some(personas_testkit::claude_bin());
    o.ready_timeout = Duration::from_secs(90);
    o
}

/// Whether anything accepts TCP connections at `url`'s port on loopback.
fn listening(url: &str) -> bool {
    let addr = url.trim_start_matches("http://");
    std::net::TcpStream::connect_timeout(
        &addr.parse().expect("the stack's URLs are ip:port"),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Whether process `pid` exists (the helpers reap what they kill, so a killed child's pid is
/// gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn ready(url: &str) -> u16 {
    reqwest::get(format!("{url}/ready"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls `cond` until it holds or `secs` pass.
async fn eventually(secs: u64, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_that_cannot_start_fails_the_stack_with_its_log_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut o = options(1, 0);
    o.dir = Some(dir.path().to_path_buf());
    // A setting the orchestrator refuses at start.
    o.orchestrator_env = vec![(
        "PERSONAS_CLOUD_KAFKA_NAMESPACE".into(),
        "no spaces allowed".into(),
    )];
    let outcome = tokio::spawn(CloudStack::start(o)).await;
    let Err(failure) = outcome else {
        panic!("the stack must not start with a namespace the orchestrator refuses");
    };
    let panic = failure.into_panic();
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| panic.downcast_ref::<&str>().unwrap_or(&"").to_string());
    assert!(message.contains("orch-0 exited"), "{message}");
    let log = dir.path().join("logs").join("orch-0.log");
    assert!(message.contains(&log.display().to_string()), "{message}");
    assert!(
        message.contains("no spaces allowed"),
        "the log's tail is in the message: {message}"
    );
    // Postgres and the broker (whose command lines name the dir) were stopped by the unwinding.
    let marker = dir.path().display().to_string();
    assert!(
        !process_table_has(&marker),
        "a process of {marker} survived the failed start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_starts_ready_and_its_kill_and_restart_helpers_do_what_they_say() {
    let mut stack = CloudStack::start(options(2, 1)).await;
    let (a, b) = (stack.orchestrator_url(0), stack.orchestrator_url(1));
    assert_eq!(ready(&a).await, 200);
    assert_eq!(ready(&b).await, 200);
    let cluster = stack
        .client()
        .get_cluster(&Empty {})
        .await
        .expect("get_cluster");
    assert!(
        cluster.workers.iter().any(|w| w.id == "worker-0"),
        "{cluster:?}"
    );
    let marker = stack.dir().display().to_string();

    // kill -9 an orchestrator: its port goes dead, url() moves on, restart brings it back.
    let pid = stack.orchestrator_pid(0).expect("running");
    stack.kill9_orchestrator(0);
    assert!(!alive(pid), "orch-0 (pid {pid}) still alive after kill9");
    assert!(!listening(&a), "orch-0 still listening after kill9");
    assert_eq!(stack.url(), b);
    stack.restart_orchestrator(0).await;
    assert_eq!(ready(&a).await, 200);
    assert_eq!(stack.url(), a);

    // kill -9 a worker; a new one connects and is listed.
    let pid = stack.worker_pid(0).expect("running");
    stack.kill9_worker(0);
    assert!(!alive(pid), "worker-0 (pid {pid}) still alive after kill9");
    let i = stack.start_worker(&[]).await;
    assert_eq!(stack.worker_id(i), "worker-1");
    let cluster = stack
        .client()
        .get_cluster(&Empty {})
        .await
        .expect("get_cluster");
    assert!(
        cluster.workers.iter().any(|w| w.id == "worker-1"),
        "{cluster:?}"
    );

    // The broker restarts on the same address; the orchestrators are ready again after it.
    let bootstrap = stack.broker().bootstrap();
    stack.restart_broker();
    assert_eq!(stack.broker().bootstrap(), bootstrap);
    for url in [&a, &b] {
        eventually(60, "ready again after the broker restart", async || {
            ready(url).await == 200
        })
        .await;
    }

    // Dropping the stack stops every process it started.
    let pids: Vec<u32> = (0..2)
        .filter_map(|i| stack.orchestrator_pid(i))
        .chain(stack.worker_pid(1))
        .collect();
    drop(stack);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived the stack's drop");
    }
    assert!(
        !process_table_has(&marker),
        "a process of {marker} survived the stack's drop"
    );
}
