//! Four eyes on the PAM's own settings: listing change requests, approving, denying or
//! cancelling them, and applying those whose cooling-off is over.
//!
//! Invariants (the rules themselves are pure code in `portcullis_core::governance`):
//! - A change request applies at most once, and only with its conditional close
//!   (`pending → applied`) in the same transaction: an approval, a denial, a cancel and the
//!   cooling-off racing (on one replica or several) end it exactly once.
//! - Nobody approves their own change; the approver is a person holding a top-tier role now,
//!   signed in with at least `mfa`; a denial needs the same. The requester may cancel their own.
//! - A change is applied as it reads against the settings at that moment (validated again);
//!   one that no longer applies (its role or target deleted, an approver gone) is cancelled,
//!   not forced. Kinds: `role_settings` (a weakening of a privileged role's settings),
//!   `bind_role` (binding a privileged role to a target), `ca_policy` (disabling, deleting or
//!   weakening an enforced conditional-access policy that applies to a privileged role; the
//!   lockout guard runs again, looking after the requester) and `remove_alert_channel`.
//! - At the end of a cooling-off the change applies only if its requester is still enabled
//!   (a contained or disabled requester's change is cancelled); `change.applied` alerts.
//! - Every decision is audited (`change.applied`, `change.denied`, `change.cancelled`).

use portcullis_core::api::{ChangeDecisionRequest, ChangeRequestView, RoleSettingsUpdate};
use portcullis_core::error::ErrorCode;
use portcullis_core::governance::{self, ChangeApprover, ChangeState};
use portcullis_core::principal::PrincipalKind;
use portcullis_core::roles::perm;
use portcullis_core::session::AuthStrength;
use portcullis_store::governance::ChangeRequest;
use portcullis_store::{Change, GovernanceChange, StoreError};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::Caller;
use crate::services::changes::decided_event;
use crate::services::support::{change_moved, check_reason};
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

fn view(c: &ChangeRequest) -> ChangeRequestView {
    ChangeRequestView {
        id: c.id.clone(),
        kind: c.kind.clone(),
        subject: c.subject.clone(),
        change: serde_json::from_str(&c.payload).unwrap_or(serde_json::Value::Null),
        weakenings: c.weakenings.clone(),
        requested_by: c.requested_by.clone(),
        requested_at: rfc3339(c.requested_at_us),
        effective_at: c.effective_at_us.map(rfc3339),
        state: c.state.as_str().to_owned(),
        decided_by: c.decided_by.clone(),
        decided_at: c.decided_at_us.map(rfc3339),
        reason: c.reason.clone(),
    }
}

/// Change requests, newest first (`state`: `pending`, …); for top-tier holders and for those
/// who may change role settings (who propose them).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    state_filter: Option<&str>,
) -> Result<Vec<ChangeRequestView>, ApiError> {
    caller.require(perm::ROLES_SETTINGS_UPDATE)?;
    if let Some(s) = state_filter
        && ChangeState::parse(s).is_none()
    {
        return Err(ApiError::bad_request(
            "state must be pending, applied, denied or cancelled",
        ));
    }
    Ok(state
        .store
        .change_requests(state_filter, 500)
        .await?
        .iter()
        .map(view)
        .collect())
}

pub async fn get(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ChangeRequestView, ApiError> {
    caller.require(perm::ROLES_SETTINGS_UPDATE)?;
    Ok(view(&find(state, id).await?))
}

async fn find(state: &AppState, id: &str) -> Result<ChangeRequest, ApiError> {
    if id.len() > 80 {
        return Err(ApiError::not_found("no such change request"));
    }
    state
        .store
        .change_request(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such change request"))
}

/// Checks that the caller may approve or deny `c` (core's rules).
fn check_approver(caller: &Caller, c: &ChangeRequest) -> Result<(), ApiError> {
    let me = caller.require_full()?;
    let approver = ChangeApprover {
        id: &me.principal.id,
        person: me.principal.kind == PrincipalKind::User && !me.principal.emergency,
        top_tier: caller.holds(perm::ASSIGNMENTS_CREATE),
        mfa: me.strength >= AuthStrength::Mfa,
    };
    governance::check_change_approval(&c.requested_by_id, c.state, &approver)
        .map_err(|e| ApiError::new(e.code(), e.to_string()))
}

/// Approves change request `id`: it applies now.
pub async fn approve(
    state: &AppState,
    caller: &Caller,
    id: &str,
    d: ChangeDecisionRequest,
) -> Result<ChangeRequestView, ApiError> {
    check_reason(&d.reason, false)?;
    let c = find(state, id).await?;
    check_approver(caller, &c)?;
    apply(state, &caller.actor(), &c, d.reason.as_deref()).await?;
    Ok(view(&find(state, id).await?))
}

/// Denies change request `id` (a reason is required): it never applies.
pub async fn deny(
    state: &AppState,
    caller: &Caller,
    id: &str,
    d: ChangeDecisionRequest,
) -> Result<ChangeRequestView, ApiError> {
    check_reason(&d.reason, true)?;
    let c = find(state, id).await?;
    check_approver(caller, &c)?;
    close(
        state,
        &caller.actor(),
        &c,
        ChangeState::Denied,
        d.reason.as_deref(),
    )
    .await?;
    Ok(view(&find(state, id).await?))
}

/// Cancels change request `id`: by its requester, or by any top-tier holder.
pub async fn cancel(
    state: &AppState,
    caller: &Caller,
    id: &str,
    d: ChangeDecisionRequest,
) -> Result<ChangeRequestView, ApiError> {
    check_reason(&d.reason, false)?;
    let me = caller.require_full()?;
    let c = find(state, id).await?;
    if c.requested_by_id != me.principal.id && !caller.holds(perm::ASSIGNMENTS_CREATE) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only its requester or a top-tier administrator cancels a change request",
        ));
    }
    if c.state != ChangeState::Pending {
        return Err(ApiError::new(
            ErrorCode::AlreadyDecided,
            format!("this change request is {}, not pending", c.state.as_str()),
        ));
    }
    close(
        state,
        &caller.actor(),
        &c,
        ChangeState::Cancelled,
        d.reason.as_deref(),
    )
    .await?;
    Ok(view(&find(state, id).await?))
}

