//! The audit log over the API: list with filters, verify the chain, request a checkpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use portcullis_core::audit::{AuditEvent, ChainFault, ChainReport, NewAuditEvent, Outcome};
use portcullis_store::{AuditFilter, Change};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery, ErrorBody};

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

/// One audit event as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    pub seq: i64,
    /// RFC 3339, UTC, microsecond precision.
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            time: e.time().format(&Rfc3339).unwrap_or_default(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            details: e.details,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<AuditEventView>,
    /// Pass as `after` to get the next page; absent at the end.
    pub next_after: Option<i64>,
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
    _caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
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
        since_us: q.since.as_deref().map(|v| parse_time("since", v)).transpose()?,
        until_us: q.until.as_deref().map(|v| parse_time("until", v)).transpose()?,
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

/// Result of walking the chain.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResult {
    /// True when every link and checkpoint is intact.
    pub ok: bool,
    /// Events walked (when ok).
    pub events: Option<i64>,
    pub last_hash: Option<String>,
    /// Signed checkpoints matched along the way.
    pub checkpoints: Option<usize>,
    /// First bad sequence number (when not ok).
    pub first_bad_seq: Option<i64>,
    /// What is wrong there.
    pub problem: Option<String>,
}

impl VerifyResult {
    pub fn from_outcome(r: Result<ChainReport, ChainFault>) -> Self {
        match r {
            Ok(rep) => Self {
                ok: true,
                events: Some(rep.events),
                last_hash: Some(rep.last_hash),
                checkpoints: Some(rep.checkpoints),
                first_bad_seq: None,
                problem: None,
            },
            Err(f) => Self {
                ok: false,
                events: None,
                last_hash: None,
                checkpoints: None,
                first_bad_seq: Some(f.seq()),
                problem: Some(f.to_string()),
            },
        }
    }
}

/// Walk the whole audit chain and its signed checkpoints.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = VerifyResult), (status = 401, body = ErrorBody)))]
pub async fn verify(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<VerifyResult>, ApiError> {
    let outcome = state.store.verify_chain().await?;
    Ok(Json(VerifyResult::from_outcome(outcome)))
}

/// Body of `POST /api/v1/audit/checkpoints`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRequest {
    /// Why (recorded in the audit event), e.g. "before backup".
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointCreated {
    /// Sequence number of the audit event recording the request; the checkpoint covers it.
    pub seq: i64,
    pub hash: String,
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
