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

use portcullis_core::api::{
    BootstrapRequest, FactorView, PasswordChangeRequest, PasswordSignInRequest, ReauthRequest,
    Reauthenticated, SessionIssued, SessionView, SignInResponse, TotpEnrolRequest, TotpEnrolment,
    TotpSignInRequest, UserView, WhoAmI,
};
use portcullis_core::audit::{NewAuditEvent, Outcome};
use portcullis_core::conditional_access::Application;
use portcullis_core::error::ErrorCode;
use portcullis_core::principal::{PrincipalKind, PrincipalName};
use portcullis_core::roles::perm;
use portcullis_core::session::{AuthStrength, SessionScope};
use portcullis_core::totp::{self, TotpError};
use portcullis_store::accounts::{Factor, Principal, Session};
use portcullis_store::crypto::{random_token, token_hash};
use portcullis_store::{Change, NewAssignment, NewPrincipal, NewSession, StoreError};
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

const MAX_PASSWORD: usize = 1024;

/// How recent a WebAuthn sign-in must be to stand in for a fresh second factor.
const FRESH_WEBAUTHN: time::Duration = time::Duration::minutes(5);

pub(crate) fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "user name or password is wrong",
    )
}

fn totp_error(e: TotpError) -> ApiError {
    match e {
        TotpError::Malformed => ApiError::bad_request(e.to_string()),
        TotpError::Replayed => ApiError::new(ErrorCode::CodeReplayed, e.to_string()),
        TotpError::Invalid => ApiError::new(ErrorCode::InvalidCode, e.to_string()),
        TotpError::BadSecret => ApiError::internal("stored TOTP secret unusable"),
    }
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

/// The seconds to wait before `keys` admit another attempt (0: go ahead), from their counters
/// now: the one reading of the backoff policies, for sign-in and the token endpoint alike.
pub(crate) async fn throttle_wait(
    state: &AppState,
    keys: &[String],
    now: OffsetDateTime,
) -> Result<i64, portcullis_store::StoreError> {
    let counters: Vec<(String, i64, OffsetDateTime)> = state
        .store
        .throttle_counters(keys)
        .await?
        .into_iter()
        .map(|(k, n, last)| (k, n, from_us(last)))
        .collect();
    Ok(match portcullis_core::throttle::admit(&counters, now) {
        Ok(()) => 0,
        Err(wait) => wait.whole_seconds() + 1,
    })
}

/// One attempt at a person's credential under throttling (`portcullis_core::throttle`).
///
/// A reserved attempt is counted on its keys *before* the credential is checked (one
/// serialised write), so concurrent guesses cannot all pass a check that none has failed yet;
/// a success gives the reservation back. Break-glass accounts are never reserved or refused
/// before their credential is checked (invariant 4): their failures are counted afterwards,
/// and audited (so they alert), but a correct credential always goes through.
pub(crate) struct Attempt {
    keys: Vec<String>,
    reserved: bool,
}

impl Attempt {
    /// The keys of an attempt on account `name` (known as `p`, if it exists) from `client`:
    /// the account-wide key only from an address where the account has not signed in
    /// successfully lately (smart lockout).
    async fn keys(
        state: &AppState,
        p: Option<&Principal>,
        name: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, ApiError> {
        let familiar = match p {
            Some(p) => {
                state
                    .store
                    .familiar_address(
                        &p.id,
                        &portcullis_core::throttle::address_key(&client.ip),
                        us(now - portcullis_core::throttle::FAMILIAR_FOR),
                    )
                    .await?
            }
            None => false,
        };
        Ok(portcullis_core::throttle::signin_keys(
            name, &client.ip, familiar,
        ))
    }

    /// Reserves an attempt as `action` on account `name` (refused with 429 and audited while
    /// its counters must wait); break-glass accounts get an unreserved one.
    pub(crate) async fn reserve(
        state: &AppState,
        p: Option<&Principal>,
        name: &str,
        action: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Attempt, ApiError> {
        let keys = Self::keys(state, p, name, client, now).await?;
        if p.is_some_and(|p| p.emergency) {
            return Ok(Attempt {
                keys,
                reserved: false,
            });
        }
        Self::reserve_keys(state, keys, name, action, client, now).await
    }

    /// Reserves an attempt on explicit `keys`.
    pub(crate) async fn reserve_keys(
        state: &AppState,
        keys: Vec<String>,
        name: &str,
        action: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Attempt, ApiError> {
        let reserve = Change::ReserveAttempt {
            keys: keys.clone(),
            at_us: us(now),
        };
        match state.store.write(reserve, vec![]).await {
            Ok(_) => Ok(Attempt {
                keys,
                reserved: true,
            }),
            Err(StoreError::Conflict(m)) if m == portcullis_store::THROTTLED => {
                Err(throttled(state, &keys, name, action, client, now).await)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A step that costs nothing (a WebAuthn challenge): refused while throttled, not counted
    /// unless it fails.
    pub(crate) async fn check(
        state: &AppState,
        p: Option<&Principal>,
        name: &str,
        action: &str,
        client: &ClientInfo,
        now: OffsetDateTime,
    ) -> Result<Attempt, ApiError> {
        let keys = Self::keys(state, p, name, client, now).await?;
        let emergency = p.is_some_and(|p| p.emergency);
        if !emergency && throttle_wait(state, &keys, now).await? > 0 {
            return Err(throttled(state, &keys, name, action, client, now).await);
        }
        Ok(Attempt {
            keys,
            reserved: false,
        })
    }

    /// Records the failure `ev` (audited; counted now unless it was reserved).
    pub(crate) async fn failed(&self, state: &AppState, ev: NewAuditEvent) -> Result<(), ApiError> {
        self.failed_with(state, Change::None, ev).await
    }

    /// Records the failure `ev` together with `change` (a spent ceremony) in one write.
    pub(crate) async fn failed_with(
        &self,
        state: &AppState,
        change: Change,
        ev: NewAuditEvent,
    ) -> Result<(), ApiError> {
        let change = if self.reserved {
            change
        } else {
            Change::Many(vec![
                change,
                Change::RecordFailures {
                    keys: self.keys.clone(),
                    at_us: us(OffsetDateTime::now_utc()),
                },
            ])
        };
        state.store.write(change, vec![ev]).await?;
        Ok(())
    }

    /// The change a success writes: the reservation given back (or, unreserved, the account's
    /// counters cleared).
    pub(crate) fn succeeded(&self) -> Change {
        if self.reserved {
            Change::ReleaseAttempt {
                keys: self.keys.clone(),
            }
        } else {
            Change::ResetThrottle {
                keys: self
                    .keys
                    .iter()
                    .filter(|k| portcullis_core::throttle::ThrottleKey::cleared_by_success(k))
                    .cloned()
                    .collect(),
            }
        }
    }

    /// The change that gives this reservation back without clearing earlier failures: for a
    /// first step that passed while the sign-in is not complete (the password before its
    /// second factor), so the counters keep watching the step that follows.
    pub(crate) fn given_back(&self) -> Change {
        if self.reserved {
            Change::RefundAttempt {
                keys: self.keys.clone(),
            }
        } else {
            Change::None
        }
    }

    /// Gives a reservation back when the credential was never checked (the server was too
    /// busy to check it).
    pub(crate) async fn abandon(&self, state: &AppState) {
        if self.reserved
            && let Err(e) = state.store.write(self.given_back(), vec![]).await
        {
            tracing::warn!(error = %e, "could not give back a throttle reservation");
        }
    }
}

/// The refusal of a throttled attempt as `action` on `subject`: audited (a throttled attempt is
/// still an attempt, and one with a service account's name must raise its alert like any
/// other), answered 429 with `Retry-After`.
async fn throttled(
    state: &AppState,
    keys: &[String],
    subject: &str,
    action: &str,
    client: &ClientInfo,
    now: OffsetDateTime,
) -> ApiError {
    let wait = match throttle_wait(state, keys, now).await {
        Ok(w) => w.max(1),
        Err(e) => return e.into(),
    };
    let mut details = serde_json::json!({ "retry_after_seconds": wait });
    if let Ok(Some(p)) = state.store.principal_by_name(subject).await
        && p.kind == PrincipalKind::ServiceAccount.as_str()
        && let Some(d) = details.as_object_mut()
    {
        d.insert("attempted_as".into(), "service_account".into());
    }
    let ev = signin_event(
        subject,
        action,
        Outcome::Failure,
        "throttled",
        client,
        details,
    );
    if let Err(e) = state.store.append(ev).await {
        return e.into();
    }
    ApiError::new(
        ErrorCode::TooManyAttempts,
        format!("too many failed attempts; try again in {wait} seconds"),
    )
    .retry_after(wait)
}

pub(crate) fn signin_event(
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
    NewAuditEvent::new(format!("user:{name}"), action, format!("user:{name}"))
        .outcome(outcome)
        .details(details)
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
        strength: strength.as_str().to_owned(),
        scope: scope.as_str().to_owned(),
        created_at_us: us(now),
        strong_auth_at_us: (strength >= AuthStrength::Mfa).then_some(us(now)),
        client_ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        ends_at_us: None,
    });
    (issued, change)
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
        Some(p) if p.kind == PrincipalKind::User.as_str() => {
            state.store.password_phc(&p.id).await?
        }
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
                Some(p) if p.kind == PrincipalKind::ServiceAccount.as_str() => {
                    ("service_account_interactive_signin", true)
                }
                Some(p) if p.kind != PrincipalKind::User.as_str() => ("not_a_user", false),
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
        .map(|f| f.kind)
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
    let ca_details = e.details;
    let frequency = e.sign_in_frequency_hours;
    let (mut issued, mut create) =
        new_session(state, &p.id, AuthStrength::Password, scope, client, now);
    crate::services::conditional_access::bound_session(&mut issued, &mut create, frequency, now);
    changes.push(create);
    changes.push(signed_in(&p, client, now));
    changes.push(attempt.succeeded());
    let ev = signin_event(
        &p.name,
        "signin.completed",
        Outcome::Success,
        "password_only",
        client,
        serde_json::json!({ "strength": "password", "scope": scope.as_str(), "session_id": issued.session_id, "conditional_access": ca_details }),
    );
    state.store.write(Change::Many(changes), vec![ev]).await?;
    Ok(SignInResponse {
        status: "signed_in".into(),
        signin_id: None,
        factors: vec![],
        session: Some(issued),
    })
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

/// Tries `code` against each confirmed TOTP factor; the matching factor and step.
fn match_totp(
    state: &AppState,
    factors: &[Factor],
    code: &str,
    now: OffsetDateTime,
) -> Result<(String, u64), TotpError> {
    let mut last_err = TotpError::Invalid;
    for f in factors.iter().filter(|f| f.kind == "totp" && f.confirmed) {
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
    let (mut issued, mut create) = new_session(
        state,
        &p.id,
        AuthStrength::Mfa,
        SessionScope::Full,
        client,
        now,
    );
    crate::services::conditional_access::bound_session(&mut issued, &mut create, frequency, now);
    let change = Change::Many(vec![
        Change::ConsumePendingSignIn { id_hash },
        Change::AcceptTotpStep {
            factor_id: factor_id.clone(),
            step: step as i64,
            confirm: false,
            at_us: us(now),
        },
        create,
        signed_in(&p, client, now),
        attempt.succeeded(),
    ]);
    let ev = signin_event(
        &p.name,
        "signin.completed",
        Outcome::Success,
        "password_and_totp",
        client,
        serde_json::json!({ "strength": "mfa", "session_id": issued.session_id, "factor_id": factor_id, "conditional_access": ca }),
    );
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(SignInResponse {
            status: "signed_in".into(),
            signin_id: None,
            factors: vec![],
            session: Some(issued),
        }),
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

/// `POST /api/v1/me/reauth`: a fresh proof in the current session — the password and a TOTP
/// code here, or a WebAuthn answer ([`crate::services::webauthn::finish_reauth`]). It stamps the
/// session's second factor as proven now and raises its strength to what was proven, so it also
/// serves as step-up. Failures count like sign-in failures and are audited.
pub async fn reauthenticate(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    req: ReauthRequest,
) -> Result<Reauthenticated, ApiError> {
    let me = crate::services::privilege::require_signed_in_session(caller)?;
    let webauthn = req.ceremony_id.is_some() || req.credential.is_some();
    let password = req.password.is_some() || req.code.is_some();
    let (password, code) = match (webauthn, password, req.password, req.code) {
        (true, false, _, _) => {
            return crate::services::webauthn::finish_reauth(
                state,
                caller,
                client,
                req.ceremony_id,
                req.credential,
            )
            .await;
        }
        (false, true, Some(pw), Some(code)) => (pw, code),
        _ => {
            return Err(ApiError::bad_request(
                "give password and code, or ceremony_id and credential (from POST /api/v1/me/reauth/webauthn)",
            ));
        }
    };
    check_password_input(&password)?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(totp_error(TotpError::Malformed));
    }
    let p = &me.principal;
    let factors = state.store.factors(&p.id).await?;
    if !factors.iter().any(|f| f.confirmed && f.kind == "totp") {
        return Err(ApiError::bad_request(
            "you have no confirmed TOTP factor: re-authenticate with your security key, or sign in again",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let attempt = Attempt::reserve(
        state,
        Some(p),
        &p.name,
        "session.reauthenticated",
        client,
        now,
    )
    .await?;
    let failed = |reason: &str| {
        event(caller, "session.reauthenticated", format!("user:{}", p.name))
            .outcome(Outcome::Failure)
            .details(serde_json::json!({ "reason": reason, "session_id": me.session.id, "client_ip": client.ip }))
    };
    let phc = state.store.password_phc(&p.id).await?;
    let verified = match state
        .passwords
        .verify(&SecretString::from(password), phc.as_deref())
        .await
    {
        Ok(v) => v,
        Err(e) => {
            attempt.abandon(state).await;
            return Err(e.into());
        }
    };
    if !verified.ok {
        attempt.failed(state, failed("wrong_password")).await?;
        return Err(invalid_credentials());
    }
    let (factor_id, step) = match match_totp(state, &factors, &code, now) {
        Ok(m) => m,
        Err(e) => {
            attempt.failed(state, failed("wrong_totp")).await?;
            return Err(totp_error(e));
        }
    };
    let change = Change::Many(vec![
        Change::AcceptTotpStep {
            factor_id: factor_id.clone(),
            step: step as i64,
            confirm: false,
            at_us: us(now),
        },
        Change::StampSession {
            id: me.session.id.clone(),
            strength: AuthStrength::Mfa.as_str().to_owned(),
            at_us: us(now),
        },
        attempt.succeeded(),
    ]);
    let ev = event(caller, "session.reauthenticated", format!("user:{}", p.name)).details(
        serde_json::json!({ "session_id": me.session.id, "factor_id": factor_id, "method": "password_and_totp", "client_ip": client.ip }),
    );
    match state.store.write(change, vec![ev]).await {
        Ok(_) => Ok(reauthenticated(me.strength.max(AuthStrength::Mfa), now)),
        Err(StoreError::Conflict(_)) => {
            attempt.failed(state, failed("totp_replayed")).await?;
            Err(totp_error(TotpError::Replayed))
        }
        Err(e) => Err(e.into()),
    }
}

/// The answer to a successful re-authentication at `now`.
pub(crate) fn reauthenticated(strength: AuthStrength, now: OffsetDateTime) -> Reauthenticated {
    Reauthenticated {
        strength: strength.as_str().to_owned(),
        fresh_until: rfc3339(us(now + portcullis_core::privilege::FRESH_PROOF_WINDOW)),
    }
}

/// Redeems the bootstrap token: creates the first administrator with a password and a
/// confirmed TOTP factor, in one transaction that also marks the token used.
pub async fn bootstrap(
    state: &AppState,
    client: &ClientInfo,
    req: BootstrapRequest,
) -> Result<UserView, ApiError> {
    let now = OffsetDateTime::now_utc();
    if req.token.is_empty()
        || req.token.len() > 512
        || !state.store.bootstrap_token_valid(&req.token, now).await?
    {
        state
            .store
            .append(NewAuditEvent::new("anonymous", "bootstrap.redeem", "tenant").outcome(Outcome::Failure).details(serde_json::json!({ "reason": "invalid_or_used_token", "client_ip": client.ip })))
            .await?;
        return Err(ApiError::new(
            ErrorCode::BootstrapUnavailable,
            "the bootstrap token is invalid, expired or already used",
        ));
    }
    let v = validate_user(
        &req.username,
        &req.display_name,
        req.email.as_deref(),
        None,
        None,
    )?;
    check_password(&req.password, v.name.as_str(), v.email.as_deref(), true)?;
    let secret = totp::base32_decode(&req.totp_secret)
        .filter(|s| s.len() >= 16 && s.len() <= 64)
        .ok_or_else(|| ApiError::bad_request("totp_secret must be base32 of 16 to 64 bytes"))?;
    let step = totp::verify(
        &secret,
        &req.totp_code,
        now.unix_timestamp().max(0) as u64,
        None,
    )
    .map_err(totp_error)?;
    let phc = state
        .passwords
        .hash(&SecretString::from(req.password))
        .await?;
    let id = new_id("u");
    let factor_id = new_id("f");
    let change = Change::Many(vec![
        Change::RedeemBootstrapToken {
            token_hash: token_hash(&req.token),
            at_us: us(now),
        },
        Change::CreatePrincipal(NewPrincipal {
            id: id.clone(),
            name: v.name.to_string(),
            kind: PrincipalKind::User.as_str().to_owned(),
            display_name: v.display_name,
            email: v.email,
            phone: None,
            guest_organisation: None,
            role_assignable: false,
            emergency: false,
            privileged: true,
            first_admin: true,
            created_at_us: us(now),
        }),
        Change::SetPassword {
            principal_id: id.clone(),
            phc,
            at_us: us(now),
        },
        // The first administrator holds Global Administrator permanently (someone has to set
        // the tenant up); whoami warns until it is replaced by an eligible assignment.
        Change::CreateAssignment(NewAssignment {
            id: format!("a_first_admin_{id}"),
            principal_id: id.clone(),
            role: "global-administrator".into(),
            scope: "/".into(),
            kind: "active".into(),
            starts_at_us: us(now),
            ends_at_us: None,
            created_by: "bootstrap".into(),
            created_at_us: us(now),
        }),
        Change::AddTotpFactor {
            id: factor_id.clone(),
            principal_id: id,
            name: "authenticator".into(),
            sealed_secret: state
                .master
                .seal(&format!("mfa_factor:{factor_id}"), &secret),
            confirmed: true,
            last_step: Some(step as i64),
            at_us: us(now),
        },
    ]);
    let events = vec![
        NewAuditEvent::new("bootstrap-token", "bootstrap.redeemed", "tenant").details(serde_json::json!({ "first_admin": v.name.as_str(), "client_ip": client.ip })),
        NewAuditEvent::new("bootstrap-token", "user.created", format!("user:{}", v.name)).details(serde_json::json!({ "first_admin": true, "roles": ["Global Administrator (permanent, active)"] })),
    ];
    state
        .store
        .write(change, events)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                ErrorCode::BootstrapUnavailable,
                "the bootstrap token was used concurrently, or the name is taken",
            ),
            other => other.into(),
        })?;
    let p = get_principal(state, v.name.as_str(), PrincipalKind::User).await?;
    user_view(state, &p).await
}

fn session_view(s: &Session, user: &str, current: &str) -> SessionView {
    SessionView {
        id: s.id.clone(),
        user: user.to_owned(),
        strength: s.strength.clone(),
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
        .map_err(|e| match e {
            StoreError::Conflict(_) => not_found(),
            other => other.into(),
        })?;
    Ok(())
}

/// Signs the caller out (revokes the current session).
pub async fn signout(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    let me = caller.require_session()?;
    revoke_session(state, caller, &me.session.id.clone()).await
}

pub(crate) fn factor_view(f: &Factor) -> FactorView {
    FactorView {
        id: f.id.clone(),
        kind: f.kind.clone(),
        name: f.name.clone(),
        confirmed: f.confirmed,
        created_at: rfc3339(f.created_at_us),
        last_used: f.last_used_us.map(rfc3339),
    }
}

pub async fn list_factors(state: &AppState, caller: &Caller) -> Result<Vec<FactorView>, ApiError> {
    let me = caller.require_session()?;
    Ok(state
        .store
        .factors(&me.principal.id)
        .await?
        .iter()
        .map(factor_view)
        .collect())
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

/// Starts a TOTP enrolment: the secret is shown once, and the factor counts only once a code
/// confirms it.
pub async fn enrol_totp(
    state: &AppState,
    caller: &Caller,
    req: TotpEnrolRequest,
) -> Result<TotpEnrolment, ApiError> {
    let me = caller.require_session()?;
    crate::services::privilege::require_person(caller, "enrol a second factor")?;
    crate::services::breakglass::guard_own_credential(state, &me.principal, false).await?;
    crate::services::privilege::require_fresh_proof(state, caller).await?;
    let name = factor_name(&req.name)?;
    let mut secret = zeroize::Zeroizing::new([0u8; totp::SECRET_LEN]);
    rand::rngs::OsRng.fill_bytes(secret.as_mut());
    let id = new_id("f");
    let uri = totp::otpauth_uri(secret.as_ref(), &me.principal.name).map_err(ApiError::internal)?;
    let now = OffsetDateTime::now_utc();
    let change = Change::AddTotpFactor {
        id: id.clone(),
        principal_id: me.principal.id.clone(),
        name: name.clone(),
        sealed_secret: state
            .master
            .seal(&format!("mfa_factor:{id}"), secret.as_ref()),
        confirmed: false,
        last_step: None,
        at_us: us(now),
    };
    let ev = event(
        caller,
        "mfa.totp_enrolment_started",
        format!("user:{}", me.principal.name),
    )
    .details(serde_json::json!({ "factor_id": id, "name": name }));
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                ErrorCode::AlreadyExists,
                "you already have a factor with that name",
            ),
            other => other.into(),
        })?;
    Ok(TotpEnrolment {
        factor_id: id,
        secret: totp::base32(secret.as_ref()),
        otpauth_uri: uri,
    })
}

pub async fn confirm_totp(
    state: &AppState,
    caller: &Caller,
    factor_id: &str,
    code: &str,
) -> Result<FactorView, ApiError> {
    let me = caller.require_session()?;
    crate::services::privilege::require_person(caller, "enrol a second factor")?;
    crate::services::privilege::require_fresh_proof(state, caller).await?;
    let factors = state.store.factors(&me.principal.id).await?;
    let f = factors
        .iter()
        .find(|f| f.id == factor_id && f.kind == "totp")
        .ok_or_else(|| ApiError::not_found("no such factor"))?;
    if f.confirmed {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this factor is already confirmed",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let secret = state
        .master
        .open(&format!("mfa_factor:{}", f.id), &f.sealed_secret)
        .map_err(ApiError::internal)?;
    let step = match totp::verify(&secret, code, now.unix_timestamp().max(0) as u64, None) {
        Ok(s) => s,
        Err(e @ TotpError::Malformed) => return Err(totp_error(e)),
        Err(e) => {
            state
                .store
                .append(
                    event(
                        caller,
                        "mfa.totp_confirmed",
                        format!("user:{}", me.principal.name),
                    )
                    .outcome(Outcome::Failure)
                    .details(serde_json::json!({ "factor_id": f.id, "reason": "wrong_code" })),
                )
                .await?;
            return Err(totp_error(e));
        }
    };
    // A new credential: alert-worthy, and its owner is told by email (rule 7).
    let ev = event(
        caller,
        "mfa.totp_confirmed",
        format!("user:{}", me.principal.name),
    )
    .details(serde_json::json!({ "factor_id": f.id, "name": f.name, "alert": true }));
    state
        .store
        .write(
            Change::Many(vec![
                Change::AcceptTotpStep {
                    factor_id: f.id.clone(),
                    step: step as i64,
                    confirm: true,
                    at_us: us(now),
                },
                crate::services::privilege::credential_notice(
                    &me.principal,
                    "totp_registered",
                    serde_json::json!({ "name": f.name }),
                ),
            ]),
            vec![ev],
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => totp_error(TotpError::Replayed),
            other => other.into(),
        })?;
    let f = state
        .store
        .factors(&me.principal.id)
        .await?
        .into_iter()
        .find(|x| x.id == factor_id)
        .ok_or_else(|| ApiError::not_found("no such factor"))?;
    Ok(factor_view(&f))
}

/// Removes a factor; never the last confirmed factor of an account that needs MFA.
pub async fn remove_factor(
    state: &AppState,
    caller: &Caller,
    factor_id: &str,
) -> Result<(), ApiError> {
    let me: &SessionCaller = caller.require_full()?;
    crate::services::privilege::require_fresh_proof(state, caller).await?;
    let factors = state.store.factors(&me.principal.id).await?;
    let f = factors
        .iter()
        .find(|f| f.id == factor_id)
        .ok_or_else(|| ApiError::not_found("no such factor"))?;
    let needs_mfa = me.principal.privileged || me.principal.first_admin || me.principal.emergency;
    let confirmed_left = factors
        .iter()
        .filter(|x| x.confirmed && x.id != f.id)
        .count();
    if f.confirmed && needs_mfa && confirmed_left == 0 {
        return Err(ApiError::new(
            ErrorCode::LastFactor,
            "this is your last second factor and your account needs one; enrol another first",
        ));
    }
    let ev = event(
        caller,
        "mfa.factor_removed",
        format!("user:{}", me.principal.name),
    )
    .details(
        serde_json::json!({ "factor_id": f.id, "kind": f.kind, "name": f.name, "alert": true }),
    );
    let change = Change::Many(vec![
        Change::RemoveFactor {
            id: f.id.clone(),
            principal_id: me.principal.id.clone(),
        },
        crate::services::privilege::credential_notice(
            &me.principal,
            "factor_removed",
            serde_json::json!({ "kind": f.kind, "name": f.name }),
        ),
    ]);
    // A break-glass account's key is its credential: not below the two-account minimum.
    if me.principal.emergency {
        return crate::services::breakglass::write_guarded(state, change, ev).await;
    }
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::not_found("no such factor"),
            other => other.into(),
        })?;
    Ok(())
}

/// Changes the caller's password: the current password and a fresh TOTP code are both needed.
/// Other sessions are revoked.
pub async fn change_password(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    req: PasswordChangeRequest,
) -> Result<(), ApiError> {
    let me = caller.require_full()?;
    crate::services::breakglass::guard_own_credential(state, &me.principal, false).await?;
    // Access tokens never change credentials (rule 7); the current password and a fresh
    // factor below are the proof.
    crate::services::privilege::require_signed_in_session(caller)?;
    check_password_input(&req.current_password)?;
    if let Some(code) = &req.code
        && (code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(totp_error(TotpError::Malformed));
    }
    let p = &me.principal;
    check_password(
        &req.new_password,
        &p.name,
        p.email.as_deref(),
        p.privileged || p.first_admin,
    )?;
    let now = OffsetDateTime::now_utc();
    let attempt = Attempt::reserve(
        state,
        Some(p),
        &p.name,
        "user.password_changed",
        client,
        now,
    )
    .await?;
    let phc = state.store.password_phc(&p.id).await?;
    let ok = match state
        .passwords
        .verify(&SecretString::from(req.current_password), phc.as_deref())
        .await
    {
        Ok(v) => v.ok,
        Err(e) => {
            attempt.abandon(state).await;
            return Err(e.into());
        }
    };
    if !ok {
        attempt
            .failed(
                state,
                event(caller, "user.password_changed", format!("user:{}", p.name))
                    .outcome(Outcome::Failure)
                    .details(serde_json::json!({ "reason": "wrong_current_password" })),
            )
            .await?;
        return Err(invalid_credentials());
    }
    // The fresh second factor: a TOTP code now, or a WebAuthn sign-in moments ago.
    let totp_step = match &req.code {
        Some(code) => {
            let factors = state.store.factors(&p.id).await?;
            match match_totp(state, &factors, code, now) {
                Ok(m) => Some(m),
                Err(e) => {
                    attempt
                        .failed(
                            state,
                            event(caller, "user.password_changed", format!("user:{}", p.name))
                                .outcome(Outcome::Failure)
                                .details(serde_json::json!({ "reason": "wrong_totp" })),
                        )
                        .await?;
                    return Err(totp_error(e));
                }
            }
        }
        None => {
            let fresh = me.strength == AuthStrength::PhishingResistant
                && me
                    .session
                    .strong_auth_at_us
                    .is_some_and(|at| now - from_us(at) <= FRESH_WEBAUTHN);
            if !fresh {
                return Err(ApiError::new(
                    ErrorCode::StepUpRequired,
                    "give a TOTP code, or sign in with your passkey again (within five minutes) and retry",
                ));
            }
            None
        }
    };
    let new_phc = state
        .passwords
        .hash(&SecretString::from(req.new_password))
        .await?;
    let mut changes = Vec::new();
    if let Some((factor_id, step)) = totp_step {
        changes.push(Change::AcceptTotpStep {
            factor_id,
            step: step as i64,
            confirm: false,
            at_us: us(now),
        });
    }
    changes.extend([
        Change::SetPassword {
            principal_id: p.id.clone(),
            phc: new_phc,
            at_us: us(now),
        },
        // Every other session ends: whoever else held one no longer knows the password.
        Change::RevokeSessionsOf {
            principal_id: p.id.clone(),
            except: Some(me.session.id.clone()),
            at_us: us(now),
        },
        crate::services::privilege::credential_notice(p, "password_changed", serde_json::json!({})),
        attempt.succeeded(),
    ]);
    let change = Change::Many(changes);
    let ev = event(caller, "user.password_changed", format!("user:{}", p.name))
        .details(serde_json::json!({ "other_sessions_revoked": true, "alert": true }));
    state
        .store
        .write(change, vec![ev])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => totp_error(TotpError::Replayed),
            other => other.into(),
        })?;
    Ok(())
}
