//! The engine's client-facing error: one of the contract's codes with a message. Internal causes
//! are logged here and answered as a plain `INTERNAL`, never shown to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use switchyard_schemas::{ErrorBody, ErrorCode, ErrorEnvelope};

use crate::store::{StoreError, WorkflowChangeError};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds, for `Retry-After` on 429 and 503.
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    /// A validation error about one field of the body, so clients can show it next to the field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(message).with_details(serde_json::json!({ "field": field }))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 403 `QUOTA_EXCEEDED`: the message names the limit, its flag and its value.
    pub fn quota(what: &str, flag: &str, value: u32) -> Self {
        Self::new(
            ErrorCode::QuotaExceeded,
            format!("this tenant already has the most {what} allowed: {value} ({flag})"),
        )
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the database is unavailable, retry shortly",
                )
                .with_retry_after(2)
            }
            StoreError::Conflict(reason) => {
                tracing::debug!(%reason, "conflicting write");
                ApiError::conflict("the record was changed concurrently, retry")
            }
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::internal()
            }
        }
    }
}

impl From<WorkflowChangeError> for ApiError {
    fn from(e: WorkflowChangeError) -> Self {
        match e {
            WorkflowChangeError::NotFound => ApiError::not_found("workflow"),
            WorkflowChangeError::VersionMismatch { current, .. } => ApiError::conflict(format!(
                "the workflow was changed: it is at version {current}; re-read it and retry with If-Match: \"{current}\""
            ))
            .with_details(serde_json::json!({ "currentVersion": current })),
            WorkflowChangeError::Managed => ApiError::conflict(
                "this workflow is managed by an integration and cannot be changed or deleted through the API",
            ),
            WorkflowChangeError::Store(e) => e.into(),
        }
    }
}

impl From<crate::workflow_spec::SpecError> for ApiError {
    fn from(e: crate::workflow_spec::SpecError) -> Self {
        match e {
            crate::workflow_spec::SpecError::Field {
                field,
                message,
                details,
            } => match details {
                Some(details) => ApiError::validation(message).with_details(details),
                None => ApiError::field(&field, message),
            },
            crate::workflow_spec::SpecError::Secret => ApiError::internal(),
        }
    }
}
