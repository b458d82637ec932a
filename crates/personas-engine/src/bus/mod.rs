//! The durable event bus, as engine components:
//!
//! - [`publisher`]: group-committing publisher for events from webhooks, watchers and callers.
//! - [`dispatcher`]: claims pending events under a lease, matches them to subscriptions (or to
//!   their addressee) and queues one execution per recipient, exactly once.
//! - [`matcher`]: the in-memory subscription index the dispatcher matches with.
//! - [`chain`]: publishes chain events when an execution ends.
//!
//! The store is the bus (seed §14.2): every event is a row before anyone acts on it, so history
//! survives, and a crash at any point is recovered from the rows.

pub mod chain;
pub mod dispatcher;
pub mod matcher;
pub mod publisher;

pub use dispatcher::Dispatcher;
pub use publisher::{PublishError, Publisher};

use personas_core::TriggerKind;
use personas_core::trigger::SourceKind;

/// What an execution started by an event from `source_kind` is recorded as started by.
pub fn trigger_kind_for(source_kind: SourceKind) -> TriggerKind {
    match source_kind {
        SourceKind::Schedule => TriggerKind::Schedule,
        SourceKind::Webhook => TriggerKind::Webhook,
        SourceKind::Chain => TriggerKind::Chain,
        SourceKind::Persona | SourceKind::User | SourceKind::System | SourceKind::Watcher => {
            TriggerKind::Event
        }
    }
}

/// The bus event that started an execution, as its prompt shows it: type, where it came from,
/// payload. `None` for runs not started by an event (or whose event cannot be read: the run
/// still gets the payload as its input).
pub(crate) async fn triggering_event(
    store: &personas_store::Store,
    execution: &personas_core::Execution,
) -> Option<personas_core::prompt::EventDoc> {
    if !matches!(
        execution.trigger,
        TriggerKind::Event | TriggerKind::Schedule | TriggerKind::Webhook | TriggerKind::Chain
    ) {
        return None;
    }
    let id = execution.trigger_ref.clone()?;
    let store = store.clone();
    let loaded = crate::runner::blocking(move || {
        let event = store.bus().get(&id)?;
        let source = store.bus().describe_source(&event)?;
        Ok::<_, personas_store::StoreError>(personas_core::prompt::EventDoc {
            id: event.id,
            event_type: event.event_type,
            source,
            payload: event.payload,
        })
    })
    .await;
    match loaded {
        Ok(doc) => Some(doc),
        Err(e) => {
            tracing::warn!(execution = %execution.id, error = %e, "cannot load the triggering event");
            None
        }
    }
}
