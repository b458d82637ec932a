//! V4: reviews with resume, admission (schedules, paused personas, budgets, provider breaker),
//! healing bookkeeping, the delivery outbox, metrics rollups and memories.

use super::{spec, store};
use personas_core::review::{Decision, OnReject, TimeoutAction};
use personas_core::{
    ErrorClass, Execution, ExecutionOutcome, ExecutionStatus, Persona, TriggerKind,
};
use personas_store::{
    Advice, DecidedBy, Effect, GlobalCaps, HealingDefaults, MemoryEdit, NewExecution,
    PersonaPolicy, Store, StoreError,
};

const DEFAULTS: HealingDefaults = HealingDefaults {
    failure_threshold: 3,
    max_retries: 2,
    provider_threshold: 100,
    provider_cooldown_ms: 60_000,
    provider_cooldown_max_ms: 600_000,
};

fn advice(class: ErrorClass, _: &Execution) -> Advice {
    Advice {
        title: format!("{class} happened"),
        suggested_fix: format!("fix {class}"),
    }
}

/// Runs one execution of `p` to `status` (claimed by "me", finished with `cost`).
fn run_to(
    store: &Store,
    p: &Persona,
    status: ExecutionStatus,
    class: Option<ErrorClass>,
    cost: f64,
) -> Execution {
    let ex = store.executions();
    let e = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("enqueue");
    ex.claim(&e.id, 100, "me").expect("claim").expect("claimed");
    let mut out = ExecutionOutcome::ended(status, class, class.map(|c| format!("{c} failure")));
    out.cost_usd = cost;
    out.session_id = Some(format!("session-{}", e.id));
    ex.finish(&e.id, &out).expect("finish")
}

fn heal(store: &Store, e: &Execution, delay_ms: i64) -> personas_store::HealingReport {
    store
        .healing()
        .record_outcome(&e.id, &DEFAULTS, &|_| delay_ms, &advice)
        .expect("heal")
        .expect("processed")
}

#[test]
fn approving_the_last_review_requeues_the_session_with_the_decision() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Reviewer", 1)).expect("p");
    let ex = store.executions();
    let e = ex
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("enqueue");
    ex.claim(&e.id, 9, "me").expect("claim").expect("claimed");
    let proto = store.protocol();
    let r1 = proto
        .insert_review(
            &e.id,
            Some(&p.id),
            "Merge?",
            None,
            personas_core::protocol::Severity::High,
            &["merge".into()],
        )
        .expect("r1");
    let r2 = proto
        .insert_review(
            &e.id,
            Some(&p.id),
            "Tag?",
            None,
            personas_core::protocol::Severity::Low,
            &[],
        )
        .expect("r2");

    // Still running: nobody can decide yet, and nothing changes.
    let err = store
        .reviews()
        .decide(
            &r1.id,
            Decision::Approve,
            None,
            DecidedBy::User,
            OnReject::Resume,
        )
        .expect_err("running");
    assert!(err.to_string().contains("still running"), "{err}");
    assert_eq!(store.reviews().pending_for(&e.id).expect("pending"), 2);

    let mut out = ExecutionOutcome::ended(ExecutionStatus::AwaitingReview, None, None);
    out.session_id = Some("sess-1".into());
    ex.finish(&e.id, &out).expect("pause");

    let first = store
        .reviews()
        .decide(
            &r1.id[..30],
            Decision::Approve,
            Some("ship it"),
            DecidedBy::User,
            OnReject::Resume,
        )
        .expect("decide by prefix");
    assert_eq!(first.effect, Effect::Waiting { pending: 1 });
    assert_eq!(first.execution.status, ExecutionStatus::AwaitingReview);

    let again = store
        .reviews()
        .decide(
            &r1.id,
            Decision::Reject,
            None,
            DecidedBy::User,
            OnReject::Resume,
        )
        .expect_err("already decided");
    assert!(
        again.to_string().contains("not pending") && again.to_string().contains("approved"),
        "{again}"
    );

    let last = store
        .reviews()
        .decide(
            &r2.id,
            Decision::Reject,
            Some("not yet"),
            DecidedBy::User,
            OnReject::Resume,
        )
        .expect("decide");
    assert_eq!(last.effect, Effect::Resumed);
    assert_eq!(last.execution.status, ExecutionStatus::Queued);
    assert_eq!(last.execution.finished_at, None);
    assert_eq!(last.review.decided_by.map(|b| b.as_str()), Some("user"));

    let claimed = ex.claim_next(9, "me").expect("claim").expect("resumed run");
    assert_eq!(claimed.id, e.id);
    assert!(claimed.started_at.is_some());
    let resume = store
        .reviews()
        .take_resume(&e.id)
        .expect("take")
        .expect("resume point");
    assert_eq!(resume.session_id, "sess-1");
    assert!(
        resume.prompt.contains("\"Merge?\": APPROVED") && resume.prompt.contains("ship it"),
        "{}",
        resume.prompt
    );
    assert!(
        resume.prompt.contains("\"Tag?\": REJECTED") && resume.prompt.contains("not yet"),
        "{}",
        resume.prompt
    );
    assert_eq!(
        store.reviews().take_resume(&e.id).expect("take"),
        None,
        "taken once"
    );
}

