//! The one event enum every client streams, and the frames a host sends it in.
//!
//! [`ApiEvent`] mirrors the engine's [`EngineEvent`] for the wire (the engine's type is free to
//! change shape; this one is the contract the UI is generated from). The conversion is an
//! exhaustive `match`: a new engine event does not compile until it is given a wire form here.
//!
//! Hosts number events with a sequence per runtime instance ([`StreamFrame::Event`]) and keep a
//! short replay buffer, so a client that reconnects with the last sequence it saw misses nothing;
//! when it has been away longer than the buffer covers it gets [`StreamFrame::Resync`] and
//! re-reads state through the operations.

use personas_core::protocol::ProtocolMessage;
use personas_core::trigger::TriggerType;
use personas_core::{Execution, ExecutionId, OutputLine, PersonaId, TriggerId};
use personas_engine::EngineEvent;
use personas_store::{
    DeliveryRow, Effect, EventRow, HealingReport, MemoryRow, MessageRow, ReviewRow,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Something that happened in the runtime, after it was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiEvent {
    /// An execution was queued, started, or changed status.
    Execution { execution: Execution },
    /// One stored output line of a running execution.
    Output { line: OutputLine },
    /// A persona-protocol message recognised in an execution's output.
    Protocol {
        execution_id: ExecutionId,
        message: ProtocolMessage,
    },
    /// A message for the user arrived in the inbox.
    Message { message: MessageRow },
    /// An event was published on the bus.
    BusEvent { event: EventRow },
    /// A bus event was delivered: these executions were queued for it.
    BusDelivered {
        event: EventRow,
        executions: Vec<ExecutionId>,
    },
    /// A bus event reached nobody (no subscriber, or a chain stopped; the reason is in
    /// `event.error`).
    BusSkipped { event: EventRow },
    /// A delivery failed and will be retried at `event.next_attempt_at`.
    BusFailed { event: EventRow },
    /// A bus event ran out of attempts (dead letter); it can be retried by hand.
    BusDeadLettered { event: EventRow },
    /// A trigger fired; its event is on the bus.
    TriggerFired {
        trigger_id: TriggerId,
        persona_id: PersonaId,
        kind: TriggerType,
        event_id: String,
    },
    /// A persona remembered something.
    Memory { memory: MemoryRow },
    /// An execution asks a person to decide.
    Review { review: ReviewRow },
    /// A review was decided (by a person or its deadline), and what that did to the run.
    ReviewDecided { review: ReviewRow, effect: Effect },
    /// A desktop notification (a persona's `desktop` channel): hosts show it natively.
    Notification {
        persona_name: String,
        subject_kind: personas_core::NoticeKind,
        subject_id: String,
        title: String,
        body: String,
        priority: String,
    },
    /// A delivery attempt to a notification channel was recorded.
    Delivery { delivery: DeliveryRow },
    /// What healing did after an execution ended: a scheduled retry, a pause, an issue.
    Healing {
        execution_id: ExecutionId,
        report: HealingReport,
    },
}

impl From<EngineEvent> for ApiEvent {
    fn from(e: EngineEvent) -> Self {
        match e {
            EngineEvent::Execution { execution } => ApiEvent::Execution {
                execution: *execution,
            },
            EngineEvent::Output { line } => ApiEvent::Output {
                line: line.framed(),
            },
            EngineEvent::Protocol {
                execution_id,
                message,
            } => ApiEvent::Protocol {
                execution_id,
                message,
            },
            EngineEvent::MessageAdded { message } => ApiEvent::Message { message },
            EngineEvent::EventPublished { event } => ApiEvent::BusEvent { event },
            EngineEvent::EventDelivered { event, executions } => {
                ApiEvent::BusDelivered { event, executions }
            }
            EngineEvent::EventSkipped { event } => ApiEvent::BusSkipped { event },
            EngineEvent::EventFailed { event } => ApiEvent::BusFailed { event },
            EngineEvent::EventDeadLettered { event } => ApiEvent::BusDeadLettered { event },
            EngineEvent::TriggerFired {
                trigger_id,
                persona_id,
                kind,
                event_id,
            } => ApiEvent::TriggerFired {
                trigger_id,
                persona_id,
                kind,
                event_id,
            },
            EngineEvent::MemoryAdded { memory } => ApiEvent::Memory { memory },
            EngineEvent::ReviewRequested { review } => ApiEvent::Review { review },
            EngineEvent::ReviewDecided { review, effect } => {
                ApiEvent::ReviewDecided { review, effect }
            }
            EngineEvent::Notification {
                persona_name,
                subject_kind,
                subject_id,
                title,
                body,
                priority,
            } => ApiEvent::Notification {
                persona_name,
                subject_kind,
                subject_id,
                title,
                body,
                priority,
            },
            EngineEvent::DeliveryUpdated { delivery } => ApiEvent::Delivery { delivery },
            EngineEvent::Healing {
                execution_id,
                report,
            } => ApiEvent::Healing {
                execution_id,
                report,
            },
        }
    }
}

/// What a host sends on the event stream. The web host sends them in JSON arrays (one array per
/// WebSocket message, so bursts cost one frame); the desktop host one per Tauri event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Frames live only while being encoded; boxing the event would cost an allocation per frame.
#[allow(clippy::large_enum_variant)]
pub enum StreamFrame {
    /// First frame of a connection: the runtime instance (`epoch`) and the newest sequence.
    /// A client resuming with another epoch must resync: sequences restart with the runtime.
    Hello { epoch: String, seq: u64 },
    /// One event and its sequence number (strictly increasing per epoch, no gaps).
    Event { seq: u64, event: ApiEvent },
    /// Events were missed (the client was away longer than the replay buffer covers, or read
    /// too slowly); re-read state, then continue from `seq`.
    Resync {
        epoch: String,
        seq: u64,
        reason: String,
    },
}
