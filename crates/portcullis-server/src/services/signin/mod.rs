//! Sign-in: password, then a second factor; sessions; the first administrator (bootstrap).
//!
//! Rules kept here:
//! - Unknown user, wrong password, service account and "no password" all answer the same
//!   `invalid_credentials` after the same Argon2 work; the audit event records the real reason.
//! - Failures slow down per account and per client IP (capped backoff, never a lockout);
//!   emergency accounts only per IP. Throttled attempts answer 429 with `Retry-After`.
//! - A TOTP time step is accepted once (conditional update in the store, so also across
//!   replicas). A code that is not six digits is refused as bad input and changes nothing.
//! - Accounts that are or may become privileged without a second factor get only a
//!   registration-only session.
//! - Every attempt, success or failure, is an audit event.
//! - Every flow (password, TOTP, WebAuthn, break-glass) ends in one [`complete_signin`].
//!
//! Here: the password and TOTP steps and the completion; `throttle` the attempts under
//! backoff; `sessions` listing and ending them; `factors` enrolment, removal, password change
//! and re-authentication; `bootstrap` the first administrator.

use portcullis_core::api::{
    BootstrapRequest, FactorView, PasswordChangeRequest, PasswordSignInRequest, ReauthRequest,
    Reauthenticated, SessionView, SignInResponse, TotpEnrolRequest, TotpEnrolment,
    TotpSignInRequest, UserView, WhoAmI,
};
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::conditional_access::Application;
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::{PrincipalKind, PrincipalName};
use portcullis_core::roles::perm;
use portcullis_core::session::{AuthStrength, SessionScope};
use portcullis_core::totp::{self, TotpError};
use portcullis_store::accounts::{Factor, Session};
use portcullis_store::crypto::token_hash;
use portcullis_store::{Change, NewAssignment, NewPrincipal, StoreError};
use rand::RngCore;
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::services::accounts::{
    check_password, get_principal, invalid, new_id, user_view, validate_user,
};
use crate::services::caller::{Caller, ClientInfo, SessionCaller, event};
use crate::state::AppState;
use crate::time_us::{from_us, rfc3339, us};

pub(crate) use crate::services::support::signin_event;

mod bootstrap;
mod factors;
mod sessions;

pub(crate) use crate::services::identity::*;
pub use bootstrap::*;
pub use factors::*;
pub use sessions::*;

/// How recent a WebAuthn sign-in must be to stand in for a fresh second factor.
const FRESH_WEBAUTHN: time::Duration = time::Duration::minutes(5);

fn totp_error(e: TotpError) -> ApiError {
    match e {
        TotpError::Malformed => ApiError::bad_request(e.to_string()),
        TotpError::Replayed => ApiError::new(ErrorCode::CodeReplayed, e.to_string()),
        TotpError::Invalid => ApiError::new(ErrorCode::InvalidCode, e.to_string()),
        TotpError::BadSecret => ApiError::internal("stored TOTP secret unusable"),
    }
}