#[test]
fn rejection_ends_the_run_when_the_persona_says_so_and_timeouts_act() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Strict", 1)).expect("p");
    store
        .policies()
        .set(
            &p.id,
            &PersonaPolicy {
                on_reject: Some(OnReject::End),
                ..Default::default()
            },
        )
        .expect("policy");
    let paused = |title: &str| {
        let e = store
            .executions()
            .enqueue(&NewExecution::manual(p.id.clone(), None))
            .expect("enqueue");
        store
            .executions()
            .claim(&e.id, 9, "me")
            .expect("claim")
            .expect("claimed");
        let r = store
            .protocol()
            .insert_review(
                &e.id,
                Some(&p.id),
                title,
                None,
                personas_core::protocol::Severity::Medium,
                &[],
            )
            .expect("review");
        let mut out = ExecutionOutcome::ended(ExecutionStatus::AwaitingReview, None, None);
        out.session_id = Some("s".into());
        store.executions().finish(&e.id, &out).expect("pause");
        r
    };
    let r = paused("Deploy?");
    let d = store
        .reviews()
        .decide(
            &r.id,
            Decision::Reject,
            Some("too risky"),
            DecidedBy::User,
            OnReject::Resume,
        )
        .expect("reject");
    assert_eq!(
        d.effect,
        Effect::Ended,
        "the persona's on_reject=end wins over the default"
    );
    assert_eq!(d.execution.status, ExecutionStatus::Cancelled);
    assert!(
        d.execution
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("too risky"))
    );

    let r = paused("Wait?");
    let d = store
        .reviews()
        .expire(&r.id, TimeoutAction::Cancel, 5, OnReject::Resume)
        .expect("expire");
    assert_eq!(
        (d.review.status.as_str(), d.effect),
        ("timed_out", Effect::Ended)
    );
    assert!(
        d.execution
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("within 5 s"))
    );

    let r = paused("Go?");
    let d = store
        .reviews()
        .expire(&r.id, TimeoutAction::Approve, 5, OnReject::Resume)
        .expect("expire");
    assert_eq!(
        (d.review.decided_by.map(|b| b.as_str()), d.effect),
        (Some("timeout"), Effect::Resumed)
    );

    // A pending review of a run that ended otherwise is closed, and cannot be decided.
    let e = store
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("enqueue");
    let r = store
        .protocol()
        .insert_review(
            &e.id,
            Some(&p.id),
            "Orphan",
            None,
            personas_core::protocol::Severity::Low,
            &[],
        )
        .expect("review");
    store.executions().request_cancel(&e.id).expect("cancel");
    let err = store
        .reviews()
        .decide(
            &r.id,
            Decision::Approve,
            None,
            DecidedBy::User,
            OnReject::Resume,
        )
        .expect_err("ended");
    assert!(err.to_string().contains("already ended"), "{err}");
    assert_eq!(store.reviews().close_orphans().expect("close"), 1);
    assert_eq!(
        store.reviews().find(&r.id).expect("find").status,
        personas_core::ReviewStatus::Cancelled
    );
}

