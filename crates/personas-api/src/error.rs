//! Errors at the wire: `{code, message, field}` with a closed [`Code`] the UI switches on, so no
//! client ever parses a message to find out what went wrong.

use personas_core::ValidationError;
use personas_engine::EngineError;
use personas_store::StoreError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What kind of failure an operation hit. Closed: adding a code is an API change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The request names a bad value; `field` says which.
    Invalid,
    /// The thing the request names does not exist.
    NotFound,
    /// The request clashes with what is stored (a taken name, an ended execution).
    Conflict,
    /// No or a wrong API token.
    Unauthorized,
    /// The request's Host header is not this server (DNS rebinding).
    ForbiddenHost,
    /// The request came from another site.
    ForbiddenOrigin,
    /// The request body is over the size limit.
    TooLarge,
    /// No operation by that name.
    UnknownOperation,
    /// The runtime cannot do this now: it is shutting down, or the credential vault cannot be
    /// used (no keychain and no passphrase, a wrong passphrase; `field` is `vault`). The
    /// message says why and how to fix it.
    Unavailable,
    /// Something failed on this machine (disk, database); the message says what.
    Internal,
}

impl Code {
    /// The HTTP status a host answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Invalid => 400,
            Code::Unauthorized => 401,
            Code::ForbiddenHost | Code::ForbiddenOrigin => 403,
            Code::NotFound | Code::UnknownOperation => 404,
            Code::Conflict => 409,
            Code::TooLarge => 413,
            Code::Unavailable => 503,
            Code::Internal => 500,
        }
    }
}

/// The error every operation returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, JsonSchema, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// The request field at fault, for `invalid` and `conflict` (forms show it inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            code: Code::Invalid,
            message: format!("{field}: {}", message.into()),
            field: Some(field),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self {
            code: Code::Invalid,
            message: e.to_string(),
            field: Some(e.field),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::new(Code::NotFound, e.to_string()),
            StoreError::Conflict { ref field, .. } => ApiError {
                code: Code::Conflict,
                field: Some(field.clone()),
                message: e.to_string(),
            },
            StoreError::Invalid(v) => v.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::ShuttingDown => ApiError::new(Code::Unavailable, e.to_string()),
            EngineError::Publish(p) => ApiError::internal(p.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_kind_and_field() {
        let e: ApiError =
            StoreError::conflict("name", "a persona named \"A\" already exists").into();
        assert_eq!((e.code, e.field.as_deref()), (Code::Conflict, Some("name")));
        let e: ApiError = StoreError::not_found("persona", "x").into();
        assert_eq!(e.code, Code::NotFound);
        assert_eq!(e.code.http_status(), 404);
        let e: ApiError = ValidationError::new("timeout", "must be at least 1").into();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (Code::Invalid, Some("timeout"))
        );
    }

    #[test]
    fn codes_are_snake_case_on_the_wire() {
        let v = serde_json::to_value(ApiError::new(Code::ForbiddenHost, "x")).expect("json");
        assert_eq!(v["code"], "forbidden_host");
        assert!(v.get("field").is_none());
    }
}
