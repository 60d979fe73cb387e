//! Role routes: roles and their settings, assignments, activation requests and decisions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    ActivationRequestView, AssignmentView, CreateActivationRequest, CreateAssignmentRequest,
    CreateRoleRequest, DecisionRequest, ExtendActivationRequest, MakeEligibleRequest,
    RoleSettingsUpdate, RoleSettingsView, RoleView,
};
use serde::Deserialize;

use crate::http::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::services::caller::Caller;
use crate::services::roles as svc;
use crate::state::AppState;

/// Every role (built-in and custom) with its permissions.
#[utoipa::path(get, path = "/api/v1/roles", tag = "roles", security(("bearer" = [])),
    responses((status = 200, body = Vec<RoleView>), (status = 401, body = ErrorBody)))]
pub async fn list_roles(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<Vec<RoleView>>, ApiError> {
    Ok(Json(svc::list_roles(&state).await?))
}

/// Create a custom role.
#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", security(("bearer" = [])), request_body = CreateRoleRequest,
    responses((status = 201, body = RoleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateRoleRequest>,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_role(&state, &caller, req).await?),
    ))
}

/// Show a role.
#[utoipa::path(get, path = "/api/v1/roles/{role}", tag = "roles", security(("bearer" = [])),
    params(("role" = String, Path, description = "role name")),
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody)))]
pub async fn get_role(
    State(state): State<AppState>,
    _caller: Caller,
    Path(role): Path<String>,
) -> Result<Json<RoleView>, ApiError> {
    Ok(Json(svc::get_role(&state, &role).await?))
}

/// Delete a custom role (refused while assigned; the error lists the assignments).
#[utoipa::path(delete, path = "/api/v1/roles/{role}", tag = "roles", security(("bearer" = [])),
    params(("role" = String, Path, description = "role name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(role): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::delete_role(&state, &caller, &role).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A role's settings.
#[utoipa::path(get, path = "/api/v1/roles/{role}/settings", tag = "roles", security(("bearer" = [])),
    params(("role" = String, Path, description = "role name")),
    responses((status = 200, body = RoleSettingsView), (status = 404, body = ErrorBody)))]
pub async fn get_settings(
    State(state): State<AppState>,
    _caller: Caller,
    Path(role): Path<String>,
) -> Result<Json<RoleSettingsView>, ApiError> {
    Ok(Json(svc::get_settings(&state, &role).await?))
}

/// Change a role's settings (only the fields given).
#[utoipa::path(put, path = "/api/v1/roles/{role}/settings", tag = "roles", security(("bearer" = [])), request_body = RoleSettingsUpdate,
    params(("role" = String, Path, description = "role name")),
    responses((status = 200, body = RoleSettingsView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "refused, or `change_pending`: the change weakens a privileged role and was recorded as a change request for another top-tier person (four eyes)"),
        (status = 404, body = ErrorBody)))]
pub async fn update_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(role): Path<String>,
    ApiJson(req): ApiJson<RoleSettingsUpdate>,
) -> Result<Json<RoleSettingsView>, ApiError> {
    Ok(Json(
        svc::update_settings(&state, &caller, &role, req).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AssignmentQuery {
    /// `NAME` or `user:NAME`, `group:NAME`, `service_account:NAME`.
    pub principal: Option<String>,
    pub role: Option<String>,
}

/// Live assignments (your own without a permission; everyone's with `assignments.read`).
#[utoipa::path(get, path = "/api/v1/assignments", tag = "roles", security(("bearer" = [])), params(AssignmentQuery),
    responses((status = 200, body = Vec<AssignmentView>), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "the principal filter names nobody")))]
pub async fn list_assignments(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AssignmentQuery>,
) -> Result<Json<Vec<AssignmentView>>, ApiError> {
    Ok(Json(
        svc::list_assignments(&state, &caller, q.principal.as_deref(), q.role.as_deref()).await?,
    ))
}

/// Assign a role, eligible or active, at a scope.
#[utoipa::path(post, path = "/api/v1/assignments", tag = "roles", security(("bearer" = [])), request_body = CreateAssignmentRequest,
    responses((status = 201, body = AssignmentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_assignment(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateAssignmentRequest>,
) -> Result<(StatusCode, Json<AssignmentView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_assignment(&state, &caller, req).await?),
    ))
}

