//! The extractors that tell a handler who is calling and from where: the `Authorization`
//! header and the client address (after trusted-proxy resolution, [`crate::http::edge::client`])
//! handed to [`crate::services::caller`], which decides what the credential is worth.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::{Caller, ClientInfo, caller_from_bearer};
use crate::state::AppState;

/// The client address of a request as text: the TCP peer, or what a trusted proxy said
/// (`X-Forwarded-For` from anyone else is ignored); `unknown` without a connection.
pub fn client_ip(parts: &Parts) -> String {
    crate::http::edge::client::client_ip(&parts.extensions)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts);
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect())
            .unwrap_or_default();
        Ok(Self { ip, user_agent })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The authorisation layer (crate::http::authz) has usually identified the caller already.
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthenticated)?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 8192)
            .ok_or_else(ApiError::unauthenticated)?;
        let now = OffsetDateTime::now_utc();
        caller_from_bearer(state, token, &client_ip(parts), now).await
    }
}
