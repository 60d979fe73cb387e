//! Small helpers every service uses (ids, error shortcuts, the sign-in audit event). Imports
//! no service but the caller's types, so using it ties no service to another.

use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::error::ErrorCode;
use portcullis_store::StoreError;
use rand::RngCore;

use crate::error::ApiError;
use crate::services::caller::ClientInfo;

/// A fresh random identifier with a kind prefix, e.g. `u_3f…`.
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}

pub fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(e.to_string())
}

pub fn conflict_to_exists(e: StoreError, what: &str) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::new(ErrorCode::AlreadyExists, what.to_owned()),
        other => other.into(),
    }
}

/// The end of every command: a write whose conflict (the world was not as the command
/// expected: a race lost, a row gone) means something to the caller, and whose other
/// failures pass through as they are.
pub trait ConflictExt<T> {
    /// `conflict()` when the write conflicted; any other store error unchanged.
    fn on_conflict(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError>;
}

impl<T> ConflictExt<T> for Result<T, StoreError> {
    fn on_conflict(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            StoreError::Conflict(_) => conflict(),
            other => other.into(),
        })
    }
}

/// An audit event of a sign-in step for `name`: the reason, the client's address and agent,
/// and `extra` details.
pub fn signin_event(
    name: &str,
    action: &str,
    outcome: Outcome,
    reason: &str,
    client: &ClientInfo,
    extra: serde_json::Value,
) -> NewAuditEvent {
    let mut details = serde_json::json!({ "reason": reason, "client_ip": client.ip, "user_agent": client.user_agent });
    if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    if outcome == Outcome::Failure {
        signin_failed(reason);
    }
    NewAuditEvent::new(format!("user:{name}"), action, format!("user:{name}"))
        .outcome(outcome)
        .details(details)
}

/// Counts a failed sign-in step; `reason` is a code (anything else counts as `other`), so the
/// label's values stay a closed set.
pub fn signin_failed(reason: &str) {
    let reason = if !reason.is_empty()
        && reason.len() <= 40
        && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        reason.to_owned()
    } else {
        "other".to_owned()
    };
    metrics::counter!("portcullis_signin_failures_total", "reason" => reason).increment(1);
}

/// A change request's close lost its race (approved, denied, cancelled or applied meanwhile, on
/// this replica or another): the store's `CHANGE_MOVED` as the callers answer it.
pub fn change_moved() -> ApiError {
    ApiError::new(
        portcullis_core::error::ErrorCode::AlreadyDecided,
        "the change request was decided meanwhile",
    )
}

/// A decision's reason: at most 500 characters without control, bidirectional or invisible
/// characters, and present when `required`.
pub fn check_reason(reason: &Option<String>, required: bool) -> Result<(), ApiError> {
    match reason.as_deref().map(str::trim) {
        Some(r) if r.chars().count() > 500 || portcullis_core::text::has_invisible(r) => {
            Err(ApiError::bad_request(
                "reason must be at most 500 characters without control, bidirectional or invisible characters",
            ))
        }
        Some("") | None if required => Err(ApiError::bad_request("a reason is required")),
        _ => Ok(()),
    }
}
