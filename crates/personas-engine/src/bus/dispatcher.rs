//! The dispatcher: turns pending bus events into queued executions.
//!
//! Each round claims a batch of due events under this runtime's lease, decides for each one who
//! receives it (its addressee, or the matching subscriptions; nobody past the chain depth
//! limit), and delivers the batch in one store transaction. It is woken at once by an in-process
//! notification whenever something here publishes, and otherwise polls slowly for events other
//! processes wrote (the CLI, the MCP server). Leases of dispatchers that died are reaped at start
//! and whenever one expires.
//!
//! An event a persona addressed to another (`persona_action`) was checked against the sender's
//! `allow_personas` when it was published; it is checked again here, against the policy as it
//! is now, so a grant revoked in between (or an event another writer stored) starts nothing: it
//! is skipped with the reason and the denial is recorded on the sending execution.

use super::matcher::SubscriptionIndex;
use super::trigger_kind_for;
use crate::component::{Component, Running, Wake, due_in, sleep_until};
use crate::config::EngineConfig;
use crate::events::{EngineEvent, EventBus};
use crate::runner::blocking;
use chrono::Utc;
use personas_core::trigger::SourceKind;
use personas_core::{EventStatus, ExecutionId, PersonaDenial, PersonaId};
use personas_store::bus::TARGETED;
use personas_store::{Decision, Delivered, EventRow, Recipient, RetryPolicy, Store, StoreError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The bus dispatcher of one runtime.
pub struct Dispatcher {
    store: Store,
    events: EventBus,
    config: Arc<EngineConfig>,
    owner: String,
    index: SubscriptionIndex,
    index_version: Option<i64>,
    last_reap: Instant,
    /// Fault injection for crash tests: a pause between claiming and delivering, so a test can
    /// kill the process while it holds leases. Set by `PERSONAS_FAULT_DELIVER_DELAY_MS`.
    fault_delay: Option<Duration>,
}

/// Environment variable of the dispatcher's fault-injection pause (tests only).
pub const FAULT_DELIVER_DELAY_ENV: &str = "PERSONAS_FAULT_DELIVER_DELAY_MS";

/// Whether a lease owner (`<pid>:<instance>`) may still be working: this runtime, or another
/// live process. A lease of an earlier incarnation of this pid, or of a dead process, is not.
pub fn lease_owner_alive(me: &str, owner: &str) -> bool {
    if owner == me {
        return true;
    }
    match owner.split(':').next().and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) => pid != std::process::id() && crate::reaper::pid_alive(pid),
        None => false,
    }
}

/// The dispatcher as an engine component.
pub struct DispatcherComponent {
    pub dispatcher: Dispatcher,
    /// Notified when events were published.
    pub wakeup: Arc<Notify>,
    /// Notified when executions were queued.
    pub delivered: Arc<Notify>,
}

impl Component for DispatcherComponent {
    fn name(&self) -> &'static str {
        "dispatcher"
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Running {
        Box::pin(self.dispatcher.run(self.wakeup, self.delivered, stop))
    }
}

