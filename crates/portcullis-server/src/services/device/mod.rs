//! The device authorization grant (RFC 8628) for the CLI, and refresh tokens with rotation.
//!
//! Invariants:
//! - Device codes and refresh tokens are 256-bit random values stored as SHA-256; they are
//!   shown once (to the client that asked) and never logged or audited.
//! - A device code is approved or denied only by a person (never a service account, never with
//!   an access token) signed in with at least `mfa`, once, before it expires; its tokens are
//!   issued once (a conditional `approved → consumed`), with the approving session's strength
//!   capped at `mfa` as `acr`/`amr` (privilege model rule 8: the device proved nothing).
//! - The approving person is shown where and when the code was requested.
//! - Every refresh rotates: the presented token is marked used and its successor joins the same
//!   family, in one transaction. Presenting a used token again (or presenting one from another
//!   client, or losing a rotation race) is treated as theft: the whole family is revoked, and an
//!   alert-worthy audit event is written. A disabled account, a revoked family, a revoked
//!   approving session (sign-out, an administrator, a password change; its natural expiry
//!   does not count, so a long job outlives the browser session), or a token past its idle or
//!   absolute deadline gets `invalid_grant`.
//! - Access tokens issued here follow [`crate::services::tokens::issue`]: `exp` never past the earliest
//!   end of the roles they carry. Each is recorded with the refresh token issued beside it, so
//!   revoking a family (reuse, sign-out, a disabled account) revokes its access tokens too.
//! - Conditional access judges the poll and every refresh as the family's first issuance: the
//!   flow it started with (`device_code` for the CLI's, recorded with the family) and the
//!   person's address recorded with it (an OIDC client's family), else the caller's.

mod rotation;

pub(crate) use rotation::{access_for, enabled_principal, new_refresh_token};
pub use rotation::{refresh, revoke};

pub use crate::state::settings::DeviceSettings;
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::conditional_access::AuthenticationFlow;
use portcullis_core::device::{self as rules, DeviceState, PollAnswer};
use portcullis_core::session::AuthStrength;
use portcullis_core::token::AccessClaims;
use portcullis_store::accounts::Principal;
use portcullis_store::crypto::{random_token, token_hash};
use portcullis_store::{Change, NewDeviceAuthorization, StoreError};
use rand::RngCore;
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;
use crate::services::caller::{Caller, ClientInfo};
use crate::services::oauth::OAuthError;
use crate::services::support::new_id;
use crate::state::AppState;
use crate::time_us::{from_us, us};

/// Pending device codes one address may have at once (an unauthenticated request writes one,
/// and an audit event).
pub const PENDING_PER_ADDRESS: i64 = 10;

/// The CLI's client id: a public client (no secret), allowed the device grant only.
pub use portcullis_core::device::CLI_CLIENT_ID;

/// What the device authorization endpoint answers (RFC 8628 §3.2).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// Tokens for a person: an access token and the next refresh token.
pub struct UserTokens {
    pub access_token: String,
    pub claims: AccessClaims,
    pub refresh_token: String,
    /// Whose tokens, and the origin of the family (for an ID token on refresh).
    pub principal: Principal,
    pub session_id: String,
    pub scope: String,
}

fn public_client(client_id: Option<&str>) -> Result<&'static str, OAuthError> {
    match client_id {
        Some(CLI_CLIENT_ID) => Ok(CLI_CLIENT_ID),
        Some(_) => Err(OAuthError::invalid_client()),
        None => Err(OAuthError::invalid_request("client_id is required")),
    }
}

pub(crate) fn invalid_grant(d: &str) -> OAuthError {
    OAuthError::new("invalid_grant", d)
}

pub(crate) fn event(
    actor: &str,
    action: &str,
    target: &str,
    outcome: Outcome,
    details: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent::new(actor, action, target)
        .outcome(outcome)
        .details(details)
}

