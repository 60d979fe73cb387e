//! Break-glass accounts: create, list, re-split, drills, failed recoveries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    BreakGlassCreated, BreakGlassEnrolment, BreakGlassFailedRecovery, BreakGlassView,
    CreateBreakGlassRequest, DrillRecorded, RotateBreakGlassRequest,
};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::breakglass as svc;
use crate::services::caller::{Caller, ClientInfo};
use crate::state::AppState;

/// Create a break-glass account (password split by the client among custodians, or a FIDO2
/// key with separate key and PIN holders). It holds Global Administrator permanently.
#[utoipa::path(post, path = "/api/v1/breakglass", tag = "breakglass", security(("bearer" = [])), request_body = CreateBreakGlassRequest,
    responses((status = 201, body = BreakGlassCreated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateBreakGlassRequest>,
) -> Result<(StatusCode, Json<BreakGlassCreated>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create(&state, &caller, req).await?),
    ))
}

/// Break-glass accounts with their custodians, last drill and last use.
#[utoipa::path(get, path = "/api/v1/breakglass", tag = "breakglass", security(("bearer" = [])),
    responses((status = 200, body = Vec<BreakGlassView>), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<BreakGlassView>>, ApiError> {
    Ok(Json(svc::list(&state, &caller).await?))
}

/// Re-split a password account (new password, custodians and threshold); its sessions end.
#[utoipa::path(post, path = "/api/v1/breakglass/{name}/rotate", tag = "breakglass", security(("bearer" = [])),
    params(("name" = String, Path, description = "account name")), request_body = RotateBreakGlassRequest,
    responses((status = 200, body = BreakGlassView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<RotateBreakGlassRequest>,
) -> Result<Json<BreakGlassView>, ApiError> {
    Ok(Json(svc::rotate(&state, &caller, &name, req).await?))
}

/// A new enrolment token for a FIDO2 account whose first one expired unused.
#[utoipa::path(post, path = "/api/v1/breakglass/{name}/enrolment", tag = "breakglass", security(("bearer" = [])),
    params(("name" = String, Path, description = "account name")),
    responses((status = 200, body = BreakGlassEnrolment), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn enrolment(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<BreakGlassEnrolment>, ApiError> {
    Ok(Json(svc::reissue_enrolment(&state, &caller, &name).await?))
}

/// Record a drill: called by the break-glass account with the session it just signed in with;
/// that session ends.
#[utoipa::path(post, path = "/api/v1/breakglass/drill", tag = "breakglass", security(("bearer" = [])),
    responses((status = 200, body = DrillRecorded), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn drill(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<DrillRecorded>, ApiError> {
    Ok(Json(svc::record_drill(&state, &caller).await?))
}

/// Report that the CLI could not rebuild an account's password from the shares given: audited
/// as a failed sign-in attempt, and so alerted. Same answer for every name.
#[utoipa::path(post, path = "/api/v1/breakglass/{name}/failed-recovery", tag = "breakglass",
    params(("name" = String, Path, description = "account name")), request_body = BreakGlassFailedRecovery,
    responses((status = 202), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn failed_recovery(
    State(state): State<AppState>,
    client: ClientInfo,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<BreakGlassFailedRecovery>,
) -> Result<StatusCode, ApiError> {
    svc::failed_recovery(&state, &client, &name, req).await?;
    Ok(StatusCode::ACCEPTED)
}
