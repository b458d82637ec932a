//! Applying persona-protocol messages found in a run's output: each lands in its table, linked
//! to the execution, and is announced on the event channel. Routing beyond storage (the bus
//! dispatcher, delivery channels, review pauses) reacts to those rows and events.
//!
//! A `persona_action` (also what the MCP `run_persona` tool becomes) starts another persona,
//! so it is the one message checked against the persona's policy: the target must be in its
//! `allow_personas`, read fresh from the store (a grant revoked mid-run holds at once). A
//! refusal publishes nothing, is recorded on the execution with the target, and comes back as a
//! warning.

use crate::events::{EngineEvent, EventBus};
use chrono::Utc;
use personas_core::protocol::ProtocolMessage;
use personas_core::trigger::SourceKind;
use personas_core::{Execution, Persona, PersonaDenial};
use personas_store::{Store, StoreError};

/// How a protocol message reached the platform; recorded with a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A JSON line in the run's answer text.
    Protocol,
    /// A tool call to the run's MCP server.
    Mcp,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Protocol => "protocol",
            Origin::Mcp => "mcp",
        }
    }
}

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
    /// True when a persona start was refused under the persona's policy (and recorded).
    pub denied: bool,
}

/// Stores one protocol message found in a run's output. Runs on a blocking thread
/// (synchronous store).
pub fn apply(
    store: &Store,
    bus: &EventBus,
    execution: &Execution,
    persona: &Persona,
    msg: &ProtocolMessage,
) -> Result<Applied, StoreError> {
    apply_from(Origin::Protocol, store, bus, execution, persona, msg)
}

/// As [`apply`], for a message that came by `origin`.
pub fn apply_from(
    origin: Origin,
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
                *priority,
            )?;
            bus.send(EngineEvent::MessageAdded { message: m });
        }
        ProtocolMessage::EmitEvent { event_type, data } => {
            let e = proto.insert_event(
                event_type,
                SourceKind::Persona,
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
            Ok(target_persona) if !may_start(store, persona, &target_persona)? => {
                let denial = PersonaDenial {
                    target: target.clone(),
                    target_persona_id: target_persona.id.clone(),
                    action: action.clone(),
                    via: origin.as_str().into(),
                    at: Utc::now(),
                };
                store
                    .executions()
                    .add_persona_denial(&execution.id, &denial)?;
                tracing::warn!(execution = %execution.id, persona = %persona.name,
                    target = %target_persona.name, "persona start denied (allow_personas)");
                applied.denied = true;
                applied.warning = Some(denied_text(&persona.name, &target_persona.name));
                return Ok(applied);
            }
            Ok(target_persona) => {
                let payload = serde_json::json!({
                    "action": action,
                    "input": input,
                });
                let e = proto.insert_event(
                    "persona_action",
                    SourceKind::Persona,
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
                *severity,
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

/// True when `persona`'s policy, as stored now, lets it start `target`. A persona deleted
/// meanwhile may start nothing.
fn may_start(store: &Store, persona: &Persona, target: &Persona) -> Result<bool, StoreError> {
    match store.personas().get(&persona.id) {
        Ok(current) => Ok(current.permissions.may_start(&target.id)),
        Err(StoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The warning a refused persona start leaves on the run (and the MCP tool's error).
pub fn denied_text(persona: &str, target: &str) -> String {
    format!(
        "persona_action denied: {persona} may not start {target} (not in its allow_personas); \
         the action was not sent. A person can allow it with `personas persona update \
         {persona:?} --allow-persona {target:?}`"
    )
}