/// Starts a device authorization for the CLI.
pub async fn start(
    state: &AppState,
    client: &ClientInfo,
    client_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<DeviceStart, OAuthError> {
    let client_id = public_client(client_id)?;
    let device_code = random_token();
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let user_code = rules::user_code_from_bytes(b);
    let lifetime = state.device.code_lifetime;
    let id = new_id("d");
    let change = Change::CreateDeviceAuthorization(NewDeviceAuthorization {
        id: id.clone(),
        device_code_hash: token_hash(&device_code),
        user_code: user_code.clone(),
        client_id: client_id.to_owned(),
        created_at_us: us(now),
        expires_at_us: us(now + lifetime),
        interval_s: rules::DEFAULT_INTERVAL_SECONDS,
        client_ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        max_pending_per_address: PENDING_PER_ADDRESS,
    });
    let ev = event(
        &format!("client:{client_id}"),
        "device.authorization_started",
        &format!("device:{id}"),
        Outcome::Success,
        serde_json::json!({ "user_code": user_code, "client_ip": client.ip }),
    );
    match state.store.write(change, vec![ev]).await {
        Ok(_) => {}
        // Unauthenticated rows are bounded per address (each also writes an audit event).
        Err(StoreError::Conflict(m)) if m == portcullis_store::TOO_MANY_PENDING => {
            return Err(OAuthError::throttled(
                "temporarily_unavailable",
                "too many device codes are waiting from this address; approve, deny or let them expire first",
                60,
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let verification_uri = format!("{}/device", state.tokens.issuer);
    Ok(DeviceStart {
        device_code: device_code.to_string(),
        verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
        verification_uri,
        user_code,
        expires_in: lifetime.whole_seconds(),
        interval: rules::DEFAULT_INTERVAL_SECONDS,
    })
}

/// A signed-in person approves or denies the device authorization with `user_code`.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    user_code: &str,
    approve: bool,
) -> Result<(), ApiError> {
    let s = caller.require_full()?;
    crate::services::privilege::require_person(caller, "approve a device")?;
    // The family of tokens that follows is tied to this session (revoking it ends them), so
    // it must be a real sign-in, not an access token.
    if s.is_access_token() {
        return Err(ApiError::new(
            portcullis_core::error::ErrorCode::Forbidden,
            "approve device codes from a signed-in session (password and second factor), not with an access token",
        ));
    }
    if s.strength < AuthStrength::Mfa {
        return Err(ApiError::new(
            portcullis_core::error::ErrorCode::StepUpRequired,
            "approving a device needs a session signed in with a second factor (mfa)",
        ));
    }
    let code = rules::normalize_user_code(user_code)
        .ok_or_else(|| ApiError::bad_request("a user code is 8 letters, like BCDF-GHJK"))?;
    let now = OffsetDateTime::now_utc();
    let d = state
        .store
        .device_by_user_code(&code)
        .await?
        .filter(|d| d.state == DeviceState::Pending.as_str() && from_us(d.expires_at_us) > now)
        .ok_or_else(|| ApiError::not_found(format!("no pending device code {code}")))?;
    let auth_time_us = s
        .session
        .strong_auth_at_us
        .unwrap_or(s.session.created_at_us);
    // The device proved nothing itself: its tokens carry at most `mfa`, whatever the approving
    // session proved (privilege model rule 8), so a phished approval from a security-key
    // session does not hand out `phishing_resistant`.
    let strength = portcullis_core::privilege::device_grant_strength(s.strength);
    let change = Change::DecideDevice(portcullis_store::DeviceDecision {
        id: d.id.clone(),
        approve,
        principal_id: s.principal.id.clone(),
        strength,
        auth_time_us,
        session_id: s.session.id.clone(),
        at_us: us(now),
    });
    let ev = event(
        &caller.actor(),
        if approve {
            "device.approved"
        } else {
            "device.denied"
        },
        &format!("device:{}", d.id),
        Outcome::Success,
        serde_json::json!({
            "user_code": code, "client_id": d.client_id, "strength": strength.as_str(),
            "approver_strength": s.strength.as_str(), "requested_from": d.client_ip,
            "requested_at": crate::time_us::rfc3339(d.created_at_us),
        }),
    );
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(_)) => Err(ApiError::not_found(format!(
            "no pending device code {code}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// One poll of the token endpoint with a device code.
pub async fn poll(
    state: &AppState,
    client: &ClientInfo,
    client_id: Option<&str>,
    device_code: Option<&str>,
    now: OffsetDateTime,
) -> Result<UserTokens, OAuthError> {
    let client_id = public_client(client_id)?;
    let code = device_code.ok_or_else(|| OAuthError::invalid_request("device_code is required"))?;
    if code.len() > 256 {
        return Err(invalid_grant("unknown device code"));
    }
    let d = state
        .store
        .device_by_code_hash(&token_hash(code))
        .await?
        .filter(|d| d.client_id == client_id)
        .ok_or_else(|| invalid_grant("unknown device code"))?;
    let device_state = DeviceState::parse(&d.state).ok_or_else(OAuthError::server_error)?;
    let answer = rules::poll(
        device_state,
        from_us(d.expires_at_us),
        d.last_poll_at_us.map(from_us),
        Duration::seconds(d.interval_s),
        now,
    );
    if answer != PollAnswer::Issue {
        if matches!(answer, PollAnswer::Pending | PollAnswer::SlowDown) {
            state
                .store
                .write(
                    Change::PollDevice {
                        id: d.id.clone(),
                        slow_down: answer == PollAnswer::SlowDown,
                        at_us: us(now),
                    },
                    vec![],
                )
                .await?;
        }
        let error = answer.error().unwrap_or("invalid_grant");
        let description = match answer {
            PollAnswer::SlowDown => "polling too fast: wait 5 seconds longer between polls",
            PollAnswer::Pending => "the person has not approved yet",
            PollAnswer::Denied => "the person denied the request",
            PollAnswer::Expired => "the device code expired; start again",
            _ => "the device code was used already",
        };
        return Err(OAuthError::new(error, description));
    }
    let (principal_id, strength, auth_time_us, session_id) =
        match (&d.principal_id, &d.strength, d.auth_time_us, &d.session_id) {
            (Some(p), Some(s), Some(t), Some(sid)) => (p.clone(), *s, t, sid.clone()),
            _ => return Err(OAuthError::server_error()),
        };
    let p = enabled_principal(state, &principal_id)
        .await?
        .ok_or_else(|| invalid_grant("the account is disabled"))?;
    let origin = crate::services::conditional_access::TokenOrigin {
        client_id,
        strength,
        auth_time_us,
        flow: Some(AuthenticationFlow::DeviceCode),
        person_ip: None,
    };
    let ca = crate::services::conditional_access::at_token(
        state,
        &p,
        &origin,
        client,
        "token.device_code",
    )
    .await?;
    let family_end = now + state.device.refresh.absolute;
    let (refresh, new_refresh) = new_refresh_token(
        state,
        &p,
        &origin,
        &session_id,
        (new_id("rf"), family_end),
        "",
        now,
    );
    let tokens = access_for(state, &p, client_id, strength, auth_time_us, None, now).await?;
    let mut new_refresh = new_refresh;
    new_refresh.access = Some((tokens.1.jti.clone(), tokens.1.exp.saturating_mul(1_000_000)));
    let ev = event(
        &format!("user:{}", p.name),
        "token.device_code",
        &format!("user:{}", p.name),
        Outcome::Success,
        serde_json::json!({
            "device": d.id, "client_id": client_id, "client_ip": client.ip, "flow": "device_code",
            "jti": tokens.1.jti, "exp": tokens.1.exp, "family": new_refresh.family_id,
            "conditional_access": ca,
        }),
    );
    let change = Change::Many(vec![
        Change::ConsumeDevice { id: d.id.clone() },
        Change::IssueRefreshToken(new_refresh),
    ]);
    match state.store.write(change, vec![ev]).await {
        Ok(_) => {}
        // Another poll (another replica) issued the tokens first.
        Err(StoreError::Conflict(_)) => {
            return Err(invalid_grant("the device code was used already"));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(UserTokens {
        access_token: tokens.0,
        claims: tokens.1,
        refresh_token: refresh,
        principal: p,
        session_id,
        scope: String::new(),
    })
}
