//! Sessions: who am I, listing them, ending one, signing out.

use super::*;
use crate::services::support::ConflictExt;

fn session_view(s: &Session, user: &str, current: &str) -> SessionView {
    SessionView {
        id: s.id.clone(),
        user: user.to_owned(),
        strength: s.strength.as_str().to_owned(),
        scope: s.scope.clone(),
        created_at: rfc3339(s.created_at_us),
        last_seen: rfc3339(s.last_seen_us),
        client_ip: s.client_ip.clone(),
        user_agent: s.user_agent.clone(),
        current: s.id == current,
    }
}

/// `GET /api/v1/me`.
pub async fn whoami(state: &AppState, caller: &Caller) -> Result<WhoAmI, ApiError> {
    let s = caller.require_session()?;
    let user = user_view(state, &s.principal).await?;
    let roles =
        crate::services::roles::active_roles(state, &s.principal.id, OffsetDateTime::now_utc())
            .await?;
    let mut warnings = Vec::new();
    if roles.iter().any(|r| {
        r.seconds_left.is_none() && r.role == "global-administrator" && !s.principal.emergency
    }) {
        warnings.push("you hold a standing (permanent, active) Global Administrator assignment; before you turn it into an eligible one (portcullis make-eligible global-administrator), create two break-glass accounts (portcullis breakglass create) and make a second administrator eligible for Global Administrator (portcullis assign NAME global-administrator --eligible), with approvers set on the role".to_owned());
    }
    if s.scope == SessionScope::RegistrationOnly {
        warnings.push("registration-only session: enrol a second factor (portcullis mfa enroll totp), then sign in again".to_owned());
    }
    Ok(WhoAmI {
        user,
        session: session_view(&s.session, &s.principal.name, &s.session.id),
        roles,
        warnings,
    })
}

fn alive(state: &AppState, s: &Session, now: OffsetDateTime) -> bool {
    let scope = SessionScope::parse(&s.scope).unwrap_or(SessionScope::RegistrationOnly);
    s.revoked_at_us.is_none()
        && s.ends_at_us.is_none_or(|end| us(now) < end)
        && state.lifetimes.alive(
            from_us(s.created_at_us),
            from_us(s.last_seen_us),
            scope,
            now,
        )
}

/// Live sessions of the caller, or of `user` for an administrator.
pub async fn list_sessions(
    state: &AppState,
    caller: &Caller,
    user: Option<&str>,
) -> Result<Vec<SessionView>, ApiError> {
    let me = caller.require_session()?;
    let p = match user {
        Some(name) if name != me.principal.name => {
            caller.require(perm::SESSIONS_READ)?;
            get_principal(state, name, PrincipalKind::User).await?
        }
        _ => me.principal.clone(),
    };
    let now = OffsetDateTime::now_utc();
    Ok(state
        .store
        .sessions_of(&p.id)
        .await?
        .iter()
        .filter(|s| alive(state, s, now))
        .map(|s| session_view(s, &p.name, &me.session.id))
        .collect())
}

/// Revokes a session: one's own, or anyone's for an administrator.
pub async fn revoke_session(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let me = caller.require_session()?;
    let not_found = || ApiError::not_found("no such session");
    if id.len() > 80 {
        return Err(not_found());
    }
    let s = state.store.session_by_id(id).await?.ok_or_else(not_found)?;
    if s.principal_id != me.principal.id && !caller.holds(perm::SESSIONS_REVOKE) {
        // Someone else's session looks like no session at all.
        return Err(not_found());
    }
    let owner = state
        .store
        .principal_by_id(&s.principal_id)
        .await?
        .ok_or_else(not_found)?;
    // Ending a privileged person's (or a break-glass account's) session is the top tier's (rule 5).
    if owner.id != me.principal.id {
        crate::services::privilege::require_may_manage(state, caller, &owner, "end their sessions")
            .await?;
    }
    let now = OffsetDateTime::now_utc();
    let ev = event(caller, "session.revoked", format!("user:{}", owner.name))
        .details(serde_json::json!({ "session_id": s.id }));
    state
        .store
        .write(
            Change::RevokeSession {
                id: s.id.clone(),
                at_us: us(now),
            },
            vec![ev],
        )
        .await
        .on_conflict(not_found)?;
    Ok(())
}

/// Signs the caller out (revokes the current session).
pub async fn signout(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let me = caller.require_session()?;
    revoke_session(state, caller, &me.session.id.clone()).await
}
