//! The bus and triggers in the store: claims, one-transaction deliveries, leases, retries,
//! dead letters, chains, idempotent publishing, trigger validation.

use super::{spec, store};
use chrono::{TimeDelta, Utc};
use personas_core::trigger::{ChainOn, MissedPolicy, SourceFilter, SourceKind, TriggerConfig};
use personas_core::{ExecutionOutcome, ExecutionStatus, TriggerKind};
use personas_store::bus::TARGETED;
use personas_store::{
    Claim, Decision, EventFilter, NewEvent, NewExecution, NewTrigger, Recipient, RetryPolicy,
    Store, StoreError,
};
use serde_json::json;
use std::time::Duration;

const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base: Duration::from_millis(0),
    cap: Duration::from_millis(0),
};
const LEASE: Duration = Duration::from_secs(30);

fn recipient(target: &str, persona: &personas_core::Persona) -> Recipient {
    Recipient {
        target: target.into(),
        persona_id: persona.id.clone(),
        trigger: TriggerKind::Event,
    }
}

fn executions_of(store: &Store, event_id: &str) -> usize {
    store
        .executions()
        .list(&Default::default())
        .expect("list")
        .iter()
        .filter(|e| e.trigger_ref.as_deref() == Some(event_id))
        .count()
}

#[test]
fn a_delivery_enqueues_one_execution_per_recipient_with_the_payload() {
    let (_d, store) = store();
    let a = store.personas().create(&spec("A", 1)).expect("a");
    let b = store.personas().create(&spec("B", 1)).expect("b");
    let (ev, new) = store
        .bus()
        .publish(&NewEvent::new(
            "ticket.created",
            SourceKind::User,
            json!({"id": 42}),
        ))
        .expect("publish");
    assert!(new);
    assert_eq!((ev.status.as_str(), ev.depth), ("pending", 0));
    let claimed = store.bus().claim("me", LEASE, 10).expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].status.as_str(), claimed[0].attempts),
        ("processing", 1)
    );
    assert!(
        store
            .bus()
            .claim("other", LEASE, 10)
            .expect("claim")
            .is_empty(),
        "leased"
    );
    let done = store
        .bus()
        .deliver(
            "me",
            &[(
                claimed[0].clone(),
                Decision::Deliver(vec![recipient("s1", &a), recipient("s2", &b)]),
            )],
            RETRY,
        )
        .expect("deliver");
    assert_eq!(done[0].event.status, personas_core::EventStatus::Delivered);
    assert_eq!(done[0].created.len(), 2);
    let exec = &done[0].created[0];
    assert_eq!(exec.input, Some(json!({"id": 42})));
    assert_eq!(exec.trigger, TriggerKind::Event);
    assert_eq!(exec.trigger_ref.as_deref(), Some(ev.id.as_str()));
    let deliveries = store.bus().deliveries(&ev.id).expect("deliveries");
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().all(
        |d| d.status == personas_core::EventDeliveryStatus::Delivered && d.execution_id.is_some()
    ));

    // Delivering the same event again (a lease that expired while its first owner was only
    // slow) finds the executions it made: still one per recipient.
    let again = store
        .bus()
        .deliver(
            "me",
            &[(
                claimed[0].clone(),
                Decision::Deliver(vec![recipient("s1", &a)]),
            )],
            RETRY,
        )
        .expect("deliver again");
    assert!(
        again.is_empty(),
        "not processing under our lease any more: ignored"
    );
    assert_eq!(executions_of(&store, &ev.id), 2);
}