impl Dispatcher {
    pub fn new(store: Store, events: EventBus, config: Arc<EngineConfig>, owner: String) -> Self {
        Dispatcher {
            store,
            events,
            config,
            owner,
            index: SubscriptionIndex::default(),
            index_version: None,
            last_reap: Instant::now(),
            fault_delay: std::env::var(FAULT_DELIVER_DELAY_ENV)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_millis),
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.config.bus_max_attempts,
            base: Duration::from_millis(self.config.bus_retry_base_ms),
            cap: Duration::from_secs(self.config.bus_retry_cap_secs),
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.config.bus_lease_secs)
    }

    /// Runs until `shutdown`: rounds back to back while there is work, then waits for `wakeup`
    /// or the fallback poll. `delivered` is notified whenever executions were queued.
    pub async fn run(
        mut self,
        wakeup: Arc<Notify>,
        delivered: Arc<Notify>,
        shutdown: CancellationToken,
    ) {
        let poll = Duration::from_millis(self.config.bus_poll_ms);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let (me, result) = blocking(move || {
                let r = self.round();
                (self, r)
            })
            .await;
            self = me;
            let busy = match result {
                Ok(round) => {
                    if round.queued > 0 {
                        delivered.notify_one();
                    }
                    round.claimed >= self.config.bus_batch as usize
                }
                Err(e) => {
                    tracing::error!(error = %e, "bus dispatch failed; retrying after the poll interval");
                    false
                }
            };
            if busy {
                tokio::task::yield_now().await;
                continue;
            }
            if sleep_until(due_in(poll), wakeup.notified(), &shutdown).await == Wake::Stop {
                return;
            }
        }
    }

    /// Reaps leases whose owner is gone (at start-up nothing can wait for them to expire).
    pub fn reap_orphaned(&mut self) -> Result<usize, StoreError> {
        let me = self.owner.clone();
        let reaped = self.store.bus().reap_leases(
            &|owner| lease_owner_alive(&me, owner),
            self.config.bus_max_attempts,
        )?;
        self.last_reap = Instant::now();
        if !reaped.is_empty() {
            tracing::warn!(
                count = reaped.len(),
                "re-queued bus events whose dispatcher stopped mid-delivery"
            );
        }
        for e in &reaped {
            if e.status == EventStatus::DeadLetter {
                self.events
                    .send(EngineEvent::EventDeadLettered { event: e.clone() });
            }
        }
        Ok(reaped.len())
    }

    /// One claim → decide → deliver round. Blocking (the store is synchronous).
    pub fn round(&mut self) -> Result<Round, StoreError> {
        if self.last_reap.elapsed() >= self.lease() / 2 {
            self.reap_orphaned()?;
        }
        self.refresh_index()?;
        let started = Instant::now();
        let claimed = self
            .store
            .bus()
            .claim(&self.owner, self.lease(), self.config.bus_batch)?;
        if claimed.is_empty() {
            return Ok(Round::default());
        }
        let mut denials = Vec::new();
        let decisions: Vec<(EventRow, Decision)> = claimed
            .iter()
            .map(|e| self.decide(e, &mut denials).map(|d| (e.clone(), d)))
            .collect::<Result<_, _>>()?;
        if let Some(pause) = self.fault_delay {
            std::thread::sleep(pause);
        }
        let retry = self.retry_policy();
        let mut round = Round {
            claimed: claimed.len(),
            queued: 0,
        };
        let claimed_in = started.elapsed();
        let outcome = self.store.bus().deliver(&self.owner, &decisions, retry);
        tracing::debug!(
            events = claimed.len(),
            claim_us = claimed_in.as_micros() as u64,
            deliver_us = (started.elapsed() - claimed_in).as_micros() as u64,
            "bus round"
        );
        match outcome {
            Ok(delivered) => {
                // Recorded after the skip committed, so a retried round cannot record twice.
                for (execution, denial) in denials {
                    if let Err(e) = self
                        .store
                        .executions()
                        .add_persona_denial(&execution, &denial)
                    {
                        tracing::warn!(execution = %execution, error = %e, "cannot record a persona denial");
                    }
                }
                for d in delivered {
                    round.queued += d.created.len();
                    self.announce(d);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = claimed.len(), "delivering bus events failed; they will be retried");
                for event in
                    self.store
                        .bus()
                        .release(&self.owner, &claimed, &e.to_string(), retry)?
                {
                    self.announce_status(event);
                }
            }
        }
        Ok(round)
    }

    fn refresh_index(&mut self) -> Result<(), StoreError> {
        let version = self.store.bus().version("subscriptions")?;
        if self.index_version != Some(version) {
            self.index = SubscriptionIndex::new(self.store.bus().subscriptions()?);
            self.index_version = Some(version);
            tracing::debug!(subscriptions = self.index.len(), "subscriptions reloaded");
        }
        Ok(())
    }

    /// Who receives an event. A persona's addressed event its policy does not allow is
    /// skipped, and the denial to record is added to `denials`.
    fn decide(
        &self,
        event: &EventRow,
        denials: &mut Vec<(ExecutionId, PersonaDenial)>,
    ) -> Result<Decision, StoreError> {
        let max = self.config.max_chain_depth;
        if event.depth >= max {
            return Ok(Decision::Skip(self.depth_stop_reason(event, max)?));
        }
        if let Some(reason) = self.denied(event, denials)? {
            return Ok(Decision::Skip(reason));
        }
        Ok(Decision::Deliver(match &event.target_persona_id {
            Some(persona) => vec![Recipient {
                target: TARGETED.into(),
                persona_id: persona.clone(),
                trigger: trigger_kind_for(event.source_kind),
            }],
            None => self.index.recipients(event),
        }))
    }

    /// Why a persona's addressed event may not start its target, if it may not.
    fn denied(
        &self,
        event: &EventRow,
        denials: &mut Vec<(ExecutionId, PersonaDenial)>,
    ) -> Result<Option<String>, StoreError> {
        let (Some(target), SourceKind::Persona) = (&event.target_persona_id, event.source_kind)
        else {
            return Ok(None);
        };
        let personas = self.store.personas();
        let sender = match &event.source_id {
            Some(id) => match personas.get(&PersonaId::from_string(id.clone())) {
                Ok(p) => Some(p),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        if sender
            .as_ref()
            .is_some_and(|p| p.permissions.may_start(target))
        {
            return Ok(None);
        }
        let target_name = personas
            .get(target)
            .map(|p| p.name)
            .unwrap_or_else(|_| target.to_string());
        let sender_name = sender
            .map(|p| p.name)
            .or_else(|| event.source_id.clone())
            .unwrap_or_else(|| "an unknown persona".into());
        if let Some(execution) = &event.source_execution_id {
            denials.push((
                execution.clone(),
                PersonaDenial {
                    target: target_name.clone(),
                    target_persona_id: target.clone(),
                    action: event
                        .payload
                        .get("action")
                        .and_then(|a| a.as_str())
                        .map(str::to_string),
                    via: "bus".into(),
                    at: Utc::now(),
                },
            ));
        }
        Ok(Some(format!(
            "denied: {sender_name} may not start {target_name} (not in its allow_personas)"
        )))
    }

    /// Names the chain that hit the depth limit and whether it is a cycle.
    fn depth_stop_reason(&self, event: &EventRow, max: u32) -> Result<String, StoreError> {
        let mut path = self.store.bus().causal_path(event, max as usize + 1)?;
        if let Some(target) = &event.target_persona_id {
            let name = self
                .store
                .personas()
                .get(target)
                .map(|p| p.name)
                .unwrap_or_else(|_| target.to_string());
            path.push(name);
        }
        let mut seen = HashSet::new();
        let cycle = path.iter().any(|p| p != "…" && !seen.insert(p.as_str()));
        let what = if cycle { "cycle" } else { "chain" };
        Ok(format!(
            "stopped: {what} {} reached the depth limit of {max} runs (max_chain_depth)",
            path.join(" → ")
        ))
    }

    fn announce(&self, d: Delivered) {
        for e in d.created {
            self.events.send(EngineEvent::Execution {
                execution: Box::new(e),
            });
        }
        if d.event.status == EventStatus::Delivered {
            self.events.send(EngineEvent::EventDelivered {
                event: d.event,
                executions: d.executions,
            });
        } else {
            self.announce_status(d.event);
        }
    }

    fn announce_status(&self, event: EventRow) {
        match event.status.as_str() {
            "skipped" => self.events.send(EngineEvent::EventSkipped { event }),
            "failed" => self.events.send(EngineEvent::EventFailed { event }),
            "dead_letter" => self.events.send(EngineEvent::EventDeadLettered { event }),
            _ => {}
        }
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    pub claimed: usize,
    pub queued: usize,
}
