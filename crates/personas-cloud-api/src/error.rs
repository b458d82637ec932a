//! The orchestrator's error: `{code, message, field}` like the local API's, with a closed code
//! set that maps to HTTP statuses.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloudErrorCode {
    /// The request is malformed or a value is out of range (400).
    Invalid,
    /// No or a refused token (401).
    Unauthorized,
    /// The plan does not include this (402).
    PaymentRequired,
    /// Not found, or not the caller's (404: another tenant's rows are indistinguishable from
    /// missing ones).
    NotFound,
    /// The state does not allow it (409).
    Conflict,
    /// A body over the limit (413).
    TooLarge,
    /// A limit was reached; try again later (429).
    RateLimited,
    /// A dependency (Postgres, the broker) is down (503).
    Unavailable,
    /// A bug (500).
    Internal,
    /// No operation of that name (404).
    UnknownOperation,
}

impl CloudErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            Self::Invalid => 400,
            Self::Unauthorized => 401,
            Self::PaymentRequired => 402,
            Self::NotFound | Self::UnknownOperation => 404,
            Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, thiserror::Error,
)]
#[error("{message}")]
pub struct CloudError {
    pub code: CloudErrorCode,
    pub message: String,
    /// The request field at fault, when one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl CloudError {
    pub fn new(code: CloudErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            code: CloudErrorCode::Invalid,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(CloudErrorCode::NotFound, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(CloudErrorCode::Unauthorized, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(CloudErrorCode::Unavailable, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(CloudErrorCode::Internal, message)
    }
}
