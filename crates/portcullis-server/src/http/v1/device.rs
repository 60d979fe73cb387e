//! Approving or denying a device code (the device authorization grant, RFC 8628), as a
//! signed-in person with a second factor. See [`crate::services::device`].

use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::api::DeviceDecisionRequest;

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::Caller;
use crate::state::AppState;

/// Approve the device code a CLI showed: it receives tokens for you, with your session's
/// authentication strength.
#[utoipa::path(post, path = "/api/v1/device/approve", tag = "oauth2", security(("bearer" = [])), request_body = DeviceDecisionRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DeviceDecisionRequest>,
) -> Result<StatusCode, ApiError> {
    crate::services::device::decide(&state, &caller, &req.user_code, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deny a device code (the CLI that polls for it gets `access_denied`).
#[utoipa::path(post, path = "/api/v1/device/deny", tag = "oauth2", security(("bearer" = [])), request_body = DeviceDecisionRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deny(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DeviceDecisionRequest>,
) -> Result<StatusCode, ApiError> {
    crate::services::device::decide(&state, &caller, &req.user_code, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
