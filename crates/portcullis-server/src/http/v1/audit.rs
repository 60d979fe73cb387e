//! The audit log over the API: list with filters, verify the chain (and prove anchored
//! checkpoints are still held), request a checkpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::api::{
    CheckpointCreated, CheckpointRequest, EventPage, MAX_VERIFY_ANCHORS, VerifyRequest,
    VerifyResult,
};
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::roles::perm;
use portcullis_store::{AuditFilter, Change};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::IntoParams;

use crate::http::error::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::services::caller::Caller;
use crate::state::AppState;

/// Filters for `GET /api/v1/audit/events`.
#[derive(Debug, Deserialize, IntoParams)]
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

fn parse_time(name: &str, v: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(v, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000) as i64)
        .map_err(|_| ApiError::bad_request(format!("{name} must be an RFC 3339 time")))
}

fn bounded(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.is_empty() || s.len() > 256 => Err(ApiError::bad_request(format!(
            "{name} must be 1 to 256 characters"
        ))),
        other => Ok(other),
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
    caller.require_bootstrap_or(perm::AUDIT_READ)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some(s) => Some(
            Outcome::parse(s)
                .ok_or_else(|| ApiError::bad_request("outcome must be success or failure"))?,
        ),
    };
    let filter = AuditFilter {
        actor: bounded("actor", q.actor)?,
        action: bounded("action", q.action)?,
        target: bounded("target", q.target)?,
        outcome,
        since_us: q
            .since
            .as_deref()
            .map(|v| parse_time("since", v))
            .transpose()?,
        until_us: q
            .until
            .as_deref()
            .map(|v| parse_time("until", v))
            .transpose()?,
        after_seq: q.after,
        limit,
    };
    let events = state.store.list_events(&filter).await?;
    let next_after = if events.len() as i64 == limit {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(Json(EventPage {
        events: events.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

/// Walk the whole audit chain, the chain of signed checkpoints and the cadence rules (no more
/// events or time after the last checkpoint than it allows).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = VerifyResult), (status = 401, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<VerifyResult>, ApiError> {
    caller.require_bootstrap_or(perm::AUDIT_READ)?;
    let v = state.store.verify(&[]).await?;
    Ok(Json(VerifyResult::from_verification(v)))
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
    caller.require_bootstrap_or(perm::AUDIT_READ)?;
    if body.anchors.len() > MAX_VERIFY_ANCHORS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_VERIFY_ANCHORS} anchors per request (the newest anchored checkpoint pins everything before it)"
        )));
    }
    let mut anchors = Vec::with_capacity(body.anchors.len());
    for (i, record) in body.anchors.iter().enumerate() {
        let cp = record
            .checkpoint(i + 1)
            .map_err(|e| ApiError::bad_request(format!("anchors: {e}")))?;
        anchors.push(cp);
    }
    let v = state.store.verify(&anchors).await?;
    Ok(Json(VerifyResult::from_verification(v)))
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
    caller.require_bootstrap_or(perm::AUDIT_CHECKPOINT)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::bad_request("reason must be 1 to 500 characters"));
    }
    let event = NewAuditEvent::new(caller.actor(), "audit.checkpoint_requested", "audit")
        .details(serde_json::json!({ "reason": reason }));
    let mut events = state
        .store
        .write(Change::ForceCheckpoint, vec![event])
        .await?;
    let e = events
        .pop()
        .ok_or_else(|| ApiError::internal("writer returned no event"))?;
    Ok((
        StatusCode::CREATED,
        Json(CheckpointCreated {
            seq: e.seq,
            hash: hex::encode(e.hash),
        }),
    ))
}
