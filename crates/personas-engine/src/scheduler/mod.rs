//! The scheduler: fires cron triggers and runs file watchers, as one engine component.
//!
//! It sleeps until the earliest due cron trigger — no polling of schedules — and wakes early when
//! triggers change: at once for changes made through this runtime (or announced to it with
//! `/api/wake`), and within `bus_poll_ms` for changes another process made, noticed by the store's
//! `triggers` change counter (one tiny read per interval).
//!
//! A fire is a durable bus event, not a run: the dispatcher turns it into an execution, so every
//! fire is in the bus history. The fire and the trigger's next due time are stored in one
//! transaction, and each fire carries a dedupe key (trigger, scheduled time): a crash can
//! neither lose nor repeat one. Times missed while nothing ran (downtime, sleep) are handled by
//! each trigger's missed-run policy ([`personas_core::cron::CronSchedule::plan`]).

pub mod watch;

use crate::bus::Publisher;
use crate::component::{Component, Running, Wake, sleep_until};
use crate::config::EngineConfig;
use crate::events::{EngineEvent, EventBus};
use crate::runner::blocking;
use chrono::{DateTime, TimeDelta, Utc};
use personas_core::cron::{CronSchedule, Fire};
use personas_core::trigger::{SourceKind, TriggerConfig, TriggerType};
use personas_store::{EventRow, NewEvent, Store, StoreError, TriggerRow};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use watch::Watches;

/// The event type a cron fire publishes.
pub const SCHEDULE_EVENT: &str = "schedule.fired";

/// The scheduler of one runtime.
pub struct Scheduler {
    store: Store,
    events: EventBus,
    config: Arc<EngineConfig>,
    publisher: Publisher,
    /// Woken after fires were stored.
    dispatch: Arc<Notify>,
}

impl Scheduler {
    pub fn new(
        store: Store,
        events: EventBus,
        config: Arc<EngineConfig>,
        publisher: Publisher,
        dispatch: Arc<Notify>,
    ) -> Self {
        Scheduler {
            store,
            events,
            config,
            publisher,
            dispatch,
        }
    }

    /// Starts the file watchers of the triggers stored now, so that once this returns their
    /// changes are seen. Then [`Armed::run`] does the rest; the watchers stop with it.
    pub async fn arm(self) -> Armed {
        let shutdown = CancellationToken::new();
        let watches = Watches::start(
            self.publisher.clone(),
            self.events.clone(),
            Duration::from_millis(self.config.watch_debounce_ms),
            shutdown.clone(),
        );
        let mut armed = Armed {
            scheduler: self,
            watches,
            seen_version: None,
            shutdown,
        };
        armed.reload().await;
        armed
    }
}

/// A scheduler whose watchers run.
pub struct Armed {
    scheduler: Scheduler,
    watches: Watches,
    seen_version: Option<i64>,
    shutdown: CancellationToken,
}

impl Armed {
    /// Re-reads the trigger change counter and, when it moved, restarts watchers to match.
    async fn reload(&mut self) {
        let store = self.scheduler.store.clone();
        let version = match blocking(move || store.bus().version("triggers")).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the trigger change counter");
                None
            }
        };
        if version.is_some() && version == self.seen_version {
            return;
        }
        let store = self.scheduler.store.clone();
        match blocking(move || store.triggers().live(TriggerType::Watch)).await {
            Ok(list) => self.watches.reconcile(list, &self.scheduler.store),
            Err(e) => tracing::warn!(error = %e, "cannot load file-watch triggers"),
        }
        self.seen_version = version;
    }

    /// Runs until `stop`, then stops the file watchers. `changes` is notified when triggers
    /// were edited; while `paused` holds `true` no cron trigger fires (file watchers keep
    /// running).
    pub async fn run(
        mut self,
        changes: Arc<Notify>,
        mut paused: tokio::sync::watch::Receiver<bool>,
        stop: CancellationToken,
    ) {
        self.fire_until(&changes, &mut paused, &stop).await;
        self.shutdown.cancel();
    }

    async fn fire_until(
        &mut self,
        changes: &Notify,
        paused: &mut tokio::sync::watch::Receiver<bool>,
        stop: &CancellationToken,
    ) {
        loop {
            self.reload().await;
            let next_due = if *paused.borrow_and_update() {
                None
            } else {
                self.scheduler.fire_due().await
            };
            // Wait for the earliest due time, a change here, or a change elsewhere.
            let deadline = next_due.map(|t| {
                tokio::time::Instant::now() + (t - Utc::now()).to_std().unwrap_or(Duration::ZERO)
            });
            let woken = async {
                tokio::select! {
                    _ = changes.notified() => {}
                    // The sender lives as long as the engine; a closed channel changes nothing.
                    Ok(()) = paused.changed() => {}
                    _ = self.changed_elsewhere() => {}
                }
            };
            if sleep_until(deadline, woken, stop).await == Wake::Stop {
                return;
            }
        }
    }

    /// Resolves once another process changed triggers (polled every `bus_poll_ms`).
    async fn changed_elsewhere(&self) {
        let poll = Duration::from_millis(self.scheduler.config.bus_poll_ms);
        loop {
            tokio::time::sleep(poll).await;
            let store = self.scheduler.store.clone();
            let now = blocking(move || store.bus().version("triggers")).await.ok();
            if now != self.seen_version {
                return;
            }
        }
    }
}