fn closing(c: &ChangeRequest, to: ChangeState, by: &str, reason: Option<&str>) -> Change {
    Change::Governance(GovernanceChange::Close {
        id: c.id.clone(),
        to,
        by: by.to_owned(),
        reason: reason.map(str::to_owned),
        at_us: us(OffsetDateTime::now_utc()),
    })
}

/// Ends `c` as `to` without applying it.
async fn close(
    state: &AppState,
    by: &str,
    c: &ChangeRequest,
    to: ChangeState,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let ev = decided_event(
        by,
        &format!("change.{}", to.as_str()),
        &c.id,
        &c.subject,
        &c.weakenings.join(", "),
        reason,
    );
    match state
        .store
        .write(closing(c, to, by, reason), vec![ev])
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(change_moved()),
        Err(e) => Err(e.into()),
    }
}

/// Applies `c` with its close (`applied`) in one write; a change that no longer applies is
/// cancelled instead and the reason returned.
async fn apply(
    state: &AppState,
    by: &str,
    c: &ChangeRequest,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let ev = decided_event(
        by,
        "change.applied",
        &c.id,
        &c.subject,
        &c.weakenings.join(", "),
        reason,
    );
    let result = match c.kind.as_str() {
        "role_settings" => {
            let u: RoleSettingsUpdate = serde_json::from_str(&c.payload)
                .map_err(|_| ApiError::internal("a stored change that does not parse"))?;
            let slug = c.subject.strip_prefix("role:").unwrap_or(&c.subject);
            crate::services::roles::apply_settings_change(
                state,
                by,
                slug,
                u,
                closing(c, ChangeState::Applied, by, reason),
                ev,
            )
            .await
            .map(|_| ())
        }
        "bind_role" => {
            #[derive(serde::Deserialize)]
            struct Bind {
                target: String,
                role: String,
                binding: portcullis_core::api::BindRoleRequest,
            }
            let b: Bind = serde_json::from_str(&c.payload)
                .map_err(|_| ApiError::internal("a stored change that does not parse"))?;
            crate::services::targets::apply_binding_change(
                state,
                by,
                &b.target,
                &b.role,
                b.binding,
                closing(c, ChangeState::Applied, by, reason),
                ev,
            )
            .await
            .map(|_| ())
        }
        "ca_policy" => {
            crate::services::conditional_access::apply_change(
                state,
                by,
                &c.requested_by_id,
                &c.payload,
                closing(c, ChangeState::Applied, by, reason),
                ev,
            )
            .await
        }
        "remove_alert_channel" => {
            let name = c
                .subject
                .strip_prefix("alert_channel:")
                .unwrap_or(&c.subject);
            crate::services::alerts::apply_channel_removal(
                state,
                by,
                name,
                closing(c, ChangeState::Applied, by, reason),
                ev,
            )
            .await
        }
        other => Err(ApiError::internal(format!("unknown change kind {other}"))),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.code == ErrorCode::AlreadyDecided => Err(e),
        Err(e)
            if matches!(
                e.code,
                ErrorCode::InvalidRequest | ErrorCode::NotFound | ErrorCode::CaLockout
            ) =>
        {
            // It no longer applies as it reads now: cancelled, with the reason.
            let why = format!("no longer applies: {}", e.message);
            close(
                state,
                "system:governance",
                c,
                ChangeState::Cancelled,
                Some(&why),
            )
            .await?;
            Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "the change no longer applies and was cancelled: {}",
                    e.message
                ),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Applies every pending change whose cooling-off is over (the worker, on every replica);
/// how many were ended.
pub async fn apply_due(state: &AppState) -> Result<usize, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut n = 0;
    for c in state.store.due_change_requests(us(now)).await? {
        let requester = state.store.principal_by_id(&c.requested_by_id).await?;
        let live = requester.is_some_and(|p| p.enabled);
        let r = if live {
            apply(state, "system:cooling_off", &c, Some("cooling-off over")).await
        } else {
            close(
                state,
                "system:cooling_off",
                &c,
                ChangeState::Cancelled,
                Some("its requester is disabled or contained"),
            )
            .await
        };
        match r {
            Ok(()) => n += 1,
            Err(e) if e.code == ErrorCode::AlreadyDecided || e.code == ErrorCode::Conflict => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