#[test]
fn transient_failures_schedule_one_retry_each_and_the_queue_waits_for_it() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Flaky", 1)).expect("p");
    // The persona's own threshold (10) overrides the default (3): it is not paused below.
    store
        .policies()
        .set(
            &p.id,
            &PersonaPolicy {
                failure_threshold: Some(10),
                ..Default::default()
            },
        )
        .expect("policy");
    let failed = run_to(
        &store,
        &p,
        ExecutionStatus::Failed,
        Some(ErrorClass::RateLimited),
        0.0,
    );
    let report = heal(&store, &failed, 60_000);
    let retry = report.retry.clone().expect("retry scheduled");
    assert_eq!(retry.attempt, 1);
    assert!(report.issue.is_none(), "a scheduled retry needs no person");
    assert_eq!(
        store
            .healing()
            .record_outcome(&failed.id, &DEFAULTS, &|_| 0, &advice)
            .expect("again"),
        None,
        "processed once"
    );
    let r = store
        .executions()
        .get(&retry.execution_id)
        .expect("retry row");
    assert_eq!(
        (r.trigger, r.trigger_ref.as_deref()),
        (TriggerKind::Retry, Some(failed.id.as_str()))
    );
    assert_eq!(r.status, ExecutionStatus::Queued);
    assert_eq!(
        store.executions().claim_next(9, "me").expect("claim"),
        None,
        "not before its time"
    );
    assert!(
        store
            .executions()
            .next_not_before()
            .expect("next")
            .is_some()
    );

    // Retry of the retry, until max_retries (2): then an issue for a person instead.
    let second = {
        let ex = store.executions();
        let e = ex
            .enqueue(&NewExecution::manual(p.id.clone(), None))
            .expect("enqueue");
        ex.claim(&e.id, 9, "me").expect("claim").expect("claimed");
        ex.finish(
            &e.id,
            &ExecutionOutcome::failed(ErrorClass::Overloaded, "529"),
        )
        .expect("finish")
    };
    assert!(heal(&store, &second, 0).retry.is_some());
    let due = store
        .executions()
        .claim_next(9, "me")
        .expect("claim")
        .expect("due retry");
    assert_eq!(due.trigger, TriggerKind::Retry);
    let due = store
        .executions()
        .finish(
            &due.id,
            &ExecutionOutcome::failed(ErrorClass::Overloaded, "529"),
        )
        .expect("finish");
    let next = heal(&store, &due, 0);
    assert_eq!(next.retry.as_ref().map(|r| r.attempt), Some(2));
    let last = store
        .executions()
        .claim_next(9, "me")
        .expect("claim")
        .expect("retry 2");
    let last = store
        .executions()
        .finish(
            &last.id,
            &ExecutionOutcome::failed(ErrorClass::Overloaded, "529"),
        )
        .expect("finish");
    let report = heal(&store, &last, 0);
    assert!(report.retry.is_none(), "out of retries");
    assert_eq!(
        report.issue.as_ref().map(|i| i.error_class.as_str()),
        Some("overloaded")
    );
}

