//! The OAuth 2.0 error a grant answers (RFC 6749 §5.2): a code from the RFCs' registry and a
//! description for people. Services return it; `crate::http::oauth` renders it, with a status
//! that follows from the code (so no service chooses an HTTP status).

use serde::Serialize;

/// An OAuth error response.
#[derive(Debug)]
pub struct OAuthError {
    /// The `error` code (`invalid_request`, `invalid_client`, `invalid_grant`, …).
    pub error: &'static str,
    pub description: String,
    /// Seconds to wait, for a throttled answer (`Retry-After`, status 429).
    pub retry_after: Option<i64>,
}

/// The wire shape of an OAuth error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
            retry_after: None,
        }
    }

    /// An answer that says come back in `seconds` (at least one).
    pub fn throttled(error: &'static str, description: impl Into<String>, seconds: i64) -> Self {
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::new(error, description)
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }

    pub fn invalid_client() -> Self {
        Self::new("invalid_client", "client authentication failed")
    }

    pub fn server_error() -> Self {
        Self::new("server_error", "internal error; see the server log")
    }
}

impl From<crate::error::ApiError> for OAuthError {
    fn from(e: crate::error::ApiError) -> Self {
        tracing::error!(error = %e.message, "token endpoint");
        Self::server_error()
    }
}

impl From<portcullis_store::StoreError> for OAuthError {
    fn from(e: portcullis_store::StoreError) -> Self {
        tracing::error!(error = %e, "token endpoint store error");
        Self::server_error()
    }
}
