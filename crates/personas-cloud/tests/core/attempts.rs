//! Attempt transitions against real Postgres: only the current, live attempt changes an
//! execution; output is stored once per sequence number; the queue honours idempotency keys.

use super::support::{Db, TENANT, push_persona};
use chrono::Utc;
use personas_cloud::orchestrator::db;
use personas_cloud::orchestrator::queue::attempt::{self, Stored};
use personas_cloud::orchestrator::queue::{self, NewExecution};
use personas_cloud_api::CloudErrorCode;
use personas_cloud_api::wire::WireLine;
use personas_core::{ExecutionStatus, LineKind, TriggerKind};

fn new_run<'a>(persona: &'a str, key: Option<&str>) -> NewExecution<'a> {
    NewExecution {
        tenant_id: TENANT,
        persona,
        input: Some(serde_json::json!({"n": 1})),
        trigger: TriggerKind::Manual,
        trigger_ref: None,
        idempotency_key: key.map(str::to_string),
        max_attempts: 2,
    }
}

fn lines(from: i64, to: i64) -> Vec<WireLine> {
    (from..=to)
        .map(|seq| WireLine {
            seq,
            kind: LineKind::AssistantText,
            text: format!("line {seq}"),
            at: Utc::now(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_attempt_changes_nothing_and_an_execution_completes_once() {
    let d = Db::start().await;
    push_persona(&d, TENANT, "Writer", "unused");
    let pool = d.pool();
    let mut c = db::conn(&pool).await.unwrap();

    let tx = db::begin(&mut c).await.unwrap();
    let e = queue::enqueue(&tx, new_run("Writer", None)).await.unwrap();
    tx.commit().await.unwrap();
    let id = e.execution.id.clone();
    assert_eq!(
        (e.execution.status, e.attempt),
        (ExecutionStatus::Queued, 0)
    );

    // Attempt 1 on w1; a duplicate exec message for attempt 1 takes nothing.
    let tx = db::begin(&mut c).await.unwrap();
    let t1 = attempt::take(&tx, &id, 1, "w1", "o1")
        .await
        .unwrap()
        .expect("taken");
    assert_eq!(t1.assignment.first_seq, 1);
    assert!(
        attempt::take(&tx, &id, 1, "w2", "o1")
            .await
            .unwrap()
            .is_none(),
        "duplicate"
    );
    assert!(attempt::started(&tx, &id, 1).await.unwrap());
    let s = attempt::store_output(&tx, &id, 1, &lines(1, 3))
        .await
        .unwrap();
    assert_eq!(
        s,
        Stored::Lines {
            up_to_seq: 3,
            new: 3
        }
    );
    // A resend after a reconnect stores nothing twice.
    let s = attempt::store_output(&tx, &id, 1, &lines(2, 4))
        .await
        .unwrap();
    assert_eq!(
        s,
        Stored::Lines {
            up_to_seq: 4,
            new: 1
        }
    );
    // w1 goes silent: attempt 1 lost, attempt 2 queued.
    let lost = attempt::lose(&tx, &id, 1, "worker w1 silent")
        .await
        .unwrap();
    assert_eq!(lost, attempt::Lost::Requeued { next: 2 });
    tx.commit().await.unwrap();

    let tx = db::begin(&mut c).await.unwrap();
    let t2 = attempt::take(&tx, &id, 2, "w2", "o1")
        .await
        .unwrap()
        .expect("attempt 2");
    assert_eq!(
        t2.assignment.first_seq, 5,
        "a retry continues the numbering"
    );
    // The lost attempt's late output and completion change nothing.
    let s = attempt::store_output(&tx, &id, 1, &lines(5, 6))
        .await
        .unwrap();
    assert_eq!(s, Stored::Stale);
    let mut record = queue::load_execution(&tx, TENANT, &id)
        .await
        .unwrap()
        .execution;
    record.status = ExecutionStatus::Completed;
    record.cost_usd = 0.25;
    assert!(
        !attempt::complete(&tx, &id, 1, record.clone())
            .await
            .unwrap(),
        "stale"
    );
    assert!(
        attempt::complete(&tx, &id, 2, record.clone())
            .await
            .unwrap(),
        "current"
    );
    assert!(
        !attempt::complete(&tx, &id, 2, record.clone())
            .await
            .unwrap(),
        "only once"
    );
    tx.commit().await.unwrap();

    let done = queue::load_execution(&c, TENANT, &id).await.unwrap();
    assert_eq!(done.execution.status, ExecutionStatus::Completed);
    assert_eq!(done.execution.output_lines, 4);
    assert_eq!(done.execution.cost_usd, 0.25);
    let states: Vec<_> = done.attempts.iter().map(|a| (a.number, a.state)).collect();
    use personas_cloud_api::model::AttemptState::*;
    assert_eq!(states, vec![(1, Lost), (2, Completed)]);
    assert_eq!(done.attempts[0].reason.as_deref(), Some("worker w1 silent"));
    assert_eq!(d.sql("SELECT count(*) FROM output_lines"), "4");
    assert_eq!(
        d.sql("SELECT string_agg(event->'line'->>'seq', ',' ORDER BY seq) FROM journal WHERE event->>'type' = 'output'"),
        "1,2,3,4",
        "one journal entry per stored line, none for the duplicates"
    );
    // Journal numbers are gapless from 1.
    assert_eq!(
        d.sql("SELECT count(*) = max(seq) AND min(seq) = 1 FROM journal"),
        "t"
    );
    assert_eq!(
        d.sql("SELECT executions, cost_usd FROM usage"),
        "1|0.25",
        "counted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_queues_one_run() {
    let d = Db::start().await;
    push_persona(&d, TENANT, "Writer", "unused");
    push_persona(&d, TENANT, "Other", "unused");
    let pool = d.pool();
    let mut c = db::conn(&pool).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let tx = db::begin(&mut c).await.unwrap();
        let e = queue::enqueue(&tx, new_run("Writer", Some("k-1")))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ids.push(e.execution.id);
    }
    assert_eq!(ids[0], ids[1], "the retry gets the first execution");
    assert_eq!(d.sql("SELECT count(*) FROM executions"), "1");
    assert_eq!(
        d.sql("SELECT count(*) FROM outbox WHERE topic = 'persona.exec.v1'"),
        "1",
        "one exec message"
    );
    let tx = db::begin(&mut c).await.unwrap();
    let e = queue::enqueue(&tx, new_run("Other", Some("k-1")))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (CloudErrorCode::Conflict, Some("idempotency_key"))
    );
    drop(tx);
    let tx = db::begin(&mut c).await.unwrap();
    let e = queue::enqueue(&tx, new_run("Nobody", None))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (CloudErrorCode::NotFound, Some("persona"))
    );
    drop(tx);
    // Another tenant cannot see the execution.
    let other = queue::load_execution(&c, "tenant-b", &ids[0])
        .await
        .unwrap_err();
    assert_eq!(other.code, CloudErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_cancel_ends_at_once_and_a_running_one_asks_the_worker() {
    let d = Db::start().await;
    push_persona(&d, TENANT, "Writer", "unused");
    let pool = d.pool();
    let mut c = db::conn(&pool).await.unwrap();
    let tx = db::begin(&mut c).await.unwrap();
    let queued = queue::enqueue(&tx, new_run("Writer", None)).await.unwrap();
    let running = queue::enqueue(&tx, new_run("Writer", None)).await.unwrap();
    let (q, r) = (queued.execution.id, running.execution.id);
    attempt::take(&tx, &r, 1, "w1", "o1")
        .await
        .unwrap()
        .expect("taken");
    let q2 = queue::request_cancel(&tx, TENANT, &q).await.unwrap();
    let r2 = queue::request_cancel(&tx, TENANT, &r).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(q2.execution.status, ExecutionStatus::Cancelled);
    assert_eq!(
        r2.execution.status,
        ExecutionStatus::Queued,
        "still on its worker"
    );
    assert!(r2.execution.cancel_requested);
    assert_eq!(
        d.sql(&format!(
            "SELECT count(*) FROM outbox WHERE topic = 'persona.lifecycle.v1' AND payload->>'kind' = 'cancel' AND key = '{r}'"
        )),
        "1"
    );
    // The cancelled queued run's exec message takes nothing.
    let tx = db::begin(&mut c).await.unwrap();
    assert!(
        attempt::take(&tx, &q, 1, "w2", "o1")
            .await
            .unwrap()
            .is_none()
    );
    // The worker reports the run stopped: it ends cancelled.
    let mut record = r2.execution.clone();
    record.status = ExecutionStatus::Failed;
    assert!(attempt::complete(&tx, &r, 1, record).await.unwrap());
    tx.commit().await.unwrap();
    let done = queue::load_execution(&c, TENANT, &r).await.unwrap();
    assert_eq!(done.execution.status, ExecutionStatus::Cancelled);
}
