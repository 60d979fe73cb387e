//! Conditional access: policies, named locations, what-if.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    CaImportRequest, CaImportResult, CaLocationRequest, CaLocationView, CaPolicyView,
    CaStateRequest, WhatIfRequest,
};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::Caller;
use crate::services::conditional_access as svc;
use crate::state::AppState;

/// Conditional-access policies, by name, in the file format.
#[utoipa::path(get, path = "/api/v1/ca/policies", tag = "conditional_access", security(("bearer" = [])),
    responses((status = 200, body = Vec<CaPolicyView>), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CaPolicyView>>, ApiError> {
    Ok(Json(svc::list_policies(&state, &caller).await?))
}

/// Create or replace policies by name, all or nothing: the whole resulting set is validated
/// (every problem named) and must pass the lockout guard.
#[utoipa::path(post, path = "/api/v1/ca/policies", tag = "conditional_access", security(("bearer" = [])), request_body = CaImportRequest,
    responses((status = 200, body = CaImportResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "refused, or `change_pending`: it disables, deletes or weakens an enforced policy that applies to a privileged role, and was recorded as a change request for another top-tier person (four eyes)"), (status = 409, body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CaImportRequest>,
) -> Result<Json<CaImportResult>, ApiError> {
    Ok(Json(svc::import(&state, &caller, req).await?))
}

/// One policy.
#[utoipa::path(get, path = "/api/v1/ca/policies/{name}", tag = "conditional_access", security(("bearer" = [])),
    params(("name" = String, Path, description = "policy name")),
    responses((status = 200, body = CaPolicyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<CaPolicyView>, ApiError> {
    Ok(Json(svc::show_policy(&state, &caller, &name).await?))
}

/// Delete a policy.
#[utoipa::path(delete, path = "/api/v1/ca/policies/{name}", tag = "conditional_access", security(("bearer" = [])),
    params(("name" = String, Path, description = "policy name")),
    responses((status = 204), (status = 403, body = ErrorBody, description = "refused, or `change_pending`: it disables, deletes or weakens an enforced policy that applies to a privileged role, and was recorded as a change request for another top-tier person (four eyes)"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::delete_policy(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable, disable, or switch a policy to report-only (lockout-guarded).
#[utoipa::path(post, path = "/api/v1/ca/policies/{name}/state", tag = "conditional_access", security(("bearer" = [])),
    params(("name" = String, Path, description = "policy name")), request_body = CaStateRequest,
    responses((status = 200, body = CaPolicyView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "refused, or `change_pending`: it disables, deletes or weakens an enforced policy that applies to a privileged role, and was recorded as a change request for another top-tier person (four eyes)"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_state(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<CaStateRequest>,
) -> Result<Json<CaPolicyView>, ApiError> {
    Ok(Json(svc::set_state(&state, &caller, &name, req).await?))
}

/// Named locations and the policies that use them.
#[utoipa::path(get, path = "/api/v1/ca/locations", tag = "conditional_access", security(("bearer" = [])),
    responses((status = 200, body = Vec<CaLocationView>), (status = 403, body = ErrorBody)))]
pub async fn locations(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CaLocationView>>, ApiError> {
    Ok(Json(svc::list_locations(&state, &caller).await?))
}

/// Create or replace a named location (lockout-guarded: a policy may use it).
#[utoipa::path(post, path = "/api/v1/ca/locations", tag = "conditional_access", security(("bearer" = [])), request_body = CaLocationRequest,
    responses((status = 200, body = CaLocationView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_location(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CaLocationRequest>,
) -> Result<Json<CaLocationView>, ApiError> {
    Ok(Json(svc::set_location(&state, &caller, req).await?))
}

/// Remove a named location; refused while a policy uses it.
#[utoipa::path(delete, path = "/api/v1/ca/locations/{name}", tag = "conditional_access", security(("bearer" = [])),
    params(("name" = String, Path, description = "location name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_location(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::remove_location(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the policies would decide for a sign-in, with an explanation per policy.
#[utoipa::path(post, path = "/api/v1/ca/whatif", tag = "conditional_access", security(("bearer" = [])), request_body = WhatIfRequest,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn what_if(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<WhatIfRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(svc::what_if(&state, &caller, req).await?))
}
