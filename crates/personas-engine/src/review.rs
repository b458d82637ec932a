//! Human review of a run: pausing it, telling the user, deciding, resuming the same Claude
//! session, and timing reviews out.
//!
//! - A run that asked for review (a `manual_review` line, or the MCP `request_review` tool in
//!   another process — both store a pending review row) ends its segment in `awaiting_review`,
//!   keeping its session id. Its reviews get their deadline and timeout action, and a durable
//!   `review.requested` event is published for the bus.
//! - A decision ([`decide`], from `personas review approve|reject` or the API) re-queues the
//!   execution with the decision as its resume prompt; the runner then runs
//!   `claude -p --resume <session>` with that prompt on stdin, continuing the output numbering
//!   and adding the segment's cost and tokens to the execution's.
//! - [`timer`] sleeps until the earliest deadline among paused runs (woken by pause events) and
//!   applies the timeout action: approve, reject, or cancel.

use crate::component::{Component, Running, Wake, due_at_ms, sleep_until, woken_by};
use crate::events::EngineEvent;
use crate::runner::{Runtime, blocking};
use personas_core::review::Decision;
use personas_core::trigger::SourceKind;
use personas_core::{Execution, ExecutionOutcome, ExecutionStatus};
use personas_store::review::{Resume, effective_deadline_ms};
use personas_store::{Decided, DecidedBy, Effect, StoreError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The resume point of a claimed execution, when it continues after a review.
pub async fn take_resume(rt: &Runtime, execution: &Execution) -> Option<Resume> {
    let store = rt.store.clone();
    let id = execution.id.clone();
    match blocking(move || store.reviews().take_resume(&id)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(execution = %execution.id, error = %e, "cannot read the resume point");
            None
        }
    }
}

/// Adjusts a segment's outcome before it is stored: a run that ended well with reviews pending
/// pauses (`awaiting_review`); a resumed segment adds to the totals of the earlier ones (the CLI
/// reports cost and tokens per process).
pub async fn settle_outcome(
    rt: &Runtime,
    execution: &Execution,
    resumed: bool,
    outcome: &mut ExecutionOutcome,
) {
    if resumed {
        outcome.cost_usd += execution.cost_usd;
        outcome.num_turns += execution.num_turns;
        outcome.tokens.input += execution.tokens.input;
        outcome.tokens.output += execution.tokens.output;
        outcome.tokens.cache_read += execution.tokens.cache_read;
        outcome.tokens.cache_creation += execution.tokens.cache_creation;
        if outcome.session_id.is_none() {
            outcome.session_id = execution.session_id.clone();
        }
    }
    if !matches!(
        outcome.status,
        ExecutionStatus::Completed | ExecutionStatus::Incomplete
    ) {
        return;
    }
    let store = rt.store.clone();
    let id = execution.id.clone();
    match blocking(move || store.reviews().pending_for(&id)).await {
        Ok(0) => {}
        Ok(_) => outcome.status = ExecutionStatus::AwaitingReview,
        Err(e) => {
            tracing::warn!(execution = %execution.id, error = %e, "cannot check for pending reviews")
        }
    }
}

