//! Who is calling: the bearer credential of a request.
//!
//! Until accounts exist, the only credential is the tenant's bootstrap token (unexpired, unused),
//! which may read and verify the audit log. Tokens are compared by their SHA-256 in the store.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use time::OffsetDateTime;

use crate::api::AppState;
use crate::error::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    Bootstrap,
}

impl Caller {
    /// The actor name written in audit events.
    pub fn actor(&self) -> &'static str {
        match self {
            Caller::Bootstrap => "bootstrap-token",
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthenticated)?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 512)
            .ok_or_else(ApiError::unauthenticated)?;
        if state
            .store
            .bootstrap_token_valid(token, OffsetDateTime::now_utc())
            .await?
        {
            return Ok(Caller::Bootstrap);
        }
        Err(ApiError::unauthenticated())
    }
}
