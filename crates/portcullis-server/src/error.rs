//! The error every service returns: a stable [`ErrorCode`] and a message for people.
//!
//! No HTTP here: the status of each code, the JSON shape
//! (`{"error":{"code":"…","message":"…"}}`) and the extractor rejections are in
//! `crate::http::error`. Internal errors are logged with their detail and carry a generic
//! message: no internals or secrets reach the caller.

pub use portcullis_core::api::{ErrorBody, ErrorDetail};
use portcullis_core::error::ErrorCode;

/// An error answer: a code (its HTTP status follows from it) and a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, sent as `Retry-After` (for 429).
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: i64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, what)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorCode::Unauthenticated,
            "a valid bearer credential is required",
        )
    }

    /// Logs the detail, answers a generic 500.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error; see the server log")
    }
}

impl From<portcullis_store::StoreError> for ApiError {
    fn from(e: portcullis_store::StoreError) -> Self {
        use portcullis_store::StoreError as E;
        match e {
            E::Unreachable(_) | E::Closed | E::CommitFailed(_) => {
                tracing::warn!(error = %e, "store unavailable");
                Self::new(ErrorCode::Unavailable, "the database is unavailable")
            }
            // A conditional change lost a race or found the state moved on (another replica,
            // another request). Its message is one of the store's own fixed sentences, never a
            // database error, so it can be shown. Handlers that need a more specific answer
            // (sign-in, approvals) match the conflict themselves before this fallback.
            E::Conflict(what) => Self::new(ErrorCode::Conflict, what),
            other => Self::internal(other),
        }
    }
}