#[test]
fn a_lost_lease_is_reaped_and_redelivery_never_duplicates() {
    let (_d, store) = store();
    let a = store.personas().create(&spec("A", 1)).expect("a");
    let (ev, _) = store
        .bus()
        .publish(&NewEvent::new("x", SourceKind::User, json!({})))
        .expect("publish");
    // A dispatcher claims, delivers part of the work... and its process dies before settling:
    // simulated by a claim whose owner is reported dead.
    let claimed = store.bus().claim("dead:1", LEASE, 10).expect("claim");
    assert_eq!(claimed.len(), 1);
    let reaped = store
        .bus()
        .reap_leases(&|owner| owner != "dead:1", 5)
        .expect("reap");
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].status, personas_core::EventStatus::Pending);
    // The live owner's lease is not touched.
    let claimed = store.bus().claim("live:1", LEASE, 10).expect("reclaim");
    assert_eq!(claimed[0].attempts, 2, "the lost attempt counts");
    assert!(
        store
            .bus()
            .reap_leases(&|_| true, 5)
            .expect("reap")
            .is_empty(),
        "an unexpired lease of a live owner stays"
    );
    for _ in 0..2 {
        store
            .bus()
            .deliver(
                "live:1",
                &[(
                    claimed[0].clone(),
                    Decision::Deliver(vec![recipient("s", &a)]),
                )],
                RETRY,
            )
            .expect("deliver");
    }
    assert_eq!(executions_of(&store, &ev.id), 1);
    // A poison event whose dispatcher keeps dying is dead-lettered, not retried forever.
    let (poison, _) = store
        .bus()
        .publish(&NewEvent::new("poison", SourceKind::User, json!({})))
        .expect("publish");
    for _ in 0..2 {
        store.bus().claim("dead:2", LEASE, 10).expect("claim");
        store
            .bus()
            .reap_leases(&|o| o != "dead:2", 2)
            .expect("reap");
    }
    let poison = store.bus().get(&poison.id).expect("get");
    assert_eq!(poison.status, personas_core::EventStatus::DeadLetter);
    assert!(
        poison
            .error
            .as_deref()
            .is_some_and(|e| e.contains("stopped 2 time")),
        "{poison:?}"
    );
}

#[test]
fn failed_deliveries_retry_then_dead_letter_and_manual_retry_requeues() {
    let (_d, store) = store();
    let mut off = spec("Off", 1);
    off.enabled = false;
    let off = store.personas().create(&off).expect("off");
    let mut ev = NewEvent::new("persona_action", SourceKind::Persona, json!({"input": 1}));
    ev.target_persona_id = Some(off.id.clone());
    let (ev, _) = store.bus().publish(&ev).expect("publish");
    for attempt in 1..=3 {
        let claimed = store.bus().claim("me", LEASE, 10).expect("claim");
        assert_eq!(claimed.len(), 1, "attempt {attempt} is due (zero backoff)");
        let out = store
            .bus()
            .deliver(
                "me",
                &[(
                    claimed[0].clone(),
                    Decision::Deliver(vec![recipient(TARGETED, &off)]),
                )],
                RETRY,
            )
            .expect("deliver");
        let want = if attempt < 3 { "failed" } else { "dead_letter" };
        assert_eq!(out[0].event.status.as_str(), want, "attempt {attempt}");
        assert!(
            out[0]
                .event
                .error
                .as_deref()
                .is_some_and(|e| e.contains("disabled"))
        );
    }
    assert!(
        store
            .bus()
            .claim("me", LEASE, 10)
            .expect("claim")
            .is_empty(),
        "dead letters stay put"
    );
    assert_eq!(
        store.bus().deliveries(&ev.id).expect("d")[0].status,
        personas_core::EventDeliveryStatus::Failed
    );

    // Fix the cause, retry by hand: delivered.
    let mut fixed = personas_core::PersonaSpec::from(&off);
    fixed.enabled = true;
    store.personas().update("Off", &fixed).expect("enable");
    let retried = store.bus().retry(&ev.id[..28]).expect("retry by prefix");
    assert_eq!((retried.status.as_str(), retried.attempts), ("pending", 0));
    let claimed = store.bus().claim("me", LEASE, 10).expect("claim");
    let out = store
        .bus()
        .deliver(
            "me",
            &[(
                claimed[0].clone(),
                Decision::Deliver(vec![recipient(TARGETED, &off)]),
            )],
            RETRY,
        )
        .expect("deliver");
    assert_eq!(out[0].event.status, personas_core::EventStatus::Delivered);
    assert_eq!(executions_of(&store, &ev.id), 1);
    let e = store
        .bus()
        .retry(&ev.id)
        .expect_err("delivered cannot be retried");
    assert!(e.to_string().contains("only dead_letter"), "{e}");
}