/// After a segment is stored: arms the deadlines of a paused run and publishes
/// `review.requested`; closes the reviews of a run that ended otherwise.
pub async fn after_segment(rt: &Runtime, done: &Execution) {
    let store = rt.store.clone();
    let cfg = rt.config.review.clone();
    let exec = done.clone();
    let result = blocking(move || -> Result<(), StoreError> {
        if exec.status != ExecutionStatus::AwaitingReview {
            store.reviews().close_orphans()?;
            return Ok(());
        }
        let policy = store.policies().get(&exec.persona_id)?;
        let timeout = policy.review_timeout_secs.unwrap_or(cfg.timeout_secs);
        let action = policy.review_timeout_action.unwrap_or(cfg.timeout_action);
        let deadline = chrono::Utc::now().timestamp_millis() + (timeout as i64) * 1000;
        let reviews = store.reviews().arm(&exec.id, deadline, action)?;
        // For subscriptions on the bus (issue 3): one durable event per paused run.
        let payload = serde_json::json!({
            "execution_id": exec.id,
            "persona": exec.persona_name,
            "reviews": reviews.iter().map(|r| serde_json::json!({
                "id": r.id, "title": r.title, "severity": r.severity,
                "deadline_at": r.deadline_at, "timeout_action": r.timeout_action,
            })).collect::<Vec<_>>(),
        });
        store.protocol().insert_event(
            "review.requested",
            SourceKind::System,
            Some(exec.persona_id.as_str()),
            Some(&exec.id),
            None,
            &payload,
        )?;
        Ok(())
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(execution = %done.id, error = %e, "cannot arm the review deadline");
    }
}

/// Decides a review and announces the result. The caller wakes the queue when the execution
/// was re-queued ([`Effect::Resumed`]).
pub async fn decide(
    rt: &Runtime,
    id_or_prefix: &str,
    decision: Decision,
    note: Option<String>,
) -> Result<Decided, StoreError> {
    let store = rt.store.clone();
    let default = rt.config.review.on_reject;
    let id = id_or_prefix.to_string();
    let decided = blocking(move || {
        store
            .reviews()
            .decide(&id, decision, note.as_deref(), DecidedBy::User, default)
    })
    .await?;
    announce(rt, &decided).await;
    Ok(decided)
}

async fn announce(rt: &Runtime, decided: &Decided) {
    rt.bus.send(EngineEvent::ReviewDecided {
        review: decided.review.clone(),
        effect: decided.effect,
    });
    rt.bus.send(EngineEvent::execution(&decided.execution));
    if decided.effect == Effect::Ended {
        crate::healing::after_finish(rt, &decided.execution.id).await;
    }
}

/// Applies the timeout action of every paused run's review past its deadline. Returns the
/// earliest deadline still ahead (ms), and whether anything was re-queued.
pub async fn expire_due(rt: &Runtime) -> (Option<i64>, bool) {
    let store = rt.store.clone();
    let awaiting = match blocking(move || {
        store.reviews().close_orphans()?;
        store.reviews().awaiting()
    })
    .await
    {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list reviews awaiting a decision");
            return (None, false);
        }
    };
    let cfg = &rt.config.review;
    let now = chrono::Utc::now().timestamp_millis();
    let (mut next, mut requeued) = (None::<i64>, false);
    for review in awaiting {
        let deadline = effective_deadline_ms(&review, cfg.timeout_secs);
        if deadline > now {
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
            continue;
        }
        let action = review.timeout_action.unwrap_or(cfg.timeout_action);
        let waited = ((now - review.created_at.timestamp_millis()) / 1000).max(0) as u64;
        let store = rt.store.clone();
        let default = cfg.on_reject;
        let id = review.id.clone();
        match blocking(move || store.reviews().expire(&id, action, waited, default)).await {
            Ok(decided) => {
                tracing::info!(review = %decided.review.id, %action, "applying the review's timeout action");
                rt.bus
                    .metrics()
                    .record(crate::metrics::Event::ReviewTimedOut {
                        review: &decided.review.id,
                    });
                requeued |= decided.effect == Effect::Resumed;
                announce(rt, &decided).await;
            }
            // Decided meanwhile by a person, or its run ended: nothing to do.
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => {
                tracing::warn!(review = %review.id, error = %e, "cannot apply the review timeout")
            }
        }
    }
    (next, requeued)
}

/// The review deadline timer: sleeps until the earliest deadline (or a pause event, or a
/// minute at most, for runs paused by other processes), then applies timeout actions.
pub struct ReviewTimeouts {
    pub rt: Runtime,
    /// Notified when a timeout re-queued a run.
    pub queue_wakeup: std::sync::Arc<Notify>,
}

impl Component for ReviewTimeouts {
    fn name(&self) -> &'static str {
        "review_timeouts"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(async move {
            const RECHECK: Duration = Duration::from_secs(60);
            let mut events = self.rt.bus.subscribe();
            loop {
                let (next, requeued) = expire_due(&self.rt).await;
                if requeued {
                    self.queue_wakeup.notify_one();
                }
                let paused = woken_by(&mut events, |e| {
                    matches!(e, EngineEvent::Execution { execution }
                        if execution.status == ExecutionStatus::AwaitingReview)
                });
                if sleep_until(due_at_ms(next, RECHECK), paused, &stop).await == Wake::Stop {
                    return;
                }
            }
        })
    }
}
