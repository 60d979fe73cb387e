//! Recording a weakening change as a change request (four eyes on the PAM's own settings); the
//! services whose changes can weaken the PAM call [`propose`] instead of writing, and
//! [`crate::services::governance`] decides and applies what was recorded.
//!
//! Invariants:
//! - The request is written with its `change.requested` audit event (which alerts, critical)
//!   in one transaction; nothing of the change itself is applied here.
//! - Where no other person can reach a top-tier role (eligible or active, directly or through
//!   a role-assignable group), nobody could approve it: it takes effect after the cooling-off
//!   (`change_cooling_off`), and until then it can be cancelled.
//! - The caller is told plainly what happened and how to go on (`change_pending`, HTTP 403:
//!   refused on one person's word; the message names the request).

use portcullis_core::audit::NewAuditEvent;
use portcullis_core::error::ErrorCode;
use portcullis_store::{Change, GovernanceChange, NewChangeRequest};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::services::grants::all_roles;
use crate::services::support::new_id;
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

/// The roles (built-in and custom) whose holders are top tier: they can approve a change.
pub async fn top_tier_roles(state: &AppState) -> Result<Vec<String>, ApiError> {
    Ok(all_roles(state)
        .await?
        .into_iter()
        .filter(|r| r.tier() == portcullis_core::privilege::Tier::Top)
        .map(|r| r.slug)
        .collect())
}

/// Records `change` (of `kind`, on `subject`, weakening as `weakenings` says) as a change
/// request by the caller; the error to answer with (`change_pending`) says what happens next.
pub async fn propose(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    subject: &str,
    change: serde_json::Value,
    weakenings: Vec<&'static str>,
) -> ApiError {
    match record(state, caller, kind, subject, change, weakenings).await {
        Ok(e) | Err(e) => e,
    }
}

async fn record(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    subject: &str,
    change: serde_json::Value,
    weakenings: Vec<&'static str>,
) -> Result<ApiError, ApiError> {
    let me = caller.require_full()?;
    let now = OffsetDateTime::now_utc();
    let top = top_tier_roles(state).await?;
    let others = state
        .store
        .another_person_reaches(&me.principal.id, &top, us(now))
        .await?;
    let effective = (!others).then(|| now + state.change_cooling_off);
    let id = new_id("c");
    let how = weakenings.join(", ");
    let ev = event(caller, "change.requested", format!("change:{id}")).details(serde_json::json!({
        "change_request": id, "kind": kind, "subject": subject, "how": how, "change": change,
        "effective_at": effective.map(|t| rfc3339(us(t))),
    }));
    state
        .store
        .write(
            Change::Governance(GovernanceChange::Create(NewChangeRequest {
                id: id.clone(),
                kind: kind.to_owned(),
                subject: subject.to_owned(),
                payload: change.to_string(),
                weakenings: weakenings.iter().map(|w| (*w).to_owned()).collect(),
                requested_by_id: me.principal.id.clone(),
                requested_by: caller.actor(),
                requested_at_us: us(now),
                effective_at_us: effective.map(us),
            })),
            vec![ev],
        )
        .await?;
    let next = match effective {
        None => format!(
            "another top-tier administrator must approve it (portcullis changes approve {id}); until then nothing changed"
        ),
        Some(t) => format!(
            "nobody else can reach the top tier to approve it, so it takes effect at {} unless cancelled (portcullis changes cancel {id})",
            rfc3339(us(t))
        ),
    };
    Ok(ApiError::new(
        ErrorCode::ChangePending,
        format!("this weakens {subject} ({how}): recorded as change request {id}; {next}"),
    ))
}

/// The `change.applied` / `change.denied` / `change.cancelled` event of request `id`.
pub fn decided_event(
    actor: &str,
    action: &str,
    id: &str,
    subject: &str,
    how: &str,
    reason: Option<&str>,
) -> NewAuditEvent {
    NewAuditEvent::new(actor, action, format!("change:{id}")).details(serde_json::json!({
        "change_request": id, "subject": subject, "how": how, "reason": reason,
    }))
}
