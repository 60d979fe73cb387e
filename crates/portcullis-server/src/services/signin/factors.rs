//! A person's factors: TOTP enrolment and confirmation, removal (never the last one an
//! account needs), password change, and re-authentication in a session (fresh proof, step-up).

use super::*;
use crate::services::support::ConflictExt;

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
    if !factors
        .iter()
        .any(|f| f.confirmed && f.kind == portcullis_core::factor::FactorKind::Totp)
    {
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
            strength: AuthStrength::Mfa,
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
    let change = Change::AddTotpFactor(portcullis_store::NewTotpFactor {
        id: id.clone(),
        principal_id: me.principal.id.clone(),
        name: name.clone(),
        sealed_secret: state
            .master
            .seal(&format!("mfa_factor:{id}"), secret.as_ref()),
        confirmed: false,
        last_step: None,
        at_us: us(now),
    });
    let ev = event(
        caller,
        "mfa.totp_enrolment_started",
        format!("user:{}", me.principal.name),
    )
    .details(serde_json::json!({ "factor_id": id, "name": name }));
    state.store.write(change, vec![ev]).await.on_conflict(|| {
        ApiError::new(
            ErrorCode::AlreadyExists,
            "you already have a factor with that name",
        )
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
        .find(|f| f.id == factor_id && f.kind == portcullis_core::factor::FactorKind::Totp)
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
        .on_conflict(|| totp_error(TotpError::Replayed))?;
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
        serde_json::json!({ "factor_id": f.id, "kind": f.kind.as_str(), "name": f.name, "alert": true }),
    );
    let change = Change::Many(vec![
        Change::RemoveFactor {
            id: f.id.clone(),
            principal_id: me.principal.id.clone(),
        },
        crate::services::privilege::credential_notice(
            &me.principal,
            "factor_removed",
            serde_json::json!({ "kind": f.kind.as_str(), "name": f.name }),
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
        .on_conflict(|| ApiError::not_found("no such factor"))?;
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
        .on_conflict(|| totp_error(TotpError::Replayed))?;
    Ok(())
}
