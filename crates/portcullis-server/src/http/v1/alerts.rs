//! Alert channels and the state of alert deliveries.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use portcullis_core::api::{
    AlertChannelView, AlertRuleView, AlertView, CreateAlertChannelRequest, CreateAlertRuleRequest,
};

use crate::http::error::{ApiError, ApiJson, ErrorBody};
use crate::services::alerts as svc;
use crate::services::caller::Caller;
use crate::state::AppState;

/// Add an alert channel (email, webhook or SMS).
#[utoipa::path(post, path = "/api/v1/alerts/channels", tag = "alerts", security(("bearer" = [])), request_body = CreateAlertChannelRequest,
    responses((status = 201, body = AlertChannelView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_channel(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateAlertChannelRequest>,
) -> Result<(StatusCode, Json<AlertChannelView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::add_channel(&state, &caller, req).await?),
    ))
}

/// List alert channels (no secrets).
#[utoipa::path(get, path = "/api/v1/alerts/channels", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = Vec<AlertChannelView>), (status = 403, body = ErrorBody)))]
pub async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AlertChannelView>>, ApiError> {
    Ok(Json(svc::list_channels(&state, &caller).await?))
}

/// Ask to remove an alert channel. Every channel receives critical alerts, so the removal is
/// recorded as a change request (`change_pending`) that another top-tier person approves (or
/// that takes effect after the cooling-off); its undelivered messages are then dead-lettered.
#[utoipa::path(delete, path = "/api/v1/alerts/channels/{name}", tag = "alerts", security(("bearer" = [])),
    params(("name" = String, Path, description = "channel name")),
    responses((status = 204), (status = 403, body = ErrorBody, description = "refused, or `change_pending`: recorded as a change request for another top-tier person (four eyes)"), (status = 404, body = ErrorBody)))]
pub async fn remove_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::remove_channel(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queue a test message on a channel; follow it with `GET /api/v1/alerts/{id}`.
#[utoipa::path(post, path = "/api/v1/alerts/channels/{name}/test", tag = "alerts", security(("bearer" = [])),
    params(("name" = String, Path, description = "channel name")),
    responses((status = 202, body = AlertView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn test_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<AlertView>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(svc::test_channel(&state, &caller, &name).await?),
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `pending`, `delivered` or `dead`.
    pub state: Option<String>,
}

/// Alerts and notifications with their delivery state, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", security(("bearer" = [])), params(AlertQuery),
    responses((status = 200, body = Vec<AlertView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    Ok(Json(svc::list(&state, &caller, q.state.as_deref()).await?))
}

/// One alert with every delivery attempt.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, body = AlertView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    Ok(Json(svc::show(&state, &caller, &id).await?))
}

/// Put a dead-lettered alert back in the queue with a fresh budget of attempts.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/retry", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, body = AlertView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertView>, ApiError> {
    Ok(Json(svc::retry(&state, &caller, &id).await?))
}

/// Alert rules: the built-in ones (cannot be removed) and the custom ones.
#[utoipa::path(get, path = "/api/v1/alerts/rules", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = Vec<AlertRuleView>), (status = 403, body = ErrorBody)))]
pub async fn list_rules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AlertRuleView>>, ApiError> {
    Ok(Json(svc::list_rules(&state, &caller).await?))
}

/// Add a custom rule: N events of an action for one target (or actor) within a window.
#[utoipa::path(post, path = "/api/v1/alerts/rules", tag = "alerts", security(("bearer" = [])), request_body = CreateAlertRuleRequest,
    responses((status = 201, body = AlertRuleView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_rule(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateAlertRuleRequest>,
) -> Result<(StatusCode, Json<AlertRuleView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(svc::add_rule(&state, &caller, req).await?),
    ))
}

/// Remove a custom rule (built-in rules cannot be removed).
#[utoipa::path(delete, path = "/api/v1/alerts/rules/{name}", tag = "alerts", security(("bearer" = [])),
    params(("name" = String, Path, description = "rule name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::remove_rule(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
