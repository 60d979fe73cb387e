//! Containment: one step that takes a principal (a person or a service account) out of
//! everything, for incident response (`portcullis contain`, `POST
//! /api/v1/principals/{name}/contain`), and its undo (`/release`), which gives back the account
//! only.
//!
//! Invariants:
//! - Needs `principals.contain` (Global and Privileged Role Administrators), a fresh proof of
//!   the caller's own (a signed-in session, not an access token: step-up within five minutes),
//!   and the right to manage the principal (a privileged person or break-glass account is the
//!   top tier's). Nobody contains or releases themselves.
//! - Everything is cut in one transaction (`portcullis_store` `Change::Contain`): the account is
//!   disabled; sessions, refresh families and access tokens (by a cut-off in time) end; a
//!   service account's client secrets and keys are revoked (presumed stolen); pending
//!   requests are cancelled, active ones revoked, active assignments ended; a revoke is written
//!   for every target grant and SSH certificate. One `principal.contained` event lists the
//!   counts and raises a critical alert (every channel).
//! - A break-glass account may be contained (a stolen credential), but not below the two usable
//!   accounts without `force`, which is recorded. The last person who can reach Global
//!   Administrator is not contained away.
//! - A release re-enables the account; no grant, session, token, secret or key comes back, and
//!   tokens issued before the containment stay refused.

use portcullis_core::api::{ContainRequest, ContainmentView, ReleaseRequest};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalKind;
use portcullis_core::roles::perm;
use portcullis_store::accounts::Principal;
use portcullis_store::containment::Cut;
use portcullis_store::{Change, StoreError};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::services::privilege::{self, Guard};
use crate::state::AppState;
use crate::time_us::{rfc3339, us};

/// Longest reason accepted.
const MAX_REASON: usize = 500;

fn reason(raw: &str) -> Result<String, ApiError> {
    let r = raw.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON || r.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("reason is required: one line of at most {MAX_REASON} characters"),
        ));
    }
    Ok(r.to_owned())
}

/// The person or service account `name` (groups are not contained: their members are).
async fn target(state: &AppState, name: &str) -> Result<Principal, ApiError> {
    let parsed = portcullis_core::principal::PrincipalName::parse("name", name)
        .map_err(crate::services::support::invalid)?;
    match state.store.principal_by_name(parsed.as_str()).await? {
        Some(p) if p.kind != PrincipalKind::Group => Ok(p),
        _ => Err(ApiError::not_found(format!(
            "no user or service account named {parsed}"
        ))),
    }
}

/// The checks both directions share: permission, not oneself, may manage them, fresh proof.
async fn authorise(
    state: &AppState,
    caller: &Caller,
    p: &Principal,
    what: &str,
) -> Result<(), ApiError> {
    let me = caller.require(perm::PRINCIPALS_CONTAIN)?;
    if me.principal.id == p.id {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("you cannot {what} yourself; another administrator must"),
        ));
    }
    privilege::require_may_manage(state, caller, p, what).await?;
    privilege::require_fresh_proof(state, caller).await
}

fn label(p: &Principal) -> String {
    format!("{}:{}", p.kind.as_str(), p.name)
}

fn view(p: &Principal, contained: bool, at: OffsetDateTime, cut: &Cut) -> ContainmentView {
    ContainmentView {
        principal: p.name.clone(),
        kind: p.kind.as_str().to_owned(),
        contained,
        at: rfc3339(us(at)),
        sessions: cut.sessions,
        refresh_tokens: cut.refresh_tokens,
        client_credentials: cut.client_credentials,
        pending_requests: cut.pending_requests,
        active_requests: cut.active_requests,
        active_assignments: cut.active_assignments,
        target_grants: cut.target_grants,
        ssh_certificates: cut.ssh_certificates,
    }
}

/// Contains `name`.
pub async fn contain(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: ContainRequest,
) -> Result<ContainmentView, ApiError> {
    let why = reason(&req.reason)?;
    let p = target(state, name).await?;
    authorise(state, caller, &p, "contain").await?;
    if p.contained_at_us.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("{} is already contained", p.name),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let cut = state.store.containment_cut(&p.id, us(now)).await?;
    let by = caller.require_full()?.principal.name.clone();
    let change = Change::Contain {
        id: p.id.clone(),
        by: by.clone(),
        reason: why.clone(),
        at_us: us(now),
    };
    let forced = p.emergency && req.force;
    let ev = event(caller, "principal.contained", label(&p)).details(serde_json::json!({
        "reason": why,
        "emergency": p.emergency,
        "forced": forced,
        "alert": true,
        "cut": {
            "sessions": cut.sessions,
            "refresh_tokens": cut.refresh_tokens,
            "client_credentials": cut.client_credentials,
            "pending_requests": cut.pending_requests,
            "active_requests": cut.active_requests,
            "active_assignments": cut.active_assignments,
            "target_grants": cut.target_grants,
            "ssh_certificates": cut.ssh_certificates,
        },
    }));
    let on_conflict = |m: String| -> ApiError {
        if m == portcullis_store::ALREADY_CONTAINED {
            ApiError::new(
                ErrorCode::Conflict,
                format!("{} is already contained", p.name),
            )
        } else {
            StoreError::Conflict(m).into()
        }
    };
    if forced {
        // Below the minimum on purpose: recorded as forced, and the emergency flag sends the
        // event to every channel.
        match state.store.write(change, vec![ev]).await {
            Ok(_) => state.breakglass.forget(),
            Err(StoreError::Conflict(m)) => return Err(on_conflict(m)),
            Err(e) => return Err(e.into()),
        }
    } else {
        let guard = if p.emergency {
            Guard::BreakGlassMinimum
        } else {
            Guard::GlobalAdministrator
        };
        privilege::write_guarded(state, change, ev, guard, on_conflict).await?;
        if p.emergency {
            state.breakglass.forget();
        }
    }
    Ok(view(&p, true, now, &cut))
}

/// Ends the containment of `name`: the account only.
pub async fn release(
    state: &AppState,
    caller: &Caller,
    name: &str,
    req: ReleaseRequest,
) -> Result<ContainmentView, ApiError> {
    let why = reason(&req.reason)?;
    let p = target(state, name).await?;
    authorise(state, caller, &p, "release").await?;
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, "principal.released", label(&p)).details(serde_json::json!({
        "reason": why,
        "emergency": p.emergency,
        "alert": true,
    }));
    match state
        .store
        .write(Change::Uncontain { id: p.id.clone() }, vec![ev])
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("{} is not contained", p.name),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if p.emergency {
        state.breakglass.forget();
    }
    Ok(view(&p, false, now, &Cut::default()))
}
