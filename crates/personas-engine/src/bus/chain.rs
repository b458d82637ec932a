//! Chain triggers: when an execution ends, publish an event for every chain waiting on its
//! persona with a matching condition ("run Reviewer after Coder completed").
//!
//! The event (not a direct run) carries the finished run's status and output to the next
//! persona, so each step is in the bus history and the dispatcher's depth limit stops loops.
//! Publishing is keyed by (trigger, execution): recovery after a crash can publish what the
//! crash lost without ever publishing twice.

use crate::events::{EngineEvent, EventBus};
use personas_core::Execution;
use personas_core::trigger::TriggerType;
use personas_store::{EventRow, Store, StoreError};

/// Publishes the chain events of an ended execution and announces them. Blocking.
pub fn on_execution_end(
    store: &Store,
    events: &EventBus,
    exec: &Execution,
) -> Result<Vec<EventRow>, StoreError> {
    let published = store.bus().publish_chain_events(exec)?;
    announce(events, &published);
    Ok(published)
}

/// Publishes chain events lost to a crash (runs that ended in the last day). Blocking.
pub fn recover(store: &Store, events: &EventBus) -> Result<Vec<EventRow>, StoreError> {
    let since = chrono::Utc::now() - chrono::TimeDelta::days(1);
    let published = store.bus().recover_chain_events(since)?;
    if !published.is_empty() {
        tracing::warn!(
            count = published.len(),
            "published chain events a crash had lost"
        );
    }
    announce(events, &published);
    Ok(published)
}

fn announce(events: &EventBus, published: &[EventRow]) {
    for e in published {
        events.send(EngineEvent::EventPublished { event: e.clone() });
        if let (Some(trigger), Some(persona)) = (&e.trigger_id, &e.target_persona_id) {
            events.send(EngineEvent::TriggerFired {
                trigger_id: personas_core::TriggerId::from_string(trigger.clone()),
                persona_id: persona.clone(),
                kind: TriggerType::Chain,
                event_id: e.id.clone(),
            });
        }
    }
}