/// Remove an assignment (its pending requests are cancelled, its active grants revoked).
#[utoipa::path(delete, path = "/api/v1/assignments/{id}", tag = "roles", security(("bearer" = [])),
    params(("id" = String, Path, description = "assignment id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_assignment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::delete_assignment(&state, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turn a live active assignment into an eligible one (the holder may do it for themselves).
#[utoipa::path(post, path = "/api/v1/assignments/{id}/make-eligible", tag = "roles", security(("bearer" = [])),
    params(("id" = String, Path, description = "assignment id")), request_body = MakeEligibleRequest,
    responses((status = 200, body = AssignmentView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn make_eligible(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MakeEligibleRequest>,
) -> Result<Json<AssignmentView>, ApiError> {
    Ok(Json(svc::make_eligible(&state, &caller, &id, req).await?))
}

/// Ask to activate an eligible role.
#[utoipa::path(post, path = "/api/v1/requests", tag = "roles", security(("bearer" = [])), request_body = CreateActivationRequest,
    responses((status = 201, body = ActivationRequestView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "the role requires approval but names no approver")))]
pub async fn create_request(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateActivationRequest>,
) -> Result<(StatusCode, Json<ActivationRequestView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_request(&state, &caller, req).await?),
    ))
}

/// Ask for more time on your own active activation, before it ends (same approval rules; the
/// activation keeps its end until the extension is decided).
#[utoipa::path(post, path = "/api/v1/requests/{id}/extend", tag = "roles", security(("bearer" = [])), request_body = ExtendActivationRequest,
    params(("id" = String, Path, description = "the active request to extend")),
    responses((status = 201, body = ActivationRequestView, description = "the extension: `applied`, or `pending_approval`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not active any more, or an extension is waiting already")))]
pub async fn extend_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExtendActivationRequest>,
) -> Result<(StatusCode, Json<ActivationRequestView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::extend(&state, &caller, &id, req).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    /// `mine` (default), `to_approve` or `all` (needs `requests.read`).
    pub view: Option<String>,
    pub state: Option<String>,
}

/// Activation requests.
#[utoipa::path(get, path = "/api/v1/requests", tag = "roles", security(("bearer" = [])), params(RequestQuery),
    responses((status = 200, body = Vec<ActivationRequestView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> Result<Json<Vec<ActivationRequestView>>, ApiError> {
    Ok(Json(
        svc::list_requests(
            &state,
            &caller,
            q.view.as_deref().unwrap_or("mine"),
            q.state.as_deref(),
        )
        .await?,
    ))
}

/// Show a request (the requester's, an approver's, or with `requests.read`).
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "roles", security(("bearer" = [])),
    params(("id" = String, Path, description = "request id")),
    responses((status = 200, body = ActivationRequestView), (status = 404, body = ErrorBody)))]
pub async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ActivationRequestView>, ApiError> {
    Ok(Json(svc::get_request(&state, &caller, &id).await?))
}

macro_rules! request_action {
    ($name:ident, $path:literal, $doc:literal, $body:expr) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "roles", security(("bearer" = [])), request_body = DecisionRequest,
            params(("id" = String, Path, description = "request id")),
            responses((status = 200, body = ActivationRequestView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
                      (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
        pub async fn $name(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, ApiJson(d): ApiJson<DecisionRequest>) -> Result<Json<ActivationRequestView>, ApiError> {
            let f = $body;
            Ok(Json(f(&state, &caller, &id, d).await?))
        }
    };
}

async fn do_approve(
    s: &AppState,
    c: &Caller,
    id: &str,
    d: DecisionRequest,
) -> Result<ActivationRequestView, ApiError> {
    svc::decide(s, c, id, true, d).await
}
async fn do_deny(
    s: &AppState,
    c: &Caller,
    id: &str,
    d: DecisionRequest,
) -> Result<ActivationRequestView, ApiError> {
    svc::decide(s, c, id, false, d).await
}
async fn do_cancel(
    s: &AppState,
    c: &Caller,
    id: &str,
    d: DecisionRequest,
) -> Result<ActivationRequestView, ApiError> {
    svc::close(s, c, id, svc::CloseAction::Cancel, d).await
}
async fn do_deactivate(
    s: &AppState,
    c: &Caller,
    id: &str,
    d: DecisionRequest,
) -> Result<ActivationRequestView, ApiError> {
    svc::close(s, c, id, svc::CloseAction::Deactivate, d).await
}
async fn do_revoke(
    s: &AppState,
    c: &Caller,
    id: &str,
    d: DecisionRequest,
) -> Result<ActivationRequestView, ApiError> {
    svc::close(s, c, id, svc::CloseAction::Revoke, d).await
}

request_action!(
    approve,
    "/api/v1/requests/{id}/approve",
    "Approve a pending request (listed approvers; never your own).",
    do_approve
);
request_action!(
    deny,
    "/api/v1/requests/{id}/deny",
    "Deny a pending request (a reason is required).",
    do_deny
);
request_action!(
    cancel,
    "/api/v1/requests/{id}/cancel",
    "Cancel your own pending request.",
    do_cancel
);
request_action!(
    deactivate,
    "/api/v1/requests/{id}/deactivate",
    "End your own active grant early.",
    do_deactivate
);
request_action!(
    revoke,
    "/api/v1/requests/{id}/revoke",
    "End someone's active grant (`requests.revoke`; a reason is required).",
    do_revoke
);
