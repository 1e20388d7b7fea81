//! The API envelope of seed 001 and the contract's error codes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Client-visible error codes (CONTRACT §3), each tied to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    /// A per-tenant quota (CONTRACT §7) would be exceeded; the message names it and its value.
    QuotaExceeded,
    NotFound,
    MethodNotAllowed,
    ValidationError,
    ConfigurationError,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    Internal,
    /// The request (headers, body and handling) took longer than `--request-timeout`.
    RequestTimeout,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden | ErrorCode::QuotaExceeded => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ValidationError | ErrorCode::ConfigurationError => 400,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
            ErrorCode::RequestTimeout => 408,
        }
    }
}

/// The `error` member of a failed response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// `{"success": false, "error": {...}}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: ErrorBody,
}

/// `{"data": ..., "success": true}`
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DataEnvelope<T> {
    pub data: T,
    pub success: bool,
}

/// A page of a list: `{"data": [...], "cursor": ..., "success": true}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListEnvelope<T> {
    pub data: Vec<T>,
    pub cursor: Option<String>,
    pub success: bool,
}

/// `{"success": true}`, for operations that return nothing (seed 001's delete, resume).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SuccessEnvelope {
    pub success: bool,
}
