//! What every sign-in flow shares (password, TOTP, WebAuthn, break-glass): attempts under
//! throttling, the one [`complete_signin`], new sessions, the answer to a re-authentication,
//! and the factor views. Below the flows, so none of them depends on another for these.

use portcullis_core::api::{FactorView, Reauthenticated, SessionIssued, SignInResponse};
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::PrincipalKind;
use portcullis_core::session::{AuthStrength, SessionScope};
use portcullis_store::accounts::{Factor, Principal};
use portcullis_store::crypto::{random_token, token_hash};
use portcullis_store::{Change, NewSession, StoreError};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::caller::ClientInfo;
use crate::services::support::new_id;
pub(crate) use crate::services::support::signin_event;
use crate::state::AppState;
use crate::time_us::{from_us, rfc3339, us};

mod throttle;

pub(crate) use throttle::*;

const MAX_PASSWORD: usize = 1024;

pub(crate) fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "user name or password is wrong",
    )
}

pub(crate) fn check_password_input(pw: &str) -> Result<(), ApiError> {
    if pw.is_empty() {
        return Err(ApiError::bad_request("password must not be empty"));
    }
    if pw.len() > MAX_PASSWORD {
        return Err(ApiError::bad_request(format!(
            "password must be at most {MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

/// A sign-in that succeeded, however it was proven: what [`complete_signin`] writes.
pub(crate) struct Completion<'a> {
    pub principal: &'a Principal,
    pub client: &'a ClientInfo,
    pub strength: AuthStrength,
    pub scope: SessionScope,
    /// Conditional access's sign-in frequency in hours, which bounds the session.
    pub frequency: Option<u32>,
    /// The `reason` of the `signin.completed` event: how it was proven.
    pub reason: &'static str,
    /// The event's details besides the session id (strength, factor, conditional access).
    pub details: serde_json::Value,
    /// What the flow consumes or updates in the same transaction (challenges, factors).
    pub changes: Vec<Change>,
    /// The throttling attempt's success, when the flow reserved one.
    pub succeeded: Option<Change>,
}

/// Completes a sign-in, the one place every flow (password, TOTP, WebAuthn, break-glass)
/// ends: a new session bounded by conditional access's sign-in frequency, the account's last
/// sign-in and familiar address, the attempt's success and `signin.completed`, in one write
/// with the flow's own changes. A conflict is the flow's to explain (a replayed code, a
/// spent ceremony).
pub(crate) async fn complete_signin(
    state: &AppState,
    c: Completion<'_>,
    now: OffsetDateTime,
) -> Result<SessionIssued, StoreError> {
    let (mut issued, mut create) =
        new_session(state, &c.principal.id, c.strength, c.scope, c.client, now);
    crate::services::conditional_access::bound_session(&mut issued, &mut create, c.frequency, now);
    let mut changes = c.changes;
    changes.push(create);
    changes.push(signed_in(c.principal, c.client, now));
    changes.extend(c.succeeded);
    let mut details = c.details;
    if let Some(d) = details.as_object_mut() {
        d.insert("session_id".into(), issued.session_id.clone().into());
    }
    let ev = signin_event(
        &c.principal.name,
        "signin.completed",
        Outcome::Success,
        c.reason,
        c.client,
        details,
    );
    state.store.write(Change::Many(changes), vec![ev]).await?;
    Ok(issued)
}

/// The answer of a completed sign-in.
pub(crate) fn signed_in_response(session: SessionIssued) -> SignInResponse {
    SignInResponse {
        status: "signed_in".into(),
        signin_id: None,
        factors: vec![],
        session: Some(session),
    }
}

/// A new session for principal `principal_id`, returned with its one-time token and the
/// change that stores it.
pub(crate) fn new_session(
    state: &AppState,
    principal_id: &str,
    strength: AuthStrength,
    scope: SessionScope,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> (SessionIssued, Change) {
    let token = random_token();
    let id = new_id("s");
    let issued = SessionIssued {
        token: token.to_string(),
        session_id: id.clone(),
        strength: strength.as_str().to_owned(),
        scope: scope.as_str().to_owned(),
        expires_at: rfc3339(us(state.lifetimes.absolute_end(now, scope))),
    };
    let change = Change::CreateSession(NewSession {
        id,
        token_hash: token_hash(&token),
        principal_id: principal_id.to_owned(),
        strength,
        scope: scope.as_str().to_owned(),
        created_at_us: us(now),
        strong_auth_at_us: (strength >= AuthStrength::Mfa).then_some(us(now)),
        client_ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        ends_at_us: None,
    });
    (issued, change)
}

/// The record of a completed sign-in: the account's last sign-in, and the address (its
/// throttling form) is familiar to it from now on (smart lockout).
pub(crate) fn signed_in(p: &Principal, client: &ClientInfo, now: OffsetDateTime) -> Change {
    Change::RecordSignIn {
        principal_id: p.id.clone(),
        at_us: us(now),
        address: Some(portcullis_core::throttle::address_key(&client.ip)),
    }
}

/// The answer to a successful re-authentication at `now`.
pub(crate) fn reauthenticated(strength: AuthStrength, now: OffsetDateTime) -> Reauthenticated {
    Reauthenticated {
        strength: strength.as_str().to_owned(),
        fresh_until: rfc3339(us(now + portcullis_core::privilege::FRESH_PROOF_WINDOW)),
    }
}

pub(crate) fn factor_view(f: &Factor) -> FactorView {
    FactorView {
        id: f.id.clone(),
        kind: f.kind.as_str().to_owned(),
        name: f.name.clone(),
        confirmed: f.confirmed,
        created_at: rfc3339(f.created_at_us),
        last_used: f.last_used_us.map(rfc3339),
    }
}

pub(crate) fn factor_name(name: &str) -> Result<String, ApiError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 || portcullis_core::text::has_invisible(n) {
        return Err(ApiError::bad_request(
            "factor name must be 1 to 64 characters without control, bidirectional or invisible characters",
        ));
    }
    Ok(n.to_owned())
}
