//! The privilege model in the server: who is privileged, who is top tier, the guarded writes
//! (last Global Administrator, two break-glass accounts), the fresh proof that credential
//! changes need, and the notice to a person whose credentials changed.
//!
//! The rules themselves are pure code in [`portcullis_core::privilege`]; this module gathers
//! the facts they need from the store and maps a refusal to the API's error.
//!
//! Invariants kept here:
//! - A principal is privileged when it is a break-glass account, the first administrator, was
//!   marked privileged, or holds or is eligible for a privileged role — directly or through a
//!   role-assignable group — at any scope ([`is_privileged`]). Computed at the moment of use,
//!   never only from a flag that a path might forget to set.
//! - A guarded change and its guard commit in one transaction (the store's writer serialises
//!   them across replicas), and a refused attempt is audited as a failure of the same action.
//! - Credential changes are refused to access tokens and to sessions without a fresh proof.

use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalKind;
use portcullis_core::privilege::{self, ProofFacts, ProofRefusal, Tier};
use portcullis_core::session::SessionScope;
use portcullis_store::accounts::Principal;
use portcullis_store::{BREAKGLASS_MINIMUM, Change, LAST_GLOBAL_ADMINISTRATOR, StoreError};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::{Caller, SessionCaller};
use crate::state::AppState;
use crate::time_us::{from_us, us};

/// The caller's tier at the tenant (rule 10: only grants at `/` count).
pub fn tier(caller: &SessionCaller) -> Tier {
    privilege::tier_at_tenant(&caller.grants)
}

/// The tier of a role by its slug (unknown roles are treated as top tier: fail closed).
pub async fn role_tier(state: &AppState, slug: &str) -> Result<Tier, ApiError> {
    Ok(crate::services::grants::all_roles(state)
        .await?
        .iter()
        .find(|r| r.slug == slug)
        .map_or(Tier::Top, crate::services::grants::RoleDef::tier))
}

/// Whether `p` is privileged now (see the module's invariants).
pub async fn is_privileged(
    state: &AppState,
    p: &Principal,
    now: OffsetDateTime,
) -> Result<bool, ApiError> {
    if p.emergency || p.first_admin || p.privileged {
        return Ok(true);
    }
    let assignments = state.store.assignments_applying_to(&p.id, us(now)).await?;
    if assignments.is_empty() {
        return Ok(false);
    }
    let roles = crate::services::grants::all_roles(state).await?;
    Ok(assignments.iter().any(|a| {
        roles
            .iter()
            .find(|r| r.slug == a.role)
            .is_none_or(|r| r.tier().is_privileged())
    }))
}

/// Rules 5 and 6: refuses (403 `privileged_principal`) unless the caller is top tier or
/// `target` is not privileged. `what` completes "only a top-tier administrator may …".
pub async fn require_may_manage(
    state: &AppState,
    caller: &Caller,
    target: &Principal,
    what: &str,
) -> Result<(), ApiError> {
    let me = caller.require_full()?;
    if tier(me) == Tier::Top {
        return Ok(());
    }
    let privileged = is_privileged(state, target, OffsetDateTime::now_utc()).await?;
    if privilege::may_manage(tier(me), privileged) {
        return Ok(());
    }
    let kind = if target.kind == PrincipalKind::ServiceAccount {
        "service account"
    } else if target.emergency {
        "break-glass account"
    } else {
        "person"
    };
    Err(ApiError::new(
        ErrorCode::PrivilegedPrincipal,
        format!(
            "{} is a privileged {kind}; only a Global or Privileged Role Administrator may {what}",
            target.name
        ),
    ))
}

/// Rule 2 the other way round: whoever assigned a service account a role does not also take a
/// credential of it (they would then hold the role themselves, outside just-in-time
/// activation). Refuses with `self_assignment`.
pub async fn require_not_its_assigner(
    state: &AppState,
    caller: &Caller,
    sa: &Principal,
) -> Result<(), ApiError> {
    if state.store.assigned_by(&sa.id, &caller.actor()).await? {
        return Err(ApiError::new(
            ErrorCode::SelfAssignment,
            format!(
                "you assigned {} its roles, so holding its credentials would be holding them yourself; another administrator manages its secrets and keys",
                sa.name
            ),
        ));
    }
    Ok(())
}

/// What a guarded write must keep true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// At least two usable break-glass accounts (invariant 5).
    BreakGlassMinimum,
    /// Somebody who can reach Global Administrator at `/` (privilege model rule 3).
    GlobalAdministrator,
}

/// Writes `change` with its event and `guard` after it, in one transaction. When the guard
/// refuses, the attempt is audited as a failure (it alerts where its action does) and the
/// caller gets `breakglass_minimum` or `last_global_administrator`; any other conflict of the
/// change itself is answered by `on_conflict`.
pub async fn write_guarded(
    state: &AppState,
    change: Change,
    ev: NewAuditEvent,
    guard: Guard,
    on_conflict: impl FnOnce(String) -> ApiError,
) -> Result<(), ApiError> {
    write_guarded_with(state, change, ev, Vec::new(), guard, on_conflict).await
}