/// First step: user name and password.
pub async fn password_step(
    state: &AppState,
    client: &ClientInfo,
    app: &Application,
    req: PasswordSignInRequest,
) -> Result<SignInResponse, ApiError> {
    let name = PrincipalName::parse("username", &req.username).map_err(invalid)?;
    check_password_input(&req.password)?;
    let now = OffsetDateTime::now_utc();
    let principal = state.store.principal_by_name(name.as_str()).await?;
    let emergency = principal.as_ref().is_some_and(|p| p.emergency);
    let attempt = Attempt::reserve(
        state,
        principal.as_ref(),
        name.as_str(),
        "signin.password",
        client,
        now,
    )
    .await?;
    let phc = match &principal {
        Some(p) if p.kind == PrincipalKind::User => state.store.password_phc(&p.id).await?,
        _ => None,
    };
    let pw = SecretString::from(req.password);
    // A break-glass password is checked in its own lane (its fast verifier, or Argon2 outside
    // the queue), so a flood never stands between it and its account (invariant 4).
    let (verified, upgrade) = match &principal {
        Some(p) if emergency => {
            crate::services::breakglass::verify_password(state, p, &pw, phc.as_deref()).await?
        }
        _ => match state.passwords.verify(&pw, phc.as_deref()).await {
            Ok(v) => (v, None),
            Err(e) => {
                attempt.abandon(state).await;
                return Err(e.into());
            }
        },
    };
    let p = match principal {
        Some(p) if verified.ok => p,
        other => {
            let (reason, alert) = match &other {
                None => ("unknown_user", false),
                Some(p) if p.kind == PrincipalKind::ServiceAccount => {
                    ("service_account_interactive_signin", true)
                }
                Some(p) if p.kind != PrincipalKind::User => ("not_a_user", false),
                Some(_) if phc.is_none() => ("no_password", false),
                Some(_) => ("wrong_password", false),
            };
            let ev = signin_event(
                name.as_str(),
                "signin.password",
                Outcome::Failure,
                reason,
                client,
                serde_json::json!({ "alert": alert }),
            );
            attempt.failed(state, ev).await?;
            return Err(invalid_credentials());
        }
    };
    if !p.enabled {
        let ev = signin_event(
            &p.name,
            "signin.password",
            Outcome::Failure,
            "account_disabled",
            client,
            serde_json::json!({}),
        );
        state.store.append(ev).await?;
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    let mut changes: Vec<Change> = upgrade.into_iter().collect();
    if verified.needs_rehash {
        let phc = state.passwords.hash(&pw).await?;
        changes.push(Change::SetPassword {
            principal_id: p.id.clone(),
            phc,
            at_us: us(now),
        });
    }
    // A break-glass account's split password is its whole credential (crate::services::breakglass).
    let mut breakglass = changes.clone();
    breakglass.push(attempt.succeeded());
    if p.emergency
        && let Some(session) =
            crate::services::breakglass::password_signin(state, client, &p, &mut breakglass, now)
                .await?
    {
        return Ok(SignInResponse {
            status: "signed_in".into(),
            signin_id: None,
            factors: vec![],
            session: Some(session),
        });
    }
    let factors: Vec<String> = state
        .store
        .factors(&p.id)
        .await?
        .into_iter()
        .filter(|f| f.confirmed)
        .map(|f| f.kind.as_str().to_owned())
        .collect();
    if !factors.is_empty() {
        // Half way: the password passed, earlier failures stay counted for the second step.
        changes.push(attempt.given_back());
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let signin_id = hex::encode(raw);
        changes.push(Change::CreatePendingSignIn {
            id_hash: token_hash(&signin_id),
            principal_id: p.id.clone(),
            at_us: us(now),
        });
        let ev = signin_event(
            &p.name,
            "signin.password",
            Outcome::Success,
            "second_factor_required",
            client,
            serde_json::json!({ "rehashed": verified.needs_rehash }),
        );
        state.store.write(Change::Many(changes), vec![ev]).await?;
        let mut kinds = factors;
        kinds.dedup();
        return Ok(SignInResponse {
            status: "mfa_required".into(),
            signin_id: Some(signin_id),
            factors: kinds,
            session: None,
        });
    }
    // No second factor: a privileged account — also one privileged only through a group — may
    // only register one (privilege model rule 5).
    let mut scope = if crate::services::privilege::is_privileged(state, &p, now).await? {
        SessionScope::RegistrationOnly
    } else {
        SessionScope::Full
    };
    // Conditional access: a block refuses; a stronger factor required (and none registered)
    // leaves a registration-only session, so the person can register one.
    let e = crate::services::conditional_access::enforce(
        state,
        &p,
        app.clone(),
        &client.ip,
        AuthStrength::Password,
        None,
    )
    .await?;
    if let Some(refusal) = e.refusal {
        if refusal.code != ErrorCode::CaRequirement {
            let base = signin_event(
                &p.name,
                "signin.password",
                Outcome::Failure,
                "conditional_access",
                client,
                serde_json::json!({ "application": app.to_string() }),
            );
            state
                .store
                .append(crate::services::conditional_access::refused_event(
                    base, &e.details,
                ))
                .await?;
            return Err(refusal);
        }
        scope = SessionScope::RegistrationOnly;
    }
    let issued = complete_signin(
        state,
        Completion {
            principal: &p,
            client,
            strength: AuthStrength::Password,
            scope,
            frequency: e.sign_in_frequency_hours,
            reason: "password_only",
            details: serde_json::json!({ "strength": "password", "scope": scope.as_str(), "conditional_access": e.details }),
            changes,
            succeeded: Some(attempt.succeeded()),
        },
        now,
    )
    .await?;
    Ok(signed_in_response(issued))
}

/// Tries `code` against each confirmed TOTP factor; the matching factor and step.
fn match_totp(
    state: &AppState,
    factors: &[Factor],
    code: &str,
    now: OffsetDateTime,
) -> Result<(String, u64), TotpError> {
    let mut last_err = TotpError::Invalid;
    for f in factors
        .iter()
        .filter(|f| f.kind == portcullis_core::factor::FactorKind::Totp && f.confirmed)
    {
        let secret = state
            .master
            .open(&format!("mfa_factor:{}", f.id), &f.sealed_secret)
            .map_err(|_| TotpError::BadSecret)?;
        let last = f.last_step.and_then(|s| u64::try_from(s).ok());
        match totp::verify(&secret, code, now.unix_timestamp().max(0) as u64, last) {
            Ok(step) => return Ok((f.id.clone(), step)),
            Err(TotpError::Replayed) => last_err = TotpError::Replayed,
            Err(e @ TotpError::Malformed) => return Err(e),
            Err(_) => {}
        }
    }
    Err(last_err)
}

/// Second step: a TOTP code for a pending sign-in.
pub async fn totp_step(
    state: &AppState,
    client: &ClientInfo,
    app: &Application,
    req: TotpSignInRequest,
) -> Result<SignInResponse, ApiError> {
    if req.signin_id.len() != 64 || !req.signin_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("signin_id is malformed"));
    }
    if req.code.len() != 6 || !req.code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(totp_error(TotpError::Malformed));
    }
    let now = OffsetDateTime::now_utc();
    let id_hash = token_hash(&req.signin_id);
    let expired = || {
        ApiError::new(
            ErrorCode::Unauthenticated,
            "this sign-in has expired or was completed; start again",
        )
    };
    let (principal_id, created) = state
        .store
        .pending_signin(&id_hash)
        .await?
        .ok_or_else(expired)?;
    if now - from_us(created) > state.lifetimes.pending_signin {
        return Err(expired());
    }
    let p = state
        .store
        .principal_by_id(&principal_id)
        .await?
        .ok_or_else(expired)?;
    let attempt = Attempt::reserve(state, Some(&p), &p.name, "signin.totp", client, now).await?;
    if !p.enabled {
        state
            .store
            .append(signin_event(
                &p.name,
                "signin.totp",
                Outcome::Failure,
                "account_disabled",
                client,
                serde_json::json!({}),
            ))
            .await?;
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this account is disabled",
        ));
    }
    let factors = state.store.factors(&p.id).await?;
    let (factor_id, step) = match match_totp(state, &factors, &req.code, now) {
        Ok(m) => m,
        Err(e) => {
            let reason = if e == TotpError::Replayed {
                "totp_replayed"
            } else {
                "wrong_totp"
            };
            attempt
                .failed(
                    state,
                    signin_event(
                        &p.name,
                        "signin.totp",
                        Outcome::Failure,
                        reason,
                        client,
                        serde_json::json!({}),
                    ),
                )
                .await?;
            return Err(totp_error(e));
        }
    };
    let (ca, frequency) = crate::services::conditional_access::at_signin(
        state,
        &p,
        app,
        client,
        AuthStrength::Mfa,
        "signin.totp",
    )
    .await?;
    let completion = Completion {
        principal: &p,
        client,
        strength: AuthStrength::Mfa,
        scope: SessionScope::Full,
        frequency,
        reason: "password_and_totp",
        details: serde_json::json!({ "strength": "mfa", "factor_id": factor_id, "conditional_access": ca }),
        changes: vec![
            Change::ConsumePendingSignIn { id_hash },
            Change::AcceptTotpStep {
                factor_id: factor_id.clone(),
                step: step as i64,
                confirm: false,
                at_us: us(now),
            },
        ],
        succeeded: Some(attempt.succeeded()),
    };
    match complete_signin(state, completion, now).await {
        Ok(issued) => Ok(signed_in_response(issued)),
        // Lost a race: the step was used, or the sign-in completed, in another request.
        Err(StoreError::Conflict(_)) => {
            attempt
                .failed(
                    state,
                    signin_event(
                        &p.name,
                        "signin.totp",
                        Outcome::Failure,
                        "totp_replayed",
                        client,
                        serde_json::json!({}),
                    ),
                )
                .await?;
            Err(totp_error(TotpError::Replayed))
        }
        Err(e) => Err(e.into()),
    }
}