/// The scheduler as an engine component.
pub struct SchedulerComponent {
    pub scheduler: Armed,
    /// Notified when triggers were edited.
    pub changes: Arc<Notify>,
    /// `true` while cron firing is paused.
    pub paused: tokio::sync::watch::Receiver<bool>,
}

impl Component for SchedulerComponent {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(self.scheduler.run(self.changes, self.paused, stop))
    }
}

impl Scheduler {
    /// Fires every due cron trigger; returns when the next one is due.
    async fn fire_due(&self) -> Option<DateTime<Utc>> {
        let store = self.store.clone();
        let grace = TimeDelta::seconds(self.config.missed_run_grace_secs as i64);
        let outcome = blocking(move || fire_due_crons(&store, Utc::now(), grace)).await;
        match outcome {
            Ok(fired) => {
                if !fired.events.is_empty() {
                    for (trigger, event) in &fired.events {
                        self.events.send(EngineEvent::EventPublished {
                            event: event.clone(),
                        });
                        self.events.send(EngineEvent::TriggerFired {
                            trigger_id: trigger.id.clone(),
                            persona_id: trigger.persona_id.clone(),
                            kind: TriggerType::Cron,
                            event_id: event.id.clone(),
                        });
                    }
                    self.dispatch.notify_one();
                }
                fired.next_due
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read cron triggers");
                // Try again after the poll interval rather than never.
                Some(Utc::now() + TimeDelta::milliseconds(self.config.bus_poll_ms as i64))
            }
        }
    }
}

/// What one pass over the cron triggers did.
#[derive(Debug, Default)]
pub struct Fired {
    pub events: Vec<(TriggerRow, EventRow)>,
    pub next_due: Option<DateTime<Utc>>,
}

/// Fires the cron triggers due at `now` (a pass of the scheduler). Blocking. A trigger that
/// cannot fire records why and does not hold up the others.
pub fn fire_due_crons(
    store: &Store,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Result<Fired, StoreError> {
    let mut fired = Fired::default();
    for t in store.triggers().live(TriggerType::Cron)? {
        match fire_one(store, &t, now, grace) {
            Ok((events, next)) => {
                fired
                    .events
                    .extend(events.into_iter().map(|e| (t.clone(), e)));
                if let Some(next) = next {
                    fired.next_due =
                        Some(fired.next_due.map_or(next, |d: DateTime<Utc>| d.min(next)));
                }
            }
            Err(message) => {
                tracing::warn!(trigger = %t.id, error = %message, "a cron trigger could not fire");
                store.triggers().record_error(&t.id, &message)?;
            }
        }
    }
    Ok(fired)
}

fn fire_one(
    store: &Store,
    t: &TriggerRow,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Result<(Vec<EventRow>, Option<DateTime<Utc>>), String> {
    let TriggerConfig::Cron { expr, tz, missed } = &t.config else {
        return Ok((Vec::new(), None));
    };
    let schedule = CronSchedule::parse(expr, tz).map_err(|e| e.to_string())?;
    let Some(due) = t.next_fire_at else {
        // Never scheduled (or its schedule ran out before): start counting from now.
        let next = schedule.next_after(now);
        store
            .triggers()
            .fire_scheduled(&t.id, None, &[], next)
            .map_err(|e| e.to_string())?;
        return Ok((Vec::new(), next));
    };
    if due > now {
        return Ok((Vec::new(), Some(due)));
    }
    let plan = schedule.plan(due, now, grace, *missed);
    let events: Vec<NewEvent> = plan
        .fires
        .iter()
        .map(|f| schedule_event(t, &schedule, f, plan.missed))
        .collect();
    let fired_missed = plan.fires.iter().filter(|f| f.missed).count() as u64;
    if plan.missed > fired_missed {
        tracing::info!(
            trigger = %t.id,
            persona = %t.persona_name,
            missed = plan.missed,
            fired = fired_missed,
            policy = %missed,
            "schedule runs were missed while Personas was not running"
        );
    }
    match store
        .triggers()
        .fire_scheduled(&t.id, Some(due), &events, plan.next)
        .map_err(|e| e.to_string())?
    {
        Some(rows) => Ok((rows, plan.next)),
        // Edited meanwhile (by another process): the next pass sees the new definition.
        None => Ok((Vec::new(), Some(now))),
    }
}

fn schedule_event(t: &TriggerRow, schedule: &CronSchedule, fire: &Fire, missed: u64) -> NewEvent {
    let at = fire.scheduled_for;
    let mut payload = json!({
        "trigger_id": t.id,
        "schedule": schedule.expr(),
        "tz": schedule.tz_name(),
        "scheduled_for": at.to_rfc3339(),
        "missed": fire.missed,
    });
    if missed > 0 {
        payload["missed_runs"] = json!(missed);
    }
    let mut event = NewEvent::new(SCHEDULE_EVENT, SourceKind::Schedule, payload);
    event.source_id = Some(t.id.to_string());
    event.target_persona_id = Some(t.persona_id.clone());
    event.trigger_id = Some(t.id.clone());
    event.dedupe_key = Some(format!("cron:{}:{}", t.id, at.timestamp_millis()));
    event
}
