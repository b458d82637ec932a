//! The one typed channel every component publishes on and every host subscribes to.
//!
//! Events are sent only after what they describe is committed to the store, so a subscriber
//! that sees an event can always read it back.

use crate::metrics::{Event, Metrics};
use personas_core::protocol::ProtocolMessage;
use personas_core::{Execution, OutputLine};
use personas_store::{DeliveryRow, EventRow, HealingReport, MemoryRow, MessageRow, ReviewRow};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    /// An execution was queued, started, or changed status.
    Execution {
        execution: Box<Execution>,
    },
    /// A stored output line of a running execution.
    Output {
        line: OutputLine,
    },
    /// A protocol message was recognised in an execution's output.
    Protocol {
        execution_id: personas_core::ExecutionId,
        message: ProtocolMessage,
    },
    MessageAdded {
        message: MessageRow,
    },
    /// A bus event was stored (published by a persona, a trigger, a webhook or a person).
    EventPublished {
        event: EventRow,
    },
    /// The dispatcher queued the executions a bus event asked for.
    EventDelivered {
        event: EventRow,
        executions: Vec<personas_core::ExecutionId>,
    },
    /// A bus event reached nobody: no subscriber, or a chain stopped at its depth limit (the
    /// reason is in `event.error`).
    EventSkipped {
        event: EventRow,
    },
    /// A delivery failed; it is retried at `event.next_attempt_at`.
    EventFailed {
        event: EventRow,
    },
    /// A bus event ran out of attempts; `personas event retry` re-queues it.
    EventDeadLettered {
        event: EventRow,
    },
    /// A trigger fired: its event is on the bus.
    TriggerFired {
        trigger_id: personas_core::TriggerId,
        persona_id: personas_core::PersonaId,
        kind: personas_core::trigger::TriggerType,
        event_id: String,
    },
    MemoryAdded {
        memory: MemoryRow,
    },
    ReviewRequested {
        review: ReviewRow,
    },
    /// A review was decided (by a person or its deadline) and what that did to the run.
    ReviewDecided {
        review: ReviewRow,
        effect: personas_store::Effect,
    },
    /// A desktop notification (the `desktop` channel): hosts show it natively.
    Notification {
        persona_name: String,
        subject_kind: personas_core::NoticeKind,
        subject_id: String,
        title: String,
        body: String,
        priority: String,
    },
    /// A delivery attempt to a notification channel was recorded.
    DeliveryUpdated {
        delivery: DeliveryRow,
    },
    /// What healing did about an ended execution (retry, pause, issue, provider breaker).
    Healing {
        execution_id: personas_core::ExecutionId,
        report: HealingReport,
    },
}

impl EngineEvent {
    pub fn execution(e: &Execution) -> Self {
        EngineEvent::Execution {
            execution: Box::new(e.clone()),
        }
    }
}

/// Capacity of the broadcast buffer; a subscriber lagging further than this loses the oldest
/// events and is told so (hosts then re-read the store).
pub const CHANNEL_CAPACITY: usize = 16_384;

/// Sending half, cloned into every component. It carries the engine's [`Metrics`]: every event
/// sent is also recorded as the named internal event it stands for ([`EventBus::send`]).
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<EngineEvent>,
    metrics: Arc<Metrics>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self {
            tx,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Publishes to current subscribers (having none is fine), and logs and counts what the
    /// event stands for.
    pub fn send(&self, event: EngineEvent) {
        record(&self.metrics, &event);
        let _ = self.tx.send(event);
    }

    /// The registry events are counted in (owned by the engine this bus belongs to).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Current subscribers (hosts' streams, the delivery sender, the review timer).
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.tx.subscribe()
    }
}

/// The named internal event an engine event stands for. Output lines are counted per writer
/// batch instead (one log line per line would drown the log).
fn record(metrics: &Metrics, event: &EngineEvent) {
    use personas_core::ExecutionStatus as S;
    let named = match event {
        EngineEvent::Execution { execution } => match execution.status {
            S::Queued => Event::ExecutionQueued {
                execution: execution.id.as_str(),
            },
            S::Running => Event::ExecutionStarted {
                execution: execution.id.as_str(),
            },
            S::AwaitingReview => return,
            status => Event::ExecutionFinished {
                execution: execution.id.as_str(),
                status,
            },
        },
        EngineEvent::EventPublished { event } => Event::EventPublished { event: &event.id },
        EngineEvent::EventDelivered { event, executions } => Event::EventDelivered {
            event: &event.id,
            executions: executions.len() as u64,
        },
        EngineEvent::EventFailed { event } => Event::EventFailed { event: &event.id },
        EngineEvent::EventDeadLettered { event } => Event::EventDeadLettered { event: &event.id },
        EngineEvent::TriggerFired {
            trigger_id, kind, ..
        } => Event::TriggerFired {
            trigger: trigger_id.as_str(),
            kind: *kind,
        },
        EngineEvent::ReviewRequested { review } => Event::ReviewRequested { review: &review.id },
        EngineEvent::DeliveryUpdated { delivery } => match delivery.status.as_str() {
            "delivered" => Event::DeliverySent {
                delivery: &delivery.id,
            },
            "pending" | "failed" if delivery.last_error.is_some() => Event::DeliveryFailed {
                delivery: &delivery.id,
            },
            _ => return,
        },
        EngineEvent::Output { .. }
        | EngineEvent::Protocol { .. }
        | EngineEvent::MessageAdded { .. }
        | EngineEvent::EventSkipped { .. }
        | EngineEvent::MemoryAdded { .. }
        | EngineEvent::ReviewDecided { .. }
        | EngineEvent::Notification { .. }
        | EngineEvent::Healing { .. } => return,
    };
    metrics.record(named);
}
