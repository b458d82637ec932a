//! Applying persona-protocol messages found in a run's output: each lands in its table, linked
//! to the execution, and is announced on the event channel. Routing beyond storage (the bus
//! dispatcher, delivery channels, review pauses) reacts to those rows and events.

use crate::events::{EngineEvent, EventBus};
use personas_core::protocol::ProtocolMessage;
use personas_core::{Execution, Persona};
use personas_store::{Store, StoreError};

/// What the runner needs to know after a message was applied.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// A non-fatal problem to record as a warning line (e.g. an unknown target persona).
    pub warning: Option<String>,
    /// `outcome_assessment.accomplished`.
    pub accomplished: Option<bool>,
    /// True when a new bus event was stored (wake the dispatcher).
    pub published_event: bool,
    /// True when a review was requested.
    pub review_requested: bool,
}

/// Stores one protocol message. Runs on a blocking thread (synchronous store).
pub fn apply(
    store: &Store,
    bus: &EventBus,
    execution: &Execution,
    persona: &Persona,
    msg: &ProtocolMessage,
) -> Result<Applied, StoreError> {
    let proto = store.protocol();
    let mut applied = Applied::default();
    match msg {
        ProtocolMessage::UserMessage {
            title,
            content,
            priority,
        } => {
            let m = proto.insert_message(
                Some(&execution.id),
                Some(&persona.id),
                &persona.name,
                title.as_deref(),
                content,
                priority.as_str(),
            )?;
            bus.send(EngineEvent::MessageAdded { message: m });
        }
        ProtocolMessage::EmitEvent { event_type, data } => {
            let e = proto.insert_event(
                event_type,
                "persona",
                Some(persona.id.as_str()),
                Some(&execution.id),
                None,
                data,
            )?;
            applied.published_event = true;
            bus.send(EngineEvent::EventPublished { event: e });
        }
        ProtocolMessage::PersonaAction {
            target,
            action,
            input,
        } => match store.personas().find(target) {
            Ok(target_persona) => {
                let payload = serde_json::json!({
                    "action": action,
                    "input": input,
                });
                let e = proto.insert_event(
                    "persona_action",
                    "persona",
                    Some(persona.id.as_str()),
                    Some(&execution.id),
                    Some(&target_persona.id),
                    &payload,
                )?;
                applied.published_event = true;
                bus.send(EngineEvent::EventPublished { event: e });
            }
            Err(StoreError::NotFound { .. }) => {
                applied.warning = Some(format!(
                    "persona_action: no persona named {target:?}; the action was not sent"
                ));
            }
            Err(e) => return Err(e),
        },
        ProtocolMessage::AgentMemory {
            title,
            content,
            category,
            importance,
        } => {
            let m = proto.insert_memory(
                &persona.id,
                Some(&execution.id),
                title,
                content,
                category,
                *importance,
            )?;
            bus.send(EngineEvent::MemoryAdded { memory: m });
        }
        ProtocolMessage::ManualReview {
            title,
            description,
            severity,
            suggested_actions,
        } => {
            let r = proto.insert_review(
                &execution.id,
                Some(&persona.id),
                title,
                description.as_deref(),
                severity.as_str(),
                suggested_actions,
            )?;
            applied.review_requested = true;
            bus.send(EngineEvent::ReviewRequested { review: r });
        }
        ProtocolMessage::OutcomeAssessment {
            accomplished,
            summary,
        } => {
            store
                .executions()
                .set_outcome_assessment(&execution.id, *accomplished, summary)?;
            applied.accomplished = Some(*accomplished);
        }
    }
    bus.send(EngineEvent::Protocol {
        execution_id: execution.id.clone(),
        message: msg.clone(),
    });
    Ok(applied)
}