#[test]
fn skips_record_their_reason_and_a_disabled_subscriber_is_not_a_failure() {
    let (_d, store) = store();
    let mut off = spec("Off", 1);
    off.enabled = false;
    let off = store.personas().create(&off).expect("off");
    for _ in 0..2 {
        store
            .bus()
            .publish(&NewEvent::new("t", SourceKind::User, json!({})))
            .expect("publish");
    }
    let claimed = store.bus().claim("me", LEASE, 10).expect("claim");
    let out = store
        .bus()
        .deliver(
            "me",
            &[
                (claimed[0].clone(), Decision::Skip("depth limit".into())),
                (
                    claimed[1].clone(),
                    Decision::Deliver(vec![recipient("sub", &off)]),
                ),
            ],
            RETRY,
        )
        .expect("deliver");
    assert_eq!(
        (out[0].event.status.as_str(), out[0].event.error.as_deref()),
        ("skipped", Some("depth limit"))
    );
    assert_eq!(out[1].event.status, personas_core::EventStatus::Skipped);
    assert!(
        out[1]
            .event
            .error
            .as_deref()
            .is_some_and(|e| e.contains("unavailable"))
    );
}

#[test]
fn dedupe_keys_publish_once_and_depth_follows_the_emitting_execution() {
    let (_d, store) = store();
    let a = store.personas().create(&spec("A", 1)).expect("a");
    let mut ev = NewEvent::new("cron", SourceKind::Schedule, json!({}));
    ev.dedupe_key = Some("cron:t:1".into());
    let (first, new1) = store.bus().publish(&ev).expect("publish");
    let (second, new2) = store.bus().publish(&ev).expect("publish again");
    assert!(new1 && !new2);
    assert_eq!(first.id, second.id);
    assert_eq!(
        store
            .bus()
            .list(&EventFilter::default())
            .expect("list")
            .len(),
        1
    );

    // An event emitted by a run that the first event started is one deeper; by a manual run, 1.
    let claimed = store.bus().claim("me", LEASE, 10).expect("claim");
    let out = store
        .bus()
        .deliver(
            "me",
            &[(
                claimed[0].clone(),
                Decision::Deliver(vec![recipient("s", &a)]),
            )],
            RETRY,
        )
        .expect("deliver");
    let exec = &out[0].created[0];
    let child = store
        .protocol()
        .insert_event(
            "next",
            personas_core::trigger::SourceKind::Persona,
            Some(a.id.as_str()),
            Some(&exec.id),
            None,
            &json!({}),
        )
        .expect("emit");
    assert_eq!(child.depth, 1);
    let manual = store
        .executions()
        .enqueue(&NewExecution::manual(a.id.clone(), None))
        .expect("manual");
    let from_manual = store
        .protocol()
        .insert_event(
            "next",
            personas_core::trigger::SourceKind::Persona,
            Some(a.id.as_str()),
            Some(&manual.id),
            None,
            &json!({}),
        )
        .expect("emit");
    assert_eq!(from_manual.depth, 1);
    let path = store.bus().causal_path(&child, 10).expect("path");
    assert_eq!(path, vec!["A".to_string()]);
}

