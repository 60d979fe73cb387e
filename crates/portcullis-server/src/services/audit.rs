//! The audit log without HTTP: listing events with filters, reading one event, verifying the
//! chain (optionally proving anchored checkpoints are still held), the newest checkpoint, and
//! requesting a checkpoint now.
//!
//! Invariants: only the bootstrap token or a caller holding `audit.read` may read the log or
//! verify it (`audit.checkpoint` to request a checkpoint); a bad filter or request (limit out
//! of 1–1000, unknown outcome, a time that is not RFC 3339, an empty or over-long string, too
//! many or malformed anchors) is `invalid_request` with a message naming the field, and is
//! refused before anything is read; a checkpoint request is itself audited.

use portcullis_core::api::{
    AuditEventView, CheckpointCreated, CheckpointView, EventPage, MAX_VERIFY_ANCHORS,
    VerifyRequest, VerifyResult,
};
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::roles::perm;
use portcullis_store::{AuditFilter, Change};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::services::caller::Caller;
use crate::state::AppState;
use crate::time_us::rfc3339;

/// Filters for listing audit events; every field is optional.
#[derive(Debug, Default, Clone)]
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

/// Audit events matching `q`, oldest first; `next_after` is set when the page is full.
pub async fn list_events(
    state: &AppState,
    caller: &Caller,
    q: EventQuery,
) -> Result<EventPage, ApiError> {
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
    Ok(EventPage {
        events: events.into_iter().map(Into::into).collect(),
        next_after,
    })
}

/// One audit event by its sequence number; `not_found` when there is none.
pub async fn event(
    state: &AppState,
    caller: &Caller,
    seq: i64,
) -> Result<AuditEventView, ApiError> {
    caller.require_bootstrap_or(perm::AUDIT_READ)?;
    let filter = AuditFilter {
        after_seq: Some(seq.saturating_sub(1)),
        limit: 1,
        ..AuditFilter::default()
    };
    state
        .store
        .list_events(&filter)
        .await?
        .into_iter()
        .next()
        .filter(|e| e.seq == seq)
        .map(Into::into)
        .ok_or_else(|| ApiError::not_found(format!("no audit event {seq}")))
}

/// Walk the whole chain, the chain of signed checkpoints and the cadence rules.
pub async fn verify(state: &AppState, caller: &Caller) -> Result<VerifyResult, ApiError> {
    caller.require_bootstrap_or(perm::AUDIT_READ)?;
    let v = state.store.verify(&[]).await?;
    Ok(VerifyResult::from_verification(v))
}

/// Verify as [`verify`] does, and prove that the database still holds the given anchored
/// checkpoints (at most [`MAX_VERIFY_ANCHORS`]).
pub async fn verify_anchored(
    state: &AppState,
    caller: &Caller,
    body: VerifyRequest,
) -> Result<VerifyResult, ApiError> {
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
    Ok(VerifyResult::from_verification(v))
}

/// The newest signed checkpoint, if any has been written.
pub async fn newest_checkpoint(
    state: &AppState,
    caller: &Caller,
) -> Result<Option<CheckpointView>, ApiError> {
    caller.require_bootstrap_or(perm::AUDIT_READ)?;
    Ok(state
        .store
        .newest_checkpoint()
        .await?
        .map(|(cp, created_at_us)| CheckpointView {
            seq: cp.seq,
            hash: hex::encode(cp.hash),
            created_at: rfc3339(created_at_us),
        }))
}

/// Write a signed checkpoint now, recording why (1 to 500 characters) in the audit event it
/// covers.
pub async fn create_checkpoint(
    state: &AppState,
    caller: &Caller,
    reason: &str,
) -> Result<CheckpointCreated, ApiError> {
    caller.require_bootstrap_or(perm::AUDIT_CHECKPOINT)?;
    let reason = reason.trim();
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
    Ok(CheckpointCreated {
        seq: e.seq,
        hash: hex::encode(e.hash),
    })
}
