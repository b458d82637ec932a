//! CLI errors: a message, an optional hint, and the exit code (2 = bad input, 1 = runtime).

use personas_core::ValidationError;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
    pub hint: Option<String>,
}

pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// Bad input from the user: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
            hint: None,
        }
    }

    /// Something failed while doing what was asked: exit code 1.
    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The API's closed codes decide the exit: what the request named is wrong or absent or clashes
/// → 2 (bad input); the runtime or this machine failed → 1.
impl From<personas_api::ApiError> for CliError {
    fn from(e: personas_api::ApiError) -> Self {
        use personas_api::Code;
        match e.code {
            Code::Invalid
            | Code::NotFound
            | Code::Conflict
            | Code::TooLarge
            | Code::UnknownOperation => CliError::usage(e.message),
            Code::Unauthorized | Code::ForbiddenHost | Code::ForbiddenOrigin => {
                CliError::runtime(e.message)
                    .with_hint("the runtime refused this client's token; is <data dir>/api-token the running runtime's?")
            }
            Code::Unavailable | Code::Internal => CliError::runtime(e.message),
        }
    }
}

impl From<ValidationError> for CliError {
    fn from(e: ValidationError) -> Self {
        CliError::usage(e.to_string())
    }
}

impl From<personas_engine::EngineError> for CliError {
    fn from(e: personas_engine::EngineError) -> Self {
        // The same kinds as the API's: a store's not-found or conflict is bad input (2).
        personas_api::ApiError::from(e).into()
    }
}
