//! Dispatch throughput with no-op workers (run with `--ignored --nocapture`; prints numbers):
//! an in-process orchestrator, 4 protocol workers that complete each assignment at once with
//! one output line, N executions queued up front.

use super::fake_worker::FakeWorker;
use super::support::{Db, TENANT, TestBroker, eventually, push_persona, settings};
use personas_cloud::orchestrator::queue::{self, NewExecution};
use personas_cloud::orchestrator::{self, db};
use personas_core::TriggerKind;
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