#[test]
fn consecutive_failures_pause_the_persona_and_resume_lifts_it() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Broken", 1)).expect("p");
    let mut last = None;
    for i in 1..=3 {
        let e = run_to(
            &store,
            &p,
            ExecutionStatus::Failed,
            Some(ErrorClass::AuthFailed),
            0.0,
        );
        let report = heal(&store, &e, 0);
        assert!(report.retry.is_none(), "auth failures are not retried");
        assert_eq!(
            report.paused.is_some(),
            i == 3,
            "paused at the threshold (3), not before"
        );
        last = Some(report);
    }
    let issue = last.and_then(|r| r.issue).expect("pause issue");
    assert!(
        issue.suggested_fix.contains("personas persona resume"),
        "{}",
        issue.suggested_fix
    );
    let auth = store
        .healing()
        .issues(Some(personas_core::IssueStatus::Open), 10)
        .expect("issues");
    let auth = auth
        .iter()
        .find(|i| {
            i.error_class
                == personas_core::IssueClass::Failure(personas_core::ErrorClass::AuthFailed)
        })
        .expect("auth issue");
    assert_eq!(
        auth.occurrences, 2,
        "one open issue per class, counted (the third paused)"
    );

    let e = store
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("enqueue");
    let admitted = store
        .executions()
        .admit(&e.id, 9, "me", &GlobalCaps::default())
        .expect("admit");
    assert!(admitted.started.is_none());
    let refused = &admitted.refused[0];
    assert_eq!(
        (refused.status, refused.error_class),
        (ExecutionStatus::Failed, Some(ErrorClass::Refused))
    );
    let why = refused.error_message.clone().unwrap_or_default();
    assert!(
        why.contains("Broken is paused") && why.contains("personas persona resume"),
        "{why}"
    );

    store
        .healing()
        .resume_persona(&p.id, &p.name)
        .expect("resume");
    let err = store
        .healing()
        .resume_persona(&p.id, &p.name)
        .expect_err("not paused");
    assert!(err.to_string().contains("not paused"), "{err}");
    let e = store
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("enqueue");
    assert!(
        store
            .executions()
            .claim(&e.id, 9, "me")
            .expect("claim")
            .is_some()
    );
    // A success resets the count.
    let ok = store
        .executions()
        .finish(
            &e.id,
            &ExecutionOutcome::ended(ExecutionStatus::Completed, None, None),
        )
        .expect("finish");
    heal(&store, &ok, 0);
    let b = store
        .healing()
        .persona_breaker(&p.id)
        .expect("breaker")
        .expect("row");
    assert_eq!((b.state.as_str(), b.consecutive_failures), ("closed", 0));
    assert!(
        store
            .healing()
            .issues(Some(personas_core::IssueStatus::Open), 10)
            .expect("issues")
            .is_empty(),
        "a success resolves the persona's issues"
    );
}

#[test]
fn budgets_refuse_at_admission_with_the_reason() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Spender", 5)).expect("p");
    let other = store.personas().create(&spec("Other", 5)).expect("o");
    run_to(&store, &p, ExecutionStatus::Completed, None, 0.75);
    store
        .policies()
        .set(
            &p.id,
            &PersonaPolicy {
                daily_budget_usd: Some(0.5),
                ..Default::default()
            },
        )
        .expect("policy");
    let bad = store.policies().set(
        &p.id,
        &PersonaPolicy {
            monthly_budget_usd: Some(-1.0),
            ..Default::default()
        },
    );
    assert!(
        matches!(bad, Err(StoreError::Conflict { ref field, .. }) if field == "monthly_budget_usd")
    );

    let e = store
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("enqueue");
    let o = store
        .executions()
        .enqueue(&NewExecution::manual(other.id.clone(), None))
        .expect("enqueue");
    let admitted = store
        .executions()
        .admit_next(9, "me", &GlobalCaps::default())
        .expect("admit");
    assert_eq!(admitted.refused.len(), 1);
    assert_eq!(admitted.refused[0].id, e.id);
    let why = admitted.refused[0]
        .error_message
        .clone()
        .unwrap_or_default();
    assert!(
        why.contains("Spender's daily budget of $0.50 is used up")
            && why.contains("$0.75 spent today"),
        "{why}"
    );
    assert_eq!(
        admitted.started.map(|s| s.id),
        Some(o.id),
        "other personas still run"
    );

    // The global cap counts everyone's spend.
    let o2 = store
        .executions()
        .enqueue(&NewExecution::manual(other.id.clone(), None))
        .expect("enqueue");
    let caps = GlobalCaps {
        daily_usd: None,
        monthly_usd: Some(0.7),
    };
    let admitted = store
        .executions()
        .admit(&o2.id, 9, "me", &caps)
        .expect("admit");
    let why = admitted.refused[0]
        .error_message
        .clone()
        .unwrap_or_default();
    assert!(
        why.contains("global monthly budget of $0.70") && why.contains("config.toml"),
        "{why}"
    );
}

