//! [`Orchestrator`]: what every part of one orchestrator shares. Cheap to clone (an `Arc`).

use crate::config::OrchestratorSettings;
use std::sync::Arc;

/// One orchestrator's shared state.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: OrchestratorSettings,
}

impl Orchestrator {
    pub fn new(settings: OrchestratorSettings) -> Self {
        Self {
            inner: Arc::new(Inner { settings }),
        }
    }

    pub fn settings(&self) -> &OrchestratorSettings {
        &self.inner.settings
    }

    pub fn id(&self) -> &str {
        &self.inner.settings.id
    }
}
