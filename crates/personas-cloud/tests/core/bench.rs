//! Dispatch throughput with no-op workers (run with `--ignored --nocapture`; prints numbers):
//! an in-process orchestrator, 4 protocol workers that complete each assignment at once with
//! one output line, N executions queued up front. And the other cloud numbers: a
//! thousand idle workers on one orchestrator (RSS, CPU), output latency from a worker's line to
//! a client's frame, and dispatch from the API to worker processes running the stand-in CLI.

use super::fake_worker::FakeWorker;
use super::support::{
    Db, SECRET, TENANT, TestBroker, eventually, persona_text, push_persona, settings,
};
use personas_cloud::orchestrator::queue::{self, NewExecution};
use personas_cloud::orchestrator::{self, db};
use personas_core::TriggerKind;
use personas_testkit::cloud::{CloudStack, StackOptions, StackSecrets};
use std::time::{Duration, Instant};

const RUNS: usize = 400;
const WORKERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn bench_dispatch_with_no_op_workers() {
    let d = Db::start().await;
    let broker = TestBroker::start_temp();
    push_persona(&d, TENANT, "Writer", "unused");
    let mut s = settings("o1", &d, &broker.bootstrap(), "bench");
    s.kafka_partitions = 6;
    let running = orchestrator::start(s).await.expect("start");
    let base = format!("http://{}", running.addr);
    let pool = d.pool();
    let queued_at = Instant::now();
    {
        let mut c = db::conn(&pool).await.unwrap();
        for i in 0..RUNS {
            let tx = db::begin(&mut c).await.unwrap();
            queue::enqueue(
                &tx,
                NewExecution {
                    tenant_id: TENANT,
                    persona: "Writer",
                    input: Some(serde_json::json!({ "i": i })),
                    trigger: TriggerKind::Manual,
                    trigger_ref: None,
                    idempotency_key: None,
                    max_attempts: 3,
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    }
    let enqueue_s = queued_at.elapsed().as_secs_f64();
    running.state.kick_outbox();
    let c = db::conn(&pool).await.unwrap();
    eventually(
        Duration::from_secs(120),
        "every exec message is on the broker",
        || async {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            n == 0
        },
    )
    .await;
    let published_s = queued_at.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let (mut fw, _) =
                FakeWorker::connect(&base, &format!("bench-{w}"), 1, Vec::new()).await;
            let mut n = 0usize;
            while let Some(a) = fw.assignment(Duration::from_secs(5)).await {
                assert!(fw.finish(&a, 1).await);
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    // The last 5 s were the workers waiting for more.
    let secs = start.elapsed().as_secs_f64() - 5.0;
    assert_eq!(total, RUNS, "every run assigned once");
    let completed: i64 = c
        .query_one(
            "SELECT count(*) FROM executions WHERE status = 'completed' AND attempt = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(completed as usize, RUNS);
    eprintln!(
        "bench: {RUNS} enqueued in {enqueue_s:.2} s ({:.0}/s), on the broker after {published_s:.2} s; \
         assigned+completed by {WORKERS} no-op workers in {secs:.2} s = {:.0} runs/s",
        RUNS as f64 / enqueue_s,
        RUNS as f64 / secs
    );
    running.stop().await;
}

/// A stack whose workers' tokens derive from the tests' secret (so [`FakeWorker`]s can join).
async fn stack(
    orchestrators: usize,
    workers: usize,
    tune: impl FnOnce(&mut StackOptions),
) -> CloudStack {
    let mut options = StackOptions::new(env!("CARGO_BIN_EXE_personas-cloud"));
    options.orchestrators = orchestrators;
    options.workers = workers;
    let mut secrets = StackSecrets::generate();
    secrets.deployment_secret = SECRET.into();
    options.secrets = Some(secrets);
    options.namespace = format!("bench{}", uuid::Uuid::new_v4().simple());
    tune(&mut options);
    CloudStack::start(options).await
}

/// `(resident bytes, CPU seconds so far)` of a process, from /proc.
fn rss_and_cpu(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // USER_HZ is 100 on Linux.
    (rss_kb * 1024, ticks as f64 / 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn bench_a_thousand_idle_workers_on_one_orchestrator() {
    const IDLE: usize = 1_000;
    const WINDOW: Duration = Duration::from_secs(20);
    let s = stack(1, 0, |_| {}).await;
    let base = s.orchestrator_url(0);
    let pid = s.orchestrator_pid(0).expect("pid");
    let (rss_before, _) = rss_and_cpu(pid);
    let connected = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for w in 0..IDLE {
        let (base, connected, stop) = (base.clone(), connected.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (mut fw, _) = FakeWorker::connect(&base, &format!("idle-{w}"), 1, Vec::new()).await;
            connected.add_permits(1);
            // Waiting for an assignment heartbeats; none comes.
            tokio::select! {
                _ = stop.cancelled() => {}
                a = fw.assignment(WINDOW * 3) => assert!(a.is_none(), "an idle worker got work"),
            }
        }));
    }
    let _all = connected
        .acquire_many(IDLE as u32)
        .await
        .expect("every worker connected");
    let (_, cpu0) = rss_and_cpu(pid);
    let t0 = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let (rss, cpu1) = rss_and_cpu(pid);
    let cpu_share = (cpu1 - cpu0) / t0.elapsed().as_secs_f64();
    let cluster = s
        .client()
        .get_cluster(&personas_cloud_api::model::Empty {})
        .await
        .expect("cluster");
    assert_eq!(cluster.workers.len(), IDLE, "every idle worker is listed");
    stop.cancel();
    for t in tasks {
        t.await.expect("worker task");
    }
    eprintln!(
        "bench: {IDLE} idle workers heartbeating once a second on one orchestrator: RSS {:.1} MB \
         (idle with none: {:.1} MB), CPU {:.1} % of a core over {:?}",
        rss as f64 / 1e6,
        rss_before as f64 / 1e6,
        cpu_share * 100.0,
        WINDOW
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn bench_output_latency_from_worker_line_to_client() {
    const LINES: i64 = 400;
    let s = stack(1, 0, |_| {}).await;
    let client = s.client();
    client
        .push_persona(&personas_cloud_api::model::PushPersona {
            text: persona_text("Talker", "unused"),
            id: None,
            credentials: Vec::new(),
            triggers: Vec::new(),
        })
        .await
        .expect("push");
    let (mut fw, _) = FakeWorker::connect(&s.orchestrator_url(0), "latency", 1, Vec::new()).await;
    let run = client
        .execute(&personas_cloud_api::model::Execute {
            persona: "Talker".into(),
            input: None,
            idempotency_key: None,
        })
        .await
        .expect("execute");
    let id = run.execution.id.clone();
    let mut stream = Box::pin(client.stream(0, Some(id.as_str())).await.expect("stream"));
    let a = fw
        .assignment(Duration::from_secs(30))
        .await
        .expect("assigned");
    let reader = tokio::spawn(async move {
        use futures::StreamExt;
        let mut latencies = Vec::new();
        while latencies.len() < LINES as usize {
            let frame = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("a frame in time")
                .expect("the stream is up")
                .expect("a frame");
            if let personas_cloud_api::stream::ClientEvent::Output { line } = frame.event {
                let ms = (chrono::Utc::now() - line.at)
                    .num_microseconds()
                    .expect("µs") as f64
                    / 1e3;
                latencies.push(ms);
            }
        }
        latencies
    });
    for seq in 1..=LINES {
        fw.send(&personas_cloud_api::wire::WorkerFrame::Output {
            execution_id: a.execution_id.clone(),
            attempt: a.attempt,
            lines: vec![personas_cloud_api::wire::WireLine {
                seq,
                kind: personas_core::LineKind::AssistantText,
                text: format!("line {seq}"),
                at: chrono::Utc::now(),
            }],
        })
        .await;
        // Paced like a talkative run, and acknowledged as the real worker sees it.
        let _ = fw.recv(Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut latencies = reader.await.expect("reader");
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "bench: worker line -> client frame over {LINES} lines (one orchestrator process, loopback): \
         p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn bench_dispatch_from_api_to_worker_with_the_stand_in_cli() {
    const RUNS: usize = 200;
    let s = stack(1, 4, |o| {
        o.claude_path = Some(personas_testkit::fake_claude_bin());
    })
    .await;
    let client = s.client();
    client
        .push_persona(&personas_cloud_api::model::PushPersona {
            text: persona_text("Quick", "unused"),
            id: None,
            credentials: Vec::new(),
            triggers: Vec::new(),
        })
        .await
        .expect("push");
    let start = Instant::now();
    let mut ids = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let run = client
            .execute(&personas_cloud_api::model::Execute {
                persona: "Quick".into(),
                input: None,
                idempotency_key: None,
            })
            .await
            .expect("execute");
        ids.push(run.execution.id);
    }
    let queued = start.elapsed().as_secs_f64();
    let pool = {
        let url = s.database_url();
        let cfg: tokio_postgres::Config = url.parse().expect("url");
        let mgr = deadpool_postgres::Manager::new(cfg, tokio_postgres::NoTls);
        deadpool_postgres::Pool::builder(mgr)
            .max_size(2)
            .build()
            .expect("pool")
    };
    let c = pool.get().await.expect("conn");
    eventually(Duration::from_secs(600), "every run completed", || async {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM executions WHERE status = 'completed'",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        n as usize == RUNS
    })
    .await;
    let secs = start.elapsed().as_secs_f64();
    let twice: i64 = c
        .query_one("SELECT count(*) FROM executions WHERE attempt <> 1", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(twice, 0, "every run took one attempt");
    eprintln!(
        "bench: {RUNS} runs through the API ({:.0} queued/s) completed on 4 worker processes with \
         the stand-in CLI in {secs:.1} s = {:.1} runs/s end to end",
        RUNS as f64 / queued,
        RUNS as f64 / secs
    );
}
