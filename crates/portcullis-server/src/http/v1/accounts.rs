//! Account administration routes: users, groups, service accounts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    ContainRequest, ContainmentView, CreateGroupRequest, CreateServiceAccountRequest,
    CreateUserRequest, GroupMemberRequest, GroupView, ReleaseRequest, ServiceAccountView,
    SessionView, UserView,
};
use portcullis_core::principal::PrincipalKind;
use portcullis_core::roles::perm;

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::accounts as svc;
use crate::services::caller::Caller;
use crate::state::AppState;

/// Create a user (member or guest) with an initial password.
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_user(&state, &caller, req).await?),
    ))
}

/// List users.
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<UserView>>, ApiError> {
    Ok(Json(svc::list_users(&state, &caller).await?))
}

/// Show a user.
#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    caller.require(perm::USERS_READ)?;
    let p = svc::get_principal(&state, &name, PrincipalKind::User).await?;
    Ok(Json(svc::user_view(&state, &p).await?))
}

/// Disable a user: sign-in stops and every session is revoked at once.
#[utoipa::path(post, path = "/api/v1/users/{name}/disable", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn disable_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        svc::set_user_enabled(&state, &caller, &name, false).await?,
    ))
}

/// Enable a user.
#[utoipa::path(post, path = "/api/v1/users/{name}/enable", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        svc::set_user_enabled(&state, &caller, &name, true).await?,
    ))
}

/// A user's live sessions (administrators).
#[utoipa::path(get, path = "/api/v1/users/{name}/sessions", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = Vec<SessionView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn user_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    caller.require(perm::SESSIONS_READ)?;
    Ok(Json(
        crate::services::signin::list_sessions(&state, &caller, Some(&name)).await?,
    ))
}

/// Create a group.
#[utoipa::path(post, path = "/api/v1/groups", tag = "accounts", security(("bearer" = [])), request_body = CreateGroupRequest,
    responses((status = 201, body = GroupView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateGroupRequest>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::create_group(&state, &caller, req).await?),
    ))
}

/// List groups with their members.
#[utoipa::path(get, path = "/api/v1/groups", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Vec<GroupView>), (status = 403, body = ErrorBody)))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    Ok(Json(svc::list_groups(&state, &caller).await?))
}

/// Add a member to a group.
#[utoipa::path(post, path = "/api/v1/groups/{name}/members", tag = "accounts", security(("bearer" = [])), request_body = GroupMemberRequest,
    params(("name" = String, Path, description = "group name")),
    responses((status = 200, body = GroupView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<GroupMemberRequest>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(
        svc::change_membership(&state, &caller, &name, &req.member, true).await?,
    ))
}

/// Remove a member from a group.
#[utoipa::path(delete, path = "/api/v1/groups/{name}/members/{member}", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "group name"), ("member" = String, Path, description = "member name")),
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, member)): Path<(String, String)>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(
        svc::change_membership(&state, &caller, &name, &member, false).await?,
    ))
}

/// Create a service-account record (credentials arrive with the token service).
#[utoipa::path(post, path = "/api/v1/service-accounts", tag = "accounts", security(("bearer" = [])), request_body = CreateServiceAccountRequest,
    responses((status = 201, body = ServiceAccountView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_service_account(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateServiceAccountRequest>,
) -> Result<(StatusCode, Json<ServiceAccountView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(
            crate::services::service_accounts::create_service_account(&state, &caller, req).await?,
        ),
    ))
}

/// List service accounts.
#[utoipa::path(get, path = "/api/v1/service-accounts", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = Vec<ServiceAccountView>), (status = 403, body = ErrorBody)))]
pub async fn list_service_accounts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ServiceAccountView>>, ApiError> {
    Ok(Json(
        crate::services::service_accounts::list_service_accounts(&state, &caller).await?,
    ))
}

/// Contain a user or service account in one step: disabled, and every session, refresh token,
/// access token, pending request, active grant and target grant cut in one transaction, with a
/// critical alert. Needs a fresh proof (step-up).
#[utoipa::path(post, path = "/api/v1/principals/{name}/contain", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "user or service account name")),
    request_body = ContainRequest,
    responses((status = 200, body = ContainmentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn contain_principal(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ContainRequest>,
) -> Result<Json<ContainmentView>, ApiError> {
    Ok(Json(
        crate::services::containment::contain(&state, &caller, &name, req).await?,
    ))
}

/// End a containment: the account is enabled again; nothing it held comes back.
#[utoipa::path(post, path = "/api/v1/principals/{name}/release", tag = "accounts", security(("bearer" = [])),
    params(("name" = String, Path, description = "user or service account name")),
    request_body = ReleaseRequest,
    responses((status = 200, body = ContainmentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn release_principal(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> Result<Json<ContainmentView>, ApiError> {
    Ok(Json(
        crate::services::containment::release(&state, &caller, &name, req).await?,
    ))
}
