//! The path through the broker with an in-process orchestrator: the outbox relay publishes what
//! a crash left; the dispatcher takes work only for idle workers; a broker restart with queued
//! executions loses nothing.

use super::fake_worker::FakeWorker;
use super::support::{Db, TENANT, TestBroker, eventually, push_persona, settings};
use personas_cloud::orchestrator::queue::{self, NewExecution};
use personas_cloud::orchestrator::{self, db};
use personas_core::TriggerKind;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn enqueue(d: &Db, n: usize) -> Vec<personas_core::ExecutionId> {
    let pool = d.pool();
    let mut c = db::conn(&pool).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..n {
        let tx = db::begin(&mut c).await.unwrap();
        let e = queue::enqueue(
            &tx,
            NewExecution {
                tenant_id: TENANT,
                persona: "Writer",
                input: None,
                trigger: TriggerKind::Manual,
                trigger_ref: None,
                idempotency_key: None,
                max_attempts: 3,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        ids.push(e.execution.id);
    }
    ids
}

async fn count(d: &Db, sql: &str) -> i64 {
    let pool = d.pool();
    let c = db::conn(&pool).await.unwrap();
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publishes_in_order_what_a_crash_between_commit_and_publish_left() {
    let d = Db::start().await;
    let broker = TestBroker::start_temp();
    // Committed rows nobody published (the orchestrator died after the commit).
    d.sql(
        "INSERT INTO outbox (topic, key, payload) VALUES
           ('persona.events.v1', 'k', '{\"kind\": \"exec\", \"tenant_id\": \"t\", \"execution_id\": \"e1\", \"attempt\": 9}'),
           ('persona.events.v1', 'k', '{\"kind\": \"exec\", \"tenant_id\": \"t\", \"execution_id\": \"e2\", \"attempt\": 9}'),
           ('persona.events.v1', 'k', '{\"kind\": \"exec\", \"tenant_id\": \"t\", \"execution_id\": \"e3\", \"attempt\": 9}')",
    );
    let s = settings("o1", &d, &broker.bootstrap(), "relay");
    let running = orchestrator::start(s.clone()).await.expect("start");
    eventually(WAIT, "the relay marked every row", || async {
        count(&d, "SELECT count(*) FROM outbox WHERE published_at IS NULL").await == 0
    })
    .await;
    let consumer: StreamConsumer = orchestrator::kafka::client_config(&s)
        .set("group.id", "relay-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["relay.persona.events.v1"]).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let m = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("published")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        seen.push(v["execution_id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["e1", "e2", "e3"], "in commit order");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_takes_work_only_for_an_idle_worker() {
    let d = Db::start().await;
    let broker = TestBroker::start_temp();
    push_persona(&d, TENANT, "Writer", "unused");
    let running = orchestrator::start(settings("o1", &d, &broker.bootstrap(), "idle"))
        .await
        .expect("start");
    let base = format!("http://{}", running.addr);
    let ids = enqueue(&d, 2).await;
    eventually(WAIT, "both exec messages are on the broker", || async {
        count(&d, "SELECT count(*) FROM outbox WHERE published_at IS NULL").await == 0
    })
    .await;
    assert_eq!(
        count(&d, "SELECT count(*) FROM attempts").await,
        0,
        "no worker, no attempt"
    );

    let (mut w, _) = FakeWorker::connect(&base, "w1", 1, Vec::new()).await;
    let first = w
        .assignment(WAIT)
        .await
        .expect("the idle worker gets a run");
    assert!(ids.contains(&first.execution_id));
    // Busy: the second run waits (the ack round trip gives the dispatcher time to misbehave).
    assert!(w.finish_partly(&first).await);
    assert_eq!(
        count(&d, "SELECT count(*) FROM attempts").await,
        1,
        "one run per free slot"
    );
    assert!(w.finish(&first, 0).await, "completion accepted");
    let second = w
        .assignment(WAIT)
        .await
        .expect("the freed worker gets the next run");
    assert_ne!(second.execution_id, first.execution_id);
    assert!(w.finish(&second, 2).await);
    assert_eq!(
        count(
            &d,
            "SELECT count(*) FROM executions WHERE status = 'completed' AND attempt = 1"
        )
        .await,
        2
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_with_queued_executions_loses_nothing() {
    let d = Db::start().await;
    let mut broker = TestBroker::start_temp();
    push_persona(&d, TENANT, "Writer", "unused");
    let running = orchestrator::start(settings("o1", &d, &broker.bootstrap(), "restart"))
        .await
        .expect("start");
    let base = format!("http://{}", running.addr);
    let mut ids = enqueue(&d, 3).await;
    eventually(WAIT, "the first runs are on the broker", || async {
        count(&d, "SELECT count(*) FROM outbox WHERE published_at IS NULL").await == 0
    })
    .await;
    broker.kill();
    ids.extend(enqueue(&d, 3).await); // queued while the broker is down
    broker.restart();
    let (mut w, _) = FakeWorker::connect(&base, "w1", 1, Vec::new()).await;
    let mut done = Vec::new();
    while done.len() < ids.len() {
        let a = w
            .assignment(Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("only {} of {} runs were assigned", done.len(), ids.len()));
        assert!(w.finish(&a, 1).await);
        done.push(a.execution_id);
    }
    done.sort();
    ids.sort();
    assert_eq!(done, ids, "every queued run ran, once");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_journal_entry_reaches_the_live_broadcast_once() {
    let d = Db::start().await;
    let broker = TestBroker::start_temp();
    push_persona(&d, TENANT, "Writer", "unused");
    let running = orchestrator::start(settings("o1", &d, &broker.bootstrap(), "live"))
        .await
        .expect("start");
    let mut live = running.state.live();
    // The broadcast reader starts at the topics' end once its partitions are assigned: queue
    // runs until one is seen live, then check that every later entry arrives, in order.
    let mut first = None;
    for _ in 0..10 {
        enqueue(&d, 1).await;
        running.state.kick_outbox();
        if let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(3), live.recv()).await {
            first = Some(e.seq);
            break;
        }
    }
    let first = first.expect("a journal entry reached the live broadcast");
    enqueue(&d, 5).await;
    running.state.kick_outbox();
    let mut seqs = Vec::new();
    while seqs.len() < 5 {
        let e = tokio::time::timeout(WAIT, live.recv())
            .await
            .expect("live")
            .unwrap();
        assert_eq!(e.tenant_id, TENANT);
        if e.seq > first {
            seqs.push(e.seq);
        }
    }
    // Entries of different executions travel on different partitions: they arrive complete but
    // not necessarily in journal order (the client stream reorders by seq).
    seqs.sort_unstable();
    let last: i64 = count(&d, "SELECT max(seq) FROM journal").await;
    assert_eq!(
        seqs,
        ((last - 4)..=last).collect::<Vec<_>>(),
        "every entry, once"
    );
    running.stop().await;
}