#[test]
fn an_open_provider_breaker_holds_the_queue_until_its_cooldown() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("P", 5)).expect("p");
    let defaults = HealingDefaults {
        provider_threshold: 2,
        max_retries: 0,
        failure_threshold: 100,
        ..DEFAULTS
    };
    let mut opened = None;
    for _ in 0..2 {
        let e = run_to(
            &store,
            &p,
            ExecutionStatus::Failed,
            Some(ErrorClass::ServerError),
            0.0,
        );
        opened = store
            .healing()
            .record_outcome(&e.id, &defaults, &|_| 0, &advice)
            .expect("heal")
            .and_then(|r| r.provider_open_until);
    }
    assert!(opened.is_some(), "opened at the second provider failure");
    let queued = store
        .executions()
        .enqueue(&NewExecution::manual(p.id.clone(), None))
        .expect("enqueue");
    assert_eq!(
        store.executions().claim_next(9, "me").expect("claim"),
        None,
        "held"
    );
    assert_eq!(
        store.executions().get(&queued.id).expect("get").status,
        ExecutionStatus::Queued,
        "held, not refused"
    );
    let provider = store
        .healing()
        .breakers()
        .expect("breakers")
        .into_iter()
        .find(|b| b.scope == "provider")
        .expect("provider");
    assert_eq!(provider.state, personas_core::BreakerState::Open);
}

#[test]
fn the_outbox_plans_each_new_message_once_per_channel_and_records_attempts() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Notifier", 1)).expect("p");
    let old = store
        .protocol()
        .insert_message(
            None,
            Some(&p.id),
            &p.name,
            None,
            "before any channel",
            personas_core::protocol::Priority::Normal,
        )
        .expect("old message");
    // Channels take messages from the millisecond they were added.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let d = store.deliveries();
    let slack = d
        .add_channel(
            &p.id,
            "team",
            personas_core::ChannelKind::Slack,
            &serde_json::json!({"webhook_url": "env:X"}),
        )
        .expect("channel");
    let dup = d.add_channel(
        &p.id,
        "team",
        personas_core::ChannelKind::Webhook,
        &serde_json::json!({}),
    );
    assert!(matches!(dup, Err(StoreError::Conflict { .. })));
    d.add_channel(
        &p.id,
        "desk",
        personas_core::ChannelKind::Desktop,
        &serde_json::json!({}),
    )
    .expect("desktop");
    // Channels see messages added after them only.
    std::thread::sleep(std::time::Duration::from_millis(2));
    let m = store
        .protocol()
        .insert_message(
            None,
            Some(&p.id),
            &p.name,
            Some("Hi"),
            "hello",
            personas_core::protocol::Priority::High,
        )
        .expect("message");
    assert_eq!(d.plan().expect("plan"), 2);
    assert_eq!(d.plan().expect("plan again"), 0, "planned once");
    assert!(
        d.of_subject(personas_core::NoticeKind::Message, &old.id)
            .expect("old")
            .is_empty()
    );

    let due = d.lease_due("me", 10, 30_000).expect("lease");
    assert_eq!(due.len(), 2);
    assert!(
        d.lease_due("other", 10, 30_000).expect("lease").is_empty(),
        "leased"
    );
    let s = due
        .iter()
        .find(|x| x.channel.id == slack.id)
        .expect("slack due");
    assert_eq!(
        (s.notice.title.as_deref(), s.notice.body.as_str()),
        (Some("Hi"), "hello")
    );
    let after = d
        .record_attempt(&s.id, Some("HTTP 500"), Some(0))
        .expect("retry");
    assert_eq!((after.status.as_str(), after.attempts), ("pending", 1));
    let failed = d
        .record_attempt(&s.id, Some("HTTP 500"), None)
        .expect("fail");
    assert_eq!(
        (
            failed.status.as_str(),
            failed.attempts,
            failed.last_error.as_deref()
        ),
        ("failed", 2, Some("HTTP 500"))
    );
    let other = due.iter().find(|x| x.channel.id != slack.id).expect("desk");
    assert_eq!(
        d.record_attempt(&other.id, None, None).expect("ok").status,
        personas_core::NotificationStatus::Delivered
    );
    let all = d
        .of_subject(personas_core::NoticeKind::Message, &m.id)
        .expect("deliveries");
    assert_eq!(all.len(), 2);
    assert_eq!(
        store.protocol().messages(None, 10).expect("inbox").len(),
        2,
        "messages stay"
    );
}

