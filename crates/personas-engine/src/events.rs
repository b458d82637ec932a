//! The one typed channel every component publishes on and every host subscribes to.
//!
//! Events are sent only after what they describe is committed to the store, so a subscriber
//! that sees an event can always read it back.

use personas_core::protocol::ProtocolMessage;
use personas_core::{Execution, OutputLine};
use personas_store::{DeliveryRow, EventRow, HealingReport, MemoryRow, MessageRow, ReviewRow};
use serde::Serialize;
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

/// Sending half, cloned into every component.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<EngineEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self { tx }
    }

    /// Publishes to current subscribers; having none is fine.
    pub fn send(&self, event: EngineEvent) {
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.tx.subscribe()
    }
}