/// [`write_guarded`] with events that follow `ev` (what the change does besides), written only
/// when the guard lets the change through; a refusal is audited on `ev` alone.
pub async fn write_guarded_with(
    state: &AppState,
    change: Change,
    ev: NewAuditEvent,
    more: Vec<NewAuditEvent>,
    guard: Guard,
    on_conflict: impl FnOnce(String) -> ApiError,
) -> Result<(), ApiError> {
    let now = OffsetDateTime::now_utc();
    let (check, conflict, refusal) = match guard {
        Guard::BreakGlassMinimum => (
            Change::RequireBreakGlassMinimum {
                min: REQUIRED,
                before: state.store.usable_breakglass_count().await?,
            },
            BREAKGLASS_MINIMUM,
            minimum_error(),
        ),
        Guard::GlobalAdministrator => (
            Change::RequireGlobalAdministrator {
                before: state.store.global_administrator_count(us(now)).await?,
                at_us: us(now),
            },
            LAST_GLOBAL_ADMINISTRATOR,
            ApiError::new(
                ErrorCode::LastGlobalAdministrator,
                "this would leave nobody who can reach Global Administrator at the tenant; first make someone else eligible for it (portcullis assign NAME global-administrator --eligible), and keep two break-glass accounts",
            ),
        ),
    };
    match state
        .store
        .write(
            Change::Many(vec![change, check]),
            std::iter::once(ev.clone()).chain(more).collect(),
        )
        .await
    {
        Ok(_) => {
            if guard == Guard::BreakGlassMinimum {
                state.breakglass.forget();
            }
            Ok(())
        }
        Err(StoreError::Conflict(m)) if m == conflict => {
            let mut refused = ev.outcome(Outcome::Failure);
            if let Some(d) = refused.details.as_object_mut() {
                d.insert("reason".into(), refusal.code.as_str().into());
                d.insert("alert".into(), true.into());
            }
            state.store.append(refused).await?;
            Err(refusal)
        }
        Err(StoreError::Conflict(m)) => Err(on_conflict(m)),
        Err(e) => Err(e.into()),
    }
}

/// Rule 7: a credential change (a factor registered or removed, a password changed) needs a
/// real session with a fresh proof; `reauth_required` (401) says how to give one.
pub async fn require_fresh_proof(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let me = caller.require_session()?;
    let has_factor = state
        .store
        .factors(&me.principal.id)
        .await?
        .iter()
        .any(|f| f.confirmed);
    let facts = ProofFacts {
        access_token: me.is_access_token(),
        registration_only: me.scope == SessionScope::RegistrationOnly,
        has_factor,
        signed_in_at: from_us(me.session.created_at_us),
        factor_proven_at: me.session.strong_auth_at_us.map(from_us),
    };
    privilege::check_fresh_proof(&facts, OffsetDateTime::now_utc()).map_err(|e| {
        let code = match e {
            ProofRefusal::AccessToken => ErrorCode::Forbidden,
            ProofRefusal::Stale | ProofRefusal::StaleSignIn => ErrorCode::ReauthRequired,
        };
        ApiError::new(code, e.to_string())
    })
}

/// A signed-in session, not an access token: re-authentication and credential changes happen
/// only there (rule 7), so a stolen access token can do neither.
pub fn require_signed_in_session(caller: &Caller) -> Result<&SessionCaller, ApiError> {
    let me = caller.require_session()?;
    if me.is_access_token() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            ProofRefusal::AccessToken.to_string(),
        ));
    }
    Ok(me)
}

/// Service accounts have no factors, approve nothing and approve no device (rule 6).
pub fn require_person(caller: &Caller, what: &str) -> Result<(), ApiError> {
    let me = caller.require_session()?;
    if me.principal.kind == PrincipalKind::User {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("a service account cannot {what}; only people can"),
        ))
    }
}

/// The notice to a person that a credential of theirs changed (email, through the
/// notification outbox, in the same transaction as the change).
pub fn credential_notice(p: &Principal, what: &str, detail: serde_json::Value) -> Change {
    let now = OffsetDateTime::now_utc();
    Change::Enqueue(portcullis_store::NewOutboxMessage {
        id: crate::services::support::new_id("m"),
        kind: "notification".into(),
        topic: "credential.changed".into(),
        recipient: format!("user:{}", p.name),
        payload: serde_json::json!({ "account": p.name, "change": what, "detail": detail })
            .to_string(),
        at_us: us(now),
        channel: None,
        severity: None,
    })
}
/// Usable break-glass accounts a tenant must keep (privilege model rule 3, invariant 4).
pub const REQUIRED: i64 = 2;

/// The refusal of a change that would leave fewer than [`REQUIRED`] usable break-glass accounts.
pub fn minimum_error() -> ApiError {
    ApiError::new(
        ErrorCode::BreakGlassMinimum,
        format!(
            "at least {REQUIRED} usable break-glass accounts must remain; create another first (portcullis breakglass create)"
        ),
    )
}
