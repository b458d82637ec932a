//! What stops a benchmark: a bad argument (the CLI exits 2) or a failure while measuring (1),
//! with a hint when there is a known fix.

use personas_engine::EngineError;
use personas_store::StoreError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BenchError {
    /// The arguments cannot be measured as given (a missing fixtures folder, a bad value);
    /// otherwise something failed while measuring.
    pub usage: bool,
    pub message: String,
    pub hint: Option<String>,
}

pub type BenchResult<T> = Result<T, BenchError>;

impl BenchError {
    pub fn usage(message: impl Into<String>) -> Self {
        BenchError {
            usage: true,
            message: message.into(),
            hint: None,
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        BenchError {
            usage: false,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<StoreError> for BenchError {
    fn from(e: StoreError) -> Self {
        BenchError::runtime(e.to_string())
    }
}

impl From<EngineError> for BenchError {
    fn from(e: EngineError) -> Self {
        BenchError::runtime(e.to_string())
    }
}