#[test]
fn stats_roll_up_per_persona_and_the_spend_ledger_rebuilds() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Counted", 5)).expect("p");
    let other = store.personas().create(&spec("Other", 5)).expect("other");
    for (status, class, cost) in [
        (ExecutionStatus::Completed, None, 0.25),
        (ExecutionStatus::Completed, None, 0.25),
        (ExecutionStatus::Failed, Some(ErrorClass::BadRequest), 0.5),
        (ExecutionStatus::TimedOut, Some(ErrorClass::Timeout), 0.0),
    ] {
        let e = run_to(&store, &p, status, class, cost);
        heal(&store, &e, 0);
    }
    let e = run_to(&store, &other, ExecutionStatus::Completed, None, 2.0);
    heal(&store, &e, 0);
    let stats = store.stats().runs(7, 0, Some(&p.id)).expect("stats");
    assert_eq!(stats.personas.len(), 1, "only the persona asked for");
    let m = &stats.personas[0];
    assert_eq!((m.runs, m.completed, m.failed, m.refused), (4, 2, 1, 0));
    assert!((m.cost_usd - 1.0).abs() < 1e-9);
    assert_eq!(m.success_rate, Some(0.5));
    assert!(m.duration_p50_ms.is_some() && m.duration_p95_ms >= m.duration_p50_ms);
    assert_eq!(
        store.stats().runs(7, 0, None).expect("all").personas.len(),
        2
    );
    assert_eq!(store.stats().rebuild_spend(7).expect("rebuild"), 2);
}

#[test]
fn memories_are_listed_added_edited_and_deleted() {
    let (_d, store) = store();
    let p = store.personas().create(&spec("Remembers", 1)).expect("p");
    let m = store.memories();
    let a = m
        .add(&p.id, "Style", "Use bullets", "style", 4)
        .expect("add");
    m.add(&p.id, "Repo", "Monorepo", "fact", 2).expect("add");
    let bad = m.add(&p.id, "X", "y", "fact", 9).expect_err("importance");
    assert!(
        bad.to_string().contains("importance") && bad.to_string().contains("between 1 and 5"),
        "{bad}"
    );
    let list = m.list(Some(&p.id), 10).expect("list");
    assert_eq!(
        list.iter().map(|x| x.title.as_str()).collect::<Vec<_>>(),
        ["Style", "Repo"]
    );
    let edited = m
        .edit(
            // A prefix. Ids are UUIDv7 with a per-millisecond counter: rows made in the same
            // millisecond share the first 13 characters and differ first inside characters
            // 14–27, so a prefix must cover those (the last 8 are random).
            &a.id[..28],
            &MemoryEdit {
                content: Some("Use short bullets".into()),
                importance: Some(5),
                ..Default::default()
            },
        )
        .expect("edit");
    assert_eq!(
        (
            edited.content.as_str(),
            edited.importance,
            edited.title.as_str()
        ),
        ("Use short bullets", 5, "Style")
    );
    m.delete(&a.id).expect("delete");
    assert!(matches!(m.find(&a.id), Err(StoreError::NotFound { .. })));
    assert_eq!(m.list(None, 10).expect("list").len(), 1);
}
