//! The audit log over the API: list with filters, verify the chain (and prove anchored
//! checkpoints are still held), request a checkpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::api::{
    CheckpointCreated, CheckpointRequest, EventPage, VerifyRequest, VerifyResult,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::services::audit;
use crate::services::caller::Caller;
use crate::state::AppState;

/// Filters for `GET /api/v1/audit/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// `success` or `failure`.
    pub outcome: Option<String>,
    /// RFC 3339 time, inclusive.
    pub since: Option<String>,
    /// RFC 3339 time, exclusive.
    pub until: Option<String>,
    /// Only events after this sequence number (paging).
    pub after: Option<i64>,
    /// At most this many events (1–1000, default 100).
    pub limit: Option<i64>,
}

impl From<EventQuery> for audit::EventQuery {
    fn from(q: EventQuery) -> Self {
        Self {
            actor: q.actor,
            action: q.action,
            target: q.target,
            outcome: q.outcome,
            since: q.since,
            until: q.until,
            after: q.after,
            limit: q.limit,
        }
    }
}

/// List audit events, oldest first.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", params(EventQuery),
    security(("bearer" = [])),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    audit::list_events(&state, &caller, q.into())
        .await
        .map(Json)
}

/// Walk the whole audit chain, the chain of signed checkpoints and the cadence rules (no more
/// events or time after the last checkpoint than it allows).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = VerifyResult), (status = 401, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<VerifyResult>, ApiError> {
    audit::verify(&state, &caller).await.map(Json)
}

/// Verify as `GET` does, and prove that the database still holds the given anchored
/// checkpoints (lines of an `audit_anchor_file`): each must be there, identical, and reached by
/// the chain, so history up to the newest of them cannot have been deleted.
#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyResult), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn verify_anchored(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResult>, ApiError> {
    audit::verify_anchored(&state, &caller, body)
        .await
        .map(Json)
}

/// Write a signed checkpoint now (e.g. before a backup or an export).
#[utoipa::path(post, path = "/api/v1/audit/checkpoints", tag = "audit", security(("bearer" = [])),
    request_body = CheckpointRequest,
    responses((status = 201, body = CheckpointCreated), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn create_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CheckpointRequest>,
) -> Result<(StatusCode, Json<CheckpointCreated>), ApiError> {
    let created = audit::create_checkpoint(&state, &caller, &body.reason).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The posture report: findings with severity, evidence and the fix (CISA SCuBA MS.AAD.7.1–7.9
/// as they apply here, and PIM's alerts).
#[utoipa::path(get, path = "/api/v1/posture", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = portcullis_core::api::PostureReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn posture(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<portcullis_core::api::PostureReport>, ApiError> {
    Ok(Json(
        crate::services::posture::report(&state, &caller).await?,
    ))
}
