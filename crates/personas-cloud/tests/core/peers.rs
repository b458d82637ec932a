//! What peers share through Postgres: the reaper re-queues a silent worker's attempt and
//! dead-letters after the limit; a due cron trigger fires once however many orchestrators look.

use super::support::{Db, TENANT, offline_state, push_persona};
use personas_cloud::orchestrator::queue::{self, NewExecution, attempt};
use personas_cloud::orchestrator::{cron, db, reaper};
use personas_core::{ExecutionStatus, TriggerKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_requeues_a_silent_workers_attempt_then_dead_letters_with_the_reason() {
    let d = Db::start().await;
    push_persona(&d, TENANT, "Writer", "unused");
    let a = offline_state(&d, "o1");
    let b = offline_state(&d, "o2");
    d.sql(
        "INSERT INTO workers (id, orchestrator_id, version, capacity, heartbeat_at)
         VALUES ('w-silent', 'o1', 'v', 1, now() - interval '30 seconds'),
                ('w-alive', 'o1', 'v', 1, now() + interval '1 hour')",
    );
    let mut c = db::conn(a.db()).await.unwrap();
    let tx = db::begin(&mut c).await.unwrap();
    let new = |p| NewExecution {
        tenant_id: TENANT,
        persona: p,
        input: None,
        trigger: TriggerKind::Manual,
        trigger_ref: None,
        idempotency_key: None,
        max_attempts: 2,
    };
    let e = queue::enqueue(&tx, new("Writer")).await.unwrap();
    let alive = queue::enqueue(&tx, new("Writer")).await.unwrap();
    let id = e.execution.id.clone();
    attempt::take(&tx, &id, 1, "w-silent", "o1")
        .await
        .unwrap()
        .unwrap();
    attempt::take(&tx, &alive.execution.id, 1, "w-alive", "o1")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();

    // Two peers reap at once: the attempt is lost once.
    let (ra, rb) = tokio::join!(reaper::reap_once(&a), reaper::reap_once(&b));
    assert_eq!(
        ra.unwrap() + rb.unwrap(),
        1,
        "one peer acted, on the silent worker's run only"
    );
    let after = queue::load_execution(&c, TENANT, &id).await.unwrap();
    assert_eq!(after.execution.status, ExecutionStatus::Queued);
    assert!(
        after.attempts[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("w-silent silent")
    );
    assert_eq!(
        d.sql(&format!(
            "SELECT payload->>'attempt' FROM outbox WHERE topic = 'persona.exec.v1' AND payload->>'execution_id' = '{id}' ORDER BY id"
        )),
        "1\n2",
        "attempt 2 queued through the outbox"
    );

    // Attempt 2 lands on the same silent worker: out of attempts → dead letter.
    let tx = db::begin(&mut c).await.unwrap();
    attempt::take(&tx, &id, 2, "w-silent", "o2")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(reaper::reap_once(&b).await.unwrap(), 1);
    let dead = queue::load_execution(&c, TENANT, &id).await.unwrap();
    assert_eq!(dead.execution.status, ExecutionStatus::Failed);
    let reason = dead.dead_letter_reason.expect("a dead-letter reason");
    assert!(
        reason.contains("attempt 2 of 2") && reason.contains("silent"),
        "{reason}"
    );
    assert_eq!(
        d.sql(&format!(
            "SELECT payload->>'reason' FROM outbox WHERE topic = 'persona.dlq.v1' AND key = '{id}'"
        )),
        reason
    );
    let alive = queue::load_execution(&c, TENANT, &alive.execution.id)
        .await
        .unwrap();
    assert_eq!(alive.attempts.len(), 1, "a live worker's run is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_cron_trigger_fires_once_with_two_orchestrators() {
    let d = Db::start().await;
    let persona = push_persona(&d, TENANT, "Nightly", "unused");
    d.sql(&format!(
        "INSERT INTO triggers (tenant_id, id, persona_id, kind, config, next_fire_at)
         VALUES ('{TENANT}', 'trg-1', '{persona}', 'cron',
                 '{{\"kind\": \"cron\", \"expr\": \"0 3 * * *\", \"tz\": \"UTC\"}}',
                 now() - interval '1 second')"
    ));
    let a = offline_state(&d, "o1");
    let b = offline_state(&d, "o2");
    for _ in 0..3 {
        let (x, y) = tokio::join!(cron::fire_due(&a), cron::fire_due(&b));
        x.unwrap();
        y.unwrap();
    }
    assert_eq!(
        d.sql("SELECT count(*), min(trigger), min(trigger_ref) FROM executions"),
        "1|schedule|trg-1",
        "fired exactly once"
    );
    assert_eq!(
        d.sql("SELECT next_fire_at > now() AND last_fired_at IS NOT NULL FROM triggers"),
        "t",
        "moved to the next occurrence"
    );
}
