//! Targets, role bindings, target operations, observation and reconciliation.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    BindRoleRequest, CreateTargetRequest, SetTargetAccountRequest, TargetAccountView,
    TargetBindingView, TargetCredentialsView, TargetObservationView, TargetOpView,
    TargetReconcileView, TargetTestView, TargetView,
};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::caller::Caller;
use crate::services::targets as svc;
use crate::state::AppState;

/// Add a target (PostgreSQL or webhook). A webhook's generated HMAC key is in this answer only.
#[utoipa::path(post, path = "/api/v1/targets", tag = "targets", security(("bearer" = [])), request_body = CreateTargetRequest,
    responses((status = 201, body = TargetView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTargetRequest>,
) -> Result<(StatusCode, Json<TargetView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::add(&state, &caller, req).await?),
    ))
}

/// List targets with their bindings (no secrets).
#[utoipa::path(get, path = "/api/v1/targets", tag = "targets", security(("bearer" = [])),
    responses((status = 200, body = Vec<TargetView>), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TargetView>>, ApiError> {
    Ok(Json(svc::list(&state, &caller).await?))
}

/// One target with its bindings.
#[utoipa::path(get, path = "/api/v1/targets/{name}", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name")),
    responses((status = 200, body = TargetView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TargetView>, ApiError> {
    Ok(Json(svc::show(&state, &caller, &name).await?))
}

/// Remove a target (refused while a role is bound to it or an operation is pending).
#[utoipa::path(delete, path = "/api/v1/targets/{name}", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::remove(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check the connection and every right the target's bindings name.
#[utoipa::path(post, path = "/api/v1/targets/{name}/test", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name")),
    responses((status = 200, body = TargetTestView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TargetTestView>, ApiError> {
    Ok(Json(svc::test(&state, &caller, &name).await?))
}

/// What the target holds now of the rights Portcullis manages there: missing and drift.
#[utoipa::path(get, path = "/api/v1/targets/{name}/observe", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name")),
    responses((status = 200, body = TargetObservationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn observe(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TargetObservationView>, ApiError> {
    Ok(Json(svc::observe(&state, &caller, &name).await?))
}

/// Reconcile now: re-apply what is missing, report drift (and revert it in `revert` mode).
#[utoipa::path(post, path = "/api/v1/targets/{name}/reconcile", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name")),
    responses((status = 200, body = TargetReconcileView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn reconcile(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TargetReconcileView>, ApiError> {
    Ok(Json(svc::reconcile(&state, &caller, &name).await?))
}

/// Bind a role to the target: its activations and active assignments at `/targets/NAME`
/// grant these rights there.
#[utoipa::path(put, path = "/api/v1/targets/{name}/bindings/{role}", tag = "targets", security(("bearer" = [])), request_body = BindRoleRequest,
    params(("name" = String, Path, description = "target name"), ("role" = String, Path, description = "role")),
    responses((status = 200, body = TargetBindingView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn bind(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, role)): Path<(String, String)>,
    ApiJson(req): ApiJson<BindRoleRequest>,
) -> Result<Json<TargetBindingView>, ApiError> {
    Ok(Json(svc::bind(&state, &caller, &name, &role, req).await?))
}

/// Remove a binding; what it granted is revoked.
#[utoipa::path(delete, path = "/api/v1/targets/{name}/bindings/{role}", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name"), ("role" = String, Path, description = "role")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unbind(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, role)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    svc::unbind(&state, &caller, &name, &role).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The accounts principals have of their own at the target (used instead of its login
/// template).
#[utoipa::path(get, path = "/api/v1/targets/{name}/accounts", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name")),
    responses((status = 200, body = Vec<TargetAccountView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn accounts(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<TargetAccountView>>, ApiError> {
    Ok(Json(svc::accounts::list(&state, &caller, &name).await?))
}

/// Set a principal's own account at the target (an Entra UPN or object id, a database
/// login), checked at the target first; refused while the principal holds grants there.
#[utoipa::path(put, path = "/api/v1/targets/{name}/accounts/{principal}", tag = "targets", security(("bearer" = [])), request_body = SetTargetAccountRequest,
    params(("name" = String, Path, description = "target name"), ("principal" = String, Path, description = "person or service account")),
    responses((status = 200, body = TargetAccountView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn set_account(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, principal)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetTargetAccountRequest>,
) -> Result<Json<TargetAccountView>, ApiError> {
    Ok(Json(
        svc::accounts::set(&state, &caller, &name, &principal, req).await?,
    ))
}

/// Remove a principal's own account at the target: its login template applies again.
#[utoipa::path(delete, path = "/api/v1/targets/{name}/accounts/{principal}", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name"), ("principal" = String, Path, description = "person or service account")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_account(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, principal)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    svc::accounts::remove(&state, &caller, &name, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OpsQuery {
    /// Only this target's operations.
    pub target: Option<String>,
    /// `pending`, `applied`, `dead` or `superseded`.
    pub state: Option<String>,
}

/// Target operations, newest first (at most 500).
#[utoipa::path(get, path = "/api/v1/target-ops", tag = "targets", security(("bearer" = [])), params(OpsQuery),
    responses((status = 200, body = Vec<TargetOpView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn ops(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<OpsQuery>,
) -> Result<Json<Vec<TargetOpView>>, ApiError> {
    Ok(Json(
        svc::ops(&state, &caller, q.target.as_deref(), q.state.as_deref()).await?,
    ))
}

/// One target operation with every attempt.
#[utoipa::path(get, path = "/api/v1/target-ops/{id}", tag = "targets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "operation id")),
    responses((status = 200, body = TargetOpView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn op(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TargetOpView>, ApiError> {
    Ok(Json(svc::op(&state, &caller, op_id(&id)?).await?))
}

/// Give a dead-lettered operation a fresh budget of attempts.
#[utoipa::path(post, path = "/api/v1/target-ops/{id}/retry", tag = "targets", security(("bearer" = [])),
    params(("id" = i64, Path, description = "operation id")),
    responses((status = 200, body = TargetOpView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TargetOpView>, ApiError> {
    Ok(Json(svc::retry(&state, &caller, op_id(&id)?).await?))
}

/// An operation id from the path: a number, or no such operation (in the API's error shape).
fn op_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::not_found(format!(
            "no target operation {}",
            id.chars().take(40).collect::<String>()
        ))
    })
}

/// The login your dynamic grant at the target created, once (a fresh proof of identity needed:
/// `POST /api/v1/me/reauth` first if the session's factor is older than five minutes).
#[utoipa::path(post, path = "/api/v1/targets/{name}/credentials", tag = "targets", security(("bearer" = [])),
    params(("name" = String, Path, description = "target name")),
    responses((status = 200, body = TargetCredentialsView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn credentials(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TargetCredentialsView>, ApiError> {
    Ok(Json(svc::credentials(&state, &caller, &name).await?))
}