#[test]
fn chain_events_fire_once_per_matching_end_and_are_recovered_after_a_crash() {
    let (_d, store) = store();
    let coder = store.personas().create(&spec("Coder", 1)).expect("coder");
    let reviewer = store
        .personas()
        .create(&spec("Reviewer", 1))
        .expect("reviewer");
    let fixer = store.personas().create(&spec("Fixer", 1)).expect("fixer");
    let chain = |p: &personas_core::Persona, on| NewTrigger {
        persona_id: p.id.clone(),
        config: TriggerConfig::Chain {
            after_persona_id: coder.id.clone(),
            on,
        },
        enabled: true,
    };
    let before = Utc::now() - TimeDelta::seconds(1);
    store
        .triggers()
        .create(&chain(&reviewer, ChainOn::Completed), Utc::now())
        .expect("chain");
    store
        .triggers()
        .create(&chain(&fixer, ChainOn::Failed), Utc::now())
        .expect("chain");

    let run = |status: ExecutionStatus| {
        let e = store
            .executions()
            .enqueue(&NewExecution::manual(coder.id.clone(), None))
            .expect("q");
        store
            .executions()
            .claim(&e.id, 10, "me")
            .expect("claim")
            .expect("claimed");
        let mut outcome = ExecutionOutcome::ended(status, None, None);
        outcome.result_text = Some("patch ready".into());
        store.executions().finish(&e.id, &outcome).expect("finish")
    };
    let ok = run(ExecutionStatus::Completed);
    let events = store.bus().publish_chain_events(&ok).expect("chain");
    assert_eq!(events.len(), 1, "only the completed-chain fires");
    assert_eq!(events[0].event_type, "chain.completed");
    assert_eq!(events[0].target_persona_id.as_ref(), Some(&reviewer.id));
    assert_eq!(events[0].payload["output"], "patch ready");
    assert_eq!(events[0].depth, 1);
    assert!(
        store
            .bus()
            .publish_chain_events(&ok)
            .expect("again")
            .is_empty(),
        "idempotent"
    );

    // A crash between the end of a run and its chain event: recovery publishes it.
    let failed = run(ExecutionStatus::Failed);
    let recovered = store.bus().recover_chain_events(before).expect("recover");
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].target_persona_id.as_ref(), Some(&fixer.id));
    assert_eq!(recovered[0].source_execution_id.as_ref(), Some(&failed.id));
    assert!(
        store
            .bus()
            .recover_chain_events(before)
            .expect("again")
            .is_empty()
    );
}

#[test]
fn triggers_validate_before_storing_and_keep_their_secret_private() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Digest", 1)).expect("p");
    let now = Utc::now();
    let bad = |config: TriggerConfig| {
        store
            .triggers()
            .create(
                &NewTrigger {
                    persona_id: p.id.clone(),
                    config,
                    enabled: true,
                },
                now,
            )
            .expect_err("invalid")
    };
    let e = bad(TriggerConfig::Cron {
        expr: "61 * * * *".into(),
        tz: "UTC".into(),
        missed: MissedPolicy::Skip,
    });
    assert!(e.to_string().starts_with("cron:"), "{e}");
    let e = bad(TriggerConfig::Cron {
        expr: "0 8 * * *".into(),
        tz: "Nowhere/Land".into(),
        missed: MissedPolicy::Skip,
    });
    assert!(e.to_string().starts_with("tz:"), "{e}");
    let e = bad(TriggerConfig::Event {
        pattern: "a*b".into(),
        source: None,
    });
    assert!(e.to_string().starts_with("event:"), "{e}");
    let e = bad(TriggerConfig::Chain {
        after_persona_id: personas_core::PersonaId::new(),
        on: ChainOn::Any,
    });
    assert!(
        matches!(
            e,
            StoreError::NotFound {
                what: "persona",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        store.triggers().list(None).expect("list").is_empty(),
        "nothing stored"
    );
    assert_eq!(store.bus().version("subscriptions").expect("v"), 0);

    let cron = store
        .triggers()
        .create(
            &NewTrigger {
                persona_id: p.id.clone(),
                config: TriggerConfig::Cron {
                    expr: "0 8 * * 1-5".into(),
                    tz: "Europe/Prague".into(),
                    missed: MissedPolicy::Once,
                },
                enabled: true,
            },
            now,
        )
        .expect("cron");
    assert!(cron.next_fire_at.is_some_and(|t| t > now));
    // A webhook trigger's secret is sealed by the engine's vault first (`create_webhook`); the
    // store makes none without one, and the pre-vault plaintext column takes nothing any more.
    let refused = store
        .triggers()
        .create(
            &NewTrigger {
                persona_id: p.id.clone(),
                config: TriggerConfig::Webhook { github: false },
                enabled: true,
            },
            now,
        )
        .expect_err("no sealed secret");
    assert!(
        matches!(&refused, StoreError::Invalid(v) if v.field == "webhook"),
        "{refused}"
    );
    let db = rusqlite::Connection::open(store.path()).expect("open");
    let plaintext = db
        .execute(
            "UPDATE triggers SET secret = 'plaintext-key' WHERE id = ?1",
            [cron.id.as_str()],
        )
        .expect_err("refused");
    assert!(
        plaintext.to_string().contains("never in triggers.secret"),
        "{plaintext}"
    );
    drop(db);

    let sub = store
        .triggers()
        .create(
            &NewTrigger {
                persona_id: p.id.clone(),
                config: TriggerConfig::Event {
                    pattern: "Ticket-*".into(),
                    source: Some(SourceFilter {
                        kind: SourceKind::Webhook,
                        id: None,
                    }),
                },
                enabled: true,
            },
            now,
        )
        .expect("sub");
    let subs = store.bus().subscriptions().expect("subs");
    assert_eq!(subs.len(), 1);
    assert_eq!(
        (subs[0].match_key.as_str(), subs[0].is_prefix),
        ("ticket.", true)
    );
    let v = store.bus().version("subscriptions").expect("v");
    store
        .triggers()
        .set_enabled(sub.id.as_str(), false, now)
        .expect("disable");
    assert!(store.bus().subscriptions().expect("subs").is_empty());
    assert!(
        store.bus().version("subscriptions").expect("v") > v,
        "the matcher sees the change"
    );
    store
        .triggers()
        .remove(&sub.id.as_str()[..28])
        .expect("remove by prefix");
    assert_eq!(store.triggers().list(None).expect("list").len(), 1);
}

#[test]
fn a_scheduled_fire_happens_once_even_if_two_schedulers_race() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Digest", 1)).expect("p");
    let t = store
        .triggers()
        .create(
            &NewTrigger {
                persona_id: p.id.clone(),
                config: TriggerConfig::Cron {
                    expr: "* * * * *".into(),
                    tz: "UTC".into(),
                    missed: MissedPolicy::Skip,
                },
                enabled: true,
            },
            Utc::now(),
        )
        .expect("cron");
    let due = t.next_fire_at;
    let mut ev = NewEvent::new("schedule.fired", SourceKind::Schedule, json!({}));
    ev.trigger_id = Some(t.id.clone());
    ev.target_persona_id = Some(p.id.clone());
    ev.dedupe_key = Some(format!(
        "cron:{}:{}",
        t.id,
        due.map(|d| d.timestamp_millis()).unwrap_or(0)
    ));
    let next = due.map(|d| d + TimeDelta::minutes(1));
    let first = store
        .triggers()
        .fire_scheduled(&t.id, due, std::slice::from_ref(&ev), next)
        .expect("fire");
    assert_eq!(first.map(|v| v.len()), Some(1));
    let second = store
        .triggers()
        .fire_scheduled(&t.id, due, &[ev], next)
        .expect("fire again");
    assert!(
        second.is_none(),
        "the due time moved on: the second fire is refused"
    );
    let t = store.triggers().get(&t.id).expect("get");
    assert_eq!((t.fire_count, t.next_fire_at), (1, next));
}

