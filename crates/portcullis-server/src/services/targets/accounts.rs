//! A person's own account at a target: the Entra user or database login a grant acts on when
//! the target's login template does not give it (a UPN on another domain, a login under
//! another name).
//!
//! Invariants:
//! - Only holders of `targets.manage` set or remove accounts, and never their own (that would
//!   let them choose who receives their own elevation); such a refusal is audited. Every
//!   change is audited and alert-worthy.
//! - An account is checked at the target before it is stored: an Entra user must exist (its
//!   UPN and object id are stored, so a revoke reaches the user granted even after a rename),
//!   a login must be a name PostgreSQL accepts. Bad input stores nothing.
//! - One account belongs to one principal per target: not another principal's own account,
//!   not what the login template gives another principal, and (Entra) never one of the
//!   tenant's emergency accounts, whose standing Global Administrator a revoke would remove.
//! - An account changes only while its principal holds nothing at the target (the store
//!   refuses otherwise); each operation keeps the account its grant was written for.

use portcullis_core::api::{SetTargetAccountRequest, TargetAccountView};
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalKind;
use portcullis_core::roles::perm;
use portcullis_store::Change;
use portcullis_store::accounts::Principal;
use portcullis_store::targets::{NewTargetAccount, Target, TargetAccount};
use time::OffsetDateTime;

use super::{bad, connector, no_target};
use crate::error::ApiError;
use crate::services::caller::{Caller, event};
use crate::state::AppState;
use crate::targets::{Connector, TargetError};
use crate::time_us::{rfc3339, us};

/// Longest account accepted (an Entra UPN is at most 113 characters; a login 63 bytes).
const MAX_ACCOUNT: usize = 256;

fn view(a: TargetAccount) -> TargetAccountView {
    TargetAccountView {
        target: a.target,
        principal: a.principal_name,
        account: a.account,
        external_id: a.external_id,
        set_by: a.created_by,
        set_at: rfc3339(a.created_at_us),
    }
}

async fn target(state: &AppState, name: &str) -> Result<Target, ApiError> {
    state
        .store
        .target(name)
        .await?
        .ok_or_else(|| no_target(name))
}

/// The accounts principals have of their own at `name`.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Vec<TargetAccountView>, ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    target(state, name).await?;
    Ok(state
        .store
        .target_accounts(name)
        .await?
        .into_iter()
        .map(view)
        .collect())
}

/// The principal `name` (a person or a service account).
async fn principal(state: &AppState, name: &str) -> Result<Principal, ApiError> {
    let p = state
        .store
        .principal_by_name(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no principal {name}")))?;
    if p.kind == PrincipalKind::Group {
        return Err(bad(
            "a group has no account at a target: its members activate through it",
        ));
    }
    Ok(p)
}

/// Refuses (and audits) a caller who changes their own account.
async fn not_self(
    state: &AppState,
    caller: &Caller,
    p: &Principal,
    ev: &NewAuditEvent,
) -> Result<(), ApiError> {
    let sc = caller.require(perm::TARGETS_MANAGE)?;
    if sc.principal.id != p.id {
        return Ok(());
    }
    let mut refused = ev.clone().outcome(Outcome::Failure);
    if let Some(d) = refused.details.as_object_mut() {
        d.insert("reason".into(), "self_escalation".into());
    }
    state.store.append(refused).await?;
    Err(ApiError::new(
        ErrorCode::Forbidden,
        "another administrator decides which account your own grants act on",
    ))
}

fn target_error(e: TargetError) -> ApiError {
    match e {
        TargetError::Unreachable(m) => ApiError::new(
            ErrorCode::Unavailable,
            format!("the target cannot check the account now: {m}"),
        ),
        TargetError::Config(m) | TargetError::Refused(m) => bad(m),
    }
}

/// Sets `principal`'s own account at target `name`, checked at the target first.
pub async fn set(
    state: &AppState,
    caller: &Caller,
    name: &str,
    principal_name: &str,
    req: SetTargetAccountRequest,
) -> Result<TargetAccountView, ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    let t = target(state, name).await?;
    let p = principal(state, principal_name).await?;
    let account = req.account.trim();
    let ev = event(caller, "target.account_set", format!("target:{name}"))
        .details(serde_json::json!({ "principal": p.name, "account": account, "alert": true }));
    not_self(state, caller, &p, &ev).await?;
    if account.is_empty()
        || account.len() > MAX_ACCOUNT
        || account.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(bad(format!(
            "account must be 1 to {MAX_ACCOUNT} characters without spaces or control characters"
        )));
    }
    let c = connector(&state.master, &t).map_err(target_error)?;
    let (account, external_id) = c.account(account).await.map_err(target_error)?;
    if let Connector::MsGraph(g) = &c
        && g.emergency_accounts
            .iter()
            .any(|e| e.eq_ignore_ascii_case(&account))
    {
        return Err(bad(format!(
            "{account} is one of the tenant's emergency accounts: a revoke would remove its standing Global Administrator"
        )));
    }
    if let Some(owner) = c.template_person(&account)
        && !owner.eq_ignore_ascii_case(&p.name)
        && state.store.principal_by_name(&owner).await?.is_some()
    {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("the target's login template gives {account} to {owner}"),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let ev =
        event(caller, "target.account_set", format!("target:{name}")).details(serde_json::json!({
            "principal": p.name, "account": account, "external_id": external_id, "alert": true,
        }));
    state
        .store
        .write(
            Change::SetTargetAccount(NewTargetAccount {
                target: name.to_owned(),
                principal_id: p.id.clone(),
                account: Some(account.clone()),
                external_id,
                by: caller.actor(),
                at_us: us(now),
            }),
            vec![ev],
        )
        .await?;
    state
        .store
        .target_accounts(name)
        .await?
        .into_iter()
        .find(|a| a.principal_id == p.id)
        .map(view)
        .ok_or_else(|| ApiError::internal("account vanished"))
}

/// Removes `principal`'s own account at target `name`: the login template applies again.
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    name: &str,
    principal_name: &str,
) -> Result<(), ApiError> {
    caller.require(perm::TARGETS_MANAGE)?;
    target(state, name).await?;
    let p = principal(state, principal_name).await?;
    if !state
        .store
        .target_accounts(name)
        .await?
        .iter()
        .any(|a| a.principal_id == p.id)
    {
        return Err(ApiError::not_found(format!(
            "{} has no account of their own at target {name}",
            p.name
        )));
    }
    let ev = event(caller, "target.account_removed", format!("target:{name}"))
        .details(serde_json::json!({ "principal": p.name, "alert": true }));
    not_self(state, caller, &p, &ev).await?;
    let now = OffsetDateTime::now_utc();
    state
        .store
        .write(
            Change::SetTargetAccount(NewTargetAccount {
                target: name.to_owned(),
                principal_id: p.id.clone(),
                account: None,
                external_id: None,
                by: caller.actor(),
                at_us: us(now),
            }),
            vec![ev],
        )
        .await?;
    Ok(())
}