#[test]
fn a_webhook_delivery_is_claimed_once_and_forgotten_after_its_window() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Hooked", 1)).expect("p");
    let t = store
        .triggers()
        .create(
            &NewTrigger {
                persona_id: p.id.clone(),
                config: TriggerConfig::Manual,
                enabled: true,
            },
            Utc::now(),
        )
        .expect("trigger");
    let hooks = store.webhooks();
    let later = Utc::now().timestamp_millis() + 300_000;
    assert_eq!(
        hooks.claim_delivery(&t.id, "sig:aa", later).expect("claim"),
        Claim::New
    );
    assert_eq!(
        hooks.claim_delivery(&t.id, "sig:aa", later).expect("again"),
        Claim::Replayed
    );
    // A failed publish releases its claim: the sender's retry is not a replay.
    hooks.release_delivery(&t.id, "sig:aa").expect("release");
    assert_eq!(
        hooks.claim_delivery(&t.id, "sig:aa", later).expect("retry"),
        Claim::New
    );
    // A key whose window has passed is pruned by the next claim.
    let past = Utc::now().timestamp_millis() - 1;
    assert_eq!(
        hooks.claim_delivery(&t.id, "sig:old", past).expect("old"),
        Claim::New
    );
    assert_eq!(hooks.delivery_count().expect("count"), 2);
    hooks.claim_delivery(&t.id, "sig:bb", later).expect("next");
    assert_eq!(hooks.delivery_count().expect("count"), 2, "sig:old pruned");
    // Removing the trigger removes what it remembered.
    store.triggers().remove(t.id.as_str()).expect("remove");
    assert_eq!(hooks.delivery_count().expect("count"), 0);
}
